#!/usr/bin/env python3
"""Benchmark (prints figures; not a test): the stack frame of system-thread's start routine
(`packet::trampoline`) for closures capturing 0 B, 1 KiB and 2 KiB (the largest accepted;
16 KiB is refused at compile time), read from the release x86_64-pc-windows-msvc assembly of
examples/frame-probe. Frame = pushed registers + `sub rsp` (or the `__chkstk` size in eax)."""
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = ROOT / "examples" / "frame-probe"
TARGET = "x86_64-pc-windows-msvc"
# v0-mangled markers of each probe's closure: `probe_0`, and the const generic N of
# `spawn_with_capture::<N>` (hex: 0x400 = 1024, 0x800 = 2048).
CAPTURES = {"7probe_0": 0, "spawn_with_captureKj400_": 1024, "spawn_with_captureKj800_": 2048}


def build() -> Path:
    target_dir = ROOT / "target" / "frame-probe"
    env = dict(os.environ)
    env.pop("RUSTFLAGS", None)
    subprocess.run(
        ["cargo", "rustc", "--quiet", "--release", "--target", TARGET,
         "--target-dir", str(target_dir), "--",
         "--emit", "asm", "-C", "symbol-mangling-version=v0"],
        cwd=PROBE, env=env, check=True)
    deps = target_dir / TARGET / "release" / "deps"
    files = sorted(deps.glob("system_thread_frame_probe-*.s"), key=lambda p: p.stat().st_mtime)
    if not files:
        sys.exit("frame_sizes: no assembly was emitted")
    return files[-1]


def functions(asm: str):
    """Yields (symbol, body lines) for each function in the assembly."""
    name, body = None, []
    for line in asm.splitlines():
        label = re.match(r"^(_R[0-9A-Za-z_$]+):", line)
        if label:
            if name:
                yield name, body
            name, body = label.group(1), []
        elif name:
            body.append(line.strip())
    if name:
        yield name, body


def frame(body):
    """Bytes the prologue reserves: pushes, then sub rsp / __chkstk."""
    pushes, reserve = 0, 0
    for i, line in enumerate(body[:40]):  # AT&T syntax, as rustc emits it
        if re.match(r"^pushq\s+%r", line):
            pushes += 1
        m = re.match(r"^subq\s+\$(\d+),\s*%rsp", line)
        if m:
            reserve = int(m.group(1))
            break
        m = re.match(r"^movl\s+\$(\d+),\s*%eax", line)
        if m and i + 1 < len(body) and "__chkstk" in body[i + 1]:
            reserve = int(m.group(1))
            break
        if line.startswith(".seh_endprologue"):
            break
    return pushes * 8 + 8 + reserve  # + the return address


def main():
    asm = build().read_text()
    rows = []
    for symbol, body in functions(asm):
        if "10trampoline" not in symbol:
            continue
        owner = next((p for p in CAPTURES if p in symbol), None)
        if owner is None:
            continue
        rows.append((CAPTURES[owner], owner, frame(body)))
    if len(rows) != len(CAPTURES):
        sys.exit(f"frame_sizes: found {len(rows)} start routines, expected {len(CAPTURES)}")
    print("start routine (trampoline) frame, release x86_64-pc-windows-msvc")
    print(f"  {'capture':>8}  {'frame':>7}  {'frame - capture':>15}")
    for capture, _, size in sorted(rows):
        print(f"  {capture:>7}B  {size:>6}B  {size - capture:>14}B")
    print("  16 KiB captures: refused at compile time (MAX_CLOSURE_SIZE = 2048, E0080)")
    worst = max(size - capture for capture, _, size in rows)
    print(f"  largest overhead over the capture: {worst} B (goal <= 256 B)")


if __name__ == "__main__":
    main()
