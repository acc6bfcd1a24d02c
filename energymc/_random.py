"""Uniform random numbers for the discrete samplers' hot loops (pure JAX).

A Gibbs sweep of a small binary model spends most of its time drawing one
uniform per unit. ``jax.random.uniform`` under the default
``jax_threefry_partitionable`` layout hashes once per output word and, with a
batch of keys (``vmap`` over chains or over ``learn``'s restarts), costs more
than the batch's size explains (CPU, JAX 0.10: 40 000 numbers take 82 us; the
same under ``vmap`` over 3 keys 275 us). Hashing a range of counters with
``threefry_2x32`` gives two words per hash and batches cleanly: 50 us, and
120 us for the 3 keys (``benchmarks/bench_random.py``). The numbers are still
Threefry-2x32 of a distinct ``(key, counter)`` per word, the generator JAX
itself uses.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.extend.random import threefry_2x32

__all__ = ["uniform"]

_BITS = 24  # a float32 holds every multiple of 2**-24 in [0, 1) exactly


def uniform(key: jax.Array, shape: tuple, dtype=jnp.float32) -> jax.Array:
    """Uniform float32 numbers on ``[0, 1)``, multiples of ``2**-24``, shaped ``shape``.

    The same distribution as ``jax.random.uniform(key, shape, dtype)`` for
    float32 (whose numbers are multiples of ``2**-23``), a different stream.
    Keys of another implementation (``rbg``) and dtypes other than float32
    go to ``jax.random.uniform``.

    Parameters
    ----------
    key
        A ``jax.random.key`` (or a raw ``uint32[2]`` key).
    shape
        Output shape.
    dtype
        Floating dtype of the output.
    """
    dtype = jnp.dtype(dtype)
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        threefry = str(jax.random.key_impl(key)) == "threefry2x32"
    else:  # a raw uint32[2] key is a threefry key
        threefry = key.shape[-1:] == (2,)
    if not threefry or dtype != jnp.float32:
        return jax.random.uniform(key, shape, dtype)
    n = math.prod(shape)
    # threefry_2x32 hashes the first half of the counters with the second.
    counts = jax.lax.iota(jnp.uint32, n + (n & 1))
    bits = threefry_2x32(jax.random.key_data(key), counts)[:n]
    u = (bits >> (32 - _BITS)).astype(jnp.float32) * jnp.float32(2.0**-_BITS)
    return u.reshape(shape)
