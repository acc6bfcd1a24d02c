"""Hopfield networks: the classical binary network and the modern continuous one.

Classical (Hopfield 1982): spins ``s`` in {-1, +1}^N, Hebbian weights
``W = (1/N) sum_mu xi^mu xi^mu^T`` with zero diagonal, energy
``E(s) = -1/2 s^T W s - theta.s``. Stored patterns are (near) local minima;
zero-temperature asynchronous dynamics ``s_i <- sign((W s)_i + theta_i)`` never
raises ``E`` and so ends in one. At inverse temperature ``beta`` the same
network is the Boltzmann distribution ``exp(-beta E(s))``, which energymc samples.

Modern (Ramsauer et al. 2020, "Hopfield Networks is All You Need"): continuous
states ``xi`` in R^d, stored patterns ``X`` (N, d),
``E(xi) = -lse(beta, X xi) + 1/2 xi.xi + log(N) / beta + M^2 / 2`` with
``lse(beta, z) = log(sum_i exp(beta z_i)) / beta`` and ``M`` the largest
pattern norm. Its concave-convex update ``xi <- X^T softmax(beta X xi)`` is the
attention update with queries ``xi``, keys and values ``X``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from energymc._util import as_key, renamed, static
from energymc.energy import Energy
from energymc.errors import EnergyError

__all__ = ["Hopfield", "ModernHopfield"]


def _as_patterns(patterns, spins: bool) -> jax.Array:
    arr = np.asarray(patterns, dtype=float)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise EnergyError(f"patterns must be an array (num_patterns, dim); got shape {arr.shape}.")
    if spins and not np.isin(arr, (-1.0, 1.0)).all():
        raise EnergyError("Hopfield patterns must be spins (-1/+1); map 0/1 data with 2*x - 1.")
    if not np.isfinite(arr).all():
        raise EnergyError("patterns contain NaN or inf.")
    return jnp.asarray(arr, dtype=jnp.result_type(float))


def _tempered_energy(net, beta, s):
    """``beta * E(s)`` of a Hopfield network; wrapped as ``static(_tempered_energy, net, beta)``."""
    return beta * net.energy(s)


class Hopfield:
    """Classical binary Hopfield network with Hebbian storage.

    Parameters
    ----------
    patterns
        ``(num_patterns, N)`` spin patterns (-1/+1) to store.
    threshold
        Optional ``(N,)`` bias ``theta`` (default 0).

    Attributes
    ----------
    weights
        ``(N, N)`` Hebbian weights, zero diagonal.
    patterns
        ``(num_patterns, N)``.

    Examples
    --------
    >>> import numpy as np
    >>> from energymc.models import Hopfield
    >>> rng = np.random.default_rng(0)
    >>> xi = rng.choice([-1.0, 1.0], size=(3, 100))
    >>> net = Hopfield(xi)
    >>> probe = xi[0].copy(); probe[:10] *= -1          # corrupt 10 bits
    >>> bool((net.recall(probe) == xi[0]).all())
    True
    """

    def __init__(self, patterns, threshold=None):
        self.patterns = _as_patterns(patterns, spins=True)
        n = self.patterns.shape[1]
        w = self.patterns.T @ self.patterns / n
        self.weights = w - jnp.diag(jnp.diag(w))
        self.threshold = (jnp.zeros((n,), self.weights.dtype) if threshold is None
                          else jnp.asarray(threshold, self.weights.dtype).reshape(n))
        self._targets: dict = {}

    @property
    def num_units(self) -> int:
        return int(self.patterns.shape[1])

    def energy(self, s):
        """``E(s) = -1/2 s^T W s - theta.s`` for ``s`` ``(..., N)``; returns ``(...,)``."""
        s = jnp.asarray(s)
        return -0.5 * jnp.sum((s @ self.weights) * s, axis=-1) - s @ self.threshold

    def local_field(self, s):
        """``W s + theta`` ``(..., N)``: flipping ``s_i`` changes ``E`` by ``2 s_i field_i``."""
        return jnp.asarray(s) @ self.weights + self.threshold

    def target(self, beta: float = 1.0) -> Energy:
        """The Boltzmann distribution ``exp(-beta E(s))`` as a spin :class:`energymc.Energy`."""
        if not np.isfinite(beta) or beta < 0:
            raise EnergyError(f"beta must be a finite number >= 0; got {beta!r}.")
        # One Energy per beta, so repeated calls reuse compiled samplers (a new
        # energy function object would compile afresh).
        if float(beta) not in self._targets:
            self._targets[float(beta)] = Energy(
                static(_tempered_energy, self, float(beta)), init=self.patterns[0], support="spin",
                name=f"hopfield{self.num_units}", check=False)
        return self._targets[float(beta)]

    def _check_probe(self, probe):
        probe = jnp.asarray(probe, dtype=self.weights.dtype)
        if probe.shape[-1] != self.num_units:
            raise EnergyError(f"probe must have last axis {self.num_units}; got {probe.shape}.")
        return probe

    def recall(self, probe, beta: float | None = None, seed=None, max_sweeps: int = 100, *,
               key=None):
        """Retrieve a pattern from ``probe`` by asynchronous dynamics.

        Parameters
        ----------
        probe
            ``(N,)`` or ``(batch, N)`` spin states (e.g. corrupted patterns).
        beta
            ``None``: zero temperature; sweep ``s_i <- sign(field_i)`` (ties
            keep ``s_i``) in index order until nothing changes or
            ``max_sweeps``. A number: heat-bath (Glauber) sampling at that
            inverse temperature for ``max_sweeps`` sweeps, site ``i`` set to +1
            with probability ``sigmoid(2 beta field_i)``; needs ``seed``.
        seed
            An int or a ``jax.random.key`` (finite ``beta`` only; ``key=`` is
            its deprecated name).
        max_sweeps
            Sweep limit.

        Returns
        -------
        jax.Array
            Same shape as ``probe``: the final states.
        """
        probe = self._check_probe(probe)
        seed = renamed("key", "seed", key, seed)
        if beta is not None and seed is None:
            raise EnergyError("recall at a finite temperature (beta=...) needs seed=.")
        key = None if seed is None else as_key(seed)
        fn = jax.vmap(lambda p, k: _recall_one(self.weights, self.threshold, p, k, beta,
                                                int(max_sweeps)))
        batch = probe.reshape(-1, self.num_units)
        keys = (jax.random.split(jax.random.key(0), batch.shape[0]) if key is None
                else jax.random.split(key, batch.shape[0]))
        return fn(batch, keys).reshape(probe.shape)

    def overlap(self, s):
        """Overlap ``m_mu = xi^mu.s / N`` with every stored pattern: ``(..., num_patterns)``."""
        return jnp.asarray(s) @ self.patterns.T / self.num_units


def _recall_one(weights, threshold, s, key, beta, max_sweeps):
    n = s.shape[0]

    def sweep(s, key):
        u = jax.random.uniform(key, (n,), dtype=s.dtype)

        def site(i, s):
            field = weights[i] @ s + threshold[i]
            if beta is None:
                new = jnp.where(field > 0, 1.0, jnp.where(field < 0, -1.0, s[i]))
            else:
                new = jnp.where(u[i] < jax.nn.sigmoid(2.0 * beta * field), 1.0, -1.0)
            return s.at[i].set(new.astype(s.dtype))

        return jax.lax.fori_loop(0, n, site, s)

    def cond(carry):
        s, prev, t, _ = carry
        changed = jnp.any(s != prev) | (t == 0)
        return (t < max_sweeps) & (changed if beta is None else True)

    def body(carry):
        s, _, t, key = carry
        key, sub = jax.random.split(key)
        return sweep(s, sub), s, t + 1, key

    s, _, _, _ = jax.lax.while_loop(cond, body, (s, s, 0, key))
    return s


class ModernHopfield:
    """Modern continuous Hopfield network (Ramsauer et al. 2020).

    Parameters
    ----------
    patterns
        ``(N, d)`` stored patterns (rows).
    beta
        Inverse temperature of the log-sum-exp (> 0); large ``beta`` retrieves
        single patterns, small ``beta`` averages them (metastable states).

    Examples
    --------
    >>> import numpy as np
    >>> from energymc.models import ModernHopfield
    >>> X = np.random.default_rng(0).normal(size=(5, 16))
    >>> net = ModernHopfield(X, beta=8.0)
    >>> bool(np.allclose(net.update(X[2] + 0.1), X[2], atol=1e-3))
    True
    """

    def __init__(self, patterns, beta: float = 1.0):
        self.patterns = _as_patterns(patterns, spins=False)
        if not np.isfinite(beta) or beta <= 0:
            raise EnergyError(f"beta must be a finite number > 0; got {beta!r}.")
        self.beta = float(beta)
        self._max_norm_sq = float(jnp.max(jnp.sum(self.patterns**2, axis=-1)))

    def energy(self, xi):
        """``E(xi)`` for states ``(..., d)``; returns ``(...,)``. Bounded below by 0."""
        xi = jnp.asarray(xi)
        n = self.patterns.shape[0]
        lse = logsumexp(self.beta * (xi @ self.patterns.T), axis=-1) / self.beta
        return (-lse + 0.5 * jnp.sum(xi * xi, axis=-1) + math.log(n) / self.beta
                + 0.5 * self._max_norm_sq)

    def update(self, xi):
        """One retrieval step ``X^T softmax(beta X xi)`` for ``(..., d)`` states.

        Equal to ``jax.nn.dot_product_attention(xi, X, X, scale=beta)`` with
        the states as queries and the stored patterns as keys and values.
        """
        xi = jnp.asarray(xi)
        return jax.nn.softmax(self.beta * (xi @ self.patterns.T), axis=-1) @ self.patterns

    def retrieve(self, xi, steps: int = 1):
        """``steps`` updates from ``xi`` ``(..., d)``; each never raises the energy."""
        for _ in range(int(steps)):
            xi = self.update(xi)
        return xi

    def target(self, init=None) -> Energy:
        """``exp(-E(xi))`` as a continuous :class:`energymc.Energy` (sample with ``nuts``)."""
        x0 = self.patterns[0] if init is None else jnp.asarray(init)
        return Energy(self.energy, init=x0, name="modern_hopfield")
