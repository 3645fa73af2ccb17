# SPDX-License-Identifier: MIT
"""`meliae-cli top --retained` and `meliae-cli dominators` (docs/retained.md)
agree with the loader's om.compute_retained() on the same real dump, on a
store opened directly and through meliae-monitord (rp_run serves both).

A child interpreter builds a heap of known shape and dumps it with
meliae.scanner; the dump is imported into a store; the loader, with
collapse=False (the store keeps instance dicts as they came), is the
reference for every object's retained size and dominator."""

import json
import os
import shutil
import socket
import subprocess
import sys
import unittest

from cli_support import (CLI, MONITORD, Daemon, TmpTestCase, cli_env,
                         needs_cli, run_cli)

CHILD = r"""
import gc, json, sys
import meliae.scanner as scanner

def fresh(i):
    return "".join(["retained-", str(i), "-", "y" * (i % 29)])

owned = [fresh(i) for i in range(500)]
shared = fresh(-1) + "shared"
left = [shared]
right = [shared]
gc.collect()
scanner.dump_all_objects(sys.argv[1])
print(json.dumps({
    "owned": id(owned),
    "owned_retained": sys.getsizeof(owned) + sum(sys.getsizeof(s) for s in owned),
    "owned_first": id(owned[0]), "shared": id(shared),
    "left": id(left), "left_size": sys.getsizeof(left),
}))
"""


def query(sock, request):
    """One request to meliae-monitord's query protocol; the answer."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    try:
        s.connect(sock)
        s.sendall(json.dumps({"meliae_query": 1, "request": request}).encode()
                  + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    reply = json.loads(data)
    if "answer" not in reply:
        raise AssertionError(reply)
    return reply["answer"]


@needs_cli
class TestRetainedAgreesWithTheLoader(TmpTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        from meliae import loader
        cls.dump = os.path.join(cls.tmp, "heap.json")
        proc = subprocess.run([sys.executable, "-c", CHILD, cls.dump],
                              capture_output=True, text=True, env=cli_env(),
                              timeout=120)
        if proc.returncode != 0:
            raise AssertionError(proc.stderr)
        cls.ids = json.loads(proc.stdout.strip().splitlines()[-1])
        cls.store = os.path.join(cls.tmp, "store")
        r = run_cli(["--store", cls.store, "import", cls.dump])
        if r.returncode != 0:
            raise AssertionError(r.stderr)
        cls.om = loader.load(cls.dump, show_prog=False, collapse=False)
        cls.om.compute_retained()

    def cli_json(self, *args):
        r = run_cli(["--store", self.store, "--json"] + list(args))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        return json.loads(r.stdout)

    def test_every_object_matches_the_loader(self):
        doc = self.cli_json("top", "--retained", "latest", "--top", "0")
        self.assertEqual(doc["command"], "top")
        self.assertTrue(doc["retained"])
        self.assertEqual(len(doc["objects"]), len(self.om))
        self.assertEqual(doc["total_bytes"], self.om.total_heap_size)
        heap, roots, leftover = self.om._g.retained_roots
        self.assertEqual((doc["roots"], doc["leftover_roots"]), (roots, leftover))
        for o in doc["objects"]:
            m = self.om[o["address"]]
            self.assertEqual(o["retained"], m.retained_size, o)
            dom = m.dominator
            self.assertEqual(o["dominator"], dom.address if dom else None, o)
        # largest first, and the roots' children add up to the heap
        sizes = [o["retained"] for o in doc["objects"]]
        self.assertEqual(sizes, sorted(sizes, reverse=True))
        self.assertEqual(sum(o["retained"] for o in doc["objects"]
                             if o["dominator"] is None), doc["total_bytes"])

    @unittest.skipUnless(os.environ.get("MELIAE_STORE_TOOL"),
                         "needs tests/tools/store_tool (meson test)")
    def test_store_without_stored_answers_matches_the_loader(self):
        """A store from before the commit stored retained sizes (here: the
        records deleted): the CLI computes them, the same as the loader's
        and as the stored ones."""
        stored = self.cli_json("top", "--retained", "latest", "--top", "0")
        old = os.path.join(self.tmp, "old-store")
        shutil.copytree(self.store, old)
        r = subprocess.run([os.environ["MELIAE_STORE_TOOL"], "forget-retained",
                            old, str(stored["snapshot"]["id"])],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run_cli(["--store", old, "--json", "top", "--retained", "latest",
                     "--top", "0"])
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        self.assertEqual(doc, stored)
        for o in doc["objects"]:
            m = self.om[o["address"]]
            self.assertEqual(o["retained"], m.retained_size, o)
        shutil.rmtree(old)

    def test_known_objects(self):
        doc = self.cli_json("top", "--retained", "latest", "--top", "0")
        by_addr = {o["address"]: o for o in doc["objects"]}
        self.assertEqual(by_addr[self.ids["owned"]]["retained"],
                         self.ids["owned_retained"])
        self.assertEqual(by_addr[self.ids["owned_first"]]["dominator"],
                         self.ids["owned"])
        self.assertEqual(by_addr[self.ids["left"]]["retained"],
                         self.ids["left_size"])
        self.assertNotEqual(by_addr[self.ids["shared"]]["dominator"],
                            self.ids["left"])

    def test_types_match_the_loader_summary(self):
        doc = self.cli_json("top", "--retained", "latest", "--top", "0")
        ret = self.om.summarize(by="retained")
        self.assertEqual(len(doc["types"]), len(ret.type_summaries))
        for t in doc["types"]:
            s = ret.type_summaries[t["type"]]
            self.assertEqual(t["retained"], s.total_size, t)
            self.assertEqual(t["count"], s.count, t)
            self.assertEqual(t["max_retained"], s.max_size, t)
            self.assertEqual(t["top_count"], ret.top_counts[t["type"]], t)
        rows = [t["retained"] for t in doc["types"]]
        self.assertEqual(rows, sorted(rows, reverse=True))
        top3 = self.cli_json("top", "--retained", "latest", "--top", "3")
        self.assertEqual(len(top3["types"]), 3)
        self.assertEqual(top3["objects"], doc["objects"][:3])

    def test_dominator_chain_matches_the_loader(self):
        addr = self.ids["owned_first"]
        doc = self.cli_json("dominators", "latest", hex(addr))
        chain = [m.address for m in self.om.dominators(addr)]
        self.assertEqual([o["address"] for o in doc["chain"]], chain)
        self.assertEqual([o["retained"] for o in doc["chain"]],
                         [m.retained_size for m in self.om.dominators(addr)])
        self.assertEqual(doc["object"]["address"], addr)
        self.assertEqual(doc["chain"][1]["address"], self.ids["owned"])
        self.assertIsNone(doc["chain"][-1]["dominator"])

    def test_top_by_size_without_retained(self):
        doc = self.cli_json("top", "latest", "--top", "5")
        self.assertFalse(doc["retained"])
        want = sorted((self.om._g.size(i) for i in range(len(self.om))),
                      reverse=True)[:5]
        self.assertEqual([o["size"] for o in doc["objects"]], want)
        self.assertNotIn("retained", doc["objects"][0])

    def test_text_tables(self):
        r = run_cli(["--store", self.store, "--bytes", "top", "--retained",
                     "latest", "--top", "0"])
        self.assertEqual(r.returncode, 0, r.stderr)
        line = [l for l in r.stdout.splitlines()
                if "list@%#x" % self.ids["owned"] in l]
        self.assertEqual(len(line), 1, r.stdout[:2000])
        self.assertEqual(line[0].split()[0], str(self.ids["owned_retained"]))
        self.assertIn("RETAINED", r.stdout)
        r = run_cli(["--store", self.store, "dominators", "latest",
                     str(self.ids["owned_first"])])
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertIn("str@%#x" % self.ids["owned_first"], r.stdout)
        self.assertIn("<- list@%#x" % self.ids["owned"], r.stdout)
        self.assertTrue(lines[-1].rstrip().endswith("<- (root)"), lines[-1])

    def test_dump_file_directly(self):
        r = run_cli(["--dump", self.dump, "--json", "top", "--retained",
                     "--top", "1"])
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        top = self.om.top_retained(1)[0]
        self.assertEqual(doc["objects"][0]["address"], top.address)
        self.assertEqual(doc["objects"][0]["retained"], top.retained_size)

    def test_errors_are_one_line(self):
        cases = [
            (["dominators", "latest", "0x10"], 3, "no object at 0x10"),
            (["dominators", "latest", "nope"], 2, "bad address"),
            (["top", "--retained", "latest~9"], 3, "no snapshot latest~9"),
            (["top", "--retained", "99"], 3, "no snapshot 99"),
            (["summary", "latest", "--retained"], 2, "--retained works with top"),
            (["dominators", "latest"], 2, "dominators takes 2 arguments"),
        ]
        for args, code, msg in cases:
            with self.subTest(args=args):
                r = run_cli(["--store", self.store] + args)
                self.assertEqual(r.returncode, code, r.stderr)
                self.assertIn(msg, r.stderr)
                self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
                self.assertEqual(r.stdout, "")

    def test_help(self):
        for cmd in ("top", "dominators"):
            r = run_cli([cmd, "--help"])
            self.assertEqual(r.returncode, 0)
            self.assertIn("examples:", r.stdout)

    @unittest.skipUnless(MONITORD and os.access(MONITORD, os.X_OK),
                         "MELIAE_MONITORD unset")
    def test_daemon_gives_the_same_answer(self):
        d = Daemon(self.tmp)
        try:
            r = run_cli(["--socket", d.sock, "import", self.dump])
            self.assertEqual(r.returncode, 0, r.stderr)
            r = run_cli(["--socket", d.sock, "--json", "top", "--retained",
                         "latest", "--top", "10"])
            self.assertEqual(r.returncode, 0, r.stderr)
            via = json.loads(r.stdout)
            local = self.cli_json("top", "--retained", "latest", "--top", "10")
            self.assertEqual(via["objects"], local["objects"])
            self.assertEqual(via["types"], local["types"])
            r = run_cli(["--socket", d.sock, "--json", "dominators", "latest",
                         str(self.ids["owned_first"])])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(json.loads(r.stdout)["chain"][1]["address"],
                             self.ids["owned"])
            # every type's row with only a few objects (docs/protocol.md)
            doc = query(d.sock, {"cmd": "top", "snap": "latest",
                                 "retained": True, "top": 2, "types": 0})
            self.assertEqual(len(doc["objects"]), 2)
            self.assertEqual(len(doc["types"]),
                             len(self.om.summarize(by="retained").type_summaries))
        finally:
            self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    unittest.main()
