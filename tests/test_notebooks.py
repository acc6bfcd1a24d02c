"""Every notebook in docs/notebooks/ re-executes, at small sizes, without error.

The committed notebooks hold the outputs of a full run (their pictures are
what the docs site shows). Here each is executed again with
``ENERGYMC_QUICK=1``, which the notebooks read to shrink their sizes, so that
none can rot as the library changes. The kernel imports this checkout's
``energymc`` (the repository root is put first on ``PYTHONPATH``).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "docs" / "notebooks").glob("*.ipynb"))
TIMEOUT_S = 600  # per cell

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("nbclient") is None or importlib.util.find_spec("ipykernel") is None,
    reason="nbclient/ipykernel are not installed: pip install -e '.[test]'",
)


def execute(nb, cwd: Path):
    """Run every cell of ``nb`` in a fresh kernel; raises ``CellExecutionError`` on error."""
    from nbclient import NotebookClient

    client = NotebookClient(nb, timeout=TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}})
    return client.execute()


@pytest.fixture
def quick_env(monkeypatch):
    # The kernel inherits this process's environment.
    monkeypatch.setenv("ENERGYMC_QUICK", "1")
    monkeypatch.setenv("CI", "true")  # no progress bars
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend


def test_there_are_notebooks_with_pictures():
    """The committed notebooks carry the outputs of a full run, pictures included."""
    import nbformat

    assert len(NOTEBOOKS) >= 3
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.get("execution_count") for c in code), f"{path.name}: unexecuted cells"
        pngs = sum("image/png" in o.get("data", {}) for c in code for o in c.outputs)
        assert pngs >= 1, f"{path.name} has no picture in its outputs"
        errors = [o for c in code for o in c.outputs if o.output_type == "error"]
        assert not errors, f"{path.name} was committed with an error output"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes_quickly(path, tmp_path, quick_env):
    import nbformat

    nb = nbformat.read(path, as_version=4)
    execute(nb, tmp_path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.get("execution_count") for c in code)


def test_a_failing_cell_fails_the_test(tmp_path, quick_env):
    """Negative control: an error in a cell is an error of the test, not a silent output."""
    import nbformat
    from nbclient.exceptions import CellExecutionError
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[new_code_cell("import os\nquick = os.environ['ENERGYMC_QUICK']"),
                             new_code_cell("assert quick == '1'"),
                             new_code_cell("raise ValueError('boom')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    with pytest.raises(CellExecutionError, match="boom"):
        execute(nbformat.from_dict(nb), tmp_path)
