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
fixed parameters; ``"sgld"``, short-run Langevin with a noise scale set apart
from the step size (Du & Mordatch 2019); or a user callable
``sampler(key, params, x_batch, k)``, e.g. block Gibbs for an RBM.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from energymc import kernels as _kernels
from energymc._util import check_bool
from energymc.errors import EnergyError, OptionError
from energymc.learn._chains import adapt_init, adapted_step, run_kernel
from energymc.learn._checks import check_int, check_positive
from energymc.learn._driver import loop_slows, scan
from energymc.learn._learner import LearnerBase

__all__ = ["CD"]

#: Target Metropolis acceptance of an unadjusted Langevin move in CD's step adaptation.
_ULA_TARGET = 0.995
#: The largest k whose steps ``unroll=None`` unrolls (compile time grows with k).
_UNROLL_MAX_K = 64


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
        ``None`` (default): ``"mala"`` with an adapted step size for
        continuous data, single-site ``"gibbs"`` when every data value is 0/1
        or every one is -1/+1. Or a method name for
        :func:`energymc.kernels.get` (``"mala"``, ``"langevin"``, ``"hmc"``,
        ``"nuts"``, ``"barker"``, ``"rwm"``, ``"gibbs"``, ...) or a callable
        ``sampler(key, params, x_batch, k) -> x_batch_new`` with ``x_batch``
        ``(batch, *event)`` (``(chains, *event)`` with ``chains=``) and
        ``params`` in the user's form (e.g. ``rbm.block_gibbs``). Or
        ``"sgld"``: ``k`` steps of ``x <- x - step_size grad E(x) +
        noise_scale z`` with ``z ~ N(0, I)``, no Metropolis correction and no
        adaptation (needs ``step_size=``; see ``noise_scale`` and Notes).
    step_size
        The kernel's step size (BlackJAX's convention; for ``"langevin"``,
        ``x + h grad log p + sqrt(2 h) noise``). ``None`` (default): adapted
        online (see ``adapt_step``). A number fixes it. Not used by a
        callable sampler.
    adapt_step
        Adapt the step size during training (default: when ``step_size`` is
        not given). After every update ``log h`` moves by ``acceptance -
        target_accept`` (a Robbins-Monro rule with constant gain, so that the
        step follows the model as it changes), and the kernel uses the data's
        per-coordinate variances as its diagonal metric unless
        ``sampler_options`` gives ``inverse_mass_matrix``. With
        ``step_size=`` too, that is the starting step. ``history["step_size"]``
        records the step of every update.
    target_accept
        The acceptance the adaptation aims at; default the kernel's own
        (MALA 0.574, HMC 0.65, NUTS 0.8, Barker 0.4, RWM 0.234). For
        unadjusted ``"langevin"`` it is the acceptance a Metropolis step
        would have had -- a measure of the discretisation bias, which grows
        with the step -- held at 0.995 by default.
    lag_tolerance
        PCD only: how far (in spreads of the chains' energy) the model may
        move while its persistent chains catch up before the run is
        reported as biased (see Notes).
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
    noise_scale
        ``sampler="sgld"`` only: the standard deviation of the noise added at
        each step. ``None`` (default) uses ``sqrt(2 step_size)``, which makes
        the step an unadjusted Langevin step for ``exp(-E)``. Any other value
        samples (for a small step) ``exp(-E / T)`` with ``T = noise_scale^2 /
        (2 step_size)``: see Notes.
    bounds
        ``sampler="sgld"`` only: ``(low, high)``; every step's position is
        clipped to this box (e.g. ``(0, 1)`` for images scaled to ``[0,
        1]``), as Du & Mordatch do. ``None`` (default): no clipping.
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
    unroll
        Compile the negative phase's ``k`` steps, and each update of the
        training loop, without a loop around them (``True``), or as rolled
        ``lax.scan`` loops (``False``). ``None`` (default): unrolled when
        running on CPU, the energy contains a convolution and ``k <= 64``;
        rolled otherwise. XLA:CPU runs convolutions inside a compiled loop
        about ten times slower than outside one (``benchmarks/RESULTS.md``);
        unrolling costs compile time that grows with ``k``, and the training
        loop then calls one compiled update per step from the host. The
        updates are the same; XLA fuses the written-out program differently,
        so float32 results can differ in their last bits.

    Notes
    -----
    The reported loss is the surrogate ``mean E(data) - mean E(negatives)``
    (plus the penalty), whose gradient is the CD gradient. It is not a
    log-likelihood; it hovers near zero when the model fits.

    History: ``energy_neg`` (mean negative energy), ``acceptance`` (mean over
    chains and steps), ``diverging`` (fraction of chains with a rejected
    non-finite proposal), ``step_size`` and ``neg_ess``: ``B (1 - rho) / (1 +
    rho)``, with ``rho`` the correlation across the ``B`` chains between the
    energy at the start and at the end of the ``k`` steps -- how many of the
    negatives are effectively fresh draws rather than copies of their starts.
    It is ``0`` when chains did not move and near ``B`` when they forgot their
    start. ``chain_lag = B / neg_ess`` is then about how many updates the
    chains need to forget their state.

    Lagging chains (PCD): ``energy_shift`` is how far each update moved the
    model's mean energy of the persistent chains' states, in units of its
    spread over the chains. Over the last quarter of the updates, median
    ``chain_lag`` times the mean ``energy_shift`` estimates how far the model
    moves while the chains catch up. Above ``lag_tolerance`` the negatives
    come from an outdated model and the gradient is biased: ``run`` says so
    in ``result.problems`` and with an :class:`energymc.errors.EnergymcWarning`.

    SGLD with a mismatched noise scale: the step ``x - h grad E + s z``
    leaves (as ``h -> 0``) ``exp(-E / T)`` invariant, ``T = s^2 / (2h)``.
    Contrastive divergence stops when its negatives look like the data, so
    with ``T != 1`` it learns ``E_theta ~ -T log p_data``: the samples of the
    same short-run sampler look right, but ``exp(-E_theta)`` itself is
    ``p_data^T`` -- flatter than the data for ``T < 1`` (the usual image
    settings, e.g. ``h = 10, s = 0.005`` have ``T ~ 1e-6``) -- so its
    likelihoods, ``log Z`` and exact MCMC samples describe a different
    distribution. ``tests/learn/test_deep.py`` shows it on a Gaussian: the learned
    precision is ``1/T`` times too small.
    """

    _name = "CD"
    _judges_mode_weights = True

    def __init__(self, energy_fn: Callable, optim, k: int = 10, persistent: bool = False,
                 sampler: str | Callable | None = None, step_size: float | None = None,
                 buffer_size: int | None = None, reinit_prob: float = 0.05,
                 energy_l2: float = 0.0, sampler_options: dict | None = None,
                 noise: Any = None, ema: float | None = None, chains: int | None = None,
                 adapt_step: bool | None = None, target_accept: float | None = None,
                 lag_tolerance: float = 0.5, noise_scale: float | None = None,
                 bounds: tuple | None = None, unroll: bool | None = None):
        super().__init__(energy_fn, optim, ema=ema)
        if unroll is not None and not isinstance(unroll, bool):
            raise OptionError(f"unroll must be None (decide from the energy), True or False; "
                              f"got {unroll!r}.")
        self.unroll = unroll
        # What the compiled loops do; decided again from the energy at set-up.
        self._unrolled = bool(unroll)
        self.k = check_int("k", k, 0)
        self.persistent = check_bool("persistent", persistent)
        self.step_size = None if step_size is None else check_positive("step_size", step_size)
        if adapt_step is not None and not isinstance(adapt_step, bool):
            raise OptionError(f"adapt_step must be None, True or False; got {adapt_step!r}.")
        if target_accept is not None:
            ta = check_positive("target_accept", target_accept)
            if not ta < 1.0:
                raise OptionError(f"target_accept must be in (0, 1); got {target_accept!r}.")
        self.lag_tolerance = check_positive("lag_tolerance", lag_tolerance)
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
        self.noise_scale, self.bounds = self._check_sgld(sampler, noise_scale, bounds)
        # None: MALA with an adapted step, or Gibbs once init sees 0/1 or +-1 data.
        self._auto_sampler = sampler is None
        self._init_args = (adapt_step, target_accept, sampler_options)
        if sampler is None:
            sampler = "mala"
        self.sampler = sampler
        self._set_sampler(sampler, adapt_step, target_accept, sampler_options)

    def _check_sgld(self, sampler, noise_scale, bounds):
        """``noise_scale`` and ``bounds`` checked; both belong to ``sampler="sgld"``."""
        if sampler != "sgld":
            if noise_scale is not None or bounds is not None:
                raise OptionError(
                    "noise_scale= and bounds= are options of sampler='sgld' (Langevin with a "
                    "separately set noise scale); pass sampler='sgld' with them.")
            return None, None
        if noise_scale is not None:
            noise_scale = check_positive("noise_scale", noise_scale)
        if bounds is not None:
            try:
                low, high = (float(b) for b in bounds)
            except (TypeError, ValueError):
                raise OptionError(f"bounds must be a pair (low, high); got {bounds!r}.") from None
            if not low < high:
                raise OptionError(f"bounds must have low < high; got {bounds!r}.")
            bounds = (low, high)
        return noise_scale, bounds

    def _set_sampler(self, sampler, adapt_step, target_accept, sampler_options):
        if sampler == "sgld":
            self._kernel = None
            self.adapt_step, self.target_accept, self._data_metric = False, None, False
            if adapt_step or target_accept is not None:
                raise OptionError("sampler='sgld' runs with a fixed step and has no acceptance "
                                  "rate to adapt to; drop adapt_step/target_accept.")
            if sampler_options:
                raise OptionError("sampler='sgld' takes step_size=, noise_scale= and bounds=, "
                                  "not sampler_options.")
            if self.step_size is None:
                raise OptionError("sampler='sgld' needs step_size= (e.g. step_size=0.01): it "
                                  "is not adapted.")
        elif callable(sampler) and not isinstance(sampler, str):
            self._kernel = None
            self.adapt_step, self.target_accept, self._data_metric = False, None, False
            if adapt_step:
                raise OptionError("adapt_step=True adapts a named kernel's step size; a "
                                  "callable sampler tunes itself.")
            if sampler_options:
                raise OptionError(
                    "sampler_options apply to a named kernel, not a callable sampler.")
        elif isinstance(sampler, str):
            self._kernel = _kernels.get(sampler)  # OptionError lists valid names
            opts = dict(sampler_options or {})
            has_step = "step_size" in self._kernel.defaults
            if self.step_size is None and opts.get("step_size") is not None:
                self.step_size = check_positive("step_size", opts["step_size"])
            # Online adaptation is the default whenever no step size is given,
            # for kernels with an acceptance to aim at (not MCLMC's).
            can_adapt = has_step and ("target_accept" in self._kernel.defaults
                                      or target_accept is not None)
            if adapt_step and not can_adapt:
                raise OptionError(f"sampler {sampler!r} has no acceptance rate to adapt its "
                                  "step to; pass step_size= (and target_accept= to adapt).")
            self.adapt_step = can_adapt and (self.step_size is None if adapt_step is None
                                             else adapt_step)
            if has_step and self.step_size is None and not self.adapt_step:
                if not can_adapt:
                    raise OptionError(f"sampler {sampler!r} needs step_size=: it has no "
                                      "acceptance rate to adapt a step to.")
                raise OptionError("adapt_step=False runs the kernel with a fixed step: pass "
                                  "step_size= too (or leave adapt_step unset to adapt it).")
            if has_step:
                # A placeholder when adapting: the step then lives in the state.
                opts["step_size"] = self.step_size if self.step_size is not None else 1.0
            self._options = _kernels.resolve_options(self._kernel, opts, context="CD")
            missing = [n for n, v in self._options if v is None and n in ("step_size", "L")]
            if missing:
                raise OptionError(f"sampler {sampler!r} needs sampler_options={{{missing[0]!r}: "
                                  "...}}: CD runs kernels with fixed parameters.")
            resolved = dict(self._options)
            self.target_accept = (float(target_accept) if target_accept is not None
                                  else resolved.get("target_accept"))
            if self._kernel.name == "langevin" and target_accept is None:
                # Unadjusted: the bias grows with the step, so the Metropolis
                # acceptance the move would have had is held near 1, not at
                # the 0.9 that sampling uses (0.9 left 35% error in a
                # Gaussian's precision, 0.99 5%, 0.995 about 3%).
                self.target_accept = _ULA_TARGET
            # The data's variances as a diagonal metric, unless the user gave one.
            self._data_metric = (self.adapt_step and "inverse_mass_matrix" in resolved
                                 and resolved["inverse_mass_matrix"] is None)
        else:
            raise OptionError(
                "sampler must be None, a method name such as 'mala' or 'gibbs', or a callable "
                f"sampler(key, params, x_batch, k) -> x_batch_new; got {sampler!r}."
            )

    # ------------------------------------------------------------------ setup
    def _extra_init(self, key, data, internal, batch_size):
        # Runs on the set-up copy of the learner (LearnerBase._set_up): the
        # sampler and support chosen from the data below are fixed there
        # before any update is traced, never changed on a learner whose
        # update was compiled.
        event = data.shape[1:]
        num = batch_size if self.chains is None else self.chains
        if self._auto_sampler and not isinstance(data, jax.core.Tracer):
            vals = set(np.unique(np.asarray(data)).tolist())
            discrete = vals <= {0.0, 1.0} or vals <= {-1.0, 1.0}
            self.sampler = "gibbs" if discrete else "mala"
            adapt_step, target_accept, sampler_options = self._init_args
            self._set_sampler(self.sampler, None if discrete else adapt_step,
                              None if discrete else target_accept,
                              None if discrete else sampler_options)
        self._unrolled = self._decide_unroll(internal, data)
        if self._kernel is not None:
            self._check_support(data)
        elif self.sampler == "sgld":
            pass
        else:
            # The sampler sees the whole pool of chains at once.
            self._check_callable(key, internal, jax.ShapeDtypeStruct((num, *event), data.dtype))
        extra = self._adapt_init(data)
        if not self.persistent:
            return extra
        k_perm, k_buf = jax.random.split(key)
        if self.buffer_size is None:
            # PCD: the chains start at a random subset of the data (with
            # replacement only when the pool is larger than the data).
            n = data.shape[0]
            idx = jax.random.choice(k_perm, n, (num,), replace=num > n)
            # e_last: the chains' mean energy under the previous parameters,
            # for the energy shift between updates (NaN before the first).
            return {**extra, "chains": data[idx], "e_last": jnp.asarray(jnp.nan, data.dtype)}
        if self.buffer_size < batch_size:
            raise OptionError(f"buffer_size={self.buffer_size} is smaller than batch_size="
                              f"{batch_size}; the buffer must hold at least one batch.")
        flat = data.reshape(data.shape[0], -1)
        extra = {**extra, "noise_loc": jnp.mean(flat, 0).reshape(event),
                 "noise_scale": (jnp.std(flat, 0) + 1e-6).reshape(event)}
        if self.noise is not None:
            self._check_noise(event)
        # Du & Mordatch start the whole buffer from noise.
        extra["buffer"] = self._fresh(k_buf, extra, self.buffer_size, event)
        return extra

    def _decide_unroll(self, internal, data) -> bool:
        """``unroll`` as given, else whether a compiled loop would slow the energy down.

        Only XLA:CPU's convolutions are known to run much slower inside a
        loop (``benchmarks/RESULTS.md``); unrolling anything else buys
        nothing and costs compile time, so the default leaves it rolled.
        """
        if self.unroll is not None:
            return self.unroll
        if self.k == 0 or self.k > _UNROLL_MAX_K:
            return False
        return loop_slows(self._spec.energy, internal, data[0])

    def _adapt_init(self, data):
        """The adapted step's state (:func:`energymc.learn._chains.adapt_init`), or ``{}``."""
        if not self.adapt_step:
            return {}
        return adapt_init(data, self.step_size, self._data_metric)

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
    def _run_kernel(self, key, params, x0, extra, k=None):
        """``k`` kernel steps from every row of ``x0``; returns (x, acceptance, diverging)."""
        return run_kernel(key, self._kernel, self._options,
                          lambda z: self._spec.user_energy(params, z), x0, extra,
                          self.k if k is None else k, self._unrolled)

    def sample_negatives(self, key, params, x0, state=None, k: int | None = None):
        """Run the negative phase's sampler from ``x0`` under user-form ``params``.

        For instance short-run samples of a trained model from noise, or more
        steps from the replay buffer (``state.extra["buffer"]``).

        Parameters
        ----------
        key
            A ``jax.random.key`` or an int seed.
        params
            User-form parameters, e.g. ``result.params``.
        x0
            ``(n, *event)`` starting points.
        state
            The run's final :class:`LearnState` (``result.state``), whose
            adapted step size and metric a named kernel then uses; not
            needed for ``"sgld"`` or a callable sampler.
        k
            Steps; default the learner's ``k``.

        Returns
        -------
        jax.Array
            ``(n, *event)``.
        """
        from energymc.sampling import as_key

        if self._spec is None:
            raise OptionError("call init() or run() first: the parameter form is set there.")
        k = self.k if k is None else check_int("k", k, 0)
        x0 = jnp.asarray(x0, dtype=jnp.result_type(float))
        extra = {} if state is None else state.extra
        if self.adapt_step and "log_step" not in extra:
            raise OptionError("this learner adapts its step size: pass state=result.state.")
        key = as_key(key)
        if k == 0:
            return x0
        if self.sampler == "sgld":
            return self._sgld(key, params, x0, k)[0]
        if self._kernel is None:
            return jnp.asarray(self.sampler(key, params, x0, k), x0.dtype)
        return self._run_kernel(key, params, x0, extra, k)[0]

    def _negatives(self, key, params, x0, extra):
        if self.k == 0:
            nan = jnp.asarray(jnp.nan, x0.dtype)
            return x0, nan, jnp.zeros((), x0.dtype)
        if self.sampler == "sgld":
            return self._sgld(key, params, x0)
        if self._kernel is None:
            x = self.sampler(key, params, x0, self.k)
            nan = jnp.asarray(jnp.nan, x0.dtype)
            return jnp.asarray(x, x0.dtype), nan, jnp.zeros((), x0.dtype)
        return self._run_kernel(key, params, x0, extra)

    def _sgld(self, key, params, x0, k=None):
        """``k`` SGLD steps from every row of ``x0``; returns (x, NaN acceptance, diverging).

        A step that would give a non-finite position is not taken (the chain
        stays put) and counted in ``diverging``.
        """
        h = jnp.asarray(self.step_size, x0.dtype)
        s = jnp.asarray(np.sqrt(2.0 * self.step_size) if self.noise_scale is None
                        else self.noise_scale, x0.dtype)
        grad = jax.vmap(jax.grad(lambda z: self._spec.user_energy(params, z)))
        axes = tuple(range(1, x0.ndim))

        def step(x, kk):
            new = x - h * grad(x) + s * jax.random.normal(kk, x.shape, x.dtype)
            if self.bounds is not None:
                new = jnp.clip(new, self.bounds[0], self.bounds[1])
            ok = jnp.all(jnp.isfinite(new), axis=axes)
            return jnp.where(ok.reshape((-1,) + (1,) * (x.ndim - 1)), new, x), ~ok

        x, bad = scan(step, x0, jax.random.split(key, self.k if k is None else k),
                      unroll=self._unrolled)
        nan = jnp.asarray(jnp.nan, x0.dtype)
        return x, nan, jnp.mean(jnp.any(bad, axis=0).astype(x0.dtype))

    def _adapt(self, extra, acc):
        """One step of the log step size toward ``target_accept`` (:func:`adapted_step`)."""
        if "log_step" not in extra or self.k == 0:
            return extra
        return adapted_step(extra, acc, self.target_accept)

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

    # ------------------------------------------------------------ the verdict
    def _problems(self, history: dict) -> list[str]:
        """Persistent chains that lag the model, judged over the last quarter of updates.

        ``chain_lag`` (``B / neg_ess``) is how many updates the chains take to
        forget their state; ``energy_shift`` how far each update moved the
        model's energy of the chains' states, in units of its spread over the
        chains. Their product -- how far the model moves while the chains
        catch up -- above ``lag_tolerance`` means the negatives come from an
        older model than the one being fitted, and the gradient is biased.
        The mean shift, not its absolute value, enters: parameters that only
        jitter around their optimum leave the chains' law unchanged.
        """
        if not self.persistent or self.buffer_size is not None or self.k == 0:
            return []
        lag = np.asarray(history.get("chain_lag", []), float)
        shift = np.asarray(history.get("energy_shift", []), float)
        if lag.size == 0:
            return []
        tail = slice(-max(lag.size // 4, 1), None)
        lag_t, shift_t = np.median(lag[tail]), shift[tail]
        shift_t = shift_t[np.isfinite(shift_t)]
        drift = abs(float(np.mean(shift_t))) if shift_t.size else 0.0
        stale = lag_t * drift if np.isfinite(lag_t) else (np.inf if drift > 0 else 0.0)
        if not stale > self.lag_tolerance:
            return []
        fix = ("more kernel steps (k=)" if self._kernel is None else
               "more kernel steps (k=), an adapted step size (leave step_size unset)")
        return [
            f"persistent chains lag the model: over the last {lag[tail].size} updates they "
            f"needed about {lag_t:.3g} updates to forget their state (history['chain_lag']) "
            f"while each update moved the model's energy of their states by "
            f"{drift:.3g} of its spread (history['energy_shift']), so the negatives come "
            f"from a model {stale:.2g} spreads away (tolerance {self.lag_tolerance:g}). The "
            f"learned parameters are biased; use {fix}, or a smaller or decaying learning "
            "rate."
        ]

    # -------------------------------------------------------------------- loss
    def _loss(self, internal, extra, batch, key):
        k_start, k_neg = jax.random.split(key)
        energy = jax.vmap(self._spec.energy, in_axes=(None, 0))
        # The negatives are constants for the gradient: only E's explicit
        # dependence on theta enters the CD estimator.
        fixed = jax.lax.stop_gradient(internal)
        user_fixed = self._spec.to_user(fixed)
        x0, write_back = self._starts(k_start, extra, batch)
        neg, acc, div = self._negatives(k_neg, user_fixed, x0, extra)
        neg = jax.lax.stop_gradient(neg)
        e_data = energy(internal, batch)
        e_neg = energy(internal, neg)
        loss = jnp.mean(e_data) - jnp.mean(e_neg)
        if self.energy_l2 > 0:
            loss = loss + self.energy_l2 * (jnp.mean(e_data**2) + jnp.mean(e_neg**2))
        e_start = energy(fixed, x0)
        e_end = jax.lax.stop_gradient(e_neg)
        ess = _start_end_ess(e_start, e_end)
        nan = jnp.asarray(jnp.nan, e_data.dtype)
        step = jnp.exp(extra["log_step"]) if "log_step" in extra else jnp.asarray(
            nan if self.step_size is None else self.step_size, e_data.dtype)
        info = {"energy_data": jnp.mean(e_data), "energy_neg": jnp.mean(e_neg),
                "acceptance": acc, "diverging": div, "neg_ess": ess,
                "step_size": step.astype(e_data.dtype),
                # Updates the chains take to forget their state: B / neg_ess.
                "chain_lag": x0.shape[0] / jnp.maximum(ess, 1e-12),
                "energy_shift": nan}
        new_extra = self._adapt(write_back(neg), acc)
        if "e_last" in extra:
            # How far this update's parameters moved the energy of the chains'
            # states, in units of its spread over the chains: the chains were
            # drawn for the previous parameters.
            sd = jnp.std(e_start)
            info["energy_shift"] = (jnp.mean(e_start) - extra["e_last"]) / jnp.where(
                sd > 0, sd, 1.0)
            new_extra = {**new_extra, "e_last": jnp.mean(e_end)}
        return loss, (new_extra, info)


def _start_end_ess(e0, e1):
    """``B (1 - rho) / (1 + rho)`` from the start/end energy correlation over ``B`` chains."""
    b = e0.shape[0]
    a, c = e0 - jnp.mean(e0), e1 - jnp.mean(e1)
    denom = jnp.sqrt(jnp.sum(a * a) * jnp.sum(c * c))
    # Chains that did not move at all (k=0, or all rejected): rho = 1.
    rho = jnp.where(denom > 0, jnp.sum(a * c) / jnp.where(denom > 0, denom, 1.0), 1.0)
    rho = jnp.clip(rho, 0.0, 1.0)
    return b * (1.0 - rho) / (1.0 + rho)
