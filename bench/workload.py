"""Deterministic heap workload for the meliae scanner benchmark.

``build(n)`` returns a root object that keeps roughly ``n`` *new* live
objects reachable (GC-tracked and untracked alike), in a mix resembling an
application heap:

* ``Record`` instances whose ``__dict__`` is never materialised (3.11 inline
  values: the attribute values hang directly off the instance);
* ``DictRecord`` instances whose ``__dict__`` has been materialised;
* ``SlotRecord`` instances (``__slots__``, no ``__dict__`` at all);
* plain dicts with str keys (some keys shared/interned, some unique);
* lists, tuples, sets, frozensets;
* str of varied length (short names, sentences, a few long texts), ASCII,
  Latin-1, BMP (CJK) and astral (emoji) kinds;
* bytes of varied length, small (cached) and big ints, floats.

The builder is seeded (``random.Random(seed)``) and allocates nothing that it
does not keep, apart from a small word pool.

Run ``python3 bench/workload.py N`` to check how many objects ``build(N)``
really adds (measured with a gc.get_referents closure).
"""

import random

__all__ = ["build", "Record", "DictRecord", "SlotRecord"]


class Record:
    """Plain instance; its __dict__ is never touched, so on CPython 3.11 it
    stays as inline values (no dict object)."""

    def __init__(self, rid, name, score, tags, owner):
        self.rid = rid
        self.name = name
        self.score = score
        self.tags = tags
        self.owner = owner


class DictRecord(Record):
    """Same attributes, but ``vars(self)`` materialises a real dict."""

    def __init__(self, rid, name, score, tags, owner):
        Record.__init__(self, rid, name, score, tags, owner)
        vars(self)


class SlotRecord:
    __slots__ = ("key", "value", "weight", "raw")

    def __init__(self, key, value, weight, raw):
        self.key = key
        self.value = value
        self.weight = weight
        self.raw = raw


_WORDS = (
    "alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega "
    "apple banana cherry damson elder fig grape hazel iris juniper "
    "north south east west river mountain valley forest desert ocean "
    "café naïve résumé crème façade Zürich São Ελλάδα Москва "
    "東京 北京 서울 数据 内存 対象 "
    "🐍 🚀 🌍 ✨ 🎉"
).split()

# Objects per unit, by construction (used only to size the loop):
#   Record      : inst, name, rid, score, tags tuple, 2 tag str      = 7
#   DictRecord  : inst, dict, name, rid, score, tags tuple, 1 str    = 7
#   SlotRecord  : inst, key, value, weight, raw                      = 5
#   plain dict  : dict, id, label, payload, ratio, unique key        = 6
#   list        : list, 3 floats, 2 big ints, 1 str                  = 7
#   set         : set, 3 str                                         = 4
#   group tuple : tuple (record, dictrecord, slotrecord, dict)       = 1
#   text        : 1 str (sentence)                                   = 1
#   blob        : 1 bytes                                            = 1
# ------------------------------------------------------------------ 39
# plus occasional extras (index entries, long texts, frozensets) ~ 1
_PER_UNIT = 40


def build(n, seed=20240601):
    """Return a root dict holding about ``n`` new live objects."""
    rng = random.Random(seed)
    rand = rng.random
    randrange = rng.randrange
    words = _WORDS
    nwords = len(words)

    units = max(1, n // _PER_UNIT)
    owners = [SlotRecord("owner-%d" % k, float(k), 1000 + k, b"o" * (k % 7))
              for k in range(64)]

    records = []
    groups = []
    texts = []
    blobs = []
    tables = []
    index = {}
    rec_append = records.append
    grp_append = groups.append
    txt_append = texts.append
    blob_append = blobs.append
    tab_append = tables.append

    for i in range(units):
        w1 = words[randrange(nwords)]
        w2 = words[randrange(nwords)]
        big = 10_000_000_000 + i * 7919
        owner = owners[i & 63]

        rec = Record(big, "%s-%d" % (w1, i), rand() * 100.0,
                     ("t:" + w1, "%s/%s" % (w2, i)), owner)
        drec = DictRecord(big + 1, "%s_%d" % (w2, i), rand(),
                          (i & 127, "k%d" % i), owner)
        srec = SlotRecord("slot:%d" % i, rand() * 1e6, 1000 + i,
                          rng.randbytes(8 + (i % 25)))
        row = {
            "id": big + 2,
            "label": "%s %s %d" % (w1, w2, i),
            "payload": ("%08x" % i).encode(),
            "ratio": rand(),
            "flags": i & 15,            # small int: shared, no new object
            "f%d" % (i % 1000): None,   # per-dict key (new str)
        }
        rec_append(rec)
        rec_append(drec)
        rec_append(srec)
        tab_append(row)
        tab_append([rand(), rand(), rand(), big + 3, -big, "x%d" % i, True])
        tab_append({"s%d" % i, w1 + w2 + str(i), "%d%s" % (i, w1)})
        grp_append((rec, drec, srec, row))
        txt_append("%s %s %s number %d, rendered as %r"
                   % (w1, w2, words[(i * 7) % nwords], i, i * 0.5))
        blob_append(bytes(i % 256 for _ in range(i % 64)) if i % 16 == 0
                    else ("blob-%d" % i).encode())

        # occasional extras: keep about one extra object per unit
        r = i % 10
        if r < 4:
            index[rec.name] = rec       # big dict with str keys -> records
        elif r == 4:
            # long text, sometimes with non-ASCII (value gets truncated)
            txt_append((" ".join((w1, w2, "lorem ipsum dolor sit amet"))
                        * (4 + i % 40)))
        elif r == 5:
            tab_append(frozenset((big + 5, big + 6)))  # + 2 big ints
        elif r == 6:
            tab_append((rand(), i))     # untracked-after-gc tuple + float

    return {
        "records": records,
        "groups": groups,
        "texts": texts,
        "blobs": blobs,
        "tables": tables,
        "index": index,
        "owners": owners,
        "meta": {"n": n, "units": units, "seed": seed},
    }


def _closure_count():
    """Number of objects reachable from gc.get_objects() (plus themselves)."""
    import gc
    objs = gc.get_objects()
    seen = set(map(id, objs))
    seen.add(id(objs))
    stack = []
    stack.extend(objs)
    while stack:
        o = stack.pop()
        refs = gc.get_referents(o)
        if isinstance(o, dict):
            refs.extend(o)          # str keys are not visited by tp_traverse
        for r in refs:
            if id(r) not in seen:
                seen.add(id(r))
                stack.append(r)
    del objs, stack
    return len(seen)


if __name__ == "__main__":
    import gc
    import sys
    import time
    n = int(float(sys.argv[1])) if len(sys.argv) > 1 else 100_000
    gc.collect()
    before = _closure_count()
    t = time.perf_counter()
    root = build(n)
    dt = time.perf_counter() - t
    gc.collect()
    after = _closure_count()
    print("build(%d): %.2fs, +%d objects (%.3f of n), gc objects now %d"
          % (n, dt, after - before, (after - before) / n,
             len(gc.get_objects())))
