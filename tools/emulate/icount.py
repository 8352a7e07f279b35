"""Deterministic cost figures: instructions the demo driver executes inside its own image per
spawn + join, counted under speakeasy (eager mode), library against the raw baseline.

    python3 tools/emulate/icount.py [--no-build] [--json FILE]

Builds the full library demo (`normal`), the library with only the baseline's scenarios
(`ab`) and the hand-written baseline (`raw`), runs them in speakeasy's eager mode, prints the
counts and checks them (checks.check_icounts: every bracket counted, and plain spawn + join at
most ICOUNT_MAX_OVER_RAW instructions over the baseline in both library builds), and checks
each run's output as `./x emulate` does (checks.check_output).
How the counting works: tools/emulate/speakeasy_run.py (module docstring) and
examples/demo-driver/src/bench.rs. Exit status: 0 pass, 1 a check failed, 2 harness error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import checks  # noqa: E402
import speakeasy_run  # noqa: E402
from common import CACHE, HarnessError, build_driver  # noqa: E402

VARIANTS = ("normal", "ab", "raw")


def measure(no_build: bool = False) -> dict[str, dict]:
    """Eager speakeasy summaries of VARIANTS."""
    out = {}
    for v in VARIANTS:
        if no_build:
            path = CACHE / "drivers" / f"st_demo_{v}.sys"
            if not path.exists():
                raise HarnessError(f"{path} missing; run without --no-build")
        else:
            path = build_driver(v, quiet=True).sys
        out[v] = speakeasy_run.run(path, "eager")
    return out


def report_lines(summaries: dict[str, dict]) -> list[str]:
    """The figures as `./x bench` and this script print them (VARIANTS' summaries)."""
    counts = {v: s["analysis"].get("instructions") or {} for v, s in summaries.items()}
    base = counts["raw"].get("calls")
    lines = ["  exact counts: caller = the spawning and joining thread, start routine = the "
             "new thread;",
             "  the bracket overhead (markers + an empty call) subtracted",
             f"  {'':58} {'caller':>7} {'start routine':>14} {'total':>6}"]

    def row(name: str, b: dict | None, note: str = "") -> None:
        if b is None:
            lines.append(f"  {name:58} (not counted)")
            return
        lines.append(f"  {name:58} {b['caller']:7d} {b['thread']:14d} {b['total']:6d}{note}")

    def over_raw(b: dict | None) -> str:
        if not b or not base:
            return ""
        return (f"  {b['total'] - base['total']:+d} over raw "
                f"(goal <= +{checks.ICOUNT_MAX_OVER_RAW})")

    row("raw baseline (scenarios a+b): spawn + join", base)
    row("library, scenarios a+b: spawn + join", counts["ab"].get("calls"),
        over_raw(counts["ab"].get("calls")))
    row("library, full demo: spawn + join", counts["normal"].get("calls"),
        over_raw(counts["normal"].get("calls")))
    for label, what in speakeasy_run.BRACKETS.items():
        if label != "calls":
            row(f"library, full demo: {what}", counts["normal"].get(label))
    overheads = ", ".join(f"{v} {c['overhead']['caller']}" for v, c in counts.items()
                          if c.get("overhead"))
    lines.append(f"  bracket overhead subtracted (instructions): {overheads}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-build", action="store_true", help="use the .sys files already built")
    ap.add_argument("--json", type=Path, help="write the counts of both variants here")
    a = ap.parse_args(argv)
    try:
        summaries = measure(a.no_build)
    except HarnessError as e:
        print(f"HARNESS ERROR: {e}", file=sys.stderr)
        return 2
    print("=== speakeasy (eager): instructions executed inside the driver image per "
          "spawn + join ===")
    for line in report_lines(summaries):
        print(line)
    if a.json:
        a.json.write_text(json.dumps({v: s["analysis"]["instructions"]
                                      for v, s in summaries.items()}, indent=1))
    fails = checks.check_icounts(summaries)
    # The counts are only worth something from correct runs: each variant's output checks.
    for v, s in summaries.items():
        fails += checks.check_output(s["dbgprint"], "speakeasy-eager", v, selftest=False)
    for f in fails:
        print(f"FAIL {f}")
    print("instruction counts: " + ("ALL CHECKS PASSED" if not fails
                                    else f"{len(fails)} check(s) failed"))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
