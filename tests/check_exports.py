"""Each extension exports its PyInit_<name> and nothing else.

Everything else (ml_* from common/, the walk, the graph) is built with
hidden visibility; a leaked symbol could clash with another extension's in
the same process.  Usage: check_exports.py EXTENSION.so...
"""

import os

import subprocess
import sys


def check(path):
    want = "PyInit_" + os.path.basename(path).split(".")[0]
    out = subprocess.run(["nm", "-D", "--defined-only", path], check=True,
                         capture_output=True, text=True).stdout
    names = {line.split()[-1] for line in out.splitlines()
             if len(line.split()) == 3 and line.split()[1] in "TDBRVWiu"}
    names.discard("_init")
    names.discard("_fini")
    if names != {want}:
        print("%s: expected only %s, found %s" % (path, want, sorted(names)))
        return False
    return True


def main(paths):
    ok = sum(check(p) for p in paths)
    print("%d passed, %d failed" % (ok, len(paths) - ok))
    return 0 if ok == len(paths) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
