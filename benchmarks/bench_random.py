"""Uniform random numbers: ``energymc._random.uniform`` against ``jax.random.uniform``.

Both draw the uniforms of 5 block-Gibbs sweeps of 100 chains of the digits
RBM (5 x 100 x 80 float32 numbers) from a fresh ``fold_in`` key, 5000 times in
one compiled ``lax.scan``; also under ``vmap`` over 3 keys, as ``learn``'s
restarts draw them. Fastest of ``--repeats`` timed calls (compiled), in one
process; prints microseconds per draw and the ratio.

Run::

    python benchmarks/bench_random.py
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

from energymc._random import uniform

SHAPE = (5, 100, 80)
DRAWS = 5000


def _loop(draw):
    def run(key):
        def body(total, i):
            return total + jnp.sum(draw(jax.random.fold_in(key, i), SHAPE)), None

        return jax.lax.scan(body, jnp.zeros((), jnp.float32), jnp.arange(DRAWS))[0]

    return run


def _time(fn, arg, repeats):
    jax.block_until_ready(fn(arg))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(arg))
        best = min(best, time.perf_counter() - t0)
    return best / DRAWS * 1e6


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    jax_uniform = _loop(lambda k, s: jax.random.uniform(k, s))
    ours = _loop(uniform)
    key, keys = jax.random.key(1), jax.random.split(jax.random.key(1), 3)
    print(f"{SHAPE} float32 uniforms per draw, {DRAWS} draws; jax {jax.__version__} on "
          f"{jax.default_backend()}; us per draw (fastest of {args.repeats})")
    for label, a, b, arg in [("one key", jax.jit(jax_uniform), jax.jit(ours), key),
                             ("vmap over 3 keys", jax.jit(jax.vmap(jax_uniform)),
                              jax.jit(jax.vmap(ours)), keys)]:
        t_jax, t_ours = _time(a, arg, args.repeats), _time(b, arg, args.repeats)
        print(f"  {label:18s} jax.random.uniform {t_jax:7.1f}   energymc._random.uniform "
              f"{t_ours:7.1f}   ratio {t_jax / t_ours:.2f}x", flush=True)


if __name__ == "__main__":
    main()
