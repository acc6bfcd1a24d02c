"""Adversarial training: an energy against a generator that is its amortised sampler.

The energy ``E_theta`` and a generator ``x = g_phi(z) + sigma eps`` (``z ~ N(0,
I)``, ``eps ~ N(0, I)``; the generator's law ``q_phi`` is a Gaussian mixture
over latents) play the game of VERA (Grathwohl, Kelly, Hashemi, Norouzi,
Swersky & Duvenaud 2021):

* the energy takes a contrastive-divergence step with the generator's samples
  as negatives: ``E_theta(data) - E_theta(x_gen)`` (plus an ``energy_l2``
  penalty on both energies, as Du & Mordatch's recipe, and optionally VERA's
  gradient penalty ``grad_penalty * |grad_x E_theta(data)|^2``);
* the generator minimises ``KL(q_phi || p_theta) = E_q[E_theta(x)] - H(q_phi) +
  log Z``: it moves its samples downhill on the energy *and* raises its own
  entropy. Without the entropy term the generator's optimum is a point mass at
  the energy's minimum -- mode collapse, the failure a GAN's generator shows --
  and the energy learns nothing about the modes it never sees.

The entropy's gradient is ``grad_phi H = -E[grad_x log q(x)^T d x / d phi]``.
VERA estimates the score ``grad_x log q(x) = E_{z | x}[(g(z) - x)] / sigma^2``
with importance samples of the posterior ``p(z | x)``. Here the proposals are
the latents of the whole batch (prior draws, among them the one that made
``x``), self-normalised: the score of the mixture ``(1/B) sum_j N(g(z_j),
sigma^2 I)``, which is exact as ``B`` grows. It needs no variational posterior
to fit, which VERA uses to reach high-dimensional latents; on 2-d toy sets the
batch's prior draws cover the posterior well enough. On images they do not,
whatever the latent's size (the data's dimension keeps the kernels apart):
``entropy="jacobian"`` is the estimate for those (below).

In many dimensions the batch's kernels stop overlapping: on 8x8 digits
(64-d, ``sigma = 0.1``) a generated point is nearer its own mean than any
other by hundreds of ``sigma^2``, the weights are one-hot, and the "score" is
``-eps / sigma``, the point's own noise, whose product with ``dx / d phi`` is
zero in expectation: no entropy gradient at all, and the generator falls into
the energy's minima (``benchmarks/RESULTS.md``). ``entropy="jacobian"`` uses
Laplace's approximation instead: near its own latent ``z``, ``x = g(z) + sigma
eps`` is Gaussian with covariance ``J J^T + sigma^2 I`` (``J = dg/dz``), and
``H(q) = H(z) + D/2 log(2 pi e sigma^2) + E_z[0.5 log det(I + J^T J /
sigma^2)]``, exact for a linear generator and for small ``sigma`` when each
``x`` has one likely latent. Its gradient is that of the last term, computed
exactly (``latent_dim`` forward-mode passes and a Cholesky factor per point),
with no estimate to go stale. It rewards a generator that spreads its latent
over many directions of the data and at larger scale, which the energy must
then hold: the energy needs the range of the data's log-density, so a weak
``energy_l2`` (1e-3 on digits) goes with it.

Why VERA's estimator rather than MEG's mutual-information estimate or
flow-contrastive estimation: it adds no third network (MEG needs a statistics
network; FCE a normalising flow and its log-determinants), its only knob is
the entropy weight, and its gradient is exactly the KL's up to the score
estimate, so the game's equilibrium is ``q = p_theta = p_data``.

The gradient penalty is off by default. On the ring of 8 Gaussians the
generator settles with some modes at half their share and others at 1.5
times theirs at two run seeds of three, and more updates made it worse
(``benchmarks/RESULTS.md``): a generator moves mass between modes only
through the samples it places between them. ``grad_penalty=1`` evens out the
mass per mode, but by smoothing the energy so far that the samples fill the
whole ring between the modes: the modes are gone, which a one-width MMD and
per-mode counts do not show (the figure in ``docs/adversarial.md`` and an
MMD at several widths do). Mode balance on this problem is not solved.

Optionally the generator's samples take ``langevin_steps`` short-run Langevin
steps on the energy before they serve as negatives (cooperative learning, Xie
et al. 2018): the generator proposes, Langevin refines.

Collapse is detected, not assumed away: every update records the batch MMD
between generated points and half the data batch, beside the MMD between the
two halves of the data batch (what a perfect sampler would score). A run whose
generator stays above that floor is reported in ``result.problems``. The
threshold is the mean gap over the last quarter of updates in units of the
floor's batch-to-batch spread. It is an effect size, not a significance
level: a good generator sits measurably (many standard errors) above the
floor after 500 tail updates, so a test of "any gap" would flag every run.
Measured on the ring of 8 Gaussians (batch 256, seeds 1-3; see
``benchmarks/RESULTS.md``): a run whose final sample is within ~1 null spread
of a second draw from the truth sits at 0.2 floor spreads; runs that left two
or three modes at half their share, at 1.1 (and the collapsed control far
above). The default tolerance 0.5 lies between them; the old default 3 let
those imbalanced runs pass.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from energymc._util import n_positional
from energymc.errors import EnergyError, OptionError
from energymc.learn._checks import check_int, check_positive
from energymc.learn._driver import loop_slows, scan
from energymc.learn._learner import LearnerBase

__all__ = ["Adversarial", "batch_mmd"]

#: The generator's entropy estimates (``entropy=``).
ENTROPY_ESTIMATES = ("batch", "jacobian")

#: The most Langevin refinement steps an unrolled learner writes out (compile time grows).
_UNROLL_MAX_STEPS = 64


def batch_mmd(x: jax.Array, y: jax.Array, bandwidth: jax.Array) -> jax.Array:
    """Unbiased squared MMD with a Gaussian kernel, in JAX (for use inside a step).

    Parameters
    ----------
    x, y
        ``(n, d)`` and ``(m, d)`` flat points; ``n, m >= 2``.
    bandwidth
        Scalar ``h`` of ``k(a, b) = exp(-|a - b|^2 / (2 h^2))``.

    Returns
    -------
    jax.Array
        Scalar; mean zero when ``x`` and ``y`` come from one distribution.
    """
    def sq(a, b):
        return jnp.clip(jnp.sum(a * a, 1)[:, None] + jnp.sum(b * b, 1)[None]
                        - 2 * a @ b.T, 0.0, None)

    g = -0.5 / bandwidth**2
    kxx, kyy, kxy = jnp.exp(g * sq(x, x)), jnp.exp(g * sq(y, y)), jnp.exp(g * sq(x, y))
    n, m = x.shape[0], y.shape[0]
    exx = (jnp.sum(kxx) - jnp.trace(kxx)) / (n * (n - 1))
    eyy = (jnp.sum(kyy) - jnp.trace(kyy)) / (m * (m - 1))
    return exx + eyy - 2 * jnp.mean(kxy)


def _median_bandwidth(y: jax.Array) -> jax.Array:
    """The median distance between distinct rows of ``y`` ``(m, d)`` (floored above zero)."""
    d2 = jnp.sum((y[:, None] - y[None]) ** 2, -1)
    iu = jnp.triu_indices(y.shape[0], 1)
    return jnp.sqrt(jnp.maximum(jnp.median(d2[iu]), 1e-12))


class Adversarial(LearnerBase):
    """An energy trained against a generator with an entropy term (VERA-style).

    Parameters
    ----------
    energy_fn
        ``energy_fn(params, x) -> scalar`` for ONE point ``x``.
    generator_fn
        ``generator_fn(params, z) -> x`` for ONE latent ``z`` ``(latent_dim,)``,
        returning a point of the data's event shape (the generator's mean
        ``g(z)``; the learner adds ``sigma`` noise).
    optim
        A ``numpyro.optim`` optimiser (or optax transformation) for both
        networks' parameters; Adam with a small ``b1`` (e.g. ``optax.adam(1e-3,
        b1=0.5)``) is the usual choice for a two-player game.
    latent_dim
        Dimension of the generator's standard-normal latent ``z``.
    noise
        ``sigma``, the standard deviation of the Gaussian noise added to
        ``g(z)``; it makes ``q`` a density whose entropy is defined, and sets
        the width of the kernels in the entropy estimate. Choose it below the
        data's smallest feature scale (the width of a mode); default 0.1.
    entropy_weight
        Weight of ``-H(q)`` in the generator's loss; ``1`` (the default) makes
        it exactly ``KL(q || p_theta)``; ``0`` drops the entropy term -- a plain
        GAN-like generator that collapses (the negative control).
    energy_l2
        Weight of the penalty ``E(data)^2 + E(x_gen)^2`` on the energy's loss,
        which keeps the energy's scale from drifting; default 0.1.
    entropy
        How the gradient of the generator's entropy ``H(q)`` is estimated.
        ``"batch"`` (default): the score of the batch's mixture of Gaussians
        around the generated points; right for low-dimensional data (2-d toy
        sets), where those kernels overlap. ``"jacobian"``: Laplace's
        approximation, ``H(q) = const + E_z[0.5 log det(I + J^T J /
        sigma^2)]`` with ``J = dg/dz`` ``(D, latent_dim)``; for images and
        other data of more than a few dimensions, where the batch's kernels
        do not overlap and ``"batch"`` sees only each point's own noise (its
        gradient is then noise about zero, and the generator collapses). It
        needs ``latent_dim`` forward-mode passes through the generator per
        point and assumes that each point has one likely latent (module
        notes).
    grad_penalty
        Weight of ``mean |grad_x E(data)|^2`` on the energy's loss (VERA's
        gradient penalty); default 0 (off). It keeps the energy smooth around
        the data, which lets the generator move mass between modes, at the
        price of wide, merged modes (module notes); it costs one more
        backward pass per update.
    langevin_steps
        Short-run Langevin steps on the energy from the generator's samples
        before they are the energy's negatives (cooperative learning); 0 by
        default.
    step_size, noise_scale
        The Langevin step ``x <- x - step_size grad E(x) + noise_scale
        N(0, I)``; ``noise_scale`` defaults to ``sqrt(2 step_size)`` (exact
        Langevin; another value samples a tempered energy). Only with
        ``langevin_steps > 0``.
    coverage_tolerance
        How far above the data-vs-data floor the generated samples' batch
        MMD may sit, on average over the last quarter of the updates, before
        the run is reported in ``result.problems`` as collapsed, unbalanced
        or off-target: in units of the floor's own spread from batch to
        batch; default 0.5 (module notes). The gap must also be significant
        (three standard errors of its tail mean), so that noise alone is
        never reported.
    ema
        ``None`` (default) or a decay in ``[0, 1)``: ``result.params`` is then
        the exponential moving average of both networks' iterates (as for
        :class:`energymc.learn.CD`). A two-player game oscillates around its
        equilibrium, and the average can sit nearer to it than the last
        iterate (Yazıcı et al. 2019), e.g. ``ema=0.99``. The coverage check in
        ``history`` judges the iterates, not the average.
    unroll
        As :class:`energymc.learn.CD`'s: compile each update, and the
        Langevin refinement's steps, without a loop around them (``True``),
        or as rolled ``lax.scan`` loops (``False``). ``None`` (default):
        unrolled on CPU when the energy or the generator contains a
        convolution (XLA:CPU runs convolutions inside a compiled loop about
        ten times slower, ``benchmarks/RESULTS.md``); the refinement stays
        rolled above 64 steps, where compile time would dominate.

    Notes
    -----
    ``init_params`` is a dict ``{"energy": ..., "generator": ...}`` and so is
    ``result.params``. One optimiser updates both; each player's gradient is
    its own objective's (the other player's parameters are held fixed with
    ``stop_gradient``), so the scalar ``loss`` is the sum of the energy's and
    the generator's losses. History adds ``energy_gen`` (mean energy of the
    negatives), ``loss_energy``, ``loss_generator``, ``entropy_grad_norm``
    (with ``entropy="batch"``: size of the estimated score of ``q``) or
    ``log_volume`` (with ``"jacobian"``: the mean ``0.5 log det(I + J^T J /
    sigma^2)``), ``mmd`` (generated vs half the
    batch), ``mmd_floor`` (the other half of the batch vs the same half) and
    ``nonfinite`` (fraction of generated points with a non-finite energy,
    dropped from the losses).

    Batches need at least 4 points (the MMDs split a batch in two halves).
    """

    _name = "Adversarial"

    def __init__(self, energy_fn: Callable, generator_fn: Callable, optim, *, latent_dim: int,
                 noise: float = 0.1, entropy_weight: float = 1.0, energy_l2: float = 0.1,
                 langevin_steps: int = 0, step_size: float | None = None,
                 noise_scale: float | None = None, coverage_tolerance: float = 0.5,
                 ema: float | None = None, unroll: bool | None = None,
                 grad_penalty: float = 0.0, entropy: str = "batch"):
        if unroll is not None and not isinstance(unroll, bool):
            raise OptionError(f"unroll must be None (decide from the networks), True or False; "
                              f"got {unroll!r}.")
        self.unroll = unroll
        # What the compiled loops do; decided again from the networks at set-up.
        self._unrolled = bool(unroll)
        if not callable(energy_fn) or n_positional(energy_fn) not in (None, 2):
            raise EnergyError("energy_fn must be a callable energy_fn(params, x) -> scalar "
                              "(two arguments: parameters, then ONE point).")
        if not callable(generator_fn) or n_positional(generator_fn) not in (None, 2):
            raise EnergyError("generator_fn must be a callable generator_fn(params, z) -> x "
                              "(two arguments: parameters, then ONE latent of shape "
                              "(latent_dim,)).")
        self.user_energy_fn = energy_fn
        self.generator_fn = generator_fn
        self.latent_dim = check_int("latent_dim", latent_dim, 1)
        self.noise = check_positive("noise", noise)
        self.entropy_weight = check_positive("entropy_weight", entropy_weight, allow_zero=True)
        self.energy_l2 = check_positive("energy_l2", energy_l2, allow_zero=True)
        self.grad_penalty = check_positive("grad_penalty", grad_penalty, allow_zero=True)
        self.langevin_steps = check_int("langevin_steps", langevin_steps, 0)
        if self.langevin_steps == 0 and (step_size is not None or noise_scale is not None):
            raise OptionError("step_size= and noise_scale= set the Langevin refinement; pass "
                              "langevin_steps=k (k > 0) with them, or drop them.")
        if self.langevin_steps > 0 and step_size is None:
            raise OptionError("langevin_steps > 0 needs step_size= (e.g. step_size=0.01): the "
                              "refinement runs at a fixed step.")
        self.step_size = None if step_size is None else check_positive("step_size", step_size)
        self.noise_scale = (None if noise_scale is None
                            else check_positive("noise_scale", noise_scale))
        self.coverage_tolerance = check_positive("coverage_tolerance", coverage_tolerance)
        if entropy not in ENTROPY_ESTIMATES:
            raise OptionError(f"entropy must be one of {ENTROPY_ESTIMATES}; got {entropy!r}. "
                              "'batch' for low-dimensional data (2-d toy sets), 'jacobian' "
                              "for images (e.g. 8x8 digits).")
        self.entropy = entropy

        def joint_energy(params, x):
            return energy_fn(params["energy"], x)

        super().__init__(joint_energy, optim, ema=ema)

    # ---------------------------------------------------------------- checks
    def _make_spec(self, key, x0, init_params):
        if not isinstance(init_params, dict) or set(init_params) != {"energy", "generator"}:
            got = sorted(init_params) if isinstance(init_params, dict) else type(
                init_params).__name__
            raise EnergyError("Adversarial needs init_params={'energy': ..., 'generator': ...}, "
                              f"the two networks' parameter pytrees; got {got}.")
        spec, internal = super()._make_spec(key, x0, init_params)
        z0 = jnp.zeros((self.latent_dim,), x0.dtype)
        try:
            out = jax.eval_shape(lambda p, z: self.generator_fn(p["generator"], z), internal, z0)
        except Exception as exc:
            raise EnergyError(f"calling generator_fn(params, z) on one latent of shape "
                              f"({self.latent_dim},) raised {type(exc).__name__}: {exc}") from exc
        if tuple(out.shape) != tuple(x0.shape):
            raise EnergyError(f"generator_fn(params, z) returned shape {tuple(out.shape)}; it must "
                              f"return ONE point shaped like the data's, {tuple(x0.shape)}.")
        return spec, internal

    def _extra_init(self, key, data, internal, batch_size):
        if batch_size < 4:
            raise OptionError(f"batch_size={batch_size} is too small: Adversarial needs at least 4 "
                              "points per batch (its coverage check splits a batch in halves).")
        self._unrolled = self._decide_unroll(internal, data)
        return {}

    def _decide_unroll(self, internal, data) -> bool:
        """``unroll`` as given, else whether either network has a convolution on CPU."""
        if self.unroll is not None:
            return self.unroll
        z = jnp.zeros((self.latent_dim,), data.dtype)

        def both(p, x, zz):
            gen = self._spec.to_user(p)["generator"]
            return self._spec.energy(p, x), self.generator_fn(gen, zz)

        return loop_slows(both, internal, data[0], z)

    # ------------------------------------------------------------- sampling
    def _generate(self, key, gen_params, n, dtype):
        """``(x, mean)``: ``n`` noisy generator samples and their means ``g(z)``."""
        kz, ke = jax.random.split(key)
        z = self._latents(kz, n, dtype)
        mean = jax.vmap(lambda zz: self.generator_fn(gen_params, zz))(z)
        x = mean + self.noise * jax.random.normal(ke, mean.shape, dtype)
        return x, mean

    def _refine(self, key, energy_params, x0):
        """``langevin_steps`` Langevin steps on the energy from every row of ``x0``.

        A step to a non-finite position is not taken (the point stays put).
        """
        h = jnp.asarray(self.step_size, x0.dtype)
        s = jnp.asarray(np.sqrt(2.0 * self.step_size) if self.noise_scale is None
                        else self.noise_scale, x0.dtype)
        grad = jax.vmap(jax.grad(lambda z: self.user_energy_fn(energy_params, z)))
        axes = tuple(range(1, x0.ndim))

        def step(x, kk):
            new = x - h * grad(x) + s * jax.random.normal(kk, x.shape, x.dtype)
            ok = jnp.all(jnp.isfinite(new), axis=axes)
            return jnp.where(ok.reshape((-1,) + (1,) * (x.ndim - 1)), new, x), None

        unroll = self._unrolled and self.langevin_steps <= _UNROLL_MAX_STEPS
        x, _ = scan(step, x0, jax.random.split(key, self.langevin_steps), unroll=unroll)
        return x

    def _latents(self, key, n, dtype):
        """The ``(n, latent_dim)`` prior draws behind ``_generate(key, ...)``'s first split."""
        return jax.random.normal(key, (n, self.latent_dim), dtype)

    def _log_volume(self, gen_params, z):
        """``(B,)`` ``0.5 log det(I + J^T J / sigma^2)``, ``J = d g(z) / d z`` ``(D, latent_dim)``.

        The generator-dependent part of the entropy of ``q`` in Laplace's
        approximation of the posterior of the latent (module docstring).
        ``I + J^T J / sigma^2`` is positive definite, so the Cholesky
        factor's log-diagonal is always finite.
        """
        d = self.latent_dim

        def one(zz):
            jac = jax.jacfwd(lambda v: jnp.ravel(self.generator_fn(gen_params, v)))(zz)
            m = jnp.eye(d, dtype=zz.dtype) + jac.T @ jac / self.noise**2
            return jnp.sum(jnp.log(jnp.diagonal(jnp.linalg.cholesky(m))))

        return jax.vmap(one)(z)

    def _score_q(self, x, mean):
        """Estimated ``grad_x log q(x)`` ``(B, *event)`` by self-normalised importance
        sampling over the batch's latents (see the module docstring)."""
        b = x.shape[0]
        xf, mf = x.reshape(b, -1), mean.reshape(b, -1)
        d2 = (jnp.sum(xf**2, 1)[:, None] + jnp.sum(mf**2, 1)[None] - 2 * xf @ mf.T)
        w = jax.nn.softmax(-0.5 * d2 / self.noise**2, axis=1)
        return ((w @ mf - xf) / self.noise**2).reshape(x.shape)

    def sample(self, key: jax.Array, params, n: int, *, refine: bool = True) -> jax.Array:
        """``n`` points from the trained generator, ``(n, *event)``.

        Parameters
        ----------
        key
            A ``jax.random.key`` or an int seed.
        params
            ``result.params`` (``{"energy": ..., "generator": ...}``).
        n
            Number of points.
        refine
            With ``langevin_steps > 0``, also take the Langevin steps on the
            energy (what the energy saw as negatives); ignored otherwise.
        """
        from energymc._util import as_key

        if self._spec is None:
            raise OptionError("call init() or run() first: the parameter form is set there.")
        n = check_int("n", n, 1)
        kg, kr = jax.random.split(as_key(key))
        x, _ = self._generate(kg, params["generator"], n, jnp.result_type(float))
        if refine and self.langevin_steps > 0:
            x = self._refine(kr, params["energy"], x)
        return x

    # ------------------------------------------------------------------ loss
    @staticmethod
    def _rows(ok, x):
        """``ok`` ``(B,)`` shaped to broadcast against ``x`` ``(B, *event)``."""
        return ok.reshape((-1,) + (1,) * (x.ndim - 1))

    def _finite_rows(self, x, energy, batch):
        """``(e, ok, x_safe)``: energies of the rows of ``x`` with the non-finite ones
        zeroed (and flagged ``~ok``) so that they add nothing to a loss or its gradient.

        ``jnp.where(ok, energy(x), 0)`` alone is not enough: its gradient is ``0 *
        (the non-finite derivative)`` = NaN on those rows. So the flagged rows are
        evaluated again at a data point (``x_safe``) before the mask -- the
        "double where" -- at the cost of one more forward pass without gradient.
        """
        sg = jax.lax.stop_gradient
        ok = jnp.isfinite(sg(energy(sg(x))))
        x_safe = jnp.where(self._rows(ok, x), x, sg(batch[:1]))
        return jnp.where(ok, energy(x_safe), 0.0), ok, x_safe

    def _loss(self, internal, extra, batch, key):
        sg = jax.lax.stop_gradient
        kg, kr = jax.random.split(key)
        b = batch.shape[0]
        params = self._spec.to_user(internal)
        e_params, g_params = params["energy"], params["generator"]
        energy = jax.vmap(lambda z: self.user_energy_fn(e_params, z))
        frozen = jax.vmap(lambda z: self.user_energy_fn(sg(e_params), z))

        x_gen, mean = self._generate(kg, g_params, b, batch.dtype)
        neg = sg(x_gen)
        if self.langevin_steps > 0:
            neg = sg(self._refine(kr, sg(e_params), neg))

        # The energy's player: CD with the generator's (refined) samples as negatives.
        e_data = energy(batch)
        e_neg, ok, _ = self._finite_rows(neg, energy, batch)
        n_ok = jnp.maximum(jnp.sum(ok), 1)
        e_neg_mean = jnp.sum(e_neg) / n_ok
        loss_energy = (jnp.mean(e_data) - e_neg_mean + self.energy_l2 * (
            jnp.mean(e_data**2) + jnp.sum(e_neg**2) / n_ok))
        if self.grad_penalty > 0:
            gx = jax.vmap(jax.grad(lambda z: self.user_energy_fn(e_params, z)))(batch)
            loss_energy = loss_energy + self.grad_penalty * jnp.mean(
                jnp.sum(gx.reshape(b, -1) ** 2, 1))

        # The generator's player: E_q[E] - w H(q).
        e_gen, ok_g, x_safe = self._finite_rows(x_gen, frozen, batch)
        n_okg = jnp.maximum(jnp.sum(ok_g), 1)
        if self.entropy == "jacobian":
            # H(q) = const + E_z[0.5 log det(I + J^T J / sigma^2)] (Laplace).
            z = self._latents(jax.random.split(kg)[0], b, batch.dtype)
            vol = self._log_volume(g_params, z)
            neg_entropy = -jnp.sum(jnp.where(ok_g, vol, 0.0)) / n_okg
            entropy_info = {"log_volume": sg(jnp.mean(vol))}
        else:
            # The entropy's gradient through the surrogate score(x)^T x (score held fixed).
            mean_safe = jnp.where(self._rows(ok_g, mean), mean, sg(batch[:1]))
            score = sg(self._score_q(x_safe, mean_safe))
            axes = tuple(range(1, x_gen.ndim))
            neg_entropy = jnp.sum(jnp.where(ok_g, jnp.sum(score * x_safe, axis=axes),
                                            0.0)) / n_okg
            entropy_info = {"entropy_grad_norm": jnp.sqrt(jnp.mean(jnp.sum(
                score.reshape(b, -1) ** 2, 1)))}
        loss_generator = jnp.sum(e_gen) / n_okg + self.entropy_weight * neg_entropy

        # Coverage, judged on halves of the batch (no gradient).
        half = b // 2
        flat = sg(batch).reshape(b, -1)
        ref, other = flat[:half], flat[half:2 * half]
        gen = neg.reshape(b, -1)[:half]
        gen = jnp.where(jnp.isfinite(gen), gen, 1e6)
        h = _median_bandwidth(ref)
        info = {
            "energy_data": jnp.mean(e_data),
            "energy_gen": sg(e_neg_mean),
            "loss_energy": sg(loss_energy),
            "loss_generator": sg(loss_generator),
            "mmd": batch_mmd(gen, ref, h),
            "mmd_floor": batch_mmd(other, ref, h),
            "nonfinite": 1.0 - jnp.mean(ok.astype(batch.dtype)),
            **entropy_info,
        }
        return loss_energy + loss_generator, (extra, info)

    # -------------------------------------------------------------- problems
    def _problems(self, history: dict) -> list[str]:
        """Collapse or a generator off target, judged over the last quarter of updates.

        The generated samples' batch MMD should sit at the data-vs-data floor;
        the test is whether its mean exceeds the floor's mean by more than
        ``coverage_tolerance`` times the floor's batch-to-batch standard
        deviation (a per-batch scale, so it does not tighten with more updates)
        and by more than three standard errors of the paired tail mean (so that
        a short, noisy history is not reported on noise alone).
        """
        out = []
        mmd, floor = np.asarray(history["mmd"]), np.asarray(history["mmd_floor"])
        n = len(mmd)
        tail = slice(n - max(n // 4, 1), n)
        gap = float(np.nanmean(mmd[tail]) - np.nanmean(floor[tail]))
        spread = float(np.nanstd(floor[tail])) if n >= 8 else float(np.nanstd(floor))
        diff = mmd[tail] - floor[tail]
        m = int(np.sum(np.isfinite(diff)))
        stderr = float(np.nanstd(diff)) / np.sqrt(max(m, 1)) if m >= 2 else 0.0
        if not np.isfinite(gap) or (gap > self.coverage_tolerance * max(spread, 1e-12)
                                    and gap > 3.0 * stderr):
            out.append(
                f"the generator does not cover the data: over the last {tail.stop - tail.start} "
                f"updates its samples' batch MMD is {float(np.nanmean(mmd[tail])):.3g} against "
                f"{float(np.nanmean(floor[tail])):.3g} for a second half of the data "
                f"(spread {spread:.2g}); it has collapsed onto some modes, holds too little mass "
                f"on some, or has not converged. "
                "Check entropy_weight (> 0 keeps it from collapsing), train longer, or lower "
                "the learning rate.")
        bad = float(np.mean(np.asarray(history["nonfinite"])))
        if bad > 0:
            out.append(f"{bad:.1%} of generated points had a non-finite energy and were dropped "
                       "from the losses; lower the learning rate or add energy_l2.")
        return out
