"""Default ``log_partition`` on an unequal two-mode mixture: the parallel-tempering fallback.

The target is a 2-d mixture of a broad Gaussian (sd 1) and a narrow one (sd
0.25), equal weights, 8.5 apart; its log Z is exact. With seed 1 the default
call's AIS run (``base="auto"``) misses the narrow mode, its mode check says
so (importance sampling from Gaussians at the minima it found reads higher),
and the call falls back to ``method="pt"``: the record returned is PT's,
checked as any other, and ``est.info["fallback"]`` holds the first run.
``info["precision"]`` (and ``fb["first"]["precision"]``) say how many
replicates the default effort ran: AIS, and the PT fallback, add replicates
while the stderr is above 0.05 nats, up to four times their default count.

Run: ``python examples/logz_fallback.py`` (``ENERGYMC_QUICK=1``: the same run;
it is small already). Writes ``examples/output/logz_fallback.txt``.
"""

import os
import time
import warnings

import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

import energymc as emc

OUT = os.path.join(os.path.dirname(__file__), "output")
WEIGHTS, SDS = np.array([0.5, 0.5]), np.array([1.0, 0.25])
MEANS = np.array([[-4.0, 0.0], [4.0, 3.0]])
LOG_Z = 1.5  # the amplitudes below put mass WEIGHTS[k] * e^1.5 in mode k


def main():
    log_a = jnp.asarray(np.log(WEIGHTS) - (np.log(2 * np.pi) + 2 * np.log(SDS)) + LOG_Z)
    mu, sd = jnp.asarray(MEANS), jnp.asarray(SDS)
    target = emc.Energy(
        lambda x: -logsumexp(log_a - 0.5 * jnp.sum((x - mu) ** 2, axis=1) / sd**2),
        init=jnp.zeros(2), name="mixture2_narrow")
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emc.EnergymcWarning)  # problems are printed below
        est = emc.log_partition(target, seed=1)
    lines = [f"true log Z = {LOG_Z:.4f}",
             f"log_partition(target, seed=1): method={est.method!r}, log Z = {est.log_z:.4f} "
             f"± {est.stderr:.4f} (error {est.log_z - LOG_Z:+.4f}), reliable={est.reliable}, "
             f"{est.num_grad_evals:,} grad evals, {time.perf_counter() - t0:.1f}s"]
    fb = est.info.get("fallback")
    if fb is None:
        lines.append("no fallback: no check sent the first run to parallel tempering")
    else:
        first = fb["first"]
        lines += [f"fallback: {fb['reason']}",
                  f"  first run ({first['method']}): log Z = {first['log_z']:.4f} ± "
                  f"{first['stderr']:.4f} (error {first['log_z'] - LOG_Z:+.4f}), "
                  f"{first['num_grad_evals']:,} grad evals, {first['seconds']:.1f}s",
                  f"  PT run: {fb['pt']['num_grad_evals']:,} grad evals, "
                  f"{fb['pt']['seconds']:.1f}s; disagreements: {fb['disagree'] or 'none'}"]
    # The default effort: AIS (and the PT fallback) add replicates while the
    # stderr is above 0.05 nats, up to four times their default count.
    runs = [(est.method, est.info.get("precision"))]
    if fb is not None:
        runs.insert(0, (fb["first"]["method"], fb["first"]["precision"]))
    for method, prec in runs:
        if prec is not None:
            lines.append(f"{method} replicates: {prec['replicates']} (default {prec['default']}, "
                         f"at most {prec['cap']}); stderr {prec['stderr']:.4f}, target "
                         f"{prec['target_stderr']} "
                         f"{'reached' if prec['reached'] else 'not reached'}")
    lines += [f"problem: {p}" for p in est.problems]
    print("\n".join(lines))
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "logz_fallback.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
