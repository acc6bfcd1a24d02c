"""Markov chains on a learner's current model: a named kernel's steps and its adapted step.

Shared by the learners that draw from the model they fit: CD's negative phase
and the model-following component of NCE's default noise. Pure JAX.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from energymc._util import langevin_mh_acceptance
from energymc.learn._driver import scan

__all__ = ["adapt_init", "adapted_step", "run_kernel"]


def adapt_init(data, step_size: float | None, data_metric: bool) -> dict:
    """The adapted step's state: its log and, with ``data_metric``, the data's variances.

    The initial step is ``step_size`` if given, else ``0.5 d^(-1/3)`` in
    units of the metric (MALA's optimal step shrinks as ``d^(-1/3)``); a few
    updates of :func:`adapted_step` correct it.

    Parameters
    ----------
    data
        ``(n, *event)`` training points.
    """
    flat = data.reshape(data.shape[0], -1)
    dim = flat.shape[1]
    start = 0.5 * dim ** (-1.0 / 3.0) if step_size is None else step_size
    extra = {"log_step": jnp.log(jnp.asarray(start, data.dtype))}
    if data_metric:
        var = jnp.var(flat, axis=0)
        # Constant coordinates get the average variance, never zero.
        floor = 1e-3 * jnp.mean(var) + 1e-8
        extra["metric"] = jnp.maximum(var, floor)
    return extra


def adapted_step(extra: dict, acc, target: float) -> dict:
    """One Robbins-Monro step of ``extra["log_step"]`` toward the acceptance ``target``.

    ``log h <- log h + (acc - target)``, with ``acc`` the mean acceptance
    over all chains and steps of this update (hundreds of proposals, so
    little noise). A constant gain keeps tracking the model as it moves,
    which a decaying gain (dual averaging's) would not. For MALA the
    acceptance falls from 1 to 0 over about two units of ``log h``, so one
    update removes most of the error without overshooting.
    """
    ok = jnp.isfinite(acc)
    delta = jnp.where(ok, acc - target, 0.0)
    log_step = jnp.clip(extra["log_step"] + delta, -25.0, 5.0)
    return {**extra, "log_step": jax.lax.stop_gradient(log_step).astype(
        extra["log_step"].dtype)}


def run_kernel(key, kernel, options, energy: Callable, x0, extra: dict, k: int,
               unroll: bool = False):
    """``k`` steps of ``kernel`` on ``exp(-energy)`` from every row of ``x0``.

    Parameters
    ----------
    key
        A ``jax.random.key``.
    kernel, options
        An energymc kernel (``energymc.kernels.get(name)``) and its resolved
        options; ``extra["log_step"]`` and ``extra["metric"]``, when present,
        replace its step size and inverse mass matrix.
    energy
        ``energy(z) -> scalar`` for one point of the event shape.
    x0
        ``(n, *event)`` starting points.
    k
        Steps per chain.
    unroll
        Unroll the steps' loop (see ``CD(unroll=)``).

    Returns
    -------
    tuple
        ``(x, acceptance, diverging)``: ``(n, *event)`` ends, the mean
        acceptance over chains and steps, the share of chains that diverged.
        For unadjusted Langevin the acceptance is the one a Metropolis step
        would have had (the MALA ratio of each move): not used to reject, it
        measures how far the step is from leaving ``exp(-E)`` invariant.
    """
    batch, event = x0.shape[0], x0.shape[1:]
    dim = int(np.prod(event))
    kparams = kernel.default_params(dim, options)
    if "log_step" in extra:
        kparams = {**kparams, "step_size": jnp.exp(extra["log_step"]).astype(x0.dtype)}
    if "metric" in extra:
        kparams = {**kparams, "inverse_mass_matrix": extra["metric"].astype(x0.dtype)}
    unadjusted = kernel.name == "langevin"

    def logdensity(z):
        lp = -energy(z.reshape(event))
        return jnp.where(jnp.isnan(lp), -jnp.inf, lp)  # NaN energy: a rejected move

    def chain(key, z):
        k_init, k_steps = jax.random.split(key)
        state = kernel.init(k_init, z, logdensity, kparams, options)

        def one(s, kk):
            new, st = kernel.step(kk, s, logdensity, kparams, options)
            acc = st["acceptance_rate"]
            if unadjusted:
                acc = jnp.where(st["diverging"], 0.0, langevin_mh_acceptance(
                    s, new, kparams["step_size"], kparams["inverse_mass_matrix"]))
            return new, (acc.astype(x0.dtype), st["diverging"])

        state, (acc, div) = scan(one, state, jax.random.split(k_steps, k), unroll=unroll)
        return state.position, jnp.mean(acc), jnp.any(div)

    flat = x0.reshape(batch, dim)
    pos, acc, div = jax.vmap(chain)(jax.random.split(key, batch), flat)
    return pos.reshape(x0.shape), jnp.mean(acc), jnp.mean(div.astype(x0.dtype))
