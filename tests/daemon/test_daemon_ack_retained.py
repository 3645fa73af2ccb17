# SPDX-License-Identifier: MIT
"""The ack before the retained answers (store.h, st_commit2;
docs/protocol.md, "Ack"): the daemon acks a snapshot once it is stored
and visible, then its writer computes and stores the snapshot's
retained sizes as a second step.  A query that needs them meanwhile
waits for the step and reads them (no tree of its own in the daemon); a
SIGTERM during the step lets it finish; a crash during it leaves the
snapshot without stored answers, which the on-demand path then fills.

MELIAE_TEST_RETAINED_HOLD_MS holds the second step (store/commit.c) so
that the tests land in it."""

import os
import time
import unittest

from daemon_support import (Client, DaemonTestCase, retained_stored,
                            snapshot, store_list)
from test_daemon_query import BASE, CLI, OK, cli, heap

HOLD_MS = 4000
TOP = ["top", "--retained", "latest", "--top", "7"]


@unittest.skipUnless(CLI, "MELIAE_CLI not set (run through meson test)")
class TestAckBeforeRetained(DaemonTestCase):

    def held(self, hold_ms=HOLD_MS, **kw):
        return self.daemon(env={"MELIAE_TEST_RETAINED_HOLD_MS": str(hold_ms)},
                           **kw)

    def send(self, d, n=20000):
        """Streams one snapshot; returns the seconds to its ack."""
        c = Client(d.sock, timeout=300)
        t0 = time.monotonic()
        c.send(snapshot(objs=heap(n)))
        reply = c.reply()
        took = time.monotonic() - t0
        c.close()
        self.assertIn("ack", reply)
        return took

    def test_the_ack_comes_before_the_answers_and_a_query_waits_for_them(self):
        d = self.held()
        took = self.send(d)
        # acked while the step is held: the answers are not written yet
        self.assertLess(took, HOLD_MS / 1000.0, d.log())
        self.assertNotIn("retained_stored_at_commit", d.log())
        t0 = time.monotonic()
        got = cli("--socket", d.sock, "--json", *TOP)
        waited = time.monotonic() - t0
        self.assertEqual(got[0], OK, got[2])
        d.wait_log("retained_stored_at_commit", timeout=60)
        log = d.log()
        # it waited for the step and read what it stored: no tree of its
        # own (that one would be marked computed and kept by a fill job)
        self.assertIn("query_waited_retained", log)
        self.assertIn("computed=0", log.split("query_waited_retained")[1]
                      .splitlines()[0])
        self.assertNotIn(" retained_stored ", log)
        self.assertGreater(waited, 0.5)
        # the same answer as read from the store, whose records it read
        self.assertTrue(retained_stored(d.store, 1))
        dom = cli("--socket", d.sock, "--json", "dominators", "latest",
                  str(BASE + 7))
        self.assertEqual(dom[0], OK, dom[2])
        self.stop_clean(d)
        self.assertEqual(cli("--store", d.store, "--json", *TOP)[1], got[1])
        self.assertEqual(cli("--store", d.store, "--json", "dominators",
                             "latest", str(BASE + 7))[1], dom[1])

    def test_sigterm_during_the_step_lets_it_finish(self):
        d = self.held()
        self.send(d)
        self.assertNotIn("retained_stored_at_commit", d.log())
        self.stop_clean(d)
        self.assertIn("retained_stored_at_commit", d.log())
        self.assertTrue(retained_stored(d.store, 1))

    def test_a_crash_between_the_steps_leaves_no_answer_then_they_are_filled(self):
        d = self.held(hold_ms=60000)
        self.send(d)
        d.kill9()
        # the snapshot is there, whole, without stored answers
        self.assertFalse(retained_stored(d.store, 1))
        self.assertEqual(len(store_list(d.store)), 1)
        want = cli("--store", d.store, "--json", *TOP)      # computed
        self.assertEqual(want[0], OK, want[2])
        d = self.daemon(store=d.store)
        got = cli("--socket", d.sock, "--json", *TOP)
        self.assertEqual(got[0], OK, got[2])
        self.assertEqual(got[1], want[1])
        d.wait_log(" retained_stored ", timeout=60)         # the fill job
        self.stop_clean(d)
        self.assertTrue(retained_stored(d.store, 1))
        self.assertEqual(cli("--store", d.store, "--json", *TOP)[1], want[1])

    def test_the_next_snapshot_is_committed_after_the_step(self):
        d = self.held(hold_ms=1500)
        self.send(d)
        self.send(d, n=30000)
        d.wait_log("retained_stored_at_commit id=2", timeout=60)
        self.stop_clean(d)
        self.assertTrue(retained_stored(d.store, 1))
        self.assertTrue(retained_stored(d.store, 2))


if __name__ == "__main__":
    unittest.main()
