# SPDX-License-Identifier: MIT
"""Writes the meliae-cli fixture dumps, tests/fixtures/cli/dump{1,2,3}.json
(and utf8.json, one non-ASCII str).

    python3 tests/cli/make_fixtures.py [OUTDIR]

Three dumps of one small, made-up process, written by hand in the format
of docs/dump-format.md with fixed addresses, so every answer of the CLI
on them is known in advance (tests/cli/golden/).  The heap:

    module __main__ -> dict {"__name__", "cache": module app.cache,
                             "scratch": bytes (dump 1) / None (dumps 2, 3)}
    module app.cache -> dict {"__name__", "SESSIONS": list, "CONFIG": dict,
                              "Session": class Session}
    list SESSIONS -> Session x 2, 4, 7   (each: "user" -> str, "id" -> int)
    dict CONFIG   -> {"debug": False, "port": 8080, "hosts": [str, str]}
    class Session -> its __dict__ (with __module__ and __init__) and name
    list <-> list   an unreachable cycle (plus a str only it holds)

The SESSIONS list's size grows from dump 1 to dump 2 (capacity 4 -> 8)
and stays from dump 2 to dump 3, so a diff sees it new once and old once.
The first Session is at 0x7f3a5c2b1e80, the address the man page and the
--help examples use.  Stdlib only; the output is byte-for-byte the same on
every run (the files are committed; a test checks they are up to date).
"""

import json
import os
import sys

SESSIONS = (2, 4, 7)                # Session instances in dumps 1, 2, 3
SESSION_BASE = 0x7F3A5C2B1E80       # the first Session: the docs' example
SESSION_STEP = 0x80
FIELD_BASE = 0x7F3A5C3A0000         # the str and int of each Session
STATIC_BASE = 0x7F3A5C100000        # everything else, 0x40 apart


class Heap:
    """Object lines in the dump's key order, addressed by name."""

    def __init__(self):
        self.lines = []
        self.addr = {}
        self.next_static = STATIC_BASE

    def at(self, key, address=None):
        if key not in self.addr:
            if address is None:
                address = self.next_static
                self.next_static += 0x40
            self.addr[key] = address
        return self.addr[key]

    def add(self, key, type_, size, refs=(), name=None, len_=None,
            value=None, has_value=False, address=None):
        o = {"address": self.at(key, address), "type": type_, "size": size}
        if name is not None:
            o["name"] = name
        if len_ is not None:
            o["len"] = len_
        if has_value or value is not None:
            o["value"] = value
        o["refs"] = [self.at(r) for r in refs]
        self.lines.append(o)

    def text(self):
        return "".join(json.dumps(o) + "\n" for o in self.lines)


def strobj(h, key, s):
    # sys.getsizeof of an ASCII str on 3.11: 49 + len
    h.add(key, "str", 49 + len(s), len_=len(s), value=s)


def build(k):
    """The heap of dump k (0, 1, 2)."""
    h = Heap()
    n = SESSIONS[k]
    # Addresses of the objects that stay, in a fixed order, whatever the dump.
    for key in ("m_main", "d_main", "s___name__", "s___main__", "s_cache",
                "s_scratch", "m_app", "d_app", "s_app.cache", "s_SESSIONS",
                "s_CONFIG", "s_Session", "l_sessions", "d_config", "s_debug",
                "false", "s_port", "i_8080", "s_hosts", "l_hosts", "s_h1",
                "s_h2", "t_session", "d_tsession", "s___module__",
                "s___init__", "f_init", "cycle_a", "cycle_b", "s_orphan",
                "none", "b_scratch", "s_user", "s_id"):
        h.at(key)
    for i in range(n):
        h.at("session%d" % i, SESSION_BASE + i * SESSION_STEP)
        h.at("user%d" % i, FIELD_BASE + i * 0x100)
        h.at("id%d" % i, FIELD_BASE + i * 0x100 + 0x80)

    # __main__
    h.add("m_main", "module", 72, ["d_main"], name="__main__")
    h.add("d_main", "dict", 360, ["s___name__", "s___main__", "s_cache",
                                  "m_app", "s_scratch",
                                  "b_scratch" if k == 0 else "none"], len_=3)
    strobj(h, "s___name__", "__name__")
    strobj(h, "s___main__", "__main__")
    strobj(h, "s_cache", "cache")
    strobj(h, "s_scratch", "scratch")
    if k == 0:
        h.add("b_scratch", "bytes", 33 + 64, len_=64, value="scratch\xe9" * 8)
    else:
        h.add("none", "NoneType", 16, has_value=True)

    # app.cache
    h.add("m_app", "module", 72, ["d_app"], name="app.cache")
    h.add("d_app", "dict", 360, ["s___name__", "s_app.cache", "s_SESSIONS",
                                 "l_sessions", "s_CONFIG", "d_config",
                                 "s_Session", "t_session"], len_=4)
    strobj(h, "s_app.cache", "app.cache")
    strobj(h, "s_SESSIONS", "SESSIONS")
    strobj(h, "s_CONFIG", "CONFIG")
    strobj(h, "s_Session", "Session")
    cap = 4 if n < 4 else 8
    h.add("l_sessions", "list", 56 + 8 * cap,
          ["session%d" % i for i in range(n)], len_=n)

    # CONFIG: stays the same in every dump
    h.add("d_config", "dict", 232, ["s_debug", "false", "s_port", "i_8080",
                                    "s_hosts", "l_hosts"], len_=3)
    strobj(h, "s_debug", "debug")
    h.add("false", "bool", 24, value=False)
    strobj(h, "s_port", "port")
    h.add("i_8080", "int", 28, value=8080)
    strobj(h, "s_hosts", "hosts")
    h.add("l_hosts", "list", 72, ["s_h1", "s_h2"], len_=2)
    strobj(h, "s_h1", "db1.internal")
    strobj(h, "s_h2", "db2.internal")

    # class Session
    h.add("t_session", "type", 1072, ["d_tsession", "s_Session"],
          name="Session")
    h.add("d_tsession", "dict", 272, ["s___module__", "s_app.cache",
                                      "s___init__", "f_init"], len_=2)
    strobj(h, "s___module__", "__module__")
    strobj(h, "s___init__", "__init__")
    h.add("f_init", "function", 152, ["d_app", "s___init__"], name="__init__")
    strobj(h, "s_user", "user")
    strobj(h, "s_id", "id")

    # the Session instances (3.11 inline values: [name, value, ..., type])
    for i in range(n):
        h.add("session%d" % i, "Session", 104,
              ["s_user", "user%d" % i, "s_id", "id%d" % i, "t_session"])
        strobj(h, "user%d" % i, "user-%04d@example.org" % (1000 + i))
        h.add("id%d" % i, "int", 28, value=1000 + i)

    # an unreachable cycle: nothing outside it refers to it
    h.add("cycle_a", "list", 64, ["cycle_b", "s_orphan"], len_=2)
    h.add("cycle_b", "list", 56, ["cycle_a"], len_=1)
    strobj(h, "s_orphan", "orphaned by a cycle")

    # every ref has its own line, as in a dump_all_objects dump
    assert h.addr["session0"] == SESSION_BASE
    have = {o["address"] for o in h.lines}
    for o in h.lines:
        for r in o["refs"]:
            assert r in have, (o, r)
    assert len(have) == len(h.lines)
    return h


# Addresses the tests use.
SESSION_ADDRS = [SESSION_BASE + i * SESSION_STEP for i in range(max(SESSIONS))]


def addresses():
    """name -> address, as laid out in the last dump."""
    return dict(build(len(SESSIONS) - 1).addr)


def write(outdir):
    os.makedirs(outdir, exist_ok=True)
    paths = []
    for name, text in texts().items():
        path = os.path.join(outdir, name)
        with open(path, "w", encoding="ascii", newline="\n") as f:
            f.write(text)
        paths.append(path)
    return paths


# A str whose 61 characters take 121 bytes in UTF-8: a cut at 60 or 100
# bytes (instead of characters) splits a character.
UTF8_VALUE = "a" + "\u00e9" * 60
UTF8_MODULE = 0x7F3A5C500000
UTF8_STR = 0x7F3A5C500040


def utf8_dump():
    """utf8.json: a module holding one non-ASCII str."""
    h = Heap()
    h.at("s", UTF8_STR)
    h.add("m", "module", 72, ["s"], name="caf\u00e9", address=UTF8_MODULE)
    strobj(h, "s", UTF8_VALUE)
    h.lines[-1]["size"] = 73 + len(UTF8_VALUE) + 1   # a latin-1 str
    return h.text()


def texts():
    """{file name: text} without writing anything."""
    out = {"dump%d.json" % (k + 1): build(k).text()
           for k in range(len(SESSIONS))}
    out["utf8.json"] = utf8_dump()
    return out


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        here, "..", "fixtures", "cli")
    for p in write(out):
        print(p)
