# SPDX-License-Identifier: MIT
"""`meliae-cli report`: the leak report as JSON, as text and as one HTML
page, the last one opened in a real headless browser (Debian's chromium;
scripts/deps.sh installs it; the browser tests are skipped, saying so,
only where it is missing).

The store holds two real programs streamed to a real meliae-monitord
(tests/cli/trend_programs.py: a burst leak of Leaked objects kept by a
module-level list, and a steady-state service), and a made-up process
imported from hand-written dumps whose type name and label are HTML (to
check that the page escapes them).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

from cli_support import (HERE, Daemon, TmpTestCase, answer_lines, cli_env,
                         needs_daemon, run_cli)

STEPS = 12
EVIL_TYPE = "<img src=x onerror=alert(1)>"
EVIL_LABEL = "x<script>alert(2)</script>&"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = unittest.skipUnless(
    CHROMIUM, "chromium is not installed (scripts/deps.sh installs it): "
    "the report's page is not checked in a browser")


def evil_dump(k):
    """A module -> dict -> list of 4 + 3k objects of type EVIL_TYPE."""
    lines = [{"address": 0x1000, "type": "module", "size": 72, "name": "evil",
              "refs": [0x2000]},
             {"address": 0x2000, "type": "dict", "size": 360, "len": 1,
              "refs": [0x3000]}]
    items = [0x10000 + 0x100 * i for i in range(4 + 3 * k)]
    lines.append({"address": 0x3000, "type": "list", "size": 56 + 8 * 64,
                  "len": len(items), "refs": items})
    lines += [{"address": a, "type": EVIL_TYPE, "size": 1000, "refs": []}
              for a in items]
    return "".join(json.dumps(l) + "\n" for l in lines)


@needs_daemon
class TestReport(TmpTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.daemon = Daemon(cls.tmp)
        cls.store = cls.daemon.store
        try:
            procs = [(mode, subprocess.Popen(
                [sys.executable, os.path.join(HERE, "trend_programs.py"),
                 mode, cls.daemon.sock], stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True, env=cli_env(),
                stdin=subprocess.DEVNULL)) for mode in ("burst", "steady")]
            for mode, p in procs:
                out, err = p.communicate(timeout=400)
                if p.returncode != 0 or out.strip() != "done":
                    raise AssertionError("%s: %s%s" % (mode, out, err))
            for k in range(6):
                path = os.path.join(cls.tmp, "evil%d.json" % k)
                with open(path, "w") as f:
                    f.write(evil_dump(k))
                r = run_cli(["--socket", cls.daemon.sock, "import", path,
                             "--label", EVIL_LABEL])
                if r.returncode != 0:
                    raise AssertionError(r.stderr)
        except BaseException:
            cls.daemon.stop()
            super().tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.daemon.stop()
        finally:
            super().tearDownClass()

    def cli(self, *args, json_=True):
        r = run_cli(["--store", self.store] + (["--json"] if json_ else [])
                    + list(args))
        self.assertEqual((r.returncode, r.stderr), (0, ""), args)
        return json.loads(r.stdout) if json_ else r.stdout

    def burst(self):
        [p] = self.cli("report", "--process", "burst")["processes"]
        return p

    def test_burst_report_names_the_leak_and_what_holds_it(self):
        p = self.burst()
        self.assertEqual(p["snapshots"], STEPS)
        self.assertEqual(len(p["points"]), STEPS)
        sus = {s["type"]: s for s in p["suspects"]}
        self.assertEqual(p["suspects"][0]["type"], "Leaked", list(sus))
        leaked = sus["Leaked"]
        self.assertIsNone(leaked["grows_with"])
        self.assertEqual(leaked["verdict"], "suspect")
        self.assertEqual(len(leaked["series_bytes"]), STEPS)
        self.assertEqual(leaked["series_count"],
                         [2000 * min(k + 1, 10) for k in range(STEPS)])
        # the chain from a new Leaked to the program's module
        chain = leaked["chain"]
        self.assertEqual(chain[0]["address"], leaked["example"])
        self.assertEqual([h["type"] for h in chain],
                         ["Leaked", "list", "dict", "module"], chain)
        self.assertEqual(chain[-1]["name"], "__main__")
        # the new ones: at the one list (their accumulation point, one hop
        # below it), owned by the module, with their strs and ints
        g = leaked["new_objects"]["groups"][0]
        self.assertEqual(g["holder"]["address"], chain[1]["address"])
        self.assertEqual(g["holder"]["owner"]["name"], "__main__")
        self.assertEqual(g["holder"]["path"], "__main__.LEAK")
        self.assertEqual(g["depth"], 1)
        self.assertEqual(len(leaked["new_objects"]["groups"]), 1)
        self.assertGreater(g["group_count"], g["count"])
        self.assertEqual(p["verdict"]["type"], "Leaked")
        self.assertEqual(p["verdict"]["held_by"]["address"],
                         chain[1]["address"])
        self.assertGreaterEqual(leaked["new_objects"]["count"], 2000)
        self.assertEqual(p["diff"]["b"], p["last"]["id"])
        self.assertEqual(len(p["diff"]["alive_in"]), 2)
        # their strs grow with them
        self.assertEqual(sus["str"]["grows_with"], "Leaked")
        # the retained size: what top --retained says of the type, at
        # least the type's own bytes (each object retains itself), and the
        # example's own retained size
        top = self.cli("top", "--retained", "--top", "1000",
                       str(p["last"]["id"]))
        rows = {r["type"]: r for r in top["types"]}
        for s in p["suspects"]:
            self.assertIsNotNone(s["retained"], s.get("retained_note"))
            self.assertEqual(s["retained"]["bytes"], rows[s["type"]]["retained"])
            self.assertGreaterEqual(s["retained"]["bytes"], s["bytes_after"])
        ex = self.cli("dominators", str(p["last"]["id"]), str(leaked["example"]))
        self.assertEqual(leaked["retained"]["example_bytes"],
                         ex["object"]["retained"])

    def test_top_keeps_the_leak_not_what_grows_with_it(self):
        [p] = self.cli("report", "--process", "burst", "--top", "1")["processes"]
        self.assertEqual([s["type"] for s in p["suspects"]], ["Leaked"])
        self.assertGreaterEqual(p["suspects_total"], 3)
        out = self.cli("report", "--process", "burst", "--top", "1",
                       json_=False)
        self.assertIn("; the first 1 (--top 0 shows them all)", out)

    def test_steady_service_has_no_suspect(self):
        [p] = self.cli("report", "--process", "steady")["processes"]
        self.assertEqual(p["suspects"], [])
        out = self.cli("report", "--process", "steady", json_=False)
        self.assertIn("no leak suspect", out)

    def test_text_report(self):
        out = self.cli("report", "--process", "burst", json_=False)
        lines = answer_lines(out)
        # the verdict first: the leak, its list, its rate
        [p] = self.cli("report", "--process", "burst")["processes"]
        held = p["verdict"]["held_by"]
        self.assertTrue(lines[0].startswith(
            "meliae: the leak is Leaked: +18,000 objects ("), lines[0])
        self.assertIn("/h, held by __main__.LEAK (a list of 20,000 entries)",
                      lines[0])
        self.assertIn('leak report: process', lines[1])
        self.assertRegex(lines[2], r"^\d+ leak suspects \(rising trend")
        first = [l for l in lines if re.match(r"^\d+\. ", l)][0]
        self.assertTrue(first.startswith("1. Leaked "), out)
        # the path (common/paths.c), then the chain's objects
        self.assertRegex(out, r"kept alive by: __main__\.LEAK\[\d+\]\n +Leaked@0x")
        self.assertIn("(__dict__ of module __main__)", out)
        self.assertIn("grows with Leaked", out)
        self.assertIn("retained size: ", out)

    def test_daemon_gives_the_same_report(self):
        local = self.cli("report", "--process", "burst")
        r = run_cli(["--socket", self.daemon.sock, "--json", "report",
                     "--process", "burst"])
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertEqual(json.loads(r.stdout), local)

    def test_html_is_self_contained_and_escaped(self):
        path = os.path.join(self.tmp, "self.html")
        out = self.cli("report", "--html", path, json_=False)
        self.assertRegex(out, r"^wrote .*self\.html: \d+ leak suspects in 3 "
                         r"processes\n$")
        with open(path, encoding="utf-8") as f:
            page = f.read()
        self.assertNotIn("<script", page, "no script at all")
        self.assertNotIn("<img", page, "the type name escaped")
        self.assertIn("&lt;img src=x onerror=alert(1)&gt;", page)
        self.assertIn("x&lt;script&gt;alert(2)&lt;/script&gt;&amp;", page)
        # nothing to fetch: no src or link, no URL but the SVG namespace
        self.assertIsNone(re.search(r"<[a-z]+[^>]*\ssrc=|<link|@import|url\(",
                                    page), "a fetch in the page")
        urls = set(re.findall(r"https?://[^\s\"'<>]+", page))
        self.assertLessEqual(urls, {"http://www.w3.org/2000/svg"})

    def test_html_option_belongs_to_report(self):
        r = run_cli(["--store", self.store, "growth", "--html", "x.html"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("--html works with report only", r.stderr)

    # ---- the page as a browser shows it ----

    def chromium(self, path, *args):
        prof = tempfile.mkdtemp(prefix="ml-chromium.", dir=self.tmp)
        # not the sanitizer runtime the ASan build preloads into Python
        env = {k: v for k, v in cli_env().items()
               if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS",
                            "LSAN_OPTIONS", "LD_LIBRARY_PATH")}
        r = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--no-first-run", "--user-data-dir=" + prof,
             "--enable-logging=stderr", "--v=0"] + list(args)
            + ["file://" + path], capture_output=True, text=True,
            timeout=120, stdin=subprocess.DEVNULL, env=env)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        for bad in ("Uncaught", "ERROR:CONSOLE", "Refused to"):
            self.assertNotIn(bad, r.stderr)
        return r

    @needs_chromium
    def test_page_renders_with_one_point_per_snapshot(self):
        path = os.path.join(self.tmp, "burst.html")
        self.cli("report", "--process", "burst", "--html", path, json_=False)
        dom = self.chromium(path, "--dump-dom").stdout
        for name in ("Leaked", "str", "int", "meliae leak report",
                     "__main__"):
            self.assertIn(name, dom)
        # every suspect shows its retained size, computed
        self.assertEqual(
            len(re.findall(r"<dt>retained size</dt><dd>[0-9.]+(?:B|KiB|MiB)<",
                           dom)),
            len(re.findall(r"<article class=\"suspect", dom)))
        svgs = re.findall(r"<svg class=\"chart\"[^>]*>.*?</svg>", dom, re.S)
        self.assertGreaterEqual(len(svgs), 2 * 3)    # size and count each
        # time on the x axis: each point where its snapshot was taken
        [proc] = self.cli("report", "--process", "burst")["processes"]
        t = [p["t"] for p in proc["points"]]
        self.assertEqual(t[0], 0)
        for svg in svgs:
            self.assertEqual(len(re.findall(r"<circle ", svg)), STEPS, svg[:200])
            self.assertIn('data-points="%d"' % STEPS, svg)
            self.assertIn("<polyline", svg)
            cx = [float(x) for x in re.findall(r'<circle [^>]*cx="([0-9.]+)"', svg)]
            for ti, x in zip(t, cx):
                want = cx[0] + (cx[-1] - cx[0]) * ti / t[-1]
                self.assertLess(abs(x - want), 1.0, (t, cx))
            self.assertRegex(svg, r">\+[0-9.]+ (s|min|h|d)<")

    @needs_chromium
    def test_escaped_names_render_as_text(self):
        path = os.path.join(self.tmp, "evil.html")
        self.cli("report", "--process", EVIL_LABEL, "--html", path, json_=False)
        dom = self.chromium(path, "--dump-dom").stdout
        self.assertIn("&lt;img src=x onerror=alert(1)&gt;", dom)
        self.assertNotIn("<img", dom)
        self.assertNotIn("<script", dom)

    @needs_chromium
    def test_screenshot(self):
        path = os.path.join(self.tmp, "shot.html")
        png = os.path.join(self.tmp, "shot.png")
        self.cli("report", "--html", path, json_=False)
        self.chromium(path, "--screenshot=" + png, "--window-size=1100,1600")
        with open(png, "rb") as f:
            head = f.read(8)
        self.assertEqual(head, b"\x89PNG\r\n\x1a\n")
        self.assertGreater(os.path.getsize(png), 20000)


if __name__ == "__main__":
    unittest.main()
