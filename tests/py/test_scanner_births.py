# SPDX-License-Identifier: MIT
"""Birth sites: dump_all_objects(traces=N) (docs/dump-format.md, "Birth
sites").

Each case runs in a child interpreter (support.run_child): tracemalloc,
once started, would slow and change every later test of this process.
tracemalloc itself is the oracle: the traceback an object line names must
be tracemalloc.get_object_traceback's (where that works: 3.11's misses
instances with a managed dict, so the check uses slotted classes and
builtins there), with the function of each frame named as the source
says.
"""

import json
import unittest

from support import describe_child, run_child

# The child's prelude: a dump with traces, read back as {address: line}
# and {id: frames}.
PRELUDE = r'''
import json, os, sys, tempfile, tracemalloc
from meliae import scanner

def dump(want=(), path=None, **kw):
    """The lines of the objects in want (by address), the table, and the
    kinds of the lines in order ("table", "object"; runs collapsed)."""
    want = {id(o) for o in want}
    if path is None:
        fd, path = tempfile.mkstemp(suffix=".json")
        os.close(fd)
        scanner.dump_all_objects(path, **kw)
    try:
        objs, table, order = {}, {}, []
        with open(path, "rb") as f:
            for raw in f:
                if raw.startswith(b'{"address"'):
                    kind = "object"
                    addr = int(raw[12:raw.index(b",")])
                    if addr in want:
                        objs[addr] = json.loads(raw)
                    elif b', "trace": ' in raw:
                        objs.setdefault("traced", 0)
                        objs["traced"] += 1
                else:
                    kind = "table"
                    line = json.loads(raw)
                    table[line["traceback"]] = line["frames"]
                if not order or order[-1] != kind:
                    order.append(kind)
        return objs, table, order
    finally:
        os.unlink(path)

def out(x):
    sys.stdout.write(json.dumps(x) + "\n")
'''


def line_of(code, marker):
    """The line of the child's source (prelude included) with marker."""
    lines = (PRELUDE + code).splitlines()
    return next(i for i, t in enumerate(lines, 1) if marker in t)


def child(code):
    proc = run_child(PRELUDE + code)
    if proc.returncode != 0:
        raise AssertionError(describe_child(proc))
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


class TestBirthSites(unittest.TestCase):

    def test_each_object_names_its_allocation_line_and_function(self):
        module = (
            "class Node:\n"
            "    __slots__ = ('payload',)\n"
            "    def __init__(self):\n"
            "        self.payload = bytearray(64)\n"     # line 4
            "\n"
            "def build(n):\n"
            "    return [Node() for _ in range(n)]\n")   # line 7
        r = child(r'''
tracemalloc.start(4)
path = os.path.join(tempfile.mkdtemp(), "births_mod.py")
with open(path, "w") as f:
    f.write(%r)
sys.path.insert(0, os.path.dirname(path))
import births_mod
keep = births_mod.build(30)
objs, table, order = dump(keep + [n.payload for n in keep], traces=4)
res = []
for node in keep[:5]:
    for obj in (node, node.payload):
        line = objs[id(obj)]
        tm = tracemalloc.get_object_traceback(obj)
        res.append({"type": line["type"], "frames": table[line["trace"]],
                    "tm": [[f.filename, f.lineno] for f in reversed(tm)]
                          if tm is not None else None})
out({"res": res, "order": order, "ntable": len(table),
     "ids": sorted(table), "path": path})
''' % module)
        self.assertEqual(r["ids"], list(range(r["ntable"])))
        # the table comes first: every id is known before an object names it
        self.assertEqual(r["order"], ["table", "object"])
        for row in r["res"]:
            top = row["frames"][0]
            self.assertEqual(top[0], r["path"])
            if row["type"] == "Node":
                self.assertEqual(top[1], 7)
                self.assertIn(top[2], ("build", "build.<locals>.<listcomp>"))
            else:
                self.assertEqual(row["type"], "bytearray")
                self.assertEqual(top[1:], [4, "Node.__init__"])
            if row["tm"] is not None:       # tracemalloc's own frames
                self.assertEqual([f[:2] for f in row["frames"]], row["tm"])

    def test_no_traces_argument_writes_no_birth_sites(self):
        r = child(r'''
tracemalloc.start(4)
keep = [bytearray(10) for _ in range(10)]
objs, table, order = dump(keep)
out({"table": len(table), "traced": objs.get("traced", 0),
     "keep": ["trace" in objs[id(k)] for k in keep]})
''')
        self.assertEqual(r, {"table": 0, "traced": 0, "keep": [False] * 10})

    def test_traces_starts_tracemalloc_for_the_next_dump(self):
        code = r'''
objs, table, _ = dump(traces=3)
first = (len(table), tracemalloc.is_tracing(),
         tracemalloc.get_traceback_limit())
keep = [bytearray(10) for _ in range(10)]  # HERE
objs, table, _ = dump(keep, traces=3)
out({"first": first, "second": table[objs[id(keep[0])]["trace"]][0][:2]})
'''
        r = child(code)
        self.assertEqual(r["first"], [0, True, 3])
        self.assertEqual(r["second"], ["<string>", line_of(code, "# HERE")])

    def test_module_level_allocation_is_named_module(self):
        r = child(r'''
tracemalloc.start(2)
path = os.path.join(tempfile.mkdtemp(), "modlevel.py")
with open(path, "w") as f:
    f.write("X = bytearray(33)\n\ndef f():\n    return bytearray(34)\n\nY = f()\n")
sys.path.insert(0, os.path.dirname(path))
import modlevel
objs, table, _ = dump([modlevel.X, modlevel.Y], traces=2)
out({"x": table[objs[id(modlevel.X)]["trace"]],
     "y": table[objs[id(modlevel.Y)]["trace"]], "path": path})
''')
        self.assertEqual(r["x"][0], [r["path"], 1, "<module>"])
        self.assertEqual(r["y"][0], [r["path"], 4, "f"])
        self.assertEqual(r["y"][1], [r["path"], 6, "<module>"])

    def test_hostile_file_names_stay_valid_json(self):
        r = child(r'''
tracemalloc.start(2)
names = ["evil\n\"\x1b]0;PWNED\x07.py", "bad\udcff\udc80.py", "nul.py"]
made = {}
for n in names:
    code = compile("def mk():\n    return bytearray(7)\n", n, "exec")
    ns = {}
    exec(code, ns)
    made[n] = ns["mk"]()
objs, table, _ = dump(list(made.values()), traces=2)
out([table[objs[id(made[n])]["trace"]][0] for n in names])
''')
        self.assertEqual(r[0], ["evil\n\"\x1b]0;PWNED\x07.py", 2, "mk"])
        # undecodable bytes come as backslash escapes: valid UTF-8 for
        # every reader
        self.assertEqual(r[1], ["bad\\xff\\x80.py", 2, "mk"])

    def test_bad_traces_argument_is_refused(self):
        from meliae import scanner
        for bad, exc in ((0, ValueError), (1001, ValueError),
                         (True, TypeError), ("3", TypeError)):
            with self.assertRaises(exc):
                scanner.dump_all_objects("/dev/null", traces=bad)

    def test_fork_dump_writes_the_parents_birth_sites(self):
        code = r'''
tracemalloc.start(2)
keep = [bytearray(10) for _ in range(10)]  # HERE
fd, path = tempfile.mkstemp(suffix=".json")
os.close(fd)
scanner.dump_all_objects(path, fork=True, traces=2).wait(60)
objs, table, _ = dump(keep, path=path)
out(table[objs[id(keep[3])]["trace"]][0][:2])
'''
        r = child(code)
        self.assertEqual(r, ["<string>", line_of(code, "# HERE")])


class TestResolver(unittest.TestCase):
    """meliae._births.resolve on code objects compiled here."""

    def test_innermost_code_object_names_the_line(self):
        from meliae import _births
        src = ("class A:\n"
               "    def m(self):\n"
               "        def inner():\n"
               "            return 1\n"
               "        return inner\n"
               "x = 1\n")
        code = compile(src, "/nonexistent/res.py", "exec")
        codes = [code]
        stack = [code]
        while stack:
            for c in stack.pop().co_consts:
                if hasattr(c, "co_code"):
                    codes.append(c)
                    stack.append(c)
        tbs = [(("/nonexistent/res.py", 4), ("/nonexistent/res.py", 5),
                ("/nonexistent/res.py", 6), ("/nonexistent/other.py", 9))]
        names = _births.resolve(tbs, codes)
        inner = "A.m.<locals>.inner" if hasattr(code, "co_qualname") else "inner"
        m = "A.m" if hasattr(code, "co_qualname") else "m"
        self.assertEqual(names, [[["/nonexistent/res.py", inner],
                                  ["/nonexistent/res.py", m],
                                  ["/nonexistent/res.py", "<module>"],
                                  ["/nonexistent/other.py", None]]])


if __name__ == "__main__":
    unittest.main()
