"""collapse_instance_dicts() on dumps of this process's own objects.

An instance whose __dict__ is a dict object takes that dict's refs and
size; a dict that is an attribute *value* (of an instance with inline
values, of a __slots__ instance, an item of a list subclass) is not the
instance's __dict__ and must stay.  The cases marked expectedFailure are
known false positives of common/collapse.c, kept here until it changes.
"""

import os
import sys
import tempfile
import unittest

from meliae import loader, scanner

INLINE_VALUES = sys.version_info >= (3, 11)


def dump(obj):
    with tempfile.TemporaryDirectory(prefix="meliae-test-") as d:
        path = os.path.join(d, "dump.json")
        scanner.dump_all_referenced(path, obj)
        return loader.load(path, show_prog=False, collapse=False)


class Plain(object):
    def __init__(self):
        self.attr = {"k": 1}


class Slotted(object):
    __slots__ = ("attr",)


class ListSub(list):
    pass


class TestCollapseRealDumps(unittest.TestCase):

    def test_materialised_dict_folds(self):
        o = Plain()
        d = o.__dict__          # materialised on every version
        om = dump(o)
        self.assertIn(id(d), om)
        size = om[id(o)].size + om[id(d)].size
        self.assertEqual(om.collapse_instance_dicts(), 1)
        self.assertNotIn(id(d), om)
        self.assertIn(id(o.attr), om)
        self.assertEqual(om[id(o)].size, size)
        self.assertEqual(om.refs_as_dict(om[id(o)])["attr"],
                         om[id(o.attr)])
        om.compute_referrers()
        self.assertEqual(om[id(o.attr)].parents, [id(o)])

    def check_attr_dict_stays(self, o, attr):
        om = dump(o)
        om.collapse_instance_dicts()
        self.assertIn(id(attr), om)
        self.assertIn(id(attr), om[id(o)].children
                      + [c for x in om[id(o)].c for c in x.children])

    # 3.11+: an instance whose __dict__ was never asked for is dumped as
    # [name, value, ..., type]; a dict value held only there is taken for
    # its __dict__ and folded.  Before 3.11 the instance has a real
    # __dict__, which folds, and the attribute dict stays.
    def test_inline_values_attribute_dict_stays(self):
        o = Plain()
        self.check_attr_dict_stays(o, o.attr)

    @unittest.expectedFailure
    def test_slots_attribute_dict_stays(self):
        o = Slotted()
        o.attr = {"k": 2}
        self.check_attr_dict_stays(o, o.attr)

    def test_list_subclass_item_dict_stays(self):
        o = ListSub([{"k": 3}])
        self.check_attr_dict_stays(o, o[0])


if __name__ == "__main__":
    unittest.main()
