# SPDX-License-Identifier: MIT
"""A program for test_cli_paths: a bus of listeners, a dict of sessions
keyed by data strings (made at run time: not interned), an lru_cache, a
thread named 'collector' blocked in worker() with a buffer in a local and
one in a threading.local, a suspended generator with one; streams one snapshot with values "none"
(the default) to the daemon, prints the addresses to look up and the
lines of worker() and gen() as JSON, then waits for stdin to close.

    python3 paths_app.py SOCKET
"""

import functools
import json
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from meliae import scanner  # noqa: E402


class Listener(object):
    pass


class EventBus(object):
    def __init__(self):
        self.subscribers = []


BUS = EventBus()
for _i in range(40):
    BUS.subscribers.append(Listener())


class Session(object):
    pass


_SESSIONS = {}
for _i in range(5):
    _SESSIONS[os.urandom(4).hex()] = Session()


@functools.lru_cache(maxsize=None)
def render(n):
    return bytearray(n)


render(77)
ready = threading.Event()
done = threading.Event()
HELD = {}


LOCAL = threading.local()


def worker():
    buf = bytearray(4321)
    HELD["buf"] = id(buf)
    LOCAL.tbuf = bytearray(6543)        # this thread's, in the local
    HELD["tbuf"] = id(LOCAL.tbuf)
    HELD["worker_line"] = sys._getframe().f_lineno + 2
    ready.set()
    done.wait()


def gen():
    gbuf = bytearray(5432)
    HELD["gbuf"] = id(gbuf)
    HELD["gen_line"] = sys._getframe().f_lineno + 1
    yield 1
    yield 2


def main():
    # held by the module only (a local of main() would be a shorter
    # path, from main's frame)
    globals()["G"] = gen()
    next(globals()["G"])
    t = threading.Thread(target=worker, name="collector")
    t.start()
    ready.wait()
    st = scanner.stream_to(sys.argv[1], interval=3600, label="paths")
    st.snapshot()
    key = next(iter(_SESSIONS))
    print(json.dumps({"listener": id(BUS.subscribers[17]),
                      "session": id(_SESSIONS[key]), "session_key": id(key),
                      "cached": id(render(77)),
                      "buf": HELD["buf"], "gbuf": HELD["gbuf"],
                      "tbuf": HELD["tbuf"],
                      "worker_line": HELD["worker_line"],
                      "gen_line": HELD["gen_line"]}), flush=True)
    sys.stdin.read()
    done.set()
    t.join()
    st.close()


if __name__ == "__main__":
    main()
