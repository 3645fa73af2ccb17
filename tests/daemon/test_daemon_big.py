# SPDX-License-Identifier: MIT
"""Issue 11: containers far past the old 64 MiB line limit stream, store
and are queried, while the daemon's memory stays bounded.  Suite 'big'
(a heap of 15M objects, about 1.6 GiB in the client)."""

import datetime
import json
import os
import subprocess
import sys
import threading
import time
import unittest

from daemon_support import UNDER_ASAN, DaemonTestCase, plain_env

try:
    from meliae import scanner
    HAVE_STREAM = hasattr(scanner, "stream_to")
except ImportError:
    HAVE_STREAM = False

CLI = os.environ.get("MELIAE_CLI", "")

# A dict of 10M entries (20M refs), a list of 20M items, a set of 5M.
# The int whose address is printed is held by the dict only: it was made
# in a function whose frame is gone.
CLIENT = r"""
import json, os, sys
from meliae import scanner
B = 10 ** 12
big_dict = dict.fromkeys(range(B, B + 10000000))
big_list = [0] * 20000000
big_set = set(range(2 * B, 2 * B + 5000000))

def dict_only_int():
    for k in big_dict:
        if k == B + 7777777:
            return id(k)

target = dict_only_int()
with scanner.stream_to(sys.argv[1], label="big", timeout=600) as s:
    snap = s.snapshot(timeout=600)
print(json.dumps({"snap": snap, "int": target, "dict": id(big_dict),
                  "list": id(big_list), "set": id(big_set)}))
"""


def cli(sock, *args):
    out = subprocess.run([CLI, "--socket", sock, "--json"] + list(args),
                         capture_output=True, text=True, timeout=600,
                         env=plain_env())
    if out.returncode != 0:
        raise AssertionError("meliae-cli %s: %s" % (args, out.stderr))
    return json.loads(out.stdout)


@unittest.skipUnless(HAVE_STREAM and CLI, "stream_to or meliae-cli not built")
class TestBigContainers(DaemonTestCase):

    def test_10m_dict_20m_list_5m_set_stream_and_query(self):
        d = self.daemon()
        samples = []
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                samples.append((time.time(), d.rss_anon_kib()))
                time.sleep(0.005)

        rss0 = d.rss_anon_kib()
        t = threading.Thread(target=sample)
        t.start()
        try:
            out = subprocess.run([sys.executable, "-c", CLIENT, d.sock],
                                 capture_output=True, text=True,
                                 timeout=900, env=dict(os.environ))
        finally:
            stop.set()
            t.join()
        self.assertEqual(out.returncode, 0, out.stderr[-3000:])
        r = json.loads(out.stdout)
        snap = str(r["snap"])

        summary = cli(d.sock, "summary", snap, "--top", "0")
        self.assertGreater(summary["total_objects"], 15000000)
        types = {row["type"]: row for row in summary["types"]}
        self.assertEqual(types["dict"]["max_address"], r["dict"])
        self.assertEqual(types["list"]["max_address"], r["list"])
        self.assertEqual(types["set"]["max_address"], r["set"])
        self.assertGreaterEqual(types["int"]["count"], 15000000)

        # Every ref of the big containers was stored.
        show = cli(d.sock, "show", snap, hex(r["dict"]), "--limit", "1")
        self.assertEqual(show["object"]["nrefs"], 20000000)
        self.assertEqual(show["object"]["len"], 10000000)
        show = cli(d.sock, "show", snap, hex(r["list"]), "--limit", "1")
        self.assertEqual(show["object"]["nrefs"], 20000000)
        show = cli(d.sock, "show", snap, hex(r["set"]), "--limit", "1")
        self.assertEqual(show["object"]["nrefs"], 5000000)

        # The int held by the dict alone: its chain runs through the dict
        # to the module.
        ref = cli(d.sock, "referrers", snap, hex(r["int"]))
        self.assertTrue(ref["chains"], ref)
        chain = ref["chains"][0]
        self.assertEqual(chain[1]["address"], r["dict"], chain[:3])
        self.assertEqual(chain[-1]["type"], "module", chain[-3:])

        if not UNDER_ASAN:
            # While the lines arrive (the event loop's part), then in all
            # (the commit, on the writer thread, included).
            received = [ln for ln in d.log().splitlines()
                        if "snapshot_received" in ln][0]
            t = datetime.datetime.strptime(received.split()[0].rstrip("Z"),
                                           "%Y-%m-%dT%H:%M:%S.%f")
            t = t.replace(tzinfo=datetime.timezone.utc).timestamp()
            receiving = max(kb for ts, kb in samples if ts <= t)
            peak = max(kb for _, kb in samples)
            self.assertLessEqual(receiving, 64 << 10,
                                 "daemon RssAnon peaked at %d KiB while "
                                 "receiving (from %d)" % (receiving, rss0))
            self.assertLessEqual(peak, 64 << 10,
                                 "daemon RssAnon peaked at %d KiB in the "
                                 "commit (%d while receiving)"
                                 % (peak, receiving))
        self.stop_clean(d)


if __name__ == "__main__":
    unittest.main()
