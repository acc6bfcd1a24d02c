"""Single-site update throughput on a 64x64 Ising lattice: energymc vs plain NumPy.

Counts single-site updates per second (a Gibbs site update, or one GWG flip
proposal), all chains together, after compilation (a first call compiles;
the timed second call with another seed reuses it). Compared with:

* NumPy, site loop: the textbook heat-bath sweep, a Python loop over sites
  computing each local field from its four neighbours;
* NumPy, checkerboard: the same sweep vectorised over the two sublattices.

energymc's ``gibbs`` uses :class:`energymc.models.Ising`'s exact local-field
path (checkerboard colouring); ``gibbs`` on the same energy without that path
(one energy difference per site, the generic route) and ``gwg`` (one gradient
per proposal) are shown too.

Run::

    python benchmarks/bench_gibbs.py          # full
    python benchmarks/bench_gibbs.py --quick  # smoke test (ENERGYMC_QUICK=1 too)
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np

L = 64
BETA = 0.44


def numpy_site_loop(spins, beta, sweeps, rng):
    n = spins.shape[0]
    for _ in range(sweeps):
        u = rng.random((n, n))
        for i in range(n):
            for j in range(n):
                field = (spins[(i + 1) % n, j] + spins[i - 1, j]
                         + spins[i, (j + 1) % n] + spins[i, j - 1])
                p_up = 1.0 / (1.0 + np.exp(-2.0 * beta * field))
                spins[i, j] = 1.0 if u[i, j] < p_up else -1.0
    return spins


def numpy_checkerboard(spins, beta, sweeps, rng):
    n = spins.shape[0]
    parity = np.add.outer(np.arange(n), np.arange(n)) % 2
    for _ in range(sweeps):
        for color in (0, 1):
            field = (np.roll(spins, 1, 0) + np.roll(spins, -1, 0)
                     + np.roll(spins, 1, 1) + np.roll(spins, -1, 1))
            p_up = 1.0 / (1.0 + np.exp(-2.0 * beta * field))
            new = np.where(rng.random((n, n)) < p_up, 1.0, -1.0)
            spins = np.where(parity == color, new, spins)
    return spins


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def energymc_rate(target, method, chains, draws, updates_per_step, **options):
    import energymc as emc

    kw = dict(chains=chains, draws=draws, warmup=0, progress=False, **options)
    first, wall_first = timed(lambda: emc.sample(target, method, seed=0, **kw))
    run, wall = timed(lambda: emc.sample(target, method, seed=1, **kw))
    updates = chains * draws * updates_per_step
    return updates / wall, wall_first, run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    args = parser.parse_args(argv)
    quick = args.quick or os.environ.get("ENERGYMC_QUICK") == "1"

    import energymc as emc
    from energymc.models import Ising

    n_sites = L * L
    rng = np.random.default_rng(0)
    spins = rng.choice([-1.0, 1.0], size=(L, L))
    loop_sweeps = 1 if quick else 3
    _, t_loop = timed(numpy_site_loop, spins.copy(), BETA, loop_sweeps, rng)
    rate_loop = loop_sweeps * n_sites / t_loop
    cb_sweeps = 20 if quick else 500
    _, t_cb = timed(numpy_checkerboard, spins.copy(), BETA, cb_sweeps, rng)
    rate_cb = cb_sweeps * n_sites / t_cb

    model = Ising((L, L), BETA)
    plain = emc.Energy(model.fn, init=model.init, support="spin", check=False)
    rows = [("NumPy site loop (1 chain)", rate_loop, None),
            ("NumPy checkerboard (1 chain)", rate_cb, None)]
    draws = 20 if quick else 500
    for chains in (1, 16):
        rate, first, _ = energymc_rate(model, "gibbs", chains, draws, n_sites)
        rows.append((f"energymc gibbs, local-field path ({chains} chains)", rate, first))
    rate, first, _ = energymc_rate(plain, "gibbs", 1, 2 if quick else 5, n_sites)
    rows.append(("energymc gibbs, generic energy differences (1 chain)", rate, first))
    gwg_updates = 64 if quick else 256
    for chains in (1, 16):
        rate, first, run = energymc_rate(model, "gwg", chains, 5 if quick else 10, gwg_updates,
                                         num_updates=gwg_updates)
        rows.append((f"energymc gwg ({chains} chains, acceptance "
                     f"{run.mean_acceptance:.2f})", rate, first))

    print(f"Ising {L}x{L}, beta={BETA}; single-site updates per second "
          f"(jax {jax.__version__}, {jax.default_backend()}, {os.cpu_count()} CPUs)")
    print(f"{'method':<58}{'updates/s':>12}{'vs loop':>10}{'vs checkerb.':>14}{'1st call s':>12}")
    for name, rate, first in rows:
        first_s = "" if first is None else f"{first:.2f}"
        print(f"{name:<58}{rate:12.3g}{rate / rate_loop:10.2f}{rate / rate_cb:14.2f}{first_s:>12}")
    return rows


if __name__ == "__main__":
    main()
