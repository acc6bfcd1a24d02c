"""Probe for NCE's stall off the origin (issue 11): NCE with a mixture-of-Gaussians noise.

Not a default and not part of the library: a subclass of ``learn.NCE`` whose
noise is a mixture of Gaussians built from the training data, to test noise
choices on the learner zoo's TUNING Gaussians under the zoo's fixed protocol
(``zoo_learn.user_optim``, 1000 updates, batch 128, the task's initial
parameters). Components (``[kind, weight, k]``): ``fit`` the data-fitted
Gaussian (NCE's default noise); ``wide`` the same with sds times ``k``;
``raw`` centred at the origin with the data's second moment about the origin
times ``k**2``; ``mmT`` the data's mean with covariance ``S + k**2 m m^T``;
``diagraw`` the data's mean with ``diag(S + m**2) k**2``; ``iso`` isotropic.
``anneal`` (updates): the non-``fit`` weights fall linearly to 0 over them.

Usage (from the repository root)::

    PYTHONPATH=$PWD python3 benchmarks/nce_noise_probe.py \
        '{"spec": [["fit",0.5,1],["raw",0.5,1]], "tasks": ["gauss5_offset"], "seed": 0}'
    PYTHONPATH=$PWD python3 benchmarks/nce_noise_probe.py --trajectory '{"spec": [["fit",1,1]]}'

``--trajectory`` prints, every 100 updates, the eigenvalues of the model's
precision in the data's whitened coordinates (1 at the optimum) and the
whitened distance of its mean from the data's mean. Results:
``benchmarks/RESULTS.md``, "NCE off the origin: why the path is flat".
"""
import json
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import zoo_learn as Z  # noqa: E402

from energymc.learn import nce as N  # noqa: E402


def comps_from(data, spec):
    """``[(weight, loc, chol)]`` of the mixture's components, from the data."""
    x = jnp.asarray(data, jnp.float32)
    d = x.shape[1]
    m = x.mean(0)
    cov = jnp.cov(x, rowvar=False)
    s = cov + (1e-3 * jnp.trace(cov) / d + 1e-6) * jnp.eye(d)  # NCE's ridge
    out = []
    for kind, w, k in spec:
        if kind == "fit":
            loc, c = m, s
        elif kind == "wide":
            loc, c = m, k**2 * s
        elif kind == "iso":
            loc, c = m, k**2 * jnp.trace(s) / d * jnp.eye(d)
        elif kind == "raw":
            loc, c = jnp.zeros(d), (x.T @ x) / x.shape[0] * k**2
        elif kind == "half":
            loc, c = m / 2, s + jnp.outer(m, m) / 4 * k**2
        elif kind == "diagraw":
            loc, c = m, jnp.diag(jnp.diag(s) + m**2) * k**2
        elif kind == "mmT":
            loc, c = m, s + k**2 * jnp.outer(m, m)
        else:
            raise ValueError(kind)
        out.append((w, loc, jnp.linalg.cholesky(c)))
    return out


class MixNCE(N.NCE):
    """NCE whose noise is the mixture ``spec`` (see the module docstring)."""

    spec = [("fit", 1.0, 1.0)]
    anneal = 0  # updates over which the non-"fit" weights go to 0 (linear); 0 = never

    def _noise_init(self, data):
        cs = comps_from(data, self.spec)
        w = jnp.array([c[0] for c in cs])
        return {"locs": jnp.stack([c[1] for c in cs]), "chols": jnp.stack([c[2] for c in cs]),
                "invs": jnp.stack([jnp.linalg.inv(c[2]) for c in cs]), "w0": w / w.sum(),
                "t": jnp.zeros((), jnp.float32)}

    def _w(self, extra):
        w0 = extra["w0"]
        if not self.anneal:
            return w0
        f = jnp.clip(1 - extra["t"] / self.anneal, 0, 1)
        isfit = jnp.array([s[0] == "fit" for s in self.spec])
        w = jnp.where(isfit, w0, w0 * f)
        return w / w.sum()

    def _logp(self, extra, z):
        w = self._w(extra)
        def one(loc, chol, inv):
            wh = (z - loc) @ inv.T
            return (-0.5 * jnp.sum(wh**2, -1) - jnp.sum(jnp.log(jnp.diag(chol)))
                    - 0.5 * z.shape[1] * jnp.log(2 * jnp.pi))
        lp = jax.vmap(one)(extra["locs"], extra["chols"], extra["invs"])  # (K, m)
        return jax.nn.logsumexp(lp + jnp.log(jnp.maximum(w, 1e-30))[:, None], 0)

    def _noise_sample_logp(self, key, extra, num, event):
        k1, k2 = jax.random.split(key)
        w = self._w(extra)
        c = jax.random.categorical(k1, jnp.log(jnp.maximum(w, 1e-30)), shape=(num,))
        eps = jax.random.normal(k2, (num, extra["locs"].shape[1]))
        z = extra["locs"][c] + jnp.einsum("nij,nj->ni", extra["chols"][c], eps)
        return z.reshape((num, *event)), self._logp(extra, z)

    def _data_logp(self, extra, x):
        return self._logp(extra, x.reshape(x.shape[0], -1))

    def _loss(self, internal, extra, batch, key):
        loss, (ex, info) = super()._loss(internal, extra, batch, key)
        ex = {**ex, "t": ex["t"] + 1}
        return loss, (ex, info)


def run(name, spec, anneal=0, seed=0, ratio=1.0, **kw):
    d = Z.get(name).build()
    cls = type("M", (MixNCE,), {"spec": spec, "anneal": anneal})
    lr = cls(d["energy_fn"], Z.user_optim(), noise_ratio=ratio, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = lr.run(jax.random.key(seed), Z.STEPS, d["data"], init_params=d["init_params"],
                     progress=False)
    e = d["error"](res.params)
    tail = float(np.mean(res.history["loss"][-100:]))
    return {k: round(v, 4) for k, v in e.items()} | {"flag": len(res.problems),
                                                      "loss_end": round(tail, 4)}


def trajectory(cfg):
    name = cfg.get("task", "gauss5_offset")
    d = Z.get(name).build()
    cls = type("M", (MixNCE,), {"spec": [tuple(s) for s in cfg["spec"]],
                                "anneal": cfg.get("anneal", 0)})
    lr = cls(d["energy_fn"], Z.user_optim(), noise_ratio=cfg.get("ratio", 1.0))
    st = lr.init(jax.random.key(cfg.get("seed", 0)), d["data"], d["init_params"], batch_size=128)
    x = d["data"]
    rng = np.random.default_rng(0)
    s = np.cov(x.T.astype(float), bias=True)
    m = x.mean(0)
    w = np.linalg.cholesky(s)
    for i in range(Z.STEPS + 1):
        if i % 100 == 0 or i in (5, 10, 20, 50):
            p = lr.get_params(st)
            pw = w.T @ d["precision"](p) @ w
            mu_w = np.linalg.solve(w, np.asarray(p["mu"]) - m)
            print(i, "whitened eig", np.round(np.linalg.eigvalsh(pw), 3),
                  "mean dist %.2f" % np.linalg.norm(mu_w), d["error"](p), flush=True)
        if i < Z.STEPS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                st, _ = lr.update(st, x[rng.integers(0, len(x), 128)])


if __name__ == "__main__":
    if sys.argv[1] == "--trajectory":
        trajectory(json.loads(sys.argv[2]))
        sys.exit()
    cfg = json.loads(sys.argv[1])
    for name in cfg.pop("tasks", ["gauss5_offset"]):
        t0 = time.perf_counter()
        r = run(name, [tuple(s) for s in cfg["spec"]], cfg.get("anneal", 0), cfg.get("seed", 0),
                cfg.get("ratio", 1.0))
        print(name, json.dumps(cfg), r, f"{time.perf_counter() - t0:.1f}s", flush=True)
