"""Why default AIS misses silently on curved targets (bananas, funnels): a probe on TUNING targets.

Default ``log_partition`` on the zoo's bananas and funnels is sometimes 3-5
of its own standard errors low with ``reliable: yes``. This script looks at
each run's four replicates and at statistics a check could read from the run
(``benchmarks/RESULTS.md``, "Curved targets: why the silent misses are
invisible to the run itself"):

* per replicate: its log Z error and the Kish ESS of its 256 weights (the
  pooled weights split back into replicates: replicate ``r``'s block sums
  to ``Z_r / sum_s Z_s``);
* ``k``: the generalized-Pareto shape of the pooled weights' top
  ``min(n/5, 3 sqrt(n))`` (scipy's maximum-likelihood fit; PSIS reads
  ``k > 0.7`` as an importance estimate not to be trusted);
* ``trend``: the z-score of ``cov(W, r^2)``, the weights against each
  particle's squared whitened radius. At equilibrium the final particles
  ``x_T`` have ``E[W | x_T] = Z pi(x_T) / q_T(x_T) = Z``, a constant; a
  positive trend says the particles under-cover the outskirts.

``--bdmc`` instead runs ``method="bdmc"`` with each ``reverse_start`` and
prints the raw forward/reverse ends and the reported 95% bracket, each
minus the exact log Z (a bracket that bounds holds 0).

``--settings`` (a JSON list of option dicts) instead runs each setting over
``--seeds`` seeds and prints silent misses, the spread of ``err / stderr``
and the cost, to see whether more moves or particles calibrate the stderr.

Usage (a few CPU-minutes on 2 cores)::

    python benchmarks/probe_curved_misses.py --targets banana2,funnel2,gaussian10 --seeds 10
    python benchmarks/probe_curved_misses.py --targets banana2,funnel2 --seeds 20 \\
        --settings '[{}, {"mcmc_steps": 4}, {"mcmc_steps": 8}, {"particles": 1024}]'
    python benchmarks/probe_curved_misses.py --targets banana2,funnel2 --seeds 10 --bdmc
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import numpy as np  # noqa: E402
import zoo  # noqa: E402
from scipy import stats  # noqa: E402

import energymc as emc  # noqa: E402

REPLICATES = 4  # log_partition's default for AIS


def run(entry, target, seed, **options):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = emc.log_partition(target, seed=seed, **options)
    return est, time.perf_counter() - t0


def pareto_k(w):
    """Generalized-Pareto shape of the top ``min(n/5, 3 sqrt(n))`` of ``w`` (``(n,)``)."""
    n = w.size
    w = np.sort(w / w.max())
    m = int(min(n / 5, 3 * np.sqrt(n)))
    return float(stats.genpareto.fit(w[n - m:] - w[n - m - 1], floc=0)[0])


def radius_trend(target, x, w):
    """z-score of ``cov(W, r^2)`` over the pooled particles ``x`` ``(n, dim)``, weights ``w``."""
    xc = x - x.mean(0)
    r2 = np.sum(xc**2 / np.maximum(xc.var(0), 1e-300), axis=1)
    prod = (w - w.mean()) * (r2 - r2.mean())
    return float(prod.mean() / (prod.std(ddof=1) / np.sqrt(prod.size)))


def per_run(entry, target, seed):
    est, _ = run(entry, target, seed)
    err = est.log_z - entry.log_z
    w = np.asarray(est.weights, dtype=np.float64).reshape(REPLICATES, -1)
    rep_err = np.log(REPLICATES * w.sum(1)) + err
    rep_ess = w.sum(1) ** 2 / (w**2).sum(1)
    # Each replicate's weights at mean 1, so that no replicate's Z scales its trend.
    wn = (w / w.mean(1, keepdims=True)).ravel()
    x = np.asarray(est.particles, dtype=np.float64)
    silent = est.reliable and abs(err) > 3 * est.stderr
    print(f"{entry.name:11s} seed {seed:2d} err {err:+.3f} stderr {est.stderr:.3f} "
          f"z {err / est.stderr:+5.1f} reliable {int(est.reliable)} silent {int(silent)} | "
          f"replicate err {np.array2string(rep_err, precision=3, sign='+')} "
          f"ESS {np.array2string(rep_ess, precision=0)} | k {pareto_k(wn):+.2f} "
          f"trend {radius_trend(target, x, wn):+5.1f}", flush=True)


def per_setting(entry, target, seeds, options):
    errs, ses, rel, secs, evals = [], [], [], [], []
    for s in seeds:
        est, dt = run(entry, target, s, **options)
        errs.append(est.log_z - entry.log_z)
        ses.append(est.stderr)
        rel.append(est.reliable)
        secs.append(dt)
        evals.append(est.num_grad_evals)
    errs, ses, rel = np.array(errs), np.array(ses), np.array(rel, dtype=bool)
    z = errs / ses
    print(f"{entry.name:11s} {json.dumps(options):24s} silent {int(np.sum(rel & (abs(z) > 3)))}"
          f"/{len(z)} flagged {int(np.sum(~rel))} med|err| {np.median(abs(errs)):.3f} "
          f"mean err {errs.mean():+.3f} sd(z) {z.std():.2f} med stderr {np.median(ses):.3f} "
          f"warm s {np.median(secs[1:]):.2f} grad evals {np.median(evals) / 1e6:.2f}M",
          flush=True)


def per_bdmc(entry, target, seed):
    for start in ("forward", "mcmc"):
        est, _ = run(entry, target, seed, method="bdmc", reverse_start=start)
        lo, hi = est.info["lower_raw"] - entry.log_z, est.info["upper_raw"] - entry.log_z
        print(f"{entry.name:11s} seed {seed:2d} reverse_start={start:8s} raw ends "
              f"[{lo:+.3f}, {hi:+.3f}] reported [{est.lower - entry.log_z:+.3f}, "
              f"{est.upper - entry.log_z:+.3f}] reliable {int(est.reliable)}", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--targets", default="banana2,funnel2,gaussian10")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--settings", default=None, help="JSON list of option dicts")
    p.add_argument("--bdmc", action="store_true", help="BDMC's brackets instead")
    a = p.parse_args()
    print(f"jax {jax.__version__}, energymc {emc.__version__}")
    for name in a.targets.split(","):
        entry = zoo.by_name(name)
        if entry not in zoo.TUNING:
            print(f"note: {name} is not on the TUNING half")
        target = entry.build()
        if a.settings:
            for options in json.loads(a.settings):
                per_setting(entry, target, range(a.seeds), options)
        else:
            for s in range(a.seeds):
                (per_bdmc if a.bdmc else per_run)(entry, target, s)


if __name__ == "__main__":
    main()
