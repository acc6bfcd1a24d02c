"""Diffusion training: denoising score matching over a continuous range of noise levels.

The model is a noise-conditional energy ``E_theta(x, sigma)``; its score
``-grad_x E`` is fitted to the noised data at every level of a schedule
(:func:`energymc.diffusion.ve` or :func:`~energymc.diffusion.vp`): a time
``t ~ U(t_min, 1)`` per point, ``x_t = alpha(t) x + sigma(t) eps``, and the loss

    lambda(t) / 2 ||sigma(t) s_theta(x_t, sigma(t)) + eps||^2,

whose minimiser is the score of the noised data (Vincent 2011; Song et al.
2021). ``weighting="sigma2"`` (``lambda = 1``, the ``sigma^2`` weighting of
Song & Ermon 2019) makes every level contribute alike; ``"likelihood"``
(``lambda = g(t)^2 / sigma(t)^2``) makes the loss a bound on the KL divergence
from the data to the model's probability-flow density (Song, Durkan, Murray &
Ermon 2021). For VE the two are the same up to a constant factor.

Unlike :class:`energymc.learn.DSM` with ``sigmas=`` (a fixed ladder), levels
are continuous, so the model can be read at any level, as the probability
flow ODE of :func:`energymc.diffusion.log_likelihood` needs.

Discrete data (``dequantize=L``): the learner takes the integer levels ``k``
and each update draws fresh uniform noise ``u`` for its batch, from the
update's key, so the model sees ``(k + u) scale / L + shift`` with a new
``u`` every time, never a fixed dequantised copy it could memorise; the
learner's ``log_likelihood`` scores the same map, so the bound matches the
training by construction.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from energymc._util import check_bool
from energymc.diffusion._dequantize import check_dequantize, dequantise
from energymc.diffusion.schedules import Schedule, as_schedule
from energymc.errors import EnergyError, OptionError
from energymc.learn._checks import check_levels
from energymc.learn._learner import LearnerBase

__all__ = ["Diffusion"]


class Diffusion(LearnerBase):
    """Noise-conditional energy trained by denoising score matching on a schedule.

    Parameters
    ----------
    energy
        An Equinox module ``m(x, sigma) -> scalar`` (e.g.
        :func:`energymc.diffusion.mlp_energy`; its arrays are the parameters,
        ``init_params`` may be omitted and ``result.params`` is the trained
        module), or ``energy_fn(params, x, sigma)`` for ONE point ``x``, or a
        NumPyro-style ``energy_fn(x, sigma)`` with ``numpyro.param`` sites.
    optim
        A ``numpyro.optim`` optimiser.
    schedule
        ``"ve"`` (default), ``"vp"`` or a :class:`~energymc.diffusion.Schedule`.
    weighting
        ``"sigma2"`` (default) or ``"likelihood"``.
    antithetic
        Noise every point with ``eps`` and ``-eps`` (same expected loss, lower
        gradient variance at small ``sigma``; twice the score evaluations).
    ema
        Parameter averaging decay (e.g. 0.999); ``result.params`` is then the
        average, which usually scores a better likelihood.
    dequantize
        ``L`` for discrete data: the data (and every batch) must hold
        integers in ``0..L-1`` (e.g. pixel counts), and each update feeds the
        model ``(k + u) * scale / L + shift`` with fresh ``u ~ U[0, 1)^d``.
        :meth:`log_likelihood` then defaults to the same map, giving the bound
        ``log P(k) >= E_u log p(...) + d log(scale / L)``. Choose the
        schedule's ``sigma_min`` above the cell width ``scale / L``: far below
        it the model learns the cells' hard edges, and held-out data with a
        level rarely seen at some coordinate cost many bits (see
        ``docs/diffusion.md``). ``None`` (default): continuous data as given.
    scale, shift
        The affine map above (only with ``dequantize``). E.g. 17-level pixels
        ``k = 0..16`` onto ``[0, 17/16)``: ``dequantize=17, scale=17/16``.
    """

    _name = "Diffusion"
    _energy_extra_args = 1

    def __init__(self, energy, optim, schedule="ve", *, weighting: str = "sigma2",
                 antithetic: bool = True, ema: float | None = None,
                 dequantize: int | None = None, scale: float = 1.0, shift: float = 0.0):
        import equinox as eqx

        self.schedule: Schedule = as_schedule(schedule)
        self.dequantize, self.scale, self.shift = check_dequantize(dequantize, scale, shift)
        if weighting not in ("sigma2", "likelihood"):
            raise OptionError(f"weighting must be 'sigma2' or 'likelihood'; got {weighting!r}.")
        check_bool("antithetic", antithetic)
        self.weighting = weighting
        self.antithetic = antithetic
        self._static = None
        self._module_params = None
        if isinstance(energy, eqx.Module):
            params, static = eqx.partition(energy, eqx.is_inexact_array)
            self._static = static
            self._module_params = params
            energy_fn = _ModuleEnergy(static)
        elif callable(energy):
            energy_fn = energy
            from energymc._util import n_positional

            n = n_positional(energy_fn)
            if n is not None and n < 2:
                raise EnergyError("the energy is noise-conditional: write energy_fn(params, x, "
                                  "sigma) (or energy_fn(x, sigma) with numpyro.param sites), "
                                  "or pass an Equinox module m(x, sigma).")
        else:
            raise EnergyError(f"energy must be an Equinox module m(x, sigma) or a callable "
                              f"energy_fn(params, x, sigma); got {type(energy).__name__}.")
        super().__init__(energy_fn, optim, ema=ema)
        if self._static is not None:
            self._numpyro_style = False

    # ------------------------------------------------- discrete data checks
    def init(self, seed=None, data=None, init_params=None, **kwargs):
        """:meth:`LearnerBase.init`; with ``dequantize=L``, ``data`` must be integer levels."""
        self._check_levels(data)
        return super().init(seed, data, init_params, **kwargs)

    def run(self, seed=None, num_steps=None, data=None, init_params=None, **kwargs):
        """:meth:`LearnerBase.run`; with ``dequantize=L``, ``data`` must be integer levels."""
        self._check_levels(data)
        return super().run(seed, num_steps, data, init_params, **kwargs)

    def update_with_info(self, state, batch):
        """:meth:`LearnerBase.update_with_info`; with ``dequantize=L``, ``batch`` must be
        integer levels (checked on the host; a traced batch cannot be)."""
        self._check_levels(batch, "batch")
        return super().update_with_info(state, batch)

    def _check_levels(self, data, name="data"):
        if self.dequantize is not None and data is not None:
            check_levels(data, self.dequantize, name=name)

    # ------------------------------------------------------------ parameters
    def _make_spec(self, key, x0, init_params):
        if self._static is not None and init_params is None:
            init_params = self._module_params
        elif self._static is not None:
            import equinox as eqx

            if isinstance(init_params, eqx.Module):
                init_params = eqx.filter(init_params, eqx.is_inexact_array)
        return super()._make_spec(key, x0, init_params)

    def get_params(self, state, average: bool = True):
        params = super().get_params(state, average)
        if self._static is None:
            return params
        import equinox as eqx

        return eqx.combine(params, self._static)

    def _extra_args_for_check(self):
        return (jnp.asarray(self.schedule.sigma_start, jnp.result_type(float)),)

    # ------------------------------------------------------------------ loss
    def _loss(self, internal, extra, batch, key):
        b = batch.shape[0]
        sch = self.schedule
        if self.dequantize is not None:
            # Fresh cell noise in every update, from the update's key: never a
            # fixed dequantised copy the model could learn point by point.
            key, k_u = jax.random.split(key)
            batch = dequantise(k_u, batch, self.dequantize, self.scale, self.shift)
        k_t, k_eps = jax.random.split(key)
        # Stratified times: one per slice of [t_min, 1], randomly placed and
        # shuffled, so that each batch covers every range of levels (lower
        # variance than b independent uniforms, same expectation).
        u = (jnp.arange(b, dtype=batch.dtype) + jax.random.uniform(k_t, (b,), batch.dtype)) / b
        u = jax.random.permutation(jax.random.fold_in(k_t, 1), u)
        t = sch.t_min + (1.0 - sch.t_min) * u
        eps = jax.random.normal(k_eps, batch.shape, batch.dtype)
        if self.antithetic:
            batch, eps, t = (jnp.concatenate([batch, batch]), jnp.concatenate([eps, -eps]),
                             jnp.concatenate([t, t]))
        sigma, alpha = sch.sigma(t), sch.alpha(t)
        expand = (-1,) + (1,) * (batch.ndim - 1)
        noisy = alpha.reshape(expand) * batch + sigma.reshape(expand) * eps

        def score(x, s):
            return -jax.grad(lambda z: self._spec.energy(internal, z, s))(x)

        scores = jax.vmap(score)(noisy, sigma)
        resid = sigma.reshape(expand) * scores + eps
        per_point = 0.5 * jnp.sum(resid.reshape(resid.shape[0], -1) ** 2, axis=1)
        if self.weighting == "likelihood":
            w = sch.g2(t) / sigma**2
            per_point = per_point * w / jnp.mean(w)
        s0 = jnp.asarray(sch.sigma_start, batch.dtype)
        e_data = jax.vmap(lambda x: self._spec.energy(internal, x, s0))(batch[:b])
        info = {"energy_data": jax.lax.stop_gradient(jnp.mean(e_data))}
        return jnp.mean(per_point), (extra, info)

    # -------------------------------------------------------------- sampling
    def sample(self, key, params, shape, **kwargs):
        """Samples of a trained model: :func:`energymc.diffusion.sample` with this schedule.

        ``params`` as in ``result.params``; ``shape`` ``(n, *event)``. With
        ``dequantize=L`` the samples are on the model's continuous scale; their
        levels are ``floor((x - shift) * L / scale)`` clipped to ``0..L-1``.
        """
        from energymc.diffusion import sample

        energy, p = self._energy_and_params(params)
        return sample(key, energy, shape, self.schedule, p, **kwargs)

    def log_likelihood(self, key, params, x, **kwargs):
        """:func:`energymc.diffusion.log_likelihood` of ``x`` under this schedule.

        With ``dequantize=L`` set on the learner, ``x`` holds integer levels
        and the result is the dequantised bound under the map the model was
        trained on (``dequantize``, ``scale`` and ``shift`` default to the
        learner's; pass them to override).
        """
        from energymc.diffusion import log_likelihood

        if self.dequantize is not None:
            kwargs = {"dequantize": self.dequantize, "scale": self.scale,
                      "shift": self.shift, **kwargs}
        energy, p = self._energy_and_params(params)
        return log_likelihood(key, energy, x, self.schedule, p, **kwargs)

    def _energy_and_params(self, params):
        if self._spec is None:
            raise OptionError("call init() or run() first.")
        if self._static is not None:
            return params, None
        # A bound method is hashed and compared by its ParamSpec's identity, so
        # every sample()/log_likelihood() call of this learner reuses one
        # compiled sampler (a fresh wrapper object per call recompiled each time).
        # ParamSpec is an unhashable dataclass, so static(fn, spec) cannot bind it.
        return self._spec.user_energy, params


class _ModuleEnergy:
    """``(params, x, sigma) -> module(x, sigma)`` with the module's static part bound.

    Not ``static(fn, static_part)``: the static half of ``eqx.partition`` is
    hashable by value only when every non-array field is (a user's module may
    keep a list, an integer array or a mask there, and hashing would raise at
    jit time). One instance lives as long as its learner, so hashing by
    identity already shares the learner's compiled code.
    """

    def __init__(self, static):
        self.static = static

    def __call__(self, params, x, sigma):
        import equinox as eqx

        return eqx.combine(params, self.static)(x, sigma)
