"""Checks that catch a confidently wrong log Z: replicate spread and a mode-mixture estimate.

Both run on the host after the estimator, and each returns a problem
sentence (with a fix) or ``None`` plus the numbers it used, which
:func:`energymc.log_partition` stores in ``LogZ.info["checks"]``.

* :func:`replicate_check` — independent replicates must scatter no more
  than their own error bars say. Each replicate's ``stderr`` is an
  estimate from inside one run; when it is too small (resampling that
  concentrated the weight on a few lineages, a heavy-tailed weight
  distribution) the replicates disagree more than it allows.
* :func:`mode_check` — a second estimator along another path. The final
  particles are sent down the energy (gradient descent) to the local minima
  they sit in; a Gaussian mixture with one component per minimum (Laplace
  covariance, slightly widened) is an importance-sampling proposal ``g``
  whose estimate ``mean(exp(-E(x)) / g(x))`` is unbiased for ``Z`` whatever
  the annealing did. If it is clearly above the annealing estimate, the
  annealing under-weighted modes that its own particles found (the typical
  failure on unequal mixtures: a narrow mode gains its mass late in the
  schedule, after the particles that could have entered it were resampled
  away). Descents also start from draws of the base ``q0``, independent
  of the annealing (:func:`base_start_count`: 2,048 up to 8 dimensions,
  ``16384 // dim`` above, never under 32), so a mode that no particle
  reached is in the mixture when one of those descents lands in it; the
  problem then says how many modes hold importance mass but no particle. A
  narrow mode's basin of attraction holds a small share of q0 (0.15-0.2% of
  the draws for a 10-d mode of weight 0.15 and sd 0.4), hence the many
  starts; a still narrower one, or one in high dimension, can be missed.

* :func:`unverified_problem` — when the mode check could not be formed on a
  funnel-like target, nothing vouches for the run: the record says so. Two
  signs, both measured on the zoo's TUNING half: the descents went far below
  every particle's energy (``depth``: the particles never entered a region
  much denser than where they sat, a funnel's neck), or the poorly fitting
  mixture, at most 2 modes, estimates far below the annealing.

* :func:`lower_than_unbiased` — where ``base="auto"`` fell back to parallel
  tempering or nested sampling, its estimate must not lie clearly below the
  first run's or the mode check's, whose ``Z`` is unbiased (their logs rarely
  read high).

Neither check sees a bias that every replicate shares because the run's
kernel cannot reach part of the target (a funnel's neck); the last marks
some such runs unverified, not all: see
``benchmarks/RESULTS.md`` ("Held-out zoo: log Z under defaults") for the
checks measured against it and why they failed.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.scipy.special import logsumexp

from energymc._util import kish_ess, logsumexp_compiled, nonfinite_to_neginf, weighted_choice
from energymc.energy import jit_over_target

__all__ = ["SAME_MODE_SDS", "base_start_count", "descend", "laplace_modes", "laplace_weights",
           "laplace_widen", "lower_than_unbiased", "mode_check", "replicate_check",
           "unverified_problem",
           "REPLICATE_LEVEL"]

#: The mode check descends from ``BASE_START_BUDGET // dim`` draws of the base
#: ``q0``, at least ``BASE_STARTS_MIN`` and at most ``BASE_STARTS_MAX``
#: (:func:`base_start_count`). A narrow mode's basin of attraction holds a
#: small share of q0's draws: 0.15-0.2% for mixture10d3's (weight 0.15, sd
#: 0.4; TUNING), so 32 starts found it in none of 40 keys, 1,638 in 88% and
#: 2,048 in 92% (benchmarks/RESULTS.md, "Narrow modes nothing reached"). A
#: descent costs ``steps`` gradients of ``dim`` coordinates, so the budget in
#: starts x dim keeps 500-d at the 32 starts it had (the mode check is already
#: the largest part of a default call there) while low-dimensional targets,
#: where a descent is cheap, get many.
BASE_START_BUDGET = 16384
BASE_STARTS_MIN = 32
BASE_STARTS_MAX = 2048

#: ``unverified_problem`` fires when the poorly fitting mixture, built at no
#: more than this many modes, estimates log Z more than ``UNVERIFIED_GAP``
#: nats below the annealing. Both chosen on TUNING (benchmarks/RESULTS.md,
#: "Unverified where the mode check cannot vouch"): sound runs that fit poorly
#: with 1-2 modes sat at -0.3 to -0.5 (funnel2, student50) and -1.3 to -1.6
#: (banana50), funnel20 misses at -1.9 to -9.8; rings (a continuum of minima)
#: reach the 8-mode cap and sit at -5 to -15 when sound. The sound gap grows
#: with dimension on curved targets (banana10 -0.8, banana50 -1.6), so larger
#: ones may be marked unverified when sound.
UNVERIFIED_MAX_MODES = 2
UNVERIFIED_GAP = 1.75

#: ``unverified_problem`` also fires when the descents went more than
#: ``max(UNVERIFIED_DEPTH, UNVERIFIED_DEPTH_SDS * sqrt(dim / 2))`` nats below
#: the particles' weighted 1% energy quantile, beyond a Gaussian's allowance
#: (``mode_check``'s ``depth``; ``sqrt(dim / 2)`` is the sd of a Gaussian's
#: energy, and non-Gaussian bodies such as heavy tails stray from it by a few
#: such sds). Chosen on TUNING (benchmarks/RESULTS.md, "Depth of the
#: descents"): reliable runs at most 0.2 up to 20-d, student50 4.8 to 6.2
#: (1.0-1.2 sds), runs whose particles under-weighted a narrow mode 1.7 to
#: 7.2 (the mode check compares those), funnel20 67 to 84 (21-27 sds).
UNVERIFIED_DEPTH = 10.0
UNVERIFIED_DEPTH_SDS = 5.0

#: Upper 0.999 quantile of chi^2_k / k, k = R - 1 (R = 2..8): the replicate
#: spread check's threshold, so a correct stderr is flagged once in 1,000 runs.
REPLICATE_LEVEL = {1: 10.83, 2: 6.91, 3: 5.42, 4: 4.62, 5: 4.10, 6: 3.74, 7: 3.47}


def replicate_check(log_zs, stderrs):
    """Compare the spread of ``R`` independent estimates with their own stderrs.

    Parameters
    ----------
    log_zs
        ``(R,)`` replicate estimates of log Z.
    stderrs
        ``(R,)`` each replicate's own stderr.

    Returns
    -------
    stderr : float
        Stderr of the pooled estimate ``log mean exp(log_zs)``: the larger of
        the replicates' spread and their own stderrs, divided by ``sqrt(R)``
        (the spread of 4 replicates alone is itself too noisy to trust).
    problem : str or None
        Set when ``(R - 1) s^2 / mean(stderr^2)`` exceeds the 0.999 quantile
        of ``chi^2_{R-1}``.
    info : dict
        ``spread`` (sd of the replicates), ``own`` (rms of their stderrs),
        ``ratio`` (spread / own).
    """
    z = np.asarray(log_zs, dtype=float)
    se = np.asarray(stderrs, dtype=float)
    R = z.size
    spread = float(np.std(z, ddof=1)) if R > 1 else 0.0
    own = float(np.sqrt(np.mean(se**2)))
    stderr = max(spread, own) / math.sqrt(R)
    # Float32 rounding of log Z sets a floor under any stderr (a base equal to
    # the target gives stderr 0 and replicates equal to the last bits).
    floor = 1e-5 * max(1.0, float(np.max(np.abs(z)))) if np.all(np.isfinite(z)) else 0.0
    ratio = spread / max(own, floor) if max(own, floor) > 0 else math.inf
    info = {"spread": spread, "own": own, "ratio": ratio}
    if R < 2 or not np.all(np.isfinite(z)):
        return stderr, None, info
    level = REPLICATE_LEVEL.get(R - 1, 3.0)
    if ratio**2 > level:
        return stderr, (
            f"the {R} independent replicates scatter {ratio:.1f}x more than their own error "
            f"bars allow (sd {spread:.3f} against a per-run stderr of {own:.3f}): each run's "
            "stderr is too small, so the estimate is less certain than any one run says and may "
            "be biased. Use more particles= or a base closer to the target (base='pilot'), "
            "and compare methods."), info
    return stderr, None, info


def base_start_count(dim):
    """Draws of the base ``q0`` that :func:`mode_check` descends from, at dimension ``dim``:
    ``BASE_START_BUDGET // dim`` clipped to ``[BASE_STARTS_MIN, BASE_STARTS_MAX]``."""
    return int(min(BASE_STARTS_MAX, max(BASE_STARTS_MIN, BASE_START_BUDGET // max(int(dim), 1))))


#: Two descents' ends within this many (widened Laplace) sds are the same mode.
SAME_MODE_SDS = 2.0


def laplace_widen(dim):
    """Variance factor ``1 + 1/sqrt(dim)`` applied to a Laplace covariance."""
    # Proposal covariance c^2 * Laplace: wider than the mode (heavier tails are
    # safer for importance sampling), but only by 1 + 1/sqrt(d) in variance so
    # that the weight variance, ~ (c^2 / sqrt(2 c^2 - 1))^d, stays O(1) in high d.
    return 1.0 + 1.0 / math.sqrt(dim)


@jit_over_target(("target", "steps"))
def descend(y0, scale, xp, *, target, steps):
    """Gradient descent (Adam, cosine decay) from ``y0`` ``(m, dim)`` in units of ``scale``.

    Returns the ends ``(m, dim)``, their energies ``(m,)`` and the energies
    ``(n,)`` of the particles ``xp`` ``(n, dim)`` (for :func:`_depth`;
    evaluated here so that the check compiles one program per target, not two).
    """
    opt = optax.adam(optax.cosine_decay_schedule(0.3, steps, alpha=1e-3))
    energy = lambda y: target.flat_energy(y * scale)
    grad = jax.vmap(jax.grad(energy))

    def body(carry, _):
        y, state = carry
        g = grad(y)
        g = jnp.where(jnp.isfinite(g), g, 0.0)
        upd, state = opt.update(g, state, y)
        return (optax.apply_updates(y, upd), state), None

    (y, _), _ = jax.lax.scan(body, (y0, opt.init(y0)), None, length=steps)
    energies = jax.vmap(target.flat_energy)
    return y * scale, energies(y * scale), energies(xp)


@jit_over_target(("target",))
def _hessian(x, *, target):
    return jax.hessian(target.flat_energy)(x)


@jit_over_target(("target",))
def _is_logw(x, locs, chols, log_pi, *, target):
    """``-E(x) - log g(x)`` for the Gaussian mixture ``g``; ``x`` ``(m, dim)``."""

    def log_comp(loc, chol):
        y = jax.scipy.linalg.solve_triangular(chol, (x - loc).T, lower=True).T
        logdet = jnp.sum(jnp.log(jnp.diag(chol)))
        return -0.5 * jnp.sum(y**2, axis=1) - logdet - 0.5 * x.shape[1] * math.log(2 * math.pi)

    log_g = logsumexp(jax.vmap(log_comp)(locs, chols) + log_pi[:, None], axis=0)
    lw = -jax.vmap(target.flat_energy)(x) - log_g
    return nonfinite_to_neginf(lw)


@jit_over_target(("target",))
def _is_logw_t(x, locs, chols, log_pi, df, *, target):
    """:func:`_is_logw` for a mixture of product Student-t components: ``loc + L t``,
    ``t`` ``(dim,)`` independent ``t_df`` coordinates."""

    def log_comp(loc, chol):
        y = jax.scipy.linalg.solve_triangular(chol, (x - loc).T, lower=True).T
        logdet = jnp.sum(jnp.log(jnp.diag(chol)))
        one = (jax.scipy.special.gammaln(0.5 * (df + 1.0)) - jax.scipy.special.gammaln(0.5 * df)
               - 0.5 * jnp.log(df * math.pi))
        return (jnp.sum(one - 0.5 * (df + 1.0) * jnp.log1p(y**2 / df), axis=1) - logdet)

    log_g = logsumexp(jax.vmap(log_comp)(locs, chols) + log_pi[:, None], axis=0)
    lw = -jax.vmap(target.flat_energy)(x) - log_g
    return nonfinite_to_neginf(lw)


def _unreached(x, w, locs, chols, comp, wn, *, share=0.05, held=0.01):
    """Modes with at least ``share`` of the importance weight but under ``held``
    of the particles' weight (each particle counted at its nearest mode in the
    Mahalanobis metric of that mode's proposal covariance)."""
    d2 = np.stack([np.sum(np.linalg.solve(c, (x - m).T) ** 2, axis=0)
                   for m, c in zip(locs, chols, strict=True)])
    part = np.bincount(np.argmin(d2, axis=0), weights=w / w.sum(), minlength=len(locs))
    imp = np.bincount(comp, weights=wn, minlength=len(locs))
    return int(np.sum((imp >= share) & (part < held)))


def _depth(e, w, ends, dim):
    """How far below the particles the deepest descent went, beyond what a Gaussian allows.

    ``e`` ``(n,)`` energies of the particles, ``w`` ``(n,)`` their weights,
    ``ends`` the descents' final energies, ``dim`` the dimension. Near a
    Gaussian mode at energy ``E0``, draws have ``E - E0 ~ Gamma(dim / 2)``,
    so the particles' lowest energies sit
    within a few nats of the deepest minimum they can reach. Returns
    ``deepest`` (lowest finite descent energy), ``energy_q01`` (the
    particles' weighted 1% energy quantile) and ``depth`` (``energy_q01 -
    deepest`` minus the Gamma's 1% quantile: about 0 or below when the
    particles sample the deepest basin, large when the descents reached a
    region far denser than any the particles visited) and ``depth_limit``,
    beyond which :func:`unverified_problem` fires.
    """
    from scipy.special import gammaincinv

    fin = ends[np.isfinite(ends)]
    keep = np.isfinite(e)
    if not fin.size or not np.any(keep):
        return {}
    e, wk = e[keep], w[keep] / w[keep].sum()
    order = np.argsort(e)
    cum = np.cumsum(wk[order])
    q01 = float(e[order][min(np.searchsorted(cum, 0.01), e.size - 1)])
    deepest = float(np.min(fin))
    gamma01 = float(gammaincinv(0.5 * dim, 0.01))
    limit = max(UNVERIFIED_DEPTH, UNVERIFIED_DEPTH_SDS * math.sqrt(0.5 * dim))
    return {"deepest": deepest, "energy_q01": q01, "depth": q01 - deepest - gamma01,
            "depth_limit": limit}


def laplace_modes(target, mins, energies, sd, max_modes, dtype, max_sd=None):
    """A widened Laplace Gaussian at each distinct local minimum, lowest energy first.

    ``mins`` ``(m, dim)`` and ``energies`` ``(m,)`` are the descents' ends;
    ``sd`` ``(dim,)`` the particles' spread. In flat or concave directions a
    component's sd is ``max_sd`` (default 3 particle sds). Returns lists
    ``locs`` (each ``(dim,)``), ``chols`` (each ``(dim, dim)``) and
    ``log_mass`` (the Laplace log-mass of each mode), at most ``max_modes``
    long.
    """
    dim = mins.shape[1]
    order = [i for i in np.argsort(energies) if np.isfinite(energies[i])]
    locs, chols, log_mass = [], [], []
    widen = laplace_widen(dim)
    max_var = (3.0 * float(np.max(sd)))**2 if max_sd is None else float(max_sd)**2
    from scipy.linalg import solve_triangular

    for i in order:
        m = mins[i]
        # Mahalanobis distance by a triangular solve with the kept factor
        # (O(dim^2)); forming and solving c c^T per pair was O(dim^3), 5 of
        # the mode check's 8 CPU-s at 500 dimensions with 64 descents.
        if any(float(np.sum(solve_triangular(c, m - loc, lower=True) ** 2))
               < SAME_MODE_SDS**2 * widen
               for loc, c in zip(locs, chols, strict=True)):
            continue  # within 2 sd of a kept mode: the same one
        h = np.asarray(_hessian(jnp.asarray(m, dtype), target=target), dtype=float)
        if not np.all(np.isfinite(h)):
            continue
        lam, vec = np.linalg.eigh(0.5 * (h + h.T))
        # Flat or concave directions (a ring's tangent, a saddle): no wider than
        # 3 particle sds, so the proposal still covers where the particles were.
        lam = np.maximum(lam, 1.0 / max_var)
        cov = (vec / lam) @ vec.T * widen
        chols.append(np.linalg.cholesky(0.5 * (cov + cov.T)))
        locs.append(m)
        log_mass.append(-energies[i] + 0.5 * dim * math.log(2 * math.pi)
                        - 0.5 * float(np.sum(np.log(lam))))
        if len(locs) >= max_modes:
            break
    return locs, chols, log_mass


def laplace_weights(log_mass, floor=0.25):
    """``(k,)`` mixture weights from the modes' Laplace log-masses ``(k,)``.

    Each weight is at least ``floor / k`` before renormalising: every found
    mode gets draws even if its Laplace mass is (wrongly) tiny, as for a
    mode far from Gaussian; importance weights stay exact for the mixture used.
    """
    lm = np.asarray(log_mass, dtype=float)
    pi = np.exp(lm - np.max(lm))
    pi = np.maximum(pi / pi.sum(), floor / lm.size)
    return pi / pi.sum()


def mode_check(target, particles, weights, log_z, stderr, key, *, base_starts=None, starts=32,
               steps=400, max_modes=8, draws=4096, min_ess_frac=0.05, df=None):
    """Importance sampling from a Gaussian mixture at the particles' local minima.

    Parameters
    ----------
    target
        A real-support :class:`energymc.Energy`.
    particles, weights
        ``(n, dim)`` final particles and ``(n,)`` normalised weights.
    log_z, stderr
        The annealing estimate to check, in nats.
    key
        A ``jax.random.key``.
    base_starts
        ``(m, dim)`` more starting points, independent of the run (draws of
        its reference ``q0``), or ``None``. Their descents find minima that
        no particle reached: a mode the annealing lost entirely, which the
        particles' own minima cannot show.
    starts, steps
        Particles sent downhill, and descent steps.
    max_modes
        Distinct minima kept (lowest energy first).
    draws
        Importance-sampling draws.
    min_ess_frac
        The comparison is made only when the proposal fits: importance ESS at
        least this fraction of ``draws``.
    df
        ``None`` (default): Gaussian components. A number: each component is
        ``loc + L t`` with ``t`` independent Student-t coordinates of ``df``
        degrees of freedom and ``L`` the widened Laplace factor times
        ``sqrt((df + 1) / df)`` (the same curvature at the mode). For runs
        from a heavy-tailed base: Gaussian components have lighter tails than
        a heavy-tailed target, their importance weights are heavy-tailed, and
        the estimate reads low (0.06-0.08 nats on TUNING's student2, enough
        to flag sound runs; benchmarks/RESULTS.md, "log_partition's default
        follows its tail check").

    Returns
    -------
    problem : str or None
        Set when the mixture estimate exceeds ``log_z`` by more than 3
        combined standard errors (the annealing lost mass its particles
        found), or, with a well-fitting mixture (importance ESS at least half
        the draws), lies more than 3 combined standard errors below it.
    info : dict
        ``log_z``, ``stderr``, ``ess`` of the mixture estimate, ``modes``
        (count), ``unreached``, ``status`` (``"compared"`` or why not),
        ``flag`` where ``problem`` is set (``"low"``: the mixture estimate is
        the higher, modes missed or under-weighted; ``"high"``: below a
        well-fitting mixture, a few over-weighted particles), and
        :func:`_depth`'s ``deepest``, ``energy_q01``, ``depth`` and
        ``depth_limit`` (read by :func:`unverified_problem`).
    """
    x = np.asarray(particles, dtype=float)
    w = np.asarray(weights, dtype=float)
    n, dim = x.shape
    k_pick, k_draw = jax.random.split(key)
    dtype = jnp.result_type(float)
    idx = np.asarray(weighted_choice(k_pick, n, (min(starts, n),), jnp.asarray(w / w.sum())))
    sd = np.std(x, axis=0)
    sd = np.where(np.isfinite(sd) & (sd > 0), sd, 1.0)
    scale = jnp.asarray(sd, dtype)
    x0 = x[idx]
    if base_starts is not None:
        x0 = np.concatenate([x0, np.asarray(base_starts, dtype=float)])
    y0 = jnp.asarray(x0 / sd, dtype)
    mins, energies, e_part = descend(y0, scale, jnp.asarray(x, dtype), target=target,
                                      steps=steps)
    mins, energies = np.asarray(mins, dtype=float), np.asarray(energies, dtype=float)
    depth = _depth(np.asarray(e_part, dtype=float), w, energies, dim)
    locs, chols, log_mass = laplace_modes(target, mins, energies, sd, max_modes, dtype)
    if not locs:
        return None, {"status": "skipped: no finite local minimum found", "modes": 0, **depth}
    k = len(locs)
    pi = laplace_weights(log_mass)
    k_c, k_e = jax.random.split(k_draw)
    comp = np.asarray(weighted_choice(k_c, k, (draws,), jnp.asarray(pi)))
    locs_a, chols_a = np.stack(locs), np.stack(chols)
    if df is None:
        eps = np.asarray(jax.random.normal(k_e, (draws, dim), dtype), dtype=float)
    else:
        eps = np.asarray(jax.random.t(k_e, float(df), (draws, dim), dtype), dtype=float)
        # A t_df of scale s has curvature (df + 1) / (df s^2) at its mode: this
        # s matches the Laplace curvature there.
        chols_a = chols_a * math.sqrt((float(df) + 1.0) / float(df))
    # Draw by draw from its component, grouped by component: indexing the
    # factors by draw (chols_a[comp]) built a (draws, dim, dim) array, 8 GB and
    # 19 s at 500 dimensions; this is the same sums in the same order.
    xs = np.empty_like(eps)
    for j in range(k):
        sel = comp == j
        xs[sel] = locs_a[j] + np.einsum("ij,nj->ni", chols_a[j], eps[sel])
    args = (jnp.asarray(xs, dtype), jnp.asarray(locs_a, dtype), jnp.asarray(chols_a, dtype),
            jnp.asarray(np.log(pi), dtype))
    lw = np.asarray(_is_logw(*args, target=target) if df is None else
                    _is_logw_t(*args, jnp.asarray(float(df), dtype), target=target), dtype=float)
    info = {"modes": k, "draws": draws, **depth}
    if df is not None:
        info["df"] = float(df)
    if not np.any(np.isfinite(lw)):
        return None, {**info, "status": "skipped: no finite importance weight"}
    lse = float(logsumexp_compiled(lw))
    wn = np.exp(lw - lse)
    ess = float(kish_ess(wn))
    is_log_z = lse - math.log(draws)
    is_se = math.sqrt(max(1.0 / ess - 1.0 / draws, 0.0))
    unreached = _unreached(x, w, locs_a, chols_a, comp, wn)
    info.update(log_z=is_log_z, stderr=is_se, ess=ess, unreached=unreached)
    if ess < min_ess_frac * draws:
        return None, {**info, "status": f"skipped: the mixture fits poorly (ESS {ess:.0f})"}
    info["status"], gap = "compared", is_log_z - log_z
    shape = "Gaussian" if df is None else f"Student-t ({float(df):g} d.o.f.)"
    if gap > 3.0 * math.hypot(stderr, is_se):
        info["flag"] = "low"
        why = (f"{unreached} of them hold importance mass but no particle: the annealing lost "
               "those modes entirely" if unreached else
               "the annealing under-weighted modes it had found (typical of unequal "
               "mixtures, where a narrow mode gains its mass late)")
        return (f"a second estimate, by importance sampling from a {shape} at each of {k} "
                f"local minima (found by descending from the particles and from draws of the "
                f"base), is {gap:.2f} nats higher ({is_log_z:.3f} ± {is_se:.3f}): {why}, so "
                "log Z is too low. Use slower annealing (target_ess=0.9 for smc, cess=0.999 "
                "for ais) with more particles=, or method='pt'."), info
    if -gap > 3.0 * math.hypot(stderr, is_se) and ess >= 0.5 * draws:
        # The mixture fits well, and it is unbiased whatever the annealing did:
        # an estimate far above it came from a few overweighted particles.
        info["flag"] = "high"
        return (f"a second estimate, by importance sampling from a {shape} at each of {k} "
                f"local minima (importance ESS {ess:.0f} of {draws}), is "
                f"{-gap:.2f} nats lower ({is_log_z:.3f} ± {is_se:.3f}): the two disagree beyond "
                "their error bars, so at least one is wrong. Use more particles= and slower "
                "annealing, or compare with method='pt'."), info
    return None, info



def lower_than_unbiased(log_z, stderr, references, method="pt"):
    """Where an estimate lies below estimates whose ``Z`` is unbiased, beyond error bars.

    An unbiased ``Z`` estimate (AIS, SMC, importance sampling) reads high in
    log by ``t`` nats with probability at most ``exp(-t)`` (Markov), so an
    estimate clearly below one lost mass that the other found.

    Parameters
    ----------
    log_z, stderr : float
        The estimate to check (parallel tempering's or nested sampling's), in nats.
    references : list of (str, float, float)
        ``(name, log_z, stderr)`` of each unbiased estimate.
    method : {"pt", "nested"}
        The method whose estimate is checked (it names the fix).

    Returns
    -------
    names : list of str
        The references more than 3 combined stderrs above ``log_z``.
    problems : list of str
        One sentence (with a fix) per such reference.
    """
    what, how, more = _LOST_MASS[method]
    names, problems = [], []
    for name, ref, se in references:
        gap = ref - log_z
        if gap > 3.0 * math.hypot(se, stderr):
            names.append(name)
            problems.append(
                f"{what}'s log Z ({log_z:.3f} ± {stderr:.3f}) lies "
                f"{gap:.2f} nats below {name} estimate ({ref:.3f} ± {se:.3f}), beyond their "
                "combined error bars; that one estimates Z without bias, so its log rarely "
                f"reads high: {what} lost mass ({how}). Use more {more} for "
                f"method={method!r}, or a budget=.")
    return names, problems


#: For each method that :func:`lower_than_unbiased` checks: its name, how it
#: loses mass, and the options that buy it more.
_LOST_MASS = {"pt": ("parallel tempering", "a mode its chains did not visit enough",
                     "draws= and replicas="),
              "nested": ("nested sampling", "a region its live points left behind or "
                         "never reached", "particles= and num_inner_steps=")}


def unverified_problem(info, log_z, method=None):
    """A problem sentence when the mode check could not vouch for a funnel-like run.

    Parameters
    ----------
    info : dict
        :func:`mode_check`'s ``info`` (``status``, ``modes``, ``log_z``,
        ``depth``, ``depth_limit``, ``deepest``, ``energy_q01``).
    log_z : float
        The annealing estimate, in nats.
    method : str, optional
        The run's method; a nested-sampling record is not told to try
        ``method='nested'``.

    Returns
    -------
    str or None
        Set when either

        * the check ran (compared, or skipped because the mixture fits
          poorly) and the descents went more than ``info["depth_limit"]`` nats below
          the particles' weighted 1% energy quantile, beyond what a Gaussian
          basin allows (``info["depth"]``; the limit is ``UNVERIFIED_DEPTH``,
          or ``UNVERIFIED_DEPTH_SDS`` sds of a Gaussian's energy if larger):
          part of the target is far denser than anywhere the particles went,
          as in a funnel's neck, and nothing weighed the mass on the way
          there; or
        * the mixture fits poorly, it found at most ``UNVERIFIED_MAX_MODES`` modes and its own
          estimate lies more than ``UNVERIFIED_GAP`` nats below ``log_z``:
          the target holds most of its mass far from any Gaussian at its
          minima.

        There one step size cannot reach part of the target, every replicate
        lags alike, and the replicate check cannot see it; that is where the
        measured silent misses sat. ``None`` otherwise: a skip alone
        describes the target's shape (rings, bananas, heavy tails fit poorly
        when the run is sound), and a check that does not apply (discrete
        targets, a model's own path) is no evidence either way.
    """
    status = str(info.get("status", ""))
    poor = status.startswith("skipped: the mixture fits poorly")
    if not poor and status != "compared":
        return None
    depth = float(info.get("depth", -math.inf))
    gap = float(info.get("log_z", math.nan)) - float(log_z)
    if depth > float(info.get("depth_limit", UNVERIFIED_DEPTH)):
        # Also where the mixture compared: with more descents a funnel's neck
        # yields a second "mode" whose Gaussian is as blind to the neck as the
        # particles, so the two estimates agree on the same wrong value (held-out
        # funnel10, 2 of 10 default runs). Sound compared runs on TUNING sat at
        # most 8.2 nats deep against limits of 11.2 and more.
        why = (f"the descents from the particles reached energies {info['deepest']:.1f}, "
               f"{info['energy_q01'] - info['deepest']:.0f} nats below where 99% of the "
               "particles' weight lies (far beyond a Gaussian basin's spread), so part of the "
               "target is much denser than anywhere the particles went (a funnel's neck)")
        if not poor:
            why += (", and a Gaussian at that depth weighs the neck no better than the "
                    "particles, so its agreement does not vouch")
    elif poor and info.get("modes", 0) <= UNVERIFIED_MAX_MODES and gap < -UNVERIFIED_GAP:
        why = (f"its estimate lies {-gap:.1f} nats below the annealing's, so the target holds "
               "much of its mass far from its modes (a scale that changes across the support, "
               "as in a funnel's neck)")
    else:
        return None
    fit = "fits this target poorly" if poor else "agreed with the annealing"
    try_nested = "" if method == "nested" else (
        "try method='nested' (up to ~50 dimensions; on the zoo's TUNING funnel20 its median "
        "error was 0.18 nats against 0.64 for ais and 0.30 for pt, though nothing vouches for "
        "it either), or ")
    return ("unverified: the second estimate (importance sampling from a Gaussian at each "
            f"of {info['modes']} local minima) {fit} and {why}. "
            "There the annealing's particles lag in every replicate alike, which the replicates' "
            "agreement cannot show, and nothing else checked this log Z (such runs were 0.4-0.8 "
            f"nats low with stderrs near 0.05). To get a closer value, {try_nested}"
            "reparameterise the target so its scale no longer changes "
            "(non-centred: sample the standardised coordinates). More stages (cess=0.999 for "
            "ais, target_ess=0.9 for smc), budget= or base='pilot' buy precision but did not "
            "remove this lag on the zoo's funnels.")
