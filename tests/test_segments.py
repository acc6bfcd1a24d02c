"""Long runs judged a segment of draws at a time: the same numbers as ArviZ on every draw.

Above ``_SEGMENT_DRAWS`` draws per chain, ``diagnose`` and ``summary`` hand
ArviZ contiguous segments of each coordinate's draws and the draws thinned to
one segment's length, and combine (``diagnostics._segmented_table``). Here the
private knobs force short segments (20,000 draws) on 4 chains x 200,000 draws,
where ArviZ can still see every draw at once, and the two are compared.
"""

import numpy as np
import pandas as pd
import pytest
from scipy.signal import lfilter
from scipy.stats import norm

from energymc import diagnostics

CHAINS, DRAWS, SEGMENT = 4, 200_000, 20_000


def _ar1(rng, phi: float) -> np.ndarray:
    """``(CHAINS, DRAWS)`` stationary AR(1) chains of unit variance; autocorrelation
    time ``(1 + phi) / (1 - phi)``."""
    noise = rng.standard_normal((CHAINS, DRAWS))
    return lfilter([np.sqrt(1.0 - phi**2)], [1.0, -phi], noise, axis=1)


@pytest.fixture(scope="module")
def long_chains():
    rng = np.random.default_rng(11)
    apart = rng.standard_normal((CHAINS, DRAWS))
    apart[:2] += 3.0                      # two chains stuck 3 sd away from the other two
    return diagnostics.from_arrays({
        "iid": _ar1(rng, 0.0),            # autocorrelation time 1
        "ar": _ar1(rng, 0.9),             # 19: 1,000 of it in a segment
        "sticky": _ar1(rng, 0.999),       # 1,999: 10 of it in a segment (too few)
        "apart": apart,
    })


@pytest.fixture(scope="module")
def tables(long_chains):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(diagnostics, "_SEGMENT_DRAWS", 10**9)   # ArviZ on every draw
        whole = diagnostics.diagnose(long_chains)
        mp.setattr(diagnostics, "_SEGMENT_DRAWS", SEGMENT)
        # One coordinate a batch, as a long run's would be.
        mp.setattr(diagnostics, "_BATCH_BYTES", 8 * CHAINS * SEGMENT)
        segmented = diagnostics.diagnose(long_chains)
    return whole, segmented


def test_a_segmented_diagnosis_gives_arviz_s_numbers_on_every_draw(tables):
    whole, segmented = tables
    assert whole.table.attrs["segments"] == 1 and segmented.table.attrs["segments"] == 10
    a, b = whole.table.sort_index(), segmented.table.sort_index()
    assert list(a.index) == list(b.index) == ["apart", "ar", "iid", "sticky"]
    # Means and sds pool the segments' exactly.
    np.testing.assert_allclose(b["mean"], a["mean"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b["sd"], a["sd"], rtol=1e-9)
    # ESS: ArviZ's estimate on every draw varies from seed to seed by 0.5% (iid),
    # 1.7% (ar) and 18% (sticky); from the same draws the two differed by at most
    # 0.7% (bulk), 3.8% (tail, low: a segment's tail ESS is the smaller of two
    # quantiles') and 0.4% (MCSE) over seeds 0-7 (benchmarks/probe_segments.py).
    good = ["iid", "ar", "sticky"]
    np.testing.assert_allclose(b.loc[good, "ess_bulk"], a.loc[good, "ess_bulk"], rtol=0.03)
    np.testing.assert_allclose(b.loc[good, "ess_tail"], a.loc[good, "ess_tail"], rtol=0.06)
    np.testing.assert_allclose(b.loc[good, "mcse_mean"], a.loc[good, "mcse_mean"], rtol=0.02)
    np.testing.assert_allclose(b["r_hat"], a["r_hat"], atol=0.005)
    # Too few autocorrelation times in a segment (the sticky chain's, and chains
    # apart, whose segments each read a low ESS): their ESS is the thinned draws',
    # not the segments' sum; the others' are the sums.
    assert sorted(segmented.table.attrs["thinned_ess"]) == ["apart", "sticky"]


def test_segments_still_see_chains_apart_and_a_sticky_chain(tables):
    whole, segmented = tables
    for d in (whole, segmented):
        t = d.table
        assert t.loc["apart", "r_hat"] > 1.5                    # >> 1.01: stuck apart
        assert t.loc["sticky", "ess_bulk"] < 100 * CHAINS       # ~400 of 800,000 draws
        assert t.loc["iid", "ess_bulk"] > 0.9 * CHAINS * DRAWS  # the positive control
        assert not d.ok
        text = " ".join(d.problems)
        assert "R-hat is" in text and "Effective sample size is low" in text
    # The negative control of the combination: one segment alone reads a tenth
    # of the iid chain's ESS, so summing is what brings it to the whole run's.
    assert segmented.table.loc["iid", "ess_bulk"] > 5 * CHAINS * SEGMENT
    assert segmented.numbers["max_rhat"] == pytest.approx(whole.numbers["max_rhat"], abs=0.05)
    # The headline says how the long run was judged; the whole run's does not.
    assert "judged in 10 segments of about 20,000 draws" in repr(segmented)
    assert "thinned draws" in repr(segmented) and "segments" not in repr(whole)


# The columns of ArviZ's summary that are not interval bounds, in either generation.
_POINT_COLUMNS = ("mean", "sd", "mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "r_hat")


def _rounded_as_arviz_does(table):
    """ArviZ's documented default rounding of its summary: 0.x rounds to 3 decimals
    (ESS to 0, R-hat to 2); 1.x to 2 significant digits."""
    if diagnostics.arviz_major() == 0:
        return table.round({c: 0 if c.startswith("ess") else 2 if c == "r_hat" else 3
                            for c in table.columns})
    return table.map(lambda v: v if v == 0 or not np.isfinite(v)
                     else round(v, 1 - int(np.floor(np.log10(abs(v))))))


def test_summary_of_a_long_run_in_segments_matches_arviz_whole(long_chains, monkeypatch):
    iid = diagnostics.from_arrays(
        {"iid": np.asarray(diagnostics.group(long_chains, "posterior")["iid"])})
    whole = diagnostics.summary(iid, round_to="none")            # small enough to go whole
    assert "segments" not in whole.attrs
    monkeypatch.setattr(diagnostics, "_SEGMENT_DRAWS", SEGMENT)
    monkeypatch.setattr(diagnostics, "_BATCH_BYTES", 8 * CHAINS * SEGMENT)
    raw = diagnostics.summary(iid, round_to="none")
    assert raw.attrs["segments"] == 10 and raw.attrs["thinned_ess"] == []
    assert list(raw.columns) == list(whole.columns) and list(raw.index) == list(whole.index)
    np.testing.assert_allclose(raw["sd"], whole["sd"], rtol=1e-9)
    bounds = [c for c in whole.columns if c not in _POINT_COLUMNS]
    assert len(bounds) == 2
    # Interval bounds: the segments' average. An HDI bound on every draw is itself
    # off by about 0.01 here (shifting the interval barely changes its length, so
    # its place is ill-determined): this chain's whole-run 94% HDI is
    # (-1.870, 1.885) against the true +-1.881. Both within 0.03 of the truth.
    np.testing.assert_allclose(raw[bounds], whole[bounds], atol=0.03)
    prob = 0.94 if diagnostics.arviz_major() == 0 else 0.89  # each one's default interval
    edge = float(norm.ppf(0.5 + prob / 2))
    np.testing.assert_allclose(raw.loc["iid", bounds], [-edge, edge], atol=0.03)
    np.testing.assert_allclose(raw["ess_bulk"], whole["ess_bulk"], rtol=0.03)
    np.testing.assert_allclose(raw["mcse_mean"], whole["mcse_mean"], rtol=0.02)
    np.testing.assert_allclose(raw["mcse_sd"], whole["mcse_sd"], rtol=0.03)
    # Rounded as the installed ArviZ rounds its own summary, and only a chosen variable.
    rounded = diagnostics.summary(iid, var_names=["iid"])
    assert rounded.attrs["segments"] == 10
    pd.testing.assert_frame_equal(rounded, _rounded_as_arviz_does(raw), check_dtype=False)
    assert not rounded.equals(raw)
    # An argument the segments cannot honour sends the summary to ArviZ whole.
    focus = {"stat_focus": "median"} if diagnostics.arviz_major() == 0 else {"kind": "all_median"}
    assert "segments" not in diagnostics.summary(iid, **focus).attrs
