"""The daemon's anonymous memory after queries with wide answers (issue
22, point 1): does each `growth --top 0` or `report` leave memory behind?

    python3 bench/bench_query_rss.py --build BUILDDIR [--snapshots 30]
                                     [--types 20000] [--queries 5]

Streams SNAPSHOTS snapshots of one process, each of TYPES objects of
TYPES distinct type names (about 20 MB sent at the defaults), to a real
meliae-monitord built in BUILDDIR, then alternates `meliae-cli --json
growth --top 0` and `meliae-cli --json report` through the daemon,
QUERIES of each, and prints the daemon's RssAnon (/proc/PID/status:
LMDB's map is file-backed and does not count) after the stream and after
every query, with each query's exit code and answer size, as a Markdown
table and as JSON (bench/RESULTS.md).  The test that holds the bound is
tests/daemon/test_daemon_query.py, TestQueryMemory.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "daemon"))
from daemon_support import header, wide_snapshot  # noqa: E402


def rss_anon_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("RssAnon:"):
                return int(ln.split()[1])
    return 0


def stream(sock, nsnap, ntypes):
    """Sends nsnap wide snapshots on one connection; returns bytes sent."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(600)
    s.connect(sock)
    sent = 0
    f = s.makefile("rb")
    for k in range(nsnap):
        b = wide_snapshot(ntypes, k, hdr=header(label="wide",
                                                program="bench_query_rss"))
        s.sendall(b)
        sent += len(b)
        while True:
            reply = json.loads(f.readline())
            if "keepalive" in reply:
                continue
            if "ack" not in reply:
                raise SystemExit("snapshot %d refused: %r" % (k, reply))
            break
    s.close()
    return sent


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--snapshots", type=int, default=30)
    ap.add_argument("--types", type=int, default=20000)
    ap.add_argument("--queries", type=int, default=5)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="mlbench-qrss.")
    store, sock = os.path.join(tmp, "store"), os.path.join(tmp, "d.sock")
    cli = os.path.join(args.build, "cli", "meliae-cli")
    d = subprocess.Popen([os.path.join(args.build, "monitord",
                                       "meliae-monitord"),
                          "--store", store, "--socket", sock,
                          "--foreground", "--log-level", "warn"])
    rows = []
    try:
        for _ in range(1000):
            if os.path.exists(sock):
                break
            time.sleep(0.01)
        t0 = time.monotonic()
        sent = stream(sock, args.snapshots, args.types)
        rows.append({"step": "after %d snapshots (%.1f MB sent, %.0f s)"
                     % (args.snapshots, sent / 1e6, time.monotonic() - t0),
                     "rc": 0, "answer_bytes": 0,
                     "rss_anon_kib": rss_anon_kib(d.pid)})
        for q in range(args.queries):
            for cmd in (["growth", "--top", "0"], ["report"]):
                r = subprocess.run([cli, "--socket", sock, "--json"] + cmd,
                                   capture_output=True, timeout=600)
                time.sleep(0.5)     # the answer's buffer is freed once written
                rows.append({"step": "%s #%d" % (" ".join(cmd), q + 1),
                             "rc": r.returncode,
                             "answer_bytes": len(r.stdout),
                             "error": r.stderr.decode(errors="replace")
                             .strip()[:120],
                             "rss_anon_kib": rss_anon_kib(d.pid)})
    finally:
        d.terminate()
        d.wait(timeout=120)
        shutil.rmtree(tmp, ignore_errors=True)
    print("| step | exit | answer bytes | daemon RssAnon MiB |")
    print("|---|---|---|---|")
    for r in rows:
        print("| %s | %d | %d | %.1f |" % (r["step"], r["rc"],
                                           r["answer_bytes"],
                                           r["rss_anon_kib"] / 1024))
    print(json.dumps(rows))
    if d.returncode != 0:
        sys.exit("daemon exit status %d" % d.returncode)


if __name__ == "__main__":
    main()
