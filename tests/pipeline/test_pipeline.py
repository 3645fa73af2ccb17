"""End to end: meliae.scanner.stream_to -> meliae-monitord -> the store.

The oracle is meliae.loader on a file dump: a snapshot stored by the
daemon must summarise exactly as the loader summarises the same lines.

Environment (set by tests/pipeline/meson.build): MELIAE_MONITORD (the
daemon), MELIAE_STORE_TOOL (tests/tools/store_tool), PYTHONPATH with
meliae.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import unittest

from meliae import loader

from daemon_case import DaemonCase

MONITORD = os.environ.get("MELIAE_MONITORD", "")
STORE_TOOL = os.environ.get("MELIAE_STORE_TOOL", "")


@unittest.skipUnless(MONITORD and STORE_TOOL, "MELIAE_MONITORD/STORE_TOOL unset")
class PipelineTest(DaemonCase):

    def tool(self, *args):
        out = subprocess.run([STORE_TOOL] + list(args), capture_output=True,
                             text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        return out.stdout

    def snapshots(self):
        return [json.loads(l) for l in self.tool("list", self.store).splitlines()]

    def summary(self, sid):
        return json.loads(self.tool("summary", self.store, str(sid)))

    def loader_summary(self, path):
        om = loader.load(path, show_prog=False, collapse=False)
        return {t: s for t, s in om.summarize().type_summaries.items()}

    def run_python(self, code, *args, **kw):
        return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)]
                                + [str(a) for a in args],
                                stdout=subprocess.PIPE, text=True, **kw)

    # -- the daemon's path, with an exact oracle -------------------------

    def send_file(self, path, label="replay"):
        """Streams a file dump's lines as one snapshot; returns the ack."""
        header = {"meliae_stream": 1, "pid": os.getpid(), "start_time": 0,
                  "hostname": "h", "program": "replay", "python": "3",
                  "label": label, "values": "truncated", "mode": "all",
                  "request": 0, "time": time.time()}
        n = size = 0
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(60)
        s.connect(self.sock)
        with s, open(path, "rb") as f:
            s.sendall(json.dumps(header).encode() + b"\n")
            for line in f:
                obj = json.loads(line)
                if "address" not in obj:
                    continue
                n += 1
                size += obj["size"]
                s.sendall(line)
            s.sendall(json.dumps({"end": "complete", "objects": n,
                                  "bytes": size}).encode() + b"\n")
            buf = b""
            while b"\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
            for line in buf.split(b"\n"):
                if line.strip():
                    msg = json.loads(line)
                    if "ack" in msg or "error" in msg:
                        return msg
        self.fail("no ack")

    def test_replayed_dump_summarises_exactly_as_the_loader(self):
        path = os.path.join(self.tmp, "d.json")
        p = self.run_python("""
            import sys
            from meliae import scanner
            class Leak:
                def __init__(self, i): self.i = i; self.s = "x" * (i % 50)
            keep = [Leak(i) for i in range(3000)]
            d = {i: [i] for i in range(2000)}
            scanner.dump_all_objects(sys.argv[1])
            """, path)
        p.communicate(timeout=120)
        self.assertEqual(p.returncode, 0)
        ack = self.send_file(path)
        self.assertIn("ack", ack, ack)
        with open(path) as f:
            self.assertEqual(ack["objects"], sum(1 for _ in f))
        got = self.summary(ack["ack"])
        want = self.loader_summary(path)
        self.assertEqual(set(got), set(want))
        for t, s in want.items():
            self.assertEqual(got[t], [s.count, s.total_size], t)
        self.assertEqual(got["Leak"][0], 3000)

        # referrers: the store's index against the loader's parents
        om = loader.load(path, show_prog=False, collapse=False, max_parents=10**9)
        om.compute_referrers()
        checked = 0
        leaks = om.get_all("Leak")
        self.assertEqual(len(leaks), 3000)
        addrs = list(om.objs)[::97][:60] + [o.address for o in leaks[:20]]
        for addr in addrs:
            want_parents = sorted(set(om[addr].parents))
            got_parents = json.loads(self.tool("referrers", self.store,
                                               str(ack["ack"]), str(addr)))
            self.assertEqual(sorted(set(got_parents)), want_parents, hex(addr))
            checked += 1
        self.assertGreater(checked, 60)

    # -- the scanner's path, three processes at once ----------------------

    APP = """
        import gc, json, sys
        from meliae import scanner
        sock, out, tag = sys.argv[1], sys.argv[2], sys.argv[3]
        cls = type("Leak" + tag, (), {})
        keep = []
        st = scanner.stream_to(sock, label="app" + tag, values="none")
        res = []
        for k in range(3):
            keep.extend(cls() for _ in range(1000 * (k + 1)))
            gc.collect()
            path = "%s.%d.json" % (out, k)
            scanner.dump_all_objects(path)
            res.append((st.snapshot(timeout=120), path))
        st.close()
        print(json.dumps(res))
        """

    def test_three_processes_stream_three_snapshots_each(self):
        procs = [self.run_python(self.APP, self.sock,
                                 os.path.join(self.tmp, "app%d" % i), i)
                 for i in range(3)]
        results = {}
        for i, p in enumerate(procs):
            out, _ = p.communicate(timeout=300)
            self.assertEqual(p.returncode, 0)
            results[i] = (p.pid, json.loads(out))
        snaps = {s["id"]: s for s in self.snapshots()}
        self.assertEqual(len(snaps), 9)
        for i, (pid, res) in results.items():
            ids = [sid for sid, _ in res]
            self.assertEqual(ids, sorted(ids))
            for k, (sid, path) in enumerate(res):
                s = snaps[sid]
                self.assertTrue(s["trusted"])
                self.assertEqual(s["pid"], pid)
                self.assertEqual(s["label"], "app%d" % i)
                got = self.summary(sid)
                want = self.loader_summary(path)
                # The instances the test controls: exact.
                leak = "Leak%d" % i
                self.assertEqual(got[leak],
                                 [want[leak].count, want[leak].total_size])
                self.assertEqual(got[leak][0], 1000 * (k + 1) * (k + 2) // 2)
                # The rest: the streamer's own objects come and go between
                # the file dump and the walk; a few dozen at most.
                for t in set(got) | set(want):
                    gc_ = got.get(t, [0, 0])[0]
                    wc = want[t].count if t in want else 0
                    self.assertLessEqual(abs(gc_ - wc), max(30, wc // 50),
                                         "%s: store %d, loader %d" % (t, gc_, wc))

    def test_prefork_workers_stream_under_their_own_pids(self):
        p = self.run_python("""
            import json, os, sys
            from meliae import scanner
            st = scanner.stream_to(sys.argv[1], label="prefork")
            st.snapshot(timeout=60)
            kids = []
            for _ in range(4):
                pid = os.fork()
                if pid == 0:
                    try:
                        st.snapshot(timeout=60)
                    finally:
                        os._exit(0)
                kids.append(pid)
            for k in kids:
                os.waitpid(k, 0)
            print(json.dumps([os.getpid()] + kids))
            """, self.sock)
        out, _ = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 0)
        pids = json.loads(out)
        got = sorted(s["pid"] for s in self.snapshots())
        self.assertEqual(got, sorted(pids))

    def test_snapshot_stored_without_values_by_default(self):
        p = self.run_python("""
            import sys
            from meliae import scanner
            secret = "hunter2-" * 3
            with scanner.stream_to(sys.argv[1]) as st:
                print(st.snapshot(timeout=60))
            """, self.sock)
        out, _ = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 0)
        with open(os.path.join(self.store, "data.mdb"), "rb") as f:
            self.assertNotIn(b"hunter2-hunter2-", f.read())


if __name__ == "__main__":
    unittest.main()
