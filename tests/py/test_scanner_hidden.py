"""C types that hide memory: compression objects and io.StringIO are sized
with the state they hold outside their Python object (scanner/hidden.c;
the table is in docs/dump-format.md).

Oracles: tracemalloc, which sees what CPython allocates for zlib, bz2's
compressor and liblzma through PyMem_Raw*, and glibc's mallinfo2 for the
bz2 decompressor, whose state CPython allocates with plain malloc.  Each
within 3% of the object's size as the dump gives it.
"""

import bz2
import ctypes
import ctypes.util
import gc
import io
import lzma
import os
import sys
import tracemalloc
import unittest
import zlib

import support
from support import scanner


def traced(make):
    """(object, bytes tracemalloc saw allocated while making it)."""
    gc.collect()
    tracemalloc.start()
    try:
        t0 = tracemalloc.get_traced_memory()[0]
        o = make()
        t1 = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return o, t1 - t0


def _mallinfo():
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    if not hasattr(libc, "mallinfo2"):
        return None

    class MI2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in (
            "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks "
            "fordblks keepcost").split()]
    libc.mallinfo2.restype = MI2

    def used():
        i = libc.mallinfo2()
        return i.uordblks + i.hblkhd
    return used


class HiddenStateTest(unittest.TestCase):

    def assert_close(self, got, want, what):
        self.assertLess(abs(got - want), 0.03 * want,
                        "%s: size %d, oracle %d (%.2f%%)"
                        % (what, got, want, 100.0 * (got - want) / want))

    def check_traced(self, what, make, at_least):
        o, t = traced(make)
        self.assertGreater(t, at_least, "%s: oracle too small" % what)
        self.assert_close(scanner.size_of(o), t, what)
        return o

    def test_zlib_compressors_by_level_window_and_memlevel(self):
        for args in ((9,), (1, zlib.DEFLATED, 9, 1), (6, zlib.DEFLATED, 12, 4),
                     (9, zlib.DEFLATED, -15, 9)):
            with self.subTest(args=args):
                self.check_traced("compressobj%r" % (args,),
                                  lambda: zlib.compressobj(*args), 8000)

    def test_zlib_decompressor_fresh_and_with_its_window(self):
        self.check_traced("decompressobj()", zlib.decompressobj, 7000)
        data = zlib.compress(os.urandom(100000))

        def used():
            d = zlib.decompressobj()
            d.decompress(data)
            return d
        self.check_traced("decompressobj() used", used, 32768)

    def test_bz2_compressor_by_level(self):
        for level in (1, 9):
            with self.subTest(level=level):
                self.check_traced("BZ2Compressor(%d)" % level,
                                  lambda: bz2.BZ2Compressor(level),
                                  level * 800000)

    def test_bz2_decompressor_against_malloc(self):
        used = _mallinfo()
        if used is None:
            self.skipTest("no mallinfo2 (not glibc)")
        data = bz2.compress(b"abc" * 300000, 9)
        keep = []
        for name, first in (("fresh", None), ("used", data[:1000])):
            with self.subTest(name):
                gc.collect()
                before = used()
                d = bz2.BZ2Decompressor()
                if first is not None:
                    d.decompress(first)
                grown = used() - before
                keep.append(d)
                if grown <= 0:
                    self.skipTest("malloc is not glibc's here (a sanitizer's?)")
                # the Python object itself is pymalloc's, not malloc's
                self.assert_close(scanner.size_of(d) - sys.getsizeof(d),
                                  grown, "BZ2Decompressor " + name)

    def test_lzma_decompressor_with_its_dictionary(self):
        data = lzma.compress(b"abc" * 3000000)

        def used():
            d = lzma.LZMADecompressor()
            d.decompress(data, 10)
            return d
        self.check_traced("LZMADecompressor used", used, 8 << 20)

    def test_lzma_compressor_is_not_measured(self):
        # liblzma reports a decoder's memory only (lzma_memusage): an
        # encoder's state is left out, not guessed.
        c = lzma.LZMACompressor()
        self.assertEqual(scanner.size_of(c), sys.getsizeof(c))

    def test_stringio_realized_buffer(self):
        self.check_traced("StringIO(1M)", lambda: io.StringIO("y" * 1000000),
                          4000000)

    def test_types_with_a_c_sizeof_are_sized_by_it(self):
        import array
        import collections
        import hashlib
        import mmap
        import re
        data = b"z" * 1000000
        items = list(range(100000))
        objs = {
            "io.BytesIO": io.BytesIO(data),
            "array.array": array.array("q", items),
            "collections.deque": collections.deque(items),
            "re.Pattern": re.compile("|".join("w%d" % i for i in range(500))),
            "mmap.mmap": mmap.mmap(-1, 1 << 20),
            "hashlib": hashlib.sha256(data),
        }
        for name, o in objs.items():
            with self.subTest(name):
                self.assertEqual(scanner.size_of(o), sys.getsizeof(o))
        # and what they hold is what tracemalloc sees them allocate
        for name, make, least in (
                ("BytesIO copy", lambda: io.BytesIO(bytearray(data)), 10**6),
                ("array", lambda: array.array("q", items), 8 * 10**5),
                ("deque", lambda: collections.deque(items), 8 * 10**5)):
            with self.subTest(name):
                self.check_traced(name, make, least)

    def test_dump_line_carries_the_hidden_state(self):
        c = zlib.compressobj(9)
        holder = [c]
        lines = support.index_by_address(
            support.parse_dump(support.dump_to_bytes(scanner.dump_all_objects)))
        self.assertEqual(lines[id(c)]["size"], scanner.size_of(c))
        self.assertGreater(lines[id(c)]["size"], 200000)
        del holder

    def test_add_special_size_still_overrides(self):
        c = zlib.compressobj(9)
        holder = [c]
        scanner.add_special_size("zlib.Compress", 1234, 1234)
        try:
            lines = support.index_by_address(support.parse_dump(
                support.dump_to_bytes(scanner.dump_all_objects)))
            self.assertEqual(lines[id(c)]["size"], 1234)
        finally:
            scanner.add_special_size("zlib.Compress", None, None)
        self.assertGreater(scanner.size_of(holder[0]), 200000)


if __name__ == "__main__":
    unittest.main()
