/* SPDX-License-Identifier: MIT
 *
 * dumpline.c -- the dump line parser; see dumpline.h and
 * docs/dump-format.md.  A small JSON reader specialised for one flat
 * object per line: integers are read as exact 64-bit values (a double would
 * round addresses above 2^53), strings are unescaped only when they hold an
 * escape, and unknown values are skipped with a bounded nesting depth.
 * Lines exactly as meliae writes them take a fast path (fast_line) that
 * falls back to the general parser on any difference; long lines are read
 * in pieces (ml_dumpline_parse_head, ml_refscan_feed).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dumpline.h"
#include "ml-common.h"
#include "utf8.h"

/* Nesting allowed inside a skipped value. */
#define SKIP_MAX_DEPTH 32

struct cur {
    const char *s;
    const char *end;
    struct ml_dumpparser *p;
    const char *line;
};

void
ml_dumpparser_init(struct ml_dumpparser *p)
{
    memset(p, 0, sizeof(*p));
}

void
ml_dumpparser_free(struct ml_dumpparser *p)
{
    free(p->sbuf);
    free(p->refs);
    ml_dumpparser_init(p);
}

static int fail(struct cur *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
fail(struct cur *c, const char *fmt, ...)
{
    va_list ap;
    size_t off;

    va_start(ap, fmt);
    vsnprintf(c->p->err, sizeof(c->p->err), fmt, ap);
    va_end(ap);
    c->p->err_at = (size_t)(c->s - c->line);
    off = strlen(c->p->err);
    if (off + 24 < sizeof(c->p->err))
        snprintf(c->p->err + off, sizeof(c->p->err) - off, " (at byte %zu)",
                 (size_t)(c->s - c->line));
    return ML_EPROTO;
}

static inline void
ws(struct cur *c)
{
    /* Most calls find no space at all: one test for them. */
    if (c->s < c->end && (unsigned char)*c->s > ' ')
        return;
    while (c->s < c->end && (*c->s == ' ' || *c->s == '\t' || *c->s == '\r'
                             || *c->s == '\n'))
        c->s++;
}

static inline int
is_digit(char ch)
{
    return (unsigned)(ch - '0') < 10;
}

/* Eight ASCII digits at p, as a number, in a few multiplications (the
 * bytes little-endian: the first digit is the lowest byte); -1 if they
 * are not all digits.  Addresses and refs have 14-15 digits: two of
 * these and a few single digits instead of 15 loop turns. */
static inline int64_t
digits8(const char *p)
{
    uint64_t v;

    memcpy(&v, p, 8);
    if (((v & 0xf0f0f0f0f0f0f0f0ull) | (((v + 0x0606060606060606ull)
                                         & 0xf0f0f0f0f0f0f0f0ull) >> 4))
        != 0x3333333333333333ull)
        return -1;
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    v -= 0x3030303030303030ull;
    v = v * 10 + (v >> 8);
    v = (((v & 0x000000ff000000ffull) * (100 + (1000000ull << 32)))
         + (((v >> 16) & 0x000000ff000000ffull) * (1 + (10000ull << 32))))
        >> 32;
    return (int64_t)v;
}

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define DL_SWAR 1
#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* The value of 8 digits already taken from ASCII (bytes 0-9, the first
 * digit the lowest byte). */
static inline __attribute__((always_inline)) uint64_t
swar8_value(uint64_t x)
{
    x = x * 10 + (x >> 8);
    return (((x & 0x000000ff000000ffull) * (100 + (1000000ull << 32)))
            + (((x >> 16) & 0x000000ff000000ffull) * (1 + (10000ull << 32))))
           >> 32;
}

static const uint64_t pow10_8[9] = {
    1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000,
};
#endif

/* Reads the digits at [q, end) as far as 19 (no 19-digit number
 * overflows 64 bits) into *v; returns where they stop.  Eight bytes at a
 * time where eight are there: the digits among them counted by a mask
 * (the first byte that is not one), then valued in a few
 * multiplications -- no loop turn per digit (addresses and refs have
 * 14-15). */
static inline __attribute__((always_inline)) const char *
digits19(const char *q, const char *end, uint64_t *v)
{
    const char *lim = end - q > 19 ? q + 19 : end;
    uint64_t r = *v;
#ifdef DL_SWAR
    for (int blocks = 0; blocks < 2 && end - q >= 8; blocks++) {
        uint64_t x, m;
        unsigned nd;

        memcpy(&x, q, 8);
        x ^= 0x30 * ONES;               /* digits now bytes 0-9 */
        /* A byte's high bit: it is 10 or more (+ 0x76 carries into bit
         * 7), or was 0x80 or more.  A carry out of a byte only reaches
         * those after it: the lowest flag is exact. */
        m = ((x + 0x76 * ONES) | x) & HIGHS;
        if (m == 0) {
            r = r * 100000000u + swar8_value(x);
            q += 8;
            continue;
        }
        nd = (unsigned)__builtin_ctzll(m) >> 3;
        if (nd > 0) {
            /* The digits to the top bytes, zeros (leading zeros) below. */
            r = r * pow10_8[nd] + swar8_value(x << (8 * (8 - nd)));
            q += nd;
        }
        *v = r;
        return q;
    }
#else
    int64_t d8;

    while (lim - q >= 8 && (d8 = digits8(q)) >= 0) {
        r = r * 100000000u + (uint64_t)d8;
        q += 8;
    }
#endif
    while (q < lim && is_digit(*q))
        r = r * 10 + (unsigned)(*q++ - '0');
    *v = r;
    return q;
}

static inline int
expect(struct cur *c, char ch)
{
    ws(c);
    if (c->s >= c->end || *c->s != ch)
        return 0;
    c->s++;
    return 1;
}

/* A non-negative integer that fits in 64 bits. */
static int
read_u64(struct cur *c, uint64_t *out, const char *what)
{
    uint64_t v = 0;
    const char *start;

    ws(c);
    start = c->s;
    /* 19 digits cannot overflow: no check for them. */
    c->s = digits19(c->s, c->end, &v);
    while (c->s < c->end && *c->s >= '0' && *c->s <= '9') {
        unsigned d = (unsigned)(*c->s - '0');

        if (v > (UINT64_MAX - d) / 10)
            return fail(c, "%s does not fit in 64 bits", what);
        v = v * 10 + d;
        c->s++;
    }
    if (c->s == start)
        return fail(c, "%s is not a non-negative integer", what);
    if (c->s - start > 1 && *start == '0')
        return fail(c, "%s has a leading zero", what);
    *out = v;
    return 0;
}

static int
grow_sbuf(struct ml_dumpparser *p, size_t need)
{
    size_t ncap;
    char *nb;

    if (p->slen + need <= p->scap)
        return 0;
    ncap = p->scap ? p->scap : 256;
    while (ncap < p->slen + need)
        ncap *= 2;
    nb = realloc(p->sbuf, ncap);
    if (nb == NULL)
        return -ENOMEM;
    p->sbuf = nb;
    p->scap = ncap;
    return 0;
}

static inline int
hex4(const char *s, unsigned *out)
{
    unsigned v = 0;

    for (int i = 0; i < 4; i++) {
        unsigned ch = (unsigned char)s[i], d = ch - '0';

        if (d >= 10) {
            d = (ch | 0x20) - 'a';      /* 'A'-'F' too */
            if (d >= 6)
                return 0;
            d += 10;
        }
        v = v << 4 | d;
    }
    *out = v;
    return 1;
}

static size_t
put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Length of the raw (unescaped) character at q: 1 for ASCII, its UTF-8
 * sequence's for others; 0 with the error set for a control character or
 * ill-formed UTF-8. */
static size_t
raw_char(struct cur *c, const char *q, const char *what)
{
    size_t k = 1;

    if ((unsigned char)*q < 0x20) {
        c->s = q;
        fail(c, "control character in %s", what);
        return 0;
    }
    if ((unsigned char)*q >= 0x80) {
        /* Encoded surrogates pass (utf8.h): they are what a lone \udc80
         * escape unescapes to, so the parser's own output parses again. */
        k = ml_utf8_seq_len((const unsigned char *)q,
                            (const unsigned char *)c->end);
        if (k == 0) {
            c->s = q;
            fail(c, "invalid UTF-8 in %s", what);
        }
    }
    return k;
}

/* Reads a JSON string.  *off and *len: where it is -- in the line when it
 * needed no unescaping (*in_line = 1), else in p->sbuf (offsets, since
 * sbuf may move as later strings grow it). */
static int
read_str(struct cur *c, size_t *off, size_t *len, int *in_line,
         const char *line, const char *what)
{
    const char *start, *q;
    size_t o;

    if (!expect(c, '"'))
        return fail(c, "%s is not a string", what);
    start = c->s;
    /* Plain ASCII first, the common case, a byte at a time without the
     * checks raw_char makes for the rest. */
    for (q = start; q < c->end; q++) {
        unsigned char ch = (unsigned char)*q;

        if (ch < 0x20 || ch >= 0x80 || ch == '"' || ch == '\\')
            break;
    }
    for (; q < c->end && *q != '"' && *q != '\\'; ) {
        size_t k = raw_char(c, q, what);

        if (k == 0)
            return ML_EPROTO;
        q += k;
    }
    if (q < c->end && *q == '"') {
        *in_line = 1;
        *off = (size_t)(start - line);
        *len = (size_t)(q - start);
        c->s = q + 1;
        return 0;
    }
    /* Has escapes: unescape into sbuf.  Output is never longer than the
     * input (an escape of 6 or 12 bytes gives at most 4). */
    if (grow_sbuf(c->p, (size_t)(c->end - start)) < 0)
        return -ENOMEM;
    *in_line = 0;
    *off = o = c->p->slen;
    /* [start, q) was checked above (q is at the first '\\'): at once. */
    if (q > start) {            /* sbuf is NULL until a byte needs it */
        memcpy(c->p->sbuf + o, start, (size_t)(q - start));
        o += (size_t)(q - start);
    }
    while (q < c->end && *q != '"') {
        unsigned cp, lo;

        if (*q != '\\') {
            const char *r = q;
            size_t k;

            /* A run of plain ASCII, copied at once. */
            while (r < c->end && (unsigned char)*r >= 0x20
                   && (unsigned char)*r < 0x80 && *r != '"' && *r != '\\')
                r++;
            if (r > q) {
                memcpy(c->p->sbuf + o, q, (size_t)(r - q));
                o += (size_t)(r - q);
                q = r;
                continue;
            }
            if ((k = raw_char(c, q, what)) == 0)
                return ML_EPROTO;
            memcpy(c->p->sbuf + o, q, k);
            o += k;
            q += k;
            continue;
        }
        if (q + 1 >= c->end) {
            q = c->end;                 /* a lone '\\' at the end */
            break;
        }
        switch (q[1]) {
        case '"': case '\\': case '/':
            c->p->sbuf[o++] = q[1]; q += 2; continue;
        case 'n': c->p->sbuf[o++] = '\n'; q += 2; continue;
        case 'r': c->p->sbuf[o++] = '\r'; q += 2; continue;
        case 't': c->p->sbuf[o++] = '\t'; q += 2; continue;
        case 'b': c->p->sbuf[o++] = '\b'; q += 2; continue;
        case 'f': c->p->sbuf[o++] = '\f'; q += 2; continue;
        case 'u':
            if (c->end - q < 6 || !hex4(q + 2, &cp)) {
                c->s = q;
                return fail(c, "bad \\u escape in %s", what);
            }
            q += 6;
            if (cp >= 0xd800 && cp < 0xdc00 && c->end - q >= 6
                    && q[0] == '\\' && q[1] == 'u' && hex4(q + 2, &lo)
                    && lo >= 0xdc00 && lo < 0xe000) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                q += 6;
            }
            o += put_utf8(c->p->sbuf + o, cp);
            continue;
        default:
            c->s = q;
            return fail(c, "bad escape in %s", what);
        }
    }
    if (q >= c->end) {
        c->s = q;
        return fail(c, "unterminated string in %s", what);
    }
    *len = o - *off;
    c->p->slen = o;
    c->s = q + 1;
    return 0;
}

/* A JSON number; sets *is_int when it has no fraction or exponent. */
static int
read_number(struct cur *c, const char **start, size_t *len, int *is_int)
{
    const char *q;

    ws(c);
    q = *start = c->s;
    *is_int = 1;
    if (q < c->end && *q == '-')
        q++;
    if (q >= c->end || *q < '0' || *q > '9')
        return fail(c, "value is not a JSON value");
    if (*q == '0' && q + 1 < c->end && q[1] >= '0' && q[1] <= '9')
        return fail(c, "number has a leading zero");
    while (q < c->end && *q >= '0' && *q <= '9')
        q++;
    if (q < c->end && *q == '.') {
        *is_int = 0;
        q++;
        if (q >= c->end || *q < '0' || *q > '9')
            return fail(c, "number has no digits after '.'");
        while (q < c->end && *q >= '0' && *q <= '9')
            q++;
    }
    if (q < c->end && (*q == 'e' || *q == 'E')) {
        *is_int = 0;
        q++;
        if (q < c->end && (*q == '+' || *q == '-'))
            q++;
        if (q >= c->end || *q < '0' || *q > '9')
            return fail(c, "number has no exponent digits");
        while (q < c->end && *q >= '0' && *q <= '9')
            q++;
    }
    *len = (size_t)(q - *start);
    c->s = q;
    return 0;
}

static int
literal(struct cur *c, const char *word)
{
    size_t n = strlen(word);

    ws(c);
    if ((size_t)(c->end - c->s) < n || memcmp(c->s, word, n) != 0)
        return 0;
    c->s += n;
    return 1;
}

/* Skips any JSON value (for keys this reader does not know). */
static int
skip_value(struct cur *c, const char *line, int depth)
{
    size_t off, len;
    int in_line, is_int, rc;
    const char *t;

    ws(c);
    if (c->s >= c->end)
        return fail(c, "line ends where a value should be");
    switch (*c->s) {
    case '"':
        rc = read_str(c, &off, &len, &in_line, line, "a value");
        if (rc == 0 && !in_line)
            c->p->slen = off;           /* give the scratch back */
        return rc;
    case '[':
    case '{': {
        char close = *c->s == '[' ? ']' : '}';
        int obj = close == '}';

        if (depth >= SKIP_MAX_DEPTH)
            return fail(c, "value nested too deeply (more than %d levels)", SKIP_MAX_DEPTH);
        c->s++;
        if (expect(c, close))
            return 0;
        for (;;) {
            if (obj) {
                if ((rc = read_str(c, &off, &len, &in_line, line, "a key")) != 0)
                    return rc;
                if (!in_line)
                    c->p->slen = off;
                if (!expect(c, ':'))
                    return fail(c, "expected ':' after a key");
            }
            if ((rc = skip_value(c, line, depth + 1)) != 0)
                return rc;
            if (expect(c, close))
                return 0;
            if (!expect(c, ','))
                return fail(c, "expected ',' or '%c'", close);
        }
    }
    case 't':
        return literal(c, "true") ? 0 : fail(c, "bad literal");
    case 'f':
        return literal(c, "false") ? 0 : fail(c, "bad literal");
    case 'n':
        return literal(c, "null") ? 0 : fail(c, "bad literal");
    default:
        return read_number(c, &t, &len, &is_int);
    }
}

static int
read_refs(struct cur *c, size_t *nrefs)
{
    struct ml_dumpparser *p = c->p;
    size_t n = 0;
    int rc;

    if (!expect(c, '['))
        return fail(c, "refs is not a list");
    if (expect(c, ']')) {
        *nrefs = 0;
        return 0;
    }
    for (;;) {
        if (p->max_refs != 0 && n == p->max_refs) {
            fail(c, "more than %zu refs on one line", p->max_refs);
            return ML_ETOOBIG;
        }
        if (n == p->rcap) {
            size_t ncap = p->rcap ? p->rcap * 2 : 64;

            if (p->max_refs != 0 && ncap > p->max_refs)
                ncap = p->max_refs;
            uint64_t *nr = realloc(p->refs, ncap * sizeof(*nr));

            if (nr == NULL)
                return -ENOMEM;
            p->refs = nr;
            p->rcap = ncap;
        }
        if ((rc = read_u64(c, &p->refs[n], "a ref")) != 0)
            return rc;
        n++;
        if (expect(c, ']'))
            break;
        if (!expect(c, ','))
            return fail(c, "expected ',' or ']' in refs");
    }
    *nrefs = n;
    return 0;
}

/* Which keys were seen, for duplicates and for what is required. */
enum {
    K_ADDRESS = 1, K_TYPE = 2, K_SIZE = 4, K_NAME = 8, K_LEN = 16,
    K_VALUE = 32, K_REFS = 64, K_TRACE = 128, K_TRACEBACK = 256,
};

static const char *
key_name(unsigned bit)
{
    switch (bit) {
    case K_ADDRESS: return "address";
    case K_TYPE: return "type";
    case K_SIZE: return "size";
    case K_NAME: return "name";
    case K_LEN: return "len";
    case K_VALUE: return "value";
    case K_TRACE: return "trace";
    case K_TRACEBACK: return "traceback";
    default: return "refs";
    }
}

/* The known keys as every meliae writer spells them (no escapes): the
 * key's bit with c moved past its closing '"', else 0 and c unmoved (the
 * general path reads it).  Most of a line's parse is its keys. */
static inline unsigned
fast_key(struct cur *c)
{
    const char *k;
    size_t avail;

    ws(c);
    if (c->s >= c->end || *c->s != '"')
        return 0;
    k = c->s + 1;
    avail = (size_t)(c->end - k);
    if (avail == 0)
        return 0;
#define FK(lit, bit)                                                        \
    if (avail >= sizeof(lit) - 1 && memcmp(k, lit, sizeof(lit) - 1) == 0) {\
        c->s = k + sizeof(lit) - 1;                                         \
        return bit;                                                         \
    }                                                                       \
    return 0
    switch (*k) {
    case 'a': FK("address\"", K_ADDRESS);
    case 't':
        if (avail >= 6 && memcmp(k, "trace\"", 6) == 0) {
            c->s = k + 6;
            return K_TRACE;
        }
        FK("type\"", K_TYPE);
    case 's': FK("size\"", K_SIZE);
    case 'n': FK("name\"", K_NAME);
    case 'l': FK("len\"", K_LEN);
    case 'v': FK("value\"", K_VALUE);
    case 'r': FK("refs\"", K_REFS);
    default: return 0;
    }
#undef FK
}

static int
key_is(const char *k, size_t n, const char *lit)
{
    size_t m = strlen(lit);

    return n == m && memcmp(k, lit, m) == 0;
}

/* Within this many bytes of the end of a head, a syntax error may only
 * mean that the bytes after it have not arrived: the longest token that
 * fails only at its end (a number, a literal, an escape, a UTF-8
 * sequence) is shorter. */
#define HEAD_SLACK 64

/* Empties out and p's per-line state before a line is parsed: nothing
 * of an earlier line shows.  Field by field: a memset of the struct is a
 * slow `rep stos`. */
static inline void
line_reset(struct ml_dumpparser *p, struct ml_dumpline *out)
{
    out->kind = 0;
    out->address = out->size = out->len = 0;
    out->type = out->name = out->value = NULL;
    out->type_len = out->name_len = out->value_len = 0;
    out->has_name = out->has_len = 0;
    out->has_trace = out->has_traceback = 0;
    out->trace = out->traceback = 0;
    out->vkind = ML_VAL_NONE;
    out->refs = NULL;
    out->nrefs = 0;
    p->slen = 0;
    p->err[0] = '\0';
}

/* The whole-line parse, or with refs_at != NULL the head of a long line
 * (ml_dumpline_parse_head). */
static int
parse_line(struct ml_dumpparser *p, const char *s, size_t n,
           struct ml_dumpline *out, size_t *refs_at)
{
    struct cur c = { s, s + n, p, s };
    size_t type_off = 0, name_off = 0, value_off = 0;
    int type_in = 1, name_in = 1, value_in = 1;
    unsigned seen = 0;
    int rc;

    line_reset(p, out);
    if (refs_at == NULL)
        while (c.end > s && (c.end[-1] == '\n' || c.end[-1] == '\r'))
            c.end--;

    if (!expect(&c, '{'))
        return fail(&c, "line is not a JSON object");
    if (!expect(&c, '}')) {
        for (;;) {
            size_t koff, klen;
            int kin;
            const char *k;
            unsigned bit = 0;

            bit = fast_key(&c);
            if (bit != 0) {
                klen = 0;
                k = "";
                if (!expect(&c, ':'))
                    return fail(&c, "expected ':' after a key");
                goto have_key;
            }
            if ((rc = read_str(&c, &koff, &klen, &kin, s, "a key")) != 0)
                return rc;
            k = kin ? s + koff : p->sbuf + koff;
            if (!expect(&c, ':'))
                return fail(&c, "expected ':' after a key");
            if (key_is(k, klen, "address"))
                bit = K_ADDRESS;
            else if (key_is(k, klen, "type"))
                bit = K_TYPE;
            else if (key_is(k, klen, "size"))
                bit = K_SIZE;
            else if (key_is(k, klen, "name"))
                bit = K_NAME;
            else if (key_is(k, klen, "len"))
                bit = K_LEN;
            else if (key_is(k, klen, "value"))
                bit = K_VALUE;
            else if (key_is(k, klen, "refs"))
                bit = K_REFS;
            else if (key_is(k, klen, "trace"))
                bit = K_TRACE;
            else if (key_is(k, klen, "traceback"))
                bit = K_TRACEBACK;
            if (!kin)
                p->slen = koff;         /* the key's scratch is free again */
have_key:
            if (seen & bit)
                return fail(&c, "key \"%.*s\" appears twice",
                            (int)(klen ? klen : strlen(key_name(bit))),
                            klen ? k : key_name(bit));
            seen |= bit;

            switch (bit) {
            case K_ADDRESS:
                rc = read_u64(&c, &out->address, "address");
                break;
            case K_TYPE:
                rc = read_str(&c, &type_off, &out->type_len, &type_in, s, "type");
                break;
            case K_SIZE:
                rc = read_u64(&c, &out->size, "size");
                break;
            case K_NAME:
                ws(&c);
                if (c.s < c.end && *c.s == 'n' && literal(&c, "null")) {
                    rc = 0;
                    break;
                }
                out->has_name = 1;
                rc = read_str(&c, &name_off, &out->name_len, &name_in, s, "name");
                break;
            case K_LEN:
                out->has_len = 1;
                rc = read_u64(&c, &out->len, "len");
                break;
            case K_TRACE:
                out->has_trace = 1;
                rc = read_u64(&c, &out->trace, "trace");
                break;
            case K_TRACEBACK:
                out->has_traceback = 1;
                rc = read_u64(&c, &out->traceback, "traceback");
                break;
            case K_VALUE:
                ws(&c);
                if (c.s >= c.end) {
                    rc = fail(&c, "line ends where a value should be");
                } else if (*c.s == '"') {
                    out->vkind = ML_VAL_STR;
                    rc = read_str(&c, &value_off, &out->value_len, &value_in,
                                  s, "value");
                } else if (literal(&c, "true")) {
                    out->vkind = ML_VAL_TRUE;
                    rc = 0;
                } else if (literal(&c, "false")) {
                    out->vkind = ML_VAL_FALSE;
                    rc = 0;
                } else if (literal(&c, "null")) {
                    out->vkind = ML_VAL_NULL;
                    rc = 0;
                } else {
                    int is_int;

                    rc = read_number(&c, &out->value, &out->value_len, &is_int);
                    out->vkind = is_int ? ML_VAL_INT : ML_VAL_FLOAT;
                }
                break;
            case K_REFS:
                if (refs_at != NULL) {
                    if (!expect(&c, '['))
                        return fail(&c, "refs is not a list");
                    *refs_at = (size_t)(c.s - s);
                    goto head_done;
                }
                rc = read_refs(&c, &out->nrefs);
                break;
            default:
                rc = skip_value(&c, s, 0);
                break;
            }
            if (rc != 0)
                return rc;
            if (expect(&c, '}'))
                break;
            if (!expect(&c, ','))
                return fail(&c, "expected ',' or '}'");
        }
    }
    ws(&c);
    if (c.s != c.end)
        return fail(&c, "text after the end of the object");
    if (refs_at != NULL) {
        /* The object ended before any refs: a line without refs, all
         * head, unless its '\n' is here (then it is no long line). */
        c.s = c.end;
        return fail(&c, "a long line has no \"refs\"");
    }

head_done:
    if (seen & K_TYPE)
        out->type = type_in ? s + type_off : p->sbuf + type_off;
    if (out->has_name)
        out->name = name_in ? s + name_off : p->sbuf + name_off;
    /* A name is a key (types are counted by it) and goes on as a C string
     * (cJSON's answers): "dict\u0000x" would be shown, and summed, as
     * "dict".  Refused rather than cut; only an escape can put a NUL
     * there (raw control bytes are refused above). */
    if ((seen & K_TYPE) && !type_in && memchr(out->type, 0, out->type_len))
        return fail(&c, "a NUL character (\\u0000) in \"type\"");
    if (out->has_name && !name_in && memchr(out->name, 0, out->name_len))
        return fail(&c, "a NUL character (\\u0000) in \"name\"");
    if (out->vkind == ML_VAL_STR)
        out->value = value_in ? s + value_off : p->sbuf + value_off;
    out->refs = refs_at != NULL ? NULL : p->refs;
    if (!(seen & K_ADDRESS)) {
        if (refs_at != NULL)
            return fail(&c, "a line with refs has no \"address\" before them");
        out->kind = ML_LINE_OTHER;
        return 0;
    }
    if ((seen & (K_TYPE | K_SIZE)) != (K_TYPE | K_SIZE))
        return fail(&c, "object has no \"%s\"%s", seen & K_TYPE ? "size" : "type",
                    refs_at != NULL ? " before its refs" : "");
    out->kind = ML_LINE_OBJECT;
    return 0;
}

/* ---- the fast path: a line exactly as meliae writes it ----
 *
 *   {"address": N, "type": "T", "size": N[, "name": "S"][, "len": N]
 *    [, "value": "S"|N|true|false|null], "refs": [N, N, ...]}
 *
 * with ", " and ": " separators, plain ASCII strings, integers of at most
 * 19 digits without leading zeros.  Anything else (escapes, UTF-8, other
 * spacing or order, floats, unknown keys, any error) returns 0 and the
 * general parser reads the line from the start, so the fast path only
 * ever gives what the general one would. */

#define LIT(q, end, lit) ((size_t)((end) - (q)) >= sizeof(lit) - 1 \
                          && memcmp((q), (lit), sizeof(lit) - 1) == 0)

/* A plain number at q: its end, or NULL. */
static inline __attribute__((always_inline)) const char *
fast_u64(const char *q, const char *end, uint64_t *v)
{
    const char *e;

    *v = 0;
    e = digits19(q, end, v);
    if (e == q || (e - q > 1 && *q == '0') || (e < end && is_digit(*e)))
        return NULL;
    return e;
}

/* A plain ASCII string after its '"': the end quote, or NULL. */
static inline __attribute__((always_inline)) const char *
fast_str(const char *q, const char *end)
{
#ifdef DL_SWAR
    /* Eight bytes at a time: the first that is '"', '\\', a control or
     * not ASCII (the lowest flag of each test is exact, as in digits19). */
    while (end - q >= 8) {
        uint64_t w, m;

        memcpy(&w, q, 8);
        m = (((w ^ 0x22 * ONES) - ONES) & ~(w ^ 0x22 * ONES))
            | (((w ^ 0x5c * ONES) - ONES) & ~(w ^ 0x5c * ONES))
            | ((w - 0x20 * ONES) & ~w)
            | w;
        m &= HIGHS;
        if (m != 0) {
            q += (unsigned)__builtin_ctzll(m) >> 3;
            return *q == '"' ? q : NULL;
        }
        q += 8;
    }
#endif
    for (; q < end; q++) {
        unsigned char ch = (unsigned char)*q;

        if (ch == '"')
            return q;
        if (ch < 0x20 || ch >= 0x80 || ch == '\\')
            return NULL;
    }
    return NULL;
}

static int
fast_line(struct ml_dumpparser *p, const char *s, size_t n,
          struct ml_dumpline *out)
{
    const char *q = s, *end = s + n, *e;
    size_t nr = 0;

    while (end > s && (end[-1] == '\n' || end[-1] == '\r'))
        end--;
#define EAT(lit) (LIT(q, end, lit) ? (q += sizeof(lit) - 1, 1) : 0)
    if (!EAT("{\"address\": ") ||
        (q = fast_u64(q, end, &out->address)) == NULL ||
        !EAT(", \"type\": \"") || (e = fast_str(q, end)) == NULL)
        return 0;
    out->type = q;
    out->type_len = (size_t)(e - q);
    q = e + 1;
    if (!EAT(", \"size\": ") || (q = fast_u64(q, end, &out->size)) == NULL)
        return 0;
    if (EAT(", \"name\": \"")) {
        if ((e = fast_str(q, end)) == NULL)
            return 0;
        out->has_name = 1;
        out->name = q;
        out->name_len = (size_t)(e - q);
        q = e + 1;
    }
    if (EAT(", \"len\": ")) {
        if ((q = fast_u64(q, end, &out->len)) == NULL)
            return 0;
        out->has_len = 1;
    }
    if (EAT(", \"value\": ")) {
        if (q < end && *q == '"') {
            out->vkind = ML_VAL_STR;
            if ((e = fast_str(q + 1, end)) != NULL) {
                out->value = q + 1;
                out->value_len = (size_t)(e - out->value);
                q = e + 1;
            } else {
                /* Escapes or UTF-8 (a tenth of a heap's strs): the
                 * general string reader, for this string only (it is
                 * the line's only one in sbuf). */
                struct cur c = { q, end, p, s };
                size_t off, len;
                int in_line;

                if (read_str(&c, &off, &len, &in_line, s, "value") != 0)
                    return 0;
                out->value = (in_line ? s : p->sbuf) + off;
                out->value_len = len;
                q = c.s;
            }
        } else if (q < end && (is_digit(*q) || *q == '-')) {
            uint64_t v;

            out->value = q;
            if (*q == '-')
                q++;
            if ((q = fast_u64(q, end, &v)) == NULL)
                return 0;               /* a long int */
            out->vkind = ML_VAL_INT;
            if (q < end && *q == '.') {
                out->vkind = ML_VAL_FLOAT;
                if (++q == end || !is_digit(*q))
                    return 0;
                while (q < end && is_digit(*q))
                    q++;
            }
            if (q < end && (*q == 'e' || *q == 'E')) {
                out->vkind = ML_VAL_FLOAT;
                if (++q < end && (*q == '+' || *q == '-'))
                    q++;
                if (q == end || !is_digit(*q))
                    return 0;
                while (q < end && is_digit(*q))
                    q++;
            }
            out->value_len = (size_t)(q - out->value);
        } else if (EAT("null")) {
            out->vkind = ML_VAL_NULL;
        } else if (EAT("true")) {
            out->vkind = ML_VAL_TRUE;
        } else if (EAT("false")) {
            out->vkind = ML_VAL_FALSE;
        } else {
            return 0;
        }
    }
    if (EAT(", \"trace\": ")) {
        if ((q = fast_u64(q, end, &out->trace)) == NULL)
            return 0;
        out->has_trace = 1;
    }
    if (!EAT(", \"refs\": ["))
        return 0;
    if (q < end && *q == ']') {
        q++;
    } else {
        for (;;) {
            if (nr == p->rcap) {
                if (p->max_refs != 0 && nr == p->max_refs)
                    return 0;           /* the general path says so */
                size_t ncap = p->rcap ? p->rcap * 2 : 64;

                if (p->max_refs != 0 && ncap > p->max_refs)
                    ncap = p->max_refs;
                uint64_t *nb = realloc(p->refs, ncap * sizeof(*nb));

                if (nb == NULL)
                    return 0;
                p->refs = nb;
                p->rcap = ncap;
            }
            if ((q = fast_u64(q, end, &p->refs[nr])) == NULL)
                return 0;
            nr++;
            if (EAT(", "))
                continue;
            if (q < end && *q == ']') {
                q++;
                break;
            }
            return 0;
        }
    }
    if (q + 1 != end || *q != '}')
        return 0;
    out->refs = p->refs;
    out->nrefs = nr;
    out->kind = ML_LINE_OBJECT;
    return 1;
#undef EAT
}

int
ml_dumpline_parse(struct ml_dumpparser *p, const char *s, size_t n,
                  struct ml_dumpline *out)
{
    line_reset(p, out);         /* as parse_line does, for fast_line */
    if (fast_line(p, s, n, out))
        return 0;
    return parse_line(p, s, n, out, NULL);
}

int
ml_dumpline_parse_head(struct ml_dumpparser *p, const char *s, size_t n,
                       struct ml_dumpline *out, size_t *refs_at)
{
    const char *nl = memchr(s, '\n', n);
    size_t at = 0;
    int rc;

    /* Only the line: a '\n' ends it, and whatever follows is not ours. */
    if (nl != NULL)
        n = (size_t)(nl - s);
    rc = parse_line(p, s, n, out, &at);
    /* An error past the refs' '[' (at != 0: a key missing) is final. */
    if (rc == ML_EPROTO && nl == NULL && at == 0 && p->err_at + HEAD_SLACK >= n)
        return ML_DUMPLINE_MORE;
    if (rc == 0)
        *refs_at = at;
    return rc;
}

/* ---- the refs of a long line ---- */

enum {
    RS_FIRST,               /* after '[': a ref or ']' */
    RS_VALUE,               /* after ',': a ref */
    RS_NUM,                 /* in a ref's digits */
    RS_AFTER,               /* after a ref: ',' or ']' */
    RS_CLOSE,               /* after ']': '}' */
    RS_TAIL,                /* after '}': the line's end */
    RS_DONE,
};

void
ml_refscan_init(struct ml_refscan *r)
{
    memset(r, 0, sizeof(*r));
    r->st = RS_FIRST;
}

static int rs_fail(struct ml_refscan *r, uint64_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
rs_fail(struct ml_refscan *r, uint64_t at, const char *fmt, ...)
{
    va_list ap;
    size_t off;

    va_start(ap, fmt);
    vsnprintf(r->err, sizeof(r->err), fmt, ap);
    va_end(ap);
    off = strlen(r->err);
    if (off + 40 < sizeof(r->err))
        snprintf(r->err + off, sizeof(r->err) - off,
                 " (at byte %llu after the refs' '[')", (unsigned long long)at);
    return ML_EPROTO;
}

static inline int
rs_ws(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r';
}

int
ml_refscan_feed(struct ml_refscan *r, const char *s, size_t n,
                uint64_t *out, size_t cap, size_t *nout, size_t *used)
{
    const char *q = s, *end = s + n;
    size_t k = 0;
    int st = r->st, rc = 0;
    uint64_t v = r->v;
    unsigned nd = r->nd;

#define AT ((uint64_t)(r->pos + (uint64_t)(q - s)))
    while (q < end) {
        char ch = *q;

        switch (st) {
        case RS_NUM:
            while (q < end && (unsigned)(*q - '0') < 10) {
                unsigned d = (unsigned)(*q - '0');

                if (nd == 1 && v == 0) {
                    rc = rs_fail(r, AT, "a ref has a leading zero");
                    goto out;
                }
                if (v > (UINT64_MAX - d) / 10) {
                    rc = rs_fail(r, AT, "a ref does not fit in 64 bits");
                    goto out;
                }
                v = v * 10 + d;
                nd++;
                q++;
            }
            if (q == end)
                goto out;
            out[k++] = v;           /* room was checked at its first digit */
            r->count++;
            st = RS_AFTER;
            continue;
        case RS_FIRST:
        case RS_VALUE:
            if (rs_ws(ch)) {
                q++;
                continue;
            }
            if ((unsigned)(ch - '0') < 10) {
                if (k == cap)
                    goto out;
                v = 0;
                nd = 0;
                st = RS_NUM;
                continue;
            }
            if (ch == ']' && st == RS_FIRST) {
                st = RS_CLOSE;
                q++;
                continue;
            }
            rc = rs_fail(r, AT, ch == '\n' ? "line ends inside refs"
                                           : "a ref is not a non-negative integer");
            goto out;
        case RS_AFTER:
            if (rs_ws(ch)) {
                q++;
            } else if (ch == ',') {
                st = RS_VALUE;
                q++;
            } else if (ch == ']') {
                st = RS_CLOSE;
                q++;
            } else {
                rc = rs_fail(r, AT, ch == '\n' ? "line ends inside refs"
                                               : "expected ',' or ']' in refs");
                goto out;
            }
            continue;
        case RS_CLOSE:
            if (rs_ws(ch)) {
                q++;
            } else if (ch == '}') {
                st = RS_TAIL;
                q++;
            } else {
                rc = rs_fail(r, AT, ch == ','
                             ? "a key after \"refs\": in a long line refs must "
                               "be the last key"
                             : "expected '}' after refs");
                goto out;
            }
            continue;
        case RS_TAIL:
            if (rs_ws(ch)) {
                q++;
                continue;
            }
            if (ch == '\n') {
                q++;
                st = RS_DONE;
                rc = ML_REFSCAN_END;
                goto out;
            }
            rc = rs_fail(r, AT, "text after the end of the object");
            goto out;
        default:
            rc = rs_fail(r, AT, "line already ended");
            goto out;
        }
    }
out:
#undef AT
    r->st = st;
    r->v = v;
    r->nd = nd;
    r->pos += (uint64_t)(q - s);
    *nout = k;
    *used = (size_t)(q - s);
    return rc;
}

int
ml_dumpline_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return 0;
    return 1;
}
