# SPDX-License-Identifier: MIT
"""Named paths through the daemon (issue 18, points 1 and 2): a program
(tests/cli/paths_app.py) streams one snapshot with values "none" to a real
meliae-monitord, and meliae-cli referrers says how each object is kept
alive in the program's words, as text and as --json steps:

- a listener in a bus:           __main__.BUS.subscribers[17]
- a session keyed by a data str: __main__._SESSIONS[<str>] (the key's
  content is not sent: values "none" sends names of code only)
- an lru_cache entry:            functools.lru_cache(__main__.render)[77]
- a running thread's local:      thread 'collector' in worker() paths_app.py:LINE, local 'buf'
- a suspended generator's local: __main__.G, generator in gen() paths_app.py:LINE, local 'gbuf'

LINE is the line the program reports for itself.
"""

import json
import os
import subprocess
import sys
import time
import unittest

from cli_support import HERE, Daemon, TmpTestCase, cli_env, needs_daemon, run_cli


@needs_daemon
class PathsTest(TmpTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.daemon = Daemon(cls.tmp)
        cls.store = cls.daemon.store
        cls.app = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "paths_app.py"),
             cls.daemon.sock], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, env=cli_env())
        try:
            line = cls.app.stdout.readline()
            if not line:
                raise AssertionError("paths_app.py said nothing:\n"
                                     + cls.daemon.log())
            cls.ids = json.loads(line)
            end = time.monotonic() + 60
            while not cls.snapshots():
                if time.monotonic() > end:
                    raise AssertionError("no snapshot:\n" + cls.daemon.log())
                time.sleep(0.1)
        finally:
            cls.app.stdin.close()
            cls.app.wait(timeout=60)
            cls.app.stdout.close()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.daemon.stop()
        finally:
            super().tearDownClass()

    @classmethod
    def snapshots(cls):
        r = run_cli(["--store", cls.store, "--json", "snapshots", "--process",
                     "paths"])
        return json.loads(r.stdout)["snapshots"] if r.returncode == 0 else []

    def referrers(self, key, json_=True):
        r = run_cli(["--store", self.store] + (["--json"] if json_ else [])
                    + ["referrers", "latest", str(self.ids[key]),
                       "--process", "paths", "--chains", "1"])
        self.assertEqual((r.returncode, r.stderr), (0, ""), key)
        return json.loads(r.stdout) if json_ else r.stdout

    def path(self, key):
        doc = self.referrers(key)
        self.assertEqual(len(doc["paths"]), len(doc["chains"]))
        p = doc["paths"][0]
        # the steps go root to object, the chain object to root: the same
        # objects
        self.assertEqual([s["object"]["address"] for s in p["steps"]],
                         [o["address"] for o in reversed(doc["chains"][0])])
        self.assertEqual(p["steps"][-1]["object"]["address"], self.ids[key])
        return p

    def test_a_listener_of_the_bus(self):
        p = self.path("listener")
        self.assertEqual(p["text"], "__main__.BUS.subscribers[17]")
        # the __dict__ steps: the module's always; the instance's only
        # where it has one (3.11+ keeps attributes inline)
        vias = [s["via"] for s in p["steps"]]
        self.assertEqual([v for v in vias if v != {"dict": None}],
                         [{"root": "__main__"}, {"global": "BUS"},
                          {"attr": "subscribers"}, {"index": 17}])
        self.assertEqual(vias[1], {"dict": None})
        # the text: the path first, then the objects
        out = self.referrers("listener", json_=False).splitlines()
        self.assertEqual(out[0], "__main__.BUS.subscribers[17]")
        self.assertIn("Listener@0x%x" % self.ids["listener"], out[1])

    def test_a_session_keyed_by_data_shows_no_key(self):
        p = self.path("session")
        self.assertEqual(p["text"], "__main__._SESSIONS[<str>]")
        self.assertEqual(p["steps"][-1]["via"], {"key": None,
                                                 "key_type": "str"})
        # and the key itself has no value in the store
        r = run_cli(["--store", self.store, "--json", "show", "latest",
                     str(self.ids["session_key"]), "--process", "paths"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("value", json.loads(r.stdout)["object"])

    def test_an_lru_cache_entry(self):
        p = self.path("cached")
        self.assertEqual(p["text"], "functools.lru_cache(__main__.render)[77]")
        self.assertEqual(p["steps"][-1]["via"], {"key": 77, "key_type": "int"})

    def test_a_local_of_a_running_thread(self):
        p = self.path("buf")
        self.assertEqual(p["text"],
                         "thread 'collector' in worker() paths_app.py:%d, "
                         "local 'buf'" % self.ids["worker_line"])
        self.assertEqual(p["steps"][0]["object"]["type"], "<thread frame>")
        self.assertEqual(p["steps"][1]["via"], {"local": "buf"})

    def test_an_attribute_of_a_threading_local(self):
        # the local's dict of per-thread dicts is no step of its own; the
        # attribute's name is a name of code, sent with values "none"
        p = self.path("tbuf")
        self.assertEqual(p["text"], "__main__.LOCAL.tbuf")
        self.assertEqual([s["via"] for s in p["steps"]][-2:],
                         [{"thread_local": None}, {"attr": "tbuf"}])

    def test_a_local_of_a_suspended_generator(self):
        p = self.path("gbuf")
        self.assertEqual(p["text"],
                         "__main__.G, generator in gen() paths_app.py:%d, "
                         "local 'gbuf'" % self.ids["gen_line"])
        self.assertEqual(p["steps"][-1]["via"], {"local": "gbuf"})


if __name__ == "__main__":
    unittest.main()
