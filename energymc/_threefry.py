"""Threefry-2x32 written out, not rolled into a loop, while energymc compiles (CPU).

On the CPU backend JAX lowers every Threefry-2x32 hash (each key split,
``fold_in`` and random draw) as a ``while`` loop of five trips, for smaller
programs that compile faster; on the other backends it writes the twenty
rounds out. Inside a training loop of small updates those loops are a large
part of the fixed cost of an update: ``RBM(64, 16).fit`` ran five per update
and spent about half its time in them; a MALA or HMC step of a cheap energy
ran 1.7-1.9x slower with them (NUTS less), for little saving in compilation
(``benchmarks/RESULTS.md``). The hash is the same arithmetic on ``uint32``
either way, so every key and every random draw stays the same bit for bit;
only the compiled program changes.

:func:`unrolled_threefry` swaps JAX's CPU lowering of the hash for JAX's own
written-out one for the duration of a block (where a learner's compiled
chunk is traced and compiled, and where ``sample`` and ``log_partition``
compile their runs), and puts the original back after the last block open in
any thread: a program another thread compiles meanwhile is written out too.
The hashes are the same; the rest of a program XLA fuses around them may
round floats differently in the last bit, which an adaptive run (a tuned step
size, an adaptive schedule) can carry into different draws: a change of
arithmetic, as between JAX builds, not of the distribution sampled. It
reaches into JAX internals (``jax._src``): where they are not as expected it
does nothing, and programs are only slower.
"""

from __future__ import annotations

import contextlib
import threading

__all__ = ["available", "unrolled_threefry"]

try:  # JAX internals; checked once, a no-op without them
    from jax._src.interpreters import mlir as _mlir
    from jax._src.random import threefry2x32 as _tf

    _PRIM = _tf.threefry2x32_p
    _WRITTEN_OUT = _tf._threefry2x32_lowering_rule  # JAX's rule for the other backends
    _CPU_RULES = _mlir._platform_specific_lowerings["cpu"]
    if _PRIM not in _CPU_RULES or not callable(_WRITTEN_OUT):
        raise AttributeError("no CPU lowering of threefry2x32 to swap")
except (ImportError, AttributeError, KeyError, TypeError):
    _PRIM = None

_LOCK = threading.Lock()
_open = 0  # blocks open, in all threads
_saved = None  # JAX's CPU rule while any block is open


def available() -> bool:
    """Whether :func:`unrolled_threefry` can swap the lowering in this JAX."""
    return _PRIM is not None


@contextlib.contextmanager
def unrolled_threefry():
    """Within the block, programs compiled for the CPU write Threefry-2x32 out.

    Only compilation inside the block is affected; a program compiled (and
    cached) before runs as it was compiled. Nested and concurrent blocks
    share one swap, undone when the last one closes.
    """
    global _open, _saved
    if _PRIM is None:
        yield
        return
    with _LOCK:
        if _open == 0:
            _saved = _CPU_RULES[_PRIM]
            _mlir.register_lowering(_PRIM, _WRITTEN_OUT, platform="cpu")
        _open += 1
    try:
        yield
    finally:
        with _LOCK:
            _open -= 1
            if _open == 0:
                _CPU_RULES[_PRIM] = _saved
                _saved = None
