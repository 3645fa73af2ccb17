# SPDX-License-Identifier: MIT
"""How birth sites are looked up (scanner/traces.c): on 3.12+ in
tracemalloc's own tables by traceback pointer ("pointer"), before 3.12
one tuple per object ("tuple").

Each case runs in a child interpreter (support.run_child).  CPython is the
oracle: every object's traceback in the dump must be
tracemalloc.get_object_traceback(obj)'s, and the two paths must describe
the same heap alike.
"""

import json
import sys
import unittest

from support import describe_child, run_child

PRELUDE = r'''
import json, os, sys, tempfile, tracemalloc
from meliae import scanner, _scanner

def dump(want, frames, tuple_only=False):
    """{id(obj): frames of its traceback or None} for the objects in
    want, the table ({id: frames}) and the path the lookup took."""
    want = {id(o) for o in want}
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    _scanner._traces_tuple_only(tuple_only)
    try:
        scanner.dump_all_objects(path, traces=frames)
        used = _scanner._traces_path()
        objs, table = {}, {}
        with open(path, "rb") as f:
            for raw in f:
                line = json.loads(raw)
                if "traceback" in line:
                    table[line["traceback"]] = line["frames"]
                elif line["address"] in want:
                    objs[line["address"]] = line.get("trace")
    finally:
        _scanner._traces_tuple_only(False)
        os.unlink(path)
    return ({a: table[t] if t is not None else None
             for a, t in objs.items()}, table, used)

def oracle(obj):
    tb = tracemalloc.get_object_traceback(obj)
    return None if tb is None else [[f.filename, f.lineno]
                                    for f in reversed(tb)]

def out(x):
    sys.stdout.write(json.dumps(x) + "\n")

def load(name, src):
    path = os.path.join(tempfile.mkdtemp(), name + ".py")
    with open(path, "w") as f:
        f.write(src)
    sys.path.insert(0, os.path.dirname(path))
    return __import__(name), path
'''

# Objects of every shape at known lines: the marker comment names each.
HEAP = (
    "class Managed:\n"                          # instances: managed dict
    "    def __init__(self, v):\n"
    "        self.v = v\n"
    "\n"
    "class Slotted:\n"
    "    __slots__ = ('v',)\n"
    "    def __init__(self, v):\n"
    "        self.v = v\n"
    "\n"
    "def managed(n):\n"
    "    return [Managed(i) for i in range(n)]  # MANAGED\n"
    "\n"
    "def slotted(n):\n"
    "    return [Slotted(i) for i in range(n)]  # SLOTTED\n"
    "\n"
    "def strings(n):\n"
    "    return ['s%05d' % i for i in range(n)]  # STR\n"
    "\n"
    "def blobs(n):\n"
    "    return [bytes(40 + i) for i in range(n)]  # BYTES\n"
    "\n"
    "def lists(n):\n"
    "    return [[i, i] for i in range(n)]  # LIST\n"
    "\n"
    "def dicts(n):\n"
    "    return [{'k': i} for i in range(n)]  # DICT\n"
    "\n"
    "def floats(n):\n"
    "    return [i + 0.5 for i in range(n)]  # FLOAT\n"
    "\n"
    "def build(n):\n"
    "    return {'managed': managed(n), 'slotted': slotted(n),\n"
    "            'str': strings(n), 'bytes': blobs(n), 'list': lists(n),\n"
    "            'dict': dicts(n), 'float': floats(n)}\n"
)


def marker_line(marker):
    return next(i for i, t in enumerate(HEAP.splitlines(), 1) if marker in t)


def child(code):
    proc = run_child(PRELUDE + code)
    if proc.returncode != 0:
        raise AssertionError(describe_child(proc))
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


POINTER = sys.version_info >= (3, 12)
KIND_FUNCS = {"str": "strings", "bytes": "blobs", "list": "lists",
              "dict": "dicts", "float": "floats"}


class TestBirthSiteLookup(unittest.TestCase):

    def test_every_object_has_tracemallocs_own_traceback(self):
        r = child(r'''
tracemalloc.start(4)
heap, path = load("lookup_heap", %r)
keep = heap.build(200)
objs = [o for group in keep.values() for o in group]
got, table, used = dump(objs, 4)
res = {}
for kind, group in keep.items():
    res[kind] = [{"got": got.get(id(o), "missing"), "tm": oracle(o)}
                 for o in group]
out({"res": res, "used": used, "path": path})
''' % HEAP)
        # on 3.12+ the lookup did not build a tuple per object
        self.assertEqual(r["used"], "pointer" if POINTER else "tuple")
        markers = {"managed": "MANAGED", "slotted": "SLOTTED", "str": "STR",
                   "bytes": "BYTES", "list": "LIST", "dict": "DICT",
                   "float": "FLOAT"}
        for kind, rows in r["res"].items():
            self.assertEqual(len(rows), 200)
            # lists, dicts and floats come from free lists (allocated
            # before tracing, no birth site) until those run dry
            self.assertGreater(sum(row["got"] is not None for row in rows),
                               100, kind)
            for row in rows:
                got = row["got"]
                self.assertNotEqual(got, "missing", kind)
                # 3.11's get_object_traceback misses instances with a
                # managed dict (docs/dump-format.md, "Birth sites")
                if row["tm"] is None and kind == "managed" \
                        and sys.version_info[:2] == (3, 11):
                    self.assertIsNotNone(got)
                elif got is None:
                    self.assertIsNone(row["tm"], kind)
                    continue
                else:
                    self.assertEqual([f[:2] for f in got], row["tm"], kind)
                self.assertEqual(got[0][:2],
                                 [r["path"], marker_line(markers[kind])],
                                 kind)
                # before 3.12 a comprehension is a function of its own
                self.assertIn(got[0][2],
                              (KIND_FUNCS.get(kind, kind),
                               KIND_FUNCS.get(kind, kind)
                               + ".<locals>.<listcomp>"), kind)

    def test_both_paths_describe_the_heap_alike(self):
        r = child(r'''
tracemalloc.start(3)
heap, path = load("lookup_both", %r)
keep = heap.build(20)
objs = [o for group in keep.values() for o in group]
a, ta, used_a = dump(objs, 3)
b, tb, used_b = dump(objs, 3, tuple_only=True)
out({"same": [a[id(o)] == b[id(o)] for o in objs],
     "traced": sum(a[id(o)] is not None for o in objs),
     "used": [used_a, used_b],
     "dups": [len(t) - len({json.dumps(v) for v in t.values()})
              for t in (ta, tb)],
     "ids": [sorted(t) == list(range(len(t))) for t in (ta, tb)]})
''' % HEAP)
        self.assertEqual(r["used"],
                         ["pointer" if POINTER else "tuple", "tuple"])
        self.assertGreater(r["traced"], 5 * 20)
        self.assertTrue(all(r["same"]))
        self.assertEqual(r["dups"], [0, 0])
        self.assertEqual(r["ids"], [True, True])

    def test_one_id_per_traceback_whatever_the_depth_beyond_the_limit(self):
        # tracemalloc keeps one traceback per (frames, total depth): with
        # one frame, the same line reached at four depths is four of its
        # tracebacks but one of the dump's
        r = child(r'''
tracemalloc.start(1)
heap, path = load("lookup_depth", (
    "def site():\n"
    "    return bytearray(3)\n"
    "\n"
    "def deeper(n):\n"
    "    return deeper(n - 1) if n else site()\n"))
keep = [heap.deeper(i % 4) for i in range(40)]
res = []
for tuple_only in (False, True):
    got, table, used = dump(keep, 1, tuple_only)
    res.append({"used": used,
                "frames": sorted({json.dumps(got[id(o)]) for o in keep}),
                "copies": sum(v == [[path, 2, "site"]]
                              for v in table.values())})
out({"res": res, "path": path, "tm": [oracle(o) for o in keep]})
''')
        self.assertEqual([x["used"] for x in r["res"]],
                         ["pointer" if POINTER else "tuple", "tuple"])
        want = [[r["path"], 2, "site"]]
        for x in r["res"]:
            self.assertEqual(x["frames"], [json.dumps(want)])
            self.assertEqual(x["copies"], 1)
        self.assertEqual(r["tm"], [[[r["path"], 2]]] * 40)

    def test_a_refused_layout_falls_back_to_the_tuple_path(self):
        # what a layout cpython.c does not know looks like: the first
        # objects' answers differ from _PyTraceMalloc_GetTraceback's
        r = child(r'''
tracemalloc.start(3)
heap, path = load("lookup_fallback", %r)
keep = heap.build(20)
objs = [o for group in keep.values() for o in group]
a, ta, used_a = dump(objs, 3, tuple_only=True)
_scanner._traces_fake_mismatch(True)
b, tb, used_b = dump(objs, 3)
_scanner._traces_fake_mismatch(False)
out({"same": [a[id(o)] == b[id(o)] for o in objs],
     "tm": [b[id(o)] is None or [f[:2] for f in b[id(o)]] == oracle(o)
            for o in objs if type(o).__name__ != "Managed"],
     "used": used_b, "ids": sorted(tb) == list(range(len(tb))),
     "dups": len(tb) - len({json.dumps(v) for v in tb.values()})})
''' % HEAP)
        self.assertEqual(r["used"], "tuple")
        self.assertTrue(all(r["same"]))
        self.assertTrue(all(r["tm"]))
        self.assertTrue(r["ids"])
        self.assertEqual(r["dups"], 0)

    def test_objects_from_before_tracing_have_none(self):
        r = child(r'''
early = [bytearray(9) for _ in range(10)]
tracemalloc.start(2)
late = [bytearray(9) for _ in range(10)]  # LATE
got, table, used = dump(early + late, 2)
out({"early": [got[id(o)] for o in early],
     "late": [got[id(o)][0][1] for o in late], "used": used})
''')
        self.assertEqual(r["early"], [None] * 10)
        self.assertEqual(r["late"],
                         [PRELUDE.count("\n") + 4] * 10)
        self.assertEqual(r["used"], "pointer" if POINTER else "tuple")


if __name__ == "__main__":
    unittest.main()
