#!/usr/bin/python3
"""Cross-check meliae's dump against the live heap (sanity check for bench).

Builds the bench workload, computes the reference closure (gc.get_objects()
+ gc.get_referents, dict keys included) in-process, calls the scanner, then
parses its output while every object is still alive and reports:

* duplicate addresses (dump_all_objects must emit each object once),
* refs pointing to addresses that are not in the dump,
* live objects missing from the dump, and dumped addresses we do not know,
* type / size (vs sys.getsizeof) / len / value / refs mismatches, grouped.

Usage:
  PYTHONPATH=build/scanner /usr/bin/python3 bench/check_dump.py [--n N] [--gc]
"""

import argparse
import array
import bisect
import collections
import gc
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def closure():
    objs = gc.get_objects()
    seen = set(map(id, objs))
    seen.add(id(objs))
    i = 0
    while i < len(objs):
        o = objs[i]
        i += 1
        refs = gc.get_referents(o)
        if isinstance(o, dict):
            refs.extend(o)
        for r in refs:
            if id(r) not in seen:
                seen.add(id(r))
                objs.append(r)
    return objs


def expected_value(o):
    t = type(o)
    if t is str:
        return o[:100]
    if t is bytes:
        return o[:100]
    if t in (int, float, bool) or o is None:
        return o
    return KeyError  # sentinel: no value expected


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=lambda s: int(float(s)), default=100_000)
    ap.add_argument("--gc", action="store_true",
                    help="check dump_gc_objects instead of dump_all_objects")
    ap.add_argument("--examples", type=int, default=3)
    args = ap.parse_args()

    import workload
    import meliae.scanner as scanner

    root = workload.build(args.n)
    gc.collect()
    gc.disable()
    # Keep the id index out of the heap: a dict/set of ids would add ~1M int
    # objects to what the scanner dumps.  array('Q') holds raw integers.
    live = closure()
    live.sort(key=id)
    ids = array.array("Q", map(id, live))
    is_tracked = bytearray(map(gc.is_tracked, live))

    def lookup(a):
        i = bisect.bisect_left(ids, a)
        if i < len(ids) and ids[i] == a:
            return live[i]
        return None

    fd, path = tempfile.mkstemp(prefix="meliae-check-", suffix=".json")
    os.close(fd)
    try:
        (scanner.dump_gc_objects if args.gc else scanner.dump_all_objects)(path)
        problems = collections.defaultdict(list)
        counts = collections.Counter()
        addrs = collections.Counter()
        allrefs = set()
        keyorders = collections.Counter()
        nlines = 0
        with open(path, encoding="utf-8") as f:
            for line in f:
                nlines += 1
                line = line.rstrip("\n")
                d = json.loads(line)
                keyorders[tuple(d)] += 1
                a = d["address"]
                addrs[a] += 1
                refs = d.get("refs", [])
                allrefs.update(refs)
                o = lookup(a)
                if o is None:
                    counts["unknown address"] += 1
                    problems["unknown address"].append(line[:160])
                    continue
                t = type(o)
                if d.get("type") != t.__name__:
                    key = "type %s -> %r" % (t.__name__, d.get("type"))
                    counts[key] += 1
                    problems[key].append(line[:160])
                if d.get("size") != sys.getsizeof(o):
                    key = "size %s" % t.__name__
                    counts[key] += 1
                    problems[key].append("%s getsizeof=%d" % (
                        line[:120], sys.getsizeof(o)))
                if t in (list, tuple, dict, set, frozenset, str, bytes,
                         bytearray) and d.get("len") != len(o):
                    key = "len %s" % t.__name__
                    counts[key] += 1
                    problems[key].append("%s len=%d" % (line[:120], len(o)))
                ev = expected_value(o)
                if ev is not KeyError:
                    got = d.get("value", KeyError)
                    if t is bytes and isinstance(got, str):
                        got = got.encode("latin-1", "replace")
                    if got != ev and not (ev != ev and got != got):
                        key = "value %s" % t.__name__
                        counts[key] += 1
                        problems[key].append(line[:160])
                if t is dict:
                    exp = [id(x) for kv in o.items() for x in kv]
                else:
                    exp = [id(x) for x in gc.get_referents(o)]
                    if isinstance(o, dict):
                        exp += [id(k) for k in o]
                if (refs != exp if t is dict
                        else collections.Counter(refs) != collections.Counter(exp)):
                    key = "refs %s" % t.__name__
                    counts[key] += 1
                    problems[key].append("%s expected %d refs, got %d" % (
                        line[:100], len(exp), len(refs)))
    finally:
        os.unlink(path)

    dups = {a: c for a, c in addrs.items() if c > 1}
    dangling = allrefs - set(addrs)
    missing = set(ids) - set(addrs)
    if args.gc:
        tracked = {a for a, t in zip(ids, is_tracked) if t}
        missing_tracked = tracked - set(addrs)
    print("mode: %s, n=%d" % ("dump_gc_objects" if args.gc
                               else "dump_all_objects", args.n))
    print("lines %d, distinct addresses %d, live closure %d (tracked %d)"
          % (nlines, len(addrs), len(ids), sum(is_tracked)))
    print("key orders:", dict(keyorders.most_common(8)))
    print("duplicate addresses: %d (extra lines %d)%s"
          % (len(dups), sum(dups.values()) - len(dups),
             "  <-- expected in gc mode" if args.gc else ""))
    if dups and not args.gc:
        for a in list(dups)[:args.examples]:
            o = lookup(a)
            print("   ", a, type(o).__name__, dups[a])
    print("refs to addresses not in dump: %d" % len(dangling))
    for a in list(dangling)[:args.examples]:
        o = lookup(a)
        print("   ", a, type(o).__name__ if o is not None else "?",
              repr(o)[:60] if o is not None else "")
    if args.gc:
        print("tracked objects missing: %d" % len(missing_tracked))
    else:
        print("live objects missing from dump: %d" % len(missing))
        byt = collections.Counter(type(lookup(a)).__name__ for a in missing)
        if byt:
            print("   ", dict(byt.most_common(10)))
    for key, c in counts.most_common():
        print("%-40s %d" % (key, c))
        for ex in problems[key][:args.examples]:
            print("    " + ex.rstrip())
    del root


if __name__ == "__main__":
    main()
