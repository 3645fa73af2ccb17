"""python -m meliae: the commands of the package.

Only `run` for now (meliae/run.py); the analysis is meliae-cli's.
"""

import sys

USAGE = """\
usage: python -m meliae run [--socket PATH] [--interval SECONDS] [--label NAME]
                            [--traces N] [--dump-dir DIR]
                            (SCRIPT | -m MODULE) [ARGS...]

Runs a Python program as `python SCRIPT ARGS...` would, streaming heap
snapshots of it to meliae-monitord (or writing dump files).
`python -m meliae run --help` says more.
"""


def main(argv):
    if argv[:1] == ["run"]:
        from meliae import run
        return run.main(argv[1:])
    if argv[:1] in (["-h"], ["--help"]):
        sys.stdout.write(USAGE)
        return 0
    sys.stderr.write(USAGE)
    sys.stderr.write("python -m meliae: %s\n" % (
        "unknown command %r" % argv[0] if argv else "no command: run"))
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
