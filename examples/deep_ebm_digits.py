"""A deep energy on 8x8 digits, trained the way Du & Mordatch (2019) train image EBMs.

A small convolutional energy (``emc.nn.ConvNet``, about 14k parameters,
optionally spectrally normalised) is fitted to scikit-learn's digits (scaled
to [0, 1]) by persistent contrastive divergence with a replay buffer (5% of
the chains restarted from uniform noise each update), short-run SGLD with a
step size and a noise scale set separately (positions clipped to [0, 1]),
and the energy-magnitude penalty ``alpha (E(x+)^2 + E(x-)^2)``.

Sample quality is measured, not eyeballed: Fréchet distance and MMD against
held-out digits in the feature space of a small classifier trained on the
training split (``emc.metrics``), beside the same numbers for a second real
sample (the floor) and for uniform noise (the ceiling). Writes a grid of
samples.

    python examples/deep_ebm_digits.py               # a few minutes on 2 busy CPU cores
    ENERGYMC_QUICK=1 python examples/deep_ebm_digits.py
"""

import argparse
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import numpyro.distributions as dist
import numpyro.optim as optim
from _toy import QUICK, out_path, require_sklearn

require_sklearn()  # a clear install hint instead of an ImportError
from sklearn.datasets import load_digits  # noqa: E402

import energymc as emc  # noqa: E402

# The recipe. The SGLD temperature noise^2 / (2 step) is far below 1, as in
# Du & Mordatch: the learned energy describes the data only through this
# sampler (docs/deep-ebms.md, "mismatched step and noise").
RECIPE = dict(k=15, step_size=1.0, noise_scale=0.01, buffer_size=2000, reinit_prob=0.05,
              energy_l2=0.1, bounds=(0.0, 1.0))


def digits_split(seed=0):
    """Digits scaled to [0, 1]: ``(x_train, y_train, x_test, y_test)``, 80/20 at random."""
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    perm = np.random.default_rng(seed).permutation(len(x))
    tr, te = perm[:1437], perm[1437:]
    return x[tr], d.target[tr], x[te], d.target[te]


def train(x_train, steps, *, seed=0, spectral_norm=False, channels=(16, 32, 32)):
    """The learner, its result and the ModuleEnergy of a ConvNet trained by PCD + SGLD."""
    net = emc.nn.ConvNet((8, 8), jax.random.key(seed), channels=channels,
                         spectral_norm=spectral_norm)
    energy = emc.nn.ModuleEnergy(net)
    uniform = dist.Uniform(jnp.zeros(64), jnp.ones(64))
    learner = emc.learn.CD(energy, optim.Adam(3e-3, b1=0.0), persistent=True, sampler="sgld",
                           noise=uniform, **RECIPE)
    result = learner.run(jax.random.key(seed + 1), steps, x_train, init_params=energy.params,
                         batch_size=64)
    return learner, result, energy


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30 if QUICK else 500)
    parser.add_argument("--spectral-norm", action="store_true")
    args = parser.parse_args()

    x_train, y_train, x_test, y_test = digits_split()
    t0 = time.perf_counter()
    features = emc.metrics.FeatureNet.fit(x_train, y_train, seed=0,
                                          steps=200 if QUICK else 2000)
    print(f"feature net: {time.perf_counter() - t0:.1f}s, held-out accuracy "
          f"{features.accuracy(x_test, y_test):.3f}")

    t0 = time.perf_counter()
    learner, res, energy = train(x_train, args.steps, spectral_norm=args.spectral_norm)
    print(f"{args.steps} updates in {time.perf_counter() - t0:.1f}s "
          f"({energy.num_params} parameters); diverging steps "
          f"{res.history['diverging'].mean():.3g}")

    # Short-run samples: the training sampler from fresh uniform noise, 60 steps.
    noise0 = np.random.default_rng(1).uniform(size=(len(x_test), 64)).astype(np.float32)
    short = np.asarray(learner.sample_negatives(2, res.params, noise0, k=60))
    buffer = np.asarray(res.state.extra["buffer"])[: len(x_test)]
    rows = {"replay buffer": buffer, "short-run SGLD from noise": short,
            "uniform noise (ceiling)": noise0}
    print(f"{'samples':28s} {'Fréchet':>9s} {'MMD':>8s}")
    for name, s in rows.items():
        q = emc.metrics.sample_quality(s, x_test, features, second_reference=x_train)
        print(f"{name:28s} {q['frechet']:9.3f} {q['mmd']:8.4f}")
    print(f"{'second real sample (floor)':28s} {q['frechet_ref']:9.3f} {q['mmd_ref']:8.4f}")

    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    emc.plots.plot_images(x_test[:36], shape=(8, 8), ax=axes[0], title="held-out digits",
                          vmin=0, vmax=1)
    emc.plots.plot_images(buffer[:36], shape=(8, 8), ax=axes[1], title="replay buffer",
                          vmin=0, vmax=1)
    emc.plots.plot_images(short[:36], shape=(8, 8), ax=axes[2], title="short-run SGLD",
                          vmin=0, vmax=1)
    fig.tight_layout()
    path = out_path("deep_ebm_digits.png")
    fig.savefig(path, dpi=90)
    print("wrote", path)
    return res


if __name__ == "__main__":
    main()
