# SPDX-License-Identifier: MIT
"""End to end: growth's trend test on real programs streamed to a real
meliae-monitord (tests/cli/trend_programs.py, 12 snapshots each):

- a leak that grows for 10 snapshots and stops for the last 2 is a
  suspect (the old rule, "bigger in every snapshot", missed it);
- an evicting LRU cache, full from the first snapshot, and a batch that
  fills and is flushed (sawtooth) are not;
- a steady-state service marks nothing.
"""

import json
import os
import subprocess
import sys
import unittest

from cli_support import (HERE, Daemon, TmpTestCase, answer_lines, cli_env,
                         needs_daemon, run_cli)

MODES = ("burst", "cache", "steady")
STEPS = 12


@needs_daemon
class TestTrendOnRealPrograms(TmpTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.daemon = Daemon(cls.tmp)
        try:
            procs = [subprocess.Popen(
                [sys.executable, os.path.join(HERE, "trend_programs.py"), m,
                 cls.daemon.sock], stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env=cli_env()) for m in MODES]
            for m, p in zip(MODES, procs):
                out, err = p.communicate(timeout=400)
                if p.returncode != 0 or out.strip() != "done":
                    raise AssertionError("%s: exit %d\n%s%s\n%s" % (
                        m, p.returncode, out, err, cls.daemon.log()))
        except BaseException:
            cls.daemon.stop()
            super().tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.daemon.stop()
        finally:
            super().tearDownClass()

    def growth(self, mode, *args):
        r = run_cli(["--store", self.daemon.store, "--json", "growth",
                     "--process", mode, "--top", "0"] + list(args))
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        [proc] = json.loads(r.stdout)["processes"]
        self.assertEqual(proc["snapshots"], STEPS)
        return proc

    def suspects(self, proc):
        return [t["type"] for t in proc["types"] if t["suspect"]]

    def test_burst_leak_is_a_suspect(self):
        proc = self.growth("burst")
        [top] = [t for t in proc["types"] if t["type"] == "Leaked"]
        self.assertEqual((top["suspect"], top["verdict"]), (True, "suspect"))
        # what else rises is what the Leaked objects hold (their str and
        # int) and the list that holds them: a trend test sees growth, the
        # diff and the report say who holds it
        self.assertLessEqual(set(self.suspects(proc)),
                             {"Leaked", "str", "int", "list"})
        self.assertEqual(proc["types"][0]["verdict"], "suspect")
        tr = top["trend"]["count"]
        self.assertLess(tr["p"], 0.01)
        self.assertEqual(tr["slope"], 2000)
        self.assertGreater(tr["z"], 4)
        # the shape: 10 bursts of 2,000, then flat (not "bigger in every one")
        byc = [t for t in self.growth("burst", "--by", "count")["types"]
               if t["type"] == "Leaked"][0]
        self.assertEqual(byc["series"],
                         [2000 * min(k + 1, 10) for k in range(STEPS)])
        self.assertEqual(top["count_after"], 20000)

    def test_evicting_lru_cache_and_flushed_batch_are_not_suspects(self):
        proc = self.growth("cache")
        types = {t["type"]: t for t in proc["types"]}
        lru, batch = types["LruEntry"], types["BatchItem"]
        self.assertFalse(lru["suspect"], lru)
        self.assertFalse(batch["suspect"], batch)
        self.assertEqual(lru["count_after"], 500)
        self.assertEqual(batch["trend"]["count"]["s"] < 20, True, batch)
        self.assertEqual(self.suspects(proc), [], proc["types"][:3])

    def test_steady_state_service_marks_nothing(self):
        proc = self.growth("steady")
        self.assertEqual(self.suspects(proc), [], proc["types"][:3])

    def test_table_says_what_it_ranks_by_and_names_the_suspect(self):
        r = run_cli(["--store", self.daemon.store, "growth", "--process",
                     "burst", "--top", "3"])
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        lines = answer_lines(r.stdout)
        self.assertTrue(lines[1].startswith("ranked by score"), lines[1])
        row = [l for l in lines if l.lstrip().startswith("Leaked ")]
        self.assertEqual(len(row), 1, r.stdout)
        self.assertIn("leak suspect", row[0])
        r = run_cli(["--store", self.daemon.store, "growth", "--process",
                     "burst", "--sort", "count"])
        self.assertIn("ranked by net growth of the count", r.stdout)

    def test_sort_keys(self):
        by_bytes = self.growth("cache", "--sort", "bytes")["types"]
        deltas = [t["bytes_after"] - t["bytes_before"] for t in by_bytes]
        self.assertEqual(deltas, sorted(deltas, reverse=True))
        by_count = self.growth("cache", "--sort", "count")["types"]
        deltas = [t["count_after"] - t["count_before"] for t in by_count]
        self.assertEqual(deltas, sorted(deltas, reverse=True))
        by_slope = self.growth("cache", "--sort", "slope")["types"]
        slopes = [t["trend"]["bytes"]["slope"] for t in by_slope]
        self.assertEqual(slopes, sorted(slopes, reverse=True))
        r = run_cli(["--store", self.daemon.store, "growth", "--sort", "size"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("--sort must be score, bytes, count or slope", r.stderr)


if __name__ == "__main__":
    unittest.main()
