"""Small helpers shared across energymc's sub-packages (internal; public ones re-exported).

One home for what ``sampling``, ``logz/``, ``learn/``, ``kernels/`` and
``models/`` all need, so that no module imports another's private names
(``tests/test_architecture.py`` checks that): seeds as keys, chunking of
compiled loops, integer option checks, the non-finite guard, Kish's effective
sample size, a function's positional arity, initial step sizes, the
package version, the one way to make a function a ``jit`` static argument
(:func:`static`), and the counter of compilations behind the public
:func:`energymc.compilations`.

Host helpers (``as_key``, ``chunk_lengths``, ``check_int``, ``n_positional``,
``version``) run before anything compiles; ``nonfinite_to_neginf``,
``kish_ess`` and ``log_ess`` are pure and may be traced.
"""

from __future__ import annotations

import collections
import contextlib
import inspect
import math
import threading
import warnings
from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np
from blackjax.smc.ess import log_ess as _blackjax_log_ess

from energymc.errors import OptionError

__all__ = [
    "INITIAL_STEP",
    "as_key",
    "check_int",
    "check_option_int",
    "chunk_lengths",
    "Compilations",
    "compilations",
    "default_step",
    "deprecated",
    "kish_ess",
    "langevin_mh_acceptance",
    "log_ess",
    "n_positional",
    "nonfinite_to_neginf",
    "static",
    "version",
    "renamed",
]


# ------------------------------------------------------------------ seeds
def as_key(seed) -> jax.Array:
    """A typed PRNG key from an int seed or an existing key (typed or raw ``uint32[2]``).

    Raises
    ------
    OptionError
        For anything else (a float, a bool, a string), saying what to pass.
    """
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return jax.random.key(int(seed))
    if isinstance(seed, jax.Array):
        if jnp.issubdtype(seed.dtype, jax.dtypes.prng_key):
            return seed
        if seed.shape == (2,) and seed.dtype == jnp.uint32:
            return jax.random.wrap_key_data(seed)
    raise OptionError(
        f"seed must be an int or a jax.random.key; got {type(seed).__name__}. "
        "Pass e.g. seed=0 or seed=jax.random.key(0)."
    )


# ------------------------------------------------------------------ loops
def chunk_lengths(draws: int, chunked: bool) -> list[int]:
    """Chunk lengths summing to ``draws``; as few distinct lengths as possible.

    Every distinct length compiles once, so prefer a divisor of ``draws``
    giving 10 to 40 chunks. Used by the sampling loop and the learners'
    training loop alike.
    """
    if not chunked or draws < 20:
        return [draws]
    for n_chunks in range(20, 41):
        if draws % n_chunks == 0:
            return [draws // n_chunks] * n_chunks
    for n_chunks in range(19, 9, -1):
        if draws % n_chunks == 0:
            return [draws // n_chunks] * n_chunks
    size = math.ceil(draws / 20)
    full, rest = divmod(draws, size)
    return [size] * full + ([rest] if rest else [])


# ------------------------------------------------------------------ jit static arguments
def _by_value(part):
    """What a bound argument of :class:`static` is compared by: arrays by shape, dtype
    and bytes (NumPy's and JAX's are unhashable), everything else as itself."""
    if isinstance(part, (np.ndarray, jax.Array)) and not isinstance(part, jax.core.Tracer):
        arr = np.asarray(part)
        return ("array", arr.shape, arr.dtype.str, arr.tobytes())
    return part


class static:  # noqa: N801 - used like functools.partial, whose spelling it follows
    """``fn`` with its leading arguments bound, hashable and equal by value.

    The one mechanism energymc uses to pass a function as a ``jax.jit``
    static argument: two ``static(fn, *parts)`` are equal when ``fn`` is the
    same and the ``parts`` are equal (arrays by value), so compiled code keyed
    on them is shared. ``functools.partial`` is hashed by identity and would
    compile anew for every new object.

    Calling it calls ``fn(*parts, *args, **kwargs)``. With no argument left
    to bind it also reads as an array (``np.asarray(static(np.asarray, a))``),
    which is how array-valued kernel options stay hashable.

    Parameters
    ----------
    fn
        A hashable callable (a module-level function, a bound method, ...).
    *parts
        Hashable values or arrays bound as ``fn``'s first arguments.
    """

    __slots__ = ("fn", "parts", "_key", "__name__")

    def __init__(self, fn, *parts):
        self.fn = fn
        self.parts = parts
        self._key = (fn, tuple(_by_value(p) for p in parts))
        self.__name__ = getattr(fn, "__name__", "static")

    def __call__(self, *args, **kwargs):
        return self.fn(*self.parts, *args, **kwargs)

    def __array__(self, dtype=None, copy=None):
        arr = np.asarray(self())
        return arr if dtype is None else arr.astype(dtype)

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other) -> bool:
        return isinstance(other, static) and self._key == other._key

    def __repr__(self) -> str:
        return f"static({self.__name__}, {len(self.parts)} bound)"


# ------------------------------------------------------------------ renamed arguments
def renamed(old: str, new: str, old_value, new_value, *, default=None, stacklevel: int = 3):
    """The value of an argument renamed ``old`` -> ``new``, warning when ``old`` is used.

    Old spellings keep working for one release with a ``DeprecationWarning``
    (the vocabulary in ``docs/architecture.md``). ``None`` means "not given";
    giving both is an error.

    Raises
    ------
    OptionError
        When both ``old`` and ``new`` are given.
    """
    if old_value is None:
        return default if new_value is None else new_value
    if new_value is not None:
        raise OptionError(f"pass {new}= only; {old}= is its old name.")
    deprecated(f"{old}=", f"{new}= (same meaning)", stacklevel=stacklevel + 1)
    return old_value


def deprecated(old: str, instead: str, *, stacklevel: int = 3) -> None:
    """Warn (``DeprecationWarning``) that ``old`` goes in the next release; use ``instead``."""
    warnings.warn(f"{old} is deprecated and will be removed in the next release; use {instead}.",
                  DeprecationWarning, stacklevel=stacklevel)


# ------------------------------------------------------------------ input checks
def check_int(name: str, value, minimum: int) -> int:
    """``value`` as an ``int`` if it is an integer ``>= minimum`` (bools are not).

    Raises
    ------
    OptionError
        ``"{name} must be an integer >= {minimum}; got {value!r}."``
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise OptionError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def check_option_int(name: str, value, minimum: int) -> int:
    """:func:`check_int` for a keyword option: the message names it ``name=``."""
    return check_int(f"{name}=", value, minimum)


def check_bool(name: str, value) -> bool:
    """``value`` if it is ``True`` or ``False`` (a truthy string or 0/1 is not).

    Raises
    ------
    OptionError
        ``"{name} must be True or False; got {value!r}."``
    """
    if not isinstance(value, (bool, np.bool_)):
        raise OptionError(f"{name} must be True or False; got {value!r}.")
    return bool(value)


def n_positional(fn) -> int | None:
    """How many positional parameters without defaults ``fn`` takes (``None``: cannot tell)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    n = 0
    for p in sig.parameters.values():
        if p.kind == p.VAR_POSITIONAL:
            return None
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty:
            n += 1
    return n


# ------------------------------------------------------------------ numerical guards
@jax.custom_jvp
def nonfinite_to_neginf(value):
    """``value`` with NaN and ``±inf`` read as ``-inf``: zero density, a rejected proposal.

    The tangent passes through unchanged: it differs from that of the plain
    ``jnp.where`` only at non-finite points, which no kernel accepts and no
    weight keeps. With the plain ``where``, the select in the backward pass
    made SMC's MALA moves ~45% slower on CPU (ManyWell-32, 2048 particles);
    with this, no slower than no guard.
    """
    return jnp.where(jnp.isfinite(value), value, -jnp.inf)


@nonfinite_to_neginf.defjvp
def _nonfinite_to_neginf_jvp(primals, tangents):
    return nonfinite_to_neginf(primals[0]), tangents[0]


def langevin_mh_acceptance(old, new, step_size, inverse_mass_matrix=None):
    """``min(1, MH ratio)`` of the Langevin move ``old -> new`` (pure; traced).

    ``old`` and ``new`` carry ``position``, ``logdensity`` and
    ``logdensity_grad`` (a BlackJAX ``MALAState``). The proposal is
    ``x' = x + h M g(x) + sqrt(2h) M^(1/2) xi`` with ``M`` the inverse mass
    matrix: ``None`` for the identity (positions already whitened, as the
    kernels keep them), else diagonal ``(d,)`` or dense ``(d, d)``. A
    non-finite ratio gives 0.

    Used as MALA's accept probability and, for unadjusted Langevin, as the
    diagnostic "would-be acceptance": ULA never rejects, but a low value
    shows from the run alone that the step is too large for the energy's
    curvature (``energymc.diagnose`` flags it).
    """
    if inverse_mass_matrix is None:
        def log_q(to, frm):
            return -jnp.sum((to.position - frm.position - step_size * frm.logdensity_grad) ** 2) / (
                4.0 * step_size)

        log_ratio = new.logdensity - old.logdensity + log_q(old, new) - log_q(new, old)
    else:
        imm = jnp.asarray(inverse_mass_matrix)

        def apply(g):
            return imm @ g if imm.ndim == 2 else imm * g

        def quad(r):
            return r @ jnp.linalg.solve(imm, r) if imm.ndim == 2 else jnp.sum(r * r / imm)

        x, y = old.position, new.position
        fwd = y - x - step_size * apply(old.logdensity_grad)
        bwd = x - y - step_size * apply(new.logdensity_grad)
        log_ratio = new.logdensity - old.logdensity - (quad(bwd) - quad(fwd)) / (4.0 * step_size)
    return jnp.where(jnp.isfinite(log_ratio), jnp.exp(jnp.minimum(log_ratio, 0.0)), 0.0)


# ------------------------------------------------------------------ weights
@jax.jit
def logsumexp_compiled(values: jax.Array) -> jax.Array:
    """``jax.scipy.special.logsumexp`` of ``(n,)`` values as one compiled program.

    For host code summarising a run: called eagerly, logsumexp runs as about ten
    one-op programs, each compiled on a process's first call (25-90 ms apiece);
    compiled whole it is one, and the arithmetic (float32 ops) is the same.
    """
    return jax.scipy.special.logsumexp(values)


@partial(jax.jit, static_argnums=(1, 2))
def weighted_choice(key, n: int, shape: tuple, p: jax.Array) -> jax.Array:
    """``jax.random.choice(key, n, shape, p=p)`` (with replacement) as one compiled program.

    The same draws as the eager call (whose cumulative sum and search run as
    about ten one-op programs, each compiled on first use).
    """
    return jax.random.choice(key, n, shape, p=p)


def kish_ess(weights):
    """Kish's effective sample size ``1 / sum(w**2)`` of NORMALISED weights ``(n,)``.

    Works on NumPy arrays (host code, float64 as given) and JAX arrays (traced
    code) alike; for unnormalised log-weights use :func:`log_ess`.
    """
    return 1.0 / (weights**2).sum()


def log_ess(log_weights: jax.Array) -> jax.Array:
    """``log`` of Kish's ESS of unnormalised log-weights ``(n,)`` (``blackjax.smc.ess.log_ess``)."""
    return _blackjax_log_ess(log_weights)


# ------------------------------------------------------------------ step sizes
#: ``name -> (c, p)``: a kernel's starting step size ``c * dim**p`` in whitened
#: units, at each kernel's known optimal scaling in dimension (MALA d^-1/3,
#: HMC d^-1/4, RWM d^-1/2); per-stage tuning takes it from there.
INITIAL_STEP = {"dmala": (0.5, 0.0), "mala": (0.5, -1 / 3), "barker": (0.8, -1 / 6),
                "hmc": (0.2, -1 / 4), "nuts": (0.3, -1 / 4), "rwm": (1.0, -1 / 2)}


def default_step(name: str, dim: int) -> float:
    """The starting step size of kernel ``name`` in dimension ``dim`` (``INITIAL_STEP``)."""
    c, p = INITIAL_STEP.get(name, (0.3, -1 / 4))
    return c * dim**p


# ------------------------------------------------------------------ metadata
@lru_cache(maxsize=1)
def version() -> str:
    """The installed distribution's version (``importlib.metadata``); ``"0+unknown"`` when
    energymc runs from a source tree that was never installed."""
    from importlib import metadata

    try:
        return metadata.version("energymc")
    except metadata.PackageNotFoundError:
        return "0+unknown"


# ------------------------------------------------------------------ compilations
#: The ``jax.monitoring`` event JAX records each time it traces a jitted
#: function for a new signature (a cache miss: new shapes, dtypes or static
#: arguments). Tracing, not XLA's compile, is counted: a program loaded from
#: the persistent compilation cache is still traced, and a retrace is what a
#: changed static argument costs.
TRACE_EVENT = "/jax/core/compile/jaxpr_trace_duration"

_ACTIVE: list = []  # counters of the `compilations` blocks now open (host state)
_LOCK = threading.Lock()
_LISTENING = False


class Compilations:
    """How many times jitted functions were traced while a :func:`compilations` block ran.

    Attributes
    ----------
    by_function
        ``collections.Counter``: function name -> number of traces.
    """

    def __init__(self):
        self.by_function: collections.Counter = collections.Counter()

    @property
    def count(self) -> int:
        """Traces of every function together."""
        return sum(self.by_function.values())

    def __getitem__(self, name: str) -> int:
        """Traces of the functions called ``name`` (0 if none)."""
        return self.by_function[name]

    def __repr__(self) -> str:
        return f"Compilations(count={self.count}, by_function={dict(self.by_function)})"


def _on_duration(event: str, duration: float, **kwargs) -> None:
    if event != TRACE_EVENT or not _ACTIVE:
        return
    name = str(kwargs.get("fun_name", "?"))
    with _LOCK:
        for counter in _ACTIVE:
            counter.by_function[name] += 1


@contextlib.contextmanager
def compilations():
    """Count the functions JAX traces (compiles anew) inside the block.

    A second call of a compiled sampler with the same shapes should trace
    nothing; this shows whether it did, and which function did, through
    JAX's public ``jax.monitoring`` events.

    Yields
    ------
    Compilations
        Filled in while the block runs: ``.count``, ``["name"]``,
        ``.by_function``.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> import energymc as emc
    >>> f = jax.jit(lambda x: 2 * x)
    >>> with emc.compilations() as c:
    ...     _ = f(jnp.ones(3)); _ = f(jnp.zeros(3)); _ = f(jnp.ones(4))
    >>> c["<lambda>"]
    2
    """
    global _LISTENING
    with _LOCK:
        if not _LISTENING:
            # Registered once and kept: JAX has no cheap way to remove one
            # listener among others, and with no block open it returns at once.
            jax.monitoring.register_event_duration_secs_listener(_on_duration)
            _LISTENING = True
        counter = Compilations()
        _ACTIVE.append(counter)
    try:
        yield counter
    finally:
        with _LOCK:
            _ACTIVE.remove(counter)
