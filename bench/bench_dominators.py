"""Dominator tree and retained sizes: time and memory (issue 12).

For each N: a child builds bench/workload.py's heap of N objects and dumps
it with meliae.scanner (once); then, each in a fresh process:

- loader: load() (parse + collapse + referrers: the baseline), then
  compute_referrers() again (a second baseline: one pass over the refs),
  then om.compute_retained(), timed, with the peak RSS it adds (VmHWM
  reset just before) and what stays (VmRSS after) per object;
- store: `meliae-cli --store DIR import` (once), then the wall time and
  peak RSS (wait4) of `meliae-cli --json top --retained latest`, against
  `top latest` (by size: reads every object, no graph) and `summary
  latest` in the same run.

Targets: compute_retained <= 1 s at 1M objects, <= 12 s at 10M; <= 24
bytes/object of extra peak memory.  The machine is shared: every figure
comes with its baseline from the same run.

    meson setup build-rel -Dbuildtype=release -Dpython=/usr/bin/python3
    ninja -C build-rel
    /usr/bin/python3 bench/bench_dominators.py --build build-rel --n 1e6 --n 1e7

--queries (issue 21, point 3: retained sizes stored at commit) instead
compares the store's answers of two builds in the same run, BASE (the
previous main: computes per request) and --build (reads what the commit
stored): the dump is imported by each build's CLI into its own store,
then `top --retained`, `dominators ADDR` (an object at the bottom of the
largest one's chain) and `report` are timed through `meliae-cli --store`
(wall, CPU, peak RSS from wait4) and through each build's meliae-monitord
(wall; the daemon's RssAnon sampled every 5 ms during the query, its
peak over the value before); and once more with --build's daemon on
BASE's store (an old store: the first query computes, the writer then
stores the answers, the next ones read them).  Targets: <= 0.5 s at 10M
objects, no memory of the snapshot's size in the CLI or the daemon.

    /usr/bin/python3 bench/bench_dominators.py --build build-rel \
        --queries BASE/build-rel --n 1e7 --runs 2
"""

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from benchproc import count_lines, proc_status, reset_hwm  # noqa: E402

TARGET_S = {1_000_000: 1.0, 10_000_000: 12.0}
TARGET_BPO = 24.0


def child_dump(n, path):
    import workload
    import meliae.scanner as scanner

    root = workload.build(n)
    gc.collect()
    t = time.perf_counter()
    scanner.dump_all_objects(path)
    print(json.dumps({"dump_s": time.perf_counter() - t,
                      "lines": count_lines(path), "alive": root is not None}))


def child_loader(path):
    from meliae import loader

    pc = time.perf_counter
    t0 = pc()
    om = loader.load(path, show_prog=False)
    t1 = pc()
    om.compute_referrers()
    t2 = pc()
    gc.collect()
    rss0 = proc_status("VmRSS")["VmRSS"]
    reset_hwm()
    t3 = pc()
    c3 = time.process_time()
    om.compute_retained()
    t4 = pc()
    c4 = time.process_time()
    st = proc_status("VmRSS", "VmHWM")
    heap, roots, leftover = om._g.retained_roots
    top = om.top_retained(1)[0]
    print(json.dumps({
        "objects": len(om), "refs": om._g.nrefs,
        "load_s": t1 - t0, "referrers_s": t2 - t1, "retained_s": t4 - t3,
        "retained_cpu_s": c4 - c3,
        "peak_kib": st["VmHWM"] - rss0, "kept_kib": st["VmRSS"] - rss0,
        "heap": heap, "roots": roots, "leftover": leftover,
        "top": [top.type_str, top.retained_size],
    }))


def run_child(args):
    env = dict(os.environ)
    r = subprocess.run([sys.executable, os.path.abspath(__file__)] + args,
                       capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit("child %s failed:\n%s" % (args, r.stderr))
    return json.loads(r.stdout.strip().splitlines()[-1])


def timed_cli(cmd):
    """Wall seconds, peak RSS (KiB), its stdout and CPU seconds (user +
    system) of one process."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit("%s: exit %d: %s" % (" ".join(cmd), p.returncode,
                                              err.decode(errors="replace")))
    return wall, ru.ru_maxrss, out, ru.ru_utime + ru.ru_stime


def best(cmd, runs):
    res = [timed_cli(cmd) for _ in range(runs)]
    return (min(r[0] for r in res), max(r[1] for r in res), res[0][2],
            min(r[3] for r in res))


def bench(n, cli, tmp, runs, log):
    dump = os.path.join(tmp, "heap-%d.json" % n)
    log("N=%d: building and dumping the workload" % n)
    d = run_child(["--child", "dump", "--n", str(n), "--path", dump])
    log("  %d lines in %.1f s; loader" % (d["lines"], d["dump_s"]))
    lres = [run_child(["--child", "loader", "--path", dump])
            for _ in range(runs)]
    lo = min(lres, key=lambda r: r["retained_s"])
    lo["peak_kib"] = max(r["peak_kib"] for r in lres)
    log("  loader: %s" % json.dumps(lo))
    store = os.path.join(tmp, "store-%d" % n)
    t = time.perf_counter()
    subprocess.run([cli, "--store", store, "import", dump], check=True,
                   stdout=subprocess.DEVNULL)
    imp = time.perf_counter() - t
    os.unlink(dump)
    base = [cli, "--store", store, "--json"]
    sr = best(base + ["top", "--retained", "latest"], runs)
    st = best(base + ["top", "latest"], runs)
    ss = best(base + ["summary", "latest"], runs)
    doc = json.loads(sr[2])
    log("  store: import %.1f s, top --retained %.2f s %d KiB, top %.2f s "
        "%d KiB, summary %.3f s" % (imp, sr[0], sr[1], st[0], st[1], ss[0]))
    assert doc["total_bytes"] == lo["heap"], (doc["total_bytes"], lo["heap"])
    shutil.rmtree(store)
    return {"n": n, "objects": lo["objects"], "refs": lo["refs"],
            "loader": lo, "import_s": imp,
            "store_retained": sr[:2] + sr[3:], "store_top": st[:2] + st[3:],
            "store_summary": ss[:2] + ss[3:], "store_top1": doc["objects"][0]["retained"]}


def rss_anon_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("RssAnon:"):
                return int(ln.split()[1])
    return 0


class Daemon:
    """A meliae-monitord of build on store; peak(cmd) runs one CLI query
    through it, sampling its RssAnon."""

    def __init__(self, build, store, tmp):
        import threading
        self.threading = threading
        self.sock = os.path.join(tmp, "d-%d.sock" % os.getpid())
        self.log = open(os.path.join(tmp, "daemon-%s.log" % os.path.basename(
            store)), "ab")
        self.p = subprocess.Popen(
            [os.path.join(build, "monitord", "meliae-monitord"), "--store",
             store, "--socket", self.sock, "--foreground", "--log-level",
             "info"], stderr=self.log, stdout=self.log)
        for _ in range(3000):
            if os.path.exists(self.sock):
                break
            time.sleep(0.01)
        self.cli = os.path.join(build, "cli", "meliae-cli")

    def query(self, args):
        before = rss_anon_kib(self.p.pid)
        peak = [before]
        done = [False]

        def sample():
            while not done[0]:
                peak[0] = max(peak[0], rss_anon_kib(self.p.pid))
                time.sleep(0.005)
        th = self.threading.Thread(target=sample)
        th.start()
        t = time.perf_counter()
        r = subprocess.run([self.cli, "--socket", self.sock, "--json"] + args,
                           capture_output=True, timeout=1200)
        wall = time.perf_counter() - t
        done[0] = True
        th.join()
        if r.returncode != 0:
            raise SystemExit("daemon query %s: %s" % (args, r.stderr))
        return wall, peak[0] - before, r.stdout

    def stop(self):
        self.p.terminate()
        self.p.wait(timeout=300)
        self.log.close()


QUERIES = [("top --retained", ["top", "--retained", "latest"]),
           ("dominators", None), ("report", ["report"])]


def store_queries(n, builds, tmp, runs, log):
    """The three queries of each build, on its own store (and --build's
    daemon on the base's store)."""
    dump = os.path.join(tmp, "heap-%d.json" % n)
    log("N=%d: building and dumping the workload" % n)
    d = run_child(["--child", "dump", "--n", str(n), "--path", dump])
    rows, stores, addr = [], {}, None
    for name, build in builds:
        cli = os.path.join(build, "cli", "meliae-cli")
        store = os.path.join(tmp, "store-%s" % name)
        t = time.perf_counter()
        subprocess.run([cli, "--store", store, "import", dump], check=True,
                       stdout=subprocess.DEVNULL)
        log("  %s: import %.1f s" % (name, time.perf_counter() - t))
        stores[name] = store
        if addr is None:
            doc = json.loads(subprocess.run(
                [cli, "--store", store, "--json", "dominators", "latest",
                 str(json.loads(subprocess.run(
                     [cli, "--store", store, "--json", "top", "--retained",
                      "latest", "--top", "20"], check=True,
                     capture_output=True).stdout)["objects"][-1]["address"])],
                check=True, capture_output=True).stdout)
            addr = doc["object"]["address"]
    os.unlink(dump)
    for name, build in builds:
        cli = os.path.join(build, "cli", "meliae-cli")
        for label, q in QUERIES:
            args = q or ["dominators", "latest", str(addr)]
            res = best([cli, "--store", stores[name], "--json"] + args, runs)
            rows.append({"build": name, "via": "--store", "query": label,
                         "wall": res[0], "cpu": res[3],
                         "rss_kib": res[1], "anon_kib": None})
            log("  %s --store %s: %.2f s, %d KiB" % (name, label, res[0],
                                                     res[1]))
        dm = Daemon(build, stores[name], tmp)
        try:
            for label, q in QUERIES:
                args = q or ["dominators", "latest", str(addr)]
                res = [dm.query(args) for _ in range(runs)]
                rows.append({"build": name, "via": "daemon", "query": label,
                             "wall": min(r[0] for r in res), "cpu": None,
                             "rss_kib": None,
                             "anon_kib": max(r[1] for r in res)})
                log("  %s daemon %s: %.2f s, +%d KiB anon" % (
                    name, label, rows[-1]["wall"], rows[-1]["anon_kib"]))
        finally:
            dm.stop()
    # --build's daemon on the base's store: computed once, then stored
    name, build = builds[0]
    dm = Daemon(build, stores[builds[1][0]], tmp)
    try:
        for k in range(3):
            w, a, _ = dm.query(QUERIES[0][1])
            rows.append({"build": name, "via": "daemon, %s's store, #%d"
                         % (builds[1][0], k + 1), "query": "top --retained",
                         "wall": w, "cpu": None, "rss_kib": None,
                         "anon_kib": a})
            log("  old store #%d: %.2f s, +%d KiB" % (k + 1, w, a))
            if k == 0:                  # the writer stores them: wait
                t = time.perf_counter()
                while b"retained_stored" not in open(dm.log.name, "rb").read():
                    if time.perf_counter() - t > 900:
                        raise SystemExit("the daemon did not store them")
                    time.sleep(0.2)
                log("  stored by the writer %.1f s after the answer"
                    % (time.perf_counter() - t))
    finally:
        dm.stop()
    return {"n": n, "objects": d["lines"], "rows": rows}


def queries_report(res, cmdline):
    out = ["", "### %s, release builds" % time.strftime(
        "%Y-%m-%d %H:%M UTC", time.gmtime()), "",
        "`%s`; load average %.1f at the end." % (cmdline, os.getloadavg()[0]),
        "", "| N (objects) | build | via | query | wall s | CPU s "
        "| peak RSS MiB | daemon RssAnon +MiB |",
        "|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        out.append("| %d | %s | %s | %s | %.3f | %s | %s | %s |" % (
            res["objects"], r["build"], r["via"], r["query"], r["wall"],
            "%.2f" % r["cpu"] if r["cpu"] is not None else "",
            "%.0f" % (r["rss_kib"] / 1024.0) if r["rss_kib"] else "",
            "%.1f" % (r["anon_kib"] / 1024.0) if r["anon_kib"] is not None
            else ""))
    return "\n".join(out) + "\n"


def verdict(ok):
    return "PASS" if ok else "MISS"


def report(results, cmdline):
    out = ["", "### %s, release build" % time.strftime("%Y-%m-%d %H:%M UTC",
                                                      time.gmtime()), "",
           "`%s`; load average %.1f at the end." % (cmdline, os.getloadavg()[0]),
           "",
           "Loader, best of the runs (peak: the largest):", "",
           "| N | objects | refs | load() s (baseline) | compute_referrers s "
           "| compute_retained s (CPU s) | retained / load "
           "| retained / referrers | peak extra B/obj | kept B/obj | target s "
           "| verdict |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lo = r["loader"]
        n = r["objects"]
        peak = lo["peak_kib"] * 1024.0 / n
        kept = lo["kept_kib"] * 1024.0 / n
        tgt = TARGET_S.get(r["n"])
        out.append("| %d | %d | %d | %.2f | %.2f | %.2f (%.2f) | %.2f | %.2f "
                   "| %.1f | %.1f | %s | %s |" % (
                       r["n"], n, r["refs"], lo["load_s"], lo["referrers_s"],
                       lo["retained_s"], lo["retained_cpu_s"],
                       lo["retained_s"] / lo["load_s"],
                       lo["retained_s"] / lo["referrers_s"], peak, kept,
                       tgt if tgt else "-",
                       "%s time, %s memory" % (
                           verdict(tgt is None or lo["retained_s"] <= tgt),
                           verdict(peak <= TARGET_BPO))))
    out += ["", "Store (`meliae-cli --store DIR --json ...`, best wall time, "
            "peak RSS of the process, which includes the LMDB pages read):", "",
            "| N | import s | summary s | top (by size) s (CPU s) "
            "| top --retained s (CPU s) | top --retained / top "
            "| peak RSS top / top --retained MiB | extra B/obj |",
            "|---|---|---|---|---|---|---|---|"]
    for r in results:
        n = r["objects"]
        sr, st, ss = r["store_retained"], r["store_top"], r["store_summary"]
        out.append("| %d | %.1f | %.3f | %.2f (%.2f) | %.2f (%.2f) | %.1fx "
                   "| %.0f / %.0f | %.1f |" % (
                       r["n"], r["import_s"], ss[0], st[0], st[2], sr[0], sr[2],
                       sr[0] / st[0], st[1] / 1024.0, sr[1] / 1024.0,
                       (sr[1] - st[1]) * 1024.0 / n))
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=lambda s: int(float(s)), action="append")
    ap.add_argument("--build", default="build-rel")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", help="append the markdown report to this file")
    ap.add_argument("--queries", metavar="BASE",
                    help="compare the store's answers of --build and of "
                    "the build dir BASE")
    ap.add_argument("--child", choices=("dump", "loader"), help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child == "dump":
        return child_dump(a.n[0], a.path)
    if a.child == "loader":
        return child_loader(a.path)
    build = os.path.abspath(a.build)
    os.environ["PYTHONPATH"] = os.path.join(build, "scanner")
    cli = os.path.join(build, "cli", "meliae-cli")
    tmp = tempfile.mkdtemp(prefix="bench-dom-")
    os.chmod(tmp, 0o700)

    def log(msg):
        sys.stderr.write(msg + "\n")
        sys.stderr.flush()

    cmdline = " ".join(["bench/bench_dominators.py"] + sys.argv[1:])
    try:
        if a.queries:
            builds = [("new", build), ("base", os.path.abspath(a.queries))]
            text = "".join(queries_report(
                store_queries(n, builds, tmp, a.runs, log), cmdline)
                for n in (a.n or [1_000_000]))
        else:
            results = [bench(n, cli, tmp, a.runs, log)
                       for n in (a.n or [1_000_000])]
            text = report(results, cmdline)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(text)
    if a.out:
        with open(a.out, "a") as f:
            f.write(text)


if __name__ == "__main__":
    main()
