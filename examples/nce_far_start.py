"""NCE from a model that starts far from the data: the default noise follows the model.

A 5-d Gaussian with a dense covariance (condition number 30) and its mean
2-12 whitened sds from the origin, fitted by ``learn.NCE`` with the energy
``(x - mu)^T L L^T (x - mu) / 2`` started at ``mu = 0``, ``L = I``. Twice: with
the default noise (half a Gaussian fitted to the data, half one following the
model's persistent chains) and with the fitted Gaussian alone
(``model_noise=0``). For each: the precision's relative error against the
maximum-likelihood answer, the mean's largest error in data sds, what
``result.problems`` says, and the seconds taken.

Run: ``python examples/nce_far_start.py`` (``ENERGYMC_QUICK=1`` for a short run).
Writes nothing but ``examples/output/`` (created).
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
STEPS = 200 if QUICK else 1000
OUT = os.path.join(os.path.dirname(__file__), "output")
DIM = 5
TRIL = np.tril_indices(DIM)


def data(n=1000, seed=3):
    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.normal(size=(DIM, DIM)))
    cov = 4.0 * q @ np.diag(np.geomspace(1.0, 1.0 / 30.0, DIM)) @ q.T
    mean = np.array([1.0, -1.0, 2.0, 0.0, 5.0])
    return np.random.default_rng(seed).multivariate_normal(mean, cov, n).astype(np.float32)


def energy(params, x):
    lower = jnp.zeros((DIM, DIM), x.dtype).at[TRIL].set(params["l"])
    lower = lower.at[jnp.diag_indices(DIM)].set(jnp.exp(jnp.diag(lower)))
    y = lower.T @ (x - params["mu"])
    return 0.5 * y @ y


def precision(params):
    lower = np.zeros((DIM, DIM))
    lower[TRIL] = np.asarray(params["l"], float)
    lower[np.diag_indices(DIM)] = np.exp(np.diag(lower))
    return lower @ lower.T


def main():
    os.makedirs(OUT, exist_ok=True)
    x = data()
    x64 = x.astype(float)
    mu_hat = x64.mean(0)
    s_hat = np.cov(x64, rowvar=False, bias=True)
    p_mle, sd = np.linalg.inv(s_hat), np.sqrt(np.diag(s_hat))
    init = {"l": jnp.zeros(len(TRIL[0])), "mu": jnp.zeros(DIM)}
    rate = (1e-3 / 5e-2) ** (1.0 / STEPS)
    print(f"NCE, {STEPS} updates of Adam 5e-2 -> 1e-3, batch 128")
    for label, share in [("default noise (follows the model)", None),
                         ("fitted Gaussian alone (model_noise=0)", 0.0)]:
        learner = emc.learn.NCE(energy, optim.Adam(lambda i: 5e-2 * rate**i), model_noise=share)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", emc.EnergymcWarning)  # shown below instead
            res = learner.run(jax.random.key(0), STEPS, x, init_params=init, progress=False)
        seconds = time.perf_counter() - start
        p = precision(res.params)
        err = np.linalg.norm(p - p_mle) / np.linalg.norm(p_mle)
        mean_err = np.max(np.abs(np.asarray(res.params["mu"]) - mu_hat) / sd)
        print(f"\n{label}: precision error {100 * err:.1f}%, mean {mean_err:.2f} sd off, "
              f"{seconds:.1f} s")
        if "model_acceptance" in res.history:
            acc = float(np.mean(res.history["model_acceptance"][-50:]))
            print(f"  the model's chains: MALA acceptance {acc:.2f} (target 0.574)")
        for problem in res.problems or ["no problem reported"]:
            print("  " + problem)


if __name__ == "__main__":
    main()
