"""Where a dump can go: paths, file objects, callables, gzip; and errors."""

import errno
import gc
import gzip
import io
import json
import os
import pathlib
import stat
import tempfile
import unittest

import support
from support import scanner


def small_object(token):
    """A closure of a few atomic objects: a deterministic, tiny dump."""
    return {"t-" + token: [1.5, 10 ** 30, b"bytes-" + token.encode()],
            "u-" + token: ("tuple", None)}


class TargetsTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="meliae-test-")
        self.addCleanup(self.tmp.cleanup)
        self.token = os.urandom(6).hex()
        self.obj = small_object(self.token)

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def reference_bytes(self):
        """dump_all_referenced(self.obj) written to a fresh str path."""
        p = self.path("reference-%s.json" % os.urandom(4).hex())
        scanner.dump_all_referenced(p, self.obj)
        with open(p, "rb") as f:
            data = f.read()
        os.unlink(p)
        self.assertGreater(len(data), 100)
        return data

    # -- paths ---------------------------------------------------------------

    def test_dump_to_str_path_writes_json_lines(self):
        p = self.path("out.json")
        scanner.dump_all_referenced(p, self.obj)
        lines = support.read_dump(p)
        self.assertEqual(lines[0]["address"], id(self.obj))
        self.assertEqual(len(lines), scanner.get_recursive_size(self.obj)[0])
        self.assertEqual(os.listdir(self.tmp.name), ["out.json"])

    def test_dump_to_pathlib_path(self):
        p = pathlib.Path(self.tmp.name) / "out.json"
        scanner.dump_all_referenced(p, self.obj)
        with open(p, "rb") as f:
            self.assertEqual(f.read(), self.reference_bytes())

    def test_dump_all_objects_to_pathlib_path(self):
        p = pathlib.Path(self.tmp.name) / "all.json"
        scanner.dump_all_objects(p)
        lines = support.read_dump(p)
        self.assertGreater(len(lines), 1000)

    def test_dump_replaces_existing_regular_file(self):
        p = self.path("old.json")
        with open(p, "wb") as f:
            f.write(b"X" * 200000)
        scanner.dump_all_referenced(p, self.obj)
        with open(p, "rb") as f:
            data = f.read()
        self.assertNotIn(b"XXXX", data)
        self.assertEqual(data, self.reference_bytes())
        self.assertEqual(os.listdir(self.tmp.name), ["old.json"])

    def test_new_dump_file_is_created_with_mode_0600(self):
        p = self.path("new.json")
        old = os.umask(0)
        try:
            scanner.dump_all_referenced(p, self.obj)
        finally:
            os.umask(old)
        self.assertEqual(stat.S_IMODE(os.stat(p).st_mode), 0o600)

    def test_symlink_at_final_component_is_refused(self):
        real = self.path("precious.txt")
        with open(real, "wb") as f:
            f.write(b"precious")
        link = self.path("link.json")
        os.symlink(real, link)
        for dump in (lambda t: scanner.dump_all_objects(t),
                     lambda t: scanner.dump_gc_objects(t),
                     lambda t: scanner.dump_all_referenced(t, self.obj)):
            with self.assertRaises(OSError) as cm:
                dump(link)
            self.assertEqual(cm.exception.errno, errno.ELOOP)
        with open(real, "rb") as f:
            self.assertEqual(f.read(), b"precious")
        self.assertTrue(os.path.islink(link))

    def test_dangling_symlink_at_final_component_is_refused(self):
        planted = self.path("planted-target.json")
        link = self.path("link.json")
        os.symlink(planted, link)
        with self.assertRaises(OSError) as cm:
            scanner.dump_all_referenced(link, self.obj)
        self.assertEqual(cm.exception.errno, errno.ELOOP)
        self.assertFalse(os.path.lexists(planted))

    def test_symlinked_directory_above_the_file_is_followed(self):
        real_dir = self.path("real-dir")
        os.mkdir(real_dir)
        os.symlink(real_dir, self.path("dir-link"))
        scanner.dump_all_referenced(
            os.path.join(self.path("dir-link"), "out.json"), self.obj)
        with open(os.path.join(real_dir, "out.json"), "rb") as f:
            self.assertEqual(f.read(), self.reference_bytes())

    def test_gz_path_is_written_gzip_compressed(self):
        p = self.path("out.json.gz")
        scanner.dump_all_referenced(p, self.obj)
        with open(p, "rb") as f:
            self.assertEqual(f.read(2), b"\x1f\x8b")
        with gzip.open(p, "rb") as f:
            self.assertEqual(f.read(), self.reference_bytes())

    def test_dump_all_objects_to_gz_path_is_readable_by_gzip(self):
        p = self.path("all.json.gz")
        scanner.dump_all_objects(p)
        lines = support.read_dump(p)
        self.assertGreater(len(lines), 1000)
        self.assertEqual(support.duplicate_addresses(lines), set())

    # -- file objects and callables -----------------------------------------

    def test_dump_to_binary_file_object(self):
        p = self.path("fileobj.json")
        with open(p, "wb") as f:
            scanner.dump_all_referenced(f, self.obj)
        with open(p, "rb") as f:
            self.assertEqual(f.read(), self.reference_bytes())

    def test_dump_to_file_object_leaves_it_open(self):
        p = self.path("fileobj.json")
        with open(p, "wb") as f:
            scanner.dump_all_referenced(f, self.obj)
            os.fstat(f.fileno())       # still a valid descriptor
            f.write(b"")
        self.assertTrue(f.closed)

    def test_dump_to_bytesio_write_callable(self):
        bio = io.BytesIO()
        scanner.dump_all_referenced(bio.write, self.obj)
        self.assertEqual(bio.getvalue(), self.reference_bytes())

    def test_dump_to_bytesio_object_is_written_or_refused_cleanly(self):
        bio = io.BytesIO()
        try:
            scanner.dump_all_referenced(bio, self.obj)
        except (TypeError, ValueError, OSError):
            self.assertEqual(bio.getvalue(), b"")
        else:
            self.assertEqual(bio.getvalue(), self.reference_bytes())

    def test_callable_target_receives_every_byte_as_bytes_chunks(self):
        chunks = []
        scanner.dump_all_referenced(chunks.append, self.obj)
        self.assertGreaterEqual(len(chunks), 1)
        for c in chunks:
            self.assertIs(type(c), bytes)
        self.assertEqual(b"".join(chunks), self.reference_bytes())

    def test_dump_all_objects_to_callable_matches_file_dump_in_size(self):
        chunks = []
        scanner.dump_all_objects(chunks.append)
        data = b"".join(chunks)
        del chunks[:]
        with tempfile.TemporaryDirectory(prefix="meliae-test-") as d:
            p = os.path.join(d, "all.json")
            scanner.dump_all_objects(p)
            with open(p, "rb") as f:
                file_count = f.read().count(b"\n")
        lines = support.parse_dump(data)      # parsed only now: the two
        self.assertGreater(len(lines), 1000)  # dumps saw the same heap
        self.assertLess(abs(len(lines) - file_count), 0.2 * file_count)
        addrs = {d["address"] for d in lines}
        self.assertIn(id(self.obj), addrs)
        self.assertIn(id(chunks), addrs)

    def test_dump_gc_objects_to_callable_is_json_lines(self):
        chunks = []
        scanner.dump_gc_objects(chunks.append)
        lines = support.parse_dump(b"".join(chunks))
        self.assertIn(id(self.obj[next(iter(self.obj))]),
                      {d["address"] for d in lines})

    def test_exception_from_callable_target_propagates_and_scanner_recovers(self):
        class Boom(Exception):
            pass

        def write(chunk):
            raise Boom("sink failed")

        gc_was = gc.isenabled()
        with self.assertRaises(Boom):
            scanner.dump_all_objects(write)
        self.assertEqual(gc.isenabled(), gc_was)
        chunks = []
        scanner.dump_all_referenced(chunks.append, self.obj)
        self.assertEqual(b"".join(chunks), self.reference_bytes())

    # -- errors --------------------------------------------------------------

    @unittest.skipUnless(os.path.exists("/dev/full"), "no /dev/full")
    def test_write_error_to_dev_full_path_raises_enospc(self):
        with self.assertRaises(OSError) as cm:
            scanner.dump_all_objects("/dev/full")
        self.assertEqual(cm.exception.errno, errno.ENOSPC)
        self.assertTrue(stat.S_ISCHR(os.stat("/dev/full").st_mode))

    @unittest.skipUnless(os.path.exists("/dev/full"), "no /dev/full")
    def test_write_error_to_dev_full_file_object_raises_enospc(self):
        with open("/dev/full", "wb") as f:
            with self.assertRaises(OSError) as cm:
                scanner.dump_all_referenced(f, self.obj)
        self.assertEqual(cm.exception.errno, errno.ENOSPC)

    @unittest.skipUnless(os.path.exists("/dev/full"), "no /dev/full")
    def test_scanner_recovers_after_write_error(self):
        with self.assertRaises(OSError):
            scanner.dump_gc_objects("/dev/full")
        chunks = []
        scanner.dump_all_referenced(chunks.append, self.obj)
        self.assertEqual(b"".join(chunks), self.reference_bytes())

    def test_directory_path_raises_oserror(self):
        d = self.path("a-directory")
        os.mkdir(d)
        with self.assertRaises(OSError):
            scanner.dump_all_objects(d)
        self.assertTrue(os.path.isdir(d))
        self.assertEqual(os.listdir(d), [])

    def test_missing_parent_directory_raises_enoent(self):
        with self.assertRaises(OSError) as cm:
            scanner.dump_all_referenced(self.path("no/such/dir.json"),
                                        self.obj)
        self.assertEqual(cm.exception.errno, errno.ENOENT)

    def test_unsupported_target_raises_type_error(self):
        for target in (object(), None, 3.5):
            with self.subTest(type(target).__name__):
                with self.assertRaises(TypeError):
                    scanner.dump_all_objects(target)
                with self.assertRaises(TypeError):
                    scanner.dump_all_referenced(target, self.obj)
        self.assertEqual(os.listdir(self.tmp.name), [])


if __name__ == "__main__":
    unittest.main()


STALL_PRELUDE = r"""
import json, os, signal, sys, threading, time
from meliae import scanner
r, w = os.pipe()            # nobody reads r: the pipe fills and stays full
target = os.fdopen(w, "wb")
ticks = []

def ticker():
    for _ in range(10):
        ticks.append(1)
        time.sleep(0.05)

def run(**kw):
    t = threading.Thread(target=ticker)
    t.start()
    try:
        scanner.dump_all_objects(target, **kw)
        out = "finished"
    except BaseException as e:
        out = "%s: %s" % (type(e).__name__, e)
    t.join()
    print(json.dumps({"out": out, "ticks": len(ticks)}))
"""


class StalledReaderTest(unittest.TestCase):
    """Issue 22: a dump into a pipe whose reader never reads held the GIL
    in a blocking write for good; SIGALRM and SIGTERM handlers, watchdog
    threads and timeouts could not stop it.  Each case runs in a child:
    one that still hangs is killed and fails, the suite goes on."""

    def run_stalled(self, code, line=-1):
        p = support.run_child(STALL_PRELUDE + code, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace"))
        return json.loads(p.stdout.decode().splitlines()[line])

    def test_a_sigalrm_handler_stops_the_dump_and_threads_run(self):
        r = self.run_stalled(r"""
class Alarm(Exception):
    pass
def on_alarm(*a):
    raise Alarm("stalled")
signal.signal(signal.SIGALRM, on_alarm)
signal.setitimer(signal.ITIMER_REAL, 0.3)
run()
""")
        self.assertEqual(r["out"], "Alarm: stalled")
        self.assertEqual(r["ticks"], 10)     # the GIL was not held

    def test_a_watchdog_threads_sigterm_stops_the_dump(self):
        r = self.run_stalled(r"""
def on_term(*a):
    raise SystemExit("terminated")
signal.signal(signal.SIGTERM, on_term)
def watchdog():
    time.sleep(0.3)
    os.kill(os.getpid(), signal.SIGTERM)
threading.Thread(target=watchdog, daemon=True).start()
run()
""")
        self.assertEqual(r["out"], "SystemExit: terminated")

    def test_a_timeout_raises_timeout_error(self):
        r = self.run_stalled("run(timeout=0.3)\n")
        self.assertTrue(r["out"].startswith("TimeoutError: dump: the reader "
                                            "did not take the dump in time"),
                        r)
        with self.assertRaises(ValueError):
            scanner.dump_all_objects(io.BytesIO(), timeout=-1)

    def test_a_fifo_path_with_a_timeout_raises_and_leaves_nothing(self):
        code = r"""
import tempfile
d = tempfile.mkdtemp()
fifo = os.path.join(d, "fifo")
os.mkfifo(fifo)
keep = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)   # a reader that never reads
target = fifo
run(timeout=0.3)
print(json.dumps(sorted(os.listdir(d))))
"""
        r = self.run_stalled(code, line=-2)
        self.assertTrue(r["out"].startswith("TimeoutError"), r)
        self.assertEqual(self.run_stalled(code), ["fifo"])

    def test_a_sigalrm_storm_with_a_slow_reader_loses_no_byte(self):
        r = self.run_stalled(r"""
alarms = []
signal.signal(signal.SIGALRM, lambda *a: alarms.append(1))
signal.setitimer(signal.ITIMER_REAL, 0.002, 0.002)
chunks = []
def reader():
    while True:
        b = os.read(r, 4096)
        if not b:
            break
        chunks.append(b)
        time.sleep(0.0005)
rt = threading.Thread(target=reader)
rt.start()
run(timeout=120)
signal.setitimer(signal.ITIMER_REAL, 0)
target.close()
rt.join()
lines = b"".join(chunks).splitlines()
assert all(json.loads(l)["address"] for l in lines)
assert len(alarms) > 10, len(alarms)
print(json.dumps({"out": "lines", "ticks": len(lines)}))
""")
        self.assertEqual(r["out"], "lines")
        self.assertGreater(r["ticks"], 1000)

    def test_a_pipe_with_a_reader_gets_the_whole_dump(self):
        r = self.run_stalled(r"""
chunks = []
def reader():
    while True:
        b = os.read(r, 1 << 16)
        if not b:
            break
        chunks.append(b)
rt = threading.Thread(target=reader)
rt.start()
run(timeout=60)
target.close()
rt.join()
lines = b"".join(chunks).splitlines()
assert all(json.loads(l)["address"] for l in lines)
print(json.dumps({"out": "lines", "ticks": len(lines)}))
""")
        self.assertEqual(r["out"], "lines")
        self.assertGreater(r["ticks"], 1000)
