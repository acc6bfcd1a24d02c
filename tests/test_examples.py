"""Every example in examples/ runs with tiny sizes (ENERGYMC_QUICK=1).

Each runs in-process (runpy) to share one JAX import; the longer ones are
marked slow so that the default suite stays within its time budget.
"""

import os
import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# Quick runs that stay under ~30 s on two cores are in the default tier.
DEFAULT_TIER = {"sample_user_energy.py", "logz_compare.py", "hopfield_completion.py"}


def _examples():
    for path in sorted(EXAMPLES.glob("*.py")):
        if path.name.startswith("_"):
            continue
        marks = () if path.name in DEFAULT_TIER else (pytest.mark.slow,)
        yield pytest.param(path, id=path.name, marks=marks)


@pytest.mark.parametrize("path", list(_examples()))
def test_example_runs_quickly(path, monkeypatch):
    monkeypatch.setenv("ENERGYMC_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.chdir(EXAMPLES)
    monkeypatch.setattr("sys.argv", [str(path)])  # examples with argparse see no pytest flags
    runpy.run_path(str(path), run_name="__main__")
    assert os.path.isdir(EXAMPLES / "output")
