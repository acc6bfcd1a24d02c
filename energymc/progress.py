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

Annealing loops (AIS, SMC, BDMC) report their stages the same way through a
:class:`StageTicks`: by the stage count when the schedule fixes it, and by
the inverse temperature ``beta`` when an adaptive schedule chooses the
stages as it goes (their number is unknown until the end).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NamedTuple

__all__ = ["make_meter", "TqdmMeter", "NullMeter", "StageTicks", "tick", "tick_interval",
           "ticks_to"]


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
    """The meter that ticks advance, and how many it has taken (at most ``total``).

    ``postfix`` is shown with every update (e.g. which replicate is running).
    """

    def __init__(self, meter, total: int, postfix: Mapping[str, Any] | None = None):
        self.meter = meter
        self.total = int(total)
        self.count = 0
        self.postfix = dict(postfix or {})


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
    _show(listener, n, listener.postfix)


def _host_stage(position, stage, beta) -> None:
    # ``position`` is absolute (units done in this run), not an increment: a
    # tick that arrives late (callbacks are unordered) moves nothing back.
    with _LOCK:
        listener = _LISTENER
        if listener is None:
            return
        n = min(int(position), listener.total) - listener.count
        if n <= 0:
            return
        listener.count += n
    _show(listener, n, {**listener.postfix, "stage": int(stage), "beta": f"{float(beta):.3f}"})


def _show(listener, n, postfix) -> None:
    try:
        listener.meter.update(n, postfix)
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
    nothing the computation depends on, so no number of the run depends on
    it. (The compiler may still arrange the loop around a host call
    differently: under JAX 0.12 PT's warmup then differs in the last bits of
    a float32, never more.) Its only operand is the constant step count, never a chain's
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


# Units of the bar for one run of an adaptive schedule: percent of the way in beta.
BETA_UNITS = 100


class StageTicks(NamedTuple):
    """How an annealing loop reports its stages from inside compiled code.

    Static (hashable, compared by value): a loop compiled with one reports,
    one compiled without (``None`` in its place) contains no callback. The
    loop calls it once per stage, ``ticks(i, beta_before, beta_after)``, with
    ``i`` the stage index and the inverse temperatures the stage went between
    (scalars shared by all particles, never a particle's value). The host is
    called about a hundred times per run at most, not once per stage.

    Attributes
    ----------
    stages
        The number of stages when the schedule fixes it: the bar moves by
        stages. ``None`` for an adaptive schedule, whose number of stages is
        known only at the end: the bar moves by ``beta`` instead, in
        :data:`BETA_UNITS` (percent) from 0 to 1.
    offset
        Units already done in this run before the loop (BDMC's reverse run
        comes after its forward run in the same bar).
    reverse
        ``beta`` runs from 1 down to 0 (reverse AIS): progress is ``1 - beta``.
    """

    stages: int | None = None
    offset: int = 0
    reverse: bool = False

    @property
    def units(self) -> int:
        """Bar units this loop accounts for."""
        return BETA_UNITS if self.stages is None else int(self.stages)

    def __call__(self, i, beta_before, beta_after) -> None:
        import jax
        import jax.numpy as jnp

        done = i + 1
        if self.stages is None:
            def units(beta):
                frac = 1.0 - beta if self.reverse else beta
                return jnp.floor(BETA_UNITS * jnp.clip(frac, 0.0, 1.0)).astype(jnp.int32)

            now = units(beta_after)
            # Only when beta crosses a new percent: at most BETA_UNITS calls.
            report = now > units(beta_before)
        else:
            now = jnp.minimum(done, self.stages).astype(jnp.int32)
            every = tick_interval(self.stages)
            report = (done % every == 0) | (done == self.stages)
        jax.lax.cond(report,
                     lambda: jax.debug.callback(_host_stage, self.offset + now, done, beta_after),
                     lambda: None)


@contextmanager
def ticks_to(meter, total: int, postfix: Mapping[str, Any] | None = None) -> Iterator[_Listener]:
    """Route :func:`tick` calls to ``meter`` (at most ``total`` of them) while inside.

    Yields the listener, whose ``count`` says how many ticks arrived, so the
    caller can complete the bar for code that did not tick. ``postfix`` is
    shown with each update (stage ticks add the stage and ``beta``).
    """
    global _LISTENER
    listener = _Listener(meter, total, postfix)
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
