# SPDX-License-Identifier: MIT
"""Queries (docs/protocol.md, "Queries"): meliae-cli asks the daemon, the
daemon runs the report on its store off the event loop and answers one
line.  The answers must be those of `meliae-cli --store` on the same
store; errors map to the CLI's exit codes; `snap` asks a connected
scanner for a snapshot; clients that leave or crowd in do not hurt."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

from daemon_support import (UNDER_ASAN, Client, DaemonTestCase,
                            forget_retained, header, honest_ack, line,
                            plain_env, retained_stored, snapshot,
                            wide_snapshot)
from metrics_support import metrics_port, scrape

CLI = os.environ.get("MELIAE_CLI", "")
SETPRIV = shutil.which("setpriv")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else None
NOBODY = 65534

# CLI exit codes (cli/cli.h).
OK, ERROR, USAGE, NOTFOUND, UNAVAILABLE = 0, 1, 2, 3, 69

BASE = 1 << 40
TYPES = ["dict", "list", "str", "tuple", "int", "Widget"]

try:
    from meliae import scanner
    HAVE_STREAM = hasattr(scanner, "stream_to")
except ImportError:
    HAVE_STREAM = False


def heap(n, base=BASE, grow=0, types=TYPES):
    """n objects of a few types under one module (the root), each holding
    its neighbours; grow more 'list' objects hang off the module."""
    objs = [{"address": base, "type": "module", "size": 72,
             "name": "app", "refs": [base + 1, base + n]}]
    for i in range(1, n):
        t = types[i % len(types)]
        o = {"address": base + i, "type": t, "size": 24 + 8 * (i % 7),
             "refs": [base + (i + 1) % n or base + 1]}
        if t in ("dict", "list", "tuple"):
            o["len"] = 1
        if t == "Widget":
            o["name"] = "w%d" % i
        objs.append(o)
    for k in range(grow):
        objs.append({"address": base + n + k, "type": "list", "size": 88,
                     "len": 1, "refs": [base + n + k + 1] if k + 1 < grow
                     else [base]})
    return objs


def cli(*args, timeout=120, env=None):
    """Runs meliae-cli; returns (exit code, stdout, stderr)."""
    r = subprocess.run([CLI] + list(args), capture_output=True, text=True,
                       timeout=timeout, env=env or dict(os.environ))
    return r.returncode, r.stdout, r.stderr


def raw_query(sock, request, version=1, close_after_send=False, timeout=60):
    """Sends one query line by hand; returns the daemon's reply."""
    c = Client(sock, timeout)
    try:
        c.send(line({"meliae_query": version, "request": request}))
        if close_after_send:
            return None
        return c.reply()
    finally:
        c.close()


@unittest.skipUnless(CLI, "MELIAE_CLI not set (run through meson test)")
class QueryCase(DaemonTestCase):

    def both(self, d, *args):
        """The same command through the daemon and on the store: equal
        exit codes and equal output; returns them."""
        rd = cli("--socket", d.sock, *args)
        rs = cli("--store", d.store, *args)
        self.assertEqual(rd[0], rs[0], "%r: daemon %r, store %r"
                         % (args, rd, rs))
        self.assertEqual(rd[1], rs[1], args)
        self.assertEqual(rd[2], rs[2], args)
        return rd


class TestAnswersMatchTheStore(QueryCase):

    def test_every_command_answers_as_the_store_does(self):
        d = self.daemon()
        hdr = header(label="web", program="/srv/app/server.py")
        c = Client(d.sock)
        for grow in (0, 40, 90):
            c.send(snapshot(objs=heap(500, grow=grow), hdr=hdr))
            self.assertIn("ack", c.reply())
        c.close()
        # A second process.
        other = Client(d.sock)
        other.send(snapshot(objs=heap(50, base=BASE * 3),
                            hdr=header(pid=4242, label="worker",
                                       program="worker")))
        self.assertIn("ack", other.reply())
        other.close()

        addr = str(BASE + 7)
        commands = [
            ["snapshots"],
            ["snapshots", "--process", "web"],
            ["snapshots", "--since", "1h"],
            ["summary", "latest"],
            ["summary", "1", "--top", "3", "--by", "count"],
            ["summary", "latest~1", "--process", "web", "--top", "0"],
            ["growth"],
            ["growth", "--by", "count", "--top", "2"],
            ["growth", "--process", "server.py"],
            ["diff", "1", "3"],
            ["diff", "latest~2", "latest~1", "--process", "web", "--top", "1"],
            ["referrers", "3", addr],
            ["referrers", "2", hex(BASE + 9), "--depth", "2", "--chains", "1"],
            ["show", "1", addr],
            ["show", "3", str(BASE + 500 + 3), "--limit", "1"],
        ]
        for args in commands:
            with self.subTest(args=args):
                rc, out, err = self.both(d, "--json", *args)
                self.assertEqual(rc, OK, err)
                doc = json.loads(out)
                self.assertEqual(doc["schema_version"], 2)
                self.assertEqual(doc["command"], args[0])
                # and the tables made from them
                self.both(d, *args)
        self.assertIn("debug query ", d.log())
        self.assertIn("cmd=diff rc=0", d.log())
        self.stop_clean(d)

    def test_a_big_answer_is_whole_and_does_not_stall_others(self):
        d = self.daemon()
        # 30,000 types: a summary --top 0 of several MB.
        types = ["T%05d_%s" % (i, "x" * 40) for i in range(30000)]
        c = Client(d.sock, timeout=120)
        c.send(snapshot(objs=heap(30001, types=types)))
        self.assertIn("ack", c.reply())
        c.close()
        rc, out, err = self.both(d, "--json", "summary", "latest", "--top",
                                 "0")
        self.assertEqual(rc, OK, err)
        self.assertGreater(len(out), 2 << 20)
        self.assertEqual(len(json.loads(out)["types"]), 30001)

        # Clients that ask for it and do not read: the others are served.
        idle = []
        for _ in range(3):
            s = Client(d.sock)
            s.send(line({"meliae_query": 1, "request": {
                "cmd": "summary", "snap": "latest", "top": 0}}))
            idle.append(s)
        time.sleep(0.5)
        t0 = time.monotonic()
        for _ in range(5):
            rc, out, err = cli("--socket", d.sock, "--json", "snapshots")
            self.assertEqual(rc, OK, err)
        self.assertLess(time.monotonic() - t0, 30)
        # The ones that did not read still get the whole line.
        for s in idle:
            r = s.reply()
            self.assertEqual(len(r["answer"]["types"]), 30001)
            s.close()
        self.stop_clean(d)

    def test_json_answers_are_strict_utf8(self):
        """A lone surrogate in a type name ("\\ud800x", what a str with
        one gives) is U+FFFD in every JSON answer, daemon's and store's
        alike (docs/cli-json.md): strict decoders accept them."""
        d = self.daemon()
        objs = [{"address": BASE, "type": "\ud800x", "size": 40, "refs": []},
                {"address": BASE + 1, "type": "dict", "size": 64, "len": 0,
                 "refs": []}]
        data = snapshot(objs=objs)
        self.assertIn(b"\\ud800x", data)
        c = Client(d.sock)
        c.send(data)
        self.assertIn("ack", c.reply())
        c.close()
        for where in (("--socket", d.sock), ("--store", d.store)):
            r = subprocess.run([CLI] + list(where) + ["--json", "summary",
                                                      "latest"],
                               capture_output=True, timeout=60)
            self.assertEqual(r.returncode, OK, r.stderr)
            doc = json.loads(r.stdout.decode("utf-8", errors="strict"))
            names = sorted(t["type"] for t in doc["types"])
            self.assertEqual(names, ["dict", "\ufffdx"], where)
        q = Client(d.sock)
        q.send(line({"meliae_query": 1, "request": {"cmd": "summary",
                                                     "snap": "latest"}}))
        raw = q.raw_line()
        q.close()
        self.assertIn("answer", json.loads(raw.decode("utf-8", "strict")))
        self.stop_clean(d)

    def test_a_half_closed_client_gets_its_answer(self):
        d = self.daemon()
        honest_ack(d.sock, 20)
        c = Client(d.sock)
        c.send(line({"meliae_query": 1, "request": {"cmd": "snapshots"}}))
        c.s.shutdown(socket.SHUT_WR)
        r = c.reply()
        self.assertEqual(len(r["answer"]["snapshots"]), 1)
        self.assertTrue(c.closed_by_peer())
        c.close()
        self.stop_clean(d)


class TestErrors(QueryCase):

    def test_exit_codes_match_the_store_path(self):
        d = self.daemon()
        honest_ack(d.sock, 20)
        cases = [
            (["summary", "99"], NOTFOUND),
            (["show", "1", "zz"], USAGE),
            (["show", "1", "12345"], NOTFOUND),
            (["diff", "1", "latest~9"], NOTFOUND),
            (["summary", "latest", "--process", "nobody-here"], NOTFOUND),
            (["summary", "1", "--by", "weight"], USAGE),
        ]
        for args, want in cases:
            with self.subTest(args=args):
                rc, out, err = self.both(d, "--json", *args)
                self.assertEqual(rc, want, err)
                self.assertEqual(out, "")
                self.assertTrue(err.startswith("meliae-cli: "), err)
        self.assertIn("info query_failed", d.log())
        self.assertIn("code=notfound", d.log())
        self.assertIn("code=usage", d.log())
        self.stop_clean(d)

    def test_daemon_down_is_69(self):
        sock = os.path.join(self.tmp, "nobody.sock")
        rc, out, err = cli("--socket", sock, "snapshots")
        self.assertEqual(rc, UNAVAILABLE, err)
        self.assertIn("no daemon at", err)
        # A stale socket file: nobody listening.
        s = socket.socket(socket.AF_UNIX)
        s.bind(sock)
        s.close()
        self.assertEqual(cli("--socket", sock, "snapshots")[0], UNAVAILABLE)
        d = self.daemon()
        self.stop_clean(d)
        self.assertEqual(cli("--socket", d.sock, "--json", "growth")[0],
                         UNAVAILABLE)

    def test_protocol_errors_of_the_query_line(self):
        d = self.daemon()
        r = raw_query(d.sock, {"cmd": "snapshots"}, version=2)
        self.assertEqual(r["code"], "usage")
        self.assertIn("version 2", r["error"])
        self.assertIn("version 1", r["error"])
        r = raw_query(d.sock, "snapshots")
        self.assertEqual(r["code"], "usage")
        r = raw_query(d.sock, {"cmd": "rm -rf"})
        self.assertEqual(r["code"], "usage")
        self.assertIn("unknown command", r["error"])
        r = raw_query(d.sock, {"nocmd": 1})
        self.assertEqual(r["code"], "usage")
        # A query line longer than ML_PROTO_MAX_META_LINE.
        c = Client(d.sock)
        try:
            c.send(line({"meliae_query": 1, "request": {
                "cmd": "snapshots", "pad": "x" * (70 << 10)}}))
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = c.reply()
        self.assertEqual(r["code"], "usage")
        self.assertIn("longer than 65536 bytes", r["error"])
        c.close()
        # Not a line at all: 64 KiB without a newline.
        c = Client(d.sock)
        try:
            c.send(b'{"meliae_query": 1, "request": {"cmd": "' + b"x" * (70 << 10))
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.assertEqual(c.reply()["code"], "usage")
        c.close()
        # The answer ends the connection; what follows the line is dropped.
        c = Client(d.sock)
        c.send(line({"meliae_query": 1, "request": {"cmd": "snapshots"}})
               + b"garbage\n" + line(header()))
        self.assertIn("answer", c.reply())
        self.assertTrue(c.closed_by_peer())
        c.close()
        # A stream connection cannot turn into a query later.
        c = Client(d.sock)
        c.send(snapshot(3))
        self.assertIn("ack", c.reply())
        c.send(line({"meliae_query": 1, "request": {"cmd": "snapshots"}}))
        self.assertEqual(c.reply()["code"], "proto")
        c.close()
        self.assertGreater(honest_ack(d.sock, 5), 0)
        self.stop_clean(d)


@unittest.skipUnless(os.geteuid() == 0, "needs root to run clients as "
                     "another uid (setpriv)")
@unittest.skipUnless(SETPRIV, "setpriv (util-linux) not installed")
@unittest.skipUnless(PYTHON, "no /usr/bin/python3 for the unprivileged client")
class TestDenied(QueryCase):

    CLIENT = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
try:
    s.sendall(sys.argv[2].encode())
except OSError:
    pass
buf = b""
while True:
    try:
        c = s.recv(65536)
    except (ConnectionResetError, socket.timeout):
        break
    if not c:
        break
    buf += c
print(json.dumps([json.loads(l) for l in buf.splitlines()]))
"""

    def test_a_query_from_another_uid_is_denied(self):
        d = self.daemon()
        honest_ack(d.sock, 5)
        os.chmod(d.sock, 0o666)     # the daemon's own check remains
        q = line({"meliae_query": 1, "request": {"cmd": "snapshots"}})
        priv = [SETPRIV, "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                "--clear-groups"]
        out = subprocess.run(priv + [PYTHON, "-c", self.CLIENT, d.sock,
                                     q.decode()],
                             capture_output=True, text=True, timeout=60,
                             env=plain_env())
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = json.loads(out.stdout)
        self.assertEqual(len(lines), 1, lines)
        self.assertEqual(lines[0]["code"], "denied")
        self.assertNotIn("answer", lines[0])
        # meliae-cli itself, if nobody may run it from where it was built.
        r = subprocess.run(priv + [CLI, "--socket", d.sock, "--json",
                                   "snapshots"], capture_output=True,
                           text=True, timeout=60)
        if r.returncode not in (126, 127) and "Permission denied" not in \
                r.stderr[:200]:
            self.assertEqual(r.returncode, ERROR, r.stderr)
            self.assertEqual(r.stdout, "")
            # The daemon answers before reading a byte and closes: the
            # CLI may see its send fail (EPIPE) before it reads the line
            # (cli/client.c does not read a reply after a failed send).
            self.assertRegex(r.stderr, "may not connect|Broken pipe|"
                             "Connection reset")
        self.assertIn("warn denied", d.log())
        self.assertNotIn(" query ", d.log())
        self.assertNotIn("query_failed", d.log())
        self.stop_clean(d)


SCANNER = r"""
import os, sys
from meliae import scanner
keep = [{"k%d" % i: [i] * 3} for i in range(2000)]
s = scanner.stream_to(sys.argv[1], label=sys.argv[2], timeout=120)
if sys.argv[3] == "1":
    s.snapshot()        # the daemon learns the label from its header
sys.stdout.write("ready\n")
sys.stdout.flush()
sys.stdin.read()        # until the test closes our stdin
s.close()
"""


@unittest.skipUnless(CLI, "MELIAE_CLI not set (run through meson test)")
@unittest.skipUnless(HAVE_STREAM, "meliae.scanner.stream_to not built")
class TestSnap(QueryCase):

    def scanner(self, sock, label, script=None, first=False):
        """A Python process streaming to sock, with no interval: it takes
        snapshots only when asked (and one at the start with first)."""
        if script is None:
            args = [sys.executable, "-c", SCANNER]
        else:
            with open(script, "w") as f:
                f.write(SCANNER)
            args = [sys.executable, script]
        p = subprocess.Popen(args + [sock, label, "1" if first else "0"],
                             stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True,
                             env=dict(os.environ))
        self.addCleanup(self.end_scanner, p)
        self.assertEqual(p.stdout.readline(), "ready\n")
        return p

    def end_scanner(self, p):
        if p.poll() is None:
            p.stdin.close()
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        p.stdout.close()

    def wait_connected(self, d, n=1):
        deadline = time.monotonic() + 30
        while d.log().count("info connect ") < n:
            self.assertLess(time.monotonic(), deadline, d.log())
            time.sleep(0.05)

    def test_snap_by_label_pid_and_program(self):
        d = self.daemon()
        script = os.path.join(self.tmp, "busy_worker.py")
        p = self.scanner(d.sock, "snaplabel", script)
        self.wait_connected(d)
        # Before any snapshot: the program comes from /proc/PID/cmdline.
        rc, out, err = cli("--socket", d.sock, "snap", "busy_worker.py",
                           "--timeout", "120")
        self.assertEqual(rc, OK, err)
        first = int(out)
        rc, out, err = cli("--socket", d.sock, "snap", "snaplabel",
                           "--timeout", "120")
        self.assertEqual(rc, OK, err)
        second = int(out)
        self.assertGreater(second, first)
        rc, out, err = cli("--socket", d.sock, "--json", "snap", str(p.pid),
                           "--timeout", "120")
        self.assertEqual(rc, OK, err)
        doc = json.loads(out)
        self.assertEqual(doc, {"schema_version": 2, "command": "snap",
                               "snapshot": second + 1, "pid": p.pid})
        rc, out, err = cli("--store", d.store, "--json", "snapshots")
        self.assertEqual(rc, OK, err)
        snaps = {s["id"]: s for s in json.loads(out)["snapshots"]}
        for i in (first, second, second + 1):
            self.assertIn(i, snaps)
            self.assertEqual(snaps[i]["label"], "snaplabel")
            self.assertEqual(snaps[i]["pid"], p.pid)
            self.assertTrue(snaps[i]["trusted"])
            self.assertGreater(snaps[i]["objects"], 5000)
        self.stop_clean(d)

    def test_unknown_process_is_3(self):
        d = self.daemon()
        honest_ack(d.sock, 3)           # its connection is gone by now
        for sel in ("no-such-label", "999999999", "test_daemon"):
            rc, out, err = cli("--socket", d.sock, "snap", sel)
            self.assertEqual(rc, NOTFOUND, err)
            self.assertIn("no connected process matches %s" % sel, err)
        self.stop_clean(d)

    def test_several_snaps_wait_at_once(self):
        d = self.daemon()
        self.scanner(d.sock, "many", first=True)
        self.wait_connected(d)
        results = [None] * 4

        def ask(i):
            results[i] = cli("--socket", d.sock, "--json", "snap", "many",
                             "--timeout", "120", timeout=200)

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(240)
        ids = []
        for rc, out, err in results:
            self.assertEqual(rc, OK, err)
            ids.append(json.loads(out)["snapshot"])
        self.assertEqual(len(set(ids)), 4, ids)
        self.stop_clean(d)

    def raw_scanner(self, d, label):
        """A scanner by hand: connected, silent until told otherwise."""
        c = Client(d.sock, timeout=60)
        # A header and a snapshot first, so the label is known.
        c.send(snapshot(5, hdr=header(label=label)))
        self.assertIn("ack", c.reply())
        return c

    def snap_async(self, d, sel, timeout):
        box = {}

        def run():
            box["r"] = cli("--socket", d.sock, "snap", sel, "--timeout",
                           str(timeout), timeout=timeout + 60)
        t = threading.Thread(target=run)
        t.start()
        return t, box

    def test_scanner_that_leaves_refuses_or_is_silent(self):
        d = self.daemon()
        # Leaves once asked.
        c = self.raw_scanner(d, "leaver")
        t, box = self.snap_async(d, "leaver", 60)
        req = c.reply()
        self.assertEqual(req["request"], "snapshot")
        c.close()
        t.join(90)
        rc, out, err = box["r"]
        self.assertEqual(rc, ERROR, err)
        self.assertIn("disconnected before its snapshot was stored", err)

        # Refuses: its walk fails (an aborted trailer).
        c = self.raw_scanner(d, "refuser")
        t, box = self.snap_async(d, "refuser", 60)
        req = c.reply()
        c.send(line(header(label="refuser", request=req["id"]))
               + line({"end": "aborted", "reason": "out of memory"}))
        self.assertEqual(c.reply()["code"], "aborted")
        t.join(90)
        rc, out, err = box["r"]
        self.assertEqual(rc, ERROR, err)
        self.assertIn("refused", err)
        self.assertIn("out of memory", err)

        # Silent: the time runs out.
        t, box = self.snap_async(d, "refuser", 1)
        self.assertEqual(c.reply()["request"], "snapshot")
        t.join(90)
        rc, out, err = box["r"]
        self.assertEqual(rc, ERROR, err)
        self.assertIn("did not send its snapshot within 1 s", err)

        # A snapshot answering another request does not count; the right
        # one does, even when it comes after the one asked before it.
        t, box = self.snap_async(d, "refuser", 60)
        req = c.reply()
        c.send(snapshot(4, hdr=header(label="refuser", request=req["id"] + 7)))
        self.assertIn("ack", c.reply())
        c.send(snapshot(6, hdr=header(label="refuser", request=req["id"])))
        ack = c.reply()["ack"]
        t.join(90)
        rc, out, err = box["r"]
        self.assertEqual(rc, OK, err)
        self.assertEqual(int(out), ack)
        c.close()
        self.assertIn("warn query_failed", d.log())
        self.stop_clean(d)

    def test_stopping_daemon_answers_waiting_snaps(self):
        d = self.daemon()
        c = self.raw_scanner(d, "sleepy")
        t, box = self.snap_async(d, "sleepy", 60)
        self.assertEqual(c.reply()["request"], "snapshot")
        self.assertEqual(d.stop(), 0)
        t.join(90)
        rc, out, err = box["r"]
        self.assertEqual(rc, ERROR, err)
        self.assertIn("the daemon is stopping", err)
        c.close()
        self.assertNotIn("ERROR: AddressSanitizer", d.log())


class TestRetainedKept(QueryCase):
    """Retained sizes are stored at commit (store/retained.h); a snapshot
    stored without them (an older store) still answers, computed, and the
    daemon's writer then keeps them."""

    def test_commit_stores_them_and_a_query_of_an_old_snapshot_keeps_them(self):
        d = self.daemon()
        c = Client(d.sock, timeout=300)
        c.send(snapshot(objs=heap(20000)))
        self.assertIn("ack", c.reply())
        c.close()
        args = ["top", "--retained", "latest", "--top", "7"]
        first = cli("--socket", d.sock, "--json", *args)
        self.assertEqual(first[0], OK, first[2])
        self.stop_clean(d)
        self.assertTrue(retained_stored(d.store, 1))
        forget_retained(d.store, 1)
        self.assertFalse(retained_stored(d.store, 1))
        # read-only, without them: computed, the same answer
        self.assertEqual(cli("--store", d.store, "--json", *args)[1],
                         first[1])
        d = self.daemon(store=d.store)
        again = cli("--socket", d.sock, "--json", *args)
        self.assertEqual(again[0], OK, again[2])
        self.assertEqual(again[1], first[1])
        d.wait_log("retained_stored", timeout=60)
        self.assertTrue(retained_stored(d.store, 1))
        third = cli("--socket", d.sock, "--json", "dominators", "latest",
                    str(BASE + 7))
        self.assertEqual(third[0], OK, third[2])
        self.assertEqual(third[1], cli("--store", d.store, "--json",
                                       "dominators", "latest",
                                       str(BASE + 7))[1])
        # stored once: the later queries read them
        self.assertEqual(d.log().count(" retained_stored "), 1, d.log())
        self.stop_clean(d)


class TestUnderLoad(QueryCase):

    def big_store(self, d, n=60000):
        c = Client(d.sock, timeout=300)
        for grow in (0, 3000):
            c.send(snapshot(objs=heap(n, grow=grow)))
            self.assertIn("ack", c.reply())
        c.close()

    def test_clients_that_leave_while_their_query_runs(self):
        d = self.daemon()
        self.big_store(d)
        reqs = [{"cmd": "diff", "a": "1", "b": "2", "top": 0},
                {"cmd": "referrers", "snap": "2", "address": str(BASE + 9)},
                {"cmd": "summary", "snap": "latest", "top": 0}]
        for i in range(30):
            raw_query(d.sock, reqs[i % 3], close_after_send=True)
        # And some that leave a moment later, mid-query.
        for i in range(10):
            c = Client(d.sock)
            c.send(line({"meliae_query": 1, "request": reqs[0]}))
            time.sleep(0.01 * (i % 4))
            c.close()
        rc, out, err = self.both(d, "--json", "diff", "1", "2")
        self.assertEqual(rc, OK, err)
        self.assertTrue(d.alive())
        # Both ways of leaving were taken: while the query ran (its answer
        # is dropped), and while it waited for a slot (it never runs).
        d.wait_log("client=gone")
        self.assertIn('query=diff reason="client closed"', d.log())
        self.stop_clean(d)

    def test_stopping_while_queries_run_and_wait(self):
        d = self.daemon(args=["--metrics-listen", "127.0.0.1:0"])
        port = metrics_port(d)
        self.big_store(d)
        q0 = scrape(port).value("meliae_queries_total")
        clients = []
        for _ in range(8):              # 4 run, 4 wait for a slot
            c = Client(d.sock, timeout=120)
            c.send(line({"meliae_query": 1, "request": {
                "cmd": "diff", "a": "1", "b": "2", "top": 0}}))
            clients.append(c)
        # Stop once the daemon has read every query line (not before: a
        # connection it has not read from yet is just closed).
        deadline = time.monotonic() + 60
        while scrape(port).value("meliae_queries_total") < q0 + 8:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.01)
        self.assertEqual(d.stop(), 0, d.log())
        for c in clients:
            r = c.reply()
            self.assertIsNotNone(r, "no reply at all")
            # Answered before the signal, or told why not.
            self.assertTrue("answer" in r or r.get("error") ==
                            "the daemon is stopping", r)
            c.close()
        self.assertIn("the daemon is stopping", d.log())
        self.assertNotIn("ERROR: AddressSanitizer", d.log())
        self.assertNotIn("runtime error:", d.log())

    def test_one_dominator_query_at_a_time_and_lighter_ones_pass(self):
        """top --retained and dominators compute a dominator tree, memory
        of the snapshot's size: the daemon runs one at a time, the others
        wait (logged once each), and a light query asked meanwhile is not
        kept behind them.  Every answer is the store's."""
        d = self.daemon()
        c = Client(d.sock, timeout=300)
        c.send(snapshot(objs=heap(300000 if not UNDER_ASAN else 100000)))
        self.assertIn("ack", c.reply())
        c.close()
        # The commit stored the retained sizes: queries read them at once.
        # As a snapshot from before that, they compute (the daemon then
        # stores them: TestRetainedKept).
        self.stop_clean(d)
        forget_retained(d.store, 1)
        d = self.daemon(store=d.store)
        heavy = [["top", "--retained", "latest", "--top", "5"],
                 ["dominators", "latest", str(BASE + 7)],
                 ["top", "--retained", "latest", "--top", "3"]]
        results, done = {}, {}

        def ask(i):
            results[i] = cli("--socket", d.sock, "--json", *heavy[i],
                             timeout=300)
            done[i] = time.monotonic()

        threads = [threading.Thread(target=ask, args=(i,))
                   for i in range(len(heavy))]
        for t in threads:
            t.start()
        d.wait_log("query_held", timeout=60)
        light = cli("--socket", d.sock, "--json", "summary", "latest")
        light_done = time.monotonic()
        for t in threads:
            t.join(400)
        self.assertEqual(light[0], OK, light[2])
        for i, args in enumerate(heavy):
            self.assertEqual(results[i][0], OK, (args, results[i][2]))
            self.assertEqual(results[i][1],
                             cli("--store", d.store, "--json", *args)[1], args)
        # one or two of the three waited (the second may arrive after the
        # first is done), each logged once
        held = [l.split(" conn=")[1].split()[0]
                for l in d.log().splitlines() if " query_held " in l]
        self.assertIn(len(held), (1, 2), d.log()[-3000:])
        self.assertEqual(len(set(held)), len(held), held)
        self.assertLess(light_done, max(done.values()),
                        "the light query waited for the held ones")
        self.stop_clean(d)

    def test_20_concurrent_queries_while_a_big_snapshot_is_ingested(self):
        d = self.daemon()
        self.big_store(d, 20000)
        big = {}
        data = snapshot(objs=heap(400000 if not UNDER_ASAN else 150000,
                                  base=BASE * 5))

        def ingest():
            c = Client(d.sock, timeout=600)
            c.send(data)
            big["reply"] = c.reply()
            c.close()

        ti = threading.Thread(target=ingest)
        ti.start()
        time.sleep(0.3)
        cmds = [["snapshots"], ["summary", "latest"], ["diff", "1", "2"],
                ["growth"], ["show", "1", str(BASE + 7)],
                ["referrers", "2", str(BASE + 9)]]
        results = [None] * 20

        def ask(i):
            results[i] = cli("--socket", d.sock, "--json", *cmds[i % len(cmds)],
                             timeout=300)

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(400)
        for i, (rc, out, err) in enumerate(results):
            self.assertEqual(rc, OK, (cmds[i % len(cmds)], err))
            self.assertEqual(json.loads(out)["command"],
                             cmds[i % len(cmds)][0])
        ti.join(600)
        self.assertIn("ack", big["reply"])
        # The same answers as the store gives, now that it is quiet.
        for args in cmds:
            self.assertEqual(self.both(d, "--json", *args)[0], OK)
        self.assertTrue(d.alive())
        self.stop_clean(d)



class TestQueryMemory(QueryCase):
    """Issue 22: wide answers (a series per type per snapshot) neither
    stay in the daemon after they are sent nor grow without bound: one
    over the daemon's cap (16 MiB, docs/protocol.md) is refused before
    it is built.  Figures: bench/bench_query_rss.py, bench/RESULTS.md."""

    def stream_wide(self, d, nsnap, ntypes):
        c = Client(d.sock, timeout=300)
        for k in range(nsnap):
            c.send(wide_snapshot(ntypes, k, hdr=header(label="wide")))
            self.assertIn("ack", c.reply())
        c.close()

    def test_wide_queries_leave_nothing_behind_and_an_answer_over_the_cap_is_refused(self):
        d = self.daemon()
        # 40,000 types x 30 snapshots: a growth --top 0 of ~20 MiB.
        self.stream_wide(d, 30, 40000)
        for _ in range(3):
            rc, out, err = cli("--socket", d.sock, "--json", "growth",
                               "--top", "0", timeout=300)
            self.assertEqual(rc, ERROR, err)
            self.assertEqual(out, "")
            self.assertIn("over the daemon's cap of 16 MiB", err)
            rc, out, err = cli("--socket", d.sock, "--json", "growth",
                               "--top", "15000", timeout=300)
            self.assertEqual(rc, OK, err)
            self.assertEqual(len(json.loads(out)["processes"][0]["types"]),
                             15000)
            rc, out, err = cli("--socket", d.sock, "--json", "report",
                               timeout=300)
            self.assertEqual(rc, OK, err)
            if not UNDER_ASAN:
                self.assertLessEqual(d.rss_anon_kib(), 64 << 10)
        # The store itself is not capped: the same question answered there.
        rc, out, err = cli("--store", d.store, "--json", "growth", "--top",
                           "0", timeout=300)
        self.assertEqual(rc, OK, err)
        self.assertEqual(len(json.loads(out)["processes"][0]["types"]), 40000)
        self.stop_clean(d)

if __name__ == "__main__":
    unittest.main()
