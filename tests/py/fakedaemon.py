"""A small daemon side of docs/protocol.md, for the streaming tests.

FakeDaemon listens on a Unix socket in a fresh temporary directory and
serves each connection in a thread: it reads snapshots (header, object
lines, trailer), checks them the way meliae-monitord does (header fields
and types, trailer counts against the lines received, no "value" key when
the header says values "none", unique addresses in mode "all") and answers
{"ack": id} with ids counting up from 1, or an error line.  Everything it
received is kept in .snapshots for the tests to inspect.

It can be told to misbehave: stop reading (stop_reading, or stall_after
some lines of the next snapshot), ack the next snapshot late (delay_ack),
answer the next
snapshot with an error (error_next), close a connection in the middle of
the next snapshot (close_after), send a request, keepalive or any line
(send_request, send_line), and go away and come back on the same path
(restart).

Plain Python (json, socket, threading), so it runs on every CPython the
tests do.
"""

import json
import re
import os
import shutil
import socket
import tempfile
import threading
import time

__all__ = ["FakeDaemon", "Snapshot", "wait_until", "is_code_name"]

HEADER_TYPES = {
    "meliae_stream": int, "pid": int, "start_time": (int, float),
    "hostname": str, "program": str, "python": str,
    "label": (str, type(None)), "values": str, "mode": str, "request": int,
    "time": (int, float),
}
KEEP_OPEN = ("aborted", "store")
UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")
# Why tests that fork while other threads run are skipped under ASan: the
# libasan of Debian 12's GCC 12 has no fork handlers for its allocator, so
# a child forked while another thread holds its lock hangs at its first
# malloc (google/sanitizers#774; LLVM's runtime locks around fork since
# 2023).  Without ASan, glibc's malloc takes its locks around fork().
ASAN_FORK_SKIP = ("ASan: GCC 12's libasan hangs a child forked while "
                  "another thread allocates (google/sanitizers#774)")
_OBJECT_PREFIX = b'{"address": '
_CODE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}\Z")


def is_code_name(d):
    """What values "none" may send: a str whose value is an ASCII Python
    identifier of at most 100 characters, an int within 32 bits."""
    v = d.get("value")
    if d.get("type") == "int":
        return (isinstance(v, int) and not isinstance(v, bool)
                and abs(v) <= 2 ** 31 - 1)
    return (d.get("type") == "str" and isinstance(v, str)
            and _CODE_NAME.match(v) is not None)
# a table line of birth sites (docs/dump-format.md, "Birth sites")
_TRACEBACK_PREFIX = b'{"traceback": '


def wait_until(pred, timeout=60.0, interval=0.01, what=None):
    """Poll pred() until it returns something true; return that.  Raises
    AssertionError after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        r = pred()
        if r:
            return r
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1f s waiting for %s"
                                 % (timeout, what or pred))
        time.sleep(interval)


class Snapshot:
    """One snapshot as received: header and trailer (dicts), the object
    lines (data: one bytes object, so that a later snapshot of the test
    process does not hold a million small ones), the id it was acked with
    (None if refused or cut off) and the problems found in it."""

    def __init__(self, conn, header):
        self.conn = conn                # connection number, from 1
        self.header = header
        self.chunks = []                # object lines while receiving
        self.data = b""                 # then joined, newline-separated
        self.nlines = 0
        self.trailer = None
        self.ack = None
        self.error = None               # the error line sent, if any
        self.problems = []
        self.tracebacks = []            # table lines of birth sites

    def seal(self):
        if self.chunks:
            self.data = b"\n".join(self.chunks)
            self.chunks = []

    @property
    def lines(self):
        """The object lines, parsed afresh at each call (not kept: the
        test process's next snapshot would include them)."""
        if not self.data:
            return []
        return json.loads(b"[" + self.data.replace(b"\n", b",") + b"]")

    def __repr__(self):
        return "<Snapshot conn=%d pid=%s request=%s lines=%d ack=%s>" % (
            self.conn, self.header.get("pid"), self.header.get("request"),
            self.nlines, self.ack)


class _Conn:
    def __init__(self, daemon, sock, number):
        self.daemon = daemon
        self.sock = sock
        self.number = number
        self.send_lock = threading.Lock()
        self.closing = False
        self.nlines_seen = 0            # headers (and hellos) so far
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name="fakedaemon-conn-%d" % number)

    def send(self, obj):
        data = (json.dumps(obj) + "\n").encode("utf-8")
        with self.send_lock:
            try:
                self.sock.sendall(data)
                return True
            except OSError:
                return False

    def cut(self):
        """Closes the connection from another thread: recv sees EOF."""
        self.closing = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _run(self):
        d = self.daemon
        sock = self.sock
        sock.settimeout(0.05)
        pending = b""
        cur = None
        try:
            while not self.closing:
                if not d.reading.is_set():
                    d.reading.wait(0.05)
                    continue
                try:
                    data = sock.recv(1 << 20)
                except socket.timeout:
                    continue
                except OSError:
                    break
                if not data:
                    break
                end = data.rfind(b"\n")
                if end < 0:
                    pending += data
                    continue
                block = pending + data[:end]
                pending = data[end + 1:]
                for line in block.split(b"\n"):
                    cur = self._line(cur, line)
                    if self.closing:
                        break
        finally:
            if cur is not None and cur.trailer is None:
                cur.problems.append("connection closed mid-snapshot")
                d._finish(cur)
            try:
                sock.close()
            except OSError:
                pass
            self.closed.set()
            d._conn_closed(self)

    def _line(self, cur, line):
        d = self.daemon
        if cur is None:
            try:
                header = json.loads(line)
            except ValueError:
                header = None
            if not isinstance(header, dict):
                d._problem("connection %d: first line is not a header: %r"
                           % (self.number, line[:200]))
                self._refuse(None, "proto", "bad header")
                return None
            if header.get("hello") is True:
                # docs/protocol.md: the first line of a scanner's
                # connection, once; no snapshot follows it.
                for p in check_header(header):
                    d._problem("connection %d: hello: %s" % (self.number, p))
                if self.nlines_seen or header.get("request") != 0:
                    d._problem("connection %d: a hello that is not the "
                               "first line, or answers a request"
                               % self.number)
                self.nlines_seen += 1
                d._hello(self.number, header)
                return None
            self.nlines_seen += 1
            cur = Snapshot(self.number, header)
            cur.problems.extend(check_header(header))
            d._started(cur)
            return cur
        if line.startswith(_TRACEBACK_PREFIX):
            cur.tracebacks.append(json.loads(line))
            return cur
        if line.startswith(_OBJECT_PREFIX):
            cur.chunks.append(line)
            cur.nlines += 1
            d._maybe_stall(cur.nlines)
            if d._close_after is not None and cur.nlines >= d._close_after:
                d._close_after = None
                cur.problems.append("closed by the test after %d lines"
                                    % cur.nlines)
                self.cut()
            return cur
        try:
            trailer = json.loads(line)
        except ValueError:
            trailer = None
        if not isinstance(trailer, dict) or "end" not in trailer:
            cur.problems.append("not an object line nor a trailer: %r"
                                % line[:200])
            self._refuse(cur, "proto", "bad line")
            return None
        cur.trailer = trailer
        cur.seal()
        cur.problems.extend(check_snapshot(cur))
        err = ("proto", "; ".join(cur.problems)) if cur.problems \
            else d._take_error()
        if err is not None:
            self._refuse(cur, *err)
        else:
            # Recorded before the ack goes out: a test that got its ack
            # finds the snapshot in .snapshots.
            cur.ack = d._new_id()
            d._finish(cur)
            delay = d._take_ack_delay()
            if delay:
                time.sleep(delay)       # a daemon whose commit is slow
            self.send({"ack": cur.ack, "objects": cur.nlines})
        return None

    def _refuse(self, cur, code, message):
        line = {"error": message, "code": code}
        if cur is not None:
            cur.error = line
            self.daemon._finish(cur)
        self.send(line)
        if code not in KEEP_OPEN:
            self.cut()


def check_header(h):
    """Problems with a header line (docs/protocol.md, Header)."""
    problems = []
    for key, types in HEADER_TYPES.items():
        if key not in h:
            problems.append("header lacks %r" % key)
        elif isinstance(h[key], bool) or not isinstance(h[key], types):
            problems.append("header %r has type %s" % (key,
                                                       type(h[key]).__name__))
    if h.get("meliae_stream") != 1:
        problems.append("meliae_stream is %r" % (h.get("meliae_stream"),))
    if h.get("values") not in ("none", "truncated", "full"):
        problems.append("values is %r" % (h.get("values"),))
    if h.get("mode") not in ("all", "gc"):
        problems.append("mode is %r" % (h.get("mode"),))
    for key in ("label", "hostname", "program"):
        if isinstance(h.get(key), str) and len(h[key].encode("utf-8")) > 256:
            problems.append("%s longer than 256 bytes" % key)
    return problems


def check_snapshot(snap):
    """Problems with a whole snapshot: trailer against the lines."""
    problems = []
    t = snap.trailer
    if t.get("end") != "complete":
        problems.append("trailer end is %r" % (t.get("end"),))
    try:
        lines = snap.lines
    except ValueError as e:
        return problems + ["object lines do not parse: %s" % e]
    if t.get("objects") != len(lines):
        problems.append("trailer objects %r, %d lines received"
                        % (t.get("objects"), len(lines)))
    total = sum(d.get("size", 0) for d in lines)
    if t.get("bytes") != total:
        problems.append("trailer bytes %r, sizes add up to %d"
                        % (t.get("bytes"), total))
    if snap.header.get("values") == "none":
        # only names of code (docs/dump-format.md, "Names of code")
        n = sum(1 for d in lines if "value" in d and not is_code_name(d))
        if n:
            problems.append('%d lines have a "value" with values "none"' % n)
    if snap.header.get("mode") == "all":
        if len({d["address"] for d in lines}) != len(lines):
            problems.append("duplicate addresses")
    return problems


class FakeDaemon:
    """The daemon side of the protocol on a temporary socket; see the
    module docstring.  Use as a context manager, or call stop()."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="meliae-fd-")
        self.path = os.path.join(self.dir, "meliae.sock")
        self.cond = threading.Condition()
        self.snapshots = []             # finished (acked or not)
        self.started = []               # every header received
        self.hellos = []                # (connection number, hello header)
        self.problems = []              # outside any snapshot
        self.conns = []                 # live connections
        self.nconnections = 0
        self.reading = threading.Event()
        self.reading.set()
        self._next_id = 1
        self._error_next = None
        self._close_after = None
        self._stall_after = None
        self._ack_delay = 0.0
        self._listener = None
        self._accepter = None
        self._stopping = False
        self.start()

    # -- life -----------------------------------------------------------

    def start(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(self.path)
        s.listen(16)
        s.settimeout(0.05)
        self._listener = s
        self._stopping = False
        self._accepter = threading.Thread(target=self._accept, daemon=True,
                                          name="fakedaemon-accept")
        self._accepter.start()

    def stop(self, remove=True):
        """Closes the listener and every connection (and, with remove, the
        temporary directory)."""
        self._stopping = True
        if self._accepter is not None:
            self._accepter.join()
            self._accepter = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.reading.set()
        with self.cond:
            conns = list(self.conns)
        for c in conns:
            c.cut()
        for c in conns:
            c.thread.join(10)
        if remove:
            shutil.rmtree(self.dir, ignore_errors=True)

    def restart(self, pause=0.0):
        """Goes away (every connection closed) and comes back on the same
        path after pause seconds."""
        self.stop(remove=False)
        if pause:
            time.sleep(pause)
        self.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def _accept(self):
        while not self._stopping:
            try:
                sock, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.cond:
                self.nconnections += 1
                c = _Conn(self, sock, self.nconnections)
                self.conns.append(c)
                self.cond.notify_all()
            c.thread.start()

    # -- what tests call --------------------------------------------------

    def stop_reading(self):
        self.reading.clear()

    def resume_reading(self):
        """Read again, and cancel a stall_after that was not reached: a
        snapshot cut short before its nlines-th line (a child killed
        before its first send) must not leave the stall armed for the
        next one, which nobody would resume."""
        with self.cond:
            self._stall_after = None
            self.reading.set()

    def delay_ack(self, seconds):
        """Send the next ack seconds after its trailer arrived (as a
        daemon committing a big snapshot does)."""
        with self.cond:
            self._ack_delay = seconds

    def _take_ack_delay(self):
        with self.cond:
            delay, self._ack_delay = self._ack_delay, 0.0
            return delay

    def stall_after(self, nlines):
        """Stop reading once the next snapshot has sent nlines object
        lines (its header is in .started by then)."""
        with self.cond:
            self._stall_after = nlines

    def error_next(self, code, message="refused by the test"):
        """Answer the next complete snapshot with this error line."""
        with self.cond:
            self._error_next = (code, message)

    def close_after(self, nlines):
        """Close the connection once the next snapshot has sent nlines
        object lines."""
        with self.cond:
            self._close_after = nlines

    def send_line(self, obj):
        """Send a line to every live connection; returns how many got it."""
        with self.cond:
            conns = list(self.conns)
        return sum(c.send(obj) for c in conns)

    def send_request(self, rid):
        return self.send_line({"request": "snapshot", "id": rid})

    def wait_connections(self, n, timeout=60.0):
        """Wait until n connections are live; returns them."""
        def enough():
            with self.cond:
                live = [c for c in self.conns if not c.closing]
                return live if len(live) >= n else None
        return wait_until(enough, timeout, what="%d connections" % n)

    def wait_snapshots(self, n, timeout=60.0, pred=None):
        """Wait until n finished snapshots (matching pred) arrived."""
        def enough():
            with self.cond:
                snaps = [s for s in self.snapshots
                         if pred is None or pred(s)]
            return snaps if len(snaps) >= n else None
        return wait_until(enough, timeout, what="%d snapshots" % n)

    # -- internals ----------------------------------------------------------

    def _new_id(self):
        with self.cond:
            rid = self._next_id
            self._next_id += 1
            return rid

    def _maybe_stall(self, nlines):
        if self._stall_after is None:       # the common case: no lock
            return
        # Under cond: a resume_reading() meanwhile is not undone.
        with self.cond:
            if self._stall_after is not None and nlines >= self._stall_after:
                self._stall_after = None
                self.reading.clear()

    def stalled(self):
        """Whether the daemon has stopped reading (stop_reading, or a
        stall_after reached) and not resumed."""
        return not self.reading.is_set()

    def _take_error(self):
        with self.cond:
            err, self._error_next = self._error_next, None
            return err

    def _problem(self, text):
        with self.cond:
            self.problems.append(text)

    def _hello(self, number, header):
        with self.cond:
            self.hellos.append((number, header))
            self.cond.notify_all()

    def _started(self, snap):
        with self.cond:
            self.started.append(snap)
            self.cond.notify_all()

    def _finish(self, snap):
        snap.seal()
        with self.cond:
            self.snapshots.append(snap)
            self.cond.notify_all()

    def _conn_closed(self, conn):
        with self.cond:
            if conn in self.conns:
                self.conns.remove(conn)
            self.cond.notify_all()


class StreamTestCase:
    """Mixin for unittest.TestCase: a FakeDaemon per test (self.daemon)
    and self.stream(), a streamer to it that is closed after the test."""

    def setUp(self):
        super().setUp()
        self.daemon = FakeDaemon()
        self.addCleanup(self.daemon.stop)

    def stream(self, **kw):
        import meliae.scanner as scanner
        # Generous for an ASan build on a loaded machine, where a fork
        # snapshot's child competes with this process's fake daemon for
        # the cores.
        kw.setdefault("timeout", 40.0)
        if UNDER_ASAN:
            # While a fork child lives, every page this process's fake
            # daemon writes (and ASan's shadow of it) is copied: under
            # ASan the protocol tests run 1.7x slower in fork mode, so they
            # take in-process snapshots there; test_fork_stream.py asks
            # for fork=True explicitly and runs under ASan too.
            kw.setdefault("fork", False)
        s = scanner.stream_to(kw.pop("address", self.daemon.path), **kw)
        self.addCleanup(s.close)
        return s

    def assertNoProblems(self, snaps=None):
        d = self.daemon
        with d.cond:
            snaps = list(d.snapshots if snaps is None else snaps)
            problems = list(d.problems)
        for s in snaps:
            problems.extend("%r: %s" % (s, p) for p in s.problems)
        self.assertEqual(problems, [])
