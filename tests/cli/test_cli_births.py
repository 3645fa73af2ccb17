# SPDX-License-Identifier: MIT
"""End to end: birth sites of a traced leak (issue 18, point 3).

tests/cli/traced_leak.py streams to a real meliae-monitord with
stream_to(..., traces=8), takes a snapshot before it leaks, then keeps 50
Blob objects (each with a bytearray of 200 bytes) every 20 ms, with a
snapshot every 10 rounds, and a last one once told to stop.  Right after
that last snapshot it writes what tracemalloc itself says of the two
allocating lines (Snapshot.statistics("lineno")): the oracle.

diff (first against last), growth --json and report must name those lines
(file:line in function, checked against the program's source), with the
counts and bytes tracemalloc gives (all the Blobs of the last snapshot are
new against the first, taken before any of them).
"""

import html
import json
import os
import subprocess
import sys
import time
import unittest

from cli_support import (HERE, Daemon, TmpTestCase, cli_env, needs_daemon,
                         run_cli)

PROGRAM = os.path.join(HERE, "traced_leak.py")
SNAPSHOTS = 6


def marked_line(marker):
    with open(PROGRAM) as f:
        for no, text in enumerate(f, 1):
            if "# BIRTH:" + marker in text:
                return no
    raise AssertionError("no marker " + marker)


@needs_daemon
class TestTracedLeak(TmpTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.daemon = Daemon(cls.tmp)
        cls.store = cls.daemon.store
        cls.stats_path = os.path.join(cls.tmp, "stats.json")
        app = subprocess.Popen(
            [sys.executable, PROGRAM, cls.daemon.sock, cls.stats_path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env=cli_env())
        try:
            assert app.stdout.readline().strip() == "streaming"
            end = time.monotonic() + 120
            while len(cls.snapshots()) < SNAPSHOTS - 1:
                if time.monotonic() > end or app.poll() is not None:
                    raise AssertionError("%d snapshots after 120 s:\n%s"
                                         % (len(cls.snapshots()),
                                            cls.daemon.log()))
                time.sleep(0.1)
        finally:
            app.stdin.close()
            app.wait(timeout=120)
            app.stdout.close()
        with open(cls.stats_path) as f:
            cls.stats = json.load(f)
        cls.snaps = cls.snapshots()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.daemon.stop()
        finally:
            super().tearDownClass()

    @classmethod
    def snapshots(cls):
        r = run_cli(["--store", cls.store, "--json", "snapshots", "--process",
                     "traced"])
        return json.loads(r.stdout)["snapshots"] if r.returncode == 0 else []

    def cli(self, *args, json_=True):
        r = run_cli(["--store", self.store] + (["--json"] if json_ else [])
                    + list(args))
        self.assertEqual((r.returncode, r.stderr), (0, ""), args)
        return json.loads(r.stdout) if json_ else r.stdout

    def check_site(self, entry, marker, function):
        """entry's top site is the marked line, with tracemalloc's figures:
        Blob objects one block each (count and bytes equal); a bytearray
        is two blocks (object and buffer), its size both (bytes equal)."""
        count, size, lineno = self.stats[marker]
        self.assertEqual(lineno, marked_line(marker))
        site = entry["sites"][0]
        self.assertEqual((site["file"], site["line"], site["function"]),
                         (PROGRAM, lineno, function))
        self.assertEqual(entry["traced_count"], entry["count"])
        self.assertEqual(site["count"], entry["count"])
        # tolerance: tracemalloc counts blocks, the scanner objects; the
        # snapshots and tracemalloc's saw the same heap, to a few objects
        self.assertAlmostEqual(site["bytes"], size, delta=size * 0.02)
        return site

    def test_diff_names_the_leaking_lines_with_tracemallocs_figures(self):
        doc = self.cli("diff", str(self.snaps[0]["id"]),
                       str(self.snaps[-1]["id"]), "--top", "0")
        births = {t["type"]: t for t in doc["new_objects"]["births"]}
        blob = self.check_site(births["Blob"], "blob", "grow")
        self.assertAlmostEqual(blob["count"], self.stats["blob"][0],
                               delta=self.stats["blob"][0] * 0.02)
        buf = self.check_site(births["bytearray"], "buf", "Blob.__init__")
        self.assertEqual(buf["count"], blob["count"])
        # the traceback goes on into the caller that leaks
        self.assertEqual([(f["line"], f["function"])
                          for f in buf["traceback"][:2]],
                         [(marked_line("buf"), "Blob.__init__"),
                          (marked_line("blob"), "grow")])
        text = self.cli("diff", str(self.snaps[0]["id"]),
                        str(self.snaps[-1]["id"]), json_=False)
        self.assertIn("born at %s:%d in Blob.__init__: %d ("
                      % (PROGRAM, marked_line("buf"), buf["count"]), text)

    def test_growth_json_gives_the_suspects_birth_sites(self):
        doc = self.cli("growth", "--process", "traced")
        [proc] = doc["processes"]
        suspects = {t["type"]: t for t in proc["types"] if t["suspect"]}
        self.assertIn("bytearray", suspects)
        self.check_site(suspects["bytearray"]["births"], "buf",
                        "Blob.__init__")
        self.assertEqual(proc["births_a"], self.snaps[0]["id"])
        for t in proc["types"]:
            if not t["suspect"]:
                self.assertNotIn("births", t)

    def test_report_says_where_the_suspect_was_born(self):
        doc = self.cli("report", "--process", "traced")
        [proc] = doc["processes"]
        sus = {s["type"]: s for s in proc["suspects"]}
        births = sus["bytearray"]["births"]
        site = births["sites"][0]
        self.assertEqual((site["file"], site["line"], site["function"]),
                         (PROGRAM, marked_line("buf"), "Blob.__init__"))
        text = self.cli("report", "--process", "traced", json_=False)
        self.assertRegex(text, r"born at %s:%d in Blob\.__init__: \d+ \("
                         % (PROGRAM.replace(".", r"\."), marked_line("buf")))

    def test_the_verdict_says_where_the_leak_was_born(self):
        """The report's one line ends with the leaking type's birth site:
        Blob (its bytearrays grow with it, one hop further down), born in
        grow()."""
        doc = self.cli("report", "--process", "traced")
        [proc] = doc["processes"]
        v = proc["verdict"]
        self.assertEqual((v["status"], v["type"]), ("leak", "Blob"))
        born = v["born"]
        self.assertEqual((born["file"], born["line"], born["function"]),
                         (PROGRAM, marked_line("blob"), "grow"))
        self.assertEqual(born["site"], "%s:%d in grow"
                         % (PROGRAM, marked_line("blob")))
        self.assertGreater(born["count"], 0)
        text = self.cli("report", "--process", "traced", json_=False)
        [line] = [l for l in text.splitlines()
                  if l.startswith("meliae: the leak is ")]
        self.assertTrue(line.startswith("meliae: the leak is Blob: +"), line)
        self.assertIn(", held by __main__.LEAK (a list of ", line)
        self.assertTrue(line.endswith(", born at %s:%d in grow"
                                      % (PROGRAM, marked_line("blob"))),
                        line)

    def test_the_page_shows_the_birth_sites_and_the_path(self):
        path = os.path.join(self.tmp, "report.html")
        self.cli("report", "--process", "traced", "--html", path,
                 json_=False)
        with open(path, encoding="utf-8") as f:
            page = f.read()
        self.assertIn("<h4>Born at</h4>", page)
        self.assertIn("<code>%s:%d in Blob.__init__</code>"
                      % (html.escape(PROGRAM), marked_line("buf")), page)
        self.assertIn("<code>__main__.LEAK[", page)


if __name__ == "__main__":
    unittest.main()
