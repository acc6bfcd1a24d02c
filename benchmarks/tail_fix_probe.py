"""Does the fix the tail check names work? Default AIS vs a Student-t base (zoo targets).

For each target and seed: the default ``emc.log_partition(target)``; then the
same call with ``base=numpyro.distributions.StudentT(df, loc, scale).to_event(1)``,
``loc``/``scale`` the particles' mean and sd that the tail check records
(``est.info["checks"]["tails"]``), as a user following the problem's advice
would. Prints error, stderr, z = err/stderr and flags for both; a summary per
target (median error, runs beyond 3 stderr that are not flagged).

    python benchmarks/tail_fix_probe.py --half tuning --targets student2,student50 --seeds 10
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
import zoo  # noqa: E402

import energymc as emc  # noqa: E402


def _run(target, entry, seed, base=None):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = emc.log_partition(target, seed=seed, **({} if base is None else {"base": base}))
    err = est.log_z - entry.log_z
    return est, {"err": err, "stderr": est.stderr, "z": err / est.stderr,
                 "reliable": est.reliable, "s": time.perf_counter() - t0,
                 "tails": est.info.get("checks", {}).get("tails", {}).get("status")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--half", default="tuning", choices=("tuning", "held_out"))
    ap.add_argument("--targets", default="student2,student50")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--df", type=float, default=3.0)
    args = ap.parse_args()
    half = zoo.TUNING if args.half == "tuning" else zoo.HELD_OUT
    names = args.targets.split(",")
    print("| target | seed | default err | se | z | reliable | tails | s | t-base err | se | z "
          "| reliable | s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    summary = {}
    for entry in (e for e in half if e.name in names):
        target = entry.build()
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            est, d = _run(target, entry, seed)
            info = est.info["checks"]["tails"]
            if "mean" in info:
                loc, scale = jnp.asarray(info["mean"]), jnp.asarray(info["sd"])
            else:  # the check did not fire: what a user would take from the particles
                w = est.weights / est.weights.sum()
                loc = w @ est.particles
                scale = np.sqrt(w @ (est.particles - loc) ** 2)
                loc, scale = jnp.asarray(loc), jnp.asarray(scale)
            base = dist.StudentT(args.df, loc, scale).to_event(1)
            _, t = _run(target, entry, seed, base=base)
            summary.setdefault(entry.name, []).append((d, t))
            print(f"| {entry.name} | {seed} | {d['err']:+.3f} | {d['stderr']:.3f} | "
                  f"{d['z']:+.1f} | {d['reliable']} | {d['tails']} | {d['s']:.1f} | "
                  f"{t['err']:+.3f} | {t['stderr']:.3f} | {t['z']:+.1f} | {t['reliable']} | "
                  f"{t['s']:.1f} |", flush=True)
    print()
    print("| target | runs | default med err | default >3se | t-base med err | t-base >3se "
          "| t-base >3se reliable | t-base flagged |")
    print("|---|---|---|---|---|---|---|---|")
    for name, rows in summary.items():
        de = [d["err"] for d, _ in rows]
        te = [t["err"] for _, t in rows]
        print(f"| {name} | {len(rows)} | {np.median(de):+.3f} | "
              f"{sum(abs(d['z']) > 3 for d, _ in rows)} | {np.median(te):+.3f} | "
              f"{sum(abs(t['z']) > 3 for _, t in rows)} | "
              f"{sum(abs(t['z']) > 3 and t['reliable'] for _, t in rows)} | "
              f"{sum(not t['reliable'] for _, t in rows)} |")


if __name__ == "__main__":
    main()
