"""Numerical guards shared by the kernels and the log Z estimators (pure JAX)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["nonfinite_to_neginf"]


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
