"""A long run streamed to disk, interrupted, and resumed with the same draws.

Run: ``python examples/resume_long_run.py`` (``--quick`` for tiny sizes).

The run writes its draws and chain state to a checkpoint directory after
every chunk. We stop it on purpose part-way through (as a crash, a pre-empted
cloud job or a Ctrl-C would), call ``sample`` again with the same arguments,
and check that the resumed run returned exactly the draws of an uninterrupted
one. Then we ask the finished checkpoint for twice as many draws: it extends.
"""

import os
import shutil

import jax.numpy as jnp
import numpy as np
from _toy import out_path, quick_from_cli

import energymc as emc


def rosenbrock(x):
    """A 4-d Rosenbrock-like energy: curved, narrow valleys."""
    return jnp.sum(0.5 * (x[1:] - x[:-1] ** 2) ** 2 / 0.1 + 0.5 * (x[:-1] - 1.0) ** 2 / 2.0)


class Stop(Exception):
    """Stands in for whatever kills a long job."""


def main():
    quick = quick_from_cli(__doc__)
    draws = 200 if quick else 4000
    settings = dict(chains=4, warmup=200 if quick else 1000, seed=3, progress=False)
    target = emc.Energy(rosenbrock, init=jnp.zeros(4))
    folder = out_path("resume_long_run.ckpt")
    shutil.rmtree(folder, ignore_errors=True)

    def stop_half_way(run):
        if run.num_draws >= draws // 2:
            raise Stop

    try:
        emc.sample(target, "nuts", draws=draws, checkpoint=folder, callback=stop_half_way,
                   **settings)
    except Stop:
        print(f"interrupted; on disk: {sorted(os.listdir(folder))[:3]} ...")

    resumed = emc.sample(target, "nuts", draws=draws, checkpoint=folder, **settings)
    uninterrupted = emc.sample(target, "nuts", draws=draws, **settings)
    gap = np.max(np.abs(resumed.flat_draws - uninterrupted.flat_draws))
    print(f"resumed run: {resumed.num_draws} draws per chain; "
          f"max |resumed - uninterrupted| = {gap:.2e}")
    assert gap < 1e-4, "a resumed run must repeat the uninterrupted draws"

    extended = emc.sample(target, "nuts", draws=2 * draws, checkpoint=folder, **settings)
    print(f"extended to {extended.num_draws} draws per chain")
    print(emc.diagnose(extended, max_rows=4))


if __name__ == "__main__":
    main()
