"""meliae.scanner as meliae 0.5 users know it (issue 20): a special-size
callable's -1, get_recursive_items, dump_all_referenced(is_pending=)."""

import array
import collections
import os
import unittest

import support
from support import scanner


class Leaf:
    pass


class SpecialSizeMinusOne(unittest.TestCase):
    """0.5: a callable returning -1 means "size this one as usual"."""

    def register(self, name, size32, size64):
        scanner.add_special_size(name, size32, size64)
        self.addCleanup(scanner.add_special_size, name, None, None)

    def test_minus_one_gives_the_usual_size(self):
        small = array.array("b", b"x" * 10)
        big = array.array("b", b"x" * 1000)
        natural = scanner.size_of(small)

        def size(o):
            return 5000 if len(o) > 100 else -1
        self.register("array.array", size, size)
        self.assertEqual(scanner.size_of(small), natural)
        self.assertEqual(scanner.size_of(big), 5000)
        lines = support.index_by_address(
            support.dump_to_list(scanner.dump_all_referenced, [small, big]))
        self.assertEqual(lines[id(small)]["size"], natural)
        self.assertEqual(lines[id(big)]["size"], 5000)

    def test_minus_one_in_a_whole_heap_dump(self):
        dq = collections.deque(["tok-" + os.urandom(6).hex()])
        holder = [dq]
        self.register("collections.deque", lambda o: -1, lambda o: -1)
        lines = support.index_by_address(
            support.dump_to_list(scanner.dump_all_objects))
        self.assertEqual(lines[id(dq)]["size"], scanner.size_of(dq))
        del holder

    def test_other_negative_sizes_still_fail(self):
        dq = collections.deque()
        self.register("collections.deque", lambda o: -2, lambda o: -2)
        with self.assertRaises(ValueError):
            scanner.size_of(dq)
        with self.assertRaises(ValueError):
            support.dump_to_list(scanner.dump_all_referenced, [dq])


class GetRecursiveItems(unittest.TestCase):

    def test_the_objects_of_dump_all_referenced_obj_first(self):
        leaf = Leaf()
        leaf.name = "leaf-" + os.urandom(6).hex()
        root = {"a": [leaf, (1.5, b"bytes-" + os.urandom(4))], "b": leaf}
        items = scanner.get_recursive_items(root)
        self.assertIs(items[0], root)
        ids = [id(o) for o in items]
        self.assertEqual(len(ids), len(set(ids)))
        dumped = [d["address"] for d in
                  support.dump_to_list(scanner.dump_all_referenced, root)]
        self.assertEqual(set(ids), set(dumped))
        self.assertEqual(len(items), scanner.get_recursive_size(root)[0])
        self.assertTrue(any(o is leaf.name for o in items))
        # an instance's own class is not followed, as in the dump
        self.assertFalse(any(o is Leaf for o in items))


class DumpAllReferencedPending(unittest.TestCase):
    """is_pending=True: obj is the list of objects to start from."""

    def test_the_closures_of_the_items_without_the_list(self):
        tok = os.urandom(6).hex()
        shared = "shared-" + tok
        a = ["a-" + tok, shared]
        b = {"b-" + tok: shared}
        pending = [a, b]
        lines = support.dump_to_list(scanner.dump_all_referenced, pending,
                                     True)
        addrs = [d["address"] for d in lines]
        self.assertEqual(len(addrs), len(set(addrs)))
        self.assertNotIn(id(pending), addrs)
        want = set()
        for o in (a, b):
            want |= set(id(x) for x in scanner.get_recursive_items(o))
        self.assertEqual(set(addrs), want)
        self.assertEqual(pending, [a, b])       # 0.5 used it as its stack

    def test_any_iterable_and_an_empty_one(self):
        tok = "t-" + os.urandom(6).hex()
        lines = support.dump_to_list(scanner.dump_all_referenced,
                                     iter([tok]), True)
        self.assertEqual([d["address"] for d in lines], [id(tok)])
        self.assertEqual(
            support.dump_to_list(scanner.dump_all_referenced, [], True), [])


if __name__ == "__main__":
    unittest.main()
