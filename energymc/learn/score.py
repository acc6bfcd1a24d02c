"""Score matching: denoising (DSM), sliced (SSM), and annealed Langevin sampling.

The model's score is ``s_theta(x) = -grad_x E_theta(x)``; neither loss needs
the partition function.

* DSM (Vincent 2011): match the score of the data convolved with
  ``N(0, sigma^2 I)``: ``1/2 ||sigma s(x + sigma eps) + eps||^2``. With several
  noise levels the energy is noise-conditional, ``E(x, sigma)``, each point is
  noised at a level drawn uniformly, and the weight ``sigma^2`` of Song & Ermon
  (2019) makes every level contribute equally.
* SSM (Song, Garg, Shi & Ermon 2019): ``v^T (grad_x s) v + 1/2 (v^T s)^2`` with
  random projections ``v``; for projections with ``E[v v^T] = I`` the second
  term's expectation is ``1/2 ||s||^2``, the variance-reduced form used by
  default.
* :func:`annealed_langevin` (Song & Ermon 2019): Langevin steps at each noise
  level from the largest to the smallest, with step ``alpha_i = lr
  sigma_i^2 / sigma_L^2``, through energymc's ``"langevin"`` kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from energymc import kernels as _kernels
from energymc._util import check_bool, static
from energymc.errors import EnergyError, OptionError
from energymc.learn._checks import check_int, check_positive
from energymc.learn._learner import LearnerBase

__all__ = ["DSM", "SSM", "annealed_langevin", "default_sigma", "geometric_sigmas"]


def geometric_sigmas(sigma_max: float, sigma_min: float, num: int) -> np.ndarray:
    """``num`` noise levels from ``sigma_max`` down to ``sigma_min``, geometrically spaced."""
    sigma_max = check_positive("sigma_max", sigma_max)
    sigma_min = check_positive("sigma_min", sigma_min)
    num = check_int("num", num, 1)
    return np.geomspace(sigma_max, sigma_min, num)


def default_sigma(data, fraction: float = 0.1) -> float:
    """DSM's default noise level: ``fraction`` times the data's smallest principal sd.

    DSM fits the data convolved with ``N(0, sigma^2 I)``: for Gaussian data
    with covariance ``S`` its optimum precision is ``(S + sigma^2 I)^-1``, off
    the maximum-likelihood ``S^-1`` by at most ``sigma^2 / lambda_min(S)``
    relative -- 1% at ``fraction=0.1``. A smaller ``sigma`` would lower that
    bias but raise the variance of the loss's gradient (as ``1 / sigma``).
    Directions with almost no variance (data on a subspace, e.g. constant
    pixels) would drive ``sigma`` to zero, so ``lambda_min`` is floored at
    ``1e-4`` of the mean variance. For more than 2000 coordinates the
    smallest per-coordinate variance stands in for ``lambda_min``.

    Parameters
    ----------
    data
        ``(n, *event)`` training points.

    Returns
    -------
    float
    """
    flat = np.asarray(data, float).reshape(len(data), -1)
    if flat.shape[1] <= 2000 and flat.shape[0] > 1:
        cov = np.atleast_2d(np.cov(flat, rowvar=False))
        lam = np.linalg.eigvalsh(cov)
        mean_var = float(np.mean(np.diag(cov)))
    else:
        lam = np.var(flat, axis=0)
        mean_var = float(np.mean(lam))
    lam_min = max(float(np.min(lam)), 1e-4 * mean_var, 1e-12)
    return float(fraction * np.sqrt(lam_min))


def check_sigmas(sigmas) -> np.ndarray:
    arr = np.asarray(sigmas, dtype=float)
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise OptionError(f"sigmas must be a non-empty 1-d sequence of positive numbers; got "
                          f"{sigmas!r}.")
    return np.sort(arr)[::-1].copy()  # largest first, the order annealing visits them


def _sqnorm(a):
    return jnp.sum(jnp.square(a))


class DSM(LearnerBase):
    """Denoising score matching at one noise level or several.

    Parameters
    ----------
    energy_fn
        With ``sigma=``: ``energy_fn(params, x) -> scalar``. With ``sigmas=``:
        a noise-conditional ``energy_fn(params, x, sigma) -> scalar``; a simple
        choice is ``lambda p, x, s: net(p, x) / s`` (Song & Ermon 2020). For
        NumPyro-style energies drop ``params``.
    optim
        A ``numpyro.optim`` optimiser.
    sigma
        One noise level. The optimum is the model closest to the data
        *convolved* with ``N(0, sigma^2 I)``; e.g. for Gaussian data with
        covariance ``S`` the learned precision is ``(S + sigma^2 I)^-1``.
    sigmas
        Several noise levels (any order; stored largest first), for the
        score-based row with :meth:`sample` / :func:`annealed_langevin`.
    antithetic
        Noise every point twice, with ``eps`` and ``-eps`` (default). Same
        expected loss; at small ``sigma`` the gradient's variance drops by
        orders of magnitude, for twice the score evaluations.

    Notes
    -----
    With neither ``sigma`` nor ``sigmas``, one level is chosen from the training data by
    :func:`default_sigma` (a tenth of the data's smallest standard deviation
    along a principal axis), so that the optimum is within about 1% of the
    maximum-likelihood fit; ``learner.sigmas`` holds it after ``init``/``run``.
    """

    _name = "DSM"
    _judges_mode_weights = True

    def __init__(self, energy_fn: Callable, optim, sigma: float | None = None,
                 sigmas: Sequence[float] | None = None, antithetic: bool = True):
        if sigma is not None and sigmas is not None:
            raise OptionError("DSM takes at most one of sigma= (one noise level) or sigmas= "
                              "(several, with a noise-conditional energy_fn(params, x, sigma)).")
        check_bool("antithetic", antithetic)
        self.antithetic = antithetic
        self.conditional = sigmas is not None
        # Neither: one level chosen from the data when the learner is initialised.
        self._auto_sigma = sigma is None and sigmas is None
        self._energy_extra_args = 1 if self.conditional else 0
        super().__init__(energy_fn, optim)
        if self.conditional:
            self.sigmas = check_sigmas(sigmas)
            from energymc._util import n_positional

            n = n_positional(energy_fn)
            if n is not None and n < 2:
                raise EnergyError("with sigmas= the energy is noise-conditional: write "
                                  "energy_fn(params, x, sigma) (or energy_fn(x, sigma) with "
                                  "numpyro.param sites).")
        elif sigma is not None:
            self.sigmas = np.asarray([check_positive("sigma", sigma)])
        else:
            self.sigmas = np.asarray([1.0])  # replaced in init, from the data

    def _extra_init(self, key, data, internal, batch_size):
        if self._auto_sigma and not isinstance(data, jax.core.Tracer):
            self.sigmas = np.asarray([default_sigma(data)])
        return {}

    def _extra_args_for_check(self):
        return (jnp.asarray(self.sigmas[0], jnp.result_type(float)),) if self.conditional else ()

    def _score(self, internal, x, sigma):
        extra = (sigma,) if self.conditional else ()
        return -jax.grad(lambda z: self._spec.energy(internal, z, *extra))(x)

    def _loss(self, internal, extra, batch, key):
        b = batch.shape[0]
        k_lvl, k_eps = jax.random.split(key)
        sig = jnp.asarray(self.sigmas, batch.dtype)
        level = jax.random.randint(k_lvl, (b,), 0, sig.shape[0])
        s = sig[level]
        eps = jax.random.normal(k_eps, batch.shape, batch.dtype)
        if self.antithetic:
            # Each point noised by +eps and -eps: the term of the loss that is
            # odd in eps -- at small sigma nearly all of its gradient's noise,
            # sigma s(x).eps -- cancels within the pair; the expected loss is
            # unchanged.
            batch, eps, s = (jnp.concatenate([batch, batch]), jnp.concatenate([eps, -eps]),
                             jnp.concatenate([s, s]))
        noisy = batch + s.reshape((s.shape[0],) + (1,) * (batch.ndim - 1)) * eps
        scores = jax.vmap(lambda x, si: self._score(internal, x, si))(noisy, s)
        per_point = jax.vmap(lambda sc, si, e: 0.5 * _sqnorm(si * sc + e))(scores, s, eps)
        batch = batch[:b]
        xtra = (lambda si: (si,)) if self.conditional else (lambda si: ())
        e_data = jax.vmap(lambda x, si: self._spec.energy(internal, x, *xtra(si)))(
            batch, jnp.full((b,), sig[-1]))
        info = {"energy_data": jax.lax.stop_gradient(jnp.mean(e_data))}
        return jnp.mean(per_point), (extra, info)

    def sample(self, key, params, x0, *, steps_per_level: int = 100, step_lr: float = 2e-5,
               denoise: bool = True, unroll: bool | None = None):
        """Annealed Langevin over this learner's noise levels, from ``x0`` ``(n, *event)``.

        ``params`` are user-form (``result.params``). See :func:`annealed_langevin`
        (``unroll=None`` runs a convolutional energy's steps from a host loop on CPU).
        """
        if self._spec is None:
            raise OptionError("call init() or run() first.")
        if self.conditional:
            fn = self._spec.user_energy
        else:
            fn = static(_unconditional, self._spec.user_energy)
        return annealed_langevin(key, fn, params, x0, self.sigmas,
                                 steps_per_level=steps_per_level, step_lr=step_lr, denoise=denoise,
                                 unroll=unroll)


def _unconditional(fn, params, x, sigma):
    """``(params, x, sigma) -> E(params, x)``: one energy at every level.

    Bound as ``static(_unconditional, fn)``, so two samplers of the same
    energy are equal and share their compiled code.
    """
    return fn(params, x)


class SSM(LearnerBase):
    """Sliced score matching.

    Parameters
    ----------
    energy_fn
        ``energy_fn(params, x) -> scalar`` for ONE point (or NumPyro-style ``energy_fn(x)``).
    optim
        A ``numpyro.optim`` optimiser.
    n_projections
        Random projections per point.
    variance_reduced
        Use ``1/2 ||s||^2`` in place of ``1/2 (v^T s)^2`` (exact in
        expectation for these projections, lower variance).
    projection
        ``"gaussian"`` or ``"rademacher"`` projections ``v``.

    Notes
    -----
    For Gaussian data and ``E = x^T P x / 2`` the expected loss is
    ``tr(P S P) / 2 - tr(P)``, minimised at ``P = S^-1``: SSM is consistent.
    Each projection costs one forward-over-reverse Hessian-vector product.
    """

    _name = "SSM"
    _judges_mode_weights = True

    def __init__(self, energy_fn: Callable, optim, n_projections: int = 1,
                 variance_reduced: bool = True, projection: str = "gaussian"):
        super().__init__(energy_fn, optim)
        self.n_projections = check_int("n_projections", n_projections, 1)
        check_bool("variance_reduced", variance_reduced)
        self.variance_reduced = variance_reduced
        if projection not in ("gaussian", "rademacher"):
            raise OptionError(f"projection must be 'gaussian' or 'rademacher'; got {projection!r}.")
        self.projection = projection

    def _loss(self, internal, extra, batch, key):
        b = batch.shape[0]
        shape = (b, self.n_projections) + batch.shape[1:]
        if self.projection == "gaussian":
            v = jax.random.normal(key, shape, batch.dtype)
        else:
            v = jax.random.rademacher(key, shape, dtype=batch.dtype)

        def score(x):
            return -jax.grad(lambda z: self._spec.energy(internal, z))(x)

        def per_point(x, vs):
            def one(vi):
                s, jv = jax.jvp(score, (x,), (vi,))  # jv = (grad_x s) v
                quad = 0.5 * _sqnorm(s) if self.variance_reduced else 0.5 * jnp.sum(vi * s) ** 2
                return jnp.sum(vi * jv) + quad

            return jnp.mean(jax.vmap(one)(vs))

        loss = jnp.mean(jax.vmap(per_point)(batch, v))
        e_data = jax.vmap(lambda x: self._spec.energy(internal, x))(batch)
        return loss, (extra, {"energy_data": jax.lax.stop_gradient(jnp.mean(e_data))})


def annealed_langevin(key, energy_fn: Callable, params, x0, sigmas, *,
                      steps_per_level: int = 100, step_lr: float = 2e-5,
                      denoise: bool = True, unroll: bool | None = None):
    """Annealed Langevin dynamics over noise levels (Song & Ermon 2019).

    At each level ``sigma_i`` (largest first), ``steps_per_level`` steps of
    ``x <- x + alpha_i/2 s(x, sigma_i) + sqrt(alpha_i) z`` with
    ``alpha_i = step_lr sigma_i^2 / sigma_L^2``; each step is energymc's
    ``"langevin"`` kernel (BlackJAX's overdamped Langevin step, step size
    ``alpha_i / 2``).

    Parameters
    ----------
    key
        A ``jax.random.key``.
    energy_fn
        Noise-conditional ``energy_fn(params, x, sigma) -> scalar`` for ONE
        point ``x``; must be hashable (a function is).
    params
        Its parameters.
    x0
        ``(n, *event)`` starting points, e.g. uniform noise over the data's range.
    sigmas
        Noise levels (sorted largest first here).
    steps_per_level, step_lr
        As in Song & Ermon (2019), who use 100 and ``2e-5`` for images.
    denoise
        Finish with one denoising step ``x + sigma_L^2 s(x, sigma_L)``
        (Tweedie's formula), which removes the last level's noise.
    unroll
        Run each Langevin step as its own compiled call from a host loop
        (``True``), or every level and step inside one compiled program of
        ``lax.scan`` loops (``False``). ``None`` (default): ``True`` when
        running on CPU and the energy contains a convolution, as
        :class:`energymc.learn.CD`'s ``unroll``: XLA:CPU runs convolutions
        inside a compiled loop several times slower than outside one
        (``benchmarks/RESULTS.md``, "Unrolled CD"). The steps and their random
        numbers are the same either way; float32 results can differ in the
        last bits.

    Returns
    -------
    jax.Array
        ``(n, *event)`` samples.
    """
    sig = check_sigmas(sigmas)
    steps_per_level = check_int("steps_per_level", steps_per_level, 1)
    step_lr = check_positive("step_lr", step_lr)
    x0 = jnp.asarray(x0, dtype=jnp.result_type(float))
    if x0.ndim < 2:
        raise EnergyError(f"x0 has shape {x0.shape}; it must be (n_points, *event_shape).")
    if unroll is not None and not isinstance(unroll, bool):
        raise OptionError(f"unroll must be None (decide from the energy), True or False; got "
                          f"{unroll!r}.")
    sig = jnp.asarray(sig, x0.dtype)
    args = (key, params, x0, sig, jnp.asarray(step_lr, x0.dtype), jnp.asarray(bool(denoise)))
    if unroll is None:
        unroll = _has_convolution(energy_fn, params, x0[0], sig[-1])
    if unroll:
        return _annealed_host_loop(*args, energy_fn=energy_fn, steps_per_level=steps_per_level)
    return _annealed(*args, energy_fn=energy_fn, steps_per_level=steps_per_level)


def _has_convolution(energy_fn, params, point, sigma) -> bool:
    """Whether ``energy_fn`` convolves, on the CPU backend (where loops slow convolutions)."""
    if jax.default_backend() != "cpu":
        return False
    return "conv_general_dilated" in str(jax.make_jaxpr(energy_fn)(params, point, sigma))


def _langevin_parts(energy_fn, params, event, step_lr, sigma_last):
    """The ``"langevin"`` kernel, its options, and per-level log-density and kernel parameters."""
    kernel = _kernels.get("langevin")
    dim = int(np.prod(event))
    options = _kernels.resolve_options(kernel, {"step_size": 1.0}, context="annealed_langevin")
    imm = kernel.default_params(dim, options)["inverse_mass_matrix"]

    def logdensity_at(sigma):
        def logdensity(z):
            return -energy_fn(params, z.reshape(event), sigma)

        return logdensity

    def kparams_at(sigma):
        alpha = step_lr * (sigma / sigma_last) ** 2
        return {"step_size": alpha / 2, "inverse_mass_matrix": imm}

    return kernel, options, logdensity_at, kparams_at


def _level_keys(key, num_levels, n, steps_per_level):
    """Per level: each chain's init key and its ``(n, steps)`` step keys (both loops draw these)."""
    out = []
    for k in jax.random.split(key, num_levels):
        chain_keys = jax.random.split(k, n)
        out.append((chain_keys, jax.vmap(lambda c: jax.random.split(c, steps_per_level))(
            chain_keys)))
    return out


@partial(jax.jit, static_argnames=("energy_fn", "event"))
def _level_init(params, flat, chain_keys, sigma, step_lr, sigma_last, *, energy_fn, event):
    kernel, options, logdensity_at, kparams_at = _langevin_parts(
        energy_fn, params, event, step_lr, sigma_last)
    return jax.vmap(lambda kk, z: kernel.init(kk, z, logdensity_at(sigma), kparams_at(sigma),
                                              options))(chain_keys, flat)


@partial(jax.jit, static_argnames=("energy_fn", "event"))
def _level_step(params, states, step_keys, sigma, step_lr, sigma_last, *, energy_fn, event):
    kernel, options, logdensity_at, kparams_at = _langevin_parts(
        energy_fn, params, event, step_lr, sigma_last)
    return jax.vmap(lambda kk, st: kernel.step(kk, st, logdensity_at(sigma), kparams_at(sigma),
                                               options)[0])(step_keys, states)


@partial(jax.jit, static_argnames=("energy_fn", "event"))
def _denoise(params, flat, sigma_last, step_lr, denoise, *, energy_fn, event):
    _, _, logdensity_at, _ = _langevin_parts(energy_fn, params, event, step_lr, sigma_last)
    grad = jax.vmap(jax.grad(logdensity_at(sigma_last)))(flat)
    return jnp.where(denoise, flat + sigma_last**2 * grad, flat)


def _annealed_host_loop(key, params, x0, sigmas, step_lr, denoise, *, energy_fn,
                        steps_per_level):
    """:func:`_annealed`'s levels and steps as a host loop over compiled single steps.

    Host code: no compiled program holds a loop, so XLA:CPU keeps convolutions
    on its fast layout; the keys are those :func:`_annealed` draws.
    """
    n, event = x0.shape[0], tuple(x0.shape[1:])
    flat = x0.reshape(n, -1)
    static_ = {"energy_fn": energy_fn, "event": event}
    sigma_last = sigmas[-1]
    for i, (chain_keys, step_keys) in enumerate(_level_keys(key, sigmas.shape[0], n,
                                                            steps_per_level)):
        states = _level_init(params, flat, chain_keys, sigmas[i], step_lr, sigma_last,
                             **static_)
        for t in range(steps_per_level):
            states = _level_step(params, states, step_keys[:, t], sigmas[i], step_lr,
                                 sigma_last, **static_)
        flat = states.position
    return _denoise(params, flat, sigma_last, step_lr, denoise, **static_).reshape(x0.shape)


@partial(jax.jit, static_argnames=("energy_fn", "steps_per_level"))
def _annealed(key, params, x0, sigmas, step_lr, denoise, *, energy_fn, steps_per_level):
    n, event = x0.shape[0], x0.shape[1:]
    dim = int(np.prod(event))
    kernel, options, logdensity_at, kparams_at = _langevin_parts(
        energy_fn, params, event, step_lr, sigmas[-1])

    def level(x, inputs):
        sigma, k = inputs
        kparams = kparams_at(sigma)
        logdensity = logdensity_at(sigma)

        def chain(key, z):
            state = kernel.init(key, z, logdensity, kparams, options)

            def one(s, kk):
                s, _ = kernel.step(kk, s, logdensity, kparams, options)
                return s, None

            state, _ = jax.lax.scan(one, state, jax.random.split(key, steps_per_level))
            return state.position

        x = jax.vmap(chain)(jax.random.split(k, n), x)
        return x, None

    keys = jax.random.split(key, sigmas.shape[0])
    flat, _ = jax.lax.scan(level, x0.reshape(n, dim), (sigmas, keys))
    # denoise is traced, not static: one gradient evaluation is cheaper than a
    # second compilation.
    s_last = sigmas[-1]
    grad = jax.vmap(jax.grad(logdensity_at(s_last)))(flat)
    flat = jnp.where(denoise, flat + s_last**2 * grad, flat)
    return flat.reshape(x0.shape)
