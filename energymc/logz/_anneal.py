"""The annealing engine shared by AIS and bidirectional Monte Carlo.

Annealed importance sampling (Neal, 2001) on the geometric path

    log pi_beta(x) = log q0(x) + beta * (log p(x) - log q0(x)),

with no resampling: each particle carries a log-weight that collects
``(beta_t - beta_{t-1}) * (log p - log q0)`` at every stage, then moves by a
Markov kernel that leaves ``pi_beta_t`` invariant. ``mean(exp(logw))`` is an
unbiased estimate of ``Z / Z0 = Z`` (``q0`` is normalised). Run with betas
decreasing from 1 to 0 and started from exact draws of ``p``, the same code is
reverse AIS, whose ``mean(exp(logw))`` estimates ``1 / Z`` (Grosse et al., 2015).

Everything in this module is pure JAX: it is compiled once per target,
kernel, options and static configuration; betas, references, starting points
and step sizes are traced.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from blackjax.smc.ess import log_ess as blackjax_log_ess
from blackjax.smc.solver import dichotomy
from jax.scipy.special import logsumexp

from energymc.energy import jit_over_target

__all__ = ["AnnealConfig", "anneal", "anneal_chunk", "anneal_finish", "anneal_start",
           "largest_step", "log_ess", "schedule"]


class AnnealConfig(NamedTuple):
    """Static choices of one annealing run (hashable: a change recompiles).

    Attributes
    ----------
    adaptive
        Choose each next beta so that the conditional ESS of the incremental
        weights equals ``cess`` (Zhou, Johansen and Aston, 2016); otherwise
        follow the ``betas`` passed in.
    cess
        Target conditional ESS of each stage's incremental weights, as a
        fraction of the particles, in (0, 1); each stage adds about
        ``1 - cess`` to the variance of the log-weights.
    max_stages
        Length of the stage record; the adaptive run stops there even if
        beta has not reached 1 (reported as unreliable by the caller).
    mcmc_steps
        Kernel steps per stage.
    target_accept
        Acceptance the step size is steered towards (``None``: not tuned).
    adapt_mass
        Set the diagonal inverse mass matrix to the particles' variance after
        every stage.
    tunable
        Whether the kernel takes ``step_size`` / ``inverse_mass_matrix``
        params (continuous kernels) or not (discrete kernels).
    """

    adaptive: bool
    cess: float
    max_stages: int
    mcmc_steps: int
    target_accept: float | None
    adapt_mass: bool
    tunable: bool


def schedule(kind: str, num_temps: int) -> jax.Array:
    """Inverse temperatures ``(num_temps + 1,)`` from 0 to 1 for a fixed schedule.

    ``linear``: evenly spaced. ``geometric``: 0 then evenly spaced in log from
    1e-4 to 1 (most stages near 0, where ``q0`` and ``p^beta`` first meet).
    ``sigmoidal``: Grosse et al.'s sigmoid with rate 4, dense at both ends.
    """
    import numpy as np

    k = np.arange(num_temps + 1) / num_temps
    if kind == "linear":
        b = k
    elif kind == "geometric":
        b = np.concatenate([[0.0], np.geomspace(1e-4, 1.0, num_temps)])
    elif kind == "sigmoidal":
        s = 1.0 / (1.0 + np.exp(-4.0 * (2.0 * k - 1.0)))
        b = (s - s[0]) / (s[-1] - s[0])
    else:  # pragma: no cover - validated by the caller
        raise ValueError(kind)
    b[0], b[-1] = 0.0, 1.0
    return jnp.asarray(b, jnp.result_type(float))


def log_ess(logw: jax.Array) -> jax.Array:
    """``log`` of Kish's effective sample size of unnormalised log-weights ``(n,)``."""
    return blackjax_log_ess(logw)


def _next_delta(logw, ll, beta, cess, valid=None):
    """Largest ``delta <= 1 - beta`` whose conditional ESS fraction is >= ``cess``.

    Conditional ESS (Zhou et al., 2016): ``(sum W w)^2 / sum W w^2`` with
    ``w = exp(delta * ll)``. ``W`` is *uniform* here, not the current AIS
    weights: once those have degenerated onto a few particles the weighted
    CESS only sees those few and lets the schedule run too fast, which
    degenerates the weights further. With uniform ``W`` every stage adds about
    ``1 - cess`` to the variance of the log-weights, whatever came before.

    ``valid`` (``(rows,)`` bool, or ``None`` for all) marks the real particles
    among padding rows (:func:`anneal`'s ``particles=``): padding gets
    ``W = 0`` and takes no part in the shift below.
    """
    del logw
    if valid is None:
        logW = jnp.full(ll.shape, -jnp.log(ll.shape[0]), ll.dtype)
    else:
        n = jnp.sum(valid).astype(ll.dtype)
        logW = jnp.where(valid, -jnp.log(n), -jnp.inf).astype(ll.dtype)
    ll = jnp.where(jnp.isnan(ll), -jnp.inf, ll)
    # Shift ll so that exp never overflows; a constant shift cancels in the ratio.
    finite = jnp.isfinite(ll) & jnp.isfinite(logW)
    ll = ll - jnp.max(jnp.where(finite, ll, -jnp.inf))
    if valid is not None:
        # Padding's ll is set to 0: its W = 0 must give exp(-inf) = 0, never
        # the nan of -inf + 0 * -inf.
        ll = jnp.where(valid, ll, 0.0)

    def frac(delta):
        a = logW + delta * ll
        return jnp.exp(2.0 * logsumexp(a) - logsumexp(logW + 2.0 * delta * ll))

    return largest_step(frac, 1.0 - beta, cess)


def largest_step(frac, hi, cess):
    """Largest ``delta`` in ``(0, hi]`` with ``frac(delta) >= cess``, by bisection.

    ``frac`` is the conditional ESS fraction of a step of ``delta``
    (decreasing in ``delta``). Shared by the geometric path's schedule and
    :mod:`energymc.logz._path`'s. BlackJAX's tempered-SMC root finder
    (``blackjax.smc.solver.dichotomy``) does the bisection: ``hi`` itself when
    it already keeps the CESS above target, else 50 halvings (``eps=0``: stop
    on the count, not on a tolerance, so the answer is as fine as float allows).
    """
    delta = dichotomy(lambda d: frac(d) - cess, jnp.zeros_like(hi), hi, eps=0.0, max_iter=50)
    # Guarantee progress: a few particles with ll = -inf can keep the CESS
    # below target for every delta (dichotomy then gives nan); the stage
    # record shows it.
    delta = jnp.where(jnp.isnan(delta), 0.0, delta)
    return jnp.clip(delta, jnp.minimum(1e-5, hi), hi)


def _safe_ll(target_lp, ref, z):
    v = target_lp(z) - ref.log_prob(z)
    return jnp.where(jnp.isnan(v), -jnp.inf, v)


def _stage_moves(stage_key, ref, x, params, beta_new, *, target_lp, kernel, options,
                 cfg: AnnealConfig, valid=None):
    """``cfg.mcmc_steps`` kernel moves of every particle ``x`` ``(rows, dim)`` at ``beta_new``.

    The shared step size is steered by the population's acceptance and the
    diagonal mass matrix set from the particles' variance (when tunable).
    Particle ``c`` moves with keys folded from ``c``, whatever the rows beside
    it. ``valid`` (``(rows,)`` bool or ``None``) marks the real particles
    among padding rows, which move too but count in no mean, variance or cost.
    Returns ``(x, params, accs (mcmc_steps,), costs (mcmc_steps,))``.
    """
    rows = x.shape[0]
    n = rows if valid is None else jnp.sum(valid)
    dtype = x.dtype
    init_keys = jnp.arange(rows)
    # An MCMC move at beta = 0 exactly (last reverse stage) would multiply
    # -inf by 0; its output is never used, so a tiny beta is harmless.
    beta_mc = jnp.maximum(beta_new, 1e-8)

    def logdens(z):
        lq = ref.log_prob(z)
        return lq + beta_mc * (target_lp(z) - lq)

    keys = jax.vmap(lambda c: jax.random.fold_in(stage_key, c))(init_keys)
    states = jax.vmap(lambda k, z: kernel.init(k, z, logdens, params, options))(keys, x)

    def mcmc(carry, j):
        states, params = carry
        ks = jax.vmap(lambda c: jax.random.fold_in(jax.random.fold_in(stage_key, j + 1), c))(
            init_keys)
        states, stats = jax.vmap(
            lambda k, s: kernel.step(k, s, logdens, params, options))(ks, states)
        acc = _mean(jnp.nan_to_num(stats["acceptance_rate"], nan=0.0), valid)
        if cfg.tunable and cfg.target_accept is not None:
            # Steer the shared step size by the population's acceptance: the
            # mean over all particles is a low-noise signal even for one step.
            params = dict(params)
            params["step_size"] = params["step_size"] * jnp.exp(
                1.5 * (acc - cfg.target_accept))
        cost = (_sum(stats["n_steps"], valid) if "n_steps" in stats
                else jnp.asarray(n, dtype))
        return (states, params), (acc, cost.astype(dtype))

    (states, params), (accs, costs) = jax.lax.scan(
        mcmc, (states, params), jnp.arange(cfg.mcmc_steps))
    x = states.position
    if cfg.tunable and cfg.adapt_mass:
        var = jnp.var(x, axis=0) if valid is None else _mean(
            (x - _mean(x, valid)) ** 2, valid)
        # Shrink towards the old value so that a collapsed or noisy
        # population cannot give a zero or wild mass matrix.
        w = n / (n + 10.0)
        imm = w * var + (1 - w) * params["inverse_mass_matrix"]
        imm = jnp.where(jnp.isfinite(imm) & (imm > 0), imm, params["inverse_mass_matrix"])
        params = dict(params, inverse_mass_matrix=imm)
    return x, params, accs, costs


def _sum(a, valid):
    """Sum of ``a`` over its leading axis, the rows ``valid`` marks (``None``: all)."""
    if valid is None:
        return jnp.sum(a, axis=0)
    return jnp.sum(jnp.where(valid.reshape(valid.shape + (1,) * (a.ndim - 1)), a, 0), axis=0)


def _mean(a, valid):
    """Mean of ``a`` over its leading axis, over the rows ``valid`` marks (``None``: all)."""
    if valid is None:
        return jnp.mean(a, axis=0)
    return _sum(a, valid) / jnp.sum(valid).astype(a.dtype)


def _record_stage(rec, i, beta_new, logw, acceptance, step_used, valid=None):
    """The stage record with row ``i`` filled in (running log Z from ``logw`` ``(rows,)``,
    over the rows ``valid`` marks)."""
    if valid is None:
        lz = logsumexp(logw) - jnp.log(logw.shape[0])
    else:
        logw = jnp.where(valid, logw, -jnp.inf)  # padding has weight zero
        lz = logsumexp(logw) - jnp.log(jnp.sum(valid).astype(logw.dtype))
    rec = dict(rec)
    rec["beta"] = rec["beta"].at[i].set(beta_new)
    rec["log_ess"] = rec["log_ess"].at[i].set(log_ess(logw))
    rec["acceptance"] = rec["acceptance"].at[i].set(acceptance)
    rec["step_size"] = rec["step_size"].at[i].set(step_used)
    rec["log_z"] = rec["log_z"].at[i].set(lz)
    return rec


@jit_over_target(("target", "kernel", "options", "cfg", "ticks", "particles"))
def anneal(key, ref, x0, betas, params0, *, target, kernel, options, cfg: AnnealConfig,
           ticks=None, particles=None):
    """Run AIS from ``betas[0]`` to ``betas[-1]`` (or adaptively from 0 to 1).

    Parameters
    ----------
    key
        A PRNG key.
    ref
        The reference :class:`~energymc.logz._reference.Reference` ``q0``.
    x0
        ``(n, dim)`` starting particles: draws of ``q0`` (forward) or of the
        target (reverse).
    betas
        ``(K + 1,)`` inverse temperatures; for the adaptive schedule only
        ``betas[0]`` (= 0) is read. A fixed schedule stops before its first
        NaN (padding, so that schedules of different lengths share a program).
    params0
        Kernel params shared by all particles (``step_size`` ``()``,
        ``inverse_mass_matrix`` ``(dim,)`` for continuous kernels).
    target, kernel, options, cfg
        Static: the :class:`energymc.Energy`, the kernel object, its resolved
        options and an :class:`AnnealConfig`.
    ticks
        Static: an :class:`energymc.progress.StageTicks` that reports each
        stage to a progress meter, or ``None`` (no callback is compiled in).
        It changes no number of the run.
    particles
        Static: how many of the ``rows`` of ``x0`` are particles (``None``:
        all). The rows after them are padding (to a multiple of the devices
        the rows are split over): they move like particles, with keys of
        their own, but take no part in any weight, ESS, mean acceptance,
        mass matrix, schedule or cost, so the first ``particles`` rows come
        out as in a run of ``particles`` rows alone (up to the order of sums).

    Returns
    -------
    dict
        ``x`` ``(rows, dim)`` final particles; ``logw`` ``(rows,)``; ``num_stages``;
        ``record``: dict of ``(max_stages,)`` arrays ``beta``, ``log_ess``
        (of the accumulated weights), ``acceptance``, ``step_size``,
        ``log_z`` (running estimate), valid up to ``num_stages``;
        ``params`` (after the last stage); ``grad_evals`` (all particles).
    """
    loop = _Loop(key, ref, betas, x0.shape[0], x0.dtype, target=target, kernel=kernel,
                 options=options, cfg=cfg, ticks=ticks, particles=particles)
    carry = loop.start(x0, params0)
    return anneal_finish(jax.lax.while_loop(loop.cond, loop.body, carry))


# ------------------------------------------------ the same loop, chunk by chunk
# log_partition(checkpoint=...) runs the loop from the host in chunks of
# stages and saves the carry between them. anneal_chunk is compiled once
# (``stop`` is traced) and runs the very body of ``anneal``'s loop; stage i
# draws from fold_in(key, i) whatever chunk it falls in, so any cut gives the
# same numbers (tests/logz/test_logz_checkpoint.py).
@jit_over_target(("target", "kernel", "options", "cfg", "ticks", "particles"))
def anneal_start(key, ref, x0, betas, params0, *, target, kernel, options, cfg: AnnealConfig,
                 ticks=None, particles=None):
    """The loop's carry before its first stage (arguments as :func:`anneal`).

    Returns the tuple ``(i, beta, x, logw, ll, params, record, grad_evals,
    beta_next)``: ``i`` is the next stage's index.
    """
    loop = _Loop(key, ref, betas, x0.shape[0], x0.dtype, target=target, kernel=kernel,
                 options=options, cfg=cfg, ticks=ticks, particles=particles)
    return loop.start(x0, params0)


@jit_over_target(("target", "kernel", "options", "cfg", "ticks", "particles"))
def anneal_chunk(carry, stop, key, ref, betas, *, target, kernel, options, cfg: AnnealConfig,
                 ticks=None, particles=None):
    """Run the stages of ``carry`` (from :func:`anneal_start` or an earlier
    chunk) up to stage ``stop`` (traced; excluded), or to the loop's own end.

    ``key``, ``ref``, ``betas`` and the static arguments must be the ones the
    carry was started with.
    """
    x = carry[2]
    loop = _Loop(key, ref, betas, x.shape[0], x.dtype, target=target, kernel=kernel,
                 options=options, cfg=cfg, ticks=ticks, particles=particles)
    return jax.lax.while_loop(lambda c: loop.cond(c) & (c[0] < stop), loop.body, carry)


def anneal_finish(carry) -> dict:
    """:func:`anneal`'s result from the loop's final carry."""
    i, beta, x, logw, _, params, rec, evals, _ = carry
    return {"x": x, "logw": logw, "num_stages": i, "final_beta": beta, "record": rec,
            "params": params, "grad_evals": evals}


class _Loop:
    """The annealing loop's start, condition and body for one run (pure JAX).

    Built inside a compiled function; ``rows`` rows of ``dtype``, the first
    ``particles`` of them particles (``None``: all), the rest padding. See
    :func:`anneal` for the arguments.
    """

    def __init__(self, key, ref, betas, rows, dtype, *, target, kernel, options, cfg, ticks,
                 particles=None):
        n = rows if particles is None else int(particles)
        self.key, self.ref, self.betas, self.n, self.dtype = key, ref, betas, n, dtype
        self.rows = rows
        # None without padding: the one-device program is then unchanged.
        self.valid = None if n == rows else jnp.arange(rows) < n
        self.kernel, self.options, self.cfg, self.ticks = kernel, options, cfg, ticks
        self.target_lp = target.flat_logdensity
        self.ll_fn = jax.vmap(lambda z: _safe_ll(self.target_lp, ref, z))
        num_fixed = betas.shape[0] - 1
        self.size = cfg.max_stages if cfg.adaptive else num_fixed

    def cond(self, carry):
        i, beta = carry[0], carry[1]
        if self.cfg.adaptive:
            return (i < self.size) & (beta < 1.0)
        # A fixed schedule may end early at a NaN: BDMC's reverse runs pad theirs
        # to one length so that one compiled program serves every forward run.
        return (i < self.size) & ~jnp.isnan(self.betas[jnp.minimum(i + 1, self.size)])

    def adapt_beta(self, ll, beta, valid=None):
        b = beta + _next_delta(None, ll, beta, self.cfg.cess, valid)
        return jnp.where(1.0 - b < 1e-6, 1.0, b)

    def body(self, carry):
        cfg, n, dtype = self.cfg, self.n, self.dtype
        i, beta, x, logw, ll, params, rec, evals, beta_next = carry
        stage_key = jax.random.fold_in(self.key, i)
        if cfg.adaptive:
            # beta_new was chosen one stage earlier, before x was drawn: a
            # schedule chosen from the very particles it then weights makes
            # every stage's weight biased by O(1/n) (it was ~0.1 nats over
            # 100 stages of 128 particles).
            beta_new = beta_next
            beta_next = self.adapt_beta(ll, beta_new, self.valid)
        else:
            beta_new = self.betas[i + 1]
        delta = beta_new - beta
        # delta * ll with ll = -inf is -inf for delta > 0 (forward) but +inf
        # for delta < 0 (reverse, a target draw outside q0's support): both
        # are what the weights mean, and only delta = 0 needs guarding.
        logw = jnp.where(delta == 0, logw, logw + delta * ll)
        step_used = params["step_size"] if cfg.tunable else jnp.asarray(jnp.nan, dtype)
        x, params, accs, costs = _stage_moves(stage_key, self.ref, x, params, beta_new,
                                              target_lp=self.target_lp, kernel=self.kernel,
                                              options=self.options, cfg=cfg,
                                              valid=self.valid)
        ll = self.ll_fn(x)
        rec = _record_stage(rec, i, beta_new, logw, jnp.mean(accs), step_used, self.valid)
        # One gradient per particle to (re)initialise the kernel at the new beta.
        evals = evals + jnp.sum(costs) + n
        if self.ticks is not None:
            self.ticks(i, beta, beta_new)
        return i + 1, beta_new, x, logw, ll, params, rec, evals, beta_next

    def start(self, x0, params0):
        n, dtype = self.n, self.dtype
        record = {k: jnp.zeros((self.size,), dtype) for k in
                  ("beta", "log_ess", "acceptance", "step_size", "log_z")}
        ll0 = self.ll_fn(x0)
        beta0 = self.betas[0].astype(dtype)
        if self.cfg.adaptive:
            # The first step is chosen from independent draws of q0 (x0 is a
            # draw of ref, the only case where the adaptive schedule is used).
            beta_next = self.adapt_beta(
                self.ll_fn(self.ref.sample(jax.random.fold_in(self.key, 2**31 - 1), n)), beta0)
        else:
            beta_next = beta0
        return (jnp.asarray(0), beta0, x0, jnp.zeros((self.rows,), dtype), ll0,
                params0, record, jnp.asarray(0.0, dtype), beta_next)
