"""Would a wider trigger for ``base="auto"``'s parallel-tempering fallback help?

``log_partition`` falls back to ``method="pt"`` where
``energymc.logz._api.fallback_trigger`` names a reason. This probe widens
that trigger, for the probe only, to every flagged ``base="auto"`` run except
those the "unverified" depth rule flagged (a funnel's neck, which PT does not
reach) and those whose mode check formed no estimate, and runs
``bench_zoo_logz.py`` with it. The PT run does not depend on the first run
(its own key ``fold_in(key, 10**6 + 5)`` and PT's own default base; only an
escalated run would pass on its Student-t base), so every narrower trigger's
result is read off the same records: ``--rules FILE`` prints, per rule,
method and target, how often it fires, the median and mean ``|error|`` of
what the call would return, and its flagged and silent runs.

Usage::

    python benchmarks/probe_fallback_trigger.py --half tuning --targets mixture10d3 \\
        --methods default,smc --seeds 10 --json wide.json
    python benchmarks/probe_fallback_trigger.py --rules wide.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_zoo_logz  # noqa: E402  (sets JAX_PLATFORMS before energymc loads)
import numpy as np  # noqa: E402

from energymc.logz import _api  # noqa: E402
from energymc.logz._checks import unverified_problem  # noqa: E402

_library = _api.fallback_trigger


def widest(est) -> str | None:
    """The library's trigger, or ``"wide"`` for any other flagged run whose mode check
    formed an estimate (the fallback's reason and disagreement rule read it) and did
    not call it unverified."""
    reason = _library(est)
    if reason:
        return reason
    modes = est.info.get("checks", {}).get("modes", {})
    if est.problems and "log_z" in modes and not unverified_problem(modes, est.log_z):
        return "wide"
    return None


def _first(r):
    """The first run of a row (the row itself where the call did not fall back)."""
    fb = r.get("fallback")
    if not fb:
        return {"err": r["err"], "stderr": r["stderr"], "reliable": r["reliable"],
                "mode_check": r["mode_check"], "log_z": r["log_z"]}
    return {"err": fb["err"], "stderr": fb["stderr"], "reliable": fb["reliable"],
            "mode_check": fb["mode_check"], "log_z": fb["log_z"]}


def _gap(first):
    """The mode check's estimate minus the first run's, in nats (nan without one)."""
    lz = first["mode_check"].get("log_z")
    return np.nan if lz is None else lz - first["log_z"]


#: Candidate triggers, each a predicate on a row that the widest trigger sent to PT.
RULES = {
    "before: mode check low": lambda r, f: f["mode_check"].get("flag") == "low",
    "widest": lambda r, f: True,
    # The Gaussians at the minima hold at least e^-1 of the run's Z: few modes,
    # found (a product of 32 double wells has 2^32; the check finds 8).
    "low, or compared and check >= run - 1 nat": lambda r, f: (
        f["mode_check"].get("flag") == "low"
        or (f["mode_check"].get("status") == "compared" and _gap(f) >= -1.0)),
    "low or high": lambda r, f: f["mode_check"].get("flag") in ("low", "high"),
    # The rule first committed (escalated runs are excluded as in the library).
    "low, or compared with importance ESS >= 0.5 of its draws": lambda r, f: (
        f["mode_check"].get("flag") == "low"
        or (f["mode_check"].get("status") == "compared" and not r["escalated"]
            and f["mode_check"]["ess"] >= _api.FALLBACK_MIN_ESS * f["mode_check"]["draws"])),
    # ... from two or more minima (the landed rule, fallback_trigger).
    "low, or two or more minima, compared with importance ESS >= 0.5": lambda r, f: (
        f["mode_check"].get("flag") == "low"
        or (f["mode_check"].get("status") == "compared" and not r["escalated"]
            and f["mode_check"]["modes"] >= 2
            and f["mode_check"]["ess"] >= _api.FALLBACK_MIN_ESS * f["mode_check"]["draws"])),
}


def rules_table(rows):
    keys = sorted({(r["method"], r["target"]) for r in rows})
    for name, rule in RULES.items():
        print(f"\n{name}\n")
        print("| method | target | runs | fired | med abs err | mean abs err | flagged | silent |")
        print("|---|---|---|---|---|---|---|---|")
        for method, target in keys:
            errs, flagged, silent, fired = [], 0, 0, 0
            for r in rows:
                if (r["method"], r["target"]) != (method, target):
                    continue
                f = _first(r)
                use = r if r.get("fallback") and rule(r, f) else f
                fired += use is r
                errs.append(abs(use["err"]))
                flagged += not use["reliable"]
                silent += bool(use["reliable"] and abs(use["err"]) > 3 * use["stderr"])
            print(f"| {method} | {target} | {len(errs)} | {fired} | {np.median(errs):.3f} | "
                  f"{np.mean(errs):.3f} | {flagged} | {silent} |")


def main(argv):
    if argv[:1] == ["--rules"]:
        rows = [r for path in argv[1:] for r in json.loads(Path(path).read_text())]
        rules_table(rows)
        return
    _api.fallback_trigger = widest
    bench_zoo_logz.main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
