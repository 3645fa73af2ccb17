# SPDX-License-Identifier: MIT
"""Who may connect: the socket's mode, and the daemon's own check of the
peer's kernel credentials (SO_PEERCRED, SO_PEERGROUPS), which holds even
when the file mode would let anyone in.  Clients of other uids run under
setpriv, so these tests need root (CI runs as root)."""

import grp
import json
import os
import shutil
import signal
import stat
import subprocess
import unittest

from daemon_support import (DaemonTestCase, honest_ack, plain_env, snapshot,
                            store_list)

SETPRIV = shutil.which("setpriv")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else None
NOBODY = 65534

CLIENT = r"""
import json, socket, sys
path, data = sys.argv[1], sys.argv[2].encode()
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
try:
    s.connect(path)
except OSError as e:
    print(json.dumps({"connect_errno": e.errno}))
    sys.exit(0)
sent = 0
try:
    s.sendall(data)
    sent = len(data)
except OSError:
    pass
print("sent", flush=True)       # the test may now let the daemon run
buf, reset = b"", False
while True:
    try:
        c = s.recv(65536)
    except ConnectionResetError:
        reset = True
        break
    except socket.timeout:
        break
    if not c:
        break
    buf += c
    if b'"ack"' in buf:
        break
print(json.dumps({"lines": [json.loads(l) for l in buf.splitlines()],
                  "reset": reset, "sent": sent}))
"""


STREAMER = r"""
import json, sys
try:
    from meliae import scanner
except Exception as e:      # the build tree may be closed to this uid
    print(json.dumps({"skip": repr(e)}))
    sys.exit(0)
st = scanner.stream_to(sys.argv[1], timeout=10)
try:
    st.snapshot(timeout=10)
    print(json.dumps({"ok": True}))
except scanner.StreamError as e:
    print(json.dumps({"code": e.code, "message": str(e)}))
finally:
    st.close()
"""


def group_named(*names):
    for n in names:
        try:
            return grp.getgrnam(n)
        except KeyError:
            pass
    return None


class TestSocketMode(DaemonTestCase):

    def test_socket_is_0600_without_group(self):
        d = self.daemon()
        st = os.stat(d.sock)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(st.st_uid, os.geteuid())
        self.stop_clean(d)

    def test_socket_is_0660_and_the_groups_with_group(self):
        g = group_named("nogroup", "nobody")
        if g is None:
            self.skipTest("no nogroup/nobody group on this system")
        if os.geteuid() != 0:
            self.skipTest("chgrp to another group needs root")
        d = self.daemon(args=["--group", g.gr_name])
        st = os.stat(d.sock)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        self.assertEqual(st.st_gid, g.gr_gid)
        self.stop_clean(d)


@unittest.skipUnless(os.geteuid() == 0, "needs root to run clients as "
                     "another uid (setpriv)")
@unittest.skipUnless(SETPRIV, "setpriv (util-linux) not installed")
@unittest.skipUnless(PYTHON, "no /usr/bin/python3 for the unprivileged client")
class TestPeerCredentials(DaemonTestCase):

    def as_user(self, sock, data, setpriv_args):
        out = subprocess.run([SETPRIV] + setpriv_args + [PYTHON, "-c", CLIENT,
                                                         sock, data.decode()],
                             capture_output=True, text=True, timeout=60,
                             env=plain_env())
        self.assertEqual(out.returncode, 0, out.stderr)
        return json.loads(out.stdout.splitlines()[-1])

    def as_user_while_stopped(self, d, data, setpriv_args):
        """as_user, with the daemon stopped (SIGSTOP) until the client has
        connected and sent everything: the daemon then accepts a peer
        whose bytes already wait in its receive queue, whatever the
        scheduling."""
        os.kill(d.proc.pid, signal.SIGSTOP)
        try:
            p = subprocess.Popen([SETPRIV] + setpriv_args
                                 + [PYTHON, "-c", CLIENT, d.sock,
                                    data.decode()],
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True,
                                 env=plain_env())
            first = p.stdout.readline()
        finally:
            os.kill(d.proc.pid, signal.SIGCONT)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(first, "sent\n", first + out + err)
        return json.loads(out.splitlines()[-1])

    def test_other_uid_is_denied_before_any_byte_is_read(self):
        d = self.daemon()
        # As if the file mode were wrong: the daemon's own check remains.
        os.chmod(d.sock, 0o666)
        data = snapshot(20)
        nobody = ["--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                  "--clear-groups"]
        for _ in range(3):
            r = self.as_user(d.sock, data, nobody)
            self.assertNotIn("connect_errno", r)
            self.assertEqual(len(r["lines"]), 1, r)
            self.assertEqual(r["lines"][0]["code"], "denied")
        # The bytes are queued before the daemon runs: it must answer and
        # close without reading them, which the peer sees as a reset (not
        # an EOF) after the line.
        r = self.as_user_while_stopped(d, data, nobody)
        self.assertEqual(r["sent"], len(data), r)
        self.assertEqual([l["code"] for l in r["lines"]], ["denied"], r)
        self.assertTrue(r["reset"], r)
        self.assertEqual(store_list(d.store), [])
        self.assertIn("warn denied", d.log())
        self.assertIn("uid=%d" % NOBODY, d.log())
        self.assertNotIn("snapshot_begin", d.log())
        self.assertGreater(honest_ack(d.sock, 3), 0)   # root still served
        self.stop_clean(d)

    def test_a_denied_streamer_is_told_why(self):
        # The daemon answers and closes at accept, often before the
        # scanner's hello is sent: the scanner must still report the
        # daemon's reason, not just a broken pipe.
        d = self.daemon()
        os.chmod(d.sock, 0o666)
        # The built package, copied where nobody can read it (the build
        # tree may sit under a directory closed to other uids).
        import meliae
        pkg = os.path.join(self.tmp, "pkg")
        shutil.copytree(os.path.dirname(meliae.__file__),
                        os.path.join(pkg, "meliae"))
        for root, dirs, files in os.walk(pkg):
            os.chmod(root, 0o755)
            for f in files:
                os.chmod(os.path.join(root, f), 0o755)
        env = dict(os.environ, PYTHONPATH=pkg)
        out = subprocess.run([SETPRIV, "--reuid=%d" % NOBODY,
                              "--regid=%d" % NOBODY, "--clear-groups",
                              PYTHON, "-c", STREAMER, d.sock],
                             capture_output=True, text=True, timeout=120,
                             env=env, cwd="/")
        self.assertEqual(out.returncode, 0, out.stderr)
        r = json.loads(out.stdout.splitlines()[-1])
        if "skip" in r:
            self.skipTest("nobody cannot import the built scanner: %s"
                          % r["skip"])
        self.assertEqual(r.get("code"), "denied", r)
        self.assertIn("may not connect", r["message"])
        self.assertEqual(store_list(d.store), [])
        self.stop_clean(d)

    def test_group_member_by_primary_gid_is_allowed(self):
        g = group_named("nogroup", "nobody")
        if g is None:
            self.skipTest("no nogroup/nobody group on this system")
        d = self.daemon(args=["--group", g.gr_name])
        r = self.as_user(d.sock, snapshot(7), ["--reuid=%d" % NOBODY,
                                              "--regid=%d" % g.gr_gid,
                                              "--clear-groups"])
        self.assertEqual(r["lines"][0].get("objects"), 7, r)
        snaps = store_list(d.store)
        self.assertEqual([s["uid"] for s in snaps], [NOBODY])
        self.assertTrue(snaps[0]["trusted"])
        self.stop_clean(d)

    def test_group_member_by_supplementary_group_is_allowed(self):
        g = group_named("nogroup", "nobody")
        if g is None:
            self.skipTest("no nogroup/nobody group on this system")
        other = 1 if g.gr_gid != 1 else 2
        d = self.daemon(args=["--group", g.gr_name])
        r = self.as_user(d.sock, snapshot(4), ["--reuid=%d" % NOBODY,
                                              "--regid=%d" % other,
                                              "--groups=%d" % g.gr_gid])
        self.assertEqual(r["lines"][0].get("objects"), 4, r)
        # Not in the group: the file mode keeps it out...
        r = self.as_user(d.sock, snapshot(4), ["--reuid=%d" % NOBODY,
                                              "--regid=%d" % other,
                                              "--clear-groups"])
        self.assertEqual(r.get("connect_errno"), 13, r)     # EACCES
        # ... and so does the daemon when the mode would not.
        os.chmod(d.sock, 0o666)
        r = self.as_user(d.sock, snapshot(4), ["--reuid=%d" % NOBODY,
                                              "--regid=%d" % other,
                                              "--clear-groups"])
        self.assertEqual(r["lines"][0]["code"], "denied")
        self.stop_clean(d)


if __name__ == "__main__":
    unittest.main()
