"""energymc's NUTS against NumPyro's on funnel10 over several seeds: min bulk ESS.

A probe (``run_all.py`` skips it). ``bench_sampling.py`` reports one seed's
ESS per target; on funnel10 that one seed read NumPyro 78 against energymc 26,
and ESS on a funnel varies several-fold from seed to seed. This runs both
with the bench's own targets, starting points (``key(99)``, +-0.1) and sizes
(4 chains, 1,000 warmup + 1,000 draws) for seeds 0..N-1::

    PYTHONPATH=$PWD python benchmarks/probe_funnel_ess.py --seeds 5

Prints per seed: min bulk ESS and gradient evaluations of each, and the sd of
the log-scale coordinate ``v`` (true sd 3; a run that never enters the neck
reads low).
"""

import argparse
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("CI", "true")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402

import bench_sampling as bench  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    target = bench.targets()["funnel10"]
    chains, warmup, draws = 4, 1000, 1000  # bench_sampling.py's defaults
    x0s = target.flat_init + jax.random.uniform(jax.random.key(99), (chains, target.dim),
                                                minval=-1, maxval=1) * 0.1
    numpyro_call = bench.make_numpyro(target.flat_energy, chains, warmup, draws)
    for seed in range(args.seeds):
        ours, _, ours_grads = bench.run_energymc(target, x0s, warmup, draws, seed)
        theirs, _, their_grads = numpyro_call(x0s, seed)
        print(f"seed {seed}: energymc min ESS {bench.min_ess(ours):5.0f} "
              f"({ours_grads} grads, sd(v) {ours[..., 0].std():.2f}) | "
              f"numpyro min ESS {bench.min_ess(theirs):5.0f} "
              f"({their_grads} grads, sd(v) {theirs[..., 0].std():.2f})")


if __name__ == "__main__":
    main()
