"""Sampling a noise-conditional energy: reverse SDE, predictor--corrector, annealed MCMC.

* Predictor: Euler--Maruyama on the reverse-time SDE ``dx = [f x - g^2
  s(x, t)] dt + g dW`` from the prior at ``t = 1`` down to ``t_min``
  (Song et al. 2021), with ``s = -grad_x E(x, sigma(t))``.
* Corrector, after each predictor step, at the new level:

  - ``"langevin"``: unadjusted Langevin steps with the step size set by a
    signal-to-noise ratio, ``2 (snr ||z|| / ||s||)^2`` with the norms
    averaged over the chains (Song et al. 2021),
    through energymc's ``"langevin"`` kernel; the acceptance MALA would have
    given each move is recorded as a diagnostic (``mh_acceptance_rate``).
  - ``"mala"`` / ``"hmc"``: Metropolis-adjusted steps through energymc's
    kernels, targeting ``exp(-E(x, sigma))`` at that level exactly -- which
    a score-only model cannot do, having no energy to accept or reject with.
    The step is ``step_scale * sigma`` (MALA: its proposal's noise sd; HMC:
    the leapfrog step), ``step_scale`` adapted from level to level towards
    the kernel's target acceptance (``adapt=True``); the acceptance rate
    of every level is returned.

:func:`annealed_mcmc` runs the corrector alone over a ladder of levels
(annealed MCMC: Song & Ermon 2019's annealed Langevin with a Metropolis step);
it samples energies that are not a diffusion's marginals, such as the sum of
two trained energies (:func:`energymc.diffusion.product`).
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from energymc import kernels as _kernels
from energymc.diffusion._energies import as_module, check_energy
from energymc.diffusion.schedules import as_schedule
from energymc.errors import EnergyError, OptionError

__all__ = ["Samples", "annealed_mcmc", "sample"]

_CORRECTORS = (None, "langevin", "mala", "hmc")
_TARGET = {"mala": 0.574, "hmc": 0.65, "langevin": None}


@dataclasses.dataclass
class Samples:
    """What :func:`sample` and :func:`annealed_mcmc` return.

    Attributes
    ----------
    x
        ``(n, *event)`` samples (NumPy).
    sigmas
        ``(levels,)`` the noise level of each step, largest first.
    acceptance
        ``(levels,)`` mean acceptance rate of the corrector at each level
        (over chains and corrector steps); for ``"langevin"`` the acceptance
        MALA would have given its moves (a diagnostic: low means the step is
        too large for the energy's curvature). ``None`` without a corrector.
    step_scale
        ``(levels,)`` the corrector's step in units of ``sigma`` at each level
        (``None`` without a Metropolis corrector).
    diverging
        ``(levels,)`` number of proposals with a non-finite energy or gradient
        (rejected, never propagated).
    method
        What produced them, e.g. ``"sde+mala"``.
    ess
        :func:`annealed_mcmc` with ``resample=True``: ``(levels,)`` effective
        sample size of the importance weights on arrival at each level,
        before any resampling (``None`` otherwise).
    """

    x: np.ndarray
    sigmas: np.ndarray
    acceptance: np.ndarray | None
    step_scale: np.ndarray | None
    diverging: np.ndarray
    method: str
    ess: np.ndarray | None = None

    def __repr__(self) -> str:
        acc = "" if self.acceptance is None else (
            f", acceptance {np.min(self.acceptance):.2f}..{np.max(self.acceptance):.2f}")
        return (f"Samples({self.method}, n={len(self.x)}, levels={len(self.sigmas)}{acc}, "
                f"diverging={int(np.sum(self.diverging))})")


def _check_common(corrector, corrector_steps, step_scale, snr, hmc_steps):
    from energymc.learn._checks import check_int, check_positive

    if corrector not in _CORRECTORS:
        raise OptionError(f"corrector must be None, 'langevin', 'mala' or 'hmc'; got "
                          f"{corrector!r}.")
    return (check_int("corrector_steps", corrector_steps, 1), check_positive("step_scale",
                                                                            step_scale),
            check_positive("snr", snr), check_int("hmc_steps", hmc_steps, 1))


def _check_unroll(unroll) -> int:
    """``unroll`` as the int the compiled samplers take: ``0`` for ``True`` (all).

    Not the bool itself: a static argument is cached by equality, and
    ``True == 1`` would hand ``unroll=True`` the rolled program compiled for 1.
    """
    if isinstance(unroll, bool):
        return 0 if unroll else 1
    if not isinstance(unroll, (int, np.integer)) or unroll < 1:
        raise OptionError(f"unroll must be an integer >= 1 (loop iterations per trip of the "
                          f"compiled loop) or True (all); got {unroll!r}.")
    return int(unroll)


def _scan_unroll(unroll: int):
    """:func:`_check_unroll`'s int as ``jax.lax.scan``'s ``unroll``."""
    return True if unroll == 0 else unroll


def _shape(shape):
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise OptionError(f"shape must be (n, *event), e.g. (1000, 2); got {shape!r}.") from None
    if len(shape) < 2 or min(shape) < 1:
        raise OptionError(f"shape must be (n, *event) with positive sizes, e.g. (1000, 2); "
                          f"got {shape!r}.")
    return shape


def sample(key, energy, shape, schedule, params=None, *, steps: int = 500,
           corrector: str | None = None, corrector_steps: int = 1, snr: float = 0.16,
           step_scale: float = 0.5, adapt: bool = True, hmc_steps: int = 4,
           denoise: bool = True, unroll: int | bool = 1) -> Samples:
    """Draw samples by the reverse SDE, with an optional corrector at every level.

    Parameters
    ----------
    key
        A ``jax.random.key``.
    energy
        An Equinox module ``m(x, sigma)`` or ``energy_fn(params, x, sigma)``.
    shape
        ``(n, *event)``: how many samples, of which shape.
    schedule
        ``"ve"``, ``"vp"`` or a :class:`~energymc.diffusion.Schedule`: the one the
        energy was trained with.
    params
        With ``energy_fn``: its parameters.
    steps
        Predictor steps, uniform in ``t`` from 1 to ``t_min``.
    corrector
        ``None`` (reverse SDE alone), ``"langevin"`` (predictor--corrector), or a
        Metropolis-adjusted ``"mala"`` / ``"hmc"``.
    corrector_steps
        Corrector steps after each predictor step.
    snr
        Langevin corrector's signal-to-noise ratio (Song et al. 2021: 0.16).
    step_scale
        MALA/HMC: initial step in units of the level's ``sigma``.
    adapt
        MALA/HMC: after each level, move ``log step_scale`` by the difference
        between that level's acceptance and the kernel's target (0.574 MALA,
        0.65 HMC).
    hmc_steps
        Leapfrog steps per HMC proposal.
    denoise
        End with Tweedie's denoising step ``(x + sigma^2 s) / alpha`` at
        ``t_min``, which removes the last level's noise.
    unroll
        Passed to ``jax.lax.scan`` for the loop over levels and the
        corrector's loop over its steps: that many iterations per trip of
        the compiled loop (``True``: all). The draws are the same for the same
        key (up to float rounding: XLA may fuse the written-out steps
        differently); only the speed and the compile time change, and the
        compile time grows with it (both loops unrolled: their product).
        On CPU it bought nothing measurable for the digits and 2-d ring
        networks (``benchmarks/bench_diffusion_unroll.py``, RESULTS.md);
        time your own case before raising it from 1.

    Returns
    -------
    Samples
    """
    from energymc.learn._checks import check_int

    schedule = as_schedule(schedule)
    shape = _shape(shape)
    steps = check_int("steps", steps, 1)
    corrector_steps, step_scale, snr, hmc_steps = _check_common(corrector, corrector_steps,
                                                                step_scale, snr, hmc_steps)
    unroll = _check_unroll(unroll)
    module = as_module(energy, params)
    dtype = jnp.result_type(float)
    check_energy(module, shape[1:], dtype)
    key = jax.random.key(key) if isinstance(key, int) else key
    x, acc, scales, div = _reverse(module, key, jnp.asarray(step_scale, dtype), shape=shape,
                                   schedule=schedule, steps=steps, corrector=corrector,
                                   corrector_steps=corrector_steps, snr=snr, adapt=bool(adapt),
                                   hmc_steps=hmc_steps, denoise=bool(denoise),
                                   unroll=unroll)
    sig = np.asarray(jax.vmap(schedule.sigma)(schedule.times(steps)[1:]))
    return Samples(np.asarray(x), sig, None if corrector is None else np.asarray(acc),
                   None if corrector in (None, "langevin") else np.asarray(scales),
                   np.asarray(div), "sde" + ("" if corrector is None else f"+{corrector}"))


def annealed_mcmc(key, energy, x0, sigmas, params=None, *, method: str = "mala",
                  steps_per_level: int = 20, step_scale: float = 0.5, adapt: bool = True,
                  hmc_steps: int = 4, resample: bool = True,
                  unroll: int | bool = 1) -> Samples:
    """Metropolis-adjusted MCMC at each noise level from the largest to the smallest.

    Each level targets ``exp(-E(x, sigma))`` exactly; the chains carry over
    from level to level, so the large levels move them between modes and the
    small ones settle them. The last level's chains are the samples of
    ``exp(-E(x, sigmas[-1]))`` (no denoising: the energy need not be a
    diffusion's marginal).

    Local moves cannot carry mass between modes once they separate, so
    without reweighting the modes keep the shares they had at the level where
    they split -- wrong whenever the levels are not one diffusion's marginals
    (a product of experts). With ``resample=True`` (default) the chains are
    the particles of a sequential Monte Carlo sampler: on arrival at each
    level they are weighted by ``exp(-(E(x, sigma_i) - E(x, sigma_{i-1})))``
    and, when the weights' effective sample size falls below half the
    particles, resampled (systematic resampling) -- which restores the modes'
    shares (Del Moral, Doucet & Jasra 2006).

    Parameters
    ----------
    key
        A ``jax.random.key``.
    energy
        An Equinox module ``m(x, sigma)`` or ``energy_fn(params, x, sigma)``,
        e.g. :func:`energymc.diffusion.product` of two trained energies.
    x0
        ``(n, *event)`` starting points (e.g. wide Gaussian noise).
    sigmas
        Noise levels (sorted largest first here).
    params
        With ``energy_fn``: its parameters.
    method
        ``"mala"``, ``"hmc"`` or ``"langevin"`` (unadjusted, step ``2 (0.16
        ||z|| / ||s||)^2`` with norms averaged over chains; for comparison).
    steps_per_level, step_scale, adapt, hmc_steps
        As the corrector of :func:`sample`.
    resample
        Weight and resample between levels (sequential Monte Carlo); the
        samples then include duplicates, spread only by the later moves.
    unroll
        As for :func:`sample`: passed to ``jax.lax.scan`` for the loop over
        levels and the loop over each level's steps; same draws, other speed.

    Returns
    -------
    Samples
    """
    from energymc.learn._checks import check_int
    from energymc.learn.score import check_sigmas

    if method is None:
        raise OptionError("method must be 'mala', 'hmc' or 'langevin'.")
    steps_per_level, step_scale, _, hmc_steps = _check_common(method, steps_per_level,
                                                              step_scale, 0.16, hmc_steps)
    check_int("steps_per_level", steps_per_level, 1)
    unroll = _check_unroll(unroll)
    sig = check_sigmas(sigmas)
    dtype = jnp.result_type(float)
    x0 = jnp.asarray(x0, dtype)
    if x0.ndim < 2:
        raise EnergyError(f"x0 has shape {x0.shape}; it must be (n_points, *event_shape).")
    module = as_module(energy, params)
    check_energy(module, x0.shape[1:], dtype)
    key = jax.random.key(key) if isinstance(key, int) else key
    x, acc, scales, div, ess = _annealed(module, key, x0, jnp.asarray(sig, dtype),
                                         jnp.asarray(step_scale, dtype), method=method,
                                         steps_per_level=steps_per_level, adapt=bool(adapt),
                                         hmc_steps=hmc_steps, resample=bool(resample),
                                         unroll=unroll)
    return Samples(np.asarray(x), sig, np.asarray(acc),
                   None if method == "langevin" else np.asarray(scales), np.asarray(div),
                   f"annealed-{method}" + ("+smc" if resample else ""),
                   np.asarray(ess) if resample else None)


# ---------------------------------------------------------------------------
# Pure JAX below.
# ---------------------------------------------------------------------------
def _corrector(module, key, x, sigma, log_scale, *, method, num, snr, adapt, hmc_steps,
               unroll=1):
    """``num`` steps of ``method`` at level ``sigma`` for every chain of ``x`` ``(n, dim)``.

    Returns ``(x, mean acceptance, new log_scale, diverging count)``.
    """
    n, dim = x.shape
    event_fn = module.event_shape_fn

    def logdensity(z):
        return -module(event_fn(z), sigma)

    kernel = _kernels.get(method)
    opts = {"num_integration_steps": hmc_steps, "step_jitter": 0.0} if method == "hmc" else {}
    options = _kernels.resolve_options(kernel, opts, context="diffusion corrector")
    ones = jnp.ones((dim,), x.dtype)
    scale = jnp.exp(log_scale)

    if method == "langevin":
        # Song et al. (2021)'s step from the signal-to-noise ratio, with the
        # norms averaged over the chains (||z|| at its typical sqrt(dim)).
        # Not per chain: a chain at a mode has a near-zero score, and its own
        # ratio would send it arbitrarily far.
        grads = jax.vmap(jax.grad(logdensity))(x)
        mean_norm = jnp.mean(jnp.sqrt(jnp.sum(grads**2, axis=1)))
        h_langevin = 2.0 * (snr * jnp.sqrt(dim) / jnp.maximum(mean_norm, 1e-30)) ** 2

    def chain(k, z):
        state = kernel.init(k, z, logdensity, {}, options)
        if method == "langevin":
            h = h_langevin
        elif method == "mala":
            h = 0.5 * (scale * sigma) ** 2  # proposal noise sd sqrt(2 h) = scale * sigma
        else:
            h = scale * sigma
        kparams = {"step_size": h, "inverse_mass_matrix": ones}

        def one(s, kk):
            s, stats = kernel.step(kk, s, logdensity, kparams, options)
            acc = stats["mh_acceptance_rate"] if method == "langevin" else stats["acceptance_rate"]
            return s, (acc, stats["diverging"])

        state, (acc, div) = jax.lax.scan(one, state, jax.random.split(k, num),
                                         unroll=_scan_unroll(unroll))
        return state.position, jnp.mean(acc), jnp.sum(div)

    x, acc, div = jax.vmap(chain)(jax.random.split(key, n), x)
    acc = jnp.mean(acc)
    target = _TARGET[method]
    if adapt and target is not None:
        log_scale = log_scale + (acc - target)
    return x, acc, log_scale, jnp.sum(div)


class _Flat(eqx.Module):
    """The energy of a flat point: the samplers work on ``(n, dim)`` arrays."""

    inner: eqx.Module
    event: tuple = eqx.field(static=True)

    def event_shape_fn(self, z):
        return z.reshape(self.event)

    def __call__(self, x, sigma):
        return self.inner(x, sigma)


@eqx.filter_jit
def _reverse(module, key, step_scale, *, shape, schedule, steps, corrector, corrector_steps,
             snr, adapt, hmc_steps, denoise, unroll):
    n, event = shape[0], shape[1:]
    dim = int(np.prod(event))
    flat = _Flat(module, tuple(event))
    dtype = step_scale.dtype
    times = schedule.times(steps).astype(dtype)
    k_prior, k_run = jax.random.split(key)
    x = schedule.prior_sample(k_prior, (n, dim), dtype)

    def score(z, sigma):
        return -jax.vmap(jax.grad(lambda y: flat(y.reshape(event), sigma)))(z)

    def step(carry, inputs):
        x, log_scale = carry
        t, t_next, k = inputs
        k_pred, k_corr = jax.random.split(k)
        dt = t_next - t  # negative: time runs backwards
        drift = schedule.drift(t) * x - schedule.g2(t) * score(x, schedule.sigma(t))
        noise = jax.random.normal(k_pred, x.shape, dtype)
        x = x + drift * dt + jnp.sqrt(schedule.g2(t) * -dt) * noise
        if corrector is None:
            return (x, log_scale), (jnp.full((), jnp.nan, dtype), log_scale,
                                    jnp.zeros((), jnp.int32))
        x, acc, new_scale, div = _corrector(flat, k_corr, x, schedule.sigma(t_next), log_scale,
                                            method=corrector, num=corrector_steps, snr=snr,
                                            adapt=adapt, hmc_steps=hmc_steps, unroll=unroll)
        return (x, new_scale), (acc, log_scale, div.astype(jnp.int32))

    keys = jax.random.split(k_run, steps)
    (x, _), (acc, log_scales, div) = jax.lax.scan(
        step, (x, jnp.log(step_scale)), (times[:-1], times[1:], keys),
        unroll=_scan_unroll(unroll))
    if denoise:
        t = times[-1]
        sigma = schedule.sigma(t)
        x = (x + sigma**2 * score(x, sigma)) / schedule.alpha(t)
    return x.reshape(shape), acc, jnp.exp(log_scales), div


@eqx.filter_jit
def _annealed(module, key, x0, sigmas, step_scale, *, method, steps_per_level, adapt,
              hmc_steps, resample, unroll):
    n, event = x0.shape[0], x0.shape[1:]
    flat = _Flat(module, tuple(event))

    def energies(x, sigma):
        return jax.vmap(lambda z: flat(z.reshape(event), sigma))(x)

    def systematic(k, logw, x):
        w = jax.nn.softmax(logw)
        u = (jnp.arange(n, dtype=x.dtype) + jax.random.uniform(k, (), x.dtype)) / n
        return x[jnp.clip(jnp.searchsorted(jnp.cumsum(w), u), 0, n - 1)]

    def level(carry, inputs):
        x, log_scale, sigma_prev, logw = carry
        sigma, k = inputs
        k_res, k_mc = jax.random.split(k)
        ess = jnp.asarray(n, x.dtype)
        if resample:
            # Importance weights of the chains, which target the previous
            # level, for this one, accumulated since the last resampling; a
            # non-finite energy gets weight zero.
            inc = -(energies(x, sigma) - energies(x, sigma_prev))
            logw = jnp.where(jnp.isfinite(inc), logw + inc, -jnp.inf)
            ess = 1.0 / jnp.sum(jax.nn.softmax(logw) ** 2)
            low = ess < n / 2
            x = jnp.where(low, systematic(k_res, logw, x), x)
            logw = jnp.where(low, jnp.zeros_like(logw), logw)
        x, acc, new_scale, div = _corrector(flat, k_mc, x, sigma, log_scale, method=method,
                                            num=steps_per_level, snr=0.16, adapt=adapt,
                                            hmc_steps=hmc_steps, unroll=unroll)
        return (x, new_scale, sigma, logw), (acc, log_scale, div.astype(jnp.int32), ess)

    k_levels, k_final = jax.random.split(key)
    keys = jax.random.split(k_levels, sigmas.shape[0])
    # The first level has no predecessor: its "previous" level is itself
    # (weights all equal), so the start x0 is taken as its approximate draw.
    logw0 = jnp.zeros((n,), x0.dtype)
    (x, _, _, logw), (acc, log_scales, div, ess) = jax.lax.scan(
        level, (x0.reshape(n, -1), jnp.log(step_scale), sigmas[0], logw0), (sigmas, keys),
        unroll=_scan_unroll(unroll))
    if resample:
        # Equally weighted samples to return: a last resampling by the
        # weights left since the previous one.
        x = systematic(k_final, logw, x)
    return x.reshape(x0.shape), acc, jnp.exp(log_scales), div, ess
