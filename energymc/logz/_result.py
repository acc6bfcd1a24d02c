"""`LogZ`: the result of :func:`energymc.log_partition`. Host-side; nothing here runs under jit."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from energymc._display import html_table, text_block

__all__ = ["LogZ"]


def _fmt(x, digits=4):
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


#: Renamed ``stages`` columns, old -> new: fractions of accepted proposals are
#: ``*_rate`` (ArviZ's ``acceptance_rate``, the vocabulary of ``docs/architecture.md``).
RENAMED_COLUMNS = {"acceptance": "acceptance_rate",
                   "swap_acceptance": "swap_acceptance_rate",
                   "reverse_acceptance": "reverse_acceptance_rate"}


def _with_rate_columns(stages: dict) -> dict:
    """``stages`` with each acceptance column under its ``*_rate`` name, in its
    place, and the same array again under its old name at the end: the old key
    stays readable for one release (plain dict and frame access cannot warn on
    a key). A record written with the old names (before the rename) is renamed."""
    stages = {(RENAMED_COLUMNS[k] if k in RENAMED_COLUMNS and RENAMED_COLUMNS[k] not in stages
               else k): v for k, v in stages.items()}
    for old, new in RENAMED_COLUMNS.items():
        if new in stages:
            stages.setdefault(old, stages[new])
    return stages


class LogZ:
    """An estimate of ``log Z = log ∫ exp(-E(x)) dx`` with its error bar and diagnostics.

    Attributes
    ----------
    method
        ``"ais"``, ``"smc"``, ``"bdmc"``, ``"nested"`` or ``"pt"``.
    log_z
        The estimate, in nats (a float). For ``bdmc`` the midpoint of the
        bounds; with ``replicates > 1`` the log of the mean of the replicate
        estimates of ``Z``.
    stderr
        Standard error of ``log_z`` in nats: from the weights (delta method,
        ``sqrt(1/ESS - 1/n)``) for ``ais``; for ``bdmc`` the largest of half
        the raw ends' gap, their noise, and the reported bracket's larger
        distance from ``log_z`` over ``info["bound_z"]``
        (``info["bracket_stderr"]``: ``log_z ± bound_z * stderr`` covers
        ``[lower, upper]``); summed per-step variances for
        ``smc`` (approximate); batch means for ``pt``; the spread of BlackJAX's
        simulated volumes for ``nested``; from the spread of the replicates
        when ``replicates > 1``.
    lower, upper
        ``bdmc`` only (else ``None``): confidence bounds on log Z, each
        one-sided at 97.5%, so that ``lower <= log Z <= upper`` with
        probability about 95% (``info["bound_level"]``). They are the raw
        ends, forward AIS ``info["lower_raw"]`` (``E[lower_raw] <= log Z``)
        and reverse AIS ``info["upper_raw"]`` (``E[upper_raw] >= log Z``
        from exact draws), each moved outward by ``info["bound_z"]`` (1.96)
        times its stderr (``info["lower_stderr"]``,
        ``info["upper_margin_stderr"]``). With the default reverse start
        (the forward particles, ``info["exact_samples"]`` false) they are
        only as good as the forward run: a mode it missed is missed by both.
        So where the run's own checks say the forward particles miss or
        mis-weight a mode (or the ends cross, or the mode check cannot vouch
        for them), ``upper`` is ``+inf``: the known interval is
        ``[lower, +inf)``, ``info["upper_void"]`` says why and a problem
        names the fix (exact ``samples=``, or more particles). The raw ends
        stay in ``info``.
    ess
        Kish effective sample size of the final weights (a float).
    num_particles
        Particles per replicate.
    stages
        Per-stage record, a dict of ``(num_stages,)`` NumPy arrays: ``beta``
        (inverse temperature), ``ess`` (of the weights after that stage),
        ``acceptance_rate`` (mean over particles), ``step_size``; for ``pt``
        one row per rung of the ladder (with ``swap_acceptance_rate``); for
        ``bdmc`` also ``reverse_ess`` and ``reverse_acceptance_rate``.
        ``acceptance``, ``swap_acceptance`` and ``reverse_acceptance`` are the
        same arrays under their deprecated names, kept for one release; they
        go in the next.
    particles
        ``(n, dim)`` flat final particles (unravel with ``target.unravel``).
    weights
        ``(n,)`` normalised importance weights of ``particles``; together they
        are weighted draws from ``exp(-E)``.
    replicates
        ``(R,)`` log Z of each replicate (``None`` for one replicate).
    spread
        Standard deviation of ``replicates`` (``None`` for one replicate).
    reliable
        ``False`` when a diagnostic or a check says the estimate should not
        be trusted; ``problems`` then says why and what to do, and the
        record's text and HTML views show only what is known (``bdmc``
        bounds that bracket, "at least" ``lower`` when the upper bound was
        withdrawn, or "no reliable interval"), never ``log_z ± stderr``.
    problems
        Plain-language sentences, each with a suggested fix.
    num_grad_evals
        Gradient (or energy, for discrete kernels) evaluations, all particles.
    timing
        Wall-clock seconds (compilation included).
    info
        Method-specific extras (schedule, options, raw records).
    """

    def __init__(self, *, method: str, target, log_z: float, stderr: float, ess: float,
                 num_particles: int, stages: dict, particles, weights, lower=None,
                 upper=None, replicates=None, problems=(), num_grad_evals: int = 0,
                 timing=None, info=None):
        self.method = method
        self.target = target
        self.log_z = float(log_z)
        self.stderr = float(stderr)
        self.ess = float(ess)
        self.num_particles = int(num_particles)
        self.stages = _with_rate_columns({k: np.asarray(v) for k, v in stages.items()})
        self.particles = None if particles is None else np.asarray(particles)
        self.weights = None if weights is None else np.asarray(weights)
        self.lower = None if lower is None else float(lower)
        self.upper = None if upper is None else float(upper)
        self.replicates = None if replicates is None else np.asarray(replicates, dtype=float)
        self.problems = list(problems)
        self.num_grad_evals = int(num_grad_evals)
        self.timing = dict(timing or {})
        self.info = dict(info or {})

    # ----------------------------------------------------------------- derived
    @property
    def reliable(self) -> bool:
        return not self.problems

    @property
    def spread(self) -> float | None:
        if self.replicates is None or len(self.replicates) < 2:
            return None
        return float(np.std(self.replicates, ddof=1))

    @property
    def num_stages(self) -> int:
        return int(len(self.stages.get("beta", ())))

    @property
    def draws(self) -> Any:
        """Final particles unravelled to the target's pytree, leaves ``(n, *shape)``."""
        import jax

        return jax.tree.map(np.asarray, self.target.unravel(self.particles))

    def resample(self, n: int | None = None, seed: int = 0) -> np.ndarray:
        """``(n, dim)`` flat draws resampled from the weighted particles (multinomial)."""
        rng = np.random.default_rng(seed)
        n = n or len(self.weights)
        idx = rng.choice(len(self.weights), size=n, p=self.weights / self.weights.sum())
        return self.particles[idx]

    def interval(self, z: float | None = None) -> tuple[float, float]:
        """An interval for log Z: ``log_z ± z * stderr`` (``z`` 1.96 when ``None``).

        For ``bdmc``: ``(lower, upper)`` when ``z`` is ``None``; with ``z``,
        the raw ends moved ``z`` of their stderrs outward (``z=0``: the raw
        ends themselves). An upper bound withdrawn by the checks
        (``info["upper_void"]``) stays ``+inf`` at every ``z``.
        """
        if self.lower is not None and self.upper is not None:
            if z is None or "lower_raw" not in self.info:
                return self.lower, self.upper
            from energymc.logz._bounds import bracket

            return bracket(self.info, z)
        z = 1.96 if z is None else z
        return self.log_z - z * self.stderr, self.log_z + z * self.stderr

    # ------------------------------------------------------------ ArviZ, plot
    def to_arviz(self):
        """ArviZ data: an ``arviz.InferenceData`` (ArviZ 0.x) or an ``xarray.DataTree``
        (ArviZ 1.x) holding the weighted particles, stage record and log Z.

        Groups: ``posterior`` (the final particles as one chain, with
        ``sample_stats.weight``), ``constant_data`` (the stage record on a
        ``stage`` dimension), and ``attrs`` (``log_z``, ``stderr``, method,
        bounds).
        """
        from energymc.diagnostics import logz_to_arviz

        return logz_to_arviz(self)

    def plot(self, ax=None):
        """The schedule and the per-stage weight ESS and acceptance (matplotlib).

        Delegates to :func:`energymc.plots.plot_logz`.

        Parameters
        ----------
        ax
            Two matplotlib axes, or ``None`` to make a new figure.

        Returns
        -------
        numpy.ndarray
            The two axes (never a Figure, so a notebook draws it once).
        """
        from energymc.plots import plot_logz

        return plot_logz(self, axes=ax)

    @property
    def estimate_text(self) -> str:
        """What is known about log Z in words: ``"x ± se"`` only when the record is reliable."""
        return self._estimate_row()

    # ---------------------------------------------------------------- tables
    def stages_frame(self):
        """The per-stage record as a ``pandas.DataFrame``, one row per stage.

        Columns are the keys of :attr:`stages` (``beta``, ``ess``,
        ``acceptance_rate``, ``step_size``, ..., and the deprecated names
        ``acceptance``, ... last; for ``pt`` one row per rung);
        the index is named ``stage``.
        """
        import pandas as pd

        n = max((len(v) for v in self.stages.values()), default=0)
        cols = {k: v for k, v in self.stages.items() if np.ndim(v) == 1 and len(v) == n}
        frame = pd.DataFrame(cols)
        frame.index.name = "stage"
        return frame

    # ------------------------------------------------------------------ repr
    #: Problems shown in a repr; the rest are counted ("... and 3 more").
    MAX_PROBLEM_ROWS = 4

    def _estimate_row(self) -> str:
        """What is known about log Z, never more precise than the run supports."""
        if self.reliable:
            return f"{_fmt(self.log_z)} ± {_fmt(self.stderr)} (stderr, nats)"
        if (self.lower is not None and self.upper is not None and math.isfinite(self.lower)
                and self.upper == math.inf):
            return (f"at least {self.lower:.2f} ({self._lower_kind}; no upper bound is known: "
                    "see problems)")
        if (self.lower is not None and self.upper is not None and self._trusted_bounds
                and math.isfinite(self.lower) and math.isfinite(self.upper)
                and self.lower <= self.upper):
            return (f"between {self.lower:.2f} and {self.upper:.2f} ({self._bounds_kind}; "
                    "flagged, no finer estimate is reliable)")
        # A midpoint ± stderr here would read as precise: show the raw number
        # at two decimals, labelled as untrusted.
        raw = "n/a" if not math.isfinite(self.log_z) else f"{self.log_z:.2f}"
        return f"no reliable interval (raw estimate {raw}, not to be trusted: see problems)"

    @property
    def _exact_bounds(self) -> bool:
        """Whether BDMC's reverse run started from exact draws (``samples=``)."""
        return bool(self.info.get("exact_samples", True))

    @property
    def _trusted_bounds(self) -> bool:
        """Whether a finite ``lower``/``upper`` may be shown as bounds: from
        exact draws, or from approximate ones that the upper-bound rule read
        (``info["crossed"]``, recorded since it exists) and kept. A bracket
        from approximate draws that no rule read is no bound: on funnels it
        sat tight around a value 0.5 nats off."""
        return self._exact_bounds or "crossed" in self.info

    @property
    def _lower_kind(self) -> str:
        """``"97.5% lower confidence bound"`` (one end of a 95% bracket), or ``"lower bound"``."""
        level = self.info.get("bound_level")
        return ("lower bound" if level is None
                else f"{0.5 * (1.0 + level):.1%} lower confidence bound")

    @property
    def _bounds_kind(self) -> str:
        """``"95% confidence bounds"``, or ``"bounds"`` for a record without a level."""
        level = self.info.get("bound_level")
        return "bounds" if level is None else f"{level:.0%} confidence bounds"

    def _rows(self) -> list[tuple[str, str]]:
        rows = [("target", repr(getattr(self.target, "name", "?"))),
                ("method", self.method),
                ("log Z", self._estimate_row())]
        if self.lower is not None:
            raw = ("" if "lower_raw" not in self.info else
                   f"; raw ends {_fmt(self.info['lower_raw'])}, {_fmt(self.info['upper_raw'])}")
            if self.upper == math.inf:
                why = self.info.get("upper_void")
                rows.append(("bounds", f"[{_fmt(self.lower)}, +inf) (no upper bound"
                                       + (f": {why}" if why else "") + f"{raw})"))
            else:
                ok = self.upper is not None and self.lower <= self.upper
                rows.append(("bounds", f"[{_fmt(self.lower)}, {_fmt(self.upper)}] "
                                       + (f"({self._bounds_kind}{raw})" if ok
                                          else f"(INVERTED: not a bracket{raw})")
                                       + ("" if self._exact_bounds else
                                          "; approximate: the reverse run started from "
                                          "approximate target draws, so not guaranteed bounds"
                                          + ("; kept: no check found a mode they miss"
                                             if "crossed" in self.info else ""))))
        if self.replicates is not None and len(self.replicates) > 1:
            rows.append(("replicates", f"{len(self.replicates)}, spread (sd) {self.spread:.4f}"))
        rows.append(("particles", f"{self.num_particles}, final weight ESS {self.ess:.1f}"))
        if self.num_stages:
            rows.append(("stages", str(self.num_stages)))
        if self.num_grad_evals:
            rows.append(("gradient evals", f"{self.num_grad_evals:,}"))
        if self.timing:
            rows.append(("time", f"{self.timing.get('total_s', 0.0):.2f}s"))
        rows.append(("reliable", "yes" if self.reliable else "NO"))
        shown = self.problems[:self.MAX_PROBLEM_ROWS]
        for p in shown:
            rows.append(("problem", p))
        if len(self.problems) > len(shown):
            rows.append(("problem", f"... and {len(self.problems) - len(shown)} more "
                                    "(all in .problems)"))
        return rows

    def __repr__(self) -> str:
        return text_block("LogZ", self._rows())

    def _repr_html_(self) -> str:
        return html_table("energymc LogZ", self._rows())
