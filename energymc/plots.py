"""Pictures of energies, estimates, learners and states (matplotlib).

Every function draws on matplotlib axes and returns them: never a Figure,
because a notebook shows a returned Figure once as the cell's value and once
more when the cell ends. Each takes ``ax=None`` (``axes=None`` where it needs
two): with ``None`` it makes a new figure, otherwise it draws on the axes it is
given and creates no figure. Trace, rank, energy and pair plots of chains are
ArviZ's, exposed by :mod:`energymc.diagnostics`; this module never imports
ArviZ.

matplotlib is imported inside the functions, so ``import energymc`` does not
import it, and the backend is whatever the user (or the notebook) chose.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from energymc.errors import OptionError

__all__ = ["plot_images", "plot_landscape", "plot_lattice", "plot_logz", "plot_losses"]


# ---------------------------------------------------------------- helpers
def _new_axes(ax, *, figsize=None):
    """``ax`` checked, or one new axes on a new figure."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=figsize)
        return ax
    _check_axes(ax, "ax")
    return ax


def _check_axes(ax, name: str) -> None:
    from matplotlib.axes import Axes

    if not isinstance(ax, Axes):
        raise OptionError(f"{name}= must be a matplotlib Axes (e.g. from plt.subplots()) or "
                          f"None for a new figure; got {type(ax).__name__}.")


def _finite_array(values, what: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise OptionError(f"{what} must be numbers (an array); got {type(values).__name__}."
                          ) from exc
    return arr


# -------------------------------------------------------------- landscape
def _parse_bounds(bounds) -> tuple[float, float, float, float]:
    try:
        flat = np.asarray(bounds, dtype=float).ravel()
    except (TypeError, ValueError):
        flat = np.array([])
    if flat.shape != (4,) or not np.all(np.isfinite(flat)):
        raise OptionError(
            "bounds must be four finite numbers (xmin, xmax, ymin, ymax) or "
            f"((xmin, xmax), (ymin, ymax)); got {bounds!r}.")
    x0, x1, y0, y1 = (float(v) for v in flat)
    if not (x0 < x1 and y0 < y1):
        raise OptionError(f"bounds need xmin < xmax and ymin < ymax; got {bounds!r}.")
    return x0, x1, y0, y1


def _grid_energy(energy_or_fn, pts: np.ndarray) -> np.ndarray:
    """Energies ``(n,)`` at grid points ``pts`` ``(n, 2)``."""
    import jax
    import jax.numpy as jnp

    from energymc.energy import Energy

    if isinstance(energy_or_fn, Energy):
        if energy_or_fn.support != "real" or energy_or_fn.dim != 2:
            raise OptionError(
                "plot_landscape draws a continuous target of dimension 2; this Energy has "
                f"dim={energy_or_fn.dim}, support={energy_or_fn.support!r}. For a higher "
                "dimension, plot a 2-d slice: plot_landscape(lambda xy: target.energy(...), ...).")
        fn = energy_or_fn.flat_energy
    elif callable(energy_or_fn):
        fn = energy_or_fn
    else:
        raise OptionError("plot_landscape needs an emc.Energy of dimension 2 or a function "
                          f"E(xy) of a (2,) array; got {type(energy_or_fn).__name__}.")
    values = jax.jit(jax.vmap(fn))(jnp.asarray(pts, dtype=jnp.result_type(float)))
    values = np.asarray(values, dtype=float)
    if values.shape != (pts.shape[0],):
        raise OptionError(
            f"the energy must return a scalar for one (2,) point; it returned shape "
            f"{values.shape[1:]} per point.")
    return values


def _draw_points(draws) -> np.ndarray:
    """``(n, 2)`` points from a Run, a LogZ or an array ``(..., 2)``."""
    if hasattr(draws, "flat_draws"):  # a Run: positions the kernel saw
        draws = draws.flat_draws
    elif hasattr(draws, "particles") and hasattr(draws, "weights"):  # a LogZ
        draws = draws.resample(seed=0)
    arr = _finite_array(draws, "draws")
    if arr.ndim < 1 or arr.shape[-1] != 2:
        raise OptionError(f"draws must have a last axis of length 2 (x, y); got shape {arr.shape}.")
    return arr.reshape(-1, 2)


def plot_landscape(energy_or_fn: Any, bounds, draws: Any = None, ax=None, *,
                   resolution: int = 120, kind: str = "density", levels: int = 30,
                   cmap: str = "viridis", max_points: int = 4000):
    """A 2-d energy landscape, optionally with draws on top.

    Parameters
    ----------
    energy_or_fn
        An :class:`energymc.Energy` of dimension 2, or a JAX function
        ``E(xy) -> scalar`` of one point ``xy`` ``(2,)`` (vectorised here
        with ``jax.vmap``; e.g. ``lambda xy: energy_fn(params, xy)``).
    bounds
        ``(xmin, xmax, ymin, ymax)`` or ``((xmin, xmax), (ymin, ymax))``.
    draws
        ``None``, a :class:`energymc.Run` (all chains), a :class:`energymc.LogZ`
        (its weighted particles, resampled) or an array ``(..., 2)``.
    ax
        Axes to draw on, or ``None`` for a new figure.
    resolution
        Grid points per side.
    kind
        ``"density"`` shades ``exp(-E)`` (rescaled to a maximum of 1), where
        modes stand out; ``"energy"`` shades ``E`` itself.
    levels, cmap
        Contour levels and colour map of the shading.
    max_points
        At most this many draws are scattered (evenly thinned), so that a
        long run stays readable.

    Returns
    -------
    matplotlib.axes.Axes
    """
    x0, x1, y0, y1 = _parse_bounds(bounds)
    if kind not in ("density", "energy"):
        raise OptionError(f"kind must be 'density' or 'energy'; got {kind!r}.")
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2:
        raise OptionError(f"resolution must be an integer >= 2; got {resolution!r}.")
    points = None if draws is None else _draw_points(draws)
    ax = _new_axes(ax)
    xs, ys = np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution)
    xx, yy = np.meshgrid(xs, ys)
    energy = _grid_energy(energy_or_fn, np.stack([xx.ravel(), yy.ravel()], 1))
    energy = np.where(np.isfinite(energy), energy, np.nan).reshape(xx.shape)
    if np.all(np.isnan(energy)):
        raise OptionError(f"the energy is not finite anywhere in bounds {bounds!r}.")
    if kind == "density":
        shade = np.exp(-(energy - np.nanmin(energy)))
        label = "exp(-E)"
    else:
        shade = energy
        label = "E(x)"
    # A masked array leaves non-finite energies blank instead of failing contourf.
    ax.contourf(xx, yy, np.ma.masked_invalid(shade), levels=levels, cmap=cmap)
    if points is not None:
        step = max(1, math.ceil(len(points) / max_points))
        ax.scatter(points[::step, 0], points[::step, 1], s=3, c="white", edgecolors="black",
                   linewidths=0.2, alpha=0.7, label="draws")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("x[0]")
    ax.set_ylabel("x[1]")
    name = getattr(energy_or_fn, "name", getattr(energy_or_fn, "__name__", "energy"))
    ax.set_title(f"{label}: {name}")
    return ax


# ------------------------------------------------------------------- log Z
def plot_logz(est, axes=None):
    """The annealing schedule and the per-stage weight ESS and acceptance of a log Z estimate.

    Parameters
    ----------
    est
        A :class:`energymc.LogZ`; its ``stages`` dict (``beta``, ``ess``,
        ``acceptance_rate``, for ``pt`` ``swap_acceptance_rate``, each
        ``(num_stages,)``)
        is what is drawn.
    axes
        Two matplotlib axes, or ``None`` for a new figure with two panels.

    Returns
    -------
    numpy.ndarray
        The two axes: ``[schedule, per-stage ESS and acceptance]``.
    """
    stages = getattr(est, "stages", None)
    if not isinstance(stages, dict):
        raise OptionError(f"plot_logz needs an energymc.LogZ; got {type(est).__name__}.")
    beta = np.asarray(stages.get("beta", ()), dtype=float)
    if beta.size == 0:
        raise OptionError(
            f"this log Z estimate (method {getattr(est, 'method', '?')!r}) has no per-stage "
            "record to plot (est.stages has no 'beta').")
    if axes is None:
        import matplotlib.pyplot as plt

        _, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    else:
        if len(axes) != 2:
            raise OptionError(f"axes= must hold two matplotlib Axes; got {len(axes)}.")
        for a in axes:
            _check_axes(a, "axes")
    axes = np.asarray(axes, dtype=object).ravel()
    stage = np.arange(1, beta.size + 1)
    sched, per_stage = axes
    sched.plot(stage, beta, marker="." if beta.size <= 60 else None)
    sched.set_xlabel("stage" if getattr(est, "method", "") != "pt" else "rung")
    sched.set_ylabel("inverse temperature β")
    if np.all(beta > 0) and beta.max() / beta.min() > 100:
        sched.set_yscale("log")  # geometric schedules are straight lines on a log scale
    # A flagged estimate gets no precise-looking "x ± se" in the title.
    if getattr(est, "reliable", True):
        title = f"log Z = {est.log_z:.3f} ± {est.stderr:.3f}"
    else:
        title = "log Z flagged: " + ("see est.problems" if "no reliable" in est.estimate_text
                                      else est.estimate_text.split(" (")[0])
    sched.set_title(f"{getattr(est, 'method', '')}: {title}", fontsize="medium")
    drew = False
    n = max(int(getattr(est, "num_particles", 0)), 1)
    if "ess" in stages:
        per_stage.plot(stage, np.asarray(stages["ess"], dtype=float) / n,
                       label="weight ESS / particles")
        drew = True
    for key, label in (("acceptance_rate", "move acceptance"),
                       ("swap_acceptance_rate", "swap acceptance")):
        if key in stages:
            per_stage.plot(stage, np.asarray(stages[key], dtype=float), label=label)
            drew = True
    per_stage.set_xlabel(sched.get_xlabel())
    per_stage.set_ylim(0, 1.05)
    per_stage.set_ylabel("fraction")
    if drew:
        per_stage.legend(loc="lower left", fontsize="small")
    return axes


# ----------------------------------------------------------------- losses
def _running_mean(x: np.ndarray, width: int) -> np.ndarray:
    kernel = np.ones(width) / width
    return np.convolve(x, kernel, mode="valid")


def _heldout_pairs(heldout, result, num_steps: int):
    """``(steps, values)`` of a held-out curve, or ``None``."""
    if heldout is None:
        history = getattr(result, "history", None) or {}
        if "eval" in history and "eval_step" in history:
            values = np.asarray(history["eval"], dtype=float)
            steps = np.asarray(history["eval_step"], dtype=float)
            return (steps, values) if values.ndim == 1 and values.size else None
        return None
    if isinstance(heldout, tuple) and len(heldout) == 2:
        steps = _finite_array(heldout[0], "heldout steps").ravel()
        values = _finite_array(heldout[1], "heldout values").ravel()
        if steps.shape != values.shape:
            raise OptionError(f"heldout=(steps, values) need the same length; got "
                              f"{steps.size} and {values.size}.")
        return steps, values
    values = _finite_array(heldout, "heldout").ravel()
    if values.size != num_steps:
        raise OptionError(
            f"heldout has {values.size} values but there are {num_steps} losses; pass "
            "heldout=(steps, values) to say at which updates it was measured.")
    return np.arange(num_steps, dtype=float), values


def plot_losses(result_or_array: Any, heldout: Any = None, ax=None, *, smooth: int | None = None,
                heldout_label: str = "held-out"):
    """A learner's loss per update and, on a second y axis, a held-out curve.

    Parameters
    ----------
    result_or_array
        A :class:`energymc.learn.LearnResult` (its ``losses``; its
        ``history["eval_step"]``/``history["eval"]`` give the held-out curve
        when ``heldout`` is ``None``) or an array of losses ``(num_steps,)``.
    heldout
        ``(steps, values)``, or an array with one value per update; e.g. a
        held-out log-likelihood by AIS every few hundred updates.
    ax
        Axes to draw on, or ``None`` for a new figure.
    smooth
        Width of the running mean drawn over the raw losses (default: about
        a fiftieth of the run; ``1`` draws the raw losses only).
    heldout_label
        y-axis label of the held-out curve.

    Returns
    -------
    matplotlib.axes.Axes
        The losses' axes; the held-out curve, if any, is on ``ax.twinx()``
        (in the same figure).
    """
    losses = getattr(result_or_array, "losses", result_or_array)
    losses = _finite_array(losses, "losses")
    if losses.ndim != 1 or losses.size == 0:
        raise OptionError(f"losses must be a non-empty 1-d array (num_steps,); got shape "
                          f"{losses.shape}. For restarts plot one row at a time.")
    pairs = _heldout_pairs(heldout, result_or_array, losses.size)
    if smooth is None:
        smooth = max(1, losses.size // 50)
    if isinstance(smooth, bool) or not isinstance(smooth, int) or smooth < 1:
        raise OptionError(f"smooth must be a positive integer; got {smooth!r}.")
    ax = _new_axes(ax)
    steps = np.arange(losses.size)
    ax.plot(steps, losses, color="C0", alpha=0.35 if smooth > 1 else 1.0, lw=0.8, label="loss")
    if 1 < smooth <= losses.size:
        ax.plot(steps[smooth - 1:], _running_mean(losses, smooth), color="C0", lw=1.8,
                label=f"loss (mean of {smooth})")
    ax.set_xlabel("update")
    ax.set_ylabel("loss")
    if pairs is not None:
        right = ax.twinx()
        right.plot(pairs[0], pairs[1], color="C1", marker="o", ms=3, label=heldout_label)
        right.set_ylabel(heldout_label, color="C1")
        right.tick_params(axis="y", colors="C1")
    return ax


# ---------------------------------------------------------- image grids
def _as_images(images, shape) -> np.ndarray:
    """``(n, h, w)`` float images from ``(n, h*w)`` or ``(n, h, w)``.

    A 2-d array is always read as flat images, one per row (64 digits of 8x8
    pixels are ``(64, 64)``, not one 64x64 picture).
    """
    arr = _finite_array(images, "images")
    if arr.ndim == 2 and shape is None:
        side = math.isqrt(arr.shape[1])
        if side * side != arr.shape[1]:
            raise OptionError(
                f"images of {arr.shape[1]} pixels are not square; pass shape=(height, width).")
        shape = (side, side)
    if shape is not None:
        shape = tuple(int(s) for s in shape)
        fits = (len(shape) == 2 and arr.ndim >= 1
                and (arr.shape[-1] == math.prod(shape) or arr.shape[-2:] == shape))
        if not fits:
            raise OptionError(f"shape={shape} does not match images in an array of shape "
                              f"{arr.shape}; the last axis (or two) must hold one image.")
        return arr.reshape(-1, *shape)
    if arr.ndim == 3:
        return arr
    raise OptionError(f"images must be (n, height*width) or (n, height, width); got shape "
                      f"{arr.shape}. For one image pass image[None].")


def _mosaic(imgs: np.ndarray, ncols: int, pad: int) -> np.ndarray:
    """Images tiled row by row with ``pad`` pixels between them.

    The padding is masked (drawn as the axes background, not as a colour of
    the map): a frame at either end of a diverging colour map would read as data.
    """
    n, h, w = imgs.shape
    nrows = math.ceil(n / ncols)
    out = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad), np.nan)
    for i, img in enumerate(imgs):
        r, c = divmod(i, ncols)
        out[pad + r * (h + pad):pad + r * (h + pad) + h,
            pad + c * (w + pad):pad + c * (w + pad) + w] = img
    return np.ma.masked_invalid(out)


def plot_images(images: Any, shape: Sequence[int] | None = None, ncols: int | None = None,
                ax=None, *, scale: str = "all", cmap: str = "gray", max_images: int = 100,
                title: str | None = None, vmin: float | None = None,
                vmax: float | None = None):
    """A grid of small images in one axes: RBM filters, model samples, digits.

    Parameters
    ----------
    images
        ``(n, height*width)`` (with ``shape=``, or square images), or
        ``(n, height, width)``. RBM filters are the columns of the weight
        matrix: pass ``W.T`` (``(n_hidden, n_visible)``).
    shape
        ``(height, width)`` of one image when ``images`` is flat.
    ncols
        Images per row (default: about the square root of the number shown).
    ax
        Axes to draw on, or ``None`` for a new figure.
    scale
        ``"all"``: one grey scale for every image (samples, data);
        ``"each"``: each image stretched to its own range (filters, whose
        scales differ). With negative values ``"each"`` divides each image
        by its largest absolute value, so that zero stays at the middle of
        a diverging colour map (e.g. ``cmap="RdBu_r"``).
    cmap
        Colour map.
    max_images
        Only the first ``max_images`` images are shown.
    title
        Axes title.
    vmin, vmax
        Ends of the grey scale with ``scale="all"`` (default: the smallest
        and largest pixel shown); e.g. ``0`` and ``1`` for probabilities.

    Returns
    -------
    matplotlib.axes.Axes
    """
    imgs = _as_images(images, shape)
    if imgs.shape[0] == 0:
        raise OptionError("images is empty.")
    if scale not in ("all", "each"):
        raise OptionError(f"scale must be 'all' or 'each'; got {scale!r}.")
    imgs = imgs[:max_images]
    n = imgs.shape[0]
    if ncols is None:
        ncols = math.ceil(math.sqrt(n))
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise OptionError(f"ncols must be a positive integer; got {ncols!r}.")
    ncols = min(ncols, n)
    if scale == "each" and np.nanmin(imgs) < 0:
        size = np.nanmax(np.abs(imgs), axis=(1, 2), keepdims=True)
        imgs = imgs / np.where(size > 0, size, 1.0)
        vmin, vmax = -1.0, 1.0
    elif scale == "each":
        lo = np.nanmin(imgs, axis=(1, 2), keepdims=True)
        span = np.nanmax(imgs, axis=(1, 2), keepdims=True) - lo
        imgs = (imgs - lo) / np.where(span > 0, span, 1.0)
        vmin, vmax = 0.0, 1.0
    else:
        vmin = float(np.nanmin(imgs)) if vmin is None else float(vmin)
        vmax = float(np.nanmax(imgs)) if vmax is None else float(vmax)
    ax = _new_axes(ax)
    # One mosaic, one imshow: a hundred filters stay one artist, fast to draw.
    ax.imshow(_mosaic(imgs, ncols, pad=1), cmap=cmap, vmin=vmin, vmax=vmax,
              interpolation="nearest")
    ax.set_axis_off()
    if title is not None:
        ax.set_title(title)
    return ax


def plot_lattice(spins: Any, ax=None, *, shape: Sequence[int] | None = None,
                 ncols: int | None = None, title: str | None = None, cmap: str = "coolwarm"):
    """Snapshots of spin (-1/+1) or binary (0/1) states on a 1-d or 2-d lattice.

    Parameters
    ----------
    spins
        One lattice ``(L, M)`` (or a chain ``(L,)``), or several snapshots
        ``(n, L, M)``, e.g. ``run.draws[0, ::100]`` of an Ising run; flat
        states ``(n, L*M)`` need ``shape=``.
    ax
        Axes to draw on, or ``None`` for a new figure.
    shape
        ``(L, M)`` of one lattice when the states are flat.
    ncols
        Snapshots per row.
    title
        Axes title (default: the magnetisation of a single snapshot).
    cmap
        Colour map; -1 and +1 (or 0 and 1) take its two ends.

    Returns
    -------
    matplotlib.axes.Axes
    """
    arr = _finite_array(spins, "spins")
    if shape is not None:
        arr = _as_images(arr, shape)
    elif arr.ndim == 1:
        arr = arr[None, None, :]
    elif arr.ndim == 2:
        arr = arr[None]
    elif arr.ndim != 3:
        raise OptionError(f"spins must be (L,), (L, M) or (n, L, M); got shape {arr.shape}. "
                          "Index a run's draws first, e.g. run.draws[0, -1].")
    values = np.unique(arr)
    if np.all(np.isin(values, (-1.0, 1.0))):
        vmin, vmax = -1.0, 1.0
    elif np.all(np.isin(values, (0.0, 1.0))):
        vmin, vmax = 0.0, 1.0
    else:
        raise OptionError(f"spins must be -1/+1 or 0/1 states; found values {values[:5]}.")
    n = arr.shape[0]
    ncols = min(n, ncols or math.ceil(math.sqrt(n)))
    ax = _new_axes(ax)
    ax.imshow(_mosaic(arr, ncols, pad=1 if n > 1 else 0), cmap=cmap, vmin=vmin, vmax=vmax,
              interpolation="nearest")
    ax.set_axis_off()
    if title is None and n == 1:
        m = float(np.mean(arr)) if vmin < 0 else float(np.mean(2 * arr - 1))
        title = f"magnetisation {m:+.2f}"
    if title is not None:
        ax.set_title(title)
    return ax

