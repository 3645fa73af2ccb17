"""Benchmark of the streaming pipeline (issue 4, section 6).

    python3 bench/bench_stream.py --build BUILDDIR --n 1000000 [--n 3000000]

For each N, in one run against a real meliae-monitord on a fresh store:

- an application process builds bench/workload.py's heap of N objects,
  then takes a file dump of it (dump_all_objects: the baseline) and a
  streamed snapshot (stream_to(...).snapshot(), values='none');
- app pause: the longest gap seen by a ticker thread of the application
  during the snapshot (the GIL is held while the heap is walked);
- end to end: from snapshot() to the daemon's ack; after walk: that less
  the pause, the target being <= 2 s at 1M objects (in fork mode the
  pause is the fork and the walk runs after it: the fork table adds the
  ack after the trailer's arrival, from the daemon's log, which is when
  the child's walk ends);
- daemon RssAnon: sampled every 5 ms from /proc/PID/status, before and
  during the ingest (target <= 64 MiB);
- store bytes/object: the store's pages in use (store_tool size) over the snapshot's objects, and the
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
from meliae import scanner
spec, sock = sys.argv[1], sys.argv[2]
baseline, modes, touch = sys.argv[3] == "1", sys.argv[4].split(","), sys.argv[5] == "1"
if spec.startswith("big:"):
    # One dict of D int -> int entries and one list of L ints (issue 11).
    d, l = (int(x) for x in spec[4:].split(","))
    base = 10 ** 12
    root = {"dict": dict(zip(range(base, base + d), range(-base - d, -base))),
            "list": list(range(2 * base, 2 * base + l))}
    containers = [root["dict"], root["list"]]
else:
    import workload
    root = workload.build(int(spec))
    containers = [root[k] for k in ("records", "groups", "texts", "blobs",
                                    "tables", "index")]
gc.collect()
out = {"pid": os.getpid(), "modes": {}}
if baseline:
    path = sock + ".%%d.json" %% os.getpid()
    t = time.perf_counter()
    scanner.dump_all_objects(path)
    out["file_s"] = time.perf_counter() - t
    out["file_lines"] = sum(1 for _ in open(path, "rb"))
    os.unlink(path)
if "fork" in modes:
    # The kernel's price of a fork of this process, for reference.
    forks = []
    for _ in range(3):
        t = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        forks.append(time.perf_counter() - t)
        os.waitpid(pid, 0)
    out["bare_fork_s"] = min(forks)
    # How long the streamer's thread holds the GIL to fork: the pause
    # as the application's threads see it, less the OS's scheduling.
    from meliae import _scanner
    real_fork = _scanner.fork_stream_snapshot
    fork_calls = []
    def timed_fork(*a):
        t = time.perf_counter()
        try:
            return real_fork(*a)
        finally:
            fork_calls.append(time.perf_counter() - t)
    _scanner.fork_stream_snapshot = timed_fork
gaps = [0.0]
stop = False
touched = [0]
def ticker():
    last = time.perf_counter()
    while not stop:
        time.sleep(0.0005)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
def mutator():
    # The application goes on using its heap: iterating a container writes
    # the reference count of every object in it, so each page it touches
    # is copied while a fork child lives.
    while not stop:
        for c in containers:
            k = 0
            for x in c:
                k += 1
                if k & 65535 == 0 and stop:
                    break
            touched[0] += k
            if stop:
                break
for mode in modes:
    st = scanner.stream_to(sock, values="none", timeout=600,
                           fork=mode.startswith("fork"))
    stop = False
    touched[0] = 0
    threads = [threading.Thread(target=ticker, daemon=True)]
    if touch:
        threads.append(threading.Thread(target=mutator, daemon=True))
    for th in threads:
        th.start()
    time.sleep(0.05)
    # The noise floor: the ticker's longest gap with no snapshot.
    gaps.clear(); gaps.append(0.0)
    time.sleep(1.0)
    idle_gap = max(gaps)
    print("ready", mode, flush=True)
    sys.stdin.readline()
    gaps.clear(); gaps.append(0.0)
    touched[0] = 0
    r = {"t0": time.time()}
    t = time.perf_counter()
    try:
        r["id"] = st.snapshot(timeout=600)
    except scanner.StreamError as e:
        r["error"] = "%%s (code %%s)" %% (e, e.code)
    r["e2e_s"] = time.perf_counter() - t
    r["t1"] = time.time()
    r["touched"] = touched[0]
    stop = True
    for th in threads:
        th.join()
    r["pause_s"] = max(gaps)
    r["idle_gap_s"] = idle_gap
    if mode.startswith("fork") and fork_calls:
        r["fork_call_s"] = fork_calls.pop()
    st.close()
    out["modes"][mode] = r
    print("done", mode, flush=True)
print(json.dumps(out), flush=True)
"""


def smaps(pid):
    """{"Rss": kB, "Private_Dirty": kB, ...} of /proc/PID/smaps_rollup."""
    res = {}
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[2] == "kB":
                    res[parts[0].rstrip(":")] = int(parts[1])
    except OSError:
        pass
    return res


def children(pid):
    kids = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                kids.extend(int(k) for k in f.read().split())
    except OSError:
        pass
    return kids


class CowSampler(threading.Thread):
    """While the application (pid) has a child -- a fork snapshot -- reads
    smaps_rollup of both every 50 ms: peaks of the parent's Private_Dirty
    (pages it wrote since the fork: copies) and Rss, and the child's
    Private_Dirty (the walk's own memory).  Polls for the child every
    5 ms and reads nothing while there is none, so as not to take the
    application's mmap lock around its fork()."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.stop = False
        self.parent_dirty = self.parent_rss = self.child_dirty = 0
        self.samples = 0

    def run(self):
        while not self.stop:
            kids = children(self.pid)
            if not kids:
                time.sleep(0.005)
                continue
            p = smaps(self.pid)
            c = smaps(kids[0])
            self.samples += 1
            self.parent_dirty = max(self.parent_dirty,
                                    p.get("Private_Dirty", 0))
            self.parent_rss = max(self.parent_rss, p.get("Rss", 0))
            self.child_dirty = max(self.child_dirty,
                                   c.get("Private_Dirty", 0))
            time.sleep(0.05)


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
    # info: its snapshot_stored lines say how long each commit took
    log = open(os.path.join(tmp, "daemon.log"), "w")
    d = subprocess.Popen([exe, "--store", store, "--socket", sock,
                          "--foreground", "--log-level", "info"], stderr=log)
    log.close()
    for _ in range(500):
        if os.path.exists(sock):
            break
        time.sleep(0.01)
    else:
        d.kill()
        sys.exit("daemon did not start")
    return d, store, sock


def acks_after_trailer(tmp):
    """id -> seconds from the trailer's arrival to the ack (the daemon's
    snapshot_stored line: queued_ms + commit_ms).  In fork mode the child
    sends as it walks (its socket blocks when the daemon lags), so the
    trailer arrives as its walk ends: this is the ack after the walk."""
    res = {}
    with open(os.path.join(tmp, "daemon.log")) as f:
        for line in f:
            if " snapshot_stored " not in line:
                continue
            kv = dict(w.split("=", 1) for w in line.split() if "=" in w)
            res[int(kv["id"])] = (int(kv["queued_ms"])
                                  + int(kv["commit_ms"])) / 1000.0
    return res


def store_bytes(build, store):
    """The store's bytes in use (tests/tools/store_tool size: st_size)."""
    tool = os.path.join(build, "tests", "store_tool")
    return int(subprocess.run([tool, "size", store], check=True,
                              capture_output=True, text=True).stdout)


def store_objects(build, store):
    tool = os.path.join(build, "tests", "store_tool")
    out = subprocess.run([tool, "list", store], capture_output=True,
                         text=True, check=True).stdout
    return [json.loads(l) for l in out.splitlines()]


def run_apps(build, sock, specs, baseline, modes, touch, cow=False):
    """Runs one application per spec (N, or "big:D,L"); each takes a
    snapshot per mode, all applications at the same moment.  Returns their
    results; with cow, the first one's copy-on-write figures per mode."""
    env = dict(os.environ, PYTHONPATH=os.path.join(build, "scanner"))
    procs = [subprocess.Popen([sys.executable, "-c", APP % {"bench": HERE},
                               str(spec), sock, "1" if baseline else "0",
                               ",".join(modes), "1" if touch else "0"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=env) for spec in specs]
    cows = {}
    for mode in modes:
        for p in procs:
            line = p.stdout.readline().split()
            if line != ["ready", mode]:
                sys.exit("application process failed: %r" % (line,))
        sampler = None
        if cow and mode == "forkcow":
            before = smaps(procs[0].pid)
            sampler = CowSampler(procs[0].pid)
            sampler.start()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in procs:
            line = p.stdout.readline().split()
            if line != ["done", mode]:
                sys.exit("application process failed: %r" % (line,))
        if sampler is not None:
            sampler.stop = True
            sampler.join()
            cows[mode] = {
                "rss_before_mib": before.get("Rss", 0) / 1024,
                "dirty_before_mib": before.get("Private_Dirty", 0) / 1024,
                "parent_dirty_peak_mib": sampler.parent_dirty / 1024,
                "parent_rss_peak_mib": sampler.parent_rss / 1024,
                "child_dirty_peak_mib": sampler.child_dirty / 1024,
                "samples": sampler.samples,
            }
    res = []
    for p in procs:
        line = p.stdout.readline()
        p.wait()
        if p.returncode != 0 or not line:
            sys.exit("application process failed")
        res.append(json.loads(line))
    return res, cows


def one(build, spec, clients, modes, touch, baseline):
    tmp = tempfile.mkdtemp(prefix="mlbench.")
    try:
        d, store, sock = start_daemon(build, tmp)
        sampler = RssSampler(d.pid)
        idle = sampler.read()
        sampler.start()
        [app], cows = run_apps(build, sock, [spec], baseline, modes, touch,
                               cow=True)
        sampler.stop = True
        sampler.join()
        snaps = store_objects(build, store)
        after_trailer = acks_after_trailer(tmp)
        row = {"spec": spec, "rss_idle_mib": idle / 1024,
               "rss_peak_mib": sampler.peak / 1024,
               "file_s": app.get("file_s"),
               "bare_fork_s": app.get("bare_fork_s"), "modes": {}}
        for mode in modes:
            r = app["modes"][mode]
            m = {"pause_s": r["pause_s"], "e2e_s": r["e2e_s"],
                 "idle_gap_s": r["idle_gap_s"],
                 "fork_call_s": r.get("fork_call_s"),
                 "after_walk_s": r["e2e_s"] - r["pause_s"],
                 "after_trailer_s": after_trailer.get(r.get("id")),
                 "error": r.get("error"), "id": r.get("id"),
                 "touched_per_s": r["touched"] / r["e2e_s"]}
            m.update(cows.get(mode, {}))
            snap = [x for x in snaps if x.get("id") == r.get("id")]
            if snap:
                m["objects"] = snap[0]["objects"]
            row["modes"][mode] = m
        ok = [m for m in row["modes"].values() if "objects" in m]
        if ok:
            row["objects"] = ok[0]["objects"]
            # Pages in use (st_size), not data.mdb's size: with
            # MDB_WRITEMAP the file is as large as the map.
            data = store_bytes(build, store)
            # The store holds every acked snapshot of this run.
            row["store_b_per_obj"] = data / sum(m["objects"] for m in ok)
        if clients > 1 and not str(spec).startswith("big:"):
            n = int(spec)
            sampler = RssSampler(d.pid)
            sampler.start()
            res, _ = run_apps(build, sock, [n // clients] * clients, False,
                              ["inproc"], False)
            sampler.stop = True
            sampler.join()
            snaps = store_objects(build, store)
            total = sum(s["objects"] for s in snaps[-clients:])
            rs = [r["modes"]["inproc"] for r in res]
            wall = max(r["t1"] for r in rs) - min(r["t0"] for r in rs)
            single = row["modes"].get("inproc")
            row["clients"] = clients
            row["multi_objects"] = total
            row["multi_wall_s"] = wall
            row["multi_rate"] = total / wall
            if single and "objects" in single:
                row["single_rate"] = single["objects"] / single["e2e_s"]
            row["multi_rss_peak_mib"] = sampler.peak / 1024
        d.terminate()
        d.wait(timeout=30)
        return row
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fmt(v, f="%.3f"):
    return "-" if v is None else f % v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True, help="meson build directory")
    ap.add_argument("--n", type=int, action="append",
                    help="objects (repeatable); default 1000000")
    ap.add_argument("--big", action="append", metavar="D,L",
                    help="the big-container case: one dict of D int->int "
                    "entries and a list of L ints (repeatable), e.g. "
                    "3000000,5000000")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--modes", default="inproc,fork,forkcow",
                    help="snapshots, in order: inproc (fork=False), fork "
                    "(fork=True: the pause), forkcow (fork=True while the "
                    "harness reads smaps_rollup, which takes the "
                    "application's mmap lock: the copy-on-write figures); "
                    "default all three")
    ap.add_argument("--no-touch", action="store_true",
                    help="no mutator thread during the snapshots")
    ap.add_argument("--no-file", action="store_true",
                    help="skip the file-dump baseline")
    args = ap.parse_args()
    modes = args.modes.split(",")
    if not set(modes) <= {"inproc", "fork", "forkcow"}:
        ap.error("--modes: inproc, fork, forkcow")
    specs = list(args.n or ([] if args.big else [1000000]))
    specs += ["big:" + b for b in args.big or []]
    rows = [one(args.build, spec, args.clients if i == 0 else 1, modes,
                not args.no_touch, not args.no_file)
            for i, spec in enumerate(specs)]
    print("Python %s, %d CPUs, %s" % (platform.python_version(),
                                       os.cpu_count(), platform.platform()))
    print()
    main_mode = "inproc" if "inproc" in modes else modes[0]
    print("Mode %s:" % main_mode)
    print()
    print("| N | objects | app pause s | ack after walk s | of which after "
          "the trailer s | end to end s "
          "| file dump s (baseline) | stream/file | daemon RssAnon idle / peak MiB "
          "| store B/obj |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        m = r["modes"][main_mode]
        if m.get("error"):
            print("| %s | refused: %s | %.3f | | | | %s | | %.1f / %.1f | |"
                  % (r["spec"], m["error"][:120], m["pause_s"],
                     fmt(r["file_s"]), r["rss_idle_mib"], r["rss_peak_mib"]))
            continue
        print("| %s | %d | %.3f | %.3f | %s | %.3f | %s | %s | %.1f / %.1f | %.1f |"
              % (r["spec"], m["objects"], m["pause_s"], m["after_walk_s"],
                 fmt(m.get("after_trailer_s")), m["e2e_s"], fmt(r["file_s"]),
                 fmt(r["file_s"] and m["e2e_s"] / r["file_s"], "%.2fx"),
                 r["rss_idle_mib"], r["rss_peak_mib"], r["store_b_per_obj"]))
    if "fork" in modes and "inproc" in modes:
        print()
        print("Fork against in-process, same application and heap (COW: "
              "the forkcow snapshot):")
        print()
        print("| N | pause in-process s | pause fork s | pause ratio "
              "| fork call s (GIL held) | bare fork() s | ticker idle gap s "
              "| end to end in-process / fork s "
              "| ack after fork s | ack after walk (trailer) fork s "
              "| parent Rss before MiB "
              "| parent Private_Dirty peak (COW) MiB "
              "| child Private_Dirty peak MiB | mutator Mobj/s in-process / fork |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            a, f = r["modes"]["inproc"], r["modes"]["fork"]
            c = r["modes"].get("forkcow", {})
            print("| %s | %.3f | %.4f | %.0fx | %s | %s | %.4f | %.3f / %.3f%s "
                  "| %.3f | %s | %.0f | %.0f (%.0f%%) | %.0f | %.2f / %.2f |"
                  % (r["spec"], a["pause_s"], f["pause_s"],
                     a["pause_s"] / f["pause_s"],
                     fmt(f.get("fork_call_s"), "%.4f"),
                     fmt(r.get("bare_fork_s"), "%.4f"), f["idle_gap_s"],
                     a["e2e_s"], f["e2e_s"],
                     " (refused)" if f.get("error") else "",
                     f["after_walk_s"], fmt(f.get("after_trailer_s")),
                     c.get("rss_before_mib", 0),
                     c.get("parent_dirty_peak_mib", 0),
                     100.0 * c.get("parent_dirty_peak_mib", 0)
                     / max(1, c.get("rss_before_mib", 0)),
                     c.get("child_dirty_peak_mib", 0),
                     a["touched_per_s"] / 1e6, f["touched_per_s"] / 1e6))
    for r in rows:
        if "multi_rate" in r:
            print()
            print("%d clients x %d objects at once (in-process): %d objects "
                  "in %.3f s = %.0f kobj/s (one client of %s: %s kobj/s); "
                  "daemon RssAnon peak %.1f MiB"
                  % (r["clients"], int(r["spec"]) // r["clients"],
                     r["multi_objects"], r["multi_wall_s"],
                     r["multi_rate"] / 1e3, r["spec"],
                     fmt(r.get("single_rate") and r["single_rate"] / 1e3,
                         "%.0f"), r["multi_rss_peak_mib"]))
    print()
    print("```json")
    print(json.dumps(rows, indent=1))
    print("```")


if __name__ == "__main__":
    main()
