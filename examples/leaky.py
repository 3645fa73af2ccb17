"""A small program with a leak, dumped with meliae.scanner.

A request handler caches every parsed request in a module-level dict that is
never evicted.  After serving some requests, the program dumps its own heap;
then a second process (as a user would run it) loads the dump with
meliae.loader and shows what holds the memory and who keeps it alive.
"""

import os
import subprocess
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


ANALYSE = r"""
import sys
from meliae import loader
om = loader.load(sys.argv[1], show_prog=False)
s = om.summarize()
print(s)
top = s.summaries[0]
print()
print("The top consumer is %s: %d objects, %d bytes." % (
    top.type_str, top.count, top.total_size))
leak = om[top.max_address]
print("the largest:", leak)
# Who keeps it alive: follow referrers up to a module.
chain, o = [leak], leak
while len(chain) < 6 and o.p:
    mods = [p for p in o.p if p.type_str == "module"]
    o = mods[0] if mods else o.p[0]
    chain.append(o)
    if o.type_str == "module":
        break
print("kept alive by: " + " <- ".join(
    "%s@%d (%d bytes%s)" % (c.type_str, c.address, c.size,
                            ", " + c.name if c.name else "")
    for c in chain))
"""


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "leaky-dump.json"
    for rid in range(20000):
        handle(rid)
    t = time.perf_counter()
    scanner.dump_all_objects(path)
    t = time.perf_counter() - t
    print("dumped the heap of pid %d to %s in %.2f s" % (os.getpid(), path, t))
    print()
    sys.stdout.flush()
    subprocess.run([sys.executable, "-c", ANALYSE, path], check=True)


if __name__ == "__main__":
    main()
