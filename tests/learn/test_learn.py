"""Tests for energymc.learn: CD/PCD, NCE, DSM, SSM and annealed Langevin.

The reference problem: zero-mean Gaussian data in d = 3 and the energy
``E(x) = x^T P x / 2`` with ``P = L L^T`` (``L`` lower-triangular, positive
diagonal). Every learner's optimum on the *empirical* data is known in closed
form, so each is checked against its own target:

* CD, PCD, NCE, SSM: the maximum-likelihood precision ``inv(X^T X / n)``;
* DSM at noise ``sigma``: ``inv(X^T X / n + sigma^2 I)`` (it fits the noised data).

Tolerances are relative Frobenius errors, stated per test. Optimisation noise
is removed with full batches and a decaying Adam step; what remains is the
estimator's own Monte Carlo noise.
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import numpyro.optim as optim
import pytest
from numpyro.distributions import constraints

import energymc as emc
from energymc import learn

D = 3
TRIL = np.tril_indices(D)
N = 1000


def _data(seed=0, n=N):
    rng = np.random.default_rng(seed)
    cov = np.array([[2.0, 0.8, 0.0], [0.8, 1.0, -0.3], [0.0, -0.3, 0.5]])
    return rng.multivariate_normal(np.zeros(D), cov, size=n).astype(np.float32)


X = _data()
S_HAT = X.T @ X / len(X)
P_MLE = np.linalg.inv(S_HAT)


def gauss_energy(params, x):
    lower = jnp.zeros((D, D)).at[TRIL].set(params["l"])
    lower = lower.at[jnp.diag_indices(D)].set(jnp.exp(jnp.diag(lower)))
    return 0.5 * x @ (lower @ lower.T) @ x


def precision(params):
    lower = np.zeros((D, D))
    lower[TRIL] = np.asarray(params["l"])
    lower[np.diag_indices(D)] = np.exp(np.diag(lower))
    return lower @ lower.T


P0 = {"l": jnp.zeros(len(TRIL[0]))}  # identity precision, far from P_MLE


def rel_err(p, target):
    return float(np.linalg.norm(p - target) / np.linalg.norm(target))


def adam(start=5e-2, steps=400, end=2e-3):
    """Adam with a step decaying geometrically from ``start`` to ``end``."""
    rate = (end / start) ** (1.0 / steps)
    return optim.Adam(lambda i: start * rate**i)


def exact_sampler(key, params, x_batch, k):
    """Exact draws from the current model N(0, P^-1), in place of MCMC."""
    p = jnp.zeros((D, D)).at[TRIL].set(params["l"])
    lower = p.at[jnp.diag_indices(D)].set(jnp.exp(jnp.diag(p)))
    z = jax.random.normal(key, x_batch.shape)
    # x = L^-T z has covariance (L L^T)^-1.
    return jax.scipy.linalg.solve_triangular(lower.T, z.T, lower=False).T


# ---------------------------------------------------------------- recovery
def test_cd_estimator_with_exact_samples_recovers_mle():
    # The CD gradient with exact model samples is the exact ML gradient: only
    # estimator error remains. Tolerance 5%.
    learner = learn.CD(gauss_energy, adam(), k=1, sampler=exact_sampler)
    res = learner.run(jax.random.key(0), 400, X, init_params=P0, batch_size=N)
    assert rel_err(precision(res.params), P_MLE) < 0.05
    assert np.isnan(res.history["acceptance_rate"]).all()  # a callable sampler reports none


def test_pcd_with_mala_recovers_mle():
    # Sampler error added: 5 MALA steps per update on persistent chains. Tolerance 10%.
    learner = learn.CD(gauss_energy, adam(), k=5, persistent=True, sampler="mala",
                       step_size=0.3)
    res = learner.run(jax.random.key(1), 400, X, init_params=P0, batch_size=500)
    assert rel_err(precision(res.params), P_MLE) < 0.10
    h = res.history
    assert 0.5 < h["acceptance_rate"][-50:].mean() <= 1.0
    assert h["diverging"].max() == 0
    assert (h["neg_ess"] > 0).all() and (h["neg_ess"] <= 500).all()
    assert set(h) >= {"loss", "grad_norm", "energy_data", "energy_neg", "acceptance_rate",
                      "neg_ess"}
    # "acceptance", its deprecated name, reads the same array for one release.
    np.testing.assert_array_equal(h["acceptance"], h["acceptance_rate"])


def test_pcd_pool_of_chains_larger_than_the_batch():
    """chains=N keeps N persistent chains whatever the batch: all N are advanced
    (the sampler sees the whole pool) and all N enter the negative phase."""
    seen = []

    def shift(key, params, x_batch, k):
        seen.append(x_batch.shape)
        return x_batch + 1.0

    learner = learn.CD(gauss_energy, optim.Adam(1e-2), k=1, persistent=True, sampler=shift,
                       chains=70)
    state = learner.init(jax.random.key(3), X, P0, batch_size=20)
    pool = np.asarray(state.extra["chains"])
    assert pool.shape == (70, D) and seen == [(70, D)]
    # The pool starts at data points.
    assert all(np.any(np.all(X == row, axis=1)) for row in pool)
    state2, info = jax.jit(learner.update_with_info)(state, X[:20])
    np.testing.assert_allclose(state2.extra["chains"], pool + 1.0, rtol=1e-6)
    e_pool = float(np.mean(learner.batch_energy(P0, pool + 1.0)))
    e_batch = float(np.mean(learner.batch_energy(P0, X[:20])))
    np.testing.assert_allclose(info["energy_neg"], e_pool, rtol=1e-5)
    np.testing.assert_allclose(info["loss"], e_batch - e_pool, rtol=1e-5)
    # ...not the first batch-size rows only (a mean over 20 of them differs).
    assert abs(e_pool - float(np.mean(learner.batch_energy(P0, pool[:20] + 1.0)))) > 1e-3
    # A pool larger than the data starts at data points drawn with replacement.
    big = learn.CD(gauss_energy, optim.Adam(1e-2), k=1, persistent=True, sampler=shift,
                   chains=3 * N).init(jax.random.key(4), X, P0, batch_size=20)
    assert big.extra["chains"].shape == (3 * N, D)


def test_pcd_pool_with_exact_samples_recovers_mle():
    # The pool size changes the negative phase's variance, not its target: with
    # exact draws from the model, 2000 chains and batches of 100 still reach the
    # MLE. Tolerance 5%, as for the full-batch exact-sample test.
    learner = learn.CD(gauss_energy, adam(), k=1, persistent=True, sampler=exact_sampler,
                       chains=2000)
    res = learner.run(jax.random.key(5), 400, X, init_params=P0, batch_size=100)
    assert rel_err(precision(res.params), P_MLE) < 0.05


def test_cd_without_negative_phase_fails_to_recover():
    # Negative control: k=0 leaves the negatives at the data, the gradient is
    # zero, and the precision never leaves its start (the identity).
    learner = learn.CD(gauss_energy, adam(), k=0)
    res = learner.run(jax.random.key(2), 50, X, init_params=P0, batch_size=N)
    assert rel_err(precision(res.params), P_MLE) > 0.3
    np.testing.assert_allclose(precision(res.params), np.eye(D), atol=1e-6)
    np.testing.assert_allclose(res.history["neg_ess"], 0.0)


def test_ssm_recovers_mle():
    # SSM's expected loss on the empirical data is tr(P S P)/2 - tr P,
    # minimised at inv(S). Tolerance 5%.
    learner = learn.SSM(gauss_energy, adam(), n_projections=4)
    res = learner.run(jax.random.key(3), 400, X, init_params=P0, batch_size=N)
    assert rel_err(precision(res.params), P_MLE) < 0.05


def test_dsm_recovers_noised_precision():
    sigma = 0.3
    learner = learn.DSM(gauss_energy, adam(), sigma=sigma)
    res = learner.run(jax.random.key(4), 400, X, init_params=P0, batch_size=N)
    target = np.linalg.inv(S_HAT + sigma**2 * np.eye(D))
    # Tolerance 5% against DSM's own optimum; that optimum is biased against the MLE.
    assert rel_err(precision(res.params), target) < 0.05
    assert rel_err(target, P_MLE) > 0.1


def test_nce_recovers_mle_and_log_z():
    learner = learn.NCE(gauss_energy, adam(), noise_ratio=4)
    res = learner.run(jax.random.key(5), 400, X, init_params=P0, batch_size=N)
    p = precision(res.params)
    # NCE is consistent but less efficient than ML: tolerance 10%.
    assert rel_err(p, P_MLE) < 0.10
    analytic = 0.5 * D * np.log(2 * np.pi) - 0.5 * np.linalg.slogdet(p)[1]
    assert abs(res.log_z - analytic) < 0.05  # nats
    assert res.history["log_z"][-1] == pytest.approx(res.log_z, abs=1e-3)  # before the last step


@pytest.mark.slow
def test_nce_with_user_noise_distribution():
    noise = dist.Normal(0.0, 2.0).expand([D]).to_event(1)
    learner = learn.NCE(gauss_energy, adam(), noise=noise, noise_ratio=4)
    res = learner.run(jax.random.key(6), 400, X, init_params=P0, batch_size=N)
    p = precision(res.params)
    assert rel_err(p, P_MLE) < 0.15
    analytic = 0.5 * D * np.log(2 * np.pi) - 0.5 * np.linalg.slogdet(p)[1]
    assert abs(res.log_z - analytic) < 0.1


# ------------------------------------------------------------- pure API, jit
def quad_energy(params, x):
    # Few primitives: eager (op-by-op) execution compiles each one once.
    return 0.5 * jnp.sum((params["a"] @ x) ** 2)


Q0 = {"a": jnp.eye(D)}


def normal_sampler(key, params, x_batch, k):
    return jax.random.normal(key, x_batch.shape)


@pytest.mark.parametrize("make", [
    lambda: learn.CD(quad_energy, optim.Adam(1e-2), k=1, sampler=normal_sampler),
    pytest.param(lambda: learn.CD(quad_energy, optim.Adam(1e-2), k=1, sampler="langevin",
                                  step_size=0.05), marks=pytest.mark.slow),
    pytest.param(lambda: learn.CD(quad_energy, optim.Adam(1e-2), k=3, persistent=True,
                                  buffer_size=64, sampler="mala", step_size=0.2),
                 marks=pytest.mark.slow),
    pytest.param(lambda: learn.NCE(quad_energy, optim.Adam(1e-2)), marks=pytest.mark.slow),
    pytest.param(lambda: learn.DSM(quad_energy, optim.Adam(1e-2), sigma=0.1),
                 marks=pytest.mark.slow),
    lambda: learn.SSM(quad_energy, optim.Adam(1e-2), n_projections=2),
], ids=["cd", "cd-langevin", "replay", "nce", "dsm", "ssm"])
def test_update_jit_equals_eager(make):
    learner = make()
    state = learner.init(jax.random.key(7), X, Q0, batch_size=32)
    batch = jnp.asarray(X[:32])
    s_eager, loss_eager = learner.update(state, batch)
    s_jit, loss_jit = jax.jit(learner.update)(state, batch)
    np.testing.assert_allclose(loss_jit, loss_eager, rtol=1e-4, atol=1e-5)
    for a, b in zip(jax.tree.leaves(learner.get_params(s_jit)),
                    jax.tree.leaves(learner.get_params(s_eager)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    s2, _ = learner.update(s_eager, batch)
    assert int(s2.optim_state[0]) == 2


def test_same_key_same_result():
    learner = learn.CD(gauss_energy, optim.Adam(1e-2), k=2, persistent=True)

    def fit(seed):
        return learner.run(jax.random.key(seed), 20, X, init_params=P0, batch_size=50).losses

    first = fit(9)
    np.testing.assert_array_equal(first, fit(9))
    assert not np.array_equal(first, fit(10))


def test_eval_hook_progress_object_and_continuation():
    seen = []

    class Meter:
        def start(self, total, description):
            seen.append(("start", total))

        def update(self, n, postfix):
            seen.append(("update", n, postfix["loss"]))

        def close(self):
            seen.append(("close",))

    learner = learn.SSM(gauss_energy, optim.Adam(1e-2))
    res = learner.run(jax.random.key(10), 20, X, init_params=P0, batch_size=64,
                      progress=Meter(), eval_every=10,
                      eval_fn=lambda p: -rel_err(precision(p), P_MLE))
    np.testing.assert_array_equal(res.history["eval_step"], [10, 20])
    assert len(res.history["eval"]) == 2
    assert [s[1] for s in seen if s[0] == "update"] == [10, 10]
    assert seen[0] == ("start", 20) and seen[-1] == ("close",)

    # continue from the returned state: the step count carries on and the
    # compiled chunk (10 steps) is reused
    with emc.compilations() as traced:
        more = learner.run(jax.random.key(10), 10, X, init_state=res.state, batch_size=64)
    assert int(more.state.optim_state[0]) == 30
    assert len(more.losses) == 10 and np.isfinite(more.losses).all()
    assert traced["_chunk"] == 0, traced
    assert more.timing["per_update_s"] > 0


# --------------------------------------------------------- numpyro.param style
def test_numpyro_param_energy():
    def energy(x):
        prec = numpyro.param("prec", jnp.ones(D), constraint=constraints.positive)
        return 0.5 * jnp.sum(prec * x**2)

    learner = learn.SSM(energy, adam(), n_projections=2)
    res = learner.run(jax.random.key(11), 400, X, batch_size=N)
    assert set(res.params) == {"prec"}
    # The diagonal model's ML precision is 1 / mean(x_i^2); 5%.
    np.testing.assert_allclose(res.params["prec"], 1.0 / np.mean(X**2, 0), rtol=0.05)
    assert learner.energy(res.params, X[0]).shape == ()
    # init_params overrides a site's initial value
    state = learner.init(jax.random.key(0), X, {"prec": jnp.full(D, 2.0)})
    np.testing.assert_allclose(learner.get_params(state)["prec"], 2.0, rtol=1e-6)


def test_numpyro_param_energy_with_cd_callable_sampler_gets_user_params():
    got = {}

    def energy(x):
        prec = numpyro.param("prec", jnp.ones(D), constraint=constraints.positive)
        return 0.5 * jnp.sum(prec * x**2)

    def sampler(key, params, x_batch, k):
        got["keys"] = sorted(params)
        return x_batch / jnp.sqrt(params["prec"]) * 0.0 + jax.random.normal(key, x_batch.shape)

    learner = learn.CD(energy, optim.Adam(1e-2), k=1, sampler=sampler)
    learner.init(jax.random.key(12), X, batch_size=16)  # init checks the sampler's output
    assert got["keys"] == ["prec"]


# ------------------------------------------------------------ score-based row
def test_annealed_langevin_reaches_smallest_level():
    # Noise-conditional energy of N(0, s^2 I) convolved with N(0, sigma^2 I):
    # the annealed chain should end with variance s^2 + sigma_L^2 (no denoising).
    s2 = 1.0

    def energy(params, x, sigma):
        return 0.5 * jnp.sum(x**2) / (params["s2"] + sigma**2)

    sigmas = learn.geometric_sigmas(3.0, 0.3, 5)
    x0 = jax.random.uniform(jax.random.key(13), (2000, 2), minval=-4, maxval=4)
    x = learn.annealed_langevin(jax.random.key(14), energy, {"s2": jnp.asarray(s2)}, x0,
                                sigmas, steps_per_level=60, step_lr=0.1, denoise=False)
    var = float(np.var(np.asarray(x)))
    assert abs(var / (s2 + sigmas[-1] ** 2) - 1) < 0.1
    xd = learn.annealed_langevin(jax.random.key(14), energy, {"s2": jnp.asarray(s2)}, x0,
                                 sigmas, steps_per_level=60, step_lr=0.1, denoise=True)
    assert float(np.var(np.asarray(xd))) < var  # denoising shrinks towards the data


def test_multilevel_dsm_on_gaussian():
    # With E(x, sigma) = x^T P x / (2 (1 + sigma^2 c)) ... simplest exact case:
    # isotropic data and energy x^2 / (2 (v + sigma^2)) with learned v.
    rng = np.random.default_rng(15)
    x = rng.normal(0.0, 1.5, size=(2000, 2)).astype(np.float32)

    def energy(params, x, sigma):
        return 0.5 * jnp.sum(x**2) / (jnp.exp(params["log_v"]) + sigma**2)

    learner = learn.DSM(energy, adam(), sigmas=[1.0, 0.5, 0.1])
    res = learner.run(jax.random.key(16), 400, x, init_params={"log_v": jnp.asarray(0.0)},
                      batch_size=2000)
    assert float(np.exp(res.params["log_v"])) == pytest.approx(float(np.mean(x**2)), rel=0.05)
    samples = learner.sample(jax.random.key(17), res.params, jnp.zeros((500, 2)),
                             steps_per_level=30, step_lr=0.05)
    assert samples.shape == (500, 2) and np.isfinite(np.asarray(samples)).all()


# ------------------------------------------------------------------ bad input
def test_bad_data_and_energy_raise_clear_errors():
    cd = learn.CD(gauss_energy, optim.Adam(1e-2))
    key = jax.random.key(0)
    with pytest.raises(emc.EnergyError, match=r"\(n_points, \*event_shape\)"):
        cd.run(key, 5, X[:, 0], init_params=P0)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(emc.EnergyError, match="NaN or infinite.*rows: \\[3\\]"):
        cd.run(key, 5, bad, init_params=P0)
    with pytest.raises(emc.EnergyError, match="must be a scalar.*ONE point"):
        learn.SSM(lambda p, x: x * p["l"][:3], optim.Adam(1e-2)).run(key, 5, X, init_params=P0)
    with pytest.raises(emc.EnergyError, match="init_params is required"):
        cd.run(key, 5, X)
    with pytest.raises(emc.EnergyError, match="raised"):
        cd.run(key, 5, X[:, :2], init_params=P0)  # wrong point shape for the energy
    with pytest.raises(emc.OptionError, match="batch_size=5000 exceeds"):
        cd.run(key, 5, X, init_params=P0, batch_size=5000)
    state = cd.init(key, X, P0)
    with pytest.raises(emc.EnergyError, match="batch has shape \\(8, 2\\)"):
        cd.update(state, X[:8, :2])
    with pytest.raises(emc.EnergyError, match="no numpyro.param sites"):
        learn.SSM(lambda x: jnp.sum(x**2), optim.Adam(1e-2)).run(key, 5, X)


def test_learners_take_optax_transforms_as_numpyro_wraps_them():
    """An optax transform is wrapped with optax_to_numpyro, as NumPyro's SVI does:
    the same updates, bit for bit, as the user wrapping it by hand."""
    import optax

    def fit(opt):
        return learn.DSM(gauss_energy, opt, sigma=0.5).run(
            jax.random.key(3), 5, X, P0, batch_size=32, progress=False)

    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-2))
    direct, wrapped = fit(tx), fit(optim.optax_to_numpyro(tx))
    np.testing.assert_array_equal(direct.params["l"], wrapped.params["l"])
    np.testing.assert_array_equal(direct.losses, wrapped.losses)
    # Negative control: the updates did move the parameters (equal-because-unchanged fails).
    assert not np.array_equal(direct.params["l"], P0["l"])


def test_bad_options_raise_before_compiling():
    with pytest.raises(emc.OptionError, match="optax GradientTransformation"):
        learn.CD(gauss_energy, object())
    with pytest.raises(emc.OptionError, match="unknown method 'gibs'"):
        learn.CD(gauss_energy, optim.Adam(1e-2), sampler="gibs")
    with pytest.raises(emc.OptionError, match="unknown option"):
        learn.CD(gauss_energy, optim.Adam(1e-2), sampler="mala", sampler_options={"foo": 1})
    with pytest.raises(emc.OptionError, match="k must be an integer"):
        learn.CD(gauss_energy, optim.Adam(1e-2), k=-1)
    with pytest.raises(emc.OptionError, match="persistent=True"):
        learn.CD(gauss_energy, optim.Adam(1e-2), buffer_size=100)
    with pytest.raises(emc.OptionError, match="chains= sets the size of the pool"):
        learn.CD(gauss_energy, optim.Adam(1e-2), chains=100)
    with pytest.raises(emc.OptionError, match="without buffer_size"):
        learn.CD(gauss_energy, optim.Adam(1e-2), persistent=True, buffer_size=100, chains=100)
    with pytest.raises(emc.OptionError, match="chains must be an integer >= 1"):
        learn.CD(gauss_energy, optim.Adam(1e-2), persistent=True, chains=0)
    with pytest.raises(emc.OptionError, match="reinit_prob"):
        learn.CD(gauss_energy, optim.Adam(1e-2), persistent=True, buffer_size=10,
                 reinit_prob=1.5)
    with pytest.raises(emc.OptionError, match="smaller than batch_size"):
        learn.CD(gauss_energy, optim.Adam(1e-2), persistent=True, buffer_size=10).run(
            jax.random.key(0), 5, X, init_params=P0, batch_size=20)
    with pytest.raises(emc.OptionError, match="must return an array shaped like x_batch"):
        learn.CD(gauss_energy, optim.Adam(1e-2), sampler=lambda k, p, x, n: x[:, 0]).run(
            jax.random.key(0), 5, X, init_params=P0)
    with pytest.raises(emc.OptionError, match="at most one of sigma"):
        learn.DSM(gauss_energy, optim.Adam(1e-2), sigma=0.1, sigmas=[1.0, 0.1])
    with pytest.raises(emc.OptionError, match="antithetic"):
        learn.DSM(gauss_energy, optim.Adam(1e-2), antithetic="yes")
    with pytest.raises(emc.OptionError, match="needs step_size="):
        learn.CD(gauss_energy, optim.Adam(1e-2), sampler="mclmc",
                 sampler_options={"L": 1.0})
    with pytest.raises(emc.OptionError, match="sigmas must be"):
        learn.DSM(lambda p, x, s: gauss_energy(p, x), optim.Adam(1e-2), sigmas=[1.0, -1.0])
    with pytest.raises(emc.EnergyError, match="noise has batch\\+event shape"):
        learn.NCE(gauss_energy, optim.Adam(1e-2), noise=dist.Normal(0.0, 1.0)).run(
            jax.random.key(0), 5, X, init_params=P0)
    with pytest.raises(emc.OptionError, match="noise_ratio"):
        learn.NCE(gauss_energy, optim.Adam(1e-2), noise_ratio=0)
    with pytest.raises(emc.OptionError, match="eval_every and eval_fn"):
        learn.SSM(gauss_energy, optim.Adam(1e-2)).run(jax.random.key(0), 5, X,
                                                      init_params=P0, eval_every=2)
    # checks="no" is truthy: it must not pass for checks=True
    with pytest.raises(emc.OptionError, match="checks must be True or False; got 'no'"):
        learn.SSM(gauss_energy, optim.Adam(1e-2)).run(jax.random.key(0), 5, X,
                                                      init_params=P0, checks="no")


@pytest.mark.parametrize("sampler", ["block_gibbs", pytest.param("gibbs", marks=pytest.mark.slow),
                                     pytest.param("gwg", marks=pytest.mark.slow)])
def test_cd_with_rbm_block_gibbs_raises_exact_likelihood(sampler):
    # A model brings its own sampler: RBM block Gibbs through sampler=, exact
    # log-likelihood (enumeration) as the eval hook. Discrete energymc kernels
    # by name (support read from the 0/1 data) in the slow tier.
    from energymc.models import RBM

    rbm = RBM(6, 3)
    rng = np.random.default_rng(18)
    protos = np.array([[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]], dtype=np.float32)
    data = protos[rng.integers(0, 2, 300)]
    data = np.abs(data - (rng.uniform(size=data.shape) < 0.05)).astype(np.float32)

    def loglik(params):
        return float(rbm.log_likelihood(params, data, rbm.log_z_exact(params)))

    params0 = rbm.init_params(jax.random.key(0), data)
    # (PCD at a step of 5e-2 oscillates here, as PCD does with large steps.)
    learner = learn.CD(rbm.free_energy, optim.Adam(1e-2), k=1 if sampler == "block_gibbs" else 2,
                       persistent=True,
                       sampler=rbm.block_gibbs if sampler == "block_gibbs" else sampler)
    res = learner.run(jax.random.key(19), 200, data, init_params=params0, batch_size=100,
                      eval_every=200, eval_fn=loglik)
    assert res.history["eval"][-1] > loglik(params0) + 1.0  # nats per point


def test_equinox_network_through_numpyro_eqx_module():
    """A network declared with numpyro.contrib.module.eqx_module is trained like any energy."""
    eqx = pytest.importorskip("equinox")
    from numpyro.contrib.module import eqx_module

    mlp = eqx.nn.MLP(D, "scalar", width_size=16, depth=1, key=jax.random.key(0))

    def energy(x):
        net = eqx_module("net", mlp)
        # A fixed quadratic envelope keeps exp(-E) normalisable whatever the net does.
        return net(x) + 0.5 * jnp.sum(x**2) / 9.0

    learner = learn.DSM(energy, optim.Adam(3e-3), sigma=0.3)
    res = learner.run(jax.random.key(21), 300, X, batch_size=200)
    assert list(res.params) == ["net$params"]
    assert np.isfinite(res.losses).all()
    # Training lowers the denoising loss (first vs last 50 updates).
    assert res.losses[-50:].mean() < res.losses[:50].mean()
    assert learner.energy(res.params, X[0]).shape == ()


def test_heldout_likelihood_by_ais_through_eval_fn():
    """The documented recipe: eval_fn computes held-out log-likelihood with emc.log_partition."""

    def energy_fn(params, x):
        return 0.5 * x @ params["P"] @ x

    learner = learn.SSM(energy_fn, optim.Adam(3e-2))
    test_data = X[:200]
    seen = []

    def heldout_ll(params):
        target = emc.Energy.from_params(energy_fn, params, init=jnp.zeros(D))
        est = emc.log_partition(target, method="ais", seed=0, particles=256, scale=2.0)
        exact = 0.5 * D * np.log(2 * np.pi) - 0.5 * np.linalg.slogdet(params["P"])[1]
        seen.append((float(est.log_z), float(exact), float(est.stderr)))
        return float(-learner.batch_energy(params, test_data).mean() - est.log_z)

    res = learner.run(jax.random.key(22), 200, X, init_params={"P": 0.3 * jnp.eye(D)},
                      batch_size=N, eval_every=100, eval_fn=heldout_ll)
    assert len(res.history["eval"]) == 2
    for log_z, exact, stderr in seen:  # AIS agrees with the Gaussian's analytic log Z
        assert abs(log_z - exact) < max(0.05, 4 * stderr), (log_z, exact, stderr)
    assert res.history["eval"][-1] > res.history["eval"][0]


def test_cd_ema_is_the_debiased_moving_average_of_the_iterates():
    """ema= averages the iterates without touching them: the raw iterates equal
    those of a learner without averaging (same key), and result.params and
    eval_fn get sum_s d^(t-s) (1-d) theta_s / (1 - d^t), computed here by hand."""
    from energymc.models import RBM

    rbm = RBM(6, 3)
    data = (np.random.default_rng(3).uniform(size=(120, 6)) < 0.3).astype(np.float32)
    params0 = rbm.init_params(jax.random.key(0), data)
    d, steps = 0.8, 12

    def make(ema):
        return learn.CD(rbm.free_energy, optim.Adam(5e-2), k=1, persistent=True,
                        sampler=rbm.block_gibbs, ema=ema)

    plain, avg = make(None), make(d)
    s_plain = plain.init(jax.random.key(1), data, params0, batch_size=40)
    s_avg = avg.init(jax.random.key(1), data, params0, batch_size=40)
    assert s_plain.average is None and int(s_avg.average.count) == 0
    # Before any update the "average" is the initial point.
    np.testing.assert_allclose(avg.get_params(s_avg)["W"], params0["W"])
    upd_plain, upd_avg = jax.jit(plain.update), jax.jit(avg.update)
    iterates = []
    for t in range(steps):
        batch = data[(40 * t) % 120:(40 * t) % 120 + 40]
        s_plain, _ = upd_plain(s_plain, batch)
        s_avg, _ = upd_avg(s_avg, batch)
        raw = avg.get_params(s_avg, average=False)
        np.testing.assert_allclose(raw["W"], plain.get_params(s_plain)["W"], rtol=1e-6)
        iterates.append(raw)
    w = (1 - d) * d ** np.arange(steps - 1, -1, -1)
    for name in ("W", "b", "c"):
        stack = np.stack([np.asarray(p[name]) for p in iterates])
        want = np.tensordot(w, stack, axes=1) / w.sum()
        np.testing.assert_allclose(avg.get_params(s_avg)[name], want, rtol=1e-5, atol=1e-6)
        # ...and it is not simply the last iterate.
        assert np.max(np.abs(want - stack[-1])) > 1e-3

    seen = []
    res = avg.run(jax.random.key(2), 10, data, init_params=params0, batch_size=40,
                  progress=False, eval_every=10, eval_fn=lambda p: seen.append(p) or 0.0)
    np.testing.assert_allclose(seen[0]["W"], res.params["W"])
    assert np.max(np.abs(res.params["W"] - avg.get_params(res.state, average=False)["W"])) > 1e-4
    # A state without an average (from a learner without ema) continues with a
    # fresh one. (Same chunk length as above: no second compilation.)
    cont = avg.run(jax.random.key(3), 10, data, init_state=s_plain, batch_size=40,
                   progress=False)
    assert int(cont.state.average.count) == 10
    debias = 1 - d**10
    np.testing.assert_allclose(cont.params["W"], np.asarray(cont.state.average.ema["W"]) / debias,
                               rtol=1e-5)
    with pytest.raises(emc.OptionError, match="ema must be None or a decay"):
        make(1.0)
    with pytest.raises(emc.OptionError, match="ema must be None or a decay"):
        make("fast")


def test_cd_weight_decay_recipe_through_optax_mask():
    """The documented weight-decay recipe: optax.add_decayed_weights(mask=...)
    chained before Adam reaches the parameters through optax_to_numpyro, shrinks
    the masked weights and leaves the unmasked biases to the data."""
    import optax

    from energymc.models import RBM

    rbm = RBM(6, 3)
    data = (np.random.default_rng(4).uniform(size=(120, 6)) < 0.3).astype(np.float32)
    params0 = rbm.init_params(jax.random.key(0), data, scale=1.0)

    def fit(decay, mask):
        tx = optax.chain(optax.add_decayed_weights(decay, mask=mask), optax.adam(5e-2))
        learner = learn.CD(rbm.free_energy, optim.optax_to_numpyro(tx), k=1, persistent=True,
                           sampler=rbm.block_gibbs)
        return learner.run(jax.random.key(1), 100, data, init_params=params0, batch_size=60,
                           progress=False).params

    only_w = {"W": True, "b": False, "c": False}
    free, decayed = fit(0.0, only_w), fit(2.0, only_w)
    assert np.linalg.norm(decayed["W"]) < 0.2 * np.linalg.norm(free["W"])
    # Masked out: the biases are not pulled to zero (they follow the data's base rates).
    assert np.linalg.norm(decayed["b"]) > 0.5 * np.linalg.norm(free["b"]) > 0.1


# ---------------------------------------------------------------- restarts
def _init_near_identity(key):
    """Random initial parameters: each restart starts somewhere else."""
    return {"l": 0.3 * jax.random.normal(key, (len(TRIL[0]),))}


def _score(params):
    return -rel_err(precision(params), P_MLE)


def test_restarts_are_the_single_runs_and_select_keeps_the_best():
    learner = learn.CD(gauss_energy, adam(steps=40), k=1, persistent=False,
                       sampler=exact_sampler)
    key = jax.random.key(21)
    res = learner.run(key, 40, X, init_params=_init_near_identity, batch_size=50,
                      restarts=3, select=_score)
    runs = res.restarts
    assert runs["params"]["l"].shape == (3, len(TRIL[0]))
    assert runs["history"]["loss"].shape == (3, 40)
    # Restart r is the run a plain call with fold_in(key, r) makes.
    for r in range(3):
        single = learner.run(jax.random.fold_in(key, r), 40, X,
                             init_params=_init_near_identity, batch_size=50)
        np.testing.assert_allclose(runs["params"]["l"][r], single.params["l"],
                                   rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(runs["history"]["loss"][r], single.losses,
                                   rtol=1e-4, atol=1e-5)
    # The restarts differ (independent starts and batches), and the kept one
    # is the top score's.
    assert len(set(runs["scores"].tolist())) == 3
    best = int(np.argmax(runs["scores"]))
    assert runs["best"] == best
    np.testing.assert_array_equal(res.params["l"], runs["params"]["l"][best])
    np.testing.assert_array_equal(res.losses, runs["history"]["loss"][best])
    assert runs["scores"][best] == pytest.approx(_score(res.params))
    # The kept run's state continues like any run's.
    more = learner.run(key, 5, X, init_state=res.state, batch_size=50)
    assert int(more.state.optim_state[0]) == 45
    assert "restart" in repr(res)


def test_restarts_without_select_eval_hook_and_non_finite_scores():
    learner = learn.SSM(gauss_energy, optim.Adam(1e-2))
    res = learner.run(jax.random.key(3), 20, X, init_params=_init_near_identity,
                      batch_size=64, restarts=2, eval_every=10, eval_fn=_score)
    assert res.restarts["scores"] is None and res.restarts["best"] == 0
    assert "restart 0 of 2" in repr(res)
    np.testing.assert_array_equal(res.params["l"], res.restarts["params"]["l"][0])
    assert res.history["eval"].shape == (2,)  # the kept run's evaluations
    assert res.restarts["history"]["eval"].shape == (2, 2)
    np.testing.assert_array_equal(res.history["eval_step"], [10, 20])

    # A NaN score never wins; no finite score at all keeps restart 0 with a warning.
    scores = iter([np.nan, 5.0, 2.0])  # select is called once per restart, in order
    nan_first = learner.run(jax.random.key(3), 5, X, init_params=_init_near_identity,
                            restarts=3, select=lambda p: next(scores))
    assert nan_first.restarts["best"] == 1  # np.argmax alone would pick the NaN
    with pytest.warns(RuntimeWarning, match="no finite score"):
        none = learner.run(jax.random.key(3), 5, X, init_params=_init_near_identity,
                           restarts=2, select=lambda p: np.nan)
    assert none.restarts["best"] == 0


def test_restart_options_are_checked_before_compiling():
    learner = learn.SSM(gauss_energy, optim.Adam(1e-2))
    with pytest.raises(emc.OptionError, match="restarts must be an integer >= 1"):
        learner.run(jax.random.key(0), 5, X, init_params=P0, restarts=0)
    with pytest.raises(emc.OptionError, match="select= chooses among restarts"):
        learner.run(jax.random.key(0), 5, X, init_params=P0, select=_score)
    with pytest.raises(emc.OptionError, match="select must be a callable"):
        learner.run(jax.random.key(0), 5, X, init_params=P0, restarts=2, select=1.0)
    res = learner.run(jax.random.key(0), 5, X, init_params=P0)
    with pytest.raises(emc.OptionError, match="init_state continues one run"):
        learner.run(jax.random.key(0), 5, X, init_state=res.state, restarts=2)
    with pytest.raises(emc.OptionError, match="must return a real number"):
        learner.run(jax.random.key(0), 5, X, init_params=P0, restarts=2,
                    select=lambda p: "best")


def test_a_learner_set_up_anew_on_other_data_never_reuses_a_stale_trace():
    """What init learns from the data lives in a set-up learner that the compiled
    update takes as a static argument. DSM's default noise level is chosen from
    the data: after a run on X, a run on 10 X (same shapes, so the same cache
    key if the trace read the learner's attributes) must be the run a fresh
    learner makes on 10 X; a second run on X reuses the first compilation."""
    learner = learn.DSM(gauss_energy, optim.Adam(1e-2))
    kw = dict(init_params=P0, progress=False)
    x = X[:20]
    first = learner.run(jax.random.key(4), 2, x, **kw)
    with emc.compilations() as traced_scaled:
        scaled = learner.run(jax.random.key(4), 2, 10 * x, **kw)
    fresh = learn.DSM(gauss_energy, optim.Adam(1e-2)).run(jax.random.key(4), 2, 10 * x, **kw)
    np.testing.assert_array_equal(scaled.losses, fresh.losses)
    assert learner.sigmas[0] == pytest.approx(learn.default_sigma(10 * x))
    # Negative control: the two data sets do give different losses.
    assert not np.allclose(first.losses, scaled.losses)
    with emc.compilations() as traced_again:
        again = learner.run(jax.random.key(4), 2, x, **kw)
    np.testing.assert_array_equal(again.losses, first.losses)
    # The other data's set-up compiled the training chunk anew; the same data's
    # reused the first compilation (counted through emc.compilations()).
    assert traced_scaled["run_chunk"] == 1, traced_scaled
    assert traced_again["run_chunk"] == 0, traced_again


# ------------------------------------------------------------- seed= and key=
def test_run_and_init_take_seed_positionally_or_by_keyword_and_key_with_a_warning():
    import warnings

    learner = learn.CD(gauss_energy, adam(), k=1, sampler=exact_sampler)
    x = X[:32]
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        ref = learner.run(jax.random.key(3), 2, x, init_params=P0, batch_size=16)
        same = learner.run(seed=3, num_steps=2, data=x, init_params=P0, batch_size=16)
        state = learner.init(seed=3, data=x, init_params=P0, batch_size=16)
    np.testing.assert_array_equal(same.losses, ref.losses)
    with pytest.warns(DeprecationWarning, match="key= is deprecated") as rec:
        old = learner.run(key=jax.random.key(3), num_steps=2, data=x, init_params=P0,
                          batch_size=16)
        old_state = learner.init(key=3, data=x, init_params=P0, batch_size=16)
    assert {r.filename for r in rec} == {__file__}  # the warning names the caller's line
    np.testing.assert_array_equal(old.losses, ref.losses)
    np.testing.assert_array_equal(jax.random.key_data(old_state.key),
                                  jax.random.key_data(state.key))
    # Negative control: another seed gives another run.
    assert not np.array_equal(learner.run(4, 2, x, init_params=P0, batch_size=16).losses,
                              ref.losses)
    with pytest.raises(emc.errors.OptionError, match="seed= only"):
        learner.init(seed=3, key=3, data=x, init_params=P0)
    with pytest.raises(emc.errors.OptionError, match=r"needs seed=, num_steps="):
        learner.run(data=x)
