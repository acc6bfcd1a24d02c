"""A probe: ``bench_zoo_logz.py`` with another precision target for the default effort.

``PREC`` (environment, nats; default ``inf``, which adds no replicate: the
code before the default effort) replaces ``energymc.logz._api.PRECISION_STDERR``
before the benchmark runs; every other argument goes to ``bench_zoo_logz.py``.
This is how the target was chosen on the TUNING half (RESULTS.md, "The
default effort follows the stderr"). Usage::

    PREC=inf  python benchmarks/probe_default_effort.py --half tuning --methods smc
    PREC=0.05 python benchmarks/probe_default_effort.py --half tuning --methods smc
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_zoo_logz  # noqa: E402

from energymc.logz import _api  # noqa: E402

if __name__ == "__main__":
    _api.PRECISION_STDERR = float(os.environ.get("PREC", "inf"))
    bench_zoo_logz.main(sys.argv[1:])
