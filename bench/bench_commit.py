#!/usr/bin/env python3
"""Store commit benchmark (issue 11): st_commit's time and memory.

Times st_commit alone (the spool already written) with
tests/tools/store_tool, for the code under test and for a baseline build
(the parent commit's, say) in the same run, interleaved, so a busy machine
blurs both alike.  Cases:

- heap N: a dump of bench/workload.py's build(N) (a typical heap), written
  once by the scanner of --build and imported with `store_tool import`;
- dict N, list N, set N, shared N: synthetic heaps from `store_tool synth`
  (one container of N entries, 2N refs for a dict; shared: N objects
  referring to one, a child with N parents).

Since issue 21 (point 3) st_commit also computes the dominator tree on
its work thread and stores the retained sizes (store/retained.h): the
"all threads" CPU counts it, "its thread" the records it adds.

Per case and build: the best wall time and the best CPU time of the
committing thread (the CPU figure is the steadier one on a shared VM),
the process's CPU (st_commit runs a second thread), the peak RssAnon
growth during the commit, and the store's bytes per
object (st_size: pages in use, not data.mdb's size, which is the map's
with MDB_WRITEMAP).

  meson setup build-rel -Dbuildtype=release -Dpython=/usr/bin/python3 -Dtests=enabled
  ninja -C build-rel
  git worktree add /tmp/base HEAD~N ... (or git archive | tar -x), build it
  the same way with this tree's tests/tools/store_tool.c, then:
  python3 bench/bench_commit.py --build build-rel --base /tmp/base/build-rel \\
      --case heap:1000000 --case heap:10000000 --case dict:10000000 --repeat 2
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

DUMP = """
import sys
sys.path.insert(0, %r)
import workload
from meliae import scanner
root = workload.build(int(sys.argv[1]))
scanner.dump_all_objects(sys.argv[2])
"""


def make_dump(build, n, path):
    env = dict(os.environ, PYTHONPATH=os.path.join(build, "scanner"))
    subprocess.run([sys.executable, "-c", DUMP % HERE, str(n), path],
                   env=env, check=True)


def run(tool, case, n, dump, tmp):
    store = tempfile.mkdtemp(prefix="store.", dir=tmp)
    try:
        if case == "heap":
            cmd = [tool, "import", store, dump]
        else:
            cmd = [tool, "synth", store, case, str(n)]
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE,
                             universal_newlines=True).stdout
        return json.loads(out.strip().splitlines()[-1])
    finally:
        shutil.rmtree(store, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True, help="build dir under test")
    ap.add_argument("--base", help="baseline build dir (same store_tool.c)")
    ap.add_argument("--case", action="append", default=[],
                    help="KIND:N, KIND in heap dict list set shared")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--tmp", default=None, help="where stores and dumps go")
    ap.add_argument("--dump", default=None,
                    help="heap cases: this dump file instead of a new one")
    args = ap.parse_args()
    cases = args.case or ["heap:1000000"]
    tmp = tempfile.mkdtemp(prefix="mlcommit.", dir=args.tmp)
    builds = [("new", args.build)] + ([("base", args.base)] if args.base else [])
    rows = []
    try:
        for spec in cases:
            case, n = spec.split(":")
            n = int(n)
            dump = None
            if case == "heap" and args.dump:
                dump = args.dump
            elif case == "heap":
                dump = os.path.join(tmp, "heap%d.json" % n)
                make_dump(args.build, n, dump)
            best = {}
            for rnd in range(args.repeat):
                # ABBA: the order alternates, so a drift of the machine
                # (this VM's fresh pages grow dearer as it idles) falls
                # on both builds alike
                for name, build in builds if rnd % 2 == 0 else builds[::-1]:
                    tool = os.path.join(build, "tests", "store_tool")
                    r = run(tool, case, n, dump, tmp)
                    b = best.setdefault(name, dict(r))
                    b["commit_s"] = min(b["commit_s"], r["commit_s"])
                    b["commit_cpu_s"] = min(b["commit_cpu_s"], r["commit_cpu_s"])
                    b["commit_cpu_all_s"] = min(b["commit_cpu_all_s"],
                                                r["commit_cpu_all_s"])
                    b["rss_anon_kib"] = max(b["rss_anon_kib"], r["rss_anon_kib"])
                    b.setdefault("all", []).append(r["commit_cpu_all_s"])
            if dump and not args.dump:
                os.unlink(dump)
            rows.append((spec, best))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("| case | build | objects | commit s (wall) | wall vs base | "
          "commit CPU s (its thread) | CPU s (all threads) | CPU vs base | "
          "RssAnon +MiB | store B/obj |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for spec, best in rows:
        base = best.get("base")
        for name, _ in builds:
            r = best[name]
            mine = base and name != "base"
            wall = ("%.2fx" % (base["commit_s"] / r["commit_s"])
                    if mine and r["commit_s"] > 0 else "")
            ratio = ("%.2fx" % (base["commit_cpu_all_s"] / r["commit_cpu_all_s"])
                     if mine and r["commit_cpu_all_s"] > 0 else "")
            print("| %s | %s | %d | %.2f | %s | %.2f | %.2f | %s | %.1f | %.1f |" % (
                spec, name, r["objects"], r["commit_s"], wall,
                r["commit_cpu_s"], r["commit_cpu_all_s"], ratio,
                r["rss_anon_kib"] / 1024.0,
                r["store_bytes"] / max(1, r["objects"])))
    # The best of a few runs is at the mercy of one lucky run on a noisy
    # machine: the medians of every run too.
    print()
    print("| case | build | runs | CPU s all threads, median | min | max | "
          "median vs base |")
    print("|---|---|---|---|---|---|---|")
    for spec, best in rows:
        base = best.get("base")
        for name, _ in builds:
            v = best[name]["all"]
            grow = ("%+.0f%%" % (100.0 * (statistics.median(v)
                                          / statistics.median(base["all"]) - 1))
                    if base and name != "base" else "")
            print("| %s | %s | %d | %.2f | %.2f | %.2f | %s |" % (
                spec, name, len(v), statistics.median(v), min(v), max(v), grow))


if __name__ == "__main__":
    main()
