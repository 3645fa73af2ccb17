"""add_special_size: per-type sizes registered from Python."""

import array
import collections
import os
import sys
import unittest

import support
from support import scanner

IS_64 = support.PTR_SIZE == 8


class SpecialThing:
    pass


class SpecialThingChild(SpecialThing):
    pass


class AddSpecialSizeTest(unittest.TestCase):

    def setUp(self):
        self.token = os.urandom(6).hex()

    def register(self, name, size32, size64):
        scanner.add_special_size(name, size32, size64)
        self.addCleanup(scanner.add_special_size, name, None, None)

    def line_for(self, obj, root):
        lines = support.dump_to_list(scanner.dump_all_referenced, root)
        return support.index_by_address(lines)[id(obj)]

    def test_int_size_for_this_pointer_width_is_used(self):
        dq = collections.deque([1, 2, 3])
        self.register("collections.deque", 1111, 2222)
        want = 2222 if IS_64 else 1111
        self.assertEqual(scanner.size_of(dq), want)
        self.assertEqual(self.line_for(dq, [dq])["size"], want)

    def test_callable_size_receives_the_object(self):
        arr = array.array("i", range(10))
        seen = []

        def size(o):
            seen.append(o)
            return 1000 + len(o)
        self.register("array.array", size, size)
        self.assertEqual(scanner.size_of(arr), 1010)
        self.assertIs(seen[0], arr)
        self.assertEqual(self.line_for(arr, [arr])["size"], 1010)

    def test_registered_size_is_used_in_dump_all_objects(self):
        arr = array.array("b", b"x" * (100 + len(self.token)))
        holder = [arr]      # arrays are not gc-tracked before 3.10
        self.register("array.array", lambda o: 7 + len(o), lambda o: 7 + len(o))
        lines = support.dump_to_list(scanner.dump_all_objects)
        d = support.index_by_address(lines)[id(arr)]
        self.assertEqual(d["size"], 7 + len(arr))
        del holder

    def test_none_none_unregisters(self):
        dq = collections.deque(range(100))
        natural = scanner.size_of(dq)
        self.assertEqual(natural, sys.getsizeof(dq))
        scanner.add_special_size("collections.deque", 3, 3)
        try:
            self.assertEqual(scanner.size_of(dq), 3)
        finally:
            scanner.add_special_size("collections.deque", None, None)
        self.assertEqual(scanner.size_of(dq), natural)
        self.assertEqual(self.line_for(dq, [dq])["size"], natural)

    def test_registration_applies_to_the_exact_tp_name_only(self):
        thing, child = SpecialThing(), SpecialThingChild()
        child_natural = scanner.size_of(child)
        self.register("SpecialThing", 77, 77)
        self.assertEqual(scanner.size_of(thing), 77)
        self.assertEqual(scanner.size_of(child), child_natural)
        self.assertNotEqual(child_natural, 77)

    def test_registering_again_replaces_the_size(self):
        dq = collections.deque()
        self.register("collections.deque", 10, 10)
        scanner.add_special_size("collections.deque", 20, 20)
        self.assertEqual(scanner.size_of(dq), 20)

    def test_recursive_size_uses_registered_size(self):
        dq = collections.deque(["s-" + self.token])
        count, total = scanner.get_recursive_size(dq)
        self.register("collections.deque", 40, 40)
        self.assertEqual(scanner.get_recursive_size(dq),
                         (count, total - sys.getsizeof(dq) + 40))


if __name__ == "__main__":
    unittest.main()
