"""Deep EBMs: sample-quality metrics, Equinox networks, CD's SGLD and JEM."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.optim
import pytest

import energymc as emc
from energymc.errors import OptionError

# ---------------------------------------------------------------------------
# energymc.metrics
# ---------------------------------------------------------------------------


def test_frechet_distance_is_the_gaussian_w2_formula():
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)) @ rng.normal(size=(4, 4))
    y = 0.5 + rng.normal(size=(200, 4)) @ rng.normal(size=(4, 4))
    sx, sy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    ref = (np.sum((x.mean(0) - y.mean(0)) ** 2)
           + np.trace(sx + sy - 2 * np.real(sqrtm(sx @ sy))))
    assert emc.metrics.frechet_distance(x, y) == pytest.approx(ref, rel=1e-6)
    # Diagonal covariances: |dmu|^2 + sum (sd_x - sd_y)^2, up to sampling error.
    a = rng.normal(size=(40_000, 2)) * [1.0, 2.0]
    b = [1.0, 0.0] + rng.normal(size=(40_000, 2)) * [1.0, 1.0]
    assert emc.metrics.frechet_distance(a, b) == pytest.approx(1.0 + 1.0, abs=0.05)


def test_mmd_is_unbiased_under_the_null_and_positive_under_a_shift():
    rng = np.random.default_rng(1)
    null = np.array([emc.metrics.mmd(rng.normal(size=(60, 3)), rng.normal(size=(60, 3)),
                                     bandwidth=1.5) for _ in range(200)])
    assert abs(null.mean()) < 3 * null.std(ddof=1) / np.sqrt(len(null))
    shifted = emc.metrics.mmd(0.7 + rng.normal(size=(60, 3)), rng.normal(size=(60, 3)),
                              bandwidth=1.5)
    assert shifted > null.mean() + 5 * null.std(ddof=1)


@pytest.fixture(scope="module")
def digits():
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    perm = np.random.default_rng(0).permutation(len(x))
    tr, te = perm[:1437], perm[1437:]
    return x[tr], d.target[tr], x[te], d.target[te]


@pytest.fixture(scope="module")
def feature_net(digits):
    x, y, _, _ = digits
    return emc.metrics.FeatureNet.fit(x, y, seed=0, steps=400)


def test_feature_net_classifies_and_round_trips(feature_net, digits, tmp_path):
    _, _, xt, yt = digits
    assert feature_net.accuracy(xt, yt) > 0.9
    path = tmp_path / "features.npz"
    feature_net.save(path)
    back = emc.metrics.FeatureNet.load(path)
    np.testing.assert_array_equal(back.features(xt[:7]), feature_net.features(xt[:7]))
    with pytest.raises(OptionError, match="trained on points of shape"):
        feature_net.features(np.zeros((2, 10)))


def test_a_second_real_sample_scores_near_zero_and_noise_far(feature_net, digits):
    x, _, xt, _ = digits
    real = emc.metrics.sample_quality(x[:360], xt, feature_net)
    noise = emc.metrics.sample_quality(emc.ood.shift(x[:360], "uniform"), xt, feature_net)
    blur = emc.metrics.sample_quality(np.repeat(x[:360].mean(0, keepdims=True), 360, 0)
                                      + 0.05 * np.random.default_rng(0).normal(size=(360, 64)),
                                      xt, feature_net)
    assert real["frechet"] < 0.1 * noise["frechet"] and real["frechet"] < 0.2 * blur["frechet"]
    assert real["mmd"] < 0.05 * noise["mmd"] and real["mmd"] < 0.1 * blur["mmd"]
    bad = np.array(x[:10])
    bad[3] = np.nan
    assert emc.metrics.sample_quality(bad, xt, feature_net)["num_bad"] == 1
