"""Learners under default options: adapted negative-phase steps, the lag check
of persistent CD, DSM's default noise level, progress that never changes a
result, result reprs, and ``RBM.fit``.

Literal seeds; every statistical check has a negative control.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.optim as optim
import pytest

import energymc as emc
from energymc import learn
from energymc.errors import EnergymcWarning
from energymc.learn.score import default_sigma

D = 3
TRIL = np.tril_indices(D)
COV = np.array([[2.0, 0.8, 0.0], [0.8, 1.0, -0.3], [0.0, -0.3, 0.5]])
X = np.random.default_rng(0).multivariate_normal(np.zeros(D), COV, size=1000).astype(np.float32)
P_MLE = np.linalg.inv(X.T.astype(float) @ X / len(X))
P0 = {"l": jnp.zeros(len(TRIL[0]))}


def gauss_energy(params, x):
    lower = jnp.zeros((D, D)).at[TRIL].set(params["l"])
    lower = lower.at[jnp.diag_indices(D)].set(jnp.exp(jnp.diag(lower)))
    y = lower.T @ x
    return 0.5 * y @ y


def precision(params):
    lower = np.zeros((D, D))
    lower[TRIL] = np.asarray(params["l"])
    lower[np.diag_indices(D)] = np.exp(np.diag(lower))
    return lower @ lower.T


def rel_err(params):
    return float(np.linalg.norm(precision(params) - P_MLE) / np.linalg.norm(P_MLE))


def adam(steps=300, start=5e-2, end=2e-3):
    rate = (end / start) ** (1.0 / steps)
    return optim.Adam(lambda i: start * rate**i)


def _run(learner, steps=300, seed=0, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = learner.run(jax.random.key(seed), steps, X, init_params=P0, **kw)
    return res, [w for w in caught if issubclass(w.category, EnergymcWarning)]


# ------------------------------------------------------- adapted step sizes
def test_default_pcd_adapts_its_step_recovers_the_mle_and_is_not_warned():
    learner = learn.CD(gauss_energy, adam(), persistent=True)
    res, warned = _run(learner, batch_size=500)
    h = res.history
    assert learner.sampler == "mala" and learner.adapt_step
    # The step moved from its start (0.5 * 3**(-1/3) = 0.347) to where MALA
    # accepts about 57.4% of its moves.
    assert abs(h["step_size"][-1] - h["step_size"][0]) > 0.05
    assert abs(np.mean(h["acceptance_rate"][-50:]) - 0.574) < 0.03
    assert rel_err(res.params) < 0.05
    assert res.problems == [] and warned == []


def test_default_cd_k_recovers_the_mle():
    res, _ = _run(learn.CD(gauss_energy, adam()), batch_size=500, seed=1)
    assert rel_err(res.params) < 0.05


def test_unadjusted_langevin_adapts_toward_a_near_one_acceptance():
    # Unadjusted: the acceptance rate is the Metropolis ratio the move would have
    # had; the adaptation holds it at 0.995, where the bias is small.
    learner = learn.CD(gauss_energy, adam(), persistent=True, sampler="langevin")
    res, _ = _run(learner, batch_size=500, seed=2)
    acc = res.history["acceptance_rate"][-50:]
    assert np.all(acc < 1.0) and abs(np.mean(acc) - 0.995) < 0.01
    assert rel_err(res.params) < 0.08


def test_a_fixed_step_stays_fixed_and_adapt_step_starts_from_it():
    fixed = learn.CD(gauss_energy, adam(50), sampler="mala", step_size=0.05)
    res, _ = _run(fixed, steps=50, batch_size=200)
    assert not fixed.adapt_step
    np.testing.assert_allclose(res.history["step_size"], 0.05, rtol=1e-6)
    adapted = learn.CD(gauss_energy, adam(50), sampler="mala", step_size=0.05, adapt_step=True)
    res, _ = _run(adapted, steps=50, batch_size=200)
    np.testing.assert_allclose(res.history["step_size"][0], 0.05, rtol=1e-6)
    assert res.history["step_size"][-1] > 0.1  # 0.05 accepts nearly all: the step grows


def test_default_sampler_is_gibbs_for_binary_and_spin_data():
    from energymc.models import RBM

    rbm = RBM(5, 2)
    data = (np.random.default_rng(3).uniform(size=(200, 5)) < 0.3).astype(np.float32)
    learner = learn.CD(rbm.free_energy, optim.Adam(1e-2), k=1)
    res = learner.run(jax.random.key(0), 5, data, init_params=rbm.init_params(
        jax.random.key(1), data))
    assert learner.sampler == "gibbs" and not learner.adapt_step
    assert np.isnan(res.history["step_size"]).all()
    spins = 2 * data - 1

    def ising(params, s):
        return -params["h"] @ s

    learner = learn.CD(ising, optim.Adam(1e-2), k=1)
    learner.run(jax.random.key(0), 3, spins, init_params={"h": jnp.zeros(5)})
    assert learner.sampler == "gibbs"
    assert dict(learner._options)["support"] == "spin"


def test_adaptation_options_are_checked_before_compiling():
    with pytest.raises(emc.OptionError, match="target_accept"):
        learn.CD(gauss_energy, adam(), target_accept=1.5)
    with pytest.raises(emc.OptionError, match="adapt_step=False"):
        learn.CD(gauss_energy, adam(), adapt_step=False)
    with pytest.raises(emc.OptionError, match="callable sampler"):
        learn.CD(gauss_energy, adam(), adapt_step=True, sampler=lambda k, p, x, n: x)
    with pytest.raises(emc.OptionError, match="lag_tolerance"):
        learn.CD(gauss_energy, adam(), lag_tolerance=0)


# ------------------------------------------------------------ lagging chains
def test_lagging_pcd_is_warned_about():
    # Negative control for the test above: one tiny unadjusted step per update,
    # so the chains cannot follow the model. The run says so, and it is indeed
    # far from the MLE.
    learner = learn.CD(gauss_energy, adam(), k=1, persistent=True, sampler="langevin",
                       step_size=1e-4)
    res, warned = _run(learner, batch_size=500, seed=4)
    assert rel_err(res.params) > 0.3
    assert len(res.problems) == 1 and "lag the model" in res.problems[0]
    assert len(warned) == 1 and "lag the model" in str(warned[0].message)
    assert np.median(res.history["chain_lag"][-75:]) > 100


def test_lag_check_reads_the_history():
    # The rule itself, on made-up histories: a long lag with a steady drift is
    # flagged; the same lag with a drift that only jitters around zero is not.
    learner = learn.CD(gauss_energy, adam(), persistent=True)
    n = 400
    drift = {"chain_lag": np.full(n, 50.0), "energy_shift": np.full(n, 0.02)}
    assert learner._problems(drift)
    jitter = {"chain_lag": np.full(n, 50.0),
              "energy_shift": 0.02 * np.where(np.arange(n) % 2, 1.0, -1.0)}
    assert learner._problems(jitter) == []
    fast = {"chain_lag": np.full(n, 1.5), "energy_shift": np.full(n, 0.02)}
    assert learner._problems(fast) == []
    # CD-k starts at the data every update: nothing persists, nothing lags.
    assert learn.CD(gauss_energy, adam())._problems(drift) == []


# ------------------------------------------------------------------------ DSM
def test_dsm_default_sigma_is_a_tenth_of_the_smallest_principal_sd():
    lam_min = np.linalg.eigvalsh(np.cov(X.astype(float), rowvar=False)).min()
    np.testing.assert_allclose(default_sigma(X), 0.1 * np.sqrt(lam_min), rtol=1e-6)
    # Constant coordinates do not drive it to zero.
    flat = np.concatenate([X, np.ones((len(X), 1), np.float32)], axis=1)
    assert default_sigma(flat) > 0.01 * default_sigma(X)


def test_dsm_with_defaults_recovers_the_mle():
    learner = learn.DSM(gauss_energy, adam(400))
    res, _ = _run(learner, steps=400, batch_size=1000, seed=5)
    assert learner.sigmas.shape == (1,) and learner.sigmas[0] == pytest.approx(default_sigma(X))
    assert rel_err(res.params) < 0.05


# ------------------------------------------------------------------- progress
class _Meter:
    def __init__(self):
        self.calls = []

    def start(self, total, description):
        self.total = total

    def update(self, n, postfix):
        self.calls.append((n, dict(postfix)))

    def close(self):
        pass


@pytest.mark.parametrize("make", [
    lambda: learn.CD(gauss_energy, adam(60), persistent=True),
    lambda: learn.NCE(gauss_energy, adam(60)),
])
def test_progress_on_and_off_give_identical_results(make):
    # With a meter the loop runs in chunks; batches, chains and keys must run
    # on across chunk boundaries exactly as in one compiled call.
    off = make().run(jax.random.key(7), 60, X, init_params=P0, batch_size=64, progress=False)
    meter = _Meter()
    on = make().run(jax.random.key(7), 60, X, init_params=P0, batch_size=64, progress=meter)
    assert len(meter.calls) > 1 and sum(n for n, _ in meter.calls) == 60
    # The postfix shows the latest update's loss.
    assert float(meter.calls[-1][1]["loss"]) == pytest.approx(float(on.losses[-1]), rel=1e-3)
    np.testing.assert_array_equal(on.losses, off.losses)
    np.testing.assert_array_equal(on.params["l"], off.params["l"])


def test_progress_bar_is_off_under_ci(monkeypatch):
    from energymc.progress import NullMeter, make_meter

    monkeypatch.setenv("CI", "true")
    assert isinstance(make_meter(None), NullMeter)


# ---------------------------------------------------------------------- reprs
def test_history_frame_and_html_repr():
    pd = pytest.importorskip("pandas")
    learner = learn.SSM(gauss_energy, adam(40))
    res = learner.run(jax.random.key(0), 40, X, init_params=P0, batch_size=100,
                      eval_every=10, eval_fn=lambda p: -rel_err(p))
    frame = res.history_frame()
    assert isinstance(frame, pd.DataFrame) and len(frame) == 40
    assert frame.index.name == "update" and frame.index[0] == 1
    assert {"loss", "grad_norm", "eval"} <= set(frame.columns)
    np.testing.assert_array_equal(frame["loss"].to_numpy(), res.losses)
    ev = frame["eval"].dropna()
    assert list(ev.index) == [10, 20, 30, 40]
    np.testing.assert_allclose(ev.to_numpy(), res.history["eval"])
    html = res._repr_html_()
    assert html.startswith("<table>") and "LearnResult" in html and "problems" in html
    # Compact: a few rows, not one per update.
    assert html.count("<tr>") < 12


# ------------------------------------------------------------------ RBM.fit
def test_rbm_fit_raises_the_exact_likelihood_and_checks_its_input():
    from energymc.models import RBM

    rng = np.random.default_rng(8)
    protos = np.array([[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]], dtype=np.float32)
    data = protos[rng.integers(0, 2, 300)]
    data = np.abs(data - (rng.uniform(size=data.shape) < 0.05)).astype(np.float32)
    rbm = RBM(6, 3)

    def ll(p):
        return rbm.log_likelihood(p, data, rbm.log_z_exact(p))

    res = rbm.fit(data, seed=0, n_iter=100, progress=False)
    assert set(res.params) == {"W", "b", "c"} and len(res.losses) == 100 * 3
    assert ll(res.params) > ll(rbm.init_params(jax.random.key(0), data)) + 1.0
    again = rbm.fit(data, seed=0, n_iter=100, progress=False)
    np.testing.assert_array_equal(again.params["W"], res.params["W"])
    with pytest.raises(emc.EnergyError, match="binary"):
        rbm.fit(data + 0.5)
    with pytest.raises(emc.OptionError, match="learning_rate"):
        rbm.fit(data, learning_rate=-1)


# ------------------------------------------------------------- slow: offsets
@pytest.mark.slow
@pytest.mark.parametrize("make", [
    lambda e, o: learn.CD(e, o),
    lambda e, o: learn.CD(e, o, persistent=True),
])
def test_cd_defaults_recover_an_off_origin_dense_gaussian(make):
    # A target like the zoo's held-out gauss2_offset (other seed): mean (3, -2),
    # correlation -0.9. Precision within 5% of the MLE, mean within 0.05 sd.
    cov = np.array([[1.5, -1.1], [-1.1, 1.0]])
    x = np.random.default_rng(21).multivariate_normal([3.0, -2.0], cov, 1000).astype(np.float32)
    mu_hat = x.astype(float).mean(0)
    p_hat = np.linalg.inv(np.cov(x.astype(float), rowvar=False, bias=True))
    tril = np.tril_indices(2)

    def energy(params, z):
        lower = jnp.zeros((2, 2)).at[tril].set(params["l"])
        lower = lower.at[jnp.diag_indices(2)].set(jnp.exp(jnp.diag(lower)))
        y = lower.T @ (z - params["mu"])
        return 0.5 * y @ y

    res = make(energy, adam(1000, 5e-2, 1e-3)).run(
        jax.random.key(22), 1000, x, init_params={"l": jnp.zeros(3), "mu": jnp.zeros(2)})
    lower = np.zeros((2, 2))
    lower[tril] = np.asarray(res.params["l"])
    lower[np.diag_indices(2)] = np.exp(np.diag(lower))
    prec = lower @ lower.T
    assert np.linalg.norm(prec - p_hat) / np.linalg.norm(p_hat) < 0.05
    assert np.max(np.abs(np.asarray(res.params["mu"]) - mu_hat) / x.std(0)) < 0.05
    assert res.problems == []
