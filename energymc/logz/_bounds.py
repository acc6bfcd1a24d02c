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
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
from jax.scipy.special import logsumexp

from energymc.logz._checks import replicate_check

__all__ = ["LEVEL", "bdmc_bounds", "bracket", "z_of"]

#: Default two-sided level of the reported BDMC bracket (each end a one-sided
#: bound at ``(1 + LEVEL) / 2``; ``log_partition(method="bdmc", level=...)``).
#: Chosen on the zoo's TUNING multimodal targets (benchmarks/RESULTS.md).
LEVEL = 0.95


def z_of(level: float) -> float:
    """Standard errors each raw end is moved outward: 1.96 for ``level = 0.95``."""
    return NormalDist().inv_cdf(0.5 * (1.0 + level))


def bracket(info: dict, z: float) -> tuple[float, float]:
    """``(lower, upper)`` from the raw ends and margins in ``info``, ``z`` stderrs out."""
    return (info["lower_raw"] - z * info["lower_stderr"],
            info["upper_raw"] + z * info["upper_margin_stderr"])


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
        ``lower_stderr`` from approximate draws), ``bound_level``, ``bound_z``.
    problem : str or None
        Set when the reported bounds cross (``lower > upper``): the two ends
        disagree beyond their noise, so the reverse run's draws were not
        target draws.
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
    problem = None
    if not lower <= upper:  # also NaN
        problem = (
            f"the {level:.0%} confidence bounds cross (lower {lower:.3f} > upper {upper:.3f}; "
            f"raw ends {lower_raw:.3f} and {upper_raw:.3f}): the reverse run's draws are not "
            "target draws (they missed or mis-weighted mass). Pass exact samples=, or use "
            "more particles= and a higher cess= so that the forward run, whose final particles "
            "start the reverse one, finds every mode.")
    return lower, upper, info, problem
