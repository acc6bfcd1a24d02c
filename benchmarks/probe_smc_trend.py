"""Default SMC's error against its final weights' radius trend, on zoo targets.

For each target and seed: ``log_partition(target, method="smc", seed=s)``,
its error, stderr and flag, and ``radius_trend(est.particles, est.weights)``
(the outskirts check's statistic, read here on every run, flagged or not).
``--ais-particles 256,1024`` adds, for comparison, the trend of a short AIS
pass from SMC's own base (one replicate of that many particles).
The table in ``benchmarks/RESULTS.md`` ("Outskirts check for SMC") came from::

    python benchmarks/probe_smc_trend.py --targets banana2,funnel2 --first-seed 10 \
        --seeds 40 --ais-particles 256,1024 --out bf.json
    python benchmarks/probe_smc_trend.py --targets gaussian10,gaussian100,mixture2d2,\
mixture10d3,student2,student50,wells2,wells32,ring2,ring10,banana50,funnel20 --out rest.json
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

import zoo  # noqa: E402

import energymc as emc  # noqa: E402
from energymc.logz._outskirts import radius_trend  # noqa: E402


def probe(entry, seed, ais_particles):
    """One SMC run's record, plus the trends of short AIS passes from its base."""
    target = entry.build()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        est = emc.log_partition(target, method="smc", seed=seed)
        row = {"target": entry.name, "seed": seed, "err": est.log_z - entry.log_z,
               "stderr": est.stderr, "reliable": est.reliable,
               "smc_s": time.perf_counter() - t0,
               "smc_trend": radius_trend(est.particles, est.weights)}
        for n in ais_particles:
            ais = emc.log_partition(target, method="ais", base=est.info["reference"],
                                    replicates=1, checks=False, seed=10**6 + seed,
                                    particles=n)
            row[f"trend{n}"] = radius_trend(ais.particles, ais.weights)
    row["silent"] = bool(row["reliable"] and abs(row["err"]) > 3 * row["stderr"])
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--targets", required=True, help="comma-separated zoo names")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--ais-particles", default="", help="e.g. 256,1024 (none by default)")
    ap.add_argument("--out", default=None, help="write the records here (JSON)")
    args = ap.parse_args()
    sizes = [int(n) for n in args.ais_particles.split(",") if n]
    rows = []
    for name in args.targets.split(","):
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            rows.append(probe(zoo.by_name(name), seed, sizes))
            print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in rows[-1].items()), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
