# SPDX-License-Identifier: MIT
"""cli/meliae-cli.bash completes what meliae-cli takes: the commands of
`meliae-cli --help` and each command's options as `COMMAND --help`
lists them, so neither can change without the other."""

import os
import re
import shutil
import subprocess
import unittest

from cli_support import ROOT, needs_cli, run_cli

SCRIPT = os.path.join(ROOT, "cli", "meliae-cli.bash")


def complete(words):
    """COMPREPLY for the command line words (the last one being
    completed), in a bash that sourced the script."""
    line = " ".join("'%s'" % w for w in words)
    r = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c",
         'source "$0"; COMP_WORDS=(%s); COMP_CWORD=%d; _meliae_cli; '
         'printf "%%s\\n" "${COMPREPLY[@]}"' % (line, len(words) - 1),
         SCRIPT], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    return set(r.stdout.split())


def commands():
    out = run_cli(["--help"]).stdout
    m = re.search(r"^commands:\n(.*?)\n\n", out, re.S | re.M)
    return [l.split()[0] for l in m.group(1).splitlines()]


@needs_cli
@unittest.skipUnless(shutil.which("bash"), "no bash")
class TestCompletion(unittest.TestCase):

    def test_commands_are_those_of_help(self):
        self.assertEqual(complete(["meliae-cli", ""]), set(commands()))
        self.assertEqual(complete(["meliae-cli", "--json", "su"]),
                         {"summary"})
        self.assertEqual(complete(["meliae-cli", "--store", "/x", "d"]),
                         {"diff", "delete", "dominators", "detach"})

    def test_each_commands_options_are_those_of_its_help(self):
        for cmd in commands():
            with self.subTest(cmd=cmd):
                usage = run_cli([cmd, "--help"]).stdout.split("\n\n")[0]
                want = set(re.findall(r"--[a-z-]+", usage)) | {"--help"}
                self.assertEqual(complete(["meliae-cli", cmd, "--"]), want)

    def test_global_options(self):
        got = complete(["meliae-cli", "--"])
        for opt in ("--store", "--socket", "--dump", "--json", "--bytes",
                    "--help"):
            self.assertIn(opt, got)

    def test_values(self):
        self.assertEqual(complete(["meliae-cli", "summary", "latest",
                                   "--by", ""]), {"size", "count"})
        self.assertEqual(complete(["meliae-cli", "growth", "--sort", "s"]),
                         {"score", "slope"})
        self.assertEqual(complete(["meliae-cli", "summary", "la"]),
                         {"latest", "latest~1", "latest~2"})
        # an address is no snapshot: nothing offered
        self.assertEqual(complete(["meliae-cli", "show", "latest", ""]),
                         set())
        self.assertEqual(complete(["meliae-cli", "--dump", "h.json", "top",
                                   ""]), set())


if __name__ == "__main__":
    unittest.main()
