"""Input checks of the learners: each runs on the host before anything compiles and
says what was wrong and how to fix it.

Pure zone: none of these is ever traced (``check_data`` lets a tracer through
unchecked, for a learner's ``init`` called under ``jit``).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from energymc._util import check_int
from energymc.errors import EnergyError, OptionError

__all__ = [
    "check_batch",
    "check_batch_size",
    "check_data",
    "check_ema",
    "check_energy_output",
    "check_int",
    "check_levels",
    "check_optim",
    "check_positive",
    "check_run_options",
    "select_score",
]

def check_positive(name: str, value, *, allow_zero: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise OptionError(f"{name} must be a number; got {value!r}.") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise OptionError(f"{name} must be a finite number {bound}; got {value!r}.")
    return v


def check_ema(ema) -> float | None:
    """``None`` or a decay in ``[0, 1)`` for parameter averaging."""
    if ema is None:
        return None
    try:
        v = float(ema)
    except (TypeError, ValueError):
        raise OptionError(f"ema must be None or a decay in [0, 1); got {ema!r}.") from None
    if isinstance(ema, bool) or not 0.0 <= v < 1.0:
        raise OptionError(
            f"ema must be None or a decay in [0, 1), e.g. ema=0.99 (an average over about the "
            f"last 100 updates); got {ema!r}.")
    return v


def check_optim(optim):
    """The optimiser the learner drives: a ``numpyro.optim`` optimiser as given, or an
    optax ``GradientTransformation`` wrapped by ``numpyro.optim.optax_to_numpyro``
    (as NumPyro's ``SVI`` does).

    Raises
    ------
    OptionError
        For anything else, naming what to pass.
    """
    if all(hasattr(optim, m) for m in ("init", "update", "get_params")) and hasattr(
            optim, "get_params_fn"):
        return optim
    if isinstance(optim, optax.GradientTransformation):
        import numpyro.optim

        return numpyro.optim.optax_to_numpyro(optim)
    raise OptionError(
        f"optim must be a numpyro.optim optimiser such as numpyro.optim.Adam(1e-2), or an "
        f"optax GradientTransformation such as optax.adam(1e-2); got {type(optim).__name__}."
    )


def check_data(data, *, name: str = "data") -> jax.Array:
    """``data`` as a float array ``(n, *event)`` with n >= 1, finite values."""
    if isinstance(data, jax.core.Tracer):
        return data  # under jit only shapes can be checked, and they are below
    try:
        arr = np.asarray(data)
    except Exception as exc:
        raise EnergyError(f"{name} must be an array (n_points, *event_shape); "
                          f"could not convert {type(data).__name__}: {exc}") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)
                                   or arr.dtype == np.bool_):
        raise EnergyError(f"{name} must be a numeric array; got dtype {arr.dtype}.")
    if np.iscomplexobj(arr):
        raise EnergyError(f"{name} must be real; got complex dtype {arr.dtype}.")
    if arr.ndim < 2:
        raise EnergyError(
            f"{name} has shape {arr.shape}; it must be (n_points, *event_shape), one row "
            f"per data point. For scalar data use {name}[:, None]; for a single point use "
            f"{name}[None]."
        )
    if arr.shape[0] < 1 or arr.size == 0:
        raise EnergyError(f"{name} has shape {arr.shape}: it holds no points.")
    bad = ~np.isfinite(arr.astype(float))
    if bad.any():
        rows = np.unique(np.nonzero(bad.reshape(arr.shape[0], -1))[0])
        raise EnergyError(
            f"{name} holds {int(bad.sum())} NaN or infinite value(s), in {len(rows)} row(s) "
            f"(first rows: {rows[:5].tolist()}). Remove or impute them, e.g. "
            f"{name}[np.isfinite({name}).all(axis=tuple(range(1, {name}.ndim)))]."
        )
    return jnp.asarray(arr, dtype=jnp.result_type(float))


def check_levels(x, levels: int, *, name: str = "data") -> None:
    """Refuse ``x`` unless it holds integers in ``0..levels-1`` (the counts that
    uniform dequantisation with ``dequantize=levels`` expects); a tracer passes."""
    if isinstance(x, jax.core.Tracer):
        return
    arr = np.asarray(x)
    bad = ~np.isfinite(arr) | (arr != np.round(arr)) | (arr < 0) | (arr > levels - 1)
    if bad.any():
        first = arr[bad].ravel()[0]
        raise EnergyError(
            f"with dequantize={levels}, {name} must hold integers in 0..{levels - 1} (the "
            f"discrete levels, e.g. pixel counts, not data already scaled to [0, 1]); "
            f"{int(bad.sum())} value(s) are not, e.g. {first!r}. Pass the counts, or "
            f"dequantize=None for continuous data.")


def check_batch(batch, event_shape: tuple) -> None:
    shape = tuple(np.shape(batch))
    if shape[1:] != tuple(event_shape) or len(shape) < 1:
        raise EnergyError(
            f"batch has shape {shape}; the learner was initialised with points of shape "
            f"{tuple(event_shape)}, so a batch must be (batch_size, *{tuple(event_shape)})."
        )

def check_energy_output(out, what: str, event_shape) -> None:
    if not hasattr(out, "shape") or jax.tree.structure(out).num_leaves != 1:
        raise EnergyError(f"{what} must return one scalar; it returned {type(out).__name__}.")
    if out.shape != ():
        hint = ""
        if len(out.shape) >= 1:
            hint = (" energy_fn takes ONE point x of shape "
                    f"{tuple(event_shape)} and returns its energy; energymc vmaps over the "
                    "batch itself. If it already sums over a batch, drop that; if it returns "
                    "a vector per point, sum it.")
        raise EnergyError(f"{what} returned shape {tuple(out.shape)}; it must be a scalar.{hint}")
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise EnergyError(f"{what} returned dtype {out.dtype}; it must be a real float scalar.")



def check_batch_size(batch_size, n: int) -> int:
    """Points per update: default ``min(n, 128)``; at most the ``n`` data points."""
    if batch_size is None:
        return min(n, 128)
    batch_size = check_int("batch_size", batch_size, 1)
    if batch_size > n:
        raise OptionError(
            f"batch_size={batch_size} exceeds the number of data points {n}; pass "
            f"batch_size<={n}."
        )
    return batch_size


def check_run_options(*, eval_every, eval_fn, restarts, select, init_state, state_type):
    """``run``'s options that go together; returns ``(eval_every, restarts)`` checked."""
    if (eval_fn is None) != (eval_every is None):
        raise OptionError("eval_every and eval_fn go together: pass both or neither.")
    if eval_fn is not None:
        if not callable(eval_fn):
            raise OptionError("eval_fn must be a callable eval_fn(params) -> float.")
        eval_every = check_int("eval_every", eval_every, 1)
    restarts = check_int("restarts", restarts, 1)
    if restarts > 1:
        if select is not None and not callable(select):
            raise OptionError(
                f"select must be a callable select(params) -> float, higher is better, "
                f"that picks the restart to keep; got {type(select).__name__}."
            )
        if init_state is not None:
            raise OptionError("init_state continues one run; it cannot be combined with "
                              "restarts=. Continue the selected run with "
                              "init_state=result.state.")
    elif select is not None:
        raise OptionError("select= chooses among restarts; pass restarts=N (N > 1) with it.")
    if init_state is not None and not isinstance(init_state, state_type):
        raise OptionError("init_state must be a LearnState, e.g. result.state.")
    return eval_every, restarts


def select_score(select, params) -> float:
    """``select(params)`` as a float; a clear error when it is not a real number."""
    value = select(params)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise OptionError("select(params) must return a real number (higher is better); got "
                          f"{type(value).__name__}.") from None
