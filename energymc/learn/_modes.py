"""The mode-weight check: does a learned energy give its modes the data's shares?

Score matching (DSM, SSM) fits the score ``-grad E``, which says nothing about
how probability is shared between regions that the data do not connect: on
well-separated modes it learns each mode's shape and leaves their weights
free (Hyvarinen 2005; Wenliang et al. 2019). Short CD-k chains, started at
the data, see a little further but not across a wide gap. Such a model looks
right to its own loss and is confidently wrong about where its mass is.

The check (host code around compiled pieces of :mod:`energymc.logz._checks`):

1. gradient descents of the learned energy from (up to ``POINTS``, evenly
   spaced) training points, in units of the data's sds;
2. their ends merged into distinct local minima, each with its Laplace
   Gaussian and Laplace mass ``exp(-E(m)) |H|^(-1/2)``
   (:func:`energymc.logz._checks.laplace_modes`); each training point
   belongs to the minimum its descent ended at;
3. a minimum is *judged* when at least ``max(MIN_POINTS, dim + 2)`` points
   reached it and their covariance agrees with its Laplace covariance (every
   whitened eigenvalue within ``SHAPE_RATIO`` of 1): the mode is then
   Gaussian-like where the data are, so its Laplace mass is close to the
   model's mass there. A ring's or a banana's minima (a flat valley along
   the data) are not judged: the check says nothing about them;
4. among the judged minima (two or more), the model's shares ``p`` (Laplace
   masses, renormalised) against the data's ``f`` (points, renormalised):
   ``KL(f || p) = sum f log(f / p)``, the nats per point that the weights
   alone cost. Flagged above ``max(KL_FLOOR, the 99th percentile of the
   same statistic for counts drawn from p)``: a gross error that sampling
   noise in the data's shares cannot explain.

Measured on the learner zoo's TUNING tasks (``benchmarks/RESULTS.md``,
"Mode weights of learned energies").
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

__all__ = ["mode_weight_check", "mode_weight_problem", "POINTS", "MAX_DIM", "MIN_POINTS",
           "SHAPE_RATIO", "KL_FLOOR", "MAX_MODES"]

#: Training points the descents start from (evenly spaced over the data).
POINTS = 1024
#: Data of more dimensions are not checked (a dense Hessian per mode).
MAX_DIM = 64
#: Fewest points at a minimum for it to be judged (and at least dim + 2).
MIN_POINTS = 10
#: A judged minimum's data covariance, whitened by its Laplace covariance, has
#: every eigenvalue within this factor of 1.
SHAPE_RATIO = 4.0
#: The smallest mode-weight KL (nats per point) that is flagged.
KL_FLOOR = 0.1
#: Distinct minima kept (lowest energy first).
MAX_MODES = 16
#: Adam steps of each descent.
DESCENT_STEPS = 400
#: Draws of the null distribution of the KL statistic.
NULL_DRAWS = 2000


def _skip(reason: str) -> dict:
    return {"ran": False, "reason": reason, "flag": False}


def _descend_to_modes(energy_fn, params, x):
    """Descents from ``x`` ``(m, d)``: ``(ends, locs, chols, log_mass)`` of distinct minima."""
    import energymc as emc
    from energymc.logz._checks import descend, laplace_modes

    target = emc.Energy.from_params(energy_fn, params, init=jnp.asarray(x[0]))
    sd = np.maximum(x.std(0), 1e-6 * (np.abs(x).max() + 1.0))
    ends, e_ends, _ = descend(jnp.asarray(x / sd), jnp.asarray(sd, x.dtype), jnp.asarray(x[:1]),
                              target=target, steps=DESCENT_STEPS)
    ends, e_ends = np.asarray(ends, float), np.asarray(e_ends, float)
    locs, chols, log_mass = laplace_modes(target, ends, e_ends, sd, MAX_MODES, x.dtype)
    return ends, locs, chols, log_mass


def _assign(ends, locs, chols, widen):
    """Index of the minimum each descent ended at (-1: none within 2 widened sds)."""
    from scipy.linalg import solve_triangular

    from energymc.logz._checks import SAME_MODE_SDS

    if not locs:
        return np.full(len(ends), -1)
    dist2 = np.stack([np.sum(solve_triangular(c, (ends - m).T, lower=True) ** 2, axis=0)
                      for m, c in zip(locs, chols, strict=True)], axis=1)
    nearest = np.argmin(dist2, axis=1)
    # The rule laplace_modes merges ends by: the end belongs to that minimum.
    inside = dist2[np.arange(len(ends)), nearest] < SAME_MODE_SDS**2 * widen
    return np.where(inside, nearest, -1)


def _shape_ratio(points, chol, widen) -> float:
    """Largest factor (either way) between the points' covariance and the Laplace one."""
    from scipy.linalg import solve_triangular

    white = solve_triangular(chol / math.sqrt(widen), (points - points.mean(0)).T, lower=True)
    ev = np.linalg.eigvalsh(np.atleast_2d(np.cov(white)))
    if not np.all(np.isfinite(ev)) or ev.min() <= 0:
        return math.inf
    return float(max(ev.max(), 1.0 / ev.min()))


def _kl(f, p):
    f = np.asarray(f, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(f > 0, f * np.log(f / p), 0.0)
    return terms.sum(axis=-1)


def mode_weight_check(energy_fn, params, data, seed: int = 0) -> dict:
    """The learned energy's mode shares against the data's (host code).

    Parameters
    ----------
    energy_fn
        ``energy_fn(params, x) -> scalar`` for one point ``x`` ``(dim,)``.
    params
        The learned parameters (user form).
    data
        ``(n, dim)`` training points, real-valued.
    seed
        Seeds the null distribution's draws (the result is otherwise
        deterministic).

    Returns
    -------
    dict
        ``ran`` (False with a ``reason`` when not applicable), ``modes`` (one
        dict per minimum: ``data_share`` and ``model_share`` among the judged
        ones, ``points``, ``shape_ratio``, ``judged``), ``judged`` (how many),
        ``kl`` (nats per point; None with fewer than two judged),
        ``threshold``, ``flag``, ``unassigned`` (the share of points whose
        descent ended at no kept minimum).
    """
    from energymc.logz._checks import laplace_widen

    x = np.asarray(data)
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.floating):
        return _skip("data are not real-valued vectors")
    if x.shape[1] > MAX_DIM:
        return _skip(f"data have {x.shape[1]} > {MAX_DIM} dimensions")
    if set(np.unique(x[:4096]).tolist()) <= {0.0, 1.0, -1.0}:
        return _skip("binary or spin data")
    x = x[:: max(1, -(-len(x) // POINTS))]
    x = x[np.all(np.isfinite(x), axis=1)]
    dim = x.shape[1]
    ends, locs, chols, log_mass = _descend_to_modes(energy_fn, params, x)
    widen = laplace_widen(dim)
    owner = _assign(ends, locs, chols, widen)
    modes, keep = [], []
    for k, chol in enumerate(chols):
        pts = x[owner == k]
        ratio = _shape_ratio(pts, chol, widen) if len(pts) >= dim + 2 else math.inf
        judged = len(pts) >= max(MIN_POINTS, dim + 2) and ratio <= SHAPE_RATIO
        modes.append({"points": int(len(pts)), "shape_ratio": ratio, "judged": bool(judged),
                      "data_share": None, "model_share": None})
        if judged:
            keep.append(k)
    out = {"ran": True, "modes": modes, "judged": len(keep), "kl": None,
           "threshold": None, "flag": False, "unassigned": float(np.mean(owner < 0))}
    if len(keep) < 2:
        return out
    counts = np.array([modes[k]["points"] for k in keep], float)
    lm = np.array([log_mass[k] for k in keep], float)
    if not np.all(np.isfinite(lm)):
        return out
    p = np.exp(lm - lm.max())
    p /= p.sum()
    f = counts / counts.sum()
    for k, fk, pk in zip(keep, f, p, strict=True):
        modes[k]["data_share"], modes[k]["model_share"] = float(fk), float(pk)
    rng = np.random.default_rng(seed)
    null = _kl(rng.multinomial(int(counts.sum()), p, size=NULL_DRAWS) / counts.sum(), p)
    kl = float(_kl(f, p))
    threshold = max(KL_FLOOR, float(np.quantile(null, 0.99)))
    out.update(kl=kl, threshold=threshold, flag=bool(kl > threshold))
    return out


def mode_weight_problem(check: dict, method: str) -> list[str]:
    """The plain-language problem for a flagged :func:`mode_weight_check`, else ``[]``."""
    if not check.get("flag"):
        return []
    judged = [m for m in check["modes"] if m["judged"]]
    worst = max(judged, key=lambda m: abs(math.log(m["model_share"] / m["data_share"])))
    return [
        f"the learned energy shares its probability between modes unlike the data: at "
        f"{len(judged)} separated modes found by descents from the training points, the "
        f"model gives one {worst['model_share']:.3g} of the mass where the data have "
        f"{worst['data_share']:.3g}, which alone costs about {check['kl']:.2g} nats per "
        f"point (flagged above {check['threshold']:.2g}; result.checks['modes']). "
        + _WHY.get(method, "Its training signal did not weigh the modes against each other.")
        + " NCE, whose noise reaches every mode, weighs them; or judge the model by its "
        "held-out likelihood (docs/learning.md, 'Mode weights')."
    ]


_SCORE_MATCHING = ("Score matching fits the slope of the energy, which says nothing about how "
                   "mass is shared between modes the data do not connect.")
_WHY = {
    "DSM": _SCORE_MATCHING,
    "SSM": _SCORE_MATCHING,
    "CD": "Its chains (k steps from the data, or persistent ones) do not cross the gaps "
          "between modes, so they cannot weigh them against each other.",
}
