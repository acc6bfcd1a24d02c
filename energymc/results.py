"""`Run`: the result of :func:`energymc.sample`.

Host-side container; nothing here runs under jit.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import jax
import numpy as np

from energymc._display import html_table, text_block

__all__ = ["Run"]


class Run:
    """Draws, sample stats and warmup results of one call to :func:`energymc.sample`.

    Attributes
    ----------
    draws
        Pytree shaped like the target's ``init`` (for NumPyro targets: a dict
        of constrained and deterministic sites), every leaf
        ``(chains, draws, *leaf.shape)``.
    flat_draws
        ``(chains, draws, dim)`` array of the positions the kernel saw
        (unconstrained for NumPyro targets).
    stats
        Dict of ``(chains, draws)`` arrays under ArviZ names: ``lp``
        (log-density, i.e. ``-E``), ``acceptance_rate``, ``diverging``,
        ``energy`` (Hamiltonian, HMC/NUTS), ``step_size``, ``n_steps``,
        ``tree_depth`` (NUTS), depending on the method.
    warmup
        Dict with ``params`` (tuned parameters per chain: ``step_size``
        ``(chains,)``, ``inverse_mass_matrix`` ``(chains, dim)`` or
        ``(chains, dim, dim)``, ...) and ``trace`` (per warmup step).
    timing
        Wall-clock seconds, compilation included: ``total_s``, and separately
        ``warmup_s`` and ``sampling_s`` when the run was cut into chunks (a
        progress bar or ``callback``). Without either, warmup and sampling
        are one compiled call and only ``total_s`` is known.
    """

    def __init__(self, *, target, method, seed, options, chains, warmup_steps, thin,
                 warmup_params, warmup_trace):
        self.target = target
        self.method = method
        self.seed = seed
        self.options = options
        self.chains = chains
        self.warmup_steps = warmup_steps
        self.thin = thin
        self.warmup = {
            "params": jax.tree.map(np.asarray, warmup_params),
            "trace": jax.tree.map(np.asarray, dict(warmup_trace)),
        }
        self._chunks_pos: list = []
        self._chunks_stats: list = []
        self.last_state = None
        self.timing: dict = {}
        self._flat = None
        self._stats = None

    # ------------------------------------------------------------ loop hooks
    def _append(self, positions, stats) -> None:
        self._chunks_pos.append(positions)
        self._chunks_stats.append(stats)
        self._flat = None
        self._stats = None
        self.__dict__.pop("draws", None)

    def _progress_postfix(self) -> dict:
        last = self._chunks_stats[-1]
        acc = float(np.mean(np.asarray(last["acceptance_rate"])))
        div = int(sum(int(np.sum(np.asarray(s["diverging"]))) for s in self._chunks_stats))
        return {"accept": f"{acc:.2f}", "divergent": div}

    def _finish(self, states, timing) -> None:
        self.last_state = states
        self.timing = dict(timing)

    # -------------------------------------------------------------- results
    @property
    def flat_draws(self) -> np.ndarray:
        if self._flat is None:
            self._flat = np.concatenate([np.asarray(p) for p in self._chunks_pos], axis=1)
        return self._flat

    @property
    def stats(self) -> dict[str, np.ndarray]:
        if self._stats is None:
            keys = self._chunks_stats[0].keys()
            self._stats = {
                k: np.concatenate([np.asarray(s[k]) for s in self._chunks_stats], axis=1)
                for k in keys
            }
        return self._stats

    @cached_property
    def draws(self) -> Any:
        return jax.tree.map(np.asarray, self.target.postprocess(self.flat_draws))

    @property
    def num_draws(self) -> int:
        return int(self.flat_draws.shape[1])

    @property
    def num_divergent(self) -> int:
        return int(np.sum(self.stats["diverging"]))

    @property
    def mean_acceptance(self) -> float:
        return float(np.mean(self.stats["acceptance_rate"]))

    @property
    def num_grad_evals(self) -> int:
        """Gradient (or energy) evaluations spent sampling, all chains together."""
        if "n_steps" in self.stats:
            return int(np.sum(self.stats["n_steps"]) * self.thin)
        per_step = {"mclmc": 2, "rwm": 1}.get(self.method, 1)
        return int(self.chains * self.num_draws * self.thin * per_step)

    # ----------------------------------------------------- ArviZ and reports
    def to_arviz(self):
        """An ``arviz.InferenceData`` with ``posterior`` and ``sample_stats``."""
        from energymc.diagnostics import to_arviz

        return to_arviz(self)

    def summary(self, **kwargs):
        """``arviz.summary`` of the draws (a pandas DataFrame)."""
        from energymc.diagnostics import summary

        return summary(self, **kwargs)

    def diagnose(self, **kwargs):
        """Shorthand for :func:`energymc.diagnose`."""
        from energymc.diagnostics import diagnose

        return diagnose(self, **kwargs)

    def _headline(self) -> list[tuple[str, str]]:
        rows = [("target", repr(self.target.name)), ("method", self.method),
                ("chains x draws", f"{self.chains} x {self.num_draws} (warmup {self.warmup_steps}, "
                                   f"thin {self.thin})"),
                ("mean acceptance", f"{self.mean_acceptance:.3f}"),
                ("divergences", str(self.num_divergent))]
        if "step_size" in self.warmup["params"]:
            ss = np.atleast_1d(self.warmup["params"]["step_size"])
            rows.append(("step size", ", ".join(f"{s:.3g}" for s in ss)))
        if "warmup_s" in self.timing:
            rows.append(("time", f"warmup {self.timing['warmup_s']:.2f}s, "
                                 f"sampling {self.timing['sampling_s']:.2f}s"))
        elif self.timing:
            rows.append(("time", f"{self.timing['total_s']:.2f}s (warmup and sampling)"))
        return rows

    def __repr__(self) -> str:
        return text_block("Run", self._headline())

    def _repr_html_(self) -> str:
        return html_table("energymc Run", self._headline())
