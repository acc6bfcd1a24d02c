"""Record the golden values that tests/test_golden.py compares against.

Run ONCE, from the repository root, before the issue-13 refactor:

    CI=true JAX_PLATFORMS=cpu ENERGYMC_COMPILATION_CACHE=0 python tests/golden/make_golden.py

It writes ``tests/golden/golden.npz``. Every case below is a function of
nothing but literal seeds and tiny sizes, so the same code on the same JAX
build reproduces the same bits; the refactor must keep them.
Rerunning it after the refactor would overwrite the very values the test
guards -- do that only for a deliberate, documented change of arithmetic,
and then only for the cases it changed, named on the command line (the
others keep their stored values):

    ... python tests/golden/make_golden.py sample_mala logz_ais
"""

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("CI", "true")
os.environ.setdefault("ENERGYMC_COMPILATION_CACHE", "0")

sys.path.insert(0, str(Path(__file__).resolve().parent))

import json  # noqa: E402

import numpy as np  # noqa: E402
from cases import CASES, recording_environment  # noqa: E402


def main(names: list[str]) -> None:
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        raise SystemExit(f"unknown case(s) {unknown}; the cases are {sorted(CASES)}")
    path = Path(__file__).with_name("golden.npz")
    out = {}
    if names:  # keep every other case's stored values as they are
        with np.load(path) as stored:
            out = {k: stored[k] for k in stored.files if k.split("/")[0] not in names}
    for name, case in CASES.items():
        if names and name not in names:
            continue
        start = time.perf_counter()
        values = case()
        print(f"{name}: {time.perf_counter() - start:.1f} s")
        for field, value in values.items():
            out[f"{name}/{field}"] = np.asarray(value)
    np.savez(path, **out)
    Path(__file__).with_name("environment.json").write_text(
        json.dumps(recording_environment(), indent=1) + "\n")
    print(f"wrote {len(out)} arrays to {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
