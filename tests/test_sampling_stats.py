"""Statistical tier: every continuous method against Gaussians with known moments.

Each case checks R-hat and ESS first, then Monte Carlo standard-error
z-scores of means, variances and correlations. A case yields at most 9
z-scores; the limit |z| < 3.5 keeps the chance of a false alarm per case near
0.4% even before the literal seeds make every run replay exactly. The
negative control (a badly biased unadjusted Langevin) must fail the same
harness.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import mean_and_mcse, mcse_z_scores

import energymc as emc

Z_LIMIT = 3.5


def _gaussian(mean, cov, name):
    mean = jnp.asarray(mean, jnp.float32)
    chol = jnp.linalg.cholesky(jnp.asarray(cov, jnp.float32))

    def energy(x):
        # Whitened form: d @ inv(cov) @ d in float32 can come out negative far
        # in the tails (cancellation), a bogus low energy a sampler then keeps.
        z = jax.scipy.linalg.solve_triangular(chol, x - mean, lower=True)
        return 0.5 * jnp.sum(z**2)

    energy.__name__ = name
    return emc.Energy(energy, init=jnp.zeros(mean.shape[0])), np.asarray(mean), np.asarray(cov)


TARGETS = {
    "isotropic": ([1.0, -1.0, 0.5], np.eye(3)),
    "correlated": ([0.0, 2.0], [[1.0, 1.8], [1.8, 4.0]]),  # rho = 0.9
    "ill_conditioned": ([0.0, 0.0, 0.0], np.diag([1e-4, 1e-2, 1.0])),  # sd 0.01 .. 1
}

# (method, options, draws): unadjusted methods are excluded from variance
# checks where their bias is documented (see test_langevin_bias_is_small).
METHODS = [
    ("nuts", {}, 1000),
    ("hmc", {}, 1000),
    ("mala", {}, 2000),
    ("barker", {}, 2000),
    ("rwm", {}, 4000),
    ("mclmc", {}, 2000),  # rho = 0.9 with a diagonal metric: ESS 360 of 4000 at 1000
]


# The default tier runs each method on one target (rotating, so every target
# and the dense mass matrix are covered); the whole table runs with -m slow.
FAST_CASES = {("nuts", "ill_conditioned"), ("hmc", "correlated"), ("mala", "correlated"),
              ("barker", "ill_conditioned"), ("rwm", "isotropic"), ("mclmc", "isotropic")}
# MCLMC's tuning on the stiff target with this seed mixes slowly (bulk ESS 421
# of 8,000 draws, R-hat 1.0105 after the Threefry change; other seeds ~1,100),
# so its R-hat precondition needs more draws: 4,000 read 1.0034, ESS 719.
MORE_DRAWS = {("mclmc", "ill_conditioned"): 4000}
CASES = [
    pytest.param(m, o, MORE_DRAWS.get((m, t), d), t,
                 marks=() if (m, t) in FAST_CASES else pytest.mark.slow, id=f"{m}-{t}")
    for (m, o, d) in METHODS for t in sorted(TARGETS)
]


@pytest.mark.parametrize("method,options,draws,target_name", CASES)
def test_moments_within_monte_carlo_error(method, options, draws, target_name):
    mean, cov = TARGETS[target_name]
    target, mean, cov = _gaussian(mean, cov, target_name)
    if target_name == "correlated" and method != "mclmc":
        options = {**options, "dense_mass": True}  # rho = 0.9 is what a dense metric is for
    run = emc.sample(target, method, chains=4, draws=draws, warmup=1000, seed=20261129, **options)
    diag = emc.diagnose(run)
    assert diag.numbers["max_rhat"] < 1.01, diag
    assert diag.numbers["min_ess_bulk"] > 400, diag
    z = mcse_z_scores(run.flat_draws, mean, cov)
    for kind, values in z.items():
        assert np.all(np.abs(values) < Z_LIMIT), (kind, values)
    assert 0.0 <= run.stats["acceptance_rate"].min() <= run.stats["acceptance_rate"].max() <= 1.0


# ULA's default caps its step so that the variance along the stiffest direction
# is inflated by at most max_bias = 3% (exact on a Gaussian): a variance may be
# off by that much plus Monte Carlo error, and no more.
MAX_BIAS = 0.03


def _variance_errors(draws, mean, cov):
    """Per coordinate: (relative variance error, its MCSE) of ``(chains, draws, dim)`` draws
    about the true ``mean``."""
    x = np.asarray(draws) - mean
    out = []
    for i in range(x.shape[-1]):
        m, se = mean_and_mcse(x[..., i] ** 2)
        out.append((m / cov[i, i] - 1.0, se / cov[i, i]))
    return np.array(out)


def _within_max_bias(errors):
    return np.abs(errors[:, 0]) < MAX_BIAS + Z_LIMIT * errors[:, 1]


def test_langevin_bias_is_small():
    """ULA is biased by design; with the default step cap the variance error is within
    max_bias (3%) plus Monte Carlo error (it was allowed 15% before the cap)."""
    target, mean, cov = _gaussian(*TARGETS["correlated"], "correlated")
    run = emc.sample(target, "langevin", chains=4, draws=4000, thin=5, warmup=1000, seed=7,
                     dense_mass=True)
    z = mcse_z_scores(run.flat_draws, mean, cov)
    assert np.all(np.abs(z["mean"]) < Z_LIMIT)
    errors = _variance_errors(run.flat_draws, mean, cov)
    # Precise enough that the bound (< 3% + 3.5 * 2.5% = 12%) is tighter than the old 15%.
    assert np.all(errors[:, 1] < 0.025), errors
    assert np.all(_within_max_bias(errors)), errors


# An ill-conditioned correlated Gaussian (sds 0.1 and 10, rho 0.6): with the
# default diagonal preconditioner its whitened curvatures are 0.53 and 2.14.
_SD, _RHO = np.array([0.1, 10.0]), 0.6
ILL_CORR = np.outer(_SD, _SD) * np.array([[1.0, _RHO], [_RHO, 1.0]])


def _ill_corr_run(**options):
    target, _, cov = _gaussian([0.0, 0.0], ILL_CORR, "ill_corr")
    return emc.sample(target, "langevin", chains=4, draws=5000, thin=10, warmup=1000,
                      seed=11, **options), cov


def _analytic_inflation(run, cov):
    """1 / (1 - h lam_max / 2) per chain from the run's own step and diagonal preconditioner."""
    params = run.warmup["params"]
    out = []
    for h, imm in zip(params["step_size"], params["inverse_mass_matrix"]):
        scale = np.sqrt(imm)
        lam = np.linalg.eigvalsh(scale[:, None] * np.linalg.inv(cov) * scale[None, :]).max()
        out.append(1.0 / (1.0 - h * lam / 2.0))
    return np.array(out)


def test_langevin_default_caps_variance_inflation_on_an_ill_conditioned_gaussian():
    run, cov = _ill_corr_run()
    assert emc.diagnose(run).numbers["max_rhat"] < 1.01
    errors = _variance_errors(run.flat_draws, 0.0, cov)
    assert np.all(errors[:, 1] < 0.025), errors
    assert np.all(_within_max_bias(errors)), errors
    # The stat is the analytic inflation of the step used (power iteration converged),
    # and the cap holds it at 1 + max_bias.
    stat = run.stats["variance_inflation"]
    assert stat.shape == run.stats["lp"].shape and np.all(stat == stat[:, :1])
    np.testing.assert_allclose(stat[:, 0], _analytic_inflation(run, cov), rtol=1e-3)
    assert np.all(stat[:, 0] < 1.0 + MAX_BIAS + 1e-4), stat[:, 0]
    assert not any("stiffest direction" in p for p in emc.diagnose(run).problems)


def test_langevin_without_the_cap_fails_the_same_check():
    """Negative control: the old default (90%-acceptance step, max_bias=None) inflates the
    stiff direction's variance by ~25-45% here, and the check above must catch it."""
    run, cov = _ill_corr_run(max_bias=None)
    errors = _variance_errors(run.flat_draws, 0.0, cov)
    assert np.all(errors[:, 1] < 0.025), errors
    assert not np.all(_within_max_bias(errors)), errors
    stat = run.stats["variance_inflation"][:, 0]
    np.testing.assert_allclose(stat, _analytic_inflation(run, cov), rtol=1e-3)
    assert np.all(stat > 1.2), stat
    assert any("stiffest direction" in p for p in emc.diagnose(run).problems)


def test_negative_control_biased_sampler_fails_the_harness():
    """ULA with a large fixed step on N(1, 2^2) must be caught (STYLE.md: z = 8)."""
    target = emc.Energy(lambda x: 0.5 * jnp.sum(((x - 1.0) / 2.0) ** 2), init=jnp.zeros(1))
    run = emc.sample(target, "langevin", chains=4, draws=2000, warmup=500, seed=3,
                     adapt=False, step_size=1.5)
    z = mcse_z_scores(run.flat_draws, np.array([1.0]), np.array([[4.0]]))
    assert np.abs(z["var"]).max() > Z_LIMIT, z
    # The same harness passes MALA at the same step: the failure is the sampler's.
    good = emc.sample(target, "mala", chains=4, draws=2000, warmup=500, seed=3,
                      adapt=False, step_size=1.5)
    zg = mcse_z_scores(good.flat_draws, np.array([1.0]), np.array([[4.0]]))
    assert np.abs(zg["var"]).max() < Z_LIMIT, zg


@pytest.mark.slow
def test_benchmark_gaussian_100d_mala_is_not_defeated_by_conditioning():
    sd = jnp.logspace(-2, 0, 100)
    target = emc.Energy(lambda x: 0.5 * jnp.sum((x / sd) ** 2), init=jnp.zeros(100))
    run = emc.sample(target, "mala", chains=4, draws=1000, warmup=1000, seed=0)
    diag = emc.diagnose(run)
    assert diag.numbers["min_ess_bulk"] > 100, diag
    assert diag.numbers["max_rhat"] < 1.05, diag
