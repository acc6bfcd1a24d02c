"""Tempered SMC: BlackJAX's ``adaptive_tempered_smc`` with its inner-kernel tuning, wrapped.

This module is where ``blackjax.smc`` enters energymc. Nothing of SMC is
re-implemented: BlackJAX chooses each next temperature from the ESS of the
incremental weights, resamples, and moves the particles with an energymc
kernel; ``blackjax.inner_kernel_tuning`` hands the kernel a new step size
(steered by the last acceptance) and a diagonal mass matrix (the particles'
variance) before every move. ``log Z`` is the sum of BlackJAX's per-step
log-likelihood increments. Its ``stderr`` comes from the particles'
genealogy (each particle's Eve index is tracked through BlackJAX's
resampling ancestors), see :func:`genealogy_variance`.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, NamedTuple

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
from blackjax.smc import resampling
from blackjax.smc.tuning.from_particles import particles_stds
from blackjax.smc.waste_free import waste_free_smc

from energymc import _sharding
from energymc._util import check_option_int as _check_int
from energymc._util import check_bool, kish_ess, nonfinite_to_neginf
from energymc.energy import jit_over_target
from energymc.errors import EnergymcWarning, OptionError
from energymc.logz._ais import resolve_kernel
from energymc.logz._method import Context, Estimate, LogZMethod, register
from energymc.logz._reference import initial_step
from energymc.progress import StageTicks

__all__ = ["SMC", "SMCContext", "SMCOptions", "genealogy_variance", "run_smc"]


@dataclasses.dataclass(frozen=True)
class SMCOptions:
    """SMC options and their defaults (see :func:`energymc.log_partition`)."""

    particles: int = 512
    target_ess: float = 0.5
    kernel: str | None = None
    kernel_options: dict | None = None
    mcmc_steps: int = 10
    waste_free: bool = False
    step_size: float | None = None
    target_accept: float | None = None
    resampling: str = "systematic"
    max_stages: int = 500
    min_families: float = 20
    min_lineage_ratio: float = 0.2
    schedule: Any = "adaptive"


_RESAMPLERS = {"systematic": resampling.systematic, "stratified": resampling.stratified,
               "multinomial": resampling.multinomial, "residual": resampling.residual}


class _Cfg(NamedTuple):
    particles: int
    target_ess: float
    mcmc_steps: int
    waste_free: bool
    target_accept: float
    resampling: str
    max_stages: int
    fixed: bool


@dataclasses.dataclass(frozen=True)
class SMCContext(Context):
    """What SMC derives once per call.

    ``betas`` is the ``(stages,)`` fixed schedule after 0 (``None`` when it is
    chosen as the run goes); ``pilot``, set by :meth:`SMC.plan` for
    ``schedule="pilot"``, is ``(betas, problems)`` of the pilot run, which
    every replicate then follows. ``stages`` is the
    :class:`energymc.logz._checkpoint.StageSaver` of the replicate running
    (``log_partition(checkpoint=...)``), or ``None`` (one compiled program).
    """

    kernel: Any = None
    kernel_options: Any = ()
    cfg: Any = None
    betas: Any = None
    pilot: Any = None
    stages: Any = None


def validate_smc(target, opts: SMCOptions) -> SMCContext:
    """Check SMC options eagerly (before anything compiles); returns the call's context."""
    o = dataclasses.replace(
        opts, particles=_check_int("particles", opts.particles, 2),
        mcmc_steps=_check_int("mcmc_steps", opts.mcmc_steps, 1),
        max_stages=_check_int("max_stages", opts.max_stages, 1))
    mf = o.min_families
    if isinstance(mf, bool) or not isinstance(mf, (int, float)) or mf < 0:
        raise OptionError(f"min_families= must be a number >= 0; got {mf!r}.")
    mr = o.min_lineage_ratio
    if isinstance(mr, bool) or not isinstance(mr, (int, float)) or mr < 0:
        raise OptionError(f"min_lineage_ratio= must be a number >= 0; got {mr!r}.")
    te = o.target_ess
    if not (isinstance(te, (int, float)) and 0 < te < 1):
        raise OptionError(f"target_ess= must be a fraction in (0, 1); got {te!r}.")
    if o.resampling not in _RESAMPLERS:
        raise OptionError(f"unknown resampling {o.resampling!r}; valid: "
                          f"{', '.join(_RESAMPLERS)}.")
    check_bool("waste_free=", o.waste_free)
    if o.waste_free and o.particles % (o.mcmc_steps + 1):
        raise OptionError(
            f"waste_free=True keeps every state of particles/(mcmc_steps+1) chains, so "
            f"particles={o.particles} must be a multiple of mcmc_steps+1="
            f"{o.mcmc_steps + 1}."
        )
    kernel, kopts = resolve_kernel(target, o.kernel, o.kernel_options, "log_partition")
    if "step_size" not in kernel.defaults or "inverse_mass_matrix" not in kernel.defaults:
        raise OptionError(f"method='smc' needs a continuous kernel with a step size; "
                          f"{kernel.name!r} has none.")
    betas = _check_schedule(o.schedule, o.max_stages)
    ta = o.target_accept if o.target_accept is not None else dict(kopts)["target_accept"]
    cfg = _Cfg(o.particles, float(te), o.mcmc_steps, o.waste_free, float(ta), o.resampling,
               o.max_stages, betas is not None)
    return SMCContext(options=o, kernel=kernel, kernel_options=kopts, cfg=cfg, betas=betas)


def _check_schedule(schedule, max_stages):
    """``None`` for ``"adaptive"``/``"pilot"``, else the ``(stages,)`` betas after 0."""
    if isinstance(schedule, str):
        if schedule not in ("adaptive", "pilot"):
            raise OptionError(f"unknown schedule {schedule!r} for method='smc'; valid schedules "
                              "are adaptive, pilot, or an increasing array of betas.")
        return None
    try:
        b = np.asarray(schedule, dtype=float)
    except (TypeError, ValueError):
        b = np.zeros(0)
    if b.ndim != 1 or b.size < 2 or b[0] != 0.0 or b[-1] != 1.0 or np.any(np.diff(b) <= 0):
        raise OptionError("schedule= as an array must be strictly increasing betas from "
                          "0.0 to 1.0, e.g. np.linspace(0, 1, 51) or a previous run's "
                          "est.info['schedule'].")
    if b.size - 1 > max_stages:
        raise OptionError(f"schedule= has {b.size - 1} stages but max_stages={max_stages}; "
                          f"raise max_stages= to at least {b.size - 1}.")
    return b[1:]


def _stage_ticks(ctx):
    """How one SMC run reports its stages (``None`` unless ``ctx.ticks``): by
    stage along a given schedule, by ``beta`` when it is chosen as the run goes
    (adaptive, and ``"pilot"``, whose stages are known only after its pilot)."""
    return _stage_count(ctx) if ctx.ticks else None


def _stage_count(ctx):
    return StageTicks(None if ctx.betas is None else int(ctx.betas.size))


def _algorithm(ref, step0, *, target_lp, kernel, options, cfg: _Cfg):
    """BlackJAX's (adaptive) tempered SMC with inner-kernel tuning, moving with ``kernel``."""

    def loglik(z):
        # NaN (-inf - -inf outside a base's support) and any other non-finite
        # value read as -inf: zero weight.
        return nonfinite_to_neginf(target_lp(z) - ref.log_prob(z))

    def mcmc_step(key, state, logdensity_fn, step_size, inverse_mass_matrix):
        params = {"step_size": step_size, "inverse_mass_matrix": inverse_mass_matrix}
        return kernel.step(key, state, logdensity_fn, params, options)

    def mcmc_init(position, logdensity_fn):
        return kernel.init(None, position, logdensity_fn, None, options)

    def update_params(key, state, info):
        # Steer the shared step size towards the target acceptance using the
        # move just made; set the mass matrix to the particles' variance.
        stats = info.update_info
        acc = jnp.mean(jnp.nan_to_num(stats["acceptance_rate"], nan=0.0))
        old = jnp.reshape(stats["step_size"], (-1,))[0]
        new = old * jnp.exp(1.5 * (acc - cfg.target_accept))
        var = particles_stds(state.particles) ** 2
        var = jnp.where(jnp.isfinite(var) & (var > 0), var, 1.0)
        return {"step_size": new[None], "inverse_mass_matrix": var[None]}

    extra = {}
    if cfg.waste_free:
        extra["update_strategy"] = waste_free_smc(cfg.particles, cfg.mcmc_steps + 1)
    if not cfg.fixed:
        extra["target_ess"] = cfg.target_ess
    return blackjax.inner_kernel_tuning(
        smc_algorithm=blackjax.tempered_smc if cfg.fixed else blackjax.adaptive_tempered_smc,
        logprior_fn=ref.log_prob,
        loglikelihood_fn=loglik,
        mcmc_step_fn=mcmc_step,
        mcmc_init_fn=mcmc_init,
        resampling_fn=_RESAMPLERS[cfg.resampling],
        mcmc_parameter_update_fn=update_params,
        initial_parameter_value={"step_size": jnp.reshape(step0, (1,)),
                                 "inverse_mass_matrix": ref.variance()[None]},
        num_mcmc_steps=None if cfg.waste_free else cfg.mcmc_steps,
        **extra,
    )


def _record_stage(rec, i, values):
    """The stage record with row ``i`` set to ``values`` (a dict of scalars)."""
    return {k: v.at[i].set(values[k]) for k, v in rec.items()}


def _parts(key, ref, step0, betas, *, target, kernel, options, cfg: _Cfg, ticks):
    """The loop of one SMC run: ``(k0, alg, cond, body)`` (pure JAX; see :func:`_smc`).

    ``k0`` draws the initial particles, ``alg`` is BlackJAX's algorithm; stage
    ``i`` moves with ``fold_in(key', i)``, ``key'`` split from ``key``.
    """
    n = cfg.particles
    alg = _algorithm(ref, step0, target_lp=target.flat_logdensity, kernel=kernel,
                     options=options, cfg=cfg)
    k0, key = jax.random.split(key)
    dtype = step0.dtype

    def cond(carry):
        i, state = carry[0], carry[1]
        return (i < cfg.max_stages) & (state.sampler_state.tempering_param < 1.0)

    def body(carry):
        i, state, log_z, rec, evals, eve = carry
        step_used = state.parameter_override["step_size"][0]
        beta_before = state.sampler_state.tempering_param
        if cfg.fixed:
            state, info = alg.step(jax.random.fold_in(key, i), state, tempering_param=betas[i])
        else:
            state, info = alg.step(jax.random.fold_in(key, i), state)
        # Each particle's Eve index: the initial particle it descends from
        # (moves do not change it; only resampling does).
        eve = eve[info.ancestors]
        if cfg.waste_free:
            # BlackJAX puts the resampled starts first, then chain r's states
            # at r * mcmc_steps + j.
            eve = jnp.concatenate([eve, jnp.repeat(eve, cfg.mcmc_steps)])
        inc = info.log_likelihood_increment
        stats = info.update_info
        w = state.sampler_state.weights
        ess = kish_ess(w)
        # Var of one increment by the delta method, (1/ESS - 1/N); summed over
        # steps this ignores the correlation that resampling leaves between
        # them, so it is an approximation (replicates give an honest spread).
        var = jnp.maximum(1.0 / ess - 1.0 / w.shape[0], 0.0)
        cost = (jnp.sum(stats["n_steps"]) if "n_steps" in stats
                else jnp.asarray(stats["acceptance_rate"].size, dtype))
        rec = _record_stage(rec, i, {
            "beta": state.sampler_state.tempering_param, "ess": ess,
            "acceptance": jnp.mean(jnp.nan_to_num(stats["acceptance_rate"], nan=0.0)),
            "step_size": step_used, "log_z": log_z + inc, "var": var})
        if ticks is not None:
            ticks(i, beta_before, state.sampler_state.tempering_param)
        return i + 1, state, log_z + inc, rec, evals + cost.astype(dtype) + n, eve

    return k0, alg, cond, body


def _initial(k0, alg, ref, step0, *, cfg: _Cfg, mesh):
    """The loop's carry before its first stage: ``(i, state, log_z, record, evals, eve)``."""
    n = cfg.particles
    # Particles split over the devices of ``mesh``; the compiler follows.
    state = alg.init(_sharding.place_rows(ref.sample(k0, n), mesh))
    dtype = step0.dtype
    rec = {k: jnp.zeros((cfg.max_stages,), dtype)
           for k in ("beta", "ess", "acceptance", "step_size", "log_z", "var")}
    return (jnp.asarray(0), state, jnp.asarray(0.0, dtype), rec, jnp.asarray(0.0, dtype),
            jnp.arange(n))


def _finish(carry) -> dict:
    """:func:`_smc`'s result from the loop's final carry."""
    i, state, log_z, rec, evals, eve = carry
    s = state.sampler_state
    return {"num_stages": i, "final_beta": s.tempering_param, "log_z": log_z, "record": rec,
            "particles": s.particles, "weights": s.weights, "grad_evals": evals, "eve": eve}


@jit_over_target(("target", "kernel", "options", "cfg", "ticks", "mesh"))
def _smc(key, ref, step0, betas, *, target, kernel, options, cfg: _Cfg, ticks=None,
         mesh=None):
    """Run tempered SMC from q0 to the target; pure, compiled once.

    ``betas`` is ``(max_stages,)``: the fixed schedule padded with 1 when
    ``cfg.fixed``, ignored (BlackJAX picks each next beta from the ESS) if not.
    ``ticks`` (static), an :class:`energymc.progress.StageTicks` or ``None``,
    reports each stage to a progress meter and changes no number.
    """
    k0, alg, cond, body = _parts(key, ref, step0, betas, target=target, kernel=kernel,
                                 options=options, cfg=cfg, ticks=ticks)
    carry = _initial(k0, alg, ref, step0, cfg=cfg, mesh=mesh)
    return _finish(jax.lax.while_loop(cond, body, carry))


# ------------------------------------------------ the same loop, chunk by chunk
# As energymc.logz._anneal's anneal_start/anneal_chunk: log_partition(
# checkpoint=...) runs the stages in host-driven chunks (``stop`` traced,
# compiled once) and saves the carry between them.
@jit_over_target(("target", "kernel", "options", "cfg", "ticks", "mesh"))
def _smc_start(key, ref, step0, betas, *, target, kernel, options, cfg: _Cfg, ticks=None,
               mesh=None):
    """The loop's carry before its first stage (arguments as :func:`_smc`)."""
    k0, alg, _, _ = _parts(key, ref, step0, betas, target=target, kernel=kernel,
                           options=options, cfg=cfg, ticks=ticks)
    return _initial(k0, alg, ref, step0, cfg=cfg, mesh=mesh)


@jit_over_target(("target", "kernel", "options", "cfg", "ticks", "mesh"))
def _smc_chunk(carry, stop, key, ref, step0, betas, *, target, kernel, options, cfg: _Cfg,
               ticks=None, mesh=None):
    """Stages of ``carry`` up to stage ``stop`` (traced; excluded) or the loop's own end."""
    del mesh  # the carry's particles are already where they run
    _, _, cond, body = _parts(key, ref, step0, betas, target=target, kernel=kernel,
                              options=options, cfg=cfg, ticks=ticks)
    return jax.lax.while_loop(lambda c: cond(c) & (c[0] < stop), body, carry)


def genealogy_variance(weights, eve):
    """Relative variance of the SMC estimate of ``Z`` from the particles' genealogy.

    Chan and Lai (2013, Ann. Statist. 41): group the final particles by their
    Eve index ``E_i`` (the initial particle each descends from through the
    resampling steps). Families evolve almost independently, particles within
    one family are correlated, and

        var(Z^) / Z^2  ≈  sum_k (sum_{i: E_i = k} W_i - 1 / N)^2
                       =  1 / ESS_eve - 1 / N,

    with ``ESS_eve = 1 / sum_k (sum_{i: E_i = k} W_i)^2`` the effective number
    of families. Without resampling every particle is its own family and this
    is the AIS delta method ``1 / ESS - 1 / N``. It needs no replicate runs and,
    unlike the sum of per-step weight variances, it sees the correlation that
    resampling leaves behind. It is consistent as ``N`` grows, but from few
    families it is itself noisy (and typically too small), so the caller
    flags a small ``ESS_eve``. Lee and Whiteley's (2018) unbiased variant was
    not used: it assumes multinomial resampling and returned zero variance
    after systematic resampling.

    Parameters
    ----------
    weights
        ``(N,)`` final weights (normalised here).
    eve
        ``(N,)`` integer Eve indices in ``[0, N)``.

    Returns
    -------
    tuple of float
        The relative variance and ``ESS_eve``.
    """
    w = np.asarray(weights, dtype=float)
    w = w / w.sum()
    n = w.size
    fam = np.bincount(np.asarray(eve, dtype=np.int64), weights=w, minlength=n)
    same = float(np.sum(fam**2))
    return max(same - 1.0 / n, 0.0), 1.0 / same


def _increasing(betas):
    """Betas recorded in float32 may repeat near 1 and end a rounding short of it."""
    keep = np.concatenate([np.diff(betas) > 0, [True]])
    betas = betas[keep]
    if betas.size and betas[-1] > 1.0 - 1e-6:
        betas[-1] = 1.0
    return betas


def _step0(target, ref, ctx):
    """The initial step size, ``()`` in the default float dtype.

    Without ``step_size=``, the one AIS starts from
    (:func:`energymc.logz._reference.initial_step`): from a fitted base
    MALA's follows its curvature. The default step was 20x too large for the
    fit of a dense 500-d Gaussian, whose one or two stages then accepted
    nothing (benchmarks/RESULTS.md, "SMC's first step from the fitted base").
    """
    step = ctx.options.step_size
    if step is None:
        step = initial_step(ctx.kernel.name, target.dim, ref)
    return jnp.asarray(step, jnp.result_type(float))


def pilot_schedule(target, ref, key, ctx: SMCContext):
    """``schedule="pilot"``: an adaptive run on an independent key fixes the betas.

    The estimate comes from a second run along them, so no beta depends on
    the particles it weighs (an adaptive schedule does, which biases Z-hat by
    O(stages/N); unmeasurable on the benchmarks, but this removes it for twice
    the cost). Returns the context with ``pilot = (betas, problems)`` and the
    pilot run's gradient evaluations. ``key`` is the first replicate's;
    ``ctx.stages`` (a checkpoint's saver, or ``None``) saves the pilot's stages.
    """
    cfg = ctx.cfg
    step = _step0(target, ref, ctx)
    args = (jax.random.fold_in(key, 7919), ref, step, jnp.ones((cfg.max_stages,), step.dtype))
    static = dict(target=target, kernel=ctx.kernel, options=ctx.kernel_options, cfg=cfg,
                  mesh=ctx.mesh)
    if ctx.stages is None:
        pilot = _smc(*args, **static)
    else:
        # log_partition(checkpoint=...): the pilot's stages in chunks, saved
        # between them (its own directory), as a replicate's are.
        pilot = _finish(ctx.stages.run(_smc_start(*args, **static),
                                       lambda c, stop: _smc_chunk(c, stop, *args, **static)))
    k = int(pilot["num_stages"])
    betas = _increasing(np.asarray(pilot["record"]["beta"], dtype=float)[:k])
    problems = []
    if betas[-1] < 1.0:
        problems.append(f"the pilot run stopped at beta={betas[-1]:.4g} after max_stages="
                        f"{cfg.max_stages}, so its last stage jumps to 1; raise max_stages= "
                        "or lower target_ess=.")
        betas = np.append(betas[:cfg.max_stages - 1], 1.0)
    return (dataclasses.replace(ctx, pilot=(betas, problems), stages=None),
            float(pilot["grad_evals"]))


def run_smc(target, ref, key, ctx: SMCContext) -> Estimate:
    """One SMC replicate (along the pilot's schedule when :func:`pilot_schedule` set one)."""
    cfg, step = ctx.cfg, _step0(target, ref, ctx)
    betas, problems = ctx.betas, []
    if ctx.pilot is not None:
        # Every replicate follows the one pilot schedule: given the schedule
        # they are still independent, and each costs one run instead of two.
        betas, problems = ctx.pilot[0], list(ctx.pilot[1])
        cfg = cfg._replace(fixed=True)
    padded = np.ones((cfg.max_stages,))
    if betas is not None:
        padded[:betas.size] = betas
    betas = jnp.asarray(padded, step.dtype)
    static = dict(target=target, kernel=ctx.kernel, options=ctx.kernel_options, cfg=cfg,
                  ticks=_stage_ticks(ctx), mesh=ctx.mesh)
    if ctx.stages is None:
        out = _smc(key, ref, step, betas, **static)
    else:
        # Checkpointed: the same loop in chunks from the host, saved between them.
        out = _finish(ctx.stages.run(
            _smc_start(key, ref, step, betas, **static),
            lambda c, stop: _smc_chunk(c, stop, key, ref, step, betas, **static)))
    k = int(out["num_stages"])
    rec = {name: np.asarray(v)[:k] for name, v in out["record"].items()}
    w = np.asarray(out["weights"], dtype=float)
    w = w / w.sum()
    ess = float(kish_ess(w))
    if float(out["final_beta"]) < 1.0:
        problems.append(f"SMC stopped at beta={float(out['final_beta']):.4g} after "
                        f"max_stages={cfg.max_stages}; raise max_stages= or lower target_ess=.")
    # Stage i's moves target the previous temperature (BlackJAX's tempered
    # step: resample, move under pi_beta_{i-1}, reweight), so the first
    # stage's moves are under the base itself, from exact base draws of
    # equal weight: accepted or not, the particles are exact draws of the
    # base, no copies, and the estimate is unaffected. Only later stages can
    # leave copies unmoved. (A one-stage run from a close fitted base, e.g.
    # a 500-d Gaussian, often accepted nothing at that stage and was flagged
    # though it is importance sampling from exact draws.)
    moved = rec["acceptance"][1:]
    if len(moved) and np.min(moved) < 0.02:
        problems.append(f"moves were almost never accepted at some stages (min acceptance "
                        f"{np.min(moved):.3f}); particles are copies of few "
                        "ancestors. Use more mcmc_steps= or another kernel=.")
    # Sum of the per-step delta-method variances: blind to the correlation
    # resampling leaves between steps, it was 0.14 where the seed-to-seed
    # spread was 1 nat (ManyWell-32). The genealogy estimate sees it.
    stderr_delta = math.sqrt(float(np.sum(rec["var"])))
    rel_var, eve_ess = genealogy_variance(w, np.asarray(out["eve"]))
    stderr_gen = math.sqrt(math.log1p(rel_var))
    lineage_ratio = eve_ess * k / cfg.particles
    problems += _lineage_problems(ctx.options, cfg, eve_ess, k, lineage_ratio)
    stages = {"beta": rec["beta"], "ess": rec["ess"], "acceptance": rec["acceptance"],
              "step_size": rec["step_size"], "log_z": rec["log_z"]}
    return Estimate(
        log_z=float(out["log_z"]), stderr=max(stderr_gen, stderr_delta), ess=ess,
        stages=stages, particles=np.asarray(out["particles"]), weights=w,
        grad_evals=float(out["grad_evals"]), problems=problems,
        info={"kernel": ctx.kernel.name, "waste_free": cfg.waste_free,
              # Betas from 0 to 1, reusable as schedule= of a later run.
              "schedule": np.concatenate([[0.0], _increasing(rec["beta"])]),
              "pilot_grad_evals": 0.0,
              "stderr_delta": stderr_delta, "stderr_genealogy": stderr_gen,
              "eve_ess": eve_ess, "lineage_ratio": lineage_ratio,
              "stderr_note": "larger of the genealogy (Chan-Lai) estimate and the sum "
                             "of per-step delta-method variances"})


def _lineage_problems(o, cfg, eve_ess, k, lineage_ratio) -> list[str]:
    """Problems when the final particles descend from too few lineages."""
    problems = []
    if eve_ess < o.min_families:
        problems.append(
            f"the final particles descend from only {eve_ess:.1f} effective initial particles "
            f"(below min_families={o.min_families:g}): resampling has concentrated the "
            "weight on few lineages, so the stderr, estimated from them, is itself unreliable "
            "(typically too small). Use more particles=, a higher target_ess= with more "
            "mcmc_steps= (moves between resamplings), or a base closer to the target.")
    # Lineages against neutral drift. When the moves decorrelate a particle's
    # weight from one stage to the next, resampling at a fixed ESS thins the
    # lineages like neutral drift: about 2 N_e / T survive T stages, so
    # eve_ess * T / N stays near 1-2 (0.7-2.3 on the benchmark targets when
    # the estimate was sound). When the same particles win stage after stage
    # (features the moves cannot change, like which of two separated wells a
    # particle sits in), selection alone sets their proportions and the
    # lineages collapse 5-100x faster; such runs were the confidently wrong
    # ones on ManyWell-32 (ratios 0.01-0.16), where min_families alone missed
    # some. Waste-free SMC resamples fewer ancestors than particles: not checked.
    if not cfg.waste_free and lineage_ratio < o.min_lineage_ratio:
        problems.append(
            f"the particles' lineages collapsed far faster than resampling alone explains "
            f"({eve_ess:.1f} effective initial particles after {k} stages of {cfg.particles}: "
            f"ratio {lineage_ratio:.3f}, below min_lineage_ratio={o.min_lineage_ratio:g}): "
            "the same particles were favoured stage after stage, so the moves do not mix what "
            "the weights select (e.g. the proportions of separated modes), and the stderr from "
            "these few lineages is too small. Use stronger moves (kernel='hmc', more "
            "mcmc_steps=) and slower tempering (target_ess=0.9).")
    return problems


class SMC(LogZMethod):
    """BlackJAX's adaptive tempered SMC with inner-kernel tuning."""

    name = "smc"
    supports = ("real",)
    defaults = SMCOptions()
    replicates = 4
    # Each replicate's Z is unbiased (up to the adaptive schedule's small bias):
    # pooling more of them shrinks the error, not only its error bar.
    follows_stderr = True
    splits_particles = True

    def mesh(self, devices, options):
        """The largest number of the chosen devices that divides ``particles``.

        SMC's particles are not padded: BlackJAX's step draws one key per
        particle from ``split(key, particles)``, resamples ``particles``
        indices and divides the weights' sum by ``particles``, so a padded
        population would change every draw and need its step rewritten. When
        that leaves devices idle, a warning says how many particles use them all.
        """
        mesh = super().mesh(devices, options)
        n, chosen = int(options.particles), _sharding.chosen_devices(devices)
        used = _sharding.mesh_size(mesh)
        if used < min(chosen, n):
            warnings.warn(
                f"log_partition(method='smc'): particles={n} run on {used} of the {chosen} "
                f"devices, the most that divide {n}: SMC's particles are not padded (BlackJAX "
                f"resamples and weighs them all). Pass a multiple of {chosen} particles (e.g. "
                f"{-(-n // chosen) * chosen}) to use every device, or method='ais', which pads.",
                EnergymcWarning, stacklevel=3)  # the caller of log_partition
        return mesh

    def validate(self, options, target):
        return validate_smc(target, self.options(options))

    def plan(self, target, ref, key, ctx):
        if isinstance(ctx.options.schedule, str) and ctx.options.schedule == "pilot":
            return pilot_schedule(target, ref, key, ctx)
        return ctx, 0.0

    def run(self, target, ref, key, ctx):
        return run_smc(target, ref, key, ctx)

    def progress_units(self, ctx):
        # The pilot run of schedule="pilot" is not shown.
        return _stage_count(ctx).units


register(SMC())
