#!/usr/bin/env python3
"""Prints cargo-mutants' outcomes per file of src/ (mutants, caught, missed, timeout, unviable)
as a Markdown table, with the total and the run's duration: the figure the README records.
Usage: summary.py [OUTPUT_DIR] (default target/mutation/mutants.out)."""
import json
import sys
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

KINDS = ("CaughtMutant", "MissedMutant", "Timeout", "Unviable")


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "target/mutation/mutants.out")
    data = json.loads((out / "outcomes.json").read_text())
    per_file = defaultdict(Counter)
    for outcome in data["outcomes"]:
        mutant = outcome["scenario"]
        if not isinstance(mutant, dict) or "Mutant" not in mutant:
            continue  # the baseline
        per_file[mutant["Mutant"]["file"]][outcome["summary"]] += 1
    total = Counter()
    print("| file | mutants | caught | missed | timeout | unviable |")
    print("|---|---:|---:|---:|---:|---:|")
    for path in sorted(per_file):
        counts = per_file[path]
        total.update(counts)
        print(f"| `{path}` | {sum(counts.values())} | "
              + " | ".join(str(counts[k]) for k in KINDS) + " |")
    print(f"| **total** | **{sum(total.values())}** | "
          + " | ".join(f"**{total[k]}**" for k in KINDS) + " |")
    other = set(total) - set(KINDS)
    if other:
        print(f"other outcomes: {sorted(other)}")
    version = data["cargo_mutants_version"]
    if data.get("end_time") is None:
        print(f"\n{sum(total.values())} mutants so far (still running; cargo-mutants {version})")
    else:
        start, end = (datetime.fromisoformat(data[k]) for k in ("start_time", "end_time"))
        minutes = round((end - start).total_seconds() / 60)
        print(f"\n{sum(total.values())} mutants in {minutes} min (cargo-mutants {version})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
