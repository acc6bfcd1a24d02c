"""A diffusion energy on 8x8 digits trained on dequantised pixels, scored in bits/dim.

The digits' pixels are counts ``k = 0..16``. ``emc.learn.Diffusion(...,
dequantize=17, scale=17/16)`` takes those counts and, in every update, feeds
the model ``(k + u) / 16`` with fresh uniform noise ``u``; its
``log_likelihood`` then scores held-out digits with the same map, which
gives the bound ``log P(k) >= E_u log p((k + u) / 16) - 64 log 16``
(bits/dim; uniform over the 17 levels is log2(17) = 4.09).

Two schedules are trained the same way: ``sigma_min = 0.1``, above the 1/16
cell width, and ``sigma_min = 0.01``, below it. The second learns the hard
edges of the training cells and pays for them on held-out digits
(``docs/diffusion.md``). Writes a grid of samples of the first.

    python examples/diffusion_digits.py            # about 3 min on 2 busy CPU cores
    python examples/diffusion_digits.py --quick    # tiny sizes
"""

import time

import jax
import matplotlib.pyplot as plt
import numpy as np
import numpyro.optim
from _toy import quick_from_cli, require_sklearn, save_figure

require_sklearn()  # a clear install hint instead of an ImportError
from sklearn.datasets import load_digits  # noqa: E402

import energymc as emc  # noqa: E402

D = emc.diffusion
LEVELS, SCALE = 17, 17 / 16  # counts 0..16 onto cells (k + u) / 16 of [0, 17/16)


def digits_split(seed=0):
    """Pixel counts (integers 0..16): ``(train, test)``, 80/20 at random."""
    counts = load_digits().data.astype(np.int32)
    perm = np.random.default_rng(seed).permutation(len(counts))
    return counts[perm[:1437]], counts[perm[1437:]]


def train(counts, sigma_min, steps, seed=0):
    """The learner and its result: a 64-d MLP energy on a VE schedule."""
    schedule = D.ve(sigma_min, 8.0)
    # mlp_energy whitens by the data it is given: the model's scale (cell centres).
    net = D.mlp_energy(64, jax.random.key(seed), schedule=schedule,
                       data=(counts + 0.5) * SCALE / LEVELS, width=256)
    learner = emc.learn.Diffusion(net, numpyro.optim.Adam(1e-3), schedule, ema=0.995,
                                  dequantize=LEVELS, scale=SCALE)
    result = learner.run(jax.random.key(seed + 1), steps, counts, batch_size=128)
    return learner, result


def main():
    quick = quick_from_cli(__doc__)
    steps, n_test, ode_steps = (150, 16, 6) if quick else (8000, 200, 30)
    counts_train, counts_test = digits_split()
    counts_test = counts_test[:n_test]
    print(f"{len(counts_train)} training digits, {n_test} held-out digits, {steps} updates")
    models = {}
    for sigma_min in (0.1, 0.01):
        t0 = time.perf_counter()
        learner, result = train(counts_train, sigma_min, steps)
        ll = learner.log_likelihood(jax.random.key(2), result.params, counts_test, probes=2,
                                    steps=ode_steps)
        bits = -ll.per_example / (64 * np.log(2))
        to_bits = 1 / (64 * np.log(2))
        print(f"sigma_min {sigma_min:<5}: held-out {ll.bits_per_dim:.3f} bits/dim "
              f"+/- {ll.stderr_data * to_bits:.3f} (digits) +/- {ll.stderr * to_bits:.3f} "
              f"(probes); median {np.median(bits):.2f}, max {np.max(bits):.2f} "
              f"[{time.perf_counter() - t0:.0f} s]")
        models[sigma_min] = learner, result
    print(f"uniform over the {LEVELS} levels: {np.log2(LEVELS):.3f} bits/dim")

    learner, result = models[0.1]
    x = learner.sample(jax.random.key(3), result.params, (36, 64), steps=50 if quick else 200).x
    levels = np.clip(np.floor(x * LEVELS / SCALE), 0, LEVELS - 1)  # back to counts
    fig, axes = plt.subplots(6, 6, figsize=(5, 5))
    for ax, img in zip(axes.ravel(), levels):
        ax.imshow(img.reshape(8, 8), cmap="gray_r", vmin=0, vmax=LEVELS - 1)
        ax.axis("off")
    fig.suptitle("diffusion energy, sigma_min 0.1: reverse SDE samples")
    save_figure(fig, "diffusion_digits.png")
    plt.show()


if __name__ == "__main__":
    main()
