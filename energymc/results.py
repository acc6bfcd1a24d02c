"""`Run`: the result of :func:`energymc.sample`.

Host-side container; nothing here runs under jit.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from energymc._display import MAX_ROWS, html_columns, html_table, text_block, text_columns

__all__ = ["Run"]

#: Renamed stats, old -> new (fractions of accepted proposals are ``*_rate``,
#: the vocabulary of ``docs/architecture.md``). :attr:`Run.stats` holds the same
#: array under the old name too, for one release: a dict key cannot warn.
RENAMED_STATS = {"swap_acceptance": "swap_acceptance_rate", "mh_acceptance": "mh_acceptance_rate"}


def _with_old_names(stats: dict) -> dict:
    # Both directions: a run stored before the rename has only the old key.
    for old, new in RENAMED_STATS.items():
        if new in stats:
            stats.setdefault(old, stats[new])
        elif old in stats:
            stats[new] = stats[old]
    return stats


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
        ``tree_depth`` (NUTS), ``swap_acceptance_rate`` and ``round_trips``
        (``pt``), ``mh_acceptance_rate`` and ``variance_inflation``
        (``langevin``: the would-be Metropolis acceptance, and the estimated
        variance inflation along the stiffest direction, constant per chain),
        depending on the method. ``swap_acceptance`` is
        ``swap_acceptance_rate`` under its deprecated name, kept for one
        release.
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
        self._draws = None
        # A ChunkStore when the draws stay on disk (sample(store=...)): nothing
        # below then keeps draws in memory; each result reads the files when asked.
        self._store = None
        self._last_stats = None
        self._divergent_so_far = 0

    # ------------------------------------------------------------ loop hooks
    def _append(self, positions, stats) -> None:
        self._last_stats = stats
        self._divergent_so_far += int(np.sum(np.asarray(stats["diverging"])))
        if self._store is None:
            self._chunks_pos.append(positions)
            self._chunks_stats.append(stats)
        self._flat = None
        self._stats = None
        self._draws = None

    def _use_store(self, store) -> None:
        """Read draws and stats from ``store`` (a :class:`energymc.store.ChunkStore`)."""
        self._store = store
        self._chunks_pos, self._chunks_stats = [], []
        self._flat = self._stats = self._draws = None

    def _progress_postfix(self) -> dict:
        acc = float(np.mean(np.asarray(self._last_stats["acceptance_rate"])))
        return {"accept": f"{acc:.2f}", "divergent": self._divergent_so_far}

    def _finish(self, states, timing) -> None:
        self.last_state = states
        self.timing = dict(timing)

    # -------------------------------------------------------------- results
    @property
    def stored(self) -> bool:
        """Whether the draws stay on disk (``sample(store=...)``) and are read when asked."""
        return self._store is not None

    @property
    def flat_draws(self) -> np.ndarray:
        if self._store is not None:  # read every time: holding it would undo streaming
            return self._store.concat("positions")
        if self._flat is None:
            self._flat = np.concatenate([np.asarray(p) for p in self._chunks_pos], axis=1)
        return self._flat

    @property
    def stats(self) -> dict[str, np.ndarray]:
        if self._store is not None:
            return _with_old_names({k: self._store.concat(f"stat_{k}")
                                    for k in self._store.stat_names()})
        if self._stats is None:
            keys = self._chunks_stats[0].keys()
            self._stats = _with_old_names({
                k: np.concatenate([np.asarray(s[k]) for s in self._chunks_stats], axis=1)
                for k in keys
            })
        return self._stats

    @property
    def draws(self) -> Any:
        if self._store is not None:
            return jax.tree.map(np.asarray, self.target.postprocess(self.flat_draws))
        if self._draws is None:
            self._draws = jax.tree.map(np.asarray, self.target.postprocess(self.flat_draws))
        return self._draws

    @property
    def num_draws(self) -> int:
        if self._store is not None:
            return self._store.done
        return int(sum(np.shape(p)[1] for p in self._chunks_pos))

    def _per_chain_mean(self, name: str) -> np.ndarray | None:
        """``(chains,)`` mean over draws of a stat (chunk by chunk for a stored run)."""
        if self._store is not None:
            if name not in self._store.stat_names():
                return None
            return self._store.per_chain_sum(f"stat_{name}") / max(self.num_draws, 1)
        if name not in self.stats:
            return None
        return np.mean(np.asarray(self.stats[name], dtype=np.float64), axis=1)

    @property
    def num_divergent(self) -> int:
        if self._store is None:
            return int(np.sum(self.stats["diverging"]))
        return int(round(float(np.sum(self._per_chain_mean("diverging")) * self.num_draws)))

    @property
    def mean_acceptance(self) -> float:
        # In memory, the plain mean (as before streaming existed: golden values);
        # a stored run averages its per-chain means, read chunk by chunk.
        if self._store is None:
            return float(np.mean(self.stats["acceptance_rate"]))
        return float(np.mean(self._per_chain_mean("acceptance_rate")))

    @property
    def num_grad_evals(self) -> int:
        """Gradient (or energy) evaluations spent sampling, all chains together."""
        from energymc import kernels

        kernel = kernels.get(self.method)
        if self._store is None:
            return kernel.count_grad_evals(self.stats, self.thin)
        # A stored run: the same count from per-chain sums, read chunk by chunk.
        steps = self._per_chain_mean("n_steps")
        if steps is not None:
            return int(round(float(np.sum(steps)) * self.num_draws)) * self.thin
        return int(self.chains * self.num_draws * self.thin * kernel.grad_evals_per_step)

    # ----------------------------------------------------- ArviZ and reports
    def to_arviz(self):
        """The draws as ArviZ data: an ``arviz.InferenceData`` (ArviZ 0.x) or an
        ``xarray.DataTree`` (ArviZ 1.x), with groups ``posterior`` and ``sample_stats``.

        Delegates to :func:`energymc.diagnostics.to_arviz`.
        """
        from energymc.diagnostics import to_arviz

        return to_arviz(self)

    def summary(self, **kwargs):
        """``arviz.summary`` of the draws (a pandas DataFrame).

        For a stored run (``sample(store=...)``) ArviZ summarises a batch of
        coordinates at a time, read from the files (:func:`energymc.store.summary`).
        """
        if self._store is not None:
            from energymc.store import summary

            return summary(self, **kwargs)
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

    def stats_frame(self):
        """The sample stats as a pandas DataFrame, one row per kept draw.

        Named ``stats_frame`` rather than ``to_dataframe`` because it holds the
        stats only: ArviZ's ``to_dataframe`` means every group, draws
        included, and :meth:`to_arviz` is the way to that.

        Returns
        -------
        pandas.DataFrame
            ``chains * draws`` rows indexed by ``(chain, draw)``, one column
            per entry of :attr:`stats` (``lp``, ``acceptance_rate``,
            ``diverging``, ...); a stat with more than one value per draw
            (e.g. one per replica) becomes columns ``name[0]``, ``name[1]``, ...
        """
        import pandas as pd

        columns = {}
        for name, value in self.stats.items():
            value = np.asarray(value)
            per_draw = value.reshape(self.chains * self.num_draws, -1)
            if value.ndim == 2:
                columns[name] = per_draw[:, 0]
            else:
                for j in range(per_draw.shape[1]):
                    columns[f"{name}[{j}]"] = per_draw[:, j]
        index = pd.MultiIndex.from_product([range(self.chains), range(self.num_draws)],
                                           names=["chain", "draw"])
        return pd.DataFrame(columns, index=index)

    def _chain_rows(self) -> tuple[list[str], list[list[str]]]:
        """Per-chain acceptance, divergences, mean log-density and tuned step size."""
        acc, div, lp = (self._per_chain_mean(k) for k in ("acceptance_rate", "diverging", "lp"))
        header = ["chain", "acceptance", "divergences", "mean lp"]
        steps = self.warmup["params"].get("step_size")
        if steps is not None:
            steps = np.ravel(steps)
            header.append("step size")
        rows = []
        for c in range(self.chains):
            row = [str(c), f"{np.mean(acc[c]):.3f}",
                   str(int(round(float(np.sum(div[c])) * self.num_draws)))]
            row.append(f"{np.mean(lp[c]):.4g}" if lp is not None else "")
            if steps is not None:
                row.append(f"{steps[c]:.3g}" if steps.size == self.chains else "")
            rows.append(row)
        return header, rows

    def _variable_rows(self) -> tuple[list[str], list[list[str]]]:
        """Each leaf of the draws: its shape per draw, mean and sd over chains and draws."""
        rows = []
        for name, shape, mean, sd in self._leaf_moments():
            rows.append([name, str(shape), f"{mean:.4g}", f"{sd:.4g}"])
        return ["variable", "shape", "mean", "sd"], rows

    def _view(self, flat: np.ndarray):
        """Flat ``(chains, n, dim)`` positions as the draws users see, in numpy.

        Without a NumPyro postprocess that is a reshape per leaf (views, no
        copies), not JAX's unravel, which would allocate the chunk several times.
        """
        if self.target.is_numpyro:
            return self.target.postprocess(flat)
        leaves, treedef = jax.tree.flatten(self.target.init)
        out, offset = [], 0
        for leaf in leaves:
            size = int(np.size(leaf))
            out.append(flat[..., offset:offset + size].reshape(*flat.shape[:-1], *np.shape(leaf)))
            offset += size
        return jax.tree.unflatten(treedef, out)

    def _leaf_moments(self):
        """``[(name, event shape, mean, sd)]`` per leaf; chunk by chunk for a stored run."""
        if self._store is None:
            return [(jax.tree_util.keystr(path) or "x", tuple(np.shape(leaf)[2:]),
                     float(np.mean(leaf)), float(np.std(leaf)))
                    for path, leaf in jax.tree_util.tree_flatten_with_path(self.draws)[0]]
        acc = {}
        for chunk in self._store.iter("positions"):
            tree = self._view(chunk["positions"])
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
                leaf = np.asarray(leaf, dtype=np.float64)
                name = jax.tree_util.keystr(path) or "x"
                # Sums of deviations from the first chunk's mean: no cancellation
                # when the mean is large against the sd.
                n, shift, s1, s2, _ = acc.get(name, (0, float(leaf.mean()), 0.0, 0.0, None))
                d = leaf - shift
                acc[name] = (n + leaf.size, shift, s1 + d.sum(), s2 + np.square(d).sum(),
                             tuple(leaf.shape[2:]))
        out = []
        for name, (n, shift, s1, s2, shape) in acc.items():
            m = s1 / n
            out.append((name, shape, shift + m, float(np.sqrt(max(s2 / n - m**2, 0.0)))))
        return out

    def __repr__(self) -> str:
        text = text_block("Run", self._headline())
        if self.chains > 1:
            text += "\n" + text_columns(*self._chain_rows(), what="chains")
        return text

    def _repr_html_(self) -> str:
        """The headline, a per-chain table and a per-variable table, each at most
        ``MAX_ROWS`` rows (a thousand-spin Ising run shows ten and says how many more)."""
        parts = [html_table("energymc Run", self._headline()),
                 html_columns("per chain", *self._chain_rows(), max_rows=MAX_ROWS,
                              what="chains"),
                 html_columns("draws (all chains)", *self._variable_rows(), max_rows=MAX_ROWS,
                              what="variables")]
        return "<div>" + "".join(parts) + "</div>"
