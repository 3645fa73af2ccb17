"""numpy arrays and pandas frames, as the scanner sees them without
importing numpy: the data an array owns in its size (not a view's), its
base and the objects of object and structured dtypes in its refs, so
that the strings of an object column are in the dump at all (numpy does
not traverse them: gc.get_referents of an array is empty).

Oracles: sys.getsizeof (numpy's own __sizeof__), the id() of every
element, and tracemalloc's traced growth of a DataFrame workload (numpy
traces its data buffers in tracemalloc too).  Runs with Debian's
python3-numpy/python3-pandas and with the current numpy and pandas that
scripts/test.sh installs in a venv (pinned there); skipped without numpy.
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

try:
    import numpy as np
except ImportError:
    np = None
try:
    import pandas as pd
except ImportError:
    pd = None
# scripts/test.sh's run with the index's numpy and pandas must not skip.
if os.environ.get("MELIAE_REQUIRE_NUMPY") == "1" and (np is None or pd is None):
    raise ImportError("MELIAE_REQUIRE_NUMPY=1 but numpy or pandas is missing")


def ids(objs):
    return {id(o) for o in objs}


def dump_lines(fork=False):
    with tempfile.TemporaryDirectory(prefix="meliae-np-") as d:
        path = os.path.join(d, "heap.json")
        r = scanner.dump_all_objects(path, fork=fork)
        if r is not None:
            r.wait()
        return {x["address"]: x for x in support.read_dump(path)}


@unittest.skipIf(np is None, "numpy is not installed")
class NdarrayTest(unittest.TestCase):

    def test_size_counts_the_data_an_array_owns_and_not_a_views(self):
        a = np.zeros(1000000)
        v = a[::2]
        self.assertEqual(scanner.size_of(a), sys.getsizeof(a))
        self.assertGreaterEqual(scanner.size_of(a), 8000000)
        self.assertEqual(scanner.size_of(v), sys.getsizeof(v))
        self.assertLess(scanner.size_of(v), 1000)

    def test_a_view_refers_to_its_base(self):
        a = np.arange(100)
        v = a[10:20]
        self.assertIn(id(a), ids(scanner.get_referents(v)))
        b = b"x" * 64
        f = np.frombuffer(b, dtype=np.uint8)
        self.assertIn(id(b), ids(scanner.get_referents(f)))

    def test_object_array_lists_every_element_in_order(self):
        strs = ["elt-%d-%s" % (i, os.urandom(3).hex()) for i in range(201)]
        a = np.array(strs, dtype=object)
        refs = scanner.get_referents(a)
        elems = [r for r in refs if type(r) is str]
        self.assertEqual([id(x) for x in elems], [id(x) for x in strs])

    def test_object_array_views_of_any_shape_and_strides(self):
        strs = ["v-%d-%s" % (i, os.urandom(3).hex()) for i in range(60)]
        base = np.array(strs, dtype=object).reshape(3, 4, 5)
        for view in (base.T, base[::-1, :, ::2], base[1], base[:, 2, 3],
                     np.asfortranarray(base)):
            with self.subTest(shape=view.shape, strides=view.strides):
                refs = ids(scanner.get_referents(view))
                self.assertLessEqual(ids(view.ravel().tolist()), refs)
                if view.base is not None:
                    self.assertIn(id(view.base), refs)

    def test_zero_d_and_empty_object_arrays(self):
        s = "zero-d-" + os.urandom(3).hex()
        z = np.empty((), dtype=object)
        z[()] = s
        self.assertIn(id(s), ids(scanner.get_referents(z)))
        e = np.empty((0, 5), dtype=object)
        self.assertEqual([type(r).__name__ for r in scanner.get_referents(e)
                          if type(r) is str], [])

    def test_structured_dtype_object_fields_are_refs(self):
        dt = np.dtype([("n", "i4"), ("s", object), (("title", "t"), object),
                       ("inner", [("x", "f8"), ("o", object)])])
        a = np.zeros(5, dtype=dt)
        keep = []
        for i in range(5):
            s, t, o = ("s%d" % i) * 3, ("t", i), ["o", i]
            keep += [s, t, o]
            a[i] = (i, s, t, (0.5, o))
        refs = scanner.get_referents(a)
        self.assertLessEqual(ids(keep), ids(refs))
        # the titled field once, not once per name
        self.assertEqual(sum(1 for r in refs if r is keep[1]), 1)

    def test_dump_includes_strings_held_only_by_an_object_array(self):
        token = os.urandom(4).hex()
        a = np.array(["only-%d-%s" % (i, token) for i in range(201)],
                     dtype=object)
        holder = [a]        # what holds an array in a program: an object
        want = ids(a.tolist())
        for fork in (False, True):
            with self.subTest(fork=fork):
                lines = dump_lines(fork=fork)
                self.assertEqual(want - set(lines), set())
                self.assertLessEqual(want, set(lines[id(a)]["refs"]))
                self.assertEqual(lines[id(a)]["len"], 201)
                self.assertEqual(lines[id(a)]["size"], sys.getsizeof(a))
                self.assertIn(id(a), lines[id(holder)]["refs"])


@unittest.skipIf(pd is None, "pandas is not installed")
class PandasTest(unittest.TestCase):

    def assert_all_in_dump(self, objs, lines):
        missing = ids(objs) - set(lines)
        self.assertEqual(len(missing), 0, "%d of %d elements missing"
                         % (len(missing), len(objs)))

    def test_object_string_categorical_and_multiindex_elements_are_dumped(self):
        token = os.urandom(4).hex()
        names = ["name-%d-%s" % (i, token) for i in range(300)]
        cats = ["cat-%d-%s" % (i, token) for i in range(7)]
        lvl = ["lvl-%d-%s" % (i, token) for i in range(4)]
        df = pd.DataFrame({
            "obj": pd.Series(names, dtype=object),
            "cat": pd.Categorical([cats[i % 7] for i in range(300)]),
            "x": np.arange(300, dtype=np.float64),
        })
        strcol = pd.Series(["str-%d-%s" % (i, token) for i in range(300)],
                           dtype="string")
        mi = pd.MultiIndex.from_product([lvl, range(5)])
        lines = dump_lines()
        self.assert_all_in_dump(names, lines)
        self.assert_all_in_dump(df["cat"].cat.categories.tolist(), lines)
        self.assert_all_in_dump(strcol.tolist(), lines)
        self.assert_all_in_dump(mi.levels[0].tolist(), lines)
        del df, strcol, mi

    def test_dataframe_dump_growth_matches_tracemalloc(self):
        token = os.urandom(4).hex()
        n = 40000
        path = os.path.join(tempfile.mkdtemp(prefix="meliae-np-"), "h.json")

        def total():
            scanner.dump_all_objects(path)
            with open(path, "rb") as f:
                t = sum(json.loads(line)["size"] for line in f)
            os.unlink(path)
            return t

        gc.collect()
        before = total()
        gc.collect()
        tracemalloc.start()
        try:
            t0 = tracemalloc.get_traced_memory()[0]
            df = pd.DataFrame({
                "name": pd.Series(["row-%d-%s" % (i, token) for i in range(n)],
                                  dtype=object),
                "city": pd.Categorical(["c%d" % (i % 50) for i in range(n)]),
                "v": np.arange(n, dtype=np.float64) * 0.5,
                "k": np.arange(n, dtype=np.int64),
            })
            t1 = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        after = total()
        traced, grown = t1 - t0, after - before
        self.assertGreater(traced, 2 * 1024 * 1024)
        self.assertLess(abs(grown - traced), 0.03 * traced,
                        "dump grew by %d bytes, tracemalloc traced %d (%.2f%%)"
                        % (grown, traced, 100.0 * (grown - traced) / traced))
        del df


if __name__ == "__main__":
    unittest.main()
