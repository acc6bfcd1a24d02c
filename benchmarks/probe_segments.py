"""How far a segmented diagnosis is from ArviZ on every draw, against ArviZ's own MC error.

The set-up of ``tests/test_segments.py``: 4 stationary AR(1) chains of
200,000 draws and unit variance per variable, ``phi`` 0 (iid), 0.9
(autocorrelation time 19) and 0.999 (1,999), judged by ``diagnose`` once with
ArviZ on every draw and once cut into 20,000-draw segments (the private knobs
``_SEGMENT_DRAWS`` and ``_BATCH_BYTES``). Prints, per variable and column:

- the relative spread over seeds of the whole-run ESS and MCSE (the Monte
  Carlo error ArviZ's estimate of them carries);
- the smallest and largest relative difference segmented / whole - 1 over the
  seeds (for R-hat the difference itself), on the same draws.

Usage::

    PYTHONPATH=$PWD nice -n 10 python3 benchmarks/probe_segments.py --seeds 8
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from scipy.signal import lfilter

from energymc import diagnostics

CHAINS, DRAWS, SEGMENT = 4, 200_000, 20_000
PHIS = {"iid": 0.0, "ar": 0.9, "sticky": 0.999}
COLUMNS = ("ess_bulk", "ess_tail", "mcse_mean", "r_hat")


def _tables(seed: int):
    rng = np.random.default_rng(seed)
    data = diagnostics.from_arrays({
        name: lfilter([np.sqrt(1.0 - phi**2)], [1.0, -phi],
                      rng.standard_normal((CHAINS, DRAWS)), axis=1)
        for name, phi in PHIS.items()})
    knobs = diagnostics._SEGMENT_DRAWS, diagnostics._BATCH_BYTES
    try:
        diagnostics._SEGMENT_DRAWS = 10**9                    # ArviZ on every draw
        whole = diagnostics.diagnose(data).table.loc[list(PHIS)]
        diagnostics._SEGMENT_DRAWS, diagnostics._BATCH_BYTES = SEGMENT, 8 * CHAINS * SEGMENT
        segmented = diagnostics.diagnose(data).table.loc[list(PHIS)]
    finally:
        diagnostics._SEGMENT_DRAWS, diagnostics._BATCH_BYTES = knobs
    return whole, segmented


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=8)
    args = p.parse_args(argv)
    warnings.simplefilter("ignore", FutureWarning)
    whole, diff = [], []
    for seed in range(args.seeds):
        a, b = _tables(seed)
        whole.append(a[list(COLUMNS)].to_numpy(dtype=float))
        d = b[list(COLUMNS)].to_numpy(dtype=float) / whole[-1] - 1.0
        d[:, -1] = b["r_hat"].to_numpy(dtype=float) - a["r_hat"].to_numpy(dtype=float)
        diff.append(d)
        print(f"seed {seed}: thinned ESS for {b.attrs.get('thinned_ess')}", flush=True)
    whole, diff = np.array(whole), np.array(diff)            # (seeds, variables, columns)
    spread = whole.std(axis=0, ddof=1) / whole.mean(axis=0)
    print(f"\n{CHAINS} chains x {DRAWS:,} draws, segments of {SEGMENT:,}; {args.seeds} seeds\n")
    print("| variable | column | whole-run spread over seeds | segmented vs whole: min, max |")
    print("|---|---|---|---|")
    for i, name in enumerate(PHIS):
        for j, col in enumerate(COLUMNS):
            lo, hi = diff[:, i, j].min(), diff[:, i, j].max()
            if col == "r_hat":
                print(f"| {name} | {col} | | {lo:+.5f}, {hi:+.5f} (difference) |")
            else:
                print(f"| {name} | {col} | {spread[i, j]:.2%} | {lo:+.2%}, {hi:+.2%} |")


if __name__ == "__main__":
    main()
