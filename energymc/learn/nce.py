"""Noise-contrastive estimation (Gutmann & Hyvarinen 2010, 2012).

A logistic classifier tells data from noise with the log-odds
``G(x) = log p_model(x) - log(nu p_noise(x))``, where
``log p_model(x) = -E_theta(x) - log_z`` and ``nu`` noise points are drawn per
data point. ``log_z`` is a free parameter: at the optimum the model is
normalised, so NCE returns a normalised density and its log-partition.

``log_z`` starts at ``init_log_z`` (0 by default), or with
``init_log_z="data"`` where the classifier is balanced on the data (the
median of ``G`` over the training points is 0). A fixed start can sit tens of
nats from the initial model's level on the data; the optimiser then closes
the gap through the energy's scale (many parameters, each moving a step per
update) faster than through ``log_z`` (one), and the model can land in a flat
region far from the optimum. The balanced start removes that gap, but it did
not help on every zoo task, so it is not the default
(``benchmarks/RESULTS.md``, "NCE's stall").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from energymc.errors import EnergyError, OptionError
from energymc.learn._checks import check_data, check_positive
from energymc.learn._learner import LearnerBase
from energymc.learn._state import LearnState

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
        Initial value of the ``log_z`` parameter, or ``"data"``: chosen in
        :meth:`init` so that the classifier starts balanced,
        ``median_i [-E(x_i) - log(nu p_noise(x_i))]`` over (up to
        ``1024`` of) the training points at the initial parameters. It helps
        when the initial energy is far from the data in level and scale but
        not in location (see ``docs/learning.md``).

    Notes
    -----
    Loss (per data point): ``-mean_data log sigmoid(G) - nu mean_noise log
    sigmoid(-G)``. ``result.log_z`` is the learned log-normaliser of
    ``exp(-E)``; ``history["accuracy"]`` is the classifier's accuracy on the
    batch (about 0.5 when the model matches data and noise is close to both).
    """

    _name = "NCE"

    def __init__(self, energy_fn: Callable, optim, noise: Any = None, noise_ratio: float = 1.0,
                 init_log_z: float | str = 0.0):
        super().__init__(energy_fn, optim)
        if noise is not None and not all(hasattr(noise, m) for m in ("sample", "log_prob")):
            raise OptionError("noise must be a NumPyro distribution (with sample and log_prob), "
                              "or None for a Gaussian fitted to the data.")
        self.noise = noise
        self.noise_ratio = check_positive("noise_ratio", noise_ratio)
        if not _is_data(init_log_z):
            try:
                init_log_z = float(init_log_z)
            except (TypeError, ValueError):
                raise OptionError(f"init_log_z must be a number or 'data' (chosen from the "
                                  f"data); got {init_log_z!r}.") from None
            if not math.isfinite(init_log_z):
                raise OptionError(f"init_log_z must be finite, or 'data' (chosen from the "
                                  f"data); got {init_log_z!r}.")
        self.init_log_z = init_log_z

    # ------------------------------------------------------------------ params
    def _add_internal(self, internal, data):
        # With init_log_z="data" the value is replaced in init(), once the noise is fitted.
        start = 0.0 if _is_data(self.init_log_z) else self.init_log_z
        return {"energy": internal, "log_z": jnp.asarray(start, data.dtype)}

    def init(self, seed: Any = None, data=None, init_params: Any = None, *,
             batch_size: int | None = None, key: Any = None) -> LearnState:
        """Initial :class:`LearnState`; see :meth:`LearnerBase.init`.

        With ``init_log_z="data"`` the ``log_z`` parameter starts at the median
        over the training points of ``-E(x) - log(nu p_noise(x))``, so that the
        classifier's log-odds ``G`` start centred on the data.
        """
        state = super().init(seed, data, init_params, batch_size=batch_size, key=key)
        if not _is_data(self.init_log_z):
            return state
        internal = self.optim.get_params(state.optim_state)
        data = check_data(data)
        b = min(data.shape[0], 128) if batch_size is None else batch_size
        log_z = self._balanced_log_z(internal, state.extra, data, b)
        return state._replace(optim_state=self.optim.init({**internal, "log_z": log_z}))

    def _balanced_log_z(self, internal, extra, data, batch_size: int) -> jax.Array:
        """``log_z`` at which the median log-odds over (up to 1024) data points is 0."""
        n = data.shape[0]
        # An evenly spaced subset: the data may be sorted, and a large energy
        # (a network on images) need not be evaluated on every point.
        points = data[:: max(1, -(-n // 1024))]
        # The noise ratio actually used with this batch size (as in _loss).
        log_nu = jnp.log(max(1, int(round(self.noise_ratio * batch_size))) / batch_size)
        e = jax.vmap(self._spec.energy, in_axes=(None, 0))(internal["energy"], points)
        a = -e - self._data_logp(extra, points) - log_nu
        log_z = jnp.nanmedian(jnp.where(jnp.isfinite(a), a, jnp.nan)).astype(data.dtype)
        if not isinstance(log_z, jax.core.Tracer) and not bool(jnp.isfinite(log_z)):
            raise EnergyError(
                "could not choose NCE's initial log_z: the energy or the noise's log-density "
                "is not finite on any data point at the initial parameters. Check the energy "
                "there, or pass init_log_z= a number.")
        return log_z

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



def _is_data(value) -> bool:
    """Whether ``init_log_z`` asks for the balanced start chosen from the data."""
    return isinstance(value, str) and value == "data"


def _gauss_logp(extra, z):
    """log N(z; loc, L L^T) for ``z`` ``(m, d)``, with ``L^-1`` precomputed.

    Written out rather than through ``numpyro``'s ``MultivariateNormal``, whose
    per-point triangular solves made the default-noise update 7x slower on CPU.
    """
    d = extra["loc"].shape[0]
    white = (z - extra["loc"]) @ extra["inv_tril"].T
    return (-0.5 * jnp.sum(white**2, axis=-1) - jnp.sum(jnp.log(jnp.diag(extra["scale_tril"])))
            - 0.5 * d * jnp.log(2 * jnp.pi))
