"""Growth exponents of the tail check (energymc.logz._tails) on zoo targets.

For each target and seed: one default ``emc.log_partition`` run (checks off,
so only the particles matter), then :func:`tail_check` on its final particles.
Prints the median exponent, the share of directions below each candidate
threshold, and the run's error. Used to choose ``TAIL_THRESHOLD`` on TUNING.

    python benchmarks/tail_probe.py --half tuning --seeds 2
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

import jax  # noqa: E402
import numpy as np  # noqa: E402
import zoo  # noqa: E402

import energymc as emc  # noqa: E402
from energymc.logz._tails import tail_check  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--half", default="tuning", choices=("tuning", "held_out"))
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--targets", default="")
    args = ap.parse_args()
    half = zoo.TUNING if args.half == "tuning" else zoo.HELD_OUT
    names = args.targets.split(",") if args.targets else None
    print("| target | seed | err | stderr | median a | min a | max a | share<0.5 | share<1 "
          "| share<1.5 | check s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for entry in half:
        if names and entry.name not in names:
            continue
        target = entry.build()
        if target.support != "real":
            continue
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est = emc.log_partition(target, seed=seed, checks=False)
            t0 = time.perf_counter()
            _, info = tail_check(target, est.particles, est.weights,
                                 jax.random.fold_in(jax.random.key(seed), 7))
            dt = time.perf_counter() - t0
            a = np.array(info["exponents"])
            print(f"| {entry.name} | {seed} | {est.log_z - entry.log_z:+.3f} | {est.stderr:.3f} "
                  f"| {np.median(a):.2f} | {a.min():.2f} | {a.max():.2f} | "
                  f"{np.mean(a < 0.5):.2f} | {np.mean(a < 1):.2f} | {np.mean(a < 1.5):.2f} "
                  f"| {dt:.2f} |", flush=True)


if __name__ == "__main__":
    main()
