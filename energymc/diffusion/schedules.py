"""Noise schedules: how a data point is noised over diffusion time ``t``.

A schedule says, for ``t`` in ``[t_min, 1]``, that the noised point is
``x_t = alpha(t) x_0 + sigma(t) eps`` with ``eps ~ N(0, I)``, and gives the
forward SDE ``dx = f(t) x dt + g(t) dW`` that produces it (Song et al. 2021):

* variance exploding (:func:`ve`): ``alpha = 1``, ``sigma`` geometric from
  ``sigma_min`` to ``sigma_max``; ``f = 0``, ``g^2 = d sigma^2 / dt``.
* variance preserving (:func:`vp`): ``beta(t)`` linear from ``beta_min`` to
  ``beta_max``, ``alpha = exp(-1/2 int_0^t beta)``, ``sigma^2 = 1 - alpha^2``;
  ``f = -beta / 2``, ``g^2 = beta``.

The energy is conditioned on the noise level ``sigma(t)``, not on ``t``: both
schedules make ``sigma`` increase with ``t``, so ``E(x, sigma)`` is the energy of
the noised data at the time with that ``sigma``, and one model can be read at
any level without knowing the clock it was trained with.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from energymc.errors import OptionError

__all__ = ["Schedule", "ve", "vp"]


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A noise schedule; build it with :func:`ve` or :func:`vp`.

    Hashable (it is a static argument of compiled samplers). All methods take
    and return JAX scalars or arrays and may be called under ``jit``.

    Attributes
    ----------
    kind
        ``"ve"`` or ``"vp"``.
    sigma_min, sigma_max
        VE: the noise levels at ``t = 0`` and ``t = 1``.
    beta_min, beta_max
        VP: the rate ``beta(t)`` at ``t = 0`` and ``t = 1``.
    t_min
        The earliest time used (VE: 0; VP: a small positive time, since
        ``sigma(0) = 0`` there and the score is singular).
    """

    kind: str
    sigma_min: float = 0.01
    sigma_max: float = 10.0
    beta_min: float = 0.1
    beta_max: float = 20.0
    t_min: float = 0.0

    # ------------------------------------------------------------------ clock
    def _log_alpha(self, t):
        return -0.5 * (self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2)

    def alpha(self, t):
        """Scale of the data at time ``t``."""
        if self.kind == "ve":
            return jnp.ones_like(jnp.asarray(t, jnp.result_type(float)))
        return jnp.exp(self._log_alpha(t))

    def sigma(self, t):
        """Noise level at time ``t``."""
        if self.kind == "ve":
            return self.sigma_min * (self.sigma_max / self.sigma_min) ** t
        # -expm1 keeps sigma accurate at small t, where 1 - alpha^2 cancels.
        return jnp.sqrt(-jnp.expm1(2.0 * self._log_alpha(t)))

    def drift(self, t):
        """``f(t)`` of the forward SDE ``dx = f(t) x dt + g(t) dW``."""
        if self.kind == "ve":
            return jnp.zeros_like(jnp.asarray(t, jnp.result_type(float)))
        return -0.5 * self._beta(t)

    def g2(self, t):
        """``g(t)^2`` of the forward SDE."""
        if self.kind == "ve":
            return 2.0 * self.sigma(t) ** 2 * math.log(self.sigma_max / self.sigma_min)
        return self._beta(t)

    def _beta(self, t):
        return self.beta_min + (self.beta_max - self.beta_min) * t

    def alpha_of_sigma(self, sigma):
        """The data scale at the time whose noise level is ``sigma``."""
        if self.kind == "ve":
            return jnp.ones_like(sigma)
        return jnp.sqrt(jnp.clip(1.0 - sigma**2, 0.0, 1.0))

    def _sigma_py(self, t: float) -> float:
        """``sigma(t)`` in plain Python (safe to call while JAX traces)."""
        if self.kind == "ve":
            return self.sigma_min * (self.sigma_max / self.sigma_min) ** t
        log_alpha = -0.5 * (self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2)
        return math.sqrt(-math.expm1(2.0 * log_alpha))

    @property
    def sigma_start(self) -> float:
        """The smallest noise level the schedule reaches (at ``t_min``)."""
        return self._sigma_py(self.t_min)

    @property
    def sigma_end(self) -> float:
        """The largest noise level (at ``t = 1``)."""
        return self._sigma_py(1.0)

    # ------------------------------------------------------------------ prior
    def prior_std(self) -> float:
        """Standard deviation of the Gaussian that stands in for ``p_1``."""
        return self.sigma_max if self.kind == "ve" else 1.0

    def prior_logpdf(self, x):
        """``log N(x; 0, prior_std^2 I)`` of ONE point ``x`` (any shape)."""
        s = self.prior_std()
        return -0.5 * jnp.sum(jnp.square(x)) / s**2 - x.size * (math.log(s)
                                                                 + 0.5 * math.log(2 * math.pi))

    def prior_sample(self, key, shape, dtype=None):
        """Draws ``shape`` from the prior."""
        dtype = jnp.result_type(float) if dtype is None else dtype
        return self.prior_std() * jax.random.normal(key, shape, dtype)

    def times(self, num: int):
        """``num + 1`` times from 1 down to ``t_min`` (a reverse-time grid)."""
        return jnp.linspace(1.0, self.t_min, num + 1)


def ve(sigma_min: float = 0.01, sigma_max: float = 10.0) -> Schedule:
    """Variance-exploding schedule, ``sigma(t) = sigma_min (sigma_max/sigma_min)^t``.

    ``sigma_max`` should be about the largest distance between two data
    points (Song & Ermon 2020), so that ``N(0, sigma_max^2)`` stands in for
    the noised data at ``t = 1``; ``sigma_min`` well below the data's finest
    scale, so that the model at ``sigma_min`` is the data's density.

    Discrete data dequantised into cells (``emc.learn.Diffusion(...,
    dequantize=L)``) are the exception: their finest scale is the cell
    width ``scale / L``, and ``sigma_min`` below it lets the model learn the
    training cells' hard edges, so that held-out data cost many bits. Put
    ``sigma_min`` above the cell width (on 8x8 digits, cells 1/16 wide,
    ``sigma_min=0.1`` gave 2.92 held-out bits/dim, ``0.01`` gave 45, worse
    than uniform's 4.09; see ``docs/diffusion.md``).
    """
    for name, v in (("sigma_min", sigma_min), ("sigma_max", sigma_max)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise OptionError(f"{name} must be a positive number; got {v!r}.")
    if not sigma_min < sigma_max:
        raise OptionError(f"sigma_min={sigma_min} must be below sigma_max={sigma_max}.")
    return Schedule("ve", sigma_min=float(sigma_min), sigma_max=float(sigma_max), t_min=0.0)


def vp(beta_min: float = 0.1, beta_max: float = 20.0, t_min: float = 1e-3) -> Schedule:
    """Variance-preserving schedule (DDPM's continuous limit), ``beta`` linear in ``t``.

    Defaults as Song et al. (2021); at ``t_min = 1e-3`` the noise level is
    about 0.01, for data scaled to unit variance.
    """
    for name, v in (("beta_min", beta_min), ("beta_max", beta_max), ("t_min", t_min)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise OptionError(f"{name} must be a positive number; got {v!r}.")
    if not beta_min <= beta_max:
        raise OptionError(f"beta_min={beta_min} must not exceed beta_max={beta_max}.")
    if not t_min < 1:
        raise OptionError(f"t_min must be below 1; got {t_min}.")
    return Schedule("vp", beta_min=float(beta_min), beta_max=float(beta_max),
                    t_min=float(t_min))


def as_schedule(schedule) -> Schedule:
    """A :class:`Schedule` from itself or the names ``"ve"`` / ``"vp"`` (defaults)."""
    if isinstance(schedule, Schedule):
        return schedule
    if schedule == "ve":
        return ve()
    if schedule == "vp":
        return vp()
    raise OptionError(f"schedule must be 've', 'vp' or a Schedule from emc.diffusion.ve(...) / "
                      f"vp(...); got {schedule!r}.")
