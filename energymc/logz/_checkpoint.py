"""Checkpoints of a ``log_partition`` call: one entry per finished replicate, one for the check.

``log_partition(..., checkpoint=DIR)`` writes each replicate's estimate as
soon as that replicate finishes, and after the last one an end entry holding
the mode check's result (or none, with ``checks=False``). The same call in a
fresh process finds them, reruns nothing that was saved, and carries on with
the next replicate: replicate ``r`` always runs on ``fold_in(key, r)``, so
the resumed result equals the uninterrupted one exactly.

The replicate in flight is saved too, stage by stage: with a checkpoint, AIS,
SMC and PT (its warmup, then its rounds) run their compiled stage loops from
the host in chunks (:class:`StageSaver`), each about :data:`SAVE_EVERY_S`
seconds long, and after each chunk writes the loop's carry (particles, log
weights, kernel parameters, stage record, counters) to a subdirectory
``replicate-<r>/``, itself an :class:`energymc.io.Checkpoint` whose
``state.npz`` holds the carry. A killed replicate resumes from its last
chunk; each stage draws from its own key whatever chunk it falls in, so the
result is the uninterrupted one. A later loop of the same replicate (PT's
rounds after its warmup, BDMC's reverse run) and an :func:`energymc.sample`
run inside it (BDMC's ``reverse_start="mcmc"``) keep their own
subdirectory of ``replicate-<r>/``. PT's per-round records (chains x rounds x
(dim + 3 x replicas) numbers) are not rewritten at every save: each chunk's
rounds go to a ``draws-<start>.npz`` of their own, written once. The
subdirectory goes once the replicate's estimate is saved.

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
import shutil
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from energymc import io as _io
from energymc._fingerprint import array_digest, program_digests
from energymc.errors import OptionError
from energymc.logz._method import Estimate

__all__ = ["LogZCheckpoint", "SAVE_EVERY_S", "StageSaver", "fingerprint"]

# How long a chunk of stages runs between two saves of the replicate in flight:
# a kill loses at most this much work (plus the chunk's save, a few ms for
# thousands of particles), and 30 s of stages against one small npz write per
# chunk keeps the cost of saving well under 1% of the run.
SAVE_EVERY_S = 30.0
# ...and at least this many times as long as one save of the carry.
_SAVE_SHARE = 100.0


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
    save_every
        Seconds of stages between two saves of the replicate in flight
        (:data:`SAVE_EVERY_S`; ``0`` saves after every stage). It changes no
        number of the estimate, so it is not part of the fingerprint.
    """

    def __init__(self, path: str | os.PathLike, *, command: dict | None = None,
                 save_every: float = SAVE_EVERY_S):
        self._store = _io.Checkpoint(path, command=command)  # checks the path is not a file
        self.path = self._store.path
        if not (isinstance(save_every, (int, float)) and save_every >= 0):
            raise OptionError(f"save_every= must be a number of seconds >= 0; got {save_every!r}.")
        self.save_every = float(save_every)
        self._done = 0
        self._fp: dict | None = None
        self.resumed_stages = 0  # stages of replicates in flight read back by this call

    @classmethod
    def coerce(cls, checkpoint) -> LogZCheckpoint | None:
        """``None``, or a checkpoint from a path or an :class:`energymc.io.Checkpoint`."""
        if checkpoint is None or isinstance(checkpoint, cls):
            return checkpoint
        path, command = _io.checkpoint_location(checkpoint)
        return cls(path, command=command)

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
        self._fp = fp
        if progress is None:
            self._store.start((), None, None)
            self._drop_in_flight(0)  # an older run's replicate in flight
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
        # Replicates saved whole, whose in-flight directory a kill left behind.
        self._drop_in_flight(len(estimates), below=True)
        return estimates, end

    def _in_flight_dir(self, r: int | str) -> str:
        # r: a replicate's index, or "pilot" (work its plan shares, SMC's pilot run).
        return os.path.join(self.path, f"replicate-{r:06d}" if isinstance(r, int)
                            else f"replicate-{r}")

    def _drop_in_flight(self, r: int, below: bool = False) -> None:
        """Remove in-flight directories: every one, or (``below``) those of replicates < ``r``."""
        for name in sorted(os.listdir(self.path)):
            if name.startswith("replicate-") and os.path.isdir(os.path.join(self.path, name)):
                index = name[len("replicate-"):]
                if not below or (index.isdigit() and int(index) < r):
                    shutil.rmtree(os.path.join(self.path, name))

    def stages(self, r: int | str) -> StageSaver:
        """The saver of replicate ``r``'s stages while it runs (after :meth:`open`).

        ``r="pilot"``: the stages of the work the replicates share, done once
        before them (SMC's ``schedule="pilot"`` run); its directory is kept
        until the call ends, so a call resumed after some replicates replays
        only the pilot's last chunk.
        """
        return StageSaver(self, r)

    def _append(self, kind: str, content) -> None:
        self._store.append(self._done, np.zeros((1, 1, 0), np.float32), _entry(kind, content),
                           ())
        self._done += 1

    def save_replicate(self, est: Estimate, r: int | None = None) -> None:
        """Record a finished replicate (the next one in order, ``r``), then drop
        its in-flight directory (a kill in between leaves it; :meth:`open` drops it)."""
        self._append("replicate", est._asdict())
        if r is not None and os.path.isdir(self._in_flight_dir(r)):
            shutil.rmtree(self._in_flight_dir(r))

    def save_end(self, check: dict | None) -> None:
        """Record that the replicates are final, with the mode check's result (or ``None``)."""
        self._append("end", {"check": check})
        if os.path.isdir(self._in_flight_dir("pilot")):
            shutil.rmtree(self._in_flight_dir("pilot"))


def _like(saved, fresh):
    """A carry leaf read back, typed and placed like the fresh one."""
    if not isinstance(fresh, jax.Array):
        return saved
    if getattr(fresh, "weak_type", False) and fresh.ndim == 0:
        # A loop counter made from a Python number: weakly typed, as the
        # compiled chunk expects (a strongly typed one would recompile it).
        saved = jax.numpy.asarray(np.asarray(saved).item())
    # Back on the devices the fresh carry is on (particles split by devices=).
    return jax.device_put(saved, fresh.sharding)


class StageSaver:
    """Runs one replicate's compiled stage loop in chunks, saving its carry after each.

    The method hands :meth:`run` its loop's start carry and a compiled
    ``chunk(carry, stop) -> carry`` that runs stages up to ``stop`` (or the
    loop's own end); the carry's ``position(carry)`` is the next stage's index.
    The first chunk is one stage (it also compiles); each next one is sized
    from the last one's speed to last about ``save_every`` seconds, and at
    least 100 times as long as the last save took (at most 4 times the
    stages of the one before). Built by :meth:`LogZCheckpoint.stages`.

    A carry may hold a record that grows by one row per stage (``rows=k``:
    element ``k`` of the carry, every leaf ``(chains, stages, ...)``, PT's
    draws). Rewriting it whole at every save would cost the whole record each
    time; instead each chunk's new rows go to their own ``draws-<start>.npz``
    (written once, :meth:`energymc.io.Checkpoint.append`) and ``state.npz``
    holds the rest of the carry. A damaged chunk file is reported by name and
    nothing is changed; ``state.prev.npz`` (the state before the last chunk)
    does not list the last chunk file.
    """

    def __init__(self, owner: LogZCheckpoint, r: int | str, phase: str | None = None):
        self._owner, self.replicate, self._phase = owner, r, phase
        path = owner._in_flight_dir(r)
        self._fp = {**owner._fp, "replicate_in_flight": r}
        if phase is not None:
            # A later loop of the same replicate (BDMC's reverse run), in a
            # directory inside the replicate's, dropped with it.
            path = os.path.join(path, phase)
            self._fp["phase"] = phase
        self._store = _io.Checkpoint(path)
        self._started = False

    def phase(self, name: str) -> StageSaver:
        """The saver of another stage loop of the same replicate (BDMC's reverse run
        after the forward one, PT's warmup before its rounds), in subdirectory ``name``."""
        return StageSaver(self._owner, self.replicate, name)

    def directory(self, name: str) -> str:
        """A subdirectory ``name`` of the replicate's in-flight directory, dropped with it:
        for a run of the replicate kept by its own checkpoint (BDMC's ``reverse_start="mcmc"``
        draws, an :func:`energymc.sample` run with ``checkpoint=`` this path)."""
        return os.path.join(self._owner._in_flight_dir(self.replicate), name)

    def run(self, carry, chunk: Callable, position: Callable = lambda c: c[0],
            rows: int | None = None):
        """The loop's final carry: from the saved carry if there is one, else from ``carry``.

        ``rows``: index of the carry element appended chunk by chunk (see the
        class), or ``None`` (the whole carry is saved each time).
        """
        self._rows = rows
        carry = self._restore(carry)
        i, n = int(position(carry)), 1
        while True:
            t = time.perf_counter()
            new = chunk(carry, i + n)
            j = int(position(new))  # waits for the chunk
            seconds = time.perf_counter() - t
            if j < i + n:  # the loop ended on its own
                if j > i:
                    # Its last stages saved too: a kill before the caller saves
                    # the replicate (or during a later loop of it, such as PT's
                    # rounds after its warmup) redoes none of them.
                    self._save(new, i, j)
                return new
            t = time.perf_counter()
            self._save(new, i, j)
            # A chunk lasts save_every seconds, and at least 100 times as long
            # as its save: a large carry costs at most ~1%.
            # save_every=0 asks for a save after every stage (tests, debugging).
            every = self._owner.save_every and max(self._owner.save_every,
                                                   _SAVE_SHARE * (time.perf_counter() - t))
            carry, i = new, j
            n = max(1, min(4 * n, int(n * every / max(seconds, 1e-6))))

    def _what(self) -> str:
        what = "the pilot run" if self.replicate == "pilot" else f"replicate {self.replicate}"
        return what if self._phase is None else f"{what}'s {self._phase} run"

    def _split(self, carry):
        """``(carry without its appended record, the record or None)``."""
        if self._rows is None:
            return carry, None
        k = self._rows
        return (*carry[:k], None, *carry[k + 1:]), carry[k]

    def _restore(self, carry):
        like, record = self._split(carry)
        try:
            progress = self._store.load(self._fp, (like, None, None),
                                        read_draws=record is not None)
        except _io.CheckpointError as exc:
            raise _io.CheckpointError(
                f"{exc} (It holds {self._what()}'s stages in flight: deleting "
                f"{self._store.path!r} alone keeps the finished replicates and runs that one "
                "again from its start; if the damaged file is its last draws-*.npz, renaming "
                "state.prev.npz to state.npz there resumes it one chunk earlier.)") from exc
        if progress is None:
            return carry
        self._store.resumed(None, None)
        self._started = True
        restored = progress["states"]
        if record is not None:
            restored = (*restored[:self._rows], self._record(record, progress),
                        *restored[self._rows + 1:])
        restored = jax.tree.map(_like, restored, carry)
        self._owner.resumed_stages += int(np.asarray(restored[0]))
        return restored

    def _record(self, fresh, progress):
        """The appended record read back: the fresh (empty) one with the saved rows filled in."""
        leaves, treedef = jax.tree.flatten(fresh)
        out = [np.array(leaf) for leaf in leaves]
        at = 0
        for _, stats in progress["chunks"]:
            n = 0
            for k, leaf in enumerate(out):
                block = stats[f"r{k}"]
                n = block.shape[1]
                leaf[:, at:at + n] = block
            at += n
        if at != int(progress["done"]):
            raise _io.CheckpointError(
                f"checkpoint {self._store.path!r} lists chunks of {at} stages but its state is "
                f"at stage {int(progress['done'])}; delete that directory to run replicate "
                f"{self.replicate} again from its start.")
        return jax.tree.unflatten(treedef, out)

    def _save(self, carry, i: int, j: int) -> None:
        # On the host (PRNG keys stay keys: the writer stores their data).
        small, record = self._split(carry)
        small = jax.tree.map(lambda a: a if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key)
                             else np.asarray(a), small)
        if not self._started:
            self._store.start(small, None, None)
            self._started = True
        if record is None:
            # One small entry rewritten in place; state.npz (the carry) is what counts.
            self._store.append(0, np.zeros((1, 1, 0), np.float32), {}, small)
            return
        # Only the rows of stages i..j-1 leave the devices, into a file of their own.
        stats = {f"r{k}": np.asarray(leaf[:, i:j])
                 for k, leaf in enumerate(jax.tree.leaves(record))}
        self._store.append(i, np.zeros((1, j - i, 0), np.float32), stats, small)
