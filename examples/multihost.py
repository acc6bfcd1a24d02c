"""Chains over every device of several hosts, through JAX's own distributed runtime.

Run on one machine: ``python examples/multihost.py`` (``--quick`` for tiny
sizes); it uses every device that machine's JAX sees.

Run on N hosts: start the same command on every host, telling each where the
coordinator (process 0) listens, how many processes there are and which one
it is::

    # host 0                                   # host 1
    python examples/multihost.py \\             python examples/multihost.py \\
        --coordinator 10.0.0.1:1234 \\              --coordinator 10.0.0.1:1234 \\
        --num-processes 2 --process-id 0            --num-processes 2 --process-id 1

Under SLURM (``srun``) or Open MPI (``mpirun``), which JAX detects by
itself, ``--auto`` is enough. ``jax.distributed.initialize`` then connects
the processes; ``jax.devices()`` lists the devices of every host, and
``emc.sample`` splits the chains over all of them. Every process calls
``sample`` with the same arguments (the usual rule for multi-host JAX) and
gets every draw back; process 0 reports. Without these options the script
is a plain one-process run.
"""

import argparse
import json
import os


def parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes")
    parser.add_argument("--coordinator", help="host:port of process 0")
    parser.add_argument("--num-processes", type=int)
    parser.add_argument("--process-id", type=int)
    parser.add_argument("--auto", action="store_true",
                        help="let JAX read SLURM / Open MPI / cloud TPU settings")
    return parser.parse_args()


def main():
    args = parse()
    import jax

    # Before any computation: the distributed runtime must be up before JAX
    # picks its devices. On CPUs, processes exchange the draws through Gloo
    # (GPUs use NCCL whatever this says).
    if args.coordinator or args.auto:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if args.coordinator:
        jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    elif args.auto:
        jax.distributed.initialize()

    import jax.numpy as jnp
    import numpy as np

    import energymc as emc

    quick = args.quick or os.environ.get("ENERGYMC_QUICK") == "1"
    scales = jnp.linspace(0.5, 3.0, 8)
    target = emc.Energy(lambda x: 0.5 * jnp.sum((x / scales) ** 2), init=jnp.zeros(8))
    chains = 4 * jax.device_count()  # any number works; a multiple keeps every device busy
    run = emc.sample(target, "nuts", chains=chains, draws=50 if quick else 1000,
                     warmup=50 if quick else 1000, seed=0, progress=False)
    sd = np.asarray(run.flat_draws).reshape(-1, 8).std(axis=0)
    if jax.process_index() == 0:
        report = {"processes": jax.process_count(), "devices": jax.device_count(),
                  "device_kind": jax.devices()[0].device_kind, "chains": chains,
                  "sd": np.round(sd, 3).tolist(), "true_sd": np.asarray(scales).tolist()}
        print(json.dumps(report, indent=1))
        from _toy import out_path

        with open(out_path("multihost.json"), "w") as fh:
            json.dump(report, fh)


if __name__ == "__main__":
    main()
