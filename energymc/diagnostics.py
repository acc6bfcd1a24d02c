"""Convergence and mixing through ArviZ: the one module that imports arviz.

ArviZ 0.23 (``InferenceData``) is what is tested; its calls are kept here so
that support for ArviZ 1.x (xarray ``DataTree``) touches this file only.

Thresholds used by :func:`diagnose` (the defaults of :class:`Thresholds`):
rank-normalised split R-hat <= 1.01; bulk and tail ESS >= 100 per chain; no
divergent transitions; E-BFMI >= 0.3 (HMC/NUTS only); mean acceptance >= 0.05.
"""

from __future__ import annotations

import dataclasses
import html
from typing import Any

import numpy as np

__all__ = ["Diagnosis", "Thresholds", "diagnose", "logz_to_arviz", "plot_rank", "plot_trace",
           "summary", "to_arviz"]


def _az():
    import warnings

    with warnings.catch_warnings():
        # ArviZ 0.23 announces its 1.x refactor on import; not actionable here.
        warnings.simplefilter("ignore", FutureWarning)
        import arviz

    return arviz


def _posterior_dict(run) -> dict[str, np.ndarray]:
    draws = run.draws
    if isinstance(draws, dict):
        return {str(k): np.asarray(v) for k, v in draws.items()}
    leaves, _ = _flatten_with_names(draws)
    return leaves


def _flatten_with_names(tree) -> tuple[dict[str, np.ndarray], Any]:
    import jax

    paths = jax.tree_util.tree_flatten_with_path(tree)[0]
    if len(paths) == 1 and not paths[0][0]:
        return {"x": np.asarray(paths[0][1])}, None
    out = {}
    for path, leaf in paths:
        name = "_".join(str(getattr(p, "key", getattr(p, "idx", getattr(p, "name", p))))
                        for p in path)
        out[name or "x"] = np.asarray(leaf)
    return out, None


def to_arviz(run):
    """``arviz.InferenceData`` with ``posterior``, ``sample_stats`` and attributes.

    ``sample_stats.lp`` is the log-density ``-E`` (ArviZ's convention);
    ``attrs`` carry the method, seed, target name and energymc version.
    """
    from energymc import __version__

    az = _az()
    stats = {k: np.asarray(v) for k, v in run.stats.items()}
    attrs = {"method": run.method, "seed": str(run.seed), "target": str(run.target.name),
             "energymc_version": __version__, "num_warmup": int(run.warmup_steps),
             "thin": int(run.thin), "inference_library": "energymc"}
    for k, v in run.options.items():
        if isinstance(v, (bool, int, float, str)):
            attrs[f"option_{k}"] = str(v)
    return az.from_dict(posterior=_posterior_dict(run), sample_stats=stats, attrs=attrs)


def _as_idata(obj):
    az = _az()
    if isinstance(obj, az.InferenceData):
        return obj
    if hasattr(obj, "to_arviz"):
        return obj.to_arviz()
    raise TypeError(f"expected an energymc Run or an arviz.InferenceData; got {type(obj).__name__}")


def summary(obj, **kwargs):
    """``arviz.summary`` (mean, sd, HDI, MCSE, ESS, R-hat) of a Run or InferenceData."""
    return _az().summary(_as_idata(obj), **kwargs)


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Limits :func:`diagnose` checks against (documented defaults)."""

    max_rhat: float = 1.01
    min_ess_per_chain: float = 100.0
    max_divergences: int = 0
    min_bfmi: float = 0.3
    min_acceptance: float = 0.05


@dataclasses.dataclass
class Diagnosis:
    """The verdict of :func:`diagnose`.

    Attributes
    ----------
    ok
        True when no problem was found.
    problems
        Plain-language sentences, each ending with a concrete fix.
    table
        Per-variable ``pandas.DataFrame``: mean, sd, mcse_mean, ess_bulk,
        ess_tail, r_hat.
    numbers
        Headline figures: worst R-hat, smallest ESS, divergences, E-BFMI per
        chain, mean acceptance.
    """

    ok: bool
    problems: list[str]
    table: Any
    numbers: dict

    def __bool__(self) -> bool:
        return self.ok

    def _lines(self) -> list[str]:
        n = self.numbers
        head = [f"max R-hat {n['max_rhat']:.3f}, min bulk ESS {n['min_ess_bulk']:.0f}, "
                f"min tail ESS {n['min_ess_tail']:.0f}, divergences {n['divergences']}"]
        if n.get("bfmi") is not None:
            head.append("E-BFMI per chain: " + ", ".join(f"{b:.2f}" for b in n["bfmi"]))
        if n.get("acceptance") is not None:
            head.append(f"mean acceptance {n['acceptance']:.3f}")
        verdict = ["OK: no problems found."] if self.ok else [f"- {p}" for p in self.problems]
        return head + verdict

    def __repr__(self) -> str:
        title = "Diagnosis: OK" if self.ok else f"Diagnosis: {len(self.problems)} problem(s)"
        return "\n".join([title, *("  " + line for line in self._lines())])

    def _repr_html_(self) -> str:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in self._lines())
        table = self.table.to_html() if hasattr(self.table, "to_html") else ""
        return f"<b>{'OK' if self.ok else 'Problems found'}</b><ul>{items}</ul>{table}"


def diagnose(obj, thresholds: Thresholds | None = None, max_rows: int | None = None) -> Diagnosis:
    """Judge whether chains can be trusted.

    Parameters
    ----------
    obj
        An energymc ``Run`` or an ``arviz.InferenceData``.
    thresholds
        Limits to check against; defaults in :class:`Thresholds`.
    max_rows
        Keep only this many rows of the table (worst R-hat first).

    Returns
    -------
    Diagnosis
        ``.ok``, ``.problems`` (sentences with a fix) and ``.table``.
    """
    az = _az()
    th = thresholds or Thresholds()
    idata = _as_idata(obj)
    post = idata.posterior
    n_chains = int(post.sizes["chain"])
    n_draws = int(post.sizes["draw"])
    table = az.summary(idata, kind="all", stat_focus="mean", round_to="none")
    table = table.sort_values("r_hat", ascending=False)
    if max_rows is not None:
        table = table.head(max_rows)
    rhat = float(np.nanmax(table["r_hat"].to_numpy())) if n_chains > 1 else float("nan")
    ess_bulk = float(np.nanmin(table["ess_bulk"].to_numpy()))
    ess_tail = float(np.nanmin(table["ess_tail"].to_numpy()))
    stats = idata.sample_stats if "sample_stats" in idata.groups() else None
    divergences = int(stats["diverging"].sum()) if stats is not None and "diverging" in stats else 0
    acceptance = (float(stats["acceptance_rate"].mean())
                  if stats is not None and "acceptance_rate" in stats else None)
    bfmi = None
    if stats is not None and "energy" in stats and idata.attrs.get("method") in ("nuts", "hmc"):
        bfmi = [float(b) for b in np.atleast_1d(az.bfmi(idata))]

    problems: list[str] = []
    min_ess = th.min_ess_per_chain * n_chains
    if n_chains < 2:
        problems.append("Only one chain: R-hat cannot detect chains that disagree. "
                        "Run at least 4 chains (chains=4).")
    elif not np.isfinite(rhat) or rhat > th.max_rhat:
        worst = table.index[0]
        problems.append(f"R-hat is {rhat:.3f} for {worst} (limit {th.max_rhat}): the chains "
                        "disagree, so they have not converged or a mode is missed. Run longer "
                        "warmup and more draws, or try method='pt' for multimodal targets.")
    if ess_bulk < min_ess or ess_tail < min_ess:
        problems.append(f"Effective sample size is low (bulk {ess_bulk:.0f}, tail {ess_tail:.0f}; "
                        f"want {min_ess:.0f} = {th.min_ess_per_chain:.0f} per chain over "
                        f"{n_draws} draws): estimates of means and quantiles are noisy. Draw more "
                        "(draws=...), or use a better-mixing method (nuts, dense_mass=True).")
    if divergences > th.max_divergences:
        problems.append(f"{divergences} divergent transitions: the sampler met curvature its step "
                        "size cannot resolve, so draws may be biased. Raise target_accept "
                        "(e.g. 0.95) or reparametrise the energy (e.g. non-centred funnels).")
    if bfmi is not None and min(bfmi) < th.min_bfmi:
        problems.append(f"E-BFMI is {min(bfmi):.2f} (limit {th.min_bfmi}): momentum resampling "
                        "explores the energy poorly, typical of heavy tails or funnels. "
                        "Reparametrise, or use dense_mass=True.")
    if (stats is not None and "round_trips" in stats and idata.attrs.get("method") == "pt"
            and int(stats["round_trips"].sum()) == 0):
        problems.append("No replica travelled from the hottest rung to beta = 1 while "
                        "sampling (0 round trips): draws at beta = 1 never receive states "
                        "from the hot end, so modes found only there are missed. Use more "
                        "replicas (replicas=...), a smaller beta_min, or more draws.")
    if acceptance is not None and acceptance < th.min_acceptance:
        problems.append(f"Mean acceptance is {acceptance:.3f}: the chains barely move. Check the "
                        "energy for NaN/inf regions, give a longer warmup, or a smaller step_size.")
    numbers = {"max_rhat": rhat, "min_ess_bulk": ess_bulk, "min_ess_tail": ess_tail,
               "divergences": divergences, "bfmi": bfmi, "acceptance": acceptance,
               "chains": n_chains, "draws": n_draws,
               "round_trips": (int(stats["round_trips"].sum())
                               if stats is not None and "round_trips" in stats else None)}
    return Diagnosis(ok=not problems, problems=problems, table=table, numbers=numbers)


def plot_trace(obj, var_names=None, **kwargs):
    """``arviz.plot_trace`` of a Run or InferenceData; returns the axes."""
    return _az().plot_trace(_as_idata(obj), var_names=var_names, **kwargs)


def plot_rank(obj, var_names=None, **kwargs):
    """``arviz.plot_rank`` of a Run or InferenceData; returns the axes."""
    return _az().plot_rank(_as_idata(obj), var_names=var_names, **kwargs)


def logz_to_arviz(est):
    """``arviz.InferenceData`` for a :class:`energymc.LogZ`.

    ``posterior``: the final particles as one chain (``draw`` = particle);
    ``sample_stats.weight``: their normalised importance weights;
    ``constant_data``: the stage record on a ``stage`` dimension (``beta``,
    ``ess``, ``acceptance``, ...); ``attrs``: ``log_z``, ``stderr``, ``ess``,
    the method, bounds and reliability, so the estimate travels with the draws.
    """
    from energymc import __version__

    az = _az()
    posterior = sample_stats = None
    if est.particles is not None:
        leaves, _ = _flatten_with_names(est.draws)
        posterior = {k: np.asarray(v)[None] for k, v in leaves.items()}
        w = np.asarray(est.weights, dtype=float)
        with np.errstate(divide="ignore"):
            sample_stats = {"weight": w[None], "log_weight": np.log(w)[None]}
    stages = {k: np.asarray(v) for k, v in est.stages.items()}
    attrs = {"method": est.method, "log_z": est.log_z, "stderr": est.stderr, "ess": est.ess,
             "reliable": int(est.reliable), "problems": " | ".join(est.problems),
             "target": str(getattr(est.target, "name", "")),
             "energymc_version": __version__, "inference_library": "energymc"}
    if est.lower is not None:
        attrs["log_z_lower"], attrs["log_z_upper"] = est.lower, est.upper
    if est.replicates is not None:
        attrs["log_z_replicates"] = np.asarray(est.replicates).tolist()
    return az.from_dict(posterior=posterior, sample_stats=sample_stats,
                        constant_data=stages, dims={k: ["stage"] for k in stages}, attrs=attrs)
