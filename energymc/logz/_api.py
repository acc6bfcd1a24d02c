"""`log_partition`: one call from an :class:`energymc.Energy` to a :class:`LogZ`."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import time
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from energymc import _sharding
from energymc._threefry import unrolled_threefry
from energymc._util import check_bool, kish_ess, logsumexp_compiled
from energymc.energy import Energy
from energymc.errors import EnergyError, EnergymcWarning, OptionError
from energymc.logz import _method
from energymc.logz._bounds import bdmc_bounds, bracket_stderr
from energymc.logz._checkpoint import LogZCheckpoint, fingerprint
from energymc.logz._checks import UNVERIFIED_DEPTH, lower_than_unbiased, replicate_check
from energymc.logz._method import BaseOptions, Context, Estimate, LogZMethod
from energymc.logz._outskirts import bound_by_bdmc, needs_bound
from energymc.logz._path import AnnealingPath, check_path
from energymc.logz._reference import (GaussianReference, MixtureReference, Reference, draw,
                                      fit_gaussian, make_reference, student_df)
from energymc.logz._result import LogZ
from energymc.logz._tails import run_tail_check

__all__ = ["log_partition", "METHODS"]

# The methods in the order error messages list them; each is an object in
# the registry of energymc.logz._method.
METHODS = ("ais", "smc", "bdmc", "nested", "pt")

# Methods whose base=None on a real target is "auto" (the mode fit where it
# matches, else the default Gaussian), as measured on the zoo's TUNING half
# (benchmarks/RESULTS.md, "`base='modes'` on the TUNING half"): AIS and SMC,
# and BDMC since its fitted base dropped the defensive component (it had been
# precise on gaussian100 but took 54-75 s per run with it; RESULTS, "BDMC from
# the fitted base"). Nested sampling and PT too (RESULTS, "Nested sampling and PT
# from the fitted base"): on TUNING's dense Gaussians nested went 0.10 -> 0.02 nats
# at 10-d and PT 1.7-2.1 -> 0.006-0.028 at 100-d; elsewhere their runs are the
# Gaussian's bit for bit, or the tail check's Student-t rerun (student50: nested
# 0.20-0.32 -> 0.02-0.05). The PT fallback of AIS/SMC keeps PT's Gaussian
# (_fallback passes base=None to _reference, which is not "auto"): it runs where
# the first run missed modes, which a single-mode fit would miss too. Where a
# one-mode fit's BDMC, nested or PT run is flagged low by the mode check, the
# call runs again from the default Gaussian (_widen; RESULTS, "A one-mode fit
# that missed modes": TUNING's mixtures, 18 of 18 such runs, 0.36-0.70 ->
# 0.02-0.40 nats).
AUTO_BASE_METHODS = ("ais", "smc", "bdmc", "nested", "pt")

# Methods whose flagged run falls back to PT: BDMC keeps its own run, whose
# bracket says what is known (a PT estimate has no bounds).
FALLBACK_METHODS = ("ais", "smc")

# The fallback triggers (fallback_trigger) each method follows. PT follows only
# the funnel's: on TUNING funnel20 its runs read 0.17-0.44 nats low (median
# 0.33), every one unverified, where nested sampling's median error was 0.10-0.18
# (benchmarks/RESULTS.md, "Funnels fall back to nested sampling").
FALLBACK_TRIGGERS = {"ais": ("modes", "flagged", "unverified"),
                     "smc": ("modes", "flagged", "unverified"), "pt": ("unverified",)}

# Pilot NUTS chains. Many short chains rather than a few long ones: chains
# that all start in one mode of a multimodal target fit a base that misses
# the others. With 4 chains that happened in 15% of seeds on the benchmark's
# 0.3/0.7 mixture (0.7^4 + 0.3^4 = 25%); with 16 it is 0.3%.
_PILOT_CHAINS = 16


def _pilot(target, draws, seed) -> tuple[Reference, float]:
    """A Gaussian fitted to a short NUTS run, and the gradient evaluations it cost."""
    from energymc.sampling import sample

    chains = _PILOT_CHAINS
    run = sample(target, method="nuts", chains=chains, draws=max(draws // chains, 10),
                 warmup=max(draws // chains, 100), seed=seed, progress=False)
    ref = fit_gaussian(run.flat_draws)
    # Warmup steps are not in run.num_grad_evals; count them as sampling steps.
    return ref, run.num_grad_evals * (1 + run.warmup_steps / run.num_draws)


def log_partition(target: Energy, method: str = "ais", base: Any = None, seed: Any = 0,
                  replicates: int | None = None, checks: bool = True, budget: Any = None,
                  progress: Any = None, devices: Any = None, checkpoint: Any = None,
                  **options) -> LogZ:
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
        The reference ``q0``: ``None`` (``"auto"`` on a real target, every
        method; uniform for discrete), ``"gaussian"`` (the default Gaussian
        ``N(init, scale^2 I)``, ``scale=2`` by default), ``"pilot"`` (a
        Gaussian fitted to a short NUTS run),
        ``"modes"`` (a Laplace Gaussian at each mode found by ``mode_starts``
        gradient descents, weighted by its Laplace mass, plus the default
        Gaussian with weight ``defensive``; its cost is counted in
        ``num_grad_evals``, its report is ``info["mode_fit"]``), ``"auto"``
        (that fit where it found one mode and matches the target, importance
        ESS at least half its draws; else the default Gaussian:
        ``info["mode_fit"]["used"]``; where used, every method but SMC starts from
        the fit alone, ``defensive=0``, and the mode check still starts from the
        default Gaussian; and where the tail check then reads the target
        heavier-tailed than that base, the call runs again, same method,
        options and replicates, from ``StudentT(3, loc, 0.75 sd).to_event(1)``
        with the first run's weighted particle mean ``loc`` and sd ``sd``, and
        returns that run, checked as any other: ``info["escalation"]`` holds
        the first run's ``log_z``, ``stderr``, ``problems`` and cost; see
        ``budget``, ``progress`` and ``checkpoint`` for the second run; and
        where the mode check then flags that run low, modes missed or
        under-weighted (``info["checks"]["modes"]["flag"] == "low"``), or
        another check flags a run whose mode check's Gaussians at two or
        more minima fit the target (importance ESS at least half its
        draws), an AIS or SMC call runs ``method="pt"`` with PT's default
        options from PT's default Gaussian (the Student-t base if escalated)
        and returns PT's run, checked as any other and flagged where it lies
        3 combined stderrs below the first run's or the mode check's estimate:
        ``info["fallback"]`` holds the first run; an explicit base or
        ``checks=False`` opts out; saved in the checkpoint's ``fallback_pt``;
        a BDMC, nested or PT call whose run from the one-mode fit the mode
        check flags low runs again, same method, options and replicates,
        from the default Gaussian instead, ``info["widened"]`` holding the
        first run, saved in the checkpoint's ``widened``),
        ``"uniform"``, ``"bernoulli"`` (with ``probs=``), or a NumPyro
        distribution with draws ``(dim,)``.
    seed
        An int or a ``jax.random.key``; same seed, same estimate.
    replicates
        Independent runs (default: 4 for ``ais``, ``smc`` and ``bdmc``, 1 for the
        others and along a model's own ``AnnealingPath``); ``log_z`` is then
        the log of their mean ``Z``, ``stderr`` the larger of their spread
        and their own stderrs over ``sqrt(R)``,
        and a spread larger than the runs' own stderrs allow is flagged
        (``replicates``/``spread`` are reported). Left ``None`` (and without
        ``budget``), ``ais`` and ``smc`` run more replicates, one at a time,
        while the pooled ``stderr`` is above 0.05 nats, up to 16 (not along
        an ``AnnealingPath``); ``info["precision"]`` reports the count, the
        cap and whether 0.05 was reached. Their replicates estimate ``Z``
        without bias, so more of them shrink the error; BDMC's bracket, PT's
        and nested sampling's biases would not shrink, only their error bars
        (their PT fallback, below, follows the stderr too, up to 4 runs: it
        is checked against two unbiased estimates). An integer runs exactly
        that many.
    budget
        Buy precision without touching the method's knobs: independent
        replicates (each with the method's default settings) are run until
        the budget is spent, at least 2 of them, and pooled as for
        ``replicates=``. A number is wall-clock seconds for the runs
        (compilation included; the count of replicates then depends on the
        machine, so the estimate is not reproducible); ``{"grad_evals": N}``
        counts gradient evaluations instead (reproducible). The error shrinks
        like ``1/sqrt(replicates)``; it does not remove a bias every run
        shares. Not together with ``replicates=``. Where ``base="auto"``
        runs again from a Student-t base, the second run gets what the first
        left of the budget (and at least 2 replicates).
    progress
        A bar (``tqdm.auto``). AIS, BDMC and SMC move it stage by stage from
        inside each compiled run (about a hundred updates per run at most),
        showing the replicate, the stage and the inverse temperature
        ``beta``: a fixed schedule counts stages; an adaptive one, whose
        number of stages is unknown until it ends, counts percent of the way
        from ``beta = 0`` to 1 (BDMC: forward run, then reverse run). Other
        methods move it once per replicate; the mode check is one more step.
        ``None`` (default) shows it in a terminal or notebook and not under
        ``CI``; ``True``, ``False``, or an object with
        ``start``/``update``/``close``. It never changes the estimate.
        A ``base="auto"`` call that runs again from a Student-t base shows
        that run as a second bar (a second ``start``, "Student-t base" in its
        description), each bar filled to its own total.
    devices
        Where AIS, BDMC and SMC particles and PT's chains run: ``None``
        (default) splits them over every device JAX sees, an int ``n`` over
        the first ``n``, or a list of devices. AIS/BDMC particles and PT's
        chains may be any number: they are padded to a multiple of the
        devices, and the padding enters no weight, ESS or mean. SMC's
        particles are not padded (BlackJAX resamples and weighs all of
        them): SMC uses the largest number of the devices that divides
        ``particles`` and warns when that leaves some idle. The estimate is
        the one-device estimate up to float rounding (see
        ``docs/devices.md``). Other methods run on the default device.
    checks
        Run the checks that flag a confidently wrong estimate (default
        ``True``): the replicate spread check, and for real targets a second
        estimate by importance sampling from a Gaussian mixture at the local
        minima the particles found (``info["checks"]``; see the
        partition-functions guide), and the tail check
        (``info["checks"]["tails"]``), whose advice ``base="auto"`` follows.
        ``checks=False`` runs none of them, so ``"auto"`` never escalates.
    checkpoint
        A directory (created if missing): each replicate's estimate is saved
        there as soon as it finishes, then the check's result. The same call
        in a fresh process (after a crash, even SIGKILL) reruns nothing that
        was saved and returns exactly the estimate of an uninterrupted run. An
        AIS, SMC or PT replicate cut short resumes from its last saved chunk of
        stages or rounds (saved about every 30 s); other methods run it again
        from its start. A directory holding another call (a changed energy,
        option, seed, ...) or a damaged file raises
        :class:`energymc.io.CheckpointError` naming it (see
        ``docs/long-runs.md``). ``timing["resumed_replicates"]`` and
        ``timing["resumed_stages"]`` say how many replicates and stages were
        read back. The second run of an escalated ``base="auto"`` call is
        saved in the subdirectory ``escalated`` with its own record; resumed,
        the first run is read back, its tail check (deterministic) reads
        heavy again, and the second run resumes there.
    **options
        Method options (an unknown one raises an error listing the valid
        ones). Common: ``scale`` (sd of the default Gaussian, 2), ``probs``,
        ``pilot_draws``, ``mode_starts`` (32) and ``defensive`` (the default
        Gaussian's share of a fitted base: 0.15 for ``base="modes"``; for
        ``"auto"`` 0 with AIS, 0.15 with SMC). AIS/BDMC: ``particles`` (256), ``schedule``
        (``"adaptive"``, ``"linear"``, ``"geometric"``, ``"sigmoidal"`` or an
        array of betas), ``num_temps`` (100, fixed schedules), ``cess``
        (0.995, adaptive), ``kernel`` (``"mala"``; any Metropolis-adjusted
        energymc kernel, ``"gibbs"`` for discrete targets),
        ``kernel_options``, ``mcmc_steps`` (2 per stage), ``step_size``,
        ``target_accept``, ``adapt_mass``, ``min_ess``, ``max_stages``.
        BDMC adds ``samples`` (exact target draws) and ``reverse_start``:
        without ``samples`` the reverse run starts from the forward run's
        final particles resampled by weight (``"forward"``, default: every
        mode the forward run found) or from a ``sample_method`` MCMC run
        (``"mcmc"``, with ``sample_warmup``); both only approximately exact;
        ``level`` (0.95): ``lower``/``upper`` are confidence bounds at this
        two-sided level. SMC: ``particles``,
        ``target_ess``, ``kernel``, ``mcmc_steps``, ``waste_free``,
        ``min_families`` (flag below this many effective surviving lineages),
        ``min_lineage_ratio`` (flag when ``eve_ess * stages / particles``,
        about 1-2 when the moves mix, falls below it; 0.2),
        ``schedule`` (``"adaptive"``, ``"pilot"``: betas fixed by an
        independent adaptive run, twice the cost; or betas from 0 to 1 such
        as a previous run's ``est.info["schedule"]``). Nested: ``particles``
        (the live points, 500; ``live_points`` is its deprecated name),
        ``num_inner_steps`` (slice steps per new live point; ``5 * dim``, at
        least 5), ``num_delete`` (points replaced per step; a tenth of
        ``particles``), ``tol``. PT: ``replicas``, ``draws``, ``warmup``,
        ``kernel``.

    Returns
    -------
    LogZ
        ``log_z``, ``stderr`` (nats), ``ess``, ``stages``, ``particles``,
        ``weights``, ``lower``/``upper`` (bdmc), ``reliable``/``problems``,
        ``to_arviz()``, ``plot()``; ``info["devices"]``: how many devices
        the particles or PT's chains were split over (1: the default device);
        ``info["escalation"]`` where ``base="auto"`` ran again from a
        Student-t base, ``info["fallback"]`` where it fell back to PT (see
        ``base``; ``method`` is then ``"pt"``), ``info["widened"]`` where it
        ran again from the default Gaussian; ``info["run_estimate"]`` (the
        run's own ``log_z`` and ``stderr``) where the final run was flagged
        low by the mode check and that check's importance sampling fits the
        target (ESS at least half its draws): ``log_z``/``stderr`` are then
        the check's estimate, and the record stays flagged.

    Warns
    -----
    EnergymcWarning
        When a diagnostic says the estimate should not be trusted (e.g. the
        final weight ESS is too small); the result still comes back with
        ``reliable = False``. Also when SMC's ``particles`` leave some of the
        chosen devices idle (see ``devices``).

    Examples
    --------
    >>> import jax.numpy as jnp, energymc as emc
    >>> target = emc.Energy(lambda x: 0.5 * jnp.sum(x**2), init=jnp.zeros(3))
    >>> est = emc.log_partition(target, method="ais", seed=0)   # doctest: +SKIP
    >>> est.log_z   # ≈ 1.5 * log(2 pi) = 2.757                   # doctest: +SKIP
    """
    from energymc._util import as_key
    from energymc.progress import make_meter

    m = _check_method(target, method)
    _check_options(m, options)
    checks = check_bool("checks=", checks)
    if base is None and m.name in AUTO_BASE_METHODS and target.support == "real":
        base = "auto"
    budget_s, budget_evals = _check_budget(budget, replicates)
    fixed_replicates = replicates
    replicates = _check_replicates(m, base, replicates)
    ckpt = LogZCheckpoint.coerce(checkpoint)
    key = as_key(seed)
    # On the CPU, compiled with Threefry written out (energymc._threefry): the same
    # hashes, faster kernel steps. A block in this frame, not a wrapper, so that
    # the warnings' stacklevels still name the caller.
    with unrolled_threefry():
        if isinstance(base, AnnealingPath):
            check_path(base, target, method, options)
            ctx = m.validate(options, target)
            ref, pilot_cost, mode_fit = base, 0.0, None
        else:
            # The method's options are checked before a base is fitted: a wrong
            # option must fail before the fit compiles or runs anything.
            ctx = m.validate(options, target)
            ref, pilot_cost, mode_fit = _reference(target, base, options, key, m.name)
        meter = make_meter(progress)
        # AIS/SMC particles or PT chains split over the devices (docs/devices.md); the argument
        # is checked for every method. With a meter on, the compiled runs report
        # their stages; with it off they are compiled without any callback.
        mesh = m.mesh(devices, ctx.options)
        if isinstance(ref, AnnealingPath):
            mesh = None  # a model's own path runs on the default device (docs/devices.md)
        ctx = dataclasses.replace(ctx, mesh=mesh, ticks=meter.active)
        call = _Call(m, target, method, options, ctx, fixed_replicates, replicates, budget,
                     (budget_s, budget_evals), checks, meter, devices)
        t_call = time.perf_counter()
        est = _estimate(call, ref, key, ckpt, spent=pilot_cost)
        if mode_fit is not None:
            est.info["mode_fit"] = mode_fit
            est.timing["mode_fit_s"] = mode_fit["seconds"]
            est.num_grad_evals += int(pilot_cost)
        elif pilot_cost:
            est.info["pilot_grad_evals"] = int(pilot_cost)
            est.num_grad_evals += int(pilot_cost)
        if isinstance(base, str) and base == "auto" and _tails_heavy(est):
            est = _escalate(call, est, key, ckpt, time.perf_counter() - t_call)
        if isinstance(base, str) and base == "auto" and fit_missed_modes(m, est):
            est = _widen(call, est, key, ckpt, time.perf_counter() - t_call)
        if isinstance(base, str) and base == "auto" and checks and needs_bound(est):
            est = bound_by_bdmc(call, est, est.info["reference"], key, ckpt,
                                time.perf_counter() - t_call, run_after)
        # Exclusive with the outskirts bound: that takes unflagged AIS/SMC runs only, and a
        # run the mode check flags low carries the check's problem.
        if isinstance(base, str) and base == "auto" \
                and fallback_trigger(est, target.dim) in FALLBACK_TRIGGERS.get(m.name, ()):
            est = _fallback(call, est, key, ckpt, time.perf_counter() - t_call)
        if checks and check_estimate_preferred(est):
            _report_check_estimate(est)
    if est.problems:
        warnings.warn(f"log_partition(method={method!r}): " + " ".join(est.problems),
                      EnergymcWarning, stacklevel=2)
    return est


@dataclasses.dataclass(frozen=True)
class _Call:
    """What one ``log_partition`` call fixed before any run: shared by its runs."""

    m: LogZMethod
    target: Energy
    method: str
    options: dict
    ctx: Context
    fixed_replicates: int | None  # replicates= as given (None: the method's default)
    replicates: int
    budget: Any  # budget= as given (for the checkpoint's fingerprint)
    budget_pair: tuple  # (seconds, grad_evals), one of them None
    checks: bool
    meter: Any
    devices: Any = None  # devices= as given (a fallback's method splits its own way)
    # Whether the default effort follows the stderr (None: the method's own rule).
    follows_stderr: bool | None = None


def _estimate(call: _Call, ref, key, ckpt, spent=0.0, label="") -> LogZ:
    """One estimate from ``ref``: the replicates, pooled, then the checks.

    ``ckpt`` (or ``None``) holds this run's replicates and check; ``spent``
    gradient evaluations count against a ``grad_evals`` budget; ``label``
    is added to the meter's description.
    """
    m, target, ctx, meter, checks = call.m, call.target, call.ctx, call.meter, call.checks
    saved, end = [], None
    if ckpt is not None:
        saved, end = ckpt.open(fingerprint(
            target, call.method, ref, key, call.options, replicates=call.fixed_replicates,
            budget=call.budget, checks=checks, devices=_sharding.mesh_size(ctx.mesh)))
    units = m.progress_units(ctx) if meter.active else 1
    meter.start(None if call.budget is not None
                else int(call.replicates) * units + int(bool(checks)),
                f"log Z ({call.method}{label})")
    t0 = time.perf_counter()
    more = _more(call, ref, label)
    if end is None:
        results = _replicates(m, target, ref, key, ctx, call.replicates, call.budget_pair,
                              meter, units, t0, saved, ckpt, spent=spent, more=more)
    else:
        results = saved
        meter.update(units * len(saved), {"replicates": f"{len(saved)} (checkpoint)"})
    est = _combine(m, target, results, ctx, time.perf_counter() - t0)
    if more is not None:
        se = est.stderr  # the pooled stderr the replicates were added against
        est.info["precision"] = {"target_stderr": more[0], "stderr": se,
                                 "replicates": len(results), "default": call.replicates,
                                 "cap": more[1], "reached": bool(se <= more[0])}
    if ckpt is not None:
        # Replicates read back from the directory rather than run by this call.
        est.timing["resumed_replicates"] = len(saved)
        # Stages of a replicate cut short, read back rather than run again.
        est.timing["resumed_stages"] = ckpt.resumed_stages
    check = None
    if checks:
        check = end["check"] if end is not None else \
            _mode_check(est, target, ref, jax.random.fold_in(key, 10**6 + 1))
        _record_check(est, check)
        # Cheap (a few hundred energy evaluations) and deterministic given the
        # particles, so it is run again rather than saved in a checkpoint.
        run_tail_check(est, target, ref, jax.random.fold_in(key, 10**6 + 3))
        meter.update(1, {"check": est.info["checks"]["modes"].get("status", "")[:20]})
    if est.lower is not None:
        _bdmc_upper(est, check, getattr(ctx.options, "reverse_start", "forward"))
        # BDMC's midpoint is no more certain than its bracket. Applied after the
        # checks: the mode check compares with the noise stderr, and a stderr
        # widened by the bracket hid the under-weighting that voids the upper end.
        est.stderr = max(est.stderr, est.info.get("bracket_stderr", 0.0))
    if ckpt is not None and end is None:
        ckpt.save_end(check)
    meter.close()
    est.info["base"] = repr(ref)
    est.info["reference"] = ref
    # How many devices the particles (AIS, BDMC, SMC) or chains (PT) were split over.
    est.info["devices"] = _sharding.mesh_size(ctx.mesh)
    return est


def _more(call: _Call, ref, label: str):
    """The precision target's ``more`` for :func:`_replicates`, or ``None`` where the
    user fixed the effort (``replicates=`` or ``budget=``) or a model's own path
    brings its own (one run), and for methods that do not follow the stderr (all
    but AIS and SMC: :attr:`LogZMethod.follows_stderr`; the PT fallback does,
    see :func:`_fallback`)."""
    follows = call.m.follows_stderr if call.follows_stderr is None else call.follows_stderr
    if call.fixed_replicates is not None or call.budget is not None \
            or isinstance(ref, AnnealingPath) or not follows:
        return None

    def on_more():
        # The first bar was filled to its total; the added replicates (and the
        # checks' unit) get a bar of their own, whose length is not known.
        call.meter.close()
        call.meter.start(None, f"log Z ({call.method}{label}, more replicates)")

    return PRECISION_STDERR, PRECISION_FACTOR * call.replicates, on_more


#: Degrees of freedom of the Student-t base that ``base="auto"`` moves to when
#: the tail check reads heavy: the base the check's problem names, whose fix
#: took TUNING's student50 median error from +0.053 to +0.002 (benchmarks/
#: RESULTS.md, "Tail check"). 3 has a finite variance (the kernels' initial
#: mass matrix) and tails heavy enough for any target with nu >= 3.
ESCALATION_DF = 3.0

#: The Student-t base's scale per coordinate, in units of the first run's
#: weighted particle sd. A t_3 of scale 0.58 sd has that sd; the first run
#: (from a lighter-tailed base) under-represents the tails, so its sd is
#: low, and a base narrower than the target is the failure being fixed: a
#: little wider. Chosen on TUNING's student2/student50, 20 seeds of AIS
#: (``benchmarks/escalation_probe.py``; benchmarks/RESULTS.md, "log_partition's
#: default follows its tail check"): mean z -0.91 at 0.45, -0.55 at 0.58,
#: -0.30 at 0.6, +0.75 at 0.75, +0.75 at 1 (the check's own advice; student50
#: median error +0.046, one silent miss) and every run flagged at 1.5.
ESCALATION_SCALE = 0.75

#: ``fold_in`` index of the second run's key (the first run's replicates use
#: 0..R-1, its checks 10**6..10**6 + 3).
_ESCALATION_KEY = 10**6 + 4

#: A checkpoint's subdirectory holding the second run of an escalated call.
ESCALATION_DIR = "escalated"


def _tails_heavy(est) -> bool:
    """Whether the tail check read the target heavier-tailed than the run's base."""
    return est.info.get("checks", {}).get("tails", {}).get("status") == "heavy"


def _escalate(call: _Call, first: LogZ, key, ckpt, first_s: float) -> LogZ:
    """``base="auto"``: run again from the Student-t base the tail check names.

    Same method, options and replicates, on ``fold_in(key, _ESCALATION_KEY)``;
    the base is ``StudentT(ESCALATION_DF, mean, sd).to_event(1)`` with the
    first run's weighted particle mean and sd (those the check records).
    Returns the second run's estimate, checked as any other, with
    ``info["escalation"]`` describing the first and both runs' gradient
    evaluations and time in ``num_grad_evals`` and ``timing``.
    """
    from energymc.logz._reference import student_t_reference

    tails = first.info["checks"]["tails"]
    scale = ESCALATION_SCALE * np.asarray(tails["sd"], dtype=float)
    ref = student_t_reference(tails["mean"], scale, ESCALATION_DF)
    est, second_s = _rerun(call, first, ref, jax.random.fold_in(key, _ESCALATION_KEY), ckpt,
                           first_s, ESCALATION_DIR,
                           ", Student-t base: the first run's tails read heavy")
    est.info["escalation"] = {
        "reason": "the tail check read the target's tails heavier than the base's "
                  f"(median growth exponent {tails['median_exponent']:.2f}, a Gaussian's 2)",
        "base": f"StudentT({ESCALATION_DF:g}, loc, scale).to_event(1), loc the first run's "
                f"weighted particle mean, scale {ESCALATION_SCALE:g} x their sd",
        "loc": list(tails["mean"]), "scale": [float(v) for v in scale], "df": ESCALATION_DF,
        "first": _run_record(first, first_s),
        "second_num_grad_evals": int(est.num_grad_evals - first.num_grad_evals),
        "second_s": second_s}
    est.timing["escalation_first_s"] = first_s
    return est


def _run_record(est: LogZ, seconds: float) -> dict:
    """What ``info`` keeps of a run that a rerun replaced: its estimate, problems and cost."""
    return {"method": est.method, "log_z": est.log_z, "stderr": est.stderr,
            "replicates": None if est.replicates is None
            else [float(v) for v in est.replicates],
            "problems": list(est.problems), "base": est.info.get("base"),
            "num_grad_evals": int(est.num_grad_evals), "seconds": seconds,
            "reliable": est.reliable, "precision": est.info.get("precision")}


def _first_with_mode_check(first: LogZ, seconds: float) -> dict:
    """:func:`_run_record` of a run a rerun replaced, with its mode check's numbers."""
    modes = first.info["checks"]["modes"]
    return {**_run_record(first, seconds), "mode_check": {
        k: modes.get(k) for k in ("log_z", "stderr", "ess", "draws", "modes", "unreached",
                                  "status", "flag")}}


def run_after(call: _Call, first_evals: float, ref, key, ckpt, first_s: float, subdir: str,
              label: str) -> tuple[LogZ, float]:
    """Run ``call`` from ``ref`` on ``key`` after a first run (``first_evals`` gradient
    evaluations, ``first_s`` seconds into the call): its estimate and its own seconds.

    The run gets what the first left of ``budget=`` (at least 2 replicates, as
    any budgeted run) and its checkpoint lives in ``ckpt``'s ``subdir``: its
    own directory and fingerprint, so that resuming replays the first run
    from the checkpoint, its (deterministic or saved) checks ask for this run
    again, and it resumes there. Shared by the reruns below and the outskirts
    check's BDMC bound.
    """
    budget_s, budget_evals = call.budget_pair
    if budget_s is not None:
        call = dataclasses.replace(call, budget_pair=(max(budget_s - first_s, 1e-9), None))
    sub = None
    if ckpt is not None:
        sub = LogZCheckpoint(os.path.join(ckpt.path, subdir), save_every=ckpt.save_every)
    t0 = time.perf_counter()
    est = _estimate(call, ref, key, sub, spent=first_evals if budget_evals is not None else 0.0,
                    label=label)
    return est, time.perf_counter() - t0


def _rerun(call: _Call, first: LogZ, ref, key, ckpt, first_s: float, subdir: str,
           label: str) -> tuple[LogZ, float]:
    """:func:`run_after` ``first``, as one call: the estimate, checked, and its own
    seconds; the returned record counts both runs' gradient evaluations and time
    and keeps the first run's base-fit report (``mode_fit``, ``pilot_grad_evals``,
    ``escalation``).
    """
    est, second_s = run_after(call, first.num_grad_evals, ref, key, ckpt, first_s, subdir,
                              label)
    for name in ("mode_fit", "pilot_grad_evals", "escalation"):
        if name in first.info:
            est.info[name] = first.info[name]
    for name in ("mode_fit_s", "escalation_first_s"):
        if name in first.timing:
            est.timing[name] = first.timing[name]
    est.num_grad_evals += int(first.num_grad_evals)
    # Both runs' replicates; the first run's whole time (its checks too) on its own.
    est.timing["total_s"] = est.timing["total_s"] + first.timing["total_s"]
    return est, second_s


#: ``fold_in`` index of the parallel-tempering fallback's key (after the
#: escalation's ``10**6 + 4``).
_FALLBACK_KEY = 10**6 + 5

#: ``fold_in`` index of the nested-sampling fallback's key (after the widened
#: rerun's ``10**6 + 6``).
_NESTED_FALLBACK_KEY = 10**6 + 7

#: A checkpoint's subdirectory holding the fallback's parallel-tempering run.
FALLBACK_DIR = "fallback_pt"

#: A checkpoint's subdirectory holding the fallback's nested-sampling run.
NESTED_FALLBACK_DIR = "fallback_nested"

#: The mode check's flags that send ``base="auto"`` to parallel tempering.
FALLBACK_FLAGS = ("low",)

#: The mode check's importance ESS, as a fraction of its draws, from which a
#: flagged run also falls back: Gaussians at the minima then describe the
#: target (the bar of the check's own "fits well" and of ``"auto"``'s mode
#: fit, ``_modes.AUTO_MIN_ESS``), a few modes that PT's ladder connects. On
#: TUNING the flagged runs whose check compared read 0.73-0.83 on the
#: mixtures and wells2, where PT came back closer on the whole; 0.04-0.37
#: on wells32 (PT 0.2-1.6 nats off, flagged), funnel2 and ring2 (PT no
#: better). A check that did not compare is no evidence at all: from such a
#: funnel2 run (ESS 0.006) PT came back 4 of its stderrs low, unflagged
#: (benchmarks/RESULTS.md, "The PT fallback also for flagged runs whose
#: modes fit").
FALLBACK_MIN_ESS = 0.5

#: The largest dimension at which a run the depth rule calls unverified (a
#: funnel's neck) falls back to nested sampling. Nested sampling replaces its
#: live points by slice steps along contours of the density, so it enters a
#: neck in order of density instead of annealing past it: on TUNING funnel20
#: the default AIS run read 0.39-0.70 nats low (every run unverified) and
#: nested sampling's median error was 0.18 nats in 8-17 s. Its cost grows
#: with the square of the dimension (5 slice steps per dimension for each
#: point, over more compression): student50 took 29-45 s a run, so above 50
#: dimensions the unverified record stays as it is, naming the method
#: (benchmarks/RESULTS.md, "Funnels fall back to nested sampling").
NESTED_FALLBACK_MAX_DIM = 50


def fallback_trigger(est, dim: int | None = None) -> str | None:
    """Why a ``base="auto"`` run goes on to a second method, or ``None``.

    ``"modes"`` (parallel tempering): the mode check's ``"low"`` flag (the
    importance-sampling estimate from the minima the descents found is above
    the run's beyond 3 combined stderrs: modes missed or under-weighted).
    ``"unverified"`` (nested sampling): the depth rule or the poor fit's gap
    of :func:`energymc.logz._checks.unverified_problem` (a funnel's neck,
    which the annealing's particles lag behind in every replicate alike and
    PT does not reach either), on a target of at most
    ``NESTED_FALLBACK_MAX_DIM`` dimensions (``dim``; ``None``: not capped).
    ``"flagged"`` (parallel tempering): any other problem (weight ESS, SMC
    lineages, replicate spread, the check's ``"high"`` flag) on a run whose
    mode check found at least two minima and compared with an importance ESS
    of at least ``FALLBACK_MIN_ESS`` of its draws, so that the target is a
    few modes the check found, where PT's estimate is sound. Not one mode: PT
    is for barriers between modes, and its default ladder fails in high
    dimension (held-out gaussian500 SMC: 24-26 nats low, flagged, 14 s more;
    this condition was added after that was seen and changes nothing on
    TUNING). Not a skipped check, or, for ``"flagged"``, a run the tail check
    escalated or one the outskirts check bounded (flagged only by that bound,
    whose BDMC run is that check's answer; PT was measured on neither).
    """
    modes = est.info.get("checks", {}).get("modes", {})
    if modes.get("flag") in FALLBACK_FLAGS:
        return "modes"
    from energymc.logz._checks import unverified_problem

    if modes and unverified_problem(modes, est.log_z):
        return "unverified" if dim is None or dim <= NESTED_FALLBACK_MAX_DIM else None
    if (est.problems and "escalation" not in est.info and modes.get("status") == "compared"
            and modes.get("modes", 0) >= 2
            and "upper" not in est.info["checks"].get("outskirts", {})
            and modes.get("ess", 0.0) >= FALLBACK_MIN_ESS * modes.get("draws", math.inf)):
        return "flagged"
    return None


def check_estimate_preferred(est) -> bool:
    """Whether the record reports the mode check's estimate instead of the run's.

    Where the mode check flags the (final) run low -- its importance-sampling
    estimate from Gaussians at the local minima the descents found lies above
    the run's beyond 3 combined stderrs: modes missed or under-weighted -- and
    that importance sampling fits the target (ESS at least
    ``FALLBACK_MIN_ESS`` of its draws, the bar of the PT fallback), the check's
    estimate is the better one: on the zoo's unequal mixtures the flagged runs
    were 0.2-0.5 nats low while the check's estimate was within 0.02
    (benchmarks/RESULTS.md, "The mode check's estimate where it flags a run
    low"). The record stays flagged.
    """
    modes = est.info.get("checks", {}).get("modes", {})
    return (modes.get("flag") == "low" and modes.get("status") == "compared"
            and modes.get("ess", 0.0) >= FALLBACK_MIN_ESS * modes.get("draws", math.inf)
            and math.isfinite(modes.get("log_z", math.nan))
            and math.isfinite(modes.get("stderr", math.nan)))


def _report_check_estimate(est) -> None:
    """Put the mode check's estimate in ``log_z``/``stderr``; the run's goes to
    ``info["run_estimate"]``, and a problem says which is which."""
    modes = est.info["checks"]["modes"]
    run = {"log_z": est.log_z, "stderr": est.stderr}
    est.info["run_estimate"] = run
    est.log_z, est.stderr = float(modes["log_z"]), float(modes["stderr"])
    est.problems.append(
        f"log_z and stderr are the mode check's importance-sampling estimate "
        f"({est.log_z:.3f} ± {est.stderr:.3f}, importance ESS {modes['ess']:.0f} of its "
        f"{modes['draws']} draws, from Gaussians at {modes.get('modes')} local minima), not "
        f"the {est.method} run's ({run['log_z']:.3f} ± {run['stderr']:.3f}, in "
        f"info['run_estimate']), which lost mass at those minima. Nothing checked the "
        f"check in turn: a mode that no descent found is missed by both, so log Z may be "
        f"higher still. For a verified estimate run method='pt' with more replicas=, or "
        f"give base= a distribution that covers every mode.")


def _fallback(call: _Call, first: LogZ, key, ckpt, first_s: float) -> LogZ:
    """``base="auto"``: a second method where :func:`fallback_trigger` names a reason.

    For ``"modes"`` and ``"flagged"``, parallel tempering with its default
    options, its default replicates (more while the stderr is above
    ``PRECISION_STDERR``, up to ``PRECISION_FACTOR``, where the first call
    left the replicates to the default), on ``fold_in(key, _FALLBACK_KEY)``,
    from PT's default Gaussian. For ``"unverified"``, nested sampling with
    its default options and its single run, on ``fold_in(key,
    _NESTED_FALLBACK_KEY)``, from the base its own call would use
    (``base="auto"``: the mode fit where it matches one mode, else the
    default Gaussian). ``scale=`` is passed on (it sets the base); where the
    tail check escalated the first run, the second starts from that run's
    Student-t base. The second estimate is returned, checked as any other,
    with ``info["fallback"]`` describing the first run. The two runs also
    check each other: the first run's ``Z`` and (where it compared) the mode
    check's are unbiased estimates, so each of their logs rarely reads high;
    a second estimate more than 3 combined stderrs below either is flagged
    (it lost mass that they found).
    """
    trigger = fallback_trigger(first, call.target.dim)
    name = "nested" if trigger == "unverified" else "pt"
    second = _method.get(name)
    options = {k: v for k, v in call.options.items() if k == "scale"}
    ctx = second.validate(options, call.target)
    ctx = dataclasses.replace(ctx, mesh=second.mesh(call.devices, ctx.options),
                              ticks=call.meter.active)
    # PT's default effort follows the stderr here (where the first call's did):
    # its estimate is compared below with two unbiased ones, so a narrower
    # error bar exposes a bias rather than hiding it (benchmarks/RESULTS.md,
    # "The default effort follows the stderr"). Nested sampling keeps its one
    # run: on a funnel its stderr is 0.12-0.16, and four runs would cost 30-70 s.
    follows = call.fixed_replicates is None if name == "pt" else None
    second_call = dataclasses.replace(call, m=second, method=name, options=options, ctx=ctx,
                                      fixed_replicates=None, replicates=second.replicates,
                                      follows_stderr=follows)
    ref, fit_evals = _fallback_reference(call, first, options, key, name)
    est, second_s = _rerun(second_call, first, ref,
                           jax.random.fold_in(key, _FALLBACK_KEYS[name]), ckpt, first_s,
                           _FALLBACK_DIRS[name], _FALLBACK_LABELS[trigger])
    est.num_grad_evals += int(fit_evals)  # the second run's base fit, if any
    own = list(est.problems)
    modes = first.info["checks"]["modes"]
    # AIS's and SMC's Z is unbiased, PT's stepping stones' is not.
    references = ([(f"the first run's ({first.method})", first.log_z, first.stderr)]
                  if first.method in FALLBACK_METHODS else [])
    if modes.get("status") == "compared":
        references.append(("the mode check's", modes["log_z"], modes["stderr"]))
    disagree, problems = lower_than_unbiased(est.log_z, est.stderr, references, name)
    est.problems.extend(problems)
    if name == "nested" and not any(p.startswith("unverified") for p in est.problems):
        # Nested sampling's own check passes where its points went down the neck,
        # but they lag there too: on a 6-d funnel (examples/logz_funnel.py) such
        # unflagged fallbacks read 0.12-0.33 nats low with stderrs near 0.08.
        est.problems.append(_unverified_fallback_problem(first))
    est.info["fallback"] = {
        "reason": _fallback_reason(first, trigger), "trigger": trigger, "method": name,
        "base": repr(ref), "first": _first_with_mode_check(first, first_s),
        "disagree": disagree,
        name: {"log_z": est.log_z, "stderr": est.stderr, "problems": own,
               "num_grad_evals": int(est.num_grad_evals - first.num_grad_evals),
               "seconds": second_s}}
    est.timing["fallback_first_s"] = first_s
    return est


_FALLBACK_KEYS = {"pt": _FALLBACK_KEY, "nested": _NESTED_FALLBACK_KEY}
_FALLBACK_DIRS = {"pt": FALLBACK_DIR, "nested": NESTED_FALLBACK_DIR}
_FALLBACK_LABELS = {
    "modes": ", parallel tempering: the mode check flagged the first run",
    "flagged": ", parallel tempering: the first run was flagged",
    "unverified": ", nested sampling: the mode check could not vouch for the first run"}


def _fallback_reference(call: _Call, first: LogZ, options: dict, key,
                        name: str) -> tuple[Reference, float]:
    """The fallback's base and the gradient evaluations its fit cost.

    The escalated first run's Student-t base; else PT's default Gaussian (the
    first run missed modes, which a one-mode fit would miss too), or nested
    sampling's ``"auto"`` base: the same descents as the first run's fit
    (the same key), with nested sampling's own defensive share.
    """
    if "escalation" in first.info:
        return first.info["reference"], 0.0
    ref, evals, _ = _reference(call.target, "auto" if name == "nested" else None, options,
                               key, name)
    return ref, evals


def _unverified_fallback_problem(first: LogZ) -> str:
    """The problem a nested-sampling fallback's record keeps: nothing vouches for it."""
    return (f"unverified: log_z is nested sampling's estimate, run because the mode check "
            f"could not vouch for the {first.method} run ({first.log_z:.3f} ± "
            f"{first.stderr:.3f}, in info['fallback']['first']): part of the target is far "
            f"denser than where its particles went, as in a funnel's neck. Nested sampling "
            f"goes further down such a neck than annealing, but its slice steps lag there "
            f"too and nothing checked its estimate or its stderr (on a 6-d funnel such runs "
            f"read 0.12-0.33 nats low with stderrs near 0.08). For a verified value, "
            f"reparameterise the target so its scale no longer changes (non-centred: sample "
            f"the standardised coordinates).")


def _fallback_reason(first: LogZ, trigger: str) -> str:
    """Why the fallback ran, in one sentence for ``info["fallback"]["reason"]``."""
    modes = first.info["checks"]["modes"]
    if trigger == "modes":
        return (f"the mode check flagged the {first.method} run: its importance-sampling "
                f"estimate from {modes.get('modes')} local minima is "
                f"{modes['log_z'] - first.log_z:.2f} nats higher ({modes['log_z']:.3f} ± "
                f"{modes['stderr']:.3f}; modes holding importance mass but no particle: "
                f"{modes.get('unreached', 0)})")
    if trigger == "unverified":
        deep = modes.get("depth", -math.inf) > modes.get("depth_limit", UNVERIFIED_DEPTH)
        if deep:
            sign = (f"the descents from its particles went "
                    f"{modes['energy_q01'] - modes['deepest']:.0f} nats below their 1% "
                    f"energy quantile")
        else:
            sign = (f"Gaussians at its minima, fitting poorly, estimated "
                    f"{first.log_z - modes['log_z']:.1f} nats below it")
        return (f"the mode check could not vouch for the {first.method} run ({sign}): part "
                f"of the target is far denser than where its draws went, as in a funnel's "
                f"neck, which annealing and tempering lag behind in every replicate alike "
                f"and nested sampling enters in order of density")
    return (f"the {first.method} run was flagged ({len(first.problems)} problem(s)) on "
            f"a target that Gaussians at {modes.get('modes')} local minima describe "
            f"(the mode check's importance ESS {modes['ess']:.0f} of its "
            f"{modes['draws']} draws): a few modes, which parallel tempering connects")


#: ``fold_in`` index of the key of the rerun from the default Gaussian where a
#: one-mode fit missed modes (:func:`_widen`).
_WIDEN_KEY = 10**6 + 6

#: A checkpoint's subdirectory holding that rerun.
WIDEN_DIR = "widened"


def fit_missed_modes(m: LogZMethod, est) -> bool:
    """Whether a run from ``"auto"``'s one-mode fit was flagged low by the mode check.

    The fit is used only where its descents found one mode; the mode check's
    ``"low"`` flag says that the target has mass the run did not reach, so the
    fit's premise was wrong. AIS and SMC answer that with their PT fallback
    (whose base is the default Gaussian); BDMC, nested sampling and PT rerun
    themselves from the default Gaussian (:func:`_widen`). Not after the tail
    check's escalation: that run's base is no longer the fit.
    """
    fit = est.info.get("mode_fit") or {}
    modes = est.info.get("checks", {}).get("modes", {})
    return (m.name not in FALLBACK_METHODS and bool(fit.get("used"))
            and "escalation" not in est.info and modes.get("flag") in FALLBACK_FLAGS)


def _widen(call: _Call, first: LogZ, key, ckpt, first_s: float) -> LogZ:
    """``base="auto"``: the same method again from the default Gaussian base,
    where :func:`fit_missed_modes` says that the one-mode fit missed modes.

    Same method, options and replicates, on ``fold_in(key, _WIDEN_KEY)``, from
    the base ``base=None`` gives outside ``"auto"`` (``scale=`` applies). The
    second run's estimate is returned, checked as any other, with
    ``info["widened"]`` describing the first run and both runs' gradient
    evaluations and time in ``num_grad_evals`` and ``timing``.
    """
    ref = _reference(call.target, None, call.options, key, call.m.name)[0]
    modes = first.info["checks"]["modes"]
    est, second_s = _rerun(call, first, ref, jax.random.fold_in(key, _WIDEN_KEY), ckpt,
                           first_s, WIDEN_DIR,
                           ", default Gaussian base: the one-mode fit missed modes")
    est.info["widened"] = {
        "reason": f"the base fitted to one mode missed modes: the mode check's "
                  f"importance-sampling estimate from {modes.get('modes')} local minima is "
                  f"{modes['log_z'] - first.log_z:.2f} nats above the run's "
                  f"({modes['log_z']:.3f} ± {modes['stderr']:.3f})",
        "base": repr(ref),
        "first": _first_with_mode_check(first, first_s),
        "second_num_grad_evals": int(est.num_grad_evals - first.num_grad_evals),
        "second_s": second_s}
    est.timing["widened_first_s"] = first_s
    return est


def _check_method(target, method) -> LogZMethod:
    """The registered method for ``method=``, checked against the target's support."""
    if not isinstance(target, Energy):
        if callable(target):
            raise EnergyError("log_partition() needs an emc.Energy, not a bare function: wrap "
                              "it as emc.Energy(fn, init=x0) so energymc knows the shape of x.")
        raise EnergyError(f"log_partition() needs an emc.Energy; got {type(target).__name__}.")
    m = _method.get(method, METHODS)
    if target.support not in m.supports:
        valid = [n for n in METHODS if target.support in _method.get(n).supports]
        raise OptionError(f"method={method!r} needs a real target; for support="
                          f"{target.support!r} use one of {', '.join(valid)}.")
    return m


def _check_options(m: LogZMethod, options: dict) -> None:
    """An unknown option raises an error listing the valid ones (the user's dict is only read)."""
    valid = m.option_names()
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise OptionError(f"log_partition(method={m.name!r}) got unknown option(s) {unknown}; "
                          f"valid options are: {', '.join(sorted(valid))}.")


def _check_replicates(m: LogZMethod, base, replicates) -> int:
    if replicates is None:
        # A model's own path (e.g. RBM.ais_path) comes with its exact moves and
        # its own budget (num_temps in the thousands): one run, as before.
        replicates = 1 if isinstance(base, AnnealingPath) else m.replicates
    if isinstance(replicates, bool) or not isinstance(replicates, (int, np.integer)) \
            or replicates < 1:
        raise OptionError(f"replicates= must be an integer >= 1; got {replicates!r}.")
    return int(replicates)


def _replicates(m: LogZMethod, target, ref, key, ctx: Context, replicates, budget, meter,
                units, t0, saved, ckpt, spent=0.0, more=None) -> list[Estimate]:
    """Run the independent replicates (``replicates`` of them, or until ``budget`` is spent).

    ``more`` (without a budget) is ``(target_stderr, cap, on_more)``: after the
    ``replicates``, more run while :func:`pooled_stderr` exceeds
    ``target_stderr``, up to ``cap`` in all; ``on_more()`` is called before the
    first of them.

    Replicate ``r`` runs on ``fold_in(key, r)``; the method's ``plan`` runs
    once first, on the first replicate's key, and its cost is charged to it.
    ``saved`` are replicates a checkpoint already holds (not run again); each
    new one is saved to ``ckpt`` (if any) as soon as it finishes. ``spent``
    gradient evaluations (the base's fit) count against a ``grad_evals`` budget.
    """
    from energymc.progress import ticks_to

    budget_s, budget_evals = budget
    results = list(saved)
    if results:
        meter.update(units * len(results), {"replicates": f"{len(results)} (checkpoint)"})
    plan = []  # (ctx, cost) of the plan, made before the first replicate that runs

    def one(r):
        if not plan:
            plan_ctx = ctx  # with a checkpoint, a plan's own stages (SMC's pilot) are saved
            if ckpt is not None and hasattr(ctx, "stages"):
                plan_ctx = dataclasses.replace(ctx, stages=ckpt.stages("pilot"))
            plan.append(m.plan(target, ref, jax.random.fold_in(key, 0), plan_ctx))
        run_ctx, plan_cost = plan[0]
        ctx_r = run_ctx
        if ckpt is not None and hasattr(run_ctx, "stages"):
            # A method that can save its replicate in flight stage by stage.
            ctx_r = dataclasses.replace(run_ctx, stages=ckpt.stages(r))
        with ticks_to(meter, units, {"replicate": r}) as ticked:
            res = m.run(target, ref, jax.random.fold_in(key, r), ctx_r)
        if r == 0 and plan_cost:
            res = res._replace(grad_evals=res.grad_evals + plan_cost,
                               info={**res.info, "pilot_grad_evals": plan_cost})
        # Saved before it is shown: an interrupt while the bar moves (a
        # Ctrl-C, a meter that raises) must not lose a finished replicate.
        if ckpt is not None:
            ckpt.save_replicate(res, r)
        # Complete the run's share of the bar (a run that stopped early, or
        # that cannot tick) and show its estimate.
        meter.update(units - ticked.count, {"replicate": r, "log_z": f"{res.log_z:.4f}"})
        return res

    if budget_s is None and budget_evals is None:
        results += [one(r) for r in range(len(results), replicates)]
        if more is not None:
            # More replicates while the pooled stderr is above the target (the
            # default effort): one at a time, each on its own fold_in key.
            target_se, cap, on_more = more
            first_added = True
            while len(results) < cap and target_se < pooled_stderr(results) < math.inf:
                if first_added:  # before the first this call runs (a resumed call too)
                    on_more()
                    first_added = False
                results.append(one(len(results)))
        return results
    evals = sum(res.grad_evals for res in results)
    while len(results) < _MAX_BUDGET_REPLICATES:
        # Stop when one more replicate (at the mean cost so far) would overspend.
        n = len(results)
        if n >= 2 and ((budget_s is not None and (time.perf_counter() - t0) * (n + 1) / n
                        > budget_s)
                       or (budget_evals is not None
                           and spent + evals * (n + 1) / n > budget_evals)):
            break
        results.append(one(n))
        evals += results[-1].grad_evals
    return results


_MAX_BUDGET_REPLICATES = 1000

#: The default effort's precision target (nats): where neither ``replicates=``
#: nor ``budget=`` is given, a method that follows the stderr (AIS, SMC) adds
#: replicates one at a time while the pooled stderr is above it, up to
#: :data:`PRECISION_FACTOR` times its default count. Chosen on the zoo's
#: TUNING half (benchmarks/RESULTS.md, "The default effort follows the stderr").
PRECISION_STDERR = 0.05

#: At most this many times the method's default number of replicates under
#: the precision target: a deterministic cap (the count does not depend on
#: the machine's speed, so the same seed gives the same estimate).
PRECISION_FACTOR = 4


def pooled_stderr(results) -> float:
    """Stderr of the pooled estimate of ``results`` (as :func:`_combine` reports it)."""
    if len(results) == 1:
        return float(results[0].stderr)
    return replicate_check([r.log_z for r in results], [r.stderr for r in results])[0]


def _check_budget(budget, replicates):
    """``(seconds, grad_evals)`` from ``budget=`` (one of them ``None``); checked eagerly."""
    if budget is None:
        return None, None
    if replicates is not None:
        raise OptionError("give budget= or replicates=, not both: budget= chooses the number "
                          "of replicates itself.")
    if isinstance(budget, dict):
        if set(budget) != {"grad_evals"}:
            raise OptionError(f"budget= as a dict takes one key, 'grad_evals'; got "
                              f"{sorted(budget)}. E.g. budget={{'grad_evals': 2e6}}.")
        n = budget["grad_evals"]
        if isinstance(n, bool) or not isinstance(n, (int, float)) or not n > 0:
            raise OptionError(f"budget={{'grad_evals': N}} needs a number N > 0; got {n!r}.")
        return None, float(n)
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0:
        raise OptionError(f"budget= must be seconds (a number > 0, e.g. 30.0) or "
                          f"{{'grad_evals': N}}; got {budget!r}.")
    return float(budget), None


def _reference(target, base, options, key, method="ais") -> tuple[Reference, float,
                                                                   dict | None]:
    """The reference q0 from ``base=``, the gradient evaluations its fit cost
    (pilot run or mode fit), and the mode fit's report (``None`` for other bases).

    ``method`` picks the fitted base's default ``defensive`` share under
    ``base="auto"`` (:data:`energymc.logz._modes.AUTO_DEFENSIVE`)."""
    names = ("scale", "probs", "pilot_draws", "mode_starts", "defensive")
    o = dataclasses.replace(BaseOptions(), **{k: v for k, v in options.items() if k in names})
    _check_mode_options(o)
    cost, fit = [], []

    def pilot():
        ref, evals = _pilot(target, o.pilot_draws, int(jax.random.randint(
            jax.random.fold_in(key, 10**6), (), 0, 2**31 - 1)))
        cost.append(evals)
        return ref

    def modes(scale, auto=False):
        from energymc.logz._modes import AUTO_DEFENSIVE, MODES_DEFENSIVE, fit_modes, fits_well

        t0 = time.perf_counter()
        defensive = o.defensive
        if defensive is None:
            # "auto" uses the fit only where it matches one mode; there the
            # defensive particles cost most of the stages (see _modes).
            defensive = AUTO_DEFENSIVE.get(method, MODES_DEFENSIVE) if auto \
                else MODES_DEFENSIVE
        ref, evals, info = fit_modes(target, jax.random.fold_in(key, 10**6 + 2), scale=scale,
                                     starts=int(o.mode_starts), defensive=float(defensive))
        used = fits_well(info) if auto else True
        if not used:
            # The fit does not match the target (several modes, or a poor
            # importance ESS): anneal from the default Gaussian, as base=None.
            ref = GaussianReference(jnp.asarray(target.flat_init), scale)
        cost.append(evals)
        fit.append({**info, "used": used, "seconds": time.perf_counter() - t0})
        return ref

    ref = make_reference(target, base, scale=o.scale, probs=o.probs, pilot_fn=pilot,
                         modes_fn=modes)
    return ref, sum(cost), (fit[0] if fit else None)


def _check_mode_options(o: BaseOptions) -> None:
    """``mode_starts`` and ``defensive`` (``base="modes"``), checked before anything runs."""
    n = o.mode_starts
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise OptionError(f"mode_starts= must be an integer >= 1 (descents that look for the "
                          f"target's modes); got {n!r}.")
    w = o.defensive
    if w is None:
        return
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0.0 <= w < 1.0:
        raise OptionError(f"defensive= must be a weight in [0, 1) (the default Gaussian's "
                          f"share of base='modes'); got {w!r}.")


#: A fixed number of q0 draws for the mode check's descents, or ``None`` for
#: :func:`energymc.logz._checks.base_start_count`'s rule (the default; an
#: integer here is the benchmarks' ablation, ``--mode-base-starts``).
_MODE_BASE_STARTS = None


def _mode_check(est, target, ref, key) -> dict:
    """Run :func:`mode_check` where it applies: ``{"problem": str | None, "info": dict}``."""
    from energymc.logz._checks import base_start_count, mode_check

    if target.support != "real" or isinstance(ref, AnnealingPath) or est.particles is None \
            or est.weights is None or not math.isfinite(est.log_z):
        return {"problem": None,
                "info": {"status": "skipped: needs real particles from a geometric path"}}
    t0 = time.perf_counter()
    # Descents from draws of q0 too: they find modes no particle reached. A
    # mode-fitted q0 is drawn from its defensive default Gaussian instead: the
    # check must not look only where the fit already looked.
    start_ref = ref.defensive() if isinstance(ref, MixtureReference) else ref
    n_base = (base_start_count(np.shape(est.particles)[-1]) if _MODE_BASE_STARTS is None
              else int(_MODE_BASE_STARTS))
    base = np.asarray(draw(start_ref, jax.random.fold_in(key, 1), n_base)) if n_base else None
    # A Student-t base (base="auto" after the tail check, or the user's): the
    # mixture's components get its tails, else their light tails read a
    # heavy-tailed target low and the check flags sound runs.
    problem, info = mode_check(target, est.particles, est.weights, est.log_z, est.stderr, key,
                               base_starts=base, df=student_df(ref))
    info["base_starts"] = n_base
    info["seconds"] = time.perf_counter() - t0
    return {"problem": problem, "info": info}


def _record_check(est, check: dict) -> None:
    """Record the mode check's result (and any problem) on ``est``."""
    from energymc.logz._checks import unverified_problem

    info = check["info"]
    est.info.setdefault("checks", {})["modes"] = info
    if "seconds" in info:
        est.timing["checks_s"] = info["seconds"]
    if check["problem"]:
        est.problems.append(check["problem"])
    # A check that could not be formed, on a funnel-like target, does not
    # vouch for the run: say so rather than leave ``reliable: yes``.
    unverified = unverified_problem(info, est.log_z, est.method)
    if unverified:
        est.problems.append(unverified)


def _bdmc_upper(est, check, reverse_start: str) -> None:
    """Withdraw BDMC's upper bound (``est.upper = +inf``, a problem naming the fix)
    where the run's own checks say that the reverse run's approximate start
    draws miss or mis-weight a mode (``_bounds.upper_reasons``)."""
    from energymc.logz._bounds import upper_reasons, void_upper
    from energymc.logz._checks import unverified_problem

    if est.info.get("exact_samples", False):
        return  # exact draws: the reverse end is a bound whatever the forward run found
    info = None if check is None else check["info"]
    reasons = upper_reasons(crossed=bool(est.info.get("crossed", False)), mode_info=info,
                            mode_problem=None if check is None else check["problem"],
                            log_z=est.log_z,
                            unverified=bool(info and unverified_problem(info, est.log_z)))
    if reasons:
        start = ("the forward run's particles" if reverse_start == "forward"
                 else "an MCMC run's draws")
        est.upper, problem = void_upper(est.lower, reasons, est.info, start)
        est.problems.append(problem)


def merge_problems(per_run):
    """One sentence per kind of problem, naming the replicates that had it.

    Replicates usually fail the same way with different numbers; listing the
    same sentence R times buries the other problems. The first replicate's
    wording (with its numbers) stands for the kind.
    """
    if len(per_run) == 1:
        return list(per_run[0])
    kinds: dict[str, tuple[str, list[int]]] = {}
    for r, problems in enumerate(per_run):
        for p in problems:
            kind = re.sub(r"[-+]?\d+(\.\d+)?(e[-+]?\d+)?", "#", p)
            kinds.setdefault(kind, (p, []))[1].append(r)
    out = []
    for p, runs in kinds.values():
        who = (f"replicate {runs[0]}" if len(runs) == 1 else
               f"{len(runs)} of {len(per_run)} replicates ({', '.join(map(str, runs))}; "
               f"numbers from replicate {runs[0]})")
        out.append(f"{who}: {p}")
    return out


def _combine(m: LogZMethod, target, results: list[Estimate], ctx: Context, total) -> LogZ:
    """One :class:`LogZ` from the replicates' estimates (pooled when there are several)."""
    first = results[0]
    R = len(results)
    problems = merge_problems([res.problems for res in results])
    info = dict(first.info)
    lower = upper = None
    if R == 1:
        log_z, stderr = first.log_z, first.stderr
        particles, weights, ess, reps = first.particles, first.weights, first.ess, None
    else:
        reps = np.array([res.log_z for res in results])
        log_z = float(logsumexp_compiled(reps) - math.log(R))
        # The replicates are independent, so their spread measures the error of
        # any one; the mean of R of them has 1/sqrt(R) of it.
        stderr, problem, rinfo = replicate_check(reps, [res.stderr for res in results])
        info.setdefault("checks", {})["replicates"] = rinfo
        if problem:
            problems.append(problem)
        particles, weights, ess = _pooled_particles(results, reps)
        info["replicate_stderr"] = [res.stderr for res in results]
    if first.lower is not None:
        lower, upper, bounds, problem = bdmc_bounds(
            [res.lower for res in results], [res.upper for res in results],
            [res.info["lower_stderr"] for res in results],
            [res.info["upper_stderr"] for res in results],
            exact=all(res.info.get("exact_samples", False) for res in results),
            level=ctx.options.level)
        info.update(bounds)
        if problem:
            problems.append(problem)
        if R > 1:
            # The midpoint of the pooled raw ends, its stderr at least half their gap.
            log_z = 0.5 * (bounds["lower_raw"] + bounds["upper_raw"])
            stderr = max(0.5 * (bounds["upper_raw"] - bounds["lower_raw"]), stderr)
        # The floor from the reported bracket (its half-width over z): the ends
        # share the forward run's bias, which no spread shows. log_partition
        # applies it after the checks, which compare with the noise stderr.
        info["bracket_stderr"] = bracket_stderr(log_z, lower, upper, bounds["bound_z"])
    return LogZ(method=m.name, target=target, log_z=log_z, stderr=stderr, ess=ess,
                num_particles=m.num_particles(ctx.options), stages=first.stages,
                particles=particles, weights=weights, lower=lower, upper=upper,
                replicates=reps, problems=problems,
                num_grad_evals=int(sum(res.grad_evals for res in results)),
                timing={"total_s": total}, info=info)


def _pooled_particles(results, reps):
    """All replicates' particles with weights ``W_ri * Z_r / sum_r Z_r``, and their ESS."""
    if not all(res.particles is not None for res in results):
        return None, None, float(sum(res.ess for res in results))
    particles = np.concatenate([res.particles for res in results])
    scale = np.exp(reps - logsumexp_compiled(reps))
    weights = np.concatenate([res.weights * s for res, s in zip(results, scale, strict=True)])
    weights = weights / weights.sum()
    return particles, weights, float(kish_ess(weights))
