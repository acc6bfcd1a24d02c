"""Training over several devices: batches and negative chains split along their rows.

A learner's update computes the energy (and its gradient) of every point of
a training batch and of every negative chain, then averages. The points and
the chains are independent until that average, so they are split over a
one-axis :class:`jax.sharding.Mesh` with sharding constraints
(:func:`energymc._sharding.place_rows`): the compiled update runs each
device's rows there, and the compiler inserts the one all-reduce the
averages need. Parameters and optimiser state are small and replicated.

Why constraints and not ``shard_map`` (which ``sample`` uses for its
chains): here rows *do* meet, in the loss, at every update; with
constraints the compiler places the reduction, and the loss code stays the
single-device code, unchanged.

Rows are not padded (a padded batch point would count in the loss), so the
mesh takes the largest number of the chosen devices that divides the batch
size (:func:`energymc._sharding.particle_mesh`): a batch of 128 on 8 devices
uses 8, a batch of 6 on 4 devices uses 3 (and warns). Negative chains or a
replay buffer whose length that number does not divide are left to the compiler.

With one device nothing here is used: the compiled update is exactly the
one-device update.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from jax.sharding import Mesh

from energymc._sharding import chosen_devices, mesh_size, particle_mesh, place_rows
from energymc.errors import EnergymcWarning

__all__ = ["ROW_KEYS", "learner_mesh", "spread_update"]

#: Entries of ``LearnState.extra`` that hold one row per negative chain:
#: persistent chains (PCD) and the replay buffer.
ROW_KEYS = ("chains", "buffer")


def learner_mesh(devices: Any, batch_size: int) -> Mesh | None:
    """The mesh a training batch of ``batch_size`` points is split over, or ``None``.

    Parameters
    ----------
    devices
        ``None`` (every device JAX sees), an int ``n`` (the first ``n`` of
        :func:`jax.devices`) or a list of devices, as ``sample(devices=...)``.
    batch_size
        Points per update; the mesh has the largest number of the chosen
        devices that divides it.

    Returns
    -------
    Mesh or None
        ``None`` when training runs on JAX's default device alone.

    Warns
    -----
    EnergymcWarning
        When that leaves some of the chosen devices idle (a batch of 6 on 4
        devices uses 3), naming a batch size that uses them all.
    """
    mesh = particle_mesh(devices, batch_size)
    chosen, used = chosen_devices(devices), mesh_size(mesh)
    if used < min(chosen, batch_size):
        warnings.warn(
            f"batch_size={batch_size} is split over {used} of the {chosen} devices, the most "
            f"that divide it: a batch is not padded (a padding point would count in the "
            f"loss). Pass a multiple of {chosen} (e.g. batch_size="
            f"{-(-batch_size // chosen) * chosen}) to use every device.",
            EnergymcWarning, stacklevel=3)  # the caller of learner.run
    return mesh


def _spread_state(state, mesh: Mesh, axis: int):
    extra = state.extra
    if not isinstance(extra, dict) or not any(k in extra for k in ROW_KEYS):
        return state
    rows = {k: place_rows(v, mesh, axis) for k, v in extra.items() if k in ROW_KEYS}
    return state._replace(extra={**extra, **rows})


def spread_update(update: Callable, mesh: Mesh | None, *, restarts: bool,
                  batched: bool) -> Callable:
    """``update(state, batch)`` with the batch's points and the negative chains split
    over ``mesh`` (traced; ``mesh=None`` returns ``update`` itself).

    Parameters
    ----------
    update
        One training step ``(LearnState, batch) -> (LearnState, info)``;
        vmapped over restarts when ``restarts``.
    mesh
        From :func:`learner_mesh`.
    restarts
        Whether the state has a leading restart axis (rows are then axis 1).
    batched
        Whether the batch has that restart axis too (minibatches under
        restarts); full-batch training passes all the data, unbatched.

    Returns
    -------
    callable
        The same step; its arithmetic differs from the one-device step only
        in the order of the sums over rows (see ``docs/devices.md``).
    """
    if mesh is None:
        return update
    axis = 1 if restarts else 0
    batch_axis = 1 if restarts and batched else 0

    def spread(state, batch):
        state = _spread_state(state, mesh, axis)
        state, info = update(state, place_rows(batch, mesh, batch_axis))
        return _spread_state(state, mesh, axis), info

    return spread
