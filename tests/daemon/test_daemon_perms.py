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

from daemon_support import (MONITORD, Client, DaemonTestCase, header,
                            honest_ack, line, objects, plain_env, snapshot,
                            store_list)

SETPRIV = shutil.which("setpriv")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else None
NOBODY = 65534
CLI = os.environ.get("MELIAE_CLI", "")

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


HELLO = r"""
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.settimeout(0.2)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode())
print("hello", flush=True)
buf, end = b"", time.monotonic() + float(sys.argv[3])
while time.monotonic() < end:
    try:
        c = s.recv(65536)
    except socket.timeout:
        continue
    if not c:
        break
    buf += c
print(json.dumps([json.loads(l) for l in buf.splitlines()]))
"""


@unittest.skipUnless(os.geteuid() == 0, "needs root to run clients as "
                     "another uid (setpriv)")
@unittest.skipUnless(SETPRIV, "setpriv (util-linux) not installed")
@unittest.skipUnless(PYTHON, "no /usr/bin/python3 for the unprivileged client")
@unittest.skipUnless(CLI, "MELIAE_CLI not set (run through meson test)")
class TestWhoSeesWhat(DaemonTestCase):
    """docs/protocol.md, "Who sees what": with --group, a member's
    snapshots and processes are its own; it can neither pass for the
    owner's process nor read the owner's snapshots, and the owner's
    queries and `snap` never reach it."""

    as_user = TestPeerCredentials.as_user

    def member(self):
        g = group_named("nogroup", "nobody")
        if g is None:
            self.skipTest("no nogroup/nobody group on this system")
        return g, ["--reuid=%d" % NOBODY, "--regid=%d" % g.gr_gid,
                   "--clear-groups"]

    def cli(self, *args):
        r = subprocess.run([CLI] + list(args), capture_output=True,
                           text=True, timeout=60, env=plain_env())
        return r.returncode, r.stdout, r.stderr

    def query_as(self, d, priv, request):
        r = self.as_user(d.sock, line({"meliae_query": 1,
                                       "request": request}), priv)
        self.assertEqual(len(r["lines"]), 1, r)
        return r["lines"][0]

    def test_a_member_deletes_its_own_snapshots_only(self):
        g, priv = self.member()
        d = self.daemon(args=["--group", g.gr_name])
        c = Client(d.sock)
        c.send(snapshot(objs=objects(5, type_="OwnerSecret"),
                        hdr=header(label="web")))
        owner = c.reply()["ack"]
        c.close()
        r = self.as_user(d.sock, snapshot(objs=objects(7, type_="Mine"),
                                          hdr=header(label="m")), priv)
        mine = r["lines"][0]["ack"]
        # the owner's is not there for the member, as to every query
        a = self.query_as(d, priv, {"cmd": "delete", "snap": str(owner)})
        self.assertEqual(a.get("code"), "notfound", a)
        a = self.query_as(d, priv, {"cmd": "delete", "snap": "latest"})
        self.assertEqual(a.get("code"), "usage", a)
        a = self.query_as(d, priv, {"cmd": "delete", "snap": str(mine)})
        self.assertEqual(a.get("answer"), {"schema_version": 2,
                                           "command": "delete",
                                           "snapshot": mine}, a)
        rc, out, err = self.cli("--socket", d.sock, "--json", "snapshots",
                                "--all-users")
        self.assertEqual([s["id"] for s in json.loads(out)["snapshots"]],
                         [owner])
        # root deletes another user's only when it names them
        r = self.as_user(d.sock, snapshot(objs=objects(3, type_="Mine"),
                                          hdr=header(label="m")), priv)
        theirs = r["lines"][0]["ack"]
        rc, out, err = self.cli("--socket", d.sock, "delete", str(theirs))
        self.assertEqual(rc, 3, err)
        rc, out, err = self.cli("--socket", d.sock, "delete", str(theirs),
                                "--all-users")
        self.assertEqual((rc, out), (0, "deleted snapshot %d\n" % theirs),
                         err)
        rc, out, err = self.cli("--socket", d.sock, "delete", str(owner))
        self.assertEqual((rc, out), (0, "deleted snapshot %d\n" % owner),
                         err)

    def test_a_member_cannot_forge_the_owners_process_nor_read_its_snapshots(self):
        g, priv = self.member()
        d = self.daemon(args=["--group", g.gr_name])
        owner = objects(5, type_="OwnerSecret")
        data = snapshot(objs=owner, hdr=header(label="web"))
        c = Client(d.sock)
        c.send(data)
        self.assertIn("ack", c.reply())
        c.close()
        # The member streams a snapshot labelled "web", claiming our pid.
        forged = snapshot(objs=objects(7, type_="Forged"),
                          hdr=header(label="web", pid=os.getpid()))
        r = self.as_user(d.sock, forged, priv)
        self.assertEqual(r["lines"][0].get("objects"), 7, r)
        # The owner's "web" is its own process, not the forgery.
        rc, out, err = self.cli("--socket", d.sock, "--json", "summary",
                                "latest", "--process", "web")
        self.assertEqual(rc, 0, err)
        doc = json.loads(out)
        self.assertEqual([t["type"] for t in doc["types"]], ["OwnerSecret"])
        self.assertEqual(doc["snapshot"]["uid"], 0)
        rc, out, err = self.cli("--socket", d.sock, "--json", "snapshots")
        self.assertEqual([s["uid"] for s in json.loads(out)["snapshots"]], [0])
        # The member sees its own snapshot only, whatever it names.
        a = self.query_as(d, priv, {"cmd": "snapshots"})
        self.assertEqual([s["uid"] for s in a["answer"]["snapshots"]],
                         [NOBODY], a)
        a = self.query_as(d, priv, {"cmd": "summary", "snap": "1"})
        self.assertEqual(a.get("code"), "notfound", a)
        a = self.query_as(d, priv, {"cmd": "summary", "snap": "latest",
                                    "process": "web"})
        self.assertEqual([t["type"] for t in a["answer"]["types"]],
                         ["Forged"])
        # The pid it claimed is not its pid: the kernel's is.
        a = self.query_as(d, priv, {"cmd": "summary", "snap": "latest",
                                    "process": str(os.getpid())})
        self.assertEqual(a.get("code"), "notfound", a)
        for req in ({"cmd": "snapshots", "all_users": True},
                    {"cmd": "snapshots", "uid": 0},
                    {"cmd": "growth", "uid": 0}):
            a = self.query_as(d, priv, req)
            self.assertEqual(a.get("code"), "usage", (req, a))
            self.assertIn("only root and the daemon's user", a["error"])
        a = self.query_as(d, priv, {"cmd": "snapshots", "uid": NOBODY})
        self.assertEqual(len(a["answer"]["snapshots"]), 1, a)
        # Root names the member's uid, or all.
        rc, out, err = self.cli("--socket", d.sock, "--json", "snapshots",
                                "--uid", str(NOBODY))
        self.assertEqual([s["uid"] for s in json.loads(out)["snapshots"]],
                         [NOBODY])
        rc, out, err = self.cli("--socket", d.sock, "--json", "snapshots",
                                "--all-users")
        self.assertEqual(sorted(s["uid"] for s in
                                json.loads(out)["snapshots"]), [0, NOBODY])
        # Two processes, however alike their claims.
        rc, out, err = self.cli("--socket", d.sock, "--json", "growth",
                                "--all-users", "--process", "web")
        self.assertEqual(rc, 0, err)
        procs = json.loads(out)["processes"]
        self.assertEqual(len({p["process"] for p in procs}), 2, procs)
        self.stop_clean(d)

    def test_the_owners_snap_never_reaches_a_members_process(self):
        g, priv = self.member()
        d = self.daemon(args=["--group", g.gr_name])
        hello = line(header(label="web", hello=True))
        p = subprocess.Popen([SETPRIV] + priv + [PYTHON, "-c", HELLO, d.sock,
                                                 hello.decode(), "4"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=plain_env())
        self.assertEqual(p.stdout.readline(), "hello\n")
        d.wait_log("uid=%d" % NOBODY)
        rc, out, err = self.cli("--socket", d.sock, "snap", "web",
                                "--timeout", "2")
        self.assertEqual(rc, 3, (out, err))
        self.assertIn("no connected process matches web", err)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err)
        got = json.loads(out.splitlines()[-1])
        self.assertEqual([x for x in got if "request" in x], [], got)
        self.stop_clean(d)


@unittest.skipUnless(os.geteuid() == 0, "needs root to run as another uid")
@unittest.skipUnless(SETPRIV, "setpriv (util-linux) not installed")
@unittest.skipUnless(CLI, "MELIAE_CLI not set (run through meson test)")
class TestReadOnlyStore(DaemonTestCase):
    """A store its user may only read (directory 0500, files 0400): the
    daemon refuses to start, in one line that says why; meliae-cli
    --store still answers its read-only queries."""

    def test_daemon_refuses_and_the_cli_reads(self):
        d = self.daemon()
        honest_ack(d.sock, 5)
        self.stop_clean(d)
        os.chmod(self.tmp, 0o711)
        for root, dirs, files in os.walk(d.store):
            for n in dirs + files:
                os.chown(os.path.join(root, n), NOBODY, NOBODY)
        os.chown(d.store, NOBODY, NOBODY)
        for n in os.listdir(d.store):
            p = os.path.join(d.store, n)
            os.chmod(p, 0o500 if os.path.isdir(p) else 0o400)
        os.chmod(d.store, 0o500)
        priv = [SETPRIV, "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                "--clear-groups"]
        r = subprocess.run(priv + [MONITORD, "--store", d.store, "--socket",
                                   os.path.join(self.tmp, "ro.sock"),
                                   "--foreground"], capture_output=True,
                           text=True, timeout=60, env=plain_env())
        self.assertNotEqual(r.returncode, 0)
        lines = [ln for ln in (r.stdout + r.stderr).splitlines()
                 if "start_failed" in ln or "error" in ln]
        self.assertEqual(len(lines), 1, r.stdout + r.stderr)
        self.assertIn("store %s: read-only" % d.store, lines[0])
        self.assertIn("meliae-cli --store reads it", lines[0])
        for args in (["snapshots"], ["summary", "latest"], ["growth"]):
            r = subprocess.run(priv + [CLI, "--store", d.store, "--json"]
                               + args, capture_output=True, text=True,
                               timeout=60, env=plain_env())
            self.assertEqual(r.returncode, 0, (args, r.stderr))
            self.assertEqual(json.loads(r.stdout)["command"], args[0])
        self.assertEqual(sorted(os.listdir(d.store)),
                         ["data.mdb", "lock.mdb", "tmp", "writer.lock"])
