"""Candidate checks for a log Z bias that every replicate shares, measured on TUNING targets.

Default AIS on a funnel is 0.6 nats low with a small stderr, and the four
replicates agree (they lag the same way), so neither default check sees it.
This script measures the candidates considered for a third check, on the
zoo's TUNING half (``benchmarks/zoo.py``), and records why each was not
adopted (``benchmarks/RESULTS.md``, "Held-out zoo: log Z under defaults"):

* ``--paths``: one replicate along another path or with another kernel
  (base scale 1 or 4, 4x more stages, 4x more moves, a pilot base, HMC,
  Barker). A check "replicates along another path disagree" needs the other
  path's bias to differ;
* ``--particles``: checks on the default run's final weighted particles (four
  replicates pooled):

  - ``stein``: the integration-by-parts identity
    ``E[(x_j - c_j) dE/dx_j] = 1`` per coordinate, max ``|z|`` (Bonferroni
    threshold at a 0.001 false-alarm rate);
  - ``drift``: energy, coordinates and squared spreads before and after more
    Metropolis-adjusted moves at ``beta = 1`` from the final particles (paired,
    same weights; an invariant kernel leaves their expectation unchanged),
    max ``|z|`` for 400 MALA steps and 20 HMC steps;
  - ``stuck``: the weight share of particles whose MALA acceptance over 10
    steps (at the run's final step size) is below 0.1;
  - ``hill``: each replicate's tail index of its weights (Hill estimator on
    the top ``3 sqrt(n)``; near or above 0.7 an importance estimate is not
    to be trusted), from the pooled weights split back into replicates.

Usage (about 10 CPU-minutes each on 2 cores)::

    python benchmarks/probe_shared_bias.py --paths --targets funnel2,funnel20 --seeds 3
    python benchmarks/probe_shared_bias.py --particles --seeds 2 \\
        --targets funnel20,funnel2,banana2,gaussian10,student2,mixture2d2,mixture10d3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from functools import partial
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import zoo  # noqa: E402
from scipy.stats import norm  # noqa: E402

import energymc as emc  # noqa: E402
from energymc._util import kish_ess  # noqa: E402
from energymc.logz._ais import AIS_DEFAULTS, _prepare, validate_ais  # noqa: E402
from energymc.logz._anneal import anneal  # noqa: E402

PATHS = {"default": {}, "cess x4 stages": {"cess": 0.99875}, "mcmc_steps 8": {"mcmc_steps": 8},
         "scale 1": {"scale": 1.0}, "scale 4": {"scale": 4.0}, "cess 0.9999": {"cess": 0.9999},
         "pilot base": {"base": "pilot"}, "hmc": {"kernel": "hmc"}, "barker": {"kernel": "barker"}}


def _quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **k)


def probe_paths(entry, seeds):
    target = entry.build()
    for name, opts in PATHS.items():
        for s in range(seeds):
            est = _quiet(emc.log_partition, target, seed=100 + s, replicates=1, checks=False,
                         **opts)
            print(json.dumps({"target": entry.name, "path": name, "seed": s,
                              "err": round(est.log_z - entry.log_z, 3),
                              "stderr": round(est.stderr, 3), "reliable": est.reliable,
                              "grad_evals": est.num_grad_evals}), flush=True)


def _max_z(d, w, ess):
    m = w @ d
    se = np.sqrt((w @ (d - m) ** 2) / ess)
    return float(np.max(np.abs(m / np.maximum(se, 1e-300))))


def _hill(logw, m):
    """Hill's tail index of the weights from their ``m`` largest log weights."""
    top = np.sort(logw)[::-1]
    return float(np.mean(top[:m] - top[m]))


def _threshold(k):
    return float(norm.isf(0.5e-3 / k))


def _stats(target, z, c):
    """Energy, coordinates and squared spreads about ``c``: ``(n, 1 + 2 dim)``."""
    e = np.asarray(jax.vmap(target.flat_energy)(jnp.asarray(z, jnp.float32)), float)
    return np.concatenate([e[:, None], z, (z - c) ** 2], axis=1)


@partial(jax.jit, static_argnames=("lp", "kernel", "kopts"))
def _acceptance(key, z, params, *, lp, kernel, kopts, steps=10):
    """Each particle's mean acceptance over ``steps`` moves at ``beta = 1``: ``(n,)``."""
    n = z.shape[0]
    st = jax.vmap(lambda q: kernel.init(key, q, lp, params, kopts))(z)

    def body(st, k):
        st, info = jax.vmap(lambda kk, q: kernel.step(kk, q, lp, params, kopts))(
            jax.random.split(k, n), st)
        return st, jnp.nan_to_num(info["acceptance_rate"], nan=0.0)

    return jax.lax.scan(body, st, jax.random.split(key, steps))[1].mean(0)


def probe_particles(entry, seeds):
    target = entry.build()
    lp = target.flat_logdensity
    for s in range(seeds):
        est = _quiet(emc.log_partition, target, seed=s, checks=False)
        x, w = np.asarray(est.particles, float), np.asarray(est.weights, float)
        w = w / w.sum()
        ess = float(kish_ess(w))
        c = w @ x
        dim = x.shape[1]
        row = {"target": entry.name, "seed": s, "err": round(est.log_z - entry.log_z, 3),
               "stderr": round(est.stderr, 3), "reliable": est.reliable, "ess": round(ess)}
        g = np.asarray(jax.vmap(jax.grad(target.flat_energy))(jnp.asarray(x, jnp.float32)))
        row["stein_z"] = round(_max_z((x - c) * g - 1.0, w, ess), 2)
        row["stein_thr"] = round(_threshold(dim), 2)

        params = {k: jnp.asarray(v) for k, v in est.info["final_params"].items()}
        for kname, stages in (("mala", 200), ("hmc", 10)):
            o = validate_ais(target, {**AIS_DEFAULTS, "kernel": kname})
            kernel, kopts, _, cfg, _ = _prepare(target, est.info["reference"], dict(o))
            cfg = cfg._replace(adaptive=False, adapt_mass=False)
            out = anneal(jax.random.key(1000 + s), est.info["reference"],
                         jnp.asarray(x, jnp.float32), jnp.ones(stages + 1), params,
                         target=target, kernel=kernel, options=kopts, cfg=cfg)
            d = _stats(target, np.asarray(out["x"], float), c) - _stats(target, x, c)
            row[f"drift_{kname}{stages * cfg.mcmc_steps}_z"] = round(_max_z(d, w, ess), 2)
        row["drift_thr"] = round(_threshold(1 + 2 * dim), 2)
        o = validate_ais(target, dict(AIS_DEFAULTS))
        kernel, kopts = o["_kernel"], o["_kernel_options"]

        a = _acceptance(jax.random.key(s), jnp.asarray(x, jnp.float32), params, lp=lp,
                        kernel=kernel, kopts=kopts)
        row["stuck_share"] = round(float(w @ (a < 0.1)), 3)
        R = len(est.replicates)
        n = w.size // R
        row["hill"] = [round(_hill(np.log(w[r * n:(r + 1) * n]), int(3 * np.sqrt(n))), 2)
                       for r in range(R)]
        print(json.dumps(row), flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--paths", action="store_true")
    ap.add_argument("--particles", action="store_true")
    ap.add_argument("--targets", default="funnel2,funnel20")
    ap.add_argument("--seeds", type=int, default=2)
    args = ap.parse_args(argv)
    entries = [zoo.by_name(n) for n in args.targets.split(",")]
    held = {e.name for e in zoo.HELD_OUT}
    if any(e.name in held for e in entries):
        sys.exit("probe_shared_bias.py measures candidates on TUNING targets only.")
    for e in entries:
        if args.paths:
            probe_paths(e, args.seeds)
        if args.particles:
            probe_particles(e, args.seeds)


if __name__ == "__main__":
    main()
