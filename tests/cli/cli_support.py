# SPDX-License-Identifier: MIT
"""Helpers for the meliae-cli tests: run the CLI, build the fixture store
from tests/fixtures/cli/dump{1,2,3}.json, start a meliae-monitord.

Stdlib only.  The executables come from the environment (set by
tests/cli/meson.build):

    MELIAE_CLI       meliae-cli
    MELIAE_MONITORD  meliae-monitord
    PYTHONPATH       the built meliae package (for the streaming tests)
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "cli")
GOLDEN = os.path.join(HERE, "golden")
DOCS = os.path.join(ROOT, "docs")

CLI = os.environ.get("MELIAE_CLI", "")
MONITORD = os.environ.get("MELIAE_MONITORD", "")

# The fixture: three dumps of one process, imported with one label.
DUMPS = ("dump1.json", "dump2.json", "dump3.json")
LABEL = "fixture"

sys.path.insert(0, HERE)
import make_fixtures  # noqa: E402

ADDR = make_fixtures.addresses()            # name -> address (last dump)
SESSION = make_fixtures.SESSION_BASE        # the first Session (all dumps)

needs_cli = unittest.skipUnless(CLI and os.access(CLI, os.X_OK),
                                "MELIAE_CLI unset")
needs_daemon = unittest.skipUnless(
    CLI and MONITORD and os.access(MONITORD, os.X_OK),
    "MELIAE_CLI/MELIAE_MONITORD unset")


def cli_env(extra=None):
    """The CLI's environment: no store, socket or colour from the caller."""
    env = dict(os.environ)
    for k in ("MELIAE_STORE", "MELIAE_SOCKET", "NO_COLOR"):
        env.pop(k, None)
    env["TZ"] = "UTC"
    if extra:
        env.update(extra)
    return env


def run_cli(args, cwd=None, env=None, timeout=60):
    """meliae-cli args: a CompletedProcess with text stdout/stderr."""
    return subprocess.run([CLI] + list(args), capture_output=True, text=True,
                          cwd=cwd, env=cli_env(env), timeout=timeout,
                          stdin=subprocess.DEVNULL)


def answer_lines(text):
    """The text's lines without growth's and report's memory verdict
    ("meliae: RSS ... outside Python objects"), which opens a process's
    answer when its RSS grows apart from its objects: under ASan
    (PYTHONMALLOC=malloc and the sanitizer's quarantine) it does for any
    program, and these tests read the lines that follow."""
    return [l for l in text.splitlines() if not l.startswith("meliae: RSS ")]


def make_fixture_store(store):
    """Imports the three fixture dumps into a new store at store (from the
    fixtures directory, so that each snapshot's program is the bare file
    name); returns the import answers."""
    out = []
    for name in DUMPS:
        r = run_cli(["--store", store, "--json", "import", name, "--label",
                     LABEL], cwd=FIXTURES)
        if r.returncode != 0 or r.stderr:
            raise AssertionError("import %s: exit %d: %s"
                                 % (name, r.returncode, r.stderr))
        out.append(json.loads(r.stdout))
    return out


# ---- normalising what varies between runs ----

_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
TIME_MASK = "YYYY-MM-DDTHH:MM:SS.mmmZ"      # as wide as a time: tables align
# growth's slopes per hour: the fixture's snapshots are imported a few ms
# apart, so their value depends on the run's timing
_PER_HOUR = re.compile(r" *[+-]?[0-9.]+(?:B|KiB|MiB|GiB|TiB)?/h")


def normalise_table(text):
    text = _PER_HOUR.sub(lambda m: "<slope>/h".rjust(len(m.group(0))), text)
    return _ISO.sub(TIME_MASK, text)


def normalise_json(doc):
    """doc with every "time", "time_ns" and "slope_per_hour" (the
    times' consequence) replaced; nothing else."""
    if isinstance(doc, dict):
        out = {}
        for k, v in doc.items():
            if k == "time" and isinstance(v, str):
                assert _ISO.fullmatch(v), v
                out[k] = TIME_MASK
            elif k == "time_ns" and isinstance(v, str):
                assert v.isdigit() and len(v) >= 19, v
                out[k] = "<time_ns>"
            elif k == "slope_per_hour" and isinstance(v, (int, float)):
                out[k] = "<slope_per_hour>"
            else:
                out[k] = normalise_json(v)
        return out
    if isinstance(doc, list):
        return [normalise_json(v) for v in doc]
    return doc


def pretty(doc):
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


# ---- a daemon ----

class Daemon:
    """meliae-monitord in the foreground on a private store and socket."""

    def __init__(self, tmp, args=(), store=None, sock=None):
        self.store = store or os.path.join(tmp, "dstore")
        self.sock = sock or os.path.join(tmp, "d.sock")
        self.logpath = os.path.join(tmp, "daemon.log")
        with open(self.logpath, "wb") as log:
            self.proc = subprocess.Popen(
                [MONITORD, "--store", self.store, "--socket", self.sock,
                 "--foreground", "--log-level", "info"] + list(args),
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env=cli_env())
        wait_listening(self.sock, self.proc, self.log)

    def log(self):
        try:
            with open(self.logpath, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("meliae-monitord ignored SIGTERM:\n"
                                 + self.log())


def listening(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(2)
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def wait_listening(path, proc, log=lambda: "", timeout=20):
    """Waits until something accepts connections on path; fails if proc
    exits first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError("daemon exited %r before listening:\n%s"
                                 % (proc.returncode, log()))
        if os.path.exists(path) and listening(path):
            return
        time.sleep(0.02)
    raise AssertionError("nothing listens on %s after %ss:\n%s"
                         % (path, timeout, log()))


class TmpTestCase(unittest.TestCase):
    """A private directory per test class."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mlcli-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
