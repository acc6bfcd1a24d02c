"""``log_partition(method="pt")``: parallel tempering with a reference rung and stepping stones.

The ladder runs from ``beta = 0`` (the normalised reference ``q0``, redrawn
exactly every round) to ``beta = 1`` (the target), with the PT machinery of
:mod:`energymc.kernels.tempering` (non-reversible swaps, adaptive ladder).
The stepping-stone identity (Xie et al., 2011)

    log Z = sum_k log E_{pi_beta_k}[ exp((beta_{k+1} - beta_k) * ll(x)) ],
    ll = log p - log q0,

is estimated with each rung's draws. Every chain adapts its own ladder and
gives its own estimate; ``log_z`` is the log of their mean ``Z`` and
``stderr`` is the larger of batch means (``batches`` per chain, which sees
autocorrelation within a batch) and the spread between the independent
chains (which sees the rest).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from energymc import _sharding, diagnostics
from energymc._util import check_option_int as _check_int
from energymc.energy import jit_over_target
from energymc.errors import OptionError
from energymc.kernels.tempering import (
    TemperedPath,
    initial_base_params,
    initial_ladder,
    pt_step,
    warmup_finish,
    warmup_plan,
    warmup_round,
    warmup_start,
)
from energymc.logz._ais import resolve_kernel
from energymc.logz._method import Context, Estimate, LogZMethod, register

__all__ = ["PT", "PTOptions", "multichain_ess", "run_pt_logz"]

# Flag a run when the autocorrelation-aware error bar (from centred
# log-weights) exceeds this many nats and 3x the reported stderr. On the zoo's
# well-mixed runs it is 0.00-0.11 nats; it is one of two checks for draws too
# correlated for the stderr, the other being the round trips below
# (benchmarks/RESULTS.md, "what PT's autocorrelation check measures").
_AUTOCORR_LIMIT = 0.5
# Flag a run whose chains made fewer round trips than this a batch on average.
_MIN_ROUND_TRIPS_PER_BATCH = 2.5

@dataclasses.dataclass(frozen=True)
class PTOptions:
    """Parallel tempering's options and their defaults (see :func:`energymc.log_partition`)."""

    replicas: int = 16
    chains: int = 4
    draws: int = 1000
    warmup: int = 500
    kernel: str | None = None
    kernel_options: dict | None = None
    local_steps: int = 1
    adapt_ladder: bool = True
    target_accept: float | None = None
    step_size: float | None = None
    batches: int = 10


class _Cfg(NamedTuple):
    replicas: int
    chains: int
    draws: int
    warmup: int
    local_steps: int
    adapt_ladder: bool
    target_accept: float | None


@dataclasses.dataclass(frozen=True)
class PTContext(Context):
    """The local kernel, its options and the static configuration PT compiles with.

    ``stages``: the :class:`energymc.logz._checkpoint.StageSaver` of the run
    (``log_partition(checkpoint=...)``), or ``None`` (one compiled program).
    """

    kernel: Any = None
    kernel_options: Any = ()
    cfg: Any = None
    stages: Any = None


def validate_pt_logz(target, opts: PTOptions) -> PTContext:
    """Check PT options eagerly (before anything compiles); returns the call's context."""
    checked = {name: _check_int(name, getattr(opts, name), lo)
               for name, lo in (("replicas", 2), ("chains", 1), ("draws", 2), ("warmup", 0),
                                ("local_steps", 1), ("batches", 1))}
    o = dataclasses.replace(opts, **checked)
    if o.batches > o.draws:
        raise OptionError(f"batches= ({o.batches}) cannot exceed draws= ({o.draws}).")
    kernel, kopts = resolve_kernel(target, o.kernel, o.kernel_options, "log_partition")
    ta = o.target_accept
    if ta is None:
        ta = dict(kopts).get("target_accept")
    cfg = _Cfg(o.replicas, o.chains, o.draws, o.warmup, o.local_steps, bool(o.adapt_ladder),
               None if ta is None else float(ta))
    return PTContext(options=o, kernel=kernel, kernel_options=kopts, cfg=cfg)


def _ladder(ref, step_size, *, target, base, bopts, cfg: _Cfg):
    """The tempered path, the starting ladder ``(R,)`` and the rungs' kernel params."""
    target_lp = target.flat_logdensity

    def ll_fn(z):
        return target_lp(z) - ref.log_prob(z)

    path = TemperedPath(ref.log_prob, ll_fn, ref)
    dim = target.dim
    betas0 = initial_ladder(cfg.replicas, 0.0, target.flat_init.dtype)
    # Rung beta has a density between q0 and p: start from q0's variance.
    var = jnp.broadcast_to(ref.variance(), (cfg.replicas, dim))
    params0 = initial_base_params(base, bopts, betas0, dim, variance=var, step_size=step_size)
    return path, betas0, params0


def _chain_start(k, ref, path, betas0, params0, *, cfg: _Cfg):
    """One chain before its warmup: ``(key of its warmup, key of its rounds, WarmupCarry)``."""
    k0, kw, ks = jax.random.split(k, 3)
    return kw, ks, warmup_start(ref.sample(k0, cfg.replicas), betas0, params0, path)


def _warm_round(g, kw, warm, path, *, base, bopts, cfg: _Cfg):
    """Warmup round ``g`` of a block of chains (their keys ``kw``, carries ``warm``).

    ``g`` is shared by the block (unbatched), so the end of a stretch is a
    branch taken once per stretch. The run without a checkpoint loops over
    this too, not over :func:`energymc.kernels.tempering.pt_warmup`: XLA
    compiles a loop of this body alike whether it runs whole or in chunks,
    which makes a resumed estimate bit-identical to an uninterrupted one.
    """
    plan = warmup_plan(cfg.warmup)
    return jax.vmap(lambda k, w: warmup_round(
        k, g, w, path, base, bopts, plan=plan, n_local=cfg.local_steps,
        target_accept=cfg.target_accept, tunable=base.tunable,
        adapt_ladder=cfg.adapt_ladder))(kw, warm)


def _round(ks, i, state, betas, params, path, *, base, bopts, cfg: _Cfg):
    """Round ``i`` of one chain (its key: ``fold_in(ks, i)``) and what it records."""
    state, st = pt_step(jax.random.fold_in(ks, i), state, betas, params, path, base,
                        bopts, cfg.local_steps)
    return state, (state.ll, st["acceptance"], st["swap_acceptance"],
                   st["swap_attempted"], st["cost"], state.position,
                   st["round_trip"])


def _result(betas, params, record, *, base, bopts=None, cfg: _Cfg) -> dict:
    """What the chains recorded, as :func:`_run` returns it (``bopts`` unused)."""
    del bopts, cfg
    step = params["step_size"] if base.tunable else jnp.full(betas.shape, jnp.nan)
    ll, acc, swap, attempted, cost, cold, trips = record
    return {"betas": betas, "step_size": step, "ll": ll, "acceptance": acc, "swap": swap,
            "attempted": attempted, "cost": cost, "cold": cold, "round_trips": trips}


def _chain_starts(keys, shared, target, statics):
    """The ladder and every chain of a block before its first warmup round.

    Returns ``(path, betas0, params0, (warmup keys, round keys, carry))``,
    the last batched over ``keys`` ``(chains,)``; traced inside the
    programs of :func:`_run` and :func:`_warm_start`.
    """
    ref, step_size = shared
    path, betas0, params0 = _ladder(ref, step_size, target=target, **statics)
    rows = jax.vmap(lambda k: _chain_start(k, ref, path, betas0, params0,
                                           cfg=statics["cfg"]))(keys)
    return path, betas0, params0, rows


@jit_over_target(("target", "base", "bopts", "cfg", "mesh"))
def _run(key, ref, step_size, *, target, base, bopts, cfg: _Cfg, mesh=None):
    statics = dict(base=base, bopts=bopts, cfg=cfg)

    def chains(ids, keys, shared):
        # A block of chains (all of them on one device): each from its own key.
        del ids
        path, betas0, params0, (kw, ks, warm) = _chain_starts(keys, shared, target, statics)
        # Opaque start: the compiler may not use that every chain starts from the
        # same ladder, which the chunked run (started in another program) cannot.
        warm = jax.lax.optimization_barrier(warm)
        warm, _ = jax.lax.scan(lambda w, g: (_warm_round(g, kw, w, path, **statics), None),
                               warm, jnp.arange(warmup_plan(cfg.warmup).total))

        def chain(ks, warm):
            state, betas, params = warmup_finish(warm)
            if warmup_plan(cfg.warmup).total == 0:
                # No warmup: one ladder and one set of parameters for every chain
                # (unbatched, as before), which keeps the draws bitwise the same
                # on any number of devices (tests/test_devices.py).
                betas, params = betas0, params0

            def body(state, i):
                return _round(ks, i, state, betas, params, path, **statics)

            _, out = jax.lax.scan(body, state, jnp.arange(cfg.draws))
            return betas, params, out

        return jax.vmap(chain)(ks, warm)

    # The chains never interact: split over the devices of ``mesh`` (padded
    # to a multiple of them), chain c from the c-th key whatever the split.
    keys = jax.random.split(key, cfg.chains)
    betas, params, out = _sharding.map_chains(chains, mesh, cfg.chains, keys, (ref, step_size))
    return _result(betas, params, out, **statics)


# ------------------------------------------- the same run, chunk by chunk
# log_partition(checkpoint=...) runs the warmup and then the rounds from the
# host in chunks and saves the carry between them (energymc.logz._checkpoint).
# Each chunk program is compiled once (``stop`` is traced) and runs _run's
# round bodies: warmup round g draws from its key as in pt_warmup and round i
# from fold_in(ks, i), whatever chunk they fall in.
@jit_over_target(("target", "base", "bopts", "cfg", "mesh"))
def _warm_start(key, ref, step_size, *, target, base, bopts, cfg: _Cfg, mesh=None):
    """Every chain before its first warmup round: ``(g, warmup keys, round keys, carry)``."""
    statics = dict(base=base, bopts=bopts, cfg=cfg)

    def start(ids, keys, shared):
        del ids
        return _chain_starts(keys, shared, target, statics)[3]

    keys = jax.random.split(key, cfg.chains)
    rows = _sharding.map_chains(start, mesh, cfg.chains, keys, (ref, step_size))
    return (jnp.asarray(0, jnp.int32), *rows)


@jit_over_target(("target", "base", "bopts", "cfg", "mesh"))
def _warm_chunk(carry, stop, ref, step_size, *, target, base, bopts, cfg: _Cfg, mesh=None):
    """Warmup rounds of ``carry`` (from :func:`_warm_start` or an earlier chunk) up to ``stop``."""
    statics = dict(base=base, bopts=bopts, cfg=cfg)

    def one(g, rows, path):
        kw, ks, warm = rows
        return kw, ks, _warm_round(g, kw, warm, path, **statics)

    return _rounds_upto(one, carry, stop, warmup_plan(cfg.warmup).total, ref, step_size,
                        target, statics, mesh)


@jit_over_target(("target", "base", "bopts", "cfg", "mesh"))
def _start(warm, ref, step_size, *, target, base, bopts, cfg: _Cfg, mesh=None):
    """Every chain after its warmup (:func:`_warm_chunk`'s last carry), and empty records:
    ``(i, state, betas, params, ks, record)``."""
    statics = dict(base=base, bopts=bopts, cfg=cfg)

    def start(ids, rows, shared):
        del ids
        ks, warm = rows
        path, _, _ = _ladder(*shared, target=target, **statics)
        state, betas, params = jax.vmap(warmup_finish)(warm)
        one = jax.eval_shape(lambda: jax.vmap(
            lambda k, s, b, p: _round(k, 0, s, b, p, path, **statics))(ks, state, betas,
                                                                        params))[1]
        record = jax.tree.map(
            lambda a: jnp.zeros((ks.shape[0], cfg.draws, *a.shape[1:]), a.dtype), one)
        return state, betas, params, ks, record

    rows = _sharding.map_chains(start, mesh, cfg.chains, tuple(warm[2:]), (ref, step_size))
    return (jnp.asarray(0, jnp.int32), *rows)


@jit_over_target(("target", "base", "bopts", "cfg", "mesh"))
def _chunk(carry, stop, ref, step_size, *, target, base, bopts, cfg: _Cfg, mesh=None):
    """Rounds of ``carry`` (from :func:`_start` or an earlier chunk) up to ``stop`` (traced)."""
    statics = dict(base=base, bopts=bopts, cfg=cfg)

    def one(i, rows, path):
        state, betas, params, ks, record = rows
        state, new = jax.vmap(lambda k, s, b, p: _round(k, i, s, b, p, path, **statics))(
            ks, state, betas, params)
        record = jax.tree.map(lambda r, v: r.at[:, i].set(v), record, new)
        return state, betas, params, ks, record

    return _rounds_upto(one, carry, stop, cfg.draws, ref, step_size, target, statics, mesh)


def _rounds_upto(one, carry, stop, total, ref, step_size, target, statics, mesh):
    """Run ``one(counter, rows, path) -> rows`` on every block of chains from the
    carry's counter up to ``min(stop, total)`` (``stop`` traced); the new carry.

    The loop of both :func:`_warm_chunk` (warmup rounds) and :func:`_chunk`
    (recorded rounds); ``carry`` is ``(counter, *rows)``, rows batched over chains.
    """
    n0, *rows = carry

    def rounds(ids, rows, shared):
        del ids
        n0, stop, ref, step_size = shared
        path, _, _ = _ladder(ref, step_size, target=target, **statics)

        def body(c):
            return c[0] + 1, *one(c[0], c[1:], path)

        return jax.lax.while_loop(lambda c: (c[0] < total) & (c[0] < stop), body,
                                  (n0, *rows))[1:]

    rows = _sharding.map_chains(rounds, mesh, statics["cfg"].chains, tuple(rows),
                                (n0, stop, ref, step_size))
    # Where every block's loop stopped (they all run the same rounds).
    n = jnp.maximum(n0, jnp.minimum(stop, total)).astype(n0.dtype)
    return (n, *rows)


def _stepping_stones(betas, ll):
    """log Z from ``betas`` ``(R,)`` and ``ll`` ``(T, R)``: sum of rung log-ratios."""
    d = np.diff(betas)                                     # (R-1,)
    a = d[None, :] * ll[:, :-1]                            # (T, R-1)
    a = np.where(np.isnan(a), -np.inf, a)
    log_r = logsumexp(a, axis=0) - math.log(ll.shape[0])   # (R-1,)
    ess = np.exp(2 * logsumexp(a, axis=0) - logsumexp(2 * a, axis=0))
    return float(np.sum(log_r)), ess


def multichain_ess(x):
    """Effective sample size of ``x`` ``(chains, draws)`` for its mean.

    ArviZ's multi-chain estimator (split chains, Geyer's initial monotone
    sequence; :func:`energymc.diagnostics.ess_mean`): chains that disagree
    lower it, as they should. Where it is undefined (fewer than 4 draws or
    non-finite weights) the draws count as independent, ``chains * draws``.
    """
    x = np.asarray(x, dtype=float)
    ess = diagnostics.ess_mean(x)
    return ess if np.isfinite(ess) else float(x.size)


def _autocorrelated_stderr(betas, ll):
    """A stderr of the stepping-stone ``log Z`` that sees autocorrelation of any length.

    Each rung's ratio is the mean of the weights ``w = exp(d_k ll)`` over all
    chains and draws; its log has variance ``cv_k^2 / ESS_k`` with ``cv_k``
    the weights' coefficient of variation and ``ESS_k`` their multi-chain
    effective sample size. Summed over rungs (ignoring the correlation between
    neighbouring rungs, so usually conservative). Returns it and ``ESS_k``.
    """
    C, T, R = ll.shape
    d = np.diff(betas, axis=1)                                   # (C, R-1)
    # Centre each rung's ll at its median over all chains and draws. Every
    # chain adapts its own ladder, so uncentred weights exp(d_ck ll) differ
    # between chains by the factor exp(d_ck * level of ll), which the
    # multi-chain ESS reads as chains that disagree (on well-mixed runs it fell
    # to about the number of chains). Centring removes that factor and leaves
    # the draw-to-draw variation the bar is meant to measure.
    rung = ll[:, :, :-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN rung stays NaN
        level = np.nanmedian(rung, axis=(0, 1))                  # (R-1,)
    a = d[:, None, :] * (rung - level)                           # (C, T, R-1)
    a = np.where(np.isnan(a), -np.inf, a)
    # Scale by the largest log-weight of each rung: cv and ESS are scale-free.
    w = np.exp(a - np.max(a, axis=(0, 1), keepdims=True))
    ess = np.array([multichain_ess(w[:, :, k]) for k in range(R - 1)])
    flat = w.reshape(-1, R - 1)
    cv2 = np.var(flat, axis=0) / np.mean(flat, axis=0) ** 2
    return float(np.sqrt(np.sum(cv2 / ess))), ess


def _estimate(out, batches):
    """Stepping-stone log Z of the chains and its stderrs (batch means, between chains)."""
    C, T, R = out["ll"].shape
    per_chain, batch_est, ess_rungs = [], [], []
    B = batches
    L = T // B
    for c in range(C):
        lz, ess = _stepping_stones(out["betas"][c], out["ll"][c])
        per_chain.append(lz)
        ess_rungs.append(ess)
        for b in range(B):
            batch_est.append(_stepping_stones(out["betas"][c], out["ll"][c, b * L:(b + 1) * L])[0])
    lz_c = np.asarray(per_chain)
    # Each chain's estimate is a ratio of means, nearly unbiased for Z, so its
    # log is biased low by about var/2; the log of the chains' mean Z keeps
    # only var/(2C) of that (0.03-0.3 nats higher than the mean of the logs
    # on ManyWell-32 with 4 chains).
    log_z = float(logsumexp(lz_c) - math.log(C))
    # Batch means: each batch estimate has the variance of L draws; the mean
    # over all C*T draws has 1/(C*B) of it. It misses autocorrelation longer
    # than a batch (a cold chain stuck in a mode configuration for most of the
    # run), which the spread between independent chains does see; report the
    # larger of the two.
    stderr_bm = float(np.std(batch_est, ddof=1) / math.sqrt(len(batch_est))) \
        if len(batch_est) > 1 else math.nan
    if C > 1:
        z = np.exp(lz_c - np.max(lz_c))
        stderr_chains = float(np.std(z, ddof=1) / (math.sqrt(C) * np.mean(z)))
        stderr = max(stderr_bm, stderr_chains)
    else:
        stderr_chains, stderr = math.nan, stderr_bm
    ess_rungs = np.mean(np.array(ess_rungs), axis=0)
    return log_z, stderr, stderr_bm, stderr_chains, per_chain, ess_rungs


def _problems(out, swap_rate, ess_rungs, per_chain, stderr, stderr_bm, stderr_chains,
              stderr_ac, ess_ac, round_trips, batches):
    """Plain-language problems of a PT run (each with a fix)."""
    C, T, R = out["ll"].shape
    problems = []
    if np.nanmin(swap_rate) < 0.05:
        problems.append(f"some adjacent rungs almost never swap (min swap acceptance "
                        f"{np.nanmin(swap_rate):.3f}): the ladder is too coarse for the "
                        "stepping stones. Use more replicas= or a longer warmup=.")
    # Each rung's ratio is an importance-sampling estimate from that rung's
    # draws; with a tiny weight ESS it is dominated by a few draws and biased low.
    min_ess = float(np.nanmin(ess_rungs))
    if min_ess < max(10.0, 0.02 * T):
        problems.append(f"a stepping stone rests on a weight ESS of {min_ess:.1f} of {T} draws: "
                        "adjacent rungs are too far apart for their ratio to be estimated. Use "
                        "more replicas= (or a base closer to the target).")
    spread = float(np.std(per_chain, ddof=1)) if C > 1 else 0.0
    # The chains' spread against what their batches predict (an R-hat for log
    # Z): for 4 well-mixed chains the squared ratio is about chi2(3)/3, above 9
    # with probability ~1e-5.
    if C > 1 and stderr_chains > 3 * stderr_bm:
        problems.append(f"the chains disagree (per-chain log Z sd {spread:.3f}, "
                        f"{stderr_chains / stderr_bm:.1f}x what their own batches predict): "
                        "some chain has not mixed across the ladder. Use more draws= or warmup=.")
    if stderr_ac > max(_AUTOCORR_LIMIT, 3.0 * stderr):
        problems.append(
            f"the rungs' draws are strongly autocorrelated (smallest multi-chain ESS of a "
            f"stepping stone's weights: {np.min(ess_ac):.0f} of {C * T}); an error bar that "
            f"accounts for it is {stderr_ac:.2f} nats, against the reported {stderr:.3f}, "
            "so the stderr cannot be trusted (the cold rungs hold few independent states, "
            "e.g. mode configurations refreshed too rarely). Use more chains= and draws=, or "
            "more replicas=.")
    # A round trip carries a state from the base (beta = 0, exact draws) up to
    # beta = 1; with none, the cold rungs never saw a fresh state from the base.
    if R > 1 and round_trips.sum() == 0:
        problems.append(f"no replica travelled from the base (beta = 0) to beta = 1 in "
                        f"{T} rounds of any of the {C} chains (0 round trips): the cold rungs "
                        "never received a fresh state from the base. Use more replicas= "
                        "(smaller steps between rungs) or more draws=.")
    # With few round trips the cold rungs hold few independent mode
    # configurations; the batch-means stderr sees only autocorrelation shorter
    # than a batch, so a chain needs several round trips a batch. The bar (25 a
    # chain at the default 1,000 draws in 10 batches) was fixed on the zoo's
    # TUNING half (a 32-d product of double wells made at most 35 in all and
    # missed by 0.8 nats; every other target made 200 or more) before it was
    # read on HELD_OUT; see benchmarks/RESULTS.md.
    elif R > 1 and round_trips.mean() < _MIN_ROUND_TRIPS_PER_BATCH * batches:
        problems.append(f"only {int(round_trips.sum())} round trips from the base (beta = 0) "
                        f"to beta = 1 in {T} rounds of {C} chains (fewer than "
                        f"{_MIN_ROUND_TRIPS_PER_BATCH * batches:g} a chain, "
                        f"{_MIN_ROUND_TRIPS_PER_BATCH:g} for each of the {batches} batches "
                        "of the stderr): the cold rungs received few fresh states from the "
                        "base, so the estimate rests on few independent mode configurations "
                        "and its stderr cannot be trusted. Use more draws= or replicas=.")
    return problems


def run_pt_logz(target, ref, key, ctx: PTContext) -> Estimate:
    """One PT run: independent chains, each with its own ladder, pooled by stepping stones."""
    cfg, base, bopts = ctx.cfg, ctx.kernel, ctx.kernel_options
    step = ctx.options.step_size
    if base.tunable and step is None:
        from energymc._util import default_step

        step = default_step(base.name, target.dim)
    step = None if step is None else jnp.asarray(step, jnp.result_type(float))
    static = dict(target=target, base=base, bopts=bopts, cfg=cfg, mesh=ctx.mesh)
    if ctx.stages is None:
        out = _run(key, ref, step, **static)
    else:
        # Checkpointed: the warmup in chunks (saved in the replicate's warmup/),
        # then the rounds in chunks; each chunk's records (carry[5]) are appended
        # to a file of their own.
        warm = ctx.stages.phase("warmup").run(
            _warm_start(key, ref, step, **static),
            lambda c, stop: _warm_chunk(c, stop, ref, step, **static))
        _, _, betas, params, _, record = ctx.stages.run(
            _start(warm, ref, step, **static),
            lambda c, stop: _chunk(c, stop, ref, step, **static), rows=5)
        out = _result(betas, params, record, base=base, cfg=cfg)
    out = jax.tree.map(lambda a: np.asarray(a, dtype=float), out)
    C, T, R = out["ll"].shape
    log_z, stderr, stderr_bm, stderr_chains, per_chain, ess_rungs = _estimate(
        out, ctx.options.batches)
    attempted = out["attempted"]
    swap = np.where(attempted > 0, out["swap"], np.nan)
    swap_rate = np.nanmean(swap.reshape(-1, R - 1), axis=0)
    stages = {"beta": np.mean(out["betas"], axis=0),
              "acceptance": out["acceptance"].reshape(-1, R).mean(axis=0),
              "swap_acceptance_rate": np.concatenate([swap_rate, [np.nan]]),
              "step_size": np.mean(out["step_size"], axis=0),
              "ess": np.concatenate([ess_rungs, [np.nan]])}
    stderr_ac, ess_ac = _autocorrelated_stderr(out["betas"], out["ll"])
    round_trips = out["round_trips"].sum(axis=1).astype(int)              # (C,)
    problems = _problems(out, swap_rate, ess_rungs, per_chain, stderr, stderr_bm,
                         stderr_chains, stderr_ac, ess_ac, round_trips,
                         ctx.options.batches)
    cold = out["cold"].reshape(-1, target.dim)
    n = cold.shape[0]
    return Estimate(
        log_z=log_z, stderr=stderr, ess=float(np.nanmin(ess_rungs)), stages=stages,
        particles=cold, weights=np.full(n, 1.0 / n),
        grad_evals=float(np.sum(out["cost"])) * (1 + cfg.warmup / cfg.draws),
        problems=problems,
        info={"kernel": base.name, "per_chain_log_z": per_chain,
              "rung_mcmc_ess": ess_ac, "stderr_autocorr": stderr_ac,
              "stderr_batch_means": stderr_bm, "stderr_between_chains": stderr_chains,
              "betas": out["betas"], "round_trips": round_trips,
              "ess_note": "ess is the smallest stepping-stone weight ESS over rungs"})


class PT(LogZMethod):
    """Parallel tempering with a reference rung; stepping-stone log Z."""

    name = "pt"
    supports = ("real", "binary", "spin")
    defaults = PTOptions()
    replicates = 1

    def validate(self, options, target):
        return validate_pt_logz(target, self.options(options))

    def run(self, target, ref, key, ctx):
        return run_pt_logz(target, ref, key, ctx)

    def num_particles(self, options):
        return int(options.draws * options.chains)

    def mesh(self, devices, options):
        # Independent chains, each with its own ladder: split like sample()'s
        # chains, padded to a multiple of the devices. A chain's replicas
        # swap states every round, so they stay together on one device.
        return _sharding.chain_mesh(devices, options.chains)


register(PT())
