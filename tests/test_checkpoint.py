"""Checkpoints: a run streamed to disk resumes after an interruption with the same draws."""

import importlib.util
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

import energymc as emc
from energymc.errors import OptionError
from energymc.io import CheckpointError

RUN = dict(chains=2, warmup=40, seed=7)


SCALE = np.ones(1)  # data the energy closes over, as a notebook's energy would


def quadratic(x):
    return 0.5 * jnp.sum(SCALE * x**2)


class Interrupt(Exception):
    pass


def interrupt_after(n_chunks):
    seen = []

    def callback(run):
        seen.append(run.num_draws)
        if len(seen) == n_chunks:
            raise Interrupt

    return callback


@pytest.fixture
def target():
    return emc.Energy(quadratic, init=jnp.zeros(3))


@pytest.mark.parametrize("method", ["mala", pytest.param("nuts", marks=pytest.mark.slow)])
def test_interrupted_run_resumes_with_the_draws_of_an_uninterrupted_one(tmp_path, target,
                                                                      method):
    whole = emc.sample(target, method, draws=60, **RUN)
    ckpt = tmp_path / "run"
    with pytest.raises(Interrupt):
        emc.sample(target, method, draws=60, checkpoint=ckpt, callback=interrupt_after(2), **RUN)
    assert sorted(os.listdir(ckpt))[:2] == ["draws-000000000.npz", "draws-000000003.npz"]
    resumed = emc.sample(target, method, draws=60, checkpoint=ckpt, **RUN)
    np.testing.assert_allclose(resumed.flat_draws, whole.flat_draws, rtol=1e-6)
    for name, values in whole.stats.items():
        np.testing.assert_allclose(resumed.stats[name], values, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(resumed.warmup["params"]["step_size"],
                               whole.warmup["params"]["step_size"])


def test_a_finished_checkpoint_extends_to_more_draws(tmp_path, target):
    ckpt = tmp_path / "run"
    first = emc.sample(target, "mala", draws=40, checkpoint=ckpt, **RUN)
    longer = emc.sample(target, "mala", draws=80, checkpoint=ckpt, **RUN)
    reference = emc.sample(target, "mala", draws=80, **RUN)
    np.testing.assert_allclose(longer.flat_draws[:, :40], first.flat_draws, rtol=1e-6)
    np.testing.assert_allclose(longer.flat_draws, reference.flat_draws, rtol=1e-6)
    with pytest.raises(OptionError, match="already holds 80 draws"):
        emc.sample(target, "mala", draws=50, checkpoint=ckpt, **RUN)


def test_a_checkpoint_of_another_run_is_refused_not_mixed_in(tmp_path, target):
    ckpt = tmp_path / "run"
    emc.sample(target, "mala", draws=20, checkpoint=ckpt, **RUN)
    with pytest.raises(OptionError, match="seed: saved 7, now 8"):
        emc.sample(target, "mala", draws=20, checkpoint=ckpt, **{**RUN, "seed": 8})
    with pytest.raises(OptionError, match="method"):
        emc.sample(target, "nuts", draws=20, checkpoint=ckpt, **RUN)
    scaled = lambda p, x: quadratic(x / p)  # noqa: E731
    emc.sample(emc.Energy.from_params(scaled, jnp.asarray(1.0), jnp.zeros(3)), "mala",
               draws=20, checkpoint=tmp_path / "p", **RUN)
    with pytest.raises(OptionError, match="parameters changed"):
        emc.sample(emc.Energy.from_params(scaled, jnp.asarray(2.0), jnp.zeros(3)), "mala",
                   draws=20, checkpoint=tmp_path / "p", **RUN)
    with pytest.raises(OptionError, match="is a file"):
        emc.sample(target, "mala", draws=20, checkpoint=ckpt / "meta.json", **RUN)
    with pytest.raises(OptionError, match="directory path"):
        emc.sample(target, "mala", draws=20, checkpoint=3, **RUN)


def test_discrete_states_round_trip(tmp_path):
    spins = emc.Energy(lambda s: -jnp.sum(s[:-1] * s[1:]), init=jnp.ones(6), support="spin")
    whole = emc.sample(spins, "gibbs", draws=30, **RUN)
    with pytest.raises(Interrupt):
        emc.sample(spins, "gibbs", draws=30, checkpoint=tmp_path / "g",
                   callback=interrupt_after(1), **RUN)
    resumed = emc.sample(spins, "gibbs", draws=30, checkpoint=tmp_path / "g", **RUN)
    np.testing.assert_array_equal(resumed.flat_draws, whole.flat_draws)


@pytest.mark.slow
def test_parallel_tempering_states_round_trip(tmp_path):
    ladder = emc.sample(emc.Energy(quadratic, init=jnp.zeros(2)), "pt", draws=30, **RUN)
    with pytest.raises(Interrupt):
        emc.sample(emc.Energy(quadratic, init=jnp.zeros(2)), "pt", draws=30,
                   checkpoint=tmp_path / "pt", callback=interrupt_after(1), **RUN)
    resumed = emc.sample(emc.Energy(quadratic, init=jnp.zeros(2)), "pt", draws=30,
                         checkpoint=tmp_path / "pt", **RUN)
    np.testing.assert_allclose(resumed.flat_draws, ladder.flat_draws, rtol=1e-5, atol=1e-6)


# ------------------------------------------------ fingerprints that cannot lie
def scaled_energy(scale):
    """A fresh function object each call, same code: as a re-run notebook cell makes."""
    w = np.full(3, scale)

    def energy(x):
        return 0.5 * jnp.sum(w * x**2)

    return emc.Energy(energy, init=jnp.zeros(3))


def test_same_code_and_data_give_the_same_fingerprint_and_any_change_is_named():
    from energymc._fingerprint import program_digests

    base = program_digests(scaled_energy(1.0))
    assert program_digests(scaled_energy(1.0)) == base  # no ids or addresses in it

    def energy(x):  # same name, edited body
        return 0.5 * jnp.sum(x**2) + 0.1 * jnp.sum(x)

    edited = program_digests(emc.Energy(energy, init=jnp.zeros(3)))
    assert edited["program_sha256"] != base["program_sha256"]
    new_data = program_digests(scaled_energy(2.0))
    assert new_data["program_sha256"] == base["program_sha256"]
    assert new_data["data_sha256"] != base["data_sha256"]


@pytest.mark.slow  # two NumPyro initialisations; the closure case below is the fast one
def test_refitting_a_numpyro_model_on_new_data_is_seen():
    import numpyro
    import numpyro.distributions as dist

    from energymc._fingerprint import program_digests

    def model(y):
        mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
        numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    first = program_digests(emc.Energy.from_numpyro(model, np.arange(4.0)))
    refit = program_digests(emc.Energy.from_numpyro(model, np.arange(4.0) + 1.0))
    assert refit["program_sha256"] == first["program_sha256"]
    assert refit["data_sha256"] != first["data_sha256"]


def test_an_edited_energy_is_refused_by_its_old_checkpoint(tmp_path, target, monkeypatch):
    ckpt = tmp_path / "run"
    emc.sample(target, "mala", draws=60, checkpoint=ckpt, **RUN)

    def edited(x):  # the cell edited and re-run: same name, same data, new body
        return 0.5 * jnp.sum(SCALE * x**2) + 0.1 * jnp.sum(x)

    edited.__name__ = "quadratic"
    with pytest.raises(CheckpointError, match="the energy's program changed") as err:
        emc.sample(emc.Energy(edited, init=jnp.zeros(3)), "mala", draws=60, checkpoint=ckpt,
                   **RUN)
    assert "data it closes over" not in str(err.value)
    monkeypatch.setitem(globals(), "SCALE", np.full(1, 2.0))
    with pytest.raises(CheckpointError, match="the data it closes over changed") as err:
        emc.sample(target, "mala", draws=60, checkpoint=ckpt, **RUN)
    assert "program changed" not in str(err.value)
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="starting points changed"):
        emc.sample(target, "mala", draws=60, checkpoint=ckpt, init=jnp.ones(3), **RUN)
    rebuilt = emc.Energy(lambda x: quadratic(x), init=jnp.zeros(3), name="quadratic")
    assert emc.sample(rebuilt, "mala", draws=60, checkpoint=ckpt, **RUN).num_draws == 60


# ------------------------------------------------------- damage and kills
def chunked_reference(target):
    """An uninterrupted run cut into the same compiled chunks as a checkpointed one."""
    return emc.sample(target, "mala", draws=60, callback=lambda run: None, **RUN)


def snapshot(directory):
    return {p.name: p.read_bytes() for p in directory.iterdir()}


def test_damaged_files_are_named_nothing_is_deleted_and_the_last_good_state_resumes(
        tmp_path, target):
    ckpt = tmp_path / "run"
    with pytest.raises(Interrupt):
        emc.sample(target, "mala", draws=60, checkpoint=ckpt, callback=interrupt_after(3), **RUN)
    state = ckpt / "state.npz"
    state.write_bytes(state.read_bytes()[:200])  # truncated, e.g. by a disk-full copy
    before = snapshot(ckpt)
    with pytest.raises(CheckpointError, match=r"state\.npz \(the chains' state\) is damaged or "
                                              r"truncated.*rename state\.prev\.npz to state\.npz.*"
                                              r"resume from draw 6"):
        emc.sample(target, "mala", draws=60, checkpoint=ckpt, **RUN)
    assert snapshot(ckpt) == before  # the last good state is kept, nothing rewritten

    chunk = ckpt / "draws-000000003.npz"
    good_chunk = chunk.read_bytes()
    garbled = bytearray(good_chunk)
    garbled[len(garbled) // 2] ^= 0xFF  # one flipped byte inside the positions
    chunk.write_bytes(bytes(garbled))
    os.replace(ckpt / "state.prev.npz", state)
    with pytest.raises(CheckpointError, match=r"draws-000000003\.npz \(a chunk of draws\) is "
                                              r"damaged"):
        emc.sample(target, "mala", draws=60, checkpoint=ckpt, **RUN)
    chunk.write_bytes(good_chunk)
    resumed = emc.sample(target, "mala", draws=60, checkpoint=ckpt, **RUN)
    assert np.array_equal(resumed.flat_draws, chunked_reference(target).flat_draws)

    (ckpt / "meta.json").write_text('{"format": 2, "fingerprint": {"tar')
    with pytest.raises(CheckpointError, match=r"meta\.json is damaged \(JSONDecodeError"):
        emc.sample(target, "mala", draws=60, checkpoint=ckpt, **RUN)


def test_what_a_kill_leaves_behind_resumes_to_the_exact_draws(tmp_path, target):
    """The fast stand-in for the SIGKILL test below: the files a kill can leave."""
    ckpt = tmp_path / "run"
    with pytest.raises(Interrupt):
        emc.sample(target, "mala", draws=60, checkpoint=ckpt, callback=interrupt_after(2), **RUN)
    # Killed while writing the next chunk and the next state: half-written temporaries,
    # and a chunk file that landed but that no state lists yet.
    (ckpt / "state.npz.tmp").write_bytes((ckpt / "state.npz").read_bytes()[:100])
    (ckpt / "draws-000000009.npz.tmp").write_bytes(b"PK\x03\x04")
    (ckpt / "draws-000000006.npz").write_bytes((ckpt / "draws-000000003.npz").read_bytes())
    resumed = emc.sample(target, "mala", draws=60, checkpoint=ckpt, **RUN)
    assert np.array_equal(resumed.flat_draws, chunked_reference(target).flat_draws)
    assert not [p for p in ckpt.iterdir() if p.name.endswith(".tmp")]


def test_checkpoint_files_are_json_and_npz_never_pickle(tmp_path, target):
    ckpt = tmp_path / "run"
    emc.sample(target, "mala", draws=60, checkpoint=ckpt, **RUN)
    names = sorted(p.name for p in ckpt.iterdir())
    assert names[-3:] == ["meta.json", "state.npz", "state.prev.npz"]
    for path in ckpt.iterdir():
        if path.suffix == ".json":
            assert json.loads(path.read_text())["fingerprint"]["method"] == "mala"
            continue
        assert path.suffix == ".npz"
        with np.load(path, allow_pickle=False) as z:  # raises on any pickled object
            assert all(z[k].dtype.kind != "O" for k in z.files)


KILLED_CHILD = '''
import sys, time
import jax.numpy as jnp
import energymc as emc


def energy(x):
    return 0.5 * jnp.sum(x**2) + 0.1 * jnp.sum(x**4)


if __name__ == "__main__":
    # A pause after every chunk so that the kill lands in the middle of the run.
    emc.sample(emc.Energy(energy, init=jnp.zeros(3)), "mala", draws=60, chains=2, warmup=40,
               seed=7, checkpoint=sys.argv[1], callback=lambda run: time.sleep(0.3))
'''


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_to_exactly_the_uninterrupted_draws(
        tmp_path, sigkill_child):
    ckpt = tmp_path / "run"
    script = sigkill_child(KILLED_CHILD, ckpt, "draws-000000000.npz")
    with np.load(ckpt / "state.npz") as state:
        assert int(state["done"]) < 60  # killed mid-run, not after it

    # The same function, imported here: same program, so the fingerprint matches
    # across processes (no ids or addresses in it) and the run resumes.
    spec = importlib.util.spec_from_file_location("killed_child", script)
    child = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(child)
    target = emc.Energy(child.energy, init=jnp.zeros(3))
    resumed = emc.sample(target, "mala", draws=60, checkpoint=ckpt, **RUN)
    whole = emc.sample(target, "mala", draws=60, callback=lambda run: None, **RUN)
    assert np.array_equal(resumed.flat_draws, whole.flat_draws)
    for name, values in whole.stats.items():
        assert np.array_equal(resumed.stats[name], values), name


# ------------------------------------------------------ energymc resume DIR
@pytest.mark.slow  # a compilation and two ArviZ diagnoses; the error paths below are fast
def test_energymc_resume_continues_a_run_the_command_line_started(tmp_path, capsys):
    from energymc.cli import main

    energy_file = tmp_path / "energies.py"
    energy_file.write_text("import jax.numpy as jnp\n\n\ndef quadratic(x):\n"
                           "    return 0.5 * jnp.sum(x**2)\n")
    ckpt = str(tmp_path / "run")
    main(["sample", f"{energy_file}:quadratic", "--dim", "3", "--method", "mala",
          "--chains", "2", "--draws", "60", "--warmup", "40", "--seed", "7",
          "--checkpoint", ckpt])
    spec = importlib.util.spec_from_file_location("energies", energy_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # The same energy from Python: same fingerprint, so the directory's draws come
    # back (nothing is left to run, nothing compiles).
    target = emc.Energy(module.quadratic, init=jnp.zeros(3))
    first = emc.sample(target, "mala", draws=60, checkpoint=ckpt, **RUN)
    capsys.readouterr()
    status = main(["resume", ckpt, "--draws", "90"])
    out = capsys.readouterr().out
    assert status in (0, 1) and "2 x 90" in out  # the recorded command, extended
    longer = emc.sample(target, "mala", draws=90, checkpoint=ckpt, **RUN)
    assert np.array_equal(longer.flat_draws[:, :60], first.flat_draws)
    assert not np.array_equal(longer.flat_draws[:, 60:], longer.flat_draws[:, 30:60])


def test_energymc_resume_explains_what_it_cannot_resume(tmp_path, target, capsys):
    from energymc.cli import main

    ckpt = tmp_path / "run"
    emc.sample(target, "mala", draws=60, checkpoint=ckpt, **RUN)
    assert main(["resume", str(ckpt)]) == 2
    err = capsys.readouterr().err
    assert "started from Python (energy 'quadratic')" in err
    assert f"emc.sample(target, 'mala', chains=2, warmup=40, seed=7, thin=1, draws=..., " \
           f"checkpoint={str(ckpt)!r})" in err
    assert main(["resume", str(tmp_path)]) == 2
    assert "holds no checkpoint" in capsys.readouterr().err
