/* SPDX-License-Identifier: MIT
 *
 * dumpline_v0.c -- the dump line parser as it was before issue 11
 * (common/dumpline.c at 25e6db9), its functions renamed v0_*: the
 * baseline bench_ingest.c measures the current parser against, in the
 * same binary and the same run.  Not used by meliae itself.
 */
#define ml_dumpparser_init v0_dumpparser_init
#define ml_dumpparser_free v0_dumpparser_free
#define ml_dumpline_parse v0_dumpline_parse
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
    off = strlen(c->p->err);
    if (off + 24 < sizeof(c->p->err))
        snprintf(c->p->err + off, sizeof(c->p->err) - off, " (at byte %zu)",
                 (size_t)(c->s - c->line));
    return ML_EPROTO;
}

static inline void
ws(struct cur *c)
{
    while (c->s < c->end && (*c->s == ' ' || *c->s == '\t' || *c->s == '\r'
                             || *c->s == '\n'))
        c->s++;
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

static int
hex4(const char *s, unsigned *out)
{
    unsigned v = 0;

    for (int i = 0; i < 4; i++) {
        char ch = s[i];

        v <<= 4;
        if (ch >= '0' && ch <= '9')
            v |= (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f')
            v |= (unsigned)(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F')
            v |= (unsigned)(ch - 'A' + 10);
        else
            return 0;
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
    for (q = start; q < c->end && *q != '"' && *q != '\\'; ) {
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
    for (q = start; q < c->end && *q != '"'; ) {
        unsigned cp, lo;

        if (*q != '\\') {
            size_t k = raw_char(c, q, what);

            if (k == 0)
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
    K_VALUE = 32, K_REFS = 64,
};

static int
key_is(const char *k, size_t n, const char *lit)
{
    size_t m = strlen(lit);

    return n == m && memcmp(k, lit, m) == 0;
}

int
ml_dumpline_parse(struct ml_dumpparser *p, const char *s, size_t n,
                  struct ml_dumpline *out)
{
    struct cur c = { s, s + n, p, s };
    size_t type_off = 0, name_off = 0, value_off = 0;
    int type_in = 1, name_in = 1, value_in = 1;
    unsigned seen = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    p->slen = 0;
    p->err[0] = '\0';
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
            if (!kin)
                p->slen = koff;         /* the key's scratch is free again */
            if (seen & bit)
                return fail(&c, "key \"%.*s\" appears twice", (int)klen, k);
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

    if (seen & K_TYPE)
        out->type = type_in ? s + type_off : p->sbuf + type_off;
    if (out->has_name)
        out->name = name_in ? s + name_off : p->sbuf + name_off;
    if (out->vkind == ML_VAL_STR)
        out->value = value_in ? s + value_off : p->sbuf + value_off;
    out->refs = p->refs;
    if (!(seen & K_ADDRESS)) {
        out->kind = ML_LINE_OTHER;
        return 0;
    }
    if ((seen & (K_TYPE | K_SIZE)) != (K_TYPE | K_SIZE))
        return fail(&c, "object has no \"%s\"", seen & K_TYPE ? "size" : "type");
    out->kind = ML_LINE_OBJECT;
    return 0;
}
