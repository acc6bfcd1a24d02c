"""Energy's contract with the layers above it: the facts it hands kernels, and
the one mechanism (``energymc._util.static``) that makes functions ``jit`` static
arguments compared by value."""

from __future__ import annotations

import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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


def test_energy_private_keywords_still_work_with_a_deprecation_warning():
    logp = lambda x: -0.5 * jnp.sum(x**2)
    new = emc.Energy.from_logdensity(logp, init=jnp.zeros(2))
    with pytest.warns(DeprecationWarning, match="from_logdensity"):
        old = emc.Energy(logp, init=jnp.zeros(2), _sign=-1.0)
    z = jnp.asarray([1.0, 2.0])
    assert float(old.flat_logdensity(z)) == float(new.flat_logdensity(z)) == -2.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the builders themselves warn nothing
        emc.Energy.from_logdensity(logp, init=jnp.zeros(2))


def test_renamed_model_arguments_keep_working_for_one_release():
    from energymc.models import RBM, Hopfield

    rbm = RBM(4, 3)
    new = rbm.init_params(seed=jax.random.key(0))
    with pytest.warns(DeprecationWarning, match="key= is deprecated.*use seed="):
        old = rbm.init_params(key=jax.random.key(0))
    np.testing.assert_array_equal(old["W"], new["W"])
    np.testing.assert_array_equal(rbm.init_params(0)["W"], new["W"])  # an int seed
    with pytest.warns(DeprecationWarning, match="num_chains= is deprecated.*use particles="):
        with pytest.raises(emc.EnergyError, match="particles must be an integer >= 2"):
            rbm.log_z_ais(new, seed=0, num_chains=1)  # refused before anything compiles
    with pytest.raises(emc.OptionError, match="pass particles= only"):
        rbm.log_z_ais(new, seed=0, num_chains=10, particles=10)
    net = Hopfield(np.sign(np.random.default_rng(0).normal(size=(2, 16))))
    probe = net.patterns[:1]
    with pytest.warns(DeprecationWarning, match="use seed="):
        old = net.recall(probe, beta=2.0, key=jax.random.key(3), max_sweeps=3)
    np.testing.assert_array_equal(old, net.recall(probe, beta=2.0, seed=jax.random.key(3),
                                                  max_sweeps=3))
