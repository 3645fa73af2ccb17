"""End to end with the Pythons people run now: an application on Debian
sid's CPython 3.14 and 3.15 streams to a meliae-monitord built here for
Debian 12's 3.11, and meliae-cli (also built here) answers from the store.

The applications run in the chroot of scripts/sid.sh, with a meliae built
inside it for their version (build-py3.14/, build-py3.15/, made by
scripts/test.sh).  /tmp is shared with the chroot, so the daemon's socket
and the dumps are seen from both sides.

Environment: MELIAE_SID_RUN (scripts/sid.sh), MELIAE_SID_PYTHONS ("3.14
3.15"), MELIAE_ROOT (the checkout), MELIAE_MONITORD, MELIAE_CLI; skipped
when MELIAE_SID_RUN is unset (meson test outside scripts/test.sh).
"""

import json
import os
import subprocess
import sys
import textwrap
import unittest

from meliae import loader

from daemon_case import DaemonCase

SID_RUN = os.environ.get("MELIAE_SID_RUN", "")
PYTHONS = os.environ.get("MELIAE_SID_PYTHONS", "").split()
ROOT = os.environ.get("MELIAE_ROOT", "")
MONITORD = os.environ.get("MELIAE_MONITORD", "")
CLI = os.environ.get("MELIAE_CLI", "")

APP = textwrap.dedent("""
    import gc, json, sys
    from meliae import scanner
    sock, out = sys.argv[1], sys.argv[2]

    class Listener:
        def __init__(self, i):
            self.i = i
            self.name = "listener-%d" % i

    class Bus:
        def __init__(self):
            self.subscribers = []

    BUS = Bus()
    st = scanner.stream_to(sock, label="newer-py", values="truncated")
    res = []
    for k in range(3):
        BUS.subscribers.extend(Listener(i) for i in range(2000))
        gc.collect()
        path = "%s.%d.json" % (out, k)
        scanner.dump_all_objects(path)
        res.append((st.snapshot(timeout=120), path))
    st.close()
    print(json.dumps({"snaps": res, "bus": id(BUS),
                      "subscribers": id(BUS.subscribers),
                      "first": id(BUS.subscribers[0]),
                      "version": list(sys.version_info[:3])}))
    """)


@unittest.skipUnless(SID_RUN and PYTHONS and ROOT and MONITORD and CLI,
                     "no sid chroot (run by scripts/test.sh)")
class NewerPythonsStreamTest(DaemonCase):
    TMP_PREFIX = "ml_newpy."
    TMP_DIR = "/tmp"        # shared with the chroot

    def cli(self, *args):
        out = subprocess.run([CLI, "--socket", self.sock, "--json"]
                             + [str(a) for a in args],
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        return json.loads(out.stdout)

    def run_app(self, version):
        env = dict(os.environ, PYTHONPATH=os.path.join(
            ROOT, "build-py" + version, "scanner"), PYTHONDONTWRITEBYTECODE="1")
        p = subprocess.run(
            ["bash", SID_RUN, "run", "python" + version, "-c", APP,
             self.sock, os.path.join(self.tmp, "app")],
            capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
        self.assertEqual(p.returncode, 0, p.stderr[-3000:])
        return json.loads(p.stdout)

    def check_version(self, version):
        app = self.run_app(version)
        self.assertEqual("%d.%d" % tuple(app["version"][:2]), version)
        stored = json.dumps(self.cli("snapshots"))
        for k, (sid, path) in enumerate(app["snaps"]):
            self.assertIn(str(sid), stored)
            summary = self.cli("summary", sid, "--top", "0")
            om = loader.load(path, show_prog=False, collapse=False)
            want = om.summarize().type_summaries
            got = {r["type"]: r for r in summary["types"]}
            self.assertEqual(got["Listener"]["count"], 2000 * (k + 1))
            self.assertEqual(got["Listener"]["count"], want["Listener"].count)
            self.assertEqual(got["Listener"]["bytes"],
                             want["Listener"].total_size)
        # Who holds a listener: the bus's list, as in the loader.
        last = app["snaps"][-1][0]
        refs = self.cli("referrers", last, hex(app["first"]))
        text = json.dumps(refs)
        holder = app["subscribers"]
        self.assertTrue(str(holder) in text or hex(holder) in text, text[:2000])
        # The growth between the snapshots of the 3.x process.
        diff = self.cli("diff", app["snaps"][0][0], last)
        self.assertIn("Listener", json.dumps(diff))

    def test_each_newer_python_streams_to_the_daemon_built_for_this_one(self):
        self.assertTrue(PYTHONS)
        for version in PYTHONS:
            with self.subTest(version):
                self.check_version(version)


if __name__ == "__main__":
    unittest.main()
