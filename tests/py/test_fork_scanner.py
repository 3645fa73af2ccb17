"""dump_all_objects(path, fork=True): the dump a child made by fork()
writes is the heap of the parent at the call, with the parent's addresses,
put in place only when complete."""

import gc
import gzip
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import unittest

from support import scanner


def lines(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        return [json.loads(ln) for ln in f]


class Thing:
    def __init__(self, i):
        self.i = i
        self.label = "thing-%d" % i


@unittest.skipUnless(hasattr(os, "fork") and sys.platform.startswith("linux"),
                     "fork dumps: Linux")
class ForkDumpTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="meliae-forkdump-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def test_fork_dump_lists_the_parents_objects_at_their_ids(self):
        things = [Thing(i) for i in range(100)]
        table = {t.label: t for t in things}
        inproc = self.path("inproc.json")
        scanner.dump_all_objects(inproc)
        h = scanner.dump_all_objects(self.path("fork.json"), fork=True)
        self.assertIsInstance(h, scanner.ForkedDump)
        self.assertNotEqual(h.pid, os.getpid())
        objects, nbytes = h.wait(timeout=120)
        self.assertEqual(h.wait(), (objects, nbytes))     # same again
        a = {d["address"]: d for d in lines(inproc)}
        f = {d["address"]: d for d in lines(self.path("fork.json"))}
        self.assertEqual(objects, len(f))
        self.assertEqual(nbytes, sum(d["size"] for d in f.values()))
        for o in things + [table] + [t.label for t in things]:
            self.assertIn(id(o), f)
            for key in ("type", "size", "len", "value", "refs"):
                self.assertEqual(f[id(o)].get(key), a[id(o)].get(key), key)
        self.assertEqual(f[id(things[3])]["type"], "Thing")

    def test_fork_dump_sees_the_heap_of_the_call_not_later_changes(self):
        box = ["before"]
        h = scanner.dump_all_objects(self.path("d.json.gz"), fork=True)
        later = "after-%d" % os.getpid()
        box.append(later)
        h.wait(timeout=120)
        f = {d["address"]: d for d in lines(self.path("d.json.gz"))}
        self.assertEqual(f[id(box)]["len"], 1)
        self.assertEqual(len(f[id(box)]["refs"]), 1)
        self.assertNotIn(id(later), f)

    def test_killed_dump_child_leaves_the_old_file_and_no_temporary(self):
        target = self.path("d.json")
        with open(target, "w") as f:
            f.write("old\n")
        # Enough heap that the child is still writing when killed.
        ballast = [str(i) for i in range(300000)]
        h = scanner.dump_all_objects(target, fork=True)
        os.kill(h.pid, signal.SIGKILL)
        with self.assertRaises(ChildProcessError) as cm:
            h.wait(timeout=120)
        self.assertIn("signal %d" % signal.SIGKILL, str(cm.exception))
        with self.assertRaises(ChildProcessError):
            h.wait()
        with open(target) as f:
            self.assertEqual(f.read(), "old\n")
        self.assertEqual(os.listdir(self.dir), ["d.json"])
        del ballast

    def test_wait_timeout_kills_the_child(self):
        fifo = self.path("fifo")
        os.mkfifo(fifo)
        # A FIFO with a reader that never reads: the child blocks.
        r = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, r)
        h = scanner.dump_all_objects(fifo, fork=True)
        t0 = time.monotonic()
        with self.assertRaises(TimeoutError):
            h.wait(timeout=0.5)
        self.assertLess(time.monotonic() - t0, 5)
        with self.assertRaises(ProcessLookupError):
            os.kill(h.pid, 0)

    def test_dropped_handle_reaps_the_child_and_closes_its_pipe(self):
        path = self.path("dropped.json")
        h = scanner.dump_all_objects(path, fork=True)
        pid, fd = h.pid, h._status_fd
        pipe = os.readlink("/proc/self/fd/%d" % fd)
        del h
        gc.collect()

        def gone():
            try:
                if os.readlink("/proc/self/fd/%d" % fd) == pipe:
                    return False
            except OSError:
                pass
            return not os.path.exists("/proc/%d/stat" % pid)

        deadline = time.monotonic() + 120
        while not gone() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(gone(), "fd %d or zombie %d left" % (fd, pid))
        with self.assertRaises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        self.assertTrue(os.path.exists(path))   # the dump went on

    def test_fork_needs_a_path_and_no_special_size_callable(self):
        with self.assertRaises(TypeError):
            scanner.dump_all_objects(lambda b: None, fork=True)
        scanner.add_special_size("Thing", lambda o: 1, lambda o: 1)
        self.addCleanup(scanner.add_special_size, "Thing", None, None)
        with self.assertRaises(scanner.ScanError):
            scanner.dump_all_objects(self.path("x.json"), fork=True)
        self.assertEqual(os.listdir(self.dir), [])


if __name__ == "__main__":
    unittest.main()
