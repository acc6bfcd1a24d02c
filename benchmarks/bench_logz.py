"""log Z benchmark: energymc (ais, smc, pt) against hand-written BlackJAX SMC and dynesty.

Targets with a known log Z:

* ``gauss100``: 100-d Gaussian, standard deviations log-spaced 0.01 to 1;
* ``mixture10``: 10-d two-component Gaussian mixture, weights 0.3 / 0.7,
  means at -2 and +2 in every coordinate (11 sd apart), unit covariance;
* ``manywell32``: 16 independent copies of the 2-d double well
  ``E(a, b) = a^4 - 6 a^2 - 0.5 a + 0.5 b^2`` (truth by quadrature);
* ``banana2``: ``a ~ N(0, 10)``, ``b | a ~ N(0.1 (a^2 - 10), 1)``.

For each target and method the script reports, over seeds: the mean error
in nats, its spread (sd over seeds), the fraction of seeds where
``|error| <= 3 stderr`` (coverage of the reported error bar), wall time per
run after compilation (one untimed call first), and gradient (or
likelihood, for dynesty) evaluations, and (energymc only) the fraction of
runs whose ``LogZ`` came back flagged ``reliable=False`` and the fraction
that were confidently wrong (``silent``: error beyond 3 stderr, not
flagged). Budgets: the same particle count and moves per stage for energymc
SMC and the hand-written BlackJAX SMC; AIS and PT at a similar number of
gradient evaluations on the low-dimensional targets.

Run ``python benchmarks/bench_logz.py`` (10 seeds) or with ``--quick`` (3
seeds, a quarter of the particles, dynesty on the low-dimensional targets
only). ``emc-smc-long`` (4x the particles, ``target_ess=0.9``) and ``emc-pt-long`` (24
replicas, 16 chains of 2000 draws) are larger budgets aimed at ManyWell-32;
``emc-smc-xl`` (16x the particles, ``target_ess=0.9``) shows what particles
alone buy there; ``emc-smc-hmc`` (8x the particles, ``target_ess=0.9``, 8 HMC
moves of 5 leapfrog steps per stage) and ``emc-smc-hmc-pilot`` (the same along
a schedule fixed by an independent adaptive run) are the settings aimed at
the ManyWell-32 goal; ``emc-smc-hmc2`` (2x the particles, 2 HMC moves of 5
leapfrog steps per stage) is aimed at equal wall time with the BlackJAX
baseline on the small targets, ``emc-smc-hmc-lite`` (half the particles,
``target_ess=0.9``, 2 such moves) on ManyWell-32. These seven run only when named in
``--methods``. ``--interleave`` runs the methods in turn for each seed, so
that a change in the machine's load does not favour one of them; an
energymc method named ``NAME@F`` (e.g. ``emc-smc@0.8``) runs with F times
its particles, to bring it to a peer's wall time.
"""

from __future__ import annotations

import argparse
import math
import os
import time
import warnings

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from scipy import integrate  # noqa: E402

import energymc as emc  # noqa: E402

warnings.simplefilter("ignore", emc.EnergymcWarning)

# The figures in RESULTS.md are of single runs without the default checks
# (they predate the default of 4 replicates); keep measuring that.
_ONE_RUN = {"replicates": 1, "checks": False}


# --------------------------------------------------------------------------- targets
def _gauss100():
    sd = jnp.asarray(np.geomspace(0.01, 1.0, 100))
    truth = float(np.sum(np.log(np.asarray(sd) * math.sqrt(2 * math.pi))))
    return emc.Energy(lambda x: 0.5 * jnp.sum((x / sd) ** 2), init=jnp.zeros(100),
                      name="gauss100"), truth, 1.0


def _mixture10():
    d = 10

    def energy(x):
        a = math.log(0.3) - 0.5 * jnp.sum((x + 2.0) ** 2)
        b = math.log(0.7) - 0.5 * jnp.sum((x - 2.0) ** 2)
        return -(jnp.logaddexp(a, b) - 0.5 * d * math.log(2 * math.pi))

    return emc.Energy(energy, init=jnp.zeros(d), name="mixture10"), 0.0, 3.0


def _manywell32():
    one = integrate.quad(lambda a: math.exp(-(a**4 - 6 * a**2 - 0.5 * a)), -np.inf, np.inf)[0]
    truth = 16 * (math.log(one) + 0.5 * math.log(2 * math.pi))

    def energy(x):
        a, b = x[0::2], x[1::2]
        return jnp.sum(a**4 - 6 * a**2 - 0.5 * a + 0.5 * b**2)

    return emc.Energy(energy, init=jnp.zeros(32), name="manywell32"), truth, 2.0


def _banana2():
    def energy(x):
        a, b = x[0], x[1]
        return 0.5 * a**2 / 10.0 + 0.5 * (b - 0.1 * (a**2 - 10.0)) ** 2

    return (emc.Energy(energy, init=jnp.zeros(2), name="banana2"),
            math.log(2 * math.pi * math.sqrt(10.0)), 4.0)


TARGETS = {"gauss100": _gauss100, "mixture10": _mixture10, "manywell32": _manywell32,
           "banana2": _banana2}


# --------------------------------------------------------------------------- methods
# Particles per method (full run; --quick uses a quarter). The hand-written
# BlackJAX SMC baselines get as many particles and moves per stage as emc-smc.
AIS_PARTICLES = 1024
SMC_PARTICLES = 2048


def emc_method(name, quick, factor=1.0):
    """``factor`` scales the particle counts (``emc-smc@0.8`` on the command line):
    a way to bring a method to a peer's wall time."""
    n_ais = round(factor * (AIS_PARTICLES // 4 if quick else AIS_PARTICLES))
    n_smc = round(factor * (SMC_PARTICLES // 4 if quick else SMC_PARTICLES))

    def run(target, scale, seed):
        if name == "ais":
            est = emc.log_partition(target, method="ais", seed=seed, **_ONE_RUN, scale=scale,
                                    particles=n_ais)
        elif name == "ais-pilot":
            # The reference is a Gaussian fitted to a short NUTS run (its
            # gradient evaluations are included in the count).
            est = emc.log_partition(target, method="ais", seed=seed, **_ONE_RUN, base="pilot",
                                    particles=n_ais)
        elif name == "smc":
            est = emc.log_partition(target, method="smc", seed=seed, **_ONE_RUN, scale=scale,
                                    particles=n_smc, mcmc_steps=10)
        elif name == "smc-long":
            # 4x the particles and slower tempering (more stages, more moves
            # between resampling steps, so the wells' proportions keep up).
            est = emc.log_partition(target, method="smc", seed=seed, **_ONE_RUN, scale=scale,
                                    particles=4 * n_smc, mcmc_steps=10, target_ess=0.9)
        elif name == "smc-xl":
            # 16x the particles of emc-smc, target_ess=0.9, MALA moves.
            est = emc.log_partition(target, method="smc", seed=seed, **_ONE_RUN, scale=scale,
                                    particles=16 * n_smc, mcmc_steps=10, target_ess=0.9)
        elif name in ("smc-hmc", "smc-hmc-pilot"):
            # The setting that meets the 0.1-nat goal on ManyWell-32: 8x the
            # particles, target_ess=0.9, 8 HMC moves of 5 leapfrog steps per
            # stage. "-pilot" follows a schedule fixed by an independent
            # adaptive run (twice the cost, no adaptation bias).
            est = emc.log_partition(target, method="smc", seed=seed, **_ONE_RUN, scale=scale,
                                    particles=8 * n_smc, target_ess=0.9, kernel="hmc",
                                    kernel_options={"num_integration_steps": 5},
                                    mcmc_steps=8,
                                    schedule="pilot" if name.endswith("pilot") else "adaptive")
        elif name == "smc-hmc2":
            # For equal wall time on the small targets: twice the particles of
            # emc-smc, 2 HMC moves of 5 leapfrog steps per stage (the same
            # gradient evaluations per particle and stage as emc-smc's 10
            # MALA moves, fewer accept steps).
            est = emc.log_partition(target, method="smc", seed=seed, **_ONE_RUN, scale=scale,
                                    particles=2 * n_smc, kernel="hmc",
                                    kernel_options={"num_integration_steps": 5}, mcmc_steps=2)
        elif name == "smc-hmc-lite":
            # The ManyWell recipe at a small budget: half the particles of
            # emc-smc, target_ess=0.9, 2 HMC moves of 5 leapfrog steps.
            est = emc.log_partition(target, method="smc", seed=seed, **_ONE_RUN, scale=scale,
                                    particles=n_smc // 2, target_ess=0.9, kernel="hmc",
                                    kernel_options={"num_integration_steps": 5}, mcmc_steps=2)
        elif name == "pt-long":
            est = emc.log_partition(target, method="pt", seed=seed, **_ONE_RUN, scale=scale,
                                    replicas=24, chains=16, draws=2000, warmup=1000)
        else:
            est = emc.log_partition(target, method="pt", seed=seed, **_ONE_RUN, scale=scale,
                                    replicas=16, chains=4, draws=500 if quick else 1000,
                                    warmup=500)
        FLAGS.append(not est.reliable)
        return est.log_z, est.stderr, est.num_grad_evals

    return run


# One entry per energymc run: True when the LogZ came back with reliable=False.
FLAGS: list[bool] = []


def blackjax_smc(quick):
    """What a user writes with BlackJAX alone in a few lines: adaptive tempered SMC,
    MALA moves with one fixed step size (0.05 scale^2 d^-1/3, set from the prior), no
    tuning."""
    import blackjax
    from blackjax.smc import extend_params, resampling

    n = SMC_PARTICLES // 4 if quick else SMC_PARTICLES
    steps = 10
    compiled = {}

    def run(target, scale, seed):
        if target in compiled:
            lz, stages = compiled[target](jax.random.key(seed))
            return float(lz), math.nan, int(stages) * n * (steps + 1)
        d = target.dim
        lp = target.flat_logdensity

        def logprior(z):
            return -0.5 * jnp.sum(z**2) / scale**2 - d * math.log(scale * math.sqrt(2 * math.pi))

        def loglik(z):
            return lp(z) - logprior(z)

        step = 0.5 * scale**2 * d ** (-1 / 3) * 0.1
        alg = blackjax.adaptive_tempered_smc(
            logprior, loglik, blackjax.mala.build_kernel(), blackjax.mala.init,
            extend_params({"step_size": jnp.asarray(step)}), resampling.systematic,
            target_ess=0.5, num_mcmc_steps=steps)

        @jax.jit
        def go(key):
            k0, key = jax.random.split(key)
            state = alg.init(scale * jax.random.normal(k0, (n, d)))

            def cond(c):
                return (c[1].tempering_param < 1.0) & (c[0] < 500)

            def body(c):
                i, s, lz = c
                s, info = alg.step(jax.random.fold_in(key, i), s)
                return i + 1, s, lz + info.log_likelihood_increment

            i, s, lz = jax.lax.while_loop(cond, body, (0, state, jnp.asarray(0.0)))
            return lz, i

        compiled[target] = go
        lz, stages = go(jax.random.key(seed))
        return float(lz), math.nan, int(stages) * n * (steps + 1)

    return run


def blackjax_smc_rwm(quick):
    """BlackJAX's documented recipe: adaptive tempered SMC with random-walk moves whose
    per-coordinate scale is set from the particles' spread before every step
    (``inner_kernel_tuning``), no gradients."""
    import blackjax
    from blackjax.mcmc.random_walk import normal
    from blackjax.smc import resampling
    from blackjax.smc.tuning.from_particles import particles_stds

    n = SMC_PARTICLES // 4 if quick else SMC_PARTICLES
    steps = 20
    compiled = {}

    def run(target, scale, seed):
        if target not in compiled:
            d = target.dim
            lp = target.flat_logdensity

            def logprior(z):
                return (-0.5 * jnp.sum(z**2) / scale**2
                        - d * math.log(scale * math.sqrt(2 * math.pi)))

            rw = blackjax.additive_step_random_walk.build_kernel()

            def step_fn(key, state, logdensity_fn, sigma):
                return rw(key, state, logdensity_fn, normal(sigma))

            def tune(key, state, info):
                return {"sigma": (2.38 / math.sqrt(d) * particles_stds(state.particles))[None]}

            alg = blackjax.inner_kernel_tuning(
                smc_algorithm=blackjax.adaptive_tempered_smc, logprior_fn=logprior,
                loglikelihood_fn=lambda z: lp(z) - logprior(z), mcmc_step_fn=step_fn,
                mcmc_init_fn=blackjax.additive_step_random_walk.init,
                resampling_fn=resampling.systematic, mcmc_parameter_update_fn=tune,
                initial_parameter_value={"sigma": jnp.full((1, d), 2.38 / math.sqrt(d) * scale)},
                num_mcmc_steps=steps, target_ess=0.5)

            @jax.jit
            def go(key):
                k0, key = jax.random.split(key)
                state = alg.init(scale * jax.random.normal(k0, (n, d)))

                def cond(c):
                    return (c[1].sampler_state.tempering_param < 1.0) & (c[0] < 500)

                def body(c):
                    i, s, lz = c
                    s, info = alg.step(jax.random.fold_in(key, i), s)
                    return i + 1, s, lz + info.log_likelihood_increment

                i, s, lz = jax.lax.while_loop(cond, body, (0, state, jnp.asarray(0.0)))
                return lz, i

            compiled[target] = go
        lz, stages = compiled[target](jax.random.key(seed))
        return float(lz), math.nan, int(stages) * n * steps

    return run


def dynesty_method(quick):
    import dynesty
    from scipy.stats import norm

    def run(target, scale, seed):
        d = target.dim
        lp = jax.jit(target.flat_logdensity)

        def loglike(z):
            z = np.asarray(z)
            ll = float(lp(jnp.asarray(z, jnp.float32)))
            lq = -0.5 * float(np.sum(z**2)) / scale**2 - d * math.log(
                scale * math.sqrt(2 * math.pi))
            v = ll - lq
            return v if math.isfinite(v) else -1e300

        def prior_transform(u):
            return scale * norm.ppf(u)

        sampler = dynesty.NestedSampler(loglike, prior_transform, d, nlive=200 if quick else 500,
                                        sample="rslice", rstate=np.random.default_rng(seed))
        sampler.run_nested(dlogz=0.05, print_progress=False)
        res = sampler.results
        return float(res.logz[-1]), float(res.logzerr[-1]), int(np.sum(res.ncall))

    return run


# --------------------------------------------------------------------------- driver
def _row(tname, mname, runs):
    errs = np.array([r[0] for r in runs])
    ses = np.array([r[1] for r in runs])
    walls = [r[2] for r in runs]
    evals = [r[3] for r in runs]
    flags = [r[4] for r in runs]
    cover = np.mean(np.abs(errs) <= 3 * ses) if np.all(np.isfinite(ses)) else math.nan
    if all(f is not None for f in flags):
        flags = np.asarray(flags, dtype=bool)
        flagged = np.mean(flags)
        # Confident wrong answers: error beyond 3 stderr and not flagged.
        silent = np.mean((np.abs(errs) > 3 * ses) & ~flags)
    else:
        flagged = silent = math.nan
    return (tname, mname, errs.mean(), errs.std(ddof=1) if len(errs) > 1 else 0.0,
            np.abs(errs).max(), cover,
            np.nanmean(ses) if np.any(np.isfinite(ses)) else math.nan,
            np.mean(walls), np.mean(evals), flagged, silent)


def _print_row(row):
    print(f"{row[0]:<11} {row[1]:<17} {row[2]:>9.3f} {row[3]:>7.3f} {row[4]:>8.3f} "
          f"{row[5]:>8.2f} {row[6]:>7.3f} {row[7]:>7.3f} {row[8]:>10.0f} {row[9]:>7.2f} "
          f"{row[10]:>6.2f}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 seeds, smaller runs")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--methods",
                        default="emc-ais,emc-ais-pilot,emc-smc,emc-pt,blackjax-smc,"
                                "blackjax-smc-rwm,dynesty")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--interleave", action="store_true",
                        help="run the methods in turn for each seed (fair wall times)")
    args = parser.parse_args(argv)
    seeds = args.seeds or (3 if args.quick else 10)
    methods = {"emc-ais": emc_method("ais", args.quick),
               "emc-ais-pilot": emc_method("ais-pilot", args.quick),
               "emc-smc": emc_method("smc", args.quick),
               "emc-smc-long": emc_method("smc-long", args.quick),
               "emc-smc-xl": emc_method("smc-xl", args.quick),
               "emc-smc-hmc": emc_method("smc-hmc", args.quick),
               "emc-smc-hmc-pilot": emc_method("smc-hmc-pilot", args.quick),
               "emc-smc-hmc2": emc_method("smc-hmc2", args.quick),
               "emc-smc-hmc-lite": emc_method("smc-hmc-lite", args.quick),
               "emc-pt-long": emc_method("pt-long", args.quick),
               "emc-pt": emc_method("pt", args.quick), "blackjax-smc": blackjax_smc(args.quick),
               "blackjax-smc-rwm": blackjax_smc_rwm(args.quick),
               "dynesty": dynesty_method(args.quick)}
    chosen = args.methods.split(",")
    for mname in chosen:
        # NAME@F: an energymc method with F times its particles.
        if "@" in mname and mname.startswith("emc-"):
            base, factor = mname.split("@")
            methods[mname] = emc_method(base[len("emc-"):], args.quick, float(factor))
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}, seeds={seeds}, "
          f"quick={args.quick}")
    header = (f"{'target':<11} {'method':<17} {'mean err':>9} {'sd err':>7} {'max|err|':>8} "
              f"{'cover3se':>8} {'stderr':>7} {'wall s':>7} {'evals':>10} {'flagged':>7} "
              f"{'silent':>6}")
    print(header)
    rows = []
    for tname in args.targets.split(","):
        target, truth, scale = TARGETS[tname]()
        todo = [m for m in chosen
                # dynesty on 32-100 d takes minutes per seed
                if not (m == "dynesty" and args.quick and target.dim > 10)]
        for mname in todo:
            methods[mname](target, scale, 10_000)  # compile (untimed)
        # With --interleave every seed runs each method in turn, so a change
        # in the machine's load hits all methods alike: fair wall times.
        order = ([(seed, m) for seed in range(seeds) for m in todo] if args.interleave
                 else [(seed, m) for m in todo for seed in range(seeds)])
        runs = {m: [] for m in todo}  # (error, stderr, wall, evals, flagged or None)
        for seed, mname in order:
            n_flags = len(FLAGS)
            t0 = time.perf_counter()
            lz, se, ev = methods[mname](target, scale, seed)
            wall = time.perf_counter() - t0
            flag = FLAGS[-1] if len(FLAGS) > n_flags else None
            runs[mname].append((lz - truth, se, wall, ev, flag))
            if len(runs[mname]) == seeds:
                rows.append(_row(tname, mname, runs[mname]))
                if not args.interleave:
                    _print_row(rows[-1])
        if args.interleave:
            for row in rows[-len(todo):]:
                _print_row(row)
    return rows


if __name__ == "__main__":
    main()
