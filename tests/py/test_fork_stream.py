"""Fork snapshots (stream_to(fork=True)): the child reports the parent's
heap at the fork, with the parent's addresses; it runs no Python code of
the application; threads that mutate dicts meanwhile cannot break it; a
child killed mid-stream costs one failed snapshot and no half snapshot."""

import atexit
import gc
import json
import os
import signal
import sys
import tempfile
import threading
import time
import unittest
from unittest import mock

from fakedaemon import ASAN_FORK_SKIP, UNDER_ASAN, StreamTestCase, wait_until
from support import scanner

import meliae.stream

# Slack over a deadline for a loaded two-core machine.
SLACK = 2.0


class Payload:
    def __init__(self, i):
        self.i = i
        self.name = "payload-%d" % i
        self.blob = b"x" * (i % 50)


def known_heap():
    """Objects a snapshot must list, each with a distinct address."""
    items = [Payload(i) for i in range(50)]
    return {
        "items": items,
        "table": {"key-%d" % i: [i * 1.5, (i, "t%d" % i)] for i in range(50)},
        "text": "fork snapshot " * 20,
        "big": 10 ** 30,
    }


def closure(root):
    """id -> object for root and everything the dump lists under it."""
    out = {}
    stack = [root]
    while stack:
        o = stack.pop()
        if id(o) in out or isinstance(o, type):
            continue
        out[id(o)] = o
        stack.extend(scanner.get_referents(o))
    return out


def by_address(snap):
    return {d["address"]: d for d in snap.lines}


def fork_supported():
    return hasattr(os, "fork") and sys.platform.startswith("linux")


@unittest.skipUnless(fork_supported(), "fork snapshots: Linux")
@unittest.skipIf(UNDER_ASAN, ASAN_FORK_SKIP)
class ForkSnapshotTest(StreamTestCase, unittest.TestCase):

    def test_meliae_fork_0_makes_the_default_in_process(self):
        import subprocess
        code = "import meliae.stream as m; print(m._FORK_BY_DEFAULT)"
        for value, want in (("0", "False"), ("1", "True"), (None, "True")):
            env = dict(os.environ)
            env.pop("MELIAE_FORK", None)
            if value is not None:
                env["MELIAE_FORK"] = value
            out = subprocess.run([sys.executable, "-c", code], env=env,
                                 capture_output=True, text=True, check=True)
            self.assertEqual(out.stdout.strip(), want, value)

    def test_default_is_fork_on_linux_and_fork_is_a_setting(self):
        self.assertIsNone(self.stream(fork=None).fork)
        self.assertTrue(meliae.stream._FORK_BY_DEFAULT)
        self.assertIs(self.stream(fork=True).fork, True)
        self.assertIs(self.stream(fork=False).fork, False)
        with self.assertRaises(TypeError):
            scanner.stream_to(self.daemon.path, fork="yes")

    def test_fork_snapshot_matches_an_in_process_one(self):
        root = known_heap()
        objs = closure(root)
        inproc = self.stream(fork=False)
        forked = self.stream(fork=True)
        self.assertEqual(inproc.snapshot(), 1)
        self.assertEqual(forked.snapshot(), 2)
        a, f = self.daemon.wait_snapshots(2)
        self.assertNoProblems()
        self.assertEqual(f.header["pid"], os.getpid())
        la, lf = by_address(a), by_address(f)
        for addr, o in objs.items():
            # The child's addresses are the parent's: id() here.
            self.assertIn(addr, lf, "%r missing from the fork snapshot" % (o,))
            self.assertIn(addr, la)
            for key in ("type", "size", "len", "refs", "name"):
                self.assertEqual(lf[addr].get(key), la[addr].get(key),
                                 "%s of %r" % (key, o))
        self.assertEqual(lf[id(root["items"][7])]["type"], "Payload")
        # The rest of the heap is the same but for what the two snapshots
        # themselves made in between (the first one's received lines are
        # kept in one bytes object per snapshot).
        common = len(set(la) & set(lf))
        self.assertGreater(common, 0.95 * max(len(la), len(lf)),
                           (len(la), len(lf), common))
        self.assertEqual(f.trailer["objects"], len(lf))

    def test_child_runs_no_atexit_finalizer_or_python_signal_handler(self):
        fd, mark = tempfile.mkstemp(prefix="meliae-fork-")
        os.close(fd)
        self.addCleanup(os.unlink, mark)

        def touch(what):
            with open(mark, "a") as f:
                f.write("%s in %d\n" % (what, os.getpid()))

        class Finalized:
            def __del__(self):
                touch("__del__")

        keep = Finalized()
        fin = __import__("weakref").finalize(keep, touch, "weakref.finalize")
        atexit.register(touch, "atexit")
        self.addCleanup(atexit.unregister, touch)
        self.addCleanup(fin.detach)
        prev = signal.signal(signal.SIGTERM,
                             lambda *a: touch("SIGTERM handler"))
        self.addCleanup(signal.signal, signal.SIGTERM, prev)

        s = self.stream(fork=True)
        self.assertEqual(s.snapshot(), 1)
        # A child that ended by returning through Python, sys.exit or
        # os._exit after at-fork hooks would have run these.
        self.assertEqual(open(mark).read(), "")

        # A SIGTERM to the child (a process group's, say) ends it with the
        # default action: no handler of the application runs there.
        self.daemon.stall_after(10)
        s.snapshot(wait=False)
        pid = wait_until(lambda: s.child_pid, what="the child")
        wait_until(lambda: len(self.daemon.started) == 2, what="a header")
        os.kill(pid, signal.SIGTERM)
        err = wait_until(lambda: s.last_error, timeout=20, what="the end")
        self.assertIn("signal %d" % signal.SIGTERM, str(err))
        self.daemon.resume_reading()
        self.assertEqual(open(mark).read(), "")
        self.assertIsInstance(s.snapshot(), int)
        del keep

    def test_killed_child_fails_one_snapshot_and_the_next_one_works(self):
        # Generous: the fake daemon parses every line in Python, slowly on
        # a loaded machine.
        s = self.stream(fork=True, timeout=120)
        self.assertEqual(s.snapshot(), 1)
        self.daemon.stall_after(100)
        result = []

        def take():
            try:
                result.append(s.snapshot())
            except scanner.StreamError as e:
                result.append(e)

        t = threading.Thread(target=take)
        t.start()
        pid = wait_until(lambda: s.child_pid, what="the child")
        # Mid-stream: the daemon has 100 lines and stopped reading, so the
        # child is blocked in a send.  (Killed as soon as the header came,
        # the child could die before its first send of object lines.)
        wait_until(self.daemon.stalled, what="100 lines, then the stall")
        os.kill(pid, signal.SIGKILL)
        t.join(120)
        self.assertFalse(t.is_alive())
        (err,) = result
        self.assertIsInstance(err, scanner.StreamError)
        self.assertIsInstance(err.__cause__, ChildProcessError)
        self.assertIn("signal %d" % signal.SIGKILL, str(err))
        self.assertIsNone(s.child_pid)
        # The connection was dropped: the daemon sees it end mid-snapshot.
        self.daemon.resume_reading()
        cut = self.daemon.wait_snapshots(2)[1]
        self.assertIsNone(cut.ack)
        self.assertGreaterEqual(cut.nlines, 100)
        self.assertIn("connection closed mid-snapshot", cut.problems)
        # The parent is unharmed: the next snapshot goes through, on a new
        # connection.
        self.assertEqual(s.snapshot(), 2)
        self.assertEqual(self.daemon.nconnections, 2)
        self.assertEqual(self.daemon.snapshots[-1].problems, [])

    def test_child_that_fails_after_sending_drops_the_connection(self):
        # A child that failed (ScanError, MemoryError) may have sent the
        # header and object lines: the next snapshot must not follow them
        # on the same connection.
        s = self.stream(fork=True, timeout=60)
        self.assertEqual(s.snapshot(), 1)
        real = meliae.stream._scanner.wait_child

        def failing(pid, status_fd, ms):
            real(pid, status_fd, ms)
            raise scanner.ScanError("the walk failed")

        with mock.patch.object(meliae.stream._scanner, "wait_child",
                               failing):
            with self.assertRaises(scanner.StreamError) as cm:
                s.snapshot()
        self.assertIsInstance(cm.exception.__cause__.__cause__,
                              scanner.ScanError)
        self.assertIn("the walk failed", str(cm.exception))
        self.assertIsInstance(s.snapshot(), int)
        self.assertEqual(self.daemon.nconnections, 2)
        self.assertEqual(self.daemon.snapshots[-1].problems, [])

    def test_stalled_daemon_times_out_and_the_child_is_killed(self):
        s = self.stream(fork=True, timeout=60)
        self.assertEqual(s.snapshot(), 1)
        self.daemon.stall_after(10)
        t0 = time.monotonic()
        with self.assertRaises(scanner.StreamError) as cm:
            s.snapshot(timeout=2.0)
        self.assertLess(time.monotonic() - t0, 2.0 + SLACK)
        wait_until(lambda: s.child_pid is None, what="the child reaped")
        self.daemon.resume_reading()
        self.assertEqual(s.snapshot(), 2, cm.exception)

    def test_close_ends_a_child_streaming_to_a_stalled_daemon(self):
        s = self.stream(fork=True, timeout=60)
        self.daemon.wait_connections(1)
        self.daemon.stall_after(10)
        s.snapshot(wait=False)
        pid = wait_until(lambda: s.child_pid, what="the child")
        t0 = time.monotonic()
        s.close()
        self.assertLess(time.monotonic() - t0, SLACK)
        self.assertFalse(s._thread.is_alive())
        with self.assertRaises(ProcessLookupError):
            os.kill(pid, 0)     # gone and reaped

    def test_snapshots_while_threads_mutate_dicts(self):
        stop = threading.Event()
        shared = [{} for _ in range(4)]
        counts = [0] * 6
        lock = threading.Lock()

        def mutate(k):
            d = shared[k]
            i = 0
            while not stop.is_set():
                d["k%d" % (i % 5000)] = [i, str(i)]
                if i % 3 == 0:
                    d.pop("k%d" % ((i * 7) % 5000), None)
                if i % 10000 == 0:
                    d.clear()       # shrinks: tables are freed and remade
                i += 1
                counts[k] = i

        def locker():
            # Holds a lock and the logging lock on and off: a child that
            # took either would hang.
            import logging
            while not stop.is_set():
                with lock:
                    logging.getLogger("meliae.test").debug("tick")
                    counts[4] += 1

        def allocate():
            while not stop.is_set():
                junk = [bytearray(4096) for _ in range(100)]
                counts[5] += len(junk)

        threads = [threading.Thread(target=mutate, args=(k,))
                   for k in range(4)]
        threads += [threading.Thread(target=locker),
                    threading.Thread(target=allocate)]
        for t in threads:
            t.start()
        try:
            s = self.stream(fork=True, timeout=120)
            t0 = time.monotonic()
            ids = [s.snapshot() for _ in range(3)]
            elapsed = time.monotonic() - t0
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertEqual(ids, [1, 2, 3])
        # Each within its deadline, so no deadlock; slow only under ASan
        # with six busy threads.
        self.assertLess(elapsed, 3 * 120)
        self.assertNoProblems()
        self.assertTrue(all(counts), counts)
        for snap in self.daemon.snapshots:
            self.assertEqual(snap.header["pid"], os.getpid())

    def test_special_size_callable_forks_not_but_auto_falls_back(self):
        class Sized:
            pass

        obj = Sized()
        scanner.add_special_size("Sized", lambda o: 1234, lambda o: 1234)
        self.addCleanup(scanner.add_special_size, "Sized", None, None)
        forced = self.stream(fork=True)
        with self.assertRaises(scanner.StreamError) as cm:
            forced.snapshot()
        self.assertIn("special-size callable", str(cm.exception))
        auto = self.stream(fork=None)
        self.assertEqual(auto.snapshot(), 1)
        snap = self.daemon.wait_snapshots(1)[0]
        self.assertEqual(by_address(snap)[id(obj)]["size"], 1234)
        # Without a callable, fork=True works again.
        scanner.add_special_size("Sized", None, None)
        self.assertEqual(forced.snapshot(), 2)


def _find_daemon():
    """meliae-monitord and store_tool of the build the tests import
    meliae from (<build>/scanner/meliae), or $MELIAE_MONITORD."""
    import meliae
    build = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(meliae.__file__))))
    exe = os.environ.get("MELIAE_MONITORD") or os.path.join(
        build, "monitord", "meliae-monitord")
    tool = os.environ.get("MELIAE_STORE_TOOL") or os.path.join(
        build, "tests", "store_tool")
    if os.access(exe, os.X_OK) and os.access(tool, os.X_OK):
        return exe, tool
    return None, None


MONITORD, STORE_TOOL = _find_daemon()


@unittest.skipUnless(fork_supported() and MONITORD, "needs meliae-monitord")
@unittest.skipIf(UNDER_ASAN, ASAN_FORK_SKIP)
class RealDaemonKillTest(unittest.TestCase):
    """kill -9 of the child mid-stream against the real daemon: the store
    holds no part of that snapshot."""

    def setUp(self):
        import subprocess
        self.tmp = tempfile.mkdtemp(prefix="mlfork-")
        self.store = os.path.join(self.tmp, "store")
        self.sock = os.path.join(self.tmp, "d.sock")
        env = dict(os.environ)
        env.pop("LD_PRELOAD", None)     # ASan's: ours, not the daemon's
        env.pop("MELIAE_SOCKET", None)
        self.log = open(os.path.join(self.tmp, "log"), "w+")
        self.d = subprocess.Popen(
            [MONITORD, "--store", self.store, "--socket", self.sock,
             "--foreground", "--log-level", "info"],
            stdout=self.log, stderr=self.log, env=env)
        wait_until(lambda: os.path.exists(self.sock), 20, what="the daemon")

    def tearDown(self):
        import shutil
        self.d.terminate()
        self.d.wait(60)
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def store_list(self):
        import subprocess
        env = dict(os.environ)
        env.pop("LD_PRELOAD", None)
        out = subprocess.run([STORE_TOOL, "list", self.store], env=env,
                             capture_output=True, text=True, check=True,
                             timeout=120).stdout
        return [json.loads(ln) for ln in out.splitlines() if ln.strip()]

    def test_kill_9_mid_stream_stores_nothing_and_the_next_works(self):
        # Ballast, so that the child streams long enough to be caught.
        ballast = [("b%d" % i, i * 1.5) for i in range(200000)]
        s = scanner.stream_to(self.sock, fork=True, timeout=120)
        self.addCleanup(s.close)
        self.assertIsInstance(s.snapshot(), int)
        first = self.store_list()
        self.assertEqual(len(first), 1)
        killed = None
        for _ in range(5):
            result = []

            def take():
                try:
                    result.append(s.snapshot())
                except scanner.StreamError as e:
                    result.append(e)

            t = threading.Thread(target=take)
            t.start()
            pid = wait_until(lambda: s.child_pid or not t.is_alive(),
                             interval=0.0005, what="the child")
            if pid is not True:
                time.sleep(0.05)        # mid-stream: header sent, walking
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            t.join(120)
            if isinstance(result[0], scanner.StreamError):
                killed = result[0]
                break
        self.assertIsNotNone(killed, "the child always finished first")
        self.assertIsInstance(killed.__cause__, ChildProcessError)
        # The daemon dropped the partial snapshot: the store holds the
        # acked ones only, each complete.
        snaps = self.store_list()
        self.assertEqual(self.d.poll(), None)
        ack = s.snapshot()
        after = self.store_list()
        self.assertEqual(len(after), len(snaps) + 1)
        self.assertEqual(after[-1]["id"], ack)
        for x in after:
            self.assertGreater(x["objects"], len(ballast))
        del ballast


if __name__ == "__main__":
    unittest.main()
