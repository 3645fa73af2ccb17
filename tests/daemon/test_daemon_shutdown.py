# SPDX-License-Identifier: MIT
"""SIGTERM and SIGINT: exit 0, socket file removed, snapshots in flight
answered with code "shutdown", commits already queued finished and acked."""

import os
import signal
import socket
import time
import unittest

from daemon_support import (Client, DaemonTestCase, header, honest_ack,
                            line, objects, snapshot, store_list)


class TestShutdown(DaemonTestCase):

    def test_sigterm_exits_0_and_removes_the_socket(self):
        d = self.daemon()
        honest_ack(d.sock, 5)
        idle = Client(d.sock)
        self.assertEqual(d.stop(signal.SIGTERM), 0)
        self.assertFalse(os.path.exists(d.sock))
        self.assertTrue(idle.closed_by_peer())
        idle.close()
        self.assertIn("info stopped exit_status=0", d.log())

    def test_sigint_too(self):
        d = self.daemon()
        self.assertEqual(d.stop(signal.SIGINT), 0)
        self.assertFalse(os.path.exists(d.sock))

    def test_snapshot_in_flight_gets_shutdown(self):
        d = self.daemon()
        c = Client(d.sock)
        c.send(line(header()) + b"".join(line(o) for o in objects(100)))
        d.wait_log("snapshot_begin")
        time.sleep(0.2)                 # the object lines are read too
        self.assertEqual(d.stop(signal.SIGTERM), 0)
        r = c.reply()
        self.assertEqual(r["code"], "shutdown")
        self.assertTrue(c.closed_by_peer())
        c.close()
        self.assertEqual(store_list(d.store), [])
        self.assertFalse(os.path.exists(d.sock))

    def test_queued_commits_finish_and_are_acked(self):
        d = self.daemon()
        c = Client(d.sock, timeout=120)
        n = 200000
        c.send(snapshot(objs=objects(n)) + snapshot(5, base=1 << 41))
        d.wait_log("snapshot_received", timeout=60)
        d.proc.send_signal(signal.SIGTERM)
        replies = [c.reply(), c.reply()]
        self.assertEqual(d.proc.wait(60), 0)
        # The first was received before the signal: stored and acked.
        self.assertEqual(replies[0]["objects"], n)
        # The second was acked too, or (if the signal came first) refused
        # with "shutdown"; never lost silently.
        self.assertTrue(replies[1] is None or "ack" in replies[1]
                        or replies[1]["code"] == "shutdown", replies)
        ids = [s["id"] for s in store_list(d.store)]
        self.assertIn(replies[0]["ack"], ids)
        self.assertFalse(os.path.exists(d.sock))

    def test_a_replaced_socket_file_is_left_alone(self):
        d = self.daemon()
        os.unlink(d.sock)
        other = socket.socket(socket.AF_UNIX)
        other.bind(d.sock)              # someone else's now
        self.assertEqual(d.stop(signal.SIGTERM), 0)
        self.assertTrue(os.path.exists(d.sock))
        other.close()

    def test_restart_after_clean_stop(self):
        d = self.daemon()
        a1 = honest_ack(d.sock, 5)
        self.assertEqual(d.stop(), 0)
        d.start()
        self.assertGreater(honest_ack(d.sock, 5), a1)
        self.stop_clean(d)


if __name__ == "__main__":
    unittest.main()
