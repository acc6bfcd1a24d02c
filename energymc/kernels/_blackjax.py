"""Continuous kernels: BlackJAX's MCMC kernels and adaptation, wrapped.

This is the only module where ``blackjax.mcmc`` and ``blackjax.adaptation``
enter energymc. Nothing here re-implements a kernel: each method binds a
BlackJAX kernel to energymc's :class:`energymc._base.Kernel` contract, adds a
preconditioner where BlackJAX has none, and maps BlackJAX's ``Info`` to ArviZ
sample-stat names.

Warmup is BlackJAX's Stan-style ``window_adaptation`` (step size by dual
averaging, then a diagonal or dense inverse mass matrix over doubling
windows) for every Metropolis-adjusted method, each with its own acceptance
target; ``mclmc`` uses ``blackjax.mclmc_find_L_and_step_size``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import blackjax
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
from blackjax.mcmc.diffusions import overdamped_langevin
from blackjax.mcmc.mala import MALAState

from energymc._base import Kernel, WarmupResult
from energymc._util import check_bool, langevin_mh_acceptance, nonfinite_to_neginf
from energymc.errors import OptionError
from energymc.progress import tick_interval

__all__ = ["CONTINUOUS_KERNELS"]


def _finite_or_zero(x):
    return jnp.where(jnp.isfinite(x), x, 0.0)


def _finite_logdensity(logdensity_fn):
    """The log density with every non-finite value read as ``-inf``.

    A proposal where the energy is NaN or ``-inf`` (unbounded below, e.g.
    after a degenerate warmup) then has zero acceptance, or ends a NUTS
    trajectory as a divergence, so no accepted state is ever non-finite.
    This replaces a select on each new state after the step, which cost ~3%
    of a NUTS run on a 2-d target.
    """

    def logdensity(x):
        return nonfinite_to_neginf(logdensity_fn(x))

    return logdensity


# --------------------------------------------------------------------------
# Preconditioning by a linear change of variables x = L y, L L^T = M^{-1}.
# BlackJAX's MALA and ULA take no mass matrix; rather than rewrite them we run
# them on y, where the target is whitened, and map the state back. The
# log-density of y differs from that of x by the constant log|L|, which no
# Metropolis ratio sees, so it is dropped.
# --------------------------------------------------------------------------
class _Linear(NamedTuple):
    to_x: Callable
    to_y: Callable
    grad_to_y: Callable
    grad_to_x: Callable
    factor: Any  # L: (dim,) sqrt of a diagonal, or the (dim, dim) Cholesky factor


def _linear_map(inverse_mass_matrix, reused: bool = False) -> _Linear:
    """The map for an inverse mass matrix, or the given map if already built.

    With ``reused`` (``prepare`` builds the map once, outside the loop) a dense
    factor is inverted too, so that each step costs matrix-vector products
    rather than triangular solves.
    """
    if isinstance(inverse_mass_matrix, _Linear):
        return inverse_mass_matrix
    imm = jnp.asarray(inverse_mass_matrix)
    if imm.ndim <= 1:
        scale = jnp.sqrt(imm)
        return _Linear(lambda y: scale * y, lambda x: x / scale,
                       lambda g: scale * g, lambda g: g / scale, scale)
    chol = jnp.linalg.cholesky(imm)
    if reused:
        chol_inv = jsl.solve_triangular(chol, jnp.eye(chol.shape[0], dtype=chol.dtype),
                                        lower=True)
        return _Linear(lambda y: chol @ y, lambda x: chol_inv @ x,
                       lambda g: chol.T @ g, lambda g: chol_inv.T @ g, chol)
    return _Linear(
        lambda y: chol @ y,
        lambda x: jsl.solve_triangular(chol, x, lower=True),
        lambda g: chol.T @ g,
        lambda g: jsl.solve_triangular(chol.T, g, lower=False),
        chol,
    )


def _to_y(lin: _Linear, state):
    """A (position, logdensity, logdensity_grad) state of x, seen in y."""
    return state._replace(position=lin.to_y(state.position),
                          logdensity_grad=lin.grad_to_y(state.logdensity_grad))


def _to_x(lin: _Linear, state):
    return state._replace(position=lin.to_x(state.position),
                          logdensity_grad=lin.grad_to_x(state.logdensity_grad))


def _gradient_state_init(position, logdensity_fn):
    logdensity, grad = jax.value_and_grad(logdensity_fn)(position)
    return MALAState(position, logdensity, grad)


# --------------------------------------------------------------------------
# Algorithms shaped for blackjax.window_adaptation: an object with
# init(position, logdensity_fn) and build_kernel() -> kernel(key, state,
# logdensity_fn, step_size, inverse_mass_matrix, **extra) whose state has
# position and logdensity_grad and whose info has acceptance_rate.
# --------------------------------------------------------------------------
class _Adaptable(NamedTuple):
    init: Callable
    build_kernel: Callable


def _sanitised(kernel):
    """A NaN acceptance (e.g. a NaN gradient at the proposal) would poison dual averaging."""

    def wrapped(key, state, logdensity_fn, step_size, inverse_mass_matrix, **extra):
        new_state, info = kernel(key, state, logdensity_fn, step_size, inverse_mass_matrix, **extra)
        return new_state, info._replace(acceptance_rate=_finite_or_zero(info.acceptance_rate))

    return wrapped


def _whitened(inner_kernel, info_to_x=lambda lin, info: info):
    """Run a BlackJAX kernel ``(key, state, logdensity_fn, step_size)`` on y = L^-1 x.

    ``info_to_x`` maps any state the kernel reports in its info back to x.
    """

    def kernel(key, state, logdensity_fn, step_size, inverse_mass_matrix):
        lin = _linear_map(inverse_mass_matrix)
        logdensity_y = lambda y: logdensity_fn(lin.to_x(y))
        new_y, info = inner_kernel(key, _to_y(lin, state), logdensity_y, step_size)
        return _to_x(lin, new_y), info_to_x(lin, info)

    return kernel


def _preconditioned_mala_kernel():
    return _whitened(blackjax.mala.build_kernel())


def _preconditioned_barker_kernel():
    # BlackJAX's Barker takes a mass matrix, but with a strongly non-identity
    # one its step size collapsed in warmup (5e-4 on sds 0.01..1, R-hat 3.3),
    # so it is whitened like MALA and run with the identity.
    return _whitened(blackjax.barker.build_kernel(),
                     lambda lin, info: info._replace(proposal=_to_x(lin, info.proposal)))


def _jittered_hmc_kernel():
    hmc_kernel = blackjax.hmc.build_kernel()

    def kernel(key, state, logdensity_fn, step_size, inverse_mass_matrix,
               num_integration_steps, step_jitter=0.0):
        # Static HMC with a fixed path length can orbit with the target's period
        # and barely move (and then BlackJAX's dense warmup can return a NaN mass
        # matrix); a random step size per transition, a mixture of valid
        # kernels, breaks the resonance, as Stan's stepsize_jitter does.
        key, jitter_key = jax.random.split(key)
        step_size = step_size * jax.random.uniform(
            jitter_key, minval=1.0 - step_jitter, maxval=1.0 + step_jitter,
            dtype=jnp.result_type(step_size))
        return hmc_kernel(key, state, logdensity_fn, step_size, inverse_mass_matrix,
                          num_integration_steps)

    return kernel


class _RWInfo(NamedTuple):
    # No `proposal`: BlackJAX 1.7.1's RWInfo.proposal holds the new state, not
    # the proposal, so it cannot tell a non-finite proposal apart.
    acceptance_rate: Any
    is_accepted: Any


def _rwm_kernel():
    rw_kernel = blackjax.additive_step_random_walk.build_kernel()

    def kernel(key, state, logdensity_fn, step_size, inverse_mass_matrix):
        sigma = step_size * _linear_map(inverse_mass_matrix).factor
        rw_state = blackjax.mcmc.random_walk.RWState(state.position, state.logdensity)
        new, info = rw_kernel(key, rw_state, logdensity_fn,
                              blackjax.mcmc.random_walk.normal(sigma))
        # RWM uses no gradient; a zero placeholder keeps one state type for adaptation.
        new_state = MALAState(new.position, new.logdensity, jnp.zeros_like(new.position))
        return new_state, _RWInfo(info.acceptance_rate, info.is_accepted)

    return kernel


def _rwm_init(position, logdensity_fn):
    return MALAState(position, logdensity_fn(position), jnp.zeros_like(position))


_ALGORITHMS = {
    "nuts": _Adaptable(blackjax.nuts.init, lambda: _sanitised(blackjax.nuts.build_kernel())),
    "hmc": _Adaptable(blackjax.hmc.init, lambda: _sanitised(_jittered_hmc_kernel())),
    "mala": _Adaptable(_gradient_state_init, lambda: _sanitised(_preconditioned_mala_kernel())),
    "barker": _Adaptable(blackjax.barker.init,
                         lambda: _sanitised(_preconditioned_barker_kernel())),
    "rwm": _Adaptable(_rwm_init, lambda: _sanitised(_rwm_kernel())),
}


# --------------------------------------------------------------------------
# The Kernel implementations.
# --------------------------------------------------------------------------
_METRICS = ("welford_diag", "welford_dense", "fisher_diag")


def _check_options(name: str, opts: dict) -> None:
    """Checks shared by the step-size-tuned kernels."""
    ta = opts.get("target_accept")
    if ta is not None and not (isinstance(ta, (int, float)) and 0.0 < ta < 1.0):
        raise OptionError(f"target_accept must be a number in (0, 1); got {ta!r}.")
    if "dense_mass" in opts:
        check_bool("dense_mass", opts["dense_mass"])
    for key in ("step_size", "L"):
        v = opts.get(key)
        if v is not None and not (isinstance(v, (int, float)) and v > 0):
            raise OptionError(f"{key} for {name!r} must be a positive number; got {v!r}.")

def _usable_imm(imm):
    """The adapted inverse mass matrix, or the identity where it is unusable.

    Warmup on an energy that is unbounded below can end with zero or
    non-finite entries; whitening by them would divide by zero.
    """
    if imm.ndim == 1:
        return jnp.where(jnp.isfinite(imm) & (imm > 0), imm, 1.0)
    ok = jnp.all(jnp.isfinite(imm)) & jnp.all(jnp.diag(imm) > 0)
    return jnp.where(ok, imm, jnp.eye(imm.shape[0], dtype=imm.dtype))


def _initial_imm(dim, dense):
    return jnp.eye(dim) if dense else jnp.ones((dim,))


@dataclasses.dataclass(frozen=True, eq=False)
class AdjustedKernel(Kernel):
    """A Metropolis-adjusted BlackJAX kernel tuned by ``window_adaptation``.

    Options common to all: ``dense_mass`` (bool), ``target_accept`` (float),
    ``metric`` (a BlackJAX metric recipe: ``"welford_diag"``, ``"welford_dense"``,
    ``"fisher_diag"``; default by method), ``step_size`` and
    ``inverse_mass_matrix`` (used with ``adapt=False``).
    """

    name: str
    target_accept: float
    extra_defaults: Mapping = dataclasses.field(default_factory=dict)
    supports: tuple = ("real",)
    #: Mass-matrix estimator when ``dense_mass=False`` (a BlackJAX metric recipe).
    diag_metric: str = "welford_diag"
    #: Whether the proposal uses gradients (``fisher_diag`` needs them).
    uses_gradients: bool = True
    #: Whether BlackJAX's kernel takes a prebuilt ``Metric`` (HMC, NUTS) rather
    #: than the whitening linear map of the kernels written here.
    takes_metric: bool = False
    #: Whether divergences after warmup are worth a warning (a trajectory
    #: that diverged: HMC, NUTS).
    warns_divergences: bool = False

    @property
    def defaults(self) -> Mapping:
        return MappingProxyType({"dense_mass": False, "target_accept": self.target_accept,
                                 "metric": None, "step_size": None,
                                 "inverse_mass_matrix": None, **self.extra_defaults})

    def _extra(self, options) -> dict:
        """Options BlackJAX's kernel takes as keyword arguments."""
        opts = dict(options)
        return {k: opts[k] for k in self.extra_defaults}

    def validate(self, options, dim) -> None:
        """Raise :class:`OptionError` for option values that cannot work."""
        opts = dict(options)
        _check_options(self.name, opts)
        metric = opts["metric"]
        if metric is not None and metric not in _METRICS:
            raise OptionError(f"metric={metric!r} is not one of {sorted(_METRICS)}.")
        if not self.uses_gradients and self.metric(options) == "fisher_diag":
            raise OptionError("metric='fisher_diag' needs gradients; rwm has none. "
                              "Use 'welford_diag' or 'welford_dense'.")
        jitter = opts.get("step_jitter", 0.0)
        if not (isinstance(jitter, (int, float)) and 0.0 <= jitter < 1.0):
            raise OptionError(f"step_jitter must be a number in [0, 1); got {jitter!r}.")
        for name in ("max_num_doublings", "num_integration_steps"):
            if name in opts and (not isinstance(opts[name], int) or opts[name] < 1):
                raise OptionError(f"{name} must be a positive integer; got {opts[name]!r}.")

    def init(self, key, position, logdensity_fn, params, options):
        return _ALGORITHMS[self.name].init(position, logdensity_fn)

    def prepare(self, params, options):
        """Factor a dense inverse mass matrix once rather than at every step.

        BlackJAX's HMC and NUTS take a prebuilt ``Metric`` (its constructor
        does the factorisation); the whitened kernels take the linear map.
        """
        imm = params["inverse_mass_matrix"]
        if jnp.ndim(imm) != 2:
            return params
        if self.takes_metric:
            return {**params, "inverse_mass_matrix": blackjax.mcmc.metrics.default_metric(imm)}
        return {**params, "inverse_mass_matrix": _linear_map(imm, reused=True)}

    def _raw_step(self, key, state, logdensity_fn, params, options):
        kernel = _ALGORITHMS[self.name].build_kernel()
        return kernel(key, state, _finite_logdensity(logdensity_fn), params["step_size"],
                      params["inverse_mass_matrix"], **self._extra(options))

    def step(self, key, state, logdensity_fn, params, options):
        new_state, info = self._raw_step(key, state, logdensity_fn, params, options)
        # NUTS averages acceptance over a tree in float32; keep it a probability.
        acc = jnp.clip(info.acceptance_rate, 0.0, 1.0)
        stats = {"lp": new_state.logdensity, "acceptance_rate": acc,
                 "step_size": params["step_size"]}
        if hasattr(info, "is_divergent"):
            stats["diverging"] = info.is_divergent
            stats["energy"] = info.energy
            stats["n_steps"] = info.num_integration_steps
            if hasattr(info, "num_trajectory_expansions"):
                stats["tree_depth"] = info.num_trajectory_expansions
        elif hasattr(info, "proposal"):
            # No trajectory to diverge: count proposals with a non-finite energy
            # or gradient as numerical trouble.
            prop = info.proposal
            stats["diverging"] = ~(jnp.isfinite(prop.logdensity)
                                   & jnp.all(jnp.isfinite(prop.logdensity_grad)))
        else:
            # BlackJAX's MALA and RWM do not return their proposal: one whose
            # acceptance underflowed to exactly zero (non-finite energy or
            # gradient, or an energy jump beyond ~100 nats) is counted instead.
            stats["diverging"] = acc <= 0.0
        return new_state, stats

    def metric(self, options) -> str:
        """The BlackJAX metric recipe used in warmup."""
        opts = dict(options)
        if opts["metric"] is not None:
            return opts["metric"]
        return "welford_dense" if opts["dense_mass"] else self.diag_metric

    def warmup(self, key, position, logdensity_fn, num_steps, options, tick=None):
        opts = dict(options)
        every = tick_interval(num_steps)

        def info_fn(state, info, adapt_state):
            if tick is not None:
                # The dual-averaging counter is shared by all chains (so the
                # tick is not repeated under vmap); it restarts with each
                # window, and the meter caps the count at the total.
                tick(adapt_state.ss_state.step, every)
            # One stacked record per step: one write per step, not two.
            return jnp.stack([info.acceptance_rate, adapt_state.step_size])

        # staged_adaptation is the engine behind blackjax.window_adaptation
        # (same Stan schedule and dual averaging); called directly so that the
        # mass-matrix estimator can be chosen.
        adapt = blackjax.staged_adaptation(
            _ALGORITHMS[self.name], _finite_logdensity(logdensity_fn),
            metric=self.metric(options), target_acceptance_rate=opts["target_accept"],
            adaptation_info_fn=info_fn,
            **self._extra(options),
        )
        (state, params), info = adapt.run(key, position, num_steps)
        params = {"step_size": params["step_size"],
                  "inverse_mass_matrix": _usable_imm(params["inverse_mass_matrix"])}
        trace = {"acceptance_rate": info[:, 0], "step_size": info[:, 1]}
        return WarmupResult(state, params, trace)

    def default_params(self, dim, options):
        opts = dict(options)
        imm = opts["inverse_mass_matrix"]
        imm = _initial_imm(dim, opts["dense_mass"]) if imm is None else jnp.asarray(imm)
        return {"step_size": jnp.asarray(opts["step_size"], dtype=imm.dtype),
                "inverse_mass_matrix": imm}


# --------------------------------------------------------------------------
# ULA's bias, measured. On a Gaussian whose (whitened) precision has an
# eigenvalue lam, the Euler step y + h grad + sqrt(2 h) xi leaves the variance
# along that eigenvector at (1 / lam) / (1 - h lam / 2): the stiffest direction
# (largest lam) is inflated most. Acceptance does not bound this (ULA has
# none), so the largest eigenvalue of the whitened Hessian of E is estimated
# by power iteration on Hessian-vector products at a few positions.
# --------------------------------------------------------------------------
_POWER_ITERATIONS = 20
_CURVATURE_POSITIONS = 3
# MALA steps between the positions measured (adjusted, so safe at any step).
_CURVATURE_SPACING = 5


def _power_iteration(matvec, v, num_steps):
    """``num_steps`` of power iteration from ``v`` ``(dim,)``: ``(Rayleigh quotient, vector)``."""

    def normalised(w):
        norm = jnp.linalg.norm(w)
        # A zero Hessian (flat energy) would divide by zero; its quotient is 0.
        return w / jnp.where(norm > 0, norm, 1.0)

    v, _ = jax.lax.scan(lambda u, _: (normalised(matvec(u)), None), normalised(v), None,
                        length=num_steps)
    return jnp.vdot(v, matvec(v)), v


def _stiffest_curvature(logdensity_fn, lin, position, v0):
    """Largest eigenvalue of the whitened Hessian of E at ``position`` ``(dim,)``.

    Power iteration finds the eigenvalue of largest magnitude; where that one
    is negative (a saddle between modes) a second pass on ``H + |mu| I``, whose
    eigenvalues are all >= 0, finds the largest. Returns ``(lam, vector)``;
    ``lam`` is NaN where the energy or its derivatives are not finite.
    """
    y = lin.to_y(position)
    grad_y = jax.grad(lambda u: logdensity_fn(lin.to_x(u)))
    hvp = lambda v: -jax.jvp(grad_y, (y,), (v,))[1]
    mu, v = _power_iteration(hvp, v0, _POWER_ITERATIONS)
    shift = jnp.maximum(-mu, 0.0)
    # From mu's own vector the shifted pass would start at eigenvalue 0.
    start = jnp.where(mu < 0, v0, v)
    rho, v = _power_iteration(lambda u: hvp(u) + shift * u, start, _POWER_ITERATIONS)
    # A target may read a NaN energy as -inf (zero derivatives there): the
    # curvature of such a point is unknown, not zero.
    known = jnp.isfinite(logdensity_fn(position))
    return jnp.where(known, rho - shift, jnp.nan), v


def _measure_curvature(key, state, logdensity_fn, params):
    """ULA's worst-direction curvature ``lam_max`` (scalar) around ``state``.

    The largest over ``_CURVATURE_POSITIONS`` positions ``_CURVATURE_SPACING``
    MALA steps apart (with ``params``' step and preconditioner), so that a
    curvature that varies across the typical set is seen more than once.
    Positions where it is not finite (a NaN region) are left out; NaN only
    when none is finite. One compiled program: no host loop.
    """
    lin = _linear_map(params["inverse_mass_matrix"])
    mala = _ALGORITHMS["mala"].build_kernel()
    safe = _finite_logdensity(logdensity_fn)
    v_key, walk_key = jax.random.split(key)
    v0 = jax.random.normal(v_key, state.position.shape, state.position.dtype)

    def position(carry, k):
        s, v = carry
        s = jax.lax.fori_loop(
            0, _CURVATURE_SPACING,
            lambda i, s: mala(jax.random.fold_in(k, i), s, safe, params["step_size"],
                              params["inverse_mass_matrix"])[0], s)
        lam, v_new = _stiffest_curvature(logdensity_fn, lin, s.position, v)
        # A warm start helps the next position, unless this one was not finite.
        v = jnp.where(jnp.all(jnp.isfinite(v_new)), v_new, v)
        return (s, v), lam

    start = MALAState(state.position, state.logdensity, state.logdensity_grad)
    _, lams = jax.lax.scan(position, (start, v0),
                           jax.random.split(walk_key, _CURVATURE_POSITIONS))
    finite = jnp.isfinite(lams)
    return jnp.where(jnp.any(finite), jnp.max(jnp.where(finite, lams, -jnp.inf)), jnp.nan)


def _variance_inflation(step_size, curvature):
    """ULA's stationary variance over the target's along the stiffest direction.

    ``1 / (1 - h lam / 2)`` for step ``h`` and whitened curvature ``lam``
    (exact on a Gaussian); ``inf`` where ``h lam >= 2`` (the chain diverges),
    1 where the curvature is not positive, NaN where it is unknown.
    """
    half = step_size * jnp.maximum(curvature, 0.0) / 2.0
    inflation = jnp.where(half < 1.0, 1.0 / (1.0 - jnp.where(half < 1.0, half, 0.0)), jnp.inf)
    return jnp.where(jnp.isnan(curvature), jnp.nan, inflation)


def _check_max_bias(b) -> None:
    if b is None:
        return
    if isinstance(b, bool) or not (isinstance(b, (int, float)) and 0.0 < b < 1.0):
        raise OptionError(
            f"max_bias must be a number in (0, 1), the largest tolerated relative "
            f"variance inflation of the unadjusted Langevin chain (e.g. 0.03 for 3%), "
            f"or None to leave the step uncapped; got {b!r}.")


@dataclasses.dataclass(frozen=True, eq=False)
class LangevinKernel(Kernel):
    """Unadjusted Langevin (ULA): BlackJAX's overdamped Langevin Euler step, no
    Metropolis correction, so its draws follow a law that differs from exp(-E)
    by an amount that grows with the step size.

    Warmup tunes the step size and a preconditioner as for MALA but for 90%
    acceptance (``target_accept``), then caps the step by the target's
    curvature: with ``lam_max`` the largest eigenvalue of the preconditioned
    Hessian of E (power iteration on Hessian-vector products at a few
    positions after warmup), the variance along the stiffest direction is
    inflated by ``1 / (1 - h lam_max / 2)`` on a Gaussian, and the step ``h``
    is cut to ``2 b / ((1 + b) lam_max)`` so that this is at most ``1 + b``,
    ``b = max_bias`` (default 0.03; ``None``: no cap). Exact for Gaussian
    targets, a heuristic elsewhere. Where the curvature is not finite the
    step stays uncapped. ``adapt=False`` runs the given step uncapped.

    The estimate is measured in every run (after warmup, or at the chains'
    positions after an untuned burn-in) and reported as the stat
    ``variance_inflation`` (``(chains, draws)``, constant per chain); the
    tuned ``params`` hold ``curvature`` (``lam_max``) per chain.
    """

    name: str = "langevin"
    supports: tuple = ("real",)
    defaults: Mapping = dataclasses.field(default_factory=lambda: MappingProxyType(
        {"dense_mass": False, "target_accept": 0.9, "metric": None, "step_size": None,
         "inverse_mass_matrix": None, "max_bias": 0.03}))

    def validate(self, options, dim) -> None:
        _MALA.validate(options, dim)
        _check_max_bias(dict(options).get("max_bias"))

    def init(self, key, position, logdensity_fn, params, options):
        return _gradient_state_init(position, logdensity_fn)

    def prepare(self, params, options):
        return _MALA.prepare(params, options)

    def step(self, key, state, logdensity_fn, params, options):
        lin = _linear_map(params["inverse_mass_matrix"])
        logdensity_y = lambda y: logdensity_fn(lin.to_x(y))
        one_step = overdamped_langevin(jax.value_and_grad(logdensity_y))
        old_y = _to_y(lin, state)
        new_y = MALAState(*one_step(key, old_y, params["step_size"]))
        new = _to_x(lin, new_y)
        ok = jnp.isfinite(new.logdensity) & jnp.all(jnp.isfinite(new.logdensity_grad))
        # No accept step to absorb numerical trouble: refuse the move and count it.
        new = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, state)
        mh = jnp.where(ok, langevin_mh_acceptance(old_y, new_y, params["step_size"]), 0.0)
        dtype = new.logdensity.dtype
        stats = {"lp": new.logdensity, "acceptance_rate": ok.astype(dtype),
                 "diverging": ~ok, "step_size": params["step_size"],
                 "mh_acceptance_rate": mh.astype(dtype)}
        # Only sample()'s runs measure the curvature; learners' chains do not.
        if "curvature" in params:
            stats["variance_inflation"] = _variance_inflation(
                params["step_size"], params["curvature"]).astype(dtype)
        return new, stats

    def warmup(self, key, position, logdensity_fn, num_steps, options, tick=None):
        warm = _MALA.warmup(key, position, logdensity_fn, num_steps, options, tick=tick)
        params = warm.params
        lam = _measure_curvature(jax.random.fold_in(key, 1), warm.state, logdensity_fn,
                                 params)
        step = params["step_size"]
        b = dict(options)["max_bias"]
        if b is not None:
            cap = 2.0 * b / ((1.0 + b) * lam)
            step = jnp.where(jnp.isfinite(lam) & (lam > 0), jnp.minimum(step, cap), step)
        params = {**params, "step_size": step.astype(params["step_size"].dtype),
                  "curvature": lam.astype(params["step_size"].dtype)}
        return WarmupResult(warm.state, params, warm.info)

    def after_burn_in(self, key, state, logdensity_fn, params, options):
        """``params`` with the curvature measured around an untuned chain's ``state``."""
        lam = _measure_curvature(key, state, logdensity_fn, params)
        return {**params, "curvature": lam.astype(params["step_size"].dtype)}

    def default_params(self, dim, options):
        return _MALA.default_params(dim, options)


@dataclasses.dataclass(frozen=True, eq=False)
class MCLMCKernel(Kernel):
    """Microcanonical Langevin Monte Carlo, tuned by ``blackjax.mclmc_find_L_and_step_size``.

    Unadjusted like ULA (no Metropolis step); its energy-variance tuning keeps
    the bias small. Options: ``L``, ``step_size`` (for ``adapt=False``),
    ``diagonal_preconditioning``.
    """

    name: str = "mclmc"
    supports: tuple = ("real",)
    # Not a dataclass field (no annotation): a fact of the kernel, not an option.
    grad_evals_per_step = 2
    defaults: Mapping = dataclasses.field(default_factory=lambda: MappingProxyType(
        {"L": None, "step_size": None, "diagonal_preconditioning": True}))

    def validate(self, options, dim) -> None:
        _check_options(self.name, dict(options))
        if dim < 2:
            raise OptionError("mclmc needs a target of at least 2 dimensions; use nuts or mala.")

    def init(self, key, position, logdensity_fn, params, options):
        return blackjax.mclmc.init(position, logdensity_fn, key)

    def step(self, key, state, logdensity_fn, params, options):
        kernel = blackjax.mclmc.build_kernel()
        new, info = kernel(key, state, logdensity_fn, params["inverse_mass_matrix"],
                           params["L"], params["step_size"])
        finite = jnp.isfinite(info.energy_change)
        return new, {"lp": new.logdensity, "acceptance_rate": jnp.ones_like(new.logdensity),
                     "diverging": ~finite, "energy": _finite_or_zero(info.energy_change),
                     "step_size": params["step_size"]}

    def warmup(self, key, position, logdensity_fn, num_steps, options):
        opts = dict(options)
        init_key, tune_key = jax.random.split(key)
        state = blackjax.mclmc.init(position, logdensity_fn, init_key)
        # The three tuning phases take 10% each of the nominal run length, so a
        # nominal length of num_steps / 0.3 spends exactly num_steps in warmup.
        nominal = max(int(round(num_steps / 0.3)), 10)
        state, tuned, _ = blackjax.mclmc_find_L_and_step_size(
            mclmc_kernel=blackjax.mclmc.build_kernel(), num_steps=nominal, state=state,
            rng_key=tune_key, logdensity_fn=logdensity_fn,
            diagonal_preconditioning=opts["diagonal_preconditioning"])
        imm = jnp.broadcast_to(jnp.asarray(tuned.inverse_mass_matrix, position.dtype),
                               position.shape)
        params = {"L": jnp.asarray(tuned.L, position.dtype),
                  "step_size": jnp.asarray(tuned.step_size, position.dtype),
                  "inverse_mass_matrix": imm}
        return WarmupResult(state, params, {})

    def default_params(self, dim, options):
        opts = dict(options)
        return {"L": jnp.asarray(opts["L"], jnp.result_type(float)),
                "step_size": jnp.asarray(opts["step_size"], jnp.result_type(float)),
                "inverse_mass_matrix": jnp.ones((dim,))}


# Gradient-based proposals without momentum mix slowly while warmup collects
# draws, so Welford variances of a poorly conditioned target are still far off
# when the windows close (bulk ESS 14 of 4000 on the 100-d benchmark Gaussian).
# The Fisher-divergence diagonal uses gradients too and is right after a few
# draws (ESS 235 there), so it is their default; NUTS/HMC keep Stan's Welford.
_MALA = AdjustedKernel("mala", 0.574, diag_metric="fisher_diag")

CONTINUOUS_KERNELS = {
    "nuts": AdjustedKernel("nuts", 0.8, MappingProxyType({"max_num_doublings": 10}),
                           takes_metric=True, warns_divergences=True),
    "hmc": AdjustedKernel("hmc", 0.65, MappingProxyType({"num_integration_steps": 16,
                                                         "step_jitter": 0.2}),
                          takes_metric=True, warns_divergences=True),
    "mala": _MALA,
    # Barker's proposal is tuned best near 40% acceptance (Vogrinc, Livingstone
    # and Zanella, 2023), RWM near 23.4% (Roberts, Gelman and Gilks, 1997).
    "barker": AdjustedKernel("barker", 0.4, diag_metric="fisher_diag"),
    "rwm": AdjustedKernel("rwm", 0.234, uses_gradients=False),
    "langevin": LangevinKernel(),
    "mclmc": MCLMCKernel(),
}
