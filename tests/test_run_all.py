"""``benchmarks/run_all.py`` runs the benchmark scripts, not the probes beside them."""

import importlib.util
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _run_all():
    spec = importlib.util.spec_from_file_location("run_all", BENCHMARKS / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_benchmark_runs_and_no_probe_does():
    run_all = _run_all()
    names = {p.name for p in run_all.scripts()}
    on_disk = {p.name for p in BENCHMARKS.glob("*.py")}
    probes = {n for n in on_disk if "probe" in n}
    benches = {n for n in on_disk if n.startswith("bench_")} | {"gpu.py", "zoo_learn.py"}
    # Negative control: the probes exist (a rule that skips nothing would fail here).
    assert probes and not names & probes
    assert benches <= names
    assert not names & run_all.LIBRARIES
    assert run_all.arguments(BENCHMARKS / "bench_zoo_logz.py", quick=False) == ["--seeds", "3"]
