"""Learner checkpoints: ``learner.run(..., checkpoint=DIR)`` resumes after an
interruption to exactly the result of an uninterrupted run, and refuses a
directory that holds another job or a damaged file.

Sizes are tiny (d = 3, 200 points, 2-update chunks): what is checked is bit
equality of parameters, optimiser state, persistent chains and history, not
the quality of the fit.
"""

import importlib.util
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.optim as optim
import pytest

import energymc as emc
from energymc import learn
from energymc.errors import OptionError
from energymc.io import CheckpointError

D = 3
TRIL = np.tril_indices(D)
X = np.random.default_rng(0).multivariate_normal(
    np.zeros(D), [[2.0, 0.8, 0.0], [0.8, 1.0, -0.3], [0.0, -0.3, 0.5]], size=200
).astype(np.float32)
P0 = {"l": jnp.zeros(len(TRIL[0]))}
STEPS = 40  # with a checkpoint: 20 chunks of 2 updates


def gauss_energy(params, x):
    lower = jnp.zeros((D, D)).at[TRIL].set(params["l"])
    lower = lower.at[jnp.diag_indices(D)].set(jnp.exp(jnp.diag(lower)))
    return 0.5 * x @ (lower @ lower.T) @ x


class Interrupt(Exception):
    pass


class Meter:
    """A progress meter that can stand in for a kill: it raises after ``stop`` chunks.

    Active, so that a run without a checkpoint would be cut into the same
    chunks as one with it.
    """

    active = True

    def __init__(self, stop=None):
        self.stop, self.chunks, self.counts = stop, 0, []

    def start(self, total, description):
        pass

    def update(self, n, postfix):
        float(postfix["loss"])  # the latest loss, as a bar shows it
        self.counts.append(n)
        self.chunks += 1
        if self.chunks == self.stop:
            raise Interrupt

    def close(self):
        pass


def assert_same_result(a, b):
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        assert np.array_equal(x, y)
    assert sorted(a.history) == sorted(b.history)
    for k in a.history:
        assert np.array_equal(a.history[k], b.history[k], equal_nan=True), k
    # The whole state: optimiser moments, persistent chains / buffer, key.
    ka = jax.tree.map(lambda v: jax.random.key_data(v) if jnp.issubdtype(
        v.dtype, jax.dtypes.prng_key) else v, a.state)
    kb = jax.tree.map(lambda v: jax.random.key_data(v) if jnp.issubdtype(
        v.dtype, jax.dtypes.prng_key) else v, b.state)
    for x, y in zip(jax.tree.leaves(ka), jax.tree.leaves(kb), strict=True):
        assert np.array_equal(x, y)


def langevin(key, params, x_batch, k):
    """One unadjusted Langevin step: a cheap sampler to compile (k = 1)."""
    grad = jax.vmap(jax.grad(lambda x: gauss_energy(params, x)))(x_batch)
    return x_batch - 0.05 * grad + jnp.sqrt(0.1) * jax.random.normal(key, x_batch.shape)


def pcd():
    return learn.CD(gauss_energy, optim.Adam(1e-2), k=1, persistent=True, buffer_size=64,
                    sampler=langevin)


def test_an_interrupted_pcd_run_resumes_to_exactly_the_uninterrupted_result(tmp_path):
    learner = pcd()  # one learner: one compilation for every run below
    run = dict(init_params=P0, batch_size=50)
    # The reference: uninterrupted, with a checkpoint of its own. (That a
    # checkpoint leaves the arithmetic alone is checked with SSM below.)
    whole = learner.run(jax.random.key(3), STEPS, X, checkpoint=tmp_path / "whole", **run)
    ckpt = tmp_path / "train"
    with pytest.raises(Interrupt):
        learner.run(jax.random.key(3), STEPS, X, checkpoint=ckpt, progress=Meter(stop=3), **run)
    resumed = learner.run(jax.random.key(3), STEPS, X, checkpoint=ckpt, progress=False, **run)
    assert resumed.timing["resumed_from"] == 6  # three chunks of 2 were kept
    assert_same_result(resumed, whole)
    # The replay buffer is state the run changes, restored from disk, not rebuilt.
    start = learner.init(jax.random.key(3), X, P0, batch_size=50).extra["buffer"]
    assert not np.array_equal(resumed.state.extra["buffer"], start)

    # A finished directory: the same call returns the result without training again.
    again = learner.run(jax.random.key(3), STEPS, X, checkpoint=ckpt, **run)
    assert again.timing["resumed_from"] == STEPS
    assert_same_result(again, whole)

    # Negative control: a resume that restored everything but the PRNG key
    # (here: the key written over) gives another result, so the equality
    # above is not trivial.
    with pytest.raises(Interrupt):
        learner.run(jax.random.key(3), STEPS, X, checkpoint=tmp_path / "b",
                    progress=Meter(stop=3), **run)
    path = tmp_path / "b" / "state.npz"
    with np.load(path) as z:
        arrays = dict(z)
    (name,) = [k for k in arrays if k.endswith("_key")]
    arrays[name] = np.asarray(jax.random.key_data(jax.random.key(4)))
    np.savez(path, **arrays)
    wrong = learner.run(jax.random.key(3), STEPS, X, checkpoint=tmp_path / "b", **run)
    assert wrong.timing["resumed_from"] == 6
    assert not np.array_equal(wrong.params["l"], whole.params["l"])


# Restarts and evaluations: 8 updates cut into chunks of 2 by eval_every.
SSM_RUN = dict(init_params=P0, batch_size=50, restarts=2, eval_every=2,
               eval_fn=lambda p: float(jnp.sum(p["l"])))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A directory holding a finished SSM run, its learner and its result."""
    ckpt = tmp_path_factory.mktemp("learn") / "train"
    learner = learn.SSM(gauss_energy, optim.Adam(1e-2))
    result = learner.run(jax.random.key(1), 8, X, checkpoint=ckpt, **SSM_RUN)
    return ckpt, learner, result


def test_restarts_and_evaluations_resume_too(tmp_path, finished):
    _, learner, result = finished
    whole = learner.run(jax.random.key(1), 8, X, **SSM_RUN)  # no checkpoint
    assert_same_result(result, whole)
    ckpt = tmp_path / "train"
    with pytest.raises(Interrupt):
        learner.run(jax.random.key(1), 8, X, checkpoint=ckpt, progress=Meter(stop=3),
                    **SSM_RUN)
    meter = Meter()
    resumed = learner.run(jax.random.key(1), 8, X, checkpoint=ckpt, progress=meter,
                          **SSM_RUN)
    assert resumed.timing["resumed_from"] == 6
    assert meter.counts == [6, 2]  # the updates found done, then the one chunk run
    np.testing.assert_array_equal(resumed.history["eval_step"], [2, 4, 6, 8])
    assert_same_result(resumed, whole)
    for k in whole.restarts["history"]:
        assert np.array_equal(resumed.restarts["history"][k], whole.restarts["history"][k],
                              equal_nan=True)


def snapshot(path):
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def test_a_directory_of_another_job_is_refused_naming_what_changed(finished):
    ckpt, learner, _ = finished
    before = snapshot(ckpt)

    def refused(match, energy=gauss_energy, opt=None, data=X, seed=1, steps=8, batch=50,
                cls=learn.SSM):
        with pytest.raises(CheckpointError, match=match):
            cls(energy, opt or optim.Adam(1e-2)).run(
                jax.random.key(seed), steps, data, checkpoint=ckpt,
                **{**SSM_RUN, "batch_size": batch})

    def gauss_energy_edited(params, x):  # the same energy, its body edited
        return 1.01 * gauss_energy(params, x)

    refused(r"the energy's program changed", energy=gauss_energy_edited)
    refused(r"the training data changed", data=X[::-1].copy())
    refused(r"seed: saved \[0, 1\], now \[0, 2\]", seed=2)
    refused(r"num_steps: saved 8, now 16", steps=16)
    refused(r"batch_size: saved 50, now 40", batch=40)
    refused(r"the optimiser changed", opt=optim.Adam(2e-2))
    refused(r"holds a different job \(the training run 'learn:SSM'\).*job: saved 'learn:SSM', "
            r"now 'learn:DSM'", cls=learn.DSM)
    assert snapshot(ckpt) == before  # nothing written on refusal
    # A sampler pointed at a learner's directory refuses it as well, rather
    # than taking it for an empty one and writing over it.
    with pytest.raises(CheckpointError, match="holds a different run"):
        emc.sample(emc.Energy(lambda x: jnp.sum(x**2), init=jnp.zeros(2)), "mala",
                   draws=10, warmup=10, chains=1, checkpoint=ckpt)
    assert snapshot(ckpt) == before


def test_bad_checkpoint_argument_is_an_error_before_compiling(tmp_path):
    with pytest.raises(OptionError, match="checkpoint must be a directory path"):
        learn.SSM(gauss_energy, optim.Adam(1e-2)).run(0, 4, X, init_params=P0, checkpoint=3)
    (tmp_path / "file").write_text("")
    with pytest.raises(OptionError, match="is a file; pass a directory"):
        learn.SSM(gauss_energy, optim.Adam(1e-2)).run(0, 4, X, init_params=P0,
                                                      checkpoint=tmp_path / "file")


def test_a_damaged_file_is_named_and_the_last_good_state_kept(finished):
    ckpt, learner, result = finished
    state = ckpt / "state.npz"
    good = state.read_bytes()
    try:
        state.write_bytes(good[: len(good) // 2])  # a copy cut short
        before = snapshot(ckpt)
        with pytest.raises(CheckpointError, match=r"state\.npz .* is damaged or truncated.*"
                                                  r"rename state\.prev\.npz to state\.npz"):
            learner.run(jax.random.key(1), 8, X, checkpoint=ckpt, **SSM_RUN)
        assert snapshot(ckpt) == before
        # Following the advice resumes one chunk earlier, to the same result.
        os.replace(ckpt / "state.prev.npz", state)
        resumed = learner.run(jax.random.key(1), 8, X, checkpoint=ckpt, **SSM_RUN)
        assert resumed.timing["resumed_from"] == 6
        assert_same_result(resumed, result)
    finally:
        state.write_bytes(good)
    for path in ckpt.iterdir():  # JSON and npz only, nothing pickled
        if path.suffix == ".json":
            assert json.loads(path.read_text())["fingerprint"]["job"] == "learn:SSM"
        else:
            assert path.suffix == ".npz"
            with np.load(path, allow_pickle=False) as z:
                assert all(z[k].dtype.kind != "O" for k in z.files)


KILLED_CHILD = '''
import sys, time
import jax, jax.numpy as jnp, numpy as np, numpyro.optim as optim
from energymc import learn

D = 3
X = np.random.default_rng(0).normal(size=(200, D)).astype(np.float32)


def energy(params, x):
    return 0.5 * jnp.sum(jnp.exp(params["log_prec"]) * x**2) + 0.1 * jnp.sum(x**4)


def learner():
    return learn.CD(energy, optim.Adam(1e-2), k=2, persistent=True)


class Slow:
    """Active meter with a pause after every chunk, so that the kill lands mid-run."""
    active = True
    def start(self, total, description): pass
    def update(self, n, postfix): time.sleep(0.3)
    def close(self): pass


if __name__ == "__main__":
    learner().run(jax.random.key(7), 40, X, init_params={"log_prec": jnp.zeros(D)},
                  batch_size=50, checkpoint=sys.argv[1], progress=Slow())
'''


@pytest.mark.slow
def test_a_training_run_killed_with_sigkill_resumes_to_exactly_the_uninterrupted_result(
        tmp_path, sigkill_child):
    ckpt = tmp_path / "train"
    script = sigkill_child(KILLED_CHILD, ckpt, "draws-000000004.npz")  # the third chunk landed
    with np.load(ckpt / "state.npz") as state:
        assert 0 < int(state["done"]) < 40  # killed mid-run, not after it

    # The same module imported here: the same programs, so the fingerprint
    # matches across processes and the run resumes.
    spec = importlib.util.spec_from_file_location("killed_child", script)
    child = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(child)
    run = dict(init_params={"log_prec": jnp.zeros(D)}, batch_size=50)
    learner = child.learner()
    resumed = learner.run(jax.random.key(7), 40, child.X, checkpoint=ckpt, **run)
    assert 0 < resumed.timing["resumed_from"] < 40
    whole = learner.run(jax.random.key(7), 40, child.X, progress=Meter(), **run)
    assert_same_result(resumed, whole)


def test_the_cli_says_how_to_resume_a_training_run(finished, capsys):
    """``energymc resume`` cannot rebuild a learner: it says so and how, instead of a KeyError."""
    from energymc import cli

    ckpt, _, _ = finished
    rc = cli.main(["resume", str(ckpt)])
    err = capsys.readouterr().err
    assert rc != 0 and "training run (SSM)" in err and "learner.run(" in err
