"""What identifies a sampling run, for checkpoints that cannot lie (host code).

A checkpoint may only be resumed by a call that would have produced the very
same draws. Names and shapes are not enough: a notebook cell that redefines
``def energy`` keeps the name, and a NumPyro model refitted on new data keeps
every shape. So the fingerprint hashes what JAX will actually run: the traced
program of the log-density *and of its gradient* (the gradient's program
carries custom JVP/VJP rules, which the forward program only names), printed
as text, and, separately, the bytes of the constants that program closes over
(arrays captured by the function, a NumPyro model's data). Keeping the two
apart lets the error say which of them changed.

The printed program holds no object ids or memory addresses (checked by
:func:`_program_text`), so the same code gives the same fingerprint in every
process, which is what resuming after a crash needs.
"""

from __future__ import annotations

import hashlib
import re

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["array_digest", "closed_program_digest", "describe_change", "program_digests"]

# Printed Python objects (``<function f at 0x7f...>``) would differ between
# processes; JAX's jaxpr printer shows none today, but a third-party primitive's
# parameters could, so they are blanked rather than trusted.
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")

# Fingerprint keys that are digests, and the sentence that says what changed.
_WHAT_CHANGED = {
    "program_sha256": "the energy's program changed (its code, or a constant written in it)",
    "data_sha256": "the data it closes over changed (arrays captured by the function, "
                   "a NumPyro model's observations)",
    "params_sha256": "the energy's parameters changed (Energy.from_params values)",
    "init_sha256": "the starting points changed (Energy init or sample(init=))",
}


def array_digest(tree) -> str:
    """SHA-256 of the leaves of a pytree: dtype, shape and bytes of each, in order.

    PRNG keys count by their key data. ``None`` hashes as an empty tree.
    """
    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(tree):
        if isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        arr = np.ascontiguousarray(np.asarray(leaf))
        digest.update(f"{arr.dtype.str}{arr.shape}".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def _program_text(closed) -> str:
    return _ADDRESS.sub(" at <address>", str(closed.jaxpr))


def closed_program_digest(closed) -> str:
    """SHA-256 of a traced program's text (addresses blanked) and of its constants' bytes.

    Parameters
    ----------
    closed : jax.extend.core.ClosedJaxpr
        What :func:`jax.make_jaxpr` returns.
    """
    h = hashlib.sha256(_program_text(closed).encode())
    h.update(array_digest(list(closed.consts)).encode())
    return h.hexdigest()


def program_digests(target) -> dict[str, str]:
    """``{"program_sha256", "data_sha256", "params_sha256"}`` of an :class:`energymc.Energy`.

    The log-density and its gradient are traced (``jax.make_jaxpr``, no
    compilation) at the flat init ``(dim,)``. The parameters of an
    :meth:`energymc.Energy.from_params` energy are traced as an argument, so
    a change in their values is reported as such and not as new data.
    """
    skeleton, params = target._split()

    def logdensity(p, z):
        return skeleton._bind(p).flat_logdensity(z)

    try:
        # argnums=1: the gradient the kernels use, with respect to the position.
        closed = jax.make_jaxpr(jax.value_and_grad(logdensity, argnums=1))(params,
                                                                           target.flat_init)
    except Exception:  # noqa: BLE001 - not differentiable (discrete code): the value alone
        closed = jax.make_jaxpr(logdensity)(params, target.flat_init)
    return {"program_sha256": hashlib.sha256(_program_text(closed).encode()).hexdigest(),
            "data_sha256": array_digest(list(closed.consts)),
            "params_sha256": array_digest(params)}


def describe_change(key: str, saved, now) -> str:
    """One plain sentence for a fingerprint entry that differs."""
    if key in _WHAT_CHANGED:
        return f"{_WHAT_CHANGED[key]} [{key}: saved {str(saved)[:12]}..., now {str(now)[:12]}...]"
    return f"{key}: saved {saved!r}, now {now!r}"
