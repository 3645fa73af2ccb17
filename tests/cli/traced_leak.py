# SPDX-License-Identifier: MIT
"""A leak with birth sites: streams to meliae-monitord with traces=8
(tracemalloc started by stream_to), takes a first snapshot before it
leaks, then keeps 50 more Blob objects (each with a 200-byte bytearray)
every 20 ms in LEAK.

    python3 traced_leak.py SOCKET STATS_JSON

Prints "streaming" once the first snapshot is stored; when its stdin
closes it stops leaking, takes a last snapshot, and writes to STATS_JSON
what tracemalloc itself says of the lines marked BIRTH below
(Snapshot.statistics("lineno"): {"blob": [count, bytes], "buf": [...]}),
so that the test can hold the daemon's birth sites against it.
"""

import json
import sys
import threading
import tracemalloc

from meliae import scanner


class Blob:
    __slots__ = ("buf", "n")

    def __init__(self, n):
        self.buf = bytearray(200)           # BIRTH:buf
        self.n = n


LEAK = []


def grow(n):
    for i in range(n):
        blob = Blob(i)                      # BIRTH:blob
        LEAK.append(blob)


def main():
    st = scanner.stream_to(sys.argv[1], label="traced", traces=8)
    st.snapshot(wait=True, timeout=60)          # before the leak
    done = threading.Event()

    def watch_stdin():
        sys.stdin.read()
        done.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    print("streaming", flush=True)
    k = 0
    while not done.wait(0.02):
        grow(50)
        k += 1
        if k % 10 == 0:
            st.snapshot(wait=True, timeout=60)
    st.snapshot(wait=True, timeout=60)          # the last, as measured
    stats = tracemalloc.take_snapshot().statistics("lineno")
    lines = {}
    with open(__file__) as f:
        for no, text in enumerate(f, 1):
            if "# BIRTH:" in text:
                lines[no] = text.split("# BIRTH:")[1].strip()
    out = {}
    for s in stats:
        fr = s.traceback[0]
        if fr.filename == __file__ and fr.lineno in lines:
            out[lines[fr.lineno]] = [s.count, s.size, fr.lineno]
    with open(sys.argv[2], "w") as f:
        json.dump(out, f)
    st.close()


if __name__ == "__main__":
    main()
