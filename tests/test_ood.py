"""energymc.ood: scores, AUROC/AUPR and the out-of-distribution sets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import energymc as emc
from energymc.errors import EnergyError, OptionError

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    perm = np.random.default_rng(0).permutation(len(x))
    return x[perm[:1200]], x[perm[1200:]]  # train, held out (597)


def _brute_auroc(a, b):
    gt = (b[None, :] > a[:, None]).mean()
    eq = (b[None, :] == a[:, None]).mean()
    return gt + 0.5 * eq


def test_auroc_and_aupr_match_their_definitions_with_ties():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(3)
    a = rng.integers(0, 6, 40).astype(float)  # many ties
    b = rng.integers(2, 8, 25).astype(float)
    assert emc.ood.auroc(a, b) == pytest.approx(_brute_auroc(a, b), abs=1e-12)
    labels = np.r_[np.zeros(len(a)), np.ones(len(b))]
    assert emc.ood.aupr(a, b) == pytest.approx(
        average_precision_score(labels, np.r_[a, b]), abs=1e-12)
    # Perfect separation, reversed separation.
    assert emc.ood.auroc([0, 1], [2, 3]) == 1.0 and emc.ood.auroc([2, 3], [0, 1]) == 0.0
    assert emc.ood.aupr([0, 1], [2, 3]) == 1.0


def test_auroc_stderr_is_calibrated_under_the_null():
    # Equal distributions: the AUROC's spread over replicates is its standard
    # error (Hanley-McNeil), and its mean is 0.5.
    rng = np.random.default_rng(11)
    n_in, n_out, reps = 120, 80, 400
    aucs = np.array([emc.ood.auroc(rng.normal(size=n_in), rng.normal(size=n_out))
                     for _ in range(reps)])
    se = emc.ood.auroc_stderr(0.5, n_in, n_out)
    assert abs(aucs.mean() - 0.5) < 3 * se / np.sqrt(reps)
    # The sd of an sd estimate from 400 draws is about 3.5%.
    assert aucs.std() == pytest.approx(se, rel=0.12)


def test_gaussian_scores_match_closed_forms():
    energy = lambda x: 0.5 * jnp.sum(x**2)  # noqa: E731
    x = np.array([[0.0], [1.0], [2.0]], np.float32)
    s = emc.ood.scores(energy, x, ("energy", "grad_norm"))
    np.testing.assert_allclose(s["energy"], [0.0, 0.5, 2.0], atol=1e-6)
    np.testing.assert_allclose(s["grad_norm"], [0.0, 1.0, 2.0], atol=1e-6)
    # Smoothed energy of N(0, 1) with a Gaussian of width sigma:
    # x^2 / (2 (1 + sigma^2)) + log(1 + sigma^2) / 2. Monte Carlo over seeds.
    sigma = 0.5
    truth = x[:, 0] ** 2 / (2 * (1 + sigma**2)) + 0.5 * np.log(1 + sigma**2)
    reps = np.stack([emc.ood.scores(energy, x, ("mass",), sigma=sigma, num_samples=2000,
                                    seed=s)["mass"] for s in range(8)])
    z = (reps.mean(0) - truth) / (reps.std(0, ddof=1) / np.sqrt(len(reps)))
    assert np.all(np.abs(z) < 4), z
    # Negative control: the unsmoothed energy is a different number at x = 2.
    assert abs(reps.mean(0)[2] - 2.0) > 10 * reps.std(0, ddof=1)[2]


def test_same_seed_same_scores_and_batching_does_not_matter():
    energy = lambda x: jnp.sum(jnp.sin(3 * x))  # noqa: E731
    x = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    a = emc.ood.scores(energy, x, ("mass",), seed=4)["mass"]
    b = emc.ood.scores(energy, x, ("mass",), seed=4)["mass"]
    c = emc.ood.scores(energy, x, ("mass",), seed=5)["mass"]
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    small = emc.ood.scores(energy, x, ("mass",), seed=4, batch_size=3)["mass"]
    np.testing.assert_allclose(a, small, rtol=1e-5)


def test_nonfinite_energy_is_an_outlier_and_counted():
    energy = lambda x: jnp.where(x[0] > 0, jnp.inf, jnp.sum(x**2))  # noqa: E731
    x = np.array([[-1.0, 0.0], [1.0, 0.0]], np.float32)
    s = emc.ood.scores(energy, x, ("energy",))
    assert s["energy"][1] == np.inf and s["num_nonfinite"]["energy"] == 1


def test_shifts(digits):
    _, x = digits
    u = emc.ood.shift(x, "uniform", seed=0)
    assert u.shape == x.shape and u.min() >= 0 and u.max() <= 1
    sh = emc.ood.shift(x, "shuffle", seed=0)
    np.testing.assert_array_equal(np.sort(sh, 1), np.sort(x, 1))  # same pixels, new places
    assert (sh != x).any(1).mean() > 0.99
    np.testing.assert_allclose(emc.ood.shift(emc.ood.shift(x, "invert"), "invert"), x, atol=1e-6)
    with pytest.raises(OptionError, match="kind must be"):
        emc.ood.shift(x, "blur")


def test_a_data_fitted_energy_detects_every_shift_and_an_untrained_one_is_at_chance(digits):
    x_train, x_test = digits
    half = len(x_test) // 2
    mu, var = x_train.mean(0), x_train.var(0) + 1e-2
    fitted = lambda x: 0.5 * jnp.sum((x - mu) ** 2 / var)  # noqa: E731
    outs = {k: emc.ood.shift(x_test, k, seed=1) for k in ("uniform", "shuffle", "invert")}
    rep = emc.ood.evaluate(fitted, x_test, outs, methods=("energy", "mass"), num_samples=8)
    for r in rep.rows:
        assert r["auroc"] > 0.5 + 5 * r["auroc_se"], r
        assert r["aupr"] > r["aupr_chance"]
    # Negative control: any energy, trained or not, cannot tell two halves of
    # the same held-out set apart -- the AUROC is 0.5 within its error.
    net = emc.nn.MLP(64, jax.random.key(0), widths=(32,))
    untrained = emc.nn.ModuleEnergy(net)
    same = emc.ood.evaluate(lambda x: untrained(untrained.params, x), x_test[:half],
                            {"same": x_test[half:]}, num_samples=8)
    for r in same.rows:
        assert abs(r["auroc"] - 0.5) < 3 * r["auroc_se"], r
    assert "| uniform |" in rep.to_markdown()
    assert rep.frame().shape[0] == 6


def test_bad_input_is_refused():
    x = np.zeros((3, 2), np.float32)
    with pytest.raises(OptionError, match="unknown score"):
        emc.ood.scores(lambda z: jnp.sum(z), x, ("likelihood",))
    with pytest.raises(EnergyError, match="scalar"):
        emc.ood.scores(lambda z: z, x)
    with pytest.raises(OptionError, match=r"\(n, \*event\)"):
        emc.ood.scores(lambda z: jnp.sum(z), np.zeros(3))
    with pytest.raises(OptionError, match="NaN"):
        emc.ood.auroc([0.0, np.nan], [1.0])


def test_an_unhashable_energy_module_is_scored():
    import equinox as eqx

    class Quadratic(eqx.Module):
        a: jax.Array

        def __call__(self, x):
            return 0.5 * self.a * jnp.sum(x**2)

    x = np.array([[1.0], [2.0]], np.float32)
    s = emc.ood.scores(Quadratic(jnp.asarray(2.0)), x, ("energy",))
    np.testing.assert_allclose(s["energy"], [1.0, 4.0], rtol=1e-6)
