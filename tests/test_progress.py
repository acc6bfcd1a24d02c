"""Progress: the on/off policy, warmup ticks from inside compiled code, same draws on and off."""

import dataclasses
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import energymc as emc
from energymc import kernels, progress, sampling
from energymc.errors import OptionError


# PT's warmup with ticks is the same program as without, bit for bit under
# JAX 0.10's XLA. JAX 0.12's XLA compiles PT's round loop around the host
# callback differently: a step size differs in its last bit from round 16 on
# and the difference stays at float32 rounding (measured: at most 4e-5
# relative after 200 rounds, 5e-6 on the draws). A changed key or schedule
# would differ by whole units.
_BITWISE_PT_TICKS = tuple(int(p) for p in jax.__version__.split(".")[:2]) < (0, 12)


def assert_same_pt_numbers(a, b):
    """Equal bit for bit where XLA keeps it so, else equal to float32 rounding."""
    if _BITWISE_PT_TICKS:
        np.testing.assert_array_equal(a, b)
    else:
        np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float),
                                   rtol=1e-4, atol=1e-6)


class Recorder:
    """A user meter (start/update/close) that remembers every call."""

    def __init__(self):
        self.calls = []
        self.postfixes = []  # one per update

    def start(self, total, description):
        self.calls.append(("start", total, description))

    def update(self, n, postfix):
        self.calls.append(("update", n))
        self.postfixes.append(dict(postfix))

    def close(self):
        self.calls.append(("close",))

    def phases(self):
        """Per started bar: (total, description, list of update sizes)."""
        out = []
        for call in self.calls:
            if call[0] == "start":
                out.append((call[1], call[2], []))
            elif call[0] == "update":
                out[-1][2].append(call[1])
        return out


def quadratic(x):
    return 0.5 * jnp.sum(x**2)


TARGET = emc.Energy(quadratic, init=jnp.zeros(2))


# ---------------------------------------------------------------- the policy
def test_policy_off_under_ci_and_when_asked(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert isinstance(progress.make_meter(None), progress.NullMeter)
    assert isinstance(progress.make_meter(False), progress.NullMeter)
    assert isinstance(progress.make_meter(True), progress.TqdmMeter)
    monkeypatch.delenv("CI")
    monkeypatch.setitem(__import__("sys").modules, "ipykernel", object())  # "in a notebook"
    assert isinstance(progress.make_meter(None), progress.TqdmMeter)
    with pytest.raises(OptionError, match="start/update/close"):
        progress.make_meter("yes")


# ------------------------------------------------------------------- ticks
def test_ticks_reach_the_listener_once_per_step_under_vmap_and_jit():
    rec = Recorder()

    @jax.jit
    def loop(x):
        def body(c, _):
            progress.tick()
            return c + 1.0, None

        return jax.vmap(lambda c: jax.lax.scan(body, c, None, length=7)[0])(x)

    with progress.ticks_to(rec, 100) as listener:
        out = jax.block_until_ready(loop(jnp.zeros(4)))  # 4 chains, 7 steps
    np.testing.assert_array_equal(out, 7.0)
    assert listener.count == 7 and rec.calls == [("update", 1)] * 7
    # Outside the context nobody listens: ticks are dropped, nothing fails.
    jax.block_until_ready(loop(jnp.zeros(4)))
    assert listener.count == 7
    # At most `total` ticks are passed on (a kernel ticking more often cannot overfill).
    rec2 = Recorder()
    with progress.ticks_to(rec2, 3) as listener2:
        jax.block_until_ready(loop(jnp.zeros(2)))
    assert listener2.count == 3 and len(rec2.calls) == 3


def test_throttled_ticks_call_the_host_every_few_steps_and_never_overfill():
    rec = Recorder()

    @jax.jit
    def loop(x):
        def body(c, i):
            progress.tick(i, 3)  # i: the scan's counter, shared by all chains
            return c + 1.0, None

        return jax.vmap(lambda c: jax.lax.scan(body, c, jnp.arange(7))[0])(x)

    with progress.ticks_to(rec, 7) as listener:
        jax.block_until_ready(loop(jnp.zeros(3)))
    # Steps 0, 3 and 6 call the host, three steps each; the last is cut to what is left.
    assert rec.calls == [("update", 3), ("update", 3), ("update", 1)] and listener.count == 7
    assert progress.tick_interval(25) == 1 and progress.tick_interval(1000) == 10


def test_a_failing_meter_never_aborts_the_compiled_run():
    class Broken(Recorder):
        def update(self, n, postfix):
            raise RuntimeError("display gone")

    @jax.jit
    def loop(x):
        def body(c, _):
            progress.tick()
            return c * 2.0, None

        return jax.lax.scan(body, x, None, length=3)[0]

    with progress.ticks_to(Broken(), 10):
        assert float(loop(1.0)) == 8.0


# ------------------------------------------------------- warmup in sample()
def test_burn_in_moves_the_bar_step_by_step_and_keeps_the_draws():
    kw = dict(chains=2, draws=30, warmup=250, seed=3, adapt=False, step_size=0.5)
    rec = Recorder()
    on = emc.sample(TARGET, "mala", progress=rec, **kw)
    off = emc.sample(TARGET, "mala", progress=False, **kw)
    np.testing.assert_array_equal(on.flat_draws, off.flat_draws)
    warm, sampling_bar = rec.phases()
    # A tick every other step (about a hundred in all), during the compiled warmup.
    assert warm[:2] == (250, "mala warmup") and warm[2] == [2] * 125
    assert sum(sampling_bar[2]) == 30


def test_pt_warmup_ticks_every_other_step_and_tunes_the_same():
    pt = kernels.get("pt")
    assert sampling.warmup_ticks(pt)
    # RWM moves the replicas: the cheapest to compile; the ticks do not depend on it.
    opts = kernels.resolve_options(pt, {"replicas": 3, "base_kernel": "rwm"})

    def warm(tick):
        run = jax.jit(jax.vmap(lambda k, x: pt.warmup(k, x, TARGET.flat_logdensity, 200, opts,
                                                      tick=tick)))
        return run(jax.random.split(jax.random.key(4), 2), jnp.zeros((2, 2)))

    rec = Recorder()
    with progress.ticks_to(rec, 200) as listener:
        on = jax.block_until_ready(warm(progress.tick))
    off = warm(None)
    for a, b in zip(jax.tree.leaves(on[:2]), jax.tree.leaves(off[:2]), strict=True):
        assert_same_pt_numbers(a, b)  # state and tuned params
    # Four rounds of 50 steps for 2 chains, a tick every other step: 100 host
    # calls during the compiled warmup, not one per chain.
    assert rec.calls == [("update", 2)] * 100 and listener.count == 200


@pytest.mark.slow
def test_pt_warmup_moves_the_sample_bar_and_keeps_the_draws():
    kw = dict(chains=2, draws=10, warmup=200, seed=4, replicas=4)
    rec = Recorder()
    on = emc.sample(TARGET, "pt", progress=rec, **kw)
    off = emc.sample(TARGET, "pt", progress=False, **kw)
    assert_same_pt_numbers(on.flat_draws, off.flat_draws)
    warm = rec.phases()[0]
    # Four rounds of 50 steps, a tick every other step: the bar moves 100 times
    # during the compiled warmup, not once at its end.
    assert warm[:2] == (200, "pt warmup") and warm[2] == [2] * 100


@dataclasses.dataclass(frozen=True, eq=False)
class _TickingMala:
    """MALA whose warmup reports each step: the contract a kernel opts in to with ``tick=``.

    Its warmup is the real MALA warmup followed by nothing else; the ticks
    come from a scan of the same length, so this checks the plumbing
    (sample() passes ``tick`` when, and only when, a meter listens).
    """

    name: str = "ticking_mala_test"
    seen: list = dataclasses.field(default_factory=list)

    def __getattr__(self, item):
        return getattr(kernels.get("mala"), item)

    def bind_target(self, facts):
        return self  # not MALA's (which __getattr__ would return): this kernel stays in charge

    def warmup(self, key, position, logdensity_fn, num_steps, options, tick=None):
        self.seen.append(tick)
        result = kernels.get("mala").warmup(key, position, logdensity_fn, num_steps, options)
        if tick is not None:
            def body(c, _):
                tick()
                return c, None

            jax.lax.scan(body, 0, None, length=num_steps)
        return result


def test_a_kernel_that_takes_tick_gets_it_only_with_a_meter_and_draws_agree():
    kernel = kernels.register(_TickingMala())
    try:
        _check_ticking_kernel(kernel)
    finally:
        assert kernels.unregister(kernel.name) is kernel
    assert kernel.name not in kernels.names()


def _check_ticking_kernel(kernel):
    # MCLMC's warmup (BlackJAX's find_L_and_step_size) is one call that cannot tick.
    assert sampling.warmup_ticks(kernel) and not sampling.warmup_ticks(kernels.get("mclmc"))
    kw = dict(chains=2, draws=20, warmup=30, seed=5)
    rec = Recorder()
    on = emc.sample(TARGET, kernel.name, progress=rec, **kw)
    off = emc.sample(TARGET, kernel.name, progress=False, **kw)
    plain = emc.sample(TARGET, "mala", progress=False, **kw)
    np.testing.assert_array_equal(on.flat_draws, off.flat_draws)
    np.testing.assert_array_equal(on.flat_draws, plain.flat_draws)
    assert kernel.seen[0] is progress.tick and kernel.seen[-1] is None
    warm = rec.phases()[0]
    assert warm[2] == [1] * 30


def test_a_kernel_without_ticks_still_completes_the_warmup_bar():
    rec = Recorder()
    emc.sample(TARGET, "mala", progress=rec, chains=2, draws=20, warmup=30, seed=5)
    warm = rec.phases()[0]
    assert warm[0] == 30 and sum(warm[2]) == 30


# ------------------------------------------------------- stages of log Z
def _run_stages(ticks, betas):
    """A compiled loop over ``betas`` (traced) that ticks like an annealing loop does."""

    @jax.jit
    def loop(betas):
        def body(carry):
            i, beta, acc = carry
            beta_new = betas[i + 1]
            ticks(i, beta, beta_new)
            return i + 1, beta_new, acc + beta_new

        return jax.lax.while_loop(lambda c: c[0] < betas.shape[0] - 1, body,
                                  (0, betas[0], 0.0))[2]

    return loop(betas)


def test_stage_ticks_count_stages_or_beta_and_call_the_host_about_a_hundred_times():
    # A fixed schedule: the bar counts stages, every other one for 250 stages.
    rec = Recorder()
    betas = jnp.linspace(0.0, 1.0, 251)
    with progress.ticks_to(rec, 250, {"replicate": 0}) as listener:
        _run_stages(progress.StageTicks(250), betas)
    assert rec.calls == [("update", 2)] * 125 and listener.count == 250
    assert rec.postfixes[0] == {"replicate": 0, "stage": 2, "beta": "0.008"}
    assert rec.postfixes[-1]["stage"] == 250 and rec.postfixes[-1]["beta"] == "1.000"
    # An adaptive schedule (stages unknown): percent of the way in beta, one host
    # call per percent crossed, however many stages (here 1000, some within a percent).
    rec = Recorder()
    betas = jnp.linspace(0.0, 1.0, 1001) ** 3
    with progress.ticks_to(rec, progress.BETA_UNITS) as listener:
        _run_stages(progress.StageTicks(None), betas)
    assert listener.count == 100 and sum(n for _, n in rec.calls) == 100
    assert len(rec.calls) <= 100
    shown = [float(p["beta"]) for p in rec.postfixes]
    assert shown == sorted(shown) and shown[-1] == 1.0 and shown[0] < 0.02
    # Reverse AIS (beta from 1 to 0) after a forward run: units offset, progress 1 - beta.
    rec = Recorder()
    with progress.ticks_to(rec, 200) as listener:
        listener.count = 100  # the forward run's share is done
        _run_stages(progress.StageTicks(None, offset=100, reverse=True), betas[::-1])
    assert listener.count == 200 and sum(n for _, n in rec.calls) == 100
    # Negative control: a loop compiled without ticks reports nothing.
    rec = Recorder()
    with progress.ticks_to(rec, 250):
        _run_stages(lambda *a: None, jnp.linspace(0.0, 1.0, 251))
    assert rec.calls == []


def test_log_partition_moves_the_bar_by_beta_inside_each_run_and_keeps_the_estimate():
    # Adaptive AIS: stages are unknown in advance, so each replicate's run
    # counts percent of the way from beta = 0 to 1.
    kw = dict(method="ais", seed=1, replicates=2, checks=False, particles=8, mcmc_steps=1,
              kernel="rwm")
    rec = Recorder()
    with pytest.warns(emc.EnergymcWarning):  # 8 particles: flagged, as it should be
        on = emc.log_partition(TARGET, progress=rec, **kw)
    with pytest.warns(emc.EnergymcWarning):
        off = emc.log_partition(TARGET, progress=False, **kw)
    assert on.log_z == off.log_z and on.stderr == off.stderr
    np.testing.assert_array_equal(on.particles, off.particles)
    np.testing.assert_array_equal(on.stages["beta"], off.stages["beta"])
    (total, description, updates), = rec.phases()
    assert (total, description) == (2 * progress.BETA_UNITS, "log Z (ais)")
    assert sum(updates) == total
    for r in (0, 1):
        shown = [p for p in rec.postfixes if p["replicate"] == r and "beta" in p]
        # Moved from inside the compiled run: several times, with rising stage and beta.
        assert 3 <= len(shown) <= progress.BETA_UNITS
        betas = [float(p["beta"]) for p in shown]
        assert betas == sorted(betas) and 0.0 < betas[0] and betas[-1] == 1.0
        assert [p["stage"] for p in shown] == sorted(p["stage"] for p in shown)
    # The estimate of each replicate closes its share of the bar.
    assert [p.get("log_z") for p in rec.postfixes if "log_z" in p] == [
        f"{v:.4f}" for v in on.replicates]


def _independent_units_path():
    """Six independent binary units with fields h, annealed from uniform by exact draws."""
    h = jnp.linspace(-2.0, 2.0, 6)

    def step(p, key, x, beta):
        return jax.random.bernoulli(key, jax.nn.sigmoid(beta * p["h"]), x.shape).astype(x.dtype)

    path = emc.logz.AnnealingPath(
        log_f=lambda p, x, beta: beta * (x @ p["h"]), step=step,
        sample_base=lambda p, key, n: jax.random.bernoulli(key, 0.5, (n, 6)).astype(p["h"].dtype),
        log_z_base=lambda p: 6 * jnp.log(2.0), params={"h": h}, name="independent")
    return emc.Energy(lambda x: -x @ h, init=jnp.zeros(6), support="binary"), path


@pytest.mark.slow
def test_ais_along_a_models_own_path_moves_the_bar_by_stage():
    target, path = _independent_units_path()
    kw = dict(method="ais", base=path, seed=3, particles=32, schedule="linear", num_temps=300)
    rec = Recorder()
    on = emc.log_partition(target, progress=rec, **kw)
    off = emc.log_partition(target, progress=False, **kw)
    assert on.log_z == off.log_z
    np.testing.assert_array_equal(on.particles, off.particles)
    # One replicate (a path's default) of 300 stages, a host call every third
    # stage, then the check (skipped for a path: it still closes the bar).
    (total, _, updates), = rec.phases()
    assert total == 301 and updates == [3] * 100 + [0, 1]
    assert rec.postfixes[-3]["stage"] == 300 and rec.postfixes[-3]["beta"] == "1.000"


@pytest.mark.slow
@pytest.mark.parametrize("method,kw,units", [
    ("smc", dict(schedule=np.linspace(0.0, 1.0, 6)), 5),  # stages given: counts stages
    ("smc", dict(), progress.BETA_UNITS),  # adaptive: counts beta
    ("bdmc", dict(schedule="linear", num_temps=250), 500),  # forward 250, reverse 250
    ("bdmc", dict(), 2 * progress.BETA_UNITS),
])
def test_smc_and_bdmc_report_their_stages_and_keep_the_estimate(method, kw, units):
    kw = dict(method=method, seed=2, replicates=2, checks=False, particles=16, mcmc_steps=1,
              **kw)
    rec = Recorder()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emc.EnergymcWarning)
        on = emc.log_partition(TARGET, progress=rec, **kw)
        off = emc.log_partition(TARGET, progress=False, **kw)
    assert on.log_z == off.log_z and on.stderr == off.stderr
    np.testing.assert_array_equal(on.particles, off.particles)
    (total, _, updates), = rec.phases()
    assert total == 2 * units and sum(updates) == total
    shown = [p for p in rec.postfixes if "stage" in p]
    # Each replicate's run reported from inside, never more than once per unit.
    assert {p["replicate"] for p in shown} == {0, 1} and len(shown) <= 2 * units
    if method == "bdmc":  # the reverse run follows the forward one: beta goes back to 0
        assert float(shown[-1]["beta"]) == 0.0


# ------------------------------------------------------ learners' evaluations
def test_learner_with_eval_every_beyond_the_run_evaluates_once_at_the_end():
    import numpyro.optim as optim

    from energymc import learn

    def energy(params, x):  # N(m, I): score matching moves m to the data's mean
        return 0.5 * jnp.sum((x - params["m"]) ** 2)

    data = jnp.asarray(np.random.default_rng(0).normal(2.0, 1.0, (64, 2)), jnp.float32)

    def closeness(params):
        return -float(jnp.sum((params["m"] - 2.0) ** 2))

    kw = dict(init_params={"m": jnp.zeros(2)}, eval_fn=closeness, progress=False)
    res = learn.SSM(energy, optim.Adam(0.1)).run(jax.random.key(0), 5, data, eval_every=10, **kw)
    np.testing.assert_array_equal(res.history["eval_step"], [5])
    assert res.history["eval"].shape == (1,) and res.history["eval"][0] == closeness(res.params)
    # A run that reaches multiples of eval_every is unchanged (and reuses the
    # compiled 5-step chunk).
    again = learn.SSM(energy, optim.Adam(0.1)).run(jax.random.key(0), 10, data, eval_every=5,
                                                   **kw)
    np.testing.assert_array_equal(again.history["eval_step"], [5, 10])
