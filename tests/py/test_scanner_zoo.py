"""Every builtin kind of object, checked against CPython.

For each object of the zoo: ``size`` is ``sys.getsizeof`` (more only for
instances whose attribute values live outside a dict, 3.11+), ``refs``
contain ``gc.get_referents`` (plus dict keys), and ``name``/``len``/
``value`` follow the documented format.  Checked three ways: through
``size_of``/``get_referents``, and through the object's line in a
``dump_all_objects`` dump taken while the zoo is alive.
"""

import array
import builtins
import collections
import functools
import gc
import json
import math
import os
import sys
import types
import unittest
import weakref

import support
from support import scanner

PY311 = sys.version_info >= (3, 11)
PY313 = sys.version_info >= (3, 13)
INT64_MIN = -(2 ** 63)
INT64_MAX = 2 ** 63 - 1


class Plain:
    def __init__(self, a, b, c):
        self.a = a
        self.b = b
        self.c = c

    def method(self):
        return self.a


class Empty:
    pass


class Slotted:
    __slots__ = ("x", "y", "__weakref__")

    def __init__(self, x, y):
        self.x = x
        self.y = y


class DictSub(dict):
    pass


class ListSub(list):
    pass


class TupleSub(tuple):
    pass


class StrSub(str):
    pass


class BytesSub(bytes):
    pass


class SetSub(set):
    pass


class FrozenSetSub(frozenset):
    pass


class IntSub(int):
    pass


# Names that are not ASCII (the dump writes them \u-escaped).
NonAscii = type("\u00dcnic\u00f8de\u0394", (), {})


def non_ascii_function():
    pass


non_ascii_function.__name__ = "\u0444\u0443\u043d\u043a\U0001f600"


def long_named():
    pass


long_named.__name__ = "n" * 2000


class _Yield:
    def __await__(self):
        yield "suspended"


def module_function(a, b=2):
    return a + b


def make_closure(value):
    def inner():
        return value
    return inner


def generator_function(n):
    for i in range(n):
        yield i


async def coroutine_function():
    await _Yield()
    return 1


async def async_generator_function():
    yield 1


def frame_of_finished_call(marker):
    local_value = [marker]
    return sys._getframe(), local_value


def make_zoo(token):
    """name -> object.  Strings are built at run time (unique, never
    interned or shared with other code) so their addresses are theirs."""
    z = {}
    # ints
    z["int_zero"] = 0
    z["int_small"] = 7
    z["int_small_negative"] = -5
    z["int_medium"] = int("123456789" + "0")
    z["int_negative"] = -int("987654321")
    z["int_max64"] = INT64_MAX
    z["int_min64"] = INT64_MIN
    z["int_2_63"] = 2 ** 63
    z["int_below_min64"] = INT64_MIN - 1
    z["int_big"] = 2 ** 200 + 12345
    z["int_big_negative"] = -(3 ** 300)
    z["int_subclass"] = IntSub(12345)
    z["bool_true"] = True
    z["bool_false"] = False
    # floats and complex
    z["float"] = float("0.1")
    z["float_third"] = 1.0 / 3.0
    z["float_negative_zero"] = -0.0
    z["float_tiny"] = 5e-324
    z["float_huge"] = 1.7976931348623157e308
    z["float_integral"] = 3.0
    z["float_1e22"] = 1e22
    z["float_inf"] = float("inf")
    z["float_minus_inf"] = float("-inf")
    z["float_nan"] = float("nan")
    z["complex"] = complex(1.5, -2.25)
    # str in every kind
    z["str_empty"] = str()
    z["str_ascii"] = "hello-" + token
    z["str_long_ascii"] = "x" * 50 + token + "y" * 200
    z["str_latin1"] = "caf\xe9-" + token + "\xff"
    z["str_ucs2"] = "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac-" + token + "\u20ac"
    z["str_ucs4"] = "emoji-\U0001f600-" + token + "\U0010ffff"
    z["str_long_ucs4"] = "\U0001f600" * 99 + "\U0001f601" * 60 + token
    z["str_escapes"] = ('quote" back\\ nl\n cr\r tab\t ctl\x01\x1f del\x7f '
                        'slash/ ' + token)
    z["str_nul"] = "a\x00b-" + token
    z["str_lone_surrogate"] = "a\ud800b\udfff-" + token
    z["str_subclass"] = StrSub("sub-" + token)
    # bytes and friends
    z["bytes_empty"] = bytes()
    z["bytes"] = b"\x00\x01abc\"\\\n\x7f\x80\xff-" + token.encode()
    z["bytes_all_values"] = bytes(range(256)) + token.encode()
    z["bytes_subclass"] = BytesSub(b"sub-" + token.encode())
    z["bytearray"] = bytearray(b"abc" * 10)
    z["bytearray_empty"] = bytearray()
    grown = bytearray(b"x" * 10)
    grown.extend(b"y" * 50)
    z["bytearray_grown"] = grown
    shifted = bytearray(b"0123456789" * 5)
    del shifted[:7]                     # a logical start inside the buffer
    z["bytearray_shifted"] = shifted
    cleared = bytearray(b"z" * 100)
    cleared.clear()
    z["bytearray_cleared"] = cleared
    z["memoryview"] = memoryview(bytearray(b"abcd" + token.encode()))
    # tuples
    z["tuple_empty"] = ()
    z["tuple_untracked"] = tuple([1, 2.5, "t-" + token])
    z["tuple_tracked"] = tuple([[], {}])
    z["tuple_subclass"] = TupleSub([1, "ts-" + token])
    # lists
    z["list_empty"] = []
    z["list"] = [1, "l-" + token, None, [], 2.5]
    z["list_overallocated"] = []
    for i in range(17):
        z["list_overallocated"].append(i)
    z["list_subclass"] = ListSub([1, 2, 3])
    # dicts
    z["dict_empty"] = {}
    z["dict_str_keys"] = {"k1-" + token: 1, "k2-" + token: [2], "k3-" + token: "v"}
    z["dict_non_str_keys"] = {1: "a", (1, 2): "b", 2.5: [], None: 0,
                              frozenset([token]): 1, b"by": 2}
    z["dict_large"] = {"key%d-%s" % (i, token): i for i in range(300)}
    z["dict_with_deleted"] = {"d%d-%s" % (i, token): i for i in range(20)}
    for i in range(0, 20, 2):
        del z["dict_with_deleted"]["d%d-%s" % (i, token)]
    z["dict_subclass"] = DictSub({"ds-" + token: 1, 2: "two"})
    z["ordereddict"] = collections.OrderedDict([("o1-" + token, 1), ("o2", [2])])
    z["defaultdict"] = collections.defaultdict(list, {"dd-" + token: [1]})
    z["counter"] = collections.Counter("abracadabra")
    # instances and their dicts
    z["instance_inline"] = Plain("a-" + token, [1], 3.5)
    z["instance_inline_twin"] = Plain("twin-" + token, [2], 4.5)
    z["instance_materialised"] = Plain("m-" + token, [3], 5.5)
    z["split_instance_dict"] = z["instance_materialised"].__dict__
    z["instance_empty_class"] = Empty()
    z["instance_slots"] = Slotted("sx-" + token, [4])
    z["instance_list_subclass_with_attr"] = ListSub([9])
    z["instance_list_subclass_with_attr"].attr = "attr-" + token
    # sets
    z["set_empty"] = set()
    z["set"] = {1, "s-" + token, (1, 2)}
    z["set_large"] = set(range(1000))
    z["set_subclass"] = SetSub([1, 2])
    z["frozenset_empty"] = frozenset()
    z["frozenset"] = frozenset(["f-" + token, 3])
    z["frozenset_subclass"] = FrozenSetSub([5])
    # other containers
    z["range"] = range(0, 100, 3)
    z["slice"] = slice(1, "stop-" + token, None)
    z["array_double"] = array.array("d", [1.0, 2.0, 3.0])
    z["array_int_grown"] = array.array("i")
    for i in range(33):
        z["array_int_grown"].append(i)
    z["deque"] = collections.deque([1, "dq-" + token, 3], maxlen=10)
    z["deque_large"] = collections.deque(range(200))
    z["mappingproxy_of_class"] = Plain.__dict__
    z["mappingproxy"] = types.MappingProxyType({"mp-" + token: 1})
    z["simple_namespace"] = types.SimpleNamespace(a=1, b="ns-" + token)
    # callables
    z["function"] = module_function
    z["lambda"] = lambda x: x
    z["closure"] = make_closure("cell-" + token)
    z["cell"] = z["closure"].__closure__[0]
    z["code"] = module_function.__code__
    z["partial"] = functools.partial(module_function, 1, b=2)
    z["property"] = property(Plain.method)
    z["staticmethod"] = staticmethod(module_function)
    z["classmethod"] = classmethod(module_function)
    z["bound_method"] = z["instance_inline_twin"].method
    z["builtin_function"] = len
    z["builtin_method"] = z["list"].append
    z["method_descriptor"] = list.append
    z["wrapper_descriptor"] = object.__init__
    z["method_wrapper"] = z["int_medium"].__add__
    z["getset_descriptor"] = types.FunctionType.__dict__["__name__"]
    z["member_descriptor"] = Slotted.__dict__["x"]
    # generators, coroutines, frames, tracebacks, exceptions
    z["generator_fresh"] = generator_function(3)
    z["generator_started"] = generator_function(3)
    next(z["generator_started"])
    z["coroutine"] = coroutine_function()
    z["coroutine"].send(None)
    z["async_generator"] = async_generator_function()
    z["frame"], z["frame_local"] = frame_of_finished_call("fr-" + token)
    try:
        raise ValueError("boom-" + token)
    except ValueError as e:
        z["exception"] = e
    z["traceback"] = z["exception"].__traceback__
    try:
        try:
            raise KeyError("inner")
        except KeyError:
            raise RuntimeError("outer")
    except RuntimeError as e:
        z["exception_chained"] = e
    # modules and types
    z["module"] = types.ModuleType("meliae_zoo_" + token)
    z["module"].payload = ["mod-" + token]
    z["module_json"] = json
    z["type_heap"] = Plain
    z["type_static"] = int
    z["type_static_dotted"] = collections.deque
    z["type_type"] = type
    # weak references
    z["weakref_target"] = Empty()
    z["weakref"] = weakref.ref(z["weakref_target"])
    z["weakref_callback"] = weakref.ref(z["weakref_target"], lambda r: None)
    z["weakproxy"] = weakref.proxy(z["weakref_target"])
    # iterators and views
    z["list_iterator"] = iter(z["list"])
    z["dict_keys_view"] = z["dict_str_keys"].keys()
    z["dict_items_iterator"] = iter(z["dict_str_keys"].items())
    z["enumerate"] = enumerate(z["list"])
    z["zip"] = zip(z["list"], z["list"])
    z["map"] = map(str, z["list"])
    z["super"] = super(ListSub, z["list_subclass"])
    # names
    z["type_non_ascii"] = NonAscii
    z["instance_non_ascii"] = NonAscii()
    z["function_non_ascii"] = non_ascii_function
    z["function_long_name"] = long_named
    # singletons
    z["none"] = None
    z["ellipsis"] = Ellipsis
    z["notimplemented"] = NotImplemented
    z["object"] = object()
    add_new_builtins(z, token)
    return z


def add_new_builtins(z, token):
    """The builtin types of the newer interpreters, where they exist."""
    if sys.version_info >= (3, 13):
        def locals_proxy():
            local = "local-" + token
            return sys._getframe().f_locals, local
        z["frame_locals_proxy"] = locals_proxy()[0]
    if sys.version_info >= (3, 14):
        from string.templatelib import Template, Interpolation
        value = "tv-" + token
        t = Template("head-" + token, Interpolation(value, "value", "r", ">10"))
        z["template"] = t
        z["interpolation"] = t.interpolations[0]
    if sys.version_info >= (3, 15):
        fz = getattr(builtins, "frozendict")
        z["frozendict"] = fz({"fk-" + token: ["fv"], 7: 2.5,
                              "fk2-" + token: "v-" + token})
        z["frozendict_empty"] = fz()
        z["sentinel"] = getattr(builtins, "sentinel")("MISSING_" + token)
        ns = {}
        # PEP 810: the global stays a proxy until it is first used.
        exec("lazy from json import decoder\n", ns)
        z["lazy_import"] = ns["decoder"]


class ZooTest(unittest.TestCase):
    """One dump_all_objects dump of the whole heap with the zoo alive."""

    @classmethod
    def setUpClass(cls):
        cls.token = os.urandom(6).hex()
        cls.zoo = make_zoo(cls.token)
        gc.collect()     # untracks the atomic-only tuples and dicts
        cls.gc_objects = gc.get_objects()
        cls.raw = support.dump_to_bytes(scanner.dump_all_objects)
        cls.lines = support.parse_dump(cls.raw)
        cls.by_addr = support.index_by_address(cls.lines)
        cls.raw_by_addr = {}
        for raw_line, d in zip(cls.raw.split(b"\n"), cls.lines):
            cls.raw_by_addr[d["address"]] = raw_line

    @classmethod
    def tearDownClass(cls):
        cls.zoo["coroutine"].close()
        del cls.zoo, cls.gc_objects, cls.raw, cls.lines, cls.by_addr
        del cls.raw_by_addr

    # -- helpers -----------------------------------------------------------

    def line(self, name):
        o = self.zoo[name]
        d = self.by_addr.get(id(o))
        self.assertIsNotNone(d, "%s (%s) missing from dump_all_objects"
                             % (name, type(o).__name__))
        return d

    def check_size(self, name, o, size):
        expected = sys.getsizeof(o)
        if name == "instance_inline" and PY311:
            self.assertGreater(size, expected, "%s: inline values array not "
                               "counted (getsizeof %d)" % (name, expected))
        elif name == "instance_materialised" and PY313:
            self.assertGreater(size, expected, "%s: 3.13 keeps the values "
                               "inside the object (getsizeof %d)"
                               % (name, expected))
        elif (name != "instance_materialised"
              and support.may_have_inline_values(type(o))):
            self.assertGreaterEqual(size, expected, name)
        else:
            self.assertEqual(size, expected, "%s (%s): size %d, getsizeof %d"
                             % (name, type(o).__name__, size, expected))

    def check_refs(self, name, o, refs):
        missing = support.gc_referent_ids(o) - set(refs)
        self.assertFalse(missing, "%s (%s): refs lack %d of gc.get_referents "
                         "(+keys): %s" % (
                             name, type(o).__name__, len(missing),
                             [type(r).__name__ for r in gc.get_referents(o)
                              if id(r) in missing][:10]))
        if support.is_dict_like(o):
            pairs = support.dict_pair_ids(o)
            self.assertEqual(refs[:len(pairs)], pairs,
                             "%s: refs must start with key/value pairs" % name)

    # -- size_of / get_referents ------------------------------------------

    def test_size_of_matches_getsizeof_for_every_zoo_object(self):
        for name, o in self.zoo.items():
            with self.subTest(name):
                self.check_size(name, o, scanner.size_of(o))

    def test_get_referents_cover_gc_referents_for_every_zoo_object(self):
        for name, o in self.zoo.items():
            with self.subTest(name):
                refs = scanner.get_referents(o)
                self.assertIsInstance(refs, list)
                self.check_refs(name, o, [id(r) for r in refs])

    def test_get_referents_of_dict_returns_the_key_and_value_objects(self):
        d = self.zoo["dict_non_str_keys"]
        refs = scanner.get_referents(d)
        expected = [x for kv in d.items() for x in kv]
        self.assertEqual(len(refs), len(expected))
        for got, want in zip(refs, expected):
            self.assertIs(got, want)

    # -- the dump line ------------------------------------------------------

    def test_dump_line_size_matches_getsizeof_for_every_zoo_object(self):
        for name, o in self.zoo.items():
            with self.subTest(name):
                d = self.line(name)
                self.check_size(name, o, d["size"])
                self.assertEqual(d["size"], scanner.size_of(o),
                                 "size_of and the dump disagree")

    def test_dump_line_type_is_tp_name_for_every_zoo_object(self):
        for name, o in self.zoo.items():
            with self.subTest(name):
                self.assertEqual(self.line(name)["type"],
                                 support.tp_name(type(o)))

    def test_dump_line_type_names_of_well_known_types(self):
        expect = {"dict_str_keys": "dict", "str_ascii": "str",
                  "list": "list", "deque": "collections.deque",
                  "ordereddict": "collections.OrderedDict",
                  "defaultdict": "collections.defaultdict",
                  "partial": "functools.partial", "array_double":
                  "array.array", "instance_inline": "Plain",
                  "bool_true": "bool", "none": "NoneType",
                  "instance_non_ascii": "\u00dcnic\u00f8de\u0394"}
        for name, tname in expect.items():
            with self.subTest(name):
                self.assertEqual(self.line(name)["type"], tname)

    def test_dump_line_refs_cover_gc_referents_for_every_zoo_object(self):
        for name, o in self.zoo.items():
            with self.subTest(name):
                self.check_refs(name, o, self.line(name).get("refs", []))

    def test_dump_includes_every_gc_object_listed_before_the_dump(self):
        missing = [o for o in self.gc_objects if id(o) not in self.by_addr]
        self.assertEqual(
            len(missing), 0, "%d of %d gc objects missing, e.g. types %s" % (
                len(missing), len(self.gc_objects),
                sorted({type(o).__name__ for o in missing})[:15]))

    def test_dump_line_keys_follow_documented_order(self):
        bad = []
        for d in self.lines:
            keys = list(d)
            if (any(k not in support.KEY_ORDER for k in keys)
                    or keys != sorted(keys, key=support.KEY_ORDER.index)
                    or keys[:3] != ["address", "type", "size"]):
                bad.append(keys)
        self.assertEqual(bad[:5], [])

    def test_dump_is_ascii_only(self):
        if not self.raw.isascii():
            bad = [line for line in self.raw.split(b"\n")
                   if not line.isascii()]
            self.fail("non-ASCII lines, e.g. %r" % bad[:3])

    def test_dump_lines_always_have_refs(self):
        self.assertEqual([d for d in self.lines if "refs" not in d][:3], [])

    def test_dump_records_len_for_sized_builtins(self):
        sized = (list, tuple, dict, set, frozenset, bytearray,
                 collections.deque, array.array, str, bytes,
                 *support._DICT_TYPES)
        n = 0
        for name, o in self.zoo.items():
            if isinstance(o, sized):
                n += 1
                with self.subTest(name):
                    self.assertEqual(self.line(name).get("len"), len(o))
        self.assertGreater(n, 30)

    def test_dump_records_str_value_first_100_characters(self):
        for name, o in self.zoo.items():
            if type(o) is str:
                with self.subTest(name):
                    self.assertEqual(self.line(name).get("value", KeyError),
                                     o[:100])

    def test_dump_records_values_of_str_bytes_and_int_subclasses(self):
        self.assertEqual(self.line("str_subclass").get("value", KeyError),
                         str(self.zoo["str_subclass"]))
        self.assertEqual(self.line("bytes_subclass").get("value", KeyError),
                         bytes(self.zoo["bytes_subclass"]).decode("latin-1"))
        self.assertEqual(self.line("int_subclass").get("value", KeyError),
                         12345)

    def test_dump_escapes_non_bmp_str_as_surrogate_pairs(self):
        raw = self.raw_by_addr[id(self.zoo["str_ucs4"])]
        self.assertTrue(all(b < 0x80 for b in raw),
                        "str value not ASCII-escaped: %r" % raw[:120])
        self.assertRegex(raw.decode("ascii").lower(), r"\\ud83d\\ude00")
        self.assertRegex(raw.decode("ascii").lower(), r"\\udbff\\udfff")

    def test_dump_records_bytes_value_as_latin1(self):
        for name in ("bytes_empty", "bytes", "bytes_all_values"):
            o = self.zoo[name]
            with self.subTest(name):
                self.assertEqual(self.line(name).get("value", KeyError),
                                 o[:100].decode("latin-1"))

    def test_dump_records_int_value_only_within_int64(self):
        for name, o in self.zoo.items():
            if type(o) is not int:
                continue
            with self.subTest(name):
                d = self.line(name)
                if INT64_MIN <= o <= INT64_MAX:
                    self.assertIs(type(d.get("value")), int, d)
                    self.assertEqual(d["value"], o)
                else:
                    self.assertNotIn("value", d)

    def test_dump_records_bool_and_none_values(self):
        self.assertIs(self.line("bool_true").get("value"), True)
        self.assertIs(self.line("bool_false").get("value"), False)
        d = self.line("none")
        self.assertIn("value", d)
        self.assertIsNone(d["value"])

    def test_dump_records_float_value_that_round_trips(self):
        specials = {"float_inf": "inf", "float_minus_inf": "-inf",
                    "float_nan": "nan"}
        for name, o in self.zoo.items():
            if type(o) is not float:
                continue
            with self.subTest(name):
                v = self.line(name).get("value", KeyError)
                if name in specials:
                    self.assertEqual(v, specials[name])
                    continue
                self.assertIs(type(v), float, v)     # "1.0", never "1"
                self.assertEqual(v, o)
                self.assertEqual(math.copysign(1.0, v),
                                 math.copysign(1.0, o))

    def test_dump_records_names_of_modules_functions_types_and_code(self):
        expect = {
            "module": self.zoo["module"].__name__,
            "module_json": "json",
            "function": "module_function",
            "lambda": "<lambda>",
            "closure": "inner",
            "builtin_function": "len",
            "builtin_method": "append",
            "type_heap": "Plain",
            "type_static": "int",
            "type_static_dotted": "collections.deque",
            "type_type": "type",
            "code": "module_function",
            "type_non_ascii": "\u00dcnic\u00f8de\u0394",
            "function_non_ascii": non_ascii_function.__name__,
            "function_long_name": "n" * 1000,    # at most 1000 characters
        }
        for name, value in expect.items():
            with self.subTest(name):
                self.assertEqual(self.line(name).get("name"), value)

    def test_dump_split_instance_dict_refs_are_attribute_pairs(self):
        inst = self.zoo["instance_materialised"]
        d = self.line("split_instance_dict")
        self.assertEqual(d.get("len"), 3)
        self.assertEqual(d["refs"][:6], support.dict_pair_ids(inst.__dict__))
        self.assertIn(id(inst.__dict__), self.line("instance_materialised")
                      .get("refs", []))

    @unittest.skipUnless(PY311, "inline values exist from 3.11")
    def test_dump_inline_instance_refs_are_names_values_then_type(self):
        inst = self.zoo["instance_inline"]
        # The twin shares the class's keys: its materialised __dict__ shows
        # the very key objects the inline instance uses.
        names = list(self.zoo["instance_materialised"].__dict__)
        self.assertEqual(names, ["a", "b", "c"])
        values = [inst.a, inst.b, inst.c]
        expected = [id(x) for kv in zip(names, values) for x in kv]
        refs = self.line("instance_inline")["refs"]
        self.assertEqual(refs[:6], expected)
        self.assertIn(id(Plain), refs[6:])
        self.assertEqual([id(r) for r in scanner.get_referents(inst)][:6],
                         expected)

    def test_dump_code_refs_include_consts_names_filename_and_name(self):
        code = self.zoo["code"]
        refs = self.line("code").get("refs", [])
        for attr in ("co_consts", "co_names", "co_filename", "co_name"):
            with self.subTest(attr):
                self.assertIn(id(getattr(code, attr)), refs)

    def test_dump_function_refs_include_code_and_globals(self):
        refs = self.line("function").get("refs", [])
        self.assertIn(id(module_function.__code__), refs)
        self.assertIn(id(module_function.__globals__), refs)


def _type_dict(t):
    # type's own descriptor: no metaclass __getattribute__ runs
    return type.__dict__["__dict__"].__get__(t)


def _type_mro(t):
    return type.__dict__["__mro__"].__get__(t)


class WholeHeapTest(unittest.TestCase):
    """Every gc object of the process against CPython, in one dump.

    Sizes and referents are taken right before the dump; frames executing
    in this thread are left out (their referents change as they run)."""

    @classmethod
    def setUpClass(cls):
        gc.collect()
        cls.tmp = support.tempfile.TemporaryDirectory(prefix="meliae-test-")
        path = os.path.join(cls.tmp.name, "heap.json")
        objs = gc.get_objects()
        skip = support.running_frames()
        skip.add(id(objs))
        static_sizes = {}
        referents = {}
        for o in objs:
            if id(o) in skip:
                continue
            t = type(o)
            if not support.is_heap_type(t):
                static_sizes[id(o)] = sys.getsizeof(o)
            referents[id(o)] = support.gc_referent_ids(o)
        scanner.dump_all_objects(path)
        # An object that another thread changed around the dump (a dict of
        # the threading module when an earlier test's thread ends: from
        # 3.14 on every dict is in the collector's lists) is no oracle:
        # keep only what reads the same after the dump as before it.
        for o in objs:
            i = id(o)
            if i in static_sizes and sys.getsizeof(o) != static_sizes[i]:
                del static_sizes[i]
            if i in referents and support.gc_referent_ids(o) != referents[i]:
                del referents[i]
        cls.objs = objs
        cls.static_sizes = static_sizes
        cls.referents = referents
        cls.lines = support.read_dump(path)
        cls.by_addr = support.index_by_address(cls.lines)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()
        del cls.objs, cls.static_sizes, cls.referents, cls.lines, cls.by_addr

    def test_dump_all_objects_has_no_duplicate_addresses(self):
        self.assertEqual(support.duplicate_addresses(self.lines), set())

    def test_dump_all_objects_refs_point_to_dumped_objects(self):
        dangling = set()
        for d in self.lines:
            for r in d.get("refs", ()):
                if r not in self.by_addr:
                    dangling.add(r)
        self.assertEqual(len(dangling), 0,
                         "%d referenced addresses have no line" % len(dangling))

    def test_dump_all_objects_includes_every_gc_object(self):
        missing = [o for o in self.objs if id(o) not in self.by_addr]
        self.assertEqual(len(missing), 0, sorted(
            {type(o).__name__ for o in missing})[:20])

    def test_dump_type_is_tp_name_for_every_gc_object(self):
        names = {}
        bad = collections.Counter()
        for o in self.objs:
            d = self.by_addr.get(id(o))
            if d is None:
                continue
            t = type(o)
            if t not in names:
                names[t] = support.tp_name(t)
            if d["type"] != names[t]:
                bad[(names[t], d["type"])] += 1
        self.assertEqual(dict(bad), {})

    def test_dump_size_is_getsizeof_for_every_object_of_a_static_type(self):
        bad = collections.Counter()
        example = {}
        for addr, size in self.static_sizes.items():
            d = self.by_addr.get(addr)
            if d is not None and d["size"] != size:
                bad[d["type"]] += 1
                example.setdefault(d["type"], (d["size"], size))
        self.assertEqual(dict(bad), {}, "(dump, getsizeof): %r" % example)

    def test_dump_size_is_at_least_getsizeof_for_instances_of_classes(self):
        bad = collections.Counter()
        for o in self.objs:
            t = type(o)
            d = self.by_addr.get(id(o))
            if d is None or not support.is_heap_type(t):
                continue
            if any("__sizeof__" in _type_dict(b) for b in _type_mro(t)
                   if support.is_heap_type(b)):
                continue     # a Python __sizeof__: getsizeof is no oracle
            expected = sys.getsizeof(o)
            if support.may_have_inline_values(t):
                ok = d["size"] >= expected
            else:
                ok = d["size"] == expected
            if not ok:
                bad[d["type"]] += 1
        self.assertEqual(dict(bad), {})

    def test_dump_refs_cover_gc_referents_for_every_gc_object(self):
        bad = collections.Counter()
        for addr, expected in self.referents.items():
            d = self.by_addr.get(addr)
            if d is None:
                continue
            if not expected <= set(d.get("refs", ())):
                bad[d["type"]] += 1
        self.assertEqual(dict(bad), {})

    def test_dump_names_functions_modules_and_code_objects(self):
        bad = []
        for o in self.objs:
            t = type(o)
            if t is types.FunctionType:
                want = o.__name__
            elif t is types.CodeType:
                want = o.co_name
            elif t is types.ModuleType:
                want = o.__dict__.get("__name__")
                if type(want) is not str:
                    continue
            elif issubclass(t, type):
                want = support.tp_name(o)
            else:
                continue
            d = self.by_addr.get(id(o))
            want = want[:1000]       # names are cut at 1000 characters
            if d is not None and d.get("name") != want:
                bad.append((t.__name__, want[:80], d.get("name")))
        self.assertEqual(bad[:10], [])


if __name__ == "__main__":
    unittest.main()
