#!/usr/bin/python3
"""Benchmark meliae.loader against a json.loads baseline (issue 3, §5).

Step 1: a subprocess builds the workload (bench/workload.py ``build(n)``)
and writes it with ``meliae.scanner.dump_all_objects`` into a temp dir.  The
file is kept for every measurement and deleted at the end.

Step 2: each measurement runs in a fresh subprocess, and the two modes are
interleaved over ``--repeat`` rounds:

  * ``meliae``   ``loader.load(path, show_prog=False, collapse=False)``, then
                 ``compute_referrers()``, ``summarize()``,
                 ``collapse_instance_dicts()``, ``compute_referrers()`` again
                 (collapse drops the referrer CSR) and ``summarize()`` again,
                 each timed;
  * ``baseline`` what a user would write: ``json.loads`` per line into a dict
                 keyed by address, a referrer dict (address -> list of
                 referrer addresses), a per-type summary (Counter of count
                 and of size), each timed.

RSS is read from /proc/self/status: VmRSS before loading (interpreter plus
imports, after gc.collect()), VmRSS after loading (absolute, and minus the
before figure), VmHWM (peak; reset with ``5`` > /proc/self/clear_refs just
before loading) and VmRSS at the end.  The table shows the best time over
the runs and the largest RSS.

Speedup = baseline (load + referrers + summary) / meliae (load +
compute_referrers + summarize), the first summarize (same, uncollapsed,
graph as the baseline's); also load against load.

Usage:
  PYTHONPATH=build/scanner /usr/bin/python3 bench/bench_loader.py
  PYTHONPATH=build/scanner /usr/bin/python3 bench/bench_loader.py --big
  PYTHONPATH=build/scanner /usr/bin/python3 bench/bench_loader.py --n 1e5 --repeat 1
"""

import argparse
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

from benchproc import count_lines, proc_status, reset_hwm

HERE = os.path.dirname(os.path.abspath(__file__))
MIB = 1024.0  # kB -> MiB

# Targets from issue 3, section 5.  None: no target at that size.
TARGETS = {
    1_000_000: {"load": 1.0, "rss": 80.0, "referrers": 0.2,
                "collapse": 0.3, "summarize": 0.05, "speedup": 10.0},
    10_000_000: {"load": 12.0, "rss": 800.0},
}
# Skip the 10M baseline when its estimate (from the 1M run) exceeds this.
BIG_BASELINE_LIMIT_S = 300.0


# --------------------------------------------------------------------------
# child side



def _rss():
    return proc_status("VmRSS")["VmRSS"]



def child_dump(n, path):
    sys.path.insert(0, HERE)
    import workload
    import meliae.scanner as scanner

    t = time.perf_counter()
    root = workload.build(n)
    build_s = time.perf_counter() - t
    gc.collect()
    t = time.perf_counter()
    scanner.dump_all_objects(path)
    dump_s = time.perf_counter() - t
    res = {
        "n": n,
        "build_s": build_s,
        "dump_s": dump_s,
        "peak_kib": proc_status("VmHWM")["VmHWM"],
        "lines": count_lines(path),
        "file_bytes": os.path.getsize(path),
        "root_alive": root is not None,
    }
    print(json.dumps(res))


def child_meliae(path):
    from meliae import loader

    gc.collect()
    rss0 = _rss()
    reset_hwm()
    pc = time.perf_counter
    c0 = time.process_time()
    t0 = pc()
    om = loader.load(path, show_prog=False, collapse=False)
    t1 = pc()
    c1 = time.process_time()
    st = proc_status("VmRSS", "VmHWM")
    nobjs = len(om)
    om.compute_referrers()
    t2 = pc()
    s1 = om.summarize()
    t3 = pc()
    rss_summref = _rss()
    folded = om.collapse_instance_dicts()
    t4 = pc()
    om.compute_referrers()
    t5 = pc()
    s2 = om.summarize()
    t6 = pc()
    end = proc_status("VmRSS", "VmHWM")
    # MemObject handles: one per object, then one attribute of each.
    handles = om.objs.values()
    t7 = pc()
    nbytes = sum(o.size for o in handles)
    t8 = pc()
    held = _rss()
    del handles
    # A collapse while MemObjects live (all but the dicts', which it may
    # fold): this tree keeps an old -> new table and they relocate.
    del om
    gc.collect()
    om = loader.load(path, show_prog=False, collapse=False)
    keep = [o for o in om.objs.values() if o.type_str != "dict"]
    rss_keep = _rss()
    t9 = pc()
    om.collapse_instance_dicts()
    t10 = pc()
    rss_collapsed = _rss()
    try:
        nbytes2 = sum(o.size for o in keep)
        t11 = pc()
    except IndexError:      # a tree whose MemObjects do not survive it
        nbytes2 = t11 = None
    # load(collapse=True) (collapse + referrers), then compute_retained.
    del keep, om
    gc.collect()
    t12 = pc()
    om = loader.load(path, show_prog=False, collapse=True)
    t13 = pc()
    om.compute_retained()
    t14 = pc()
    res = {
        "mode": "meliae",
        "load_s": t1 - t0,
        "load_cpu_s": c1 - c0,
        "rss_summref_kib": rss_summref,
        "load_collapse_s": t13 - t12,
        "retained_s": t14 - t13,
        "lines": count_lines(path),
        "referrers_s": t2 - t1,
        "summarize_s": t3 - t2,
        "collapse_s": t4 - t3,
        "referrers2_s": t5 - t4,
        "summarize2_s": t6 - t5,
        "handles_s": t7 - t6,
        "handle_size_s": t8 - t7,
        "rss_handles_kib": held - end["VmRSS"],
        "handle_bytes": nbytes,
        "collapse_held_s": t10 - t9,
        "rss_collapse_held_kib": rss_collapsed - rss_keep,
        "relocate_size_s": None if t11 is None else t11 - t10,
        "relocated_bytes": nbytes2,
        "rss0_kib": rss0,
        "rss_load_kib": st["VmRSS"],
        "hwm_load_kib": st["VmHWM"],
        "rss_end_kib": end["VmRSS"],
        "hwm_end_kib": end["VmHWM"],
        "objects": nobjs,
        "objects_collapsed": len(om),
        "duplicates": om.nduplicates,
        "dangling": om.ndangling,
        "folded": folded,
        "total_count": s1.total_count,
        "total_size": s1.total_size,
        "ntypes": len(s1.type_summaries),
        "total_count_collapsed": s2.total_count,
        "total_size_collapsed": s2.total_size,
    }
    print(json.dumps(res))


def child_baseline(path):
    from collections import Counter

    loads = json.loads
    gc.collect()
    rss0 = _rss()
    reset_hwm()
    pc = time.perf_counter
    t0 = pc()
    objs = {}
    with open(path, "rb") as f:
        for line in f:
            d = loads(line)
            objs[d["address"]] = d
    t1 = pc()
    st = proc_status("VmRSS", "VmHWM")
    referrers = {}
    for addr, d in objs.items():
        for r in d.get("refs", ()):
            lst = referrers.get(r)
            if lst is None:
                referrers[r] = [addr]
            else:
                lst.append(addr)
    t2 = pc()
    counts = Counter()
    sizes = Counter()
    for d in objs.values():
        t = d["type"]
        counts[t] += 1
        sizes[t] += d["size"]
    t3 = pc()
    end = proc_status("VmRSS", "VmHWM")
    res = {
        "mode": "baseline",
        "load_s": t1 - t0,
        "referrers_s": t2 - t1,
        "summarize_s": t3 - t2,
        "rss0_kib": rss0,
        "rss_load_kib": st["VmRSS"],
        "hwm_load_kib": st["VmHWM"],
        "rss_end_kib": end["VmRSS"],
        "hwm_end_kib": end["VmHWM"],
        "objects": len(objs),
        "total_count": sum(counts.values()),
        "total_size": sum(sizes.values()),
        "ntypes": len(counts),
    }
    print(json.dumps(res))


# --------------------------------------------------------------------------
# parent side


def run_child(args, env=None):
    cmd = [sys.executable, os.path.abspath(__file__)] + args
    t = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, env=env)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        err = (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])
        return {"error": err[-1], "wall_s": wall}
    r = json.loads(p.stdout.strip().splitlines()[-1])
    r["wall_s"] = wall
    return r


def _best(runs):
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[-1] if runs else None
    best = {}
    for k in ok[0]:
        vals = [r[k] for r in ok if r[k] is not None]
        if not vals:
            best[k] = None
        elif k.endswith("_s"):
            best[k] = min(vals)
        elif k.endswith("_kib"):
            best[k] = max(vals)
        else:
            best[k] = vals[-1]
    best["runs"] = len(ok)
    return best


def _verdict(value, limit, le=True):
    if limit is None or value is None:
        return "-"
    return "PASS" if (value <= limit if le else value >= limit) else "MISS"


def report(n, dump, m, b, baseline_note):
    """Markdown lines for one size."""
    tg = TARGETS.get(n, {})
    out = []
    out.append("N = %d: dump %d lines, %.1f MiB (%.1f bytes/line); "
               "workload build %.1f s, dump %.2f s"
               % (n, dump["lines"], dump["file_bytes"] / 2**20,
                  dump["file_bytes"] / max(dump["lines"], 1),
                  dump["build_s"], dump["dump_s"]))
    out.append("")
    out.append("| step | meliae s | baseline s | speedup | target | verdict |")
    out.append("|---|---|---|---|---|---|")

    def bt(key):
        if b and "error" not in b and key in b:
            return b[key]
        return None

    def row(label, mkey, bkey, tkey):
        mv = m.get(mkey) if m and "error" not in m else None
        bv = bt(bkey) if bkey else None
        sp = "%.1fx" % (bv / mv) if (mv and bv) else "-"
        lim = tg.get(tkey) if tkey else None
        out.append("| %s | %s | %s | %s | %s | %s |" % (
            label, "%.3f" % mv if mv is not None else "-",
            "%.3f" % bv if bv is not None else "-", sp,
            "≤ %g s" % lim if lim is not None else "-",
            _verdict(mv, lim)))

    row("load", "load_s", "load_s", "load")
    row("compute_referrers / referrer dict", "referrers_s", "referrers_s",
        "referrers")
    row("summarize / Counter", "summarize_s", "summarize_s", "summarize")
    row("collapse_instance_dicts", "collapse_s", None, "collapse")
    row("compute_referrers after collapse", "referrers2_s", None, None)
    row("summarize after collapse", "summarize2_s", None, None)
    if m and "error" not in m:
        mt = m["load_s"] + m["referrers_s"] + m["summarize_s"]
        bv = None
        if b and "error" not in b:
            bv = b["load_s"] + b["referrers_s"] + b["summarize_s"]
        lim = tg.get("speedup")
        sp = bv / mt if bv else None
        out.append("| **load + referrers + summary** | %.3f | %s | %s | %s "
                   "| %s |" % (mt, "%.3f" % bv if bv else "-",
                               "%.1fx" % sp if sp else "-",
                               "≥ %gx" % lim if lim else "-",
                               _verdict(sp, lim, le=False)))
    out.append("")
    out.append("| RSS, MiB | meliae | baseline | target | verdict |")
    out.append("|---|---|---|---|---|")

    def rrow(label, fn, tkey=None):
        mv = fn(m) if m and "error" not in m else None
        bv = fn(b) if b and "error" not in b else None
        lim = tg.get(tkey) if tkey else None
        out.append("| %s | %s | %s | %s | %s |" % (
            label, "%.1f" % mv if mv is not None else "-",
            "%.1f" % bv if bv is not None else "-",
            "≤ %g" % lim if lim is not None else "-", _verdict(mv, lim)))

    rrow("before load (interpreter + imports)", lambda r: r["rss0_kib"] / MIB)
    rrow("after load, absolute VmRSS", lambda r: r["rss_load_kib"] / MIB,
         "rss")
    rrow("after load, minus before",
         lambda r: (r["rss_load_kib"] - r["rss0_kib"]) / MIB, "rss")
    rrow("peak during load (VmHWM)", lambda r: r["hwm_load_kib"] / MIB)
    rrow("at the end (after all steps)", lambda r: r["rss_end_kib"] / MIB)
    rrow("peak overall (VmHWM)", lambda r: r["hwm_end_kib"] / MIB)
    out.append("")
    if m and "error" not in m:
        out.append("- meliae: %d objects, %d types, %d duplicates, %d dangling"
                   " refs, %d dicts folded by collapse; summary %d objects /"
                   " %d bytes (after collapse %d / %d); best of %d run(s)"
                   % (m["objects"], m["ntypes"], m["duplicates"],
                      m["dangling"], m["folded"], m["total_count"],
                      m["total_size"], m["total_count_collapsed"],
                      m["total_size_collapsed"], m["runs"]))
        out.append("- meliae RSS after load per object: %.1f bytes (minus "
                   "before)" % ((m["rss_load_kib"] - m["rss0_kib"]) * 1024.0
                                / max(m["objects"], 1)))
    elif m:
        out.append("- meliae: ERROR %s" % m["error"])
    if b and "error" not in b:
        out.append("- baseline: %d objects, %d types, summary %d bytes; "
                   "best of %d run(s)" % (b["objects"], b["ntypes"],
                                          b["total_size"], b["runs"]))
    elif b:
        out.append("- baseline: ERROR %s" % b["error"])
    if baseline_note:
        out.append("- baseline: %s" % baseline_note)
    return out


def bench_against(n, repeat, tmpdir, previous, log, given=None):
    """This tree's loader against the one on PYTHONPATH previous, on one
    dump (made here, or the file given: kept), interleaved: the ratios
    this / previous of each step."""
    if given:
        path = given
        dump = {"lines": count_lines(path)}
    else:
        path = os.path.join(tmpdir, "dump-%d.json" % n)
        dump = run_child(["--child", "dump", "--n", str(n), "--path", path])
        if "error" in dump:
            raise SystemExit("dump failed: %s" % dump["error"])
    env = dict(os.environ, PYTHONPATH=previous)
    this, prev = [], []
    try:
        for i in range(repeat):
            for runs, e in ((this, None), (prev, env)):
                r = run_child(["--child", "meliae", "--path", path], e)
                if "error" in r:
                    raise SystemExit("meliae child failed: %s" % r["error"])
                runs.append(r)
            log("  run %d: this load %.3fs collapse %.3fs | previous load "
                "%.3fs collapse %.3fs" % (i + 1, this[-1]["load_s"],
                                          this[-1]["collapse_s"],
                                          prev[-1]["load_s"],
                                          prev[-1]["collapse_s"]))
    finally:
        try:
            if not given:
                os.unlink(path)
        except OSError:
            pass
    t, p = _best(this), _best(prev)
    out = ["N = %d: dump %d lines; this tree against PYTHONPATH=%s, "
           "interleaved, best of %d" % (n, dump["lines"], previous, repeat),
           "",
           "| step | this | previous | this / previous |",
           "|---|---|---|---|"]
    lines_n = t["lines"]
    for label, tv, pv in (
            ("load, lines/s (wall)", lines_n / t["load_s"],
             lines_n / p["load_s"]),
            ("load, lines per CPU second (all threads)",
             lines_n / t["load_cpu_s"], lines_n / p["load_cpu_s"]),
            ("B/object after load + compute_referrers + summarize",
             (t["rss_summref_kib"] - t["rss0_kib"]) * 1024.0 / t["objects"],
             (p["rss_summref_kib"] - p["rss0_kib"]) * 1024.0 / p["objects"])):
        out.append("| %s | %.3g | %.3g | %.2f |" % (label, tv, pv, tv / pv))
    for label, key in (("load s", "load_s"),
                       ("load CPU s (all threads)", "load_cpu_s"),
                       ("load(collapse=True) s", "load_collapse_s"),
                       ("compute_retained s (after it)", "retained_s"),
                       ("compute_referrers s", "referrers_s"),
                       ("summarize s", "summarize_s"),
                       ("collapse_instance_dicts s", "collapse_s"),
                       ("compute_referrers after collapse s", "referrers2_s"),
                       ("om.objs.values(): a MemObject per object, s",
                        "handles_s"),
                       ("sum(o.size for o in those), s", "handle_size_s"),
                       ("collapse_instance_dicts with a MemObject per "
                        "non-dict alive, s", "collapse_held_s"),
                       ("sum(o.size for o in those) after it, s",
                        "relocate_size_s")):
        if t[key] is None or p[key] is None:
            out.append("| %s | %s | %s | - |" % (
                label, "fails" if t[key] is None else "%.3f" % t[key],
                "fails" if p[key] is None else "%.3f" % p[key]))
            continue
        out.append("| %s | %.3f | %.3f | %.2f |"
                   % (label, t[key], p[key], t[key] / max(p[key], 1e-9)))
    for label, key in (("RSS after load, minus before, MiB", None),
                       ("peak during load (VmHWM), MiB", "hwm_load_kib"),
                       ("RSS at the end, MiB", "rss_end_kib"),
                       ("peak overall (VmHWM), MiB", "hwm_end_kib"),
                       ("RSS of those MemObjects, MiB", "rss_handles_kib"),
                       ("RSS added by a collapse with MemObjects alive, MiB",
                        "rss_collapse_held_kib")):
        if key is None:
            tv = (t["rss_load_kib"] - t["rss0_kib"]) / MIB
            pv = (p["rss_load_kib"] - p["rss0_kib"]) / MIB
        else:
            tv, pv = t[key] / MIB, p[key] / MIB
        out.append("| %s | %.1f | %.1f | %.2f |"
                   % (label, tv, pv, tv / max(pv, 1e-9)))
    out.append("")
    out.append("- this: %d objects, %d folded by collapse; previous: %d, %d"
               % (t["objects"], t["folded"], p["objects"], p["folded"]))
    return out


def bench_size(n, repeat, tmpdir, run_baseline, log):
    path = os.path.join(tmpdir, "dump-%d.json" % n)
    log("N=%d: building the workload and dumping to %s ..." % (n, path))
    dump = run_child(["--child", "dump", "--n", str(n), "--path", path])
    if "error" in dump:
        raise SystemExit("dump failed: %s" % dump["error"])
    log("  %d lines, %.1f MiB, build %.1fs, dump %.2fs, peak %.0f MiB"
        % (dump["lines"], dump["file_bytes"] / 2**20, dump["build_s"],
           dump["dump_s"], dump["peak_kib"] / MIB))
    mr, br = [], []
    try:
        for i in range(repeat):
            r = run_child(["--child", "meliae", "--path", path])
            mr.append(r)
            if "error" in r:
                log("  run %d meliae   ERROR %s" % (i + 1, r["error"]))
            else:
                log("  run %d meliae   load %.3fs refs %.3fs summ %.3fs "
                    "collapse %.3fs refs2 %.3fs | rss after load %.1f MiB "
                    "(+%.1f) peak %.1f"
                    % (i + 1, r["load_s"], r["referrers_s"],
                       r["summarize_s"], r["collapse_s"], r["referrers2_s"],
                       r["rss_load_kib"] / MIB,
                       (r["rss_load_kib"] - r["rss0_kib"]) / MIB,
                       r["hwm_load_kib"] / MIB))
            if run_baseline:
                r = run_child(["--child", "baseline", "--path", path])
                br.append(r)
                if "error" in r:
                    log("  run %d baseline ERROR %s" % (i + 1, r["error"]))
                else:
                    log("  run %d baseline load %.3fs refs %.3fs summ %.3fs"
                        " | rss after load %.1f MiB, end %.1f"
                        % (i + 1, r["load_s"], r["referrers_s"],
                           r["summarize_s"], r["rss_load_kib"] / MIB,
                           r["rss_end_kib"] / MIB))
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
    return dump, _best(mr), _best(br) if br else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=lambda s: int(float(s)), default=1_000_000,
                    help="workload size, objects (default 1e6)")
    ap.add_argument("--big", action="store_true",
                    help="also run N = 1e7 (several GB of RAM, ~1.2 GB dump)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="fresh-process runs per mode (best time, max RSS)")
    ap.add_argument("--big-repeat", type=int, default=1,
                    help="runs per mode at N = 1e7 (default 1)")
    ap.add_argument("--big-baseline", choices=("auto", "yes", "no"),
                    default="auto",
                    help="baseline at 1e7: auto runs it only if the estimate "
                    "from the first size is under %d s"
                    % BIG_BASELINE_LIMIT_S)
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--against", metavar="PYTHONPATH",
                    help="compare with the meliae on this PYTHONPATH (a "
                    "build of the previous tree) instead of the baseline")
    ap.add_argument("--dump", metavar="FILE",
                    help="with --against: this dump file (kept) instead of "
                    "a new one of --n objects")
    ap.add_argument("--out", help="append the markdown report to this file")
    ap.add_argument("--child", choices=("dump", "meliae", "baseline"),
                    help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child == "dump":
        child_dump(args.n, args.path)
        return 0
    if args.child == "meliae":
        child_meliae(args.path)
        return 0
    if args.child == "baseline":
        child_baseline(args.path)
        return 0

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    with open("/proc/loadavg") as f:
        loadavg = f.read().split()[0]
    tmpdir = tempfile.mkdtemp(prefix="meliae-lbench-")
    lines = []
    if args.against:
        try:
            lines += bench_against(args.n, args.repeat, tmpdir, args.against,
                                   log, args.dump)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
    else:
        try:
            dump, m, b = bench_size(args.n, args.repeat, tmpdir,
                                    not args.no_baseline, log)
            lines += report(args.n, dump, m, b, None)
            if args.big and args.n != 10_000_000:
                big = 10_000_000
                note = None
                run_b = not args.no_baseline and args.big_baseline != "no"
                if run_b and args.big_baseline == "auto":
                    if b and "error" not in b:
                        est = (b["load_s"] + b["referrers_s"] + b["summarize_s"]) \
                            * big / args.n * 1.2
                        if est > BIG_BASELINE_LIMIT_S:
                            run_b = False
                            note = ("skipped at N = %d: estimated %.0f s from "
                                    "the N = %d run (> %d s)"
                                    % (big, est, args.n, BIG_BASELINE_LIMIT_S))
                        else:
                            note = "estimated %.0f s from the N = %d run" % (
                                est, args.n)
                    else:
                        run_b = False
                        note = "skipped at N = %d (no smaller run)" % big
                elif not run_b:
                    note = "skipped at N = %d (--big-baseline no)" % big
                if note:
                    log("  baseline at 1e7: %s" % note)
                dump, m, b = bench_size(big, args.big_repeat, tmpdir, run_b, log)
                lines.append("")
                lines += report(big, dump, m, b, note)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)

    cmd = " ".join(["PYTHONPATH=%s" % os.environ.get("PYTHONPATH", ""),
                    sys.executable, "bench/bench_loader.py"] + sys.argv[1:])
    lines += ["", "- `%s`" % cmd,
              "- Python %s, %d CPUs, %s; load average before: %s"
              % (platform.python_version(), os.cpu_count(),
                 platform.platform(), loadavg)]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write("\n" + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
