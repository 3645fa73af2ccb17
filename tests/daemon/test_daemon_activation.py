# SPDX-License-Identifier: MIT
"""systemd socket activation: the daemon takes a listening socket on
descriptor 3 when $LISTEN_PID is its pid and $LISTEN_FDS >= 1, serves
clients through it, and leaves the socket file alone (mode, group,
existence) at shutdown.  A wrapper plays systemd: it moves the socket to
descriptor 3, sets the variables for its own pid and execs the daemon."""

import os
import signal
import socket
import stat
import sys
import unittest

from daemon_support import Client, DaemonTestCase, send_snapshot, snapshot

# argv: FD PID_MODE NFDS DAEMON ARGS...  PID_MODE "self" names the daemon
# (this process, after exec), anything else is used as is.
WRAPPER = r"""
import os, sys
fd, mode, nfds = int(sys.argv[1]), sys.argv[2], sys.argv[3]
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ["LISTEN_PID"] = str(os.getpid()) if mode == "self" else mode
os.environ["LISTEN_FDS"] = nfds
os.environ["LISTEN_FDNAMES"] = "meliae-monitord.socket"
os.execv(sys.argv[4], sys.argv[4:])
"""


class TestActivation(DaemonTestCase):

    def systemd_socket(self, path, mode=0o640):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        os.chmod(path, mode)
        s.listen(16)
        self.addCleanup(s.close)
        return s

    def activated(self, sock, pid_mode="self", nfds="1", args=(),
                  socket_arg=None, wait=True):
        """A daemon given sock as systemd would give it."""
        fd = sock.fileno()
        d = self.daemon(start=False, args=list(args),
                        sock=socket_arg or os.path.join(self.tmp, "own.sock"),
                        prefix=[sys.executable, "-c", WRAPPER, str(fd),
                                pid_mode, nfds],
                        pass_fds=(fd,))
        d.start(wait=wait)
        return d

    def test_streams_through_the_systemd_socket_and_leaves_it_alone(self):
        path = os.path.join(self.tmp, "sd.sock")
        s = self.systemd_socket(path, 0o640)
        ino = os.stat(path).st_ino
        gid = os.getgid()
        d = self.activated(s, args=["--group", str(gid)], socket_arg=path)
        self.assertIn("activation=systemd", d.log())
        self.assertIn("socket=%s" % path, d.log())
        self.assertNotIn("stale_socket", d.log())
        # Its own --socket path was not bound.
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "own.sock")))
        st = os.stat(path)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o640, "not chmod'ed")

        r = send_snapshot(path, 25)
        self.assertEqual(r["objects"], 25)
        c = Client(path)                        # several clients, as ever
        c.send(snapshot(5))
        self.assertIn("ack", c.reply())
        c.close()

        self.stop_clean(d)
        st = os.stat(path)
        self.assertEqual(st.st_ino, ino, "the socket file was left alone")
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o640)
        # systemd's socket still listens: the next daemon would get it.
        c = socket.socket(socket.AF_UNIX)
        c.connect(path)
        c.close()
        d2 = self.activated(s, socket_arg=path)
        self.assertEqual(send_snapshot(path, 3)["objects"], 3)
        self.stop_clean(d2)
        self.assertTrue(os.path.exists(path))

    def test_another_socket_path_is_warned_about(self):
        path = os.path.join(self.tmp, "sd.sock")
        s = self.systemd_socket(path)
        d = self.activated(s)               # --socket names own.sock
        self.assertIn("warn socket_option_ignored", d.log())
        self.assertEqual(send_snapshot(path, 3)["objects"], 3)
        self.stop_clean(d)

    def test_listen_pid_of_another_process_is_ignored(self):
        path = os.path.join(self.tmp, "sd.sock")
        s = self.systemd_socket(path)
        d = self.activated(s, pid_mode="1")
        own = os.path.join(self.tmp, "own.sock")
        self.assertNotIn("activation=systemd", d.log())
        self.assertIn("listening socket=%s" % own, d.log())
        self.assertEqual(send_snapshot(own, 3)["objects"], 3)
        self.stop_clean(d)
        self.assertFalse(os.path.exists(own), "its own socket is removed")

    def test_listen_fds_0_means_none(self):
        path = os.path.join(self.tmp, "sd.sock")
        s = self.systemd_socket(path)
        d = self.activated(s, nfds="0")
        self.assertNotIn("activation=systemd", d.log())
        self.stop_clean(d)

    def test_descriptor_3_must_be_a_listening_stream_socket(self):
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        dg = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        dg.bind(os.path.join(self.tmp, "dg.sock"))
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(1)
        for s in (a, dg, tcp):
            with self.subTest(sock=s):
                d = self.activated(s, wait=False)
                self.assertEqual(d.proc.wait(30), 1, d.log())
                self.assertIn("listening Unix stream socket", d.log())
        for s in (a, b, dg, tcp):
            s.close()
        f = open(os.path.join(self.tmp, "plain"), "w")
        d = self.activated(f, wait=False)
        self.assertEqual(d.proc.wait(30), 1, d.log())
        self.assertIn("not a socket", d.log())
        f.close()

    def test_malformed_variables_are_refused(self):
        path = os.path.join(self.tmp, "sd.sock")
        s = self.systemd_socket(path)
        d = self.activated(s, pid_mode="12x", wait=False)
        self.assertEqual(d.proc.wait(30), 1, d.log())
        self.assertIn("LISTEN_PID", d.log())
        d = self.activated(s, nfds="many", wait=False)
        self.assertEqual(d.proc.wait(30), 1, d.log())
        self.assertIn("LISTEN_FDS", d.log())

    def test_sigint_too_leaves_it(self):
        path = os.path.join(self.tmp, "sd.sock")
        s = self.systemd_socket(path)
        d = self.activated(s, socket_arg=path)
        self.assertEqual(d.stop(signal.SIGINT), 0)
        self.assertTrue(os.path.exists(path))


if __name__ == "__main__":
    unittest.main()
