"""``base="modes"``: a normalised reference fitted to the target's modes before the anneal.

The annealing path is short when ``q0`` is close to the target. A Gaussian
mixture with a Laplace component at each mode is close for the targets where
the default ``N(init, scale^2 I)`` is far: dense, ill-conditioned Gaussians
away from the origin (the Laplace fit is exact up to the widening) and
unequal mixtures (each mode gets its Laplace mass, so no particle has to
find a narrow mode late in the schedule). The fit:

1. gradient descents (the mode check's own, :func:`energymc.logz._checks.descend`)
   from ``init`` and from draws of the default Gaussian;
2. end points with a non-finite energy are dropped (and counted); the rest
   are merged into distinct modes with a Laplace Gaussian at each
   (:func:`energymc.logz._checks.laplace_modes`: dense Hessian, eigenvalues
   floored so that in a flat or concave direction the component has
   ``MAX_SD_SCALES`` times the default Gaussian's largest sd, covariance
   widened by ``1 + 1/sqrt(dim)``);
3. one Newton step per mode with that Hessian, kept when it lowers the
   energy (a descent that stopped short in a long, flat direction of an
   ill-conditioned Gaussian lands on its exact mode);
4. weights: each mode's Laplace mass ``exp(-E(m)) |H|^(-1/2)`` (floored as
   in the check), times ``1 - defensive``; component 0 is the default
   Gaussian with weight ``defensive``, so every region the default base
   reached is still reached.

Runs on the host around compiled pieces that depend only on the target and
the shapes: a new seed or a new number of modes never recompiles.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from energymc._util import kish_ess, nonfinite_to_neginf
from energymc.energy import jit_over_target
from energymc.logz._checks import descend, laplace_modes, laplace_widen, laplace_weights
from energymc.logz._reference import MixtureReference, draw

__all__ = ["fit_modes", "fits_well", "max_modes", "AUTO_DEFENSIVE", "AUTO_MAX_MODES",
           "AUTO_MIN_ESS", "DESCENT_STEPS", "ESS_DRAWS", "MODES_DEFENSIVE"]

#: Adam steps of each descent (as in the mode check).
DESCENT_STEPS = 400

#: Draws of the mode components that measure how well they match the target
#: (``info["ess"]``).
ESS_DRAWS = 1024

#: ``base="auto"`` uses the fit only when it found at most this many modes
#: and its importance ESS is at least this fraction of ``ESS_DRAWS``; else the
#: default Gaussian. Chosen on the zoo's TUNING half (benchmarks/RESULTS.md,
#: "`base='modes'` on the TUNING half"): ESS 0.68-0.74 on the dense
#: Gaussians, where the fit wins by up to 2.8 nats; 0.001-0.26 on funnels,
#: bananas, rings, wells32 and student50, where it loses; 0.73-0.82 on
#: mixtures and wells2 too, but there a mode no descent reaches is missed
#: by every replicate alike (mixture10d3: silent misses), so more than one
#: found mode keeps the default base, whose noisier estimate gets flagged.
AUTO_MAX_MODES = 1
AUTO_MIN_ESS = 0.5

#: The default Gaussian's weight in the fitted mixture (``defensive=None``):
#: with ``base="modes"`` it keeps every region the default base reached
#: reachable by the anneal, and the mixture's tails as heavy as the default
#: base's.
MODES_DEFENSIVE = 0.15

#: ``defensive=None`` under ``base="auto"``, by method (others: MODES_DEFENSIVE).
#: "auto" uses the fit only where it found one mode that matches (above), and
#: there AIS's defensive particles cost most of the run: they start far from
#: the target and the adaptive schedule crawls while their weight vanishes
#: (gaussian100: ~240 stages against 10 without them; gaussian500: ~950, 13 s
#: of each replicate). Chosen on the zoo's TUNING half where the fit is used
#: (gaussian10, gaussian100, student2; benchmarks/RESULTS.md, "gaussian500:
#: the fitted base alone"): AIS is as precise without them. SMC is not: from
#: the Gaussian fit alone it was 0.04-0.06 nats low on the heavy-tailed
#: student2 with stderr ~0.013, unflagged, so it keeps them. A mode the
#: single-mode fit missed is out of AIS's reach without them (it was in
#: practice with them too: mixture6d3); the mode check still descends from
#: draws of the default Gaussian and flags it. BDMC anneals as AIS does, both
#: ways: its reverse run crawled through the defensive stages too (54-75 s on
#: gaussian100 with them). Nested sampling and PT take the fit alone too: on
#: TUNING's gaussian10 and gaussian100 they were as precise or more without the
#: share (PT at 100-d 0.006-0.028 nats against 0.020-0.039, nested at 10-d stderr
#: 0.02 against 0.03), and a heavy-tailed target where the fit is used is left to
#: the tail check's Student-t rerun (student2: escalated in every seed either way).
AUTO_DEFENSIVE = {"ais": 0.0, "bdmc": 0.0, "nested": 0.0, "pt": 0.0}

#: A mode component's sd in a flat or concave direction of the Hessian (a
#: ring's tangent, a saddle), and its widest in any direction, in units of
#: the default Gaussian's largest sd. Not 1: targets broader than the default
#: base in some directions exist (the zoo's dense Gaussians have sds up to
#: 5.6 against scale 2), and capping them at the base's sd made a base
#: narrower than the target (importance ESS 27 of 4096 on a 40-d one).
MAX_SD_SCALES = 5.0


def max_modes(dim: int) -> int:
    """Mode components kept at ``dim``: 8, fewer above 100 dimensions.

    ``log_prob`` costs ``K dim^2`` per evaluation (a triangular solve per
    component), on every annealing move; the cap keeps it near ``8 * 100^2``
    (1 mode at 300 dimensions and above).
    """
    return int(min(8, max(1, (8 * 100**2) // dim**2)))


@jit_over_target(("target",))
def _value_and_grad(x, *, target):
    return jax.value_and_grad(target.flat_energy)(x)


def _newton(target, loc, chol, widen, dtype):
    """One Newton step from ``loc`` with the component's Hessian; ``(loc, energy drop)``.

    ``chol chol^T = widen * H^-1``, so the step is ``-chol chol^T g / widen``.
    Kept only when the energy is finite and lower.
    """
    e0, g = _value_and_grad(jnp.asarray(loc, dtype), target=target)
    e0, g = float(e0), np.asarray(g, dtype=float)
    if not np.all(np.isfinite(g)):
        return loc, 0.0
    new = loc - chol @ (chol.T @ g) / widen
    e1 = float(_value_and_grad(jnp.asarray(new, dtype), target=target)[0])
    if math.isfinite(e1) and e1 < e0:
        return new, e0 - e1
    return loc, 0.0


def fit_modes(target, key, *, scale, starts=32, defensive=0.15):
    """Fit the ``base="modes"`` mixture to ``target``.

    Parameters
    ----------
    target
        A real-support :class:`energymc.Energy`.
    key
        A ``jax.random.key``.
    scale
        ``(dim,)`` sds of the default Gaussian ``N(init, scale^2 I)``: where
        descents start, the defensive component, and the widest a mode
        component gets in a flat or concave direction.
    starts
        Descents: one from ``init``, the others from draws of the default
        Gaussian.
    defensive
        Weight of the default Gaussian in the mixture, in ``[0, 1)``.

    Returns
    -------
    ref : MixtureReference
        ``1 + max_modes(dim)`` components (unused ones with weight 0).
    grad_evals : float
        Gradient evaluations the fit cost (descents, Hessians as ``dim``
        each, Newton steps, and the ``ESS_DRAWS`` energy evaluations).
    info : dict
        ``modes`` (found), ``starts``, ``dropped`` (descents ending at a
        non-finite energy), ``grad_evals``, ``defensive``, ``ess`` (importance
        ESS of the mode components alone against the target, as a fraction
        of ``ESS_DRAWS`` draws; NaN when no mode was found).
    """
    dtype = jnp.result_type(float)
    init = np.asarray(target.flat_init, dtype=float)
    dim = init.size
    sd = np.asarray(scale, dtype=float)
    kmax = max_modes(dim)
    draws = np.asarray(jax.random.normal(key, (starts - 1, dim), dtype), dtype=float)
    x0 = np.concatenate([init[None], init + draws * sd])
    ends, energies, _ = descend(jnp.asarray(x0 / sd, dtype), jnp.asarray(sd, dtype),
                                 jnp.asarray(x0[:1], dtype), target=target,
                                 steps=DESCENT_STEPS)
    ends, energies = np.asarray(ends, dtype=float), np.asarray(energies, dtype=float)
    finite = np.isfinite(energies) & np.all(np.isfinite(ends), axis=1)
    locs, chols, log_mass = laplace_modes(target, ends[finite], energies[finite], sd, kmax,
                                           dtype, max_sd=MAX_SD_SCALES * float(np.max(sd)))
    widen = laplace_widen(dim)
    for i, (loc, chol) in enumerate(zip(locs, chols, strict=True)):
        locs[i], drop = _newton(target, loc, chol, widen, dtype)
        log_mass[i] += drop  # exp(-E) at the refined mode
    k = len(locs)
    cost = starts * DESCENT_STEPS + k * (dim + 2)
    eye_chol = np.diag(sd)
    L = np.broadcast_to(eye_chol, (1 + kmax, dim, dim)).copy()
    M = np.broadcast_to(init, (1 + kmax, dim)).copy()
    logw = np.full(1 + kmax, -np.inf)
    if k:
        pi = laplace_weights(log_mass)
        M[1:k + 1], L[1:k + 1] = np.stack(locs), np.stack(chols)
        logw[1:k + 1] = np.log(pi) + math.log1p(-defensive)
        logw[0] = math.log(defensive) if defensive > 0 else -np.inf
        var = np.einsum("k,kij->i", pi, np.stack(chols) ** 2)
    else:
        logw[0] = 0.0  # nothing found: the default Gaussian alone
        var = sd**2
    ref = MixtureReference(jnp.asarray(M, dtype), jnp.asarray(L, dtype),
                           jnp.asarray(logw, dtype), jnp.asarray(var, dtype), diagonal0=True)
    ess = math.nan
    if k:
        # How well the mode components alone (no defensive share) match the
        # target: the importance ESS of ESS_DRAWS of their draws, a fraction.
        modes_only = MixtureReference(ref.locs, ref.chols, jnp.asarray(
            np.concatenate([[-np.inf], logw[1:] - math.log1p(-defensive)]), dtype), ref.var,
            ref.inv_chols, diagonal0=True)
        x = draw(modes_only, jax.random.fold_in(key, 1), ESS_DRAWS)
        lw = np.asarray(_log_weights(x, modes_only, target=target), dtype=float)
        ess = float(kish_ess(_weights(lw))) / ESS_DRAWS if np.any(np.isfinite(lw)) else 0.0
        cost += ESS_DRAWS
    info = {"modes": k, "starts": int(starts), "dropped": int(np.sum(~finite)),
            "grad_evals": float(cost), "defensive": float(defensive), "ess": ess}
    return ref, float(cost), info


def _weights(logw):
    w = np.exp(logw - np.max(logw))
    return w / w.sum()


@jit_over_target(("target",))
def _log_weights(x, ref, *, target):
    """``-E(x) - log q(x)`` for draws ``x`` ``(n, dim)`` of ``ref``; non-finite read as -inf."""
    lw = -jax.vmap(target.flat_energy)(x) - jax.vmap(ref.log_prob)(x)
    return nonfinite_to_neginf(lw)


def fits_well(info) -> bool:
    """Whether ``base="auto"`` anneals from the fit: at most ``AUTO_MAX_MODES`` modes found
    and importance ESS at least ``AUTO_MIN_ESS`` (``info`` from :func:`fit_modes`)."""
    return 1 <= info["modes"] <= AUTO_MAX_MODES and info["ess"] >= AUTO_MIN_ESS
