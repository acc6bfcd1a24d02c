"""Nested sampling: BlackJAX's nested slice sampler (``blackjax.nss``), wrapped for comparison.

The prior is the reference ``q0`` and the likelihood ``p / q0``, so the
evidence is ``∫ q0 (p / q0) = Z``. BlackJAX does the sampling and its
``ns.utils`` the volume simulation; this module only drives the run (host
loop over compiled chunks, stopped when the live points could add less than
``tol`` nats) and turns BlackJAX's simulated log-volumes into a ``log Z``
with a spread.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
from blackjax.ns import utils as ns_utils
from jax.scipy.special import logsumexp

from energymc._util import check_option_int as _check_int
from energymc._util import kish_ess
from energymc.energy import jit_over_target
from energymc.errors import OptionError

__all__ = ["NESTED_DEFAULTS", "run_nested", "validate_nested"]

NESTED_DEFAULTS = {
    "live_points": 500,
    "num_inner_steps": None,
    "num_delete": 50,
    "tol": 0.01,
    "max_iterations": 100_000,
    "chunk": 20,
}


class _Cfg(NamedTuple):
    live_points: int
    num_inner_steps: int
    num_delete: int
    chunk: int


def validate_nested(target, opts):
    o = dict(opts)
    o["live_points"] = _check_int("live_points", o["live_points"], 2)
    o["num_delete"] = _check_int("num_delete", o["num_delete"], 1)
    o["chunk"] = _check_int("chunk", o["chunk"], 1)
    o["max_iterations"] = _check_int("max_iterations", o["max_iterations"], 1)
    if o["num_delete"] >= o["live_points"]:
        raise OptionError(f"num_delete= ({o['num_delete']}) must be below live_points= "
                          f"({o['live_points']}).")
    if o["num_inner_steps"] is None:
        # BlackJAX's advice for reliable mixing inside the contour.
        o["num_inner_steps"] = max(5, 2 * target.dim)
    o["num_inner_steps"] = _check_int("num_inner_steps", o["num_inner_steps"], 1)
    if not (isinstance(o["tol"], (int, float)) and o["tol"] > 0):
        raise OptionError(f"tol= must be a positive number of nats; got {o['tol']!r}.")
    o["_cfg"] = _Cfg(o["live_points"], o["num_inner_steps"], o["num_delete"], o["chunk"])
    return o


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
    return alg.init(ref.sample(k0, cfg.live_points), k1)


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


def run_nested(target, ref, key, o) -> dict:
    cfg = o["_cfg"]
    state = _init(jax.random.fold_in(key, 0), ref, target=target, cfg=cfg)
    dead = []
    it = 0
    evals = float(cfg.live_points)
    converged = False
    while it < o["max_iterations"]:
        state, info = _chunk(jax.random.fold_in(key, it + 1), state, ref, target=target, cfg=cfg)
        # Each scan step deleted num_delete points: flatten (chunk, num_delete).
        flat = jax.tree.map(lambda a: a.reshape((-1, *a.shape[2:])), info.particles)
        dead.append(blackjax.ns.base.NSInfo(flat, None))
        evals += _evals(info.update_info) + cfg.chunk * cfg.num_delete * cfg.num_inner_steps
        it += cfg.chunk
        integ = state.integrator
        log_z, log_z_live = float(integ.logZ), float(integ.logZ_live)
        if math.isfinite(log_z) and np.logaddexp(log_z, log_z_live) - log_z < o["tol"]:
            converged = True
            break
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
        problems.append(f"nested sampling hit max_iterations={o['max_iterations']} before "
                        f"the live points' share fell below tol={o['tol']}; raise "
                        "max_iterations=.")
    stages = {"beta": np.array([1.0]), "ess": np.array([ess])}
    return {"log_z": log_z, "stderr": stderr, "ess": ess, "stages": stages,
            "particles": np.asarray(final.particles.position), "weights": w,
            "grad_evals": evals, "problems": problems,
            "info": {"iterations": it, "num_dead": int(w.size),
                     "evals_note": "likelihood evaluations (no gradients)",
                     "log_likelihood": np.asarray(final.particles.loglikelihood)}}
