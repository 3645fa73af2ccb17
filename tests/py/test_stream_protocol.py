"""What stream_to sends: docs/protocol.md against a fake daemon.

The fake daemon (fakedaemon.py) checks each snapshot the way the real one
does (header fields and types, trailer counts against the lines received,
no values when the header says "none"); these tests check the same things
again from the outside, plus what the daemon cannot know (the pid is ours,
every object of gc.get_objects() is there, values are cut or not).
"""

import gc
import os
import platform
import socket
import sys
import time
import unittest

import fakedaemon
from fakedaemon import StreamTestCase, is_code_name, wait_until
from support import scanner


class HeaderAndCountsTest(StreamTestCase, unittest.TestCase):

    def test_snapshot_returns_the_daemons_ack_id(self):
        s = self.stream()
        self.assertEqual(s.snapshot(), 1)
        self.assertEqual(s.snapshot(), 2)
        self.assertEqual(s.last_snapshot_id, 2)
        self.assertIsNone(s.last_error)
        self.assertTrue(s.connected)
        self.assertEqual(self.daemon.nconnections, 1)
        self.assertNoProblems()

    def test_header_carries_the_documented_fields(self):
        s = self.stream(label="web-1", values="truncated")
        before = time.time()
        s.snapshot()
        after = time.time()
        (snap,) = self.daemon.snapshots
        h = snap.header
        self.assertEqual(fakedaemon.check_header(h), [])
        self.assertEqual(h["meliae_stream"], 1)
        self.assertEqual(h["pid"], os.getpid())
        self.assertEqual(h["label"], "web-1")
        self.assertEqual(h["values"], "truncated")
        self.assertEqual(h["mode"], "all")
        self.assertEqual(h["request"], 0)
        self.assertEqual(h["hostname"], socket.gethostname())
        self.assertEqual(h["python"], platform.python_version())
        self.assertEqual(h["program"], sys.argv[0] or sys.executable)
        self.assertTrue(before <= h["time"] <= after, (before, h, after))
        self.assertLess(h["start_time"], before)
        self.assertEqual(s.pid, os.getpid())

    def test_each_connection_starts_with_a_hello_naming_the_process(self):
        s = self.stream(label="web-2")
        fakedaemon.wait_until(lambda: self.daemon.hellos, what="a hello")
        self.assertEqual(self.daemon.started, [])   # no snapshot was asked
        (conn, h), = self.daemon.hellos
        self.assertIs(h["hello"], True)
        self.assertEqual((h["pid"], h["label"], h["request"]),
                         (os.getpid(), "web-2", 0))
        self.assertEqual(h["program"], sys.argv[0] or sys.executable)
        self.assertEqual(s.snapshot(), 1)
        (snap,) = self.daemon.snapshots
        self.assertEqual(snap.conn, conn)
        self.assertNotIn("hello", snap.header)
        self.assertEqual(len(self.daemon.hellos), 1)
        self.assertNoProblems()

    def test_header_label_defaults_to_null_and_mode_is_all(self):
        s = self.stream()
        s.snapshot()
        (snap,) = self.daemon.snapshots
        self.assertIsNone(snap.header["label"])
        self.assertEqual(snap.header["mode"], "all")
        self.assertEqual(snap.header["values"], "none")
        self.assertNoProblems()

    def test_trailer_counts_the_lines_and_the_sum_of_their_sizes(self):
        s = self.stream()
        s.snapshot()
        (snap,) = self.daemon.snapshots
        lines = snap.lines
        self.assertGreater(len(lines), 1000)
        self.assertEqual(snap.trailer["end"], "complete")
        self.assertEqual(snap.trailer["objects"], len(lines))
        self.assertEqual(snap.trailer["objects"], snap.nlines)
        self.assertEqual(snap.trailer["bytes"],
                         sum(d["size"] for d in lines))
        self.assertNoProblems()

    def test_stream_covers_every_object_of_gc_get_objects(self):
        s = self.stream()
        gc.collect()
        objects = gc.get_objects()
        s.snapshot()
        (snap,) = self.daemon.snapshots
        addresses = {d["address"] for d in snap.lines}
        missing = [o for o in objects if id(o) not in addresses]
        self.assertEqual(len(missing), 0, sorted(
            {type(o).__name__ for o in missing})[:20])
        self.assertEqual(len(addresses), len(snap.lines))   # no duplicates


class ValuesTest(StreamTestCase, unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        token = os.urandom(6).hex()
        cls.text = ("v-%s-" % token) * 80          # > 1000 characters
        cls.blob = b"\xff" + os.urandom(4).hex().encode() * 300
        cls.number = 7 ** 20 + 1

    def snapshot_lines(self, values):
        s = self.stream(values=values)
        s.snapshot()
        (snap,) = self.daemon.snapshots
        self.assertNoProblems()
        return snap.lines, {d["address"]: d for d in snap.lines}

    def test_values_none_sends_only_names_of_code(self):
        lines, by_addr = self.snapshot_lines("none")
        # the only values: interned identifiers (names of code)
        self.assertEqual([d for d in lines if "value" in d
                          and not is_code_name(d)][:5], [])
        self.assertNotIn("value", by_addr[id(self.text)])
        self.assertIn(id(self.text), by_addr)
        self.assertEqual(by_addr[id(self.text)]["len"], len(self.text))
        # Names of modules, types and functions stay.
        self.assertEqual(by_addr[id(sys)]["name"], "sys")
        self.assertEqual(by_addr[id(ValuesTest)]["name"], "ValuesTest")

    def test_values_none_sends_interned_identifiers_and_small_ints(self):
        # made at run time: not interned, so data whatever its shape
        made = "".join(["session", "_token_a1b2"])
        interned = sys.intern("".join(["interned_", "name_x"]))
        dashed = sys.intern("".join(["not-an-", "identifier"]))
        spaced = sys.intern("".join(["two ", "words"]))
        big, small, negative = 2 ** 40 + 7, 123457, -98765
        lines, by_addr = self.snapshot_lines("none")
        self.assertNotIn("value", by_addr[id(made)])
        self.assertEqual(by_addr[id(interned)]["value"], interned)
        self.assertNotIn("value", by_addr[id(dashed)])
        self.assertNotIn("value", by_addr[id(spaced)])
        self.assertNotIn("value", by_addr[id(big)])
        self.assertEqual(by_addr[id(small)]["value"], small)
        self.assertEqual(by_addr[id(negative)]["value"], negative)
        self.assertNotIn("value", by_addr[id(self.blob)])
        # the names of this very code: attribute and local names
        names = {d["value"] for d in lines if d["type"] == "str"
                 and "value" in d}
        self.assertIn("snapshot_lines", names)
        self.assertIn("interned", names)

    def test_values_truncated_cuts_str_and_bytes_to_100(self):
        lines, by_addr = self.snapshot_lines("truncated")
        self.assertEqual(by_addr[id(self.text)]["value"], self.text[:100])
        self.assertEqual(by_addr[id(self.blob)]["value"],
                         self.blob[:100].decode("latin-1"))
        self.assertEqual(by_addr[id(self.number)]["value"], self.number)
        self.assertTrue(all(len(d["value"]) <= 100 for d in lines
                            if isinstance(d.get("value"), str)))

    def test_values_full_sends_str_and_bytes_uncut(self):
        lines, by_addr = self.snapshot_lines("full")
        self.assertGreater(len(self.text), 1000)
        self.assertEqual(by_addr[id(self.text)]["value"], self.text)
        self.assertEqual(by_addr[id(self.blob)]["value"],
                         self.blob.decode("latin-1"))
        self.assertEqual(by_addr[id(self.number)]["value"], self.number)

    def test_file_dumps_keep_values_cut_to_100(self):
        lines = __import__("support").dump_to_list(scanner.dump_all_objects)
        by_addr = {d["address"]: d for d in lines}
        self.assertEqual(by_addr[id(self.text)]["value"], self.text[:100])


class DaemonLinesTest(StreamTestCase, unittest.TestCase):

    def test_daemon_request_gets_a_snapshot_with_its_id(self):
        self.stream()
        self.daemon.wait_connections(1)
        self.assertEqual(self.daemon.send_request(42), 1)
        (snap,) = self.daemon.wait_snapshots(
            1, pred=lambda s: s.header["request"] == 42)
        self.assertIsNotNone(snap.ack)
        self.assertNoProblems()

    def test_keepalives_and_unknown_lines_are_ignored(self):
        s = self.stream()
        self.daemon.wait_connections(1)
        self.daemon.send_line({"keepalive": int(time.time())})
        self.daemon.send_line({"hello": "a line of a later version"})
        self.daemon.send_line(["not", "an", "object"])
        self.assertEqual(s.snapshot(), 1)
        self.daemon.send_line({"keepalive": int(time.time())})
        self.assertEqual(s.snapshot(), 2)
        self.assertEqual(self.daemon.nconnections, 1)
        self.assertNoProblems()

    def refused_then_acked(self, code, message):
        """A snapshot refused with code, then one that goes through."""
        s = self.stream()
        self.daemon.error_next(code, message)
        with self.assertLogs("meliae", "WARNING"):
            with self.assertRaises(scanner.StreamError) as cm:
                s.snapshot()
        self.assertEqual(cm.exception.code, code)
        self.assertIn(message, str(cm.exception))
        self.assertIs(s.last_error, cm.exception)
        self.assertEqual(s.snapshot(), 1)
        self.assertIsNone(s.last_error)

    def test_store_error_raises_and_keeps_the_connection(self):
        self.refused_then_acked("store", "disk full")
        self.assertEqual(self.daemon.nconnections, 1)

    def test_proto_error_raises_and_the_next_snapshot_reconnects(self):
        self.refused_then_acked("proto", "counts do not match")
        self.assertEqual(self.daemon.nconnections, 2)

    def test_wait_false_queues_and_returns_none(self):
        s = self.stream()
        self.assertIsNone(s.snapshot(wait=False))
        self.assertIsNone(s.snapshot(wait=False))
        self.daemon.wait_snapshots(2)
        wait_until(lambda: s.last_snapshot_id == 2)
        self.assertNoProblems()

    def test_interval_takes_snapshots_periodically(self):
        s = self.stream(interval=0.2)
        snaps = self.daemon.wait_snapshots(3, timeout=30)
        self.assertTrue(all(x.ack is not None for x in snaps))
        self.assertTrue(all(x.header["request"] == 0 for x in snaps))
        self.assertEqual(self.daemon.nconnections, 1)
        self.assertNoProblems()
        s.close()


if __name__ == "__main__":
    unittest.main()
