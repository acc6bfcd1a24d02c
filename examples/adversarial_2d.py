"""Adversarial training of an energy against a generator, on a ring of 8 Gaussians.

Trains ``emc.learn.Adversarial`` twice with the same seeds: with VERA's entropy
term (the generator minimises ``KL(q || p_theta)``) and without it (a GAN-like
generator, the negative control).
Prints each run's MMD against held-out data (one kernel width, and four, which
also sees the modes' widths) beside the same for a second draw from the truth,
how many samples fall near each of the 8 modes, and what the learner's
coverage check reported. The figure shows
both generators' samples (orange) over their energies (filled contours
of ``-E``, darker is lower energy).

    python examples/adversarial_2d.py            # figure also to docs/img/
    python examples/adversarial_2d.py --quick    # tiny sizes
"""

import os
import time

import jax
import matplotlib.pyplot as plt
import numpy as np
import optax
from _toy import grid, mlp_apply, mlp_energy, mlp_init, quick_from_cli, save_figure, toy_data

import energymc as emc

#: The negative control: a GAN's generator (no entropy term).
PLAIN_GAN = dict(entropy_weight=0.0)


def train(data, steps, width, seed=1, **options):
    """Train from the same initial networks (key 0); ``seed`` draws batches and samples."""
    learner = emc.learn.Adversarial(mlp_energy, mlp_apply, optax.adam(1e-2, b1=0.5),
                                    latent_dim=2, **options)
    k1, k2 = jax.random.split(jax.random.key(0))
    params = {"energy": mlp_init(k1, [2, width, width, 1]),
              "generator": mlp_init(k2, [2, width, width, 2])}
    t0 = time.perf_counter()
    res = learner.run(jax.random.key(seed), steps, data, init_params=params, batch_size=256)
    return learner, res, time.perf_counter() - t0


def mode_counts(x):
    """Samples nearest to each of the 8 mode angles."""
    k = np.round(np.arctan2(x[:, 1], x[:, 0]) / (2 * np.pi / 8)).astype(int) % 8
    return np.bincount(k, minlength=8)


def main(quick):
    steps, width, n = (30, 16, 300) if quick else (2000, 64, 2000)
    data = toy_data("8gaussians", 4000, seed=0)
    ref = toy_data("8gaussians", n, seed=1)
    floor = emc.metrics.mmd(toy_data("8gaussians", n, seed=2), ref)
    second = toy_data("8gaussians", n, seed=2)
    print(f"MMD^2 of a second draw from the truth: {floor:.5f} (four widths "
          f"{emc.metrics.mmd(second, ref, scales=emc.metrics.MULTISCALE):.5f})")
    g, xx, yy = grid(3.5, 100)
    fig, ax = plt.subplots(1, 3, figsize=(12, 4))
    ax[0].scatter(*ref.T, s=2, alpha=0.5)
    ax[0].set_title("data: ring of 8 Gaussians")
    for a, options, title in ((ax[1], {}, "with entropy (VERA)"),
                              (ax[2], PLAIN_GAN, "without entropy (control)")):
        learner, res, secs = train(data, steps, width, **options)
        x = np.asarray(learner.sample(jax.random.key(5), res.params, n))
        print(f"{title}: {steps} updates in {secs:.1f} s; MMD^2 "
              f"{emc.metrics.mmd(x, ref):.5f} (four widths "
              f"{emc.metrics.mmd(x, ref, scales=emc.metrics.MULTISCALE):.5f}); "
              f"samples per mode {mode_counts(x).tolist()}")
        print("  problems:", res.problems or "none")
        e = np.asarray(jax.jit(learner.batch_energy)(res.params, g)).reshape(xx.shape)
        # -E on its own scale per panel (exp(-E) would show only the deepest basin).
        a.contourf(xx, yy, -e, levels=20, cmap="Blues")
        a.scatter(*x.T, s=2, alpha=0.5, color="C1")
        a.set_title(title)
    for a in ax:
        a.set_xlim(-3.5, 3.5)
        a.set_ylim(-3.5, 3.5)
        a.set_aspect("equal")
    fig.tight_layout()
    save_figure(fig, "adversarial_2d.png")
    if not quick:
        img = os.path.join(os.path.dirname(__file__), "..", "docs", "img")
        os.makedirs(img, exist_ok=True)
        fig.savefig(os.path.join(img, "adversarial_2d.png"), dpi=90)
    plt.show()


if __name__ == "__main__":
    main(quick_from_cli(__doc__))
