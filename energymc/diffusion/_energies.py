"""How a user's energy becomes one callable module ``m(x, sigma) -> scalar``.

The samplers, the likelihood and composition take either an Equinox module
``m(x, sigma)`` or a function ``energy_fn(params, x, sigma)`` with its
``params``. Both are turned into an Equinox module here, so that every
compiled entry point is an ``equinox.filter_jit`` over that module: its arrays
are traced (new parameters never recompile) and everything else (the user's
function, a schedule) is static.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax

from energymc.errors import EnergyError

__all__ = ["Bound", "as_module"]


class Bound(eqx.Module):
    """``energy_fn(params, x, sigma)`` with its ``params`` bound: a module ``m(x, sigma)``."""

    fn: Callable = eqx.field(static=True)
    params: Any

    def __call__(self, x, sigma):
        return self.fn(self.params, x, sigma)


def as_module(energy, params=None) -> eqx.Module:
    """An Equinox module ``m(x, sigma)`` from a module, or from ``energy_fn`` and ``params``.

    Raises
    ------
    EnergyError
        When ``energy`` is neither, or a module is given parameters too.
    """
    if isinstance(energy, eqx.Module):
        if params is not None:
            raise EnergyError("energy is an Equinox module, which holds its own parameters; "
                              "pass params=None (or energy_fn(params, x, sigma) with params).")
        return energy
    if not callable(energy):
        raise EnergyError(f"energy must be an Equinox module m(x, sigma) or a function "
                          f"energy_fn(params, x, sigma); got {type(energy).__name__}.")
    return Bound(energy, params)


def check_energy(module, event_shape, dtype) -> None:
    """Raise :class:`EnergyError` unless ``module(x, sigma)`` is a real scalar."""
    x = jax.ShapeDtypeStruct(tuple(event_shape), dtype)
    s = jax.ShapeDtypeStruct((), dtype)
    try:
        out = eqx.filter_eval_shape(lambda m, x, s: m(x, s), module, x, s)
    except Exception as exc:
        raise EnergyError(f"calling the energy on one point of shape {tuple(event_shape)} and a "
                          f"scalar sigma raised {type(exc).__name__}: {exc}. It must take ONE "
                          f"point x and the noise level sigma and return a scalar.") from exc
    if not hasattr(out, "shape") or out.shape != ():
        raise EnergyError(f"the energy must return a scalar for ONE point x of shape "
                          f"{tuple(event_shape)}; it returned "
                          f"{getattr(out, 'shape', type(out).__name__)}.")
