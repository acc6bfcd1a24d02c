"""energymc: energy-based models on JAX.

Sample ``exp(-E(x))`` with BlackJAX kernels, estimate ``log Z``, learn ``E``
from data, and diagnose chains with ArviZ.
"""

__version__ = "0.1.0"

from energymc import _compilation_cache, exact, io, learn, models, plots
from energymc import diffusion
from energymc._compilation_cache import compilation_cache_dir
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

__all__ = [
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
    "diagnose",
    "diffusion",
    "exact",
    "io",
    "learn",
    "log_partition",
    "models",
    "plot_energy",
    "plot_pair",
    "plot_rank",
    "plots",
    "plot_trace",
    "sample",
    "summary",
]
