"""First call in a fresh process, with JAX's persistent compilation cache off, cold and warm.

Every measurement is a new Python process, so nothing compiled in memory
carries over; only the cache directory does. Per repeat, with a new empty
temporary cache directory:

* ``off``  -- ``ENERGYMC_COMPILATION_CACHE=0`` (what every process paid before),
* ``cold`` -- the empty directory (compiles, and writes the entries),
* ``warm`` -- the same directory again (reads the entries back).

Workloads:

* ``demo``  -- the whole ``energymc demo --quick`` command (banana and funnel,
  NUTS, 4 chains; import, sampling, diagnosis, netCDF and plots): wall time of
  the process.
* ``gauss100`` -- ``emc.sample`` of a 100-d correlated Gaussian with NUTS
  (4 chains), timed inside the child: import, first call, and a second call
  of the same model in the same process (what the run costs with nothing to
  compile, for reference).
* ``logz10`` -- ``emc.log_partition`` (defaults: AIS, 4 replicates, checks)
  of a 10-d correlated Gaussian away from the origin, timed like ``gauss100``;
  ``--base gaussian`` times the old default base (no mode fit) instead.

Usage::

    CI=true nice -n 10 python benchmarks/bench_first_call.py --repeats 3
    python benchmarks/bench_first_call.py --workloads gauss100 --progress
    python benchmarks/bench_first_call.py --workloads logz10 --base gaussian

``--progress`` turns the progress bar on in the children: warmup then calls
back to the host (``jax.debug.callback``), and JAX does not cache programs
with host callbacks, so only the draw loops are reused.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

MODES = ("off", "cold", "warm")


def _child(args) -> None:
    """Runs in the child process: time import, and the workload's first and second call."""
    t0 = time.perf_counter()
    import jax.numpy as jnp
    import numpy as np

    import energymc as emc

    t_import = time.perf_counter() - t0
    dim = 100 if args.child == "gauss100" else 10
    rng = np.random.default_rng(0)
    a = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    prec = jnp.asarray(np.eye(dim) + a @ a.T, dtype=jnp.float32)
    if args.child == "gauss100":
        target = emc.Energy(lambda x: 0.5 * x @ (prec @ x), init=jnp.zeros(dim))
        kw = dict(chains=4, draws=args.draws, warmup=args.draws, seed=0, progress=args.progress)
        # np.asarray blocks until the draws exist.
        call = lambda: {"draws": np.asarray(emc.sample(target, "nuts", **kw).draws)}  # noqa: E731
    else:
        mean = jnp.asarray(rng.uniform(-2.0, 2.0, dim), dtype=jnp.float32)
        target = emc.Energy(lambda x: 0.5 * (x - mean) @ (prec @ (x - mean)),
                            init=jnp.zeros(dim))
        base = None if args.base == "default" else args.base
        call = lambda: {"log_z": emc.log_partition(  # noqa: E731
            target, base=base, seed=0, progress=args.progress).log_z}
    times = []
    for _ in range(2):
        t1 = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - t1)
    extra = {k: v for k, v in out.items() if k == "log_z"}
    print(json.dumps({"import": t_import, "first": times[0], "second": times[1], **extra,
                      "cache_dir": emc.compilation_cache_dir()}))


def _env(mode: str, cache: str) -> dict:
    env = dict(os.environ)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    env["JAX_PLATFORMS"] = env.get("JAX_PLATFORMS", "cpu")
    env["ENERGYMC_COMPILATION_CACHE"] = "0" if mode == "off" else cache
    return env


def _cache_size(cache: str) -> tuple[int, float]:
    """``(entries, MB)`` of a cache directory."""
    names = [n for n in os.listdir(cache) if n.endswith("-cache")] if os.path.isdir(cache) else []
    size = sum(os.path.getsize(os.path.join(cache, n)) for n in names)
    return len(names), size / 1e6


def _measure(workload: str, mode: str, cache: str, args, scratch: str) -> dict:
    env = _env(mode, cache)
    if workload == "demo":
        cmd = [sys.executable, "-m", "energymc.cli", "demo", "--quick",
               "--out", os.path.join(scratch, "demo-out")]
        cmd.append("--progress" if args.progress else "--no-progress")
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
        return {"total": time.perf_counter() - t0}
    cmd = [sys.executable, os.path.abspath(__file__), "--child", workload,
           "--draws", str(args.draws), "--base", args.base]
    cmd += ["--progress"] if args.progress else []
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["total"] = time.perf_counter() - t0
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workloads", nargs="+", default=["demo", "gauss100"],
                   choices=["demo", "gauss100", "logz10"])
    p.add_argument("--base", default="default", choices=["default", "gaussian"],
                   help="logz10: base=None (the default) or the old default 'gaussian'")
    p.add_argument("--draws", type=int, default=200, help="gauss100: warmup = draws")
    p.add_argument("--progress", action="store_true", help="progress bars on in the children")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        _child(args)
        return

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} (a shared machine inflates every figure)")
    for workload in args.workloads:
        results = {m: [] for m in MODES}
        entries = []
        for r in range(args.repeats):
            scratch = tempfile.mkdtemp(prefix="emc-first-call-")
            cache = os.path.join(scratch, "cache")
            try:
                for mode in MODES:
                    res = _measure(workload, mode, cache, args, scratch)
                    results[mode].append(res)
                    print(f"  {workload} repeat {r} {mode:4s}: "
                          + ", ".join(f"{k} {v:.2f}s" for k, v in res.items()
                                      if isinstance(v, float)), flush=True)
                entries.append(_cache_size(cache))
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        key = "total" if workload == "demo" else "first"
        med = {m: statistics.median(x[key] for x in results[m]) for m in MODES}
        n, mb = entries[-1]
        print(f"{workload}: median {key} (s) off {med['off']:.2f} | cold {med['cold']:.2f} | "
              f"warm {med['warm']:.2f}; off/warm {med['off'] / med['warm']:.2f}x, "
              f"cold/warm {med['cold'] / med['warm']:.2f}x; cache {n} entries, {mb:.1f} MB")
        if workload != "demo":
            second = statistics.median(x["second"] for m in MODES for x in results[m])
            print(f"{workload}: second call in the same process (nothing to compile) "
                  f"median {second:.2f}s")


if __name__ == "__main__":
    main()
