"""Every public function that touches ArviZ, under whichever generation is installed.

On Python 3.11 pip resolves ArviZ 0.23 (``InferenceData``), on 3.12+ ArviZ 1.x
(xarray ``DataTree``); ``.ci/run`` runs this file under both.
"""

import os

import jax.numpy as jnp
import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import energymc as emc  # noqa: E402
from energymc import diagnostics  # noqa: E402


def _native_type():
    """The data type of the installed ArviZ generation: 0.x InferenceData, 1.x DataTree."""
    if diagnostics.arviz_major() >= 1:
        import xarray

        return xarray.DataTree
    import arviz

    return arviz.InferenceData


@pytest.fixture(scope="module")
def nuts_run():
    target = emc.Energy(lambda p: 0.5 * jnp.sum(p["a"] ** 2) + 0.5 * p["b"] ** 2,
                        init={"a": jnp.zeros(2), "b": jnp.zeros(())})
    return emc.sample(target, "nuts", chains=4, draws=200, warmup=200, seed=0)


def test_the_adapter_matches_the_installed_arviz():
    import arviz

    major = int(arviz.__version__.split(".")[0])
    assert diagnostics.arviz_major() == major
    assert isinstance(diagnostics.from_arrays({"x": np.zeros((2, 3))}), _native_type())


def test_to_arviz_groups_shapes_and_attrs(nuts_run):
    data = nuts_run.to_arviz()
    post = diagnostics.group(data, "posterior")
    stats = diagnostics.group(data, "sample_stats")
    assert post["a"].shape == (4, 200, 2) and post["b"].shape == (4, 200)
    assert {"lp", "diverging", "energy", "acceptance_rate"} <= set(stats.data_vars)
    np.testing.assert_allclose(stats["lp"].values, nuts_run.stats["lp"])
    attrs = diagnostics.attributes(data)
    assert attrs["method"] == "nuts" and attrs["inference_library"] == "energymc"


def test_summary_and_diagnose_agree_on_the_columns_they_share(nuts_run):
    table = emc.summary(nuts_run, round_to="none")
    assert {"mean", "sd", "ess_bulk", "ess_tail", "r_hat", "mcse_mean"} <= set(table.columns)
    d = emc.diagnose(nuts_run)
    assert d.ok, d.problems
    assert list(d.table.columns) == ["mean", "sd", "mcse_mean", "ess_bulk", "ess_tail", "r_hat"]
    assert set(d.table.index) == set(table.index) == {"a[0]", "a[1]", "b"}
    np.testing.assert_allclose(d.table.loc[table.index, "ess_bulk"], table["ess_bulk"],
                               rtol=1e-6)
    assert len(d.numbers["bfmi"]) == 4


def test_save_load_round_trip_is_plain_netcdf_groups(nuts_run, tmp_path):
    import xarray

    path = emc.io.save(nuts_run, tmp_path / "run.nc")
    loaded = emc.io.load(path)
    assert isinstance(loaded, _native_type()) and isinstance(nuts_run.to_arviz(), _native_type())
    np.testing.assert_allclose(diagnostics.group(loaded, "posterior")["a"].values,
                               nuts_run.draws["a"])
    assert diagnostics.attributes(loaded)["method"] == "nuts"
    assert emc.diagnose(loaded).ok == emc.diagnose(nuts_run).ok
    # The layout both ArviZ generations read: one netCDF group per ArviZ group,
    # run attributes on the root.
    tree = xarray.open_datatree(path)
    assert {"posterior", "sample_stats"} <= set(tree.children)
    assert tree.attrs["method"] == "nuts"
    tree.close()
    # Saving what was loaded writes the same thing again.
    again = emc.io.load(emc.io.save(loaded, tmp_path / "again.nc"))
    np.testing.assert_array_equal(diagnostics.group(again, "posterior")["b"].values,
                                  diagnostics.group(loaded, "posterior")["b"].values)


@pytest.mark.parametrize("plot", ["plot_trace", "plot_rank", "plot_energy", "plot_pair"])
def test_plots_return_one_figure_and_show_nothing(nuts_run, plot, monkeypatch):
    shown = []
    monkeypatch.setattr(plt, "show", lambda *a, **k: shown.append(1))
    plt.close("all")
    out = getattr(emc.diagnostics, plot)(nuts_run)
    fig = diagnostics.plot_figure(out)
    assert isinstance(fig, matplotlib.figure.Figure)
    assert plt.get_fignums() == [fig.number]  # exactly one figure: a notebook draws it once
    assert not shown
    assert fig.axes
    plt.close("all")


def test_plot_energy_refuses_runs_without_a_hamiltonian():
    run = emc.sample(emc.Energy(lambda x: 0.5 * jnp.sum(x**2), init=jnp.zeros(2)), "mala",
                     chains=2, draws=50, warmup=50, seed=0)
    with pytest.raises(ValueError, match="only method='nuts' or 'hmc' records"):
        diagnostics.plot_energy(run)


def test_logz_to_arviz_carries_particles_stages_and_the_estimate(tmp_path):
    est = emc.log_partition(emc.Energy(lambda x: 0.5 * jnp.sum(x**2), init=jnp.zeros(2)),
                            method="ais", seed=0, particles=64, num_temps=10)
    data = est.to_arviz()
    post = diagnostics.group(data, "posterior")
    # The default 4 replicates pool their final particles: 4 x 64 weighted draws.
    assert post["x"].shape == (1, 4 * 64, 2) == (1, len(est.weights), 2)
    weights = diagnostics.group(data, "sample_stats")["weight"].values
    np.testing.assert_allclose(weights.sum(), 1.0, rtol=1e-5)
    stages = diagnostics.group(data, "constant_data")
    assert "beta" in stages and stages["beta"].dims == ("stage",)
    attrs = diagnostics.attributes(data)
    assert attrs["log_z"] == pytest.approx(est.log_z) and attrs["method"] == "ais"
    back = emc.io.load(emc.io.save(data, os.path.join(tmp_path, "logz.nc")))
    assert diagnostics.attributes(back)["log_z"] == pytest.approx(est.log_z)


def test_a_wrong_object_gets_a_clear_type_error():
    with pytest.raises(TypeError, match="expected an energymc Run"):
        emc.diagnose({"x": np.zeros((2, 10))})
