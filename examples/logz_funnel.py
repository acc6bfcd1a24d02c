"""log Z of a funnel with default options: the annealing run unverified, nested sampling instead.

Neal's funnel, ``v ~ N(0, 3^2)``, ``x_i | v ~ N(0, e^v)`` for ``i = 1..D-1``,
changes its scale by orders of magnitude along ``v``. The annealing's moves
use one step size, so its particles stop at the top of the neck and every
replicate misses the same mass: the replicates agree and the stderr is small.
``log_partition`` sees the descents of its mode check go far deeper than any
particle and calls the AIS run "unverified" (docs/partition-functions.md,
"Unverified"); up to 50 dimensions it then runs nested sampling, whose slice
chains go further down the neck, and returns that estimate, still flagged:
nothing vouches for nested sampling's stderr on a funnel either. The first
run stays in ``info["fallback"]["first"]``. Measured (2026-12-08, seeds
0-3): the AIS runs -0.30, +0.08, -0.23, -0.43 nats off with stderrs
0.04-0.13; the call's nested estimates -0.33, -0.14, -0.12, -0.23 with
stderrs near 0.08, every record flagged; ``method="nested"`` called directly
(another key) +0.30, -0.09, -0.08, -0.02, unflagged by its own check (its
points go down the neck, so the check's descents find nothing much deeper).
On the zoo's 20-d funnel the fallback took the median error from 0.64 to 0.10
nats.

Run: ``python examples/logz_funnel.py`` (``ENERGYMC_QUICK=1``: one seed).
Writes ``examples/output/logz_funnel.txt``.
"""

import math
import os
import warnings

import jax.numpy as jnp

import energymc as emc

QUICK = os.environ.get("ENERGYMC_QUICK") == "1"
DIM = 6  # v and 5 coordinates whose scale follows it (not one of the zoo's funnels)
SEEDS = (0,) if QUICK else (0, 1, 2, 3)
OUT = os.path.join(os.path.dirname(__file__), "output")


def energy(z):
    v, x = z[0], z[1:]
    return v**2 / 18.0 + 0.5 * jnp.sum(x**2) * jnp.exp(-v) + 0.5 * (DIM - 1) * v


def main():
    target = emc.Energy(energy, init=jnp.zeros(DIM), name="funnel6")
    truth = 0.5 * math.log(2 * math.pi * 9.0) + 0.5 * (DIM - 1) * math.log(2 * math.pi)
    lines = [f"{DIM}-d funnel, exact log Z = {truth:.4f}",
             "call              seed  method  log Z     error    stderr  reliable"]
    for seed in SEEDS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", emc.EnergymcWarning)  # flags are printed below
            default = emc.log_partition(target, seed=seed)
            nested = emc.log_partition(target, method="nested", seed=seed)
        first = default.info.get("fallback", {}).get("first")
        if first is not None:
            lines.append(_row("default, 1st run", seed, first["method"], first["log_z"],
                              first["stderr"], first["reliable"], truth))
        lines.append(_row("default", seed, default.method, default.log_z, default.stderr,
                          default.reliable, truth))
        lines.append(f"    printed: {default.estimate_text}")
        lines.append(_row('method="nested"', seed, nested.method, nested.log_z, nested.stderr,
                          nested.reliable, truth))
    if first is not None:
        lines.append(f"why the default ran nested sampling: {default.info['fallback']['reason']}")
    print("\n".join(lines))
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "logz_funnel.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def _row(call, seed, method, log_z, stderr, reliable, truth):
    return (f"{call:16s}  {seed:4d}  {method:6s}  {log_z:.4f}  {log_z - truth:+.4f}  "
            f"{stderr:.4f}  {reliable}")


if __name__ == "__main__":
    main()
