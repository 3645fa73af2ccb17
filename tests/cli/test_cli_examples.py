# SPDX-License-Identifier: MIT
"""Every example the user is shown runs.

The examples are read from docs/man/meliae-cli.1.scd and
docs/man/meliae-monitord.8.scd ("# EXAMPLES") and from the output of
`meliae-cli COMMAND --help` for every command `meliae-cli --help` lists,
so a new example is covered without touching this file.

meliae-cli examples run against a copy of the fixture store (--store DIR
added, or replacing the example's store), with the example's placeholders
replaced by the fixture's: an address by the first Session's, a file name
by a fixture dump, a process by the fixture's label, an unknown snapshot
id by the latest one.  `snap` needs a connected process: those examples
run through a meliae-monitord with one streaming process; `attach` and
`detach` need a process to attach to: tests/daemon/test_daemon_attach.py
runs theirs.  Each must exit
0 with an answer on stdout and nothing on stderr.

meliae-monitord examples run with their store and socket replaced by
temporary paths (and --group by the caller's group), in the foreground;
each must listen, then exit 0 on SIGTERM.
"""

import grp
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

from cli_support import (DOCS, FIXTURES, LABEL, MONITORD, SESSION,
                         Daemon, TmpTestCase, cli_env, make_fixture_store,
                         needs_cli, needs_daemon, run_cli, wait_listening)

# Options that take a value (their value is never a placeholder to map
# positionally).
VALUED = {"--store", "--socket", "--dump", "--process", "--since", "--until",
          "--by", "--top", "--depth", "--chains", "--label", "--limit",
          "--timeout", "--group", "--retain", "--retain-age", "--max-store",
          "--log-level", "--metrics-textfile", "--metrics-listen", "--sort",
          "--html", "--alive", "--pid", "--interval"}


def scd_examples(name, prog):
    """The command lines of the EXAMPLES section of docs/man/NAME.scd."""
    with open(os.path.join(DOCS, "man", name), encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"^# EXAMPLES\n(.*?)(?=^# )", text, re.S | re.M)
    assert m, "no EXAMPLES section in " + name
    return [l.strip() for l in m.group(1).splitlines()
            if l.startswith("\t") and l.strip().startswith(prog + " ")]


def help_commands():
    """The commands `meliae-cli --help` lists."""
    out = run_cli(["--help"]).stdout
    m = re.search(r"^commands:\n(.*?)\n\n", out, re.S | re.M)
    assert m, out
    return [l.split()[0] for l in m.group(1).splitlines() if l.strip()]


def help_examples(cmd):
    r = run_cli([cmd, "--help"])
    assert r.returncode == 0 and r.stderr == "", (cmd, r.stderr)
    m = re.search(r"^examples:\n(.*)", r.stdout, re.S | re.M)
    assert m, "no examples in `meliae-cli %s --help`" % cmd
    return [l.strip() for l in m.group(1).splitlines()
            if l.strip().startswith("meliae-cli ")]


def all_cli_examples():
    """(where, command line) for every meliae-cli example."""
    out = [("meliae-cli.1", e) for e in scd_examples("meliae-cli.1.scd",
                                                     "meliae-cli")]
    for cmd in help_commands():
        out += [("%s --help" % cmd, e) for e in help_examples(cmd)]
    return out


class Mapper:
    """Turns an example's arguments into ones that work on the fixture."""

    def __init__(self, store, ids, dump, socket=None, pid=None,
                 import_dump=None):
        self.store, self.ids, self.dump = store, ids, dump
        self.socket, self.pid = socket, pid
        # import refuses a file the store holds: one it does not
        self.import_dump = import_dump or dump

    def value(self, opt, v):
        if opt == "--store":
            return self.store
        if opt == "--socket":
            return self.socket
        if opt == "--dump":
            return self.dump
        if opt == "--process":
            return LABEL
        if opt == "--pid":
            return str(self.pid)
        if opt == "--html":                 # next to the store, not here
            return os.path.join(os.path.dirname(self.store), "report.html")
        return v

    def positional(self, cmd, k, v):
        """The k-th argument of command cmd."""
        if re.fullmatch(r"0x[0-9a-fA-F]+", v):
            return hex(SESSION)
        if re.fullmatch(r"\d{10,}", v):             # a decimal address
            return str(SESSION)
        if cmd == "snap":                           # SEL: a pid or a label
            return str(self.pid) if v.isdigit() else LABEL
        if cmd == "import":
            return self.import_dump
        if v.endswith((".json", ".json.gz")):
            return self.dump
        if v.isdigit() and int(v) not in self.ids:  # a snapshot id
            return str(max(self.ids))
        return v

    def map(self, argv):
        assert argv[0] == "meliae-cli", argv
        args, out, cmd, k = argv[1:], [], None, 0
        i = 0
        while i < len(args):
            a = args[i]
            if a in VALUED and i + 1 < len(args):
                out += [a, self.value(a, args[i + 1])]
                i += 2
                continue
            if a.startswith("-"):
                out.append(a)
            elif cmd is None:
                cmd = a
                out.append(a)
            else:
                out.append(self.positional(cmd, k, a))
                k += 1
            i += 1
        if cmd == "snap":
            if "--socket" not in out:
                out = ["--socket", self.socket] + out
        elif "--store" not in out and "--dump" not in out:
            out = ["--store", self.store] + out
        return cmd, out


@needs_cli
class TestCliExamples(TmpTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.template = os.path.join(cls.tmp, "template")
        imports = make_fixture_store(cls.template)
        cls.ids = {d["snapshot"] for d in imports}
        cls.n = 0

    def fresh_store(self):
        """A copy of the fixture store for one example (import adds to
        it)."""
        TestCliExamples.n += 1
        path = os.path.join(self.tmp, "store%d" % self.n)
        shutil.copytree(self.template, path)
        return path

    def test_examples_are_found(self):
        ex = all_cli_examples()
        where = {w for w, _ in ex}
        self.assertGreaterEqual(len([1 for w, _ in ex if w == "meliae-cli.1"]),
                                6)
        for cmd in help_commands():
            self.assertIn("%s --help" % cmd, where, "%s has no example" % cmd)

    def test_every_cli_example_runs_on_the_fixture(self):
        dump = os.path.join(FIXTURES, "dump3.json")
        other = os.path.join(self.tmp, "heap.json")     # not in the store
        with open(dump) as f, open(other, "w") as g:
            g.write(f.read() + "\n")
        ran = 0
        for where, line in all_cli_examples():
            m = Mapper(self.fresh_store(), self.ids, dump, import_dump=other)
            cmd, args = m.map(shlex.split(line))
            if cmd == "snap":
                continue            # test_snap_examples_run_through_a_daemon
            if cmd in ("attach", "detach"):
                continue            # tests/daemon/test_daemon_attach.py
            with self.subTest(where=where, example=line, run=args):
                r = run_cli(args)
                self.assertEqual((r.returncode, r.stderr), (0, ""))
                self.assertNotEqual(r.stdout, "")
                self.assertNotIn("no snapshots", r.stdout)
                ran += 1
        self.assertGreater(ran, 10)

    def test_mapping(self):
        m = Mapper("/S", {1, 2, 3}, "/F/d.json", socket="/K", pid=99)
        cases = [
            ("meliae-cli referrers 17 139889234567808 --chains 5",
             ["--store", "/S", "referrers", "3", str(SESSION), "--chains",
              "5"]),
            ("meliae-cli diff 3 17 --top 5",
             ["--store", "/S", "diff", "3", "3", "--top", "5"]),
            ("meliae-cli --store /var/lib/meliae import heap.json",
             ["--store", "/S", "import", "/F/d.json"]),
            ("meliae-cli --dump heap.json summary",
             ["--dump", "/F/d.json", "summary"]),
            ("meliae-cli summary latest --process web --top 10",
             ["--store", "/S", "summary", "latest", "--process", LABEL,
              "--top", "10"]),
            ("meliae-cli snap 4242 --timeout 120",
             ["--socket", "/K", "snap", "99", "--timeout", "120"]),
            ("meliae-cli snap web", ["--socket", "/K", "snap", LABEL]),
            ("meliae-cli snap --pid 4242",
             ["--socket", "/K", "snap", "--pid", "99"]),
        ]
        for line, want in cases:
            self.assertEqual(m.map(shlex.split(line))[1], want, line)


STREAMER = textwrap.dedent("""
    import sys, time
    from meliae import scanner
    st = scanner.stream_to(sys.argv[1], label=sys.argv[2])
    if sys.argv[3] == "1":
        st.snapshot(timeout=60)
    else:
        while not st.connected:
            time.sleep(0.01)
    print("ready", flush=True)
    sys.stdin.read()
    st.close()
    """)


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


@needs_daemon
class TestSnapExamples(TmpTestCase):
    """`snap` examples: a daemon and one process streaming to it."""

    def run_snaps(self, lines, first_snapshot):
        """Runs the snap command lines against a daemon with one process
        connected (that took a snapshot first, or not)."""
        tmp = tempfile.mkdtemp(dir=self.tmp)
        d = Daemon(tmp)
        app = subprocess.Popen([sys.executable, "-c", STREAMER, d.sock, LABEL,
                                "1" if first_snapshot else "0"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, env=cli_env())
        try:
            self.assertEqual(app.stdout.readline().strip(), "ready")
            m = Mapper(d.store, set(), None, socket=d.sock, pid=app.pid)
            for where, line in lines:
                _, args = m.map(shlex.split(line))
                with self.subTest(where=where, example=line, run=args):
                    deadline = time.monotonic() + 10
                    r = run_cli(args)
                    while (r.returncode == 3 and not first_snapshot
                           and time.monotonic() < deadline):
                        time.sleep(0.05)
                        r = run_cli(args)
                    self.assertEqual((r.returncode, r.stderr), (0, ""))
                    self.assertRegex(r.stdout, r"^\d+\n$")
        finally:
            app.stdin.close()
            app.wait(timeout=30)
            app.stdout.close()
            rc = d.stop()
        self.assertEqual(rc, 0, d.log())

    def test_snap_examples_run_through_a_daemon(self):
        snaps = [(w, l) for w, l in all_cli_examples()
                 if shlex.split(l)[1:2] == ["snap"]]
        self.assertTrue(snaps, "snap has examples")
        self.run_snaps(snaps, first_snapshot=True)

    # The streamer names itself in a hello line on connect: its label
    # matches before it has sent any snapshot.  ("connected" is the
    # client's view: the daemon may read the hello a moment later, hence
    # the retries in run_snaps; without the hello, they never succeed.)
    def test_snap_by_label_before_the_first_snapshot(self):
        self.run_snaps([("", "meliae-cli snap web")], first_snapshot=False)

    def test_snap_by_pid_before_the_first_snapshot(self):
        self.run_snaps([("", "meliae-cli snap 4242")], first_snapshot=False)


@needs_daemon
class TestMonitordExamples(TmpTestCase):

    def test_examples_are_found(self):
        self.assertGreaterEqual(
            len(scd_examples("meliae-monitord.8.scd", "meliae-monitord")), 2)

    def test_every_monitord_example_listens_and_stops_on_sigterm(self):
        group = grp.getgrgid(os.getgid()).gr_name
        for k, line in enumerate(scd_examples("meliae-monitord.8.scd",
                                              "meliae-monitord")):
            argv = shlex.split(line)[1:]
            store = os.path.join(self.tmp, "store%d" % k)
            sock = os.path.join(self.tmp, "s%d.sock" % k)
            prom = os.path.join(self.tmp, "m%d.prom" % k)
            args, i = [], 0
            while i < len(argv):
                a = argv[i]
                if a in VALUED and i + 1 < len(argv):
                    v = {"--store": store, "--socket": sock,
                         "--group": group,
                         "--metrics-textfile": prom,
                         "--metrics-listen": "127.0.0.1:0",
                         }.get(a, argv[i + 1])
                    args += [a, v]
                    i += 2
                else:
                    args.append(a)
                    i += 1
            if "--socket" not in args:
                args += ["--socket", sock]
            if "--foreground" not in args:
                args.append("--foreground")
            with self.subTest(example=line, run=args):
                log = os.path.join(self.tmp, "d%d.log" % k)
                with open(log, "wb") as f:
                    p = subprocess.Popen([MONITORD] + args, stdout=f,
                                         stderr=f, stdin=subprocess.DEVNULL,
                                         env=cli_env())
                try:
                    wait_listening(sock, p, lambda: read(log))
                    self.assertTrue(os.path.isdir(store))
                    # and answers a query
                    r = run_cli(["--socket", sock, "--json", "snapshots"])
                    self.assertEqual((r.returncode, r.stderr), (0, ""))
                    if "--metrics-textfile" in args:
                        self.assertTrue(os.path.exists(prom))
                finally:
                    p.send_signal(signal.SIGTERM)
                    try:
                        rc = p.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait()
                        rc = "hung"
                self.assertEqual(rc, 0, read(log))
                self.assertFalse(os.path.exists(sock), "socket removed")


if __name__ == "__main__":
    unittest.main()
