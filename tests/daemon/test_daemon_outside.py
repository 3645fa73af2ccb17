# SPDX-License-Identifier: MIT
"""The process beside its objects (issue 19): every streamed snapshot
carries the process's RSS and pymalloc's figures; the daemon checks and
stores them; growth and report say in their first line when RSS grows
outside Python objects and which way the allocator's figures point; the
Prometheus metrics carry RSS and the unexplained part.

Real programs stream to a real daemon: one that mallocs 10 MiB per
snapshot through ctypes (native), one that fragments pymalloc (objects
freed, their arenas kept), one whose Python objects leak (no such
verdict), and the protocol's checks by hand."""

import json
import os
import subprocess
import sys
import textwrap
import unittest

from daemon_support import (Client, DaemonTestCase, header, line, objects,
                            snapshot)
from metrics_support import typed_snapshot, wait_textfile

CLI = os.environ.get("MELIAE_CLI", "")

NATIVE = """
    import ctypes, sys, time
    from meliae import scanner
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    held = []                       # addresses as ints: no Python object grows
    with scanner.stream_to(sys.argv[1], label="native", timeout=120) as st:
        for i in range(7):
            p = libc.malloc(10 << 20)
            libc.memset(p, 1, 10 << 20)
            held.append(p)
            st.snapshot(timeout=120)
    """

FRAGMENT = """
    import gc, sys
    from meliae import scanner
    keep = []
    with scanner.stream_to(sys.argv[1], label="frag", timeout=120) as st:
        for step in range(7):
            # a size class per step, so that the next step cannot reuse
            # the blocks this one frees; one object in eight is kept
            objs = [tuple(range(step + 1)) + (i,) for i in range(200000)]
            keep.extend(objs[::8])
            del objs
            gc.collect()
            st.snapshot(timeout=120)
    """

OBJECTS = """
    import sys
    from meliae import scanner
    class Session:
        def __init__(self, i):
            self.i = i
            self.buf = bytearray(2000)
    SESSIONS = []
    with scanner.stream_to(sys.argv[1], label="objects", timeout=120) as st:
        for step in range(7):
            SESSIONS.extend(Session(i) for i in range(3000))
            st.snapshot(timeout=120)
    """


@unittest.skipUnless(CLI, "MELIAE_CLI unset")
class OutsideVerdictTest(DaemonTestCase):

    def run_app(self, d, code):
        p = subprocess.run([sys.executable, "-c", textwrap.dedent(code),
                            d.sock], capture_output=True, text=True,
                           timeout=600)
        self.assertEqual(p.returncode, 0, p.stderr[-3000:])

    def cli(self, d, *args, json_=True):
        r = subprocess.run([CLI, "--socket", d.sock]
                           + (["--json"] if json_ else []) + list(args),
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout) if json_ else r.stdout

    def memory(self, d, label, need_pymalloc=False):
        g = self.cli(d, "growth", "--process", label)
        (p,) = g["processes"]
        if need_pymalloc and p["memory"]["pymalloc"] is None:
            # PYTHONMALLOC=malloc (the ASan run): no allocator figures, and
            # the sanitizer's quarantine makes any RSS grow
            self.skipTest("the application does not use pymalloc")
        return p, p["memory"]

    def test_native_malloc_is_outside_python_objects_and_blames_no_type(self):
        d = self.daemon()
        self.run_app(d, NATIVE)
        p, m = self.memory(d, "native", need_pymalloc=True)
        self.assertEqual(m["snapshots"], 7)
        self.assertEqual(m["verdict"], "outside", m)
        self.assertEqual(m["points_to"], "native", m)
        self.assertGreater(m["rss"]["delta"], 55 << 20)
        self.assertLess(abs(m["heap"]["delta"]), 2 << 20)
        self.assertFalse([t for t in p["types"] if t["suspect"]])
        text = self.cli(d, "growth", "--process", "native", json_=False)
        first = text.splitlines()[0]
        self.assertTrue(first.startswith("meliae: RSS +"), first)
        self.assertIn("outside Python objects", first)
        self.assertIn("native allocations", first)
        report = self.cli(d, "report", "--process", "native", json_=False)
        self.assertEqual(report.splitlines()[0], first)
        rj = self.cli(d, "report", "--process", "native")
        self.assertEqual(rj["processes"][0]["memory"]["verdict"], "outside")
        self.assertEqual(rj["processes"][0]["suspects"], [])
        self.assertEqual(len(rj["processes"][0]["points"]), 7)
        self.assertTrue(all(x["rss"] > 0 for x in rj["processes"][0]["points"]))
        self.stop_clean(d)

    def test_fragmented_object_allocator_points_to_fragmentation(self):
        d = self.daemon()
        self.run_app(d, FRAGMENT)
        _, m = self.memory(d, "frag", need_pymalloc=True)
        self.assertEqual(m["verdict"], "outside", m)
        self.assertEqual(m["points_to"], "fragmentation", m)
        pm = m["pymalloc"]
        self.assertGreater(pm["arena_bytes"]["delta"],
                           pm["allocated_bytes"]["delta"] + (20 << 20))
        # the verdict's line first (the tuples it keeps do grow), then
        # the alarm that says where the rest of the RSS went
        lines = self.cli(d, "report", "--process", "frag",
                         json_=False).splitlines()
        alarm = [l for l in lines[:2] if l.startswith("meliae: RSS +")]
        self.assertEqual(len(alarm), 1, lines[:2])
        self.assertIn("fragmentation", alarm[0])
        self.stop_clean(d)

    def test_growing_python_objects_are_not_outside(self):
        d = self.daemon()
        self.run_app(d, OBJECTS)
        p, m = self.memory(d, "objects", need_pymalloc=True)
        self.assertIn(m["verdict"], ("objects", "no_trend", "below_floor"), m)
        self.assertIsNone(m["points_to"])
        self.assertTrue([t for t in p["types"] if t["suspect"]])
        first = self.cli(d, "growth", "--process", "objects",
                         json_=False).splitlines()[0]
        self.assertFalse(first.startswith("meliae: RSS"), first)
        self.stop_clean(d)

    def test_snapshots_show_rss_and_the_record_keeps_the_figures(self):
        d = self.daemon()
        self.run_app(d, NATIVE)
        snaps = self.cli(d, "snapshots")["snapshots"]
        self.assertEqual(len(snaps), 7)
        for s in snaps:
            pr = s["process"]
            self.assertGreater(pr["rss"], 0)
            self.assertLessEqual(pr["rss_anon"], pr["rss"])
            self.assertIsNone(pr["traced"])
        text = self.cli(d, "snapshots", json_=False)
        self.assertIn("RSS", text.splitlines()[0])
        self.stop_clean(d)


class HeaderFiguresProtocolTest(DaemonTestCase):

    def ack(self, d, hdr, n=5):
        c = Client(d.sock)
        c.send(snapshot(n, hdr=hdr))
        r = c.reply()
        c.close()
        return r

    def test_bad_figures_are_a_protocol_error(self):
        d = self.daemon()
        for bad in ({"rss": -1}, {"rss": "12"}, {"rss": 1.5},
                    {"rss": 2 ** 60}, {"pymalloc": []},
                    {"pymalloc": {"arenas": True}}, []):
            with self.subTest(bad=bad):
                r = self.ack(d, header(process=bad))
                self.assertEqual(r.get("code"), "proto", r)
                self.assertIn("process", r["error"])
        # without figures, or with nulls, a snapshot is stored
        self.assertIn("ack", self.ack(d, header()))
        self.assertIn("ack", self.ack(d, header(process=None)))
        self.assertIn("ack", self.ack(d, header(process={"rss": None,
                                                         "pymalloc": None})))
        self.stop_clean(d)

    @unittest.skipUnless(CLI, "MELIAE_CLI unset")
    def test_figures_are_stored_as_sent(self):
        d = self.daemon()
        fig = {"rss": 123 << 20, "rss_anon": 100 << 20, "traced": 7 << 20,
               "pymalloc": {"arenas": 9, "arena_bytes": 9 << 20, "pools": 500,
                            "allocated_bytes": 6 << 20,
                            "free_block_bytes": 1 << 20,
                            "unused_pool_bytes": 1 << 19},
               "unknown_later_figure": 1}
        r = self.ack(d, header(process=fig))
        out = subprocess.run([CLI, "--socket", d.sock, "--json", "snapshots"],
                             capture_output=True, text=True, timeout=60)
        (s,) = json.loads(out.stdout)["snapshots"]
        self.assertEqual(s["id"], r["ack"])
        want = dict(fig)
        del want["unknown_later_figure"]
        self.assertEqual(s["process"], want)
        self.stop_clean(d)

    def test_prometheus_has_rss_and_the_unexplained_part(self):
        prom = os.path.join(self.tmp, "meliae.prom")
        d = self.daemon(args=["--metrics-textfile", prom])
        c = Client(d.sock)
        hdr = header(label="web", program="/srv/app.py",
                     process={"rss": 50 << 20, "rss_anon": 40 << 20})
        c.send(typed_snapshot([("Leak", 10, 64), ("str", 7, 50)], hdr=hdr))
        c.reply()
        e = wait_textfile(prom, lambda e: e.value(
            "meliae_ingest_snapshots_total") == 1)
        who = dict(pid=str(os.getpid()), program="/srv/app.py", label="web")
        self.assertEqual(e.value("meliae_process_rss_bytes", **who), 50 << 20)
        self.assertEqual(e.value("meliae_process_rss_anon_bytes", **who),
                         40 << 20)
        self.assertEqual(e.value("meliae_process_unexplained_bytes", **who),
                         (50 << 20) - (640 + 350))
        c.close()
        self.stop_clean(d)


if __name__ == "__main__":
    unittest.main()
