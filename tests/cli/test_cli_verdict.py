# SPDX-License-Identifier: MIT
"""End to end: the report's verdict and the diff's accumulation points on
real programs streamed to a real meliae-monitord
(tests/cli/verdict_programs.py, 16 snapshots each, one every 0.5 s):

- nested new structures (a module list -> new Node -> new Block -> new
  bytes) are ONE group of the diff, at the module list, with the depth
  of each type below it;
- a steady leak: the report's first line names the type, the list that
  holds it (its path) and a rate within 15% of the program's own;
- a leak in bursts that keeps what it got is a suspect and the verdict;
- a warm-up (a bounded cache that fills for 3.5 s, then holds steady) is
  not a suspect ("stopped"), and the report says "no leak";
- too few snapshots: "no verdict yet".
"""

import json
import os
import re
import subprocess
import sys
import unittest

from cli_support import (HERE, Daemon, TmpTestCase, answer_lines, cli_env,
                         make_fixture_store, needs_daemon, run_cli)

MODES = ("nested", "leak", "burst", "warmup")
STEPS = 16


def size_text(v):
    """cli_size (cli/render.c) in Python: what the text shows."""
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    a, u = abs(v), 0
    while a >= 1024 and u < 4:
        a /= 1024
        u += 1
    if u == 0:
        return "%.0fB" % v
    return "%s%.1f%s" % ("-" if v < 0 else "", a, units[u])


@needs_daemon
class TestVerdictOnRealPrograms(TmpTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.daemon = Daemon(cls.tmp)
        cls.store = cls.daemon.store
        cls.held, cls.rate = {}, {}
        try:
            procs = [subprocess.Popen(
                [sys.executable, os.path.join(HERE, "verdict_programs.py"), m,
                 cls.daemon.sock], stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env=cli_env()) for m in MODES]
            for m, p in zip(MODES, procs):
                out, err = p.communicate(timeout=400)
                lines = out.split()
                if p.returncode != 0 or lines[-1:] != ["done"]:
                    raise AssertionError("%s: exit %d\n%s%s\n%s" % (
                        m, p.returncode, out, err, cls.daemon.log()))
                cls.held[m] = int(lines[lines.index("list") + 1])
                cls.rate[m] = float(lines[lines.index("rate") + 1])
        except BaseException:
            cls.daemon.stop()
            super().tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.daemon.stop()
        finally:
            super().tearDownClass()

    def cli(self, *args, json_=True):
        r = run_cli(["--store", self.store] + (["--json"] if json_ else [])
                    + list(args))
        self.assertEqual((r.returncode, r.stderr), (0, ""), args)
        return json.loads(r.stdout) if json_ else r.stdout

    def report(self, mode):
        [p] = self.cli("report", "--process", mode)["processes"]
        self.assertEqual(p["snapshots"], STEPS)
        return p

    def first_line(self, mode):
        return answer_lines(self.cli("report", "--process", mode,
                                     json_=False))[0]

    # ---- accumulation points ----

    def test_nested_new_structures_are_one_group_at_the_module_list(self):
        snaps = self.cli("snapshots", "--process", "nested")["snapshots"]
        doc = self.cli("diff", str(snaps[0]["id"]), "latest", "--process",
                       "nested", "--top", "0")
        added = {t["type"]: t["count_after"] - t["count_before"]
                 for t in doc["types"]}
        self.assertEqual(added["Node"], 300 * (STEPS - 1))
        groups = [g for g in doc["new_objects"]["groups"]
                  if {"Node", "Block"} & {t["type"] for t in g["types"]}]
        self.assertEqual(len(groups), 1, [g["holder"] for g in groups])
        [g] = groups
        self.assertEqual(g["holder"]["address"], self.held["nested"])
        self.assertEqual((g["holder"]["type"], g["holder"]["new"]),
                         ("list", False))
        self.assertEqual(g["holder"]["path"], "__main__.HELD")
        rows = {t["type"]: t for t in g["types"]}
        # every new Node and Block is in it, and a bytes for each, each
        # at its distance from the list (1, 2, 3 hops; 1, 3, 5 where
        # instances have a __dict__ of their own: 3.9 and 3.10)
        dicts = "dict" in rows and rows["dict"]["count"] >= 2 * added["Node"]
        for name, depth in (("Node", 1), ("Block", 2), ("bytes", 3)):
            self.assertEqual(rows[name]["count"], added["Node"], name)
            self.assertEqual(rows[name]["depth"],
                             2 * depth - 1 if dicts else depth, name)
        self.assertEqual(added["Block"], added["Node"])
        self.assertEqual(g["depth"], 5 if dicts else 3)
        self.assertEqual(g["count"], sum(t["count"] for t in g["types"]))
        self.assertEqual(g["types_total"], len(g["types"]))
        # the text: one line for the whole structure, not one per holder
        out = self.cli("diff", str(snaps[0]["id"]), "latest", "--process",
                       "nested", "--top", "0", json_=False)
        lines = [l for l in out.splitlines() if " Block (" in l]
        self.assertEqual(len(lines), 1, out)
        self.assertIn("at __main__.HELD len=%d:" % g["holder"]["len"],
                      lines[0])
        self.assertIn(" %d Node (" % added["Node"], lines[0])

    def test_suspects_nested_below_the_leak_grow_with_it(self):
        p = self.report("nested")
        sus = {s["type"]: s for s in p["suspects"]}
        self.assertEqual(p["suspects"][0]["type"], "Node")
        self.assertIsNone(sus["Node"]["grows_with"])
        for name in ("Block", "bytes"):
            if name in sus:             # a suspect when it rises enough
                self.assertEqual(sus[name]["grows_with"], "Node", name)
        [g] = sus["Node"]["new_objects"]["groups"][:1]
        self.assertEqual((g["holder"]["address"], g["depth"]),
                         (self.held["nested"], 1))
        self.assertGreaterEqual(g["group_count"], 3 * g["count"])
        self.assertEqual(p["verdict"]["type"], "Node")

    # ---- the verdict ----

    def test_steady_leak_first_line_names_type_holder_and_rate(self):
        p = self.report("leak")
        v = p["verdict"]
        self.assertEqual((v["status"], v["type"]), ("leak", "Leak"))
        self.assertEqual(v["held_by"]["address"], self.held["leak"])
        self.assertEqual(v["count_per_snapshot"], 400)
        # the rate against the program's own clock
        real = self.rate["leak"] * 3600
        self.assertLess(abs(v["count_per_hour"] - real), 0.15 * real,
                        (v["count_per_hour"], real))
        [leak] = [s for s in p["suspects"] if s["type"] == "Leak"]
        self.assertEqual(v["count_delta"],
                         leak["count_after"] - leak["count_before"])
        self.assertEqual(v["count_delta"], 400 * (STEPS - 1))
        self.assertIn("str", v["also"])
        line = self.first_line("leak")
        self.assertTrue(line.startswith(
            "meliae: the leak is Leak: +6,000 objects (+%s) in "
            % size_text(v["bytes_delta"])), line)
        self.assertIn(", +%s/h, " % size_text(v["bytes_per_hour"]), line)
        self.assertRegex(line, r" in [0-9]+ s, ")
        self.assertIn(", held by __main__.HELD (a list of ", line)
        self.assertTrue(line.endswith(" entries)"), line)
        self.assertNotIn("born at", line)     # not traced

    def test_burst_leak_that_keeps_what_it_got_is_the_verdict(self):
        [g] = [t for t in self.cli("growth", "--process", "burst", "--top",
                                   "0")["processes"][0]["types"]
               if t["type"] == "Burst"]
        self.assertEqual(g["verdict"], "suspect")
        v = self.report("burst")["verdict"]
        self.assertEqual((v["status"], v["type"]), ("leak", "Burst"))
        self.assertEqual(v["count_delta"], 9000)
        self.assertEqual(v["held_by"]["address"], self.held["burst"])
        self.assertTrue(self.first_line("burst").startswith(
            "meliae: the leak is Burst: +9,000 objects ("))

    def test_warm_up_cache_is_not_a_suspect(self):
        types = {t["type"]: t for t in self.cli(
            "growth", "--process", "warmup", "--top", "0")["processes"][0]["types"]}
        entry = types["CacheEntry"]
        # the trend test alone flags it: rising, significant, material...
        self.assertLess(entry["trend"]["bytes"]["p"], 0.01)
        self.assertGreater(entry["trend"]["bytes"]["slope"], 0)
        # ...but it stopped growing in the first half
        self.assertEqual((entry["suspect"], entry["verdict"]),
                         (False, "stopped"))
        self.assertEqual(entry["count_after"], 3500)
        self.assertEqual([t for t in types.values() if t["suspect"]], [])
        out = self.cli("growth", "--process", "warmup", json_=False)
        row = [l for l in out.splitlines() if l.lstrip().startswith("CacheEntry ")]
        self.assertEqual(len(row), 1, out)
        self.assertIn("grew in the first half only: a warm-up", row[0])
        p = self.report("warmup")
        self.assertEqual(p["suspects"], [])
        self.assertEqual(p["verdict"]["status"], "no_leak")
        # (under ASan the sanitizer's quarantine makes RSS grow apart from
        # the objects: then the memory's alarm is the one line instead)
        first = self.cli("report", "--process", "warmup",
                         json_=False).splitlines()[0]
        self.assertTrue(first.startswith(
            "meliae: RSS " if p["verdict"]["outside"] else
            "meliae: no leak: no type's memory kept growing over 16 "
            "snapshots ("), first)

    def test_the_page_opens_with_the_verdict(self):
        path = os.path.join(self.tmp, "leak.html")
        self.cli("report", "--process", "leak", "--html", path, json_=False)
        with open(path, encoding="utf-8") as f:
            page = f.read()
        body = page[page.index("</h1>") + 5:]
        m = re.match(r'\s*<p class="headline leak">([^<]*)</p>', body)
        self.assertIsNotNone(m, body[:300])
        self.assertEqual(m.group(1).replace("&gt;", ">"),
                         self.first_line("leak"))
        path = os.path.join(self.tmp, "warm.html")
        self.cli("report", "--process", "warmup", "--html", path, json_=False)
        outside = self.report("warmup")["verdict"]["outside"]
        with open(path, encoding="utf-8") as f:
            # all clear, in its colour, only when the memory is too
            self.assertIn('<p class="headline wait">meliae: no Python type '
                          'leaks' if outside else
                          '<p class="headline clear">meliae: no leak:', f.read())

    def test_daemon_gives_the_same_verdict(self):
        local = self.cli("report", "--process", "leak")
        r = run_cli(["--socket", self.daemon.sock, "--json", "report",
                     "--process", "leak"])
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertEqual(json.loads(r.stdout), local)


def dump(path, objs):
    with open(path, "w") as f:
        for o in objs:
            f.write(json.dumps(o) + "\n")


class TestAccumulationPointsOfDumps(TmpTestCase):

    def test_an_address_reused_by_a_new_object_is_new(self):
        """a: module -> dict -> list L, and a dict D at 0x5000 held by L.
        b: D is gone; a new Node at 0x6000 in L holds a new dict at 0x5000
        (the same address and type, another size: a new instance's
        __dict__ where a freed one was).  It is new, in L's group, 2 hops
        down; the old D is gone."""
        mod = {"address": 0x1000, "type": "module", "size": 72,
               "name": "app", "refs": [0x2000]}
        key = {"address": 0x2800, "type": "str", "size": 54, "len": 5,
               "value": "cache", "refs": []}
        a = [mod, key,
             {"address": 0x2000, "type": "dict", "size": 360, "len": 1,
              "refs": [0x2800, 0x3000]},
             {"address": 0x3000, "type": "list", "size": 72, "len": 1,
              "refs": [0x5000]},
             {"address": 0x5000, "type": "dict", "size": 232, "len": 0,
              "refs": []}]
        b = [mod, key, a[2],
             {"address": 0x3000, "type": "list", "size": 72, "len": 1,
              "refs": [0x6000]},
             {"address": 0x6000, "type": "Node", "size": 48,
              "refs": [0x5000]},
             {"address": 0x5000, "type": "dict", "size": 104, "len": 1,
              "refs": [0x7000]},
             {"address": 0x7000, "type": "bytes", "size": 81, "len": 48,
              "refs": []}]
        pa, pb = (os.path.join(self.tmp, n) for n in ("ra.json", "rb.json"))
        dump(pa, a)
        dump(pb, b)
        r = run_cli(["--json", "diff", pa, pb])
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        doc = json.loads(r.stdout)
        nw = doc["new_objects"]
        self.assertEqual((nw["count"], nw["bytes"]), (3, 48 + 104 + 81))
        [g] = nw["groups"]
        self.assertEqual(g["holder"]["address"], 0x3000)
        self.assertEqual(g["holder"]["path"], "app.cache")
        self.assertEqual([(t["type"], t["depth"]) for t in g["types"]],
                         [("dict", 2), ("bytes", 3), ("Node", 1)])
        self.assertEqual(doc["gone_objects"], {"count": 1, "bytes": 232})


class TestNoVerdictYet(TmpTestCase):

    def test_three_snapshots_have_no_verdict_yet(self):
        store = os.path.join(self.tmp, "fx")
        make_fixture_store(store)
        r = run_cli(["--store", store, "--json", "report"])
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        [p] = json.loads(r.stdout)["processes"]
        self.assertEqual(p["verdict"], {"snapshots": 3, "seconds":
                                        p["verdict"]["seconds"],
                                        "status": "no_verdict",
                                        "outside": False, "min_snapshots": 5})
        r = run_cli(["--store", store, "report"])
        self.assertEqual(r.stdout.splitlines()[0], "meliae: no verdict yet: 3 "
                         "snapshots, and the trend test needs 5 or more")
        path = os.path.join(self.tmp, "few.html")
        r = run_cli(["--store", store, "report", "--html", path])
        with open(path, encoding="utf-8") as f:
            # not the colour of "all clear"
            self.assertIn('<p class="headline wait">meliae: no verdict yet',
                          f.read())


if __name__ == "__main__":
    unittest.main()
