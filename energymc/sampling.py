"""The sampling loop: the only place chains are started, warmed up and run.

Chains are vectorised with ``jax.vmap``. Sampling runs as compiled chunks of
``lax.scan``; between chunks, on the host, a progress meter is updated. With
the meter off the whole run is one compiled call. Compiled functions live at
module level with the target, kernel and options as static arguments, so a
second call with the same target and shapes reuses them.

Randomness: the key of step ``i`` of chain ``c`` is
``fold_in(fold_in(key, c), i)``, so the draws of a chain depend neither on how
the run is cut into chunks nor on how many other chains run beside it.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import time
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from energymc import _sharding
from energymc import kernels as _kernels
from energymc._threefry import unrolled_threefry
from energymc._util import as_key, check_bool, chunk_lengths
from energymc._util import check_int as _check_count
from energymc.energy import Energy, jit_over_target
from energymc.errors import EnergyError, EnergymcWarning, OptionError
from energymc.progress import make_meter, tick, tick_interval, ticks_to
from energymc.results import Run

__all__ = ["sample", "as_key"]

_WARMUP_KEY, _SAMPLE_KEY, _INIT_KEY = 0, 1, 2
# Folded into each chain's warmup key for a kernel's after_burn_in measurement.
_MEASURE_KEY = 3


def _check_target(target) -> Energy:
    if isinstance(target, Energy):
        return target
    if callable(target):
        raise EnergyError(
            "sample() needs an emc.Energy, not a bare function: wrap it as "
            "emc.Energy(fn, init=x0) so energymc knows the shape of x."
        )
    raise EnergyError(f"sample() needs an emc.Energy; got {type(target).__name__}.")


def _init_layout(target: Energy, chains: int, init) -> str:
    """How ``init`` gives the starting points: ``"none"``, ``"shared"`` or ``"per_chain"``.

    ``init`` may be one point shaped like ``target.init`` (every chain starts
    there) or ``(chains, *shape)`` per leaf; anything else is an error, raised
    here on the host before anything compiles.
    """
    if init is None:
        return "none"
    try:
        leaves_init = jax.tree.leaves(init)
        tdef = jax.tree.structure(init)
    except Exception as exc:  # pragma: no cover - jax accepts any pytree
        raise EnergyError(f"init= could not be read as a pytree: {exc}") from exc
    if tdef != jax.tree.structure(target.init):
        raise EnergyError(
            f"init= has structure {tdef}, the target has {jax.tree.structure(target.init)}."
        )
    ref = jax.tree.leaves(target.init)
    shapes = [np.shape(a) for a in leaves_init]
    if all(s == r.shape for s, r in zip(shapes, ref, strict=True)):
        return "shared"
    if all(s == (chains, *r.shape) for s, r in zip(shapes, ref, strict=True)):
        return "per_chain"
    raise EnergyError(
        f"init= has leaf shapes {shapes}; with chains={chains} they must be either "
        f"{[r.shape for r in ref]} (one start for all chains) or "
        f"{[(chains, *r.shape) for r in ref]} (one start per chain)."
    )


def _start_positions(key, init, *, target: Energy, ids: jax.Array, layout: str) -> jax.Array:
    """Flat starting points ``(len(ids), dim)`` of the chains numbered ``ids`` (traced).

    With no ``init``, real targets start at ``target.init`` jittered by
    U(-1, 1) per coordinate (U(-2, 2) around NumPyro's own init for NumPyro
    targets), falling back to ``target.init`` where the jittered point has no
    finite energy; binary and spin targets start at uniformly random states.
    """
    if layout == "shared":
        return jnp.broadcast_to(target.ravel(init), (ids.shape[0], target.dim))
    if layout == "per_chain":
        return jax.vmap(target.ravel)(init)
    keys = _chain_keys(jax.random.fold_in(key, _INIT_KEY), ids)
    x0 = target.flat_init
    if target.support == "binary":
        return jax.vmap(lambda k: jax.random.bernoulli(k, 0.5, x0.shape).astype(x0.dtype))(keys)
    if target.support == "spin":
        return jax.vmap(lambda k: jax.random.rademacher(k, x0.shape, dtype=x0.dtype))(keys)
    jitter = 2.0 if target.is_numpyro else 1.0
    noise = jax.vmap(lambda k: jax.random.uniform(k, x0.shape, x0.dtype, -1.0, 1.0))(keys)
    starts = x0 + noise * jitter
    ok = jax.vmap(lambda z: jnp.isfinite(target.flat_logdensity(z)))(starts)
    return jnp.where(ok[:, None], starts, x0)


def _chain_keys(key, ids):
    """Chain ``c``'s key is ``fold_in(key, c)``: ``ids`` are global chain numbers, so a
    chain's key is the same whichever device, and beside whichever chains, it runs."""
    return jax.vmap(lambda c: jax.random.fold_in(key, c))(ids)


def warmup_ticks(kernel) -> bool:
    """Whether ``kernel.warmup`` reports its steps: it takes a ``tick`` keyword.

    A kernel whose warmup accepts ``tick=`` calls it in every warmup step,
    ``tick(i, every)`` where it knows the step index ``i`` (``every`` from
    :func:`energymc.progress.tick_interval`), ``tick()`` where it does not
    (``tick`` is :func:`energymc.progress.tick`; ``None`` when no meter
    listens); the progress bar then moves during warmup. Other kernels' warmup
    is one silent compiled call and the bar fills when it ends.
    """
    try:
        return "tick" in inspect.signature(kernel.warmup).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return False


def _begin(key, init, params, *, target, kernel, options, chains, layout, warmup, adapt,
           ticks=False, mesh=None):
    """Starting points, then warmup: ``(states, params, warmup_trace)`` (traced).

    With ``adapt`` the kernel's warmup tunes ``params``; without, the given
    ``params`` are used and ``warmup`` untuned steps are run as burn-in. With
    ``ticks`` every warmup step calls :func:`energymc.progress.tick` (burn-in
    always can; a tuning warmup when the kernel takes ``tick=``). Ticks
    change no number: draws are the same with and without them. ``mesh``
    (from :func:`energymc._sharding.chain_mesh`) splits the chains over
    devices; ``None`` runs them all on the default device.
    """
    def local(ids, per_chain, shared):
        init_, params_ = per_chain if layout == "per_chain" else (shared[1], per_chain[1])
        return _begin_chains(shared[0], init_, params_, ids, target=target, kernel=kernel,
                             options=options, layout=layout, warmup=warmup, adapt=adapt,
                             ticks=ticks, mesh=mesh)

    per_chain = (init if layout == "per_chain" else None, params)
    return _sharding.map_chains(local, mesh, chains, per_chain, (key, init))


def _begin_chains(key, init, params, ids, *, target, kernel, options, layout, warmup, adapt,
                  ticks, mesh):
    """:func:`_begin` for the chains numbered ``ids`` (traced; the body one device runs)."""
    positions = _start_positions(key, init, target=target, ids=ids, layout=layout)
    # Told here, under the trace, so that a local field reads the traced params.
    kernel = kernel.bind_target(target.kernel_facts())
    warm_keys = _chain_keys(jax.random.fold_in(key, _WARMUP_KEY), ids)
    # Under a mesh each device runs this loop: one of them reports progress.
    tick_ = tick if mesh is None else _sharding.on_one_device(tick)
    if adapt and warmup > 0:
        extra = {"tick": tick_} if ticks and warmup_ticks(kernel) else {}
        return jax.vmap(
            lambda k, x: kernel.warmup(k, x, target.flat_logdensity, warmup, options, **extra))(
                warm_keys, positions)
    states = jax.vmap(lambda k, x, p: kernel.init(k, x, target.flat_logdensity, p, options))(
        warm_keys, positions, params)
    if warmup > 0:
        states, _, _ = _advance(states, params, warm_keys, 0, target=target, kernel=kernel,
                                options=options, num_draws=warmup, thin=1,
                                tick=tick_ if ticks else None)
    measure_keys = jax.vmap(lambda k: jax.random.fold_in(k, _MEASURE_KEY))(warm_keys)
    params = jax.vmap(lambda k, s, p: kernel.after_burn_in(k, s, target.flat_logdensity, p,
                                                           options))(measure_keys, states, params)
    return states, params, {}


class _Packing:
    """Per-draw outputs gathered into one flat array per dtype, and taken apart again.

    Each array a scan emits per step is written into its output buffer by a
    separate operation; on a CPU, for a cheap kernel (NUTS on a 2-d target
    takes ~10 us a step), eight such writes per draw cost ~5% of the run.
    Concatenating the position and the stats by dtype (exactly: no casts)
    leaves one write per dtype. The layout is recorded while tracing the
    step and used after the loop to cut the buffers back into named arrays.
    """

    def __init__(self):
        self.layout = None  # [(name, dtype, shape, offset)] once traced

    def pack(self, position, stats: dict) -> dict:
        items = [("position", position)] + sorted(stats.items())
        groups, layout = {}, []
        for name, value in items:
            value = jnp.asarray(value)
            # Flags travel with the integers (0/1 converts back exactly).
            stored = value.astype(jnp.int32) if value.dtype == jnp.bool_ else value
            group = groups.setdefault(stored.dtype.name, [])
            offset = sum(v.size for v in group)
            layout.append((name, value.dtype, stored.dtype.name, value.shape, offset))
            group.append(stored.reshape(-1))
        self.layout = layout
        return {dt: jnp.concatenate(vs) for dt, vs in groups.items()}

    def unpack(self, packed: dict):
        """``(position, stats)`` from the stacked buffers (leading axes kept)."""
        out = {}
        for name, dtype, group, shape, offset in self.layout:
            buf = packed[group]
            size = math.prod(shape)
            part = buf[..., offset:offset + size].reshape(*buf.shape[:-1], *shape)
            out[name] = part.astype(dtype)
        position = out.pop("position")
        return position, out


def _advance(states, params, chain_keys, start, *, target, kernel, options, num_draws, thin,
             tick=None):
    """Advance every chain by ``num_draws * thin`` steps, keeping every ``thin``-th (traced).

    Returns the new states, positions ``(chains, num_draws, dim)`` and stats
    ``(chains, num_draws)``. ``tick``, if given, is called with each draw's
    index (:func:`energymc.progress.tick`, which reports about a hundred times
    in all).
    """
    packing = _Packing()
    kernel = kernel.bind_target(target.kernel_facts())

    def one_chain(state, p, chain_key):
        p = kernel.prepare(p, options)

        def draw(state, i):
            if tick is not None:
                tick(i, tick_interval(num_draws))

            def step(s, j):
                k = jax.random.fold_in(chain_key, (start + i) * thin + j)
                return kernel.step(k, s, target.flat_logdensity, p, options)

            if thin == 1:
                state, kept = step(state, 0)
                return state, packing.pack(state.position, kept)
            state, stats = jax.lax.scan(step, state, jnp.arange(thin))
            kept = {k: v[-1] for k, v in stats.items()}
            # Trouble anywhere in the thinned stretch is still trouble.
            kept["diverging"] = jnp.any(stats["diverging"])
            kept["acceptance_rate"] = jnp.mean(stats["acceptance_rate"])
            # Counts (e.g. PT's round trips) add up over the stretch.
            for name in kernel.summed_stats:
                kept[name] = jnp.sum(stats[name], axis=0)
            return state, packing.pack(state.position, kept)

        state, packed = jax.lax.scan(draw, state, jnp.arange(num_draws))
        positions, stats = packing.unpack(packed)
        return state, positions, stats

    return jax.vmap(one_chain)(states, params, chain_keys)


_STATIC = ("target", "kernel", "options", "chains", "layout", "warmup", "adapt", "mesh")


# Compiled entry points. jit_over_target passes the parameters of a
# from_params energy as an argument, not as constants: sampling the same
# function with new parameter values (after each training epoch, along a
# temperature sweep) reuses the compiled code.
@jit_over_target((*_STATIC, "ticks"))
def _begin_compiled(key, init, params, **static):
    return _begin(key, init, params, **static)


@jit_over_target(("target", "kernel", "options", "chains", "num_draws", "thin", "mesh"))
def _sample_chunk(states, params, key, start, *, target, kernel, options, chains, num_draws,
                  thin, mesh=None):
    """One chunk of the sampling loop; chain keys derive from the run's ``key``."""
    def local(ids, per_chain, shared):
        chain_keys = _chain_keys(jax.random.fold_in(shared[0], _SAMPLE_KEY), ids)
        return _advance(*per_chain, chain_keys, shared[1], target=target, kernel=kernel,
                        options=options, num_draws=num_draws, thin=thin)

    return _sharding.map_chains(local, mesh, chains, (states, params), (key, start))


@jit_over_target((*_STATIC, "draws", "thin"))
def _whole_run(key, init, params, *, draws, thin, **static):
    """Starts, warmup and every draw in one compiled call (no progress meter).

    Returns ``(states, params, warmup_trace, positions, stats)``.
    """
    layout = static["layout"]
    begin = {k: static[k] for k in ("target", "kernel", "options", "layout", "warmup", "adapt",
                                    "mesh")}

    def local(ids, per_chain, shared):
        init_, params_ = per_chain if layout == "per_chain" else (shared[1], per_chain[1])
        states, params_, trace = _begin_chains(shared[0], init_, params_, ids, ticks=False,
                                               **begin)
        chain_keys = _chain_keys(jax.random.fold_in(shared[0], _SAMPLE_KEY), ids)
        states, positions, stats = _advance(
            states, params_, chain_keys, 0, target=static["target"], kernel=static["kernel"],
            options=static["options"], num_draws=draws, thin=thin)
        return states, params_, trace, positions, stats

    per_chain = (init if layout == "per_chain" else None, params)
    return _sharding.map_chains(local, static["mesh"], static["chains"], per_chain, (key, init))


def _validate_support(target: Energy, kernel) -> None:
    if target.support not in kernel.supports:
        kinds = "continuous" if target.support == "real" else f"{target.support} (discrete)"
        raise OptionError(
            f"method {kernel.name!r} cannot sample a {kinds} target; methods for "
            f"support={target.support!r} are: {', '.join(_kernels.names(target.support))}."
        )


def _fixed_params(kernel, dim, options, chains):
    opts = dict(options)
    missing = [k for k in ("step_size", "L") if k in opts and opts[k] is None]
    if missing:
        raise OptionError(
            f"adapt=False needs {', '.join(missing)}= for method {kernel.name!r} "
            "(the values warmup would otherwise tune)."
        )
    params = kernel.default_params(dim, options)
    imm = params.get("inverse_mass_matrix")
    if imm is not None:
        want = (dim, dim) if imm.ndim == 2 else (dim,)
        if imm.shape != want:
            raise OptionError(
                f"inverse_mass_matrix has shape {imm.shape}; for this target it must be {want}."
            )
    return jax.tree.map(lambda a: jnp.broadcast_to(a, (chains, *jnp.shape(a))), params)


def _as_checkpoint(checkpoint):
    if checkpoint is None or hasattr(checkpoint, "append"):
        return checkpoint
    if isinstance(checkpoint, (str, os.PathLike)):
        from energymc.io import Checkpoint  # host-side hook, built only when asked for

        return Checkpoint(checkpoint)
    raise OptionError(f"checkpoint must be a directory path or an energymc.io.Checkpoint; "
                      f"got {type(checkpoint).__name__}.")


def _fingerprint(static, seed, thin, init) -> dict:
    """What identifies a run for resuming: everything that changes its draws but ``draws``.

    Besides the arguments, the energy's traced program, the data it closes over,
    its parameters and the starting points are hashed (:mod:`energymc._fingerprint`),
    so that an edited energy or a model refitted on new data is refused, not resumed.
    """
    from energymc._fingerprint import array_digest, program_digests

    target = static["target"]
    if isinstance(seed, jax.Array):
        seed = np.asarray(jax.random.key_data(seed)).tolist()
    options = {k: (np.asarray(v).tolist() if hasattr(v, "__array__") else
                   v if isinstance(v, (int, float, str, bool, type(None))) else repr(v))
               for k, v in static["options"]}
    fp = {"target": target.name, "dim": target.dim, "support": target.support,
          "method": static["kernel"].name, "options": options, "seed": seed,
          "chains": static["chains"], "warmup": static["warmup"], "adapt": static["adapt"],
          "thin": thin, **program_digests(target),
          "init_sha256": array_digest([target.flat_init, static["layout"] != "none", init])}
    return json.loads(json.dumps(fp))  # as it reads back from disk (tuples -> lists)


def _chunked_run(key, init, params, static, ckpt, meter, callback, *, method, seed, draws,
                 thin, t0, stream=False) -> Run:
    """Warmup, then draws in compiled chunks with host work (progress, callback,
    checkpoint) between them. With ``stream`` the draws stay in the checkpoint's
    files (chunks of a few MB) and the returned Run reads them from there."""
    target, kernel, opts, chains = (static[k] for k in ("target", "kernel", "options", "chains"))
    saved = None
    if ckpt is not None:
        like = jax.eval_shape(partial(_begin, **static), key, init, params)
        saved = ckpt.load(_fingerprint(static, seed, thin, init), like, read_draws=not stream)
    timing = {}
    if saved is None:
        warmup = static["warmup"]
        meter.start(warmup, f"{method} warmup")
        # The warmup is one compiled call; the bar moves during it by ticks
        # from inside (one per step), routed to this meter while it runs.
        with ticks_to(meter, warmup) as ticked:
            states, params, warmup_trace = _begin_compiled(key, init, params,
                                                           ticks=meter.active and warmup > 0,
                                                           **static)
            jax.block_until_ready(states)
        if warmup - ticked.count:  # a kernel whose warmup does not tick: fill the bar now
            meter.update(warmup - ticked.count, {})
        meter.close()
        if ckpt is not None:
            ckpt.start(states, params, warmup_trace)
        done = 0
    else:
        states, params, warmup_trace = saved["states"], saved["params"], saved["warmup_trace"]
        done = saved["done"]
        if done > draws:
            raise OptionError(f"checkpoint {ckpt.path!r} already holds {done} draws per chain, "
                              f"more than draws={draws}; pass draws>={done}.")
        ckpt.resumed(params, warmup_trace)
    timing["warmup_s"] = time.perf_counter() - t0
    run = _new_run(target, method, seed, opts, chains, static["warmup"], thin, params,
                   warmup_trace)
    max_len = None
    if stream:
        from energymc.store import ChunkStore, chunk_cap

        run._use_store(ChunkStore(ckpt.path, ckpt.chunks, done))
        max_len = chunk_cap(chains, target.dim, target.flat_init.dtype.itemsize)
    elif saved is not None:
        for pos, stats in saved["chunks"]:
            run._append(pos, stats)
    t1 = time.perf_counter()
    meter.start(draws - done, method if not done else f"{method} (resumed at draw {done})")
    for length in _remaining_chunks(draws, done, max_len):
        states, pos, stats = _sample_chunk(states, params, key, done, target=target,
                                           kernel=kernel, options=opts, chains=chains,
                                           num_draws=length, thin=thin, mesh=static["mesh"])
        if ckpt is not None:
            ckpt.append(done, pos, stats, states)
        done += length
        if stream:
            run._use_store(ChunkStore(ckpt.path, ckpt.chunks, done))
        run._append(pos, stats)
        if meter.active:
            meter.update(length, run._progress_postfix())
        if callback is not None:
            run.last_state = states
            callback(run)
    jax.block_until_ready(states)
    meter.close()
    timing["sampling_s"] = time.perf_counter() - t1
    timing["total_s"] = time.perf_counter() - t0
    run._finish(states, timing)
    return run


def _remaining_chunks(draws: int, done: int, max_len: int | None = None) -> list[int]:
    """Chunk lengths for draws ``done`` to ``draws``; ``max_len`` each when streaming.

    A resumed run keeps the schedule of an uninterrupted one when it stopped
    on one of its chunk boundaries (it always does unless ``draws`` grew):
    the same compiled chunks then run, which makes the resumed draws equal
    bit for bit, not just to rounding, and compiles nothing new.
    """
    if draws <= done:
        return []

    def schedule_for(n):
        if max_len is None:
            return chunk_lengths(n, chunked=True)
        # Streaming: chunks of one size (a few MB) whatever the run's length, so
        # that the memory a streamed run needs is set by the chunk, not by draws.
        full, rest = divmod(n, max_len)
        return [max_len] * full + ([rest] if rest else [])

    schedule = schedule_for(draws)
    bounds = np.cumsum([0, *schedule]).tolist()
    if done in bounds:
        return schedule[bounds.index(done):]
    return schedule_for(draws - done)


def _new_run(target, method, seed, opts, chains, warmup, thin, params, warmup_trace) -> Run:
    return Run(target=target, method=method, seed=seed, options=dict(opts), chains=chains,
               warmup_steps=warmup, thin=thin, warmup_params=params, warmup_trace=warmup_trace)


def sample(target: Energy, method: str = "nuts", *, chains: int = 4, draws: int = 1000,
           warmup: int = 1000, seed: Any = 0, init: Any = None, thin: int = 1,
           progress: Any = None, adapt: bool = True,
           callback: Callable[[Run], None] | None = None, checkpoint: Any = None,
           store: Any = None, devices: Any = None,
           **options) -> Run:
    """Draw from ``exp(-E(x))`` with a BlackJAX (or discrete) kernel.

    Parameters
    ----------
    target
        An :class:`energymc.Energy`.
    method
        ``"nuts"``, ``"hmc"``, ``"mala"``, ``"langevin"`` (unadjusted, biased:
        warmup caps its step for at most ``max_bias=0.03`` variance inflation on
        a Gaussian, reported as ``run.stats["variance_inflation"]``),
        ``"barker"``, ``"rwm"``, ``"mclmc"``; discrete targets take the discrete
        methods (see :func:`energymc.kernels.names`).
    chains
        Number of chains (run vectorised).
    draws
        Kept draws per chain.
    warmup
        Warmup steps per chain.
    seed
        An int or a ``jax.random.key``. Same seed, same draws.
    init
        Starting points: one point shaped like ``target.init`` or one per
        chain (leaves ``(chains, *shape)``). Default: ``target.init`` jittered.
    thin
        Keep every ``thin``-th step.
    progress
        ``None`` (auto: on in a terminal unless ``CI`` is set), ``True``,
        ``False`` or an object with ``start/update/close``.
    adapt
        Tune step size and mass matrix in warmup. With ``adapt=False`` pass
        ``step_size=`` (and ``L=`` for mclmc); warmup steps then run untuned.
    callback
        Called on the host after each chunk with the partial :class:`Run`.
    checkpoint
        A directory path or an :class:`energymc.io.Checkpoint`: the run is
        written there after warmup and after every chunk, and a later call
        with the same arguments resumes from it (same draws as an
        uninterrupted run; a larger ``draws`` extends a finished one).
    store
        A directory: like ``checkpoint`` (and resumed the same way), but the
        draws also stay there: they are written in chunks of a few MB and the
        returned :class:`Run` keeps none in memory; its summary and headline
        numbers are computed chunk by chunk (see :mod:`energymc.store`).
    devices
        Where the chains run: ``None`` (default) splits them over every
        device JAX sees (:func:`jax.devices`), an int ``n`` over the first
        ``n``, or a list of devices. Any number of chains: they are padded to
        a multiple of the device count and the padding dropped. Chain ``c``
        has the same random keys on any number of devices, so the draws are
        those of a one-device run (up to float rounding where the compiler
        vectorises a different number of chains differently; see
        ``docs/devices.md``).
    **options
        Method options (``dense_mass``, ``target_accept``,
        ``max_num_doublings``, ``num_integration_steps``, ...). An unknown one
        raises an error listing the valid ones.

    Returns
    -------
    Run
        ``run.draws`` (leaves ``(chains, draws, *shape)``), ``run.stats``
        (``(chains, draws)`` arrays), ``run.warmup`` and ``run.to_arviz()``.
    """
    target = _check_target(target)
    kernel = _kernels.get(method)
    _validate_support(target, kernel)
    if "support" in kernel.defaults and "support" not in options:
        # Discrete kernels flip 0<->1 or -1<->+1: tell them which, explicitly.
        options = {**options, "support": target.support}
    opts = _kernels.resolve_options(kernel, options)
    kernel.validate(opts, target.dim)
    chains = _check_count("chains", chains, 1)
    draws = _check_count("draws", draws, 1)
    warmup = _check_count("warmup", warmup, 0)
    thin = _check_count("thin", thin, 1)
    adapt = check_bool("adapt", adapt)
    key = as_key(seed)
    params = None if adapt else _fixed_params(kernel, target.dim, opts, chains)
    if adapt and warmup == 0 and "step_size" in dict(opts) and dict(opts)["step_size"] is None:
        raise OptionError(
            "warmup=0 leaves nothing to tune the step size with; pass warmup>0, or "
            "adapt=False with step_size=."
        )
    if adapt and warmup == 0:
        params = _fixed_params(kernel, target.dim, opts, chains)
    layout = _init_layout(target, chains, init)

    meter = make_meter(progress)
    static = dict(target=target, kernel=kernel, options=opts, chains=chains, layout=layout,
                  warmup=warmup, adapt=adapt and warmup > 0,
                  mesh=_sharding.chain_mesh(devices, chains))
    if store is not None:
        if checkpoint is not None and os.path.abspath(getattr(checkpoint, "path", checkpoint)) \
                != os.path.abspath(os.fspath(getattr(store, "path", store))):
            raise OptionError("store= writes the checkpoint too; pass one directory, as store= "
                              "alone (or checkpoint= and store= the same).")
        checkpoint = store
    ckpt = _as_checkpoint(checkpoint)
    chunked = meter.active or callback is not None or ckpt is not None
    t0 = time.perf_counter()
    # On the CPU, compiled with Threefry written out (energymc._threefry): the
    # same hashes, faster steps (MALA, HMC on a cheap energy: 1.7-1.9x).
    with unrolled_threefry():
        if not chunked:
            # Nothing to report between steps: one compiled call, no host round trips.
            states, params, warmup_trace, pos, stats = _whole_run(
                key, init, params, draws=draws, thin=thin, **static)
            jax.block_until_ready(states)
            timing = {"total_s": time.perf_counter() - t0}
            run = _new_run(target, method, seed, opts, chains, warmup, thin, params,
                           warmup_trace)
            run._append(pos, stats)
            run._finish(states, timing)
        else:
            run = _chunked_run(key, init, params, static, ckpt, meter, callback,
                               method=method, seed=seed, draws=draws, thin=thin, t0=t0,
                               stream=store is not None)
    if run.num_divergent and kernel.warns_divergences:
        warnings.warn(f"{run.num_divergent} divergent transitions after warmup; "
                      "see emc.diagnose(run).", EnergymcWarning, stacklevel=2)
    return run
