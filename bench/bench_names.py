"""What names of code cost the store (issue 18, point 1): bytes per object
of one snapshot streamed with values='none' (the default), two builds in
one run:

    python3 bench/bench_names.py --build NEW --base OLD [--n 1000000]

Each build streams with its own scanner (the scanner decides which values
'none' sends) to its own meliae-monitord on a fresh store; the figure is
the store's pages in use (tests/tools/store_tool size) over the
snapshot's objects, as bench_stream.py reports it.  Two heaps:

- code: the interpreter after importing a set of stdlib packages (email,
  http, asyncio, json, unittest, argparse, decimal, xml, logging, sqlite3,
  urllib, concurrent.futures, dataclasses, inspect, pydoc): mostly
  functions, code objects, classes and their dicts, the heap where names
  of code are the densest -- the worst case for the change;
- mixed: the same plus bench/workload.py's application heap of N objects
  (records, dicts with data keys, strings, ints).

Prints a Markdown table with the ratio NEW / OLD.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bench_stream import start_daemon, store_bytes, store_objects  # noqa: E402

APP = r"""
import gc, sys
sys.path.insert(0, %(bench)r)
import email.parser, email.mime.text, http.server, http.client, asyncio, json
import unittest, argparse, decimal, xml.dom.minidom, xml.etree.ElementTree
import logging.handlers, sqlite3, urllib.request, concurrent.futures
import dataclasses, inspect, pydoc
n = int(sys.argv[2])
if n:
    import workload
    root = workload.build(n)
gc.collect()
from meliae import scanner
st = scanner.stream_to(sys.argv[1], values="none", timeout=900)
st.snapshot()
st.close()
"""


def one(build, n):
    tmp = tempfile.mkdtemp(prefix="mlnames-")
    d = None
    try:
        d, store, sock = start_daemon(build, tmp)
        env = dict(os.environ, PYTHONPATH=os.path.join(build, "scanner"))
        subprocess.run([sys.executable, "-c", APP % {"bench": HERE}, sock,
                        str(n)], check=True, env=env)
        snaps = store_objects(build, store)
        objects = sum(s["objects"] for s in snaps)
        return objects, store_bytes(build, store) / objects
    finally:
        if d is not None:
            d.terminate()
            d.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--base", required=True)
    ap.add_argument("--n", type=int, default=1000000)
    a = ap.parse_args()
    rows = []
    for name, n in (("code", 0), ("mixed", a.n)):
        new = one(a.build, n)
        old = one(a.base, n)
        rows.append((name, n, new, old))
    print("| heap | objects new / old | store B/obj old | store B/obj new "
          "| new / old |")
    print("|---|---|---|---|---|")
    for name, n, new, old in rows:
        print("| %s%s | %d / %d | %.1f | %.1f | %.3f |"
              % (name, " (N=%d)" % n if n else "", new[0], old[0], old[1],
                 new[1], new[1] / old[1]))


if __name__ == "__main__":
    main()
