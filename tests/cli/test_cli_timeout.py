# SPDX-License-Identifier: MIT
"""How long meliae-cli waits for the daemon's answer (--timeout).

A query on a big snapshot of an old store computes a dominator tree:
report took more than a minute at 80M objects (bench/bench_beast.py), so
queries wait ten minutes by default, snap five (a snapshot of 80M objects
is acked in about 2.5 min), delete, attach and detach one.  A fake daemon (a Unix socket that reads the request and answers
late, or never) stands in for meliae-monitord.
"""

import json
import os
import socket
import subprocess
import threading
import time
import unittest

from cli_support import CLI, TmpTestCase, cli_env, needs_cli

SNAPSHOTS = {"schema_version": 2, "command": "snapshots", "snapshots": []}


class SlowDaemon:
    """Answers the first request after delay seconds (None: never)."""

    def __init__(self, path, delay, answer=None):
        self.path = path
        self.delay = delay
        self.answer = answer
        self.request = None
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(1)
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _run(self):
        conn, _ = self.srv.accept()
        with conn:
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            self.request = json.loads(buf)
            if self.delay is None:
                conn.recv(1)            # until the CLI gives up
                return
            time.sleep(self.delay)
            conn.sendall(json.dumps({"answer": self.answer}).encode()
                         + b"\n")
            conn.recv(1)

    def close(self):
        if self.srv.fileno() >= 0:
            self.srv.close()
            os.unlink(self.path)
        self.th.join(5)


@needs_cli
class TestTimeout(TmpTestCase):

    def daemon(self, delay, answer=None):
        d = SlowDaemon(os.path.join(self.tmp, "d.sock"), delay, answer)
        self.addCleanup(d.close)
        return d

    def cli(self, args, timeout=120):
        t = time.monotonic()
        r = subprocess.run([CLI, "--socket", os.path.join(self.tmp, "d.sock")]
                           + args, capture_output=True, text=True,
                           env=cli_env(), timeout=timeout)
        return r, time.monotonic() - t

    def test_query_past_its_timeout_says_how_to_wait_longer(self):
        self.daemon(None)
        r, took = self.cli(["summary", "latest", "--timeout", "1"])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertEqual(r.stderr.strip(),
                         "meliae-cli: no answer from the daemon within 1 s "
                         "(--timeout S waits longer)")
        self.assertGreaterEqual(took, 1.0)
        self.assertLess(took, 10.0)

    def test_query_waits_for_its_timeout(self):
        self.daemon(2, SNAPSHOTS)
        r, took = self.cli(["--json", "snapshots", "--timeout", "4"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), SNAPSHOTS)
        self.assertGreaterEqual(took, 2.0)

    def test_query_waits_past_a_minute_by_default(self):
        # the old default (60 s) gave up here
        d = self.daemon(62, SNAPSHOTS)
        r, took = self.cli(["--json", "snapshots"], timeout=200)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), SNAPSHOTS)
        self.assertGreaterEqual(took, 62.0)
        self.assertEqual(d.request["request"], {"cmd": "snapshots"})

    def test_snap_asks_the_daemon_for_five_minutes_by_default(self):
        d = self.daemon(None)
        r, _ = self.cli(["snap", "web", "--timeout", "1"])
        self.assertEqual(r.returncode, 1)
        self.assertEqual(d.request["request"]["timeout"], 1)
        d.close()
        d = self.daemon(0, {"schema_version": 2, "command": "snap",
                            "snapshot": 7})
        self.cli(["--json", "snap", "web"])
        self.assertEqual(d.request["request"],
                         {"cmd": "snap", "process": "web", "timeout": 300})


if __name__ == "__main__":
    unittest.main()
