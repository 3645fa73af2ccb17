# SPDX-License-Identifier: MIT
"""Birth sites for the loader: ObjManager.birth_sites() and
MemObject.traceback (docs/dump-format.md, "Birth sites").

The loader's C graph keeps no birth sites (they are not part of an
object's record); this reads them from the dump file itself, once, on
first use: the table lines, and for each object line that has a "trace"
its address and traceback id, in two arrays (12 bytes per traced object).
Sites are grouped as the store groups them (store/report_births.c): by
the traceback's first frame, most bytes first, each with the full
traceback of its largest share.
"""

import gzip
import json
from array import array
from bisect import bisect_left

_TRACE = b', "trace": '


def _open(path):
    with open(path, "rb") as f:
        magic = f.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


class Births:
    """The birth sites of one dump file."""

    def __init__(self, path):
        self.table = {}
        pairs = []
        with _open(path) as f:
            for raw in f:
                if raw.startswith(b'{"traceback": '):
                    line = json.loads(raw)
                    self.table[line["traceback"]] = [
                        (fr[0], fr[1], fr[2]) for fr in line["frames"]]
                elif raw.startswith(b'{"address": '):
                    k = raw.find(_TRACE)
                    if k < 0:
                        continue
                    k += len(_TRACE)
                    end = k
                    while raw[end:end + 1].isdigit():
                        end += 1
                    pairs.append((int(raw[12:raw.index(b",")]),
                                  int(raw[k:end])))
        pairs.sort()
        self.addrs = array("Q", (a for a, _ in pairs))
        self.traces = array("L", (t for _, t in pairs))

    def trace_of(self, address):
        i = bisect_left(self.addrs, address)
        if i < len(self.addrs) and self.addrs[i] == address:
            return self.traces[i]
        return None

    def traceback(self, address):
        """[(file, line, function), ...], the allocating frame first, or
        None when the object has no birth site."""
        t = self.trace_of(address)
        return None if t is None else list(self.table.get(t, ()))

    def sites(self, objs, top=5):
        """The birth sites of objs (MemObjects): a list of dicts {"file",
        "line", "function", "count", "bytes", "traceback": [{"file",
        "line", "function"}, ...]}, most bytes first, at most top (0:
        all); objects without a birth site are left out."""
        bytrace = {}
        for o in objs:
            t = self.trace_of(o.address)
            if t is None or t not in self.table or not self.table[t]:
                continue
            c = bytrace.setdefault(t, [0, 0])
            c[0] += 1
            c[1] += o.size
        sites = {}
        for t, (count, size) in sorted(bytrace.items(),
                                       key=lambda kv: -kv[1][1]):
            frames = self.table[t]
            s = sites.get(frames[0])
            if s is None:
                sites[frames[0]] = {
                    "file": frames[0][0], "line": frames[0][1],
                    "function": frames[0][2], "count": count, "bytes": size,
                    "traceback": [{"file": f, "line": n, "function": fn}
                                  for f, n, fn in frames[:10]]}
            else:
                s["count"] += count
                s["bytes"] += size
        out = sorted(sites.values(), key=lambda s: (-s["bytes"], -s["count"]))
        return out[:top] if top else out
