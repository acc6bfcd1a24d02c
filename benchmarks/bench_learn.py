"""Benchmark of energymc.learn: per-update wall time and final quality per learner.

Two tasks, every learner with the same budget of updates:

1. Gaussian, d = 5, E(x) = x^T P x / 2 with P = L L^T: relative Frobenius
   error of the learned precision against the closed-form optimum (the MLE
   inv(X^T X / n); for DSM also against its own optimum inv(X^T X / n + s^2 I)).
2. Two moons / eight Gaussians, energy = MLP 2-64-64-1 plus a fixed weak
   confinement |x|^2 / 32 (without it a learned MLP energy can fall without
   bound far from the data, exp(-E) is not normalisable, and sampling it
   escapes): energy distance between 2000 MALA samples of the learned energy
   (chains started uniformly over the plotting box) and 2000 held-out points.

Wall time per update excludes compilation: each learner is timed on a second
run continued from the first (``init_state=``). ebmkit (PyTorch) is compared
only if it is importable; it is not installed here.

    python benchmarks/bench_learn.py          # ~5-10 min on 2 busy CPU cores
    ENERGYMC_QUICK=1 python benchmarks/bench_learn.py
"""

import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.optim as optim

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
from _toy import mlp_energy, mlp_init, toy_data  # noqa: E402

import energymc as emc  # noqa: E402
from energymc import learn  # noqa: E402

QUICK = os.environ.get("ENERGYMC_QUICK") == "1"
D = 5
TRIL = np.tril_indices(D)
GAUSS_STEPS = 100 if QUICK else 1500
TOY_STEPS = 50 if QUICK else 2000


def gauss_energy(params, x):
    lower = jnp.zeros((D, D)).at[TRIL].set(params["l"])
    lower = lower.at[jnp.diag_indices(D)].set(jnp.exp(jnp.diag(lower)))
    return 0.5 * x @ (lower @ lower.T) @ x


def precision(params):
    lower = np.zeros((D, D))
    lower[TRIL] = np.asarray(params["l"])
    lower[np.diag_indices(D)] = np.exp(np.diag(lower))
    return lower @ lower.T


def decaying_adam(steps, start=3e-2, end=1e-3):
    rate = (end / start) ** (1.0 / steps)
    return optim.Adam(lambda i: start * rate**i)


def gauss_learners(steps):
    opt = lambda: decaying_adam(steps)  # noqa: E731
    return {
        "CD-10 (langevin)": learn.CD(gauss_energy, opt(), k=10, sampler="langevin",
                                     step_size=0.02),
        "PCD-5 (mala)": learn.CD(gauss_energy, opt(), k=5, persistent=True, sampler="mala",
                                 step_size=0.2),
        "replay-10 (mala)": learn.CD(gauss_energy, opt(), k=10, persistent=True,
                                     buffer_size=4000, sampler="mala", step_size=0.2),
        "NCE (nu=4)": learn.NCE(gauss_energy, opt(), noise_ratio=4),
        "DSM (sigma=0.1)": learn.DSM(gauss_energy, opt(), sigma=0.1),
        "SSM (1 proj)": learn.SSM(gauss_energy, opt(), n_projections=1),
    }


def timed(learner, key, steps, data, init_params, batch_size):
    """Run ``steps`` updates (compiles), then time ``steps`` more continued from there."""
    first = learner.run(key, steps // 2, data, init_params=init_params, batch_size=batch_size,
                        progress=False)
    t0 = time.perf_counter()
    res = learner.run(key, steps - steps // 2, data, init_state=first.state,
                      batch_size=batch_size, progress=False)
    per_update = (time.perf_counter() - t0) / (steps - steps // 2)
    return res, per_update


def bench_gaussian():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(D, D))
    cov = a @ a.T / D + 0.3 * np.eye(D)
    x = rng.multivariate_normal(np.zeros(D), cov, size=5000).astype(np.float32)
    s_hat = x.T @ x / len(x)
    p_mle = np.linalg.inv(s_hat)
    p0 = {"l": jnp.zeros(len(TRIL[0]))}
    rows = []
    for name, learner in gauss_learners(GAUSS_STEPS).items():
        res, per = timed(learner, jax.random.key(1), GAUSS_STEPS, x, p0, 500)
        p = precision(res.params)
        err = np.linalg.norm(p - p_mle) / np.linalg.norm(p_mle)
        note = ""
        if name.startswith("DSM"):
            own = np.linalg.inv(s_hat + 0.01 * np.eye(D))
            note = f"vs own optimum {np.linalg.norm(p - own) / np.linalg.norm(p_mle):.3f}"
        if res.log_z is not None:
            analytic = 0.5 * D * np.log(2 * np.pi) - 0.5 * np.linalg.slogdet(p)[1]
            note = f"log_z error {res.log_z - analytic:+.3f} nats"
        rows.append((name, per * 1e3, err, note))
    return rows


def energy_distance(a, b):
    def mean_dist(u, v):
        return np.mean(np.linalg.norm(u[:, None, :] - v[None, :, :], axis=-1))

    return 2 * mean_dist(a, b) - mean_dist(a, a) - mean_dist(b, b)


def confined_energy(params, x):
    """The MLP energy plus |x|^2 / 32: a N(0, 4^2) envelope keeps exp(-E) normalisable."""
    return mlp_energy(params, x) + jnp.sum(x**2) / 32.0


def model_samples(params, n, seed):
    target = emc.Energy.from_params(confined_energy, params, init=jnp.zeros(2))
    init = jax.random.uniform(jax.random.key(seed), (n, 2), minval=-3.5, maxval=3.5)
    run = emc.sample(target, method="mala", chains=n, draws=1, warmup=300 if not QUICK else 50,
                     seed=seed, init=init, progress=False)
    return np.asarray(run.draws)[:, -1, :]


def toy_learners(steps):
    opt = lambda: optim.Adam(1e-3)  # noqa: E731
    return {
        "CD-20 (langevin)": learn.CD(confined_energy, opt(), k=20, sampler="langevin",
                                     step_size=5e-3, energy_l2=0.1),
        "replay-20 (langevin)": learn.CD(confined_energy, opt(), k=20, persistent=True,
                                         buffer_size=5000, sampler="langevin", step_size=5e-3,
                                         energy_l2=0.1),
        "NCE (nu=4)": learn.NCE(confined_energy, opt(), noise_ratio=4),
        "DSM (sigma=0.1)": learn.DSM(confined_energy, opt(), sigma=0.1),
        "SSM (1 proj)": learn.SSM(confined_energy, opt(), n_projections=1),
    }


def bench_toy(name):
    n = 2000 if not QUICK else 400
    data = toy_data(name, 5000 if not QUICK else 500, seed=0)
    held = toy_data(name, n, seed=1)
    p0 = mlp_init(jax.random.key(0), [2, 64, 64, 1])
    rows = []
    floor = energy_distance(toy_data(name, n, seed=2), held)
    for lname, learner in toy_learners(TOY_STEPS).items():
        res, per = timed(learner, jax.random.key(1), TOY_STEPS, data, p0, 256)
        samples = model_samples(res.params, n, seed=3)
        ok = np.isfinite(samples).all(axis=1)
        note = "" if ok.all() else f"{(~ok).sum()} non-finite MALA chains dropped"
        rows.append((lname, per * 1e3, energy_distance(samples[ok], held), note))
    return rows, floor


def main():
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, "
          f"{os.cpu_count()} CPU cores, quick={QUICK}")
    try:
        import ebmkit  # noqa: F401

        print("ebmkit is importable, but no comparison is wired up yet")
    except ImportError:
        print("ebmkit not installed: comparison skipped")
    print(f"\n## Gaussian d={D}, n=5000, batch 500, {GAUSS_STEPS} updates")
    print(f"{'learner':<22} {'ms/update':>10} {'rel. precision error':>22}")
    for name, ms, err, note in bench_gaussian():
        print(f"{name:<22} {ms:>10.2f} {err:>22.3f}  {note}")
    for toy in ["moons", "8gaussians"]:
        rows, floor = bench_toy(toy)
        print(f"\n## {toy}, MLP 2-64-64-1, batch 256, {TOY_STEPS} updates; energy distance "
              f"(two independent data samples: {floor:.4f})")
        print(f"{'learner':<22} {'ms/update':>10} {'energy distance':>22}")
        for name, ms, ed, note in rows:
            print(f"{name:<22} {ms:>10.2f} {ed:>22.4f}  {note}")


if __name__ == "__main__":
    main()
