"""Helpers shared by the examples: the quick switch, where pictures go, a small MLP
energy in plain JAX and 2-d toy sets."""

import os

import jax
import jax.numpy as jnp
import numpy as np

QUICK = os.environ.get("ENERGYMC_QUICK") == "1"


def require_sklearn() -> None:
    """Stop with an install hint when scikit-learn (digits, two moons) is missing.

    scikit-learn is not a dependency of energymc itself; the examples' extra
    brings it: ``pip install -e '.[examples]'``.
    """
    try:
        import sklearn  # noqa: F401
    except ModuleNotFoundError:
        raise SystemExit("This example needs scikit-learn (for its data sets). Install the "
                         "examples' extras: pip install -e '.[examples]'  (or pip install "
                         "scikit-learn).") from None


def mlp_init(key, sizes):
    """Weights of an MLP with layer widths ``sizes`` (e.g. ``[2, 64, 64, 1]``), Glorot-uniform."""
    params = []
    for k, (m, n) in zip(jax.random.split(key, len(sizes) - 1),
                            zip(sizes[:-1], sizes[1:], strict=True), strict=True):
        lim = np.sqrt(6.0 / (m + n))
        params.append({"w": jax.random.uniform(k, (m, n), minval=-lim, maxval=lim),
                       "b": jnp.zeros(n)})
    return params


def mlp_apply(params, x):
    """``x`` ``(d_in,)`` -> ``(d_out,)``; swish hidden layers (smooth gradients for Langevin)."""
    h = x
    for layer in params[:-1]:
        h = jax.nn.swish(h @ layer["w"] + layer["b"])
    return h @ params[-1]["w"] + params[-1]["b"]


def mlp_energy(params, x):
    """A scalar energy of ONE point ``x`` ``(d,)``."""
    return mlp_apply(params, x)[0]


def toy_data(name, n, seed=0):
    """``(n, 2)`` points of a 2-d toy set: ``"moons"``, ``"8gaussians"`` or ``"rings"``."""
    rng = np.random.default_rng(seed)
    if name == "moons":
        require_sklearn()
        from sklearn.datasets import make_moons

        x, _ = make_moons(n, noise=0.05, random_state=seed)
        x = (x - np.array([0.5, 0.25])) * 2.0
    elif name == "8gaussians":
        angles = rng.integers(0, 8, n) * (2 * np.pi / 8)
        centres = 2.5 * np.stack([np.cos(angles), np.sin(angles)], 1)
        x = centres + 0.15 * rng.normal(size=(n, 2))
    elif name == "rings":
        radius = rng.choice([1.0, 2.5], n)
        theta = rng.uniform(0, 2 * np.pi, n)
        x = radius[:, None] * np.stack([np.cos(theta), np.sin(theta)], 1)
        x = x + 0.08 * rng.normal(size=(n, 2))
    else:
        raise ValueError(f"unknown toy set {name!r}")
    return x.astype(np.float32)


def grid(lim=3.5, n=120):
    """A ``(n*n, 2)`` grid over ``[-lim, lim]^2`` and its two axes."""
    g = np.linspace(-lim, lim, n, dtype=np.float32)
    xx, yy = np.meshgrid(g, g)
    return np.stack([xx.ravel(), yy.ravel()], 1), xx, yy


def quick_from_cli(doc: str) -> bool:
    """``--quick`` on the command line or ``ENERGYMC_QUICK=1``: tiny sizes."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes")
    return parser.parse_args().quick or QUICK


def save_figure(fig, name):
    """Save ``fig`` as ``name`` in the examples' output folder and say where."""
    path = out_path(name)
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")
    return path


def out_path(name):
    folder = os.environ.get("ENERGYMC_EXAMPLES_OUT", os.path.join(os.path.dirname(__file__),
                                                                  "output"))
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, name)
