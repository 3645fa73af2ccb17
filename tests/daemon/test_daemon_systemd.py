# SPDX-License-Identifier: MIT
"""The systemd units (systemd/): `systemd-analyze verify` accepts them,
the sysusers.d snippet creates the user and group (systemd-sysusers on a
scratch root), and the service keeps away from the settings that would
break the daemon (see the comments in meliae-monitord.service.in).
Skipped where the units were not built (-Dsystemd=disabled) or systemd's
tools are missing."""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

from daemon_support import MONITORD, plain_env

UNITS = os.environ.get("MELIAE_SYSTEMD_BUILD", "")      # the .service
SOURCES = os.environ.get("MELIAE_SYSTEMD_SRC", "")      # .socket, sysusers
ANALYZE = shutil.which("systemd-analyze")
SYSUSERS = shutil.which("systemd-sysusers")
SERVICE = os.path.join(UNITS, "meliae-monitord.service")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def settings(text):
    """[(key, value)] of a unit file, comments dropped."""
    out = []
    for ln in text.splitlines():
        ln = ln.strip()
        if ln and not ln.startswith(("#", ";", "[")) and "=" in ln:
            k, v = ln.split("=", 1)
            out.append((k, v))
    return out


@unittest.skipUnless(os.path.exists(SERVICE), "units not built "
                     "(-Dsystemd=disabled?)")
class TestUnits(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mlsd-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    @unittest.skipUnless(ANALYZE, "systemd-analyze not installed")
    def test_systemd_analyze_verify(self):
        # verify wants ExecStart='s binary to exist: the one just built.
        service = re.sub(r"ExecStart=\S+/meliae-monitord ",
                         "ExecStart=%s " % MONITORD, read(SERVICE))
        with open(os.path.join(self.tmp, "meliae-monitord.service"),
                  "w") as f:
            f.write(service)
        shutil.copy(os.path.join(SOURCES, "meliae-monitord.socket"),
                    self.tmp)
        r = subprocess.run([ANALYZE, "verify", "--man=no",
                            os.path.join(self.tmp, "meliae-monitord.socket"),
                            os.path.join(self.tmp,
                                         "meliae-monitord.service")],
                           capture_output=True, text=True, env=plain_env(),
                           timeout=50)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotIn("meliae-monitord", r.stderr)

    @unittest.skipUnless(SYSUSERS, "systemd-sysusers not installed")
    def test_sysusers_creates_user_and_group(self):
        os.makedirs(os.path.join(self.tmp, "etc"))
        r = subprocess.run([SYSUSERS, "--root", self.tmp,
                            os.path.join(SOURCES, "meliae.sysusers.conf")],
                           capture_output=True, text=True, env=plain_env(),
                           timeout=50)
        self.assertEqual(r.returncode, 0, r.stderr)
        group = read(os.path.join(self.tmp, "etc", "group"))
        passwd = read(os.path.join(self.tmp, "etc", "passwd"))
        self.assertRegex(group, r"(?m)^meliae:x:\d+:")
        m = re.search(r"(?m)^meliae:x:(\d+):(\d+):[^:]*:/var/lib/meliae:",
                      passwd)
        self.assertIsNotNone(m, passwd)
        gid = re.search(r"(?m)^meliae:x:(\d+):", group).group(1)
        self.assertEqual(m.group(2), gid, "primary group meliae")

    def test_socket_unit(self):
        s = dict(settings(read(os.path.join(SOURCES,
                                            "meliae-monitord.socket"))))
        self.assertEqual(s["ListenStream"], "/run/meliae.sock")
        self.assertEqual(s["SocketMode"], "0660")
        self.assertEqual(s["SocketGroup"], "meliae")
        self.assertEqual(s["RemoveOnStop"], "yes")

    def test_service_runs_what_the_daemon_needs(self):
        pairs = settings(read(SERVICE))
        s = dict(pairs)
        exec_start = s["ExecStart"].split()
        self.assertTrue(os.path.isabs(exec_start[0]))
        self.assertNotIn("@BINDIR@", s["ExecStart"])
        for arg in ("--store", "/var/lib/meliae", "--group", "meliae",
                    "--foreground"):
            self.assertIn(arg, exec_start)
        self.assertEqual(s["StateDirectory"], "meliae")
        self.assertEqual(s["StateDirectoryMode"], "0700")
        self.assertEqual(s["User"], "meliae")
        self.assertEqual(s["Restart"], "on-failure")
        self.assertEqual(s["Requires"], "meliae-monitord.socket")
        for k, v in [("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                     ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                     ("PrivateDevices", "yes"),
                     ("ProtectKernelTunables", "yes"),
                     ("ProtectKernelModules", "yes"),
                     ("ProtectKernelLogs", "yes"),
                     ("ProtectControlGroups", "yes"),
                     ("RestrictNamespaces", "yes"),
                     ("LockPersonality", "yes"),
                     ("MemoryDenyWriteExecute", "yes"),
                     ("SystemCallArchitectures", "native"),
                     ("CapabilityBoundingSet", "")]:
            self.assertEqual(s.get(k), v, k)
        self.assertEqual(s["RestrictAddressFamilies"].split(),
                         ["AF_UNIX", "AF_INET", "AF_INET6"])
        # What would break it: a symlinked StateDirectory (DynamicUser),
        # uids all read as nobody (PrivateUsers), other users' /proc
        # entries or /proc/stat hidden.
        self.assertNotEqual(s.get("DynamicUser", "no"), "yes")
        self.assertNotEqual(s.get("PrivateUsers", "no"), "yes")
        self.assertNotIn(s.get("ProtectProc", "default"),
                         ("invisible", "noaccess", "ptraceable"))
        self.assertNotEqual(s.get("ProcSubset", "all"), "pid")
        self.assertNotEqual(s.get("PrivateNetwork", "no"), "yes")


if __name__ == "__main__":
    unittest.main()
