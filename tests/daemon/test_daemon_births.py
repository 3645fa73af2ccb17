# SPDX-License-Identifier: MIT
"""Birth sites through the daemon, by hand (docs/protocol.md, "Birth
sites"): table lines and "trace" keys are stored and answered by diff;
out-of-order or dangling ids and malformed frames are protocol errors; a
stream without them stores nothing of them.
"""

import json
import subprocess
import sys
import textwrap
import time
import unittest

import os

from daemon_support import DaemonTestCase, Client, header, line

CLI = os.environ.get("MELIAE_CLI", "")

FILE = "/srv/app/\u00e9v\x1bl.py"


def traced_snapshot(base, n_new, table=True, trace=0, frames=None,
                    extra_lines=()):
    """A snapshot of a dict holding n_new list objects, each traced to
    traceback `trace` of a one-entry table."""
    parts = [line(header())]
    if table:
        parts.append(line({"traceback": 0, "frames": frames or [
            [FILE, 42, "Cache.add"], ["/srv/app/main.py", 7, "<module>"]]}))
    parts += [line(x) for x in extra_lines]
    objs = [{"address": base, "type": "dict", "size": 1000,
             "refs": [base + 1 + i for i in range(n_new)]}]
    for i in range(n_new):
        o = {"address": base + 1 + i, "type": "list", "size": 56 + i,
             "refs": []}
        if trace is not None:
            o["trace"] = trace
        objs.append(o)
    parts += [line(o) for o in objs]
    parts.append(line({"end": "complete", "objects": len(objs),
                       "bytes": sum(o["size"] for o in objs)}))
    return b"".join(parts)


def send(path, data):
    c = Client(path)
    try:
        c.send(data)
        return c.reply()
    finally:
        c.close()


class TestBirthsThroughTheDaemon(DaemonTestCase):

    def cli(self, d, *args):
        r = subprocess.run([CLI, "--store", d.store, "--json"] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def test_diff_answers_the_birth_sites_of_the_new_objects(self):
        d = self.daemon()
        a = send(d.sock, traced_snapshot(1 << 40, 0, table=False))
        b = send(d.sock, traced_snapshot(1 << 40, 25))
        self.assertIn("ack", a)
        self.assertIn("ack", b)
        doc = self.cli(d, "diff", str(a["ack"]), str(b["ack"]))
        births = doc["new_objects"]["births"]
        [lst] = [t for t in births if t["type"] == "list"]
        self.assertEqual((lst["count"], lst["traced_count"]), (25, 25))
        self.assertEqual(lst["bytes"], sum(56 + i for i in range(25)))
        [site] = lst["sites"]
        self.assertEqual((site["file"], site["line"], site["function"]),
                         (FILE, 42, "Cache.add"))
        self.assertEqual((site["count"], site["bytes"]),
                         (25, lst["bytes"]))
        self.assertEqual([f["line"] for f in site["traceback"]], [42, 7])
        # the text escapes what the heap said
        r = subprocess.run([CLI, "--store", d.store, "diff", str(a["ack"]),
                            str(b["ack"])], stdout=subprocess.PIPE,
                           text=True, timeout=60)
        self.assertIn("born at /srv/app/\u00e9v\\x1bl.py:42 in Cache.add: 25",
                      r.stdout)
        self.assertNotIn("\x1b", r.stdout)

    def test_untraced_snapshots_have_no_births(self):
        d = self.daemon()
        a = send(d.sock, traced_snapshot(1 << 40, 0, table=False))
        b = send(d.sock, traced_snapshot(1 << 40, 5, table=False,
                                         trace=None))
        doc = self.cli(d, "diff", str(a["ack"]), str(b["ack"]))
        self.assertNotIn("births", doc["new_objects"])

    def test_a_trace_no_table_line_defined_is_refused(self):
        d = self.daemon()
        r = send(d.sock, traced_snapshot(1 << 40, 3, table=False))
        self.assertEqual(r.get("code"), "proto", r)
        self.assertIn("no traceback line defined", r["error"])
        r = send(d.sock, traced_snapshot(1 << 40, 3, trace=1))
        self.assertEqual(r.get("code"), "proto", r)

    def test_table_ids_must_count_from_zero(self):
        d = self.daemon()
        data = traced_snapshot(1 << 40, 1).replace(b'{"traceback": 0',
                                                   b'{"traceback": 3')
        r = send(d.sock, data)
        self.assertEqual(r.get("code"), "proto", r)
        self.assertIn("traceback 3 where 0 was due", r["error"])

    def test_malformed_frames_are_refused(self):
        d = self.daemon()
        for frames in ([["f.py", "42", "g"]], [["f.py", -1, "g"]],
                       [["f.py", 1]], [[1, 2, 3]], [["f.py", 1.5, None]]):
            r = send(d.sock, traced_snapshot(1 << 40, 1, frames=frames))
            self.assertEqual(r.get("code"), "proto", (frames, r))
        d2 = send(d.sock, traced_snapshot(1 << 40, 1, frames=[
            [None, 0, None]]))
        self.assertIn("ack", d2)        # unknown file and function: allowed


# A program meliae run watches with --traces: a snapshot (SIGUSR2) before
# it keeps 300 bytearrays, the exit's after (kept in sys: the script's
# own globals are gone by then, as runpy leaves them).
LEAKER = textwrap.dedent("""\
    import os, signal, sys, time
    time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGUSR2)
    # until that snapshot is taken: the streamer's thread connects first
    from meliae import stream
    end = time.monotonic() + 60
    while time.monotonic() < end and not any(
            s.last_snapshot_id for s in list(stream._streamers)):
        time.sleep(0.05)

    def keep(n):
        out = []
        for i in range(n):
            out.append(bytearray(1000))   # the birth site
        return out

    sys.KEPT = keep(300)
    """)


class TestRunTraces(DaemonTestCase):

    def test_meliae_run_traces_streams_birth_sites(self):
        d = self.daemon()
        prog = os.path.join(self.tmp, "leaker.py")
        with open(prog, "w") as f:
            f.write(LEAKER)
        r = subprocess.run([sys.executable, "-m", "meliae", "run", "--socket",
                            d.sock, "--traces", "4", prog],
                           capture_output=True, text=True, timeout=120,
                           env=dict(os.environ))
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        cli = [CLI, "--store", d.store, "--json"]
        end = time.monotonic() + 30
        while True:
            snaps = json.loads(subprocess.run(
                cli + ["snapshots"], capture_output=True, text=True,
                timeout=60).stdout)["snapshots"]
            if len(snaps) >= 2 or time.monotonic() > end:
                break
            time.sleep(0.2)
        self.assertEqual(len(snaps), 2, snaps)
        doc = json.loads(subprocess.run(
            cli + ["diff", str(snaps[0]["id"]), str(snaps[1]["id"]),
                   "--top", "0"],
            capture_output=True, text=True, timeout=60).stdout)
        [ba] = [t for t in doc["new_objects"]["births"]
                if t["type"] == "bytearray"]
        site = ba["sites"][0]
        line = next(i for i, t in enumerate(LEAKER.splitlines(), 1)
                    if "the birth site" in t)
        self.assertEqual((site["file"], site["line"], site["function"]),
                         (prog, line, "keep"))
        self.assertGreaterEqual(site["count"], 300)


if __name__ == "__main__":
    unittest.main()
