"""Streamed runs: draws written to disk as they come, a Run that reads them from there."""

import os

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import energymc as emc
from energymc import store as store_module
from energymc.errors import OptionError

# Untuned MALA (no adaptation to compile): these tests are about files, not mixing.
RUN = dict(chains=2, warmup=40, draws=60, seed=3, adapt=False, step_size=0.8)


def two_leaves(x):
    return 0.5 * jnp.sum(x["a"] ** 2) + 0.5 * (x["b"] - 1.0) ** 2


@pytest.fixture(scope="module")
def target():
    return emc.Energy(two_leaves, init={"a": jnp.zeros(3), "b": jnp.zeros(())})


@pytest.fixture(scope="module")
def runs(target, tmp_path_factory):
    """The same run streamed to a store and kept in memory (same compiled chunks)."""
    directory = tmp_path_factory.mktemp("streamed") / "run"
    with pytest.MonkeyPatch.context() as mp:
        # Chunks of 3 draws (2 chains x 4 coordinates x 4 bytes = 32 bytes a draw),
        # as the in-memory run's: one compiled chunk serves both runs.
        mp.setattr(store_module, "_CHUNK_BYTES", 3 * 32)
        stored = emc.sample(target, "mala", store=directory, **RUN)
    in_memory = emc.sample(target, "mala", callback=lambda run: None, **RUN)
    assert len([p for p in os.listdir(directory) if p.startswith("draws-")]) == 20
    return stored, in_memory, directory


def test_a_stored_run_keeps_no_draws_in_memory_and_reads_the_same_ones(runs):
    stored, in_memory, _ = runs
    assert stored.stored and not in_memory.stored
    assert stored._chunks_pos == [] and stored._chunks_stats == []
    assert stored.num_draws == 60
    assert np.array_equal(stored.flat_draws, in_memory.flat_draws)
    for name, values in in_memory.stats.items():
        assert np.array_equal(stored.stats[name], values), name
    # In memory the mean is numpy's float32 mean of the float32 stat; stored, a float64
    # sum over chunks: equal to float32 resolution.
    assert stored.mean_acceptance == pytest.approx(in_memory.mean_acceptance, rel=1e-6)
    assert stored.num_divergent == in_memory.num_divergent
    assert stored._variable_rows() == in_memory._variable_rows()
    assert repr(stored).split("time")[0] == repr(in_memory).split("time")[0]


def test_the_summary_of_a_stored_run_is_arviz_s_batch_by_batch(runs, monkeypatch):
    stored, in_memory, _ = runs
    monkeypatch.setattr(store_module, "_BATCH_BYTES", 1)  # one coordinate per batch
    table = stored.summary()
    assert list(table.index) == ["a[0]", "a[1]", "a[2]", "b"]
    pd.testing.assert_frame_equal(table, in_memory.summary())
    # The negative control: a coordinate's rows from other draws do differ.
    shuffled = emc.sample(emc.Energy(two_leaves, init={"a": jnp.zeros(3), "b": jnp.zeros(())}),
                          "mala", callback=lambda run: None, **{**RUN, "seed": 4})
    assert not np.allclose(shuffled.summary()["mean"], table["mean"])


@pytest.fixture
def reads(monkeypatch):
    """Every chunk file read (its name) and every array a lazy variable hands out."""
    log = {"files": [], "arrays": []}
    read, lazy_read = store_module.ChunkStore._read, store_module.StoredArray._read

    def counted_read(self, name, keys):
        log["files"].append(name)
        return read(self, name, keys)

    def counted_lazy_read(self, key):
        out = lazy_read(self, key)
        log["arrays"].append((self.name, out.nbytes))
        return out

    monkeypatch.setattr(store_module.ChunkStore, "_read", counted_read)
    monkeypatch.setattr(store_module.StoredArray, "_read", counted_lazy_read)
    return log


def test_the_arviz_data_of_a_stored_run_is_lazy_and_equal_to_the_run_in_memory(runs, reads,
                                                                               tmp_path):
    import xarray as xr

    from energymc.diagnostics import attributes, group

    stored, in_memory, _ = runs
    data = stored.to_arviz()
    assert set(reads["files"]) == {"draws-000000000.npz"}  # its layout, from the first draw
    posterior = group(data, "posterior")
    assert posterior["a"].shape == (2, 60, 3) and posterior.sizes["draw"] == 60
    reads["files"].clear()
    window = posterior["a"].isel(draw=slice(4, 7), a_dim_0=1).values  # draws 4..6
    assert reads["files"] == ["draws-000000003.npz", "draws-000000006.npz"]
    assert np.array_equal(window, in_memory.draws["a"][:, 4:7, 1])
    assert np.array_equal(posterior["b"].isel(chain=1, draw=-1).values, in_memory.draws["b"][1, -1])
    expected = in_memory.to_arviz()
    assert attributes(data) == attributes(expected)
    for name in ("posterior", "sample_stats"):
        xr.testing.assert_equal(group(data, name).load(), group(expected, name))
    # Saved to netCDF (xarray writes the lazy variables one at a time): the same file.
    saved = emc.diagnostics.from_netcdf(emc.diagnostics.to_netcdf(stored, str(tmp_path / "a.nc")))
    for name in ("posterior", "sample_stats"):
        xr.testing.assert_equal(group(saved, name), group(expected, name))


def test_diagnose_judges_a_stored_run_a_batch_of_coordinates_at_a_time(runs, reads, monkeypatch):
    from energymc import diagnostics

    stored, in_memory, _ = runs
    expected = emc.diagnose(in_memory)
    coordinate = 2 * 60 * 4  # one coordinate's draws (2 chains x 60 float32) as read
    # The negative control: with the default batch (16 MB) the posterior is small
    # enough to go to ArviZ whole, and the counter sees all of "a" read at once.
    whole = emc.diagnose(stored)
    assert max(n for name, n in reads["arrays"] if name == "a") == 3 * coordinate
    reads["arrays"].clear()
    monkeypatch.setattr(diagnostics, "_BATCH_BYTES", coordinate)
    batched = emc.diagnose(stored)
    posterior = [n for name, n in reads["arrays"] if name in ("a", "b")]
    assert len(posterior) == 4 and max(posterior) == coordinate
    for diagnosis in (whole, batched):
        assert diagnosis.ok == expected.ok and diagnosis.problems == expected.problems
        assert diagnosis.numbers == expected.numbers
        pd.testing.assert_frame_equal(diagnosis.table, expected.table)


def test_a_long_stored_run_is_summarised_and_diagnosed_a_segment_of_draws_at_a_time(
        runs, reads, monkeypatch):
    from energymc import diagnostics

    stored, in_memory, _ = runs
    whole = in_memory.summary(round_to="none")  # ArviZ on every draw, before the knobs
    coordinate = 2 * 20 * 4  # a segment of one coordinate (2 chains x 20 float32) as read
    monkeypatch.setattr(diagnostics, "_SEGMENT_DRAWS", 20)  # 60 draws: 3 segments
    monkeypatch.setattr(diagnostics, "_BATCH_BYTES", 2 * 20 * 8)
    table = stored.summary(round_to="none")
    posterior = [n for name, n in reads["arrays"] if name in ("a", "b")]
    # 4 coordinates x (3 segments + the draws thinned to 1 in 3): never more at once.
    assert len(posterior) == 16 and max(posterior) == coordinate
    assert table.attrs["segments"] == 3
    assert list(table.index) == ["a[0]", "a[1]", "a[2]", "b"]
    # The same rule for the run in memory (emc.summary) gives the same table.
    pd.testing.assert_frame_equal(table, emc.summary(in_memory, round_to="none"))
    np.testing.assert_allclose(table["mean"], whole["mean"], rtol=1e-5)
    np.testing.assert_allclose(table["sd"], whole["sd"], rtol=1e-5)
    lazy, expected = stored.diagnose(), emc.diagnose(in_memory)
    assert lazy.table.attrs["segments"] == 3 and lazy.numbers == expected.numbers
    pd.testing.assert_frame_equal(lazy.table, expected.table)


def test_a_plot_of_a_stored_run_reads_only_the_variables_it_draws(runs, reads):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stored, _, _ = runs
    plot = emc.diagnostics.plot_trace(stored, var_names=["b"])
    read = {name for name, _ in reads["arrays"]}
    assert "b" in read and "a" not in read  # and the divergence marks, a (chains, draws) stat
    plt.close(emc.diagnostics.plot_figure(plot))


def test_a_stored_run_writes_chunks_of_bounded_size(target, tmp_path, monkeypatch):
    # 2 chains x 4 coordinates x 4 bytes = 32 bytes a draw: at most 3 draws a chunk
    # (a run of 9 draws is otherwise one chunk).
    monkeypatch.setattr(store_module, "_CHUNK_BYTES", 3 * 32 + 31)
    stored = emc.sample(target, "mala", store=tmp_path / "small", **{**RUN, "draws": 9})
    chunks = sorted(p for p in os.listdir(tmp_path / "small") if p.startswith("draws-"))
    assert chunks == ["draws-000000000.npz", "draws-000000003.npz", "draws-000000006.npz"]
    assert stored.flat_draws.shape == (2, 9, 4)
    with pytest.raises(OptionError, match="store= writes the checkpoint too"):
        emc.sample(target, "mala", store=tmp_path / "a", checkpoint=tmp_path / "b", **RUN)


def test_a_store_resumes_like_a_checkpoint(target, runs):
    stored, in_memory, directory = runs
    again = emc.sample(target, "mala", store=directory, **RUN)  # finished: nothing to run
    assert again.stored and np.array_equal(again.flat_draws, in_memory.flat_draws)
    as_checkpoint = emc.sample(target, "mala", checkpoint=directory, **RUN)
    assert not as_checkpoint.stored
    assert np.array_equal(as_checkpoint.flat_draws, in_memory.flat_draws)


@pytest.mark.slow
def test_a_stored_numpyro_run_summarises_its_constrained_sites(tmp_path, monkeypatch):
    import numpyro
    import numpyro.distributions as dist

    def model(y):
        mu = numpyro.sample("mu", dist.Normal(0.0, 1.0).expand([2]))
        sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
        numpyro.sample("y", dist.Normal(mu[0] + mu[1], sigma), obs=y)

    target = emc.Energy.from_numpyro(model, np.array([0.3, -0.2, 0.5]))
    run = dict(chains=2, warmup=100, draws=200, seed=3)  # tuned: a posterior's scales
    stored = emc.sample(target, "mala", store=tmp_path / "np", **run)
    in_memory = emc.sample(target, "mala", callback=lambda run: None, **run)
    assert 0.3 < stored.mean_acceptance < 1.0  # the chains move: the table has numbers
    monkeypatch.setattr(store_module, "_BATCH_BYTES", 1)
    table = stored.summary()
    assert list(table.index) == ["mu[0]", "mu[1]", "sigma"]
    assert (table.loc["sigma", "mean"] > 0).all()  # the constrained (positive) site
    pd.testing.assert_frame_equal(table, in_memory.summary())
    assert stored._variable_rows() == in_memory._variable_rows()
    # The lazy ArviZ data holds the constrained sites too, a coordinate a batch in diagnose.
    import xarray as xr

    from energymc import diagnostics
    from energymc.diagnostics import group

    monkeypatch.setattr(diagnostics, "_BATCH_BYTES", 1)
    lazy, expected = emc.diagnose(stored), emc.diagnose(in_memory)
    assert lazy.numbers == expected.numbers and lazy.problems == expected.problems
    pd.testing.assert_frame_equal(lazy.table, expected.table)
    xr.testing.assert_equal(group(stored.to_arviz(), "posterior").load(),
                            group(in_memory.to_arviz(), "posterior"))


def test_a_run_stored_before_a_stat_was_renamed_reads_under_both_names(target, tmp_path):
    """Chunk files written under an old stat name (``mh_acceptance``) give the new name too."""
    directory = tmp_path / "old"
    stored = emc.sample(target, "langevin", store=directory, **{**RUN, "warmup": 0, "draws": 6})
    new = stored.stats["mh_acceptance_rate"]
    for name in os.listdir(directory):
        if name.startswith("draws-"):
            with np.load(directory / name) as z:
                arrays = {("stat_mh_acceptance" if k == "stat_mh_acceptance_rate" else k): z[k]
                          for k in z.files}
            np.savez(directory / name, **arrays)
    stats = stored.stats
    assert np.array_equal(stats["mh_acceptance_rate"], new)
    assert np.array_equal(stats["mh_acceptance"], new)


def _segments_alive_at_each_read(stored, monkeypatch):
    """How many posterior segments read earlier are still alive when each is read,
    over ``summary()`` and ``diagnose()`` of 3 segments, one coordinate a batch.
    The cycle collector is off, as it is between its own (rare) full collections."""
    import gc
    import weakref

    from energymc import diagnostics

    monkeypatch.setattr(diagnostics, "_SEGMENT_DRAWS", 20)  # 60 draws: 3 segments
    monkeypatch.setattr(diagnostics, "_BATCH_BYTES", 2 * 20 * 8)
    alive, live = [], []
    lazy_read = store_module.StoredArray._read

    def tracked_read(self, key):
        out = lazy_read(self, key)
        if self.group == "posterior":
            alive.append(sum(ref() is not None for ref in live))
            live.append(weakref.ref(out))
        return out

    monkeypatch.setattr(store_module.StoredArray, "_read", tracked_read)
    gc.collect()
    gc.disable()
    try:
        stored.summary(round_to="none")
        stored.diagnose()
    finally:
        gc.enable()
    return alive


def test_each_segment_of_a_long_stored_run_is_freed_before_the_next_is_read(runs, monkeypatch):
    from energymc import diagnostics

    stored = runs[0]
    alive = _segments_alive_at_each_read(stored, monkeypatch)
    # 4 coordinates x (3 segments + the thinned draws), for each of summary and diagnose.
    assert len(alive) == 32 and max(alive) == 0
    if diagnostics.arviz_major() >= 1:
        # The negative control: ArviZ 1.x judges a DataTree, whose nodes point at
        # each other, so without the collection every segment read stays alive.
        monkeypatch.setattr(diagnostics, "_free_cycles", lambda: None)
        alive = _segments_alive_at_each_read(stored, monkeypatch)
        assert alive == list(range(32))
