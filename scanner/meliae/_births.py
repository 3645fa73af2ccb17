# SPDX-License-Identifier: MIT
"""Birth sites: the function of each tracemalloc frame.

tracemalloc records a frame as (file, line) only.  The scanner's C walk
(scanner/traces.c) gathers every object's traceback into a table of
distinct tracebacks, then calls resolve() with that table and every code
object of the heap, once, between its passes: this names each frame's
function, so a dump says ``app.py:42 in Cache.add``.

How a frame (file, line) is named:

1. the code objects of the heap whose ``co_filename`` is the file and
   whose own line table holds the line: the innermost one (the largest
   ``co_firstlineno``) gives its ``co_qualname``; before 3.11, which has
   only ``co_name``, the dotted name of step 3 when the source can be
   read, else ``co_name``;
2. else the innermost code object of that file whose lines span the line
   (first line to last line of its table);
3. else the file's source, when it can be read and parsed (``ast``): the
   innermost ``def``/``class`` around the line, as a dotted qualified name,
   or ``<module>`` outside any (module code objects are freed once the
   module has run, so module-level allocations usually end here);
4. else None: the dump says only ``file:line``.
"""

import ast
import dis
import os
import tracemalloc

_MAX_SOURCE = 8 << 20       # bytes of a source file parsed for step 3


# co_qualname: 3.11+
_HAS_QUALNAME = hasattr(compile("", "<probe>", "exec"), "co_qualname")


def _qualname(code):
    return getattr(code, "co_qualname", code.co_name)


def _code_lines(code):
    return {line for _, line in dis.findlinestarts(code) if line is not None}


class _Source:
    """Step 3: the innermost def or class around a line, from the source."""

    def __init__(self, filename):
        self.spans = None
        try:
            if os.path.getsize(filename) > _MAX_SOURCE:
                return
            with open(filename, "rb") as f:
                tree = ast.parse(f.read(), filename)
        except (OSError, ValueError, SyntaxError, RecursionError,
                MemoryError):
            return
        self.spans = []
        self._visit(tree, "")

    def _visit(self, node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                  ast.ClassDef)):
                name = prefix + child.name
                first = min([child.lineno] + [d.lineno for d in
                                              child.decorator_list])
                last = getattr(child, "end_lineno", None) or first
                self.spans.append((first, last, name))
                inner = name + ("." if isinstance(child, ast.ClassDef)
                                else ".<locals>.")
                self._visit(child, inner)
            else:
                self._visit(child, prefix)

    def name(self, line):
        if self.spans is None:
            return None
        best = None
        for first, last, name in self.spans:
            if first <= line <= last and (best is None or first >= best[0]):
                best = (first, name)
        return best[1] if best else "<module>"


def _safe(text):
    """text as a dump line may carry it: valid UTF-8 (a file name's
    undecodable bytes, held as lone surrogates, become backslash escapes)
    and no NUL."""
    if text is None:
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogateescape").decode(
            "utf-8", "backslashreplace") if _escapable(text) else \
            text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text.replace("\0", "\\x00")


def _escapable(text):
    try:
        text.encode("utf-8", "surrogateescape")
        return True
    except UnicodeEncodeError:
        return False


def resolve(tracebacks, codes):
    """One list per traceback of [file, function] per frame (function a
    str or None), both made safe for a dump line (_safe); tracebacks is a
    list of tuples of (filename, lineno), the allocation's frame first."""
    files = {f for tb in tracebacks for f, _ in tb}
    byfile = {}
    for code in codes:
        fn = code.co_filename
        if fn not in files:
            continue
        lines = _code_lines(code)
        if not lines:
            continue
        byfile.setdefault(fn, []).append(
            (code.co_firstlineno, min(min(lines), code.co_firstlineno),
             max(lines), lines, _qualname(code)))
    sources = {}
    named = {}

    def name(fn, line):
        key = (fn, line)
        if key in named:
            return named[key]
        best = None
        cands = byfile.get(fn, ())
        for first, _, _, lines, qual in cands:
            if line in lines and (best is None or first > best[0]):
                best = (first, qual)
        if best is None:
            for first, lo, hi, _, qual in cands:
                if lo <= line <= hi and (best is None or first > best[0]):
                    best = (first, qual)
        if fn not in sources and (best is None or not _HAS_QUALNAME):
            sources[fn] = _Source(fn)
        if best is not None:
            result = best[1]
            if not _HAS_QUALNAME:
                # co_name only before 3.11: the source's dotted name
                # (Class.method) says more, when it can be read
                dotted = sources[fn].name(line)
                if dotted is not None and dotted != "<module>":
                    result = dotted
        else:
            result = sources[fn].name(line)
        named[key] = result
        return result

    return [[[_safe(fn), _safe(name(fn, line))] for fn, line in tb]
            for tb in tracebacks]


def check_frames(traces):
    """The frames argument of traces=N: an int from 1 (None: off)."""
    if traces is None:
        return None
    if isinstance(traces, bool) or not isinstance(traces, int):
        raise TypeError("traces must be a number of frames (an int), not %s"
                        % type(traces).__name__)
    if not 1 <= traces <= 1000:
        raise ValueError("traces must be from 1 to 1000 frames, not %d"
                         % traces)
    return traces


def start(traces):
    """traces=N: start tracemalloc with N frames if it is not running.
    Returns True when it was already running (this snapshot can carry
    birth sites), False when it starts now (objects allocated from now on
    get them)."""
    if traces is None:
        return False
    if tracemalloc.is_tracing():
        return True
    tracemalloc.start(traces)
    return False


def prepare(scanner):
    """Looks every object's birth site up for the next whole-heap dump
    (scanner is meliae._scanner).  Returns the number of tracebacks."""
    return scanner.prepare_traces(resolve)

