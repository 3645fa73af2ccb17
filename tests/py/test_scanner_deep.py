"""No recursion: 10**6-deep structures dump without blowing the C stack.

Each case runs in a child interpreter, so a stack overflow shows up as a
failed test (signal and faulthandler output) instead of killing the suite.
"""

import unittest

import support

PRELUDE = r'''
import array, gc, os, sys, tempfile
import meliae.scanner as scanner
import support

N = 10 ** 6
tmp = tempfile.TemporaryDirectory(prefix="meliae-test-")

def fail(msg):
    sys.stderr.write("CHECK FAILED: %s\n" % msg)
    sys.exit(1)

def check(cond, msg):
    if not cond:
        fail(msg)

def dump_bytes(func, *args):
    path = os.path.join(tmp.name, "dump.json")
    func(path, *args)
    with open(path, "rb") as f:
        data = f.read()
    os.unlink(path)
    return data

def all_objects_addresses():
    addrs = support.dump_addresses(dump_bytes(scanner.dump_all_objects))
    unique = set(addrs)
    check(len(addrs) == len(unique), "dump_all_objects has duplicates")
    return unique
'''

SAMPLED = r'''
def sampled_lines(data, every=997):
    # every 997th line parsed in full (parsing a million lines is slow)
    lines = data.split(b"\n")
    return support.parse_dump(b"\n".join(lines[::every]) + b"\n")
'''

NESTED_LIST = PRELUDE + SAMPLED + r'''
# ids are kept in arrays, not lists: a million int objects would double
# the heap that dump_all_objects has to write
head = []
ids = array.array("Q", [id(head)])        # innermost first
for _ in range(N - 1):
    head = [head]
    ids.append(id(head))

data = dump_bytes(scanner.dump_all_referenced, head)
addrs = support.dump_addresses(data)
check(len(addrs) == N, "dump_all_referenced: %d lines, want %d"
      % (len(addrs), N))
check(addrs[0] == ids[-1], "first line is not the head")
check(set(addrs) == set(ids), "dump_all_referenced: not the nested lists")
inner_of = dict(zip(ids[1:], ids))
inner_of[ids[0]] = None
for d in sampled_lines(data):
    inner = inner_of[d["address"]]
    check(d.get("refs") == ([inner] if inner else []),
          "list %r: want refs [%r]" % (d, inner))
del data, addrs, inner_of

want = (N, sys.getsizeof([]) + (N - 1) * sys.getsizeof([[]]))
got = scanner.get_recursive_size(head)
check(tuple(got) == want, "get_recursive_size %r, want %r" % (got, want))

# A chain of untracked tuples below one tracked list: only the walk of
# untracked objects finds them.
t = ("leaf",)
chain = [t]
for _ in range(N // 4):
    t = (t,)
    chain.append(t)
holder = [t]
gc.collect()      # untracks them all: `chain` lists them inner first
check(not any(map(gc.is_tracked, chain)),
      "precondition: the tuple chain is tracked")
tuple_ids = array.array("Q", map(id, chain))
del chain         # now only the outermost tuple is held, by `holder`

addrs = all_objects_addresses()
missing = sum(1 for a in ids if a not in addrs)
check(missing == 0, "dump_all_objects lacks %d of the nested lists" % missing)
missing = sum(1 for a in tuple_ids if a not in addrs)
check(missing == 0, "dump_all_objects lacks %d of the nested tuples" % missing)
print("ok")
'''

LINKED_LIST = PRELUDE + SAMPLED + r'''
# No methods: the class's closure stays small (no function globals).
Node = type("Node", (), {})
head = None
ids = array.array("Q")
for _ in range(N):
    node = Node()
    node.next = head
    head = node
    ids.append(id(node))
node_size = sys.getsizeof(node)
del node

data = dump_bytes(scanner.dump_all_referenced, head)
addrs = support.dump_addresses(data)
check(addrs[0] == ids[-1], "first line is not the head")
per_node = 1 if sys.version_info >= (3, 11) else 2     # + its __dict__
check(N <= len(addrs) < per_node * N + 5000,
      "dump_all_referenced: %d lines for %d nodes" % (len(addrs), N))
check(len(set(addrs)) == len(addrs), "dump_all_referenced has duplicates")
check(set(ids) <= set(addrs), "nodes missing from dump_all_referenced")
next_of = dict(zip(ids[1:], ids))
for d in sampled_lines(data):
    nxt = next_of.get(d["address"])
    if nxt is not None:
        # (the values arrays of the first nodes may be larger: 3.12+
        # sizes them from the class's shared keys at creation time)
        check(d["size"] >= node_size, "node size %r < %d" % (d, node_size))
        if sys.version_info >= (3, 11):
            check(nxt in d.get("refs", ()), "node %r lacks next %d" % (d, nxt))
count, total = scanner.get_recursive_size(head)
check(count == len(addrs), "get_recursive_size count %d != %d lines"
      % (count, len(addrs)))
check(total >= N * node_size, "get_recursive_size total %d < %d nodes"
      % (total, N))
del data, addrs, next_of

addrs = all_objects_addresses()
missing = sum(1 for a in ids if a not in addrs)
check(missing == 0, "dump_all_objects lacks %d of the nodes" % missing)
print("ok")
'''


class DeepStructuresTest(unittest.TestCase):

    def run_case(self, code):
        proc = support.run_child(code, timeout=300)
        self.assertEqual(proc.returncode, 0, support.describe_child(proc))
        self.assertEqual(proc.stdout.strip(), b"ok")

    def test_million_deep_nested_list_dumps_without_recursion(self):
        self.run_case(NESTED_LIST)

    def test_million_node_linked_list_dumps_without_recursion(self):
        self.run_case(LINKED_LIST)


if __name__ == "__main__":
    unittest.main()
