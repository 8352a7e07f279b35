"""Where the demo driver's bytes go: a library build against the raw baseline with the same
scenarios, by section and by the origin of each function (from rust-lld's /MAP file).

    python3 tools/bench/code_size.py [--pair bench|ab] [--top N]

`--pair bench` (default): scenarios a+b + the timed loop (`bench` vs `bench_raw`, the pair
`./x bench` compares); `--pair ab`: scenarios a+b only (`ab` vs `raw`). Builds into
target/code-size/ (a map file next to each .dll). Function sizes are the distance to the next
symbol in the map; with LTO, library code inlined into demo functions (DriverEntry) counts
for those, so the per-origin totals of the library are a lower bound. Names are demangled
with c++filt (binutils) when it is installed.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "emulate"))
from common import DLL_NAME, DRIVER_DIR, REPO, TARGET, VARIANTS  # noqa: E402

OUT = REPO / "target" / "code-size"
PAIRS = {"bench": ("bench", "bench_raw"), "ab": ("ab", "raw")}

_SECTION = re.compile(r"^ (\d{4}):([0-9a-f]{8}) ([0-9a-f]{8})H (\S+)", re.M)
_SYMBOL = re.compile(r"^ (\d{4}):([0-9a-f]{8})\s+(\S+)\s+[0-9a-f]{16}\s+(.*)$", re.M)


def build(variant: str) -> Path:
    """Builds `variant` (common.VARIANTS) with a /MAP file; returns the map's path."""
    _, cfgs = VARIANTS[variant]
    target_dir = OUT / variant
    map_path = OUT / f"{variant}.map"
    flags = [f'"--cfg", "{c}"' for c in cfgs] + [f'"-C", "link-arg=/MAP:{map_path}"']
    cmd = ["cargo", "build", "--quiet", "--locked", "--release", "--target", TARGET,
           "--target-dir", str(target_dir),
           "--config", f"target.{TARGET}.rustflags=[{', '.join(flags)}]"]
    env = {k: v for k, v in os.environ.items()
           if k not in ("RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS")}
    res = subprocess.run(cmd, cwd=DRIVER_DIR, env=env, capture_output=True, text=True)
    dll = target_dir / TARGET / "release" / DLL_NAME
    if res.returncode != 0 or not map_path.exists() or not dll.exists():
        sys.exit(f"build of {variant} failed:\n{res.stderr[-3000:]}")
    return map_path


def read_map(path: Path) -> tuple[dict[str, int], list[tuple[str, int, str]]]:
    """(section name -> length, [(section number, size, symbol)]), aliases dropped."""
    text = path.read_text()
    contributions: dict[str, list[tuple[int, int, str]]] = collections.defaultdict(list)
    lengths: dict[str, int] = collections.Counter()
    for num, start, length, name in _SECTION.findall(text):
        contributions[num].append((int(start, 16), int(length, 16), name))
        lengths[name] += int(length, 16)
    by_section: dict[str, dict[int, str]] = collections.defaultdict(dict)
    for num, offset, name, _obj in _SYMBOL.findall(text):
        by_section[num].setdefault(int(offset, 16), name)    # first name of an address
    symbols = []
    for num, at in by_section.items():
        offsets = sorted(at)
        for i, off in enumerate(offsets):
            end = next((s + n for s, n, _ in contributions[num] if s <= off < s + n), off)
            if i + 1 < len(offsets):
                end = min(end, offsets[i + 1])
            symbols.append((num, end - off, at[off]))
    return dict(lengths), symbols


def demangle(names: list[str]) -> list[str]:
    if not shutil.which("c++filt"):
        return names
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True,
                         text=True).stdout.splitlines()
    if len(out) != len(names):
        return names
    return [re.sub(r"::h[0-9a-f]{16}$", "", re.sub(r"\[[0-9a-f]+\]", "", o)) for o in out]


def origin(name: str) -> str:
    if "system_thread_demo_driver" in name:
        return "demo: rt (log, allocator)" if "::rt::" in name else "demo"
    if "system_thread::" in name:
        return "system-thread: formatting" if "fmt::Display" in name or "violation" in name \
            else "system-thread"
    if "core::fmt" in name or "core::panic" in name or name.startswith("__rustc::"):
        return "core::fmt / panic"
    if "udivti3" in name:
        return "compiler_builtins (u128 division)"
    if name.startswith("core::"):
        return "core (other)"
    return name if name in ("DriverEntry",) else "other"


def text_by_origin(symbols: list[tuple[str, int, str]]) -> tuple[dict, list]:
    text = [(size, name) for num, size, name in symbols if num == "0001"]
    names = demangle([n for _, n in text])
    totals: dict[str, int] = collections.Counter()
    rows = []
    for (size, _), name in zip(text, names):
        totals[origin(name)] += size
        rows.append((size, name))
    return totals, rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pair", choices=sorted(PAIRS), default="bench")
    ap.add_argument("--top", type=int, default=25, help="largest library functions to list")
    a = ap.parse_args(argv)
    lib, raw = PAIRS[a.pair]
    maps = {v: read_map(build(v)) for v in (lib, raw)}
    print(f"=== code size by section: library ({lib}) vs raw ({raw}), bytes ===")
    print(f"  {'':34} {'library':>7} {'raw':>7} {'diff':>7}")
    names = sorted(set(maps[lib][0]) | set(maps[raw][0]))
    for sec in names:
        x, y = maps[lib][0].get(sec, 0), maps[raw][0].get(sec, 0)
        print(f"  {sec:34} {x:7d} {y:7d} {x - y:+7d}")
    print("=== .text by origin (function sizes from the map) ===")
    totals = {v: text_by_origin(maps[v][1]) for v in (lib, raw)}
    for key in sorted(set(totals[lib][0]) | set(totals[raw][0]),
                      key=lambda k: -(totals[lib][0].get(k, 0) - totals[raw][0].get(k, 0))):
        x, y = totals[lib][0].get(key, 0), totals[raw][0].get(key, 0)
        if x or y:
            print(f"  {key:34} {x:7d} {y:7d} {x - y:+7d}")
    print(f"=== largest system-thread functions in the library build (top {a.top}) ===")
    rows = sorted((r for r in totals[lib][1] if "system_thread::" in r[1]
                   and "system_thread_demo_driver" not in r[1]), reverse=True)
    for size, name in rows[:a.top]:
        print(f"  {size:6d}  {name[:140]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
