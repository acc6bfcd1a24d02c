"""Convergence and mixing through ArviZ: the one module that imports arviz.

Two ArviZ generations are supported and tested: 0.23 (``InferenceData``,
what pip resolves on Python 3.11) and 1.x (``arviz-base``/``-stats``/``-plots``
on an xarray ``DataTree``, Python >= 3.12). Every ArviZ call goes through one
small adapter (:class:`_ArviZ0` or :class:`_ArviZ1`, chosen once by ArviZ's
major version); the rest of the module, and of energymc, does not know which
one is installed.

Checks made by :func:`diagnose` (defaults in :class:`Thresholds`), each on
every variable and every chain:

- rank-normalised split R-hat <= 1.01 (needs >= 2 chains; undefined R-hat or
  ESS, e.g. for draws that never change, is a problem, not skipped);
- bulk and tail ESS >= 100 per chain;
- no non-finite draws; no divergent transitions (for kernels without a
  trajectory: proposals with a non-finite energy or gradient);
- E-BFMI >= 0.3 in every chain (HMC/NUTS, or any foreign ``InferenceData``
  whose ``sample_stats.energy`` follows ArviZ's Hamiltonian convention);
- mean acceptance >= 0.05 in every chain (one stuck chain is not hidden by
  the others' average);
- unadjusted Langevin: the Metropolis acceptance its moves would have had
  >= 0.8 in every chain (else the step is too large: discretisation bias),
  and the variance inflation along the stiffest direction estimated from the
  energy's curvature (the ``variance_inflation`` stat) <= 1.05 in every chain;
- parallel tempering: at least one round trip of a replica across the ladder.

Long runs: a posterior over 16 MB is judged a batch of coordinates at a time,
and past 100,000 draws per chain a segment of draws at a time, the segments'
ArviZ tables combined (:func:`_segmented_table` says how), so that memory
grows with neither the dimension nor the number of draws.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import html
from typing import Any

import numpy as np

__all__ = ["Diagnosis", "Thresholds", "arviz_major", "attributes", "diagnose", "from_arrays",
           "from_netcdf", "group", "logz_to_arviz", "plot_energy", "plot_figure", "plot_pair",
           "plot_rank", "plot_trace", "summary", "to_arviz", "to_netcdf"]

# Columns of Diagnosis.table, in both ArviZ generations.
_TABLE_COLUMNS = ["mean", "sd", "mcse_mean", "ess_bulk", "ess_tail", "r_hat"]
# Methods whose ``sample_stats.energy`` is a Hamiltonian (what E-BFMI needs).
# MCLMC records an energy *change* there, so E-BFMI would be meaningless for it.
_HAMILTONIAN_METHODS = ("nuts", "hmc")
_ENERGYMC_NON_HAMILTONIAN = ("mala", "barker", "rwm", "langevin", "mclmc", "pt", "gibbs", "gwg",
                             "dmala")


# ------------------------------------------------------------------ adapter
class _ArviZ0:
    """ArviZ 0.x: ``InferenceData``; ``az.from_dict(posterior=..., ...)``; axes from plots."""

    major = 0
    _plots = {"trace": "plot_trace", "rank": "plot_rank", "energy": "plot_energy",
              "pair": "plot_pair"}

    def __init__(self, az):
        self.az = az

    def make(self, groups: dict[str, dict[str, np.ndarray]], dims: dict, attrs: dict):
        """A data object with the given groups (``{"posterior": {name: array}}``) and attrs."""
        return self.az.from_dict(**groups, dims=dims or None, attrs=attrs)

    def is_data(self, obj) -> bool:
        return isinstance(obj, self.az.InferenceData)

    def group(self, data, name: str):
        """The group as an ``xarray.Dataset``, or ``None`` if absent."""
        return getattr(data, name) if name in data.groups() else None

    def attrs(self, data) -> dict:
        return dict(data.attrs)

    def assemble(self, groups: dict, attrs: dict):
        """A data object from ``{"posterior": xarray.Dataset, ...}`` as they are (lazy
        arrays stay lazy) and the run's attrs."""
        return self.az.InferenceData(attrs=dict(attrs), **groups)

    def summary(self, data, **kwargs):
        return self.az.summary(data, **kwargs)

    def round(self, table, round_to):
        """``table`` rounded as 0.x's ``summary(round_to=...)`` rounds its own."""
        if round_to in ("None", "none"):
            return table
        if round_to is not None:
            return table.round(round_to)
        return table.round({c: 0 if c in ("ess_bulk", "ess_tail") else 2 if c == "r_hat" else 3
                            for c in table.columns})

    def table(self, data):
        """Per-element mean, sd, MCSE, bulk/tail ESS, rank R-hat (unrounded DataFrame)."""
        return self.az.summary(data, kind="all", stat_focus="mean", round_to="none")

    def bfmi(self, data) -> np.ndarray:
        return np.atleast_1d(np.asarray(self.az.bfmi(data), dtype=float))

    def ess_mean(self, x: np.ndarray) -> float:
        """ESS for the mean of ``x`` ``(chains, draws)`` (0.x reads a 2-D array that way)."""
        return float(self.az.ess(x, method="mean"))

    def read(self, path: str):
        return self.az.from_netcdf(path)

    def write(self, data, path: str) -> None:
        data.to_netcdf(path)

    def plot(self, kind: str, data, **kwargs):
        return getattr(self.az, self._plots[kind])(data, **kwargs)

    def figure(self, plot):
        axes = np.ravel(np.asarray(plot, dtype=object))
        return axes[0].figure


class _ArviZ1(_ArviZ0):
    """ArviZ 1.x: xarray ``DataTree``; arviz-stats summary; arviz-plots ``PlotCollection``."""

    major = 1
    _plots = {"trace": "plot_trace_dist", "rank": "plot_rank", "energy": "plot_energy",
              "pair": "plot_pair"}

    def make(self, groups, dims, attrs):
        present = {k: v for k, v in groups.items() if v is not None}
        # 1.x reads per-group attrs from ``attrs=``; the run's own go on the root.
        tree = self.az.from_dict(present, dims=dims or None)
        tree.attrs.update(attrs)
        return tree

    def is_data(self, obj) -> bool:
        import xarray

        return isinstance(obj, xarray.DataTree)

    def assemble(self, groups, attrs):
        import xarray

        tree = xarray.DataTree.from_dict(dict(groups))
        tree.attrs.update(attrs)
        return tree

    def group(self, data, name):
        return data[name].to_dataset() if name in data.children else None

    def table(self, data):
        return self.az.summary(data, kind="all", round_to="none")

    def round(self, table, round_to):
        """``table`` rounded as 1.x's ``summary(round_to=...)`` rounds its own."""
        from arviz_base import rcParams
        from arviz_stats.base.stats_utils import round_num

        if round_to in ("None", "none"):
            return table
        precision = rcParams["stats.round_to"] if round_to is None else round_to
        return table.map(lambda v: round_num(v, precision))

    def bfmi(self, data) -> np.ndarray:
        return np.atleast_1d(np.asarray(self.az.bfmi(data)["energy"], dtype=float))

    def ess_mean(self, x):
        # arviz-stats' array layer; its default axes changed between releases, so say them.
        return float(self.az.ess(x, method="mean", chain_axis=0, draw_axis=1))

    def read(self, path):
        import xarray

        return xarray.open_datatree(path).load()

    def figure(self, plot):
        return plot.viz["figure"].item() if hasattr(plot, "viz") else super().figure(plot)


@functools.cache
def _adapter() -> _ArviZ0:
    import warnings

    with warnings.catch_warnings():
        # ArviZ 0.23 announces its 1.x refactor on import; not actionable here.
        warnings.simplefilter("ignore", FutureWarning)
        import arviz

    major = int(str(arviz.__version__).split(".")[0])
    return (_ArviZ1 if major >= 1 else _ArviZ0)(arviz)


def arviz_major() -> int:
    """Major version of the installed ArviZ (0 or 1)."""
    return _adapter().major


def ess_mean(x) -> float:
    """ArviZ's effective sample size of ``x`` ``(chains, draws)`` for estimating its mean.

    Split-chain autocorrelations with Geyer's initial monotone sequence
    (ArviZ's ``ess(method="mean")``): chains that disagree lower it. ``nan``
    where ArviZ finds it undefined (fewer than 4 draws, non-finite draws).
    Host code for energymc's own estimators (e.g. parallel tempering's rung
    weights), so they need not import ArviZ.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"ess_mean needs an array (chains, draws); got shape {x.shape}.")
    if x.shape[1] < 4 or not np.all(np.isfinite(x)):
        return float("nan")             # ArviZ would log a warning and give nan too
    return _adapter().ess_mean(x)


# -------------------------------------------------------------- conversions
def posterior_dict(run) -> dict[str, np.ndarray]:
    draws = run.draws
    if isinstance(draws, dict):
        return {str(k): np.asarray(v) for k, v in draws.items()}
    return _flatten_with_names(draws)


def _flatten_with_names(tree) -> dict[str, np.ndarray]:
    import jax

    paths = jax.tree_util.tree_flatten_with_path(tree)[0]
    if len(paths) == 1 and not paths[0][0]:
        return {"x": np.asarray(paths[0][1])}
    out = {}
    for path, leaf in paths:
        name = "_".join(str(getattr(p, "key", getattr(p, "idx", getattr(p, "name", p))))
                        for p in path)
        out[name or "x"] = np.asarray(leaf)
    return out


def to_arviz(run):
    """ArviZ data with ``posterior``, ``sample_stats`` and attributes.

    An ``arviz.InferenceData`` under ArviZ 0.x, an ``xarray.DataTree`` under
    1.x. ``posterior`` variables are shaped ``(chain, draw, *event)``;
    ``sample_stats.lp`` is the log-density ``-E`` (ArviZ's convention);
    ``attrs`` carry the method, seed, target name and energymc version.

    For a stored run (``sample(store=...)``) the arrays are lazy: xarray
    variables read from the run's files where indexed or loaded
    (:func:`energymc.store.to_arviz`), with the same names, dims and values.
    """
    from energymc._util import version

    if getattr(run, "stored", False):
        return _lazy_to_arviz(run)

    stats = {k: np.asarray(v) for k, v in run.stats.items()}
    attrs = {"method": run.method, "seed": str(run.seed), "target": str(run.target.name),
             "energymc_version": version(), "num_warmup": int(run.warmup_steps),
             "thin": int(run.thin), "inference_library": "energymc"}
    for k, v in run.options.items():
        if isinstance(v, (bool, int, float, str)):
            attrs[f"option_{k}"] = str(v)
    return _adapter().make({"posterior": posterior_dict(run), "sample_stats": stats}, {}, attrs)


def _as_data(obj):
    ad = _adapter()
    if ad.is_data(obj):
        return obj
    if hasattr(obj, "to_arviz"):
        return obj.to_arviz()
    kind = "xarray.DataTree" if ad.major >= 1 else "arviz.InferenceData"
    raise TypeError(f"expected an energymc Run or an {kind}; got {type(obj).__name__}. "
                    "Pass the Run itself, or run.to_arviz().")


def to_netcdf(obj, path: str) -> str:
    """Write a Run (through :func:`to_arviz`) or ArviZ data to a netCDF file; returns the path."""
    _adapter().write(_as_data(obj), path)
    return path


def from_netcdf(path: str):
    """Read a netCDF file written by :func:`to_netcdf` (either ArviZ generation's files)."""
    return _adapter().read(path)


def from_arrays(posterior: dict, sample_stats: dict | None = None, **attrs):
    """ArviZ data, in the installed ArviZ generation's own type, from dicts of arrays.

    For draws that energymc did not make: ``emc.diagnose(from_arrays({"x":
    draws}))`` judges another sampler's chains by the same rules as a
    :class:`energymc.Run`.

    Parameters
    ----------
    posterior
        ``{name: array}``, each ``(chains, draws, *shape)``.
    sample_stats
        Optional ``{name: array}``, each ``(chains, draws)``, under ArviZ's
        names (``acceptance_rate``, ``diverging``, ``energy``, ``lp``).
    **attrs
        Attributes of the run; ``method=`` tells :func:`diagnose` whether
        ``sample_stats.energy`` is a Hamiltonian (``"nuts"``, ``"hmc"``).

    Returns
    -------
    arviz.InferenceData or xarray.DataTree
        ``InferenceData`` with ArviZ 0.x, ``DataTree`` with ArviZ 1.x.
    """
    groups = {"posterior": {k: np.asarray(v) for k, v in posterior.items()}}
    if sample_stats is not None:
        groups["sample_stats"] = {k: np.asarray(v) for k, v in sample_stats.items()}
    return _adapter().make(groups, {}, attrs)


def group(data, name: str):
    """Group ``name`` (``"posterior"``, ``"sample_stats"``, ...) of ArviZ data as an
    ``xarray.Dataset``, or ``None`` when absent; the same call for both ArviZ
    generations (``InferenceData`` attribute, ``DataTree`` child)."""
    return _adapter().group(data, name)


def attributes(data) -> dict:
    """The run's attributes of ArviZ data (``method``, ``seed``, ``log_z``, ...) as a dict;
    the same call for both ArviZ generations."""
    return _adapter().attrs(data)


def _lazy_to_arviz(run):
    """ArviZ data of a stored run whose arrays stay on disk until used.

    The layout (variable names, dims, coords, attributes) is the one
    :func:`to_arviz` gives the run's first draw in memory; every array is then
    replaced by a lazy :class:`energymc.store.StoredArray` over all draws.
    Indexing a variable reads the chunks of the draws asked for; ``.values``,
    ``.load()`` or an ArviZ function applied to a variable loads that variable.
    """
    import warnings

    from energymc.store import ChunkReader, lazy_dataset

    reader = ChunkReader(run)
    with warnings.catch_warnings():
        # One draw of several chains is what the template is meant to be
        # (ArviZ 0.x and 1.x each warn about it in their own words).
        warnings.filterwarnings("ignore", "More chains", UserWarning)
        warnings.filterwarnings("ignore", "Found chain dimension to be longer", UserWarning)
        template = to_arviz(reader.head())
    groups = {g: lazy_dataset(group(template, g), reader, g)
              for g in ("posterior", "sample_stats")}
    return _adapter().assemble(groups, attributes(template))


def summary(obj, **kwargs):
    """ArviZ's ``summary`` (mean, sd, interval, MCSE, ESS, R-hat) of a Run or ArviZ data.

    ``kwargs`` go to the installed ArviZ's ``summary`` (0.x and 1.x differ,
    e.g. 1.x reports an equal-tailed ``eti89`` interval where 0.x gives ``hdi_3%``).

    A posterior of more than 16 MB (in float64) with more than 100,000 draws
    per chain is summarised by ArviZ a batch of coordinates and a segment of
    draws at a time, and the segments combined (:func:`_segmented_table`), so
    that memory does not grow with the number of draws; ``kwargs`` other than
    ``kind`` (``"all"``, ``"stats"``, ``"diagnostics"``), ``var_names`` (names,
    no ``~``), ``hdi_prob``, ``ci_prob``, ``ci_kind`` and ``round_to`` send it
    to ArviZ whole.
    """
    data = _as_data(obj)
    table = segmented_summary(data, kwargs)
    return _adapter().summary(data, **kwargs) if table is None else table


def judged_in_segments(n_draws: int) -> bool:
    """Whether a run of ``n_draws`` draws per chain is past the length (100,000)
    from which :func:`summary` and :func:`diagnose` use segments of its draws
    (when its posterior is also over 16 MB)."""
    return int(n_draws) > _SEGMENT_DRAWS


def segmented_summary(data, kwargs: dict):
    """ArviZ's summary of a long run by batches of coordinates and segments of draws.

    Parameters
    ----------
    data
        ArviZ data whose ``posterior`` variables are ``(chain, draw, *event)``
        (lazy arrays stay lazy until a segment of them is loaded).
    kwargs
        The arguments of :func:`summary`.

    Returns
    -------
    pandas.DataFrame or None
        One row per coordinate, ArviZ's columns, rounded as ArviZ rounds
        (``attrs``: ``segments``, ``thinned_ess``); ``None`` where ArviZ should
        see the data whole: at most 100,000 draws per chain, a posterior of at
        most 16 MB, or an argument the segments cannot honour.
    """
    import pandas as pd
    import xarray as xr

    ad = _adapter()
    post = group(data, "posterior")
    kwargs = dict(kwargs)
    names = kwargs.pop("var_names", None)
    names = [names] if isinstance(names, str) else names
    if (post is None or set(kwargs) - _SEGMENT_KWARGS
            or kwargs.get("kind", "all") not in ("all", "stats", "diagnostics")
            or kwargs.get("round_to") == "auto"
            or any(not isinstance(n, str) or n.startswith("~") for n in names or [])):
        return None
    post = post if names is None else post[list(names)]
    n_draws = int(post.sizes["draw"])
    if not judged_in_segments(n_draws) \
            or sum(_f64_bytes(v) for v in post.data_vars.values()) <= _BATCH_BYTES:
        return None
    round_to = kwargs.pop("round_to", None)
    segments = _segments(n_draws)

    def table_of(ds):
        return ad.summary(ad.assemble({"posterior": ds}, {}), round_to="none", **kwargs)

    tables = []
    try:
        for batch in _batches(post.isel(draw=segments[0])):
            part = xr.Dataset({k: post[k].isel(sel) for k, sel in batch.items()},
                              attrs=post.attrs)
            tables.append(_segmented_table(part, segments, table_of))
    except _CannotSegment:
        return None
    table = pd.concat(tables)
    thinned = [row for t in tables for row in t.attrs["thinned_ess"]]
    table = ad.round(table, round_to)
    table.attrs = {"segments": len(segments), "thinned_ess": thinned}
    return table


# ------------------------------------------------------------------ verdict
@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Limits :func:`diagnose` checks against (documented defaults)."""

    max_rhat: float = 1.01
    min_ess_per_chain: float = 100.0
    max_divergences: int = 0
    min_bfmi: float = 0.3
    min_acceptance: float = 0.05
    min_unadjusted_acceptance: float = 0.8
    max_variance_inflation: float = 1.05


def _fmt_more(n: int, what: str = "rows") -> str:
    return f"… and {n:,} more {what}"


@dataclasses.dataclass
class Diagnosis:
    """The verdict of :func:`diagnose`.

    Attributes
    ----------
    ok
        True when no problem was found, on any variable or chain.
    problems
        Plain-language sentences, each ending with a concrete fix.
    table
        ``pandas.DataFrame`` with one row per scalar element of every
        variable (all of them, worst first): mean, sd, mcse_mean, ess_bulk,
        ess_tail, r_hat.
    numbers
        Headline figures over all variables and chains: worst R-hat, smallest
        ESS (NaN if any is undefined), divergences, E-BFMI per chain,
        acceptance (mean and per chain), ...
    max_rows
        How many table rows the text and HTML renderings show (display only;
        every row was judged).
    """

    ok: bool
    problems: list[str]
    table: Any
    numbers: dict
    max_rows: int = 10

    def __bool__(self) -> bool:
        return self.ok

    def _lines(self) -> list[str]:
        n = self.numbers
        head = [f"max R-hat {n['max_rhat']:.3f}, min bulk ESS {n['min_ess_bulk']:.0f}, "
                f"min tail ESS {n['min_ess_tail']:.0f}, divergences {n['divergences']} "
                f"({n['chains']} chains x {n['draws']} draws, {len(self.table):,} variables)"]
        if n.get("bfmi") is not None:
            shown = n["bfmi"][:8]
            more = f", {_fmt_more(len(n['bfmi']) - 8, 'chains')}" if len(n["bfmi"]) > 8 else ""
            head.append("E-BFMI per chain: " + ", ".join(f"{b:.2f}" for b in shown) + more)
        if n.get("acceptance") is not None:
            per = n.get("acceptance_per_chain") or []
            worst = f" (lowest chain {min(per):.3f})" if len(per) > 1 else ""
            head.append(f"mean acceptance {n['acceptance']:.3f}{worst}")
        segments = self.table.attrs.get("segments", 1)
        if segments > 1:
            thinned = self.table.attrs.get("thinned_ess", [])
            head.append(f"judged in {segments} segments of about {n['draws'] // segments:,} "
                        f"draws per chain (R-hat on 1 draw in {segments})"
                        + (f"; ESS of {_names(thinned)} from the thinned draws (segments "
                           f"under {_SEGMENT_MIN_ESS_PER_CHAIN} ESS per chain)"
                           if thinned else ""))
        verdict = ["OK: no problems found."] if self.ok else [f"- {p}" for p in self.problems]
        return head + verdict

    def _shown(self):
        return self.table.head(self.max_rows), max(len(self.table) - self.max_rows, 0)

    def table_text(self) -> str:
        """The first ``max_rows`` rows of the table (worst first) as text, and how many more."""
        shown, more = self._shown()
        text = shown.to_string()
        return text + (f"\n{_fmt_more(more)}" if more else "")

    def __repr__(self) -> str:
        title = "Diagnosis: OK" if self.ok else f"Diagnosis: {len(self.problems)} problem(s)"
        return "\n".join([title, *("  " + line for line in self._lines())])

    def _repr_html_(self) -> str:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in self._lines())
        shown, more = self._shown()
        table = shown.to_html(float_format=lambda v: f"{v:.4g}")
        tail = f"<p>{html.escape(_fmt_more(more))}</p>" if more else ""
        return f"<b>{'OK' if self.ok else 'Problems found'}</b><ul>{items}</ul>{table}{tail}"


def _names(index, k: int = 3) -> str:
    names = [str(i) for i in index[:k]]
    extra = f" and {len(index) - k:,} more" if len(index) > k else ""
    return ", ".join(names) + extra


def _per_chain_mean(stats, name: str) -> np.ndarray | None:
    if stats is None or name not in stats:
        return None
    return np.asarray(stats[name].mean("draw"), dtype=float).ravel()


# Bytes of posterior draws (counted in float64, as ArviZ computes) diagnose() hands
# ArviZ at once when there are more: a stored run's lazy arrays are read a batch at
# a time (diagnose never holds them all).
_BATCH_BYTES = 16 * 2**20


def _f64_bytes(var) -> int:
    """Bytes of an xarray variable as ArviZ computes with it (float64); reads nothing."""
    return 8 * int(var.size)


def _batches(post) -> list[dict]:
    """``[{variable: isel}]``: the posterior cut into batches of about ``_BATCH_BYTES``.

    Whole variables are grouped while they fit; a larger one is cut along its
    first event dimension (ESS and R-hat need every draw of a coordinate, not
    every coordinate). Nothing is read: only shapes are used.
    """
    batches, batch, size = [], {}, 0
    for name, var in post.data_vars.items():
        event = var.dims[2:]
        if event and _f64_bytes(var) > _BATCH_BYTES:
            per = 8 * int(np.prod(var.shape[:2])) * int(np.prod(var.shape[3:]))
            step = max(1, _BATCH_BYTES // max(per, 1))
            pieces = [(name, {event[0]: slice(i, i + step)}) for i in range(0, var.shape[2], step)]
        else:
            pieces = [(name, {})]
        for piece_name, sel in pieces:
            nbytes = _f64_bytes(post[piece_name].isel(sel))
            if batch and (size + nbytes > _BATCH_BYTES or piece_name in batch):
                batches.append(batch)
                batch, size = {}, 0
            batch[piece_name] = sel
            size += nbytes
    return batches + ([batch] if batch else [])


# Draws per chain above which a posterior too large for one batch is judged a contiguous
# segment of draws at a time (:func:`_segmented_table`): ArviZ's ESS and R-hat of one
# coordinate need about ten float64 copies of its draws (~330 MB at 4 chains x 10^6).
_SEGMENT_DRAWS = 100_000
# Segments' ESS add up only when a segment is much longer than the autocorrelation
# time. A segment with fewer than this many bulk or tail ESS per chain (an
# autocorrelation time over 1/50 of the segment) is too short to be trusted to, and
# the row takes ArviZ's ESS and MCSE of the thinned draws instead.
_SEGMENT_MIN_ESS_PER_CHAIN = 50
# summary() arguments the segments can honour; any other goes to ArviZ whole.
_SEGMENT_KWARGS = frozenset({"kind", "hdi_prob", "ci_prob", "ci_kind", "round_to", "var_names"})


class _CannotSegment(Exception):
    """A column of ArviZ's table that segments cannot be combined into (it goes whole)."""


def _segments(n_draws: int) -> list[slice]:
    """Contiguous, near-equal slices of ``n_draws``, none longer than ``_SEGMENT_DRAWS``."""
    count = -(-n_draws // _SEGMENT_DRAWS)
    edges = [n_draws * i // count for i in range(count + 1)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _free_cycles() -> None:
    """Free the segment just judged before the next one is read.

    ArviZ 1.x judges an ``xarray.DataTree``, whose nodes point at their parent
    and children: the tree around each segment (and ArviZ's own trees over it)
    are reference cycles, which only Python's cycle collector frees. Left to
    its schedule, every segment judged stayed in memory until a full collection
    came: the peak RSS of ``summary()`` of a stored 5-d run grew by 105 MB from
    10^5 to 10^6 draws per chain, 8 MB with this (benchmarks/RESULTS.md). ArviZ
    0.x's ``InferenceData`` makes no cycles, so there the collection (~0.1 s a
    segment, ~1 s a ``diagnose()`` of 10^6 draws) is skipped.
    """
    if arviz_major() >= 1:
        gc.collect()


def _is_interval(column: str) -> bool:
    """An interval bound of ArviZ's table: ``hdi_3%`` (0.x), ``eti89_lb`` / ``hdi89_ub`` (1.x)."""
    return column.startswith(("hdi", "eti")) and (column.endswith(("%", "_lb", "_ub")))


def _segmented_table(part, segments: list[slice], table_of, on_part=None):
    """ArviZ's table of the coordinates in ``part``, from segments of their draws.

    Each segment of draws (every chain, draws ``segments[i]``) and the draws
    thinned to one in ``len(segments)`` (spanning the whole run, each chain
    about one segment long) are loaded in turn and handed to ``table_of``
    (ArviZ); each is dropped before the next, so the memory is one segment's.
    Every number is ArviZ's, combined as follows (``w_s``: segment ``s``'s share
    of the draws):

    - ``mean``: ``sum_s w_s mean_s``; ``sd``: the pooled sum of squares of the
      segments (exact, ``ddof=1`` as ArviZ);
    - interval bounds: ``sum_s w_s bound_s``, an average of the segments'
      quantile-type estimates (bias of order ``1 / segment length``);
    - ``ess_bulk``, ``ess_tail``: ``sum_s ess_s``, and ``mcse_mean``,
      ``mcse_sd``: ``sqrt(sum_s w_s^2 mcse_s^2)``. Both treat the segments as
      independent runs, which holds when a segment is much longer than the
      autocorrelation time. Where some segment has fewer than
      ``_SEGMENT_MIN_ESS_PER_CHAIN`` bulk or tail ESS per chain it does not
      hold, and the row takes the thinned draws' ESS and MCSE instead (close to
      the whole run's when the autocorrelation time is much longer than the
      thinning step, lower otherwise: never optimistic). A segment's tail ESS
      is the smaller of its two quantiles' ESS, so their sum is at most the
      whole run's minimum: conservative;
    - ``r_hat``: ArviZ's rank-normalised split R-hat of the thinned draws. It
      compares the chains, and each chain's halves, over the whole run, as the
      full R-hat does, on one draw in ``len(segments)``.

    Parameters
    ----------
    part
        ``xarray.Dataset`` of variables ``(chain, draw, *event)``, lazy or not.
    segments
        Slices of the ``draw`` axis covering it (:func:`_segments`).
    table_of
        ``Dataset -> pandas.DataFrame``: ArviZ's table of a loaded Dataset,
        unrounded.
    on_part
        Called with each loaded segment (e.g. to count non-finite draws).

    Returns
    -------
    pandas.DataFrame
        One row per coordinate, ArviZ's labels and columns; ``attrs["thinned_ess"]``
        lists the rows whose ESS and MCSE come from the thinned draws.
    """
    n_chains = int(part.sizes["chain"])
    tables, lengths = [], []
    for seg in segments:
        loaded = part.isel(draw=seg).load()
        if on_part is not None:
            on_part(loaded)
        tables.append(table_of(loaded))
        lengths.append(seg.stop - seg.start)
        del loaded                          # before the next segment is read
        _free_cycles()
    thinned = table_of(part.isel(draw=slice(0, None, len(segments))).load())
    _free_cycles()
    for t in tables:
        if not (t.index.equals(thinned.index) and t.columns.equals(thinned.columns)):
            raise _CannotSegment("ArviZ labelled the segments differently")

    def col(name):                          # (segments, rows)
        if name not in thinned.columns:
            raise _CannotSegment(name)
        return np.stack([t[name].to_numpy(dtype=float) for t in tables])

    w = (np.asarray(lengths, dtype=float) / sum(lengths))[:, None]         # (segments, 1)
    n = n_chains * np.asarray(lengths, dtype=float)[:, None]                # draws pooled
    trusted = None
    if "ess_bulk" in thinned.columns or "ess_tail" in thinned.columns:
        floor = _SEGMENT_MIN_ESS_PER_CHAIN * n_chains
        with np.errstate(invalid="ignore"):
            trusted = np.all((col("ess_bulk") >= floor) & (col("ess_tail") >= floor), axis=0)
    out = thinned.copy()
    for name in thinned.columns:
        values = col(name)
        if name == "mean":
            out[name] = np.sum(w * values, axis=0)
        elif name == "sd":
            means = col("mean")
            grand = np.sum(w * means, axis=0)
            squares = np.sum((n - 1) * values**2 + n * (means - grand) ** 2, axis=0)
            out[name] = np.sqrt(squares / (n.sum() - 1))
        elif _is_interval(name):
            out[name] = np.sum(w * values, axis=0)
        elif name in ("ess_bulk", "ess_tail"):
            out[name] = np.where(trusted, np.sum(values, axis=0), thinned[name].to_numpy(float))
        elif name in ("mcse_mean", "mcse_sd"):
            combined = np.sqrt(np.sum(w**2 * values**2, axis=0))
            out[name] = combined if trusted is None else np.where(
                trusted, combined, thinned[name].to_numpy(float))
        elif name != "r_hat":               # r_hat: the thinned draws' own
            raise _CannotSegment(name)
    out.attrs["thinned_ess"] = [] if trusted is None else list(out.index[~trusted])
    return out


def _table_and_nonfinite(ad, data, post):
    """ArviZ's per-coordinate table (``_TABLE_COLUMNS``) and ``{variable: non-finite count}``.

    Posteriors of at most ``_BATCH_BYTES`` go to ArviZ whole. Larger ones, e.g.
    the lazy arrays of a stored run, go a batch of coordinates at a time
    (:func:`_batches`): each batch is loaded, judged by ArviZ and dropped, and
    the tables joined, in ArviZ's row order and with its labels (the
    coordinates keep their values), so the numbers are ArviZ's own.
    """
    import pandas as pd
    import xarray as xr

    def count(ds, into):
        for name, v in ds.data_vars.items():
            if np.issubdtype(v.dtype, np.number):
                bad = int(np.count_nonzero(~np.isfinite(np.asarray(v, dtype=float))))
                into[name] = into.get(name, 0) + bad

    def table_of(ds):
        return ad.table(ad.assemble({"posterior": ds}, {}))[_TABLE_COLUMNS]

    nonfinite: dict[str, int] = {}
    if sum(_f64_bytes(v) for v in post.data_vars.values()) <= _BATCH_BYTES:
        count(post, nonfinite)
        table = ad.table(data)[_TABLE_COLUMNS]
        table.attrs["segments"] = 1
        return table, {k: v for k, v in nonfinite.items() if v}
    n_draws = int(post.sizes["draw"])
    segments = _segments(n_draws) if judged_in_segments(n_draws) else None
    tables, thinned = [], []
    # Batches are sized by one segment's draws: that is what is loaded at once.
    for batch in _batches(post if segments is None else post.isel(draw=segments[0])):
        part = xr.Dataset({k: post[k].isel(sel) for k, sel in batch.items()}, attrs=post.attrs)
        if segments is None:
            part = part.load()
            count(part, nonfinite)
            tables.append(table_of(part))
        else:
            tables.append(_segmented_table(part, segments, table_of,
                                           on_part=lambda ds: count(ds, nonfinite)))
            thinned += tables[-1].attrs["thinned_ess"]
    table = pd.concat(tables)
    table.attrs = {"segments": 1 if segments is None else len(segments), "thinned_ess": thinned}
    return table, {k: v for k, v in nonfinite.items() if v}


# Keys of Diagnosis.numbers, in the order they are shown.
_NUMBERS = ("max_rhat", "min_ess_bulk", "min_ess_tail", "divergences", "bfmi", "acceptance",
            "acceptance_per_chain", "mh_acceptance_per_chain", "variance_inflation_per_chain",
            "nonfinite_draws", "undefined",
            "chains", "draws", "round_trips")


def diagnose(obj, thresholds: Thresholds | None = None, max_rows: int | None = None) -> Diagnosis:
    """Judge whether chains can be trusted, on every variable and every chain.

    Parameters
    ----------
    obj
        An energymc ``Run``, or ArviZ data (``InferenceData`` / ``DataTree``)
        with a ``posterior`` group shaped ``(chain, draw, ...)``.
    thresholds
        Limits to check against; defaults in :class:`Thresholds`.
    max_rows
        How many rows of the table the text and HTML renderings show (worst
        first; default 10). It never changes the verdict: every variable is
        judged and ``.table`` holds all rows.

    A posterior over 16 MB with more than 100,000 draws per chain is judged
    from segments of its draws (:func:`_segmented_table`); ``.table.attrs``
    then holds ``segments`` (how many) and ``thinned_ess`` (rows whose ESS
    and MCSE come from the thinned draws), and the headline says so.

    Returns
    -------
    Diagnosis
        ``.ok``, ``.problems`` (sentences with a fix), ``.table`` and ``.numbers``.
    """
    ad = _adapter()
    th = thresholds or Thresholds()
    data = _as_data(obj)
    post = group(data, "posterior")
    if post is None:
        raise ValueError("this data has no posterior group to diagnose; pass a Run or the "
                         "result of run.to_arviz().")
    stats = group(data, "sample_stats")
    n_chains, n_draws = int(post.sizes["chain"]), int(post.sizes["draw"])

    table, nonfinite = _table_and_nonfinite(ad, data, post)
    table, cols = _worst_first(table, n_chains, th)
    problems, numbers = _table_problems(table, cols, nonfinite, n_chains, n_draws, th)
    for check in (_hamiltonian_problems, _acceptance_problems):
        more, found = check(ad, data, stats, n_draws, th)
        problems += more
        numbers.update(found)
    numbers.update(chains=n_chains, draws=n_draws)
    numbers = {k: numbers[k] for k in _NUMBERS}        # documented order, whichever check
    return Diagnosis(ok=not problems, problems=problems, table=table, numbers=numbers,
                     max_rows=10 if max_rows is None else max(int(max_rows), 0))


def _worst_first(table, n_chains: int, th: Thresholds):
    """``table`` sorted by how far each row is past its limits (NaN counts as worst).

    Returns the sorted table and its ``r_hat``, ``ess_bulk``, ``ess_tail``
    columns as float arrays ``(rows,)`` in the same order.
    """
    cols = {k: table[k].to_numpy(dtype=float) for k in ("r_hat", "ess_bulk", "ess_tail")}
    min_ess = th.min_ess_per_chain * n_chains
    with np.errstate(divide="ignore", invalid="ignore"):
        parts = [min_ess / cols["ess_bulk"], min_ess / cols["ess_tail"]]
        if n_chains > 1:
            parts.append((cols["r_hat"] - 1.0) / (th.max_rhat - 1.0))
        badness = np.nan_to_num(np.max(np.stack(parts), axis=0), nan=np.inf)
    order = np.argsort(-badness, kind="stable")
    return table.iloc[order], {k: v[order] for k, v in cols.items()}


def _table_problems(table, cols, nonfinite, n_chains: int, n_draws: int, th: Thresholds):
    """Problems read off the per-variable table: non-finite draws, undefined or high
    R-hat, low ESS, a single chain. Returns ``(problems, numbers)``."""
    rhat, ess_b, ess_t = cols["r_hat"], cols["ess_bulk"], cols["ess_tail"]
    min_ess = th.min_ess_per_chain * n_chains
    problems: list[str] = []
    if nonfinite:
        what = ", ".join(f"{k} ({v:,})" for k, v in list(nonfinite.items())[:5])
        problems.append(f"Draws are NaN or infinite in {what}: no estimate from them can be "
                        "trusted. Check the energy (and any transform) for overflow or NaN "
                        "regions, and start the chains where it is finite.")

    undefined = table.index[~np.isfinite(rhat if n_chains > 1 else ess_b)
                            | ~np.isfinite(ess_b) | ~np.isfinite(ess_t)]
    if len(undefined) and not nonfinite:
        problems.append(f"R-hat or ESS is undefined for {_names(undefined)}: their draws never "
                        "change (within each chain). The chains may not move at all; check "
                        "acceptance and the step size. A variable constant by design cannot be "
                        "diagnosed: leave it out of the draws.")
    if n_chains < 2:
        problems.append("Only one chain: R-hat cannot detect chains that disagree. "
                        "Run at least 4 chains (chains=4).")
    else:
        high = table.index[rhat > th.max_rhat]
        if len(high):
            problems.append(f"R-hat is {np.nanmax(rhat):.3f} for {_names(high)} (limit "
                            f"{th.max_rhat}; {len(high):,} of {len(table):,} above it): the "
                            "chains disagree, so they have not converged or a mode is missed. "
                            "Run longer warmup and more draws, or try method='pt' for "
                            "multimodal targets.")
    low = table.index[(ess_b < min_ess) | (ess_t < min_ess)]
    if len(low):
        problems.append(f"Effective sample size is low for {_names(low)} ({len(low):,} of "
                        f"{len(table):,}; bulk {np.nanmin(ess_b):.0f}, tail "
                        f"{np.nanmin(ess_t):.0f}; want {min_ess:.0f} = "
                        f"{th.min_ess_per_chain:.0f} per chain over {n_draws} draws): estimates "
                        "of means and quantiles are noisy. Draw more (draws=...), or use a "
                        "better-mixing method (nuts, dense_mass=True).")
    numbers = {"max_rhat": float(np.max(rhat)) if n_chains > 1 else float("nan"),
               "min_ess_bulk": float(np.min(ess_b)), "min_ess_tail": float(np.min(ess_t)),
               "nonfinite_draws": sum(nonfinite.values()), "undefined": len(undefined)}
    return problems, numbers


def _hamiltonian_problems(ad, data, stats, n_draws: int, th: Thresholds):
    """Divergent transitions and E-BFMI (the latter for Hamiltonian energies only).
    Returns ``(problems, {"divergences", "bfmi"})``."""
    problems: list[str] = []
    divergences = int(stats["diverging"].sum()) if stats is not None and "diverging" in stats \
        else 0
    if divergences > th.max_divergences:
        problems.append(f"{divergences} divergent transitions: the sampler met curvature its step "
                        "size cannot resolve (or NaN/inf energies), so draws may be biased. Raise "
                        "target_accept (e.g. 0.95) or reparametrise the energy (e.g. non-centred "
                        "funnels); make the energy finite everywhere it can be reached.")

    bfmi = None
    method = attributes(data).get("method")
    hamiltonian = method in _HAMILTONIAN_METHODS or (
        method is None and "inference_library" not in attributes(data))
    if stats is not None and "energy" in stats and hamiltonian and n_draws > 1:
        bfmi = [float(b) for b in ad.bfmi(data)]
        bad = [b for b in bfmi if not b >= th.min_bfmi]
        if bad:
            problems.append(f"E-BFMI is {min(bfmi):.2f} (limit {th.min_bfmi}) in {len(bad)} of "
                            f"{len(bfmi)} chains: momentum resampling explores the energy "
                            "poorly, typical of heavy tails or funnels. Reparametrise, or use "
                            "dense_mass=True.")
    return problems, {"divergences": divergences, "bfmi": bfmi}


def _acceptance_problems(ad, data, stats, n_draws: int, th: Thresholds):
    """Tempering round trips, per-chain acceptance and the unadjusted sampler's
    Metropolis acceptance. Returns ``(problems, numbers)``."""
    del ad, n_draws                       # same signature as the other checks
    problems: list[str] = []
    round_trips = (int(stats["round_trips"].sum())
                   if stats is not None and "round_trips" in stats else None)
    if round_trips == 0 and attributes(data).get("method") == "pt":
        problems.append("No replica travelled from the hottest rung to beta = 1 while "
                        "sampling (0 round trips): draws at beta = 1 never receive states "
                        "from the hot end, so modes found only there are missed. Use more "
                        "replicas (replicas=...), a smaller beta_min, or more draws.")

    acc_chain = _per_chain_mean(stats, "acceptance_rate")
    acceptance = float(np.mean(acc_chain)) if acc_chain is not None else None
    if acc_chain is not None and not np.min(acc_chain) >= th.min_acceptance:
        stuck = np.flatnonzero(~(acc_chain >= th.min_acceptance))
        problems.append(f"Mean acceptance is {np.min(acc_chain):.3f} in chain(s) "
                        f"{_names(stuck.tolist())} (overall {acceptance:.3f}): those chains "
                        "barely move. Check the energy for NaN/inf regions, give a longer "
                        "warmup, or a smaller step_size.")

    mh_chain = _per_chain_mean(stats, "mh_acceptance_rate")
    if mh_chain is None:  # ArviZ data written before the rename
        mh_chain = _per_chain_mean(stats, "mh_acceptance")
    if mh_chain is not None and not np.min(mh_chain) >= th.min_unadjusted_acceptance:
        problems.append(f"The unadjusted sampler's moves would have been accepted with mean "
                        f"probability {np.min(mh_chain):.2f} by a Metropolis test (limit "
                        f"{th.min_unadjusted_acceptance}): its step is large for the energy's "
                        "curvature, so the draws follow a biased law (e.g. too wide). Use a "
                        "smaller step_size, or the adjusted method='mala'.")
    inflation = _per_chain_mean(stats, "variance_inflation")
    problems += _inflation_problems(inflation, th)
    return problems, {"acceptance": acceptance, "round_trips": round_trips,
                      "acceptance_per_chain": None if acc_chain is None else acc_chain.tolist(),
                      "mh_acceptance_per_chain": None if mh_chain is None else mh_chain.tolist(),
                      "variance_inflation_per_chain":
                          None if inflation is None else inflation.tolist()}


def _inflation_problems(inflation, th: Thresholds) -> list[str]:
    """The unadjusted sampler's variance inflation (one value per chain) against its limit.

    A small bias in few dimensions leaves the would-be Metropolis acceptance
    high, so the acceptance check alone misses it; the curvature does not.
    """
    if inflation is None:
        return []
    problems = []
    unknown = np.flatnonzero(np.isnan(inflation))
    if unknown.size:
        problems.append(f"The unadjusted sampler's bias could not be estimated in chain(s) "
                        f"{_names(unknown.tolist())}: the energy's curvature is not finite "
                        "where they are (NaN or inf regions). Check the energy there, or use "
                        "the adjusted method='mala'.")
    over = np.flatnonzero(inflation > th.max_variance_inflation)
    if over.size:
        worst = float(np.max(inflation[over]))
        size = ("makes the chain unstable (step x curvature >= 2)" if np.isinf(worst) else
                f"inflates the variance along the target's stiffest direction by an estimated "
                f"{worst - 1.0:.0%}")
        problems.append(f"The unadjusted sampler's step {size} in chain(s) "
                        f"{_names(over.tolist())} (limit {th.max_variance_inflation - 1.0:.0%}, "
                        "from the energy's curvature): the draws follow a law wider than the "
                        "target. Use a smaller step_size, the tuned warmup (adapt=True caps "
                        "the step by max_bias, default 0.03), or the adjusted method='mala'.")
    return problems


# -------------------------------------------------------------------- plots
def _plot(kind: str, obj, **kwargs):
    return _adapter().plot(kind, _as_data(obj), **kwargs)


def plot_trace(obj, var_names=None, **kwargs):
    """Trace and marginal density per chain of a Run or ArviZ data.

    ArviZ 0.x ``plot_trace`` (returns a numpy array of matplotlib axes) or
    1.x ``plot_trace_dist`` (returns a ``PlotCollection``). Nothing is shown
    here: a notebook draws the figure once. :func:`plot_figure` gives the
    matplotlib figure of either.
    """
    return _plot("trace", obj, var_names=var_names, **kwargs)


def plot_rank(obj, var_names=None, **kwargs):
    """Rank plot (0.x: rank histograms, 1.x: fractional-rank ECDFs); axes or PlotCollection."""
    return _plot("rank", obj, var_names=var_names, **kwargs)


def plot_energy(obj, **kwargs):
    """Marginal and transition energy distributions with E-BFMI (HMC/NUTS runs).

    Raises ``ValueError`` for runs without a Hamiltonian ``sample_stats.energy``.
    """
    data = _as_data(obj)
    stats = group(data, "sample_stats")
    method = attributes(data).get("method")
    if stats is None or "energy" not in stats or method in _ENERGYMC_NON_HAMILTONIAN:
        raise ValueError(f"plot_energy needs the Hamiltonian energy of each draw, which only "
                         f"method='nuts' or 'hmc' records (this run: {method!r}). Use "
                         "plot_trace or plot_rank for other methods.")
    return _adapter().plot("energy", data, **kwargs)


def plot_pair(obj, var_names=None, **kwargs):
    """Pairwise scatter/density of the posterior variables; axes or PlotMatrix."""
    return _plot("pair", obj, var_names=var_names, **kwargs)


def plot_figure(plot):
    """The matplotlib ``Figure`` behind what a ``plot_*`` function returned (either ArviZ)."""
    return _adapter().figure(plot)


# ----------------------------------------------------------- log Z results
def logz_to_arviz(est):
    """ArviZ data for a :class:`energymc.LogZ`.

    ``posterior``: the final particles as one chain (``draw`` = particle);
    ``sample_stats.weight``: their normalised importance weights;
    ``constant_data``: the stage record on a ``stage`` dimension (``beta``,
    ``ess``, ``acceptance``, ...); ``attrs``: ``log_z``, ``stderr``, ``ess``,
    the method, bounds and reliability, so the estimate travels with the draws.
    """
    from energymc._util import version

    posterior = sample_stats = None
    if est.particles is not None:
        leaves = _flatten_with_names(est.draws)
        posterior = {k: np.asarray(v)[None] for k, v in leaves.items()}
        w = np.asarray(est.weights, dtype=float)
        with np.errstate(divide="ignore"):
            sample_stats = {"weight": w[None], "log_weight": np.log(w)[None]}
    stages = {k: np.asarray(v) for k, v in est.stages.items()}
    attrs = {"method": est.method, "log_z": est.log_z, "stderr": est.stderr, "ess": est.ess,
             "reliable": int(est.reliable), "problems": " | ".join(est.problems),
             "target": str(getattr(est.target, "name", "")),
             "energymc_version": version(), "inference_library": "energymc"}
    if est.lower is not None:
        attrs["log_z_lower"], attrs["log_z_upper"] = est.lower, est.upper
    if est.replicates is not None:
        attrs["log_z_replicates"] = np.asarray(est.replicates).tolist()
    groups = {"posterior": posterior, "sample_stats": sample_stats, "constant_data": stages}
    return _adapter().make(groups, {k: ["stage"] for k in stages}, attrs)
