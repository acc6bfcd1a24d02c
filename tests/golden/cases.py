"""The golden cases: tiny, fixed-seed calls of the public API.

Each case returns a dict of arrays. ``make_golden.py`` stores them once;
``tests/test_golden.py`` recomputes them and asserts bit-identical equality,
so a refactor that claims "nothing changes for a user" is held to it.
Sizes are tiny (seconds in all): the point is the bits, not the statistics.
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.optim as optim

import energymc as emc
from energymc import learn
from energymc.logz._result import RENAMED_COLUMNS
from energymc.models import RBM, Ising
from energymc.results import RENAMED_STATS


def _quartic(x):
    return jnp.sum(0.5 * x**2 + 0.25 * x**4) + 0.3 * x[0] * x[1]


def _bimodal(x):
    return jnp.sum(2.0 * (x**2 - 1.0) ** 2)


def _target():
    return emc.Energy(_quartic, init=jnp.zeros(2))


def _run_fields(run):
    fields = {"flat_draws": run.flat_draws, "num_grad_evals": run.num_grad_evals,
              "mean_acceptance": run.mean_acceptance}
    for k, v in run.stats.items():
        if k not in RENAMED_STATS:  # a deprecated alias: the same array as its new name
            fields[f"stats_{k}"] = v
    for k, v in run.warmup["params"].items():
        if isinstance(v, (np.ndarray, float, int)):
            fields[f"warmup_{k}"] = v
    return fields


def _sample(method, **kw):
    def case():
        target = _target() if method != "pt" else emc.Energy(_bimodal, init=jnp.zeros(1))
        run = emc.sample(target, method=method, chains=2, draws=15, warmup=25, seed=3,
                         progress=False, **kw)
        return _run_fields(run)
    return case


def _gibbs():
    model = Ising((3, 3), 0.4)
    run = emc.sample(model, method="gibbs", chains=2, draws=15, warmup=10, seed=5,
                     progress=False)
    return _run_fields(run)


def _logz(method, **kw):
    def case():
        est = emc.log_partition(_target(), method=method, seed=11, progress=False, **kw)
        fields = {"log_z": est.log_z, "stderr": est.stderr, "ess": est.ess,
                  "particles": est.particles, "weights": est.weights,
                  "reliable": est.reliable, "num_grad_evals": est.num_grad_evals}
        if est.replicates is not None:
            fields["replicates"] = est.replicates
        if est.lower is not None:
            fields["lower"], fields["upper"] = est.lower, est.upper
        for k, v in est.stages.items():
            if k not in RENAMED_COLUMNS:  # a deprecated alias: the same array as its new name
                fields[f"stages_{k}"] = v
        return fields
    return case


# A tiny Gaussian learning problem in d = 2 (the README's energy).
_DATA = np.asarray(jax.random.normal(jax.random.key(1), (64, 2)) * jnp.array([1.0, 0.5]))


def _gauss_energy(params, x):
    return 0.5 * x @ params["P"] @ x


def _learn(make, steps=12):
    def case():
        learner = make()
        result = learner.run(jax.random.key(0), steps, _DATA, init_params={"P": jnp.eye(2)},
                             batch_size=16, progress=False)
        fields = {f"params_{k}": v for k, v in result.params.items()}
        fields["losses"] = result.losses
        for k, v in result.history.items():
            if k != "acceptance":  # the deprecated alias of acceptance_rate, the same array
                fields[f"history_{k}"] = v
        return fields
    return case


def _rbm_fit():
    rng = np.random.default_rng(2)
    data = (rng.random((40, 6)) < 0.3).astype(np.float32)
    rbm = RBM(6, 3)
    result = rbm.fit(data, seed=4, batch_size=10, n_iter=8, progress=False)
    fields = {f"params_{k}": v for k, v in result.params.items()}
    for k, v in result.history.items():
        if k != "acceptance":  # the deprecated alias of acceptance_rate, the same array
            fields[f"history_{k}"] = v
    return fields


CASES = {
    "sample_nuts": _sample("nuts"),
    "sample_hmc": _sample("hmc"),
    "sample_mala": _sample("mala"),
    "sample_gibbs_ising": _gibbs,
    "sample_pt": _sample("pt", replicas=3),
    "logz_ais": _logz("ais", particles=32),
    "logz_smc": _logz("smc", particles=32, mcmc_steps=2),
    "logz_bdmc": _logz("bdmc", particles=16, sample_warmup=50),
    "learn_cd": _learn(lambda: learn.CD(_gauss_energy, optim.Adam(1e-2), k=2)),
    "learn_pcd": _learn(lambda: learn.CD(_gauss_energy, optim.Adam(1e-2), k=2, persistent=True)),
    # The noise fitted to the data alone, as when this was recorded (the default
    # since 2026-12-07 mixes in a model-following Gaussian, a deliberate change).
    "learn_nce": _learn(lambda: learn.NCE(_gauss_energy, optim.Adam(1e-2), model_noise=0.0)),
    "learn_dsm": _learn(lambda: learn.DSM(_gauss_energy, optim.Adam(1e-2), sigma=0.3)),
    "rbm_fit": _rbm_fit,
}


def environment_key(env: dict) -> str:
    """The `also_equal` key in environment.json for an environment dict."""
    return f"{env['cpu']} / jax {env['jax']} / jaxlib {env['jaxlib']}"


def also_equal_after_recording(also_equal: dict, recorded: list) -> dict:
    """The `also_equal` lists left after recording the cases ``recorded`` again.

    A case recorded again has new values that no other environment has been
    seen to reproduce: it leaves every list (until ``--vouch`` runs there
    again); the other cases stay. Recording every case (``recorded`` empty,
    as make_golden.py without names) leaves nothing.
    """
    if not recorded:
        return {}
    return {key: [c for c in cases if c not in recorded] for key, cases in also_equal.items()}


def recording_environment() -> dict:
    """What XLA's arithmetic depends on beyond energymc's code: the JAX build and the CPU.

    Bit-identity of the golden values is defined on this environment only; on
    another JAX version or CPU, XLA may round the last bits differently
    (e.g. vectorised ``exp``/``log``), and tests/test_golden.py then compares
    within a stated tolerance instead.
    """
    import platform

    import jax
    import jaxlib

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "cpu": cpu}
