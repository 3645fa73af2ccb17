# SPDX-License-Identifier: MIT
"""What meliae.pth costs a program that does not set MELIAE_STREAM.

Two measures, in one run:

1. `python -c pass`, started N times in a venv (--without-pip) whose
   site-packages hold meliae.pth, and N times in the same venv without it,
   interleaved (one with, one without) so that drift hits both alike:
   median and mean wall time of each, and their ratio.
2. The .pth alone: site.addpackage() of meliae.pth, timed in-process over
   many calls (the work `site` does for it at every start: open, read,
   exec of its line), against addpackage() of an empty .pth file.

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
    t = time.perf_counter()
    for _ in range(n):
        site.addpackage(sitedir, name, set())
    return (time.perf_counter() - t) / n * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MELIAE_", "PYTHON"))}
    tmp = tempfile.mkdtemp(prefix="bench-pth-")
    try:
        venv = os.path.join(tmp, "venv")
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv],
                       check=True)
        py = os.path.join(venv, "bin", "python")
        sp = subprocess.run([py, "-c", "import sysconfig; print(sysconfig."
                             "get_paths()['purelib'])"], capture_output=True,
                            text=True, check=True).stdout.strip()
        pth = os.path.join(sp, "meliae.pth")
        start_times(py, 20, env)                # warm the page cache
        with_, without = [], []
        for _ in range(args.n):
            shutil.copy(PTH, pth)
            with_ += start_times(py, 1, env)
            os.unlink(pth)
            without += start_times(py, 1, env)
        shutil.copy(PTH, pth)
        open(os.path.join(sp, "empty.pth"), "w").close()
        k = 20000
        us_meliae = addpackage_us(sp, "meliae.pth", k)
        us_empty = addpackage_us(sp, "empty.pth", k)
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
          " (%d calls each)" % (us_meliae, us_empty, k))


if __name__ == "__main__":
    main()
