"""Benchmark of meliae-cli's queries (issue 5).

    python3 bench/bench_cli.py --build BUILDDIR [--quick] [--keep DIR]

Builds one store through a real meliae-monitord, from synthetic dumps
written line by line here (fixed seeds and layouts, no scanner involved):

- "small": 1,000 snapshots of a process of about 10,000 objects, streamed
  over one connection (docs/protocol.md); a Leak type grows by one
  instance per snapshot, a bytearray by 37 bytes, an Event type jitters;
- "big3m": one snapshot of 3,000,000+ objects (750 shards x 1,000 records
  of 4 objects), with a chain of 24 Node objects from a shard to a
  "needle" str, which 5,000 tuples of an unreachable cycle also refer to;
- "big1m": two snapshots of 1,000,000+ objects, the second the first plus
  5,000 new records (20,000 objects, 2 %);

the big ones written to files and sent with `meliae-cli import` through
the daemon.  The daemon is then stopped and each query runs 5 times as a
subprocess (`meliae-cli --store DIR --json ...`); the table gives the best
wall-clock time, against the targets of issue 5 and two baselines from the
same run: `meliae-cli --version` (process start) and, for summary and diff,
a subprocess running `meliae.loader.load(dump).summarize()` on the same
dump file.

Prints a Markdown table, the commands, and the figures as JSON; the
figures go to bench/RESULTS.md.
"""

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

RUNS = 5
# Addresses: index -> a scattered, 32-byte aligned address (a bijection
# on [0, 2^23)), as a real heap's addresses are not in walk order.
ADDR_BITS = 23
ADDR_MULT = 2654435761


def addr(i):
    assert i < (1 << ADDR_BITS)
    return 0x7F0000000000 + ((i * ADDR_MULT) & ((1 << ADDR_BITS) - 1)) * 32


def line(a, type_, size, refs=(), name=None, len_=None):
    s = '{"address": %d, "type": "%s", "size": %d' % (a, type_, size)
    if name is not None:
        s += ', "name": "%s"' % name
    if len_ is not None:
        s += ', "len": %d' % len_
    return s + ', "refs": [%s]}\n' % ", ".join(map(str, refs))


# ---- the 1,000 small snapshots --------------------------------------------

class Small:
    """The ~10k-object process; snapshot(k) is the body of snapshot k."""

    STABLE_TUPLES = 2800
    LEAK0 = 600                 # Leak instances in snapshot 0; +1 each
    EVENTS = 200

    def __init__(self, nsnaps):
        n = 0

        def new():
            nonlocal n
            n += 1
            return addr(n)

        self.mod, self.mdict, self.k_reg, self.k_leaks = new(), new(), new(), new()
        self.reg, self.leaks, self.k_buf, self.buf = new(), new(), new(), new()
        self.k_ev, self.events, self.leak_type = new(), new(), new()
        lines = [line(self.k_reg, "str", 52, len_=3),
                 line(self.k_leaks, "str", 54, len_=5),
                 line(self.k_buf, "str", 52, len_=3),
                 line(self.k_ev, "str", 55, len_=6),
                 line(self.leak_type, "type", 1072, name="Leak")]
        tuples = []
        for i in range(self.STABLE_TUPLES):
            t, s, v = new(), new(), new()
            tuples.append(t)
            lines.append(line(t, "tuple", 56, [s, v], len_=2))
            lines.append(line(s, "str", 49 + 8 + i % 40, len_=8 + i % 40))
            lines.append(line(v, "int", 28))
        lines.append(line(self.reg, "list", 56 + 8 * len(tuples), tuples,
                          len_=len(tuples)))
        self.stable = "".join(lines).encode()
        self.nstable = len(lines)
        self.stable_bytes = sum(json.loads(l)["size"] for l in lines)
        nleak = self.LEAK0 + nsnaps
        self.leak_addrs = [new() for _ in range(nleak)]
        self.leak_lines = [line(a, "Leak", 72, [self.leak_type]).encode()
                           for a in self.leak_addrs]
        self.event_addrs = [new() for _ in range(self.EVENTS + 13)]

    def snapshot(self, k):
        nleak = self.LEAK0 + k
        nev = self.EVENTS + (k * 7) % 13
        head = [line(self.mod, "module", 72, [self.mdict], name="smallapp"),
                line(self.mdict, "dict", 360, [self.k_reg, self.reg,
                                               self.k_leaks, self.leaks,
                                               self.k_buf, self.buf,
                                               self.k_ev, self.events],
                     len_=4),
                line(self.leaks, "list", 56 + 8 * nleak,
                     self.leak_addrs[:nleak], len_=nleak),
                line(self.buf, "bytearray", 1000 + 37 * k, len_=943 + 37 * k),
                line(self.events, "list", 56 + 8 * nev,
                     self.event_addrs[:nev], len_=nev)]
        head += [line(a, "Event", 232, len_=0) for a in self.event_addrs[:nev]]
        body = "".join(head).encode() + self.stable + b"".join(
            self.leak_lines[:nleak])
        nobj = len(head) + self.nstable + nleak
        nbytes = (72 + 360 + 56 + 8 * nleak + 1000 + 37 * k + 56 + 8 * nev
                  + 232 * nev + self.stable_bytes + 72 * nleak)
        return body, nobj, nbytes


def stream_small(sock_path, nsnaps):
    """Streams nsnaps snapshots over one connection; returns seconds."""
    small = Small(nsnaps)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(120)
    s.connect(sock_path)
    buf = b""
    t0 = time.perf_counter()
    with s:
        for k in range(nsnaps):
            body, nobj, nbytes = small.snapshot(k)
            header = {"meliae_stream": 1, "pid": os.getpid(),
                      "start_time": 0, "hostname": "bench", "program":
                      "bench_cli.py", "python": platform.python_version(),
                      "label": "small", "values": "none", "mode": "all",
                      "request": 0, "time": time.time()}
            trailer = {"end": "complete", "objects": nobj, "bytes": nbytes}
            s.sendall(json.dumps(header).encode() + b"\n" + body
                      + json.dumps(trailer).encode() + b"\n")
            while True:
                while b"\n" not in buf:
                    chunk = s.recv(65536)
                    if not chunk:
                        sys.exit("daemon closed the connection")
                    buf += chunk
                ln, buf = buf.split(b"\n", 1)
                msg = json.loads(ln)
                if "ack" in msg:
                    break
                if "error" in msg:
                    sys.exit("snapshot %d refused: %s" % (k, msg))
    return time.perf_counter() - t0


# ---- the big dumps ------------------------------------------------------

def write_records(path, nshards, per_shard, extra=0, deep=False):
    """A dump of module bigapp -> dict -> list of nshards shard dicts ->
    per_shard records each (Record instance, its str and int, its key str).
    extra: records added to the first shards (100 each), new addresses.
    deep: the Node chain, the needle and the unreachable tuple cycle.
    Returns (objects, the needle's address or None)."""
    n_fixed = 7
    total_rec = nshards * per_shard
    mod, mdict, k_shards, top, rtype, k_k, k_v = (addr(i) for i in range(7))
    shard_addr = [addr(n_fixed + i) for i in range(nshards)]
    rec0 = n_fixed + nshards          # record r: 4 indices from rec0 + 4r
    extra0 = rec0 + 4 * total_rec     # extra records: after all the others
    deep0 = extra0 + 4 * extra
    per_extra_shard = 100
    nobj = 0
    needle = None
    with open(path, "w", buffering=1 << 22) as f:
        w = f.write
        w(line(mod, "module", 72, [mdict], name="bigapp"))
        w(line(mdict, "dict", 360, [k_shards, top], len_=1))
        w(line(k_shards, "str", 55, len_=6))
        w(line(top, "list", 56 + 8 * nshards, shard_addr, len_=nshards))
        w(line(rtype, "type", 1072, name="Record"))
        w(line(k_k, "str", 50, len_=1))
        w(line(k_v, "str", 50, len_=1))
        nobj += 7
        nodes = [addr(deep0 + i) for i in range(24)] if deep else []
        for sh in range(nshards):
            recs = list(range(sh * per_shard, (sh + 1) * per_shard))
            ex = []
            if sh * per_extra_shard < extra:
                lo = sh * per_extra_shard
                ex = list(range(lo, min(lo + per_extra_shard, extra)))
            refs = []
            for r in recs:
                b = rec0 + 4 * r
                refs += [addr(b + 3), addr(b)]
            for r in ex:
                b = extra0 + 4 * r
                refs += [addr(b + 3), addr(b)]
            if deep and sh == 0:
                refs.append(nodes[0])
            nitems = len(recs) + len(ex)
            w(line(shard_addr[sh], "dict", 96 + 48 * nitems, refs,
                   len_=nitems))
            nobj += 1
            out = []
            for b in [rec0 + 4 * r for r in recs] + [extra0 + 4 * r for r in ex]:
                a, s, v, key = addr(b), addr(b + 1), addr(b + 2), addr(b + 3)
                out.append('{"address": %d, "type": "Record", "size": 72, '
                           '"refs": [%d, %d, %d, %d, %d]}\n'
                           '{"address": %d, "type": "str", "size": 61, '
                           '"len": 12, "refs": []}\n'
                           '{"address": %d, "type": "int", "size": 28, '
                           '"refs": []}\n'
                           '{"address": %d, "type": "str", "size": 57, '
                           '"len": 8, "refs": []}\n'
                           % (a, k_k, s, k_v, v, rtype, s, v, key))
            w("".join(out))
            nobj += 4 * nitems
        if deep:
            needle = addr(deep0 + 24)
            for i, a in enumerate(nodes):
                nxt = nodes[i + 1] if i + 1 < len(nodes) else needle
                w(line(a, "Node", 48, [nxt]))
            w(line(needle, "str", 55, len_=6))
            nobj += 25
            pool = addr(deep0 + 25)
            tuples = [addr(deep0 + 26 + i) for i in range(5000)]
            w(line(pool, "list", 56 + 8 * len(tuples), tuples,
                   len_=len(tuples)))
            w(line(tuples[0], "tuple", 56, [needle, pool], len_=2))
            for t in tuples[1:]:
                w(line(t, "tuple", 48, [needle], len_=1))
            nobj += 1 + len(tuples)
    return nobj, needle


# ---- running ------------------------------------------------------------

def timed(cmd, runs=RUNS, env=None):
    """Best and median wall-clock seconds of cmd over runs; the last
    stdout."""
    times = []
    out = None
    for _ in range(runs):
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, env=env)
        times.append(time.perf_counter() - t)
        if r.returncode != 0:
            sys.exit("%s: exit %d: %s" % (" ".join(cmd), r.returncode,
                                         r.stderr.decode(errors="replace")))
        out = r.stdout
    return min(times), statistics.median(times), out


def cli_import(cli, sock, path, label):
    t = time.perf_counter()
    r = subprocess.run([cli, "--socket", sock, "--json", "import", path,
                        "--label", label], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("import %s: %s" % (path, r.stderr))
    return json.loads(r.stdout), time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True, help="meson build directory")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 100 snapshots, 300k and 100k objects")
    ap.add_argument("--keep", help="build the store and dumps in this new "
                    "directory and keep them (default: a temporary "
                    "directory, removed)")
    args = ap.parse_args()
    cli = os.path.join(args.build, "cli", "meliae-cli")
    monitord = os.path.join(args.build, "monitord", "meliae-monitord")
    nsmall, big_shards, mid_shards = (100, 75, 25) if args.quick else \
        (1000, 750, 250)
    if args.keep and os.path.exists(args.keep) and os.listdir(args.keep):
        sys.exit("--keep %s: not empty (give a new directory)" % args.keep)
    tmp = args.keep or tempfile.mkdtemp(prefix="mlbench-cli.")
    os.makedirs(tmp, exist_ok=True)
    store = os.path.join(tmp, "store")
    sock = os.path.join(tmp, "d.sock")
    build = {}
    try:
        t = time.perf_counter()
        big, needle = os.path.join(tmp, "big3m.json"), None
        nbig, needle = write_records(big, big_shards, 1000, deep=True)
        mid_a, mid_b = os.path.join(tmp, "mid_a.json"), os.path.join(tmp, "mid_b.json")
        na, _ = write_records(mid_a, mid_shards, 1000)
        nb, _ = write_records(mid_b, mid_shards, 1000, extra=mid_shards * 20)
        build["write_dumps_s"] = time.perf_counter() - t

        d = subprocess.Popen([monitord, "--store", store, "--socket", sock,
                              "--foreground", "--log-level", "warn"])
        for _ in range(1000):
            if os.path.exists(sock):
                break
            time.sleep(0.01)
        else:
            sys.exit("daemon did not start")
        build["stream_small_s"] = stream_small(sock, nsmall)
        ans, build["import_big_s"] = cli_import(cli, sock, big, "big3m")
        assert ans["objects"] == nbig, (ans, nbig)
        ans, build["import_mid_a_s"] = cli_import(cli, sock, mid_a, "big1m")
        assert ans["objects"] == na
        ans, build["import_mid_b_s"] = cli_import(cli, sock, mid_b, "big1m")
        assert ans["objects"] == nb
        d.terminate()
        if d.wait(timeout=120) != 0:
            sys.exit("daemon exit status %d" % d.returncode)
        # pages in use (st_size): with MDB_WRITEMAP data.mdb is the map's size
        build["store_mib"] = int(subprocess.run(
            [os.path.join(args.build, "tests", "store_tool"), "size", store],
            check=True, capture_output=True, text=True).stdout) / 2**20

        env = dict(os.environ, PYTHONPATH=os.path.join(args.build, "scanner"))
        q = [cli, "--store", store, "--json"]
        loader = "from meliae import loader; loader.load(%r, show_prog=False).summarize()"
        rows = []

        def row(name, cmd, target, baseline=None, check=None):
            best, med, out = timed(cmd)
            if check:
                check(json.loads(out))
            r = {"query": name, "cmd": cmd, "best_s": best, "median_s": med,
                 "target_s": target}
            if baseline:
                r["baseline"] = baseline
            rows.append(r)
            return r

        version = row("process start (baseline)", [cli, "--version"], None)

        def check_growth(doc):
            [p] = [p for p in doc["processes"] if p["label"] == "small"]
            assert p["snapshots"] == nsmall, p["snapshots"]
            assert p["types"][0]["type"] == "Leak" and p["types"][0]["suspect"]
        row("growth, all processes (%d + 3 snapshots)" % nsmall,
            q + ["growth"], 0.100, check=check_growth)

        def check_summary(doc):
            assert doc["total_objects"] == nbig
        loader_big = timed([sys.executable, "-c", loader % big], env=env)
        row("summary of the %.1fM snapshot" % (nbig / 1e6),
            q + ["summary", "latest", "--process", "big3m"], 0.020,
            baseline=("loader.load(big3m.json).summarize()", loader_big[0]),
            check=check_summary)

        def check_referrers(doc):
            chain = doc["chains"][0]
            assert chain[-1]["type"] == "module", chain[-1]
            assert len(chain) == 29, len(chain)
            doc["_hops"] = len(chain) - 1
            row_ref["visited"] = doc["visited"]
        row_ref = {}
        r = row("referrers of an object 28 hops deep in the %.1fM snapshot"
                % (nbig / 1e6),
                q + ["referrers", "latest", str(needle), "--process", "big3m"],
                0.050, check=check_referrers)
        r.update(row_ref)

        def check_diff(doc):
            assert doc["new_objects"]["count"] >= nb - na, doc["new_objects"]
        loader_mid = timed([sys.executable, "-c", loader % mid_b], env=env)
        row("diff of the two %.1fM snapshots (+%d objects)"
            % (na / 1e6, nb - na),
            q + ["diff", "latest~1", "latest", "--process", "big1m"], 2.0,
            baseline=("loader.load(mid_b.json).summarize()", loader_mid[0]),
            check=check_diff)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    print("Python %s, %d CPUs, %s; load average %s" % (
        platform.python_version(), os.cpu_count(), platform.platform(),
        " ".join("%.2f" % x for x in os.getloadavg())))
    print()
    print("Store: %d snapshots of ~10k objects (streamed in %.1f s), one of %d "
          "objects (import %.1f s), two of %d and %d (import %.1f s, %.1f s); "
          "store %.0f MiB in use; dumps written in %.1f s."
          % (nsmall, build["stream_small_s"], nbig, build["import_big_s"],
             na, nb, build["import_mid_a_s"], build["import_mid_b_s"],
             build["store_mib"], build["write_dumps_s"]))
    print()
    print("| query | best of %d ms | median ms | target ms | verdict "
          "| over process start ms | baseline | baseline ms | vs baseline |"
          % RUNS)
    print("|---|---|---|---|---|---|---|---|---|")
    start = version["best_s"]
    for r in rows:
        tgt = r["target_s"]
        verdict = "-" if tgt is None else ("PASS" if r["best_s"] <= tgt else "MISS")
        bl = r.get("baseline")
        print("| %s | %.1f | %.1f | %s | %s | %s | %s | %s | %s |" % (
            r["query"], r["best_s"] * 1e3, r["median_s"] * 1e3,
            "-" if tgt is None else "%.0f" % (tgt * 1e3), verdict,
            "-" if r is version else "%.1f" % ((r["best_s"] - start) * 1e3),
            "`%s`" % bl[0] if bl else "-",
            "%.0f" % (bl[1] * 1e3) if bl else "-",
            "%.0fx faster" % (bl[1] / r["best_s"]) if bl else "-"))
    print()
    print("Commands (DIR: the store):")
    print()
    for r in rows:
        cmd = ["meliae-cli" if c == cli else ("DIR" if c == store else c)
               for c in r["cmd"]]
        print("- %s: `%s`" % (r["query"], " ".join(cmd)))
    print()
    print("```json")
    print(json.dumps({"build": build, "rows": [
        {k: v for k, v in r.items() if k != "cmd"} for r in rows]}, indent=1))
    print("```")


if __name__ == "__main__":
    main()
