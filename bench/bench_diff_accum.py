# SPDX-License-Identifier: MIT
"""`meliae-cli diff` with accumulation points against a baseline CLI, on
two dumps of one process: 200,000 Nodes (each a Node -> Block -> bytes)
in a module list, then 100,000 more.

    PYTHONPATH=build/scanner python3 bench/bench_diff_accum.py \\
        --cli build/cli/meliae-cli --baseline ../main/build/cli/meliae-cli

Both CLIs import the two dumps into a store of their own, then answer
`diff 1 2 --top 10` --repeat times, interleaved; prints each one's median
time, peak RSS (the diff command's VmHWM, from /usr/bin/time) and its
number of groups of new objects, and the ratios."""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

MAKE = r"""
import os, sys
from meliae import scanner
class Node:
    def __init__(s, n): s.n = n; s.block = Block()
class Block:
    def __init__(s): s.data = os.urandom(40)
HELD = [Node(i) for i in range(200000)]
scanner.dump_all_objects(sys.argv[1])
HELD.extend(Node(i) for i in range(200000, 300000))
scanner.dump_all_objects(sys.argv[2])
"""


def run(cli, store, *args):
    return subprocess.run([cli, "--store", store] + list(args), check=True,
                          capture_output=True, text=True).stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    ap.add_argument("--baseline", required=True)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        da, db = os.path.join(tmp, "a.json"), os.path.join(tmp, "b.json")
        subprocess.run([sys.executable, "-c", MAKE, da, db], check=True)
        clis = {"baseline": a.baseline, "this": a.cli}
        res = {k: {"t": [], "rss": []} for k in clis}
        for k, cli in clis.items():
            st = os.path.join(tmp, k)
            run(cli, st, "import", da, "--label", "x")
            run(cli, st, "import", db, "--label", "x")
            doc = json.loads(run(cli, st, "--json", "diff", "1", "2", "--top", "0"))
            res[k]["groups"] = doc["new_objects"]["groups_total"]
        for _ in range(a.repeat):
            for k, cli in clis.items():
                st = os.path.join(tmp, k)
                t0 = time.perf_counter()
                p = subprocess.run(["/usr/bin/time", "-f", "%M", cli, "--store",
                                    st, "diff", "1", "2", "--top", "10"],
                                   check=True, capture_output=True, text=True)
                res[k]["t"].append(time.perf_counter() - t0)
                res[k]["rss"].append(int(p.stderr.split()[-1]))
        for k in clis:
            print("%-8s diff: %.2f s median, peak RSS %.0f MiB, %d groups"
                  % (k, statistics.median(res[k]["t"]),
                     max(res[k]["rss"]) / 1024, res[k]["groups"]))
        print("ratio this/baseline: time %.2f, peak RSS %.2f" % (
            statistics.median(res["this"]["t"]) / statistics.median(res["baseline"]["t"]),
            max(res["this"]["rss"]) / max(res["baseline"]["rss"])))


if __name__ == "__main__":
    main()
