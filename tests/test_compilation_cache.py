"""JAX's persistent compilation cache as energymc configures it at import.

Each case is a fresh Python process (the cache is configured once, at
``import energymc``) with its own temporary directories given through the
environment, so the user's real cache is never touched. Whether a warm cache
makes the first call faster is measured in benchmarks/bench_first_call.py,
not here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from energymc import _compilation_cache

ROOT = Path(__file__).resolve().parent.parent

# Prints where the cache is and JAX's write threshold. With "sample" it first
# runs a tiny MALA sample (cheap to compile, still several programs well above
# the threshold); with "jit" it only compiles one small program, which is
# enough to make JAX open (or not) its cache.
SCRIPT = """
import json, sys
pre = sys.argv[1:]
import jax
hits = []  # JAX's own event for a program read from the persistent cache
jax.monitoring.register_event_listener(
    lambda event, **kw: hits.append(1) if event == "/jax/compilation_cache/cache_hits" else None)
if "jax-config" in pre:
    jax.config.update("jax_compilation_cache_dir", sys.argv[-1])
import jax.numpy as jnp
import energymc as emc
if "sample" in pre:
    target = emc.Energy(lambda x: 0.5 * jnp.sum(x ** 2), init=jnp.zeros(2))
    run = emc.sample(target, "mala", chains=1, draws=5, warmup=5, seed=0, progress=False)
    assert run.draws.shape == (1, 5, 2)
if "jit" in pre:
    assert float(jax.jit(lambda x: jnp.sin(x).sum())(jnp.ones(3))) > 0
print(json.dumps({"dir": emc.compilation_cache_dir(), "hits": len(hits),
                  "min_time": jax.config.jax_persistent_cache_min_compile_time_secs}))
"""


def _run(tmp_path, env_updates, *args):
    """Run :data:`SCRIPT` in a fresh process; its JSON line as a dict."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("ENERGYMC_COMPILATION_CACHE", "JAX_COMPILATION_CACHE_DIR",
                        "JAX_ENABLE_COMPILATION_CACHE",
                        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS")}
    # A private home and user cache: a test that went wrong must not write to
    # the real ones, and the opt-out test can check that nothing was written.
    env.update(HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "xdg"),
               JAX_PLATFORMS="cpu", CI="true",
               PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]))
    env.update(env_updates)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, *args], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _entries(path: Path) -> list[str]:
    return [n for n in os.listdir(path) if n.endswith("-cache")] if path.is_dir() else []


def _entries_anywhere(path: Path) -> list[str]:
    """Every JAX cache entry under ``path`` (other tools may write their own caches there)."""
    return [os.path.join(d, f) for d, _, files in os.walk(path) for f in files
            if f.endswith("-cache")]


def test_sample_writes_entries_to_the_chosen_dir(tmp_path):
    cache = tmp_path / "cache"
    out = _run(tmp_path, {"ENERGYMC_COMPILATION_CACHE": str(cache)}, "sample")
    assert out["dir"] == str(cache)
    # Lowered from JAX's 1 s default, so that a small model's many short
    # compilations are stored too (the reason is in _compilation_cache.py).
    assert 0 < out["min_time"] < 1.0
    assert len(_entries(cache)) >= 1
    # Owner-only: JAX runs what it loads from here.
    assert cache.stat().st_mode & 0o077 == 0


def test_the_same_sample_in_a_fresh_process_reads_every_stored_program_back(tmp_path):
    # A notebook restart: the first process compiles and stores, the second
    # reads each stored program back instead of compiling it. (It may store a
    # few more: tiny eager ops whose compile time straddles the 0.02 s
    # threshold are stored by whichever process happened to be slower.)
    cache = tmp_path / "cache"
    first = _run(tmp_path, {"ENERGYMC_COMPILATION_CACHE": str(cache)}, "sample")
    stored = _entries(cache)
    second = _run(tmp_path, {"ENERGYMC_COMPILATION_CACHE": str(cache)}, "sample")
    # Negative control: the cold process compiled nearly everything (a hit
    # there is a program it stored and met again under another jit wrapper).
    # Fewer than half, without rounding: on a loaded machine the whole run may
    # be the only program over the threshold, and 0 hits of 1 stored is right.
    assert 2 * first["hits"] < len(stored), (first["hits"], len(stored))
    assert second["hits"] >= len(stored), (second["hits"], len(stored))


def test_opt_out_leaves_no_cache_anywhere(tmp_path):
    out = _run(tmp_path, {"ENERGYMC_COMPILATION_CACHE": "0"}, "sample")
    assert out["dir"] is None
    assert out["min_time"] == 1.0  # JAX's own default, untouched
    assert _entries_anywhere(tmp_path) == []
    assert not (tmp_path / "xdg" / "energymc").exists()


def test_default_dir_is_the_user_cache(tmp_path):
    out = _run(tmp_path, {})
    expected = tmp_path / "xdg" / "energymc" / "jax"
    assert out["dir"] == str(expected) and expected.is_dir()
    # Owner-only, and the probe that checked it is writable is gone.
    assert expected.stat().st_mode & 0o077 == 0
    assert not [f for f in os.listdir(expected) if f.startswith(".energymc-probe")]


def test_user_jax_env_dir_wins_and_thresholds_stay(tmp_path):
    jax_dir, ours = tmp_path / "jax-dir", tmp_path / "ours"
    out = _run(tmp_path, {"JAX_COMPILATION_CACHE_DIR": str(jax_dir),
                          "ENERGYMC_COMPILATION_CACHE": str(ours)}, "jit")
    assert out["dir"] == str(jax_dir)
    assert out["min_time"] == 1.0
    assert not ours.exists() and not (tmp_path / "xdg" / "energymc").exists()
    # JAX opened the directory it was given (with its 1 s threshold a small
    # program writes no entry into it, so entries are not counted).
    assert jax_dir.is_dir()


def test_user_jax_config_dir_wins(tmp_path):
    jax_dir = tmp_path / "jax-config-dir"
    out = _run(tmp_path, {}, "jax-config", "jit", str(jax_dir))
    assert out["dir"] == str(jax_dir) and jax_dir.is_dir()
    assert not (tmp_path / "xdg" / "energymc").exists()


def test_user_disabled_jax_cache_stays_disabled(tmp_path):
    out = _run(tmp_path, {"JAX_ENABLE_COMPILATION_CACHE": "false"})
    assert out["dir"] is None
    assert not (tmp_path / "xdg" / "energymc").exists()


def test_unwritable_dir_means_no_cache_not_a_crash(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    out = _run(tmp_path, {"ENERGYMC_COMPILATION_CACHE": str(blocker / "cache")}, "jit")
    assert out["dir"] is None
    assert _entries_anywhere(tmp_path) == []
    assert not (tmp_path / "xdg" / "energymc").exists()


def test_default_dir_rule(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _compilation_cache.default_dir() == str(tmp_path / "xdg" / "energymc" / "jax")
    # A relative XDG_CACHE_HOME is invalid by the XDG spec: ignored.
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    assert _compilation_cache.default_dir() == str(tmp_path / ".cache" / "energymc" / "jax")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert _compilation_cache.default_dir() == str(tmp_path / ".cache" / "energymc" / "jax")
    monkeypatch.setattr(sys, "platform", "darwin")
    assert _compilation_cache.default_dir() == str(
        tmp_path / "Library" / "Caches" / "energymc" / "jax")
