"""Train an RBM on scikit-learn's digits with persistent CD; show samples; exact log-likelihood.

The 8x8 digits are binarised at 8 of 16 and 20% are held out. An RBM with 16
hidden units is trained by ``energymc.learn.CD`` with ``rbm.block_gibbs`` as
its persistent negative-phase sampler, with weight decay and parameter
averaging. Because the hidden layer is small, log Z is exact (2**16 hidden
states enumerated), so the test log-likelihood is exact too; the AIS estimate
from the base-rate RBM is printed beside it. Writes
``examples/output/rbm_digits.png``: training images, model samples (block Gibbs
from noise) and the held-out log-likelihood along training.

    python examples/rbm_digits.py
    ENERGYMC_QUICK=1 python examples/rbm_digits.py     # or --quick: tiny sizes
"""

import time

import jax
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import numpyro  # noqa: E402
import optax  # noqa: E402
from _toy import quick_from_cli, require_sklearn, save_figure  # noqa: E402

require_sklearn()  # a clear install hint instead of an ImportError
from sklearn.datasets import load_digits  # noqa: E402

import energymc as emc  # noqa: E402
from energymc.models import RBM  # noqa: E402


def main(quick):
    x = (load_digits().data >= 8).astype(np.float32)
    perm = np.random.default_rng(0).permutation(len(x))
    n_test = int(round(0.2 * len(x)))
    train, test = x[perm[n_test:]], x[perm[:n_test]]
    rbm = RBM(64, 16)
    steps = 200 if quick else 20_000
    every = steps // 10

    curve = []

    def held_out(params):
        ll = rbm.log_likelihood(params, test, rbm.log_z_exact(params))
        curve.append(ll)
        return ll

    # The benchmark's recipe (benchmarks/bench_rbm.py, PCD_LONG): a
    # cosine-decayed Adam step with little momentum (b1 0.5), L2 weight decay
    # on W only, and the moving average of the iterates.
    schedule = optax.cosine_decay_schedule(0.02, steps, alpha=0.01)
    decay = optax.add_decayed_weights(1e-3, mask={"W": True, "b": False, "c": False})
    tx = optax.chain(decay, optax.adam(schedule, b1=0.5))
    learner = emc.learn.CD(rbm.free_energy, numpyro.optim.optax_to_numpyro(tx), k=5,
                           persistent=True, sampler=rbm.block_gibbs, ema=0.99)
    t0 = time.perf_counter()
    result = learner.run(jax.random.key(1), steps, train,
                         init_params=rbm.init_params(jax.random.key(0), data=train),
                         batch_size=100, progress=False, eval_every=every, eval_fn=held_out)
    params = result.params
    print(f"trained {steps} PCD updates in {time.perf_counter() - t0:.1f} s")

    log_z = rbm.log_z_exact(params)
    ais = rbm.log_z_ais(params, jax.random.key(2), num_temps=1000 if quick else 10_000,
                        particles=100, data=train)
    print(f"log Z exact {log_z:.3f}; AIS {ais.log_z:.3f} ± {ais.stderr:.3f} (ESS {ais.ess:.0f})")
    print(f"exact log-likelihood: train {rbm.log_likelihood(params, train, log_z):.3f}, "
          f"test {rbm.log_likelihood(params, test, log_z):.3f} nats/image")

    samples = rbm.sample_visible(jax.random.key(3), params, 40,
                                 num_steps=200 if quick else 2000, mean_field=True)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    emc.plots.plot_images(train[:40], shape=(8, 8), ncols=8, ax=axes[0], cmap="gray_r",
                          vmin=0, vmax=1, title="training images")
    emc.plots.plot_images(np.asarray(samples), shape=(8, 8), ncols=8, ax=axes[1],
                          cmap="gray_r", vmin=0, vmax=1,
                          title="RBM samples (block Gibbs, p(v|h))")
    axes[2].plot(np.arange(1, len(curve) + 1) * every, curve, "o-")
    axes[2].set_xlabel("PCD update")
    axes[2].set_ylabel("exact test log-likelihood (nats/image)")
    axes[2].set_title("held-out log-likelihood")
    fig.tight_layout()
    save_figure(fig, "rbm_digits.png")


if __name__ == "__main__":
    main(quick_from_cli(__doc__))
