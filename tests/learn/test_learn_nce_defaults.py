"""NCE's defaults on off-origin Gaussians: the balanced ``log_z``, its old
optimiser-driven start, and the check that flags a stuck run.

The data: 1000 points of a 3-d Gaussian with a dense covariance and mean
``(1, -0.5, 0.5)`` (0.5-1 sd from the origin). The energy
``E(x) = (x - mu)^T L L^T (x - mu) / 2`` (``L`` lower triangular with a
log-parametrised diagonal) starts at ``mu = 0``, ``L = I``; its maximum-likelihood
optimum is closed-form (the sample mean and the inverse of the biased sample
covariance). The optimiser is the user's, as in ``benchmarks/zoo_learn.py``:
Adam with a step decaying geometrically from 5e-2 to 1e-3.

Checks: default NCE (``log_z_update="balance"``) reaches the MLE precision
within 5% (relative Frobenius error) and the mean within 0.1 sd. Negative
control: the old default, ``log_z`` a parameter of the optimiser started at
0, misses by more than 20% (measured: 1.2% against 41%, seed 0), so the check
can fail; the stuck check flags that old run too. It also flags a default run
whose mean starts 8 sds from the data (74% error; ``benchmarks/RESULTS.md``,
"NCE's stall"), and does not flag the good default run (its negative control).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import numpyro.optim as optim
import pytest
from scipy.optimize import brentq

from energymc import learn
from energymc.errors import OptionError
from energymc.learn.nce import balance_log_z, chance_loss

DIM = 3
COV = np.array([[2.0, 0.8, 0.0], [0.8, 1.0, -0.3], [0.0, -0.3, 0.5]])
MEAN = np.array([1.0, -0.5, 0.5])
STEPS = 600
TRIL = np.tril_indices(DIM)


def _data(mean=MEAN):
    x = np.random.default_rng(0).multivariate_normal(mean, COV, size=1000).astype(np.float32)
    x64 = x.astype(float)
    mu_hat = x64.mean(0)
    s_hat = (x64 - mu_hat).T @ (x64 - mu_hat) / len(x64)
    return x, mu_hat, np.linalg.inv(s_hat), np.sqrt(np.diag(s_hat))


def _energy(params, x):
    lower = jnp.zeros((DIM, DIM), x.dtype).at[TRIL].set(params["l"])
    lower = lower.at[jnp.diag_indices(DIM)].set(jnp.exp(jnp.diag(lower)))
    y = lower.T @ (x - params["mu"])
    return 0.5 * y @ y


def _precision(params):
    lower = np.zeros((DIM, DIM))
    lower[TRIL] = np.asarray(params["l"], float)
    lower[np.diag_indices(DIM)] = np.exp(np.diag(lower))
    return lower @ lower.T


def _init():
    return {"l": jnp.zeros(len(TRIL[0])), "mu": jnp.zeros(DIM)}


@functools.cache
def _fit(mean=tuple(MEAN), **options):
    x, mu_hat, p_mle, sd = _data(np.asarray(mean))
    rate = (1e-3 / 5e-2) ** (1.0 / STEPS)
    learner = learn.NCE(_energy, optim.Adam(lambda i: 5e-2 * rate**i), **options)
    res = learner.run(jax.random.key(0), STEPS, x, init_params=_init(), progress=False)
    p = _precision(res.params)
    err = float(np.linalg.norm(p - p_mle) / np.linalg.norm(p_mle))
    mean_sd = float(np.max(np.abs(np.asarray(res.params["mu"]) - mu_hat) / sd))
    return err, mean_sd, res


def test_default_balanced_log_z_recovers_off_origin_gaussian():
    err, mean_sd, res = _fit()
    assert err < 0.05, f"precision error {err:.3f}"
    assert mean_sd < 0.1, f"mean {mean_sd:.3f} sd off"
    # log_z is the learned normaliser of exp(-E): the Gaussian's, within 0.05 nats.
    analytic = 0.5 * DIM * np.log(2 * np.pi) - 0.5 * np.linalg.slogdet(_precision(res.params))[1]
    assert abs(res.log_z - analytic) < 0.05
    assert res.problems == []  # the stuck check's negative control


def test_old_optimiser_log_z_misses_negative_control():
    # The default before 2026-12-03: log_z by the optimiser, noise fitted to the data alone.
    with pytest.warns(UserWarning, match="NCE is stuck"):
        err, _, res = _fit(log_z_update="optimiser", model_noise=0.0)
    assert res.history["log_z"][0] == 0.0
    assert err > 0.20, f"the old default reached {err:.3f}; the check above could not fail"
    assert len(res.problems) == 1  # and the stuck check caught it


def test_model_following_noise_brings_a_far_mean_home():
    """A mean started 3 sds from the data: the default noise, half of it a Gaussian
    following the model's chains, brings it home (measured 8.9% / 0.09 sd);
    the fitted noise alone stalls and is flagged (42% / 3.4 sd)."""
    err, mean_sd, res = _fit(mean=(3.0, -2.0, 2.0))
    assert mean_sd < 0.2 and err < 0.15, (err, mean_sd)
    assert res.problems == []
    assert 0.45 < np.mean(res.history["model_acceptance"][-100:]) < 0.7  # MALA's 0.574
    with pytest.warns(UserWarning, match="NCE is stuck"):
        err, mean_sd, res = _fit(mean=(3.0, -2.0, 2.0), model_noise=0.0)
    assert mean_sd > 2.0 and err > 0.3, (err, mean_sd)


def test_model_noise_where_it_applies():
    x, _, _, _ = _data()
    key = jax.random.key(0)
    real = learn.NCE(_energy, optim.Adam(1e-2)).init(key, x, _init(), batch_size=64)
    assert real.extra["chains"].shape == (64, DIM)
    # Off: model_noise=0, a user's noise, or 0/1 data (no gradient-based chain on them).
    off = learn.NCE(_energy, optim.Adam(1e-2), model_noise=0.0).init(key, x, _init())
    assert "chains" not in off.extra
    noise = dist.Normal(jnp.zeros(DIM), 3.0).to_event(1)
    user = learn.NCE(_energy, optim.Adam(1e-2), noise=noise).init(key, x, _init())
    assert "chains" not in user.extra
    bits = (x > 0).astype(np.float32)
    binary = learn.NCE(_energy, optim.Adam(1e-2)).init(key, bits, _init())
    assert "chains" not in binary.extra
    for bad in (1.0, -0.1, "half"):
        with pytest.raises(OptionError, match="model_noise"):
            learn.NCE(_energy, optim.Adam(1e-2), model_noise=bad)
    with pytest.raises(OptionError, match="noise= your distribution"):
        learn.NCE(_energy, optim.Adam(1e-2), noise=noise, model_noise=0.5)


@pytest.mark.slow
def test_stuck_run_is_flagged():
    """A mean 8 sds from the data: NCE stays far off, and says so (the
    model-following noise does not reach that far in 600 updates: 54%).

    Slow: the default tier already sees the check fire (the old default's
    stall above) and stay quiet (the default run)."""
    with pytest.warns(UserWarning, match="NCE is stuck"):
        err, _, res = _fit(mean=(8.0, -6.0, 5.0))
    assert err > 0.2  # the run really is wrong (the check has something to catch)
    assert len(res.problems) == 1 and "loss averaged" in res.problems[0]


@pytest.mark.slow
def test_balanced_data_start_with_optimiser_log_z():
    """``init_log_z="data"`` (optimiser-driven log_z): 1.2% on this task."""
    err, mean_sd, res = _fit(log_z_update="optimiser", init_log_z="data")
    assert err < 0.05, f"precision error {err:.3f}"
    assert mean_sd < 0.1, f"mean {mean_sd:.3f} sd off"
    assert res.history["log_z"][0] != 0.0


def test_balance_log_z_is_the_loss_minimiser():
    """The root of the loss's derivative, against scipy's brentq; NaNs left out."""
    rng = np.random.default_rng(3)
    solve = jax.jit(balance_log_z)  # one compilation for every case below
    for nu, shift in [(1.0, 0.0), (3.0, -40.0), (0.5, 25.0)]:
        a = rng.normal(shift, 2.0, 200)
        b = rng.normal(shift - 1.0, 3.0, 200)

        def slope(c, a=a, b=b, nu=nu):
            return np.mean(1 / (1 + np.exp(-(c - a)))) - nu * np.mean(1 / (1 + np.exp(-(b - c))))

        want = brentq(slope, shift - 100, shift + 100, xtol=1e-10)
        got = float(solve(jnp.asarray(a), jnp.asarray(b), jnp.float32(nu)))
        assert got == pytest.approx(want, abs=1e-4)
        a[0], b[0] = np.nan, np.inf  # left out: the root of the other points
        want = brentq(slope, shift - 100, shift + 100, args=(a[1:], b[1:]), xtol=1e-10)
        got = float(solve(jnp.asarray(a), jnp.asarray(b), jnp.float32(nu)))
        assert got == pytest.approx(want, abs=1e-4)
    assert np.isnan(float(solve(jnp.full(200, jnp.nan), jnp.zeros(200), jnp.float32(1.0))))
    assert chance_loss(1.0) == pytest.approx(2 * np.log(2))


def test_balanced_start_centres_the_log_odds():
    """The "data" start (optimiser-driven log_z) is where the median log-odds is 0."""
    x, _, _, _ = _data()
    learner = learn.NCE(_energy, optim.Adam(1e-2), init_log_z="data", log_z_update="optimiser",
                        model_noise=0.0)  # the noise: the fitted Gaussian below
    state = learner.init(jax.random.key(0), x, _init())
    log_z = float(learner.get_log_z(state))
    e = np.asarray(jax.vmap(lambda p: _energy(_init(), p))(jnp.asarray(x)))
    loc, cov = x.astype(float).mean(0), np.cov(x.astype(float), rowvar=False)
    cov = cov + (1e-3 * np.trace(cov) / DIM + 1e-6) * np.eye(DIM)  # the noise's ridge
    diff = x.astype(float) - loc
    logpn = (-0.5 * np.einsum("ni,ij,nj->n", diff, np.linalg.inv(cov), diff)
             - 0.5 * np.linalg.slogdet(2 * np.pi * cov)[1])
    g = -e - log_z - logpn  # noise_ratio 1: log nu = 0
    assert abs(float(np.median(g))) < 1e-3
    # A given start is kept.
    state = learn.NCE(_energy, optim.Adam(1e-2), init_log_z=-3.0,
                      log_z_update="optimiser").init(jax.random.key(0), x, _init())
    assert float(learner.get_log_z(state)) == -3.0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "zero"])
def test_init_log_z_must_be_a_finite_number(bad):
    with pytest.raises(OptionError, match="init_log_z"):
        learn.NCE(_energy, optim.Adam(1e-2), init_log_z=bad, log_z_update="optimiser")


def test_log_z_options_are_checked():
    with pytest.raises(OptionError, match="log_z_update"):
        learn.NCE(_energy, optim.Adam(1e-2), log_z_update="adam")
    with pytest.raises(OptionError, match="init_log_z applies"):
        learn.NCE(_energy, optim.Adam(1e-2), init_log_z=1.0, log_z_update="balance")
    # Code written before "balance" existed keeps its behaviour: a start for
    # log_z selects the optimiser; without one the default balances.
    assert learn.NCE(_energy, optim.Adam(1e-2), init_log_z=1.0).log_z_update == "optimiser"
    assert learn.NCE(_energy, optim.Adam(1e-2)).log_z_update == "balance"
