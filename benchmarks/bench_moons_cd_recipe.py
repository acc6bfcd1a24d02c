"""Does bench_modern's two-moons CD recipe degrade with more updates? A validation check.

Trains energymc's deep EBM exactly as ``bench_modern.moons_cd_emc`` does (``MOONS``
recipe, with the overrides listed below) on the first 7,000 of that bench's 8,000
*training* points, in chunks of 600 updates; after each chunk, 1,000 short-run
samples (200 SGLD steps from N(0, I)) are scored by MMD^2 against the other 1,000
training points (the validation split). The bench's held-out points are never
used: the recipe is chosen here and reported there.

    nice -n 10 python benchmarks/bench_moons_cd_recipe.py            # 9 chunks, ~6 min
    nice -n 10 python benchmarks/bench_moons_cd_recipe.py --quick    # 3 chunks
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

import bench_modern as B  # noqa: E402  (puts examples/ on the path)
from _toy import toy_data  # noqa: E402


#: Recipes compared: overrides of ``bench_modern.MOONS`` (the first is that dict as is).
CANDIDATES = {"MOONS": {}, "energy_l2 0.01": dict(l2=0.01), "lr 3e-4, energy_l2 0.01":
              dict(lr=3e-4, l2=0.01)}


def curve(over, train, val, x0, chunks, chunk=600):
    """MMD^2 against ``val`` after each of ``chunks`` chunks of ``chunk`` updates."""
    c = dict(B.MOONS, **over)
    learner, p0 = B.moons_cd_learner(c)
    res, out = None, []
    for i in range(chunks):
        k = jax.random.fold_in(jax.random.key(1), i)
        start = dict(init_params=p0) if res is None else dict(init_state=res.state)
        res = learner.run(k, chunk, train, batch_size=c["batch"], progress=False, **start)
        s = np.asarray(learner.sample_negatives(jax.random.key(2), res.params, x0, k=200))
        ok = np.isfinite(s).all(1)
        out.append(float(B.mmd2(s[ok], val)))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 chunks instead of 9")
    args = parser.parse_args()
    B.set_threads(1)
    chunks = 3 if args.quick else 9
    data = toy_data("moons", 8000, seed=0)  # bench_modern's training points
    train, val = data[:7000], data[7000:]
    x0 = np.random.default_rng(14).normal(size=(1000, 2)).astype(np.float32)
    print(f"MOONS = {B.MOONS}; validation floor (1,000 training points vs the split): "
          f"MMD^2 {float(B.mmd2(train[:1000], val)):.4f}")
    print("\n| recipe | " + " | ".join(f"{600 * (i + 1):,}" for i in range(chunks))
          + " | s |")
    print("|" + "---|" * (chunks + 2))
    for name, over in CANDIDATES.items():
        t = time.perf_counter()
        out = curve(over, train, val, x0, chunks)
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in out)
              + f" | {time.perf_counter() - t:.0f} |", flush=True)


if __name__ == "__main__":
    main()
