"""The energymc command: demo, sample, diagnose, logz, and its one-line errors."""

import os
import subprocess
import sys

import pytest

from energymc.cli import main

ENERGY_FILE = """
import jax.numpy as jnp

def quadratic(x):
    return 0.5 * jnp.sum((x - 1.0) ** 2)

def not_scalar(x):
    return x ** 2

def one_wide(x):
    # 30 unit-scale coordinates and x[0] with scale 1000: with a fixed small
    # step (adapt=False) x[0] barely moves while the others mix.
    return 0.5 * jnp.sum(x[1:] ** 2) + 0.5 * (x[0] / 1000.0) ** 2
"""


@pytest.fixture
def energy_file(tmp_path):
    path = tmp_path / "user_energy.py"
    path.write_text(ENERGY_FILE)
    return str(path)


def test_sample_then_diagnose_round_trip(energy_file, tmp_path, capsys):
    out = str(tmp_path / "run.nc")
    ckpt = str(tmp_path / "ckpt")
    status = main(["sample", f"{energy_file}:quadratic", "--dim", "3", "--method", "nuts",
                   "--chains", "4", "--draws", "300", "--warmup", "300", "--out", out,
                   "--checkpoint", ckpt])
    printed = capsys.readouterr().out
    assert status == 0 and os.path.exists(out), printed  # a well-mixed run: verdict OK
    assert os.path.exists(os.path.join(ckpt, "state.npz"))
    assert "method          : nuts" in printed and "Diagnosis: OK" in printed
    status = main(["diagnose", out])
    printed = capsys.readouterr().out
    assert status == 0 and "Diagnosis: OK" in printed
    assert "max R-hat" in printed and "ess_bulk" in printed


def test_one_bad_variable_among_many_fails_sample_and_diagnose(energy_file, tmp_path, capsys):
    out = str(tmp_path / "bad.nc")
    status = main(["sample", f"{energy_file}:one_wide", "--dim", "31", "--method", "mala",
                   "--chains", "4", "--draws", "300", "--warmup", "0", "--out", out,
                   "--option", "adapt=False", "--option", "step_size=0.3"])
    printed = capsys.readouterr().out
    assert status == 1 and os.path.exists(out)  # written, but judged not OK
    assert "x[0]" in printed and "… and 21 more rows" in printed
    # Only one row shown; every variable still judged, so the exit status is 1.
    status = main(["diagnose", out, "--rows", "1"])
    printed = capsys.readouterr().out
    assert status == 1
    assert "Diagnosis: OK" not in printed and "x[0]" in printed
    assert "… and 30 more rows" in printed


def test_version_flag_prints_the_installed_version(capsys):
    from importlib import metadata

    import energymc

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out.strip()
    try:
        expected = metadata.version("energymc")
    except metadata.PackageNotFoundError:
        expected = energymc.__version__
    assert printed == f"energymc {expected}"


def test_logz_command(energy_file, capsys):
    status = main(["logz", f"{energy_file}:quadratic", "--dim", "2", "--method", "ais",
                   "--option", "particles=64", "--option", "num_temps=20"])
    assert status == 0
    assert "log" in capsys.readouterr().out.lower()


@pytest.mark.parametrize("argv,message", [
    (["sample", "missing.py:f", "--dim", "2"], "no such file: missing.py"),
    (["sample", "{file}:nope", "--dim", "2"], "has no function 'nope'; it defines: "),
    (["sample", "{file}", "--dim", "2"], "expected path/to/file.py:function"),
    (["sample", "{file}:not_scalar", "--dim", "2"], "must return a scalar"),
    (["sample", "{file}:quadratic", "--dim", "2", "--method", "nope"], "valid methods are"),
    (["sample", "{file}:quadratic", "--dim", "0"], "--dim must be >= 1"),
    (["diagnose", "nothing.nc"], "no such file"),
    (["diagnose", "{file}"], "is not a netCDF file written by energymc"),
    (["sample", "{file}:quadratic", "--dim", "2", "--checkpoint", "{file}"], "is a file"),
])
def test_bad_arguments_give_one_line_and_exit_2(argv, message, energy_file, capsys):
    argv = [a.replace("{file}", energy_file) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_console_script_argparse_errors_exit_2():
    proc = subprocess.run([sys.executable, "-m", "energymc.cli", "sample"], capture_output=True,
                          text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_demo_quick_writes_netcdf_and_png(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0
    names = set(os.listdir(tmp_path))
    assert {"banana.nc", "banana_trace.png", "funnel.nc", "funnel_trace.png"} <= names
    assert "Diagnosis" in capsys.readouterr().out
