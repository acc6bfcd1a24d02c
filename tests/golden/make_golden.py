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

On another CPU (or JAX build) the comparison is skipped, unless this machine
was vouched for: ``--vouch`` runs every case here, compares it with the
stored values and records, in ``environment.json`` under ``also_equal``,
the cases that came out bit for bit equal on this environment; the test then
compares those here too. Recording a case again drops it from every such
list (its equality elsewhere is then unknown).

    ... python tests/golden/make_golden.py --vouch
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
from cases import (CASES, also_equal_after_recording, environment_key,  # noqa: E402
                   recording_environment)


ENVIRONMENT = Path(__file__).with_name("environment.json")


def vouch() -> None:
    """Record which cases this environment reproduces bit for bit."""
    recorded = json.loads(ENVIRONMENT.read_text())
    here = recording_environment()
    if {k: recorded[k] for k in here} == here:
        raise SystemExit("this is the recording environment; nothing to vouch for")
    equal = []
    with np.load(Path(__file__).with_name("golden.npz")) as stored:
        for name, case in CASES.items():
            got = {k: np.asarray(v) for k, v in case().items()}
            want = {k.split("/", 1)[1]: stored[k] for k in stored.files
                    if k.split("/")[0] == name}
            same = sorted(got) == sorted(want) and all(
                got[k].shape == want[k].shape and got[k].dtype == want[k].dtype
                and np.array_equal(got[k], want[k], equal_nan=want[k].dtype.kind in "fc")
                for k in want)
            print(f"{name}: {'equal' if same else 'DIFFERS'}")
            equal += [name] if same else []
    recorded.setdefault("also_equal", {})[environment_key(here)] = equal
    ENVIRONMENT.write_text(json.dumps(recorded, indent=1) + "\n")
    print(f"{len(equal)} of {len(CASES)} cases equal here; recorded in {ENVIRONMENT}")


def main(names: list[str]) -> None:
    if names == ["--vouch"]:
        return vouch()
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        raise SystemExit(f"unknown case(s) {unknown}; the cases are {sorted(CASES)}")
    path = Path(__file__).with_name("golden.npz")
    recorded = json.loads(ENVIRONMENT.read_text()) if ENVIRONMENT.exists() else {}
    env = recording_environment()
    if names and {k: recorded.get(k) for k in env} != env:
        # The kept cases' values come from the recording environment: relabelling the
        # file with this one would claim bit-identity for values never computed here.
        raise SystemExit("recording some cases again needs the environment that recorded "
                         f"the others ({environment_key(recorded)}); this is "
                         f"{environment_key(env)}. Record every case here (no names), "
                         "or run --vouch to list the cases this environment reproduces.")
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
    # Cases recorded again are unknown elsewhere until vouched for again.
    also = also_equal_after_recording(recorded.get("also_equal", {}), names)
    if also:
        env["also_equal"] = also
    ENVIRONMENT.write_text(json.dumps(env, indent=1) + "\n")
    print(f"wrote {len(out)} arrays to {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
