"""Diffusion models as energies at many noise levels.

A noise-conditional energy ``E(x, sigma)`` (an Equinox module ``m(x, sigma)``
or ``energy_fn(params, x, sigma)``), trained by ``emc.learn.Diffusion``, is a
true energy at every level, so besides the reverse SDE it can be sampled with
a Metropolis-adjusted corrector, scored by an exact likelihood, and added to
another energy (a product of experts).

* :func:`ve`, :func:`vp`, :class:`Schedule` -- noise schedules.
* :func:`mlp_energy` -- a default network for ``d``-dimensional data.
* :func:`sample` -- reverse SDE, predictor--corrector (Langevin, MALA, HMC).
* :func:`annealed_mcmc` -- Metropolis-adjusted MCMC down a ladder of levels.
* :func:`log_likelihood` -- probability-flow ODE, Hutchinson or exact trace.
* :func:`product` -- the sum of energies (product of experts).
* :func:`gaussian_mixture` -- a mixture noised in closed form: the exact energy
  at every level, for checks and as a truth to score against.
"""

from energymc.diffusion.compose import Product, product
from energymc.diffusion.exact import GaussianMixture, gaussian_mixture
from energymc.diffusion.likelihood import Likelihood, log_likelihood
from energymc.diffusion.networks import MLPEnergy, mlp_energy
from energymc.diffusion.sampling import Samples, annealed_mcmc, sample
from energymc.diffusion.schedules import Schedule, ve, vp

__all__ = [
    "GaussianMixture",
    "Likelihood",
    "MLPEnergy",
    "Product",
    "Samples",
    "Schedule",
    "annealed_mcmc",
    "gaussian_mixture",
    "log_likelihood",
    "mlp_energy",
    "product",
    "sample",
    "ve",
    "vp",
]
