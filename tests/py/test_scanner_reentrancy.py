"""Re-entrancy, the collector's state, and the audit event."""

import gc
import os
import sys
import tempfile
import unittest

import support
from support import scanner

# Audit hooks cannot be removed: install one for the whole process, and
# let it act only while a test has set ``AUDIT["on"]``.
AUDIT = {"on": False, "events": [], "raise": None}


def _audit_hook(event, args):
    if not AUDIT["on"] or not event.startswith("meliae."):
        return
    AUDIT["events"].append((event, args))
    if AUDIT["raise"] is not None:
        raise AUDIT["raise"]


if not getattr(sys, "_meliae_test_audit_hook", False):
    sys.addaudithook(_audit_hook)
    sys._meliae_test_audit_hook = True

REENTRY_MESSAGE = r"(?i)(in progress|already|re-?entr|another dump|running)"


def small_object():
    return {"r-" + os.urandom(4).hex(): [1.5, 10 ** 30]}


class ReentrancyTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="meliae-test-")
        self.addCleanup(self.tmp.cleanup)

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def test_scan_error_is_a_runtime_error(self):
        self.assertTrue(issubclass(scanner.ScanError, RuntimeError))

    def test_dump_inside_callable_target_raises_scan_error(self):
        inner_dumps = {
            "dump_all_objects": lambda: scanner.dump_all_objects(
                self.path("inner-all.json")),
            "dump_gc_objects": lambda: scanner.dump_gc_objects(
                self.path("inner-gc.json")),
            "dump_all_referenced": lambda: scanner.dump_all_referenced(
                self.path("inner-ref.json"), [1, 2]),
        }
        obj = small_object()
        for name, inner in inner_dumps.items():
            with self.subTest(name):
                errors = []
                chunks = []

                def write(chunk):
                    if not errors:
                        try:
                            inner()
                        except Exception as e:     # recorded, checked below
                            errors.append(e)
                        else:
                            errors.append(None)
                    chunks.append(chunk)

                scanner.dump_all_referenced(write, obj)
                self.assertEqual(len(errors), 1)
                self.assertIsInstance(errors[0], scanner.ScanError)
                self.assertRegex(str(errors[0]), REENTRY_MESSAGE)
                # the outer dump completed, whole and well-formed
                lines = support.parse_dump(b"".join(chunks))
                self.assertEqual(lines[0]["address"], id(obj))
                self.assertEqual(len(lines),
                                 scanner.get_recursive_size(obj)[0])
                # no file was left by the refused inner dump
                self.assertEqual(os.listdir(self.tmp.name), [])

    def test_scan_error_raised_by_callable_target_ends_outer_dump_cleanly(self):
        def write(chunk):
            scanner.dump_all_objects(self.path("inner.json"))

        gc_was = gc.isenabled()
        with self.assertRaises(scanner.ScanError):
            scanner.dump_all_objects(write)
        self.assertEqual(gc.isenabled(), gc_was)
        # the in-progress flag was cleared: a new dump works
        p = self.path("after.json")
        scanner.dump_all_referenced(p, [1, 2, 3])
        self.assertEqual(len(support.read_dump(p)), 4)

    def test_dump_from_finaliser_during_dump_raises_scan_error(self):
        caught = []

        class DumpsOnDel:
            def __del__(this):
                try:
                    scanner.dump_all_objects(self.path("from-del.json"))
                except Exception as e:      # recorded, checked below
                    caught.append(e)
                else:
                    caught.append(None)

        victim = [DumpsOnDel()]
        chunks = []

        def write(chunk):
            if victim:
                victim.pop()        # runs __del__ now, inside the dump
            chunks.append(chunk)

        obj = small_object()
        scanner.dump_all_referenced(write, obj)
        self.assertEqual(len(caught), 1)
        self.assertIsInstance(caught[0], scanner.ScanError)
        self.assertRegex(str(caught[0]), REENTRY_MESSAGE)
        self.assertFalse(os.path.exists(self.path("from-del.json")))
        self.assertEqual(support.parse_dump(b"".join(chunks))[0]["address"],
                         id(obj))

    def test_queries_inside_callable_target_do_not_crash(self):
        obj = small_object()
        results = []

        def write(chunk):
            if not results:
                for query in (lambda: scanner.size_of(obj),
                              lambda: scanner.get_referents(obj),
                              lambda: scanner.get_recursive_size(obj)):
                    try:
                        results.append(query())
                    except scanner.ScanError as e:
                        results.append(e)

        scanner.dump_all_referenced(write, obj)
        self.assertEqual(len(results), 3)
        for r, want in zip(results, (scanner.size_of(obj),
                                     scanner.get_referents(obj),
                                     scanner.get_recursive_size(obj))):
            if not isinstance(r, scanner.ScanError):
                self.assertEqual(r, want)

    def test_dump_from_gc_callback_outside_a_dump_works(self):
        out = []
        p = self.path("from-gc-callback.json")

        def callback(phase, info):
            if phase == "start" and not out:
                try:
                    scanner.dump_gc_objects(p)
                except Exception as e:      # recorded, checked below
                    out.append(e)
                else:
                    out.append(None)

        gc.callbacks.append(callback)
        try:
            gc.collect()
        finally:
            gc.callbacks.remove(callback)
        self.assertEqual(out, [None])
        self.assertGreater(len(support.read_dump(p)), 1000)

    def test_collection_inside_callable_target_does_not_break_the_dump(self):
        garbage = []
        for i in range(2000):
            a = [str(i) * 3]
            a.append(a)
            garbage.append(a)
        holder = [garbage]
        chunks = []

        def write(chunk):
            if holder:
                holder.pop()
                del garbage[:]
                gc.collect()
            chunks.append(chunk)

        del a
        scanner.dump_all_objects(write)
        lines = support.parse_dump(b"".join(chunks))
        self.assertGreater(len(lines), 1000)


class GcStateTest(unittest.TestCase):

    def setUp(self):
        self.gc_was = gc.isenabled()
        self.addCleanup(lambda: gc.enable() if self.gc_was else gc.disable())
        self.tmp = tempfile.TemporaryDirectory(prefix="meliae-test-")
        self.addCleanup(self.tmp.cleanup)
        self.p = os.path.join(self.tmp.name, "out.json")

    def dumps(self):
        return [lambda: scanner.dump_all_objects(self.p),
                lambda: scanner.dump_gc_objects(self.p),
                lambda: scanner.dump_all_referenced(self.p, [1]),
                lambda: scanner.get_recursive_size([1]),
                lambda: scanner.dump_all_objects(lambda chunk: None)]

    def test_dump_keeps_gc_enabled(self):
        gc.enable()
        for dump in self.dumps():
            dump()
            self.assertTrue(gc.isenabled())

    def test_dump_keeps_gc_disabled(self):
        gc.disable()
        for dump in self.dumps():
            dump()
            self.assertFalse(gc.isenabled())

    def test_failed_dump_keeps_gc_state(self):
        def failing(chunk):
            raise ValueError("sink failed")
        for enabled in (True, False):
            with self.subTest(enabled=enabled):
                gc.enable() if enabled else gc.disable()
                with self.assertRaises(ValueError):
                    scanner.dump_all_objects(failing)
                self.assertEqual(gc.isenabled(), enabled)
                if os.path.exists("/dev/full"):
                    with self.assertRaises(OSError):
                        scanner.dump_gc_objects("/dev/full")
                    self.assertEqual(gc.isenabled(), enabled)


class AuditTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="meliae-test-")
        self.addCleanup(self.tmp.cleanup)
        AUDIT["events"] = []
        AUDIT["raise"] = None
        AUDIT["on"] = True
        self.addCleanup(AUDIT.update, {"on": False, "raise": None})

    def test_audit_event_is_raised_for_each_dump_with_its_target(self):
        p = os.path.join(self.tmp.name, "out.json")
        sink = []
        calls = [(scanner.dump_all_objects, (p,)),
                 (scanner.dump_gc_objects, (p,)),
                 (scanner.dump_all_referenced, (p, [1])),
                 (scanner.dump_all_objects, (sink.append,))]
        for func, args in calls:
            func(*args)
        events = [(e, a) for e, a in AUDIT["events"]
                  if e == "meliae.scanner.dump"]
        self.assertEqual(len(events), 4, AUDIT["events"])
        for (event, args), (func, call_args) in zip(events, calls):
            self.assertIsInstance(args, tuple)
            self.assertEqual(len(args), 1)
            self.assertIs(args[0], call_args[0])

    def test_audit_hook_raising_stops_dump_before_anything_is_written(self):
        p = os.path.join(self.tmp.name, "refused.json")
        AUDIT["raise"] = PermissionError("dumps are not allowed here")
        with self.assertRaises(PermissionError):
            scanner.dump_all_objects(p)
        sink = []
        with self.assertRaises(PermissionError):
            scanner.dump_all_referenced(sink.append, [1])
        AUDIT["raise"] = None
        self.assertFalse(os.path.exists(p))
        self.assertEqual(sink, [])
        # and the refusal left no dump "in progress"
        scanner.dump_all_referenced(sink.append, [1])
        self.assertTrue(sink)


if __name__ == "__main__":
    unittest.main()
