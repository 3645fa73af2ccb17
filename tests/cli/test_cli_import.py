# SPDX-License-Identifier: MIT
"""What import and --dump accept: a dump, plain or gzip (told by its
magic bytes); not an empty file nor one that is no dump; not the same
file twice (its content hash) without --force.  With --store and
through the daemon alike."""

import gzip
import json
import os
import shutil
import unittest

from cli_support import (FIXTURES, Daemon, TmpTestCase, needs_cli,
                         needs_daemon, run_cli)

DUMP1 = os.path.join(FIXTURES, "dump1.json")
DUMP2 = os.path.join(FIXTURES, "dump2.json")


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


class ImportCases:
    """The cases, for a transport: where() gives the CLI's options."""

    def where(self):
        raise NotImplementedError

    def cli(self, args, code=0):
        r = run_cli(self.where() + list(args))
        self.assertEqual(r.returncode, code, r.stderr)
        if code != 0:
            self.assertEqual(r.stdout, "")
            self.assertEqual(r.stderr.count("\n"), 1, r.stderr)
        return r

    def ids(self):
        doc = json.loads(self.cli(["--json", "snapshots"]).stdout)
        return [s["id"] for s in doc["snapshots"]]

    def refused(self, path, want):
        before = self.ids()
        r = self.cli(["import", path], code=1)
        self.assertIn(want, r.stderr)
        self.assertEqual(self.ids(), before, "nothing stored")

    def test_empty_file_is_refused(self):
        self.refused(write(os.path.join(self.tmp, "empty.json"), b""),
                     "empty.json: empty (not a meliae dump)")

    def test_not_a_dump_is_refused(self):
        self.refused(write(os.path.join(self.tmp, "hostname"), b"web1\n"),
                     "hostname: not a meliae dump: line 1")

    def test_no_object_line_is_refused(self):
        path = write(os.path.join(self.tmp, "blank.json"),
                     b"\n  \n{\"meliae_stream\": 1}\n\n")
        self.refused(path, "blank.json: no object line in it")

    def test_gzip_is_read_by_its_magic(self):
        data = open(DUMP2, "rb").read()
        gz = write(os.path.join(self.tmp, "d2.json.gz"), gzip.compress(data))
        # the same bytes without the suffix: told by the magic
        odd = write(os.path.join(self.tmp, "d2-gz.json"),
                    gzip.compress(data + b"\n"))
        r = self.cli(["--json", "import", gz])
        self.assertEqual(json.loads(r.stdout)["objects"], 45)
        r = self.cli(["--json", "import", odd])
        self.assertEqual(json.loads(r.stdout)["objects"], 45)

    def test_a_nul_in_a_line_is_that_lines_error(self):
        lines = open(DUMP1, "rb").read().splitlines(True)
        bad = (b'{"address": 5, "type": "a\0b", "size": 1, "refs": []}\n')
        path = write(os.path.join(self.tmp, "nul.json"),
                     b"".join(lines[:2]) + bad + b"".join(lines[2:]))
        self.refused(path, "nul.json:3: ")

    def test_gzip_cut_short_is_an_error(self):
        data = gzip.compress(open(DUMP2, "rb").read())
        path = write(os.path.join(self.tmp, "cut.json.gz"),
                     data[:len(data) // 2])
        self.refused(path, "cut short")

    def test_same_file_twice_is_refused_unless_forced(self):
        path = os.path.join(self.tmp, "twice.json")
        shutil.copy(DUMP1, path)
        with open(path, "a") as f:
            f.write("\n\n")                 # not setUpClass's content
        first = json.loads(self.cli(["--json", "import", path]).stdout)
        # its gzip is the same content
        gz = write(os.path.join(self.tmp, "twice.json.gz"),
                   gzip.compress(open(path, "rb").read()))
        for p in (path, gz):
            with self.subTest(path=p):
                self.refused(p, "already stored as snapshot %d"
                             % first["snapshot"])
        r = self.cli(["--json", "import", path, "--force"])
        self.assertGreater(json.loads(r.stdout)["snapshot"],
                           first["snapshot"])

    def test_imported_snapshot_names_its_file(self):
        path = os.path.join(self.tmp, "named.json")
        shutil.copy(DUMP1, path)
        with open(path, "a") as f:
            f.write("\n")                   # another content
        r = self.cli(["--json", "import", path])
        sid = json.loads(r.stdout)["snapshot"]
        snaps = json.loads(self.cli(["--json", "snapshots"]).stdout)
        s = [s for s in snaps["snapshots"] if s["id"] == sid][0]
        self.assertEqual(s["file"], "named.json")
        self.assertRegex(s["content_hash"], r"^fnv1a64:[0-9a-f]{16}:39$")

    def test_a_long_path_and_a_name_that_is_not_utf8(self):
        d = os.path.join(self.tmp.encode(), b"d" * 200, b"e" * 100)
        os.makedirs(d)
        path = os.path.join(d, b"caf\xe9.json")
        with open(path, "wb") as f:
            f.write(open(DUMP1, "rb").read() + b"\n\n\n\n")
        sid = json.loads(self.cli(["--json", "import", path]).stdout)
        snaps = json.loads(self.cli(["--json", "snapshots"]).stdout)
        s = [s for s in snaps["snapshots"] if s["id"] == sid["snapshot"]][0]
        self.assertEqual(s["file"], "caf\ufffd.json")

    def test_delete(self):
        path = os.path.join(self.tmp, "gone.json")
        shutil.copy(DUMP2, path)
        with open(path, "a") as f:
            f.write("\n\n\n")               # a content of its own
        sid = json.loads(self.cli(["--json", "import", path]).stdout)
        sid = sid["snapshot"]
        self.assertIn(sid, self.ids())
        r = self.cli(["delete", str(sid)])
        self.assertEqual(r.stdout, "deleted snapshot %d\n" % sid)
        self.assertNotIn(sid, self.ids())
        r = self.cli(["summary", str(sid)], code=3)
        self.assertIn("no snapshot %d" % sid, r.stderr)
        r = self.cli(["delete", str(sid)], code=3)
        self.assertIn("no snapshot %d" % sid, r.stderr)
        # its content is gone too: the file imports again
        again = json.loads(self.cli(["--json", "import", path]).stdout)
        self.assertGreater(again["snapshot"], sid)
        # the others are whole: their summaries and objects still answer
        r = self.cli(["--json", "top", str(again["snapshot"])])
        self.assertEqual(len(json.loads(r.stdout)["objects"]), 20)

    def test_delete_wants_an_id(self):
        for ref in ("latest", "latest~1", "x", "0"):
            with self.subTest(ref=ref):
                r = self.cli(["delete", ref], code=2)
                self.assertIn("delete needs a snapshot id", r.stderr)


@needs_cli
class TestImportStore(ImportCases, TmpTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.store = os.path.join(cls.tmp, "store")
        r = run_cli(["--store", cls.store, "import", DUMP1, "--label", "x"])
        assert r.returncode == 0, r.stderr

    def where(self):
        return ["--store", self.store]


@needs_daemon
class TestImportDaemon(ImportCases, TmpTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.daemon = Daemon(cls.tmp)

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()
        super().tearDownClass()

    def where(self):
        return ["--socket", self.daemon.sock]


@needs_cli
class TestDumpGzip(TmpTestCase):

    def test_dump_gz_answers_as_the_plain_file(self):
        gz = write(os.path.join(self.tmp, "d1.json.gz"),
                   gzip.compress(open(DUMP1, "rb").read()))
        plain = run_cli(["--dump", DUMP1, "--json", "summary"])
        packed = run_cli(["--dump", gz, "--json", "summary"])
        self.assertEqual((packed.returncode, packed.stderr), (0, ""))
        a, b = json.loads(plain.stdout), json.loads(packed.stdout)
        self.assertEqual(a["types"], b["types"])

    def test_dump_of_an_empty_file_is_refused(self):
        path = write(os.path.join(self.tmp, "e.json"), b"")
        r = run_cli(["--dump", path, "summary"])
        self.assertEqual(r.returncode, 1)
        self.assertIn("empty (not a meliae dump)", r.stderr)


if __name__ == "__main__":
    unittest.main()
