"""Parallel tempering's base kernels: every continuous kernel PT accepts runs under it."""

import jax.numpy as jnp
import numpy as np
import pytest

import energymc as emc


@pytest.mark.slow  # one PT compilation per base kernel (~10 s each on 2 cores)
@pytest.mark.parametrize("base", ["hmc", "rwm"])
def test_pt_runs_with_a_base_kernel_that_reports_a_fixed_step_count(base):
    # HMC reports its (fixed) number of leapfrog steps as a Python int; PT's
    # local moves crashed on it (AttributeError) before 1489c29. RWM reports none.
    target = emc.Energy(lambda x: 0.5 * jnp.sum((x - 1.0) ** 2), init=jnp.zeros(2))
    run = emc.sample(target, "pt", chains=2, draws=200, warmup=100, seed=1, replicas=3,
                     base_kernel=base, progress=False)
    draws = run.flat_draws
    assert np.all(np.isfinite(draws)) and 0.1 < run.mean_acceptance <= 1.0
    # Literal seed; N(1, I): the mean within 5 Monte Carlo standard errors (ESS-based).
    ess = np.asarray(emc.diagnose(run).numbers["min_ess_bulk"])
    se = 1.0 / np.sqrt(ess)
    assert np.all(np.abs(draws.reshape(-1, 2).mean(axis=0) - 1.0) < 5 * se)
