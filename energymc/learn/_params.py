"""The learners' parameters: a plain pytree (``energy_fn(params, x)``) or the
``numpyro.param`` sites of a NumPyro-style ``energy_fn(x)``, and the map between
the user's form and the optimiser's unconstrained form.

:func:`make_spec` runs on the host when a learner is initialised; a
:class:`ParamSpec`'s ``energy``/``to_user`` are pure and traced inside updates.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from energymc.errors import EnergyError
from energymc.learn._checks import check_energy_output

__all__ = ["NumpyroParams", "ParamSpec", "make_spec"]


class NumpyroParams:
    """The ``numpyro.param`` sites of a NumPyro-style energy ``fn(x, *extra)``.

    The optimiser works on unconstrained values, as ``numpyro.infer.SVI``
    does: a site with ``constraint=positive`` is optimised through
    ``biject_to(positive)``, so an update can never leave the support.
    """

    def __init__(self, fn: Callable):
        self.fn = fn

    def sites(self, key, x, extra_args=()) -> dict:
        from numpyro import handlers

        tr = handlers.trace(handlers.seed(self.fn, key)).get_trace(x, *extra_args)
        return {name: site for name, site in tr.items() if site["type"] == "param"}

    @staticmethod
    def _transform(site):
        from numpyro.distributions import biject_to, constraints

        return biject_to(site["kwargs"].get("constraint", constraints.real))


class ParamSpec:
    """Maps between the user's parameters and the optimiser's (both pytrees).

    ``to_user(internal)`` gives what users see (``result.params``);
    ``energy(internal, x, *extra)`` evaluates the energy of ONE point.
    """

    def __init__(self, energy_fn: Callable, numpyro_style: bool, transforms: dict | None):
        self.energy_fn = energy_fn
        self.numpyro_style = numpyro_style
        self.transforms = transforms or {}

    # A site's value may itself be a pytree (eqx_module / flax_module register a
    # whole network's weights as one site); constraints act leaf by leaf.
    def to_user(self, internal):
        if not self.numpyro_style:
            return internal
        return {k: jax.tree.map(self.transforms[k], v) for k, v in internal.items()}

    def to_internal(self, user):
        if not self.numpyro_style:
            return user
        return {k: jax.tree.map(lambda a, t=self.transforms[k]: t.inv(jnp.asarray(a)), v)
                for k, v in user.items()}

    def user_energy(self, user_params, x, *extra):
        if not self.numpyro_style:
            return self.energy_fn(user_params, x, *extra)
        from numpyro import handlers

        # seed: a param whose init value is a callable draws from an rng.
        fn = handlers.substitute(handlers.seed(self.energy_fn, 0), data=user_params)
        return fn(x, *extra)

    def energy(self, internal, x, *extra):
        return self.user_energy(self.to_user(internal), x, *extra)


    def same_as(self, other) -> bool:
        """Whether ``other`` maps parameters exactly as this spec does (same energy
        function, same style, equal site transforms): then a program traced with one
        is valid for the other."""
        if not isinstance(other, ParamSpec):
            return False
        if other.energy_fn is not self.energy_fn or other.numpyro_style != self.numpyro_style:
            return False
        if set(other.transforms) != set(self.transforms):
            return False
        try:
            return all(bool(self.transforms[k] == other.transforms[k]) for k in self.transforms)
        except Exception:  # noqa: BLE001  (a transform without a usable ==: not the same)
            return False


def _describe(tree) -> str:
    return str(jax.tree.map(lambda a: tuple(np.shape(a)), tree))



def make_spec(energy_fn: Callable, numpyro_style: bool, key, x0, init_params, extra=(), *,
              conditional: bool = False):
    """The parameter spec and the initial internal parameters; checks the energy.

    Parameters
    ----------
    energy_fn
        The learner's energy, ``energy_fn(params, x, *extra)`` or, NumPyro-style,
        ``energy_fn(x, *extra)``.
    numpyro_style
        Whether the parameters are ``numpyro.param`` sites of ``energy_fn``.
    key
        A PRNG key for sites whose initial value is drawn.
    x0
        ONE data point ``(*event)``.
    init_params
        The user's initial parameters (optional NumPyro-style).
    extra
        The further arguments of the energy (a noise level) to try it with.
    conditional
        Whether the energy takes a noise level (for the error messages).

    Returns
    -------
    (ParamSpec, pytree)
        The spec and the initial parameters in the optimiser's form.
    """
    if numpyro_style:
        npp = NumpyroParams(energy_fn)
        try:
            sites = npp.sites(key, x0, extra)
        except Exception as exc:
            raise EnergyError(
                f"running the NumPyro-style energy on one data point of shape "
                f"{tuple(x0.shape)} raised {type(exc).__name__}: {exc}"
            ) from exc
        if not sites:
            raise EnergyError(
                "energy_fn takes one argument, so it is read as a NumPyro-style energy "
                "energy_fn(x), but it declares no numpyro.param sites. Declare the "
                "parameters with numpyro.param, or write energy_fn(params, x) and pass "
                "init_params=."
                + (" With DSM(sigmas=...) the energy also takes the noise level: "
                   "energy_fn(params, x, sigma)." if conditional else "")
            )
        transforms = {k: NumpyroParams._transform(s) for k, s in sites.items()}
        spec = ParamSpec(energy_fn, True, transforms)
        user = {k: s["value"] for k, s in sites.items()}
        if init_params is not None:
            unknown = sorted(set(init_params) - set(sites))
            if unknown:
                raise EnergyError(f"init_params has {unknown}, which are not numpyro.param "
                                  f"sites of energy_fn; its sites are {sorted(sites)}.")
            user.update(init_params)
        internal = spec.to_internal(user)
    else:
        if init_params is None:
            raise EnergyError(
                "init_params is required for energy_fn(params, x): pass the initial "
                "parameter pytree, e.g. init_params={'W': jnp.zeros((d, d))}. (An "
                "energy_fn(x) with numpyro.param sites needs none.)"
            )
        spec = ParamSpec(energy_fn, False, None)
        internal = jax.tree.map(jnp.asarray, init_params)
        bad = [a.dtype for a in jax.tree.leaves(internal)
               if not jnp.issubdtype(a.dtype, jnp.floating)]
        if bad and not isinstance(x0, jax.core.Tracer):
            raise EnergyError(
                f"init_params must hold float arrays (they are optimised); found dtypes "
                f"{sorted({str(b) for b in bad})}. Convert with jnp.asarray(v, float)."
            )
    what = "energy_fn(params, x)" if not numpyro_style else "energy_fn(x)"
    try:
        out = jax.eval_shape(lambda p, x: spec.energy(p, x, *extra), internal, x0)
    except EnergyError:
        raise
    except Exception as exc:
        raise EnergyError(
            f"calling {what} on one data point of shape {tuple(x0.shape)} raised "
            f"{type(exc).__name__}: {exc}. Parameters have shapes {_describe(internal)}."
        ) from exc
    check_energy_output(out, what, x0.shape)
    return spec, internal
