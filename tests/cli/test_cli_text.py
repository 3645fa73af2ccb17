# SPDX-License-Identifier: MIT
"""The text answers' shape: long type names cut in the middle to their
column, --help's one line per command, an imported snapshot said to be
one, the report's deltas below the trend test's minimum, and diff of two
dump files."""

import gzip
import json
import os
import pty
import re
import subprocess
import unittest

from cli_support import (CLI, LABEL, TmpTestCase, cli_env,
                         make_fixture_store, needs_cli, run_cli)

LONG = "breezy.bzr._static_tuple_c.StaticTuple"


def dump(path, objs):
    with open(path, "w") as f:
        for o in objs:
            f.write(json.dumps(o) + "\n")
    return path


def objs(n, type_, base):
    return [{"address": base + i, "type": type_, "size": 100, "refs": []}
            for i in range(n)]


@needs_cli
class TestText(TmpTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.store = os.path.join(cls.tmp, "store")
        make_fixture_store(cls.store)
        cls.a = dump(os.path.join(cls.tmp, "a.json"),
                     objs(2, LONG, 1000) + objs(1, "x", 5000))
        cls.b = dump(os.path.join(cls.tmp, "b.json"),
                     objs(6, LONG, 1000) + objs(2, "x", 5000))

    def columns(self, out, head):
        """The rows of the table whose header line starts with head: each
        row's fields after the type start where the header's do."""
        lines = out.splitlines()
        i = [k for k, l in enumerate(lines) if l.strip().startswith(head)][0]
        rows = []
        for l in lines[i + 1:]:
            if not l.strip():
                break
            rows.append(l)
        return lines[i], rows

    def test_diff_of_two_dump_files(self):
        r = run_cli(["--json", "diff", self.a, self.b])
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        doc = json.loads(r.stdout)
        self.assertEqual(doc["a"]["file"], "a.json")
        self.assertEqual(doc["b"]["file"], "b.json")
        row = [t for t in doc["types"] if t["type"] == LONG][0]
        self.assertEqual((row["count_before"], row["count_after"]), (2, 6))
        self.assertEqual(doc["new_objects"]["count"], 5)

    def test_diff_of_a_gzip_and_a_plain_file(self):
        gz = os.path.join(self.tmp, "b.json.gz")
        with open(self.b, "rb") as f, open(gz, "wb") as g:
            g.write(gzip.compress(f.read()))
        r = run_cli(["--json", "diff", self.a, gz])
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertEqual(json.loads(r.stdout)["new_objects"]["count"], 5)

    def test_diff_of_a_file_and_a_snapshot_is_refused(self):
        r = run_cli(["--store", self.store, "diff", self.a, "1"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("two snapshots or two dump files", r.stderr)

    def test_long_type_names_keep_the_columns(self):
        r = run_cli(["diff", self.a, self.b])
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        head, rows = self.columns(r.stdout, "TYPE")
        at = head.index("+/- COUNT")
        self.assertEqual(len(rows), 2, r.stdout)
        for row in rows:
            # the count column ends where its header does
            self.assertEqual(row[:at + len("+/- COUNT")].rstrip()[-2:],
                             row[:at + len("+/- COUNT")][-2:], row)
            self.assertEqual(row[at - 1], " ", row)
        cut = [row for row in rows if "StaticTuple" in row][0]
        self.assertIn("breezy.bzr._st...e_c.StaticTuple", cut)
        # the whole name in --json and in the new objects' lines
        self.assertIn(": 4 %s (400B)" % LONG, r.stdout)

    def test_long_type_names_in_growth(self):
        store = os.path.join(self.tmp, "g")
        for p in (self.a, self.b):
            run_cli(["--store", store, "import", p, "--label", "g"])
        r = run_cli(["--store", store, "growth"])
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        head, rows = self.columns(r.stdout, "TYPE")
        at = head.index("COUNT") + len("COUNT")
        for row in rows:
            self.assertRegex(row[:at], r"\d$", row)     # right-aligned
        self.assertTrue(any("breezy.bzr._st...e_c.StaticTuple" in row
                            for row in rows), r.stdout)
        doc = json.loads(run_cli(["--store", store, "--json",
                                  "growth"]).stdout)
        self.assertIn(LONG, [t["type"] for t in
                             doc["processes"][0]["types"]])

    def test_help_lists_each_command_with_a_line(self):
        out = run_cli(["--help"]).stdout
        m = re.search(r"^commands:\n(.*?)\n\n", out, re.S | re.M)
        lines = m.group(1).splitlines()
        self.assertIn("delete", [l.split()[0] for l in lines])
        for l in lines:
            with self.subTest(line=l):
                # name, arguments, then a description of a few words
                self.assertRegex(l, r"^  \w+ +[A-Z_ ]*  +[a-z].{10,}$")

    def test_imported_snapshot_says_so(self):
        r = run_cli(["--store", self.store, "snapshots"])
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        rows = r.stdout.splitlines()[1:]
        self.assertEqual(len(rows), 3)
        for n, row in enumerate(rows, 1):
            self.assertIn("imported from dump%d.json" % n, row)
            self.assertRegex(row, r"Z +- +- +%s " % LABEL)     # no pid
        r = run_cli(["--store", self.store, "summary", "latest"])
        self.assertTrue(r.stdout.startswith(
            "snapshot 3 at "), r.stdout)
        self.assertIn(', imported from dump3.json "%s",' % LABEL, r.stdout)
        self.assertNotIn("pid 0", r.stdout)
        r = run_cli(["--dump", self.a, "summary"])
        self.assertIn("imported from a.json,", r.stdout)
        self.assertNotIn("pid 0", r.stdout)

    def test_report_below_the_minimum_shows_the_deltas(self):
        r = run_cli(["--store", self.store, "report"])
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertIn("no verdict yet: the trend test needs 5 snapshots "
                      "or more (3 so far)", r.stdout)
        # the verdict, then the heading: files, not a process (no pid 0)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0], "meliae: no verdict yet: 3 snapshots, and "
                         "the trend test needs 5 or more")
        self.assertTrue(lines[1].startswith(
            'leak report: imported files "%s", the last dump3.json: 3 '
            'snapshots' % LABEL), r.stdout)
        self.assertIn("what grew from snapshot 1 to 3:", r.stdout)
        self.assertRegex(r.stdout, r"\n  Session +\+5 +\+520B +208B -> 728B\n")
        doc = json.loads(run_cli(["--store", self.store, "--json",
                                  "report"]).stdout)
        d = doc["processes"][0]["deltas"]
        self.assertEqual(d[0], {"type": "Session", "count_before": 2,
                                "count_after": 7, "bytes_before": 208,
                                "bytes_after": 728})
        self.assertTrue(all(t["bytes_after"] > t["bytes_before"] for t in d))


@needs_cli
class TestProgress(TmpTestCase):
    """A progress line on a terminal's stderr, wiped when done; none when
    stderr is not a terminal (every other test checks an empty stderr).
    MELIAE_PROGRESS_AFTER=0 shows it at once rather than after 1 s."""

    def run_on_a_tty(self, args, env):
        master, slave = pty.openpty()
        p = subprocess.Popen([CLI] + args, stdout=subprocess.PIPE,
                             stderr=slave, stdin=subprocess.DEVNULL,
                             env=cli_env(env))
        os.close(slave)
        out = p.stdout.read()
        p.wait(60)
        err = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:             # EIO: the child side is closed
                break
            if not chunk:
                break
            err += chunk
        os.close(master)
        return p.returncode, out, err

    def test_import_shows_and_wipes_its_progress(self):
        path = dump(os.path.join(self.tmp, "p.json"), objs(5, "x", 100))
        rc, out, err = self.run_on_a_tty(
            ["--store", os.path.join(self.tmp, "s"), "import", path],
            {"MELIAE_PROGRESS_AFTER": "0"})
        self.assertEqual(rc, 0, err)
        self.assertTrue(out.startswith(b"stored as snapshot 1"), out)
        self.assertIn(b"p.json: 1 objects, 0s", err)
        self.assertTrue(err.endswith(b"\r\x1b[K"), err)  # wiped

    def test_quick_work_shows_nothing(self):
        path = dump(os.path.join(self.tmp, "q.json"), objs(5, "x", 100))
        rc, out, err = self.run_on_a_tty(
            ["--store", os.path.join(self.tmp, "s2"), "import", path],
            {"MELIAE_PROGRESS_AFTER": "3600"})
        self.assertEqual((rc, err), (0, b""))


if __name__ == "__main__":
    unittest.main()
