"""Chains and particles spread over several devices give the one-device draws.

JAX fixes its device count when it starts, so each check runs in a fresh
subprocess whose CPU is split into 4 devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=4``) and compares a run
over all of them with ``devices=1`` in the same process.

A warmup that tunes the step size amplifies last-bit differences of the
compiled arithmetic into different draws, and on a CPU the arithmetic does
differ in its last bit between one device and several (measured; see
docs/devices.md, "Tuned warmup"): XLA rewrites a one-device program and a
program partitioned over devices differently (BlackJAX's dual-averaging
``(target - accept) / (t + t0)``: a multiplication by the reciprocal in one,
a division in the other), and with few chains a device the block size
enters too. So the exact comparisons across device counts use untuned
kernels (``adapt=False``) with 5 chains (8 padded chains, 2 a device) and 3
chains (3 devices, one chain each); tuned runs are compared bit for bit
through the device path on one device, and to a tolerance across device
counts. A wrong chain numbering on the devices (keys that depend on the
device count) changes every draw, not a bit.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PRELUDE = """
import os
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
import jax, jax.numpy as jnp, numpy as np
import energymc as emc
assert len(jax.devices()) == 4, jax.devices()

def quad(x):
    return 0.5 * jnp.sum(x ** 2 * jnp.arange(1.0, 4.0))

target = emc.Energy(quad, init=jnp.zeros(3))

def same(a, b, what, stats_rtol=0.0):
    np.testing.assert_array_equal(a.flat_draws, b.flat_draws, err_msg=what)
    for k in a.stats:
        np.testing.assert_allclose(a.stats[k], b.stats[k], rtol=stats_rtol, atol=0,
                                   err_msg=f"{what}: {k}")
"""


def _run(body: str, timeout: int = 300) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu", "CI": "true",
           "ENERGYMC_COMPILATION_CACHE": "0"}
    proc = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(body)], env=env,
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_chains_over_four_devices_equal_one_device_draws():
    # One subprocess, three compilations: the default suite's budget. 5 chains
    # on 4 devices are padded to 8 (two a device), the padding dropped.
    out = _run("""
        from energymc.errors import OptionError
        for bad in (0, 5, "gpu", [jax.devices()[0]] * 2):
            try:
                emc.sample(target, "mala", devices=bad)
            except OptionError as e:
                print("raised", type(bad).__name__)
            else:
                raise AssertionError(f"devices={bad!r} accepted")

        class Meter:  # draws come in chunks; burn-in ticks come from one device only
            def __init__(self): self.steps = 0
            def start(self, total, desc=""): pass
            def update(self, n, postfix): self.steps += n
            def close(self): pass

        opts = dict(chains=5, draws=12, warmup=6, seed=3, adapt=False, step_size=0.4)
        one = emc.sample(target, "mala", devices=1, **opts)
        meter = Meter()
        many = emc.sample(target, "mala", progress=meter, **opts)
        assert many.flat_draws.shape == (5, 12, 3)
        same(one, many, "5 chains on 4 devices, in chunks")
        assert meter.steps == 6 + 12, meter.steps
        # Negative control: another seed is told apart by the same comparison.
        other = emc.sample(target, "mala", progress=meter, **{**opts, "seed": 4})
        assert not np.array_equal(other.flat_draws, one.flat_draws)
        print("ok")
    """)
    assert out.count("raised") == 4 and "ok" in out


def test_tuned_chains_through_the_device_path_equal_the_one_device_draws():
    # Tuned warmup, 8 chains on one device that is not JAX's default: the
    # sharded code path (shard_map, global chain numbers, gathering) with the
    # one-device batch. Bit for bit: the path itself adds no rounding; a mesh
    # of several devices does (module docstring).
    out = _run("""
        opts = dict(chains=8, draws=10, warmup=20, seed=1)
        one = emc.sample(target, "mala", devices=1, **opts)
        moved = emc.sample(target, "mala", devices=[jax.devices()[2]], **opts)
        same(one, moved, "8 tuned chains on device 2")
        for k, v in one.warmup["params"].items():
            np.testing.assert_array_equal(moved.warmup["params"][k], v, err_msg=k)
        # The 2-a-device split may round differently (tuning amplifies it; whether
        # it does depends on the JAX build): its tuned step agrees to 1%.
        split = emc.sample(target, "mala", devices=4, **opts)
        np.testing.assert_allclose(split.warmup["params"]["step_size"],
                                   one.warmup["params"]["step_size"], rtol=1e-2)
        # Negative control: the comparison tells another seed's draws apart.
        other = emc.sample(target, "mala", devices=[jax.devices()[2]], **{**opts, "seed": 2})
        assert not np.array_equal(other.flat_draws, one.flat_draws)
        print("ok")
    """)
    assert "ok" in out


@pytest.mark.slow
def test_three_chains_on_a_list_of_devices_equal_one_device_draws():
    out = _run("""
        opts = dict(chains=3, draws=12, warmup=6, seed=3, adapt=False, step_size=0.4)
        one = emc.sample(target, "mala", devices=1, **opts)
        many = emc.sample(target, "mala", devices=jax.devices()[1:], **opts)  # one chain each
        # Draws bit for bit. A one-chain block rounds the reported acceptance
        # rate (exp of the log ratio) differently in its last bit (2.7e-7
        # relative, seen after Threefry was written out in sample, which
        # changed XLA's fusion); the accept decisions, hence the draws, agree.
        same(one, many, "3 chains on devices 1-3", stats_rtol=1e-6)
        # Negative control: another seed is told apart by the same comparison.
        other = emc.sample(target, "mala", devices=jax.devices()[1:], **{**opts, "seed": 4})
        assert not np.array_equal(other.flat_draws, one.flat_draws)
        print("ok")
    """)
    assert "ok" in out


@pytest.mark.slow
def test_tuned_nuts_over_four_devices_agrees_with_one_device():
    out = _run("""
        opts = dict(chains=4, draws=30, warmup=50, seed=1)
        one = emc.sample(target, "nuts", devices=1, **opts)
        many = emc.sample(target, "nuts", **opts)
        # Tuning amplifies last-bit differences of the compiled arithmetic (see
        # above) over the warmup: the tuned values agree closely, not bit for bit.
        for k, v in one.warmup["params"].items():
            np.testing.assert_allclose(many.warmup["params"][k], v, rtol=1e-2, err_msg=k)
        # With the tuned values fixed the trajectories stay together: equal up to
        # a last-bit rounding of the leapfrog (a wrong chain key would move
        # every draw by O(1)).
        tuned = one.warmup["params"]
        fixed = dict(chains=4, draws=30, warmup=0, seed=1, adapt=False,
                     step_size=float(tuned["step_size"][0]),
                     inverse_mass_matrix=jnp.asarray(tuned["inverse_mass_matrix"][0]))
        a = emc.sample(target, "nuts", devices=1, **fixed)
        b = emc.sample(target, "nuts", **fixed)
        np.testing.assert_allclose(b.flat_draws, a.flat_draws, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(b.stats["n_steps"], a.stats["n_steps"])
        print("ok")
    """, timeout=600)
    assert "ok" in out


def test_ais_pads_particles_to_use_every_device():
    # 6 particles on 4 devices run as 8 rows, two a device; the 2 padding
    # rows move but enter no weight, ESS, next beta, mean acceptance, mass
    # matrix or cost, so the 6 particles are those of the one-device run up to
    # the order of sums (float32 rounding). A padding row that counted in any
    # of them would move the schedule, the step size or the weights by O(1/6).
    out = _run("""
        import warnings
        from energymc.errors import EnergymcWarning
        warnings.simplefilter("ignore")  # 6 particles: the ESS warnings are expected
        kw = dict(particles=6, replicates=1, checks=False, seed=0, base="gaussian",
                  cess=0.9, progress=False)  # adaptive schedule: padding must not steer it
        one = emc.log_partition(target, "ais", devices=1, **kw)
        many = emc.log_partition(target, "ais", **kw)
        assert one.info["devices"] == 1 and many.info["devices"] == 4, many.info["devices"]
        assert many.particles.shape == (6, 3) and many.weights.shape == (6,)
        assert abs(many.log_z - one.log_z) < 1e-5, (many.log_z, one.log_z)
        assert abs(many.ess - one.ess) < 1e-4, (many.ess, one.ess)
        assert many.num_grad_evals == one.num_grad_evals  # padding is not counted
        np.testing.assert_allclose(many.particles, one.particles, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(many.weights, one.weights, rtol=1e-5, atol=1e-7)
        for k, v in one.stages.items():
            np.testing.assert_allclose(many.stages[k], v, rtol=1e-5, atol=1e-6, err_msg=k)
        other = emc.log_partition(target, "ais", **{**kw, "seed": 1})  # negative control
        assert abs(other.log_z - one.log_z) > 1e-3, (other.log_z, one.log_z)
        assert np.abs(other.particles - one.particles).max() > 1e-2
        # SMC does not pad (BlackJAX resamples and weighs every row): 6 particles
        # use 3 of the 4 devices, and it says so before anything compiles.
        warnings.simplefilter("error", EnergymcWarning)
        try:
            emc.log_partition(target, "smc", particles=6, replicates=1, checks=False,
                              base="gaussian", progress=False)
        except EnergymcWarning as w:
            assert "3 of the 4 devices" in str(w) and "multiple of 4" in str(w), w
        else:
            raise AssertionError("SMC on 3 of 4 devices did not warn")
        print("ok")
    """)
    assert "ok" in out


@pytest.mark.slow  # five annealing compilations
def test_ais_bdmc_and_checkpoints_pad_particles_over_four_devices():
    # The defaults (adaptive schedule, cess=0.995, tuned step size and mass
    # matrix) with 30 particles: 32 rows on 4 devices. BDMC's forward and
    # reverse runs are padded the same way, and a checkpointed run (stage
    # chunks from the host, the padded carry saved between them) gives the
    # uncheckpointed numbers.
    out = _run("""
        import tempfile, warnings
        from energymc.logz._checkpoint import LogZCheckpoint
        warnings.simplefilter("ignore")  # small runs: the ESS warnings are expected
        kw = dict(particles=30, replicates=1, checks=False, seed=0, base="gaussian",
                  progress=False)
        one = emc.log_partition(target, "ais", devices=1, **kw)
        many = emc.log_partition(target, "ais", **kw)
        assert many.info["devices"] == 4 and many.particles.shape == (30, 3)
        assert abs(many.log_z - one.log_z) < 1e-5, (many.log_z, one.log_z)
        assert len(many.stages["beta"]) == len(one.stages["beta"])
        np.testing.assert_allclose(many.stages["beta"], one.stages["beta"], atol=1e-5)
        np.testing.assert_allclose(many.particles, one.particles, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(many.weights, one.weights, rtol=1e-4, atol=1e-6)
        assert many.num_grad_evals == one.num_grad_evals
        with tempfile.TemporaryDirectory() as d:
            saved = emc.log_partition(target, "ais",
                                      checkpoint=LogZCheckpoint(d, save_every=0), **kw)
        assert saved.info["devices"] == 4
        assert abs(saved.log_z - many.log_z) < 1e-5, (saved.log_z, many.log_z)
        np.testing.assert_allclose(saved.particles, many.particles, rtol=1e-4, atol=1e-4)

        bkw = dict(kw, schedule="linear", num_temps=20)
        b1 = emc.log_partition(target, "bdmc", devices=1, **bkw)
        b4 = emc.log_partition(target, "bdmc", **bkw)
        assert b4.info["devices"] == 4
        for end in ("lower", "upper"):
            assert abs(getattr(b4, end) - getattr(b1, end)) < 1e-5, (end, b4, b1)
        np.testing.assert_allclose(b4.particles, b1.particles, rtol=1e-4, atol=1e-4)
        other = emc.log_partition(target, "ais", **{**kw, "seed": 1})  # negative control
        assert abs(other.log_z - one.log_z) > 1e-3, (other.log_z, one.log_z)
        print("ok")
    """, timeout=600)
    assert "ok" in out


@pytest.mark.slow
@pytest.mark.parametrize("method", ["ais", "smc"])
def test_log_partition_particles_over_four_devices_agree_with_one_device(method):
    out = _run(f"""
        kw = dict(particles=64, replicates=1, checks=False, seed=0, base="gaussian")
        if "{method}" == "ais":
            kw.update(num_temps=20, schedule="linear")
        a = emc.log_partition(target, "{method}", devices=1, **kw)
        b = emc.log_partition(target, "{method}", **kw)
        c = emc.log_partition(target, "{method}", **{{**kw, "seed": 1}})
        # Sums over particles are added in another order across devices:
        # equal up to float32 rounding, far inside the seed-to-seed spread.
        assert abs(a.log_z - b.log_z) < 1e-5, (a.log_z, b.log_z)
        np.testing.assert_allclose(b.particles, a.particles, rtol=1e-4, atol=1e-4)
        assert abs(a.log_z - c.log_z) > 1e-3, (a.log_z, c.log_z)  # negative control
        print("ok")
    """, timeout=600)
    assert "ok" in out


@pytest.mark.slow  # four PT compilations (~10 s each on a loaded 2-core machine)
def test_log_partition_pt_chains_over_four_devices_equal_one_device():
    # PT's chains are independent (each has its own ladder): 5 chains on 4
    # devices run as 8 padded ones, two a device, chain c from the c-th key.
    # Untuned (warmup=0) the estimate is bitwise the one-device one, in one
    # compiled run and chunk by chunk under a checkpoint; a tuned warmup
    # amplifies last-bit exp/log differences (see the module docstring).
    out = _run("""
        import tempfile, warnings
        from energymc.logz._checkpoint import LogZCheckpoint
        warnings.simplefilter("ignore")  # tiny runs: the ESS warnings are expected
        # base="gaussian": from base=None's fitted base the draws agree only to
        # float32 rounding (2.4e-7; docs/devices.md), which is not what this tests.
        kw = dict(replicas=2, chains=5, draws=8, warmup=0, batches=2, seed=0, checks=False,
                  progress=False, kernel="mala", adapt_ladder=False, base="gaussian")
        a = emc.log_partition(target, "pt", devices=1, **kw)
        b = emc.log_partition(target, "pt", **kw)
        with tempfile.TemporaryDirectory() as d:
            c = emc.log_partition(target, "pt", checkpoint=LogZCheckpoint(d, save_every=0), **kw)
        for got in (b, c):
            assert got.log_z == a.log_z, (got.log_z, a.log_z)
            np.testing.assert_array_equal(got.particles, a.particles)
            np.testing.assert_array_equal(got.info["per_chain_log_z"], a.info["per_chain_log_z"])
            # Acceptance probabilities are exp() of the same numbers in vectors
            # of another length (the last-bit exp/log rounding above): equal
            # up to float32 rounding; the accept/reject decisions came out equal.
            for k, v in a.stages.items():
                np.testing.assert_allclose(got.stages[k], v, rtol=1e-6, err_msg=k)
        other = emc.log_partition(target, "pt", **{**kw, "seed": 1})
        assert abs(other.log_z - a.log_z) > 1e-3, (other.log_z, a.log_z)  # negative control
        print("ok")
    """, timeout=600)
    assert "ok" in out


@pytest.mark.slow
def test_two_processes_through_jax_distributed_share_the_chains():
    """Multi-host as JAX runs it: 2 processes x 2 CPU devices, chains over all 4."""
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    body = f"""
import sys
import jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU collectives across processes
jax.distributed.initialize("localhost:{port}", 2, int(sys.argv[1]))
import jax.numpy as jnp, numpy as np
import energymc as emc
assert jax.device_count() == 4 and jax.local_device_count() == 2
t = emc.Energy(lambda x: 0.5 * jnp.sum(x ** 2), init=jnp.zeros(3))
opts = dict(chains=3, draws=10, warmup=5, seed=0, adapt=False, step_size=0.5)
r = emc.sample(t, "mala", **opts)
one = emc.sample(t, "mala", devices=[jax.local_devices()[0]], **opts)
np.testing.assert_array_equal(r.flat_draws, one.flat_draws)
print("ok", float(np.sum(r.flat_draws)))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu", "CI": "true",
           "ENERGYMC_COMPILATION_CACHE": "0",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    procs = [subprocess.Popen([sys.executable, "-c", body, str(i)], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(outs)
    sums = [line.split()[1] for out in outs for line in out.splitlines() if line.startswith("ok")]
    assert len(sums) == 2 and sums[0] == sums[1], outs


LEARNER = """
import numpyro

def energy_fn(params, x):
    return 0.5 * jnp.sum(jnp.exp(params["log_prec"]) * (x - params["mu"]) ** 2)

data = jax.random.normal(jax.random.key(1), (64, 3)) * jnp.array([1.0, 0.5, 2.0]) + 1.0
p0 = {"log_prec": jnp.zeros(3), "mu": jnp.zeros(3)}
"""


def test_a_learner_splits_batches_and_persistent_chains_over_four_devices():
    # Persistent CD: the batch's points and the negative chains are rows of the
    # update; split over 4 devices, only the sums over rows (the loss and its
    # gradient) are added in another order, so the parameters agree to float32
    # rounding, far inside what another seed changes.
    out = _run(textwrap.indent(LEARNER, " " * 8) + """
        from energymc.learn._devices import learner_mesh

        import warnings
        from energymc.errors import EnergymcWarning
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert learner_mesh(None, 16).size == 4 and learner_mesh(1, 16) is None
            assert not caught, [str(w.message) for w in caught]  # every device used: silent
            assert learner_mesh(None, 6).size == 3  # a batch is not padded: 3 of 4, said so
        assert [w.category for w in caught] == [EnergymcWarning], caught
        assert "3 of the 4 devices" in str(caught[0].message), caught[0].message
        from energymc.errors import OptionError
        try:
            emc.learn.CD(energy_fn, numpyro.optim.Adam(1e-2)).run(
                jax.random.key(0), 5, data, init_params=p0, devices=5)
        except OptionError as e:
            assert "devices=5" in str(e), e
        else:
            raise AssertionError("devices=5 accepted on 4 devices")
        learner = emc.learn.CD(energy_fn, numpyro.optim.Adam(1e-2), k=3, persistent=True)
        run = dict(init_params=p0, batch_size=16)
        one = learner.run(jax.random.key(0), 30, data, devices=1, **run)
        many = learner.run(jax.random.key(0), 30, data, **run)
        chains = many.state.extra["chains"]
        assert chains.shape == (16, 3) and not chains.sharding.is_fully_replicated
        assert len(chains.sharding.device_set) == 4  # the rows live on 4 devices
        for k in p0:
            np.testing.assert_allclose(many.params[k], one.params[k], rtol=0, atol=1e-6,
                                       err_msg=k)
        np.testing.assert_allclose(chains, one.state.extra["chains"], rtol=0, atol=1e-5)
        np.testing.assert_allclose(many.history["loss"], one.history["loss"], rtol=0, atol=1e-5)
        # Negative control: another seed moves the parameters by far more.
        other = learner.run(jax.random.key(1), 30, data, devices=1, **run)
        assert max(float(np.max(np.abs(other.params[k] - one.params[k]))) for k in p0) > 1e-3
        print("ok")
    """)
    assert "ok" in out


@pytest.mark.slow
@pytest.mark.parametrize("options", ["restarts=2, batch_size=16",
                                     "restarts=2, batch_size=64",
                                     "batch_size=12, buffer_size=24"])
def test_learner_restarts_full_batches_and_replay_buffers_over_devices(options):
    # Restarts put the rows on axis 1 of the stacked state; a full batch is the
    # data itself, without a restart axis; a replay buffer is rows too, and a
    # batch of 12 is split over 4 devices (3 rows each).
    out = _run(textwrap.indent(LEARNER, " " * 8) + f"""
        opts = dict({options})
        buffer = opts.pop("buffer_size", None)
        learner = emc.learn.CD(energy_fn, numpyro.optim.Adam(1e-2), k=3, persistent=True,
                               buffer_size=buffer)
        one = learner.run(jax.random.key(0), 20, data, init_params=p0, devices=1, **opts)
        many = learner.run(jax.random.key(0), 20, data, init_params=p0, **opts)
        mine = one.restarts["params"] if one.restarts else one.params
        theirs = many.restarts["params"] if many.restarts else many.params
        for k in p0:
            np.testing.assert_allclose(theirs[k], mine[k], rtol=0, atol=1e-6, err_msg=k)
        rows = many.state.extra["buffer" if buffer else "chains"]
        assert not rows.sharding.is_fully_replicated
        print("ok")
    """, timeout=600)
    assert "ok" in out
