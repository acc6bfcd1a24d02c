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


def test_multiscale_mmd_is_the_sum_of_single_width_mmds():
    # MMD^2 is linear in the kernel: a sum of Gaussian kernels at widths s*h
    # scores the sum of the single-width MMDs, each at the same reference
    # bandwidth h (the root of the reference's median squared distance).
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(50, 2)), 0.3 + rng.normal(size=(40, 2))
    d2 = ((y[:, None] - y[None]) ** 2).sum(-1)
    h = float(np.sqrt(np.median(d2[np.triu_indices(len(y), 1)])))
    parts = [emc.metrics.mmd(x, y, bandwidth=f * h) for f in emc.metrics.MULTISCALE]
    got = emc.metrics.mmd(x, y, scales=emc.metrics.MULTISCALE)
    assert got == pytest.approx(sum(parts), rel=1e-9)
    assert emc.metrics.mmd(x, y) == emc.metrics.mmd(x, y, scales=(1.0,))
    with pytest.raises(OptionError, match="scales"):
        emc.metrics.mmd(x, y, scales=(1.0, -0.5))
    with pytest.raises(OptionError, match="scales"):
        emc.metrics.mmd(x, y, scales=())


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
    return emc.metrics.FeatureNet.fit(x, y, seed=0, steps=200)


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


# ---------------------------------------------------------------------------
# energymc.nn
# ---------------------------------------------------------------------------


def test_spectral_normalise_gives_unit_top_singular_value():
    w = jax.random.normal(jax.random.key(0), (16, 8, 3, 3))
    sn = jax.jit(emc.nn.spectral_normalise, static_argnums=1)(w, 30)
    top = np.linalg.svd(np.asarray(sn).reshape(16, -1),
                        compute_uv=False)[0]
    assert top == pytest.approx(1.0, abs=1e-3)
    # Negative control: the raw weight's is far from one.
    assert np.linalg.svd(np.asarray(w).reshape(16, -1), compute_uv=False)[0] > 3


def test_module_energy_is_a_learner_energy_fn():
    net = emc.nn.ConvNet((8, 8), jax.random.key(0), channels=(4, 8))
    energy = emc.nn.ModuleEnergy(net)
    x = jnp.linspace(0, 1, 64)
    # One compilation: the energy and the module's own output side by side.
    e, direct = jax.jit(lambda p, z: (energy(p, z), energy.module(p)(z.reshape(8, 8))[0]))(
        energy.params, x)
    assert e.shape == () and e == pytest.approx(float(direct), rel=1e-6)
    assert float(direct) == pytest.approx(float(net(x.reshape(8, 8))[0]), rel=1e-5)
    assert energy.num_params == sum(a.size for a in energy.params)
    logits = emc.nn.ModuleEnergy(emc.nn.MLP(64, jax.random.key(1), widths=(8,), out_size=3),
                                 output="logits")
    e_logits, out = jax.jit(lambda p, z: (logits(p, z), logits.logits(p, z)))(logits.params, x)
    assert e_logits == pytest.approx(-float(jax.nn.logsumexp(out)), rel=1e-6)
    with pytest.raises(OptionError, match="one value"):
        emc.nn.ModuleEnergy(logits.module(logits.params))(logits.params, x)
    with pytest.raises(OptionError, match="list of"):
        energy.module(energy.params[:-1])


# ---------------------------------------------------------------------------
# CD's SGLD sampler: separate step size and noise scale
# ---------------------------------------------------------------------------


def _gaussian(p, x):
    return 0.5 * jnp.exp(p["log_prec"]) * jnp.sum(x**2)


@pytest.mark.parametrize("temperature", [1.0, 0.25])
def test_sgld_samples_the_tempered_gaussian(temperature):
    # x <- x - h x + s z on E = x^2 / 2 is AR(1) with stationary variance
    # s^2 / (2h - h^2) = T / (1 - h/2), T = s^2 / (2h). The noise scale alone
    # sets the temperature, which is the bias of mismatched settings.
    h, chains = 0.2, 2000
    cd = emc.learn.CD(_gaussian, numpyro.optim.SGD(0.0), k=60, sampler="sgld", step_size=h,
                      noise_scale=float(np.sqrt(2 * h * temperature)))
    data = np.zeros((4, 1), np.float32)
    cd.init(0, data, {"log_prec": jnp.zeros(())})
    x0 = np.random.default_rng(0).normal(size=(chains, 1)).astype(np.float32) * 3
    x = np.asarray(cd.sample_negatives(1, {"log_prec": jnp.zeros(())}, x0))[:, 0]
    var, truth = x.var(), temperature / (1 - h / 2)
    se = truth * np.sqrt(2 / chains)
    assert abs(var - truth) < 3 * se, (var, truth)
    # The matched-noise variance would be ~4x off for T = 1/4 (the control).
    other = (1.0 if temperature != 1.0 else 0.25) / (1 - h / 2)
    assert abs(var - other) > 10 * se


@pytest.mark.slow
def test_cd_with_mismatched_sgld_noise_learns_a_tempered_precision():
    # Data N(0, 1), energy lam x^2 / 2. SGLD at temperature T = s^2 / (2h)
    # draws negatives with variance T / (lam (1 - h lam / 2)); CD stops when
    # that is 1, at lam ~ T (1 + h T / 2): the learned precision is T times
    # the truth's. Matched noise (T = 1) recovers it up to the O(h) bias.
    data = np.random.default_rng(0).normal(size=(2000, 1)).astype(np.float32)
    h, learned = 0.05, {}
    for temperature in (1.0, 0.25):
        cd = emc.learn.CD(_gaussian, numpyro.optim.Adam(0.05), k=10, persistent=True,
                          chains=500, sampler="sgld", step_size=h,
                          noise_scale=float(np.sqrt(2 * h * temperature)), ema=0.98)
        res = cd.run(0, 400, data, init_params={"log_prec": jnp.zeros(())}, batch_size=500)
        learned[temperature] = float(np.exp(res.params["log_prec"]))
        pred = temperature * (1 + h * temperature / 2)
        assert learned[temperature] == pytest.approx(pred, rel=0.06)
    assert learned[1.0] > 3 * learned[0.25]


def test_sgld_options_are_checked():
    opt = numpyro.optim.Adam(1e-2)
    with pytest.raises(OptionError, match="needs step_size"):
        emc.learn.CD(_gaussian, opt, sampler="sgld")
    with pytest.raises(OptionError, match="options of sampler='sgld'"):
        emc.learn.CD(_gaussian, opt, noise_scale=0.1)
    with pytest.raises(OptionError, match="low < high"):
        emc.learn.CD(_gaussian, opt, sampler="sgld", step_size=0.1, bounds=(1, 0))
    with pytest.raises(OptionError, match="fixed step"):
        emc.learn.CD(_gaussian, opt, sampler="sgld", step_size=0.1, adapt_step=True)


def test_sgld_counts_a_step_to_infinity_and_stays_put():
    def blowup(p, x):
        return jnp.where(x[0] > 0.5, -jnp.inf * x[0], 0.5 * jnp.sum(x**2)) + 0 * p["a"]

    cd = emc.learn.CD(blowup, numpyro.optim.Adam(1e-3), k=3, sampler="sgld", step_size=0.1)
    data = np.full((8, 1), 0.0, np.float32)
    res = cd.run(0, 2, data, init_params={"a": jnp.zeros(())}, batch_size=8)
    assert np.isfinite(res.losses).all()
    assert 0 <= res.history["diverging"].max() <= 1


def test_deep_conv_energy_trains_a_few_updates_on_digits(digits):
    import numpyro.distributions as dist

    x, *_ = digits
    net = emc.nn.ConvNet((8, 8), jax.random.key(0), channels=(4, 8))
    energy = emc.nn.ModuleEnergy(net)
    cd = emc.learn.CD(energy, numpyro.optim.Adam(1e-3), k=3, persistent=True, sampler="sgld",
                      step_size=1.0, noise_scale=0.01, bounds=(0.0, 1.0), buffer_size=64,
                      energy_l2=0.1, noise=dist.Uniform(jnp.zeros(64), jnp.ones(64)))
    res = cd.run(0, 4, x[:256], init_params=energy.params, batch_size=16)
    assert np.isfinite(res.losses).all() and res.history["diverging"].max() == 0
    buf = np.asarray(res.state.extra["buffer"])
    assert buf.shape == (64, 64) and buf.min() >= 0 and buf.max() <= 1
    moved = [np.abs(np.asarray(a) - np.asarray(b)).max()
             for a, b in zip(res.params, energy.params, strict=True)]
    assert max(moved) > 0


def _conv_energy(p, x):
    """One 3x3 convolution of a 4x4 image, SiLU, sum: the smallest convolutional energy."""
    h = jax.lax.conv_general_dilated(x.reshape(1, 1, 4, 4), p["w"], (1, 1), "SAME")
    return jnp.sum(jax.nn.silu(h)) + 0.5 * jnp.sum(x**2)


def _conv_cd(unroll):
    return emc.learn.CD(_conv_energy, numpyro.optim.Adam(1e-2), k=2, persistent=True,
                        sampler="sgld", step_size=0.1, buffer_size=8, unroll=unroll)


def test_unrolled_cd_makes_the_same_updates_as_the_rolled_loop():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(16, 16)), jnp.float32)
    p0 = {"w": 0.5 * jnp.asarray(np.random.default_rng(1).normal(size=(2, 1, 3, 3)),
                                 jnp.float32)}
    runs, learners = {}, {}
    for unroll in (False, None):
        learners[unroll] = cd = _conv_cd(unroll)
        runs[unroll] = cd.run(0, 2, x, init_params=p0, batch_size=4, progress=False)
        # The default unrolls a convolutional energy on CPU (RESULTS.md: XLA:CPU's
        # convolutions run several times slower inside a compiled loop), not a dense one.
        assert cd._unrolled is (unroll is None and jax.default_backend() == "cpu")
    dense = emc.learn.CD(lambda p, z: jnp.sum(p * z**2), numpyro.optim.Adam(1e-2), k=2,
                         sampler="sgld", step_size=0.1)
    dense.init(0, x, init_params=jnp.ones(16))
    assert dense._unrolled is False
    rolled, unrolled = np.ravel(runs[False].params["w"]), np.ravel(runs[None].params["w"])
    assert np.abs(rolled).max() < 2  # the scale the tolerance below is written for
    # Same updates with the same keys; XLA fuses the written-out program
    # differently, so float32 results may differ in their last bits: a few
    # ulps (1.2e-7) of these O(1) parameters.
    np.testing.assert_allclose(unrolled, rolled, rtol=0, atol=1e-6)
    np.testing.assert_allclose(runs[None].history["energy_neg"],
                               runs[False].history["energy_neg"], rtol=1e-5)
    # Negative control: another seed's run (same compiled learner) is far outside it.
    other = learners[None].run(1, 2, x, init_params=p0, batch_size=4, progress=False)
    assert np.mean(np.abs(np.ravel(other.params["w"]) - rolled) > 1e-6) > 0.5


def test_unroll_is_checked():
    with pytest.raises(OptionError, match="unroll must be None"):
        emc.learn.CD(lambda p, z: jnp.sum(p * z**2), numpyro.optim.Adam(1e-2), unroll=4)


# ---------------------------------------------------------------------------
# JEM
# ---------------------------------------------------------------------------


def _jem(gen_weight, **kw):
    import numpyro.distributions as dist

    net = emc.nn.MLP(64, jax.random.key(0), widths=(32,), out_size=10)
    logits = emc.nn.ModuleEnergy(net, output="logits")
    opts = dict(k=3, persistent=True, sampler="sgld", step_size=1.0, noise_scale=0.01,
                bounds=(0.0, 1.0), buffer_size=64, noise=dist.Uniform(jnp.zeros(64), jnp.ones(64)))
    opts.update(kw)
    return emc.learn.JEM(logits.logits, numpyro.optim.Adam(3e-3), gen_weight=gen_weight,
                         **opts), logits


@pytest.mark.slow
def test_jem_loss_is_cross_entropy_plus_weighted_cd(digits):
    x, y, xt, yt = digits
    for w, steps in ((0.0, 2), (1.0, 30)):
        jem, logits = _jem(w)
        res = jem.run(0, steps, x, y, init_params=logits.params, batch_size=32)
        h = res.history
        np.testing.assert_allclose(
            res.losses, h["cross_entropy"] + w * (h["energy_data"] - h["energy_neg"]),
            rtol=1e-5, atol=1e-5)
        # The energy is -logsumexp of the logits.
        e = jem.batch_energy(res.params, xt[:3])
        np.testing.assert_allclose(
            e, -jax.nn.logsumexp(jem.logits(res.params, xt[:3]), axis=1), rtol=1e-5)
    # 30 updates of a small MLP already classify far above chance (0.1; its
    # standard error on 360 test digits is 0.016).
    assert jem.accuracy(res.params, xt, yt) > 0.3
    assert h["accuracy"][-5:].mean() > h["accuracy"][:5].mean()


def test_jem_checks_its_labels(digits):
    x, y, *_ = digits
    jem, logits = _jem(1.0)
    with pytest.raises(OptionError, match="needs labels"):
        jem.run(0, 2, x, init_params=logits.params)
    with pytest.raises(emc.EnergyError, match="one per data point"):
        jem.run(0, 2, x, y[:-1], init_params=logits.params)
    with pytest.raises(emc.EnergyError, match="10 classes"):
        jem.run(0, 2, x, y + 5, init_params=logits.params)


@pytest.mark.slow
def test_deep_ebm_buffer_samples_are_closer_to_digits_than_noise(digits, feature_net):
    import numpyro.distributions as dist

    x, _, xt, _ = digits
    energy = emc.nn.ModuleEnergy(emc.nn.ConvNet((8, 8), jax.random.key(0)))
    cd = emc.learn.CD(energy, numpyro.optim.Adam(1e-3, b1=0.0), k=15, persistent=True,
                      sampler="sgld", step_size=1.0, noise_scale=0.01, bounds=(0.0, 1.0),
                      buffer_size=2000, reinit_prob=0.05, energy_l2=0.1,
                      noise=dist.Uniform(jnp.zeros(64), jnp.ones(64)))
    res = cd.run(1, 300, x, init_params=energy.params, batch_size=64)
    buffer = np.asarray(res.state.extra["buffer"])[: len(xt)]
    noise = np.random.default_rng(1).uniform(size=buffer.shape)
    q = emc.metrics.sample_quality(buffer, xt, feature_net)
    q_noise = emc.metrics.sample_quality(noise, xt, feature_net)
    # examples/deep_ebm_digits.py (500 updates) reached a third of noise's
    # Fréchet distance and a fifteenth of its MMD.
    assert q["frechet"] < 0.5 * q_noise["frechet"]
    assert q["mmd"] < 0.3 * q_noise["mmd"]
