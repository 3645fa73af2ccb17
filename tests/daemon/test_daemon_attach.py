# SPDX-License-Identifier: MIT
"""meliae-cli attach / detach / snap --pid on programs that never import
meliae: idle in time.sleep, busy in a pure-Python loop, blocked in
socket.accept().  Each is attached (--once and --interval), its snapshots
are stored under its pid, it is detached (the streamer's thread is gone),
and it goes on: its output continues and its exit code is its own.  Then
every error case, each one line and a non-zero exit, within its time.

3.9-3.13 go through gdb (this interpreter, 3.11 on Debian); 3.14 and 3.15
through PEP 768, in the Debian sid chroot of the 3.14 work
(/var/cache/meliae/sid or sid-try), run in a mount namespace of its own
like a container: the script is dropped through /proc/PID/root and the
daemon's socket is bind-mounted in.  The scanner does not build for 3.14
yet: with MELIAE_TEST_BUILD_314 (or _315) naming the directory that holds
a meliae package built for it (bind-mounted read-only into the target),
attach --once, --interval, snap --pid and detach run there too; without,
attach must name the version it lacks.
"""

import ctypes
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import unittest

from daemon_support import DaemonTestCase, plain_env, store_list

CLI = os.environ.get("MELIAE_CLI", "")
BUILD = next((p for p in os.environ.get("PYTHONPATH", "").split(":")
              if glob.glob(os.path.join(p, "meliae", "_scanner.*.so"))), None)
HAVE_GDB = shutil.which("gdb") is not None
SID = next((p for p in (os.environ.get("ML_SID_ROOT", ""),
                         "/var/cache/meliae/sid", "/var/cache/meliae/sid-try")
            if os.path.exists(os.path.join(p, "usr/bin/python3.14"))), None)
ROOT = os.geteuid() == 0

# The programs: unmodified, they print a line every 0.1 s ("tick N")
# until the file named by argv[1] exists, then exit 7.
IDLE = textwrap.dedent("""\
    import os, sys, time
    print("ready", flush=True)
    n = 0
    while not os.path.exists(sys.argv[1]):
        n += 1
        print("tick", n, flush=True)
        time.sleep(0.1)
    sys.exit(7)
    """)
BUSY = textwrap.dedent("""\
    import os, sys, time
    print("ready", flush=True)
    n, next_tick = 0, time.monotonic()
    while True:
        n += 1
        if time.monotonic() >= next_tick:
            if os.path.exists(sys.argv[1]):
                sys.exit(7)
            print("tick", n, flush=True)
            next_tick = time.monotonic() + 0.1
    """)
# Blocked in accept() in the main thread; a connection ends it.
ACCEPT = textwrap.dedent("""\
    import socket, sys
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    print("ready", s.getsockname()[1], flush=True)
    c, _ = s.accept()
    print("accepted", flush=True)
    sys.exit(7)
    """)
# Holds the GIL in C for ever (sum over a range never checks the eval
# breaker): the attach code can never run.
HOG = "print('ready', flush=True); sum(range(10**18))"


def cli(args, env=None, timeout=120, **kw):
    env = dict(env or plain_env())
    env.setdefault("MELIAE_PATH", BUILD or "")
    return subprocess.run([CLI] + args, capture_output=True, text=True,
                          timeout=timeout, env=env, **kw)


def threads(pid):
    return len(os.listdir("/proc/%d/task" % pid))


def unix_sockets(pid):
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:"):
                n += 1
        except OSError:
            pass
    return n


def traced_by(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("TracerPid:"):
                return int(line.split()[1])
    return -1


class Target:
    """An unmodified program in a child process."""

    def __init__(self, tmp, code, argv=None, env=None, prefix=(), name="t"):
        self.stop_file = os.path.join(tmp, name + ".stop")
        self.path = os.path.join(tmp, name + ".py")
        with open(self.path, "w") as f:
            f.write(code)
        os.chmod(self.path, 0o644)
        argv = argv or [sys.executable, self.path, self.stop_file]
        # the sanitizer's preload of an ASan build stays: the attached
        # program imports meliae (tests/meson.build)
        self.proc = subprocess.Popen(list(prefix) + argv,
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, text=True,
                                     env=env or dict(os.environ))
        self.first = self.proc.stdout.readline().split()
        assert self.first[:1] == ["ready"], self.first
        self.pid = self.proc.pid

    def line(self):
        return self.proc.stdout.readline().strip()

    def finish(self, timeout=60):
        """Stops the program its own way; returns (exit code, rest of its
        output)."""
        open(self.stop_file, "w").close()
        if len(self.first) > 1:             # the accept() program
            socket.create_connection(("127.0.0.1", int(self.first[1]))).close()
        out = self.proc.stdout.read()
        return self.proc.wait(timeout), out

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


class AttachTestCase(DaemonTestCase):

    def setUp(self):
        super().setUp()
        self.targets = []

    def tearDown(self):
        for t in self.targets:
            t.kill()
        super().tearDown()

    def target(self, code, **kw):
        t = Target(self.tmp, code, name="t%d" % len(self.targets), **kw)
        self.targets.append(t)
        return t

    def snaps_of(self, d, pid):
        return [s for s in store_list(d.store) if s["pid"] == pid]

    def detach(self, t, before):
        """Detaches t; its streamer's thread ends and its socket closes:
        its (threads, sockets) are back to before."""
        self.assertEqual(self.ok(cli(["detach", str(t.pid)])),
                         "detached from %d\n" % t.pid)
        deadline = time.monotonic() + 10
        while ((threads(t.pid), unix_sockets(t.pid)) != before
               and time.monotonic() < deadline):
            time.sleep(0.05)
        self.assertEqual((threads(t.pid), unix_sockets(t.pid)), before)

    def ok(self, r):
        self.assertEqual((r.returncode, r.stderr), (0, ""), r.stdout)
        return r.stdout

    def fails(self, r, code, text):
        self.assertEqual(r.returncode, code, (r.stdout, r.stderr))
        self.assertEqual(r.stdout, "")
        self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
        self.assertIn(text, r.stderr)
        self.assertTrue(r.stderr.startswith("meliae-cli: "), r.stderr)


@unittest.skipUnless(CLI and BUILD and HAVE_GDB and ROOT,
                     "needs meliae-cli, a scanner build, gdb and root")
@unittest.skipIf(sys.version_info >= (3, 14), "3.14+ is attached through "
                 "PEP 768, not gdb (TestAttachPep768)")
class TestAttachGdb(AttachTestCase):
    """3.9-3.13 (this interpreter) through gdb."""

    def check_program(self, code):
        d = self.daemon()
        t = self.target(code)
        before = (threads(t.pid), unix_sockets(t.pid))
        # --once: one snapshot, returned; nothing left running
        sid = int(self.ok(cli(["--socket", d.sock, "attach", str(t.pid),
                               "--once"])))
        self.assertEqual([s["id"] for s in self.snaps_of(d, t.pid)], [sid])
        self.assertEqual(traced_by(t.pid), 0)
        # --interval: the first snapshot's id, then more on their own
        doc = json.loads(self.ok(cli(["--socket", d.sock, "--json", "attach",
                                      str(t.pid), "--interval", "0.2",
                                      "--label", "attached"])))
        self.assertEqual((doc["command"], doc["pid"], doc["method"],
                          doc["python"], doc["interval"]),
                         ("attach", t.pid, "gdb", "%d.%d" % sys.version_info[:2],
                          0.2))
        deadline = time.monotonic() + 60
        while len(self.snaps_of(d, t.pid)) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        snaps = self.snaps_of(d, t.pid)
        self.assertGreaterEqual(len(snaps), 4)
        self.assertIn(doc["snapshot"], [s["id"] for s in snaps])
        self.assertEqual({s["label"] for s in snaps[1:]}, {"attached"})
        # snap --pid: the attached process answers the daemon's request
        sid = int(self.ok(cli(["--socket", d.sock, "snap", "--pid",
                               str(t.pid)])))
        self.assertIn(sid, [s["id"] for s in self.snaps_of(d, t.pid)])
        # a second attach is refused while the first streams
        self.fails(cli(["--socket", d.sock, "attach", str(t.pid)]), 1,
                   "already attached")
        self.detach(t, before)
        # a snapshot sent before the detach may still be committing: wait
        # for the count to settle, then no new one may come
        n, deadline = len(self.snaps_of(d, t.pid)), time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(1.0)
            m = len(self.snaps_of(d, t.pid))
            if m == n:
                break
            n = m
        time.sleep(0.6)
        self.assertEqual(len(self.snaps_of(d, t.pid)), n)
        self.fails(cli(["detach", str(t.pid)]), 1, "not attached")
        self.assertEqual(traced_by(t.pid), 0)
        # the program went on, and ends its own way
        if code is not ACCEPT:
            self.assertTrue(t.line().startswith("tick"))
        rc, out = t.finish()
        self.assertEqual(rc, 7)
        if code is ACCEPT:
            self.assertEqual(out, "accepted\n")

    def test_idle_in_sleep(self):
        self.check_program(IDLE)

    def test_busy_in_a_python_loop(self):
        self.check_program(BUSY)

    def test_blocked_in_accept(self):
        self.check_program(ACCEPT)

    def test_help_examples_run(self):
        d = self.daemon()
        r = cli(["attach", "--help"])
        examples = [l.split()[1:] for l in r.stdout.splitlines()
                    if l.strip().startswith("meliae-cli attach")]
        r = cli(["detach", "--help"])
        examples += [l.split()[1:] for l in r.stdout.splitlines()
                     if l.strip().startswith("meliae-cli detach")]
        self.assertGreaterEqual(len(examples), 4)
        t = self.target(IDLE)
        for args in examples:
            args = [str(t.pid) if a == "4242" else a for a in args]
            with self.subTest(example=args):
                if args[0] == "detach":
                    self.ok(cli(["--socket", d.sock, "attach", str(t.pid)]))
                self.assertRegex(self.ok(cli(["--socket", d.sock] + args)),
                                 r"^(\d+|detached from \d+)\n$")
                if args[0] == "attach" and "--once" not in args:
                    self.ok(cli(["detach", str(t.pid)]))
        self.assertEqual(t.finish()[0], 7)


@unittest.skipUnless(CLI and BUILD and ROOT, "needs meliae-cli, a scanner "
                     "build and root")
class TestAttachErrors(AttachTestCase):

    def test_no_such_pid(self):
        p = subprocess.Popen(["true"])
        p.wait()
        self.fails(cli(["attach", str(p.pid)]), 3, "no process %d" % p.pid)
        self.fails(cli(["detach", "x1"]), 2, 'wants a pid, not "x1"')

    def test_not_a_cpython(self):
        p = subprocess.Popen(["sleep", "60"])
        try:
            self.fails(cli(["attach", str(p.pid), "--once"]), 1,
                       "is not a CPython")
        finally:
            p.kill()
            p.wait()

    def test_unsupported_and_free_threaded_builds(self):
        old = glob.glob("/root/.pyenv/versions/3.[5-8].*/bin/python3.[5-8]")
        if not old:
            self.skipTest("no Python before 3.9 here")
        t = self.target(IDLE, argv=[old[0], "-c", IDLE, "/nonexistent"])
        self.fails(cli(["attach", str(t.pid)]), 1,
                   "meliae supports 3.9 and later")
        # A free-threaded build is known by its name (python3.13t): the
        # name is all that is looked at before anything is touched.
        exe = os.path.join(self.tmp, "python%d.%dt" % sys.version_info[:2])
        shutil.copy(os.path.realpath(sys.executable), exe)
        t = self.target(IDLE, argv=[exe, "-c", IDLE, "/nonexistent"])
        self.fails(cli(["attach", str(t.pid)]), 1,
                   "free-threaded Python (3.%dt): not supported"
                   % sys.version_info[1])

    def test_no_build_for_the_targets_version(self):
        other = [p for p in glob.glob("/root/.pyenv/versions/3.1[0-3].*/bin/"
                                      "python3.1[0-3]")
                 if not p.endswith("python%d.%d" % sys.version_info[:2])]
        if not other:
            self.skipTest("no other Python 3.10-3.13 here")
        minor = other[0].rsplit(".", 1)[1]
        t = self.target(IDLE, argv=[other[0], "-c", IDLE, "/nonexistent"])
        self.fails(cli(["attach", str(t.pid)]), 3,
                   "no meliae built for Python 3.%s" % minor)

    def test_remote_debugging_disabled(self):
        for extra, env in ((["-X", "disable_remote_debug"], {}),
                           ([], {"PYTHON_DISABLE_REMOTE_DEBUG": "1"})):
            with self.subTest(extra=extra, env=env):
                e = dict(os.environ)
                e.update(env)
                t = self.target(IDLE, env=e, argv=[
                    sys.executable] + extra + ["-c", IDLE, "/nonexistent"])
                self.fails(cli(["detach", str(t.pid)]), 1,
                           "remote debugging is disabled in process %d"
                           % t.pid)

    def test_no_daemon(self):
        t = self.target(IDLE)
        self.fails(cli(["--socket", os.path.join(self.tmp, "no.sock"),
                        "attach", str(t.pid)]), 69, "no daemon on")

    @unittest.skipUnless(HAVE_GDB, "needs gdb")
    def test_blocked_in_c_times_out_and_says_so(self):
        d = self.daemon()
        t = self.target(HOG, argv=[sys.executable, "-c", HOG])
        drops = set(glob.glob("/tmp/meliae-attach-*"))
        start = time.monotonic()
        self.fails(cli(["--socket", d.sock, "attach", str(t.pid), "--once",
                        "--timeout", "6"]), 1,
                   "blocked in C and does not reach the eval loop")
        self.assertLess(time.monotonic() - start, 6 + 12)  # + gdb's grace
        self.assertEqual(traced_by(t.pid), 0)
        self.assertIsNone(t.proc.poll())
        self.assertEqual(self.snaps_of(d, t.pid), [])
        left = set(glob.glob("/tmp/meliae-attach-*")) - drops
        if sys.version_info < (3, 14):
            # nothing left in its /tmp: the queued call finds no script
            self.assertEqual(left, set())
        else:
            # PEP 768: the script stays queued in the process, and removes
            # itself if it ever runs (docs/attach.md)
            self.assertLessEqual(len(left), 1)

    def test_usage(self):
        for args, text in [
                (["attach", "1", "--once", "--interval", "5"],
                 "--once or --interval, not both"),
                (["attach", "1", "--interval", "0"], "--interval wants"),
                (["summary", "latest", "--once"],
                 "--interval and --once work with attach"),
                (["attach"], "attach takes 1 argument")]:
            with self.subTest(args=args):
                self.fails(cli(args), 2, text)


def setpriv_nobody():
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
            "--"]


@unittest.skipUnless(CLI and BUILD and ROOT and shutil.which("setpriv"),
                     "needs root to run as nobody")
class TestAttachPermissions(AttachTestCase):

    def test_another_uid(self):
        t = self.target(IDLE)                       # root's
        r = subprocess.run(setpriv_nobody() + [CLI, "--socket", "/no.sock",
                                              "attach", str(t.pid)],
                           capture_output=True, text=True, timeout=60,
                           env=plain_env())
        self.fails(r, 1, "runs as uid 0, not as you (uid 65534)")

    def test_ptrace_not_permitted(self):
        # Same uid, but not dumpable: the kernel refuses ptrace (as
        # yama's ptrace_scope=1 does for a non-child).
        code = ("import ctypes; ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)\n"
                + IDLE)
        py = sys.executable
        if subprocess.run(setpriv_nobody() + [py, "-c", "pass"],
                          capture_output=True).returncode != 0:
            py = "/usr/bin/python3"     # pyenv's, under /root, is not ours
        t = self.target(code, prefix=setpriv_nobody(),
                        argv=[py, "-c", code, "/nonexistent"])
        r = subprocess.run(setpriv_nobody() + [CLI, "--socket", "/no.sock",
                                              "attach", str(t.pid)],
                           capture_output=True, text=True, timeout=60,
                           env=plain_env())
        self.fails(r, 1, "ptrace not permitted on process %d: see "
                   "kernel.yama.ptrace_scope" % t.pid)


def in_sid(tmp, version, code, build=None):
    """The argv running code with python3.N of the sid chroot in a mount
    namespace of its own (a container, to meliae-cli): /tmp a private
    tmpfs with tmp bind-mounted at /tmp/host (and a meliae build, if any,
    read-only at /tmp/meliae), /proc mounted."""
    return ["unshare", "-m", "sh", "-c",
            'mount -t tmpfs none "$0/tmp" && mkdir "$0/tmp/host" && '
            'mount --bind "$1" "$0/tmp/host" && mount -t proc proc "$0/proc"'
            ' && if [ -n "$3" ]; then mkdir "$0/tmp/meliae" && '
            'mount --bind -o ro "$3" "$0/tmp/meliae"; fi'
            ' && exec chroot "$0" /usr/bin/python%s -c "$2" /tmp/host/stop'
            % version, SID, tmp, code, build or ""]


@unittest.skipUnless(CLI and ROOT and SID, "needs root and the sid chroot "
                     "with python3.14 (/var/cache/meliae/sid or sid-try)")
class TestAttachPep768(AttachTestCase):
    """3.14 and 3.15 through sys.remote_exec of the target's own
    interpreter, in its own mount namespace."""

    def sid_target(self, version, code, build=None):
        if not os.path.exists(os.path.join(SID, "usr/bin/python" + version)):
            self.skipTest("no python%s in %s" % (version, SID))
        t = Target(self.tmp, code, argv=in_sid(self.tmp, version, code,
                                               build),
                   name="sid%d" % len(self.targets), env=plain_env())
        t.stop_file = os.path.join(self.tmp, "stop")
        self.targets.append(t)
        return t

    def check_round_trip(self, version):
        """Detach (the script runs and answers), then attach: with a
        meliae built for the version in $MELIAE_TEST_BUILD_3N (the
        directory holding the meliae package), --once, --interval, snap
        --pid and detach; without, the error naming the version."""
        build = os.environ.get("MELIAE_TEST_BUILD_" + version.replace(".", ""))
        d = self.daemon()
        t = self.sid_target(version, IDLE, build)
        before = (threads(t.pid), unix_sockets(t.pid))
        # through PEP 768 and back: the script ran in the target (it
        # answers that nothing is attached)
        self.fails(cli(["detach", str(t.pid)]), 1,
                   "not attached: meliae-cli attach never ran in process %d"
                   % t.pid)
        env = dict(plain_env(), MELIAE_PATH="/tmp/meliae")
        sock = "/tmp/host/" + os.path.basename(d.sock)
        r = cli(["--socket", sock, "attach", str(t.pid), "--once"], env=env)
        if build is None:
            # no meliae for this version here: the version it needs is named
            self.fails(r, 3, "no meliae built for Python %s" % version)
        else:
            sid = int(self.ok(r))
            self.assertEqual([s["id"] for s in self.snaps_of(d, t.pid)],
                             [sid])
            doc = json.loads(self.ok(cli(["--socket", sock, "--json",
                                          "attach", str(t.pid), "--interval",
                                          "0.3"], env=env)))
            self.assertEqual((doc["method"], doc["python"]),
                             ("pep768", version))
            sid = int(self.ok(cli(["--socket", d.sock, "snap", "--pid",
                                   str(t.pid)])))
            self.assertIn(sid, [s["id"] for s in self.snaps_of(d, t.pid)])
            self.detach(t, before)
        self.assertEqual(traced_by(t.pid), 0)
        self.assertTrue(t.line().startswith("tick"))
        self.assertEqual(t.finish()[0], 7)

    def test_314(self):
        self.check_round_trip("3.14")

    def test_315(self):
        self.check_round_trip("3.15")

    def test_blocked_in_accept_is_reported_in_time(self):
        # PEP 768 runs the script at the main thread's next safe point:
        # one blocked in accept() never reaches it.
        t = self.sid_target("3.14", ACCEPT)
        start = time.monotonic()
        self.fails(cli(["detach", str(t.pid), "--timeout", "2"]), 1,
                   "did not run the attach code in time")
        self.assertLess(time.monotonic() - start, 15)
        rc, out = t.finish()
        self.assertEqual((rc, out), (7, "accepted\n"))


if __name__ == "__main__":
    unittest.main()
