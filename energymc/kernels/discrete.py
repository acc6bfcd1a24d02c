"""Kernels for binary ({0, 1}) and spin ({-1, +1}) states.

Three methods, written to the same pure single-chain contract as the BlackJAX
wrappers (:class:`energymc._base.Kernel`), so :func:`energymc.sample`, ``Run``
and the ArviZ export treat them like any other:

``gibbs``
    Single-site heat-bath Gibbs. One step is one sweep: every site is updated
    once, in a fixed order (``scan="systematic"``) or a fresh random order each
    sweep (``scan="random"``). Each update flips site ``i`` with probability
    ``sigmoid(log p(x with i flipped) - log p(x))``, computed from the energy
    difference. ``acceptance_rate`` is the fraction of sites that flipped.
``gwg``
    Gibbs-with-Gradients (Grathwohl, Swersky, Hashemi, Duvenaud and Maddison,
    2021): propose flipping one site drawn from ``softmax(d/2)``, where
    ``d_i = grad_i log p(x) * (x'_i - x_i)`` is the first-order estimate of the
    change in ``log p`` from flipping site ``i``; Metropolis-Hastings corrects.
``dmala``
    Discrete Metropolis-adjusted Langevin (Zhang, Liu, Liu and Liu, 2022):
    every site flips independently with probability
    ``sigmoid(grad_i log p(x) * (x'_i - x_i) / 2 - 1 / (2 * step_size))``;
    Metropolis-Hastings corrects. Warmup tunes ``step_size`` by dual averaging
    toward ``target_accept`` (0.574, the optimum Sun, Dai and Schuurmans 2023
    derive for locally balanced proposals of this kind).

The kernels need to know whether the states are binary or spin (a site's other
value is ``1 - x`` or ``-x``). They are told, never guess: the option
``support="binary"`` or ``"spin"`` (:func:`energymc.sample`, the log Z
estimators and the learners fill it in), or the target's
:class:`energymc._base.KernelFacts` handed over by
:meth:`~energymc._base.Kernel.bind_target`.

A target may offer an exact local-field fast path for ``gibbs``
(:meth:`energymc.Energy.local_field`, carried in the ``KernelFacts``):
``flip_energy_delta(z) -> (dim,)`` giving ``E(z with site i flipped) - E(z)``
for every site at once, and ``colors``, an integer array ``(dim,)`` such that
sites of one colour do not interact (a graph colouring; e.g. the checkerboard
of a square lattice). Sites of one colour are conditionally independent, so
updating a whole colour class at once is exactly a sequence of single-site
updates; a sweep then costs one ``flip_energy_delta`` per colour instead of
``dim`` energy evaluations. :class:`energymc.models.Ising` provides it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from blackjax.adaptation.step_size import dual_averaging_adaptation

from energymc._base import Kernel, KernelFacts, WarmupResult
from energymc._random import uniform
from energymc.errors import OptionError
from energymc.kernels import register
from energymc.progress import tick_interval

__all__ = ["GibbsState", "GradientState", "GIBBS", "GWG", "DMALA"]

_DISCRETE = ("binary", "spin")


class GibbsState(NamedTuple):
    """State of ``gibbs``.

    Attributes
    ----------
    position
        ``(dim,)`` current state (floats 0./1. or -1./+1.).
    logdensity
        ``()`` ``-E(position)``.
    """

    position: jax.Array
    logdensity: jax.Array


class GradientState(NamedTuple):
    """State of ``gwg`` and ``dmala``.

    Attributes
    ----------
    position
        ``(dim,)`` current state.
    logdensity
        ``()`` ``-E(position)``.
    logdensity_grad
        ``(dim,)`` gradient of ``-E`` (of its continuous extension) at ``position``.
    """

    position: jax.Array
    logdensity: jax.Array
    logdensity_grad: jax.Array


# --------------------------------------------------------------------------
# What the kernels know about the target: given, never discovered.
# --------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, eq=False)
class _DiscreteKernel(Kernel):
    """What the discrete kernels share: the target's facts, given by the caller.

    ``facts`` is ``None`` in the registered kernel; :meth:`bind_target`
    returns a copy that carries them (the support, and for ``gibbs`` an exact
    local field). A kernel driven by hand with a plain function takes the
    support from the ``support`` option instead.
    """

    facts: KernelFacts | None = None

    def bind_target(self, facts: KernelFacts) -> Kernel:
        return dataclasses.replace(self, facts=facts)

    def _support(self, options) -> str:
        support = dict(options).get("support")
        if support is None and self.facts is not None:
            support = self.facts.support
        if support not in _DISCRETE:
            raise OptionError(
                "discrete kernels need to know whether states are binary (0/1) or spin (-1/+1). "
                "Sample an emc.Energy(..., support='binary' or 'spin') with emc.sample, or pass "
                "support='binary'/'spin' in options when calling the kernel directly "
                f"(got {support!r})."
            )
        return support


def _other(z, support):
    """Every site's other value: ``(dim,) -> (dim,)``."""
    return 1.0 - z if support == "binary" else -z


def _finite_or_zero(x):
    return jnp.where(jnp.isfinite(x), x, 0.0)


# --------------------------------------------------------------------------
# Gibbs
# --------------------------------------------------------------------------
def _gibbs_sweep_generic(key, state, logdensity_fn, support, scan):
    """``dim`` sequential heat-bath updates, each from one energy difference."""
    z0 = state.position
    dim = z0.shape[0]
    order_key, u_key = jax.random.split(key)
    order = (jax.random.permutation(order_key, dim) if scan == "random"
             else jnp.arange(dim))
    u = jax.random.uniform(u_key, (dim,), dtype=z0.dtype)

    def body(k, carry):
        z, lp, flips, bad = carry
        i = order[k]
        z_new = z.at[i].set(_other(z[i], support))
        lp_new = logdensity_fn(z_new)
        # sigmoid(lp_new - lp) is the heat-bath probability of the flipped value.
        # A non-finite energy there (NaN reads as -inf) gets probability 0 and is
        # counted as trouble, as the Metropolis kernels count such proposals.
        ok = jnp.isfinite(lp_new)
        p = _finite_or_zero(jnp.where(ok, jax.nn.sigmoid(lp_new - lp), 0.0))
        flip = u[k] < p
        return (jnp.where(flip, z_new, z), jnp.where(flip, lp_new, lp),
                flips + flip, bad | ~ok)

    z, lp, flips, bad = jax.lax.fori_loop(
        0, dim, body, (z0, state.logdensity, jnp.zeros((), jnp.int32), jnp.zeros((), bool)))
    return GibbsState(z, lp), flips, bad


def _gibbs_sweep_colored(key, state, logdensity_fn, support, scan, delta_fn, colors):
    """One sweep as one parallel heat-bath update per colour class."""
    z0 = state.position
    dim = z0.shape[0]
    num_colors = int(colors.max()) + 1
    masks = jnp.asarray(np.stack([colors == c for c in range(num_colors)]))
    order_key, u_key = jax.random.split(key)
    order = (jax.random.permutation(order_key, num_colors) if scan == "random"
             else jnp.arange(num_colors))
    u = uniform(u_key, (num_colors, dim), z0.dtype)  # the cheaper stream: see energymc._random

    def body(carry, k):
        z, flips, bad = carry
        d_energy = delta_fn(z)
        ok = jnp.isfinite(d_energy)
        p = jnp.where(ok, jax.nn.sigmoid(-d_energy), 0.0)
        flip = masks[order[k]] & (u[k] < p)
        z = jnp.where(flip, _other(z, support), z)
        return (z, flips + jnp.sum(flip), bad | jnp.any(~ok & masks[order[k]])), None

    (z, flips, bad), _ = jax.lax.scan(
        body, (z0, jnp.zeros((), jnp.int32), jnp.zeros((), bool)), jnp.arange(num_colors))
    return GibbsState(z, logdensity_fn(z)), flips, bad


@dataclasses.dataclass(frozen=True, eq=False)
class GibbsKernel(_DiscreteKernel):
    """Single-site Gibbs (heat bath). One step = one sweep of ``dim`` site updates.

    Options: ``scan`` (``"random"``: a fresh random order every sweep;
    ``"systematic"``: sites in index order, or colour classes in order on the
    fast path), ``support`` (only when the kernel is driven by hand).
    """

    name: str = "gibbs"
    supports: tuple = _DISCRETE
    defaults: Mapping = dataclasses.field(default_factory=lambda: MappingProxyType(
        {"scan": "random", "support": None}))

    def _scan(self, options) -> str:
        scan = dict(options)["scan"]
        if scan not in ("random", "systematic"):
            raise OptionError(f"gibbs: scan must be 'random' or 'systematic'; got {scan!r}.")
        return scan

    def _local_field(self):
        """``(flip_energy_delta, colors)`` when the target gave an exact local field."""
        facts = self.facts
        if facts is None or facts.flip_energy_delta is None or facts.colors is None:
            return None
        return facts.flip_energy_delta, np.asarray(facts.colors)

    def init(self, key, position, logdensity_fn, params, options):
        self._support(options)
        return GibbsState(position, logdensity_fn(position))

    def step(self, key, state, logdensity_fn, params, options):
        support = self._support(options)
        scan = self._scan(options)
        fast = self._local_field()
        if fast is None:
            new, flips, bad = _gibbs_sweep_generic(key, state, logdensity_fn, support, scan)
        else:
            new, flips, bad = _gibbs_sweep_colored(key, state, logdensity_fn, support, scan, *fast)
        dim = state.position.shape[0]
        rate = flips.astype(state.position.dtype) / dim
        return new, {"lp": new.logdensity, "acceptance_rate": rate, "diverging": bad}

    def warmup(self, key, position, logdensity_fn, num_steps, options, tick=None):
        return _burn_in(self, key, position, logdensity_fn, num_steps, options, tick)

    def default_params(self, dim, options):
        return {}


def _burn_in(kernel, key, position, logdensity_fn, num_steps, options, tick=None):
    """Warmup for kernels with nothing to tune: plain steps (``tick`` reports progress)."""
    init_key, key = jax.random.split(key)
    state = kernel.init(init_key, position, logdensity_fn, {}, options)
    every = tick_interval(num_steps)

    def body(state, xs):
        k, i = xs
        if tick is not None:
            # The step counter is not batched under vmap: one report per step.
            tick(i, every)
        state, stats = kernel.step(k, state, logdensity_fn, {}, options)
        return state, stats["acceptance_rate"]

    state, acc = jax.lax.scan(body, state, (jax.random.split(key, num_steps),
                                            jnp.arange(num_steps)))
    return WarmupResult(state, {}, {"acceptance_rate": acc})


# --------------------------------------------------------------------------
# Gradient-informed proposals (GWG, DMALA)
# --------------------------------------------------------------------------
def _gradient_state(position, logdensity_fn) -> GradientState:
    lp, grad = jax.value_and_grad(logdensity_fn)(position)
    return GradientState(position, lp, grad)


def _mh_select(key, state, proposal, log_ratio):
    """Metropolis-Hastings accept; any non-finite quantity is a counted rejection."""
    trouble = ~(jnp.isfinite(log_ratio) & jnp.isfinite(proposal.logdensity)
                & jnp.all(jnp.isfinite(proposal.logdensity_grad)))
    log_ratio = jnp.where(trouble, -jnp.inf, log_ratio)
    acc = jnp.exp(jnp.minimum(log_ratio, 0.0))
    accept = jnp.log(jax.random.uniform(key, dtype=acc.dtype)) < log_ratio
    new = jax.tree.map(lambda a, b: jnp.where(accept, a, b), proposal, state)
    return new, acc, trouble


def _sample_index(key, logits):
    """One index drawn from ``softmax(logits)`` ``(dim,)``, by inverting the CDF.

    Not ``jax.random.categorical``: its Gumbel trick draws and takes two logs of
    ``dim`` uniforms per call, which on CPU costs several times the gradient
    of a 64x64 Ising energy; one uniform and a cumulative sum do.
    """
    cdf = jnp.cumsum(jax.nn.softmax(logits))
    u = jax.random.uniform(key, dtype=cdf.dtype) * cdf[-1]
    return jnp.minimum(jnp.searchsorted(cdf, u, side="right"), logits.shape[0] - 1)


def _gwg_one(key, state, logdensity_fn, support):
    z, lp, g = state
    site_key, acc_key = jax.random.split(key)
    # d_i: first-order estimate of log p(flip_i z) - log p(z).
    fwd_logits = 0.5 * g * (_other(z, support) - z)
    i = _sample_index(site_key, fwd_logits)
    z_new = z.at[i].set(_other(z[i], support))
    prop = _gradient_state(z_new, logdensity_fn)
    rev_logits = 0.5 * prop.logdensity_grad * (_other(z_new, support) - z_new)
    log_q_fwd = jax.nn.log_softmax(fwd_logits)[i]
    log_q_rev = jax.nn.log_softmax(rev_logits)[i]
    log_ratio = prop.logdensity - lp + log_q_rev - log_q_fwd
    return _mh_select(acc_key, state, prop, log_ratio)


@dataclasses.dataclass(frozen=True, eq=False)
class GWGKernel(_DiscreteKernel):
    """Gibbs-with-Gradients: one gradient-informed single-site flip, MH-corrected.

    Options: ``num_updates`` (proposals per step, default 1; ``dim`` gives a
    sweep's worth), ``support`` (only when the kernel is driven by hand).
    """

    name: str = "gwg"
    supports: tuple = _DISCRETE
    defaults: Mapping = dataclasses.field(default_factory=lambda: MappingProxyType(
        {"num_updates": 1, "support": None}))

    def init(self, key, position, logdensity_fn, params, options):
        self._support(options)
        return _gradient_state(position, logdensity_fn)

    def step(self, key, state, logdensity_fn, params, options):
        support = self._support(options)
        n = dict(options)["num_updates"]
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise OptionError(f"gwg: num_updates must be an integer >= 1; got {n!r}.")

        def body(state, k):
            state, acc, bad = _gwg_one(k, state, logdensity_fn, support)
            return state, (acc, bad)

        state, (acc, bad) = jax.lax.scan(body, state, jax.random.split(key, int(n)))
        return state, {"lp": state.logdensity, "acceptance_rate": jnp.mean(acc),
                       "diverging": jnp.any(bad)}

    def warmup(self, key, position, logdensity_fn, num_steps, options, tick=None):
        return _burn_in(self, key, position, logdensity_fn, num_steps, options, tick)

    def default_params(self, dim, options):
        return {}


def _dmala_flip_logits(state, step_size, support):
    """``(dim,)`` log-odds that each site flips; the squared flip distance
    (1 for binary, 4 for spin) is scaled out of ``step_size``."""
    z, _, g = state
    return 0.5 * g * (_other(z, support) - z) - 0.5 / step_size


def _clip_step(step_size):
    # On easy targets acceptance stays above target even as step_size -> inf
    # (the proposal tends to the pure gradient-softmax one); dual averaging would
    # then run off to overflow. Past ~1e3 the 1/(2 step_size) term is negligible.
    return jnp.clip(step_size, 1e-4, 1e3)


def _dmala_one(key, state, logdensity_fn, step_size, support):
    flip_key, acc_key = jax.random.split(key)
    fwd = _dmala_flip_logits(state, step_size, support)
    flip = jax.random.bernoulli(flip_key, jax.nn.sigmoid(fwd))
    z_new = jnp.where(flip, _other(state.position, support), state.position)
    prop = _gradient_state(z_new, logdensity_fn)
    rev = _dmala_flip_logits(prop, step_size, support)
    # Reverse move flips the same sites back and leaves the others.
    log_q = lambda logits: jnp.sum(jnp.where(flip, jax.nn.log_sigmoid(logits),
                                             jax.nn.log_sigmoid(-logits)))
    log_ratio = prop.logdensity - state.logdensity + log_q(rev) - log_q(fwd)
    return _mh_select(acc_key, state, prop, log_ratio)


@dataclasses.dataclass(frozen=True, eq=False)
class DMALAKernel(_DiscreteKernel):
    """Discrete Langevin (DMALA): parallel gradient-informed flips, MH-corrected.

    Options: ``target_accept`` (default 0.574), ``step_size`` (initial value
    for warmup, or the value used with ``adapt=False``; default 0.2 in warmup),
    ``support`` (only when the kernel is driven by hand).
    """

    name: str = "dmala"
    supports: tuple = _DISCRETE
    defaults: Mapping = dataclasses.field(default_factory=lambda: MappingProxyType(
        {"target_accept": 0.574, "step_size": None, "support": None}))

    def init(self, key, position, logdensity_fn, params, options):
        self._support(options)
        return _gradient_state(position, logdensity_fn)

    def step(self, key, state, logdensity_fn, params, options):
        support = self._support(options)
        step_size = params["step_size"]
        new, acc, bad = _dmala_one(key, state, logdensity_fn, step_size, support)
        return new, {"lp": new.logdensity, "acceptance_rate": acc, "diverging": bad,
                     "step_size": step_size}

    def warmup(self, key, position, logdensity_fn, num_steps, options, tick=None):
        opts = dict(options)
        support = self._support(options)
        every = tick_interval(num_steps)
        target = opts["target_accept"]
        if not 0.0 < float(target) < 1.0:
            raise OptionError(f"dmala: target_accept must be in (0, 1); got {target!r}.")
        start = 0.2 if opts["step_size"] is None else float(opts["step_size"])
        da_init, da_update, da_final = dual_averaging_adaptation(float(target))
        state = _gradient_state(position, logdensity_fn)
        da = da_init(jnp.asarray(start, position.dtype))

        def body(carry, k):
            state, da = carry
            if tick is not None:
                tick(da.step, every)  # the dual-averaging counter, shared by all chains
            step_size = _clip_step(jnp.exp(da.log_step_size))
            state, acc, _ = _dmala_one(k, state, logdensity_fn, step_size, support)
            da = da_update(da, _finite_or_zero(acc))
            return (state, da), (acc, step_size)

        (state, da), (acc, sizes) = jax.lax.scan(body, (state, da),
                                                 jax.random.split(key, num_steps))
        params = {"step_size": _clip_step(jnp.asarray(da_final(da), position.dtype))}
        return WarmupResult(state, params, {"acceptance_rate": acc, "step_size": sizes})

    def default_params(self, dim, options):
        return {"step_size": jnp.asarray(dict(options)["step_size"], jnp.result_type(float))}


GIBBS = register(GibbsKernel())
GWG = register(GWGKernel())
DMALA = register(DMALAKernel())
