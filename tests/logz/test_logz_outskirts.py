"""The outskirts check: weights that rise outward get a BDMC upper bound (AIS, SMC)."""

import math
import sys
import warnings
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

import energymc as emc
from energymc.logz._outskirts import radius_trend, stderr_to_reach

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import zoo  # noqa: E402


def _weighted(scale, n=4000, dim=3, seed=0):
    """Draws of N(0, scale^2 I) with importance weights towards N(0, I): ``(x, w)``."""
    rng = np.random.default_rng(seed)
    x = scale * rng.standard_normal((n, dim))
    r2 = np.sum(x**2, axis=1)
    return x, np.exp(-0.5 * r2 + 0.5 * r2 / scale**2)


def test_trend_reads_the_direction_of_the_lag():
    # Particles narrower than the target: weights rise outward (positive).
    x, w = _weighted(0.8)
    assert radius_trend(x, w) > 5
    # Wider (the default base's over-dispersion, which the weights correct): negative.
    x, w = _weighted(1.3)
    assert radius_trend(x, w) < -5
    # At equilibrium with weights independent of the particles: noise only. Negative
    # control for the two above (same n, same dim).
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4000, 3))
    zs = [radius_trend(x, rng.lognormal(0.0, 1.0, 4000)) for _ in range(20)]
    assert max(abs(z) for z in zs) < 4


def test_trend_scales_each_replicate_to_mean_one():
    # Two replicates at equilibrium whose Z estimates differ 100-fold; the blocks'
    # particles differ in spread, so unscaled weights would read a strong trend.
    rng = np.random.default_rng(2)
    x = np.concatenate([0.5 * rng.standard_normal((2000, 2)), 2.0 * rng.standard_normal((2000, 2))])
    w = np.concatenate([np.full(2000, 0.1), np.full(2000, 10.0)]) * rng.lognormal(0, 0.3, 4000)
    assert radius_trend(x, w, replicates=1) > 10
    assert abs(radius_trend(x, w, replicates=2)) < 4


def test_trend_is_nan_when_undefined():
    assert math.isnan(radius_trend(np.zeros((2, 2)), np.ones(2)))
    assert math.isnan(radius_trend(np.ones((10, 2)), np.zeros(10)))
    assert math.isnan(radius_trend(np.ones((10, 2)), np.full(10, np.nan)))


def test_stderr_reaches_the_upper_bound():
    assert stderr_to_reach(1.0, 0.01, 1.3) == pytest.approx(0.1)
    assert stderr_to_reach(1.0, 0.2, 1.3) == 0.2  # never narrower
    assert stderr_to_reach(1.0, 0.01, 0.7) == pytest.approx(0.1)  # a bound below the estimate
    assert stderr_to_reach(1.0, 0.01, math.inf) == math.inf


@pytest.mark.slow  # a long statistical run; the default tier keeps the faster ones
def test_banana_miss_is_bounded_and_gaussian_is_untouched():
    """TUNING's banana2, seed 2: default AIS 0.07 nats low with stderr 0.015 (z -4.8)
    before the check; with it the stderr reaches BDMC's upper bound, which holds the
    truth. The Gaussian's weights fall outward: no BDMC run."""
    entry = zoo.by_name("banana2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = emc.log_partition(entry.build(), seed=2)
    out = est.info["checks"]["outskirts"]
    assert out["trend"] > 0 and est.reliable
    assert out["upper"] >= entry.log_z  # the bound bounds
    assert est.stderr >= out["stderr_before"]
    assert abs(est.log_z - entry.log_z) <= 3 * est.stderr
    assert est.num_grad_evals > out["num_grad_evals"] > 0
    assert est.timing["outskirts_s"] == out["seconds"]

    gauss = emc.Energy(lambda x: 0.5 * jnp.sum((x / jnp.array([0.5, 1.0, 2.0])) ** 2),
                       init=jnp.zeros(3))
    est = emc.log_partition(gauss, seed=0)
    out = est.info["checks"]["outskirts"]
    assert out["trend"] < 0 and "upper" not in out and "outskirts_s" not in est.timing
    truth = 1.5 * math.log(2 * math.pi) + math.log(0.5 * 1.0 * 2.0)
    assert abs(est.log_z - truth) <= 3 * est.stderr


def test_smc_miss_is_bounded_and_gaussian_smc_is_untouched():
    """TUNING's banana2, seed 15: default SMC 0.112 nats low with stderr 0.027 (z -4.1)
    before SMC took the check; its last stage's weights rise outward, and the stderr
    now reaches BDMC's upper bound, which holds the truth. Negative control: on a
    Gaussian those weights fall outward, so SMC runs no BDMC."""
    entry = zoo.by_name("banana2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = emc.log_partition(entry.build(), method="smc", seed=15)
    out = est.info["checks"]["outskirts"]
    assert out["trend"] > 0 and est.reliable
    assert out["stderr_before"] < abs(est.log_z - entry.log_z) / 3  # the miss, before
    assert out["upper"] >= entry.log_z
    assert abs(est.log_z - entry.log_z) <= 3 * est.stderr
    assert est.num_grad_evals > out["num_grad_evals"] > 0

    gauss = emc.Energy(lambda x: 0.5 * jnp.sum((x / jnp.array([0.5, 1.0, 2.0])) ** 2),
                       init=jnp.zeros(3))
    est = emc.log_partition(gauss, method="smc", seed=0)
    out = est.info["checks"]["outskirts"]
    assert out["trend"] < 0 and "upper" not in out and "outskirts_s" not in est.timing
    truth = 1.5 * math.log(2 * math.pi) + math.log(0.5 * 1.0 * 2.0)
    assert abs(est.log_z - truth) <= 3 * est.stderr


def test_no_check_for_other_methods_explicit_bases_or_checks_off():
    entry = zoo.by_name("banana2")
    target = entry.build()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for est in (emc.log_partition(target, seed=2, checks=False),
                    emc.log_partition(target, seed=2, base="gaussian")):
            assert "outskirts" not in est.info.get("checks", {})


def test_checkpoint_holds_the_bdmc_run(tmp_path):
    entry = zoo.by_name("banana2")
    target = entry.build()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = emc.log_partition(target, seed=2, checkpoint=tmp_path)
        again = emc.log_partition(target, seed=2, checkpoint=tmp_path)
    assert (tmp_path / "outskirts").is_dir()
    assert again.log_z == first.log_z and again.stderr == first.stderr
    assert again.info["checks"]["outskirts"]["upper"] == first.info["checks"]["outskirts"]["upper"]
