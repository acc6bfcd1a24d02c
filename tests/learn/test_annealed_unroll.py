"""``annealed_langevin(unroll=)``: the host loop of compiled single steps runs the
same steps, with the same random numbers, as the one compiled program of loops.

``unroll=None`` picks the host loop for a convolutional energy on CPU (where
XLA runs convolutions inside a loop several times slower) and the compiled
loops otherwise; each default is checked to be bit-for-bit the path it picks,
and the two paths to agree to float32 rounding. Tiny sizes: a 4x4 image with
one 3x3 convolution, 3 levels of 5 steps, 6 chains.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from energymc import learn
from energymc.errors import OptionError

SIGMAS = np.array([1.0, 0.5, 0.25])


def conv_energy(params, x, sigma):
    """A 4x4 single-channel image through one 3x3 convolution, over sigma."""
    y = jax.lax.conv_general_dilated(x[None, None], params["k"][None, None], (1, 1), "SAME")
    return (0.5 * jnp.sum(x**2) + 0.1 * jnp.sum(jnp.tanh(y))) / sigma


def dense_energy(params, x, sigma):
    return 0.5 * jnp.sum(params["p"] * x**2) / sigma


def _run(fn, params, x0, unroll):
    return np.asarray(learn.annealed_langevin(jax.random.key(3), fn, params, x0, SIGMAS,
                                              steps_per_level=5, step_lr=0.05, unroll=unroll))


def test_host_loop_matches_compiled_loops_and_default_picks_it_for_convolutions():
    params = {"k": jnp.asarray(np.random.default_rng(0).normal(size=(3, 3)), jnp.float32)}
    x0 = jnp.asarray(np.random.default_rng(1).normal(size=(6, 4, 4)), jnp.float32)
    rolled = _run(conv_energy, params, x0, False)
    host = _run(conv_energy, params, x0, True)
    assert np.all(np.isfinite(host)) and not np.allclose(host, np.asarray(x0))
    np.testing.assert_allclose(host, rolled, rtol=1e-4, atol=1e-5)
    if jax.default_backend() == "cpu":
        np.testing.assert_array_equal(_run(conv_energy, params, x0, None), host)


@pytest.mark.slow
def test_dense_energy_stays_in_compiled_loops_by_default():
    params = {"p": jnp.asarray([1.0, 2.0])}
    x0 = jnp.asarray(np.random.default_rng(2).normal(size=(6, 2)), jnp.float32)
    rolled = _run(dense_energy, params, x0, False)
    np.testing.assert_array_equal(_run(dense_energy, params, x0, None), rolled)
    np.testing.assert_allclose(_run(dense_energy, params, x0, True), rolled, rtol=1e-5,
                               atol=1e-6)


def test_unroll_must_be_a_bool_or_none():
    with pytest.raises(OptionError, match="unroll"):
        learn.annealed_langevin(jax.random.key(0), dense_energy, {"p": jnp.ones(2)},
                                jnp.zeros((2, 2)), SIGMAS, unroll="yes")
