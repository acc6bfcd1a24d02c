"""A user's energy, sampled, diagnosed and plotted: the getting-started example.

The energy is a ring with a preferred side, written over a dict of arrays to
show that ``x`` can be any pytree. Three methods are compared on it; the
diagnosis says which chains can be trusted; trace and rank plots go to PNG.

Run: ``python examples/sample_user_energy.py`` (``ENERGYMC_QUICK=1`` for a
tiny run). Writes ``examples/output/user_energy_*.png``.
"""

import os

import jax.numpy as jnp
import matplotlib.pyplot as plt  # noqa: E402

import energymc as emc  # noqa: E402

QUICK = os.environ.get("ENERGYMC_QUICK") == "1"
DRAWS = 200 if QUICK else 2000
OUT = os.path.join(os.path.dirname(__file__), "output")


def ring_energy(p):
    """A ring of radius 2 in ``p["xy"]``, denser towards +x, beside a Laplace ``p["t"]``."""
    r = jnp.sqrt(jnp.sum(p["xy"] ** 2) + 1e-12)
    # The tilt uses the direction only, so the density stays normalisable.
    ring = 0.5 * ((r - 2.0) / 0.3) ** 2 - 1.0 * p["xy"][0] / r
    return ring + jnp.abs(p["t"])


def main():
    os.makedirs(OUT, exist_ok=True)
    target = emc.Energy(ring_energy, init={"xy": jnp.array([2.0, 0.0]), "t": jnp.array(0.0)})
    print(target)
    runs = {}
    for method in ("nuts", "mala", "rwm"):
        run = emc.sample(target, method, chains=4, draws=DRAWS, warmup=DRAWS, seed=0)
        runs[method] = run
        diagnosis = emc.diagnose(run)
        print(f"\n--- {method}: {run.num_draws} draws x {run.chains} chains, "
              f"{run.timing['total_s']:.1f}s")
        print(diagnosis)

    best = runs["nuts"]
    print("\n", best.summary())
    # plot_figure gives the matplotlib figure of ArviZ 0.x axes or a 1.x PlotCollection.
    fig = emc.diagnostics.plot_figure(emc.plot_trace(best))
    fig.savefig(os.path.join(OUT, "user_energy_trace.png"), dpi=80)
    fig = emc.diagnostics.plot_figure(emc.plot_rank(best))
    fig.savefig(os.path.join(OUT, "user_energy_rank.png"), dpi=80)

    fig, ax = plt.subplots(1, 3, figsize=(12, 4), sharex=True, sharey=True)
    for a, (method, run) in zip(ax, runs.items(), strict=True):
        xy = run.draws["xy"].reshape(-1, 2)
        a.plot(xy[:, 0], xy[:, 1], ".", ms=1, alpha=0.4)
        ess = emc.diagnose(run).numbers["min_ess_bulk"]
        a.set_title(f"{method}: min bulk ESS {ess:.0f}")
        a.set_aspect("equal")
    fig.savefig(os.path.join(OUT, "user_energy_draws.png"), dpi=80)
    plt.close("all")
    print(f"wrote {OUT}/user_energy_{{trace,rank,draws}}.png")


if __name__ == "__main__":
    main()
