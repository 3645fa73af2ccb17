/* SPDX-License-Identifier: MIT
 *
 * hidden.c -- memory that compression objects and io.StringIO hold
 * outside their Python object, where the type has no C __sizeof__ to say
 * it.
 *
 * zlib.compressobj(9) is a 168-byte object over 262 KiB of zlib state;
 * lzma.LZMACompressor() holds ~94 MiB; bz2.BZ2Compressor(9) 7.5 MiB.
 * CPython allocates that state through PyMem_Raw* (so tracemalloc sees
 * it), and sys.getsizeof does not.  Each rule below reads the library's
 * own stream struct that CPython's object embeds right after its header
 * (PyObject_HEAD, then z_stream / bz_stream / lzma_allocator+lzma_stream,
 * from 3.9 to 3.15), and checks that it is what it claims before trusting
 * it: the library's state points back at that stream, and its sizes are
 * the ones the library's own rules give.  Anything else (another zlib
 * such as zlib-ng, a build that changed the struct) adds nothing, rather
 * than a wrong number.  liblzma answers itself (lzma_memusage, public);
 * zlib and bzip2 have no such call, and the fields read are the head of
 * their private state structs, unchanged since zlib 1.2.9 and bzip2
 * 1.0.0.  docs/dump-format.md has the table.
 *
 * Nothing here runs Python code or allocates: safe in the fork child.
 */
#include "pyinc.h"

#include <string.h>
#ifdef ML_HAVE_BZ2
#  include <bzlib.h>
#endif
#include <zlib.h>
#ifdef ML_HAVE_LZMA
#  include <lzma.h>
#endif

#include "hidden.h"

/* ------------------------------------------------------------------ */
/* zlib: deflate.h's deflate_state and inflate.h's inflate_state.      */

struct zdeflate_head {
    z_streamp strm;
    int status;
    Bytef *pending_buf;
    unsigned long pending_buf_size;
    Bytef *pending_out;
    unsigned long pending;
    int wrap;
    gz_headerp gzhead;
    unsigned long gzindex;
    Byte method;
    int last_flush;
    uInt w_size, w_bits, w_mask;
    Bytef *window;
    unsigned long window_size;
    void *prev, *head;
    uInt ins_h, hash_size, hash_bits, hash_mask;
};

struct zinflate_head {
    z_streamp strm;
    int mode;
    int last, wrap, havedict, flags;
    unsigned dmax;
    unsigned long check, total;
    gz_headerp head;
    unsigned wbits, wsize, whave, wnext;
    unsigned char *window;
};

/* sizeof(deflate_state) and sizeof(struct inflate_state) on 64-bit
 * builds of zlib 1.2.9 to 1.3.1 (private: not in zlib.h).  Measured with
 * tracemalloc (tests/py/test_scanner_hidden.py checks the totals). */
#define ZDEFLATE_STATE_SIZE 5952
#define ZINFLATE_STATE_SIZE 7160

struct zobject {
    PyObject_HEAD
    z_stream zst;
};

static int
is_pow2(unsigned long x, unsigned lo_bits, unsigned hi_bits)
{
    return x >= (1ul << lo_bits) && x <= (1ul << hi_bits) && (x & (x - 1)) == 0;
}

/* CPython 3.14+ may be built on zlib-ng's own API (zng_stream, another
 * layout): its zlib module then has ZLIBNG_VERSION.  1 if it is classic
 * zlib, -1 unknown yet since ml__hidden_reset(). */
static int classic_zlib = -1;

void
ml__hidden_reset(void)
{
    classic_zlib = -1;
}

/* Whether dict d has the str key name, scanning (no __eq__ runs). */
static int
has_key(PyObject *d, const char *name)
{
    Py_ssize_t pos = 0;
    PyObject *k, *v;

    while (d != NULL && PyDict_Check(d) && PyDict_Next(d, &pos, &k, &v))
        if (PyUnicode_CheckExact(k) && PyUnicode_CompareWithASCIIString(k, name) == 0)
            return 1;
    return 0;
}

static int
zlib_is_classic(PyObject *op)
{
    if (classic_zlib < 0) {
        /* The module that made op: the type's __module__ is "zlib". */
        PyObject *mods = PyImport_GetModuleDict(), *k, *v, *m = NULL;
        Py_ssize_t pos = 0;

        (void)op;
        while (PyDict_Next(mods, &pos, &k, &v))
            if (PyUnicode_CheckExact(k) && PyUnicode_CompareWithASCIIString(k, "zlib") == 0)
                m = v;
        classic_zlib = m != NULL && PyModule_Check(m)
            && has_key(PyModule_GetDict(m), "ZLIB_RUNTIME_VERSION")
            && !has_key(PyModule_GetDict(m), "ZLIBNG_VERSION");
    }
    return classic_zlib;
}

static size_t
zlib_deflate_size(PyObject *op)
{
    z_stream *zs = &((struct zobject *)op)->zst;
    const struct zdeflate_head *s;

    if (!zlib_is_classic(op))
        return 0;
    s = (const void *)zs->state;

    /* deflateInit2_(): window 2*w_size bytes, prev w_size Pos, head
     * hash_size Pos (2 bytes each), pending_buf lit_bufsize*4, where
     * hash_size = 2 * lit_bufsize = 1 << (memLevel + 7). */
    if (s == NULL || s->strm != zs
            || !is_pow2(s->w_size, 8, 15) || s->w_size != 1u << s->w_bits
            || s->w_mask != s->w_size - 1 || s->window_size != 2ul * s->w_size
            || !is_pow2(s->hash_size, 8, 16) || s->hash_size != 1u << s->hash_bits
            || s->pending_buf_size != 2ul * s->hash_size)
        return 0;
    return ZDEFLATE_STATE_SIZE + 2ul * s->w_size + 2ul * s->w_size
        + 2ul * s->hash_size + s->pending_buf_size;
}

static size_t
zlib_inflate_size(PyObject *op)
{
    z_stream *zs = &((struct zobject *)op)->zst;
    const struct zinflate_head *s;

    if (!zlib_is_classic(op))
        return 0;
    s = (const void *)zs->state;

    /* The window (1 << wbits bytes) is allocated on first need. */
    if (s == NULL || s->strm != zs || s->wbits < 8 || s->wbits > 15
            || (s->window == NULL) != (s->wsize == 0)
            || (s->wsize != 0 && s->wsize != 1u << s->wbits))
        return 0;
    return ZINFLATE_STATE_SIZE + s->wsize;
}

/* ------------------------------------------------------------------ */
/* bzip2: bzlib_private.h's EState and DState.                         */

#ifdef ML_HAVE_BZ2
struct bz_estate_head {
    bz_stream *strm;
    int32_t mode, state;
    uint32_t avail_in_expect;
    uint32_t *arr1, *arr2, *ftab;
    int32_t origPtr;
    uint32_t *ptr;
    unsigned char *block;
    uint16_t *mtfv;
    unsigned char *zbits;
    int32_t workFactor;
    uint32_t state_in_ch;
    int32_t state_in_len;
    int32_t rNToGo, rTPos;
    int32_t nblock, nblockMAX;
};

struct bz_dstate_head {
    bz_stream *strm;
    int32_t state;
    unsigned char state_out_ch;
    int32_t state_out_len;
    unsigned char blockRandomised;
    int32_t rNToGo, rTPos;
    uint32_t bsBuff;
    int32_t bsLive;
    int32_t blockSize100k;
    unsigned char smallDecompress;
    int32_t currBlockNo, verbosity, origPtr;
    uint32_t tPos;
    int32_t k0;
    int32_t unzftab[256];
    int32_t nblock_used;
    int32_t cftab[257];
    int32_t cftabCopy[257];
    uint32_t *tt;
    uint16_t *ll16;
    unsigned char *ll4;
};

/* sizeof(EState) and sizeof(DState), 64-bit, bzip2 1.0.x. */
#define BZ_ESTATE_SIZE 55768
#define BZ_DSTATE_SIZE 64144
#define BZ_N_OVERSHOOT_ 34

struct bzobject {
    PyObject_HEAD
    bz_stream bzs;
};

static size_t
bz2_compress_size(PyObject *op)
{
    bz_stream *bs = &((struct bzobject *)op)->bzs;
    const struct bz_estate_head *s = bs->state;
    size_t n;

    /* BZ2_bzCompressInit(): n = 100000 * blockSize100k; arr1 n words,
     * arr2 n + BZ_N_OVERSHOOT words, ftab 65537 words; nblockMAX is
     * n - 19, ptr aliases arr1 and block arr2. */
    if (s == NULL || s->strm != bs || s->nblockMAX <= 0)
        return 0;
    n = (size_t)s->nblockMAX + 19;
    if (n % 100000 != 0 || n < 100000 || n > 900000
            || s->ptr != s->arr1 || (void *)s->block != (void *)s->arr2)
        return 0;
    return BZ_ESTATE_SIZE + n * 4 + (n + BZ_N_OVERSHOOT_) * 4 + 65537 * 4;
}

static size_t
bz2_decompress_size(PyObject *op)
{
    bz_stream *bs = &((struct bzobject *)op)->bzs;
    const struct bz_dstate_head *s = bs->state;
    size_t n;

    /* The state exists from BZ2_bzDecompressInit(); tt (n words) or, in
     * small mode, ll16 and ll4 (n * 2.5 bytes) once a block header said
     * n = 100000 * blockSize100k. */
    if (s == NULL || s->strm != bs)
        return 0;
    if (s->tt == NULL && s->ll16 == NULL)
        return BZ_DSTATE_SIZE;
    if (s->blockSize100k < 1 || s->blockSize100k > 9)
        return 0;
    n = (size_t)s->blockSize100k * 100000;
    if (s->tt != NULL)
        return BZ_DSTATE_SIZE + n * 4;
    return BZ_DSTATE_SIZE + n * 2 + (n + 1) / 2;
}
#endif

/* ------------------------------------------------------------------ */
/* liblzma: lzma_memusage(), for encoders and decoders alike.          */

#ifdef ML_HAVE_LZMA
struct lzobject {
    PyObject_HEAD
    lzma_allocator alloc;
    lzma_stream lzs;
};

static size_t
lzma_size(PyObject *op)
{
    struct lzobject *o = (struct lzobject *)op;

    /* _lzmamodule.c points the stream at the object's own allocator. */
    if (o->lzs.allocator != &o->alloc || o->lzs.internal == NULL)
        return 0;
    return (size_t)lzma_memusage(&o->lzs);
}
#endif

/* ------------------------------------------------------------------ */
/* io.StringIO: Modules/_io/stringio.c's head, the same 3.9 to 3.15.   */

struct stringio_head {
    PyObject_HEAD
    Py_UCS4 *buf;
    Py_ssize_t pos;
    Py_ssize_t string_size;
    size_t buf_size;            /* characters allocated in buf */
    int state;
};

#define STRINGIO_REALIZED 1

static size_t
stringio_size(PyObject *op)
{
    const struct stringio_head *s = (const struct stringio_head *)op;

    /* Realized (made from an initial value, or read, seeked...): the
     * text is a Py_UCS4 buffer.  While it only accumulates writes it is
     * held in the interpreter's string writer, whose layout changed in
     * every version: not counted then. */
    if (s->state != STRINGIO_REALIZED || s->buf == NULL || s->pos < 0
            || s->string_size < 0 || (size_t)s->string_size > s->buf_size)
        return 0;
    return s->buf_size * sizeof(Py_UCS4);
}

/* ------------------------------------------------------------------ */

static const struct {
    const char *tp_name;
    size_t (*size)(PyObject *);
} rules[] = {
    { "zlib.Compress", zlib_deflate_size },
    { "zlib.Decompress", zlib_inflate_size },
    { "zlib._ZlibDecompressor", zlib_inflate_size },
#ifdef ML_HAVE_BZ2
    { "_bz2.BZ2Compressor", bz2_compress_size },
    { "_bz2.BZ2Decompressor", bz2_decompress_size },
#endif
#ifdef ML_HAVE_LZMA
    /* liblzma reports decoders only: lzma_memusage() is 0 for an
     * encoder, and so is the rule. */
    { "_lzma.LZMACompressor", lzma_size },
    { "_lzma.LZMADecompressor", lzma_size },
#endif
    { "_io.StringIO", stringio_size },
};

ml_hidden_fn
ml__hidden_rule(PyTypeObject *tp)
{
    /* Exact types only: a subclass could be laid out otherwise. */
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
        if (strcmp(tp->tp_name, rules[i].tp_name) == 0)
            return rules[i].size;
    return NULL;
}
