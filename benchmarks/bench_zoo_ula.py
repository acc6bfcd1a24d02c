"""Unadjusted Langevin's variance error under default options on the zoo's held-out half.

``emc.sample(target, "langevin")`` caps its step so that, on a Gaussian, the
variance along the stiffest direction is inflated by at most ``max_bias``
(default 3%). This script checks what that gives on targets nobody tuned it
for: every continuous entry of ``zoo.HELD_OUT`` whose per-coordinate mean and
variance are known exactly (analytically, or by 1-d quadrature), one seed,
with the default step and, for contrast, with ``max_bias=None`` (the plain
90%-acceptance step). Per run it reports:

* ``worst var/true - 1``: the coordinate whose variance (about the true mean)
  is furthest from the truth, and that error's z-score against its Monte
  Carlo standard error (``sd / sqrt(ESS)`` of the squared deviation);
* ``max infl``: the run's own estimate, ``run.stats["variance_inflation"]``;
* ``diagnose``: ``ok``, or the checks that fired (R-hat, ESS, bias, ...);
* ``ESS``: the smallest bulk ESS over coordinates; ``s``: wall seconds.

An error many standard errors away with ``diagnose`` ok would be a silent
bias. Usage::

    python benchmarks/bench_zoo_ula.py
    python benchmarks/bench_zoo_ula.py --draws 1000 --targets gaussian40,banana10
    python benchmarks/bench_zoo_ula.py --warmup-cost
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import zoo  # noqa: E402
from scipy import integrate  # noqa: E402

import energymc as emc  # noqa: E402


# ------------------------------------------------- exact per-coordinate moments
def _gaussian_moments(dim, cond, seed):
    lam, q, mean = zoo._dense_gaussian_parts(dim, cond, seed)
    return mean, np.einsum("ij,j,ij->i", q, lam, q)


def _mixture_moments(dim, weights, sds, radius, seed):
    _, s, mu = zoo._mixture_parts(dim, weights, sds, radius, seed)
    w = np.asarray(weights)
    mean = w @ mu
    second = w @ (s[:, None] ** 2 + mu**2)
    return mean, second - mean**2


def _student_moments(dim, nu, seed):
    scale, loc = zoo._student_parts(dim, nu, seed)
    return loc, scale**2 * nu / (nu - 2.0)


def _banana_moments(dim, scale, curvature):
    mean = np.zeros(dim)
    var = np.empty(dim)
    var[0::2] = scale**2
    var[1::2] = 1.0 + curvature**2 * 2.0 * scale**4   # Var(c (a^2 - s^2)) + 1
    return mean, var


def _quad_moments(log_f, lo, hi):
    """(E[r], E[r^2]) under the 1-d density exp(log_f), normalised numerically."""
    grid = np.linspace(lo, hi, 20001)
    peak = max(log_f(r) for r in grid[::100])
    f = lambda r, k: r**k * math.exp(log_f(r) - peak)
    z, m1, m2 = (integrate.quad(f, lo, hi, args=(k,), limit=400, epsrel=1e-10)[0]
                 for k in (0, 1, 2))
    return m1 / z, m2 / z


def _ring_moments(dim, radius, width):
    log_f = lambda r: (dim - 1) * math.log(r) - 0.5 * ((r - radius) / width) ** 2 if r > 0 \
        else -math.inf
    _, r2 = _quad_moments(log_f, 1e-9, radius + 40 * width + 10)
    return np.zeros(dim), np.full(dim, r2 / dim)   # E[x_i^2] = E[r^2] / d by symmetry


def _wells_moments(dim, tilt):
    a1, a2 = _quad_moments(lambda a: -(a**4 - 6.0 * a**2 - tilt * a), -6.0, 6.0)
    mean, var = np.zeros(dim), np.ones(dim)
    mean[0::2], var[0::2] = a1, a2 - a1**2
    return mean, var


def _funnel_moments(dim, scale):
    mean, var = np.zeros(dim), np.full(dim, math.exp(0.5 * scale**2))   # E[e^v]
    var[0] = scale**2
    return mean, var


MOMENTS = {"gaussian": _gaussian_moments, "mixture": _mixture_moments,
           "student": _student_moments, "banana": _banana_moments, "ring": _ring_moments,
           "wells": _wells_moments, "funnel": _funnel_moments}


def _ess(y):
    return float(emc.diagnostics.summary(emc.diagnostics.from_arrays({"y": y}),
                                         kind="diagnostics")["ess_bulk"].min())


def _label(problem):
    for phrase, label in (("stiffest direction", "bias"), ("would have been accepted", "mh-acc"),
                          ("could not be estimated", "curv-nan"), ("unstable", "unstable"),
                          ("Effective sample size", "ESS"), ("R-hat", "R-hat"),
                          ("divergent", "divergent"), ("acceptance", "acceptance")):
        if phrase in problem:
            return label
    return problem.split(" ")[0]


def run_one(entry, draws, thin, seed, max_bias):
    mean, var = MOMENTS[entry.family](*entry.build.args)
    target = entry.build()
    opts = {} if max_bias == "default" else {"max_bias": None}
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = emc.sample(target, "langevin", chains=4, draws=draws, thin=thin, seed=seed,
                         **opts)
        d = emc.diagnose(run)
    dt = time.perf_counter() - t0
    x = np.asarray(run.flat_draws, dtype=np.float64)
    sq = (x - mean) ** 2
    rel = sq.mean(axis=(0, 1)) / var - 1.0
    i = int(np.argmax(np.abs(rel)))
    se = sq[..., i].std() / math.sqrt(max(_ess(sq[..., i]), 1.0)) / var[i]
    checks = sorted({_label(p) for p in d.problems})
    return {"rel": rel[i], "z": rel[i] / se, "infl": float(np.nanmax(
        run.stats["variance_inflation"])), "diag": "ok" if d.ok else ",".join(checks),
        "ess": d.numbers["min_ess_bulk"], "s": dt}


def warmup_cost(dim=500, repeats=7):
    """Seconds of a compiled warmup (1000 steps, 4 chains, 10 draws) of mala and langevin on a
    dense ``dim``-d quadratic: what the curvature measurement adds to langevin's warmup."""
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    a = rng.normal(size=(dim, dim)) / math.sqrt(2.5 * dim)
    prec = jnp.asarray(a @ a.T + np.eye(dim))
    target = emc.Energy(lambda x: 0.5 * x @ (prec @ x), init=jnp.zeros(dim))
    for method in ("mala", "langevin"):
        emc.sample(target, method, chains=4, draws=10, warmup=1000, seed=0)   # compile
        times = []
        for seed in range(1, repeats + 1):
            t0 = time.perf_counter()
            run = emc.sample(target, method, chains=4, draws=10, warmup=1000, seed=seed)
            np.asarray(run.flat_draws)
            times.append(time.perf_counter() - t0)
        print(f"{method:9s} warmup 1000 + 10 draws, {dim}-d dense quadratic: best of "
              f"{repeats} {min(times):.3f} s")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--draws", type=int, default=2000)
    p.add_argument("--thin", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--targets", default=None, help="comma-separated zoo names")
    p.add_argument("--half", default="held_out", choices=("held_out", "tuning"))
    p.add_argument("--warmup-cost", action="store_true",
                   help="only time langevin's warmup against mala's")
    args = p.parse_args(argv)
    if args.warmup_cost:
        warmup_cost()
        return
    half = zoo.HELD_OUT if args.half == "held_out" else zoo.TUNING
    entries = [e for e in half if e.family in MOMENTS]
    if args.targets:
        entries = [zoo.by_name(n) for n in args.targets.split(",")]
    print(f"langevin on zoo.{args.half.upper()}: 4 chains x {args.draws} draws, thin "
          f"{args.thin}, warmup 1000, seed {args.seed}")
    print(f"{'target':12s} {'max_bias':8s} {'worst var/true - 1':>19s} {'z':>6s} "
          f"{'max infl':>8s} {'ESS':>7s} {'s':>6s}  diagnose")
    for e in entries:
        for mb in ("default", "None"):
            r = run_one(e, args.draws, args.thin, args.seed, mb)
            print(f"{e.name:12s} {mb:8s} {r['rel']:>+19.3f} {r['z']:>6.1f} {r['infl']:>8.3f} "
                  f"{r['ess']:>7.0f} {r['s']:>6.1f}  {r['diag']}", flush=True)


if __name__ == "__main__":
    main()
