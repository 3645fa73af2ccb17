"""The process beside its objects: _scanner.process_stats() and the
"process" figures every streamed snapshot's header carries.

Oracles: /proc/self/status for RSS, and CPython's own
sys._debugmallocstats() report for pymalloc's figures (process_stats
reads the same report, in C, without printing it).
"""

import gc
import json
import os
import sys
import tempfile
import tracemalloc
import unittest

import support
from support import scanner
from meliae import _scanner, stream


def status_kb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def debugmallocstats():
    """sys._debugmallocstats()'s report, as text (it prints to fd 2)."""
    with tempfile.TemporaryFile() as tmp:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        return tmp.read().decode("ascii", "replace")


def report_figure(text, prefix):
    for line in text.splitlines():
        if line.startswith(prefix) or (prefix in line and not prefix.startswith("#")):
            return int(line.rsplit("=", 1)[1].replace(",", "").strip())
    return None


PYMALLOC = "# bytes in allocated blocks" in debugmallocstats()


class ProcessStatsTest(unittest.TestCase):

    def test_rss_and_rss_anon_are_the_kernels(self):
        st = _scanner.process_stats()
        rss = status_kb("VmRSS") * 1024
        self.assertLess(abs(st["rss"] - rss), max(rss // 10, 4 << 20))
        self.assertLessEqual(st["rss_anon"], st["rss"])
        self.assertGreater(st["rss_anon"], 0)

    def test_rss_anon_follows_a_native_allocation(self):
        before = _scanner.process_stats()["rss_anon"]
        buf = bytearray(64 << 20)            # touched: zero-filled pages
        for i in range(0, len(buf), 4096):
            buf[i] = 1
        after = _scanner.process_stats()["rss_anon"]
        self.assertGreater(after - before, 60 << 20)
        del buf

    @unittest.skipUnless(PYMALLOC, "pymalloc is not in use (PYTHONMALLOC)")
    def test_pymalloc_figures_are_cpythons_own_report(self):
        gc.collect()
        st = _scanner.process_stats()["pymalloc"]
        text = debugmallocstats()
        self.assertEqual(st["arenas"],
                         report_figure(text, "# arenas allocated current"))
        self.assertEqual(st["arena_bytes"], report_figure(text, " arenas * "))
        # a few blocks come and go between the two reports
        allocated = report_figure(text, "# bytes in allocated blocks")
        self.assertLess(abs(st["allocated_bytes"] - allocated), 64 << 10)
        self.assertGreater(st["pools"], 0)
        self.assertLessEqual(st["allocated_bytes"] + st["free_block_bytes"]
                             + st["unused_pool_bytes"], st["arena_bytes"])

    @unittest.skipUnless(PYMALLOC, "pymalloc is not in use (PYTHONMALLOC)")
    def test_freeing_every_other_object_shows_as_free_blocks_in_kept_arenas(self):
        gc.collect()
        before = _scanner.process_stats()["pymalloc"]
        objs = [("frag", i, float(i)) for i in range(300000)]
        full = _scanner.process_stats()["pymalloc"]
        del objs[::2]
        gc.collect()
        after = _scanner.process_stats()["pymalloc"]
        grown = full["allocated_bytes"] - before["allocated_bytes"]
        self.assertGreater(grown, 10 << 20)
        # half the blocks freed, but their arenas stay: fragmentation
        self.assertLess(after["allocated_bytes"] - before["allocated_bytes"],
                        0.7 * grown)
        self.assertGreater(after["arena_bytes"], 0.9 * full["arena_bytes"])
        self.assertGreater(after["free_block_bytes"] - before["free_block_bytes"],
                           0.3 * grown)
        del objs

    @unittest.skipIf(PYMALLOC, "pymalloc is in use")
    def test_without_pymalloc_there_are_no_allocator_figures(self):
        self.assertIsNone(_scanner.process_stats()["pymalloc"])


class HeaderFiguresTest(unittest.TestCase):

    def test_a_snapshot_header_carries_the_figures_and_traced_total(self):
        figs = stream.process_figures()
        self.assertIsNone(figs["traced"])
        self.assertGreater(figs["rss"], 0)
        tracemalloc.start()
        try:
            keep = [str(i) * 10 for i in range(10000)]
            figs = stream.process_figures()
            self.assertGreater(figs["traced"], 500000)
            json.dumps(figs)            # what the header line carries
        finally:
            tracemalloc.stop()
        del keep


if __name__ == "__main__":
    unittest.main()
