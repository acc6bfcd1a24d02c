"""Kernels by name: ``get("nuts")`` returns an object that follows
:class:`energymc._base.Kernel`.

Continuous kernels wrap BlackJAX (``_blackjax.py``); discrete kernels for
binary and spin states are written to the same contract and registered here,
so :func:`energymc.sample`, ``Run`` and the ArviZ export treat both alike.
"""

from __future__ import annotations

import sys

from energymc._base import KERNEL_HOOKS, Kernel
from energymc._util import static
from energymc.errors import OptionError
from energymc.kernels._blackjax import CONTINUOUS_KERNELS

__all__ = ["get", "names", "register", "resolve_options", "unregister"]

_REGISTRY: dict[str, Kernel] = dict(CONTINUOUS_KERNELS)
# Names of energymc's own kernels (other parts of the package rely on them).
_OWN_NAMES: set[str] = set(CONTINUOUS_KERNELS)


def register(kernel: Kernel) -> Kernel:
    """Make ``kernel`` available to :func:`energymc.sample` under ``kernel.name``.

    Raises
    ------
    TypeError
        When ``kernel`` lacks one of the contract's hooks
        (:data:`energymc._base.KERNEL_HOOKS`); subclassing
        :class:`energymc._base.Kernel` gives every optional hook its default.
    """
    missing = [h for h in KERNEL_HOOKS if not hasattr(kernel, h)]
    if missing:
        raise TypeError(
            f"kernel {getattr(kernel, 'name', kernel)!r} lacks {', '.join(missing)}; subclass "
            "energymc._base.Kernel, which gives every optional hook its default.")
    _REGISTRY[kernel.name] = kernel
    # Registered by energymc's own modules (discrete kernels, PT): not removable.
    if sys._getframe(1).f_globals.get("__name__", "").startswith("energymc."):
        _OWN_NAMES.add(kernel.name)
    return kernel


def unregister(name: str) -> Kernel:
    """Remove the kernel registered as ``name`` and return it (e.g. a test's own kernel).

    Raises
    ------
    OptionError
        When no kernel of that name is registered, or ``name`` is one of
        energymc's own kernels, which other parts of the package rely on.
    """
    _load_discrete()
    if name not in _REGISTRY:
        raise OptionError(f"no kernel named {name!r} is registered; registered: "
                          f"{', '.join(sorted(_REGISTRY))}.")
    if name in _OWN_NAMES:
        raise OptionError(f"{name!r} is one of energymc's own kernels and cannot be removed; "
                          "register yours under another name.")
    return _REGISTRY.pop(name)


def names(support: str | None = None) -> list[str]:
    """Method names, optionally only those that can sample ``support``."""
    _load_discrete()
    return sorted(n for n, k in _REGISTRY.items() if support is None or support in k.supports)


# Modules whose kernels register themselves on import (discrete kernels,
# parallel tempering); imported on first lookup so that `import energymc` stays light.
_LAZY_MODULES = ("energymc.kernels.discrete", "energymc.kernels.tempering")


def _load_discrete() -> None:
    import importlib

    for module in _LAZY_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def get(name: str) -> Kernel:
    """The kernel called ``name``; an :class:`OptionError` listing valid names otherwise."""
    _load_discrete()
    if not isinstance(name, str) or name not in _REGISTRY:
        raise OptionError(
            f"unknown method {name!r}; valid methods are {', '.join(sorted(_REGISTRY))}."
        )
    return _REGISTRY[name]


def resolve_options(kernel: Kernel, options: dict, *, context: str = "sample") -> tuple:
    """Merge user ``options`` over the kernel's defaults into a hashable tuple.

    Raises
    ------
    OptionError
        For an option the kernel does not take, naming the ones it does.
    """
    unknown = sorted(set(options) - set(kernel.defaults))
    if unknown:
        valid = ", ".join(sorted(kernel.defaults)) or "none"
        raise OptionError(
            f"{context}(method={kernel.name!r}) got unknown option(s) {unknown}; "
            f"valid options for {kernel.name!r} are: {valid}."
        )
    merged = {**kernel.defaults, **options}
    return tuple(sorted((k, _hashable(v)) for k, v in merged.items()))


def _hashable(value):
    """An option value usable as a ``jit`` static argument: array values (a user's
    inverse mass matrix) are compared by value (:func:`energymc._util.static`)."""
    try:
        hash(value)
        return value
    except TypeError:
        import numpy as np

        return static(np.asarray, np.asarray(value))
