"""Scenario expectations for the demo driver: the one place to extend when scenarios land.

Every check returns a list of failure messages (empty = pass). Inputs:
  * lines: the driver's DbgPrint texts in order (already without "\\n"),
  * a speakeasy summary (speakeasy_run.summarise), or a Wine stage result (run.py).
"""

from __future__ import annotations

import re

TAG = "system-thread-demo:"

# (regex, description) that must appear in this order in the driver's output, in every
# emulator. Add scenario lines here.
EXPECTED_IN_ORDER: list[tuple[str, str]] = [
    (r"^system-thread-demo: begin$", "DriverEntry ran"),
    (r"^system-thread-demo: end status=0$", "DriverEntry finished with STATUS_SUCCESS"),
    (r"^system-thread-demo: unload$", "DriverUnload ran"),
]

# Lines that must never appear.
FORBIDDEN: list[tuple[str, str]] = [
    (r"PANIC", "the driver panicked"),
    (r"FAIL", "a scenario reported failure"),
]

# Extra expectations per emulator/mode, e.g. join results that only eager speakeasy and
# Wine can produce (speakeasy's queued mode runs threads after DriverEntry).
EXPECTED_BY_CONTEXT: dict[str, list[tuple[str, str]]] = {
    "wine": [],
    "speakeasy-eager": [],
    "speakeasy-queued": [],
}

# The raw-join self-test variant (--selftest) adds these.
SELFTEST_EXPECTED: dict[str, list[tuple[str, str]]] = {
    "wine": [(r"selftest return joined wait=0 value=42$", "join after return"),
             (r"selftest terminate joined wait=0 value=7$", "join after PsTerminateSystemThread")],
    "speakeasy-eager": [(r"selftest return joined wait=0 value=42$", "eager join after return"),
                        (r"selftest terminate joined wait=0 value=7$",
                         "eager join after PsTerminateSystemThread")],
    "speakeasy-queued": [(r"selftest return joined wait=0 value=0$",
                          "queued mode: thread has not run at join time")],
}


def driver_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith(TAG)]


def check_lines(lines: list[str], context: str, selftest: bool = False) -> list[str]:
    fails: list[str] = []
    lines = driver_lines(lines)
    pos = 0
    for rx, what in EXPECTED_IN_ORDER:
        for i in range(pos, len(lines)):
            if re.search(rx, lines[i]):
                pos = i + 1
                break
        else:
            fails.append(f"[{context}] missing (in order) /{rx}/: {what}")
    extra = list(EXPECTED_BY_CONTEXT.get(context, []))
    if selftest:
        extra += SELFTEST_EXPECTED.get(context, [])
    for rx, what in extra:
        if not any(re.search(rx, line) for line in lines):
            fails.append(f"[{context}] missing /{rx}/: {what}")
    for rx, what in FORBIDDEN:
        for line in lines:
            if re.search(rx, line):
                fails.append(f"[{context}] {what}: {line!r}")
    return fails


def check_speakeasy(summary: dict, selftest: bool = False) -> list[str]:
    ctx = f"speakeasy-{summary['mode']}"
    fails = check_lines(summary["dbgprint"], ctx, selftest)
    fails += [f"[{ctx}] emulation error: {e}" for e in summary["errors"]]
    fails += [f"[{ctx}] {p}" for p in summary["analysis"]["problems"]]
    return fails


def check_wine(result: dict, selftest: bool = False) -> list[str]:
    fails = check_lines(result["lines"], "wine", selftest)
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


def check_leak(result: dict) -> list[str]:
    """The deliberately leaking variant must be caught."""
    fails: list[str] = []
    if not any("leaked thread running" in line for line in result["lines"]):
        fails.append("[wine-leak] the leaked thread never ran (test is vacuous)")
    if not result["detected"]:
        fails.append("[wine-leak] leaked thread NOT detected: no crash of the shared host")
    return fails
