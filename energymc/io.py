"""Saving, loading and checkpointing runs (host code only).

A finished run is saved as netCDF through :mod:`energymc.diagnostics` (:func:`save`,
:func:`load`), the one module that talks to ArviZ.
A running one can be streamed to a checkpoint directory (:class:`Checkpoint`)
chunk by chunk, so that an interrupted run resumes where it stopped and loses
at most the chunk in flight.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from energymc.errors import OptionError

__all__ = ["Checkpoint", "CheckpointError", "checkpoint_location", "load", "read_meta", "save"]


def save(run, path: str | os.PathLike) -> str:
    """Write ``run.to_arviz()`` (a Run) or ArviZ data to a netCDF file.

    The layout (one netCDF group per ArviZ group, run attributes on the root)
    is the same under ArviZ 0.x and 1.x, so either reads the other's files.
    Returns the path written.
    """
    from energymc.diagnostics import to_netcdf

    return to_netcdf(run, os.fspath(path))


def load(path: str | os.PathLike):
    """Read a netCDF file written by :func:`save`.

    Returns an ``arviz.InferenceData`` under ArviZ 0.x, an ``xarray.DataTree``
    under 1.x; both go to :func:`energymc.diagnose` and the plots as they are.
    """
    from energymc.diagnostics import from_netcdf

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    return from_netcdf(path)


# ---------------------------------------------------------------- checkpoints
def _leaves_to_arrays(tree, prefix: str) -> dict[str, np.ndarray]:
    """Leaves of a pytree as numpy arrays named ``{prefix}{i}``; PRNG keys as their data."""
    out = {}
    for i, leaf in enumerate(jax.tree.leaves(tree)):
        if isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            out[f"{prefix}{i}_key"] = np.asarray(jax.random.key_data(leaf))
        else:
            out[f"{prefix}{i}"] = np.asarray(leaf)
    return out


def _arrays_to_tree(arrays, prefix: str, like):
    """Inverse of :func:`_leaves_to_arrays`; ``like`` gives the structure (shapes only)."""
    leaves, treedef = jax.tree.flatten(like)
    restored = []
    for i, ref in enumerate(leaves):
        if f"{prefix}{i}_key" in arrays:
            restored.append(jax.random.wrap_key_data(jnp.asarray(arrays[f"{prefix}{i}_key"])))
            continue
        value = arrays[f"{prefix}{i}"]
        if value.shape != tuple(ref.shape):
            raise OptionError(f"checkpoint leaf {prefix}{i} has shape {value.shape}, expected "
                              f"{tuple(ref.shape)}: it was written by a different run.")
        restored.append(jnp.asarray(value, dtype=ref.dtype))
    return jax.tree.unflatten(treedef, restored)


class CheckpointError(OptionError):
    """A checkpoint directory that cannot be resumed: damaged, or holding another run."""


_FORMAT = 2  # of meta.json; 1 was a flat fingerprint without the energy's program
_META, _STATE, _PREV = "meta.json", "state.npz", "state.prev.npz"


def _write_atomic(path: str, write) -> None:
    """``write(fh)`` into ``path`` so that ``path`` is always either the old or the new file.

    The bytes go to a temporary file, are flushed to disk (``fsync``: a power
    cut after the rename must not leave an empty file), and only then renamed
    over ``path`` (``os.replace`` is atomic). A process killed at any point
    leaves at worst a ``*.tmp`` file, which is ignored and later removed.
    """
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _savez(path: str, arrays: dict) -> None:
    # Plain, uncompressed npz: numeric and unicode arrays only, never pickled objects.
    _write_atomic(path, lambda fh: np.savez(fh, **arrays))


def _read_npz(path: str, what: str) -> dict[str, np.ndarray]:
    """Every array of an npz file (each member's CRC checked), or a :class:`CheckpointError`."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:  # noqa: BLE001 - zipfile, OSError, ValueError, EOFError...
        raise _Damaged(path, what, exc) from exc


class _Damaged(Exception):
    """A file of the checkpoint could not be read (turned into a CheckpointError by load)."""

    def __init__(self, path, what, exc):
        super().__init__(path)
        self.path, self.what, self.exc = path, what, exc

    def reason(self) -> str:
        return f"{type(self.exc).__name__}: {self.exc}"


def read_meta(path: str | os.PathLike) -> dict | None:
    """The ``meta.json`` of a checkpoint directory (``None`` if there is none).

    Keys: ``format``, ``fingerprint`` (what identifies the run, see
    :class:`Checkpoint`), ``command`` (how the ``energymc`` command started it,
    or ``None`` for a run started from Python) and ``versions``.
    """
    meta_path = os.path.join(os.fspath(path), _META)
    if not os.path.exists(meta_path):
        return None
    try:
        with open(meta_path, encoding="utf-8") as fh:
            meta = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(
            f"checkpoint file {meta_path} is damaged ({type(exc).__name__}: {exc}); it records "
            "which run the directory holds, so nothing in it can be trusted to resume. Restore "
            "the file from a backup, or delete the directory (or pass another one) to start anew."
        ) from exc
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        raise CheckpointError(
            f"checkpoint {os.fspath(path)!r} was written by an older energymc whose fingerprint "
            "did not cover the energy's code and data, so it cannot be checked against this run. "
            "Pass another checkpoint directory (or delete this one) to start anew."
        )
    return meta


def _versions() -> dict:
    import blackjax

    from energymc import __version__

    return {"energymc": __version__, "jax": jax.__version__, "blackjax": blackjax.__version__}


class Checkpoint:
    """Stream a run to a directory as it goes, and resume it after an interruption.

    Pass it to :func:`energymc.sample` as ``checkpoint=Checkpoint(path)`` (or
    simply ``checkpoint=path``). After warmup and after every chunk of draws
    the directory receives the new draws and the chains' state; a later call
    of ``sample`` that would produce the same draws finds them and carries on
    from the last completed chunk. Draws are keyed by their index, so a
    resumed run returns exactly the draws of an uninterrupted one; asking a
    resumed run for more ``draws`` than before extends it.

    "Would produce the same draws" is checked, not assumed: the directory
    records a fingerprint of the run (method, options, seed, chains, warmup,
    thin, and hashes of the energy's traced program and gradient, of the
    arrays it closes over, of its parameters and of the starting points), and
    a call whose fingerprint differs gets a :class:`CheckpointError` saying
    what changed.

    Every file is replaced atomically (written aside, flushed, renamed), so a
    process killed at any moment, even with SIGKILL, leaves the last complete
    chunk and its state readable; the state before it is kept too
    (``state.prev.npz``). A damaged file is reported by name with what to do.
    Nothing is pickled: the files are JSON and plain npz.

    Parameters
    ----------
    path
        A directory (created if missing). Files: ``meta.json`` (fingerprint,
        versions, and the command line for runs the ``energymc`` command
        started), ``state.npz`` (chain state, tuned parameters, draws done,
        chunk list), ``state.prev.npz`` (the state one chunk earlier),
        ``draws-<start>.npz`` (positions ``(chains, n, dim)`` and stats
        ``(chains, n)`` of one chunk, written once).
    command
        For the ``energymc`` command line: the JSON-able arguments it was
        started with, stored in ``meta.json`` so that ``energymc resume DIR``
        can continue the run. Not part of the fingerprint.
    """

    def __init__(self, path: str | os.PathLike, *, command: dict | None = None):
        self.path = os.fspath(path)
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise OptionError(f"checkpoint path {self.path!r} is a file; pass a directory.")
        self.command = command
        self._chunks: list[str] = []
        self._fingerprint: dict | None = None

    def __repr__(self) -> str:
        return f"Checkpoint({self.path!r})"

    def _file(self, name: str) -> str:
        return os.path.join(self.path, name)

    # -------------------------------------------------------------- reading
    @property
    def chunks(self) -> list[str]:
        """Names of the chunk files written so far, in draw order."""
        return list(self._chunks)

    def load(self, fingerprint: dict, like, read_draws: bool = True) -> dict | None:
        """The saved progress of this run, or ``None`` if the directory holds none.

        ``like`` is ``(states, params, warmup_trace)`` as shape structures.
        With ``read_draws=False`` every chunk file is still checked, one at a
        time, but ``"chunks"`` comes back empty (the draws stay on disk).
        Raises :class:`CheckpointError` if the directory holds a different
        run or a file of it is damaged (nothing is deleted then).
        """
        from energymc._fingerprint import describe_change

        self._fingerprint = fingerprint
        meta = read_meta(self.path)
        if meta is None or not os.path.exists(self._file(_STATE)):
            return None  # nothing, or a first write that never got past meta.json
        saved = meta["fingerprint"]
        differ = sorted(k for k in set(saved) | set(fingerprint)
                        if saved.get(k) != fingerprint.get(k))
        if differ:
            details = "; ".join(describe_change(k, saved.get(k), fingerprint.get(k))
                                for k in differ)
            raise CheckpointError(
                f"checkpoint {self.path!r} holds a different run: {details}. Its draws would "
                "not be this run's. Pass the same energy and arguments to resume it, or "
                "another checkpoint directory (or delete this one) to start anew."
            )
        try:
            return self._read_progress(like, read_draws)
        except _Damaged as bad:
            raise CheckpointError(self._damage_message(bad)) from bad.exc

    def _read_progress(self, like, read_draws: bool) -> dict:
        arrays = _read_npz(self._file(_STATE), "the chains' state")
        states, params, trace = like
        self._chunks = [str(c) for c in arrays.pop("chunks").tolist()]
        done = int(arrays.pop("done"))
        chunks = []
        for name in self._chunks:
            chunk = _read_npz(self._file(name), "a chunk of draws")
            positions = chunk.pop("positions")
            if read_draws:
                chunks.append((positions, {k[len("stat_"):]: v for k, v in chunk.items()}))
            del chunk, positions
        return {"done": done, "chunks": chunks,
                "states": _arrays_to_tree(arrays, "s", states),
                "params": _arrays_to_tree(arrays, "p", params),
                "warmup_trace": _arrays_to_tree(arrays, "t", trace)}

    def _damage_message(self, bad: _Damaged) -> str:
        head = (f"checkpoint file {bad.path} ({bad.what}) is damaged or truncated "
                f"({bad.reason()}); nothing was changed in {self.path!r}.")
        name = os.path.basename(bad.path)
        if name == _STATE and os.path.exists(self._file(_PREV)):
            try:
                prev = _read_npz(self._file(_PREV), "the previous state")
                return (f"{head} The state one chunk earlier is intact: rename {_PREV} to "
                        f"{_STATE} in that directory and rerun to resume from draw "
                        f"{int(prev['done'])} (the same draws follow), or delete the directory "
                        "to start anew.")
            except _Damaged:
                pass
        if name.startswith("draws-"):
            return (f"{head} Those draws are lost, and the chain state after them cannot be "
                    "checked against them: delete the directory (or pass another) to start "
                    "anew; the same arguments give the same draws again.")
        return f"{head} Delete the directory (or pass another) to start anew."

    # -------------------------------------------------------------- writing
    def start(self, states, params, warmup_trace) -> None:
        """Record a run whose warmup just finished (no draws yet)."""
        os.makedirs(self.path, exist_ok=True)
        for name in os.listdir(self.path):  # leftovers of an unfinished first write
            if name.startswith("draws-") or name.startswith("state"):
                os.remove(self._file(name))
        meta = {"format": _FORMAT, "fingerprint": self._fingerprint, "command": self.command,
                "versions": _versions()}
        _write_atomic(self._file(_META),
                      lambda fh: fh.write(json.dumps(meta, indent=1).encode("utf-8")))
        self._params, self._trace = params, warmup_trace
        self._chunks = []
        self._write_state(0, states)

    def resumed(self, params, warmup_trace) -> None:
        """Continue writing a run that :meth:`load` returned."""
        self._params, self._trace = params, warmup_trace
        for name in os.listdir(self.path):  # temporary files of a write that was killed
            if name.endswith(".tmp"):
                os.remove(self._file(name))

    def append(self, start: int, positions, stats, states) -> None:
        """Write one chunk of draws (starting at draw ``start``) and the state after it.

        The chunk file lands first, then the state that lists it: killed in
        between, the directory still describes the previous chunk, and the
        resumed run writes this chunk again (the same draws).
        """
        name = f"draws-{start:09d}.npz"
        arrays = {"positions": np.asarray(positions)}
        arrays.update({f"stat_{k}": np.asarray(v) for k, v in stats.items()})
        _savez(self._file(name), arrays)
        self._chunks = [c for c in self._chunks if c != name] + [name]
        self._write_state(start + int(np.shape(positions)[1]), states)

    def _write_state(self, done: int, states) -> None:
        arrays: dict[str, Any] = {"done": np.asarray(done), "chunks": np.asarray(self._chunks)}
        arrays.update(_leaves_to_arrays(states, "s"))
        arrays.update(_leaves_to_arrays(self._params, "p"))
        arrays.update(_leaves_to_arrays(self._trace, "t"))
        state = self._file(_STATE)
        if os.path.exists(state):
            # Keep the last good state: if the new one were ever damaged (a disk
            # error, a copy cut short), the run can go back one chunk.
            _write_atomic(self._file(_PREV), lambda fh: _copy_into(state, fh))
        _savez(state, arrays)


def checkpoint_location(checkpoint) -> tuple[str, dict | None]:
    """``(path, command)`` of a ``checkpoint=`` argument: a directory path or a :class:`Checkpoint`.

    The one check behind ``log_partition``'s and the learners'
    ``checkpoint=``; ``command`` is a :class:`Checkpoint`'s CLI arguments, else
    ``None``.

    Raises
    ------
    OptionError
        For anything else, before anything runs.
    """
    if isinstance(checkpoint, Checkpoint):
        return checkpoint.path, checkpoint.command
    if isinstance(checkpoint, (str, os.PathLike)):
        return os.fspath(checkpoint), None
    raise OptionError(f"checkpoint must be a directory path (a str or os.PathLike); got "
                      f"{type(checkpoint).__name__}.")


def _copy_into(src: str, fh) -> None:
    with open(src, "rb") as s:
        shutil.copyfileobj(s, fh)
