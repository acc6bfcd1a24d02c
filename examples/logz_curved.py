"""log Z of a curved target (a banana) with default options: the outskirts check at work.

On a banana the annealing's moves lag behind its arms, so the final particles
under-cover them and the mass out there rides on rare, large weights. A run
that drew none of them would be low with a small stderr. ``log_partition``
sees the weights rise with the particles' radius and bounds log Z from above
with an independent BDMC run, widening the stderr to reach that bound
(``est.info["checks"]["outskirts"]``; docs/partition-functions.md, "Checks").
Tempered SMC (``method="smc"``) takes the same check: its last stage's weights
rise outward on the same targets.

The banana ``a ~ N(0, 2^2)``, ``b | a ~ N(0.5 (a^2 - 4), 1)`` is a
volume-preserving twist of a Gaussian, so its exact log Z is known.

Run: ``python examples/logz_curved.py`` (``ENERGYMC_QUICK=1`` runs fewer seeds).
Writes ``examples/output/logz_curved.txt``.
"""

import math
import os
import warnings

import jax.numpy as jnp

import energymc as emc

QUICK = os.environ.get("ENERGYMC_QUICK") == "1"
SEEDS = (2,) if QUICK else (0, 1, 2, 3, 7)
SCALE, CURVATURE = 2.0, 0.5
OUT = os.path.join(os.path.dirname(__file__), "output")


def energy(x):
    a, b = x[0], x[1]
    return 0.5 * (a / SCALE) ** 2 + 0.5 * (b - CURVATURE * (a**2 - SCALE**2)) ** 2


def main():
    target = emc.Energy(energy, init=jnp.zeros(2), name="banana")
    truth = math.log(SCALE) + math.log(2 * math.pi)
    lines = [f"2-d banana, exact log Z = {truth:.4f}",
             "method  seed  log Z     error   stderr (own -> with bound)  trend  BDMC upper"
             "  in 3 se"]
    for method, seed in [(m, s) for m in ("ais", "smc") for s in SEEDS]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", emc.EnergymcWarning)  # flags are printed below
            est = emc.log_partition(target, method=method, seed=seed)
        out = est.info["checks"].get("outskirts", {})
        own = out.get("stderr_before", est.stderr)
        err = est.log_z - truth
        lines.append(f"{method:6s}  {seed:4d}  {est.log_z:.4f}  {err:+.4f}  {own:.4f} -> {est.stderr:.4f}"
                     f"{'':13s}{out.get('trend', float('nan')):+5.1f}  "
                     f"{out.get('upper', float('nan')):10.4f}  "
                     f"{'yes' if abs(err) <= 3 * est.stderr else 'NO'}"
                     f"{'' if est.reliable else '  (flagged)'}")
    print("\n".join(lines))
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "logz_curved.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
