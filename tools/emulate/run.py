"""Build the demo driver and run it under Wine and speakeasy.

    python3 tools/emulate/run.py [--wine] [--speakeasy] [--leak-check] [options]
    python3 tools/emulate/run.py --bench      (figures, not a test)
    python3 tools/emulate/run.py --soak N     (Wine only: N load/run/unload rounds, one host)

Every run first builds the drivers (x86_64 variants, the aarch64 build, and the `shims`
variant of both) and checks their PE images (pe_check.py, after installing Wine and fetching
Wine's arm64 ntoskrnl). With none of the three stage flags, all three run. `--leak-check` runs
the leaking variants in the emulators selected with it (`--wine`, `--speakeasy`; alone: both).
Exit status:
0 all checks passed, 1 a check failed, 2 the harness/environment failed (message says what
is missing). Caches live in target/emulate/ (venv, Wine prefix, Wine's arm64 libwine, .sys
copies, logs, JSON summaries).
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
import icount  # noqa: E402
import pe_check  # noqa: E402
import speakeasy_run  # noqa: E402
from common import ARM64_TARGET, CACHE, LEAK_VARIANTS, TARGET, HarnessError, build_driver  # noqa: E402,E501

GROUP = "stdemo"           # both drivers of a Wine stage share one winedevice.exe
TEST_SERVICE = "st_demo"
ROUNDS = 5                 # --bench: runs of each bench driver, alternating
GUARD_SERVICE = "st_guard"
IDLE_SECONDS = 2           # how long a normal demo stays loaded after DriverEntry


def run_test_driver(s, service: str, sys_file: Path, leak: bool) -> dict:
    """Loads one driver into a running session (group GROUP), lets DriverEntry finish and,
    for the normal variant, the worker tick twice, then unloads it. Returns its results."""
    res: dict = {"leak": leak, "lines": [], "records": [], "start_rc": None, "stop_rc": None}
    first = len(s.records)
    r = s.load(service, sys_file, group=GROUP)
    res["start_rc"] = r.rc
    if r.rc == 0:
        s.wait_for(lambda recs: any(x.text.startswith("system-thread-demo: driver end")
                                    or "PANIC" in x.text for x in recs[first:]), 20)
        if leak:
            s.wait_for(lambda recs: any("leak thread-running" in x.text
                                        for x in recs[first:]), 10)
        else:
            # The driver stays loaded with its worker idle for IDLE_SECONDS (a bench variant:
            # until its figures are out): checks.py then asserts that the idle worker made no
            # wake beyond one per work item.
            s.wait_for(lambda recs: any("bench done" in x.text for x in recs[first:]),
                       IDLE_SECONDS)
        st = s.stop(service)
        res["stop_rc"] = st.rc
        s.wait_for(lambda recs: any(x.text == "system-thread-demo: driver unload-complete"
                                    for x in recs[first:]), 5)
        # Give a leaked thread time to run into the unloaded image (it sleeps 10 ms).
        settle_until = time.monotonic() + (3.0 if leak else 0.3)
        while time.monotonic() < settle_until and not s.crashes:
            s.wait_for(None, 0.1)
    res["records"] = [[x.ts, x.tid, x.text] for x in s.records[first:]]
    res["lines"] = [x.text for x in s.records[first:]]
    return res


def wine_stage(test_sys: Path, guard_sys: Path, leak: bool, verbose: bool) -> dict:
    """Loads an innocent guard driver and the driver under test into the same host, runs
    DriverEntry/DriverUnload of the test driver, then stops the guard. A thread of the
    test driver that outlives DriverUnload page-faults in the unloaded image and takes
    the shared winedevice.exe down: Wine prints "Unhandled page fault" and the guard's
    `sc stop` fails."""
    import wine  # noqa: PLC0415

    t0 = time.monotonic()
    session = wine.WineSession(verbose=verbose)
    with session as s:
        session_start = round(time.monotonic() - t0, 2)
        g = s.load(GUARD_SERVICE, guard_sys, group=GROUP)
        if g.rc != 0:
            raise HarnessError(f"the guard driver did not start (rc={g.rc}):\n{g.stdout}")
        res = run_test_driver(s, TEST_SERVICE, test_sys, leak)
        gs = s.stop(GUARD_SERVICE, timeout=30)
        res["guard_stop_rc"] = gs.rc
    res["session_start_s"] = session_start
    res["crashes"] = list(session.crashes)
    res["detected"] = bool(session.crashes) or res["guard_stop_rc"] != 0
    res["wall_s"] = round(time.monotonic() - t0, 2)
    return res


def soak_stage(test_sys: Path, guard_sys: Path, rounds: int, verbose: bool) -> dict:
    """`--soak N`: the Wine stage N times in ONE session: the guard is loaded once and keeps
    the group's winedevice.exe alive; the normal demo is loaded, run and unloaded N times as
    the same service (run_test_driver, checks.check_wine per round). Across rounds: the host
    never crashes and stays the same process, every unload reports 0 live threads, the worker
    wakes every round, and the host's threads and handles do not grow. Measured after every
    unload: from Linux, /proc/<pid>/task and /proc/<pid>/fd entries and VmRSS of the host;
    from Wine (procinfo.exe), its thread count and open handles. Returns results and fails."""
    import wine  # noqa: PLC0415

    t0 = time.monotonic()
    out: dict = {"rounds": [], "fails": []}
    fails = out["fails"]
    with wine.WineSession(verbose=verbose) as s:
        before = wine.winedevice_pids(s.prefix)
        g = s.load(GUARD_SERVICE, guard_sys, group=GROUP)
        if g.rc != 0:
            raise HarnessError(f"the guard driver did not start (rc={g.rc}):\n{g.stdout}")
        new = wine.winedevice_pids(s.prefix) - before
        if len(new) != 1:
            raise HarnessError(f"loading the guard started {len(new)} winedevice.exe processes")
        host = new.pop()
        s.wait_for(lambda recs: any(x.text.endswith("guard loaded") for x in recs), 5)
        guard_tid = next((x.tid for x in s.records if x.text.endswith("guard loaded")), None)

        def figures() -> dict:
            f = {"linux": wine.linux_figures(host)}
            procs = s.processes()
            if procs is not None:
                f["wine"] = next((p for p in procs if guard_tid in p["tids"]), None)
            return f

        out["host_pid"] = host
        out["baseline"] = figures()
        wpid = (out["baseline"].get("wine") or {}).get("pid")
        print(f"--- wine soak: {rounds} rounds in one winedevice.exe (Linux pid {host}"
              f"{f', Wine pid {wpid:#x}' if wpid else ''}) ---")
        print(f"  after the guard loaded: {_soak_figures(out['baseline'])}")
        for n in range(1, rounds + 1):
            t = time.monotonic()
            crashes_before = len(s.crashes)
            r = run_test_driver(s, TEST_SERVICE, test_sys, leak=False)
            r["crashes"] = s.crashes[crashes_before:]
            f = checks.check_wine(r, "normal")
            events = checks.parse(r["records"])
            live = [e.int("count") for e in events if (e.scenario, e.event) == ("driver",
                                                                                "live-threads")]
            wakes = [e for e in events if (e.scenario, e.event) == ("worker", "wake")]
            joined = [e for e in events if (e.scenario, e.event) == ("worker", "worker-joined")]
            items = joined[0].int("items") if joined else None
            if live != [0]:
                f.append(f"live threads at unload: {live} (want [0])")
            if not wakes or not items:
                f.append(f"the worker did not work: {len(wakes)} wakes, joined items={items}")
            fig = figures()
            if fig["linux"] is None:
                f.append(f"the host (Linux pid {host}) is gone")
            elif wine.winedevice_pids(s.prefix) - before != {host}:
                f.append("the group's winedevice.exe was replaced by another process")
            if "wine" in fig and fig["wine"] is None:
                f.append("Wine no longer lists the guard's thread in any process")
            row = {"round": n, "wall_s": round(time.monotonic() - t, 2), "live": live,
                   "wakes": len(wakes), "items": items, "figures": fig, "fails": f,
                   "printing_threads": len({tid for _, tid, _ in r["records"]}),
                   "records": r["records"]}
            out["rounds"].append(row)
            print(f"  round {n}/{rounds}: {'ok' if not f else 'FAILED'} {row['wall_s']} s; "
                  f"live-threads={','.join(map(str, live)) or '-'} worker wakes={len(wakes)} "
                  f"items={items}; {_soak_figures(fig)}")
            for msg in f:
                print(f"    {msg}")
            fails += [f"[wine-soak round {n}] {msg}" for msg in f]
            if fig["linux"] is None or r["crashes"]:
                break       # the next round would only run in a new host
        gs = s.stop(GUARD_SERVICE, timeout=30)
        out["guard_stop_rc"] = gs.rc
    out["crashes"] = list(s.crashes)
    if gs.rc != 0:
        fails.append(f"[wine-soak] the guard could not be stopped after the last round "
                     f"(rc={gs.rc}): the shared host died")
    if s.crashes:
        fails.append(f"[wine-soak] host crashed: {s.crashes[:3]}")
    # No growth: after the last round, no figure above its value after round 1 (round 1
    # may start threads Wine keeps, e.g. for its first system thread).
    done = [r["figures"] for r in out["rounds"] if r["figures"]["linux"] is not None]
    growth = {}
    for src, key in (("linux", "tasks"), ("linux", "fds"), ("wine", "threads"),
                     ("wine", "handles")):
        vals = [f[src][key] for f in done if f.get(src)]
        if len(vals) >= 2:
            growth[f"{src} {key}"] = (vals[0], vals[-1], min(vals), max(vals))
            if vals[-1] > vals[0]:
                fails.append(f"[wine-soak] host {src} {key} grew: {vals[0]} after round 1, "
                             f"{vals[-1]} after round {len(vals)} (all: {vals})")
    rss = [f["linux"]["rss_kb"] for f in done]
    passed = sum(not r["fails"] for r in out["rounds"])
    print(f"  soak: {passed}/{rounds} rounds passed, {time.monotonic() - t0:.1f} s, guard stop "
          f"rc={out['guard_stop_rc']}, crashes={len(s.crashes)}")
    for k, (first, last, lo, hi) in growth.items():
        print(f"  host {k} after each unload: round 1 {first}, last {last}, range {lo}..{hi}")
    if rss:
        print(f"  host VmRSS after each unload (kB, not asserted): round 1 {rss[0]}, last "
              f"{rss[-1]}, range {min(rss)}..{max(rss)}")
    if "wine" not in out["baseline"]:
        print("  (Wine's thread and handle counts not measured: x86_64-w64-mingw32-gcc "
              "missing to build tools/emulate/procinfo.c)")
    out["growth"] = growth
    out["wall_s"] = round(time.monotonic() - t0, 2)
    return out


def _soak_figures(f: dict) -> str:
    lx, w = f.get("linux"), f.get("wine")
    text = (f"host: linux tasks={lx['tasks']} fds={lx['fds']} rss={lx['rss_kb']} kB"
            if lx else "host: gone")
    return text + (f", wine threads={w['threads']} handles={w['handles']}" if w else "")


def bench(verbose: bool) -> int:
    """Figures only, not a test: code size, Wine wall time of 1,000 spawn+join cycles,
    speakeasy kernel calls and instructions per spawn+join, library vs hand-written
    baseline (the instruction bound is checked by tools/emulate/icount.py)."""
    import wine  # noqa: PLC0415

    built = {v: build_driver(v) for v in ("bench", "bench_raw", "normal", "raw", "ab")}
    print("=== code size (release .sys) ===")
    for lib, raw, what in (("bench", "bench_raw", "scenarios a+b + bench loop"),
                           ("normal", "raw", "full demo vs raw a+b")):
        a, b = built[lib].sys.stat().st_size, built[raw].sys.stat().st_size
        print(f"  {what}: library {a} B, raw {b} B, difference {a - b:+d} B")
    figures: dict[str, dict] = {}
    with wine.WineSession(verbose=verbose) as s:
        # Alternate the two drivers, ROUNDS times each, in one session (one winedevice host);
        # odd rounds start with the raw one, so neither always runs first.
        for rnd in range(ROUNDS):
            order = (("bench", "st_bench_lib"), ("bench_raw", "st_bench_raw"))
            for v, svc in (order if rnd % 2 == 0 else order[::-1]):
                r = run_test_driver(s, f"{svc}{rnd}", built[v].sys, leak=False)
                line = next((t for t in r["lines"] if "bench done" in t), None)
                if r["start_rc"] != 0 or line is None:
                    print(f"  {v}: no bench line (sc start={r['start_rc']})")
                    for t in r["lines"]:
                        print(f"    {t}")
                    return 1
                f = checks.fields(line)
                figures.setdefault(v, {"ns": []})["ns"].append(int(f["ns"]))
                print(f"  wine round {rnd + 1} {v}: {line.split('bench done ', 1)[1]}")
    lib_ns, raw_ns = min(figures["bench"]["ns"]), min(figures["bench_raw"]["ns"])
    ratios = sorted(a / b for a, b in zip(figures["bench"]["ns"], figures["bench_raw"]["ns"]))
    print(f"=== Wine: 1,000 spawn+join cycles, {ROUNDS} alternating rounds (Wine's thread "
          "creation goes through wineserver, so run-to-run noise is large) ===")
    print(f"  best: library {lib_ns / 1e6:.1f} ms ({lib_ns // 1000} ns/cycle), raw "
          f"{raw_ns / 1e6:.1f} ms ({raw_ns // 1000} ns/cycle)")
    print(f"  ratio library/raw: median of rounds {ratios[len(ratios) // 2]:.3f} "
          f"(rounds {ratios[0]:.3f}..{ratios[-1]:.3f}; best/best {lib_ns / raw_ns:.3f}; "
          "goal <= 1.05)")
    summaries = {v: speakeasy_run.run(built[v].sys, "eager") for v in icount.VARIANTS}
    print("=== speakeasy (eager): kernel calls per spawn+join ===")
    for v, label, what in (("normal", "calls", "library"), ("raw", "calls", "raw"),
                           ("normal", "scoped-calls", "library, scoped"),
                           ("normal", "stoppable-calls", "library, stoppable"),
                           ("normal", "builder-calls", "library, Builder name + priority")):
        calls = summaries[v]["analysis"]["calls_per_bracket"].get(label) or []
        print(f"  {what}: {len(calls)}: {', '.join(calls)}")
    print("=== speakeasy (eager): instructions executed inside the driver image per "
          "spawn + join ===")
    for line in icount.report_lines(summaries):
        print(line)
    return 0


# speakeasy leak runs: both modes. eager: the leaked thread runs inside its own spawn, during
# DriverEntry; queued: after DriverEntry returned, before DriverUnload.
LEAK_SPEAKEASY_MODES = ("eager", "queued")


def speakeasy_leak_stage(built: dict, results: dict, controls_from: dict) -> list[str]:
    """Both leaking variants in speakeasy, in both modes (checks.check_speakeasy_leak), then
    the negative controls: mutated copies of the first passing leak summary, and the other
    speakeasy summaries of this run (`controls_from`: variant -> summary) checked as if they
    were leak runs or, for the leak summary, as a normal build. Returns failure messages."""
    fails: list[str] = []
    passing: tuple[str, dict] | None = None
    for v, how in LEAK_VARIANTS.items():
        for mode in LEAK_SPEAKEASY_MODES:
            t = time.monotonic()
            summary = speakeasy_run.run(built[v], mode)
            wall = round(time.monotonic() - t, 2)
            results["stages"][f"speakeasy-{mode}-{v}"] = {"wall_s": wall, "summary": summary}
            lines = summary["dbgprint"]
            parked = summary["analysis"].get("parked_threads", [])
            shown = [f"[{i}] {ln}" for i, ln in enumerate(lines)
                     if " leak " in ln or " driver " in ln]
            for p in parked:
                shown.append(
                    f"harness: thread {p['thread_id']:#x} ended after {p['sleeps']} "
                    f"consecutive sleeps ({p['requested_100ns'] / 1e7:.3f} s requested, none "
                    f"elapsed), parked forever, after output line "
                    f"{p['dbgprints_before'] - 1}; it never returned")
            an = summary["analysis"]
            shown.append(f"held after DriverUnload: thread-object references "
                         f"{an['object_refs']['unmatched']}, pool blocks "
                         f"{an['pool']['outstanding']}; handles {an['handles']['created']}/"
                         f"{an['handles']['closed']} closed")
            print_lines(f"speakeasy leak check ({mode}, {v}: {how}), {wall} s", shown)
            f = checks.check_speakeasy_leak(summary, v)
            verdict = "REPORTED by live_threads() in DriverUnload" if not f else "NOT reported"
            print(f"  -> leak {verdict}")
            fails += f
            if not f and passing is None:
                passing = (v, summary)
    if passing is None:
        return fails + ["[speakeasy-leak] no passing leak run: negative controls not run"]
    v, summary = passing
    controls = checks.leak_negative_controls(summary, v)
    # Real builds: the normal demo (count=0, no leaked thread) and the raw baseline (no
    # live-threads line) must fail the leak check; the leak build must fail the normal check.
    real = [("the normal build as a leak run", controls_from.get("normal"), "leak",
             "did not report the leak"),
            ("the raw baseline as a leak run", controls_from.get("raw"), "leak",
             "no `driver live-threads` line"),
            ("the leak build as a normal build", summary, "normal", "only slept")]
    for name, s, as_variant, phrase in real:
        if s is None:
            continue
        got = (checks.check_speakeasy_leak(s, as_variant) if as_variant != "normal"
               else checks.check_speakeasy(s, as_variant))
        controls.append({"control": name, "rejected": any(phrase in x for x in got),
                         "fails": got})
    results["stages"]["speakeasy-leak-controls"] = controls
    rejected = sum(c["rejected"] for c in controls)
    print(f"  negative controls ({summary['mode']}, {v}): {rejected}/{len(controls)} rejected "
          f"for their defect ({'; '.join(c['control'] for c in controls)})")
    for c in controls:
        if not c["rejected"]:
            fails.append(f"[speakeasy-leak] negative control accepted: {c['control']} "
                         f"({c['fails'][:3]})")
    return fails


def pe_stage(built: dict, variant: str, extra: dict, results: dict) -> list[str]:
    """Static PE checks of every built driver (x86_64 variants and the ARM64 build) against
    Wine's ntoskrnl of the same architecture, negative controls on the main ones, and the
    runtime shims executed under unicorn. Returns failure messages."""
    import wine  # noqa: PLC0415

    # Wine first: the import check reads Wine's ntoskrnl of each architecture, and a
    # missing one is an error of the check, not a reason to skip it.
    wine.ensure_wine()
    x64_ntoskrnl = str(pe_check.wine_ntoskrnl_path("x86_64") or "")
    arm64_ntoskrnl = str(wine.ensure_arm64_ntoskrnl())
    jobs = {f"pe-{v}": {"driver": str(p), "arch": "x86_64", "wine_ntoskrnl": x64_ntoskrnl,
                        "negative_controls": v == variant} for v, p in sorted(built.items())}
    jobs["pe-aarch64-normal"] = {"driver": str(extra["normal", ARM64_TARGET]),
                                 "arch": "aarch64", "wine_ntoskrnl": arm64_ntoskrnl,
                                 "negative_controls": True}
    jobs["shims-x86_64"] = {"shims": str(extra["shims", TARGET]), "arch": "x86_64"}
    jobs["shims-aarch64"] = {"shims": str(extra["shims", ARM64_TARGET]), "arch": "aarch64"}
    checked = dict(zip(jobs, pe_check.check_many(list(jobs.values()))))
    fails = []
    for label, res in checked.items():
        results["stages"][label] = res
        fails += [f"[{label}] {e}" for e in res["errors"]]
    for arch in ("x86_64", "aarch64"):
        rows = {label: res for label, res in checked.items()
                if jobs[label].get("driver") and jobs[label]["arch"] == arch}
        main = next(res for label, res in rows.items() if jobs[label]["negative_controls"])
        info = main["info"]
        accepted = info["accepted_without_wine"]
        print(f"PE check {arch} ({info['machine']}): "
              f"{', '.join(label.rsplit('-', 1)[-1] for label in rows)}: "
              f"{'ok' if all(res['ok'] for res in rows.values()) else 'FAILED'}")
        print(f"  imports: {', '.join(info['imports'].get('ntoskrnl.exe', []))}")
        print(f"  checked against {info['wine_layout']} {info['wine_ntoskrnl']} "
              f"({info['wine_exports']} exports, {info['wine_stubs']} stubs)"
              + (f"; not exported by Wine, accepted on Microsoft's documentation: "
                 f"{', '.join(accepted)}" if accepted else ""))
        controls = main.get("controls", [])
        print(f"  negative controls: {sum(c['rejected'] for c in controls)}/{len(controls)} "
              f"broken copies rejected ({', '.join(c['control'] for c in controls)})")
        shims = checked[f"shims-{arch}"]
        print(f"  runtime shims run under unicorn: {'ok' if shims['ok'] else 'FAILED'} "
              f"(__chkstk probes every page for {len(shims['figures'])} frame sizes, "
              f"{min(pe_check.CHKSTK_SIZES):#x}..{max(pe_check.CHKSTK_SIZES):#x}; "
              f"__CxxFrameHandler3 returns 1; a __chkstk that returns at once "
              f"is {'rejected' if shims.get('control') else 'NOT rejected'})")
    return fails


def print_lines(title: str, lines: list[str]) -> None:
    print(f"--- {title} ---")
    for line in lines:
        print(f"  {line}")


def soak(a: argparse.Namespace) -> int:
    """`--soak N`: builds (or, with --no-build, takes) the normal demo and the guard, and
    runs soak_stage; no PE check, speakeasy or leak stage."""
    if a.soak < 1:
        print("--soak N needs N >= 1", file=sys.stderr)
        return 2
    try:
        built = {}
        for v in ("normal", "guard"):
            built[v] = CACHE / "drivers" / f"st_demo_{v}.sys"
            if not a.no_build:
                built[v] = build_driver(v).sys
            elif not built[v].exists():
                raise HarnessError(f"{built[v]} missing; run without --no-build")
        r = soak_stage(built["normal"], built["guard"], a.soak, a.verbose)
    except HarnessError as e:
        print(f"HARNESS ERROR: {e}", file=sys.stderr)
        return 2
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        return 2
    if a.json:
        a.json.write_text(json.dumps({"stages": {"wine-soak": r}}, indent=1, default=str))
    print("=== summary ===")
    for f in r["fails"]:
        print(f"FAIL {f}")
    print("ALL CHECKS PASSED" if not r["fails"] else f"{len(r['fails'])} check(s) failed")
    return 1 if r["fails"] else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1].strip())
    ap.add_argument("--wine", action="store_true", help="run under Wine (shared host + guard)")
    ap.add_argument("--speakeasy", action="store_true",
                    help="run under speakeasy (the demo and the raw baseline)")
    ap.add_argument("--leak-check", action="store_true",
                    help="the leaking variants (a JoinHandle kept in a static; mem::forget of "
                         "one) in the emulators selected with it (alone: both): each must "
                         "report the leak with live_threads() in DriverUnload; in Wine it must "
                         "also crash the shared host; in speakeasy (eager and queued) the "
                         "harness ends the leaked thread once it only sleeps, and its reference "
                         "and pool block must still be held after DriverUnload")
    ap.add_argument("--speakeasy-mode", choices=("eager", "queued", "both"), default="eager")
    ap.add_argument("--selftest", action="store_true",
                    help="test the raw_join_selftest variant (harness self-check)")
    ap.add_argument("--bench", action="store_true",
                    help="print figures only (not a test): .sys sizes, Wine time of 1,000 "
                         "spawn+join cycles and speakeasy calls per spawn+join, library vs raw")
    ap.add_argument("--soak", type=int, metavar="N",
                    help="Wine stage only: load, run and unload the demo N times in one "
                         "winedevice.exe (the normal Wine checks every round; the host must "
                         "not crash, and its threads and handles must not grow)")
    ap.add_argument("--no-build", action="store_true", help="use the .sys files already built")
    ap.add_argument("--json", type=Path, help="write all results to this file")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    if a.bench:
        try:
            return bench(a.verbose)
        except HarnessError as e:
            print(f"HARNESS ERROR: {e}", file=sys.stderr)
            return 2
    if a.soak is not None:
        return soak(a)
    if not (a.wine or a.speakeasy or a.leak_check):
        a.wine = a.speakeasy = a.leak_check = True
    leak_wine = a.leak_check and (a.wine or not a.speakeasy)
    leak_speakeasy = a.leak_check and (a.speakeasy or not a.wine)

    results: dict = {"stages": {}}
    fails: list[str] = []
    t_all = time.monotonic()
    try:
        variant = "selftest" if a.selftest else "normal"
        variants = {variant}
        if a.wine or leak_wine:
            variants.add("guard")
        if a.speakeasy:
            variants.add("raw")
        if a.leak_check:
            variants |= set(LEAK_VARIANTS)
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

        # ARM64: the same driver cross-built; it is only checked (nothing here runs it).
        # `shims` (both architectures) exports the runtime shims for executing them.
        t = time.monotonic()
        extra = {(v, target): (CACHE / "drivers" / f"st_demo_{v}{suffix}.sys" if a.no_build
                               else build_driver(v, target=target).sys)
                 for v, target, suffix in (("normal", ARM64_TARGET, "_aarch64"),
                                           ("shims", TARGET, ""),
                                           ("shims", ARM64_TARGET, "_aarch64"))}
        results["build_extra_s"] = round(time.monotonic() - t, 2)
        fails += pe_stage(built, variant, extra, results)

        eager_summaries: dict = {}       # variant -> summary: leak-check controls
        if a.speakeasy:
            modes = ("eager", "queued") if a.speakeasy_mode == "both" else (a.speakeasy_mode,)
            runs = [(variant, m) for m in modes] + [("raw", "eager")]
            for v, mode in runs:
                t = time.monotonic()
                summary = speakeasy_run.run(built[v], mode)
                wall = round(time.monotonic() - t, 2)
                results["stages"][f"speakeasy-{mode}-{v}"] = {"wall_s": wall, "summary": summary}
                print_lines(f"speakeasy ({mode}, {v}) DbgPrint, {wall} s", summary["dbgprint"])
                an = summary["analysis"]
                print(f"  threads={an['threads_created']} handles {an['handles']['created']}"
                      f"/{an['handles']['closed']} closed, refs {an['object_refs']['referenced']}"
                      f"/{an['object_refs']['dereferenced']} released, pool "
                      f"{an['pool']['allocated']}/{an['pool']['freed']} freed")
                vias: dict = {}
                for th in an["thread_args"]:
                    key = (th.get("via", "PsCreateSystemThread"), th["desired_access"],
                           th["attributes"], th["process_handle"], th["status"])
                    vias[key] = vias.get(key, 0) + 1
                for (via, acc, attrs, proc, st), n in vias.items():
                    print(f"  {n} x {via} access={acc:#x} attributes="
                          f"{attrs if attrs is None else hex(attrs)} process={proc:#x} "
                          f"status={st:#x}")
                calls = an.get("calls_per_spawn_join")
                if calls is not None:
                    print(f"  kernel calls per spawn+join ({len(calls)}): {', '.join(calls)}")
                scoped = an.get("calls_per_scoped_spawn_join")
                if scoped is not None:
                    print(f"  kernel calls per scoped spawn+join ({len(scoped)}): "
                          f"{', '.join(scoped)}")
                fails += checks.check_speakeasy(summary, v, a.selftest and v == variant)
                if mode == "eager":
                    eager_summaries[v] = summary

        if leak_speakeasy:
            fails += speakeasy_leak_stage(built, results, eager_summaries)

        if a.wine:
            r = wine_stage(built[variant], built["guard"], leak=False, verbose=a.verbose)
            results["stages"]["wine"] = r
            print_lines(f"wine DbgPrint (guard + test driver in one winedevice), "
                        f"{r['wall_s']} s", [f"[{ts:.3f} tid {tid:04x}] {txt}"
                                             for ts, tid, txt in r["records"]])
            print(f"  sc start={r['start_rc']} sc stop={r['stop_rc']} guard stop="
                  f"{r['guard_stop_rc']} crashes={len(r['crashes'])}")
            fails += checks.check_wine(r, variant, a.selftest)

        if leak_wine:
            for v, how in LEAK_VARIANTS.items():
                r = wine_stage(built[v], built["guard"], leak=True, verbose=a.verbose)
                results["stages"][f"wine-{v}"] = r
                print_lines(f"wine leak check ({v}: {how}), {r['wall_s']} s",
                            [f"[tid {tid:04x}] {txt}" for _, tid, txt in r["records"]
                             if "worker tick" not in txt])
                for c in r["crashes"][:2]:
                    print(f"  host crash: {c}")
                print(f"  guard stop rc={r['guard_stop_rc']} -> leak "
                      f"{'DETECTED' if r['detected'] else 'NOT detected'}")
                fails += checks.check_leak(r, v)
    except HarnessError as e:
        print(f"HARNESS ERROR: {e}", file=sys.stderr)
        return 2
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        return 2
    finally:
        if a.json:
            a.json.write_text(json.dumps(results, indent=1, default=str))

    print(f"=== summary ({time.monotonic() - t_all:.1f} s) ===")
    for f in fails:
        print(f"FAIL {f}")
    print("ALL CHECKS PASSED" if not fails else f"{len(fails)} check(s) failed")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
