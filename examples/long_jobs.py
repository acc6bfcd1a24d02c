"""Long jobs: a streamed run read lazily, a log Z call resumed after an interruption,
and a learner spread over every device.

1. ``sample(..., store=DIR)`` keeps no draws in memory; ``summary``, ``diagnose``
   and ``to_arviz`` read them from the directory a piece at a time.
2. ``log_partition(..., checkpoint=DIR)`` saves every finished replicate. We
   stop the call after its first replicate (as a Ctrl-C would), call again
   with the same directory, and get exactly the estimate of an uninterrupted
   call. A replicate in flight is saved chunk by chunk too (AIS and SMC
   stages, SMC's pilot run, BDMC's reverse run, PT's rounds, a model's own
   annealing path), so one long replicate also resumes where it stopped.
3. ``learner.run(..., devices=None)`` splits batches and persistent chains over
   every device JAX sees (one device here, unless ``XLA_FLAGS`` forces more;
   see ``docs/devices.md``).

Run ``ENERGYMC_QUICK=1 python examples/long_jobs.py`` for a tiny version.
"""

import os
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.optim

import energymc as emc

QUICK = os.environ.get("ENERGYMC_QUICK") == "1"


def quartic(x):
    """A 4-d energy with lighter-than-Gaussian tails."""
    return 0.5 * jnp.sum(x**2) + 0.1 * jnp.sum(x**4)


class StopAfterFirstReplicate(Exception):
    pass


class Quiet:
    """A progress object that shows nothing (the ``start/update/close`` protocol)."""

    def start(self, total, description):
        pass

    def update(self, n, postfix):
        pass

    def close(self):
        pass


class Interrupt(Quiet):
    """Raises once the first replicate has finished, as a Ctrl-C would."""

    def update(self, n, postfix):
        if "log_z" in postfix:  # a replicate just finished
            raise StopAfterFirstReplicate


def streamed_run(folder: Path, target):
    draws = 400 if QUICK else 20_000
    run = emc.sample(target, "mala", chains=4, draws=draws, warmup=200, seed=0,
                     store=folder / "draws")
    print(run)  # headline numbers are computed chunk by chunk
    print(run.diagnose())  # ArviZ's R-hat/ESS, fed a piece of the posterior at a time
    idata = run.to_arviz()  # lazy: nothing is read until values are asked for
    print("posterior mean of x[0]:", float(idata.posterior["x"][..., 0].mean()))


def resumed_log_z(folder: Path, target):
    options = dict(method="ais", seed=1, replicates=3,
                   particles=64 if QUICK else 1024, num_temps=16 if QUICK else 200)
    # Both calls report to a progress object, so they run the same compiled program.
    try:
        emc.log_partition(target, checkpoint=folder / "logz", progress=Interrupt(), **options)
    except StopAfterFirstReplicate:
        print("interrupted after the first replicate")
    resumed = emc.log_partition(target, checkpoint=folder / "logz", progress=Quiet(), **options)
    print(resumed)
    print("replicates read back from the checkpoint:", resumed.timing["resumed_replicates"])
    # AIS pads its particles to a multiple of the devices, so all of them are used.
    print("devices the particles were split over:", resumed.info["devices"])
    return resumed


def learner_on_devices():
    data = jax.random.normal(jax.random.key(2), (256, 2)) * jnp.array([1.0, 0.5]) + 1.0

    def energy(params, x):
        return 0.5 * jnp.sum(params["prec"] * (x - params["mean"]) ** 2)

    learner = emc.learn.CD(energy, numpyro.optim.Adam(0.05), k=5, persistent=True, chains=64)
    init = {"prec": jnp.ones(2), "mean": jnp.zeros(2)}
    result = learner.run(jax.random.key(0), 100 if QUICK else 2000, data, init,
                         batch_size=64, devices=None)
    print(f"devices: {len(jax.devices())}; learned mean {np.round(result.params['mean'], 2)}, "
          f"precision {np.round(result.params['prec'], 2)} (truth [1 4])")


def main():
    target = emc.Energy(quartic, init=jnp.zeros(4), name="quartic4")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        streamed_run(folder, target)
        resumed_log_z(folder, target)
    learner_on_devices()


if __name__ == "__main__":
    main()
