"""The bytes explained: dump sizes against what tracemalloc saw allocated.

tracemalloc traces every block CPython allocates (requested sizes).  Build
a workload while tracing; the growth of the dump's summed ``size`` between
a dump before and a dump after must match the traced growth.

Care taken to keep other allocations out of the window: a full collection
before each phase (it also empties the free lists, whose blocks would
otherwise be reused untraced), only preallocated containers, and the
parse of the "before" dump finished before tracing starts.
"""

import gc
import json
import os
import sys
import tempfile
import tracemalloc
import unittest

import support
from support import scanner

PY311 = sys.version_info >= (3, 11)


class Rec:
    def __init__(self, name, meta, score):
        self.name = name
        self.meta = meta
        self.score = score


class Slot:
    __slots__ = ("key", "value")

    def __init__(self, key, value):
        self.key = key
        self.value = value


def build_workload(n, token):
    """About 7.5 objects per item: str, dict, list, ints, float and an
    instance (a quarter with a materialised __dict__, some with slots)."""
    root = [None] * n
    for i in range(n):
        s = "item-%d-%s-%s" % (i, token, "x" * (i % 40))
        d = {"name": s, "index": i + 1000000, "tags": [s, i]}
        if i % 8 == 7:
            root[i] = Slot(s, d)
            continue
        r = Rec(s, d, i + 0.5)
        if i % 4 == 0:
            vars(r)
        root[i] = r
    return root


def heap_total(path):
    """Sum of ``size`` over a dump_all_objects dump (parsed, then freed)."""
    scanner.dump_all_objects(path)
    total = 0
    count = 0
    with open(path, "rb") as f:
        for line in f:
            total += json.loads(line)["size"]
            count += 1
    os.unlink(path)
    return total, count


def traced_bytes_per_object(make, n=20000):
    """Bytes CPython allocates for one object made by ``make()``."""
    keep = [None] * n
    # The first instances of a class get larger values arrays (3.11+ sizes
    # them from the class's shared keys, which settle after a few dozen
    # instances); make those outside the window.
    warm = [make() for _ in range(200)]
    del warm
    gc.collect()
    tracemalloc.start()
    try:
        t0 = tracemalloc.get_traced_memory()[0]
        for i in range(n):
            keep[i] = make()
        t1 = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return (t1 - t0) // n, keep


class BytesExplainedTest(unittest.TestCase):

    def setUp(self):
        self.assertFalse(tracemalloc.is_tracing(),
                         "precondition: tracemalloc must be off")
        self.tmp = tempfile.TemporaryDirectory(prefix="meliae-test-")
        self.addCleanup(self.tmp.cleanup)
        self.path = os.path.join(self.tmp.name, "heap.json")

    def test_dump_growth_matches_tracemalloc_growth_of_workload(self):
        token = os.urandom(6).hex()
        n = 30000
        gc.collect()
        before, count_before = heap_total(self.path)
        gc.collect()
        tracemalloc.start()
        try:
            t0 = tracemalloc.get_traced_memory()[0]
            workload = build_workload(n, token)
            t1 = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        after, count_after = heap_total(self.path)
        traced = t1 - t0
        grown = after - before
        self.assertGreater(traced, 10 * 1024 * 1024, "workload too small")
        self.assertGreater(count_after - count_before, 6 * n,
                           "the workload's objects are not all in the dump")
        self.assertLess(abs(grown - traced), 0.03 * traced,
                        "dump grew by %d bytes, tracemalloc traced %d "
                        "(%.2f%%)" % (grown, traced,
                                      100.0 * (grown - traced) / traced))
        del workload

    @unittest.skipUnless(PY311, "inline values exist from 3.11")
    def test_inline_values_instance_size_is_its_traced_allocation(self):
        per, keep = traced_bytes_per_object(lambda: Rec(None, None, None))
        o = keep[-1]
        self.assertGreater(per, sys.getsizeof(o), "oracle: no values array?")
        self.assertEqual(scanner.size_of(o), per)
        lines = support.dump_to_list(scanner.dump_all_referenced, keep)
        by_addr = support.index_by_address(lines)
        self.assertEqual(by_addr[id(keep[-1])]["size"], per)

    def test_materialised_instance_and_dict_are_not_counted_twice(self):
        def make():
            r = Rec(None, None, None)
            r.__dict__
            return r
        per, keep = traced_bytes_per_object(make)
        o = keep[-1]
        total = scanner.size_of(o) + scanner.size_of(o.__dict__)
        # Never more than CPython allocated (the values array is counted
        # once); sys.getsizeof of a split dict may leave out a few bytes of
        # the values array's header, hence the 10% lower bound.
        self.assertLessEqual(total, per,
                             "instance %d + dict %d > %d bytes allocated"
                             % (scanner.size_of(o), scanner.size_of(o.__dict__),
                                per))
        self.assertGreaterEqual(total, 0.9 * per)

    def test_slots_instance_size_is_its_traced_allocation(self):
        per, keep = traced_bytes_per_object(lambda: Slot(None, None))
        self.assertEqual(scanner.size_of(keep[-1]), per)
        self.assertEqual(per, sys.getsizeof(keep[-1]))

    def test_repeated_dumps_leave_no_traced_memory_behind(self):
        scanner.dump_all_objects(self.path)      # warm-up
        os.unlink(self.path)
        gc.collect()
        tracemalloc.start()
        try:
            t0 = tracemalloc.get_traced_memory()[0]
            for _ in range(3):
                scanner.dump_all_objects(self.path)
                os.unlink(self.path)
            t1 = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        self.assertLess(t1 - t0, 4096, "three dumps left %d bytes allocated"
                        % (t1 - t0))


if __name__ == "__main__":
    unittest.main()
