"""MELIAE_STREAM=SECONDS: stream snapshots from interpreter start, for
programs nobody can edit (containers, process managers).

Imported by meliae.pth (installed into site-packages) only when
MELIAE_STREAM is in the environment: unset, the .pth costs one line's
exec.  The socket is $MELIAE_SOCKET's (stream.default_address), the
label $MELIAE_LABEL, else none (the header's program names the process).
No signal handler is installed: servers use SIGUSR2 themselves (gunicorn,
uwsgi).  Forked children stream under their own pid (the Streamer's
at-fork hook).  A bad value is one warning on stderr, never a failure
of the program.
"""

import os
import sys


def _start():
    raw = os.environ.get("MELIAE_STREAM", "")
    try:
        interval = float(raw)
    except ValueError:
        interval = -1.0
    if not interval > 0 or interval == float("inf"):
        sys.stderr.write("meliae: MELIAE_STREAM must be a number of seconds "
                         "above 0, not %r: not streaming\n" % raw)
        return None
    try:
        from meliae import stream
        return stream.stream_to(interval=interval,
                                label=os.environ.get("MELIAE_LABEL") or None)
    except Exception as e:      # never stop the program from starting
        sys.stderr.write("meliae: MELIAE_STREAM: not streaming: %s\n" % (e,))
        return None


streamer = _start()
