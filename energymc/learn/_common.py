"""What every learner shares: its state and result, input checks, parameter
handling (plain pytrees or ``numpyro.param`` sites) and the training loop.

A learner subclasses :class:`LearnerBase` and writes two things: ``_extra_init``
(method-specific state, e.g. persistent chains) and ``_loss`` (a scalar to
differentiate with respect to the parameters, plus diagnostics). Everything
else -- optimiser steps through ``numpyro.optim``, minibatching, the compiled
chunks of ``lax.scan``, progress between chunks, evaluation hooks -- lives here
once.

Pure zone: ``init``, ``update`` and the chunk body never print or touch disk.
Host zone: ``run``'s loop, the progress meter and ``eval_fn`` calls.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from energymc._util import n_positional
from energymc.errors import EnergyError, EnergymcWarning, OptionError
from energymc.io import CheckpointError
from energymc.learn._checkpoint import LearnCheckpoint, fingerprint, strong_types
from energymc.learn._devices import learner_mesh, spread_update
from energymc.progress import make_meter

__all__ = ["LearnState", "LearnResult", "LearnerBase"]


class LearnState(NamedTuple):
    """Everything that changes during training; a pytree, so it passes through jit.

    Attributes
    ----------
    optim_state
        The ``numpyro.optim`` state ``(step, opt_state)``; the parameters it
        holds are the learner's *internal* parameters (unconstrained for
        ``numpyro.param`` sites with a constraint; NCE adds ``log_z``).
    key
        The PRNG key for the next update.
    extra
        Method-specific state: persistent chains or a replay buffer (CD), the
        fitted noise distribution (NCE); an empty dict otherwise.
    average
        With parameter averaging (``CD(..., ema=decay)``): ``{"sum": pytree,
        "weight": scalar}``, the exponentially weighted sum of the internal
        parameters after each update and the sum of the weights, so that
        ``sum / weight`` is the debiased moving average. ``None`` otherwise.
    """

    optim_state: Any
    key: jax.Array
    extra: Any
    average: Any = None


@dataclass
class LearnResult:
    """What :meth:`LearnerBase.run` returns.

    Attributes
    ----------
    params
        The learned parameters in the user's form (the pytree passed as
        ``init_params``, or a dict of ``numpyro.param`` site values in their
        constrained space).
    losses
        ``(num_steps,)`` NumPy array, the loss of every update.
    history
        Dict of ``(num_steps,)`` NumPy arrays: ``loss``, ``grad_norm``,
        ``energy_data`` (mean energy of the batch) and method-specific entries
        (CD: ``energy_neg``, ``acceptance`` -- NaN for a callable sampler,
        which reports none --, ``neg_ess``, ``diverging``, ``step_size``,
        ``chain_lag``, ``energy_shift``; NCE:
        ``energy_noise``, ``accuracy``, ``log_z``, each before its update). With ``eval_fn``,
        ``eval_step`` and ``eval`` hold the evaluation steps and values.
    state
        The final :class:`LearnState`; pass it as ``init_state=`` to continue.
    log_z
        NCE's learned log-normaliser (a float); ``None`` for other learners.
    timing
        Wall-clock seconds: ``total_s`` and ``per_update_s`` (compilation
        included in the first), of this call only: a run resumed from a
        checkpoint also records ``resumed_from``, the updates it found done.
    restarts
        ``None``, or with ``run(..., restarts=R)``: ``scores`` ``(R,)`` (what
        ``select`` gave each restart; ``None`` without ``select``), ``best``
        (the index kept), ``params``
        (every restart's parameters, NumPy arrays with a leading ``R`` axis)
        and ``history`` (entries ``(R, num_steps)``; ``eval`` ``(R,
        num_evals)``).
    problems
        Plain-language reasons not to trust the result without a look, each
        with a fix (e.g. persistent chains that lag the model); also issued
        as :class:`energymc.errors.EnergymcWarning`. Empty when none.
    """

    params: Any
    losses: np.ndarray
    history: dict
    state: LearnState
    log_z: float | None = None
    timing: dict = field(default_factory=dict)
    restarts: dict | None = None
    problems: list = field(default_factory=list)

    def _rows(self) -> list[tuple[str, str]]:
        n = len(self.losses)
        last = float(self.losses[-1]) if n else float("nan")
        rows = [("updates", f"{n:,}"), ("final loss", f"{last:.4g}")]
        if n >= 10:
            tail = self.losses[-max(n // 10, 1):]
            rows.append(("loss, last 10%", f"{float(np.mean(tail)):.4g} "
                                           f"(sd {float(np.std(tail)):.2g})"))
        if self.log_z is not None:
            rows.append(("log_z", f"{self.log_z:.4g}"))
        if "eval" in self.history and len(np.atleast_1d(self.history["eval"])):
            rows.append(("last eval", f"{float(np.ravel(self.history['eval'])[-1]):.4g}"))
        if self.restarts is not None:
            rows.append(("restart kept", f"{self.restarts['best']} of "
                                          f"{len(self.restarts['history']['loss'])}"))
        if self.timing:
            rows.append(("time", f"{self.timing.get('total_s', float('nan')):.2f} s"))
        rows.append(("problems", "none" if not self.problems else "; ".join(self.problems)))
        return rows

    def __repr__(self) -> str:
        last = float(self.losses[-1]) if len(self.losses) else float("nan")
        return (f"LearnResult(steps={len(self.losses)}, final loss={last:.4g}"
                + (f", log_z={self.log_z:.4g}" if self.log_z is not None else "")
                + (f", restart {self.restarts['best']} of "
                   f"{len(self.restarts['history']['loss'])}"
                   if self.restarts is not None else "")
                + (f", {len(self.problems)} problem(s)" if self.problems else "") + ")")

    def _repr_html_(self) -> str:
        """A compact table for notebooks: a few summary rows, never the whole history."""
        from energymc._display import html_table

        return html_table("LearnResult", self._rows())

    def history_frame(self):
        """The per-update history as a ``pandas.DataFrame``, one row per update.

        Columns are the per-update entries of :attr:`history` (``loss``,
        ``grad_norm``, ...), indexed by ``update`` (1-based). The held-out
        evaluations, recorded less often, are joined on their update number
        as an ``eval`` column (NaN between evaluations). With restarts the
        selected restart's history is shown.
        """
        import pandas as pd

        n = len(self.losses)
        cols = {k: np.asarray(v) for k, v in self.history.items()
                if k not in ("eval", "eval_step") and np.ndim(v) == 1 and len(v) == n}
        frame = pd.DataFrame(cols, index=pd.RangeIndex(1, n + 1, name="update"))
        if "eval_step" in self.history:
            ev = pd.Series(np.ravel(self.history["eval"]),
                           index=np.asarray(self.history["eval_step"]), name="eval")
            frame = frame.join(ev)
        return frame


# ---------------------------------------------------------------------------
# Input checks. Each runs on the host before anything compiles and says what
# was wrong and how to fix it.
# ---------------------------------------------------------------------------
def check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise OptionError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def check_positive(name: str, value, *, allow_zero: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise OptionError(f"{name} must be a number; got {value!r}.") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise OptionError(f"{name} must be a finite number {bound}; got {value!r}.")
    return v


def _score(select, params) -> float:
    """``select(params)`` as a float; a clear error when it is not a real number."""
    value = select(params)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise OptionError("select(params) must return a real number (higher is better); got "
                          f"{type(value).__name__}.") from None


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


def _concat(infos: list[dict]) -> dict:
    """Per-chunk histories (entries with steps first) joined into one."""
    return {k: np.concatenate([np.asarray(i[k]) for i in infos]) for k in infos[0]}


def _averaged(average, internal):
    """``sum / weight`` of an average; the current ``internal`` before any update."""
    w = average["weight"]
    safe = jnp.where(w > 0, w, 1.0)
    return jax.tree.map(lambda a, p: jnp.where(w > 0, a / safe, p), average["sum"], internal)


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


def check_batch(batch, event_shape: tuple) -> None:
    shape = tuple(np.shape(batch))
    if shape[1:] != tuple(event_shape) or len(shape) < 1:
        raise EnergyError(
            f"batch has shape {shape}; the learner was initialised with points of shape "
            f"{tuple(event_shape)}, so a batch must be (batch_size, *{tuple(event_shape)})."
        )


# ---------------------------------------------------------------------------
# Parameters: a plain pytree passed as init_params, or numpyro.param sites.
# ---------------------------------------------------------------------------
class _NumpyroParams:
    """The ``numpyro.param`` sites of a NumPyro-style energy ``fn(x, *extra)``.

    The optimiser works on unconstrained values, as ``numpyro.infer.SVI``
    does: a site with ``constraint=positive`` is optimised through
    ``biject_to(positive)``, so an update can never leave the support.
    """

    def __init__(self, fn: Callable):
        self.fn = fn

    def sites(self, key, x, extra_args=()) -> dict:
        from numpyro import handlers

        tr = handlers.trace(handlers.seed(self.fn, key)).get_trace(x, *extra_args)
        return {name: site for name, site in tr.items() if site["type"] == "param"}

    @staticmethod
    def _transform(site):
        from numpyro.distributions import biject_to, constraints

        return biject_to(site["kwargs"].get("constraint", constraints.real))


class ParamSpec:
    """Maps between the user's parameters and the optimiser's (both pytrees).

    ``to_user(internal)`` gives what users see (``result.params``);
    ``energy(internal, x, *extra)`` evaluates the energy of ONE point.
    """

    def __init__(self, energy_fn: Callable, numpyro_style: bool, transforms: dict | None):
        self.energy_fn = energy_fn
        self.numpyro_style = numpyro_style
        self.transforms = transforms or {}

    # A site's value may itself be a pytree (eqx_module / flax_module register a
    # whole network's weights as one site); constraints act leaf by leaf.
    def to_user(self, internal):
        if not self.numpyro_style:
            return internal
        return {k: jax.tree.map(self.transforms[k], v) for k, v in internal.items()}

    def to_internal(self, user):
        if not self.numpyro_style:
            return user
        return {k: jax.tree.map(lambda a, t=self.transforms[k]: t.inv(jnp.asarray(a)), v)
                for k, v in user.items()}

    def user_energy(self, user_params, x, *extra):
        if not self.numpyro_style:
            return self.energy_fn(user_params, x, *extra)
        from numpyro import handlers

        # seed: a param whose init value is a callable draws from an rng.
        fn = handlers.substitute(handlers.seed(self.energy_fn, 0), data=user_params)
        return fn(x, *extra)

    def energy(self, internal, x, *extra):
        return self.user_energy(self.to_user(internal), x, *extra)


def _describe(tree) -> str:
    return str(jax.tree.map(lambda a: tuple(np.shape(a)), tree))


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


# ---------------------------------------------------------------------------
# The learner base class.
# ---------------------------------------------------------------------------
class LearnerBase:
    """Shared machinery; subclasses define ``_loss`` and maybe ``_extra_init``.

    ``energy_fn(params, x)`` takes ONE point ``x`` of the data's event shape
    and returns a scalar energy. A NumPyro-style energy ``energy_fn(x)`` that
    declares its parameters with ``numpyro.param`` (or a network through
    ``numpyro.contrib.module``) is recognised by its single argument.
    """

    #: Positional arguments of a parameterised energy besides ``params``.
    _energy_extra_args: int = 0
    _name = "learn"
    _history_keys: tuple = ("loss", "grad_norm", "energy_data")

    def __init__(self, energy_fn: Callable, optim, *, ema: float | None = None):
        if not callable(energy_fn):
            raise EnergyError(
                f"energy_fn must be a callable energy_fn(params, x) -> scalar; got "
                f"{type(energy_fn).__name__}."
            )
        self.energy_fn = energy_fn
        self.optim = check_optim(optim)
        self.ema = check_ema(ema)
        n = n_positional(energy_fn)
        # One argument (two for a noise-conditional energy): a NumPyro-style
        # energy whose parameters are numpyro.param sites.
        self._numpyro_style = n == 1 + self._energy_extra_args
        self._spec: ParamSpec | None = None
        self._event_shape: tuple | None = None
        self._jit_chunk = jax.jit(self._chunk, static_argnames=("num_steps", "batch_size",
                                                                "restarts", "mesh"))

    # ----------------------------------------------------------- parameters
    def _extra_args_for_check(self):
        return ()

    def _make_spec(self, key, x0, init_params):
        """The parameter spec and initial internal parameters; checks the energy."""
        extra = self._extra_args_for_check()
        if self._numpyro_style:
            npp = _NumpyroParams(self.energy_fn)
            try:
                sites = npp.sites(key, x0, extra)
            except Exception as exc:
                raise EnergyError(
                    f"running the NumPyro-style energy on one data point of shape "
                    f"{tuple(x0.shape)} raised {type(exc).__name__}: {exc}"
                ) from exc
            if not sites:
                raise EnergyError(
                    "energy_fn takes one argument, so it is read as a NumPyro-style energy "
                    "energy_fn(x), but it declares no numpyro.param sites. Declare the "
                    "parameters with numpyro.param, or write energy_fn(params, x) and pass "
                    "init_params=."
                    + (" With DSM(sigmas=...) the energy also takes the noise level: "
                       "energy_fn(params, x, sigma)." if self._energy_extra_args else "")
                )
            transforms = {k: _NumpyroParams._transform(s) for k, s in sites.items()}
            spec = ParamSpec(self.energy_fn, True, transforms)
            user = {k: s["value"] for k, s in sites.items()}
            if init_params is not None:
                unknown = sorted(set(init_params) - set(sites))
                if unknown:
                    raise EnergyError(f"init_params has {unknown}, which are not numpyro.param "
                                      f"sites of energy_fn; its sites are {sorted(sites)}.")
                user.update(init_params)
            internal = spec.to_internal(user)
        else:
            if init_params is None:
                raise EnergyError(
                    "init_params is required for energy_fn(params, x): pass the initial "
                    "parameter pytree, e.g. init_params={'W': jnp.zeros((d, d))}. (An "
                    "energy_fn(x) with numpyro.param sites needs none.)"
                )
            spec = ParamSpec(self.energy_fn, False, None)
            internal = jax.tree.map(jnp.asarray, init_params)
            bad = [a.dtype for a in jax.tree.leaves(internal)
                   if not jnp.issubdtype(a.dtype, jnp.floating)]
            if bad and not isinstance(x0, jax.core.Tracer):
                raise EnergyError(
                    f"init_params must hold float arrays (they are optimised); found dtypes "
                    f"{sorted({str(b) for b in bad})}. Convert with jnp.asarray(v, float)."
                )
        what = "energy_fn(params, x)" if not self._numpyro_style else "energy_fn(x)"
        try:
            out = jax.eval_shape(lambda p, x: spec.energy(p, x, *extra), internal, x0)
        except EnergyError:
            raise
        except Exception as exc:
            raise EnergyError(
                f"calling {what} on one data point of shape {tuple(x0.shape)} raised "
                f"{type(exc).__name__}: {exc}. Parameters have shapes {_describe(internal)}."
            ) from exc
        check_energy_output(out, what, x0.shape)
        return spec, internal

    def get_params(self, state: LearnState, average: bool = True):
        """The parameters in the user's form.

        Parameters
        ----------
        state
            A :class:`LearnState`.
        average
            With parameter averaging on (``ema=``), return the moving average
            of the iterates (the default, what ``result.params`` holds);
            ``False`` returns the optimiser's current iterate. Without
            averaging both give the current iterate.
        """
        internal = self.optim.get_params(state.optim_state)
        if average and state.average is not None:
            internal = _averaged(state.average, internal)
        return self._spec.to_user(self._model_params(internal))

    def _model_params(self, internal):
        return internal

    def energy(self, params, x, *extra):
        """Energy of ONE point ``x`` under user-form ``params`` (as in ``result.params``)."""
        if self._spec is None:
            raise OptionError("call init() or run() first: the parameter form is set there.")
        return self._spec.user_energy(params, x, *extra)

    def batch_energy(self, params, xs, *extra):
        """Energies ``(batch,)`` of ``xs`` ``(batch, *event)`` under user-form ``params``."""
        return jax.vmap(lambda x: self.energy(params, x, *extra))(xs)

    # -------------------------------------------------------------- pure API
    def init(self, key: jax.Array, data, init_params: Any = None, *,
             batch_size: int | None = None) -> LearnState:
        """Initial :class:`LearnState`.

        Parameters
        ----------
        key
            A ``jax.random.key`` or an int seed.
        data
            ``(n, *event)`` training points (used for shapes and for
            data-dependent set-up: fitted noise, persistent chains).
        init_params
            Initial parameter pytree; optional for a NumPyro-style energy.
        batch_size
            Size of the batches ``update`` will see (persistent CD sizes its
            chains by it); default ``min(n, 128)``.
        """
        from energymc._util import as_key

        key = as_key(key)
        data = check_data(data)
        n = data.shape[0]
        batch_size = min(n, 128) if batch_size is None else check_int("batch_size", batch_size, 1)
        if batch_size > n:
            raise OptionError(f"batch_size={batch_size} exceeds the number of data points {n}.")
        self._event_shape = tuple(data.shape[1:])
        k_param, k_extra, k_state = jax.random.split(key, 3)
        spec, internal = self._make_spec(k_param, data[0], init_params)
        self._spec = spec
        internal = self._add_internal(internal, data)
        extra = self._extra_init(k_extra, data, internal, batch_size)
        return LearnState(self.optim.init(internal), k_state, extra, self._init_average(internal))

    def _match_average(self, state: LearnState, internal=None) -> LearnState:
        """``state`` with an average slot that matches this learner's ``ema``
        (a state from a learner without averaging gets a fresh one)."""
        if self.ema is None:
            return state._replace(average=None)
        if state.average is None:
            if internal is None:
                internal = self.optim.get_params(state.optim_state)
            return state._replace(average=self._init_average(internal))
        return state

    def _init_average(self, internal):
        if self.ema is None:
            return None
        return {"sum": jax.tree.map(jnp.zeros_like, internal),
                "weight": jnp.zeros((), jnp.result_type(float))}

    def _add_internal(self, internal, data):
        return internal

    def _extra_init(self, key, data, internal, batch_size):
        return {}

    def _loss(self, internal, extra, batch, key):
        """``(loss, (new_extra, diagnostics))``; differentiated in ``internal``."""
        raise NotImplementedError

    def _update(self, state: LearnState, batch):
        key, sub = jax.random.split(state.key)
        internal = self.optim.get_params(state.optim_state)
        (loss, (extra, info)), grads = jax.value_and_grad(self._loss, has_aux=True)(
            internal, state.extra, batch, sub)
        optim_state = self.optim.update(grads, state.optim_state, value=loss)
        gnorm = optax.tree.norm(grads)
        info = {"loss": loss, "grad_norm": gnorm, **info}
        average = self._match_average(state, internal).average
        if average is not None:
            # Zero-started, debiased EMA (as Adam's moments): sum / weight is
            # a weighted mean of the iterates so far, with no pull towards the
            # initial parameters however short the run.
            d = jnp.asarray(self.ema, average["weight"].dtype)
            new = self.optim.get_params(optim_state)
            average = {"sum": jax.tree.map(lambda a, p: d * a + (1 - d) * p, average["sum"], new),
                       "weight": d * average["weight"] + (1 - d)}
        return LearnState(optim_state, key, extra, average), info

    def update(self, state: LearnState, batch) -> tuple[LearnState, jax.Array]:
        """One optimiser step on ``batch`` ``(batch_size, *event)``; pure and jittable.

        Returns ``(new_state, loss)``, as ``numpyro.infer.SVI.update`` does;
        :meth:`update_with_info` returns every diagnostic.
        """
        state, info = self.update_with_info(state, batch)
        return state, info["loss"]

    def update_with_info(self, state: LearnState, batch) -> tuple[LearnState, dict]:
        """Like :meth:`update`, returning a dict of scalar diagnostics instead of the loss."""
        if self._spec is None:
            raise OptionError("call init(key, data, init_params) before update().")
        check_batch(batch, self._event_shape)
        return self._update(state, jnp.asarray(batch, dtype=jnp.result_type(float)))

    # -------------------------------------------------------------- the loop
    def _chunk(self, state, data, cursor, *, num_steps: int, batch_size: int,
               restarts: bool = False, mesh=None):
        # With restarts the state has a leading restart axis and every
        # restart takes its own update; the batch schedule (where in the
        # permutation, when to redraw it) is shared, so that redrawing stays
        # a cond rather than a select that would permute every update.
        n = data.shape[0]
        if restarts:
            update = jax.vmap(self._update, in_axes=(0, None if batch_size >= n else 0))
            per_restart = jax.vmap
        else:
            update, per_restart = self._update, (lambda f: f)
        # Several devices: batch points and negative chains split over them.
        update = spread_update(update, mesh, restarts=restarts, batched=batch_size < n)
        if batch_size >= n:
            state, info = jax.lax.scan(lambda s, _: update(s, data), state, None,
                                       length=num_steps)
            return state, cursor, info

        # Batches are consecutive slices of a random permutation, redrawn when
        # it runs out (epochs). The permutation and the position in it pass
        # from chunk to chunk (``cursor``), so that how the loop is cut into
        # chunks -- by the progress bar or eval_every -- never changes the
        # result. Not random.choice(replace=False) per step: that permutes all
        # n points every update, which cost ten times the update itself for
        # n = 5000.
        def split(key):
            key, sub = jax.random.split(key)
            return key, sub

        def permutation(key):
            return jax.random.permutation(key, n)

        def body(carry, _):
            state, perm, pos = carry
            key, sub = per_restart(split)(state.key)
            fresh = pos + batch_size > n
            perm = jax.lax.cond(fresh, lambda: per_restart(permutation)(sub), lambda: perm)
            pos = jnp.where(fresh, 0, pos)

            def take(p):
                return data[jax.lax.dynamic_slice(p, (pos,), (batch_size,))]

            batch = per_restart(take)(perm)
            state, info = update(state._replace(key=key), batch)
            return (state, perm, pos + batch_size), info

        (state, perm, pos), info = jax.lax.scan(body, (state, *cursor), None, length=num_steps)
        return state, (perm, pos), info

    @staticmethod
    def _first_cursor(n: int, batch_size: int, restarts: int):
        """The batch cursor before the first update: an exhausted permutation."""
        if batch_size >= n:
            return None
        perm = jnp.arange(n)
        if restarts > 1:
            perm = jnp.broadcast_to(perm, (restarts, n))
        return perm, jnp.asarray(n)

    def run(self, key: jax.Array, num_steps: int, data, init_params: Any = None, *,
            batch_size: int | None = None, progress: Any = None,
            init_state: LearnState | None = None, eval_every: int | None = None,
            eval_fn: Callable | None = None, restarts: int = 1,
            select: Callable | None = None, checkpoint: Any = None,
            devices: Any = None) -> LearnResult:
        """Train for ``num_steps`` updates on random minibatches of ``data``.

        Parameters
        ----------
        key
            A ``jax.random.key`` (or an int seed).
        num_steps
            Number of optimiser updates.
        data
            ``(n, *event)`` training points.
        init_params
            Initial parameters (a pytree; optional for a NumPyro-style
            energy), or a callable ``init_params(key) -> pytree`` that draws
            them (each restart then draws its own).
        batch_size
            Points per update; default ``min(n, 128)``. Batches are slices of a
            random permutation of the data, redrawn every epoch (and at the
            start of every compiled chunk); ``batch_size=n`` uses all data
            every step.
        progress
            ``None`` (a tqdm bar in a terminal, off when ``CI`` is set),
            ``True``, ``False`` or an object with ``start/update/close``.
        init_state
            A :class:`LearnState` (e.g. ``previous_result.state``) to continue
            from; ``init_params`` is then ignored.
        eval_every, eval_fn
            Every ``eval_every`` updates call ``eval_fn(params)`` on the host
            with the current user-form parameters (e.g. a held-out
            log-likelihood through ``emc.log_partition``) and record its float
            value in ``history["eval"]`` (steps in ``history["eval_step"]``).
            With ``eval_every > num_steps`` it is called once, after the last
            update.
        restarts
            Train this many independent runs side by side, in one compiled,
            vectorised loop (cheaper than one after another: one compilation,
            larger array operations). Restart ``r`` is the run
            ``run(jax.random.fold_in(key, r), ...)`` would make, up to
            floating-point rounding: its own batches, chains and, with a
            callable ``init_params``, its own initial parameters. Use it to
            see how much a result depends on the seed, or with ``select`` to
            keep the best of several runs, as scikit-learn's ``n_init`` does.
        select
            With ``restarts > 1``: ``select(params) -> float``, higher is
            better, called on the host with each restart's final user-form
            parameters, for instance the training log-likelihood (exact for
            a small model, or with ``log Z`` from :func:`energymc.log_partition`).
            The top-scoring restart becomes ``result.params``; a non-finite
            score never wins. Without ``select`` the result is restart 0's.
            Score with training data: choosing by held-out data makes that
            data part of the fit. Whether the best training score also
            generalises best depends on the problem: for the RBM of
            ``benchmarks/bench_rbm.py`` it did not (RESULTS.md).
        checkpoint
            A directory (``str`` or ``os.PathLike``). After every compiled
            chunk of updates it receives everything the rest of the run
            depends on: the whole :class:`LearnState` (parameters, optimiser
            state, persistent chains or replay buffer, averages, key), the
            batch cursor, the updates done, the history and evaluations so
            far. The same call, in this process or a new one after a crash,
            resumes after the last completed chunk and returns exactly the
            result of an uninterrupted run. A directory holding a different
            job (another energy, data, optimiser, option, seed, ``num_steps``
            or ``batch_size``) is refused with an
            :class:`energymc.io.CheckpointError` naming what changed. With a
            checkpoint the run is always cut into 10 to 40 chunks (or at
            ``eval_every``; fewer than 20 updates are one chunk), progress
            bar or not. See ``docs/long-runs.md``.
        devices
            ``None`` (every device JAX sees), an int or a list of devices:
            batch points and negative chains are split over them (as many as
            divide ``batch_size``); see ``docs/devices.md``.

        Returns
        -------
        LearnResult
            With ``restarts > 1``, ``params``, ``history`` and ``state`` are
            the selected restart's and ``result.restarts`` keeps every
            restart's scores, parameters and history.
        """
        from energymc._util import as_key, chunk_lengths

        key = as_key(key)
        num_steps = check_int("num_steps", num_steps, 1)
        data = check_data(data)
        n = data.shape[0]
        if batch_size is None:
            batch_size = min(n, 128)
        batch_size = check_int("batch_size", batch_size, 1)
        if batch_size > n:
            raise OptionError(
                f"batch_size={batch_size} exceeds the number of data points {n}; pass "
                f"batch_size<={n}."
            )
        mesh = learner_mesh(devices, batch_size)  # checks devices= before anything compiles
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
        ckpt = LearnCheckpoint.coerce(checkpoint)
        if init_state is None:
            states = [self._start(jax.random.fold_in(key, r) if restarts > 1 else key, data,
                                  init_params, batch_size) for r in range(restarts)]
            state = states[0] if restarts == 1 else jax.tree.map(
                lambda *xs: jnp.stack(xs), *states)
        else:
            if not isinstance(init_state, LearnState):
                raise OptionError("init_state must be a LearnState, e.g. result.state.")
            if self._spec is None or tuple(data.shape[1:]) != self._event_shape:
                raise OptionError(
                    "init_state comes from a run of this learner on points of shape "
                    f"{self._event_shape}; continue with data of that shape on the same learner."
                )
            # A fresh key so that a continued run does not repeat the same batches.
            state = init_state._replace(key=jax.random.fold_in(init_state.key, num_steps))
            state = self._match_average(state)
            self._check_state_batch(state, batch_size)

        def each(state):
            """The state of every restart (one state without restarts)."""
            if restarts == 1:
                return [state]
            return [jax.tree.map(lambda a, r=r: a[r], state) for r in range(restarts)]

        meter = make_meter(progress)
        if eval_fn is not None:
            lengths = [eval_every] * (num_steps // eval_every)
            if num_steps % eval_every:
                lengths.append(num_steps % eval_every)
        else:
            # A checkpoint saves between chunks, so it needs chunks, bar or no
            # bar; and their lengths depend on num_steps alone, so that a
            # resumed run runs the very chunks an uninterrupted one would.
            lengths = chunk_lengths(num_steps, chunked=meter.active or ckpt is not None)
        infos, evals, eval_steps = [], [], []
        t0 = time.perf_counter()
        done = 0
        cursor = self._first_cursor(n, batch_size, restarts)
        if ckpt is not None:
            state, cursor = strong_types((state, cursor))
            fp = fingerprint(self, state, data, key=key, num_steps=num_steps,
                             batch_size=batch_size, restarts=restarts, eval_every=eval_every)
            saved = ckpt.open(fp, state, cursor)
            if saved is not None:
                done = saved["done"]
                bounds = np.cumsum([0, *lengths]).tolist()
                if done not in bounds:
                    raise CheckpointError(
                        f"checkpoint {ckpt.path!r} records {done} updates done, which is not "
                        "the end of a chunk of this run: it was written by another version "
                        "of energymc. Delete the directory (or pass another) to start anew.")
                lengths = lengths[bounds.index(done):]
                state, cursor = saved["state"], saved["cursor"]
                infos = saved["history"]
                evals, eval_steps = saved["evals"], saved["eval_steps"]
        resumed_from = done
        meter.start(num_steps, self._name)
        try:
            if done and meter.active:  # the updates a checkpoint already holds
                meter.update(done, {"loss": f"{float(np.mean(infos[-1]['loss'][-1])):.4g}"})
            for length in lengths:
                n_evals = len(evals)
                state, cursor, info = self._jit_chunk(state, data, cursor, num_steps=length,
                                                      batch_size=batch_size,
                                                      restarts=restarts > 1, mesh=mesh)
                done += length
                info = jax.device_get(info)
                infos.append(info)
                # With eval_every > num_steps no multiple is reached: evaluate
                # once after the last update rather than record nothing.
                if eval_fn is not None and (done % eval_every == 0
                                            or (done == num_steps and not evals)):
                    evals.append([float(eval_fn(self.get_params(s))) for s in each(state)])
                    eval_steps.append(done)
                if ckpt is not None:
                    ckpt.save(done - length, info, state, cursor,
                              (done, evals[-1]) if len(evals) > n_evals else None)
                if meter.active:
                    # The latest update's loss (the mean over restarts).
                    post = {"loss": f"{float(np.mean(info['loss'][-1])):.4g}"}
                    if evals:
                        post["eval"] = f"{max(evals[-1]):.4g}"
                    meter.update(length, post)
            jax.block_until_ready(state)
        finally:
            meter.close()
        total = time.perf_counter() - t0
        history = _concat(infos)
        if restarts > 1:  # scan stacks steps first: (num_steps, R) -> (R, num_steps)
            history = {k: np.swapaxes(v, 0, 1) for k, v in history.items()}
        if eval_fn is not None:
            history["eval_step"] = np.asarray(eval_steps)
            history["eval"] = np.asarray(evals).T  # (restarts, num_evals)
        timing = {"total_s": total, "per_update_s": total / max(num_steps - resumed_from, 1)}
        if ckpt is not None:
            timing["resumed_from"] = resumed_from
        if restarts == 1:
            if eval_fn is not None:
                history["eval"] = history["eval"][0]
            return LearnResult(params=self.get_params(state), losses=history["loss"],
                               history=history, state=state, log_z=self._result_log_z(state),
                               timing=timing, problems=self._warn(history))

        states = each(state)
        params = [self.get_params(s) for s in states]
        if select is None:
            scores, best = None, 0
        else:
            scores = np.array([_score(select, p) for p in params])
            best = int(np.argmax(np.where(np.isfinite(scores), scores, -np.inf)))
        if scores is not None and not np.isfinite(scores).any():
            warnings.warn(f"select() gave no finite score for any of the {restarts} restarts; "
                          "keeping restart 0. result.restarts['scores'] has the values.",
                          RuntimeWarning, stacklevel=2)
        chosen = {k: (v if k == "eval_step" else v[best]) for k, v in history.items()}
        return LearnResult(
            params=params[best], losses=chosen["loss"], history=chosen, state=states[best],
            log_z=self._result_log_z(states[best]), timing=timing,
            restarts={"scores": scores, "best": best,
                      "params": jax.tree.map(lambda *xs: np.stack(xs), *params),
                      "history": history},
            problems=self._warn(chosen),
        )

    def _problems(self, history: dict) -> list[str]:
        """Reasons not to trust a finished run, read from its history (host code)."""
        return []

    def _warn(self, history: dict) -> list[str]:
        problems = self._problems(history)
        for p in problems:
            warnings.warn(p, EnergymcWarning, stacklevel=3)
        return problems

    def _start(self, key, data, init_params, batch_size):
        """The initial state of one run; a callable ``init_params`` draws its parameters."""
        if callable(init_params):
            k_init, key = jax.random.split(key)
            init_params = init_params(k_init)
        return self.init(key, data, init_params, batch_size=batch_size)

    def _check_state_batch(self, state, batch_size):
        pass

    def _result_log_z(self, state):
        return None

