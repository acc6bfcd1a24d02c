"""Out-of-distribution detection on digits: deep EBM, JEM, RBM and diffusion, three scores each.

All four models learn the digits 0-7 (training split): the convolutional
deep EBM and the JEM hybrid of ``deep_ebm_digits.py`` / ``jem_digits.py``
(images in [0, 1]), a binary RBM (``RBM.fit`` on the images thresholded
at 0.5; it scores thresholded inputs) and a diffusion energy
(``emc.learn.Diffusion``, an MLP energy at every noise level, scored by its
energy at the smallest level). Each scores held-out digits 0-7
against four out-of-distribution sets -- uniform noise, pixel-shuffled
digits, inverted digits and the classes 8-9 left out of training -- by
energy, by ``|grad E|`` and by the smoothed-mass score (``emc.ood``), and the
script prints one Markdown table of AUROC (± standard error) and AUPR, the
table in ``benchmarks/RESULTS.md``.

    python examples/ood_digits.py                    # a few minutes on 2 busy CPU cores
    ENERGYMC_QUICK=1 python examples/ood_digits.py
"""

import argparse
import time

import deep_ebm_digits
import jem_digits
import matplotlib.pyplot as plt
import numpy as np
from _toy import QUICK, out_path, require_sklearn
from deep_ebm_digits import digits_split

require_sklearn()  # a clear install hint instead of an ImportError

import energymc as emc  # noqa: E402
from energymc.models import RBM  # noqa: E402

SEEN = 8  # classes 0..SEEN-1 are trained on; the rest are out of distribution


def ood_sets(seed=0):
    """Training digits 0-7, held-out 0-7 and the four OOD sets (a dict)."""
    x_train, y_train, x_test, y_test = digits_split(seed)
    seen_tr, seen_te = y_train < SEEN, y_test < SEEN
    x_in = x_test[seen_te]
    x_left_out = np.concatenate([x_train[~seen_tr], x_test[~seen_te]])
    outs = {"uniform noise": emc.ood.shift(x_in, "uniform", seed=1),
            "pixel-shuffled": emc.ood.shift(x_in, "shuffle", seed=2),
            "inverted": emc.ood.shift(x_in, "invert"),
            f"classes {SEEN}-9 left out": x_left_out}
    return x_train[seen_tr], y_train[seen_tr], x_in, y_test[seen_te], outs


def rbm_report(x_seen, x_in, outs, options):
    """A binary RBM on the thresholded digits, scored on thresholded inputs.

    The inputs are thresholded before scoring, not inside the energy: a
    threshold inside would make ``grad E`` zero everywhere.
    """
    rbm = RBM(64, 32)

    def binary(a):
        return (np.asarray(a) > 0.5).astype(np.float32)

    res = rbm.fit(binary(x_seen), seed=0, n_iter=5 if QUICK else 60, progress=False)
    return emc.ood.evaluate(lambda x: rbm.free_energy(res.params, x), binary(x_in),
                            {k: binary(v) for k, v in outs.items()}, **options)


def diffusion_report(x_seen, x_in, outs, options, steps, seed=0):
    """OOD scores of a diffusion energy (``emc.learn.Diffusion``, VE schedule) trained on
    ``x_seen``: its energy at the smallest noise level is the score's energy."""
    import jax
    import numpyro.optim

    sch = emc.diffusion.ve(0.01, 8.0)
    net = emc.diffusion.mlp_energy(64, jax.random.key(seed), schedule=sch, data=x_seen,
                                   width=256)
    learner = emc.learn.Diffusion(net, numpyro.optim.Adam(1e-3), sch, ema=0.995)
    res = learner.run(jax.random.key(seed + 1), steps, x_seen, batch_size=128, progress=False)
    lo = float(sch.sigma_start)
    return emc.ood.evaluate(lambda x: res.params(x, lo), x_in, outs, **options)


def print_table(reports):
    """One Markdown table: a row per (model, OOD set), the AUROC of each score."""
    methods = emc.ood.METHODS
    print("\n| model | OOD set | " + " | ".join(f"{m} AUROC" for m in methods)
          + " | best AUPR |")
    print("|---|---|" + "---:|" * (len(methods) + 1))
    for model, rep in reports.items():
        for name in dict.fromkeys(r["set"] for r in rep.rows):
            rows = [r for r in rep.rows if r["set"] == name]
            cells = [f"{r['auroc']:.3f} ± {r['auroc_se']:.3f}" for r in rows]
            best = max(rows, key=lambda r: r["auroc"])
            print(f"| {model} | {name} | " + " | ".join(cells)
                  + f" | {best['aupr']:.3f} ({best['method']}) |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20 if QUICK else 400)
    parser.add_argument("--diffusion-steps", type=int, default=50 if QUICK else 3000)
    args = parser.parse_args()

    x_seen, y_seen, x_in, y_in, outs = ood_sets()
    reports = {}
    options = dict(sigma=0.1, num_samples=16, seed=0)

    t0 = time.perf_counter()
    cd, res, energy = deep_ebm_digits.train(x_seen, args.steps)
    reports["deep EBM"] = emc.ood.evaluate(lambda x: energy(res.params, x), x_in, outs, **options)
    print(f"deep EBM: {time.perf_counter() - t0:.1f}s")

    t0 = time.perf_counter()
    jem, res_j, logits = jem_digits.train(x_seen, y_seen, args.steps,
                                          num_classes=SEEN)
    reports["JEM"] = emc.ood.evaluate(lambda x: logits(res_j.params, x), x_in, outs, **options)
    print(f"JEM: {time.perf_counter() - t0:.1f}s, accuracy on held-out 0-{SEEN - 1}: "
          f"{jem.accuracy(res_j.params, x_in, y_in):.3f}")

    t0 = time.perf_counter()
    reports["RBM"] = rbm_report(x_seen, x_in, outs, options)
    print(f"RBM: {time.perf_counter() - t0:.1f}s")

    t0 = time.perf_counter()
    reports["diffusion energy"] = diffusion_report(x_seen, x_in, outs, options,
                                                   args.diffusion_steps)
    print(f"diffusion energy: {time.perf_counter() - t0:.1f}s")
    print_table(reports)

    # Energy histograms of the deep EBM: in-distribution against each shift.
    fig, ax = plt.subplots(figsize=(6, 3.5))
    e_in = emc.ood.scores(lambda x: energy(res.params, x), x_in, ("energy",))["energy"]
    ax.hist(e_in, 40, alpha=0.6, density=True, label=f"held-out 0-{SEEN - 1}")
    for name, x_out in outs.items():
        e = emc.ood.scores(lambda x: energy(res.params, x), x_out, ("energy",))["energy"]
        ax.hist(np.clip(e, None, np.percentile(e, 99)), 40, alpha=0.5, density=True, label=name)
    ax.set_xlabel("deep EBM energy E(x)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = out_path("ood_digits.png")
    fig.savefig(path, dpi=90)
    print("wrote", path)
    return reports


if __name__ == "__main__":
    main()
