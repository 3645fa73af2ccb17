# SPDX-License-Identifier: MIT
"""No escape sequence from a snapshot reaches a terminal: type names,
labels, module names, programs and values that carry terminal controls
(a title change, a screen clear, 8-bit CSI, a bidi override) come out of
every text answer and every error escaped ("\\x1b"), never raw."""

import json
import os
import subprocess
import unittest

from cli_support import CLI, Daemon, TmpTestCase, cli_env, needs_cli, \
    needs_daemon

# sets the terminal's title, clears it, returns the carriage, 8-bit CSI,
# reverses the text that follows, deletes
EVIL = "<script>\x1b]0;PWNED\x07\x1b[2J\r\x9b31m\u202e\x7f"
TYPE = "Evil" + EVIL
RAW = (b"\x1b", b"\x07", b"\r", b"\x7f", "\x9b".encode(), "\u202e".encode())
SHOWN = "\\x1b]0;PWNED\\x07\\x1b[2J\\x0d\\x9b31m\\u202e\\x7f"

MODULE, DICT, LIST = 1000, 1001, 1002


def session(i):
    return 2000 + i


def dump_text(k):
    """A process holding k Session-like objects of a hostile type, each
    with a hostile value, under a module with a hostile name."""
    objs = [
        {"address": MODULE, "type": "module", "size": 72, "name": EVIL,
         "refs": [DICT]},
        {"address": DICT, "type": "dict", "size": 360, "len": 1,
         "refs": [LIST]},
        {"address": LIST, "type": "list", "size": 56 + 8 * k, "len": k,
         "refs": [session(i) for i in range(k)]},
    ]
    for i in range(k):
        objs.append({"address": session(i), "type": TYPE, "size": 4000,
                     "refs": [3000 + i]})
        objs.append({"address": 3000 + i, "type": "str", "size": 60,
                     "len": 12, "value": EVIL + str(i), "refs": []})
    return "".join(json.dumps(o) + "\n" for o in objs)


def run_raw(args, cwd=None):
    return subprocess.run([CLI] + list(args), capture_output=True, cwd=cwd,
                          env=cli_env(), stdin=subprocess.DEVNULL, timeout=60)


@needs_cli
class TestEscaped(TmpTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.store = os.path.join(cls.tmp, "store")
        cls.files = []
        for n in range(6):              # enough for the trend test
            name = "heap%s%d.json" % (EVIL, n)
            with open(os.path.join(cls.tmp, name), "w") as f:
                f.write(dump_text(40 * (n + 1)))
            cls.files.append(name)
            r = run_raw(["--store", cls.store, "import", name, "--label",
                         "lbl" + EVIL], cwd=cls.tmp)
            if r.returncode != 0:
                raise AssertionError(r.stderr.decode(errors="replace"))

    def check(self, args, cwd=None, code=0):
        r = run_raw(args, cwd=cwd)
        self.assertEqual(r.returncode, code, r.stderr)
        for out in (r.stdout, r.stderr):
            for b in RAW:
                self.assertNotIn(b, out, "%r in %r" % (b, out))
        return r

    def text(self, args, cwd=None):
        r = self.check(args, cwd=cwd)
        out = r.stdout.decode()
        self.assertIn(SHOWN, out)           # shown, escaped, not dropped
        return out

    def test_every_command(self):
        s = ["--store", self.store]
        cases = [
            ["snapshots"], ["summary", "latest"], ["growth"],
            ["diff", "1", "latest"], ["referrers", "latest", str(session(0))],
            ["show", "latest", str(LIST)], ["show", "latest", str(3000)],
            ["top", "latest"], ["top", "latest", "--retained"],
            ["dominators", "latest", str(3001)], ["report"],
            ["report", "--process", "lbl" + EVIL],
        ]
        for args in cases:
            with self.subTest(args=args):
                self.text(s + args)

    def test_type_name_shown_escaped_in_summary(self):
        out = self.text(["--store", self.store, "summary", "latest"])
        self.assertIn("Evil<script>\\x1b]0;PWNED", out)

    def test_dump_file(self):
        for args in (["summary"], ["top", "--retained"],
                     ["show", str(LIST)], ["referrers", str(session(1))],
                     ["dominators", str(3001)]):
            with self.subTest(args=args):
                self.text(["--dump", self.files[1]] + args, cwd=self.tmp)

    def test_errors_quoting_names(self):
        r = self.check(["--store", self.store, "summary", "latest",
                        "--process", "nobody" + EVIL], code=3)
        self.assertIn(SHOWN, r.stderr.decode())
        r = self.check(["--dump", "missing" + EVIL, "summary"], code=3)
        self.assertIn(SHOWN, r.stderr.decode())


@needs_daemon
class TestEscapedThroughTheDaemon(TmpTestCase):

    def test_sent_to_the_daemon(self):
        d = Daemon(self.tmp)
        try:
            path = os.path.join(self.tmp, "sent.json")
            with open(path, "w") as f:
                f.write(dump_text(3))
            sock = ["--socket", d.sock]
            r = run_raw(sock + ["import", path, "--label", "l" + EVIL])
            self.assertEqual(r.returncode, 0, r.stderr)
            for args in (["snapshots"], ["summary", "latest"],
                         ["show", "latest", str(LIST)]):
                with self.subTest(args=args):
                    r = run_raw(sock + args)
                    self.assertEqual(r.returncode, 0, r.stderr)
                    for b in RAW:
                        self.assertNotIn(b, r.stdout + r.stderr)
                    self.assertIn(SHOWN, r.stdout.decode())
        finally:
            d.stop()


if __name__ == "__main__":
    unittest.main()
