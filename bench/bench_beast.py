#!/usr/bin/python3
"""The 6 GB heap end to end (issue 21): dump, load, stream, store, query.

    python3 bench/bench_beast.py --build NEW [--baseline OLD] --n 80000000
    python3 bench/bench_beast.py --build NEW --only new --n 2000000

Per side (NEW's build, then OLD's; never both at once: at 80M objects the
application holds about 6.5 GB and the loader as much again), one after
the other:

1. an application process (the side's scanner) builds a realistic heap of
   about N objects: instances with inline values and instances with a
   materialised __dict__, their strs, ints, lists and tuples, and three
   dicts of N/16 entries each (the indexes of an application);
2. fork dump: scanner.dump_all_objects(path, fork=True): the pause of the
   fork, and the time until the file is in place (ForkedDump.wait);
3. stream + ack: stream_to(fork=True) to a meliae-monitord of the side,
   snapshot() until the daemon's ack; from its debug log the time to
   receive (snapshot_begin to snapshot_received) and the commit
   (commit_ms); the application then exits;
4. the side's meliae-cli through the daemon: summary, referrers (of one
   instance of the heap), top --retained, report;
5. the daemon stops, its store is removed; in a fresh process the side's
   loader: load(collapse=False), summarize, compute_referrers,
   collapse_instance_dicts, compute_retained; the dump is removed.

Peak memory: the application's and the loader's VmHWM, each CLI run's
ru_maxrss (wait4), the daemon's RssAnon sampled every 20 ms, per phase
(receiving, committing, each query).  Prints a Markdown table (NEW, OLD,
NEW/OLD); --json FILE keeps the raw figures.  On a terminal, each long
step shows its elapsed time.  Files go to --tmp (default $TMPDIR): the
dump and the store take about 100 B per object each; check df first.
"""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time


HERE = os.path.dirname(os.path.abspath(__file__))
TICK = os.sysconf("SC_CLK_TCK")

# The application: builds the heap, then obeys commands on stdin, one JSON
# answer per line on stdout.
APP = r"""
import gc, json, os, resource, sys, time
from meliae import scanner

def status(*keys):
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in keys:
                out[k] = int(v.split()[0])
    return out

class Rec:                      # inline values (3.11+): no dict object
    def __init__(self, name, n, tags):
        self.name = name
        self.n = n
        self.tags = tags

class DRec:                     # its __dict__ is materialised below
    def __init__(self, key, pair):
        self.key = key
        self.pair = pair

def build(n):
    # One group is 16 objects: Rec + str + int + list + str + int (6),
    # DRec + dict + tuple + int + str (5), two index keys (int, str: 2),
    # a free str, a free int and a float in the "rows" list (3).
    groups = max(1, n // 16)
    B = 10 ** 12
    recs, drecs, rows = [], [], []
    by_id, by_name, by_rec = {}, {}, {}
    for i in range(groups):
        r = Rec("rec-%d" % i, B + i, ["tag-%d" % i, 2 * B + i])
        d = DRec(3 * B + i, (4 * B + i, "pair-%x" % i))
        d.__dict__             # materialise the dict
        recs.append(r)
        drecs.append(d)
        by_id[5 * B + i] = r
        by_name["key-%d" % i] = d
        by_rec[r.n] = d        # keys shared with Rec.n
        rows.append("row %d of the table" % i)
        rows.append(6 * B + i)
        rows.append(i + 0.5)
    return [recs, drecs, rows, by_id, by_name, by_rec]

# The collector off while building: its passes over a heap of tens of
# millions of containers would be most of the build's time.
gc.disable()
t = time.perf_counter()
root = build(int(sys.argv[1]))
build_s = time.perf_counter() - t
gc.enable()
gc.collect()
target = id(root[0][len(root[0]) // 2])   # only its address: no global
print(json.dumps({"build_s": build_s, "target": target,
                  "rss_kib": status("VmRSS")["VmRSS"]}), flush=True)
for line in sys.stdin:
    cmd = json.loads(line)
    if cmd["op"] == "dump":
        t = time.perf_counter()
        fd = scanner.dump_all_objects(cmd["path"], fork=True)
        pause = time.perf_counter() - t
        objects, nbytes = fd.wait(cmd["timeout"])
        total = time.perf_counter() - t
        print(json.dumps({"fork_pause_s": pause, "dump_s": total,
                          "objects": objects, "bytes": nbytes,
                          "child_maxrss_kib": resource.getrusage(
                              resource.RUSAGE_CHILDREN).ru_maxrss}),
              flush=True)
    elif cmd["op"] == "stream":
        st = scanner.stream_to(cmd["sock"], timeout=cmd["timeout"], fork=True)
        t = time.perf_counter()
        try:
            sid = st.snapshot(timeout=cmd["timeout"])
            err = None
        except Exception as e:
            sid, err = None, "%s: %s" % (type(e).__name__, e)
        ack = time.perf_counter() - t
        st.close()
        print(json.dumps({"id": sid, "ack_s": ack, "error": err}), flush=True)
    elif cmd["op"] == "grow":
        # The leak between two snapshots: 1% more, held from the heap.
        gc.disable()
        root.append(build(cmd["n"]))
        gc.enable()
        print("{}", flush=True)
    else:
        break
print(json.dumps(status("VmHWM", "VmRSS")), flush=True)
"""

LOADER = r"""
import json, sys, time
from meliae import loader

def status(*keys):
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in keys:
                out[k] = int(v.split()[0])
    return out

pc = time.perf_counter
res = {}
t = pc()
om = loader.load(sys.argv[1], show_prog=False, collapse=False)
res["load_s"] = pc() - t
res["objects"] = len(om)
res["load_rss_kib"] = status("VmRSS")["VmRSS"]
print(json.dumps({"step": "load", "s": res["load_s"]}), flush=True)
for name, call in (("summarize", om.summarize),
                   ("compute_referrers", om.compute_referrers),
                   ("collapse", om.collapse_instance_dicts),
                   ("compute_retained", om.compute_retained)):
    t = pc()
    call()
    res[name + "_s"] = pc() - t
    print(json.dumps({"step": name, "s": res[name + "_s"]}), flush=True)
st = status("VmHWM", "VmRSS")
res["hwm_kib"] = st["VmHWM"]
res["end_rss_kib"] = st["VmRSS"]
print(json.dumps(res), flush=True)
"""


class Ticker:
    """On a terminal, 'label ... 12 s' on stderr while a step runs."""

    def __init__(self, label):
        self.label = label
        self.tty = sys.stderr.isatty()
        self.t0 = time.monotonic()
        self.done = threading.Event()
        self.th = None

    def __enter__(self):
        if self.tty:
            self.th = threading.Thread(target=self._run, daemon=True)
            self.th.start()
        else:
            print("[%s] %s ..." % (time.strftime("%H:%M:%S"), self.label),
                  file=sys.stderr, flush=True)
        return self

    def _run(self):
        while not self.done.wait(1.0):
            sys.stderr.write("\r  %s ... %d s\x1b[K"
                             % (self.label, time.monotonic() - self.t0))
            sys.stderr.flush()

    def __exit__(self, *exc):
        self.done.set()
        if self.th is not None:
            self.th.join()
        el = time.monotonic() - self.t0
        if self.tty:
            sys.stderr.write("\r  %s: %.1f s\x1b[K\n" % (self.label, el))
        else:
            sys.stderr.write("  %s: %.1f s\n" % (self.label, el))
        sys.stderr.flush()
        return False


class RssSampler(threading.Thread):
    """(time, RssAnon kB) of pid every 20 ms; peak(t0, t1) over a span."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.samples = []
        self.halt = False

    def run(self):
        path = "/proc/%d/status" % self.pid
        while not self.halt:
            try:
                with open(path) as f:
                    for line in f:
                        if line.startswith("RssAnon:"):
                            self.samples.append((time.time(),
                                                 int(line.split()[1])))
                            break
            except OSError:
                return
            time.sleep(0.02)

    def peak(self, t0=0.0, t1=float("inf")):
        return max([kb for t, kb in self.samples if t0 <= t <= t1] or [0])


def wait_rusage(p, timeout):
    """Waits for Popen p (killed after timeout s); (returncode, maxrss kB)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            p.returncode = os.waitstatus_to_exitcode(status)
            return p.returncode, ru.ru_maxrss
        if time.monotonic() > deadline:
            p.kill()
            pid, status, ru = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
            return None, ru.ru_maxrss
        time.sleep(0.02)


def log_time(line):
    import datetime
    ts = line.split()[0].rstrip("Z")
    dt = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%f")
    return dt.replace(tzinfo=datetime.timezone.utc).timestamp()


def env_for(build):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.join(build, "scanner")
    env.pop("MELIAE_STREAM", None)
    return env


def read_json(stream, what):
    line = stream.readline()
    if not line:
        raise RuntimeError("%s: no answer (process died?)" % what)
    return json.loads(line)


def run_cli(build, sock, args, timeout, res, key, sampler):
    exe = os.path.join(build, "cli", "meliae-cli")
    t0 = time.time()
    with Ticker("meliae-cli " + " ".join(args)), \
            tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
        # Files, not pipes: the answer may be long, and wait4 must reap.
        # --timeout: the CLI's default (60 s) is shorter than report at
        # 80M objects on the previous main.
        p = subprocess.Popen([exe, "--socket", sock, "--timeout",
                              "%d" % timeout] + args,
                             stdout=fo, stderr=fe)
        rc, maxrss = wait_rusage(p, timeout)
        fo.seek(0)
        fe.seek(0)
        stdout, stderr = fo.read(), fe.read()
    el = time.time() - t0
    res[key + "_s"] = el
    res[key + "_rc"] = rc
    res[key + "_cli_kib"] = maxrss
    res[key + "_daemon_kib"] = sampler.peak(t0, time.time())
    res[key + "_out"] = stdout.decode(errors="replace")[:4000]
    if rc != 0:
        res[key + "_err"] = stderr.decode(errors="replace")[-2000:]
        print("    %s: exit %s: %s" % (key, rc, res[key + "_err"].strip()),
              file=sys.stderr)


def side(name, build, n, tmp, timeout, skip, snapshots):
    """Runs every step with one build; returns its figures."""
    res = {"side": name, "build": build}
    work = os.path.join(tmp, name)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    dump = os.path.join(work, "beast.json")
    store = os.path.join(work, "store")
    sock = os.path.join(work, "d.sock")
    logp = os.path.join(work, "d.log")
    env = env_for(build)
    daemon = sampler = app = None
    try:
        with Ticker("[%s] build the heap of %d objects" % (name, n)):
            appf = os.path.join(work, "beast_app.py")
            with open(appf, "w") as f:
                f.write(APP)
            app = subprocess.Popen([sys.executable, appf, str(n)],
                                   stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True, env=env)
            r = read_json(app.stdout, "application")
        res["build_s"] = r["build_s"]
        res["app_rss_kib"] = r["rss_kib"]
        target = r["target"]

        def ask(cmd):
            app.stdin.write(json.dumps(cmd) + "\n")
            app.stdin.flush()
            return read_json(app.stdout, "application")

        if "dump" not in skip:
            with Ticker("[%s] fork dump" % name):
                r = ask({"op": "dump", "path": dump, "timeout": timeout})
            res.update(r)
            res["dump_mib"] = os.path.getsize(dump) / 2.0 ** 20

        exe = os.path.join(build, "monitord", "meliae-monitord")
        with open(logp, "w") as log:
            daemon = subprocess.Popen(
                [exe, "--store", store, "--socket", sock, "--foreground",
                 "--log-level", "debug"], stdout=log, stderr=log)
        for _ in range(1000):
            if os.path.exists(sock):
                break
            time.sleep(0.01)
        sampler = RssSampler(daemon.pid)
        sampler.start()
        t_stream = time.time()
        with Ticker("[%s] stream + ack" % name):
            r = ask({"op": "stream", "sock": sock, "timeout": timeout})
        if r["error"]:
            print("    stream: %s" % r["error"], file=sys.stderr)
        res["ack_s"] = r["ack_s"]
        res["stream_error"] = r["error"]
        t_end1 = time.time()
        for k in range(1, snapshots):
            # Later snapshots: the heap grown by 1% each time, for the
            # report's new objects; timed, not parsed from the log.
            ask({"op": "grow", "n": max(16, n // 100)})
            with Ticker("[%s] stream + ack, snapshot %d" % (name, k + 1)):
                r = ask({"op": "stream", "sock": sock, "timeout": timeout})
            if r["error"]:
                print("    stream: %s" % r["error"], file=sys.stderr)
                res["stream_error"] = r["error"]
            res["ack%d_s" % (k + 1)] = r["ack_s"]
        end = ask({"op": "quit"})
        res["app_hwm_kib"] = end["VmHWM"]
        app.kill()              # not a minute of freeing 80M objects
        app.wait()
        app = None
        with open(logp) as f:
            text = f.read()
        lines = text.splitlines()
        begin = [log_time(ln) for ln in lines if "snapshot_begin" in ln]
        recv = [ln for ln in lines if "snapshot_received" in ln]
        stored = [ln for ln in lines if "snapshot_stored" in ln]
        if begin and recv:
            t_recv = log_time(recv[0])
            res["receive_s"] = t_recv - begin[0]
            m = re.search(r"objects=(\d+)", recv[0])
            res["stream_objects"] = int(m.group(1)) if m else None
            res["daemon_recv_kib"] = sampler.peak(t_stream, t_recv)
            res["daemon_commit_kib"] = sampler.peak(t_recv, t_end1)
            res["daemon_stream_kib"] = sampler.peak(t_stream, time.time())
        if stored:
            m = re.search(r"commit_ms=(\d+)", stored[0])
            res["commit_s"] = int(m.group(1)) / 1e3 if m else None
        if not stored:
            res["daemon_log_tail"] = text[-3000:]
            print("    no snapshot stored; the daemon's log ends:\n%s"
                  % text[-1500:], file=sys.stderr)
        res["store_mib"] = du(store) / 2.0 ** 20
        for key, args in (("summary", ["summary", "latest"]),
                          ("referrers", ["referrers", "latest",
                                         "0x%x" % target]),
                          ("top_retained", ["top", "latest", "--retained"]),
                          ("report", ["report"])):
            if key in skip or not stored:
                continue
            run_cli(build, sock, args, timeout, res, key, sampler)
        sampler.halt = True
        res["daemon_peak_kib"] = sampler.peak()
        t = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        res["daemon_stop_s"] = time.monotonic() - t
        daemon = None
        shutil.rmtree(store, ignore_errors=True)

        if "loader" not in skip and os.path.exists(dump):
            with Ticker("[%s] loader" % name) as tk:
                loadf = os.path.join(work, "beast_loader.py")
                with open(loadf, "w") as f:
                    f.write(LOADER)
                p = subprocess.Popen([sys.executable, loadf, dump],
                                     stdout=subprocess.PIPE, text=True,
                                     env=env)
                while True:
                    r = read_json(p.stdout, "loader")
                    if "step" not in r:
                        break
                    tk.label = "[%s] loader: %s %.1f s" % (name, r["step"],
                                                           r["s"])
                p.wait()
            res["loader"] = r
    finally:
        if app is not None:
            app.kill()
            app.wait()
        if daemon is not None:
            daemon.kill()
            daemon.wait()
        if sampler is not None:
            sampler.halt = True
        shutil.rmtree(work, ignore_errors=True)
    return res


def du(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(dirpath, f)).st_blocks * 512
            except OSError:
                pass
    return total


ROWS = [
    # (label, getter, unit: "s" time, "MiB" memory, "" count)
    ("objects dumped", lambda r: r.get("objects"), ""),
    ("heap build (Python)", lambda r: r.get("build_s"), "s"),
    ("app RSS after build", lambda r: r.get("app_rss_kib"), "KiB"),
    ("fork dump: pause", lambda r: r.get("fork_pause_s"), "s"),
    ("fork dump: file in place", lambda r: r.get("dump_s"), "s"),
    ("dump file", lambda r: r.get("dump_mib"), "MiBf"),
    ("stream + ack", lambda r: r.get("ack_s"), "s"),
    ("stream + ack, snapshot 2", lambda r: r.get("ack2_s"), "s"),
    ("daemon: receive (begin to trailer)", lambda r: r.get("receive_s"), "s"),
    ("daemon: commit", lambda r: r.get("commit_s"), "s"),
    ("store on disk", lambda r: r.get("store_mib"), "MiBf"),
    ("cli summary", lambda r: r.get("summary_s"), "s"),
    ("cli referrers", lambda r: r.get("referrers_s"), "s"),
    ("cli top --retained", lambda r: r.get("top_retained_s"), "s"),
    ("cli report", lambda r: r.get("report_s"), "s"),
    ("daemon: stop (SIGTERM to exit)", lambda r: r.get("daemon_stop_s"), "s"),
    ("loader.load(collapse=False)", lambda r: L(r, "load_s"), "s"),
    ("summarize", lambda r: L(r, "summarize_s"), "s"),
    ("compute_referrers", lambda r: L(r, "compute_referrers_s"), "s"),
    ("collapse_instance_dicts", lambda r: L(r, "collapse_s"), "s"),
    ("compute_retained", lambda r: L(r, "compute_retained_s"), "s"),
    ("peak RSS: app (VmHWM)", lambda r: r.get("app_hwm_kib"), "KiB"),
    ("peak RSS: loader (VmHWM)", lambda r: L(r, "hwm_kib"), "KiB"),
    ("loader RSS after load", lambda r: L(r, "load_rss_kib"), "KiB"),
    ("peak RssAnon: daemon receiving", lambda r: r.get("daemon_recv_kib"),
     "KiB"),
    ("peak RssAnon: daemon committing",
     lambda r: r.get("daemon_commit_kib"), "KiB"),
    ("peak RssAnon: daemon, all snapshots streamed",
     lambda r: r.get("daemon_stream_kib"), "KiB"),
    ("peak RssAnon: daemon, summary", lambda r: r.get("summary_daemon_kib"),
     "KiB"),
    ("peak RssAnon: daemon, referrers",
     lambda r: r.get("referrers_daemon_kib"), "KiB"),
    ("peak RssAnon: daemon, top --retained",
     lambda r: r.get("top_retained_daemon_kib"), "KiB"),
    ("peak RssAnon: daemon, report", lambda r: r.get("report_daemon_kib"),
     "KiB"),
    ("peak RSS: cli summary", lambda r: r.get("summary_cli_kib"), "KiB"),
    ("peak RSS: cli referrers", lambda r: r.get("referrers_cli_kib"), "KiB"),
    ("peak RSS: cli top --retained", lambda r: r.get("top_retained_cli_kib"),
     "KiB"),
    ("peak RSS: cli report", lambda r: r.get("report_cli_kib"), "KiB"),
]


def L(r, key):
    return (r.get("loader") or {}).get(key)


def fmt(v, unit):
    if v is None:
        return "–"
    if unit == "s":
        return "%.2f" % v
    if unit == "KiB":
        return "%.1f" % (v / 1024.0)
    if unit == "MiBf":
        return "%.0f" % v
    return "%d" % v


def table(sides):
    names = [s["side"] for s in sides]
    head = "| step | " + " | ".join(names)
    if len(sides) == 2:
        head += " | %s/%s |" % (names[0], names[1])
    else:
        head += " |"
    out = [head, "|---" * (len(sides) + 1 + (len(sides) == 2)) + "|"]
    for label, get, unit in ROWS:
        vals = [get(s) for s in sides]
        if all(v is None for v in vals):
            continue
        u = {"s": " s", "KiB": " MiB", "MiBf": " MiB"}.get(unit, "")
        row = "| %s%s | " % (label, u) + " | ".join(fmt(v, unit)
                                                   for v in vals)
        if len(sides) == 2:
            a, b = vals
            row += " | %s" % ("%.2fx" % (a / b) if a and b and unit else "")
        out.append(row + " |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True, help="the new build directory")
    ap.add_argument("--baseline", help="the baseline's build directory")
    ap.add_argument("--only", choices=("new", "base"),
                    help="run one side only")
    ap.add_argument("--n", type=float, default=2e6,
                    help="objects in the heap (about; default 2e6)")
    ap.add_argument("--tmp", default=None,
                    help="where the dump and the store go ($TMPDIR)")
    ap.add_argument("--timeout", type=float, default=3600.0,
                    help="seconds any one step may take (default 3600)")
    ap.add_argument("--skip", default="",
                    help="comma-separated: dump, loader, summary, referrers,"
                    " top_retained, report")
    ap.add_argument("--snapshots", type=int, default=2,
                    help="snapshots streamed (default 2: the heap grows 1%%"
                    " between them, and report has new objects to show)")
    ap.add_argument("--json", help="write the raw figures here")
    a = ap.parse_args()
    n = int(a.n)
    skip = set(filter(None, a.skip.split(",")))
    builds = [("new", os.path.abspath(a.build))]
    if a.baseline:
        builds.append(("base", os.path.abspath(a.baseline)))
    if a.only:
        builds = [b for b in builds if b[0] == a.only]
        if not builds:
            ap.error("--only base needs --baseline")
    tmp = tempfile.mkdtemp(prefix="mlbeast.", dir=a.tmp)
    sides = []
    try:
        for name, build in builds:
            sides.append(side(name, build, n, tmp, a.timeout, skip,
                              a.snapshots))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(sides, f, indent=1)
    print("N=%d, %s, Python %s, %d CPUs, %s" % (
        n, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        platform.python_version(), os.cpu_count(), platform.platform()))
    print()
    print(table(sides))
    for s in sides:
        for key in ("summary", "referrers", "top_retained", "report"):
            if s.get(key + "_rc") not in (0, None) or key + "_err" in s:
                print("\n%s %s: exit %s: %s" % (s["side"], key,
                                              s.get(key + "_rc"),
                                              s.get(key + "_err", "")))
        if s.get("stream_error"):
            print("\n%s stream: %s" % (s["side"], s["stream_error"]))


if __name__ == "__main__":
    main()
