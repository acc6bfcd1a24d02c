"""JEM: a classifier that is also an energy (Grathwohl et al. 2020).

A classifier's logits ``f(x)`` define ``p(y | x) = softmax(f(x))[y]`` and,
read as negative energies of the pairs ``(x, y)``, an energy of ``x`` alone:
``E(x) = -logsumexp_y f(x)[y]``. JEM fits both at once: the cross-entropy of
``p(y | x)`` plus the contrastive-divergence loss of ``E`` on the same images,
with CD's negative phase (a replay buffer and short-run SGLD, as for any deep
energy). The model then classifies, generates and scores inputs for
out-of-distribution detection with one network.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from energymc.errors import EnergyError, OptionError
from energymc.learn._checks import check_positive
from energymc.learn._state import LearnResult, LearnState
from energymc.learn.cd import CD

__all__ = ["JEM"]


class JEM(CD):
    """Joint energy-based model: ``p(y | x)`` by cross-entropy, ``p(x)`` by CD.

    Parameters
    ----------
    logits_fn
        ``logits_fn(params, x) -> (num_classes,)`` for ONE point ``x``, e.g.
        ``emc.nn.ModuleEnergy(net, output="logits").logits``. The energy is
        ``-logsumexp(logits_fn(params, x))``.
    optim
        A ``numpyro.optim`` optimiser.
    gen_weight
        Weight of the generative (CD) term against the cross-entropy;
        ``0`` trains a plain classifier (the negative control of
        ``tests/learn/test_deep.py``), skipping the negative phase's cost only in
        its effect on the gradient, not in compute.
    **cd_options
        Everything :class:`energymc.learn.CD` takes (``k``, ``sampler``,
        ``step_size``, ``noise_scale``, ``bounds``, ``persistent``,
        ``buffer_size``, ``reinit_prob``, ``energy_l2``, ``noise``, ``ema``,
        ...). JEM's recipe is a replay buffer with SGLD: ``persistent=True,
        buffer_size=..., sampler="sgld", step_size=..., noise_scale=...``.

    Notes
    -----
    ``run(key, num_steps, data, labels, init_params, ...)`` and
    ``init(key, data, labels, init_params)`` take the integer labels
    ``(n,)`` beside the images; the rest is :meth:`CD.run`'s. History adds
    ``cross_entropy`` and ``accuracy`` (of the batch, before the update);
    ``loss`` is ``cross_entropy + gen_weight * CD loss``.

    Internally each image travels with its label as one flat row (the
    learner driver batches one array), which is why ``update`` takes such
    rows: build them with :meth:`pack`.
    """

    _name = "JEM"
    _judges_mode_weights = False  # a classifier's energy, on images

    def __init__(self, logits_fn: Callable, optim, *, gen_weight: float = 1.0, **cd_options):
        if not callable(logits_fn):
            raise EnergyError("logits_fn must be a callable logits_fn(params, x) -> "
                              f"(num_classes,); got {type(logits_fn).__name__}.")
        self.logits_fn = logits_fn
        self.gen_weight = check_positive("gen_weight", gen_weight, allow_zero=True)

        def energy_fn(params, x):
            return -jax.nn.logsumexp(logits_fn(params, x))

        super().__init__(energy_fn, optim, **cd_options)
        self._x_shape: tuple | None = None
        self.num_classes: int | None = None

    # --------------------------------------------------------------- packing
    def pack(self, data, labels) -> jax.Array:
        """Images ``(n, *event)`` and labels ``(n,)`` as rows ``(n, prod(event) + 1)``."""
        x = np.asarray(data)
        y = np.asarray(labels)
        if x.ndim < 2:
            raise EnergyError(f"data has shape {x.shape}; it must be (n_points, *event_shape).")
        if y.shape != (x.shape[0],):
            raise EnergyError(f"labels must be (n,) = ({x.shape[0]},), one per data point; got "
                              f"shape {y.shape}.")
        if not (np.issubdtype(y.dtype, np.integer) or np.all(np.mod(y, 1) == 0)) or y.min() < 0:
            raise EnergyError("labels must be integer class indices 0, 1, ..., C-1.")
        if self._x_shape is not None and tuple(x.shape[1:]) != self._x_shape:
            raise EnergyError(f"data points have shape {x.shape[1:]}; this JEM was started on "
                              f"points of shape {self._x_shape}.")
        if self.num_classes is not None and y.max() >= self.num_classes:
            raise EnergyError(f"labels go up to {int(y.max())} but logits_fn gives "
                              f"{self.num_classes} classes.")
        flat = x.reshape(x.shape[0], -1).astype(np.float64)
        return np.concatenate([flat, y[:, None].astype(np.float64)], 1).astype(
            jnp.result_type(float))

    def _unpack(self, rows):
        x = rows[..., :-1].reshape(rows.shape[:-1] + self._x_shape)
        return x, rows[..., -1].astype(jnp.int32)

    def _begin(self, data, labels):
        x = np.asarray(data)
        if x.ndim < 2:
            raise EnergyError(f"data has shape {x.shape}; it must be (n_points, *event_shape).")
        self._x_shape = tuple(x.shape[1:])
        self.num_classes = None
        return self.pack(data, labels)

    # ------------------------------------------------------------- overrides
    def _make_spec(self, key, x0, init_params):
        x, _ = self._unpack(x0)
        spec, internal = super()._make_spec(key, x, init_params)
        out = jax.eval_shape(lambda p: self.logits_fn(spec.to_user(p), x), internal)
        if len(out.shape) != 1 or out.shape[0] < 2:
            raise EnergyError(f"logits_fn(params, x) must return (num_classes,) logits with at "
                              f"least 2 classes; it returned shape {tuple(out.shape)}.")
        self.num_classes = int(out.shape[0])
        return spec, internal

    def _extra_init(self, key, data, internal, batch_size):
        x, y = self._unpack(data)
        if not isinstance(y, jax.core.Tracer) and int(jnp.max(y)) >= self.num_classes:
            raise EnergyError(f"labels go up to {int(jnp.max(y))} but logits_fn gives "
                              f"{self.num_classes} classes.")
        return super()._extra_init(key, x, internal, batch_size)

    def _loss(self, internal, extra, batch, key):
        x, y = self._unpack(batch)
        gen, (new_extra, info) = super()._loss(internal, extra, x, key)
        params = self._spec.to_user(internal)
        logits = jax.vmap(lambda z: self.logits_fn(params, z))(x)
        logp = jax.nn.log_softmax(logits)
        ce = -jnp.mean(jnp.take_along_axis(logp, y[:, None], 1))
        acc = jnp.mean((jnp.argmax(logits, 1) == y).astype(ce.dtype))
        info = {**info, "cross_entropy": ce, "accuracy": acc}
        return ce + self.gen_weight * gen, (new_extra, info)

    def _start(self, key, data, init_params, batch_size):
        # The driver passes packed rows; start from them with CD's init.
        if callable(init_params):
            k_init, key = jax.random.split(key)
            init_params = init_params(k_init)
        return CD.init(self, key, data, init_params, batch_size=batch_size)

    # ------------------------------------------------------------ public API
    def init(self, seed: Any = None, data=None, labels=None, init_params: Any = None, *,
             batch_size: int | None = None, key: Any = None) -> LearnState:
        """Initial state from images ``data`` ``(n, *event)`` and labels ``(n,)``."""
        if labels is None:
            raise OptionError("JEM.init needs labels: init(key, data, labels, init_params).")
        return super().init(seed, self._begin(data, labels), init_params, batch_size=batch_size,
                            key=key)

    def run(self, seed: Any = None, num_steps: int | None = None, data=None, labels=None,
            init_params: Any = None, *, key: Any = None, **options) -> LearnResult:
        """Train on images ``data`` ``(n, *event)`` with integer ``labels`` ``(n,)``.

        Every other argument is :meth:`energymc.learn.CD.run`'s.
        """
        if labels is None:
            raise OptionError("JEM.run needs labels: run(key, num_steps, data, labels, "
                              "init_params=...).")
        if options.get("init_state") is not None and self._x_shape is not None:
            packed = self.pack(data, labels)
        else:
            packed = self._begin(data, labels)
        return super().run(seed, num_steps, packed, init_params, key=key, **options)

    def logits(self, params, x) -> jax.Array:
        """Logits ``(n, num_classes)`` of points ``x`` ``(n, *event)``."""
        return jax.vmap(lambda z: self.logits_fn(params, z))(jnp.asarray(x))

    def accuracy(self, params, x, labels) -> float:
        """Fraction of ``x`` ``(n, *event)`` classified as ``labels``."""
        pred = np.argmax(np.asarray(jax.jit(self.logits)(params, x)), 1)
        return float(np.mean(pred == np.asarray(labels)))
