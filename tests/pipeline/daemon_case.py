"""A real meliae-monitord for each test: its own store and socket in a
fresh temporary folder, stopped with SIGTERM (then killed) afterwards."""

import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

MONITORD = os.environ.get("MELIAE_MONITORD", "")


def wait_for(pred, timeout=30.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


class DaemonCase(unittest.TestCase):
    TMP_PREFIX = "ml_pipe."
    TMP_DIR = None          # where the folder goes (None: $TMPDIR)

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix=self.TMP_PREFIX, dir=self.TMP_DIR)
        self.store = os.path.join(self.tmp, "store")
        self.sock = os.path.join(self.tmp, "m.sock")
        self.daemon = subprocess.Popen(
            [MONITORD, "--store", self.store, "--socket", self.sock,
             "--foreground", "--log-level", "warn"])
        wait_for(lambda: os.path.exists(self.sock), what="daemon socket")

    def tearDown(self):
        if self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)
