"""Birth sites: what traces=N costs (issue 18, point 3).

Each mode runs in a fresh interpreter, interleaved over --repeat rounds:

- off: no tracemalloc;
- traces=1, traces=8: tracemalloc.start(N) before the application runs.

A run builds bench/workload.py's heap (the application: its wall time,
best of the rounds, against "off" of the same rounds is the app slowdown
that tracemalloc itself causes), then takes two dumps of that heap in one
process: dump_all_objects(path) without birth sites and
dump_all_objects(path, traces=N) with them (the lookup pass and the
table; the snapshot's cost), and imports both into fresh stores with
meliae-cli to weigh them (store_tool size: pages in use).

  PYTHONPATH=build/scanner python3 bench/bench_births.py --build build \\
      --n 200000 --repeat 3
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = r'''
import gc, json, os, sys, time, tracemalloc
sys.path.insert(0, %(here)r)
import workload
from meliae import scanner
frames = %(frames)d
if frames:
    tracemalloc.start(frames)
t0 = time.perf_counter()
root = workload.build(%(n)d)
app = time.perf_counter() - t0
gc.collect()
out = {"app": app}
plain, traced = %(plain)r, %(traced)r
t0 = time.perf_counter()
scanner.dump_all_objects(plain)
out["dump"] = time.perf_counter() - t0
if frames:
    t0 = time.perf_counter()
    scanner.dump_all_objects(traced, traces=frames)
    out["dump_traced"] = time.perf_counter() - t0
print(json.dumps(out))
'''


def lines_of(path):
    objs = tables = traced = 0
    with open(path, "rb") as f:
        for raw in f:
            if raw.startswith(b'{"address"'):
                objs += 1
                traced += b', "trace": ' in raw
            else:
                tables += 1
    return objs, tables, traced


def store_bytes(build, path, tmp):
    store = tempfile.mkdtemp(dir=tmp)
    os.rmdir(store)
    subprocess.run([os.path.join(build, "cli", "meliae-cli"), "--store", store,
                    "import", path], check=True, stdout=subprocess.DEVNULL)
    r = subprocess.run([os.path.join(build, "tests", "store_tool"), "size",
                        store], check=True, stdout=subprocess.PIPE, text=True)
    return int(r.stdout.split()[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--n", type=int, default=200000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    modes = [0, 1, 8]
    best = {m: {} for m in modes}
    sizes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(a.repeat):
            for m in modes:
                plain = os.path.join(tmp, "plain-%d.json" % m)
                traced = os.path.join(tmp, "traced-%d.json" % m)
                code = CHILD % {"here": HERE, "frames": m, "n": a.n,
                                "plain": plain, "traced": traced}
                r = subprocess.run([sys.executable, "-c", code], check=True,
                                   stdout=subprocess.PIPE, text=True)
                res = json.loads(r.stdout)
                for k, v in res.items():
                    best[m][k] = min(best[m].get(k, v), v)
                if rnd == 0 and m:
                    objs, tables, ntraced = lines_of(traced)
                    sizes[m] = {
                        "objects": objs, "tracebacks": tables,
                        "traced": ntraced,
                        "file_plain": os.path.getsize(plain),
                        "file_traced": os.path.getsize(traced),
                        "store_plain": store_bytes(a.build, plain, tmp),
                        "store_traced": store_bytes(a.build, traced, tmp)}
                for p in (plain, traced):
                    if os.path.exists(p):
                        os.unlink(p)
    off = best[0]["app"]
    print("N = %d, best of %d; Python %s" % (a.n, a.repeat,
                                             sys.version.split()[0]))
    print()
    print("| mode | app s | app vs off | dump s | dump with traces s | "
          "traced / plain dump |")
    print("|---|---|---|---|---|---|")
    for m in modes:
        b = best[m]
        print("| %s | %.2f | %.2fx | %.2f | %s | %s |" % (
            "off" if m == 0 else "traces=%d" % m, b["app"], b["app"] / off,
            b["dump"], "%.2f" % b["dump_traced"] if m else "-",
            "%.2fx" % (b["dump_traced"] / b["dump"]) if m else "-"))
    print()
    print("| mode | objects | traced | tracebacks | file B/obj plain -> traced "
          "| store B/obj plain -> traced | store +B/obj |")
    print("|---|---|---|---|---|---|---|")
    for m, s in sorted(sizes.items()):
        n = s["objects"]
        print("| traces=%d | %d | %d | %d | %.1f -> %.1f | %.1f -> %.1f | "
              "%+.1f |" % (m, n, s["traced"], s["tracebacks"],
                          s["file_plain"] / n, s["file_traced"] / n,
                          s["store_plain"] / n, s["store_traced"] / n,
                          (s["store_traced"] - s["store_plain"]) / n))


if __name__ == "__main__":
    main()
