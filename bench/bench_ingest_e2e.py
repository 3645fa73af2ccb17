"""The daemon's side of a streamed snapshot (issue 11), two builds in one
run:

    python3 bench/bench_ingest_e2e.py --build NEW --base OLD --n 10000000 [--big]

One application process builds bench/workload.py's heap of N objects (with
--big: also a dict of 10M entries, a list of 20M items and a set of 5M),
then streams one snapshot (values='none') to a meliae-monitord of each
build in turn, OLD first, then NEW, then OLD and NEW again; both daemons
read the same bytes.  Per daemon, from its debug log and /proc:

- ingest: snapshot_begin to snapshot_received (the stream read, parsed and
  spooled: the event loop's work), as objects/s of wall time and of the
  daemon's CPU time (the machine is shared: CPU time is the figure);
- commit: the writer thread's commit_ms (not this bench's subject);
- ack: the client's snapshot() call, end to end (walk included);
- RssAnon peak while receiving and while committing.

The scanner is NEW's (the protocol is the same).  Prints a Markdown table.
"""

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))

APP = r"""
import gc, json, sys, time
sys.path.insert(0, %(bench)r)
import workload
from meliae import scanner
n, big = int(sys.argv[1]), sys.argv[2] == "1"
root = workload.build(n)
if big:
    B = 10 ** 12
    root = [root, dict.fromkeys(range(B, B + 10000000)), [0] * 20000000,
            set(range(2 * B, 2 * B + 5000000))]
gc.collect()
print("ready", flush=True)
for sock in sys.stdin:
    st = scanner.stream_to(sock.strip(), values="none", timeout=900)
    t = time.perf_counter()
    sid = st.snapshot(timeout=900)
    e2e = time.perf_counter() - t
    st.close()
    print(json.dumps({"id": sid, "e2e_s": e2e}), flush=True)
"""


TICK = os.sysconf("SC_CLK_TCK")


class RssSampler(threading.Thread):
    """(time, RssAnon kB, CPU seconds) of pid every 5 ms."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.samples = []
        self.stop = False

    def run(self):
        while not self.stop:
            try:
                with open("/proc/%d/stat" % self.pid) as f:
                    st = f.read().rsplit(")", 1)[1].split()
                cpu = (int(st[11]) + int(st[12])) / TICK
                with open("/proc/%d/status" % self.pid) as f:
                    for line in f:
                        if line.startswith("RssAnon:"):
                            self.samples.append((time.time(),
                                                 int(line.split()[1]), cpu))
            except OSError:
                pass
            time.sleep(0.005)


def log_time(line):
    ts = line.split()[0].rstrip("Z")
    dt = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%f")
    return dt.replace(tzinfo=datetime.timezone.utc).timestamp()


def one(app, build, tmp):
    store = os.path.join(tmp, "store")
    sock = os.path.join(tmp, "s.sock")
    logp = os.path.join(tmp, "d.log")
    shutil.rmtree(store, ignore_errors=True)
    exe = os.path.join(build, "monitord", "meliae-monitord")
    with open(logp, "w") as log:
        d = subprocess.Popen([exe, "--store", store, "--socket", sock,
                              "--foreground", "--log-level", "debug"],
                             stdout=log, stderr=log)
    for _ in range(1000):
        if os.path.exists(sock):
            break
        time.sleep(0.01)
    rss = RssSampler(d.pid)
    rss.start()
    app.stdin.write(sock + "\n")
    app.stdin.flush()
    r = json.loads(app.stdout.readline())
    rss.stop = True
    rss.join()
    d.terminate()
    d.wait()
    with open(logp) as f:
        text = f.read()
    begin = [log_time(ln) for ln in text.splitlines() if "snapshot_begin" in ln]
    recv = [ln for ln in text.splitlines() if "snapshot_received" in ln]
    stored = [ln for ln in text.splitlines() if "snapshot_stored" in ln]
    if not begin or not recv or not stored:
        sys.exit("no snapshot in the log of %s:\n%s" % (build, text[-3000:]))
    t_recv = log_time(recv[0])
    objects = int(re.search(r"objects=(\d+)", recv[0]).group(1))
    r["objects"] = objects
    r["ingest_s"] = t_recv - begin[0]
    r["commit_s"] = int(re.search(r"commit_ms=(\d+)", stored[0]).group(1)) / 1e3
    r["rss_recv"] = max([kb for t, kb, _ in rss.samples if t <= t_recv] or [0])
    r["rss_commit"] = max([kb for t, kb, _ in rss.samples if t > t_recv] or [0])
    # The loop's CPU from the header to the trailer (the writer thread is
    # idle then): the ingest's cost whatever the machine's load.
    cpu0 = [c for t, _, c in rss.samples if t <= begin[0]]
    cpu1 = [c for t, _, c in rss.samples if t <= t_recv]
    r["ingest_cpu"] = (cpu1[-1] if cpu1 else 0) - (cpu0[-1] if cpu0 else 0)
    os.unlink(logp)
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True, help="new build directory")
    ap.add_argument("--base", required=True, help="baseline build directory")
    ap.add_argument("--n", type=int, default=1000000)
    ap.add_argument("--big", action="store_true")
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="mlingest.")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.join(os.path.abspath(a.build), "scanner")
    app = subprocess.Popen([sys.executable, "-c", APP % {"bench": HERE},
                            str(a.n), "1" if a.big else "0"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           text=True, env=env)
    assert app.stdout.readline().strip() == "ready"
    res = {"base": [], "new": []}
    try:
        for _ in range(a.rounds):
            for name, build in (("base", a.base), ("new", a.build)):
                res[name].append(one(app, build, tmp))
    finally:
        app.stdin.close()
        app.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print("N=%d%s, best of %d, %s" % (a.n, " + big containers" if a.big
                                       else "", a.rounds,
                                       time.strftime("%Y-%m-%d %H:%M UTC",
                                                     time.gmtime())))
    print()
    print("| daemon | objects | ingest s | ingest objects/s | ingest CPU s "
          "| objects/CPU s | commit s | ack s | RssAnon MiB receiving "
          "| RssAnon MiB committing |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    best = {}
    for name in ("base", "new"):
        rs = res[name]
        b = min(rs, key=lambda r: r["ingest_s"])
        cpu = min(r["ingest_cpu"] for r in rs)
        best[name] = b
        best[name + "_cpu"] = cpu
        print("| %s | %d | %.2f | %.2f M | %.2f | %.2f M | %.1f | %.1f | %.1f "
              "| %.1f |"
              % (name, b["objects"], b["ingest_s"],
                 b["objects"] / b["ingest_s"] / 1e6, cpu,
                 b["objects"] / max(cpu, 0.01) / 1e6,
                 min(r["commit_s"] for r in rs), min(r["e2e_s"] for r in rs),
                 max(r["rss_recv"] for r in rs) / 1024.0,
                 max(r["rss_commit"] for r in rs) / 1024.0))
    print()
    print("ingest speed-up: %.2fx wall, %.2fx CPU"
          % (best["base"]["ingest_s"] / best["new"]["ingest_s"],
             best["base_cpu"] / max(best["new_cpu"], 0.01)))


if __name__ == "__main__":
    main()
