"""Progress meters for the host loop, and ticks from inside a compiled loop.

The policy follows NumPyro: with the meter off, sampling is one compiled
call; with it on, a host loop over compiled chunks updates a tqdm bar between
chunks. The meter is off when ``CI`` is set or output is neither a terminal
nor a notebook, unless ``progress=True`` insists.

Some loops cannot be cut into chunks from outside (a kernel's warmup is one
BlackJAX adaptation loop that carries its tuning state). For those, in the
manner of diffrax's progress meter, compiled code calls :func:`tick` once per
step; the tick reaches the host through ``jax.debug.callback`` and advances
whichever meter :func:`ticks_to` has made the listener. With no listener a
tick does nothing, and code compiled without ticks contains none.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

__all__ = ["make_meter", "TqdmMeter", "NullMeter", "tick", "tick_interval", "ticks_to"]


class NullMeter:
    """Reports nothing; sampling runs as a single compiled call."""

    active = False

    def start(self, total: int, description: str) -> None:
        pass

    def update(self, n: int, postfix: Mapping[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class TqdmMeter:
    """A tqdm bar showing acceptance and divergences after each chunk."""

    active = True

    def __init__(self):
        self._bar = None

    def start(self, total: int, description: str) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, desc=description, leave=True, dynamic_ncols=True)

    def update(self, n: int, postfix: Mapping[str, Any]) -> None:
        if self._bar is not None:
            self._bar.update(n)
            if postfix:
                self._bar.set_postfix(postfix, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class _UserMeter:
    """Adapts a user object with start/update/close to the loop."""

    active = True

    def __init__(self, meter):
        self._meter = meter

    def start(self, total, description):
        self._meter.start(total, description)

    def update(self, n, postfix):
        self._meter.update(n, postfix)

    def close(self):
        self._meter.close()


def _interactive() -> bool:
    if os.environ.get("CI"):
        return False
    try:
        return sys.stderr.isatty() or "ipykernel" in sys.modules
    except (AttributeError, ValueError):
        return False


def make_meter(progress) -> NullMeter | TqdmMeter | _UserMeter:
    """``None`` → auto; ``True``/``False``; or an object with start/update/close."""
    if progress is None:
        progress = _interactive()
    if progress is True:
        return TqdmMeter()
    if progress is False:
        return NullMeter()
    if all(hasattr(progress, m) for m in ("start", "update", "close")):
        return _UserMeter(progress)
    from energymc.errors import OptionError

    raise OptionError(
        "progress must be None, True, False or an object with start/update/close; "
        f"got {progress!r}."
    )


# ----------------------------------------------------------------------- ticks
class _Listener:
    """The meter that ticks advance, and how many it has taken (at most ``total``)."""

    def __init__(self, meter, total: int):
        self.meter = meter
        self.total = int(total)
        self.count = 0


# Ticks arrive on the thread XLA runs the callback on, not the caller's: the
# listener is swapped and advanced under a lock.
_LOCK = threading.Lock()
_LISTENER: _Listener | None = None


def _host_tick(steps) -> None:
    with _LOCK:
        listener = _LISTENER
        if listener is None or listener.count >= listener.total:
            return
        n = min(int(steps), listener.total - listener.count)
        listener.count += n
    try:
        listener.meter.update(n, {})
    except Exception:  # noqa: BLE001
        # An exception raised in a host callback aborts the whole compiled run;
        # a broken display must never cost the user their draws.
        pass


def tick(step=None, every: int = 1) -> None:
    """Report progress from inside compiled code (the pure side); the host meter advances.

    Parameters
    ----------
    step
        The index of the current step, a scalar shared by all chains (e.g.
        the counter of a ``lax.scan``), or ``None``.
    every
        With ``step``, only steps with ``step % every == 0`` call the host,
        each reporting ``every`` steps. A host callback costs tens of
        microseconds, as much as a cheap kernel's whole step, so loops of
        thousands of steps report about a hundred times, not every time.
        Without ``step`` every call reports one step.

    Notes
    -----
    ``jax.debug.callback`` rather than ``io_callback``: the tick returns
    nothing the computation depends on, so it cannot change a single number
    of the run. Its only operand is the constant step count, never a chain's
    value, so under ``jax.vmap`` over chains it stays one call per step, not
    one per chain; and ``step`` must not depend on the chain either, or the
    ``cond`` would become a ``select`` that calls the host every step.
    """
    import jax

    every = max(int(every), 1)
    if step is None or every == 1:
        jax.debug.callback(_host_tick, every)
        return
    jax.lax.cond(step % every == 0, lambda: jax.debug.callback(_host_tick, every),
                 lambda: None)


def tick_interval(total: int, reports: int = 100) -> int:
    """How many steps one tick should stand for, for about ``reports`` ticks in ``total`` steps."""
    return max(int(total) // max(int(reports), 1), 1)


@contextmanager
def ticks_to(meter, total: int) -> Iterator[_Listener]:
    """Route :func:`tick` calls to ``meter`` (at most ``total`` of them) while inside.

    Yields the listener, whose ``count`` says how many ticks arrived, so the
    caller can complete the bar for code that did not tick.
    """
    global _LISTENER
    listener = _Listener(meter, total)
    with _LOCK:
        previous, _LISTENER = _LISTENER, listener
    try:
        yield listener
    finally:
        import jax

        # Callbacks may still be in flight when the computation's outputs are
        # ready; wait for them so that no tick lands on the next listener.
        jax.effects_barrier()
        with _LOCK:
            _LISTENER = previous
