"""Out-of-distribution detection with an energy: scores, AUROC and AUPR.

An energy trained on data gives three scores, each larger for an input that
looks less like the data:

``"energy"``
    ``E(x)`` itself: low-density points have high energy.
``"grad_norm"``
    ``|grad_x E(x)|``. Grathwohl et al. (2020, JEM, section 5.2) call
    ``-|grad_x log p(x)|`` the *approximate-mass* score: a point in a wide
    region of high probability has a small gradient, a point on a thin ridge
    or far out on a slope a large one, whatever its density.
``"mass"``
    ``-log E_eps[exp(-E(x + sigma eps))]`` with ``eps ~ N(0, I)``: the energy
    of the data density smoothed by a Gaussian of width ``sigma``, i.e. minus
    the log of the probability *mass* of a soft ball around ``x`` (up to a
    constant), estimated with ``num_samples`` draws. It is the direct version
    of what the gradient norm approximates to first order, and ignores sharp
    spikes of density that contain no mass.

Detection quality is the AUROC (the probability that an outlier scores
higher than an inlier; 0.5 is chance) with its standard error (Hanley &
McNeil 1982), and the AUPR (average precision, outliers as positives; chance
is the outliers' share). :func:`shift` makes the standard out-of-distribution
sets from held-out data: uniform noise, pixel-shuffled and inverted images.

Scores are computed under jit in batches; AUROC/AUPR are host code.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from energymc.errors import EnergyError, OptionError

__all__ = ["METHODS", "OODReport", "aupr", "auroc", "auroc_stderr", "evaluate", "scores",
           "shift"]

#: The score names :func:`scores` knows.
METHODS = ("energy", "grad_norm", "mass")


def _check_energy(energy, x) -> None:
    if not callable(energy):
        raise OptionError("energy must be a callable energy(x) -> scalar for ONE point x, e.g. "
                          "lambda x: learner.energy(result.params, x).")
    try:
        out = jax.eval_shape(energy, jax.ShapeDtypeStruct(x.shape[1:], x.dtype))
    except Exception as exc:
        raise EnergyError(f"calling energy on one point of shape {x.shape[1:]} raised "
                          f"{type(exc).__name__}: {exc}") from exc
    if getattr(out, "shape", None) != ():
        raise EnergyError(f"energy(x) must return a scalar for ONE point x of shape "
                          f"{x.shape[1:]}; it returned {getattr(out, 'shape', type(out))}. "
                          "energymc vmaps over the batch itself.")


def _check_points(name, x) -> jax.Array:
    arr = np.asarray(x)
    if arr.ndim < 2 or arr.shape[0] < 1 or not np.issubdtype(arr.dtype, np.number):
        raise OptionError(f"{name} must be a numeric array (n, *event) with n >= 1; got shape "
                          f"{arr.shape}, dtype {arr.dtype}.")
    return jnp.asarray(arr, dtype=jnp.result_type(float))


def scores(energy: Callable, x, methods: Sequence[str] = METHODS, *, sigma: float = 0.1,
           num_samples: int = 16, seed: int = 0, batch_size: int = 256) -> dict:
    """Out-of-distribution scores of ``x``; higher means less like the training data.

    Parameters
    ----------
    energy
        ``energy(x) -> scalar`` for ONE point, e.g. ``lambda x:
        learner.energy(result.params, x)`` or an Equinox energy module.
    x
        ``(n, *event)`` points to score.
    methods
        Names from :data:`METHODS` (module notes).
    sigma, num_samples
        The ``"mass"`` score's smoothing width (in the data's units) and
        Monte Carlo draws per point.
    seed
        Seed of the ``"mass"`` score's noise (same seed, same scores).
    batch_size
        Points per compiled batch (memory, not results).

    Returns
    -------
    dict
        ``method -> (n,)`` NumPy array. A non-finite energy gives a score of
        ``+inf`` (the point is as unlike the data as can be) and is counted
        in ``"num_nonfinite"`` (a dict ``method -> int``).
    """
    x = _check_points("x", x)
    methods = tuple(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise OptionError(f"unknown score method(s) {unknown}; choose from {list(METHODS)}.")
    if not (np.isfinite(sigma) and sigma > 0):
        raise OptionError(f"sigma must be a finite number > 0; got {sigma!r}.")
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) \
            or num_samples < 1:
        raise OptionError(f"num_samples must be a positive integer; got {num_samples!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise OptionError(f"batch_size must be a positive integer; got {batch_size!r}.")
    _check_energy(energy, x)
    out = {m: [] for m in methods}
    key = jax.random.key(seed)
    try:
        fn = _score_fn(energy, methods, float(sigma), int(num_samples))
    except TypeError:  # an unhashable energy (e.g. an Equinox module): no caching
        fn = _score_fn.__wrapped__(energy, methods, float(sigma), int(num_samples))
    n = x.shape[0]
    size = min(int(batch_size), n)
    for start in range(0, n, size):
        chunk = x[start:start + size]
        real = chunk.shape[0]
        if real < size:
            # Padded to the batch size, so that every chunk reuses one compiled program.
            chunk = jnp.concatenate([chunk, jnp.broadcast_to(chunk[:1], (size - real,
                                                                         *chunk.shape[1:]))])
        # A key per point, from its index: the scores do not depend on batch_size.
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(start, start + size))
        res = fn(chunk, keys)
        for m in methods:
            out[m].append(np.asarray(res[m])[:real])
    result, bad = {}, {}
    for m in methods:
        s = np.concatenate(out[m]).astype(np.float64)
        nonfinite = ~np.isfinite(s)
        bad[m] = int(nonfinite.sum())
        result[m] = np.where(nonfinite, np.inf, s)
    result["num_nonfinite"] = bad
    return result


@functools.lru_cache(maxsize=16)
def _score_fn(energy, methods, sigma, num_samples):
    """The compiled, batched scorer; cached so that repeated calls (one per
    out-of-distribution set in :func:`evaluate`) compile once."""
    def one(x, key):
        res = {}
        if "energy" in methods or "grad_norm" in methods:
            e, g = jax.value_and_grad(energy)(x)
            res["energy"] = e
            res["grad_norm"] = jnp.sqrt(jnp.sum(g * g))
        if "mass" in methods:
            eps = jax.random.normal(key, (num_samples, *x.shape), x.dtype)
            e_near = jax.vmap(energy)(x + sigma * eps)
            res["mass"] = -(jax.nn.logsumexp(-e_near) - jnp.log(num_samples))
        return {m: res[m] for m in methods}

    return jax.jit(jax.vmap(one))


def _clean(name, s) -> np.ndarray:
    arr = np.asarray(s, dtype=np.float64).ravel()
    if arr.size < 1:
        raise OptionError(f"{name} is empty.")
    if np.isnan(arr).any():
        raise OptionError(f"{name} holds NaN; scores() maps a non-finite energy to +inf, so "
                          "these come from elsewhere: drop them or score them +inf.")
    return arr


def auroc(scores_in, scores_out) -> float:
    """Area under the ROC curve for telling ``scores_out`` (outliers) from ``scores_in``.

    The probability that a random outlier scores higher than a random inlier,
    ties counting one half (the Mann-Whitney statistic). ``1`` separates
    perfectly, ``0.5`` is chance, below ``0.5`` the score points the wrong way.
    """
    from scipy.stats import rankdata

    a, b = _clean("scores_in", scores_in), _clean("scores_out", scores_out)
    ranks = rankdata(np.concatenate([a, b]))
    n_in, n_out = len(a), len(b)
    return float((ranks[n_in:].sum() - n_out * (n_out + 1) / 2) / (n_in * n_out))


def auroc_stderr(auc: float, n_in: int, n_out: int) -> float:
    """Standard error of an AUROC from ``n_in`` inliers and ``n_out`` outliers.

    Hanley & McNeil's (1982) formula, which treats the scores as independent
    draws: ``sqrt((A(1-A) + (n_out-1)(Q1-A^2) + (n_in-1)(Q2-A^2)) / (n_in n_out))``
    with ``Q1 = A/(2-A)``, ``Q2 = 2A^2/(1+A)``.
    """
    a = float(auc)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n_out - 1) * (q1 - a * a) + (n_in - 1) * (q2 - a * a)) / (n_in * n_out)
    return float(np.sqrt(max(var, 0.0)))


def aupr(scores_in, scores_out) -> float:
    """Average precision with the outliers as positives (area under the precision-recall curve).

    ``sum_k (R_k - R_{k-1}) P_k`` over thresholds at each distinct score,
    from the highest down (tied scores enter together). Chance level is the
    outliers' share ``n_out / (n_in + n_out)``.
    """
    a, b = _clean("scores_in", scores_in), _clean("scores_out", scores_out)
    s = np.concatenate([a, b])
    pos = np.concatenate([np.zeros(len(a)), np.ones(len(b))])
    order = np.argsort(-s, kind="mergesort")
    s, pos = s[order], pos[order]
    tp, fp = np.cumsum(pos), np.cumsum(1 - pos)
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # last index of each tie group
    tp, fp = tp[last], fp[last]
    recall = tp / len(b)
    precision = tp / (tp + fp)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def shift(x, kind: str, seed: int = 0, *, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """An out-of-distribution version of ``x`` ``(n, *event)``.

    Parameters
    ----------
    x
        In-distribution points (e.g. held-out images scaled to ``[low, high]``).
    kind
        ``"uniform"``: independent uniform noise on ``[low, high]`` in every
        value (same shape as ``x``); ``"shuffle"``: each point's values
        randomly permuted (same pixel histogram, no spatial structure);
        ``"invert"``: ``low + high - x`` (a photographic negative).
    seed
        Seed of the noise and permutations.
    low, high
        The range of the data's values.

    Returns
    -------
    np.ndarray
        Shaped like ``x``.
    """
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim < 2:
        raise OptionError(f"x must be (n, *event); got shape {arr.shape}.")
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        out = rng.uniform(low, high, size=arr.shape)
    elif kind == "shuffle":
        flat = arr.reshape(len(arr), -1)
        out = np.take_along_axis(flat, rng.permuted(
            np.broadcast_to(np.arange(flat.shape[1]), flat.shape), axis=1), 1).reshape(arr.shape)
    elif kind == "invert":
        out = low + high - arr
    else:
        raise OptionError(f"kind must be 'uniform', 'shuffle' or 'invert'; got {kind!r}.")
    return out.astype(np.asarray(x).dtype if np.issubdtype(np.asarray(x).dtype, np.floating)
                      else np.float32)


@dataclass
class OODReport:
    """What :func:`evaluate` returns: one row per (out-of-distribution set, score).

    Attributes
    ----------
    rows
        List of dicts with ``set``, ``method``, ``auroc``, ``auroc_se``,
        ``aupr``, ``aupr_chance``, ``n_in``, ``n_out`` and ``nonfinite`` (how
        many inputs had a non-finite energy).
    """

    rows: list = field(default_factory=list)

    def frame(self):
        """The rows as a ``pandas.DataFrame``."""
        import pandas as pd

        return pd.DataFrame(self.rows)

    def auroc(self, set_name: str, method: str) -> float:
        """The AUROC of one row."""
        for r in self.rows:
            if r["set"] == set_name and r["method"] == method:
                return r["auroc"]
        raise KeyError(f"no row for set {set_name!r}, method {method!r}.")

    def to_markdown(self) -> str:
        """A Markdown table: one row per set, AUROC (± s.e.) / AUPR per score."""
        methods = list(dict.fromkeys(r["method"] for r in self.rows))
        sets = list(dict.fromkeys(r["set"] for r in self.rows))
        lines = ["| set | " + " | ".join(f"{m} AUROC | {m} AUPR" for m in methods) + " |",
                 "|---|" + "---:|---:|" * len(methods)]
        for s in sets:
            cells = []
            for m in methods:
                r = next(r for r in self.rows if r["set"] == s and r["method"] == m)
                cells.append(f"{r['auroc']:.3f} ± {r['auroc_se']:.3f} | {r['aupr']:.3f}")
            lines.append(f"| {s} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_markdown()


def evaluate(energy: Callable, x_in, outs: dict, methods: Sequence[str] = METHODS,
             **score_options) -> OODReport:
    """AUROC (with standard error) and AUPR of each score for in- versus out-of-distribution sets.

    Parameters
    ----------
    energy
        ``energy(x) -> scalar`` for ONE point.
    x_in
        ``(n, *event)`` held-out in-distribution points.
    outs
        ``name -> (m, *event)`` out-of-distribution sets, e.g. ``{"noise":
        shift(x_in, "uniform"), "digits 5-9": x_unseen}``.
    methods
        Score names (:data:`METHODS`).
    **score_options
        Passed to :func:`scores` (``sigma``, ``num_samples``, ``seed``).

    Returns
    -------
    OODReport
    """
    if not isinstance(outs, dict) or not outs:
        raise OptionError("outs must be a non-empty dict name -> (m, *event) array.")
    s_in = scores(energy, x_in, methods, **score_options)
    report = OODReport()
    for name, x_out in outs.items():
        s_out = scores(energy, x_out, methods, **score_options)
        for m in methods:
            a = auroc(s_in[m], s_out[m])
            n_in, n_out = len(s_in[m]), len(s_out[m])
            report.rows.append({
                "set": name, "method": m, "auroc": a, "auroc_se": auroc_stderr(a, n_in, n_out),
                "aupr": aupr(s_in[m], s_out[m]), "aupr_chance": n_out / (n_in + n_out),
                "n_in": n_in, "n_out": n_out,
                "nonfinite": s_in["num_nonfinite"][m] + s_out["num_nonfinite"][m]})
    return report
