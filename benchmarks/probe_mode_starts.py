"""How often the mode check's descents find every mode, against how their extra starts are drawn.

For each zoo target and run seed, one default ``log_partition`` run gives
the final particles and the base ``q0``; then
:func:`energymc.logz._checks.mode_check` is called directly for ``--keys``
keys per start rule (no new annealing), counting

* ``found``: keys whose mixture holds a minimum within ``2 sd sqrt(dim)``
  (twice the component's typical radius) of every true mixture mean
  (mixtures only; ``-`` elsewhere);
* ``flag``: keys whose check returns a problem for that run's estimate;
* ``unverif``: keys whose ``info`` makes :func:`unverified_problem` fire
  (the depth of the descents is read there, and more starts go deeper);
* ``unreached``: keys with at least one mode holding importance mass but no
  particle;
* ``s``: median seconds of one check (compiled; the first call excluded).

Start rules: ``N`` draws of q0 (``N``), of q0 widened about its mean
(``Nx2``), or ``dim``-scaled (``budget:B``: ``clip(B // dim, 32, 2048)``
draws). Used on TUNING targets to choose ``_checks.base_start_count``
(benchmarks/RESULTS.md, "Narrow modes nothing reached"). Usage::

    python benchmarks/probe_mode_starts.py --targets mixture10d3,mixture2d2 --rules 32,128,512
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import numpy as np  # noqa: E402
import zoo  # noqa: E402

import energymc as emc  # noqa: E402
from energymc.logz import _checks  # noqa: E402
from energymc.logz._checks import mode_check, unverified_problem  # noqa: E402
from energymc.logz._reference import MixtureReference  # noqa: E402


def _means(entry):
    """True component means and sds of a zoo mixture, else ``None``."""
    if entry.family != "mixture":
        return None
    dim, weights, sds, radius, seed = entry.build.args
    _, s, mu = zoo._mixture_parts(dim, weights, sds, radius, seed)
    return mu, s


_SEEN = {}
_laplace_modes = _checks.laplace_modes


def _recording_laplace_modes(*a, **kw):
    """The library's ``laplace_modes``, keeping the minima it returns for ``found``."""
    out = _laplace_modes(*a, **kw)
    _SEEN["locs"] = np.asarray(out[0])
    return out


_checks.laplace_modes = _recording_laplace_modes


def _starts(ref, key, rule, dim):
    if rule.startswith("budget:"):
        n = int(np.clip(float(rule.split(":")[1]) // dim, 32, 2048))
        return np.asarray(ref.sample(key, n))
    widen = rule.endswith("x2")
    n = int(rule[:-2] if widen else rule)
    x = np.asarray(ref.sample(key, n))
    if widen:
        c = np.mean(np.asarray(ref.sample(jax.random.fold_in(key, 7), 4096)), axis=0)
        x = c + 2.0 * (x - c)
    return x


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--targets", required=True)
    ap.add_argument("--rules", default="32,128,512")
    ap.add_argument("--seeds", type=int, default=2, help="default runs per target (seeds 0..)")
    ap.add_argument("--keys", type=int, default=20)
    args = ap.parse_args(argv)
    print("| target | run seed | run err | run stderr | rule | starts | found | flag | "
          "unverif | unreached | s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.targets.split(","):
        entry = zoo.by_name(name)
        target = entry.build()
        mm = _means(entry)
        for seed in range(args.seeds):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est = emc.log_partition(target, seed=seed)
            ref = est.info["reference"]
            ref = ref.defensive() if isinstance(ref, MixtureReference) else ref
            err = est.log_z - entry.log_z
            for rule in args.rules.split(","):
                found = flag = unr = unv = 0
                secs = []
                n_starts = 0
                for k in range(args.keys + 1):
                    key = jax.random.key(1000 * seed + k)
                    base = _starts(ref, jax.random.fold_in(key, 1), rule, entry.dim)
                    n_starts = len(base)
                    t0 = time.perf_counter()
                    problem, info = mode_check(target, est.particles, est.weights, est.log_z,
                                               est.stderr, key, base_starts=base)
                    dt = time.perf_counter() - t0
                    if k == 0:
                        continue  # compilation
                    secs.append(dt)
                    flag += problem is not None
                    unv += unverified_problem(info, est.log_z) is not None
                    unr += bool(info.get("unreached", 0))
                    if mm is not None:
                        locs = _SEEN.get("locs")
                        found += bool(locs is not None and locs.size and all(
                            np.min(np.linalg.norm(locs - m, axis=1)) < 2 * s * np.sqrt(entry.dim)
                            for m, s in zip(*mm, strict=True)))
                print(f"| {name} | {seed} | {err:+.3f} | {est.stderr:.3f} | {rule} | {n_starts} | "
                      f"{found if mm is not None else '-'}/{args.keys} | {flag}/{args.keys} | "
                      f"{unv}/{args.keys} | {unr}/{args.keys} | {np.median(secs):.2f} |",
                      flush=True)


if __name__ == "__main__":
    main()
