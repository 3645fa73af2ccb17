"""Do no harm: the scanner never runs the Python code of the heap's classes.

Every dunder of the hostile classes below records its call in ``CALLS``
and raises while ``ARMED`` is set.  The scanner must read sizes, lengths,
names and referents from C-level data (type slots, identity), so after
every dump function and query the list is empty and the dump is intact.
"""

import collections
import gc
import os
import sys
import tempfile
import types
import unittest

import support
from support import scanner

CALLS = []
ARMED = [False]


def _hit(what):
    if ARMED[0]:
        CALLS.append(what)
        raise RuntimeError("hostile %s called during a scan" % what)


def _install(cls, names):
    """Give cls hostile versions of ``names`` that defer to the parent
    class while disarmed."""
    for name in names:
        if not hasattr(cls.__mro__[1], name):
            continue
        def method(self, *args, _name=name, **kwargs):
            _hit("%s.%s" % (cls.__name__, _name))
            parent = getattr(super(cls, self), _name)
            return parent(*args, **kwargs)
        method.__name__ = name
        setattr(cls, name, method)
    return cls


class HostileMeta(type):
    def __getattribute__(cls, name):
        _hit("HostileMeta.__getattribute__(%s)" % name)
        return type.__getattribute__(cls, name)

    def __repr__(cls):
        _hit("HostileMeta.__repr__")
        return type.__repr__(cls)

    def __instancecheck__(cls, obj):
        _hit("HostileMeta.__instancecheck__")
        return type.__instancecheck__(cls, obj)

    def __subclasscheck__(cls, sub):
        _hit("HostileMeta.__subclasscheck__")
        return type.__subclasscheck__(cls, sub)

    def __eq__(cls, other):
        _hit("HostileMeta.__eq__")
        return cls is other

    def __hash__(cls):
        _hit("HostileMeta.__hash__")
        return id(cls) >> 4


class Hostile(metaclass=HostileMeta):
    def __init__(self, token):
        self.payload = ["payload-" + token]
        self.label = "label-" + token
        self.number = 10 ** 20

    def __sizeof__(self):
        _hit("Hostile.__sizeof__")
        return 10 ** 6

    def __len__(self):
        _hit("Hostile.__len__")
        return 10 ** 6

    def __eq__(self, other):
        _hit("Hostile.__eq__")
        return self is other

    def __hash__(self):
        _hit("Hostile.__hash__")
        return id(self) >> 4

    def __repr__(self):
        _hit("Hostile.__repr__")
        return "<hostile>"

    def __str__(self):
        _hit("Hostile.__str__")
        return "hostile"

    def __bool__(self):
        _hit("Hostile.__bool__")
        return True

    def __iter__(self):
        _hit("Hostile.__iter__")
        return iter(())

    def __getattr__(self, name):
        _hit("Hostile.__getattr__(%s)" % name)
        raise AttributeError(name)

    def __getattribute__(self, name):
        _hit("Hostile.__getattribute__(%s)" % name)
        return object.__getattribute__(self, name)

    def __dir__(self):
        _hit("Hostile.__dir__")
        return []

    def __reduce_ex__(self, protocol):
        _hit("Hostile.__reduce_ex__")
        return object.__reduce_ex__(self, protocol)

    @property
    def __class__(self):
        _hit("Hostile.__class__")
        return int


class Twin:
    """Same layout as Hostile, no hostile code: the size oracle."""

    def __init__(self, token):
        self.payload = ["payload-" + token]
        self.label = "label-" + token
        self.number = 10 ** 20


_SEQ = ("__len__", "__sizeof__", "__iter__", "__getitem__", "__eq__",
        "__hash__", "__repr__", "__str__", "__contains__", "__bool__",
        "__reversed__")


class HostileList(list):
    pass


class HostileDict(dict):
    pass


class HostileStr(str):
    pass


class HostileBytes(bytes):
    pass


class HostileTuple(tuple):
    pass


class HostileSet(set):
    pass


class HostileFrozenSet(frozenset):
    pass


class HostileInt(int):
    pass


class HostileFloat(float):
    pass


class HostileDeque(collections.deque):
    pass


class HostileModule(types.ModuleType):
    pass


for _cls in (HostileList, HostileTuple, HostileStr, HostileBytes,
             HostileSet, HostileFrozenSet, HostileDeque):
    _install(_cls, _SEQ)
_install(HostileDict, _SEQ[:-1] + ("keys", "items", "values", "get"))
_install(HostileInt, ("__index__", "__int__", "__float__", "__repr__",
                      "__sizeof__", "__hash__", "__eq__", "__bool__",
                      "__format__"))
_install(HostileFloat, ("__float__", "__repr__", "__sizeof__", "__hash__",
                        "__eq__", "__format__", "__int__"))
_install(HostileModule, ("__getattribute__", "__repr__", "__sizeof__",
                         "__dir__"))


def _module_getattr(name):
    _hit("module __getattr__(%s)" % name)
    raise AttributeError(name)


class PlainList(list):
    pass


class PlainDict(dict):
    pass


class PlainStr(str):
    pass


class PlainBytes(bytes):
    pass


class PlainTuple(tuple):
    pass


class PlainSet(set):
    pass


class PlainFrozenSet(frozenset):
    pass


class PlainInt(int):
    pass


class PlainFloat(float):
    pass


class PlainDeque(collections.deque):
    pass


class PlainModule(types.ModuleType):
    pass


def build(token, hostile):
    """The same objects built from the hostile or the plain classes."""
    if hostile:
        (inst, lst, dct, st, byt, tup, set_, fset, int_, flt, dq, mod) = (
            Hostile, HostileList, HostileDict, HostileStr, HostileBytes,
            HostileTuple, HostileSet, HostileFrozenSet, HostileInt,
            HostileFloat, HostileDeque, HostileModule)
    else:
        (inst, lst, dct, st, byt, tup, set_, fset, int_, flt, dq, mod) = (
            Twin, PlainList, PlainDict, PlainStr, PlainBytes, PlainTuple,
            PlainSet, PlainFrozenSet, PlainInt, PlainFloat, PlainDeque,
            PlainModule)
    objs = collections.OrderedDict()
    objs["instance"] = inst(token)
    objs["list"] = lst([1, "l-" + token, 3])
    objs["dict"] = dct({"d-" + token: 1, 2: [2]})
    objs["str"] = st("s-" + token)
    objs["bytes"] = byt(b"b-" + token.encode())
    objs["tuple"] = tup([1, "t-" + token])
    objs["set"] = set_([1, 2, "e-" + token])
    objs["frozenset"] = fset([3, 4])
    objs["int"] = int_(10 ** 25)
    objs["float"] = flt(2.5)
    objs["deque"] = dq([1, 2, 3, 4])
    objs["module"] = mod("m_" + token)
    return objs


class HostileClassesTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.token = os.urandom(6).hex()
        cls.hostile = build(cls.token, True)
        cls.plain = build(cls.token, False)
        # Hostile objects as dict keys and set members (hashed now, while
        # disarmed: the scanner must never hash or compare them again).
        cls.keyed = {cls.hostile["instance"]: "v", cls.hostile["str"]: 1,
                     cls.hostile["int"]: 2}
        cls.member_set = {cls.hostile["instance"], cls.hostile["tuple"]}
        # A module whose attribute lookups are hostile (PEP 562) and that
        # has lost its __name__.
        cls.getattr_module = types.ModuleType("meliae_getattr_" + cls.token)
        cls.getattr_module.__getattr__ = _module_getattr
        del cls.getattr_module.__name__
        cls.root = [cls.hostile, cls.keyed, cls.member_set, cls.getattr_module,
                    Hostile]
        cls.results = {}
        del CALLS[:]
        tmp = support.tempfile.TemporaryDirectory(prefix="meliae-test-")
        paths = {n: os.path.join(tmp.name, n + ".json")
                 for n in ("all", "gc", "referenced")}
        ARMED[0] = True
        try:
            scanner.dump_all_objects(paths["all"])
            scanner.dump_gc_objects(paths["gc"])
            scanner.dump_all_referenced(paths["referenced"], cls.root)
            cls.results["recursive"] = scanner.get_recursive_size(cls.root)
            for name, o in cls.hostile.items():
                cls.results["size_of", name] = scanner.size_of(o)
                cls.results["get_referents", name] = scanner.get_referents(o)
            cls.results["size_of", "keyed"] = scanner.size_of(cls.keyed)
            cls.results["get_referents", "keyed"] = scanner.get_referents(
                cls.keyed)
            cls.results["size_of", "class"] = scanner.size_of(Hostile)
        finally:
            ARMED[0] = False
            cls.calls = list(CALLS)
            del CALLS[:]
        try:
            cls.dumps = {n: support.read_dump(p) for n, p in paths.items()}
        finally:
            tmp.cleanup()
        cls.all_by_addr = support.index_by_address(cls.dumps["all"])

    @classmethod
    def tearDownClass(cls):
        del cls.hostile, cls.plain, cls.keyed, cls.member_set, cls.root
        del cls.dumps, cls.all_by_addr, cls.results

    def test_no_hostile_method_is_called_by_any_scan(self):
        self.assertEqual(self.calls, [])

    def test_hostile_methods_do_fire_when_armed(self):
        # the harness itself: an armed dunder records its call and raises
        probes = [
            lambda: sys.getsizeof(self.hostile["instance"]),
            lambda: len(self.hostile["list"]),
            lambda: hash(self.hostile["str"]),
            lambda: repr(self.hostile["dict"]),
            lambda: self.hostile["int"].__index__(),
            lambda: Hostile.__name__,
        ]
        ARMED[0] = True
        try:
            for probe in probes:
                with self.assertRaises(RuntimeError):
                    probe()
        finally:
            ARMED[0] = False
            calls = list(CALLS)
            del CALLS[:]
        self.assertEqual(len(calls), len(probes), calls)

    def test_dump_has_every_hostile_object_with_its_c_type_name(self):
        for name, o in self.hostile.items():
            with self.subTest(name):
                d = self.all_by_addr.get(id(o))
                self.assertIsNotNone(d)
                self.assertEqual(d["type"], support.tp_name(type(o)))

    def test_dump_size_of_hostile_object_equals_plain_twin(self):
        for name, o in self.hostile.items():
            with self.subTest(name):
                twin = self.plain[name]
                want = scanner.size_of(twin)
                self.assertEqual(self.all_by_addr[id(o)]["size"], want)
                self.assertEqual(self.results["size_of", name], want)
                self.assertNotEqual(want, 10 ** 6)
                if not support.may_have_inline_values(type(twin)):
                    self.assertEqual(want, sys.getsizeof(twin))
                else:
                    self.assertGreaterEqual(want, sys.getsizeof(twin))

    def test_dump_len_of_hostile_containers_is_the_c_length(self):
        for name in ("list", "dict", "str", "bytes", "tuple", "set",
                     "frozenset", "deque"):
            o = self.hostile[name]
            with self.subTest(name):
                real = type(o).__mro__[1].__len__(o)
                self.assertEqual(self.all_by_addr[id(o)].get("len"), real)

    def test_dump_refs_of_hostile_objects_cover_gc_referents(self):
        for name, o in self.hostile.items():
            with self.subTest(name):
                want = support.gc_referent_ids(o)
                got = self.all_by_addr[id(o)].get("refs", [])
                self.assertLessEqual(want, set(got))
                got = [id(r) for r in self.results["get_referents", name]]
                self.assertLessEqual(want, set(got))

    def test_dict_with_hostile_keys_dumps_key_value_pairs(self):
        want = support.dict_pair_ids(self.keyed)
        self.assertEqual(self.all_by_addr[id(self.keyed)]["refs"][:6], want)
        self.assertEqual([id(r) for r in
                          self.results["get_referents", "keyed"]][:6], want)

    def test_set_with_hostile_members_is_dumped_with_its_members(self):
        d = self.all_by_addr[id(self.member_set)]
        self.assertEqual(d["len"], 2)
        self.assertLessEqual({id(m) for m in self.member_set}, set(d["refs"]))

    def test_module_without_name_and_with_hostile_getattr_is_dumped(self):
        d = self.all_by_addr[id(self.getattr_module)]
        self.assertEqual(d["type"], "module")
        self.assertNotIn("name", d)

    def test_hostile_class_is_named_by_its_tp_name(self):
        d = self.all_by_addr[id(Hostile)]
        self.assertEqual(d["name"], "Hostile")
        self.assertEqual(d["type"], "HostileMeta")
        self.assertEqual(d["size"], sys.getsizeof(Hostile))
        self.assertEqual(self.results["size_of", "class"], d["size"])

    def test_recursive_size_and_referenced_dump_agree_despite_hostiles(self):
        lines = self.dumps["referenced"]
        self.assertEqual(lines[0]["address"], id(self.root))
        addrs = {d["address"] for d in lines}
        for o in self.hostile.values():
            self.assertIn(id(o), addrs)
        self.assertEqual(self.results["recursive"],
                         (len(lines), sum(d["size"] for d in lines)))

    def test_gc_dump_has_every_hostile_gc_object(self):
        addrs = {d["address"] for d in self.dumps["gc"]}
        for name, o in self.hostile.items():
            if gc.is_tracked(o):
                with self.subTest(name):
                    self.assertIn(id(o), addrs)



class NulInANameTest(unittest.TestCase):
    """A function's __name__ may hold a NUL; readers refuse one in a name
    (docs/dump-format.md), so the scanner leaves that name out rather
    than write a line that would cost the whole snapshot."""

    def test_a_name_with_a_nul_is_left_out_and_the_dump_loads(self):
        def f():
            pass
        f.__name__ = "f\x00g"
        from meliae import loader
        with tempfile.TemporaryDirectory(prefix="meliae-test-") as d:
            path = os.path.join(d, "dump.json")
            scanner.dump_all_objects(path)
            with open(path, "rb") as fh:
                raw = fh.read()
            mine = [x for x in support.parse_dump(raw)
                    if x["address"] == id(f)]
            self.assertEqual(len(mine), 1)
            self.assertEqual(mine[0]["type"], "function")
            self.assertNotIn("name", mine[0])
            om = loader.load(path, show_prog=False)
            self.assertIn(id(f), om.objs)
        self.assertEqual(f.__name__, "f\x00g")


if __name__ == "__main__":
    unittest.main()
