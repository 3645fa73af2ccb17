"""Stream heap snapshots of this process to meliae-monitord.

stream_to(address) returns a Streamer: one background thread that keeps a
connection to the daemon's Unix socket and sends it snapshots -- every
`interval` seconds, when the daemon asks for one, when the application
calls Streamer.snapshot(), or on a signal.  What goes over the socket is
defined in docs/protocol.md: a header line, the lines of a
dump_all_objects (or dump_gc_objects) dump, a trailer line with the
counts; the daemon answers {"ack": id} once the snapshot is stored.

What it costs the application:

- Fork snapshots (the default on Linux; stream_to(fork=...)): the
  streamer's thread fork()s with the GIL held, so the child's copy of the
  heap is consistent, and the application goes on at once: it is paused
  for the fork only, which grows with the process's RSS (the kernel copies
  page tables and counts a reference per page: 61 ms at 10M objects, 808
  MiB, on the two-core VM of bench/RESULTS.md, against 4.7 s for the
  walk).
  The child walks its copy -- the parent's addresses, so object identity
  holds across snapshots -- and streams header, object lines and trailer
  straight to the daemon, then _exit()s.  It runs no Python code: no
  atexit handler, no finalizer, no at-fork hook, no signal handler of the
  application (scanner/forkchild.h lists what it does).  The price is
  memory: every page the application writes while the child lives (until
  the daemon has read the snapshot) is copied, up to the whole heap for an
  application that touches all of it, and the walk's CPU runs in the child.
- In-process snapshots (fork=False, or where fork is not available): the
  walk pauses the process, as any dump does: it holds the GIL and writes
  into an anonymous temporary file ($TMPDIR, often a tmpfs: count the
  snapshot's size in memory there).  Sending happens after the walk,
  without the GIL, so a slow or stalled daemon never freezes the other
  threads.
- Every snapshot has a deadline (`timeout`, 300 s by default) that covers
  the walk, the sending and the daemon's ack.  A daemon that stops reading
  costs at most that, then the connection is dropped.
- A daemon that is not there, goes away or restarts is retried in the
  background, with a pause doubling from 0.1 s to 30 s between attempts.
  Failures are logged as one warning on the "meliae" logger per streak of
  failures (the next acked snapshot ends a streak), never one per retry.
- Values are off by default (values='none'): heap strings hold passwords,
  tokens and personal data, and lines without them are smaller.
- Sends use MSG_NOSIGNAL: a daemon that closes the connection is an error
  on the connection, never a SIGPIPE, even where the application restored
  SIGPIPE's default action.
- After os.fork() the child closes its copy of the parent's connection
  (without writing to it) and starts its own thread and connection, with
  its own pid in the headers: a pre-fork server with four workers gives
  four streams.

The thread is a daemon thread; close() (or leaving a `with` block, or the
interpreter's exit) stops it.
"""

import atexit
import collections
import errno
import json
import logging
import operator
import os
import select
import socket
import sys
import threading
import time
import weakref
import signal as _signal

from meliae import _births, _scanner

__all__ = ["StreamError", "Streamer", "default_address", "stream_to"]

log = logging.getLogger("meliae")

# docs/protocol.md and common/protocol.h.
PROTOCOL_VERSION = 1
_MAX_LABEL = 256            # ML_PROTO_MAX_LABEL: label, hostname, program
_MAX_DAEMON_LINE = 64 << 10  # ML_PROTO_MAX_META_LINE
_SUN_PATH_MAX = 107         # sizeof(sun_path) - 1 on Linux
_MSG_NOSIGNAL = getattr(socket, "MSG_NOSIGNAL", 0)  # a closed daemon: EPIPE
# A send that fails with these: the daemon closed, maybe saying why first.
_PEER_GONE = (errno.EPIPE, errno.ECONNRESET)
# Error codes after which the daemon keeps the connection open.
_CODES_KEEP_OPEN = frozenset(("aborted", "store"))

_VALUES = {
    "none": _scanner.VALUES_NONE,
    "truncated": _scanner.VALUES_TRUNCATED,
    "full": _scanner.VALUES_FULL,
}
_MODES = {"all": _scanner.WALK_ALL}
# Where fork=None (auto) forks: Linux, whose fork child dies with the
# streamer's thread (PR_SET_PDEATHSIG) and where this is tested.
# MELIAE_FORK=0 in the environment makes the default the in-process walk,
# for an operator who knows fork is unsafe there (a process near its
# memory limit; a sanitizer runtime without fork handlers, as under the
# test suite's ASan run); fork=True still forks.
_FORK_BY_DEFAULT = (hasattr(os, "fork") and sys.platform.startswith("linux")
                    and os.environ.get("MELIAE_FORK", "1") != "0")

_BACKOFF_MIN = 0.1
_BACKOFF_MAX = 30.0
# How much longer than its deadline snapshot(wait=True) waits for the
# streamer's thread to report (which enforces the deadline itself).
_WAIT_SLACK = 0.5
# A snapshot's deadline: the walk, the sending and the daemon's commit.
# An 80M-object heap (6 GB) is acked in 2.2-2.4 min on a loaded two-core
# machine (bench/bench_beast.py); 60 s failed it every time.
_DEFAULT_TIMEOUT = 300.0


class StreamError(OSError):
    """A snapshot could not be streamed, or the streamer is closed.

    errno is ETIMEDOUT when the deadline passed; code is the daemon's error
    code ("proto", "limit", "store", ...; docs/protocol.md) when the daemon
    refused the snapshot, else None.
    """

    code = None


def _stream_error(message, code=None, err=None, cause=None):
    e = StreamError(err, message) if err is not None else StreamError(message)
    e.code = code
    e.__cause__ = cause
    return e


def default_address():
    """The daemon's socket when stream_to() is given none.

    $MELIAE_SOCKET if set, else /run/meliae.sock for root, else
    $XDG_RUNTIME_DIR/meliae.sock.  Raises ValueError when none applies.
    """
    path = os.environ.get("MELIAE_SOCKET")
    if path:
        return path
    if os.geteuid() == 0:
        return "/run/meliae.sock"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "meliae.sock")
    raise ValueError("no socket address: pass one, or set $MELIAE_SOCKET "
                     "(neither is set, nor $XDG_RUNTIME_DIR)")


def _check_address(address):
    if address is None:
        address = default_address()
    if not isinstance(address, (str, bytes, os.PathLike)):
        raise TypeError("address must be a path (str, bytes or os.PathLike),"
                        " not %s" % type(address).__name__)
    address = os.fspath(address)
    raw = os.fsencode(address)
    if not raw:
        raise ValueError("address must not be empty")
    if len(raw) > _SUN_PATH_MAX:
        raise ValueError("socket path is %d bytes, longer than the %d a Unix"
                         " socket address holds: %r"
                         % (len(raw), _SUN_PATH_MAX, address))
    return address


def _cut_utf8(text, limit=_MAX_LABEL):
    """text as valid UTF-8 of at most limit bytes, never splitting a
    character (undecodable bytes of argv become U+FFFD)."""
    raw = text.encode("utf-8", "surrogateescape").decode(
        "utf-8", "replace").encode("utf-8")
    return raw[:limit].decode("utf-8", "ignore")


_start_time = (None, None)     # (pid, seconds since the epoch)


# Signals a process sends itself or is sent to ask for something (its
# handlers run in the main thread).  The kernel gives such a signal to any
# thread that does not block it: given to meliae's thread, it would leave a
# main thread blocked in a read (input(), accept()) asleep, its handler
# pending (SIGUSR2 asking for a snapshot while the program waits on stdin).
_ASYNC_SIGNALS = tuple(getattr(_signal, n) for n in (
    "SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGALRM", "SIGUSR1",
    "SIGUSR2", "SIGCHLD", "SIGWINCH") if hasattr(_signal, n))


def block_async_signals():
    """Blocks the asynchronous signals in the calling (meliae's own)
    thread, so that they reach the program's main thread."""
    if hasattr(_signal, "pthread_sigmask"):
        _signal.pthread_sigmask(_signal.SIG_BLOCK, _ASYNC_SIGNALS)


def process_figures():
    """The process beside its objects, right before the walk
    (docs/protocol.md, "process"): RSS and RssAnon, pymalloc's arenas,
    pools and blocks (None under PYTHONMALLOC=malloc), and tracemalloc's
    traced total when it is tracing (else None)."""
    figures = _scanner.process_stats()
    traced = None
    tm = sys.modules.get("tracemalloc")
    if tm is not None and tm.is_tracing():
        traced = tm.get_traced_memory()[0]
    figures["traced"] = traced
    return figures


def process_start_time():
    """When this process started, in seconds since the epoch.

    On Linux from /proc (starttime of /proc/self/stat, in clock ticks
    since boot, plus btime of /proc/stat): the value the daemon reads for
    the verified pid, so the two agree.  Elsewhere, when this module was
    imported (or the process forked).
    """
    global _start_time
    pid = os.getpid()
    if _start_time[0] == pid:
        return _start_time[1]
    try:
        with open("/proc/self/stat", "rb") as f:
            stat = f.read()
        # comm (field 2) may hold spaces and parentheses: fields are
        # counted from the last ')'; starttime is field 22.
        ticks = int(stat[stat.rindex(b")") + 2:].split()[19])
        with open("/proc/stat", "rb") as f:
            btime = next(int(line.split()[1]) for line in f
                         if line.startswith(b"btime "))
        value = btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        value = time.time()
    _start_time = (pid, value)
    return value


def _program():
    argv = getattr(sys, "argv", None)
    if argv and argv[0]:
        return argv[0]
    return sys.executable or ""


class _Request:
    """One snapshot to take.  Written by the streamer's thread, read by the
    caller of snapshot() after done is set."""

    __slots__ = ("request", "deadline", "done", "ack", "error", "abandoned",
                 "periodic")

    def __init__(self, request, deadline, wait, periodic=False):
        self.request = request          # the daemon's id, or 0
        self.deadline = deadline        # time.monotonic()
        self.done = threading.Event() if wait else None
        self.ack = None
        self.error = None
        self.abandoned = False          # the waiter gave up
        self.periodic = periodic

    def finish(self, ack=None, error=None):
        self.ack = ack
        self.error = error
        if self.done is not None:
            self.done.set()


def _setting(name, doc):
    """A read-only property for a stream_to() argument."""
    return property(operator.attrgetter("_" + name), doc=doc)


# Every open streamer, for the fork and exit hooks.
_streamers = weakref.WeakSet()


class Streamer:
    """Streams snapshots of this process to meliae-monitord.

    Made by stream_to(), which documents the arguments.  One background
    thread owns the connection; snapshot() and close() may be called from
    any thread.  A context manager: leaving the block closes it.
    """

    def __init__(self, address, interval, label, values, mode, signum,
                 timeout, fork=None, traces=None):
        self._address = address
        self._traces = traces
        self._interval = interval
        self._label = label
        self._values = values
        self._mode = mode
        self._timeout = timeout
        self._fork = fork
        self._child_pid = None
        import platform     # slow to import: only when streaming
        self._python = platform.python_version()
        self._signum = signum
        self._prev_handler = None
        self._handler_installed = False
        self._closed = False
        self._init_state()
        if signum is not None:
            try:
                self._install_signal(signum)
            except BaseException:
                self._close_wake_fds()
                raise
        _streamers.add(self)
        self._start()

    # -- state ------------------------------------------------------------

    def _init_state(self):
        """Everything the thread owns, fresh (at start and after fork)."""
        # Protects _queue, _sock (against close()'s shutdown), _closed
        # transitions and the wake pipe's lifetime.
        self._lock = threading.Lock()
        self._queue = collections.deque()       # _Request from snapshot()
        self._signalled = False                 # set by the signal handler
        self._wake_r, self._wake_w = os.pipe()  # non-inheritable
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        # The rest is touched by the streamer's thread only.
        self._sock = None
        self._rbuf = b""
        self._lines = collections.deque()       # daemon lines not handled
        self._daemon_requests = collections.deque()
        self._backoff = _BACKOFF_MIN
        self._next_connect = 0.0
        self._next_periodic = (None if self._interval is None
                               else time.monotonic() + self._interval)
        self._failing = False
        self._last_error = None
        self._last_snapshot_id = None
        self._thread = None
        self._thread_ident = None

    def _start(self):
        self._thread = threading.Thread(target=self._run,
                                        name="meliae-stream", daemon=True)
        self._thread.start()

    def _close_wake_fds(self):
        with self._lock:
            for fd in (self._wake_r, self._wake_w):
                if fd is not None:
                    os.close(fd)
            self._wake_r = self._wake_w = None

    def _wake(self):
        """Wakes the thread.  Called with self._lock held, or from the
        signal handler (which may not take locks: it may have interrupted
        this very thread while it held one)."""
        fd = self._wake_w
        if fd is not None:
            try:
                os.write(fd, b"\0")
            except OSError:
                pass    # full: a wakeup is pending anyway

    # -- public API -------------------------------------------------------

    @property
    def address(self):
        """The daemon's socket path."""
        return self._address

    @property
    def pid(self):
        """The pid the headers carry: this process's (the child's, after a
        fork)."""
        return os.getpid()

    @property
    def connected(self):
        """True while a connection to the daemon is open."""
        return self._sock is not None

    @property
    def closed(self):
        return self._closed

    @property
    def last_error(self):
        """The latest failure (an exception), or None once a snapshot was
        acknowledged since."""
        return self._last_error

    @property
    def last_snapshot_id(self):
        """The daemon's id of the latest acknowledged snapshot, or None."""
        return self._last_snapshot_id

    interval = _setting("interval", "Seconds between automatic snapshots, "
                        "or None.")
    label = _setting("label", "The label in every header, or None.")
    values = _setting("values", "'none', 'truncated' or 'full'.")
    mode = _setting("mode", "'all': the objects of dump_all_objects.")
    timeout = _setting("timeout", "Seconds one snapshot may take.")
    fork = _setting("fork", "True: snapshots in a forked child; False: "
                    "in-process; None: forked where possible (Linux).")

    @property
    def child_pid(self):
        """The pid of the forked child streaming a snapshot now, or None."""
        return self._child_pid

    def snapshot(self, wait=True, timeout=None):
        """Take a snapshot now and stream it; return the daemon's id for it.

        The snapshot is taken by the streamer's thread (connecting first if
        need be).  With wait=False, returns None once it is queued.  With
        wait=True, waits for the daemon's ack and returns its id; raises
        StreamError when there is no daemon, the daemon refused the
        snapshot (e.code), or it was not acknowledged within timeout
        seconds (default: the streamer's timeout; e.errno ETIMEDOUT).
        Never waits longer than timeout plus a fraction of a second, except
        for a walk of the heap already under way (it cannot be cut short).
        """
        if timeout is None:
            timeout = self._timeout
        timeout = _check_timeout(timeout)
        if wait and threading.get_ident() == self._thread_ident:
            raise StreamError("snapshot(wait=True) from the streamer's own "
                              "thread (a special-size callable?) would "
                              "never return")
        req = _Request(0, time.monotonic() + timeout, wait)
        with self._lock:
            if self._closed:
                raise _stream_error("streamer for %s is closed"
                                    % (self._address,))
            self._queue.append(req)
            self._wake()
        if not wait:
            return None
        if not req.done.wait(timeout + _WAIT_SLACK):
            req.abandoned = True
            raise _stream_error("snapshot not acknowledged by %s within "
                                "%.3g s" % (self._address, timeout),
                                err=errno.ETIMEDOUT)
        if req.error is not None:
            raise req.error
        return req.ack

    def close(self):
        """Stop streaming: drop the connection and join the thread.

        Snapshots still queued are dropped (their waiters get StreamError)
        and one being sent is cut off.  The signal handler, if any, is
        restored to the one it replaced (from the main thread; closed from
        another, the handler stays but only calls the previous one).
        Idempotent.
        """
        with self._lock:
            self._closed = True
            self._wake()
            sock = self._sock
            if sock is not None:
                try:
                    # Cuts a send in progress short: the thread is in C,
                    # without the GIL, until its deadline otherwise.
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if self._handler_installed:
            self._restore_signal()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join()
        if not self._handler_installed:
            self._close_wake_fds()
        _streamers.discard(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "<meliae.stream.Streamer %r %s>" % (
            self._address, "closed" if self._closed
            else "connected" if self.connected else "not connected")

    # -- signal -----------------------------------------------------------

    def _install_signal(self, signum):
        if threading.current_thread() is not threading.main_thread():
            raise ValueError("signal= works only when stream_to() is called "
                             "from the main thread")
        self._prev_handler = _signal.signal(signum, self._on_signal)
        self._handler_installed = True

    def _restore_signal(self):
        if threading.current_thread() is not threading.main_thread():
            return
        if _signal.getsignal(self._signum) == self._on_signal:
            prev = self._prev_handler
            _signal.signal(self._signum,
                           _signal.SIG_DFL if prev is None else prev)
        # else someone installed a handler over ours: it stays, and ours
        # keeps only chaining to the previous one.
        self._handler_installed = False

    def _on_signal(self, signum, frame):
        # Queues a snapshot without waiting and without a lock (see _wake),
        # then calls the handler this one replaced.
        if not self._closed:
            self._signalled = True
            self._wake()
        prev = self._prev_handler
        if callable(prev):
            prev(signum, frame)

    # -- fork -------------------------------------------------------------

    def _after_fork_child(self):
        # The parent's thread does not exist here, and any lock it held
        # stays held: start over.  Close this copy of the parent's
        # connection without a byte (shutdown would cut the parent's too).
        if self._closed:
            return
        sock = self._sock
        if sock is not None:
            sock.close()
        for fd in (self._wake_r, self._wake_w):
            if fd is not None:
                os.close(fd)
        self._init_state()
        self._start()

    # -- the streamer's thread --------------------------------------------

    def _run(self):
        self._thread_ident = threading.get_ident()
        block_async_signals()
        try:
            while not self._closed:
                try:
                    self._step()
                except Exception as e:   # a bug here must not end streaming
                    log.exception("meliae: stream to %s: unexpected error",
                                  self._address)
                    self._drop(e)
                    self._poll(self._backoff)
        finally:
            self._drop(None)
            with self._lock:
                queued, self._queue = list(self._queue), collections.deque()
            for req in queued:
                req.finish(error=_stream_error(
                    "streamer for %s closed" % (self._address,)))

    def _step(self):
        now = time.monotonic()
        req = self._take_request(now)
        if req is not None:
            self._serve(req)
            if req.periodic:
                self._next_periodic = time.monotonic() + self._interval
            return
        if self._sock is None and now >= self._next_connect:
            self._connect()
            return
        wakeup = []
        if self._next_periodic is not None:
            wakeup.append(self._next_periodic)
        if self._sock is None:
            wakeup.append(self._next_connect)
        self._poll(max(0.0, min(wakeup) - now) if wakeup else None)
        self._handle_lines()

    def _take_request(self, now):
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        deadline = now + self._timeout
        if self._signalled:
            self._signalled = False
            return _Request(0, deadline, False)
        if self._daemon_requests:
            return _Request(self._daemon_requests.popleft(), deadline, False)
        if self._next_periodic is not None and now >= self._next_periodic:
            if self._sock is None and now < self._next_connect:
                # No daemon, and not yet time to try again: skip this one.
                self._next_periodic = now + self._interval
                return None
            return _Request(0, deadline, False, periodic=True)
        return None

    def _serve(self, req):
        if req.abandoned:
            return
        if time.monotonic() >= req.deadline:
            req.finish(error=self._failed(_stream_error(
                "snapshot for %s timed out before it could start"
                % (self._address,), err=errno.ETIMEDOUT)))
            return
        if self._sock is None:
            err = self._connect()
            if err is not None:
                req.finish(error=err)
                return
        header = self._header(req.request)
        try:
            self._take(header, req.deadline)
        except OSError as e:
            # The send failed part way (or the temporary file), or the
            # forked child failed, was killed or timed out: the connection
            # is cut mid-snapshot; the daemon may have said why.
            code, why = (None, None)
            if self._sock is not None and e.errno in _PEER_GONE:
                code, why = self._refusal(self._sock, self._lines)
            err = _stream_error("streaming a snapshot to %s: %s"
                                % (self._address, why or e), code=code,
                                err=e.errno, cause=e)
            self._drop(err)
            req.finish(error=self._failed(err))
            return
        except Exception as e:
            # The walk failed (a dump already running, no memory, a
            # special-size callable raised): nothing was sent.
            req.finish(error=self._failed(_stream_error(
                "taking a snapshot for %s: %s" % (self._address, e),
                cause=e)))
            return
        try:
            ack = self._await_reply(req.deadline)
        except StreamError as e:
            req.finish(error=self._failed(e))
            return
        self._last_snapshot_id = ack
        self._succeeded()
        req.finish(ack=ack)

    def _take(self, header, deadline):
        """Walks the heap and sends the snapshot, in a forked child or
        in-process, with birth sites when traces=N asked and tracemalloc
        traces (looked up here, in this process, before the walk).  Raises
        OSError when the connection was cut mid-snapshot, another
        exception when nothing was sent."""
        if self._traces is None or not _births.start(self._traces):
            return self._take_walk(header, deadline)
        _births.prepare(_scanner)
        try:
            return self._take_walk(header, deadline)
        finally:
            _scanner.clear_traces()

    def _take_walk(self, header, deadline):
        def ms():
            return max(1, int((deadline - time.monotonic()) * 1000))
        fork = self._fork
        if fork or (fork is None and _FORK_BY_DEFAULT):
            try:
                pid, status_fd = _scanner.fork_stream_snapshot(
                    self._sock.fileno(), header, _MODES[self._mode],
                    _VALUES[self._values], ms())
            except Exception as e:
                # Nothing sent: a special-size callable is registered (the
                # child runs no Python code), fork() failed (ENOMEM under
                # strict overcommit, EAGAIN), a dump is running.
                if fork:
                    raise _scanner.ScanError("cannot fork the snapshot: %s"
                                             % (e,)) from e
                log.debug("meliae: snapshot in-process (no fork: %s)", e)
            else:
                self._child_pid = pid
                try:
                    _scanner.wait_child(pid, status_fd, ms())
                except OSError:
                    raise
                except Exception as e:
                    # The child failed (no memory, ScanError) after it may
                    # have sent the header and object lines: cut the
                    # connection so the daemon drops the partial snapshot.
                    raise OSError(errno.EIO, "the snapshot's child process "
                                  "failed: %s" % (e,)) from e
                finally:
                    self._child_pid = None
                return
        _scanner.stream_snapshot(self._sock.fileno(), header,
                                 _MODES[self._mode], _VALUES[self._values],
                                 ms())

    def _header(self, request, hello=False):
        h = {
            "meliae_stream": PROTOCOL_VERSION,
            "pid": os.getpid(),
            "start_time": process_start_time(),
            "hostname": _cut_utf8(socket.gethostname()),
            "program": _cut_utf8(_program()),
            "python": self._python,
            "label": self._label,
            "values": self._values,
            "mode": self._mode,
            "request": request,
            "time": time.time(),
        }
        if self._traces is not None:
            h["traces"] = self._traces
        if hello:
            h["hello"] = True
        else:
            h["process"] = process_figures()
        return (json.dumps(h) + "\n").encode("ascii")

    # -- connection ---------------------------------------------------------

    def _connect(self):
        """Connects; returns None, or the StreamError (and schedules the
        next attempt)."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # CLOEXEC
        try:
            # Non-blocking: a full listen backlog is EAGAIN, not a hang.
            s.settimeout(min(self._timeout, 10.0))
            s.connect(self._address)
            # Who we are, before any snapshot: `meliae-cli snap LABEL`
            # finds this process from now on.  A few hundred bytes into
            # an empty socket buffer: sent whole or the connection fails.
            hello = self._header(0, hello=True)
            if s.send(hello, _MSG_NOSIGNAL) != len(hello):
                raise OSError(errno.EAGAIN, "the hello line was cut")
            s.setblocking(False)
        except OSError as e:
            code, why = self._refusal(s) if e.errno in _PEER_GONE \
                else (None, None)
            s.close()
            err = _stream_error("cannot connect to %s: %s"
                                % (self._address, why or e), code=code,
                                err=e.errno, cause=e)
            self._schedule_reconnect()
            return self._failed(err)
        with self._lock:
            if self._closed:
                s.close()
                return _stream_error("streamer for %s closed"
                                     % (self._address,))
            self._sock = s
        self._rbuf = b""
        self._lines.clear()
        self._daemon_requests.clear()
        log.debug("meliae: connected to %s", self._address)
        return None

    @staticmethod
    def _refusal(sock, pending=()):
        """(code, "why (code)") from the error line a daemon sent before
        closing on us, after a send failed -- it checks peer credentials
        at accept and may be gone before our hello or snapshot is sent --
        or (None, None).  pending: lines already read.  Does not wait: a
        closed peer's last words are already queued."""
        data = b""
        try:
            sock.setblocking(False)
            data = sock.recv(_MAX_DAEMON_LINE)
        except OSError:
            pass
        for raw in list(pending) + data.splitlines():
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if isinstance(line, dict) and "error" in line:
                code = line.get("code")
                code = code if isinstance(code, str) else None
                return code, "%s (%s)" % (line.get("error"), code)
        return None, None

    def _schedule_reconnect(self):
        self._next_connect = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, _BACKOFF_MAX)

    def _drop(self, err):
        """Closes the connection (if any); err: why, for the next attempt's
        schedule (None: closing)."""
        with self._lock:
            s, self._sock = self._sock, None
        if s is None:
            return
        s.close()
        if err is not None:
            self._schedule_reconnect()

    def _failed(self, err):
        """Notes a failure; warns once per streak.  Returns err."""
        self._last_error = err
        if not self._failing and not self._closed:
            self._failing = True
            log.warning("meliae: streaming snapshots to %s: %s (retrying in "
                        "the background; further failures are not logged "
                        "until a snapshot succeeds)", self._address, err)
        return err

    def _succeeded(self):
        if self._failing:
            log.info("meliae: streaming snapshots to %s again",
                     self._address)
        self._failing = False
        self._last_error = None
        self._backoff = _BACKOFF_MIN

    def _poll(self, timeout):
        """Waits up to timeout seconds (None: no limit) for a wakeup or
        data from the daemon; reads what arrived into self._lines."""
        p = select.poll()
        p.register(self._wake_r, select.POLLIN)
        sock = self._sock
        if sock is not None:
            p.register(sock.fileno(), select.POLLIN)
        ms = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
        for fd, _ in p.poll(ms):
            if fd == self._wake_r:
                try:
                    while os.read(fd, 512):
                        pass
                except OSError:
                    pass
            elif sock is not None:
                self._read(sock)

    def _read(self, sock):
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._drop(self._failed(_stream_error(
                "connection to %s: %s" % (self._address, e), err=e.errno,
                cause=e)))
            return
        if not data:
            self._drop(self._failed(_stream_error(
                "%s closed the connection" % (self._address,),
                err=errno.ECONNRESET)))
            return
        buf = self._rbuf + data
        *lines, self._rbuf = buf.split(b"\n")
        self._lines.extend(lines)
        if len(self._rbuf) > _MAX_DAEMON_LINE:
            self._drop(self._failed(_stream_error(
                "%s sent a line longer than %d bytes"
                % (self._address, _MAX_DAEMON_LINE))))

    def _next_line(self):
        """The next daemon line as a dict, skipping what is not one."""
        while self._lines:
            raw = self._lines.popleft()
            try:
                line = json.loads(raw)
            except ValueError:
                log.debug("meliae: ignored a line from %s: %r",
                          self._address, raw[:200])
                continue
            if isinstance(line, dict):
                return line
        return None

    def _handle_lines(self):
        """Lines that arrive while no snapshot waits for its ack."""
        while True:
            line = self._next_line()
            if line is None:
                return
            if "ack" in line:
                continue        # of a snapshot given up on: nothing waits
            if "error" in line:
                err = self._daemon_error(line)
                if self._sock is not None and err.code not in _CODES_KEEP_OPEN:
                    self._drop(err)
                continue
            self._handle_other(line)

    def _handle_other(self, line):
        """Requests, keepalives and lines of unknown kinds."""
        if line.get("request") == "snapshot":
            rid = line.get("id")
            if isinstance(rid, int) and not isinstance(rid, bool) and rid >= 0:
                self._daemon_requests.append(rid)
                self._serving()
        elif "keepalive" in line:
            self._serving()

    def _serving(self):
        # The daemon speaks to us: retries start from the shortest pause
        # again.  (Only an ack ends a streak of failures.)
        self._backoff = _BACKOFF_MIN

    def _daemon_error(self, line):
        code = line.get("code")
        return self._failed(_stream_error(
            "%s refused the snapshot: %s (%s)"
            % (self._address, line.get("error"), code),
            code=code if isinstance(code, str) else None))

    def _await_reply(self, deadline):
        """The daemon's ack id for the snapshot just sent, or StreamError.
        Requests and keepalives arriving meanwhile are noted."""
        while True:
            line = self._next_line()
            if line is not None:
                if "ack" in line:
                    ack = line["ack"]
                    return ack if isinstance(ack, int) else None
                if "error" in line:
                    err = self._daemon_error(line)
                    if err.code not in _CODES_KEEP_OPEN:
                        self._drop(err)
                    raise err
                self._handle_other(line)
                continue
            if self._closed:
                raise _stream_error("streamer for %s closed"
                                    % (self._address,))
            if self._sock is None:
                raise self._last_error or _stream_error(
                    "connection to %s lost" % (self._address,))
            left = deadline - time.monotonic()
            if left <= 0:
                err = _stream_error("%s did not acknowledge the snapshot in "
                                    "time" % (self._address,),
                                    err=errno.ETIMEDOUT)
                self._drop(err)
                raise err
            self._poll(left)


def _check_timeout(value, name="timeout"):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("%s must be a number of seconds, not %s"
                        % (name, type(value).__name__))
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError("%s must be a finite number > 0, not %r"
                         % (name, value))
    return float(value)


def stream_to(address=None, interval=None, label=None, values="none",
              signal=None, *, timeout=_DEFAULT_TIMEOUT, fork=None,
              traces=None):
    """Stream snapshots of this process to meliae-monitord; return a Streamer.

    address: the daemon's Unix socket (str, bytes or os.PathLike); by
      default $MELIAE_SOCKET, else /run/meliae.sock for root, else
      $XDG_RUNTIME_DIR/meliae.sock.  The daemon need not be there yet: the
      streamer connects in the background and keeps trying.
    interval: seconds between automatic snapshots, or None for none (the
      daemon may still ask for snapshots, and snapshot() takes one).
    label: a string (at most 256 bytes of UTF-8) stored with every snapshot,
      to tell this process's streams apart; or None.
    values: what object lines say of values: 'none' (the default: no
      "value" key at all, as heap strings hold secrets), 'truncated' (as
      a file dump: str and bytes cut to 100 characters) or 'full' (str and
      bytes uncut).
    signal: a signal number (e.g. signal.SIGUSR2): its arrival queues a
      snapshot, and then calls the handler it replaced.  Only from the main
      thread (ValueError otherwise); close() restores the old handler.
    timeout: seconds each snapshot may take, walk, sending and the daemon's
      ack included; also snapshot()'s default wait.  The default, 300 s,
      leaves room for a heap of 80M objects (acked in about 2.5 min on a
      two-core machine).
    fork: where the heap is walked.  True: in a child made by fork(), which
      streams the snapshot while the application goes on (paused only for
      the fork); a snapshot that cannot fork fails.  False: in this process,
      which is paused for the whole walk (seconds at ten million objects).
      None (the default): forked on Linux, in-process elsewhere, and
      in-process for a snapshot that cannot fork (a special-size callable
      is registered, fork() failed).  Forking is safe with threads (only
      the streamer's thread exists in the child, which takes no lock and
      runs no Python code) but copies every page the application writes
      while the child streams: pass False where memory is tighter than
      latency, or where fork() must not be used.  (The walk mode, 'all',
      is the header's "mode"; hence a separate argument.)
    traces: None (the default), or N frames: birth sites.  tracemalloc is
      started with N frames unless it is tracing already, and each snapshot
      then carries every traced object's allocation traceback
      (docs/dump-format.md, "Birth sites"), looked up in this process
      before the walk (a second pass over the heap; bench/RESULTS.md).
      The header says "traces": N.  tracemalloc itself slows the
      application down while it traces.

    Raises ValueError or TypeError for a bad argument; a daemon that cannot
    be reached is not an error here (see Streamer.last_error).
    """
    address = _check_address(address)
    if values not in _VALUES:
        raise ValueError("values must be one of %s, not %r"
                         % (", ".join(map(repr, _VALUES)), values))
    if interval is not None:
        interval = _check_timeout(interval, "interval")
    timeout = _check_timeout(timeout)
    if label is not None:
        if not isinstance(label, str):
            raise TypeError("label must be a str or None, not %s"
                            % type(label).__name__)
        try:
            n = len(label.encode("utf-8"))
        except UnicodeEncodeError:
            raise ValueError("label must be valid Unicode (no lone "
                             "surrogates)") from None
        if n > _MAX_LABEL:
            raise ValueError("label is %d bytes of UTF-8, more than %d"
                             % (n, _MAX_LABEL))
    if fork not in (None, True, False):
        raise TypeError("fork must be True, False or None, not %r" % (fork,))
    traces = _births.check_frames(traces)
    if fork and not hasattr(os, "fork"):
        raise ValueError("fork=True: this platform has no fork()")
    if signal is not None and (isinstance(signal, bool)
                               or not isinstance(signal, int)):
        raise TypeError("signal must be a signal number, not %s"
                        % type(signal).__name__)
    sys.audit("meliae.scanner.stream_to", address)
    # Always the objects of dump_all_objects, each once: dump_gc_objects
    # repeats objects, which a stored graph cannot hold.
    return Streamer(address, interval, label, values, "all", signal, timeout,
                    fork, traces)


def _after_fork_child():
    for s in list(_streamers):
        s._after_fork_child()


def _close_all():
    for s in list(_streamers):
        s.close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_child)
atexit.register(_close_all)
