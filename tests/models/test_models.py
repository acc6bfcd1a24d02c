"""Models: Ising (Kaufman, enumeration, sampled moments), RBM, Hopfield."""

from __future__ import annotations

import itertools

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import energymc as emc
from energymc.models import (
    RBM,
    Hopfield,
    Ising,
    ModernHopfield,
    critical_beta,
    onsager_magnetization,
)


# --------------------------------------------------------------------------
# Ising
# --------------------------------------------------------------------------
@pytest.mark.parametrize("shape,beta", [pytest.param((4, 4), 0.3, marks=pytest.mark.slow),
                                        ((4, 4), 0.6), ((3, 4), 0.5),
                                        pytest.param((2, 3), 0.7, marks=pytest.mark.slow),
                                        pytest.param((3, 3), 0.44, marks=pytest.mark.slow)])
def test_kaufman_matches_enumeration(shape, beta):
    model = Ising(shape, beta)
    np.testing.assert_allclose(model.log_z_exact("kaufman"), model.log_z_exact("enumerate"),
                               rtol=1e-5)


def test_ising_enumeration_matches_brute_force():
    model = Ising((2, 3), beta=0.4, J=0.7, h=0.3, periodic=False)
    states = np.array(list(itertools.product([-1.0, 1.0], repeat=6))).reshape(-1, 2, 3)
    h = np.asarray(model.hamiltonian(states))
    # Open 2x3 lattice: 7 bonds, checked on the all-up state.
    assert h[-1] == pytest.approx(-0.7 * 7 - 0.3 * 6)
    log_z = np.log(np.sum(np.exp(-0.4 * h)))
    np.testing.assert_allclose(model.log_z_exact(), log_z, rtol=1e-5)
    thermo = model.exact_thermodynamics()
    p = np.exp(-0.4 * h - log_z)
    np.testing.assert_allclose(thermo["energy"], np.sum(p * h) / 6, rtol=1e-5)
    m = states.mean(axis=(1, 2))
    np.testing.assert_allclose(thermo["abs_magnetization"], np.sum(p * np.abs(m)), rtol=1e-5)


def test_kaufman_thermodynamics_large_lattice():
    # Autodiff of Kaufman's log Z gives <H> and the heat capacity; on 4x4 they
    # match enumeration, and on 64x64 they approach Onsager's infinite lattice
    # (energy per site at the critical point: -sqrt(2)).
    small = Ising((4, 4), 0.4)
    k, e = small.exact_thermodynamics("kaufman"), small.exact_thermodynamics("enumerate")
    np.testing.assert_allclose(k["energy"], e["energy"], rtol=2e-3)
    np.testing.assert_allclose(k["heat_capacity"], e["heat_capacity"], rtol=5e-3)
    big = Ising((64, 64), critical_beta())
    assert big.exact_thermodynamics()["energy"] == pytest.approx(-np.sqrt(2), abs=0.01)
    assert onsager_magnetization(0.3) == 0.0
    assert onsager_magnetization(0.6) == pytest.approx(0.97361, abs=1e-4)


def test_ising_rejects_bad_input():
    with pytest.raises(emc.EnergyError, match="periodic side of length 1"):
        Ising((1, 4), 0.3)
    with pytest.raises(emc.EnergyError, match="beta must be >= 0"):
        Ising((4, 4), -1.0)
    with pytest.raises(emc.EnergyError, match="zero field"):
        Ising((4, 4), 0.3, h=0.1).log_z_exact("kaufman")
    with pytest.raises(emc.EnergyError, match="too many to enumerate"):
        Ising((5, 5), 0.3, periodic=False).log_z_exact()


@pytest.mark.parametrize("shape,seed", [((4, 4), 11),
                                        pytest.param((3, 4), 12, marks=pytest.mark.slow)])
def test_ising_sampled_moments_match_enumeration(shape, seed):
    # gibbs uses the model's exact checkerboard path; 3x4 has an odd side, so
    # the greedy colouring is exercised too. Two temperatures: the second must
    # reuse the compiled sampler (beta is a traced parameter), with its own beta.
    compiled = []
    for beta in (0.35, 0.25):
        model = Ising(shape, beta=beta, h=0.05)
        exact = model.exact_thermodynamics("enumerate")
        with emc.compilations() as traced:
            run = emc.sample(model, "gibbs", chains=4, draws=1000, warmup=0, seed=seed,
                             progress=False)
        compiled.append(traced["_whole_run"])
        s = run.draws[:, 100:]
        n = model.num_sites
        for stat, truth in ((np.asarray(model.hamiltonian(s)) / n, exact["energy"]),
                            (np.asarray(model.magnetization(s)) ** 2,
                             exact["magnetization_sq"])):
            assert az.rhat(stat) < 1.01
            ess = az.ess(stat)
            assert ess > 400
            z = abs(stat.mean() - truth) / (stat.std() / np.sqrt(ess))
            assert z < 3.0, (shape, beta, z)
    assert compiled[1] == 0, compiled


# --------------------------------------------------------------------------
# RBM
# --------------------------------------------------------------------------
def _random_rbm(nv, nh, seed=0, scale=1.0):
    rbm = RBM(nv, nh)
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    params = {"W": scale * jax.random.normal(k1, (nv, nh)),
              "b": 0.5 * jax.random.normal(k2, (nv,)), "c": 0.5 * jax.random.normal(k3, (nh,))}
    return rbm, params


def _brute_log_z(rbm, params):
    v = np.array(list(itertools.product([0.0, 1.0], repeat=rbm.n_visible)))
    h = np.array(list(itertools.product([0.0, 1.0], repeat=rbm.n_hidden)))
    e = np.asarray(rbm.energy(params, v[:, None, :], h[None, :, :]), dtype=np.float64)
    return np.log(np.sum(np.exp(-e - (-e).max()))) + (-e).max()


@pytest.mark.parametrize("nv,nh", [(9, 4), (4, 9)])
def test_rbm_log_z_exact_matches_brute_force(nv, nh):
    rbm, params = _random_rbm(nv, nh)
    np.testing.assert_allclose(rbm.log_z_exact(params), _brute_log_z(rbm, params), rtol=1e-5)
    # Free energy sums the hidden units out of the joint energy.
    v = jnp.asarray(np.random.default_rng(0).integers(0, 2, (3, nv)), dtype=jnp.float32)
    h = np.array(list(itertools.product([0.0, 1.0], repeat=nh)))
    joint = -np.asarray(rbm.energy(params, v[:, None, :], h[None]))
    np.testing.assert_allclose(-np.asarray(rbm.free_energy(params, v)),
                               np.log(np.exp(joint).sum(1)), rtol=1e-5)


def test_rbm_ais_matches_exact():
    rbm, params = _random_rbm(20, 8, seed=3, scale=0.5)
    data = np.asarray(jax.random.bernoulli(jax.random.key(9), 0.3, (50, 20)), dtype=float)
    truth = rbm.log_z_exact(params)
    est = rbm.log_z_ais(params, jax.random.key(0), num_temps=1000, particles=100, data=data)
    assert np.isfinite(est.stderr) and est.ess > 10
    assert abs(est.log_z - truth) < 3 * est.stderr + 0.05, (est.log_z, truth, est.stderr)
    # The same path through log_partition directly, with its adaptive schedule.
    est = emc.log_partition(rbm.as_energy(params), method="ais", seed=1, particles=200,
                            base=rbm.ais_path(params, data=data), mcmc_steps=1)
    assert est.reliable and est.info["kernel"].startswith("rbm block gibbs")
    assert abs(est.log_z - truth) < 3 * est.stderr + 0.05, (est.log_z, truth, est.stderr)


@pytest.mark.slow  # 3.6 s cold (compiles the path's chunked AIS and the mode check)
def test_rbm_log_z_ais_passes_its_checkpoint_to_log_partition(tmp_path):
    rbm, params = _random_rbm(4, 2, seed=1, scale=0.5)
    kw = dict(seed=2, num_temps=4, particles=32)
    # (That a checkpointed AIS run equals one without is tests/logz's business.)
    saved = rbm.log_z_ais(params, checkpoint=tmp_path / "ais", **kw)
    assert saved.timing["resumed_replicates"] == 0 and (tmp_path / "ais" / "meta.json").exists()
    again = rbm.log_z_ais(params, checkpoint=tmp_path / "ais", **kw)
    assert again.timing["resumed_replicates"] >= 1  # read back: nothing ran again
    assert again.log_z == saved.log_z and again.stderr == saved.stderr
    assert np.array_equal(again.particles, saved.particles)
    # Negative control: other parameters are another run, refused by the checkpoint.
    other = dict(params, W=params["W"] + 0.1)
    with pytest.raises(emc.io.CheckpointError, match="different run"):
        rbm.log_z_ais(other, checkpoint=tmp_path / "ais", **kw)


def test_rbm_block_gibbs_samples_the_model():
    # 2000 independent chains: visible means match enumeration within MC error.
    rbm, params = _random_rbm(8, 3, seed=5)
    states, probs = emc.exact.probabilities(rbm.as_energy(params))
    means = probs @ states
    v = np.asarray(rbm.sample_visible(jax.random.key(1), params, 2000, num_steps=200))
    se = np.sqrt(means * (1 - means) / 2000)
    assert np.all(np.abs(v.mean(0) - means) < 4 * se + 1e-3), (v.mean(0), means)
    assert set(np.unique(v)) <= {0.0, 1.0}
    # CD's sampler signature: sampler(key, params, x_batch, k) -> same shape.
    out = jax.eval_shape(rbm.block_gibbs, jax.random.key(2), params, jnp.zeros((5, 8)), 3)
    assert out.shape == (5, 8)


@pytest.mark.parametrize("per_draw", [1, 100_000])
def test_rbm_block_gibbs_blocks_of_uniforms_and_traced_k(monkeypatch, per_draw):
    # block_gibbs draws the uniforms of many sweeps at once, in blocks of at
    # most _UNIFORMS_PER_DRAW numbers: one sweep per draw (1) and several
    # blocks plus a remainder (100_000 // (500 * 11) = 18 sweeps a block, 60 =
    # 3 * 18 + 6) sample the same model. A traced k takes the one-draw-per-sweep path.
    from energymc.models import rbm as rbm_module

    monkeypatch.setattr(rbm_module, "_UNIFORMS_PER_DRAW", per_draw)
    rbm, params = _random_rbm(8, 3, seed=6)
    states, probs = emc.exact.probabilities(rbm.as_energy(params))
    means = probs @ states
    second = states.T @ (probs[:, None] * states)
    x0 = jnp.zeros((500, 8))
    draws = [rbm.block_gibbs(jax.random.key(i), params, x0, 60) for i in range(4)]
    traced = jax.jit(rbm.block_gibbs)(jax.random.key(9), params, x0, 60)
    for v in [jnp.concatenate(draws), traced]:
        v = np.asarray(v)
        n = len(v)
        se = np.sqrt(means * (1 - means) / n)
        assert np.all(np.abs(v.mean(0) - means) < 4 * se + 1e-3), (v.mean(0), means)
        # Pairwise moments E[v_i v_j]: the units' dependence is sampled too.
        vv = v.T @ v / n
        se2 = np.sqrt(second * (1 - second) / n)
        assert np.all(np.abs(vv - second) < 4 * se2 + 1e-3)
    assert not np.array_equal(np.asarray(draws[0]), np.asarray(draws[1]))


def test_rbm_init_and_likelihood():
    rbm = RBM(4, 2)
    data = np.array([[1, 0, 1, 1], [1, 0, 0, 1], [1, 1, 0, 1], [0, 0, 0, 1]], dtype=float)
    params = rbm.init_params(jax.random.key(0), data=data)
    np.testing.assert_allclose(jax.nn.sigmoid(params["b"]), np.clip(data.mean(0), 1e-3, 1 - 1e-3),
                               rtol=1e-4)
    log_z = rbm.log_z_exact(params)
    ll = rbm.log_likelihood(params, data, log_z)
    assert ll < 0 and np.isfinite(ll)
    with pytest.raises(emc.EnergyError, match="shape \\(n, 4\\)"):
        rbm.log_likelihood(params, data[:, :3], log_z)
    with pytest.raises(emc.EnergyError, match="binary"):
        rbm.init_params(jax.random.key(0), data=data * 0.5)
    with pytest.raises(emc.EnergyError, match="params\\['W'\\] has shape"):
        rbm.log_z_exact({"W": jnp.zeros((3, 2)), "b": jnp.zeros(4), "c": jnp.zeros(2)})
    with pytest.raises(emc.EnergyError, match="enumeration limit"):
        RBM(30, 30).log_z_exact({"W": jnp.zeros((30, 30)), "b": jnp.zeros(30),
                                 "c": jnp.zeros(30)})


# --------------------------------------------------------------------------
# Hopfield
# --------------------------------------------------------------------------
def test_hopfield_recalls_stored_patterns():
    rng = np.random.default_rng(0)
    patterns = rng.choice([-1.0, 1.0], size=(5, 200))  # load 0.025, well below 0.138
    net = Hopfield(patterns)
    probes = patterns.copy()
    for p in probes:
        p[rng.choice(200, 30, replace=False)] *= -1  # 15% of bits flipped
    recalled = np.asarray(net.recall(probes))
    np.testing.assert_array_equal(recalled, patterns)
    assert np.all(net.energy(recalled) <= net.energy(probes))
    # At low temperature the sampled state stays near the pattern (overlap ~ 1).
    hot = np.asarray(net.recall(probes, beta=5.0, seed=jax.random.key(0), max_sweeps=20))
    overlaps = np.asarray(net.overlap(hot))
    assert np.all(np.diag(overlaps) > 0.9), np.diag(overlaps)
    target = net.target(beta=2.0)
    assert target.support == "spin" and target.dim == 200


def test_modern_hopfield_update_is_attention():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(6, 16)).astype(np.float32)
    net = ModernHopfield(X, beta=4.0)
    q = (X[:3] + 0.3 * rng.normal(size=(3, 16))).astype(np.float32)
    attn = jax.nn.dot_product_attention(jnp.asarray(q)[None, :, None],
                                        net.patterns[None, :, None],
                                        net.patterns[None, :, None], scale=4.0)[0, :, 0]
    np.testing.assert_allclose(net.update(q), attn, atol=1e-5)
    # The concave-convex update never raises the energy, and retrieves the pattern.
    assert np.all(np.asarray(net.energy(net.update(q))) <= np.asarray(net.energy(q)) + 1e-5)
    np.testing.assert_allclose(net.retrieve(q, steps=3), X[:3], atol=1e-2)
    assert np.all(np.asarray(net.energy(q)) >= 0)
