"""BDMC, nested sampling and PT under ``base="auto"``: a one-mode fit that missed a mode.

The target is a 4-d mixture of a broad Gaussian (sd 1, weight 0.75) and a
narrow one (sd 0.4, weight 0.25), 8 apart; its log Z is exact. ``"auto"``
fits Gaussians at the minima its descents find and uses the fit where they
found one mode. Here one descent (``mode_starts=1``, from ``init`` in the
broad mode's basin) stands in for the unlucky seeds of the zoo's mixtures,
where the default 32 found only the broad mode: the run from that fit is
about log(1/0.75) = 0.29 nats low with a tiny stderr. The mode check, whose
descents start from the default Gaussian, flags it low, and the call runs the
same method again from the default Gaussian; ``est.info["widened"]`` holds
the first run.

Run: ``python examples/logz_widened.py`` (``ENERGYMC_QUICK=1``: PT only).
Writes ``examples/output/logz_widened.txt``.
"""

import os
import time
import warnings

import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

import energymc as emc

OUT = os.path.join(os.path.dirname(__file__), "output")
WEIGHTS, SDS = np.array([0.75, 0.25]), np.array([1.0, 0.4])
MEANS = np.array([[-4.0, 0.0, 0.0, 0.0], [4.0, 0.0, 0.0, 0.0]])
LOG_Z = 1.5  # the amplitudes below put mass WEIGHTS[k] * e^1.5 in mode k


def main():
    dim = MEANS.shape[1]
    log_a = jnp.asarray(np.log(WEIGHTS) - 0.5 * dim * np.log(2 * np.pi * SDS**2) + LOG_Z)
    mu, sd = jnp.asarray(MEANS), jnp.asarray(SDS)
    target = emc.Energy(
        lambda x: -logsumexp(log_a - 0.5 * jnp.sum((x - mu) ** 2, axis=1) / sd**2),
        init=jnp.zeros(dim), name="mixture4_unequal")
    methods = ("pt",) if os.environ.get("ENERGYMC_QUICK") else ("bdmc", "nested", "pt")
    lines = [f"true log Z = {LOG_Z:.4f}"]
    for method in methods:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", emc.EnergymcWarning)  # problems are printed below
            est = emc.log_partition(target, method=method, mode_starts=1, seed=2)
        fit = est.info["mode_fit"]
        lines.append(f"{method}: fit used={fit['used']} ({fit['modes']} mode(s)); "
                     f"log Z = {est.log_z:.4f} ± {est.stderr:.4f} "
                     f"(error {est.log_z - LOG_Z:+.4f}), reliable={est.reliable}, "
                     f"{est.num_grad_evals:,} grad evals, {time.perf_counter() - t0:.1f}s")
        if est.lower is not None:
            lines.append(f"  bracket [{est.lower:.4f}, {est.upper:.4f}]")
        widened = est.info.get("widened")
        if widened is None:
            lines.append("  not run again: the mode check did not flag the first run low")
        else:
            first = widened["first"]
            lines += [f"  ran again from {widened['base']}: {widened['reason']}",
                      f"  first run: log Z = {first['log_z']:.4f} ± {first['stderr']:.4f} "
                      f"(error {first['log_z'] - LOG_Z:+.4f}), reliable={first['reliable']}"]
        lines += [f"  problem: {p}" for p in est.problems]
    print("\n".join(lines))
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "logz_widened.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
