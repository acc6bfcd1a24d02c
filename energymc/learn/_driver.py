"""The one training loop of every learner: compiled chunks of pure updates over
minibatches, restarts side by side, evaluation, progress and checkpoints.

A learner gives the loop one pure function, ``update(state, batch) -> (state,
stats)`` (hashable: the bound method of a learner that is never changed after
it was set up), as Optax gives its transforms to a user's loop and NumPyro's
``SVI`` drives a loss. Everything here that runs under ``jit``
(:func:`chunk`) is pure; :func:`train` is host code that calls
the compiled chunks, the progress meter, ``eval_fn`` and the checkpoint
between them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from energymc._threefry import unrolled_threefry
from energymc._util import chunk_lengths
from energymc.io import CheckpointError
from energymc.learn._checkpoint import fingerprint, strong_types
from energymc.learn._devices import spread_update

__all__ = ["Job", "Trained", "chunk", "chunk_plan", "compiled_chunk", "first_cursor",
           "loop_slows", "scan", "train"]


# ---------------------------------------------------------------------------
# Pure: traced inside the compiled chunks.
# ---------------------------------------------------------------------------
def scan(body: Callable, carry, xs=None, *, length: int | None = None, unroll: bool = False):
    """``jax.lax.scan(body, carry, xs, length)``, or, with ``unroll=True``, the same
    steps written out one after the other with no loop in the compiled program.

    Not ``lax.scan(..., unroll=True)``: that can still leave a one-trip
    ``while`` (it did for ``length=1``), and XLA:CPU lays out and runs the
    convolutions inside any ``while`` body about ten times slower
    (``benchmarks/RESULTS.md``). Partial unrolling keeps the loop and the
    slowness, hence a bool.
    """
    if not unroll:
        return jax.lax.scan(body, carry, xs, length=length)
    n = length if xs is None else jax.tree.leaves(xs)[0].shape[0]
    outs = []
    for i in range(n):
        carry, out = body(carry, None if xs is None else jax.tree.map(lambda a, i=i: a[i], xs))
        outs.append(out)
    return carry, jax.tree.map(lambda *a: jnp.stack(a), *outs)


def loop_slows(fn: Callable, *args) -> bool:
    """Whether ``fn(*args)`` would run much slower inside a compiled loop: on
    the CPU backend, when it contains a convolution (see :func:`scan`).

    Host code: traces ``fn`` once on the shapes of ``args`` (pytrees of arrays).
    """
    if jax.default_backend() != "cpu":
        return False
    shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)), args)
    return "conv_general_dilated" in str(jax.make_jaxpr(fn)(*shapes))


def first_cursor(n: int, batch_size: int, restarts: int):
    """The batch cursor before the first update: an exhausted permutation."""
    if batch_size >= n:
        return None
    perm = jnp.arange(n)
    if restarts > 1:
        perm = jnp.broadcast_to(perm, (restarts, n))
    return perm, jnp.asarray(n)


def chunk(update: Callable, state, data, cursor, *, num_steps: int, batch_size: int,
          restarts: bool = False, mesh=None, unroll: bool = False):
    """``num_steps`` updates on minibatches of ``data`` ``(n, *event)`` in one ``lax.scan``.

    ``unroll=True`` writes the updates out without a loop (:func:`scan`;
    meant for ``num_steps=1``, see :func:`train`).

    With a ``mesh`` (several devices), each update's batch points and negative
    chains are split over it (:func:`energymc.learn._devices.spread_update`,
    the one place of the loop that decides placement).

    Returns ``(state, cursor, stats)``, ``stats`` with a leading steps axis
    (then a restart axis with ``restarts``).
    """
    # With restarts the state has a leading restart axis and every restart
    # takes its own update; the batch schedule (where in the permutation, when
    # to redraw it) is shared, so that redrawing stays a cond rather than a
    # select that would permute every update.
    n = data.shape[0]

    if restarts:
        step = jax.vmap(update, in_axes=(0, None if batch_size >= n else 0))
        per_restart = jax.vmap
    else:
        step, per_restart = update, (lambda f: f)
    step = spread_update(step, mesh, restarts=restarts, batched=batch_size < n)
    if batch_size >= n:
        state, info = scan(lambda s, _: step(s, data), state, length=num_steps, unroll=unroll)
        return state, cursor, info

    # Batches are consecutive slices of a random permutation, redrawn when it
    # runs out (epochs). The permutation and the position in it pass from
    # chunk to chunk (``cursor``), so that how the loop is cut into chunks --
    # by the progress bar or eval_every -- never changes the result. Not
    # random.choice(replace=False) per step: that permutes all n points every
    # update, which cost ten times the update itself for n = 5000.
    def split(key):
        key, sub = jax.random.split(key)
        return key, sub

    def permutation(key):
        return jax.random.permutation(key, n)

    def body(carry, _):
        state, perm, pos = carry
        key, sub = per_restart(split)(state.key)
        fresh = pos + batch_size > n
        perm = jax.lax.cond(fresh, lambda: per_restart(permutation)(sub), lambda: perm)
        pos = jnp.where(fresh, 0, pos)

        def take(p):
            return data[jax.lax.dynamic_slice(p, (pos,), (batch_size,))]

        batch = per_restart(take)(perm)
        state, info = step(state._replace(key=key), batch)
        return (state, perm, pos + batch_size), info

    (state, perm, pos), info = scan(body, (state, *cursor), length=num_steps, unroll=unroll)
    return state, (perm, pos), info


def compiled_chunk():
    """:func:`chunk` under ``jax.jit``, with a compilation cache of its own (one per learner).

    ``update`` is a static argument: a second run with the same set-up reuses
    the compiled chunk, and a learner set up anew on other data (another
    ``update``) gets its own.
    """
    def run_chunk(state, data, cursor, *, update, num_steps, batch_size, restarts, mesh=None,
                  unroll=False):
        return chunk(update, state, data, cursor, num_steps=num_steps, batch_size=batch_size,
                     restarts=restarts, mesh=mesh, unroll=unroll)

    return jax.jit(run_chunk, static_argnames=("update", "num_steps", "batch_size", "restarts",
                                               "mesh", "unroll"))


# ---------------------------------------------------------------------------
# Host: the loop over compiled chunks.
# ---------------------------------------------------------------------------
def chunk_plan(num_steps: int, eval_every: int | None, chunked: bool) -> list[int]:
    """The lengths of the compiled chunks: cut at every evaluation, else by ``chunk_lengths``.

    A checkpoint saves between chunks, so it needs chunks, bar or no bar; and
    their lengths depend on ``num_steps`` alone, so that a resumed run runs
    the very chunks an uninterrupted one would.
    """
    if eval_every is None:
        return chunk_lengths(num_steps, chunked=chunked)
    lengths = [eval_every] * (num_steps // eval_every)
    if num_steps % eval_every:
        lengths.append(num_steps % eval_every)
    return lengths


@dataclass
class Job:
    """What one call of ``run`` fixed before its loop.

    Attributes
    ----------
    learner
        The set-up learner whose ``_update`` is driven and whose
        ``get_params`` gives user-form parameters (never changed by the loop).
    data
        ``(n, *event)`` training points.
    key
        The run's seed key (for the checkpoint's fingerprint).
    num_steps, batch_size, restarts
        As passed to ``run`` (checked).
    eval_every, eval_fn
        Both ``None``, or an evaluation every ``eval_every`` updates.
    checkpoint
        A :class:`~energymc.learn._checkpoint.LearnCheckpoint` or ``None``.
    mesh
        The devices batches and negative chains are split over
        (:func:`energymc.learn._devices.learner_mesh`), or ``None``.
    """

    learner: Any
    data: jax.Array
    key: jax.Array
    num_steps: int
    batch_size: int
    restarts: int
    eval_every: int | None = None
    eval_fn: Callable | None = None
    checkpoint: Any = None
    mesh: Any = None


@dataclass
class Trained:
    """What :func:`train` hands back: the final state, the history (entries
    ``(num_steps,)``, or ``(restarts, num_steps)``), evaluations and timing."""

    state: Any
    history: dict
    timing: dict


def each(state, restarts: int) -> list:
    """The state of every restart (one state without restarts)."""
    if restarts == 1:
        return [state]
    return [jax.tree.map(lambda a, r=r: a[r], state) for r in range(restarts)]


def _resume(job: Job, state, cursor, lengths: list[int]):
    """Open the checkpoint: ``(state, cursor, lengths left, progress so far)``."""
    state, cursor = strong_types((state, cursor))
    fp = fingerprint(job.learner, state, job.data, key=job.key, num_steps=job.num_steps,
                     batch_size=job.batch_size, restarts=job.restarts, eval_every=job.eval_every)
    saved = job.checkpoint.open(fp, state, cursor)
    if saved is None:
        return state, cursor, lengths, {"done": 0, "infos": [], "evals": [], "eval_steps": []}
    done = saved["done"]
    bounds = np.cumsum([0, *lengths]).tolist()
    if done not in bounds:
        raise CheckpointError(
            f"checkpoint {job.checkpoint.path!r} records {done} updates done, which is not "
            "the end of a chunk of this run: it was written by another version "
            "of energymc. Delete the directory (or pass another) to start anew.")
    return saved["state"], saved["cursor"], lengths[bounds.index(done):], {
        "done": done, "infos": saved["history"], "evals": saved["evals"],
        "eval_steps": saved["eval_steps"]}


def _after_chunk(job: Job, progress: dict, state, cursor, info, length: int, meter) -> None:
    """Record one chunk: its history, an evaluation when due, the checkpoint, progress."""
    progress["done"] += length
    done, evals = progress["done"], progress["evals"]
    progress["infos"].append(info)
    n_evals = len(evals)
    # With eval_every > num_steps no multiple is reached: evaluate once after
    # the last update rather than record nothing.
    if job.eval_fn is not None and (done % job.eval_every == 0
                                    or (done == job.num_steps and not evals)):
        evals.append([float(job.eval_fn(job.learner.get_params(s)))
                      for s in each(state, job.restarts)])
        progress["eval_steps"].append(done)
    if job.checkpoint is not None:
        job.checkpoint.save(done - length, info, state, cursor,
                            (done, evals[-1]) if len(evals) > n_evals else None)
    if meter.active:
        # The latest update's loss (the mean over restarts).
        post = {"loss": f"{float(np.mean(info['loss'][-1])):.4g}"}
        if evals:
            post["eval"] = f"{max(evals[-1]):.4g}"
        meter.update(length, post)


def _run_chunk(job: Job, compiled: Callable, state, cursor, length: int):
    """One chunk of ``length`` updates: one compiled call, or one per update when unrolled.

    A learner whose ``_unrolled`` is true (CD's ``unroll``) gets every update
    compiled without a loop around it -- XLA:CPU runs convolutions inside a
    loop about ten times slower -- and the loop over updates runs here on the
    host. The cursor passes from call to call as from chunk to chunk, so the
    updates are the same ones.
    """
    opts = dict(update=job.learner._update, batch_size=job.batch_size,
                restarts=job.restarts > 1, mesh=job.mesh)
    # Compiled (on the first call) with the random hashes written out: on the
    # CPU a rolled hash loop per key split cost about half of a small update;
    # the same bits either way (energymc._threefry).
    if not getattr(job.learner, "_unrolled", False):
        with unrolled_threefry():
            return compiled(state, job.data, cursor, num_steps=length, **opts)
    # Not here: an update written out (k sampler steps, no loop) with the
    # hashes written out too grew so large that XLA:CPU in JAX 0.12 compiled
    # a convolutional energy's update for over an hour (tests/learn/test_deep.py).
    infos = []
    for _ in range(length):
        state, cursor, info = compiled(state, job.data, cursor, num_steps=1, unroll=True, **opts)
        infos.append(info)
    return state, cursor, jax.tree.map(lambda *a: jnp.concatenate(a), *infos)


def train(job: Job, compiled: Callable, state, meter) -> Trained:
    """Run ``job`` from ``state`` through the compiled chunks; host code.

    ``compiled`` is a :func:`compiled_chunk`; ``meter`` a progress meter
    (``start/update/close``, ``active``).
    """
    n = job.data.shape[0]
    lengths = chunk_plan(job.num_steps, job.eval_every,
                         chunked=meter.active or job.checkpoint is not None)
    cursor = first_cursor(n, job.batch_size, job.restarts)
    progress = {"done": 0, "infos": [], "evals": [], "eval_steps": []}
    t0 = time.perf_counter()
    if job.checkpoint is not None:
        state, cursor, lengths, progress = _resume(job, state, cursor, lengths)
    resumed_from = progress["done"]
    meter.start(job.num_steps, job.learner._name)
    try:
        if resumed_from and meter.active:  # the updates a checkpoint already holds
            last = progress["infos"][-1]["loss"][-1]
            meter.update(resumed_from, {"loss": f"{float(np.mean(last)):.4g}"})
        for length in lengths:
            state, cursor, info = _run_chunk(job, compiled, state, cursor, length)
            _after_chunk(job, progress, state, cursor, jax.device_get(info), length, meter)
        jax.block_until_ready(state)
    finally:
        meter.close()
    total = time.perf_counter() - t0
    timing = {"total_s": total, "per_update_s": total / max(job.num_steps - resumed_from, 1)}
    if job.checkpoint is not None:
        timing["resumed_from"] = resumed_from
    return Trained(state, _history(job, progress), timing)


def _history(job: Job, progress: dict) -> dict:
    """Per-chunk histories joined, restarts first, with the evaluations."""
    infos = progress["infos"]
    # The samplers' "acceptance" is named acceptance_rate (ArviZ's word, the
    # vocabulary of docs/architecture.md); the same array stays under the old
    # key, last, for one release (a dict key cannot warn when read).
    history = {("acceptance_rate" if k == "acceptance" else k):
               np.concatenate([np.asarray(i[k]) for i in infos]) for k in infos[0]}
    if "acceptance_rate" in history:
        history.setdefault("acceptance", history["acceptance_rate"])
    if job.restarts > 1:  # scan stacks steps first: (num_steps, R) -> (R, num_steps)
        history = {k: np.swapaxes(v, 0, 1) for k, v in history.items()}
    if job.eval_fn is not None:
        history["eval_step"] = np.asarray(progress["eval_steps"])
        evals = np.asarray(progress["evals"]).T  # (restarts, num_evals)
        history["eval"] = evals[0] if job.restarts == 1 else evals
    return history
