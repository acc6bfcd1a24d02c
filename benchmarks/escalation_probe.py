"""Which Student-t base should ``base="auto"`` escalate to? Scale factors on the TUNING half.

For each target, seed and factor ``f``: ``emc.log_partition(target, method=...)``
with ``energymc.logz._api.ESCALATION_SCALE = f`` (the Student-t base's scale
is ``f`` times the first run's weighted particle sd). The first run is the
same for every ``f`` (same key); only the second run changes. Prints per-run
error, stderr, z and flags, then a summary per factor.

    python benchmarks/escalation_probe.py --targets student50 --factors 0.6,1,1.5 --seeds 20
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

import numpy as np  # noqa: E402
import zoo  # noqa: E402

import energymc as emc  # noqa: E402
from energymc.logz import _api  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", default="student50")
    ap.add_argument("--method", default="ais")
    ap.add_argument("--factors", default="0.6,1,1.5")
    ap.add_argument("--seeds", type=int, default=20)
    args = ap.parse_args()
    names = args.targets.split(",")
    factors = [float(f) for f in args.factors.split(",")]
    rows = {}
    print("| target | seed | factor | err | stderr | z | reliable | escalated | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for entry in (e for e in zoo.TUNING if e.name in names):
        target = entry.build()
        for seed in range(args.seeds):
            for f in factors:
                _api.ESCALATION_SCALE = f
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    est = emc.log_partition(target, method=args.method, seed=seed,
                                            progress=False)
                s = time.perf_counter() - t0
                err = est.log_z - entry.log_z
                rows.setdefault((entry.name, f), []).append((err, est.stderr, est.reliable))
                print(f"| {entry.name} | {seed} | {f:g} | {err:+.3f} | {est.stderr:.3f} | "
                      f"{err / est.stderr:+.1f} | {est.reliable} | "
                      f"{'escalation' in est.info} | {s:.1f} |", flush=True)
    print()
    print("| target | factor | runs | median err | median abs err | mean z | >3 se | "
          ">3 se unflagged | flagged |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (name, f), r in rows.items():
        e, se, ok = (np.array(x) for x in zip(*r, strict=True))
        z = e / se
        print(f"| {name} | {f:g} | {len(r)} | {np.median(e):+.3f} | {np.median(abs(e)):.3f} | "
              f"{np.mean(z):+.2f} | {int(np.sum(abs(z) > 3))} | "
              f"{int(np.sum((abs(z) > 3) & ok))} | {int(np.sum(~ok))} |")


if __name__ == "__main__":
    main()
