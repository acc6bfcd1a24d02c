"""The mode-weight check of a learned energy (``energymc.learn._modes``).

Score matching and short CD chains cannot weigh separated modes against each
other; the check compares the model's Laplace masses at the minima that
descents from the training points reach with the data's shares. Tested on
energies with known weights (a flag where they are wrong, none where right,
silence where the modes are not Gaussian-like), then through ``run``: SSM
cannot move the weights of a mixture energy that starts wrong (flagged), NCE
learns them (the negative control, not flagged).
"""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.optim as optim

from energymc import learn
from energymc.errors import EnergymcWarning
from energymc.learn._modes import KL_FLOOR, mode_weight_check

CENTRES = np.array([[-3.0, 0.0], [3.0, 0.0], [0.0, 3.0], [0.0, -3.0]])
SD = 0.4


def mixture_energy(params, x):
    """-log of a mixture of isotropic Gaussians at CENTRES with log-weights params['a']."""
    sq = jnp.sum((x - CENTRES) ** 2, axis=-1)
    return -jax.nn.logsumexp(params["a"] - 0.5 * sq / SD**2)


def mixture_data(weights, n=2000, seed=0):
    rng = np.random.default_rng(seed)
    k = rng.choice(len(weights), n, p=np.asarray(weights) / np.sum(weights))
    return (CENTRES[k] + SD * rng.normal(size=(n, 2))).astype(np.float32)


def kl(f, p):
    f, p = np.asarray(f, float), np.asarray(p, float)
    return float(np.sum(f * np.log(f / p)))


def test_right_weights_pass_and_wrong_ones_are_flagged_with_their_cost():
    data = mixture_data([0.25] * 4)
    right = mode_weight_check(mixture_energy, {"a": jnp.zeros(4)}, data)
    assert right["ran"] and right["judged"] == 4
    assert right["kl"] < 0.02 and not right["flag"]
    # Negative control: the same data under a model with weights 0.7, 0.1, 0.1, 0.1.
    w = np.array([0.7, 0.1, 0.1, 0.1])
    wrong = mode_weight_check(mixture_energy, {"a": jnp.asarray(np.log(w), jnp.float32)}, data)
    assert wrong["flag"] and wrong["judged"] == 4
    shares = [m["data_share"] for m in wrong["modes"] if m["judged"]]
    # Laplace masses are exact for separated Gaussians: the statistic is KL(data || model).
    expected = kl(shares, sorted(w, reverse=True))
    assert abs(wrong["kl"] - expected) < 0.05, (wrong["kl"], expected)
    assert wrong["kl"] > KL_FLOOR


def test_a_ring_is_not_judged():
    rng = np.random.default_rng(1)
    phi = rng.uniform(0, 2 * np.pi, 1500)
    r = 2.0 + 0.2 * rng.normal(size=1500)
    data = np.stack([r * np.cos(phi), r * np.sin(phi)], 1).astype(np.float32)

    def ring(params, x):
        return 0.5 * ((jnp.linalg.norm(x) - params["r"]) / 0.2) ** 2 + 0.01 * x[0]

    out = mode_weight_check(ring, {"r": jnp.asarray(2.0)}, data)
    assert out["ran"] and out["judged"] < 2 and not out["flag"]


def test_not_run_on_binary_or_wide_data():
    assert not mode_weight_check(mixture_energy, {"a": jnp.zeros(4)},
                                 np.ones((10, 2), np.float32))["ran"]
    wide = np.random.default_rng(0).normal(size=(50, 100)).astype(np.float32)
    out = mode_weight_check(lambda p, x: jnp.sum(x**2), {}, wide)
    assert not out["ran"] and "dimensions" in out["reason"]


def _fit(learner, data):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = learner.run(jax.random.key(0), 400, data, init_params={"a": jnp.asarray(
            [2.0, 0.0, 0.0, -2.0])}, batch_size=200, progress=False)
    return res, [w for w in caught if issubclass(w.category, EnergymcWarning)]


def test_run_flags_score_matching_that_cannot_move_the_weights():
    data = mixture_data([0.25] * 4, seed=2)
    res, caught = _fit(learn.SSM(mixture_energy, optim.Adam(0.05)), data)
    weights = np.exp(np.asarray(res.params["a"]))
    assert weights.max() / weights.min() > 20  # the start's weights, barely moved
    assert res.checks["modes"]["flag"]
    assert any("between modes" in p for p in res.problems)
    assert any("between modes" in str(w.message) for w in caught)
    # checks=False skips it.
    quiet = learn.SSM(mixture_energy, optim.Adam(0.05)).run(
        jax.random.key(0), 10, data, init_params={"a": jnp.zeros(4)}, progress=False,
        checks=False)
    assert quiet.checks == {}


def test_run_passes_nce_which_learns_the_weights():
    data = mixture_data([0.25] * 4, seed=2)
    res, _ = _fit(learn.NCE(mixture_energy, optim.Adam(0.05)), data)
    weights = np.exp(np.asarray(res.params["a"]))
    weights /= weights.sum()
    assert np.all(np.abs(weights - 0.25) < 0.05), weights
    assert res.checks["modes"]["judged"] == 4
    assert not res.checks["modes"]["flag"]
    assert not any("between modes" in p for p in res.problems)


def test_a_small_misweighting_is_not_a_problem():
    data = mixture_data([0.5, 0.5, 0.0, 0.0], n=400, seed=3)
    w = np.array([0.6, 0.4, 1e-6, 1e-6])
    out = mode_weight_check(mixture_energy, {"a": jnp.asarray(np.log(w), jnp.float32)}, data)
    # KL((.5, .5) || (.6, .4)) = 0.02 < the floor: reported, not flagged.
    assert out["judged"] == 2 and out["threshold"] >= KL_FLOOR and not out["flag"]
    assert math.isclose(out["kl"], kl([0.5, 0.5], [0.6, 0.4]), abs_tol=0.03)


def test_a_failing_check_never_costs_the_result(monkeypatch):
    def broken(*args, **kwargs):
        raise np.linalg.LinAlgError("planted")

    monkeypatch.setattr("energymc.learn._learner.mode_weight_check", broken)
    res = learn.SSM(mixture_energy, optim.Adam(0.05)).run(
        jax.random.key(0), 5, mixture_data([0.25] * 4), init_params={"a": jnp.zeros(4)},
        progress=False)
    assert res.params["a"].shape == (4,)
    assert not res.checks["modes"]["ran"] and "planted" in res.checks["modes"]["reason"]
    assert not res.problems
