"""The learner zoo's neural-energy tasks: their split, densities and quadrature.

``benchmarks/zoo_learn.py`` scores a neural energy by ``KL(truth || model)``
on fresh test points, with the truth's log-density in closed form and the
model's ``log Z`` by quadrature on a grid. Both must be right for the score
to mean anything: each truth integrates to 1 over the grid, and the
quadrature reproduces a Gaussian's ``log Z`` (truncated to the grid) exactly.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import zoo_learn  # noqa: E402

NEURAL = ("mlp_8gauss", "mlp_2gauss", "mlp_banana", "mlp_ring")


def test_neural_split_is_fixed():
    # Fixed in the commit that added the tasks, before any default was judged on them.
    assert [n for n in zoo_learn.TUNING if n.startswith("mlp_")] == ["mlp_8gauss", "mlp_2gauss"]
    assert [n for n in zoo_learn.HELD_OUT if n.startswith("mlp_")] == ["mlp_banana", "mlp_ring"]


@pytest.mark.parametrize("name", NEURAL)
def test_truth_is_normalised_on_the_grid(name):
    d = zoo_learn.get(name).build()
    grid = d["grid"]
    xx, yy = np.meshgrid(grid, grid)
    points = np.stack([xx.ravel(), yy.ravel()], 1)
    mass = np.exp(d["log_density"](points)).sum() * (grid[1] - grid[0]) ** 2
    # The grid holds all but a few 1e-4 of each truth (banana: its tail above x2 = 6).
    assert abs(mass - 1.0) < 2e-3, mass
    # Negative control: the score would notice a truth that is off by 1%.
    assert abs(1.01 * mass - 1.0) > 5e-3


def test_quadrature_log_z_of_a_known_energy():
    d = zoo_learn.get("mlp_ring").build()
    # All weights zero: the energy is the envelope |x|^2 / 32, N(0, 16 I). The
    # quadrature is the midpoint rule on cells centred at the grid points, so it
    # integrates over [-6 - h/2, 6 + h/2]^2.
    zero = jax.tree.map(lambda a: 0.0 * a, d["init_params"])
    edge = 6.0 + 0.5 * (d["grid"][1] - d["grid"][0])
    inside = math.erf(edge / (4.0 * math.sqrt(2.0))) ** 2
    exact = math.log(2 * math.pi * 16.0) + math.log(inside)
    assert abs(d["log_z"](zero) - exact) < 1e-3
    # The KL of that broad model is large and positive, and its stderr small.
    err = d["error"](zero)
    assert err["kl"] > 1.0 and 0 < err["kl_se"] < 0.05
