"""Fit a small MLP energy to 2-d toy data by contrastive divergence with a replay buffer.

Three sets (two moons, eight Gaussians, two rings); for each, a PNG with the
learned energy landscape, the data, and samples of the model (the replay
buffer, i.e. the persistent negative chains, after training). Also prints the
energy distance between model samples and held-out data.

    python examples/learn_toy2d.py            # ~2 min per set on 2 busy CPU cores
    ENERGYMC_QUICK=1 python examples/learn_toy2d.py   # a few seconds, for CI
"""

import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import numpyro.optim as optim
from _toy import QUICK, grid, mlp_energy, mlp_init, out_path, toy_data

from energymc import learn

SETS = ["moons", "8gaussians", "rings"]
STEPS = 60 if QUICK else 3000
N = 500 if QUICK else 5000


def energy_distance(a, b):
    """2 E|a-b| - E|a-a'| - E|b-b'|, for (n, d) arrays (>= 0; 0 iff same law)."""
    def mean_dist(u, v):
        return np.mean(np.linalg.norm(u[:, None, :] - v[None, :, :], axis=-1))

    return 2 * mean_dist(a, b) - mean_dist(a, a) - mean_dist(b, b)


def fit(name, seed=0):
    data = toy_data(name, N, seed)
    held_out = toy_data(name, 1000, seed + 1)
    params0 = mlp_init(jax.random.key(seed), [2, 64, 64, 1])
    learner = learn.CD(
        mlp_energy, optim.Adam(1e-3), k=20 if not QUICK else 5, persistent=True,
        sampler="langevin", step_size=5e-3, buffer_size=min(N, 5000), reinit_prob=0.05,
        energy_l2=0.1,
    )
    t0 = time.perf_counter()
    res = learner.run(jax.random.key(seed + 10), STEPS, data, init_params=params0,
                      batch_size=min(256, N))
    samples = np.asarray(res.state.extra["buffer"])[:1000]
    ed = energy_distance(samples, held_out)
    print(f"{name:>10}: {STEPS} updates in {time.perf_counter() - t0:.1f}s, final loss "
          f"{res.losses[-50:].mean():+.3f}, acceptance "
          f"{np.nanmean(res.history['acceptance_rate']):.2f}"
          f", energy distance to held-out data {ed:.3f}")
    return data, res, samples, learner


def main():
    fig, axes = plt.subplots(len(SETS), 3, figsize=(10, 3.3 * len(SETS)))
    pts, xx, yy = grid()
    for row, name in zip(axes, SETS, strict=True):
        data, res, samples, learner = fit(name)
        energy = np.asarray(learner.batch_energy(res.params, jnp.asarray(pts)))
        density = np.exp(-(energy - energy.min())).reshape(xx.shape)
        row[0].scatter(data[:1000, 0], data[:1000, 1], s=2)
        row[0].set_title(f"{name}: data")
        row[1].contourf(xx, yy, energy.reshape(xx.shape), levels=30, cmap="viridis")
        row[1].set_title("learned energy E(x)")
        row[2].imshow(density, origin="lower", extent=[xx.min(), xx.max(), yy.min(), yy.max()],
                      cmap="magma")
        row[2].scatter(samples[:, 0], samples[:, 1], s=1, c="cyan", alpha=0.5)
        row[2].set_title("exp(-E) and model samples")
        for ax in row:
            ax.set_xlim(xx.min(), xx.max())
            ax.set_ylim(yy.min(), yy.max())
            ax.set_aspect("equal")
    fig.tight_layout()
    path = out_path("learn_toy2d.png")
    fig.savefig(path, dpi=90)
    print("wrote", path)


if __name__ == "__main__":
    main()
