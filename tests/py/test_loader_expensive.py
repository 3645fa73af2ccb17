"""ObjManager.remove_expensive_references() and guess_intern_dict().

Hand-made graphs with known answers, then a real dump of this process.
"""

import json
import os
import tempfile
import unittest

from meliae import loader, scanner


def line(address, type_str, refs, size=10, name=None, value=None):
    d = {"address": address, "type": type_str, "size": size}
    if name is not None:
        d["name"] = name
    if value is not None:
        d["value"] = value
    d["refs"] = refs
    return json.dumps(d)


# A module m whose dict holds __name__ = "m", f and C; builtins; a
# function f of 3.10+ shape (code, globals, builtins, module name,
# defaults, name); g of 3.9 shape (code, globals, module name, name); h
# whose globals have no __name__ (the str after them is its doc and stays);
# k of 3.10+ shape whose builtins dict has no module line;
# a class C, an instance of it, a list holding the module, a frame and a
# dangling ref; a frame; two _LRUNodes.
EXPENSIVE = [
    line(1, "module", [2], name="m"),
    line(2, "dict", [10, 11, 12, 13, 14, 15]),
    line(3, "module", [4], name="builtins"),
    line(4, "dict", []),
    line(10, "str", [], value="__name__"),
    line(11, "str", [], value="m"),
    line(12, "str", [], value="f"),
    line(13, "function", [20, 2, 4, 11, 21, 12], name="f"),
    line(14, "str", [], value="C"),
    line(15, "type", [22, 30], name="C"),
    line(16, "function", [20, 2, 11, 12], name="g"),
    line(17, "function", [20, 80, 81, 12], name="h"),
    line(18, "function", [20, 2, 82, 11, 12], name="k"),
    line(20, "code", [], name="f"),
    line(21, "tuple", [42]),
    line(22, "dict", []),
    line(30, "type", [], name="object"),
    line(40, "C", [41, 15], size=48),
    line(41, "list", [1, 50, 42, 999]),
    line(42, "str", [], value="x"),
    line(50, "frame", [2, 40]),
    line(60, "_LRUNode", [61, 62, 42]),
    line(61, "_LRUNode", [60, 62]),
    line(62, "str", [], value="y"),
    line(80, "dict", [42, 42]),
    line(81, "str", [], value="doc of h"),
    line(82, "dict", []),           # builtins whose module has no line
]

AFTER = {
    1: [2], 2: [10, 11, 12, 13, 14], 3: [4],
    13: [20, 21, 12], 15: [22], 16: [20, 12], 17: [20, 81, 12],
    18: [20, 12],
    40: [41], 41: [42, 999], 50: [2, 40], 60: [62, 42], 61: [62],
    80: [42, 42],
}


def load(lines, collapse=False):
    return loader.load(lines, show_prog=False, collapse=collapse)


class TestRemoveExpensiveReferences(unittest.TestCase):

    def test_known_answer(self):
        om = load(EXPENSIVE)
        before = {a: list(om[a].children) for a in om.objs}
        removed = om.remove_expensive_references()
        for a in om.objs:
            self.assertEqual(om[a].children, AFTER.get(a, before[a]),
                             "refs of %d" % a)
        self.assertEqual(removed, sum(len(before[a]) - len(om[a].children)
                                      for a in om.objs))
        self.assertEqual(removed, 16)
        # Nothing else changed: the objects, sizes, dangling refs.
        self.assertEqual(len(om), len(EXPENSIVE))
        self.assertEqual(om.ndangling, 1)
        self.assertEqual(om[40].size, 48)

    def test_second_call_does_nothing(self):
        om = load(EXPENSIVE)
        self.assertEqual(om.remove_expensive_references(), 16)
        self.assertEqual(om.remove_expensive_references(), 0)
        for a, refs in AFTER.items():
            self.assertEqual(om[a].children, refs)

    def test_referrers_follow(self):
        om = load(EXPENSIVE)
        om.compute_referrers()
        self.assertEqual(sorted(om[2].parents), [1, 13, 16, 18, 50])
        self.assertEqual(sorted(om[1].parents), [41])
        om.remove_expensive_references()
        # Recomputed, since they had been computed.
        self.assertTrue(om._g.has_parents)
        self.assertIn("1 referrers", repr(om[41]))
        self.assertEqual(sorted(om[2].parents), [1, 50])
        self.assertEqual(om[1].parents, [])
        self.assertEqual(om[15].parents, [])
        self.assertEqual(om[1].num_parents, 0)

    def test_parents_computed_later(self):
        om = load(EXPENSIVE)
        om.remove_expensive_references()
        self.assertEqual(sorted(om[2].parents), [1, 50])

    def test_total_size_no_longer_reaches_everything(self):
        om = load(EXPENSIVE)
        everything = om[40].compute_total_size()
        self.assertEqual(om[40].total_size, everything)
        om.remove_expensive_references()
        # 40 -> 41 -> 42 (999 has no line); the cached total is dropped.
        expected = om[40].size + om[41].size + om[42].size
        self.assertEqual(om[40].total_size, expected)
        self.assertLess(expected, everything)
        s = om.summarize(om[40])
        self.assertEqual(s.total_count, 3)
        self.assertEqual(s.total_size, expected)

    def test_collapse_first(self):
        # load() collapses, then the instance loses only its class ref.
        lines = [
            line(1, "type", [], name="Leak"),
            line(2, "Leak", [3, 1], size=48),
            line(3, "dict", [4, 5], size=100),
            line(4, "str", [], value="a"),
            line(5, "list", [1, 4]),
        ]
        om = load(lines, collapse=True)
        self.assertEqual(om[2].children, [4, 5, 1])
        self.assertEqual(om[2].size, 148)
        self.assertEqual(om.remove_expensive_references(), 2)
        self.assertEqual(om[2].children, [4, 5])
        self.assertEqual(om[5].children, [4])
        self.assertEqual(om[4].parents, [2, 5])

    def test_nothing_expensive(self):
        om = load([line(1, "list", [2, 3]), line(2, "str", [], value="a"),
                   line(3, "int", [], value=1)])
        self.assertEqual(om.remove_expensive_references(), 0)
        self.assertEqual(om[1].children, [2, 3])

    def test_empty(self):
        om = load([])
        self.assertEqual(om.remove_expensive_references(), 0)
        self.assertIsNone(om.guess_intern_dict())

    def test_function_without_globals(self):
        # A function line whose second ref is not a dict (a hand-made or
        # foreign dump) keeps its refs, but not those to types/modules.
        om = load([
            line(1, "function", [2], name="f"),
            line(2, "code", [], name="f"),
            line(3, "function", [2, 4, 5], name="g"),
            line(4, "tuple", []),
            line(5, "module", [], name="m"),
        ])
        self.assertEqual(om.remove_expensive_references(), 1)
        self.assertEqual(om[1].children, [2])
        self.assertEqual(om[3].children, [2, 4])

    def test_real_dump(self):
        with tempfile.TemporaryDirectory(prefix="meliae-test-") as d:
            path = os.path.join(d, "dump.json")
            scanner.dump_all_objects(path)
            om = loader.load(path, show_prog=False)
        f = TestRemoveExpensiveReferences.test_real_dump
        fo = om[id(f)]
        self.assertIn(id(f.__code__), fo.children)
        self.assertIn(id(f.__globals__), fo.children)
        self.assertIn(id(f.__module__), fo.children)
        removed = om.remove_expensive_references()
        self.assertGreater(removed, 0)
        fo = om[id(f)]
        self.assertEqual(fo.children[0], id(f.__code__))
        self.assertNotIn(id(f.__globals__), fo.children)
        self.assertNotIn(id(__builtins__ if isinstance(__builtins__, dict)
                            else __builtins__.__dict__), fo.children)
        self.assertNotIn(id(f.__module__), fo.children)
        self.assertIn(id(f.__qualname__), fo.children)
        expensive = {"module", "frame", "type"}
        for o in om.objs.values():
            for c in o.c:
                self.assertNotIn(c.type_str, expensive)
        for t in expensive:
            for o in om.get_all(t):
                self.assertEqual(o.num_parents, 0)
        # A module keeps its dict.
        self.assertIn(id(unittest.__dict__), om[id(unittest)].children)


class TestGuessInternDict(unittest.TestCase):

    def test_known_answer(self):
        om = load([
            line(1, "str", [], value="a"),
            line(2, "str", [], value="b"),
            line(3, "str", [], value="c"),
            line(4, "str", [], value="d"),
            line(5, "int", [], value=5),
            line(100, "dict", [1, 1, 2, 2]),            # smaller
            line(101, "dict", [1, 1, 2, 2, 3, 3, 4, 4]),  # has a referrer
            line(102, "list", [101]),
            line(103, "dict", [1, 1, 2, 2, 3, 3]),      # the one
            line(104, "dict", [1, 1, 2, 3, 4, 4, 3, 3]),  # 2 -> 3
            line(105, "dict", [5, 5, 1, 1, 2, 2, 3, 3]),  # an int key
            line(106, "dict", []),                      # empty
            line(107, "dict", [1, 1, 2, 2, 3, 3, 4]),   # odd (0.5 dump)
            line(108, "dict", [1, 1, 2, 2, 3, 3]),      # a tie: later
            line(109, "dict", [1, 1, 999, 999, 2, 2, 3, 3]),  # dangling
        ])
        d = om.guess_intern_dict()
        self.assertIsInstance(d, loader.MemObject)
        self.assertEqual(d.address, 103)

    def test_none(self):
        om = load([
            line(1, "str", [], value="a"),
            line(2, "str", [], value="b"),
            line(3, "dict", [1, 2]),
            line(4, "dict", [1, 1]),
            line(5, "list", [4]),
        ])
        self.assertIsNone(om.guess_intern_dict())
        om = load([line(1, "str", [], value="a")])
        self.assertIsNone(om.guess_intern_dict())

    def test_after_collapse(self):
        # Works on the collapsed graph: indices were compacted.
        om = load([
            line(1, "type", [], name="Leak"),
            line(2, "Leak", [3, 1]),
            line(3, "dict", [4, 5]),
            line(4, "str", [], value="a"),
            line(5, "int", [], value=1),
            line(6, "dict", [4, 4]),
        ], collapse=True)
        self.assertNotIn(3, om)
        self.assertEqual(om.guess_intern_dict().address, 6)


if __name__ == "__main__":
    unittest.main()
