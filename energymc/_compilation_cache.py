"""JAX's persistent compilation cache, on by default in a user cache directory.

A fresh Python process (a notebook restart, each ``energymc`` command) would
otherwise compile every sampler again before its first draw. JAX can keep
compiled executables on disk and load them instead; this module is the one
place that points it at a directory. It only sets JAX's own options
(``jax_compilation_cache_dir`` and the write threshold); reading, writing and
keying entries stay JAX's.

Rules, applied once when ``energymc`` is imported (:func:`configure`):

* A cache the user set up for JAX wins: ``JAX_COMPILATION_CACHE_DIR`` or
  ``jax.config.update("jax_compilation_cache_dir", ...)`` before the import,
  or ``jax_enable_compilation_cache`` turned off. energymc then changes nothing.
* ``ENERGYMC_COMPILATION_CACHE=0`` (also ``off``, ``false``, ``no``) turns the
  cache off; any other non-empty value is the directory to use.
* Otherwise the directory is ``energymc/jax`` under the platform's user cache
  (``$XDG_CACHE_HOME`` or ``~/.cache`` on Linux, ``~/Library/Caches`` on
  macOS, ``%LOCALAPPDATA%`` on Windows).
* A directory that cannot be created or written means no cache, silently:
  importing energymc never fails because of it.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile

__all__ = ["ENV_VAR", "compilation_cache_dir", "configure", "default_dir"]

ENV_VAR = "ENERGYMC_COMPILATION_CACHE"
_OFF = {"0", "off", "false", "no"}

# JAX writes an entry only for programs that took at least this long to
# compile (its default is 1 s). A NUTS run of a small model is some thirty
# programs (initialisation, warmup pieces, the draw loop), each compiling in
# well under a second, which together cost seconds. For a 100-d Gaussian
# (benchmarks/bench_first_call.py, loaded machine) a 0.1 s threshold stored
# only 4 of them and a warm first call took ~4.4 s; storing all 30 (~0.6 MB)
# brought it to ~2.5 s, the rest being tracing, which no cache skips. 0.02 s
# kept 27 of the 30. Not 0: single eager operations (``x + 1`` in a
# notebook) compile in milliseconds, are as cheap to recompile as to read,
# and would each add a file.
_MIN_COMPILE_TIME_SECS = 0.02

_log = logging.getLogger(__name__)


def default_dir() -> str:
    """The platform's user cache directory for energymc's compiled programs.

    Returns
    -------
    str
        ``<user cache>/energymc/jax``; the directory is not created here.
    """
    home = os.path.expanduser("~")
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.path.join(home, "AppData", "Local")
    elif sys.platform == "darwin":
        base = os.path.join(home, "Library", "Caches")
    else:
        # The XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored.
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        base = xdg if os.path.isabs(xdg) else os.path.join(home, ".cache")
    return os.path.join(base, "energymc", "jax")


def _writable_dir(path: str) -> bool:
    """Create ``path`` (owner-only) if needed and check a file can be written there."""
    try:
        # Owner-only: JAX loads executables from this directory, so whoever can
        # write to it can run code in the user's processes.
        os.makedirs(path, mode=0o700, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".energymc-probe-")
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        _log.debug("compilation cache off: %s is not writable (%s)", path, exc)
        return False
    return True


def configure() -> str | None:
    """Point JAX's persistent compilation cache at energymc's directory.

    Called once by ``import energymc``; never raises. Leaves JAX untouched
    when the user configured (or disabled) JAX's cache themselves.

    Returns
    -------
    str or None
        The cache directory now in use (possibly the user's own JAX one), or
        None when there is no persistent cache.
    """
    try:
        import jax

        if jax.config.jax_compilation_cache_dir or not jax.config.jax_enable_compilation_cache:
            return compilation_cache_dir()  # the user's own setup
        choice = os.environ.get(ENV_VAR, "").strip()
        if choice.lower() in _OFF:
            return None
        path = os.path.abspath(os.path.expanduser(choice)) if choice else default_dir()
        if not _writable_dir(path):
            return None
        jax.config.update("jax_compilation_cache_dir", path)
        # Only lower JAX's threshold when nobody chose one (env var or config).
        if ("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ
                and jax.config.jax_persistent_cache_min_compile_time_secs == 1.0):
            jax.config.update("jax_persistent_cache_min_compile_time_secs",
                              _MIN_COMPILE_TIME_SECS)
        return path
    except Exception as exc:  # an import must not fail over a cache
        _log.debug("compilation cache off: %s: %s", type(exc).__name__, exc)
        return None


def compilation_cache_dir() -> str | None:
    """The directory of JAX's persistent compilation cache, or None when it is off.

    Compiled samplers are stored there and reused by later processes, so a
    second run of the same model skips compilation. Set
    ``ENERGYMC_COMPILATION_CACHE=0`` before importing energymc to turn it off,
    or ``ENERGYMC_COMPILATION_CACHE=/some/dir`` to choose the directory; a
    directory set for JAX itself (``JAX_COMPILATION_CACHE_DIR``) is left as is.
    Deleting the directory is safe: it only costs recompilation.

    Returns
    -------
    str or None
        The directory JAX reads and writes compiled programs in.

    Examples
    --------
    >>> import energymc as emc
    >>> emc.compilation_cache_dir()  # doctest: +SKIP
    '/home/me/.cache/energymc/jax'
    """
    import jax

    path = jax.config.jax_compilation_cache_dir
    if not path or not jax.config.jax_enable_compilation_cache:
        return None
    return str(path)
