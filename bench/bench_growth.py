"""Benchmark of `meliae-cli growth` over 1,000 snapshots (issue 12):
the trend test against a baseline build, in the same run.

    python3 bench/bench_growth.py --build BUILDDIR --baseline OTHERBUILD
                                  [--snapshots N] [--runs R]

Streams bench_cli.py's "small" process (1,000 snapshots of ~10,000
objects: Leak grows by one instance a snapshot, a bytearray by 37 bytes,
Event jitters) to a real meliae-monitord built in BUILDDIR, then times
`meliae-cli --store DIR --json growth` of both builds on that one store,
alternating them R times (best and median wall-clock and CPU time, user
+ system, process start included: on a shared machine the CPU time is the
steadier figure), and checks that the new one ranks Leak first, as a suspect.
Prints a Markdown table and the figures as JSON (bench/RESULTS.md).
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_cli  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--baseline", required=True)
    ap.add_argument("--snapshots", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=11)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="mlbench-growth.")
    store, sock = os.path.join(tmp, "store"), os.path.join(tmp, "d.sock")
    try:
        d = subprocess.Popen([os.path.join(args.build, "monitord",
                                           "meliae-monitord"),
                              "--store", store, "--socket", sock,
                              "--foreground", "--log-level", "warn"])
        for _ in range(1000):
            if os.path.exists(sock):
                break
            time.sleep(0.01)
        stream_s = bench_cli.stream_small(sock, args.snapshots)
        d.terminate()
        if d.wait(timeout=120) != 0:
            sys.exit("daemon exit status %d" % d.returncode)
        builds = {"new": args.build, "baseline": args.baseline}
        times = {k: [] for k in builds}
        cpu = {k: [] for k in builds}
        out = {}
        for _ in range(args.runs):
            for k, b in builds.items():
                cmd = [os.path.join(b, "cli", "meliae-cli"), "--store", store,
                       "--json", "growth"]
                r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                t = time.perf_counter()
                r = subprocess.run(cmd, capture_output=True)
                times[k].append(time.perf_counter() - t)
                r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu[k].append(r1.ru_utime - r0.ru_utime + r1.ru_stime
                              - r0.ru_stime)
                if r.returncode != 0:
                    sys.exit("%s: %s" % (cmd, r.stderr.decode()))
                out[k] = json.loads(r.stdout)
        top = out["new"]["processes"][0]["types"][0]
        assert (top["type"], top["suspect"]) == ("Leak", True), top
        fig = {k: {"best_s": min(v), "median_s": statistics.median(v),
                   "cpu_best_s": min(cpu[k]),
                   "cpu_median_s": statistics.median(cpu[k])}
               for k, v in times.items()}
        fig["ratio_best"] = fig["new"]["best_s"] / fig["baseline"]["best_s"]
        fig["ratio_cpu_median"] = (fig["new"]["cpu_median_s"]
                                   / fig["baseline"]["cpu_median_s"])
        fig["snapshots"] = args.snapshots
        fig["stream_s"] = stream_s
        print("| growth, %d snapshots | best | median | CPU best | CPU median |"
              % args.snapshots)
        print("|---|---|---|---|---|")
        for k in builds:
            f = fig[k]
            print("| %s (%s) | %.1f ms | %.1f ms | %.1f ms | %.1f ms |" % (
                k, builds[k], f["best_s"] * 1e3, f["median_s"] * 1e3,
                f["cpu_best_s"] * 1e3, f["cpu_median_s"] * 1e3))
        print("\nnew / baseline: %.2f (best wall-clock), %.2f (median CPU)"
              % (fig["ratio_best"], fig["ratio_cpu_median"]))
        print(json.dumps(fig))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
