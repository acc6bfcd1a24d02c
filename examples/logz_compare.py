"""log Z of a user energy by three methods, compared, BDMC's 95% confidence bounds
around it, and the schedule plot.

The energy is a product of tilted double wells, so the truth is known by 1-D
quadrature: log Z = dim * log ∫ exp(-(t^4 - 2 t^2 + 0.3 t)) dt.

Run: ``python examples/logz_compare.py`` (``ENERGYMC_QUICK=1`` for a tiny run).
Writes ``examples/output/logz_schedule.png``.
"""

import math
import os
import time
import warnings

import jax.numpy as jnp
import numpy as np
from scipy import integrate

import energymc as emc

QUICK = os.environ.get("ENERGYMC_QUICK") == "1"
DIM = 2 if QUICK else 6
OUT = os.path.join(os.path.dirname(__file__), "output")


def energy(x):
    """Independent tilted double wells: two modes per coordinate, 2^dim in all."""
    return jnp.sum(x**4 - 2.0 * x**2 + 0.3 * x)


def main():
    one = integrate.quad(lambda t: math.exp(-(t**4 - 2 * t**2 + 0.3 * t)), -np.inf, np.inf)[0]
    truth = DIM * math.log(one)
    target = emc.Energy(energy, init=jnp.zeros(DIM), name="double_wells")
    size = {"ais": dict(particles=128 if QUICK else 512),
            "smc": dict(particles=128 if QUICK else 512),
            "pt": dict(replicas=6 if QUICK else 12, draws=300 if QUICK else 1500,
                       warmup=200 if QUICK else 500, chains=2 if QUICK else 4)}
    print(f"target: {DIM} tilted double wells, true log Z = {truth:.4f}")
    results = {}
    for method, opts in size.items():
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", emc.EnergymcWarning)
            est = emc.log_partition(target, method=method, seed=0, scale=1.5, **opts)
        results[method] = est
        flag = "" if est.reliable else "  (flagged: " + "; ".join(est.problems) + ")"
        print(f"{method:>4}: log Z = {est.log_z:8.4f} ± {est.stderr:.4f}   error "
              f"{est.log_z - truth:+.4f}   ESS {est.ess:7.1f}   "
              f"{est.num_grad_evals:>9,} grad evals   {time.perf_counter() - t0:5.1f}s{flag}")
        del caught
    # BDMC: forward and reverse AIS; lower/upper are confidence bounds (level=0.95),
    # the raw forward and reverse estimates are in info.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emc.EnergymcWarning)
        bd = emc.log_partition(target, method="bdmc", seed=0, scale=1.5, **size["ais"])
    lo, hi = bd.interval()
    inside = "inside" if lo <= truth <= hi else "OUTSIDE"
    print(f"bdmc: {bd.info['bound_level']:.0%} confidence bounds [{lo:.4f}, {hi:.4f}], truth "
          f"{inside}; raw ends {bd.info['lower_raw']:.4f}, {bd.info['upper_raw']:.4f}"
          + ("" if bd.reliable else "  (flagged: " + "; ".join(bd.problems) + ")"))
    print(results["ais"])

    os.makedirs(OUT, exist_ok=True)
    axes = emc.plots.plot_logz(results["ais"])
    fig = axes[0].figure
    fig.tight_layout()
    path = os.path.join(OUT, "logz_schedule.png")
    fig.savefig(path, dpi=100)
    print(f"schedule plot: {path}")


if __name__ == "__main__":
    main()
