"""The documentation: every ```python block of README.md and docs/*.md runs, and the
site builds with ``mkdocs build --strict``.

Blocks of one page run in order in one namespace (a later block may use an
earlier one's names), in a temporary working directory. The sizes in the text
are the ones a reader would use; before running, :func:`shrink` caps the
literal sizes of a few well-known arguments (``draws=1000`` becomes
``draws=40``) so that the whole file runs in well under a minute. A block that
cannot run (a sketch needing data the reader brings) starts with the marker
line ``# docs: not run -- <reason>``; the reason is required.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
SKIP_MARKER = re.compile(r"^\s*#\s*docs:\s*not run\b(.*)$")

# Literal sizes capped in the executed copy. Keyword arguments only, and only
# integer literals; anything else (a variable, an expression) is left alone.
SMALL = {
    "draws": 40, "warmup": 40, "particles": 64, "num_temps": 20, "num_chains": 16,
    "pilot_draws": 40, "steps_per_level": 5, "sample_warmup": 40, "mcmc_steps": 2,
    "num_steps": 20, "replicates": 2, "eval_every": 10,
}
KEYWORD_SIZE = re.compile(r"\b(" + "|".join(SMALL) + r")=(\d[\d_]*)\b")
# The positional number of updates of ``learner.run(key, num_steps, data, ...)``.
RUN_STEPS = re.compile(r"(\.run\([^,()]*(?:\([^()]*\))?[^,()]*,\s*)(\d[\d_]*)(\s*,)")
LEARN_STEPS = 20


def blocks(path: Path) -> list[tuple[int, str]]:
    """``(line, code)`` of every ```python block of a Markdown file, in order."""
    text = path.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 2  # first line of code, 1-based
        out.append((line, m.group(1)))
    return out


def skip_reason(code: str) -> str | None:
    """The reason given by a block's ``# docs: not run -- reason`` marker, else None.

    Raises
    ------
    ValueError
        For a marker without a reason.
    """
    first = code.lstrip("\n").splitlines()[0] if code.strip() else ""
    m = SKIP_MARKER.match(first)
    if m is None:
        return None
    reason = m.group(1).strip(" -—:()")
    if not reason:
        raise ValueError(f"'# docs: not run' needs a reason: {first!r}")
    return reason


def shrink(code: str) -> str:
    """Cap the literal sizes of :data:`SMALL`'s arguments and of ``.run(key, N, ...)``."""

    def cap(m):
        value = int(m.group(2).replace("_", ""))
        return f"{m.group(1)}={min(value, SMALL[m.group(1)])}"

    def cap_run(m):
        value = int(m.group(2).replace("_", ""))
        return f"{m.group(1)}{min(value, LEARN_STEPS)}{m.group(3)}"

    return RUN_STEPS.sub(cap_run, KEYWORD_SIZE.sub(cap, code))


def run_page(path: Path) -> int:
    """Execute a page's runnable blocks in order in one namespace; how many ran."""
    import matplotlib.pyplot as plt

    namespace: dict = {"__name__": "__docs__"}
    ran = 0
    for line, code in blocks(path):
        if skip_reason(code) is not None:
            continue
        # Pad with blank lines so that a traceback names the line in the page.
        source = "\n" * (line - 1) + shrink(code)
        exec(compile(source, str(path), "exec"), namespace)  # noqa: S102
        plt.close("all")
        ran += 1
    return ran


@pytest.mark.parametrize("path", PAGES, ids=[p.name for p in PAGES])
def test_page_code_blocks_run(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # checkpoints and plots land in a temp dir
    monkeypatch.setenv("MPLBACKEND", "Agg")
    n_blocks = len(blocks(path))
    ran = run_page(path)
    skipped = n_blocks - ran
    # At most one sketch per page may stay unrun; everything else must execute.
    assert skipped <= 1, f"{path.name}: {skipped} blocks marked not run"


def test_every_skip_marker_gives_a_reason():
    for path in PAGES:
        for line, code in blocks(path):
            try:
                skip_reason(code)
            except ValueError as exc:
                raise AssertionError(f"{path.name}:{line}: {exc}") from None


def test_harness_executes_and_fails_on_bad_blocks(tmp_path):
    """Negative control: a block with an undefined name fails; later blocks see earlier names."""
    page = tmp_path / "page.md"
    page.write_text("```python\nx = 2\n```\n\ntext\n\n```python\ny = x + 1\nassert y == 3\n```\n")
    assert run_page(page) == 2
    page.write_text("```python\nx = 2\n```\n\n```python\nprint(undefined_name)\n```\n")
    with pytest.raises(NameError, match="undefined_name"):
        run_page(page)
    page.write_text("```python\n# docs: not run\nboom()\n```\n")
    with pytest.raises(ValueError, match="needs a reason"):
        run_page(page)
    page.write_text("```python\n# docs: not run -- needs your own data\nboom()\n```\n")
    assert run_page(page) == 0


def test_shrink_caps_literal_sizes_only():
    code = ("emc.sample(t, draws=100_000, warmup=1000, chains=4)\n"
            "learner.run(jax.random.key(0), 2000, data, batch_size=128)\n"
            "emc.log_partition(t, particles=n, num_temps=10)\n")
    out = shrink(code)
    assert "draws=40, warmup=40, chains=4" in out
    assert "learner.run(jax.random.key(0), 20, data, batch_size=128)" in out
    assert "particles=n, num_temps=10" in out  # a variable and a small literal: untouched


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None,
                    reason="mkdocs is not installed: pip install -e '.[test]' (or '.[docs]')")
def test_site_builds_strict(tmp_path):
    """``mkdocs build --strict``: broken links, missing pages, unreadable docstrings fail."""
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert (tmp_path / "site" / "api" / "sample" / "index.html").exists()
