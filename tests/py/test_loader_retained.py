"""Retained sizes and dominators in the loader (docs/retained.md), on real
dumps: a child interpreter builds a heap of known shape, measures it with
sys.getsizeof (the oracle), dumps it with meliae.scanner; the test loads
the dump and checks om.compute_retained() against those figures."""

import json
import os
import shutil
import tempfile
import unittest

from meliae import loader

from support import describe_child, run_child

CHILD = r"""
import gc, json, sys
import meliae.scanner as scanner

class Holder(object):
    pass

def fresh(i):
    # built at run time: not interned, not shared with anything else
    return "".join(["retained-", str(i), "-", "x" * (i % 37)])

owned = [fresh(i) for i in range(1000)]
shared = fresh(-1) + "shared"
left = [shared]
right = [shared]
inst = Holder()
inst.payload = bytearray(10000)
inst.name = fresh(-2)
chain = [[[bytearray(5000)]]]

gc.collect()
scanner.dump_all_objects(sys.argv[1] if len(sys.argv) > 1 else OUT)
print(json.dumps({
    "owned": id(owned),
    "owned_retained": sys.getsizeof(owned) + sum(sys.getsizeof(s) for s in owned),
    "owned_first": id(owned[0]),
    "shared": id(shared), "left": id(left), "right": id(right),
    "left_size": sys.getsizeof(left),
    "inst": id(inst),
    "inst_attrs": sys.getsizeof(inst.payload) + sys.getsizeof(inst.name),
    "chain": id(chain), "chain_mid": id(chain[0]),
    "chain_retained": (sys.getsizeof(chain) + sys.getsizeof(chain[0])
                       + sys.getsizeof(chain[0][0])
                       + sys.getsizeof(chain[0][0][0])),
}))
"""


class RetainedOnRealDumps(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="meliae-retained-")
        cls.path = os.path.join(cls.tmp, "heap.json")
        proc = run_child("OUT = %r\n" % cls.path + CHILD)
        if proc.returncode != 0:
            raise AssertionError(describe_child(proc))
        cls.ids = json.loads(proc.stdout.decode().strip().splitlines()[-1])
        cls.om = loader.load(cls.path, show_prog=False)
        cls.om.compute_retained()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_list_retains_its_unique_strs(self):
        o = self.om[self.ids["owned"]]
        self.assertEqual(o.retained_size, self.ids["owned_retained"])
        first = self.om[self.ids["owned_first"]]
        self.assertEqual(first.dominator, o)
        self.assertEqual(first.retained_size, first.size)

    def test_shared_str_is_retained_by_neither_container(self):
        left, right = self.om[self.ids["left"]], self.om[self.ids["right"]]
        shared = self.om[self.ids["shared"]]
        self.assertEqual(left.retained_size, self.ids["left_size"])
        self.assertEqual(right.retained_size, self.ids["left_size"])
        self.assertNotIn(shared.dominator, (left, right))
        # whoever dominates it dominates both lists too
        dom = shared.dominator
        for holder in (left, right):
            self.assertIn(dom, self.om.dominators(holder)[1:] + [None])

    def test_instance_retains_its_collapsed_attributes(self):
        inst = self.om[self.ids["inst"]]
        # load() folded the __dict__ into the instance (size included)
        self.assertEqual(inst.retained_size, inst.size + self.ids["inst_attrs"])

    def test_dominator_chain_grows_towards_the_root(self):
        deep = self.om[self.ids["chain"]]
        self.assertEqual(deep.retained_size, self.ids["chain_retained"])
        leaf = deep.c[0].c[0].c[0]
        self.assertEqual(leaf.type_str, "bytearray")
        chain = self.om.dominators(leaf)
        self.assertEqual(chain[0], leaf)
        self.assertEqual(chain[2], self.om[self.ids["chain_mid"]])
        self.assertEqual(chain[3], deep)
        sizes = [o.retained_size for o in chain]
        self.assertEqual(sizes, sorted(sizes))
        self.assertIsNone(chain[-1].dominator)

    def test_roots_add_up_to_the_heap(self):
        g = self.om._g
        total = sum(g.retained(i) for i in range(len(g)) if g.idom(i) < 0)
        self.assertEqual(total, self.om.total_heap_size)
        self.assertEqual(total, sum(g.size(i) for i in range(len(g))))
        heap, roots, leftover = g.retained_roots
        self.assertEqual(heap, total)
        self.assertGreater(roots, 0)

    def test_every_object_retains_at_least_itself(self):
        g = self.om._g
        for i in range(len(g)):
            self.assertGreaterEqual(g.retained(i), g.size(i))
            d = g.idom(i)
            if d >= 0:
                self.assertGreater(g.retained(d), g.retained(i) - 1)

    def test_top_retained_is_sorted_and_matches_the_objects(self):
        top = self.om.top_retained(50)
        self.assertEqual(len(top), 50)
        sizes = [o.retained_size for o in top]
        self.assertEqual(sizes, sorted(sizes, reverse=True))
        best = max(self.om._g.retained(i) for i in range(len(self.om)))
        self.assertEqual(sizes[0], best)

    def test_summary_by_retained_counts_leaf_types_once(self):
        plain = self.om.summarize()
        ret = self.om.summarize(by="retained")
        self.assertEqual(ret.total_size, self.om.total_heap_size)
        # a str dominates no other object: its retained total is its size
        for t in ("str", "float"):
            if t in plain.type_summaries:
                self.assertEqual(ret.type_summaries[t].total_size,
                                 plain.type_summaries[t].total_size)
                self.assertEqual(ret.type_summaries[t].count,
                                 plain.type_summaries[t].count)
        # the "owned" list is the list that no other list dominates
        lists = ret.type_summaries["list"]
        self.assertGreaterEqual(lists.total_size, self.ids["owned_retained"])
        self.assertGreaterEqual(lists.max_size, self.ids["owned_retained"])
        for s in ret.type_summaries.values():
            self.assertLessEqual(s.total_size, ret.total_size)
            self.assertLessEqual(s.max_size, s.total_size)
            self.assertLessEqual(ret.top_counts[s.type_str], s.count)
        text = repr(ret)
        self.assertIn("by retained size", text.splitlines()[0])
        self.assertIn(" Index   Count   %  Retained   %       Max Kind", text)

    def test_summary_by_retained_is_of_the_whole_dump(self):
        with self.assertRaises(ValueError):
            self.om.summarize(self.ids["owned"], by="retained")
        with self.assertRaises(ValueError):
            self.om.summarize(by="bytes")


class RetainedFollowsTheGraph(unittest.TestCase):
    """Cached per graph state: a collapse or a reference removal after
    compute_retained() drops the cache."""

    LINES = [
        '{"address": 1, "type": "module", "size": 10, "name": "m", "refs": [2]}',
        '{"address": 2, "type": "dict", "size": 100, "len": 1, "refs": [3, 4]}',
        '{"address": 3, "type": "str", "size": 50, "len": 1, "value": "x", "refs": []}',
        '{"address": 4, "type": "Thing", "size": 30, "refs": [5, 6]}',
        '{"address": 5, "type": "dict", "size": 200, "len": 1, "refs": [3, 7]}',
        '{"address": 6, "type": "type", "size": 400, "name": "Thing", "refs": []}',
        '{"address": 7, "type": "bytes", "size": 1000, "len": 3, "value": "abc", "refs": []}',
        '{"address": 8, "type": "dict", "size": 5, "len": 1, "refs": [1]}',
    ]

    def test_collapse_after_compute_recomputes(self):
        om = loader.load(self.LINES, show_prog=False, collapse=False)
        om.compute_retained()
        thing = om[4]
        # its dict, the dict's bytes and its class (nothing else has it)
        self.assertEqual(thing.retained_size, 30 + 200 + 1000 + 400)
        self.assertEqual(om[5].dominator, thing)
        # the module is a root although the dict at 8 refers to it
        self.assertIsNone(om[1].dominator)
        self.assertEqual(om[8].retained_size, 5)
        # the module's dict (only the module refers to it) and Thing's
        self.assertEqual(om.collapse_instance_dicts(), 2)
        self.assertFalse(om._g.has_retained)
        thing = om[4]
        self.assertEqual(thing.size, 230)
        self.assertEqual(thing.retained_size, 230 + 1000 + 400)
        self.assertEqual(om[7].dominator, thing)

    def test_remove_expensive_references_recomputes(self):
        om = loader.load(self.LINES, show_prog=False)
        self.assertEqual(om[6].dominator, om[4])
        om.remove_expensive_references()
        self.assertFalse(om._g.has_retained)
        self.assertIsNone(om[6].dominator)  # nothing refers to the type now
        self.assertEqual(om[6].retained_size, 400)

    def test_empty_dump(self):
        om = loader.load([], show_prog=False)
        om.compute_retained()
        self.assertEqual(om.top_retained(5), [])
        self.assertEqual(om.summarize(by="retained").total_size, 0)


if __name__ == "__main__":
    unittest.main()
