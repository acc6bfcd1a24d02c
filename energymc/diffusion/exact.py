"""A Gaussian mixture noised in closed form: a noise-conditional energy with no training.

If ``x_0`` is a mixture of ``N(mu_k, C_k)`` with weights ``w_k``, the noised
``x = alpha x_0 + sigma eps`` is the mixture of ``N(alpha mu_k, alpha^2 C_k +
sigma^2 I)``. Its energy ``E(x, sigma) = -log p_sigma(x)`` is exactly what a
diffusion model should learn, so it pins the samplers and the likelihood
without any training, and it is the truth the learned model is scored against.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from energymc.diffusion.schedules import Schedule, as_schedule
from energymc.errors import EnergyError

__all__ = ["GaussianMixture", "gaussian_mixture"]


class GaussianMixture(eqx.Module):
    """A Gaussian mixture and its noised energies; build it with :func:`gaussian_mixture`.

    Calling it, ``m(x, sigma)``, gives ``-log p_sigma(x)`` of ONE point ``x``
    ``(d,)``: the mixture noised to level ``sigma`` by ``schedule`` (a
    normalised density, so ``-E`` is an exact log-density).

    Attributes
    ----------
    log_weights
        ``(K,)`` log mixture weights (normalised).
    means
        ``(K, d)``.
    covs
        ``(K, d, d)``.
    schedule
        The :class:`Schedule` that says how much the data shrinks at a noise level
        (VE: not at all; VP: by ``sqrt(1 - sigma^2)``).
    """

    log_weights: jax.Array
    means: jax.Array
    covs: jax.Array
    schedule: Schedule = eqx.field(static=True)

    def __call__(self, x, sigma):
        return -self.noised_logpdf(x, sigma)

    def noised_logpdf(self, x, sigma):
        """``log p_sigma(x)`` of ONE point ``x`` ``(d,)``."""
        alpha = self.schedule.alpha_of_sigma(jnp.asarray(sigma, x.dtype))
        d = x.shape[-1]
        cov = alpha**2 * self.covs + sigma**2 * jnp.eye(d, dtype=x.dtype)
        return _mixture_logpdf(x, self.log_weights, alpha * self.means, cov)

    def logpdf(self, x):
        """``log p(x)`` of the un-noised mixture, ONE point ``x`` ``(d,)``."""
        return _mixture_logpdf(x, self.log_weights, self.means, self.covs)

    def sample(self, key, n: int):
        """``(n, d)`` independent draws from the un-noised mixture."""
        k_c, k_z = jax.random.split(key)
        comp = jax.random.categorical(k_c, self.log_weights, shape=(n,))
        chol = jnp.linalg.cholesky(self.covs)
        z = jax.random.normal(k_z, (n, self.means.shape[1]), self.means.dtype)
        return self.means[comp] + jnp.einsum("nij,nj->ni", chol[comp], z)


def _mixture_logpdf(x, log_weights, means, covs):
    d = x.shape[-1]
    chol = jnp.linalg.cholesky(covs)
    diff = x[None, :] - means
    sol = jax.scipy.linalg.solve_triangular(chol, diff[..., None], lower=True)[..., 0]
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
    comp = -0.5 * (jnp.sum(sol**2, -1) + logdet + d * jnp.log(2 * jnp.pi))
    return jax.scipy.special.logsumexp(log_weights + comp)


def gaussian_mixture(weights, means, covs, schedule="ve") -> GaussianMixture:
    """A :class:`GaussianMixture` from weights ``(K,)``, means ``(K, d)`` and covariances.

    Parameters
    ----------
    weights
        ``(K,)`` positive weights (normalised here).
    means
        ``(K, d)`` component means.
    covs
        ``(K, d, d)`` covariances, ``(K,)`` standard deviations of isotropic
        components, or one standard deviation shared by all.
    schedule
        ``"ve"``, ``"vp"`` or a :class:`Schedule`.
    """
    schedule = as_schedule(schedule)
    w = np.asarray(weights, float)
    mu = np.atleast_2d(np.asarray(means, float))
    k, d = mu.shape
    if w.shape != (k,) or np.any(w <= 0) or not np.all(np.isfinite(w)):
        raise EnergyError(f"weights must be {k} positive numbers, one per mean; got shape "
                          f"{w.shape}.")
    c = np.asarray(covs, float)
    if c.ndim == 0:
        c = np.broadcast_to(c, (k,))
    if c.ndim == 1:
        if c.shape != (k,) or np.any(c <= 0):
            raise EnergyError(f"covs given as standard deviations must be {k} positive numbers.")
        c = c[:, None, None] ** 2 * np.eye(d)
    if c.shape != (k, d, d):
        raise EnergyError(f"covs must be (K, d, d) = {(k, d, d)}, (K,) or a scalar; got {c.shape}.")
    if np.any(np.linalg.eigvalsh(c) <= 0):
        raise EnergyError("every covariance must be positive definite.")
    dtype = jnp.result_type(float)
    return GaussianMixture(jnp.asarray(np.log(w / w.sum()), dtype), jnp.asarray(mu, dtype),
                           jnp.asarray(c, dtype), schedule)


def with_schedule(mixture: GaussianMixture, schedule) -> GaussianMixture:
    """The same mixture noised by another schedule."""
    return dataclasses.replace(mixture, schedule=as_schedule(schedule))
