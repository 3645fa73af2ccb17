# SPDX-License-Identifier: MIT
"""Snapshots end to end: valid ones are acked with increasing ids and
stored as sent; each refusal of docs/protocol.md's table gets its code and
closes (or keeps) the connection as the table says."""

import json
import os
import subprocess
import time
import unittest

from daemon_support import (DROP, Client, DaemonTestCase, header, honest_ack,
                            line, objects, plain_env, send_snapshot,
                            snapshot, store_list, store_pending)

CLI = os.environ.get("MELIAE_CLI", "")


class TestValid(DaemonTestCase):

    def test_acks_have_increasing_ids_and_snapshots_are_stored(self):
        d = self.daemon()
        ids = []
        for i in range(3):                      # one connection each
            r = send_snapshot(d.sock, 20 + i, base=(1 << 40) + i * 1000)
            self.assertEqual(r, {"ack": r["ack"], "objects": 20 + i})
            ids.append(r["ack"])
        c = Client(d.sock)                      # several on one connection
        for i in range(3):
            c.send(snapshot(5, hdr=header(label="one-conn-%d" % i)))
            r = c.reply()
            self.assertEqual(r["objects"], 5)
            ids.append(r["ack"])
        c.close()
        self.assertEqual(ids, sorted(ids))
        self.assertEqual(len(set(ids)), len(ids))
        self.stop_clean(d)

        snaps = {s["id"]: s for s in store_list(d.store)}
        self.assertEqual(sorted(snaps), ids)
        self.assertEqual([snaps[i]["objects"] for i in ids],
                         [20, 21, 22, 5, 5, 5])
        for s in snaps.values():
            self.assertTrue(s["trusted"])
            self.assertEqual(s["uid"], os.geteuid())
            self.assertEqual(s["pid"], os.getpid())   # kernel-verified
        self.assertEqual(snaps[ids[4]]["label"], "one-conn-1")
        self.assertEqual(store_pending(d.store), 0)

    def test_next_snapshot_may_start_before_the_ack(self):
        d = self.daemon()
        c = Client(d.sock)
        c.send(b"".join(snapshot(50 + i, base=(1 << 41) + i * 1000)
                        for i in range(8)))
        replies = [c.reply() for _ in range(8)]
        self.assertEqual([r["objects"] for r in replies],
                         [50 + i for i in range(8)])
        acks = [r["ack"] for r in replies]
        self.assertEqual(acks, sorted(acks))
        c.close()
        self.stop_clean(d)

    def test_ack_reaches_a_client_that_half_closed(self):
        d = self.daemon()
        c = Client(d.sock)
        c.send(snapshot(30))
        c.s.shutdown(1)                      # SHUT_WR: no more data
        r = c.reply()
        self.assertEqual(r["objects"], 30)
        self.assertTrue(c.closed_by_peer())
        c.close()
        self.stop_clean(d)

    def test_values_are_kept_when_the_header_says_so(self):
        d = self.daemon()
        objs = objects(3)
        objs[0]["value"] = "hello"
        r = send_snapshot(d.sock, objs=objs, hdr=header(values="truncated"))
        self.assertIn("ack", r)
        self.stop_clean(d)

    def test_long_lines_are_streamed_whole(self):
        d = self.daemon()
        objs = objects(20)
        # 1.5 MiB and 9 MiB lines: their refs stream through the buffer.
        objs[3]["refs"] = list(range(1 << 40, (1 << 40) + 100000))
        objs[7]["refs"] = list(range(1 << 40, (1 << 40) + 600000))
        # Long heads (values "full"): 300 KB and 2 MB values grow the
        # buffer, and the refs after them (70,000, more than a line parsed
        # whole may have) may arrive with the head in it, or after it.
        for k, vlen in ((11, 300000), (15, 2000000)):
            refs = list(range(1, 70001))
            del objs[k]["refs"]
            objs[k]["type"] = "str"
            objs[k]["value"] = "v" * vlen
            objs[k]["refs"] = refs
        r = send_snapshot(d.sock, objs=objs, hdr=header(values="full"))
        self.assertEqual(r, {"ack": r["ack"], "objects": 20})
        # Every ref of the long lines arrived.
        for k, n in ((3, 100000), (7, 600000), (11, 70000), (15, 70000)):
            out = subprocess.run(
                [CLI, "--store", d.store, "--json", "show", str(r["ack"]),
                 hex(objs[k]["address"]), "--limit", "1"],
                capture_output=True, text=True, env=plain_env(), timeout=60)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertEqual(json.loads(out.stdout)["object"]["nrefs"], n)
        # Buffers went back: a later small snapshot works as before.
        self.assertGreater(honest_ack(d.sock, 5), r["ack"])
        self.stop_clean(d)

    def test_a_long_line_all_in_the_buffer_is_streamed_too(self):
        # A 300 KB head grows the buffer to 512 KiB; the refs then arrive
        # with the line's end, all in it: parsed whole, the line has more
        # refs than a whole parse takes, and they are streamed from there.
        d = self.daemon()
        objs = objects(3)
        head = (b'{"address": 7, "type": "str", "size": 8, "value": "'
                + b"v" * 300000)
        rest = b'", "refs": [' + b", ".join([b"1"] * 70000) + b"]}\n"
        self.assertLess(len(head) + len(rest), 512 << 10)
        c = Client(d.sock)
        c.send(line(header(values="full")) + b"".join(line(o) for o in objs)
               + head)
        time.sleep(1)
        c.send(rest + line({"end": "complete", "objects": 4,
                            "bytes": 8 + 3 * 56}))
        r = c.reply()
        c.close()
        self.assertEqual(r.get("objects"), 4, r)
        self.assertIn("in_buffer=1", d.log())
        out = subprocess.run(
            [CLI, "--store", d.store, "--json", "show", str(r["ack"]), "0x7",
             "--limit", "1"], capture_output=True, text=True,
            env=plain_env(), timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout)["object"]["nrefs"], 70000)
        self.stop_clean(d)

    def test_unknown_header_keys_are_ignored(self):
        d = self.daemon()
        r = send_snapshot(d.sock, hdr=header(future_key={"a": [1, 2]},
                                             label="x" * 256))
        self.assertIn("ack", r)
        self.stop_clean(d)


class TestRefused(DaemonTestCase):

    def expect(self, d, data, code, closes=True, msg_has=None):
        c = Client(d.sock)
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass                # closed before we were done: fine
        r = c.reply()
        self.assertIsNotNone(r, "no reply for code %s" % code)
        self.assertEqual(r.get("code"), code, r)
        self.assertIsInstance(r.get("error"), str)
        if msg_has:
            for m in msg_has:
                self.assertIn(m, r["error"])
        if closes:
            self.assertTrue(c.closed_by_peer(), "connection left open")
            c.close()
            return None
        return c

    def test_version_mismatch_names_both_versions(self):
        d = self.daemon()
        self.expect(d, snapshot(hdr=header(meliae_stream=2)), "version",
                    msg_has=["version 2", "version 1"])
        self.assertEqual(store_list(d.store), [])
        self.stop_clean(d)

    def test_malformed_headers_are_proto_errors(self):
        d = self.daemon()
        bad = [
            b"not json\n",
            b"[1, 2]\n",
            b"{\"meliae_stream\": 1, \"pid\": 1, \"values\": \"none\"} x\n",
            line(header(meliae_stream=DROP)),
            line(header(meliae_stream="1")),
            line(header(pid=DROP)),
            line(header(pid=1.5)),
            line(header(values=DROP)),
            line(header(values="some")),
            line(header(mode="weird")),
            line(header(hostname=7)),
            line(header(label=["x"])),
            line(header(request=-1)),
            line(header(time="now")),
            b'{"meliae_stream": 1, "pid": 1, "values": "none", '
            b'"label": "\xff\xfe"}\n',
            b"\n",
            line({"address": 1, "type": "int", "size": 28, "refs": []}),
        ]
        for data in bad:
            with self.subTest(data=data[:60]):
                self.expect(d, data, "proto")
        self.assertGreater(honest_ack(d.sock, 3), 0)
        self.stop_clean(d)

    def test_overlong_header_strings_are_limit_errors(self):
        d = self.daemon()
        self.expect(d, line(header(label="x" * 257)), "limit")
        self.expect(d, line(header(program="p" * 1000)), "limit")
        self.expect(d, line(header(junk="j" * 70000)), "limit")
        self.stop_clean(d)

    def test_bad_object_lines_are_proto_errors(self):
        d = self.daemon()
        hdr = line(header())
        bad = [
            b"{\"address\": 1, \"type\": \"int\"}\n",               # no size
            b"{\"address\": -1, \"type\": \"int\", \"size\": 1}\n",
            b"{\"address\": 1, \"type\": \"int\", \"size\": 1, \"refs\": [x]}\n",
            b"garbage\n",
            b"{\"something\": 1}\n",                # not a trailer
            line({"end": "maybe", "objects": 0, "bytes": 0}),
            line({"end": "complete"}),
            line({"end": "complete", "objects": -1, "bytes": 0}),
        ]
        for data in bad:
            with self.subTest(data=data[:60]):
                self.expect(d, hdr + data, "proto")
        self.stop_clean(d)

    def test_value_when_header_said_none_is_proto(self):
        d = self.daemon()
        objs = objects(3)
        objs[1]["value"] = "secret"
        self.expect(d, snapshot(objs=objs), "proto")
        self.stop_clean(d)

    def test_duplicate_address_is_proto(self):
        d = self.daemon()
        objs = objects(5)
        objs[4]["address"] = objs[1]["address"]
        self.expect(d, snapshot(objs=objs), "proto")
        self.assertEqual(store_list(d.store), [])
        self.assertEqual(store_pending(d.store), 0)
        self.stop_clean(d)

    def test_trailer_counts_must_match(self):
        d = self.daemon()
        self.expect(d, snapshot(10, trailer={"objects": 11}), "proto")
        self.expect(d, snapshot(10, trailer={"bytes": 1}), "proto")
        self.expect(d, snapshot(10, trailer={"objects": 10 ** 12}), "proto")
        self.assertEqual(store_list(d.store), [])
        self.stop_clean(d)

    def test_aborted_snapshot_keeps_the_connection(self):
        d = self.daemon()
        data = snapshot(10, trailer={"end": "aborted",
                                     "reason": "out of memory"})
        c = self.expect(d, data, "aborted", closes=False,
                        msg_has=["out of memory"])
        c.send(snapshot(7))
        r = c.reply()
        self.assertEqual(r["objects"], 7)
        c.close()
        d.wait_log("snapshot_aborted")
        self.assertEqual(len(store_list(d.store)), 1)
        self.stop_clean(d)

    def test_more_refs_than_max_refs_is_a_limit_error(self):
        d = self.daemon(args=["--max-refs", "1000000"])
        n = 1000000

        def big(k):
            return (b'{"address": 1, "type": "list", "size": 8, "refs": ['
                    + b"1," * (k - 1) + b"1]}\n")

        # At the limit: stored (one object line, 2 MB, streamed).
        c = Client(d.sock)
        c.send(line(header()) + big(n)
               + line({"end": "complete", "objects": 1, "bytes": 8}))
        self.assertEqual(c.reply().get("objects"), 1)
        c.close()
        self.expect(d, line(header()) + big(n + 1), "limit",
                    msg_has=["refs"])
        self.assertGreater(honest_ack(d.sock, 3), 0)
        self.stop_clean(d)


class TestIdle(DaemonTestCase):

    def test_keepalive_then_idle_timeout_in_the_middle_of_a_snapshot(self):
        d = self.daemon()
        idle = Client(d.sock, timeout=90)     # between snapshots: kept
        c = Client(d.sock, timeout=90)
        c.send(line(header()) + line(objects(1)[0]))
        t0 = time.monotonic()
        first = c.raw_line()
        self.assertIn(b"keepalive", first)
        self.assertGreater(time.monotonic() - t0, 25)
        r = c.reply()
        self.assertEqual(r["code"], "limit")
        self.assertGreater(time.monotonic() - t0, 55)
        self.assertTrue(c.closed_by_peer())
        # The idle connection only got keepalives, and still works.
        self.assertIn(b"keepalive", idle.raw_line())
        idle.send(snapshot(3))
        self.assertEqual(idle.reply()["objects"], 3)
        idle.close()
        c.close()
        self.stop_clean(d)


if __name__ == "__main__":
    unittest.main()
