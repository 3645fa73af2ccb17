"""A plain dump file big enough to be parsed by two threads (its halves
joined at a line end, scanner/ldfeed.c) gives the graph that feeding the
same bytes in small pieces gives, and the answers Python's json module
gives: objects and their fields, duplicates (the first line kept, also when
the repeat is in the other half), dangling refs, sizes and lens of 4 GiB
and more, names beside values, values holding a NUL, lines that are not
objects, blank lines, malformed lines (strict: the same line number;
skip: the same count and first line), and a last line without its '\\n'.
"""

import collections
import json
import os
import random
import tempfile
import unittest

from meliae import _loader, loader

SEED = 20261206
SPLIT_MIN = 8 << 20         # ldfeed.h LDFEED_SPLIT_MIN
N_OBJECTS = 130000          # about 12 MiB of lines


def make_lines(n, rng):
    """Object lines (and a few others) as (line, obj-or-None)."""
    addrs = [0x7F0000000000 + 16 * i for i in range(n)]
    out = [('{"format": 2, "pid": 1}', None)]
    for i, a in enumerate(addrs):
        d = {"address": a, "type": rng.choice(["str", "int", "dict", "list",
                                               "tuple", "Rec", "float"]),
             "size": rng.choice([16, 24, 48, 72, 1000, 2**32 + 5, 2**40])}
        r = rng.random()
        if r < 0.05:
            d["name"] = "n\u00e9%d" % i
        if r < 0.02 or 0.3 < r < 0.6:
            d["value"] = rng.choice(["plain", "\u00e9sc\"aped\\", "nul\x00in",
                                     "\U0001f600", 7, -3, 10**30, 2.5])
        if rng.random() < 0.5:
            d["len"] = rng.choice([0, 3, 2**32 - 1, 2**33])
        if rng.random() < 0.01:
            d["extra"] = [1, 2]             # an unknown key
        refs = [rng.choice(addrs) for _ in range(rng.randrange(4))]
        if rng.random() < 0.01:
            refs.append(0xDEAD0000 + i)     # dangling
        d["refs"] = refs
        out.append((json.dumps(d), d))
        if rng.random() < 0.002:
            out.append(('{"table": "types", "id": 3}', None))
        if rng.random() < 0.001:
            out.append(("", None))
    # Repeats: one near the start of the first half and one of the second
    # half, both repeated late (the first line of each stays).
    for k in (5, n * 3 // 4):
        d = dict(out[k + 1][1] or {"address": addrs[k]})
        d.update(type="Repeat", size=1, refs=[])
        out.append((json.dumps(d), d))
    return out


def write(path, lines, tail=b"\n"):
    with open(path, "wb") as f:
        f.write(b"\n".join(line.encode("utf-8", "surrogatepass")
                           for line, _ in lines))
        f.write(tail)


def by_feeding(path, errors="strict"):
    """The same file, fed in pieces that cut lines anywhere."""
    g = _loader.Graph(errors)
    with open(path, "rb") as f:
        data = f.read()
    step = 65521
    for k in range(0, len(data), step):
        g.feed(data[k:k + step])
    g.finish()
    return g


def by_file(path, errors="strict"):
    g = _loader.Graph(errors)
    g.load_file(path)
    g.finish()
    return g


def graph_dump(g):
    return [(g.address(i), g.type_str(i), g.size(i), g.len(i), g.name(i),
             g.value(i), g.refs(i)) for i in range(len(g))]


class SplitTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.lines = make_lines(N_OBJECTS, random.Random(SEED))
        cls.path = os.path.join(cls.tmp.name, "d.json")
        write(cls.path, cls.lines)
        assert os.path.getsize(cls.path) > SPLIT_MIN * 1.2

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_split_file_gives_the_fed_graph(self):
        a, b = by_file(self.path), by_feeding(self.path)
        self.assertEqual(graph_dump(a), graph_dump(b))
        for attr in ("nduplicates", "ndangling", "lineno", "nother",
                     "nrefs", "skipped"):
            self.assertEqual(getattr(a, attr), getattr(b, attr), attr)
        self.assertEqual(a.nduplicates, 2)
        self.assertGreater(a.ndangling, 0)

    def test_answers_match_json(self):
        """Summary, sizes and referrers against json.loads of each line."""
        first = {}
        for _, d in self.lines:
            if d is not None and d["address"] not in first:
                first[d["address"]] = d
        om = loader.load(self.path, show_prog=False, collapse=False)
        self.assertEqual(len(om), len(first))
        s = om.summarize()
        want = collections.Counter()
        for d in first.values():
            want[d["type"]] += d["size"]
        self.assertEqual({t.type_str: t.total_size for t in s.summaries},
                         dict(want))
        om.compute_referrers()
        parents = collections.defaultdict(set)
        for d in first.values():
            for r in d["refs"]:
                if r in first:
                    parents[r].add(d["address"])
        rng = random.Random(SEED + 1)
        for a in rng.sample(sorted(first), 3000):
            o, d = om[a], first[a]
            self.assertEqual(o.size, d["size"])
            self.assertEqual(o.type_str, d["type"])
            self.assertEqual(list(o.children), d["refs"])
            self.assertEqual(set(o.parents),
                             parents[a])
            self.assertEqual(o.value, d.get("value"))

    def test_error_in_second_half_has_its_line_number(self):
        lines = list(self.lines)
        bad = len(lines) * 4 // 5
        lines[bad] = ('{"address": 1, "type": "x", "size": }', None)
        path = os.path.join(self.tmp.name, "bad.json")
        write(path, lines)
        with self.assertRaises(ValueError) as e1:
            by_file(path)
        with self.assertRaises(ValueError) as e2:
            by_feeding(path)
        self.assertEqual(str(e1.exception), str(e2.exception))
        self.assertTrue(str(e1.exception).startswith("line %d:" % (bad + 1)),
                        str(e1.exception))
        a, b = by_file(path, "skip"), by_feeding(path, "skip")
        self.assertEqual((a.skipped, a.first_skipped),
                         (b.skipped, b.first_skipped))
        self.assertEqual(a.first_skipped[0], bad + 1)
        self.assertEqual(graph_dump(a), graph_dump(b))

    def test_last_line_without_newline_and_truncated(self):
        path = os.path.join(self.tmp.name, "cut.json")
        write(path, self.lines, tail=b"")
        self.assertEqual(graph_dump(by_file(path)),
                         graph_dump(by_feeding(path)))
        write(path, self.lines + [('{"address": 5, "type": "x"', None)],
              tail=b"")
        with self.assertRaises(ValueError) as e:
            by_file(path)
        self.assertIn("truncated", str(e.exception))
        self.assertEqual(by_file(path, "skip").skipped, 1)


if __name__ == "__main__":
    unittest.main()
