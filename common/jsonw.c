/* SPDX-License-Identifier: MIT
 *
 * jsonw.c -- the bounded JSON writer; see jsonw.h for the contract and
 * docs/dump-format.md for the string and number rules it implements.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonw.h"

void
ml_jsonw_init(struct ml_jsonw *w, char *buf, size_t cap,
              ml_jsonw_flush_fn flush, void *ctx)
{
    w->buf = buf;
    w->cap = cap;
    w->len = 0;
    w->flush = flush;
    w->ctx = ctx;
    w->err = 0;
    w->nflushed = 0;
}

int
ml_jsonw_flush(struct ml_jsonw *w)
{
    int rc;

    if (w->err < 0 || w->len == 0)
        return w->err;
    rc = w->flush(w->ctx, w->buf, w->len);
    if (rc < 0) {
        w->err = rc;
        return rc;
    }
    w->nflushed += w->len;
    w->len = 0;
    return 0;
}

void
ml_jsonw_raw(struct ml_jsonw *w, const char *s, size_t n)
{
    if (n <= w->cap - w->len && w->err == 0) {
        memcpy(w->buf + w->len, s, n);
        w->len += n;
        return;
    }
    while (n > 0 && w->err == 0) {
        size_t room = w->cap - w->len;
        size_t k = n < room ? n : room;

        if (k == 0) {
            ml_jsonw_flush(w);
            continue;
        }
        memcpy(w->buf + w->len, s, k);
        w->len += k;
        s += k;
        n -= k;
    }
}

static const char digit_pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

size_t
ml_fmt_u64(char *out, uint64_t v)
{
    char tmp[20];
    char *p = tmp + sizeof(tmp);
    size_t n;

    while (v >= 100) {
        unsigned i = (unsigned)(v % 100) * 2;
        v /= 100;
        p -= 2;
        p[0] = digit_pairs[i];
        p[1] = digit_pairs[i + 1];
    }
    if (v >= 10) {
        unsigned i = (unsigned)v * 2;
        p -= 2;
        p[0] = digit_pairs[i];
        p[1] = digit_pairs[i + 1];
    } else {
        *--p = (char)('0' + v);
    }
    n = (size_t)(tmp + sizeof(tmp) - p);
    memcpy(out, p, n);
    return n;
}

void
ml_jsonw_u64(struct ml_jsonw *w, uint64_t v)
{
    char *p = ml_jsonw_reserve(w, 20);

    if (p != NULL)
        ml_jsonw_commit(w, ml_fmt_u64(p, v));
}

void
ml_jsonw_i64(struct ml_jsonw *w, int64_t v)
{
    char *p = ml_jsonw_reserve(w, 21);

    if (p == NULL)
        return;
    if (v < 0) {
        *p = '-';
        /* -(v + 1) + 1 avoids overflow at INT64_MIN. */
        ml_jsonw_commit(w, 1 + ml_fmt_u64(p + 1, (uint64_t)(-(v + 1)) + 1));
    } else {
        ml_jsonw_commit(w, ml_fmt_u64(p, (uint64_t)v));
    }
}

/* Digits of a double.  d[0..nd) are significant digits, no leading zero,
 * and the value is 0.d[0]d[1]... * 10^(exp10 + 1), i.e. d[0] is the digit
 * of 10^exp10. */
struct digits {
    char d[20];
    int nd;
    int exp10;
};

/* Parses the output of "%.*e": [-]D[.DDD]e(+|-)XX, whatever the decimal
 * point of the current locale is. */
static void
parse_e(const char *s, struct digits *out)
{
    out->nd = 0;
    if (*s == '-')
        s++;
    for (; *s != 'e' && *s != '\0'; s++)
        if (*s >= '0' && *s <= '9' && out->nd < (int)sizeof(out->d))
            out->d[out->nd++] = *s;
    out->exp10 = *s == 'e' ? atoi(s + 1) : 0;
}

/* Rounds the 17 digits of src to p digits (round half to even does not
 * arise: a tie in 17 digits is not a tie in the exact value, so ties are
 * reported, 0, for the caller to settle exactly).  1 on success. */
static int
round_digits(const struct digits *src, int p, struct digits *out)
{
    int i, up = 0;

    *out = *src;
    out->nd = p;
    if (src->d[p] > '5') {
        up = 1;
    } else if (src->d[p] == '5') {
        for (i = p + 1; i < src->nd; i++)
            if (src->d[i] != '0')
                break;
        if (i == src->nd)
            return 0;
        up = 1;
    }
    for (i = p - 1; up && i >= 0; i--) {
        if (out->d[i] == '9') {
            out->d[i] = '0';
        } else {
            out->d[i]++;
            up = 0;
        }
    }
    if (up) {                   /* 99..9 -> 100..0 */
        out->d[0] = '1';
        out->exp10++;
    }
    return 1;
}

/* 1 if the digits read back as v.  The text has no decimal point, so
 * strtod's locale does not matter. */
static int
reads_back(const struct digits *dg, int neg, double v)
{
    char t[48], *p = t;
    int e = dg->exp10 - (dg->nd - 1);

    if (neg)
        *p++ = '-';
    memcpy(p, dg->d, (size_t)dg->nd);
    p += dg->nd;
    *p++ = 'e';
    if (e < 0) {
        *p++ = '-';
        e = -e;
    }
    p += ml_fmt_u64(p, (uint64_t)e);
    *p = '\0';
    return strtod(t, NULL) == v;
}

void
ml_jsonw_double(struct ml_jsonw *w, double v)
{
    char buf[48], *p;
    struct digits all, dg;
    int neg = signbit(v) != 0, k, n;

    if (isnan(v)) {
        ml_jsonw_raw(w, "\"nan\"", 5);
        return;
    }
    if (isinf(v)) {
        if (neg)
            ml_jsonw_raw(w, "\"-inf\"", 6);
        else
            ml_jsonw_raw(w, "\"inf\"", 5);
        return;
    }
    if (v == 0) {
        if (neg)
            ml_jsonw_raw(w, "-0.0", 4);
        else
            ml_jsonw_raw(w, "0.0", 3);
        return;
    }

    /* Shortest digits that read back as v (what repr() prints): 17
     * correctly rounded digits always do.  If at most 15 do, the 15-digit
     * rounding is them padded with zeros; else try 16, then keep 17. */
    snprintf(buf, sizeof(buf), "%.16e", v);
    parse_e(buf, &all);
    dg = all;
    /* Subnormals carry fewer bits, so fewer digits may do: search them
     * all (they are rare). */
    for (int prec = fabs(v) < DBL_MIN ? 1 : 15; prec <= 16; prec++) {
        struct digits c;
        int tail = (all.d[15] - '0') * 10 + (all.d[16] - '0');

        /* 15 digits can only read back when the 17 end near ..00 or ..99
         * (one ulp is at most 22 units of the 17th digit): skip the
         * strtod for the other doubles, most of them. */
        if (prec == 15 && tail > 25 && tail < 75)
            continue;
        if (!round_digits(&all, prec, &c)) {
            snprintf(buf, sizeof(buf), "%.*e", prec - 1, v);
            parse_e(buf, &c);
        }
        if (reads_back(&c, neg, v)) {
            dg = c;
            break;
        }
    }
    while (dg.nd > 1 && dg.d[dg.nd - 1] == '0')
        dg.nd--;

    /* Lay them out as repr() does: positional for exponents -4 to 15,
     * else scientific with at least two exponent digits. */
    p = buf;
    if (neg)
        *p++ = '-';
    if (dg.exp10 >= 16 || dg.exp10 < -4) {
        *p++ = dg.d[0];
        if (dg.nd > 1) {
            *p++ = '.';
            memcpy(p, dg.d + 1, (size_t)dg.nd - 1);
            p += dg.nd - 1;
        }
        n = snprintf(p, 8, "e%c%02d", dg.exp10 < 0 ? '-' : '+',
                     dg.exp10 < 0 ? -dg.exp10 : dg.exp10);
        p += n;
    } else if (dg.exp10 >= 0) {
        for (k = 0; k <= dg.exp10; k++)
            *p++ = k < dg.nd ? dg.d[k] : '0';
        *p++ = '.';
        if (dg.nd > dg.exp10 + 1) {
            memcpy(p, dg.d + dg.exp10 + 1, (size_t)(dg.nd - dg.exp10 - 1));
            p += dg.nd - dg.exp10 - 1;
        } else {
            *p++ = '0';
        }
    } else {
        *p++ = '0';
        *p++ = '.';
        for (k = 0; k < -dg.exp10 - 1; k++)
            *p++ = '0';
        memcpy(p, dg.d, (size_t)dg.nd);
        p += dg.nd;
    }
    ml_jsonw_raw(w, buf, (size_t)(p - buf));
}

static const char hexdig[] = "0123456789abcdef";

/* Writes one code point (already known to need no further splitting) as
 * JSON string content.  At most 12 bytes. */
static inline size_t
put_cp(char *p, uint32_t c)
{
    if (c >= 0x20 && c < 0x80) {
        if (c == '"' || c == '\\') {
            p[0] = '\\';
            p[1] = (char)c;
            return 2;
        }
        p[0] = (char)c;
        return 1;
    }
    switch (c) {
    case '\n': p[0] = '\\'; p[1] = 'n'; return 2;
    case '\r': p[0] = '\\'; p[1] = 'r'; return 2;
    case '\t': p[0] = '\\'; p[1] = 't'; return 2;
    case '\b': p[0] = '\\'; p[1] = 'b'; return 2;
    case '\f': p[0] = '\\'; p[1] = 'f'; return 2;
    default: break;
    }
    if (c > 0x10ffff)
        c = 0xfffd;                     /* not a character: corrupt input */
    if (c > 0xffff) {
        uint32_t v = c - 0x10000;
        size_t k = put_cp(p, 0xd800 + (v >> 10));
        return k + put_cp(p + k, 0xdc00 + (v & 0x3ff));
    }
    p[0] = '\\';
    p[1] = 'u';
    p[2] = hexdig[(c >> 12) & 0xf];
    p[3] = hexdig[(c >> 8) & 0xf];
    p[4] = hexdig[(c >> 4) & 0xf];
    p[5] = hexdig[c & 0xf];
    return 6;
}

void
ml_jsonw_str_ucs(struct ml_jsonw *w, int kind, const void *data,
                 size_t nchars, size_t maxchars)
{
    size_t n = nchars < maxchars ? nchars : maxchars;
    size_t i = 0;
    char *p;

    if ((p = ml_jsonw_reserve(w, 1)) == NULL)
        return;
    *p = '"';
    ml_jsonw_commit(w, 1);
    while (i < n) {
        /* Reserve for a run of characters at once: at most 12 bytes each
         * (a surrogate pair), and at most the buffer's size. */
        size_t run = n - i, k = 0;

        if (run > (w->cap - 1) / 12)
            run = (w->cap - 1) / 12;
        if ((p = ml_jsonw_reserve(w, run * 12)) == NULL)
            return;
        if (kind == 1) {
            const uint8_t *u = (const uint8_t *)data + i;

            for (size_t j = 0; j < run; j++) {
                uint8_t c = u[j];

                if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\')
                    p[k++] = (char)c;
                else
                    k += put_cp(p + k, c);
            }
        } else if (kind == 2) {
            const uint16_t *u = (const uint16_t *)data + i;

            for (size_t j = 0; j < run; j++)
                k += put_cp(p + k, u[j]);
        } else {
            const uint32_t *u = (const uint32_t *)data + i;

            for (size_t j = 0; j < run; j++)
                k += put_cp(p + k, u[j]);
        }
        ml_jsonw_commit(w, k);
        i += run;
    }
    if ((p = ml_jsonw_reserve(w, 1)) == NULL)
        return;
    *p = '"';
    ml_jsonw_commit(w, 1);
}

/* Decodes one UTF-8 sequence at s[0..n); sets *len to the bytes used.
 * An ill-formed sequence gives one U+FFFD for its maximal valid prefix
 * (at least one byte), as Python's 'replace' error handler does. */
static uint32_t
utf8_next(const unsigned char *s, size_t n, size_t *len)
{
    uint32_t c = s[0];
    size_t need, i;
    unsigned char lo = 0x80, hi = 0xbf;     /* range of the second byte */

    *len = 1;
    if (c < 0x80)
        return c;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 1;
        c &= 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 2;
        c &= 0x0f;
        if (s[0] == 0xe0)
            lo = 0xa0;                      /* no overlong forms */
        else if (s[0] == 0xed)
            hi = 0x9f;                      /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;
        c &= 0x07;
        if (s[0] == 0xf0)
            lo = 0x90;
        else if (s[0] == 0xf4)
            hi = 0x8f;                      /* nothing past U+10FFFF */
    } else {
        return 0xfffd;
    }
    for (i = 1; i <= need; i++) {
        if (i >= n || s[i] < lo || s[i] > hi) {
            *len = i;
            return 0xfffd;
        }
        c = (c << 6) | (s[i] & 0x3f);
        lo = 0x80;
        hi = 0xbf;
    }
    *len = need + 1;
    return c;
}

void
ml_jsonw_str_utf8(struct ml_jsonw *w, const char *s, size_t n,
                  size_t maxchars)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, nch = 0;
    char *p;

    if ((p = ml_jsonw_reserve(w, 1)) == NULL)
        return;
    *p = '"';
    ml_jsonw_commit(w, 1);
    while (i < n && nch < maxchars) {
        size_t k;
        uint32_t c = utf8_next(u + i, n - i, &k);

        if ((p = ml_jsonw_reserve(w, 12)) == NULL)
            return;
        ml_jsonw_commit(w, put_cp(p, c));
        i += k;
        nch++;
    }
    if ((p = ml_jsonw_reserve(w, 1)) == NULL)
        return;
    *p = '"';
    ml_jsonw_commit(w, 1);
}
