"""Bernoulli-Bernoulli restricted Boltzmann machine.

``E(v, h) = -b.v - c.h - v^T W h`` with ``v`` in {0,1}^n_visible and ``h`` in
{0,1}^n_hidden. The hidden units sum out in closed form, giving the free
energy ``F(v) = -b.v - sum_j softplus(c_j + (v W)_j)`` and ``p(v) = exp(-F(v)) / Z``.
Both layers are conditionally independent given the other, hence block Gibbs.

Parameters are a plain dict ``{"W": (n_visible, n_hidden), "b": (n_visible,),
"c": (n_hidden,)}``, so they go straight into ``numpyro.optim`` and
:class:`energymc.learn.CD`.
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from energymc import exact
from energymc._random import uniform
from energymc._util import as_key, renamed
from energymc.energy import Energy
from energymc.errors import EnergyError

__all__ = ["RBM"]


def _seed_key(seed, what: str):
    """A key from ``seed`` (an int or a key), or an error naming the method that needs one."""
    if seed is None:
        raise EnergyError(f"{what} needs seed=, an int or a jax.random.key.")
    return as_key(seed)


def _check_params(params, nv, nh):
    if not isinstance(params, dict) or set(params) != {"W", "b", "c"}:
        got = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise EnergyError(f"RBM params must be a dict with keys 'W', 'b', 'c'; got {got}.")
    want = {"W": (nv, nh), "b": (nv,), "c": (nh,)}
    for k, shape in want.items():
        if tuple(jnp.shape(params[k])) != shape:
            raise EnergyError(
                f"RBM params[{k!r}] has shape {tuple(jnp.shape(params[k]))}; this "
                f"RBM({nv}, {nh}) needs {shape}."
            )


def _hidden_logp(h, params):
    """``log sum_v exp(-E(v, h))`` for one hidden state ``h`` ``(n_hidden,)``."""
    return h @ params["c"] + jnp.sum(jax.nn.softplus(params["b"] + params["W"] @ h))


def _visible_logp(v, params):
    """``-F(v)`` for one visible state ``v`` ``(n_visible,)``."""
    return v @ params["b"] + jnp.sum(jax.nn.softplus(params["c"] + v @ params["W"]))


def _ais_logp(v, beta, params, b0):
    """Unnormalised log-density of the intermediate RBM at ``beta``, ``v`` ``(n, nv)``.

    The base-rate RBM (weights 0, visible biases ``b0``, hidden biases 0)
    and the target are mixed as in Salakhutdinov & Murray (2008): visible
    biases ``(1-beta) b0 + beta b``, hidden biases ``beta c``, weights
    ``beta W``. The base's hidden units contribute the constant
    ``n_hidden log 2`` at every ``beta``, kept inside the softplus term.
    """
    vis = v @ ((1.0 - beta) * b0 + beta * params["b"])
    return vis + jnp.sum(jax.nn.softplus(beta * (v @ params["W"] + params["c"])), axis=-1)


def _ais_transition(key, v, beta, params, b0):
    """One block-Gibbs sweep ``v -> h -> v`` of the intermediate RBM at ``beta``."""
    nh = params["c"].shape[-1]
    u = uniform(key, (*v.shape[:-1], nh + v.shape[-1]), v.dtype)  # one draw for both layers
    h = (u[..., :nh] < jax.nn.sigmoid(beta * (v @ params["W"] + params["c"]))).astype(v.dtype)
    logits = (1.0 - beta) * b0 + beta * (h @ params["W"].T + params["b"])
    return (u[..., nh:] < jax.nn.sigmoid(logits)).astype(v.dtype)


def _path_log_f(p, v, beta):
    return _ais_logp(v, beta, p, p["b0"])


def _path_step(p, key, v, beta):
    return _ais_transition(key, v, beta, p, p["b0"])


def _path_sample_base(p, key, n):
    b0 = p["b0"]
    return (uniform(key, (n, b0.shape[0]), b0.dtype) < jax.nn.sigmoid(b0)).astype(b0.dtype)


def _path_log_z_base(p):
    # Zero weights: visible units independent with logits b0, hidden units
    # uniform (2 states each, energy 0 at beta = 0).
    return jnp.sum(jnp.logaddexp(0.0, p["b0"])) + p["c"].shape[0] * jnp.log(2.0)


def _default_betas(num_temps: int) -> np.ndarray:
    """Salakhutdinov & Murray's schedule shape (500 steps to 0.5, 4000 to 0.9,
    10000 to 1 of 14500), scaled to ``num_temps``: denser where ``p_beta``
    changes fastest, near 1."""
    n1 = max(int(round(num_temps * 500 / 14500)), 1)
    n2 = max(int(round(num_temps * 4000 / 14500)), 1)
    n3 = max(num_temps - n1 - n2, 1)
    return np.concatenate([np.linspace(0.0, 0.5, n1, endpoint=False),
                           np.linspace(0.5, 0.9, n2, endpoint=False),
                           np.linspace(0.9, 1.0, n3 + 1)])


#: Updates of :meth:`RBM.fit` when ``n_iter`` is not given.
FIT_UPDATES = 15_000

#: Most uniforms :meth:`RBM.block_gibbs` draws at once (4 MiB in float32): a
#: block of sweeps shares one draw up to this size.
_UNIFORMS_PER_DRAW = 2**20


@partial(jax.jit, static_argnums=(0, 4, 5, 6))
def _sample_visible(rbm, key, params, init, num_samples, num_steps, mean_field):
    k_init, k_run, k_last = jax.random.split(key, 3)
    if init is None:
        init = jax.random.bernoulli(k_init, jax.nn.sigmoid(params["b"]),
                                    (num_samples, rbm.n_visible)).astype(params["W"].dtype)
    v = rbm.block_gibbs(k_run, params, init, num_steps)
    if not mean_field:
        return v
    h = jax.random.bernoulli(k_last, rbm.hidden_probs(params, v)).astype(v.dtype)
    return rbm.visible_probs(params, h)


@dataclasses.dataclass(frozen=True)
class RBM:
    """A Bernoulli-Bernoulli RBM with ``n_visible`` visible and ``n_hidden`` hidden units.

    The object holds only the sizes (it is hashable, so its bound methods can
    be passed to jitted code); parameters are passed to every method.

    Parameters
    ----------
    n_visible, n_hidden
        Layer sizes (>= 1).

    Examples
    --------
    >>> import jax
    >>> from energymc.models import RBM
    >>> rbm = RBM(6, 3)
    >>> params = rbm.init_params(jax.random.key(0))
    >>> bool(abs(rbm.log_z_exact(params) - 9 * 0.6931) < 0.1)   # near-zero weights: 2^9 states
    True
    """

    n_visible: int
    n_hidden: int

    def __post_init__(self):
        for name in ("n_visible", "n_hidden"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise EnergyError(f"RBM {name} must be an integer >= 1; got {value!r}.")

    # ------------------------------------------------------------ parameters
    def check_data(self, data) -> jax.Array:
        """``data`` as a float array ``(n, n_visible)`` of 0./1.; a clear error otherwise."""
        arr = np.asarray(data)
        if arr.ndim != 2 or arr.shape[1] != self.n_visible:
            raise EnergyError(
                f"RBM data must have shape (n, {self.n_visible}); got {arr.shape}. Flatten "
                "images to rows (data.reshape(len(data), -1)).")
        if not np.isin(arr, (0, 1)).all():
            raise EnergyError(
                "RBM data must be binary (0/1); binarise first, e.g. "
                "(x > threshold).astype(float).")
        return jnp.asarray(arr, dtype=jnp.result_type(float))

    def init_params(self, seed=None, data=None, scale: float = 0.01, *, key=None) -> dict:
        """Small random weights; visible biases from the data's base rates.

        Parameters
        ----------
        seed
            An int or a ``jax.random.key`` (``key=`` is its deprecated name).
        data
            Optional ``(n, n_visible)`` binary data. The visible biases are set
            to ``logit(mean)`` per pixel (clipped to [1e-3, 1 - 1e-3]), so the
            model starts at the data's marginals (Hinton's practical guide).
            Without data they are 0.
        scale
            Standard deviation of the initial weights.

        Returns
        -------
        dict
            ``{"W": (n_visible, n_hidden), "b": (n_visible,), "c": (n_hidden,)}``.
        """
        key = _seed_key(renamed("key", "seed", key, seed), "init_params")
        dtype = jnp.result_type(float)
        W = scale * jax.random.normal(key, (self.n_visible, self.n_hidden), dtype)
        b = jnp.zeros((self.n_visible,), dtype) if data is None else self.base_rate_biases(data)
        return {"W": W, "b": b, "c": jnp.zeros((self.n_hidden,), dtype)}

    def base_rate_biases(self, data, eps: float = 1e-3) -> jax.Array:
        """``logit`` of each visible unit's mean in ``data``; ``(n_visible,)``."""
        p = jnp.clip(jnp.mean(self.check_data(data), axis=0), eps, 1.0 - eps)
        return jnp.log(p) - jnp.log1p(-p)

    # --------------------------------------------------------------- energies
    def energy(self, params, v, h):
        """``E(v, h)`` for ``v`` ``(..., n_visible)`` and ``h`` ``(..., n_hidden)``; ``(...,)``."""
        return -(v @ params["b"] + h @ params["c"]
                 + jnp.sum((v @ params["W"]) * h, axis=-1))

    def free_energy(self, params, v):
        """``F(v) = -log sum_h exp(-E(v, h))`` for ``v`` ``(..., n_visible)``; ``(...,)``.

        Usable as a learner's ``energy_fn(params, x)``.
        """
        return -(v @ params["b"]
                 + jnp.sum(jax.nn.softplus(v @ params["W"] + params["c"]), axis=-1))

    def hidden_probs(self, params, v):
        """``p(h_j = 1 | v)`` ``(..., n_hidden)``."""
        return jax.nn.sigmoid(v @ params["W"] + params["c"])

    def visible_probs(self, params, h):
        """``p(v_i = 1 | h)`` ``(..., n_visible)``."""
        return jax.nn.sigmoid(h @ params["W"].T + params["b"])

    def as_energy(self, params, **kwargs) -> Energy:
        """The visible marginal as an :class:`energymc.Energy` (free energy, binary)."""
        _check_params(params, self.n_visible, self.n_hidden)
        kwargs.setdefault("name", f"rbm{self.n_visible}x{self.n_hidden}")
        return Energy.from_params(self.free_energy, params, jnp.zeros((self.n_visible,)),
                                  support="binary", **kwargs)

    # --------------------------------------------------------------- sampling
    def block_gibbs(self, key, params, x_batch, k: int = 1):
        """``k`` block-Gibbs sweeps ``v -> h -> v`` from ``x_batch``.

        The negative-phase sampler for contrastive divergence:
        ``CD(rbm.free_energy, optim, k=1, persistent=True, sampler=rbm.block_gibbs)``.

        Parameters
        ----------
        key
            A ``jax.random.key``.
        params
            RBM parameters.
        x_batch
            ``(batch, n_visible)`` visible states.
        k
            Number of sweeps (``k = 0`` returns ``x_batch``).

        Returns
        -------
        jax.Array
            ``(batch, n_visible)`` binary visible states.
        """

        nh = self.n_hidden
        v = jnp.asarray(x_batch)
        shape = (*v.shape[:-1], nh + self.n_visible)

        # A sweep takes one uniform per unit of both layers and compares it with
        # the conditional probability: a Bernoulli draw each, as
        # jax.random.bernoulli does. The PRNG dominates a sweep of a small RBM
        # on CPU, so the uniforms come from energymc._random.uniform (two
        # words per hash), and one large draw for many sweeps costs much less
        # than a draw (and a key derivation) per sweep: blocks of up to
        # _UNIFORMS_PER_DRAW numbers, a scan over each block.
        def sweep(v, u):
            h = (u[..., :nh] < self.hidden_probs(params, v)).astype(v.dtype)
            return (u[..., nh:] < self.visible_probs(params, h)).astype(v.dtype), None

        if not isinstance(k, (int, np.integer)):  # a traced k: one draw per sweep
            return jax.lax.fori_loop(
                0, k, lambda i, v: sweep(v, uniform(
                    jax.random.fold_in(key, i), shape, v.dtype))[0], v)
        k = int(k)
        if k <= 0:
            return v
        per = max(1, min(k, _UNIFORMS_PER_DRAW // max(math.prod(shape), 1)))
        blocks, rest = divmod(k, per)

        def block(i, v, n=per):
            u = uniform(jax.random.fold_in(key, i), (n, *shape), v.dtype)
            return jax.lax.scan(sweep, v, u)[0]

        if blocks == 1:
            v = block(0, v)
        elif blocks > 1:
            v = jax.lax.fori_loop(0, blocks, block, v)
        return block(blocks, v, rest) if rest else v

    def sample_visible(self, seed=None, params=None, num_samples: int | None = None,
                       num_steps: int = 1000, init=None, mean_field: bool = False, *, key=None):
        """Visible states from ``num_samples`` independent block-Gibbs chains.

        Parameters
        ----------
        seed
            An int or a ``jax.random.key`` (``key=`` is its deprecated name).
        params
            RBM parameters.
        num_samples
            Number of chains (one sample each).
        num_steps
            Gibbs sweeps per chain.
        init
            ``(num_samples, n_visible)`` starting states; default: drawn from
            ``sigmoid(b)`` independently per unit.
        mean_field
            Return ``p(v = 1 | h)`` of the last sweep instead of binary states
            (smoother pictures).

        Returns
        -------
        jax.Array
            ``(num_samples, n_visible)``.
        """
        key = _seed_key(renamed("key", "seed", key, seed), "sample_visible")
        if num_samples is None:
            raise EnergyError("sample_visible needs num_samples=, the number of chains.")
        _check_params(params, self.n_visible, self.n_hidden)
        if init is not None and tuple(np.shape(init)) != (num_samples, self.n_visible):
            raise EnergyError(f"init must have shape ({num_samples}, {self.n_visible}); "
                              f"got {np.shape(init)}.")
        return _sample_visible(self, key, params, init, int(num_samples), int(num_steps),
                               bool(mean_field))

    # ---------------------------------------------------------------- fitting
    def fit(self, data, seed=0, *, learning_rate: float = 0.02, batch_size: int = 100,
            n_iter: int | None = None, k: int = 3, weight_decay: float = 1e-3,
            ema: float | None = 0.99, progress=None, init_params=None):
        """Train on binary ``data`` with a recipe that needs no tuning; returns a ``LearnResult``.

        Persistent contrastive divergence (:class:`energymc.learn.CD` with
        :meth:`block_gibbs`, ``k`` sweeps per update, one persistent chain per
        batch row), Adam with momentum 0.5 and a cosine-decayed step (from
        ``learning_rate`` to 1% of it), L2 weight decay on ``W`` only, and an
        exponential moving average of the parameters. Chosen on the tuning
        half of ``benchmarks/zoo_learn.py`` (digits) and checked on held-out
        binary sets (``benchmarks/RESULTS.md``). The option names follow
        scikit-learn's ``BernoulliRBM`` (whose ``n_components`` is
        ``n_hidden`` here).

        Parameters
        ----------
        data
            ``(n, n_visible)`` binary (0/1) training data.
        seed
            An int or a ``jax.random.key``; same seed, same result.
        learning_rate
            Adam's initial step.
        batch_size
            Rows per update (at most ``n``).
        n_iter
            Passes over the data (epochs), as in scikit-learn. ``None``
            (default): :data:`FIT_UPDATES` updates whatever the data size.
        k
            Block-Gibbs sweeps per update.
        weight_decay
            L2 penalty ``weight_decay / 2 |W|^2`` per example (biases free).
        ema
            Parameter averaging decay (``None`` turns it off).
        progress
            As for :meth:`energymc.learn.LearnerBase.run`.
        init_params
            Starting parameters; default :meth:`init_params` with the data's
            base rates as visible biases.

        Returns
        -------
        energymc.learn.LearnResult
            ``result.params`` is the fitted ``{"W", "b", "c"}``; score it with
            :meth:`log_likelihood` and :meth:`log_z_exact` (or
            :meth:`log_z_ais` when both layers are large).
        """
        import numpyro.optim
        import optax

        from energymc._util import as_key
        from energymc.learn import CD
        from energymc.learn._checks import check_int, check_positive

        data = self.check_data(data)
        n = data.shape[0]
        batch_size = min(check_int("batch_size", batch_size, 1), n)
        learning_rate = check_positive("learning_rate", learning_rate)
        weight_decay = check_positive("weight_decay", weight_decay, allow_zero=True)
        if n_iter is None:
            steps = FIT_UPDATES
        else:
            steps = check_int("n_iter", n_iter, 1) * max(n // batch_size, 1)
        key = as_key(seed)
        k_init, k_run = jax.random.split(key)
        schedule = optax.cosine_decay_schedule(learning_rate, steps, alpha=0.01)
        tx = optax.adam(schedule, b1=0.5)
        if weight_decay:
            # Added to W's gradient before Adam: the penalty weight_decay/2 |W|^2.
            tx = optax.chain(optax.add_decayed_weights(
                weight_decay, mask={"W": True, "b": False, "c": False}), tx)
        learner = CD(self.free_energy, numpyro.optim.optax_to_numpyro(tx),
                     k=check_int("k", k, 1), persistent=True, sampler=self.block_gibbs, ema=ema)
        if init_params is None:
            init_params = self.init_params(k_init, data=data)
        else:
            _check_params(init_params, self.n_visible, self.n_hidden)
        return learner.run(k_run, steps, data, init_params=init_params, batch_size=batch_size,
                           progress=progress)

    # -------------------------------------------------------------- log Z, LL
    def log_z_exact(self, params, max_units: int = exact.MAX_DIM) -> float:
        """Exact ``log Z`` by enumerating the smaller layer (up to ``max_units`` units).

        The other layer sums out in closed form, so an RBM with 16 hidden units
        costs ``2**16`` terms however many visible units it has.
        """
        _check_params(params, self.n_visible, self.n_hidden)
        small = min(self.n_visible, self.n_hidden)
        if small > max_units:
            raise EnergyError(
                f"RBM({self.n_visible}, {self.n_hidden}): the smaller layer has {small} units, "
                f"2**{small} states, over the enumeration limit of {max_units} units. "
                "Estimate log Z with rbm.log_z_ais(params, key).")
        if self.n_hidden <= self.n_visible:
            log_z, _ = exact.reduce_states(_hidden_logp, self.n_hidden, "binary", params,
                                           max_dim=max_units)
        else:
            log_z, _ = exact.reduce_states(_visible_logp, self.n_visible, "binary", params,
                                           max_dim=max_units)
        return float(log_z)

    def log_likelihood(self, params, data, log_z, mean: bool = True):
        """``log p(v) = -F(v) - log Z`` of ``data`` ``(n, n_visible)``.

        Parameters
        ----------
        log_z
            From :meth:`log_z_exact` or :meth:`log_z_ais`.
        mean
            Average over rows (nats per example); ``False`` gives ``(n,)``.
        """
        data = self.check_data(data)
        ll = -self.free_energy(params, data) - jnp.asarray(log_z, data.dtype)
        return float(jnp.mean(ll)) if mean else ll

    def ais_path(self, params, data=None):
        """Salakhutdinov & Murray's (2008) annealing path, for ``emc.log_partition``.

        From an RBM with zero weights and base-rate visible biases (whose
        ``Z`` is known) through RBMs with weights ``beta W`` (described in
        :func:`_ais_logp`) to this one; each intermediate RBM is moved by one
        exact block-Gibbs sweep, and the weights use the visible marginal
        (hidden units summed out). Use it as the base of AIS::

            emc.log_partition(rbm.as_energy(params), method="ais",
                              base=rbm.ais_path(params, data=train), schedule="sigmoidal",
                              num_temps=10_000, particles=100, mcmc_steps=1)

        Parameters
        ----------
        params
            RBM parameters.
        data
            ``(n, n_visible)`` binary data for the base-rate biases; without it
            the base uses this RBM's visible biases ``params["b"]``.

        Returns
        -------
        energymc.logz.AnnealingPath
        """
        from energymc.logz import AnnealingPath

        _check_params(params, self.n_visible, self.n_hidden)
        dtype = jnp.asarray(params["W"]).dtype
        b0 = params["b"] if data is None else self.base_rate_biases(data)
        path_params = {**{k: jnp.asarray(params[k], dtype) for k in ("W", "b", "c")},
                       "b0": jnp.asarray(b0, dtype)}
        return AnnealingPath(log_f=_path_log_f, step=_path_step, sample_base=_path_sample_base,
                             log_z_base=_path_log_z_base, params=path_params,
                             name="rbm block gibbs (Salakhutdinov & Murray path)")

    def log_z_ais(self, params, seed=None, num_temps: int = 10_000, particles: int | None = None,
                  data=None, betas=None, *, checkpoint=None, key=None, num_chains=None):
        """``log Z`` by AIS from the base-rate RBM, through ``emc.log_partition``.

        ``emc.log_partition(self.as_energy(params), method="ais",
        base=self.ais_path(params, data), ...)`` with Salakhutdinov & Murray's
        schedule and one block-Gibbs sweep per temperature.

        Parameters
        ----------
        params
            RBM parameters.
        seed
            An int or a ``jax.random.key`` (``key=`` is its deprecated name).
        num_temps
            Number of inverse temperatures, 0 and 1 included.
        particles
            Independent annealing runs (importance samples), default 100
            (``num_chains=`` is its deprecated name).
        data
            ``(n, n_visible)`` binary data for the base-rate biases; without it
            the base uses this RBM's visible biases ``params["b"]``.
        betas
            Optional increasing schedule from 0 to 1; default: Salakhutdinov &
            Murray's shape with ``num_temps`` points.
        checkpoint
            A directory (or :class:`energymc.io.Checkpoint`): passed to
            :func:`energymc.log_partition`, which saves the run as it goes; the
            same call after an interruption resumes it to the same estimate.

        Returns
        -------
        energymc.LogZ
            ``log_z`` (log of an unbiased estimate of Z, so biased low by
            about ``stderr**2 / 2``), ``stderr``, ``ess``, the per-stage record
            and ``info["log_z_base"]``.
        """
        from energymc.logz import log_partition

        key = _seed_key(renamed("key", "seed", key, seed), "log_z_ais")
        particles = renamed("num_chains", "particles", num_chains, particles, default=100)
        _check_params(params, self.n_visible, self.n_hidden)
        if isinstance(particles, bool) or not isinstance(particles, (int, np.integer)) \
                or particles < 2:
            raise EnergyError(f"particles must be an integer >= 2; got {particles!r}.")
        if betas is None:
            if isinstance(num_temps, bool) or not isinstance(num_temps, (int, np.integer)) \
                    or num_temps < 3:
                raise EnergyError(f"num_temps must be an integer >= 3; got {num_temps!r}.")
            betas = _default_betas(int(num_temps))
        betas = np.asarray(betas, dtype=float)
        if betas.ndim != 1 or betas[0] != 0.0 or betas[-1] != 1.0 or np.any(np.diff(betas) <= 0):
            raise EnergyError("betas must be an increasing 1-d schedule from 0.0 to 1.0.")
        return log_partition(self.as_energy(params), method="ais",
                             base=self.ais_path(params, data), seed=key, schedule=betas,
                             particles=int(particles), mcmc_steps=1, checkpoint=checkpoint)
