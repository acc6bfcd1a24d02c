"""``base=None`` ("auto") follows the tail check: a heavy-tailed target is run again
from a Student-t base, and the mode check's proposal then has Student-t tails.

* a product of Student-t under defaults (AIS and SMC) is escalated, reliable,
  and within 3 stderr of its closed-form log Z; both runs' cost is counted;
* negative controls: a light target is never escalated (its call is the
  one-run call: ``_escalate`` is never reached), and an explicit
  ``base="gaussian"`` is not escalated and stays flagged;
* the progress meter shows the second run as a second bar, and a
  checkpointed escalated call interrupted in its second run resumes to
  exactly the uninterrupted estimate;
* the mode check with Student-t components is unbiased on a Student-t target
  (its Gaussian components read low) and still catches a wrong estimate on
  an unequal mixture (negative control).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import logsumexp

import energymc as emc
from energymc.logz import _api
from energymc.logz._checks import mode_check

from meters import CountingMeter, Interrupted

_NU = 3.0

pytestmark = pytest.mark.filterwarnings("ignore::energymc.EnergymcWarning")


def _student_energy(x):
    return 0.5 * (_NU + 1.0) * jnp.sum(jnp.log1p((x - 0.5) ** 2 / _NU))


# One target object per dimension: compiled runs are reused across the tests here.
STUDENT = {d: emc.Energy(_student_energy, init=jnp.zeros(d), name=f"student{d}") for d in (2, 4)}


def _student_log_z(dim):
    one = 0.5 * math.log(_NU * math.pi) + math.lgamma(0.5 * _NU) - math.lgamma(0.5 * (_NU + 1))
    return dim * one


GAUSSIAN = emc.Energy(lambda x: 0.5 * jnp.sum((x - 1.0) ** 2 / 4.0), init=jnp.zeros(4),
                      name="gaussian4")


# Tiny AIS: one compilation of each base's loop, shared by the calls below that
# report to a CountingMeter (a meter compiles stage ticks in).
TINY = dict(method="ais", particles=16, schedule="linear", num_temps=4)
KW = dict(TINY, seed=3, replicates=3)

# ------------------------------------------------------------- log_partition


@pytest.mark.slow  # a long statistical run; the default tier keeps the faster ones
@pytest.mark.parametrize("method,seed", [("ais", 0), ("smc", 1)])
def test_heavy_target_under_defaults_is_escalated_reliable_and_right(method, seed):
    est = emc.log_partition(STUDENT[4], method=method, seed=seed, progress=False)
    esc = est.info["escalation"]
    assert "heavier than the base's" in " ".join(esc["first"]["problems"])
    assert not esc["first"]["reliable"] and esc["df"] == 3.0
    assert "StudentT" in est.info["base"]
    assert est.info["checks"]["tails"]["status"] == "heavy, as is the base"
    assert est.info["checks"]["modes"]["status"] == "compared"
    assert est.info["checks"]["modes"]["df"] == 3.0
    assert est.reliable, est.problems
    assert abs(est.log_z - _student_log_z(4)) < 3 * est.stderr
    # Both runs are paid for, and said so.
    assert est.num_grad_evals == esc["first"]["num_grad_evals"] + esc["second_num_grad_evals"]
    assert esc["first"]["num_grad_evals"] > 0 and esc["second_num_grad_evals"] > 0
    assert est.timing["escalation_first_s"] == esc["first"]["seconds"] > 0


def test_light_target_is_not_escalated(monkeypatch):
    """Negative control: the tail check reads light (and the mode check does not flag),
    and the call never reaches a second run
    (so its estimate is the one-run estimate of before, which the golden file pins)."""

    def boom(*a, **k):
        raise AssertionError("a light target was escalated")

    monkeypatch.setattr(_api, "_escalate", boom)
    # Nor the parallel-tempering fallback: the mode check does not flag a Gaussian.
    monkeypatch.setattr(_api, "_fallback", boom)
    est = emc.log_partition(GAUSSIAN, seed=0, progress=False)
    assert "escalation" not in est.info and "fallback" not in est.info
    assert est.method == "ais" and "flag" not in est.info["checks"]["modes"]
    assert est.info["checks"]["tails"]["status"] == "light"
    assert est.reliable, est.problems


def test_explicit_gaussian_base_is_not_escalated_and_stays_flagged():
    """Negative control: a base the user chose is kept, and the tail check's problem stands."""
    with pytest.warns(emc.errors.EnergymcWarning, match="heavier than the base's"):
        est = emc.log_partition(STUDENT[4], seed=0, base="gaussian", progress=False)
    assert "escalation" not in est.info
    assert est.info["checks"]["tails"]["status"] == "heavy"
    assert not est.reliable


def test_without_checks_there_is_no_tail_check_to_follow():
    est = emc.log_partition(STUDENT[2], seed=0, checks=False, progress=False,
                            particles=32)
    assert "escalation" not in est.info and "tails" not in est.info.get("checks", {})


@pytest.mark.slow  # a long statistical run; the default tier keeps the faster ones
def test_a_grad_evals_budget_covers_both_runs():
    """The second run gets what the first left of the budget (at least 2 replicates)."""
    budget = 16_000  # the mode fit of base="auto" takes about 14,000 of it at 2-d
    est = emc.log_partition(STUDENT[2], seed=2, budget={"grad_evals": budget},
                            progress=CountingMeter(), **TINY)
    esc = est.info["escalation"]
    first_reps = len(esc["first"]["replicates"])
    assert first_reps >= 2 and len(est.replicates) == 2  # the first left too little: 2
    assert esc["first"]["num_grad_evals"] <= budget
    assert est.num_grad_evals == esc["first"]["num_grad_evals"] + esc["second_num_grad_evals"]
    # The overspend is the second run's minimum of 2 replicates, no second budget.
    assert est.num_grad_evals <= budget + 3 * esc["second_num_grad_evals"] / 2


def test_the_meter_shows_the_second_run_as_a_second_bar():
    meter = CountingMeter()
    est = emc.log_partition(STUDENT[2], progress=meter, **KW)
    assert "escalation" in est.info
    first, second = meter.bars
    assert "Student-t base" not in first["description"]
    assert "Student-t base" in second["description"]
    for bar in (first, second):  # each bar ends full: no bar lies about the work left
        assert bar["moved"] == bar["total"]
    assert meter.finished == 2 * KW["replicates"]


def test_an_escalated_call_interrupted_in_its_second_run_resumes_exactly(tmp_path):
    want = emc.log_partition(STUDENT[2], progress=CountingMeter(), **KW)
    ckpt = tmp_path / "logz"
    # 3 replicates of the first run, then replicate 0 and 1 of the second: stopped
    # while replicate 1's estimate is shown (it was saved first).
    with pytest.raises(Interrupted):
        emc.log_partition(STUDENT[2], progress=CountingMeter(stop_at=5), checkpoint=ckpt, **KW)
    assert (ckpt / _api.ESCALATION_DIR).is_dir()
    meter = CountingMeter()
    got = emc.log_partition(STUDENT[2], progress=meter, checkpoint=ckpt, **KW)
    assert meter.finished == 1  # only the second run's replicate 2 ran again
    assert got.timing["resumed_replicates"] == 2  # the second run's, read back
    assert got.log_z == want.log_z and got.stderr == want.stderr
    assert np.array_equal(got.particles, want.particles)
    assert np.array_equal(got.weights, want.weights)
    assert got.num_grad_evals == want.num_grad_evals
    assert got.problems == want.problems
    assert got.info["escalation"]["first"]["log_z"] == want.info["escalation"]["first"]["log_z"]


# ---------------------------------------------------------------- mode check


def test_student_t_components_are_unbiased_where_gaussian_ones_read_low():
    """Exact Student-t draws as particles, the exact log Z as the estimate to check."""
    dim = 4
    errs = {None: [], 3.0: []}
    for seed in range(4):
        x = 0.5 + np.random.default_rng(seed).standard_t(_NU, size=(256, dim))
        for df in errs:
            problem, info = mode_check(STUDENT[dim], x, np.full(256, 1 / 256),
                                       _student_log_z(dim), 0.01, jax.random.key(seed), df=df)
            errs[df].append(info["log_z"] - _student_log_z(dim))
            if df is not None:
                assert problem is None and info["status"] == "compared"
                assert info["ess"] > 0.8 * info["draws"]
                assert abs(errs[df][-1]) < 3 * info["stderr"]
    # Light-tailed components: heavy-tailed weights, typically low (-0.07 to -0.10 here).
    assert np.mean(errs[None]) < -0.05


_W, _S, _MU = np.array([0.7, 0.3]), np.array([1.0, 0.3]), np.array([[-3.0, 0.0], [3.0, 1.0]])
_LOG_Z = 1.5


def _mixture():
    la = jnp.asarray(np.log(_W) - (np.log(2 * np.pi) + 2 * np.log(_S)) + _LOG_Z)
    mu, s = jnp.asarray(_MU), jnp.asarray(_S)
    return emc.Energy(lambda x: -logsumexp(la - 0.5 * jnp.sum((x - mu) ** 2, axis=1) / s**2),
                      init=jnp.zeros(2))


@pytest.mark.parametrize("offset", [0.0, -0.6, +0.6])
def test_student_t_components_still_catch_a_wrong_estimate(offset):
    """Negative control: with heavy-tailed components the check still flags an estimate
    0.6 nats off on an unequal two-mode mixture, and passes the right one."""
    rng = np.random.default_rng(1)
    k = rng.choice(2, size=200, p=_W)
    x = _MU[k] + _S[k, None] * rng.normal(size=(200, 2))
    problem, info = mode_check(_mixture(), x, np.full(200, 1 / 200), _LOG_Z + offset, 0.05,
                               jax.random.key(1), df=3.0)
    assert info["modes"] == 2 and info["status"] == "compared"
    if offset == 0.0:
        assert problem is None
        assert abs(info["log_z"] - _LOG_Z) < 3 * info["stderr"] + 1e-3
    else:
        word = "higher" if offset < 0 else "lower"
        assert problem is not None and f"nats {word}" in problem and "Student-t" in problem
