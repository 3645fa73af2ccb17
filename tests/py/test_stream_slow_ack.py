"""A daemon that commits a big snapshot acks it minutes after its trailer:
at 80M objects, 2.2-2.4 min on a loaded two-core machine
(bench/bench_beast.py).  A streamer with the default timeout must wait for
that ack, not fail the snapshot at a minute."""

import time
import unittest

from fakedaemon import UNDER_ASAN, StreamTestCase
from support import scanner


class SlowAckTest(StreamTestCase, unittest.TestCase):

    def test_default_deadline_waits_for_an_ack_past_a_minute(self):
        self.daemon.delay_ack(62)
        # ASan: no fork while the fake daemon's threads run (fakedaemon.py)
        kw = {"fork": False} if UNDER_ASAN else {}
        s = scanner.stream_to(self.daemon.path, **kw)
        self.addCleanup(s.close)
        t0 = time.monotonic()
        self.assertEqual(s.snapshot(), 1)
        self.assertGreaterEqual(time.monotonic() - t0, 62.0)
        self.assertIsNone(s.last_error)
        self.assertEqual(s.last_snapshot_id, 1)


if __name__ == "__main__":
    unittest.main()
