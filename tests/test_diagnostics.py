"""diagnose(): it must pass good chains and name the problem in bad ones."""

import jax.numpy as jnp
import numpy as np
import pytest

import energymc as emc
from energymc import diagnostics
from energymc.diagnostics import Thresholds


def _data(posterior, sample_stats=None, **attrs):
    """ArviZ data (either generation) from arrays, as a user with foreign draws makes it."""
    return diagnostics.from_arrays(posterior, sample_stats, **attrs)


def _iid(seed, chains=4, draws=1000, dim=3):
    return np.random.default_rng(seed).normal(size=(chains, draws, dim))


def _target():
    return emc.Energy(lambda x: 0.5 * jnp.sum(x**2), init=jnp.zeros(2))


def test_good_chains_pass_and_bad_chains_are_named_with_a_fix():
    good = emc.sample(_target(), "mala", chains=4, draws=1000, warmup=500, seed=0)
    d = emc.diagnose(good)
    assert d.ok and not d.problems and bool(d)
    assert {"r_hat", "ess_bulk", "ess_tail", "mcse_mean"} <= set(d.table.columns)

    # Negative control: chains started far apart that barely move.
    starts = jnp.array([[-5.0, -5.0], [5.0, 5.0], [0.0, 5.0], [5.0, 0.0]])
    stuck = emc.sample(_target(), "rwm", chains=4, draws=200, warmup=0, adapt=False,
                       step_size=1e-3, init=starts, seed=0)
    bad = emc.diagnose(stuck)
    assert not bad.ok
    text = " ".join(bad.problems)
    assert "R-hat" in text and "Effective sample size" in text
    assert "Run longer" in text  # each problem carries a fix
    assert "problem(s)" in repr(bad) and "<ul>" in bad._repr_html_()
    assert "R-hat is" in bad.problems[0] and "x[" in bad.problems[0]  # names the variables


def test_single_chain_and_inference_data_input():
    run = emc.sample(_target(), "mala", chains=1, draws=300, warmup=300, seed=1)
    d = emc.diagnose(run.to_arviz())
    assert any("Only one chain" in p for p in d.problems)
    assert np.isnan(d.numbers["max_rhat"])


def test_thresholds_are_configurable():
    run = emc.sample(_target(), "mala", chains=4, draws=300, warmup=300, seed=2)
    strict = emc.diagnose(run, thresholds=Thresholds(min_ess_per_chain=10_000))
    assert any("Effective sample size" in p for p in strict.problems)


# ------------------------------------------------------ parallel tempering trips
def _recount_round_trips(from_hot, label_history):
    """Round trips recounted in plain Python from the rung labels after each round.

    ``from_hot[label]``: the replica visited the hottest rung since it last
    left beta = 1, at the start of the history.
    """
    from_hot = dict(enumerate(bool(f) for f in from_hot))
    trips = 0
    for labels in label_history:
        cold, hot = int(labels[-1]), int(labels[0])
        trips += from_hot[cold]
        from_hot[cold] = False
        from_hot[hot] = True
    return trips


def test_pt_round_trips_match_a_recount_from_the_labels():
    import jax

    target = emc.Energy(lambda x: 0.5 * jnp.sum((x / 0.5) ** 2), init=jnp.zeros(3))
    kernel = emc.kernels.get("pt")
    opts = emc.kernels.resolve_options(kernel, {"replicas": 5, "support": "real"})
    warm = kernel.warmup(jax.random.key(0), jnp.zeros(3), target.flat_logdensity, 200, opts)
    state = warm.state
    start = np.asarray(state.from_hot)
    step = jax.jit(lambda k, s: kernel.step(k, s, target.flat_logdensity, warm.params, opts))
    labels, flags = [], []
    for i in range(300):
        state, stats = step(jax.random.key(i), state)
        assert sorted(np.asarray(state.labels).tolist()) == list(range(5))
        labels.append(np.asarray(state.labels))
        flags.append(int(stats["round_trips"]))
    assert sum(flags) > 5  # the ladder mixes, so the comparison means something
    assert sum(flags) == _recount_round_trips(start, labels)


def test_diagnose_flags_a_ladder_that_never_carries_states_across():
    # 60-d narrow Gaussian: two rungs at beta 1e-4 and 1 never swap.
    target = emc.Energy(lambda x: 0.5 * jnp.sum((x / 0.1) ** 2), init=jnp.zeros(60))
    broken = emc.sample(target, "pt", chains=2, draws=300, warmup=200, seed=0, replicas=2,
                        beta_min=1e-4, adapt_ladder=False)
    d = emc.diagnose(broken)
    assert d.numbers["round_trips"] == 0
    assert any("round trips" in p for p in d.problems)
    # Control: an adapted ladder of 12 rungs on the same target does carry states.
    good = emc.sample(target, "pt", chains=2, draws=300, warmup=200, seed=0, replicas=12)
    dg = emc.diagnose(good)
    assert dg.numbers["round_trips"] > 0
    assert not any("round trips" in p for p in dg.problems)


@pytest.mark.slow  # ~15 s; PT round trips stay in the default tier through the ladder test
def test_thinned_pt_run_counts_every_round_trip():
    # Step keys do not depend on thin, so thin=3 walks the same steps as
    # thin=1 with three times the draws: the counts must agree exactly.
    target = emc.Energy(lambda x: 0.5 * jnp.sum((x / 0.5) ** 2), init=jnp.zeros(3))
    kw = dict(chains=2, warmup=100, seed=4, replicas=5)
    every = emc.sample(target, "pt", draws=240, **kw)
    thinned = emc.sample(target, "pt", draws=80, thin=3, **kw)
    assert every.stats["round_trips"].sum() > 5
    assert thinned.stats["round_trips"].sum() == every.stats["round_trips"].sum()
    np.testing.assert_array_equal(thinned.flat_draws, every.flat_draws[:, 2::3])


# ------------------------------------------------- every variable is judged
def _one_hidden_bad_variable(seed=0):
    """200 variables: 199 iid normal and theta[117], whose tail ESS is low but R-hat ~ 1.

    theta[117] has iid signs and block-repeated magnitudes (blocks of 25), and
    every half-chain holds the same set of magnitudes: the chains agree
    (R-hat ~ 1), but tail events come in clusters, so the tail ESS is ~300 of
    4,000 draws (limit 400). Ranked by R-hat it sits far down the table.
    """
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=(4, 1000, 200))
    mags = np.abs(rng.normal(size=20))
    halves = np.stack([rng.permutation(mags) for _ in range(8)]).repeat(25, axis=1)
    theta[:, :, 117] = np.sign(rng.normal(size=(4, 1000))) * halves.reshape(4, 1000)
    return theta


def test_max_rows_shortens_the_display_never_the_verdict():
    theta = _one_hidden_bad_variable()
    full = emc.diagnose(_data({"theta": theta}))
    short = emc.diagnose(_data({"theta": theta}), max_rows=3)
    row = full.table.loc["theta[117]"]
    # Preconditions: the bad variable is bad by tail ESS only, and 5 rows ranked
    # by R-hat (what max_rows used to keep before judging) would not hold it.
    assert row["ess_tail"] < 400 and row["r_hat"] < 1.01
    assert full.table["r_hat"].rank(ascending=False)["theta[117]"] > 5
    for d in (full, short):
        assert not d.ok and len(d.problems) == 1
        assert "theta[117]" in d.problems[0] and "1 of 200" in d.problems[0]
        assert len(d.table) == 200 and d.table.index[0] == "theta[117]"  # worst first
        assert d.numbers["min_ess_tail"] == row["ess_tail"]
    text = short.table_text()
    assert text.splitlines()[1].startswith("theta[117]") and len(text.splitlines()) == 5
    assert text.endswith("… and 197 more rows")
    assert "… and 197 more rows" in short._repr_html_()
    assert short._repr_html_().count("<tr") == 4  # header + 3 rows: bounded
    # Negative control: the same draws without the bad variable pass.
    assert emc.diagnose(_data({"theta": np.delete(theta, 117, axis=2)}), max_rows=3).ok


def test_one_stuck_chain_is_not_hidden_by_the_others_acceptance():
    acc = np.full((4, 1000), 0.7)
    acc[2] = 0.01  # overall mean 0.53: the old pooled check passed this
    d = emc.diagnose(_data({"x": _iid(1)}, {"acceptance_rate": acc}))
    assert any("Mean acceptance is 0.010 in chain(s) 2" in p for p in d.problems)
    assert d.numbers["acceptance_per_chain"][2] == 0.01
    ok = emc.diagnose(_data({"x": _iid(1)}, {"acceptance_rate": np.full((4, 1000), 0.7)}))
    assert ok.ok, ok.problems


def test_undefined_rhat_and_nonfinite_draws_are_problems_not_skipped():
    x = _iid(2)
    x[:, :, 1] = 3.0  # never moves, in any chain: R-hat and ESS are NaN
    d = emc.diagnose(_data({"x": x}))
    assert any("undefined for x[1]" in p for p in d.problems)
    assert np.isnan(d.numbers["max_rhat"]) and d.numbers["undefined"] == 1
    assert d.table.index[0] == "x[1]"
    y = _iid(2)
    y[1, 10, 0] = np.nan
    dn = emc.diagnose(_data({"x": y}))
    assert any("NaN or infinite in x (1)" in p for p in dn.problems)
    assert emc.diagnose(_data({"x": _iid(2)})).ok  # negative control


def test_ebfmi_is_checked_for_foreign_hmc_data_and_not_for_energy_changes():
    rng = np.random.default_rng(3)
    walk = np.cumsum(rng.normal(size=(4, 1000)), axis=1)  # energy that barely refreshes
    foreign = emc.diagnose(_data({"x": _iid(3)}, {"energy": walk}))
    assert foreign.numbers["bfmi"] is not None and max(foreign.numbers["bfmi"]) < 0.3
    assert any("E-BFMI" in p for p in foreign.problems)
    fresh = emc.diagnose(_data({"x": _iid(3)}, {"energy": rng.normal(size=(4, 1000))}))
    assert fresh.ok and min(fresh.numbers["bfmi"]) > 1.0
    # MCLMC stores an energy *change* there: E-BFMI does not apply.
    mclmc = emc.diagnose(_data({"x": _iid(3)}, {"energy": walk}, method="mclmc",
                               inference_library="energymc"))
    assert mclmc.numbers["bfmi"] is None and mclmc.ok


def test_ula_with_a_large_step_is_flagged_as_biased():
    target = emc.Energy(lambda x: 0.5 * jnp.sum(x**2), init=jnp.zeros(10))
    kw = dict(chains=4, draws=300, warmup=200, seed=0)
    tuned = emc.diagnose(emc.sample(target, "langevin", **kw))
    assert not any("unadjusted" in p for p in tuned.problems)
    assert min(tuned.numbers["mh_acceptance_per_chain"]) > 0.85
    # Step 0.5 on unit scales: the variance comes out ~1.3 (z >> 3), and the
    # Metropolis test these moves never met would accept only ~78% of them.
    big = emc.sample(target, "langevin", adapt=False, step_size=0.5, **kw)
    d = emc.diagnose(big)
    assert any("unadjusted sampler's moves" in p for p in d.problems)
    # The stat's name follows the vocabulary; the old key holds the same array.
    assert big.stats["mh_acceptance"] is big.stats["mh_acceptance_rate"]
    # ArviZ data written before the rename (only the old key) is still judged.
    old = emc.diagnostics.from_arrays(
        {"x": big.flat_draws}, {"mh_acceptance": big.stats["mh_acceptance_rate"]})
    assert any("unadjusted sampler's moves" in p for p in emc.diagnose(old).problems)
    assert np.asarray(big.flat_draws).var() > 1.2


def test_ula_bias_the_acceptance_cannot_see_is_flagged_from_the_curvature():
    # sds 1 and 0.5: curvature 4 along x[1]; step 0.05 inflates its variance by
    # 1 / (1 - 0.05 * 4 / 2) = 1.111, yet in two dimensions a Metropolis test would
    # still accept ~98% of the moves, so the acceptance check alone passes the run.
    target = emc.Energy(lambda x: 0.5 * jnp.sum((x / jnp.array([1.0, 0.5])) ** 2),
                        init=jnp.zeros(2))
    run = emc.sample(target, "langevin", chains=4, draws=300, warmup=0, adapt=False,
                     step_size=0.05, seed=12)
    np.testing.assert_allclose(run.stats["variance_inflation"], 1.0 / 0.9, rtol=1e-4)
    d = emc.diagnose(run)
    assert min(d.numbers["mh_acceptance_per_chain"]) > 0.9
    assert not any("would have been accepted" in p for p in d.problems)
    assert any("stiffest direction by an estimated 11%" in p and "max_bias" in p
               for p in d.problems), d.problems
    np.testing.assert_allclose(d.numbers["variance_inflation_per_chain"], 1.0 / 0.9, rtol=1e-4)
    # Negative control: a step under the limit (inflation 1/(1 - 0.02) = 1.02) is not flagged.
    small = emc.sample(target, "langevin", chains=4, draws=300, warmup=0, adapt=False,
                       step_size=0.01, seed=12)
    assert not any("stiffest direction" in p for p in emc.diagnose(small).problems)
    # A step past stability (step x curvature >= 2) reads as unstable, not as a percentage.
    wild = emc.sample(target, "langevin", chains=2, draws=20, warmup=0, adapt=False,
                      step_size=0.6, seed=12)
    assert np.all(np.isinf(wild.stats["variance_inflation"]))
    assert any("unstable" in p for p in emc.diagnose(wild).problems)


def test_ula_curvature_in_a_nan_region_is_reported_not_a_crash():
    # log(-x0) is NaN wherever x0 > 0, where both chains start.
    target = emc.Energy(lambda x: 0.5 * jnp.sum(x**2) - jnp.log(-x[0]),
                        init=jnp.array([-1.0, 0.0]))
    run = emc.sample(target, "langevin", chains=2, draws=50, warmup=0, adapt=False,
                     step_size=0.05, seed=3, init=jnp.array([[1.0, 0.0], [1.0, 0.0]]))
    assert np.all(np.isnan(run.stats["variance_inflation"]))
    assert any("could not be estimated" in p for p in emc.diagnose(run).problems)
    # The tuned warmup keeps the step it had (no cap from an unknown curvature).
    tuned = emc.sample(target, "langevin", chains=2, draws=50, warmup=100, seed=3,
                       init=jnp.array([[1.0, 0.0], [1.0, 0.0]]))
    assert np.all(np.isfinite(tuned.warmup["params"]["step_size"]))


def test_ess_mean_is_arviz_and_sees_autocorrelation_and_disagreeing_chains():
    # AR(1) chains: ESS for the mean is about n (1 - phi) / (1 + phi).
    rng = np.random.default_rng(11)
    e = rng.normal(size=(4, 2000))
    x = np.zeros_like(e)
    for t in range(1, e.shape[1]):
        x[:, t] = 0.8 * x[:, t - 1] + e[:, t]
    assert diagnostics.ess_mean(x) == pytest.approx(x.size * 0.2 / 1.8, rel=0.2)
    iid = rng.normal(size=(4, 500))
    assert diagnostics.ess_mean(iid) > 1000           # negative control: no autocorrelation
    iid[0] += 2.0                                     # one chain somewhere else
    assert diagnostics.ess_mean(iid) < 50


def test_ess_mean_is_nan_where_undefined_and_refuses_other_shapes():
    assert np.isnan(diagnostics.ess_mean(np.zeros((4, 3))))
    assert np.isnan(diagnostics.ess_mean(np.full((2, 10), np.nan)))
    with pytest.raises(ValueError, match=r"\(chains, draws\)"):
        diagnostics.ess_mean(np.zeros(100))
