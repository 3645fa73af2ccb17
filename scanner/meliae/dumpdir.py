"""Dump files into a directory at an interval: `python -m meliae run
--dump-dir DIR`, for when there is no daemon.

One background thread writes DIR/heap-PID-N.json every `interval` seconds,
when the signal arrives, and when snapshot() is called, each with
dump_all_objects(path, fork=True): the process pauses for the fork only,
and a forked child writes the file (rename into place, mode 0600).
Where streams would not fork (MELIAE_FORK=0, not Linux: meliae/stream.py)
the dump is written in-process, the process paused for the walk.  After
os.fork() the child starts its own thread and numbers its own files.
"""

import errno
import logging
import os
import select
import signal as _signal
import threading
import time
import weakref

from meliae import scanner, stream

log = logging.getLogger("meliae")

_dumpers = weakref.WeakSet()


class DirDumper:

    def __init__(self, directory, interval=None, signum=None, traces=None):
        self._traces = traces
        directory = os.fspath(directory)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        if not os.access(directory, os.W_OK | os.X_OK):
            raise OSError(errno.EACCES, "cannot write into %s" % directory)
        self.directory = directory
        self.interval = interval
        self._signum = signum
        self._prev = None
        self._closed = False
        self._init_state()
        if signum is not None:
            self._prev = _signal.signal(signum, self._on_signal)
        _dumpers.add(self)

    def _init_state(self):
        """Fresh thread, wake pipe and numbering (at start, after fork)."""
        self._n = 0
        self._lock = threading.Lock()           # one dump at a time
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="meliae-dumpdir")
        self._thread.start()

    def _on_signal(self, signum, frame):
        # No lock here: the handler may interrupt a thread holding one.
        try:
            os.write(self._wake_w, b"s")
        except OSError:
            pass
        if callable(self._prev):
            self._prev(signum, frame)

    def snapshot(self):
        """Writes one dump now; returns its path."""
        with self._lock:
            self._n += 1
            path = os.path.join(self.directory, "heap-%d-%d.json"
                                % (os.getpid(), self._n))
            if stream._FORK_BY_DEFAULT:
                scanner.dump_all_objects(path, fork=True,
                                         traces=self._traces).wait()
            else:
                scanner.dump_all_objects(path, traces=self._traces)
            return path

    def _run(self):
        stream.block_async_signals()
        next_at = (None if self.interval is None
                   else time.monotonic() + self.interval)
        while not self._closed:
            timeout = (None if next_at is None
                       else max(0.0, next_at - time.monotonic()))
            ready, _, _ = select.select([self._wake_r], [], [], timeout)
            if self._closed:
                break
            if ready:
                os.read(self._wake_r, 512)
            elif next_at is not None:
                next_at = time.monotonic() + self.interval
            try:
                self.snapshot()
            except Exception as e:
                log.warning("meliae: dump into %s failed: %s",
                            self.directory, e)

    def close(self):
        """Stops the thread; restores the signal handler."""
        self._closed = True
        try:
            os.write(self._wake_w, b"c")
        except OSError:
            pass
        if self._thread is not threading.current_thread():
            self._thread.join()
        if (self._signum is not None
                and threading.current_thread() is threading.main_thread()
                and _signal.getsignal(self._signum) == self._on_signal):
            _signal.signal(self._signum, self._prev or _signal.SIG_DFL)
        os.close(self._wake_r)
        os.close(self._wake_w)
        _dumpers.discard(self)

    def _after_fork_child(self):
        if not self._closed:
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._init_state()


def _after_fork_child():
    for d in list(_dumpers):
        d._after_fork_child()


os.register_at_fork(after_in_child=_after_fork_child)
