"""A zoo of log-Z targets with exact answers, split once into a tuning and a held-out half.

Every entry is a target a user might bring, with its exact ``log Z`` in
float64, found without Monte Carlo:

* analytically (dense Gaussians, unequal Gaussian mixtures, Neal's funnel,
  bananas: a volume-preserving twist keeps the Gaussian's ``log Z``),
* by 1-d quadrature of a product or radial form (products of Student-t,
  products of double wells, rings),
* by enumerating every state in float64 NumPy (Ising 4x4, SK with 14
  spins, RBMs with 12 visible units: the free energy sums the hidden ones).

Families and dimensions cover 2 to 500. The split was fixed before any
default was tuned, by one rule: within each family, entries sorted by
``(dim, name)`` alternate ``TUNING, HELD_OUT, TUNING, ...``. So both halves
hold every family; defaults are chosen on ``TUNING`` and reported on
``HELD_OUT`` (``benchmarks/bench_zoo_logz.py``). Do not move entries between
the halves after looking at results.

Usage::

    from zoo import ZOO, TUNING, HELD_OUT, by_name
    entry = by_name("mixture6d3")
    target = entry.build()          # an emc.Energy with a sensible init
    entry.log_z                     # exact log Z (float64)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from scipy import integrate, special

import energymc as emc

__all__ = ["Entry", "ZOO", "TUNING", "HELD_OUT", "FAMILIES", "by_name", "LEARN_TASKS",
           "LEARN_TUNING", "LEARN_HELD_OUT"]

LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True)
class Entry:
    """One zoo target.

    Attributes
    ----------
    name
        Unique name, e.g. ``"mixture6d3"``.
    family
        ``"gaussian"``, ``"mixture"``, ``"student"``, ``"funnel"``,
        ``"banana"``, ``"ring"``, ``"wells"``, ``"ising"``, ``"sk"`` or ``"rbm"``.
    dim
        Dimension of the flat position.
    build
        ``build() -> emc.Energy`` (cheap; the same target every call).
    log_z
        Exact ``log Z = log ∫ exp(-E)`` (sum for discrete supports), float64.
    """

    name: str
    family: str
    dim: int
    build: Callable[[], emc.Energy]
    log_z: float


def _named(fn, name):
    fn.__name__ = name
    return fn


# --------------------------------------------------------------- Gaussians
def _dense_gaussian_parts(dim, cond, seed):
    """Covariance ``Q diag(lam) Q^T`` with eigenvalues log-spaced over ``cond``; mean off-origin."""
    rng = np.random.default_rng(seed)
    lam = np.logspace(-0.5 * math.log10(cond), 0.5 * math.log10(cond), dim)
    q, r = np.linalg.qr(rng.normal(size=(dim, dim)))
    q = q * np.sign(np.diag(r))
    mean = rng.uniform(-2.0, 2.0, dim)
    return lam, q, mean


def _dense_gaussian(dim, cond, seed):
    lam, q, mean = _dense_gaussian_parts(dim, cond, seed)
    prec = (q / lam) @ q.T
    prec = 0.5 * (prec + prec.T)
    P, m = jnp.asarray(prec), jnp.asarray(mean)

    def energy(x):
        y = x - m
        return 0.5 * y @ (P @ y)

    return emc.Energy(_named(energy, f"gaussian{dim}"), init=jnp.zeros(dim))


def _dense_gaussian_log_z(dim, cond, seed):
    lam, _, _ = _dense_gaussian_parts(dim, cond, seed)
    return 0.5 * dim * LOG_2PI + 0.5 * float(np.sum(np.log(lam)))


# ---------------------------------------------------------------- mixtures
def _mixture_parts(dim, weights, sds, radius, seed):
    rng = np.random.default_rng(seed)
    k = len(weights)
    dirs = rng.normal(size=(k, dim))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    means = radius * dirs
    s = np.asarray(sds, float)
    # Amplitudes a_k such that component k holds mass w_k e^(d/2) (a_k (2 pi s_k^2)^(d/2)):
    # the weights are the modes' true shares, and log Z = d/2 + log sum w is not 0.
    log_a = np.log(np.asarray(weights)) - 0.5 * dim * (LOG_2PI + 2.0 * np.log(s)) + 0.5 * dim
    return log_a, s, means


def _mixture(dim, weights, sds, radius, seed):
    log_a, sds_, means = _mixture_parts(dim, weights, sds, radius, seed)
    la, s, mu = jnp.asarray(log_a), jnp.asarray(sds_), jnp.asarray(means)

    def energy(x):
        sq = jnp.sum((x - mu) ** 2, axis=1)
        return -jax.scipy.special.logsumexp(la - 0.5 * sq / s**2)

    return emc.Energy(_named(energy, f"mixture{dim}d{len(weights)}"), init=jnp.zeros(dim))


def _mixture_log_z(dim, weights, sds, radius, seed):
    log_a, s, _ = _mixture_parts(dim, weights, sds, radius, seed)
    return float(special.logsumexp(log_a + 0.5 * dim * (LOG_2PI + 2.0 * np.log(s))))


# ----------------------------------------------------- products of Student-t
def _student_parts(dim, nu, seed):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.5, 2.0, dim), rng.uniform(-1.0, 1.0, dim)


def _student(dim, nu, seed):
    scale, loc = (jnp.asarray(a) for a in _student_parts(dim, nu, seed))

    def energy(x):
        return 0.5 * (nu + 1.0) * jnp.sum(jnp.log1p(((x - loc) / scale) ** 2 / nu))

    return emc.Energy(_named(energy, f"student{dim}nu{nu}"), init=jnp.zeros(dim))


def _student_log_z(dim, nu, seed):
    scale, _ = _student_parts(dim, nu, seed)
    one = (0.5 * math.log(nu * math.pi) + special.gammaln(0.5 * nu)
           - special.gammaln(0.5 * (nu + 1.0)))
    return float(dim * one + np.sum(np.log(scale)))


# ------------------------------------------------------------------ funnels
def _funnel(dim, scale):
    def energy(z):
        v, x = z[0], z[1:]
        return 0.5 * (v / scale) ** 2 + 0.5 * jnp.sum(x**2) * jnp.exp(-v) + 0.5 * (dim - 1) * v

    return emc.Energy(_named(energy, f"funnel{dim}"), init=jnp.zeros(dim))


def _funnel_log_z(dim, scale):
    return math.log(scale) + 0.5 * LOG_2PI + 0.5 * (dim - 1) * LOG_2PI


# ------------------------------------------------------------------ bananas
def _banana(dim, scale, curvature):
    """Pairs ``(a, b)``: ``a ~ N(0, scale^2)``, ``b | a ~ N(curvature (a^2 - scale^2), 1)``."""

    def energy(x):
        a, b = x[0::2], x[1::2]
        return jnp.sum(0.5 * (a / scale) ** 2 + 0.5 * (b - curvature * (a**2 - scale**2)) ** 2)

    return emc.Energy(_named(energy, f"banana{dim}"), init=jnp.zeros(dim))


def _banana_log_z(dim, scale, curvature):
    # (a, b) -> (a, b - c (a^2 - s^2)) has Jacobian 1: the Gaussian's log Z.
    return 0.5 * dim * (math.log(scale) + LOG_2PI)


# -------------------------------------------------------------------- rings
def _ring(dim, radius, width):
    def energy(x):
        return 0.5 * ((jnp.sqrt(jnp.sum(x**2)) - radius) / width) ** 2

    init = jnp.zeros(dim).at[0].set(radius)  # |x| is not differentiable at 0
    return emc.Energy(_named(energy, f"ring{dim}"), init=init)


def _ring_log_z(dim, radius, width):
    # Z = S_{d-1} ∫_0^∞ r^(d-1) exp(-(r - R)^2 / (2 w^2)) dr, S_{d-1} = 2 pi^(d/2) / Gamma(d/2);
    # the integrand is rescaled by its peak so quad sees numbers near 1.
    log_s = math.log(2.0) + 0.5 * dim * math.log(math.pi) - special.gammaln(0.5 * dim)
    r_peak = 0.5 * (radius + math.sqrt(radius**2 + 4 * (dim - 1) * width**2))

    def log_f(r):
        return (dim - 1) * math.log(r) - 0.5 * ((r - radius) / width) ** 2 if r > 0 else -math.inf

    peak = log_f(r_peak)
    val, _ = integrate.quad(lambda r: math.exp(log_f(r) - peak), 0.0, np.inf,
                            points=None, epsabs=0.0, epsrel=1e-12, limit=400)
    return float(log_s + peak + math.log(val))


# ------------------------------------------------------- double-well products
def _wells(dim, tilt):
    """``dim / 2`` independent pairs ``E(a, b) = a^4 - 6 a^2 - tilt a + 0.5 b^2``."""

    def energy(x):
        a, b = x[0::2], x[1::2]
        return jnp.sum(a**4 - 6.0 * a**2 - tilt * a + 0.5 * b**2)

    return emc.Energy(_named(energy, f"wells{dim}"), init=jnp.zeros(dim))


def _wells_log_z(dim, tilt):
    f = lambda a: math.exp(-(a**4 - 6.0 * a**2 - tilt * a) - 9.0)  # scaled: max near 9 + ...
    val, _ = integrate.quad(f, -np.inf, np.inf, epsabs=0.0, epsrel=1e-12, limit=400)
    one = math.log(val) + 9.0 + 0.5 * LOG_2PI
    return float(0.5 * dim * one)


# ---------------------------------------------------- discrete: enumeration
def _all_states(n, spin):
    bits = (np.arange(2**n)[:, None] >> np.arange(n)) & 1
    return (2.0 * bits - 1.0) if spin else bits.astype(float)


def _ising(side, beta, h):
    return emc.models.Ising((side, side), beta=beta, h=h)


def _ising_log_z(side, beta, h):
    s = _all_states(side * side, spin=True).reshape(-1, side, side)
    bonds = np.sum(s * np.roll(s, -1, axis=1), axis=(1, 2)) + np.sum(s * np.roll(s, -1, axis=2),
                                                                     axis=(1, 2))
    return float(special.logsumexp(beta * (bonds + h * np.sum(s, axis=(1, 2)))))


def _sk_parts(n, beta, seed):
    rng = np.random.default_rng(seed)
    J = np.triu(rng.normal(size=(n, n)) * beta / math.sqrt(n), 1)
    return J + J.T, rng.normal(scale=0.1 * beta, size=n)


def _sk(n, beta, seed):
    J, h = (jnp.asarray(a) for a in _sk_parts(n, beta, seed))

    def energy(s):
        return -0.5 * s @ (J @ s) - h @ s

    return emc.Energy(_named(energy, f"sk{n}"), init=jnp.ones(n), support="spin")


def _sk_log_z(n, beta, seed):
    J, h = _sk_parts(n, beta, seed)
    s = _all_states(n, spin=True)
    return float(special.logsumexp(0.5 * np.einsum("ki,ij,kj->k", s, J, s) + s @ h))


def _rbm_params(nv, nh, sd, seed):
    rng = np.random.default_rng(seed)
    return {"W": rng.normal(scale=sd, size=(nv, nh)), "b": rng.normal(scale=0.5, size=nv),
            "c": rng.normal(scale=0.5, size=nh)}


def _rbm(nv, nh, sd, seed):
    params = {k: jnp.asarray(v) for k, v in _rbm_params(nv, nh, sd, seed).items()}
    return emc.models.RBM(nv, nh).as_energy(params, name=f"rbm{nv}x{nh}s{seed}")


def _rbm_log_z(nv, nh, sd, seed):
    p = _rbm_params(nv, nh, sd, seed)
    v = _all_states(nv, spin=False)
    neg_free = v @ p["b"] + np.sum(np.logaddexp(0.0, v @ p["W"] + p["c"]), axis=1)
    return float(special.logsumexp(neg_free))


# --------------------------------------------------------------- the table
def _entry(name, family, dim, builder, exact, *args):
    return Entry(name, family, dim, partial(builder, *args), float(exact(*args)))


_ISSUE_MIX = ((0.6, 0.3, 0.1), (1.0, 0.5, 0.3), 5.0)   # issue 11's 6-d case: unequal w and sd

ZOO: tuple[Entry, ...] = (
    _entry("gaussian10", "gaussian", 10, _dense_gaussian, _dense_gaussian_log_z, 10, 1e2, 10),
    _entry("gaussian40", "gaussian", 40, _dense_gaussian, _dense_gaussian_log_z, 40, 1e3, 40),
    _entry("gaussian100", "gaussian", 100, _dense_gaussian, _dense_gaussian_log_z, 100, 1e3, 100),
    _entry("gaussian500", "gaussian", 500, _dense_gaussian, _dense_gaussian_log_z, 500, 1e3, 500),
    _entry("mixture2d2", "mixture", 2, _mixture, _mixture_log_z, 2, (0.7, 0.3), (1.0, 0.3),
           4.0, 1),
    _entry("mixture6d3", "mixture", 6, _mixture, _mixture_log_z, 6, *_ISSUE_MIX, 6),
    _entry("mixture10d3", "mixture", 10, _mixture, _mixture_log_z, 10, (0.5, 0.35, 0.15),
           (1.0, 0.6, 0.4), 6.0, 10),
    _entry("mixture20d2", "mixture", 20, _mixture, _mixture_log_z, 20, (0.8, 0.2), (1.0, 0.7),
           6.0, 20),
    _entry("student2", "student", 2, _student, _student_log_z, 2, 3.0, 2),
    _entry("student10", "student", 10, _student, _student_log_z, 10, 3.0, 10),
    _entry("student50", "student", 50, _student, _student_log_z, 50, 5.0, 50),
    _entry("student100", "student", 100, _student, _student_log_z, 100, 4.0, 100),
    _entry("funnel2", "funnel", 2, _funnel, _funnel_log_z, 2, 3.0),
    _entry("funnel10", "funnel", 10, _funnel, _funnel_log_z, 10, 3.0),
    _entry("funnel20", "funnel", 20, _funnel, _funnel_log_z, 20, 2.0),
    _entry("banana2", "banana", 2, _banana, _banana_log_z, 2, 2.0, 0.5),
    _entry("banana10", "banana", 10, _banana, _banana_log_z, 10, 2.0, 0.3),
    _entry("banana50", "banana", 50, _banana, _banana_log_z, 50, 1.5, 0.3),
    _entry("ring2", "ring", 2, _ring, _ring_log_z, 2, 4.0, 0.3),
    _entry("ring5", "ring", 5, _ring, _ring_log_z, 5, 3.0, 0.3),
    _entry("ring10", "ring", 10, _ring, _ring_log_z, 10, 5.0, 0.5),
    _entry("wells2", "wells", 2, _wells, _wells_log_z, 2, 1.0),
    _entry("wells8", "wells", 8, _wells, _wells_log_z, 8, 0.5),
    _entry("wells32", "wells", 32, _wells, _wells_log_z, 32, 0.5),
    _entry("ising4x4", "ising", 16, _ising, _ising_log_z, 4, 0.3, 0.0),
    _entry("ising4x4c", "ising", 16, _ising, _ising_log_z, 4, 0.44, 0.05),
    _entry("sk14a", "sk", 14, _sk, _sk_log_z, 14, 1.5, 14),
    _entry("sk14b", "sk", 14, _sk, _sk_log_z, 14, 2.0, 41),
    _entry("rbm12x6a", "rbm", 12, _rbm, _rbm_log_z, 12, 6, 1.0, 12),
    _entry("rbm12x6b", "rbm", 12, _rbm, _rbm_log_z, 12, 6, 2.0, 13),
)

FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(e.family for e in ZOO))


def _split():
    tuning, held = [], []
    for fam in FAMILIES:
        members = sorted((e for e in ZOO if e.family == fam), key=lambda e: (e.dim, e.name))
        for i, e in enumerate(members):
            (tuning if i % 2 == 0 else held).append(e)
    return tuple(tuning), tuple(held)


TUNING, HELD_OUT = _split()


def by_name(name: str) -> Entry:
    """The entry called ``name`` (``KeyError`` listing the names otherwise)."""
    for e in ZOO:
        if e.name == name:
            return e
    raise KeyError(f"no zoo entry {name!r}; entries: {', '.join(e.name for e in ZOO)}")


# The zoo's learner tasks (known optima: Gaussian MLEs, Boltzmann machines and
# RBMs fitted exactly by enumeration, binary data sets for RBM.fit) live in
# zoo_learn.py, with their own split, also fixed before any learner default was
# tuned (benchmarks/zoo_learn.py --run, bench_rbm.py --zoo).
from zoo_learn import HELD_OUT as LEARN_HELD_OUT  # noqa: E402
from zoo_learn import TASKS as LEARN_TASKS  # noqa: E402
from zoo_learn import TUNING as LEARN_TUNING  # noqa: E402

if __name__ == "__main__":
    for half, entries in (("TUNING", TUNING), ("HELD_OUT", HELD_OUT)):
        print(half)
        for e in entries:
            print(f"  {e.name:12s} {e.family:9s} dim {e.dim:4d}  log Z {e.log_z:.6f}")
    for half, tasks in (("LEARN_TUNING", LEARN_TUNING), ("LEARN_HELD_OUT", LEARN_HELD_OUT)):
        print(half, ", ".join(getattr(t, "name", str(t)) for t in tasks))
