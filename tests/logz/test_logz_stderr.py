"""Honest error bars: SMC's genealogy variance, PT's between-chain spread, the pilot fit.

The statistical cases use a product of 2-d double wells (modes that SMC's
moves cannot cross once the barrier has formed), where the old SMC error bar
(a sum of per-step delta-method variances) was several times too small.
Literal seeds throughout, so a failure replays exactly.
"""

import math
import warnings

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate
from scipy.special import logsumexp

import energymc as emc
from energymc.errors import EnergymcWarning, OptionError
from energymc.logz._reference import fit_gaussian
from energymc.logz._smc import genealogy_variance
from energymc.logz._tempering import multichain_ess

# --------------------------------------------------------------------------
# genealogy_variance: exact identities
# --------------------------------------------------------------------------


def test_genealogy_variance_without_resampling_is_the_delta_method():
    # Every particle its own family (AIS): 1/ESS - 1/N.
    w = np.random.default_rng(0).exponential(size=50)
    v, fam_ess = genealogy_variance(w, np.arange(50))
    wn = w / w.sum()
    ess = 1.0 / np.sum(wn**2)
    assert v == pytest.approx(1.0 / ess - 1.0 / 50)
    assert fam_ess == pytest.approx(ess)


def test_genealogy_variance_groups_weight_by_family():
    # Families {0, 1} and {2, 3} with weight 0.5 each; two of four initial
    # particles left no descendants.
    v, fam_ess = genealogy_variance(np.full(4, 0.25), np.array([0, 0, 3, 3]))
    assert fam_ess == pytest.approx(2.0)
    assert v == pytest.approx(0.5 - 0.25)
    # One family: the largest value it can return, not a small one.
    v1, ess1 = genealogy_variance(np.ones(8), np.zeros(8, int))
    assert ess1 == pytest.approx(1.0)
    assert v1 == pytest.approx(1.0 - 1.0 / 8)


# --------------------------------------------------------------------------
# SMC on a product of double wells
# --------------------------------------------------------------------------
_WELLS = 4
_ONE = integrate.quad(lambda a: math.exp(-(a**4 - 6 * a**2 - 0.5 * a)), -np.inf, np.inf)[0]
WELLS_LOGZ = _WELLS * (math.log(_ONE) + 0.5 * math.log(2 * math.pi))


def _wells(x):
    a, b = x[0::2], x[1::2]
    return jnp.sum(a**4 - 6 * a**2 - 0.5 * a + 0.5 * b**2)


@pytest.fixture(scope="module")
def wells():
    return emc.Energy(_wells, init=jnp.zeros(2 * _WELLS), name="wells8")


# SMC's own record on the wells: base="gaussian" is the run base=None makes here ("auto"'s
# fit finds 8 modes and falls back to that Gaussian, bit for bit), without the PT fallback
# that a flagged base=None run on a few well-fitting modes now takes.
_WELLS_SMC = dict(method="smc", base="gaussian", scale=2.0, particles=256, replicates=1)


def _smc_wells(wells, seed, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EnergymcWarning)
        return emc.log_partition(wells, seed=seed, **_WELLS_SMC, **kw)


@pytest.mark.slow  # a long statistical run; the default tier keeps the faster ones
def test_smc_genealogy_stderr_covers_where_the_delta_method_did_not(wells):
    # Seed 4 was the worst of 8 (checked): off by 0.49 nats, 3.8 times the
    # per-step delta-method stderr. The genealogy estimate covers it, and
    # the run is flagged because it rests on few lineages.
    with pytest.warns(EnergymcWarning, match="effective initial particles"):
        est = emc.log_partition(wells, seed=4, **_WELLS_SMC)
    err = abs(est.log_z - WELLS_LOGZ)
    assert err > 3 * est.info["stderr_delta"], est.info      # the old error bar fails
    assert err <= 3 * est.stderr, est                        # the new one covers
    assert not est.reliable
    assert est.stderr == max(est.info["stderr_genealogy"], est.info["stderr_delta"])
    assert 1.0 <= est.info["eve_ess"] <= 256


def test_smc_min_families_option(wells):
    est = _smc_wells(wells, 4, min_families=0)
    assert est.reliable
    with pytest.raises(OptionError, match="min_families"):
        emc.log_partition(wells, method="smc", min_families="many")


@pytest.mark.slow  # a long statistical run; the default tier keeps the faster ones
def test_smc_flags_lineages_that_collapse_faster_than_resampling_explains(wells):
    # Seed 1 keeps 5.6 effective lineages of 256 after 8 stages: the wells'
    # proportions are set by selection alone. With min_families off, the
    # lineage ratio (eve_ess * stages / particles = 0.17) still flags it.
    est = _smc_wells(wells, 1, min_families=0)
    assert est.info["lineage_ratio"] < 0.2 and not est.reliable
    assert any("lineages collapsed" in p for p in est.problems)
    assert _smc_wells(wells, 1, min_families=0, min_lineage_ratio=0).reliable
    # Control: on a Gaussian the moves decorrelate the weights between
    # stages, the lineages thin like neutral drift, and nothing is flagged.
    gauss = emc.Energy(lambda x: 0.5 * jnp.sum((x / 0.5) ** 2), init=jnp.zeros(16))
    good = emc.log_partition(gauss, method="smc", seed=0, scale=2.0, particles=512,
                             replicates=1)
    assert good.info["lineage_ratio"] > 0.5 and good.reliable
    with pytest.raises(OptionError, match="min_lineage_ratio"):
        emc.log_partition(wells, method="smc", min_lineage_ratio=-1)


@pytest.mark.slow
def test_smc_stderr_coverage_over_seeds(wells):
    errs, new, old = [], [], []
    for seed in range(8):
        est = _smc_wells(wells, seed)
        errs.append(abs(est.log_z - WELLS_LOGZ))
        new.append(est.stderr)
        old.append(est.info["stderr_delta"])
    errs, new, old = map(np.asarray, (errs, new, old))
    assert np.all(errs <= 3 * new), (errs, new)
    # Negative control: the delta-method error bar misses in some seed.
    assert np.any(errs > 3 * old), (errs, old)


@pytest.mark.slow
def test_smc_waste_free_tracks_chain_families(wells):
    est = _smc_wells(wells, 0, waste_free=True, mcmc_steps=7)
    # 256 particles = 32 chains of 8 states: at most 32 families survive a step.
    assert est.info["eve_ess"] <= 32 + 1e-9
    assert abs(est.log_z - WELLS_LOGZ) <= 3 * est.stderr


@pytest.mark.slow
def test_smc_hmc_moves_and_slow_tempering_on_wells(wells):
    # The documented recipe for modes behind barriers (docs, ManyWell):
    # target_ess=0.9 and HMC moves of 5 leapfrog steps. Every seed within
    # 0.1 nats and covered by its stderr.
    for seed in range(8):
        est = emc.log_partition(wells, method="smc", seed=seed, scale=2.0, particles=2048,
                                target_ess=0.9, kernel="hmc", mcmc_steps=4,
                                kernel_options={"num_integration_steps": 5}, replicates=1)
        err = abs(est.log_z - WELLS_LOGZ)
        assert err <= 0.1 and err <= 3 * est.stderr, (seed, err, est)
        assert est.reliable, est.problems


# --------------------------------------------------------------------------
# PT: log of the chains' mean Z, stderr at least their spread
# --------------------------------------------------------------------------
@pytest.mark.slow  # a long statistical run; the default tier keeps the faster ones
def test_pt_stderr_is_at_least_the_spread_between_chains():
    target = emc.Energy(lambda x: 0.5 * jnp.sum(x**2), init=jnp.zeros(2))
    with warnings.catch_warnings():
        # A 2-d Gaussian mixes across a 4-rung ladder at once: no flag, in
        # particular not the autocorrelation one.
        warnings.simplefilter("error", EnergymcWarning)
        est = emc.log_partition(target, method="pt", seed=0, replicas=4, chains=3, draws=60,
                                warmup=40, batches=3)
    assert est.reliable
    assert est.info["stderr_autocorr"] < 0.5
    lz = np.asarray(est.info["per_chain_log_z"])
    assert est.log_z == pytest.approx(logsumexp(lz) - math.log(3))
    z = np.exp(lz - lz.max())
    spread = np.std(z, ddof=1) / (math.sqrt(3) * z.mean())
    assert est.info["stderr_between_chains"] == pytest.approx(spread)
    assert est.stderr == pytest.approx(max(spread, est.info["stderr_batch_means"]))
    assert abs(est.log_z - math.log(2 * math.pi)) < 3 * est.stderr + 0.05


@pytest.mark.slow
def test_pt_flags_slowly_refreshed_mode_configurations():
    # Negative control: 8 double wells with a short default-sized PT run. The
    # mode configurations of the cold rungs change only by round trips, and
    # the batch-means / between-chain stderr does not see it: the round-trip
    # check does (7 a chain in 300 rounds, against 2.5 for each of 10 batches).
    with pytest.warns(EnergymcWarning, match="round trips"):
        est = emc.log_partition(emc.Energy(_wells, init=jnp.zeros(16)), method="pt", seed=0,
                                scale=2.0, draws=300, warmup=200)
    assert not est.reliable
    assert np.mean(est.info["round_trips"]) < 25
    assert any("round trips" in p and "fewer than 25 a chain" in p for p in est.problems)


@pytest.mark.slow  # a long statistical run; the default tier keeps the faster ones
def test_pt_autocorrelation_bar_ignores_a_constant_in_the_energy():
    # Each chain adapts its own ladder; weights exp(d_k ll) formed about zero
    # made a constant in the energy (which moves ll's level, not its spread)
    # read as chains that disagree: before centring, E + 100 on this target
    # gave a bar of 2.0 nats and a flag (rung ESS 4 of 800), E gave 0.18.
    def run(c):
        target = emc.Energy(lambda x: 0.5 * jnp.sum(x**2) + c, init=jnp.zeros(4))
        return emc.log_partition(target, method="pt", seed=0, draws=200, warmup=100,
                                 batches=4)

    plain, shifted = run(0.0), run(100.0)
    assert np.ptp(plain.info["betas"][:, 1]) > 0.05      # the chains' ladders differ
    assert shifted.log_z + 100.0 == pytest.approx(plain.log_z, abs=1e-3)
    assert shifted.info["stderr_autocorr"] == pytest.approx(plain.info["stderr_autocorr"],
                                                            rel=1e-3)
    assert plain.info["stderr_autocorr"] < 0.05
    assert shifted.reliable and not shifted.problems
    assert abs(plain.log_z - 2 * math.log(2 * math.pi)) < 4 * plain.stderr


@pytest.mark.slow  # a long statistical run; the default tier keeps the faster ones
def test_pt_round_trip_check_counts_against_the_batches():
    # The same draws (batches= only changes how the stderr is read): 19 round
    # trips a chain in 60 rounds pass with 3 batches (7.5 needed) and are too
    # few for 30 batches of 2 rounds (75 needed), which the batch-means stderr
    # would then treat as independent.
    target = emc.Energy(lambda x: 0.5 * jnp.sum(x**2), init=jnp.zeros(2))
    kw = dict(method="pt", seed=0, replicas=4, chains=3, draws=60, warmup=40)
    few = emc.log_partition(target, batches=3, **kw)
    assert not any("round trips" in p for p in few.problems)
    with pytest.warns(EnergymcWarning, match="round trips"):
        many = emc.log_partition(target, batches=30, **kw)
    np.testing.assert_array_equal(many.info["round_trips"], few.info["round_trips"])
    assert not many.reliable
    assert any("fewer than 75 a chain" in p for p in many.problems)


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.9])
def test_multichain_ess_matches_ar1_theory(phi):
    rng = np.random.default_rng(5)
    e = rng.normal(size=(4, 4000))
    x = np.zeros_like(e)
    for t in range(1, e.shape[1]):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    theory = x.size * (1 - phi) / (1 + phi)
    assert multichain_ess(x) == pytest.approx(theory, rel=0.15)


def test_multichain_ess_sees_chains_that_disagree():
    x = np.random.default_rng(6).normal(size=(4, 500))
    assert multichain_ess(x) > 1000
    x[0] += 2.0                              # one chain stuck elsewhere
    assert multichain_ess(x) < 50


# --------------------------------------------------------------------------
# Pilot base: widening that does not grow with the dimension
# --------------------------------------------------------------------------
@pytest.mark.parametrize("dim, factor", [(2, 1.1), (10, 1.1), (100, 1.0 + math.sqrt(1e-3))])
def test_pilot_fit_widening(dim, factor):
    x = np.random.default_rng(1).normal(size=(10 * dim + 10, dim)) * 3.0
    ref = fit_gaussian(x[: 5 * dim])       # fewer than 10 dim draws: diagonal
    assert np.asarray(ref.chol).ndim == 1
    np.testing.assert_allclose(np.asarray(ref.chol), x[: 5 * dim].std(axis=0) * factor,
                               rtol=1e-4)
    dense = fit_gaussian(x)
    assert np.asarray(dense.chol).ndim == 2
    # KL(q0 || fit) added by widening stays ~0.1 nat or less at any dim.
    assert dim * (factor - 1) ** 2 <= 0.1 + 1e-12
