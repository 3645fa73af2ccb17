"""A daemon that is absent, stalls, goes away or cuts a snapshot short
must cost the application at most a deadline and one warning, never a hang
or a frozen process; and bad arguments are refused up front."""

import errno
import os
import threading
import time
import unittest
from unittest import mock

import meliae.stream
import support
from fakedaemon import StreamTestCase, wait_until
from support import scanner

# Slack over a deadline for a loaded two-core machine.
SLACK = 2.0


class StalledDaemonTest(StreamTestCase, unittest.TestCase):

    def test_daemon_that_stops_reading_fails_within_the_deadline(self):
        # The snapshot is far bigger than the socket's buffers, so sending
        # blocks; it must block without the GIL, and give up in time.
        s = self.stream()
        t0 = time.monotonic()
        self.assertEqual(s.snapshot(), 1)
        # Well above what a snapshot takes here (slow under ASan), so that
        # most of the deadline is spent sending.
        deadline = max(2.0, 4 * (time.monotonic() - t0))
        self.daemon.stop_reading()
        stop = threading.Event()
        count = [0]

        def spin():
            while not stop.is_set():
                count[0] += 1
                time.sleep(0.001)

        t = threading.Thread(target=spin)
        t.start()
        try:
            with self.assertLogs("meliae", "WARNING") as logs:
                start_count = count[0]
                t0 = time.monotonic()
                with self.assertRaises(scanner.StreamError) as cm:
                    s.snapshot(timeout=deadline)
                elapsed = time.monotonic() - t0
                progress = count[0] - start_count
        finally:
            stop.set()
            t.join()
        self.assertEqual(cm.exception.errno, errno.ETIMEDOUT, cm.exception)
        self.assertLess(elapsed, deadline + SLACK)
        self.assertGreater(elapsed, deadline - 0.5)
        # A thread sleeping 1 ms per turn gets hundreds of turns in the
        # seconds the send is blocked, unless the GIL is held meanwhile.
        self.assertGreater(progress, 100, "other threads starved: %d "
                           "iterations in %.2f s" % (progress, elapsed))
        self.assertEqual(len(logs.records), 1, logs.output)
        # The half-sent snapshot's connection is dropped; once the daemon
        # reads again, the next snapshot goes through on a new one.
        self.daemon.resume_reading()
        self.assertEqual(s.snapshot(timeout=20), 2)
        self.assertGreaterEqual(self.daemon.nconnections, 2)

    def test_close_cuts_a_send_to_a_stalled_daemon_short(self):
        s = self.stream(timeout=60)
        self.daemon.wait_connections(1)
        self.daemon.stall_after(10)
        s.snapshot(wait=False)
        wait_until(lambda: self.daemon.started, what="a header")
        time.sleep(0.2)     # the thread is now blocked in the send
        t0 = time.monotonic()
        s.close()
        self.assertLess(time.monotonic() - t0, SLACK)
        self.assertFalse(s._thread.is_alive())


class AbsentDaemonTest(StreamTestCase, unittest.TestCase):

    def test_no_daemon_fails_at_once_and_warns_once(self):
        path = os.path.join(self.daemon.dir, "nobody.sock")
        with self.assertLogs("meliae", "WARNING") as logs:
            s = self.stream(address=path, timeout=30)
            for _ in range(3):
                t0 = time.monotonic()
                with self.assertRaises(scanner.StreamError) as cm:
                    s.snapshot()
                self.assertLess(time.monotonic() - t0, SLACK)
                self.assertEqual(cm.exception.errno, errno.ENOENT)
            time.sleep(0.5)     # background retries: no further warnings
        self.assertEqual(len(logs.records), 1, logs.output)
        self.assertFalse(s.connected)
        self.assertIsInstance(s.last_error, scanner.StreamError)
        self.assertIsInstance(s.last_error, OSError)

    def test_daemon_restart_reconnects_by_itself(self):
        s = self.stream()
        self.assertEqual(s.snapshot(), 1)
        with self.assertLogs("meliae", "WARNING"):
            self.daemon.restart(pause=0.5)
            # While it was away the streamer noticed, and kept trying.
            self.daemon.wait_connections(1, timeout=20)
        self.assertEqual(self.daemon.nconnections, 2)
        self.assertEqual(s.snapshot(), 2)
        self.assertTrue(s.connected)
        self.assertNoProblems()

    def test_snapshot_while_the_daemon_is_down_fails_then_recovers(self):
        s = self.stream()
        self.assertEqual(s.snapshot(), 1)
        with self.assertLogs("meliae", "WARNING") as logs:
            self.daemon.stop(remove=False)
            t0 = time.monotonic()
            with self.assertRaises(scanner.StreamError):
                s.snapshot()
            self.assertLess(time.monotonic() - t0, SLACK)
        self.assertEqual(len(logs.records), 1, logs.output)
        self.daemon.start()
        self.assertEqual(s.snapshot(), 2)

    def test_daemon_closing_mid_snapshot_is_an_error_then_reconnects(self):
        s = self.stream()
        self.daemon.wait_connections(1)
        self.daemon.close_after(100)
        with self.assertLogs("meliae", "WARNING"):
            with self.assertRaises(scanner.StreamError):
                s.snapshot()
        self.assertEqual(s.snapshot(), 1)
        self.assertEqual(self.daemon.nconnections, 2)


SIGPIPE_CHILD = r'''
import signal, sys
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
import meliae.scanner as scanner
from fakedaemon import FakeDaemon
d = FakeDaemon()
d.close_after(10)
s = scanner.stream_to(d.path, timeout=20)
try:
    s.snapshot()
except scanner.StreamError as e:
    print("refused:", e)
else:
    sys.exit("the cut snapshot was acked")
print("next:", s.snapshot())
s.close()
d.stop()
print("survived")
'''


class SigpipeTest(unittest.TestCase):

    def test_child_with_default_sigpipe_survives_a_daemon_closing_early(self):
        proc = support.run_child(SIGPIPE_CHILD, timeout=120)
        self.assertEqual(proc.returncode, 0, support.describe_child(proc))
        self.assertIn(b"survived", proc.stdout)


class CloseTest(StreamTestCase, unittest.TestCase):

    def test_close_is_idempotent_and_joins_the_thread(self):
        s = self.stream()
        s.snapshot()
        t = s._thread
        s.close()
        self.assertFalse(t.is_alive())
        self.assertTrue(s.closed)
        self.assertFalse(s.connected)
        s.close()
        with self.assertRaises(scanner.StreamError):
            s.snapshot()
        with self.assertRaises(scanner.StreamError):
            s.snapshot(wait=False)
        wait_until(lambda: not self.daemon.conns, what="daemon sees EOF")

    def test_context_manager_closes(self):
        with self.stream() as s:
            self.assertEqual(s.snapshot(), 1)
        self.assertTrue(s.closed)
        self.assertFalse(s._thread.is_alive())

    def test_close_fails_queued_snapshots(self):
        s = self.stream()
        self.daemon.wait_connections(1)
        self.daemon.stall_after(10)
        errors = []

        def waiter():
            try:
                s.snapshot(timeout=60)
            except scanner.StreamError as e:
                errors.append(e)

        threads = [threading.Thread(target=waiter) for _ in range(2)]
        for t in threads:
            t.start()
        wait_until(lambda: self.daemon.started, what="a header")
        s.close()
        for t in threads:
            t.join(SLACK * 2)
            self.assertFalse(t.is_alive())
        self.assertEqual(len(errors), 2)


class ArgumentsTest(StreamTestCase, unittest.TestCase):

    def assertNoNewThread(self, before):
        self.assertEqual(
            [t for t in threading.enumerate() if t not in before], [])

    def test_bad_values_mode_interval_timeout_label(self):
        before = threading.enumerate()
        path = self.daemon.path
        for kw, exc in [
            (dict(values="secret"), ValueError),
            (dict(values=None), ValueError),
            (dict(mode="gc"), TypeError),   # streams are always 'all'

            (dict(interval=0), ValueError),
            (dict(interval=-1), ValueError),
            (dict(interval="5"), TypeError),
            (dict(timeout=0), ValueError),
            (dict(label="x" * 257), ValueError),
            (dict(label="\u00e9" * 129), ValueError),   # 258 bytes
            (dict(label=b"bytes"), TypeError),
            (dict(signal="SIGUSR2"), TypeError),
        ]:
            with self.subTest(**kw):
                with self.assertRaises(exc) as cm:
                    scanner.stream_to(path, **kw)
                self.assertTrue(str(cm.exception))
        self.assertNoNewThread(before)
        s = self.stream(label="\u00e9" * 128)   # 256 bytes: allowed
        s.snapshot()
        self.assertEqual(self.daemon.snapshots[0].header["label"],
                         "\u00e9" * 128)

    def test_bad_addresses(self):
        before = threading.enumerate()
        with self.assertRaises(ValueError):
            scanner.stream_to("/tmp/" + "x" * 200)
        with self.assertRaises(ValueError):
            scanner.stream_to("")
        with self.assertRaises(TypeError):
            scanner.stream_to(42)
        self.assertNoNewThread(before)

    def test_snapshot_timeout_must_be_positive(self):
        s = self.stream()
        with self.assertRaises(ValueError):
            s.snapshot(timeout=0)

    def test_pathlike_and_bytes_addresses(self):
        import pathlib
        s = self.stream(address=pathlib.Path(self.daemon.path))
        self.assertEqual(s.address, self.daemon.path)
        self.assertEqual(s.snapshot(), 1)
        s2 = self.stream(address=os.fsencode(self.daemon.path))
        self.assertEqual(s2.snapshot(), 2)

    def test_default_address_from_the_environment(self):
        with mock.patch.dict(os.environ, {"MELIAE_SOCKET": self.daemon.path}):
            s = self.stream(address=None)
        self.assertEqual(s.address, self.daemon.path)
        self.assertEqual(s.snapshot(), 1)
        env = {"XDG_RUNTIME_DIR": "/run/user/12345"}
        with mock.patch.dict(os.environ, env), \
                mock.patch("os.geteuid", return_value=1000):
            os.environ.pop("MELIAE_SOCKET", None)
            self.assertEqual(meliae.stream.default_address(),
                             "/run/user/12345/meliae.sock")
            os.environ.pop("XDG_RUNTIME_DIR")
            with self.assertRaises(ValueError):
                scanner.stream_to()
        with mock.patch.dict(os.environ), \
                mock.patch("os.geteuid", return_value=0):
            os.environ.pop("MELIAE_SOCKET", None)
            self.assertEqual(meliae.stream.default_address(),
                             "/run/meliae.sock")

    def test_signal_from_another_thread_is_refused(self):
        import signal
        errors = []

        def other():
            try:
                scanner.stream_to(self.daemon.path, signal=signal.SIGUSR2)
            except ValueError as e:
                errors.append(e)

        before = threading.enumerate()
        t = threading.Thread(target=other)
        t.start()
        t.join()
        self.assertEqual(len(errors), 1)
        self.assertIn("main thread", str(errors[0]))
        self.assertNoNewThread(before)

    def test_snapshot_from_the_streamer_thread_is_refused(self):
        # A special-size callable runs in the streamer's thread, during
        # its walk: waiting for its own snapshot would never return.
        s = self.stream()
        seen = []

        class Marker:
            pass

        marker = Marker()

        def size(obj):
            try:
                s.snapshot()
            except scanner.StreamError as e:
                seen.append(e)
            return 64

        scanner.add_special_size("Marker", size, size)
        self.addCleanup(scanner.add_special_size, "Marker", None, None)
        self.assertEqual(s.snapshot(), 1)
        self.assertEqual(len(seen), 1, seen)
        del marker


if __name__ == "__main__":
    unittest.main()
