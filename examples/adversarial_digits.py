"""Adversarial training on 8x8 digits: an energy against a generator that covers the data.

``emc.learn.Adversarial`` with the recipe for images (``docs/adversarial.md``,
"Images"): a sigmoid MLP generator (pixels in [0, 1]) with a 16-d latent,
small generator noise, the Jacobian (Laplace) estimate of the generator's
entropy, a weak energy penalty so that the energy can span the
log-density's range, and a learning rate that decays as ``1 / sqrt(t)``.
The batch-mixture estimate, the default for 2-d sets, sees only each
sample's own noise in 64 dimensions: its run is trained beside as the
negative control (its generator falls into the energy's minima and the
coverage check reports it).

Prints each run's Fréchet distance and MMD against held-out digits (in the
feature space of a classifier trained on the training split,
``emc.metrics``), beside a second real sample (the floor), and what the
coverage check reported. Writes a grid of samples (a full run also to
docs/img/).

    python examples/adversarial_digits.py          # ~5 min on 2 busy CPU cores
    ENERGYMC_QUICK=1 python examples/adversarial_digits.py
"""

import argparse
import os
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from _toy import QUICK, mlp_apply, mlp_energy, mlp_init, out_path, require_sklearn

require_sklearn()  # a clear install hint instead of an ImportError
from deep_ebm_digits import digits_split  # noqa: E402  (the same 80/20 split)

import energymc as emc  # noqa: E402

# The recipe, chosen on a validation split of the training digits
# (benchmarks/RESULTS.md, "Adversarial training on digits").
RECIPE = dict(latent_dim=16, noise=0.03, energy_l2=1e-3, entropy="jacobian")
#: Adam's rate, decayed as 1e-3 / sqrt(1 + t / 2000): the game settles instead of jittering.
RATE = 1e-3
DECAY = 2000
#: The negative control: the 2-d default entropy estimate, at the same settings.
BATCH_ENTROPY = dict(RECIPE, entropy="batch")


def sigmoid_generator(params, z):
    """``z`` ``(latent_dim,)`` -> 64 pixels in (0, 1): an MLP with a sigmoid output."""
    return jax.nn.sigmoid(mlp_apply(params, z))


def train(x_train, steps, width, options, seed=1):
    """Energy and generator MLPs from key 0; ``seed`` draws the batches and latents."""
    def rate(t):
        return RATE / jnp.sqrt(1.0 + t / DECAY)

    learner = emc.learn.Adversarial(mlp_energy, sigmoid_generator, optax.adam(rate, b1=0.5),
                                    **options)
    k1, k2 = jax.random.split(jax.random.key(0))
    params = {"energy": mlp_init(k1, [64, width, width, 1]),
              "generator": mlp_init(k2, [options["latent_dim"], width, width, 64])}
    return learner, learner.run(jax.random.key(seed), steps, x_train, init_params=params,
                                batch_size=64)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30 if QUICK else 8000)
    args = parser.parse_args()
    width = 32 if QUICK else 256

    x_train, y_train, x_test, y_test = digits_split()
    features = emc.metrics.FeatureNet.fit(x_train, y_train, seed=0,
                                          steps=200 if QUICK else 2000)
    print(f"feature net: held-out accuracy {features.accuracy(x_test, y_test):.3f}")
    floor = emc.metrics.sample_quality(x_train[: len(x_test)], x_test, features)
    print(f"{'run':34s} {'Fréchet':>9s} {'MMD':>8s}  coverage check")
    print(f"{'second real sample (floor)':34s} {floor['frechet']:9.2f} {floor['mmd']:8.4f}")
    grids = {}
    for name, options in (("Jacobian entropy (the recipe)", RECIPE),
                          ("batch entropy (control)", BATCH_ENTROPY)):
        t0 = time.perf_counter()
        learner, res = train(x_train, args.steps, width, options)
        # Generator noise can leave [0, 1]; the pixels are clipped back for scoring.
        x = np.clip(np.asarray(learner.sample(jax.random.key(2), res.params, len(x_test))), 0, 1)
        q = emc.metrics.sample_quality(x, x_test, features)
        verdict = "reports: does not cover" if res.problems else "passes"
        print(f"{name:34s} {q['frechet']:9.2f} {q['mmd']:8.4f}  {verdict} "
              f"({args.steps} updates, {time.perf_counter() - t0:.0f} s)")
        grids[name] = x

    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    emc.plots.plot_images(x_test[:36], shape=(8, 8), ax=axes[0], title="held-out digits",
                          vmin=0, vmax=1)
    for ax, (name, x) in zip(axes[1:], grids.items(), strict=True):
        emc.plots.plot_images(x[:36], shape=(8, 8), ax=ax, title=name, vmin=0, vmax=1)
    fig.tight_layout()
    path = out_path("adversarial_digits.png")
    fig.savefig(path, dpi=90)
    print("wrote", path)
    if not QUICK and args.steps >= 8000:  # the documented run: also the docs' figure
        img = os.path.join(os.path.dirname(__file__), "..", "docs", "img")
        os.makedirs(img, exist_ok=True)
        fig.savefig(os.path.join(img, "adversarial_digits.png"), dpi=90)


if __name__ == "__main__":
    main()
