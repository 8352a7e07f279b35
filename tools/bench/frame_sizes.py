#!/usr/bin/env python3
"""Benchmark (prints figures; not a test): the stack frame of system-thread's start routine
(`packet::start_routine`) for closures capturing 0 B, 1 KiB and 2 KiB (the largest accepted;
16 KiB is refused at compile time), read from the release assembly of examples/frame-probe
for x86_64-pc-windows-msvc and aarch64-pc-windows-msvc.
x86_64 frame = return address + pushed registers + `sub rsp` (or the `__chkstk` size in eax).
aarch64 frame = every stack-pointer decrement of the prologue: pre-indexed stores
(`stp x19, x20, [sp, #-48]!`), `sub sp, sp, #N` (also `#N, lsl #12`) and the
`mov x15, #K; bl __chkstk; sub sp, sp, x15, lsl #4` sequence (16 * K); the return address
stays in x30 (saved inside those bytes when the routine makes calls)."""
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = ROOT / "examples" / "frame-probe"
TARGETS = ("x86_64-pc-windows-msvc", "aarch64-pc-windows-msvc")
# v0-mangled markers of each probe's closure: `probe_0`, and the const generic N of
# `spawn_with_capture::<N>` (hex: 0x400 = 1024, 0x800 = 2048).
CAPTURES = {"7probe_0": 0, "spawn_with_captureKj400_": 1024, "spawn_with_captureKj800_": 2048}


def build(target: str) -> Path:
    target_dir = ROOT / "target" / "frame-probe"
    env = dict(os.environ)
    env.pop("RUSTFLAGS", None)
    subprocess.run(
        ["cargo", "rustc", "--quiet", "--release", "--target", target,
         "--target-dir", str(target_dir), "--",
         "--emit", "asm", "-C", "symbol-mangling-version=v0"],
        cwd=PROBE, env=env, check=True)
    deps = target_dir / target / "release" / "deps"
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


def frame_x86_64(body):
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


def frame_aarch64(body):
    """Bytes the prologue takes off sp, up to its first call or branch (other than
    __chkstk). rustc's aarch64 assembly uses `#imm` operands."""
    total, x15 = 0, None
    for line in body[:60]:
        if line.startswith(".") or line.startswith("//"):
            continue    # .seh_* directives, comments
        m = re.match(r"^st\w*\s+.*\[sp, #-(\d+)\]!$", line)
        if m:
            total += int(m.group(1))
            continue
        m = re.match(r"^sub\s+sp, sp, #(\d+)(?:, lsl #(\d+))?$", line)
        if m:
            total += int(m.group(1)) << int(m.group(2) or 0)
            continue
        m = re.match(r"^mov\s+x15, #(\d+)$", line)
        if m:
            x15 = int(m.group(1))
            continue
        if re.match(r"^sub\s+sp, sp, x15, lsl #4$", line):
            if x15 is None:
                sys.exit("frame_sizes: `sub sp, sp, x15, lsl #4` without `mov x15, #K`")
            total += 16 * x15
            continue
        if re.match(r"^bl\s+__chkstk$", line):
            continue
        if re.match(r"^(bl|blr|b|br|ret|cb|tb)\b|^b\.", line):
            break
    return total


FRAME = {"x86_64-pc-windows-msvc": frame_x86_64, "aarch64-pc-windows-msvc": frame_aarch64}


def report(target):
    asm = build(target).read_text()
    rows = []
    for symbol, body in functions(asm):
        if "13start_routine" not in symbol:
            continue
        owner = next((p for p in CAPTURES if p in symbol), None)
        if owner is None:
            continue
        rows.append((CAPTURES[owner], owner, FRAME[target](body)))
    if len(rows) != len(CAPTURES):
        sys.exit(f"frame_sizes: found {len(rows)} start routines for {target}, "
                 f"expected {len(CAPTURES)}")
    print(f"start routine (packet::start_routine) frame, release {target}")
    print(f"  {'capture':>8}  {'frame':>7}  {'frame - capture':>15}")
    for capture, _, size in sorted(rows):
        print(f"  {capture:>7}B  {size:>6}B  {size - capture:>14}B")
    worst = max(size - capture for capture, _, size in rows)
    print(f"  largest overhead over the capture: {worst} B (goal <= 256 B)")


def main():
    for target in TARGETS:
        report(target)
    print("16 KiB captures: refused at compile time on both (MAX_CLOSURE_SIZE = 2048, E0080)")


if __name__ == "__main__":
    main()
