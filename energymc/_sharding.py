"""Spreading chains and particles over devices: the one module that talks to ``jax.sharding``.

Chains (and AIS/SMC particles) are independent along their leading axis, so
they are split along it over a one-axis :class:`jax.sharding.Mesh`. Chains
run under :func:`jax.shard_map`: each device advances its own block with the
same per-chain code as a single device, and the global chain index of each
row is passed in, so that chain ``c``'s random keys are ``fold_in(key, c)``
whatever the number of devices. Any number of chains is allowed: the chain
axis is padded (by repeating the last chain) to a multiple of the device
count inside the compiled call and the padding is dropped before returning.

Why ``shard_map`` rather than sharding annotations on a ``jax.jit``: a
vmapped ``while_loop`` (NUTS's trajectory doubling, HMC's integrator under
warmup) stops when *every* chain of the batch is done. With the batch
sharded by annotation the compiler must all-reduce that condition over the
devices at every iteration; under ``shard_map`` each device waits only for
its own chains, and nothing crosses devices until the draws are gathered.

With one device (the default on a laptop) nothing here is used: the compiled
code is the same as without this module.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from energymc.errors import OptionError

__all__ = ["AXIS", "chain_mesh", "chosen_devices", "map_chains", "mesh_size", "on_one_device",
           "pad_rows", "padded_rows", "particle_mesh", "place_rows", "put_rows"]

#: Name of the mesh axis the chains (or particles) are split along.
AXIS = "chains"


def _resolve(devices) -> list:
    """The devices meant by ``devices=`` (``None``: all; an int: the first n; a list)."""
    every = jax.devices()
    if devices is None:
        return list(every)
    if isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        if not 1 <= devices <= len(every):
            raise OptionError(
                f"devices={int(devices)} but JAX sees {len(every)} device(s) "
                f"({every[0].platform}); pass an int from 1 to {len(every)}, a list of "
                "jax.devices(), or None for all of them.")
        return list(every[:int(devices)])
    if isinstance(devices, Sequence) and not isinstance(devices, str) and devices:
        wrong = [d for d in devices if d not in every]
        if wrong:
            raise OptionError(f"devices= holds {wrong!r}, which JAX's jax.devices() does not "
                              "list; pass devices from jax.devices().")
        if len(set(devices)) != len(devices):
            raise OptionError("devices= lists a device twice; pass each device once.")
        return list(devices)
    raise OptionError(f"devices must be None (all devices), an int or a list of jax.devices(); "
                      f"got {devices!r}.")


def chosen_devices(devices: Any) -> int:
    """How many devices ``devices=`` names (read as in :func:`chain_mesh`; checked)."""
    return len(_resolve(devices))


def chain_mesh(devices: Any, rows: int) -> Mesh | None:
    """The mesh that ``rows`` chains (or particles) run on, or ``None`` for the default device.

    Parameters
    ----------
    devices
        ``None`` (every device JAX sees), an int ``n`` (the first ``n`` of
        :func:`jax.devices`) or a list of devices.
    rows
        Number of chains or particles. Never more devices than rows are used:
        3 chains on 8 devices run on 3 of them.

    Returns
    -------
    Mesh or None
        ``None`` when the work runs on JAX's default device alone (then the
        caller compiles exactly what it would without sharding); otherwise a
        one-axis mesh named :data:`AXIS`.
    """
    chosen = _resolve(devices)[:max(int(rows), 1)]
    if len(chosen) == 1 and chosen[0] == jax.devices()[0]:
        return None
    return Mesh(np.array(chosen), (AXIS,))


def particle_mesh(devices: Any, rows: int) -> Mesh | None:
    """The mesh ``rows`` rows that must not be padded are split over, or ``None``.

    For rows whose every sum is computed by code that is not ours (SMC's
    particles, which BlackJAX weighs, resamples and counts; a learner's
    batch): a padding row would carry weight and be resampled. The mesh
    takes the largest number of the chosen devices that divides ``rows``
    evenly (256 particles on 8 GPUs: 8; on 3 devices: 2). AIS pads its
    particles instead (:func:`chain_mesh`, :func:`pad_rows`). ``devices``
    is read as in :func:`chain_mesh`.
    """
    chosen = _resolve(devices)
    size = max(k for k in range(1, len(chosen) + 1) if int(rows) % k == 0)
    chosen = chosen[:size]
    if len(chosen) == 1 and chosen[0] == jax.devices()[0]:
        return None
    return Mesh(np.array(chosen), (AXIS,))


def put_rows(tree, mesh: Mesh | None):
    """Place the leading axis of every leaf of ``tree`` split over ``mesh`` (host side).

    A compiled function given such arrays computes each row on the device
    that holds it, inserting collectives only where rows meet (sums of
    weights, resampling). ``mesh=None`` returns ``tree`` unchanged.
    """
    if mesh is None:
        return tree
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec(AXIS)))


def mesh_size(mesh: Mesh | None) -> int:
    """Number of devices in ``mesh`` (1 for ``None``)."""
    return 1 if mesh is None else mesh.size


def padded_rows(mesh: Mesh | None, rows: int) -> int:
    """``rows`` rounded up to a multiple of ``mesh``'s device count (``rows`` for ``None``)."""
    size = mesh_size(mesh)
    return math.ceil(int(rows) / size) * size


def pad_rows(tree, total: int):
    """Repeat the last row of every leaf until its leading axis is ``total``.

    Traced or eager. A copy of a real row keeps the padding finite and inside
    the support, so it cannot put a NaN or an overflow into code that masks it.
    """
    def pad(a):
        extra = total - a.shape[0]
        if extra == 0:
            return a
        return jnp.concatenate([a, jnp.broadcast_to(a[-1:], (extra, *a.shape[1:]))])

    return jax.tree.map(pad, tree)


def map_chains(fn: Callable, mesh: Mesh | None, rows: int, per_row: Any = (),
               shared: Any = ()) -> Any:
    """``fn(ids, per_row, shared)`` over ``rows`` chains, split over ``mesh``'s devices (traced).

    Parameters
    ----------
    fn
        A function of ``ids`` (int32 ``(n,)``: the global indices of the
        rows it gets), ``per_row`` (leaves ``(n, ...)``) and ``shared``,
        returning a pytree whose every leaf has a leading ``(n, ...)`` axis.
        Rows must not interact: ``fn`` is called on a block of them per device.
    mesh
        From :func:`chain_mesh`; ``None`` calls ``fn`` once on all rows.
    rows
        Number of rows (chains).
    per_row
        Pytree of arrays with leading axis ``rows``.
    shared
        Pytree of values every row sees (keys, scalars, a shared start).

    Returns
    -------
    pytree
        ``fn``'s output for all ``rows`` rows, padding removed. With several
        processes (multi-host) the output is replicated on every device, so
        that every process can read all the draws.
    """
    if mesh is None:
        return fn(jnp.arange(rows), per_row, shared)
    total = math.ceil(rows / mesh.size) * mesh.size
    ids = jnp.arange(total)
    spec = PartitionSpec(AXIS)
    # check_vma=False: BlackJAX's loops mix per-device and replicated values
    # in ways the checker cannot always type; rows never interact here, so
    # there is nothing for it to catch.
    out = jax.shard_map(fn, mesh=mesh, in_specs=(spec, spec, PartitionSpec()), out_specs=spec,
                        check_vma=False)(ids, pad_rows(per_row, total), shared)
    out = jax.tree.map(lambda a: a[:rows], out)
    if jax.process_count() > 1:
        out = jax.lax.with_sharding_constraint(out, NamedSharding(mesh, PartitionSpec()))
    return out


def on_one_device(fn: Callable | None) -> Callable | None:
    """``fn`` (a progress tick) called by the first device of the mesh only (traced).

    Inside :func:`map_chains` every device runs the same loop; a host
    callback there would fire once per device and move a progress bar
    ``n`` times too fast.
    """
    if fn is None:
        return None

    def first_only(*args, **kwargs):
        jax.lax.cond(jax.lax.axis_index(AXIS) == 0, lambda: fn(*args, **kwargs), lambda: None)

    return first_only


def place_rows(tree, mesh: Mesh | None, axis: int = 0):
    """Constrain axis ``axis`` (the rows) of every leaf of ``tree`` to be split over ``mesh``
    (traced).

    For computations where rows do interact (SMC's resampling, AIS's
    log-mean-exp over particles, a loss averaged over a training batch): the
    compiler then keeps each row on its device and inserts the few
    collectives needed. A leaf without that axis, or whose axis the device
    count does not divide, is left to the compiler. ``mesh=None`` returns
    ``tree`` unchanged.
    """
    if mesh is None:
        return tree
    spec = PartitionSpec(*([None] * axis), AXIS)

    def place(a):
        if a.ndim <= axis or a.shape[axis] % mesh.size:
            return a
        return jax.lax.with_sharding_constraint(a, NamedSharding(mesh, spec))

    return jax.tree.map(place, tree)
