"""meliae.loader: load(), ObjManager, MemObject and summaries.

Hand-made dumps with known answers (tests/fixtures/*.json), and the seed's
interactive session replayed on a generated dump with the seed's numbers.
"""

import gzip
import io
import json
import os
import pathlib
import tempfile
import unittest
import warnings

from meliae import loader

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        os.pardir, "fixtures")


def fixture(name):
    return os.path.join(FIXTURES, name)


def read_fixture(name):
    with open(fixture(name), "rb") as f:
        return f.read()


class TestSources(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="meliae-test-")
        self.addCleanup(self.dir.cleanup)
        self.data = read_fixture("stream.json")

    def check(self, om):
        self.assertEqual(len(om), 5)
        self.assertEqual(sorted(om.objs), [1000, 2000, 3000, 4000, 5000])
        self.assertEqual(om[3000].children, [4000, 5000])
        self.assertEqual(om[5000].value, "xy")
        self.assertEqual(om[4000].parents, [3000])

    def test_path_str_bytes_pathlike(self):
        p = fixture("stream.json")
        for src in (p, os.fsencode(p), pathlib.Path(p)):
            with self.subTest(src=type(src)):
                self.check(loader.load(src, show_prog=False))

    def test_gz_path(self):
        p = os.path.join(self.dir.name, "dump.json.gz")
        with gzip.open(p, "wb") as f:
            f.write(self.data)
        self.check(loader.load(p, show_prog=False))

    def test_binary_file_object(self):
        self.check(loader.load(io.BytesIO(self.data), show_prog=False))
        with open(fixture("stream.json"), "rb") as f:
            self.check(loader.load(f, show_prog=False))

    def test_gz_file_object(self):
        self.check(loader.load(io.BytesIO(gzip.compress(self.data)),
                               show_prog=False))
        cut = gzip.compress(self.data * 20)
        with self.assertRaises(ValueError):
            loader.load(io.BytesIO(cut[:len(cut) // 2]), show_prog=False)

    def test_text_file_object(self):
        self.check(loader.load(io.StringIO(self.data.decode()),
                               show_prog=False))

    def test_iterable_of_lines(self):
        text = self.data.decode()
        self.check(loader.load(text.splitlines(True), show_prog=False))
        self.check(loader.load(text.splitlines(), show_prog=False))
        self.check(loader.load(self.data.splitlines(), show_prog=False))
        self.check(loader.load(iter(self.data.splitlines(True)),
                               show_prog=False))

    def test_no_progress_when_not_a_terminal(self):
        import contextlib
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            loader.load(fixture("stream.json"))
        self.assertEqual(err.getvalue(), "")

    def test_progress_on_a_terminal(self):
        import contextlib

        class TTY(io.StringIO):
            def isatty(self):
                return True

        for src in (fixture("stream.json"), self.data.splitlines()):
            err = TTY()
            with contextlib.redirect_stderr(err):
                loader.load(src)
            self.assertIn("loaded 5 objects", err.getvalue())
            self.assertTrue(err.getvalue().endswith("\n"))
            err = TTY()
            with contextlib.redirect_stderr(err):
                loader.load(src, show_prog=False)
            self.assertEqual(err.getvalue(), "")

    def test_iter_objs(self):
        objs = list(loader.iter_objs(fixture("meliae05.json")))
        # One per object line, duplicates included.
        self.assertEqual(len(objs), 11)
        self.assertEqual([o.address for o in objs][:5],
                         [30000, 31000, 32000, 33000, 32000])
        self.assertEqual(objs[0].name, "mymod")
        self.assertEqual(objs[1].children, [32000, 33000])
        self.assertEqual(objs[6].children, [])          # no "refs" key
        self.assertEqual(objs[6].value, 7)
        self.assertEqual(len(list(loader.iter_objs(self.data.splitlines()))), 5)
        gz = os.path.join(self.dir.name, "d.gz")
        with gzip.open(gz, "wb") as f:
            f.write(self.data)
        self.assertEqual([o.address for o in loader.iter_objs(gz)],
                         [1000, 2000, 3000, 4000, 5000])
        self.assertTrue(repr(objs[2]).startswith("MemObject(0x7d00, str, 41 bytes"))
        with self.assertRaises(ValueError) as cm:
            list(loader.iter_objs(fixture("bad_lines.json")))
        self.assertTrue(str(cm.exception).startswith("line 3: "))
        self.assertEqual(
            len(list(loader.iter_objs(fixture("bad_lines.json"), errors="skip"))), 5)


class TestBadInput(unittest.TestCase):

    def test_strict(self):
        with self.assertRaises(ValueError) as cm:
            loader.load(fixture("bad_lines.json"), show_prog=False)
        self.assertRegex(str(cm.exception), r"^line 3: .*size")

    def test_skip_warns_once(self):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            om = loader.load(fixture("bad_lines.json"), show_prog=False,
                             errors="skip")
        self.assertEqual(len(om), 5)
        self.assertEqual(om.skipped, 2)
        self.assertEqual(len(w), 1)
        self.assertTrue(issubclass(w[0].category, loader.DumpWarning))
        self.assertIn("skipped 2 malformed lines (first: line 3:",
                      str(w[0].message))

    def test_truncated(self):
        with self.assertRaises(ValueError) as cm:
            loader.load(fixture("truncated.json"), show_prog=False)
        self.assertEqual(str(cm.exception),
                         "line 3: truncated (the dump was cut short)")
        data = read_fixture("truncated.json")
        with self.assertRaises(ValueError) as cm:
            loader.load(io.BytesIO(data), show_prog=False)
        self.assertIn("truncated", str(cm.exception))


class TestMeliae05(unittest.TestCase):
    """Lines as meliae 0.5 wrote them."""

    def setUp(self):
        self.om = loader.load(fixture("meliae05.json"), show_prog=False,
                              collapse=False)

    def test_duplicates_kept_first(self):
        self.assertEqual(len(self.om), 9)
        self.assertEqual(self.om.nduplicates, 2)

    def test_dict_values_only(self):
        # 0.5 dicts list values only: loaded as given.
        d = self.om[31000]
        self.assertEqual(d.children, [32000, 33000])
        self.assertEqual(d.len, 2)

    def test_values(self):
        om = self.om
        self.assertEqual(om[32000].value, "caf\u00e9")
        self.assertEqual(om[35000].value, 7)
        self.assertEqual(om[35000].children, [])
        self.assertEqual(om[38000].value, 123456789012345678901234567890)
        self.assertEqual(om[38000].type_str, "long")
        self.assertEqual(om[30000].name, "mymod")

    def test_value_with_nul(self):
        self.assertEqual(self.om[34000].value, "\u00ff\u0000a\u00e9\u0080")

    def test_latin1_bytes_value(self):
        self.assertEqual(self.om[32000].value.encode("latin-1"), b"caf\xe9")

    def test_old_style_instance(self):
        om = self.om
        self.assertEqual(om[36000].children, [37000, 31000])
        om.compute_referrers()
        self.assertEqual(om[31000].parents, [30000, 36000])


class TestObjManager(unittest.TestCase):

    def setUp(self):
        self.om = loader.load(fixture("graph.json"), show_prog=False)

    def test_mapping(self):
        om = self.om
        self.assertEqual(len(om), 8)
        self.assertIn(3, om)
        self.assertNotIn(9999, om)
        self.assertNotIn("3", om)
        self.assertEqual(list(om.objs), [1, 2, 3, 4, 5, 6, 7, 8])
        self.assertEqual(len(om.objs), 8)
        self.assertEqual(om.objs[4].value, "abc")
        self.assertEqual([o.address for o in om.objs.values()],
                         [1, 2, 3, 4, 5, 6, 7, 8])
        self.assertEqual(dict(om.objs.items())[8].size, 20)
        with self.assertRaises(KeyError):
            om[9999]
        with self.assertRaises(TypeError):
            om["1"]
        self.assertIsNone(om.get(9999))
        self.assertEqual(om[om[3]], om[3])
        self.assertEqual(om.ndangling, 1)

    def test_memobject_fields(self):
        o = self.om[3]
        self.assertEqual((o.address, o.type_str, o.size, o.len),
                         (3, "tuple", 50, 2))
        self.assertEqual(o.children, [6, 7])
        self.assertEqual(o.refs, [6, 7])
        self.assertEqual(len(o), 2)
        self.assertEqual(o.num_refs, 2)
        self.assertEqual(o.parents, [1])
        self.assertEqual(o.referrers, [1])
        self.assertEqual(o.num_parents, 1)
        self.assertEqual([c.address for c in o.c], [6, 7])
        self.assertEqual([p.address for p in o.p], [1])
        self.assertEqual(o[1].address, 7)
        with self.assertRaises(IndexError):
            o[2]
        self.assertIsNone(self.om[1].value)
        self.assertIsNone(self.om[1].name)
        # A dangling child is left out of .c and raises KeyError by index.
        s = self.om[8]
        self.assertEqual(s.children, [9999])
        self.assertEqual(s.c, [])
        with self.assertRaises(KeyError):
            s[0]
        self.assertEqual({self.om[3], self.om[3]}, {self.om[3]})

    def test_summarize_known_answers(self):
        om = self.om
        s = om.summarize()
        self.assertEqual((s.total_count, s.total_size), (8, 528))
        s = om.summarize(om[1])
        self.assertEqual((s.total_count, s.total_size), (8, 528))
        s = om.summarize(1, excluding=[2])
        self.assertEqual((s.total_count, s.total_size), (6, 298))
        self.assertEqual(sorted(s.type_summaries), ["int", "list", "str", "tuple"])
        self.assertEqual(s.type_summaries["str"].count, 2)      # 4 and 8
        self.assertEqual(s.type_summaries["str"].total_size, 60)
        s = om.summarize(om[1], excluding=[om[2], 3])
        self.assertEqual((s.total_count, s.total_size), (2, 140))
        s = om.summarize(7, excluding=[1])
        self.assertEqual((s.total_count, s.total_size), (2, 80))
        # Excluding addresses not in the dump is harmless.
        s = om.summarize(1, excluding=[12345])
        self.assertEqual(s.total_size, 528)
        # Whole dump minus some objects.
        s = om.summarize(excluding=[2])
        self.assertEqual((s.total_count, s.total_size), (7, 328))

    def test_total_size(self):
        om = self.om
        self.assertEqual(om.compute_total_size(om[7]), 528)
        self.assertEqual(om.compute_total_size(7, excluding=[1]), 80)
        self.assertEqual(om[3].compute_total_size(), 528)
        self.assertEqual(om[4].total_size, 40)
        self.assertEqual(sorted(o.address for o in om[7].iter_recursive_refs(
            excluding=[1])), [7, 8])

    def test_get_all(self):
        self.assertEqual([o.address for o in self.om.get_all("str")], [4, 5, 8])
        self.assertEqual([o.address for o in self.om.get_all("list")], [1, 7])
        self.assertEqual(self.om.get_all("nope"), [])
        self.assertEqual([o.address for o in self.om[3].all("str")], [4, 5, 8])

    def test_refs_as(self):
        om = self.om
        self.assertEqual(om.refs_as_dict(om[2]), {"k": 6})
        self.assertEqual(om[2].refs_as_dict(), {"k": 6})
        self.assertEqual(om.refs_as_list(om[3]), [6, om[7]])
        self.assertEqual(om[8].refs_as_list(), [None])

    def test_to_json(self):
        for line in read_fixture("graph.json").decode().splitlines():
            d = json.loads(line)
            self.assertEqual(json.loads(self.om[d["address"]].to_json()), d)

    def test_max_parents(self):
        lines = ['{"address": 1, "type": "int", "size": 28, "value": 1, "refs": []}']
        lines += ['{"address": %d, "type": "list", "size": 64, "len": 1, '
                  '"refs": [1]}' % a for a in range(2, 302)]
        om = loader.load(lines, show_prog=False)
        self.assertEqual(len(om[1].parents), loader.DEFAULT_MAX_PARENTS)
        self.assertEqual(om[1].num_parents, 300)
        om = loader.load(lines, show_prog=False, max_parents=5)
        self.assertEqual(om[1].parents, [2, 3, 4, 5, 6])
        self.assertEqual(len(om[1].p), 5)
        # The cap is in what is shown only: walks go everywhere.
        self.assertEqual(om.summarize(2).total_count, 2)

    def test_referrers_computed_on_demand(self):
        om = loader.load(fixture("graph.json"), show_prog=False, collapse=False)
        self.assertNotIn("referrers", repr(om[6]))
        self.assertEqual(om[6].parents, [2, 3])
        self.assertIn("2 referrers [0x2, 0x3]", repr(om[6]))
        om.compute_parents()
        self.assertEqual(om[6].parents, [2, 3])


class TestDiff(unittest.TestCase):

    def test_diff(self):
        before = loader.load(fixture("graph.json"), show_prog=False)
        lines = read_fixture("graph.json").decode().splitlines()
        lines.append('{"address": 20, "type": "str", "size": 70, "len": 9, '
                     '"value": "new thing", "refs": []}')
        lines.append('{"address": 21, "type": "bytes", "size": 40, "len": 7, '
                     '"value": "payload", "refs": []}')
        lines.append('{"address": 22, "type": "list", "size": 72, "len": 2, '
                     '"refs": [20, 21]}')
        lines = [l for l in lines if not l.startswith('{"address": 6,')]
        after = loader.load(lines, show_prog=False)
        d = before.diff(after)
        self.assertEqual(d.count_delta, 2)
        self.assertEqual(d.size_delta, 70 + 40 + 72 - 28)
        self.assertEqual(d.type_deltas["str"], (3, 4, 90, 160))
        self.assertEqual(d.type_deltas["int"], (1, 0, 28, 0))
        self.assertEqual(d.type_deltas["bytes"], (0, 1, 0, 40))
        self.assertEqual(sorted(d.new_objects), [20, 21, 22])
        self.assertEqual(d.new_by_type["str"], (1, 70))
        self.assertEqual((d.new_count, d.new_bytes), (3, 182))
        self.assertEqual((d.gone_count, d.gone_bytes), (1, 28))
        # nothing refers to the new list: it is where the other two
        # accumulate (itself at depth 0)
        self.assertEqual(len(d.groups), 1)
        g = d.groups[0]
        self.assertEqual((g.holder.address, g.holder_new), (22, True))
        self.assertEqual((g.count, g.bytes, g.depth), (3, 182, 1))
        self.assertEqual([(t, c, b, dp, ex.address)
                          for t, c, b, dp, ex in g.types],
                         [("list", 1, 72, 0, 22), ("str", 1, 70, 1, 20),
                          ("bytes", 1, 40, 1, 21)])
        rows = repr(d).split("\n")
        self.assertEqual(rows[0], "Diff: +2 objects, +154 bytes; 3 new objects")
        self.assertEqual(rows[2], "       3    +1       232       +72 list")
        self.assertIn("New objects: 3 (182B); gone: 1 (28B)", rows)
        self.assertIn("  3 new (182B) at list@0x16: 1 list (72B), 1 str (70B),"
                      " 1 bytes (40B)", rows)

    def test_diff_groups_at_the_old_holder(self):
        """New objects hang off the old list that gained them; an old
        object whose only referrer is new is new (its address reused)."""
        base = ['{"address": 1, "type": "module", "size": 50, "name": "app", '
                '"refs": [2]}',
                '{"address": 2, "type": "dict", "size": 100, "len": 1, '
                '"refs": [3, 4]}',
                '{"address": 3, "type": "str", "size": 50, "len": 4, '
                '"value": "list", "refs": []}',
                '{"address": 4, "type": "list", "size": 56, "len": 0, '
                '"refs": []}']
        before = loader.load(base + [
            '{"address": 9, "type": "dict", "size": 64, "len": 0, '
            '"refs": []}'], show_prog=False, collapse=False)
        after = loader.load(base[:3] + [
            '{"address": 4, "type": "list", "size": 88, "len": 2, '
            '"refs": [5, 6]}',
            '{"address": 5, "type": "Node", "size": 48, "refs": [9]}',
            '{"address": 6, "type": "Node", "size": 48, "refs": [7]}',
            '{"address": 7, "type": "bytes", "size": 1000, "len": 967, '
            '"refs": []}',
            '{"address": 9, "type": "dict", "size": 64, "len": 0, '
            '"refs": []}'], show_prog=False, collapse=False)
        d = before.diff(after)
        # 9 was in before, but only the new Node refers to it now
        self.assertEqual(sorted(d.new_objects), [5, 6, 7, 9])
        self.assertEqual((d.new_count, d.new_bytes), (4, 48 * 2 + 1000 + 64))
        self.assertEqual(len(d.groups), 1)
        g = d.groups[0]
        self.assertEqual((g.holder.address, g.holder_new, g.depth),
                         (4, False, 2))
        self.assertEqual(g.path, "app.list")
        self.assertEqual([(t, c, b, dp) for t, c, b, dp, ex in g.types],
                         [("bytes", 1, 1000, 2), ("Node", 2, 96, 1),
                          ("dict", 1, 64, 2)])
        self.assertEqual(after.diff(after).new_objects, [])
        self.assertEqual(after.diff(after).groups, [])

    def test_diff_refuses_dumps_loaded_two_ways(self):
        collapsed = loader.load(fixture("graph.json"), show_prog=False)
        plain = loader.load(fixture("graph.json"), show_prog=False,
                            collapse=False)
        with self.assertRaisesRegex(ValueError, "earlier one only"):
            collapsed.diff(plain)
        with self.assertRaisesRegex(ValueError, "later one only"):
            plain.diff(collapsed)
        plain.collapse_instance_dicts()
        self.assertEqual(collapsed.diff(plain).new_objects, [])


class TestRepr(unittest.TestCase):

    def test_memobject(self):
        lines = [
            '{"address": 29337264, "type": "function", "size": 60, '
            '"name": "format_string", "refs": [1, 2, 3, 4, 5, 6]}',
            '{"address": 7, "type": "str", "size": 80, "len": 30, '
            '"value": "abcdefghijklmnopqrstuvwxyz0123", "refs": []}',
            '{"address": 8, "type": "int", "size": 28, "value": 12, "refs": []}',
            '{"address": 9, "type": "tuple", "size": 40, "len": 1, "refs": [8]}',
        ]
        om = loader.load(lines, show_prog=False)
        self.assertEqual(
            repr(om[29337264]),
            "MemObject(0x1bfa6b0, function, format_string, 60 bytes, 6 refs "
            "[0x1, 0x2, 0x3, 0x4, 0x5, 0x6])")
        self.assertEqual(repr(om[7]),
                         "MemObject(0x7, str, 80 bytes, 0 refs, 'abcdefghijklmnopq...)")
        self.assertEqual(repr(om[8]),
                         "MemObject(0x8, int, 28 bytes, 0 refs, 1 referrers [0x9], 12)")
        om[9].compute_total_size()
        self.assertEqual(repr(om[9]),
                         "MemObject(0x9, tuple, 40 bytes, 1 refs [0x8], 68B)")


def seed_dump():
    """Lines whose summary is the seed's: 17916 objects, 96 types,
    1539583 bytes; dict, str, type and code lead with the seed's rows."""
    lines = []
    addr = [100]

    def new():
        addr[0] += 16
        return addr[0]

    def spread(total, count):
        return [total // count + (1 if i < total % count else 0)
                for i in range(count)]

    strs = []
    for size in [4858] + spread(414639 - 4858, 7137):
        a = new()
        strs.append(a)
        lines.append({"address": a, "type": "str", "size": size, "len": 1,
                      "value": "s", "refs": []})
    # dicts: the biggest is the seed's 29351984 with 1578 refs and one
    # referrer, 26683840 (another dict).
    lines.append({"address": 29351984, "type": "dict", "size": 49292,
                  "len": 789, "refs": strs[:1578]})
    lines.append({"address": 26683840, "type": "dict", "size": 1000,
                  "len": 1, "refs": [strs[0], 29351984]})
    for size in spread(546460 - 49292 - 1000, 699):
        lines.append({"address": new(), "type": "dict", "size": size,
                      "len": 0, "refs": []})
    for _ in range(208):
        lines.append({"address": new(), "type": "type", "size": 452,
                      "name": "T", "refs": []})
    for _ in range(1371):
        lines.append({"address": new(), "type": "code", "size": 68,
                      "name": "f", "refs": []})
    # 92 more types sharing 8498 objects and 391240 bytes.
    counts = spread(8498, 92)
    sizes = spread(391240, 92)
    for t in range(92):
        tname = "function" if t == 0 else "type%02d" % t
        for k, size in enumerate(spread(sizes[t], counts[t])):
            if t == 0 and k == 0:
                lines.append({"address": 29337264, "type": "function",
                              "size": 60, "name": "format_string",
                              "refs": strs[:6]})
                continue
            lines.append({"address": new(), "type": tname, "size": size,
                          "refs": []})
    # Keep function's total exact: its first object replaced one of size
    # sizes[0] // counts[0] (+1); put the difference on a second one.
    first = spread(sizes[0], counts[0])[0]
    for d in lines:
        if d["type"] == "function" and d["address"] != 29337264:
            d["size"] += first - 60
            break
    return [json.dumps(d) for d in lines]


class TestSeedSession(unittest.TestCase):
    """The seed's session: load, summarize, om[...], compute_referrers."""

    def test_session(self):
        om = loader.load(seed_dump(), show_prog=False)
        s = om.summarize()
        text = repr(s)
        rows = text.split("\n")
        self.assertEqual(rows[:6], [
            "Total 17916 objects, 96 types, Total size = 1.5MiB (1539583 bytes)",
            " Index   Count   %      Size   % Cum     Max Kind",
            "     0     701   3    546460  35  35   49292 dict",
            "     1    7138  39    414639  26  62    4858 str",
            "     2     208   1     94016   6  68     452 type",
            "     3    1371   7     93228   6  74      68 code",
        ])
        self.assertEqual(len(rows), 2 + 20 + 1)
        self.assertEqual(rows[-1], "...")
        for row in rows[2:22]:
            self.assertRegex(row, r"^[ \d]{6}[ \d]{8}[ \d]{4}[ \d]{10}[ \d]{4}"
                                  r"[ \d]{4}[ \d]{8} \S+$")
        self.assertEqual(s.total_count, 17916)
        self.assertEqual(s.total_size, 1539583)
        self.assertEqual(len(s.type_summaries), 96)
        self.assertEqual(s.summaries[0].type_str, "dict")
        self.assertEqual(s.summaries[0].max_address, 29351984)

        om.compute_referrers()
        big = om[s.summaries[0].max_address]
        refs = ", ".join(hex(a) for a in big.children[:10])
        self.assertEqual(
            repr(big),
            "MemObject(0x1bfe030, dict, 49292 bytes, 1578 refs [%s, ...], "
            "1 referrers [0x19729c0])" % refs)
        self.assertTrue(repr(om[29337264]).startswith(
            "MemObject(0x1bfa6b0, function, format_string, 60 bytes, 6 refs"))
        self.assertEqual(big.p[0].address, 26683840)

        by_count = s.by_count()
        self.assertEqual(by_count.summaries[0].type_str, "str")
        self.assertEqual(repr(by_count).split("\n")[2],
                         "     0    7138  39    414639  26  26    4858 str")
        self.assertEqual(s.by_size().summaries[0].type_str, "dict")

    def test_short_table(self):
        om = loader.load(fixture("graph.json"), show_prog=False)
        self.assertEqual(repr(om.summarize()).split("\n"), [
            "Total 8 objects, 5 types, Total size = 0.0MiB (528 bytes)",
            " Index   Count   %      Size   % Cum     Max Kind",
            "     0       1  12       200  37  37     200 dict",
            "     1       2  25       160  30  68     100 list",
            "     2       3  37        90  17  85      40 str",
            "     3       1  12        50   9  94      50 tuple",
            "     4       1  12        28   5 100      28 int",
        ])

    def test_empty(self):
        om = loader.load([], show_prog=False)
        self.assertEqual(len(om), 0)
        self.assertEqual(repr(om.summarize()).split("\n"), [
            "Total 0 objects, 0 types, Total size = 0.0MiB (0 bytes)",
            " Index   Count   %      Size   % Cum     Max Kind",
        ])


class TestCollapse(unittest.TestCase):

    def test_collapse(self):
        om = loader.load(fixture("instances.json"), show_prog=False,
                         collapse=False)
        self.assertEqual(len(om), 15)
        self.assertEqual(om.collapse_instance_dicts(), 2)
        om.compute_referrers()
        self.assertEqual(len(om), 13)
        self.assertNotIn(300, om)
        self.assertNotIn(950, om)
        buf = om[200]
        self.assertEqual(buf.children, [310, 320, 330, 340, 400])
        self.assertEqual(buf.size, 64 + 1000)
        self.assertEqual(buf.refs_as_dict(), {"_lines": om[320], "_pos": 3})
        # The referred objects name the instance as their referrer.
        self.assertEqual(om[320].parents, [200, 500])
        # Already collapsed (3.11+ inline values): unchanged.
        self.assertEqual(om[500].children, [310, 320, 330, 340, 400])
        self.assertEqual(om[500].size, 312)
        # A dict shared by two instances is not theirs to take.
        self.assertIn(700, om)
        self.assertEqual(om[600].children, [700, 800])
        # A class not in the dump (dump_all_referenced): a dangling ref.
        self.assertEqual(om[900].children, [123456])
        self.assertEqual(om[900].size, 48 + 232)
        s = om.summarize()
        self.assertEqual(s.summaries[0].type_str, "list")
        self.assertEqual(s.type_summaries["ReadLineTextBuffer"].total_size,
                         1064 + 312)
        self.assertNotIn("dict", [t.type_str for t in s.summaries[:2]])
        self.assertEqual(s.total_size, sum(
            json.loads(l)["size"]
            for l in read_fixture("instances.json").decode().splitlines()))
        # Addresses still resolve after the compaction.
        for a in (100, 200, 310, 320, 330, 340, 400, 500, 600, 650, 700,
                  800, 900):
            self.assertEqual(om[a].address, a)
        self.assertEqual(om.ndangling, 1)
        # Twice: nothing more to fold.
        self.assertEqual(om.collapse_instance_dicts(), 0)

    def test_load_collapses(self):
        om = loader.load(fixture("instances.json"), show_prog=False)
        self.assertEqual(len(om), 13)
        self.assertEqual(om[310].parents, [200, 500])
        self.assertIn("referrers", repr(om[310]))


if __name__ == "__main__":
    unittest.main()
