"""Where tuned draws part between device counts on a CPU (issue 15; docs/devices.md).

Runs in one process with the CPU split into 4 devices and prints, for a 3-d
quadratic target with a tuned warmup (20 steps, seed 1), which runs equal
which bit for bit: one device against a mesh, meshes of 2 and 4 devices
against each other, and on one device a run of k chains against the first k
chains of a larger run. (How the
dual-averaging rewrite was found: ``jax.jit(...).lower(...).compile().as_text()``
of the whole-run program with 1 and with 2 devices, diffed.)

Usage::

    python benchmarks/probe_device_rounding.py
    XLA_FLAGS=--xla_disable_hlo_passes=algsimp python benchmarks/probe_device_rounding.py
"""

from __future__ import annotations

import os
import sys

os.environ["XLA_FLAGS"] = ("--xla_force_host_platform_device_count=4 "
                           + os.environ.get("XLA_FLAGS", ""))
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import energymc as emc  # noqa: E402


def quad(x):
    return 0.5 * jnp.sum(x ** 2 * jnp.arange(1.0, 4.0))


def main():
    target = emc.Energy(quad, init=jnp.zeros(3))
    opts = dict(draws=10, warmup=20, seed=1, progress=False)
    same = lambda a, b: bool(np.array_equal(a.flat_draws, b.flat_draws))  # noqa: E731
    for kernel in ("mala", "nuts"):
        for chains in (5, 8, 16):
            runs = {nd: emc.sample(target, kernel, devices=nd, chains=chains, **opts)
                    for nd in (1, 2, 4)}
            gap = float(np.max(np.abs(runs[2].flat_draws - runs[1].flat_draws)))
            print(f"{kernel} {chains:2d} chains: 1 == 2 devices {same(runs[1], runs[2])}, "
                  f"1 == 4 {same(runs[1], runs[4])}, 2 == 4 {same(runs[2], runs[4])}, "
                  f"max |2 - 1| {gap:.1e}", flush=True)
        small = emc.sample(target, kernel, devices=1, chains=3, **opts)
        large = emc.sample(target, kernel, devices=1, chains=5, **opts)
        print(f"{kernel} one device: 3 chains == first 3 of 5 "
              f"{bool(np.array_equal(small.flat_draws, large.flat_draws[:3]))}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
