"""Nested sampling: BlackJAX's nested slice sampler (``blackjax.nss``), wrapped for comparison.

The prior is the reference ``q0`` and the likelihood ``p / q0``, so the
evidence is ``∫ q0 (p / q0) = Z``. BlackJAX does the sampling and its
``ns.utils`` the volume simulation; this module only drives the run (host
loop over compiled chunks, stopped when the live points could add less than
``tol`` nats) and turns BlackJAX's simulated log-volumes into a ``log Z``
with a spread.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
from blackjax.ns import utils as ns_utils
from jax.scipy.special import logsumexp

from energymc._util import check_option_int as _check_int
from energymc._util import kish_ess, renamed
from energymc.energy import jit_over_target
from energymc.errors import OptionError
from energymc.logz._method import Context, Estimate, LogZMethod, register

__all__ = ["Nested", "NestedOptions", "run_nested"]

_DEFAULT_PARTICLES = 500
#: Default slice-sampling steps per new live point: this many per dimension,
#: at least ``_MIN_INNER_STEPS``. 5 per dimension is PolyChord's default
#: (``num_repeats``); chosen over 2 and 3 on the zoo's TUNING half, where 2
#: left 7 silent misses in 65 runs (rings and double wells read off by 0.3-1.9
#: nats with stderrs of 0.1-0.3: the slice chains had not forgotten their start)
#: and 5 left one (benchmarks/RESULTS.md, "Nested sampling's inner steps").
_INNER_STEPS_PER_DIM = 5
_MIN_INNER_STEPS = 5


@dataclasses.dataclass(frozen=True)
class NestedOptions:
    """Nested sampling's options and their defaults (see :func:`energymc.log_partition`).

    ``particles`` is the number of live points (500 when not given);
    ``live_points`` is its deprecated name, read for one more release.
    ``num_delete`` (the points replaced per step) defaults to a tenth of them.
    """

    particles: int | None = None
    live_points: int | None = None
    num_inner_steps: int | None = None
    num_delete: int | None = None
    tol: float = 0.01
    max_iterations: int = 100_000
    chunk: int = 20


class _Cfg(NamedTuple):
    particles: int
    num_inner_steps: int
    num_delete: int
    chunk: int


@dataclasses.dataclass(frozen=True)
class NestedContext(Context):
    """The static configuration nested sampling compiles with."""

    cfg: Any = None


def validate_nested(target, opts: NestedOptions) -> NestedContext:
    """Check nested-sampling options eagerly; returns the call's context."""
    # Stack: renamed <- validate_nested <- Nested.validate <- log_partition <- the user.
    particles = renamed("live_points", "particles", opts.live_points, opts.particles,
                        default=_DEFAULT_PARTICLES, stacklevel=5)
    particles = _check_int("particles", particles, 2)
    num_delete = max(1, particles // 10) if opts.num_delete is None else opts.num_delete
    o = dataclasses.replace(
        opts, particles=particles, live_points=None,
        num_delete=_check_int("num_delete", num_delete, 1),
        chunk=_check_int("chunk", opts.chunk, 1),
        max_iterations=_check_int("max_iterations", opts.max_iterations, 1))
    if o.num_delete >= o.particles:
        raise OptionError(f"num_delete= ({o.num_delete}) must be below particles= "
                          f"({o.particles}), the number of live points.")
    inner = (max(_MIN_INNER_STEPS, _INNER_STEPS_PER_DIM * target.dim)
             if o.num_inner_steps is None else o.num_inner_steps)
    o = dataclasses.replace(o, num_inner_steps=_check_int("num_inner_steps", inner, 1))
    if not (isinstance(o.tol, (int, float)) and o.tol > 0):
        raise OptionError(f"tol= must be a positive number of nats; got {o.tol!r}.")
    return NestedContext(options=o, cfg=_Cfg(o.particles, o.num_inner_steps, o.num_delete,
                                             o.chunk))


def _algorithm(target, ref, cfg):
    target_lp = target.flat_logdensity

    def loglik(z):
        v = target_lp(z) - ref.log_prob(z)
        return jnp.where(jnp.isnan(v), -jnp.inf, v)

    return blackjax.nss(logprior_fn=ref.log_prob, loglikelihood_fn=loglik,
                        num_inner_steps=cfg.num_inner_steps, num_delete=cfg.num_delete)


@jit_over_target(("target", "cfg"))
def _init(key, ref, *, target, cfg):
    alg = _algorithm(target, ref, cfg)
    k0, k1 = jax.random.split(key)
    return alg.init(ref.sample(k0, cfg.particles), k1)


@jit_over_target(("target", "cfg"))
def _chunk(key, state, ref, *, target, cfg):
    alg = _algorithm(target, ref, cfg)

    def one(state, k):
        state, info = alg.step(k, state)
        return state, info

    return jax.lax.scan(one, state, jax.random.split(key, cfg.chunk))


def _evals(update_info) -> float:
    total = 0.0
    for name in ("num_expansions", "num_shrink"):
        if hasattr(update_info, name):
            total += float(np.sum(np.asarray(getattr(update_info, name))))
    return total


def _sample_until_converged(target, ref, key, ctx):
    """Host loop over compiled chunks until the live points could add < ``tol`` nats.

    Returns ``(state, dead, iterations, evals, converged)``.
    """
    cfg, o = ctx.cfg, ctx.options
    state = _init(jax.random.fold_in(key, 0), ref, target=target, cfg=cfg)
    dead = []
    it = 0
    evals = float(cfg.particles)
    converged = False
    while it < o.max_iterations:
        state, info = _chunk(jax.random.fold_in(key, it + 1), state, ref, target=target, cfg=cfg)
        # Each scan step deleted num_delete points: flatten (chunk, num_delete).
        flat = jax.tree.map(lambda a: a.reshape((-1, *a.shape[2:])), info.particles)
        dead.append(blackjax.ns.base.NSInfo(flat, None))
        evals += _evals(info.update_info) + cfg.chunk * cfg.num_delete * cfg.num_inner_steps
        it += cfg.chunk
        integ = state.integrator
        log_z, log_z_live = float(integ.logZ), float(integ.logZ_live)
        if math.isfinite(log_z) and np.logaddexp(log_z, log_z_live) - log_z < o.tol:
            converged = True
            break
    return state, dead, it, evals, converged


def run_nested(target, ref, key, ctx: NestedContext) -> Estimate:
    """One nested-sampling run; log Z and its spread from BlackJAX's simulated volumes."""
    o = ctx.options
    state, dead, it, evals, converged = _sample_until_converged(target, ref, key, ctx)
    final = ns_utils.finalise(state, dead, update_info=False)
    # BlackJAX simulates the shrinkage of prior volume 100 times; every
    # simulation gives one log Z, and their spread is the error bar.
    sims = np.asarray(ns_utils.log_weights(jax.random.fold_in(key, 2**31 - 1), final, shape=100),
                      dtype=float)
    sims = np.where(np.isnan(sims), -np.inf, sims)
    log_z_sims = logsumexp(sims, axis=0)
    log_z = float(np.mean(log_z_sims))
    stderr = float(np.std(log_z_sims, ddof=1))
    logw = logsumexp(sims, axis=1) - math.log(sims.shape[1])
    logw = np.where(np.isfinite(logw), logw, -np.inf)
    w = np.exp(logw - logsumexp(logw))
    ess = float(kish_ess(w))
    problems = []
    if not converged:
        problems.append(f"nested sampling hit max_iterations={o.max_iterations} before "
                        f"the live points' share fell below tol={o.tol}; raise "
                        "max_iterations=.")
    stages = {"beta": np.array([1.0]), "ess": np.array([ess])}
    return Estimate(log_z=log_z, stderr=stderr, ess=ess, stages=stages,
                    particles=np.asarray(final.particles.position), weights=w,
                    grad_evals=evals, problems=problems,
                    info={"iterations": it, "num_dead": int(w.size),
                          "evals_note": "likelihood evaluations (no gradients)",
                          "log_likelihood": np.asarray(final.particles.loglikelihood)})


class Nested(LogZMethod):
    """BlackJAX's nested slice sampling (``blackjax.nss``)."""

    name = "nested"
    supports = ("real",)
    defaults = NestedOptions()
    replicates = 1

    def validate(self, options, target):
        return validate_nested(target, self.options(options))

    def run(self, target, ref, key, ctx):
        return run_nested(target, ref, key, ctx)


register(Nested())
