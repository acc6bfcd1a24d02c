"""Which seeds' ``base="auto"`` fit is used (one mode found, importance ESS >= 0.5) on zoo targets.

The fit is the same for every method on a seed (its key is derived from the
seed alone), so this finds the seeds on which a rule about fitted-base runs
can be measured without running any estimator.

Run: ``python benchmarks/probe_fit_used.py mixture2d2,mixture10d3 0 30``
(targets, first seed, last seed + 1).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import zoo  # noqa: E402

from energymc._util import as_key  # noqa: E402
from energymc.logz import _api  # noqa: E402


def main(argv):
    names, first, stop = argv[0].split(","), int(argv[1]), int(argv[2])
    for name in names:
        target = zoo.by_name(name).build()
        used = [s for s in range(first, stop)
                if _api._reference(target, "auto", {}, as_key(s), "pt")[2]["used"]]
        print(f"{name}: fit used on seeds {used}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
