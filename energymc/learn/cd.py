"""Contrastive divergence: CD-k, persistent CD and a replay buffer.

The maximum-likelihood gradient of ``E_theta`` is
``E_data[grad_theta E] - E_model[grad_theta E]``. CD estimates the second term
with "negative" samples from ``k`` steps of a Markov kernel that leaves the
current model invariant (Hinton 2002). Where the chains start selects the
variant:

* ``persistent=False``: at the data batch (CD-k);
* ``persistent=True``: where the previous update left them (PCD, Tieleman 2008),
  one chain per batch point or, with ``chains=N``, a pool of ``N`` chains;
* ``persistent=True, buffer_size=N``: at samples drawn from a replay buffer of
  past negatives, a fraction ``reinit_prob`` restarted from noise (Du &
  Mordatch 2019).

The kernel is an energymc kernel (``energymc.kernels.get(name)``) driven with
fixed parameters, or a user callable ``sampler(key, params, x_batch, k)``, e.g.
block Gibbs for an RBM.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from energymc import kernels as _kernels
from energymc.errors import EnergyError, OptionError
from energymc.learn._common import (
    LearnerBase,
    check_int,
    check_positive,
)

__all__ = ["CD"]


class CD(LearnerBase):
    """Contrastive divergence (CD-k, PCD, replay buffer) for ``energy_fn(params, x)``.

    Parameters
    ----------
    energy_fn
        ``energy_fn(params, x) -> scalar`` for ONE point ``x`` of shape
        ``event``; or a NumPyro-style ``energy_fn(x)`` with ``numpyro.param``
        sites.
    optim
        A ``numpyro.optim`` optimiser, e.g. ``numpyro.optim.Adam(1e-2)``.
    k
        Kernel steps per update. ``k=0`` returns the starting points unchanged
        (with ``persistent=False`` the gradient is then zero: a negative control).
    persistent
        Keep the chains between updates (PCD), or, with ``buffer_size``, keep a
        replay buffer.
    sampler
        A method name for :func:`energymc.kernels.get` (``"langevin"``,
        ``"mala"``, ``"hmc"``, ``"nuts"``, ``"barker"``, ``"rwm"``, ...) or a
        callable ``sampler(key, params, x_batch, k) -> x_batch_new`` with
        ``x_batch`` ``(batch, *event)`` (``(chains, *event)`` with ``chains=``)
        and ``params`` in the user's form.
    step_size
        The kernel's step size (BlackJAX's convention; for ``"langevin"``,
        ``x + h grad log p + sqrt(2 h) noise``). Not used by a callable sampler.
    buffer_size
        With ``persistent=True``: the size of the replay buffer; ``None`` keeps
        persistent chains instead (see ``chains``).
    chains
        PCD only (``persistent=True`` without ``buffer_size``): the number of
        persistent chains, all advanced ``k`` steps every update and all
        averaged in the negative phase. ``None`` (default) keeps one chain per
        batch point. A pool larger than the batch lowers the variance of the
        negative-phase term of the gradient (it does not make the chains mix
        faster: that takes more steps ``k``); a smaller one buys more steps
        per chain at the same cost. Each update costs ``chains * k`` kernel
        steps. The chains start at data points drawn at random (with
        replacement if ``chains`` exceeds the number of data points).
    reinit_prob
        Replay buffer only: probability that a chain restarts from noise.
    energy_l2
        Weight of the penalty ``mean(E_data^2) + mean(E_neg^2)`` that keeps
        energies small (Du & Mordatch 2019).
    sampler_options
        Further kernel options, e.g. ``{"inverse_mass_matrix": ...}``,
        ``{"num_integration_steps": 8}`` for HMC, ``{"L": 1.0}`` for MCLMC.
    noise
        Replay buffer only: a NumPyro distribution with the data's event shape
        for fresh chains. Default: a diagonal Gaussian fitted to the data.
    ema
        Parameter averaging: a decay in ``[0, 1)`` (e.g. ``0.99``, an average
        over about the last ``1 / (1 - ema)`` updates). ``result.params`` and
        ``eval_fn`` then get the exponential moving average of the iterates
        (debiased, so it does not lean towards ``init_params``), while the
        negative phase keeps sampling the current iterate.
        ``learner.get_params(result.state, average=False)`` gives that
        iterate. Averaging removes much of the update-to-update jitter that
        stochastic negatives put into the parameters (Polyak & Juditsky 1992).
        ``None`` (default) turns it off.

    Notes
    -----
    The reported loss is the surrogate ``mean E(data) - mean E(negatives)``
    (plus the penalty), whose gradient is the CD gradient. It is not a
    log-likelihood; it hovers near zero when the model fits.

    History: ``energy_neg`` (mean negative energy), ``acceptance`` (mean over
    chains and steps), ``diverging`` (fraction of chains with a rejected
    non-finite proposal) and ``neg_ess``: ``B (1 - rho) / (1 + rho)``, with
    ``rho`` the correlation across the ``B`` chains between the energy at the
    start and at the end of the ``k`` steps -- how many of the negatives are
    effectively fresh draws rather than copies of their starts. It is ``0``
    when chains did not move and near ``B`` when they forgot their start.
    """

    _name = "CD"

    def __init__(self, energy_fn: Callable, optim, k: int = 10, persistent: bool = False,
                 sampler: str | Callable = "langevin", step_size: float = 0.01,
                 buffer_size: int | None = None, reinit_prob: float = 0.05,
                 energy_l2: float = 0.0, sampler_options: dict | None = None,
                 noise: Any = None, ema: float | None = None, chains: int | None = None):
        super().__init__(energy_fn, optim, ema=ema)
        self.k = check_int("k", k, 0)
        if not isinstance(persistent, bool):
            raise OptionError(f"persistent must be True or False; got {persistent!r}.")
        self.persistent = persistent
        self.step_size = check_positive("step_size", step_size)
        self.energy_l2 = check_positive("energy_l2", energy_l2, allow_zero=True)
        self.reinit_prob = float(reinit_prob)
        if not 0.0 <= self.reinit_prob <= 1.0:
            raise OptionError(f"reinit_prob must be in [0, 1]; got {reinit_prob!r}.")
        if buffer_size is not None:
            if not persistent:
                raise OptionError(
                    "buffer_size= is a replay buffer of persistent chains; pass persistent=True "
                    "with it, or drop buffer_size for plain CD-k."
                )
            buffer_size = check_int("buffer_size", buffer_size, 1)
        self.buffer_size = buffer_size
        if chains is not None:
            if not persistent or buffer_size is not None:
                raise OptionError(
                    "chains= sets the size of the pool of persistent chains (PCD): pass it with "
                    "persistent=True and without buffer_size (a replay buffer's size is "
                    "buffer_size=; plain CD-k starts one chain at each batch point)."
                )
            chains = check_int("chains", chains, 1)
        self.chains = chains
        if noise is not None and not all(hasattr(noise, m) for m in ("sample", "log_prob")):
            raise OptionError("noise must be a NumPyro distribution (with sample and log_prob).")
        self.noise = noise
        self.sampler = sampler
        if callable(sampler) and not isinstance(sampler, str):
            self._kernel = None
            if sampler_options:
                raise OptionError(
                    "sampler_options apply to a named kernel, not a callable sampler.")
        elif isinstance(sampler, str):
            self._kernel = _kernels.get(sampler)  # OptionError lists valid names
            opts = dict(sampler_options or {})
            if "step_size" in self._kernel.defaults:
                opts.setdefault("step_size", self.step_size)
            self._options = _kernels.resolve_options(self._kernel, opts, context="CD")
            missing = [n for n, v in self._options if v is None and n in ("step_size", "L")]
            if missing:
                raise OptionError(f"sampler {sampler!r} needs sampler_options={{{missing[0]!r}: "
                                  "...}}: CD runs kernels with fixed parameters.")
        else:
            raise OptionError(
                "sampler must be a method name such as 'langevin' or 'mala', or a callable "
                f"sampler(key, params, x_batch, k) -> x_batch_new; got {sampler!r}."
            )
        self._history_keys = ("loss", "grad_norm", "energy_data", "energy_neg", "acceptance",
                              "diverging", "neg_ess")

    # ------------------------------------------------------------------ setup
    def _extra_init(self, key, data, internal, batch_size):
        event = data.shape[1:]
        num = batch_size if self.chains is None else self.chains
        if self._kernel is not None:
            self._check_support(data)
        else:
            # The sampler sees the whole pool of chains at once.
            self._check_callable(key, internal, jax.ShapeDtypeStruct((num, *event), data.dtype))
        if not self.persistent:
            return {}
        k_perm, k_buf = jax.random.split(key)
        if self.buffer_size is None:
            # PCD: the chains start at a random subset of the data (with
            # replacement only when the pool is larger than the data).
            n = data.shape[0]
            idx = jax.random.choice(k_perm, n, (num,), replace=num > n)
            return {"chains": data[idx]}
        if self.buffer_size < batch_size:
            raise OptionError(f"buffer_size={self.buffer_size} is smaller than batch_size="
                              f"{batch_size}; the buffer must hold at least one batch.")
        flat = data.reshape(data.shape[0], -1)
        extra = {"noise_loc": jnp.mean(flat, 0).reshape(event),
                 "noise_scale": (jnp.std(flat, 0) + 1e-6).reshape(event)}
        if self.noise is not None:
            self._check_noise(event)
        # Du & Mordatch start the whole buffer from noise.
        extra["buffer"] = self._fresh(k_buf, extra, self.buffer_size, event)
        return extra

    def _check_noise(self, event):
        shape = tuple(self.noise.batch_shape) + tuple(self.noise.event_shape)
        if shape != tuple(event):
            raise EnergyError(f"noise has batch+event shape {shape}; it must equal the data's "
                              f"point shape {tuple(event)}.")

    def _check_support(self, data):
        if "real" in self._kernel.supports or isinstance(data, jax.core.Tracer):
            return
        vals = set(np.unique(np.asarray(data)).tolist())
        allowed = {"binary": {0.0, 1.0}, "spin": {-1.0, 1.0}}
        fits = [s for s in self._kernel.supports if vals <= allowed.get(s, set())]
        if not fits:
            raise OptionError(
                f"sampler {self._kernel.name!r} samples {self._kernel.supports} states but the "
                "data are not all in that set; pick a continuous sampler such as 'langevin'."
            )
        opts = dict(self._options)
        if "support" in opts and opts["support"] is None:
            # Discrete kernels must be told the state space; the data tell it here.
            opts["support"] = fits[0]
            self._options = tuple(sorted(opts.items()))

    def _check_callable(self, key, internal, x):
        params = self._spec.to_user(internal)
        try:
            out = jax.eval_shape(lambda k, p, xb: self.sampler(k, p, xb, self.k), key, params, x)
        except Exception as exc:
            raise OptionError(
                f"calling sampler(key, params, x_batch, k) with x_batch of shape "
                f"{tuple(x.shape)} and k={self.k} raised {type(exc).__name__}: {exc}"
            ) from exc
        if not hasattr(out, "shape") or tuple(out.shape) != tuple(x.shape):
            got = getattr(out, "shape", type(out).__name__)
            raise OptionError(f"sampler(key, params, x_batch, k) must return an array shaped "
                              f"like x_batch {tuple(x.shape)}; it returned {got}.")

    def _check_state_batch(self, state, batch_size):
        if self.buffer_size is not None and self.buffer_size < batch_size:
            raise OptionError(f"buffer_size={self.buffer_size} is smaller than batch_size="
                              f"{batch_size}.")

    def _fresh(self, key, extra, num, event):
        if self.noise is not None:
            return jnp.asarray(self.noise.sample(key, (num,)), dtype=jnp.result_type(float))
        z = jax.random.normal(key, (num, *event))
        return extra["noise_loc"] + extra["noise_scale"] * z

    # --------------------------------------------------------- negative phase
    def _run_kernel(self, key, params, x0):
        """``k`` kernel steps from every row of ``x0``; returns (x, acceptance, diverging)."""
        batch, event = x0.shape[0], x0.shape[1:]
        kernel, options = self._kernel, self._options
        dim = int(np.prod(event))
        kparams = kernel.default_params(dim, options)

        def logdensity(z):
            lp = -self._spec.user_energy(params, z.reshape(event))
            return jnp.where(jnp.isnan(lp), -jnp.inf, lp)  # NaN energy: a rejected move

        def chain(key, z):
            k_init, k_steps = jax.random.split(key)
            state = kernel.init(k_init, z, logdensity, kparams, options)

            def one(s, kk):
                s, st = kernel.step(kk, s, logdensity, kparams, options)
                return s, (st["acceptance_rate"], st["diverging"])

            state, (acc, div) = jax.lax.scan(one, state, jax.random.split(k_steps, self.k))
            return state.position, jnp.mean(acc), jnp.any(div)

        flat = x0.reshape(batch, dim)
        pos, acc, div = jax.vmap(chain)(jax.random.split(key, batch), flat)
        return pos.reshape(x0.shape), jnp.mean(acc), jnp.mean(div.astype(x0.dtype))

    def _negatives(self, key, params, x0):
        if self.k == 0:
            nan = jnp.asarray(jnp.nan, x0.dtype)
            return x0, nan, jnp.zeros((), x0.dtype)
        if self._kernel is None:
            x = self.sampler(key, params, x0, self.k)
            nan = jnp.asarray(jnp.nan, x0.dtype)
            return jnp.asarray(x, x0.dtype), nan, jnp.zeros((), x0.dtype)
        return self._run_kernel(key, params, x0)

    def _starts(self, key, extra, batch):
        """Where the chains start, and how to write their ends back into ``extra``."""
        if not self.persistent:
            return batch, lambda neg: extra
        if self.buffer_size is None:
            return extra["chains"], lambda neg: {**extra, "chains": neg}
        b = batch.shape[0]
        if b > self.buffer_size:
            raise OptionError(f"a batch of {b} points needs buffer_size >= {b}; it is "
                              f"{self.buffer_size}.")
        k_idx, k_mask, k_noise = jax.random.split(key, 3)
        idx = jax.random.choice(k_idx, self.buffer_size, (b,), replace=False)
        old = extra["buffer"][idx]
        fresh = self._fresh(k_noise, extra, b, batch.shape[1:])
        restart = jax.random.bernoulli(k_mask, self.reinit_prob, (b,))
        restart = restart.reshape((b,) + (1,) * (batch.ndim - 1))
        x0 = jnp.where(restart, fresh, old)
        return x0, lambda neg: {**extra, "buffer": extra["buffer"].at[idx].set(neg)}

    # -------------------------------------------------------------------- loss
    def _loss(self, internal, extra, batch, key):
        k_start, k_neg = jax.random.split(key)
        energy = jax.vmap(self._spec.energy, in_axes=(None, 0))
        # The negatives are constants for the gradient: only E's explicit
        # dependence on theta enters the CD estimator.
        fixed = jax.lax.stop_gradient(internal)
        user_fixed = self._spec.to_user(fixed)
        x0, write_back = self._starts(k_start, extra, batch)
        neg, acc, div = self._negatives(k_neg, user_fixed, x0)
        neg = jax.lax.stop_gradient(neg)
        e_data = energy(internal, batch)
        e_neg = energy(internal, neg)
        loss = jnp.mean(e_data) - jnp.mean(e_neg)
        if self.energy_l2 > 0:
            loss = loss + self.energy_l2 * (jnp.mean(e_data**2) + jnp.mean(e_neg**2))
        e_start = energy(fixed, x0)
        info = {"energy_data": jnp.mean(e_data), "energy_neg": jnp.mean(e_neg),
                "acceptance": acc, "diverging": div,
                "neg_ess": _start_end_ess(e_start, jax.lax.stop_gradient(e_neg))}
        return loss, (write_back(neg), info)


def _start_end_ess(e0, e1):
    """``B (1 - rho) / (1 + rho)`` from the start/end energy correlation over ``B`` chains."""
    b = e0.shape[0]
    a, c = e0 - jnp.mean(e0), e1 - jnp.mean(e1)
    denom = jnp.sqrt(jnp.sum(a * a) * jnp.sum(c * c))
    # Chains that did not move at all (k=0, or all rejected): rho = 1.
    rho = jnp.where(denom > 0, jnp.sum(a * c) / jnp.where(denom > 0, denom, 1.0), 1.0)
    rho = jnp.clip(rho, 0.0, 1.0)
    return b * (1.0 - rho) / (1.0 + rho)
