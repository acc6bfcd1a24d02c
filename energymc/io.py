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
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from energymc.errors import OptionError

__all__ = ["Checkpoint", "load", "save"]


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


def _atomic_savez(path: str, arrays: dict) -> None:
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


class Checkpoint:
    """Stream a run to a directory as it goes, and resume it after an interruption.

    Pass it to :func:`energymc.sample` as ``checkpoint=Checkpoint(path)`` (or
    simply ``checkpoint=path``). After warmup and after every chunk of draws
    the directory receives the new draws and the chains' state; a later call
    of ``sample`` with the same target, method, options, seed, chains, warmup
    and thin finds them and carries on from the last completed chunk. Draws are
    keyed by their index, so a resumed run returns exactly the draws of an
    uninterrupted one; asking a resumed run for more ``draws`` than before
    extends it.

    Parameters
    ----------
    path
        A directory (created if missing). Files: ``meta.json`` (what run this
        is), ``state.npz`` (chain state, tuned parameters, draws done; replaced
        atomically), ``draws-<start>.npz`` (positions ``(chains, n, dim)``
        and stats ``(chains, n)`` of one chunk, written once).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise OptionError(f"checkpoint path {self.path!r} is a file; pass a directory.")
        self._chunks: list[str] = []
        self._fingerprint: dict | None = None

    def __repr__(self) -> str:
        return f"Checkpoint({self.path!r})"

    # -------------------------------------------------------------- reading
    def load(self, fingerprint: dict, like) -> dict | None:
        """The saved progress of this run, or ``None`` if the directory holds none.

        ``like`` is ``(states, params, warmup_trace)`` as shape structures.
        Raises :class:`OptionError` if the directory holds a different run.
        """
        self._fingerprint = fingerprint
        meta_path = os.path.join(self.path, "meta.json")
        state_path = os.path.join(self.path, "state.npz")
        if not (os.path.exists(meta_path) and os.path.exists(state_path)):
            return None
        with open(meta_path) as fh:
            saved = json.load(fh)
        differ = sorted(k for k in set(saved) | set(fingerprint)
                        if k != "energymc_version" and saved.get(k) != fingerprint.get(k))
        if differ:
            details = "; ".join(f"{k}: saved {saved.get(k)!r}, now {fingerprint.get(k)!r}"
                                for k in differ)
            raise OptionError(
                f"checkpoint {self.path!r} holds a different run ({details}). Pass the "
                "same arguments to resume it, or another checkpoint directory to start anew."
            )
        with np.load(state_path) as z:
            arrays = dict(z)
        states, params, trace = like
        self._chunks = [str(c) for c in arrays.pop("chunks").tolist()]
        done = int(arrays.pop("done"))
        chunks = []
        for name in self._chunks:
            with np.load(os.path.join(self.path, name)) as z:
                chunk = dict(z)
            positions = chunk.pop("positions")
            chunks.append((positions, {k[len("stat_"):]: v for k, v in chunk.items()}))
        return {"done": done, "chunks": chunks,
                "states": _arrays_to_tree(arrays, "s", states),
                "params": _arrays_to_tree(arrays, "p", params),
                "warmup_trace": _arrays_to_tree(arrays, "t", trace)}

    # -------------------------------------------------------------- writing
    def start(self, states, params, warmup_trace) -> None:
        """Record a run whose warmup just finished (no draws yet)."""
        os.makedirs(self.path, exist_ok=True)
        for name in os.listdir(self.path):  # leftovers of an unfinished first write
            if name.startswith("draws-") or name.startswith("state.npz"):
                os.remove(os.path.join(self.path, name))
        with open(os.path.join(self.path, "meta.json.tmp"), "w") as fh:
            json.dump(self._fingerprint, fh, indent=1)
        os.replace(os.path.join(self.path, "meta.json.tmp"),
                   os.path.join(self.path, "meta.json"))
        self._params, self._trace = params, warmup_trace
        self._chunks = []
        self._write_state(0, states)

    def resumed(self, params, warmup_trace) -> None:
        """Continue writing a run that :meth:`load` returned."""
        self._params, self._trace = params, warmup_trace

    def append(self, start: int, positions, stats, states) -> None:
        """Write one chunk of draws (starting at draw ``start``) and the state after it."""
        name = f"draws-{start:09d}.npz"
        arrays = {"positions": np.asarray(positions)}
        arrays.update({f"stat_{k}": np.asarray(v) for k, v in stats.items()})
        _atomic_savez(os.path.join(self.path, name), arrays)
        self._chunks.append(name)
        self._write_state(start + int(np.shape(positions)[1]), states)

    def _write_state(self, done: int, states) -> None:
        arrays: dict[str, Any] = {"done": np.asarray(done), "chunks": np.asarray(self._chunks)}
        arrays.update(_leaves_to_arrays(states, "s"))
        arrays.update(_leaves_to_arrays(self._params, "p"))
        arrays.update(_leaves_to_arrays(self._trace, "t"))
        _atomic_savez(os.path.join(self.path, "state.npz"), arrays)
