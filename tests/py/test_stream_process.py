"""Streaming across os.fork() and from a signal handler."""

import os
import signal
import time
import unittest
import warnings

from fakedaemon import ASAN_FORK_SKIP, UNDER_ASAN, StreamTestCase, wait_until
from support import scanner

WORKERS = 4


def fork_quietly():
    # 3.12+ warns that fork() in a process with threads may deadlock; the
    # streamer's at-fork hook is what makes it safe here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return os.fork()


def wait_child(pid, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status) \
                if hasattr(os, "waitstatus_to_exitcode") else status
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError("child %d did not finish in %d s"
                                 % (pid, timeout))
        time.sleep(0.02)


@unittest.skipUnless(hasattr(os, "register_at_fork"), "needs os.fork hooks")
@unittest.skipIf(UNDER_ASAN, ASAN_FORK_SKIP)
class ForkTest(StreamTestCase, unittest.TestCase):

    def test_prefork_workers_stream_with_their_own_pids(self):
        s = self.stream(label="prefork")
        self.assertEqual(s.snapshot(), 1)
        (parent_conn,) = self.daemon.wait_connections(1)
        parent_start = self.daemon.snapshots[0].header["start_time"]
        t_fork = time.time()
        pids = []
        report_r, report_w = os.pipe()
        self.addCleanup(os.close, report_r)
        for _ in range(WORKERS):
            pid = fork_quietly()
            if pid == 0:        # a worker: one snapshot, then out
                code = 1
                try:
                    # Four walks at once of a big (ASan) test process on
                    # two cores: a generous deadline.
                    if s.pid == os.getpid() and isinstance(
                            s.snapshot(timeout=120), int):
                        code = 0
                except BaseException as e:
                    os.write(report_w, ("%d: %r\n" % (os.getpid(), e))
                             .encode("utf-8", "replace")[:500])
                finally:
                    os._exit(code)
            pids.append(pid)
        os.close(report_w)
        codes = [wait_child(pid, timeout=180) for pid in pids]
        self.assertEqual(codes, [0] * WORKERS,
                         os.read(report_r, 4096).decode("utf-8", "replace"))
        snaps = self.daemon.wait_snapshots(
            WORKERS, pred=lambda x: x.header["pid"] != os.getpid())
        self.assertEqual(sorted(x.header["pid"] for x in snaps), sorted(pids))
        self.assertEqual(len({x.conn for x in snaps}), WORKERS)
        for x in snaps:
            self.assertIsNotNone(x.ack)
            self.assertEqual(x.header["label"], "prefork")
            # The child's own start, not the parent's: /proc gives it in
            # clock ticks after a boot time in whole seconds.
            self.assertLess(abs(x.header["start_time"] - t_fork), 1.5)
            self.assertGreater(x.header["start_time"], parent_start)
        self.assertNoProblems()
        # The parent's stream is intact, still on its first connection.
        self.assertEqual(s.snapshot(), WORKERS + 2)
        last = self.daemon.snapshots[-1]
        self.assertEqual(last.header["pid"], os.getpid())
        self.assertEqual(last.conn, parent_conn.number)
        self.assertNoProblems()

    def test_child_of_a_closed_streamer_streams_nothing(self):
        s = self.stream()
        s.snapshot()
        s.close()
        pid = fork_quietly()
        if pid == 0:
            code = 1
            try:
                time.sleep(0.3)
                code = 0 if s.closed and not s.connected else 2
            finally:
                os._exit(code)
        self.assertEqual(wait_child(pid), 0)
        self.assertEqual(self.daemon.nconnections, 1)


class SignalTest(StreamTestCase, unittest.TestCase):

    def test_signal_takes_a_snapshot_and_chains_to_the_old_handler(self):
        calls = []

        def previous(signum, frame):
            calls.append(signum)

        old = signal.signal(signal.SIGUSR2, previous)
        self.addCleanup(signal.signal, signal.SIGUSR2, old)
        s = self.stream(signal=signal.SIGUSR2, label="sig")
        self.assertIsNot(signal.getsignal(signal.SIGUSR2), previous)
        self.daemon.wait_connections(1)
        os.kill(os.getpid(), signal.SIGUSR2)
        (snap,) = self.daemon.wait_snapshots(1)
        self.assertEqual(snap.header["label"], "sig")
        self.assertIsNotNone(snap.ack)
        wait_until(lambda: calls, what="the old handler")
        self.assertEqual(calls, [signal.SIGUSR2])
        s.close()
        self.assertIs(signal.getsignal(signal.SIGUSR2), previous)
        self.assertNoProblems()

    def test_signal_with_default_handler_restores_the_default(self):
        old = signal.signal(signal.SIGUSR2, signal.SIG_DFL)
        self.addCleanup(signal.signal, signal.SIGUSR2, old)
        s = self.stream(signal=signal.SIGUSR2)
        self.daemon.wait_connections(1)
        for _ in range(3):
            os.kill(os.getpid(), signal.SIGUSR2)
        self.daemon.wait_snapshots(1)
        s.close()
        self.assertEqual(signal.getsignal(signal.SIGUSR2), signal.SIG_DFL)


if __name__ == "__main__":
    unittest.main()
