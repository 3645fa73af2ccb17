/* SPDX-License-Identifier: MIT
 *
 * fuzz_dumpline.c -- libFuzzer target for the dump line parser
 * (common/dumpline.c).  Feeds arbitrary bytes to ml_dumpline_parse and
 * checks what must hold for any input:
 *
 *   - the return is 0, ML_EPROTO (with a NUL-terminated, non-empty
 *     p->err) or -ENOMEM;
 *   - on success every string (type, name, value) lies inside the input or
 *     inside the used part of the parser's scratch, is no longer than the
 *     input, and every byte of it and of refs is readable;
 *   - nrefs is at most the input length;
 *   - an object's type and name hold no NUL (a value may);
 *   - on an ML_LINE_OTHER line too, whatever the struct reports (has_name,
 *     a string value, a type length, refs) comes with a valid pointer;
 *   - a parser that has seen other lines (scratch already grown) gives the
 *     same result as a fresh one;
 *   - an object line written back in canonical form parses to the same
 *     fields (the parser passes raw bytes through, so this holds for any
 *     decoded bytes);
 *   - the long-line path (ml_dumpline_parse_head, ml_refscan_feed in
 *     pieces) returns only its documented codes, and agrees with the
 *     whole-line parse on a line both accept.
 *
 * Build with libFuzzer:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Icommon \
 *       tests/fuzz/fuzz_dumpline.c common/dumpline.c -o fuzz_dumpline
 *   ./fuzz_dumpline -max_total_time=180 tests/fuzz/corpus/dumpline
 * Without libFuzzer, tests/fuzz/replay.c runs it on the corpus files.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dumpline.h"
#include "ml-common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do {                                                \
        if (!(cond)) {                                                  \
            fprintf(stderr, "fuzz_dumpline: %s:%d: check failed: %s\n", \
                    __FILE__, __LINE__, #cond);                         \
            abort();                                                    \
        }                                                               \
    } while (0)

/* A parser kept across inputs, so its scratch has grown and holds stale
 * bytes of earlier lines. */
static struct ml_dumpparser persistent;
static int persistent_ready;

static int
within(const char *p, size_t len, const char *base, size_t n)
{
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)base;

    return p != NULL && base != NULL && a >= b && a - b <= n
        && len <= n - (size_t)(a - b);
}

/* Touches every byte, so ASan sees a read outside the buffer. */
static unsigned
touch(const char *p, size_t len)
{
    unsigned h = 0;

    for (size_t i = 0; i < len; i++)
        h = h * 31 + (unsigned char)p[i];
    return h;
}

static void
check_str(const struct ml_dumpparser *p, const char *data, size_t size,
          const char *s, size_t len)
{
    static volatile unsigned sink;

    CHECK(s != NULL);
    CHECK(len <= size);
    CHECK(within(s, len, data, size) || within(s, len, p->sbuf, p->slen));
    sink = touch(s, len);
    (void)sink;
}

static void
check_result(const struct ml_dumpparser *p, const char *data, size_t size,
             int rc, const struct ml_dumpline *d)
{
    CHECK(rc == 0 || rc == ML_EPROTO || rc == -ENOMEM);
    if (rc == ML_EPROTO) {
        CHECK(memchr(p->err, '\0', sizeof(p->err)) != NULL);
        CHECK(p->err[0] != '\0');
        return;
    }
    if (rc != 0)
        return;
    CHECK(p->slen <= p->scap);
    CHECK(d->kind == ML_LINE_OBJECT || d->kind == ML_LINE_OTHER);
    CHECK(d->vkind >= ML_VAL_NONE && d->vkind <= ML_VAL_NULL);
    CHECK(d->nrefs <= size);
    if (d->nrefs > 0) {
        uint64_t sum = 0;
        static volatile uint64_t sink;

        CHECK(d->refs != NULL);
        for (size_t i = 0; i < d->nrefs; i++)
            sum += d->refs[i];
        sink = sum;
        (void)sink;
    }
    /* Other lines too: whatever the struct reports must be readable, so
     * a caller looking at a header's fields cannot be misled. */
    if (d->kind == ML_LINE_OBJECT || d->type != NULL || d->type_len != 0)
        check_str(p, data, size, d->type, d->type_len);
    if (d->has_name)
        check_str(p, data, size, d->name, d->name_len);
    else
        CHECK(d->name == NULL && d->name_len == 0);
    /* Names are keys and C strings downstream: never a NUL in them. */
    if (d->kind == ML_LINE_OBJECT)
        CHECK(memchr(d->type, '\0', d->type_len) == NULL);
    if (d->kind == ML_LINE_OBJECT && d->has_name)
        CHECK(memchr(d->name, '\0', d->name_len) == NULL);
    switch (d->vkind) {
    case ML_VAL_STR:
        check_str(p, data, size, d->value, d->value_len);
        break;
    case ML_VAL_INT:
    case ML_VAL_FLOAT:
        /* The number's own text, in the line. */
        CHECK(d->value_len > 0);
        CHECK(within(d->value, d->value_len, data, size));
        break;
    default:
        CHECK(d->value == NULL && d->value_len == 0);
        break;
    }
}

static int
same_bytes(const char *a, size_t an, const char *b, size_t bn)
{
    return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

/* The fields two parses must agree on. */
static int
same_result(const struct ml_dumpline *a, const struct ml_dumpline *b)
{
    if (a->kind != b->kind)
        return 0;
    if (a->kind != ML_LINE_OBJECT)
        return 1;
    if (a->address != b->address || a->size != b->size
            || !same_bytes(a->type, a->type_len, b->type, b->type_len)
            || a->has_name != b->has_name || a->has_len != b->has_len
            || (a->has_len && a->len != b->len)
            || a->vkind != b->vkind || a->nrefs != b->nrefs)
        return 0;
    if (a->has_name
            && !same_bytes(a->name, a->name_len, b->name, b->name_len))
        return 0;
    if ((a->vkind == ML_VAL_STR || a->vkind == ML_VAL_INT
            || a->vkind == ML_VAL_FLOAT)
            && !same_bytes(a->value, a->value_len, b->value, b->value_len))
        return 0;
    for (size_t i = 0; i < a->nrefs; i++)
        if (a->refs[i] != b->refs[i])
            return 0;
    return 1;
}

/* A growable output buffer for the canonical line. */
struct out {
    char *d;
    size_t n, cap;
};

static void
out_put(struct out *o, const char *s, size_t n)
{
    if (o->n + n > o->cap) {
        size_t ncap = o->cap ? o->cap : 256;
        char *nd;

        while (o->n + n > ncap)
            ncap *= 2;
        nd = realloc(o->d, ncap);
        CHECK(nd != NULL);
        o->d = nd;
        o->cap = ncap;
    }
    memcpy(o->d + o->n, s, n);
    o->n += n;
}

static void
out_puts(struct out *o, const char *s)
{
    out_put(o, s, strlen(s));
}

static void
out_u64(struct out *o, uint64_t v)
{
    char tmp[24];

    snprintf(tmp, sizeof(tmp), "%" PRIu64, v);
    out_puts(o, tmp);
}

/* A JSON string for the bytes s[0..n): '"', '\\' and controls escaped,
 * everything else (including bytes >= 0x80) raw. */
static void
out_str(struct out *o, const char *s, size_t n)
{
    out_puts(o, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char tmp[8];

        if (ch == '"' || ch == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)ch;
            out_put(o, tmp, 2);
        } else if (ch < 0x20) {
            snprintf(tmp, sizeof(tmp), "\\u%04x", ch);
            out_puts(o, tmp);
        } else {
            out_put(o, (const char *)&s[i], 1);
        }
    }
    out_puts(o, "\"");
}

static void
write_canonical(struct out *o, const struct ml_dumpline *d)
{
    o->n = 0;
    out_puts(o, "{\"address\": ");
    out_u64(o, d->address);
    out_puts(o, ", \"type\": ");
    out_str(o, d->type, d->type_len);
    out_puts(o, ", \"size\": ");
    out_u64(o, d->size);
    if (d->has_name) {
        out_puts(o, ", \"name\": ");
        out_str(o, d->name, d->name_len);
    }
    if (d->has_len) {
        out_puts(o, ", \"len\": ");
        out_u64(o, d->len);
    }
    switch (d->vkind) {
    case ML_VAL_STR:
        out_puts(o, ", \"value\": ");
        out_str(o, d->value, d->value_len);
        break;
    case ML_VAL_INT:
    case ML_VAL_FLOAT:
        out_puts(o, ", \"value\": ");
        out_put(o, d->value, d->value_len);
        break;
    case ML_VAL_TRUE:
        out_puts(o, ", \"value\": true");
        break;
    case ML_VAL_FALSE:
        out_puts(o, ", \"value\": false");
        break;
    case ML_VAL_NULL:
        out_puts(o, ", \"value\": null");
        break;
    default:
        break;
    }
    out_puts(o, ", \"refs\": [");
    for (size_t i = 0; i < d->nrefs; i++) {
        if (i)
            out_puts(o, ", ");
        out_u64(o, d->refs[i]);
    }
    out_puts(o, "]}\n");
}

/* The long-line path (parse_head, then the refs in pieces of `step`
 * bytes): its codes are the documented ones, and where both it and the
 * whole-line parse accept a line with its only '\n' at the end, they
 * agree on every field and ref. */
static void
check_long(const char *s, size_t size, const struct ml_dumpline *whole,
           int whole_rc, size_t step)
{
    struct ml_dumpparser p;
    struct ml_dumpline d;
    struct ml_refscan rs;
    uint64_t out[3];
    size_t at = 0, off, nrefs = 0, k, used;
    const char *nl = memchr(s, '\n', size);
    int rc, same;

    ml_dumpparser_init(&p);
    rc = ml_dumpline_parse_head(&p, s, size, &d, &at);
    CHECK(rc == 0 || rc == ML_DUMPLINE_MORE || rc == ML_EPROTO
          || rc == -ENOMEM);
    if (rc != 0) {
        ml_dumpparser_free(&p);
        return;
    }
    CHECK(at <= size && d.kind == ML_LINE_OBJECT && d.nrefs == 0);
    same = whole_rc == 0 && whole->kind == ML_LINE_OBJECT && nl != NULL
           && (size_t)(nl - s) + 1 == size;
    if (same)
        CHECK(d.address == whole->address && d.size == whole->size
              && d.vkind == whole->vkind && d.has_name == whole->has_name
              && same_bytes(d.type, d.type_len, whole->type, whole->type_len));
    ml_refscan_init(&rs);
    rc = 0;
    for (off = at; off < size && rc == 0; off += used) {
        size_t len = size - off < step ? size - off : step;

        rc = ml_refscan_feed(&rs, s + off, len, out, 3, &k, &used);
        CHECK(rc == 0 || rc == ML_REFSCAN_END || rc == ML_EPROTO);
        CHECK(k <= 3 && used <= len);
        if (rc == ML_EPROTO)
            CHECK(rs.err[0] != '\0' && memchr(rs.err, '\0', sizeof(rs.err)));
        for (size_t i = 0; i < k; i++, nrefs++)
            if (same && nrefs < whole->nrefs)
                CHECK(out[i] == whole->refs[nrefs]);
    }
    if (rc == ML_REFSCAN_END && same)
        CHECK(nrefs == whole->nrefs);
    ml_dumpparser_free(&p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct ml_dumpparser fresh, again;
    struct ml_dumpline d1, d2, d3;
    struct out canon = { 0 };
    char *copy;
    int rc1, rc2, rc3;

    if (!persistent_ready) {
        ml_dumpparser_init(&persistent);
        persistent_ready = 1;
    }
    ml_dumpparser_init(&fresh);
    ml_dumpparser_init(&again);

    rc1 = ml_dumpline_parse(&fresh, s, size, &d1);
    check_result(&fresh, s, size, rc1, &d1);

    rc2 = ml_dumpline_parse(&persistent, s, size, &d2);
    check_result(&persistent, s, size, rc2, &d2);
    CHECK(rc1 == rc2);
    if (rc1 == ML_EPROTO)
        CHECK(strcmp(fresh.err, persistent.err) == 0);
    if (rc1 == 0)
        CHECK(same_result(&d1, &d2));

    check_long(s, size, &d1, rc1, 1 + size % 7);
    check_long(s, size, &d1, rc1, size + 1);

    if (rc1 == 0 && d1.kind == ML_LINE_OBJECT) {
        write_canonical(&canon, &d1);
        /* In a buffer of exactly its length. */
        copy = malloc(canon.n);
        CHECK(copy != NULL);
        memcpy(copy, canon.d, canon.n);
        rc3 = ml_dumpline_parse(&again, copy, canon.n, &d3);
        if (rc3 != 0)
            fprintf(stderr, "canonical line rejected: %s\n%.*s", again.err,
                    (int)canon.n, canon.d);
        CHECK(rc3 == 0);
        check_result(&again, copy, canon.n, rc3, &d3);
        CHECK(same_result(&d1, &d3));
        free(copy);
    }

    free(canon.d);
    ml_dumpparser_free(&fresh);
    ml_dumpparser_free(&again);
    return 0;
}
