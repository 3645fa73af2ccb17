# SPDX-License-Identifier: MIT
"""Named paths and thread frames (issue 18, points 1 and 2): a program
dumps its heap (dump_all_objects), the loader reads it, and
om.path_to_root(obj) says how each object is kept alive in the program's
own words -- the same text meliae-cli referrers gives (common/paths.c).

The program runs in a child interpreter as __main__ (so that its globals
are __main__.X), with a thread named 'collector' blocked in worker()
holding a buffer in a local, a suspended generator holding one, a bus of
listeners, a dict of sessions and an lru_cache.  Line numbers are the
child's own (found by a marker comment), not constants.
"""

import json
import os
import re
import sys
import tempfile
import time
import unittest

from fakedaemon import ASAN_FORK_SKIP, UNDER_ASAN
from support import describe_child, run_child
from meliae import loader

PROGRAM = r'''
import functools, json, sys, threading
from meliae import scanner

class Listener(object):
    pass

class EventBus(object):
    def __init__(self):
        self.subscribers = []

BUS = EventBus()
for _i in range(40):
    BUS.subscribers.append(Listener())

class Session(object):
    pass

_SESSIONS = {}
for _i in range(5):
    _SESSIONS["sess-%d" % _i] = Session()

@functools.lru_cache(maxsize=None)
def render(n):
    return bytearray(n)

render(77)

class Slotted(object):
    __slots__ = ("payload",)

ready = threading.Event()
done = threading.Event()
HELD = {}

LOCAL = threading.local()

def worker():
    buf = bytearray(4321)
    HELD["buf"] = id(buf)
    LOCAL.tbuf = bytearray(6543)
    HELD["tbuf"] = id(LOCAL.tbuf)
    ready.set()
    done.wait()  # WORKER-LINE

def gen():
    gbuf = bytearray(5432)
    HELD["gbuf"] = id(gbuf)
    yield 1  # GEN-LINE
    yield 2

G = gen()
next(G)
t = threading.Thread(target=worker, name="collector")
t.start()
ready.wait()
scanner.dump_all_objects(sys.argv[1])
if sys.argv[2] == "1":
    # a forked child's walk: the threads' frames are still in its memory
    scanner.dump_all_objects(sys.argv[1] + ".fork", fork=True).wait()
done.set()
t.join()
print(json.dumps({"listener": id(BUS.subscribers[17]),
                  "session": id(_SESSIONS["sess-3"]),
                  "cached": id(render(77)),
                  "buf": HELD["buf"], "gbuf": HELD["gbuf"],
                  "tbuf": HELD["tbuf"]}))
'''


def marker_line(marker):
    for n, line in enumerate(PROGRAM.split("\n"), 1):
        if marker in line:
            return n
    raise AssertionError(marker)


class PathsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="meliae-paths-")
        prog = os.path.join(cls.tmp, "app.py")
        with open(prog, "w") as f:
            f.write(PROGRAM)
        dump = os.path.join(cls.tmp, "heap.json")
        code = "import runpy, sys; sys.argv = [%r, %r, %r]; " \
               "runpy.run_path(%r, run_name='__main__')" % (
                   prog, dump, "0" if UNDER_ASAN else "1", prog)
        p = run_child(code)
        if p.returncode != 0:
            raise AssertionError(describe_child(p))
        cls.ids = json.loads(p.stdout.decode().strip().splitlines()[-1])
        cls.dump = dump
        cls.om = loader.load(dump)
        with open(dump) as f:
            cls.lines = [json.loads(l) for l in f]

    @classmethod
    def tearDownClass(cls):
        for name in os.listdir(cls.tmp):
            os.unlink(os.path.join(cls.tmp, name))
        os.rmdir(cls.tmp)

    def path(self, key):
        p = self.om.path_to_root(self.ids[key])
        self.assertIsNotNone(p, key)
        self.assertEqual(p.objects[-1].address, self.ids[key])
        self.assertEqual(len(p.steps), len(p.objects))
        return p

    def test_a_listener_reads_as_module_attr_index(self):
        p = self.path("listener")
        self.assertEqual(p.text, "__main__.BUS.subscribers[17]")
        self.assertEqual(p.steps[0]["via"], "root")
        self.assertEqual(p.steps[-1], {"via": "index", "index": 17,
                                       "address": self.ids["listener"],
                                       "type": "Listener"})

    def test_a_dict_value_reads_as_its_key(self):
        # file dumps keep str values: the key is named
        p = self.path("session")
        self.assertEqual(p.text, "__main__._SESSIONS['sess-3']")
        self.assertEqual(p.steps[-1]["via"], "key")
        self.assertEqual(p.steps[-1]["key"], "sess-3")

    def test_an_lru_cache_entry_names_the_function(self):
        p = self.path("cached")
        self.assertEqual(p.text, "functools.lru_cache(__main__.render)[77]")

    def test_a_running_thread_local_names_thread_function_line(self):
        p = self.path("buf")
        self.assertEqual(
            p.text, "thread 'collector' in worker() app.py:%d, local 'buf'"
            % marker_line("WORKER-LINE"))
        self.assertEqual(p.objects[0].type_str, "<thread frame>")
        self.assertEqual([s["via"] for s in p.steps], ["root", "local"])

    def test_a_threading_local_attribute_reads_as_an_attribute(self):
        # the local's dict of its threads' dicts is no step of its own
        p = self.path("tbuf")
        self.assertEqual(p.text, "__main__.LOCAL.tbuf")
        self.assertEqual([s["via"] for s in p.steps][-3:],
                         ["dict", "thread_local", "attr"])
        self.assertEqual(p.steps[-1]["key"], "tbuf")

    def test_a_suspended_generator_local_names_function_and_line(self):
        p = self.path("gbuf")
        self.assertEqual(
            p.text, "__main__.G, generator in gen() app.py:%d, local 'gbuf'"
            % marker_line("GEN-LINE"))

    @unittest.skipIf(UNDER_ASAN, ASAN_FORK_SKIP)
    def test_a_forked_dump_has_the_threads_frames_too(self):
        om = loader.load(self.dump + ".fork", show_prog=False)
        p = om.path_to_root(self.ids["buf"])
        self.assertEqual(
            p.text, "thread 'collector' in worker() app.py:%d, local 'buf'"
            % marker_line("WORKER-LINE"))

    def test_every_thread_frame_line_is_a_root_with_local_pairs(self):
        frames = [d for d in self.lines if d["type"] == "<thread frame>"]
        by_addr = {d["address"]: d for d in self.lines}
        names = [d["name"] for d in frames]
        self.assertTrue(any(n.startswith("thread 'MainThread' in ")
                            for n in names), names)
        for d in frames:
            self.assertEqual(d["address"] % 2, 1)       # never an object's
            self.assertEqual(d["size"], 0)
            self.assertEqual(len(d["refs"]), 2 * d["len"])
            for k in range(0, len(d["refs"]), 2):
                name = by_addr[d["refs"][k]]
                self.assertEqual(name["type"], "str")
                self.assertRegex(name["value"], r"\A[A-Za-z_]\w*\Z")
                self.assertIn(d["refs"][k + 1], by_addr)

    def test_list_refs_are_in_item_order(self):
        bus = [d for d in self.lines if d["type"] == "EventBus"]
        self.assertEqual(len(bus), 1)
        subs = [d for d in self.lines if d["type"] == "list"
                and d.get("len") == 40
                and self.ids["listener"] in d["refs"]]
        self.assertEqual(len(subs), 1)
        self.assertEqual(subs[0]["refs"].index(self.ids["listener"]), 17)


class HubPathTest(unittest.TestCase):
    """path_to_root of a hub that a million listeners refer to, held by a
    module global: exact (the module, not "a cycle"), each object once."""

    N = 1000000

    def test_a_hub_with_a_million_referrers(self):
        base = 1 << 40
        hub, lst, d, mod, key = base - 5, base - 4, base - 3, base - 2, base - 1
        path = tempfile.mktemp(prefix="meliae-hub-", suffix=".json")
        try:
            with open(path, "w") as f:
                f.write('{"address": %d, "type": "Reactor", "size": 48, '
                        '"refs": [%d]}\n' % (hub, lst))
                f.write('{"address": %d, "type": "list", "size": 8, "len": %d, '
                        '"refs": [%s]}\n' % (lst, self.N, ", ".join(
                            str(base + i) for i in range(self.N))))
                line = ('{"address": %%d, "type": "Listener", "size": 48, '
                        '"refs": [%d]}\n' % hub)
                for i in range(self.N):
                    f.write(line % (base + i))
                f.write('{"address": %d, "type": "dict", "size": 232, '
                        '"len": 1, "refs": [%d, %d]}\n' % (d, key, hub))
                f.write('{"address": %d, "type": "str", "size": 53, "len": 7, '
                        '"value": "REACTOR", "refs": []}\n' % key)
                f.write('{"address": %d, "type": "module", "size": 72, '
                        '"name": "app", "refs": [%d]}\n' % (mod, d))
            om = loader.load(path, show_prog=False)
            start = time.monotonic()
            p = om.path_to_root(hub)
            self.assertIsNotNone(p)
            self.assertEqual(p.text, "app.REACTOR")
            # (load() collapses the module's __dict__ into the module)
            self.assertEqual([o.address for o in p.objects], [mod, hub])
            self.assertEqual([s["via"] for s in p.steps], ["root", "global"])
            self.assertEqual(p.steps[1]["key"], "REACTOR")
            # a listener: through the hub's list?  No: the shortest is the
            # listener's own referrer, the list, held by the hub
            q = om.path_to_root(base + 5)
            self.assertEqual(q.text, "app.REACTOR<list>[5]")
            # bounded: a breadth-first search, each object once (about
            # 0.1 s; 60 s would mean a search per referrer)
            self.assertLess(time.monotonic() - start, 60)
        finally:
            os.unlink(path)


if __name__ == "__main__":
    unittest.main()
