# SPDX-License-Identifier: MIT
"""A real Prometheus (Debian package prometheus) scrapes the daemon's
--metrics-listen endpoint every second while a leaking Python program
streams a snapshot a second (meliae.scanner.stream_to(interval=1)); its
HTTP API must then show the leaking type's bytes rising.  Skipped when
/usr/bin/prometheus (or $PROMETHEUS) is not installed."""

import json
import os
import shutil
import subprocess
import sys
import time
import unittest
import urllib.parse
import urllib.request

from daemon_support import DaemonTestCase, plain_env
from metrics_support import free_port, metrics_port

PROMETHEUS = os.environ.get("PROMETHEUS") or shutil.which("prometheus") \
    or ("/usr/bin/prometheus" if os.path.exists("/usr/bin/prometheus")
        else None)

try:
    from meliae import scanner
    HAVE_STREAM = hasattr(scanner, "stream_to")
except ImportError:
    HAVE_STREAM = False

# Leaks until its stdin closes (at most argv[2] seconds): the test stops
# it once Prometheus has seen enough, however slow the machine (ASan).
LEAKY = r"""
import sys, threading, time
from meliae import scanner

class Leak:
    def __init__(self, i):
        self.i = i

stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()),
                 daemon=True).start()
leaked = []
st = scanner.stream_to(sys.argv[1], interval=1, label="leaky", timeout=30)
end = time.monotonic() + float(sys.argv[2])
i = 0
while time.monotonic() < end and not stop.wait(0.25):
    leaked.extend(Leak(i + k) for k in range(2000))
    i += 2000
st.close()
"""

CONFIG = """\
global:
  scrape_interval: 2s
  scrape_timeout: 2s
  evaluation_interval: 1s
scrape_configs:
  - job_name: meliae
    static_configs:
      - targets: ['127.0.0.1:%d']
"""

SERIES = 'meliae_process_type_bytes{type="Leak",label="leaky"}'


def api(port, path, **params):
    url = "http://127.0.0.1:%d%s?%s" % (port, path,
                                        urllib.parse.urlencode(params))
    with urllib.request.urlopen(url, timeout=5) as r:
        doc = json.load(r)
    if doc.get("status") != "success":
        raise AssertionError("%s: %r" % (url, doc))
    return doc["data"]


@unittest.skipUnless(PROMETHEUS, "prometheus is not installed (Debian: "
                     "apt-get install prometheus)")
@unittest.skipUnless(HAVE_STREAM, "meliae.scanner.stream_to not built")
class TestPrometheus(DaemonTestCase):

    def start_prometheus(self, target_port):
        cfg = os.path.join(self.tmp, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write(CONFIG % target_port)
        port = free_port()
        self.prom_log = os.path.join(self.tmp, "prometheus.log")
        with open(self.prom_log, "wb") as log:
            p = subprocess.Popen(
                [PROMETHEUS, "--config.file=" + cfg,
                 "--storage.tsdb.path=" + os.path.join(self.tmp, "tsdb"),
                 "--web.listen-address=127.0.0.1:%d" % port,
                 "--log.level=warn"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env=plain_env())
        self.addCleanup(self.stop_prometheus, p)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if p.poll() is not None:
                self.fail("prometheus exited %r:\n%s" % (p.returncode,
                                                         self.prom_output()))
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/-/ready"
                                            % port, timeout=1) as r:
                    if r.status == 200:
                        return port
            except OSError:
                pass
            time.sleep(0.1)
        self.fail("prometheus not ready:\n" + self.prom_output())

    def stop_prometheus(self, p):
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def prom_output(self):
        with open(self.prom_log, errors="replace") as f:
            return f.read()[-5000:]

    def test_prometheus_sees_the_leak_rise(self):
        d = self.daemon(args=["--metrics-listen", "127.0.0.1:0"])
        mport = metrics_port(d)
        pport = self.start_prometheus(mport)
        t0 = time.time()
        app = subprocess.Popen([sys.executable, "-c", LEAKY, d.sock, "150"],
                               stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE,
                               env=dict(os.environ))
        self.addCleanup(lambda: app.poll() is None and app.kill())

        values, deadline = [], time.monotonic() + 150
        while time.monotonic() < deadline:
            data = api(pport, "/api/v1/query_range", query=SERIES,
                       start="%.3f" % (t0 - 1), end="%.3f" % time.time(),
                       step="1")
            if data["result"]:
                values = [float(v) for _, v in data["result"][0]["values"]]
                if len(set(values)) >= 4:
                    break
            time.sleep(0.5)
        out, err = app.communicate(timeout=60)     # closes its stdin
        self.assertEqual(app.returncode, 0, err)
        self.assertGreaterEqual(len(set(values)), 4,
                                "too few distinct samples of %s: %r\n%s\n%s"
                                % (SERIES, values, d.log()[-3000:],
                                   self.prom_output()))
        # Rising: every change is upwards, and it ends well above its start.
        self.assertEqual(values, sorted(values))
        self.assertGreater(values[-1], values[0] * 1.5)

        # The series carries the process's labels; the scrapes were clean.
        res = api(pport, "/api/v1/query", query=SERIES)["result"]
        self.assertEqual(len(res), 1)
        labels = res[0]["metric"]
        self.assertEqual(labels["pid"], str(app.pid))
        self.assertEqual(labels["job"], "meliae")
        up = api(pport, "/api/v1/query", query='up{job="meliae"}')["result"]
        self.assertEqual(up[0]["value"][1], "1")
        targets = api(pport, "/api/v1/targets")["activeTargets"]
        self.assertEqual([t["health"] for t in targets], ["up"])
        self.assertEqual(targets[0]["lastError"], "")
        snaps = api(pport, "/api/v1/query",
                    query="meliae_ingest_snapshots_total")["result"]
        self.assertGreaterEqual(float(snaps[0]["value"][1]), 4)
        self.stop_clean(d)


if __name__ == "__main__":
    unittest.main()
