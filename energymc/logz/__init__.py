"""Partition functions: ``log Z = log ∫ exp(-E(x)) dx`` with error bars and bounds.

:func:`log_partition` runs one estimator and returns a :class:`LogZ`:
annealed importance sampling (``ais``), BlackJAX's adaptive tempered SMC
(``smc``), bidirectional Monte Carlo bounds (``bdmc``), BlackJAX's nested
slice sampling (``nested``) and parallel tempering with stepping stones
(``pt``). This package is where ``blackjax.smc`` and ``blackjax.ns`` enter.
A model that knows a better annealing path than the geometric one passes it
as ``base=`` (an :class:`AnnealingPath`, e.g. ``RBM.ais_path``).
"""

from energymc.logz._api import METHODS, log_partition
from energymc.logz._path import AnnealingPath
from energymc.logz._reference import Reference
from energymc.logz._result import LogZ

__all__ = ["AnnealingPath", "LogZ", "METHODS", "Reference", "log_partition"]
