"""Reference (base) distributions q0 for annealing: normalised, samplable, on flat positions.

Every estimator in :mod:`energymc.logz` walks the geometric path
``pi_beta(x) ∝ q0(x)^(1 - beta) p(x)^beta`` from ``beta = 0`` to ``1``, so
``log Z = log ∫ p`` needs ``q0`` to be *normalised* and exactly samplable.
References are JAX pytrees: their parameters are traced, so a new scale or a
new pilot fit never recompiles the annealing loop.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from energymc._util import INITIAL_STEP, default_step
from energymc.errors import OptionError

__all__ = ["Reference", "GaussianReference", "MixtureReference", "DiscreteReference",
           "NumpyroReference", "make_reference", "student_t_reference", "student_df",
           "initial_step"]


class Reference:
    """A normalised distribution on flat positions ``(dim,)``.

    Methods
    -------
    log_prob(z)
        ``log q0(z)`` for ``z`` ``(dim,)``; a scalar.
    sample(key, n)
        ``(n, dim)`` exact draws.
    """

    def log_prob(self, z):  # pragma: no cover - protocol
        raise NotImplementedError

    def sample(self, key, n):  # pragma: no cover - protocol
        raise NotImplementedError


def draw(ref: Reference, key, n: int) -> jax.Array:
    """``ref.sample(key, n)`` ``(n, dim)`` for host code, compiled as one program.

    The same draws as the eager call, which runs a mixture's split, categorical
    draw, normals and transform as a dozen one-op programs, each compiled on a
    process's first call (25-90 ms apiece). Every reference is a pytree.
    """
    return _draw(ref, key, int(n))


@partial(jax.jit, static_argnums=2)
def _draw(ref, key, n):
    return ref.sample(key, n)


@jax.tree_util.register_pytree_node_class
class GaussianReference(Reference):
    """``N(loc, L L^T)``; ``chol`` is ``(dim,)`` (diagonal sds) or ``(dim, dim)`` (lower)."""

    def __init__(self, loc, chol):
        self.loc = loc
        self.chol = chol

    def tree_flatten(self):
        return (self.loc, self.chol), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children)

    def log_prob(self, z):
        d = z.shape[-1]
        if self.chol.ndim == 1:
            y = (z - self.loc) / self.chol
            logdet = jnp.sum(jnp.log(self.chol))
        else:
            y = jax.scipy.linalg.solve_triangular(self.chol, z - self.loc, lower=True)
            logdet = jnp.sum(jnp.log(jnp.diag(self.chol)))
        return -0.5 * jnp.sum(y**2) - logdet - 0.5 * d * math.log(2 * math.pi)

    def sample(self, key, n):
        eps = jax.random.normal(key, (n, self.loc.shape[-1]), self.loc.dtype)
        if self.chol.ndim == 1:
            return self.loc + eps * self.chol
        return self.loc + eps @ self.chol.T

    def variance(self):
        """Diagonal of the covariance, ``(dim,)``: the initial inverse mass matrix."""
        if self.chol.ndim == 1:
            return self.chol**2
        return jnp.sum(self.chol**2, axis=1)

    def __repr__(self):
        kind = "diagonal" if np.ndim(self.chol) == 1 else "dense"
        return f"GaussianReference(dim={np.shape(self.loc)[-1]}, {kind})"


@jax.tree_util.register_pytree_node_class
class MixtureReference(Reference):
    """A mixture of ``K`` dense Gaussians ``sum_k w_k N(locs_k, chols_k chols_k^T)``.

    Built by ``base="modes"`` (:mod:`energymc.logz._modes`): component 0 is
    the defensive default Gaussian, the others Laplace fits at the target's
    modes. ``K`` is fixed per target shape and unused components carry
    ``log_weights = -inf``, so a fit that finds another number of modes does
    not recompile anything.

    Parameters
    ----------
    locs
        ``(K, dim)`` means.
    chols
        ``(K, dim, dim)`` lower Cholesky factors of the covariances.
    log_weights
        ``(K,)`` normalised log weights (``-inf`` for an unused component).
    var
        ``(dim,)`` the within-mode variance the annealing kernels start their
        mass matrix from (:meth:`variance`): the mixture's total variance
        would hold the distance between modes, far too wide for local moves.
    inv_chols
        ``(K, dim, dim)`` the factors' inverses (computed when ``None``).
    diagonal0
        Whether component 0's factor is diagonal (the defensive default
        Gaussian of ``base="modes"``): :meth:`log_prob` then scales by its
        diagonal instead of multiplying by the dense ``(dim, dim)`` inverse.
        Same numbers (the dense product only adds exact zeros), a third less
        work per gradient at 500 dimensions with one mode.
    """

    def __init__(self, locs, chols, log_weights, var, inv_chols=None, diagonal0=False):
        self.locs = locs
        self.chols = chols
        self.log_weights = log_weights
        self.var = var
        self.diagonal0 = bool(diagonal0)
        # L^-1 once on the host: log_prob is then a matrix product per
        # component, several times faster on CPU than a batched triangular
        # solve on every annealing move.
        if inv_chols is None:
            eye = np.eye(np.shape(chols)[-1])
            inv_chols = jnp.asarray(np.stack([np.linalg.solve(c, eye)
                                              for c in np.asarray(chols, dtype=float)]),
                                    jnp.result_type(float))
        self.inv_chols = inv_chols

    def tree_flatten(self):
        return (self.locs, self.chols, self.log_weights, self.var, self.inv_chols), \
            self.diagonal0

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children, diagonal0=aux)

    def _log_comps(self, z):
        d = z.shape[-1]
        if self.diagonal0:
            y0 = jnp.diagonal(self.inv_chols[0]) * (z - self.locs[0])
            y = jnp.concatenate([y0[None], jnp.einsum(
                "kij,kj->ki", self.inv_chols[1:], z - self.locs[1:])])
        else:
            y = jnp.einsum("kij,kj->ki", self.inv_chols, z - self.locs)
        logdet = -jnp.sum(jnp.log(jnp.diagonal(self.inv_chols, axis1=1, axis2=2)), axis=1)
        return -0.5 * jnp.sum(y**2, axis=1) - logdet - 0.5 * d * math.log(2 * math.pi)

    def log_prob(self, z):
        # An unused component (weight -inf) adds exp(-inf) = 0, never a NaN:
        # its factor is a valid Cholesky factor.
        return jax.scipy.special.logsumexp(self._log_comps(z) + self.log_weights)

    def sample(self, key, n):
        k_c, k_e = jax.random.split(key)
        comp = jax.random.categorical(k_c, self.log_weights, shape=(n,))
        eps = jax.random.normal(k_e, (n, self.locs.shape[-1]), self.locs.dtype)
        # Every component's transform of every draw, then each draw's own:
        # K n dim^2 work and (K, n, dim) memory. Indexing the factors by draw
        # (chols[comp]) built an (n, dim, dim) array instead: 256 MB at 256
        # draws in 500 dimensions, twice per AIS replicate.
        y = self.locs[:, None, :] + jnp.einsum("kij,nj->kni", self.chols, eps)
        return jnp.take_along_axis(y, comp[None, :, None], axis=0)[0]

    def variance(self):
        """``(dim,)`` within-mode variance: the kernels' initial inverse mass matrix."""
        return self.var

    def mala_step(self, c: float) -> float:
        """MALA's starting step size in the coordinates its mass matrix ``var`` whitens.

        The default ``c dim^(-1/3)`` assumes unit curvature there; a Laplace
        component of a dense, ill-conditioned target is far from that (the
        diagonal mass matrix cannot undo its correlations). MALA's
        discretisation error on a Gaussian grows like ``h^3 sum_i lam_i^3``
        for the eigenvalues ``lam_i`` of ``D^(1/2) P D^(1/2)`` (``D = var``,
        ``P`` the component's precision), so ``c (sum_i lam_i^3)^(-1/3)`` is
        the default generalised (equal to it when ``D^(1/2) P D^(1/2) = I``);
        the most curved used component sets it. Host-side, ``O(K dim^3)``.
        """
        D = np.sqrt(np.asarray(self.var, dtype=float))
        logw = np.asarray(self.log_weights, dtype=float)
        worst = 0.0
        for k in np.flatnonzero(np.isfinite(logw)):
            B = np.asarray(self.inv_chols[k], dtype=float) * D   # L^-1 D^(1/2)
            A = B.T @ B                                         # D^(1/2) P D^(1/2)
            worst = max(worst, float(np.sum((A @ A) * A)))      # tr(A^3), A symmetric
        return c * worst ** (-1.0 / 3.0) if worst > 0 and math.isfinite(worst) else math.nan

    def defensive(self) -> GaussianReference:
        """Component 0, the default Gaussian: draws independent of the fitted modes."""
        return GaussianReference(self.locs[0], self.chols[0])

    def __repr__(self):
        try:
            w = np.exp(np.asarray(self.log_weights, dtype=float))
        except jax.errors.TracerArrayConversionError:  # traced: no weights to describe
            return "MixtureReference(traced)"
        modes = int(np.sum(w[1:] > 0))
        return (f"MixtureReference(dim={np.shape(self.locs)[-1]}, modes={modes}, "
                f"defensive={w[0]:.2f})")


def initial_step(kernel_name: str, dim: int, ref: Reference) -> float:
    """The step size a tuned kernel starts the annealing with over ``ref``.

    The default ``c dim^p`` (:func:`energymc._util.default_step`), except for
    MALA over a fitted base (:class:`MixtureReference`), which knows the
    target's curvature: then :meth:`MixtureReference.mala_step`, never larger
    than the default. A fitted base close to the target leaves few stages
    (one or two at 500 dimensions), too few for the per-stage steering to
    shrink a step that is 20x too large, and those stages accepted nothing.
    """
    step = default_step(kernel_name, dim)
    if kernel_name == "mala" and isinstance(ref, MixtureReference):
        fitted = ref.mala_step(INITIAL_STEP["mala"][0])
        if math.isfinite(fitted):
            step = min(step, fitted)
    return step


@jax.tree_util.register_pytree_node_class
class DiscreteReference(Reference):
    """Independent coordinates on {0,1}^dim or {-1,+1}^dim with ``P(x_i = high) = probs_i``.

    ``probs = 0.5`` everywhere is the uniform distribution.
    """

    def __init__(self, probs, support: str):
        self.probs = probs
        self.support = support

    def tree_flatten(self):
        return (self.probs,), self.support

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(children[0], aux)

    def _high(self, z):
        return z > 0.5 if self.support == "binary" else z > 0.0

    def log_prob(self, z):
        high = self._high(z)
        return jnp.sum(jnp.where(high, jnp.log(self.probs), jnp.log1p(-self.probs)))

    def sample(self, key, n):
        high = jax.random.bernoulli(key, self.probs, (n, self.probs.shape[-1]))
        if self.support == "binary":
            return high.astype(self.probs.dtype)
        return jnp.where(high, 1.0, -1.0).astype(self.probs.dtype)

    def variance(self):
        return jnp.ones_like(self.probs)

    def __repr__(self):
        return f"DiscreteReference({self.support}, dim={np.shape(self.probs)[-1]})"


@jax.tree_util.register_pytree_node_class
class NumpyroReference(Reference):
    """A NumPyro distribution whose draws have shape ``(dim,)``.

    The distribution is itself a pytree, so its parameters are traced.
    """

    def __init__(self, dist):
        self.dist = dist

    def tree_flatten(self):
        return (self.dist,), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(children[0])

    def log_prob(self, z):
        lp = self.dist.log_prob(z)
        # A batch of dim independent scalars: its log-density is the sum.
        return jnp.sum(lp)

    def sample(self, key, n):
        return jnp.asarray(self.dist.sample(key, (n,)), dtype=jnp.result_type(float))

    def variance(self):
        try:
            var = jnp.broadcast_to(jnp.asarray(self.dist.variance, jnp.result_type(float)),
                                   self.dist.shape())
            return jnp.where(jnp.isfinite(var) & (var > 0), var, 1.0)
        except (NotImplementedError, AttributeError):
            return jnp.ones(self.dist.shape())

    def __repr__(self):
        inner = _innermost(self.dist)
        name = type(self.dist).__name__
        if inner is not self.dist:  # e.g. StudentT(...).to_event(1): name what is inside
            name = f"{name} of {type(inner).__name__}"
        return f"NumpyroReference({name})"


def _innermost(d):
    """The distribution under NumPyro's ``Independent``/``ExpandedDistribution`` wrappers
    (not under a transform: a transformed Student-t is not one)."""
    import numpyro.distributions as npd

    while isinstance(d, (npd.Independent, npd.ExpandedDistribution)):
        d = d.base_dist
    return d


def student_t_reference(loc, scale, df) -> NumpyroReference:
    """Independent Student-t coordinates: ``StudentT(df, loc, scale).to_event(1)``.

    ``loc`` and ``scale`` are ``(dim,)``. The base ``base="auto"`` moves to
    when the tail check reads the target heavier-tailed than a Gaussian
    (:mod:`energymc.logz._tails`).
    """
    import numpyro.distributions as npd

    dtype = jnp.result_type(float)
    return NumpyroReference(npd.StudentT(jnp.asarray(df, dtype), jnp.asarray(loc, dtype),
                                         jnp.asarray(scale, dtype)).to_event(1))


def student_df(ref) -> float | None:
    """The degrees of freedom of a Student-t base (the smallest, per coordinate), else ``None``.

    The mode check then draws its importance proposal with tails as heavy
    (:func:`energymc.logz._checks.mode_check`'s ``df``).
    """
    if not isinstance(ref, NumpyroReference):
        return None
    import numpyro.distributions as npd

    inner = _innermost(ref.dist)
    if not isinstance(inner, npd.StudentT):
        return None
    try:
        return float(np.min(np.asarray(inner.df, dtype=float)))
    except jax.errors.TracerArrayConversionError:  # traced: nothing to read
        return None


def _check_scale(scale, dim):
    arr = np.asarray(scale, dtype=float)
    if arr.ndim > 1 or (arr.ndim == 1 and arr.shape != (dim,)):
        raise OptionError(f"scale= must be a positive number or a ({dim},) array; "
                          f"got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise OptionError(f"scale= must be positive and finite; got {scale!r}.")
    return jnp.broadcast_to(jnp.asarray(arr, jnp.result_type(float)), (dim,))


def _numpyro_reference(dist, target) -> NumpyroReference:
    import numpyro.distributions as npd

    if isinstance(dist, npd.ImproperUniform):
        raise OptionError(
            "base is an ImproperUniform, which is not normalised: log Z relative to it is "
            "meaningless. Use a proper distribution, e.g. dist.Normal(0, 10).expand([dim])."
        )
    shape = tuple(dist.shape())
    if shape != (target.dim,):
        raise OptionError(
            f"base draws have shape {shape}; the target's flat positions have shape "
            f"({target.dim},). Use e.g. dist.expand([{target.dim}]) or .to_event(1)."
        )
    if target.support != "real":
        raise OptionError(
            f"a NumPyro base is for real targets; this target has support={target.support!r}. "
            "Use base='uniform' or base='bernoulli'."
        )
    return NumpyroReference(dist)


def make_reference(target, base, *, scale=1.0, probs=None, pilot_fn=None,
                   modes_fn=None) -> Reference:
    """Build the reference ``q0`` for ``target`` from the user's ``base=``.

    Parameters
    ----------
    target
        An :class:`energymc.Energy`.
    base
        ``None`` (default: a Gaussian ``N(init, scale^2 I)`` for real targets,
        the uniform distribution for binary/spin targets), ``"gaussian"``,
        ``"pilot"`` (a Gaussian fitted by a short MCMC run; ``pilot_fn`` does
        it), ``"modes"`` (a Laplace mixture at the target's modes plus the
        default Gaussian; ``modes_fn(scale, auto=False)`` fits it),
        ``"auto"`` (that fit where it matches the target, else the default
        Gaussian: ``modes_fn(scale, auto=True)`` decides), ``"uniform"``,
        ``"bernoulli"`` (independent coordinates with
        ``P(high) = probs``), a NumPyro distribution with draws of shape
        ``(dim,)``, or a :class:`Reference`.
    scale
        Standard deviation(s) of the default Gaussian, a number or ``(dim,)``.
    probs
        ``(dim,)`` probabilities for ``base="bernoulli"``.

    Raises
    ------
    OptionError
        For an unnormalised base, a base of the wrong shape or support, or an
        unknown base name.
    """
    dim = target.dim
    discrete = target.support != "real"
    if isinstance(base, Reference):
        return base
    if base is None:
        base = "uniform" if discrete else "gaussian"
    if isinstance(base, str):
        if base in ("gaussian", "pilot", "modes", "auto") and discrete:
            raise OptionError(
                f"base={base!r} is for real targets; support={target.support!r} takes "
                "base='uniform' or base='bernoulli'."
            )
        if base == "gaussian":
            return GaussianReference(jnp.asarray(target.flat_init), _check_scale(scale, dim))
        if base == "pilot":
            return pilot_fn()
        if base in ("modes", "auto"):
            return modes_fn(_check_scale(scale, dim), auto=base == "auto")
        if base in ("uniform", "bernoulli"):
            if not discrete:
                raise OptionError(
                    f"base={base!r} is for binary/spin targets; for a real target use "
                    "base='gaussian', 'modes', 'pilot' or a NumPyro distribution."
                )
            if base == "uniform":
                p = jnp.full((dim,), 0.5)
            else:
                if probs is None:
                    raise OptionError("base='bernoulli' needs probs=, a (dim,) array in (0, 1).")
                p = np.asarray(probs, dtype=float)
                if p.shape != (dim,) or np.any(p <= 0) or np.any(p >= 1):
                    raise OptionError(
                        f"probs= must be a ({dim},) array strictly inside (0, 1); got shape "
                        f"{p.shape}."
                    )
                p = jnp.asarray(p, jnp.result_type(float))
            return DiscreteReference(p, target.support)
        raise OptionError(
            f"unknown base {base!r}; valid bases are 'gaussian', 'auto', 'modes', 'pilot' "
            "(real targets), 'uniform', 'bernoulli' (binary/spin targets), or a NumPyro "
            "distribution."
        )
    if _is_numpyro_dist(base):
        return _numpyro_reference(base, target)
    if callable(base):
        raise OptionError(
            "base= got a bare function; a log-density alone cannot be checked for "
            "normalisation or sampled. Pass a NumPyro distribution instead."
        )
    raise OptionError(f"base= must be None, a name or a NumPyro distribution; got "
                      f"{type(base).__name__}.")


def _is_numpyro_dist(obj: Any) -> bool:
    mod = type(obj).__module__ or ""
    if not mod.startswith("numpyro"):
        return False
    import numpyro.distributions as npd

    return isinstance(obj, npd.Distribution)


def fit_gaussian(flat_draws, widen=None) -> GaussianReference:
    """A Gaussian fitted to ``(n, dim)`` draws (dense when ``n >= 10 dim``, else
    diagonal), its standard deviations widened to cover the tails.

    Widening keeps ``q0`` from being lighter-tailed than the target, which
    would make the importance weights heavy-tailed. It also lengthens the
    annealing path: widening every sd by a factor ``c`` costs about
    ``dim (c - 1)^2`` nats of KL divergence, 1 nat for 10% in 100
    dimensions. So the default factor is ``1 + min(0.1, sqrt(0.1 / dim))``:
    10% up to 10 dimensions, then shrinking so that the widening adds about
    0.1 nat whatever the dimension.
    """
    x = np.asarray(flat_draws, dtype=float).reshape(-1, np.shape(flat_draws)[-1])
    n, dim = x.shape
    if widen is None:
        widen = 1.0 + min(0.1, math.sqrt(0.1 / dim))
    mean = x.mean(axis=0)
    dtype = jnp.result_type(float)
    if n < 10 * dim:
        # Too few draws for a dense covariance (its noise would add to every
        # weight); a diagonal fit is steadier.
        sd = np.sqrt(np.var(x, axis=0) + 1e-12) * widen
        return GaussianReference(jnp.asarray(mean, dtype), jnp.asarray(sd, dtype))
    cov = np.atleast_2d(np.cov(x, rowvar=False))
    # Shrink towards the diagonal (as Stan's warmup does) so a short pilot run
    # cannot give a singular or badly conditioned covariance.
    shrink = 5.0 / (n + 5.0)
    cov = (1 - shrink) * cov + shrink * np.diag(np.diag(cov)) + 1e-6 * np.eye(dim)
    chol = np.linalg.cholesky(cov * widen**2)
    return GaussianReference(jnp.asarray(mean, dtype), jnp.asarray(chol, dtype))
