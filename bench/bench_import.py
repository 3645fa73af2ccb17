"""`meliae-cli import` through the daemon against a direct `--store`
import of the same file (issue 20, point 6), for one or two builds in one
run:

    python3 bench/bench_import.py --build NEW [--base OLD] [--n 1000000]

Writes a dump of N objects (a module, a dict, a list of N - 3 strs, each
line as the scanner writes it) once.  Per build, in turn (OLD, NEW, OLD,
NEW, ... --rounds times): a fresh store imported directly (`--store DIR
import`), then a fresh meliae-monitord of that build on a fresh store and
the same file imported through it (`--socket`); the wall time of each
`meliae-cli` call, to its answer (the daemon's commit included).  The
figure is the ratio daemon / direct per build, within the same round:
the machine is shared, a ratio taken seconds apart is what holds.
Prints a Markdown table of the medians.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time


def write_dump(path, n):
    base = 0x7f0000000000
    with open(path, "w") as f:
        strs = [base + 64 * (i + 3) for i in range(n - 3)]
        f.write(json.dumps({"address": base, "type": "module", "size": 72,
                            "name": "app", "refs": [base + 64]}) + "\n")
        f.write(json.dumps({"address": base + 64, "type": "dict",
                            "size": 360, "len": 1,
                            "refs": [base + 128]}) + "\n")
        f.write(json.dumps({"address": base + 128, "type": "list",
                            "size": 56 + 8 * len(strs), "len": len(strs),
                            "refs": strs}) + "\n")
        for i, a in enumerate(strs):
            f.write('{"address": %d, "type": "str", "size": %d, "len": 8, '
                    '"value": "s%07d", "refs": []}\n' % (a, 57, i % 10 ** 7))


def timed(args, env):
    t0 = time.monotonic()
    r = subprocess.run(args, capture_output=True, text=True, env=env,
                       stdin=subprocess.DEVNULL)
    dt = time.monotonic() - t0
    if r.returncode != 0:
        sys.exit("%s: exit %d: %s" % (" ".join(args), r.returncode,
                                      r.stderr))
    return dt


def wait_socket(path, proc):
    end = time.monotonic() + 30
    while time.monotonic() < end:
        if proc.poll() is not None:
            sys.exit("meliae-monitord exited %d" % proc.returncode)
        if os.path.exists(path):
            return
        time.sleep(0.02)
    sys.exit("meliae-monitord does not listen on " + path)


def one_round(build, dump, tmp, env):
    cli = os.path.join(build, "cli", "meliae-cli")
    monitord = os.path.join(build, "monitord", "meliae-monitord")
    store = tempfile.mkdtemp(dir=tmp)
    direct = timed([cli, "--store", os.path.join(store, "s"), "import",
                    dump], env)
    dstore = tempfile.mkdtemp(dir=tmp)
    sock = os.path.join(dstore, "d.sock")
    with open(os.devnull, "wb") as null:
        d = subprocess.Popen([monitord, "--store", os.path.join(dstore, "s"),
                              "--socket", sock, "--foreground"],
                             stdin=subprocess.DEVNULL, stdout=null,
                             stderr=null, env=env)
    try:
        wait_socket(sock, d)
        time.sleep(0.2)                 # the sweep before it listens
        daemon = timed([cli, "--socket", sock, "import", dump], env)
    finally:
        d.send_signal(signal.SIGTERM)
        d.wait(60)
    shutil.rmtree(store)
    shutil.rmtree(dstore)
    return direct, daemon


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True, help="the build to measure")
    ap.add_argument("--base", help="a build to compare with")
    ap.add_argument("--n", type=int, default=1000000, help="objects")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    env = dict(os.environ)
    for k in ("MELIAE_STORE", "MELIAE_SOCKET"):
        env.pop(k, None)
    tmp = tempfile.mkdtemp(prefix="bench-import-")
    try:
        dump = os.path.join(tmp, "heap.json")
        write_dump(dump, a.n)
        size = os.path.getsize(dump)
        builds = [("base", a.base)] if a.base else []
        builds.append(("build", a.build))
        res = {name: [] for name, _ in builds}
        for r in range(a.rounds):
            for name, b in builds:
                direct, daemon = one_round(os.path.abspath(b), dump, tmp,
                                           env)
                res[name].append((direct, daemon))
                print("round %d %s: direct %.2fs, daemon %.2fs, ratio %.2f"
                      % (r + 1, name, direct, daemon, daemon / direct),
                      file=sys.stderr)
        print("%d objects, %.0f MiB of dump, median of %d rounds\n"
              % (a.n, size / 2 ** 20, a.rounds))
        print("| build | `--store` import | through the daemon | ratio |")
        print("|---|---|---|---|")
        for name, b in builds:
            d = statistics.median(x[0] for x in res[name])
            s = statistics.median(x[1] for x in res[name])
            r = statistics.median(x[1] / x[0] for x in res[name])
            print("| %s (%s) | %.2f s | %.2f s | %.2f |" % (name, b, d, s, r))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
