"""``base=None`` ("auto") falls back to parallel tempering when the mode check flags the
AIS/SMC run low (modes it missed or under-weighted), or when another check flags a run
whose mode check found Gaussians at the minima that fit the target; and to nested
sampling where the mode check could not vouch for the run (a funnel's neck).

* on a 2-d mixture whose narrow mode default AIS loses (-0.69 nats, stderr
  0.01), the call returns PT's estimate, within 3 stderr of the exact log Z,
  with the first run, both costs and the reason in ``info["fallback"]``;
* a checkpointed call interrupted in its PT run resumes to the same estimate
  (slow tier);
* a run flagged by another check (weight ESS, lineages, replicate spread)
  falls back too where its mode check compared and its Gaussians at two or
  more minima fit (importance ESS >= half its draws); not one mode (held-out
  gaussian500, where PT is far off), not where they fit poorly
  (wells32, funnel2 on TUNING), the check did not compare, the depth rule
  called the run unverified (nested sampling's case, up to 50 dimensions), the
  tail check escalated it, or only the outskirts check's bound flagged it;
* a 6-d funnel run that the depth rule calls unverified is run again by nested
  sampling, whose estimate comes back still flagged (nothing vouches for it);
* negative controls: PT far below the first run's unbiased estimate is
  flagged (the rule that keeps the fallback from adding a silent miss);
  ``checks=False`` and an explicit base never fall back; a Gaussian never
  reaches the fallback (``test_logz_escalation.py``'s light-target test, so
  that its compiled call is shared).
"""

from __future__ import annotations

from types import SimpleNamespace

import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import logsumexp

import energymc as emc
from energymc.logz import _api
from energymc.logz._api import fallback_trigger
from energymc.logz._checks import lower_than_unbiased

from meters import CountingMeter, Interrupted

pytestmark = pytest.mark.filterwarnings("ignore::energymc.EnergymcWarning")

# Equal weights, sds 1 and 0.25, 8.5 apart: default AIS's particles stay in the
# broad mode and its log Z is log(0.5) low, which the mode check's descents
# from draws of the base see (TUNING-free: a test target, not a zoo one).
_W, _S = np.array([0.5, 0.5]), np.array([1.0, 0.25])
_MU = np.array([[-4.0, 0.0], [4.0, 3.0]])
_LOG_Z = 1.5


def _mixture():
    la = jnp.asarray(np.log(_W) - (np.log(2 * np.pi) + 2 * np.log(_S)) + _LOG_Z)
    mu, s = jnp.asarray(_MU), jnp.asarray(_S)
    return emc.Energy(lambda x: -logsumexp(la - 0.5 * jnp.sum((x - mu) ** 2, axis=1) / s**2),
                      init=jnp.zeros(2), name="mixture2_narrow")


MIXTURE = _mixture()


@pytest.mark.slow  # a long statistical run; the default tier keeps the faster ones
def test_a_flagged_mixture_falls_back_to_pt_and_is_right():
    """Seed 1: ``"auto"``'s mode fit finds only
    the broad mode (32 descents), AIS anneals from it and loses the narrow one. Then
    seed 7, a run that another check flagged (below)."""
    est = emc.log_partition(MIXTURE, seed=1, progress=False)
    fb = est.info["fallback"]
    first = fb["first"]
    # The first run lost the narrow mode (half the mass) and said so.
    assert first["method"] == "ais" and not first["reliable"]
    assert first["mode_check"]["flag"] == "low" and first["mode_check"]["unreached"] >= 1
    assert first["log_z"] < _LOG_Z - 0.5 < first["mode_check"]["log_z"]
    assert "nats higher" in " ".join(first["problems"])
    # PT's estimate comes back, checked, and right within 3 of its stderrs.
    assert est.method == "pt" and fb["method"] == "pt" and "Gaussian" in fb["base"]
    assert est.info["checks"]["modes"]["status"] == "compared" and fb["disagree"] == []
    assert est.reliable, est.problems
    assert abs(est.log_z - _LOG_Z) < 3 * est.stderr
    # Both runs are paid for, and said so; the first run's base fit is kept.
    assert est.num_grad_evals == first["num_grad_evals"] + fb["pt"]["num_grad_evals"]
    assert first["num_grad_evals"] > 0 and fb["pt"]["num_grad_evals"] > 0
    assert est.timing["fallback_first_s"] == first["seconds"] > 0
    assert fb["pt"]["seconds"] > 0 and "mode check flagged" in fb["reason"]
    assert fb["trigger"] == "modes"
    assert est.info["mode_fit"]["used"]
    # PT's default effort follows its stderr here (up to 4 runs), the first run's too.
    prec = est.info["precision"]
    assert prec["default"] == 1 and prec["cap"] == 4
    assert prec["replicates"] == len(est.replicates if est.replicates is not None else [0])
    assert prec["reached"] == (prec["stderr"] <= 0.05)
    assert first["precision"]["default"] == 4 and first["precision"]["cap"] == 16
    # In the same test, so that the compiled runs are shared (the suite runs in workers).
    _a_run_flagged_by_its_weight_ess_falls_back_where_its_modes_fit()


def test_pt_below_an_unbiased_estimate_is_flagged():
    """The rule that keeps the fallback from adding a silent miss, with a negative control:
    PT 1 nat below the first run (stderrs 0.05) is flagged; within the bars, or above
    (the first run lost mass, the case the fallback is for), it is not."""
    refs = [("the first run's (ais)", 1.5, 0.05), ("the mode check's", 1.49, 0.01)]
    names, problems = lower_than_unbiased(0.5, 0.05, refs)
    assert names == ["the first run's (ais)", "the mode check's"]
    assert len(problems) == 2 and "parallel tempering lost mass" in problems[0]
    assert lower_than_unbiased(1.40, 0.05, refs) == ([], [])  # 1.4 se below: within
    assert lower_than_unbiased(2.2, 0.05, refs) == ([], [])   # above: not a loss of mass
    # Nested sampling's estimate is checked the same way, and the fix names its options.
    names, problems = lower_than_unbiased(0.5, 0.05, refs[:1], method="nested")
    assert names == [refs[0][0]] and problems[0].startswith("nested sampling's log Z")
    assert "particles= and num_inner_steps= for method='nested'" in problems[0]


@pytest.mark.slow
def test_a_call_interrupted_in_its_pt_run_resumes_exactly(tmp_path):
    """Slow tier: a meter (to interrupt the call) compiles stage ticks into every run."""
    ckpt = tmp_path / "logz"
    # 4 replicates of the first run, then PT's first: stopped while PT's estimate is
    # shown (it was saved first).
    with pytest.raises(Interrupted):
        emc.log_partition(MIXTURE, seed=1, progress=CountingMeter(stop_at=5), checkpoint=ckpt)
    assert (ckpt / _api.FALLBACK_DIR).is_dir()
    want = emc.log_partition(MIXTURE, seed=1, progress=CountingMeter())
    meter = CountingMeter()
    got = emc.log_partition(MIXTURE, seed=1, progress=meter, checkpoint=ckpt)
    # Every replicate saved was read back; PT's default effort then ran the ones
    # that were still to come (more while its stderr was above 0.05 nats).
    assert got.timing["resumed_replicates"] == 1  # PT's first
    prec = got.info["precision"]
    assert prec["default"] == 1 and prec["cap"] == 4
    assert meter.finished == prec["replicates"] - 1 == len(got.replicates) - 1
    assert got.info["fallback"]["first"]["log_z"] == want.info["fallback"]["first"]["log_z"]
    assert got.log_z == want.log_z and got.stderr == want.stderr
    assert np.array_equal(got.particles, want.particles)
    assert got.num_grad_evals == want.num_grad_evals and got.problems == want.problems
    # An explicit base is kept: no fallback.
    est = emc.log_partition(MIXTURE, seed=1, base="gaussian", progress=CountingMeter())
    assert "fallback" not in est.info and est.method == "ais"


def test_without_checks_there_is_no_fallback():
    est = emc.log_partition(MIXTURE, seed=1, checks=False, progress=False)
    assert "fallback" not in est.info and est.method == "ais"
    assert "checks" not in est.info or "modes" not in est.info["checks"]


def _a_run_flagged_by_its_weight_ess_falls_back_where_its_modes_fit():
    """Seed 7: AIS found both modes (the mode check passes it) but its weights rest on
    few particles, so its error bars are in doubt; the check's Gaussians at the two
    minima fit (importance ESS about 0.8 of the draws), so PT runs, and comes back
    right within 3 of its stderrs."""
    est = emc.log_partition(MIXTURE, seed=7, progress=False)
    fb = est.info["fallback"]
    first = fb["first"]
    assert fb["trigger"] == "flagged" and "local minima describe" in fb["reason"]
    assert not first["reliable"] and first["mode_check"]["flag"] is None
    assert "weight ESS" in " ".join(first["problems"])
    assert first["mode_check"]["status"] == "compared"
    assert first["mode_check"]["ess"] >= _api.FALLBACK_MIN_ESS * first["mode_check"]["draws"]
    assert est.method == "pt" and fb["disagree"] == [] and est.reliable, est.problems
    assert abs(est.log_z - _LOG_Z) < 3 * est.stderr
    assert est.num_grad_evals == first["num_grad_evals"] + fb["pt"]["num_grad_evals"]


_ESS_PROBLEM = ("the final weight ESS is 12.0 of 1000 particles (below 100): the estimate "
                "and its stderr are dominated by a few particles")


def _run(problems, **modes):
    """A run as :func:`fallback_trigger` reads it: its problems and mode-check info."""
    info = {"status": "compared", "modes": 3, "draws": 4096, "ess": 3000.0, "log_z": 1.5,
            "stderr": 0.02, "depth": 0.5, "depth_limit": 11.0, "deepest": -1.0,
            "energy_q01": -0.5, **modes}
    return SimpleNamespace(problems=list(problems), log_z=1.5, info={"checks": {"modes": info}})


def test_flagged_runs_whose_modes_fit_fall_back_too():
    """The trigger on recorded checks (no run: the end-to-end path is the test above)."""
    assert fallback_trigger(_run([_ESS_PROBLEM])) == "flagged"
    assert fallback_trigger(_run([_ESS_PROBLEM], ess=0.5 * 4096)) == "flagged"  # at the bar
    assert fallback_trigger(_run(["nats higher"], flag="low")) == "modes"
    assert fallback_trigger(_run(["nats lower"], flag="high")) == "flagged"
    # Negative controls. Nothing flagged:
    assert fallback_trigger(_run([])) is None
    # One mode: nothing for PT to connect (held-out gaussian500: PT 24 nats low):
    assert fallback_trigger(_run([_ESS_PROBLEM], modes=1)) is None
    # Gaussians at the minima that miss most of the mass (wells32 read 0.04-0.37):
    assert fallback_trigger(_run([_ESS_PROBLEM], ess=0.37 * 4096)) is None
    # A check that did not compare:
    assert fallback_trigger(_run([_ESS_PROBLEM], ess=100.0,
                                 status="skipped: the mixture fits poorly (ESS 100)")) is None
    # The depth rule's funnel neck goes to nested sampling, not PT (which does not
    # reach it either), up to 50 dimensions; a flagged run whose modes fit but whose
    # descents went that deep too:
    neck = _run([_ESS_PROBLEM], depth=40.0, deepest=-40.0)
    assert fallback_trigger(neck) == fallback_trigger(neck, 50) == "unverified"
    assert fallback_trigger(neck, 51) is None
    # A run the tail check escalated (PT was not measured there), and one without checks:
    escalated = _run([_ESS_PROBLEM])
    escalated.info["escalation"] = {}
    assert fallback_trigger(escalated) is None
    # A run flagged only by the outskirts check's BDMC bound (it bounds unflagged runs):
    bounded = _run(["the final particles may under-cover the target's outskirts"])
    bounded.info["checks"]["outskirts"] = {"trend": 1.5, "upper": float("inf")}
    assert fallback_trigger(bounded) is None
    assert fallback_trigger(SimpleNamespace(problems=[_ESS_PROBLEM], log_z=1.5, info={})) is None


def _funnel6():
    """Neal's funnel in 6-d (``v ~ N(0, 3^2)``, ``x_i | v ~ N(0, e^v)``; not a zoo target)."""

    def energy(z):
        v, x = z[0], z[1:]
        return v**2 / 18.0 + 0.5 * jnp.sum(x**2) * jnp.exp(-v) + 2.5 * v

    return emc.Energy(energy, init=jnp.zeros(6), name="funnel6")


def test_an_unverified_funnel_run_falls_back_to_nested_sampling_and_stays_flagged():
    """Seed 1: default AIS's descents go 14 nats below its particles (the depth rule), so
    nested sampling runs from nested's own "auto" base. Its estimate comes back (here
    within 3 of its stderrs of the exact log Z), still flagged: on this funnel the same
    fallback read 0.12-0.33 nats low with stderrs near 0.08 on seeds 0, 2 and 3, with
    its own check passing (examples/logz_funnel.py)."""
    truth = 0.5 * np.log(2 * np.pi * 9.0) + 2.5 * np.log(2 * np.pi)
    est = emc.log_partition(_funnel6(), seed=1, progress=False)
    fb = est.info["fallback"]
    first = fb["first"]
    assert fb["trigger"] == "unverified" and fb["method"] == est.method == "nested"
    assert first["method"] == "ais" and not first["reliable"]
    assert any(p.startswith("unverified") for p in first["problems"])
    assert "funnel's neck" in fb["reason"] and "nats below their 1% energy" in fb["reason"]
    # Flagged, with the first run named; no midpoint ± stderr is printed.
    assert not est.reliable and any("nested sampling's estimate" in p for p in est.problems)
    assert "±" not in est.estimate_text
    assert abs(est.log_z - truth) < 3 * est.stderr
    # Both runs (and the second base's fit) are paid for.
    assert est.num_grad_evals == first["num_grad_evals"] + fb["nested"]["num_grad_evals"]
    assert fb["nested"]["num_grad_evals"] > 0 and fb["disagree"] == []
    assert est.timing["fallback_first_s"] == first["seconds"] > 0


@pytest.mark.slow
def test_a_checkpointed_funnel_call_reads_its_nested_fallback_back(tmp_path):
    """Slow tier: the nested fallback's run is saved in its own subdirectory, and the
    same call again reads both runs back instead of running them; PT falls back too."""
    ckpt = tmp_path / "logz"
    want = emc.log_partition(_funnel6(), seed=1, progress=False, checkpoint=ckpt)
    assert (ckpt / _api.NESTED_FALLBACK_DIR).is_dir() and want.method == "nested"
    got = emc.log_partition(_funnel6(), seed=1, progress=False, checkpoint=ckpt)
    assert got.timing["resumed_replicates"] == 1  # nested sampling's one run
    assert got.log_z == want.log_z and got.stderr == want.stderr
    assert got.problems == want.problems and got.num_grad_evals == want.num_grad_evals
    assert got.info["fallback"]["first"]["log_z"] == want.info["fallback"]["first"]["log_z"]
    # method="pt" follows the same trigger (and no other): its unverified run is replaced by
    # the same nested run (same key and base), and PT's estimate is no unbiased reference.
    pt = emc.log_partition(_funnel6(), method="pt", seed=1, progress=False)
    fb = pt.info["fallback"]
    assert fb["first"]["method"] == "pt" and fb["trigger"] == "unverified"
    assert pt.method == "nested" and pt.log_z == want.log_z and not pt.reliable
    assert _api.FALLBACK_TRIGGERS["pt"] == ("unverified",)
