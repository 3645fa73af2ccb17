# SPDX-License-Identifier: MIT
"""Helpers for the metrics tests: a strict parser of Prometheus' text
exposition format (version 0.0.4), an HTTP client that can misbehave, and
snapshots made of chosen types.  Stdlib only.

https://prometheus.io/docs/instrumenting/exposition_formats/
"""

import math
import re
import socket
import time

from daemon_support import header, line

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Exposition:
    """What a text exposition says: families by name, each with its help,
    its type and its samples [(labels dict, value)]."""

    def __init__(self, text):
        self.text = text
        self.families = parse_exposition(text)

    def samples(self, name, **match):
        fam = self.families.get(name)
        if fam is None:
            return []
        return [(l, v) for l, v in fam["samples"]
                if all(l.get(k) == w for k, w in match.items())]

    def value(self, name, **match):
        """The one sample of name matching match (AssertionError if not
        exactly one)."""
        s = self.samples(name, **match)
        if len(s) != 1:
            raise AssertionError("%d samples of %s%r in:\n%s"
                                 % (len(s), name, match, self.text))
        return s[0][1]


def _unescape_label(v):
    out, i = [], 0
    while i < len(v):
        c = v[i]
        if c == "\\":
            if i + 1 >= len(v):
                raise ValueError("dangling backslash in %r" % v)
            n = v[i + 1]
            if n == "\\":
                out.append("\\")
            elif n == '"':
                out.append('"')
            elif n == "n":
                out.append("\n")
            else:
                raise ValueError("bad escape \\%s in %r" % (n, v))
            i += 2
        elif c == "\n":
            raise ValueError("raw newline in a label value")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _parse_labels(s, where):
    """s: the inside of {...}.  Returns a dict; ValueError if malformed."""
    labels, i = {}, 0
    while i < len(s):
        m = re.compile(LABEL + '="').match(s, i)
        if not m:
            raise ValueError("%s: bad label at %r" % (where, s[i:]))
        key = m.group(0)[:-2]
        j = m.end()
        raw = []
        while True:
            if j >= len(s):
                raise ValueError("%s: unterminated label value" % where)
            if s[j] == "\\":
                raw.append(s[j:j + 2])
                j += 2
                continue
            if s[j] == '"':
                break
            raw.append(s[j])
            j += 1
        if key in labels:
            raise ValueError("%s: label %s twice" % (where, key))
        labels[key] = _unescape_label("".join(raw))
        i = j + 1
        if i < len(s):
            if s[i] != ",":
                raise ValueError("%s: expected ',' at %r" % (where, s[i:]))
            i += 1
    return labels


def _split_sample(ln, where):
    m = re.match(NAME, ln)
    if not m:
        raise ValueError("%s: no metric name" % where)
    name, rest = m.group(0), ln[m.end():]
    labels = {}
    if rest.startswith("{"):
        # The closing brace is the first '}' outside a quoted value.
        i, inq = 1, False
        while i < len(rest):
            c = rest[i]
            if inq and c == "\\":
                i += 2
                continue
            if c == '"':
                inq = not inq
            elif c == "}" and not inq:
                break
            i += 1
        else:
            raise ValueError("%s: no closing brace" % where)
        labels = _parse_labels(rest[1:i], where)
        rest = rest[i + 1:]
    if not rest.startswith(" "):
        raise ValueError("%s: no value" % where)
    parts = rest.split()
    if len(parts) not in (1, 2):
        raise ValueError("%s: trailing junk %r" % (where, rest))
    value = float(parts[0])             # ValueError for junk
    if len(parts) == 2:
        raise ValueError("%s: a timestamp (the textfile collector refuses "
                         "them)" % where)
    return name, labels, value


def parse_exposition(text):
    """Strictly: every line ends with a newline; HELP then TYPE come before
    a family's samples; a family's samples are contiguous, named as it is,
    and never repeat a label set; label values use only the three escapes.
    Raises ValueError."""
    if text == "" or not text.endswith("\n"):
        raise ValueError("empty, or not ended by a newline")
    fams, order, cur = {}, [], None
    for k, ln in enumerate(text[:-1].split("\n"), 1):
        where = "line %d" % k
        if ln == "":
            raise ValueError("%s: empty line" % where)
        if ln.startswith("# HELP "):
            m = re.fullmatch("# HELP (%s) (.*)" % NAME, ln)
            if not m:
                raise ValueError("%s: bad HELP" % where)
            name = m.group(1)
            if name in fams:
                raise ValueError("%s: family %s again" % (where, name))
            fams[name] = {"help": m.group(2), "type": None, "samples": [],
                          "seen": set()}
            order.append(name)
            cur = name
            continue
        if ln.startswith("# TYPE "):
            m = re.fullmatch(r"# TYPE (%s) (counter|gauge|untyped|summary|"
                             r"histogram)" % NAME, ln)
            if not m or m.group(1) != cur or fams[cur]["type"] is not None \
                    or fams[cur]["samples"]:
                raise ValueError("%s: TYPE out of place" % where)
            fams[cur]["type"] = m.group(2)
            continue
        if ln.startswith("#"):
            raise ValueError("%s: unexpected comment %r" % (where, ln))
        name, labels, value = _split_sample(ln, where)
        if name != cur or fams[cur]["type"] is None:
            raise ValueError("%s: sample of %s outside its family" % (where,
                                                                     name))
        key = tuple(sorted(labels.items()))
        if key in fams[cur]["seen"]:
            raise ValueError("%s: %s%r twice" % (where, name, labels))
        fams[cur]["seen"].add(key)
        if fams[cur]["type"] == "counter" and not name.endswith("_total"):
            raise ValueError("%s: counter not named *_total" % where)
        if math.isnan(value) or value < 0:
            raise ValueError("%s: value %r" % (where, value))
        fams[cur]["samples"].append((labels, value))
    for f in fams.values():
        del f["seen"]
        if f["type"] is None:
            raise ValueError("family without TYPE")
    return fams


# ---- HTTP ----

def metrics_port(daemon, timeout=20):
    """The port of the daemon's metrics_listening log line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(r"metrics_listening address=(\S+):(\d+)", daemon.log())
        if m:
            return int(m.group(2))
        time.sleep(0.02)
    raise AssertionError("no metrics_listening line:\n" + daemon.log())


def http_raw(port, data, host="127.0.0.1", timeout=10, family=None):
    """Sends data, reads until the daemon closes.  Returns (status, headers
    dict, body bytes); status None if nothing came."""
    family = family or (socket.AF_INET6 if ":" in host else socket.AF_INET)
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        if data:
            s.sendall(data)
        buf = b""
        while True:
            try:
                c = s.recv(65536)
            except ConnectionResetError:
                break
            if not c:
                break
            buf += c
    finally:
        s.close()
    return parse_response(buf)


def parse_response(buf):
    if b"\r\n\r\n" not in buf:
        return None, {}, buf
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    m = re.fullmatch(r"HTTP/1\.[01] (\d{3}) .*", lines[0])
    if not m:
        raise AssertionError("bad status line %r" % lines[0])
    headers = {}
    for h in lines[1:]:
        k, v = h.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        assert int(headers["content-length"]) == len(body) or \
            (len(body) == 0), (headers, len(body))
    return int(m.group(1)), headers, body


def http_get(port, path="/metrics", method="GET", host="127.0.0.1",
             version="HTTP/1.1", timeout=10):
    req = ("%s %s %s\r\nHost: %s:%d\r\nUser-Agent: meliae-test\r\n"
           "Accept: text/plain\r\n\r\n" % (method, path, version, host, port))
    return http_raw(port, req.encode(), host=host, timeout=timeout)


def scrape(port, **kw):
    """GET /metrics, checked, as an Exposition."""
    status, headers, body = http_get(port, **kw)
    if status != 200:
        raise AssertionError("GET /metrics: %r %r %r" % (status, headers,
                                                          body[:200]))
    assert headers["content-type"] == CONTENT_TYPE, headers
    return Exposition(body.decode("utf-8"))


# ---- the textfile ----

def read_textfile(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8")


def wait_textfile(path, pred, timeout=20):
    """The textfile's Exposition once pred(exposition) holds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            e = Exposition(read_textfile(path))
            last = e.text
            if pred(e):
                return e
        except (FileNotFoundError, AssertionError):
            pass                # not there yet, or not the sample yet
        time.sleep(0.02)
    raise AssertionError("textfile %s never matched; last:\n%s"
                         % (path, last))


# ---- snapshots of chosen types ----

def typed_objects(types, base=1 << 44):
    """types: [(type name, count, size)] -> object dicts."""
    out, a = [], base
    for name, n, size in types:
        for _ in range(n):
            out.append({"address": a, "type": name, "size": size,
                        "refs": []})
            a += 16
    return out


def typed_snapshot(types, hdr=None):
    objs = typed_objects(types)
    parts = [line(hdr if hdr is not None else header())]
    parts += [line(o) for o in objs]
    parts.append(line({"end": "complete", "objects": len(objs),
                       "bytes": sum(o["size"] for o in objs)}))
    return b"".join(parts)


def free_port(host="127.0.0.1"):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port

