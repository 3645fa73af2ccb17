"""What `meliae-cli attach` and `detach` run inside a process that never
imported meliae (cli/attach.c drops a script that puts this package on
sys.path and calls start() or stop()).

Both return at once: they may run on the application's main thread,
from gdb or at the interpreter's next safe point (PEP 768), and the
application must not wait for the daemon.  The work happens on a
thread of its own, which reports to the status file the CLI waits on:
one JSON object, {"snapshot": id} or {"detached": true} or
{"error": "one line"}, written beside and renamed into place.
"""

import json
import os
import threading

# The streamer attach started (and detach stops); one per process.
_attached = None
_lock = threading.Lock()


def _report(status, **answer):
    tmp = "%s.%d.tmp" % (status, os.getpid())
    with open(tmp, "w") as f:
        json.dump(answer, f)
    os.replace(tmp, status)


def _in_thread(status, work):
    def run():
        try:
            _report(status, **work())
        except Exception as e:
            try:
                _report(status, error=str(e) or type(e).__name__)
            except OSError:
                pass        # the CLI gave up and removed its directory
    threading.Thread(target=run, name="meliae-attach", daemon=True).start()


def start(status, address, interval, label, timeout):
    """Streams snapshots to address every interval seconds (None: one
    snapshot, then the streamer is closed: attach --once); reports the
    first snapshot's id."""
    def work():
        global _attached
        from meliae import stream
        with _lock:
            if interval is not None and _attached is not None \
                    and not _attached.closed:
                raise RuntimeError(
                    "already attached: streaming to %s every %g s (meliae-cli "
                    "detach %d first)" % (_attached.address,
                                          _attached.interval, os.getpid()))
            s = stream.stream_to(address, interval=interval, label=label,
                                 timeout=timeout)
            if interval is not None:
                _attached = s
        try:
            return {"snapshot": s.snapshot(timeout=timeout)}
        except BaseException:
            if interval is not None:
                stop_now()
            raise
        finally:
            if interval is None:
                s.close()
    _in_thread(status, work)


def stop_now():
    """Closes the streamer start() left running; True if there was one."""
    global _attached
    with _lock:
        s, _attached = _attached, None
    if s is None or s.closed:
        return False
    s.close()       # joins its thread; the socket is closed
    return True


def stop(status):
    def work():
        if not stop_now():
            raise RuntimeError("not attached: no streamer started by "
                               "meliae-cli attach in process %d"
                               % os.getpid())
        return {"detached": True}
    _in_thread(status, work)
