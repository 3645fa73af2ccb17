/* SPDX-License-Identifier: MIT
 *
 * test_jsonw.c -- cmocka tests for the bounded JSON writer (common/jsonw.c):
 * integer and double formatting, string escaping for every code-unit width
 * and for UTF-8, the character-counted cut, flushing through a small
 * buffer, the sticky error, and a differential check against a small JSON
 * string decoder written here.
 */
#define _GNU_SOURCE 1

#include <errno.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_rng.h"

#include "jsonw.h"

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

/* A flush target that appends everything into a growable, NUL-terminated
 * buffer, and can be told to fail from its n-th call on. */
struct sink {
    char *data;
    size_t len;
    size_t cap;
    unsigned ncalls;
    size_t maxchunk;
    unsigned fail_from_call;    /* 1-based; 0 = never fail */
};

static int
sink_flush(void *ctx, const char *buf, size_t len)
{
    struct sink *s = ctx;

    s->ncalls++;
    assert_true(len > 0);               /* never flushes nothing */
    if (s->fail_from_call != 0 && s->ncalls >= s->fail_from_call)
        return -ENOSPC;
    if (s->len + len + 1 > s->cap) {
        size_t ncap = s->cap ? s->cap : 256;
        char *nd;

        while (s->len + len + 1 > ncap)
            ncap *= 2;
        nd = realloc(s->data, ncap);
        assert_non_null(nd);
        s->data = nd;
        s->cap = ncap;
    }
    memcpy(s->data + s->len, buf, len);
    s->len += len;
    s->data[s->len] = '\0';
    if (len > s->maxchunk)
        s->maxchunk = len;
    return 0;
}

/* A writer over a malloc'd buffer of bufsize bytes flushing into a sink. */
struct run {
    struct ml_jsonw w;
    struct sink s;
    char *wbuf;
};

static void
run_begin(struct run *r, size_t bufsize)
{
    memset(r, 0, sizeof(*r));
    r->wbuf = malloc(bufsize);
    assert_non_null(r->wbuf);
    ml_jsonw_init(&r->w, r->wbuf, bufsize, sink_flush, &r->s);
}

/* Flushes; returns the whole output (NUL-terminated) and its length. */
static const char *
run_end(struct run *r, size_t *len)
{
    assert_int_equal(ml_jsonw_flush(&r->w), 0);
    assert_int_equal(r->w.err, 0);
    assert_int_equal(r->w.len, 0);
    assert_int_equal(r->w.nflushed, r->s.len);
    if (len != NULL)
        *len = r->s.len;
    return r->s.data != NULL ? r->s.data : "";
}

static void
run_free(struct run *r)
{
    free(r->wbuf);
    free(r->s.data);
    memset(r, 0, sizeof(*r));
}

/* Copies s[0..n) into out (cap bytes) with bytes outside 0x20..0x7e shown
 * as <XX>, so a failure message shows what was written. */
static void
printable(char *out, size_t cap, const char *s, size_t n)
{
    size_t k = 0;

    for (size_t i = 0; i < n && k + 5 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch >= 0x20 && ch < 0x7f)
            out[k++] = (char)ch;
        else
            k += (size_t)snprintf(out + k, cap - k, "<%02x>", ch);
    }
    out[k] = '\0';
}

/* Compares after freeing, so a failing assert leaks nothing. */
static void
check_output(int line, struct run *r, const char *expected)
{
    size_t len;
    const char *got = run_end(r, &len);
    int ok = len == strlen(expected) && memcmp(got, expected, len) == 0;
    char pe[512], pg[512];

    printable(pe, sizeof(pe), expected, strlen(expected));
    printable(pg, sizeof(pg), got, len);
    run_free(r);
    if (!ok)
        fail_msg("line %d:\n  expected: %s\n  got:      %s", line, pe, pg);
}

/* An exact-size heap copy of an input, so ASan catches a read past its
 * end. */
static void *
dup_exact(const void *p, size_t n)
{
    void *copy = malloc(n > 0 ? n : 1);

    assert_non_null(copy);
    if (n > 0)
        memcpy(copy, p, n);
    return copy;
}

static void
expect_ucs_at(int line, int kind, const void *data, size_t nchars,
              size_t maxchars, const char *expected)
{
    struct run r;
    void *copy = dup_exact(data, nchars * (size_t)kind);

    run_begin(&r, 4096);
    ml_jsonw_str_ucs(&r.w, kind, copy, nchars, maxchars);
    free(copy);
    check_output(line, &r, expected);
}

static void
expect_utf8_at(int line, const char *s, size_t n, size_t maxchars,
               const char *expected)
{
    struct run r;
    char *copy = dup_exact(s, n);

    run_begin(&r, 4096);
    ml_jsonw_str_utf8(&r.w, copy, n, maxchars);
    free(copy);
    check_output(line, &r, expected);
}

#define EXPECT_UCS(kind, data, n, max, exp) \
    expect_ucs_at(__LINE__, (kind), (data), (n), (max), (exp))
#define EXPECT_UTF8(lit, max, exp) \
    expect_utf8_at(__LINE__, (lit), sizeof(lit) - 1, (max), (exp))

/* Writes the one code point c as a string of the given kind. */
static void
expect_cp_at(int line, int kind, uint32_t c, const char *expected)
{
    uint8_t u8 = (uint8_t)c;
    uint16_t u16 = (uint16_t)c;
    uint32_t u32 = c;
    const void *p = kind == 1 ? (const void *)&u8
                  : kind == 2 ? (const void *)&u16 : (const void *)&u32;

    expect_ucs_at(line, kind, p, 1, 100, expected);
}

/* In every kind wide enough to hold c. */
static void
expect_cp_all_kinds_at(int line, uint32_t c, const char *expected)
{
    for (int kind = 1; kind <= 4; kind *= 2) {
        if ((kind == 1 && c > 0xff) || (kind == 2 && c > 0xffff))
            continue;
        expect_cp_at(line, kind, c, expected);
    }
}

#define EXPECT_CP(c, exp) expect_cp_all_kinds_at(__LINE__, (c), (exp))

static int
is_json_number(const char *s)
{
    if (*s == '-')
        s++;
    if (*s == '0') {
        s++;
    } else if (*s >= '1' && *s <= '9') {
        while (*s >= '0' && *s <= '9')
            s++;
    } else {
        return 0;
    }
    if (*s == '.') {
        s++;
        if (!(*s >= '0' && *s <= '9'))
            return 0;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!(*s >= '0' && *s <= '9'))
            return 0;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return *s == '\0';
}

/* ------------------------------------------------------------------------
 * A tiny JSON string decoder for the differential checks.
 * Accepts exactly one string and nothing after it.  Insists on what the
 * writer promises: ASCII only, no raw control characters, lowercase hex.
 * Joins a \uD8xx\uDCxx pair into one code point, as a JSON reader does.
 * Returns the number of code points, or -1 if malformed.
 * ------------------------------------------------------------------------ */

static int
hex4(const char *p, uint32_t *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char ch = p[i];

        *v <<= 4;
        if (ch >= '0' && ch <= '9')
            *v |= (uint32_t)(ch - '0');
        else if (ch >= 'a' && ch <= 'f')
            *v |= (uint32_t)(ch - 'a' + 10);
        else
            return -1;
    }
    return 0;
}

static long
decode_json_string(const char *s, size_t n, uint32_t *out, size_t outcap)
{
    size_t i = 0, k = 0;

    if (n < 2 || s[0] != '"')
        return -1;
    for (i = 1; i < n; ) {
        unsigned char ch = (unsigned char)s[i];
        uint32_t c;

        if (ch == '"')
            break;
        if (ch < 0x20 || ch >= 0x80)
            return -1;
        if (ch != '\\') {
            c = ch;
            i++;
        } else {
            if (i + 1 >= n)
                return -1;
            switch (s[i + 1]) {
            case '"': c = '"'; i += 2; break;
            case '\\': c = '\\'; i += 2; break;
            case '/': c = '/'; i += 2; break;
            case 'b': c = '\b'; i += 2; break;
            case 'f': c = '\f'; i += 2; break;
            case 'n': c = '\n'; i += 2; break;
            case 'r': c = '\r'; i += 2; break;
            case 't': c = '\t'; i += 2; break;
            case 'u':
                if (i + 6 > n || hex4(s + i + 2, &c) < 0)
                    return -1;
                i += 6;
                if (c >= 0xd800 && c <= 0xdbff && i + 6 <= n
                    && s[i] == '\\' && s[i + 1] == 'u') {
                    uint32_t lo;

                    if (hex4(s + i + 2, &lo) < 0)
                        return -1;
                    if (lo >= 0xdc00 && lo <= 0xdfff) {
                        c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
                        i += 6;
                    }
                }
                break;
            default:
                return -1;
            }
        }
        if (k == outcap)
            return -1;
        out[k++] = c;
    }
    if (i != n - 1 || s[i] != '"')
        return -1;                      /* unterminated, or trailing bytes */
    return (long)k;
}

/* What a JSON reader sees for a run of code points: adjacent high+low
 * surrogates read back as one character. */
static size_t
join_surrogate_pairs(const uint32_t *in, size_t n, uint32_t *out)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
        if (in[i] >= 0xd800 && in[i] <= 0xdbff && i + 1 < n
            && in[i + 1] >= 0xdc00 && in[i + 1] <= 0xdfff) {
            out[k++] = 0x10000 + ((in[i] - 0xd800) << 10) + (in[i + 1] - 0xdc00);
            i++;
        } else {
            out[k++] = in[i];
        }
    }
    return k;
}

static size_t
utf8_encode(uint32_t c, unsigned char *p)
{
    if (c < 0x80) {
        p[0] = (unsigned char)c;
        return 1;
    }
    if (c < 0x800) {
        p[0] = (unsigned char)(0xc0 | (c >> 6));
        p[1] = (unsigned char)(0x80 | (c & 0x3f));
        return 2;
    }
    if (c < 0x10000) {
        p[0] = (unsigned char)(0xe0 | (c >> 12));
        p[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
        p[2] = (unsigned char)(0x80 | (c & 0x3f));
        return 3;
    }
    p[0] = (unsigned char)(0xf0 | (c >> 18));
    p[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3f));
    p[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
    p[3] = (unsigned char)(0x80 | (c & 0x3f));
    return 4;
}

/* A random code point that fits kind, biased towards the interesting
 * classes: escapes, controls, latin-1, BMP, surrogates, non-BMP. */
static uint32_t
rand_cp(uint64_t *st, int kind)
{
    uint32_t c;

    switch (rng_below(st, 9)) {
    case 0: case 1:
        c = 0x20 + (uint32_t)rng_below(st, 0x5f);           /* printable */
        break;
    case 2: {
        static const uint32_t special[] = { '"', '\\', '/', 0x7f, '\n', '\r',
                                            '\t', '\b', '\f', 0 };
        c = special[rng_below(st, sizeof(special) / sizeof(special[0]))];
        break;
    }
    case 3:
        c = (uint32_t)rng_below(st, 0x20);                  /* controls */
        break;
    case 4:
        c = 0x80 + (uint32_t)rng_below(st, 0x80);           /* latin-1 */
        break;
    case 5:
        c = 0x100 + (uint32_t)rng_below(st, 0x10000 - 0x100);   /* BMP */
        break;
    case 6:
        c = 0xd800 + (uint32_t)rng_below(st, 0x800);        /* surrogates */
        break;
    default:
        c = 0x10000 + (uint32_t)rng_below(st, 0x100000);    /* non-BMP */
        break;
    }
    if (kind == 1)
        c &= 0xff;
    else if (kind == 2)
        c &= 0xffff;
    return c;
}

/* ------------------------------------------------------------------------
 * Integers
 * ------------------------------------------------------------------------ */

static void
check_fmt_u64(uint64_t v)
{
    char want[32], got[32];
    int wn = snprintf(want, sizeof(want), "%" PRIu64, v);
    size_t n;

    memset(got, '#', sizeof(got));
    n = ml_fmt_u64(got, v);
    if (n != (size_t)wn || memcmp(got, want, n) != 0)
        print_message("ml_fmt_u64(%" PRIu64 ") gave %.*s\n", v, (int)n, got);
    assert_int_equal(n, (size_t)wn);
    assert_memory_equal(got, want, n);
    for (size_t i = n; i < sizeof(got); i++)
        assert_int_equal(got[i], '#');  /* writes nothing past the digits */
}

static void
test_fmt_u64_formats_small_values_and_powers_of_ten(void **state)
{
    uint64_t p = 1;

    (void)state;
    for (uint64_t v = 0; v <= 1000; v++)
        check_fmt_u64(v);
    for (int e = 0; e <= 19; e++) {
        check_fmt_u64(p);
        check_fmt_u64(p - 1);
        check_fmt_u64(p + 1);
        check_fmt_u64(p * 9);
        if (e < 19)
            p *= 10;
    }
    check_fmt_u64(UINT64_MAX);
    check_fmt_u64(UINT64_MAX - 1);
    check_fmt_u64((uint64_t)INT64_MAX);
    check_fmt_u64((uint64_t)INT64_MAX + 1);
    check_fmt_u64(UINT32_MAX);
}

static void
test_fmt_u64_writes_exact_digits_for_boundary_values(void **state)
{
    char out[20];
    size_t n;

    (void)state;
    n = ml_fmt_u64(out, 0);
    assert_int_equal(n, 1);
    assert_memory_equal(out, "0", 1);
    n = ml_fmt_u64(out, 9);
    assert_memory_equal(out, "9", n);
    n = ml_fmt_u64(out, 10);
    assert_int_equal(n, 2);
    assert_memory_equal(out, "10", 2);
    n = ml_fmt_u64(out, 99);
    assert_memory_equal(out, "99", n);
    n = ml_fmt_u64(out, 100);
    assert_int_equal(n, 3);
    assert_memory_equal(out, "100", 3);
    n = ml_fmt_u64(out, UINT64_MAX);    /* the 20-byte worst case */
    assert_int_equal(n, 20);
    assert_memory_equal(out, "18446744073709551615", 20);
}

static void
test_fmt_u64_matches_snprintf_on_pseudo_random_sweep(void **state)
{
    uint64_t st = 0x1234567887654321ull;

    (void)state;
    for (int i = 0; i < 300000; i++) {
        uint64_t v = rng_next(&st);

        /* Spread over every magnitude, not just ~19-digit values. */
        check_fmt_u64(v >> (rng_next(&st) % 64));
    }
}

static void
test_jsonw_u64_writes_decimal_digits(void **state)
{
    static const uint64_t vals[] = { 0, 9, 10, 99, 100, 1000, 4294967295u,
                                     10000000000000000000ull, UINT64_MAX };
    struct run r;
    char want[64 * 22];
    size_t wl = 0;

    (void)state;
    run_begin(&r, 4096);
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        ml_jsonw_u64(&r.w, vals[i]);
        ml_jsonw_raw(&r.w, ",", 1);
        wl += (size_t)snprintf(want + wl, sizeof(want) - wl, "%" PRIu64 ",",
                               vals[i]);
    }
    check_output(__LINE__, &r, want);
}

static void
test_jsonw_i64_formats_extremes_and_negative_values(void **state)
{
    static const int64_t vals[] = { 0, 1, -1, 9, -9, 10, -10, 99, -99, 100,
                                    -100, INT64_MAX, INT64_MIN,
                                    INT64_MIN + 1, INT64_MAX - 1,
                                    -1000000000000000000ll };
    struct run r;
    char want[64 * 22];
    size_t wl = 0;

    (void)state;
    run_begin(&r, 4096);
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        ml_jsonw_i64(&r.w, vals[i]);
        ml_jsonw_raw(&r.w, " ", 1);
        wl += (size_t)snprintf(want + wl, sizeof(want) - wl, "%" PRId64 " ",
                               vals[i]);
    }
    check_output(__LINE__, &r, want);
}

static void
test_jsonw_i64_writes_int64_min_without_overflow(void **state)
{
    struct run r;

    (void)state;
    run_begin(&r, 4096);
    ml_jsonw_i64(&r.w, INT64_MIN);
    check_output(__LINE__, &r, "-9223372036854775808");
}

static void
test_jsonw_integers_match_snprintf_on_pseudo_random_sweep(void **state)
{
    uint64_t st = 0xdeadbeefcafef00dull;

    (void)state;
    for (int round = 0; round < 50; round++) {
        struct run r;
        char *want = malloc(2000 * 48);
        size_t wl = 0;

        assert_non_null(want);
        run_begin(&r, ML_JSONW_MIN_BUF + (size_t)round);
        for (int i = 0; i < 2000; i++) {
            uint64_t u = rng_next(&st) >> (rng_next(&st) % 64);
            int64_t s = (int64_t)(rng_next(&st) >> (rng_next(&st) % 64));

            ml_jsonw_u64(&r.w, u);
            ml_jsonw_raw(&r.w, ",", 1);
            ml_jsonw_i64(&r.w, s);
            ml_jsonw_raw(&r.w, ";", 1);
            wl += (size_t)snprintf(want + wl, 2000 * 48 - wl,
                                   "%" PRIu64 ",%" PRId64 ";", u, s);
        }
        {
            size_t len;
            const char *got = run_end(&r, &len);
            int ok = len == wl && memcmp(got, want, wl) == 0;

            run_free(&r);
            free(want);
            assert_true(ok);
        }
    }
}

/* ------------------------------------------------------------------------
 * Doubles
 * ------------------------------------------------------------------------ */

static void
render_double(double v, char *out, size_t cap)
{
    struct run r;
    size_t len;
    const char *got;

    run_begin(&r, 4096);
    ml_jsonw_double(&r.w, v);
    got = run_end(&r, &len);
    if (len >= cap) {
        run_free(&r);
        fail_msg("double rendered as %zu bytes", len);
    }
    memcpy(out, got, len + 1);
    run_free(&r);
}

/* Significant digits of a %g-style or writer output: mantissa digits with
 * leading and trailing zeros dropped (so "100.0" and "1e+02" both give 1). */
static int
sig_digits(const char *s)
{
    char d[64];
    int n = 0, b = 0;

    for (; *s && *s != 'e' && *s != 'E'; s++)
        if (*s >= '0' && *s <= '9' && n < (int)sizeof(d))
            d[n++] = *s;
    while (b < n && d[b] == '0')
        b++;
    while (n > b && d[n - 1] == '0')
        n--;
    return n - b > 0 ? n - b : 1;
}

static int
shortest_digits(double v)
{
    char buf[64];

    for (int p = 1; p <= 17; p++) {
        snprintf(buf, sizeof(buf), "%.*g", p, v);
        if (strtod(buf, NULL) == v)
            return p;
    }
    return 17;
}

static void
check_double_round_trips(double v)
{
    char out[64];
    double back;

    render_double(v, out, sizeof(out));
    if (!is_json_number(out))
        fail_msg("%.17g rendered as %s: not a JSON number", v, out);
    if (strpbrk(out, ".e") == NULL)
        fail_msg("%.17g rendered as %s: reads back as an integer", v, out);
    back = strtod(out, NULL);
    if (back != v || signbit(back) != signbit(v))
        fail_msg("%.17g rendered as %s reads back as %.17g", v, out, back);
}

static void
test_jsonw_double_round_trips_through_strtod(void **state)
{
    static const double vals[] = {
        0.0, 1.0, -1.0, 0.1, 0.2, 0.3, 1.0 / 3.0, 2.0 / 3.0, 1e300, -1e300,
        1e-300, 5e-324, -5e-324, 2.2250738585072014e-308,
        2.2250738585072009e-308, 1.7976931348623157e308, -1.7976931348623157e308,
        1e16, 1e15, 1e17, 1e22, 1e23, 123456789012345678.0, 9007199254740993.0,
        9007199254740992.0, 3.141592653589793, 2.718281828459045, 100.0, 1e-5,
        1e-4, 0.5, 0.25, 1.5, 4.35, 0.1 + 0.2, 1e21, 1e-7, 5e-310, 4.9e-324,
    };
    uint64_t st = 0x0badc0ffee0ddf00ull;

    (void)state;
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
        check_double_round_trips(vals[i]);
    check_double_round_trips(-0.0);
    for (int i = 0; i < 100000; i++) {
        uint64_t bits = rng_next(&st);
        double v;

        memcpy(&v, &bits, sizeof(v));
        if (isfinite(v))
            check_double_round_trips(v);
    }
}

static void
test_jsonw_double_keeps_point_zero_on_integral_values(void **state)
{
    char out[64];

    (void)state;
    render_double(1.0, out, sizeof(out));
    assert_string_equal(out, "1.0");
    render_double(0.0, out, sizeof(out));
    assert_string_equal(out, "0.0");
    render_double(-0.0, out, sizeof(out));
    assert_string_equal(out, "-0.0");
    render_double(100.0, out, sizeof(out));
    assert_string_equal(out, "100.0");
    render_double(-42.0, out, sizeof(out));
    assert_string_equal(out, "-42.0");
    render_double(1e16, out, sizeof(out));
    assert_non_null(strpbrk(out, ".e"));
    assert_true(strtod(out, NULL) == 1e16);
}

static void
test_jsonw_double_writes_short_decimals_exactly(void **state)
{
    char out[64];

    (void)state;
    render_double(0.1, out, sizeof(out));
    assert_string_equal(out, "0.1");
    render_double(1.5, out, sizeof(out));
    assert_string_equal(out, "1.5");
    render_double(-2.25, out, sizeof(out));
    assert_string_equal(out, "-2.25");
    render_double(1e300, out, sizeof(out));
    assert_string_equal(out, "1e+300");
    render_double(0.30000000000000004, out, sizeof(out));
    assert_string_equal(out, "0.30000000000000004");
}

/* "Shortest text that reads back as the same double": no fewer significant
 * digits would do.  Normal doubles, incl. values built from short decimals. */
static void
test_jsonw_double_is_shortest_for_normal_values(void **state)
{
    uint64_t st = 0x5eed5eed5eed5eedull;
    char out[64], in[64];

    (void)state;
    for (int i = 0; i < 60000; i++) {
        double v;

        if (i % 2 == 0) {
            uint64_t bits = rng_next(&st);

            memcpy(&v, &bits, sizeof(v));
            if (!isnormal(v))
                continue;
        } else {
            /* a random decimal with 1..17 digits, read as a double */
            int nd = 1 + (int)rng_below(&st, 17), k = 0;

            in[k++] = (char)('1' + rng_below(&st, 9));
            for (int j = 1; j < nd; j++)
                in[k++] = (char)('0' + rng_below(&st, 10));
            snprintf(in + k, sizeof(in) - (size_t)k, "e%d",
                     (int)rng_below(&st, 600) - 300);
            v = strtod(in, NULL);
            if (!isnormal(v))
                continue;
        }
        render_double(v, out, sizeof(out));
        if (sig_digits(out) > shortest_digits(v))
            fail_msg("%.17g rendered as %s; %d digits would do", v, out,
                     shortest_digits(v));
    }
}

static void
test_jsonw_double_is_shortest_for_subnormal_values(void **state)
{
    static const double vals[] = { 5e-324, 1e-323, 1e-310, 2.5e-320,
                                   2.225073858507201e-308 };
    char out[64];

    (void)state;
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        render_double(vals[i], out, sizeof(out));
        if (sig_digits(out) > shortest_digits(vals[i]))
            fail_msg("%.17g rendered as %s; %d digits would do", vals[i], out,
                     shortest_digits(vals[i]));
    }
    render_double(5e-324, out, sizeof(out));
    assert_string_equal(out, "5e-324");
}

static void
test_jsonw_double_writes_non_finite_values_as_strings(void **state)
{
    char out[64];

    (void)state;
    render_double(INFINITY, out, sizeof(out));
    assert_string_equal(out, "\"inf\"");
    render_double(-INFINITY, out, sizeof(out));
    assert_string_equal(out, "\"-inf\"");
    render_double(NAN, out, sizeof(out));
    assert_string_equal(out, "\"nan\"");
    render_double(-NAN, out, sizeof(out));
    assert_string_equal(out, "\"nan\"");
}

/* The writer runs inside arbitrary Python programs, which may have called
 * locale.setlocale(LC_ALL, "") under a locale whose decimal point is ','.
 * JSON needs '.'.  Passes vacuously when no such locale is installed. */
static void
test_jsonw_double_uses_decimal_point_whatever_the_locale(void **state)
{
    static const char *const names[] = { "de_DE.UTF-8", "de_DE.utf8",
                                         "fr_FR.UTF-8", "fr_FR.utf8",
                                         "de_DE", "fr_FR" };
    char a[64], b[64];
    int found = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && !found; i++)
        if (setlocale(LC_NUMERIC, names[i]) != NULL
            && strcmp(localeconv()->decimal_point, ",") == 0)
            found = 1;
    if (!found) {
        /* not skip(): cmocka 1.1 prints "not ok # SKIP", a failure to
         * meson's TAP parser */
        setlocale(LC_NUMERIC, "C");
        print_message("# no locale with a decimal comma; not exercised\n");
        return;
    }
    render_double(0.1, a, sizeof(a));
    render_double(-2.5e-7, b, sizeof(b));
    setlocale(LC_NUMERIC, "C");
    assert_string_equal(a, "0.1");
    assert_string_equal(b, "-2.5e-07");
}

/* ------------------------------------------------------------------------
 * Strings from code units (kinds 1, 2, 4)
 * ------------------------------------------------------------------------ */

static void
test_jsonw_escapes_quote_and_backslash(void **state)
{
    (void)state;
    EXPECT_CP('"', "\"\\\"\"");
    EXPECT_CP('\\', "\"\\\\\"");
    EXPECT_UCS(1, "say \"hi\" \\o/", 12, 100, "\"say \\\"hi\\\" \\\\o/\"");
}

static void
test_jsonw_escapes_common_control_characters_with_short_escapes(void **state)
{
    (void)state;
    EXPECT_CP('\n', "\"\\n\"");
    EXPECT_CP('\r', "\"\\r\"");
    EXPECT_CP('\t', "\"\\t\"");
    EXPECT_CP('\b', "\"\\b\"");
    EXPECT_CP('\f', "\"\\f\"");
}

static void
test_jsonw_escapes_control_characters_as_u_escapes(void **state)
{
    (void)state;
    for (uint32_t c = 0; c < 0x20; c++) {
        char want[16];

        if (c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f')
            continue;
        snprintf(want, sizeof(want), "\"\\u%04x\"", (unsigned)c);
        EXPECT_CP(c, want);
    }
    EXPECT_CP(0x00, "\"\\u0000\"");
    EXPECT_CP(0x1f, "\"\\u001f\"");
    EXPECT_CP(0x0b, "\"\\u000b\"");
    /* a NUL inside the string does not end it */
    EXPECT_UCS(1, "a\0b", 3, 100, "\"a\\u0000b\"");
}

static void
test_jsonw_writes_printable_ascii_unescaped(void **state)
{
    char want[8];

    (void)state;
    for (uint32_t c = 0x20; c < 0x7f; c++) {
        if (c == '"' || c == '\\')
            continue;
        snprintf(want, sizeof(want), "\"%c\"", (int)c);
        EXPECT_CP(c, want);
    }
}

static void
test_jsonw_writes_del_unescaped(void **state)
{
    (void)state;
    EXPECT_CP(0x7f, "\"\x7f\"");
}

static void
test_jsonw_escapes_latin1_as_lowercase_u_escapes(void **state)
{
    char want[16];

    (void)state;
    for (uint32_t c = 0x80; c <= 0xff; c++) {
        snprintf(want, sizeof(want), "\"\\u%04x\"", (unsigned)c);
        EXPECT_CP(c, want);
    }
    EXPECT_CP(0xe9, "\"\\u00e9\"");
    EXPECT_CP(0xff, "\"\\u00ff\"");
    EXPECT_UCS(1, "caf\xe9", 4, 100, "\"caf\\u00e9\"");
}

static void
test_jsonw_escapes_bmp_characters_as_u_escapes(void **state)
{
    char want[16];

    (void)state;
    for (uint32_t c = 0x100; c <= 0xffff; c++) {
        if (c >= 0xd800 && c <= 0xdfff)
            continue;
        snprintf(want, sizeof(want), "\"\\u%04x\"", (unsigned)c);
        EXPECT_CP(c, want);
    }
    EXPECT_CP(0x20ac, "\"\\u20ac\"");
    EXPECT_CP(0xabcd, "\"\\uabcd\"");
    EXPECT_CP(0xfffd, "\"\\ufffd\"");
}

static void
test_jsonw_escapes_non_bmp_characters_as_surrogate_pairs(void **state)
{
    char want[32];

    (void)state;
    EXPECT_CP(0x1f600, "\"\\ud83d\\ude00\"");
    EXPECT_CP(0x10000, "\"\\ud800\\udc00\"");
    EXPECT_CP(0x1d11e, "\"\\ud834\\udd1e\"");
    EXPECT_CP(0x10ffff, "\"\\udbff\\udfff\"");
    for (uint32_t c = 0x10000; c <= 0x10ffff; c += 257) {
        uint32_t v = c - 0x10000;

        snprintf(want, sizeof(want), "\"\\u%04x\\u%04x\"",
                 (unsigned)(0xd800 + (v >> 10)), (unsigned)(0xdc00 + (v & 0x3ff)));
        EXPECT_CP(c, want);
    }
}

static void
test_jsonw_escapes_lone_surrogates_as_they_are(void **state)
{
    static const uint16_t u16[] = { 'a', 0xd800, 'b', 0xdfff, '-' };
    static const uint32_t u32[] = { 'a', 0xd800, 'b', 0xdfff, '-' };

    (void)state;
    expect_cp_at(__LINE__, 2, 0xdc80, "\"\\udc80\"");
    expect_cp_at(__LINE__, 2, 0xd800, "\"\\ud800\"");
    expect_cp_at(__LINE__, 2, 0xdbff, "\"\\udbff\"");
    expect_cp_at(__LINE__, 4, 0xdc80, "\"\\udc80\"");
    expect_cp_at(__LINE__, 4, 0xdfff, "\"\\udfff\"");
    EXPECT_UCS(2, u16, 5, 100, "\"a\\ud800b\\udfff-\"");
    EXPECT_UCS(4, u32, 5, 100, "\"a\\ud800b\\udfff-\"");
}

static void
test_jsonw_same_text_gives_same_output_in_every_kind(void **state)
{
    static const char text[] = "A \"q\" \\ \n\t\x01 caf\xe9 \xff";
    uint16_t u16[sizeof(text)];
    uint32_t u32[sizeof(text)];
    const char *want = "\"A \\\"q\\\" \\\\ \\n\\t\\u0001 caf\\u00e9 \\u00ff\"";
    size_t n = sizeof(text) - 1;

    (void)state;
    for (size_t i = 0; i < n; i++) {
        u16[i] = (uint8_t)text[i];
        u32[i] = (uint8_t)text[i];
    }
    EXPECT_UCS(1, text, n, 100, want);
    EXPECT_UCS(2, u16, n, 100, want);
    EXPECT_UCS(4, u32, n, 100, want);
}

static void
test_jsonw_writes_empty_string_as_two_quotes(void **state)
{
    (void)state;
    EXPECT_UCS(1, "", 0, 100, "\"\"");
    EXPECT_UCS(4, "", 0, 100, "\"\"");
    EXPECT_UCS(1, "abc", 3, 0, "\"\"");     /* maxchars 0 */
    EXPECT_UTF8("", 100, "\"\"");
    EXPECT_UTF8("abc", 0, "\"\"");
}

static void
test_jsonw_cuts_non_bmp_string_at_maxchars_whole_surrogate_pairs(void **state)
{
    uint32_t cps[150];
    char want[2 + 100 * 12 + 1];
    size_t k = 0;

    (void)state;
    for (int i = 0; i < 150; i++)
        cps[i] = 0x1f600;
    want[k++] = '"';
    for (int i = 0; i < 100; i++) {
        memcpy(want + k, "\\ud83d\\ude00", 12);
        k += 12;
    }
    want[k++] = '"';
    want[k] = '\0';
    EXPECT_UCS(4, cps, 150, 100, want);
    /* exactly at the cap and one over */
    for (int i = 0; i < 150; i++)
        cps[i] = 0x1f600 + (uint32_t)(i % 7);
    {
        struct run r;
        size_t len;
        const char *got;
        uint32_t dec[200];
        long nd;

        run_begin(&r, ML_JSONW_MIN_BUF);        /* cut across flushes too */
        ml_jsonw_str_ucs(&r.w, 4, cps, 150, 100);
        got = run_end(&r, &len);
        nd = decode_json_string(got, len, dec, 200);
        run_free(&r);
        assert_int_equal(nd, 100);
        for (int i = 0; i < 100; i++)
            assert_int_equal(dec[i], cps[i]);
    }
}

static void
test_jsonw_cut_counts_characters_not_output_bytes(void **state)
{
    char in[150], want[2 + 100 * 6 + 1];
    uint16_t u16[150];
    size_t k = 0;

    (void)state;
    memset(in, '\n', sizeof(in));
    want[k++] = '"';
    for (int i = 0; i < 100; i++) {
        want[k++] = '\\';
        want[k++] = 'n';
    }
    want[k++] = '"';
    want[k] = '\0';
    EXPECT_UCS(1, in, 150, 100, want);

    k = 0;
    want[k++] = '"';
    for (int i = 0; i < 100; i++) {
        u16[i] = 0x20ac;
        memcpy(want + k, "\\u20ac", 6);
        k += 6;
    }
    for (int i = 100; i < 150; i++)
        u16[i] = 0x20ac;
    want[k++] = '"';
    want[k] = '\0';
    EXPECT_UCS(2, u16, 150, 100, want);
}

static void
test_jsonw_writes_whole_string_when_shorter_than_maxchars(void **state)
{
    static const uint32_t cps[] = { 'h', 0xe9, 0x20ac, 0x1f600, '!' };

    (void)state;
    EXPECT_UCS(4, cps, 5, 100, "\"h\\u00e9\\u20ac\\ud83d\\ude00!\"");
    EXPECT_UCS(4, cps, 5, 5, "\"h\\u00e9\\u20ac\\ud83d\\ude00!\"");
    EXPECT_UCS(4, cps, 5, 4, "\"h\\u00e9\\u20ac\\ud83d\\ude00\"");
    EXPECT_UCS(4, cps, 5, 3, "\"h\\u00e9\\u20ac\"");
    EXPECT_UCS(1, "hello", 5, SIZE_MAX, "\"hello\"");
}

/* ------------------------------------------------------------------------
 * Strings from UTF-8
 * ------------------------------------------------------------------------ */

static void
test_jsonw_utf8_decodes_two_three_and_four_byte_sequences(void **state)
{
    (void)state;
    EXPECT_UTF8("caf\xc3\xa9", 100, "\"caf\\u00e9\"");
    EXPECT_UTF8("\xe2\x82\xac", 100, "\"\\u20ac\"");
    EXPECT_UTF8("\xf0\x9f\x98\x80", 100, "\"\\ud83d\\ude00\"");
    /* the boundaries of each length */
    EXPECT_UTF8("\xc2\x80", 100, "\"\\u0080\"");
    EXPECT_UTF8("\xdf\xbf", 100, "\"\\u07ff\"");
    EXPECT_UTF8("\xe0\xa0\x80", 100, "\"\\u0800\"");
    EXPECT_UTF8("\xef\xbf\xbf", 100, "\"\\uffff\"");
    EXPECT_UTF8("\xed\x9f\xbf", 100, "\"\\ud7ff\"");     /* below surrogates */
    EXPECT_UTF8("\xee\x80\x80", 100, "\"\\ue000\"");     /* above surrogates */
    EXPECT_UTF8("\xf0\x90\x80\x80", 100, "\"\\ud800\\udc00\"");
    EXPECT_UTF8("\xf4\x8f\xbf\xbf", 100, "\"\\udbff\\udfff\"");
    EXPECT_UTF8("a\xc3\xa9" "b\xe2\x82\xac" "c\xf0\x9f\x98\x80" "d", 100,
                "\"a\\u00e9b\\u20acc\\ud83d\\ude00d\"");
}

static void
test_jsonw_utf8_escapes_ascii_like_code_units(void **state)
{
    (void)state;
    EXPECT_UTF8("\"\\\n\r\t\b\f\x01\x1f/ok", 100,
                "\"\\\"\\\\\\n\\r\\t\\b\\f\\u0001\\u001f/ok\"");
    EXPECT_UTF8("a\0b", 100, "\"a\\u0000b\"");
}

static void
test_jsonw_utf8_replaces_invalid_bytes_with_fffd(void **state)
{
    (void)state;
    EXPECT_UTF8("\x80", 100, "\"\\ufffd\"");             /* lone continuation */
    EXPECT_UTF8("\xbf", 100, "\"\\ufffd\"");
    EXPECT_UTF8("\xff", 100, "\"\\ufffd\"");
    EXPECT_UTF8("\xfe", 100, "\"\\ufffd\"");
    EXPECT_UTF8("\xf5\x80\x80\x80", 100,
                "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");       /* F5 starts nothing */
    EXPECT_UTF8("a\xff" "b", 100, "\"a\\ufffdb\"");
    EXPECT_UTF8("\x80\x80\x80", 100, "\"\\ufffd\\ufffd\\ufffd\"");
    /* a lead byte followed by a non-continuation byte keeps that byte */
    EXPECT_UTF8("\xc3(", 100, "\"\\ufffd(\"");
    EXPECT_UTF8("\xc3\xc3\xa9", 100, "\"\\ufffd\\u00e9\"");
}

static void
test_jsonw_utf8_replaces_overlong_encodings(void **state)
{
    (void)state;
    /* Every byte of an overlong form is an error (as Python decodes). */
    EXPECT_UTF8("\xc0\xaf", 100, "\"\\ufffd\\ufffd\"");
    EXPECT_UTF8("\xc1\xbf", 100, "\"\\ufffd\\ufffd\"");
    EXPECT_UTF8("\xe0\x80\xaf", 100, "\"\\ufffd\\ufffd\\ufffd\"");
    EXPECT_UTF8("\xe0\x9f\xbf", 100, "\"\\ufffd\\ufffd\\ufffd\"");
    EXPECT_UTF8("\xf0\x80\x80\xaf", 100,
                "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
    EXPECT_UTF8("\xf0\x8f\xbf\xbf", 100,
                "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
    EXPECT_UTF8("\xc0\x80", 100, "\"\\ufffd\\ufffd\"");  /* modified-UTF-8 NUL */
}

static void
test_jsonw_utf8_replaces_encoded_surrogates_and_values_above_10ffff(void **state)
{
    (void)state;
    EXPECT_UTF8("\xed\xa0\x80", 100, "\"\\ufffd\\ufffd\\ufffd\"");   /* D800 */
    EXPECT_UTF8("\xed\xbf\xbf", 100, "\"\\ufffd\\ufffd\\ufffd\"");   /* DFFF */
    /* CESU-8 pair for U+1F600: never joined into the character */
    EXPECT_UTF8("\xed\xa0\xbd\xed\xb8\x80", 100,
                "\"\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\"");
    EXPECT_UTF8("\xf4\x90\x80\x80", 100,
                "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");       /* U+110000 */
}

/* Whatever the count of U+FFFD, an incomplete sequence must not swallow
 * the character after it, nor leak raw bytes. */
static void
test_jsonw_utf8_truncated_sequence_never_swallows_following_character(void **state)
{
    static const char *const cases[][2] = {
        { "\xc3", "" }, { "\xe2\x82", "" }, { "\xf0\x9f\x98", "" },
        { "\xe2", "A" }, { "\xe2\x82", "A" }, { "\xf0\x9f\x98", "A" },
        { "\xf0\x9f", "\xc3\xa9" }, { "\xe2\x82", "\"" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char in[16];
        struct run r;
        size_t len, nin;
        const char *got;
        uint32_t dec[16];
        long nd;
        uint32_t tail;
        size_t used;

        nin = (size_t)snprintf(in, sizeof(in), "x%s%s", cases[i][0],
                               cases[i][1]);
        run_begin(&r, 4096);
        ml_jsonw_str_utf8(&r.w, in, nin, 100);
        got = run_end(&r, &len);
        nd = decode_json_string(got, len, dec, 16);
        run_free(&r);
        assert_true(nd >= 2);
        assert_int_equal(dec[0], 'x');
        /* the expected tail character, if any */
        if (cases[i][1][0] == '\0') {
            tail = 0xfffd;
            used = 0;
        } else if ((unsigned char)cases[i][1][0] < 0x80) {
            tail = (unsigned char)cases[i][1][0];
            used = 1;
        } else {
            tail = 0xe9;
            used = 1;
        }
        assert_int_equal(dec[nd - 1], tail);
        for (long j = 1; j < nd - (long)used; j++)
            assert_int_equal(dec[j], 0xfffd);
    }
}

/* Python's 'replace' handler (which jsonw.c says it follows) gives one
 * U+FFFD for an incomplete but so far valid sequence (the "maximal subpart"
 * of Unicode 6.3+ / W3C): b'\xe2\x82'.decode('utf-8', 'replace') == '\ufffd'. */
static void
test_jsonw_utf8_replaces_truncated_sequence_with_one_fffd_like_python(void **state)
{
    (void)state;
    EXPECT_UTF8("a\xc3", 100, "\"a\\ufffd\"");
    EXPECT_UTF8("a\xe2\x82", 100, "\"a\\ufffd\"");
    EXPECT_UTF8("a\xf0\x9f\x98", 100, "\"a\\ufffd\"");
    EXPECT_UTF8("\xe2\x82" "A", 100, "\"\\ufffdA\"");
    EXPECT_UTF8("\xf0\x9f\x98" "A", 100, "\"\\ufffdA\"");
}

static void
test_jsonw_utf8_cuts_at_maxchars_characters(void **state)
{
    unsigned char in[150 * 4];
    char want[2 + 100 * 12 + 1];
    size_t k = 0;

    (void)state;
    for (int i = 0; i < 150; i++)
        memcpy(in + 4 * i, "\xf0\x9f\x98\x80", 4);
    want[k++] = '"';
    for (int i = 0; i < 100; i++) {
        memcpy(want + k, "\\ud83d\\ude00", 12);
        k += 12;
    }
    want[k++] = '"';
    want[k] = '\0';
    expect_utf8_at(__LINE__, (const char *)in, sizeof(in), 100, want);

    /* mixed widths: the cut falls after 3 characters, not 3 bytes */
    EXPECT_UTF8("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z", 3,
                "\"a\\u00e9\\u20ac\"");
    EXPECT_UTF8("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z", 4,
                "\"a\\u00e9\\u20ac\\ud83d\\ude00\"");
    /* a replacement character counts as one */
    EXPECT_UTF8("\xff\xff\xff\xff", 2, "\"\\ufffd\\ufffd\"");
    EXPECT_UTF8("ab", 100, "\"ab\"");
}

/* ------------------------------------------------------------------------
 * Flushing and errors
 * ------------------------------------------------------------------------ */

/* A fixed mix of every put, long enough to flush many times. */
static void
write_script(struct ml_jsonw *w)
{
    uint32_t u32[1000];
    uint16_t u16[1000];
    uint8_t u8[1000];
    char blob[5000];
    unsigned char utf8[4000];
    size_t nutf8 = 0;
    uint64_t st = 42;

    for (int i = 0; i < 1000; i++) {
        u32[i] = rand_cp(&st, 4);
        u16[i] = (uint16_t)rand_cp(&st, 2);
        u8[i] = (uint8_t)rand_cp(&st, 1);
    }
    for (size_t i = 0; i < sizeof(blob); i++)
        blob[i] = (char)('a' + i % 26);
    while (nutf8 + 4 <= sizeof(utf8)) {
        uint32_t c = rand_cp(&st, 4);

        if (c >= 0xd800 && c <= 0xdfff)
            c = 0xfffd;
        nutf8 += utf8_encode(c, utf8 + nutf8);
    }

    ml_jsonw_raw(w, "{\"n\":[", 6);
    for (uint64_t i = 0; i < 3000; i++) {
        ml_jsonw_u64(w, i * i * i * 7919u);
        ml_jsonw_raw(w, ",", 1);
        ml_jsonw_i64(w, -(int64_t)i * 1234567);
        ml_jsonw_raw(w, ",", 1);
        ml_jsonw_double(w, (double)i / 7.0);
        ml_jsonw_raw(w, ",", 1);
    }
    ml_jsonw_u64(w, UINT64_MAX);
    ml_jsonw_raw(w, ",", 1);
    ml_jsonw_i64(w, INT64_MIN);
    ml_jsonw_raw(w, ",", 1);
    ml_jsonw_double(w, -1.7976931348623157e308);
    ml_jsonw_raw(w, ",", 1);
    ml_jsonw_double(w, 5e-324);
    ml_jsonw_raw(w, ",", 1);
    ml_jsonw_double(w, -INFINITY);
    ml_jsonw_raw(w, "],\"s\":[", 7);
    ml_jsonw_str_ucs(w, 4, u32, 1000, 1000);
    ml_jsonw_raw(w, ",", 1);
    ml_jsonw_str_ucs(w, 4, u32, 1000, 100);
    ml_jsonw_raw(w, ",", 1);
    ml_jsonw_str_ucs(w, 2, u16, 1000, 1000);
    ml_jsonw_raw(w, ",", 1);
    ml_jsonw_str_ucs(w, 1, u8, 1000, 1000);
    ml_jsonw_raw(w, ",", 1);
    ml_jsonw_str_utf8(w, (const char *)utf8, nutf8, SIZE_MAX);
    ml_jsonw_raw(w, ",", 1);
    ml_jsonw_str_utf8(w, (const char *)utf8, nutf8, 100);
    ml_jsonw_raw(w, "],\"blob\":\"", 10);
    ml_jsonw_raw(w, blob, sizeof(blob));
    ml_jsonw_raw(w, "\"}\n", 3);
}

static void
test_jsonw_tiny_buffer_produces_same_bytes_as_huge_buffer(void **state)
{
    struct run big;
    size_t biglen;
    char *ref;

    (void)state;
    run_begin(&big, 1 << 22);
    write_script(&big.w);
    assert_int_equal(big.s.ncalls, 0);         /* all of it fit */
    (void)run_end(&big, &biglen);
    assert_int_equal(big.s.ncalls, 1);
    assert_true(biglen > 100000);
    ref = big.s.data;
    big.s.data = NULL;
    run_free(&big);

    for (size_t cap = ML_JSONW_MIN_BUF; cap <= ML_JSONW_MIN_BUF + 24; cap++) {
        struct run r;
        size_t len;
        const char *got;
        int same;
        size_t maxchunk;
        unsigned ncalls;

        run_begin(&r, cap);
        write_script(&r.w);
        assert_true(r.w.len <= cap);
        /* everything not still buffered was handed out, in order */
        assert_int_equal(r.w.nflushed + r.w.len, biglen);
        assert_int_equal(r.w.nflushed, r.s.len);
        got = run_end(&r, &len);
        same = len == biglen && memcmp(got, ref, len) == 0;
        maxchunk = r.s.maxchunk;
        ncalls = r.s.ncalls;
        run_free(&r);
        if (!same) {
            free(ref);
            fail_msg("output differs with a %zu-byte buffer", cap);
        }
        assert_true(maxchunk <= cap);
        assert_true(ncalls >= biglen / cap);
    }
    free(ref);
}

static void
test_jsonw_nflushed_counts_bytes_handed_to_flush(void **state)
{
    struct run r;

    (void)state;
    run_begin(&r, 4096);
    ml_jsonw_raw(&r.w, "hello", 5);
    assert_int_equal(r.w.nflushed, 0);
    assert_int_equal(r.w.len, 5);
    assert_int_equal(ml_jsonw_flush(&r.w), 0);
    assert_int_equal(r.w.nflushed, 5);
    assert_int_equal(r.w.len, 0);
    assert_int_equal(r.s.ncalls, 1);
    /* flushing an empty buffer hands out nothing */
    assert_int_equal(ml_jsonw_flush(&r.w), 0);
    assert_int_equal(r.s.ncalls, 1);
    ml_jsonw_u64(&r.w, 1234567);
    assert_int_equal(ml_jsonw_flush(&r.w), 0);
    assert_int_equal(r.w.nflushed, 12);
    assert_string_equal(r.s.data, "hello1234567");
    run_free(&r);

    /* with the minimum buffer, 1000 bytes flush in full 64-byte pieces */
    run_begin(&r, ML_JSONW_MIN_BUF);
    for (int i = 0; i < 1000; i++)
        ml_jsonw_raw(&r.w, "x", 1);
    assert_int_equal(r.w.nflushed, (1000 / ML_JSONW_MIN_BUF) * ML_JSONW_MIN_BUF);
    assert_int_equal(r.w.len, 1000 % ML_JSONW_MIN_BUF);
    assert_int_equal(r.s.ncalls, 1000 / ML_JSONW_MIN_BUF);
    assert_int_equal(ml_jsonw_flush(&r.w), 0);
    assert_int_equal(r.w.nflushed, 1000);
    run_free(&r);
}

/* After a failed flush nothing is written, nothing is handed out and the
 * callback is not called again. */
static void
check_writes_are_noops(struct run *r)
{
    static const uint32_t cps[] = { 'a', 0x1f600, 0xe9 };
    size_t len = r->w.len;
    uint64_t nfl = r->w.nflushed;
    unsigned ncalls = r->s.ncalls;
    size_t slen = r->s.len;
    char before[ML_JSONW_MIN_BUF];

    memcpy(before, r->w.buf, len < sizeof(before) ? len : sizeof(before));
    for (int i = 0; i < 200; i++) {
        ml_jsonw_raw(&r->w, "abcdefghij", 10);
        ml_jsonw_u64(&r->w, UINT64_MAX);
        ml_jsonw_i64(&r->w, INT64_MIN);
        ml_jsonw_double(&r->w, 0.1);
        ml_jsonw_double(&r->w, NAN);
        ml_jsonw_str_ucs(&r->w, 4, cps, 3, 100);
        ml_jsonw_str_utf8(&r->w, "caf\xc3\xa9", 5, 100);
    }
    assert_null(ml_jsonw_reserve(&r->w, 1));
    assert_int_equal(r->w.err, -ENOSPC);
    assert_int_equal(r->w.len, len);
    assert_int_equal(r->w.nflushed, nfl);
    assert_int_equal(r->s.ncalls, ncalls);
    assert_int_equal(r->s.len, slen);
    assert_memory_equal(before, r->w.buf,
                        len < sizeof(before) ? len : sizeof(before));
    assert_int_equal(ml_jsonw_flush(&r->w), -ENOSPC);
    assert_int_equal(ml_jsonw_flush(&r->w), -ENOSPC);
    assert_int_equal(r->s.ncalls, ncalls);
}

static void
test_jsonw_flush_error_is_sticky(void **state)
{
    struct run r;

    (void)state;
    /* fails on the first flush, forced by a full buffer */
    run_begin(&r, ML_JSONW_MIN_BUF);
    r.s.fail_from_call = 1;
    for (int i = 0; i < 100; i++)
        ml_jsonw_raw(&r.w, "0123456789", 10);
    assert_int_equal(r.w.err, -ENOSPC);
    assert_int_equal(r.s.ncalls, 1);
    assert_int_equal(r.w.nflushed, 0);
    check_writes_are_noops(&r);
    run_free(&r);

    /* fails on the third flush, in the middle of a string */
    run_begin(&r, ML_JSONW_MIN_BUF);
    r.s.fail_from_call = 3;
    {
        uint32_t cps[100];

        for (int i = 0; i < 100; i++)
            cps[i] = 0x1f600;
        ml_jsonw_str_ucs(&r.w, 4, cps, 100, 100);
    }
    assert_int_equal(r.w.err, -ENOSPC);
    assert_int_equal(r.s.ncalls, 3);
    assert_int_equal(r.w.nflushed, r.s.len);
    assert_true(r.s.len > 0);
    check_writes_are_noops(&r);
    run_free(&r);

    /* fails only on the explicit flush of a big buffer */
    run_begin(&r, 4096);
    r.s.fail_from_call = 1;
    ml_jsonw_u64(&r.w, 7);
    assert_int_equal(r.w.err, 0);
    assert_int_equal(ml_jsonw_flush(&r.w), -ENOSPC);
    assert_int_equal(r.w.err, -ENOSPC);
    check_writes_are_noops(&r);
    run_free(&r);
}

/* ------------------------------------------------------------------------
 * Differential checks
 * ------------------------------------------------------------------------ */

static void
test_jsonw_str_ucs_output_decodes_to_input_code_points(void **state)
{
    uint64_t st = 0xfeedfacef00dbabeull;
    uint32_t cps[300], want[300], dec[400];
    uint8_t u8[300];
    uint16_t u16[300];

    (void)state;
    for (int iter = 0; iter < 4000; iter++) {
        int kind = iter % 3 == 0 ? 1 : iter % 3 == 1 ? 2 : 4;
        size_t n = (size_t)rng_below(&st, 260);
        size_t maxchars = rng_below(&st, 4) == 0 ? 100
                        : (size_t)rng_below(&st, 300);
        size_t cap = ML_JSONW_MIN_BUF + (size_t)rng_below(&st, 200);
        size_t m, nwant, len;
        const void *data;
        const char *got;
        struct run r;
        long nd;
        int ok;

        for (size_t i = 0; i < n; i++) {
            cps[i] = rand_cp(&st, kind);
            u8[i] = (uint8_t)cps[i];
            u16[i] = (uint16_t)cps[i];
        }
        data = kind == 1 ? (const void *)u8
             : kind == 2 ? (const void *)u16 : (const void *)cps;
        m = n < maxchars ? n : maxchars;
        nwant = join_surrogate_pairs(cps, m, want);

        run_begin(&r, cap);
        {
            void *copy = dup_exact(data, n * (size_t)kind);

            ml_jsonw_str_ucs(&r.w, kind, copy, n, maxchars);
            free(copy);
        }
        got = run_end(&r, &len);
        nd = decode_json_string(got, len, dec, 400);
        ok = nd == (long)nwant
             && (nwant == 0 || memcmp(dec, want, nwant * sizeof(*want)) == 0);
        if (!ok)
            print_message("iter %d kind %d n %zu maxchars %zu: %s\n",
                          iter, kind, n, maxchars, got);
        run_free(&r);
        assert_true(ok);
    }
}

static void
test_jsonw_str_utf8_output_decodes_to_input_code_points(void **state)
{
    uint64_t st = 0x0123456789abcdefull;
    uint32_t cps[300], dec[400];
    unsigned char utf8[300 * 4];

    (void)state;
    for (int iter = 0; iter < 3000; iter++) {
        size_t n = (size_t)rng_below(&st, 260), nb = 0;
        size_t maxchars = rng_below(&st, 4) == 0 ? 100
                        : (size_t)rng_below(&st, 300);
        size_t m = n < maxchars ? n : maxchars;
        size_t len, len4;
        const char *got;
        struct run r, r4;
        long nd;
        int ok;

        for (size_t i = 0; i < n; i++) {
            uint32_t c = rand_cp(&st, 4);

            if (c >= 0xd800 && c <= 0xdfff)     /* not encodable */
                c = 'S';
            cps[i] = c;
            nb += utf8_encode(c, utf8 + nb);
        }
        run_begin(&r, ML_JSONW_MIN_BUF + (size_t)rng_below(&st, 200));
        {
            char *copy = dup_exact(utf8, nb);

            ml_jsonw_str_utf8(&r.w, copy, nb, maxchars);
            free(copy);
        }
        got = run_end(&r, &len);
        nd = decode_json_string(got, len, dec, 400);
        ok = nd == (long)m && (m == 0 || memcmp(dec, cps, m * sizeof(*cps)) == 0);
        /* and the same bytes as the same text given as UCS-4 */
        run_begin(&r4, 4096);
        ml_jsonw_str_ucs(&r4.w, 4, cps, n, maxchars);
        (void)run_end(&r4, &len4);
        ok = ok && len4 == len && memcmp(r4.s.data, got, len) == 0;
        if (!ok)
            print_message("iter %d n %zu maxchars %zu: %s\n", iter, n,
                          maxchars, got);
        run_free(&r4);
        run_free(&r);
        assert_true(ok);
    }
}

/* Random bytes: the output is always one well-formed ASCII JSON string,
 * never longer than the input in characters, and the ASCII bytes of the
 * input come through in order (a bad sequence never swallows one). */
static void
test_jsonw_str_utf8_random_bytes_give_well_formed_output(void **state)
{
    uint64_t st = 0xabad1deaabad1deaull;
    unsigned char in[200];
    uint32_t dec[400];

    (void)state;
    for (int iter = 0; iter < 3000; iter++) {
        size_t n = (size_t)rng_below(&st, 200), len, na = 0, k = 0;
        const char *got;
        struct run r;
        long nd;
        int ok = 1;

        for (size_t i = 0; i < n; i++) {
            uint64_t x = rng_next(&st);

            /* favour bytes that start or continue sequences */
            in[i] = (unsigned char)(x % 3 == 0 ? (x >> 8) & 0x7f
                                  : x % 3 == 1 ? 0x80 | ((x >> 8) & 0x3f)
                                  : 0xc0 | ((x >> 8) & 0x3f));
        }
        run_begin(&r, ML_JSONW_MIN_BUF);
        {
            char *copy = dup_exact(in, n);

            ml_jsonw_str_utf8(&r.w, copy, n, SIZE_MAX);
            free(copy);
        }
        got = run_end(&r, &len);
        nd = decode_json_string(got, len, dec, 400);
        if (nd < 0 || (size_t)nd > n)
            ok = 0;
        for (size_t i = 0; ok && i < n; i++) {
            if (in[i] >= 0x80)
                continue;
            na++;
            while (k < (size_t)nd && dec[k] != in[i]) {
                if (dec[k] < 0x80)      /* an ASCII char out of nowhere */
                    ok = 0;
                k++;
            }
            if (k == (size_t)nd)
                ok = 0;
            else
                k++;
        }
        for (long j = 0; ok && j < nd; j++)
            if (dec[j] >= 0xd800 && dec[j] <= 0xdfff)
                ok = 0;                 /* surrogates never come from UTF-8 */
        if (!ok)
            print_message("iter %d n %zu (%zu ascii): %s\n", iter, n, na, got);
        run_free(&r);
        assert_true(ok);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fmt_u64_formats_small_values_and_powers_of_ten),
        cmocka_unit_test(test_fmt_u64_writes_exact_digits_for_boundary_values),
        cmocka_unit_test(test_fmt_u64_matches_snprintf_on_pseudo_random_sweep),
        cmocka_unit_test(test_jsonw_u64_writes_decimal_digits),
        cmocka_unit_test(test_jsonw_i64_formats_extremes_and_negative_values),
        cmocka_unit_test(test_jsonw_i64_writes_int64_min_without_overflow),
        cmocka_unit_test(test_jsonw_integers_match_snprintf_on_pseudo_random_sweep),
        cmocka_unit_test(test_jsonw_double_round_trips_through_strtod),
        cmocka_unit_test(test_jsonw_double_keeps_point_zero_on_integral_values),
        cmocka_unit_test(test_jsonw_double_writes_short_decimals_exactly),
        cmocka_unit_test(test_jsonw_double_is_shortest_for_normal_values),
        cmocka_unit_test(test_jsonw_double_is_shortest_for_subnormal_values),
        cmocka_unit_test(test_jsonw_double_writes_non_finite_values_as_strings),
        cmocka_unit_test(test_jsonw_double_uses_decimal_point_whatever_the_locale),
        cmocka_unit_test(test_jsonw_escapes_quote_and_backslash),
        cmocka_unit_test(test_jsonw_escapes_common_control_characters_with_short_escapes),
        cmocka_unit_test(test_jsonw_escapes_control_characters_as_u_escapes),
        cmocka_unit_test(test_jsonw_writes_printable_ascii_unescaped),
        cmocka_unit_test(test_jsonw_writes_del_unescaped),
        cmocka_unit_test(test_jsonw_escapes_latin1_as_lowercase_u_escapes),
        cmocka_unit_test(test_jsonw_escapes_bmp_characters_as_u_escapes),
        cmocka_unit_test(test_jsonw_escapes_non_bmp_characters_as_surrogate_pairs),
        cmocka_unit_test(test_jsonw_escapes_lone_surrogates_as_they_are),
        cmocka_unit_test(test_jsonw_same_text_gives_same_output_in_every_kind),
        cmocka_unit_test(test_jsonw_writes_empty_string_as_two_quotes),
        cmocka_unit_test(test_jsonw_cuts_non_bmp_string_at_maxchars_whole_surrogate_pairs),
        cmocka_unit_test(test_jsonw_cut_counts_characters_not_output_bytes),
        cmocka_unit_test(test_jsonw_writes_whole_string_when_shorter_than_maxchars),
        cmocka_unit_test(test_jsonw_utf8_decodes_two_three_and_four_byte_sequences),
        cmocka_unit_test(test_jsonw_utf8_escapes_ascii_like_code_units),
        cmocka_unit_test(test_jsonw_utf8_replaces_invalid_bytes_with_fffd),
        cmocka_unit_test(test_jsonw_utf8_replaces_overlong_encodings),
        cmocka_unit_test(test_jsonw_utf8_replaces_encoded_surrogates_and_values_above_10ffff),
        cmocka_unit_test(test_jsonw_utf8_truncated_sequence_never_swallows_following_character),
        cmocka_unit_test(test_jsonw_utf8_replaces_truncated_sequence_with_one_fffd_like_python),
        cmocka_unit_test(test_jsonw_utf8_cuts_at_maxchars_characters),
        cmocka_unit_test(test_jsonw_tiny_buffer_produces_same_bytes_as_huge_buffer),
        cmocka_unit_test(test_jsonw_nflushed_counts_bytes_handed_to_flush),
        cmocka_unit_test(test_jsonw_flush_error_is_sticky),
        cmocka_unit_test(test_jsonw_str_ucs_output_decodes_to_input_code_points),
        cmocka_unit_test(test_jsonw_str_utf8_output_decodes_to_input_code_points),
        cmocka_unit_test(test_jsonw_str_utf8_random_bytes_give_well_formed_output),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
