"""How long ``emc.Energy(fn, init=...)`` takes in a fresh process (its init check).

A/B probe, not a peer benchmark (``run_all.py`` skips probes). The persistent
compilation cache is off. Run each side in its own process, alternating; the
"before" side imports another checkout through ``PYTHONPATH``::

    git worktree add /tmp/before bf62d51
    for i in 1 2 3; do
      PYTHONPATH=/tmp/before python benchmarks/probe_energy_init.py before
      PYTHONPATH=$PWD python benchmarks/probe_energy_init.py after
    done

Prints seconds per construction for a 3-d quadratic, a 100-d Gaussian with a
dense matrix and a small tanh network on 2-d inputs, in that order, in one
process (later cases reuse what earlier ones compiled).
"""
import os
import sys
import time

os.environ["ENERGYMC_COMPILATION_CACHE"] = "0"

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import energymc as emc  # noqa: E402

out = []
A = jnp.asarray(np.random.default_rng(0).normal(size=(100, 100)) / 10)
W1 = jnp.asarray(np.random.default_rng(1).normal(size=(2, 64)))
W2 = jnp.asarray(np.random.default_rng(2).normal(size=(64, 1)))
cases = {
    "quad3": (lambda x: 0.5 * jnp.sum((x - 1.0) ** 2 / jnp.array([1.0, 0.25, 4.0])), jnp.zeros(3)),
    "gauss100": (lambda x: 0.5 * jnp.sum((A @ x) ** 2) + 0.5 * jnp.sum(x ** 2), jnp.zeros(100)),
    "mlp2": (lambda x: jnp.sum(jnp.tanh(jnp.tanh(x @ W1) @ W2)) + 0.5 * jnp.sum(x ** 2),
             jnp.zeros(2)),
}
for name, (fn, init) in cases.items():
    start = time.perf_counter()
    emc.Energy(fn, init=init)
    out.append(f"{name} {time.perf_counter() - start:.3f}")
print(sys.argv[1] if len(sys.argv) > 1 else "", " ".join(out))
