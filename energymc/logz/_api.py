"""`log_partition`: one call from an :class:`energymc.Energy` to a :class:`LogZ`."""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import jax
import numpy as np
from jax.scipy.special import logsumexp

from energymc.energy import Energy
from energymc.errors import EnergyError, EnergymcWarning, OptionError
from energymc.logz._path import AnnealingPath, check_path
from energymc.logz._reference import fit_gaussian, make_reference
from energymc.logz._result import LogZ

__all__ = ["log_partition", "METHODS"]

# Options every method takes: how the reference q0 is built.
_BASE_DEFAULTS = {"scale": 1.0, "probs": None, "pilot_draws": 500}


_SPEC = {  # name -> (module, defaults, validate, run, supports)
    "ais": ("_ais", "AIS_DEFAULTS", "validate_ais", "run_ais", ("real", "binary", "spin")),
    "bdmc": ("_ais", "BDMC_DEFAULTS", "validate_bdmc", "run_bdmc", ("real", "binary", "spin")),
    "smc": ("_smc", "SMC_DEFAULTS", "validate_smc", "run_smc", ("real",)),
    "nested": ("_nested", "NESTED_DEFAULTS", "validate_nested", "run_nested", ("real",)),
    "pt": ("_tempering", "PT_LOGZ_DEFAULTS", "validate_pt_logz", "run_pt_logz",
           ("real", "binary", "spin")),
}


def _method(name):
    """The method's defaults, validator and runner (imported on first use: the
    BlackJAX SMC and nested-sampling modules are only loaded when asked for)."""
    import importlib

    mod_name, defaults, validate, run, supports = _SPEC[name]
    mod = importlib.import_module(f"energymc.logz.{mod_name}")
    return getattr(mod, defaults), getattr(mod, validate), getattr(mod, run), supports


METHODS = ("ais", "smc", "bdmc", "nested", "pt")


# Pilot NUTS chains. Many short chains rather than a few long ones: chains
# that all start in one mode of a multimodal target fit a base that misses
# the others. With 4 chains that happened in 15% of seeds on the benchmark's
# 0.3/0.7 mixture (0.7^4 + 0.3^4 = 25%); with 16 it is 0.3%.
_PILOT_CHAINS = 16


def _pilot(target, draws, seed):
    from energymc.sampling import sample

    chains = _PILOT_CHAINS
    run = sample(target, method="nuts", chains=chains, draws=max(draws // chains, 10),
                 warmup=max(draws // chains, 100), seed=seed, progress=False)
    ref = fit_gaussian(run.flat_draws)
    # Warmup steps are not in run.num_grad_evals; count them as sampling steps.
    _PILOT_COST[id(ref)] = run.num_grad_evals * (1 + run.warmup_steps / run.num_draws)
    return ref


# Gradient evaluations spent by pilot runs, keyed by the reference they made.
_PILOT_COST: dict[int, float] = {}


def log_partition(target: Energy, method: str = "ais", base: Any = None, seed: Any = 0,
                  replicates: int = 1, **options) -> LogZ:
    """Estimate ``log Z = log ∫ exp(-E(x)) dx`` with an error bar.

    Every method anneals along the geometric path
    ``q0(x)^(1 - beta) exp(-beta E(x))`` from a normalised reference ``q0``
    (``base=``) at ``beta = 0`` to the target at ``beta = 1``.

    Parameters
    ----------
    target
        An :class:`energymc.Energy` (``support`` ``"real"``, ``"binary"`` or
        ``"spin"``; discrete supports work with ``ais``, ``bdmc`` and ``pt``).
    method
        ``"ais"`` (annealed importance sampling, default), ``"smc"``
        (BlackJAX adaptive tempered SMC), ``"bdmc"`` (forward and reverse AIS:
        lower and upper bounds), ``"nested"`` (BlackJAX nested slice
        sampling), ``"pt"`` (parallel tempering, stepping-stone estimate).
    base
        The reference ``q0``: ``None`` (a Gaussian ``N(init, scale^2 I)`` for
        real targets, uniform for discrete), ``"gaussian"``, ``"pilot"`` (a
        Gaussian fitted to a short NUTS run), ``"uniform"``, ``"bernoulli"``
        (with ``probs=``), or a NumPyro distribution with draws ``(dim,)``.
    seed
        An int or a ``jax.random.key``; same seed, same estimate.
    replicates
        Independent runs; ``log_z`` is then the log of their mean ``Z``,
        ``stderr`` comes from their spread, and ``replicates``/``spread`` are
        reported.
    **options
        Method options (an unknown one raises an error listing the valid
        ones). Common: ``scale`` (sd of the default Gaussian), ``probs``,
        ``pilot_draws``. AIS/BDMC: ``particles`` (256), ``schedule``
        (``"adaptive"``, ``"linear"``, ``"geometric"``, ``"sigmoidal"`` or an
        array of betas), ``num_temps`` (100, fixed schedules), ``cess``
        (0.995, adaptive), ``kernel`` (``"mala"``; any Metropolis-adjusted
        energymc kernel, ``"gibbs"`` for discrete targets),
        ``kernel_options``, ``mcmc_steps`` (2 per stage), ``step_size``,
        ``target_accept``, ``adapt_mass``, ``min_ess``, ``max_stages``.
        BDMC adds ``samples`` (exact target draws; otherwise a long
        ``sample_method`` run, only approximately exact). SMC: ``particles``,
        ``target_ess``, ``kernel``, ``mcmc_steps``, ``waste_free``,
        ``min_families`` (flag below this many effective surviving lineages),
        ``min_lineage_ratio`` (flag when ``eve_ess * stages / particles``,
        about 1-2 when the moves mix, falls below it; 0.2),
        ``schedule`` (``"adaptive"``, ``"pilot"``: betas fixed by an
        independent adaptive run, twice the cost; or betas from 0 to 1 such
        as a previous run's ``est.info["schedule"]``). Nested:
        ``live_points``, ``num_inner_steps``, ``tol``. PT: ``replicas``,
        ``draws``, ``warmup``, ``kernel``.

    Returns
    -------
    LogZ
        ``log_z``, ``stderr`` (nats), ``ess``, ``stages``, ``particles``,
        ``weights``, ``lower``/``upper`` (bdmc), ``reliable``/``problems``,
        ``to_arviz()``, ``plot()``.

    Warns
    -----
    EnergymcWarning
        When a diagnostic says the estimate should not be trusted (e.g. the
        final weight ESS is too small); the result still comes back with
        ``reliable = False``.

    Examples
    --------
    >>> import jax.numpy as jnp, energymc as emc
    >>> target = emc.Energy(lambda x: 0.5 * jnp.sum(x**2), init=jnp.zeros(3))
    >>> est = emc.log_partition(target, method="ais", seed=0)   # doctest: +SKIP
    >>> est.log_z   # ≈ 1.5 * log(2 pi) = 2.757                   # doctest: +SKIP
    """
    from energymc.sampling import as_key

    if not isinstance(target, Energy):
        if callable(target):
            raise EnergyError("log_partition() needs an emc.Energy, not a bare function: wrap "
                              "it as emc.Energy(fn, init=x0) so energymc knows the shape of x.")
        raise EnergyError(f"log_partition() needs an emc.Energy; got {type(target).__name__}.")
    if not isinstance(method, str) or method not in _SPEC:
        raise OptionError(f"unknown log_partition method {method!r}; valid methods are "
                          f"{', '.join(METHODS)}.")
    defaults, validate, run, supports = _method(method)
    if target.support not in supports:
        valid = [m for m in METHODS if target.support in _SPEC[m][4]]
        raise OptionError(f"method={method!r} needs a real target; for support="
                          f"{target.support!r} use one of {', '.join(valid)}.")
    valid_opts = {**_BASE_DEFAULTS, **defaults}
    unknown = sorted(set(options) - set(valid_opts))
    if unknown:
        raise OptionError(f"log_partition(method={method!r}) got unknown option(s) {unknown}; "
                          f"valid options are: {', '.join(sorted(valid_opts))}.")
    if isinstance(replicates, bool) or not isinstance(replicates, (int, np.integer)) \
            or replicates < 1:
        raise OptionError(f"replicates= must be an integer >= 1; got {replicates!r}.")
    key = as_key(seed)
    opts = {**valid_opts, **options}
    pilot_draws = opts.pop("pilot_draws")
    if isinstance(base, AnnealingPath):
        check_path(base, target, method, options)
        opts.pop("scale"), opts.pop("probs")
        ref = base
    else:
        ref = _reference(target, base, opts, pilot_draws, key)
    o = validate(target, opts)

    t0 = time.perf_counter()
    results = [run(target, ref, jax.random.fold_in(key, r), o) for r in range(int(replicates))]
    total = time.perf_counter() - t0
    est = _combine(method, target, results, o, total)
    est.info["base"] = repr(ref)
    est.info["reference"] = ref
    pilot = _PILOT_COST.pop(id(ref), 0.0)
    if pilot:
        est.info["pilot_grad_evals"] = int(pilot)
        est.num_grad_evals += int(pilot)
    if est.problems:
        warnings.warn(f"log_partition(method={method!r}): " + " ".join(est.problems),
                      EnergymcWarning, stacklevel=2)
    return est


def _reference(target, base, opts, pilot_draws, key):
    """The reference q0 from ``base=`` (pops the base options out of ``opts``)."""
    return make_reference(
        target, base, scale=opts.pop("scale"), probs=opts.pop("probs"),
        pilot_fn=lambda: _pilot(target, pilot_draws, int(jax.random.randint(
            jax.random.fold_in(key, 10**6), (), 0, 2**31 - 1))))


def _combine(method, target, results, o, total) -> LogZ:
    first = results[0]
    R = len(results)
    problems = []
    for r, res in enumerate(results):
        for p in res["problems"]:
            problems.append(p if R == 1 else f"replicate {r}: {p}")
    info = dict(first["info"])
    lower = first.get("lower")
    upper = first.get("upper")
    if R == 1:
        log_z, stderr = first["log_z"], first["stderr"]
        particles, weights, ess, reps = first["particles"], first["weights"], first["ess"], None
    else:
        reps = np.array([res["log_z"] for res in results])
        log_z = float(logsumexp(reps) - math.log(R))
        # The replicates are independent, so their spread measures the error of
        # any one; the mean of R of them has 1/sqrt(R) of it.
        stderr = float(np.std(reps, ddof=1) / math.sqrt(R))
        if lower is not None:
            lows = np.array([res["lower"] for res in results])
            ups = np.array([res["upper"] for res in results])
            # Still bounds: log of a mean of unbiased Z (resp. 1/Z) estimates.
            lower = float(logsumexp(lows) - math.log(R))
            upper = float(-(logsumexp(-ups) - math.log(R)))
            log_z = 0.5 * (lower + upper)
            stderr = max(0.5 * (upper - lower), stderr)
        if all(res["particles"] is not None for res in results):
            particles = np.concatenate([res["particles"] for res in results])
            # Pool weighted particles: weight W_ri * Z_r / sum_r Z_r.
            scale = np.exp(reps - logsumexp(reps))
            weights = np.concatenate(
                [res["weights"] * s for res, s in zip(results, scale, strict=True)])
            weights = weights / weights.sum()
            ess = float(1.0 / np.sum(weights**2))
        else:
            particles, weights, ess = None, None, float(sum(res["ess"] for res in results))
        info["replicate_stderr"] = [res["stderr"] for res in results]
    n = o.get("particles", o.get("live_points", o.get("draws", 0) * o.get("chains", 1)))
    return LogZ(method=method, target=target, log_z=log_z, stderr=stderr, ess=ess,
                num_particles=int(n or 0), stages=first["stages"], particles=particles,
                weights=weights, lower=lower, upper=upper, replicates=reps,
                problems=problems,
                num_grad_evals=int(sum(res["grad_evals"] for res in results)),
                timing={"total_s": total}, info=info)
