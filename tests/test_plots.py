"""energymc.plots: what each function returns and draws, figures it leaves alone, bad input."""

import matplotlib

matplotlib.use("Agg")  # set here, in the test only: the library never picks a backend

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.image import AxesImage

import energymc as emc
from energymc import plots
from energymc.errors import OptionError


@pytest.fixture(autouse=True)
def _close_figures():
    plt.close("all")
    yield
    plt.close("all")


def _quadratic(xy):
    return 0.5 * jnp.sum(xy**2)


@pytest.fixture(scope="module")
def target2d():
    return emc.Energy(_quadratic, init=jnp.zeros(2), name="quadratic")


@pytest.fixture(scope="module")
def logz_est(target2d):
    return emc.log_partition(target2d, method="ais", seed=0, particles=64, schedule="geometric",
                            num_temps=20)


# ---------------------------------------------------------------- landscape
def test_landscape_new_figure_draws_shading_and_draws(target2d):
    draws = np.random.default_rng(0).normal(size=(2, 50, 2))
    ax = plots.plot_landscape(target2d, (-3, 3, -3, 3), draws=draws, resolution=30)
    assert isinstance(ax, Axes)
    assert len(plt.get_fignums()) == 1
    scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(scatters) == 1 and scatters[0].get_offsets().shape == (100, 2)
    assert ax.get_xlim() == (-3.0, 3.0) and ax.get_ylim() == (-3.0, 3.0)
    assert "quadratic" in ax.get_title()


def test_landscape_on_given_axes_makes_no_figure(target2d):
    fig, ax = plt.subplots()
    before = plt.get_fignums()
    out = plots.plot_landscape(target2d, ((-2, 2), (-1, 1)), ax=ax, resolution=20)
    assert out is ax and plt.get_fignums() == before
    assert not [c for c in ax.collections if isinstance(c, PathCollection)]  # no draws given


def test_landscape_of_a_function_and_a_run(target2d):
    run = emc.sample(target2d, chains=2, draws=30, warmup=200, seed=0, progress=False)
    ax = plots.plot_landscape(lambda xy: _quadratic(xy - 1.0), (-3, 3, -3, 3), draws=run,
                              resolution=25, kind="energy", max_points=20)
    scatter = [c for c in ax.collections if isinstance(c, PathCollection)][0]
    assert len(scatter.get_offsets()) <= 20  # thinned to max_points


def test_landscape_kind_selects_what_is_shaded():
    # exp(-(E - min E)) lies in (0, 1]; the energy itself here reaches 2 * 3**2 = 18.
    fn = lambda xy: jnp.sum(xy**2)  # noqa: E731
    fig, (left, right) = plt.subplots(1, 2)
    plots.plot_landscape(fn, (-3, 3, -3, 3), ax=left, resolution=31)
    plots.plot_landscape(fn, (-3, 3, -3, 3), ax=right, resolution=31, kind="energy")
    density, energy = left.collections[0], right.collections[0]
    assert 0.9 <= max(density.levels) <= 1.1 and min(density.levels) >= 0.0
    assert max(energy.levels) >= 17.0 and min(energy.levels) <= 0.1
    assert left.get_title().startswith("exp(-E)") and right.get_title().startswith("E(x)")


@pytest.mark.parametrize("bad, match", [
    ((0, 1, 0), "four finite numbers"),
    ((1, 0, 0, 1), "xmin < xmax"),
    ((0, 1, 0, np.inf), "four finite numbers"),
])
def test_landscape_bad_bounds(target2d, bad, match):
    with pytest.raises(OptionError, match=match):
        plots.plot_landscape(target2d, bad)
    assert plt.get_fignums() == []  # refused before drawing anything


def test_landscape_rejects_wrong_targets():
    three = emc.Energy(lambda x: jnp.sum(x**2), init=jnp.zeros(3))
    with pytest.raises(OptionError, match="dimension 2"):
        plots.plot_landscape(three, (-1, 1, -1, 1))
    with pytest.raises(OptionError, match="Energy of dimension 2 or a function"):
        plots.plot_landscape("not a function", (-1, 1, -1, 1))
    with pytest.raises(OptionError, match="scalar"):
        plots.plot_landscape(lambda xy: xy, (-1, 1, -1, 1), resolution=5)
    with pytest.raises(OptionError, match="last axis of length 2"):
        plots.plot_landscape(_quadratic, (-1, 1, -1, 1), draws=np.zeros((5, 3)))
    with pytest.raises(OptionError, match="kind"):
        plots.plot_landscape(_quadratic, (-1, 1, -1, 1), kind="heat")
    with pytest.raises(OptionError, match="matplotlib Axes"):
        plots.plot_landscape(_quadratic, (-1, 1, -1, 1), ax="left")


# -------------------------------------------------------------------- log Z
def test_plot_logz_two_panels_from_stages(logz_est):
    axes = plots.plot_logz(logz_est)
    assert len(axes) == 2 and all(isinstance(a, Axes) for a in axes)
    assert len(plt.get_fignums()) == 1
    sched, per_stage = axes
    (line,) = sched.get_lines()
    np.testing.assert_array_equal(line.get_ydata(), logz_est.stages["beta"])
    labels = [ln.get_label() for ln in per_stage.get_lines()]
    assert "weight ESS / particles" in labels and "move acceptance" in labels
    ess_line = per_stage.get_lines()[labels.index("weight ESS / particles")]
    np.testing.assert_allclose(ess_line.get_ydata(),
                               logz_est.stages["ess"] / logz_est.num_particles)


def test_plot_logz_on_given_axes_and_bad_input(logz_est):
    fig, axes = plt.subplots(1, 2)
    out = plots.plot_logz(logz_est, axes=axes)
    assert list(out) == list(axes) and len(plt.get_fignums()) == 1
    with pytest.raises(OptionError, match="two matplotlib Axes"):
        plots.plot_logz(logz_est, axes=[axes[0]])
    with pytest.raises(OptionError, match="needs an energymc.LogZ"):
        plots.plot_logz(np.zeros(3))
    empty = emc.LogZ(method="nested", target=None, log_z=0.0, stderr=0.1, ess=1.0,
                     num_particles=1, stages={}, particles=None, weights=None)
    with pytest.raises(OptionError, match="no per-stage record"):
        plots.plot_logz(empty)


def test_plot_logz_draws_pt_swap_rates_under_either_name():
    """PT's swap_acceptance_rate is drawn; a record written with the old name too."""
    for column in ("swap_acceptance_rate", "swap_acceptance"):
        est = emc.LogZ(method="pt", target=None, log_z=0.0, stderr=0.1, ess=10.0,
                       num_particles=10, particles=None, weights=None,
                       stages={"beta": np.array([0.1, 0.5, 1.0]),
                               column: np.array([0.4, 0.6, np.nan])})
        per_stage = plots.plot_logz(est)[1]
        lines = {ln.get_label(): ln for ln in per_stage.get_lines()}
        np.testing.assert_array_equal(lines["swap acceptance"].get_ydata(), [0.4, 0.6, np.nan])
        assert "move acceptance" not in lines  # negative control: no move column, no line
        plt.close("all")


def test_plot_logz_title_never_precise_when_flagged():
    stages = {"beta": np.linspace(0.1, 1.0, 5), "ess": np.full(5, 50.0)}
    common = dict(method="ais", target=None, log_z=3.21, stderr=0.01, ess=50.0,
                  num_particles=100, stages=stages, particles=None, weights=None)
    good = emc.LogZ(**common)
    assert "± 0.010" in plots.plot_logz(good)[0].get_title()  # control: reliable shows x ± se
    bad = emc.LogZ(**common, problems=("the replicates disagree",))
    title = plots.plot_logz(bad)[0].get_title()
    assert "flagged" in title and "±" not in title and "3.210" not in title
    bracket = emc.LogZ(**common, lower=3.0, upper=3.5, problems=("gap",))
    assert "between 3.00 and 3.50" in plots.plot_logz(bracket)[0].get_title()


# ------------------------------------------------------------------- losses
def test_plot_losses_array_and_heldout_pairs():
    losses = np.linspace(2.0, 0.5, 200) + 0.1 * np.random.default_rng(0).normal(size=200)
    ax = plots.plot_losses(losses, heldout=([0, 100, 199], [-3.0, -2.5, -2.2]))
    fig = ax.figure
    assert len(plt.get_fignums()) == 1 and len(fig.axes) == 2  # losses + held-out twin
    raw, smooth = ax.get_lines()
    np.testing.assert_array_equal(raw.get_ydata(), losses)
    assert len(smooth.get_ydata()) == 200 - 4 + 1  # default width: 200 // 50
    (held,) = fig.axes[1].get_lines()
    np.testing.assert_array_equal(held.get_xdata(), [0, 100, 199])


def test_plot_losses_of_a_learn_result_uses_its_eval_history():
    from energymc import learn

    data = np.random.default_rng(0).normal(1.0, 1.0, size=(200, 1)).astype(np.float32)
    import jax
    import numpyro.optim

    def energy_fn(params, x):
        return 0.5 * jnp.sum((x - params["mu"]) ** 2)

    learner = learn.DSM(energy_fn, numpyro.optim.Adam(0.05), sigma=0.1)
    result = learner.run(jax.random.key(0), 40, data, init_params={"mu": jnp.zeros(1)},
                         batch_size=50, progress=False, eval_every=10,
                         eval_fn=lambda p: float(p["mu"][0]))
    fig, ax = plt.subplots()
    out = plots.plot_losses(result, ax=ax, smooth=1)
    assert out is ax and len(plt.get_fignums()) == 1
    assert len(ax.get_lines()) == 1  # smooth=1: raw losses only
    held = fig.axes[1].get_lines()[0]
    np.testing.assert_allclose(held.get_ydata(), result.history["eval"])


def test_plot_losses_bad_input():
    with pytest.raises(OptionError, match="1-d"):
        plots.plot_losses(np.zeros((3, 4)))
    with pytest.raises(OptionError, match=r"heldout=\(steps, values\)"):
        plots.plot_losses(np.zeros(10), heldout=np.zeros(3))
    with pytest.raises(OptionError, match="same length"):
        plots.plot_losses(np.zeros(10), heldout=([1, 2], [1.0]))
    with pytest.raises(OptionError, match="smooth"):
        plots.plot_losses(np.zeros(10), smooth=0)
    assert plt.get_fignums() == []


# ------------------------------------------------------------------- images
def test_plot_images_one_mosaic_of_flat_images():
    imgs = np.arange(10 * 12, dtype=float).reshape(10, 12)
    ax = plots.plot_images(imgs, shape=(3, 4), ncols=5)
    (im,) = ax.get_images()
    assert isinstance(im, AxesImage)
    # 2 rows x 5 columns of 3x4 images with a 1-pixel frame.
    assert im.get_array().shape == (2 * 4 + 1, 5 * 5 + 1)
    np.testing.assert_array_equal(im.get_array()[1:4, 1:5], imgs[0].reshape(3, 4))
    assert len(plt.get_fignums()) == 1


def test_plot_images_square_and_each_scaling():
    rng = np.random.default_rng(0)
    filters = rng.normal(size=(7, 16)) * np.arange(1, 8)[:, None]  # scales differ by 7x
    fig, ax = plt.subplots()
    plots.plot_images(filters, ax=ax, scale="each", title="filters")
    (im,) = ax.get_images()
    # Signed filters: each divided by its largest |value|, zero in the middle of the map.
    tiles = [im.get_array()[1 + 5 * r:5 + 5 * r, 1 + 5 * c:5 + 5 * c]
             for r, c in [(0, 0), (1, 2)]]  # images 0 and 5 of a 3-column mosaic
    for tile, raw in zip(tiles, filters[[0, 5]], strict=True):
        np.testing.assert_allclose(tile, raw.reshape(4, 4) / np.abs(raw).max(), rtol=1e-6)
    assert im.get_clim() == (-1.0, 1.0) and ax.get_title() == "filters"
    assert im.get_array().mask[0].all()  # the frame is masked: background, not a colour
    assert len(plt.get_fignums()) == 1
    positive = plots.plot_images(np.abs(filters), scale="each")
    tile = positive.get_images()[0].get_array()[1:5, 1:5]
    assert tile.min() == 0.0 and tile.max() == 1.0
    ax2 = plots.plot_images(np.zeros((4, 5, 6)))  # (n, h, w) needs no shape
    assert ax2.get_images()[0].get_array().shape == (2 * 6 + 1, 2 * 7 + 1)


def test_plot_images_fixed_grey_scale():
    probs = np.full((4, 9), 0.4)
    ax = plots.plot_images(probs, vmin=0, vmax=1)
    assert ax.get_images()[0].get_clim() == (0.0, 1.0)
    auto = plots.plot_images(probs)  # negative control: the data's own range
    assert auto.get_images()[0].get_clim() == (0.4, 0.4)


def test_plot_images_bad_input():
    with pytest.raises(OptionError, match="not square"):
        plots.plot_images(np.zeros((3, 10)))
    with pytest.raises(OptionError, match="does not match"):
        plots.plot_images(np.zeros((3, 10)), shape=(3, 3))
    with pytest.raises(OptionError, match="image\\[None\\]"):
        plots.plot_images(np.zeros(16))
    with pytest.raises(OptionError, match="scale"):
        plots.plot_images(np.zeros((2, 4)), scale="log")
    with pytest.raises(OptionError, match="numbers"):
        plots.plot_images([["a", "b"]])
    assert plt.get_fignums() == []


# ------------------------------------------------------------------ lattice
def test_plot_lattice_single_snapshot_reports_magnetisation():
    spins = np.ones((6, 6))
    spins[:2] = -1
    ax = plots.plot_lattice(spins)
    (im,) = ax.get_images()
    np.testing.assert_array_equal(im.get_array(), spins)
    assert ax.get_title() == f"magnetisation {np.mean(spins):+.2f}"
    assert im.get_clim() == (-1.0, 1.0)


def test_plot_lattice_snapshots_from_an_ising_run():
    ising = emc.models.Ising((6, 6), beta=0.3)
    run = emc.sample(ising, method="gibbs", chains=1, draws=4, warmup=5, seed=0, progress=False)
    fig, ax = plt.subplots()
    plots.plot_lattice(run.draws[0], ax=ax, ncols=4, title="four sweeps")
    (im,) = ax.get_images()
    assert im.get_array().shape == (6 + 2, 4 * 7 + 1) and ax.get_title() == "four sweeps"
    assert len(plt.get_fignums()) == 1
    binary = plots.plot_lattice(np.array([0.0, 1.0, 1.0, 0.0]), shape=(2, 2))
    assert binary.get_images()[0].get_clim() == (0.0, 1.0)


def test_plot_lattice_bad_input():
    with pytest.raises(OptionError, match="-1/\\+1 or 0/1"):
        plots.plot_lattice(np.array([[0.5, 1.0], [1.0, 1.0]]))
    with pytest.raises(OptionError, match="Index a run's draws"):
        plots.plot_lattice(np.ones((2, 3, 4, 4)))
    assert plt.get_fignums() == []


def test_no_module_imports_arviz_or_pyplot_at_import_time():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(plots))
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = [a.name for n in top for a in n.names] + [getattr(n, "module", "") or "" for n in top]
    assert not any("matplotlib" in m or "arviz" in m for m in names)
    assert "arviz" not in inspect.getsource(plots).replace("ArviZ", "")
