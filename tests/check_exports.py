"""The scanner extension exports PyInit__scanner and nothing else.

Everything else (ml_* from common/, the walk) is built with hidden
visibility; a leaked symbol could clash with another extension's in the
same process.  Usage: check_exports.py EXTENSION.so
"""

import subprocess
import sys


def main(path):
    out = subprocess.run(["nm", "-D", "--defined-only", path], check=True,
                         capture_output=True, text=True).stdout
    names = {line.split()[-1] for line in out.splitlines()
             if len(line.split()) == 3 and line.split()[1] in "TDBRVWiu"}
    names.discard("_init")
    names.discard("_fini")
    if names != {"PyInit__scanner"}:
        print("unexpected exports: %s" % sorted(names - {"PyInit__scanner"}))
        return 1
    print("1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
