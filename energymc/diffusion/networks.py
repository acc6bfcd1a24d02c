"""A default noise-conditional energy network for ``d``-dimensional data.

``E(x, sigma) = 1/2 ||h||^2 + c(sigma) F(h, log sigma)`` with ``h = (x - alpha
m) / sqrt(alpha^2 v + sigma^2)`` the point whitened by the noised data's mean
``m`` and variance ``v`` (per coordinate), ``F`` an MLP with smooth (SiLU)
activations -- smooth so that the Hessian trace of the likelihood is well
defined -- and ``c(sigma) = sqrt(alpha^2 v + sigma^2) / sigma``.

* The quadratic term is the exact energy of Gaussian data at every level, so
  the network starts (its last layer is zero) at the Gaussian fit and only
  learns the departure from it.
* ``c(sigma)`` grows as ``1 / sigma`` at small noise, where the noised density
  has sharp features; without it the MLP would need weights ``(scale /
  sigma)`` times larger there (the energy form of Song & Ermon's ``s / sigma``).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from energymc.diffusion.schedules import Schedule, as_schedule
from energymc.errors import OptionError

__all__ = ["MLPEnergy", "mlp_energy"]


class MLPEnergy(eqx.Module):
    """The default energy network; build it with :func:`mlp_energy`.

    Call ``m(x, sigma)`` on ONE point ``x`` ``(d,)``; returns a scalar.
    """

    mlp: eqx.nn.MLP
    mean: jax.Array
    var: jax.Array
    schedule: Schedule = eqx.field(static=True)
    blind: bool = eqx.field(static=True, default=False)

    def __call__(self, x, sigma):
        sigma = jnp.asarray(sigma, x.dtype)
        mean, var = jax.lax.stop_gradient(self.mean), jax.lax.stop_gradient(self.var)
        alpha = self.schedule.alpha_of_sigma(sigma)
        if self.blind:
            # Negative control: the same network with sigma held at the
            # smallest level, so one energy serves every level.
            sigma = jnp.asarray(self.schedule.sigma_start, x.dtype)
            alpha = self.schedule.alpha_of_sigma(sigma)
        scale2 = alpha**2 * var + sigma**2
        h = (x.reshape(-1) - alpha * mean) / jnp.sqrt(scale2)
        c = jnp.log(sigma) / 4.0
        freqs = jnp.asarray([1.0, 2.0, 4.0, 8.0], x.dtype)
        emb = jnp.concatenate([c[None], jnp.sin(freqs * c), jnp.cos(freqs * c)])
        out = self.mlp(jnp.concatenate([h, emb]))[0]
        return 0.5 * jnp.sum(h**2) + jnp.sqrt(scale2).mean() / sigma * out


def mlp_energy(dim: int, key, *, schedule="ve", data=None, width: int = 128, depth: int = 3,
               sigma_blind: bool = False) -> MLPEnergy:
    """A default noise-conditional energy for ``dim``-dimensional points.

    Parameters
    ----------
    dim
        Number of coordinates of a point.
    key
        A ``jax.random.key`` for the initial weights.
    schedule
        The schedule it will be trained with (``"ve"``, ``"vp"`` or a
        :class:`~energymc.diffusion.Schedule`); it says how the data shrinks
        with the noise.
    data
        Optional ``(n, dim)`` training points: their mean and variance set
        the whitening (default 0 and 1).
    width, depth
        Hidden units per layer and hidden layers of the MLP.
    sigma_blind
        Ignore ``sigma`` (use the smallest level's energy at every level) --
        only as a negative control.

    Returns
    -------
    MLPEnergy
        An Equinox module; pass it to ``emc.learn.Diffusion``.
    """
    from energymc.learn._checks import check_int

    dim = check_int("dim", dim, 1)
    width = check_int("width", width, 1)
    depth = check_int("depth", depth, 1)
    schedule = as_schedule(schedule)
    dtype = jnp.result_type(float)
    if data is None:
        mean, var = np.zeros(dim), np.ones(dim)
    else:
        flat = np.asarray(data, float).reshape(len(data), -1)
        if flat.shape[1] != dim:
            raise OptionError(f"data has {flat.shape[1]} coordinates per point; dim={dim}.")
        mean, var = flat.mean(0), np.maximum(flat.var(0), 1e-8)
    mlp = eqx.nn.MLP(dim + 9, 1, width, depth, activation=jax.nn.silu, key=key)
    # Zero last layer: the network starts as the Gaussian fit of the data.
    last = mlp.layers[-1]
    mlp = eqx.tree_at(lambda m: (m.layers[-1].weight, m.layers[-1].bias), mlp,
                      (jnp.zeros_like(last.weight), jnp.zeros_like(last.bias)))
    return MLPEnergy(mlp, jnp.asarray(mean, dtype), jnp.asarray(var, dtype), schedule,
                     bool(sigma_blind))
