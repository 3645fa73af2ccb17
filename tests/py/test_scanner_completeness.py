"""What each dump function includes: closures, duplicates, known holes.

The holes are the ones a tp_traverse-driven dumper falls into: dict keys
(dict_traverse skips str keys), attribute values kept outside any dict
(3.11+), code objects without tp_traverse (3.11), and every object the
collector does not track (str, int, untracked tuples and dicts...).
"""

import collections
import gc
import os
import sys
import types
import unittest

import support
from support import scanner

PY311 = sys.version_info >= (3, 11)


class Record:
    def __init__(self, a, b, c):
        self.a = a
        self.b = b
        self.c = c


# A class without methods: its closure stays small (no function globals
# leading to every module), so closures of its instances are cheap to dump.
Small = type("Small", (), {})


def small(**attrs):
    o = Small()
    for k, v in attrs.items():
        setattr(o, k, v)
    return o


def python_closure(root):
    """Reference closure for plain data (list/tuple/dict/set of atomic
    values), where gc.get_referents plus dict keys is exact."""
    seen = {id(root): root}
    todo = [root]
    while todo:
        o = todo.pop()
        refs = gc.get_referents(o)
        if type(o) is dict:
            refs.extend(o)
        for r in refs:
            if id(r) not in seen:
                seen[id(r)] = r
                todo.append(r)
    return seen


# From 3.14 on the collector never untracks a dict (only tuples of atomic
# values, at creation): such a dict then stays in the GC lists, which the
# tests below still cover, through the walk of those lists.
DICTS_UNTRACKED = sys.version_info < (3, 14)


def untrack(*objs):
    objs = [o for o in objs if DICTS_UNTRACKED or type(o) is not dict]
    for _ in range(5):
        gc.collect()
        if not any(gc.is_tracked(o) for o in objs):
            return
    raise AssertionError("precondition: the collector keeps tracking %r"
                         % ([type(o).__name__ for o in objs
                             if gc.is_tracked(o)],))


class DumpAllObjectsHolesTest(unittest.TestCase):
    """The known holes, all set up before one shared dump_all_objects."""

    @classmethod
    def setUpClass(cls):
        token = cls.token = os.urandom(6).hex()
        # 100 unique keys held only by one dict: untracked, then tracked
        cls.untracked_dict = {"uk-%d-%s" % (i, token): i * 1000003
                              for i in range(100)}
        cls.tracked_dict = {"tk-%d-%s" % (i, token): [i] for i in range(100)}
        # the same class, attribute values inline vs in a materialised dict
        cls.inline = Record("ia-" + token, ["ib"], ("ic-" + token,))
        cls.materialised = Record("ma-" + token, ["mb"], ("mc-" + token,))
        cls.materialised.__dict__
        # a string literal used only inside a function body
        cls.literal = "literal-only-in-body-" + token
        ns = {}
        exec(compile("def f():\n    return %r\n" % cls.literal,
                     "<meliae-test>", "exec"), ns)
        cls.function_holder = [ns.pop("f")]
        # untracked tuples (and an untracked dict) held by module globals
        cls.module = types.ModuleType("meliae_test_globals_" + token)
        exec(compile("x = (1, 2, 3)\n"
                     "y = (((%r + %r,),),)\n"
                     "z = {%r + 'k': (4.5,)}\n" % ("deep-", token, token),
                     "<meliae-test>", "exec"), cls.module.__dict__)
        m = cls.module
        untrack(cls.untracked_dict, m.x, m.y, m.y[0], m.y[0][0], m.z)
        lines = support.dump_to_list(scanner.dump_all_objects)
        cls.duplicates = support.duplicate_addresses(lines)
        cls.by_addr = support.index_by_address(lines)

    @classmethod
    def tearDownClass(cls):
        del cls.by_addr, cls.untracked_dict, cls.tracked_dict, cls.module

    def test_dump_all_objects_has_no_duplicates(self):
        self.assertEqual(self.duplicates, set())

    def test_dump_includes_100_unique_str_keys_held_only_by_an_untracked_dict(self):
        d = self.untracked_dict
        by_addr = self.by_addr
        self.assertIn(id(d), by_addr)
        for k in d:
            self.assertIn(id(k), by_addr, "key %r missing" % k)
            self.assertEqual(by_addr[id(k)]["type"], "str")
            self.assertEqual(by_addr[id(k)]["value"], k)
        self.assertEqual(by_addr[id(d)]["refs"], support.dict_pair_ids(d))
        self.assertEqual(by_addr[id(d)]["len"], 100)

    def test_dump_includes_100_unique_str_keys_held_only_by_a_tracked_dict(self):
        d = self.tracked_dict
        self.assertTrue(gc.is_tracked(d))
        by_addr = self.by_addr
        for k in d:
            self.assertIn(id(k), by_addr, "key %r missing" % k)
            self.assertEqual(by_addr[id(k)]["value"], k)
        self.assertEqual(by_addr[id(d)]["refs"][:200],
                         support.dict_pair_ids(d))

    def test_dump_shows_same_attributes_with_and_without_materialised_dict(self):
        inline, materialised = self.inline, self.materialised
        inst_dict = materialised.__dict__
        names = list(inst_dict)        # the class's shared key objects
        by_addr = self.by_addr

        # materialised: instance -> dict -> name/value pairs
        self.assertIn(id(inst_dict), by_addr[id(materialised)]["refs"])
        self.assertEqual(by_addr[id(inst_dict)]["refs"][:6],
                         support.dict_pair_ids(inst_dict))

        # inline (or, before 3.11, an ordinary dict): the same names and
        # the instance's own values, each dumped
        values = [inline.a, inline.b, inline.c]
        for o in names + values:
            self.assertIn(id(o), by_addr)
        refs = by_addr[id(inline)]["refs"]
        if PY311:
            self.assertEqual(refs[:6],
                             [id(x) for kv in zip(names, values) for x in kv])
            self.assertIn(id(Record), refs[6:])
        else:
            d = inline.__dict__
            self.assertIn(id(d), refs)
            self.assertEqual(by_addr[id(d)]["refs"][:6],
                             support.dict_pair_ids(d))

    def test_dump_includes_string_literal_used_only_in_function_body(self):
        f = self.function_holder[0]
        code = f.__code__
        consts = code.co_consts
        (lit,) = [c for c in consts if c == self.literal]
        by_addr = self.by_addr
        self.assertIn(id(lit), by_addr, "literal missing")
        self.assertEqual(by_addr[id(lit)]["value"], self.literal)
        self.assertIn(id(code), by_addr[id(f)]["refs"])
        self.assertIn(id(consts), by_addr[id(code)]["refs"])
        self.assertIn(id(lit), by_addr[id(consts)]["refs"])

    def test_dump_includes_untracked_tuple_held_by_module_global(self):
        mod, by_addr = self.module, self.by_addr
        x = mod.x
        self.assertIn(id(x), by_addr)
        self.assertEqual(by_addr[id(x)]["len"], 3)
        self.assertEqual(sorted(by_addr[id(x)]["refs"]),
                         sorted([id(1), id(2), id(3)]))
        chain = [mod.y, mod.y[0], mod.y[0][0], mod.y[0][0][0]]
        for outer, inner in zip(chain, chain[1:]):
            self.assertIn(id(outer), by_addr)
            self.assertEqual(by_addr[id(outer)]["refs"], [id(inner)])
        self.assertEqual(by_addr[id(chain[-1])]["value"],
                         "deep-" + self.token)
        (key,) = mod.z
        for o in (mod.z, key, mod.z[key], mod.z[key][0]):
            self.assertIn(id(o), by_addr)
        self.assertEqual(by_addr[id(mod.z)]["refs"],
                         [id(key), id(mod.z[key])])


class DumpAllObjectsGcStateTest(unittest.TestCase):

    def setUp(self):
        self.token = os.urandom(6).hex()

    def dump(self):
        lines = support.dump_to_list(scanner.dump_all_objects)
        self.assertEqual(support.duplicate_addresses(lines), set())
        return support.index_by_address(lines)

    def test_dump_includes_unreachable_cycle(self):
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            a = ["cycle-" + self.token]
            a.append(a)
            addr, str_addr = id(a), id(a[0])
            del a     # garbage, but alive until the next collection
            by_addr = self.dump()
            self.assertIn(addr, by_addr)
            self.assertIn(str_addr, by_addr)
            self.assertEqual(sorted(by_addr[addr]["refs"]),
                             sorted([str_addr, addr]))
        finally:
            gc.collect()
            if was_enabled:
                gc.enable()

    def test_dump_includes_gc_frozen_objects(self):
        if not hasattr(gc, "freeze"):
            self.skipTest("no gc.freeze")
        frozen = ["frozen-" + self.token]
        gc.freeze()
        try:
            by_addr = self.dump()
        finally:
            gc.unfreeze()
        self.assertIn(id(frozen), by_addr)
        self.assertIn(id(frozen[0]), by_addr)
        self.assertGreater(len(by_addr), 1000)


class DumpGcObjectsTest(unittest.TestCase):
    """One dump_gc_objects dump, read as a stream (it repeats objects and
    can be many times larger than dump_all_objects)."""

    @classmethod
    def setUpClass(cls):
        token = os.urandom(6).hex()
        cls.dup = "dup-" + token
        cls.l1, cls.l2 = [cls.dup], [cls.dup]
        cls.t = tuple(["ut-" + token, 3.25])
        cls.d = {"ud-" + token: 1}
        cls.holder = [cls.t, cls.d]
        untrack(cls.t, cls.d)
        gc.collect()
        cls.gc_objects = gc.get_objects()
        data = support.dump_to_bytes(scanner.dump_gc_objects)
        watch = {id(cls.dup), id(cls.t), id(cls.d), id(cls.holder)}
        cls.counts = collections.Counter()
        cls.watched = collections.defaultdict(list)
        cls.key_orders = collections.Counter()
        for line in support.iter_dump(data):
            a = line["address"]
            cls.counts[a] += 1
            cls.key_orders[tuple(line)] += 1
            if a in watch:
                cls.watched[a].append(line)

    @classmethod
    def tearDownClass(cls):
        del cls.gc_objects, cls.counts, cls.watched

    def test_dump_gc_objects_includes_every_gc_object(self):
        missing = [o for o in self.gc_objects if id(o) not in self.counts]
        self.assertEqual(len(missing), 0, sorted(
            {type(o).__name__ for o in missing})[:20])

    def test_dump_gc_objects_repeats_untracked_object_referenced_twice(self):
        lines = self.watched[id(self.dup)]
        self.assertGreaterEqual(len(lines), 2)
        for d in lines:
            self.assertEqual(d["value"], self.dup)

    def test_dump_gc_objects_includes_directly_referenced_untracked_objects(self):
        self.assertIn(id(self.t), self.counts)
        self.assertIn(id(self.d), self.counts)
        (holder_line,) = self.watched[id(self.holder)]
        self.assertEqual(sorted(holder_line["refs"]),
                         sorted([id(self.t), id(self.d)]))

    def test_dump_gc_objects_lines_follow_documented_key_order(self):
        for keys in self.key_orders:
            self.assertEqual(list(keys),
                             sorted(keys, key=support.KEY_ORDER.index))
            self.assertEqual(keys[:3], ("address", "type", "size"))


class DumpAllReferencedTest(unittest.TestCase):

    def setUp(self):
        self.token = os.urandom(6).hex()

    def plain_data(self):
        return ["p-" + self.token, 10 ** 30, (1.5, "q-" + self.token),
                {"k-" + self.token: b"bytes-" + self.token.encode(),
                 7: [None, True, -2.5]},
                {frozenset(["fs-" + self.token])}, bytearray(b"ba"), 12345678]

    def test_dump_all_referenced_starts_with_the_object(self):
        obj = self.plain_data()
        lines = support.dump_to_list(scanner.dump_all_referenced, obj)
        self.assertEqual(lines[0]["address"], id(obj))
        self.assertEqual(lines[0]["type"], "list")

    def test_dump_all_referenced_is_exactly_the_closure_of_plain_data(self):
        obj = self.plain_data()
        expected = python_closure(obj)
        lines = support.dump_to_list(scanner.dump_all_referenced, obj)
        self.assertEqual(support.duplicate_addresses(lines), set())
        got = {d["address"] for d in lines}
        self.assertEqual(
            got, set(expected),
            "extra: %s, missing: %s" % (
                len(got - set(expected)),
                [type(expected[a]).__name__ for a in set(expected) - got]))
        for d in lines:
            self.assertEqual(d["size"], sys.getsizeof(expected[d["address"]]))

    def test_get_recursive_size_of_plain_data_matches_getsizeof_sum(self):
        obj = self.plain_data()
        expected = python_closure(obj)
        count, total = scanner.get_recursive_size(obj)
        self.assertEqual(count, len(expected))
        self.assertEqual(total, sum(map(sys.getsizeof, expected.values())))

    def test_get_recursive_size_matches_dump_all_referenced(self):
        roots = {
            "instance": small(a="r-" + self.token, b=[1, 2], c={"x": (3,)}),
            "plain_data": self.plain_data(),
            "class": Small,
        }
        for name, obj in roots.items():
            with self.subTest(name):
                lines = support.dump_to_list(scanner.dump_all_referenced, obj)
                self.assertEqual(support.duplicate_addresses(lines), set())
                self.assertEqual(scanner.get_recursive_size(obj),
                                 (len(lines), sum(d["size"] for d in lines)))

    def test_dump_all_referenced_refs_point_to_dumped_objects(self):
        obj = [small(a="c-" + self.token, b=[1, "x"], c=None), (2.5, "t")]
        lines = support.dump_to_list(scanner.dump_all_referenced, obj)
        addrs = {d["address"] for d in lines}
        # an instance's own class is listed in its refs but not followed
        # (the scanner's documented choice: through the class and its
        # module, the closure of any instance would be most of the heap)
        unfollowed = {id(Small)}
        for d in lines:
            self.assertLessEqual(set(d.get("refs", ())) - unfollowed, addrs, d)
        inst = obj[0]
        for o in (inst.a, inst.b, inst.b[1], inst.c, obj[1], obj[1][1]):
            self.assertIn(id(o), addrs)

    def test_dump_all_referenced_lists_but_does_not_follow_instance_type(self):
        inst = small(a="c-" + self.token)
        lines = support.dump_to_list(scanner.dump_all_referenced, inst)
        by_addr = support.index_by_address(lines)
        self.assertIn(id(Small), by_addr[id(inst)]["refs"])
        self.assertNotIn(id(Small), by_addr)
        # reached another way, the class is dumped with its closure
        lines = support.dump_to_list(scanner.dump_all_referenced,
                                     [inst, Small])
        by_addr = support.index_by_address(lines)
        self.assertIn(id(Small), by_addr)
        self.assertIn(id(Small.__dict__["__module__"]), by_addr)

    def test_dump_all_referenced_of_atomic_object_is_one_line(self):
        big = 10 ** 40 + int(self.token, 16)
        lines = support.dump_to_list(scanner.dump_all_referenced, big)
        self.assertEqual(len(lines), 1)
        self.assertEqual(lines[0]["address"], id(big))
        self.assertEqual(lines[0]["type"], "int")
        self.assertEqual(lines[0]["size"], sys.getsizeof(big))
        self.assertEqual(scanner.get_recursive_size(big),
                         (1, sys.getsizeof(big)))

    def test_dump_all_referenced_follows_cycles_once(self):
        a = ["cyc-" + self.token]
        b = [a]
        a.append(b)
        lines = support.dump_to_list(scanner.dump_all_referenced, a)
        self.assertEqual(collections.Counter(d["address"] for d in lines),
                         {id(a): 1, id(b): 1, id(a[0]): 1})


if __name__ == "__main__":
    unittest.main()
