"""Dump the objects of this Python process, for analysis in another one.

The walk, the sizing and the writing are C (meliae._scanner): the walk runs
no Python code of the objects it visits (no __sizeof__, __len__, __eq__,
__hash__ or __repr__), creates no Python objects and does not recurse, so it
is safe in a process that is already short of memory.  The line format is
defined in docs/dump-format.md.

A *target* is one of:

- a path (str, bytes or os.PathLike).  A regular file is written under a
  temporary name beside it and renamed over it when the dump is complete
  (new files get mode 0600); a symlink at the final component is refused
  (OSError ELOOP); a FIFO or device is written as it is.  A name ending in
  ".gz" is written gzip-compressed.
- a binary or text file over a file descriptor, or a socket: flushed, then
  written through the descriptor (a socket with MSG_NOSIGNAL, within its
  timeout if it has one).  Other file objects (gzip.GzipFile, io.BytesIO,
  ...) get the bytes through their write().
- a callable taking bytes (e.g. a file object's write): the dump goes to an
  anonymous temporary file first ($TMPDIR, often a tmpfs: count the dump's
  size in memory there) and is handed over in chunks after the walk, so the
  callable never runs while the heap is being walked.

A regular file is replaced by rename, so the new file is the caller's, mode
0600, whatever the old one's owner, mode or hard links were.

dump_all_objects(path, fork=True) writes the dump from a child made by
fork(), as stream_to's fork snapshots do (meliae/stream.py): the process is
paused for the fork only, and the call returns a ForkedDump to wait() on.

stream_to(address) streams snapshots to meliae-monitord instead, from a
background thread: see meliae.stream and docs/protocol.md.
"""

import io
import os
import select
import socket
import sys
import threading

from meliae import _births, _scanner
from meliae._scanner import ScanError
from meliae.stream import StreamError, Streamer, stream_to

__all__ = [
    "ForkedDump",
    "ScanError",
    "StreamError",
    "Streamer",
    "add_special_size",
    "dump_all_objects",
    "dump_all_referenced",
    "dump_gc_objects",
    "get_recursive_items",
    "get_recursive_size",
    "get_referents",
    "size_of",
    "stream_to",
]


_PROBE = '{"address": 1, "value": "x"}\n'


def _direct_fd(target):
    """The file descriptor to write target's bytes to, or None.

    Only where bytes written to the descriptor are what the file object
    would have written: a socket, an io.FileIO, a buffered binary file over
    one, or a text file over those whose encoding writes the dump's ASCII
    as is.  A compressing file object (gzip.GzipFile, bz2, lzma) also has a
    fileno(), of the file under the compression: it gets the bytes through
    its write() instead.
    """
    if isinstance(target, socket.socket):
        return target.fileno()
    layers = [target]
    raw = target
    if isinstance(raw, io.TextIOWrapper):
        try:
            if _PROBE.encode(raw.encoding) != _PROBE.encode("ascii"):
                return None
        except (LookupError, UnicodeError):
            return None
        raw = raw.buffer
        layers.append(raw)
    if isinstance(raw, (io.BufferedWriter, io.BufferedRandom)):
        raw = raw.raw
        layers.append(raw)
    if not isinstance(raw, io.FileIO):
        return None
    for layer in layers:
        layer.flush()
    return raw.fileno()


def _deadline_ms(timeout):
    if timeout is None:
        return -1
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
            or not timeout >= 0:
        raise ValueError("timeout must be None or seconds >= 0, not %r"
                         % (timeout,))
    return int(timeout * 1000)


def _dump(mode, target, root, timeout=None):
    # timeout: seconds for the whole dump to reach a target that may stall
    # (a pipe, a FIFO, a socket); TimeoutError after.
    deadline = _deadline_ms(timeout)
    sys.audit("meliae.scanner.dump", target)
    if isinstance(target, (str, bytes, os.PathLike)):
        path = os.fsencode(target)
        return _scanner.dump_path(mode, path, root, path.endswith(b".gz"),
                                  deadline)
    fd = _direct_fd(target)
    if fd is not None:
        idle = None
        if isinstance(target, socket.socket):
            idle = target.gettimeout()
        return _scanner.dump_fd(mode, fd, root,
                                -1 if idle is None else int(idle * 1000),
                                deadline)
    write = getattr(target, "write", None)
    if callable(write):
        if isinstance(target, io.TextIOBase):
            return _scanner.dump_callable(
                mode, lambda chunk: write(chunk.decode("ascii")), root)
        return _scanner.dump_callable(mode, write, root)
    if callable(target):
        return _scanner.dump_callable(mode, target, root)
    raise TypeError(
        "target must be a path, a file object or a callable taking bytes, "
        "not %s" % type(target).__name__)


class ForkedDump:
    """A dump being written by a child process: dump_all_objects(path,
    fork=True).  The child holds a copy-on-write copy of the heap as it was
    at the call, writes the dump and renames it into place.  Call wait()
    (the child is a zombie until then)."""

    def __init__(self, pid, status_fd, tmp, path):
        self.pid = pid          # the child's
        self.path = path
        self._status_fd = status_fd
        self._tmp = tmp
        self._lock = threading.Lock()
        self._result = None
        self._error = None

    def wait(self, timeout=None):
        """Wait for the dump; return (objects, bytes).

        timeout: seconds (None: no limit); when it passes the child is
        killed and the dump abandoned (TimeoutError).  A child that failed
        raises its error (OSError, ScanError), one killed by a signal
        ChildProcessError; the target is then left as it was.  Later calls
        give the same result.
        """
        with self._lock:
            if self._status_fd is not None:
                fd, self._status_fd = self._status_fd, None
                ms = -1 if timeout is None else max(0, int(timeout * 1000))
                try:
                    self._result = _scanner.wait_child(self.pid, fd, ms)
                except BaseException as e:
                    self._error = e
                    if self._tmp is not None:
                        try:
                            os.unlink(self._tmp)
                        except OSError:
                            pass
            if self._error is not None:
                raise self._error
            return self._result

    def __del__(self):
        # Never waited on: reap the child and close the status pipe
        # without blocking the collector (a thread waits for a child that
        # is still running), else a zombie and an fd last as long as this
        # process.
        fd = getattr(self, "_status_fd", None)
        if fd is None:
            return
        self._status_fd = None
        args = (self.pid, fd, self._tmp)
        try:
            p = select.poll()
            p.register(fd, select.POLLIN)
            done = bool(p.poll(0))  # the report, or the child has exited
        except OSError:
            done = False
        if done:
            _reap(*args)
            return
        try:
            threading.Thread(target=_reap, args=args, daemon=True,
                             name="meliae-reap-%d" % self.pid).start()
        except RuntimeError:
            # Interpreter shutdown: no wait; the process ends anyway and
            # the child still puts a complete dump in place.
            os.close(fd)

    def __repr__(self):
        return "<meliae.scanner.ForkedDump pid=%d %r %s>" % (
            self.pid, self.path,
            "running" if self._status_fd is not None else "done")


def _reap(pid, fd, tmp):
    """Waits for an abandoned ForkedDump's child; removes its temporary
    file if it failed."""
    try:
        _scanner.wait_child(pid, fd, -1)
    except BaseException:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def dump_all_objects(target, fork=False, timeout=None, traces=None):
    """Write every live object, each exactly once, to target.

    Every object the garbage collector tracks and everything they reach
    that it does not track (str, int, float, bytes, untracked tuples and
    dicts, code objects, ...).

    fork=True: target must be a path; the dump is written by a child made
    by fork() while this process goes on (paused only for the fork), and a
    ForkedDump is returned: its wait() gives (objects, bytes) once the file
    is in place.  The child runs no Python code (no atexit handler, no
    finalizer), reports the parent's addresses, and is not tied to the
    calling thread; a registered special-size callable (Python code) makes
    it raise ScanError.  Every page this process writes meanwhile is
    copied, up to the size of the heap.

    A target that may stall (a pipe, a FIFO, a socket, a terminal) gets
    the dump once it is walked (into a temporary file, with the GIL held),
    written without the GIL: other threads run, and the process's signal
    handlers run every 0.1 s of waiting, so one that raises (SIGALRM,
    SIGTERM, Ctrl-C) stops the dump with its exception.  timeout: seconds
    the whole dump may take to reach such a target (None: no limit), then
    TimeoutError.  A path target is written under a temporary name and
    renamed: a failed dump leaves no part of itself there.

    traces=N: birth sites (docs/dump-format.md, "Birth sites").  When
    tracemalloc is tracing, every object it traced gets a "trace" that
    names its allocation traceback in the dump's table; when it is not,
    it is started with N frames (tracemalloc.start(N)), for the objects
    allocated from then on: the next dump has them.  Looking them up walks
    the heap once more and asks tracemalloc for each object, in this
    process, before the dump (fork=True too: the child only writes them).
    """
    frames = _births.check_frames(traces)
    if frames is not None and not _births.start(frames):
        frames = None           # just started: nothing is traced yet
    if frames is not None:
        _births.prepare(_scanner)
    try:
        if not fork:
            _dump(_scanner.WALK_ALL, target, None, timeout)
            return None
        if not isinstance(target, (str, bytes, os.PathLike)):
            raise TypeError("fork=True needs a path target, not %s"
                            % type(target).__name__)
        sys.audit("meliae.scanner.dump", target)
        path = os.fsencode(target)
        pid, status_fd, tmp = _scanner.fork_dump_path(
            _scanner.WALK_ALL, path, None, path.endswith(b".gz"))
        return ForkedDump(pid, status_fd, tmp, target)
    finally:
        if frames is not None:
            _scanner.clear_traces()


def dump_gc_objects(target, timeout=None):
    """Write the collector's objects and their direct untracked referents.

    Uses no memory beyond its output buffer (no seen-set), at the price of
    writing an object once per container that refers to it.  timeout: as
    dump_all_objects'.
    """
    _dump(_scanner.WALK_GC, target, None, timeout)


def dump_all_referenced(target, obj, is_pending=False, timeout=None):
    """Write obj and everything reachable from it, each once; obj first.

    An object's reference to its own class is listed in its refs but not
    followed: through the class and its module, the closure of any instance
    would be most of the heap.

    is_pending=True (meliae 0.5's): obj is an iterable of the objects to
    start from; everything reachable from any of them is written once, the
    iterable itself is not (nor is it changed).
    """
    if is_pending:
        _dump(_scanner.WALK_PENDING, target, list(obj), timeout)
    else:
        _dump(_scanner.WALK_CLOSURE, target, obj, timeout)


def get_recursive_size(obj):
    """Return (count, total_bytes) of obj and everything reachable from it.

    The objects are those dump_all_referenced(target, obj) writes.
    """
    return _scanner.get_recursive_size(obj)


def get_recursive_items(obj):
    """Return obj and everything reachable from it, each once, obj first,
    as a list of the objects themselves (meliae 0.5's).

    The objects are those dump_all_referenced(target, obj) writes.  Unlike
    the dump and get_recursive_size, this builds Python objects: a list
    and a set of ids as long as the closure.
    """
    out = [obj]
    seen = {id(obj)}
    pending = [obj]
    while pending:
        cur = pending.pop()
        own_type = type(cur)
        for ref in _scanner.get_referents(cur):
            if ref is own_type or id(ref) in seen:
                continue
            seen.add(id(ref))
            out.append(ref)
            pending.append(ref)
    return out


def size_of(obj):
    """Return the size the dump records for obj, in bytes.

    sys.getsizeof(obj) for builtin types, computed from the object's layout
    without calling __sizeof__; plus, for an instance whose attribute values
    live in an inline array (CPython 3.11+), that array.
    """
    return _scanner.size_of(obj)


def get_referents(obj):
    """Return the objects the dump lists as obj's refs.

    A superset of gc.get_referents(obj): dicts give [key0, value0, ...],
    instances with inline values [name0, value0, ..., type], code objects
    their constants, names and tables.
    """
    return _scanner.get_referents(obj)


def add_special_size(type_name, size_of_32, size_of_64):
    """Teach the scanner the size of objects whose tp_name is type_name.

    size_of_32 and size_of_64 (for 32- and 64-bit builds) are each an int,
    or a callable taking the object and returning its size: the way to count
    buffers a C type hides from the interpreter (numpy.ndarray, say) without
    importing it.  Callables are called before the heap walk, on the objects
    a first pass found, so they may do anything; one that returns -1 leaves
    that object its usual size (as in meliae 0.5).  None for both
    unregisters type_name.  Raises ScanError while a dump is running.
    """
    _scanner.add_special_size(type_name, size_of_32, size_of_64)
