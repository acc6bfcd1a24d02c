"""The learner front-end every method shares: ``init``, ``update`` and ``run``
over one pure update, set up once per data set and never changed afterwards.

A method (CD, NCE, DSM, ...) subclasses :class:`LearnerBase` and writes its
loss, ``_loss(internal, extra, batch, key) -> (loss, (extra, stats))``, and, if
it keeps state between updates, ``_extra_init``. The optimiser step through
``numpyro.optim``, parameter averaging and the statistics every learner
reports are :meth:`LearnerBase._update`'s; the loop over minibatches, restarts,
evaluation, progress and checkpoints is :mod:`energymc.learn._driver`'s.

Set-up and purity. What ``init`` learns from the data (the parameter form,
the event shape, CD's sampler for binary data, DSM's default noise level,
JEM's number of classes) is written on a *copy* of the learner, the set-up
learner, which nothing changes afterwards. Its ``_update`` is the pure update
the loop compiles (a static argument of the compiled chunk, so that a cached
trace can never see a changed learner): initialising anew on other data makes
another set-up learner and another compilation; on the same data the earlier
one is reused. The front-end keeps a record of the latest set-up for host
code (``learner.sampler``, ``learner.sigmas``, ``get_params``) and reads it
only on the host.

The contract of a method is :data:`LEARNER_HOOKS`, in one place: the one
required hook (``_loss``), the optional ones with their defaults, and the two
class facts. A method overrides nothing else; ``tests/learn/test_learner_contract.py``
checks every learner against the table, as ``kernels.register`` checks a
kernel against ``_base.KERNEL_HOOKS``.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from energymc._util import as_key, check_bool, n_positional, renamed
from energymc.errors import EnergyError, EnergymcWarning, OptionError
from energymc.learn import _driver
from energymc.learn._checkpoint import LearnCheckpoint
from energymc.learn._checks import (
    check_batch,
    check_batch_size,
    check_data,
    check_ema,
    check_int,
    check_optim,
    check_run_options,
    select_score,
)
from energymc.learn._devices import learner_mesh
from energymc.learn._modes import mode_weight_check, mode_weight_problem
from energymc.learn._params import ParamSpec, make_spec
from energymc.learn._state import (
    LearnResult,
    LearnState,
    average_init,
    average_update,
    averaged,
)
from energymc.progress import make_meter

__all__ = ["LEARNER_HOOKS", "LEARNER_REQUIRED", "LearnerBase"]

#: What a method (a subclass of :class:`LearnerBase`) may define, and the
#: default of each. Everything else (the optimiser step, averaging, the loop,
#: set-up and reuse) is shared and not overridden; a method may only extend
#: the public front-end (``init``, ``run``, ``get_params``, host code) by
#: calling ``super()``, e.g. JEM's labels. Set-up hooks run on the host on the
#: set-up copy (``init``); ``_loss`` is traced.
LEARNER_HOOKS = {
    # required
    "_loss": "(internal, extra, batch, key) -> (loss, (extra, stats)); traced, "
             "differentiated in internal. No default",
    # optional: set-up (host code, once per data set)
    "_extra_init": "(key, data, internal, batch_size) -> method state carried between "
                   "updates (chains, a buffer, fitted noise). Default {}",
    "_make_spec": "(key, x0, init_params) -> (ParamSpec, internal): the parameter form. "
                  "Default make_spec on energy_fn",
    "_extra_args_for_check": "() -> extra arguments to check energy_fn with (a noise "
                             "level). Default ()",
    "_add_internal": "(internal, data) -> internal with the method's own parameters "
                     "(NCE's log Z). Default unchanged",
    "_model_params": "(internal) -> the energy's part of internal, for get_params. "
                     "Default unchanged",
    "_start": "(key, data, init_params, batch_size) -> LearnState of one run. "
              "Default init(), drawing a callable init_params",
    # optional: host checks and reports
    "_check_state_batch": "(state, batch_size) -> None; refuses a continued state that "
                          "does not fit batch_size. Default accepts",
    "_problems": "(history) -> sentences: reasons not to trust a finished run. "
                 "Default []",
    "_result_log_z": "(state) -> LearnResult.log_z. Default None",
    # class facts
    "_name": "the method's name in messages and fingerprints. Default 'learn'",
    "_energy_extra_args": "positional arguments of energy_fn besides params and x "
                          "(1: a noise level). Default 0",
    "_judges_mode_weights": "whether run() checks the learned energy's mode weights "
                            "against the data's (energymc.learn._modes). Default False",
}
#: The hooks without a default.
LEARNER_REQUIRED = ("_loss",)

#: Attributes of the front-end that are host bookkeeping, not set-up.
_HOST_ONLY = ("_setups", "_setup", "_jit_chunk")
#: Set-up learners kept for reuse per front-end (each holds a compilation).
_MAX_SETUPS = 8


def _same(a, b) -> bool:
    """Whether two set-up values are equal, so that a program traced with one is valid
    for the other; conservative (unknown objects count only when identical)."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, ParamSpec):
        return a.same_as(b)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (np.ndarray, jax.Array)):
        if isinstance(a, jax.core.Tracer) or isinstance(b, jax.core.Tracer):
            return False
        return a.shape == b.shape and a.dtype == b.dtype and bool(
            np.array_equal(np.asarray(a), np.asarray(b)))
    if isinstance(a, (bool, int, float, str, type(None))):
        return a == b
    return False


def _seed_key(seed, what: str, **required) -> jax.Array:
    """The key from ``seed=`` (an int or a key), once ``seed`` and the ``required``
    arguments of ``what()`` are all given (they default to ``None`` only so that
    ``seed=`` can be passed by keyword while ``key=`` is still read)."""
    missing = [name for name, value in {"seed": seed, **required}.items() if value is None]
    if missing:
        raise OptionError(f"{what}() needs {', '.join(m + '=' for m in missing)}: e.g. "
                          f"learner.{what}(seed=0, ...) or learner.{what}(jax.random.key(0), ...).")
    return as_key(seed)


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
    _judges_mode_weights = False

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
        self._setup: LearnerBase | None = None  # the latest set-up learner
        self._setups: list = []
        self._jit_chunk = _driver.compiled_chunk()

    # ----------------------------------------------------------- parameters
    def _extra_args_for_check(self):
        return ()

    def _make_spec(self, key, x0, init_params):
        """The parameter spec and initial internal parameters; checks the energy."""
        return make_spec(self.energy_fn, self._numpyro_style, key, x0, init_params,
                         self._extra_args_for_check(),
                         conditional=bool(self._energy_extra_args))

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
            internal = averaged(state.average, self.ema, internal)
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

    # --------------------------------------------------------------- set-up
    def _set_up(self, key, data, init_params, batch_size):
        """A set-up copy of this learner for ``data``, and the initial internal
        parameters and method state (host code; the copy's hooks record what the
        data decide)."""
        learner = copy.copy(self)
        for name in _HOST_ONLY:
            learner.__dict__.pop(name, None)
        learner._event_shape = tuple(data.shape[1:])
        k_param, k_extra = key
        spec, internal = learner._make_spec(k_param, data[0], init_params)
        learner._spec = spec
        internal = learner._add_internal(internal, data)
        extra = learner._extra_init(k_extra, data, internal, batch_size)
        return learner, internal, extra

    def _adopt(self, learner) -> None:
        """Make ``learner`` the current set-up (an equal earlier one is reused, with
        its compilations) and record its set-up on the front-end for host code."""
        setup = {k: v for k, v in vars(learner).items() if k not in _HOST_ONLY}
        for old in self._setups:
            mine = {k: v for k, v in vars(old).items() if k not in _HOST_ONLY}
            if _same(mine, setup):
                learner = old
                break
        else:
            self._setups = [*self._setups[-(_MAX_SETUPS - 1):], learner]
        self._setup = learner
        self.__dict__.update(setup)

    # -------------------------------------------------------------- pure API
    def init(self, seed: Any = None, data=None, init_params: Any = None, *,
             batch_size: int | None = None, key: Any = None) -> LearnState:
        """Initial :class:`LearnState`.

        Parameters
        ----------
        seed
            An int or a ``jax.random.key`` (``key=`` is its deprecated name;
            positional calls ``init(key, data)`` are unchanged).
        data
            ``(n, *event)`` training points (used for shapes and for
            data-dependent set-up: fitted noise, persistent chains).
        init_params
            Initial parameter pytree; optional for a NumPyro-style energy.
        batch_size
            Size of the batches ``update`` will see (persistent CD sizes its
            chains by it); default ``min(n, 128)``.
        """
        key = _seed_key(renamed("key", "seed", key, seed), "init", data=data)
        data = check_data(data)
        batch_size = check_batch_size(batch_size, data.shape[0])
        k_param, k_extra, k_state = jax.random.split(key, 3)
        learner, internal, extra = self._set_up((k_param, k_extra), data, init_params,
                                                batch_size)
        self._adopt(learner)
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
        return None if self.ema is None else average_init(internal)

    def _add_internal(self, internal, data):
        return internal

    def _extra_init(self, key, data, internal, batch_size):
        return {}

    def _loss(self, internal, extra, batch, key):
        """``(loss, (new_extra, diagnostics))``; differentiated in ``internal``."""
        raise NotImplementedError

    def _update(self, state: LearnState, batch):
        """One optimiser step: the pure update the driver compiles (on a set-up learner)."""
        key, sub = jax.random.split(state.key)
        internal = self.optim.get_params(state.optim_state)
        (loss, (extra, info)), grads = jax.value_and_grad(self._loss, has_aux=True)(
            internal, state.extra, batch, sub)
        optim_state = self.optim.update(grads, state.optim_state, value=loss)
        gnorm = optax.tree.norm(grads)
        info = {"loss": loss, "grad_norm": gnorm, **info}
        average = self._match_average(state, internal).average
        if average is not None:
            average = average_update(average, self.ema, self.optim.get_params(optim_state))
        return LearnState(optim_state, key, extra, average), info

    def update(self, state: LearnState, batch) -> tuple[LearnState, jax.Array]:
        """One optimiser step on ``batch`` ``(batch_size, *event)``; pure and jittable.

        Returns ``(new_state, loss)``, as ``numpyro.infer.SVI.update`` does;
        :meth:`update_with_info` returns every diagnostic.
        """
        state, info = self.update_with_info(state, batch)
        return state, info["loss"]

    def update_with_info(self, state: LearnState, batch) -> tuple[LearnState, dict]:
        """Like :meth:`update`, returning a dict of scalar diagnostics instead of the loss.

        The step is the set-up learner's (the one the latest :meth:`init` made).
        """
        if self._setup is None:
            raise OptionError("call init(key, data, init_params) before update().")
        check_batch(batch, self._event_shape)
        return self._setup._update(state, jnp.asarray(batch, dtype=jnp.result_type(float)))

    # -------------------------------------------------------------- the loop
    def run(self, seed: Any = None, num_steps: int | None = None, data=None,
            init_params: Any = None, *,
            batch_size: int | None = None, progress: Any = None,
            init_state: LearnState | None = None, eval_every: int | None = None,
            eval_fn: Callable | None = None, restarts: int = 1,
            select: Callable | None = None, checkpoint: Any = None,
            devices: Any = None, checks: bool = True, key: Any = None) -> LearnResult:
        """Train for ``num_steps`` updates on random minibatches of ``data``.

        Parameters
        ----------
        seed
            An int or a ``jax.random.key`` (``key=`` is its deprecated name;
            positional calls ``run(key, num_steps, data)`` are unchanged).
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
            divide ``batch_size``, with an ``EnergymcWarning`` when that leaves
            some idle); see ``docs/devices.md``.
        checks
            Check the learned model against the data after training (default
            ``True``; CD, NCE, DSM and SSM on real-valued vectors of at most
            64 dimensions): the shares of probability it gives the separated
            modes that descents from the training points find, against the
            data's shares (``result.checks["modes"]``); a gross mismatch is a
            problem. Score matching and short CD chains cannot see these
            weights. About a second; ``False`` skips it.

        Returns
        -------
        LearnResult
            With ``restarts > 1``, ``params``, ``history`` and ``state`` are
            the selected restart's and ``result.restarts`` keeps every
            restart's scores, parameters and history.
        """
        key = _seed_key(renamed("key", "seed", key, seed), "run", num_steps=num_steps,
                        data=data)
        num_steps = check_int("num_steps", num_steps, 1)
        data = check_data(data)
        batch_size = check_batch_size(batch_size, data.shape[0])
        checks = check_bool("checks", checks)
        eval_every, restarts = check_run_options(
            eval_every=eval_every, eval_fn=eval_fn, restarts=restarts, select=select,
            init_state=init_state, state_type=LearnState)
        mesh = learner_mesh(devices, batch_size)  # checks devices= before anything compiles
        ckpt = LearnCheckpoint.coerce(checkpoint)
        state = self._first_state(key, num_steps, data, init_params, init_state, batch_size,
                                  restarts)
        job = _driver.Job(self._setup, data, key, num_steps, batch_size, restarts,
                          eval_every, eval_fn, ckpt, mesh)
        trained = _driver.train(job, self._jit_chunk, state, make_meter(progress))
        if restarts == 1:
            params = self.get_params(trained.state)
            fit_checks = self._fit_checks(checks, params, data)
            return LearnResult(params=params,
                               losses=trained.history["loss"], history=trained.history,
                               state=trained.state, log_z=self._result_log_z(trained.state),
                               timing=trained.timing, checks=fit_checks,
                               problems=self._warn(trained.history, fit_checks))
        states = _driver.each(trained.state, restarts)
        params = [self.get_params(s) for s in states]
        scores, best = self._select(select, params)
        chosen = {k: (v if k == "eval_step" else v[best]) for k, v in trained.history.items()}
        fit_checks = self._fit_checks(checks, params[best], data)
        return LearnResult(
            params=params[best], losses=chosen["loss"], history=chosen, state=states[best],
            log_z=self._result_log_z(states[best]), timing=trained.timing,
            restarts={"scores": scores, "best": best,
                      "params": jax.tree.map(lambda *xs: np.stack(xs), *params),
                      "history": trained.history},
            checks=fit_checks, problems=self._warn(chosen, fit_checks),
        )

    def _first_state(self, key, num_steps, data, init_params, init_state, batch_size,
                     restarts):
        """The state the run starts from: fresh (one per restart, stacked) or continued."""
        if init_state is None:
            states = [self._start(jax.random.fold_in(key, r) if restarts > 1 else key, data,
                                  init_params, batch_size) for r in range(restarts)]
            return states[0] if restarts == 1 else jax.tree.map(
                lambda *xs: jnp.stack(xs), *states)
        if self._setup is None or tuple(data.shape[1:]) != self._event_shape:
            raise OptionError(
                "init_state comes from a run of this learner on points of shape "
                f"{self._event_shape}; continue with data of that shape on the same learner."
            )
        # A fresh key so that a continued run does not repeat the same batches.
        state = init_state._replace(key=jax.random.fold_in(init_state.key, num_steps))
        state = self._match_average(state)
        self._check_state_batch(state, batch_size)
        return state

    @staticmethod
    def _select(select, params) -> tuple:
        """``(scores, best)``: ``select``'s score of every restart and the one kept."""
        if select is None:
            return None, 0
        scores = np.array([select_score(select, p) for p in params])
        best = int(np.argmax(np.where(np.isfinite(scores), scores, -np.inf)))
        if not np.isfinite(scores).any():
            warnings.warn(f"select() gave no finite score for any of the {len(params)} "
                          "restarts; keeping restart 0. result.restarts['scores'] has the "
                          "values.", RuntimeWarning, stacklevel=3)
        return scores, best

    def _problems(self, history: dict) -> list[str]:
        """Reasons not to trust a finished run, read from its history (host code)."""
        return []

    def _fit_checks(self, checks: bool, params, data) -> dict:
        """Checks of the learned model against the data (host code): ``{"modes": ...}``."""
        if not checks or not self._judges_mode_weights or self._energy_extra_args:
            return {}
        try:
            return {"modes": mode_weight_check(self._spec.user_energy, params, data)}
        except (ArithmeticError, ValueError, np.linalg.LinAlgError) as err:
            # An advisory check: numerical trouble in it never costs the trained result.
            return {"modes": {"ran": False, "flag": False,
                              "reason": f"the check failed: {type(err).__name__}: {err}"}}

    def _warn(self, history: dict, fit_checks: dict | None = None) -> list[str]:
        problems = self._problems(history)
        if fit_checks and "modes" in fit_checks:
            problems = problems + mode_weight_problem(fit_checks["modes"], self._name)
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
