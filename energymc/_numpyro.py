"""NumPyro model plumbing: the one module that turns a model into a potential.

Imported lazily by :meth:`energymc.Energy.from_numpyro`.
"""

from __future__ import annotations

import jax

from energymc.errors import EnergyError


def _discrete_latent_sites(model, args, kwargs) -> list[str]:
    from numpyro import handlers

    tr = handlers.trace(handlers.seed(model, 0)).get_trace(*args, **kwargs)
    return [
        name for name, site in tr.items()
        if site["type"] == "sample" and not site["is_observed"]
        and getattr(site["fn"], "is_discrete", False)
    ]


def energy_parts(model, args, kwargs, seed):
    """``(potential_fn, z0, postprocess_fn, name)`` for a NumPyro model.

    ``potential_fn(z)`` is numpyro's potential energy in the unconstrained
    space (minus the log joint, Jacobian included); ``postprocess_fn(z)``
    returns the constrained sites and the deterministic sites.
    """
    from numpyro.infer.util import initialize_model

    if not callable(model):
        raise EnergyError("from_numpyro needs a NumPyro model function.")
    try:
        discrete = _discrete_latent_sites(model, args, kwargs)
    except Exception as exc:
        raise EnergyError(
            f"running the NumPyro model raised {type(exc).__name__}: {exc}. "
            "Check the arguments passed after the model."
        ) from exc
    if discrete:
        raise EnergyError(
            f"the NumPyro model has discrete latent sites {discrete}; energymc samples "
            "continuous latents only. Marginalise them out (e.g. with "
            "numpyro.contrib.funsor enumeration or by hand), or write the energy over "
            "0/1 states with emc.Energy(fn, init, support='binary')."
        )
    try:
        info = initialize_model(
            jax.random.key(seed), model, model_args=tuple(args), model_kwargs=dict(kwargs)
        )
    except RuntimeError as exc:
        raise EnergyError(
            f"NumPyro could not find a valid initial point for the model: {exc}"
        ) from exc
    z0 = info.param_info.z
    if not z0:
        raise EnergyError("the NumPyro model has no latent sample sites to sample.")
    name = getattr(model, "__name__", "numpyro_model")
    return info.potential_fn, z0, info.postprocess_fn, name
