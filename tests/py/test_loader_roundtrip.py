"""Round trips: what meliae.scanner writes, meliae.loader reads back.

Every line of a dump loads as one object with the same fields (Python's
json module reads the oracle), summary totals equal the sum of the sizes,
and gzip dumps load as the plain ones do.
"""

import gc
import math
import os
import sys
import tempfile
import unittest

import support
from support import scanner

from meliae import loader


class Plain:
    pass


class Slotted:
    __slots__ = ("a", "b")


def sample():
    """A structure with one of everything the format has a rule for."""
    inst = Plain()
    inst.x = 1
    inst.name = "inline"
    mat = Plain()
    mat.y = [1, 2]
    mat.__dict__            # materialised
    sl = Slotted()
    sl.a = (1, 2)
    s = "x" * 300
    return {
        "str": ["", "a", "caf\u00e9", "\U0001F600 astral", "\udc80lone",
                "ctl\x00\x01\n\t\"\\", s],
        "bytes": [b"", b"\xff\x80abc", bytes(range(256))],
        "int": [0, -1, 2 ** 63 - 1, -2 ** 63, 2 ** 64, -2 ** 100, True, False],
        "float": [0.0, -0.0, 1.5, 1e16, 1e-300, math.inf, -math.inf,
                  math.nan],
        "none": None,
        "containers": [(1, 2), [3, 4], {5, 6}, frozenset([7]), bytearray(b"ab"),
                       {"k": "v", 1: 2}],
        "instances": [inst, mat, sl],
        "shared": [s, s],
    }


def oracle_value(line):
    v = line.get("value")
    if (line["type"] == "float" and isinstance(v, str)
            and v in ("inf", "-inf", "nan")):
        return float(v)
    return v


def same(a, b):
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return type(a) is type(b) and a == b


class RoundTrip(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="meliae-test-")
        self.addCleanup(self.dir.cleanup)

    def path(self, name):
        return os.path.join(self.dir.name, name)

    def check(self, lines, om, dups=0):
        by_addr = {}
        for d in lines:
            by_addr.setdefault(d["address"], d)
        self.assertEqual(len(om), len(by_addr))
        self.assertEqual(om.nduplicates, dups)
        for a, d in by_addr.items():
            o = om[a]
            self.assertEqual(o.address, a)
            self.assertEqual(o.type_str, d["type"])
            self.assertEqual(o.size, d["size"])
            self.assertEqual(o.len, d.get("len"))
            self.assertEqual(o.name, d.get("name"))
            want = oracle_value(d)
            if not same(want, o.value):
                self.fail("%d: value %r != %r" % (a, o.value, want))
            self.assertEqual(o.children, d["refs"])
        s = om.summarize()
        self.assertEqual(s.total_count, len(by_addr))
        self.assertEqual(s.total_size, sum(d["size"] for d in by_addr.values()))
        by_type = {}
        for d in by_addr.values():
            by_type.setdefault(d["type"], []).append(d)
        self.assertEqual(sorted(s.type_summaries), sorted(by_type))
        for t, ts in s.type_summaries.items():
            objs = by_type[t]
            self.assertEqual(ts.count, len(objs))
            self.assertEqual(ts.total_size, sum(d["size"] for d in objs))
            self.assertEqual(ts.max_size, max(d["size"] for d in objs))
            self.assertEqual(by_addr[ts.max_address]["size"], ts.max_size)
        dangling = sum(1 for d in by_addr.values() for r in d["refs"]
                       if r not in by_addr)
        self.assertEqual(om.ndangling, dangling)

    def test_dump_all_referenced(self):
        obj = sample()
        p = self.path("ref.json")
        scanner.dump_all_referenced(p, obj)
        lines = support.read_dump(p)
        om = loader.load(p, show_prog=False, collapse=False)
        self.check(lines, om)
        # The root is the first line; its total size is the sum of every
        # line reachable from it, which is every line of the dump.
        root = om[id(obj)]
        self.assertEqual(root.compute_total_size(),
                         sum(d["size"] for d in lines))
        self.assertEqual((len(om), root.total_size),
                         tuple(scanner.get_recursive_size(obj)))
        # Values come back as the objects were.
        for v in obj["str"] + obj["int"]:
            want = v
            if isinstance(v, str):
                want = v[:100]
            elif not -2 ** 63 <= v < 2 ** 63:
                want = None                         # no value past 64 bits
            self.assertTrue(same(om[id(v)].value, want), repr(v))
        for v in obj["float"]:
            self.assertTrue(same(om[id(v)].value, v), repr(v))
        self.assertEqual(om[id(obj["bytes"][1])].value.encode("latin-1"),
                         obj["bytes"][1])
        self.assertEqual(om[id(obj["bytes"][2])].len, 256)
        self.assertIsNone(om[id(None)].value)

    def test_value_with_nul(self):
        obj = ["ctl\x00\x01", b"\x00\xff"]
        p = self.path("nul.json")
        scanner.dump_all_referenced(p, obj)
        om = loader.load(p, show_prog=False, collapse=False)
        self.assertEqual(om[id(obj[0])].value, obj[0])
        self.assertEqual(om[id(obj[1])].value, "\x00\xff")

    def test_gz_equals_plain(self):
        obj = sample()
        p, pgz = self.path("d.json"), self.path("d.json.gz")
        scanner.dump_all_referenced(p, obj)
        scanner.dump_all_referenced(pgz, obj)
        a = loader.load(p, show_prog=False, collapse=False)
        b = loader.load(pgz, show_prog=False, collapse=False)
        self.assertEqual(len(a), len(b))
        self.assertEqual([o.to_json() for o in a.objs.values()],
                         [o.to_json() for o in b.objs.values()])
        with open(pgz, "rb") as f:
            c = loader.load(f, show_prog=False, collapse=False)
        self.assertEqual(len(c), len(a))

    def test_iter_objs(self):
        obj = sample()
        p = self.path("d.json")
        scanner.dump_all_referenced(p, obj)
        lines = support.read_dump(p)
        objs = list(loader.iter_objs(p))
        self.assertEqual(len(objs), len(lines))
        for o, d in zip(objs, lines):
            self.assertEqual((o.address, o.type_str, o.size, o.len, o.name,
                              o.children),
                             (d["address"], d["type"], d["size"], d.get("len"),
                              d.get("name"), d["refs"]))
            self.assertTrue(same(oracle_value(d), o.value))

    def test_dump_all_objects(self):
        keep = sample()
        p = self.path("all.json")
        gc.collect()
        scanner.dump_all_objects(p)
        lines = support.read_dump(p)
        om = loader.load(p, show_prog=False, collapse=False)
        self.check(lines, om)
        self.assertEqual(om.ndangling, 0)
        self.assertIn(id(keep), om)
        self.assertIn(id(sys.modules[__name__]), om)
        self.assertEqual(om[id(sample)].name, "sample")
        self.assertEqual(om[id(sys.modules[__name__])].name, __name__)

    def test_dump_gc_objects_duplicates(self):
        keep = sample()
        p = self.path("gc.json")
        scanner.dump_gc_objects(p)
        lines = support.read_dump(p)
        dups = len(lines) - len({d["address"] for d in lines})
        om = loader.load(p, show_prog=False, collapse=False)
        self.check(lines, om, dups)
        self.assertIn(id(keep), om)

    def test_collapse_after_scan(self):
        inst = Plain()
        inst.a = "-".join(["attr", "value", "1"])     # not a constant
        inst.b = [1, 2, 3]
        mat = Plain()
        mat.a = "-".join(["attr", "value", "2"])
        mat.__dict__
        root = [inst, mat]
        p = self.path("c.json")
        scanner.dump_all_objects(p)
        om = loader.load(p, show_prog=False)
        a, b = om[id(inst)], om[id(mat)]
        for o, v in ((a, inst), (b, mat)):
            d = o.refs_as_dict()
            self.assertEqual(d["a"], v.a)
            self.assertEqual(o.children[-1], id(Plain))
        self.assertNotIn(id(mat.__dict__), om)
        self.assertEqual(om[id(inst.b)].parents, [id(inst)])
        self.assertEqual(om[id(mat.a)].parents, [id(mat)])
        self.assertEqual(sorted(om[id(root)].children),
                         sorted([id(inst), id(mat)]))
        # Sizes move, none is lost.
        raw = loader.load(p, show_prog=False, collapse=False)
        self.assertEqual(om.summarize().total_size,
                         raw.summarize().total_size)
        self.assertEqual(b.size, raw[id(mat)].size + raw[id(mat.__dict__)].size)


if __name__ == "__main__":
    unittest.main()
