# SPDX-License-Identifier: MIT
"""meliae-monitord's command line: --help, --version, bad arguments, the
socket path checks, detaching."""

import os
import signal
import socket
import struct
import subprocess
import time
import unittest

from daemon_support import (MONITORD, DaemonTestCase, daemon_env,
                            honest_ack)


def run(args, env=None, timeout=30):
    return subprocess.run([MONITORD] + args, capture_output=True, text=True,
                          env=daemon_env(env), timeout=timeout)


class TestArgs(DaemonTestCase):

    def test_help_prints_usage_and_exits_0(self):
        r = run(["--help"])
        self.assertEqual(r.returncode, 0)
        self.assertIn("Usage: meliae-monitord --store DIR", r.stdout)
        for opt in ("--socket", "--group", "--retain", "--retain-age",
                    "--max-store", "--max-refs", "--metrics-textfile",
                    "--metrics-listen",
                    "--metrics-keep", "--foreground", "--log-level"):
            self.assertIn(opt, r.stdout)
        self.assertEqual(r.stderr, "")

    def test_version_prints_one_line_and_exits_0(self):
        r = run(["--version"])
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^meliae-monitord \S+ \(libuv [0-9.]+, LMDB [0-9.]+, cJSON [0-9.]+\)\n$")

    def test_bad_arguments_exit_2_with_one_line(self):
        store = os.path.join(self.tmp, "store")
        sock = ["--socket", os.path.join(self.tmp, "s")]
        cases = [
            (["--bogus"], "unknown option --bogus"),
            (["-x"], "unknown option -x"),
            (["--store"], "--store needs a value"),
            ([], "--store DIR is required"),
            (["--store", store, "extra"] + sock, "unexpected argument"),
            (["--store", store, "--retain", "0"] + sock, "--retain"),
            (["--store", store, "--retain", "x"] + sock, "--retain"),
            (["--store", store, "--retain-age", "7x"] + sock, "--retain-age"),
            (["--store", store, "--retain-age", "0s"] + sock, "--retain-age"),
            (["--store", store, "--retain-age", "99999999999999d"] + sock,
             "--retain-age"),
            (["--store", store, "--metrics-keep", "5m"] + sock,
             "--metrics-keep goes with"),
            (["--store", store, "--metrics-textfile", "m.prom",
              "--metrics-keep", "0.5s"] + sock, "at least 1s"),
            (["--store", store, "--metrics-textfile", "m.prom",
              "--metrics-keep", "5x"] + sock, "--metrics-keep"),
            (["--store", store, "--max-store", "12Q"] + sock, "--max-store"),
            (["--store", store, "--max-store", "-1"] + sock, "--max-store"),
            (["--store", store, "--max-refs", "0"] + sock, "--max-refs"),
            (["--store", store, "--max-refs", "4294967296"] + sock,
             "--max-refs"),
            (["--store", store, "--log-level", "loud"] + sock, "--log-level"),
            (["--store", store, "--group", "no-such-group-here"] + sock,
             "--group"),
            (["--store", store, "--socket", "/" + "x" * 120], "107"),
        ]
        for args, want in cases:
            with self.subTest(args=args):
                r = run(args)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertEqual(r.stderr.count("\n"), 1, r.stderr)
                self.assertIn(want, r.stderr)
                self.assertTrue(r.stderr.startswith("meliae-monitord: "))
                self.assertFalse(os.path.exists(store))

    def test_good_values_are_accepted(self):
        d = self.daemon(args=["--retain", "3", "--retain-age", "15m",
                              "--max-store", "512M"])
        self.assertGreater(honest_ack(d.sock, 5), 0)
        self.stop_clean(d)

    def test_socket_from_environment(self):
        path = os.path.join(self.tmp, "env.sock")
        d = self.daemon(start=False, env={"MELIAE_SOCKET": path})
        # Start without --socket: the Daemon helper always passes one, so
        # run the command by hand.
        log = open(os.path.join(self.tmp, "env.log"), "wb")
        p = subprocess.Popen([MONITORD, "--store", d.store, "--foreground"],
                             stderr=log, env=daemon_env({"MELIAE_SOCKET":
                                                          path}))
        try:
            deadline = time.monotonic() + 20
            while not os.path.exists(path) and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertGreater(honest_ack(path, 3), 0)
        finally:
            p.send_signal(signal.SIGTERM)
            self.assertEqual(p.wait(30), 0)
            log.close()
        self.assertFalse(os.path.exists(path))


class TestSocketPath(DaemonTestCase):

    def test_path_too_long_is_refused(self):
        longdir = os.path.join(self.tmp, "d" * 100)
        os.mkdir(longdir)
        r = run(["--store", os.path.join(self.tmp, "st"), "--socket",
                 os.path.join(longdir, "meliae.sock"), "--foreground"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("the limit is 107", r.stderr)

    def test_regular_file_at_the_path_is_refused_and_kept(self):
        path = os.path.join(self.tmp, "file")
        with open(path, "w") as f:
            f.write("precious")
        r = run(["--store", os.path.join(self.tmp, "st"), "--socket", path,
                 "--foreground"])
        self.assertEqual(r.returncode, 1)
        self.assertIn("is not a socket", r.stderr)
        with open(path) as f:
            self.assertEqual(f.read(), "precious")

    def test_stale_socket_is_replaced(self):
        path = os.path.join(self.tmp, "d.sock")
        s = socket.socket(socket.AF_UNIX)
        s.bind(path)                     # bound, never listening: stale
        s.close()
        d = self.daemon(sock=path)
        self.assertIn("stale_socket_removed", d.log())
        self.assertGreater(honest_ack(path, 3), 0)
        self.stop_clean(d)

    def test_live_daemon_is_not_replaced(self):
        d1 = self.daemon()
        r = run(["--store", os.path.join(self.tmp, "other"), "--socket",
                 d1.sock, "--foreground"])
        self.assertEqual(r.returncode, 1)
        self.assertIn("another daemon is listening", r.stderr)
        self.assertGreater(honest_ack(d1.sock, 3), 0)
        self.stop_clean(d1)

    def test_second_daemon_on_the_same_store_is_refused(self):
        d1 = self.daemon()
        r = run(["--store", d1.store, "--socket",
                 os.path.join(self.tmp, "other.sock"), "--foreground"])
        self.assertEqual(r.returncode, 1)
        self.assertIn("in use", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "other.sock")))
        self.assertGreater(honest_ack(d1.sock, 3), 0)
        self.stop_clean(d1)


class TestDetach(DaemonTestCase):

    def test_detached_daemon_serves_and_stops(self):
        sock = os.path.join(self.tmp, "bg.sock")
        r = run(["--store", os.path.join(self.tmp, "st"), "--socket", sock])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout + r.stderr, "")
        # Listening as soon as the parent returned.
        c = socket.socket(socket.AF_UNIX)
        c.connect(sock)
        cred = c.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                            struct.calcsize("3i"))
        pid = struct.unpack("3i", cred)[0]
        c.close()
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read().rsplit(")", 1)[1].split()
        sid = int(stat[3])
        # Its own session (setsid), yet not its leader (second fork): it
        # can never acquire a controlling terminal.
        self.assertNotEqual(sid, os.getsid(0))
        self.assertNotEqual(sid, pid)
        self.assertGreater(honest_ack(sock, 3), 0)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while os.path.exists("/proc/%d" % pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertFalse(os.path.exists(sock))

    def test_detached_start_failure_is_reported_by_the_parent(self):
        path = os.path.join(self.tmp, "file")
        open(path, "w").close()
        r = run(["--store", os.path.join(self.tmp, "st"), "--socket", path])
        self.assertEqual(r.returncode, 1)
        self.assertIn("is not a socket", r.stderr)


if __name__ == "__main__":
    unittest.main()
