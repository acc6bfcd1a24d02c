"""A probe: what a cold default ``log_partition`` compiles, in a fresh process.

Counts XLA compilations (``jax_log_compiles``) and times the first and a
second call of ``log_partition`` on a 3-d Gaussian, the persistent
compilation cache off. Run it from two checkouts (``PYTHONPATH=...``),
alternating, to compare commits: wall times on 2 shared cores vary by a
second or more between fresh processes; the count does not.

Usage::

    python benchmarks/probe_cold_logz.py            # one fresh-process measurement
"""

import logging
import os
import time
import warnings

os.environ["ENERGYMC_COMPILATION_CACHE"] = "0"
os.environ.setdefault("CI", "true")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402


class _Count(logging.Handler):
    def __init__(self):
        super().__init__()
        self.n = 0

    def emit(self, record):
        if record.getMessage().startswith("Finished XLA compilation"):
            self.n += 1


def main():
    jax.config.update("jax_log_compiles", True)
    counter = _Count()
    for name in ("jax._src.interpreters.pxla", "jax._src.dispatch"):
        logger = logging.getLogger(name)
        logger.addHandler(counter)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
    import energymc as emc

    target = emc.Energy(lambda x: 0.5 * jnp.sum((x - 1.0) ** 2 / jnp.array([1.0, 0.25, 4.0])),
                        init=jnp.zeros(3))
    warnings.simplefilter("ignore")
    before = counter.n
    t0 = time.perf_counter()
    first = emc.log_partition(target, seed=0)
    t1 = time.perf_counter()
    emc.log_partition(target, seed=1)
    t2 = time.perf_counter()
    print(f"compilations in the first call: {counter.n - before}; first call {t1 - t0:.2f} s, "
          f"second {t2 - t1:.2f} s; log Z {first.log_z:.6f}")


if __name__ == "__main__":
    main()
