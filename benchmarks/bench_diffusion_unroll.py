"""Diffusion samplers with ``unroll=``: wall time per call against the unroll factor.

Two cases (``--case``): ``digits``, the digits row's network of
``bench_modern.py`` (``mlp_energy(64, width=256)``, 360 chains), and
``ring``, the 2-d ring's (``mlp_energy(2, width=128)``, 64 chains), where a
step does little work and the loop's own overhead weighs more. Untrained
networks: the cost of a step does not depend on the weights.
For each unroll factor it compiles once (the first call, timed apart), then
times ``--repeats`` calls with new keys and reports the median, for:

* ``sde``: ``emc.diffusion.sample``, reverse SDE, 200 levels (the bench's);
* ``pc-mala``: the same with a MALA corrector (1 step per level);
* ``annealed``: ``emc.diffusion.annealed_mcmc`` (MALA), 10 levels x 20 steps.

It also checks that every unroll factor gives the draws of ``unroll=1`` for
the same key (max absolute difference printed).

    nice -n 10 python benchmarks/bench_diffusion_unroll.py            # ~5 min, 2 busy cores
    nice -n 10 python benchmarks/bench_diffusion_unroll.py --case ring
    nice -n 10 python benchmarks/bench_diffusion_unroll.py --quick
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np

import energymc as emc

D = emc.diffusion


def timed(fn, repeats):
    t = time.perf_counter()
    first = fn(0)
    compile_s = time.perf_counter() - t
    times = []
    for r in range(repeats):
        t = time.perf_counter()
        fn(r + 1)
        times.append(time.perf_counter() - t)
    return first, compile_s, float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer points and levels")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--unroll", default="1,2,4,8", help="comma-separated factors")
    parser.add_argument("--case", choices=["digits", "ring"], default="digits")
    args = parser.parse_args()
    quick = args.quick or os.environ.get("ENERGYMC_QUICK") == "1"
    dim, width, n = (64, 256, 360) if args.case == "digits" else (2, 128, 64)
    steps, levels, per_level = (40, 4, 5) if quick else (200, 10, 20)
    n = min(n, 64) if quick else n
    factors = [int(u) for u in args.unroll.split(",")]
    sch = D.ve(0.1, 8.0)
    data = np.random.default_rng(0).uniform(size=(256, dim))
    net = D.mlp_energy(dim, jax.random.key(0), schedule=sch, data=data, width=width)
    x0 = 8.0 * np.asarray(jax.random.normal(jax.random.key(1), (n, dim)))
    sig = np.geomspace(8.0, 0.1, levels)
    cases = {
        "sde": lambda u, s: D.sample(jax.random.key(s), net, (n, dim), sch, steps=steps,
                                     unroll=u).x,
        "pc-mala": lambda u, s: D.sample(jax.random.key(s), net, (n, dim), sch, steps=steps,
                                         corrector="mala", unroll=u).x,
        "annealed": lambda u, s: D.annealed_mcmc(jax.random.key(s), net, x0, sig,
                                                 steps_per_level=per_level, unroll=u).x,
    }
    print(f"jax {jax.__version__} ({jax.default_backend()}), {os.cpu_count()} CPU cores, "
          f"case {args.case}: d={dim}, width {width}, n={n}, sde/pc steps={steps}, "
          f"annealed {levels} levels x {per_level} steps, "
          f"median of {args.repeats} calls after the first")
    print("| sampler | unroll | first call s | s per call | vs unroll=1 "
          "| max abs difference from unroll=1 |")
    print("|---|---|---|---|---|---|")
    for name, fn in cases.items():
        base, base_s = None, None
        for u in factors:
            first, compile_s, per = timed(lambda s, u=u: fn(u, s), args.repeats)
            if base is None:
                base, base_s = first, per
            diff = float(np.max(np.abs(first - base)))
            print(f"| {name} | {u} | {compile_s:.1f} | {per:.3f} | {per / base_s:.2f}x | "
                  f"{diff:.2g} |", flush=True)


if __name__ == "__main__":
    main()
