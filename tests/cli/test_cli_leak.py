# SPDX-License-Identifier: MIT
"""End to end: a leaking Python process streams snapshots every second to
a real meliae-monitord; meliae-cli finds the leak, the chain that keeps a
leaked object alive, and the cache the new objects went to.

tests/cli/leaky_service.py caches 40 more sessioncache.Session objects in
sessioncache.CACHE every 50 ms and streams with
stream_to(sock, interval=1, label="leaky").  After 5 snapshots (about 5 s)
it stops, and the test asks:

- growth --since 1m: Session first (by size), marked suspect;
- referrers latest ADDR (a leaked Session): the first chain ends at module
  sessioncache, through the CACHE list and the module's __dict__;
- diff latest~2 latest: the new Sessions are in one group, at the CACHE
  list (their accumulation point), named sessioncache.CACHE;

as --json documents with --store, the same documents through the daemon,
and as tables.
"""

import json
import re
import os
import subprocess
import sys
import time
import unittest

from cli_support import (HERE, Daemon, TmpTestCase, cli_env, needs_daemon,
                         run_cli)

MODULE = "sessioncache"
SNAPSHOTS = 5


@needs_daemon
class TestLeakScenario(TmpTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.daemon = Daemon(cls.tmp)
        cls.store = cls.daemon.store
        app = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "leaky_service.py"),
             cls.daemon.sock], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, env=cli_env())
        try:
            assert app.stdout.readline().strip() == "streaming"
            cls.pid = app.pid
            end = time.monotonic() + 60
            while len(cls.leaky_snapshots()) < SNAPSHOTS:
                if time.monotonic() > end or app.poll() is not None:
                    raise AssertionError("%d snapshots after 60 s:\n%s"
                                         % (len(cls.leaky_snapshots()),
                                            cls.daemon.log()))
                time.sleep(0.1)
        finally:
            app.stdin.close()
            app.wait(timeout=60)
            app.stdout.close()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.daemon.stop()
        finally:
            super().tearDownClass()

    @classmethod
    def leaky_snapshots(cls):
        r = run_cli(["--store", cls.store, "--json", "snapshots", "--process",
                     "leaky"])
        if r.returncode != 0:
            return []
        return json.loads(r.stdout)["snapshots"]

    def cli(self, *args, json_=True):
        r = run_cli(["--store", self.store] + (["--json"] if json_ else [])
                    + list(args))
        self.assertEqual((r.returncode, r.stderr), (0, ""), args)
        return json.loads(r.stdout) if json_ else r.stdout

    def leaked_session(self):
        """The address of a Session in the latest snapshot (the summary's
        largest one)."""
        doc = self.cli("summary", "latest", "--process", "leaky", "--top", "0")
        [row] = [t for t in doc["types"] if t["type"] == "Session"]
        return row["max_address"]

    def test_snapshots_are_trusted_and_labelled(self):
        snaps = self.leaky_snapshots()
        self.assertGreaterEqual(len(snaps), SNAPSHOTS)
        for s in snaps:
            self.assertTrue(s["trusted"])
            self.assertEqual((s["pid"], s["label"], s["uid"]),
                             (self.pid, "leaky", os.getuid()))
            self.assertTrue(s["program"].endswith("leaky_service.py"),
                            s["program"])
        # the same process by its pid and by its program's last component
        for sel in (str(self.pid), "leaky_service.py"):
            doc = self.cli("snapshots", "--process", sel)
            self.assertEqual([s["id"] for s in doc["snapshots"]],
                             [s["id"] for s in snaps], sel)

    def test_growth_ranks_session_first_and_suspect(self):
        doc = self.cli("growth", "--since", "1m")
        [proc] = [p for p in doc["processes"] if p["label"] == "leaky"]
        self.assertEqual(proc["pid"], self.pid)
        self.assertGreaterEqual(proc["snapshots"], SNAPSHOTS)
        top = proc["types"][0]
        self.assertEqual(top["type"], "Session", proc["types"][:3])
        self.assertTrue(top["suspect"], top)
        self.assertEqual(len(top["series"]), proc["snapshots"])
        self.assertEqual(top["series"], sorted(set(top["series"])))
        self.assertGreater(top["count_after"], top["count_before"])
        # the table says the same
        out = self.cli("growth", "--since", "1m", json_=False)
        rows = [l for l in out.splitlines() if l.startswith("  ")
                and not l.lstrip().startswith("TYPE")]
        self.assertTrue(rows[0].lstrip().startswith("Session "), out)
        self.assertIn("leak suspect", rows[0])
        self.assertIn('process %d "leaky"' % self.pid, out)

    def test_referrers_of_a_leaked_session_end_at_the_module(self):
        addr = self.leaked_session()
        doc = self.cli("referrers", "latest", str(addr), "--process", "leaky")
        self.assertEqual(doc["object"]["type"], "Session")
        self.assertEqual(doc["object"]["address"], addr)
        chain = doc["chains"][0]
        self.assertEqual(chain[0]["address"], addr)
        self.assertEqual((chain[-1]["type"], chain[-1]["name"]),
                         ("module", MODULE), chain)
        self.assertEqual([h["type"] for h in chain],
                         ["Session", "list", "dict", "module"], chain)
        self.assertGreater(chain[1]["len"], 100)         # the cache
        self.assertFalse(doc["truncated"])
        out = self.cli("referrers", "latest", hex(addr), "--process", "leaky",
                       json_=False)
        # the path first (common/paths.c), then the objects
        path, first = out.splitlines()[:2]
        self.assertRegex(path, r"\A%s\.CACHE\[\d+\]\Z" % MODULE)
        first = first.strip()
        self.assertTrue(first.startswith("Session@%s " % hex(addr)), first)
        self.assertIn(" <- list@0x%x " % chain[1]["address"], first)
        self.assertIn("(__dict__ of module %s)" % MODULE, first)
        self.assertTrue(first.endswith(" " + MODULE), first)

    def test_diff_attributes_the_new_sessions_to_the_cache(self):
        addr = self.leaked_session()
        chain = self.cli("referrers", "latest", str(addr))["chains"][0]
        cache, module = chain[1], chain[-1]
        doc = self.cli("diff", "latest~2", "latest", "--process", "leaky")
        before = doc["a"]["id"]
        self.assertLess(before, doc["b"]["id"])
        [t] = [t for t in doc["types"] if t["type"] == "Session"]
        new = t["count_after"] - t["count_before"]
        self.assertGreater(new, 0)
        groups = [g for g in doc["new_objects"]["groups"]
                  if "Session" in [t["type"] for t in g["types"]]]
        self.assertEqual(len(groups), 1, groups)
        g = groups[0]
        rows = {t["type"]: t for t in g["types"]}
        self.assertEqual(rows["Session"]["count"], new)  # every new one
        self.assertEqual(rows["Session"]["depth"], 1)    # in the list
        self.assertEqual(g["holder"]["address"], cache["address"])
        self.assertEqual((g["holder"]["type"], g["holder"]["new"]),
                         ("list", False))
        self.assertEqual((g["holder"]["owner"]["type"],
                          g["holder"]["owner"]["name"]), ("module", MODULE))
        self.assertEqual(g["holder"]["owner"]["address"], module["address"])
        self.assertEqual(g["holder"]["path"], "%s.CACHE" % MODULE)
        out = self.cli("diff", "latest~2", "latest", "--process", "leaky",
                       json_=False)
        line = [l for l in out.splitlines() if " Session (" in l]
        self.assertEqual(len(line), 1, out)
        self.assertIn(" at %s.CACHE len=" % MODULE, line[0])
        self.assertIn(": %d Session (" % new, line[0])

    def test_the_daemon_gives_the_same_answers(self):
        addr = self.leaked_session()
        for args in (["growth", "--since", "1h"],
                     ["referrers", "latest", str(addr)],
                     ["diff", "latest~2", "latest"],
                     ["summary", "latest", "--top", "5"],
                     ["show", "latest", hex(addr)]):
            with self.subTest(args=args):
                local = self.cli(*args)
                r = run_cli(["--socket", self.daemon.sock, "--json"] + args)
                self.assertEqual((r.returncode, r.stderr), (0, ""))
                self.assertEqual(json.loads(r.stdout), local)


if __name__ == "__main__":
    unittest.main()
