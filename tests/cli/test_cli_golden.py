# SPDX-License-Identifier: MIT
"""meliae-cli's answers on a fixed store, against golden files.

The store is built from the three hand-written dumps of
tests/fixtures/cli/ (tests/cli/make_fixtures.py) with `meliae-cli import`;
every command's table and --json document is compared with
tests/cli/golden/NAME.txt and NAME.json after replacing the times (the
only thing that differs between runs: the snapshots' commit times).
Anything else that changes fails the test.

To regenerate the goldens after an intended change, run

    MELIAE_UPDATE_GOLDEN=1 MELIAE_CLI=BUILD/cli/meliae-cli \\
        python3 -m unittest tests/cli/test_cli_golden.py

(or this file with --update) and review the diff.
"""

import json
import os
import subprocess
import sys
import unittest

from cli_support import (ADDR, CLI, FIXTURES, GOLDEN, SESSION, TmpTestCase,
                         cli_env, make_fixture_store, make_fixtures,
                         needs_cli, normalise_json, normalise_table, pretty,
                         run_cli)

UPDATE = os.environ.get("MELIAE_UPDATE_GOLDEN", "") not in ("", "0")

# name: (arguments after --store DIR / with --dump FILE, forms)
# "store": run with --store; "dump": run as is from tests/fixtures/cli.
BOTH = ("txt", "json")
CASES = {
    # snapshots
    "snapshots": ("store", ["snapshots"], BOTH),
    "snapshots-by-program": ("store", ["snapshots", "--process",
                                       "dump2.json"], BOTH),
    "snapshots-by-label": ("store", ["snapshots", "--process", "fixture"],
                           ("json",)),
    # summary
    "summary-latest": ("store", ["summary", "latest"], BOTH),
    "summary-1-count-top3-bytes": ("store", ["--bytes", "summary", "1", "--by",
                                             "count", "--top", "3"], BOTH),
    "summary-latest~1-all": ("store", ["summary", "latest~1", "--top", "0"],
                             ("txt",)),
    # growth
    "growth": ("store", ["growth"], BOTH),
    "growth-count-top4": ("store", ["growth", "--by", "count", "--top", "4"],
                          BOTH),
    "growth-sort-bytes": ("store", ["growth", "--sort", "bytes", "--top",
                                    "3"], BOTH),
    "growth-bytes-top2": ("store", ["--bytes", "growth", "--top", "2"],
                          ("txt",)),
    # diff
    "diff-latest~2-latest": ("store", ["diff", "latest~2", "latest"], BOTH),
    "diff-2-3": ("store", ["diff", "2", "3"], BOTH),
    "diff-1-2-top3": ("store", ["diff", "1", "2", "--top", "3"], BOTH),
    "diff-3-1-all": ("store", ["diff", "3", "1", "--top", "0"], BOTH),
    # referrers
    "referrers-session": ("store", ["referrers", "latest", hex(SESSION)],
                          BOTH),
    "referrers-session-decimal-1-chain": ("store", [
        "referrers", "1", str(SESSION), "--chains", "1"], ("json",)),
    "referrers-shared-str": ("store", [
        "referrers", "latest", hex(ADDR["s_app.cache"]), "--chains", "5"],
        BOTH),
    "referrers-str-of-two-modules": ("store", [
        "referrers", "latest", hex(ADDR["s___name__"]), "--chains", "5"],
        BOTH),
    "referrers-cycle": ("store", ["referrers", "latest",
                                  hex(ADDR["cycle_a"])], BOTH),
    "referrers-held-by-cycle": ("store", ["referrers", "latest",
                                          hex(ADDR["s_orphan"])], ("txt",)),
    "referrers-root-module": ("store", ["referrers", "latest",
                                        hex(ADDR["m_main"])], BOTH),
    "referrers-depth1": ("store", ["referrers", "latest", hex(SESSION),
                                   "--depth", "1"], BOTH),
    # show
    "show-session": ("store", ["show", "latest", hex(SESSION)], BOTH),
    "show-config-limit2": ("store", ["show", "latest", hex(ADDR["d_config"]),
                                     "--limit", "2"], BOTH),
    "show-bytes-in-1": ("store", ["show", "1", hex(ADDR["b_scratch"])], BOTH),
    "show-module": ("store", ["show", "latest", hex(ADDR["m_app"])], ("txt",)),
    "show-process-latest~1": ("store", ["show", "latest~1", hex(SESSION),
                                        "--process", "fixture"], ("txt",)),
    # --dump FILE: no store, no snapshot argument
    "dump-summary": ("dump", ["--dump", "dump3.json", "summary"], BOTH),
    "dump-summary-count": ("dump", ["--dump", "dump1.json", "summary", "--by",
                                    "count", "--top", "4"], ("txt",)),
    "dump-referrers": ("dump", ["--dump", "dump3.json", "referrers",
                                hex(SESSION)], BOTH),
    "dump-show": ("dump", ["--dump", "dump1.json", "show", hex(SESSION)],
                  BOTH),
}


def golden_path(name, form):
    return os.path.join(GOLDEN, "%s.%s" % (name, form))


@needs_cli
class TestGolden(TmpTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.store = os.path.join(cls.tmp, "store")
        cls.imports = make_fixture_store(cls.store)

    def run_case(self, name, form):
        kind, args, _ = CASES[name]
        args = list(args)
        if form == "json":
            args = ["--json"] + args
        if kind == "store":
            args = ["--store", self.store] + args
        r = run_cli(args, cwd=FIXTURES)
        self.assertEqual((r.returncode, r.stderr), (0, ""), args)
        if form == "json":
            self.assertTrue(r.stdout.endswith("\n"))
            self.assertEqual(r.stdout.count("\n"), 1, "one line")
            doc = json.loads(r.stdout)
            self.assertEqual(doc["schema_version"], 2)
            return pretty(normalise_json(doc))
        self.assertNotIn("\033", r.stdout, "colour only on a terminal")
        return normalise_table(r.stdout)

    def check(self, name, form):
        got = self.run_case(name, form)
        path = golden_path(name, form)
        if UPDATE:
            os.makedirs(GOLDEN, exist_ok=True)
            with open(path, "w", encoding="utf-8", newline="\n") as f:
                f.write(got)
            return
        try:
            with open(path, encoding="utf-8", newline="\n") as f:
                want = f.read()
        except FileNotFoundError:
            self.fail("no golden file %s (MELIAE_UPDATE_GOLDEN=1 writes it)"
                      % path)
        self.maxDiff = None
        self.assertEqual(got, want, "%s differs from %s (MELIAE_UPDATE_GOLDEN"
                         "=1 rewrites it; review the diff)" % (name, path))

    def test_import_answers(self):
        self.assertEqual(self.imports, [
            {"schema_version": 2, "command": "import", "snapshot": i + 1,
             "objects": n}
            for i, n in enumerate((39, 45, 54))])

    def test_every_golden_file_belongs_to_a_case(self):
        if UPDATE:
            self.skipTest("updating")
        want = {os.path.basename(golden_path(n, f))
                for n, (_, _, forms) in CASES.items() for f in forms}
        self.assertEqual(set(os.listdir(GOLDEN)), want)

    def test_fixture_dumps_are_what_make_fixtures_writes(self):
        for name, text in make_fixtures.texts().items():
            with open(os.path.join(FIXTURES, name), encoding="ascii",
                      newline="\n") as f:
                self.assertEqual(f.read(), text, "%s: run python3 "
                                 "tests/cli/make_fixtures.py" % name)

    def test_json_and_table_agree_on_the_session_chain(self):
        # The golden files could both be wrong in the same way; the
        # facts the fixture was built to show, spelt out.
        doc = json.loads(run_cli(["--store", self.store, "--json",
                                  "referrers", "latest", hex(SESSION)]).stdout)
        chain = doc["chains"][0]
        self.assertEqual([h["type"] for h in chain],
                         ["Session", "list", "dict", "module"])
        self.assertEqual(chain[0]["address"], SESSION)
        self.assertEqual(chain[-1]["name"], "app.cache")
        self.assertEqual(len(doc["chains"]), 1)
        doc = json.loads(run_cli(["--store", self.store, "--json", "diff",
                                  "latest~1", "latest"]).stdout)
        # the 3 new Sessions and their strs and ints: one group, at the
        # old list they hang off (an accumulation point), named by its path
        [g] = doc["new_objects"]["groups"]
        self.assertEqual((g["type"], g["count"], g["bytes"]),
                         ("Session", 9, 606))
        self.assertEqual([(t["type"], t["count"], t["bytes"], t["depth"])
                          for t in g["types"]],
                         [("Session", 3, 312, 1), ("str", 3, 210, 2),
                          ("int", 3, 84, 2)])
        self.assertEqual(g["holder"]["address"], ADDR["l_sessions"])
        self.assertFalse(g["holder"]["new"])
        self.assertEqual(g["holder"]["owner"]["name"], "app.cache")
        self.assertEqual(g["holder"]["path"], "app.cache.SESSIONS")
        doc = json.loads(run_cli(["--store", self.store, "--json",
                                  "growth"]).stdout)
        [p] = doc["processes"]
        t = p["types"][0]
        # three snapshots: Session rises in both pairs, but no trend test
        # can be significant yet (exact p of 3 rising points: 1/6)
        self.assertEqual((t["type"], t["suspect"], t["verdict"], t["series"]),
                         ("Session", False, "few_snapshots", [208, 416, 728]))
        self.assertEqual((t["trend"]["bytes"]["s"], t["trend"]["bytes"]["p"]),
                         (3, 0.166667))


@needs_cli
class TestValues(TmpTestCase):
    """Values are cut to a number of characters, never inside one."""

    def dump(self, *args):
        r = subprocess.run([CLI, "--dump", "utf8.json"] + list(args),
                           capture_output=True, cwd=FIXTURES,
                           env=cli_env(), timeout=60)
        self.assertEqual((r.returncode, r.stderr), (0, b""))
        return r.stdout

    def test_module_name_is_utf8_in_both_forms(self):
        # (the str it refers to is checked below)
        out = self.dump("show", hex(make_fixtures.UTF8_MODULE)).decode(
            "utf-8", "replace")
        self.assertIn("module@0x%x 72B caf\u00e9" % make_fixtures.UTF8_MODULE,
                      out)
        doc = json.loads(self.dump("--json", "referrers",
                                   hex(make_fixtures.UTF8_MODULE)))
        self.assertEqual(doc["object"]["name"], "caf\u00e9")
        self.assertEqual(doc["chains"], [[doc["object"]]])

    def test_json_value_is_valid_utf8_and_whole(self):
        out = self.dump("--json", "show", hex(make_fixtures.UTF8_STR))
        doc = json.loads(out.decode("utf-8"))
        self.assertEqual(doc["object"]["value"], make_fixtures.UTF8_VALUE)

    def test_table_value_is_valid_utf8(self):
        out = self.dump("show", hex(make_fixtures.UTF8_MODULE))
        text = out.decode("utf-8")
        line = [l for l in text.splitlines() if l.startswith("  str@")][0]
        self.assertIn("a" + "\u00e9" * 10, line)


def _add_tests():
    for name, (_, _, forms) in CASES.items():
        for form in forms:
            def test(self, name=name, form=form):
                self.check(name, form)
            ident = name.replace("-", "_").replace("~", "_back")
            test.__name__ = "test_golden_%s_%s" % (ident, form)
            setattr(TestGolden, test.__name__, test)


_add_tests()

if __name__ == "__main__":
    if "--update" in sys.argv:
        sys.argv.remove("--update")
        UPDATE = True
    unittest.main()
