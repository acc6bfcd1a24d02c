"""The 2-d Ising model across its phase transition: Gibbs sampling against exact curves.

For an L x L periodic lattice at inverse temperatures around Onsager's
critical point, ``emc.sample(model, "gibbs")`` gives the mean absolute
magnetisation and the heat capacity per site ``beta^2 Var(H) / N``. The exact
heat capacity of the same finite lattice comes from Kaufman's log Z
(differentiated twice in beta); the magnetisation is compared with Onsager and
Yang's infinite-lattice curve (a finite lattice rounds the transition off).
Writes ``examples/output/ising_transition.png``.

    python examples/ising_transition.py
    ENERGYMC_QUICK=1 python examples/ising_transition.py     # or --quick
"""

import time

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from _toy import quick_from_cli, save_figure  # noqa: E402

import energymc as emc  # noqa: E402
from energymc.models import Ising, critical_beta, onsager_magnetization  # noqa: E402


def main(quick):
    size = 8 if quick else 16
    betas = np.linspace(0.25, 0.65, 3 if quick else 11)
    draws, burn = (300, 100) if quick else (3000, 500)
    sampled = []
    t0 = time.perf_counter()
    for beta in betas:
        model = Ising((size, size), float(beta))
        # gibbs has nothing to tune: no warmup phase (one compilation less per
        # temperature, each beta being a new model); the first `burn` sweeps are dropped.
        run = emc.sample(model, "gibbs", chains=4, draws=burn + draws, warmup=0, seed=0,
                         progress=False)
        s = run.draws[:, burn:]
        n = model.num_sites
        m = np.abs(np.asarray(model.magnetization(s)))
        h = np.asarray(model.hamiltonian(s)).astype(np.float64)
        heat = beta**2 * h.var() / n
        # Error bars: heat capacity from the spread over the 4 chains; |m| from
        # its sd with a rough 50-sweep autocorrelation time (long near beta_c).
        heat_chain = beta**2 * h.var(axis=1) / n
        sampled.append((m.mean(), m.std() / np.sqrt(m.size / 50), heat,
                        heat_chain.std() / np.sqrt(len(heat_chain))))
        print(f"beta={beta:.3f}  <|m|>={m.mean():.3f}  C/N={heat:.3f}  "
              f"acceptance={run.mean_acceptance:.2f}")
    print(f"sampled {len(betas)} temperatures in {time.perf_counter() - t0:.1f} s")
    sampled = np.array(sampled)

    fine = np.linspace(0.2, 0.7, 101)
    exact_heat = [Ising((size, size), float(b)).exact_thermodynamics("kaufman")["heat_capacity"]
                  for b in fine]

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].plot(fine, onsager_magnetization(fine), "k-", label="Onsager (infinite lattice)")
    axes[0].errorbar(betas, sampled[:, 0], sampled[:, 1], fmt="o", label=f"gibbs, {size}x{size}")
    axes[0].set_ylabel("mean |magnetisation| per site")
    axes[1].plot(fine, exact_heat, "k-", label=f"exact (Kaufman), {size}x{size}")
    axes[1].errorbar(betas, sampled[:, 2], sampled[:, 3], fmt="o", label=f"gibbs, {size}x{size}")
    axes[1].set_ylabel("heat capacity per site")
    for ax in axes:
        ax.axvline(critical_beta(), color="grey", ls=":", label="critical beta")
        ax.set_xlabel("inverse temperature beta")
        ax.legend()
    fig.tight_layout()
    save_figure(fig, "ising_transition.png")


if __name__ == "__main__":
    main(quick_from_cli(__doc__))
