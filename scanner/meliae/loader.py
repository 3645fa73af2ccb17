"""Load a dump written by meliae.scanner (or by meliae 0.5) and analyse it.

The dump is held by the C core (meliae._loader.Graph: flat arrays, no
Python object per dumped object); MemObject proxies are made on demand.

    >>> from meliae import loader
    >>> om = loader.load('dump.json')          # or .gz, a file object, lines
    >>> s = om.summarize(); s                   # the per-type table
    >>> om[s.summaries[0].max_address]          # the largest object of the top type
    >>> om[addr].p                              # who holds it
    >>> om[addr].retained_size                  # what it keeps alive
    >>> om.dominators(addr)                     # what alone keeps it alive
    >>> om.summarize(by="retained")             # docs/retained.md

The line format is docs/dump-format.md.
"""

import collections.abc
import json
import math
import os
import sys
import time
import warnings
import zlib

from meliae import _loader

__all__ = [
    "DumpWarning",
    "MemObject",
    "ObjManager",
    "iter_objs",
    "load",
    "remove_expensive_references",
]

DEFAULT_MAX_PARENTS = 100
_CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_NO_FRAMES = object()           # ObjManager._frames: not read yet


class DumpWarning(UserWarning):
    """Something in the dump was skipped (errors='skip')."""


# ---------------------------------------------------------------------------
# Formatting shared by MemObject and the standalone objects of iter_objs


def _format_list(addresses, total=None):
    """'[0x1, 0x2, ...]': at most 10 addresses, then ', ...'."""
    if total is None:
        total = len(addresses)
    shown = ", ".join(_hex(a) for a in addresses[:10])
    if total > 10:
        return "[%s, ...]" % shown
    return "[%s]" % shown


def _hex(address):
    """An address as the CLI and meliae-cli's JSON show it: 0x7f3a5c2b1e80."""
    return "0x%x" % address


def _human(total_size):
    """A size as meliae-cli prints one: 68B, 1.2KiB, 3.4MiB."""
    size = float(total_size)
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    u = 0
    while abs(size) >= 1024 and u < len(units) - 1:
        size /= 1024
        u += 1
    if u == 0:
        return "%d%s" % (total_size, units[0])
    return "%.1f%s" % (size, units[u])


def _repr_obj(address, type_str, name, size, refs, nparents, parents, value,
              total_size):
    name_str = ", %s" % (name,) if name is not None else ""
    if refs:
        ref_str = " " + _format_list(refs)
    else:
        ref_str = ""
    if nparents:
        referrer_str = ", %d referrers %s" % (
            nparents, _format_list(parents, nparents))
    else:
        referrer_str = ""
    if value is None:
        value_str = ""
    else:
        r = repr(value)
        if isinstance(value, (str, bytes)) and len(r) > 21:
            r = r[:18] + "..."
        value_str = ", %s" % (r,)
    total_str = ", %s" % _human(total_size) if total_size else ""
    return "MemObject(%s, %s%s, %d bytes, %d refs%s%s%s%s)" % (
        _hex(address), type_str, name_str, size, len(refs), ref_str,
        referrer_str, value_str, total_str)


def _to_json(address, type_str, size, name, length, value, refs):
    out = ['{"address": %d, "type": %s, "size": %d'
           % (address, json.dumps(type_str), size)]
    if name is not None:
        out.append(', "name": %s' % json.dumps(name))
    if length is not None:
        out.append(', "len": %d' % length)
    if value is not None or type_str == "NoneType":
        if isinstance(value, float) and not math.isfinite(value):
            out.append(', "value": "%r"' % value)
        else:
            out.append(', "value": %s' % json.dumps(value))
    out.append(', "refs": [%s]}' % ", ".join("%d" % r for r in refs))
    return "".join(out)


# ---------------------------------------------------------------------------
# Objects of a loaded dump


_NONE = 0xFFFFFFFF      # a renumbering table's "folded": no new index


class _Generation(object):
    """The numbering of an ObjManager's objects, which each MemObject
    notes.  A collapse that renumbers while MemObjects of the current
    numbering are alive (the generation's reference count says so) keeps
    the old -> new table here, and a new generation follows: the table
    lives exactly as long as MemObjects that need it, and a collapse
    with none alive (load() collapses before any) keeps nothing."""

    __slots__ = ("renumbered_by", "next")

    def __init__(self):
        self.renumbered_by = None   # old -> new index, once renumbered
        self.next = None


class MemObject(object):
    """One object of a loaded dump, made on demand from the flat arrays.

    Two MemObjects of the same ObjManager and address are equal.  One
    taken before collapse_instance_dicts() (which renumbers the objects)
    is the same object after it, with the refs and size the collapse gave
    it.
    """

    __slots__ = ("_om", "_j", "_gen")

    def __init__(self, om, index):
        self._om = om
        self._j = index
        self._gen = om._gen

    @property
    def _i(self):
        """The index of this object in the arrays as they are now.  (The
        fields below inline this test: they are the hot ones.)"""
        return self._j if self._gen is self._om._gen else self._relocate()

    def _relocate(self):
        """A handle from before a collapse: its index through the tables
        of the collapses since (see _Generation)."""
        gen, j = self._gen, self._j
        while gen.renumbered_by is not None:
            j = gen.renumbered_by[j]
            if j == _NONE:
                raise KeyError("this object was a dict that "
                               "collapse_instance_dicts() folded into its "
                               "instance")
            gen = gen.next
        self._gen, self._j = gen, j
        return j

    # Fields of the line.
    @property
    def address(self):
        om = self._om
        return om._g.address(self._j if self._gen is om._gen
                                else self._relocate())

    @property
    def type_str(self):
        om = self._om
        return om._g.type_str(self._j if self._gen is om._gen
                                 else self._relocate())

    @property
    def size(self):
        om = self._om
        return om._g.size(self._j if self._gen is om._gen
                             else self._relocate())

    @property
    def len(self):
        """The object's "len" (items, characters, bytes), or None."""
        om = self._om
        return om._g.len(self._j if self._gen is om._gen
                            else self._relocate())

    length = len

    @property
    def value(self):
        om = self._om
        return om._g.value(self._j if self._gen is om._gen
                              else self._relocate())

    @property
    def name(self):
        om = self._om
        return om._g.name(self._j if self._gen is om._gen
                             else self._relocate())

    # References.
    @property
    def children(self):
        """Addresses this object references (also those with no line)."""
        om = self._om
        return om._g.refs(self._j if self._gen is om._gen
                             else self._relocate())

    refs = children
    ref_list = children

    @property
    def traceback(self):
        """Where this object was allocated (ObjManager.traceback)."""
        return self._om.traceback(self)

    @property
    def num_refs(self):
        om = self._om
        return om._g.num_refs(self._j if self._gen is om._gen
                                 else self._relocate())

    def __len__(self):
        om = self._om
        return om._g.num_refs(self._j if self._gen is om._gen
                                 else self._relocate())

    @property
    def parents(self):
        """Addresses of the objects referencing this one (computed on first
        use), each once, in dump order; at most om.max_parents of them."""
        om = self._om
        om._ensure_parents()
        return om._g.parents(self._i, om.max_parents)

    referrers = parents

    @property
    def num_parents(self):
        """How many objects refer to this one (all of them, each once)."""
        self._om._ensure_parents()
        return self._om._g.num_parents(self._i)

    num_referrers = num_parents

    @property
    def c(self):
        """Children as MemObjects (references to absent objects left out)."""
        g = self._om._g
        n = len(g)
        return [MemObject(self._om, j) for j in g.ref_indices(self._i) if j < n]

    @property
    def p(self):
        """Parents as MemObjects (at most om.max_parents)."""
        om = self._om
        om._ensure_parents()
        return [MemObject(om, j)
                for j in om._g.parent_indices(self._i, om.max_parents)]

    def __getitem__(self, offset):
        """The offset-th child, as a MemObject."""
        idx = self._om._g.ref_indices(self._i)
        try:
            j = idx[offset]
        except IndexError:
            raise IndexError("%r has only %d refs" % (self, len(idx)))
        if j >= len(self._om._g):
            raise KeyError("address %d is not in the dump"
                           % self._om._g.refs(self._i)[offset])
        return MemObject(self._om, j)

    # Sizes of what this object holds.
    def iter_recursive_refs(self, excluding=None):
        """This object and everything reachable from it, as MemObjects,
        not going through (nor yielding) the objects in excluding.  This
        object comes first (as meliae 0.5 documents: easy to skip, awkward
        to add back), unless excluded; the others in dump order."""
        om = self._om
        me = self._i
        mask = om._reachable(self, excluding)
        if mask[me]:
            yield self
        for j, m in enumerate(mask):
            if m and j != me:
                yield MemObject(om, j)

    def compute_total_size(self, excluding=None):
        """Size of this object plus everything reachable from it, not
        going through the objects in excluding."""
        om = self._om
        total = om._g.mask_size(om._reachable(self, excluding))
        if excluding is None:
            om._total_sizes[self._i] = total
        return total

    @property
    def total_size(self):
        """compute_total_size() (cached)."""
        try:
            return self._om._total_sizes[self._i]
        except KeyError:
            return self.compute_total_size()

    @property
    def retained_size(self):
        """Bytes this object keeps alive: its size plus the sizes of the
        objects it dominates (every path from a root to them goes through
        it), so freeing it would free them.  The roots are
        docs/retained.md's; the first use computes the whole dump's
        (om.compute_retained())."""
        om = self._om
        om._ensure_retained()
        return om._g.retained(self._i)

    @property
    def dominator(self):
        """The immediate dominator, as a MemObject; None when only the
        virtual root dominates this object (it is a root, or several roots
        reach it)."""
        om = self._om
        om._ensure_retained()
        j = om._g.idom(self._i)
        return MemObject(om, j) if j >= 0 else None

    def all(self, type_str):
        """Objects of type_str reachable from this one, largest first."""
        objs = [o for o in self.iter_recursive_refs() if o.type_str == type_str]
        objs.sort(key=lambda o: o.size, reverse=True)
        return objs

    def refs_as_dict(self):
        return self._om.refs_as_dict(self)

    def refs_as_list(self):
        return self._om.refs_as_list(self)

    def to_json(self):
        """This object as a line of the dump format (without the newline)."""
        g, i = self._om._g, self._i
        return _to_json(g.address(i), g.type_str(i), g.size(i), g.name(i),
                        g.len(i), g.value(i), g.refs(i))

    def __eq__(self, other):
        if not isinstance(other, MemObject):
            return NotImplemented
        if self._om is not other._om:
            return False
        try:
            return self._i == other._i
        except KeyError:        # a folded dict's: equal to itself only
            return self._gen is other._gen and self._j == other._j

    def __ne__(self, other):
        r = self.__eq__(other)
        return r if r is NotImplemented else not r

    def __hash__(self):
        return hash(self.address)

    def __repr__(self):
        try:
            i = self._i
        except KeyError:
            return "MemObject(a dict folded into its instance)"
        om, g = self._om, self._om._g
        if g.has_parents:
            nparents = g.num_parents(i)
            parents = g.parents(i, 10)
        else:
            nparents, parents = 0, []
        return _repr_obj(g.address(i), g.type_str(i), g.name(i), g.size(i),
                         g.refs(i), nparents, parents, g.value(i),
                         om._total_sizes.get(i, 0))


class _LineObject(object):
    """An object of iter_objs: the fields of one line, with no graph."""

    __slots__ = ("address", "type_str", "size", "name", "len", "value",
                 "children")

    def __init__(self, address, type_str, size, name, length, value, refs):
        self.address = address
        self.type_str = type_str
        self.size = size
        self.name = name
        self.len = length
        self.value = value
        self.children = refs

    @property
    def refs(self):
        return self.children

    ref_list = refs

    @property
    def length(self):
        return self.len

    @property
    def num_refs(self):
        return len(self.children)

    def __len__(self):
        return len(self.children)

    parents = ()
    referrers = ()
    num_parents = 0

    def to_json(self):
        return _to_json(self.address, self.type_str, self.size, self.name,
                        self.len, self.value, self.children)

    def __repr__(self):
        return _repr_obj(self.address, self.type_str, self.name, self.size,
                         self.children, 0, [], self.value, 0)


# ---------------------------------------------------------------------------
# Summaries


class _TypeSummary(object):
    """Totals of one type: count, total_size, max_size, max_address."""

    __slots__ = ("type_str", "count", "total_size", "max_size", "max_address")

    def __init__(self, type_str, count, total_size, max_size, max_address):
        self.type_str = type_str
        self.count = count
        self.total_size = total_size
        self.max_size = max_size
        self.max_address = max_address

    def __repr__(self):
        return "%s Total: %d objects, %d bytes, max %d bytes at %s" % (
            self.type_str, self.count, self.total_size, self.max_size,
            _hex(self.max_address))


class _ObjSummary(object):
    """Per-type totals of a set of objects; repr() is the table."""

    _title = ""

    def __init__(self, rows):
        self.type_summaries = {}
        self.total_count = 0
        self.total_size = 0
        for type_str, count, total, max_size, max_address in rows:
            self.type_summaries[type_str] = _TypeSummary(
                type_str, count, total, max_size, max_address)
            self.total_count += count
            self.total_size += total
        self.summaries = None
        self.by_size()

    def by_size(self):
        """Sorts summaries by total size (then count), largest first."""
        self.summaries = sorted(self.type_summaries.values(),
                                key=lambda s: (s.total_size, s.count),
                                reverse=True)
        return self

    def by_count(self):
        """Sorts summaries by count (then total size), largest first."""
        self.summaries = sorted(self.type_summaries.values(),
                                key=lambda s: (s.count, s.total_size),
                                reverse=True)
        return self

    # meliae 0.5's columns and their widths (its header, to the letter).
    _columns = (("Index", 6), ("Count", 8), ("%", 4), ("Size", 10),
                ("%", 4), ("Cum", 4), ("Max", 8))

    def _rows(self):
        """The figures of the first 20 types, one tuple per row, in the
        order of _columns."""
        total_count = self.total_count or 1
        total_size = self.total_size or 1
        cumulative = 0
        rows = []
        for i, s in enumerate(self.summaries[:20]):
            cumulative += s.total_size
            rows.append((i, s.count, s.count * 100 // total_count,
                         s.total_size, s.total_size * 100 // total_size,
                         cumulative * 100 // total_size, s.max_size))
        return rows

    def __repr__(self):
        out = [
            "Total %d objects, %d types, Total size = %.1fMiB (%d bytes)%s"
            % (self.total_count, len(self.summaries),
               self.total_size / 1024.0 / 1024.0, self.total_size,
               self._title),
        ]
        rows = self._rows()
        out.extend(_table(self._columns,
                          [r + (s.type_str,)
                           for r, s in zip(rows, self.summaries)]))
        if len(self.summaries) > 20:
            out.append("...")
        return "\n".join(out)


def _table(columns, rows):
    """Right-aligned figures, then the Kind: each column as wide as
    meliae 0.5 made it, or one wider than its widest figure, so that
    figures never run together."""
    widths = [w for _, w in columns]
    for r in rows:
        for c, w in enumerate(widths):
            widths[c] = max(w, len("%d" % r[c]) + 1)
    out = ["".join(h.rjust(w) for (h, _), w in zip(columns, widths))
           + " Kind"]
    for r in rows:
        out.append("".join(("%d" % v).rjust(w) for v, w in zip(r, widths))
                   + " " + r[-1])
    return out


class _RetainedSummary(_ObjSummary):
    """summarize(by="retained"): per type, total_size is the retained size
    of its objects that no other object of the same type dominates (so
    within a type nothing counts twice; across types it does: a dict's
    retained size includes its strs'), max_size/max_address the object of
    the type with the largest retained size.  top_counts[type_str] is how
    many objects were summed.  total_size is the heap's: the rows may add
    up to more (a dict's row counts its strs, which the str row counts
    too), so the table has no cumulative column."""

    _title = ", by retained size"
    _columns = (("Index", 6), ("Count", 8), ("%", 4), ("Retained", 10),
                ("%", 4), ("Max", 10))

    def _rows(self):
        return [r[:5] + r[6:] for r in _ObjSummary._rows(self)]

    def __init__(self, rows, heap_total):
        _ObjSummary.__init__(self, [r[:5] for r in rows])
        self.top_counts = dict((r[0], r[5]) for r in rows)
        self.total_size = heap_total


# ---------------------------------------------------------------------------
# The manager


class _ObjView(collections.abc.Mapping):
    """om.objs: address -> MemObject, in dump order."""

    __slots__ = ("_om",)

    def __init__(self, om):
        self._om = om

    def __getitem__(self, address):
        return self._om[address]

    def __iter__(self):
        g = self._om._g
        for i in range(len(g)):
            yield g.address(i)

    def __len__(self):
        return len(self._om._g)

    def __contains__(self, address):
        return address in self._om

    def values(self):
        om = self._om
        return [MemObject(om, i) for i in range(len(om._g))]

    def items(self):
        return [(m.address, m) for m in self.values()]

    itervalues = values
    iteritems = items


class Path(object):
    """A chain of referrers as a path (ObjManager.path_to_root): text, the
    steps ({"via": "root"|"global"|"attr"|"key"|"index"|"local"|"dict"|
    "cache"|"ref", "key" or "index" when named, "address", "type"}, root
    first) and objects (MemObjects, root first, the object last)."""

    __slots__ = ("text", "steps", "objects")

    def __init__(self, text, steps, objects):
        self.text = text
        self.steps = steps
        self.objects = objects

    def __str__(self):
        return self.text

    def __repr__(self):
        return "Path(%r)" % (self.text,)


class ObjManager(object):
    """A loaded dump: look objects up by address, summarise, walk."""

    def __init__(self, graph, max_parents=None):
        self._g = graph
        self.max_parents = (DEFAULT_MAX_PARENTS if max_parents is None
                            else max_parents)
        self._total_sizes = {}
        self._births = {}               # traceback id -> frames, read once
        self._gen = _Generation()
        self._alone = _Generation()     # getrefcount's baseline
        self._folded = False            # collapse_instance_dicts() ran
        self.objs = _ObjView(self)

    # Birth sites (docs/dump-format.md): the objects' "trace" ids and the
    # table's lines, kept by the C loader as it parsed the dump; only the
    # few table lines are read here (json), once each.
    def _frames(self, trace):
        """Traceback trace's frames, ((file, line, function), ...), the
        allocating frame first; None when no table line defines it."""
        fr = self._births.get(trace, _NO_FRAMES)
        if fr is not _NO_FRAMES:
            return fr
        line = self._g.traceback_line(trace)
        if line is None:
            fr = None
        else:
            try:
                frames = json.loads(line)["frames"]
            except (ValueError, KeyError, TypeError):
                frames = None
            if not isinstance(frames, list) or not all(
                    isinstance(f, list) and len(f) == 3 for f in frames):
                raise ValueError("traceback %d: its table line is not "
                                 "{\"traceback\": N, \"frames\": [[file, "
                                 "line, function], ...]}" % trace)
            fr = tuple((f[0], f[1], f[2]) for f in frames)
        self._births[trace] = fr
        return fr

    def birth_sites(self, objs, top=5):
        """Where objs (MemObjects) were allocated, for a dump taken with
        traces=N: [{"file", "line", "function", "count", "bytes",
        "traceback": [{"file", "line", "function"}, ...]}, ...], grouped
        by the allocating line, most bytes first, at most top (0: all).
        Objects without a birth site (allocated before tracemalloc
        started, a dump without traces, or a "trace" that no table line
        defines) are left out: [] for those."""
        sites = {}

        def site_of(trace):
            fr = self._frames(trace)
            if not fr:
                return None
            return sites.setdefault(fr[0], len(sites))

        out = []
        for trace, count, size in self._g.birth_sites(
                self._indices(objs), site_of, top):
            frames = self._frames(trace)
            f0 = frames[0]
            out.append({"file": f0[0], "line": f0[1], "function": f0[2],
                        "count": count, "bytes": size,
                        "traceback": [{"file": f, "line": n, "function": fn}
                                      for f, n, fn in frames[:10]]})
        return out

    def traceback(self, obj):
        """obj's allocation traceback, [(file, line, function), ...], the
        allocating frame first; None when it has none (or its "trace" is
        not in the dump's table)."""
        t = self._g.trace(self._index(obj))
        fr = None if t is None else self._frames(t)
        return None if fr is None else list(fr)

    # Counters of what the input held.
    @property
    def nduplicates(self):
        """Lines whose address was already loaded (the first was kept)."""
        return self._g.nduplicates

    @property
    def ndangling(self):
        """References to addresses with no line of their own."""
        return self._g.ndangling

    @property
    def skipped(self):
        """Malformed lines skipped (load(..., errors='skip'))."""
        return self._g.skipped

    def _index(self, at):
        if isinstance(at, MemObject):
            if at._om is not self:
                at = at.address
            else:
                return at._i
        if isinstance(at, bool) or not isinstance(at, int):
            raise TypeError("an address is an int, not %s"
                            % type(at).__name__)
        i = self._g.find(at)
        if i < 0:
            raise KeyError("address %s not present" % (at,))
        return i

    def __getitem__(self, address):
        return MemObject(self, self._index(address))

    def get(self, address, default=None):
        try:
            return self[address]
        except KeyError:
            return default

    def __contains__(self, address):
        if isinstance(address, MemObject):
            address = address.address
        if isinstance(address, bool) or not isinstance(address, int):
            return False
        return self._g.find(address) >= 0

    def __len__(self):
        return len(self._g)

    def __iter__(self):
        return iter(self.objs)

    # Referrers.
    def compute_referrers(self):
        """Builds every object's parents (the referrer CSR)."""
        self._g.compute_parents()

    compute_parents = compute_referrers

    def _ensure_parents(self):
        if not self._g.has_parents:
            self._g.compute_parents()

    # Dominators and retained sizes (docs/retained.md).
    def compute_retained(self):
        """Computes every object's immediate dominator and retained size
        (the bytes it keeps alive), on the graph as it is now: load()
        collapses instance dicts first, so an instance retains its
        __dict__.  Cached until collapse_instance_dicts() or
        remove_expensive_references() change the refs; builds the
        referrers if they were not.  Semi-NCA over the flat arrays: about
        0.05 s of CPU per million objects (bench/RESULTS.md), 12 bytes an
        object kept."""
        self._g.compute_retained()

    def _ensure_retained(self):
        if not self._g.has_retained:
            self._g.compute_retained()

    def dominators(self, obj):
        """obj's dominator chain: [obj, its immediate dominator, ..., the
        root's child above them all], as MemObjects.  Each one retains
        those before it, so retained sizes grow along the chain."""
        self._ensure_retained()
        return [MemObject(self, j)
                for j in self._g.dominator_chain(self._index(obj))]

    def path_to_root(self, obj):
        """How obj is kept alive, in the program's words: the shortest
        chain from a root (a module, a thread's frame, or an object nothing
        refers to) down to obj, as a Path -- its text
        (``__main__.BUS.subscribers[17]``, ``thread 'collector' in
        worker() app.py:42, local 'buf'``), its steps and its objects --
        or None when only a cycle keeps obj alive.  Exact whatever the
        fan-in (a breadth-first search over every referrer, each object
        once); the same text as ``meliae-cli referrers`` (common/paths.c).
        Builds the referrers if they were not."""
        r = self._g.path_to_root(self._index(obj))
        if r is None:
            return None
        chain, text, steps = r
        return Path(text, steps, [MemObject(self, j) for j in chain])

    def top_retained(self, count=20):
        """The count objects of largest retained size, largest first."""
        self._ensure_retained()
        return [MemObject(self, j) for j in self._g.largest_retained(count)]

    @property
    def total_heap_size(self):
        """Sum of the sizes of all the objects (what the retained sizes of
        the roots add up to)."""
        return self._g.mask_size(None)

    # Reachability.
    def _indices(self, objs):
        """Indices of the objects/addresses in objs that are in the dump."""
        out = []
        if objs is None:
            return out
        if isinstance(objs, (int, MemObject)):
            objs = [objs]
        for o in objs:
            if isinstance(o, MemObject) and o._om is self:
                out.append(o._i)
                continue
            if isinstance(o, MemObject):
                o = o.address
            i = self._g.find(o)
            if i >= 0:
                out.append(i)
        return out

    def _reachable(self, obj, excluding):
        return self._g.reachable([self._index(obj)], self._indices(excluding))

    def summarize(self, obj=None, excluding=None, by="size"):
        """Per-type totals of the whole dump, or of obj and everything
        reachable from it, not going through the objects in excluding
        (addresses or MemObjects).

        by="retained": of the whole dump, per type the retained size of
        its objects that no other object of the same type dominates,
        largest first (see _RetainedSummary)."""
        if by == "retained":
            if obj is not None or excluding is not None:
                raise ValueError("summarize(by='retained') is of the whole "
                                 "dump: no obj nor excluding")
            self._ensure_retained()
            return _RetainedSummary(self._g.retained_summary(),
                                    self._g.retained_roots[0])
        if by != "size":
            raise ValueError("by must be 'size' or 'retained', not %r" % (by,))
        if obj is None:
            mask = None
            if excluding is not None:
                mask = bytearray(b"\x01") * len(self._g)
                for i in self._indices(excluding):
                    mask[i] = 0
        else:
            mask = self._reachable(obj, excluding)
        return _ObjSummary(self._g.summarize(mask))

    def compute_total_size(self, obj, excluding=None):
        """Bytes of obj and everything reachable from it."""
        if not isinstance(obj, MemObject):
            obj = self[obj]
        return obj.compute_total_size(excluding)

    def get_all(self, type_str):
        """Every object of type_str, largest first."""
        return [MemObject(self, i) for i in self._g.indices_of_type(type_str)]

    def refs_as_list(self, obj):
        """The children of obj, simple values (str, int, float, bool, None)
        as their value, the others as MemObjects."""
        if not isinstance(obj, MemObject):
            obj = self[obj]
        out = []
        g = self._g
        n = len(g)
        for j in g.ref_indices(obj._i):
            out.append(self._simple(j) if j < n else None)
        return out

    _SIMPLE = frozenset(["str", "int", "float", "bool", "bytes", "NoneType"])

    def _simple(self, j):
        g = self._g
        t = g.type_str(j)
        if t in self._SIMPLE and (g.has_value(j) or t == "NoneType"):
            return g.value(j)
        return MemObject(self, j)

    def refs_as_dict(self, obj):
        """The children of obj read as [key, value, ...] (a dict, or an
        instance after collapse_instance_dicts, whose trailing type ref is
        dropped): keys and simple values as Python values, others as
        MemObjects."""
        if not isinstance(obj, MemObject):
            obj = self[obj]
        g = self._g
        n = len(g)
        idx = g.ref_indices(self._own_dict(obj._i))
        if len(idx) % 2 == 1:
            idx = idx[:-1]
        out = {}
        for k in range(0, len(idx), 2):
            key = self._simple(idx[k]) if idx[k] < n else None
            val = self._simple(idx[k + 1]) if idx[k + 1] < n else None
            try:
                out[key] = val
            except TypeError:       # an unhashable value as key
                out[repr(key)] = val
        return out

    def _own_dict(self, i):
        """A module whose __dict__ was not folded into it (functions hold
        it too) reads as that dict: the index of what to expand."""
        g = self._g
        if g.type_str(i) == "module" and g.num_refs(i) == 1:
            (j,) = g.ref_indices(i)
            if j < len(g) and g.type_str(j) == "dict":
                return j
        return i

    def collapse_instance_dicts(self):
        """Folds each instance's private __dict__ into the instance.

        The instance takes the dict's refs ([name, value, ...]) before its
        own remaining refs and adds the dict's size to its own; the dict
        leaves the dump.  3.11+ instances whose values were inline are
        already in that shape.  A module whose __dict__ nothing else refers
        to takes it the same way, as in meliae 0.5.  MemObjects taken
        before stay valid (but for the folded dicts').  Returns how many
        dicts were folded.
        """
        collapse = getattr(self._g, "collapse_instance_dicts", None)
        if collapse is None:
            return 0
        self._folded = True
        self._total_sizes.clear()
        # MemObjects hold references to the generation; _alone, held by
        # self only, is read the same way (3.14 borrows some references:
        # no fixed count is right everywhere).
        if sys.getrefcount(self._gen) <= sys.getrefcount(self._alone):
            return collapse()
        folded, table = collapse(True)
        if table is not None:
            old = self._gen
            old.renumbered_by = memoryview(table).cast("I")
            old.next = self._gen = _Generation()
        return folded

    def remove_expensive_references(self):
        """Removes the references that make every object reach everything.

        meliae 0.5's filter, on the loaded graph: a module's __dict__ holds
        other modules, a function holds its module's globals, a class holds
        its bases and (through object) everything, a frame the whole state
        of its thread; walking through them, any object's total size or
        summary is most of the heap.  So, as meliae 0.5 does:

        - every reference *to* a module, a frame or a type (objects whose
          type_str is 'module', 'frame' or 'type') is removed, from every
          object (those objects keep their own refs, so om[module] still
          lists its dict);
        - a function loses its references to __globals__ and __builtins__
          (the module dicts that come right after its code in its refs,
          in CPython's traverse order) and to its __module__ name (the
          value of __name__ in those globals) that follows them;
        - an _LRUNode (bzrlib's LRU cache) loses its references to other
          _LRUNodes.

        Unlike meliae 0.5, no '<ex-reference>' object (address 0) is added
        and referred to in place of what was removed.  The change is
        permanent for this ObjManager (load the dump again to get the refs
        back) and a second call does nothing.  Referrers are recomputed if
        they had been; cached total sizes are dropped.  Run it after
        collapse_instance_dicts() (load() does that), which needs the
        instances' refs to their class.  Returns how many references were
        removed.
        """
        g = self._g
        had_parents = g.has_parents
        removed = g.remove_expensive_references()
        self._total_sizes.clear()
        if had_parents and not g.has_parents:
            g.compute_parents()
        return removed

    def guess_intern_dict(self):
        """The dict that looks like the interpreter's interned-strings dict,
        as a MemObject, or None.

        As in meliae 0.5: a non-empty dict that nothing in the dump refers
        to and whose every key is a str mapped to itself ([s, s, t, t,
        ...]); of several, the one with the most keys (the first in the
        dump on a tie).  Only dumps that hold that dict can have one: on
        Python 3.12+ interned strings are no longer kept in a dict, and the
        dict of 3.9-3.11 is referred to by nothing that a dump walks.
        """
        i = self._g.guess_intern_dict()
        if i < 0:
            return None
        return MemObject(self, i)

    def diff(self, other):
        """What changed from this dump to other (a later dump of the same
        process): per-type count and size deltas, and other's new objects
        grouped by where they accumulate, as ``meliae-cli diff`` groups a
        stored pair (_Diff)."""
        return _Diff(self, other)

    def __repr__(self):
        return "<ObjManager: %d objects, %d dangling refs, %d duplicates>" % (
            len(self._g), self._g.ndangling, self._g.nduplicates)


class _DiffGroup(object):
    """The new objects that hang off one old object (their accumulation
    point: the first old object reached walking up from them through new
    holders), as ``meliae-cli diff`` groups them.

    holder: the MemObject they hang off (of the later dump), or None when
    only new cycles reach them (garbage not yet collected); holder_new:
    True when the holder is new itself (a module imported since, a new
    thread's frame: nothing old refers to it); count, bytes; depth: the
    most hops below the holder; types: [(type_str, count, bytes, depth
    (the fewest hops), example MemObject)], biggest first.
    """

    def __init__(self, om, row):
        anchor, self.holder_new, self.count, self.bytes, self.depth, rows = row
        self._om = om
        self.holder = MemObject(om, anchor) if anchor >= 0 else None
        g = om._g
        self.types = [(g.type_str(ex), c, b, d, MemObject(om, ex))
                      for c, b, d, ex in rows]

    @property
    def path(self):
        """How a person names the holder (om.path_to_root's text, as
        ``meliae-cli diff`` gives it), or None."""
        if self.holder is None:
            return None
        p = self._om.path_to_root(self.holder)
        return p.text if p is not None else None

    def __repr__(self):
        where = self.path
        if where is None:
            where = ("%s@0x%x" % (self.holder.type_str, self.holder.address)
                     if self.holder is not None else "<only new cycles>")
        return "%d new (%s) at %s: %s" % (
            self.count, _human(self.bytes), where, ", ".join(
                "%d %s (%s)" % (c, t, _human(b))
                for t, c, b, d, ex in self.types[:8]))


def _human(n):
    """Bytes as meliae-cli prints them (420B, 4.3KiB, 1.5MiB)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return "%d%s" % (n, unit) if unit == "B" else "%.1f%s" % (n, unit)
        n /= 1024.0


class _Diff(object):
    """ObjManager.diff(): before -> after, the answer ``meliae-cli diff``
    gives for the same two dumps (one implementation: common/accum.c).

    type_deltas: {type_str: (count_before, count_after, size_before,
    size_after)}; count_delta, size_delta.  An object of after is *new*
    unless before has one at its address with its type (its size may
    differ) that something old still refers to (docs/cli-json.md,
    "diff").  new_objects: their addresses; new_count, new_bytes;
    gone_count, gone_bytes: before's objects that after has not;
    new_by_type: {type_str: (count, size)} of the new objects; groups:
    [_DiffGroup], where they accumulate, biggest first.
    """

    def __init__(self, before, after):
        if before._folded != after._folded:
            # a dict folded on one side only reads as gone or new
            raise ValueError(
                "diff: load both dumps the same way (collapse_instance_dicts"
                "() ran on the %s one only)"
                % ("earlier" if before._folded else "later"))
        b = {t.type_str: t for t in before.summarize().summaries}
        a = {t.type_str: t for t in after.summarize().summaries}
        self.type_deltas = {}
        for t in set(a) | set(b):
            tb, ta = b.get(t), a.get(t)
            self.type_deltas[t] = (tb.count if tb else 0, ta.count if ta else 0,
                                   tb.total_size if tb else 0,
                                   ta.total_size if ta else 0)
        self.count_delta = sum(v[1] - v[0] for v in self.type_deltas.values())
        self.size_delta = sum(v[3] - v[2] for v in self.type_deltas.values())
        ga = after._g
        (self.new_count, self.new_bytes, self.gone_count, self.gone_bytes,
         new, groups) = ga.diff_from(before._g)
        self.new_objects = [ga.address(i) for i in new]
        self.groups = [_DiffGroup(after, row) for row in groups]
        self.new_by_type = {}
        for grp in self.groups:
            for t, c, sz, d, ex in grp.types:
                oc, osz = self.new_by_type.get(t, (0, 0))
                self.new_by_type[t] = (oc + c, osz + sz)

    def __repr__(self):
        out = ["Diff: %+d objects, %+d bytes; %d new objects"
               % (self.count_delta, self.size_delta, len(self.new_objects)),
               "   Count Delta      Size     Delta Kind"]
        rows = sorted(self.type_deltas.items(),
                      key=lambda kv: (abs(kv[1][3] - kv[1][2]),
                                      abs(kv[1][1] - kv[1][0])),
                      reverse=True)
        for t, (cb, ca, sb, sa) in rows[:20]:
            if cb == ca and sb == sa:
                break
            out.append("%8d%+6d%10d%+10d %s" % (ca, ca - cb, sa, sa - sb, t))
        if len(rows) > 20:
            out.append("...")
        if self.groups:
            out.append("New objects: %d (%s); gone: %d (%s)" % (
                self.new_count, _human(self.new_bytes), self.gone_count,
                _human(self.gone_bytes)))
            out.append("by where they hang off the objects of the first dump:")
            out.extend("  %r" % g for g in self.groups[:10])
        return "\n".join(out)


# ---------------------------------------------------------------------------
# Loading


class _Progress(object):
    """Objects, MB read, rate and ETA on stderr, when it is a terminal."""

    def __init__(self, show, total_bytes=None):
        try:
            tty = show and sys.stderr is not None and sys.stderr.isatty()
        except (AttributeError, ValueError):
            tty = False
        self.enabled = bool(tty)
        self.total = total_bytes
        self.start = time.monotonic()
        self.last = 0.0
        self.shown = False

    def __call__(self, nread, nobjs, final=False):
        if not self.enabled:
            return
        now = time.monotonic()
        if not final and now - self.last < 0.25:
            return
        self.last = now
        elapsed = max(now - self.start, 1e-6)
        rate = nread / elapsed
        msg = "\rloaded %d objects, %.1f MB, %.1f MB/s" % (
            nobjs, nread / 1e6, rate / 1e6)
        if self.total and not final and rate > 0:
            msg += ", ETA %.0fs" % (max(self.total - nread, 0) / rate)
        if final:
            msg += " in %.1fs\n" % elapsed
        sys.stderr.write(msg)
        sys.stderr.flush()
        self.shown = True


def _feed_fileobj(g, f, progress):
    chunk = f.read(_CHUNK)
    nread = len(chunk)
    dec = None
    if isinstance(chunk, (bytes, bytearray)) and chunk[:2] == _GZIP_MAGIC:
        dec = zlib.decompressobj(16 + 15)
    while chunk:
        if dec is None:
            g.feed(chunk)
        else:
            data = chunk
            while data:
                if dec.eof:         # concatenated gzip members
                    dec = zlib.decompressobj(16 + 15)
                g.feed(dec.decompress(data))
                data = dec.unused_data if dec.eof else b""
        progress(nread, len(g))
        chunk = f.read(_CHUNK)
        nread += len(chunk)
    if dec is not None and not dec.eof:
        raise ValueError(
            "gzip: compressed data ends early (the dump was cut short)")


def _feed_lines(g, lines, progress):
    nread = 0
    for line in lines:
        if isinstance(line, str):
            if not line.endswith("\n"):
                line += "\n"
        elif not line.endswith(b"\n"):
            line = bytes(line) + b"\n"
        g.feed(line)
        nread += len(line)
        if (g.lineno & 0xffff) == 0:
            progress(nread, len(g))
    return nread


def _load_graph(source, show_prog=True, errors="strict"):
    g = _loader.Graph(errors=errors)
    if isinstance(source, (str, bytes, os.PathLike)):
        path = os.fspath(source)
        try:
            total = os.path.getsize(path)
        except OSError:
            total = None
        progress = _Progress(show_prog, total)
        g.load_file(path, progress if progress.enabled else None)
    elif hasattr(source, "read"):
        progress = _Progress(show_prog)
        _feed_fileobj(g, source, progress)
    else:
        progress = _Progress(show_prog)
        _feed_lines(g, source, progress)
    g.finish()
    progress(g.bytes_fed, len(g), final=True)
    if g.skipped:
        line, err = g.first_skipped
        warnings.warn("skipped %d malformed line%s (first: line %d: %s)"
                      % (g.skipped, "" if g.skipped == 1 else "s", line, err),
                      DumpWarning, stacklevel=3)
    return g


def load(source, using_json=None, show_prog=True, collapse=True,
         max_parents=None, errors="strict"):
    """Loads a dump into an ObjManager.

    source: a path (str, bytes or os.PathLike; gzip-compressed or not, told
    by the magic bytes), a binary file object, or an iterable of lines (str
    or bytes).  using_json: meliae 0.5's choice of parser; accepted and
    ignored (there is one parser, in C).  show_prog: progress on stderr
    when it is a terminal.
    collapse: run collapse_instance_dicts() then compute_referrers().
    max_parents: how many parents a MemObject shows (default 100; all of
    them are still walked).  errors: 'strict' raises ValueError("line N:
    ...") at the first malformed line; 'skip' skips such lines and warns
    once (DumpWarning) with their count.
    """
    g = _load_graph(source, show_prog, errors)
    om = ObjManager(g, max_parents)
    if collapse:
        om.collapse_instance_dicts()
        om.compute_referrers()
    return om


def remove_expensive_references(source, total_objs=0, show_progress=False):
    """meliae 0.5's filter over objects that are not loaded: yields
    (changed, obj) for every object of source(), obj with the references
    ObjManager.remove_expensive_references() removes (to modules, frames
    and types; a function's __globals__, __builtins__ and module name; an
    _LRUNode's to other _LRUNodes) taken out of its children.

    source: a callable returning an iterable of objects (iter_objs'
    objects, or MemObjects); it is called twice.  iter_objs' objects are
    changed in place; a MemObject is given as a copy, its ObjManager is
    left as it was.  The whole stream is held as a graph meanwhile (about
    60 bytes an object): which refs to drop depends on objects anywhere in
    it.  total_objs is accepted for 0.5's sake (a progress hint there).
    show_progress: one line on stderr at the end, how many references
    were removed.

        for changed, obj in loader.remove_expensive_references(
                lambda: loader.iter_objs(path)):
            out.write(obj.to_json() + "\n")

    Unlike 0.5, no '<ex-reference>' object (address 0) is yielded or
    referred to in place of what was removed (docs/meliae05.md).
    """
    g = _loader.Graph()
    for obj in source():
        g.feed(obj.to_json() + "\n")
    g.finish()
    removed = g.remove_expensive_references()
    count = 0
    for obj in source():
        count += 1
        refs = g.refs(g.find(obj.address))
        changed = refs != list(obj.children)
        if isinstance(obj, _LineObject):
            obj.children = refs
        else:
            obj = _LineObject(obj.address, obj.type_str, obj.size, obj.name,
                              obj.len, obj.value, refs)
        yield changed, obj
    if show_progress:
        sys.stderr.write("removed %d expensive refs from %d objs\n"
                         % (removed, count))


def iter_objs(source, errors="strict"):
    """Yields one object per line of source (as load() takes it), with the
    line's fields only: no graph, no parents, duplicates included."""
    lineno = 0
    for line in _iter_lines(source):
        lineno += 1
        try:
            t = _loader.parse_line(line)
        except ValueError as e:
            if errors == "skip":
                continue
            raise ValueError("line %d: %s" % (lineno, e)) from None
        if t is not None:
            yield _LineObject(*t)


def _iter_lines(source):
    if isinstance(source, (str, bytes, os.PathLike)):
        with open(source, "rb") as f:
            yield from _iter_lines(f)
        return
    if hasattr(source, "read"):
        head = source.read(2)
        if isinstance(head, bytes) and head == _GZIP_MAGIC:
            import gzip
            import io
            rest = gzip.GzipFile(fileobj=_Prepend(head, source), mode="rb")
            yield from io.BufferedReader(rest, _CHUNK)
            return
        if head:
            first = head + source.readline()
            yield first
        yield from source
        return
    yield from source


class _Prepend(object):
    """A read()-able that gives head, then the rest of f."""

    def __init__(self, head, f):
        self.head = head
        self.f = f

    def read(self, n=-1):
        if self.head:
            h, self.head = self.head, b""
            if n is None or n < 0:
                return h + self.f.read()
            if n <= len(h):
                self.head = h[n:]
                return h[:n]
            return h + self.f.read(n - len(h))
        return self.f.read(n)
