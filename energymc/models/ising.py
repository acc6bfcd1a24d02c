"""The Ising model on a hyper-cubic lattice, with exact answers to check against.

``H(s) = -J sum_<ij> s_i s_j - h sum_i s_i`` over nearest-neighbour bonds,
spins ``s_i`` in {-1, +1}; the target is ``exp(-beta H(s))``, so the energy an
energymc kernel sees is ``beta * H``.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from energymc import exact
from energymc._util import static
from energymc.energy import BoundEnergy, Energy
from energymc.errors import EnergyError

__all__ = ["Ising", "critical_beta", "onsager_magnetization"]


def critical_beta(J: float = 1.0) -> float:
    """Onsager's critical inverse temperature of the square lattice, ``log(1 + sqrt 2) / (2 J)``."""
    return math.log1p(math.sqrt(2.0)) / (2.0 * J)


def onsager_magnetization(beta, J: float = 1.0):
    """Spontaneous magnetisation per site of the infinite square lattice (Onsager, Yang 1952).

    ``(1 - sinh(2 beta J)^-4)^(1/8)`` above the critical ``beta``, 0 below.

    Parameters
    ----------
    beta
        Inverse temperature(s), any shape.

    Returns
    -------
    numpy.ndarray
        Same shape as ``beta``.
    """
    k = 2.0 * np.asarray(beta, dtype=float) * J
    with np.errstate(divide="ignore", invalid="ignore"):
        m = (1.0 - np.sinh(k) ** -4) ** 0.125
    return np.where(k / 2.0 > critical_beta(1.0), m, 0.0)


# The lattice enters as ``(shape, periodic)``, plain hashable values, so that
# models on equal lattices share compiled code and only the params differ.
def _bond_sum(shape, periodic, s):
    """``sum_<ij> s_i s_j`` over nearest-neighbour bonds; ``s`` ``(..., *shape)`` -> ``(...,)``."""
    axes = range(s.ndim - len(shape), s.ndim)
    total = 0.0
    for a in axes:
        if periodic:
            total = total + jnp.sum(s * jnp.roll(s, -1, axis=a), axis=tuple(axes))
        else:
            n = s.shape[a]
            lo = jax.lax.slice_in_dim(s, 0, n - 1, axis=a)
            hi = jax.lax.slice_in_dim(s, 1, n, axis=a)
            total = total + jnp.sum(lo * hi, axis=tuple(axes))
    return total


def _hamiltonian(shape, periodic, s, J, h):
    """``H(s) = -J sum_<ij> s_i s_j - h sum_i s_i``; ``s`` ``(..., *shape)`` -> ``(...,)``."""
    axes = tuple(range(s.ndim - len(shape), s.ndim))
    return -J * _bond_sum(shape, periodic, s) - h * jnp.sum(s, axis=axes)


def _neighbour_sum(periodic, s):
    """Every site's sum of its neighbours' spins; ``s`` ``shape`` -> ``shape``."""
    total = jnp.zeros_like(s)
    for a in range(s.ndim):
        if periodic:
            total = total + jnp.roll(s, 1, axis=a) + jnp.roll(s, -1, axis=a)
        else:
            pad = [(0, 0)] * s.ndim
            pad[a] = (1, 1)
            padded = jnp.pad(s, pad)
            n = s.shape[a]
            total = (total + jax.lax.slice_in_dim(padded, 0, n, axis=a)
                     + jax.lax.slice_in_dim(padded, 2, n + 2, axis=a))
    return total


def _lattice_energy(shape, periodic, params, s):
    """``beta * H(s)`` as a function of ``params = {"beta", "J", "h"}`` (a learner-style
    ``energy_fn(params, x)`` once ``shape`` and ``periodic`` are bound by ``static``)."""
    return params["beta"] * _hamiltonian(shape, periodic, s, params["J"], params["h"])


def _colors(shape, periodic) -> np.ndarray:
    """A proper colouring of the lattice graph, ``(num_sites,)`` ints (flat C order)."""
    coords = np.indices(shape).reshape(len(shape), -1)
    if not periodic or all(n % 2 == 0 for n in shape):
        return (coords.sum(axis=0) % 2).astype(np.int32)
    # An odd periodic side breaks the checkerboard at the wrap: colour greedily.
    index = np.arange(int(np.prod(shape))).reshape(shape)
    nbrs = [np.roll(index, d, axis=a).ravel() for a in range(len(shape)) for d in (1, -1)]
    colors = -np.ones(index.size, dtype=np.int32)
    for i in range(index.size):
        used = {colors[nb[i]] for nb in nbrs}
        colors[i] = min(c for c in range(len(nbrs) + 1) if c not in used)
    return colors


def _log2cosh(x):
    return jnp.logaddexp(x, -x)


def _log_abs_2sinh(x):
    ax = jnp.abs(x)
    return ax + jnp.log(-jnp.expm1(-2.0 * ax))


def _kaufman_log_z(K, m: int, n: int):
    """log Z of the ``m x n`` periodic square lattice at coupling ``K = beta J > 0``,
    zero field (Kaufman 1949). Differentiable in ``K``."""
    ell = jnp.arange(1, 2 * n)
    cosh_g = jnp.cosh(2 * K) / jnp.tanh(2 * K) - jnp.cos(jnp.pi * ell / n)
    # gamma_0 is signed (it changes sign at the critical point); the others are >= 0.
    gamma = jnp.concatenate([jnp.reshape(2 * K + jnp.log(jnp.tanh(K)), (1,)),
                             jnp.arccosh(cosh_g)])
    odd = 0.5 * m * gamma[1::2]
    even = 0.5 * m * gamma[0::2]
    terms = jnp.stack([jnp.sum(_log2cosh(odd)), jnp.sum(_log_abs_2sinh(odd)),
                       jnp.sum(_log2cosh(even)), jnp.sum(_log_abs_2sinh(even))])
    signs = jnp.stack([1.0, 1.0, 1.0, jnp.sign(even[0])]).astype(terms.dtype)
    return (-jnp.log(2.0) + 0.5 * m * n * jnp.log(2 * jnp.sinh(2 * K))
            + logsumexp(terms, b=signs))


@partial(jax.jit, static_argnums=(2, 3))
def _kaufman_derivatives(beta, J, m: int, n: int):
    """log Z and its first two derivatives in ``beta``; one compiled call
    (op-by-op autodiff would dispatch hundreds of tiny kernels)."""
    # An antiferromagnet on even sides maps onto the ferromagnet (flip a sublattice).
    f = lambda b: _kaufman_log_z(jnp.abs(b * J), m, n)
    return f(beta), jax.grad(f)(beta), jax.grad(jax.grad(f))(beta)


class Ising(Energy):
    """Nearest-neighbour Ising model: an :class:`energymc.Energy` over spins.

    Parameters
    ----------
    shape
        Lattice shape, e.g. ``(L,)``, ``(L, L)``, ``(L, L, L)``.
    beta
        Inverse temperature (>= 0).
    J
        Coupling (> 0 ferromagnetic).
    h
        Uniform external field.
    periodic
        Periodic (torus) boundaries; open otherwise.

    Notes
    -----
    Samples are arrays shaped ``shape`` of -1./+1. floats. The model offers
    ``gibbs`` an exact local-field path (:meth:`flip_energy_delta`, with a
    checkerboard colouring in :attr:`colors`), so a sweep costs a few
    vectorised operations rather than ``num_sites`` energy evaluations.

    Examples
    --------
    >>> import energymc as emc
    >>> model = emc.models.Ising((4, 4), beta=0.3)
    >>> round(model.log_z_exact(method="enumerate"), 3) == round(model.log_z_exact("kaufman"), 3)
    True
    """

    def __init__(self, shape, beta: float, J: float = 1.0, h: float = 0.0,
                 periodic: bool = True):
        if isinstance(shape, (int, np.integer)):
            shape = (int(shape),)
        try:
            shape = tuple(int(n) for n in shape)
        except TypeError as exc:
            raise EnergyError(f"Ising shape must be a tuple of ints; got {shape!r}.") from exc
        if not shape or min(shape) < 1:
            raise EnergyError(f"Ising shape must be non-empty with sides >= 1; got {shape}.")
        if periodic and min(shape) < 2:
            raise EnergyError(
                f"a periodic side of length 1 couples a spin to itself (shape {shape}); "
                "use sides >= 2 or periodic=False."
            )
        for name, value in (("beta", beta), ("J", J), ("h", h)):
            if not np.isscalar(value) or not np.isfinite(float(value)):
                raise EnergyError(f"Ising {name} must be a finite number; got {value!r}.")
        if float(beta) < 0:
            raise EnergyError(f"Ising beta must be >= 0; got {beta}.")
        self._shape, self._periodic = shape, bool(periodic)
        self._values = {"beta": float(beta), "J": float(J), "h": float(h)}
        # beta, J and h are params of the energy, not constants in it: sampling
        # a temperature sweep compiles once (see Energy._split).
        dtype = jnp.result_type(float)
        params = {k: jnp.asarray(v, dtype) for k, v in self._values.items()}
        energy_fn = static(_lattice_energy, shape, bool(periodic))
        super().__init__(BoundEnergy(energy_fn, params), init=jnp.ones(shape),
                         support="spin", name=f"ising{'x'.join(map(str, shape))}", check=False)
        #: Colour of every site (flat), ``(num_sites,)``: sites of a colour do not interact.
        self.colors = _colors(shape, periodic)

    # ---------------------------------------------------------------- fields
    shape = property(lambda self: self._shape)
    beta = property(lambda self: self._values["beta"])
    J = property(lambda self: self._values["J"])
    h = property(lambda self: self._values["h"])
    periodic = property(lambda self: self._periodic)
    num_sites = property(lambda self: self.dim)

    def with_beta(self, beta: float) -> Ising:
        """The same lattice at another inverse temperature."""
        return Ising(self.shape, beta, self.J, self.h, self.periodic)

    # ----------------------------------------------------------- observables
    def hamiltonian(self, s):
        """``H(s)`` (without ``beta``) for spins ``(..., *shape)``; returns ``(...,)``."""
        return _hamiltonian(self.shape, self.periodic, jnp.asarray(s), self.J, self.h)

    def magnetization(self, s):
        """Mean spin for ``(..., *shape)``; returns ``(...,)``."""
        s = jnp.asarray(s)
        return jnp.mean(s, axis=tuple(range(s.ndim - len(self.shape), s.ndim)))

    def local_field(self):
        """The exact local field for ``gibbs``: ``(flip_energy_delta, colors)``."""
        return self.flip_energy_delta, self.colors

    def flip_energy_delta(self, z):
        """``E(z with site i flipped) - E(z)`` for every site; ``(dim,) -> (dim,)``."""
        # Inside compiled code the params are the traced ones bound to this
        # copy of the model, so read them from the energy, not self.beta.
        p = self.fn.params
        s = z.reshape(self.shape)
        field = p["J"] * _neighbour_sum(self.periodic, s) + p["h"]
        return (2.0 * p["beta"] * s * field).reshape(-1)

    # ---------------------------------------------------------- exact values
    def _kaufman_ok(self) -> str | None:
        if len(self.shape) != 2 or not self.periodic:
            return "Kaufman's formula needs a 2-d periodic lattice"
        if self.h != 0.0:
            return "Kaufman's formula needs zero field (h=0)"
        if self.J * self.beta <= 0 and not (self.J < 0 and all(n % 2 == 0 for n in self.shape)):
            return "Kaufman's formula needs beta*J > 0 (or J < 0 on even sides)"
        return None

    def _method(self, method: str) -> str:
        if method not in ("auto", "enumerate", "kaufman"):
            raise EnergyError(
                f"method must be 'auto', 'enumerate' or 'kaufman'; got {method!r}.")
        why = self._kaufman_ok()
        if method == "kaufman" and why:
            raise EnergyError(f"{why}; this model has shape {self.shape}, periodic="
                              f"{self.periodic}, h={self.h}. Use method='enumerate' for "
                              f"<= {exact.MAX_DIM} spins.")
        if method == "auto":
            if why is None and self.beta > 0:
                return "kaufman"
            if self.dim > exact.MAX_DIM:
                raise EnergyError(
                    f"no exact log Z for this Ising model: {why} and its {self.dim} spins are "
                    f"too many to enumerate (limit {exact.MAX_DIM}). Estimate it with "
                    "emc.log_partition(model, method='ais').")
            return "enumerate"
        return method

    def _kaufman(self):
        m, n = self.shape
        dtype = jnp.result_type(float)
        return _kaufman_derivatives(jnp.asarray(self.beta, dtype), jnp.asarray(self.J, dtype),
                                    m, n)

    def log_z_exact(self, method: str = "auto") -> float:
        """Exact ``log Z = log sum_s exp(-beta H(s))``.

        Parameters
        ----------
        method
            ``"enumerate"`` (any lattice and field, up to 24 spins),
            ``"kaufman"`` (2-d periodic, h = 0, any size) or ``"auto"``
            (Kaufman where it applies, else enumeration).
        """
        method = self._method(method)
        if method == "kaufman":
            return float(self._kaufman()[0])
        return exact.log_partition(self)

    def exact_thermodynamics(self, method: str = "auto") -> dict:
        """Exact per-site thermodynamics of this finite lattice.

        Returns
        -------
        dict
            ``log_z``; ``energy`` (``<H> / N``); ``heat_capacity``
            (``beta^2 Var(H) / N``); with enumeration also ``abs_magnetization``
            (``<|m|>``) and ``magnetization_sq`` (``<m^2>``). Kaufman's values
            come from derivatives of log Z in ``beta`` (automatic
            differentiation).
        """
        method = self._method(method)
        n = self.dim
        if method == "kaufman":
            log_z, d1, d2 = self._kaufman()
            return {"log_z": float(log_z), "energy": float(-d1 / n),
                    "heat_capacity": float(self.beta**2 * d2 / n)}
        log_z = exact.log_partition(self)

        def moments(s):
            e = self.hamiltonian(s)
            m = self.magnetization(s)
            return jnp.stack([e, e * e, jnp.abs(m), m * m])

        e1, e2, am, m2 = (float(v) for v in exact.expectation(self, moments))
        return {"log_z": log_z, "energy": e1 / n,
                "heat_capacity": self.beta**2 * (e2 - e1 * e1) / n,
                "abs_magnetization": am, "magnetization_sq": m2}

    def __repr__(self) -> str:
        return (f"Ising(shape={self.shape}, beta={self.beta}, J={self.J}, h={self.h}, "
                f"periodic={self.periodic})")
