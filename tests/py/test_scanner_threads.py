"""Other threads mutating the heap while dumps run must not crash anything.

With a callable target, Python code runs between chunks, so other threads
get the GIL in the middle of a dump and free or resize what the walk has
seen.  Runs in a child interpreter: a use-after-free shows up as a failed
test with the signal and faulthandler output.
"""

import unittest

import support

MUTATORS = r'''
import gc, os, sys, tempfile, threading, time
import meliae.scanner as scanner
import support

sys.setswitchinterval(1e-4)
stop = threading.Event()
shared_list = []
shared_dict = {}
shared_set = set()

def pause(i):
    if i % 64 == 0:
        time.sleep(0.0002)     # leave the main thread some GIL time

def mutate_list():
    i = 0
    while not stop.is_set():
        shared_list.append(["item-%d" % i, object()])
        if len(shared_list) > 500:
            del shared_list[:250]
        i += 1
        pause(i)

def mutate_dict():
    i = 0
    while not stop.is_set():
        shared_dict["k%d" % i] = [i, "v-%d" % i]
        if len(shared_dict) > 500:
            for k in list(shared_dict)[:250]:
                del shared_dict[k]
        shared_set.add("s%d" % (i % 1000))
        shared_set.discard("s%d" % ((i + 500) % 1000))
        i += 1
        pause(i)

def churn_cycles():
    # Garbage cycles, collected by full collections while dumps run (the
    # heap stays bounded even if the scanner pauses automatic collection).
    i = 0
    while not stop.is_set():
        a = [[] for _ in range(20)]
        for x in a:
            x.append(a)
        del a
        i += 1
        if i % 200 == 0:
            gc.collect()
        pause(i)

threads = [threading.Thread(target=f) for f in (mutate_list, mutate_dict,
                                                churn_cycles)]
for t in threads:
    t.start()
'''

DUMPS_WHILE_MUTATING = MUTATORS + r'''
tmp = tempfile.TemporaryDirectory(prefix="meliae-test-")
path = os.path.join(tmp.name, "dump.json")
try:
    for round_ in range(3):
        chunks = []
        def slow_sink(chunk):
            chunks.append(chunk)
            time.sleep(0)          # let the mutators run mid-dump
        scanner.dump_all_objects(slow_sink)
        support.dump_addresses(b"".join(chunks))
        chunks = []
        scanner.dump_gc_objects(slow_sink)
        support.dump_addresses(b"".join(chunks))
        chunks = []
        scanner.dump_all_referenced(slow_sink, [shared_list, shared_dict,
                                                shared_set])
        support.parse_dump(b"".join(chunks))
        for _ in range(3):
            scanner.dump_all_objects(path)
            with open(path, "rb") as f:
                support.dump_addresses(f.read())
        for _ in range(50):
            scanner.get_recursive_size(shared_dict)
            scanner.get_referents(shared_list)
            scanner.size_of(shared_set)
finally:
    stop.set()
    for t in threads:
        t.join(30)
print("ok")
'''


class ThreadsTest(unittest.TestCase):

    def test_dumps_while_other_threads_mutate_containers_do_not_crash(self):
        proc = support.run_child(DUMPS_WHILE_MUTATING, timeout=300)
        self.assertEqual(proc.returncode, 0, support.describe_child(proc))
        self.assertEqual(proc.stdout.strip(), b"ok")


if __name__ == "__main__":
    unittest.main()
