"""Energy's contract with the layers above it: the facts it hands kernels, and
the one mechanism (``energymc._util.static``) that makes functions ``jit`` static
arguments compared by value."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

import energymc as emc
from energymc._util import static


def _scaled(a, x):
    return x * jnp.sum(jnp.asarray(a))


def test_static_is_equal_by_value_and_shares_compiled_code():
    a, b, c = (static(_scaled, v) for v in (np.ones(3), np.ones(3), np.zeros(3)))
    assert a == b and hash(a) == hash(b) and a != c
    assert float(a(2.0)) == 6.0

    @partial(jax.jit, static_argnums=0)
    def apply(fn, x):
        return fn(x)

    with emc.compilations() as traced:
        apply(a, 1.0)
        apply(b, 1.0)  # equal by value: the same program
        apply(c, 1.0)  # another value: traced again (the count can grow)
    assert traced["apply"] == 2, traced
    # Array options of a kernel are made hashable the same way and read back as arrays.
    opts = dict(emc.kernels.resolve_options(emc.kernels.get("mala"),
                                            {"inverse_mass_matrix": np.arange(3.0)}))
    np.testing.assert_array_equal(np.asarray(opts["inverse_mass_matrix"]), np.arange(3.0))


def test_kernel_facts_of_an_energy():
    plain = emc.Energy(lambda x: jnp.sum(x**2), init=jnp.zeros(2))
    assert plain.kernel_facts() == ("real", None, None)
    ising = emc.models.Ising((2, 2), beta=0.3)
    facts = ising.kernel_facts()
    assert facts.support == "spin"
    np.testing.assert_array_equal(facts.colors, [0, 1, 1, 0])
    # The local field is the energy difference of flipping each site.
    z = jnp.asarray([1.0, -1.0, -1.0, -1.0])
    flips = jnp.where(jnp.eye(4, dtype=bool), -z, z)
    want = jax.jit(lambda f, z: jax.vmap(ising.flat_energy)(f) - ising.flat_energy(z))(flips, z)
    np.testing.assert_allclose(facts.flip_energy_delta(z), want, rtol=1e-5)
