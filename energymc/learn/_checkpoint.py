"""Checkpoints of a learner's training loop (host code only).

``learner.run(..., checkpoint=DIR)`` writes, after every compiled chunk of
updates, everything the rest of the run depends on: the whole
:class:`~energymc.learn.LearnState` (parameters, optimiser state, persistent
chains or replay buffer, averaged parameters, the PRNG key), the batch cursor
(the data permutation and the position in it), the number of updates done,
the history so far and the evaluations. The same call in a fresh process
finds them and carries on after the last completed chunk.

The storage *is* :class:`energymc.io.Checkpoint`, used through its public
methods, so the files and their damage rules are the sampling checkpoints':
``meta.json`` (the fingerprint), ``state.npz`` (the state and the list of
chunks) with the copy one chunk older, ``state.prev.npz``, and one
``draws-<update>.npz`` per chunk, which here holds that chunk's history (its
``positions`` entry is empty, ``(1, length, 0)``: only its length counts);
every file written aside, flushed and renamed; nothing pickled. Sharing the
format also means ``emc.sample`` pointed at a learner's directory (or a
learner at a sampler's) finds a fingerprint not its own and refuses it.

Not Orbax: a learner's state is a small pytree of arrays on one host, which
npz stores exactly, and going through io's writer gives the learners the very
atomic-write, damage and no-pickle rules the sampling checkpoints have, with
no extra dependency (``orbax-checkpoint`` brings tensorstore). Orbax's
strength, sharded arrays saved from several hosts, is not needed until the
learners shard their parameters.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from energymc import io as _io
from energymc._fingerprint import array_digest, closed_program_digest, describe_change

__all__ = ["LearnCheckpoint", "fingerprint", "strong_types"]

# Fingerprint digests and the sentence that says what changed.
_WHAT_CHANGED = {
    "energy_sha256": "the energy's program changed (the code of energy_fn, or a constant "
                     "written in it)",
    "energy_data_sha256": "the arrays energy_fn closes over changed",
    "update_sha256": "the update's program changed (the learner's method or options, its "
                     "sampler, or the energy)",
    "optimiser_sha256": "the optimiser changed (its kind or settings, e.g. the learning rate)",
    "data_sha256": "the training data changed",
    "init_sha256": "the initial state changed (init_params, init_state or the seed)",
}


def _option(value):
    """A learner attribute as a JSON value that reads back equal to itself."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return repr(value)  # NaN != NaN would report a change that is none
    if isinstance(value, (tuple, list)) and all(
            v is None or isinstance(v, (bool, int, str, float)) for v in value):
        return [_option(v) for v in value]
    if isinstance(value, (np.ndarray, jax.Array)):
        return "sha256:" + array_digest(value)
    # Callables and objects (a sampler function, a noise distribution) count
    # through the update's program; here only their kind.
    return type(value).__name__


def fingerprint(learner, state, data, *, key, num_steps: int, batch_size: int,
                restarts: int, eval_every: int | None) -> dict:
    """What identifies a training run: a JSON-able dict.

    The programs are traced (``jax.make_jaxpr``, no compilation) and hashed
    as text with their constants, as :mod:`energymc._fingerprint` does for
    sampling: the energy alone on one data point, one optimiser step, and one
    whole update (loss, sampler, optimiser). ``state`` is the initial
    :class:`LearnState` (with a leading restart axis when ``restarts > 1``).
    """
    one = state if restarts == 1 else jax.tree.map(lambda a: a[0], state)
    internal = learner.optim.get_params(one.optim_state)
    x0, batch = data[0], data[:batch_size]
    extra = learner._extra_args_for_check()
    try:
        energy = jax.make_jaxpr(lambda p, x: learner._spec.energy(p, x, *extra))(internal, x0)
        energy_sha256 = closed_program_digest(energy)
        energy_data_sha256 = array_digest(list(energy.consts))
    except Exception:  # noqa: BLE001
        # Rows that are not energy points (JEM packs the label into each row):
        # the whole update's program below still covers the energy.
        energy_sha256 = energy_data_sha256 = "not traced alone"
    grads = jax.tree.map(jnp.zeros_like, internal)
    optimiser = jax.make_jaxpr(learner.optim.update)(grads, one.optim_state)
    update = jax.make_jaxpr(learner._update)(one, batch)
    options = {k: _option(v) for k, v in sorted(vars(learner).items())
               if not k.startswith("_") and k not in ("energy_fn", "optim")}
    return {
        "job": f"learn:{type(learner).__name__}",
        "options": options,
        "optimiser": type(learner.optim).__name__,
        "seed": np.asarray(jax.random.key_data(key)).tolist(),
        "num_steps": num_steps, "batch_size": batch_size, "restarts": restarts,
        "eval_every": eval_every,
        "energy_sha256": energy_sha256,
        "energy_data_sha256": energy_data_sha256,
        "optimiser_sha256": closed_program_digest(optimiser),
        "update_sha256": closed_program_digest(update),
        "data_sha256": array_digest(data),
        "init_sha256": array_digest(state),
    }


def strong_types(tree):
    """``tree`` with weakly typed leaves (``jnp.asarray(0)``) made strongly typed.

    Arrays read back from a file are strongly typed; a weakly typed leaf in
    the state of a fresh run would make the resumed run a different program
    (a second compilation, and in principle other type promotions). A
    checkpointed run therefore starts strongly typed too.
    """
    return jax.tree.map(lambda a: jnp.asarray(a, dtype=a.dtype)
                        if getattr(a, "weak_type", False) else a, tree)


def _describe(key: str, saved, now) -> str:
    if key in _WHAT_CHANGED:
        return f"{_WHAT_CHANGED[key]} [{key}: saved {str(saved)[:12]}..., now {str(now)[:12]}...]"
    if key == "options" and isinstance(saved, dict) and isinstance(now, dict):
        return "; ".join(f"option {k}: saved {saved.get(k)!r}, now {now.get(k)!r}"
                         for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k))
    return describe_change(key, saved, now)


class LearnCheckpoint:
    """A directory holding one training run's progress, stored by :class:`energymc.io.Checkpoint`.

    Parameters
    ----------
    path
        A directory, created if missing.
    """

    def __init__(self, path: str | os.PathLike):
        self._store = _io.Checkpoint(path)  # checks that the path is not a file
        self.path = self._store.path

    @classmethod
    def coerce(cls, checkpoint) -> LearnCheckpoint | None:
        """``None``, or a checkpoint from a path or an :class:`energymc.io.Checkpoint`."""
        if checkpoint is None or isinstance(checkpoint, cls):
            return checkpoint
        path, _ = _io.checkpoint_location(checkpoint)
        return cls(path)

    def __repr__(self) -> str:
        return f"LearnCheckpoint({self.path!r})"

    def open(self, fp: dict, state, cursor) -> dict | None:
        """The saved progress of this run, or ``None`` (a fresh directory is started).

        ``state`` and ``cursor`` are the run's initial ones (for their
        structure and shapes). Returns ``{"done", "state", "cursor",
        "history", "evals", "eval_steps"}``. Raises
        :class:`energymc.io.CheckpointError` when the directory holds a
        different job or a damaged file; nothing is changed in it then.
        """
        meta = _io.read_meta(self.path)  # a damaged meta.json is reported here
        if meta is not None and os.path.exists(os.path.join(self.path, "state.npz")):
            # Checked here first, for a message in a learner's terms.
            saved = meta.get("fingerprint") or {}
            differ = sorted(k for k in set(saved) | set(fp) if saved.get(k) != fp.get(k))
            if differ:
                what = (f"the training run {saved['job']!r}" if "job" in saved
                        else "a sampling run")
                details = "; ".join(_describe(k, saved.get(k), fp.get(k)) for k in differ)
                raise _io.CheckpointError(
                    f"checkpoint {self.path!r} holds a different job ({what}): {details}. "
                    "Resuming it would not give this run's result. Pass the same learner, "
                    "data and arguments to resume it, or another checkpoint directory (or "
                    "delete this one) to start anew.")
        progress = self._store.load(fp, ((state, cursor), None, None))
        if progress is None:
            self._store.start((state, cursor), None, None)
            return None
        self._store.resumed(None, None)
        history, evals, eval_steps = [], [], []
        for _, stats in progress["chunks"]:
            if "eval" in stats:
                evals.append([float(v) for v in stats.pop("eval")])
                eval_steps.append(int(stats.pop("eval_step")))
            history.append(stats)
        state, cursor = progress["states"]
        return {"done": progress["done"], "state": state, "cursor": cursor,
                "history": history, "evals": evals, "eval_steps": eval_steps}

    def save(self, start: int, history: dict, state, cursor, evaluation=None) -> None:
        """Record one chunk: its ``history`` (entries with steps first, from update
        ``start``), the state and cursor after it, and the evaluation made after
        it, ``(step, values per restart)`` or ``None``."""
        length = len(next(iter(history.values())))
        stats = dict(history)
        if evaluation is not None:
            stats["eval_step"] = np.asarray(evaluation[0])
            stats["eval"] = np.asarray(evaluation[1], dtype=float)
        self._store.append(start, np.zeros((1, length, 0), np.float32), stats, (state, cursor))
