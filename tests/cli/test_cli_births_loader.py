# SPDX-License-Identifier: MIT
"""The loader's ObjManager.birth_sites gives the sites meliae-cli diff
gives for the same dump's new objects (one grouping: common/birthsites.c):
per type, tracebacks that share a first frame counted together, most
bytes first, each site with the traceback of its largest share; on a
dump made by hand (many tracebacks, shared first frames, ties, untraced
objects) and on a real program's traced dump."""

import json
import os
import random
import subprocess
import sys
import textwrap
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_support import TmpTestCase, needs_cli, run_cli  # noqa: E402

from meliae import loader  # noqa: E402

PROGRAM = textwrap.dedent("""
    import sys, tracemalloc
    tracemalloc.start(4)
    from meliae import scanner

    def blob(n):
        return bytearray(n)

    def rows(n):
        return [blob(64 + i % 7) for i in range(n)] + [[i] * 3 for i in range(n)]

    def cache():
        return {("k", i): blob(200) for i in range(300)}

    KEEP = [rows(400), cache(), rows(50)]
    scanner.dump_all_objects(sys.argv[1], traces=4)
""")


def hand_dumps(rng):
    """(a, b): a holds one module; b a module and traced objects of three
    types over 60 tracebacks whose first frames are 9 lines."""
    a = [json.dumps({"address": 0x10, "type": "module", "size": 100,
                     "name": "before", "refs": []})]
    b = []
    for k in range(60):
        top = ["/srv/app/m%d.py" % (k % 3), 10 * (k % 3), "f%d" % (k % 3)]
        b.append(json.dumps({"traceback": k, "frames": [
            top, ["/srv/app/main.py", 100 + k, None if k % 4 else "main"]]}))
    objs = []
    for i in range(3000):
        o = {"address": 0x100000 + 64 * i,
             "type": ("Blob", "list", "Rec")[i % 3],
             "size": rng.choice([32, 64, 64, 128, 1000]),
             "refs": []}
        if i % 11:
            o["trace"] = rng.randrange(60)
        objs.append(o)
    b.append(json.dumps({"address": 0x20, "type": "module", "size": 100,
                         "name": "after",
                         "refs": [o["address"] for o in objs]}))
    b += [json.dumps(o) for o in objs]
    return a, b


def store_births(store):
    r = run_cli(["--store", store, "--json", "diff", "1", "2", "--top", "0"])
    if r.returncode != 0:
        raise AssertionError("diff: %s" % r.stderr)
    return json.loads(r.stdout)["new_objects"]["births"]


@needs_cli
class TestLoaderBirthSitesAreTheStores(TmpTestCase):

    def check(self, paths):
        store = os.path.join(self.tmp, "store-%s" % os.path.basename(paths[1]))
        for p in paths:
            r = run_cli(["--store", store, "import", p])
            self.assertEqual(r.returncode, 0, r.stderr)
        births = store_births(store)
        om = loader.load(paths[1], show_prog=False, collapse=False)
        before = loader.load(paths[0], show_prog=False, collapse=False)
        self.assertTrue(births)
        for entry in births:
            objs = [o for o in om.get_all(entry["type"])
                    if o.address not in before]
            self.assertEqual(len(objs), entry["count"], entry["type"])
            sites = om.birth_sites(objs)
            self.assertEqual(sites, entry["sites"], entry["type"])
            every = om.birth_sites(objs, top=0)
            self.assertEqual((sum(s["count"] for s in every),
                              sum(s["bytes"] for s in every)),
                             (entry["traced_count"], entry["traced_bytes"]))
        return births

    def test_hand_made_dump(self):
        a, b = hand_dumps(random.Random(7))
        paths = [os.path.join(self.tmp, n) for n in ("a.json", "b.json")]
        for p, lines in zip(paths, (a, b)):
            with open(p, "w") as f:
                f.write("\n".join(lines) + "\n")
        births = self.check(paths)
        self.assertEqual({e["type"] for e in births}, {"Blob", "list", "Rec"})
        self.assertTrue(all(len(e["sites"]) == 3 for e in births))

    def test_real_traced_program(self):
        prog = os.path.join(self.tmp, "traced.py")
        with open(prog, "w") as f:
            f.write(PROGRAM)
        a = os.path.join(self.tmp, "empty.json")
        with open(a, "w") as f:
            f.write(json.dumps({"address": 0x10, "type": "module",
                                "size": 100, "refs": []}) + "\n")
        b = os.path.join(self.tmp, "traced.json")
        subprocess.run([sys.executable, prog, b], check=True, timeout=120)
        births = self.check([a, b])
        ba = [e for e in births if e["type"] == "bytearray"][0]
        self.assertEqual(ba["sites"][0]["function"], "blob")
        self.assertEqual(ba["sites"][0]["count"], 400 + 300 + 50)


if __name__ == "__main__":
    unittest.main()
