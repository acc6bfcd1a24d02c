"""Composition: the sum of energies is a product of experts.

``exp(-(E_a + E_b))`` is proportional to ``p_a p_b``: the points both models
find likely. At the smallest noise level the sum of two trained energies is
that product; at larger levels it is *not* the noised product (noising does
not commute with multiplying densities), so the reverse SDE, which assumes
the levels are one diffusion's marginals, is biased for it. Sample it with
:func:`energymc.diffusion.annealed_mcmc`, whose Metropolis step targets each
level's sum exactly, so that the last level is right whatever the path
(Du et al. 2023, "Reduce, reuse, recycle").
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

from energymc.diffusion._energies import as_module
from energymc.errors import EnergyError

__all__ = ["Product", "product"]


class Product(eqx.Module):
    """``m(x, sigma) = sum_i w_i E_i(x, sigma)``; build it with :func:`product`."""

    experts: tuple
    weights: tuple = eqx.field(static=True)

    def __call__(self, x, sigma):
        return sum(w * e(x, sigma) for w, e in zip(self.weights, self.experts, strict=True))


def product(*experts, weights=None) -> Product:
    """The product of experts ``exp(-sum_i w_i E_i(x, sigma))`` as one energy.

    Parameters
    ----------
    *experts
        Equinox modules ``m(x, sigma)`` (a trained ``emc.learn.Diffusion``
        result's ``params`` for a module energy) or ``(energy_fn, params)``
        pairs.
    weights
        Optional exponents ``w_i`` (default 1 each): ``p_1^{w_1} p_2^{w_2}``;
        ``w > 1`` sharpens an expert.

    Returns
    -------
    Product
        An Equinox module ``m(x, sigma)``, accepted by every sampler of
        :mod:`energymc.diffusion`.
    """
    if len(experts) < 2:
        raise EnergyError("product() needs at least two energies.")
    modules = []
    for e in experts:
        if isinstance(e, tuple):
            if len(e) != 2:
                raise EnergyError("an expert given as a tuple must be (energy_fn, params).")
            modules.append(as_module(*e))
        else:
            modules.append(as_module(e))
    if weights is None:
        weights = (1.0,) * len(modules)
    weights = tuple(float(w) for w in weights)
    if len(weights) != len(modules) or not all(jnp.isfinite(w) and w > 0 for w in weights):
        raise EnergyError(f"weights must be {len(modules)} positive numbers, one per expert.")
    return Product(tuple(modules), weights)
