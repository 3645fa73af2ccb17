"""The loader's birth sites: ObjManager.birth_sites and MemObject.traceback
on a dump taken with traces=N (docs/dump-format.md, "Birth sites").

The dump is made by a child interpreter (tracemalloc stays out of this
process); what it says of its own objects is the oracle.
"""

import json
import os
import tempfile
import unittest

from support import describe_child, run_child
from meliae import loader

CHILD = r'''
import json, os, sys, tracemalloc
tracemalloc.start(3)
path = os.path.join(%(dir)r, "mod_%(tag)s.py")
with open(path, "w") as f:
    f.write("def make(n):\n    out = []\n    for i in range(n):\n"
            "        out.append(bytearray(100 + i))\n    return out\n")
sys.path.insert(0, %(dir)r)
import mod_%(tag)s as mod
keep = mod.make(40)
from meliae import scanner
scanner.dump_all_objects(%(dump)r, traces=%(traces)s)
print(json.dumps({"ids": [id(b) for b in keep], "path": path,
                  "bytes": sum(sys.getsizeof(b) for b in keep)}))
'''


class LoaderBirthsTest(unittest.TestCase):

    def dump(self, traces, gz=False):
        d = tempfile.mkdtemp()
        self.addCleanup(lambda: [os.unlink(os.path.join(d, f))
                                 for f in os.listdir(d)] and os.rmdir(d))
        path = os.path.join(d, "heap.json" + (".gz" if gz else ""))
        p = run_child(CHILD % {"dir": d, "dump": path, "traces": traces,
                               "tag": "gz" if gz else "plain"})
        if p.returncode != 0:
            raise AssertionError(describe_child(p))
        return path, json.loads(p.stdout.decode().splitlines()[-1])

    def test_birth_sites_group_by_allocating_line(self):
        for gz in (False, True):
            path, info = self.dump(3, gz)
            om = loader.load(path, show_prog=False)
            objs = [om[a] for a in info["ids"]]
            [site] = om.birth_sites(objs)
            self.assertEqual((site["file"], site["line"], site["function"]),
                             (info["path"], 4, "make"))
            self.assertEqual((site["count"], site["bytes"]),
                             (40, info["bytes"]))
            self.assertEqual(objs[5].traceback[0], (info["path"], 4, "make"))
            self.assertEqual(objs[5].traceback[1][0], "<string>")

    def test_an_untraced_dump_has_none(self):
        path, info = self.dump("None")
        om = loader.load(path, show_prog=False)
        objs = [om[a] for a in info["ids"]]
        self.assertEqual(om.birth_sites(objs), [])
        self.assertIsNone(objs[0].traceback)

    def test_a_dump_read_from_lines_has_them_too(self):
        # The loader keeps the birth sites as it parses: lines fed from
        # an iterable say as much as the file does (meliae once read
        # them from the file again, and could not).
        path, info = self.dump(3)
        from_file = loader.load(path, show_prog=False)
        with open(path, "rb") as f:
            om = loader.load(iter(f.readlines()), show_prog=False)
        objs = [om[a] for a in info["ids"]]
        self.assertEqual(om.birth_sites(objs),
                         from_file.birth_sites([from_file[a]
                                                for a in info["ids"]]))
        self.assertEqual(om.birth_sites(objs)[0]["count"], 40)
        self.assertEqual(objs[0].traceback[0], (info["path"], 4, "make"))

if __name__ == "__main__":
    unittest.main()
