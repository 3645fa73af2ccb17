# SPDX-License-Identifier: MIT
"""Three small programs whose memory has a known shape, for the trend
test of `meliae-cli growth` (tests/cli/test_cli_trend.py):

    python3 trend_programs.py MODE SOCKET

MODE is the label of its snapshots:

- burst: a module-level list gets 2,000 more Leaked objects in each of the
  first 10 steps, nothing in the last 2: a leak that comes in bursts;
- cache: an LRU cache (OrderedDict, 500 entries) gets 1,000 new keys in
  each step and evicts the oldest, so it is full from the first step on;
  and a batch list that fills for 3 steps and is flushed on the 4th
  (sawtooth);
- steady: each step serves 2,000 requests whose objects are all dropped.

Each step ends with a snapshot taken and stored (Streamer.snapshot()), so
the shape in the store is exactly the one above: 12 snapshots.  Prints
"done" and exits.
"""

import collections
import sys

from meliae import scanner

STEPS = 12
GROWING = 10


class Leaked:
    def __init__(self, n):
        self.n = n
        self.payload = "x" * 40 + str(n)


class LruEntry:
    def __init__(self, key):
        self.key = key
        self.payload = "y" * 40 + str(key)


class BatchItem:
    def __init__(self, n):
        self.n = n


class Request:
    def __init__(self, n):
        self.n = n
        self.headers = {"path": "/r/%d" % n}


LEAK = []
LRU = collections.OrderedDict()
LRU_MAX = 500
BATCH = []


def step(mode, k):
    if mode == "burst":
        if k < GROWING:
            LEAK.extend(Leaked(k * 10000 + i) for i in range(2000))
    elif mode == "cache":
        for i in range(1000):
            key = k * 1000 + i
            LRU[key] = LruEntry(key)
            LRU.move_to_end(key)
            while len(LRU) > LRU_MAX:
                LRU.popitem(last=False)
        if k % 4 == 3:
            BATCH.clear()
        else:
            BATCH.extend(BatchItem(i) for i in range(1500))
    elif mode == "steady":
        done = 0
        for i in range(2000):
            r = Request(k * 2000 + i)
            done += len(r.headers["path"])
    else:
        raise SystemExit("unknown mode %r" % mode)


def main():
    mode, sock = sys.argv[1], sys.argv[2]
    st = scanner.stream_to(sock, label=mode)
    try:
        for k in range(STEPS):
            step(mode, k)
            st.snapshot(wait=True, timeout=60)
    finally:
        st.close()
    print("done", flush=True)


if __name__ == "__main__":
    main()
