"""The contracts every part of energymc is written against.

One short file of protocols, in the manner of ``blackjax/base.py``: a target
(:class:`Target`), a Markov kernel (:class:`Kernel`), a progress meter
(:class:`ProgressMeter`) and a learner (:class:`Learner`). Pure JAX code
implements the first two; host code implements the meter.

Every kernel works on a *flat* position: a 1-D array of shape ``(dim,)``.
:class:`energymc.Energy` ravels a user's pytree on the way in and unravels the
draws on the way out, so kernels, mass matrices and preconditioners never see
pytrees.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Protocol, runtime_checkable

import jax
import numpy as np

__all__ = [
    "Array",
    "PRNGKey",
    "LogDensityFn",
    "KERNEL_HOOKS",
    "Kernel",
    "KernelFacts",
    "KernelState",
    "Learner",
    "ProgressMeter",
    "Target",
    "WarmupResult",
]

Array = jax.Array
PRNGKey = jax.Array
#: ``z (dim,) -> scalar``: the log-density ``-E`` of a flat position.
LogDensityFn = Callable[[Array], Array]

#: The supports a target can declare. ``"real"`` is R^dim; ``"binary"`` is
#: {0, 1}^dim; ``"spin"`` is {-1, +1}^dim (stored as floats).
SUPPORTS = ("real", "binary", "spin")


class KernelFacts(NamedTuple):
    """What a kernel may know about a target beyond its log-density.

    Built by :meth:`energymc.Energy.kernel_facts` and handed to a kernel by
    the caller that holds the target (:meth:`Kernel.bind_target`), so that a
    kernel never has to find the target behind the function it is given.

    Attributes
    ----------
    support
        ``"real"``, ``"binary"`` or ``"spin"``.
    flip_energy_delta
        Optional ``z (dim,) -> (dim,)``: ``E(z with site i flipped) - E(z)``
        for every site at once (an exact local field), or ``None``.
    colors
        Optional ``(dim,)`` ints, a graph colouring: sites of one colour do not
        interact. Given together with ``flip_energy_delta``, or ``None``.
    """

    support: str
    flip_energy_delta: Callable | None = None
    colors: Any = None


class KernelState(Protocol):
    """Anything a kernel carries between steps; it must expose the flat position."""

    position: Array  # (dim,)


class WarmupResult(NamedTuple):
    """What one chain's warmup hands to the sampling phase.

    Attributes
    ----------
    state
        The kernel state after warmup (a pytree whose ``position`` is ``(dim,)``).
    params
        Tuned parameters as a dict of arrays (``step_size`` ``()``,
        ``inverse_mass_matrix`` ``(dim,)`` or ``(dim, dim)``, ...). These are
        traced, so a different value never recompiles.
    info
        Per-warmup-step diagnostics, a dict of ``(num_steps,)`` arrays
        (may be empty).
    """

    state: Any
    params: dict
    info: dict


class Kernel(Protocol):
    """A Markov kernel as energymc drives it: pure, single-chain, vmappable.

    ``options`` is a hashable ``tuple`` of ``(name, value)`` pairs: static
    choices (``dense_mass``, ``num_integration_steps``, ...) that select code.
    ``params`` is a dict of arrays: tunable numbers that do not.

    A kernel subclasses this class (every built-in kernel does) and so
    inherits the default of each optional hook below; callers use the hooks
    directly, never ``hasattr``. :func:`energymc.kernels.register` refuses an
    object that lacks one of them.

    Attributes
    ----------
    name
        The method name users pass to :func:`energymc.sample`.
    supports
        Which target supports this kernel can sample (subset of ``SUPPORTS``).
    defaults
        Every valid option with its default value.
    summed_stats
        Optional (default ``()``): names of stats that are counts; with
        ``thin > 1`` they are summed over the thinned steps (others keep the
        last step's value; ``diverging`` is any, ``acceptance_rate`` the mean).
    grad_evals_per_step
        Optional (default 1): gradient (or energy) evaluations one step costs
        when the step's stats carry no ``n_steps`` (see :meth:`count_grad_evals`).
    warns_divergences
        Optional (default False): divergent transitions after warmup mean the
        draws may be biased (HMC, NUTS), so :func:`energymc.sample` warns.
    """

    name: str
    supports: tuple[str, ...]
    defaults: Mapping[str, Any]
    summed_stats: tuple[str, ...] = ()
    grad_evals_per_step: int = 1
    warns_divergences: bool = False

    def init(self, key: PRNGKey, position: Array, logdensity_fn: LogDensityFn,
             params: dict, options: tuple) -> Any:
        """Return the kernel state at ``position`` ``(dim,)``."""

    def step(self, key: PRNGKey, state: Any, logdensity_fn: LogDensityFn,
             params: dict, options: tuple) -> tuple[Any, dict]:
        """One transition. Returns ``(new_state, stats)``.

        ``stats`` is a dict of scalars named as ArviZ names sample stats
        (``lp``, ``acceptance_rate``, ``diverging``, ``energy``, ``step_size``,
        ``n_steps``, ``tree_depth``); it always holds ``lp``,
        ``acceptance_rate`` and ``diverging``. A non-finite log-density is a
        rejected proposal counted in ``diverging``, never a NaN position.
        """

    def warmup(self, key: PRNGKey, position: Array, logdensity_fn: LogDensityFn,
               num_steps: int, options: tuple) -> WarmupResult:
        """Tune ``params`` for one chain over ``num_steps`` steps.

        Optional keyword (default: not taken): a kernel whose warmup accepts
        ``tick=None`` gets, when a progress meter is on, a callable it calls
        as ``tick(i, every)`` once per step with a step counter ``i`` that is
        shared by all chains (``every`` from
        :func:`energymc.progress.tick_interval`), so that the warmup bar moves
        while the compiled warmup runs. The draws must not depend on it. A
        warmup without ``tick`` is one compiled call; its bar completes at the
        end (``energymc.sampling.warmup_ticks`` tells the two apart).
        """

    def default_params(self, dim: int, options: tuple) -> dict:
        """Parameters used when ``adapt=False`` (user values fill them in)."""

    # ------------------------------------------------ optional hooks (defaults)
    def validate(self, options: tuple, dim: int) -> None:
        """Raise ``OptionError`` for option values that cannot work (default: accept all).

        Called by ``sample`` and the log Z estimators before anything compiles.
        """
        return None

    def bind_target(self, facts: KernelFacts) -> Kernel:
        """This kernel told what it may know about the target (default: ``self``, unchanged).

        Called by the code that holds the target (the sampling loop, inside
        the traced function, so that a fast path bound to traced parameters
        stays traced) with :meth:`energymc.Energy.kernel_facts`. A kernel that
        uses the support or an exact local field returns a copy that carries
        them; it never looks for the target behind ``logdensity_fn``.
        """
        return self

    def prepare(self, params: dict, options: tuple) -> Any:
        """The params ``step`` is then called with (default: ``params`` unchanged).

        Computed once per chain and stretch of steps rather than every step
        (e.g. the Cholesky factor of a dense mass matrix); the result lives
        only inside the traced loop and need not be a pytree.
        """
        return params

    def after_burn_in(self, key: PRNGKey, state: Any, logdensity_fn: LogDensityFn,
                      params: dict, options: tuple) -> dict:
        """``params`` completed at one chain's ``state`` after an untuned burn-in
        (default: ``params`` unchanged).

        Called by :func:`energymc.sample` with ``adapt=False`` (a tuning
        warmup measures what it needs itself), inside the trace: e.g. ULA's
        estimate of the target's curvature, which its step reports as a stat.
        """
        return params

    @property
    def tunable(self) -> bool:
        """Whether warmup or a log Z estimator has a step size to tune
        (default: ``"step_size"`` is one of the kernel's options)."""
        return "step_size" in self.defaults

    def count_grad_evals(self, stats: Mapping[str, Any], thin: int) -> int:
        """Gradient (or energy) evaluations behind ``stats`` of ``(chains, draws)`` steps kept
        every ``thin`` steps (host code).

        Default: the sum of ``n_steps`` when the kernel reports it (HMC, NUTS),
        else ``grad_evals_per_step`` per step.
        """
        if "n_steps" in stats:
            return int(np.sum(stats["n_steps"]) * thin)
        return int(np.size(stats["lp"]) * thin * self.grad_evals_per_step)


#: The hooks a registered kernel must have; subclassing :class:`Kernel` gives
#: each its default.
KERNEL_HOOKS = ("init", "step", "warmup", "default_params", "validate", "prepare",
                "bind_target", "summed_stats", "grad_evals_per_step", "warns_divergences",
                "tunable", "count_grad_evals", "after_burn_in")


@runtime_checkable
class Target(Protocol):
    """What samplers and estimators need of a target (:class:`energymc.Energy`)."""

    dim: int
    support: str

    def flat_logdensity(self, z: Array) -> Array:
        """``-E`` at a flat position ``z`` ``(dim,)``; a scalar."""


class ProgressMeter(Protocol):
    """Host-side progress, updated between compiled chunks (never under jit)."""

    def start(self, total: int, description: str) -> None: ...

    def update(self, n: int, postfix: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


class Learner(Protocol):
    """A learner of energy parameters, driven like ``numpyro.infer.SVI``."""

    def init(self, key: PRNGKey, data: Array, init_params: Any) -> Any: ...

    def update(self, state: Any, batch: Array) -> tuple[Any, Array]: ...

    def run(self, key: PRNGKey, num_steps: int, data: Array, **kwargs) -> Any: ...
