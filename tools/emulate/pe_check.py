"""Minimal PE32+ reader and static checks for the demo driver (stdlib only).

    python3 tools/emulate/pe_check.py path/to/driver.sys [--wine-ntoskrnl PATH] [--json]
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_SUBSYSTEM_NATIVE = 1
SCN_CNT_CODE = 0x20
SCN_MEM_EXECUTE = 0x20000000
SCN_MEM_READ = 0x40000000
SCN_MEM_WRITE = 0x80000000
SCN_MEM_DISCARDABLE = 0x02000000

ALLOWED_IMPORT_DLLS = {"ntoskrnl.exe", "hal.dll"}


class PEError(Exception):
    pass


@dataclass
class Section:
    name: str
    vaddr: int
    vsize: int
    raw_ptr: int
    raw_size: int
    flags: int

    def flag_text(self) -> str:
        out = []
        for bit, ch in ((SCN_MEM_READ, "R"), (SCN_MEM_WRITE, "W"), (SCN_MEM_EXECUTE, "X"),
                        (SCN_MEM_DISCARDABLE, "D")):
            out.append(ch if self.flags & bit else "-")
        return "".join(out)


@dataclass
class Export:
    name: str | None
    ordinal: int
    rva: int
    forwarder: str | None = None


@dataclass
class PE:
    path: Path
    data: bytes
    machine: int = 0
    characteristics: int = 0
    magic: int = 0
    entry_rva: int = 0
    image_base: int = 0
    subsystem: int = 0
    dll_characteristics: int = 0
    checksum: int = 0
    stack_reserve: int = 0
    stack_commit: int = 0
    dirs: list[tuple[int, int]] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    exports: list[Export] = field(default_factory=list)
    export_dll_name: str | None = None
    imports: dict[str, list[str]] = field(default_factory=dict)  # dll -> names ("#n" for ordinals)

    # -- address helpers -------------------------------------------------------------
    def section_of(self, rva: int) -> Section | None:
        for s in self.sections:
            if s.vaddr <= rva < s.vaddr + max(s.vsize, s.raw_size):
                return s
        return None

    def off(self, rva: int) -> int:
        s = self.section_of(rva)
        if s is None:
            raise PEError(f"RVA {rva:#x} is outside every section")
        delta = rva - s.vaddr
        if delta >= s.raw_size:
            raise PEError(f"RVA {rva:#x} is in the uninitialised part of {s.name}")
        return s.raw_ptr + delta

    def read(self, rva: int, n: int) -> bytes:
        o = self.off(rva)
        return self.data[o:o + n]

    def cstr(self, rva: int) -> str:
        o = self.off(rva)
        end = self.data.index(b"\0", o)
        return self.data[o:end].decode("ascii", "replace")


def parse(path: str | Path) -> PE:
    path = Path(path)
    data = path.read_bytes()
    pe = PE(path=path, data=data)
    if data[:2] != b"MZ":
        raise PEError(f"{path}: no MZ header")
    (e_lfanew,) = struct.unpack_from("<I", data, 0x3C)
    if data[e_lfanew:e_lfanew + 4] != b"PE\0\0":
        raise PEError(f"{path}: no PE signature")
    coff = e_lfanew + 4
    pe.machine, nsec, _ts, _sym, _nsym, opt_size, pe.characteristics = struct.unpack_from(
        "<HHIIIHH", data, coff)
    opt = coff + 20
    (pe.magic,) = struct.unpack_from("<H", data, opt)
    if pe.magic != 0x20B:
        raise PEError(f"{path}: not PE32+ (magic {pe.magic:#x})")
    (pe.entry_rva,) = struct.unpack_from("<I", data, opt + 16)
    (pe.image_base,) = struct.unpack_from("<Q", data, opt + 24)
    (pe.checksum,) = struct.unpack_from("<I", data, opt + 64)
    pe.subsystem, pe.dll_characteristics = struct.unpack_from("<HH", data, opt + 68)
    pe.stack_reserve, pe.stack_commit = struct.unpack_from("<QQ", data, opt + 72)
    (ndirs,) = struct.unpack_from("<I", data, opt + 108)
    for i in range(min(ndirs, 16)):
        pe.dirs.append(struct.unpack_from("<II", data, opt + 112 + 8 * i))
    sec = opt + opt_size
    for i in range(nsec):
        raw = struct.unpack_from("<8sIIIIIIHHI", data, sec + 40 * i)
        name = raw[0].rstrip(b"\0").decode("ascii", "replace")
        pe.sections.append(Section(name, raw[2], raw[1], raw[4], raw[3], raw[9]))
    _parse_exports(pe)
    _parse_imports(pe)
    return pe


def _parse_exports(pe: PE) -> None:
    if not pe.dirs or pe.dirs[0][0] == 0:
        return
    rva, size = pe.dirs[0]
    (_c, _ts, _maj, _min, name_rva, base, nfuncs, nnames, funcs_rva, names_rva,
     ords_rva) = struct.unpack_from("<IIHHIIIIIII", pe.read(rva, 40))
    pe.export_dll_name = pe.cstr(name_rva) if name_rva else None
    funcs = struct.unpack("<%dI" % nfuncs, pe.read(funcs_rva, 4 * nfuncs)) if nfuncs else ()
    names = struct.unpack("<%dI" % nnames, pe.read(names_rva, 4 * nnames)) if nnames else ()
    ords = struct.unpack("<%dH" % nnames, pe.read(ords_rva, 2 * nnames)) if nnames else ()
    by_index: dict[int, str] = {o: pe.cstr(n) for n, o in zip(names, ords)}
    for idx, frva in enumerate(funcs):
        if frva == 0:
            continue
        fwd = pe.cstr(frva) if rva <= frva < rva + size else None
        pe.exports.append(Export(by_index.get(idx), base + idx, frva, fwd))


def _parse_imports(pe: PE) -> None:
    if len(pe.dirs) < 2 or pe.dirs[1][0] == 0:
        return
    rva = pe.dirs[1][0]
    while True:
        ilt, _ts, _fwd, name_rva, iat = struct.unpack_from("<IIIII", pe.read(rva, 20))
        if name_rva == 0:
            break
        dll = pe.cstr(name_rva)
        names: list[str] = []
        thunk = ilt or iat
        while True:
            (entry,) = struct.unpack_from("<Q", pe.read(thunk, 8))
            if entry == 0:
                break
            if entry & (1 << 63):
                names.append(f"#{entry & 0xFFFF}")
            else:
                names.append(pe.cstr((entry & 0x7FFFFFFF) + 2))
            thunk += 8
        pe.imports.setdefault(dll, []).extend(names)
        rva += 20


# -- Wine's ntoskrnl --------------------------------------------------------------------

def wine_ntoskrnl_path() -> Path | None:
    """Locate Wine's PE ntoskrnl.exe (wine64 package)."""
    import subprocess
    try:
        out = subprocess.run(["dpkg", "-L", "wine64", "libwine"], capture_output=True,
                             text=True).stdout
        for line in out.splitlines():
            if line.endswith("/x86_64-windows/ntoskrnl.exe"):
                return Path(line)
    except FileNotFoundError:
        pass
    for root in (Path("/usr/lib/x86_64-linux-gnu/wine"), Path("/usr/lib/wine"),
                 Path("/usr/local/lib/wine"), Path("/opt/wine")):
        for p in root.glob("**/x86_64-windows/ntoskrnl.exe"):
            return p
    return None


def _stub_bodies(pe: PE) -> set[int]:
    """RVAs of exports that look like winebuild `@ stub` thunks.

    A winebuild stub for a PE module loads the function's name and jumps into one shared
    `__wine_spec_unimplemented_stub` caller, so every stub has the same instruction shape
    and all of them branch to the same target; real functions do not. Heuristic: group
    exports by the target of the first rel32 `call`/`jmp` within their first 32 bytes and
    call the group stubs if it is large and each body is tiny and made of the same opcodes.
    """
    shapes: dict[tuple, list[int]] = {}
    for e in pe.exports:
        if e.forwarder:
            continue
        try:
            code = pe.read(e.rva, 32)
        except PEError:
            continue
        for i in range(len(code) - 5):
            if code[i] in (0xE8, 0xE9):
                (rel,) = struct.unpack_from("<i", code, i + 1)
                target = e.rva + i + 5 + rel
                key = (code[:3], i, code[i], target)
                shapes.setdefault(key, []).append(e.rva)
                break
    stubs: set[int] = set()
    for key, rvas in shapes.items():
        if len(rvas) >= 20:
            stubs.update(rvas)
    return stubs


def wine_exports(path: Path) -> tuple[set[str], set[str]]:
    """(exported names, names that look like unimplemented stubs)."""
    pe = parse(path)
    stubs = _stub_bodies(pe)
    names = {e.name for e in pe.exports if e.name}
    stub_names = {e.name for e in pe.exports if e.name and e.rva in stubs}
    return names, stub_names


# -- checks ------------------------------------------------------------------------------

def check_driver(path: str | Path, wine_ntoskrnl: Path | None = None,
                 allowed_exports: tuple[str, ...] = ("DriverEntry",)) -> dict:
    """Returns {"ok": bool, "errors": [...], "warnings": [...], "info": {...}}."""
    pe = parse(path)
    errors: list[str] = []
    warnings: list[str] = []
    if pe.machine != 0x8664:
        errors.append(f"machine {pe.machine:#x} is not AMD64")
    if pe.subsystem != IMAGE_SUBSYSTEM_NATIVE:
        errors.append(f"subsystem {pe.subsystem} is not NATIVE (1)")
    names = sorted(e.name or f"#{e.ordinal}" for e in pe.exports)
    if names != sorted(allowed_exports):
        errors.append(f"exports are {names}, expected exactly {list(allowed_exports)}")
    entry = next((e for e in pe.exports if e.name == "DriverEntry"), None)
    if entry is None:
        errors.append("no DriverEntry export")
    elif entry.rva != pe.entry_rva:
        errors.append(f"entry point RVA {pe.entry_rva:#x} != DriverEntry export RVA {entry.rva:#x}")
    for dll in pe.imports:
        if dll.lower() not in ALLOWED_IMPORT_DLLS:
            errors.append(f"imports from {dll} (allowed: {sorted(ALLOWED_IMPORT_DLLS)})")
    for s in pe.sections:
        if s.flags & SCN_MEM_WRITE and s.flags & SCN_MEM_EXECUTE:
            errors.append(f"section {s.name} is writable and executable")
        if s.flags & SCN_CNT_CODE and not s.flags & SCN_MEM_EXECUTE:
            errors.append(f"section {s.name} holds code but is not executable")
    if pe.checksum == 0:
        warnings.append("PE checksum is 0 (real Windows refuses unsigned-checksum drivers)")
    if pe.stack_commit != 0x6000:
        warnings.append(f"stack commit {pe.stack_commit:#x} != 0x6000 (speakeasy uses it as stack size)")

    missing: list[str] = []
    stubbed: list[str] = []
    if wine_ntoskrnl is None:
        wine_ntoskrnl = wine_ntoskrnl_path()
    if wine_ntoskrnl is None:
        warnings.append("Wine's ntoskrnl.exe not found: imports not checked against Wine")
    else:
        wnames, wstubs = wine_exports(wine_ntoskrnl)
        for dll, funcs in pe.imports.items():
            if dll.lower() != "ntoskrnl.exe":
                continue
            for f in funcs:
                if f not in wnames:
                    missing.append(f)
                elif f in wstubs:
                    stubbed.append(f)
        if missing:
            errors.append(f"imported but not exported by Wine's ntoskrnl: {missing}")
        if stubbed:
            errors.append(f"imported but only a stub in Wine's ntoskrnl: {stubbed}")

    return {
        "ok": not errors,
        "errors": errors,
        "warnings": warnings,
        "info": {
            "path": str(pe.path),
            "size": len(pe.data),
            "subsystem": pe.subsystem,
            "entry_rva": hex(pe.entry_rva),
            "exports": names,
            "imports": pe.imports,
            "sections": [f"{s.name} {s.flag_text()} vsize={s.vsize:#x}" for s in pe.sections],
            "stack": [hex(pe.stack_reserve), hex(pe.stack_commit)],
            "checksum": hex(pe.checksum),
            "wine_ntoskrnl": str(wine_ntoskrnl) if wine_ntoskrnl else None,
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("driver", nargs="?")
    ap.add_argument("--wine-ntoskrnl", type=Path)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--list-wine-stubs", action="store_true",
                    help="print the Wine ntoskrnl exports that look like stubs and exit")
    ap.add_argument("--wine-has", nargs="+", metavar="NAME",
                    help="report whether Wine's ntoskrnl exports NAME (and whether it is a stub)")
    a = ap.parse_args(argv)
    wpath = a.wine_ntoskrnl or wine_ntoskrnl_path()
    if a.list_wine_stubs or a.wine_has:
        if wpath is None:
            print("Wine's ntoskrnl.exe not found (is wine64 installed?)", file=sys.stderr)
            return 2
        names, stubs = wine_exports(wpath)
        if a.list_wine_stubs:
            print("\n".join(sorted(stubs)))
            print(f"# {len(stubs)} stubs of {len(names)} exports in {wpath}", file=sys.stderr)
        for n in a.wine_has or ():
            print(f"{n}: {'stub' if n in stubs else 'exported' if n in names else 'MISSING'}")
        return 0
    if not a.driver:
        ap.error("driver path required")
    res = check_driver(a.driver, wpath)
    if a.json:
        print(json.dumps(res, indent=2))
    else:
        for k, v in res["info"].items():
            print(f"  {k}: {v}")
        for w in res["warnings"]:
            print(f"  warning: {w}")
        for e in res["errors"]:
            print(f"  ERROR: {e}")
        print("PE check:", "ok" if res["ok"] else "FAILED")
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
