"""Build the KMDF-model twin of the sample driver and run its lifecycle in speakeasy's WDF loader.

    python3 tools/emulate/kmdf_twin.py [--no-build] [--json FILE] [-v]

The twin (examples/kmdf-twin) is the sample driver (examples/sample-kmdf-driver) with its
worker.rs compiled unchanged, cross-built with rust-lld and the crate's raw-dylib provider. Its
image entry `FxDriverEntry` binds with `wdfldr.sys!WdfVersionBind`, which speakeasy 1.5.11
emulates (speakeasy/winenv/api/kernelmode/wdfldr.py), then runs `DriverEntry`.

speakeasy runs no PnP and no scheduler, so this harness plays both:
  * the framework: after DriverEntry it calls the `EvtDriverDeviceAdd` that `WdfDriverCreate`
    registered, with a device-init it provides; calls the `EvtDeviceD0Entry` that
    `WdfDeviceInitSetPnpPowerEventCallbacks` registered (from D3Final); lets 3.5 s of virtual
    time pass in D0; calls `EvtDeviceD0Exit` (to D3Final); lets 1 s pass out of D0; disposes
    of the device's timer (children first, as KMDF does) and calls the device's
    `EvtCleanupCallback`; then the driver's `EvtDriverUnload`.
  * the WDF timer, which speakeasy lacks (its table has NULL there; the harness puts its own
    routines at the indices of speakeasy's WDFFUNCTIONS): `WdfTimerCreate` records the
    configuration and attributes, `WdfTimerStart` (relative due time) queues the timer,
    `WdfTimerStop` dequeues it. While time passes, a due timer fires: its `EvtTimerFunc` runs
    as a DPC on the framework's context at DISPATCH_LEVEL, and a periodic timer is requeued one
    period later.
  * the IRQL: the crate reads CR8 on x64, which unicorn 1.0.2 reads as 0 and cannot set; every
    `mov r64, cr8` of the image is hooked to yield the harness's IRQL (2 during a DPC). A wait
    that would block at DISPATCH_LEVEL stops the emulation.
  * the kernel's threads and waits: `PsCreateSystemThread`/`IoCreateSystemThread` create a
    thread that runs on its own stack with its own register state; `KeWaitForSingleObject`
    and `KeWaitForMultipleObjects` (WaitAny) on events or thread objects, and
    `KeDelayExecutionThread`, block the calling thread until an object is signalled or the
    (virtual) timeout passes, and run another thread meanwhile (register contexts saved and
    restored through unicorn); a synchronization event wakes one waiter and resets; a thread
    object is signalled when its start routine returns. `IoCreateSystemThread` takes a
    reference on its I/O object, released when the thread exits (Windows 8+ semantics).
    speakeasy 1.5.11 lacks IoCreateSystemThread, ZwSetInformationThread, PsGetCurrentThreadId,
    KeSetPriorityThread, KeWaitForMultipleObjects and memcmp; the harness provides them.

Scenarios (each one emulation):
  kmdf                       the twin; IoCreateSystemThread is there (the worker runs on the
                             device)
  kmdf-no-io-create          MmGetSystemRoutineAddress does not find IoCreateSystemThread: the
                             worker falls back to PsCreateSystemThread
  control-leak               negative control: the twin built with --cfg twin_leak, whose cleanup
                             callback loses the worker; the checks of `kmdf` must reject it
  control-timer-not-stopped  negative control: the harness's WdfTimerStop leaves the timer
                             queued, so it fires while the device is out of D0 and wakes the
                             worker; the checks of `kmdf` must reject it

Exit status: 0 all checks passed, 1 a check failed, 2 the harness or environment failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import speakeasy_run  # noqa: E402
from common import CACHE, REPO, TARGET, HarnessError, log, require_tool  # noqa: E402

TWIN_DIR = REPO / "examples" / "kmdf-twin"
DLL_NAME = "system_thread_kmdf_twin.dll"
# variant -> (cargo --target-dir relative to TWIN_DIR or None, cfgs)
VARIANTS = {"twin": (None, []), "twin_leak": ("target/twin_leak", ["twin_leak"])}
# scenario -> (variant, routines MmGetSystemRoutineAddress does not find, harness quirks)
SCENARIOS = {
    "kmdf": ("twin", [], []),
    "kmdf-no-io-create": ("twin", ["IoCreateSystemThread"], []),
    "control-leak": ("twin_leak", [], []),
    "control-timer-not-stopped": ("twin", [], ["timer_stop_ignored"]),
}
# Negative controls: scenario -> failures `check` must report (substrings), each of them.
CONTROLS = {
    "control-leak": ("live threads at unload", "still running after unload"),
    "control-timer-not-stopped": ("while the device was out of D0", "timer fires, expected"),
}

STATUS_SUCCESS = 0
STATUS_WAIT_0 = 0
STATUS_TIMEOUT = 0x102
OBJ_KERNEL_HANDLE = 0x200
THREAD_NAME_INFORMATION = 38
NOTIFICATION_EVENT = 0
WAIT_ANY = 1                            # WAIT_TYPE: WaitAll 0, WaitAny 1
PASSIVE_LEVEL, APC_LEVEL, DISPATCH_LEVEL = 0, 1, 2
THREAD_STACK_SIZE = 0x6000              # KERNEL_STACK_SIZE on x64
THREAD_EXIT_API = "HarnessKmdfThreadExit"   # fake export: the start routines' return address
# The framework's script, in virtual time (100 ns units): after D0 entry the device stays in D0
# for D0_WINDOW, during which the driver's 1 s periodic timer (worker::PERIOD_MS) must fire
# exactly EXPECTED_FIRES times; after D0 exit it stays out of D0 for IDLE_WINDOW before its
# cleanup, during which nothing may fire and the worker may not wake.
D0_WINDOW = 35_000_000
IDLE_WINDOW = 10_000_000
EXPECTED_FIRES = 3
PERIOD_MS = 1000
POWER_DEVICE_D3_FINAL = 5               # WdfPowerDeviceD3Final: a device's first D0 entry comes
                                        # from it, its removal's D0 exit goes to it
# WDF_OBJECT_ATTRIBUTES and WDF_TIMER_CONFIG as this harness reads them (speakeasy has no
# definition of either): KMDF 1.33 wdfobject.h and wdftimer.h, the facts of the twin's src/wdf.rs.
OBJECT_ATTRIBUTES = {"size": 56, "EvtCleanupCallback": 8, "ExecutionLevel": 24,
                     "SynchronizationScope": 28, "ParentObject": 32}
TIMER_CONFIG = {"size": 40, "EvtTimerFunc": 8, "Period": 16, "AutomaticSerialization": 20,
                "TolerableDelay": 24, "UseHighResolutionTimer": 32}
INHERIT_FROM_PARENT = 1
# WdfFunctionTableNumEntries of KMDF 1.33 (wdffuncenum.h); speakeasy's table is shorter.
KMDF_1_33_FUNCTIONS = 458
# WDF routines speakeasy 1.5.11 leaves NULL in its table; the harness puts its own there.
HARNESS_WDF_FUNCTIONS = {"WdfTimerCreate": 4, "WdfTimerStart": 3, "WdfTimerStop": 3}
WORKER_NAME = "system-thread-sample"


# -- build (system Python) ----------------------------------------------------------------

def build(variant: str) -> Path:
    """Builds one variant (release, x86_64-pc-windows-msvc) and copies it to
    target/emulate/drivers/st_kmdf_<variant>.sys."""
    require_tool("cargo", "install Rust (rustup) first")
    target_dir, cfgs = VARIANTS[variant]
    cmd = ["cargo", "build", "--locked", "--release", "--target", TARGET]
    if target_dir:
        cmd += ["--target-dir", target_dir]
    if cfgs:
        # Merged with the link arguments of .cargo/config.toml (RUSTFLAGS would replace them).
        flags = ", ".join(f'"--cfg", "{c}"' for c in cfgs)
        cmd += ["--config", f"target.{TARGET}.rustflags=[{flags}]"]
    env = {k: v for k, v in os.environ.items()
           if k not in ("RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS")}
    log(f"building the KMDF twin ({variant}): {' '.join(cmd)}")
    res = subprocess.run(cmd, cwd=TWIN_DIR, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise HarnessError(f"twin build failed ({variant}):\n{res.stderr[-4000:]}")
    if "warning" in res.stderr:
        print(res.stderr, file=sys.stderr)
    dll = TWIN_DIR / (target_dir or "target") / TARGET / "release" / DLL_NAME
    if not dll.is_file():
        raise HarnessError(f"cargo succeeded but {dll} is missing")
    out = CACHE / "drivers" / f"st_kmdf_{variant}.sys"
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(dll, out)
    return out


def run(sys_path: Path, scenario: str, timeout: float = 300) -> dict:
    """Runs one scenario in the speakeasy venv (subprocess); returns its summary."""
    py = speakeasy_run.ensure_venv()
    out = CACHE / f"kmdf-twin-{scenario}.json"
    out.unlink(missing_ok=True)
    res = subprocess.run([str(py), __file__, "--emulate", str(sys_path), "--scenario", scenario,
                          "--out", str(out)], capture_output=True, text=True, timeout=timeout)
    if not out.exists():
        raise HarnessError(f"speakeasy run of the twin produced no summary (rc={res.returncode}):"
                           f"\n{res.stderr[-4000:]}")
    return json.loads(out.read_text())


# -- emulation (inside the venv) ----------------------------------------------------------

class KThread:
    """A thread of the emulated kernel: the framework's (the speakeasy run that executes the
    harness's calls) or one the driver created."""

    def __init__(self, name: str, spk, start: int = 0, arg: int = 0):
        self.name = name
        self.spk = spk                  # speakeasy's thread object (handle table, tid)
        self.tid = spk.tid if spk else 0
        self.obj = spk.address if spk else 0
        self.start, self.arg = start, arg
        self.state = "ready"            # ready, running, blocked, exited
        self.ctx = None                 # unicorn context while not running (None: not started)
        self.started = False
        self.wait: dict | None = None   # what it is blocked on
        self.result = STATUS_SUCCESS    # delivered when it resumes
        self.io_object = 0


class Kernel:
    """Threads, events and waits with a virtual clock; switches threads only inside API hooks
    (where a thread is between instructions of a call), by saving and restoring its unicorn
    register context. Everything it does goes to `trace`, in order."""

    def __init__(self, trace: list, errors: list):
        self.trace, self.errors = trace, errors
        self.clock = 0                  # 100 ns units
        self.threads: list[KThread] = []
        self.ready: list[KThread] = []
        self.current: KThread | None = None
        self.framework: KThread | None = None
        self.events: dict[int, dict] = {}
        self.by_object: dict[int, KThread] = {}
        self.by_handle: dict[int, KThread] = {}
        self.io_refs: dict[int, int] = {}
        self.uc = None
        self.module = None
        self.exit_address = 0
        self.aborted = False
        self.irql = PASSIVE_LEVEL       # the simulated IRQL (what the driver reads from CR8)
        self.cr8_reads: dict[int, int] = {}     # IRQL -> reads of CR8 by driver code

    # -- bookkeeping
    def cur(self, emu) -> KThread:
        if self.current is None:
            # The first hook runs on DriverEntry's thread: the framework's.
            self.framework = KThread("framework", emu.get_current_thread())
            self.framework.state, self.framework.started = "running", True
            self.threads.append(self.framework)
            self.current = self.framework
        return self.current

    def note(self, kind: str, thread: str | None = None, **fields) -> dict:
        rec = {"kind": kind, "t_ms": self.clock / 10_000,
               "thread": thread or (self.current.name if self.current else "framework"),
               **fields}
        self.trace.append(rec)
        return rec

    def io_held(self) -> int:
        return sum(self.io_refs.values())

    def abort(self, emu, message: str) -> int:
        self.errors.append(message)
        self.aborted = True
        emu.stop()
        return 0

    # -- objects
    def describe(self, addr: int) -> tuple[str, bool | None]:
        """What `addr` is and whether it is signalled (None: not a known object)."""
        if addr in self.events:
            return f"event {addr:#x}", self.events[addr]["signaled"]
        if addr in self.by_object:
            t = self.by_object[addr]
            return f"thread object of {t.name}", t.state == "exited"
        return f"unknown object {addr:#x}", None

    def deadline(self, emu, timeout_ptr: int) -> int | None:
        if not timeout_ptr:
            return None
        value = int.from_bytes(emu.mem_read(timeout_ptr, 8), "little", signed=True)
        return self.clock - value if value <= 0 else max(value, self.clock)

    def wake(self, t: KThread, status: int) -> None:
        w = t.wait or {}
        self.note("WaitDone", thread=t.name, object=w.get("what"), status=status,
                  waited_ms=(self.clock - w.get("since", self.clock)) / 10_000)
        t.wait, t.result, t.state = None, status, "ready"
        self.ready.append(t)

    def waiters(self, addr: int) -> list[KThread]:
        """Threads blocked on `addr` (alone or among others)."""
        return [t for t in self.threads if t.state == "blocked" and t.wait
                and addr in t.wait["objects"]]

    def set_event(self, addr: int) -> int:
        ev = self.events[addr]
        previous = int(ev["signaled"])
        ev["signaled"] = True
        waiters = self.waiters(addr)
        if ev["type"] != NOTIFICATION_EVENT:     # synchronization event: wakes one
            waiters = waiters[:1]
        self.note("KeSetEvent", event=addr, woke=[t.name for t in waiters], irql=self.irql)
        for t in waiters:
            self.wake(t, STATUS_WAIT_0 + t.wait["objects"].index(addr))
        if waiters and ev["type"] != NOTIFICATION_EVENT:
            ev["signaled"] = False
        return previous

    # -- scheduling
    def wait(self, emu, supported: bool, api: str, objects: list[int], timeout_ptr: int) -> int:
        """A wait for any of `objects` (none: a delay). Returns STATUS_WAIT_0 + the index of
        the object that satisfied it, STATUS_TIMEOUT, or (a delay) STATUS_SUCCESS."""
        cur = self.cur(emu)
        described = [self.describe(a) for a in objects]
        what = ", ".join(d for d, _ in described) if objects else "delay"
        if any(signaled is None for _, signaled in described):
            return self.abort(emu, f"{cur.name}: {api} on {what}")
        first = next((i for i, (_, signaled) in enumerate(described) if signaled), None)
        if first is not None:
            addr = objects[first]
            if addr in self.events and self.events[addr]["type"] != NOTIFICATION_EVENT:
                self.events[addr]["signaled"] = False
            self.note(api, object=what, status=STATUS_WAIT_0 + first, blocked=False,
                      irql=self.irql)
            return STATUS_WAIT_0 + first
        deadline = self.deadline(emu, timeout_ptr)
        if deadline == self.clock:
            status = STATUS_TIMEOUT if objects else STATUS_SUCCESS
            self.note(api, object=what, status=status, blocked=False, irql=self.irql)
            return status
        if self.irql > APC_LEVEL:
            return self.abort(emu, f"{cur.name}: {api} blocks at IRQL {self.irql} ({what})")
        self.note(api, object=what, blocked=True, irql=self.irql,
                  timeout_ms=None if deadline is None else (deadline - self.clock) / 10_000)
        cur.wait = {"objects": objects, "deadline": deadline, "what": what, "since": self.clock}
        cur.ctx = self.uc.context_save()
        cur.state = "blocked"
        return self.dispatch(emu, supported)

    def pick(self) -> KThread | None:
        if not self.ready:
            timed = [t for t in self.threads if t.state == "blocked" and t.wait
                     and t.wait["deadline"] is not None]
            if not timed:
                return None
            t = min(timed, key=lambda t: t.wait["deadline"])
            self.clock = max(self.clock, t.wait["deadline"])
            self.wake(t, STATUS_TIMEOUT if t.wait["objects"] else STATUS_SUCCESS)
        return self.ready.pop(0)

    def dispatch(self, emu, supported: bool) -> int:
        """Runs the next thread. `supported`: the hook being handled is of an API speakeasy
        implements (it then returns from the call only if the hook left pc alone) rather than
        one it lacks (it then always returns to [rsp] with the hook's value)."""
        prev = self.current
        nxt = self.pick()
        if nxt is None:
            return self.abort(emu, "deadlock: no thread can run "
                              f"({', '.join(f'{t.name}={t.state}' for t in self.threads)})")
        nxt.state = "running"
        self.current = nxt
        emu.set_current_thread(nxt.spk)
        emu.curr_mod = self.module
        if nxt is prev:
            # Woken by the clock with nobody else to run: its call simply returns.
            nxt.ctx = None
            return nxt.result
        if not nxt.started:
            nxt.started = True
            self.note("ThreadStart", thread=nxt.name, start=nxt.start, context=nxt.arg)
            stack = emu.mem_map(THREAD_STACK_SIZE, tag=f"emu.harness.kmdf_stack.{nxt.name}")
            entry_rsp = stack + THREAD_STACK_SIZE - 0x48   # 8 mod 16 at entry, home space above
            emu.mem_write(entry_rsp, self.exit_address.to_bytes(8, "little"))
            emu.reg_write("rcx", nxt.arg)
            if supported:
                emu.set_stack_ptr(entry_rsp)
                emu.set_pc(nxt.start)
            else:
                # speakeasy "returns" to [rsp] after this hook: land on the start routine.
                emu.set_stack_ptr(entry_rsp - 8)
                emu.mem_write(entry_rsp - 8, nxt.start.to_bytes(8, "little"))
            return 0
        self.uc.context_restore(nxt.ctx)
        nxt.ctx = None
        if supported:
            rsp = emu.get_stack_ptr()
            ret = int.from_bytes(emu.mem_read(rsp, 8), "little")
            emu.set_stack_ptr(rsp + 8)
            emu.reg_write("rax", nxt.result)
            emu.set_pc(ret)
        return nxt.result

    def thread_exit(self, emu) -> int:
        cur = self.cur(emu)
        cur.state = "exited"
        self.note("ThreadExit", how="start routine returned")
        # The I/O object's reference goes when the start routine has returned, before the
        # thread object is signalled: a joiner never sees the thread gone and the object held.
        if cur.io_object:
            self.io_refs[cur.io_object] -= 1
            self.note("IoObjectDereference", object=cur.io_object,
                      refs=self.io_refs[cur.io_object])
        for t in self.waiters(cur.obj):
            self.wake(t, STATUS_WAIT_0 + t.wait["objects"].index(cur.obj))
        return self.dispatch(emu, supported=False)


def speakeasy_layout() -> dict:
    """The WDF facts as speakeasy 1.5.11 defines them (winenv/defs/wdf.py), keyed like the
    twin's `kmdf-twin: layout` line."""
    import speakeasy.winenv.defs.wdf as w  # noqa: PLC0415

    def cls(struct):
        c = struct.get_cstruct()
        return c if isinstance(c, type) else type(c)

    import ctypes  # noqa: PLC0415
    table, bind, cfg, pnp = (cls(w.WDFFUNCTIONS(8)), cls(w.WDF_BIND_INFO(8)),
                             cls(w.WDF_DRIVER_CONFIG(8)), cls(w.WDF_PNPPOWER_EVENT_CALLBACKS(8)))
    return {
        "index.DeviceWdmGetDeviceObject": table.pfnWdfDeviceWdmGetDeviceObject.offset // 8,
        "index.DeviceInitSetPnpPowerEventCallbacks":
            table.pfnWdfDeviceInitSetPnpPowerEventCallbacks.offset // 8,
        "index.DeviceCreate": table.pfnWdfDeviceCreate.offset // 8,
        "index.DriverCreate": table.pfnWdfDriverCreate.offset // 8,
        "index.TimerCreate": table.pfnWdfTimerCreate.offset // 8,
        "index.TimerStart": table.pfnWdfTimerStart.offset // 8,
        "index.TimerStop": table.pfnWdfTimerStop.offset // 8,
        "PnpPowerEventCallbacks.size": ctypes.sizeof(pnp),
        "PnpPowerEventCallbacks.EvtDeviceD0Entry.offset": pnp.EvtDeviceD0Entry.offset,
        "PnpPowerEventCallbacks.EvtDeviceD0Exit.offset": pnp.EvtDeviceD0Exit.offset,
        "BindInfo.size": ctypes.sizeof(bind),
        "BindInfo.FuncCount.offset": bind.FuncCount.offset,
        "BindInfo.FuncTable.offset": bind.FuncTable.offset,
        "DriverConfig.size": ctypes.sizeof(cfg),
        "DriverConfig.EvtDriverDeviceAdd.offset": cfg.EvtDriverDeviceAdd.offset,
        "DriverConfig.EvtDriverUnload.offset": cfg.EvtDriverUnload.offset,
        "table_entries": ctypes.sizeof(table) // 8,
    }


def emulate(path: str, scenario: str) -> dict:
    import speakeasy  # noqa: PLC0415  (only in the venv)
    import speakeasy.winenv.defs.wdf as wdfdefs  # noqa: PLC0415

    _variant, missing, quirks = SCENARIOS[scenario]
    missing = set(missing)
    se = speakeasy.Speakeasy()
    trace: list[dict] = []
    errors: list[str] = []
    k = Kernel(trace, errors)
    wdf: dict = {}

    def rd(emu, addr: int, size: int = 8) -> int:
        return int.from_bytes(emu.mem_read(addr, size), "little")

    def wide(emu, addr: int, max_chars: int = 64) -> str:
        raw = emu.mem_read(addr, max_chars * 2)
        text = raw.decode("utf-16-le", "replace")
        return text.split("\0", 1)[0]

    def in_image(addr: int) -> bool:
        return bool(k.module) and k.module.base <= addr < k.module.base + k.module.image_size

    # ---- the WDF loader (speakeasy's handlers, observed)
    def wdf_version_bind(emu, api, orig, argv):
        k.cur(emu)
        _drv, _reg, bind, globals_out = argv
        info = {"size": rd(emu, bind, 4), "component": wide(emu, rd(emu, bind + 8)),
                "version": f"{rd(emu, bind + 16, 4)}.{rd(emu, bind + 20, 4)}",
                "build": rd(emu, bind + 24, 4), "func_count": rd(emu, bind + 28, 4),
                "func_table_var": rd(emu, bind + 32)}
        rv = orig(argv)
        info.update(status=rv, table=rd(emu, info["func_table_var"]),
                    globals_var=globals_out, globals=rd(emu, globals_out),
                    func_table_var_in_image=in_image(info["func_table_var"]),
                    globals_var_in_image=in_image(globals_out))
        wdf.update(globals=info["globals"], table=info["table"])
        # speakeasy leaves the timer entries NULL: the harness's routines go where speakeasy's
        # own WDFFUNCTIONS puts them (index 318.., compared with the twin's on every run).
        layout = speakeasy_layout()
        installed = {}
        for name in HARNESS_WDF_FUNCTIONS:
            slot = info["table"] + 8 * layout["index." + name.removeprefix("Wdf")]
            if rd(emu, slot):
                return k.abort(emu, f"speakeasy's table has {name}: the harness would replace it")
            emu.mem_write(slot, emu.add_callback("wdfldr", name).to_bytes(8, "little"))
            installed[name] = slot
        k.note("WdfVersionBind", **info, harness_routines=installed)
        return rv

    def wdf_driver_create(emu, api, orig, argv):
        k.cur(emu)
        glob, drv, _reg, attrs, config, out = argv
        # Read with speakeasy's own WDF_DRIVER_CONFIG: if its layout and the twin's differed,
        # the callbacks below would be garbage.
        cfg = emu.mem_cast(wdfdefs.WDF_DRIVER_CONFIG(8), config)
        rv = orig(argv)
        handle = emu.mem_map(0x1000, tag="emu.harness.WDFDRIVER")
        if out:
            emu.mem_write(out, handle.to_bytes(8, "little"))
        wdf.update(driver=handle, device_add=cfg.EvtDriverDeviceAdd, unload=cfg.EvtDriverUnload,
                   driver_object=drv)
        k.note("WdfDriverCreate", globals=glob, globals_match=glob == wdf.get("globals"),
               config_size=cfg.Size, evt_driver_device_add=cfg.EvtDriverDeviceAdd,
               evt_driver_unload=cfg.EvtDriverUnload,
               callbacks_in_image=in_image(cfg.EvtDriverDeviceAdd)
               and in_image(cfg.EvtDriverUnload), attributes=attrs, out=out, status=rv)
        return rv

    def wdf_device_create(emu, api, orig, argv):
        k.cur(emu)
        glob, p_init, attrs, p_device = argv
        init = rd(emu, p_init) if p_init else 0
        a = {}
        if attrs:
            a = {name: rd(emu, attrs + off, 8 if name == "EvtCleanupCallback" else 4)
                 for name, off in OBJECT_ATTRIBUTES.items() if name != "size"}
            a["Size"] = rd(emu, attrs, 4)
        rv = orig(argv)
        device = rd(emu, p_device) if p_device else 0
        mod, _ = emu.api.get_export_func_handler("wdfldr", "WdfDeviceCreate")
        dev = mod.wdf_devices.get(device)
        device_object = dev.device_object_addr if dev else 0
        wdf.update(device=device, device_object=device_object,
                   cleanup=a.get("EvtCleanupCallback", 0))
        k.note("WdfDeviceCreate", globals_match=glob == wdf.get("globals"),
               device_init=init, device_init_is_harness=init == wdf.get("device_init"),
               attributes=a, cleanup_in_image=in_image(a.get("EvtCleanupCallback", 0)),
               device=device, device_object=device_object, status=rv)
        return rv

    def wdf_device_wdm_get_device_object(emu, api, orig, argv):
        k.cur(emu)
        rv = orig(argv)
        k.note("WdfDeviceWdmGetDeviceObject", globals_match=argv[0] == wdf.get("globals"),
               device=argv[1], returned=rv)
        return rv

    def wdf_device_init_set_pnp_power_event_callbacks(emu, api, orig, argv):
        k.cur(emu)
        glob, init, callbacks = argv
        c = emu.mem_cast(wdfdefs.WDF_PNPPOWER_EVENT_CALLBACKS(8), callbacks)
        raw = bytes(emu.mem_read(callbacks, 144))
        others = [off for off in range(16, 144, 8) if off != 24
                  and int.from_bytes(raw[off:off + 8], "little")]
        orig(argv)
        wdf.update(d0_entry=c.EvtDeviceD0Entry, d0_exit=c.EvtDeviceD0Exit)
        k.note("WdfDeviceInitSetPnpPowerEventCallbacks", globals_match=glob == wdf.get("globals"),
               device_init=init, device_init_is_harness=init == wdf.get("device_init"),
               size=c.Size, evt_device_d0_entry=c.EvtDeviceD0Entry,
               evt_device_d0_exit=c.EvtDeviceD0Exit,
               callbacks_in_image=in_image(c.EvtDeviceD0Entry) and in_image(c.EvtDeviceD0Exit),
               other_callbacks_at=others)
        return 0

    # ---- the WDF timer (not in speakeasy 1.5.11): a periodic timer the framework script fires
    timers: dict[int, dict] = {}

    def timer_of(emu, handle: int) -> dict | None:
        t = timers.get(handle)
        if t is None:
            k.abort(emu, f"not a timer of this driver: {handle:#x}")
        return t

    def wdf_timer_create(emu, api, orig, argv):
        k.cur(emu)
        glob, config, attrs, out = argv
        sizes = {"EvtTimerFunc": 8, "AutomaticSerialization": 1, "UseHighResolutionTimer": 1}
        cfg = {name: rd(emu, config + off, sizes.get(name, 4))
               for name, off in TIMER_CONFIG.items() if name != "size"}
        cfg["Size"] = rd(emu, config, 4)
        a = {name: rd(emu, attrs + off, 8 if name in ("EvtCleanupCallback", "ParentObject")
                      else 4) for name, off in OBJECT_ATTRIBUTES.items() if name != "size"}
        a["Size"] = rd(emu, attrs, 4)
        handle = emu.mem_map(0x1000, tag="emu.harness.WDFTIMER")
        emu.mem_write(out, handle.to_bytes(8, "little"))
        timers[handle] = {"func": cfg["EvtTimerFunc"], "period_ms": cfg["Period"], "due": None}
        wdf.update(timer=handle)
        k.note("WdfTimerCreate", globals_match=glob == wdf.get("globals"), config=cfg,
               attributes=a, func_in_image=in_image(cfg["EvtTimerFunc"]),
               parent_is_device=a["ParentObject"] == wdf.get("device"), timer=handle,
               irql=k.irql, status=STATUS_SUCCESS)
        return STATUS_SUCCESS

    def wdf_timer_start(emu, api, orig, argv):
        k.cur(emu)
        glob, handle, due_time = argv
        t = timer_of(emu, handle)
        if t is None:
            return 0
        due_time -= (1 << 64) if due_time >= 1 << 63 else 0
        if due_time >= 0:
            return k.abort(emu, f"WdfTimerStart with an absolute due time {due_time}: not "
                                "modelled")
        was_queued = t["due"] is not None
        t["due"] = k.clock - due_time
        k.note("WdfTimerStart", globals_match=glob == wdf.get("globals"), timer=handle,
               due_time=due_time, first_fire_ms=t["due"] / 10_000, was_queued=was_queued,
               irql=k.irql)
        return int(was_queued)

    def wdf_timer_stop(emu, api, orig, argv):
        k.cur(emu)
        glob, handle, wait = argv
        t = timer_of(emu, handle)
        if t is None:
            return 0
        was_queued = t["due"] is not None
        ignored = "timer_stop_ignored" in quirks
        if not ignored:
            # Wait or not: the timer's DPC runs on the framework's context and has always
            # returned by now (nothing can call this while it runs).
            t["due"] = None
        k.note("WdfTimerStop", globals_match=glob == wdf.get("globals"), timer=handle,
               wait=wait & 0xFF, was_queued=was_queued, irql=k.irql, ignored=ignored)
        return int(was_queued)

    # ---- threads, waits, events
    def create(emu, orig, argv7, via: str, io_object: int):
        k.cur(emu)
        h_out, access, objattr, h_proc, client_id, start, ctx = argv7
        rec = {"via": via, "io_object": io_object, "desired_access": access,
               "object_attributes": objattr, "attributes": None, "kernel_handle": False,
               "process_handle": h_proc, "client_id": client_id, "start_routine": start,
               "context": ctx, "start_in_image": in_image(start)}
        if objattr:
            attrs = rd(emu, objattr + 24, 4)
            rec.update(attributes=attrs, kernel_handle=bool(attrs & OBJ_KERNEL_HANDLE))
        queued = len(emu.run_queue)
        rv = orig(argv7)
        rec["status"] = rv
        rec["handle"] = rd(emu, h_out, 4) if h_out else 0   # speakeasy writes 4 bytes
        if rv != STATUS_SUCCESS or len(emu.run_queue) == queued:
            k.note("PsCreateSystemThread", **rec)
            return rv
        spk = emu.run_queue.pop().thread       # speakeasy's queued run: the harness runs it
        name = "worker" if len(k.threads) == 1 else f"thread{len(k.threads)}"
        t = KThread(name, spk, start, ctx)
        t.io_object = io_object
        k.threads.append(t)
        k.by_object[t.obj] = t
        k.by_handle[rec["handle"]] = t
        k.ready.append(t)
        if client_id:
            # speakeasy 1.5.11 writes CLIENT_ID as two 32-bit fields; x64 has two pointers.
            emu.mem_write(client_id, (4).to_bytes(8, "little") + t.tid.to_bytes(8, "little"))
        rec.update(thread_name=name, thread_id=t.tid, thread_object=t.obj)
        k.note("PsCreateSystemThread", **rec)
        if io_object:
            k.io_refs[io_object] = k.io_refs.get(io_object, 0) + 1
            k.note("IoObjectReference", object=io_object, for_thread=name,
                   refs=k.io_refs[io_object])
        return rv

    def ps_create_system_thread(emu, api, orig, argv):
        return create(emu, orig, list(argv), "PsCreateSystemThread", 0)

    def io_create_system_thread(emu, api, orig, argv):
        # Not in speakeasy 1.5.11: reached through MmGetSystemRoutineAddress.
        mod, attrs = emu.api.get_export_func_handler("ntoskrnl", "PsCreateSystemThread")
        handler = attrs[1]

        def ps_orig(a):
            return handler(mod, emu, a, {"func_name": "ntoskrnl.PsCreateSystemThread"})
        return create(emu, ps_orig, list(argv[1:8]), "IoCreateSystemThread", argv[0])

    def ke_initialize_event(emu, api, orig, argv):
        k.cur(emu)
        k.events[argv[0]] = {"type": argv[1], "signaled": bool(argv[2] & 0xFF)}
        return orig(argv)

    def ke_set_event(emu, api, orig, argv):
        k.cur(emu)
        if argv[0] not in k.events:
            return k.abort(emu, f"KeSetEvent on an uninitialized event {argv[0]:#x}")
        return k.set_event(argv[0])

    def ke_clear_event(emu, api, orig, argv):
        k.cur(emu)
        if argv[0] not in k.events:
            return k.abort(emu, f"KeClearEvent on an uninitialized event {argv[0]:#x}")
        k.events[argv[0]]["signaled"] = False
        k.note("KeClearEvent", event=argv[0], irql=k.irql)
        return 0

    def ke_wait_for_single_object(emu, api, orig, argv):
        return k.wait(emu, True, "KeWaitForSingleObject", [argv[0]], argv[4])

    def ke_wait_for_multiple_objects(emu, api, orig, argv):
        # Not in speakeasy 1.5.11. WaitAny only (the crate's wait_any; WaitAll is not modelled).
        count, array, wait_type, _reason, _mode, _alertable, timeout, _blocks = argv
        if wait_type != WAIT_ANY or not 1 <= count <= 64:
            return k.abort(emu, f"KeWaitForMultipleObjects(count={count}, "
                                f"wait_type={wait_type}) is not modelled")
        objects = [rd(emu, array + 8 * i) for i in range(count)]
        return k.wait(emu, False, "KeWaitForMultipleObjects", objects, timeout)

    def ke_delay_execution_thread(emu, api, orig, argv):
        return k.wait(emu, True, "KeDelayExecutionThread", [], argv[2])

    def zw_wait_for_single_object(emu, api, orig, argv):
        t = k.by_handle.get(argv[0])
        if t is None:
            return k.abort(emu, f"ZwWaitForSingleObject on unknown handle {argv[0]:#x}")
        return k.wait(emu, False, "ZwWaitForSingleObject", [t.obj], argv[2])

    def thread_exit(emu, api, orig, argv):
        return k.thread_exit(emu)

    def ob_reference_object_by_handle(emu, api, orig, argv):
        k.cur(emu)
        rv = orig(argv)
        obj = rd(emu, argv[4]) if argv[4] and rv == STATUS_SUCCESS else 0
        k.note("ObReferenceObjectByHandle", handle=argv[0], access=argv[1],
               object_type=argv[2], mode=argv[3], object=obj, status=rv)
        return rv

    def zw_set_information_thread(emu, api, orig, argv):
        k.cur(emu)
        handle, klass, info, length = argv
        name = None
        if klass == THREAD_NAME_INFORMATION and info:
            chars = rd(emu, info, 2) // 2
            name = emu.mem_read(rd(emu, info + 8), chars * 2).decode("utf-16-le", "replace")
        target = k.by_handle.get(handle)
        k.note("ZwSetInformationThread", handle=handle, info_class=klass, name=name,
               target=target.name if target else None,
               target_started=target.started if target else None)
        return STATUS_SUCCESS

    def ps_get_current_thread_id(emu, api, orig, argv):
        return k.cur(emu).tid

    def ke_set_priority_thread(emu, api, orig, argv):
        return 8

    def mm_get_system_routine_address(emu, api, orig, argv):
        k.cur(emu)
        length = rd(emu, argv[0], 2)
        buf = rd(emu, argv[0] + 8)
        name = emu.mem_read(buf, length).decode("utf-16-le", "replace") if buf else ""
        addr = 0 if name in missing else emu.get_proc("ntoskrnl", name)
        k.note("MmGetSystemRoutineAddress", name=name, found=bool(addr))
        return addr

    def memcmp(emu, api, orig, argv):
        # Not in speakeasy 1.5.11's ntoskrnl (the twin's code compares bytes with it).
        a, b, n = argv
        left = bytes(emu.mem_read(a, n)) if n else b""
        right = bytes(emu.mem_read(b, n)) if n else b""
        diff = next((x - y for x, y in zip(left, right) if x != y), 0)
        return diff & 0xFFFFFFFF

    def dbg_print(emu, api, orig, argv):
        k.cur(emu)
        rv = orig(argv)
        k.note("DbgPrint", text=str(argv[0] if argv else "").rstrip("\n"),
               io_refs_held=k.io_held())
        return rv

    for cb, mod, name, argc in [
        (wdf_version_bind, "wdfldr", "WdfVersionBind", 4),
        (wdf_driver_create, "wdfldr", "WdfDriverCreate", 6),
        (wdf_device_create, "wdfldr", "WdfDeviceCreate", 4),
        (wdf_device_wdm_get_device_object, "wdfldr", "WdfDeviceWdmGetDeviceObject", 2),
        (wdf_device_init_set_pnp_power_event_callbacks, "wdfldr",
         "WdfDeviceInitSetPnpPowerEventCallbacks", 3),
        (wdf_timer_create, "wdfldr", "WdfTimerCreate", HARNESS_WDF_FUNCTIONS["WdfTimerCreate"]),
        (wdf_timer_start, "wdfldr", "WdfTimerStart", HARNESS_WDF_FUNCTIONS["WdfTimerStart"]),
        (wdf_timer_stop, "wdfldr", "WdfTimerStop", HARNESS_WDF_FUNCTIONS["WdfTimerStop"]),
        (ps_create_system_thread, "ntoskrnl", "PsCreateSystemThread", 7),
        (io_create_system_thread, "ntoskrnl", "IoCreateSystemThread", 8),
        (ke_initialize_event, "ntoskrnl", "KeInitializeEvent", 3),
        (ke_set_event, "ntoskrnl", "KeSetEvent", 3),
        (ke_clear_event, "ntoskrnl", "KeClearEvent", 1),
        (ke_wait_for_single_object, "ntoskrnl", "KeWaitForSingleObject", 5),
        (ke_wait_for_multiple_objects, "ntoskrnl", "KeWaitForMultipleObjects", 8),
        (ke_delay_execution_thread, "ntoskrnl", "KeDelayExecutionThread", 3),
        (zw_wait_for_single_object, "ntoskrnl", "ZwWaitForSingleObject", 3),
        (thread_exit, "ntoskrnl", THREAD_EXIT_API, 0),
        (ob_reference_object_by_handle, "ntoskrnl", "ObReferenceObjectByHandle", 6),
        (zw_set_information_thread, "ntoskrnl", "ZwSetInformationThread", 4),
        (ps_get_current_thread_id, "ntoskrnl", "PsGetCurrentThreadId", 0),
        (ke_set_priority_thread, "ntoskrnl", "KeSetPriorityThread", 2),
        (mm_get_system_routine_address, "ntoskrnl", "MmGetSystemRoutineAddress", 1),
        (dbg_print, "ntoskrnl", "DbgPrint", 1),
        (memcmp, "ntoskrnl", "memcmp", 3),
    ]:
        se.add_api_hook(cb, mod, name, argc=argc)

    module = se.load_module(path)
    emu = se.emu
    k.uc, k.module = emu.emu_eng.emu, module
    k.exit_address = emu.get_proc("ntoskrnl", THREAD_EXIT_API)

    # The IRQL: on x64 the crate reads CR8 (`mov r64, cr8`), which unicorn 1.0.2 always reads
    # as 0 and cannot be given a value. Every such instruction of the image is hooked: it
    # yields the harness's IRQL (DISPATCH_LEVEL while a timer DPC runs) and is skipped.
    cr8_sites = []
    base = module.get_base()
    for sec in module.sections:
        if sec.Characteristics & 0x20000000:            # IMAGE_SCN_MEM_EXECUTE
            start = base + sec.VirtualAddress
            code = bytes(emu.mem_read(start, sec.Misc_VirtualSize))
            # REX with R (CR8) and W/B as they come; 0F 20 = mov r64, crN; ModRM mod=11 reg=0.
            cr8_sites += [start + m.start()
                          for m in re.finditer(rb"[\x44\x45\x4c\x4d]\x0f\x20[\xc0-\xc7]", code)]
    regs = ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
            "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"]

    def read_cr8(emu, addr, size, ctx):
        rex, _, _, modrm = bytes(emu.mem_read(addr, 4))
        emu.reg_write(regs[(modrm & 7) + (8 if rex & 1 else 0)], k.irql)
        k.cr8_reads[k.irql] = k.cr8_reads.get(k.irql, 0) + 1
        emu.set_pc(addr + 4)
        return True

    for site in cr8_sites:
        se.add_code_hook(read_cr8, begin=site, end=site)
    wdf["cr8_sites"] = len(cr8_sites)

    delay = emu.get_proc("ntoskrnl", "KeDelayExecutionThread")
    interval = emu.mem_map(0x1000, tag="emu.harness.interval")

    def on_framework(what: str) -> bool:
        if k.aborted:
            return False
        if k.current is not k.framework or k.framework.state != "running":
            errors.append(f"{what}: the framework thread is not the running one")
            return False
        return True

    def framework_call(what: str, address: int, args: list[int], returns: bool = False):
        if not on_framework(what):
            return None
        k.note("FrameworkCall", what=what, address=address, args=args, irql=k.irql)
        se.call(address, args)
        ret = getattr(emu.curr_run, "ret_val", None) if returns else None
        k.note("FrameworkReturn", what=what, ret=ret)
        return ret

    def fire(handle: int) -> None:
        """The timer expires: its DPC runs EvtTimerFunc at DISPATCH_LEVEL, on the framework's
        context (the framework thread is between calls), and the timer is requeued."""
        t = timers[handle]
        k.note("TimerFire", timer=handle, due_ms=t["due"] / 10_000)
        k.irql = DISPATCH_LEVEL
        framework_call("EvtTimerFunc (timer DPC)", t["func"], [handle])
        k.irql = PASSIVE_LEVEL
        t["due"] = t["due"] + t["period_ms"] * 10_000 if t["period_ms"] else None

    def let_time_pass(what: str, window: int) -> None:
        """Virtual time passes on the framework's thread (KeDelayExecutionThread, so the worker
        runs whenever it is ready), and the timers fire when they are due."""
        if not on_framework(what):
            return
        k.note("FrameworkCall", what=what, address=0, args=[], irql=k.irql)
        end = k.clock + window
        while not k.aborted:
            due = [(t["due"], h) for h, t in timers.items()
                   if t["due"] is not None and t["due"] <= end]
            target, handle = min(due) if due else (end, None)
            if target > k.clock:
                emu.mem_write(interval, (k.clock - target).to_bytes(8, "little", signed=True))
                se.call(delay, [0, 0, interval])
            if handle is None:
                break
            fire(handle)
        k.note("FrameworkReturn", what=what, ret=None)

    # DriverEntry: FxDriverEntry -> WdfVersionBind -> DriverEntry -> WdfDriverCreate.
    k.note("FrameworkCall", what="FxDriverEntry (image entry point)", address=0, args=[])
    se.run_module(module, all_entrypoints=False)
    k.note("FrameworkReturn", what="FxDriverEntry (image entry point)",
           ret=getattr(emu.curr_run, "ret_val", None))
    if k.current is None:
        errors.append("DriverEntry made no kernel or WDF call")
    elif not wdf.get("device_add"):
        errors.append("WdfDriverCreate registered no EvtDriverDeviceAdd")
    else:
        # PnP adds the device: EvtDriverDeviceAdd with a device-init of the framework's.
        wdf["device_init"] = emu.mem_map(0x1000, tag="emu.harness.WDFDEVICE_INIT")
        framework_call("EvtDriverDeviceAdd", wdf["device_add"],
                       [wdf["driver"], wdf["device_init"]], returns=True)
        # PnP starts the device: it enters D0 (from D3Final, as a device's first start does).
        if wdf.get("d0_entry"):
            framework_call("EvtDeviceD0Entry (device start)", wdf["d0_entry"],
                           [wdf["device"], POWER_DEVICE_D3_FINAL], returns=True)
        else:
            errors.append("no EvtDeviceD0Entry was registered")
        let_time_pass("let time pass in D0 (3.5 s)", D0_WINDOW)
        # Removal: the device leaves D0 for good, and PnP takes its time (the harness's choice
        # of 1 s) before the device is deleted.
        if wdf.get("d0_exit"):
            framework_call("EvtDeviceD0Exit (removal)", wdf["d0_exit"],
                           [wdf["device"], POWER_DEVICE_D3_FINAL], returns=True)
        else:
            errors.append("no EvtDeviceD0Exit was registered")
        let_time_pass("let time pass out of D0 (1 s)", IDLE_WINDOW)
        # The device's deletion: as KMDF does, its children first (a timer's dispose stops it
        # and flushes its DPC), then the device's cleanup callback.
        for handle, t in timers.items():
            k.note("TimerDisposed", timer=handle, was_queued=t["due"] is not None)
            t["due"] = None
        if wdf.get("cleanup"):
            framework_call("EvtCleanupCallback (device removal)", wdf["cleanup"],
                           [wdf["device"]])
        else:
            errors.append("WdfDeviceCreate registered no EvtCleanupCallback")
        if wdf.get("unload"):
            framework_call("EvtDriverUnload", wdf["unload"], [wdf["driver"]])
        else:
            errors.append("WdfDriverCreate registered no EvtDriverUnload")

    k.note("Final", threads={t.name: t.state for t in k.threads},
           io_refs={hex(o): n for o, n in k.io_refs.items()},
           clock_ms=k.clock / 10_000, cr8_reads=k.cr8_reads)
    summary = speakeasy_run.summarise(se.get_report(), trace, errors, path, "kmdf-twin")
    exports = {e.name.decode(): e.address
               for e in getattr(getattr(module, "DIRECTORY_ENTRY_EXPORT", None), "symbols", [])
               if e.name}
    imports = {d.dll.decode().lower(): sorted(i.name.decode() for i in d.imports if i.name)
               for d in getattr(module, "DIRECTORY_ENTRY_IMPORT", [])}
    summary.update(scenario=scenario, missing=sorted(missing), quirks=quirks, wdf=wdf,
                   speakeasy_layout=speakeasy_layout(),
                   pe={"exports": sorted(exports), "imports": imports,
                       "entry_is_FxDriverEntry": exports.get("FxDriverEntry")
                       == module.OPTIONAL_HEADER.AddressOfEntryPoint})
    return summary


# -- checks (system Python) -----------------------------------------------------------------

def mirror_check() -> list[str]:
    """The twin must keep following the sample: it compiles the sample's worker.rs itself, and
    every line the sample's lib.rs prints is printed by the twin's lib.rs too."""
    sample = (REPO / "examples" / "sample-kmdf-driver" / "src" / "lib.rs").read_text()
    twin = (TWIN_DIR / "src" / "lib.rs").read_text()
    fails = []
    if '#[path = "../../sample-kmdf-driver/src/worker.rs"]\nmod worker;' not in twin:
        fails.append("the twin does not compile the sample's src/worker.rs")
    texts = re.findall(r'"(system-thread-sample: [^"]*)"', sample)
    if not texts:
        fails.append("no output line found in the sample's lib.rs")
    fails += [f"the sample prints {t!r}, the twin does not" for t in texts if f'"{t}"' not in twin]
    # Every WDF routine the sample calls, the twin calls through its `wdf` module.
    for name in sorted(set(re.findall(r"call_unsafe_wdf_function_binding!\(\s*Wdf(\w+)", sample))):
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
        if f"wdf::{snake}(" not in twin:
            fails.append(f"the sample calls Wdf{name}, the twin has no wdf::{snake} call")
    if "WORK.notify()" not in sample or "WORK.notify()" not in twin:
        fails.append("the sample's and the twin's timer callbacks do not both call WORK.notify()")
    for callback in ("evt_driver_device_add", "evt_device_d0_entry", "evt_device_d0_exit",
                     "evt_timer_func", "evt_device_cleanup", "evt_driver_unload"):
        if f'extern "C" fn {callback}(' not in twin:
            fails.append(f"the twin has no {callback}")
    return fails


def layout_of(summary: dict) -> dict:
    """The twin's printed layout facts (its `kmdf-twin: layout` lines, merged)."""
    out = {}
    for e in summary["events"]:
        if e["kind"] == "DbgPrint" and e["text"].startswith("kmdf-twin: layout "):
            out.update({key: int(value) for key, value in
                        (tok.split("=", 1) for tok in e["text"].split()[2:])})
    return out


def check(summary: dict, scenario: str) -> list[str]:
    """Failures of one scenario's run (empty: passed). The controls are checked as `kmdf`."""
    fails: list[str] = []
    io_path = "IoCreateSystemThread" not in SCENARIOS[scenario][1]

    def expect(cond: bool, msg: str) -> bool:
        if not cond:
            fails.append(msg)
        return cond

    ev = summary["events"]
    for e in summary["errors"]:
        fails.append(f"emulation error: {e}")

    def first(kind: str, pred=lambda e: True) -> int | None:
        return next((i for i, e in enumerate(ev) if e["kind"] == kind and pred(e)), None)

    def calls(what: str) -> tuple[int | None, int | None]:
        a = first("FrameworkCall", lambda e: e["what"].startswith(what))
        b = first("FrameworkReturn", lambda e: e["what"].startswith(what))
        return a, b

    def text(i: int | None) -> str:
        return ev[i].get("text", "") if i is not None else ""

    def line(prefix: str, thread: str | None = None) -> int | None:
        return first("DbgPrint", lambda e: e["text"].startswith(prefix)
                     and (thread is None or e["thread"] == thread))

    reported: set[str] = set()

    def ordered(*pairs: tuple[str, int | None]) -> None:
        named = [(n, i) for n, i in pairs]
        for n, i in named:
            if i is None and n not in reported:
                reported.add(n)
                fails.append(f"missing from the trace: {n}")
        present = [(n, i) for n, i in named if i is not None]
        for (n1, i1), (n2, i2) in zip(present, present[1:]):
            expect(i1 < i2, f"order: {n1} (#{i1}) is not before {n2} (#{i2})")

    # -- the image: a KMDF driver's entry is the stub's, its only WDF import the bind
    pe = summary["pe"]
    expect(pe["entry_is_FxDriverEntry"], "the image entry point is not FxDriverEntry")
    expect(pe["imports"].get("wdfldr.sys") == ["WdfVersionBind"]
           and set(pe["imports"]) == {"wdfldr.sys", "ntoskrnl.exe"},
           f"imports: {pe['imports']}")
    expect(pe["exports"] == ["DriverEntry", "FxDriverEntry"], f"exports: {pe['exports']}")

    # -- layout: the twin's facts against speakeasy's definitions (and this harness's reads)
    twin = layout_of(summary)
    se_layout = summary["speakeasy_layout"]
    if expect(bool(twin), "the twin printed no layout line"):
        for key, value in se_layout.items():
            if key == "table_entries":
                continue
            expect(twin.get(key) == value, f"layout {key}: twin {twin.get(key)}, speakeasy {value}")
        expect(twin.get("FuncCount") == KMDF_1_33_FUNCTIONS,
               f"the twin binds {twin.get('FuncCount')} functions, KMDF 1.33 has "
               f"{KMDF_1_33_FUNCTIONS}")
        expect(twin.get("ObjectAttributes.size") == OBJECT_ATTRIBUTES["size"]
               and twin.get("ObjectAttributes.EvtCleanupCallback.offset")
               == OBJECT_ATTRIBUTES["EvtCleanupCallback"]
               and twin.get("ObjectAttributes.ParentObject.offset")
               == OBJECT_ATTRIBUTES["ParentObject"],
               "WDF_OBJECT_ATTRIBUTES: the twin and this harness disagree")
        for field, offset in TIMER_CONFIG.items():
            key = "TimerConfig.size" if field == "size" else f"TimerConfig.{field}.offset"
            expect(twin.get(key) == offset,
                   f"WDF_TIMER_CONFIG {key}: twin {twin.get(key)}, this harness {offset}")

    # -- the lifecycle, in order
    bind = first("WdfVersionBind")
    create = first("WdfDriverCreate")
    add_call, add_ret = calls("EvtDriverDeviceAdd")
    pnp = first("WdfDeviceInitSetPnpPowerEventCallbacks")
    dev = first("WdfDeviceCreate")
    get_do = first("WdfDeviceWdmGetDeviceObject")
    thread = first("PsCreateSystemThread")
    timer_create = first("WdfTimerCreate")
    start = first("ThreadStart", lambda e: e["thread"] == "worker")
    d0_call, d0_ret = calls("EvtDeviceD0Entry")
    timer_start = first("WdfTimerStart")
    run_call, run_ret = calls("let time pass in D0")
    d0x_call, d0x_ret = calls("EvtDeviceD0Exit")
    timer_stop = first("WdfTimerStop")
    idle_call, idle_ret = calls("let time pass out of D0")
    disposed = first("TimerDisposed")
    clean_call, clean_ret = calls("EvtCleanupCallback")
    stop_set = first("KeSetEvent", lambda e: "worker" in e["woke"] and e["thread"] == "framework"
                     and e["irql"] == PASSIVE_LEVEL)
    exit_ = first("ThreadExit", lambda e: e["thread"] == "worker")
    join_done = first("WaitDone", lambda e: e["thread"] == "framework"
                      and e["object"] == "thread object of worker")
    unload_call, unload_ret = calls("EvtDriverUnload")
    ordered(("WdfVersionBind", bind), ("WdfDriverCreate", create),
            ("EvtDriverDeviceAdd called", add_call),
            ("WdfDeviceInitSetPnpPowerEventCallbacks", pnp), ("WdfDeviceCreate", dev),
            ("WdfDeviceWdmGetDeviceObject", get_do),
            ("the worker's creation", thread), ("WdfTimerCreate", timer_create),
            ("EvtDriverDeviceAdd returned", add_ret),
            ("EvtDeviceD0Entry called", d0_call), ("WdfTimerStart", timer_start),
            ("EvtDeviceD0Entry returned", d0_ret),
            ("time in D0 called", run_call), ("time in D0 returned", run_ret),
            ("EvtDeviceD0Exit called", d0x_call), ("WdfTimerStop", timer_stop),
            ("EvtDeviceD0Exit returned", d0x_ret),
            ("time out of D0 called", idle_call), ("time out of D0 returned", idle_ret),
            ("the timer's disposal", disposed),
            ("EvtCleanupCallback called", clean_call), ("stop event set by cleanup", stop_set),
            ("the worker's exit", exit_), ("the join's wait returned", join_done),
            ("EvtCleanupCallback returned", clean_ret), ("EvtDriverUnload called", unload_call),
            ("EvtDriverUnload returned", unload_ret))
    # (When the new thread first runs is the scheduler's choice; here the creator runs on until
    # it blocks. What matters: after its creation, and while the device exists.)
    ordered(("the worker's creation", thread), ("the worker's start", start),
            ("time in D0 returned", run_ret))
    if None in (bind, create, dev, get_do, thread):
        return fails

    b, c, d, g, t = ev[bind], ev[create], ev[dev], ev[get_do], ev[thread]
    expect(b["status"] == 0 and b["component"] == "KmdfLibrary" and b["version"] == "1.33"
           and b["size"] == 48 and b["func_count"] == KMDF_1_33_FUNCTIONS,
           f"WdfVersionBind: {b}")
    expect(b["func_table_var_in_image"] and b["globals_var_in_image"] and b["table"]
           and b["globals"], "WdfVersionBind: the function table and globals were not stored "
           f"in the driver's own variables: {b}")
    bound = line("kmdf-twin: bound to KMDF 1.33")
    expect(bound is not None and f"function table {b['table']:#x}" in text(bound)
           and f"driver globals {b['globals']:#x}" in text(bound),
           f"the twin does not report the table and globals the loader gave it: {text(bound)!r}")
    expect(c["status"] == 0 and c["globals_match"] and c["config_size"] == 32
           and c["callbacks_in_image"], f"WdfDriverCreate: {c}")
    expect(line("system-thread-sample: WdfDriverCreate returned 0x00000000") is not None,
           "DriverEntry did not report WdfDriverCreate's success")
    a = d["attributes"]
    expect(d["status"] == 0 and d["globals_match"] and d["device_init_is_harness"]
           and a.get("Size") == OBJECT_ATTRIBUTES["size"] and d["cleanup_in_image"]
           and a.get("ExecutionLevel") == INHERIT_FROM_PARENT
           and a.get("SynchronizationScope") == INHERIT_FROM_PARENT and d["device_object"],
           f"WdfDeviceCreate: {d}")
    expect(g["globals_match"] and g["device"] == d["device"]
           and g["returned"] == d["device_object"],
           f"WdfDeviceWdmGetDeviceObject did not return the device's DEVICE_OBJECT: {g}")
    creations = [e for e in ev if e["kind"] == "PsCreateSystemThread"]
    expect(len(creations) == 1, f"{len(creations)} threads created, expected 1")
    expect(t["kernel_handle"] and t["process_handle"] == 0 and t["status"] == 0
           and t["start_in_image"], f"thread creation: {t}")
    lookup = first("MmGetSystemRoutineAddress", lambda e: e["name"] == "IoCreateSystemThread")
    expect(lookup is not None and ev[lookup]["found"] == io_path,
           "IoCreateSystemThread was not looked up as the scenario expects")
    refs = [e for e in ev if e["kind"] == "IoObjectReference"]
    derefs = [e for e in ev if e["kind"] == "IoObjectDereference"]
    if io_path:
        expect(t["via"] == "IoCreateSystemThread" and t["io_object"] == d["device_object"],
               f"the worker was not created by IoCreateSystemThread on the device object: {t}")
        released = [ev.index(e) for e in derefs]
        expect(len(refs) == 1 and refs[0]["object"] == d["device_object"] and len(derefs) == 1
               and exit_ is not None and join_done is not None
               and exit_ < released[0] < join_done,
               "the device object was not referenced once, for the worker, and released when "
               "the worker exited, before its join returned")
        started = line("system-thread-sample: worker ")
        expect("started (IoCreateSystemThread)" in text(started), f"{text(started)!r}")
    else:
        expect(t["via"] == "PsCreateSystemThread",
               f"the fallback did not use PsCreateSystemThread: {t}")
        expect(not refs and not derefs, "the fallback thread referenced an I/O object")
        fallback = line(f"{WORKER_NAME}: IoCreateSystemThread is not exported here; "
                        "using PsCreateSystemThread")
        expect(fallback is not None and fallback < thread, "the fallback was not reported")
        started = line("system-thread-sample: worker ")
        expect("started (PsCreateSystemThread)" in text(started), f"{text(started)!r}")
    # Named before its closure ran (the start gate).
    names = [e for e in ev if e["kind"] == "ZwSetInformationThread"]
    expect(len(names) == 1 and names[0]["name"] == WORKER_NAME and names[0]["target"] == "worker"
           and not names[0]["target_started"],
           f"the worker was not named {WORKER_NAME!r} before it started: {names}")
    # The worker's own lines, on its own thread.
    tid = t.get("thread_id", -1)
    running = line(f"{WORKER_NAME}: running on thread ", "worker")
    expect(running is not None and text(running).endswith(f"{tid:#x}"),
           f"the worker did not report its own thread id {tid:#x}: {text(running)!r}")
    expect(f"worker {tid:#x} started" in text(started),
           f"DriverEntry's device add did not report the worker's id: {text(started)!r}")
    # -- the timer: created in device add, a child of the device, started in D0 entry, stopped
    # (waiting) in D0 exit at PASSIVE_LEVEL
    pnp_e = ev[pnp] if pnp is not None else {}
    expect(pnp_e.get("globals_match") and pnp_e.get("device_init_is_harness")
           and pnp_e.get("size") == 144 and pnp_e.get("callbacks_in_image")
           and pnp_e.get("other_callbacks_at") == [],
           f"WdfDeviceInitSetPnpPowerEventCallbacks: {pnp_e}")
    creates = [e for e in ev if e["kind"] == "WdfTimerCreate"]
    tc = creates[0] if creates else {}
    cfg, ta = tc.get("config", {}), tc.get("attributes", {})
    expect(len(creates) == 1 and tc["globals_match"] and tc["func_in_image"]
           and tc["parent_is_device"] and cfg.get("Size") == TIMER_CONFIG["size"]
           and cfg.get("Period") == PERIOD_MS and cfg.get("AutomaticSerialization") == 0
           and cfg.get("UseHighResolutionTimer") == 0
           and ta.get("Size") == OBJECT_ATTRIBUTES["size"]
           and ta.get("ExecutionLevel") == INHERIT_FROM_PARENT
           and ta.get("SynchronizationScope") == INHERIT_FROM_PARENT,
           f"WdfTimerCreate (once, periodic {PERIOD_MS} ms, parent the device): {creates}")
    starts = [e for e in ev if e["kind"] == "WdfTimerStart"]
    expect(len(starts) == 1 and starts[0]["timer"] == tc.get("timer")
           and starts[0]["due_time"] == -PERIOD_MS * 10_000 and starts[0]["globals_match"],
           f"WdfTimerStart (once, one period ahead, in D0 entry): {starts}")
    stops = [e for e in ev if e["kind"] == "WdfTimerStop"]
    expect(len(stops) == 1 and stops[0]["timer"] == tc.get("timer") and stops[0]["wait"] == 1
           and stops[0]["irql"] == PASSIVE_LEVEL and stops[0]["globals_match"],
           f"D0 exit did not stop the timer once, waiting, at PASSIVE_LEVEL: {stops}")
    expect(line("system-thread-sample: D0 entry from power state 5: timer started, every "
                f"{PERIOD_MS} ms", "framework") is not None, "D0 entry did not report the timer")
    expect(line("system-thread-sample: D0 exit to power state 5: timer stopped", "framework")
           is not None, "D0 exit did not report the timer stopped")

    # -- the timer's DPCs: at DISPATCH_LEVEL, one KeSetEvent each (the work event), waking
    # the worker; nothing else, and never a wait
    fires = [i for i, e in enumerate(ev) if e["kind"] == "FrameworkCall"
             and e["what"].startswith("EvtTimerFunc")]
    fire_rets = [i for i, e in enumerate(ev) if e["kind"] == "FrameworkReturn"
                 and e["what"].startswith("EvtTimerFunc")]
    expect([ev[i]["t_ms"] for i in fires] == [PERIOD_MS * n for n in range(1, EXPECTED_FIRES + 1)],
           f"timer fires, expected {EXPECTED_FIRES} one period apart while in D0: "
           f"{[ev[i]['t_ms'] for i in fires]} ms")
    work_event = None
    for i, r in zip(fires, fire_rets):
        inside = ev[i + 1:r]
        sets = [e for e in inside if e["kind"] == "KeSetEvent"]
        expect(ev[i]["irql"] == DISPATCH_LEVEL and all(e.get("irql") == DISPATCH_LEVEL
                                                        for e in sets),
               f"the timer DPC at {ev[i]['t_ms']} ms did not run at DISPATCH_LEVEL")
        expect(len(sets) == 1 and sets[0]["woke"] == ["worker"],
               f"the timer DPC at {ev[i]['t_ms']} ms did not set one event waking the worker: "
               f"{sets}")
        others = [e["kind"] for e in inside if e["kind"] not in ("KeSetEvent", "WaitDone")]
        expect(not others, f"the timer DPC at {ev[i]['t_ms']} ms did more: {others}")
        if sets:
            work_event = work_event or sets[0]["event"]
            expect(sets[0]["event"] == work_event, "the DPCs set different events")
    reads = next((e for e in ev if e["kind"] == "Final"), {}).get("cr8_reads", {})
    expect(reads.get(str(DISPATCH_LEVEL), 0) >= len(fires) > 0,
           f"the driver's IRQL checks did not see DISPATCH_LEVEL in the DPCs: CR8 reads {reads}")

    # -- the worker: one wake per timer fire, right after it, one item each; one wait per wake
    # plus the one the stop ends; nothing at all between fires or out of D0
    wakes = [i for i, e in enumerate(ev) if e["kind"] == "DbgPrint" and e["thread"] == "worker"
             and e["text"].startswith(f"{WORKER_NAME}: wake ")]
    expect([ev[i]["text"] for i in wakes]
           == [f"{WORKER_NAME}: wake {n}: 1 item(s)" for n in range(1, len(fires) + 1)],
           f"the worker's wakes are not one per timer fire, one item each: "
           f"{[ev[i]['text'] for i in wakes]} for {len(fires)} fires")
    for n, (f, w) in enumerate(zip(fires, wakes), 1):
        nxt = fires[n] if n < len(fires) else len(ev)
        expect(f < w < nxt and ev[w]["t_ms"] == ev[f]["t_ms"],
               f"wake {n} did not follow timer fire {n} at once")
    if io_path:
        expect(all(ev[i]["io_refs_held"] == 1 for i in wakes),
               "a wake ran without the device-object reference held")
    # (From its first line on: before it, the crate's start gate makes one wait, satisfied at
    # once, on the thread's own gate.)
    worker_waits = [e for e in ev[running or 0:] if e["thread"] == "worker" and e["kind"] in
                    ("KeWaitForMultipleObjects", "KeWaitForSingleObject",
                     "KeDelayExecutionThread", "ZwWaitForSingleObject")]
    expect(len(worker_waits) == len(wakes) + 1
           and all(e["kind"] == "KeWaitForMultipleObjects" and e["blocked"]
                   and e["timeout_ms"] is None for e in worker_waits),
           f"the worker's waits are not one blocking work-or-stop wait per wake plus one: "
           f"{[(e['kind'], e.get('blocked'), e.get('timeout_ms')) for e in worker_waits]}")
    woken = [e for e in ev if e["kind"] == "WaitDone" and e["thread"] == "worker"]
    expect([e["status"] for e in woken] == [STATUS_WAIT_0 + 1] * len(wakes) + [STATUS_WAIT_0],
           f"the worker's waits did not end by work (index 1) each time and by stop (index 0) "
           f"last: {[e['status'] for e in woken]}")
    if None not in (d0x_ret, clean_call):
        idle = [e for e in ev[d0x_ret:clean_call] if e["thread"] == "worker"
                or e["kind"] == "TimerFire"]
        expect(not idle, f"{len(idle)} worker events or timer fires while the device was out of "
               f"D0 (the timer stopped): {[(e['kind'], e['t_ms']) for e in idle]}")
        expect(ev[clean_call]["t_ms"] - ev[d0x_ret]["t_ms"] >= IDLE_WINDOW / 10_000,
               "less than the idle window passed out of D0")
    # Stop: requested by the cleanup, the thread wakes at once, then the join returns; nothing
    # was queued and left undone.
    stopped = line(f"{WORKER_NAME}: stop requested", "worker")
    n = len(wakes)
    joined = line(f"{WORKER_NAME}: joined after {n} wakes, {n} items", "framework")
    cleanup_line = line(f"system-thread-sample: device cleanup: worker stopped after {n} wakes, "
                        f"{n} items", "framework")
    ordered(("stop event set by cleanup", stop_set), ("'stop requested' (worker)", stopped),
            ("the worker's exit", exit_), ("'joined after N wakes'", joined),
            ("'device cleanup: worker stopped'", cleanup_line),
            ("EvtCleanupCallback returned", clean_ret))
    if stop_set is not None and exit_ is not None:
        expect(ev[exit_]["t_ms"] == ev[stop_set]["t_ms"],
               "the worker did not stop at once when asked (virtual time passed)")
    dropped = [e["text"] for e in ev if e["kind"] == "DbgPrint"
               and e["text"].endswith("item(s) queued after the last wake")]
    expect(not dropped, f"work was queued and never done: {dropped}")
    live = line("kmdf-twin: live threads at unload: ")
    expect(text(live).endswith(": 0"), f"live threads at unload: {text(live)!r}")
    expect(line("system-thread-sample: unloaded") is not None, "EvtDriverUnload did not finish")
    final = next((e for e in ev if e["kind"] == "Final"), {})
    expect(final.get("threads", {}).get("worker") == "exited",
           f"the worker is still running after unload: {final.get('threads')}")
    expect(not any(final.get("io_refs", {}).values()),
           f"I/O object references left: {final.get('io_refs')}")
    # Balances: thread handles closed, thread-object references dropped, pool freed.
    for p in summary["analysis"]["problems"]:
        fails.append(f"balance: {p}")
    for e in ev:
        if e["kind"] == "DbgPrint" and "PANIC" in e["text"]:
            fails.append(f"panic: {e['text']}")
    return fails


def mutations(summary: dict) -> list[tuple[str, dict, str]]:
    """Copies of a passing `kmdf` summary with one defect each, and the failure `check` must
    report for it: evidence that each of these checks can fail."""
    out = []

    def mutate(name: str, expected: str, change) -> None:
        copy = json.loads(json.dumps(summary))
        change(copy)
        out.append((name, copy, expected))

    def events(c: dict, kind: str, thread: str | None = None) -> list[dict]:
        return [e for e in c["events"] if e["kind"] == kind
                and (thread is None or e["thread"] == thread)]

    def join_first(c: dict) -> None:
        ev = c["events"]
        join = next(e for e in events(c, "WaitDone", "framework")
                    if e["object"] == "thread object of worker")
        ev.remove(join)
        ev.insert(ev.index(events(c, "ThreadExit", "worker")[0]), join)

    def wake_lines(c: dict) -> list[dict]:
        return [e for e in events(c, "DbgPrint", "worker") if ": wake " in e["text"]]

    def wake_unpinned(c: dict) -> None:
        wake_lines(c)[1]["io_refs_held"] = 0

    def wake_out_of_d0(c: dict) -> None:
        ev = c["events"]
        d0_exit = next(i for i, e in enumerate(ev) if e["kind"] == "FrameworkReturn"
                       and e["what"].startswith("EvtDeviceD0Exit"))
        extra = dict(wake_lines(c)[-1], t_ms=ev[d0_exit]["t_ms"] + 500)
        ev.insert(d0_exit + 1, extra)

    def worker_polls(c: dict) -> None:
        ev = c["events"]
        wait = events(c, "KeWaitForMultipleObjects", "worker")[1]
        ev.insert(ev.index(wait), dict(wait, blocked=False, timeout_ms=0.0, status=0x102))

    def dpc_at_passive(c: dict) -> None:
        next(e for e in events(c, "FrameworkCall") if e["what"].startswith("EvtTimerFunc"))[
            "irql"] = 0

    def timer_not_stopped(c: dict) -> None:
        c["events"].remove(events(c, "WdfTimerStop")[0])

    def two_items(c: dict) -> None:
        line = wake_lines(c)[1]
        line["text"] = line["text"].replace(": 1 item(s)", ": 2 item(s)")

    def timer_layout(c: dict) -> None:
        c["speakeasy_layout"]["index.TimerCreate"] += 1

    def timer_config_layout(c: dict) -> None:
        for e in events(c, "DbgPrint"):
            e["text"] = e["text"].replace("UseHighResolutionTimer.offset=32",
                                          "UseHighResolutionTimer.offset=28")

    def layout(c: dict) -> None:
        c["speakeasy_layout"]["index.DeviceCreate"] += 1

    def other_object(c: dict) -> None:
        events(c, "PsCreateSystemThread")[0]["io_object"] += 0x1000

    def named_late(c: dict) -> None:
        events(c, "ZwSetInformationThread")[0]["target_started"] = True

    mutate("the join returns before the thread exits", "order: the worker's exit", join_first)
    mutate("a wake without the device reference", "without the device-object reference",
           wake_unpinned)
    mutate("a wake while the device is out of D0", "while the device was out of D0",
           wake_out_of_d0)
    mutate("the worker polls between fires", "one blocking work-or-stop wait", worker_polls)
    mutate("the timer DPC runs at PASSIVE_LEVEL", "did not run at DISPATCH_LEVEL",
           dpc_at_passive)
    mutate("D0 exit does not stop the timer", "D0 exit did not stop the timer",
           timer_not_stopped)
    mutate("a wake takes two items", "one item each", two_items)
    mutate("speakeasy's table index differs", "layout index.DeviceCreate", layout)
    mutate("speakeasy's timer index differs", "layout index.TimerCreate", timer_layout)
    mutate("WDF_TIMER_CONFIG's last field moves", "TimerConfig.UseHighResolutionTimer",
           timer_config_layout)
    mutate("the thread is created on another object", "on the device object", other_object)
    mutate("the thread is named after it started", "before it started", named_late)
    return out


def shown(value) -> str:
    """A trace value: integers in hex, containers element by element."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {shown(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(shown(v) for v in value) + "]"
    return str(value)


def render(summary: dict) -> list[str]:
    """The trace, one line per event (waits that did not block left out)."""
    out = []
    for e in summary["events"]:
        kind = e["kind"]
        fields = {k: v for k, v in e.items() if k not in ("kind", "t_ms", "thread")}
        if kind == "DbgPrint":
            detail = fields["text"]
        elif kind in ("FrameworkCall", "FrameworkReturn"):
            detail = f"{fields['what']}" + (f" -> {fields['ret']:#x}" if isinstance(
                fields.get("ret"), int) else "") + (
                f" at IRQL {fields['irql']}" if fields.get("irql") else "")
        elif kind == "PsCreateSystemThread":
            kind = fields["via"]
            detail = (f"io_object={fields['io_object']:#x} -> {fields['status']:#x} "
                      f"handle={fields['handle']:#x} tid={fields.get('thread_id', 0):#x} "
                      f"OBJ_KERNEL_HANDLE={int(fields['kernel_handle'])} "
                      f"process={fields['process_handle']:#x}")
        elif kind in ("KeWaitForSingleObject", "KeWaitForMultipleObjects",
                      "KeDelayExecutionThread", "ZwWaitForSingleObject"):
            if not fields.get("blocked"):
                continue
            detail = f"{fields['object']} blocks (timeout {fields.get('timeout_ms')} ms)"
        elif kind == "WaitDone":
            detail = f"{fields['object']} -> {fields['status']:#x}"
        else:
            detail = " ".join(f"{k}={shown(v)}" for k, v in fields.items())
        out.append(f"[{e['t_ms']:8.1f} ms] {e['thread']:<9} {kind}: {detail}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--emulate", help=argparse.SUPPRESS)      # inside the venv
    ap.add_argument("--scenario", choices=sorted(SCENARIOS), default="kmdf",
                    help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--no-build", action="store_true", help="use the .sys files already built")
    ap.add_argument("--json", type=Path, help="write every scenario's summary to this file")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every trace line")
    a = ap.parse_args(argv)
    if a.emulate:
        import logging  # noqa: PLC0415
        logging.disable(logging.CRITICAL)
        Path(a.out).write_text(json.dumps(emulate(a.emulate, a.scenario), default=str))
        return 0

    results: dict = {}
    fails: list[str] = []
    try:
        built = {}
        for v in VARIANTS:
            p = CACHE / "drivers" / f"st_kmdf_{v}.sys"
            if a.no_build and not p.exists():
                raise HarnessError(f"{p} missing; run without --no-build")
            built[v] = p if a.no_build else build(v)
        mirrored = mirror_check()
        print(f"=== the twin follows the sample: {'yes' if not mirrored else 'NO'} (worker.rs "
              "compiled from the sample; the sample's lib.rs output lines and callbacks) ===")
        fails += [f"[mirror] {f}" for f in mirrored]
        for scenario, (variant, missing, quirks) in SCENARIOS.items():
            summary = run(built[variant], scenario)
            results[scenario] = summary
            found = check(summary, scenario)
            an = summary["analysis"]
            balance = (f"handles {an['handles']['created']}/{an['handles']['closed']} closed, "
                       f"refs {an['object_refs']['referenced']}/"
                       f"{an['object_refs']['dereferenced']} released, pool "
                       f"{an['pool']['allocated']}/{an['pool']['freed']} freed")
            if scenario in CONTROLS:
                wanted = CONTROLS[scenario]
                caught = all(any(w in f for f in found) for w in wanted)
                print(f"=== {scenario}: negative control ({balance}) ===")
                for f in found:
                    print(f"  rejected: {f}")
                if not caught:
                    fails.append(f"[{scenario}] the checks did not reject the control "
                                 f"(wanted failures about: {', '.join(wanted)})")
                continue
            missing_text = f", missing: {', '.join(missing)}" if missing else ""
            print(f"=== {scenario} (speakeasy WDF loader{missing_text}) ===")
            lines = render(summary)
            if not a.verbose:
                lines = [x for x in lines if " ObReferenceObjectByHandle: " not in x]
            for x in lines:
                print(f"  {x}")
            print(f"  {balance}")
            fails += [f"[{scenario}] {f}" for f in found]
            if scenario == "kmdf" and not found:
                controls = mutations(summary)
                missed = [name for name, copy, expected in controls
                          if not any(expected in f for f in check(copy, scenario))]
                print(f"  trace mutations rejected by the checks: "
                      f"{len(controls) - len(missed)}/{len(controls)} "
                      f"({'; '.join(name for name, _, _ in controls)})")
                fails += [f"[{scenario}] mutation not rejected: {name}" for name in missed]
    except HarnessError as e:
        print(f"HARNESS ERROR: {e}", file=sys.stderr)
        return 2
    finally:
        if a.json:
            a.json.write_text(json.dumps(results, indent=1, default=str))
    for f in fails:
        print(f"FAIL {f}")
    print("KMDF TWIN: ALL CHECKS PASSED" if not fails else f"KMDF TWIN: {len(fails)} check(s) "
          "failed")
    return 1 if fails else 0


if __name__ == "__main__":
    if "--emulate" in sys.argv:
        try:
            import speakeasy  # noqa: F401
        except ImportError:
            py = speakeasy_run.ensure_venv()
            os.execv(str(py), [str(py), __file__, *sys.argv[1:]])
    sys.exit(main())
