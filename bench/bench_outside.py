#!/usr/bin/env python3
"""Every byte counted (issue 19): how much of a pandas DataFrame each tool
sees, against tracemalloc's traced growth while building it, and what the
new figures cost.

  * the DataFrame: meliae's dump growth (dump_all_objects before and
    after), pympler's asizeof(df), guppy3's heap().size growth, each as a
    ratio of tracemalloc's traced bytes;
  * C types: zlib/bz2/lzma/StringIO objects as meliae sizes them, against
    sys.getsizeof and tracemalloc;
  * cost: _scanner.process_stats() (sent with every snapshot) against the
    dump of the same heap, and a dump with a 1M-element object array
    against one with a list of the same elements.

Run (the index's numpy/pandas and the peers in a venv of Debian's
python3; bench/RESULTS.md has figures):

  /usr/bin/python3 -m venv /opt/ml-np2
  /opt/ml-np2/bin/pip install -r tests/py/requirements-numpy.txt pympler guppy3
  PYTHONPATH=build/scanner /opt/ml-np2/bin/python bench/bench_outside.py --rows 500000
"""

import argparse
import bz2
import gc
import io
import json
import lzma
import os
import sys
import tempfile
import time
import tracemalloc
import zlib

import numpy as np
import pandas as pd

from meliae import _scanner, scanner


def dump_total(path):
    scanner.dump_all_objects(path)
    with open(path, "rb") as f:
        total = sum(json.loads(line)["size"] for line in f)
    os.unlink(path)
    return total


def build(rows, token):
    return pd.DataFrame({
        "name": pd.Series(["row-%d-%s" % (i, token) for i in range(rows)],
                          dtype=object),
        "city": pd.Categorical(["c%d" % (i % 50) for i in range(rows)]),
        "v": np.arange(rows, dtype=np.float64) * 0.5,
        "k": np.arange(rows, dtype=np.int64),
    })


def traced(make):
    gc.collect()
    tracemalloc.start()
    try:
        t0 = tracemalloc.get_traced_memory()[0]
        o = make()
        t1 = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return o, t1 - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=500000)
    args = ap.parse_args()
    path = os.path.join(tempfile.mkdtemp(prefix="ml-bench-"), "h.json")
    token = os.urandom(3).hex()
    print("python %s, numpy %s, pandas %s, rows %d"
          % (sys.version.split()[0], np.__version__, pd.__version__, args.rows))

    gc.collect()
    before = dump_total(path)
    df, tm = traced(lambda: build(args.rows, token))
    after = dump_total(path)
    print("DataFrame: tracemalloc traced %.1f MiB" % (tm / 2**20))
    print("  meliae dump growth  %7.1f MiB  %.3f of traced"
          % ((after - before) / 2**20, (after - before) / tm))
    try:
        from pympler.asizeof import asizeof
        t = time.perf_counter()
        a = asizeof(df)
        print("  pympler asizeof     %7.1f MiB  %.3f of traced  (%.1f s)"
              % (a / 2**20, a / tm, time.perf_counter() - t))
    except ImportError:
        print("  pympler: not installed")
    try:
        from guppy import hpy
        h = hpy()
        del df
        gc.collect()
        h.setrelheap()
        df = build(args.rows, token)
        t = time.perf_counter()
        g = h.heap().size
        print("  guppy3 heap growth  %7.1f MiB  %.3f of traced  (%.1f s)"
              % (g / 2**20, g / tm, time.perf_counter() - t))
    except ImportError:
        print("  guppy3: not installed")

    print("C types: meliae / getsizeof / tracemalloc (bytes)")
    for name, make in (("zlib.compressobj(9)", lambda: zlib.compressobj(9)),
                       ("bz2.BZ2Compressor(9)", lambda: bz2.BZ2Compressor(9)),
                       ("lzma decompressor, used", lambda: (lambda d: (
                           d.decompress(lzma.compress(b"a" * 10**6), 10), d)[1])(
                               lzma.LZMADecompressor())),
                       ("io.StringIO(1M chars)", lambda: io.StringIO("y" * 10**6))):
        o, t = traced(make)
        print("  %-26s %10d %10d %10d  (%.3f)" % (name, scanner.size_of(o),
                                                  sys.getsizeof(o), t,
                                                  scanner.size_of(o) / t))

    n = 10
    t = time.perf_counter()
    for _ in range(n):
        _scanner.process_stats()
    ps = (time.perf_counter() - t) / n
    t = time.perf_counter()
    dump_total(path)
    dump = time.perf_counter() - t
    print("process_stats: %.3f ms, %.5f of a dump of this heap (%.2f s)"
          % (ps * 1e3, ps / dump, dump))

    del df
    gc.collect()
    elems = ["e%d" % i for i in range(1000000)]
    holder = [np.array(elems, dtype=object)]
    t = time.perf_counter()
    dump_total(path)
    arr = time.perf_counter() - t
    holder = [list(elems)]
    t = time.perf_counter()
    dump_total(path)
    lst = time.perf_counter() - t
    print("dump with a 1M-element object array / with a list of them: %.2f"
          % (arr / lst))
    del holder


if __name__ == "__main__":
    main()
