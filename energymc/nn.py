"""Small Equinox networks for deep energies, and the bridge to the learners.

* :class:`ConvNet` -- a convolutional network for small images (8x8 digits),
  ``x`` of shape ``(height, width)`` or flat ``(height * width,)``.
* :class:`MLP` -- a multilayer perceptron on flat inputs.
* :class:`ModuleEnergy` -- turns either (any Equinox module) into the
  ``energy_fn(params, x)`` and ``init_params`` that :mod:`energymc.learn`
  takes: the module's float arrays are the parameters, everything else
  (activations, shapes) is closed over.

Both networks can divide every weight by an estimate of its largest singular
value (spectral normalisation, Miyato et al. 2018), which bounds how fast the
energy can change with ``x`` and so keeps short-run Langevin sampling stable.
The estimate is a few steps of power iteration from a fixed start, run at
every call; nothing is stored between calls, so the parameters stay a plain
pytree of weights (Equinox's ``nn.SpectralNorm`` keeps its power-iteration
vectors in an ``eqx.nn.State``, which ``energy_fn(params, x)`` has no place for).
For a convolution the normalised matrix is the kernel reshaped to
``(out, in * kh * kw)``, as in Miyato et al., which bounds the layer's
operator norm up to a factor of the kernel size, not exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from energymc.errors import OptionError

__all__ = ["ConvNet", "MLP", "ModuleEnergy", "spectral_normalise"]


def spectral_normalise(weight: jax.Array, n_iter: int = 5) -> jax.Array:
    """``weight / sigma``, with ``sigma`` its largest singular value estimated by power iteration.

    Parameters
    ----------
    weight
        ``(out, ...)``; reshaped to ``(out, prod(rest))`` for the estimate.
    n_iter
        Power-iteration steps from a fixed, deterministic start vector.

    Returns
    -------
    jax.Array
        Shaped like ``weight``. The singular vectors are constants for the
        gradient (``stop_gradient``), as in Miyato et al.: only ``sigma =
        u^T W v``'s explicit dependence on ``W`` is differentiated.
    """
    w = weight.reshape(weight.shape[0], -1)
    # A fixed start (not random) so that the energy is a deterministic function of
    # the parameters; its overlap with the top singular vector is generic.
    v = jnp.cos(jnp.arange(1, w.shape[1] + 1, dtype=w.dtype))
    v = v / jnp.linalg.norm(v)
    wd = jax.lax.stop_gradient(w)
    u = wd @ v
    for _ in range(n_iter):
        u = wd @ v
        u = u / (jnp.linalg.norm(u) + 1e-12)
        v = wd.T @ u
        v = v / (jnp.linalg.norm(v) + 1e-12)
    sigma = u @ w @ v
    return weight / jnp.maximum(sigma, 1e-12)


class _Normalised(eqx.Module):
    """A layer whose ``weight`` is spectrally normalised at every call."""

    layer: eqx.Module
    n_iter: int = eqx.field(static=True)

    def __call__(self, x):
        layer = eqx.tree_at(lambda m: m.weight, self.layer,
                            spectral_normalise(self.layer.weight, self.n_iter))
        return layer(x)


def _maybe_sn(layer, spectral_norm: bool, n_iter: int):
    return _Normalised(layer, n_iter) if spectral_norm else layer


def _check_sizes(name, values) -> tuple[int, ...]:
    vals = tuple(values)
    if not vals or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1
                       for v in vals):
        raise OptionError(f"{name} must be a non-empty sequence of positive integers; "
                          f"got {values!r}.")
    return tuple(int(v) for v in vals)


class ConvNet(eqx.Module):
    """Convolutions for small one-channel images; ``x`` -> ``(out_size,)``.

    Architecture: a 3x3 convolution with ``channels[0]`` filters, then one
    stride-2 3x3 convolution per further entry of ``channels`` (halving the
    image each time), swish activations (smooth, so ``grad_x E`` is
    continuous, which Langevin sampling needs), a global average over the
    remaining pixels and a linear layer to ``out_size`` outputs.

    With the defaults on 8x8 images (``channels=(16, 32, 32)``) it has about
    14,000 parameters.

    Parameters
    ----------
    image_shape
        ``(height, width)`` of one image.
    key
        A ``jax.random.key`` for the initial weights.
    channels
        Filters per convolution.
    out_size
        Outputs: ``1`` for an energy, the number of classes for a classifier
        (JEM).
    spectral_norm
        Normalise every weight by its largest singular value (see the module notes).
    n_iter
        Power-iteration steps of the spectral normalisation.
    """

    convs: list
    head: eqx.Module
    image_shape: tuple = eqx.field(static=True)

    def __init__(self, image_shape: Sequence[int], key, *, channels: Sequence[int] = (16, 32, 32),
                 out_size: int = 1, spectral_norm: bool = False, n_iter: int = 5):
        image_shape = _check_sizes("image_shape", image_shape)
        if len(image_shape) != 2:
            raise OptionError(f"image_shape must be (height, width); got {image_shape!r}.")
        channels = _check_sizes("channels", channels)
        (out_size,) = _check_sizes("out_size", (out_size,))
        keys = jax.random.split(key, len(channels) + 1)
        convs, c_in = [], 1
        for i, (c, k) in enumerate(zip(channels, keys[:-1], strict=True)):
            conv = eqx.nn.Conv2d(c_in, c, 3, stride=1 if i == 0 else 2, padding=1, key=k)
            convs.append(_maybe_sn(conv, spectral_norm, n_iter))
            c_in = c
        self.convs = convs
        self.head = _maybe_sn(eqx.nn.Linear(c_in, out_size, key=keys[-1]), spectral_norm, n_iter)
        self.image_shape = image_shape

    def __call__(self, x):
        h = jnp.reshape(x, (1, *self.image_shape))
        for conv in self.convs:
            h = jax.nn.swish(conv(h))
        return self.head(jnp.mean(h, axis=(1, 2)))


class MLP(eqx.Module):
    """A multilayer perceptron on flattened inputs; ``x`` -> ``(out_size,)``.

    Parameters
    ----------
    in_size
        Number of input values (the product of a point's shape).
    key
        A ``jax.random.key``.
    widths
        Hidden layer widths.
    out_size
        Outputs (``1`` for an energy).
    activation
        Hidden activation; swish by default (smooth gradients for Langevin).
    spectral_norm, n_iter
        As for :class:`ConvNet`.
    """

    layers: list
    activation: Callable = eqx.field(static=True)

    def __init__(self, in_size: int, key, *, widths: Sequence[int] = (128, 128),
                 out_size: int = 1, activation: Callable = jax.nn.swish,
                 spectral_norm: bool = False, n_iter: int = 5):
        sizes = _check_sizes("sizes", (in_size, *widths, out_size))
        keys = jax.random.split(key, len(sizes) - 1)
        self.layers = [_maybe_sn(eqx.nn.Linear(m, n, key=k), spectral_norm, n_iter)
                       for m, n, k in zip(sizes[:-1], sizes[1:], keys, strict=True)]
        self.activation = activation

    def features(self, x):
        """The last hidden layer's activations ``(widths[-1],)``."""
        h = jnp.ravel(x)
        for layer in self.layers[:-1]:
            h = self.activation(layer(h))
        return h

    def __call__(self, x):
        return self.layers[-1](self.features(x))


class ModuleEnergy:
    """An Equinox module as a learner's ``energy_fn(params, x)``.

    The module's inexact arrays become the parameters (``self.params``, a
    list of arrays; pass it as ``init_params``); the rest is closed over.
    ``energy_fn(params, x)`` rebuilds the module and reads its output as an
    energy. The parameters are a plain list rather than the partitioned
    module because a module is callable, and the learners read a callable
    ``init_params`` as a function that draws parameters.

    Parameters
    ----------
    module
        An Equinox module mapping ONE point to an array of outputs.
    output
        ``"energy"``: the module returns one value (shape ``()`` or ``(1,)``),
        the energy. ``"logits"``: it returns class logits ``(C,)`` and the
        energy is ``-logsumexp(logits)`` (JEM's ``E(x) = -log sum_y
        exp(f(x)[y])``).

    Examples
    --------
    >>> net = emc.nn.ConvNet((8, 8), jax.random.key(0))          # doctest: +SKIP
    >>> energy = emc.nn.ModuleEnergy(net)                         # doctest: +SKIP
    >>> cd = emc.learn.CD(energy, numpyro.optim.Adam(1e-3))       # doctest: +SKIP
    >>> result = cd.run(key, 500, data, init_params=energy.params)  # doctest: +SKIP
    >>> trained = energy.module(result.params)                    # doctest: +SKIP
    """

    def __init__(self, module: eqx.Module, output: str = "energy"):
        if not isinstance(module, eqx.Module):
            raise OptionError(f"module must be an equinox.Module; got {type(module).__name__}.")
        if output not in ("energy", "logits"):
            raise OptionError(f"output must be 'energy' or 'logits'; got {output!r}.")
        params, self._static = eqx.partition(module, eqx.is_inexact_array)
        leaves, self._treedef = jax.tree.flatten(params)
        self.params = list(leaves)
        self.output = output

    def module(self, params) -> eqx.Module:
        """The module with ``params`` (e.g. ``result.params``) in place of its weights."""
        if not isinstance(params, (list, tuple)) or len(params) != self._treedef.num_leaves:
            raise OptionError(
                f"params must be the list of {self._treedef.num_leaves} arrays that "
                "ModuleEnergy.params holds (or result.params of a learner started from it).")
        return eqx.combine(jax.tree.unflatten(self._treedef, list(params)), self._static)

    def logits(self, params, x) -> jax.Array:
        """The module's raw output for ONE point ``x``."""
        return self.module(params)(x)

    def __call__(self, params, x) -> jax.Array:
        out = self.logits(params, x)
        if self.output == "logits":
            return -jax.nn.logsumexp(out)
        if out.size != 1:
            raise OptionError(
                f"the module returns shape {tuple(out.shape)}; an energy needs one value. Use "
                "out_size=1, or ModuleEnergy(module, output='logits') for a classifier.")
        return jnp.reshape(out, ())

    @property
    def num_params(self) -> int:
        """Number of trainable values."""
        return int(sum(np.size(a) for a in jax.tree.leaves(self.params)))
