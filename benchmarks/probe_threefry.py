"""Threefry written out (``energymc._threefry``) in ``sample`` and ``log_partition``: A/B.

"on" is the library as it is (``sample`` and ``log_partition`` compile their
runs inside ``unrolled_threefry()``); "off" sets ``energymc._threefry._PRIM =
None``, which makes the swap a no-op: JAX's CPU lowering, a loop per hash.
Each side in a fresh process, the persistent compilation cache off; prints
first-call and fastest-repeat times. Run the sides alternately:

    for m in off on off on; do python benchmarks/probe_threefry.py $m sample; done
    for m in off on; do python benchmarks/probe_threefry.py $m logz gaussian10,mixture2d2,ising4x4; done

``sample``: a 20-d Gaussian (scales 0.1..1), 4 chains, 1,000 warmup + 2,000
draws, seeds 0-3. ``logz``: default ``log_partition`` on zoo targets, seeds 0-2.
"""

import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("ENERGYMC_COMPILATION_CACHE", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import energymc as emc  # noqa: E402
import energymc._threefry as threefry  # noqa: E402


def timed(fn, repeats):
    times, out = [], []
    for s in range(repeats):
        t0 = time.perf_counter()
        out.append(fn(s))
        times.append(time.perf_counter() - t0)
    return times, out


def main(side: str, job: str, targets: str = "gaussian10,mixture2d2,ising4x4") -> None:
    if side == "off":
        threefry._PRIM = None
    parts = []
    if job == "sample":
        scales = jnp.linspace(0.1, 1.0, 20)
        t = emc.Energy(lambda x: 0.5 * jnp.sum((x / scales) ** 2), init=jnp.zeros(20))
        for method, kw in [("mala", dict(adapt=False, step_size=0.05)), ("nuts", {}),
                           ("hmc", {})]:
            times, _ = timed(lambda s, m=method, kw=kw: np.asarray(emc.sample(
                t, m, chains=4, draws=2000, warmup=1000, seed=s, progress=False,
                **kw).flat_draws), 4)
            parts.append(f"{method}: first {times[0]:.2f}s repeat min {min(times[1:]):.4f}s")
    else:
        import zoo
        warnings.simplefilter("ignore")
        for name in targets.split(","):
            entry = zoo.by_name(name)
            t = entry.build()
            times, ests = timed(lambda s, t=t: emc.log_partition(t, seed=s, progress=False), 3)
            errs = [round(e.log_z - entry.log_z, 3) for e in ests]
            parts.append(f"{name}: first {times[0]:.2f}s repeat {min(times[1:]):.2f}s errs {errs}")
    print(side, " | ".join(parts), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
