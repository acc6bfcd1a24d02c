"""Parallel tempering (replica exchange) as an energymc kernel: ``sample(target, method="pt")``.

``R`` replicas run a base kernel (any registered Metropolis-adjusted kernel:
``mala`` by default for real targets, ``gibbs`` for binary/spin targets), each
on a tempered density

    log pi_beta(x) = log q0(x) + beta * (log p(x) - log q0(x)),

and after every round of local moves adjacent replicas propose to exchange
states, accepted with probability
``min(1, exp((beta_{k+1} - beta_k) * (ll(x_k) - ll(x_{k+1}))))`` where
``ll = log p - log q0``. Swaps follow the deterministic even/odd scheme of
Syed, Bouchard-Côté, Deligiannidis and Doucet (2021, "non-reversible PT"),
which moves states along the ladder ballistically instead of diffusively.

Under :func:`energymc.sample` there is no reference, so ``q0 = 1`` and the
ladder is ``p^beta`` with ``beta`` from ``beta_min`` (default 0.01 for real
targets, where ``p^0`` would be improper; 0 for discrete ones) to 1.
:func:`energymc.log_partition` with ``method="pt"`` drives the same code with
a normalised ``q0`` at ``beta = 0`` (sampled exactly) and turns the ladder into
a stepping-stone estimate of ``log Z``.

Warmup adapts, in rounds of doubling length, each replica's step size (towards
the base kernel's target acceptance), each replica's diagonal mass matrix (the
variance of its states) and the ladder itself: the betas are moved so that the
swap rejection rates of adjacent pairs are equal (Syed et al., 2021, §5.3),
which equalises the communication barrier between rungs.

The kernel state's ``position`` is the cold (beta = 1) replica's; all replicas
are in ``positions`` ``(R, dim)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from energymc._base import Kernel, KernelFacts, WarmupResult
from energymc._util import default_step
from energymc.errors import OptionError
from energymc.kernels import get, register, resolve_options
from energymc.progress import tick_interval

__all__ = ["PTState", "PT", "WarmupCarry", "WarmupPlan", "new_state", "pt_step", "pt_warmup",
           "initial_ladder", "warmup_finish", "warmup_plan", "warmup_round", "warmup_start"]


class PTState(NamedTuple):
    """State of one parallel-tempering chain.

    Attributes
    ----------
    position
        ``(dim,)`` the cold (beta = 1) replica: what :func:`energymc.sample` records.
    positions
        ``(R, dim)`` every replica, hottest first.
    ll
        ``(R,)`` ``log p - log q0`` at each replica.
    count
        Rounds done; its parity picks the even or odd swap pairs.
    labels
        ``(R,)`` int: which replica sits at each rung (replicas are numbered
        by their rung at the start; swaps move the labels with the states).
    from_hot
        ``(R,)`` bool by label: the replica has visited the hottest rung since
        it last left beta = 1. Its next arrival at beta = 1 completes a round
        trip, the measure of how well the ladder carries states across.
    """

    position: jax.Array
    positions: jax.Array
    ll: jax.Array
    count: jax.Array
    labels: jax.Array
    from_hot: jax.Array


def new_state(positions, ll) -> PTState:
    """A PT state at round 0 from ``(R, dim)`` positions and their ``(R,)`` ``ll``."""
    R = positions.shape[0]
    labels = jnp.arange(R, dtype=jnp.int32)
    return PTState(positions[-1], positions, jnp.where(jnp.isnan(ll), -jnp.inf, ll),
                   jnp.asarray(0, jnp.int32), labels, (labels == 0) & (R > 1))


class TemperedPath(NamedTuple):
    """``log pi_beta = lq + beta * ll``; ``ref`` (optional) samples ``q0`` exactly."""

    lq: Callable
    ll: Callable
    ref: Any = None


_Path = TemperedPath  # the short name this module's signatures use


def initial_ladder(num_replicas: int, beta_min: float, dtype=None) -> jax.Array:
    """``(R,)`` betas from ``beta_min`` to 1, geometric (arithmetic from 0 when ``beta_min = 0``).

    With a reference at beta = 0 the rungs above it are geometric from 1e-3.
    """
    dtype = dtype or jnp.result_type(float)
    if num_replicas == 1:
        return jnp.ones((1,), dtype)
    if beta_min > 0:
        b = np.geomspace(beta_min, 1.0, num_replicas)
    else:
        b = np.concatenate([[0.0], np.geomspace(1e-3, 1.0, num_replicas - 1)])
    b[-1] = 1.0
    return jnp.asarray(b, dtype)


def _tempered(path: _Path, beta):
    def logdens(z):
        return path.lq(z) + beta * path.ll(z)

    return logdens


def _local_moves(key, positions, betas, base_params, path, base, base_opts, n_local):
    """``n_local`` base-kernel steps for every replica; returns positions and stats ``(R,)``."""
    R = positions.shape[0]

    def one(k, z, beta, p):
        logdens = _tempered(path, beta)
        state = base.init(k, z, logdens, p, base_opts)

        def body(s, j):
            s, st = base.step(jax.random.fold_in(k, j + 1), s, logdens, p, base_opts)
            return s, (jnp.nan_to_num(st["acceptance_rate"], nan=0.0),
                       st["diverging"].astype(bool),
                       # (HMC reports its fixed number of steps as a Python int.)
                       jnp.asarray(st["n_steps"], z.dtype) if "n_steps" in st
                       else jnp.ones((), z.dtype))

        s, (acc, div, cost) = jax.lax.scan(body, state, jnp.arange(n_local))
        return s.position, jnp.mean(acc), jnp.any(div), jnp.sum(cost) + 1.0

    keys = jax.random.split(key, R)
    return jax.vmap(one)(keys, positions, betas, base_params)


def _swap(key, positions, ll, betas, parity):
    """Even/odd deterministic swaps (non-reversible PT); returns new positions, ll, stats, perm.

    ``acc`` ``(R-1,)`` is the swap acceptance probability of each pair
    (attempted or not: it is computed for all, and ``attempted`` says which
    were proposed), used by warmup to place the rungs.
    """
    R = positions.shape[0]
    if R == 1:
        z = jnp.zeros((0,), positions.dtype)
        return positions, ll, z, z.astype(bool), jnp.zeros((1,), jnp.int32)
    k = jnp.arange(R - 1)
    log_alpha = (betas[1:] - betas[:-1]) * (ll[:-1] - ll[1:])
    # ll = -inf at both ends of a pair gives nan: no information, no swap.
    log_alpha = jnp.where(jnp.isnan(log_alpha), -jnp.inf, log_alpha)
    acc = jnp.exp(jnp.minimum(log_alpha, 0.0))
    attempted = (k % 2) == parity
    u = jax.random.uniform(key, (R - 1,), positions.dtype)
    do = attempted & (jnp.log(u) < log_alpha)
    up = jnp.concatenate([do, jnp.zeros((1,), bool)])        # r swaps with r + 1
    down = jnp.concatenate([jnp.zeros((1,), bool), do])      # r swaps with r - 1
    r = jnp.arange(R)
    perm = jnp.where(up, r + 1, jnp.where(down, r - 1, r))
    return positions[perm], ll[perm], acc, attempted, perm


def pt_step(key, state: PTState, betas, base_params, path: _Path, base, base_opts,
            n_local: int = 1):
    """One PT round: local moves on every replica, exact redraw at beta = 0, swaps.

    Returns
    -------
    (PTState, dict)
        Stats: ``acceptance`` ``(R,)``, ``diverging`` ``(R,)``,
        ``swap_acceptance`` ``(R-1,)`` and ``swap_attempted`` ``(R-1,)``,
        ``cost`` (gradient evaluations, all replicas), ``round_trip`` (a
        replica reached beta = 1 having visited the hottest rung since it last
        left it).
    """
    k_move, k_ref, k_swap = jax.random.split(key, 3)
    positions, acc, div, cost = _local_moves(k_move, state.positions, betas, base_params, path,
                                             base, base_opts, n_local)
    if path.ref is not None:
        # The beta = 0 replica is q0 itself: an exact, independent draw mixes
        # perfectly and feeds fresh states up the ladder.
        fresh = path.ref.sample(k_ref, 1)[0]
        positions = positions.at[0].set(jnp.where(betas[0] == 0, fresh, positions[0]))
    ll = jax.vmap(path.ll)(positions)
    ll = jnp.where(jnp.isnan(ll), -jnp.inf, ll)
    positions, ll, swap_acc, attempted, perm = _swap(k_swap, positions, ll, betas,
                                                     state.count % 2)
    labels = state.labels[perm]
    cold, hot = labels[-1], labels[0]
    round_trip = state.from_hot[cold] & (positions.shape[0] > 1)
    # Cold end first: with R = 1 both ends are one replica, which never "travels".
    from_hot = state.from_hot.at[cold].set(False).at[hot].set(positions.shape[0] > 1)
    new = PTState(positions[-1], positions, ll, state.count + 1, labels, from_hot)
    return new, {"acceptance": acc, "diverging": div, "swap_acceptance": swap_acc,
                 "swap_attempted": attempted, "cost": jnp.sum(cost),
                 "round_trip": round_trip}


def _interp(x, xp, fp):
    return jnp.interp(x, xp, fp)


def _respace(betas, rejection):
    """Move the rungs so that every adjacent pair has the same rejection rate.

    ``Lambda(beta_k) = sum_{j<k} r_j`` estimates the communication barrier up
    to ``beta_k``; the new rungs sit at equal steps of ``Lambda`` (Syed et al.
    2021, Algorithm 4), found by inverting the piecewise-linear ``Lambda``.
    The end rungs stay where they are.
    """
    R = betas.shape[0]
    if R <= 2:
        return betas
    # A floor keeps Lambda strictly increasing so that the inverse exists.
    lam = jnp.concatenate([jnp.zeros((1,), betas.dtype),
                           jnp.cumsum(jnp.maximum(rejection, 1e-3))])
    levels = jnp.linspace(0.0, 1.0, R, dtype=betas.dtype) * lam[-1]
    new = _interp(levels, lam, betas)
    new = new.at[0].set(betas[0]).at[-1].set(betas[-1])
    return new


def _remetric(params, m1, m2, length, last, step0):
    """After a warmup stretch: each replica's diagonal mass matrix from the sums
    ``m1``, ``m2`` ``(R, dim)`` of its states over ``length`` rounds, and the step
    restarted at ``step0`` (both left as they are after the ``last`` stretch)."""
    mean = m1 / length
    var = jnp.maximum(m2 / length - mean**2, 0.0)
    shrink = length / (length + 5.0)
    old = params["inverse_mass_matrix"]
    # Keep the old matrix where a replica barely moved (var ~ 0).
    imm = jnp.where(var > 1e-10, shrink * var + (1 - shrink) * 1e-3, old)
    # The step size was tuned in the old whitening; in the new one the
    # dimension-scaled default is a better start, and the next stretch
    # (whose adaptation gain starts large again) refines it.
    step = jnp.full_like(params["step_size"], step0)
    return dict(params, inverse_mass_matrix=jnp.where(last, old, imm),
                step_size=jnp.where(last, params["step_size"], step))


def _carry_to_rungs(params, betas, new_betas):
    """Tuned per-replica parameters moved from rungs ``betas`` to ``new_betas`` by
    interpolation in ``beta`` (log step size; mass matrix column by column)."""
    step = jnp.exp(_interp(new_betas, betas, jnp.log(params["step_size"])))
    params = dict(params, step_size=step)
    if "inverse_mass_matrix" in params:
        imm = jax.vmap(lambda col: _interp(new_betas, betas, col), in_axes=1,
                       out_axes=1)(params["inverse_mass_matrix"])
        params = dict(params, inverse_mass_matrix=imm)
    return params


class WarmupPlan(NamedTuple):
    """How :func:`pt_warmup` cuts ``num_steps`` rounds: ``stretches`` of ``length`` rounds.

    The remainder of ``num_steps / stretches`` (at most 3 rounds) is not run.
    """

    stretches: int
    length: int

    @property
    def total(self) -> int:
        """Rounds run in all."""
        return self.stretches * self.length


def warmup_plan(num_steps: int) -> WarmupPlan:
    """Up to four equal stretches, none shorter than 25 rounds unless there is only one."""
    n = int(min(4, max(1, num_steps // 25)))
    return WarmupPlan(n, num_steps // n)


class WarmupCarry(NamedTuple):
    """One chain's PT warmup between two rounds (:func:`warmup_start`, :func:`warmup_round`).

    Attributes
    ----------
    state
        The :class:`PTState`.
    betas
        ``(R,)`` the ladder (re-spaced after each stretch).
    params
        Per-replica base params ``(R, ...)`` being tuned.
    sums
        The current stretch's running sums: swap acceptance and attempts
        ``(R-1,)`` each, the replicas' states and squared states ``(R, dim)``.
    """

    state: PTState
    betas: jax.Array
    params: Any
    sums: tuple


def _zero_sums(positions):
    zeros = jnp.zeros((max(positions.shape[0] - 1, 0),), positions.dtype)
    return zeros, zeros, jnp.zeros_like(positions), jnp.zeros_like(positions)


def _warm_round(key, i, state, params, sums, betas, path, base, base_opts, n_local,
                target_accept, tunable):
    """Round ``i`` of a stretch, from its own key: a PT round, then the step-size update."""
    state, st = pt_step(key, state, betas, params, path, base, base_opts, n_local)
    if tunable and target_accept is not None:
        # Per-replica Robbins-Monro on log step size; the decaying gain
        # settles the noise of single-chain acceptance.
        gain = 0.5 / jnp.sqrt(1.0 + i.astype(state.positions.dtype))
        params = dict(params)
        params["step_size"] = params["step_size"] * jnp.exp(
            gain * (st["acceptance"] - target_accept))
    acc_sum, att_sum, m1, m2 = sums
    acc_sum = acc_sum + jnp.where(st["swap_attempted"], st["swap_acceptance"], 0.0)
    att_sum = att_sum + st["swap_attempted"]
    return state, params, (acc_sum, att_sum, m1 + state.positions,
                           m2 + state.positions**2), st["acceptance"]


def _end_stretch(state, betas, params, sums, last, *, length, path, tunable, adapt_ladder,
                 step0):
    """After a stretch: mass matrices, a re-spaced ladder, params carried to the new rungs.

    ``last`` (traced bool): the warmup's last stretch, after which the ladder
    and the mass matrices stay. Returns ``state, betas, params`` and the
    stretch's swap acceptance ``(R-1,)``.
    """
    acc_sum, att_sum, m1, m2 = sums
    swap_rate = jnp.where(att_sum > 0, acc_sum / jnp.maximum(att_sum, 1.0), 1.0)
    if tunable and "inverse_mass_matrix" in params and length >= 20:
        params = _remetric(params, m1, m2, length, last, step0)
    if adapt_ladder and betas.shape[0] > 2:
        new_betas = jnp.where(last, betas, _respace(betas, 1.0 - swap_rate))
        if tunable:
            params = _carry_to_rungs(params, betas, new_betas)
        betas = new_betas
        ll = jax.vmap(path.ll)(state.positions)
        state = state._replace(ll=jnp.where(jnp.isnan(ll), -jnp.inf, ll))
    return state, betas, params, swap_rate


def pt_warmup(key, positions, betas, base_params, path: _Path, base, base_opts, *,
              num_steps: int, n_local: int, target_accept, tunable: bool,
              adapt_ladder: bool = True, tick=None):
    """Adapt step sizes, mass matrices and the ladder of one PT chain.

    ``num_steps`` rounds are cut into up to four equal stretches
    (:func:`warmup_plan`; one compiled body, scanned: compiling a body per
    stretch would cost more than the warmup itself). Within a stretch every
    replica's step size follows a Robbins-Monro rule towards
    ``target_accept``; after each stretch but the last, the ladder is
    re-spaced (if ``adapt_ladder``), each replica's diagonal mass matrix is
    set to the variance of its states, and tuned values are carried to the
    new rungs by interpolation in ``beta``.

    The same warmup runs round by round from the host with
    :func:`warmup_start`, :func:`warmup_round` and :func:`warmup_finish`
    (``log_partition(method="pt", checkpoint=...)`` saves it between chunks),
    to the same numbers.

    ``tick`` (:func:`energymc.progress.tick` or ``None``) is called in
    every round with the round's index, so a progress meter moves during the
    warmup; no number depends on it (JAX 0.10: the same bits; JAX 0.12
    compiles the loop around the host call differently, and step sizes and
    states differ in the last bits of a float32).

    Returns
    -------
    (PTState, betas, base_params, info)
        ``info`` holds the last stretch's ``swap_acceptance`` ``(R-1,)`` and
        ``acceptance`` ``(R,)``.
    """
    start = warmup_start(positions, betas, base_params, path)
    if num_steps == 0:
        return start.state, betas, base_params, {}
    n_rounds, length = warmup_plan(num_steps)
    step0 = default_step(base.name, positions.shape[1])
    every = tick_interval(num_steps)

    def stretch(carry, r):
        state, betas, params = carry
        rkey = jax.random.fold_in(key, r)

        def body(c, i):
            if tick is not None:
                # Scan counters, shared by all chains: one host call per
                # reported step under vmap, not one per chain.
                tick(r * length + i, every)
            state, params, sums, acc = _warm_round(
                jax.random.fold_in(rkey, i), i, *c, betas, path, base, base_opts, n_local,
                target_accept, tunable)
            return (state, params, sums), acc

        (state, params, sums), move_acc = jax.lax.scan(
            body, (state, params, start.sums), jnp.arange(length))
        state, betas, params, swap_rate = _end_stretch(
            state, betas, params, sums, r == n_rounds - 1, length=length, path=path,
            tunable=tunable, adapt_ladder=adapt_ladder, step0=step0)
        info = {"swap_acceptance": swap_rate, "acceptance": jnp.mean(move_acc, axis=0)}
        return (state, betas, params), info

    carry, infos = jax.lax.scan(stretch, (start.state, betas, base_params),
                                jnp.arange(n_rounds))
    state, betas, base_params = carry
    return state, betas, base_params, jax.tree.map(lambda a: a[-1], infos)


# ------------------------------------------ the same warmup, round by round
def warmup_start(positions, betas, base_params, path: _Path) -> WarmupCarry:
    """One chain's warmup before its first round: positions ``(R, dim)`` at rungs ``betas``."""
    state = new_state(positions, jax.vmap(path.ll)(positions))
    return WarmupCarry(state, betas, base_params, _zero_sums(positions))


def warmup_round(key, g, carry: WarmupCarry, path: _Path, base, base_opts, *,
                 plan: WarmupPlan, n_local: int, target_accept, tunable: bool,
                 adapt_ladder: bool = True) -> WarmupCarry:
    """Round ``g`` (traced, ``0 <= g < plan.total``) of :func:`pt_warmup` ``(key, ...)``.

    Round ``g`` is round ``g % length`` of stretch ``g // length``, from the
    same key as in :func:`pt_warmup`; the last round of a stretch also does
    what follows the stretch there. Rounds ``0 .. plan.total - 1`` from
    :func:`warmup_start`, then :func:`warmup_finish`, give what
    :func:`pt_warmup` returns, bit for bit. Under ``vmap`` over chains keep
    ``g`` unbatched: the end of a stretch is then a real branch, run once
    per stretch.
    """
    length = max(plan.length, 1)
    r, i = g // length, g % length
    state, params, sums, _ = _warm_round(
        jax.random.fold_in(jax.random.fold_in(key, r), i), i, carry.state, carry.params,
        carry.sums, carry.betas, path, base, base_opts, n_local, target_accept, tunable)

    def end(c: WarmupCarry) -> WarmupCarry:
        state, betas, params, _ = _end_stretch(
            *c, r == plan.stretches - 1, length=plan.length, path=path, tunable=tunable,
            adapt_ladder=adapt_ladder,
            step0=default_step(base.name, c.state.positions.shape[1]))
        return WarmupCarry(state, betas, params, _zero_sums(state.positions))

    return jax.lax.cond(i == length - 1, end, lambda c: c,
                        WarmupCarry(state, carry.betas, params, sums))


def warmup_finish(carry: WarmupCarry):
    """``(PTState, betas, base_params)`` after the last round (as :func:`pt_warmup`, no info)."""
    return carry.state, carry.betas, carry.params


def _base_for(options, facts):
    """The base kernel and its options. The support (from the ``support`` option that
    :func:`energymc.sample` fills in, else from the target's ``facts`` given to
    :meth:`PTKernel.bind_target`, else ``"real"``) lets ``base_kernel=None`` pick
    gibbs for discrete targets."""
    opts = dict(options)
    support = opts.get("support") or getattr(facts, "support", None) or "real"
    name = opts["base_kernel"] or ("mala" if support == "real" else "gibbs")
    base = get(name)
    bopts = dict(opts["base_options"] or {})
    if "support" in base.defaults and bopts.get("support") is None and support != "real":
        bopts["support"] = support
    return base, resolve_options(base, bopts, context="pt base_kernel"), support


def _tunable(base) -> bool:
    """Has a step size to tune (a mass matrix too, if ``inverse_mass_matrix`` is an option)."""
    return "step_size" in base.defaults


def initial_base_params(base, base_opts, betas, dim, variance=None, step_size=None):
    """Per-replica base params ``(R, ...)``: a start for warmup (or fixed, ``adapt=False``)."""
    R = betas.shape[0]
    dtype = betas.dtype
    if not _tunable(base):
        p = base.default_params(dim, base_opts)
        return jax.tree.map(lambda a: jnp.broadcast_to(a, (R, *jnp.shape(a))), p)
    if step_size is None:
        step_size = default_step(base.name, dim)
    params = {"step_size": jnp.full((R,), step_size, dtype)}
    if "inverse_mass_matrix" in base.defaults:
        if variance is None:
            # p^beta is about 1/beta times wider than p.
            variance = jnp.ones((R, dim), dtype) / jnp.maximum(betas, 1e-2)[:, None]
        params["inverse_mass_matrix"] = jnp.broadcast_to(jnp.asarray(variance, dtype), (R, dim))
    return params


@dataclasses.dataclass(frozen=True, eq=False)
class PTKernel(Kernel):
    """Parallel tempering over an adaptive ladder; see the module docstring.

    Options: ``replicas`` (8), ``base_kernel`` (``None``: ``mala`` for real,
    ``gibbs`` for discrete targets), ``base_options`` (dict for the base
    kernel), ``beta_min`` (``None``: 0.01 real, 0 discrete), ``local_steps``
    (base steps between swaps, 1), ``adapt_ladder`` (True), ``target_accept``
    (``None``: the base kernel's), ``step_size`` (start, or fixed with
    ``adapt=False``), ``support`` (filled in by :func:`energymc.sample`; pass
    it only when driving the kernel by hand).

    Stats per draw: ``lp``, ``acceptance_rate`` and ``diverging`` of the
    beta = 1 replica, ``swap_acceptance_rate`` (mean over the attempted pairs;
    :attr:`energymc.Run.stats` also holds it as ``swap_acceptance``, its
    deprecated name, for one release),
    ``n_steps`` (gradient evaluations, all replicas) and ``round_trips``
    (1 when a replica reached beta = 1 having visited the hottest rung since
    it last left beta = 1; the sum over draws counts completed round trips).
    """

    name: str = "pt"
    supports: tuple = ("real", "binary", "spin")
    #: Stats that are counts: with ``thin`` they add up over the thinned steps.
    summed_stats: tuple = ("round_trips",)
    defaults: Mapping = dataclasses.field(default_factory=lambda: MappingProxyType(
        {"replicas": 8, "base_kernel": None, "base_options": None, "beta_min": None,
         "local_steps": 1, "adapt_ladder": True, "target_accept": None, "step_size": None,
         "support": None}))
    #: The target's facts (:meth:`bind_target`); ``None`` in the registered kernel.
    facts: KernelFacts | None = None

    def bind_target(self, facts: KernelFacts) -> Kernel:
        # Only the support is used: the replicas see tempered closures, for
        # which the target's local field would be wrong.
        return dataclasses.replace(self, facts=facts)

    def validate(self, options, dim) -> None:
        opts = dict(options)
        R = opts["replicas"]
        if isinstance(R, bool) or not isinstance(R, int) or R < 2:
            raise OptionError(f"pt: replicas must be an integer >= 2; got {R!r}.")
        ls = opts["local_steps"]
        if isinstance(ls, bool) or not isinstance(ls, int) or ls < 1:
            raise OptionError(f"pt: local_steps must be an integer >= 1; got {ls!r}.")
        bm = opts["beta_min"]
        if bm is not None and not (isinstance(bm, (int, float)) and 0 <= bm < 1):
            raise OptionError(f"pt: beta_min must be in [0, 1); got {bm!r}.")
        name = opts["base_kernel"]
        if name is not None:
            if name == "pt":
                raise OptionError("pt: base_kernel cannot be 'pt' itself.")
            if name in ("langevin", "mclmc"):
                raise OptionError(f"pt: base_kernel={name!r} is unadjusted and would bias every "
                                  "replica; use mala, hmc, nuts, barker, rwm or a discrete kernel.")
            base = get(name)
            bo = opts["base_options"]
            if bo is not None and not isinstance(bo, dict):
                raise OptionError("pt: base_options must be a dict of the base kernel's options.")
            bopts = resolve_options(base, dict(bo or {}), context="pt base_kernel")
            base.validate(bopts, dim)

    # ---------------------------------------------------------------- pieces
    def _setup(self, logdensity_fn, options, dim, dtype):
        opts = dict(options)
        base, bopts, support = _base_for(options, self.facts)
        beta_min = opts["beta_min"]
        if beta_min is None:
            beta_min = 0.01 if support == "real" else 0.0
        if support == "real" and beta_min == 0:
            raise OptionError("pt: beta_min=0 makes p^0 improper on a real target; use "
                              "beta_min > 0, or emc.log_partition(method='pt') with a base.")
        path = _Path(lambda z: jnp.zeros((), z.dtype), logdensity_fn, None)
        betas = initial_ladder(opts["replicas"], beta_min, dtype)
        ta = opts["target_accept"]
        if ta is None:
            ta = dict(bopts).get("target_accept")
        return base, bopts, path, betas, ta

    def init(self, key, position, logdensity_fn, params, options):
        base, bopts, path, _, _ = self._setup(logdensity_fn, options, position.shape[0],
                                              position.dtype)
        R = params["betas"].shape[0]
        positions = jnp.broadcast_to(position, (R, position.shape[0]))
        return new_state(positions, jax.vmap(path.ll)(positions))

    def step(self, key, state, logdensity_fn, params, options):
        opts = dict(options)
        base, bopts, path, _, _ = self._setup(logdensity_fn, options, state.position.shape[0],
                                              state.position.dtype)
        new, st = pt_step(key, state, params["betas"], params["base"], path, base, bopts,
                          opts["local_steps"])
        attempted = st["swap_attempted"]
        swap = jnp.sum(jnp.where(attempted, st["swap_acceptance"], 0.0)) / jnp.maximum(
            jnp.sum(attempted), 1)
        stats = {"lp": new.ll[-1], "acceptance_rate": st["acceptance"][-1],
                 "diverging": st["diverging"][-1], "swap_acceptance_rate": swap,
                 "n_steps": st["cost"],
                 "round_trips": st["round_trip"].astype(jnp.int32)}
        if "step_size" in params["base"]:
            stats["step_size"] = params["base"]["step_size"][-1]
        return new, stats

    def warmup(self, key, position, logdensity_fn, num_steps, options, tick=None):
        opts = dict(options)
        dim = position.shape[0]
        base, bopts, path, betas, ta = self._setup(logdensity_fn, options, dim, position.dtype)
        params = initial_base_params(base, bopts, betas, dim, step_size=opts["step_size"])
        positions = jnp.broadcast_to(position, (betas.shape[0], dim))
        state, betas, params, info = pt_warmup(
            key, positions, betas, params, path, base, bopts, num_steps=num_steps,
            n_local=opts["local_steps"], target_accept=ta, tunable=_tunable(base),
            adapt_ladder=opts["adapt_ladder"], tick=tick)
        trace = {}
        return WarmupResult(state, {"betas": betas, "base": params}, trace)

    def default_params(self, dim, options):
        opts = dict(options)
        base_name = opts["base_kernel"] or "mala"
        base = get(base_name)
        bopts = resolve_options(base, dict(opts["base_options"] or {}), context="pt base_kernel")
        beta_min = opts["beta_min"] if opts["beta_min"] is not None else 0.01
        betas = initial_ladder(opts["replicas"], beta_min)
        step = opts["step_size"]
        if _tunable(base) and step is None:
            raise OptionError("pt with adapt=False needs step_size= (the base kernel's step "
                              "size at beta = 1; hotter replicas get step_size / beta).")
        params = initial_base_params(base, bopts, betas, dim, step_size=step)
        if _tunable(base):
            params["step_size"] = params["step_size"] / jnp.sqrt(betas)
        return {"betas": betas, "base": params}


PT = register(PTKernel())
