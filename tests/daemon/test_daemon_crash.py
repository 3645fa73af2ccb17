# SPDX-License-Identifier: MIT
"""kill -9 at random points of an ingest, over and over: the daemon always
restarts (stale socket and all), every acked snapshot is in the store
whole, and no incomplete snapshot is ever visible."""

import random
import threading
import time
import unittest

from daemon_support import (Client, DaemonTestCase, honest_ack, objects,
                            snapshot, store_list, store_pending)

KILLS = 32
BIG = 300000            # objects: ~30 MiB streamed, ~0.1 s to commit


class TestCrash(DaemonTestCase):

    def test_kill9_during_ingest_then_restart(self):
        rng = random.Random(20251127)
        big = snapshot(objs=objects(BIG, base=1 << 45))
        d = self.daemon(log_level="info")
        acked = {}
        outcomes = {"ack": 0, "cut": 0}
        swept = 0
        for i in range(KILLS):
            result = {}

            def stream():
                try:
                    c = Client(d.sock, timeout=60)
                    c.send(big)
                    result["reply"] = c.reply()
                    c.close()
                except OSError as e:
                    result["error"] = e

            t = threading.Thread(target=stream)
            t.start()
            # Anywhere from mid-stream through the commit to after the ack.
            time.sleep(rng.uniform(0.0, 0.4))
            d.kill9()
            t.join(60)
            self.assertFalse(t.is_alive())
            r = result.get("reply")
            if r is not None and "ack" in r:
                self.assertEqual(r["objects"], BIG)
                acked[r["ack"]] = BIG
                outcomes["ack"] += 1
            else:
                outcomes["cut"] += 1

            d.start()                           # stale socket, sweep
            for ln in d.log().splitlines():
                if " sweep " in ln:
                    n = int(ln.split("incomplete_removed=")[1].split()[0])
                    swept += n
            a = honest_ack(d.sock, 10 + i, timeout=60)
            acked[a] = 10 + i
            self.assertEqual(store_pending(d.store), 0)
        self.stop_clean(d)

        snaps = {s["id"]: s for s in store_list(d.store)}
        # Acked means committed: every ack survived the kills that came
        # after it, whole.
        for sid, n in acked.items():
            self.assertIn(sid, snaps)
            self.assertEqual(snaps[sid]["objects"], n)
        # Nothing else is visible but whole snapshots.
        for s in snaps.values():
            self.assertIn(s["objects"], [BIG] + list(range(10, 10 + KILLS)))
        self.assertEqual(store_pending(d.store), 0)
        # The kills landed at different points (the seed is fixed).
        self.assertGreater(outcomes["cut"], 0, outcomes)
        sys_note = "kills=%d acked_before_kill=%d cut=%d swept=%d" % (
            KILLS, outcomes["ack"], outcomes["cut"], swept)
        print("\n" + sys_note)


if __name__ == "__main__":
    unittest.main()
