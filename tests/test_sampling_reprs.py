"""Notebook faces of Run and Energy: bounded HTML reprs and the stats as a DataFrame."""

import re

import jax.numpy as jnp
import numpy as np
import pytest

import energymc as emc

pd = pytest.importorskip("pandas")


def quadratic(x):
    return 0.5 * jnp.sum(x**2)


@pytest.fixture(scope="module")
def run():
    target = emc.Energy(lambda p: 0.5 * jnp.sum(p["a"] ** 2) + 0.5 * p["b"] ** 2,
                        init={"a": jnp.zeros(3), "b": jnp.zeros(())}, name="two_leaves")
    return emc.sample(target, "mala", chains=3, draws=40, warmup=60, seed=0, progress=False)


def _rows(html, caption):
    """Body rows of the table with this caption."""
    table = html.split(f"<caption>{caption}</caption>")[1].split("</table>")[0]
    return re.findall(r"<tr>(.*?)</tr>", table)[1:]  # skip the header


def test_stats_frame_is_indexed_by_chain_and_draw_and_matches_stats(run):
    frame = run.stats_frame()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.index.names) == ["chain", "draw"] and len(frame) == 3 * 40
    assert set(frame.columns) == set(run.stats)
    for name, value in run.stats.items():
        np.testing.assert_array_equal(frame[name].to_numpy(), value.reshape(-1))
    # Row (chain 2, draw 7) is that chain's 8th draw, not another's.
    assert frame.loc[(2, 7), "lp"] == run.stats["lp"][2, 7]
    assert frame["diverging"].dtype == bool


def test_stats_frame_splits_stats_with_a_value_per_replica(run):
    # A stat with a value per replica, as a kernel may report: (chains, draws, 3).
    multi = emc.Run(target=run.target, method="x", seed=0, options={}, chains=2,
                    warmup_steps=0, thin=1, warmup_params={}, warmup_trace={})
    rung = np.arange(2 * 5 * 3, dtype=float).reshape(2, 5, 3)
    multi._append(np.zeros((2, 5, 4)), {"acceptance_rate": np.ones((2, 5)),
                                        "diverging": np.zeros((2, 5), bool), "rung_lp": rung})
    frame = multi.stats_frame()
    assert list(frame.columns) == ["acceptance_rate", "diverging", "rung_lp[0]", "rung_lp[1]",
                                   "rung_lp[2]"]
    np.testing.assert_array_equal(frame.loc[(1, 4), ["rung_lp[0]", "rung_lp[1]", "rung_lp[2]"]],
                                  rung[1, 4])


def test_run_html_has_headline_chain_and_variable_tables(run):
    html = run._repr_html_()
    assert "energymc Run" in html and "two_leaves" in html
    chains = _rows(html, "per chain")
    assert len(chains) == 3
    acc = f"{np.mean(run.stats['acceptance_rate'][1]):.3f}"
    assert acc in chains[1]
    variables = _rows(html, "draws (all chains)")
    assert len(variables) == 2 and "(3,)" in variables[0] and "()" in variables[1]
    assert "per chain" not in repr(run) and "acceptance" in repr(run)


def test_run_html_tables_are_bounded():
    ising = emc.models.Ising((4, 4), beta=0.3)
    big = emc.sample(ising, "gibbs", chains=12, draws=5, warmup=5, seed=0, progress=False)
    html = big._repr_html_()
    chains = _rows(html, "per chain")
    assert len(chains) == 10 + 1 and "… and 2 more chains" in chains[-1]
    # Negative control: ten rows fit, no note.
    from energymc._display import html_columns

    ten = html_columns("per chain", ["chain"], [[str(i)] for i in range(10)], what="chains")
    assert len(_rows(ten, "per chain")) == 10 and "more" not in ten
    text = repr(big)
    assert "… and 2 more chains" in text and len(text.splitlines()) < 30


def test_energy_html_names_origin_and_bounded_leaves():
    many = {f"w{i:02d}": jnp.zeros((i % 3 + 1,)) for i in range(14)}
    target = emc.Energy(lambda p: sum(jnp.sum(v**2) for v in p.values()), init=many,
                        name="many")
    html = target._repr_html_()
    assert "energymc Energy" in html and "energy function" in html
    leaves = _rows(html, "init")
    assert len(leaves) == 11 and "… and 4 more leaves" in leaves[-1]
    logp = emc.Energy.from_logdensity(lambda x: -quadratic(x), init=jnp.zeros(2))
    assert "log-density" in logp._repr_html_()
    assert len(_rows(logp._repr_html_(), "init")) == 1
