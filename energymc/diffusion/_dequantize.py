"""Uniform dequantisation of discrete data: the one map the learner trains on and
the likelihood bound scores with.

Integer levels ``k`` in ``0..L-1`` become the model's continuous input
``(k + u) * scale / L + shift`` with ``u ~ U[0, 1)^d``: each level fills a cell
of width ``scale / L``. Because the cells tile the range, ``P(k) = int_cell p``
and Jensen's inequality gives the bound of Theis et al. (2016)::

    log P(k) >= E_u log p((k + u) scale / L + shift) + d log(scale / L).

:class:`energymc.learn.Diffusion` and :func:`energymc.diffusion.log_likelihood`
both call :func:`dequantise` with the options :func:`check_dequantize`
returned, so training and the bound use the same map by construction.
"""

from __future__ import annotations

import math

import jax

from energymc.errors import OptionError

__all__ = ["check_dequantize", "dequantise", "log_jacobian"]


def check_dequantize(dequantize, scale, shift) -> tuple[int | None, float, float]:
    """``(levels or None, scale, shift)``, checked on the host.

    Raises
    ------
    OptionError
        ``dequantize`` not ``None`` or an integer >= 2; ``scale`` not finite
        and > 0; ``shift`` not finite; ``scale``/``shift`` given without
        ``dequantize`` (they would be silently ignored).
    """
    from energymc.learn._checks import check_int, check_positive

    if dequantize is None:
        if scale != 1.0 or shift != 0.0:
            raise OptionError(
                f"scale={scale!r} and shift={shift!r} describe the dequantisation map "
                "(k + u) * scale / L + shift; they apply only with dequantize=L (the number "
                "of discrete levels). Pass dequantize=L, or drop scale and shift.")
        return None, 1.0, 0.0
    levels = check_int("dequantize", dequantize, 2)
    scale = check_positive("scale", scale)
    try:
        shift = float(shift)
    except (TypeError, ValueError):
        raise OptionError(f"shift must be a number; got {shift!r}.") from None
    if not math.isfinite(shift):
        raise OptionError(f"shift must be a finite number; got {shift!r}.")
    return levels, scale, shift


def dequantise(key, k, levels: int, scale: float, shift: float):
    """``(k + u) * scale / levels + shift``, ``u ~ U[0, 1)`` of ``k``'s shape (pure JAX)."""
    u = jax.random.uniform(key, k.shape, k.dtype)
    return (k + u) * (scale / levels) + shift


def log_jacobian(dim: int, levels: int, scale: float) -> float:
    """``d log(scale / L)``: nats the bound adds per point (the cells' volume)."""
    return dim * math.log(scale / levels)
