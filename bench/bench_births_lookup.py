"""Birth sites in the application: the lookup by traceback pointer
(scanner/traces.c, 3.12+) against the tuple per object it replaces.

Each run is a fresh interpreter with tracemalloc started (after meliae is
imported, as bench_births.py does) before the heap (bench/workload.py) is
built; then one dump_all_objects(path, traces=N)
is timed, and the process's peak RSS during that dump is read (VmHWM
reset to the current RSS just before it: the growth the snapshot causes,
on top of the heap).  Builds are compared in the same run, rounds
interleaved, best of --repeat:

- old: a build of the baseline (main before this change), given with
  --old PATH (its build dir's scanner folder);
- new: this build (--new PATH);
The resolver (meliae._births.resolve, Python code that names each
distinct frame, the same in both builds) is timed apart, and the dump
less it is the lookup and the walk.

- new, tuple path: this build with _scanner._traces_tuple_only(True),
  the same code as old inside the same module (a check that the figures
  come from the lookup, not from anything else that changed).

  python3 bench/bench_births_lookup.py \\
      --python /root/.pyenv/versions/3.12.1/bin/python3.12 \\
      --old ../wt-base/build-py3.12/scanner --new build-py3.12/scanner \\
      --n 1000000 --frames 8 --repeat 3
"""

import argparse
import json
import os
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = r'''
import gc, json, os, sys, time, tracemalloc
sys.path.insert(0, %(here)r)
import workload, benchproc
from meliae import scanner, _scanner, _births
tracemalloc.start(%(frames)d)
root = workload.build(%(n)d)
if %(tuple_only)r:
    _scanner._traces_tuple_only(True)
# the resolver (Python: names each distinct frame) is timed apart: the
# lookup is what differs between the builds
resolve, spent = _births.resolve, []
def timed(tbs, codes):
    t = time.perf_counter()
    try:
        return resolve(tbs, codes)
    finally:
        spent.append(time.perf_counter() - t)
_births.resolve = timed
gc.collect()
before = benchproc.proc_status("VmRSS")["VmRSS"]
benchproc.reset_hwm()
t0 = time.perf_counter()
scanner.dump_all_objects(%(path)r, traces=%(frames)d)
dt = time.perf_counter() - t0
st = benchproc.proc_status("VmRSS", "VmHWM")
path = getattr(_scanner, "_traces_path", lambda: "tuple (main)")()
n = tb = traced = 0
with open(%(path)r, "rb") as f:
    for raw in f:
        if raw.startswith(b'{"address"'):
            n += 1
            traced += b', "trace": ' in raw
        else:
            tb += 1
print(json.dumps({"dump": dt, "resolve": sum(spent),
                  "rest": dt - sum(spent), "rss_before_kb": before,
                  "peak_kb": st["VmHWM"], "objects": n, "traced": traced,
                  "tracebacks": tb, "path": path}))
'''


def run(python, build, n, frames, tuple_only, tmp):
    path = os.path.join(tmp, "dump.json")
    env = dict(os.environ, PYTHONPATH=os.path.abspath(build))
    code = CHILD % {"here": HERE, "n": n, "frames": frames,
                    "tuple_only": tuple_only, "path": path}
    r = subprocess.run([python, "-c", code], check=True, env=env,
                       stdout=subprocess.PIPE, text=True)
    os.unlink(path)
    return json.loads(r.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", required=True)
    ap.add_argument("--old", required=True, help="baseline build's scanner dir")
    ap.add_argument("--new", required=True, help="this build's scanner dir")
    ap.add_argument("--n", type=int, default=1000000)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    modes = [("old", a.old, False), ("new", a.new, False),
             ("new, tuple path", a.new, True)]
    best = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(a.repeat):
            for name, build, tuple_only in modes:
                r = run(a.python, build, a.n, a.frames, tuple_only, tmp)
                r["grow_kb"] = r["peak_kb"] - r["rss_before_kb"]
                b = best.setdefault(name, r)
                for k in ("dump", "resolve", "rest", "peak_kb",
                          "rss_before_kb", "grow_kb"):
                    b[k] = min(b[k], r[k])
    ver = subprocess.run([a.python, "-c", "import sys; print(sys.version.split()[0])"],
                         check=True, stdout=subprocess.PIPE, text=True).stdout.strip()
    old = best["old"]
    print("Python %s, workload.build(%d), traces=%d, best of %d"
          % (ver, a.n, a.frames, a.repeat))
    print()
    print("| build | path | objects | traced | tracebacks | dump s | dump vs old "
          "| resolver s | dump less resolver s | that vs old | RSS before MiB | peak during dump MiB | peak - before MiB "
          "| growth vs old |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, _, _ in modes:
        b = best[name]
        grow, ogrow = b["grow_kb"], old["grow_kb"]
        print("| %s | %s | %d | %d | %d | %.2f | %.2fx | %.2f | %.2f | %.2fx "
              "| %.0f | %.0f | %.0f | %s |" % (
            name, b["path"], b["objects"], b["traced"], b["tracebacks"],
            b["dump"], b["dump"] / old["dump"], b["resolve"], b["rest"],
            b["rest"] / old["rest"], b["rss_before_kb"] / 1024,
            b["peak_kb"] / 1024, grow / 1024,
            "%.2fx" % (grow / ogrow) if ogrow > 0 else "-"))


if __name__ == "__main__":
    main()
