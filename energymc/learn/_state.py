"""What a learner carries from update to update (:class:`LearnState`), what ``run``
returns (:class:`LearnResult`), and the parameter average kept in the state.

The averaging functions are pure and traced inside updates; the result's
tables and frames are host code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = ["LearnResult", "LearnState", "average_init", "average_update", "averaged"]


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
        With parameter averaging (``CD(..., ema=decay)``): the
        ``optax.EmaState`` of ``optax.ema(decay, debias=True)`` over the
        internal parameters after each update (``count`` updates, ``ema`` the
        zero-started moving average, ``ema / (1 - decay**count)`` the
        debiased one). ``None`` otherwise.
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
    checks
        What the checks of the learned model against the data found
        (``run(..., checks=True)``, the default): ``checks["modes"]``, for CD,
        NCE, DSM and SSM on real-valued vectors of at most 64 dimensions,
        compares the shares of probability the model gives its separated
        modes with the data's (``energymc.learn._modes``; flagged in
        ``problems``). ``{}`` when none ran.
    """

    params: Any
    losses: np.ndarray
    history: dict
    state: LearnState
    log_z: float | None = None
    timing: dict = field(default_factory=dict)
    restarts: dict | None = None
    problems: list = field(default_factory=list)
    checks: dict = field(default_factory=dict)

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
# Parameter averaging (``ema=``): optax's debiased EMA, pure, traced inside
# every update.
# ---------------------------------------------------------------------------
def _decay(decay):
    # An array of the default float dtype, not a Python float: optax then forms
    # ``1 - decay`` in that dtype too, so that the weights it sums and the
    # ``1 - decay**t`` it divides by agree (with a Python float the two are
    # rounded differently, a relative error of eps / (1 - decay) in float32).
    return jnp.asarray(decay, jnp.result_type(float))


def average_init(internal):
    """An empty average of parameters shaped like ``internal``: ``optax.EmaState``
    with count 0 and a zero moving average."""
    return optax.ema(_decay(0.0), debias=True).init(internal)


def average_update(average, decay: float, new):
    """The average after one more iterate ``new``, with decay ``decay``
    (``optax.ema(decay, debias=True)``).

    Zero-started and debiased (as Adam's moments): the debiased average is a
    weighted mean of the iterates so far, with no pull towards the initial
    parameters however short the run.
    """
    _, average = optax.ema(_decay(decay), debias=True).update(new, average)
    return average


def averaged(average, decay: float, internal):
    """The debiased average (``ema / (1 - decay**t)``); the current ``internal``
    before any update (``t = 0``)."""
    count = average.count
    debiased = optax.tree.bias_correction(average.ema, _decay(decay), jnp.maximum(count, 1))
    return jax.tree.map(lambda a, p: jnp.where(count > 0, a, p), debiased, internal)
