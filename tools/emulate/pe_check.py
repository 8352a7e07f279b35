"""Static checks of the demo driver's PE image, parsed with pefile (x86_64 and ARM64).

    python3 tools/emulate/pe_check.py DRIVER.sys [--arch x86_64|aarch64]
                                      [--wine-ntoskrnl PATH] [--negative-controls] [--json]
    python3 tools/emulate/pe_check.py --arch aarch64 --wine-ntoskrnl PATH --wine-has NAME...
    python3 tools/emulate/pe_check.py --wine-ntoskrnl PATH --list-wine-stubs

Run with any python3, it re-executes itself in the harness venv (target/emulate/venv, the
one speakeasy_run.py makes), where pefile and capstone come with speakeasy; pyelftools is
added there for Wine's ARM64 ntoskrnl, which is an ELF file (see `wine_exports`).

What a driver must satisfy (every item is an error, none a warning):
  * machine AMD64 (0x8664) or ARM64 (0xAA64), PE32+, subsystem NATIVE (1);
  * exactly one export, `DriverEntry`, which is also the image entry point;
  * imports by name, from `ntoskrnl.exe` only, and each one a non-stub export of Wine's
    ntoskrnl for the same architecture (a missing Wine ntoskrnl is an error too), except
    the few routines listed in `DOCUMENTED_NOT_IN_WINE` for that architecture;
  * imports the architecture requires (`REQUIRED_IMPORTS`: on ARM64 the IRQL comes from
    the `KeGetCurrentIrql` import, there is no CR8);
  * no section both writable and executable, code sections executable;
  * the PE checksum set and equal to the one computed over the file;
  * stack commit 0x6000 (speakeasy uses it as the thread stack size).
`--negative-controls` then breaks a copy of the image in each of those ways and requires
every broken copy to be rejected for the reason broken.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import HarnessError  # noqa: E402

PYELFTOOLS = "pyelftools==0.33"
STACK_COMMIT = 0x6000
ALLOWED_IMPORT_DLLS = ("ntoskrnl.exe",)
# A winebuild `@ stub` export is a tiny thunk that branches into one shared "unimplemented"
# reporter, so all stubs share their first branch target; real functions do not. A group
# of at least this many exports with the same first direct branch target is taken as the
# stubs (Wine 8.0: 700+ on both architectures); finding no such group is an error.
STUB_GROUP_MIN = 20


@dataclass(frozen=True)
class Arch:
    name: str
    machine: int
    wine_dir: str                       # Wine's directory of this architecture's PE files
    required_imports: tuple[str, ...]   # REQUIRED_IMPORTS
    documented_not_in_wine: dict        # DOCUMENTED_NOT_IN_WINE


ARCHES = {
    "x86_64": Arch("x86_64", 0x8664, "x86_64-windows", (), {}),
    "aarch64": Arch(
        "aarch64", 0xAA64, "aarch64-windows", ("KeGetCurrentIrql",),
        # Wine 8.0 exports KeGetCurrentIrql on neither x86_64 nor arm64 (hal.dll has it on
        # i386 only). Microsoft's DDI reference page for KeGetCurrentIrql (wdm.h) gives
        # "DLL: NtosKrnl.exe, Library: NtosKrnl.lib, Target platform: Universal"; on x64
        # the library reads CR8 instead, so only ARM64 imports it.
        {"KeGetCurrentIrql": "Microsoft DDI reference: KeGetCurrentIrql, DLL NtosKrnl.exe"}),
}
REQUIRED_IMPORTS = {a.name: a.required_imports for a in ARCHES.values()}
DOCUMENTED_NOT_IN_WINE = {a.name: a.documented_not_in_wine for a in ARCHES.values()}


# -- running inside the venv ------------------------------------------------------------

def _venv_python() -> Path:
    """The harness venv's python, with pyelftools added (pefile/capstone come with speakeasy)."""
    import speakeasy_run  # noqa: PLC0415  (stdlib-only module; owns the venv)
    py = speakeasy_run.ensure_venv()
    probe = subprocess.run([str(py), "-c", "import pefile, capstone, elftools"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        res = subprocess.run([str(py), "-m", "pip", "install", "-q", PYELFTOOLS],
                             capture_output=True, text=True)
        if res.returncode != 0:
            raise HarnessError(f"pip install {PYELFTOOLS} into the venv failed:\n"
                               f"{res.stdout[-2000:]}{res.stderr[-2000:]}")
    return py


def _in_venv() -> bool:
    """Whether this interpreter is the harness venv's (the checks always run there)."""
    from speakeasy_run import VENV  # noqa: PLC0415
    return Path(sys.prefix).resolve() == VENV.resolve()


def check_many(jobs: list[dict]) -> list[dict]:
    """Runs `check_job` for each job (keys: driver, arch, wine_ntoskrnl, negative_controls)
    in the venv's python, one process for all; returns their results in order."""
    if _in_venv():
        return [check_job(j) for j in jobs]
    py = _venv_python()
    res = subprocess.run([str(py), __file__, "--batch", "-"], input=json.dumps(jobs),
                         capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        raise HarnessError(f"pe_check in the venv failed (rc={res.returncode}):\n"
                           f"{res.stderr[-4000:]}")
    return json.loads(res.stdout)


# -- locating Wine's ntoskrnl -----------------------------------------------------------

def wine_ntoskrnl_path(arch: str = "x86_64") -> Path | None:
    """Wine's ntoskrnl of an architecture, if present: x86_64 from the installed wine64
    package, aarch64 from the copy wine.ensure_arm64_ntoskrnl extracts."""
    if arch == "aarch64":
        from wine import ARM64_DIR, ARM64_NTOSKRNL  # noqa: PLC0415
        path = ARM64_DIR / ARM64_NTOSKRNL
        return path if path.is_file() else None
    want = f"/{ARCHES[arch].wine_dir}/ntoskrnl.exe"
    for pkg in ("wine64", "libwine"):
        try:
            out = subprocess.run(["dpkg", "-L", pkg], capture_output=True, text=True).stdout
        except FileNotFoundError:
            return None
        for line in out.splitlines():
            if line.endswith(want):
                return Path(line)
    return None


# -- the facts the checks read ----------------------------------------------------------

@dataclass
class Image:
    path: str
    size: int
    machine: int
    magic: int
    subsystem: int
    entry_rva: int
    checksum: int
    computed_checksum: int
    stack_reserve: int
    stack_commit: int
    exports: list = field(default_factory=list)    # [name or "#ordinal", rva]
    imports: dict = field(default_factory=dict)    # dll -> [name or "#ordinal"]
    sections: list = field(default_factory=list)   # [name, characteristics, vsize]


def read_image(data: bytes, path: str = "<bytes>") -> Image:
    import pefile  # noqa: PLC0415
    pe = pefile.PE(data=data)
    oh = pe.OPTIONAL_HEADER
    img = Image(path=path, size=len(data), machine=pe.FILE_HEADER.Machine, magic=oh.Magic,
                subsystem=oh.Subsystem, entry_rva=oh.AddressOfEntryPoint,
                checksum=oh.CheckSum, computed_checksum=pe.generate_checksum(),
                stack_reserve=oh.SizeOfStackReserve, stack_commit=oh.SizeOfStackCommit)
    export_dir = getattr(pe, "DIRECTORY_ENTRY_EXPORT", None)
    for sym in export_dir.symbols if export_dir else ():
        name = sym.name.decode("ascii", "replace") if sym.name else f"#{sym.ordinal}"
        img.exports.append([name, sym.address])
    for desc in getattr(pe, "DIRECTORY_ENTRY_IMPORT", ()):
        dll = desc.dll.decode("ascii", "replace")
        img.imports.setdefault(dll, []).extend(
            imp.name.decode("ascii", "replace") if imp.name else f"#{imp.ordinal}"
            for imp in desc.imports)
    for s in pe.sections:
        img.sections.append([s.Name.rstrip(b"\0").decode("ascii", "replace"),
                             s.Characteristics, s.Misc_VirtualSize])
    return img


# -- Wine's ntoskrnl exports ------------------------------------------------------------

@dataclass
class WineExports:
    path: str
    machine: int
    names: set
    stubs: set
    layout: str        # "PE" or "ELF builtin"


def _first_branch_target(md, code: bytes, address: int) -> int | None:
    """Target of the first direct call/branch among the first instructions, if any."""
    for n, insn in enumerate(md.disasm(code, address)):
        if insn.mnemonic in ("call", "jmp", "bl", "b"):
            op = insn.op_str.lstrip("#")
            try:
                return int(op, 16) if op.startswith("0x") else int(op)
            except ValueError:
                return None     # indirect
        if insn.mnemonic.startswith("ret") or n >= 8:
            return None
    return None


def _stubs(md, bodies: dict[str, tuple[int, bytes]]) -> set[str]:
    groups: dict[int, list[str]] = {}
    for name, (address, code) in bodies.items():
        target = _first_branch_target(md, code, address)
        if target is not None:
            groups.setdefault(target, []).append(name)
    big = [names for names in groups.values() if len(names) >= STUB_GROUP_MIN]
    if not big:
        raise HarnessError(f"no group of >= {STUB_GROUP_MIN} exports shares a branch target: "
                           "the stub heuristic does not fit this Wine build")
    return {n for names in big for n in names}


def _disassembler(machine: int):
    import capstone  # noqa: PLC0415
    if machine == ARCHES["x86_64"].machine:
        return capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    if machine == ARCHES["aarch64"].machine:
        return capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    raise HarnessError(f"no disassembler for machine {machine:#x}")


def _pe_exports(path: Path) -> WineExports:
    import pefile  # noqa: PLC0415
    pe = pefile.PE(str(path))
    if not hasattr(pe, "DIRECTORY_ENTRY_EXPORT"):
        raise HarnessError(f"{path} has no export table (a Wine placeholder? Wine's ARM64 "
                           "ntoskrnl is the ELF aarch64-unix/ntoskrnl.exe.so)")
    exec_flag = pefile.SECTION_CHARACTERISTICS["IMAGE_SCN_MEM_EXECUTE"]
    bodies = {}
    for sym in pe.DIRECTORY_ENTRY_EXPORT.symbols:
        if not sym.name or sym.forwarder:
            continue
        sec = pe.get_section_by_rva(sym.address)
        if sec is None or not sec.Characteristics & exec_flag:
            continue    # a data export
        bodies[sym.name.decode()] = (sym.address, pe.get_data(sym.address, 32))
    names = {s.name.decode() for s in pe.DIRECTORY_ENTRY_EXPORT.symbols if s.name}
    return WineExports(str(path), pe.FILE_HEADER.Machine, names,
                       _stubs(_disassembler(pe.FILE_HEADER.Machine), bodies), "PE")


def _elf_exports(path: Path) -> WineExports:
    """Exports of a Wine builtin built as an ELF shared object (Debian's arm64 Wine 8.0
    ships ntoskrnl that way; its aarch64-windows/ntoskrnl.exe is a code-less placeholder).

    winebuild puts an IMAGE_NT_HEADERS in the .so at the dynamic symbol
    `__wine_spec_nt_header`; the RVAs in it and in its export directory are relative to
    that header (Wine's loader rebases them at load time), except AddressOfFunctions,
    whose entries are either 4-byte RVAs or, as measured in this build, 8-byte pointers.
    pefile's structure definitions decode the headers; pyelftools maps addresses."""
    import pefile  # noqa: PLC0415
    from elftools.elf.elffile import ELFFile  # noqa: PLC0415

    with open(path, "rb") as f:
        elf = ELFFile(f)
        dynsym = elf.get_section_by_name(".dynsym")
        found = dynsym.get_symbol_by_name("__wine_spec_nt_header") if dynsym else None
        if not found:
            raise HarnessError(f"{path}: no __wine_spec_nt_header symbol (not a Wine builtin?)")
        base = found[0]["st_value"]
        segments = [(s["p_vaddr"], s.data()) for s in elf.iter_segments()
                    if s["p_type"] == "PT_LOAD"]

    def read(address: int, size: int) -> bytes | None:
        for vaddr, data in segments:
            if vaddr <= address and address + size <= vaddr + len(data):
                return data[address - vaddr:address - vaddr + size]
        return None

    def need(address: int, size: int) -> bytes:
        data = read(address, size)
        if data is None:
            raise HarnessError(f"{path}: address {address:#x} (+{size}) is outside the file")
        return data

    def cstr(address: int) -> str:
        out = bytearray()
        while (b := need(address + len(out), 1)) != b"\0":
            out += b
        return out.decode("ascii", "replace")

    def unpack(fmt, address: int):
        s = pefile.Structure(fmt)
        s.__unpack__(need(address, s.sizeof()))
        return s

    if need(base, 4) != b"PE\0\0":
        raise HarnessError(f"{path}: __wine_spec_nt_header has no PE signature")
    fh = unpack(pefile.PE.__IMAGE_FILE_HEADER_format__, base + 4)
    oh = unpack(pefile.PE.__IMAGE_OPTIONAL_HEADER64_format__, base + 24)
    if oh.Magic != pefile.OPTIONAL_HEADER_MAGIC_PE_PLUS or oh.NumberOfRvaAndSizes < 1:
        raise HarnessError(f"{path}: unexpected optional header (magic {oh.Magic:#x})")
    export_dir = unpack(pefile.PE.__IMAGE_DATA_DIRECTORY_format__, base + 24 + oh.sizeof())
    ed = unpack(pefile.PE.__IMAGE_EXPORT_DIRECTORY_format__, base + export_dir.VirtualAddress)
    if cstr(base + ed.Name).lower() != "ntoskrnl.exe":
        raise HarnessError(f"{path}: export directory names {cstr(base + ed.Name)!r}")
    stride = (ed.AddressOfNames - ed.AddressOfFunctions) // max(ed.NumberOfFunctions, 1)
    if stride not in (4, 8):
        raise HarnessError(f"{path}: cannot tell the AddressOfFunctions entry size")
    bodies, names = {}, set()
    for i in range(ed.NumberOfNames):
        name_rva = int.from_bytes(need(base + ed.AddressOfNames + 4 * i, 4), "little")
        index = int.from_bytes(need(base + ed.AddressOfNameOrdinals + 2 * i, 2), "little")
        name = cstr(base + name_rva)
        names.add(name)
        entry = int.from_bytes(need(base + ed.AddressOfFunctions + stride * index, stride),
                               "little")
        address = entry if stride == 8 else (base + entry) & 0xFFFF_FFFF_FFFF
        code = read(address, 32)
        if entry and code is not None:       # data exports live in .bss
            bodies[name] = (address, code)
    return WineExports(str(path), fh.Machine, names,
                       _stubs(_disassembler(fh.Machine), bodies), "ELF builtin")


_WINE_CACHE: dict[str, WineExports] = {}


def wine_exports(path: str | Path) -> WineExports:
    path = Path(path)
    key = str(path.resolve())
    if key not in _WINE_CACHE:
        with open(path, "rb") as f:
            magic = f.read(4)
        _WINE_CACHE[key] = _elf_exports(path) if magic == b"\x7fELF" else _pe_exports(path)
    return _WINE_CACHE[key]


# -- the checks ----------------------------------------------------------------------------

def check_image(img: Image, arch: str, wine: WineExports | None,
                allowed_exports: tuple[str, ...] = ("DriverEntry",)) -> list[str]:
    """The errors of one image (empty: it passes)."""
    import pefile  # noqa: PLC0415
    a = ARCHES[arch]
    errors: list[str] = []
    if img.machine != a.machine:
        errors.append(f"machine {img.machine:#x} is not {a.name} ({a.machine:#x})")
    if img.magic != pefile.OPTIONAL_HEADER_MAGIC_PE_PLUS:
        errors.append(f"not PE32+ (optional header magic {img.magic:#x})")
    native = pefile.SUBSYSTEM_TYPE["IMAGE_SUBSYSTEM_NATIVE"]
    if img.subsystem != native:
        errors.append(f"subsystem {img.subsystem} is not NATIVE ({native})")
    names = sorted(n for n, _ in img.exports)
    if names != sorted(allowed_exports):
        errors.append(f"exports are {names}, expected exactly {list(allowed_exports)}")
    entry = next((rva for n, rva in img.exports if n == "DriverEntry"), None)
    if entry is None:
        errors.append("no DriverEntry export")
    elif entry != img.entry_rva:
        errors.append(f"entry point RVA {img.entry_rva:#x} != DriverEntry export RVA {entry:#x}")
    for dll, funcs in img.imports.items():
        if dll.lower() not in ALLOWED_IMPORT_DLLS:
            errors.append(f"imports from {dll} (allowed: {list(ALLOWED_IMPORT_DLLS)})")
        by_ordinal = [f for f in funcs if f.startswith("#")]
        if by_ordinal:
            errors.append(f"imports by ordinal from {dll}: {by_ordinal}")
    write = pefile.SECTION_CHARACTERISTICS["IMAGE_SCN_MEM_WRITE"]
    execute = pefile.SECTION_CHARACTERISTICS["IMAGE_SCN_MEM_EXECUTE"]
    code = pefile.SECTION_CHARACTERISTICS["IMAGE_SCN_CNT_CODE"]
    for name, flags, _ in img.sections:
        if flags & write and flags & execute:
            errors.append(f"section {name} is writable and executable")
        if flags & code and not flags & execute:
            errors.append(f"section {name} holds code but is not executable")
    if img.checksum == 0:
        errors.append("PE checksum is 0 (Windows refuses to load such a driver)")
    elif img.checksum != img.computed_checksum:
        errors.append(f"PE checksum {img.checksum:#x} != computed {img.computed_checksum:#x}")
    if img.stack_commit != STACK_COMMIT:
        errors.append(f"stack commit {img.stack_commit:#x} != {STACK_COMMIT:#x} "
                      "(speakeasy uses it as the thread stack size)")

    kernel = [f for dll, funcs in img.imports.items() if dll.lower() == "ntoskrnl.exe"
              for f in funcs]
    for name in a.required_imports:
        if name not in kernel:
            errors.append(f"{name} is not imported (required on {a.name})")
    if wine is None:
        errors.append(f"Wine's {a.name} ntoskrnl not found: the imports cannot be checked "
                      "against it")
    elif wine.machine != a.machine:
        errors.append(f"Wine's ntoskrnl {wine.path} is for machine {wine.machine:#x}, "
                      f"not {a.name}")
    else:
        missing = [f for f in kernel if f not in wine.names
                   and f not in a.documented_not_in_wine]
        stubbed = [f for f in kernel if f in wine.stubs]
        if missing:
            errors.append(f"imported but not exported by Wine's ntoskrnl: {missing}")
        if stubbed:
            errors.append(f"imported but only a stub in Wine's ntoskrnl: {stubbed}")
    return errors


def summary(img: Image, wine: WineExports | None, arch: str) -> dict:
    a = ARCHES[arch]
    kernel = img.imports.get("ntoskrnl.exe", [])
    return {
        "path": img.path, "arch": arch, "size": img.size, "machine": hex(img.machine),
        "subsystem": img.subsystem, "entry_rva": hex(img.entry_rva),
        "exports": [n for n, _ in img.exports], "imports": img.imports,
        "sections": [f"{n} {flags:#010x} vsize={vs:#x}" for n, flags, vs in img.sections],
        "stack": [hex(img.stack_reserve), hex(img.stack_commit)],
        "checksum": hex(img.checksum),
        "wine_ntoskrnl": wine.path if wine else None,
        "wine_layout": wine.layout if wine else None,
        "wine_exports": len(wine.names) if wine else None,
        "wine_stubs": len(wine.stubs) if wine else None,
        "accepted_without_wine": [f for f in kernel if f in a.documented_not_in_wine
                                  and (wine is None or f not in wine.names)],
    }


# -- negative controls ------------------------------------------------------------------

def _rebuild(data: bytes, edit) -> bytes:
    """A copy of the image with `edit(pe)` applied and the checksum recomputed, so only
    the intended property breaks."""
    import pefile  # noqa: PLC0415
    pe = pefile.PE(data=data)
    edit(pe)
    fixed = pefile.PE(data=bytes(pe.write()))
    fixed.OPTIONAL_HEADER.CheckSum = fixed.generate_checksum()
    return bytes(fixed.write())


def _patch_string(data: bytes, offset: int, old: bytes, new: bytes) -> bytes:
    assert len(old) == len(new) and data[offset:offset + len(old)] == old
    return data[:offset] + new + data[offset + len(old):]


def negative_controls(data: bytes, arch: str, wine: WineExports) -> list[dict]:
    """Breaks copies of a passing image one way each; every copy must be rejected with an
    error naming what was broken. Returns [{"control", "expect", "errors", "rejected"}]."""
    import pefile  # noqa: PLC0415
    a = ARCHES[arch]
    pe = pefile.PE(data=data)
    other = ARCHES["aarch64" if arch == "x86_64" else "x86_64"].machine
    text = next(s for s in pe.sections if s.Name.startswith(b".text"))
    export = pe.DIRECTORY_ENTRY_EXPORT.symbols[0]
    desc = pe.DIRECTORY_ENTRY_IMPORT[0]
    dll_off = pe.get_offset_from_rva(desc.struct.Name)
    victim = next(i for i in desc.imports if i.name == b"ZwClose")
    stub = sorted(wine.stubs)[0]

    def setter(obj, attr, value):
        return lambda p: setattr(obj(p), attr, value)

    def flip_last_byte(d: bytes) -> bytes:   # a byte inside .text, checksum left as it was
        off = text.PointerToRawData + text.Misc_VirtualSize - 1
        return d[:off] + bytes([d[off] ^ 0xFF]) + d[off + 1:]

    byte_controls = [
        ("machine", "machine", _rebuild(data, setter(lambda p: p.FILE_HEADER, "Machine", other))),
        ("subsystem WINDOWS_GUI", "subsystem",
         _rebuild(data, setter(lambda p: p.OPTIONAL_HEADER, "Subsystem", 2))),
        ("entry point moved", "entry point",
         _rebuild(data, setter(lambda p: p.OPTIONAL_HEADER, "AddressOfEntryPoint",
                               pe.OPTIONAL_HEADER.AddressOfEntryPoint + 16))),
        ("stack commit", "stack commit",
         _rebuild(data, setter(lambda p: p.OPTIONAL_HEADER, "SizeOfStackCommit", 0x1000))),
        (".text writable", "writable and executable",
         _rebuild(data, lambda p: setattr(
             next(s for s in p.sections if s.Name.startswith(b".text")), "Characteristics",
             text.Characteristics | pefile.SECTION_CHARACTERISTICS["IMAGE_SCN_MEM_WRITE"]))),
        ("code byte changed", "checksum", flip_last_byte(data)),
        ("checksum 0", "checksum", bytes(_zero_checksum(data))),
        ("export renamed", "exports",
         _rebuild(_patch_string(data, export.name_offset, b"DriverEntry", b"DriverEntrz"),
                  lambda p: None)),
        ("import DLL renamed", "imports from",
         _rebuild(_patch_string(data, dll_off, b"ntoskrnl.exe", b"ntoskrnl.exf"),
                  lambda p: None)),
        ("unknown import", "not exported by Wine",
         _rebuild(_patch_string(data, victim.name_offset, b"ZwClose", b"ZwClosf"),
                  lambda p: None)),
    ]
    results = []
    for label, expect, broken in byte_controls:
        errs = check_image(read_image(broken, label), arch, wine)
        results.append({"control": label, "expect": expect, "errors": errs,
                        "rejected": any(expect in e for e in errs)})
    # Controls on the parsed facts (no byte edit makes these cleanly).
    img = read_image(data)
    fact_controls = [("stub import", "stub", lambda i: i.imports["ntoskrnl.exe"].append(stub)),
                     ("no Wine ntoskrnl", "not found", None)]
    for name in a.required_imports:
        fact_controls.append((f"{name} not imported", name,
                              lambda i, n=name: i.imports["ntoskrnl.exe"].remove(n)))
    for label, expect, edit in fact_controls:
        broken = copy.deepcopy(img)
        if edit:
            edit(broken)
        errs = check_image(broken, arch, wine if edit else None)
        results.append({"control": label, "expect": expect, "errors": errs,
                        "rejected": any(expect in e for e in errs)})
    return results


def _zero_checksum(data: bytes) -> bytes:
    import pefile  # noqa: PLC0415
    pe = pefile.PE(data=data)
    pe.OPTIONAL_HEADER.CheckSum = 0
    return bytes(pe.write())


# -- the runtime shims, executed ----------------------------------------------------------

IMAGE_BASE = 0x1000_0000
STACK_TOP = 0x2001_0000          # the stack region is [STACK_TOP - 64 KiB, STACK_TOP)
STACK_SIZE = 0x1_0000
RETURN_ADDRESS = 0x3000_0000     # mapped; reaching it ends the emulation
PAGE = 0x1000
# Frame sizes handed to __chkstk (multiples of 16: the ARM64 contract passes size / 16).
CHKSTK_SIZES = (0x10, 0xFF0, 0x1000, 0x1010, 0x2000, 0x2FF0, 0x5FF0)


def _emulator(arch: str):
    import unicorn  # noqa: PLC0415
    from unicorn import arm64_const as A, x86_const as X  # noqa: N812, PLC0415
    if arch == "x86_64":
        uc = unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_64)
        regs = {f"r{n}": getattr(X, f"UC_X86_REG_R{n.upper()}") for n in
                ("ax", "bx", "cx", "dx", "si", "di", "bp", "8", "9", "10", "11", "12", "13",
                 "14", "15")}
        return uc, regs, X.UC_X86_REG_RSP, X.UC_X86_REG_RIP, {"rax": "size"}
    uc = unicorn.Uc(unicorn.UC_ARCH_ARM64, unicorn.UC_MODE_ARM)
    regs = {f"x{n}": getattr(A, f"UC_ARM64_REG_X{n}") for n in range(29)}
    regs["x29"], regs["x30"] = A.UC_ARM64_REG_X29, A.UC_ARM64_REG_X30
    return uc, regs, A.UC_ARM64_REG_SP, A.UC_ARM64_REG_PC, {"x15": "size16"}


def _call(image: bytes, arch: str, entry_rva: int, size: int) -> dict:
    """Calls the routine at entry_rva as a prologue would call __chkstk with `size`; returns
    the registers before/after, the stack reads/writes and the caller's stack pointer."""
    import unicorn  # noqa: PLC0415
    uc, regs, sp_reg, pc_reg, size_reg = _emulator(arch)
    uc.mem_map(IMAGE_BASE, (len(image) + PAGE - 1) // PAGE * PAGE)
    uc.mem_write(IMAGE_BASE, image)
    uc.mem_map(STACK_TOP - STACK_SIZE, STACK_SIZE)
    uc.mem_map(RETURN_ADDRESS, PAGE)
    before = {name: 0x1111_0000_0000 + 0x101 * i for i, name in enumerate(regs)}
    (size_name, how), = size_reg.items()
    before[size_name] = size if how == "size" else size // 16
    caller_sp = STACK_TOP - 0x100
    for name, value in before.items():
        uc.reg_write(regs[name], value)
    if arch == "x86_64":     # `call __chkstk`: the return address is pushed
        uc.mem_write(caller_sp - 8, RETURN_ADDRESS.to_bytes(8, "little"))
        uc.reg_write(sp_reg, caller_sp - 8)
    else:                    # `bl __chkstk`: the return address is in x30
        before["x30"] = RETURN_ADDRESS
        uc.reg_write(regs["x30"], RETURN_ADDRESS)
        uc.reg_write(sp_reg, caller_sp)
    reads: list[int] = []
    writes: list[int] = []
    uc.hook_add(unicorn.UC_HOOK_MEM_READ,
                lambda _uc, _acc, addr, _size, _val, _ud: reads.append(addr))
    uc.hook_add(unicorn.UC_HOOK_MEM_WRITE,
                lambda _uc, _acc, addr, _size, _val, _ud: writes.append(addr))
    error = None
    try:
        uc.emu_start(IMAGE_BASE + entry_rva, RETURN_ADDRESS, count=100_000)
    except unicorn.UcError as e:
        error = str(e)
    after = {name: uc.reg_read(reg) for name, reg in regs.items()}
    return {"before": before, "after": after, "sp": uc.reg_read(sp_reg),
            "pc": uc.reg_read(pc_reg), "caller_sp": caller_sp, "error": error,
            "reads": [r for r in reads if STACK_TOP - STACK_SIZE <= r < STACK_TOP],
            "writes": [w for w in writes if STACK_TOP - STACK_SIZE <= w < STACK_TOP]}


def _probes(r: dict, arch: str) -> list[int] | None:
    """The stack reads that are probes. On x86_64 the last three reads are `pop rax`,
    `pop rcx` and `ret` (None if they are not)."""
    if arch == "aarch64":
        return r["reads"]
    sp = r["caller_sp"]
    if r["reads"][-3:] != [sp - 24, sp - 16, sp - 8]:
        return None
    return r["reads"][:-3]


def _chkstk_errors(r: dict, arch: str, size: int) -> list[str]:
    """The __chkstk contract of each architecture (see examples/common/kernel_rt.rs)."""
    errs = []
    if r["error"] or r["pc"] != RETURN_ADDRESS:
        return [f"did not return (pc={r['pc']:#x}, {r['error']})"]
    caller_sp = r["caller_sp"]
    may_change = {"x86_64": set(), "aarch64": {"x16", "x17"}}[arch]
    changed = sorted(n for n in r["before"] if n not in may_change
                     and r["before"][n] != r["after"][n])
    if changed:
        errs.append(f"registers changed: {changed}")
    if r["sp"] != caller_sp:
        errs.append(f"stack pointer {r['sp']:#x} != the caller's {caller_sp:#x} after return")
    # x86_64 saves two registers just below the return address; ARM64 stores nothing.
    allowed_writes = range(caller_sp - 24, caller_sp - 8) if arch == "x86_64" else range(0)
    stray = [w for w in r["writes"] if w not in allowed_writes]
    if stray:
        errs.append(f"stores to the stack at {[hex(w) for w in stray[:4]]}")
    probes = _probes(r, arch)
    if probes is None:
        return errs + ["the saved registers and the return address were not read back last"]
    outside = [a for a in probes if a < caller_sp - size]
    probes = [a for a in probes if caller_sp - size <= a < caller_sp]
    if outside:
        errs.append(f"reads below the new frame: {[hex(a) for a in outside[:4]]}")
    if not probes:
        return errs + ["no probe of the new frame"]
    if probes != sorted(probes, reverse=True):
        errs.append("probes are not in top-down order")
    if caller_sp - probes[0] > PAGE or any(a - b > PAGE for a, b in zip(probes, probes[1:])):
        errs.append("a page of the new frame was skipped")
    if probes[-1] - (caller_sp - size) >= PAGE:
        errs.append(f"the lowest page of the new frame was not probed "
                    f"(lowest probe {probes[-1]:#x}, frame bottom {caller_sp - size:#x})")
    return errs


def check_runtime_shims(path: str | Path, arch: str) -> dict:
    """Executes the image's `__chkstk` (for several frame sizes) and `__CxxFrameHandler3`
    under unicorn. The image must export both (the `shims` variant: /EXPORT link args).
    A copy whose `__chkstk` returns at once must fail the same checks (negative control)."""
    import pefile  # noqa: PLC0415
    pe = pefile.PE(str(path))
    image = bytes(pe.get_memory_mapped_image(ImageBase=IMAGE_BASE))
    exports = {s.name.decode(): s.address for s in pe.DIRECTORY_ENTRY_EXPORT.symbols if s.name}
    errors, figures = [], []
    if "__chkstk" not in exports or "__CxxFrameHandler3" not in exports:
        return {"ok": False, "errors": [f"{path} does not export __chkstk and "
                                        "__CxxFrameHandler3"], "figures": []}
    rva = exports["__chkstk"]
    for size in CHKSTK_SIZES:
        r = _call(image, arch, rva, size)
        errs = _chkstk_errors(r, arch, size)
        errors += [f"__chkstk({size:#x}): {e}" for e in errs]
        offsets = [r["caller_sp"] - a for a in _probes(r, arch) or []
                   if r["caller_sp"] - size <= a < r["caller_sp"]]
        figures.append(f"{size:#x}: probes at sp-" + ",-".join(f"{o:#x}" for o in offsets))
    ret = {"x86_64": b"\xc3", "aarch64": (0xD65F03C0).to_bytes(4, "little")}[arch]
    broken = image[:rva] + ret + image[rva + len(ret):]
    control = _chkstk_errors(_call(broken, arch, rva, 0x2000), arch, 0x2000)
    if not control:
        errors.append("negative control: a __chkstk that returns at once was accepted")
    r = _call(image, arch, exports["__CxxFrameHandler3"], 0)
    value = r["after"]["rax" if arch == "x86_64" else "x0"] & 0xFFFF_FFFF
    if r["pc"] != RETURN_ADDRESS or value != 1:
        errors.append(f"__CxxFrameHandler3 returned {value:#x} (pc {r['pc']:#x}), expected 1")
    return {"ok": not errors, "errors": errors, "figures": figures,
            "control": control[:1]}


# -- entry points -------------------------------------------------------------------------

def check_job(job: dict) -> dict:
    """job: driver, arch, wine_ntoskrnl (path or None), negative_controls (bool); or
    shims (path of an image exporting the runtime shims) and arch."""
    arch = job.get("arch", "x86_64")
    if job.get("shims"):
        return check_runtime_shims(job["shims"], arch)
    path = Path(job["driver"])
    data = path.read_bytes()
    wine = None
    wine_error = None
    wpath = job.get("wine_ntoskrnl") or wine_ntoskrnl_path(arch)
    if wpath:
        try:
            wine = wine_exports(wpath)
        except HarnessError as e:
            wine_error = str(e)
    img = read_image(data, str(path))
    errors = check_image(img, arch, wine)
    if wine_error:
        errors.append(f"Wine's ntoskrnl {wpath} could not be read: {wine_error}")
    res = {"ok": not errors, "errors": errors, "info": summary(img, wine, arch)}
    if job.get("negative_controls"):
        if errors or wine is None:
            res["controls"] = []
            res["errors"].append("negative controls need a passing image and Wine's ntoskrnl")
            res["ok"] = False
        else:
            res["controls"] = negative_controls(data, arch, wine)
            not_rejected = [c["control"] for c in res["controls"] if not c["rejected"]]
            if not_rejected:
                res["errors"].append(f"negative controls NOT rejected: {not_rejected}")
                res["ok"] = False
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("driver", nargs="?")
    ap.add_argument("--arch", choices=sorted(ARCHES), default="x86_64")
    ap.add_argument("--wine-ntoskrnl", type=Path)
    ap.add_argument("--negative-controls", action="store_true",
                    help="also require broken copies of the image to be rejected")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--batch", metavar="FILE", help="JSON list of jobs ('-': stdin); "
                    "prints the JSON list of results (used by run.py)")
    ap.add_argument("--list-wine-stubs", action="store_true",
                    help="print the Wine ntoskrnl exports that look like stubs and exit")
    ap.add_argument("--wine-has", nargs="+", metavar="NAME",
                    help="report whether Wine's ntoskrnl exports NAME (and whether it is a stub)")
    a = ap.parse_args(argv)
    if not _in_venv():
        try:
            py = _venv_python()
        except HarnessError as e:
            print(f"HARNESS ERROR: {e}", file=sys.stderr)
            return 2
        os.execv(str(py), [str(py), __file__, *(argv if argv is not None else sys.argv[1:])])
    try:
        if a.batch:
            jobs = json.loads(sys.stdin.read() if a.batch == "-" else Path(a.batch).read_text())
            print(json.dumps([check_job(j) for j in jobs]))
            return 0
        if a.list_wine_stubs or a.wine_has:
            wpath = a.wine_ntoskrnl or wine_ntoskrnl_path(a.arch)
            if wpath is None:
                print(f"Wine's {a.arch} ntoskrnl not found (give --wine-ntoskrnl)",
                      file=sys.stderr)
                return 2
            w = wine_exports(wpath)
            if a.list_wine_stubs:
                print("\n".join(sorted(w.stubs)))
                print(f"# {len(w.stubs)} stubs of {len(w.names)} exports in {wpath} "
                      f"({w.layout})", file=sys.stderr)
            for n in a.wine_has or ():
                print(f"{n}: {'stub' if n in w.stubs else 'exported' if n in w.names else 'MISSING'}")
            return 0
        if not a.driver:
            ap.error("driver path required")
        res = check_job({"driver": a.driver, "arch": a.arch,
                         "wine_ntoskrnl": str(a.wine_ntoskrnl) if a.wine_ntoskrnl else None,
                         "negative_controls": a.negative_controls})
    except HarnessError as e:
        print(f"HARNESS ERROR: {e}", file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps(res, indent=2))
    else:
        for k, v in res["info"].items():
            print(f"  {k}: {v}")
        for c in res.get("controls", ()):
            print(f"  control {c['control']}: {'rejected' if c['rejected'] else 'NOT rejected'}"
                  f" ({len(c['errors'])} error(s), expected one naming {c['expect']!r})")
        for e in res["errors"]:
            print(f"  ERROR: {e}")
        print("PE check:", "ok" if res["ok"] else "FAILED")
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
