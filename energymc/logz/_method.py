"""The contract of a ``log_partition`` method and the one registry that holds them.

A method is an object with a ``name``, the target ``supports`` it handles, its
typed ``defaults`` (a frozen dataclass), the default number of
``replicates``, and three steps that :func:`energymc.log_partition` calls in
order:

1. ``validate(options, target) -> Context``: check the options eagerly
   (before anything compiles) and derive what every replicate shares (kernel
   object, static configuration). The user's dict is only read.
2. ``plan(target, ref, key, ctx) -> (Context, Estimate | None)``: optional
   work done once before the replicates (SMC's pilot schedule); default none.
3. ``run(target, ref, key, ctx) -> Estimate``: one independent replicate.

Methods register themselves when their module is imported (as kernels do in
:mod:`energymc.kernels`); the modules are imported on the first lookup, so
``import energymc`` does not load BlackJAX's SMC and nested samplers.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

from energymc.errors import OptionError

__all__ = ["BaseOptions", "Context", "Estimate", "LogZMethod", "get", "names", "register"]


@dataclasses.dataclass(frozen=True)
class BaseOptions:
    """Options every method takes: how the reference ``q0`` is built.

    ``scale=2``: a base wider than the target costs a few more stages, one
    narrower than it leaves the particles to grow into the target's tails by
    local moves, which they do too slowly. On the zoo's TUNING half (funnel2,
    banana50, student50, gaussian10; 2 seeds x 2 replicates) AIS errors were
    -0.17..-0.27 nats at scale 1 and -0.13..+0.07 at scale 2, with no change
    on mixture10d3.

    ``defensive=None``: the default Gaussian's share of a fitted base,
    ``MODES_DEFENSIVE`` (0.15) for ``base="modes"`` and ``AUTO_DEFENSIVE``
    (0) for ``base="auto"`` (:mod:`energymc.logz._modes`).
    """

    scale: Any = 2.0
    probs: Any = None
    pilot_draws: int = 500
    mode_starts: int = 32
    defensive: float | None = None


@dataclasses.dataclass(frozen=True)
class Context:
    """What one ``log_partition`` call derived from its options, shared by its replicates.

    Methods subclass it with their own fields (kernel, static config, ...).
    It is built by ``validate`` and changed only by ``dataclasses.replace``.

    Attributes
    ----------
    options
        The method's validated options (its frozen options dataclass).
    mesh
        Devices the particles are split over (AIS, SMC), or ``None``.
    ticks
        Whether the compiled runs report their stages to a progress meter.
    """

    options: Any
    mesh: Any = None
    ticks: bool = False


class Estimate(NamedTuple):
    """One replicate's estimate: the fields :class:`energymc.logz.LogZ` is built from.

    ``particles`` is ``(n, dim)`` flat (or ``None``), ``weights`` ``(n,)``
    normalised; ``stages`` a dict of ``(num_stages,)`` arrays; ``lower`` and
    ``upper`` are set by ``bdmc`` only.
    """

    log_z: float
    stderr: float
    ess: float
    stages: dict
    particles: Any
    weights: Any
    grad_evals: float
    problems: list
    info: dict
    lower: float | None = None
    upper: float | None = None


class LogZMethod:
    """Base class of the methods: every optional step with its default.

    Attributes
    ----------
    name
        What ``log_partition(method=...)`` is called with.
    supports
        Target supports it can estimate (``"real"``, ``"binary"``, ``"spin"``).
    defaults
        A frozen dataclass instance holding the method's options and defaults.
    replicates
        Independent runs by default (their spread checks each run's stderr).
    follows_stderr
        Whether the default effort adds replicates while the pooled stderr is
        above its target (``energymc.logz._api.PRECISION_STDERR``): for
        methods whose replicates estimate ``Z`` without bias, so that pooling
        more of them shrinks the error itself and not only its error bar.
    splits_particles
        Whether its particles are split over the devices (``devices=``).
    """

    name: str = ""
    supports: tuple = ("real",)
    defaults: Any = None
    replicates: int = 1
    follows_stderr: bool = False
    splits_particles: bool = False

    def option_names(self) -> list[str]:
        """Every option the method takes, the base options included."""
        return [f.name for f in dataclasses.fields(BaseOptions)] + \
            [f.name for f in dataclasses.fields(self.defaults)]

    def options(self, given: dict) -> Any:
        """The method's options dataclass: ``given`` (only its own keys) over the defaults."""
        own = {f.name for f in dataclasses.fields(self.defaults)}
        return dataclasses.replace(self.defaults, **{k: v for k, v in given.items() if k in own})

    def validate(self, options: dict, target) -> Context:  # pragma: no cover - protocol
        raise NotImplementedError

    def plan(self, target, ref, key, ctx: Context) -> tuple[Context, float]:
        """Work shared by the replicates, done once before them with the first
        replicate's ``key``; returns the context the replicates run with and
        the gradient evaluations spent (charged to the first replicate)."""
        del target, ref, key
        return ctx, 0.0

    def run(self, target, ref, key, ctx: Context) -> Estimate:  # pragma: no cover - protocol
        raise NotImplementedError

    def progress_units(self, ctx: Context) -> int:
        """Progress-bar units of one run (1: the bar moves once per run)."""
        del ctx
        return 1

    def mesh(self, devices, options):
        """The devices a replicate's work is split over (``devices=`` of
        :func:`energymc.log_partition`; checked for every method), or ``None``.

        By default particles (``splits_particles``) over the largest number
        of devices that divides ``particles`` (SMC, whose BlackJAX step cannot
        be padded); AIS/BDMC (padded particles) and PT (padded chains)
        override it to use every chosen device.
        """
        from energymc import _sharding

        mesh = _sharding.particle_mesh(devices, getattr(options, "particles", 1) or 1)
        return mesh if self.splits_particles else None

    def num_particles(self, options) -> int:
        """Particles (or draws) per replicate, for :attr:`LogZ.num_particles`."""
        return int(getattr(options, "particles", 0) or 0)

    def __repr__(self) -> str:
        return f"<log_partition method {self.name!r}>"


_REGISTRY: dict[str, LogZMethod] = {}

# Modules whose methods register themselves on import; loaded on first lookup.
_MODULES = ("energymc.logz._ais", "energymc.logz._smc", "energymc.logz._nested",
            "energymc.logz._tempering")


def register(method: LogZMethod) -> LogZMethod:
    """Make ``method`` available to :func:`energymc.log_partition` under ``method.name``."""
    missing = [h for h in ("validate", "run", "plan", "progress_units", "num_particles")
               if not callable(getattr(method, h, None))]
    if missing or not dataclasses.is_dataclass(method.defaults):
        raise TypeError(f"log_partition method {method.name!r} lacks "
                        f"{', '.join(missing) or 'a dataclass of defaults'}; subclass "
                        "energymc.logz._method.LogZMethod.")
    _REGISTRY[method.name] = method
    return method


def _load() -> None:
    import importlib

    for module in _MODULES:
        importlib.import_module(module)


def names(support: str | None = None) -> list[str]:
    """Registered method names (in registration order), optionally those for ``support``."""
    _load()
    return [n for n, m in _REGISTRY.items() if support is None or support in m.supports]


def get(name: str, valid: tuple = ()) -> LogZMethod:
    """The method called ``name``; an :class:`OptionError` naming the valid ones otherwise."""
    _load()
    if not isinstance(name, str) or name not in _REGISTRY:
        raise OptionError(f"unknown log_partition method {name!r}; valid methods are "
                          f"{', '.join(valid or tuple(_REGISTRY))}.")
    return _REGISTRY[name]
