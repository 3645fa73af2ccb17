# SPDX-License-Identifier: MIT
"""Helpers for the meliae-monitord tests: start the daemon, speak the
streaming protocol (docs/protocol.md) by hand over raw sockets, read the
store back with tests/tools/store_tool.

Stdlib only.  The daemon's executable comes from $MELIAE_MONITORD and the
store tool from $MELIAE_STORE_TOOL (set by tests/daemon/meson.build).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

MONITORD = os.environ.get("MELIAE_MONITORD", "")
STORE_TOOL = os.environ.get("MELIAE_STORE_TOOL", "")

VERSION = 1
# ML_PROTO_MAX_HEAD: the bytes of an object line before its refs.
MAX_HEAD = 8 << 20
# An ASan build (tests/meson.build preloads the runtime): freed memory sits
# in ASan's quarantine, so RSS figures mean nothing there.
UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")


def daemon_env(extra=None):
    """The environment for a daemon: under ASan its leaks are reported."""
    env = dict(os.environ)
    asan = env.get("MELIAE_DAEMON_ASAN_OPTIONS")
    if asan and "LD_PRELOAD" in env:        # an ASan build (tests/meson.build)
        env["ASAN_OPTIONS"] = asan
    env.pop("MELIAE_SOCKET", None)
    if extra:
        env.update(extra)
    return env


def plain_env():
    """For helper programs (setpriv, python clients): no sanitizer preload."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    return env


class Daemon:
    """One meliae-monitord in the foreground, logging to a file."""

    def __init__(self, tmp, store=None, sock=None, args=(), prefix=(),
                 env=None, log_level="debug", pass_fds=()):
        self.tmp = tmp
        self.store = store or os.path.join(tmp, "store")
        self.sock = sock or os.path.join(tmp, "d.sock")
        self.args = list(args)
        self.prefix = list(prefix)
        self.env = env
        self.log_level = log_level
        self.pass_fds = tuple(pass_fds)
        self.proc = None
        self.logpath = None
        self.nstarts = 0

    def start(self, wait=True):
        self.nstarts += 1
        self.logpath = os.path.join(self.tmp, "daemon-%d.log" % self.nstarts)
        cmd = self.prefix + [MONITORD, "--store", self.store,
                             "--socket", self.sock, "--foreground",
                             "--log-level", self.log_level] + self.args
        with open(self.logpath, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log,
                                         env=daemon_env(self.env),
                                         pass_fds=self.pass_fds)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("daemon exited %r while starting:\n%s"
                                     % (self.proc.returncode, self.log()))
            if "info ready" in self.log():
                return
            time.sleep(0.02)
        raise AssertionError("daemon not ready after %ss:\n%s"
                             % (timeout, self.log()))

    def log(self):
        try:
            with open(self.logpath, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_log(self, text, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            time.sleep(0.02)
        raise AssertionError("%r not in the log after %ss:\n%s"
                             % (text, timeout, self.log()))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=60):
        """Signals the daemon and returns its exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)   # if a test stopped it
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("daemon did not stop in %ss:\n%s"
                                 % (timeout, self.log()))

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def rss_anon_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
        return -1

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))


def traversable_tmp():
    """A temporary directory other uids can pass through (the permission
    tests run clients as nobody): $TMPDIR may sit under a 0700 directory,
    as a CI checkout's may."""
    for base in (tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev/shm"):
        path, ok = os.path.realpath(base), True
        while ok:
            try:
                ok = os.stat(path).st_mode & 0o001 != 0
            except OSError:
                ok = False
            if path == "/":
                break
            path = os.path.dirname(path)
        if ok and os.access(base, os.W_OK):
            return base
    return None


class DaemonTestCase(unittest.TestCase):
    """Gives each test a private directory; prints the daemon's log when a
    test fails, and checks that the daemon did not die under it."""

    daemon_args = ()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mld-", dir=traversable_tmp())
        os.chmod(self.tmp, 0o711)       # other uids may traverse (perms)
        self.daemons = []

    def tearDown(self):
        failed = False
        outcome = getattr(self, "_outcome", None)
        if outcome is not None:
            res = getattr(outcome, "result", None)
            errs = getattr(res, "errors", []) + getattr(res, "failures", [])
            failed = any(t is self for t, _ in errs)
            failed = failed or not getattr(outcome, "success", True)
        for d in self.daemons:
            if d.alive():
                try:
                    d.stop(timeout=30)
                except AssertionError:
                    pass
            if failed:
                sys.stderr.write("---- daemon log %s ----\n%s\n"
                                 % (d.logpath, d.log()[-20000:]))
        shutil.rmtree(self.tmp, ignore_errors=True)

    def daemon(self, start=True, **kw):
        kw.setdefault("args", self.daemon_args)
        d = Daemon(self.tmp, **kw)
        self.daemons.append(d)
        if start:
            d.start()
        return d

    def stop_clean(self, d):
        rc = d.stop()
        self.assertEqual(rc, 0, "daemon exit status %r:\n%s" % (rc, d.log()))
        self.assertNotIn("ERROR: AddressSanitizer", d.log())
        self.assertNotIn("runtime error:", d.log())


# ---- the protocol, by hand ----

def header(**kw):
    h = {"meliae_stream": VERSION, "pid": os.getpid(),
         "start_time": 1700000000.5, "hostname": socket.gethostname(),
         "program": "test_daemon", "python": "3.x", "label": None,
         "values": "none", "mode": "all", "request": 0, "time": time.time()}
    h.update(kw)
    for k in [k for k, v in h.items() if v is _DROP]:
        del h[k]
    return h


_DROP = object()
DROP = _DROP


def line(obj):
    return (json.dumps(obj) + "\n").encode()


def objects(n, base=1 << 40, nrefs=2, size=56, type_="dict"):
    """n object dicts with distinct addresses, refs among themselves."""
    out = []
    for i in range(n):
        refs = [base + (i + k + 1) % n for k in range(min(nrefs, n))]
        out.append({"address": base + i, "type": type_, "size": size,
                    "len": len(refs), "refs": refs})
    return out


def snapshot(n=10, base=1 << 40, hdr=None, trailer=None, objs=None):
    """The bytes of one complete snapshot of n objects."""
    objs = objects(n, base) if objs is None else objs
    parts = [line(hdr if hdr is not None else header())]
    parts += [line(o) for o in objs]
    t = {"end": "complete", "objects": len(objs),
         "bytes": sum(o["size"] for o in objs)}
    if trailer:
        t.update(trailer)
    parts.append(line(t))
    return b"".join(parts)


def wide_snapshot(ntypes, k=0, hdr=None, base=1 << 40):
    """One snapshot's bytes: ntypes objects, each of a type of its own
    ("Type_000000"...), sizes drifting with k so that every type has a
    series of its own over snapshots k = 0, 1, ...: the widest growth
    answer for its size (issue 22)."""
    parts = [json.dumps(hdr if hdr is not None else header())]
    total = 0
    for i in range(ntypes):
        size = 24 + (i + k) % 97
        total += size
        parts.append('{"address": %d, "type": "Type_%06d", "size": %d, '
                     '"refs": [%d]}' % (base + i, i, size,
                                        base + (i + 1) % ntypes))
    parts.append(json.dumps({"end": "complete", "objects": ntypes,
                             "bytes": total}))
    return ("\n".join(parts) + "\n").encode()


class Client:
    """A raw protocol client."""

    def __init__(self, path, timeout=30):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def raw_line(self):
        """The next line from the daemon, or None at EOF/reset."""
        while b"\n" not in self.buf:
            try:
                chunk = self.s.recv(65536)
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            self.buf += chunk
        ln, self.buf = self.buf.split(b"\n", 1)
        return ln

    def reply(self):
        """The next daemon line that is not a keepalive, as a dict."""
        while True:
            ln = self.raw_line()
            if ln is None:
                return None
            obj = json.loads(ln)
            if "keepalive" not in obj:
                return obj

    def closed_by_peer(self, timeout=10):
        """True once the daemon has closed the connection."""
        self.s.settimeout(timeout)
        try:
            while True:
                chunk = self.s.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.s.close()


def send_snapshot(path, n=10, base=1 << 40, timeout=60, **kw):
    """Connects, sends one snapshot, returns the daemon's reply."""
    c = Client(path, timeout)
    try:
        c.send(snapshot(n, base, **kw))
        return c.reply()
    finally:
        c.close()


def honest_ack(path, n=100, timeout=60):
    """A snapshot from a well-behaved client, retried while the daemon is
    out of descriptors; returns the ack id."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            r = send_snapshot(path, n, timeout=max(1, deadline - time.monotonic()))
            if r is not None and "ack" in r:
                return r["ack"]
            last = r
        except OSError as e:
            last = e
        time.sleep(0.05)
    raise AssertionError("no ack within %ss; last: %r" % (timeout, last))


# ---- the store, read back ----

def store_list(store):
    out = subprocess.run([STORE_TOOL, "list", store], capture_output=True,
                         text=True, env=plain_env(), timeout=120)
    if out.returncode != 0:
        raise AssertionError("store_tool list: %s" % out.stderr)
    return [json.loads(ln) for ln in out.stdout.splitlines() if ln.strip()]


def forget_retained(store, snap):
    """Deletes snapshot snap's stored retained sizes (store/retained.h):
    as a snapshot stored before they were.  The store must have no
    writer."""
    out = subprocess.run([STORE_TOOL, "forget-retained", store, str(snap)],
                         capture_output=True, text=True, env=plain_env(),
                         timeout=120)
    if out.returncode != 0:
        raise AssertionError("store_tool forget-retained: %s" % out.stderr)


def retained_stored(store, snap):
    """Whether snapshot snap has its retained sizes stored."""
    out = subprocess.run([STORE_TOOL, "retained", store, str(snap)],
                         capture_output=True, text=True, env=plain_env(),
                         timeout=120)
    if out.returncode != 0:
        raise AssertionError("store_tool retained: %s" % out.stderr)
    return out.stdout.strip() == "stored"


def store_pending(store):
    out = subprocess.run([STORE_TOOL, "pending", store], capture_output=True,
                         text=True, env=plain_env(), timeout=120)
    if out.returncode != 0:
        raise AssertionError("store_tool pending: %s" % out.stderr)
    return int(out.stdout.strip())
