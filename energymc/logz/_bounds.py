"""BDMC's reported bracket: confidence bounds from the replicates' raw ends. Host-side.

Each BDMC replicate gives two *raw ends*: the forward AIS estimate
``log Ẑ`` (``E[log Ẑ] <= log Z``) and the reverse one (``E >= log Z``
from exact draws). They bound ``log Z`` only in expectation: the forward
end is a log-mean of unbiased ``Z`` estimates, which lies *above* ``log Z``
about half the time when its spread is small, so a bracket made of the raw
ends held the truth in 3 of 27 held-out runs (benchmarks/RESULTS.md). The
reported ``lower``/``upper`` are therefore one-sided confidence bounds:
each raw end moved outward by ``z`` of its standard error, so that each
misses with probability about ``(1 - level) / 2`` and the bracket holds
the truth with probability about ``level`` (0.95 by default; more where the ends are biased
outward, as they are by Jensen's inequality).

The standard errors: the forward end's from the replicates (the larger of
their spread and their own weight-based stderrs, over ``sqrt(R)``: a mode
that some replicates weigh differently shows in the spread). The reverse
end's likewise from exact draws. From approximate draws (the default: the
forward run's own final particles) the reverse end inherits the forward
run's error (it retraces where the forward particles went), so its margin
is the sum of the two ends' stderrs, which bounds the sd of their sum under
any correlation.

An upper end from approximate draws is a bound only if the draws hold every
mode in its share. :func:`void_upper` reads the run's own checks for signs
that they do not (the mode check's modes the annealing under-weighted or
never reached, ends that cross, a check that could not vouch for the run)
and then withdraws the upper bound: the known interval is ``[lower, +inf)``.
The rule was chosen on the zoo's TUNING multimodal targets, where every
bracket that missed the truth carried the mode check's under-weighting
problem (benchmarks/RESULTS.md, "BDMC: no upper bound where the draws miss a
mode"). The lower end is kept: forward AIS is a stochastic lower bound
whatever its kernel reached, and no TUNING lower bound missed.

The record's midpoint is no more certain than the bracket:
:func:`bracket_stderr` is a floor under its stderr, so that ``log_z ± z
stderr`` covers ``[lower, upper]``. Where both ends share the forward run's
bias (a curved target whose arms the particles lag), the replicates' spread
and the weights see none of it, and without the floor the midpoint was a
silent miss (benchmarks/RESULTS.md, "BDMC's midpoint as uncertain as its
bracket").
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
from jax.scipy.special import logsumexp

from energymc.logz._checks import replicate_check

__all__ = ["LEVEL", "bdmc_bounds", "bracket", "bracket_stderr", "ends_cross", "upper_reasons",
           "void_upper", "z_of"]

#: Default two-sided level of the reported BDMC bracket (each end a one-sided
#: bound at ``(1 + LEVEL) / 2``; ``log_partition(method="bdmc", level=...)``).
#: Chosen on the zoo's TUNING multimodal targets (benchmarks/RESULTS.md).
LEVEL = 0.95


def z_of(level: float) -> float:
    """Standard errors each raw end is moved outward: 1.96 for ``level = 0.95``."""
    return NormalDist().inv_cdf(0.5 * (1.0 + level))


def bracket(info: dict, z: float) -> tuple[float, float]:
    """``(lower, upper)`` from the raw ends and margins in ``info``, ``z`` stderrs out.

    ``upper`` is ``+inf`` at any ``z`` when :func:`void_upper` withdrew the
    upper bound (``info["upper_void"]`` set): no margin makes that end a bound.
    """
    upper = (math.inf if info.get("upper_void") else
             info["upper_raw"] + z * info["upper_margin_stderr"])
    return info["lower_raw"] - z * info["lower_stderr"], upper


def bracket_stderr(log_z: float, lower: float, upper: float, z: float) -> float:
    """The stderr that the reported bracket implies for the midpoint ``log_z``:
    its larger distance to a finite bound, over ``z`` (0 where none is finite).

    BDMC's midpoint is only as certain as its bracket: where both raw ends share
    a bias (the reverse run started from the forward particles and retraces
    them), the replicates' spread and the weights see none of it and the
    midpoint's stderr was 4x too small on a curved target (banana10: -0.098 ±
    0.025 with the bracket [-0.138, -0.005] about the truth). With this floor
    ``log_z ± z * stderr`` covers ``[lower, upper]``, so a midpoint 3 stderrs
    from the truth means a bracket that missed it by half its width again.
    """
    far = [d for d in (log_z - lower, upper - log_z) if math.isfinite(d)]
    return max(max(far, default=0.0), 0.0) / z


def ends_cross(lows, ups, lower_stderrs, upper_stderrs) -> bool:
    """Whether any replicate's reverse end lies below its forward end beyond
    3 combined stderrs (``(R,)`` arrays): its reverse draws were not target draws."""
    return bool(np.any(np.asarray(ups, dtype=float) < np.asarray(lows, dtype=float)
                       - 3.0 * np.hypot(lower_stderrs, upper_stderrs)))


def upper_reasons(*, crossed: bool, mode_info: dict | None, mode_problem: str | None,
                  log_z: float, unverified: bool) -> list[str]:
    """The evidence, from the run's own checks, that the reverse run's start
    draws do not hold every mode in its share (empty: none).

    Parameters
    ----------
    crossed
        The reported bounds cross, or one replicate's raw ends cross beyond
        their noise (:func:`ends_cross`).
    mode_info, mode_problem
        :func:`energymc.logz._checks.mode_check`'s ``info`` and problem
        (``None`` for either when the check did not run).
    log_z
        The estimate the mode check was compared with (nats).
    unverified
        :func:`energymc.logz._checks.unverified_problem` fired: the particles
        lag part of the target in every replicate alike (a funnel's neck).

    Returns
    -------
    list of str
        Clauses for the problem sentence, one per kind of evidence.
    """
    reasons = []
    info = mode_info or {}
    if mode_problem and float(info.get("log_z", -math.inf)) > log_z:
        # Only the "too low" verdict: a mixture estimate *above* the annealing
        # means the particles hold too little of some mode's mass.
        reasons.append(f"the mode check's estimate is {info['log_z'] - log_z:.2f} nats above "
                       "the annealing's, so the forward particles under-weight a mode")
    unreached = int(info.get("unreached", 0) or 0)
    if unreached:
        reasons.append(f"{unreached} mode(s) found by the mode check hold importance mass but "
                       "almost no forward particle")
    if crossed:
        reasons.append("the forward and reverse ends cross beyond their noise")
    if unverified:
        reasons.append("the mode check could not vouch for the particles (they lag part of "
                       "the target in every replicate alike)")
    return reasons


def void_upper(lower: float, reasons: list[str], info: dict,
               start: str = "the forward run's particles") -> tuple[float, str]:
    """Withdraw the upper bound: ``(+inf, problem sentence)``; records the
    reasons in ``info["upper_void"]`` (the raw ends stay in ``info``).
    ``start`` names the reverse run's approximate draws in the sentence."""
    info["upper_void"] = "; ".join(reasons)
    one_sided = 0.5 * (1.0 + info["bound_level"])
    return math.inf, (
        f"no upper bound: the reverse run started from {start}, which do not hold every "
        f"mode in its share ({info['upper_void']}), so its end is no upper bound on log Z; "
        f"the known interval is [{lower:.3f}, +inf) (a {one_sided:.1%} lower confidence "
        "bound). Fix: pass exact draws with samples=, or more particles= and a higher cess= "
        "so that the forward run finds and weighs every mode.")


def bdmc_bounds(lows, ups, lower_stderrs, upper_stderrs, exact: bool, level: float = LEVEL):
    """Pool ``R`` replicates' raw ends into a confidence bracket.

    Parameters
    ----------
    lows, ups
        ``(R,)`` raw forward and reverse ends of each replicate (nats).
    lower_stderrs, upper_stderrs
        ``(R,)`` their weight-based stderrs.
    exact
        Whether every replicate's reverse run started from exact target draws.
    level
        Two-sided level of the bracket, in ``(0, 1)``.

    Returns
    -------
    lower, upper : float
        The reported bounds (``z_of(level)`` stderrs out from the raw ends).
    info : dict
        ``lower_raw``, ``upper_raw`` (pooled raw ends: log-mean of the
        replicates' ``Z``, resp. ``1/Z``, estimates), ``lower_stderr``,
        ``upper_stderr`` (their stderrs), ``upper_margin_stderr`` (the
        stderr the upper end is moved by: ``upper_stderr``, plus
        ``lower_stderr`` from approximate draws), ``bound_level``, ``bound_z``,
        ``crossed`` (the bounds cross, or one replicate's raw ends cross
        beyond their noise).
    problem : str or None
        Set when the reported bounds cross (``lower > upper``) and the
        reverse run started from exact ``samples=``: the two ends disagree
        beyond their noise, so those draws were not target draws. From
        approximate draws a crossing is one of :func:`upper_reasons`
        (``info["crossed"]``), and the upper bound is withdrawn instead.
    """
    lows = np.asarray(lows, dtype=float)
    ups = np.asarray(ups, dtype=float)
    R = lows.size
    # Still the ends' stochastic bounds: log of a mean of unbiased Z (resp. 1/Z) estimates.
    lower_raw = float(logsumexp(lows) - math.log(R))
    upper_raw = float(-(logsumexp(-ups) - math.log(R)))
    se_lower = replicate_check(lows, lower_stderrs)[0]
    se_upper = replicate_check(ups, upper_stderrs)[0]
    margin = se_upper if exact else se_upper + se_lower
    z = z_of(level)
    info = {"lower_raw": lower_raw, "upper_raw": upper_raw, "lower_stderr": se_lower,
            "upper_stderr": se_upper, "upper_margin_stderr": margin, "bound_level": level,
            "bound_z": z}
    lower, upper = bracket(info, z)
    info["crossed"] = bool(not lower <= upper  # also NaN
                           or ends_cross(lows, ups, lower_stderrs, upper_stderrs))
    problem = None
    if exact and not lower <= upper:
        problem = (
            f"the {level:.0%} confidence bounds cross (lower {lower:.3f} > upper {upper:.3f}; "
            f"raw ends {lower_raw:.3f} and {upper_raw:.3f}): the reverse run's draws are not "
            "target draws (they missed or mis-weighted mass). Pass exact samples=, or use "
            "more particles= and a higher cess= so that the forward run, whose final particles "
            "start the reverse one, finds every mode.")
    return lower, upper, info, problem
