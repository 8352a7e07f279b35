"""Build the demo driver and run it under Wine and speakeasy.

    python3 tools/emulate/run.py [--wine] [--speakeasy] [--leak-check] [options]

With none of the three stage flags, all three run. Exit status: 0 all checks passed,
1 a check failed, 2 the harness/environment failed (message says what is missing).
Caches live in target/emulate/ (venv, Wine prefix, .sys copies, logs, JSON summaries).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import checks  # noqa: E402
import pe_check  # noqa: E402
import speakeasy_run  # noqa: E402
from common import CACHE, HarnessError, build_driver, log  # noqa: E402

GROUP = "stdemo"           # both drivers of a Wine stage share one winedevice.exe
TEST_SERVICE = "st_demo"
GUARD_SERVICE = "st_guard"


def wine_stage(test_sys: Path, guard_sys: Path, leak: bool, verbose: bool) -> dict:
    """Loads an innocent guard driver and the driver under test into the same host, runs
    DriverEntry/DriverUnload of the test driver, then stops the guard. A thread of the
    test driver that outlives DriverUnload page-faults in the unloaded image and takes
    the shared winedevice.exe down: Wine prints "Unhandled page fault" and the guard's
    `sc stop` fails."""
    import wine  # noqa: PLC0415

    res: dict = {"leak": leak, "lines": [], "records": [], "crashes": [], "start_rc": None,
                 "stop_rc": None, "guard_stop_rc": None, "detected": False}
    t0 = time.monotonic()
    session = wine.WineSession(verbose=verbose)
    with session as s:
        res["session_start_s"] = round(time.monotonic() - t0, 2)
        g = s.load(GUARD_SERVICE, guard_sys, group=GROUP)
        if g.rc != 0:
            raise HarnessError(f"the guard driver did not start (rc={g.rc}):\n{g.stdout}")
        first = len(s.records)
        r = s.load(TEST_SERVICE, test_sys, group=GROUP)
        res["start_rc"] = r.rc
        if r.rc == 0:
            s.wait_for(lambda recs: any(x.text.startswith("system-thread-demo: end")
                                        or "PANIC" in x.text for x in recs[first:]), 10)
            if leak:
                s.wait_for(lambda recs: any("leaked thread running" in x.text
                                            for x in recs[first:]), 10)
            st = s.stop(TEST_SERVICE)
            res["stop_rc"] = st.rc
            s.wait_for(lambda recs: any(x.text == "system-thread-demo: unload"
                                        for x in recs[first:]), 5)
            # Give a leaked thread time to run into the unloaded image (it sleeps 10 ms).
            settle_until = time.monotonic() + (3.0 if leak else 0.5)
            while time.monotonic() < settle_until and not s.crashes:
                s.wait_for(None, 0.1)
        res["lines"] = [x.text for x in s.records[first:]]
        res["records"] = [[x.ts, x.tid, x.text] for x in s.records[first:]]
        gs = s.stop(GUARD_SERVICE, timeout=30)
        res["guard_stop_rc"] = gs.rc
    res["crashes"] = list(session.crashes)
    res["detected"] = bool(session.crashes) or res["guard_stop_rc"] != 0
    res["wall_s"] = round(time.monotonic() - t0, 2)
    return res


def print_lines(title: str, lines: list[str]) -> None:
    print(f"--- {title} ---")
    for line in lines:
        print(f"  {line}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1].strip())
    ap.add_argument("--wine", action="store_true", help="run under Wine (shared host + guard)")
    ap.add_argument("--speakeasy", action="store_true", help="run under speakeasy")
    ap.add_argument("--leak-check", action="store_true",
                    help="Wine: the leak_thread variant must crash the shared host")
    ap.add_argument("--speakeasy-mode", choices=("eager", "queued", "both"), default="eager")
    ap.add_argument("--selftest", action="store_true",
                    help="test the raw_join_selftest variant (harness self-check)")
    ap.add_argument("--no-build", action="store_true", help="use the .sys files already built")
    ap.add_argument("--json", type=Path, help="write all results to this file")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    if not (a.wine or a.speakeasy or a.leak_check):
        a.wine = a.speakeasy = a.leak_check = True

    results: dict = {"stages": {}}
    fails: list[str] = []
    try:
        variant = "selftest" if a.selftest else "normal"
        variants = {variant, "normal"} | ({"leak"} if a.leak_check else set())
        built = {}
        t = time.monotonic()
        for v in sorted(variants):
            if a.no_build:
                p = CACHE / "drivers" / f"st_demo_{v}.sys"
                if not p.exists():
                    raise HarnessError(f"{p} missing; run without --no-build")
                built[v] = p
            else:
                built[v] = build_driver(v).sys
        results["build_s"] = round(time.monotonic() - t, 2)

        for v, p in sorted(built.items()):
            pc = pe_check.check_driver(p)
            results["stages"][f"pe-{v}"] = pc
            for w in pc["warnings"]:
                log(f"PE {v}: warning: {w}")
            fails += [f"[pe-{v}] {e}" for e in pc["errors"]]
        print(f"PE check: {', '.join(sorted(built))}: "
              f"{'ok' if not any(f.startswith('[pe-') for f in fails) else 'FAILED'} "
              f"(imports: {', '.join(results['stages'][f'pe-{variant}']['info']['imports'].get('ntoskrnl.exe', []))})")

        if a.speakeasy:
            modes = ("eager", "queued") if a.speakeasy_mode == "both" else (a.speakeasy_mode,)
            for mode in modes:
                t = time.monotonic()
                summary = speakeasy_run.run(built[variant], mode)
                wall = round(time.monotonic() - t, 2)
                results["stages"][f"speakeasy-{mode}"] = {"wall_s": wall, "summary": summary}
                print_lines(f"speakeasy ({mode}) DbgPrint, {wall} s", summary["dbgprint"])
                an = summary["analysis"]
                print(f"  threads={an['threads_created']} handles {an['handles']['created']}"
                      f"/{an['handles']['closed']} closed, refs {an['object_refs']['referenced']}"
                      f"/{an['object_refs']['dereferenced']} released, pool "
                      f"{an['pool']['allocated']}/{an['pool']['freed']} freed")
                for th in an["thread_args"]:
                    print(f"  PsCreateSystemThread access={th['desired_access']:#x} "
                          f"attributes={th['attributes'] if th['attributes'] is None else hex(th['attributes'])} "
                          f"process={th['process_handle']:#x} status={th['status']:#x}")
                fails += checks.check_speakeasy(summary, a.selftest)

        if a.wine:
            r = wine_stage(built[variant], built["normal"], leak=False, verbose=a.verbose)
            results["stages"]["wine"] = r
            print_lines(f"wine DbgPrint (guard + test driver in one winedevice), "
                        f"{r['wall_s']} s", [f"[tid {tid:04x}] {txt}" for _, tid, txt in r["records"]])
            print(f"  sc start={r['start_rc']} sc stop={r['stop_rc']} guard stop="
                  f"{r['guard_stop_rc']} crashes={len(r['crashes'])}")
            fails += checks.check_wine(r, a.selftest)

        if a.leak_check:
            r = wine_stage(built["leak"], built["normal"], leak=True, verbose=a.verbose)
            results["stages"]["wine-leak"] = r
            print_lines(f"wine leak check, {r['wall_s']} s",
                        [f"[tid {tid:04x}] {txt}" for _, tid, txt in r["records"]])
            for c in r["crashes"]:
                print(f"  host crash: {c}")
            print(f"  guard stop rc={r['guard_stop_rc']} -> leak "
                  f"{'DETECTED' if r['detected'] else 'NOT detected'}")
            fails += checks.check_leak(r)
    except HarnessError as e:
        print(f"HARNESS ERROR: {e}", file=sys.stderr)
        return 2
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        return 2
    finally:
        if a.json:
            a.json.write_text(json.dumps(results, indent=1, default=str))

    print("=== summary ===")
    for f in fails:
        print(f"FAIL {f}")
    print("ALL CHECKS PASSED" if not fails else f"{len(fails)} check(s) failed")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
