"""Noise-contrastive estimation (Gutmann & Hyvarinen 2010, 2012).

A logistic classifier tells data from noise with the log-odds
``G(x) = log p_model(x) - log(nu p_noise(x))``, where
``log p_model(x) = -E_theta(x) - log_z`` and ``nu`` noise points are drawn per
data point. ``log_z`` is a free parameter: at the optimum the model is
normalised, so NCE returns a normalised density and its log-partition.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from energymc.errors import EnergyError, OptionError
from energymc.learn._common import LearnerBase, check_positive

__all__ = ["NCE"]


class NCE(LearnerBase):
    """Noise-contrastive estimation of ``energy_fn(params, x)`` and its ``log_z``.

    Parameters
    ----------
    energy_fn
        ``energy_fn(params, x) -> scalar`` for ONE point ``x``; or a
        NumPyro-style ``energy_fn(x)`` with ``numpyro.param`` sites.
    optim
        A ``numpyro.optim`` optimiser.
    noise
        A NumPyro distribution whose ``batch_shape + event_shape`` is the
        data's point shape (e.g. ``dist.Normal(0, 3).expand([d]).to_event(1)``).
        Default: a Gaussian with the data's mean and covariance, fitted in
        :meth:`init` (Gutmann & Hyvarinen advise noise close to the data).
    noise_ratio
        ``nu``, noise points per data point (at least one noise point per batch).
    init_log_z
        Initial value of the ``log_z`` parameter.

    Notes
    -----
    Loss (per data point): ``-mean_data log sigmoid(G) - nu mean_noise log
    sigmoid(-G)``. ``result.log_z`` is the learned log-normaliser of
    ``exp(-E)``; ``history["accuracy"]`` is the classifier's accuracy on the
    batch (about 0.5 when the model matches data and noise is close to both).
    """

    _name = "NCE"

    def __init__(self, energy_fn: Callable, optim, noise: Any = None, noise_ratio: float = 1.0,
                 init_log_z: float = 0.0):
        super().__init__(energy_fn, optim)
        if noise is not None and not all(hasattr(noise, m) for m in ("sample", "log_prob")):
            raise OptionError("noise must be a NumPyro distribution (with sample and log_prob), "
                              "or None for a Gaussian fitted to the data.")
        self.noise = noise
        self.noise_ratio = check_positive("noise_ratio", noise_ratio)
        self.init_log_z = float(init_log_z)

    # ------------------------------------------------------------------ params
    def _add_internal(self, internal, data):
        return {"energy": internal, "log_z": jnp.asarray(self.init_log_z, data.dtype)}

    def _model_params(self, internal):
        return internal["energy"]

    def _result_log_z(self, state):
        return float(self.optim.get_params(state.optim_state)["log_z"])

    def get_log_z(self, state) -> jax.Array:
        """The current ``log_z`` parameter."""
        return self.optim.get_params(state.optim_state)["log_z"]

    # ------------------------------------------------------------------- noise
    def _extra_init(self, key, data, internal, batch_size):
        event = tuple(data.shape[1:])
        if self.noise is not None:
            shape = tuple(self.noise.batch_shape) + tuple(self.noise.event_shape)
            if shape != event:
                raise EnergyError(
                    f"noise has batch+event shape {shape}; it must equal the data's point "
                    f"shape {event}. E.g. dist.Normal(0., 1.).expand({list(event)})"
                    f".to_event({len(event)})."
                )
            return {}
        flat = data.reshape(data.shape[0], -1)
        d = flat.shape[1]
        if flat.shape[0] < 2:
            raise EnergyError("fitting the default Gaussian noise needs at least 2 data points; "
                              "pass noise= a NumPyro distribution.")
        loc = jnp.mean(flat, 0)
        cov = jnp.atleast_2d(jnp.cov(flat, rowvar=False))
        # A small ridge keeps the Cholesky factor finite for degenerate data
        # (e.g. constant pixels), relative to the average variance.
        ridge = 1e-3 * jnp.trace(cov) / d + 1e-6
        chol = jnp.linalg.cholesky(cov + ridge * jnp.eye(d))
        if not isinstance(chol, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(chol))):
            raise EnergyError("could not fit a Gaussian to the data for the NCE noise; pass "
                              "noise= a NumPyro distribution.")
        # The inverse factor once here: XLA's CPU triangular solve on a batch of
        # points costs more than the whole rest of an update.
        inv = jax.scipy.linalg.solve_triangular(chol, jnp.eye(d, dtype=chol.dtype), lower=True)
        return {"loc": loc, "scale_tril": chol, "inv_tril": inv}

    def _noise_sample_logp(self, key, extra, num, event):
        if self.noise is not None:
            x = jnp.asarray(self.noise.sample(key, (num,)), dtype=jnp.result_type(float))
            logp = self.noise.log_prob(x)
            logp = logp.reshape(num, -1).sum(-1) if logp.ndim > 1 else logp
            return x, logp
        eps = jax.random.normal(key, (num, extra["loc"].shape[0]), extra["loc"].dtype)
        z = extra["loc"] + eps @ extra["scale_tril"].T
        return z.reshape((num, *event)), _gauss_logp(extra, z)

    def _data_logp(self, extra, x):
        if self.noise is not None:
            logp = self.noise.log_prob(x)
            return logp.reshape(x.shape[0], -1).sum(-1) if logp.ndim > 1 else logp
        return _gauss_logp(extra, x.reshape(x.shape[0], -1))

    # -------------------------------------------------------------------- loss
    def _loss(self, internal, extra, batch, key):
        b = batch.shape[0]
        num_noise = max(1, int(round(self.noise_ratio * b)))
        nu = num_noise / b  # the ratio actually used in this batch
        noise_x, noise_logp = self._noise_sample_logp(key, extra, num_noise, batch.shape[1:])
        energy = jax.vmap(self._spec.energy, in_axes=(None, 0))
        e_data = energy(internal["energy"], batch)
        e_noise = energy(internal["energy"], noise_x)
        log_z = internal["log_z"]
        log_nu = jnp.log(nu)
        g_data = -e_data - log_z - log_nu - self._data_logp(extra, batch)
        g_noise = -e_noise - log_z - log_nu - noise_logp
        loss = -(jnp.mean(jax.nn.log_sigmoid(g_data))
                 + nu * jnp.mean(jax.nn.log_sigmoid(-g_noise)))
        acc = (jnp.sum(g_data > 0) + jnp.sum(g_noise < 0)) / (b + num_noise)
        info = {"energy_data": jnp.mean(e_data), "energy_noise": jnp.mean(e_noise),
                "accuracy": acc.astype(batch.dtype), "log_z": log_z}
        return loss, (extra, info)



def _gauss_logp(extra, z):
    """log N(z; loc, L L^T) for ``z`` ``(m, d)``, with ``L^-1`` precomputed.

    Written out rather than through ``numpyro``'s ``MultivariateNormal``, whose
    per-point triangular solves made the default-noise update 7x slower on CPU.
    """
    d = extra["loc"].shape[0]
    white = (z - extra["loc"]) @ extra["inv_tril"].T
    return (-0.5 * jnp.sum(white**2, axis=-1) - jnp.sum(jnp.log(jnp.diag(extra["scale_tril"])))
            - 0.5 * d * jnp.log(2 * jnp.pi))
