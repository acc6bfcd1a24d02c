"""Discrete kernels (gibbs, gwg, dmala) and exact enumeration.

Statistical tests follow BlackJAX's Monte Carlo standard-error check: after
R-hat and ESS pass, ``|estimate - truth| / (sd / sqrt(ESS))`` must be small
for every statistic; a deliberately broken sampler must fail the same check.
Every run uses a literal seed so a failure replays exactly. Compilation
dominates the cost here, so runs are shared between tests through fixtures.
"""

from __future__ import annotations

import dataclasses
import itertools
from functools import partial

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import energymc as emc
from energymc import kernels
from energymc._base import KernelFacts
from energymc.kernels import discrete

Z_MAX = 3.0
BURN = 100

# A frustrated 10-spin model with a field: couplings of both signs, so no
# symmetry makes a wrong sampler look right.
_RNG = np.random.default_rng(1234)
_COUP = np.triu(_RNG.normal(0.0, 0.35, (10, 10)), 1)
_COUP = jnp.asarray(_COUP + _COUP.T, dtype=jnp.float32)
_FIELD = jnp.asarray(_RNG.normal(0.0, 0.3, 10), dtype=jnp.float32)
_PROBE = jnp.asarray(_RNG.normal(0.0, 1.0, 10), dtype=jnp.float32)


def spin_glass(s):
    return -(0.5 * s @ _COUP @ s + _FIELD @ s)


def statistics(s):
    """Statistics checked by the z-tests: energy, a random projection, one correlation."""
    return jnp.stack([spin_glass(s), _PROBE @ s, s[0] * s[1]])


SPIN = emc.Energy(spin_glass, init=jnp.ones(10), support="spin")


def brute_force(fn, dim, support, f):
    vals = (0.0, 1.0) if support == "binary" else (-1.0, 1.0)
    states = np.array(list(itertools.product(vals, repeat=dim)), dtype=np.float32)
    lp = -np.array([float(fn(jnp.asarray(s))) for s in states])
    w = np.exp(lp - lp.max())
    fs = np.array([np.asarray(f(jnp.asarray(s))) for s in states])
    return np.log(w.sum()) + lp.max(), (w[:, None] * fs).sum(0) / w.sum()


def z_scores(run, truth, burn=BURN):
    """``(num_stats,)`` MCSE z-scores; asserts convergence first."""
    draws = jnp.asarray(run.flat_draws[:, burn:])
    vals = np.asarray(jax.vmap(jax.vmap(statistics))(draws))  # (chains, draws, k)
    z = []
    for k in range(vals.shape[-1]):
        x = vals[..., k]
        assert az.rhat(x) < 1.01, f"R-hat {az.rhat(x):.3f} for statistic {k}"
        ess = az.ess(x)
        assert ess > 400, f"ESS {ess:.0f} for statistic {k}"
        z.append((x.mean() - truth[k]) / (x.std() / np.sqrt(ess)))
    return np.abs(np.array(z))


@pytest.fixture(scope="module")
def truth():
    return np.asarray(emc.exact.expectation(SPIN, statistics))


# --------------------------------------------------------------------------
# Exact enumeration
# --------------------------------------------------------------------------
@pytest.mark.parametrize("support", ["binary", "spin"])
def test_exact_matches_brute_force(support):
    x0 = jnp.zeros(8) if support == "binary" else jnp.ones(8)
    fn = lambda x: spin_glass(jnp.concatenate([x, jnp.ones(2)]))
    target = emc.Energy(fn, init=x0, support=support)
    f = lambda x: jnp.stack([x[0], x[2] * x[5]])
    log_z, means = brute_force(fn, 8, support, f)
    np.testing.assert_allclose(emc.exact.log_partition(target), log_z, rtol=1e-5)
    # Small chunks exercise the running log-sum-exp across chunks.
    np.testing.assert_allclose(emc.exact.log_partition(target, chunk_size=16), log_z, rtol=1e-5)
    np.testing.assert_allclose(emc.exact.expectation(target, f), means, atol=1e-5)
    states, probs = emc.exact.probabilities(target)
    assert states.shape == (256, 8) and abs(probs.sum() - 1) < 1e-6


def test_exact_reuses_compiled_enumeration_for_new_params():
    # A from_params energy: the params are an argument of the compiled sum,
    # so a second value compiles nothing new, and that value is the one used.
    from energymc import exact

    def energy(params, s):
        return params["scale"] * spin_glass(s)

    f = lambda x: jnp.stack([x[0] * x[1]])
    sizes = []
    for scale in (1.0, 0.5):
        target = emc.Energy.from_params(energy, {"scale": jnp.asarray(scale)},
                                        init=jnp.ones(10), support="spin")
        log_z, means = brute_force(partial(energy, {"scale": scale}), 10, "spin", f)
        with emc.compilations() as traced:
            np.testing.assert_allclose(exact.log_partition(target), log_z, rtol=1e-5)
            np.testing.assert_allclose(exact.expectation(target, f), means, atol=1e-5)
        sizes.append(traced["_reduce"])
    assert sizes[1] == 0, sizes


def test_exact_refuses_large_or_continuous_targets():
    big = emc.Energy(lambda s: jnp.sum(s), init=jnp.ones(30), support="spin")
    with pytest.raises(emc.EnergyError, match="dim=30.*limited to dim <= 24"):
        emc.exact.log_partition(big)
    real = emc.Energy(lambda x: jnp.sum(x**2), init=jnp.zeros(3))
    with pytest.raises(emc.EnergyError, match="support='binary' or 'spin'"):
        emc.exact.log_partition(real)


def test_exact_ignores_nan_states():
    # A NaN energy reads as -inf log-density: that state has probability 0.
    fn = lambda x: jnp.where(jnp.sum(x) == 3.0, jnp.nan, -jnp.sum(x))
    target = emc.Energy(fn, init=jnp.zeros(3), support="binary")
    expected = np.log(sum(np.exp(k) * c for k, c in [(0, 1), (1, 3), (2, 3)]))
    np.testing.assert_allclose(emc.exact.log_partition(target), expected, rtol=1e-6)


# --------------------------------------------------------------------------
# Samplers against exact answers
# --------------------------------------------------------------------------
_CASES = {
    "gibbs-random": dict(method="gibbs", seed=100),
    "gibbs-systematic": dict(method="gibbs", scan="systematic", seed=101),
    "gwg": dict(method="gwg", num_updates=10, seed=102),
}


class _Runs(dict):
    """Runs made on first use and shared by the tests of this module."""

    def __missing__(self, name):
        self[name] = emc.sample(SPIN, chains=4, draws=1100, warmup=0, progress=False,
                                **_CASES[name])
        return self[name]


@pytest.fixture(scope="module")
def runs():
    return _Runs()


@pytest.mark.parametrize("case", ["gibbs-random", "gwg",
                                  pytest.param("gibbs-systematic", marks=pytest.mark.slow)])
def test_sampler_passes_mcse_test(case, runs, truth):
    run = runs[case]
    z = z_scores(run, truth)
    assert np.all(z < Z_MAX), f"{case}: z-scores {z}"
    assert run.num_divergent == 0
    assert set(np.unique(run.flat_draws)) <= {-1.0, 1.0}


def test_dmala_warmup_tunes_step_size():
    # The kernel driven by hand, one chain, one compilation: dual averaging
    # brings the acceptance near its 0.574 target.
    k = kernels.get("dmala")
    opts = kernels.resolve_options(k, {"support": "spin"})
    logp = lambda z: -spin_glass(z)
    warm = jax.jit(lambda key: k.warmup(key, jnp.ones(10), logp, 600, opts))(jax.random.key(5))
    acc = np.asarray(warm.info["acceptance_rate"])[300:].mean()
    assert 0.45 < acc < 0.7, acc
    assert 1e-4 <= float(warm.params["step_size"]) <= 1e3
    assert set(np.unique(np.asarray(warm.state.position))) <= {-1.0, 1.0}


@pytest.mark.slow
def test_dmala_passes_mcse_test(truth):
    run = emc.sample(SPIN, "dmala", chains=4, draws=1500, warmup=300, seed=7, thin=3,
                     progress=False)
    assert 0.45 < run.mean_acceptance < 0.7, run.mean_acceptance
    z = z_scores(run, truth, burn=0)
    assert np.all(z < Z_MAX), f"dmala: z-scores {z}"


@dataclasses.dataclass(frozen=True, eq=False)
class _UnadjustedGWG(discrete.GWGKernel):
    """Negative control: GWG's proposal accepted every time (no MH correction).

    Written for spin states (-1/+1), the only target it runs on: flipping a
    site negates it.
    """

    name: str = "gwg_unadjusted_test"

    def step(self, key, state, logdensity_fn, params, options):
        def one(state, k):
            z, _, g = state
            i = jax.random.categorical(k, 0.5 * g * (-z - z))
            z = z.at[i].set(-z[i])
            lp, grad = jax.value_and_grad(logdensity_fn)(z)
            return discrete.GradientState(z, lp, grad), None

        state, _ = jax.lax.scan(one, state, jax.random.split(key, 10))
        return state, {"lp": state.logdensity, "acceptance_rate": jnp.ones(()),
                       "diverging": jnp.zeros((), bool)}


def test_negative_controls_fail(runs, truth):
    # 1. A sampler without its Metropolis correction is caught.
    kernels.register(_UnadjustedGWG())
    bad = emc.sample(SPIN, "gwg_unadjusted_test", chains=4, draws=1100, warmup=0, seed=3,
                     progress=False)
    draws = jnp.asarray(bad.flat_draws[:, BURN:])
    vals = np.asarray(jax.vmap(jax.vmap(statistics))(draws))
    z = [abs(vals[..., k].mean() - truth[k]) / (vals[..., k].std() / np.sqrt(az.ess(vals[..., k])))
         for k in range(3)]
    assert max(z) > 2 * Z_MAX, f"unadjusted GWG not caught: {z}"
    # 2. The right sampler judged against the wrong temperature is caught.
    hot = emc.Energy(lambda s: 0.8 * spin_glass(s), init=jnp.ones(10), support="spin")
    hot_truth = np.asarray(emc.exact.expectation(hot, statistics))
    assert np.max(z_scores(runs["gibbs-random"], hot_truth)) > 2 * Z_MAX


# --------------------------------------------------------------------------
# Contract, errors and numerical trouble
# --------------------------------------------------------------------------
def test_same_seed_same_draws_and_arviz(runs):
    again = emc.sample(SPIN, "gwg", num_updates=10, chains=4, draws=1100, warmup=0, seed=102,
                       progress=False)
    np.testing.assert_array_equal(again.flat_draws, runs["gwg"].flat_draws)
    idata = runs["gibbs-random"].to_arviz()
    assert "lp" in idata.sample_stats and "diverging" in idata.sample_stats
    report = emc.diagnose(runs["gibbs-random"])
    assert report.numbers["divergences"] == 0


def test_nan_energy_is_counted_not_fatal():
    # The all-ones state has a NaN energy; chains must avoid it and say so.
    fn = lambda x: jnp.where(jnp.sum(x) >= 4.0, jnp.nan, -0.5 * jnp.sum(x))
    target = emc.Energy(fn, init=jnp.zeros(4), support="binary")
    for method in ("gibbs", "gwg"):
        run = emc.sample(target, method, chains=2, draws=200, warmup=0, seed=1, progress=False,
                         init=jnp.zeros(4))
        assert run.num_divergent > 0, method
        assert not np.any(run.flat_draws.sum(-1) >= 4), method
        assert set(np.unique(run.flat_draws)) <= {0.0, 1.0}, method
        assert np.all(np.isfinite(run.stats["lp"])), method


def test_wrong_support_is_a_clear_error():
    with pytest.raises(emc.OptionError, match="cannot sample a spin"):
        emc.sample(SPIN, "nuts", draws=10, warmup=10, progress=False)
    real = emc.Energy(lambda x: jnp.sum(x**2), init=jnp.zeros(3))
    with pytest.raises(emc.OptionError, match="cannot sample a continuous"):
        emc.sample(real, "gibbs", draws=10, warmup=10, progress=False)
    with pytest.raises(emc.OptionError, match="unknown option"):
        emc.sample(SPIN, "gibbs", step_size=0.1, draws=10, progress=False)


def test_discrete_kernels_registered():
    names = kernels.names("spin")
    assert {"gibbs", "gwg", "dmala"} <= set(names)
    assert "nuts" not in names
    assert "gibbs" not in kernels.names("real")


def test_kernel_by_hand_needs_support():
    k = kernels.get("gibbs")
    fn = lambda z: spin_glass(z)
    with pytest.raises(emc.OptionError, match="support='binary'/'spin'"):
        k.init(jax.random.key(0), jnp.ones(10), fn, {}, (("scan", "random"), ("support", None)))
    opts = kernels.resolve_options(k, {"support": "spin"})
    state = k.init(jax.random.key(0), jnp.ones(10), lambda z: -spin_glass(z), {}, opts)
    new, stats = jax.jit(lambda s: k.step(jax.random.key(1), s, lambda z: -spin_glass(z),
                                          {}, opts))(state)
    assert set(np.unique(new.position)) <= {-1.0, 1.0}
    assert {"lp", "acceptance_rate", "diverging"} <= set(stats)


class _NeverFlip:
    """A spin energy whose declared local field says every flip costs +inf
    (false, on purpose): a gibbs sweep that uses the field never flips."""

    colors = np.arange(6) % 2

    def __call__(self, s):
        return -jnp.sum(s[:-1] * s[1:])

    def flip_energy_delta(self, z):
        return jnp.full_like(z, jnp.inf)


def test_gibbs_is_given_the_local_field_by_the_energy():
    # The energy's facts reach the kernel through sample (bind_target), not by
    # looking behind the function; a log-density (sign flipped) offers none.
    fn = _NeverFlip()
    energy = emc.Energy(fn, init=jnp.ones(6), support="spin")
    facts = energy.kernel_facts()
    assert facts.support == "spin" and facts.flip_energy_delta is not None
    fast = emc.sample(energy, "gibbs", chains=2, draws=20, warmup=0, seed=0, progress=False)
    assert float(np.max(fast.stats["acceptance_rate"])) == 0.0
    # Negative control: the same function as a log-density has no local field,
    # so the generic sweep runs and spins flip.
    flipped = emc.Energy.from_logdensity(lambda s: -fn(s), init=jnp.ones(6), support="spin")
    assert flipped.kernel_facts().flip_energy_delta is None
    k = kernels.get("gibbs").bind_target(flipped.kernel_facts())
    opts = kernels.resolve_options(k, {})
    state = k.init(None, jnp.ones(6), flipped.flat_logdensity, {}, opts)
    steps = jax.jit(jax.vmap(lambda key: k.step(key, state, flipped.flat_logdensity, {}, opts)))
    _, stats = steps(jax.random.split(jax.random.key(0), 20))
    assert float(np.max(stats["acceptance_rate"])) > 0.0


def test_kernel_bound_to_facts_needs_no_support_option():
    k = kernels.get("gibbs")
    opts = kernels.resolve_options(k, {})
    logp = lambda z: -spin_glass(z)
    with pytest.raises(emc.OptionError, match="support='binary'/'spin'"):
        k.init(jax.random.key(0), jnp.ones(10), logp, {}, opts)
    bound = k.bind_target(KernelFacts("spin"))
    state = bound.init(jax.random.key(0), jnp.ones(10), logp, {}, opts)
    new, _ = jax.jit(lambda s: bound.step(jax.random.key(1), s, logp, {}, opts))(state)
    assert set(np.unique(new.position)) <= {-1.0, 1.0}
    assert k.facts is None  # the registered kernel is unchanged


def test_compilations_counts_traces_by_function():
    def double(x):
        return 2 * x

    f = jax.jit(double)
    with emc.compilations() as traced:
        f(jnp.ones(3))
        f(jnp.zeros(3))  # same shape: no new trace
    with emc.compilations() as again:
        f(jnp.ones(3))
        f(jnp.ones(4))  # a new shape traces again: the counter can see it
    assert traced["double"] == 1 and again["double"] == 1 and again.count >= 1
