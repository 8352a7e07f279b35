"""Run the demo driver under speakeasy 1.5.11 and summarise its API trace as JSON.

    python3 tools/emulate/speakeasy_run.py DRIVER.sys [--mode eager|queued] [--out FILE]

Without speakeasy importable, this script creates/reuses the venv at target/emulate/venv
(python3.11 + speakeasy-emulator==1.5.11) and re-executes itself inside it.

Modes:
  eager   PsCreateSystemThread runs the start routine to completion (on its own 24 KiB
          stack, as the new thread object) before returning, so joins see results.
  queued  speakeasy's own semantics: threads run after DriverEntry returns, in order.
DriverUnload is called at the end if DriverEntry set it (speakeasy only does that with
all_entrypoints=True, which also runs every export as code).

Parked threads (both modes): speakeasy's KeDelayExecutionThread returns at once, so a thread
that sleeps forever (the leak variants' `loop { sleep(10 ms) }`) would never end: in eager
mode inside the PsCreateSystemThread hook, i.e. inside DriverEntry; in queued mode until
speakeasy's per-run limits stop it. After PARK_SLEEPS consecutive KeDelayExecutionThread calls
of one system thread (no other kernel call in between), the harness ends that thread's run the
way it handles PsTerminateSystemThread (eager: back to the creator; queued: the next run) and
records a `ThreadParked` event. The thread never returned, so whatever it owns stays owned:
the library must still count it in DriverUnload. checks.py accepts a parked thread only in the
leak variants.

Instruction counts (eager mode): a unicorn code hook limited to the driver image counts every
instruction executed inside it, per thread depth (DriverEntry's code, or a start routine that
the eager PsCreateSystemThread hook runs, one level deeper per nesting). The demo prints
bracket markers, `system-thread-demo: <label> begin` / `... end` (constant strings, see
examples/demo-driver/src/bench.rs); at each marker's DbgPrint the counts are read, so a
bracket's count is the instructions the image executed from the return of the `begin`
DbgPrint up to and including the call of the `end` one: on the caller's thread (`caller`)
and on the threads it started (`thread`). The `empty-calls` bracket, around a function that
does nothing, is the overhead the others share; analyze() subtracts it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CACHE, HarnessError, log  # noqa: E402

SPEAKEASY_VERSION = "1.5.11"
VENV = CACHE / "venv"
VENV_PY = VENV / "bin" / "python"

STATUS_SUCCESS = 0
OBJ_KERNEL_HANDLE = 0x200
DRIVER_UNLOAD_OFFSET = 0x68        # DRIVER_OBJECT.DriverUnload on x64
EAGER_STACK_SIZE = 0x6000          # KERNEL_STACK_SIZE on x64
EAGER_RETURN_API = "HarnessEagerThreadReturn"   # fake export used as the return address
# A system thread that makes this many consecutive KeDelayExecutionThread calls (nothing else
# in between) is parked forever: the harness ends its run (see the module docstring). The
# demo's threads sleep at most once; the leak variants' threads sleep 10 ms in an endless loop.
PARK_SLEEPS = 100
# Routines MmGetSystemRoutineAddress reports as missing (speakeasy otherwise resolves every
# name to a stub). Empty: the emulated kernel is a Windows 10 that has IoCreateSystemThread.
MISSING_ROUTINES: set[str] = set()
# Reported missing in queued mode only (see mm_get_system_routine_address).
QUEUED_MISSING: set[str] = {"KeQueryActiveGroupCount", "KeQueryActiveProcessorCountEx"}
# Windows x64 non-volatile registers (unicorn ids; rsp is restored separately).
try:
    from unicorn import x86_const as _x86
    NONVOLATILE_REGS = {name: getattr(_x86, f"UC_X86_REG_{name.upper()}")
                        for name in ("rbx", "rbp", "rdi", "rsi", "r12", "r13", "r14", "r15",
                                     *(f"xmm{i}" for i in range(6, 16)))}
except ImportError:     # outside the venv (analysis only)
    NONVOLATILE_REGS = {}
NOISE_APIS = {"ntoskrnl.memcpy", "ntoskrnl.memmove", "ntoskrnl.memset", "ntoskrnl.memcmp",
              "ntoskrnl.strlen"}
# Instruction-count brackets: markers printed by the demo, and the one that measures the
# overhead every bracket shares (subtracted from the others).
MARKER_PREFIX = "system-thread-demo: "
EMPTY_BRACKET = "empty-calls"
# Label -> what the bracket measures (all one spawn + join of a finished thread).
BRACKETS = {
    "calls": "spawn + join",
    "scoped-calls": "scope + scoped spawn + join",
    "stoppable-calls": "spawn_stoppable + join",
    "builder-calls": "Builder name + priority spawn + join",
}


# -- venv management (system Python, stdlib only) -------------------------------------

def _venv_ok() -> bool:
    if not VENV_PY.exists():
        return False
    res = subprocess.run(
        [str(VENV_PY), "-c",
         "import importlib.metadata as m, speakeasy; print(m.version('speakeasy-emulator'))"],
        capture_output=True, text=True)
    return res.returncode == 0 and res.stdout.strip() == SPEAKEASY_VERSION


def ensure_venv() -> Path:
    if _venv_ok():
        return VENV_PY
    py = shutil.which("python3.11")
    if not py:
        raise HarnessError("python3.11 not found: speakeasy 1.5.11 pins unicorn 1.0.2, which "
                           "has no wheels for Python > 3.11")
    log(f"creating speakeasy venv at {VENV}")
    if VENV.exists():
        shutil.rmtree(VENV)
    VENV.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([py, "-m", "venv", str(VENV)], check=True)
    res = subprocess.run([str(VENV_PY), "-m", "pip", "install", "-q",
                          f"speakeasy-emulator=={SPEAKEASY_VERSION}"],
                         capture_output=True, text=True)
    if res.returncode != 0 or not _venv_ok():
        raise HarnessError(f"pip install speakeasy-emulator=={SPEAKEASY_VERSION} failed:\n"
                           f"{res.stdout[-2000:]}{res.stderr[-2000:]}")
    return VENV_PY


def run(sys_path: Path, mode: str = "eager", timeout: float = 300) -> dict:
    """Runs the emulation in the venv (subprocess) and returns the summary dict."""
    py = ensure_venv()
    out = CACHE / f"speakeasy-{mode}-{Path(sys_path).stem}.json"
    out.unlink(missing_ok=True)
    res = subprocess.run([str(py), __file__, str(sys_path), "--mode", mode, "--out", str(out)],
                         capture_output=True, text=True, timeout=timeout)
    if not out.exists():
        raise HarnessError(f"speakeasy run produced no summary (rc={res.returncode}):\n"
                           f"{res.stderr[-4000:]}")
    return json.loads(out.read_text())


# -- trace analysis (pure Python; works on the summary dict) --------------------------

def _int(v) -> int | None:
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        try:
            return int(v, 0)
        except ValueError:
            return None
    return None


def all_calls(summary: dict) -> list[dict]:
    return [c for ep in summary["entry_points"] for c in ep["apis"]]


def calls_between(summary: dict, begin: str, end: str) -> list[str] | None:
    """Names of the kernel calls between two DbgPrint markers (DbgPrint, mem*/strlen and the
    harness's own sentinel left out); None when the markers are missing."""
    names: list[str] = []
    inside = False
    for c in all_calls(summary):
        api = c["api"] or ""
        if api in ("ntoskrnl.DbgPrint", "ntoskrnl.DbgPrintEx"):
            text = str(c["args"][0] if c["args"] else "")
            if text.startswith(begin):
                inside, names = True, []
            elif text.startswith(end) and inside:
                return names
            continue
        if inside and api not in NOISE_APIS and not api.endswith(EAGER_RETURN_API):
            names.append(api.split(".", 1)[-1])
    return None


def marker(text: str) -> tuple[str, str] | None:
    """(label, "begin" | "end") of a bare bracket marker line, else None."""
    if not text.startswith(MARKER_PREFIX):
        return None
    parts = text[len(MARKER_PREFIX):].rstrip("\n").split(" ")
    if len(parts) != 2 or parts[1] not in ("begin", "end"):
        return None
    return parts[0], parts[1]


def instruction_counts(summary: dict) -> dict | None:
    """Per bracket label: instructions executed inside the image by the bracketed operation,
    `caller` (the spawning/joining thread) and `thread` (the started threads: their start
    routines), with the `empty-calls` bracket's counts subtracted; `overhead` is that bracket.
    None when the run recorded no brackets (queued mode) or no empty bracket."""
    raw = {e["label"]: e for e in summary.get("events", []) if e["kind"] == "Bracket"}
    empty = raw.get(EMPTY_BRACKET)
    if empty is None:
        return None
    out = {"overhead": {"caller": empty["caller"], "thread": empty["thread"]}}
    for label, b in raw.items():
        if label == EMPTY_BRACKET:
            continue
        caller = b["caller"] - empty["caller"]
        thread = b["thread"] - empty["thread"]
        out[label] = {"caller": caller, "thread": thread, "total": caller + thread,
                      "threads_started": b["threads_started"]}
    return out


def analyze(summary: dict) -> dict:
    """Balances of handles, object references and pool blocks, plus thread-creation args.

    Sources: the speakeasy API trace (ZwClose, ObfDereferenceObject, pool calls) and the
    harness's own records for values the trace does not show (handle written through the
    out pointer, OBJECT_ATTRIBUTES.Attributes read from emulator memory, the object
    ObReferenceObjectByHandle returned).
    """
    events = summary.get("events", [])
    problems: list[str] = []

    threads = [e for e in events if e["kind"] == "PsCreateSystemThread"]
    created = {t["handle"] for t in threads if t["status"] >= 0 and t["handle"]}
    closed: list[int] = []
    refs = [e for e in events if e["kind"] == "ObReferenceObjectByHandle" and e["status"] == 0]
    derefs: list[int] = []
    allocs: dict[int, str] = {}
    frees: list[int] = []
    bad_frees: list[str] = []

    for c in all_calls(summary):
        name = c["api"].split(".", 1)[-1]
        args = c["args"]
        if name in ("ZwClose", "NtClose"):
            closed.append(_int(args[0]))
        elif name in ("ObfDereferenceObject", "ObDereferenceObject",
                      "ObDereferenceObjectDeferDelete"):
            derefs.append(_int(args[0]))
        elif name in ("ExAllocatePool2", "ExAllocatePool3", "ExAllocatePoolWithTag",
                      "ExAllocatePool", "ExAllocatePoolZero", "ExAllocatePoolUninitialized"):
            addr = _int(c["ret"])
            if addr:
                allocs[addr] = name
        elif name in ("ExFreePoolWithTag", "ExFreePool", "ExFreePool2"):
            addr = _int(args[0])
            frees.append(addr)
            if addr not in allocs:
                bad_frees.append(hex(addr or 0))
            else:
                del allocs[addr]

    created_count = sum(1 for t in threads if t["status"] >= 0)
    unclosed = sorted(created - set(closed))
    foreign_closes = [h for h in closed if h not in created]
    ref_objs = [r["object"] for r in refs]
    unmatched_refs = list(ref_objs)
    for d in derefs:
        if d in unmatched_refs:
            unmatched_refs.remove(d)

    for t in threads:
        if not t.get("kernel_handle"):
            problems.append(f"PsCreateSystemThread without OBJ_KERNEL_HANDLE "
                            f"(ObjectAttributes={t['object_attributes']:#x}, "
                            f"Attributes={t.get('attributes')})")
        if t["process_handle"] != 0:
            problems.append(f"PsCreateSystemThread with ProcessHandle={t['process_handle']:#x} "
                            "(should be NULL)")
    if unclosed:
        problems.append(f"thread handles never closed: {[hex(h) for h in unclosed]}")
    if created_count != len(closed):
        problems.append(f"{created_count} thread handles created, {len(closed)} ZwClose calls")
    if len(refs) != len(derefs) or unmatched_refs:
        problems.append(f"object references unbalanced: {len(refs)} ObReferenceObjectByHandle, "
                        f"{len(derefs)} ObfDereferenceObject")
    if allocs:
        problems.append(f"pool blocks never freed: {[hex(a) for a in allocs]}")
    if bad_frees:
        problems.append(f"frees of unknown pool blocks: {bad_frees}")

    return {
        "threads_created": len(threads),
        "calls_per_spawn_join": calls_between(summary, "system-thread-demo: calls begin",
                                              "system-thread-demo: calls end"),
        "calls_per_scoped_spawn_join": calls_between(summary,
                                                     "system-thread-demo: scoped-calls begin",
                                                     "system-thread-demo: scoped-calls end"),
        "calls_per_bracket": {label: calls_between(summary, f"{MARKER_PREFIX}{label} begin",
                                                   f"{MARKER_PREFIX}{label} end")
                              for label in (*BRACKETS, EMPTY_BRACKET)},
        "instructions": instruction_counts(summary),
        "thread_args": threads,
        # Threads the harness ended because they only slept (PARK_SLEEPS in a row).
        "parked_threads": [e for e in events if e["kind"] == "ThreadParked"],
        "handles": {"created": len(created), "closed": len(closed),
                    "unclosed": [hex(h) for h in unclosed],
                    "closed_not_created_here": [hex(h or 0) for h in foreign_closes]},
        "object_refs": {"referenced": len(refs), "dereferenced": len(derefs),
                        "unmatched": [hex(o) for o in unmatched_refs]},
        "pool": {"allocated": len(frees) + len(allocs), "freed": len(frees),
                 "outstanding": [hex(a) for a in allocs]},
        "problems": problems,
    }


# -- emulation (inside the venv) --------------------------------------------------------

def emulate(path: str, mode: str, trace_label: str | None = None) -> dict:
    import speakeasy  # noqa: PLC0415  (only available inside the venv)

    se = speakeasy.Speakeasy()
    events: list[dict] = []
    harness_errors: list[str] = []
    eager_frames: list[dict] = []   # innermost last
    state = {"eager_ret": None, "unload_thread": None}

    def rd_ptr(emu, addr: int) -> int:
        return int.from_bytes(emu.mem_read(addr, 8), "little")

    def current_thread(emu):
        return emu.get_current_thread()

    # ---- gaps in speakeasy's ntoskrnl ----
    def ex_allocate_pool2(emu, api, orig, argv):
        flags, size, tag = argv
        mod, _ = emu.api.get_export_func_handler("ntoskrnl", "ExAllocatePoolWithTag")
        try:
            tag_s = tag.to_bytes(4, "little").decode("ascii")
        except (UnicodeDecodeError, OverflowError):
            tag_s = "None"
        addr = mod.pool_alloc(0x200 if flags & 0x40 else 1, size, tag_s)  # NonPagedPoolNx/Paged
        if addr and not flags & 0x100:                                   # POOL_FLAG_UNINITIALIZED
            emu.mem_write(addr, b"\0" * size)
        return addr

    def ret_const(value):
        def hook(emu, api, orig, argv):
            return value
        return hook

    def ps_get_current_thread(emu, api, orig, argv):
        t = current_thread(emu)
        return t.address if t else 0

    def ps_get_current_thread_id(emu, api, orig, argv):
        t = current_thread(emu)
        return t.tid if t else 0

    def ke_set_priority_thread(emu, api, orig, argv):
        return 8   # previous priority: LOW_REALTIME_PRIORITY/2, the system thread default

    # ---- recording hooks on supported APIs ----
    def ob_reference_object_by_handle(emu, api, orig, argv):
        out_ptr = argv[4]
        rv = orig(argv)
        obj = rd_ptr(emu, out_ptr) if out_ptr and rv == 0 else 0
        events.append({"kind": "ObReferenceObjectByHandle", "handle": argv[0],
                       "access": argv[1], "object_type": argv[2], "mode": argv[3],
                       "object": obj, "status": rv})
        return rv

    def ps_create_system_thread(emu, api, orig, argv, via="PsCreateSystemThread",
                                io_object=None):
        h_out, access, objattr, h_proc, client_id, start, ctx = argv
        rec = {"kind": "PsCreateSystemThread", "via": via, "io_object": io_object,
               "desired_access": access,
               "object_attributes": objattr, "attributes": None, "kernel_handle": False,
               "process_handle": h_proc, "client_id": client_id, "start_routine": start,
               "context": ctx, "mode": mode}
        if objattr:
            length = int.from_bytes(emu.mem_read(objattr, 4), "little")
            attrs = int.from_bytes(emu.mem_read(objattr + 24, 4), "little")
            rec.update(object_attributes_length=length, attributes=attrs,
                       kernel_handle=bool(attrs & OBJ_KERNEL_HANDLE))
        before = len(emu.run_queue)
        rv = orig(argv)
        rec["status"] = rv
        # speakeasy writes only the low 4 bytes of the HANDLE
        handle = int.from_bytes(emu.mem_read(h_out, 4), "little") if h_out else 0
        rec["handle"] = handle
        if client_id and rv == STATUS_SUCCESS:
            # speakeasy 1.5.11 declares CLIENT_ID with two 32-bit fields, so UniqueThread
            # lands at offset 4 instead of 8: rewrite it with the x64 layout.
            raw = emu.mem_read(client_id, 8)
            pid, tid = int.from_bytes(raw[:4], "little"), int.from_bytes(raw[4:8], "little")
            emu.mem_write(client_id, pid.to_bytes(8, "little") + tid.to_bytes(8, "little"))
            rec["thread_id"] = tid
        events.append(rec)
        if mode != "eager" or rv != STATUS_SUCCESS or len(emu.run_queue) == before:
            return rv
        run = emu.run_queue.pop()          # the run speakeasy just queued for this thread
        frame = {"rsp": emu.get_stack_ptr(), "thread": current_thread(emu),
                 "handle": handle, "status": rv, "nonvolatile": save_nonvolatile(emu)}
        eager_frames.append(frame)
        if state["eager_ret"] is None:
            state["eager_ret"] = emu.get_proc("ntoskrnl", EAGER_RETURN_API)
        stack = emu.mem_map(EAGER_STACK_SIZE, tag="emu.harness.eager_thread_stack")
        rsp = stack + EAGER_STACK_SIZE - 0x48        # 16-aligned before the "call", + home
        emu.mem_write(rsp, state["eager_ret"].to_bytes(8, "little"))
        if run.thread is not None:
            emu.set_current_thread(run.thread)
        emu.reg_write("rcx", ctx)
        rec["eager"] = True
        if io_object is None:
            emu.set_stack_ptr(rsp)
            emu.set_pc(start)
        else:
            # Hooks of APIs speakeasy lacks always end in a "return" to [rsp]: let that
            # return land on the start routine, with the sentinel as its return address.
            emu.set_stack_ptr(rsp - 8)
            emu.mem_write(rsp - 8, start.to_bytes(8, "little"))
        return rv          # pc moved: speakeasy does not perform the call return itself

    def save_nonvolatile(emu) -> dict:
        # The registers a Windows x64 callee must preserve (rsp is handled separately).
        uc = emu.emu_eng.emu
        return {name: uc.reg_read(reg) for name, reg in NONVOLATILE_REGS.items()}

    def restore_nonvolatile(emu, saved: dict) -> None:
        uc = emu.emu_eng.emu
        for name, value in saved.items():
            uc.reg_write(NONVOLATILE_REGS[name], value)

    def io_create_system_thread(emu, api, orig, argv):
        # Windows 8+ semantics: PsCreateSystemThread plus a reference on the I/O object
        # (not modelled). speakeasy 1.5.11 lacks the routine; it reaches us through
        # MmGetSystemRoutineAddress.
        mod, attrs = emu.api.get_export_func_handler("ntoskrnl", "PsCreateSystemThread")
        func = attrs[1]
        ps_orig = lambda a: func(mod, emu, a, {"func_name": "ntoskrnl.PsCreateSystemThread"})  # noqa: E731
        return ps_create_system_thread(emu, api, ps_orig, list(argv[1:8]),
                                       via="IoCreateSystemThread", io_object=argv[0])

    def mm_get_system_routine_address(emu, api, orig, argv):
        # speakeasy reads the name up to a NUL and ignores UNICODE_STRING.Length; a name
        # need not be NUL-terminated (system-thread's are not).
        us = argv[0]
        length = int.from_bytes(emu.mem_read(us, 2), "little")
        buf = int.from_bytes(emu.mem_read(us + 8, 8), "little")
        name = emu.mem_read(buf, length).decode("utf-16-le", "replace") if buf and length else ""
        # In queued mode a wait returns before its thread ran, so a scope would return while
        # its threads still borrow the caller's (then dead) frame: the group routines are
        # reported missing there, so on_each_processor takes its NotSupported path.
        missing = MISSING_ROUTINES | (QUEUED_MISSING if mode != "eager" else set())
        addr = 0 if name in missing else emu.get_proc("ntoskrnl", name)
        events.append({"kind": "MmGetSystemRoutineAddress", "name": name, "address": addr})
        return addr

    def finish_eager(emu, exit_status, via):
        frame = eager_frames.pop()
        events.append({"kind": "EagerThreadExit", "handle": frame["handle"],
                       "exit_status": exit_status, "via": via})
        # Back to the creator, also when that is DriverEntry (no thread object: None).
        emu.set_current_thread(frame["thread"])
        return frame

    def eager_thread_return(emu, api, orig, argv):
        # Reached when a start routine returns. Put the PsCreateSystemThread caller's stack
        # back (rsp -> its return address); speakeasy then "returns" from that call with
        # our value in rax.
        if not eager_frames:
            harness_errors.append("eager return sentinel reached without a thread frame")
            return 0
        frame = finish_eager(emu, emu.reg_read("rax"), "return")
        emu.set_stack_ptr(frame["rsp"])
        return frame["status"]

    def leave_eager_thread(emu, exit_status, via):
        # The innermost eager thread ends without returning: resume its creator right after
        # its PsCreateSystemThread call (rsp -> that call's return address), with the
        # creator's non-volatile registers (a start routine that returns restores them
        # itself; one that never returns leaves its own values there).
        frame = finish_eager(emu, exit_status, via)
        restore_nonvolatile(emu, frame["nonvolatile"])
        ret = rd_ptr(emu, frame["rsp"])
        emu.set_stack_ptr(frame["rsp"] + 8)
        emu.reg_write("rax", frame["status"])
        emu.set_pc(ret)
        return frame["status"]

    def ps_terminate_system_thread(emu, api, orig, argv):
        if eager_frames:
            return leave_eager_thread(emu, argv[0], "PsTerminateSystemThread")
        # Queued thread: PsTerminateSystemThread never returns; end this run.
        events.append({"kind": "ThreadTerminated", "exit_status": argv[0]})
        end_queued_run(emu)
        return STATUS_SUCCESS

    def end_queued_run(emu):
        # Continue at speakeasy's own end-of-run address (the return address every run
        # starts with), as if the start routine had returned: speakeasy then completes the
        # run and starts the next one, or ends the emulation after the last. (Calling
        # emu.on_run_complete() here instead does not stop the last run: unicorn keeps
        # executing the thread after the API call returns.)
        emu.reg_write("rax", 0)
        emu.set_pc(emu.return_hook)
        emu.enable_code_hook()

    # ---- parked threads (both modes; see PARK_SLEEPS) ----
    # thread id -> consecutive sleeps, the run's API count at the last one, 100 ns requested
    sleeps: dict[int, dict] = {}

    def dbgprints_so_far(emu) -> int:
        # Position in the summary's `dbgprint` list (built from the same run logs, in order).
        return sum(1 for r in emu.runs for a in (r.apis or [])
                   if a.get("api_name") in ("ntoskrnl.DbgPrint", "ntoskrnl.DbgPrintEx"))

    def ke_delay_execution_thread(emu, api, orig, argv):
        rv = orig(argv)
        run = emu.get_current_run()
        t = current_thread(emu)
        # Only system threads: DriverEntry and DriverUnload are never ended.
        if t is None or not (eager_frames or getattr(run, "type", None) == "system_thread"):
            return rv
        n_apis = run.get_api_count()   # calls logged so far in this run (not this one yet)
        interval = (int.from_bytes(emu.mem_read(argv[2], 8), "little", signed=True)
                    if argv[2] else 0)
        s = sleeps.get(t.tid)
        if s is None or n_apis != s["apis"] + 1:
            s = sleeps[t.tid] = {"count": 0, "requested_100ns": 0}
        s["count"] += 1
        s["apis"] = n_apis
        s["requested_100ns"] += -interval if interval < 0 else 0
        if s["count"] < PARK_SLEEPS:
            return rv
        del sleeps[t.tid]
        events.append({"kind": "ThreadParked", "thread_id": t.tid, "sleeps": s["count"],
                       "requested_100ns": s["requested_100ns"], "eager": bool(eager_frames),
                       "dbgprints_before": dbgprints_so_far(emu)})
        if eager_frames:
            return leave_eager_thread(emu, None, "ended by the harness: parked")
        end_queued_run(emu)
        return rv

    # ---- instruction counts (eager mode) ----
    # executed[d]: instructions executed inside the image at eager depth d (0: DriverEntry's
    # code and DriverUnload; d > 0: a start routine run by the eager PsCreateSystemThread).
    executed: dict[int, int] = {}
    open_brackets: dict[str, dict] = {}

    trace: list[list[int]] = []     # [depth, address] inside the traced bracket

    def count_instruction(emu, addr, size, ctx):
        depth = len(eager_frames)
        executed[depth] = executed.get(depth, 0) + 1
        if trace_label in open_brackets:
            trace.append([depth, addr])
        return True

    def snapshot() -> dict:
        threads_started = sum(1 for e in events if e["kind"] == "PsCreateSystemThread")
        return {"depth": len(eager_frames), "executed": dict(executed),
                "threads_started": threads_started}

    def dbg_print(emu, api, orig, argv):
        rv = orig(argv)             # formats the text into argv[0]
        m = marker(str(argv[0])) if argv else None
        if m is None:
            return rv
        label, which = m
        if which == "begin":
            open_brackets[label] = snapshot()
            return rv
        begin = open_brackets.pop(label, None)
        if begin is None:
            harness_errors.append(f"bracket {label}: end marker without begin")
            return rv
        end = snapshot()
        d0 = begin["depth"]
        if end["depth"] != d0:
            harness_errors.append(f"bracket {label}: ends at thread depth {end['depth']}, "
                                  f"began at {d0}")
        delta = {d: end["executed"].get(d, 0) - begin["executed"].get(d, 0)
                 for d in end["executed"]}
        events.append({"kind": "Bracket", "label": label,
                       "caller": delta.get(d0, 0),
                       "thread": sum(n for d, n in delta.items() if d > d0),
                       "threads_started": end["threads_started"] - begin["threads_started"]})
        return rv

    hooks = [
        (ex_allocate_pool2, "ExAllocatePool2", 3),
        (ret_const(0), "KeGetCurrentIrql", 0),
        (ps_get_current_thread, "PsGetCurrentThread", 0),
        (ps_get_current_thread, "KeGetCurrentThread", 0),
        (ps_get_current_thread_id, "PsGetCurrentThreadId", 0),
        (ret_const(STATUS_SUCCESS), "ZwYieldExecution", 0),
        (ke_set_priority_thread, "KeSetPriorityThread", 2),
        (ret_const(STATUS_SUCCESS), "ZwSetInformationThread", 4),
        (ret_const(STATUS_SUCCESS), "ZwWaitForSingleObject", 3),
        # Like every wait here, a multi-object wait returns at once: STATUS_WAIT_0, the first
        # object (a worker's stop event, so the worker stops).
        (ret_const(STATUS_SUCCESS), "KeWaitForMultipleObjects", 8),
        # One processor group of 2 processors; affinity changes are accepted and ignored.
        (ret_const(1), "KeQueryActiveGroupCount", 0),
        (ret_const(2), "KeQueryActiveProcessorCountEx", 1),
        (ret_const(0), "KeSetSystemGroupAffinityThread", 2),
        (ret_const(0), "KeRevertToUserGroupAffinityThread", 1),
        (ret_const(0), "KeEnterCriticalRegion", 0),
        (ret_const(0), "KeLeaveCriticalRegion", 0),
        (ret_const(0), "KeAreAllApcsDisabled", 0),
        (ob_reference_object_by_handle, "ObReferenceObjectByHandle", 6),
        (ps_create_system_thread, "PsCreateSystemThread", 7),
        (io_create_system_thread, "IoCreateSystemThread", 8),
        (mm_get_system_routine_address, "MmGetSystemRoutineAddress", 1),
        (ps_terminate_system_thread, "PsTerminateSystemThread", 1),
        (ke_delay_execution_thread, "KeDelayExecutionThread", 3),
        (eager_thread_return, EAGER_RETURN_API, 0),
    ]
    if mode == "eager":
        hooks.append((dbg_print, "DbgPrint", 1))
    for cb, name, argc in hooks:
        se.add_api_hook(cb, "ntoskrnl", name, argc=argc)

    module = se.load_module(path)
    emu = se.emu
    if mode == "eager":
        base, size = module.get_base(), module.get_image_size()
        # unicorn's range is inclusive at both ends.
        se.add_code_hook(count_instruction, begin=base, end=base + size - 1)
        events.append({"kind": "ImageRange", "base": base, "size": size})
    # Data import PsThreadType resolves to 0 in speakeasy: point the IAT slot at a
    # POBJECT_TYPE variable holding a fake OBJECT_TYPE.
    for iat, (mod_name, sym) in getattr(module, "imports", {}).items():
        if sym in ("PsThreadType", "PsProcessType") and "ntoskrnl" in mod_name.lower():
            obj = emu.mem_map(0x100, tag=f"emu.harness.{sym}.object")
            var = emu.mem_map(8, tag=f"emu.harness.{sym}")
            emu.mem_write(var, obj.to_bytes(8, "little"))
            emu.mem_write(iat, var.to_bytes(8, "little"))
            events.append({"kind": "DataImport", "symbol": sym, "variable": var, "object": obj})

    se.run_module(module, all_entrypoints=False)

    # DriverUnload, if DriverEntry registered one.
    # (emu.drivers also holds speakeasy's own volmgr/Disk/Tcpip/Ndis objects.)
    ours = [d for d in getattr(emu, "drivers", []) if getattr(d, "pe", None) is module]
    if ours:
        unload = rd_ptr(emu, ours[0].address + DRIVER_UNLOAD_OFFSET)
        events.append({"kind": "DriverUnloadPointer", "address": unload})
        if unload:
            se.call(unload, [ours[0].address])
    else:
        harness_errors.append("driver object of the module not found; DriverUnload not run")

    report = se.get_report()
    summary = summarise(report, events, harness_errors, path, mode)
    summary["park_sleeps"] = PARK_SLEEPS
    if trace_label is not None:
        summary["trace"] = {"label": trace_label, "image_base": module.get_base(),
                            "executed": trace}
    return summary


def summarise(report: dict, events: list, harness_errors: list, path: str, mode: str) -> dict:
    eps = []
    dbg = []
    errors = list(harness_errors)
    for ep in report.get("entry_points", []):
        apis = []
        for a in ep.get("apis", []):
            call = {"api": a.get("api_name"), "args": a.get("args", []), "ret": a.get("ret_val")}
            apis.append(call)
            if call["api"] in ("ntoskrnl.DbgPrint", "ntoskrnl.DbgPrintEx") and call["args"]:
                text = call["args"][-1] if call["api"].endswith("Ex") else call["args"][0]
                dbg.append(str(text).rstrip("\n"))
        err = ep.get("error") or None
        kind = ep.get("ep_type", "?")
        if err:
            errors.append(f"{kind}@{ep.get('start_addr')}: {err.get('type')} "
                          f"{err.get('api_name', '')} pc={err.get('pc')}")
        eps.append({"type": kind, "start": ep.get("start_addr"), "ret": ep.get("ret_val"),
                    "apis": apis, "error": err})
    summary = {"driver": path, "mode": mode, "entry_points": eps, "dbgprint": dbg,
               "events": events, "errors": errors}
    summary["analysis"] = analyze(summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="speakeasy run of a driver, JSON summary")
    ap.add_argument("driver")
    ap.add_argument("--mode", choices=("eager", "queued"), default="eager")
    ap.add_argument("--out", help="write the JSON summary here (default: stdout)")
    ap.add_argument("--full", action="store_true", help="keep mem*/strlen calls in stdout view")
    ap.add_argument("--trace-bracket", metavar="LABEL",
                    help="eager mode: record [thread depth, address] of every instruction the "
                         "image executes inside this bracket (summary key `trace`), to find "
                         "where a bracket's instructions go")
    a = ap.parse_args(argv)
    try:
        import speakeasy  # noqa: F401
    except ImportError:
        py = ensure_venv()
        os.execv(str(py), [str(py), __file__, *sys.argv[1:]])
    import logging
    logging.disable(logging.CRITICAL)
    summary = emulate(a.driver, a.mode, a.trace_bracket)
    text = json.dumps(summary, indent=1, default=str)
    if a.out:
        Path(a.out).write_text(text)
    else:
        if not a.full:
            for ep in summary["entry_points"]:
                ep["apis"] = [c for c in ep["apis"] if c["api"] not in NOISE_APIS]
        print(json.dumps(summary, indent=1, default=str))
    return 0 if not summary["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
