"""Outskirts check: do AIS's final particles cover the target's outskirts?

AIS's final particles ``x_T`` (drawn from some ``q_T``) and weights ``W``
satisfy ``E[W | x_T] = Z pi(x_T) / q_T(x_T)``: at equilibrium (``q_T = pi``)
the weights do not depend on where a particle ended. When the moves lag the
annealing on a curved target (a banana's arms, a funnel's neck, a ring), the
particles under-cover the outskirts, the weights rise outward, and the mass
out there is carried by rare, large weights. A run that drew none of them
is low with a small stderr, and nothing in its own weights shows it: its
replicates agree, their ESS is healthy and the weights' tail even looks
lighter than in the runs that drew one (``benchmarks/RESULTS.md``, "Curved
targets: why the silent misses are invisible to the run itself").

So the check reads the *direction* of that dependence, which the misses and
the sound runs of such a target share: :func:`radius_trend` is the z-score
of the covariance of the weights with each particle's squared whitened
radius. Where it is positive (weights rising outward), ``log_partition``
runs an independent BDMC (forward AIS and a reverse run from its particles)
and widens the stderr so that three of them reach BDMC's 95% upper bound
(:func:`stderr_to_reach`); where BDMC withdraws its upper bound, the run is
flagged. Over-dispersed particles (a wide base the weights correct) give a
negative trend and cost nothing.

Tempered SMC's final particles were resampled and moved one stage before
the end, and its final weights are only the last stage's increment
``pi_1 / pi_{beta_{T-1}}``: a function of where a particle is, so they cannot
show the particles' lag. Their trend reads something else that marks the same
targets: whether the target's mass rises outward relative to the annealing
path's last-but-one distribution, i.e. whether the outskirts are reached only
by moves. It was positive in every TUNING run of a banana, a funnel, a ring
and a 2-d mixture (all of SMC's silent misses there) and strongly negative on
Gaussians, Student-t targets and double wells (``benchmarks/RESULTS.md``,
"Outskirts check for SMC"), so SMC takes the same rule and threshold.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["radius_trend", "stderr_to_reach", "OUTSKIRTS_TREND", "OUTSKIRTS_DIR",
           "CHECKED_METHODS"]

#: A trend above this runs the BDMC bound. 0 (any rise of the weights outward)
#: rather than a significance level: the TUNING misses read +1.2 to +2.4, and
#: at equilibrium the trend is about N(0, 1), so a higher threshold would pass
#: a miss in a few runs while a lower one only costs the BDMC run (chosen on
#: TUNING; benchmarks/RESULTS.md, "Outskirts check").
OUTSKIRTS_TREND = 0.0

#: How many stderrs from ``log_z`` the BDMC upper bound must lie within.
REACH = 3.0

#: A checkpoint's subdirectory holding the BDMC run of a checked call.
OUTSKIRTS_DIR = "outskirts"


def radius_trend(particles, weights, replicates: int = 1) -> float:
    """z-score of ``cov(W, r^2)``: whether the weights rise with the whitened radius.

    Parameters
    ----------
    particles
        ``(n, dim)`` final particles, the replicates' blocks in order.
    weights
        ``(n,)`` their non-negative weights (any scale per replicate).
    replicates
        How many equal blocks ``particles`` holds; each block's weights are
        scaled to mean 1 so that the replicates' different ``Z`` estimates
        add no spurious trend. ``1`` when ``n`` is not a multiple.

    Returns
    -------
    float
        ``mean(d) / (sd(d) / sqrt(n))`` with ``d = (W - mean W)(r^2 - mean r^2)``
        and ``r^2`` the squared distance from the particles' mean in units of
        their per-coordinate sd; ``nan`` when undefined (fewer than 3
        particles, no finite positive weight).
    """
    x = np.asarray(particles, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    n = w.size
    if n < 3 or x.ndim != 2 or not np.all(np.isfinite(w)) or not np.any(w > 0):
        return math.nan
    r = replicates if replicates >= 1 and n % replicates == 0 else 1
    blocks = w.reshape(r, -1)
    means = blocks.mean(axis=1, keepdims=True)
    if np.any(means <= 0):
        return math.nan
    w = (blocks / means).ravel()
    centred = x - x.mean(axis=0)
    sd2 = centred.var(axis=0)
    r2 = np.sum(centred**2 / np.where(sd2 > 0, sd2, 1.0), axis=1)
    d = (w - w.mean()) * (r2 - r2.mean())
    sd = d.std(ddof=1)
    if not np.isfinite(sd) or sd == 0:
        return math.nan
    return float(d.mean() / (sd / math.sqrt(n)))


def stderr_to_reach(log_z: float, stderr: float, upper: float) -> float:
    """The stderr widened so that ``REACH`` of them span from ``log_z`` to ``upper``.

    ``upper`` is a 95% upper bound of log Z from an independent run; the
    truth lies below it, and above ``log_z - REACH * stderr`` as far as the
    run's own noise goes, so a stderr of ``|upper - log_z| / REACH`` keeps
    the truth within ``REACH`` of them on both sides. ``+inf`` when
    ``upper`` is not finite (no bound: the caller flags the run).
    """
    if not math.isfinite(upper):
        return math.inf
    return max(float(stderr), abs(float(upper) - float(log_z)) / REACH)


#: ``fold_in`` index of the BDMC run's key (the first run uses 0..R-1 and
#: 10**6..10**6 + 3; the Student-t rerun 10**6 + 4, the PT fallback 10**6 + 5).
_OUTSKIRTS_KEY = 10**6 + 6


#: The methods whose final weights the check reads (see the module's docstring).
CHECKED_METHODS = ("ais", "smc")


def needs_bound(est) -> bool:
    """Whether a run gets the BDMC bound: an unflagged AIS/SMC run whose weights rise outward."""
    if est.method not in CHECKED_METHODS or est.problems or est.particles is None \
            or est.weights is None:
        return False
    replicates = 1 if est.replicates is None else len(est.replicates)
    trend = radius_trend(est.particles, est.weights, replicates)
    est.info.setdefault("checks", {})["outskirts"] = {
        "trend": trend, "threshold": OUTSKIRTS_TREND,
        "status": "weights rise outward: bounded by BDMC" if trend > OUTSKIRTS_TREND
        else "weights do not rise outward"}
    return bool(trend > OUTSKIRTS_TREND)


def bound_by_bdmc(call, est, ref, key, ckpt, first_s: float, run_after):
    """Widen ``est.stderr`` to reach an independent BDMC run's 95% upper bound.

    ``call`` is ``log_partition``'s ``_Call`` for the AIS or SMC run ``est``; BDMC
    runs with the same options, base ``ref``, replicates and devices on
    ``fold_in(key, _OUTSKIRTS_KEY)``, without checks of its own (``est``
    passed them), in the subdirectory ``outskirts`` of ``ckpt``, through
    ``run_after`` (``log_partition``'s runner of a run after a first one, which
    gives it what the first left of ``budget=``). A withdrawn (infinite) upper
    bound flags ``est``. The BDMC run's cost is added to
    ``est.num_grad_evals`` and ``est.timing["outskirts_s"]``; what it found
    goes to ``est.info["checks"]["outskirts"]``. Returns ``est``.
    """
    import dataclasses

    import jax

    from energymc.logz import _method
    from energymc.logz._api import METHODS

    m = _method.get("bdmc", METHODS)
    options = {k: v for k, v in call.options.items() if k in m.option_names()}
    ctx = dataclasses.replace(m.validate(options, call.target), mesh=call.ctx.mesh,
                              ticks=call.ctx.ticks)
    sub_call = dataclasses.replace(call, m=m, method="bdmc", options=options, ctx=ctx,
                                   checks=False)
    bdmc, seconds = run_after(sub_call, est.num_grad_evals, ref,
                              jax.random.fold_in(key, _OUTSKIRTS_KEY), ckpt, first_s,
                              OUTSKIRTS_DIR, ", BDMC bound: the weights rise outward")
    upper = math.inf if bdmc.upper is None else float(bdmc.upper)
    before = est.stderr
    est.stderr = stderr_to_reach(est.log_z, est.stderr, upper)
    est.info["checks"]["outskirts"].update({
        "upper": upper, "bdmc_lower": bdmc.lower, "bdmc_log_z": bdmc.log_z,
        "stderr_before": before, "num_grad_evals": int(bdmc.num_grad_evals),
        "seconds": seconds})
    est.num_grad_evals += int(bdmc.num_grad_evals)
    est.timing["outskirts_s"] = seconds
    est.timing["total_s"] = est.timing.get("total_s", 0.0) + seconds
    if not math.isfinite(est.stderr):
        est.stderr = before
        est.problems.append(
            "the final particles may under-cover the target's outskirts (their weights rise "
            f"outward: trend z {est.info['checks']['outskirts']['trend']:+.1f}), where a run "
            "can miss mass without its stderr showing it, and a BDMC run could not "
            "bound log Z from above (its upper bound was withdrawn: "
            + "; ".join(bdmc.problems or ["its ends crossed"]) + "). The estimate may be low "
            "by more than its stderr. Use method='bdmc' with exact samples=, or compare "
            "method='pt' and method='nested'.")
    return est
