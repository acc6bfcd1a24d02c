"""Golden values: the issue-13 refactor must not change what a user gets.

``tests/golden/golden.npz`` was written once, before the first refactor
commit, by ``tests/golden/make_golden.py`` from the fixed-seed calls in
``tests/golden/cases.py`` (draws and sample stats of ``sample``, log Z
estimates with the default checks, learned parameters and loss histories).
Each case is recomputed here and compared bit for bit (``np.array_equal``,
NaNs equal): the refactor moves code, it does not change arithmetic. A case
whose arithmetic is changed on purpose must say so in its commit and state
its Monte Carlo tolerance here instead.

Re-recorded on purpose (``make_golden.py`` with the cases named), in the commit
that changed them: ``sample_mala``, ``logz_ais``, ``logz_smc`` and ``logz_bdmc`` when
``sample`` and ``log_partition`` began compiling with Threefry written out
(``energymc/_threefry.py``, session 20). The hashes are the same; XLA fused
the programs around them differently, and last-bit float differences grew
through the tuned step size and the adaptive schedules: MALA's tuned step
moved by 5e-4 (its draws took another path), AIS's log Z by 0.013 and BDMC's
by 0.006 nats (stderrs 0.06 and 0.19), SMC's particles by 1e-6. The other ten
cases were unchanged bit for bit. ``logz_ais`` and ``logz_smc`` again when the
default effort began to follow the stderr (session 22): their 32-particle
runs' pooled stderrs (0.078, 0.136) were above 0.05 nats, so AIS now runs 7
replicates (log Z 1.3227 -> 1.3444, stderr 0.044) and SMC 16 (1.7199 ->
1.3732, stderr 0.101; flagged before and after); their first four
replicates are the old ones bit for bit.

The cheapest cases (one compilation each) run by default; the rest are
``slow``: run every case with ``pytest -m "" tests/test_golden.py`` after any
change that could touch arithmetic.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).with_name("golden")))
from cases import (CASES, also_equal_after_recording, environment_key,  # noqa: E402
                   recording_environment)

GOLDEN = np.load(Path(__file__).with_name("golden") / "golden.npz")
RECORDED_ON = json.loads((Path(__file__).with_name("golden") / "environment.json").read_text())
# Bit for bit on the JAX build and CPU the values were recorded on (the Python
# 3.11 suite). Elsewhere (the 3.12 venv resolves a newer JAX) XLA rounds the
# last bits of exp/log differently, one Metropolis decision flips and a chain
# takes another path (measured: MALA draws 0.1 apart, AIS log Z 0.005 nats):
# no tolerance separates that from a real change, so the comparison is skipped
# there, saying why; the refactor guard runs where the values were recorded,
# and on environments where make_golden.py --vouch saw a case bit for bit
# equal (an Intel Xeon with the same JAX: 12 of 13 cases, all but sample_hmc).
HERE = recording_environment()
RECORDING = {k: v for k, v in RECORDED_ON.items() if k != "also_equal"}
SAME_ENVIRONMENT = HERE == RECORDING
# Cases seen bit for bit equal on this environment too (make_golden.py --vouch).
ALSO_EQUAL_HERE = set(RECORDED_ON.get("also_equal", {}).get(environment_key(HERE), ()))

# The default tier (mala, gibbs, cd, dsm: about 15 s of CPU in all, one
# compilation each) must stay within the suite's budget. NUTS's warmup and log Z
# with its default checks (replicates, a mode-based estimate) took 60% of the
# CPU of the six-case default tier measured first; the rest compile several
# programs each (tempering ladders, reverse runs): the slow tier.
SLOW = {"sample_nuts", "sample_hmc", "sample_pt", "logz_ais", "logz_smc", "logz_bdmc",
        "learn_pcd", "learn_nce", "rbm_fit"}


def _stored(name):
    prefix = f"{name}/"
    return {k[len(prefix):]: GOLDEN[k] for k in GOLDEN.files if k.startswith(prefix)}


@pytest.mark.filterwarnings("ignore::energymc.EnergymcWarning")
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n
                                  for n in CASES])
def test_golden_values_unchanged(name):
    if not SAME_ENVIRONMENT and name not in ALSO_EQUAL_HERE:
        pytest.skip(f"golden values were recorded on {RECORDING}, this is {HERE}: "
                    "bit-identity holds on one JAX build and CPU only (make_golden.py "
                    "--vouch lists the cases another environment reproduces)")
    stored = _stored(name)
    assert stored, f"no golden values stored for {name}; rerun tests/golden/make_golden.py"
    got = {k: np.asarray(v) for k, v in CASES[name]().items()}
    assert sorted(got) == sorted(stored)
    for field, want in stored.items():
        assert got[field].shape == want.shape, f"{name}/{field}: shape changed"
        assert got[field].dtype == want.dtype, f"{name}/{field}: dtype changed"
        equal_nan = want.dtype.kind in "fc"
        assert np.array_equal(got[field], want, equal_nan=equal_nan), (
            f"{name}/{field} differs from its golden value")


def test_golden_comparison_can_fail():
    """Negative control: a different seed must give different draws than the stored ones."""
    from cases import _target

    import energymc as emc

    # The golden case's own target and sizes, so the compiled sampler is reused.
    run = emc.sample(_target(), method="mala", chains=2, draws=15, warmup=25, seed=4,
                     progress=False)
    assert not np.array_equal(run.flat_draws, GOLDEN["sample_mala/flat_draws"])


def test_recording_cases_again_drops_them_from_every_also_equal_list():
    """A case recorded again has values no other environment was seen to reproduce."""
    also = {"cpu A / jax 1": ["sample_mala", "logz_ais", "learn_dsm"],
            "cpu B / jax 2": ["logz_ais"]}
    assert also_equal_after_recording(also, ["logz_ais"]) == {
        "cpu A / jax 1": ["sample_mala", "learn_dsm"], "cpu B / jax 2": []}
    # Negative control: a case nobody vouched for changes nothing; recording every
    # case (no names) leaves no list at all.
    assert also_equal_after_recording(also, ["rbm_fit"]) == also
    assert also_equal_after_recording(also, []) == {}
