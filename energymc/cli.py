"""The ``energymc`` command: demo, sample, resume, diagnose, logz.

Uses public names only. Bad arguments, a missing file or function: a one-line
error on stderr and exit status 2, no traceback. ``sample`` and ``diagnose``
exit 1 when the diagnosis finds a problem (a verdict, not an error).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from collections.abc import Callable

__all__ = ["main"]


class CLIError(Exception):
    """A user mistake on the command line; printed as one line, exit 2."""


def _load_function(spec: str) -> Callable:
    """``path/to/file.py:fn`` -> the function ``fn`` defined in that file."""
    if ":" not in spec:
        raise CLIError(f"expected path/to/file.py:function, got {spec!r}")
    path, name = spec.rsplit(":", 1)
    if not os.path.isfile(path):
        raise CLIError(f"no such file: {path}")
    module_spec = importlib.util.spec_from_file_location("_energymc_user_module", path)
    if module_spec is None or module_spec.loader is None:
        raise CLIError(f"cannot import {path} as Python")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        raise CLIError(f"importing {path} raised {type(exc).__name__}: {exc}") from exc
    fn = getattr(module, name, None)
    if fn is None or not callable(fn):
        available = sorted(n for n, v in vars(module).items()
                           if callable(v) and not n.startswith("_") and
                           getattr(v, "__module__", None) == module.__name__)
        defined = ", ".join(available) or "none"
        raise CLIError(f"{path} has no function {name!r}; it defines: {defined}")
    return fn


def _target_from_args(args):
    import jax.numpy as jnp

    import energymc as emc

    fn = _load_function(args.target)
    if args.dim < 1:
        raise CLIError(f"--dim must be >= 1, got {args.dim}")
    init = jnp.full((args.dim,), args.init, dtype=jnp.float32)
    if args.logdensity:
        return emc.Energy.from_logdensity(fn, init=init)
    return emc.Energy(fn, init=init)


def _method_options(pairs: list[str]) -> dict:
    """``--option key=value`` pairs, values parsed as Python literals when possible."""
    import ast

    options = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise CLIError(f"--option needs key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            options[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key] = value
    return options


# What `energymc resume` needs to run `sample` again: every argument of it.
_SAMPLE_ARGS = ("target", "dim", "init", "logdensity", "seed", "option", "method", "chains",
                "draws", "warmup", "out")


def _cmd_sample(args) -> int:
    import energymc as emc
    from energymc import io

    target = _target_from_args(args)
    checkpoint = None
    if args.checkpoint:
        # Recorded in the directory so that `energymc resume DIR` can rebuild this
        # command; paths made absolute so it works from any working directory.
        command = {k: getattr(args, k) for k in _SAMPLE_ARGS}
        path, name = args.target.rsplit(":", 1)
        command["target"] = f"{os.path.abspath(path)}:{name}"
        command["out"] = os.path.abspath(args.out) if args.out else None
        checkpoint = io.Checkpoint(args.checkpoint, command=command)
    run = emc.sample(target, args.method, chains=args.chains, draws=args.draws,
                     warmup=args.warmup, seed=args.seed, checkpoint=checkpoint,
                     **_method_options(args.option))
    print(run)
    diagnosis = emc.diagnose(run, max_rows=10)
    print(diagnosis)
    print(diagnosis.table_text())
    if args.out:
        print(f"wrote {io.save(run, args.out)}")
    # Like `diagnose`: 1 is a verdict (the run is written, but not to be trusted).
    return 0 if diagnosis.ok else 1


def _cmd_resume(args) -> int:
    """Continue the run in a checkpoint directory that ``energymc sample`` started."""
    from energymc import io

    if not os.path.isdir(args.dir):
        raise CLIError(f"no such directory: {args.dir}")
    meta = io.read_meta(args.dir)
    if meta is None:
        raise CLIError(f"{args.dir} holds no checkpoint (no meta.json): nothing to resume. "
                       "Start a run with `energymc sample ... --checkpoint DIR`.")
    command = meta.get("command")
    if command and command.get("job") == "logz":
        values = {k: command.get(k) for k in _LOGZ_ARGS}
        return _cmd_logz(argparse.Namespace(**values, checkpoint=args.dir))
    if not command:
        fp = meta["fingerprint"]
        if fp.get("job") == "logz":
            raise CLIError(
                f"{args.dir} holds a log Z estimate started from Python; the command line cannot "
                "rebuild a Python energy. Resume it from Python by calling emc.log_partition(...) "
                f"again with the same energy and arguments and checkpoint={args.dir!r}.")
        if str(fp.get("job", "")).startswith("learn:"):
            raise CLIError(
                f"{args.dir} holds a training run ({fp['job'][6:]}), which the command line cannot "
                "rebuild. Resume it from Python by calling learner.run(...) again with the same "
                f"learner, data and arguments and checkpoint={args.dir!r}.")
        raise CLIError(
            f"{args.dir} holds a run started from Python (energy {fp['target']!r}); the "
            "command line cannot rebuild a Python energy. Resume it from Python with the "
            f"same energy and arguments: emc.sample(target, {fp['method']!r}, "
            f"chains={fp['chains']}, warmup={fp['warmup']}, seed={fp['seed']!r}, "
            f"thin={fp['thin']}, draws=..., checkpoint={args.dir!r})")
    values = {k: command.get(k) for k in _SAMPLE_ARGS}
    if args.draws is not None:
        values["draws"] = args.draws
    if args.out is not None:
        values["out"] = args.out
    return _cmd_sample(argparse.Namespace(**values, checkpoint=args.dir))


def _cmd_diagnose(args) -> int:
    import energymc as emc
    from energymc import io

    try:
        idata = io.load(args.path)
    except FileNotFoundError as exc:
        raise CLIError(str(exc)) from exc
    except (OSError, ValueError) as exc:
        # xarray's message may run to several lines (install hints): keep the first.
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise CLIError(f"{args.path} is not a netCDF file written by energymc: {first}") from exc
    if args.rows < 0:
        raise CLIError(f"--rows must be >= 0, got {args.rows}")
    try:
        diagnosis = emc.diagnose(idata, max_rows=args.rows)
    except ValueError as exc:
        raise CLIError(f"{args.path}: {exc}") from exc
    print(diagnosis)
    print(diagnosis.table_text())
    return 0 if diagnosis.ok else 1


# What `energymc resume` needs to run `logz` again.
_LOGZ_ARGS = ("target", "dim", "init", "logdensity", "seed", "option", "method")


def _cmd_logz(args) -> int:
    import energymc as emc
    from energymc import io

    target = _target_from_args(args)
    checkpoint = None
    if getattr(args, "checkpoint", None):
        command = {"job": "logz", **{k: getattr(args, k) for k in _LOGZ_ARGS}}
        path, name = args.target.rsplit(":", 1)
        command["target"] = f"{os.path.abspath(path)}:{name}"
        checkpoint = io.Checkpoint(args.checkpoint, command=command)
    est = emc.log_partition(target, method=args.method, seed=args.seed, checkpoint=checkpoint,
                            **_method_options(args.option))
    print(est)
    return 0


def _cmd_demo(args) -> int:
    """Sample a banana and Neal's funnel with NUTS; print, save, plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import energymc as emc
    from energymc import io
    from energymc.diagnostics import plot_figure
    from energymc.models import reference

    os.makedirs(args.out, exist_ok=True)
    draws = 200 if args.quick else 1000
    for target in (reference.banana(), reference.funnel(dim=10)):
        name = target.name
        print(f"\n=== {name}: NUTS, 4 chains x {draws} draws (dim {target.dim}) ===")
        t0 = time.perf_counter()
        run = emc.sample(target, "nuts", chains=4, draws=draws, warmup=draws, seed=0,
                         progress=args.progress)
        print(run)
        print(run.summary(var_names=None).head(4).to_string())
        diagnosis = emc.diagnose(run, max_rows=4)
        print(diagnosis)
        nc = io.save(run, os.path.join(args.out, f"{name}.nc"))
        fig = plot_figure(emc.plot_trace(run, compact=True))
        fig.suptitle(f"energymc demo: {name} (NUTS)")
        png = os.path.join(args.out, f"{name}_trace.png")
        fig.savefig(png, dpi=80)
        plt.close(fig)
        print(f"wrote {nc} and {png} ({time.perf_counter() - t0:.1f}s)")
    print("\nBoth targets are curved on purpose: the funnel's neck defeats NUTS with a "
          "diagonal metric, and the banana's tails cost it a few divergences. The diagnosis "
          "says so and suggests the fix (reparametrise, or raise target_accept).")
    return 0


def _version() -> str:
    """The installed distribution's version (read from package metadata in ``_util``)."""
    from energymc._util import version

    return version()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="energymc",
                                description="Sample exp(-E(x)), estimate log Z, diagnose chains.")
    p.add_argument("--version", action="version", version=f"energymc {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="sample a banana and Neal's funnel with NUTS")
    demo.add_argument("--out", default="energymc-demo", help="folder for .nc and .png files")
    demo.add_argument("--quick", action="store_true", help="fewer draws")
    demo.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    demo.set_defaults(func=_cmd_demo)

    def add_target(sp):
        sp.add_argument("target", help="path/to/file.py:fn, fn(x) -> energy for x of shape (dim,)")
        sp.add_argument("--dim", type=int, required=True, help="dimension of x")
        sp.add_argument("--init", type=float, default=0.0, help="initial value of every x_i")
        sp.add_argument("--logdensity", action="store_true",
                        help="fn returns a log-density (energy = -fn)")
        sp.add_argument("--seed", type=int, default=0)
        sp.add_argument("--option", action="append", metavar="KEY=VALUE",
                        help="method option, e.g. --option target_accept=0.9 (repeatable)")

    s = sub.add_parser("sample", help="sample an energy defined in a Python file; exit 1 if "
                                      "the diagnosis finds problems")
    add_target(s)
    s.add_argument("--method", default="nuts")
    s.add_argument("--chains", type=int, default=4)
    s.add_argument("--draws", type=int, default=1000)
    s.add_argument("--warmup", type=int, default=1000)
    s.add_argument("--out", help="write the run to this netCDF file")
    s.add_argument("--checkpoint", metavar="DIR",
                   help="stream the run to DIR as it goes; rerunning the same command "
                        "resumes an interrupted run from there")
    s.set_defaults(func=_cmd_sample)

    r = sub.add_parser("resume", help="continue a run that `sample --checkpoint DIR` or "
                                      "`logz --checkpoint DIR` started (after an "
                                      "interruption, or for more draws)")
    r.add_argument("dir", metavar="DIR", help="the checkpoint directory")
    r.add_argument("--draws", type=int, help="draws per chain in all (default: as started); "
                                             "more than before extends the run")
    r.add_argument("--out", help="write the run to this netCDF file (default: as started)")
    r.set_defaults(func=_cmd_resume)

    d = sub.add_parser("diagnose", help="diagnose a run saved as netCDF; exit 1 if problems "
                                        "are found")
    d.add_argument("path")
    d.add_argument("--rows", type=int, default=20,
                   help="table rows shown (worst first); every variable is judged")
    d.set_defaults(func=_cmd_diagnose)

    z = sub.add_parser("logz", help="estimate log Z of an energy defined in a Python file")
    add_target(z)
    z.add_argument("--method", default="ais")
    z.add_argument("--checkpoint", metavar="DIR",
                   help="save each replicate to DIR as it finishes; rerunning the same command "
                        "(or `energymc resume DIR`) resumes an interrupted estimate")
    z.set_defaults(func=_cmd_logz)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``energymc`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    from energymc.errors import EnergymcError

    try:
        return args.func(args)
    except (CLIError, EnergymcError) as exc:
        print(f"energymc {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
