"""Progress: the on/off policy, warmup ticks from inside compiled code, same draws on and off."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import energymc as emc
from energymc import kernels, progress, sampling
from energymc.errors import OptionError


class Recorder:
    """A user meter (start/update/close) that remembers every call."""

    def __init__(self):
        self.calls = []

    def start(self, total, description):
        self.calls.append(("start", total, description))

    def update(self, n, postfix):
        self.calls.append(("update", n))

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
    finally:
        kernels._REGISTRY.pop(kernel.name, None)


def test_a_kernel_without_ticks_still_completes_the_warmup_bar():
    rec = Recorder()
    emc.sample(TARGET, "mala", progress=rec, chains=2, draws=20, warmup=30, seed=5)
    warm = rec.phases()[0]
    assert warm[0] == 30 and sum(warm[2]) == 30
