"""energymc: energy-based models on JAX.

Sample ``exp(-E(x))`` with BlackJAX kernels, estimate ``log Z``, learn ``E``
from data, and diagnose chains with ArviZ.
"""

from energymc import (
    _compilation_cache,
    diffusion,
    exact,
    io,
    learn,
    metrics,
    models,
    nn,
    ood,
    plots,
)
from energymc._compilation_cache import compilation_cache_dir
from energymc._util import Compilations, compilations
from energymc._util import version as _version
from energymc.diagnostics import (
    Diagnosis,
    diagnose,
    plot_energy,
    plot_pair,
    plot_rank,
    plot_trace,
    summary,
)
from energymc.energy import Energy
from energymc.errors import EnergyError, EnergymcError, EnergymcWarning, OptionError
from energymc.logz import LogZ, log_partition
from energymc.results import Run
from energymc.sampling import sample

# At import, before any sampler compiles, so that a fresh process finds the
# programs an earlier one stored. (The imports above compile one scalar
# ``log``; JAX opens its cache lazily, so nothing is lost by calling it here.)
_compilation_cache.configure()

#: The installed distribution's version, from package metadata (one source: pyproject.toml).
__version__ = _version()

__all__ = [
    "Compilations",
    "Diagnosis",
    "Energy",
    "EnergyError",
    "EnergymcError",
    "EnergymcWarning",
    "LogZ",
    "OptionError",
    "Run",
    "__version__",
    "compilation_cache_dir",
    "compilations",
    "diagnose",
    "diffusion",
    "exact",
    "io",
    "learn",
    "log_partition",
    "metrics",
    "models",
    "nn",
    "ood",
    "plot_energy",
    "plot_pair",
    "plot_rank",
    "plots",
    "plot_trace",
    "sample",
    "summary",
]
