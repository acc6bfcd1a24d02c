"""Peak memory of a streamed run (``sample(store=DIR)``) against draws kept in memory.

Every measurement is a new Python process (its own ``ru_maxrss``, the peak
resident set size, read by the child at its end), so nothing carries over.
Each child samples a ``dim``-d Gaussian with MALA (4 chains), then asks for
what a user looks at first: ``repr(run)`` (acceptance, divergences, per-chain
table) and the per-variable means of the notebook view, then
``run.summary()`` (ArviZ: mean, sd, HDI, MCSE, ESS, R-hat of every
coordinate), ``run.diagnose()`` (the same checks through
:func:`energymc.diagnose`) and ``run.to_arviz()`` with one coordinate's mean
and the last 100 draws; the peak is read after each step (``ru_maxrss`` only
grows). It does this
for ``N`` and ``10 N`` draws, with the draws streamed to a store and kept in
memory; the figure of interest is the growth of the peak from ``N`` to
``10 N``.

Usage::

    CI=true nice -n 10 python benchmarks/bench_streaming.py --draws 10000 --dim 100
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, resource, sys, time
import jax.numpy as jnp
import energymc as emc

mode, draws, dim, directory = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
target = emc.Energy(lambda x: 0.5 * jnp.sum(x**2), init=jnp.zeros(dim), name="gauss")
t0 = time.perf_counter()
kwargs = {"store": directory} if mode == "store" else {"callback": lambda run: None}
run = emc.sample(target, "mala", chains=4, warmup=200, draws=draws, seed=0, **kwargs)
t1 = time.perf_counter()
text = repr(run)
rows = run._variable_rows()
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
peak_run_mb = peak()  # sampling, repr and the notebook view's per-variable means
table = run.summary()
peak_summary_mb = peak()
t2 = time.perf_counter()
verdict = run.diagnose()
peak_diagnose_mb = peak()
t3 = time.perf_counter()
data = run.to_arviz()  # lazy for a stored run: a user's first looks at it follow
first = float(data.posterior["x"].isel(x_dim_0=0).mean())  # one coordinate, all draws
window = data.posterior["x"].isel(draw=slice(-100, None)).values  # the last 100 draws
t4 = time.perf_counter()
print(json.dumps({"mode": mode, "draws": draws, "peak_run_mb": peak_run_mb,
                  "peak_mb": peak_summary_mb, "peak_diagnose_mb": peak_diagnose_mb,
                  "peak_arviz_mb": peak(), "sample_s": t1 - t0, "report_s": t2 - t1,
                  "diagnose_s": t3 - t2, "arviz_s": t4 - t3,
                  "rows": len(table), "max_rhat": float(table["r_hat"].max()),
                  "diagnose_max_rhat": verdict.numbers["max_rhat"]}))
"""


def measure(mode: str, draws: int, dim: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "ENERGYMC_COMPILATION_CACHE": "0", "CI": "true"}
        proc = subprocess.run([sys.executable, "-c", CHILD, mode, str(draws), str(dim),
                               os.path.join(tmp, "run")], env=env, capture_output=True,
                              text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"child {mode} {draws} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--draws", type=int, default=10_000, help="N: the runs take N and 10 N")
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--modes", nargs="+", default=["store", "memory"])
    args = p.parse_args(argv)
    results = {}
    for mode in args.modes:
        for draws in (args.draws, 10 * args.draws):
            r = measure(mode, draws, args.dim)
            results[(mode, draws)] = r
            print(json.dumps(r), flush=True)
    print(f"\n4 chains x {args.dim}-d, MALA; peak RSS in MB (ru_maxrss of each process); "
          f"the draws of 10 N are {4 * 10 * args.draws * args.dim * 4 / 2**20:.0f} MB\n")
    print(f"| run | until | {args.draws:,} draws | {10 * args.draws:,} draws | growth |")
    print("|---|---|---|---|---|")
    for mode in args.modes:
        a, b = results[(mode, args.draws)], results[(mode, 10 * args.draws)]
        label = "streamed (`store=`)" if mode == "store" else "in memory"
        for key, until in (("peak_run_mb", "sample + repr"), ("peak_mb", "+ summary()"),
                           ("peak_diagnose_mb", "+ diagnose()"),
                           ("peak_arviz_mb", "+ to_arviz(), a coordinate's mean, 100 draws")):
            print(f"| {label} | {until} | {a[key]:.0f} | {b[key]:.0f} | "
                  f"{b[key] - a[key]:+.0f} |")
    print("\nseconds (sampling / repr + summary + variable means / diagnose / to_arviz):")
    for (mode, draws), r in results.items():
        print(f"  {mode:6s} {draws:>9,}: {r['sample_s']:.1f} / {r['report_s']:.1f} / "
              f"{r['diagnose_s']:.1f} / {r['arviz_s']:.1f}")


if __name__ == "__main__":
    main()
