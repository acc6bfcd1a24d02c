"""`Energy`: the one place a user's function becomes a sampling target.

The sign flip between an energy ``E`` and a log-density ``-E`` happens here
(and in the ArviZ export) and nowhere else. Everything downstream sees a flat
log-density ``z (dim,) -> scalar``; the user's pytree shape is restored only
when draws are handed back.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import cached_property, wraps
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from energymc._base import SUPPORTS, KernelFacts
from energymc._util import deprecated, static
from energymc.errors import EnergyError

__all__ = ["Energy"]


def _describe(tree) -> str:
    return str(jax.tree.map(lambda a: tuple(np.shape(a)), tree))


class Energy:
    """An unnormalised density ``exp(-E(x))`` ready to be sampled.

    Parameters
    ----------
    fn
        ``fn(x) -> scalar`` energy. ``x`` has the structure of ``init``: an
        array, or a dict/pytree of arrays.
    init
        An example point: fixes the structure, shapes and dtypes of ``x`` and
        is where chains start (jittered) unless :func:`energymc.sample` is
        given ``init=``.
    support
        ``"real"`` (default), ``"binary"`` (values in {0, 1}) or ``"spin"``
        (values in {-1, +1}).
    name
        Shown in reprs and stored in ArviZ attributes.
    check
        Check ``fn`` at ``init`` now (scalar, real, finite value and
        gradient). Leave on: it turns a confusing trace-time error into a
        message that says what to fix.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import energymc as emc
    >>> target = emc.Energy(lambda x: 0.5 * jnp.sum(x**2), init=jnp.zeros(3))
    >>> target.dim
    3
    """

    def __init__(self, fn: Callable, init: Any, *, support: str = "real",
                 name: str | None = None, check: bool = True,
                 _postprocess: Callable | None = None, _sign: float | None = None):
        if _postprocess is not None or _sign is not None:
            # Private keywords that leaked into the public signature; the
            # builders below say the same thing by name.
            deprecated("Energy(_postprocess=..., _sign=...)",
                       "Energy.from_numpyro or Energy.from_logdensity")
        self._setup(fn, init, support=support, name=name, check=check, postprocess=_postprocess,
                    sign=1.0 if _sign is None else _sign)

    @classmethod
    def _built(cls, fn: Callable, init: Any, *, postprocess=None, sign: float = 1.0,
               **kwargs) -> Energy:
        """An Energy from one of the builders (``postprocess``, ``sign`` are theirs to set)."""
        obj = cls.__new__(cls)
        Energy._setup(obj, fn, init, postprocess=postprocess, sign=sign, **kwargs)
        return obj

    def _setup(self, fn, init, *, support: str = "real", name: str | None = None,
               check: bool = True, postprocess: Callable | None = None,
               sign: float = 1.0) -> None:
        if not callable(fn):
            raise EnergyError(
                f"Energy needs a callable fn(x) -> scalar energy; got {type(fn).__name__}."
            )
        if support not in SUPPORTS:
            raise EnergyError(
                f"support={support!r} is not one of {SUPPORTS}. Use 'real' for "
                "continuous x, 'binary' for 0/1 states, 'spin' for -1/+1 states."
            )
        if init is None:
            raise EnergyError(
                "Energy needs init=, an example point x0 (array or dict of arrays): "
                "it fixes the shape of x and where chains start."
            )
        leaves = jax.tree.leaves(init)
        if not leaves:
            raise EnergyError("init= has no arrays in it; give an array or a dict of arrays.")
        dtype = jnp.result_type(float)
        init = jax.tree.map(lambda a: jnp.asarray(a, dtype=dtype), init)
        self.fn = fn
        self.init = init
        self.support = support
        self.name = name or getattr(fn, "__name__", "energy")
        self._postprocess = postprocess
        # +1: fn is an energy; -1: fn is a log-density (from_logdensity), flipped here.
        self._sign = float(sign)
        flat, self._unravel = ravel_pytree(init)
        self.flat_init = flat
        self.dim = int(flat.shape[0])
        if support != "real":
            allowed = (0.0, 1.0) if support == "binary" else (-1.0, 1.0)
            bad = ~np.isin(np.asarray(flat), allowed)
            if bad.any():
                raise EnergyError(
                    f"support={support!r} needs init values in {allowed}; "
                    f"found {np.asarray(flat)[bad][:3].tolist()}."
                )
        if check:
            self._check()

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_logdensity(cls, logdensity_fn: Callable, init: Any, **kwargs) -> Energy:
        """Build from a log-density ``logp(x)``: the energy is ``-logp(x)``."""
        if not callable(logdensity_fn):
            raise EnergyError("from_logdensity needs a callable logp(x) -> scalar.")
        kwargs.setdefault("name", getattr(logdensity_fn, "__name__", "logdensity"))
        return cls._built(logdensity_fn, init, sign=-1.0, **kwargs)

    @classmethod
    def from_params(cls, energy_fn: Callable, params: Any, init: Any, **kwargs) -> Energy:
        """Fix the parameters of a learner-style ``energy_fn(params, x)``."""
        kwargs.setdefault("name", getattr(energy_fn, "__name__", "energy"))
        return cls(BoundEnergy(energy_fn, params), init, **kwargs)

    @classmethod
    def from_numpyro(cls, model: Callable, *args, seed: int = 0, **kwargs) -> Energy:
        """Target the posterior of a NumPyro model.

        Sampling happens in numpyro's unconstrained space, Jacobian included
        (``numpyro.infer.util.initialize_model``); draws come back in the
        constrained space under the model's site names, deterministic sites
        included.

        Parameters
        ----------
        model
            A NumPyro model function.
        *args, **kwargs
            Passed to ``model``.
        seed
            Seeds numpyro's initial point (``init_to_uniform``).
        """
        from energymc._numpyro import energy_parts

        potential_fn, z0, postprocess, name = energy_parts(model, args, kwargs, seed)
        return cls._built(potential_fn, z0, name=name, postprocess=postprocess)

    # --------------------------------------------------------------- evaluation
    def energy(self, x: Any) -> jax.Array:
        """``E(x)`` for ``x`` shaped like ``init``; a scalar."""
        return self._sign * self.fn(x)

    def logdensity(self, x: Any) -> jax.Array:
        """``-E(x)``; a scalar."""
        return -self.energy(x)

    def flat_logdensity(self, z: jax.Array) -> jax.Array:
        """``-E`` at a flat position ``z`` ``(dim,)``.

        A NaN or ``-inf`` energy reads as ``-inf`` so every kernel rejects it.
        ``-inf`` energy is no valid state either: it is what float32 overflow of
        a quadratic form far out in the tails looks like, and a kernel would
        otherwise always accept it and never leave.
        """
        lp = -self._sign * self.fn(self._unravel(z))
        lp = jnp.asarray(lp, dtype=z.dtype).reshape(())
        return jnp.where(jnp.isnan(lp) | (lp == jnp.inf), -jnp.inf, lp)

    def flat_energy(self, z: jax.Array) -> jax.Array:
        """``E`` at a flat position ``z`` ``(dim,)``."""
        return -self.flat_logdensity(z)

    def unravel(self, z: jax.Array) -> Any:
        """Flat ``(..., dim)`` positions back to the pytree of ``init``."""
        z = jnp.asarray(z)
        fn = self._unravel
        for _ in range(z.ndim - 1):
            fn = jax.vmap(fn)
        return fn(z)

    def ravel(self, x: Any) -> jax.Array:
        """A pytree shaped like ``init`` to a flat ``(dim,)`` array."""
        return ravel_pytree(x)[0]

    def postprocess(self, z: jax.Array) -> Any:
        """Flat ``(..., dim)`` draws to what users see (constrained sites for NumPyro)."""
        if self._postprocess is None:
            return self.unravel(z)
        fn = lambda v: self._postprocess(self._unravel(v))
        z = jnp.asarray(z)
        for _ in range(z.ndim - 1):
            fn = jax.vmap(fn)
        return jax.jit(fn)(z)

    @cached_property
    def is_numpyro(self) -> bool:
        return self._postprocess is not None

    # ------------------------------------------------- what kernels may know
    def local_field(self):
        """``(flip_energy_delta, colors)`` when this energy offers an exact local field, else None.

        ``flip_energy_delta(z) -> (dim,)`` gives ``E(z with site i flipped) - E(z)``
        for every site of a flat state ``z`` ``(dim,)``; ``colors`` ``(dim,)``
        ints colour the interaction graph (sites of one colour do not
        interact). ``gibbs`` then updates a colour class at once. By default
        the user's energy object may offer both as attributes (only an energy,
        not a log-density: the sign would be wrong); models such as
        :class:`energymc.models.Ising` override this method.
        """
        if self._sign != 1.0:
            return None
        delta = getattr(self.fn, "flip_energy_delta", None)
        colors = getattr(self.fn, "colors", None)
        if delta is None or colors is None:
            return None
        return delta, colors

    def kernel_facts(self) -> KernelFacts:
        """What a kernel may know about this target (:class:`energymc._base.KernelFacts`).

        The sampling loop hands it to :meth:`energymc._base.Kernel.bind_target`
        inside the traced function, where a local field reads the traced
        parameters of this (bound) energy.
        """
        field = self.local_field()
        if field is None:
            return KernelFacts(self.support)
        delta, colors = field
        return KernelFacts(self.support, delta, np.asarray(colors))

    # ------------------------------------------------------------------ checks
    def _check(self) -> None:
        try:
            out = jax.eval_shape(self.fn, self.init)
        except Exception as exc:  # the user's code failed: say where
            raise EnergyError(
                f"calling the energy at init raised {type(exc).__name__}: {exc}. "
                f"init has shapes {_describe(self.init)}; does fn accept x of that structure?"
            ) from exc
        if not hasattr(out, "shape") or jax.tree.structure(out).num_leaves != 1:
            raise EnergyError(
                f"the energy must return one scalar; it returned {type(out).__name__}."
            )
        if out.shape != ():
            hint = " Did you forget to sum?" if len(out.shape) >= 1 else ""
            raise EnergyError(
                f"the energy returned shape {tuple(out.shape)}; it must return a scalar.{hint}"
            )
        if jnp.issubdtype(out.dtype, jnp.complexfloating):
            raise EnergyError("the energy returned a complex number; it must be real.")
        real = self.support == "real"

        def value_and_grad_at_init(init, flat_init):
            value = self._sign * self.fn(init)
            return value, (jax.grad(self.flat_logdensity)(flat_init) if real else None)

        # One compiled program: run op by op, a small energy and its gradient
        # compiled some 30 one-operation programs (~0.5 s at every new Energy).
        value, grad = jax.jit(value_and_grad_at_init)(self.init, self.flat_init)
        value = float(value)
        if not np.isfinite(value):
            raise EnergyError(
                f"the energy at init is {value}; start from a point where it is finite "
                "(pass another init=)."
            )
        if real:
            if not np.all(np.isfinite(np.asarray(grad))):  # on the host: no program
                raise EnergyError(
                    "the gradient of the energy at init is not finite; gradient-based "
                    "methods cannot start there. Pass another init= or use method='rwm'."
                )

    # ---------------------------------------- parameters as traced arguments
    def _split(self) -> tuple[Energy, Any]:
        """``(skeleton, params)``: this target with its parameters taken out.

        For an energy built by :meth:`from_params`, the skeleton compares equal
        for every value of the params (same function, same shapes), so code
        compiled for it is reused when only the values change; the params
        travel as an argument and :meth:`_bind` puts them back inside the
        traced function. Other energies return ``(self, None)``.
        """
        if not isinstance(self.fn, BoundEnergy):
            return self, None
        skeleton = copy.copy(self)
        skeleton.fn = _param_slot(self.fn.energy_fn, self.fn.params)
        return skeleton, self.fn.params

    def _bind(self, params) -> Energy:
        """The skeleton of :meth:`_split` with (possibly traced) params put back."""
        if not (isinstance(self.fn, static) and self.fn.fn is _open_params):
            return self
        bound = copy.copy(self)
        bound.fn = BoundEnergy(self.fn.parts[0], params)
        return bound

    # -------------------------------------------------------- identity, display
    def _key(self):
        leaves = jax.tree.leaves(self.init)
        return (self.fn, self._sign, self.support, jax.tree.structure(self.init),
                tuple((a.shape, str(a.dtype)) for a in leaves), self._postprocess)

    def __hash__(self) -> int:
        return hash(self._key())

    def __eq__(self, other) -> bool:
        # Two Energy objects over the same function and shapes share compiled code.
        return isinstance(other, Energy) and self._key() == other._key()

    def __repr__(self) -> str:
        return (f"Energy({self.name!r}, dim={self.dim}, support={self.support!r}, "
                f"init shapes={_describe(self.init)})")

    def _repr_html_(self) -> str:
        """Name, dimension, support, origin and the leaves of ``init`` (at most ten rows)."""
        from energymc._display import MAX_ROWS, html_columns, html_table

        origin = ("NumPyro model" if self.is_numpyro else
                  "log-density (sign flipped)" if self._sign < 0 else
                  "energy_fn with fixed params" if isinstance(self.fn, BoundEnergy) else
                  "energy function")
        head = html_table("energymc Energy", [("name", repr(self.name)), ("dim", str(self.dim)),
                                              ("support", self.support), ("from", origin)])
        rows = [[jax.tree_util.keystr(path) or "x", str(tuple(np.shape(leaf))),
                 str(jnp.asarray(leaf).dtype)]
                for path, leaf in jax.tree_util.tree_flatten_with_path(self.init)[0]]
        leaves = html_columns("init", ["leaf", "shape", "dtype"], rows, max_rows=MAX_ROWS,
                              what="leaves")
        return f"<div>{head}{leaves}</div>"


def jit_over_target(static_argnames: tuple):
    """``jax.jit`` for a function taking a static ``target=`` (an :class:`Energy`).

    The parameters of a :meth:`Energy.from_params` target travel as a traced
    argument rather than as constants of the compiled code, so calling again
    with new parameter values of the same shapes does not recompile (see
    ``Energy._split``). Other targets behave exactly as under ``jax.jit``.
    """

    def decorate(fn):
        def body(*args, _target_params, **kwargs):
            kwargs["target"] = kwargs["target"]._bind(_target_params)
            return fn(*args, **kwargs)

        # Named after fn (not @wraps: jit reads the signature, which must stay
        # this one) so that energymc.compilations() reports it by fn's name.
        body.__name__ = body.__qualname__ = fn.__name__
        compiled = jax.jit(body, static_argnames=static_argnames)

        @wraps(fn)
        def call(*args, target, **kwargs):
            skeleton, params = target._split()
            return compiled(*args, _target_params=params, target=skeleton, **kwargs)

        call.compiled = compiled
        return call

    return decorate


class BoundEnergy:
    """``x -> energy_fn(params, x)``, hashable by the function and params' identity."""

    def __init__(self, energy_fn: Callable, params: Any):
        self.energy_fn = energy_fn
        self.params = params
        self.__name__ = getattr(energy_fn, "__name__", "energy")

    def __call__(self, x):
        return self.energy_fn(self.params, x)


def _open_params(energy_fn, treedef, leaf_types, x):
    """What an Energy with its params taken out (``Energy._split``) stands for:
    ``energy_fn(params, .)`` with the params left open. Never called: ``_bind``
    puts the params back first."""
    raise RuntimeError("internal: an Energy with open params was called before _bind().")


def _param_slot(energy_fn, params) -> static:
    """``energy_fn(params, .)`` with the params left open, equal for the same
    function and the same structure, shapes and dtypes of params: compiled code
    keyed on it is shared by every value of params, passed to it as an
    argument instead (see ``Energy._split``)."""
    leaves, treedef = jax.tree.flatten(params)
    leaf_types = tuple((np.shape(a), str(jnp.result_type(a))) for a in leaves)
    return static(_open_params, energy_fn, treedef, leaf_types)
