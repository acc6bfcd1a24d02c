"""diagnose(): it must pass good chains and name the problem in bad ones."""

import jax.numpy as jnp
import numpy as np

import energymc as emc
from energymc.diagnostics import Thresholds


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


def test_single_chain_and_inference_data_input():
    run = emc.sample(_target(), "mala", chains=1, draws=300, warmup=300, seed=1)
    d = emc.diagnose(run.to_arviz())
    assert any("Only one chain" in p for p in d.problems)
    assert np.isnan(d.numbers["max_rhat"])


def test_thresholds_are_configurable():
    run = emc.sample(_target(), "mala", chains=4, draws=300, warmup=300, seed=2)
    strict = emc.diagnose(run, thresholds=Thresholds(min_ess_per_chain=10_000))
    assert any("Effective sample size" in p for p in strict.problems)
