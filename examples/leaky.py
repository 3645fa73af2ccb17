"""A small program with a leak, dumped with meliae.scanner.

A request handler caches every parsed request in a module-level dict that is
never evicted.  After serving some requests, the program dumps its own heap
and summarises the dump: object count, and the types holding most bytes.
(`meliae.loader` will do the summarising; until then a few lines here.)
"""

import collections
import json
import sys
import time

from meliae import scanner

_cache = {}


class Request:
    def __init__(self, rid, path, headers):
        self.rid = rid
        self.path = path
        self.headers = headers


def handle(rid):
    req = Request(rid, "/item/%d" % rid,
                  {"user-agent": "demo/1.0", "x-request-id": "req-%08d" % rid})
    _cache[rid] = req           # the leak: never evicted
    return len(req.path)


def summarize(path):
    counts = collections.Counter()
    sizes = collections.Counter()
    n = total = 0
    with open(path) as f:
        for line in f:
            o = json.loads(line)
            counts[o["type"]] += 1
            sizes[o["type"]] += o["size"]
            n += 1
            total += o["size"]
    print("Total %d objects, %d types, Total size = %.1fMiB (%d bytes)"
          % (n, len(counts), total / 1048576.0, total))
    print(" Index   Count   %      Size   % Kind")
    for i, (kind, size) in enumerate(sizes.most_common(10)):
        print("%6d %7d %3d %9d %3d %s" % (i, counts[kind], 100 * counts[kind] // n,
                                          size, 100 * size // total, kind))


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "leaky-dump.json"
    for rid in range(20000):
        handle(rid)
    t = time.perf_counter()
    scanner.dump_all_objects(path)
    t = time.perf_counter() - t
    print("dumped the heap of pid %d to %s in %.2f s" % (__import__("os").getpid(), path, t))
    summarize(path)


if __name__ == "__main__":
    main()
