#!/usr/bin/env python3
"""Compares the wdk-sys stand-in (tools/wdk-shape/wdk-sys/src/lib.rs) with real bindgen output.

    python3 tools/bindings/compare_generated.py GENERATED_DIR [--wdk-sys-src DIR]

GENERATED_DIR holds windows-drivers-rs's generated bindings of commit d9fcaa21
(crates/wdk-sys/generated_bindings/: ntddk.rs, constants.rs, and types.rs when you have it), for
example from a clone:

    git -C windows-drivers-rs archive d9fcaa21 crates/wdk-sys/generated_bindings | tar -x -C /tmp

--wdk-sys-src is wdk-sys 0.5.2's src/ (cargo's registry cache after `cargo fetch`), for the
constants that wdk-sys writes by hand (STATUS_*, POOL_FLAG_*).

For every item of the stand-in it reports whether the real file has it, and whether it is the
same: functions (parameter names and types, return type, #[must_use]), constants (type and
value), extern statics, and with types.rs also type aliases, struct/union fields and enum
constants. It also checks each provenance comment (`G/ntddk.rs:N`, `G/constants.rs:N`) points
at the line that declares the item. Exit status 1 on any difference. Nothing here is fetched:
the files are read from the given paths, so CI (no network) does not run this; README.md
records its output.
"""
import argparse
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STAND_IN = REPO / "tools/wdk-shape/wdk-sys/src/lib.rs"


def norm_type(text: str) -> str:
    text = re.sub(r"::core::ffi::|::core::option::|::std::os::raw::", "", text)
    return re.sub(r"\s+", " ", text).replace("< ", "<").replace(" >", ">").strip()


def norm_value(text: str) -> int:
    text = text.strip().replace("_", "")
    text = re.sub(r"(i|u)(8|16|32|64|size)$", "", text)
    return int(text, 0)


def split_params(text: str) -> list[tuple[str, str]]:
    params, depth, current = [], 0, ""
    for ch in text:
        if ch in "(<[":
            depth += 1
        elif ch in ")>]":
            depth -= 1
        if ch == "," and depth == 0:
            params.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        params.append(current)
    out = []
    for p in params:
        name, _, ty = p.partition(":")
        out.append((name.strip(), norm_type(ty)))
    return out


FN_RE = re.compile(
    r"(?P<attrs>(?:#\[must_use\]\s*)?)pub fn (?P<name>\w+)\((?P<params>[^;]*?)\)\s*(?:->\s*(?P<ret>[^;]+?))?\s*;",
    re.S,
)


def functions(text: str) -> dict:
    found = {}
    for m in FN_RE.finditer(text):
        line = text.count("\n", 0, m.start("name")) + 1
        found[m["name"]] = {
            "params": split_params(m["params"]),
            "ret": norm_type(m["ret"] or "()"),
            "must_use": bool(m["attrs"].strip()),
            "line": line,
        }
    return found


CONST_RE = re.compile(r"pub const (\w+): ([^=]+?) = ([^;]+);")


def constants(text: str) -> dict:
    found = {}
    for m in CONST_RE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        try:
            value = norm_value(m[3])
        except ValueError:
            continue
        found.setdefault(m[1], {"type": norm_type(m[2]), "value": value, "line": line})
    return found


STATIC_RE = re.compile(r"pub static (mut )?(\w+): ([^;]+);")


def statics(text: str) -> dict:
    return {
        m[2]: {"type": norm_type(m[3]), "mut": bool(m[1]), "line": text.count("\n", 0, m.start()) + 1}
        for m in STATIC_RE.finditer(text)
    }


ALIAS_RE = re.compile(r"pub type (\w+) = ([^;]+);")
RECORD_RE = re.compile(r"pub (struct|union) (\w+) \{(.*?)\n\s*\}", re.S)
ENUM_RE = re.compile(r"pub mod (\w+) \{\s*pub type Type = ([^;]+);(.*?)\n\s*\}", re.S)


def type_items(text: str) -> tuple[dict, dict, dict]:
    aliases = {m[1]: norm_type(m[2]) for m in ALIAS_RE.finditer(text)}
    records = {}
    for m in RECORD_RE.finditer(text):
        fields = re.findall(r"pub (\w+): ([^,]+),", m[3])
        records.setdefault(m[2], (m[1], [(f, norm_type(t)) for f, t in fields]))
    enums = {}
    for m in ENUM_RE.finditer(text):
        values = {n: norm_value(v) for n, v in re.findall(r"pub const (\w+): Type = ([^;]+);", m[3])}
        enums.setdefault(m[1], (norm_type(m[2]), values))
    return aliases, records, enums


def provenance(stand_in: str) -> dict:
    """Item name -> [(file, line)] from the `// G/<file>:<lines>` comments above items."""
    refs: dict = {}
    lines = stand_in.splitlines()
    for i, line in enumerate(lines):
        m = re.search(r"// G/(\w+\.rs):([\d, ]+)", line)
        if not m:
            continue
        numbers = [int(n) for n in re.findall(r"\d+", m[2])]
        names = []
        for follow in lines[i + 1:]:
            stripped = follow.strip()
            if stripped.startswith(("//", "#[")) or re.fullmatch(r'(unsafe )?extern "\w+" \{', stripped):
                if names:
                    break
                continue
            item = re.search(r"pub (?:fn|const|static mut|static) (\w+)", follow)
            if not item:
                break
            names.append(item[1])
            if len(names) == len(numbers):
                break
        for name, number in zip(names, numbers):
            refs[name] = (m[1], number)
    return refs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("generated", type=Path, help="generated_bindings/ of d9fcaa21")
    parser.add_argument("--wdk-sys-src", type=Path, help="wdk-sys 0.5.2's src/ directory")
    parser.add_argument("--stand-in", type=Path, default=STAND_IN)
    args = parser.parse_args()

    stand_in = args.stand_in.read_text()
    ntddk_start = stand_in.index("pub mod ntddk")
    ours_fns = functions(stand_in[ntddk_start:])
    # Enum constants (`pub mod _X { pub const A: Type = .. }`) belong to types.rs.
    ours_consts = constants(ENUM_RE.sub("", stand_in[:ntddk_start]))
    ours_statics = statics(stand_in[:ntddk_start])
    gen = {name: (args.generated / name) for name in ("ntddk.rs", "constants.rs", "types.rs")}
    for name in ("ntddk.rs", "constants.rs"):
        if not gen[name].is_file():
            print(f"compare_generated: {gen[name]} is missing", file=sys.stderr)
            return 2
    ntddk = gen["ntddk.rs"].read_text()
    consts_text = gen["constants.rs"].read_text()
    their_fns = functions(ntddk)
    their_consts = constants(consts_text)
    their_statics = statics(consts_text)
    refs = provenance(stand_in)
    problems = []

    def problem(text: str) -> None:
        problems.append(text)
        print(f"  DIFFERENT {text}")

    def check_ref(name: str, file: str, line: int) -> None:
        ref = refs.get(name)
        if ref is None:
            problem(f"{name}: no `// G/{file}:N` provenance comment")
        elif ref != (file, line):
            problem(f"{name}: provenance says {ref[0]}:{ref[1]}, the file declares it at {file}:{line}")

    print(f"== functions ({len(ours_fns)} in the stand-in's ntddk) against ntddk.rs "
          f"({len(their_fns)} functions)")
    same_fns = 0
    for name, ours in ours_fns.items():
        theirs = their_fns.get(name)
        if theirs is None:
            problem(f"fn {name}: not in ntddk.rs")
            continue
        diffs = [k for k in ("params", "ret", "must_use") if ours[k] != theirs[k]]
        if diffs:
            problem(f"fn {name} (ntddk.rs:{theirs['line']}): {', '.join(diffs)} differ: "
                    f"stand-in {[ours[k] for k in diffs]}, generated {[theirs[k] for k in diffs]}")
        else:
            same_fns += 1
            print(f"  same  fn {name}: ntddk.rs:{theirs['line']}")
        check_ref(name, "ntddk.rs", theirs["line"])
    extern_gen = sorted(set(re.findall(r'^(?:unsafe )?extern "\w+"', ntddk, re.M)))
    extern_ours = sorted(set(re.findall(r'^\s*((?:unsafe )?extern "\w+")', stand_in[ntddk_start:], re.M)))
    print(f"  form: generated blocks {extern_gen}, stand-in {extern_ours} (bindgen 0.69.4 with "
          f"edition 2021 writes `extern`; wdk-sys 0.5.2 builds with edition 2024, `unsafe extern`)")

    print(f"== constants ({len(ours_consts)} in the stand-in) against constants.rs")
    same_consts, hand_written = 0, []
    for name, ours in ours_consts.items():
        theirs = their_consts.get(name)
        if theirs is None:
            hand_written.append(name)
            continue
        if (ours["type"], ours["value"]) != (theirs["type"], theirs["value"]):
            problem(f"const {name} (constants.rs:{theirs['line']}): stand-in {ours['type']} = "
                    f"{ours['value']}, generated {theirs['type']} = {theirs['value']}")
        else:
            same_consts += 1
            print(f"  same  const {name}: {theirs['type']} = {theirs['value']} (constants.rs:{theirs['line']})")
        check_ref(name, "constants.rs", theirs["line"])
    for name, ours in ours_statics.items():
        theirs = their_statics.get(name)
        if theirs is None or (ours["type"], ours["mut"]) != (theirs["type"], theirs["mut"]):
            problem(f"static {name}: stand-in {ours}, generated {theirs}")
        else:
            print(f"  same  static {name}: {theirs['type']} (constants.rs:{theirs['line']})")
            check_ref(name, "constants.rs", theirs["line"])
    print(f"  not in the generated constants.rs: {', '.join(hand_written)}")
    if args.wdk_sys_src:
        handwritten = constants((args.wdk_sys_src / "constants.rs").read_text())
        for name in hand_written:
            theirs = handwritten.get(name)
            ours = ours_consts[name]
            if theirs is None:
                problem(f"const {name}: in neither constants.rs")
            elif ours["value"] != theirs["value"]:
                problem(f"const {name}: stand-in {ours['value']}, wdk-sys {theirs['value']}")
            else:
                print(f"  same  const {name} = {theirs['value']} (wdk-sys 0.5.2 src/constants.rs:{theirs['line']}, written by hand there)")

    if gen["types.rs"].is_file():
        types_text = gen["types.rs"].read_text()
        ours_aliases, ours_records, ours_enums = type_items(stand_in[:ntddk_start])
        their_aliases, their_records, their_enums = type_items(types_text)
        print(f"== types against types.rs ({len(ours_aliases)} aliases, {len(ours_records)} "
              f"structs/unions, {len(ours_enums)} enums in the stand-in)")
        for name, ours in ours_aliases.items():
            theirs = their_aliases.get(name)
            if theirs != ours and not (theirs is None and name in their_enums):
                problem(f"type {name}: stand-in {ours}, generated {theirs}")
        for name, (kind, fields) in ours_records.items():
            theirs = their_records.get(name)
            if theirs is None:
                problem(f"{kind} {name}: not in types.rs")
            elif theirs[0] != kind or any(f not in theirs[1] for f in fields):
                problem(f"{kind} {name}: stand-in {fields}, generated {theirs}")
        for name, (ty, values) in ours_enums.items():
            theirs = their_enums.get(name)
            if theirs is None or theirs[0] != ty or any(theirs[1].get(k) != v for k, v in values.items()):
                problem(f"enum {name}: stand-in {ty} {values}, generated {theirs}")
    else:
        print("== types: types.rs not given (d9fcaa21's types.rs is 6.8 MB; see the stand-in's "
              "`T@` comments)")

    print(f"compare_generated: {same_fns}/{len(ours_fns)} functions and "
          f"{same_consts + len(ours_statics)} constants/statics identical to the generated "
          f"bindings; {len(problems)} difference(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
