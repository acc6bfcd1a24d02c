"""Noise-contrastive estimation (Gutmann & Hyvarinen 2010, 2012).

A logistic classifier tells data from noise with the log-odds
``G(x) = log p_model(x) - log(nu p_noise(x))``, where
``log p_model(x) = -E_theta(x) - log_z`` and ``nu`` noise points are drawn per
data point. ``log_z`` is a free parameter: at the optimum the model is
normalised, so NCE returns a normalised density and its log-partition.

By default (``log_z_update="balance"``) ``log_z`` is not a parameter of the
optimiser: it starts at, and after every update is set to, the value where
the loss is least for the current energy (:func:`balance_log_z`). Left to
the optimiser (``log_z_update="optimiser"``, from ``init_log_z``), a start
tens of nats from the initial model's level on the data is closed through
the energy's scale (many parameters, each moving a step per update) faster
than through ``log_z`` (one), and the model can land mis-scaled or in a flat
region far from the optimum (``benchmarks/RESULTS.md``, "NCE's stall").

The default noise on real-valued data is half a Gaussian fitted to the data
and half a Gaussian fitted to persistent chains on the current model
(``model_noise``): noise fitted to the data alone says little about a model
that starts far from it, and the fit stalls. A model whose mean starts 4 or
more sds from the data can still stall; the run is then flagged
(:meth:`NCE._problems`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from energymc import kernels as _kernels
from energymc.errors import EnergyError, OptionError
from energymc.learn._chains import adapt_init, adapted_step, run_kernel
from energymc.learn._checks import check_data, check_positive
from energymc.learn._learner import LearnerBase
from energymc.learn._state import LearnState

__all__ = ["NCE", "balance_log_z", "chance_loss"]

#: Default weight of the model-following Gaussian in the default noise.
_MODEL_SHARE = 0.5
#: MALA steps per update of the chains behind the model-following Gaussian.
_MODEL_STEPS = 1


class NCE(LearnerBase):
    """Noise-contrastive estimation of ``energy_fn(params, x)`` and its ``log_z``.

    Parameters
    ----------
    energy_fn
        ``energy_fn(params, x) -> scalar`` for ONE point ``x``; or a
        NumPyro-style ``energy_fn(x)`` with ``numpyro.param`` sites.
    optim
        A ``numpyro.optim`` optimiser.
    noise
        A NumPyro distribution whose ``batch_shape + event_shape`` is the
        data's point shape (e.g. ``dist.Normal(0, 3).expand([d]).to_event(1)``).
        Default: a Gaussian with the data's mean and covariance, fitted in
        :meth:`init` (Gutmann & Hyvarinen advise noise close to the data).
    noise_ratio
        ``nu``, noise points per data point (at least one noise point per batch).
    model_noise
        Share of the default noise that follows the model: a Gaussian with the
        mean and covariance of persistent chains on the current energy (one
        MALA step each per update, one chain per batch point, started at data
        points, the step adapted toward MALA's target acceptance), mixed with
        the data-fitted Gaussian. Default (``None``): 0.5 for real-valued data
        with the default noise; 0 (the fitted Gaussian alone, no sampling) for
        0/1 or +-1 data and with ``noise=``. Noise fitted to the data alone
        says little about a model that starts far from it: the classifier
        saturates, and the fit can collapse into a flat tilt and stall (86% off
        on the zoo's off-origin Gaussian); noise where the model puts its mass
        brings back the restoring signal (``benchmarks/RESULTS.md``, "NCE
        with noise that follows the model").
    log_z_update
        ``"balance"`` (the default, unless ``init_log_z`` is given): ``log_z``
        starts balanced on (up to 1024 of) the training points and as many
        noise points, and after each update
        moves to the loss's minimiser for the current energy on that batch
        (a running average over about ten batches that jumps when the
        balance moves by more than a nat); each update uses the value from
        earlier batches, so ``log_z`` never correlates with the batch whose
        gradient it enters. It lives in ``state.extra["log_z"]``.
        ``"optimiser"``: ``log_z`` is a parameter like the energy's, moved by
        ``optim`` from ``init_log_z`` (the behaviour before 2026-12-03; the
        default when ``init_log_z`` is given).
    init_log_z
        With ``log_z_update="optimiser"`` only (giving it selects that): the
        initial ``log_z`` (default 0), or ``"data"``: chosen in :meth:`init`
        so that the classifier starts
        balanced, ``median_i [-E(x_i) - log(nu p_noise(x_i))]`` over (up to
        ``1024`` of) the training points at the initial parameters.

    Notes
    -----
    Loss (per data point): ``-mean_data log sigmoid(G) - nu mean_noise log
    sigmoid(-G)``. ``result.log_z`` is the learned log-normaliser of
    ``exp(-E)``; ``history["accuracy"]`` is the classifier's accuracy on the
    batch (about 0.5 when the model matches data and noise is close to both).
    ``history["chance_loss"]`` is the loss of a model equal to the noise,
    ``(1 + nu) log(1 + nu) - nu log nu``; a run that ends above it is flagged
    in ``result.problems`` (see :meth:`_problems`).
    """

    _name = "NCE"
    _judges_mode_weights = True

    def __init__(self, energy_fn: Callable, optim, noise: Any = None, noise_ratio: float = 1.0,
                 init_log_z: float | str | None = None, log_z_update: str | None = None,
                 model_noise: float | None = None):
        super().__init__(energy_fn, optim)
        if noise is not None and not all(hasattr(noise, m) for m in ("sample", "log_prob")):
            raise OptionError("noise must be a NumPyro distribution (with sample and log_prob), "
                              "or None for a Gaussian fitted to the data.")
        self.noise = noise
        if model_noise is not None:
            try:
                model_noise = float(model_noise)
            except (TypeError, ValueError):
                raise OptionError(f"model_noise must be a number in [0, 1) or None; got "
                                  f"{model_noise!r}.") from None
            if not 0.0 <= model_noise < 1.0:
                raise OptionError(f"model_noise is the model-following share of the default "
                                  f"noise and must be in [0, 1) (0: the fitted Gaussian "
                                  f"alone); got {model_noise!r}.")
            if noise is not None and model_noise > 0:
                raise OptionError("model_noise mixes a model-following Gaussian into the "
                                  "default noise; with noise= your distribution is used as "
                                  "given. Drop one of them.")
        self.model_noise = model_noise
        self.noise_ratio = check_positive("noise_ratio", noise_ratio)
        if log_z_update is None:
            # A start for log_z only means something to the optimiser: code written
            # before "balance" existed (init_log_z=...) keeps its behaviour.
            log_z_update = "balance" if init_log_z is None else "optimiser"
        if log_z_update not in ("balance", "optimiser"):
            raise OptionError(f"log_z_update must be 'balance' (log_z set each update where "
                              f"the loss is least) or 'optimiser' (log_z a parameter of the "
                              f"optimiser); got {log_z_update!r}.")
        self.log_z_update = log_z_update
        if init_log_z is not None and log_z_update == "balance":
            raise OptionError("init_log_z applies with log_z_update='optimiser'; with the "
                              "default 'balance' log_z starts, and stays, where the loss is "
                              "least for the current energy.")
        if init_log_z is None:
            init_log_z = 0.0
        if not _is_data(init_log_z):
            try:
                init_log_z = float(init_log_z)
            except (TypeError, ValueError):
                raise OptionError(f"init_log_z must be a number or 'data' (chosen from the "
                                  f"data); got {init_log_z!r}.") from None
            if not math.isfinite(init_log_z):
                raise OptionError(f"init_log_z must be finite, or 'data' (chosen from the "
                                  f"data); got {init_log_z!r}.")
        self.init_log_z = init_log_z

    # ------------------------------------------------------------------ params
    @property
    def _balance(self) -> bool:
        return self.log_z_update == "balance"

    def _add_internal(self, internal, data):
        if self._balance:  # log_z lives in the state's extra, outside the optimiser
            return {"energy": internal}
        # With init_log_z="data" the value is replaced in init(), once the noise is fitted.
        start = 0.0 if _is_data(self.init_log_z) else self.init_log_z
        return {"energy": internal, "log_z": jnp.asarray(start, data.dtype)}

    def init(self, seed: Any = None, data=None, init_params: Any = None, *,
             batch_size: int | None = None, key: Any = None) -> LearnState:
        """Initial :class:`LearnState`; see :meth:`LearnerBase.init`.

        With ``init_log_z="data"`` the ``log_z`` parameter starts at the median
        over the training points of ``-E(x) - log(nu p_noise(x))``, so that the
        classifier's log-odds ``G`` start centred on the data.
        """
        state = super().init(seed, data, init_params, batch_size=batch_size, key=key)
        if self._balance or not _is_data(self.init_log_z):
            return state
        internal = self.optim.get_params(state.optim_state)
        data = check_data(data)
        b = min(data.shape[0], 128) if batch_size is None else batch_size
        log_z = self._balanced_log_z(internal, state.extra, data, b)
        return state._replace(optim_state=self.optim.init({**internal, "log_z": log_z}))

    def _balanced_log_z(self, internal, extra, data, batch_size: int) -> jax.Array:
        """``log_z`` at which the median log-odds over (up to 1024) data points is 0."""
        n = data.shape[0]
        # An evenly spaced subset: the data may be sorted, and a large energy
        # (a network on images) need not be evaluated on every point.
        points = data[:: max(1, -(-n // 1024))]
        # The noise ratio actually used with this batch size (as in _loss).
        log_nu = jnp.log(max(1, int(round(self.noise_ratio * batch_size))) / batch_size)
        e = jax.vmap(self._spec.energy, in_axes=(None, 0))(internal["energy"], points)
        a = -e - self._data_logp(extra, points) - log_nu
        log_z = jnp.nanmedian(jnp.where(jnp.isfinite(a), a, jnp.nan)).astype(data.dtype)
        if not isinstance(log_z, jax.core.Tracer) and not bool(jnp.isfinite(log_z)):
            raise EnergyError(
                "could not choose NCE's initial log_z: the energy or the noise's log-density "
                "is not finite on any data point at the initial parameters. Check the energy "
                "there, or pass init_log_z= a number.")
        return log_z

    def _model_params(self, internal):
        return internal["energy"]

    def _result_log_z(self, state):
        return float(self.get_log_z(state))

    def get_log_z(self, state) -> jax.Array:
        """The current ``log_z`` (balanced on the latest batch, or the optimiser's parameter)."""
        if self._balance:
            return state.extra["log_z"]
        return self.optim.get_params(state.optim_state)["log_z"]

    # ------------------------------------------------------------------- noise
    def _extra_init(self, key, data, internal, batch_size):
        extra = self._noise_init(data)
        if self._resolve_model_share(data) > 0:
            key, k_model = jax.random.split(key)
            extra = {**extra, **self._model_noise_init(k_model, data, batch_size)}
        if not self._balance:
            return extra
        # The first log_z: balanced on (up to 1024 of) the training points and as
        # many noise points per point as an update draws.
        points = data[:: max(1, -(-data.shape[0] // 1024))]
        m = points.shape[0]
        num_noise = max(1, int(round(self.noise_ratio * m)))
        noise_x, noise_logp = self._noise_sample_logp(key, extra, num_noise, points.shape[1:])
        energy = jax.vmap(self._spec.energy, in_axes=(None, 0))
        nu = num_noise / m
        a = -energy(internal["energy"], points) - jnp.log(nu) - self._data_logp(extra, points)
        b = -energy(internal["energy"], noise_x) - jnp.log(nu) - noise_logp
        log_z = balance_log_z(a.astype(data.dtype), b.astype(data.dtype), nu)
        if not isinstance(log_z, jax.core.Tracer) and not bool(jnp.isfinite(log_z)):
            raise EnergyError(
                "could not choose NCE's initial log_z: the energy or the noise's log-density "
                "is not finite on any data or noise point at the initial parameters. Check "
                "the energy there.")
        return {**extra, "log_z": log_z}

    def _noise_init(self, data):
        """The fitted Gaussian noise's arrays; ``{}`` with ``noise=``."""
        event = tuple(data.shape[1:])
        if self.noise is not None:
            shape = tuple(self.noise.batch_shape) + tuple(self.noise.event_shape)
            if shape != event:
                raise EnergyError(
                    f"noise has batch+event shape {shape}; it must equal the data's point "
                    f"shape {event}. E.g. dist.Normal(0., 1.).expand({list(event)})"
                    f".to_event({len(event)})."
                )
            return {}
        flat = data.reshape(data.shape[0], -1)
        if flat.shape[0] < 2:
            raise EnergyError("fitting the default Gaussian noise needs at least 2 data points; "
                              "pass noise= a NumPyro distribution.")
        loc, chol, inv = _gaussian_fit(flat)
        if not isinstance(chol, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(chol))):
            raise EnergyError("could not fit a Gaussian to the data for the NCE noise; pass "
                              "noise= a NumPyro distribution.")
        return {"loc": loc, "scale_tril": chol, "inv_tril": inv}

    def _noise_sample_logp(self, key, extra, num, event):
        if self.noise is not None:
            x = jnp.asarray(self.noise.sample(key, (num,)), dtype=jnp.result_type(float))
            logp = self.noise.log_prob(x)
            logp = logp.reshape(num, -1).sum(-1) if logp.ndim > 1 else logp
            return x, logp
        with_model = "model_loc" in extra
        # (The fitted noise alone draws from the whole key, as before the model's share.)
        k_eps, k_pick = jax.random.split(key) if with_model else (key, None)
        eps = jax.random.normal(k_eps, (num, extra["loc"].shape[0]), extra["loc"].dtype)
        z = extra["loc"] + eps @ extra["scale_tril"].T
        if with_model:
            from_model = jax.random.bernoulli(k_pick, self._model_share, (num, 1))
            z = jnp.where(from_model, extra["model_loc"] + eps @ extra["model_tril"].T, z)
        return z.reshape((num, *event)), self._default_logp(extra, z)

    def _default_logp(self, extra, z):
        """Log-density of the default noise at ``z`` ``(m, d)``: the fitted Gaussian, mixed
        with the model-following one when there is one."""
        fitted = _gauss_logp(extra["loc"], extra["scale_tril"], extra["inv_tril"], z)
        if "model_loc" not in extra:
            return fitted
        model = _gauss_logp(extra["model_loc"], extra["model_tril"], extra["model_inv"], z)
        w = self._model_share
        return jnp.logaddexp(math.log1p(-w) + fitted, math.log(w) + model)

    def _data_logp(self, extra, x):
        if self.noise is not None:
            logp = self.noise.log_prob(x)
            return logp.reshape(x.shape[0], -1).sum(-1) if logp.ndim > 1 else logp
        return self._default_logp(extra, x.reshape(x.shape[0], -1))

    # ------------------------------------------------- the model-following noise
    def _resolve_model_share(self, data) -> float:
        """Set and return ``self._model_share``, the model-following share of the noise.

        ``model_noise`` as given, or by default 0.5 for real-valued data under
        the default noise and 0 otherwise (0/1 or +-1 data, or a user's
        ``noise=``). Runs on the set-up copy of the learner, before any update
        is traced.
        """
        share = self.model_noise
        if share is None:
            share = 0.0 if self.noise is not None else _MODEL_SHARE
            if share and not isinstance(data, jax.core.Tracer):
                vals = set(np.unique(np.asarray(data)).tolist())
                if vals <= {0.0, 1.0} or vals <= {-1.0, 1.0}:
                    share = 0.0  # no gradient-based chain on discrete states
        self._model_share = float(share)
        return self._model_share

    def _model_noise_init(self, key, data, batch_size):
        """Chains for the model-following noise, started at data points, and their Gaussian."""
        self._kernel = _kernels.get("mala")
        self._options = _kernels.resolve_options(self._kernel, {"step_size": 1.0},
                                                 context="NCE")
        n = data.shape[0]
        idx = jax.random.choice(key, n, (batch_size,), replace=batch_size > n)
        chains = data[idx]
        loc, chol, inv = _gaussian_fit(chains.reshape(batch_size, -1))
        return {**adapt_init(data, None, True), "chains": chains, "model_loc": loc,
                "model_tril": chol, "model_inv": inv}

    def _follow_model(self, internal, extra, key):
        """One MALA step of every chain on the current energy (a constant for the
        gradient), the step adapted toward MALA's target acceptance, and the
        model-following Gaussian refitted to the chains."""
        fixed = jax.lax.stop_gradient(internal["energy"])
        x, acc, div = run_kernel(key, self._kernel, self._options,
                                 lambda z: self._spec.energy(fixed, z), extra["chains"],
                                 extra, _MODEL_STEPS)
        x = jax.lax.stop_gradient(x)
        loc, chol, inv = _gaussian_fit(x.reshape(x.shape[0], -1))
        target = dict(self._options).get("target_accept", 0.574)
        extra = adapted_step({**extra, "chains": x, "model_loc": loc, "model_tril": chol,
                              "model_inv": inv}, acc, target)
        return extra, acc, div

    # -------------------------------------------------------------------- loss
    def _loss(self, internal, extra, batch, key):
        model_info = {}
        if "chains" in extra:
            key, k_chain = jax.random.split(key)
            extra, acc, div = self._follow_model(internal, extra, k_chain)
            model_info = {"model_acceptance": acc.astype(batch.dtype),
                          "model_diverging": div.astype(batch.dtype)}
        b = batch.shape[0]
        num_noise = max(1, int(round(self.noise_ratio * b)))
        nu = num_noise / b  # the ratio actually used in this batch
        noise_x, noise_logp = self._noise_sample_logp(key, extra, num_noise, batch.shape[1:])
        energy = jax.vmap(self._spec.energy, in_axes=(None, 0))
        e_data = energy(internal["energy"], batch)
        e_noise = energy(internal["energy"], noise_x)
        log_nu = jnp.log(nu)
        a = -e_data - log_nu - self._data_logp(extra, batch)
        b_ = -e_noise - log_nu - noise_logp
        if self._balance:
            # The log_z balanced on earlier batches (a constant here), and the one
            # balanced on this batch for the next update: using this batch's own
            # would correlate log_z with the batch and bias the gradient.
            log_z = extra["log_z"]
            extra = {**extra, "log_z": _next_log_z(log_z, balance_log_z(
                jax.lax.stop_gradient(a), jax.lax.stop_gradient(b_), nu))}
        else:
            log_z = internal["log_z"]
        g_data = a - log_z
        g_noise = b_ - log_z
        loss = -(jnp.mean(jax.nn.log_sigmoid(g_data))
                 + nu * jnp.mean(jax.nn.log_sigmoid(-g_noise)))
        acc = (jnp.sum(g_data > 0) + jnp.sum(g_noise < 0)) / (b + num_noise)
        info = {"energy_data": jnp.mean(e_data), "energy_noise": jnp.mean(e_noise),
                "accuracy": acc.astype(batch.dtype), "log_z": log_z,
                "chance_loss": jnp.asarray(chance_loss(nu), batch.dtype), **model_info}
        return loss, (extra, info)

    # ------------------------------------------------------------ the verdict
    def _problems(self, history: dict) -> list[str]:
        """A run whose loss ends above a constant classifier's: the model is stuck.

        A model proportional to the noise makes the log-odds ``G`` constant and
        reaches :func:`chance_loss`; any fit that tells data from noise at all
        does better, and with noise fitted to Gaussian-like data the optimum is
        about that value. Over the last quarter of updates, a mean loss above
        it by more than 4 standard errors (spread over updates) and 5% means
        the energy is far from the data's, typically stranded in a flat
        region after starting far from the data (``benchmarks/RESULTS.md``,
        "NCE's stall"). Smaller misfits pass unflagged: the check catches
        gross failures only.
        """
        loss = np.asarray(history.get("loss", []), float)
        base = np.asarray(history.get("chance_loss", []), float)
        if loss.ndim != 1 or loss.size < 8 or base.shape != loss.shape:
            return []  # restarts are judged by select; too short a run says nothing
        tail = slice(-max(loss.size // 4, 4), None)
        lt, bt = loss[tail], base[tail]
        ok = np.isfinite(lt)
        if ok.sum() < 4:
            return []
        excess = float(np.mean(lt[ok] - bt[ok]))
        se = float(np.std(lt[ok], ddof=1) / np.sqrt(ok.sum()))
        level = float(np.mean(bt[ok]))
        if not (excess > 4 * se and excess > 0.05 * level):
            return []
        return [
            f"NCE is stuck: over the last {int(ok.sum())} updates its loss averaged "
            f"{level + excess:.4g}, above the {level:.4g} of a model that equals the noise "
            f"(by {excess:.3g}, {excess / max(se, 1e-300):.0f} standard errors), so the "
            "learned energy does not match the data. This happens when the initial energy "
            "puts its mass far from the data (e.g. a mean several sds away): start the "
            "parameters near the data (a mean at the data's mean), leave model_noise unset "
            "(noise that follows the model) if it was off, or use CD."
        ]



def balance_log_z(a, b, nu):
    """The ``log_z`` that minimises NCE's loss for fixed energies: ``c`` with
    ``mean_a sigmoid(c - a) = nu mean_b sigmoid(b - c)``.

    ``a`` ``(n,)`` and ``b`` ``(m,)`` are ``-E - log(nu p_noise)`` on data and
    on noise points; the loss is convex in ``c`` and its derivative increases
    from ``-nu`` to ``1``, so bisection on a bracket that holds every value
    finds the root whatever the start (Newton's step is unbounded where the
    classifier saturates, which is where a good ``log_z`` is most needed).
    Non-finite values are left out. Returns a scalar (``nan`` when no value
    is finite).
    """
    a_ok, b_ok = jnp.isfinite(a), jnp.isfinite(b)
    n_a = jnp.maximum(jnp.sum(a_ok), 1)
    n_b = jnp.maximum(jnp.sum(b_ok), 1)
    big = jnp.asarray(jnp.finfo(a.dtype).max, a.dtype)
    lo = jnp.minimum(jnp.min(jnp.where(a_ok, a, big)), jnp.min(jnp.where(b_ok, b, big)))
    hi = jnp.maximum(jnp.max(jnp.where(a_ok, a, -big)), jnp.max(jnp.where(b_ok, b, -big)))
    # sigmoid(+-40) is 1 or 0 to float precision, so the root is inside.
    margin = 40.0 + jnp.abs(jnp.log(nu))
    lo, hi = lo - margin, hi + margin

    def slope(c):
        da = jnp.sum(jnp.where(a_ok, jax.nn.sigmoid(c - a), 0.0)) / n_a
        db = jnp.sum(jnp.where(b_ok, jax.nn.sigmoid(b - c), 0.0)) / n_b
        return da - nu * db

    def halve(_, bracket):
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        up = slope(mid) < 0
        return jnp.where(up, mid, lo), jnp.where(up, hi, mid)

    # 60 halvings shrink any float32 bracket to a few ulps.
    lo, hi = jax.lax.fori_loop(0, 60, halve, (lo, hi))
    c = 0.5 * (lo + hi)
    return jnp.where(jnp.any(a_ok) & jnp.any(b_ok), c, jnp.nan).astype(a.dtype)


#: Weight of the latest batch's balanced log_z in the running value, and the
#: distance (nats) beyond which the running value jumps to it: a batch's
#: balance jitters by its sampling error (hundredths of a nat for batches of
#: ~100), which the average smooths; a move of a nat or more is the energy
#: changing, which the average would only trail.
_SMOOTH, _JUMP = 0.1, 1.0


def _next_log_z(log_z, balanced):
    """The running ``log_z`` after one batch whose balanced value is ``balanced``.

    A batch with no finite value keeps the previous ``log_z`` (the loss
    reports the NaN; the run goes on).
    """
    step = balanced - log_z
    new = jnp.where(jnp.abs(step) > _JUMP, balanced, log_z + _SMOOTH * step)
    return jnp.where(jnp.isfinite(balanced), new, log_z).astype(log_z.dtype)


def chance_loss(nu: float) -> float:
    """NCE's loss (per data point) of a constant classifier, ``(1 + nu) log(1 + nu) - nu log nu``.

    It is the loss of any model proportional to the noise, whose log-odds
    ``G`` is the constant ``-log(nu)``: the reference of the stuck check.
    """
    return float((1.0 + nu) * math.log1p(nu) - (nu * math.log(nu) if nu > 0 else 0.0))


def _is_data(value) -> bool:
    """Whether ``init_log_z`` asks for the balanced start chosen from the data."""
    return isinstance(value, str) and value == "data"


def _gauss_logp(loc, tril, inv, z):
    """log N(z; loc, L L^T) for ``z`` ``(m, d)``, with ``L^-1`` precomputed.

    Written out rather than through ``numpyro``'s ``MultivariateNormal``, whose
    per-point triangular solves made the default-noise update 7x slower on CPU.
    """
    d = loc.shape[0]
    white = (z - loc) @ inv.T
    return (-0.5 * jnp.sum(white**2, axis=-1) - jnp.sum(jnp.log(jnp.diag(tril)))
            - 0.5 * d * jnp.log(2 * jnp.pi))


def _gaussian_fit(flat):
    """``(loc, L, L^-1)`` of a Gaussian with the mean and covariance of ``flat`` ``(n, d)``.

    A small ridge, relative to the average variance, keeps the Cholesky
    factor finite for degenerate points (e.g. constant pixels).
    """
    d = flat.shape[1]
    loc = jnp.mean(flat, 0)
    cov = jnp.atleast_2d(jnp.cov(flat, rowvar=False))
    ridge = 1e-3 * jnp.trace(cov) / d + 1e-6
    chol = jnp.linalg.cholesky(cov + ridge * jnp.eye(d, dtype=flat.dtype))
    # The inverse factor once here: XLA's CPU triangular solve on a batch of
    # points costs more than the whole rest of an update.
    inv = jax.scipy.linalg.solve_triangular(chol, jnp.eye(d, dtype=chol.dtype), lower=True)
    return loc, chol, inv
