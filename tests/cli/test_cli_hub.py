"""referrers (and report, which uses its search) on an object of any
fan-in: a hub held by a module global that a million other objects also
refer to.  The search used to stop after 200,000 objects and answer "no
chain to a root ... kept alive only by a cycle"; the chain must be found,
exactly, whatever the fan-in (issue 18, point 5).

The heap is written by hand as a dump file (docs/dump-format.md):

    module M  ->  dict D (its __dict__)  ->  HUB  <-  1,000,000 listeners
    HUB -> list L -> every listener          (a cycle: no root that way)

D's object number is the largest, so that it is the hub's last referrer
in the order the search meets them.
"""

import json
import os
import unittest

from cli_support import CLI, TmpTestCase, run_cli

N = 1000000
BASE = 1 << 40
HUB, LIST, DICT, MODULE = BASE - 4, BASE - 3, BASE - 2, BASE - 1


def write_dump(path, n):
    with open(path, "w") as f:
        f.write('{"address": %d, "type": "Reactor", "size": 48, "refs": [%d]}\n'
                % (HUB, LIST))
        f.write('{"address": %d, "type": "list", "size": %d, "len": %d, '
                '"refs": [%s]}\n' % (LIST, 56 + 8 * n, n,
                                     ", ".join(str(BASE + i) for i in range(n))))
        line = '{"address": %d, "type": "Listener", "size": 48, "refs": [' \
            + str(HUB) + ']}\n'
        for i in range(n):
            f.write(line % (BASE + i))
        f.write('{"address": %d, "type": "dict", "size": 232, "len": 1, '
                '"refs": [%d, %d]}\n' % (DICT, BASE + n + 7, HUB))
        f.write('{"address": %d, "type": "str", "size": 53, "len": 3, '
                '"value": "BUS", "refs": []}\n' % (BASE + n + 7))
        f.write('{"address": %d, "type": "module", "size": 72, "name": '
                '"__main__", "refs": [%d]}\n' % (MODULE, DICT))


@unittest.skipUnless(CLI, "MELIAE_CLI unset")
class HubTest(TmpTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dump = os.path.join(cls.tmp, "hub.json")
        write_dump(cls.dump, N)

    def referrers(self, addr, *extra):
        r = run_cli(["--dump", self.dump, "--json", "referrers", hex(addr)]
                    + list(extra), timeout=600)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def test_a_hub_of_a_million_referrers_is_reached_from_its_module(self):
        doc = self.referrers(HUB)
        self.assertFalse(doc["truncated"])
        chains = [[o["address"] for o in ch] for ch in doc["chains"]]
        self.assertIn([HUB, DICT, MODULE], chains)
        # and in the program's words
        i = chains.index([HUB, DICT, MODULE])
        self.assertEqual(doc["paths"][i]["text"], "__main__.BUS")
        # every referrer of the hub was looked at, and no more than that
        self.assertGreaterEqual(doc["visited"], N + 3)

    def test_a_listener_is_reached_through_the_hub(self):
        doc = self.referrers(BASE + 12345, "--chains", "1")
        (chain,) = [[o["address"] for o in ch] for ch in doc["chains"]]
        self.assertEqual(chain, [BASE + 12345, LIST, HUB, DICT, MODULE])
        self.assertEqual(doc["paths"][0]["text"], "__main__.BUS<list>[12345]")

    def test_a_depth_too_short_says_it_was_cut(self):
        doc = self.referrers(BASE + 1, "--depth", "2")
        self.assertEqual(doc["chains"], [])
        self.assertTrue(doc["truncated"])


if __name__ == "__main__":
    unittest.main()
