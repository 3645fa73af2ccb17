# SPDX-License-Identifier: MIT
"""Small programs whose memory has a known shape over time, for the
report's verdict and the diff's accumulation points
(tests/cli/test_cli_verdict.py):

    python3 verdict_programs.py MODE SOCKET

MODE is the label of its snapshots.  Each takes STEPS snapshots (stored:
Streamer.snapshot(wait=True)), one every PERIOD seconds on its own clock:

- nested: a module-level list gets 300 new Node objects a step, each
  holding a new Block holding a new bytes: nested new structures that
  hang off one old list;
- leak: a module-level list gets 400 new Leak objects a step (each with
  its own str): a steady leak;
- burst: a module-level list gets 3,000 new Burst objects at steps 0, 4,
  8 and 12, and nothing between: a leak in bursts that keeps what it got;
- warmup: a bounded cache (a dict of at most 3,500 entries) fills by 500
  CacheEntry objects a step for its first 7 steps, then holds steady
  (each step replaces 500 entries by new ones of the same size).

Prints "list ADDRESS" (the module-level container, id()), then, after the
last snapshot, "rate R" (the objects the program added per second between
its first and last snapshot, on its own clock) and "done".
"""

import os
import sys
import time

from meliae import scanner

STEPS = 16
PERIOD = 0.5


class Node:
    def __init__(self, n):
        self.n = n
        self.block = Block(n)


class Block:
    def __init__(self, n):
        self.data = os.urandom(48)


class Leak:
    def __init__(self, n):
        self.tag = "leak-%d" % n


class Burst:
    def __init__(self, n):
        self.tag = "burst-%d" % n


class CacheEntry:
    def __init__(self, n):
        self.payload = "entry-%08d" % n


HELD = []
CACHE = {}
CACHE_MAX = 3500


def step(mode, k):
    """The objects added (and kept) at step k."""
    if mode == "nested":
        HELD.extend(Node(k * 1000 + i) for i in range(300))
        return 300
    if mode == "leak":
        HELD.extend(Leak(k * 1000 + i) for i in range(400))
        return 400
    if mode == "burst":
        if k % 4 == 0:
            HELD.extend(Burst(k * 10000 + i) for i in range(3000))
            return 3000
        return 0
    if mode == "warmup":
        for i in range(500):
            n = k * 1000 + i
            if len(CACHE) >= CACHE_MAX:
                del CACHE[next(iter(CACHE))]
            CACHE[n] = CacheEntry(n)
        return 0
    raise SystemExit("unknown mode %r" % mode)


def main():
    mode, sock = sys.argv[1], sys.argv[2]
    # no local names the list: its path is the module's global
    print("list %d" % id(CACHE if mode == "warmup" else HELD), flush=True)
    st = scanner.stream_to(sock, label=mode)
    added, times = [], []
    start = time.monotonic()
    try:
        for k in range(STEPS):
            # steps on a fixed schedule: the snapshots' times are even
            # whatever a snapshot costs, as long as it costs less
            delay = start + k * PERIOD - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            added.append(step(mode, k))
            times.append(time.monotonic())
            st.snapshot(wait=True, timeout=60)
    finally:
        st.close()
    # the objects added after the first snapshot, over the time between
    # the first snapshot and the last
    print("rate %.6f" % (sum(added[1:]) / (times[-1] - times[0])), flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main()
