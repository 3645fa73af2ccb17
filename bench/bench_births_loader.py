"""The loader's birth sites: ObjManager.birth_sites() on a traced dump,
one tree against another (its main before, this one after), same run.

Step 1: a child builds bench/workload.py's heap under tracemalloc.start(1)
and writes it with dump_all_objects(path, traces=1); the file is kept
for every round (--dump FILE reuses one).

Step 2: each measurement is a fresh interpreter with one tree's
PYTHONPATH, the trees interleaved over --repeat rounds.  It loads the
dump (load(), collapse as by default), builds the MemObjects of every
object (not timed), then times:

  first   om.birth_sites(objs, top=0): the first call, what a user waits
          for (before: the second reading of the dump file in Python,
          then the grouping; after: the grouping of the C arrays);
  again   the same call once more (before: the table is read; after: the
          same as first);
  tb      .traceback of 100 000 of the objects (every k-th).

and reports load()'s time and VmRSS after load (the trace array: 4 bytes
an object of a traced dump).  The best of the rounds; ratios old/new.

  PYTHONPATH=build/scanner python3 bench/bench_births_loader.py \\
      --old /work/wt-births-base/build/scanner --new build/scanner \\
      --n 6.5e5 --repeat 3
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

DUMP = r'''
import gc, sys, tracemalloc
sys.path.insert(0, %(here)r)
tracemalloc.start(1)
import workload
from meliae import scanner
root = workload.build(%(n)d)
gc.collect()
scanner.dump_all_objects(%(path)r, traces=1)
'''

MEASURE = r'''
import gc, json, sys, time
from meliae import loader

def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024

gc.collect()
r0 = rss()
t0 = time.perf_counter()
om = loader.load(%(path)r, show_prog=False)
out = {"load": time.perf_counter() - t0, "rss_load": rss() - r0,
       "objects": len(om)}
objs = list(om.objs.values())
t0 = time.perf_counter()
sites = om.birth_sites(objs, top=0)
out["first"] = time.perf_counter() - t0
t0 = time.perf_counter()
again = om.birth_sites(objs, top=0)
out["again"] = time.perf_counter() - t0
assert again == sites
t0 = time.perf_counter()
step = max(1, len(objs) // 100000)
ntb = sum(1 for o in objs[::step][:100000] if o.traceback is not None)
out["tb"] = time.perf_counter() - t0
out["ntb"] = ntb
out["nsites"] = len(sites)
out["traced"] = sum(s["count"] for s in sites)
out["digest"] = hash(json.dumps(sites, sort_keys=True))
print(json.dumps(out))
'''


def measure(pythonpath, path):
    env = dict(os.environ, PYTHONPATH=pythonpath, PYTHONHASHSEED="0")
    p = subprocess.run([sys.executable, "-c", MEASURE % {"path": path}],
                       env=env, stdout=subprocess.PIPE, check=True)
    return json.loads(p.stdout.decode().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--old", required=True, help="PYTHONPATH of the baseline")
    ap.add_argument("--new", required=True, help="PYTHONPATH of this tree")
    ap.add_argument("--n", type=lambda s: int(float(s)), default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dump", help="a traced dump to reuse")
    args = ap.parse_args()
    tmp = None
    path = args.dump
    if path is None:
        tmp = tempfile.mkdtemp()
        path = os.path.join(tmp, "traced.json")
        env = dict(os.environ, PYTHONPATH=os.path.abspath(args.new))
        subprocess.run([sys.executable, "-c",
                        DUMP % {"here": HERE, "n": args.n, "path": path}],
                       env=env, check=True)
    try:
        runs = {"old": [], "new": []}
        for r in range(args.repeat):
            for tree in ("old", "new"):
                m = measure(os.path.abspath(getattr(args, tree)), path)
                runs[tree].append(m)
                print("round %d %s: %s" % (r + 1, tree, json.dumps(m)),
                      file=sys.stderr)
        old, new = runs["old"], runs["new"]
        assert {m["digest"] for m in old + new} == {old[0]["digest"]}, \
            "the trees give different birth sites"
        size = os.path.getsize(path)
        print("dump: %s objects, %.0f MB, %d traced objects, %d sites"
              % (new[0]["objects"], size / 1e6, new[0]["traced"],
                 new[0]["nsites"]))
        print()
        print("| best of %d | old | new | old/new |" % args.repeat)
        print("|---|---|---|---|")
        for k, label in (("first", "birth_sites(all), first call (s)"),
                         ("again", "birth_sites(all), again (s)"),
                         ("tb", ".traceback of 100 000 objects (s)"),
                         ("load", "load() (s)")):
            a = min(m[k] for m in old)
            b = min(m[k] for m in new)
            print("| %s | %.3f | %.3f | %.1f |" % (label, a, b, a / b))
        a = max(m["rss_load"] for m in old) / new[0]["objects"]
        b = max(m["rss_load"] for m in new) / new[0]["objects"]
        print("| VmRSS after load (B/object) | %.1f | %.1f | %.2f |"
              % (a, b, a / b))
    finally:
        if tmp is not None:
            for f in os.listdir(tmp):
                os.unlink(os.path.join(tmp, f))
            os.rmdir(tmp)


if __name__ == "__main__":
    main()
