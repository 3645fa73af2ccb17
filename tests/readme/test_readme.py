"""The README, followed literally: every shell and Python block runs.

Blocks run in order, as a new user would run them, with three documented
substitutions: $PWD/build becomes this test's build directory, HOME a
temporary directory (so ~/.local/state/meliae is one) and the placeholder
address 0x7f3a5c2b1e80 the address of a real object of the latest
snapshot.  MELIAE_SOCKET points into the temporary directory.  Not run:
`bash scripts/test.sh` (it is what runs this test) and the "Building by
hand" block (scripts/test.sh does those steps).  `bash scripts/demo.sh`
runs with MELIAE_DEMO_SECONDS=5.

Environment: MELIAE_BUILD_ROOT (the meson build directory).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("MELIAE_BUILD_ROOT", "")
PLACEHOLDER = "0x7f3a5c2b1e80"


def blocks(text):
    """[(section, lang, body)] of the fenced blocks, in order; a block
    under a ### heading belongs to the ## section above it."""
    out, section = [], ""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#") and not line.startswith("###"):
            section = line.lstrip("#").strip()
        m = re.match(r"^```(\w*)\s*$", line)
        if m:
            body = []
            i += 1
            while not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            out.append((section, m.group(1), "\n".join(body) + "\n"))
        i += 1
    return out


@unittest.skipUnless(BUILD, "MELIAE_BUILD_ROOT unset")
class ReadmeTest(unittest.TestCase):

    def setUp(self):
        with open(os.path.join(ROOT, "README.md")) as f:
            self.blocks = blocks(f.read())
        self.tmp = tempfile.mkdtemp(prefix="ml_readme.")
        self.env = dict(os.environ, HOME=self.tmp,
                        MELIAE_SOCKET=os.path.join(self.tmp, "meliae.sock"))
        self.env.pop("MELIAE_STORE", None)
        self.procs = []

    def tearDown(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                if p.stdin:
                    p.stdin.close()
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def sub(self, body):
        return body.replace("$PWD/build", BUILD)

    def sh(self, body, **kw):
        return subprocess.run(["bash", "-e", "-c", self.sub(body)], cwd=ROOT,
                              env=self.env, capture_output=True, text=True,
                              timeout=600, **kw)

    def python(self, body):
        return subprocess.run([sys.executable, "-c", body], cwd=self.tmp,
                              env=self.env, capture_output=True, text=True,
                              timeout=300)

    def apply_exports(self, body):
        r = subprocess.run(["bash", "-e", "-c", self.sub(body) + "\nenv -0"],
                           cwd=ROOT, env=self.env, capture_output=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.env = dict(kv.split("=", 1) for kv in
                        r.stdout.decode().split("\0") if "=" in kv)

    def test_every_block_runs_as_printed(self):
        ran = 0
        tour = [b for b in self.blocks if b[1] in ("sh", "python")]
        for section, lang, body in tour:
            if section == "Building by hand":
                continue
            with self.subTest(section=section, block=body[:60]):
                if "bash scripts/demo.sh" in body:
                    env = dict(self.env, MELIAE_DEMO_SECONDS="5")
                    r = subprocess.run(["bash", "scripts/demo.sh"], cwd=ROOT,
                                       env=env, capture_output=True, text=True,
                                       timeout=600)
                    self.assertEqual(r.returncode, 0, r.stderr[-2000:])
                    self.assertRegex(r.stdout, r"meliae: the leak is Session:")
                elif lang == "sh" and body.lstrip().startswith("export "):
                    self.apply_exports(body)
                elif lang == "sh" and body.rstrip().endswith("&"):
                    # a daemon: started in the background, kept for the
                    # blocks after it
                    p = subprocess.Popen(["bash", "-c", "exec " + self.sub(
                        body.rstrip().rstrip("&"))], cwd=ROOT, env=self.env)
                    self.procs.append(p)
                    sock = self.env["MELIAE_SOCKET"]
                    for _ in range(300):
                        if os.path.exists(sock):
                            break
                        time.sleep(0.02)
                    self.assertTrue(os.path.exists(sock), "no daemon socket")
                elif lang == "python" and "stream_to" in body:
                    # the application: it keeps running (as an application
                    # does) until the test ends
                    p = subprocess.Popen(
                        [sys.executable, "-c", body +
                         "\nimport sys\nsys.stdin.read()\n"],
                        cwd=self.tmp, env=self.env, stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE, text=True)
                    self.procs.append(p)
                    line = p.stdout.readline()
                    self.assertRegex(line, r"^\d+$", "stream_to printed no id")
                elif lang == "python":
                    r = self.python(body)
                    self.assertEqual(r.returncode, 0, r.stderr)
                else:
                    for cmd in body.splitlines():
                        cmd = cmd.split("  #")[0].strip()
                        if not cmd or cmd.startswith("#"):
                            continue
                        if PLACEHOLDER in cmd:
                            cmd = cmd.replace(PLACEHOLDER, self.real_address())
                        r = self.sh(cmd)
                        self.assertEqual(r.returncode, 0,
                                         "%s: %s" % (cmd, r.stderr))
                        self.assertTrue(r.stdout.strip(), cmd)
                ran += 1
        self.assertGreaterEqual(ran, 7)   # demo, export, dump, load, daemon, app, cli

    def real_address(self):
        r = self.sh("meliae-cli --json summary latest --top 1")
        self.assertEqual(r.returncode, 0, r.stderr)
        return hex(json.loads(r.stdout)["types"][0]["max_address"])


if __name__ == "__main__":
    unittest.main()
