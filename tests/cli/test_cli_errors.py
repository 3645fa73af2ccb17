# SPDX-License-Identifier: MIT
"""meliae-cli on bad input: the exit code of meliae-cli(1) ("EXIT STATUS"),
exactly one line on standard error that starts with "meliae-cli: ", and
nothing on standard output."""

import json
import os
import shutil
import unittest

from cli_support import (FIXTURES, ROOT, SESSION, TmpTestCase,
                         make_fixture_store, needs_cli, run_cli)

USAGE, ERROR, NOTFOUND, UNAVAILABLE = 2, 1, 3, 69


@needs_cli
class TestBadInput(TmpTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.store = os.path.join(cls.tmp, "store")
        make_fixture_store(cls.store)
        cls.nosock = os.path.join(cls.tmp, "nobody-listens.sock")

    def check(self, args, code, want, env=None, cwd=None):
        """Runs args; the exit code is code and stderr is one line
        containing want."""
        r = run_cli(args, env=env, cwd=cwd)
        self.assertEqual(r.returncode, code, "%s: %s" % (args, r.stderr))
        self.assertEqual(r.stdout, "", args)
        self.assertTrue(r.stderr.startswith("meliae-cli: "), r.stderr)
        self.assertTrue(r.stderr.endswith("\n"), r.stderr)
        self.assertEqual(r.stderr.count("\n"), 1, "one line: %r" % r.stderr)
        self.assertIn(want, r.stderr)
        return r.stderr

    def store_cases(self, cases):
        for args, code, want in cases:
            with self.subTest(args=args):
                self.check(["--store", self.store] + args, code, want)

    def test_unknown_snapshot_is_not_found(self):
        self.store_cases([
            (["summary", "99"], NOTFOUND, "no snapshot 99"),
            (["summary", "0"], NOTFOUND, "no snapshot 0"),
            (["summary", "latest~3"], NOTFOUND, "no snapshot latest~3: 3 stored"),
            (["diff", "1", "4"], NOTFOUND, "no snapshot 4"),
            (["diff", "latest~9", "latest"], NOTFOUND, "latest~9"),
            (["show", "42", hex(SESSION)], NOTFOUND, "no snapshot 42"),
            (["referrers", "7", hex(SESSION)], NOTFOUND, "no snapshot 7"),
            (["summary", "latest", "--process", "nobody"], NOTFOUND,
             'no snapshots of process "nobody"'),
            (["show", "latest", hex(SESSION), "--process", "4242"], NOTFOUND,
             'no snapshots of process "4242"'),
        ])

    def test_bad_snapshot_reference_is_a_usage_error(self):
        self.store_cases([
            (["summary", "latest~x"], USAGE, 'bad snapshot reference "latest~x"'),
            (["summary", "latest~"], USAGE, 'bad snapshot reference "latest~"'),
            (["summary", "abc"], USAGE, 'bad snapshot reference "abc"'),
            (["summary", "latestx"], USAGE, 'bad snapshot reference "latestx"'),
            (["summary", "--", "-1"], USAGE, 'bad snapshot reference "-1"'),
            (["summary", "1.5"], USAGE, 'bad snapshot reference "1.5"'),
            (["summary", "18446744073709551616"], USAGE,
             "bad snapshot reference"),
            (["diff", "latest", "x"], USAGE, 'bad snapshot reference "x"'),
        ])

    def test_negative_latest_offset_is_a_usage_error(self):
        self.store_cases([
            (["show", "latest~-1", hex(SESSION)], USAGE,
             "bad snapshot reference"),
        ])

    def test_bad_address_is_a_usage_error(self):
        for addr in ("0xzz", "zz", "0", "0x", "1e5", "12abc",
                     "0x10000000000000000", "0x7f3a5c2b1e80x"):
            for cmd in ("show", "referrers"):
                with self.subTest(cmd=cmd, addr=addr):
                    self.check(["--store", self.store, cmd, "latest", addr],
                               USAGE, "bad address")

    def test_address_not_in_the_snapshot_is_not_found(self):
        self.store_cases([
            (["show", "latest", "0x1234"], NOTFOUND,
             "no object at 0x1234 in snapshot 3"),
            (["referrers", "latest", "4660"], NOTFOUND,
             "no object at 0x1234 in snapshot 3"),
            # the 7th Session exists in snapshot 3 only
            (["referrers", "1", hex(SESSION + 6 * 0x80)], NOTFOUND,
             "no object at %s in snapshot 1" % hex(SESSION + 6 * 0x80)),
            (["show", "latest~1", hex(SESSION + 6 * 0x80)], NOTFOUND,
             "in snapshot 2"),
        ])

    def test_bad_duration_is_a_usage_error(self):
        for opt in ("--since", "--until"):
            for v in ("5y", "-1h", "1h30m", "h", "", "yesterday",
                      "2026-13-01", "2026-11-27T06:00:00+0100x",
                      "99999999999w"):
                for cmd in ("growth", "snapshots"):
                    with self.subTest(cmd=cmd, opt=opt, v=v):
                        self.check(["--store", self.store, cmd, opt, v],
                                   USAGE, "%s: bad duration or time" % opt)

    def test_bad_option_value_is_a_usage_error(self):
        self.store_cases([
            (["summary", "latest", "--top", "x"], USAGE,
             '--top wants a number, not "x"'),
            (["summary", "latest", "--top", "-1"], USAGE, "--top wants a number"),
            (["summary", "latest", "--top"], USAGE, "--top needs a value"),
            (["summary", "latest", "--by", "weight"], USAGE,
             '--by must be size or count, not "weight"'),
            (["growth", "--by", "x"], USAGE, "--by must be size or count"),
            (["referrers", "latest", hex(SESSION), "--depth", "0"], USAGE,
             "--depth must be a positive number"),
            (["referrers", "latest", hex(SESSION), "--chains", "0"], USAGE,
             "--chains must be a positive number"),
            (["show", "latest", hex(SESSION), "--limit", "many"], USAGE,
             "--limit wants a number"),
            (["snap", "--pid", "web"], USAGE,
             'snap --pid wants one pid and no SEL, not "web"'),
            (["snap", "web", "--pid", "42"], USAGE,
             'snap --pid wants one pid and no SEL, not "web"'),
            (["summary", "latest", "--pid", "42"], USAGE,
             "--pid works with snap"),
        ])

    def test_unknown_command_or_option_is_a_usage_error(self):
        self.store_cases([
            (["frobnicate"], USAGE, 'unknown command "frobnicate"'),
            (["Summary", "latest"], USAGE, 'unknown command "Summary"'),
            (["summary", "latest", "--frob"], USAGE,
             'unknown option "--frob"'),
            (["--frob", "summary", "latest"], USAGE, 'unknown option "--frob"'),
            (["summary", "latest", "-x"], USAGE, 'unknown option "-x"'),
            (["show", "latest", "-5"], USAGE, 'unknown option "-5"'),
        ])
        self.check(["--frob"], USAGE, 'unknown option "--frob"')

    def test_unknown_short_option_in_a_cluster_is_named(self):
        self.store_cases([
            (["show", "latest", "-0x10"], USAGE, 'unknown option "-0'),
        ])

    def test_dump_with_a_command_it_does_not_serve(self):
        for cmd in (["growth"], ["snapshots"], ["diff", "1", "2"]):
            with self.subTest(cmd=cmd):
                self.check(["--dump", "dump1.json"] + cmd, USAGE,
                           "--dump works with summary, referrers and show",
                           cwd=FIXTURES)

    def test_missing_or_broken_dump_file(self):
        self.check(["--dump", os.path.join(self.tmp, "none.json"), "summary"],
                   NOTFOUND, "none.json: No such file or directory")
        bad = os.path.join(self.tmp, "bad.json")
        with open(bad, "w") as f:
            f.write('{"address": 1, "type": "x", "size": 1, "refs": []}\n'
                    '{"address": 2, "type": "x"\n')
        self.check(["--dump", bad, "summary"], ERROR, "bad.json:2: ")
        self.check(["--store", os.path.join(self.tmp, "imp"), "import",
                    os.path.join(self.tmp, "none.json")], NOTFOUND,
                   "No such file or directory")

    def test_missing_store_is_not_found(self):
        missing = os.path.join(self.tmp, "no-such-store")
        self.check(["--store", missing, "summary", "latest"], NOTFOUND,
                   "no store at %s" % missing)
        self.check(["summary", "latest"], NOTFOUND, "no store at %s" % missing,
                   env={"MELIAE_STORE": missing})
        empty = os.path.join(self.tmp, "empty")
        os.makedirs(empty, exist_ok=True)
        self.check(["--store", empty, "snapshots"], NOTFOUND, "no store at")
        self.assertEqual(os.listdir(empty), [], "a reader creates nothing")

    def test_unreadable_store_is_an_error(self):
        notdir = os.path.join(self.tmp, "a-file")
        with open(notdir, "w") as f:
            f.write("x")
        self.check(["--store", notdir, "snapshots"], ERROR, notdir)
        garbage = os.path.join(self.tmp, "garbage")
        os.makedirs(garbage, mode=0o700, exist_ok=True)
        with open(os.path.join(garbage, "data.mdb"), "wb") as f:
            f.write(bytes(range(256)) * 512)
        self.check(["--store", garbage, "summary", "latest"], ERROR,
                   "cannot open the store in %s" % garbage)
        if os.geteuid() != 0:           # root reads a mode 000 file anyway
            locked = os.path.join(self.tmp, "locked")
            shutil.copytree(self.store, locked)
            os.chmod(os.path.join(locked, "data.mdb"), 0)
            self.check(["--store", locked, "snapshots"], ERROR, locked)

    def test_daemon_down_is_unavailable(self):
        for args in (["summary", "latest"], ["snapshots"], ["growth"],
                     ["snap", "web"],
                     ["import", os.path.join(FIXTURES, "dump1.json")]):
            with self.subTest(args=args):
                self.check(["--socket", self.nosock] + args, UNAVAILABLE,
                           "no daemon at %s" % self.nosock)
        self.check(["summary", "latest"], UNAVAILABLE,
                   "no daemon at %s" % self.nosock,
                   env={"MELIAE_SOCKET": self.nosock})
        # snap needs the daemon even with --store
        self.check(["--store", self.store, "--socket", self.nosock, "snap",
                    "web"], UNAVAILABLE, "no daemon at")

    def test_socket_path_too_long_is_unavailable(self):
        self.check(["--socket", "/" + "x" * 200, "snapshots"], UNAVAILABLE,
                   "socket path too long")

    def test_wrong_number_of_arguments_is_one_line(self):
        self.store_cases([
            (["summary"], USAGE, "summary takes 1 argument"),
            (["diff", "1"], USAGE, "diff takes 2 arguments"),
            (["snapshots", "extra"], USAGE, "snapshots takes 0 arguments"),
        ])

    def test_wrong_number_of_arguments_exit_code(self):
        for args in (["summary"], ["diff", "1"], ["show", "latest"],
                     ["snapshots", "extra"], ["import"]):
            with self.subTest(args=args):
                r = run_cli(["--store", self.store] + args)
                self.assertEqual(r.returncode, USAGE)
                self.assertEqual(r.stdout, "")
                self.assertTrue(r.stderr.startswith("meliae-cli: %s takes "
                                                    % args[0]), r.stderr)
        r = run_cli(["--dump", "dump1.json", "summary", "latest"],
                    cwd=FIXTURES)
        self.assertEqual(r.returncode, USAGE)
        self.assertIn("no SNAP with --dump", r.stderr)

    def test_no_command_prints_usage_to_stderr(self):
        r = run_cli([])
        self.assertEqual(r.returncode, USAGE)
        self.assertEqual(r.stdout, "")
        self.assertTrue(r.stderr.startswith("usage: meliae-cli"))

    def test_unknown_process_is_not_found_for_growth_and_snapshots(self):
        self.store_cases([
            (["growth", "--process", "nobody"], NOTFOUND, "nobody"),
            (["snapshots", "--process", "nobody"], NOTFOUND, "nobody"),
        ])


@needs_cli
class TestTwoProcesses(TmpTestCase):
    """A store that two processes fill: a diff across them and a
    --process that matches both are refused, not answered."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.store = os.path.join(cls.tmp, "store")
        # one program (dump1.json, from two directories), two labels: two
        # processes as the store sees them
        for d, label in (("x", "web"), ("y", "worker")):
            os.makedirs(os.path.join(cls.tmp, d))
            shutil.copy(os.path.join(FIXTURES, "dump%s.json"
                                     % (1 if d == "x" else 3)),
                        os.path.join(cls.tmp, d, "dump1.json"))
            r = run_cli(["--store", cls.store, "import",
                         os.path.join(d, "dump1.json"), "--label", label],
                        cwd=cls.tmp)
            assert r.returncode == 0, r.stderr

    check = TestBadInput.check

    def test_diff_across_processes_is_refused(self):
        err = self.check(["--store", self.store, "diff", "latest~1",
                          "latest"], USAGE, "are of two processes")
        self.assertIn('"web"', err)
        self.assertIn('"worker"', err)
        self.assertIn("--across-processes", err)

    def test_diff_across_processes_when_asked(self):
        r = run_cli(["--store", self.store, "--json", "diff", "1", "2",
                     "--across-processes"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["b"]["label"], "worker")

    def test_diff_within_one_process_needs_no_flag(self):
        r = run_cli(["--store", self.store, "diff", "1", "1"])
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_across_processes_only_with_diff(self):
        self.check(["--store", self.store, "summary", "1",
                    "--across-processes"], USAGE, "works with diff")

    def test_process_matching_two_lists_them(self):
        for cmd in (["summary", "latest"], ["top", "latest~1"]):
            with self.subTest(cmd=cmd):
                err = self.check(["--store", self.store] + cmd +
                                 ["--process", "dump1.json"], USAGE,
                                 '--process "dump1.json" matches 2 processes')
                self.assertIn('pid 0 "web" x/dump1.json (snapshots 1..1)',
                              err)
                self.assertIn('"worker" y/dump1.json', err)

    def test_process_matching_one_is_answered(self):
        r = run_cli(["--store", self.store, "--json", "summary", "latest",
                     "--process", "web"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["snapshot"]["id"], 1)


@needs_cli
class TestDumpInput(TmpTestCase):
    """What --dump and import accept (docs/dump-format.md, "Reading
    dumps")."""

    def test_meliae05_dump_with_repeated_address(self):
        path = os.path.join(ROOT, "tests", "fixtures", "meliae05.json")
        r = run_cli(["--dump", path, "--json", "summary"])
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        doc = json.loads(r.stdout)
        self.assertEqual((doc["total_objects"], doc["total_bytes"]),
                         (9, 1414))

    def test_dump_leaves_no_temporary_store(self):
        tmpdir = os.path.join(self.tmp, "t")
        os.makedirs(tmpdir)
        r = run_cli(["--dump", "dump1.json", "summary"], cwd=FIXTURES,
                    env={"TMPDIR": tmpdir})
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run_cli(["--dump", "none.json", "summary"], cwd=FIXTURES,
                    env={"TMPDIR": tmpdir})
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertEqual(os.listdir(tmpdir), [])


if __name__ == "__main__":
    unittest.main()
