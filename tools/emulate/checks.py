"""Expectations on the demo driver's output: the one place to extend when scenarios change.

The driver prints `system-thread-demo: <scenario> <event> key=value ... [text=...]` (format
defined at the top of examples/demo-driver/src/lib.rs). Every check returns a list of
failure messages (empty = pass).

What the emulators can show differs, so checks are context-aware:
  * wine: real threads, real waits, real time. Everything is checked, including which OS
    thread printed each line (Wine's per-line tid) and the order in which lines appeared.
  * speakeasy-eager: PsCreateSystemThread runs the thread to completion before returning
    (a harness hook), and every wait returns at once. Values, ids and resource balances are
    checked; timing is not: the timed join finds the thread finished (status 0x0), the
    worker's wait for work or stop returns its first object (stop) and it exits with items=0. IoCreateSystemThread
    exists there (Windows 8+), so the I/O-object thread is really created and joined.
  * speakeasy-queued: speakeasy's own semantics, threads run only after DriverEntry
    returns. Every join must then report the failed wait (0xC0000001) instead of a value
    read from a slot the thread never wrote; the balances must still hold.
  * speakeasy, both modes: a system thread that only sleeps is ended by the harness as parked
    (speakeasy_run.PARK_SLEEPS); only the leak variants may have one (check_speakeasy_leak).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

TAG = "system-thread-demo:"
_LINE = re.compile(r"^system-thread-demo: (?P<scenario>\S+) (?P<event>\S+)(?: (?P<rest>.*))?$")

STATUS_TIMEOUT = 0x102
STATUS_UNSUCCESSFUL = 0xC0000001

# Lines that must never appear.
FORBIDDEN: list[tuple[str, str]] = [
    (r"PANIC", "the driver panicked"),
    (r"FAIL", "a scenario reported failure"),
]

# Lines printed by spawned threads (scenario, event) in the library demo and the baseline.
THREAD_LINES = {("spawn", "value-written"), ("parallel", "part"), ("timeout", "value-written"),
                ("irql", "thread"), ("builder", "value-written"), ("worker", "wake"),
                ("worker", "exiting"), ("leak", "thread-running")}


@dataclass
class Event:
    index: int                  # position in the output
    scenario: str
    event: str
    fields: dict[str, str] = field(default_factory=dict)
    ts: float | None = None     # Wine only
    tid: int | None = None      # Wine only: the OS thread that printed the line
    line: str = ""

    def int(self, key: str) -> int | None:
        v = self.fields.get(key)
        if v is None:
            return None
        try:
            return int(v, 0)
        except ValueError:
            return None


def fields(line: str) -> dict[str, str]:
    """key=value pairs of a line; `text=` runs to the end of the line."""
    m = _LINE.match(line)
    rest = (m.group("rest") or "") if m else line
    out: dict[str, str] = {}
    while rest:
        if rest.startswith("text="):
            out["text"] = rest[5:]
            break
        tok, _, rest = rest.partition(" ")
        k, eq, v = tok.partition("=")
        if eq:
            out[k] = v
    return out


def parse(records: list) -> list[Event]:
    """records: texts, or [ts, tid, text] triples (Wine)."""
    events = []
    for i, r in enumerate(records):
        ts = tid = None
        text = r
        if isinstance(r, (list, tuple)):
            ts, tid, text = r
        m = _LINE.match(text)
        if not m:
            continue
        events.append(Event(i, m.group("scenario"), m.group("event"), fields(text), ts, tid,
                            text))
    return events


class Checker:
    def __init__(self, context: str, events: list[Event]):
        self.context = context
        self.events = events
        self.fails: list[str] = []

    def fail(self, msg: str) -> None:
        self.fails.append(f"[{self.context}] {msg}")

    def find(self, scenario: str, event: str) -> list[Event]:
        return [e for e in self.events if e.scenario == scenario and e.event == event]

    def one(self, scenario: str, event: str, what: str) -> Event | None:
        found = self.find(scenario, event)
        if len(found) != 1:
            self.fail(f"expected one `{scenario} {event}` line ({what}), found {len(found)}")
            return None
        return found[0]

    def expect(self, cond: bool, msg: str) -> bool:
        if not cond:
            self.fail(msg)
        return cond

    def before(self, a: Event | None, b: Event | None, what: str) -> None:
        if a is not None and b is not None:
            self.expect(a.index < b.index, f"order: {what}: `{a.line}` is not before `{b.line}`")

    def ok_and_values(self, e: Event | None, what: str) -> None:
        """ok=1, and value == expected as the harness reads them too."""
        if e is None:
            return
        self.expect(e.fields.get("ok") == "1", f"{what}: ok is not 1: {e.line}")
        if "value" in e.fields and "expected" in e.fields:
            self.expect(e.int("value") == e.int("expected"),
                        f"{what}: value != expected: {e.line}")


# -- shared -----------------------------------------------------------------------------

def check_frame(c: Checker, lines: list[str]) -> None:
    """DriverEntry and DriverUnload ran, in order, and nothing forbidden was printed."""
    begin = c.one("driver", "begin", "DriverEntry ran")
    end = c.one("driver", "end", "DriverEntry finished")
    ub = c.one("driver", "unload-begin", "DriverUnload ran")
    uc = c.one("driver", "unload-complete", "DriverUnload finished")
    c.before(begin, end, "DriverEntry")
    c.before(end, ub, "DriverEntry before DriverUnload")
    c.before(ub, uc, "DriverUnload")
    if end is not None:
        c.expect(end.int("status") == 0, f"DriverEntry status is not 0: {end.line}")
    for rx, what in FORBIDDEN:
        for line in lines:
            if line.startswith(TAG) and re.search(rx, line):
                c.fail(f"{what}: {line!r}")


def check_spawn_parallel_calls(c: Checker, real: bool) -> None:
    """Scenarios a and b and the call-count cycle (library demo and raw baseline)."""
    written = c.one("spawn", "value-written", "the thread of scenario a")
    joined = c.one("spawn", "joined", "scenario a joined")
    c.ok_and_values(joined, "spawn+join")
    if written and joined:
        c.expect(written.fields.get("value") == joined.fields.get("value"),
                 "spawn: the joined value is not the one the thread wrote")
        c.expect(written.int("id") == joined.int("handle_id"),
                 f"spawn: the thread's current_id() {written.fields.get('id')} != the "
                 f"handle's thread_id() {joined.fields.get('handle_id')}")
        if real:
            c.before(written, joined, "the join returned after the thread wrote its value")
    parts = c.find("parallel", "part")
    pj = c.one("parallel", "joined", "scenario b joined")
    c.ok_and_values(pj, "parallel")
    if pj:
        c.expect(pj.int("threads") == 4 and len(parts) == 4,
                 f"parallel: 4 threads expected, {len(parts)} parts, {pj.line}")
        c.expect(sorted(p.int("index") or 0 for p in parts) == [0, 1, 2, 3],
                 "parallel: slices 0..3 each computed once")
        c.expect(sum(p.int("sum") or 0 for p in parts) == pj.int("value"),
                 "parallel: the joined total is not the sum of the parts")
        if real:
            for p in parts:
                c.before(p, pj, "parallel: a part before the join of all")
    check_bracket(c, "calls")


def check_bracket(c: Checker, label: str) -> None:
    """A counting bracket (examples/demo-driver/src/bench.rs): `<label> begin`, `<label> end`
    (bare markers), then `<label> joined ... ok=1` with the value of the one spawn+join."""
    begin = c.one(label, "begin", f"the `{label}` bracket's begin marker")
    end = c.one(label, "end", f"the `{label}` bracket's end marker")
    joined = c.one(label, "joined", f"the `{label}` bracket's spawn+join")
    c.before(begin, end, f"{label}: begin marker before end marker")
    c.before(end, joined, f"{label}: end marker before the report")
    c.ok_and_values(joined, label)


def check_tids(c: Checker) -> None:
    """Wine: spawned threads printed from other OS threads than DriverEntry, and each
    thread's `id=` (PsGetCurrentThreadId through current_id()) is the OS thread id."""
    begin = c.find("driver", "begin")
    if not begin or begin[0].tid is None:
        c.fail("no thread id for DriverEntry's lines")
        return
    entry_tid = begin[0].tid
    for e in c.events:
        if (e.scenario, e.event) in THREAD_LINES:
            c.expect(e.tid != entry_tid,
                     f"tids: `{e.line}` was printed on DriverEntry's thread {entry_tid:#x}")
            if "id" in e.fields:
                c.expect(e.int("id") == e.tid,
                         f"tids: current_id() {e.fields['id']} != Wine's thread id "
                         f"{e.tid:#x} in `{e.line}`")
        elif e.scenario in ("driver", "spawn", "parallel") and e.event in ("begin", "end",
                                                                           "joined"):
            c.expect(e.tid == entry_tid, f"tids: `{e.line}` not on DriverEntry's thread")
    sj = c.find("spawn", "begin")
    if sj and "entry_id" in sj[0].fields:
        c.expect(sj[0].int("entry_id") == entry_tid,
                 f"tids: DriverEntry's current_id() != Wine's thread id {entry_tid:#x}")
    parts = {e.tid for e in c.find("parallel", "part")}
    c.expect(len(parts) == 4, f"tids: the 4 parallel parts ran on {len(parts)} OS threads")


# -- the library demo, by context -------------------------------------------------------

def check_library(c: Checker, mode: str, live: int = 0) -> None:
    """Every scenario of the full demo; `live`: the live-thread count DriverUnload must report
    (1 in the leak variants)."""
    real = mode == "wine"
    check_spawn_parallel_calls(c, real)

    # c. timed join
    first = c.one("timeout", "first-join", "the timed join")
    written = c.one("timeout", "value-written", "the sleeping thread")
    joined = c.one("timeout", "joined", "the join after the timeout")
    c.ok_and_values(joined, "timeout")
    if first:
        want = STATUS_TIMEOUT if real else 0
        c.expect(first.int("status") == want,
                 f"timeout: the first join returned {first.fields.get('status')}, "
                 f"expected {want:#x}: {first.line}")
    if real:
        c.expect(first is not None and first.fields.get("timed_out") == "1",
                 "timeout: JoinError::is_timeout() is not true")
        c.before(first, written, "the 20 ms join timed out before the thread (200 ms) wrote")
        c.before(written, joined, "the join returned after the thread wrote its value")
        if first and written and first.ts is not None and written.ts is not None:
            c.expect(written.ts - first.ts >= 0.1,
                     f"timeout: the thread wrote {written.ts - first.ts:.3f} s after the "
                     "timed-out join; it sleeps 200 ms")

    # the other counting brackets (the empty one reports nothing but its markers)
    for label in ("scoped-calls", "stoppable-calls", "builder-calls"):
        check_bracket(c, label)
    c.before(c.one("empty-calls", "begin", "the empty bracket"),
             c.one("empty-calls", "end", "the empty bracket"), "empty-calls markers")

    # d. scope
    c.ok_and_values(c.one("scope", "verified", "the scope"), "scope")

    check_live_threads(c, live)

    # e. worker: sleeps until there is work or it must stop (one KeWaitForMultipleObjects)
    started = c.one("worker", "started", "the worker")
    queued = c.one("worker", "queued", "DriverEntry queued the work items")
    wakes = c.find("worker", "wake")
    exiting = c.one("worker", "exiting", "the worker's exit")
    wj = c.one("worker", "worker-joined", "DriverUnload joined the worker")
    uc = c.find("driver", "unload-complete")
    ub = c.find("driver", "unload-begin")
    c.ok_and_values(wj, "worker")
    c.ok_and_values(queued, "worker queue")
    if wj and uc:
        c.before(wj, uc[0], "the worker was joined before DriverUnload returned")
    c.before(exiting, wj, "the worker exited before its join returned")
    if real:
        items = queued.int("items") if queued else None
        # Every queued item was done, and the worker woke at most once per item: an idle
        # worker makes no wakeups (the driver stays loaded for hundreds of ms in between).
        c.expect(wj is not None and wj.int("items") == items,
                 f"worker: joined items={wj.fields.get('items') if wj else None}, queued {items}")
        c.expect(1 <= len(wakes) <= (items or 0),
                 f"worker: {len(wakes)} wakes for {items} items (an idle worker must not wake)")
        c.expect([w.int("n") for w in wakes] == list(range(1, len(wakes) + 1)),
                 "worker: wakes are not numbered 1, 2, ...")
        c.expect(sum(w.int("items") or 0 for w in wakes) == items,
                 "worker: the wakes did not take every queued item")
        if wakes:
            c.before(started, wakes[0], "worker started before waking")
            c.before(wakes[-1], wj, "the last wake before worker-joined")
        if exiting and ub:
            c.before(ub[0], exiting, "the worker slept until DriverUnload asked it to stop")
        if started and ub and wj:
            c.expect(wj.tid == ub[0].tid, "worker: joined on a different thread than "
                     "DriverUnload's")
    elif wj:
        c.expect(wj.int("items") == 0 and not wakes,
                 f"worker: speakeasy's wait returns the stop at once, items=0 expected: {wj.line}")

    # Processors: a count and one pinned thread per processor, or a clean NotSupported where
    # the kernel lacks the group routines (Wine 8: KeSetSystemGroupAffinityThread).
    par = c.one("processors", "parallelism", "available_parallelism()")
    each = c.one("processors", "on-each", "on_each_processor()")
    c.ok_and_values(par, "processors")
    c.ok_and_values(each, "processors")
    if par and par.int("count") is not None:
        c.expect(par.int("count") >= 1, f"processors: {par.line}")
    if real and par and each and each.int("threads") is not None:
        c.expect(each.int("threads") == par.int("count"),
                 f"processors: {each.line} for {par.line}")

    # f. IRQL
    t = c.one("irql", "thread", "IRQL seen by the thread")
    if t:
        c.expect(t.int("irql") == 0, f"irql: thread at {t.fields.get('irql')}, want 0")
    c.ok_and_values(c.one("irql", "joined", "IRQL joined"), "irql")

    # g. Builder: name + priority. Wine 8 and speakeasy (hook) both accept the name.
    c.ok_and_values(c.one("builder", "joined", "the named thread with a priority"), "builder")
    c.before(c.find("builder", "value-written")[0] if c.find("builder", "value-written")
             else None, c.find("builder", "joined")[0] if c.find("builder", "joined") else None,
             "builder: value written before the join returned")

    # h. I/O object: Wine 8 lacks IoCreateSystemThread; the emulated Windows 10 has it.
    if real:
        e = c.one("io_object", "not-supported", "IoCreateSystemThread missing in Wine")
        if e:
            c.expect(e.fields.get("routine") == "IoCreateSystemThread", f"io_object: {e.line}")
    else:
        c.ok_and_values(c.one("io_object", "joined", "thread created by IoCreateSystemThread"),
                        "io_object")

    # i. Display
    d = c.one("display", "spawn-error", "an error's Display text")
    c.ok_and_values(d, "display")
    if d:
        c.expect(d.fields.get("text", "").startswith(
            "system-thread: spawn failed: invalid argument: priority must be 1 to 31"),
            f"display: unexpected text: {d.line}")
        c.expect(d.int("status") == 0xC000000D, "display: status is not INVALID_PARAMETER")

    if real:
        check_tids(c)
    end = c.find("driver", "end")
    if end:
        c.expect(end[0].fields.get("ok") == "1", f"DriverEntry's verdict: {end[0].line}")


def check_queued(c: Checker) -> None:
    """Threads have not run when DriverEntry joins them: every join must say so."""
    for scen in ("spawn", "irql", "builder", "io_object"):
        e = c.one(scen, "join-error", "join before the thread ran")
        if e:
            c.expect(e.int("status") == STATUS_UNSUCCESSFUL,
                     f"{scen}: join of a thread that never ran: {e.line}")
    for e in c.find("spawn", "joined") + c.find("timeout", "joined"):
        c.fail(f"a join returned a value although the thread had not run: {e.line}")
    first = c.one("timeout", "first-join", "the timed join")
    if first:
        c.expect(first.int("status") == STATUS_UNSUCCESSFUL, f"timeout: {first.line}")
    pj = c.one("parallel", "joined", "scenario b")
    if pj:
        c.expect(pj.int("threads") == 0, f"parallel: {pj.line}")
    end = c.find("driver", "end")
    written = c.find("spawn", "value-written")
    if end and written:
        c.before(end[0], written[0], "queued: threads run after DriverEntry returned")
    d = c.one("display", "spawn-error", "Display text")
    c.ok_and_values(d, "display")
    c.ok_and_values(c.one("worker", "worker-joined", "the worker"), "worker")


def check_live_threads(c: Checker, expected: int = 0) -> Event | None:
    """Unload accounting (every library build): every thread was joined before DriverUnload
    returned, so DriverUnload reports `live-threads count=0` before `unload-complete`. The
    leak variants leak one thread: `expected` 1."""
    live = c.one("driver", "live-threads", "DriverUnload's live_threads() report")
    if live is not None:
        c.expect(live.int("count") == expected,
                 f"live threads at unload: {live.line} (want count={expected})")
        unload_done = c.find("driver", "unload-complete")
        if unload_done:
            c.before(live, unload_done[0], "live_threads() was reported inside DriverUnload")
    return live


def check_raw(c: Checker, real: bool) -> None:
    check_spawn_parallel_calls(c, real)
    end = c.find("driver", "end")
    if end:
        c.expect(end[0].fields.get("ok") == "1", f"DriverEntry's verdict: {end[0].line}")


SELFTEST_EXPECTED: dict[str, list[tuple[str, str]]] = {
    "wine": [(r"selftest joined name=return wait=0x0 value=42$", "join after return"),
             (r"selftest joined name=terminate wait=0x0 value=7$",
              "join after PsTerminateSystemThread")],
    "speakeasy-eager": [(r"selftest joined name=return wait=0x0 value=42$", "eager return"),
                        (r"selftest joined name=terminate wait=0x0 value=7$",
                         "eager join after PsTerminateSystemThread")],
    "speakeasy-queued": [(r"selftest joined name=return wait=0x0 value=0$",
                          "queued mode: thread has not run at join time")],
}


def check_output(records: list, context: str, variant: str, selftest: bool) -> list[str]:
    lines = [r[2] if isinstance(r, (list, tuple)) else r for r in records]
    c = Checker(f"{context}/{variant}", parse(records))
    check_frame(c, lines)
    if variant in ("raw", "ab"):      # the same scenarios, by hand or through the library
        check_raw(c, context == "wine")
        if variant == "ab":
            check_live_threads(c)
    elif context == "speakeasy-queued":
        check_queued(c)
    else:
        check_library(c, "wine" if context == "wine" else "eager")
    if selftest:
        for rx, what in SELFTEST_EXPECTED.get(context, []):
            if not any(re.search(rx, line) for line in lines):
                c.fail(f"missing /{rx}/: {what}")
    return c.fails


# -- per emulator -----------------------------------------------------------------------

def check_speakeasy(summary: dict, variant: str = "normal", selftest: bool = False) -> list[str]:
    """Output checks plus the API-trace balances computed by speakeasy_run.analyze:
    OBJ_KERNEL_HANDLE and a NULL process on every thread creation (PsCreateSystemThread and
    IoCreateSystemThread), handles created == ZwClose'd, ObReferenceObjectByHandle ==
    ObfDereferenceObject, every pool block freed."""
    ctx = f"speakeasy-{summary['mode']}"
    fails = check_output(summary["dbgprint"], ctx, variant, selftest)
    fails += [f"[{ctx}/{variant}] emulation error: {e}" for e in summary["errors"]]
    fails += [f"[{ctx}/{variant}] {p}" for p in summary["analysis"]["problems"]]
    an = summary["analysis"]
    if not an["threads_created"]:
        fails.append(f"[{ctx}/{variant}] no thread was created")
    if summary["mode"] == "eager" and an.get("calls_per_spawn_join") is None:
        fails.append(f"[{ctx}/{variant}] no `calls begin`/`calls end` bracket in the trace")
    if summary["mode"] == "eager" and variant == "normal":
        plain, scoped = an.get("calls_per_spawn_join"), an.get("calls_per_scoped_spawn_join")
        if scoped is None:
            fails.append(f"[{ctx}/{variant}] no `scoped-calls` bracket in the trace")
        elif sorted(scoped) != sorted(plain or []):
            fails.append(f"[{ctx}/{variant}] a scoped spawn+join made other kernel calls than "
                         f"a plain one: {scoped} vs {plain}")
        for label in ("stoppable-calls", "builder-calls"):
            calls = an["calls_per_bracket"].get(label)
            missing = Counter(plain or []) - Counter(calls or [])
            if calls is None or missing:
                fails.append(f"[{ctx}/{variant}] the `{label}` bracket lacks kernel calls of a "
                             f"plain spawn+join: {sorted(missing.elements())} ({calls})")
    if summary["mode"] == "eager":
        fails += [f"[{ctx}/{variant}] {m}" for m in check_instruction_counts(an, variant)]
    for t in an.get("parked_threads", []):
        fails.append(f"[{ctx}/{variant}] thread {t['thread_id']:#x} only slept "
                     f"({t['sleeps']} sleeps in a row) and was ended by the harness: it would "
                     "never have finished (a leak or a hang)")
    return fails


# -- the leak variants in speakeasy -------------------------------------------------------

# Analysis problems a leak variant must have (its thread's reference and pool block are
# still held after DriverUnload); any other problem fails the check.
LEAK_EXPECTED_PROBLEMS = ("object references unbalanced", "pool blocks never freed")


def check_speakeasy_leak(summary: dict, variant: str) -> list[str]:
    """A leaking variant in speakeasy (eager or queued). speakeasy's sleeps return at once, so
    the leaked thread's `loop { sleep(10 ms) }` would never end: the harness ends it after
    `park_sleeps` consecutive sleeps (speakeasy_run.PARK_SLEEPS) and records it as parked.
    Required: the leaked thread ran, and it is the one thread the harness ended, parked (it
    never returned); DriverUnload ran and reported `live-threads count=1` before
    `unload-complete`; the rest of the demo as in the normal build; and after DriverUnload
    exactly that thread's reference and pool block are still held (the library still owns
    it: that is why it counts as live), every handle closed."""
    mode = summary["mode"]
    ctx = f"speakeasy-{mode}"
    lines = summary["dbgprint"]
    c = Checker(f"{ctx}/{variant}", parse(lines))
    check_frame(c, lines)
    if mode == "queued":
        check_queued(c)
        live = check_live_threads(c, 1)
    else:
        check_library(c, "eager", live=1)
        live = (c.find("driver", "live-threads") or [None])[0]
    if not any(ln.startswith(f"{TAG} driver live-threads") for ln in lines):
        c.fail("no `driver live-threads` line: DriverUnload did not report live_threads()")
    elif live is not None and (live.int("count") or 0) < 1:
        c.fail(f"live_threads() did not report the leak in DriverUnload: {live.line}")
    c.fails += [f"[{ctx}/{variant}] emulation error: {e}" for e in summary["errors"]]

    running = c.one("leak", "thread-running", "the leaked thread ran")
    if running is not None:
        want_via = "static" if variant == "leak" else "forget"
        c.expect(running.fields.get("via") == want_via,
                 f"leak: the leaked thread is not the {want_via} one: {running.line}")
    an = summary["analysis"]
    parked = an.get("parked_threads", [])
    if len(parked) != 1:
        c.fail(f"leak: {len(parked)} threads ended by the harness as parked, want exactly the "
               "leaked one (a leaked thread that ends by itself is no leak)")
        return c.fails
    p = parked[0]
    c.expect(p["sleeps"] == summary.get("park_sleeps"),
             f"leak: parked after {p['sleeps']} sleeps, the harness limit is "
             f"{summary.get('park_sleeps')}")
    creations = [e for e in summary["events"]
                 if e["kind"] == "PsCreateSystemThread" and e.get("thread_id") == p["thread_id"]]
    if not c.expect(len(creations) == 1,
                    f"leak: the parked thread {p['thread_id']:#x} was created "
                    f"{len(creations)} times by the driver"):
        return c.fails
    made = creations[0]
    if variant == "leak_forget":
        for e in c.find("leak", "thread-running") + c.find("leak", "forgotten"):
            c.expect(e.int("id") == p["thread_id"],
                     f"leak: `{e.line}` is not the parked thread {p['thread_id']:#x}")
    # Order in the output: the thread printed, then was parked, before DriverUnload began.
    ub = c.find("driver", "unload-begin")
    if running is not None:
        c.expect(running.index < p["dbgprints_before"],
                 "leak: the thread was parked before it printed `leak thread-running`")
    if ub:
        c.expect(p["dbgprints_before"] <= ub[0].index,
                 "leak: the harness parked the thread only after DriverUnload began")
    # It never returned: in eager mode its only exit is the harness's.
    exits = [e["via"] for e in summary["events"]
             if e["kind"] == "EagerThreadExit" and e["handle"] == made["handle"]]
    if mode == "eager":
        c.expect(exits == ["ended by the harness: parked"],
                 f"leak: the leaked thread's exits: {exits} (want only the harness's)")
    # Still owned after DriverUnload: its thread-object reference and its packet.
    refs = [e["object"] for e in summary["events"]
            if e["kind"] == "ObReferenceObjectByHandle" and e["handle"] == made["handle"]
            and e["status"] == 0]
    c.expect(an["object_refs"]["unmatched"] == [hex(o) for o in refs] and len(refs) == 1,
             f"leak: references still held after DriverUnload: "
             f"{an['object_refs']['unmatched']}, want only the leaked thread's {refs}")
    c.expect(an["pool"]["outstanding"] == [hex(made["context"])],
             f"leak: pool blocks still held after DriverUnload: {an['pool']['outstanding']}, "
             f"want only the leaked thread's packet {made['context']:#x}")
    c.expect(not an["handles"]["unclosed"],
             f"leak: thread handles left open: {an['handles']['unclosed']}")
    for prob in an["problems"]:
        if not prob.startswith(LEAK_EXPECTED_PROBLEMS):
            c.fail(prob)
    return c.fails


def _drop_lines(summary: dict, needle: str) -> None:
    summary["dbgprint"] = [ln for ln in summary["dbgprint"] if needle not in ln]


def _move_live_after_unload(summary: dict) -> None:
    lines = summary["dbgprint"]
    live = [ln for ln in lines if "driver live-threads" in ln]
    summary["dbgprint"] = [ln for ln in lines if "driver live-threads" not in ln] + live


def _unpark(summary: dict) -> None:
    summary["events"] = [e for e in summary["events"] if e["kind"] != "ThreadParked"]
    summary["analysis"]["parked_threads"] = []


def _free_packet(summary: dict) -> None:
    summary["analysis"]["pool"]["outstanding"] = []


# Mutated copies of a passing leak summary, each a way the leak could go unreported, and the
# phrase of the failure that must reject it.
LEAK_CONTROLS = [
    ("DriverUnload prints no live-threads line",
     lambda s: _drop_lines(s, "driver live-threads"), "no `driver live-threads` line"),
    ("DriverUnload prints count=0",
     lambda s: s.update(dbgprint=[ln.replace("live-threads count=1", "live-threads count=0")
                                  for ln in s["dbgprint"]]),
     "did not report the leak"),
    ("the count is printed after unload-complete", _move_live_after_unload,
     "reported inside DriverUnload"),
    ("the leaked thread never ran", lambda s: _drop_lines(s, "leak thread-running"),
     "the leaked thread ran"),
    ("the leaked thread ended by itself (not parked)", _unpark, "ended by the harness"),
    ("its packet was freed", _free_packet, "pool blocks still held"),
]


def leak_negative_controls(summary: dict, variant: str) -> list[dict]:
    """Applies each LEAK_CONTROLS mutation to a copy of a passing leak summary; each must be
    rejected by check_speakeasy_leak for its own reason."""
    import copy  # noqa: PLC0415
    out = []
    for name, mutate, phrase in LEAK_CONTROLS:
        s = copy.deepcopy(summary)
        mutate(s)
        fails = check_speakeasy_leak(s, variant)
        out.append({"control": name, "rejected": any(phrase in f for f in fails),
                    "fails": fails})
    return out


# -- instruction counts (speakeasy, eager) ------------------------------------------------

# Goal of issue 13: the library's plain spawn + join executes at most this many instructions
# inside the image more than the hand-written baseline (caller and new thread together).
ICOUNT_MAX_OVER_RAW = 100
# The empty bracket: DbgPrint marker calls and one call of a function returning None.
ICOUNT_MAX_OVERHEAD = 20
# Brackets each variant must have counted.
ICOUNT_BRACKETS = {"normal": ("calls", "scoped-calls", "stoppable-calls", "builder-calls"),
                   "ab": ("calls",), "raw": ("calls",)}


def check_instruction_counts(an: dict, variant: str) -> list[str]:
    """One variant's counts are complete and plausible: every bracket counted, on the caller
    and on exactly one started thread, and the empty bracket small and thread-free."""
    fails: list[str] = []
    counts = an.get("instructions")
    if counts is None:
        return ["no instruction counts (the `empty-calls` bracket was not seen)"]
    over = counts["overhead"]
    if not 0 < over["caller"] <= ICOUNT_MAX_OVERHEAD or over["thread"] != 0:
        fails.append(f"empty bracket: {over} (want 1..{ICOUNT_MAX_OVERHEAD} caller "
                     "instructions and none on other threads)")
    for label in ICOUNT_BRACKETS.get(variant, ()):
        b = counts.get(label)
        if b is None:
            fails.append(f"no instruction count for the `{label}` bracket")
            continue
        if b["threads_started"] != 1:
            fails.append(f"`{label}`: {b['threads_started']} threads started, want 1")
        if b["caller"] <= 0 or b["thread"] <= 0:
            fails.append(f"`{label}`: instruction counts not positive: {b}")
    return fails


def check_icounts(summaries: dict[str, dict]) -> list[str]:
    """The instruction-count bound, on eager speakeasy summaries of the variants `normal` (the
    full library demo), `ab` (the library, with the raw baseline's scenarios only) and `raw`
    (the baseline). Plain spawn + join: library - raw <= ICOUNT_MAX_OVER_RAW instructions
    (the caller's and the new thread's instructions inside the image) in both library builds:
    `ab` is the same program shape as `raw`; `normal` is a driver that uses the whole API,
    where the library's shared code paths (e.g. one wait for join and join_timeout) are not
    specialized for the plain join."""
    fails: list[str] = []
    for v, s in summaries.items():
        fails += [f"[icount/{v}] {m}" for m in check_instruction_counts(s["analysis"], v)]
        fails += [f"[icount/{v}] emulation error: {e}" for e in s["errors"]]
    base = (summaries["raw"]["analysis"].get("instructions") or {}).get("calls")
    for v in ("ab", "normal"):
        lib = (summaries[v]["analysis"].get("instructions") or {}).get("calls")
        if not lib or not base:
            continue
        over = lib["total"] - base["total"]
        if over > ICOUNT_MAX_OVER_RAW:
            fails.append(f"[icount/{v}] plain spawn + join: the library executes "
                         f"{lib['total']} instructions in the image, the raw baseline "
                         f"{base['total']}: {over:+d}, goal <= +{ICOUNT_MAX_OVER_RAW} (caller "
                         f"{lib['caller']} vs {base['caller']}, start routine {lib['thread']} "
                         f"vs {base['thread']})")
    return fails


def check_wine(result: dict, variant: str = "normal", selftest: bool = False) -> list[str]:
    fails = check_output(result["records"], "wine", variant, selftest)
    if result["start_rc"] != 0:
        fails.append(f"[wine] sc start failed rc={result['start_rc']} (1053: winedevice died "
                     "in DriverEntry, e.g. a call to an export Wine lacks)")
    if result["stop_rc"] != 0:
        fails.append(f"[wine] sc stop failed rc={result['stop_rc']}")
    if result["crashes"]:
        fails.append(f"[wine] host crashed: {result['crashes'][:3]}")
    if result.get("guard_stop_rc", 0) != 0:
        fails.append(f"[wine] the guard driver sharing the host could not be stopped "
                     f"(rc={result['guard_stop_rc']}): the host died, likely a thread outlived "
                     "DriverUnload")
    return fails


def check_leak(result: dict, variant: str = "leak") -> list[str]:
    """A deliberately leaking variant must be caught: its thread ran, and after DriverUnload
    returned the shared host crashed (page fault in the unloaded image) or the guard could
    not be stopped."""
    fails: list[str] = []
    if not any("leak thread-running" in line for line in result["lines"]):
        fails.append(f"[wine-{variant}] the leaked thread never ran (test is vacuous)")
    if not any(line == "system-thread-demo: driver unload-complete" for line in result["lines"]):
        fails.append(f"[wine-{variant}] DriverUnload did not complete")
    # The library's own check reports the leak before DriverUnload returns.
    live = [line for line in result["lines"] if "driver live-threads" in line]
    counts = [int(m.group(1)) for line in live if (m := re.search(r"count=(\d+)", line))]
    unload = [i for i, line in enumerate(result["lines"])
              if line == "system-thread-demo: driver unload-complete"]
    live_at = [i for i, line in enumerate(result["lines"]) if "driver live-threads" in line]
    if not counts or counts[0] < 1:
        fails.append(f"[wine-{variant}] live_threads() did not report the leak in DriverUnload: "
                     f"{live!r}")
    elif unload and live_at and live_at[0] > unload[0]:
        fails.append(f"[wine-{variant}] live_threads() was reported after DriverUnload returned")
    if not result["detected"]:
        fails.append(f"[wine-{variant}] leaked thread NOT detected: no crash of the shared host")
    return fails
