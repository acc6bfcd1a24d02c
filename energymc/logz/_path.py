"""AIS along a model's own annealing path (``log_partition(..., base=path)``).

The default AIS anneals along the geometric path between a reference ``q0``
and the target and moves particles with a generic kernel. Some models know a
better path: an RBM anneals through RBMs with scaled weights, each sampled
exactly by block Gibbs (Salakhutdinov & Murray, 2008). An
:class:`AnnealingPath` describes such a family: a base with known ``log Z``,
the unnormalised log density at every ``beta``, and a move that leaves it
invariant. AIS weights each particle by ``log f(x, beta_t) - log f(x,
beta_{t-1})`` (Neal, 2001), so ``mean(exp(logw))`` estimates ``Z / Z0``.

Pure zone: :func:`anneal_path` is compiled once per path and configuration;
the path's parameters and the betas are traced.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from energymc.errors import OptionError
from energymc.logz._anneal import AnnealConfig, largest_step, log_ess

__all__ = ["AnnealingPath", "anneal_path", "anneal_path_chunk", "anneal_path_finish",
           "anneal_path_start", "check_path"]


@dataclasses.dataclass(frozen=True)
class AnnealingPath:
    """A family of distributions from a base with known ``log Z`` to the target.

    Pass one as ``emc.log_partition(target, method="ais", base=path)``. All
    functions are pure JAX and take the path's ``params`` first; particles
    ``x`` are ``(n, dim)`` flat states like the target's.

    Attributes
    ----------
    log_f
        ``log_f(params, x, beta) -> (n,)``: unnormalised log density at
        inverse temperature ``beta``. At ``beta = 0`` it must integrate to
        ``exp(log_z_base(params))``; at ``beta = 1`` it must equal the target's
        log density ``-E(x)`` (checked on a few base draws before annealing).
    step
        ``step(params, key, x, beta) -> (n, dim)``: one move of every particle
        that leaves ``exp(log_f(params, ., beta))`` invariant.
    sample_base
        ``sample_base(params, key, n) -> (n, dim)``: exact draws at ``beta = 0``.
    log_z_base
        ``log_z_base(params) -> scalar``: ``log Z`` of the base.
    params
        The arrays the functions read (traced: new values of the same shapes
        reuse the compiled run).
    name
        Shown in results (``est.info["kernel"]``).
    """

    log_f: Callable
    step: Callable
    sample_base: Callable
    log_z_base: Callable
    params: Any = dataclasses.field(default=None, compare=False, hash=False)
    name: str = "path"

    def __repr__(self) -> str:
        return f"AnnealingPath({self.name!r})"


def check_path(path: AnnealingPath, target, method: str, opts: dict) -> None:
    """Eager checks (before the annealing compiles): method, options, shapes, ends."""
    if method != "ais":
        raise OptionError(f"base= as an AnnealingPath works with method='ais'; got "
                          f"method={method!r}.")
    kernel_opts = [k for k in ("kernel", "kernel_options", "step_size", "target_accept")
                   if opts.get(k) is not None]
    if kernel_opts:
        raise OptionError(f"an AnnealingPath brings its own moves (path.step); drop "
                          f"{', '.join(f'{k}=' for k in kernel_opts)}.")
    key = jax.random.key(0)
    x = path.sample_base(path.params, key, 8)
    if tuple(x.shape) != (8, target.dim):
        raise OptionError(f"path.sample_base(params, key, n) must return (n, {target.dim}) "
                          f"states like the target's; it returned {tuple(x.shape)}.")
    # The path must end at the target: otherwise AIS estimates another Z.
    end = np.asarray(path.log_f(path.params, x, 1.0), dtype=float)
    want = np.asarray(jax.vmap(target.flat_logdensity)(x), dtype=float)
    if not np.allclose(end, want, rtol=1e-4, atol=1e-3 * (1 + np.abs(want).max())):
        raise OptionError(
            "path.log_f(params, x, 1.0) differs from the target's log density -E(x) on base "
            f"draws (e.g. {end[0]:.6g} vs {want[0]:.6g}): the path ends at another "
            "distribution. Build the path and the target from the same parameters."
        )


def _next_beta(inc, beta, cess):
    """Largest ``beta' <= 1`` whose increments ``inc(beta')`` keep CESS >= ``cess``.

    Conditional ESS with uniform weights, as the geometric path's adaptive
    schedule (:func:`energymc.logz._anneal._next_delta`).
    """

    def frac(delta):
        a = inc(beta + delta)
        a = jnp.where(jnp.isnan(a), -jnp.inf, a)
        return jnp.exp(log_ess(a) - jnp.log(a.shape[0]))

    b = beta + largest_step(frac, 1.0 - beta, cess)
    return jnp.where(1.0 - b < 1e-6, jnp.ones_like(b), b)


class _PathLoop:
    """AIS along ``path``: the loop's start, condition and body (pure JAX, built under jit).

    Shared by :func:`anneal_path` (one compiled loop) and
    :func:`anneal_path_start` / :func:`anneal_path_chunk` (the same loop run
    from the host in chunks, for ``log_partition(checkpoint=...)``).
    """

    def __init__(self, key, params, betas, dtype, *, path, n, cfg, ticks):
        self.k_init, self.k_run = jax.random.split(key)
        self.key, self.params, self.betas, self.dtype = key, params, betas, dtype
        self.path, self.n, self.cfg, self.ticks = path, n, cfg, ticks
        self.size = cfg.max_stages if cfg.adaptive else betas.shape[0] - 1

    def log_f(self, x, beta):
        return self.path.log_f(self.params, x, beta)

    def cond(self, carry):
        i, beta = carry[0], carry[1]
        if self.cfg.adaptive:
            return (i < self.size) & (beta < 1.0)
        return i < self.size

    def body(self, carry):
        cfg, log_f = self.cfg, self.log_f
        i, beta, x, logw, rec, beta_next = carry
        stage_key = jax.random.fold_in(self.k_run, i)
        if cfg.adaptive:
            # Chosen from the particles before they were weighted at beta,
            # so that the schedule does not depend on the particles it weights.
            beta_new = beta_next
            beta_next = _next_beta(lambda b: log_f(x, b) - log_f(x, beta_new), beta_new,
                                   cfg.cess)
        else:
            beta_new = self.betas[i + 1].astype(self.dtype)
        inc = log_f(x, beta_new) - log_f(x, beta)
        logw = logw + jnp.where(jnp.isnan(inc), -jnp.inf, inc)

        def move(x, j):
            return self.path.step(self.params, jax.random.fold_in(stage_key, j), x,
                                  beta_new), None

        x, _ = jax.lax.scan(move, x, jnp.arange(cfg.mcmc_steps))
        rec = dict(rec)
        rec["beta"] = rec["beta"].at[i].set(beta_new)
        rec["log_ess"] = rec["log_ess"].at[i].set(log_ess(logw))
        rec["acceptance"] = rec["acceptance"].at[i].set(jnp.nan)  # exact moves: no rejections
        rec["step_size"] = rec["step_size"].at[i].set(jnp.nan)
        rec["log_z"] = rec["log_z"].at[i].set(logsumexp(logw) - jnp.log(self.n))
        if self.ticks is not None:
            self.ticks(i, beta, beta_new)
        return i + 1, beta_new, x, logw, rec, beta_next

    def start(self):
        n, dtype, log_f = self.n, self.dtype, self.log_f
        x0 = self.path.sample_base(self.params, self.k_init, n)
        record = {k: jnp.zeros((self.size,), dtype) for k in
                  ("beta", "log_ess", "acceptance", "step_size", "log_z")}
        beta0 = jnp.zeros((), dtype)
        if self.cfg.adaptive:
            fresh = self.path.sample_base(self.params, jax.random.fold_in(self.key, 2**31 - 1),
                                          n)
            beta_next = _next_beta(lambda b: log_f(fresh, b) - log_f(fresh, beta0), beta0,
                                   self.cfg.cess)
        else:
            beta_next = beta0
        return (jnp.asarray(0), beta0, x0, jnp.zeros((n,), dtype), record, beta_next)


def _base_dtype(path, params, n):
    return jax.eval_shape(lambda: path.sample_base(params, jax.random.key(0), n)).dtype


@jax.jit(static_argnames=("path", "n", "cfg", "ticks"))
def anneal_path(key, params, betas, *, path: AnnealingPath, n: int, cfg: AnnealConfig,
                ticks=None):
    """AIS along ``path`` from 0 to 1 with ``n`` particles.

    ``ticks`` (static), an :class:`energymc.progress.StageTicks` or ``None``,
    reports each stage to a progress meter and changes no number.

    Returns the same record as :func:`energymc.logz._anneal.anneal`:
    ``x``, ``logw`` (relative to the base: add ``log_z_base``),
    ``num_stages``, ``final_beta``, ``record`` and ``grad_evals``.
    """
    loop = _PathLoop(key, params, betas, _base_dtype(path, params, n), path=path, n=n, cfg=cfg,
                     ticks=ticks)
    return anneal_path_finish(jax.lax.while_loop(loop.cond, loop.body, loop.start()), n, cfg)


# ------------------------------------------------ the same loop, chunk by chunk
# As energymc.logz._anneal's anneal_start/anneal_chunk: ``stop`` is traced, so
# the chunk is compiled once; stage i draws from fold_in(k_run, i) whatever
# chunk it falls in, so any cut gives the numbers of anneal_path.
@jax.jit(static_argnames=("path", "n", "cfg", "ticks"))
def anneal_path_start(key, params, betas, *, path: AnnealingPath, n: int, cfg: AnnealConfig,
                      ticks=None):
    """The carry ``(i, beta, x, logw, record, beta_next)`` before the first stage."""
    return _PathLoop(key, params, betas, _base_dtype(path, params, n), path=path, n=n, cfg=cfg,
                     ticks=ticks).start()


@jax.jit(static_argnames=("path", "n", "cfg", "ticks"))
def anneal_path_chunk(carry, stop, key, params, betas, *, path: AnnealingPath, n: int,
                      cfg: AnnealConfig, ticks=None):
    """Stages of ``carry`` up to ``stop`` (traced; excluded) or the loop's own end."""
    loop = _PathLoop(key, params, betas, carry[2].dtype, path=path, n=n, cfg=cfg, ticks=ticks)
    return jax.lax.while_loop(lambda c: loop.cond(c) & (c[0] < stop), loop.body, carry)


def anneal_path_finish(carry, n: int, cfg: AnnealConfig) -> dict:
    """:func:`anneal_path`'s result from the loop's final carry."""
    i, beta, x, logw, rec, _ = carry
    evals = i.astype(x.dtype) * n * (cfg.mcmc_steps + 1)
    return {"x": x, "logw": logw, "num_stages": i, "final_beta": beta, "record": rec,
            "grad_evals": evals}
