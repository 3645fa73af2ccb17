"""Pure-Python baseline for meliae's ``dump_all_objects``.

``dump(path)`` writes one JSON line per live object, in the same format as
the C scanner::

    {"address": 1402..., "type": "dict", "size": 272, "len": 7, "refs": [...]}

Objects are every GC-tracked object (``gc.get_objects()``) plus the closure
of everything they reach through ``gc.get_referents`` (str, int, float,
bytes, untracked tuples/dicts, ...), each exactly once (id-based seen set,
iterative, no recursion).  For dicts, ``refs`` is ``[key0, value0, key1,
value1, ...]`` (``tp_traverse`` does not visit str keys, so the keys are
taken from the dict itself).

This is meant to be a fair, reasonably efficient pure-Python walker: C-level
helpers (``map``, ``str.join``, ``json``'s C string encoder) are used where
Python offers them, and output goes through a 1 MiB buffered text file.
"""

import gc
import sys
from itertools import chain
from types import BuiltinFunctionType, CodeType, FunctionType, ModuleType

try:  # C accelerator, same as json.dumps(..., ensure_ascii=True)
    from _json import encode_basestring_ascii as _enc
except ImportError:  # pragma: no cover
    from json.encoder import py_encode_basestring_ascii as _enc

__all__ = ["dump"]

_VALUE_CHARS = 100
_SIZED = {list, tuple, dict, set, frozenset, str, bytes, bytearray}


def _float_json(f):
    # like the C scanner: non-finite floats become the strings "nan"/"inf"
    if f != f:
        return '"nan"'
    if f in (float("inf"), float("-inf")):
        return '"inf"' if f > 0 else '"-inf"'
    return repr(f)


def _name_of(o, t):
    """JSON fragment for the "name" key, or ''."""
    try:
        if t is CodeType:
            name = o.co_name
        elif t is ModuleType:
            name = o.__dict__.get("__name__")
        elif (t is FunctionType or t is BuiltinFunctionType
              or isinstance(o, type)):
            name = o.__name__
        else:
            return ""
    except Exception:
        return ""
    if type(name) is not str:
        return ""
    return ', "name": ' + _enc(name)


def dump(path):
    """Write every live object reachable from the GC's view to ``path``."""
    get_referents = gc.get_referents
    getsizeof = sys.getsizeof
    enc = _enc
    from_items = chain.from_iterable
    nchars = _VALUE_CHARS
    sized = _SIZED
    name_types = {CodeType, ModuleType, FunctionType, BuiltinFunctionType}
    tnames = {}

    with open(path, "w", buffering=1 << 20, encoding="utf-8") as f:
        write = f.write
        # Work list: starts as every tracked object; untracked objects are
        # appended as they are discovered (the for loop below sees them).
        objs = gc.get_objects()
        seen = set(map(id, objs))
        skip = {id(objs), id(seen)}
        seen.update(skip)
        push = objs.append
        add = seen.add
        for o in objs:
            oid = id(o)
            if oid in skip:
                continue
            t = type(o)
            tname = tnames.get(t)
            if tname is None:
                tname = tnames[t] = enc(t.__name__)

            if t is dict:
                refs = list(from_items(o.items()))
            else:
                refs = get_referents(o)
                if isinstance(o, dict):
                    refs.extend(o)
            for r in refs:
                rid = id(r)
                if rid not in seen:
                    add(rid)
                    push(r)

            if t is str:
                extra = ', "len": %d, "value": %s' % (len(o), enc(o[:nchars]))
            elif t is int:
                try:
                    extra = ', "value": %d' % o
                except ValueError:  # more than sys.get_int_max_str_digits()
                    extra = ""
            elif t is float:
                extra = ', "value": ' + _float_json(o)
            elif t is bytes:
                extra = ', "len": %d, "value": %s' % (
                    len(o), enc(o[:nchars].decode("latin-1")))
            elif t in sized:
                extra = ', "len": %d' % len(o)
            elif t is bool:
                extra = ', "value": true' if o else ', "value": false'
            elif o is None:
                extra = ', "value": null'
            elif t in name_types or isinstance(o, type):
                extra = _name_of(o, t)
            else:
                extra = ""

            write('{"address": %d, "type": %s, "size": %d%s, "refs": [%s]}\n'
                  % (oid, tname, getsizeof(o), extra,
                     ", ".join(map(str, map(id, refs)))))
        del objs, seen, refs, o


if __name__ == "__main__":
    import time
    path = sys.argv[1] if len(sys.argv) > 1 else "/tmp/purepy_dump.json"
    t = time.perf_counter()
    dump(path)
    print("%s written in %.2fs" % (path, time.perf_counter() - t))
