"""Progress meters for the host loop (never used under jit).

The policy follows NumPyro: with the meter off, sampling is one compiled
call; with it on, a host loop over compiled chunks updates a tqdm bar between
chunks. The meter is off when ``CI`` is set or output is not a terminal,
unless ``progress=True`` insists.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["make_meter", "TqdmMeter", "NullMeter"]


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
