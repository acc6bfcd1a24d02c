"""``log_partition(..., checkpoint=DIR)``: an interrupted call resumes to the very same estimate.

Saved are each finished replicate (then the mode check's result) and, for
AIS, the replicate in flight after every chunk of stages: replicate ``r``
runs on ``fold_in(key, r)`` and its stage ``i`` on its own key whatever chunk
it falls in, so a call that finds ``k`` replicates and some stages saved runs
the rest and must return exactly (``np.array_equal``) what an uninterrupted
call returns, with or without a checkpoint. Default-tier tests use one tiny AIS setting (one
compilation of the annealing loop, shared by every call here); the real
SIGKILL of a child process is in the slow tier.
"""

import importlib.util
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import energymc as emc
from energymc.io import CheckpointError
from energymc.logz import _ais, _smc, _tempering
from energymc.logz._checkpoint import LogZCheckpoint

from meters import CountingMeter, Interrupted

KW = dict(method="ais", seed=3, replicates=3, particles=16, schedule="linear", num_temps=4)


def _quartic(x):
    return 0.5 * jnp.sum(x**2) + 0.1 * jnp.sum(x**4)


# One target object for every call: the compiled runs are reused across calls.
TARGET = emc.Energy(_quartic, init=jnp.zeros(2), name="quartic2")


def _assert_same(got, want):
    assert got.log_z == want.log_z and got.stderr == want.stderr and got.ess == want.ess
    assert np.array_equal(got.replicates, want.replicates)
    assert np.array_equal(got.particles, want.particles)
    assert np.array_equal(got.weights, want.weights)
    assert got.num_grad_evals == want.num_grad_evals
    assert got.problems == want.problems
    for k, v in want.stages.items():
        assert np.array_equal(got.stages[k], v, equal_nan=True), k  # PT: nan past the last rung
    strip = lambda d: {k: v for k, v in d.items() if k != "seconds"}  # noqa: E731
    assert strip(got.info["checks"]["modes"]) == strip(want.info["checks"]["modes"])
    # (no replicate-spread check with one replicate)
    assert got.info["checks"].get("replicates") == want.info["checks"].get("replicates")


pytestmark = pytest.mark.filterwarnings("ignore::energymc.EnergymcWarning")


@pytest.fixture(scope="module")
def uninterrupted():
    # Every call here reports to a CountingMeter, so all run the one compiled program
    # (a progress meter compiles stage ticks in; they change no number).
    return emc.log_partition(TARGET, progress=CountingMeter(), **KW)


def test_replicates_the_default_effort_added_resume_exactly(tmp_path):
    """Without ``replicates=`` AIS adds replicates while the stderr is above 0.05 nats: a
    call interrupted among the added ones resumes them, to the same count and estimate."""
    kw = {k: v for k, v in KW.items() if k != "replicates"}
    want = emc.log_partition(TARGET, progress=CountingMeter(), **kw)
    total = want.info["precision"]["replicates"]
    assert total > 6  # a tiny run: far from 0.05 nats, more replicates were added
    ckpt = tmp_path / "logz"
    with pytest.raises(Interrupted):  # while the 6th (an added one) is shown: it was saved
        emc.log_partition(TARGET, progress=CountingMeter(stop_at=6), checkpoint=ckpt, **kw)
    meter = CountingMeter()
    got = emc.log_partition(TARGET, progress=meter, checkpoint=ckpt, **kw)
    assert got.timing["resumed_replicates"] == 6 and meter.finished == total - 6
    assert got.info["precision"] == want.info["precision"]
    _assert_same(got, want)


def test_an_interrupted_call_resumes_to_exactly_the_uninterrupted_estimate(
        tmp_path, uninterrupted):
    ckpt = tmp_path / "logz"
    # Interrupted while replicate 1's estimate is shown: it was saved before
    # it was shown, so replicates 0 and 1 are in the directory.
    with pytest.raises(Interrupted):
        emc.log_partition(TARGET, progress=CountingMeter(stop_at=2), checkpoint=ckpt, **KW)
    with np.load(ckpt / "state.npz") as state:
        assert int(state["done"]) == 2
    meter = CountingMeter()
    resumed = emc.log_partition(TARGET, progress=meter, checkpoint=ckpt, **KW)
    assert meter.finished == 1  # replicate 2 ran; 0 and 1 came from the directory
    assert resumed.timing["resumed_replicates"] == 2
    _assert_same(resumed, uninterrupted)

    # Complete: nothing runs again, not even the check, and the estimate is the same.
    meter = CountingMeter()
    again = emc.log_partition(TARGET, progress=meter, checkpoint=ckpt, **KW)
    assert meter.finished == 0 and again.timing["resumed_replicates"] == 3
    _assert_same(again, uninterrupted)


def test_a_replicate_cut_short_resumes_from_its_last_saved_stage(tmp_path, monkeypatch,
                                                                uninterrupted):
    ckpt = tmp_path / "logz"
    calls = []
    chunk = _ais.anneal_chunk

    def chunk_then_stop(*args, **kwargs):
        # Killed while running the 8th chunk: with save_every=0 a chunk is one
        # stage, and a 4-stage replicate takes 5 calls (the last one finds the
        # loop over), so replicate 0 is saved whole and replicate 1 at stage 2.
        calls.append(int(args[1]))
        if len(calls) == 8:
            raise Interrupted
        return chunk(*args, **kwargs)

    monkeypatch.setattr(_ais, "anneal_chunk", chunk_then_stop)
    with pytest.raises(Interrupted):
        emc.log_partition(TARGET, progress=CountingMeter(),
                          checkpoint=LogZCheckpoint(ckpt, save_every=0), **KW)
    assert calls[:5] == [1, 2, 3, 4, 5] and calls[5:] == [1, 2, 3]
    with np.load(ckpt / "replicate-000001" / "state.npz") as state:
        assert int(state["s0"]) == 2  # the carry's stage counter
    # A damaged in-flight file is refused by name (a copy: the original is resumed below).
    damaged = tmp_path / "damaged"
    shutil.copytree(ckpt, damaged)
    for name in ("state.npz", "state.prev.npz"):
        (damaged / "replicate-000001" / name).write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(CheckpointError, match="replicate 1's stages in flight"):
        emc.log_partition(TARGET, progress=CountingMeter(), checkpoint=damaged, **KW)

    monkeypatch.setattr(_ais, "anneal_chunk", chunk)
    with emc.compilations() as compiled:
        resumed = emc.log_partition(TARGET, progress=CountingMeter(), checkpoint=ckpt, **KW)
    # The carry read back is typed as the fresh one: the chunk program is reused.
    assert compiled["anneal_chunk"] == 0 and compiled["anneal_start"] == 0
    assert resumed.timing["resumed_replicates"] == 1 and resumed.timing["resumed_stages"] == 2
    # Stage by stage from the host equals the one compiled loop of a call without checkpoint.
    _assert_same(resumed, uninterrupted)
    assert not list(ckpt.glob("replicate-*"))  # each dropped once its replicate was saved


# ---------------------------------- a record that grows by a row per stage (PT)
_C, _T = 3, 6


def _toy_start():
    record = (jnp.zeros((_C, _T)), jnp.zeros((_C, _T, 2)))
    return jnp.asarray(0, jnp.int32), jnp.arange(1.0, _C + 1.0), record


def _toy_chunk(carry, stop):
    """Stages up to ``stop`` of a toy loop whose record gains one row per stage."""
    i, x, (a, b) = carry
    while int(i) < min(int(stop), _T):
        x = 1.1 * x + i
        a, b = a.at[:, i].set(x), b.at[:, i].set(jnp.stack([x, -x], axis=-1))
        i = i + 1
    return i, x, (a, b)


def _toy_run(path, chunk=_toy_chunk):
    owner = LogZCheckpoint(path, save_every=0)  # one stage per chunk
    owner.open({"job": "toy"})
    return owner, owner.stages(0).run(_toy_start(), chunk, rows=2)


def _assert_toy_equal(got, want):
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert np.array_equal(np.asarray(g), np.asarray(w))


def test_a_growing_record_is_appended_chunk_by_chunk_and_a_damaged_chunk_is_refused(tmp_path):
    want = _toy_chunk(_toy_start(), _T)
    calls = []

    def chunk_then_stop(carry, stop):
        calls.append(stop)
        if len(calls) == 4:  # stages 0, 1, 2 saved; killed in the 4th
            raise Interrupted
        return _toy_chunk(carry, stop)

    ckpt = tmp_path / "toy"
    with pytest.raises(Interrupted):
        _toy_run(ckpt, chunk_then_stop)
    flight = ckpt / "replicate-000000"
    # Each chunk's rows in a file of its own, written once; the state holds no record.
    assert sorted(p.name for p in flight.glob("draws-*.npz")) == [
        f"draws-{k:09d}.npz" for k in range(3)]
    with np.load(flight / "draws-000000001.npz") as chunk:
        assert chunk["stat_r0"].shape == (_C, 1) and chunk["stat_r1"].shape == (_C, 1, 2)
    with np.load(flight / "state.npz") as state:
        assert int(state["s0"]) == 3 and max(state[k].size for k in state.files) <= _C

    # A truncated last chunk: a clear error naming it; nothing in the directory changes.
    damaged = tmp_path / "damaged"
    shutil.copytree(ckpt, damaged)
    last = damaged / "replicate-000000" / "draws-000000002.npz"
    last.write_bytes(last.read_bytes()[:50])
    before = {p: p.read_bytes() for p in damaged.rglob("*") if p.is_file()}
    with pytest.raises(CheckpointError, match="draws-000000002.npz.*state.prev.npz"):
        _toy_run(damaged)
    assert before == {p: p.read_bytes() for p in damaged.rglob("*") if p.is_file()}
    # The last good state (one chunk earlier) resumes, as the message says, to the same end.
    (damaged / "replicate-000000" / "state.prev.npz").replace(
        damaged / "replicate-000000" / "state.npz")
    owner, got = _toy_run(damaged)
    assert owner.resumed_stages == 2
    _assert_toy_equal(got, want)

    owner, got = _toy_run(ckpt)
    assert owner.resumed_stages == 3
    _assert_toy_equal(got, want)
    # Negative control: the comparison tells a different record apart.
    with pytest.raises(AssertionError):
        _assert_toy_equal(_toy_chunk(_toy_start(), _T - 1), want)


def _rbm_path_case():
    """A small RBM and its own annealing path (the base-rate RBM, block Gibbs moves)."""
    rbm = emc.models.RBM(4, 2)
    params = {"W": 0.5 * jnp.arange(-4.0, 4.0).reshape(4, 2) / 4, "b": jnp.full(4, 0.2),
              "c": jnp.full(2, -0.1)}
    return rbm.as_energy(params), {"base": rbm.ais_path(params)}


_PT = dict(method="pt", seed=3, replicas=4, chains=2, draws=20, batches=2)

# method -> (module, its chunk function, the call that is interrupted, options,
# extra arguments (target and base) or None for TARGET, stages read back on
# resume, {in-flight directory: its saved stage counter} before the resume)
CUT_SHORT = {
    # Cut in the rounds: the warmup's 10 rounds (one stretch) and 5 rounds read back.
    "pt": (_tempering, "_chunk", 6, dict(_PT, warmup=10), None, 15,
           {"replicate-000000/warmup": 10, "replicate-000000": 5}),
    # Cut in the warmup's 2nd stretch (2 x 30 rounds, one per chunk): after the
    # ladder was re-spaced, 39 rounds read back, none of the rounds after it.
    "pt-warmup": (_tempering, "_warm_chunk", 40, dict(_PT, warmup=60), None, 39,
                  {"replicate-000000/warmup": 39}),
    # SMC from the default Gaussian: the stage counts here are its adaptive
    # schedule's (base=None's fitted base would take fewer stages).
    "smc": (_smc, "_smc_chunk", 6,
            dict(method="smc", seed=5, replicates=2, particles=32, mcmc_steps=2,
                 base="gaussian"), None, 1, {}),
    # schedule="pilot": cut inside the pilot run (the replicates' shared schedule).
    "smc-pilot": (_smc, "_smc_chunk", 3,
                  dict(method="smc", seed=5, replicates=2, particles=32, mcmc_steps=2,
                       schedule="pilot", base="gaussian"), None, 2, {}),
    # BDMC: the forward run's 4 stages take 5 calls; cut in the reverse run's
    # 2nd stage. Resumed: the forward's 4 saved stages and the reverse's 1.
    "bdmc": (_ais, "anneal_chunk", 7,
             dict(method="bdmc", seed=3, replicates=1, particles=16, schedule="linear",
                  num_temps=4), None, 5, {"replicate-000000": 4}),
    # A model's own AnnealingPath (RBM.ais_path).
    "path": (_ais, "anneal_path_chunk", 3,
             dict(method="ais", seed=3, replicates=1, particles=16, schedule="linear",
                  num_temps=4, mcmc_steps=1), _rbm_path_case, 2, {}),
}


@pytest.mark.slow  # compiles each method three times (one piece, start, chunk): ~30 s each
@pytest.mark.parametrize("method", sorted(CUT_SHORT))
def test_a_run_cut_short_resumes_from_its_last_saved_stage(tmp_path, monkeypatch, method):
    module, name, stop_at, kw, case, resumed_stages, saved = CUT_SHORT[method]
    target, extra = case() if case is not None else (TARGET, {})
    kw = {**kw, **extra}
    ckpt = tmp_path / "logz"
    calls = []
    chunk = getattr(module, name)

    def chunk_then_stop(*args, **kwargs):
        # One stage (SMC, AIS) or round (PT) per chunk with save_every=0: cut
        # in the middle of a replicate or of the work before it (SMC's first
        # has 3 stages: 4 calls).
        calls.append(int(args[1]))
        if len(calls) == stop_at:
            raise Interrupted
        return chunk(*args, **kwargs)

    monkeypatch.setattr(module, name, chunk_then_stop)
    with pytest.raises(Interrupted):
        emc.log_partition(target, progress=False,
                          checkpoint=LogZCheckpoint(ckpt, save_every=0), **kw)
    for flight, stage in saved.items():
        with np.load(ckpt / flight / "state.npz") as state:
            assert int(state["s0"]) == stage, flight
    monkeypatch.setattr(module, name, chunk)
    resumed = emc.log_partition(target, progress=False, checkpoint=ckpt, **kw)
    assert resumed.timing["resumed_stages"] == resumed_stages
    _assert_same(resumed, emc.log_partition(target, progress=False, **kw))
    assert not list(ckpt.glob("replicate-*"))  # in-flight directories go when the call ends


def test_a_checkpoint_of_another_call_or_a_damaged_one_is_refused(tmp_path, uninterrupted):
    ckpt = tmp_path / "logz"
    emc.log_partition(TARGET, progress=CountingMeter(), checkpoint=ckpt, **KW)
    # Negative controls: another seed, another option, another energy body.
    with pytest.raises(CheckpointError, match="seed"):
        emc.log_partition(TARGET, progress=CountingMeter(), checkpoint=ckpt, **{**KW, "seed": 4})
    with pytest.raises(CheckpointError, match="option:num_temps"):
        emc.log_partition(TARGET, progress=CountingMeter(), checkpoint=ckpt,
                          **{**KW, "num_temps": 5})
    other = emc.Energy(lambda x: 0.5 * jnp.sum(x**2), init=jnp.zeros(2), name="quartic2")
    with pytest.raises(CheckpointError, match="energy's program changed"):
        emc.log_partition(other, progress=CountingMeter(), checkpoint=ckpt, **KW)
    # A truncated entry is reported by name; nothing in the directory is changed.
    entry = ckpt / "draws-000000001.npz"
    entry.write_bytes(entry.read_bytes()[:40])
    with pytest.raises(CheckpointError, match="draws-000000001.npz"):
        emc.log_partition(TARGET, progress=CountingMeter(), checkpoint=ckpt, **KW)
    assert len(entry.read_bytes()) == 40


KILLED_CHILD = '''
import sys, time
import jax.numpy as jnp
import energymc as emc


def energy(x):
    return 0.5 * jnp.sum(x**2) + 0.1 * jnp.sum(x**4)


class Slow:
    """A pause after every replicate, so that the kill lands in the middle of the call."""

    def start(self, total, description):
        pass

    def update(self, n, postfix):
        if "log_z" in postfix:
            time.sleep(0.5)

    def close(self):
        pass


if __name__ == "__main__":
    emc.log_partition(emc.Energy(energy, init=jnp.zeros(2), name="quartic2"), method="smc",
                      seed=5, replicates=4, particles=32, mcmc_steps=2, progress=Slow(),
                      checkpoint=sys.argv[1])
'''


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::energymc.EnergymcWarning")
def test_a_call_killed_with_sigkill_resumes_to_exactly_the_uninterrupted_estimate(
        tmp_path, sigkill_child):
    ckpt = tmp_path / "logz"
    script = sigkill_child(KILLED_CHILD, ckpt, "draws-000000000.npz")
    with np.load(ckpt / "state.npz") as state:
        # Killed mid-call, not after it (0 when the kill fell between the entry
        # file and the state that lists it: that entry is simply run again).
        assert int(state["done"]) < 4

    # The same function, imported here: same program, same fingerprint.
    spec = importlib.util.spec_from_file_location("killed_child", script)
    child = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(child)
    target = emc.Energy(child.energy, init=jnp.zeros(2), name="quartic2")
    kw = dict(method="smc", seed=5, replicates=4, particles=32, mcmc_steps=2)
    resumed = emc.log_partition(target, progress=False, checkpoint=ckpt, **kw)
    whole = emc.log_partition(target, progress=False, **kw)
    _assert_same(resumed, whole)


KILLED_MID_REPLICATE = '''
import sys
import jax.numpy as jnp
import energymc as emc
from energymc.logz._checkpoint import LogZCheckpoint


def energy(x):
    return 0.5 * jnp.sum(x**2) + 0.1 * jnp.sum(x**4)


if __name__ == "__main__":
    # One long replicate, saved after every stage: the kill lands inside it.
    emc.log_partition(emc.Energy(energy, init=jnp.zeros(2), name="quartic2"), method="ais",
                      seed=7, replicates=1, particles=32, schedule="linear", num_temps=300,
                      progress=False, checkpoint=LogZCheckpoint(sys.argv[1], save_every=0))
'''


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::energymc.EnergymcWarning")
def test_a_replicate_killed_with_sigkill_resumes_from_its_stages_to_the_same_estimate(
        tmp_path, sigkill_child):
    ckpt = tmp_path / "logz"
    script = sigkill_child(KILLED_MID_REPLICATE, ckpt, "replicate-000000/state.npz")
    with np.load(ckpt / "state.npz") as state:
        assert int(state["done"]) == 0  # no replicate finished
    with np.load(ckpt / "replicate-000000" / "state.npz") as state:
        assert 0 < int(state["s0"]) < 300  # killed between stages 1 and 299

    spec = importlib.util.spec_from_file_location("killed_child", script)
    child = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(child)
    target = emc.Energy(child.energy, init=jnp.zeros(2), name="quartic2")
    kw = dict(method="ais", seed=7, replicates=1, particles=32, schedule="linear",
              num_temps=300)
    resumed = emc.log_partition(target, progress=False, checkpoint=ckpt, **kw)
    assert resumed.timing["resumed_stages"] > 0
    whole = emc.log_partition(target, progress=False, **kw)  # no checkpoint: one compiled loop
    _assert_same(resumed, whole)


KILLED_PT = '''
import sys
import jax.numpy as jnp
import energymc as emc
from energymc.logz._checkpoint import LogZCheckpoint


def energy(x):
    return 0.5 * jnp.sum(x**2) + 0.1 * jnp.sum(x**4)


if __name__ == "__main__":
    # One PT run of many rounds, saved after every chunk: the kill lands among them.
    emc.log_partition(emc.Energy(energy, init=jnp.zeros(2), name="quartic2"), method="pt",
                      seed=4, replicas=3, chains=2, draws=400, warmup=10, batches=2,
                      progress=False, checkpoint=LogZCheckpoint(sys.argv[1], save_every=0))
'''


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::energymc.EnergymcWarning")
def test_a_pt_run_killed_with_sigkill_resumes_from_its_appended_rounds(tmp_path,
                                                                       sigkill_child):
    ckpt = tmp_path / "logz"
    script = sigkill_child(KILLED_PT, ckpt, "replicate-000000/draws-000000004.npz")
    flight = ckpt / "replicate-000000"
    with np.load(flight / "state.npz") as state:
        done = int(state["done"])
        assert 4 <= done < 400 and int(state["s0"]) == done
        # The state holds no record: the rounds are in the chunk files it lists.
        assert not any(state[k].shape[1:2] == (done,) for k in state.files
                       if state[k].ndim > 1)
        listed = [str(c) for c in state["chunks"]]
    assert len(listed) >= 2 and all((flight / c).exists() for c in listed)

    spec = importlib.util.spec_from_file_location("killed_child", script)
    child = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(child)
    target = emc.Energy(child.energy, init=jnp.zeros(2), name="quartic2")
    kw = dict(method="pt", seed=4, replicas=3, chains=2, draws=400, warmup=10, batches=2)
    resumed = emc.log_partition(target, progress=False, checkpoint=ckpt, **kw)
    assert resumed.timing["resumed_stages"] == 10 + done  # the warmup's rounds and these
    _assert_same(resumed, emc.log_partition(target, progress=False, **kw))


# ------------------------------------------------------ energymc resume DIR
def test_energymc_resume_explains_a_log_z_started_from_python(tmp_path, capsys):
    from energymc.cli import main

    ckpt = tmp_path / "logz"
    emc.log_partition(TARGET, progress=CountingMeter(), checkpoint=ckpt, **KW)
    assert main(["resume", str(ckpt)]) == 2
    err = capsys.readouterr().err
    assert "log Z estimate started from Python" in err and "emc.log_partition" in err


@pytest.mark.slow  # compiles the annealing loop for a target loaded from a file
@pytest.mark.filterwarnings("ignore::energymc.EnergymcWarning")
def test_energymc_resume_finishes_a_log_z_the_command_line_started(tmp_path, capsys):
    from energymc.cli import main

    energy_file = tmp_path / "energies.py"
    energy_file.write_text("import jax.numpy as jnp\n\n\ndef quartic(x):\n"
                           "    return 0.5 * jnp.sum(x**2) + 0.1 * jnp.sum(x**4)\n")
    ckpt = tmp_path / "logz"
    args = ["logz", f"{energy_file}:quartic", "--dim", "2", "--seed", "3", "--option",
            "particles=16", "--option", "schedule='linear'", "--option", "num_temps=4"]
    assert main(args + ["--checkpoint", str(ckpt)]) == 0
    whole = capsys.readouterr().out
    # Keep only replicate 0, as if the command had been killed after it.
    with np.load(ckpt / "state.npz") as state:
        arrays = {k: state[k] for k in state.files}
    # 12 replicates (the default effort added 8 to AIS's 4: this tiny run's stderr
    # stays above 0.05 nats) and the end entry.
    assert int(arrays["done"]) == 13
    arrays["done"], arrays["chunks"] = np.asarray(1), arrays["chunks"][:1]
    np.savez(ckpt / "state.npz", **arrays)
    assert main(["resume", str(ckpt)]) == 0
    resumed = capsys.readouterr().out
    def strip(text):
        return [ln for ln in text.splitlines() if not ln.lstrip().startswith("time")]
    assert strip(resumed) == strip(whole)


@pytest.mark.slow  # compiles BDMC's loops three ways and an MCMC run: ~40 s
def test_bdmc_reads_its_mcmc_starting_draws_back_on_resume(tmp_path, monkeypatch):
    # reverse_start="mcmc": an emc.sample run makes the reverse run's starting
    # draws. It keeps its own checkpoint in the replicate's in-flight directory.
    kw = dict(method="bdmc", seed=3, replicates=1, particles=16, schedule="linear",
              num_temps=4, reverse_start="mcmc", sample_method="mala", sample_warmup=50)
    ckpt = tmp_path / "logz"
    calls, chunk = [], _ais.anneal_chunk

    def chunk_then_stop(*args, **kwargs):
        # The forward run's 4 stages take 5 calls; the 6th is the reverse run's first.
        calls.append(int(args[1]))
        if len(calls) == 6:
            raise Interrupted
        return chunk(*args, **kwargs)

    started, start = [], emc.io.Checkpoint.start

    def spy(self, *args, **kwargs):
        started.append(self.path)  # a run (or stage loop) that begins from scratch
        return start(self, *args, **kwargs)

    monkeypatch.setattr(emc.io.Checkpoint, "start", spy)
    monkeypatch.setattr(_ais, "anneal_chunk", chunk_then_stop)
    with pytest.raises(Interrupted):
        emc.log_partition(TARGET, progress=False,
                          checkpoint=LogZCheckpoint(ckpt, save_every=0), **kw)
    mcmc = ckpt / "replicate-000000" / "mcmc"
    assert str(mcmc) in started and (mcmc / "state.npz").exists()

    monkeypatch.setattr(_ais, "anneal_chunk", chunk)
    started.clear()
    resumed = emc.log_partition(TARGET, progress=False, checkpoint=ckpt, **kw)
    # The sampling run was read back, not run again (nor the forward run's stages).
    assert str(mcmc) not in started
    assert resumed.timing["resumed_stages"] == 4
    whole = emc.log_partition(TARGET, progress=False, **kw)
    _assert_same(resumed, whole)
    assert resumed.upper == whole.upper
    assert not list(ckpt.glob("replicate-*"))
