"""``base="modes"``: a Laplace mixture at the target's modes as the annealing's reference.

Literal seeds; tolerances in nats against exact log Z; a negative control
(a fit that misses a mode must be flagged by the mode check, not pass).
"""

import math
import warnings
from types import SimpleNamespace

import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import logsumexp

import energymc as emc
from energymc.errors import OptionError
from energymc.logz import _api
from energymc.logz._api import fit_missed_modes

from meters import CountingMeter, Interrupted

# A dense, ill-conditioned (condition number 1e3) Gaussian with an off-origin
# mean: the default N(init, 4 I) is far from it.
_D = 30
_rng = np.random.default_rng(11)
_LAM = np.logspace(-1.5, 1.5, _D)
_Q = np.linalg.qr(_rng.normal(size=(_D, _D)))[0]
_PREC = jnp.asarray((_Q / _LAM) @ _Q.T)
_MU = jnp.asarray(_rng.uniform(-2.0, 2.0, _D))
GAUSS_LOGZ = 0.5 * _D * math.log(2 * math.pi) + 0.5 * float(np.sum(np.log(_LAM)))


def dense_gaussian(x):
    r = x - _MU
    return 0.5 * r @ (_PREC @ r)


# Two modes with unequal weights and widths, 8 units apart in 4-d: local
# moves cannot cross between them.
_MD = 4
_MIX_W = np.array([0.75, 0.25])
_MIX_SD = np.array([1.0, 0.4])
_MIX_MU = np.array([[-4.0, 0.0, 0.0, 0.0], [4.0, 0.0, 0.0, 0.0]])
MIX_LOGZ = 1.5
_LOG_A = jnp.asarray(MIX_LOGZ + np.log(_MIX_W) - 0.5 * _MD * np.log(2 * np.pi * _MIX_SD**2))


def mixture(x):
    sq = jnp.sum((x - jnp.asarray(_MIX_MU)) ** 2, axis=1)
    return -logsumexp(_LOG_A - 0.5 * sq / jnp.asarray(_MIX_SD) ** 2)


@pytest.fixture(scope="module")
def gauss():
    return emc.Energy(dense_gaussian, init=jnp.zeros(_D), name="dense_gaussian30")


@pytest.fixture(scope="module")
def mix():
    return emc.Energy(mixture, init=jnp.zeros(_MD), name="mixture4d2")


def _covers(est, truth):
    err = est.log_z - truth
    assert abs(err) < 4 * est.stderr + 0.02, f"error {err:.4f} vs stderr {est.stderr:.4f}"


@pytest.mark.slow  # a long statistical run; the default tier keeps the faster ones
def test_modes_base_is_precise_on_a_dense_gaussian(gauss):
    est = emc.log_partition(gauss, base="modes", seed=0, replicates=2)
    _covers(est, GAUSS_LOGZ)
    assert est.reliable, est.problems
    # The Laplace fit is exact up to its widening: a short, precise path.
    # The default base is 0.57 nats off here with stderr 0.42 (flagged).
    assert est.stderr < 0.05
    assert abs(est.log_z - GAUSS_LOGZ) < 0.1
    fit = est.info["mode_fit"]
    assert fit["modes"] == 1 and fit["dropped"] == 0
    assert "MixtureReference(dim=30, modes=1, defensive=0.15)" == est.info["base"]
    # The fit's gradient evaluations are part of the cost.
    runs = sum(1 for _ in est.replicates)
    assert fit["grad_evals"] > 0 and est.num_grad_evals > fit["grad_evals"] + runs


@pytest.mark.slow  # a long statistical run; the default tier keeps the faster ones
def test_modes_base_recovers_an_unequal_mixture(mix):
    est = emc.log_partition(mix, base="modes", seed=1)
    assert est.info["mode_fit"]["modes"] == 2
    _covers(est, MIX_LOGZ)
    assert abs(est.log_z - MIX_LOGZ) < 0.1
    assert est.reliable, est.problems
    # Both modes hold their share of the final particles' weight.
    x, w = np.asarray(est.particles), np.asarray(est.weights)
    share = float(np.sum(w[x[:, 0] > 0]))
    assert abs(share - _MIX_W[1]) < 0.1


def test_a_fit_that_misses_a_mode_is_flagged(mix):
    # Negative control: one descent, from init (0, in the broad mode's basin),
    # finds only that mode, and without the defensive component the annealing
    # cannot reach the other one: log Z is low by log(1 / 0.75) = 0.29 nats.
    # The mode check descends from draws of the default Gaussian, independently
    # of the fit, finds the narrow mode, and must flag the run.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = emc.log_partition(mix, base="modes", mode_starts=1, defensive=0.0, seed=2)
    assert est.info["mode_fit"]["modes"] == 1
    run = est.info["run_estimate"]  # the annealing's own estimate
    err = run["log_z"] - MIX_LOGZ
    assert err < -0.2 and abs(err) > 3 * run["stderr"]  # wrong beyond its error bar ...
    assert not est.reliable                             # ... and said so
    assert est.info["checks"]["modes"]["unreached"] >= 1, est.info["checks"]["modes"]
    assert any("local minima" in p for p in est.problems), est.problems
    # The record reports the check's estimate instead, which found both modes.
    assert est.log_z == est.info["checks"]["modes"]["log_z"]
    assert abs(est.log_z - MIX_LOGZ) < 0.05


@pytest.mark.parametrize("kwargs, match", [
    ({"cess": 1.5}, "cess= must be"),  # a method option: checked before the default fit
    ({"mode_starts": 0}, "mode_starts= must be an integer >= 1"),
    ({"mode_starts": 2.5}, "mode_starts= must be an integer >= 1"),
    ({"defensive": 1.0}, r"defensive= must be a weight in \[0, 1\)"),
    ({"defensive": -0.1}, r"defensive= must be a weight in \[0, 1\)"),
])
def test_mode_options_are_checked_eagerly(mix, kwargs, match):
    with pytest.raises(OptionError, match=match), emc.compilations() as c:
        emc.log_partition(mix, **{"base": "modes", **kwargs} if "cess" not in kwargs
                          else kwargs)
    # Nothing of the fit (or the anneal) compiled: only the seed's key may have.
    assert not set(c.by_function) - {"_threefry_seed", "stage"}, c.by_function


@pytest.mark.parametrize("base", ["modes", "auto"])
def test_modes_base_needs_a_real_target(base):
    spins = emc.Energy(lambda s: -jnp.sum(s[:-1] * s[1:]), init=jnp.ones(6), support="spin")
    with pytest.raises(OptionError, match=f"base='{base}' is for real targets"):
        emc.log_partition(spins, base=base)


def test_auto_base_uses_the_fit_where_it_matches(gauss):
    est = emc.log_partition(gauss, base="auto", seed=0, replicates=2)
    fit = est.info["mode_fit"]
    assert fit["used"] and fit["modes"] == 1 and fit["ess"] >= 0.5
    assert est.info["base"].startswith("MixtureReference")
    _covers(est, GAUSS_LOGZ)
    assert est.stderr < 0.05


def test_auto_base_keeps_the_default_gaussian_on_a_mixture(mix):
    # Two modes found: "auto" anneals from the default Gaussian, so the
    # estimate is the default base's, bit for bit (same seed, same keys); only
    # the fit's cost is added. Without checks: this run's weight ESS is low on a
    # mixture the mode check fits, so with them "auto" would go on to the PT
    # fallback (test_logz_fallback.py), which is not what this test is about.
    auto = emc.log_partition(mix, base="auto", seed=3, replicates=2, checks=False)
    plain = emc.log_partition(mix, base="gaussian", seed=3, replicates=2, checks=False)
    fit = auto.info["mode_fit"]
    assert fit["modes"] == 2 and not fit["used"]
    assert auto.info["base"] == plain.info["base"] == "GaussianReference(dim=4, diagonal)"
    assert auto.log_z == plain.log_z and auto.stderr == plain.stderr
    assert auto.num_grad_evals == plain.num_grad_evals + int(fit["grad_evals"])


def test_a_grad_evals_budget_counts_the_fit(gauss):
    opts = dict(base="auto", particles=64, schedule="linear", num_temps=20, checks=False)
    one = emc.log_partition(gauss, seed=5, replicates=1, **opts)
    fit = one.info["mode_fit"]["grad_evals"]
    run = one.num_grad_evals - fit
    est = emc.log_partition(gauss, seed=5, budget={"grad_evals": fit + 3.5 * run}, **opts)
    assert len(est.replicates) == 3
    assert est.num_grad_evals <= fit + 3.5 * run


def test_auto_anneals_from_the_fit_alone(gauss):
    # Where "auto" uses the fit (one mode, ESS >= 0.5), AIS anneals from it
    # without the defensive default Gaussian, whose particles cost most of the
    # stages (98 against 10 here); base="modes" keeps its 0.15.
    auto = emc.log_partition(gauss, base="auto", seed=0, replicates=2)
    modes = emc.log_partition(gauss, base="modes", seed=0, replicates=2)
    assert auto.info["base"] == "MixtureReference(dim=30, modes=1, defensive=0.00)"
    assert modes.info["base"] == "MixtureReference(dim=30, modes=1, defensive=0.15)"
    assert auto.info["mode_fit"]["used"] and auto.info["mode_fit"]["defensive"] == 0.0
    assert 4 * len(auto.stages["beta"]) < len(modes.stages["beta"])
    for est in (auto, modes):
        _covers(est, GAUSS_LOGZ)
        assert est.reliable, est.problems
        assert est.stderr < 0.05
    # The mode check still draws its descents' starts from the default
    # Gaussian N(init, 2^2 I), kept as component 0 with weight 0.
    start = auto.info["reference"].defensive()
    np.testing.assert_array_equal(np.asarray(start.loc), np.zeros(_D))
    np.testing.assert_allclose(np.asarray(start.chol), 2.0 * np.eye(_D))


@pytest.mark.slow  # a long statistical run; the default tier keeps the faster ones
def test_auto_keeps_the_defensive_share_for_smc(gauss):
    # SMC from the fit alone was biased low on a heavy-tailed 2-d target
    # (benchmarks/RESULTS.md): only AIS drops the share. Short runs: only
    # the base is looked at.
    smc = emc.log_partition(gauss, method="smc", base="auto", seed=0, replicates=1,
                            particles=64, checks=False)
    assert smc.info["mode_fit"]["used"]
    assert smc.info["base"] == "MixtureReference(dim=30, modes=1, defensive=0.15)"
    # A defensive= given by the user wins over AIS's 0.
    short = dict(replicates=1, particles=32, schedule="linear", num_temps=5, checks=False)
    ais = emc.log_partition(gauss, base="auto", defensive=0.3, seed=0, **short)
    assert ais.info["base"] == "MixtureReference(dim=30, modes=1, defensive=0.30)"


def test_auto_fit_that_misses_a_mode_is_flagged(mix):
    # Negative control for the fit alone: one descent finds only the broad
    # mode, which fits (one mode, high ESS), so "auto" anneals from it with no
    # defensive share and cannot reach the narrow mode: log Z is low by
    # log(1 / 0.75). The mode check's own descents from the default Gaussian
    # find it, and must flag the run; "auto" then falls back to parallel
    # tempering, and the flagged run is the fallback's first run.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = emc.log_partition(mix, base="auto", mode_starts=1, seed=2)
    fit = est.info["mode_fit"]
    assert fit["used"] and fit["modes"] == 1 and fit["defensive"] == 0.0
    first = est.info["fallback"]["first"]
    err = first["log_z"] - MIX_LOGZ
    assert err < -0.2 and abs(err) > 3 * first["stderr"]
    assert not first["reliable"]
    assert first["mode_check"]["flag"] == "low", first["mode_check"]
    assert first["mode_check"]["unreached"] >= 1, first["mode_check"]
    # What comes back is PT's run: no silent miss either.
    assert est.method == "pt"
    assert not est.reliable or abs(est.log_z - MIX_LOGZ) < 3 * est.stderr


def test_a_fitted_base_sets_malas_first_step(gauss):
    from energymc._util import default_step
    from energymc.logz._reference import MixtureReference

    # Unit curvature in the mass matrix's coordinates: the default step.
    sd = np.linspace(0.5, 3.0, _D)
    eye = MixtureReference(jnp.zeros((2, _D)), jnp.asarray(np.stack([np.diag(sd)] * 2)),
                           jnp.log(jnp.asarray([0.5, 0.5])), jnp.asarray(sd**2))
    assert eye.mala_step(0.5) == pytest.approx(default_step("mala", _D), rel=1e-5)
    # The dense, ill-conditioned fit: a step 20-100x smaller, and the first
    # stage of the short path moves (acceptance near 0.86) ...
    est = emc.log_partition(gauss, base="modes", defensive=0.0, seed=0, replicates=2)
    first = est.stages["step_size"][0]
    assert default_step("mala", _D) / 100 < first < default_step("mala", _D) / 20
    assert est.stages["acceptance"][0] > 0.5 and est.reliable, est.problems
    # ... where the default step accepted nothing at the first stage, which
    # is flagged (negative control: the check that sees it still can).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bad = emc.log_partition(gauss, base="modes", defensive=0.0, seed=0, replicates=2,
                                step_size=default_step("mala", _D))
    assert bad.stages["acceptance"][0] < 0.02
    assert not bad.reliable
    assert any("almost never accepted" in p for p in bad.problems), bad.problems



def test_smc_starts_malas_step_from_a_fitted_base_as_ais_does(gauss):
    from energymc._util import default_step

    # A given two-stage schedule: the second stage moves under pi_0.5, which
    # the acceptance check reads (the first stage's moves are under the base).
    kw = dict(method="smc", base="modes", defensive=0.0, seed=0, replicates=2,
              schedule=[0.0, 0.5, 1.0])
    est = emc.log_partition(gauss, **kw)
    first = est.stages["step_size"][0]
    assert default_step("mala", _D) / 100 < first < default_step("mala", _D) / 20
    assert np.min(est.stages["acceptance"]) > 0.5 and est.reliable, est.problems
    assert abs(est.log_z - GAUSS_LOGZ) < 4 * est.stderr + 0.02
    # Negative control: the default step on the same path accepts nothing at
    # the second stage, and the check still flags it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bad = emc.log_partition(gauss, step_size=default_step("mala", _D), **kw)
    assert bad.stages["acceptance"][1] < 0.02
    assert not bad.reliable
    assert any("almost never accepted" in p for p in bad.problems), bad.problems

def test_mixture_reference_draws_each_component():
    # Draws by component without indexing the factors by draw: each
    # component's share, mean and covariance within Monte Carlo error (4 se),
    # and a negative control (the components' draws are not exchangeable).
    import jax

    from energymc.logz._reference import MixtureReference

    rng = np.random.default_rng(3)
    d, n = 3, 40_000
    chols = np.stack([np.linalg.cholesky(np.cov(rng.normal(size=(d, 10)))) for _ in range(3)])
    locs = rng.normal(size=(3, d)) * 6.0
    w = np.array([0.2, 0.3, 0.5])
    ref = MixtureReference(jnp.asarray(locs), jnp.asarray(chols), jnp.log(jnp.asarray(w)),
                           jnp.ones(d))
    x = np.asarray(ref.sample(jax.random.key(0), n), dtype=float)
    # Nearest component mean labels each draw (the means are far apart).
    lab = np.argmin(((x[:, None, :] - locs[None]) ** 2).sum(-1), axis=1)
    for k in range(3):
        xs = x[lab == k]
        share = xs.shape[0] / n
        assert abs(share - w[k]) < 4 * math.sqrt(w[k] * (1 - w[k]) / n)
        cov = chols[k] @ chols[k].T
        se = np.sqrt(np.diag(cov) / xs.shape[0])
        assert np.all(np.abs(xs.mean(0) - locs[k]) < 4 * se)
        tol = 8 * np.max(np.diag(cov)) / math.sqrt(xs.shape[0])
        assert np.allclose(np.cov(xs.T), cov, atol=tol)
        other = chols[(k + 1) % 3] @ chols[(k + 1) % 3].T
        assert not np.allclose(np.cov(xs.T), other, atol=tol)


# A smaller dense, off-origin Gaussian for nested sampling and PT, whose
# defaults are run in full here (nested's cost grows as dim^3 from a dense base).
_D8 = 8
_rng8 = np.random.default_rng(5)
_LAM8 = np.logspace(-1.0, 1.0, _D8)
_Q8 = np.linalg.qr(_rng8.normal(size=(_D8, _D8)))[0]
_PREC8 = jnp.asarray((_Q8 / _LAM8) @ _Q8.T)
_MU8 = jnp.asarray(_rng8.uniform(1.0, 3.0, _D8))
GAUSS8_LOGZ = 0.5 * _D8 * math.log(2 * math.pi) + 0.5 * float(np.sum(np.log(_LAM8)))


def dense_gaussian8(x):
    r = x - _MU8
    return 0.5 * r @ (_PREC8 @ r)


@pytest.mark.slow  # a long statistical run; the default tier keeps the faster ones
@pytest.mark.parametrize("method", ["nested", "pt"])
def test_nested_and_pt_default_to_the_fit_alone(method):
    # base=None is "auto" for nested sampling and PT too: on a dense Gaussian
    # away from the origin both run from the single-mode fit, without the
    # defensive share, and land within Monte Carlo error of the exact log Z.
    gauss8 = emc.Energy(dense_gaussian8, init=jnp.zeros(_D8), name="dense_gaussian8")
    est = emc.log_partition(gauss8, method=method, seed=0)
    fit = est.info["mode_fit"]
    assert fit["used"] and fit["modes"] == 1 and fit["defensive"] == 0.0
    assert est.info["base"] == f"MixtureReference(dim={_D8}, modes=1, defensive=0.00)"
    assert est.reliable, est.problems
    _covers(est, GAUSS8_LOGZ)


@pytest.mark.slow  # a long statistical run; the default tier keeps the faster ones
@pytest.mark.parametrize("method", ["nested", "pt"])
def test_nested_and_pt_keep_the_default_gaussian_on_a_mixture(mix, method):
    # Negative control: two modes found, so the default Gaussian is kept and
    # the run is the base="gaussian" run bit for bit (only the fit's cost is
    # added). Without checks, as in the AIS case above: the base is the point.
    auto = emc.log_partition(mix, method=method, seed=3, checks=False)
    plain = emc.log_partition(mix, method=method, base="gaussian", seed=3, checks=False)
    fit = auto.info["mode_fit"]
    assert fit["modes"] == 2 and not fit["used"]
    assert auto.info["base"] == plain.info["base"] == "GaussianReference(dim=4, diagonal)"
    assert auto.log_z == plain.log_z and auto.stderr == plain.stderr
    assert auto.num_grad_evals == plain.num_grad_evals + int(fit["grad_evals"])


@pytest.mark.parametrize("method", ["bdmc", "pt"])
def test_a_one_mode_fit_that_missed_modes_runs_again_from_the_default_gaussian(mix, method):
    # The negative control above, under "auto" with BDMC and PT (which have no
    # PT fallback): the run from the one-mode fit is 0.29 nats low and the mode
    # check flags it low, so the call runs the method again from the default
    # Gaussian, whose particles or chains reach both modes.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = emc.log_partition(mix, method=method, mode_starts=1, seed=2)
    assert est.info["mode_fit"]["used"] and est.info["mode_fit"]["modes"] == 1
    first = est.info["widened"]["first"]
    assert first["log_z"] - MIX_LOGZ < -0.2 and not first["reliable"]
    assert first["mode_check"]["flag"] == "low", first["mode_check"]
    assert est.method == method
    assert est.info["base"] == "GaussianReference(dim=4, diagonal)"
    assert est.reliable, est.problems
    _covers(est, MIX_LOGZ)
    assert est.num_grad_evals > first["num_grad_evals"]
    if method == "bdmc":
        assert est.lower <= MIX_LOGZ <= est.upper


def _record(method="pt", used=True, flag="low", escalated=False):
    info = {"mode_fit": {"used": used}, "checks": {"modes": {"flag": flag}}}
    if escalated:
        info["escalation"] = {}
    return SimpleNamespace(info=info), SimpleNamespace(name=method)


@pytest.mark.parametrize("case, runs_again", [
    ({}, True),
    ({"method": "nested"}, True),
    ({"method": "bdmc"}, True),
    # Negative controls: AIS and SMC have the PT fallback instead; a fit that
    # was not used, a check that did not flag low, and an escalated run (its
    # base is the Student-t, no longer the fit) run nothing again.
    ({"method": "ais"}, False),
    ({"method": "smc"}, False),
    ({"used": False}, False),
    ({"flag": "high"}, False),
    ({"flag": None}, False),
    ({"escalated": True}, False),
])
def test_which_runs_go_again_from_the_default_gaussian(case, runs_again):
    est, m = _record(**case)
    assert fit_missed_modes(m, est) is runs_again


@pytest.mark.slow  # a long statistical run; the default tier keeps the faster ones
def test_a_widened_call_interrupted_in_its_second_run_resumes_exactly(mix, tmp_path):
    kw = dict(method="bdmc", mode_starts=1, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = emc.log_partition(mix, progress=CountingMeter(), **kw)
        assert "widened" in want.info
        ckpt = tmp_path / "logz"
        # The first run's 4 replicates, then the second run's first 2: stopped while
        # the second run's replicate 1 is shown (it was saved first).
        with pytest.raises(Interrupted):
            emc.log_partition(mix, progress=CountingMeter(stop_at=6), checkpoint=ckpt, **kw)
        assert (ckpt / _api.WIDEN_DIR).is_dir()
        meter = CountingMeter()
        got = emc.log_partition(mix, progress=meter, checkpoint=ckpt, **kw)
    assert meter.finished == 2  # only the second run's replicates 2 and 3 ran again
    assert got.timing["resumed_replicates"] == 2
    assert (got.log_z, got.stderr, got.lower, got.upper) == \
        (want.log_z, want.stderr, want.lower, want.upper)
    assert got.num_grad_evals == want.num_grad_evals and got.problems == want.problems
    assert got.info["widened"]["first"]["log_z"] == want.info["widened"]["first"]["log_z"]
