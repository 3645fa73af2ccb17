"""scripts/demo.sh leaves nothing behind when interrupted with Ctrl-C.

Ctrl-C is SIGINT to the terminal's foreground process group: the test
starts the demo in a session of its own and signals the whole group in the
middle of the load, then checks that no process of the demo survives and
that its temporary directory (store, socket) is gone.
"""

import os
import re
import signal
import subprocess
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def processes_mentioning(text):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if text in cmd:
            found.append((int(pid), cmd))
    return found


class DemoInterruptTest(unittest.TestCase):

    def test_ctrl_c_during_the_load_leaves_nothing(self):
        env = dict(os.environ, MELIAE_DEMO_SECONDS="60")
        p = subprocess.Popen(["bash", "scripts/demo.sh"], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, start_new_session=True)
        out, work = [], None
        try:
            for line in p.stdout:
                out.append(line)
                m = re.search(r"--store (\S+)/store", line)
                if m:
                    work = m.group(1)
                if line.startswith("service: listening"):
                    break
            self.assertIsNotNone(work, "".join(out))
            time.sleep(2)                   # in the middle of the load
            self.assertTrue(processes_mentioning(work))
            os.killpg(p.pid, signal.SIGINT)
            rest, _ = p.communicate(timeout=20)   # Ctrl-C acts at once
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.assertNotEqual(p.returncode, 0)
        for _ in range(50):                 # children may take a moment
            if not processes_mentioning(work):
                break
            time.sleep(0.1)
        self.assertEqual(processes_mentioning(work), [], "".join(out) + rest)
        self.assertFalse(os.path.exists(work), "temporary directory left")


if __name__ == "__main__":
    unittest.main()
