"""The score-based row on 2-d data: multi-level denoising score matching and
annealed Langevin sampling over the same noise levels (Song & Ermon 2019).

The energy is noise-conditional, ``E(x, sigma) = mlp([x, log sigma]) / sigma``
(the ``1/sigma`` scaling of Song & Ermon 2020 keeps the score's magnitude right
at every level). Writes a PNG: data, annealed Langevin samples, and the learned
energy at the smallest and a middle noise level.

    python examples/learn_score2d.py
    ENERGYMC_QUICK=1 python examples/learn_score2d.py
"""

import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import numpyro.optim as optim
from _toy import QUICK, grid, mlp_apply, mlp_init, out_path, toy_data

from energymc import learn

STEPS = 100 if QUICK else 5000
N = 1000 if QUICK else 10000
SIGMAS = learn.geometric_sigmas(2.0, 0.05, 10)


def energy(params, x, sigma):
    """Noise-conditional energy of ONE point x (2,) at noise level sigma."""
    h = jnp.concatenate([x, jnp.log(sigma)[None]])
    return mlp_apply(params, h)[0] / sigma


def main(name="8gaussians"):
    data = toy_data(name, N)
    params0 = mlp_init(jax.random.key(0), [3, 128, 128, 1])
    learner = learn.DSM(energy, optim.Adam(2e-3), sigmas=SIGMAS)
    t0 = time.perf_counter()
    res = learner.run(jax.random.key(1), STEPS, data, init_params=params0, batch_size=512)
    print(f"DSM on {name}: {STEPS} updates in {time.perf_counter() - t0:.1f}s, final loss "
          f"{res.losses[-100:].mean():.3f}")

    x0 = jax.random.uniform(jax.random.key(2), (2000, 2), minval=-4.0, maxval=4.0)
    t0 = time.perf_counter()
    samples = np.asarray(learner.sample(jax.random.key(3), res.params, x0,
                                        steps_per_level=20 if QUICK else 100, step_lr=5e-4))
    print(f"annealed Langevin: 2000 samples in {time.perf_counter() - t0:.1f}s")

    pts, xx, yy = grid(4.0)
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.8))
    axes[0].scatter(data[:2000, 0], data[:2000, 1], s=1)
    axes[0].set_title(f"{name}: data")
    axes[1].scatter(samples[:, 0], samples[:, 1], s=1, c="C1")
    axes[1].set_title("annealed Langevin samples")
    for ax, sigma in zip(axes[2:], [SIGMAS[len(SIGMAS) // 2], SIGMAS[-1]], strict=True):
        e = np.asarray(jax.vmap(energy, in_axes=(None, 0, None))(res.params, pts,
                                                                jnp.asarray(sigma)))
        ax.contourf(xx, yy, (e - e.min()).reshape(xx.shape), levels=30, cmap="viridis")
        ax.set_title(f"E(x, sigma={sigma:.2f})")
    for ax in axes:
        ax.set_xlim(-4, 4)
        ax.set_ylim(-4, 4)
        ax.set_aspect("equal")
    fig.tight_layout()
    path = out_path("learn_score2d.png")
    fig.savefig(path, dpi=90)
    print("wrote", path)


if __name__ == "__main__":
    main()
