"""RBM on scikit-learn's digits: energymc persistent CD against sklearn's BernoulliRBM.

Both train a Bernoulli RBM with 16 hidden units on the 8x8 digits binarised at
8 of 16, 20% held out (fixed split). Both are scored the same way: the exact
test log-likelihood in nats per image, ``log Z`` by enumerating the 2**16
hidden states (:meth:`energymc.models.RBM.log_z_exact`). Wall time is the
first call's, compilation included.

scikit-learn gets a grid of learning rates and epochs (its own PCD with
batch size 10); its best setting *by test log-likelihood* is the reference,
which favours it. energymc runs one fixed setting: ``energymc.learn.CD`` with
``rbm.block_gibbs`` as the persistent negative-phase sampler (k=10 sweeps,
200 persistent chains), Adam with a cosine-decayed learning rate, 4000
updates. PCD's result depends on the seed (about ±0.15 nats here), so it is
run with three seeds, each a fresh learner (compilation included each time),
and the mean is compared.

Run::

    python benchmarks/bench_rbm.py            # full
    python benchmarks/bench_rbm.py --quick    # smoke test (ENERGYMC_QUICK=1 too)
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np


def load_digits_binary(seed: int = 0, test_fraction: float = 0.2):
    """Binarised digits ``(n, 64)`` float32, split into (train, test) by a fixed permutation."""
    from sklearn.datasets import load_digits

    x = (load_digits().data >= 8).astype(np.float32)
    perm = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    return x[perm[n_test:]], x[perm[:n_test]]


def exact_ll(rbm, params, train, test):
    log_z = rbm.log_z_exact(params)
    return rbm.log_likelihood(params, train, log_z), rbm.log_likelihood(params, test, log_z)


def sklearn_grid(rbm, train, test, learning_rates, epochs):
    from sklearn.neural_network import BernoulliRBM

    rows = []
    for lr in learning_rates:
        for n_iter in epochs:
            t0 = time.perf_counter()
            model = BernoulliRBM(n_components=rbm.n_hidden, learning_rate=lr, batch_size=10,
                                 n_iter=n_iter, random_state=0).fit(train.astype(np.float64))
            wall = time.perf_counter() - t0
            params = {"W": jnp.asarray(model.components_.T, jnp.float32),
                      "b": jnp.asarray(model.intercept_visible_, jnp.float32),
                      "c": jnp.asarray(model.intercept_hidden_, jnp.float32)}
            tr, te = exact_ll(rbm, params, train, test)
            rows.append({"lr": lr, "n_iter": n_iter, "wall": wall, "train": tr, "test": te})
            print(f"  sklearn lr={lr:<5} n_iter={n_iter:<4} {wall:6.2f} s  "
                  f"train {tr:8.3f}  test {te:8.3f}", flush=True)
    return rows


def energymc_pcd(rbm, train, test, num_steps, lr=0.02, k=10, batch_size=200, seed=0):
    import numpyro
    import optax

    import energymc as emc

    t0 = time.perf_counter()
    schedule = optax.cosine_decay_schedule(lr, num_steps, alpha=0.01)
    learner = emc.learn.CD(rbm.free_energy, numpyro.optim.optax_to_numpyro(optax.adam(schedule)),
                           k=k, persistent=True, sampler=rbm.block_gibbs)
    params0 = rbm.init_params(jax.random.key(seed), data=train)
    result = learner.run(jax.random.key(seed + 1), num_steps, train, init_params=params0,
                         batch_size=batch_size, progress=False)
    params = jax.block_until_ready(result.params)
    wall = time.perf_counter() - t0
    tr, te = exact_ll(rbm, params, train, test)
    print(f"  energymc PCD seed={seed} steps={num_steps} k={k} batch={batch_size} lr={lr} "
          f"(cosine) {wall:6.2f} s  train {tr:8.3f}  test {te:8.3f}", flush=True)
    return {"wall": wall, "train": tr, "test": te, "params": params}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    args = parser.parse_args(argv)
    quick = args.quick or os.environ.get("ENERGYMC_QUICK") == "1"

    from energymc.models import RBM

    train, test = load_digits_binary()
    rbm = RBM(64, 16)
    print(f"digits: {len(train)} train / {len(test)} test images, 64 pixels; RBM(64, 16); "
          f"jax {jax.__version__} on {jax.default_backend()}")
    if quick:
        sk = sklearn_grid(rbm, train, test, [0.03], [5])
        runs = [energymc_pcd(rbm, train, test, num_steps=100)]
    else:
        sk = sklearn_grid(rbm, train, test, [0.01, 0.03, 0.1], [20, 100, 300])
        runs = [energymc_pcd(rbm, train, test, num_steps=4000, seed=s) for s in (0, 1, 2)]
    best = max(sk, key=lambda r: r["test"])
    tests = np.array([r["test"] for r in runs])
    ours = {"test": float(tests.mean()), "wall": float(np.mean([r["wall"] for r in runs])),
            "tests": tests.tolist()}
    gain = ours["test"] - best["test"]
    ratio = ours["wall"] / best["wall"]
    print(f"\nsklearn best (lr={best['lr']}, n_iter={best['n_iter']}): test LL "
          f"{best['test']:.3f} nats/image in {best['wall']:.2f} s")
    print(f"energymc PCD: test LL {ours['test']:.3f} nats/image (seeds: "
          f"{', '.join(f'{t:.3f}' for t in tests)}) in {ours['wall']:.2f} s per run")
    print(f"gain {gain:+.3f} nats/image (goal >= +0.5); wall-time ratio {ratio:.2f}x (goal <= 5x)")
    return {"sklearn": best, "energymc": ours, "gain": gain, "ratio": ratio}


if __name__ == "__main__":
    main()
