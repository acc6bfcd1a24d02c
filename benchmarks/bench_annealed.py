"""Annealed Langevin with a convolutional energy on CPU: compiled loops against a host loop.

``energymc.learn.annealed_langevin(..., unroll=)``: ``False`` runs every level
and step inside one compiled program of ``lax.scan`` loops; ``True`` runs each
step as its own compiled call from a host loop (the default on CPU for an
energy with a convolution, because XLA:CPU runs convolutions inside a loop
several times slower). An 8x8 image energy (convolutions 1->16->32, 3x3,
swish, a linear read-out), 64 chains, 3 levels; the first call of each
compiles, later calls are timed separately.

    python benchmarks/bench_annealed.py [--steps 20] [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from energymc import learn


def conv_energy(params, x, sigma):
    y = jax.nn.swish(jax.lax.conv_general_dilated(x.reshape(1, 1, 8, 8), params["k1"], (1, 1),
                                                  "SAME"))
    y = jax.nn.swish(jax.lax.conv_general_dilated(y, params["k2"], (1, 1), "SAME"))
    return (y.reshape(-1) @ params["w"] + 0.5 * jnp.sum(x**2)) / sigma


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="steps per level")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 steps, 1 repeat (smoke test)")
    args = parser.parse_args(argv)
    if args.quick or os.environ.get("ENERGYMC_QUICK") == "1":
        args.steps, args.repeats = 2, 1
    rng = np.random.default_rng(0)
    params = {"k1": jnp.asarray(rng.normal(0, 0.3, (16, 1, 3, 3)), jnp.float32),
              "k2": jnp.asarray(rng.normal(0, 0.1, (32, 16, 3, 3)), jnp.float32),
              "w": jnp.asarray(rng.normal(0, 0.05, (32 * 64,)), jnp.float32)}
    sigmas = np.geomspace(1.0, 0.1, 3)
    x0 = jnp.asarray(rng.uniform(size=(64, 64)), jnp.float32)
    for rep in range(args.repeats):
        for unroll in (False, True):
            t0 = time.perf_counter()
            out = learn.annealed_langevin(jax.random.key(rep), conv_energy, params, x0, sigmas,
                                          steps_per_level=args.steps, step_lr=1e-3,
                                          unroll=unroll)
            jax.block_until_ready(out)
            print(f"call {rep}: {'host loop' if unroll else 'compiled loops'} "
                  f"{time.perf_counter() - t0:.2f} s ({3 * args.steps} steps, 64 chains; "
                  f"load {os.getloadavg()[0]:.1f})", flush=True)


if __name__ == "__main__":
    main()
