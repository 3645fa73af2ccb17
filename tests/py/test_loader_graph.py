"""meliae._loader.Graph: the C core under meliae.loader, by index.

Hand-written lines with known answers: feeding in arbitrary chunks, line
numbers in errors, truncated last lines, errors='skip', duplicates,
dangling refs, values of every kind, gzip files, summaries, reachability.
"""

import gzip
import math
import os
import tempfile
import unittest

from meliae import _loader

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        os.pardir, "fixtures")

EXAMPLE = (
    b'{"address": 1000, "type": "dict", "size": 184, "len": 1, "refs": [2000, 3000]}\n'
    b'{"address": 2000, "type": "str", "size": 50, "len": 1, "value": "a", "refs": []}\n'
    b'{"address": 3000, "type": "tuple", "size": 56, "len": 2, "refs": [4000, 5000]}\n'
    b'{"address": 4000, "type": "int", "size": 28, "value": 1, "refs": []}\n'
    b'{"address": 5000, "type": "str", "size": 51, "len": 2, "value": "xy", "refs": []}\n'
)


def graph(data, errors="strict", chunks=None):
    g = _loader.Graph(errors=errors)
    if chunks is None:
        g.feed(data)
    else:
        for i in range(0, len(data), chunks):
            g.feed(data[i:i + chunks])
    g.finish()
    return g


def fixture(name):
    return os.path.join(FIXTURES, name)


class TestFeed(unittest.TestCase):

    def check_example(self, g):
        self.assertEqual(len(g), 5)
        self.assertEqual([g.address(i) for i in range(5)],
                         [1000, 2000, 3000, 4000, 5000])
        self.assertEqual(g.type_str(0), "dict")
        self.assertEqual(g.size(0), 184)
        self.assertEqual(g.len(0), 1)
        self.assertIsNone(g.len(3))
        self.assertEqual(g.value(1), "a")
        self.assertEqual(g.value(3), 1)
        self.assertIsNone(g.value(0))
        self.assertEqual(g.refs(0), [2000, 3000])
        self.assertEqual(g.ref_indices(2), [3, 4])
        self.assertEqual(g.refs(4), [])
        self.assertEqual(g.ndangling, 0)
        self.assertEqual(g.nduplicates, 0)
        self.assertEqual(g.lineno, 5)

    def test_whole(self):
        self.check_example(graph(EXAMPLE))

    def test_every_chunk_size(self):
        # Lines cut anywhere, the partial line kept across feed() calls.
        for n in (1, 2, 3, 7, 64, 79, 80, 81, 200):
            with self.subTest(chunk=n):
                self.check_example(graph(EXAMPLE, chunks=n))

    def test_str_input(self):
        self.check_example(graph(EXAMPLE.decode()))

    def test_no_final_newline(self):
        self.check_example(graph(EXAMPLE[:-1]))

    def test_crlf_and_blank_lines(self):
        data = EXAMPLE.replace(b"\n", b"\r\n\n")
        g = graph(data)
        self.assertEqual(len(g), 5)
        self.assertEqual(g.value(4), "xy")

    def test_find(self):
        g = graph(EXAMPLE)
        self.assertEqual(g.find(3000), 2)
        self.assertEqual(g.find(3001), -1)
        self.assertEqual(g.find(-5), -1)
        self.assertEqual(g.find(1 << 70), -1)
        with self.assertRaises(TypeError):
            g.find("3000")

    def test_index_errors(self):
        g = graph(EXAMPLE)
        for bad in (5, -1, 1 << 40):
            with self.assertRaises(IndexError):
                g.size(bad)
            with self.assertRaises(IndexError):
                g.refs(bad)

    def test_queries_need_finish(self):
        g = _loader.Graph()
        g.feed(EXAMPLE)
        with self.assertRaises(ValueError):
            g.refs(0)
        g.finish()
        with self.assertRaises(ValueError):
            g.feed(EXAMPLE)
        with self.assertRaises(ValueError):
            g.parents(0)        # compute_parents() first

    def test_bad_errors_argument(self):
        with self.assertRaises(ValueError):
            _loader.Graph(errors="ignore")

    def test_empty(self):
        g = graph(b"")
        self.assertEqual(len(g), 0)
        self.assertEqual(g.summarize(), [])
        g.compute_parents()


class TestBadInput(unittest.TestCase):

    def test_malformed_line_names_line(self):
        g = _loader.Graph()
        with self.assertRaises(ValueError) as cm:
            with open(fixture("bad_lines.json"), "rb") as f:
                g.feed(f.read())
        self.assertTrue(str(cm.exception).startswith("line 3: "),
                        str(cm.exception))

    def test_skip(self):
        g = _loader.Graph(errors="skip")
        g.load_file(fixture("bad_lines.json"))
        g.finish()
        self.assertEqual(g.skipped, 2)
        self.assertEqual(len(g), 5)
        line, err = g.first_skipped
        self.assertEqual(line, 3)
        self.assertIn("size", err)

    def test_truncated_last_line(self):
        g = _loader.Graph()
        g.load_file(fixture("truncated.json"))
        with self.assertRaises(ValueError) as cm:
            g.finish()
        self.assertEqual(str(cm.exception),
                         "line 3: truncated (the dump was cut short)")

    def test_truncated_last_line_skip(self):
        g = _loader.Graph(errors="skip")
        g.load_file(fixture("truncated.json"))
        g.finish()
        self.assertEqual(len(g), 2)
        self.assertEqual(g.skipped, 1)
        self.assertEqual(g.first_skipped,
                         (3, "truncated (the dump was cut short)"))

    def test_complete_last_line_without_newline(self):
        g = graph(EXAMPLE.rstrip(b"\n"))
        self.assertEqual(len(g), 5)

    def test_garbage_does_not_crash(self):
        import random
        rnd = random.Random(1234)
        for _ in range(300):
            data = bytes(rnd.randrange(256) for _ in range(rnd.randrange(200)))
            g = _loader.Graph(errors="skip")
            g.feed(data)
            g.finish()
            g.compute_parents()
            g.summarize()

    def test_mutated_lines(self):
        # Every prefix of a line either parses or raises ValueError.
        line = EXAMPLE.split(b"\n")[0]
        for k in range(len(line)):
            g = _loader.Graph()
            g.feed(line[:k])
            try:
                g.finish()
            except ValueError as e:
                self.assertIn("truncated", str(e))


class TestContent(unittest.TestCase):

    def test_dangling(self):
        g = graph(b'{"address": 1, "type": "list", "size": 72, "len": 3, '
                  b'"refs": [2, 77, 77]}\n'
                  b'{"address": 2, "type": "int", "size": 28, "value": 0, "refs": [88]}\n')
        self.assertEqual(g.refs(0), [2, 77, 77])
        self.assertEqual(g.refs(1), [88])
        self.assertEqual(g.ndangling, 3)
        idx = g.ref_indices(0)
        self.assertEqual(idx[0], 1)
        self.assertTrue(all(i >= len(g) for i in idx[1:]))
        g.compute_parents()
        self.assertEqual(g.parents(1), [1])        # addresses
        self.assertEqual(g.parent_indices(1), [0])
        self.assertEqual(g.parents(0), [])

    def test_duplicates_keep_first(self):
        g = graph(b'{"address": 1, "type": "str", "size": 50, "value": "first", "refs": []}\n'
                  b'{"address": 1, "type": "str", "size": 99, "value": "second", "refs": []}\n'
                  b'{"address": 1, "type": "str", "size": 99, "value": "third", "refs": []}\n')
        self.assertEqual(len(g), 1)
        self.assertEqual(g.value(0), "first")
        self.assertEqual(g.size(0), 50)
        self.assertEqual(g.nduplicates, 2)

    def test_values(self):
        lines = [
            ('"type": "float", "size": 24, "value": 1.5', 1.5),
            ('"type": "float", "size": 24, "value": 1e+16', 1e16),
            ('"type": "float", "size": 24, "value": "inf"', math.inf),
            ('"type": "float", "size": 24, "value": "-inf"', -math.inf),
            ('"type": "str", "size": 24, "value": "inf"', "inf"),
            ('"type": "int", "size": 24, "value": -9223372036854775808',
             -9223372036854775808),
            ('"type": "int", "size": 40, "value": 123456789012345678901234567890',
             123456789012345678901234567890),
            ('"type": "bool", "size": 28, "value": true', True),
            ('"type": "bool", "size": 24, "value": false', False),
            ('"type": "NoneType", "size": 16, "value": null', None),
            ('"type": "str", "size": 60, "value": "\\u00e9\\ud83d\\ude00\\n\\"\\\\"',
             "\u00e9\U0001F600\n\"\\"),
            ('"type": "str", "size": 60, "value": "\\udc80"', "\udc80"),
        ]
        data = "".join('{"address": %d, %s, "refs": []}\n' % (i + 1, body)
                       for i, (body, _) in enumerate(lines))
        g = graph(data.encode())
        for i, (body, want) in enumerate(lines):
            with self.subTest(body):
                got = g.value(i)
                self.assertEqual(type(got), type(want))
                self.assertEqual(got, want)
        nan = graph(b'{"address": 1, "type": "float", "size": 24, '
                    b'"value": "nan", "refs": []}\n').value(0)
        self.assertTrue(math.isnan(nan))

    def test_name(self):
        g = graph(b'{"address": 1, "type": "function", "size": 152, '
                  b'"name": "format_string", "refs": []}\n'
                  b'{"address": 2, "type": "module", "size": 72, '
                  b'"name": "caf\\u00e9", "refs": []}\n')
        self.assertEqual(g.name(0), "format_string")
        self.assertEqual(g.name(1), "caf\u00e9")
        self.assertEqual(g.type_str(0), "function")

    def test_other_lines_skipped(self):
        g = _loader.Graph()
        g.load_file(fixture("stream.json"))
        g.finish()
        self.assertEqual(len(g), 5)
        self.assertEqual(g.nother, 2)


class TestQueries(unittest.TestCase):

    def setUp(self):
        self.g = _loader.Graph()
        self.g.load_file(fixture("graph.json"))
        self.g.finish()

    def idx(self, *addrs):
        return [self.g.find(a) for a in addrs]

    def test_parents(self):
        g = self.g
        g.compute_parents()
        self.assertEqual(g.parents(g.find(6)), [2, 3])
        self.assertEqual(g.parents(g.find(6), 1), [2])
        self.assertEqual(g.num_parents(g.find(6)), 2)
        self.assertEqual(g.parents(g.find(1)), [7])
        self.assertEqual(g.parent_indices(g.find(1)), [g.find(7)])

    def test_summarize(self):
        rows = {r[0]: r[1:] for r in self.g.summarize()}
        self.assertEqual(rows["str"], (3, 90, 40, 4))
        self.assertEqual(rows["list"], (2, 160, 100, 1))
        self.assertEqual(sum(r[1] for r in rows.values()), 528)

    def test_summarize_mask(self):
        mask = bytes(1 if a in (1, 4, 5) else 0
                     for a in (self.g.address(i) for i in range(len(self.g))))
        rows = {r[0]: r[1:] for r in self.g.summarize(mask)}
        self.assertEqual(rows, {"list": (1, 100, 100, 1),
                                "str": (2, 70, 40, 4)})
        with self.assertRaises(ValueError):
            self.g.summarize(b"\x01")

    def test_reachable(self):
        g = self.g

        def reach(root, excl=()):
            m = g.reachable([g.find(root)], [g.find(a) for a in excl])
            return sorted(g.address(i) for i, v in enumerate(m) if v)

        self.assertEqual(reach(1), [1, 2, 3, 4, 5, 6, 7, 8])
        self.assertEqual(reach(1, [2]), [1, 3, 4, 6, 7, 8])
        self.assertEqual(reach(1, [2, 3]), [1, 4])
        self.assertEqual(reach(7, [1]), [7, 8])
        self.assertEqual(reach(1, [1]), [])
        self.assertEqual(g.mask_size(g.reachable([g.find(1)], self.idx(2))),
                         298)

    def test_indices_of_type(self):
        g = self.g
        self.assertEqual([g.address(i) for i in g.indices_of_type("str")],
                         [4, 5, 8])
        self.assertEqual(g.indices_of_type("nothing"), [])


class TestFiles(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="meliae-test-")
        self.addCleanup(self.dir.cleanup)

    def path(self, name):
        return os.path.join(self.dir.name, name)

    def test_gzip_by_magic(self):
        p = self.path("dump.data")          # no .gz: the magic decides
        with gzip.open(p, "wb") as f:
            f.write(EXAMPLE)
        g = _loader.Graph()
        self.assertEqual(g.load_file(p), os.path.getsize(p))
        g.finish()
        TestFeed.check_example(self, g)

    def test_gzip_members(self):
        p = self.path("dump.gz")
        half = EXAMPLE.index(b"\n", 100) + 1
        with open(p, "wb") as f:
            f.write(gzip.compress(EXAMPLE[:half]))
            f.write(gzip.compress(EXAMPLE[half:]))
        g = _loader.Graph()
        g.load_file(p)
        g.finish()
        self.assertEqual(len(g), 5)

    def test_gzip_cut_short(self):
        p = self.path("dump.gz")
        data = gzip.compress(EXAMPLE * 50)
        with open(p, "wb") as f:
            f.write(data[:len(data) // 2])
        g = _loader.Graph()
        with self.assertRaises(ValueError):
            g.load_file(p)
            g.finish()

    def test_large_file_chunks(self):
        # Several 1 MiB chunks, lines across chunk boundaries, and gzip.
        lines = [b'{"address": %d, "type": "str", "size": %d, "len": 3, '
                 b'"value": "abc", "refs": [%d]}\n' % (i + 1, 50 + i % 7, i)
                 for i in range(60000)]
        data = b"".join(lines)
        self.assertGreater(len(data), 3 << 20)
        for name, opener in (("big.json", open), ("big.json.gz", gzip.open)):
            p = self.path(name)
            with opener(p, "wb") as f:
                f.write(data)
            calls = []
            g = _loader.Graph()
            g.load_file(p, lambda nread, nobj: calls.append((nread, nobj)))
            g.finish()
            self.assertEqual(len(g), 60000)
            self.assertEqual(g.ndangling, 1)        # the ref to 0
            self.assertEqual(g.bytes_fed, len(data))
            self.assertTrue(calls)
            self.assertEqual(calls[-1][0], os.path.getsize(p))
            self.assertEqual(sum(r[2] for r in g.summarize()),
                             sum(50 + i % 7 for i in range(60000)))

    def test_missing_file(self):
        with self.assertRaises(FileNotFoundError):
            _loader.Graph().load_file(self.path("nope"))

    def test_progress_exception_propagates(self):
        p = self.path("d.json")
        with open(p, "wb") as f:
            f.write(EXAMPLE)

        def boom(*a):
            raise KeyboardInterrupt

        with self.assertRaises(KeyboardInterrupt):
            _loader.Graph().load_file(p, boom)


class TestParseLine(unittest.TestCase):

    def test_fields(self):
        line = EXAMPLE.split(b"\n")[1]
        self.assertEqual(_loader.parse_line(line),
                         (2000, "str", 50, None, 1, "a", [])),
        self.assertEqual(_loader.parse_line(line.decode() + "\n")[0], 2000)
        self.assertIsNone(_loader.parse_line(b'{"end": true}'))
        self.assertIsNone(_loader.parse_line(b"  \n"))
        with self.assertRaises(ValueError):
            _loader.parse_line(b'{"address": 1}')


if __name__ == "__main__":
    unittest.main()
