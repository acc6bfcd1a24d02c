"""Learning energies from data, driven the way NumPyro drives SVI.

Each learner takes ``energy_fn(params, x)`` (ONE point ``x``; batching is done
inside) or a NumPyro-style ``energy_fn(x)`` with ``numpyro.param`` sites, and a
``numpyro.optim`` optimiser. Pure ``init``/``update`` pairs for your own loop,
``run`` for a compiled loop with a progress bar.

* :class:`CD` -- contrastive divergence: CD-k, persistent CD, replay buffer.
* :class:`JEM` -- a classifier whose logits also define an energy (JEM).
* :class:`Adversarial` -- an energy against an entropy-regularised generator (VERA).
* :class:`NCE` -- noise-contrastive estimation; learns ``log_z`` too.
* :class:`DSM` -- denoising score matching, one or several noise levels.
* :class:`SSM` -- sliced score matching.
* :class:`Diffusion` -- a noise-conditional energy over a continuous VE/VP schedule.
* :func:`annealed_langevin` -- sampling a multi-level DSM model.
* :func:`default_sigma` -- DSM's noise level when none is given.
"""

from energymc.learn._learner import LearnerBase
from energymc.learn._state import LearnResult, LearnState
from energymc.learn.adversarial import Adversarial
from energymc.learn.cd import CD
from energymc.learn.diffusion import Diffusion
from energymc.learn.jem import JEM
from energymc.learn.nce import NCE
from energymc.learn.score import DSM, SSM, annealed_langevin, default_sigma, geometric_sigmas

__all__ = [
    "Adversarial",
    "CD",
    "DSM",
    "Diffusion",
    "JEM",
    "LearnResult",
    "LearnState",
    "LearnerBase",
    "NCE",
    "SSM",
    "annealed_langevin",
    "default_sigma",
    "geometric_sigmas",
]
