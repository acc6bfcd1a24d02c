"""A probe: ``bench_zoo_logz.py`` with nested sampling's default split changed.

``NESTED_R`` (environment; default 1) replaces nested sampling's default
number of replicates and ``NESTED_P`` (default 500) its default live points
per replicate; ``num_delete`` follows as a tenth of them. ``NESTED_INNER``
(default 2) replaces the slice-sampling steps per dimension of each new live
point. ``NESTED_R=1 NESTED_P=500 NESTED_INNER=2`` is the code before. Every other argument goes to
``bench_zoo_logz.py``. Usage::

    NESTED_R=1 NESTED_P=500 python benchmarks/probe_nested_split.py --half tuning \
        --methods nested --max-dim 50 --seeds 5
    NESTED_R=4 NESTED_P=125 python benchmarks/probe_nested_split.py --half tuning \
        --methods nested --max-dim 50 --seeds 5
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_zoo_logz  # noqa: E402

from energymc.logz import _nested  # noqa: E402

if __name__ == "__main__":
    _nested.Nested.replicates = int(os.environ.get("NESTED_R", "1"))
    _nested._DEFAULT_PARTICLES = int(os.environ.get("NESTED_P", "500"))
    _nested._INNER_STEPS_PER_DIM = int(os.environ.get("NESTED_INNER", "5"))
    bench_zoo_logz.main(sys.argv[1:])
