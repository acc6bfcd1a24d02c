"""Checkpoints: a run streamed to disk resumes after an interruption with the same draws."""

import os

import jax.numpy as jnp
import numpy as np
import pytest

import energymc as emc
from energymc.errors import OptionError

RUN = dict(chains=2, warmup=40, seed=7)


def quadratic(x):
    return 0.5 * jnp.sum(x**2)


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
    with pytest.raises(OptionError, match="params_sha1"):
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
