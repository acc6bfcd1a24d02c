"""Mode weights of a learned energy: which learners get them wrong, and the check that says so.

Eight Gaussians (sd 0.2) on a circle of radius 2.5, an MLP energy (2-64-64-1,
swish, with a weak quadratic envelope), Adam 1e-3, batch 256: the recipe of
the learning notebook. Trained by SSM, DSM, CD and NCE with their default
options. For each: the exact held-out KL from the truth (the model's log Z by
quadrature on a grid), then what ``result.checks["modes"]`` found: the
shares of mass the model gives the modes that descents from the data reach,
against the data's shares, the KL those weights alone cost, and whether the
run was flagged. A plot of each model's density goes to
``examples/output/learn_mode_weights.png``.

At 3,000 updates NCE (like persistent CD) has learned a ring, not yet the
eight modes: its KL is large, and the check, which judges only Gaussian-like
modes, says nothing about it (``benchmarks/RESULTS.md``, "Neural energies in
the learner zoo").

Run: ``python examples/learn_mode_weights.py`` (``ENERGYMC_QUICK=1`` for a
short run, whose models are too young to mean much).
"""

import os
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.optim as optim

import energymc as emc

QUICK = os.environ.get("ENERGYMC_QUICK") == "1"
STEPS = 200 if QUICK else 3000
OUT = os.path.join(os.path.dirname(__file__), "output")
CENTRES = 2.5 * np.stack([np.cos(np.arange(8) * np.pi / 4), np.sin(np.arange(8) * np.pi / 4)], 1)
GRID = np.linspace(-6.0, 6.0, 241)


def eight_gaussians(n, seed):
    rng = np.random.default_rng(seed)
    return (CENTRES[rng.integers(0, 8, n)] + 0.2 * rng.normal(size=(n, 2))).astype(np.float32)


def true_log_density(x):
    sq = np.sum((x[:, None, :] - CENTRES[None]) ** 2, axis=-1)
    comps = -0.5 * sq / 0.04 - np.log(2 * np.pi * 0.04) - np.log(8)
    top = comps.max(1)
    return top + np.log(np.exp(comps - top[:, None]).sum(1))


def energy(params, x):
    h = x
    for layer in params[:-1]:
        h = jax.nn.swish(h @ layer["w"] + layer["b"])
    return (h @ params[-1]["w"] + params[-1]["b"])[0] + jnp.sum(x**2) / 32.0


def init_params(key, sizes=(2, 64, 64, 1)):
    params = []
    for k, (m, n) in zip(jax.random.split(key, len(sizes) - 1), zip(sizes[:-1], sizes[1:])):
        lim = np.sqrt(6.0 / (m + n))
        params.append({"w": jax.random.uniform(k, (m, n), minval=-lim, maxval=lim),
                       "b": jnp.zeros(n)})
    return params


def log_density_on(params, points):
    """The model's normalised log-density at ``points``, log Z by quadrature on GRID."""
    xx, yy = np.meshgrid(GRID, GRID)
    batch = jax.jit(jax.vmap(energy, in_axes=(None, 0)))
    e_grid = np.asarray(batch(params, jnp.asarray(np.stack([xx.ravel(), yy.ravel()], 1))), float)
    cell = (GRID[1] - GRID[0]) ** 2
    log_z = -e_grid.min() + np.log(np.exp(-(e_grid - e_grid.min())).sum() * cell)
    return -np.asarray(batch(params, jnp.asarray(points)), float) - log_z, -e_grid - log_z


def main():
    os.makedirs(OUT, exist_ok=True)
    train, test = eight_gaussians(4000, 0), eight_gaussians(2000, 1)
    params0 = init_params(jax.random.key(0))
    learners = {"SSM": emc.learn.SSM(energy, optim.Adam(1e-3)),
                "DSM": emc.learn.DSM(energy, optim.Adam(1e-3)),
                "CD": emc.learn.CD(energy, optim.Adam(1e-3)),
                "NCE": emc.learn.NCE(energy, optim.Adam(1e-3))}
    print(f"eight Gaussians, MLP energy, {STEPS} updates of Adam 1e-3, batch 256")
    densities = {}
    for name, learner in learners.items():
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", emc.EnergymcWarning)  # printed below instead
            res = learner.run(jax.random.key(0), STEPS, train, init_params=params0,
                              batch_size=256, progress=False)
        seconds = time.perf_counter() - start
        log_p, densities[name] = log_density_on(res.params, test)
        kl = float(np.mean(true_log_density(test.astype(float)) - log_p))
        check = res.checks["modes"]
        print(f"\n{name}: held-out KL from the truth {kl:.3f} nats, {seconds:.1f} s")
        judged = [m for m in check["modes"] if m["judged"]]
        if check["kl"] is None:
            print(f"  mode check: {check['judged']} Gaussian-like modes judged, nothing to compare")
        else:
            shares = ", ".join(f"{m['model_share']:.2f}/{m['data_share']:.2f}" for m in judged)
            print(f"  mode check: {len(judged)} modes, model/data shares {shares}; "
                  f"weights cost {check['kl']:.3f} nats, flagged: {check['flag']}")
        for problem in res.problems:
            print("  problem: " + problem[:160] + "...")
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        print("\n(matplotlib not installed: no plot)")
        return
    fig, axes = plt.subplots(1, 4, figsize=(16, 4))
    for ax, (name, dens) in zip(axes, densities.items()):
        ax.imshow(np.exp(dens.reshape(len(GRID), len(GRID))), origin="lower",
                  extent=(GRID[0], GRID[-1], GRID[0], GRID[-1]))
        ax.set_title(name)
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "learn_mode_weights.png"), dpi=80)
    print(f"\nplot: {os.path.join(OUT, 'learn_mode_weights.png')}")


if __name__ == "__main__":
    main()
