"""Draws that stay on disk: the read side of a streamed run (host code only).

``sample(..., store=DIR)`` writes every chunk of draws to ``DIR`` (the files
of a :class:`energymc.io.Checkpoint`) and hands back a :class:`energymc.Run`
that keeps none of them in memory. Its headline numbers (acceptance,
divergences) and :meth:`energymc.Run.summary` are computed here chunk by
chunk, so the memory they need does not grow with the number of draws (past
100,000 draws per chain, ESS and R-hat come from segments of the draws:
:func:`energymc.diagnostics._segmented_table`). ``run.to_arviz()`` hands back ArviZ data whose
arrays are *lazy*: xarray variables backed by the chunk files
(:class:`StoredArray`), read only where they are indexed, so ``diagnose``
(which judges a batch of coordinates at a time) and the plots (which load the
variables they draw) never hold every draw. Only ``run.draws``,
``run.flat_draws`` and ``run.stats`` read everything, as asked.

Why npz chunk files and not one zarr or netCDF array: the chunks are the
checkpoint's own files, each written once and atomically, so streaming costs
no second copy, and a crash can never leave a half-appended array behind.
"""

from __future__ import annotations

import functools
import os

import numpy as np

__all__ = ["ChunkReader", "ChunkStore", "StoredArray", "chunk_cap", "lazy_dataset"]

# Bytes of draws one compiled chunk may hold when streaming: the device buffer
# of a chunk and its host copy are the memory a streamed run needs.
_CHUNK_BYTES = 4 * 2**20
# Bytes of draws summary() gathers at once (a batch of coordinates, all draws).
_BATCH_BYTES = 16 * 2**20


def chunk_cap(chains: int, dim: int, itemsize: int) -> int:
    """Most draws per chunk for a streamed run: about 4 MB of positions per chunk."""
    return max(1, _CHUNK_BYTES // max(1, chains * dim * itemsize))


class ChunkStore:
    """The chunk files of a run, read one at a time.

    Parameters
    ----------
    directory
        Where the files are.
    names
        Chunk file names in draw order (``draws-<start>.npz``).
    done
        Draws per chain in all the files, which gives each chunk's length.
    """

    def __init__(self, directory: str, names: list[str], done: int):
        self.directory = directory
        self.names = list(names)
        self.done = int(done)

    def __repr__(self) -> str:
        return f"ChunkStore({self.directory!r}, {len(self.names)} chunks, {self.done} draws)"

    def _read(self, name: str, keys) -> dict[str, np.ndarray]:
        with np.load(os.path.join(self.directory, name), allow_pickle=False) as z:
            return {k: z[k] for k in keys}  # only these members are read

    def bounds(self) -> list[tuple[int, int, str]]:
        """``[(first draw, end draw, file name)]`` per chunk, in draw order."""
        starts = [int(name[len("draws-"):-len(".npz")]) for name in self.names]
        ends = starts[1:] + [self.done]
        return [(a, b, name) for a, b, name in zip(starts, ends, self.names, strict=True)
                if b > a]

    def stat_names(self) -> list[str]:
        if not self.names:
            return []
        with np.load(os.path.join(self.directory, self.names[0]), allow_pickle=False) as z:
            return [k[len("stat_"):] for k in z.files if k.startswith("stat_")]

    def iter(self, *keys: str):
        """Each chunk's arrays ``keys`` (``"positions"``, ``"stat_lp"``, ...), in draw order."""
        for name in self.names:
            yield self._read(name, keys)

    def concat(self, key: str) -> np.ndarray:
        """One array over every draw (loads it all: ``(chains, draws, ...)``)."""
        return np.concatenate([c[key] for c in self.iter(key)], axis=1)

    def per_chain_sum(self, key: str) -> np.ndarray:
        """``(chains,)`` sums over draws of a ``(chains, n)`` stat, chunk by chunk."""
        total = None
        for chunk in self.iter(key):
            part = np.sum(chunk[key].astype(np.float64), axis=1)
            total = part if total is None else total + part
        return total

    def columns(self, start: int, stop: int, postprocess=None) -> np.ndarray:
        """Coordinates ``start:stop`` of the flat draws, every draw: ``(chains, draws, n)``.

        With ``postprocess`` (flat ``(chains, n, dim)`` -> flat ``(chains, n, dim')``)
        each chunk is transformed before the columns are taken.
        """
        parts = []
        for chunk in self.iter("positions"):
            pos = chunk["positions"]
            if postprocess is not None:
                pos = postprocess(pos)
            parts.append(np.array(pos[..., start:stop]))  # a copy: the chunk can go
        return np.concatenate(parts, axis=1)


def batch_size(chains: int, draws: int) -> int:
    """Coordinates per batch so that a batch of all draws stays near ``_BATCH_BYTES``."""
    return max(1, _BATCH_BYTES // max(1, chains * draws * 8))


def _display_layout(run) -> list[tuple[str, tuple]]:
    """``[(variable name, event shape)]`` of the draws users see, in ArviZ's order."""
    from types import SimpleNamespace

    from energymc.diagnostics import posterior_dict

    one = run.target.postprocess(np.asarray(run.target.flat_init)[None, None])
    return [(name, tuple(np.shape(v)[2:]))
            for name, v in posterior_dict(SimpleNamespace(draws=one)).items()]


def display_columns(run, flat: np.ndarray) -> np.ndarray:
    """Flat kernel positions ``(chains, n, dim)`` -> what users see, flattened ``(chains, n, D)``.

    Each variable of :attr:`energymc.Run.draws` (constrained sites for NumPyro
    targets) raveled in C order, variables one after another.
    """
    from types import SimpleNamespace

    from energymc.diagnostics import posterior_dict

    tree = run.target.postprocess(flat)
    leaves = posterior_dict(SimpleNamespace(draws=tree)).values()
    return np.concatenate([np.asarray(v).reshape(*flat.shape[:2], -1) for v in leaves], axis=-1)


def _labels(layout) -> list[tuple[str, str]]:
    """``[(variable, row label)]`` per flattened coordinate, labelled as ArviZ does."""
    out = []
    for name, shape in layout:
        if shape == ():
            out.append((name, name))
            continue
        for e in range(int(np.prod(shape))):
            idx = np.unravel_index(e, shape)
            out.append((name, f"{name}[{', '.join(str(int(i)) for i in idx)}]"))
    return out


class _Columns:
    """A few coordinates of a stored run, all draws, shaped as ArviZ data wants them."""

    def __init__(self, run, variables: dict[str, np.ndarray]):
        self.draws = variables
        self.stats = {}
        self.target, self.method, self.seed = run.target, run.method, run.seed
        self.options, self.warmup_steps, self.thin = run.options, run.warmup_steps, run.thin

    def to_arviz(self):
        from energymc.diagnostics import to_arviz

        return to_arviz(self)


def summary(run, **kwargs):
    """ArviZ's summary of a stored run, a batch of coordinates at a time.

    ArviZ needs every draw of a coordinate at once (ESS and R-hat are
    computed over whole chains), but not every coordinate at once: the
    coordinates are gathered in batches of about 16 MB from the chunk files
    and each batch is summarised by ArviZ, so the table is ArviZ's own and
    memory stays flat in the dimension. A run of more than
    100,000 draws per chain is summarised from
    segments of its draws read from the lazy ArviZ data
    (:func:`energymc.diagnostics.summary`), so memory stays flat in the number
    of draws too.
    """
    import pandas as pd

    from energymc.diagnostics import judged_in_segments, segmented_summary
    from energymc.diagnostics import summary as arviz_summary

    # A long run: segments of draws from the lazy ArviZ data, memory flat in the draws.
    if judged_in_segments(run._store.done):
        table = segmented_summary(run.to_arviz(), kwargs)
        if table is not None:
            return table
    store = run._store
    labels = _labels(_display_layout(run))
    step = batch_size(run.chains, store.done)
    tables = []
    # Without a NumPyro postprocess the flat positions are already the draws
    # users see, in the same order (ravel_pytree's): no per-chunk transform.
    post = (lambda f: display_columns(run, f)) if run.target.is_numpyro else None
    for start in range(0, len(labels), step):
        cols = store.columns(start, start + step, postprocess=post)
        part = labels[start:start + step]
        variables, offset = {}, 0
        for name in dict.fromkeys(v for v, _ in part):  # in order, each once
            k = sum(1 for v, _ in part if v == name)
            variables[name] = cols[..., offset:offset + k]
            offset += k
        table = arviz_summary(_Columns(run, variables), **kwargs)
        if len(table) == len(part):  # ArviZ labels a batch from 0: give the run's labels
            table.index = [label for _, label in part]
        tables.append(table)
    return pd.concat(tables)


# ------------------------------------------------------------ lazy ArviZ data
class ChunkReader:
    """Each chunk file as the variables users see, the last chunk read kept.

    Every lazy array of one :func:`to_arviz` result shares a reader, so that
    xarray loading several variables of a chunk reads the file once (the one
    chunk kept is the memory this costs: a few MB, ``_CHUNK_BYTES``).
    """

    def __init__(self, run):
        self.run = run
        self.store = run._store
        self._last: tuple[str, str, dict] | None = None

    def variables(self, name: str, group: str) -> dict[str, np.ndarray]:
        """``{variable: (chains, n, *event)}`` of chunk ``name`` in ``group``."""
        if self._last is not None and self._last[:2] == (name, group):
            return self._last[2]
        if group == "posterior":
            from types import SimpleNamespace

            from energymc.diagnostics import posterior_dict

            pos = self.store._read(name, ["positions"])["positions"]
            out = posterior_dict(SimpleNamespace(draws=self.run._view(pos)))
        else:
            out = {k[len("stat_"):]: v for k, v in self.store._read(
                name, [f"stat_{k}" for k in self.store.stat_names()]).items()}
        self._last = (name, group, out)
        return out

    def head(self):
        """The run's first draw, in memory, shaped as ArviZ data wants it: what
        :func:`energymc.diagnostics.to_arviz` builds the layout of the lazy data from."""
        _, _, first = self.store.bounds()[0]
        posterior = self.variables(first, "posterior")
        head = _Columns(self.run, {k: v[:, :1] for k, v in posterior.items()})
        head.stats = {k: v[:, :1] for k, v in self.variables(first, "sample_stats").items()}
        return head


class StoredArray:
    """One variable of a stored run, ``(chains, draws, *event)``, read from the chunk files.

    An xarray backend array (the interface xarray's own file backends
    implement): wrapped in ``xarray.core.indexing.LazilyIndexedArray`` it
    becomes an xarray variable that reads nothing until indexed or loaded, and
    then only the chunks holding the draws asked for, taking the chains and
    coordinates asked for from each before joining them.

    Parameters
    ----------
    reader
        The run's :class:`ChunkReader`.
    group, name
        ``"posterior"`` or ``"sample_stats"``, and the variable's name there.
    shape, dtype
        ``(chains, draws, *event)`` and the dtype of the whole variable.
    """

    def __init__(self, reader: ChunkReader, group: str, name: str, shape, dtype):
        self.reader, self.group, self.name = reader, group, name
        self.shape, self.dtype = tuple(int(n) for n in shape), np.dtype(dtype)

    def __getitem__(self, key):
        from xarray.core import indexing

        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.BASIC,
                                                  self._read)

    def _read(self, key: tuple) -> np.ndarray:
        """``key``: an int or a slice per axis (xarray's basic indexing)."""
        key = tuple(key) + (slice(None),) * (len(self.shape) - len(key))
        chain_key, draw_key, rest = key[0], key[1], key[2:]
        # Integer chain or draw keys drop their axis: select as slices, drop at the end.
        drop = tuple(ax for ax, k in enumerate((chain_key, draw_key)) if not isinstance(k, slice))
        if not isinstance(chain_key, slice):
            chain_key = slice(int(chain_key), int(chain_key) + 1)
        wanted = (np.arange(*draw_key.indices(self.shape[1])) if isinstance(draw_key, slice)
                  else np.array([int(draw_key) % self.shape[1]]))
        parts = []
        for start, stop, name in self.reader.store.bounds():
            local = wanted[(wanted >= start) & (wanted < stop)] - start
            if local.size:
                chunk = self.reader.variables(name, self.group)[self.name]
                # A copy of the selection only: the chunk itself can go.
                parts.append(np.array(chunk[chain_key][:, local][(slice(None), slice(None)) + rest],
                                      dtype=self.dtype))
        if not parts:  # no draws selected: the right shape, nothing read
            empty = np.empty((self.shape[0], 0, *self.shape[2:]), self.dtype)
            parts = [empty[chain_key][(slice(None), slice(None)) + rest]]
        out = np.concatenate(parts, axis=1)
        # C order, as the arrays of a run in memory: numpy's and numbagg's float32
        # reductions round by memory layout, and the same numbers are wanted.
        return np.asarray(out.squeeze(axis=drop) if drop else out, order="C")


@functools.cache
def _backend_type() -> type:
    """:class:`StoredArray` as a subclass of xarray's ``BackendArray`` (made on first use,
    so that importing energymc does not import xarray)."""
    from xarray.backends import BackendArray

    return type("StoredBackendArray", (StoredArray, BackendArray), {})


def lazy_dataset(template, reader: ChunkReader, group: str):
    """``template`` (a group of one draw, built by ArviZ) with every variable replaced
    by a lazy :class:`StoredArray` of all the run's draws: the same names, dims,
    coords and attrs. Nothing is read."""
    import xarray as xr
    from xarray.core.indexing import LazilyIndexedArray
    from xarray.indexes import RangeIndex

    array_type = _backend_type()
    variables = {}
    for name, var in template.data_vars.items():
        shape = (var.shape[0], reader.store.done, *var.shape[2:])
        lazy = array_type(reader, group, name, shape, var.dtype)
        variables[name] = xr.Variable(var.dims, LazilyIndexedArray(lazy), attrs=var.attrs)
    # The draw numbers as a range (xarray's RangeIndex), not an array: an array of
    # them (int64, copied into a pandas index) was 8 MB a group at 10^6 draws.
    draw = RangeIndex.arange(0, reader.store.done, 1, coord_name="draw", dim="draw",
                             dtype=template["draw"].dtype)
    coords = xr.Coordinates.from_xindex(draw)
    coords.update({k: v for k, v in template.coords.items() if k != "draw"})
    return xr.Dataset(variables, coords=coords, attrs=template.attrs)

