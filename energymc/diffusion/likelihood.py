"""Exact log-likelihood through the probability-flow ODE.

The ODE ``dx/dt = f(t) x - 1/2 g(t)^2 s(x, t)`` with ``s = -grad_x E(x,
sigma(t))`` moves the noised densities into one another (Song et al. 2021), so
along a path from a data point ``x`` at ``t_min`` to ``x_1`` at ``t = 1``::

    log p_{t_min}(x) = log p_1(x_1) + int_{t_min}^1 div v(x_t, t) dt,
    div v = f(t) d + 1/2 g(t)^2 tr(hess_x E).

``p_1`` is the schedule's Gaussian prior. The trace is exact (``d``
forward-over-reverse products, for small ``d``) or Hutchinson's estimate
``u^T (dv/dx) u`` with Rademacher probes ``u`` held fixed along the path
(FFJORD; Grathwohl et al. 2019), which is unbiased for the integral. The path
itself does not depend on the probe, so ``probes`` independent estimates share
one ODE solve; their spread is the Monte Carlo error reported.

The ODE is solved by classical Runge--Kutta (``solver="rk4"``, ``steps``
uniform steps in ``t``: for VE that is uniform in ``log sigma``) or by JAX's
adaptive Dormand--Prince (``solver="dopri5"``, ``jax.experimental.ode.odeint``).
"""

from __future__ import annotations

import dataclasses
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from energymc.diffusion._dequantize import check_dequantize, dequantise, log_jacobian
from energymc.diffusion._energies import as_module, check_energy
from energymc.diffusion.schedules import as_schedule
from energymc.errors import OptionError

__all__ = ["Likelihood", "log_likelihood"]


@dataclasses.dataclass
class Likelihood:
    """What :func:`log_likelihood` returns.

    Attributes
    ----------
    per_example
        ``(n,)`` log-likelihood of each point in nats (the mean over probes);
        with ``dequantize`` a lower bound on the log-probability of the
        discrete value.
    per_probe
        ``(n, probes)`` each probe's estimate (one column with ``trace="exact"``).
    nats
        Mean of ``per_example``: nats per example.
    stderr
        Monte Carlo standard error of ``nats`` from the trace probes (0 for
        the exact trace): the standard deviation over probes of the
        dataset mean, over ``sqrt(probes)``.
    stderr_data
        Sampling standard error of ``nats`` as an estimate of the expectation
        over the data distribution: ``sd(per_example) / sqrt(n)``.
    bits_per_dim
        ``-nats / (d log 2)``.
    dim
        ``d``, the number of coordinates of a point.
    nfe
        Energy-gradient evaluations per point along the path (-1 for the
        adaptive solver).
    nonfinite
        Points whose path went non-finite (a model with wild scores); their
        ``per_example`` is NaN, and so are ``nats`` and ``bits_per_dim``.
    """

    per_example: np.ndarray
    per_probe: np.ndarray
    nats: float
    stderr: float
    stderr_data: float
    bits_per_dim: float
    dim: int
    nfe: int
    nonfinite: int = 0

    def __repr__(self) -> str:
        return (f"Likelihood(nats={self.nats:.4f} +/- {self.stderr:.2g} (probes), "
                f"+/- {self.stderr_data:.2g} (data), bits/dim={self.bits_per_dim:.4f}, "
                f"n={len(self.per_example)}"
                + (f", {self.nonfinite} non-finite" if self.nonfinite else "") + ")")


def log_likelihood(key, energy, x, schedule, params=None, *, trace: str = "hutchinson",
                   probes: int = 4, solver: str = "rk4", steps: int = 100,
                   rtol: float = 1e-5, atol: float = 1e-5, dequantize: int | None = None,
                   scale: float = 1.0, shift: float = 0.0) -> Likelihood:
    """Log-likelihood of ``x`` under a noise-conditional energy, at the smallest level.

    Parameters
    ----------
    key
        A ``jax.random.key`` (probes and dequantisation noise).
    energy
        An Equinox module ``m(x, sigma)`` or ``energy_fn(params, x, sigma)``.
    x
        ``(n, *event)`` points. With ``dequantize=L``: integer values in
        ``0..L-1`` (e.g. pixel intensities).
    schedule
        ``"ve"``, ``"vp"`` or an :class:`energymc.diffusion.Schedule` (the one
        the energy was trained with).
    params
        With ``energy_fn``: its parameters.
    trace
        ``"hutchinson"`` (Rademacher probes) or ``"exact"`` (``d`` products
        per step; for small ``d``).
    probes
        Hutchinson probes per point (at least 2 for a standard error).
    solver, steps, rtol, atol
        ``"rk4"`` with ``steps`` uniform steps, or adaptive ``"dopri5"``
        with tolerances ``rtol``/``atol``.
    dequantize
        ``L``: uniform dequantisation of integer data: the model's input is
        ``(x + u) * scale / L + shift``, ``u ~ U[0, 1)^d``, and the result
        is the variational bound ``log P(x) >= E_u log p(model input) + d
        log(scale / L)`` (Theis et al. 2016), so that ``bits_per_dim`` is
        comparable to published figures for discrete data. Use the map the
        model was trained on (:class:`energymc.learn.Diffusion` with
        ``dequantize=`` draws it afresh in every update, and its
        ``log_likelihood`` passes it here by default).
    scale, shift
        The affine map above (only with ``dequantize``; anything else raises).

    Returns
    -------
    Likelihood
    """
    schedule = as_schedule(schedule)
    if trace not in ("hutchinson", "exact"):
        raise OptionError(f"trace must be 'hutchinson' or 'exact'; got {trace!r}.")
    if solver not in ("rk4", "dopri5"):
        raise OptionError(f"solver must be 'rk4' or 'dopri5'; got {solver!r}.")
    from energymc.learn._checks import check_data, check_int, check_levels, check_positive

    steps = check_int("steps", steps, 1)
    probes = 1 if trace == "exact" else check_int("probes", probes, 1)
    rtol, atol = check_positive("rtol", rtol), check_positive("atol", atol)
    x = check_data(x, name="x")
    n, event = x.shape[0], tuple(x.shape[1:])
    dim = int(np.prod(event))
    log_jac = 0.0
    key_u, key_p = jax.random.split(jax.random.key(key) if isinstance(key, int) else key)
    levels, scale, shift = check_dequantize(dequantize, scale, shift)
    if levels is not None:
        check_levels(x, levels, name="x")
        x = dequantise(key_u, x, levels, scale, shift)
        log_jac = log_jacobian(dim, levels, scale)
    module = as_module(energy, params)
    check_energy(module, event, x.dtype)
    per_probe = _solve(module, x, key_p, schedule=schedule, exact=trace == "exact",
                       probes=probes, solver=solver, steps=steps, rtol=rtol, atol=atol)
    per_probe = np.asarray(per_probe, float) + log_jac
    # A path that blew up is reported, not hidden: NaN for that point, counted.
    bad = ~np.all(np.isfinite(per_probe), axis=1)
    per_probe[bad] = np.nan
    per_example = per_probe.mean(axis=1)
    nats = float(per_example.mean())
    stderr = float(per_probe.mean(axis=0).std(ddof=1) / math.sqrt(probes)) if probes > 1 else (
        0.0 if trace == "exact" else float("nan"))
    stderr_data = float(per_example.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    nfe = 4 * steps if solver == "rk4" else -1
    return Likelihood(per_example, per_probe, nats, stderr, stderr_data,
                      -nats / (dim * math.log(2.0)), dim, nfe, int(bad.sum()))


@eqx.filter_jit
def _solve(module, x, key, *, schedule, exact, probes, solver, steps, rtol, atol):
    n, event = x.shape[0], x.shape[1:]
    dim = int(np.prod(event))
    dtype = x.dtype

    def velocity_flat(z, t):
        sigma = schedule.sigma(t)
        grad = jax.grad(lambda y: module(y.reshape(event), sigma))(z)
        return schedule.drift(t) * z + 0.5 * schedule.g2(t) * grad

    def rhs(state, t, u):
        # state: (flat point, (probes,) accumulated divergence)
        z, _ = state
        if exact:
            jac = jax.jacfwd(lambda y: velocity_flat(y, t))(z)
            v = velocity_flat(z, t)
            div = jnp.trace(jac)[None]
        else:
            def one(ui):
                return jax.jvp(lambda y: velocity_flat(y, t), (z,), (ui,))

            vs, jus = jax.vmap(one)(u)
            v = vs[0]
            div = jnp.sum(u * jus, axis=-1)
        return v, div

    t0 = jnp.asarray(schedule.t_min, dtype)
    t1 = jnp.asarray(1.0, dtype)

    def one_point(z0, k):
        u = jax.random.rademacher(k, (probes, dim), dtype=dtype)
        state0 = (z0, jnp.zeros((probes,), dtype))
        if solver == "rk4":
            h = (t1 - t0) / steps

            def step(state, i):
                t = t0 + i * h
                k1 = rhs(state, t, u)
                k2 = rhs(_axpy(state, 0.5 * h, k1), t + 0.5 * h, u)
                k3 = rhs(_axpy(state, 0.5 * h, k2), t + 0.5 * h, u)
                k4 = rhs(_axpy(state, h, k3), t + h, u)
                inc = jax.tree.map(lambda a, b, c, d: (a + 2 * b + 2 * c + d) / 6, k1, k2, k3, k4)
                return _axpy(state, h, inc), None

            (z1, div), _ = jax.lax.scan(step, state0, jnp.arange(steps, dtype=dtype))
        else:
            from jax.experimental.ode import odeint

            path = odeint(lambda s, t, uu: rhs(s, t, uu), state0, jnp.stack([t0, t1]), u,
                          rtol=rtol, atol=atol)
            z1, div = jax.tree.map(lambda a: a[-1], path)
        return schedule.prior_logpdf(z1) + div

    keys = jax.random.split(key, n)
    return jax.vmap(one_point)(x.reshape(n, dim), keys)


def _axpy(state, a, inc):
    return jax.tree.map(lambda s, d: s + a * d, state, inc)
