"""Shared paths and the driver build helper for tools/emulate (stdlib only)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DRIVER_DIR = REPO / "examples" / "demo-driver"
CACHE = REPO / "target" / "emulate"          # venv, Wine prefix, built .sys files, logs
TARGET = "x86_64-pc-windows-msvc"            # the driver the emulators run
ARM64_TARGET = "aarch64-pc-windows-msvc"     # cross-built and PE-checked only
ARCH_OF_TARGET = {TARGET: "x86_64", ARM64_TARGET: "aarch64"}
DLL_NAME = "system_thread_demo_driver.dll"

# Variant -> (cargo --target-dir relative to DRIVER_DIR or None for the default, extra cfgs).
# The cfgs are documented at the top of examples/demo-driver/src/lib.rs.
VARIANTS = {
    "normal": (None, []),                                       # all scenarios, via the library
    "raw": ("target/raw_baseline", ["raw_baseline"]),           # a + b by direct kernel calls
    "leak": ("target/leak_thread", ["leak_thread"]),            # + a raw thread never joined
    "leak_forget": ("target/leak_forget", ["leak_forget"]),     # + mem::forget(JoinHandle)
    "selftest": ("target/raw_join_selftest", ["raw_join_selftest"]),
    "bench": ("target/bench", ["bench_cycles"]),                # a + b + 1,000 timed cycles
    "bench_raw": ("target/bench_raw", ["raw_baseline", "bench_cycles"]),
    "ab": ("target/scenarios_ab", ["scenarios_ab"]),            # a + b via the library
    "guard": ("target/guard", ["guard"]),                      # creates no thread (Wine host mate)
    "shims": ("target/shims", []),       # normal, also exporting the runtime shims (LINK_ARGS)
}
# Extra linker arguments of a variant. `shims` exports kernel_rt.rs's __chkstk and
# __CxxFrameHandler3 so that pe_check.py can find and execute them; it is never loaded.
LINK_ARGS = {"shims": ["/EXPORT:__chkstk", "/EXPORT:__CxxFrameHandler3"]}

# Variants that must be caught by the leak check (Wine and speakeasy), and how each leaks.
LEAK_VARIANTS = {"leak": "raw", "leak_forget": "forget"}


class HarnessError(Exception):
    """A problem with the environment or the harness itself (not a driver failure)."""


def log(msg: str) -> None:
    print(f"[emulate] {msg}", file=sys.stderr, flush=True)


def require_tool(name: str, hint: str) -> str:
    path = shutil.which(name)
    if not path:
        raise HarnessError(f"`{name}` not found on PATH: {hint}")
    return path


def cargo_build_command(variant: str, profile: str = "release",
                        target: str = TARGET) -> tuple[list[str], Path]:
    """Command line and output .dll path for one driver variant."""
    if variant not in VARIANTS:
        raise HarnessError(f"unknown driver variant {variant!r} (known: {sorted(VARIANTS)})")
    target_dir, cfgs = VARIANTS[variant]
    cmd = ["cargo", "build", "--target", target]
    if profile == "release":
        cmd.append("--release")
    if target_dir:
        cmd += ["--target-dir", target_dir]
    flags = [f'"--cfg", "{c}"' for c in cfgs]
    flags += [f'"-C", "link-arg={arg}"' for arg in LINK_ARGS.get(variant, [])]
    if flags:
        # RUSTFLAGS would *replace* the rustflags of .cargo/config.toml (the /DRIVER link
        # args); a --config array is merged with them instead.
        cmd += ["--config", f"target.{target}.rustflags=[{', '.join(flags)}]"]
    out_root = DRIVER_DIR / (target_dir or "target")
    return cmd, out_root / target / ("release" if profile == "release" else "debug") / DLL_NAME


@dataclass
class BuiltDriver:
    variant: str
    dll: Path
    sys: Path
    arch: str = "x86_64"


def build_driver(variant: str = "normal", profile: str = "release", quiet: bool = False,
                 target: str = TARGET) -> BuiltDriver:
    """Builds one variant with cargo and copies the .dll to
    target/emulate/drivers/st_demo_<variant>[_aarch64].sys."""
    require_tool("cargo", "install Rust (rustup) first")
    cmd, dll = cargo_build_command(variant, profile, target)
    env = dict(os.environ)
    # An outer RUSTFLAGS would silently drop the linker arguments from .cargo/config.toml.
    for var in ("RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS"):
        env.pop(var, None)
    log(f"building driver ({variant}, {profile}): {' '.join(cmd)}")
    res = subprocess.run(cmd, cwd=DRIVER_DIR, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        hint = ""
        if "target may not be installed" in res.stderr or "can't find crate for `core`" in res.stderr:
            hint = f"\nhint: rustup target add {target}"
        raise HarnessError(f"driver build failed ({variant}):\n{res.stderr[-4000:]}{hint}")
    if not quiet and "warning" in res.stderr:
        print(res.stderr, file=sys.stderr)
    if not dll.is_file():
        raise HarnessError(f"cargo succeeded but {dll} is missing")
    out_dir = CACHE / "drivers"
    out_dir.mkdir(parents=True, exist_ok=True)
    arch = ARCH_OF_TARGET[target]
    suffix = "" if target == TARGET else f"_{arch}"
    sys_path = out_dir / f"st_demo_{variant}{suffix}.sys"
    shutil.copyfile(dll, sys_path)
    return BuiltDriver(variant, dll, sys_path, arch)
