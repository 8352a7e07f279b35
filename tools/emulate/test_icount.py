"""Unit tests of the instruction-count analysis and its checks, on synthetic summaries (no
emulator needed):

    python3 -m unittest discover -s tools/emulate -p "test_*.py"
"""

from __future__ import annotations

import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import checks  # noqa: E402
import icount  # noqa: E402
import speakeasy_run  # noqa: E402


def bracket(label: str, caller: int, thread: int, started: int = 1) -> dict:
    return {"kind": "Bracket", "label": label, "caller": caller, "thread": thread,
            "threads_started": started}


def summary(*brackets: dict, errors: tuple[str, ...] = ()) -> dict:
    s = {"events": list(brackets), "errors": list(errors)}
    s["analysis"] = {"instructions": speakeasy_run.instruction_counts(s)}
    return s


def variants(lib_calls: int, raw_calls: int, normal_calls: int | None = None) -> dict:
    """Summaries of the three variants; `*_calls`: the unsubtracted caller count of the plain
    bracket (the start routine adds 20, the empty bracket is 9)."""
    empty = bracket("empty-calls", 9, 0, 0)
    normal = normal_calls if normal_calls is not None else lib_calls
    return {
        "normal": summary(empty, bracket("calls", normal, 20),
                          *(bracket(label, 300, 30) for label in checks.ICOUNT_BRACKETS["normal"]
                            if label != "calls")),
        "ab": summary(empty, bracket("calls", lib_calls, 20)),
        "raw": summary(empty, bracket("calls", raw_calls, 20)),
    }


class MarkerTest(unittest.TestCase):
    def test_bare_markers_only(self):
        self.assertEqual(speakeasy_run.marker("system-thread-demo: calls begin\n"),
                         ("calls", "begin"))
        self.assertEqual(speakeasy_run.marker("system-thread-demo: builder-calls end"),
                         ("builder-calls", "end"))
        self.assertIsNone(speakeasy_run.marker("system-thread-demo: calls joined value=0x1 ok=1"))
        self.assertIsNone(speakeasy_run.marker("system-thread-demo: spawn begin entry_id=0x0"))
        self.assertIsNone(speakeasy_run.marker("other: calls begin"))


class InstructionCountsTest(unittest.TestCase):
    def test_empty_bracket_is_subtracted(self):
        s = summary(bracket("empty-calls", 9, 0, 0), bracket("calls", 121, 21))
        counts = s["analysis"]["instructions"]
        self.assertEqual(counts["overhead"], {"caller": 9, "thread": 0})
        self.assertEqual(counts["calls"],
                         {"caller": 112, "thread": 21, "total": 133, "threads_started": 1})

    def test_no_empty_bracket_no_counts(self):
        self.assertIsNone(summary(bracket("calls", 121, 21))["analysis"]["instructions"])


class BoundTest(unittest.TestCase):
    def test_at_the_bound_passes(self):
        self.assertEqual(checks.check_icounts(variants(lib_calls=221, raw_calls=121)), [])

    def test_one_over_the_bound_fails(self):
        fails = checks.check_icounts(variants(lib_calls=222, raw_calls=121))
        self.assertEqual(len(fails), 2, fails)      # ab and normal
        self.assertIn("+101, goal <= +100", fails[0])

    def test_each_library_build_is_bounded(self):
        fails = checks.check_icounts(variants(lib_calls=160, raw_calls=121, normal_calls=222))
        self.assertEqual(len(fails), 1, fails)
        self.assertTrue(fails[0].startswith("[icount/normal]"), fails)

    def test_missing_bracket_fails(self):
        v = variants(lib_calls=160, raw_calls=121)
        v["normal"]["events"] = [e for e in v["normal"]["events"]
                                 if e["label"] != "stoppable-calls"]
        v["normal"]["analysis"]["instructions"] = speakeasy_run.instruction_counts(v["normal"])
        fails = checks.check_icounts(v)
        self.assertEqual(len(fails), 1, fails)
        self.assertIn("stoppable-calls", fails[0])

    def test_bracket_without_its_thread_fails(self):
        v = variants(lib_calls=160, raw_calls=121)
        v["ab"] = summary(bracket("empty-calls", 9, 0, 0), bracket("calls", 160, 0, 0))
        fails = checks.check_icounts(v)
        self.assertTrue(any("threads started" in f for f in fails), fails)
        self.assertTrue(any("not positive" in f for f in fails), fails)

    def test_empty_bracket_must_be_small_and_threadless(self):
        v = variants(lib_calls=160, raw_calls=121)
        v["raw"] = summary(bracket("empty-calls", 9, 5, 1), bracket("calls", 121, 20))
        fails = checks.check_icounts(v)
        self.assertTrue(any("empty bracket" in f for f in fails), fails)

    def test_emulation_errors_fail(self):
        v = variants(lib_calls=160, raw_calls=121)
        v["raw"]["errors"] = ["entry_point: unsupported_api"]
        self.assertTrue(any("emulation error" in f for f in checks.check_icounts(v)))

    def test_report_shows_the_difference(self):
        lines = "\n".join(icount.report_lines(variants(lib_calls=160, raw_calls=121)))
        self.assertIn("+39 over raw", lines)
        self.assertIn("raw baseline", lines)


if __name__ == "__main__":
    unittest.main()
