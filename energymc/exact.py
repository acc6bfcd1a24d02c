"""Exact answers for small discrete energies, by enumerating every state.

A binary or spin target of dimension ``dim`` has ``2**dim`` states; up to
``dim = 24`` (16.8 million states) they are visited in compiled chunks with a
running log-sum-exp, so memory stays at one chunk. Use these to check samplers
and partition-function estimators, or as the answer itself for small models.

Examples
--------
>>> import jax.numpy as jnp
>>> import energymc as emc
>>> target = emc.Energy(lambda s: -jnp.sum(s[:-1] * s[1:]), init=jnp.ones(10), support="spin")
>>> round(float(emc.exact.log_partition(target)), 4)  # open chain: 2 (2 cosh 1)^9
10.8355
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from energymc._util import static
from energymc.errors import EnergyError

__all__ = ["MAX_DIM", "expectation", "log_partition", "probabilities", "reduce_states", "states"]

#: Largest dimension enumerated by default (2**24 = 16.8 million states).
MAX_DIM = 24
_DEFAULT_CHUNK = 2**15


def _check_discrete(dim: int, support: str, max_dim: int, what: str = "target") -> None:
    if support not in ("binary", "spin"):
        raise EnergyError(
            f"exact enumeration needs a discrete {what} (support='binary' or 'spin'); "
            f"this one has support={support!r}. For continuous targets use "
            "emc.log_partition(target, method='ais') or quadrature."
        )
    if dim > max_dim:
        raise EnergyError(
            f"the {what} has dim={dim}, i.e. 2**{dim} = {2**dim:.3g} states; exact "
            f"enumeration is limited to dim <= {max_dim} ({2**max_dim:.3g} states). Use a "
            "smaller model, a model-specific exact method (e.g. RBM.log_z_exact enumerates "
            "the smaller layer, Ising.log_z_exact uses Kaufman's formula), or an estimate: "
            "emc.log_partition(target, method='ais')."
        )


def _states_of(index, dim, support, dtype):
    """States for integer ``index`` ``(n,)``: ``(n, dim)``, site ``i`` = bit ``i``."""
    bits = (index[:, None] >> jnp.arange(dim, dtype=index.dtype)) & 1
    bits = bits.astype(dtype)
    return bits if support == "binary" else 2.0 * bits - 1.0


def states(dim: int, support: str = "binary") -> np.ndarray:
    """Every state, ``(2**dim, dim)``; row ``k`` has site ``i`` on iff bit ``i`` of ``k``.

    Limited to ``dim <= 20`` (the array is materialised).
    """
    _check_discrete(dim, support, 20, "state space")
    index = jnp.arange(2**dim, dtype=jnp.int32)
    return np.asarray(_states_of(index, dim, support, jnp.result_type(float)))


@partial(jax.jit, static_argnames=("logp", "dim", "support", "chunk", "fn"))
def _reduce(args, *, logp, dim, support, chunk, fn):
    dtype = jnp.result_type(float)
    n_chunks = 2**dim // chunk

    def values(c):
        z = _states_of(c * chunk + jnp.arange(chunk, dtype=jnp.int32), dim, support, dtype)
        lp = jax.vmap(lambda s: logp(s, *args))(z).astype(dtype)
        lp = jnp.where(jnp.isnan(lp), -jnp.inf, lp)
        f = None if fn is None else jax.vmap(lambda s: fn(s, *args))(z)
        return lp, f

    def body(carry, c):
        m, total, f_total = carry
        lp, f = values(c)
        m_new = jnp.maximum(m, jnp.max(lp))
        # Until a finite log-density has been seen every weight is zero; shift by 0.
        shift = jnp.where(jnp.isfinite(m_new), m_new, 0.0)
        scale = jnp.exp(m - shift)
        w = jnp.exp(lp - shift)
        total = total * scale + jnp.sum(w)
        if fn is not None:
            f_total = jax.tree.map(
                lambda acc, v: acc * scale + jnp.tensordot(w, v.astype(dtype), axes=1),
                f_total, f)
        return (m_new, total, f_total), None

    f0 = None
    if fn is not None:
        shapes = jax.eval_shape(lambda s: fn(s, *args), jnp.zeros((dim,), dtype))
        f0 = jax.tree.map(lambda sd: jnp.zeros(sd.shape, dtype), shapes)
    init = (jnp.asarray(-jnp.inf, dtype), jnp.zeros((), dtype), f0)
    (m, total, f_total), _ = jax.lax.scan(body, init, jnp.arange(n_chunks))
    shift = jnp.where(jnp.isfinite(m), m, 0.0)
    log_z = shift + jnp.log(total)
    means = None if fn is None else jax.tree.map(lambda a: a / total, f_total)
    return log_z, means


def reduce_states(logp: Callable, dim: int, support: str, *args, fn: Callable | None = None,
                  chunk_size: int | None = None, max_dim: int = MAX_DIM):
    """Log-sum-exp of ``logp`` over all states, and optionally ``E_p[fn]``.

    The building block of this module, for model code whose log-density has
    parameters: ``logp`` and ``fn`` are compiled once and ``args`` are traced,
    so new parameter values do not recompile.

    Parameters
    ----------
    logp
        ``logp(z, *args) -> scalar`` unnormalised log-probability of a flat
        state ``z`` ``(dim,)``. Must be hashable (a module-level function or a
        bound method of a hashable object).
    dim, support
        Dimension and ``"binary"`` or ``"spin"``.
    *args
        Arrays passed to ``logp`` and ``fn`` (e.g. model parameters).
    fn
        Optional ``fn(z, *args) -> pytree of arrays``; its expectation is returned.
    chunk_size
        States per compiled chunk (a power of two; default ``2**15``).
    max_dim
        Refuse larger state spaces (default :data:`MAX_DIM`).

    Returns
    -------
    log_z : jax.Array
        ``()`` ``log sum_z exp(logp(z))``.
    means : pytree or None
        ``E_p[fn(z)]`` with ``p = exp(logp) / Z``.
    """
    _check_discrete(int(dim), support, max_dim)
    dim = int(dim)
    chunk = min(2**dim, _DEFAULT_CHUNK if chunk_size is None else int(chunk_size))
    if chunk < 1 or chunk & (chunk - 1):
        raise EnergyError(f"chunk_size must be a power of two; got {chunk_size!r}.")
    return _reduce(args, logp=logp, dim=dim, support=support, chunk=chunk, fn=fn)


def _target_logp(target, z, params):
    """``target.flat_logdensity(z)``; wrapped as ``static(_target_logp, skeleton)``.

    ``target`` is the skeleton of ``Energy._split``: the parameters of a
    ``from_params`` energy arrive as the traced ``params`` argument, so
    enumerating it again with new parameter values reuses the compiled code.
    """
    return target._bind(params).flat_logdensity(z)


def _target_fn(target, fn, z, params):
    """``fn(x)`` with ``x`` the target's pytree at flat ``z``; wrapped with :func:`static`."""
    unravel = getattr(target, "unravel", None)
    return fn(z if unravel is None else unravel(z))


def _split(target):
    """``Energy._split`` for an Energy; other duck-typed targets stay whole."""
    return target._split() if hasattr(target, "_split") else (target, None)


def _target_parts(target, max_dim):
    support = getattr(target, "support", None)
    dim = getattr(target, "dim", None)
    if support is None or dim is None or not hasattr(target, "flat_logdensity"):
        raise EnergyError(
            f"exact enumeration needs an emc.Energy with support='binary' or 'spin'; "
            f"got {type(target).__name__}."
        )
    _check_discrete(int(dim), support, max_dim)
    return int(dim), support


def log_partition(target, *, chunk_size: int | None = None, max_dim: int = MAX_DIM) -> float:
    """``log Z = log sum_x exp(-E(x))`` of a binary or spin target, exactly.

    Parameters
    ----------
    target
        An :class:`energymc.Energy` with ``support="binary"`` or ``"spin"``
        and ``dim <= max_dim``.
    chunk_size, max_dim
        See :func:`reduce_states`.

    Returns
    -------
    float
        log Z in nats.
    """
    dim, support = _target_parts(target, max_dim)
    skeleton, params = _split(target)
    log_z, _ = reduce_states(static(_target_logp, skeleton), dim, support, params,
                             chunk_size=chunk_size, max_dim=max_dim)
    return float(log_z)


def expectation(target, fn: Callable, *, chunk_size: int | None = None,
                max_dim: int = MAX_DIM) -> Any:
    """``E[fn(x)]`` under ``p(x) = exp(-E(x)) / Z``, exactly.

    Parameters
    ----------
    target
        A binary or spin :class:`energymc.Energy`.
    fn
        ``fn(x) -> array or pytree of arrays``; ``x`` is shaped like
        ``target.init``. E.g. ``lambda x: x`` gives the mean of every site and
        ``lambda x: jnp.outer(x, x)`` second moments (for a flat ``x``).

    Returns
    -------
    pytree of numpy arrays
        Shaped like ``fn``'s output.
    """
    if not callable(fn):
        raise EnergyError(f"expectation needs a callable fn(x); got {type(fn).__name__}.")
    dim, support = _target_parts(target, max_dim)
    skeleton, params = _split(target)
    _, means = reduce_states(static(_target_logp, skeleton), dim, support, params,
                             fn=static(_target_fn, skeleton, fn), chunk_size=chunk_size,
                             max_dim=max_dim)
    return jax.tree.map(np.asarray, means)


def probabilities(target) -> tuple[np.ndarray, np.ndarray]:
    """Every state and its probability, for ``dim <= 20``.

    Returns
    -------
    states : numpy.ndarray
        ``(2**dim, dim)`` flat states (see :func:`states`).
    probs : numpy.ndarray
        ``(2**dim,)`` normalised probabilities.
    """
    dim, support = _target_parts(target, 20)
    z = states(dim, support)
    lp = np.asarray(jax.jit(jax.vmap(target.flat_logdensity))(jnp.asarray(z)), dtype=np.float64)
    p = np.exp(lp - np.max(lp))
    return z, p / p.sum()
