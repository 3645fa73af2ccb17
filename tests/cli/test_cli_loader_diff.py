# SPDX-License-Identifier: MIT
"""The loader's ObjManager.diff gives the answer meliae-cli diff gives for
the same two dumps (one implementation: common/accum.c): the new and gone
objects, and every accumulation point with its types, on the fixture
dumps and on two dumps of a real program that grows."""

import json
import os
import subprocess
import sys
import textwrap
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_support import (DUMPS, FIXTURES, TmpTestCase, needs_cli,  # noqa: E402
                         run_cli)

from meliae import loader  # noqa: E402

# grows a module's list of nodes, each holding a payload, between dumps;
# a dict of sessions gains entries; some garbage cycles come and go
PROGRAM = textwrap.dedent("""
    import gc, sys
    from meliae import scanner

    class Node:
        def __init__(self, i):
            self.i = i
            self.payload = bytes(100 + i % 50)
            self.tags = ["t%d" % i, (i, str(i))]

    NODES = []
    SESSIONS = {}

    def grow(n):
        for i in range(n):
            NODES.append(Node(len(NODES)))
            SESSIONS["s%d" % len(SESSIONS)] = {"n": i, "hist": [i] * 3}

    gc.disable()
    grow(500)
    scanner.dump_all_objects(sys.argv[1])
    grow(700)
    del NODES[:100]
    scanner.dump_all_objects(sys.argv[2])
""")


def store_diff(store, a, b):
    r = run_cli(["--store", store, "--json", "diff", str(a), str(b),
                 "--top", "0"])
    if r.returncode != 0:
        raise AssertionError("diff %s %s: %s" % (a, b, r.stderr))
    return json.loads(r.stdout)


def store_groups(doc):
    out = []
    for g in doc["new_objects"]["groups"]:
        h = g["holder"]
        out.append((h["address"] if h else None, bool(h and h.get("new")),
                    g["count"], g["bytes"], g["depth"], g["types_total"],
                    [(t["type"], t["count"], t["bytes"], t["depth"])
                     for t in g["types"]]))
    return sorted(out, key=lambda x: (-x[3], x[0] or 0))


def loader_groups(d):
    out = []
    for g in d.groups:
        out.append((g.holder.address if g.holder is not None else None,
                    g.holder_new, g.count, g.bytes, g.depth, len(g.types),
                    [(t, c, b, dp) for t, c, b, dp, ex in g.types[:8]]))
    return sorted(out, key=lambda x: (-x[3], x[0] or 0))


@needs_cli
class TestLoaderDiffIsTheStoresDiff(TmpTestCase):

    def check_pair(self, store, paths, a, b):
        doc = store_diff(store, a, b)
        before = loader.load(paths[a - 1], show_prog=False, collapse=False)
        after = loader.load(paths[b - 1], show_prog=False, collapse=False)
        d = before.diff(after)
        nw, gone = doc["new_objects"], doc["gone_objects"]
        self.assertEqual((d.new_count, d.new_bytes), (nw["count"], nw["bytes"]))
        self.assertEqual((d.gone_count, d.gone_bytes),
                         (gone["count"], gone["bytes"]))
        self.assertEqual(len(d.new_objects), nw["count"])
        self.assertEqual(len(d.groups), nw["groups_total"])
        self.assertEqual(loader_groups(d), store_groups(doc))
        return d

    def import_all(self, store, paths):
        for p in paths:
            r = run_cli(["--store", store, "import", p])
            self.assertEqual(r.returncode, 0, r.stderr)

    def test_fixture_dumps(self):
        store = os.path.join(self.tmp, "fixture-store")
        paths = [os.path.join(FIXTURES, n) for n in DUMPS]
        self.import_all(store, paths)
        for a, b in ((1, 2), (2, 3), (1, 3), (3, 1)):
            with self.subTest(a=a, b=b):
                self.check_pair(store, paths, a, b)

    def test_real_program_that_grows(self):
        prog = os.path.join(self.tmp, "grow.py")
        with open(prog, "w") as f:
            f.write(PROGRAM)
        paths = [os.path.join(self.tmp, "d%d.json" % i) for i in (1, 2)]
        subprocess.run([sys.executable, prog] + paths, check=True,
                       timeout=120)
        store = os.path.join(self.tmp, "grow-store")
        self.import_all(store, paths)
        d = self.check_pair(store, paths, 1, 2)
        # the growth is where a person looks for it: at the module's list
        # and dict, in the program's words
        self.assertGreaterEqual(d.new_count, 600 * 5)
        top = {g.path for g in d.groups[:2]}
        self.assertEqual(top, {"__main__.NODES", "__main__.SESSIONS"})
        self.check_pair(store, paths, 2, 1)


if __name__ == "__main__":
    unittest.main()
