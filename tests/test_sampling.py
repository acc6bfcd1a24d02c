"""Deterministic tier of sampling: structure, determinism, compilation, bad input, NaN."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import energymc as emc
from energymc import sampling

SMALL = dict(chains=2, draws=50, warmup=50)


def quadratic(x):
    return 0.5 * jnp.sum(x**2)


# ------------------------------------------------------------------ structure
def test_pytree_target_draws_keep_structure_and_dtypes():
    def energy(p):
        return 0.5 * jnp.sum(p["a"] ** 2) + 0.5 * jnp.sum((p["b"] - 1.0) ** 2)

    init = {"a": jnp.zeros((2, 3)), "b": jnp.zeros(())}
    run = emc.sample(emc.Energy(energy, init=init), "nuts", seed=1, **SMALL)
    assert run.draws["a"].shape == (2, 50, 2, 3)
    assert run.draws["b"].shape == (2, 50)
    assert run.draws["a"].dtype == np.float32
    assert set(run.stats) >= {"lp", "acceptance_rate", "diverging", "energy", "step_size",
                              "n_steps", "tree_depth"}
    assert all(v.shape == (2, 50) for v in run.stats.values())
    idata = run.to_arviz()
    assert set(idata.posterior.data_vars) == {"a", "b"}
    assert idata.posterior["a"].shape == (2, 50, 2, 3)
    assert "lp" in idata.sample_stats and "diverging" in idata.sample_stats
    assert idata.attrs["method"] == "nuts" and "energymc_version" in idata.attrs
    # lp is the log-density -E, the ArviZ convention
    x = run.draws
    want = -jax.vmap(jax.vmap(energy))(x)
    np.testing.assert_allclose(run.stats["lp"], want, rtol=1e-5, atol=1e-5)


# mclmc's three-phase tuner compiles slowly; its run is in test_sampling_stats.
@pytest.mark.parametrize("method", ["hmc", "mala", "barker", "rwm", "langevin"])
def test_every_method_runs_and_reports_probabilities(method):
    run = emc.sample(emc.Energy(quadratic, init=jnp.zeros(2)), method, seed=0, **SMALL)
    acc = run.stats["acceptance_rate"]
    assert np.all((acc >= 0) & (acc <= 1))
    assert np.all(np.isfinite(run.flat_draws))
    assert run.stats["diverging"].dtype == bool
    assert "step_size" in run.warmup["params"]
    assert method in repr(run) and "<table>" in run._repr_html_()


# ---------------------------------------------------------------- determinism
def test_same_seed_same_draws_different_seed_different_draws():
    target = emc.Energy(quadratic, init=jnp.zeros(3))
    a = emc.sample(target, "mala", seed=11, **SMALL)
    b = emc.sample(target, "mala", seed=11, **SMALL)
    c = emc.sample(target, "mala", seed=12, **SMALL)
    np.testing.assert_array_equal(a.flat_draws, b.flat_draws)
    assert not np.allclose(a.flat_draws, c.flat_draws)
    d = emc.sample(target, "mala", seed=jax.random.key(11), **SMALL)
    np.testing.assert_array_equal(a.flat_draws, d.flat_draws)


def test_chunked_and_single_call_runs_give_the_same_draws():
    target = emc.Energy(quadratic, init=jnp.zeros(3))
    whole = emc.sample(target, "mala", seed=5, chains=2, draws=60, warmup=30)
    seen = []
    chunked = emc.sample(target, "mala", seed=5, chains=2, draws=60, warmup=30,
                         callback=lambda r: seen.append(r.num_draws))
    assert len(seen) > 1 and seen[-1] == 60
    np.testing.assert_allclose(whole.flat_draws, chunked.flat_draws, rtol=1e-6)


def test_chain_k_of_a_vectorised_run_equals_a_single_chain_run():
    target = emc.Energy(quadratic, init=jnp.zeros(3))
    many = emc.sample(target, "mala", seed=3, chains=3, draws=40, warmup=100)
    one = emc.sample(target, "mala", seed=3, chains=1, draws=40, warmup=100)
    # vmap may fuse float32 arithmetic differently: equal up to rounding.
    np.testing.assert_allclose(many.flat_draws[0], one.flat_draws[0], rtol=1e-4, atol=1e-5)


def test_second_call_with_same_shapes_does_not_retrace():
    traces = []

    def energy(x):
        traces.append(1)  # a Python side effect runs only while tracing
        return 0.5 * jnp.sum(x**2)

    target = emc.Energy(energy, init=jnp.zeros(2), check=False)
    emc.sample(target, "mala", seed=0, **SMALL)
    first = len(traces)
    emc.sample(target, "mala", seed=1, **SMALL)
    # A new Energy over the same function and shapes shares the compiled code.
    emc.sample(emc.Energy(energy, init=jnp.ones(2), check=False), "mala", seed=2, **SMALL)
    assert first > 0
    assert len(traces) == first


def test_new_params_of_a_from_params_energy_reuse_the_compiled_sampler():
    traces = []

    def energy(params, x):
        traces.append(1)  # runs only while tracing
        return 0.5 * jnp.sum((x / params["scale"]) ** 2)

    sds = {}
    for scale in (0.5, 3.0):
        target = emc.Energy.from_params(energy, {"scale": jnp.asarray(scale)}, jnp.zeros(2),
                                        check=False)
        run = emc.sample(target, "mala", seed=0, chains=4, draws=400, warmup=300)
        sds[scale] = float(np.std(run.flat_draws))
        if scale == 0.5:
            first = len(traces)
    assert first > 0 and len(traces) == first
    # The new value really reached the compiled code (a stale constant would
    # give sd 0.5 again). 3200 draws, ESS in the hundreds: sd within ~10%.
    assert abs(sds[0.5] / 0.5 - 1) < 0.15 and abs(sds[3.0] / 3.0 - 1) < 0.15


def test_progress_bar_runs_in_chunks(capsys):
    target = emc.Energy(quadratic, init=jnp.zeros(2))
    run = emc.sample(target, "mala", seed=0, chains=2, draws=40, warmup=20, progress=True)
    assert run.num_draws == 40
    assert "mala" in capsys.readouterr().err


# ----------------------------------------------------------- numerical trouble
# -inf is the same code path as NaN (both non-finite); it runs in the slow tier.
@pytest.mark.parametrize("bad", [pytest.param(jnp.nan, id="nan"),
                                 pytest.param(-jnp.inf, id="minus_inf", marks=pytest.mark.slow)])
def test_nan_energy_mid_run_is_a_counted_rejection_not_a_crash(bad):
    # Finite at the start; NaN (or -inf: unbounded below, log density +inf)
    # beyond x > 1.5, a region the chains will propose into.
    def energy(x):
        return jnp.where(x[0] > 1.5, bad, 0.5 * jnp.sum(x**2))

    target = emc.Energy(energy, init=jnp.zeros(2))
    for method in ("nuts", "mala", "rwm", "langevin"):
        run = emc.sample(target, method, seed=0, chains=2, draws=200, warmup=100)
        assert np.all(np.isfinite(run.flat_draws)), method
        assert run.flat_draws[..., 0].max() <= 1.5, method
        assert run.num_divergent > 0, method
        assert np.all(np.isfinite(run.stats["lp"])), method


def test_nan_gradient_is_rejected_too():
    # sqrt has an infinite gradient at 0 and NaN below: energy finite, gradient not.
    def energy(x):
        return 0.5 * jnp.sum(x**2) + jnp.where(x[0] < -1.0, jnp.sqrt(x[0] + 1.0), 0.0)

    run = emc.sample(emc.Energy(energy, init=jnp.zeros(2)), "mala", seed=1, chains=2,
                     draws=200, warmup=100)
    assert np.all(np.isfinite(run.flat_draws))
    assert run.flat_draws[..., 0].min() >= -1.0


# ------------------------------------------------------------------- bad input
@pytest.mark.parametrize("fn,init,match", [
    (lambda x: x**2, jnp.zeros(3), r"returned shape \(3,\).*forget to sum"),
    (lambda x: jnp.sum(jnp.log(x)), jnp.zeros(2), "at init is"),
    (lambda x: jnp.sum(jnp.abs(x) ** 0.5), jnp.zeros(2), "gradient of the energy at init"),
    (lambda x: (jnp.sum(x), 1.0), jnp.zeros(2), "one scalar"),
    (lambda x: x["missing"], {"a": jnp.zeros(2)}, "raised KeyError"),
    (lambda x: jnp.sum(x), None, "needs init="),
])
def test_bad_energy_is_reported_before_compiling(fn, init, match):
    with pytest.raises(emc.EnergyError, match=match):
        emc.Energy(fn, init=init)


def test_bad_sampling_arguments():
    target = emc.Energy(quadratic, init=jnp.zeros(2))
    with pytest.raises(emc.OptionError, match="valid methods are .*nuts"):
        emc.sample(target, "nutz")
    with pytest.raises(emc.OptionError, match="valid options for 'nuts' are: .*target_accept"):
        emc.sample(target, "nuts", stepsize=0.1)
    with pytest.raises(emc.OptionError, match="chains must be an integer >= 1"):
        emc.sample(target, chains=0)
    with pytest.raises(emc.OptionError, match="target_accept"):
        emc.sample(target, target_accept=1.5)
    with pytest.raises(emc.OptionError, match="adapt=False needs step_size"):
        emc.sample(target, "mala", adapt=False)
    with pytest.raises(emc.OptionError, match="seed must be an int"):
        emc.sample(target, seed="zero")
    with pytest.raises(emc.EnergyError, match="not a bare function"):
        emc.sample(quadratic)
    with pytest.raises(emc.EnergyError, match=r"with chains=4 they must be either"):
        emc.sample(target, chains=4, init=jnp.zeros((3, 2)))
    with pytest.raises(emc.OptionError, match="inverse_mass_matrix has shape"):
        emc.sample(target, "mala", adapt=False, step_size=0.1, inverse_mass_matrix=np.ones(5))
    for bad in (0.0, -0.1, 1.0, True, "3%", float("nan")):
        with pytest.raises(emc.OptionError, match="max_bias must be a number in"):
            emc.sample(target, "langevin", max_bias=bad)


def test_per_chain_init_is_used():
    target = emc.Energy(quadratic, init=jnp.zeros(2))
    starts = jnp.array([[5.0, 5.0], [-5.0, -5.0]])
    run = emc.sample(target, "rwm", chains=2, draws=5, warmup=0, adapt=False, step_size=1e-4,
                     init=starts, seed=0)
    np.testing.assert_allclose(run.flat_draws[:, 0], starts, atol=1e-2)


def test_chunking_prefers_divisors():
    assert sampling.chunk_lengths(1000, True) == [50] * 20
    assert sum(sampling.chunk_lengths(997, True)) == 997
    assert sampling.chunk_lengths(1000, False) == [1000]
