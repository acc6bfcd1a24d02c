"""energymc._random.uniform: the fast uniforms of the discrete samplers' hot loops.

Distribution checks use literal keys and bounds from the known sampling
distribution of each statistic (a uniform's mean has standard error
sqrt(1/12/n); the Kolmogorov-Smirnov distance of n draws exceeds 1.63/sqrt(n)
with probability 1%); a negative control shows the same check rejects a
slightly wrong distribution.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from energymc._random import uniform

N = 1_000_000


def _ks_distance(u):
    u = np.sort(np.asarray(u, np.float64).ravel())
    n = len(u)
    grid = np.arange(1, n + 1) / n
    return max(np.max(grid - u), np.max(u - (grid - 1 / n)))


def test_uniform_values_moments_and_ks():
    u = uniform(jax.random.key(20261130), (N,))
    assert u.dtype == jnp.float32 and u.shape == (N,)
    assert float(u.min()) >= 0.0 and float(u.max()) < 1.0
    # every value is a multiple of 2**-24, as promised
    assert np.all(np.asarray(u, np.float64) * 2**24 % 1 == 0)
    se = np.sqrt(1 / 12 / N)
    assert abs(float(u.mean()) - 0.5) < 5 * se
    assert abs(float(jnp.var(u)) - 1 / 12) < 5 * np.sqrt(1 / 180 / N)
    assert _ks_distance(u) < 1.63 / np.sqrt(N)
    # negative control: u ** 1.01 (mean off by 0.0025) fails the same checks
    assert _ks_distance(u**1.01) > 1.63 / np.sqrt(N)


def test_uniform_keys_shapes_and_batching():
    key = jax.random.key(3)
    a = uniform(key, (4, 5))
    assert a.shape == (4, 5)
    np.testing.assert_array_equal(a, uniform(key, (4, 5)))  # deterministic
    # odd sizes, and neighbouring keys give unrelated streams
    b = uniform(jax.random.fold_in(key, 1), (N + 1,))
    c = uniform(jax.random.fold_in(key, 2), (N + 1,))
    assert abs(np.corrcoef(b, c)[0, 1]) < 5 / np.sqrt(N)
    # vmap over keys draws what a loop over the keys draws
    keys = jax.random.split(key, 3)
    np.testing.assert_array_equal(jax.vmap(lambda k: uniform(k, (7,)))(keys),
                                  jnp.stack([uniform(k, (7,)) for k in keys]))
    # a raw uint32[2] key works as a threefry key
    assert uniform(jax.random.PRNGKey(0), (3,)).shape == (3,)


@pytest.mark.parametrize("case", ["rbg", "bfloat16"])
def test_uniform_falls_back_to_jax_random(case):
    if case == "rbg":
        key = jax.random.key(0, impl="rbg")
        np.testing.assert_array_equal(uniform(key, (5,)), jax.random.uniform(key, (5,)))
    else:
        key = jax.random.key(0)
        u = uniform(key, (1000,), jnp.bfloat16)
        assert u.dtype == jnp.bfloat16 and float(u.max()) < 1.0
        np.testing.assert_array_equal(u, jax.random.uniform(key, (1000,), jnp.bfloat16))
