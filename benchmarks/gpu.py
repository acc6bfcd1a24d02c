"""Chain- and particle-scaling study: throughput against chains, devices and AIS particles.

For a GPU (or several): how many draws per second ``emc.sample`` gives as the
number of chains grows from 1 to 4,096, how that splits over 1, 2, 4, ...
devices, how AIS's cost grows with the number of particles, and how
``log_partition(method="pt")``'s rounds per second grow with its chains (and
split over the devices). It records the device's name with the figures. A
full run is sized to finish in under five minutes on one modern GPU (and
stops adding points once 4.5 minutes have passed); ``--quick`` (or
``ENERGYMC_QUICK=1``) is a smoke run for a CPU.

Every point is timed on its second call (same shapes, another seed), so
compilation is excluded; the first call's time is printed beside it (it
compiles, or reads the program from energymc's persistent compilation cache
when an earlier run filled it; ``ENERGYMC_COMPILATION_CACHE=0`` for a cold one).
Sampling uses MALA with a fixed step size (``adapt=False``), whose cost per
draw does not depend on the chain's path, and NUTS with its default warmup
(what users run; its cost per draw varies with tree depth).

Usage::

    python benchmarks/gpu.py                 # full study (GPU), markdown tables on stdout
    python benchmarks/gpu.py --quick         # CPU smoke run
    python benchmarks/gpu.py --out gpu.md    # also write the tables to a file
    XLA_FLAGS=--xla_force_host_platform_device_count=4 python benchmarks/gpu.py --quick
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import time


def _gauss(dim):
    import jax.numpy as jnp

    import energymc as emc

    scales = jnp.exp(jnp.linspace(jnp.log(0.1), 0.0, dim))  # condition number 100
    log_z = float(jnp.sum(jnp.log(scales)) + 0.5 * dim * jnp.log(2 * jnp.pi))
    return emc.Energy(lambda x: 0.5 * jnp.sum((x / scales) ** 2), init=jnp.zeros(dim)), log_z


def _timed(fn):
    """``(seconds of the first call, seconds of the second, second result)``; new seed each."""
    t0 = time.perf_counter()
    fn(0)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = fn(1)
    return first, time.perf_counter() - t0, result


def chain_scaling(target, method, chain_counts, draws, warmup, budget_s, devices=None,
                  deadline=None):
    """Rows ``(chains, first_s, run_s, draws_per_s)``; stops once a call takes over ``budget_s``
    or the clock (``time.perf_counter()``) passes ``deadline``."""
    import energymc as emc

    opts = dict(adapt=False, step_size=0.05) if method == "mala" else {}
    rows = []
    for chains in chain_counts:
        def call(seed, chains=chains):
            run = emc.sample(target, method, chains=chains, draws=draws, warmup=warmup, seed=seed,
                             progress=False, devices=devices, **opts)
            run.flat_draws  # noqa: B018 - brings the draws to the host, inside the timing

        first, second, _ = _timed(call)
        rows.append((chains, first, second, chains * draws / second))
        if second > budget_s or (deadline is not None and time.perf_counter() > deadline):
            break
    return rows


def particle_scaling(target, particle_counts, num_temps, budget_s, deadline=None):
    """Rows ``(particles, first_s, run_s, particle_stages_per_s, log_z)`` for AIS.

    A short linear schedule measures the cost of a stage, not a good
    estimate: AIS's own warning about a low weight ESS is silenced here.
    """
    import warnings

    import energymc as emc
    from energymc.errors import EnergymcWarning

    warnings.simplefilter("ignore", EnergymcWarning)
    rows = []
    for n in particle_counts:
        def call(seed, n=n):
            return emc.log_partition(target, "ais", base="gaussian", seed=seed, particles=n,
                                     num_temps=num_temps, schedule="linear", replicates=1,
                                     checks=False, progress=False)

        first, second, est = _timed(call)
        rows.append((n, first, second, n * num_temps / second, est.log_z))
        if second > budget_s or (deadline is not None and time.perf_counter() > deadline):
            break
    return rows


def pt_scaling(target, chain_counts, replicas, draws, warmup, budget_s, devices=None,
               deadline=None):
    """Rows ``(chains, first_s, run_s, replica_rounds_per_s)`` for ``log_partition(method="pt")``.

    A replica-round is one local move of one replica (plus its share of the
    swaps), warmup rounds included. Each chain count compiles anew (the chain
    count is static); stops once a call takes over ``budget_s`` or the clock
    passes ``deadline``. Timing only: the tiny ladder's warnings are silenced.
    """
    import warnings

    import energymc as emc
    from energymc.errors import EnergymcWarning

    warnings.simplefilter("ignore", EnergymcWarning)
    rows = []
    for chains in chain_counts:
        def call(seed, chains=chains):
            return emc.log_partition(target, "pt", seed=seed, chains=chains, replicas=replicas,
                                     draws=draws, warmup=warmup, batches=2, checks=False,
                                     progress=False, devices=devices)

        first, second, _ = _timed(call)
        rows.append((chains, first, second, chains * replicas * (draws + warmup) / second))
        if second > budget_s or (deadline is not None and time.perf_counter() > deadline):
            break
    return rows


def _table(header, rows, fmt):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(f.format(v) for f, v in zip(fmt, row, strict=True)) + " |"
              for row in rows]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CPU smoke run)")
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--out", help="also write the markdown tables to this file")
    args = parser.parse_args(argv)
    quick = args.quick or os.environ.get("ENERGYMC_QUICK") == "1"

    import jax

    devices = jax.devices()
    name = f"{devices[0].device_kind} ({devices[0].platform}) x {len(devices)}"
    if quick:
        chain_counts, particle_counts = [1, 4, 16, 64], [64, 256]
        draws, warmup, temps, budget = 50, 50, 20, 5.0
        pt_chains, pt = [4], dict(replicas=4, draws=20, warmup=10)
    else:
        chain_counts = [1, 4, 16, 64, 256, 1024, 4096]
        particle_counts = [256, 1024, 4096, 16384, 65536]
        draws, warmup, temps, budget = 500, 500, 200, 30.0
        pt_chains, pt = [4, 32, 256], dict(replicas=16, draws=200, warmup=100)
    target, true_log_z = _gauss(args.dim)
    started = time.perf_counter()
    # Each section stops adding points past its share of the five minutes
    # (a point already started finishes; sections run in order).
    deadline = {"sample": started + 150.0, "ais": started + 210.0, "pt": started + 270.0}
    out = [f"### `python benchmarks/gpu.py{' --quick' if quick else ''}` "
           f"({_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC)", "",
           f"Device: **{name}**; JAX {jax.__version__}; target: {args.dim}-d Gaussian "
           "(scales 0.1..1); times are second calls (no compilation).", ""]
    fmt = ["{}", "{:.2f}", "{:.3f}", "{:,.0f}"]

    for method in ("mala", "nuts"):
        rows = chain_scaling(target, method, chain_counts, draws, warmup, budget,
                             deadline=deadline["sample"])
        extra = " (fixed step 0.05)" if method == "mala" else f" ({warmup} warmup)"
        out += [f"**{method}{extra}, {draws} draws per chain, all {len(devices)} device(s)**", "",
                _table(["chains", "first call s", "run s", "draws/s"], rows, fmt), ""]
        print("\n".join(out[-4:]), flush=True)

    if len(devices) > 1:
        top = chain_counts[-1] if not quick else 64
        rows = []
        k = 1
        while k <= len(devices) and time.perf_counter() < deadline["ais"]:
            (c, first, second, rate), = chain_scaling(target, "mala", [top], draws, warmup,
                                                      budget, devices=k)
            rows.append((k, first, second, rate))
            k *= 2
        out += [f"**mala, {top} chains, over 1..{len(devices)} devices**", "",
                _table(["devices", "first call s", "run s", "draws/s"], rows, fmt), ""]
        print("\n".join(out[-4:]), flush=True)

    rows = particle_scaling(target, particle_counts, temps, budget, deadline=deadline["ais"])
    out += [f"**AIS, {temps} linear stages (default moves), all {len(devices)} device(s); "
            f"exact log Z {true_log_z:.3f} (too few stages for accuracy: this times them)**", "",
            _table(["particles", "first call s", "run s", "particle-stages/s", "log Z"], rows,
                   ["{}", "{:.2f}", "{:.3f}", "{:,.0f}", "{:.3f}"]),
            "", f"Whole study: {time.perf_counter() - started:.0f} s.", ""]
    print("\n".join(out[-6:]), flush=True)

    # PT's chains are independent: split over the devices like sample()'s.
    # Last, and cut by the clock: the study stays under five minutes.
    pt_from = len(out)
    rows = pt_scaling(target, pt_chains, budget_s=budget, deadline=deadline["pt"], **pt)
    out += [f"**log_partition PT, {pt['replicas']} replicas, {pt['draws']} rounds + "
            f"{pt['warmup']} warmup per chain, all {len(devices)} device(s)**", "",
            _table(["chains", "first call s", "run s", "replica-rounds/s"], rows, fmt), ""]
    if len(devices) > 1 and time.perf_counter() < deadline["pt"]:
        top, k, split = rows[-1][0], 1, []
        while k <= len(devices) and time.perf_counter() < deadline["pt"]:
            split += [(k, *pt_scaling(target, [top], budget_s=budget, devices=k, **pt)[0][1:])]
            k *= 2
        out += [f"**log_partition PT, {top} chains, over 1..{len(devices)} devices**", "",
                _table(["devices", "first call s", "run s", "replica-rounds/s"], split, fmt),
                ""]
    out += [f"Whole study with PT: {time.perf_counter() - started:.0f} s.", ""]
    print("\n".join(out[pt_from:]), flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write("\n".join(out))


if __name__ == "__main__":
    main()
