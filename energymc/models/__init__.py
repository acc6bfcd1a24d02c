"""Ready-made energies with exact answers to check against: RBM, Ising, Hopfield,
and continuous reference targets (banana, funnel, Gaussian, mixture)."""

from energymc.models import reference
from energymc.models.hopfield import Hopfield, ModernHopfield
from energymc.models.ising import Ising, critical_beta, onsager_magnetization
from energymc.models.rbm import RBM

__all__ = [
    "reference",
    "RBM",
    "Hopfield",
    "Ising",
    "ModernHopfield",
    "critical_beta",
    "onsager_magnetization",
]
