"""Checkpoints of a ``log_partition`` call: one entry per finished replicate, one for the check.

``log_partition(..., checkpoint=DIR)`` writes each replicate's estimate as
soon as that replicate finishes, and after the last one an end entry holding
the mode check's result (or none, with ``checks=False``). The same call in a
fresh process finds them, reruns nothing that was saved, and carries on with
the next replicate: replicate ``r`` always runs on ``fold_in(key, r)``, so
the resumed result equals the uninterrupted one exactly. A replicate killed
mid-run is run again from its start (the unit of work is one compiled run;
see docs/long-runs.md for why not a stage).

The storage *is* :class:`energymc.io.Checkpoint`, used through its public
methods as the learners' checkpoints use it, so the files and their rules
are the sampling checkpoints': ``meta.json`` (the fingerprint),
``state.npz`` with ``state.prev.npz``, and one ``draws-<r>.npz`` per entry,
whose ``positions`` are empty ``(1, 1, 0)`` and whose stats hold the entry:
its arrays, and the rest as JSON text (a unicode array). Every file is
written aside, flushed and renamed; nothing is pickled.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import numpy as np

from energymc import io as _io
from energymc._fingerprint import array_digest, program_digests
from energymc.errors import OptionError
from energymc.logz._method import Estimate

__all__ = ["LogZCheckpoint", "fingerprint"]


def _value(v):
    """An option as a JSON value that reads back equal to itself (arrays by digest)."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return repr(v)  # NaN != NaN would report a change that is none
    if isinstance(v, np.generic):
        return _value(v.item())
    if isinstance(v, dict):
        return {str(k): _value(x) for k, x in sorted(v.items(), key=lambda kv: str(kv[0]))}
    if isinstance(v, (tuple, list)) and all(
            x is None or isinstance(x, (bool, int, str, float)) for x in v):
        return [_value(x) for x in v]
    return "sha256:" + array_digest(v)


def fingerprint(target, method: str, ref, key, options: dict, *, replicates, budget,
                checks: bool, devices: int) -> dict:
    """What identifies a ``log_partition`` call: a JSON-able dict.

    The energy counts by its traced program, the data it closes over and its
    parameters (:func:`energymc._fingerprint.program_digests`) and its init;
    the reference ``q0`` by its arrays (a pilot-fitted base by the fit), a
    model's :class:`AnnealingPath` by its name and parameters; each option
    under its own key (``option:particles``), so a changed one is named.
    """
    from energymc.logz._path import AnnealingPath

    base = ref.params if isinstance(ref, AnnealingPath) else ref
    fp = {"job": "logz", "target": str(getattr(target, "name", "?")), "method": method,
          "seed": np.asarray(jax.random.key_data(key)).tolist(),
          "replicates": replicates, "budget": _value(budget), "checks": bool(checks),
          "devices": int(devices), "base": repr(ref), "base_sha256": array_digest(base),
          "init_sha256": array_digest(target.flat_init), **program_digests(target)}
    fp.update({f"option:{k}": _value(v) for k, v in options.items()})
    return fp


# ------------------------------------------------------------------ encoding
def _encode(v, arrays: dict) -> Any:
    """``v`` as JSON, its arrays moved into ``arrays`` (named by position)."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, np.generic):
        name = f"a{len(arrays)}"
        arrays[name] = np.asarray(v)
        return {"scalar": name}
    if isinstance(v, (np.ndarray, jax.Array)):
        name = f"a{len(arrays)}"
        arrays[name] = np.asarray(v)
        return {"array": name}
    if isinstance(v, dict):
        return {"dict": [[str(k), _encode(x, arrays)] for k, x in v.items()]}
    if isinstance(v, tuple):
        return {"tuple": [_encode(x, arrays) for x in v]}
    if isinstance(v, list):
        return [_encode(x, arrays) for x in v]
    raise TypeError(f"cannot checkpoint a {type(v).__name__} in a log Z estimate")


def _decode(v, arrays: dict) -> Any:
    if isinstance(v, list):
        return [_decode(x, arrays) for x in v]
    if not isinstance(v, dict):
        return v
    if "scalar" in v:
        return arrays[v["scalar"]][()]
    if "array" in v:
        return arrays[v["array"]]
    if "tuple" in v:
        return tuple(_decode(x, arrays) for x in v["tuple"])
    return {k: _decode(x, arrays) for k, x in v["dict"]}


def _entry(kind: str, content) -> dict:
    arrays: dict[str, np.ndarray] = {}
    text = json.dumps({"kind": kind, "content": _encode(content, arrays)})
    return {"json": np.asarray(text), **{f"x_{k}": a for k, a in arrays.items()}}


def _read_entry(stats: dict) -> tuple[str, Any]:
    doc = json.loads(str(stats["json"]))
    arrays = {k[len("x_"):]: v for k, v in stats.items() if k.startswith("x_")}
    return doc["kind"], _decode(doc["content"], arrays)


class LogZCheckpoint:
    """A directory holding one ``log_partition`` call's finished replicates and check.

    Parameters
    ----------
    path
        A directory, created if missing.
    command
        For the ``energymc logz`` command: its arguments, so that
        ``energymc resume DIR`` can continue it. Not part of the fingerprint.
    """

    def __init__(self, path: str | os.PathLike, *, command: dict | None = None):
        self._store = _io.Checkpoint(path, command=command)  # checks the path is not a file
        self.path = self._store.path
        self._done = 0

    @classmethod
    def coerce(cls, checkpoint) -> LogZCheckpoint | None:
        """``None``, or a checkpoint from a path or an :class:`energymc.io.Checkpoint`."""
        if checkpoint is None or isinstance(checkpoint, cls):
            return checkpoint
        if isinstance(checkpoint, _io.Checkpoint):
            return cls(checkpoint.path, command=checkpoint.command)
        if isinstance(checkpoint, (str, os.PathLike)):
            return cls(checkpoint)
        raise OptionError(f"checkpoint must be a directory path (a str or os.PathLike); got "
                          f"{type(checkpoint).__name__}.")

    def __repr__(self) -> str:
        return f"LogZCheckpoint({self.path!r})"

    def open(self, fp: dict) -> tuple[list[Estimate], dict | None]:
        """The replicates saved so far and, once they are final, the end entry.

        Returns ``(estimates, end)``: ``end`` is ``None`` while replicates may
        follow, else ``{"check": ...}`` (the mode check's saved result, or
        ``None``). Raises :class:`energymc.io.CheckpointError` when the
        directory holds another run or a damaged file; nothing is changed then.
        """
        progress = self._store.load(fp, ((), None, None))
        if progress is None:
            self._store.start((), None, None)
            return [], None
        self._store.resumed(None, None)
        estimates, end = [], None
        for _, stats in progress["chunks"]:
            kind, content = _read_entry(stats)
            if kind == "replicate":
                estimates.append(Estimate(**content))
            else:
                end = content
        self._done = int(progress["done"])
        return estimates, end

    def _append(self, kind: str, content) -> None:
        self._store.append(self._done, np.zeros((1, 1, 0), np.float32), _entry(kind, content),
                           ())
        self._done += 1

    def save_replicate(self, est: Estimate) -> None:
        """Record a finished replicate (the next one in order)."""
        self._append("replicate", est._asdict())

    def save_end(self, check: dict | None) -> None:
        """Record that the replicates are final, with the mode check's result (or ``None``)."""
        self._append("end", {"check": check})
