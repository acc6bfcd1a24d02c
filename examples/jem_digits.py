"""JEM on 8x8 digits: one convolutional network that classifies and generates.

The logits ``f(x)`` of a small ``emc.nn.ConvNet`` give ``p(y | x)`` and the
energy ``E(x) = -logsumexp f(x)`` (Grathwohl et al. 2020). ``emc.learn.JEM``
fits the cross-entropy plus the contrastive-divergence loss of ``E`` with the
deep-EBM recipe of ``examples/deep_ebm_digits.py`` (replay buffer, SGLD with
a separate noise scale, energy-magnitude penalty). Reports the held-out test
accuracy beside the generative quality (Fréchet distance and MMD against
held-out digits in a feature classifier's space) and writes a sample grid.

    python examples/jem_digits.py                    # a few minutes on 2 busy CPU cores
    python examples/jem_digits.py --gen-weight 0     # the same network as a plain classifier
    ENERGYMC_QUICK=1 python examples/jem_digits.py
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
from deep_ebm_digits import RECIPE, digits_split

require_sklearn()  # a clear install hint instead of an ImportError

import energymc as emc  # noqa: E402


def train(x_train, y_train, steps, *, seed=0, gen_weight=1.0, num_classes=10):
    """The JEM learner, its result and the logits' ModuleEnergy."""
    net = emc.nn.ConvNet((8, 8), jax.random.key(seed), out_size=num_classes)
    logits = emc.nn.ModuleEnergy(net, output="logits")
    uniform = dist.Uniform(jnp.zeros(64), jnp.ones(64))
    jem = emc.learn.JEM(logits.logits, optim.Adam(1e-3, b1=0.0), gen_weight=gen_weight,
                        persistent=True, sampler="sgld", noise=uniform, **RECIPE)
    result = jem.run(jax.random.key(seed + 1), steps, x_train, y_train,
                     init_params=logits.params, batch_size=64)
    return jem, result, logits


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30 if QUICK else 500)
    parser.add_argument("--gen-weight", type=float, default=1.0)
    args = parser.parse_args()

    x_train, y_train, x_test, y_test = digits_split()
    features = emc.metrics.FeatureNet.fit(x_train, y_train, seed=0,
                                          steps=200 if QUICK else 2000)
    t0 = time.perf_counter()
    jem, res, logits = train(x_train, y_train, args.steps, gen_weight=args.gen_weight)
    print(f"JEM, {args.steps} updates in {time.perf_counter() - t0:.1f}s "
          f"({logits.num_params} parameters), gen_weight={args.gen_weight:g}")
    print(f"held-out test accuracy: {jem.accuracy(res.params, x_test, y_test):.3f}")

    noise0 = np.random.default_rng(1).uniform(size=(len(x_test), 64)).astype(np.float32)
    short = np.asarray(jem.sample_negatives(2, res.params, noise0, k=60))
    buffer = np.asarray(res.state.extra["buffer"])[: len(x_test)]
    print(f"{'samples':28s} {'Fréchet':>9s} {'MMD':>8s}")
    for name, s in {"replay buffer": buffer, "short-run SGLD from noise": short}.items():
        q = emc.metrics.sample_quality(s, x_test, features, second_reference=x_train)
        print(f"{name:28s} {q['frechet']:9.3f} {q['mmd']:8.4f}")
    print(f"{'second real sample (floor)':28s} {q['frechet_ref']:9.3f} {q['mmd_ref']:8.4f}")

    fig, axes = plt.subplots(1, 2, figsize=(7, 3.6))
    emc.plots.plot_images(buffer[:36], shape=(8, 8), ax=axes[0], title="JEM replay buffer",
                          vmin=0, vmax=1)
    emc.plots.plot_images(short[:36], shape=(8, 8), ax=axes[1], title="JEM short-run SGLD",
                          vmin=0, vmax=1)
    fig.tight_layout()
    path = out_path("jem_digits.png")
    fig.savefig(path, dpi=90)
    print("wrote", path)
    return res


if __name__ == "__main__":
    main()
