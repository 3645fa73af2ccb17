"""The loader keeps birth sites during its one parse (scanner/ldfeed.c,
scanner/ldtraces.c, the graph's trace array): a plain file big enough to
be parsed by two threads, with traced objects and table lines on both
sides of the split, gives what one thread gives reading the same lines,
what a gzip of it gives, and what a grouping written here from Python's
json module gives (docs/dump-format.md, "Birth sites"): sites by first
frame, most bytes first, each with the traceback of its largest share.
A table line after the objects that use it counts; a "trace" that no
table line defines is no birth site; a repeated table id keeps its first
line.
"""

import gzip
import json
import os
import random
import tempfile
import unittest

from meliae import loader

SEED = 20261207
N_OBJECTS = 110000          # about 10 MiB of lines: two threads parse it
SPLIT_MIN = 8 << 20         # ldfeed.h LDFEED_SPLIT_MIN
FILES = ["/srv/app/cache.py", "/srv/app/m\u00e9.py", "/srv/app/io.py"]


def frames_of(k):
    """Traceback k's frames: 12 first frames (so tracebacks share them),
    differing further up."""
    top = [FILES[k % 3], 10 + k % 4, None if k % 5 == 0 else "f%d" % (k % 4)]
    return [top, ["/srv/app/main.py", 100 + k, "<module>"]]


def make_dump(rng):
    """(lines, objs, table): the dump's lines; objs [(address, size,
    trace or None)]; table {id: frames} as a reader must see it."""
    n = N_OBJECTS
    table = {}
    lines = []
    # Ids 0..39 before the objects; 40..44 in the middle (the second
    # half's table, used by objects of both halves); 45 at the very end
    # (after every object that uses it); 46 used, never defined; 3
    # defined twice (the first line counts).
    for k in range(40):
        table[k] = frames_of(k)
        lines.append(json.dumps({"traceback": k, "frames": frames_of(k)}))
    objs = []
    mid = n // 2
    for i in range(n):
        a = 0x7F0000000000 + 32 * i
        size = rng.choice([24, 56, 100, 1000, 70000])
        if abs(i - mid) < 3000:
            trace = rng.choice([None, 1, 3, 7, 40, 41, 44, 45, 46])
        elif rng.random() < 0.3:
            trace = rng.choice([0, 1, 2, 3, 5, 8, 13, 21, 34, 39, 42, 45, 46])
        else:
            trace = None
        d = {"address": a, "type": rng.choice(["bytes", "list", "tuple"]),
             "size": size}
        if trace is not None:
            d["trace"] = trace
        d["refs"] = [0x7F0000000000 + 32 * rng.randrange(n)
                     for _ in range(rng.randrange(3))]
        lines.append(json.dumps(d))
        objs.append((a, size, trace))
        if i == mid + 500:
            for k in range(40, 45):
                table[k] = frames_of(k)
                lines.append(json.dumps({"traceback": k,
                                         "frames": frames_of(k)}))
            lines.append(json.dumps({"traceback": 3,
                                     "frames": [["/elsewhere.py", 1, "no"]]}))
    table[45] = frames_of(45)
    lines.append(json.dumps({"traceback": 45, "frames": frames_of(45)}))
    return lines, objs, table


def expected_sites(objs, table):
    """The grouping, from scratch: per trace, then by first frame."""
    bytrace = {}
    for _, size, t in objs:
        if t is None or t not in table:
            continue
        c = bytrace.setdefault(t, [0, 0])
        c[0] += 1
        c[1] += size
    sites = {}
    for t, (count, size) in sorted(bytrace.items(),
                                   key=lambda kv: (-kv[1][1], kv[0])):
        f0 = tuple(table[t][0])
        if f0 not in sites:
            sites[f0] = {"file": f0[0], "line": f0[1], "function": f0[2],
                         "count": 0, "bytes": 0, "trace": t,
                         "traceback": [{"file": f, "line": ln, "function": fn}
                                       for f, ln, fn in table[t]]}
        sites[f0]["count"] += count
        sites[f0]["bytes"] += size
    out = sorted(sites.values(),
                 key=lambda s: (-s["bytes"], -s["count"], s["trace"]))
    for s in out:
        del s["trace"]
    return out


class LoaderBirthsParseTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp()
        lines, cls.objs, cls.table = make_dump(random.Random(SEED))
        cls.text = ("\n".join(lines) + "\n").encode()
        cls.path = os.path.join(cls.dir, "traced.json")
        with open(cls.path, "wb") as f:
            f.write(cls.text)
        cls.gz = cls.path + ".gz"
        with gzip.open(cls.gz, "wb") as f:
            f.write(cls.text)

    @classmethod
    def tearDownClass(cls):
        for f in os.listdir(cls.dir):
            os.unlink(os.path.join(cls.dir, f))
        os.rmdir(cls.dir)

    def load(self, source):
        return loader.load(source, show_prog=False, collapse=False)

    def test_the_dump_is_parsed_by_two_threads_with_traces_near_the_split(self):
        # The premise of the tests below: the file is big enough to be
        # split, and the objects around its middle are traced.
        self.assertGreater(len(self.text), SPLIT_MIN + (1 << 20))
        half = len(self.text) // 2
        before = self.text[:half].count(b"\n")
        near = [t for _, _, t in self.objs[before - 60:before + 60]]
        self.assertGreater(sum(t is not None for t in near), 60)

    def test_split_file_gives_the_grouping_from_json(self):
        om = self.load(self.path)
        got = om.birth_sites(list(om.objs.values()), top=0)
        self.assertEqual(got, expected_sites(self.objs, self.table))
        self.assertEqual(om.birth_sites(list(om.objs.values())),
                         got[:5])

    def test_each_objects_traceback_follows_its_line(self):
        om = self.load(self.path)
        for a, _, t in self.objs:
            want = ([tuple(f) for f in self.table[t]]
                    if t is not None and t in self.table else None)
            self.assertEqual(om[a].traceback, want, hex(a))

    def test_split_file_gzip_and_lines_agree(self):
        whole = self.load(self.path)
        sites = whole.birth_sites(list(whole.objs.values()), top=0)
        for source in (self.gz, iter(self.text.splitlines(True))):
            om = self.load(source)
            self.assertEqual(om.birth_sites(list(om.objs.values()), top=0),
                             sites)
            for a, _, _ in self.objs[::97]:
                self.assertEqual(om[a].traceback, whole[a].traceback)

    def test_a_table_line_after_its_objects_counts(self):
        om = self.load(self.path)
        users = [a for a, _, t in self.objs if t == 45]
        self.assertTrue(users)
        [site] = om.birth_sites([om[a] for a in users])
        self.assertEqual(site["count"], len(users))
        self.assertEqual(site["traceback"][1]["line"], 145)

    def test_a_trace_no_line_defines_is_no_birth_site(self):
        om = self.load(self.path)
        users = [om[a] for a, _, t in self.objs if t == 46]
        self.assertTrue(users)
        self.assertEqual(om.birth_sites(users), [])
        self.assertIsNone(users[0].traceback)

    def test_a_repeated_table_id_keeps_its_first_line(self):
        om = self.load(self.path)
        a = next(a for a, _, t in self.objs if t == 3)
        self.assertEqual(om[a].traceback[0], tuple(frames_of(3)[0]))

    def test_collapsed_instances_keep_their_birth_sites(self):
        # collapse_instance_dicts moves objects: each trace moves with its
        # object.
        lines = [json.dumps({"traceback": 0,
                             "frames": [["a.py", 1, "mk"]]}),
                 json.dumps({"traceback": 1,
                             "frames": [["b.py", 2, "mk2"]]})]
        for i in range(50):
            inst, d = 0x1000 + 64 * i, 0x9000 + 64 * i
            lines.append(json.dumps({"address": inst, "type": "Rec",
                                     "size": 48, "trace": i % 2,
                                     "refs": [d, 0x50]}))
            lines.append(json.dumps({"address": d, "type": "dict",
                                     "size": 100, "len": 0, "refs": []}))
        lines.append(json.dumps({"address": 0x50, "type": "type",
                                 "size": 900, "name": "Rec", "refs": []}))
        om = loader.load(iter(lines), show_prog=False)
        recs = om.get_all("Rec")
        self.assertEqual((len(om), len(recs)), (51, 50))   # dicts folded
        for r in recs:
            i = (r.address - 0x1000) // 64
            self.assertEqual(r.traceback[0][0], "b.py" if i % 2 else "a.py")
        self.assertEqual([(s["file"], s["count"]) for s in
                          om.birth_sites(recs)],
                         [("a.py", 25), ("b.py", 25)])

    def test_a_table_line_without_frames_is_a_clear_error(self):
        for frames in ('"nope"', '[["a.py", 1]]', '{"a.py": 1}'):
            lines = ['{"traceback": 0, "frames": %s}' % frames,
                     '{"address": 16, "type": "bytes", "size": 40, '
                     '"trace": 0, "refs": []}']
            om = loader.load(iter(lines), show_prog=False)
            with self.assertRaisesRegex(ValueError, "traceback 0: its table "
                                        "line is not"):
                om.birth_sites([om[16]])
            with self.assertRaises(ValueError):
                om[16].traceback


if __name__ == "__main__":
    unittest.main()
