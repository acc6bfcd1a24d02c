"""A check for tails heavier than the base's: how fast the energy grows far out.

Every estimator anneals from a reference ``q0`` (by default a Gaussian). When
the target's density decays polynomially (a Student-t), ``q0`` has lighter
tails than the target: annealed importance sampling stays unbiased for ``Z``
but its weights are heavy-tailed, so the typical ``log Z`` estimate is low and
its own standard error too small. Replicates share that bias and agree with
each other, and the mode check's Laplace mixture has the same light tails, so
neither sees it (``benchmarks/RESULTS.md``, "Held-out zoo: log Z under
defaults": student10, 2 silent misses in 10 seeds). The Pareto ``k-hat`` of the
final weights did not separate good from bad runs on the zoo's TUNING half, so
this check looks at the target, not at the weights.

:func:`tail_check` probes the energy along ``K`` random directions from the
particles' weighted mean, scaled by their per-coordinate spread, at radii
growing geometrically, and reads the growth exponent ``a`` in ``E ~ r^a``
from the outermost radii: ``a = log2((E(4r) - E(2r)) / (E(2r) - E(r)))``, which
ignores any constant offset. ``a`` is about 2 for Gaussian tails, 1 for
exponential ones, 4 for a double well, and about 0 for a polynomially
decaying density (``E ~ c log r``). A direction whose energy is not finite
far out (a hard wall, an overflow) counts as light. The threshold on ``a`` was
chosen on the zoo's TUNING half (``benchmarks/RESULTS.md``, "Tail check").
Under ``base=None``/``"auto"`` (AIS, SMC) ``log_partition`` follows the
check's advice itself: a run that reads heavy is run again from a Student-t
base (``energymc.logz._api._escalate``).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from energymc.energy import jit_over_target

__all__ = ["tail_check", "run_tail_check", "tail_exponents", "TAIL_RADII", "TAIL_THRESHOLD",
           "TAIL_DIRECTIONS"]

# Multiples of the particles' per-coordinate sd. The exponent is read from the
# last three: far enough out that a polynomially decaying density is in its
# log regime in 100 dimensions, and near enough that a Gaussian's energy
# (about 0.5 * 64^2 * dim) stays far from float32's range.
TAIL_RADII = (2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
TAIL_DIRECTIONS = 32
# Directions whose exponent is below this read "heavy"; chosen on TUNING.
TAIL_THRESHOLD = 1.0
# The target reads heavy-tailed when at least this share of the directions do.
TAIL_SHARE = 0.5


def _probe_points(center, scale, directions, radii):
    """``(K, J, dim)`` points ``center + r * scale * v`` for each direction ``v`` and radius ``r``.

    ``center``/``scale`` are ``(dim,)`` (the particles' weighted mean and
    per-coordinate sd), ``directions`` ``(K, dim)`` with roughly unit entries
    (one sd per coordinate), ``radii`` ``(J,)`` multiples of ``scale``.
    """
    return center + radii[None, :, None] * (scale * directions)[:, None, :]


@jit_over_target(("target",))
def _target_energies(points, *, target):
    """The target's energy at ``(K, J, dim)`` points: ``(K, J)``.

    Compiled once per target (a ``from_params`` target's new parameters do
    not recompile it): the check runs after every ``log_partition`` call.
    """
    flat = points.reshape(-1, points.shape[-1])
    return jax.vmap(target.flat_energy)(flat).reshape(points.shape[:2])


@jax.jit
def _base_energies(points, base):
    """``-log q0`` of the base (a pytree reference) at ``(K, J, dim)`` points: ``(K, J)``."""
    flat = points.reshape(-1, points.shape[-1])
    return jax.vmap(lambda z: -base.log_prob(z))(flat).reshape(points.shape[:2])


def tail_exponents(energies: np.ndarray) -> np.ndarray:
    """Growth exponent ``a`` (``E ~ r^a``) per direction, from its outermost three radii.

    Parameters
    ----------
    energies
        ``(K, J)`` energies at radii doubling from one column to the next (``J >= 3``).

    Returns
    -------
    numpy.ndarray
        ``(K,)`` exponents: ``log2`` of the ratio of the last two energy
        increments. ``+inf`` (light) where an energy is not finite or the
        energy grows only after falling; ``-inf`` (heavy) where it stops
        growing (the density does not decay there at all).
    """
    e = np.asarray(energies, np.float64)[:, -3:]
    out = np.full(e.shape[0], np.inf)
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite rows are read as light
        d1, d2 = e[:, 1] - e[:, 0], e[:, 2] - e[:, 1]
    finite = np.all(np.isfinite(e), axis=1)
    grows = finite & (d1 > 0) & (d2 > 0)
    out[grows] = np.log2(d2[grows] / d1[grows])
    out[finite & (d2 <= 0)] = -np.inf
    return out


def _weighted_moments(particles, weights):
    x = np.asarray(particles, np.float64)
    w = np.asarray(weights, np.float64)
    w = w / w.sum()
    mean = w @ x
    sd = np.sqrt(np.maximum(w @ (x - mean) ** 2, 0.0))
    # A coordinate the particles collapsed on (all weight on one particle) still
    # needs a length to probe with: fall back to the overall spread, then 1.
    fallback = float(np.max(sd)) if np.any(sd > 0) else 1.0
    return mean, np.where(sd > 0, sd, fallback)


def tail_check(target, particles, weights, key, *, base=None, directions=TAIL_DIRECTIONS,
               radii=TAIL_RADII, threshold=TAIL_THRESHOLD, share=TAIL_SHARE):
    """Whether the target's density decays more slowly than the base's can follow.

    Parameters
    ----------
    target
        A real-support :class:`energymc.Energy`.
    particles, weights
        ``(n, dim)`` final particles and ``(n,)`` weights (normalised or not).
    key
        A ``jax.random.key`` for the directions.
    base
        The run's reference ``q0`` (an object with ``log_prob(z)`` for a flat
        ``(dim,)`` position), or ``None`` for a Gaussian. Its ``-log q0`` is
        probed at the same points: a base that reads heavy too (a Student-t)
        follows the target's tails, and nothing is flagged.
    directions
        ``K``, the number of random directions (Gaussian, one sd per coordinate).
    radii
        Multiples of the per-coordinate sd, each twice the one before.
    threshold
        A direction whose growth exponent is below this reads heavy.
    share
        The target (or base) reads heavy when at least this share of directions do.

    Returns
    -------
    problem : str or None
        Set when the target reads heavy-tailed and the base does not; names the fix.
    info : dict
        ``status`` (``"heavy"``, ``"light"``, ``"heavy, as is the base"`` or why
        skipped), ``exponents`` (per direction), ``median_exponent``,
        ``heavy_share``, ``base_heavy_share`` (``None`` without a base),
        ``threshold``, ``evaluations``.
    """
    x = np.asarray(particles)
    w = np.asarray(weights)
    if x.ndim != 2 or w.shape != (x.shape[0],) or not np.all(np.isfinite(w)) or w.sum() <= 0:
        return None, {"status": "skipped: needs (n, dim) particles with finite weights"}
    finite = np.all(np.isfinite(x), axis=1)
    x, w = x[finite], w[finite]
    if x.shape[0] == 0 or w.sum() <= 0:
        return None, {"status": "skipped: no finite particle with weight"}
    mean, sd = _weighted_moments(x, w)
    dtype = jnp.asarray(target.flat_init).dtype
    v = jax.random.normal(key, (int(directions), x.shape[1]), dtype)
    pts = _probe_points(jnp.asarray(mean, dtype), jnp.asarray(sd, dtype), v,
                        jnp.asarray(radii, dtype))
    e = np.asarray(_target_energies(pts, target=target))
    a = tail_exponents(e)
    heavy = a < threshold
    base_share = None
    if base is not None:
        base_share = float(np.mean(
            tail_exponents(np.asarray(_base_energies(pts, base))) < threshold))
    info = {"exponents": [float(t) for t in a],
            "median_exponent": float(np.median(a)),
            "heavy_share": float(np.mean(heavy)), "base_heavy_share": base_share,
            "threshold": float(threshold), "evaluations": int(e.size) * (1 + (base is not None))}
    if np.mean(heavy) < share:
        return None, {**info, "status": "light"}
    if base_share is not None and base_share >= share:
        return None, {**info, "status": "heavy, as is the base"}
    info["status"] = "heavy"
    return (f"the target's tails are heavier than the base's: along {int(np.sum(heavy))} of "
            f"{len(a)} random directions from the particles' mean the energy grows like "
            f"r^{info['median_exponent']:.2f} (median; a Gaussian's like r^2), so its density "
            f"decays polynomially. Annealing from a lighter-tailed base gives heavy-tailed "
            f"weights: log Z is typically too low, its stderr too small, and every replicate "
            f"shares the bias. Use a heavier-tailed base, e.g. "
            f"base=numpyro.distributions.StudentT(3, loc, scale).to_event(1) with loc and "
            f"scale about the target's centre and spread (est.info['checks']['tails'] holds "
            f"the particles' 'mean' and 'sd'); base=None does this itself with method='ais' "
            f"or 'smc'."), {**info, "mean": [float(t) for t in mean],
                                                   "sd": [float(t) for t in sd]}


def run_tail_check(est, target, ref, key) -> None:
    """Run :func:`tail_check` on a finished estimate where it applies, and record it.

    The result goes to ``est.info["checks"]["tails"]``; a problem (the target's
    tails are heavier than the base's) is appended to ``est.problems``, which
    makes the record unreliable. Skipped (recorded as such) for discrete
    targets, a model's own annealing path, and runs without particles.
    """
    from energymc.logz._path import AnnealingPath

    checks = est.info.setdefault("checks", {})
    if target.support != "real" or isinstance(ref, AnnealingPath) or est.particles is None \
            or est.weights is None:
        checks["tails"] = {"status": "skipped: needs real particles from a geometric path"}
        return
    t0 = time.perf_counter()
    problem, info = tail_check(target, est.particles, est.weights, key, base=ref)
    info["seconds"] = time.perf_counter() - t0
    checks["tails"] = info
    if problem:
        est.problems.append(problem)
