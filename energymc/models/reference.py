"""Reference continuous targets with known answers: for demos, tests and benchmarks.

Each function returns an :class:`energymc.Energy` whose normalising constant
(``log_z`` attribute, nats) and, where simple, moments are known exactly.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax.scipy.special import logsumexp

from energymc.energy import Energy

__all__ = ["banana", "funnel", "gaussian", "mixture"]


def _named(fn, name):
    fn.__name__ = name
    return fn


def banana(scale: float = 2.0, curvature: float = 0.5) -> Energy:
    """A 2-d banana: ``x1 ~ N(0, scale^2)``, ``x2 | x1 ~ N(curvature (x1^2 - scale^2), 1)``.

    ``log Z = log(2 pi scale)``; ``E[x] = 0``; ``Var[x1] = scale^2``,
    ``Var[x2] = 1 + 2 curvature^2 scale^4``.
    """

    def energy(x):
        x1, x2 = x[0], x[1]
        return 0.5 * (x1 / scale) ** 2 + 0.5 * (x2 - curvature * (x1**2 - scale**2)) ** 2

    target = Energy(_named(energy, "banana"), init=jnp.zeros(2))
    target.log_z = math.log(2 * math.pi * scale)
    target.mean = jnp.zeros(2)
    target.var = jnp.array([scale**2, 1 + 2 * curvature**2 * scale**4])
    return target


def funnel(dim: int = 10, scale: float = 3.0) -> Energy:
    """Neal's funnel: ``v ~ N(0, scale^2)``, ``x_i | v ~ N(0, exp(v))``, ``i < dim``.

    Position ``(dim,)`` holds ``(v, x_1, ..., x_{dim-1})``; the energy keeps
    the ``v``-dependent normaliser of ``x | v``, so ``v``'s marginal is exact.
    ``log Z = log(scale sqrt(2 pi)) + (dim - 1)/2 log(2 pi)``; ``E[v] = 0``,
    ``Var[v] = scale^2``.
    """

    def energy(z):
        v, x = z[0], z[1:]
        return (0.5 * (v / scale) ** 2 + 0.5 * jnp.sum(x**2) * jnp.exp(-v)
                + 0.5 * (dim - 1) * v)

    target = Energy(_named(energy, "funnel"), init=jnp.zeros(dim))
    target.log_z = (math.log(scale * math.sqrt(2 * math.pi))
                    + 0.5 * (dim - 1) * math.log(2 * math.pi))
    return target


def gaussian(sds) -> Energy:
    """A diagonal Gaussian with standard deviations ``sds`` ``(dim,)``, mean 0.

    ``gaussian(jnp.logspace(-2, 0, 100))`` is the benchmark's ill-conditioned
    100-d target. ``log Z = sum(log(sd sqrt(2 pi)))``.
    """
    sds = jnp.asarray(sds, jnp.result_type(float))

    def energy(x):
        return 0.5 * jnp.sum((x / sds) ** 2)

    target = Energy(_named(energy, f"gaussian{sds.shape[0]}d"), init=jnp.zeros(sds.shape[0]))
    target.log_z = float(jnp.sum(jnp.log(sds * math.sqrt(2 * math.pi))))
    target.mean = jnp.zeros_like(sds)
    target.var = sds**2
    return target


def mixture(dim: int = 10, separation: float = 3.0, weight: float = 0.3) -> Energy:
    """Two unit-covariance Gaussians at ``-separation`` (weight ``weight``) and ``+separation``.

    Centres are ``±separation`` in every coordinate.

    The energy is ``-log`` of the normalised density, so ``log Z = 0``;
    ``E[x_i] = separation * (1 - 2 weight)``.
    """
    log_w = jnp.log(jnp.array([weight, 1.0 - weight]))
    centres = jnp.stack([-separation * jnp.ones(dim), separation * jnp.ones(dim)])
    log_norm = 0.5 * dim * math.log(2 * math.pi)

    def energy(x):
        comps = -0.5 * jnp.sum((x - centres) ** 2, axis=1) - log_norm
        return -logsumexp(comps + log_w)

    target = Energy(_named(energy, "mixture"), init=jnp.zeros(dim))
    target.log_z = 0.0
    target.mean = separation * (1 - 2 * weight) * jnp.ones(dim)
    return target
