"""What stream_to(traces=N) sends (docs/protocol.md, "traces"; docs/
dump-format.md, "Birth sites"), and that without it nothing of them is
sent, against the fake daemon (fakedaemon.py).

tracemalloc is started and stopped by each test (stop() drops every trace,
so the other tests of this process run untraced as before).
"""

import tracemalloc
import unittest

from fakedaemon import StreamTestCase


class StreamBirthsTest(StreamTestCase, unittest.TestCase):

    def setUp(self):
        super().setUp()
        self.addCleanup(tracemalloc.stop)

    def test_without_traces_nothing_of_them_is_sent(self):
        tracemalloc.start(2)
        s = self.stream()
        s.snapshot()
        (snap,) = self.daemon.snapshots
        self.assertNotIn("traces", snap.header)
        self.assertEqual(snap.tracebacks, [])
        self.assertFalse(b', "trace": ' in snap.data, "a trace was sent")
        self.assertNoProblems()

    def test_traces_sends_the_table_first_and_an_id_per_traced_object(self):
        tracemalloc.start(3)
        keep = [bytearray(100) for _ in range(50)]      # HERE
        s = self.stream(traces=3)
        s.snapshot()
        (snap,) = self.daemon.snapshots
        self.assertEqual(snap.header["traces"], 3)
        ids = [t["traceback"] for t in snap.tracebacks]
        self.assertEqual(ids, list(range(len(ids))))
        byaddr = {o["address"]: o for o in snap.lines}
        frames = snap.tracebacks[byaddr[id(keep[7])]["trace"]]["frames"]
        self.assertEqual(frames[0][0], __file__)
        # a list comprehension is a function of its own before 3.12
        self.assertTrue(frames[0][2].startswith(
            "StreamBirthsTest.test_traces_sends_the_table_first"
            "_and_an_id_per_traced_object"), frames[0][2])
        with open(__file__) as f:
            here = next(i for i, t in enumerate(f, 1) if "# HERE" in t)
        self.assertEqual(frames[0][1], here)
        self.assertTrue(all(o["trace"] < len(ids) for o in snap.lines
                            if "trace" in o))
        self.assertNoProblems()

    def test_traces_starts_tracemalloc_when_it_is_off(self):
        s = self.stream(traces=4)
        s.snapshot()
        self.assertTrue(tracemalloc.is_tracing())
        self.assertEqual(tracemalloc.get_traceback_limit(), 4)
        (snap,) = self.daemon.snapshots
        self.assertEqual(snap.tracebacks, [])   # nothing traced yet
        s.snapshot()
        self.assertNotEqual(self.daemon.snapshots[1].tracebacks, [])


if __name__ == "__main__":
    unittest.main()
