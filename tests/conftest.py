"""Shared test setup: CPU, no progress bars, and the Monte Carlo error harness."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("CI", "true")  # progress bars off unless a test asks


def _private_compilation_cache() -> str | None:
    """A compilation cache of this test run's own, shared by its workers and children.

    Hermetic runs: the suite neither reads nor fills the user's compilation
    cache (tests/test_compilation_cache.py checks the cache in subprocesses of
    its own). But most of the suite's time is XLA compiling, and many modules,
    doc pages, notebooks and example subprocesses compile the same programs
    again (each module drops its compiled programs, see
    ``_release_compiled_programs``). A fresh directory per run, set in the
    environment before the xdist workers start so that they and every child
    process inherit it, turns those recompilations into reads. It holds only
    this run's own programs and is removed when the run ends. A caller who sets
    ``ENERGYMC_COMPILATION_CACHE`` (``0`` for none) keeps their choice.

    Returns
    -------
    str or None
        The directory this process created (and must remove), else None.
    """
    if "ENERGYMC_COMPILATION_CACHE" in os.environ:
        return None  # the caller's choice, or inherited from the run's first process
    import tempfile

    path = tempfile.mkdtemp(prefix="energymc-test-compilation-cache-")
    os.environ["ENERGYMC_COMPILATION_CACHE"] = path
    return path


_OWN_CACHE = _private_compilation_cache()

import numpy as np
import pytest

import energymc as emc


def _ess(y: np.ndarray) -> float:
    """Bulk ESS of a ``(chains, draws)`` array through ArviZ."""
    import warnings

    with warnings.catch_warnings():
        # ArviZ 0.23 announces its 1.x refactor on import; not actionable here.
        warnings.simplefilter("ignore", FutureWarning)
        import arviz

    return float(arviz.ess(arviz.convert_to_dataset({"y": y[..., None]}))["y"].values.min())


def mean_and_mcse(y: np.ndarray) -> tuple[float, float]:
    """The mean of a ``(chains, draws)`` array and its Monte Carlo standard error
    ``sd(y) / sqrt(ESS(y))`` (the error behind :func:`mcse_z_scores`)."""
    return float(y.mean()), float(y.std() / np.sqrt(_ess(y)))


def mcse_z_scores(draws: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> dict[str, np.ndarray]:
    """z-scores ``(estimate - truth) / MCSE`` for means, variances and correlations.

    Parameters
    ----------
    draws
        ``(chains, draws, dim)``.
    mean, cov
        The true mean ``(dim,)`` and covariance ``(dim, dim)``.

    Returns
    -------
    dict
        ``mean``, ``var`` ``(dim,)`` and ``corr`` (upper-triangle pairs) z-scores.
        The MCSE of each estimate is ``sd(y) / sqrt(ESS(y))`` for the per-draw
        quantity ``y`` whose average is the estimate (STYLE.md's harness).
    """
    sd = np.sqrt(np.diag(cov))
    dim = draws.shape[-1]
    z_mean, z_var, z_corr = [], [], []
    for i in range(dim):
        x = draws[..., i]
        z_mean.append((x.mean() - mean[i]) / (x.std() / np.sqrt(_ess(x))))
        y = (x - mean[i]) ** 2
        z_var.append((y.mean() - cov[i, i]) / (y.std() / np.sqrt(_ess(y))))
    for i in range(dim):
        for j in range(i + 1, dim):
            y = (draws[..., i] - mean[i]) * (draws[..., j] - mean[j]) / (sd[i] * sd[j])
            rho = cov[i, j] / (sd[i] * sd[j])
            z_corr.append((y.mean() - rho) / (y.std() / np.sqrt(_ess(y))))
    return {"mean": np.array(z_mean), "var": np.array(z_var), "corr": np.array(z_corr)}


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after each test module.

    The suite compiles thousands of small programs in one process; each keeps
    memory mappings alive, and past the kernel's ``vm.max_map_count`` (65,530
    here) XLA's next compilation crashed the whole run with a segmentation
    fault. Modules share no compiled state, so clearing costs only what a
    module recompiles.
    """
    yield
    import jax

    jax.clear_caches()


@pytest.fixture
def gaussian_target():
    """A 3-d isotropic Gaussian with a non-zero mean, as an Energy."""
    import jax.numpy as jnp

    mu = jnp.array([1.0, -1.0, 0.5])
    return emc.Energy(lambda x: 0.5 * jnp.sum((x - mu) ** 2), init=jnp.zeros(3)), np.asarray(mu)


@pytest.fixture
def sigkill_child(tmp_path):
    """Run a script in a child process and SIGKILL it once a given file appears.

    Returns ``kill(script_text, directory, wait_for) -> script_path``: the
    script gets ``directory`` as its one argument (this checkout first on its
    ``PYTHONPATH``), and is killed as soon as ``directory / wait_for`` exists
    (within 300 s). Used by the resume-after-a-real-kill tests.
    """
    import signal
    import subprocess
    import sys
    import time

    def kill(script_text: str, directory, wait_for: str):
        script = tmp_path / "killed_child.py"
        script.write_text(script_text)
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
        proc = subprocess.Popen([sys.executable, str(script), str(directory)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 300
            while not (directory / wait_for).exists():
                assert proc.poll() is None, proc.stdout.read().decode()
                assert time.monotonic() < deadline, f"the child never wrote {wait_for}"
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
        assert proc.returncode == -signal.SIGKILL
        return script

    return kill


def pytest_unconfigure(config):
    """Remove this run's compilation cache (only the process that created it)."""
    if _OWN_CACHE is not None:
        import shutil

        shutil.rmtree(_OWN_CACHE, ignore_errors=True)
