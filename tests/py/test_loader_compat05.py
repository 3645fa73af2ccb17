"""meliae.loader as meliae 0.5 users know it (issue 20).

Each case is a behaviour of 0.5's documented API that a user switching to
this loader relies on, on hand-made dumps with known answers.  Where the
loader differs from 0.5 on purpose, docs/meliae05.md says so and the test
checks our side.
"""

import contextlib
import io
import re
import unittest

from meliae import loader

# A class, an instance with its private __dict__ (collapse folds it), a
# str and an int, and a list after them that refers to the instance once
# and to the int twice.
INSTANCE = [
    '{"address": 1, "type": "type", "size": 400, "name": "C", "refs": []}',
    '{"address": 2, "type": "dict", "size": 104, "len": 1, "refs": [10, 11]}',
    '{"address": 3, "type": "C", "size": 48, "refs": [2, 1]}',
    '{"address": 10, "type": "str", "size": 50, "len": 1, "value": "a", "refs": []}',
    '{"address": 11, "type": "int", "size": 28, "value": 7, "refs": []}',
    '{"address": 12, "type": "list", "size": 72, "len": 3, "refs": [3, 11, 11]}',
]


def load(lines, **kw):
    kw.setdefault("show_prog", False)
    return loader.load(lines, **kw)


class _CollapseSpy(object):
    """A Graph that notes the arguments of collapse_instance_dicts."""

    def __init__(self, g):
        self._g = g
        self.calls = []

    def collapse_instance_dicts(self, *args):
        self.calls.append(args)
        return self._g.collapse_instance_dicts(*args)

    def __getattr__(self, name):
        return getattr(self._g, name)


class HandlesSurviveCollapse(unittest.TestCase):
    """A MemObject taken before collapse_instance_dicts() is the same
    object after it (the collapse renumbers the arrays)."""

    def setUp(self):
        self.om = load(INSTANCE, collapse=False)

    def test_a_handle_after_the_folded_dict_keeps_its_object(self):
        lst = self.om[12]
        inst = self.om[3]
        self.assertEqual(self.om.collapse_instance_dicts(), 1)
        self.assertEqual(lst.address, 12)
        self.assertEqual(lst.type_str, "list")
        self.assertEqual(lst.children, [3, 11, 11])
        self.assertEqual(lst.size, 72)
        self.assertEqual(lst, self.om[12])
        self.assertEqual(hash(lst), hash(self.om[12]))
        self.assertEqual([o.address for o in lst.c], [3, 11, 11])

    def test_a_handle_on_the_instance_sees_the_collapse(self):
        inst = self.om[3]
        self.om.collapse_instance_dicts()
        self.assertEqual(inst.size, 48 + 104)
        self.assertEqual(inst.children, [10, 11, 1])
        self.assertEqual(self.om.refs_as_dict(inst), {"a": 7})
        self.assertEqual(inst.refs_as_dict(), {"a": 7})

    def test_handles_from_lists_and_referrers_survive(self):
        self.om.compute_referrers()
        from_p = self.om[11].p          # the dict and the list
        from_values = self.om.objs.values()
        self.om.collapse_instance_dicts()
        self.om.compute_referrers()
        self.assertEqual(from_p[1].address, 12)
        self.assertEqual(from_p[1].parents, [])
        with self.assertRaises(KeyError):
            from_p[0].children                  # the folded dict
        self.assertIn("folded", repr(from_p[0]))
        self.assertEqual(from_values[2].address, 3)
        self.assertEqual([o.address for o in from_values[3:]], [10, 11, 12])
        with self.assertRaises(KeyError):
            from_values[1].address              # the folded dict
        self.assertEqual(self.om[11].parents, [3, 12])

    def test_a_handle_on_a_folded_dict_says_where_it_went(self):
        d = self.om[2]
        self.om.collapse_instance_dicts()
        with self.assertRaises(KeyError) as cm:
            d.size
        self.assertIn("collapse_instance_dicts", str(cm.exception))
        with self.assertRaises(KeyError):
            d.address                           # gone with the dict
        self.assertNotEqual(d, self.om[3])
        self.assertNotIn(d, self.om[3].c)
        self.assertEqual(d, d)

    def test_the_renumbering_lives_as_long_as_the_handles(self):
        # no handle: the collapse asks for no table (load() collapses
        # before there is any)
        om = load(INSTANCE, collapse=False)
        om._g = spy = _CollapseSpy(om._g)
        self.assertEqual(om.collapse_instance_dicts(), 1)
        self.assertEqual(spy.calls, [()])
        self.assertIsNone(om._gen.renumbered_by)
        # a handle: a table as long as the dump was, while it lives
        om = load(INSTANCE, collapse=False)
        lst = om[12]
        old = lst._gen
        om.collapse_instance_dicts()
        self.assertIsNot(om._gen, old)
        self.assertEqual(len(old.renumbered_by), 6)
        self.assertEqual(lst.address, 12)
        self.assertIs(lst._gen, om._gen)        # moved on, once

    def test_handles_across_two_renumberings(self):
        # The module's dict is held by f too; once f lets go of it
        # (remove_expensive_references), a second collapse folds it.
        lines = INSTANCE + [
            '{"address": 20, "type": "module", "size": 72, "name": "m", "refs": [21]}',
            '{"address": 21, "type": "dict", "size": 100, "len": 1, "refs": [10, 22]}',
            '{"address": 22, "type": "function", "size": 136, "name": "f", "refs": [23, 21]}',
            '{"address": 23, "type": "code", "size": 120, "name": "f", "refs": []}',
            '{"address": 24, "type": "list", "size": 64, "len": 1, "refs": [23]}',
        ]
        om = load(lines, collapse=False)
        last, func, mdict = om[24], om[22], om[21]
        self.assertEqual(om.collapse_instance_dicts(), 1)   # C's dict
        om.remove_expensive_references()
        self.assertEqual(om.collapse_instance_dicts(), 1)   # m's dict
        self.assertEqual(last.address, 24)
        self.assertEqual(func.children, [23])
        self.assertEqual(om.refs_as_dict(20), {"a": func})
        with self.assertRaises(KeyError):
            mdict.size

    def test_the_readme_tour_order(self):
        # big is taken before the collapse and used after it.
        s = self.om.summarize()
        self.om.compute_referrers()
        big = self.om[s.summaries[0].max_address]
        self.assertEqual(big.address, 1)
        self.om.collapse_instance_dicts()
        self.om.compute_retained()
        self.assertEqual(big.type_str, "type")
        self.assertEqual(self.om.dominators(big)[0], big)
        self.assertTrue(repr(big).startswith("MemObject(0x1, type, C,"))


class ParentsOnce(unittest.TestCase):
    """0.5 lists each parent once, however many refs it holds."""

    def test_a_referrer_holding_two_refs_is_listed_once(self):
        om = load(INSTANCE, collapse=False)
        om.compute_referrers()
        self.assertEqual(om[11].parents, [2, 12])
        self.assertEqual(om[11].num_parents, 2)
        self.assertEqual([o.address for o in om[11].p], [2, 12])
        self.assertIn("2 referrers [0x2, 0xc]", repr(om[11]))

    def test_after_collapse_too(self):
        om = load(INSTANCE)             # collapses, then the referrers
        self.assertEqual(om[11].parents, [3, 12])
        self.assertEqual(om[3].parents, [12])


# A module whose __dict__ only it holds, and one whose dict a function
# holds as __globals__ too.
MODULES = [
    '{"address": 20, "type": "module", "size": 72, "name": "alone", "refs": [21]}',
    '{"address": 21, "type": "dict", "size": 232, "len": 2, "refs": [30, 31, 32, 33]}',
    '{"address": 30, "type": "str", "size": 57, "len": 8, "value": "__name__", "refs": []}',
    '{"address": 31, "type": "str", "size": 54, "len": 5, "value": "alone", "refs": []}',
    '{"address": 32, "type": "str", "size": 50, "len": 1, "value": "x", "refs": []}',
    '{"address": 33, "type": "int", "size": 28, "value": 5, "refs": []}',
    '{"address": 40, "type": "module", "size": 72, "name": "busy", "refs": [41]}',
    '{"address": 41, "type": "dict", "size": 232, "len": 2, "refs": [30, 42, 43, 44]}',
    '{"address": 42, "type": "str", "size": 53, "len": 4, "value": "busy", "refs": []}',
    '{"address": 43, "type": "str", "size": 50, "len": 1, "value": "f", "refs": []}',
    '{"address": 44, "type": "function", "size": 136, "name": "f", "refs": [45, 41, 42]}',
    '{"address": 45, "type": "code", "size": 120, "name": "f", "refs": []}',
]


class ModuleDicts(unittest.TestCase):

    def test_a_module_takes_the_dict_only_it_holds(self):
        om = load(MODULES)
        self.assertNotIn(21, om)
        mod = om[20]
        self.assertEqual(mod.size, 72 + 232)
        self.assertEqual(om.refs_as_dict(mod), {"__name__": "alone", "x": 5})

    def test_a_module_whose_functions_hold_its_dict_reads_as_it(self):
        om = load(MODULES)
        self.assertIn(41, om)                   # not folded: f holds it
        d = om.refs_as_dict(om[40])
        self.assertEqual(d["__name__"], "busy")
        self.assertEqual(d["f"], om[44])


class ZeroFiveSignatures(unittest.TestCase):

    def test_load_takes_using_json(self):
        for using_json in (None, True, False):
            with self.subTest(using_json=using_json):
                om = loader.load(INSTANCE, using_json, False)
                self.assertEqual(len(om), 5)
                om = loader.load(INSTANCE, using_json=using_json,
                                 show_prog=False, collapse=False)
                self.assertEqual(len(om), 6)

    def test_iter_recursive_refs_yields_self_first(self):
        # the list is last in the dump but first in its closure
        om = load(INSTANCE, collapse=False)
        got = [o.address for o in om[12].iter_recursive_refs()]
        self.assertEqual(got[0], 12)
        self.assertEqual(sorted(got), [1, 2, 3, 10, 11, 12])
        got = [o.address for o in om[12].iter_recursive_refs(excluding=[3])]
        self.assertEqual(got, [12, 11])
        self.assertEqual(list(om[12].iter_recursive_refs(excluding=[12])), [])


# What remove_expensive_references filters: refs to modules, types and
# frames, and a function's __globals__ and module name.
EXPENSIVE = MODULES + [
    '{"address": 50, "type": "type", "size": 400, "name": "T", "refs": []}',
    '{"address": 51, "type": "list", "size": 80, "len": 3, "refs": [40, 50, 32]}',
]


class RemoveExpensiveReferencesOverAStream(unittest.TestCase):
    """loader.remove_expensive_references(source): 0.5's filter over
    objects that are not loaded, e.g. to write a smaller dump."""

    def filtered(self, **kw):
        return list(loader.remove_expensive_references(
            lambda: loader.iter_objs(EXPENSIVE), **kw))

    def test_yields_every_object_with_the_refs_filtered(self):
        out = self.filtered()
        by_addr = {o.address: (changed, o) for changed, o in out}
        self.assertEqual(len(out), len(EXPENSIVE))
        self.assertEqual(by_addr[51][1].children, [32])
        self.assertTrue(by_addr[51][0])
        self.assertEqual(by_addr[44][1].children, [45])   # code only
        self.assertTrue(by_addr[44][0])
        self.assertEqual(by_addr[21][1].children, [30, 31, 32, 33])
        self.assertFalse(by_addr[21][0])
        # the module keeps its own refs, as in 0.5
        self.assertEqual(by_addr[40][1].children, [41])

    def test_the_lines_reload_as_the_filtered_graph(self):
        lines = [o.to_json() for _, o in self.filtered()]
        om = load(lines, collapse=False)
        om.compute_referrers()
        self.assertEqual(om[50].parents, [])
        self.assertEqual(om[32].parents, [21, 51])

    def test_show_progress_reports_on_stderr(self):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            self.filtered(show_progress=True)
        self.assertRegex(err.getvalue(), r"removed 4 expensive refs from "
                                         r"%d objs" % len(EXPENSIVE))

    def test_handles_of_a_loaded_dump_are_copied_not_changed(self):
        om = load(EXPENSIVE, collapse=False)
        out = list(loader.remove_expensive_references(om.objs.values))
        self.assertEqual(dict((o.address, o.children) for _, o in out)[51],
                         [32])
        self.assertEqual(om[51].children, [40, 50, 32])


class RetainedSummaryTable(unittest.TestCase):
    """summarize(by="retained") prints a table whose columns stay apart
    and that has no cumulative column (retained sizes overlap)."""

    BIG = [
        # 12 GB of bytes held by one dict in one module
        '{"address": 1, "type": "module", "size": 72, "name": "m", "refs": [2]}',
        '{"address": 2, "type": "dict", "size": 232, "len": 3, "refs": [3, 4, 5, 6, 7, 8]}',
        '{"address": 3, "type": "str", "size": 50, "len": 1, "value": "a", "refs": []}',
        '{"address": 4, "type": "bytes", "size": 12000000000, "len": 3, "value": "abc", "refs": []}',
        '{"address": 5, "type": "str", "size": 50, "len": 1, "value": "b", "refs": []}',
        '{"address": 6, "type": "bytes", "size": 10000000000, "len": 3, "value": "abd", "refs": []}',
        '{"address": 7, "type": "str", "size": 50, "len": 1, "value": "c", "refs": []}',
        '{"address": 8, "type": "function", "size": 136, "name": "f", "refs": [2]}',
    ]

    def rows(self, text):
        lines = text.splitlines()
        self.assertTrue(lines[0].startswith("Total "))
        return lines[1], [ln.split() for ln in lines[2:]]

    def test_retained_columns_stay_apart(self):
        om = load(self.BIG)
        header, rows = self.rows(repr(om.summarize(by="retained")))
        self.assertEqual(header.split(),
                         ["Index", "Count", "%", "Retained", "%", "Max", "Kind"])
        self.assertNotIn("Cum", header)
        for r in rows:
            self.assertEqual(len(r), 7, r)
            self.assertTrue(all(re.fullmatch(r"\d+", f) for f in r[:6]), r)
            self.assertLessEqual(int(r[4]), 100)
        first = dict((r[6], r) for r in rows)
        self.assertEqual(int(first["bytes"][3]), 22000000000)
        # the module holds the dict, which holds everything
        self.assertEqual(int(first["module"][3]), om.total_heap_size)
        self.assertEqual(int(first["module"][4]), 100)

    def test_plain_table_widens_past_0_5_widths(self):
        om = load(self.BIG)
        header, rows = self.rows(repr(om.summarize()))
        self.assertEqual(header.split(),
                         ["Index", "Count", "%", "Size", "%", "Cum", "Max",
                          "Kind"])
        self.assertEqual(rows[0], ["0", "2", "25", "22000000000", "99",
                                   "99", "12000000000", "bytes"])

    def test_small_figures_keep_0_5_layout(self):
        om = load(INSTANCE)
        text = repr(om.summarize()).splitlines()
        self.assertEqual(text[1],
                         " Index   Count   %      Size   % Cum     Max Kind")
        self.assertEqual(text[2], "     0       1  20       400  56  56     400 type")


class Reprs(unittest.TestCase):
    """Addresses as meliae-cli shows them (type@0x7f3a5c2b1e80)."""

    def test_addresses_are_hex(self):
        lines = [
            '{"address": 140245010635328, "type": "list", "size": 72, "len": 2, '
            '"refs": [140245002432512, 9908832]}',
            '{"address": 140245002432512, "type": "str", "size": 50, "len": 1, '
            '"value": "a", "refs": []}',
        ]
        om = load(lines)
        self.assertEqual(
            repr(om[140245010635328]),
            "MemObject(0x7f8d560a5a40, list, 72 bytes, 2 refs "
            "[0x7f8d558d3000, 0x973260])")
        self.assertEqual(
            repr(om[140245002432512]),
            "MemObject(0x7f8d558d3000, str, 50 bytes, 0 refs, "
            "1 referrers [0x7f8d560a5a40], 'a')")

    def test_a_type_summary_names_its_largest_object_in_hex(self):
        om = load(INSTANCE)
        self.assertEqual(repr(om.summarize().type_summaries["type"]),
                         "type Total: 1 objects, 400 bytes, max 400 bytes "
                         "at 0x1")

    def test_total_size_reads_as_the_cli_prints_sizes(self):
        # meliae-cli: "900B", "1.2KiB" (0.5's repr: "0.9KiB")
        lines = [
            '{"address": 1, "type": "list", "size": 872, "len": 1, "refs": [2]}',
            '{"address": 2, "type": "int", "size": 28, "value": 1, "refs": []}',
            '{"address": 3, "type": "bytes", "size": 1229, "len": 1196, "refs": []}',
        ]
        om = load(lines)
        om[1].compute_total_size()
        om[3].compute_total_size()
        self.assertTrue(repr(om[1]).endswith(", 900B)"), repr(om[1]))
        self.assertTrue(repr(om[3]).endswith(", 1.2KiB)"), repr(om[3]))


if __name__ == "__main__":
    unittest.main()
