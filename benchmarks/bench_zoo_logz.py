"""log Z under default options on the zoo's held-out half (``benchmarks/zoo.py``).

For every method (``default`` is ``emc.log_partition(target)``, the others
``method=NAME`` with nothing else set) and every target of the chosen half,
the script runs ``--seeds`` seeds and reports:

* ``med|err|``: median absolute error in nats against the exact log Z;
* ``cover``: fraction of runs with ``|err| <= 3 stderr`` **or** flagged
  (``reliable=False``): a flagged run is not a silent miss;
* ``silent``: runs with ``|err| > 3 stderr`` and ``reliable=True`` (must be 0);
* ``flagged``: runs flagged ``reliable=False``;
* ``cold s`` / ``warm s``: wall seconds of the first run (compilation
  included) and the median of the others (same process, so compiled code is
  reused), on this machine's CPUs;
* bdmc only: ``bracketed`` (``lower <= truth <= upper``, the reported
  bounds: 95% confidence bounds since 2026-12-04, the raw ends before; an
  upper bound the checks withdrew is ``+inf``, so ``[lower, +inf)`` counts
  as covering when ``lower <= truth``; since 2026-12-05),
  ``raw ends`` (``info["lower_raw"] <= truth <= info["upper_raw"]``, the
  forward and reverse estimates themselves) and ``inverted`` (``upper <
  lower``, reported bounds), as ``reliable/flagged`` (a reliable inverted
  bracket is silent; must be 0), ``finite`` (brackets with a finite upper
  end, as ``reliable/flagged``) and ``med width`` (median ``upper - lower``
  of those).

``--z-scan 1.645,1.96,2.33`` adds the reported bracket's coverage had the raw
ends been moved by each ``z`` (``LogZ.interval(z)``), for choosing the
constant; ``--from-json FILE`` re-summarises saved records without running.

Defaults were chosen on ``zoo.TUNING`` only; run this on ``--half held_out``
(the default) to report. Usage::

    python benchmarks/bench_zoo_logz.py --seeds 3
    python benchmarks/bench_zoo_logz.py --methods default,smc --targets mixture6d3,wells8
    python benchmarks/bench_zoo_logz.py --half tuning --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import zoo  # noqa: E402

import energymc as emc  # noqa: E402

_DISCRETE_OK = ("default", "ais", "bdmc", "pt")


def run_one(entry, target, method, seed, base=None):
    t0 = time.perf_counter()
    kw = {} if base is None else {"base": base}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "default":
            est = emc.log_partition(target, seed=seed, **kw)
        else:
            est = emc.log_partition(target, method=method, seed=seed, **kw)
    dt = time.perf_counter() - t0
    err = est.log_z - entry.log_z
    return {"target": entry.name, "family": entry.family, "dim": entry.dim, "method": method,
            "seed": seed, "log_z": est.log_z, "truth": entry.log_z, "err": err,
            "stderr": est.stderr, "reliable": est.reliable, "seconds": dt,
            "lower": est.lower, "upper": est.upper, "grad_evals": est.num_grad_evals,
            "lower_raw": est.info.get("lower_raw"), "upper_raw": est.info.get("upper_raw"),
            "upper_margin_stderr": est.info.get("upper_margin_stderr"),
            "upper_void": est.info.get("upper_void"),
            "outskirts": {k: v for k, v in est.info.get("checks", {}).get("outskirts", {}).items()
                          if k in ("trend", "upper", "stderr_before", "seconds")},
            "silent": bool(est.reliable and abs(err) > 3 * est.stderr),
            "mode_check": {k: v for k, v in est.info.get("checks", {}).get("modes", {}).items()
                           if k in ("status", "flag", "modes", "unreached", "log_z", "stderr",
                                    "ess", "draws", "deepest", "energy_q01", "depth",
                                    "depth_limit")},
            "exact_samples": est.info.get("exact_samples"),
            "mode_fit": est.info.get("mode_fit"),
            "replicate_check": est.info.get("checks", {}).get("replicates"),
            "replicate_stderr": est.info.get("replicate_stderr"),
            "lower_stderr": est.info.get("lower_stderr"),
            "upper_stderr": est.info.get("upper_stderr"),
            "replicates": None if est.replicates is None else list(map(float, est.replicates)),
            "problems": [p[:120] for p in est.problems],
            # base="auto"'s reruns: the first run (before them) is what the call
            # returned without them, so one run gives both sides of a before/after.
            "escalated": "escalation" in est.info,
            "fallback": _fallback_record(est.info.get("fallback"), entry.log_z),
            "widened": _widened_record(est.info.get("widened"), entry.log_z),
            # Whole sentences: which check fired (the BDMC bound rule reads them).
            "problems_full": list(est.problems)}


def _fallback_record(fb, truth):
    """A fallback's first run as a row's ``before`` (or ``None``); ``second_*`` describe
    the fallback's own run (parallel tempering or nested sampling: ``method``)."""
    if fb is None:
        return None
    first = fb["first"]
    err = first["log_z"] - truth
    return {"log_z": first["log_z"], "stderr": first["stderr"], "err": err,
            "reliable": first["reliable"], "seconds": first["seconds"],
            "silent": bool(first["reliable"] and abs(err) > 3 * first["stderr"]),
            "mode_check": first["mode_check"], "disagree": fb["disagree"],
            "trigger": fb.get("trigger"), "problems": list(first["problems"]),
            "grad_evals": first["num_grad_evals"], "method": fb["method"],
            "second_grad_evals": fb[fb["method"]]["num_grad_evals"],
            "second_seconds": fb[fb["method"]]["seconds"],
            "second_problems": [p[:120] for p in fb[fb["method"]]["problems"]]}


def _widened_record(widened, truth):
    """The first run of a call that ran again from the default Gaussian (or ``None``)."""
    if widened is None:
        return None
    first = widened["first"]
    return {"log_z": first["log_z"], "stderr": first["stderr"], "err": first["log_z"] - truth,
            "reliable": first["reliable"], "seconds": first["seconds"],
            "second_s": widened["second_s"]}


def summarise(rows):
    out = []
    keys = sorted({(r["method"], r["target"]) for r in rows},
                  key=lambda k: (k[0], [e.name for e in zoo.ZOO].index(k[1])))
    for method, name in keys:
        rs = [r for r in rows if r["method"] == method and r["target"] == name]
        errs = np.abs([r["err"] for r in rs])
        cover = np.mean([abs(r["err"]) <= 3 * r["stderr"] or not r["reliable"] for r in rs])
        secs = [r["seconds"] for r in rs]
        bracket = [r for r in rs if r["lower"] is not None]
        out.append({"method": method, "target": name, "dim": rs[0]["dim"], "runs": len(rs),
                    "med_abs_err": float(np.median(errs)), "coverage": float(cover),
                    "silent": int(sum(r["silent"] for r in rs)),
                    "flagged": int(sum(not r["reliable"] for r in rs)),
                    "cold_s": secs[0],
                    "warm_s": float(np.median(secs[1:])) if len(secs) > 1 else math.nan,
                    "bracketed": (int(sum(r["lower"] <= r["truth"] <= r["upper"]
                                          for r in bracket)) if bracket else None),
                    "raw": (int(sum(r.get("lower_raw") is not None
                                    and r["lower_raw"] <= r["truth"] <= r["upper_raw"]
                                    for r in bracket)) if bracket else None),
                    "inverted": ((int(sum(r["reliable"] and r["upper"] < r["lower"]
                                          for r in bracket)),
                                  int(sum(not r["reliable"] and r["upper"] < r["lower"]
                                          for r in bracket))) if bracket else None),
                    # Brackets with both ends finite (an upper end withdrawn by the
                    # checks is +inf), as reliable/flagged, and their median width.
                    "finite": ((int(sum(r["reliable"] and math.isfinite(r["upper"])
                                        for r in bracket)),
                                int(sum(not r["reliable"] and math.isfinite(r["upper"])
                                        for r in bracket))) if bracket else None),
                    "width": (float(np.median([r["upper"] - r["lower"] for r in bracket
                                               if math.isfinite(r["upper"])]))
                              if bracket and any(math.isfinite(r["upper"]) for r in bracket)
                              else None)})
    return out


def z_coverage(rows, zs):
    """Per bdmc target: runs whose raw ends moved ``z`` stderrs out hold the truth."""
    out = {}
    for r in rows:
        if r.get("lower_raw") is None:
            continue
        hits = out.setdefault(r["target"], [0] * len(zs) + [0])
        hits[-1] += 1
        for i, z in enumerate(zs):
            lo = r["lower_raw"] - z * r["lower_stderr"]
            # A withdrawn upper bound stays +inf at every z (LogZ.interval).
            hi = math.inf if r.get("upper_void") else r["upper_raw"] + z * r["upper_margin_stderr"]
            hits[i] += int(lo <= r["truth"] <= hi)
    return out


def print_tables(rows, zs):
    print()
    print("| method | target | dim | runs | med abs err | coverage | silent | flagged | "
          "cold s | warm s | bracketed | raw ends | inverted (reliable/flagged) | "
          "finite (reliable/flagged) | med width |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for s in summarise(rows):
        br = "" if s["bracketed"] is None else f"{s['bracketed']}/{s['runs']}"
        raw = "" if s["bracketed"] is None else f"{s['raw']}/{s['runs']}"
        inv = "" if s["bracketed"] is None else "{}/{}".format(*s["inverted"])
        fin = "" if s["bracketed"] is None else "{}/{}".format(*s["finite"])
        wid = "" if s.get("width") is None else f"{s['width']:.2f}"
        print(f"| {s['method']} | {s['target']} | {s['dim']} | {s['runs']} | "
              f"{s['med_abs_err']:.3f} | {s['coverage']:.2f} | {s['silent']} | {s['flagged']} | "
              f"{s['cold_s']:.1f} | {s['warm_s']:.1f} | {br} | {raw} | {inv} | {fin} | {wid} |")
    fired = [r for r in rows if r.get("fallback")]
    if fired:
        # The same runs as returned before the fallback existed: the first run's record.
        before = [{**r, **{k: r["fallback"][k] for k in ("log_z", "stderr", "err", "reliable",
                                                         "silent", "seconds")}}
                  if r.get("fallback") else r for r in rows]
        print("\nBefore the PT fallback (its first run), and how often it fired:\n")
        print("| method | target | dim | runs | fired | med abs err | coverage | silent | "
              "flagged | warm s |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for s in summarise(before):
            n = sum(bool(r.get("fallback")) for r in rows
                    if r["method"] == s["method"] and r["target"] == s["target"])
            print(f"| {s['method']} | {s['target']} | {s['dim']} | {s['runs']} | {n} | "
                  f"{s['med_abs_err']:.3f} | {s['coverage']:.2f} | {s['silent']} | "
                  f"{s['flagged']} | {s['warm_s']:.1f} |")
    total_silent = sum(r["silent"] for r in rows)
    print(f"\n{len(rows)} runs, {total_silent} silent misses, "
          f"{sum(not r['reliable'] for r in rows)} flagged.")
    if zs:
        cov = z_coverage(rows, zs)
        print("\n| bdmc target | runs | " + " | ".join(f"z = {z:g}" for z in zs) + " |")
        print("|---|---|" + "---|" * len(zs))
        total = [0] * (len(zs) + 1)
        for name, hits in cov.items():
            total = [a + b for a, b in zip(total, hits, strict=True)]
            print(f"| {name} | {hits[-1]} | " + " | ".join(map(str, hits[:-1])) + " |")
        print(f"| all | {total[-1]} | " + " | ".join(map(str, total[:-1])) + " |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--methods", default="default",
                    help="comma list of default, ais, smc, bdmc, nested, pt")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0,
                    help="seeds are first-seed .. first-seed + seeds - 1 (fresh seeds for a "
                         "rule chosen after seeing seeds 0-2)")
    ap.add_argument("--seed-list", default=None,
                    help="comma list of seeds (instead of --seeds/--first-seed)")
    ap.add_argument("--half", choices=("held_out", "tuning", "all"), default="held_out")
    ap.add_argument("--targets", default=None, help="comma list of zoo names (default: the half)")
    ap.add_argument("--max-dim", type=int, default=None)
    ap.add_argument("--json", default=None, help="write every run's record here")
    ap.add_argument("--mode-base-starts", type=int, default=None,
                    help="ablation: descents from this many draws of q0 in the mode check "
                         "(default: the library's rule, 16384 // dim clipped to 32..2048; "
                         "0 = from the particles only)")
    ap.add_argument("--base", default=None,
                    help="ablation: pass base= (e.g. 'pilot', 'modes', 'auto') to every "
                         "real-target run")
    ap.add_argument("--z-scan", default=None,
                    help="comma list of z: bdmc bracket coverage with the raw ends moved z "
                         "stderrs out")
    ap.add_argument("--from-json", default=None,
                    help="re-summarise the records saved by --json, run nothing")
    args = ap.parse_args(argv)
    zs = [float(z) for z in args.z_scan.split(",")] if args.z_scan else []
    if args.from_json:
        print_tables(json.loads(Path(args.from_json).read_text()), zs)
        return
    if args.mode_base_starts is not None:
        from energymc.logz import _api

        _api._MODE_BASE_STARTS = args.mode_base_starts
    half = {"held_out": zoo.HELD_OUT, "tuning": zoo.TUNING, "all": zoo.ZOO}[args.half]
    entries = ([zoo.by_name(n) for n in args.targets.split(",")] if args.targets else half)
    if args.max_dim:
        entries = [e for e in entries if e.dim <= args.max_dim]
    methods = args.methods.split(",")
    seeds = ([int(s) for s in args.seed_list.split(",")] if args.seed_list
             else range(args.first_seed, args.first_seed + args.seeds))
    rows = []
    for entry in entries:
        target = entry.build()
        for method in methods:
            if target.support != "real" and method not in _DISCRETE_OK:
                continue
            for seed in seeds:
                r = run_one(entry, target, method, seed,
                            args.base if target.support == "real" else None)
                rows.append(r)
                print(f"{entry.name:12s} {method:8s} seed {seed}  err {r['err']:+.3f}  "
                      f"stderr {r['stderr']:.3f}  {'ok' if r['reliable'] else 'FLAGGED':7s} "
                      f"{'SILENT MISS ' if r['silent'] else ''}{r['seconds']:.1f}s  "
                      f"modes {r['mode_check'].get('modes')} unreached "
                      f"{r['mode_check'].get('unreached')} "
                      f"{r['mode_check'].get('status', '')[:30]} "
                      f"depth {r['mode_check'].get('depth', float('nan')):.1f}"
                      + ("" if not r.get("fallback") else
                         f"  {r['fallback']['method']} fallback (first: err "
                         f"{r['fallback']['err']:+.3f} "
                         f"stderr {r['fallback']['stderr']:.3f})")
                      + ("" if not r.get("widened") else
                         f"  widened (first: err {r['widened']['err']:+.3f} "
                         f"stderr {r['widened']['stderr']:.3f})")
                      + ("" if r["lower"] is None else
                         f"  bounds [{r['lower'] - r['truth']:+.3f}, "
                         f"{r['upper'] - r['truth']:+.3f}] from truth"), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
    print_tables(rows, zs)

if __name__ == "__main__":
    main()
