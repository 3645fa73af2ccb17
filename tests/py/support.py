"""Helpers shared by the meliae.scanner tests.

Plain unittest (no pytest features): the suite runs under pytest on the
system Python and under ``python -m unittest discover -s tests/py -t
tests/py`` on every pyenv CPython.  CPython itself is the oracle:
``sys.getsizeof``, ``gc.get_referents``, ``gc.get_objects``, ``tracemalloc``
and, for a type's C ``tp_name``, the bytes of the type object read with
ctypes.
"""

import ctypes
import gc
import gzip
import json
import operator
import os
import struct
import subprocess
import sys
import tempfile

import meliae
import meliae.scanner as scanner

__all__ = [
    "scanner", "PTR_SIZE", "KEY_ORDER", "tp_name", "is_heap_type",
    "may_have_inline_values", "iter_dump", "parse_dump", "dump_addresses",
    "read_dump", "dump_to_bytes",
    "dump_to_list", "index_by_address", "duplicate_addresses",
    "gc_referent_ids", "dict_pair_ids", "running_frames", "run_child",
]

PTR_SIZE = struct.calcsize("P")

# The documented key order of a dump line; absent keys are omitted.
KEY_ORDER = ("address", "type", "size", "name", "len", "value", "refs")

_TPFLAGS_INLINE_VALUES = 1 << 2     # 3.13+
_TPFLAGS_MANAGED_DICT = 1 << 4      # 3.11+
_TPFLAGS_HEAPTYPE = 1 << 9

# PyTypeObject starts with PyObject_VAR_HEAD, then `const char *tp_name`.
_TP_NAME_OFFSET = object.__basicsize__ + PTR_SIZE


def tp_name(tp):
    """The C ``tp_name`` of a type object, read from the object itself.

    For heap classes that is ``tp.__name__``; for C types it is the dotted
    name (``"collections.deque"``); for builtins the bare name ("dict").
    Never runs Python code of the type (no metaclass attribute lookups).
    """
    if not issubclass(type(tp), type):
        raise TypeError("not a type: %r" % (type(tp),))
    raw = ctypes.c_char_p.from_address(id(tp) + _TP_NAME_OFFSET).value
    return raw.decode("utf-8")


def is_heap_type(tp):
    return bool(type.__dict__["__flags__"].__get__(tp) & _TPFLAGS_HEAPTYPE)


def may_have_inline_values(tp):
    """True when instances of ``tp`` may keep attribute values outside any
    dict object (3.11+), i.e. where the dump's size may exceed getsizeof."""
    flags = type.__dict__["__flags__"].__get__(tp)
    if sys.version_info >= (3, 13):
        return bool(flags & _TPFLAGS_INLINE_VALUES)
    if sys.version_info >= (3, 11):
        return bool(flags & _TPFLAGS_MANAGED_DICT)
    return False


_scan_once = json.JSONDecoder().scan_once   # the C scanner; no whitespace


def iter_dump(data):
    """Yield the lines of a dump (bytes) as dicts, checking the framing:
    UTF-8, one JSON object per line, every line ending with a newline."""
    if not data:
        return
    if not data.endswith(b"\n"):
        raise AssertionError("dump does not end with a newline: ...%r"
                             % (data[-80:],))
    text = data.decode("utf-8")
    for n, line in enumerate(text[:-1].split("\n"), 1):
        try:
            d, end = _scan_once(line, 0)
        except (StopIteration, ValueError) as e:
            raise AssertionError("dump line %d is not JSON (%r): %r"
                                 % (n, e, line[:200]))
        if end != len(line) or type(d) is not dict:
            raise AssertionError("dump line %d is not one JSON object: %r"
                                 % (n, line[:200]))
        yield d


def parse_dump(data):
    """All lines of a dump (bytes) as a list of dicts (framing as iter_dump).

    Parsed as one JSON array (raw newlines cannot occur inside JSON
    strings, so each line is one element); much faster than line by line.
    """
    if not data:
        return []
    enabled = gc.isenabled()
    gc.disable()     # a million fresh dicts would trigger many collections
    try:
        if data.endswith(b"\n"):
            text = data.decode("utf-8")
            try:
                out = json.loads("[" + text[:-1].replace("\n", ",") + "]")
            except ValueError:
                out = None
            if (out is not None and len(out) == text.count("\n")
                    and all(type(d) is dict for d in out)):
                return out
        return list(iter_dump(data))     # raises, naming the bad line
    finally:
        if enabled:
            gc.enable()


_ADDRESS_PREFIX = '{"address": '


def dump_addresses(data):
    """The address of every line of a dump (bytes), without building a dict
    per line (for dumps of millions of objects); checks the framing."""
    if not data.endswith(b"\n"):
        raise AssertionError("dump does not end with a newline")
    lines = data.decode("utf-8")[:-1].split("\n")
    prefix = _ADDRESS_PREFIX
    if sum(map(operator.methodcaller("startswith", prefix), lines)) == len(
            lines):
        n = len(prefix)
        return [int(line[n:line.index(",", n)]) for line in lines]
    return [_scan_once(line, 0)[0]["address"] for line in lines]


def read_dump(path):
    """Read a dump file (gzip-compressed when the name ends with .gz)."""
    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        return parse_dump(f.read())


def dump_to_bytes(func, *args, suffix=".json"):
    """Run ``func(path, *args)`` into a fresh temporary file; return bytes.

    A path target is used (not a callable) so no Python code runs during
    the walk and the heap stays still."""
    with tempfile.TemporaryDirectory(prefix="meliae-test-") as d:
        path = os.path.join(d, "dump" + suffix)
        func(path, *args)
        opener = gzip.open if suffix.endswith(".gz") else open
        with opener(path, "rb") as f:
            return f.read()


def dump_to_list(func, *args):
    """Run ``func(path, *args)`` into a temporary file; return parsed lines."""
    return parse_dump(dump_to_bytes(func, *args))


def index_by_address(lines):
    """{address: line}; the last line wins for duplicated addresses."""
    return {d["address"]: d for d in lines}


def duplicate_addresses(lines):
    seen = set()
    dups = set()
    for d in lines:
        a = d["address"]
        if a in seen:
            dups.add(a)
        seen.add(a)
    return dups


# 3.15's frozendict is laid out as a dict, and dumped as one.
_DICT_TYPES = tuple(t for t in (dict, getattr(__import__("builtins"),
                                              "frozendict", None)) if t)


def is_dict_like(o):
    return isinstance(o, _DICT_TYPES)


def dict_pairs(d):
    base = next(t for t in _DICT_TYPES if isinstance(d, t))
    return list(base.items(d))


def dict_pair_ids(d):
    """[id(key0), id(value0), id(key1), ...] read with dict's own C methods
    (works for subclasses without calling their overrides)."""
    return [id(x) for kv in dict_pairs(d) for x in kv]


def gc_referent_ids(o):
    """ids the dump's refs must contain: gc.get_referents plus dict keys."""
    ids = set(map(id, gc.get_referents(o)))
    if is_dict_like(o):
        ids.update(id(k) for k, _ in dict_pairs(o))
    return ids


def running_frames():
    """ids of the frames executing in this thread right now (their
    referents change as they run)."""
    ids = set()
    f = sys._getframe(1)
    while f is not None:
        ids.add(id(f))
        f = f.f_back
    return ids


def _package_root():
    path = getattr(meliae, "__file__", None)
    if path:
        return os.path.dirname(os.path.dirname(os.path.abspath(path)))
    return os.path.dirname(os.path.abspath(list(meliae.__path__)[0]))


def run_child(code, timeout=120):
    """Run ``code`` in a fresh interpreter (same executable) that can import
    meliae.scanner and this module.  Used for tests whose failure mode is a
    crash (stack overflow, use-after-free): the rest of the suite survives
    and the test reports the signal and stderr."""
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ)
    parts = [_package_root(), here]
    if env.get("PYTHONPATH"):
        parts.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", code],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        timeout=timeout)


def describe_child(proc):
    return "exit status %r\n--- stdout ---\n%s\n--- stderr ---\n%s" % (
        proc.returncode, proc.stdout.decode("utf-8", "replace")[-3000:],
        proc.stderr.decode("utf-8", "replace")[-3000:])
