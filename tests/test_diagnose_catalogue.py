"""Known-bad and known-good runs: ``diagnose`` flags every bad one, passes every good one.

Every run is a real ``emc.sample`` call at a small size. A bad case names the
check that must catch it (a phrase of its problem sentence); a good case must
come out with no problem at all. Seeds are literal, so a failure replays.

Left out because the run alone cannot show it (see docs/getting-started.md,
"What diagnose checks"): a minor mode that no chain ever visits (all chains
started in the major mode agree with one another). A small discretisation
bias of an unadjusted kernel in one or two dimensions, whose would-be
Metropolis acceptance stays high, is caught by the curvature-based
``variance_inflation`` stat. PCD chains that lag the model are a learner's
diagnostic, not ``diagnose``'s: it judges a finished ``Run``.
"""

import jax.numpy as jnp
import numpy as np
import pytest

import energymc as emc
from energymc.models import reference


def _gauss(dim, scale=1.0, mean=0.0):
    return emc.Energy(lambda x: 0.5 * jnp.sum(((x - mean) / scale) ** 2), init=jnp.zeros(dim))


def _double_well(barrier):
    """x[0] in a double well with minima at +-2 (barrier height ``barrier``), x[1] Gaussian."""
    return emc.Energy(lambda x: barrier * (x[0] ** 2 / 4.0 - 1.0) ** 2 + 0.5 * x[1] ** 2,
                      init=jnp.zeros(2))


def _mixture():
    """Weights 0.8 / 0.2 at x[0] = -3 and +3, unit width; far apart (barrier ~ 4.5 nats)."""
    def energy(x):
        a = jnp.log(0.8) - 0.5 * jnp.sum((x - jnp.array([-3.0, 0.0])) ** 2)
        b = jnp.log(0.2) - 0.5 * jnp.sum((x - jnp.array([3.0, 0.0])) ** 2)
        return -jnp.logaddexp(a, b)
    return emc.Energy(energy, init=jnp.zeros(2))


def _nan_region():
    # log(1 - x0) is NaN beyond x0 = 1, right where the Gaussian has mass.
    return emc.Energy(lambda x: 0.5 * jnp.sum(x**2) - 0.01 * jnp.log(1.0 - x[0]),
                      init=jnp.zeros(2))


_ILL = jnp.array([0.01, 0.1, 1.0, 10.0])
# Shared targets: runs of one target with the same method and shapes reuse
# their compiled code, which keeps the whole file fast.
G2, G3, ILL, FUNNEL = _gauss(2), _gauss(3), _gauss(4, _ILL), reference.funnel(dim=10)
DW_HIGH = _double_well(12.0)
SPREAD = jnp.array([[-20.0, 0.0], [20.0, 0.0], [0.0, 20.0], [0.0, -20.0]])

# name -> (build run, phrase its problem must contain)
BAD = {
    "minor mode found by one dispersed chain only": (lambda: emc.sample(
        _mixture(), "mala", chains=4, draws=300, warmup=200, seed=0,
        init=jnp.array([[-3.0, 0.0], [-3.0, 0.0], [-3.0, 0.0], [3.0, 0.0]])), "R-hat"),
    "chains stuck in different modes": (lambda: emc.sample(
        DW_HIGH, "mala", chains=4, draws=300, warmup=200, seed=1,
        init=jnp.array([[-2.0, 0.0], [2.0, 0.0], [-2.0, 0.0], [2.0, 0.0]])), "R-hat"),
    "too-short warmup on an ill-conditioned target": (lambda: emc.sample(
        ILL, "nuts", chains=4, draws=200, warmup=10, seed=2), "Effective sample size"),
    "no warmup, chains started far apart": (lambda: emc.sample(
        G2, "mala", chains=4, draws=200, warmup=0, adapt=False, step_size=0.01, init=SPREAD,
        seed=3), "R-hat"),
    "unadjusted Langevin with a large step": (lambda: emc.sample(
        _gauss(10), "langevin", chains=4, draws=300, warmup=0, adapt=False, step_size=0.5,
        seed=4), "unadjusted sampler's moves"),
    # Two dimensions, curvature 4 along x[1], step 0.05: variance +11%, yet a Metropolis
    # test would accept ~98% of the moves; only the curvature shows it.
    "unadjusted Langevin with a bias its acceptance cannot show": (lambda: emc.sample(
        _gauss(2, jnp.array([1.0, 0.5])), "langevin", chains=4, draws=300, warmup=0,
        adapt=False, step_size=0.05, seed=12), "stiffest direction"),
    # Neal's funnel with a diagonal metric: the neck shows as E-BFMI (and R-hat, ESS).
    "funnel neck": (lambda: emc.sample(
        FUNNEL, "nuts", chains=4, draws=200, warmup=200, seed=5), "E-BFMI"),
    "energy with a NaN region": (lambda: emc.sample(
        _nan_region(), "mala", chains=4, draws=300, warmup=200, seed=6), "divergent"),
    "one chain stuck where the gradient blows up": (lambda: emc.sample(
        emc.Energy(lambda x: 0.25 * jnp.sum(x**4), init=jnp.zeros(2)), "mala", chains=4,
        draws=200, warmup=0, adapt=False, step_size=0.5, seed=7,
        init=jnp.array([[0.0, 0.0], [0.5, 0.0], [0.0, 0.5], [50.0, 50.0]])),
        "Mean acceptance is 0.000 in chain(s) 3"),
    "too few draws": (lambda: emc.sample(
        G3, "nuts", chains=4, draws=20, warmup=200, seed=8), "Effective sample size"),
    "random walk with a tiny fixed step": (lambda: emc.sample(
        G3, "rwm", chains=4, draws=300, warmup=0, adapt=False, step_size=0.01, seed=9),
        "Effective sample size"),
    "random walk on a strongly correlated target": (lambda: emc.sample(
        emc.Energy(lambda x: 0.5 * (x[0] ** 2 - 1.998 * x[0] * x[1] + x[1] ** 2) / 0.001999,
                   init=jnp.zeros(2)), "rwm", chains=4, draws=300, warmup=200, seed=10),
        "Effective sample size"),
    "a single chain": (lambda: emc.sample(
        G3, "mala", chains=1, draws=300, warmup=200, seed=11), "Only one chain"),
}

GOOD = {
    # R-hat's 1.01 limit is itself noisy at a few hundred draws per chain; good
    # runs here are long enough (ESS ~ 1000 per chain) for it to be quiet.
    "nuts on a Gaussian": lambda: emc.sample(G3, "nuts", chains=4, draws=1000, warmup=200,
                                             seed=20),
    "nuts on an ill-conditioned Gaussian": lambda: emc.sample(
        ILL, "nuts", chains=4, draws=300, warmup=300, seed=21),
    "mala on a Gaussian": lambda: emc.sample(G3, "mala", chains=4, draws=600, warmup=300,
                                             seed=22),
    "hmc on a Gaussian": lambda: emc.sample(G3, "hmc", chains=4, draws=600, warmup=200,
                                            seed=23),
    # 2,000 draws: at 1,000 (ESS ~840) R-hat read 1.013 on one JAX build, over the 1.01 bar
    # by the estimator's own noise.
    "barker on a Gaussian": lambda: emc.sample(G2, "barker", chains=4, draws=2000,
                                               warmup=300, seed=24),
    # The default step is capped for 3% variance inflation (~0.06 on unit scales),
    # so ULA mixes slowly: 10,000 steps per chain for an ESS of a few hundred.
    "unadjusted Langevin, tuned step": lambda: emc.sample(G3, "langevin", chains=4,
                                                          draws=2000, thin=5, warmup=300,
                                                          seed=26),
    "unadjusted Langevin, default step on an ill-conditioned Gaussian": lambda: emc.sample(
        ILL, "langevin", chains=4, draws=2000, thin=5, warmup=300, seed=25),
    "mala on an off-origin Gaussian with unequal scales": lambda: emc.sample(
        _gauss(3, jnp.array([0.5, 1.0, 2.0]), jnp.array([1.0, -2.0, 3.0])), "mala", chains=4,
        draws=1000, warmup=300, seed=27),
    "dispersed starts that converge": lambda: emc.sample(
        G2, "mala", chains=4, draws=600, warmup=300, seed=28, init=SPREAD),
    "nuts with a dense metric on a correlated target": lambda: emc.sample(
        emc.Energy(lambda x: 0.5 * (x[0] ** 2 - 1.8 * x[0] * x[1] + x[1] ** 2) / 0.19,
                   init=jnp.zeros(2)), "nuts", chains=4, draws=300, warmup=300,
        dense_mass=True, seed=29),
    "a dict of arrays": lambda: emc.sample(
        emc.Energy(lambda p: 0.5 * jnp.sum(p["a"] ** 2) + 0.5 * jnp.sum((p["b"] - 2.0) ** 2),
                   init={"a": jnp.zeros(2), "b": jnp.zeros(3)}), "mala", chains=4, draws=600,
        warmup=300, seed=30),
    "eight chains, thinned": lambda: emc.sample(G2, "mala", chains=8, draws=300,
                                                warmup=300, thin=2, seed=31),
    "gibbs on a spin chain": lambda: emc.sample(
        emc.Energy(lambda s: -0.3 * jnp.sum(s[:-1] * s[1:]), init=jnp.ones(6), support="spin"),
        "gibbs", chains=4, draws=600, warmup=100, seed=32),
}


def test_the_catalogue_is_big_enough():
    assert len(BAD) >= 12 and len(GOOD) >= 12


@pytest.mark.parametrize("name", sorted(BAD))
def test_diagnose_flags_every_known_bad_run(name):
    build, phrase = BAD[name]
    d = emc.diagnose(build())
    assert not d.ok, f"{name}: passed ({d.numbers})"
    assert any(phrase in p for p in d.problems), f"{name}: {d.problems}"


@pytest.mark.parametrize("name", sorted(GOOD))
def test_diagnose_passes_every_known_good_run(name):
    d = emc.diagnose(GOOD[name]())
    assert d.ok, f"{name}: {d.problems}"
    assert np.isfinite(d.numbers["min_ess_bulk"])
