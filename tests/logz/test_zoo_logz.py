"""The log-Z zoo's exact answers are right, checked by routes independent of how they were found.

* Targets with an exact sampler q (Gaussians, mixtures, Student-t products,
  funnels, bananas): ``-E(x) - log q(x)`` must equal ``log Z`` at every draw,
  with ``q`` written here from scipy.stats, not from the zoo's formulas.
* Rings and double wells: brute-force 2-d/3-d grid quadrature of the zoo's
  own energy (products: a 2-d factor, raised to the number of factors).
* Binary and spin models: enumeration by :mod:`energymc.exact` (JAX), and
  Kaufman's formula for the Ising model without a field.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import energymc as emc

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import zoo  # noqa: E402


def _energies(target, x):
    return np.asarray(jax.vmap(target.flat_energy)(jnp.asarray(x)), dtype=float)


def test_split_is_fixed_and_covers_every_family():
    names = [e.name for e in zoo.ZOO]
    assert len(names) == len(set(names)) >= 24
    assert {e.name for e in zoo.TUNING}.isdisjoint({e.name for e in zoo.HELD_OUT})
    assert len(zoo.TUNING) + len(zoo.HELD_OUT) == len(zoo.ZOO)
    for half in (zoo.TUNING, zoo.HELD_OUT):
        assert {e.family for e in half} == set(zoo.FAMILIES)
    dims = [e.dim for e in zoo.ZOO]
    assert min(dims) == 2 and max(dims) == 500
    # The documented rule: alternate within each family sorted by (dim, name).
    assert [e.name for e in zoo.HELD_OUT][:4] == ["gaussian40", "gaussian500", "mixture6d3",
                                                  "mixture20d2"]


def _exact_draws(entry, rng, n):
    """``(x, log q(x))`` from an exact sampler written independently of the zoo's log Z."""
    name, d = entry.name, entry.dim
    if entry.family == "gaussian":
        lam, q, mean = zoo._dense_gaussian_parts(d, *_ARGS[name][1:])
        cov = (q * lam) @ q.T
        cov = 0.5 * (cov + cov.T)
        x = rng.multivariate_normal(mean, cov, size=n)
        return x, stats.multivariate_normal(mean, cov).logpdf(x)
    if entry.family == "mixture":
        dim, w, s, radius, seed = _ARGS[name]
        _, _, means = zoo._mixture_parts(dim, w, s, radius, seed)
        k = rng.choice(len(w), size=n, p=np.asarray(w) / np.sum(w))
        x = means[k] + rng.normal(size=(n, d)) * np.asarray(s)[k, None]
        logq = np.logaddexp.reduce(
            [math.log(w[j] / sum(w)) + stats.norm(means[j], s[j]).logpdf(x).sum(axis=1)
             for j in range(len(w))], axis=0)
        return x, logq
    if entry.family == "student":
        dim, nu, seed = _ARGS[name]
        scale, loc = zoo._student_parts(dim, nu, seed)
        dist = stats.t(df=nu, loc=loc, scale=scale)
        x = dist.rvs(size=(n, d), random_state=rng)
        return x, dist.logpdf(x).sum(axis=1)
    if entry.family == "funnel":
        dim, scale = _ARGS[name]
        v = rng.normal(scale=scale, size=n)
        xs = rng.normal(size=(n, d - 1)) * np.exp(0.5 * v)[:, None]
        logq = stats.norm(0, scale).logpdf(v) + stats.norm(0, np.exp(0.5 * v)[:, None]).logpdf(
            xs).sum(axis=1)
        return np.column_stack([v, xs]), logq
    if entry.family == "banana":
        dim, s, c = _ARGS[name]
        a = rng.normal(scale=s, size=(n, d // 2))
        b = c * (a**2 - s**2) + rng.normal(size=(n, d // 2))
        x = np.empty((n, d))
        x[:, 0::2], x[:, 1::2] = a, b
        logq = (stats.norm(0, s).logpdf(a) + stats.norm(c * (a**2 - s**2), 1).logpdf(b)).sum(1)
        return x, logq
    raise AssertionError(entry.family)


# Builder arguments, repeated here so that the test reads what each entry is.
_ARGS = {
    "gaussian10": (10, 1e2, 10), "gaussian40": (40, 1e3, 40), "gaussian100": (100, 1e3, 100),
    "gaussian500": (500, 1e3, 500),
    "mixture2d2": (2, (0.7, 0.3), (1.0, 0.3), 4.0, 1),
    "mixture6d3": (6, (0.6, 0.3, 0.1), (1.0, 0.5, 0.3), 5.0, 6),
    "mixture10d3": (10, (0.5, 0.35, 0.15), (1.0, 0.6, 0.4), 6.0, 10),
    "mixture20d2": (20, (0.8, 0.2), (1.0, 0.7), 6.0, 20),
    "student2": (2, 3.0, 2), "student10": (10, 3.0, 10), "student50": (50, 5.0, 50),
    "student100": (100, 4.0, 100),
    "funnel2": (2, 3.0), "funnel10": (10, 3.0), "funnel20": (20, 2.0),
    "banana2": (2, 2.0, 0.5), "banana10": (10, 2.0, 0.3), "banana50": (50, 1.5, 0.3),
}

_SAMPLED = [e for e in zoo.ZOO if e.family in ("gaussian", "mixture", "student", "funnel",
                                                "banana")]


@pytest.mark.parametrize("entry", _SAMPLED, ids=lambda e: e.name)
def test_exact_log_z_by_exact_draws(entry):
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        target = entry.build()
        x, logq = _exact_draws(entry, rng, 50)
        logw = -_energies(target, x) - logq
    # Zero-variance importance sampling: every weight is Z itself.
    np.testing.assert_allclose(logw, entry.log_z, rtol=0, atol=1e-6 * max(1.0, entry.dim))


def test_exact_draws_check_can_fail():
    """Negative control: a target whose stated log Z is off by 0.01 nats fails the check."""
    entry = zoo.by_name("mixture6d3")
    with jax.enable_x64(True):
        x, logq = _exact_draws(entry, np.random.default_rng(0), 50)
        logw = -_energies(entry.build(), x) - logq
    assert np.max(np.abs(logw - (entry.log_z + 0.01))) > 1e-3


def _grid_log_z(target, lo, hi, n):
    axes = [np.linspace(a, b, n) for a, b in zip(lo, hi, strict=True)]
    mesh = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(lo))
    e = _energies(target, mesh)
    cell = np.prod([(b - a) / (n - 1) for a, b in zip(lo, hi, strict=True)])
    return float(np.log(np.sum(np.exp(-(e - e.min())))) - e.min() + math.log(cell))


@pytest.mark.parametrize("name", ["mixture2d2", "ring2", "wells2"])
def test_exact_log_z_by_2d_grid(name):
    entry = zoo.by_name(name)
    with jax.enable_x64(True):
        got = _grid_log_z(entry.build(), (-9.0, -9.0), (9.0, 9.0), 1201)
    assert abs(got - entry.log_z) < 1e-6


def test_ring_radial_formula_in_3d():
    with jax.enable_x64(True):
        got = _grid_log_z(zoo._ring(3, 2.0, 0.3), (-3.5,) * 3, (3.5,) * 3, 161)
    assert abs(got - zoo._ring_log_z(3, 2.0, 0.3)) < 1e-5


@pytest.mark.parametrize("name", ["wells8", "wells32"])
def test_wells_product_of_grid_factors(name):
    entry = zoo.by_name(name)
    with jax.enable_x64(True):
        pair = _grid_log_z(zoo._wells(2, 0.5), (-5.0, -9.0), (5.0, 9.0), 1201)
        # The entry's energy is the sum of its pairs' energies.
        x = np.random.default_rng(1).normal(size=(3, entry.dim))
        pairs = sum(_energies(zoo._wells(2, 0.5), x[:, i:i + 2]) for i in range(0, entry.dim, 2))
        np.testing.assert_allclose(_energies(entry.build(), x), pairs, rtol=1e-12)
    assert abs(entry.dim // 2 * pair - entry.log_z) < 1e-6 * entry.dim


@pytest.mark.parametrize("entry", [e for e in zoo.ZOO if e.family in ("ising", "sk", "rbm")],
                         ids=lambda e: e.name)
def test_discrete_log_z_by_enumeration(entry):
    target = entry.build()
    assert target.support in ("spin", "binary")
    got = float(emc.exact.log_partition(target))
    # Enumeration in float32 here, float64 in the zoo.
    assert abs(got - entry.log_z) < 2e-5 * abs(entry.log_z) + 1e-4


def test_ising_log_z_matches_kaufman():
    entry = zoo.by_name("ising4x4")
    assert abs(entry.build().log_z_exact("kaufman") - entry.log_z) < 1e-4
