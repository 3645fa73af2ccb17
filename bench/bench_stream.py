"""Benchmark of the streaming pipeline (issue 4, section 6).

    python3 bench/bench_stream.py --build BUILDDIR --n 1000000 [--n 3000000]

For each N, in one run against a real meliae-monitord on a fresh store:

- an application process builds bench/workload.py's heap of N objects,
  then takes a file dump of it (dump_all_objects: the baseline) and a
  streamed snapshot (stream_to(...).snapshot(), values='none');
- app pause: the longest gap seen by a ticker thread of the application
  during the snapshot (the GIL is held while the heap is walked);
- end to end: from snapshot() to the daemon's ack; after walk: that less
  the pause, the target being <= 2 s at 1M objects;
- daemon RssAnon: sampled every 5 ms from /proc/PID/status, before and
  during the ingest (target <= 64 MiB);
- store bytes/object: data.mdb's size over the snapshot's objects, and the
  stored key+value bytes (target <= 40);
- with --clients K: K processes of N/K objects stream at once; ingest
  rate against one process of N objects.

Prints a Markdown table; the figures go to bench/RESULTS.md.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))

APP = r"""
import gc, json, os, sys, threading, time
sys.path.insert(0, %(bench)r)
import workload
from meliae import scanner
n, sock, baseline, wait_go = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1", sys.argv[4] == "1"
root = workload.build(n)
gc.collect()
out = {"pid": os.getpid()}
if baseline:
    path = sock + ".%%d.json" %% os.getpid()
    t = time.perf_counter()
    scanner.dump_all_objects(path)
    out["file_s"] = time.perf_counter() - t
    out["file_lines"] = sum(1 for _ in open(path, "rb"))
    os.unlink(path)
st = scanner.stream_to(sock, values="none", timeout=600)
gaps = [0.0]
stop = False
def ticker():
    last = time.perf_counter()
    while not stop:
        time.sleep(0.0005)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
th = threading.Thread(target=ticker, daemon=True)
th.start()
time.sleep(0.05)
if wait_go:
    print("ready", flush=True)
    sys.stdin.readline()
gaps.clear(); gaps.append(0.0)
out["t0"] = time.time()
t = time.perf_counter()
out["id"] = st.snapshot(timeout=600)
out["e2e_s"] = time.perf_counter() - t
out["t1"] = time.time()
stop = True
th.join()
out["pause_s"] = max(gaps)
st.close()
print(json.dumps(out), flush=True)
"""


class RssSampler(threading.Thread):
    """Peak RssAnon (kB) of pid, sampled every 5 ms."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.stop = False

    def read(self):
        try:
            with open("/proc/%d/status" % self.pid) as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def run(self):
        while not self.stop:
            self.peak = max(self.peak, self.read())
            time.sleep(0.005)


def start_daemon(build, tmp):
    store = os.path.join(tmp, "store")
    sock = os.path.join(tmp, "s.sock")
    exe = os.path.join(build, "monitord", "meliae-monitord")
    d = subprocess.Popen([exe, "--store", store, "--socket", sock,
                          "--foreground", "--log-level", "warn"])
    for _ in range(500):
        if os.path.exists(sock):
            break
        time.sleep(0.01)
    else:
        d.kill()
        sys.exit("daemon did not start")
    return d, store, sock


def store_objects(build, store):
    tool = os.path.join(build, "tests", "store_tool")
    out = subprocess.run([tool, "list", store], capture_output=True,
                         text=True, check=True).stdout
    return [json.loads(l) for l in out.splitlines()]


def run_apps(build, sock, sizes, baseline):
    env = dict(os.environ, PYTHONPATH=os.path.join(build, "scanner"))
    many = len(sizes) > 1
    procs = [subprocess.Popen([sys.executable, "-c", APP % {"bench": HERE},
                               str(n), sock, "1" if baseline else "0",
                               "1" if many else "0"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=env) for n in sizes]
    if many:
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
    res = []
    for p in procs:
        line = p.stdout.readline()
        p.wait()
        if p.returncode != 0 or not line:
            sys.exit("application process failed")
        res.append(json.loads(line))
    return res


def one(build, n, clients):
    tmp = tempfile.mkdtemp(prefix="mlbench.")
    try:
        d, store, sock = start_daemon(build, tmp)
        sampler = RssSampler(d.pid)
        idle = sampler.read()
        sampler.start()
        [app] = run_apps(build, sock, [n], baseline=True)
        sampler.stop = True
        sampler.join()
        snaps = store_objects(build, store)
        objects = snaps[-1]["objects"]
        data = os.path.getsize(os.path.join(store, "data.mdb"))
        row = {
            "n": n, "objects": objects, "pause_s": app["pause_s"],
            "e2e_s": app["e2e_s"], "after_walk_s": app["e2e_s"] - app["pause_s"],
            "file_s": app["file_s"], "rss_idle_mib": idle / 1024,
            "rss_peak_mib": sampler.peak / 1024,
            "store_b_per_obj": data / objects,
        }
        if clients > 1:
            sampler = RssSampler(d.pid)
            sampler.start()
            res = run_apps(build, sock, [n // clients] * clients, baseline=False)
            sampler.stop = True
            sampler.join()
            snaps = store_objects(build, store)
            total = sum(s["objects"] for s in snaps[-clients:])
            wall = max(r["t1"] for r in res) - min(r["t0"] for r in res)
            row["clients"] = clients
            row["multi_objects"] = total
            row["multi_wall_s"] = wall
            row["multi_rate"] = total / wall
            row["single_rate"] = objects / app["e2e_s"]
            row["multi_rss_peak_mib"] = sampler.peak / 1024
        d.terminate()
        d.wait(timeout=30)
        return row
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True, help="meson build directory")
    ap.add_argument("--n", type=int, action="append",
                    help="objects (repeatable); default 1000000")
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args()
    rows = [one(args.build, n, args.clients if i == 0 else 1)
            for i, n in enumerate(args.n or [1000000])]
    print("Python %s, %d CPUs, %s" % (platform.python_version(),
                                       os.cpu_count(), platform.platform()))
    print()
    print("| N | objects | app pause s | ack after walk s | end to end s "
          "| file dump s (baseline) | stream/file | daemon RssAnon idle / peak MiB "
          "| store B/obj |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| %d | %d | %.3f | %.3f | %.3f | %.3f | %.2fx | %.1f / %.1f | %.1f |"
              % (r["n"], r["objects"], r["pause_s"], r["after_walk_s"],
                 r["e2e_s"], r["file_s"], r["e2e_s"] / r["file_s"],
                 r["rss_idle_mib"], r["rss_peak_mib"], r["store_b_per_obj"]))
    for r in rows:
        if "clients" in r:
            print()
            print("%d clients x %d objects at once: %d objects in %.3f s = "
                  "%.0f kobj/s (one client of %d: %.0f kobj/s, ratio %.2f); "
                  "daemon RssAnon peak %.1f MiB"
                  % (r["clients"], r["n"] // r["clients"], r["multi_objects"],
                     r["multi_wall_s"], r["multi_rate"] / 1e3, r["n"],
                     r["single_rate"] / 1e3, r["multi_rate"] / r["single_rate"],
                     r["multi_rss_peak_mib"]))
    print()
    print("```json")
    print(json.dumps(rows, indent=1))
    print("```")


if __name__ == "__main__":
    main()
