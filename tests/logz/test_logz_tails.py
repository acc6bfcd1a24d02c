"""The tail check: a target whose density decays polynomially reads heavy, others do not.

* on exact draws: a product of Student-t reads heavy; a Gaussian, an unequal
  mixture, a double well and a hard wall (negative controls) do not;
* a heavy-tailed base (a Student-t) follows the target's tails: not flagged;
* inside ``log_partition``: a run from a Gaussian base on a Student-t target
  is flagged with the problem and its fix; one on a Gaussian is not; one that
  takes the fix is not.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

import energymc as emc
from energymc.logz._reference import GaussianReference, NumpyroReference
from energymc.logz._tails import TAIL_THRESHOLD, tail_check, tail_exponents

_NU = 3.0


def _student(dim):
    def energy(x):
        return 0.5 * (_NU + 1.0) * jnp.sum(jnp.log1p((x - 0.5) ** 2 / _NU))

    return emc.Energy(energy, init=jnp.zeros(dim))


def _student_log_z(dim):
    one = 0.5 * math.log(_NU * math.pi) + math.lgamma(0.5 * _NU) - math.lgamma(0.5 * (_NU + 1))
    return dim * one


def _gaussian(dim):
    return emc.Energy(lambda x: 0.5 * jnp.sum((x - 1.0) ** 2 / 4.0), init=jnp.zeros(dim))


def _mixture():
    mu = jnp.array([[-4.0, 0.0, 0.0], [4.0, 1.0, 0.0]])
    la = jnp.log(jnp.array([0.8, 0.2])) - 3 * jnp.log(jnp.array([1.0, 0.3]))

    def energy(x):
        sq = jnp.sum((x - mu) ** 2, axis=1) / jnp.array([1.0, 0.09])
        return -jax.scipy.special.logsumexp(la - 0.5 * sq)

    return emc.Energy(energy, init=jnp.zeros(3))


def _wells():
    return emc.Energy(lambda x: jnp.sum(x**4 - 6.0 * x**2), init=jnp.zeros(4))


def _box():
    # Uniform on [-1, 1]^3: the energy is +inf outside (a hard wall), not a heavy tail.
    return emc.Energy(lambda x: jnp.where(jnp.all(jnp.abs(x) <= 1.0), 0.0, jnp.inf),
                      init=jnp.zeros(3))


def _check(target, draws, seed, base=None):
    w = np.ones(draws.shape[0])
    return tail_check(target, draws, w, jax.random.key(seed), base=base)


def test_exponents_of_power_laws():
    r = 2.0 ** np.arange(6)
    e = np.stack([r**2, r, 3.0 * np.log(r) + 7.0, np.where(r < 30, r**2, np.inf), -r])
    a = tail_exponents(e)
    np.testing.assert_allclose(a[:3], [2.0, 1.0, 0.0], atol=1e-12)
    assert a[3] == np.inf and a[4] == -np.inf  # a wall is light; a falling energy is heavy


@pytest.mark.parametrize("dim", [2, 10, 100])
def test_student_t_reads_heavy(dim):
    rng = np.random.default_rng(20 + dim)
    draws = 0.5 + rng.standard_t(_NU, size=(512, dim))
    problem, info = _check(_student(dim), draws, seed=dim)
    assert info["status"] == "heavy" and info["heavy_share"] == 1.0
    assert info["median_exponent"] < 0.5
    assert "heavier than the base's" in problem and "StudentT" in problem
    assert len(info["mean"]) == dim and info["evaluations"] == 32 * 6


@pytest.mark.parametrize("name", ["gaussian", "mixture", "wells", "box"])
def test_light_tails_do_not_read_heavy(name):
    """Negative controls: Gaussian (a = 2), an unequal mixture, a double well (4), a wall."""
    rng = np.random.default_rng(7)
    if name == "gaussian":
        target, draws = _gaussian(10), 1.0 + 2.0 * rng.normal(size=(512, 10))
    elif name == "mixture":
        pick = rng.random(512) < 0.8
        draws = np.where(pick[:, None], [-4.0, 0.0, 0.0] + rng.normal(size=(512, 3)),
                         [4.0, 1.0, 0.0] + 0.3 * rng.normal(size=(512, 3)))
        target = _mixture()
    elif name == "wells":
        target, draws = _wells(), rng.choice([-1.7, 1.7], size=(512, 4)) + 0.3 * rng.normal(
            size=(512, 4))
    else:
        target, draws = _box(), rng.uniform(-1.0, 1.0, size=(512, 3))
    problem, info = _check(target, draws, seed=3)
    assert problem is None and info["status"] == "light"
    assert info["heavy_share"] < 0.5
    if name != "box":
        assert info["median_exponent"] > 1.5 > TAIL_THRESHOLD


def test_heavy_base_follows_heavy_target():
    rng = np.random.default_rng(5)
    draws = 0.5 + rng.standard_t(_NU, size=(512, 4))
    t_base = NumpyroReference(dist.StudentT(3.0, jnp.full(4, 0.5), jnp.ones(4)).to_event(1))
    problem, info = _check(_student(4), draws, seed=1, base=t_base)
    assert problem is None and info["status"] == "heavy, as is the base"
    assert info["base_heavy_share"] == 1.0
    g_base = GaussianReference(jnp.zeros(4), 2.0 * jnp.ones(4))
    problem, info = _check(_student(4), draws, seed=1, base=g_base)
    assert problem is not None and info["base_heavy_share"] == 0.0


@pytest.mark.slow  # a long statistical run; the default tier keeps the faster ones
def test_log_partition_flags_heavy_target_and_not_gaussian():
    # An explicit Gaussian base: base=None would follow the check's advice
    # itself (tests/logz/test_logz_escalation.py).
    with pytest.warns(emc.errors.EnergymcWarning, match="heavier than the base's"):
        heavy = emc.log_partition(_student(4), seed=0, base="gaussian")
    assert heavy.info["checks"]["tails"]["status"] == "heavy"
    assert not heavy.reliable
    assert any("heavier than the base's" in p for p in heavy.problems)

    light = emc.log_partition(_gaussian(4), seed=0)
    assert light.info["checks"]["tails"]["status"] == "light"
    assert light.reliable, light.problems
    assert abs(light.log_z - (2.0 * math.log(2 * math.pi) + 4 * math.log(2.0))) \
        < 4 * light.stderr + 0.02

    # The fix the problem names: a Student-t base at the particles' mean and sd.
    info = heavy.info["checks"]["tails"]
    base = dist.StudentT(3.0, jnp.asarray(info["mean"]), jnp.asarray(info["sd"])).to_event(1)
    fixed = emc.log_partition(_student(4), seed=0, base=base)
    assert fixed.info["checks"]["tails"]["status"] == "heavy, as is the base"
    assert fixed.reliable, fixed.problems
    assert abs(fixed.log_z - _student_log_z(4)) < 4 * fixed.stderr
