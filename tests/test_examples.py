"""Every example in examples/ runs with tiny sizes (ENERGYMC_QUICK=1).

Each runs in-process (runpy) to share one JAX import; the longer ones are
marked slow so that the default suite stays within its time budget. The
examples pick no matplotlib backend (so that ``%run`` in a notebook shows
their pictures); the tests choose the headless Agg backend themselves.
"""

import os
import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# Quick runs that stay under ~30 s on two cores are in the default tier.
# logz_compare.py (~30 s) is slow-tier: partition-functions.md and notebook 03 make the same calls.
DEFAULT_TIER = {"sample_user_energy.py", "hopfield_completion.py"}


def _examples():
    for path in sorted(EXAMPLES.glob("*.py")):
        if path.name.startswith("_"):
            continue
        marks = () if path.name in DEFAULT_TIER else (pytest.mark.slow,)
        yield pytest.param(path, id=path.name, marks=marks)


@pytest.mark.parametrize("path", list(_examples()))
def test_example_runs_quickly(path, monkeypatch):
    import matplotlib
    import matplotlib.pyplot as plt

    monkeypatch.setenv("ENERGYMC_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    matplotlib.use("Agg")  # in-process: the environment variable alone is read too late
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.chdir(EXAMPLES)
    monkeypatch.setattr("sys.argv", [str(path)])  # examples with argparse see no pytest flags
    try:
        runpy.run_path(str(path), run_name="__main__")
    finally:
        plt.close("all")
    assert os.path.isdir(EXAMPLES / "output")


def test_no_example_forces_a_matplotlib_backend():
    sources = {p.name: p.read_text() for p in EXAMPLES.glob("*.py")}
    assert sources and not [n for n, s in sources.items() if "matplotlib.use(" in s]


def test_examples_without_sklearn_say_how_to_install_it(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import _toy

    _toy.require_sklearn()  # installed here: no complaint
    monkeypatch.setitem(__import__("sys").modules, "sklearn", None)  # now "missing"
    with pytest.raises(SystemExit, match=r"pip install -e '\.\[examples\]'"):
        _toy.require_sklearn()
    with pytest.raises(SystemExit, match="scikit-learn"):
        _toy.toy_data("moons", 10)
