#!/usr/bin/python3
"""Benchmark meliae's scanner against a pure-Python walker (issue 2, §6).

In one run, for each of

  * ``all``    meliae.scanner.dump_all_objects(path)
  * ``gc``     meliae.scanner.dump_gc_objects(path)
  * ``purepy`` bench/purepy_dump.dump(path)  (gc.get_objects + get_referents)

a fresh subprocess builds the workload (bench/workload.py), runs
``gc.collect()``, resets VmHWM (``5`` > /proc/self/clear_refs), reads VmRSS,
times the dump into a file in a temp dir, then reads VmHWM.  Reported:
best time over ``--repeat`` runs, max extra peak RSS (VmHWM - VmRSS before),
object count (lines written), file bytes and bytes/object, with the speedup
against the pure-Python walker and PASS/MISS against the targets.

Usage:
  PYTHONPATH=build/scanner /usr/bin/python3 bench/bench_scanner.py --n 1000000
  PYTHONPATH=build/scanner /usr/bin/python3 bench/bench_scanner.py --quick
"""

import argparse
import datetime
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

MODES = ("all", "gc", "purepy")
LABELS = {
    "all": "meliae dump_all_objects",
    "gc": "meliae dump_gc_objects",
    "purepy": "pure-Python walker",
}
# Targets from issue 2, section 6 (N = 1e6).
TARGET_SPEEDUP = 6.0
TARGET_BPO = 105.0
TARGET_RSS_MIB = {"all": 4.0, "gc": 1.0}


# --------------------------------------------------------------------------
# child side




def child(mode, n, outdir, keep):
    sys.path.insert(0, HERE)
    import workload

    if mode == "purepy":
        import purepy_dump
        fn = purepy_dump.dump
    else:
        import meliae.scanner as scanner
        fn = (scanner.dump_all_objects if mode == "all"
              else scanner.dump_gc_objects)

    t = time.perf_counter()
    root = workload.build(n)
    build_s = time.perf_counter() - t
    gc.collect()
    objs = gc.get_objects()
    gc_objects = len(objs)
    del objs
    gc.collect()

    path = os.path.join(outdir, "dump-%s.json" % mode)
    gc.disable()  # same for every mode: time the walk, not collections
    reset_hwm()
    rss0 = proc_status("VmRSS")["VmRSS"]
    t0 = time.perf_counter()
    fn(path)
    t1 = time.perf_counter()
    st = proc_status("VmHWM", "VmRSS")
    gc.enable()

    res = {
        "mode": mode,
        "n": n,
        "build_s": build_s,
        "gc_objects": gc_objects,
        "time_s": t1 - t0,
        "rss_before_kib": rss0,
        "hwm_kib": st["VmHWM"],
        "rss_after_kib": st["VmRSS"],
        "extra_kib": st["VmHWM"] - rss0,
        "objects": count_lines(path),
        "file_bytes": os.path.getsize(path),
        "root_alive": root is not None,
    }
    if not keep:
        os.unlink(path)
    print(json.dumps(res))


# --------------------------------------------------------------------------
# parent side


def run_child(mode, n, outdir, keep):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", mode,
           "--n", str(n), "--dir", outdir]
    if keep:
        cmd.append("--child-keep")
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    if p.returncode != 0:
        err = (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])
        return {"mode": mode, "error": err[-1]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def fmt_table(results, n, repeat):
    base = results.get("purepy")
    base_t = base["time_s"] if base and "error" not in base else None
    rows = []
    head = ("| mode | objects | file MiB | bytes/obj | best time s "
            "| kobj/s | extra peak RSS MiB | speedup vs pure-Py | targets |")
    rows.append(head)
    rows.append("|" + "---|" * 9)
    for mode in MODES:
        r = results.get(mode)
        if r is None:
            continue
        if "error" in r:
            rows.append("| %s | n/a: %s |%s" % (LABELS[mode],
                                              r["error"][:80], " |" * 7))
            continue
        bpo = r["file_bytes"] / max(r["objects"], 1)
        mib = r["extra_kib"] / 1024.0
        speed = base_t / r["time_s"] if base_t else None
        verdict = []
        if mode != "purepy":
            if speed is not None:
                verdict.append("speed %s" % ("PASS" if speed >= TARGET_SPEEDUP
                                             else "MISS"))
            verdict.append("RSS %s" % ("PASS" if mib <= TARGET_RSS_MIB[mode]
                                       else "MISS"))
            verdict.append("B/obj %s" % ("PASS" if bpo <= TARGET_BPO
                                         else "MISS"))
        rows.append("| %s | %d | %.1f | %.1f | %.3f | %.0f | %.2f | %s | %s |"
                    % (LABELS[mode], r["objects"], r["file_bytes"] / 2**20,
                       bpo, r["time_s"], r["objects"] / r["time_s"] / 1e3,
                       mib, "%.1fx" % speed if speed else "-",
                       ", ".join(verdict) or "baseline"))
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=lambda s: int(float(s)), default=1_000_000,
                    help="workload size, objects (default 1e6)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="fresh-process runs per mode; best time, max RSS")
    ap.add_argument("--quick", action="store_true",
                    help="smoke check: --n 100000 --repeat 1")
    ap.add_argument("--modes", default=",".join(MODES),
                    help="comma-separated subset of %s" % ",".join(MODES))
    ap.add_argument("--out", help="append a markdown section to this file")
    ap.add_argument("--keep", metavar="DIR",
                    help="keep the dump files (last run) in DIR")
    ap.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    ap.add_argument("--child-keep", action="store_true",
                    help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        child(args.child, args.n, args.dir, args.child_keep)
        return 0

    if args.quick:
        args.n, args.repeat = 100_000, 1
    modes = [m for m in args.modes.split(",") if m]
    for m in modes:
        if m not in MODES:
            ap.error("unknown mode %r" % m)

    outdir = args.keep or tempfile.mkdtemp(prefix="meliae-bench-")
    os.makedirs(outdir, exist_ok=True)
    runs = {m: [] for m in modes}
    try:
        # interleave modes so drift on a shared machine hits all equally
        for i in range(args.repeat):
            for m in modes:
                r = run_child(m, args.n, outdir, bool(args.keep))
                runs[m].append(r)
                if "error" in r:
                    print("run %d %-6s ERROR %s" % (i + 1, m, r["error"]),
                          file=sys.stderr)
                else:
                    print("run %d %-6s %8.3fs  extra %7.2f MiB  %d objects  "
                          "(build %.2fs, gc objects %d)"
                          % (i + 1, m, r["time_s"], r["extra_kib"] / 1024,
                             r["objects"], r["build_s"], r["gc_objects"]),
                          file=sys.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(outdir, ignore_errors=True)

    results = {}
    for m, rs in runs.items():
        ok = [r for r in rs if "error" not in r]
        if not ok:
            results[m] = rs[-1]
            continue
        best = dict(min(ok, key=lambda r: r["time_s"]))
        best["extra_kib"] = max(r["extra_kib"] for r in ok)
        best["objects_range"] = (min(r["objects"] for r in ok),
                                 max(r["objects"] for r in ok))
        results[m] = best

    gc_objs = next((r["gc_objects"] for r in results.values()
                    if "gc_objects" in r), None)
    table = fmt_table(results, args.n, args.repeat)
    cmd = " ".join(["PYTHONPATH=%s" % os.environ.get("PYTHONPATH", ""),
                    sys.executable, "bench/bench_scanner.py"] + sys.argv[1:])
    notes = [
        "N = %d, repeat = %d (best time, max extra RSS), Python %s, "
        "%d CPUs, %s" % (args.n, args.repeat, platform.python_version(),
                         os.cpu_count(), platform.platform()),
        "len(gc.get_objects()) after build + gc.collect(): %s" % gc_objs,
        "each run: fresh process, gc disabled around the timed call, dump "
        "to a file under %s" % (args.keep or tempfile.gettempdir()),
    ]
    a, p = results.get("all"), results.get("purepy")
    if a and p and "error" not in a and "error" not in p:
        notes.append("objects dumped: meliae all %d vs pure-Python %d "
                     "(diff %+d)" % (a["objects"], p["objects"],
                                     a["objects"] - p["objects"]))
    print()
    print(table)
    print()
    for line in notes:
        print(line)

    if args.out:
        with open(args.out, "a") as f:
            f.write("\n### %s, N = %d\n\n" % (
                datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), args.n))
            f.write("```\n%s\n```\n\n" % cmd)
            f.write(table + "\n\n")
            for line in notes:
                f.write("- %s\n" % line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
