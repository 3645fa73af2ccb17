# SPDX-License-Identifier: MIT
"""What meliae.pth costs a program that does not set MELIAE_STREAM.

Two measures, in one run:

1. `python -c pass`, started N times in a venv (--without-pip) whose
   site-packages hold meliae.pth, and N times in a venv alike but for it,
   interleaved (one without, one with) so that drift hits both alike:
   median and mean wall time of each, and their ratio.
2. The .pth alone: site.addpackage() of meliae.pth, timed in-process
   (the work `site` does for it at every start: open, read, exec of its
   line), against addpackage() of an empty .pth file: what the line
   costs, free of the noise of process starts.

    PYTHONPATH=build/scanner /usr/bin/python3 bench/bench_pth.py [--n 300]
"""

import argparse
import os
import shutil
import site
import statistics
import subprocess
import sys
import tempfile
import time
import timeit

HERE = os.path.dirname(os.path.abspath(__file__))
PTH = os.path.join(HERE, "..", "scanner", "meliae", "meliae.pth")


def start_times(py, n, env):
    """Wall times of n starts of `py -c pass`, in seconds."""
    out = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run([py, "-c", "pass"], env=env, check=True)
        out.append(time.perf_counter() - t)
    return out


def addpackage_us(sitedir, name, n):
    """Microseconds per site.addpackage(), the best of 7 rounds of n (as
    timeit does: the least disturbed by the other processes)."""
    return min(timeit.repeat(lambda: site.addpackage(sitedir, name, set()),
                             number=n, repeat=7)) / n * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MELIAE_", "PYTHON"))}
    tmp = tempfile.mkdtemp(prefix="bench-pth-")
    try:
        # Two venvs alike but for meliae.pth: the file is never copied
        # between runs (a fresh file's first open would be timed).
        pys, sps = [], []
        for name in ("without", "with"):
            venv = os.path.join(tmp, name)
            subprocess.run([sys.executable, "-m", "venv", "--without-pip",
                            venv], check=True)
            pys.append(os.path.join(venv, "bin", "python"))
            sps.append(subprocess.run(
                [pys[-1], "-c", "import sysconfig; print(sysconfig."
                 "get_paths()['purelib'])"], capture_output=True, text=True,
                check=True).stdout.strip())
        shutil.copy(PTH, os.path.join(sps[1], "meliae.pth"))
        open(os.path.join(sps[0], "empty.pth"), "w").close()
        for py in pys:
            start_times(py, 20, env)            # warm the page cache
        with_, without = [], []
        for _ in range(args.n):
            without += start_times(pys[0], 1, env)
            with_ += start_times(pys[1], 1, env)
        k = 2000
        us_meliae = addpackage_us(sps[1], "meliae.pth", k)
        us_empty = addpackage_us(sps[0], "empty.pth", k)
    finally:
        shutil.rmtree(tmp)
    med_w, med_wo = statistics.median(with_), statistics.median(without)
    print("python %s, %d starts each, interleaved"
          % (sys.version.split()[0], args.n))
    print("  python -c pass without meliae.pth: median %.2f ms, mean %.2f ms"
          % (med_wo * 1e3, statistics.mean(without) * 1e3))
    print("  python -c pass with meliae.pth:    median %.2f ms, mean %.2f ms"
          % (med_w * 1e3, statistics.mean(with_) * 1e3))
    print("  ratio (with / without, medians): %.3f" % (med_w / med_wo))
    print("  site.addpackage(meliae.pth): %.1f us; of an empty .pth: %.1f us"
          " (best of 7 rounds of %d); the line itself: %.1f us, %.2f%% of "
          "the median start" % (us_meliae, us_empty, k, us_meliae - us_empty,
                                (us_meliae - us_empty) / (med_wo * 1e6)
                                * 100))


if __name__ == "__main__":
    main()
