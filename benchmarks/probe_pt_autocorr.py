"""PT's autocorrelation check as it is and with the log-weights centred, beside the round trips.

For each zoo target and seed: ``log_partition(target, method="pt", seed=s)``
under defaults, its error, stderr and flags, and, computed from the same
run's rung log-likelihoods: the check's error bar as the library forms it
(weights ``exp(d_k ll)`` about zero, every chain pooled), the same bar with
``ll`` taken about the rung's median over all chains (each chain's ratio,
``cv`` and autocorrelation unchanged; chains with their own ladders no longer
set apart by ``Δd_k`` times ``ll``'s level), their smallest rung ESS, and the
round trips a chain made. Nothing in the library changes: the probe wraps
``_tempering._autocorrelated_stderr`` to read its inputs.

Run: ``python benchmarks/probe_pt_autocorr.py --half tuning --seeds 3 --out F``
(RESULTS.md, "A lead, not a change: what PT's autocorrelation check measures").
Since session 17 the library centres ``ll`` itself, so "bar now" and "bar
centred" read the same; the tables in RESULTS.md were made before that.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import zoo  # noqa: E402

import energymc as emc  # noqa: E402
from energymc.logz import _tempering  # noqa: E402

_SEEN = []
_LIBRARY_BAR = _tempering._autocorrelated_stderr


def _recording_bar(betas, ll):
    """The library's bar, and the centred one from the same inputs, recorded."""
    bar, ess = _LIBRARY_BAR(betas, ll)
    centred = ll.copy()  # the last rung's ll enters no ratio
    centred[:, :, :-1] = ll[:, :, :-1] - np.nanmedian(ll[:, :, :-1], axis=(0, 1))
    bar_c, ess_c = _LIBRARY_BAR(betas, centred)
    _SEEN.append({"bar": bar, "ess_min": float(np.min(ess)),
                  "bar_centred": bar_c, "ess_min_centred": float(np.min(ess_c))})
    return bar, ess


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--half", choices=("tuning", "held_out"), default="tuning")
    ap.add_argument("--targets", default=None)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--max-dim", type=int, default=100)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    _tempering._autocorrelated_stderr = _recording_bar
    half = zoo.TUNING if args.half == "tuning" else zoo.HELD_OUT
    entries = [zoo.by_name(n) for n in args.targets.split(",")] if args.targets else half
    rows = []
    for entry in [e for e in entries if e.dim <= args.max_dim]:
        target = entry.build()
        for seed in range(args.seeds):
            _SEEN.clear()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est = emc.log_partition(target, method="pt", seed=seed)
            # The returned run's bar is the last one formed (a rerun's, where one ran).
            seen = _SEEN[-1]
            trips = [int(t) for t in est.info["round_trips"]]
            err = est.log_z - entry.log_z
            row = {"target": entry.name, "dim": entry.dim, "seed": seed, "err": err,
                   "stderr": est.stderr, "reliable": est.reliable,
                   "autocorr_flag": any("autocorrelated" in p for p in est.problems),
                   "other_flags": [p[:60] for p in est.problems if "autocorrelated" not in p],
                   "trips": trips, **seen}
            rows.append(row)
            print(f"{entry.name:12s} seed {seed} err {err:+.3f} se {est.stderr:.3f} "
                  f"{'ok' if est.reliable else 'FLAGGED'} bar {seen['bar']:.2f} "
                  f"(ess {seen['ess_min']:.0f}) centred {seen['bar_centred']:.2f} "
                  f"(ess {seen['ess_min_centred']:.0f}) trips {trips} "
                  f"others {len(row['other_flags'])}", flush=True)
            if args.out:
                Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
