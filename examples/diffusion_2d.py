"""Diffusion as a multi-level energy on a 2-d ring of Gaussians, scored against the truth.

Trains ``emc.learn.Diffusion`` (a noise-conditional energy on a VE schedule)
on draws from a mixture of 8 Gaussians whose density is known at every noise
level, then measures what the issue asks:

* held-out log-likelihood through the probability-flow ODE (exact trace and
  Hutchinson, with its Monte Carlo error) against the truth's;
* MMD of samples from the reverse SDE, predictor--corrector (Langevin) and
  Metropolis-adjusted correctors (MALA, HMC; acceptance per level) against
  the MMD between two draws of the truth;
* a sigma-blind model (the same network ignoring sigma) as a negative control;
* composition: the ring model times a second model trained on a Gaussian blob
  (a product of experts, known exactly), sampled by annealed MALA with and
  without SMC reweighting.

    python examples/diffusion_2d.py            # figures also to docs/img/
    python examples/diffusion_2d.py --quick    # tiny sizes
"""

import os
import time

import jax
import matplotlib.pyplot as plt
import numpy as np
import numpyro.optim
import optax
from _toy import quick_from_cli, save_figure

import energymc as emc

D = emc.diffusion


def mmd2(x, y):
    """MMD^2 of ``x`` against the reference ``y`` with four kernel widths, so that both
    where the modes lie and how wide they are count (``emc.metrics.MULTISCALE``)."""
    return emc.metrics.mmd(x, y, scales=emc.metrics.MULTISCALE)


def ring(schedule, k=8, radius=2.0, sd=0.3):
    ang = np.arange(k) * 2 * np.pi / k
    return D.gaussian_mixture(np.ones(k), radius * np.stack([np.cos(ang), np.sin(ang)], 1), sd,
                              schedule)


def train(data, schedule, steps, seed, *, width=128, blind=False):
    net = D.mlp_energy(2, jax.random.key(seed), schedule=schedule, data=data, width=width,
                       sigma_blind=blind)
    lr = optax.warmup_cosine_decay_schedule(0.0, 2e-3, min(200, steps // 2), steps, 2e-5)
    learner = emc.learn.Diffusion(net, numpyro.optim.optax_to_numpyro(optax.adam(lr)), schedule,
                                  ema=0.995)
    t0 = time.perf_counter()
    res = learner.run(jax.random.key(seed + 1), steps, data, batch_size=256)
    return learner, res, time.perf_counter() - t0


def main(quick):
    steps, blind_steps, expert_steps = (60, 30, 20) if quick else (8000, 3000, 1000)
    n_test, n_samp, ode_steps, sde_steps = (50, 200, 10, 30) if quick else (500, 1000, 50, 200)
    sch = D.ve(0.01, 8.0)
    truth = ring(sch)
    data = np.asarray(truth.sample(jax.random.key(0), 10000))
    test = truth.sample(jax.random.key(1), n_test)
    true_ll = float(np.mean(jax.vmap(truth.logpdf)(test)))

    learner, res, secs = train(data, sch, steps, 2)
    print(f"trained {steps} updates in {secs:.1f} s ({1e3 * secs / steps:.2f} ms/update)")
    exact = learner.log_likelihood(jax.random.key(4), res.params, test, trace="exact",
                                   steps=ode_steps)
    hut = learner.log_likelihood(jax.random.key(5), res.params, test, probes=8, steps=ode_steps)
    print(f"held-out log-likelihood, nats/example: truth {true_ll:.4f}")
    print(f"  PF-ODE exact trace  {exact.nats:.4f} (data stderr {exact.stderr_data:.3f}); "
          f"gap {true_ll - exact.nats:+.4f}")
    print(f"  PF-ODE Hutchinson   {hut.nats:.4f} +/- {hut.stderr:.4f} (8 probes); "
          f"bits/dim {hut.bits_per_dim:.4f}")

    blind_learner, blind, _ = train(data, sch, blind_steps, 2, blind=True)
    worse = blind_learner.log_likelihood(jax.random.key(4), blind.params, test, trace="exact",
                                         steps=ode_steps)
    print(f"  sigma-blind control {worse.nats:.4f}; gap {true_ll - worse.nats:+.4f}")

    ref = np.asarray(truth.sample(jax.random.key(10), n_samp))
    yard = np.array([mmd2(ref, truth.sample(jax.random.key(11 + s), n_samp)) for s in range(5)])
    print(f"MMD^2 truth vs truth (5 seeds): {yard.mean():.5f} +/- {yard.std():.5f}")
    runs = {}
    for corrector in (None, "langevin", "mala", "hmc"):
        t0 = time.perf_counter()
        s = learner.sample(jax.random.key(6), res.params, (n_samp, 2), steps=sde_steps,
                           corrector=corrector)
        secs = time.perf_counter() - t0
        acc = "" if s.acceptance is None else f", acceptance mean {np.mean(s.acceptance):.2f}"
        print(f"  {s.method:14s} MMD^2 {mmd2(s.x, ref):.5f}{acc}, diverging "
              f"{int(s.diverging.sum())}, {secs:.1f} s")
        runs[s.method] = s

    # Composition: the ring model times a model of N(c, tau^2 I).
    c, tau = np.array([2.0, 0.0]), 1.0
    blob = D.gaussian_mixture([1.0], [c], tau, sch)
    blob_data = np.asarray(blob.sample(jax.random.key(20), 10000))
    _, blob_res, _ = train(blob_data, sch, expert_steps, 21)
    means = np.asarray(truth.means)
    s2 = 0.3**2
    w = np.exp(-np.sum((means - c) ** 2, 1) / (2 * (s2 + tau**2)))
    prod_truth = D.gaussian_mixture(w, (tau**2 * means + s2 * c) / (s2 + tau**2),
                                    np.sqrt(s2 * tau**2 / (s2 + tau**2)), sch)
    poe = D.product(res.params, blob_res.params)
    x0 = 3.0 * jax.random.normal(jax.random.key(22), (n_samp, 2))
    sig = np.geomspace(3.0, 0.01, 6 if quick else 16)
    prod_ref = np.asarray(prod_truth.sample(jax.random.key(23), n_samp))
    pyard = np.array([mmd2(prod_ref, prod_truth.sample(jax.random.key(24 + s), n_samp))
                      for s in range(5)])
    print(f"product of experts: MMD^2 truth vs truth {pyard.mean():.5f} +/- {pyard.std():.5f}")
    prods = {}
    for resample in (True, False):
        p = D.annealed_mcmc(jax.random.key(25), poe, x0, sig, steps_per_level=20,
                            resample=resample)
        print(f"  {p.method:20s} MMD^2 {mmd2(p.x, prod_ref):.5f}, acceptance mean "
              f"{np.mean(p.acceptance):.2f}")
        prods[resample] = p

    fig, ax = plt.subplots(1, 4, figsize=(15, 3.8))
    ax[0].scatter(*ref.T, s=2, alpha=0.5)
    ax[0].set_title("truth: ring of 8 Gaussians")
    ax[1].scatter(*runs["sde+mala"].x.T, s=2, alpha=0.5, color="C1")
    ax[1].set_title("learned energy: reverse SDE + MALA")
    for name in ("sde+langevin", "sde+mala", "sde+hmc"):
        r = runs[name]
        ax[2].semilogx(r.sigmas, r.acceptance, label=name)
    ax[2].set_xlabel("noise level sigma")
    ax[2].set_title("corrector acceptance per level")
    ax[2].legend(fontsize=8)
    ax[3].scatter(*prod_ref.T, s=2, alpha=0.4, label="exact product")
    ax[3].scatter(*prods[True].x.T, s=2, alpha=0.4, label="annealed MALA + SMC")
    ax[3].set_title("product of two trained energies")
    ax[3].legend(fontsize=8, markerscale=4)
    for a in (ax[0], ax[1], ax[3]):
        a.set_xlim(-3.2, 3.2)
        a.set_ylim(-3.2, 3.2)
        a.set_aspect("equal")
    fig.tight_layout()
    save_figure(fig, "diffusion_2d.png")
    if not quick:
        os.makedirs(os.path.join(os.path.dirname(__file__), "..", "docs", "img"),
                    exist_ok=True)
        fig.savefig(os.path.join(os.path.dirname(__file__), "..", "docs", "img",
                                 "diffusion_2d.png"), dpi=90)
    plt.show()


if __name__ == "__main__":
    main(quick_from_cli(__doc__))
