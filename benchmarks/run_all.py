"""Run every benchmark script and collect the tables they print into one dated report.

Each script in ``benchmarks/`` runs in its own process (a fresh JAX, nothing
compiled carries over), with its standard options or, with ``--quick``, its
smoke-test options. The markdown tables (lines starting with ``|``) and
headings each script prints are gathered, with the exact command, its wall
time and exit status, into one section dated in UTC. With ``--append`` that
section is added to the end of ``benchmarks/RESULTS.md``; the hand-written
analysis above it is left alone.

Usage::

    python benchmarks/run_all.py                       # every benchmark, standard sizes (hours)
    python benchmarks/run_all.py --quick               # smoke run of every script
    python benchmarks/run_all.py --only gpu,bench_sampling --append
    python benchmarks/run_all.py --list                # the commands, without running them

A script that fails or times out is reported as such and the others still
run; the exit status is non-zero if any failed. The probes (``*probe*.py``:
one-off investigations, each run with the arguments its RESULTS.md section
names) are not run.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"

# Modules the scripts import, not benchmarks of their own.
LIBRARIES = {"zoo.py", "run_all.py"}

# Probes (``*probe*.py``) are one-off investigations whose commands and
# findings are in RESULTS.md; they take the arguments of the question they
# answered, print no tables to regenerate, and are not run here.
PROBE_MARK = "probe"

# script -> (quick arguments, standard arguments). A script not listed runs
# with ``--quick`` (if it takes that flag) and ENERGYMC_QUICK=1 in the quick
# run, and without arguments in the standard one; None skips it.
OPTIONS: dict[str, tuple[list[str] | None, list[str] | None]] = {
    "bench_first_call.py": (["--repeats", "1", "--workloads", "gauss100", "--draws", "50"],
                            ["--repeats", "3"]),
    "bench_random.py": (["--repeats", "1"], ["--repeats", "5"]),
    "bench_sampling.py": (["--quick"], ["--repeats", "5"]),
    "bench_logz.py": (["--quick"], ["--seeds", "20"]),
    "bench_rbm.py": (["--quick"], ["--seeds", "5"]),
    "bench_zoo_logz.py": (["--seeds", "1", "--max-dim", "10"], ["--seeds", "3"]),
    # Issue 15's report asks for a streamed 10^6-draw run: N and 10 N = 10^5 and
    # 10^6 draws; 5-d so that the in-memory comparison (76 MB of draws) fits anywhere.
    "bench_streaming.py": (["--draws", "1000", "--dim", "5"],
                           ["--draws", "100000", "--dim", "5"]),
    # Hours even when small: standard runs only.
    "zoo_learn.py": (None, ["--run", "held_out"]),
}


def scripts(only: list[str] | None = None) -> list[Path]:
    """Every benchmark script, sorted; ``only`` keeps those whose stem is listed."""
    found = sorted(p for p in HERE.glob("*.py")
                   if p.name not in LIBRARIES and not p.name.startswith("_")
                   and PROBE_MARK not in p.stem)
    if only:
        unknown = set(only) - {p.stem for p in found}
        if unknown:
            raise SystemExit(f"no benchmark named {sorted(unknown)}; there are "
                             f"{', '.join(p.stem for p in found)}.")
        found = [p for p in found if p.stem in only]
    return found


def arguments(path: Path, quick: bool) -> list[str] | None:
    """The command-line arguments ``path`` runs with (``None``: not run at this size)."""
    if path.name in OPTIONS:
        return OPTIONS[path.name][0 if quick else 1]
    takes_quick = '"--quick"' in path.read_text()
    return ["--quick"] if quick and takes_quick else []


def collect(stdout: str, tail: int = 30) -> str:
    """The tables and headings of a script's output; its last lines if it printed no table."""
    lines = stdout.splitlines()
    keep = [ln for ln in lines if ln.lstrip().startswith(("|", "#", "**"))]
    if any(ln.lstrip().startswith("|") for ln in keep):
        # Blank lines around every heading so that the tables render.
        out = []
        for ln in keep:
            is_row = ln.lstrip().startswith("|")
            if out and (not is_row or not out[-1].lstrip().startswith("|")):
                out.append("")
            out.append(ln)
        return "\n".join(out)
    return "```\n" + "\n".join(lines[-tail:]) + "\n```"


def run_one(path: Path, args: list[str], quick: bool, timeout: float) -> dict:
    env = dict(os.environ)
    env.setdefault("CI", "true")  # no progress bars in the captured output
    # First-call columns are compile times, not reads of what an earlier
    # script (or run) stored; bench_first_call.py sets the cache per child.
    env.setdefault("ENERGYMC_COMPILATION_CACHE", "0")
    if quick:
        env["ENERGYMC_QUICK"] = "1"
    cmd = [sys.executable, str(path.relative_to(HERE.parent)), *args]
    shown = ("ENERGYMC_QUICK=1 " if quick else "") + "python " + " ".join(cmd[1:])
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=HERE.parent, env=env, capture_output=True, text=True,
                              timeout=timeout)
        status, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        status, stderr = "timeout", ""
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
    return {"name": path.stem, "command": shown, "status": status,
            "seconds": time.perf_counter() - t0, "stdout": stdout, "stderr": stderr}


def report(results: list[dict], quick: bool) -> str:
    now = _dt.datetime.now(_dt.UTC)
    head = [f"## All benchmarks, {'quick' if quick else 'standard'} sizes "
            f"({now:%Y-%m-%d %H:%M} UTC)", "",
            f"Command: `python benchmarks/run_all.py{' --quick' if quick else ''}`. Every "
            "script ran in its own process; the tables below are what each printed.", "",
            "| script | command | status | wall s |", "|---|---|---|---|"]
    head += [f"| {r['name']} | `{r['command']}` | {r['status']} | {r['seconds']:.0f} |"
             for r in results]
    body = []
    for r in results:
        body += ["", f"### {r['name']}", "", f"`{r['command']}`", ""]
        if r["status"] == 0:
            body.append(collect(r["stdout"]))
        else:
            body.append("```\n" + (r["stdout"] + r["stderr"])[-2000:] + "\n```")
    return "\n".join(head + body) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke-test sizes")
    parser.add_argument("--only", help="comma-separated script names (e.g. gpu,bench_sampling)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds per script (default: 1800 quick, 6 h standard)")
    parser.add_argument("--append", action="store_true",
                        help="append the dated section to benchmarks/RESULTS.md")
    parser.add_argument("--out", help="also write the section to this file (rewritten after "
                        "every script, so a stopped run keeps what it measured)")
    parser.add_argument("--list", action="store_true", help="print the commands and stop")
    args = parser.parse_args(argv)
    timeout = args.timeout or (1800.0 if args.quick else 6 * 3600.0)
    plan = [(p, arguments(p, args.quick)) for p in scripts(args.only.split(",") if args.only
                                                           else None)]
    if args.list:
        for p, a in plan:
            print(f"{p.name}: " + ("skipped at this size" if a is None else " ".join(a)))
        return 0
    results = []
    for path, script_args in plan:
        if script_args is None:
            print(f"-- {path.name}: skipped at this size", flush=True)
            continue
        print(f"-- {path.name} {' '.join(script_args)}", flush=True)
        res = run_one(path, script_args, args.quick, timeout)
        print(f"   {res['status']} in {res['seconds']:.0f} s", flush=True)
        results.append(res)
        if args.out:  # after every script: a standard run takes hours
            Path(args.out).write_text(report(results, args.quick))
    text = report(results, args.quick)
    print(text)
    if args.append:
        with open(RESULTS, "a") as fh:
            fh.write("\n" + text)
    return 0 if all(r["status"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
