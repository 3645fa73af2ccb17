# SPDX-License-Identifier: MIT
"""End to end with the real client: meliae.scanner.stream_to streams this
interpreter's heap to the daemon, which stores it."""

import json
import os
import subprocess
import sys
import unittest

from daemon_support import DaemonTestCase, store_list

try:
    from meliae import scanner
    HAVE_STREAM = hasattr(scanner, "stream_to")
except ImportError:
    HAVE_STREAM = False

CLIENT = r"""
import json, os, sys
from meliae import scanner
keep = [{"k%d" % i: [i] * 3} for i in range(5000)]
with scanner.stream_to(sys.argv[1], label="e2e", timeout=120) as s:
    ids = [s.snapshot(), s.snapshot()]
print(json.dumps({"ids": ids, "pid": os.getpid()}))
"""


@unittest.skipUnless(HAVE_STREAM, "meliae.scanner.stream_to not built")
class TestEndToEnd(DaemonTestCase):

    def test_stream_to_snapshots_are_acked_and_stored(self):
        d = self.daemon()
        out = subprocess.run([sys.executable, "-c", CLIENT, d.sock],
                             capture_output=True, text=True, timeout=300,
                             env=dict(os.environ))
        self.assertEqual(out.returncode, 0, out.stderr)
        r = json.loads(out.stdout)
        ids = r["ids"]
        self.assertEqual(len(ids), 2)
        self.assertLess(ids[0], ids[1])
        self.stop_clean(d)
        snaps = {s["id"]: s for s in store_list(d.store)}
        for i in ids:
            s = snaps[i]
            self.assertEqual(s["label"], "e2e")
            self.assertTrue(s["trusted"])
            self.assertEqual(s["pid"], r["pid"])
            self.assertGreater(s["objects"], 20000)


# A str whose escaped text (6 bytes a character) would make a head of
# 12 MB, past ML_PROTO_MAX_HEAD: the scanner cuts "full" values to
# ML_PROTO_MAX_VALUE characters, so it streams.
FULL_CLIENT = r"""
import json, sys
from meliae import scanner
big = "\x01" * 2000000
with scanner.stream_to(sys.argv[1], values="full", timeout=120) as s:
    print(json.dumps({"id": s.snapshot(), "addr": id(big)}))
"""


@unittest.skipUnless(HAVE_STREAM, "meliae.scanner.stream_to not built")
class TestFullValues(DaemonTestCase):

    def test_a_huge_full_value_is_cut_and_streams(self):
        d = self.daemon()
        out = subprocess.run([sys.executable, "-c", FULL_CLIENT, d.sock],
                             capture_output=True, text=True, timeout=300,
                             env=dict(os.environ))
        self.assertEqual(out.returncode, 0, out.stderr)
        r = json.loads(out.stdout)
        self.assertGreater(r["id"], 0)
        self.assertNotIn("snapshot_refused", d.log())
        self.stop_clean(d)


if __name__ == "__main__":
    unittest.main()
