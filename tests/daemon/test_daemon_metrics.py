# SPDX-License-Identifier: MIT
"""Prometheus metrics: the textfile (--metrics-textfile) after streamed
snapshots, its atomic rewrite, and the HTTP endpoint (--metrics-listen):
content, status codes, misbehaving clients, the loopback rule.  Every
exposition read is parsed strictly (metrics_support.parse_exposition)."""

import os
import shutil
import socket
import subprocess
import threading
import time
import unittest

from daemon_support import (Client, DaemonTestCase, header, line, objects,
                            plain_env, snapshot)
from metrics_support import (CONTENT_TYPE, Exposition, free_port, http_get,
                             http_raw, metrics_port, read_textfile, scrape,
                             typed_snapshot, wait_textfile)

CLI = os.environ.get("MELIAE_CLI", "")


def snapshots_are(n):
    return lambda e: e.value("meliae_ingest_snapshots_total") == n


class MetricsCase(DaemonTestCase):

    def textfile_daemon(self, extra=(), **kw):
        self.prom = os.path.join(self.tmp, "meliae.prom")
        return self.daemon(args=["--metrics-textfile", self.prom]
                           + list(extra), **kw)

    def http_daemon(self, extra=(), textfile=False):
        args = ["--metrics-listen", "127.0.0.1:0"] + list(extra)
        if textfile:
            self.prom = os.path.join(self.tmp, "meliae.prom")
            args += ["--metrics-textfile", self.prom]
        d = self.daemon(args=args)
        return d, metrics_port(d)


class TestTextfile(MetricsCase):

    def test_textfile_is_there_from_the_start(self):
        d = self.textfile_daemon()
        e = Exposition(read_textfile(self.prom))
        self.assertEqual(e.value("meliae_ingest_snapshots_total"), 0)
        for r in ("proto", "limit", "version", "store", "aborted",
                  "disconnect", "idle", "denied"):
            self.assertEqual(e.value("meliae_ingest_errors_total", reason=r),
                             0)
        self.assertGreater(e.value("meliae_store_size_bytes"), 0)
        self.assertEqual(e.families["meliae_ingest_snapshots_total"]["type"],
                         "counter")
        self.assertEqual(e.families["meliae_connections"]["type"], "gauge")
        self.assertNotIn("meliae_process_objects", e.families)
        self.assertEqual(os.stat(self.prom).st_mode & 0o777, 0o644)
        self.stop_clean(d)
        self.assertTrue(os.path.exists(self.prom), "left in place at exit")
        self.assertEqual([f for f in os.listdir(self.tmp)
                          if f.endswith(".tmp")], [])

    def test_a_leaking_type_rises_across_snapshots(self):
        d = self.textfile_daemon()
        c = Client(d.sock)
        hdr = header(label="web", program="/srv/app.py")
        acks, leak = [], []
        for i in range(1, 4):
            c.send(typed_snapshot([("Leak", 10 * i, 64), ("dict", 5, 232),
                                   ("str", 7, 50)], hdr=hdr))
            r = c.reply()
            acks.append(r["ack"])
            e = wait_textfile(self.prom, snapshots_are(i))
            who = dict(pid=str(os.getpid()), program="/srv/app.py",
                       label="web")
            leak.append(e.value("meliae_process_type_bytes", type="Leak",
                                **who))
            self.assertEqual(e.value("meliae_process_type_objects",
                                     type="Leak", **who), 10 * i)
            self.assertEqual(e.value("meliae_process_objects", **who),
                             10 * i + 12)
            self.assertEqual(e.value("meliae_process_bytes", **who),
                             640 * i + 5 * 232 + 350)
            self.assertEqual(e.value("meliae_process_snapshot_id", **who),
                             r["ack"])
            self.assertEqual(e.value("meliae_process_connected", **who), 1)
            self.assertAlmostEqual(
                e.value("meliae_process_snapshot_timestamp_seconds", **who),
                time.time(), delta=30)
            self.assertEqual(e.value("meliae_process_type_bytes",
                                     type="other", **who), 0)
            self.assertEqual(e.value("meliae_ingest_objects_total"),
                             sum(10 * k + 12 for k in range(1, i + 1)))
        self.assertEqual(leak, [640, 1280, 1920])
        # One process, one set of series, whatever the number of snapshots.
        self.assertEqual(len(e.samples("meliae_process_objects")), 1)
        c.close()
        e = wait_textfile(self.prom, lambda e: e.value(
            "meliae_process_connected", label="web") == 0)
        self.assertEqual(e.value("meliae_process_type_bytes", type="Leak",
                                 label="web"), 1920)
        self.stop_clean(d)

    def test_a_gone_process_series_go_after_metrics_keep(self):
        d = self.textfile_daemon(extra=["--metrics-keep", "3s"])
        stay, gone = Client(d.sock), Client(d.sock)
        for c, label in ((stay, "stays"), (gone, "goes")):
            c.send(typed_snapshot([("Leak", 4, 64)], hdr=header(label=label)))
            self.assertIn("ack", c.reply())
        wait_textfile(self.prom, snapshots_are(2))
        gone.close()
        t0 = time.monotonic()
        e = wait_textfile(self.prom, lambda e: e.value(
            "meliae_process_connected", label="goes") == 0)
        e = wait_textfile(self.prom, lambda e: not e.samples(
            "meliae_process_objects", label="goes"), timeout=30)
        waited = time.monotonic() - t0
        # Kept for --metrics-keep (the daemon looks once a second), then
        # every series of that process goes, and only those.
        self.assertGreaterEqual(waited, 2.0)
        for fam in ("meliae_process_type_bytes", "meliae_process_connected",
                    "meliae_process_snapshot_id"):
            self.assertEqual(e.samples(fam, label="goes"), [], fam)
        self.assertEqual(e.value("meliae_process_connected", label="stays"),
                         1)
        self.assertEqual(e.value("meliae_process_type_bytes", type="Leak",
                                 label="stays"), 256)
        stay.close()
        self.stop_clean(d)

    def test_a_link_planted_at_the_old_temporary_name_is_left_alone(self):
        """The temporary file is a new one (O_EXCL, random name): a hard
        link to someone's file planted at the name the daemon used to
        open (.NAME.PID.tmp, with O_TRUNC) is neither truncated nor
        written, and the textfile still follows the snapshots."""
        d = self.textfile_daemon()
        wait_textfile(self.prom, snapshots_are(0))
        victim = os.path.join(self.tmp, "victim")
        with open(victim, "w") as f:
            f.write("precious\n")
        planted = os.path.join(self.tmp, ".meliae.prom.%d.tmp" % d.proc.pid)
        os.link(victim, planted)
        c = Client(d.sock)
        c.send(snapshot(5))
        self.assertIn("ack", c.reply())
        c.close()
        wait_textfile(self.prom, snapshots_are(1))
        with open(victim) as f:
            self.assertEqual(f.read(), "precious\n")
        self.assertEqual(os.stat(victim).st_nlink, 2)
        leftovers = [n for n in os.listdir(self.tmp)
                     if n.startswith(".meliae.prom.") and n != os.path.basename(planted)]
        self.assertEqual(leftovers, [])
        self.stop_clean(d)

    def test_top_50_types_and_other(self):
        d = self.textfile_daemon()
        # 60 types of distinct sizes: type T59 has the most bytes.  One is
        # literally named "other": it must not make a second series.
        types = [("T%02d" % k, 1, 100 + k) for k in range(60)]
        types.append(("other", 1, 1000))
        c = Client(d.sock)
        c.send(typed_snapshot(types, hdr=header(label="many")))
        self.assertIn("ack", c.reply())
        c.close()
        e = wait_textfile(self.prom, snapshots_are(1))
        rows = {l["type"]: v for l, v in
                e.samples("meliae_process_type_bytes", label="many")}
        self.assertEqual(len(rows), 51)
        self.assertIn("other", rows)
        kept = sorted(k for k in rows if k != "other")
        # "other" (1000 bytes) is the biggest, but goes to type="other"
        self.assertEqual(kept, ["T%02d" % k for k in range(10, 60)])
        self.assertEqual(rows["other"], 1000 + sum(100 + k
                                                   for k in range(10)))
        self.assertEqual(sum(rows.values()),
                         e.value("meliae_process_bytes", label="many"))
        counts = {l["type"]: v for l, v in
                  e.samples("meliae_process_type_objects", label="many")}
        self.assertEqual(counts["other"], 11)
        self.assertEqual(sum(counts.values()), 61)
        self.stop_clean(d)

    def test_nasty_labels_are_escaped(self):
        d = self.textfile_daemon()
        label = 'a\\b"c\nd}e,f="g'
        program = '/opt/"x"/y\\z\n'
        tname = 'Weird"Type\\\n{x="1"}'
        c = Client(d.sock)
        c.send(typed_snapshot([(tname, 3, 40), ("é€😀", 2, 30)],
                              hdr=header(label=label, program=program)))
        self.assertIn("ack", c.reply())
        c.close()
        e = wait_textfile(self.prom, snapshots_are(1))
        self.assertEqual(e.value("meliae_process_type_bytes", type=tname,
                                 label=label, program=program), 120)
        self.assertEqual(e.value("meliae_process_type_objects", type="é€😀",
                                 label=label), 2)
        raw = e.text
        self.assertIn('label="a\\\\b\\"c\\nd}e,f=\\"g"', raw)
        self.assertNotIn("\nd}e", raw)              # no raw newline in it
        self.stop_clean(d)

    def test_rewrite_is_atomic(self):
        """A reader polling the file while snapshots stream never sees a
        part of one: every read parses, and has all the families its
        snapshot count promises."""
        d = self.textfile_daemon()
        stop = threading.Event()
        seen, bad, reads = set(), [], [0]

        def reader():
            while not stop.is_set():
                try:
                    text = read_textfile(self.prom)
                except FileNotFoundError:
                    bad.append("file missing")
                    continue
                reads[0] += 1
                try:
                    e = Exposition(text)
                    n = e.value("meliae_ingest_snapshots_total")
                    seen.add(n)
                    if n > 0:
                        for f in ("meliae_process_objects",
                                  "meliae_process_connected",
                                  "meliae_process_type_bytes"):
                            self.assertTrue(e.samples(f, label="atomic"), f)
                        self.assertEqual(e.value(
                            "meliae_process_type_bytes", type="other",
                            label="atomic"), 0)
                    self.assertEqual(e.value("meliae_queries_total"), 0)
                except (ValueError, AssertionError) as ex:
                    bad.append("%s: %r" % (ex, text[-200:]))

        t = threading.Thread(target=reader)
        t.start()
        try:
            c = Client(d.sock)
            for i in range(40):
                c.send(typed_snapshot([("Leak", 50 + 20 * i, 64),
                                       ("dict", 30, 232)],
                                      hdr=header(label="atomic")))
                self.assertIn("ack", c.reply())
            c.close()
            wait_textfile(self.prom, snapshots_are(40))
            time.sleep(0.1)
        finally:
            stop.set()
            t.join()
        self.assertEqual(bad, [])
        self.assertGreater(reads[0], 40)
        self.assertGreater(len(seen), 5, "intermediate versions were read")
        self.assertEqual([f for f in os.listdir(self.tmp)
                          if f.endswith(".tmp")], [])
        self.stop_clean(d)

    def test_unwritable_directory_is_a_startup_error(self):
        d = self.daemon(start=False,
                        args=["--metrics-textfile",
                              os.path.join(self.tmp, "no", "such", "m.prom")])
        d.start(wait=False)
        self.assertEqual(d.proc.wait(30), 1)
        self.assertIn("--metrics-textfile", d.log())


class TestCounters(MetricsCase):

    def test_errors_queries_bytes_and_connections(self):
        d, port = self.http_daemon()
        sent = snapshot(20)
        c = Client(d.sock)
        c.send(sent)
        self.assertIn("ack", c.reply())
        c.close()

        c = Client(d.sock)                      # version
        c.send(line(header(meliae_stream=99)))
        self.assertEqual(c.reply()["code"], "version")
        c.close()
        c = Client(d.sock)                      # proto
        c.send(line(header()) + b"this is not json\n")
        self.assertEqual(c.reply()["code"], "proto")
        c.close()
        c = Client(d.sock)                      # aborted: stays open
        c.send(line(header()) + line({"end": "aborted", "reason": "oom"}))
        self.assertEqual(c.reply()["code"], "aborted")
        c.close()
        c = Client(d.sock)                      # limit: header too long
        c.send(b'{"pad": "' + b"x" * (70 << 10) + b'"}\n')
        self.assertEqual(c.reply()["code"], "limit")
        c.close()
        c = Client(d.sock)                      # disconnect mid-snapshot
        c.send(line(header()) + b"".join(line(o) for o in objects(5)))
        d.wait_log("snapshot_begin")
        time.sleep(0.2)
        c.close()
        d.wait_log("snapshot_discarded")
        if CLI:
            r = subprocess.run([CLI, "--socket", d.sock, "--json",
                                "snapshots"], capture_output=True,
                               timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)

        e = scrape(port)
        want = {"proto": 1, "limit": 1, "version": 1, "store": 0,
                "aborted": 1, "disconnect": 1, "idle": 0, "denied": 0}
        got = {l["reason"]: v for l, v in
               e.samples("meliae_ingest_errors_total")}
        self.assertEqual(got, want)
        self.assertEqual(e.value("meliae_ingest_snapshots_total"), 1)
        self.assertEqual(e.value("meliae_ingest_objects_total"), 20)
        self.assertGreaterEqual(e.value("meliae_ingest_bytes_received_total"),
                                len(sent))
        self.assertEqual(e.value("meliae_queries_total"), 1 if CLI else 0)

        idle = [Client(d.sock) for _ in range(3)]
        deadline = time.monotonic() + 10
        while scrape(port).value("meliae_connections") != 3:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.02)
        for c in idle:
            c.close()
        while scrape(port).value("meliae_connections") != 0:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.02)
        self.stop_clean(d)


    @unittest.skipUnless(os.geteuid() == 0 and shutil.which("setpriv")
                         and os.path.exists("/usr/bin/python3"),
                         "needs root, setpriv and /usr/bin/python3 to "
                         "connect as another uid")
    def test_denied_peers_are_counted(self):
        d, port = self.http_daemon()
        os.chmod(d.sock, 0o666)         # the daemon's own check remains
        client = ("import socket, sys; s = socket.socket(socket.AF_UNIX); "
                  "s.settimeout(10); s.connect(sys.argv[1]); "
                  "print(s.recv(1000).decode())")
        for _ in range(2):
            r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534",
                                "--clear-groups", "/usr/bin/python3", "-c",
                                client, d.sock], capture_output=True,
                               text=True, env=plain_env(), timeout=30)
            self.assertIn('"denied"', r.stdout, r.stderr)
        e = scrape(port)
        self.assertEqual(e.value("meliae_ingest_errors_total",
                                 reason="denied"), 2)
        self.assertEqual(e.value("meliae_connections"), 0)
        self.stop_clean(d)


class TestHttp(MetricsCase):

    def test_get_metrics_is_the_textfile(self):
        d, port = self.http_daemon(textfile=True)
        c = Client(d.sock)
        c.send(typed_snapshot([("Leak", 10, 64)], hdr=header(label="same")))
        self.assertIn("ack", c.reply())
        c.close()
        wait_textfile(self.prom, lambda e: e.value(
            "meliae_process_connected", label="same") == 0)
        time.sleep(0.2)                 # the last rewrite is on disk
        e = scrape(port)
        self.assertEqual(e.text, read_textfile(self.prom))
        self.assertEqual(e.value("meliae_process_type_bytes", type="Leak",
                                 label="same"), 640)
        self.stop_clean(d)

    def test_status_codes(self):
        d, port = self.http_daemon()
        status, h, body = http_get(port, version="HTTP/1.0")
        self.assertEqual(status, 200)
        self.assertEqual(h["content-type"], CONTENT_TYPE)
        self.assertEqual(int(h["content-length"]), len(body))
        Exposition(body.decode())
        self.assertEqual(http_get(port, "/metrics?x=1")[0], 200)
        status, h, body = http_get(port, method="HEAD")
        self.assertEqual((status, body), (200, b""))
        self.assertGreater(int(h["content-length"]), 100)
        self.assertEqual(http_get(port, "/")[0], 404)
        self.assertEqual(http_get(port, "/metricsx")[0], 404)
        status, h, _ = http_get(port, method="POST")
        self.assertEqual(status, 405)
        self.assertEqual(h["allow"], "GET, HEAD")
        self.assertEqual(http_get(port, method="DELETE", path="/x")[0], 405)
        self.assertEqual(http_get(port, version="HTTP/2.0")[0], 505)
        self.assertEqual(http_raw(port, b"garbage\r\n\r\n")[0], 400)
        self.assertEqual(http_raw(port, b"\x00\x01\x02 / HTTP/1.1\n\n")[0],
                         400)
        # A bare "\n" ends lines too (netcat users).
        self.assertEqual(http_raw(port, b"GET /metrics HTTP/1.0\n\n")[0], 200)
        self.stop_clean(d)

    def test_slow_and_garbage_clients_do_not_block_others(self):
        d, port = self.http_daemon()
        slow = []
        for _ in range(5):                      # a head that never ends
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /metr")
            slow.append(s)
        silent = socket.create_connection(("127.0.0.1", port))
        t0 = time.monotonic()
        self.assertEqual(http_get(port)[0], 200)
        self.assertLess(time.monotonic() - t0, 2)
        # 9 KiB without an end of head: 431, and closed.
        status, _, _ = http_raw(port, b"A" * (9 << 10))
        self.assertEqual(status, 431)
        self.assertEqual(http_get(port)[0], 200)
        # The stalled ones are cut after the head timeout (5 s).
        silent.settimeout(10)
        t0 = time.monotonic()
        self.assertEqual(silent.recv(100), b"")
        self.assertLess(time.monotonic() - t0, 8)
        for s in slow:
            s.settimeout(10)
            try:
                self.assertEqual(s.recv(100), b"")
            except ConnectionResetError:
                pass
            s.close()
        silent.close()
        self.assertEqual(http_get(port)[0], 200)
        self.assertTrue(d.alive())
        self.stop_clean(d)

    def test_connections_beyond_16_get_503(self):
        d, port = self.http_daemon()
        held = [socket.create_connection(("127.0.0.1", port))
                for _ in range(16)]
        time.sleep(0.2)                         # all accepted
        status, h, _ = http_get(port)
        self.assertEqual(status, 503)
        for s in held:
            s.close()
        deadline = time.monotonic() + 10
        while http_get(port)[0] != 200:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        self.stop_clean(d)

    def test_a_client_that_does_not_read_does_not_block_others(self):
        """A big answer to a client that never reads it does not keep the
        daemon from others (the write is queued in libuv, bounded by a
        30 s deadline)."""
        d, port = self.http_daemon()
        c = Client(d.sock)
        for i in range(20):                     # a few hundred KiB of text
            c.send(typed_snapshot([("T%02d" % k, 1, 100 + k)
                                   for k in range(60)],
                                  hdr=header(label="p%02d" % i)))
            self.assertIn("ack", c.reply())
        c.close()
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
        t0 = time.monotonic()
        self.assertEqual(http_get(port)[0], 200)
        self.assertLess(time.monotonic() - t0, 2)
        s.close()
        self.stop_clean(d)

    def test_stops_with_metrics_connections_open(self):
        d, port = self.http_daemon(textfile=True)
        stalled = socket.create_connection(("127.0.0.1", port))
        stalled.sendall(b"GET /metrics HTTP/1.1\r\n")
        unread = socket.create_connection(("127.0.0.1", port))
        unread.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
        time.sleep(0.2)
        t0 = time.monotonic()
        self.stop_clean(d)
        self.assertLess(time.monotonic() - t0, 5)
        stalled.close()
        unread.close()

    def test_loopback_only_unless_asked(self):
        for host in ("0.0.0.0:0", "[::]:0", "10.1.2.3:9464"):
            d = self.daemon(start=False,
                            args=["--metrics-listen", host])
            d.start(wait=False)
            self.assertEqual(d.proc.wait(30), 2, host)
            self.assertIn("--metrics-listen-any", d.log())
        for bad in ("localhost:9464", "127.0.0.1", "127.0.0.1:70000",
                    "[::1:9464", "::1:9464"):
            d = self.daemon(start=False, args=["--metrics-listen", bad])
            d.start(wait=False)
            self.assertEqual(d.proc.wait(30), 2, bad)
        d = self.daemon(start=False, args=["--metrics-listen-any"])
        d.start(wait=False)
        self.assertEqual(d.proc.wait(30), 2)

        d = self.daemon(args=["--metrics-listen", "0.0.0.0:0",
                              "--metrics-listen-any"])
        port = metrics_port(d)
        self.assertEqual(http_get(port)[0], 200)
        self.stop_clean(d)

    def test_ipv6_loopback(self):
        try:
            s = socket.socket(socket.AF_INET6)
            s.bind(("::1", 0))
            s.close()
        except OSError:
            self.skipTest("no IPv6 loopback here")
        d = self.daemon(args=["--metrics-listen", "[::1]:0"])
        port = metrics_port(d)
        self.assertIn("address=[::1]:%d" % port, d.log())
        self.assertEqual(http_get(port, host="::1")[0], 200)
        self.stop_clean(d)

    def test_port_taken_is_a_startup_error(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        try:
            d = self.daemon(start=False, args=[
                "--metrics-listen", "127.0.0.1:%d" % s.getsockname()[1]])
            d.start(wait=False)
            self.assertEqual(d.proc.wait(30), 1)
            self.assertIn("Address already in use", d.log())
        finally:
            s.close()
        self.assertNotEqual(free_port(), 0)


if __name__ == "__main__":
    unittest.main()
