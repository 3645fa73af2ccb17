/* SPDX-License-Identifier: MIT
 *
 * test_dumpline.c -- cmocka tests for the dump line parser
 * (common/dumpline.c, docs/dump-format.md): every key and value kind, keys
 * in any order, unknown keys skipped, meliae 0.5 lines, the streamed
 * header/trailer shape, string escapes, where strings point, integer
 * limits, large refs, line endings, every error, and a differential check
 * against a random line generator that records what each line must decode
 * to.
 *
 * Every input is copied into a malloc'd buffer of exactly its length, so
 * under -fsanitize=address a read past the end of the line is caught.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_rng.h"

#include "dumpline.h"
#include "ml-common.h"

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

/* A growable byte string. */
struct sb {
    char *d;
    size_t n;
    size_t cap;
};

static void
sb_put(struct sb *b, const void *p, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 64;
        char *nd;

        while (b->n + n + 1 > ncap)
            ncap *= 2;
        nd = realloc(b->d, ncap);
        assert_non_null(nd);
        b->d = nd;
        b->cap = ncap;
    }
    if (n)
        memcpy(b->d + b->n, p, n);
    b->n += n;
    b->d[b->n] = '\0';
}

static void
sb_puts(struct sb *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void
sb_putc(struct sb *b, char c)
{
    sb_put(b, &c, 1);
}

static void
sb_putu64(struct sb *b, uint64_t v)
{
    char tmp[24];

    snprintf(tmp, sizeof(tmp), "%" PRIu64, v);
    sb_puts(b, tmp);
}

static void
sb_free(struct sb *b)
{
    free(b->d);
    memset(b, 0, sizeof(*b));
}

/* The parser, the current line (in a buffer of exactly its length) and
 * the last result. */
struct fx {
    struct ml_dumpparser p;
    struct ml_dumpline d;
    char *buf;
    size_t n;
    int rc;
};

static int
fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    ml_dumpparser_init(&f->p);
    *state = f;
    return 0;
}

static int
fx_teardown(void **state)
{
    struct fx *f = *state;

    ml_dumpparser_free(&f->p);
    free(f->buf);
    free(f);
    return 0;
}

static int
parse_n(struct fx *f, const char *s, size_t n)
{
    free(f->buf);
    f->buf = malloc(n);
    if (f->buf == NULL && n == 0)
        f->buf = malloc(1);
    assert_non_null(f->buf);
    if (n)
        memcpy(f->buf, s, n);
    f->n = n;
    f->rc = ml_dumpline_parse(&f->p, f->buf, n, &f->d);
    if (f->rc == ML_EPROTO) {
        /* Always says something, and always NUL-terminated. */
        assert_true(f->p.err[0] != '\0');
        assert_non_null(memchr(f->p.err, '\0', sizeof(f->p.err)));
    }
    return f->rc;
}

static int
parse(struct fx *f, const char *s)
{
    return parse_n(f, s, strlen(s));
}

/* Parses a line that must be accepted. */
static void
parse_ok(struct fx *f, const char *s)
{
    if (parse(f, s) != 0) {
        print_error("line: %s\nrc %d, err: %s\n", s, f->rc, f->p.err);
        fail();
    }
}

/* Parses a line that must be rejected with ML_EPROTO, with an error
 * message that contains needle and says where. */
static void
expect_eproto_n(struct fx *f, const char *s, size_t n, const char *needle)
{
    int rc = parse_n(f, s, n);

    if (rc != ML_EPROTO) {
        print_error("line: %.*s\nrc %d, want ML_EPROTO\n", (int)n, s, rc);
        fail();
    }
    if (strstr(f->p.err, needle) == NULL
            || strstr(f->p.err, "at byte") == NULL) {
        print_error("line: %.*s\nerr: %s\nwant it to contain: %s\n",
                    (int)n, s, f->p.err, needle);
        fail();
    }
}

static void
expect_eproto(struct fx *f, const char *s, const char *needle)
{
    expect_eproto_n(f, s, strlen(s), needle);
}

static int
in_range(const char *p, size_t len, const char *base, size_t n)
{
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)base;

    return p != NULL && base != NULL && a >= b && a - b <= n
        && len <= n - (size_t)(a - b);
}

/* The string [p, p+len) lies inside the current line. */
static int
in_line(const struct fx *f, const char *p, size_t len)
{
    return in_range(p, len, f->buf, f->n);
}

/* ... or inside the used part of the parser's scratch. */
static int
in_scratch(const struct fx *f, const char *p, size_t len)
{
    return in_range(p, len, f->p.sbuf, f->p.slen);
}

#define assert_sv(p, len, lit) assert_sv_((p), (len), (lit), sizeof(lit) - 1)

static void
assert_sv_(const char *p, size_t len, const char *want, size_t wlen)
{
    if (len != wlen) {
        print_error("length %zu, want %zu (\"%.*s\")\n", len, wlen,
                    (int)wlen, want);
        fail();
    }
    if (wlen) {
        assert_non_null(p);
        assert_memory_equal(p, want, wlen);
    }
}

/* ------------------------------------------------------------------------
 * Keys and values
 * ------------------------------------------------------------------------ */

static void
test_dumpline_parses_every_key_of_an_object_line(void **state)
{
    struct fx *f = *state;

    parse_ok(f, "{\"address\": 140245010635328, \"type\": \"dict\", "
             "\"size\": 272, \"len\": 2, \"refs\": [140245010001, "
             "140245010002, 140245010003, 140245010004]}");
    assert_int_equal(f->d.kind, ML_LINE_OBJECT);
    assert_true(f->d.address == 140245010635328ull);
    assert_sv(f->d.type, f->d.type_len, "dict");
    assert_true(f->d.size == 272);
    assert_int_equal(f->d.has_len, 1);
    assert_true(f->d.len == 2);
    assert_int_equal(f->d.has_name, 0);
    assert_null(f->d.name);
    assert_int_equal(f->d.vkind, ML_VAL_NONE);
    assert_null(f->d.value);
    assert_int_equal(f->d.nrefs, 4);
    assert_true(f->d.refs[0] == 140245010001ull);
    assert_true(f->d.refs[1] == 140245010002ull);
    assert_true(f->d.refs[2] == 140245010003ull);
    assert_true(f->d.refs[3] == 140245010004ull);
}

static void
test_dumpline_parses_the_documented_example_lines(void **state)
{
    struct fx *f = *state;

    parse_ok(f, "{\"address\": 1000, \"type\": \"dict\", \"size\": 184, "
             "\"len\": 1, \"refs\": [2000, 3000]}");
    assert_true(f->d.address == 1000 && f->d.size == 184 && f->d.len == 1);
    assert_int_equal(f->d.nrefs, 2);

    parse_ok(f, "{\"address\": 2000, \"type\": \"str\", \"size\": 50, "
             "\"len\": 1, \"value\": \"a\", \"refs\": []}");
    assert_sv(f->d.type, f->d.type_len, "str");
    assert_int_equal(f->d.vkind, ML_VAL_STR);
    assert_sv(f->d.value, f->d.value_len, "a");
    assert_int_equal(f->d.nrefs, 0);

    parse_ok(f, "{\"address\": 4000, \"type\": \"int\", \"size\": 28, "
             "\"value\": 1, \"refs\": []}");
    assert_int_equal(f->d.has_len, 0);
    assert_int_equal(f->d.vkind, ML_VAL_INT);
    assert_sv(f->d.value, f->d.value_len, "1");
}

static void
test_dumpline_parses_name(void **state)
{
    struct fx *f = *state;

    parse_ok(f, "{\"address\": 7, \"type\": \"module\", \"size\": 72, "
             "\"name\": \"os.path\", \"refs\": [8]}");
    assert_int_equal(f->d.has_name, 1);
    assert_sv(f->d.name, f->d.name_len, "os.path");
    assert_true(in_line(f, f->d.name, f->d.name_len));

    parse_ok(f, "{\"address\": 7, \"type\": \"function\", \"size\": 72, "
             "\"name\": \"\", \"refs\": []}");
    assert_int_equal(f->d.has_name, 1);
    assert_int_equal(f->d.name_len, 0);
}

static void
test_dumpline_treats_null_name_as_absent(void **state)
{
    struct fx *f = *state;

    parse_ok(f, "{\"address\": 7, \"type\": \"function\", \"size\": 72, "
             "\"name\": null, \"refs\": []}");
    assert_int_equal(f->d.kind, ML_LINE_OBJECT);
    assert_int_equal(f->d.has_name, 0);
    assert_null(f->d.name);
    assert_int_equal(f->d.name_len, 0);
}

static void
test_dumpline_parses_string_value(void **state)
{
    struct fx *f = *state;

    parse_ok(f, "{\"address\": 1, \"type\": \"str\", \"size\": 51, "
             "\"len\": 2, \"value\": \"xy\", \"refs\": []}");
    assert_int_equal(f->d.vkind, ML_VAL_STR);
    assert_sv(f->d.value, f->d.value_len, "xy");

    parse_ok(f, "{\"address\": 1, \"type\": \"str\", \"size\": 49, "
             "\"len\": 0, \"value\": \"\", \"refs\": []}");
    assert_int_equal(f->d.vkind, ML_VAL_STR);
    assert_int_equal(f->d.value_len, 0);
    assert_non_null(f->d.value);
}

static void
test_dumpline_parses_integer_value_as_text(void **state)
{
    static const char *const ints[] = {
        "0", "1", "-1", "-0", "9223372036854775807", "-9223372036854775808",
        /* The text is passed on: more digits than 64 bits hold are fine. */
        "123456789012345678901234567890",
    };
    struct fx *f = *state;
    char line[200];

    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        snprintf(line, sizeof(line), "{\"address\": 1, \"type\": \"int\", "
                 "\"size\": 28, \"value\": %s, \"refs\": []}", ints[i]);
        parse_ok(f, line);
        assert_int_equal(f->d.vkind, ML_VAL_INT);
        assert_int_equal(f->d.value_len, strlen(ints[i]));
        assert_memory_equal(f->d.value, ints[i], strlen(ints[i]));
        assert_true(in_line(f, f->d.value, f->d.value_len));
    }
}

static void
test_dumpline_parses_float_value_as_text(void **state)
{
    static const char *const floats[] = {
        "1.0", "1e+16", "1e16", "-2.5E-3", "0.5", "-0.0", "6.02214076e23",
        "1E5", "5e-324",
    };
    struct fx *f = *state;
    char line[200];

    for (size_t i = 0; i < sizeof(floats) / sizeof(floats[0]); i++) {
        snprintf(line, sizeof(line), "{\"address\": 1, \"type\": \"float\", "
                 "\"size\": 24, \"value\": %s, \"refs\": []}", floats[i]);
        parse_ok(f, line);
        assert_int_equal(f->d.vkind, ML_VAL_FLOAT);
        assert_int_equal(f->d.value_len, strlen(floats[i]));
        assert_memory_equal(f->d.value, floats[i], strlen(floats[i]));
    }
    /* inf and nan are strings in the format. */
    parse_ok(f, "{\"address\": 1, \"type\": \"float\", \"size\": 24, "
             "\"value\": \"-inf\", \"refs\": []}");
    assert_int_equal(f->d.vkind, ML_VAL_STR);
    assert_sv(f->d.value, f->d.value_len, "-inf");
}

static void
test_dumpline_parses_true_false_and_null_values(void **state)
{
    struct fx *f = *state;

    parse_ok(f, "{\"address\": 1, \"type\": \"bool\", \"size\": 28, "
             "\"value\": true, \"refs\": []}");
    assert_int_equal(f->d.vkind, ML_VAL_TRUE);
    parse_ok(f, "{\"address\": 1, \"type\": \"bool\", \"size\": 24, "
             "\"value\": false, \"refs\": []}");
    assert_int_equal(f->d.vkind, ML_VAL_FALSE);
    parse_ok(f, "{\"address\": 1, \"type\": \"NoneType\", \"size\": 16, "
             "\"value\": null, \"refs\": []}");
    assert_int_equal(f->d.vkind, ML_VAL_NULL);
}

static void
test_dumpline_reports_no_value_when_key_absent(void **state)
{
    struct fx *f = *state;

    parse_ok(f, "{\"address\": 1, \"type\": \"int\", \"size\": 36, "
             "\"refs\": []}");
    assert_int_equal(f->d.vkind, ML_VAL_NONE);
    assert_null(f->d.value);
    assert_int_equal(f->d.value_len, 0);
}

static void
test_dumpline_accepts_zero_and_uint64_max(void **state)
{
    struct fx *f = *state;

    parse_ok(f, "{\"address\": 0, \"type\": \"x\", \"size\": 0, \"len\": 0, "
             "\"refs\": [0]}");
    assert_true(f->d.address == 0 && f->d.size == 0 && f->d.len == 0);
    assert_true(f->d.has_len);
    assert_int_equal(f->d.nrefs, 1);
    assert_true(f->d.refs[0] == 0);

    parse_ok(f, "{\"address\": 18446744073709551615, \"type\": \"x\", "
             "\"size\": 18446744073709551615, \"len\": 18446744073709551615, "
             "\"refs\": [18446744073709551615, 18446744073709551614]}");
    assert_true(f->d.address == UINT64_MAX);
    assert_true(f->d.size == UINT64_MAX);
    assert_true(f->d.len == UINT64_MAX);
    assert_int_equal(f->d.nrefs, 2);
    assert_true(f->d.refs[0] == UINT64_MAX);
    assert_true(f->d.refs[1] == UINT64_MAX - 1);
}

static void
test_dumpline_keeps_addresses_above_2_pow_53_exact(void **state)
{
    struct fx *f = *state;

    /* 2^53 + 1 is the first integer a double cannot hold. */
    parse_ok(f, "{\"address\": 9007199254740993, \"type\": \"x\", "
             "\"size\": 1, \"refs\": [9007199254740995]}");
    assert_true(f->d.address == 9007199254740993ull);
    assert_true(f->d.refs[0] == 9007199254740995ull);
}

/* ------------------------------------------------------------------------
 * Key order, unknown keys, other writers
 * ------------------------------------------------------------------------ */

static void
check_permuted_line(struct fx *f, const int *idx)
{
    static const char *const seg[7] = {
        "\"address\": 18446744073709551615",
        "\"type\": \"my\\\"type\"",
        "\"size\": 0",
        "\"name\": \"n\\u00e9\"",
        "\"len\": 42",
        "\"value\": \"\\ud83d\\ude00x\"",
        "\"refs\": [1, 0, 18446744073709551615]",
    };
    char line[512];
    size_t k = 0;

    line[k++] = '{';
    for (int i = 0; i < 7; i++) {
        k += (size_t)snprintf(line + k, sizeof(line) - k, "%s%s",
                              i ? ", " : "", seg[idx[i]]);
    }
    line[k++] = '}';
    line[k] = '\0';

    parse_ok(f, line);
    assert_int_equal(f->d.kind, ML_LINE_OBJECT);
    assert_true(f->d.address == UINT64_MAX);
    assert_sv(f->d.type, f->d.type_len, "my\"type");
    assert_true(f->d.size == 0);
    assert_int_equal(f->d.has_name, 1);
    assert_sv(f->d.name, f->d.name_len, "n\xc3\xa9");
    assert_int_equal(f->d.has_len, 1);
    assert_true(f->d.len == 42);
    assert_int_equal(f->d.vkind, ML_VAL_STR);
    assert_sv(f->d.value, f->d.value_len, "\xf0\x9f\x98\x80x");
    assert_int_equal(f->d.nrefs, 3);
    assert_true(f->d.refs[0] == 1);
    assert_true(f->d.refs[1] == 0);
    assert_true(f->d.refs[2] == UINT64_MAX);
}

static void
test_dumpline_accepts_keys_in_every_order(void **state)
{
    struct fx *f = *state;
    int idx[7] = { 0, 1, 2, 3, 4, 5, 6 }, cnt[7] = { 0 };
    int i = 1, n = 1, t;

    /* Heap's algorithm: all 5040 orders of the seven keys. */
    check_permuted_line(f, idx);
    while (i < 7) {
        if (cnt[i] < i) {
            int j = i % 2 == 0 ? 0 : cnt[i];

            t = idx[j];
            idx[j] = idx[i];
            idx[i] = t;
            check_permuted_line(f, idx);
            n++;
            cnt[i]++;
            i = 1;
        } else {
            cnt[i] = 0;
            i++;
        }
    }
    assert_int_equal(n, 5040);
}

static void
test_dumpline_skips_unknown_keys_with_any_value(void **state)
{
    struct fx *f = *state;

    parse_ok(f, "{\"future\": {\"a\": [1, 2.5, -3e4, {\"b\": null}], "
             "\"c\": {}, \"d\": []}, \"address\": 5, \"flag\": true, "
             "\"type\": \"T\", \"off\": false, \"none\": null, "
             "\"list\": [[[]], [{}], \"x\\\"]\"], \"size\": 9, "
             "\"s\": \"}{][,:\", \"n\": -0.5e-3, \"refs\": [6], "
             "\"empty\": \"\", \"\": 1}");
    assert_int_equal(f->d.kind, ML_LINE_OBJECT);
    assert_true(f->d.address == 5 && f->d.size == 9);
    assert_sv(f->d.type, f->d.type_len, "T");
    assert_int_equal(f->d.nrefs, 1);
    assert_true(f->d.refs[0] == 6);
    assert_int_equal(f->d.has_name, 0);
    assert_int_equal(f->d.has_len, 0);
    assert_int_equal(f->d.vkind, ML_VAL_NONE);
}

static void
test_dumpline_skipped_escaped_strings_do_not_disturb_known_ones(void **state)
{
    struct fx *f = *state;

    /* The known strings are in the scratch; the skipped ones (and their
     * escaped keys) come between and after them. */
    parse_ok(f, "{\"address\": 1, \"type\": \"t\\u0031\", "
             "\"x\\u0041\": \"\\u00ff\\u00ff\\u00ff\\u00ff\", "
             "\"name\": \"n\\t\", \"y\": [\"\\n\\n\\n\", {\"\\u0042\": "
             "\"\\ud83d\\ude00\"}], \"value\": \"v\\/\", "
             "\"z\\\\\": \"\\\"\\\"\\\"\\\"\", \"size\": 3}");
    assert_sv(f->d.type, f->d.type_len, "t1");
    assert_sv(f->d.name, f->d.name_len, "n\t");
    assert_sv(f->d.value, f->d.value_len, "v/");
    assert_true(in_scratch(f, f->d.type, f->d.type_len));
    assert_true(in_scratch(f, f->d.name, f->d.name_len));
    assert_true(in_scratch(f, f->d.value, f->d.value_len));
}

static void
test_dumpline_recognises_key_names_written_with_escapes(void **state)
{
    struct fx *f = *state;

    /* JSON-wise "\u0074ype" is "type". */
    parse_ok(f, "{\"\\u0061ddress\": 3, \"\\u0074ype\": \"t\", "
             "\"siz\\u0065\": 4, \"re\\u0066s\": [5]}");
    assert_int_equal(f->d.kind, ML_LINE_OBJECT);
    assert_true(f->d.address == 3 && f->d.size == 4);
    assert_sv(f->d.type, f->d.type_len, "t");
    assert_int_equal(f->d.nrefs, 1);
}

static void
test_dumpline_reads_meliae_05_lines(void **state)
{
    struct fx *f = *state;

    parse_ok(f, "{\"address\": 1, \"type\": \"str\", \"size\": 25, "
             "\"len\": 1, \"value\": \"a\", \"refs\": []}");
    assert_int_equal(f->d.kind, ML_LINE_OBJECT);
    assert_sv(f->d.type, f->d.type_len, "str");
    assert_true(f->d.size == 25 && f->d.len == 1);
    assert_sv(f->d.value, f->d.value_len, "a");

    /* Without refs at all. */
    parse_ok(f, "{\"address\": 2, \"type\": \"int\", \"size\": 12, "
             "\"value\": 1}");
    assert_int_equal(f->d.kind, ML_LINE_OBJECT);
    assert_int_equal(f->d.nrefs, 0);
    assert_int_equal(f->d.vkind, ML_VAL_INT);
    assert_sv(f->d.value, f->d.value_len, "1");

    parse_ok(f, "{\"address\": 3, \"type\": \"tuple\", \"size\": 32}");
    assert_int_equal(f->d.kind, ML_LINE_OBJECT);
    assert_int_equal(f->d.nrefs, 0);

    parse_ok(f, "{\"address\": 140191262087696, \"type\": \"module\", "
             "\"size\": 56, \"name\": \"sys\", \"len\": 51, "
             "\"refs\": [140191262094640]}\n");
    assert_sv(f->d.name, f->d.name_len, "sys");
    assert_int_equal(f->d.nrefs, 1);

    /* 0.5 wrote bytes' non-ASCII as \u escapes of latin-1 and compact
     * JSON from simplejson in places. */
    parse_ok(f, "{\"address\":4,\"type\":\"bytes\",\"size\":35,\"len\":2,"
             "\"value\":\"\\u00ff\\u0000\",\"refs\":[]}");
    assert_sv(f->d.value, f->d.value_len, "\xc3\xbf\0");
}

static void
test_dumpline_reports_header_and_trailer_as_other(void **state)
{
    struct fx *f = *state;

    parse_ok(f, "{\"meliae\": 1, \"pid\": 4242, \"format\": \"dump\", "
             "\"started\": 1700000000.25}\n");
    assert_int_equal(f->d.kind, ML_LINE_OTHER);

    parse_ok(f, "{\"end\": true, \"objects\": 123456, \"errors\": []}\n");
    assert_int_equal(f->d.kind, ML_LINE_OTHER);

    parse_ok(f, "{}");
    assert_int_equal(f->d.kind, ML_LINE_OTHER);

    parse_ok(f, "  {  }  \r\n");
    assert_int_equal(f->d.kind, ML_LINE_OTHER);

    /* type and size alone do not make an object line. */
    parse_ok(f, "{\"type\": \"str\", \"size\": 3}");
    assert_int_equal(f->d.kind, ML_LINE_OTHER);
}

static void
test_dumpline_checks_syntax_of_other_lines_too(void **state)
{
    struct fx *f = *state;

    expect_eproto(f, "{\"pid\": 1", "expected ',' or '}'");
    expect_eproto(f, "{\"size\": 1, \"size\": 2}", "twice");
    expect_eproto(f, "{\"x\": [}", "");
    expect_eproto(f, "{} {}", "text after");
}

/* ------------------------------------------------------------------------
 * Strings
 * ------------------------------------------------------------------------ */

static void
test_dumpline_unescapes_short_escapes(void **state)
{
    struct fx *f = *state;

    parse_ok(f, "{\"address\": 1, \"type\": \"str\", \"size\": 1, "
             "\"value\": \"q\\\"b\\\\s\\/n\\nr\\rt\\tb\\bf\\f.\"}");
    assert_sv(f->d.value, f->d.value_len, "q\"b\\s/n\nr\rt\tb\bf\f.");
    assert_true(in_scratch(f, f->d.value, f->d.value_len));
}

static void
test_dumpline_unescapes_u_escapes_to_utf8(void **state)
{
    struct fx *f = *state;

    parse_ok(f, "{\"address\": 1, \"type\": \"str\", \"size\": 1, "
             "\"value\": \"\\u0000\\u001f\\u0041\\u007f\\u0080\\u00e9\\u07ff"
             "\\u0800\\u20ac\\uFFFD\\uffff\\uAbCd\"}");
    assert_sv(f->d.value, f->d.value_len,
              "\0\x1f" "A\x7f\xc2\x80\xc3\xa9\xdf\xbf"
              "\xe0\xa0\x80\xe2\x82\xac\xef\xbf\xbd\xef\xbf\xbf\xea\xaf\x8d");
}

static void
test_dumpline_joins_surrogate_pairs_into_4_byte_utf8(void **state)
{
    struct fx *f = *state;

    parse_ok(f, "{\"address\": 1, \"type\": \"str\", \"size\": 1, "
             "\"value\": \"\\ud83d\\ude00\\ud800\\udc00\\udbff\\udfff"
             "\\uD834\\uDD1E\"}");
    assert_sv(f->d.value, f->d.value_len,
              "\xf0\x9f\x98\x80"        /* U+1F600 */
              "\xf0\x90\x80\x80"        /* U+10000 */
              "\xf4\x8f\xbf\xbf"        /* U+10FFFF */
              "\xf0\x9d\x84\x9e");      /* U+1D11E, upper-case hex */
}

static void
test_dumpline_keeps_lone_surrogates_as_3_byte_encoding(void **state)
{
    struct fx *f = *state;

    /* Low alone. */
    parse_ok(f, "{\"address\": 1, \"type\": \"str\", \"size\": 1, "
             "\"value\": \"a\\udc80b\"}");
    assert_sv(f->d.value, f->d.value_len, "a\xed\xb2\x80" "b");

    /* High alone, at the end of the string. */
    parse_ok(f, "{\"address\": 1, \"type\": \"str\", \"size\": 1, "
             "\"value\": \"a\\ud800\"}");
    assert_sv(f->d.value, f->d.value_len, "a\xed\xa0\x80");

    /* High followed by a character that is not a low surrogate. */
    parse_ok(f, "{\"address\": 1, \"type\": \"str\", \"size\": 1, "
             "\"value\": \"\\ud83dx\\ud83d\\u0041\\udbff\\n\"}");
    assert_sv(f->d.value, f->d.value_len,
              "\xed\xa0\xbdx\xed\xa0\xbd" "A\xed\xaf\xbf\n");

    /* Low then high: two lone surrogates, not a pair. */
    parse_ok(f, "{\"address\": 1, \"type\": \"str\", \"size\": 1, "
             "\"value\": \"\\ude00\\ud83d\"}");
    assert_sv(f->d.value, f->d.value_len, "\xed\xb8\x80\xed\xa0\xbd");

    /* High, high, low: a lone high then a pair. */
    parse_ok(f, "{\"address\": 1, \"type\": \"str\", \"size\": 1, "
             "\"value\": \"\\ud800\\ud83d\\ude00\"}");
    assert_sv(f->d.value, f->d.value_len,
              "\xed\xa0\x80\xf0\x9f\x98\x80");

    /* Just outside the low range on either side: no pair. */
    parse_ok(f, "{\"address\": 1, \"type\": \"str\", \"size\": 1, "
             "\"value\": \"\\ud800\\ue000\\ud800\\udbff\"}");
    assert_sv(f->d.value, f->d.value_len,
              "\xed\xa0\x80\xee\x80\x80\xed\xa0\x80\xed\xaf\xbf");

    /* Just inside it on either side, and the lowest and highest highs. */
    parse_ok(f, "{\"address\": 1, \"type\": \"str\", \"size\": 1, "
             "\"value\": \"\\ud800\\udfff\\udbff\\udc00\"}");
    assert_sv(f->d.value, f->d.value_len,
              "\xf0\x90\x8f\xbf"        /* U+103FF */
              "\xf4\x8f\xb0\x80");      /* U+10FC00 */

    /* A high surrogate right at the end of the line's last string, with
     * the line ending right after: no look-ahead past the end. */
    parse_ok(f, "{\"address\": 1, \"type\": \"\\udbff\", \"size\": 1}");
    assert_sv(f->d.type, f->d.type_len, "\xed\xaf\xbf");
}

static void
test_dumpline_passes_raw_utf8_through(void **state)
{
    struct fx *f = *state;

    parse_ok(f, "{\"address\": 1, \"type\": \"caf\xc3\xa9\", \"size\": 1, "
             "\"value\": \"\xf0\x9f\x98\x80\\n\xe2\x82\xac\"}");
    assert_sv(f->d.type, f->d.type_len, "caf\xc3\xa9");
    assert_true(in_line(f, f->d.type, f->d.type_len));
    assert_sv(f->d.value, f->d.value_len, "\xf0\x9f\x98\x80\n\xe2\x82\xac");
}

static void
test_dumpline_strings_without_escapes_point_into_line(void **state)
{
    struct fx *f = *state;

    parse_ok(f, "{\"address\": 1, \"type\": \"builtin_function_or_method\", "
             "\"size\": 72, \"name\": \"len\", \"value\": \"v a/l'ue\", "
             "\"refs\": []}");
    assert_true(in_line(f, f->d.type, f->d.type_len));
    assert_true(in_line(f, f->d.name, f->d.name_len));
    assert_true(in_line(f, f->d.value, f->d.value_len));
    assert_ptr_equal(f->d.type, f->buf + 24);
    assert_sv(f->d.type, f->d.type_len, "builtin_function_or_method");
    assert_sv(f->d.name, f->d.name_len, "len");
    assert_sv(f->d.value, f->d.value_len, "v a/l'ue");

    /* Mixed: only the escaped one is in the scratch. */
    parse_ok(f, "{\"address\": 1, \"type\": \"str\", \"size\": 1, "
             "\"name\": \"a\\tb\", \"value\": \"plain\"}");
    assert_true(in_line(f, f->d.type, f->d.type_len));
    assert_true(in_scratch(f, f->d.name, f->d.name_len));
    assert_true(in_line(f, f->d.value, f->d.value_len));
    assert_sv(f->d.name, f->d.name_len, "a\tb");
}

static void
test_dumpline_escaped_strings_stay_correct_when_scratch_grows(void **state)
{
    struct fx *f = *state;
    struct sb line = { 0 }, want = { 0 };

    /* First a small line, so the scratch starts small. */
    parse_ok(f, "{\"address\": 1, \"type\": \"\\u0041\", \"size\": 1}");
    assert_sv(f->d.type, f->d.type_len, "A");

    /* Then short escaped strings before a huge escaped one: whatever the
     * scratch does for the big one, the earlier ones must stay right. */
    sb_puts(&line, "{\"address\": 1, \"type\": \"t\\\"1\", "
            "\"name\": \"n\\u00e9\", \"unknown\": \"\\u0041\\u0042\", "
            "\"value\": \"");
    for (int i = 0; i < 20000; i++) {
        sb_puts(&line, i % 3 == 0 ? "\\u00e9" : i % 3 == 1 ? "\\n" : "z");
        sb_puts(&want, i % 3 == 0 ? "\xc3\xa9" : i % 3 == 1 ? "\n" : "z");
    }
    sb_puts(&line, "\", \"size\": 2, \"more\": \"\\t\\t\"}");
    parse_ok(f, line.d);
    assert_sv(f->d.type, f->d.type_len, "t\"1");
    assert_sv(f->d.name, f->d.name_len, "n\xc3\xa9");
    assert_int_equal(f->d.value_len, want.n);
    assert_memory_equal(f->d.value, want.d, want.n);
    assert_true(in_scratch(f, f->d.type, f->d.type_len));
    assert_true(in_scratch(f, f->d.name, f->d.name_len));
    assert_true(in_scratch(f, f->d.value, f->d.value_len));

    /* Many escaped strings in one line, each checked. */
    sb_free(&line);
    sb_puts(&line, "{\"address\": 1, \"size\": 2, \"type\": \"\\u0054\"");
    for (int i = 0; i < 500; i++) {
        sb_puts(&line, ", \"k");
        sb_putu64(&line, (uint64_t)i);
        sb_puts(&line, "\": \"\\u00e9\\\\\\u00e9\\\\\\u00e9\\\\\\u00e9\"");
    }
    sb_puts(&line, ", \"name\": \"\\u004e\", \"value\": \"\\u0056\"}");
    parse_ok(f, line.d);
    assert_sv(f->d.type, f->d.type_len, "T");
    assert_sv(f->d.name, f->d.name_len, "N");
    assert_sv(f->d.value, f->d.value_len, "V");

    /* And back to a small line with the grown scratch. */
    parse_ok(f, "{\"address\": 1, \"type\": \"\\u0042\", \"size\": 1}");
    assert_sv(f->d.type, f->d.type_len, "B");

    sb_free(&line);
    sb_free(&want);
}

static void
test_dumpline_accepts_long_strings(void **state)
{
    struct fx *f = *state;
    struct sb line = { 0 };

    sb_puts(&line, "{\"address\": 1, \"type\": \"");
    for (int i = 0; i < 100000; i++)
        sb_putc(&line, (char)('a' + i % 26));
    sb_puts(&line, "\", \"size\": 1}");
    parse_ok(f, line.d);
    assert_int_equal(f->d.type_len, 100000);
    assert_true(in_line(f, f->d.type, f->d.type_len));
    assert_true(f->d.type[99999] == 'a' + 99999 % 26);
    sb_free(&line);
}

/* ------------------------------------------------------------------------
 * Integers
 * ------------------------------------------------------------------------ */

static void
test_dumpline_rejects_integer_one_above_uint64_max(void **state)
{
    struct fx *f = *state;

    expect_eproto(f, "{\"address\": 18446744073709551616, \"type\": \"x\", "
                  "\"size\": 1}", "address does not fit in 64 bits");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", "
                  "\"size\": 18446744073709551616}",
                  "size does not fit in 64 bits");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 1, "
                  "\"len\": 18446744073709551616}",
                  "len does not fit in 64 bits");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 1, "
                  "\"refs\": [1, 18446744073709551616]}",
                  "ref does not fit in 64 bits");
    /* Each digit position overflowing. */
    expect_eproto(f, "{\"address\": 18446744073709551620, \"type\": \"x\", "
                  "\"size\": 1}", "does not fit");
    expect_eproto(f, "{\"address\": 18446744073709551700, \"type\": \"x\", "
                  "\"size\": 1}", "does not fit");
    expect_eproto(f, "{\"address\": 28446744073709551615, \"type\": \"x\", "
                  "\"size\": 1}", "does not fit");
    expect_eproto(f, "{\"address\": 99999999999999999999999999999999999, "
                  "\"type\": \"x\", \"size\": 1}", "does not fit");
}

static void
test_dumpline_rejects_leading_zeros(void **state)
{
    struct fx *f = *state;

    expect_eproto(f, "{\"address\": 01, \"type\": \"x\", \"size\": 1}",
                  "address has a leading zero");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 00}",
                  "size has a leading zero");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 1, "
                  "\"len\": 0007}", "leading zero");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 1, "
                  "\"refs\": [1, 02]}", "ref has a leading zero");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 1, "
                  "\"value\": 012}", "leading zero");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 1, "
                  "\"value\": -012}", "leading zero");
    expect_eproto(f, "{\"x\": 00, \"address\": 1, \"type\": \"x\", "
                  "\"size\": 1}", "leading zero");
}

static void
test_dumpline_rejects_negative_or_fractional_unsigned_fields(void **state)
{
    struct fx *f = *state;

    expect_eproto(f, "{\"address\": -1, \"type\": \"x\", \"size\": 1}",
                  "address is not a non-negative integer");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": -5}",
                  "size is not a non-negative integer");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 1, "
                  "\"len\": -0}", "len is not a non-negative integer");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 1, "
                  "\"refs\": [-3]}", "ref is not a non-negative integer");
    expect_eproto(f, "{\"address\": 1.5, \"type\": \"x\", \"size\": 1}",
                  "expected ',' or '}'");
    expect_eproto(f, "{\"address\": 1e3, \"type\": \"x\", \"size\": 1}",
                  "expected ',' or '}'");
    expect_eproto(f, "{\"address\": \"1\", \"type\": \"x\", \"size\": 1}",
                  "address is not a non-negative integer");
    expect_eproto(f, "{\"address\": +1, \"type\": \"x\", \"size\": 1}",
                  "address is not a non-negative integer");
}

static void
test_dumpline_rejects_malformed_numbers_in_value(void **state)
{
    struct fx *f = *state;

    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 1, "
                  "\"value\": 1.}", "no digits after '.'");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 1, "
                  "\"value\": 1e}", "no exponent digits");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 1, "
                  "\"value\": 1e+}", "no exponent digits");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 1, "
                  "\"value\": .5}", "not a JSON value");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 1, "
                  "\"value\": +1}", "not a JSON value");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 1, "
                  "\"value\": -}", "not a JSON value");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 1, "
                  "\"value\": inf}", "not a JSON value");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 1, "
                  "\"value\": tru}", "not a JSON value");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 1, "
                  "\"value\": 0x10}", "expected ',' or '}'");
}

/* ------------------------------------------------------------------------
 * Refs
 * ------------------------------------------------------------------------ */

static void
test_dumpline_reads_thousands_of_refs(void **state)
{
    struct fx *f = *state;
    uint64_t rng = 0x1234567887654321ull;
    enum { N = 20000 };
    uint64_t *want = malloc(N * sizeof(*want));
    struct sb line = { 0 };

    assert_non_null(want);
    sb_puts(&line, "{\"address\": 1, \"type\": \"list\", \"size\": 1, "
            "\"len\": 20000, \"refs\": [");
    for (size_t i = 0; i < N; i++) {
        want[i] = rng_next(&rng) >> rng_below(&rng, 64);
        if (i)
            sb_puts(&line, i % 7 ? ", " : ",");
        sb_putu64(&line, want[i]);
    }
    sb_puts(&line, "]}\n");
    parse_ok(f, line.d);
    assert_int_equal(f->d.nrefs, N);
    for (size_t i = 0; i < N; i++)
        assert_true(f->d.refs[i] == want[i]);

    /* The refs buffer is reused for a short line after a long one. */
    parse_ok(f, "{\"address\": 1, \"type\": \"t\", \"size\": 1, "
             "\"refs\": [7, 8]}");
    assert_int_equal(f->d.nrefs, 2);
    assert_true(f->d.refs[0] == 7 && f->d.refs[1] == 8);

    parse_ok(f, "{\"address\": 1, \"type\": \"t\", \"size\": 1, "
             "\"refs\": []}");
    assert_int_equal(f->d.nrefs, 0);

    sb_free(&line);
    free(want);
}

static void
test_dumpline_keeps_repeated_refs(void **state)
{
    struct fx *f = *state;

    parse_ok(f, "{\"address\": 1, \"type\": \"list\", \"size\": 1, "
             "\"refs\": [5,5 , 5\t,5]}");
    assert_int_equal(f->d.nrefs, 4);
    for (int i = 0; i < 4; i++)
        assert_true(f->d.refs[i] == 5);
}

static void
test_dumpline_rejects_malformed_refs(void **state)
{
    struct fx *f = *state;

    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 1, "
                  "\"refs\": {}}", "refs is not a list");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 1, "
                  "\"refs\": null}", "refs is not a list");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 1, "
                  "\"refs\": [1 2]}", "expected ',' or ']' in refs");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 1, "
                  "\"refs\": [1,]}", "ref is not a non-negative integer");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 1, "
                  "\"refs\": [,1]}", "ref is not a non-negative integer");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 1, "
                  "\"refs\": [\"1\"]}", "ref is not a non-negative integer");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 1, "
                  "\"refs\": [[1]]}", "ref is not a non-negative integer");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 1, "
                  "\"refs\": [1.0]}", "expected ',' or ']' in refs");
}

static void
test_dumpline_rejects_line_truncated_inside_refs(void **state)
{
    struct fx *f = *state;
    static const char line[] = "{\"address\": 1, \"type\": \"x\", "
        "\"size\": 1, \"refs\": [10, 200, 3000]}";
    const char *refs = strstr(line, "\"refs\"");
    size_t n = strlen(line);

    /* Every cut from inside the key to just before the closing '}'. */
    for (size_t cut = (size_t)(refs - line) + 1; cut < n; cut++) {
        if (parse_n(f, line, cut) != ML_EPROTO) {
            print_error("cut at %zu (%.*s) accepted\n", cut, (int)cut, line);
            fail();
        }
    }
    expect_eproto_n(f, line, (size_t)(strstr(line, "200") - line) + 1,
                    "expected ',' or ']' in refs");
    expect_eproto_n(f, line, (size_t)(strstr(line, "200") - line) - 1,
                    "ref is not a non-negative integer");
    expect_eproto_n(f, line, n - 1, "expected ',' or '}'");
}

/* ------------------------------------------------------------------------
 * Line endings and white space
 * ------------------------------------------------------------------------ */

static void
test_dumpline_accepts_trailing_newline_and_crlf(void **state)
{
    static const char *const ends[] = { "", "\n", "\r\n" };
    struct fx *f = *state;
    char line[200];

    for (size_t i = 0; i < 3; i++) {
        snprintf(line, sizeof(line), "{\"address\": 9, \"type\": \"t\", "
                 "\"size\": 8, \"value\": 17, \"refs\": [1]}%s", ends[i]);
        parse_ok(f, line);
        assert_int_equal(f->d.kind, ML_LINE_OBJECT);
        assert_true(f->d.address == 9 && f->d.size == 8);
        assert_sv(f->d.value, f->d.value_len, "17");
        assert_int_equal(f->d.nrefs, 1);
    }
}

static void
test_dumpline_accepts_compact_and_spaced_json(void **state)
{
    struct fx *f = *state;

    parse_ok(f, "{\"address\":9,\"type\":\"t\",\"size\":8,\"name\":\"n\","
             "\"len\":3,\"value\":false,\"refs\":[1,2,3]}");
    assert_true(f->d.address == 9 && f->d.len == 3);
    assert_int_equal(f->d.vkind, ML_VAL_FALSE);
    assert_int_equal(f->d.nrefs, 3);

    parse_ok(f, " \t{ \"address\" \t: 9 ,\t\"type\" : \"t\" , \"size\" :8 "
             ", \"value\" : 1.5 ,\"refs\" : [ 1 , 2 ] , \"x\" : [ { } , "
             "[ ] , { \"a\" : 1 } ] }\t \r\n");
    assert_true(f->d.address == 9 && f->d.size == 8);
    assert_sv(f->d.type, f->d.type_len, "t");
    assert_int_equal(f->d.vkind, ML_VAL_FLOAT);
    assert_sv(f->d.value, f->d.value_len, "1.5");
    assert_int_equal(f->d.nrefs, 2);
}

/* ------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------ */

static void
test_dumpline_rejects_empty_line(void **state)
{
    struct fx *f = *state;

    expect_eproto(f, "", "not a JSON object");
    expect_eproto(f, "\n", "not a JSON object");
    expect_eproto(f, "\r\n", "not a JSON object");
    expect_eproto(f, "   \t", "not a JSON object");
}

static void
test_dumpline_rejects_line_that_is_not_an_object(void **state)
{
    struct fx *f = *state;

    expect_eproto(f, "[1, 2]", "not a JSON object");
    expect_eproto(f, "\"address\"", "not a JSON object");
    expect_eproto(f, "42", "not a JSON object");
    expect_eproto(f, "null", "not a JSON object");
    expect_eproto(f, "hello", "not a JSON object");
    expect_eproto(f, "\xef\xbb\xbf{}", "not a JSON object");  /* BOM */
    expect_eproto(f, "{", "a key is not a string");
    expect_eproto(f, "{1: 2}", "a key is not a string");
    expect_eproto(f, "{address: 1}", "a key is not a string");
    expect_eproto(f, "{'address': 1}", "a key is not a string");
}

static void
test_dumpline_rejects_object_without_type_or_size(void **state)
{
    struct fx *f = *state;

    expect_eproto(f, "{\"address\": 1, \"size\": 1, \"refs\": []}",
                  "object has no \"type\"");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"refs\": []}",
                  "object has no \"size\"");
    expect_eproto(f, "{\"address\": 1}", "object has no \"type\"");
    expect_eproto(f, "{\"address\": 1, \"Type\": \"x\", \"SIZE\": 1}",
                  "object has no \"type\"");
}

static void
test_dumpline_rejects_duplicate_key(void **state)
{
    static const char *const dups[] = {
        "\"address\": 2", "\"type\": \"y\"", "\"size\": 2", "\"name\": \"m\"",
        "\"len\": 2", "\"value\": 2", "\"refs\": [2]",
    };
    static const char *const names[] = {
        "address", "type", "size", "name", "len", "value", "refs",
    };
    struct fx *f = *state;
    char line[300], want[40];

    for (size_t i = 0; i < 7; i++) {
        snprintf(line, sizeof(line), "{\"address\": 1, \"type\": \"x\", "
                 "\"size\": 1, \"name\": \"n\", \"len\": 1, \"value\": 1, "
                 "\"refs\": [1], %s}", dups[i]);
        snprintf(want, sizeof(want), "key \"%s\" appears twice", names[i]);
        expect_eproto(f, line, want);
    }
    /* A null name still counts as the key. */
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 1, "
                  "\"name\": null, \"name\": \"n\"}", "appears twice");
    /* Spelled differently but the same key. */
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 1, "
                  "\"\\u0074ype\": \"y\"}", "key \"type\" appears twice");
}

static void
test_dumpline_rejects_unterminated_string(void **state)
{
    struct fx *f = *state;

    expect_eproto(f, "{\"address", "unterminated string in a key");
    expect_eproto(f, "{\"address\": 1, \"type\": \"str",
                  "unterminated string in type");
    expect_eproto(f, "{\"address\": 1, \"type\": \"st\\\"r",
                  "unterminated string in type");
    /* A backslash as the line's last byte must not close the string. */
    expect_eproto(f, "{\"address\": 1, \"type\": \"abc\\",
                  "unterminated string in type");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 1, "
                  "\"value\": \"abc}", "unterminated string in value");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 1, "
                  "\"name\": \"abc\\\"}", "unterminated string in name");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 1, "
                  "\"x\": [\"abc]}", "unterminated string in a value");
    /* The newline ends the line, not the string. */
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\n",
                  "unterminated string in type");
}

static void
test_dumpline_rejects_bad_escape(void **state)
{
    static const char *const bad[] = {
        "\\x41", "\\U0041", "\\a", "\\0", "\\'", "\\ ", "\\\xc3\xa9",
    };
    static const char *const badu[] = {
        "\\u", "\\u1", "\\u12", "\\u123", "\\u12g4", "\\u-123", "\\u 123",
        "\\u{41}", "\\ud83d\\u", "\\ud83d\\ude0",
    };
    struct fx *f = *state;
    char line[200];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(line, sizeof(line), "{\"address\": 1, \"type\": \"a%sb\", "
                 "\"size\": 1}", bad[i]);
        expect_eproto(f, line, "bad escape in type");
    }
    for (size_t i = 0; i < sizeof(badu) / sizeof(badu[0]); i++) {
        snprintf(line, sizeof(line), "{\"address\": 1, \"type\": \"x\", "
                 "\"size\": 1, \"value\": \"a%s\"}", badu[i]);
        expect_eproto(f, line, "bad \\u escape in value");
    }
    /* \u at the very end of the line. */
    expect_eproto(f, "{\"address\": 1, \"type\": \"\\u00", "bad \\u escape");
    expect_eproto(f, "{\"x\": \"\\q\"}", "bad escape in a value");
    expect_eproto(f, "{\"\\q\": 1}", "bad escape in a key");
}

static void
test_dumpline_rejects_control_character_in_string(void **state)
{
    struct fx *f = *state;
    /* '@' stands for the control character: before any escape, after
     * one, in a skipped value, in a key. */
    static const char *const where[] = {
        "{\"address\": 1, \"type\": \"a@b\", \"size\": 1}",
        "{\"address\": 1, \"type\": \"\\n@b\", \"size\": 1}",
        "{\"address\": 1, \"type\": \"t\", \"size\": 1, \"x\": [\"@\"]}",
        "{\"add@ress\": 1, \"type\": \"t\", \"size\": 1}",
    };
    static const char nul_in_type[] =
        "{\"address\": 1, \"type\": \"a\0b\", \"size\": 1}";
    char line[200];

    for (size_t w = 0; w < sizeof(where) / sizeof(where[0]); w++) {
        /* 0 to 0x1f; but '\n' and '\r' at the very end would be taken
         * for the line's end, and here they are in the middle. */
        for (int ch = 0; ch < 0x20; ch++) {
            size_t n = strlen(where[w]);

            memcpy(line, where[w], n);
            *(char *)memchr(line, '@', n) = (char)ch;
            expect_eproto_n(f, line, n, "control character in");
        }
    }
    expect_eproto_n(f, nul_in_type, sizeof(nul_in_type) - 1,
                    "control character in type");
    /* DEL is not a control character for JSON. */
    parse_ok(f, "{\"address\": 1, \"type\": \"a\x7f\", \"size\": 1}");
    assert_sv(f->d.type, f->d.type_len, "a\x7f");
}

static void
test_dumpline_rejects_text_after_the_object(void **state)
{
    struct fx *f = *state;
    static const char nul_after[] =
        "{\"address\": 1, \"type\": \"t\", \"size\": 1}\0";

    expect_eproto(f, "{\"address\": 1, \"type\": \"t\", \"size\": 1} x",
                  "text after the end of the object");
    expect_eproto(f, "{\"address\": 1, \"type\": \"t\", \"size\": 1}}",
                  "text after the end of the object");
    expect_eproto(f, "{\"address\": 1, \"type\": \"t\", \"size\": 1},",
                  "text after the end of the object");
    expect_eproto(f, "{\"address\": 1, \"type\": \"t\", \"size\": 1}\n"
                  "{\"address\": 2, \"type\": \"t\", \"size\": 1}\n",
                  "text after the end of the object");
    expect_eproto_n(f, nul_after, sizeof(nul_after) - 1,
                    "text after the end of the object");
}

static void
test_dumpline_rejects_other_syntax_errors(void **state)
{
    struct fx *f = *state;

    expect_eproto(f, "{\"address\" 1}", "expected ':' after a key");
    expect_eproto(f, "{\"address\": 1 \"type\": \"t\"}",
                  "expected ',' or '}'");
    expect_eproto(f, "{\"address\": 1,, \"type\": \"t\"}",
                  "a key is not a string");
    expect_eproto(f, "{\"address\": 1, \"type\": \"t\", \"size\": 1,}",
                  "a key is not a string");
    expect_eproto(f, "{\"address\": 1, \"type\": 5, \"size\": 1}",
                  "type is not a string");
    expect_eproto(f, "{\"address\": 1, \"type\": null, \"size\": 1}",
                  "type is not a string");
    expect_eproto(f, "{\"address\": 1, \"type\": \"t\", \"size\": 1, "
                  "\"name\": 5}", "name is not a string");
    expect_eproto(f, "{\"address\": 1, \"type\": \"t\", \"size\": 1, "
                  "\"name\": nul}", "name is not a string");
    expect_eproto(f, "{\"address\": 1, \"type\": \"t\", \"size\": 1, "
                  "\"len\": true}", "len is not a non-negative integer");
    expect_eproto(f, "{\"address\": 1, \"type\": \"t\", \"size\": 1, "
                  "\"value\":", "line ends where a value should be");
    expect_eproto(f, "{\"x\":", "line ends where a value should be");
    expect_eproto(f, "{\"x\": nul}", "bad literal");
    expect_eproto(f, "{\"x\": True}", "not a JSON value");
    expect_eproto(f, "{\"x\": [1 2]}", "expected ',' or ']'");
    expect_eproto(f, "{\"x\": [1,]}", "not a JSON value");
    expect_eproto(f, "{\"x\": {\"a\" 1}}", "expected ':' after a key");
    expect_eproto(f, "{\"x\": {\"a\": 1,}}", "a key is not a string");
    expect_eproto(f, "{\"x\": {1: 2}}", "a key is not a string");
    expect_eproto(f, "{\"x\": {\"a\": 1]}", "expected ',' or '}'");
    expect_eproto(f, "{\"x\": [1}", "expected ',' or ']'");
    expect_eproto(f, "{\"address\": 1, \"type\": \"t\", \"size\": 1",
                  "expected ',' or '}'");
}

static void
test_dumpline_rejects_nesting_deeper_than_32_in_skipped_value(void **state)
{
    struct fx *f = *state;
    struct sb line = { 0 };

    /* 32 levels (arrays and objects mixed), with a value inside: fine. */
    sb_puts(&line, "{\"address\": 1, \"type\": \"t\", \"size\": 1, \"x\": ");
    for (int i = 0; i < 32; i++)
        sb_puts(&line, i % 2 ? "{\"k\": " : "[");
    sb_puts(&line, "1");
    for (int i = 31; i >= 0; i--)
        sb_puts(&line, i % 2 ? "}" : "]");
    sb_puts(&line, "}");
    parse_ok(f, line.d);
    assert_int_equal(f->d.kind, ML_LINE_OBJECT);

    /* 33 levels: too deep. */
    sb_free(&line);
    sb_puts(&line, "{\"address\": 1, \"type\": \"t\", \"size\": 1, \"x\": ");
    for (int i = 0; i < 33; i++)
        sb_puts(&line, "[");
    sb_puts(&line, "1");
    for (int i = 0; i < 33; i++)
        sb_puts(&line, "]");
    sb_puts(&line, "}");
    expect_eproto(f, line.d, "nested too deeply");

    /* Very deep, closed or not: an error, never a stack overflow. */
    sb_free(&line);
    sb_puts(&line, "{\"x\": ");
    for (int i = 0; i < 100000; i++)
        sb_puts(&line, i % 2 ? "{\"\": " : "[");
    expect_eproto(f, line.d, "nested too deeply");

    sb_free(&line);
}

static void
test_dumpline_rejects_every_truncation_of_a_full_line(void **state)
{
    struct fx *f = *state;
    static const char line[] = "{\"address\": 140245010635328, "
        "\"type\": \"t\\u00e9\", \"size\": 272, \"name\": \"n\\ud83d\\ude00\", "
        "\"len\": 2, \"value\": -1.5e+3, \"x\": {\"a\": [true, null]}, "
        "\"refs\": [1, 22]}";
    size_t n = strlen(line);

    parse_ok(f, line);
    for (size_t cut = 0; cut < n; cut++) {
        if (parse_n(f, line, cut) != ML_EPROTO) {
            print_error("prefix of %zu bytes accepted: %.*s\n", cut,
                        (int)cut, line);
            fail();
        }
    }
}

static void
test_dumpline_recovers_after_an_error(void **state)
{
    struct fx *f = *state;

    expect_eproto(f, "{\"address\": 1, \"type\": \"\\u00e9\\q\"}",
                  "bad escape");
    parse_ok(f, "{\"address\": 2, \"type\": \"\\u00e8\", \"size\": 3}");
    assert_true(f->d.address == 2);
    assert_sv(f->d.type, f->d.type_len, "\xc3\xa8");
    assert_int_equal(f->p.err[0], '\0');
}

static void
test_dumpline_parser_can_be_freed_and_reused(void **state)
{
    struct fx *f = *state;

    parse_ok(f, "{\"address\": 2, \"type\": \"\\u00e8\", \"size\": 3, "
             "\"refs\": [1, 2, 3]}");
    ml_dumpparser_free(&f->p);
    assert_null(f->p.sbuf);
    assert_null(f->p.refs);
    ml_dumpparser_free(&f->p);          /* twice is harmless */
    parse_ok(f, "{\"address\": 3, \"type\": \"\\u00e9\", \"size\": 3, "
             "\"refs\": [4]}");
    assert_sv(f->d.type, f->d.type_len, "\xc3\xa9");
    assert_true(f->d.refs[0] == 4);
    assert_string_equal(ml_strerror(ML_EPROTO), "malformed dump line");
}

/* ------------------------------------------------------------------------
 * Differential test: random lines from a generator that records what each
 * must decode to.
 * ------------------------------------------------------------------------ */

static void
put_hex4(uint64_t *rng, struct sb *o, unsigned v)
{
    static const char lo[] = "0123456789abcdef", up[] = "0123456789ABCDEF";
    const char *digits = rng_below(rng, 4) == 0 ? up : lo;

    sb_puts(o, "\\u");
    for (int sh = 12; sh >= 0; sh -= 4)
        sb_putc(o, digits[(v >> sh) & 0xf]);
}

static void
put_utf8(struct sb *o, unsigned cp)
{
    char b[4];
    size_t n;

    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xc0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xe0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        b[0] = (char)(0xf0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    sb_put(o, b, n);
}

static unsigned
random_non_surrogate(uint64_t *rng, unsigned lo, unsigned hi)
{
    unsigned cp;

    do
        cp = lo + (unsigned)rng_below(rng, hi - lo + 1);
    while (cp >= 0xd800 && cp < 0xe000);
    return cp;
}

/* A JSON string of up to maxitems characters into o (with its quotes),
 * what it decodes to into dec; *escaped set when it holds a backslash.
 * A \u0000 only with nul_ok: a type or name with one is refused. */
static void
gen_string(uint64_t *rng, struct sb *o, struct sb *dec, int *escaped,
           size_t maxitems, int nul_ok)
{
    size_t nitems = (size_t)rng_below(rng, maxitems + 1);
    int lone_high = 0;

    *escaped = 0;
    sb_putc(o, '"');
    for (size_t i = 0; i < nitems; i++) {
        unsigned k = (unsigned)rng_below(rng, 10), cp;
        int was_lone_high = lone_high;

        lone_high = 0;
        switch (k) {
        case 0:
        case 1:                 /* printable ASCII, raw */
            do
                cp = 0x20 + (unsigned)rng_below(rng, 0x5f);
            while (cp == '"' || cp == '\\');
            sb_putc(o, (char)cp);
            sb_putc(dec, (char)cp);
            break;
        case 2: {               /* the characters with a short escape */
            static const char esc[] = "\"\\/nrtbf";
            static const char val[] = "\"\\/\n\r\t\b\f";
            size_t j = (size_t)rng_below(rng, 8);

            sb_putc(o, '\\');
            sb_putc(o, esc[j]);
            sb_putc(dec, val[j]);
            *escaped = 1;
            break;
        }
        case 3:                 /* anything below U+0080 as \u */
            cp = (unsigned)rng_below(rng, 0x80);
            if (cp == 0 && !nul_ok)
                cp = 1;
            put_hex4(rng, o, cp);
            sb_putc(dec, (char)cp);
            *escaped = 1;
            break;
        case 4:                 /* BMP, not a surrogate, as \u */
            cp = random_non_surrogate(rng, 0x80, 0xffff);
            put_hex4(rng, o, cp);
            put_utf8(dec, cp);
            *escaped = 1;
            break;
        case 5:                 /* beyond the BMP, as a surrogate pair */
            cp = 0x10000 + (unsigned)rng_below(rng, 0x100000);
            put_hex4(rng, o, 0xd800 + ((cp - 0x10000) >> 10));
            put_hex4(rng, o, 0xdc00 + ((cp - 0x10000) & 0x3ff));
            put_utf8(dec, cp);
            *escaped = 1;
            break;
        case 6:                 /* a lone surrogate */
            cp = 0xd800 + (unsigned)rng_below(rng, 0x800);
            /* A low one right after a lone high would make a pair. */
            if (was_lone_high && cp >= 0xdc00)
                cp -= 0x400;
            put_hex4(rng, o, cp);
            put_utf8(dec, cp);
            lone_high = cp < 0xdc00;
            *escaped = 1;
            break;
        case 7:                 /* non-ASCII, raw UTF-8 */
            cp = random_non_surrogate(rng, 0x80, 0x10ffff);
            put_utf8(o, cp);
            put_utf8(dec, cp);
            break;
        case 8:                 /* '/' raw */
            sb_putc(o, '/');
            sb_putc(dec, '/');
            break;
        default:                /* a short run of letters */
            for (int j = 0; j < 5; j++) {
                sb_putc(o, (char)('a' + j));
                sb_putc(dec, (char)('a' + j));
            }
            break;
        }
    }
    sb_putc(o, '"');
}

static void
gen_ws(uint64_t *rng, struct sb *o)
{
    switch (rng_below(rng, 8)) {
    case 0: sb_putc(o, ' '); sb_putc(o, ' '); break;
    case 1: sb_putc(o, '\t'); break;
    case 2: sb_putc(o, ' '); sb_putc(o, '\t'); break;
    case 3: case 4: sb_putc(o, ' '); break;
    default: break;
    }
}

static uint64_t
gen_u64(uint64_t *rng)
{
    switch (rng_below(rng, 10)) {
    case 0: return 0;
    case 1: return UINT64_MAX;
    case 2: return UINT64_MAX - rng_below(rng, 1000);
    default: return rng_next(rng) >> rng_below(rng, 64);
    }
}

/* A JSON number's text; *is_int when it has no fraction or exponent. */
static void
gen_number(uint64_t *rng, struct sb *o, int *is_int)
{
    size_t ndig = 1 + (size_t)rng_below(rng, 30);

    if (rng_below(rng, 3) == 0)
        sb_putc(o, '-');
    if (rng_below(rng, 5) == 0) {
        sb_putc(o, '0');
    } else {
        sb_putc(o, (char)('1' + rng_below(rng, 9)));
        for (size_t i = 1; i < ndig; i++)
            sb_putc(o, (char)('0' + rng_below(rng, 10)));
    }
    *is_int = 1;
    if (rng_below(rng, 2) == 0) {
        *is_int = 0;
        sb_putc(o, '.');
        ndig = 1 + (size_t)rng_below(rng, 17);
        for (size_t i = 0; i < ndig; i++)
            sb_putc(o, (char)('0' + rng_below(rng, 10)));
    }
    if (rng_below(rng, 3) == 0) {
        static const char *const e[] = { "e", "E", "e+", "e-", "E+", "E-" };

        *is_int = 0;
        sb_puts(o, e[rng_below(rng, 6)]);
        ndig = 1 + (size_t)rng_below(rng, 3);
        for (size_t i = 0; i < ndig; i++)
            sb_putc(o, (char)('0' + rng_below(rng, 10)));
    }
}

/* Any JSON value, for an unknown key. */
static void
gen_any_value(uint64_t *rng, struct sb *o, int depth)
{
    struct sb junk = { 0 };
    int esc, is_int;
    size_t n;

    switch (rng_below(rng, depth >= 6 ? 5 : 7)) {
    case 0:
        gen_string(rng, o, &junk, &esc, 12, 1);
        break;
    case 1:
        gen_number(rng, o, &is_int);
        break;
    case 2:
        sb_puts(o, "true");
        break;
    case 3:
        sb_puts(o, rng_below(rng, 2) ? "false" : "null");
        break;
    case 4:
        sb_putu64(o, gen_u64(rng));
        break;
    case 5:
        sb_putc(o, '[');
        n = (size_t)rng_below(rng, 4);
        for (size_t i = 0; i < n; i++) {
            if (i) {
                gen_ws(rng, o);
                sb_putc(o, ',');
            }
            gen_ws(rng, o);
            gen_any_value(rng, o, depth + 1);
        }
        gen_ws(rng, o);
        sb_putc(o, ']');
        break;
    default:
        sb_putc(o, '{');
        n = (size_t)rng_below(rng, 4);
        for (size_t i = 0; i < n; i++) {
            if (i) {
                gen_ws(rng, o);
                sb_putc(o, ',');
            }
            gen_ws(rng, o);
            gen_string(rng, o, &junk, &esc, 6, 1);
            gen_ws(rng, o);
            sb_putc(o, ':');
            gen_ws(rng, o);
            gen_any_value(rng, o, depth + 1);
        }
        gen_ws(rng, o);
        sb_putc(o, '}');
        break;
    }
    sb_free(&junk);
}

struct want_line {
    int object;                 /* has "address" */
    uint64_t address, size, len;
    int has_type, has_size, has_name, has_len;
    struct sb type, name, value;
    int type_esc, name_esc, value_esc;
    enum ml_vkind vkind;
    uint64_t *refs;
    size_t nrefs;
};

static void
want_free(struct want_line *w)
{
    sb_free(&w->type);
    sb_free(&w->name);
    sb_free(&w->value);
    free(w->refs);
    memset(w, 0, sizeof(*w));
}

/* One random line into line; what it must parse to into w. */
static void
gen_line(uint64_t *rng, struct sb *line, struct want_line *w)
{
    struct sb seg[16];
    size_t nseg = 0, order[16];

    memset(seg, 0, sizeof(seg));
    memset(w, 0, sizeof(*w));
    w->object = rng_below(rng, 10) != 0;

#define SEG_KEY(name) do {                                          \
        sb_puts(&seg[nseg], "\"" name "\"");                        \
        gen_ws(rng, &seg[nseg]);                                    \
        sb_putc(&seg[nseg], ':');                                   \
        gen_ws(rng, &seg[nseg]);                                    \
    } while (0)

    if (w->object) {
        w->address = gen_u64(rng);
        SEG_KEY("address");
        sb_putu64(&seg[nseg++], w->address);
    }
    w->has_type = w->object || rng_below(rng, 2);
    if (w->has_type) {
        SEG_KEY("type");
        gen_string(rng, &seg[nseg++], &w->type, &w->type_esc,
                   rng_below(rng, 4) ? 8 : 60, 0);
    }
    w->has_size = w->object || rng_below(rng, 2);
    if (w->has_size) {
        w->size = gen_u64(rng);
        SEG_KEY("size");
        sb_putu64(&seg[nseg++], w->size);
    }
    switch (rng_below(rng, 6)) {
    case 0:
        SEG_KEY("name");
        sb_puts(&seg[nseg++], "null");
        break;
    case 1:
    case 2:
        w->has_name = 1;
        SEG_KEY("name");
        gen_string(rng, &seg[nseg++], &w->name, &w->name_esc, 30, 0);
        break;
    default:
        break;
    }
    if (rng_below(rng, 2)) {
        w->has_len = 1;
        w->len = gen_u64(rng);
        SEG_KEY("len");
        sb_putu64(&seg[nseg++], w->len);
    }
    switch (rng_below(rng, 8)) {
    case 0:
    case 1:
        w->vkind = ML_VAL_STR;
        SEG_KEY("value");
        gen_string(rng, &seg[nseg++], &w->value, &w->value_esc,
                   rng_below(rng, 8) ? 30 : 400, 1);
        break;
    case 2:
    case 3: {
        int is_int;
        size_t at;

        SEG_KEY("value");
        at = seg[nseg].n;
        gen_number(rng, &seg[nseg], &is_int);
        sb_put(&w->value, seg[nseg].d + at, seg[nseg].n - at);
        w->vkind = is_int ? ML_VAL_INT : ML_VAL_FLOAT;
        nseg++;
        break;
    }
    case 4:
        w->vkind = ML_VAL_TRUE;
        SEG_KEY("value");
        sb_puts(&seg[nseg++], "true");
        break;
    case 5:
        w->vkind = ML_VAL_FALSE;
        SEG_KEY("value");
        sb_puts(&seg[nseg++], "false");
        break;
    case 6:
        w->vkind = ML_VAL_NULL;
        SEG_KEY("value");
        sb_puts(&seg[nseg++], "null");
        break;
    default:
        break;
    }
    if (rng_below(rng, 10)) {
        size_t n = rng_below(rng, 20) == 0 ? (size_t)rng_below(rng, 3000)
                                           : (size_t)rng_below(rng, 12);

        w->nrefs = n;
        w->refs = malloc((n ? n : 1) * sizeof(*w->refs));
        assert_non_null(w->refs);
        SEG_KEY("refs");
        sb_putc(&seg[nseg], '[');
        for (size_t i = 0; i < n; i++) {
            if (i) {
                gen_ws(rng, &seg[nseg]);
                sb_putc(&seg[nseg], ',');
            }
            gen_ws(rng, &seg[nseg]);
            w->refs[i] = gen_u64(rng);
            sb_putu64(&seg[nseg], w->refs[i]);
        }
        gen_ws(rng, &seg[nseg]);
        sb_putc(&seg[nseg++], ']');
    }
#undef SEG_KEY
    /* Unknown keys, with any value.  The 'x' prefix keeps their names
     * apart from the known keys, whatever follows. */
    for (size_t k = (size_t)rng_below(rng, 4); k > 0; k--) {
        struct sb junk = { 0 };
        int esc;

        struct sb key = { 0 };

        gen_string(rng, &key, &junk, &esc, 5, 1);
        sb_puts(&seg[nseg], "\"x");
        sb_put(&seg[nseg], key.d + 1, key.n - 1);     /* after its '"' */
        sb_free(&key);
        sb_free(&junk);
        gen_ws(rng, &seg[nseg]);
        sb_putc(&seg[nseg], ':');
        gen_ws(rng, &seg[nseg]);
        gen_any_value(rng, &seg[nseg], 0);
        nseg++;
    }

    /* Random order. */
    for (size_t i = 0; i < nseg; i++)
        order[i] = i;
    for (size_t i = nseg; i > 1; i--) {
        size_t j = (size_t)rng_below(rng, i), t = order[i - 1];

        order[i - 1] = order[j];
        order[j] = t;
    }
    line->n = 0;
    gen_ws(rng, line);
    sb_putc(line, '{');
    for (size_t i = 0; i < nseg; i++) {
        if (i) {
            gen_ws(rng, line);
            sb_putc(line, ',');
        }
        gen_ws(rng, line);
        sb_put(line, seg[order[i]].d, seg[order[i]].n);
    }
    gen_ws(rng, line);
    sb_putc(line, '}');
    gen_ws(rng, line);
    switch (rng_below(rng, 3)) {
    case 0: sb_puts(line, "\n"); break;
    case 1: sb_puts(line, "\r\n"); break;
    default: break;
    }
    for (size_t i = 0; i < nseg; i++)
        sb_free(&seg[i]);
}

static void
check_string(const struct fx *f, const char *what, const char *p,
             size_t len, const struct sb *want, int escaped)
{
    if (len != want->n || (len && memcmp(p, want->d, len) != 0)) {
        print_error("%s: got %zu bytes, want %zu\n", what, len, want->n);
        fail();
    }
    if (escaped ? !in_scratch(f, p, len) : !in_line(f, p, len)) {
        print_error("%s: %s string not in the %s\n", what,
                    escaped ? "escaped" : "unescaped",
                    escaped ? "scratch" : "line");
        fail();
    }
}

static void
check_generated(struct fx *f, const struct want_line *w)
{
    if (f->rc != 0) {
        print_error("line (%zu bytes): %.*s\nrc %d, err: %s\n", f->n,
                    (int)(f->n < 400 ? f->n : 400), f->buf, f->rc, f->p.err);
        fail();
    }
    if (!w->object) {
        assert_int_equal(f->d.kind, ML_LINE_OTHER);
        return;
    }
    assert_int_equal(f->d.kind, ML_LINE_OBJECT);
    assert_true(f->d.address == w->address);
    assert_true(f->d.size == w->size);
    check_string(f, "type", f->d.type, f->d.type_len, &w->type, w->type_esc);
    assert_int_equal(f->d.has_name, w->has_name);
    if (w->has_name)
        check_string(f, "name", f->d.name, f->d.name_len, &w->name,
                     w->name_esc);
    else
        assert_null(f->d.name);
    assert_int_equal(f->d.has_len, w->has_len);
    if (w->has_len)
        assert_true(f->d.len == w->len);
    assert_int_equal(f->d.vkind, w->vkind);
    switch (w->vkind) {
    case ML_VAL_STR:
        check_string(f, "value", f->d.value, f->d.value_len, &w->value,
                     w->value_esc);
        break;
    case ML_VAL_INT:
    case ML_VAL_FLOAT:
        check_string(f, "value", f->d.value, f->d.value_len, &w->value, 0);
        break;
    default:
        assert_null(f->d.value);
        assert_int_equal(f->d.value_len, 0);
        break;
    }
    assert_int_equal(f->d.nrefs, w->nrefs);
    for (size_t i = 0; i < w->nrefs; i++)
        if (f->d.refs[i] != w->refs[i]) {
            print_error("ref %zu: got %" PRIu64 ", want %" PRIu64 "\n", i,
                        f->d.refs[i], w->refs[i]);
            fail();
        }
}

static void
test_dumpline_max_refs_refuses_longer_lists(void **state)
{
    struct ml_dumpparser p;
    struct ml_dumpline l;
    const char *ok = "{\"address\": 1, \"type\": \"list\", \"size\": 1, "
                     "\"refs\": [1, 2, 3]}";
    const char *bad = "{\"address\": 1, \"type\": \"list\", \"size\": 1, "
                      "\"refs\": [1, 2, 3, 4]}";

    (void)state;
    ml_dumpparser_init(&p);
    p.max_refs = 3;
    assert_int_equal(ml_dumpline_parse(&p, ok, strlen(ok), &l), 0);
    assert_int_equal(l.nrefs, 3);
    assert_int_equal(ml_dumpline_parse(&p, bad, strlen(bad), &l), ML_ETOOBIG);
    assert_non_null(strstr(p.err, "more than 3 refs"));
    assert_true(p.rcap <= 3);
    ml_dumpparser_free(&p);
}

static void
test_dumpline_matches_generator_on_random_lines(void **state)
{
    struct fx *f = *state;
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    struct sb line = { 0 };
    struct want_line w;
    size_t objects = 0, escaped = 0;

    for (int i = 0; i < 5000; i++) {
        gen_line(&rng, &line, &w);
        parse_n(f, line.d, line.n);
        check_generated(f, &w);
        objects += (size_t)w.object;
        escaped += (size_t)(w.type_esc || w.name_esc || w.value_esc);
        want_free(&w);
    }
    /* The generator covers what it should. */
    assert_true(objects > 4000 && objects < 5000);
    assert_true(escaped > 2000);
    sb_free(&line);
}

static void
test_dumpline_rejects_random_truncations_of_generated_lines(void **state)
{
    struct fx *f = *state;
    uint64_t rng = 0x0123456789abcdefull;
    struct sb line = { 0 };
    struct want_line w;

    for (int i = 0; i < 1000; i++) {
        size_t end, cut;

        gen_line(&rng, &line, &w);
        want_free(&w);
        /* Where the closing '}' is. */
        end = line.n;
        while (line.d[end - 1] != '}')
            end--;
        cut = (size_t)rng_below(&rng, end);
        if (parse_n(f, line.d, cut) != ML_EPROTO) {
            print_error("prefix of %zu bytes accepted: %.*s\n", cut,
                        (int)cut, line.d);
            fail();
        }
    }
    sb_free(&line);
}

/* ------------------------------------------------------------------------
 * Long lines: the head, then the refs in pieces (the daemon's path)
 * ------------------------------------------------------------------------ */

/* What a parse gave, copied (its pointers die at the next parse). */
struct got {
    int rc;
    struct ml_dumpline d;
    struct sb type, name, value;
    uint64_t *refs;
    size_t nrefs;
};

static void
got_free(struct got *g)
{
    sb_free(&g->type);
    sb_free(&g->name);
    sb_free(&g->value);
    free(g->refs);
    memset(g, 0, sizeof(*g));
}

static void
got_head(struct got *g, const struct ml_dumpline *d)
{
    g->d = *d;
    sb_put(&g->type, d->type, d->type_len);
    if (d->has_name)
        sb_put(&g->name, d->name, d->name_len);
    if (d->vkind == ML_VAL_STR || d->vkind == ML_VAL_INT
        || d->vkind == ML_VAL_FLOAT)
        sb_put(&g->value, d->value, d->value_len);
}

static void
got_refs(struct got *g, const uint64_t *r, size_t n)
{
    g->refs = realloc(g->refs, (g->nrefs + n + 1) * sizeof(*g->refs));
    assert_non_null(g->refs);
    memcpy(g->refs + g->nrefs, r, n * sizeof(*r));
    g->nrefs += n;
}

/* The whole-line parse of s[0..n). */
static void
whole(struct ml_dumpparser *p, const char *s, size_t n, struct got *g)
{
    memset(g, 0, sizeof(*g));
    g->rc = ml_dumpline_parse(p, s, n, &g->d);
    if (g->rc == 0) {
        got_head(g, &g->d);
        got_refs(g, g->d.refs, g->d.nrefs);
    }
}

/* As the daemon reads a long line: s[0..n) (ending in '\n') arrives
 * `step` bytes at a time; the head is tried on what has arrived until it
 * is complete, then the refs are fed as they come, at most cap at once.
 * g->rc: 0, or the first error. */
static void
pieces(struct ml_dumpparser *p, const char *s, size_t n, size_t step,
       size_t cap, struct got *g)
{
    struct ml_dumpline d;
    struct ml_refscan rs;
    uint64_t out[8];
    size_t have = 0, at = 0, off;
    char *copy;
    int rc;

    memset(g, 0, sizeof(*g));
    for (;;) {
        have = have + step < n ? have + step : n;
        /* Only what has arrived is readable (ASan checks it). */
        copy = malloc(have ? have : 1);
        assert_non_null(copy);
        memcpy(copy, s, have);
        rc = ml_dumpline_parse_head(p, copy, have, &d, &at);
        if (rc == 0)
            got_head(g, &d);
        free(copy);
        if (rc != ML_DUMPLINE_MORE)
            break;
        if (have == n) {
            g->rc = ML_DUMPLINE_MORE;
            return;
        }
    }
    if (rc != 0) {
        g->rc = rc;
        return;
    }
    assert_true(at <= have);
    ml_refscan_init(&rs);
    for (off = at; off < n; ) {
        size_t len = off + step < n ? step : n - off, k, used;

        copy = malloc(len);
        assert_non_null(copy);
        memcpy(copy, s + off, len);
        rc = ml_refscan_feed(&rs, copy, len, out, cap, &k, &used);
        free(copy);
        assert_true(k <= cap && used <= len);
        got_refs(g, out, k);
        off += used;
        if (rc == ML_EPROTO) {
            assert_true(rs.err[0] != '\0');
            g->rc = rc;
            return;
        }
        if (rc == ML_REFSCAN_END) {
            assert_int_equal(off, n);       /* the '\n' was the last byte */
            g->d.nrefs = g->nrefs;
            return;
        }
        assert_true(used == len || k == cap);
    }
    g->rc = ML_DUMPLINE_MORE;                   /* no '\n' */
}

static void
assert_same(const struct got *a, const struct got *b)
{
    assert_int_equal(a->rc, b->rc);
    if (a->rc != 0)
        return;
    assert_int_equal(a->d.kind, b->d.kind);
    assert_true(a->d.address == b->d.address && a->d.size == b->d.size);
    assert_int_equal(a->d.has_name, b->d.has_name);
    assert_int_equal(a->d.has_len, b->d.has_len);
    assert_true(a->d.len == b->d.len);
    assert_int_equal(a->d.vkind, b->d.vkind);
    assert_true(a->type.n == b->type.n
                && memcmp(a->type.d, b->type.d, a->type.n) == 0);
    assert_true(a->name.n == b->name.n
                && (a->name.n == 0 || memcmp(a->name.d, b->name.d, a->name.n) == 0));
    assert_true(a->value.n == b->value.n
                && (a->value.n == 0
                    || memcmp(a->value.d, b->value.d, a->value.n) == 0));
    assert_int_equal(a->nrefs, b->nrefs);
    for (size_t i = 0; i < a->nrefs; i++)
        assert_true(a->refs[i] == b->refs[i]);
}

static void
test_dumpline_long_line_in_pieces_parses_as_whole_at_every_split(void **state)
{
    struct fx *f = *state;
    static const char *lines[] = {
        "{\"address\": 140000000000, \"type\": \"dict\", \"size\": 232, "
        "\"name\": \"m\\u00e9\\ud83d\\ude00\", \"len\": 3, \"value\": "
        "\"a\\\"b\\\\c\", \"x\": [1, {\"y\": null}], \"refs\": "
        "[ 0 ,18446744073709551615,\t7, 140000000000 ,12345678901234]}\n",
        "{\"address\":1,\"type\":\"list\",\"size\":8,\"refs\":[]}\r\n",
        "{\"address\":1,\"type\":\"int\",\"size\":28,\"value\":-1.5e3,"
        "\"refs\":[5]} \n",
    };

    for (size_t i = 0; i < sizeof(lines) / sizeof(*lines); i++) {
        const char *s = lines[i];
        size_t n = strlen(s);
        struct got want, g;

        whole(&f->p, s, n, &want);
        assert_int_equal(want.rc, 0);
        for (size_t step = 1; step <= n; step++) {
            for (size_t cap = 1; cap <= 8; cap += 7) {
                pieces(&f->p, s, n, step, cap, &g);
                assert_same(&want, &g);
                got_free(&g);
            }
        }
        got_free(&want);
    }
}

static void
test_dumpline_long_line_matches_whole_parse_on_random_lines(void **state)
{
    struct fx *f = *state;
    uint64_t rng = 0x5eed5eed5eedull;
    struct sb line = { 0 };
    struct want_line w;
    size_t same = 0, refused = 0;

    for (int i = 0; i < 3000; i++) {
        struct got want, g;
        size_t step;
        const char *refs;

        gen_line(&rng, &line, &w);
        if (line.d[line.n - 1] != '\n')
            sb_putc(&line, '\n');
        step = 1 + (size_t)rng_below(&rng, line.n);
        whole(&f->p, line.d, line.n, &want);
        pieces(&f->p, line.d, line.n, step, 1 + (size_t)rng_below(&rng, 8),
               &g);
        refs = strstr(line.d, "\"refs\"");
        if (want.rc == 0 && w.object && w.refs != NULL && g.rc == 0) {
            assert_same(&want, &g);
            same++;
        } else if (want.rc == 0 && w.object && w.refs != NULL) {
            /* Refused only for a key after refs. */
            assert_int_equal(g.rc, ML_EPROTO);
            assert_non_null(refs);
            refused++;
        } else if (want.rc == 0 && w.object) {
            /* No refs: all head, a line the daemon parses whole once its
             * '\n' is there; not a long line. */
            assert_int_equal(g.rc, ML_EPROTO);
        }
        got_free(&want);
        got_free(&g);
        want_free(&w);
    }
    /* Keys come in random order: refs is last in about one in eight. */
    assert_true(same > 200 && refused > 1000);
    sb_free(&line);
}

/* The error of a long line fed in one piece after a good head. */
static void
expect_refs_error(struct fx *f, const char *tail, const char *needle)
{
    struct sb s = { 0 };
    struct got g;
    struct ml_refscan rs;
    uint64_t out[4];
    size_t k, used;
    int rc;

    sb_puts(&s, "{\"address\": 1, \"type\": \"list\", \"size\": 8, \"refs\": [");
    sb_puts(&s, tail);
    pieces(&f->p, s.d, s.n, 3, 2, &g);
    assert_int_equal(g.rc, ML_EPROTO);
    got_free(&g);
    /* The message, in one piece. */
    ml_refscan_init(&rs);
    rc = ml_refscan_feed(&rs, tail, strlen(tail), out, 4, &k, &used);
    while (rc == 0 && used < strlen(tail)) {
        tail += used;
        rc = ml_refscan_feed(&rs, tail, strlen(tail), out, 4, &k, &used);
    }
    assert_int_equal(rc, ML_EPROTO);
    if (strstr(rs.err, needle) == NULL) {
        print_error("error \"%s\" does not say \"%s\"\n", rs.err, needle);
        fail();
    }
    sb_free(&s);
}

static void
test_dumpline_long_line_refuses_bad_refs(void **state)
{
    struct fx *f = *state;

    expect_refs_error(f, "1, 2, x]}\n", "not a non-negative integer");
    expect_refs_error(f, "1, -2]}\n", "not a non-negative integer");
    expect_refs_error(f, "1, 2.5]}\n", "expected ',' or ']'");
    expect_refs_error(f, "1, 02]}\n", "leading zero");
    expect_refs_error(f, "18446744073709551616]}\n", "64 bits");
    expect_refs_error(f, "1, 2}\n", "expected ',' or ']'");      /* no ']' */
    expect_refs_error(f, "1, 2\n", "line ends inside refs");
    expect_refs_error(f, "1,\n", "line ends inside refs");
    expect_refs_error(f, "1, 2], \"len\": 2}\n", "last key");
    expect_refs_error(f, "1, 2]]\n", "expected '}'");
    expect_refs_error(f, "1, 2]} x\n", "text after the end");
    expect_refs_error(f, "1,,2]}\n", "not a non-negative integer");
    expect_refs_error(f, ",1]}\n", "not a non-negative integer");
}

static void
test_dumpline_long_line_head_waits_or_refuses(void **state)
{
    struct fx *f = *state;
    const char *s = "{\"address\": 1, \"type\": \"dict\", \"name\": \"x\\u00e9\","
                    " \"size\": 8, \"refs\": [1]}\n";
    struct ml_dumpline d;
    struct sb junk = { 0 };
    size_t at = 0, head = strstr(s, "[1") - s + 1;

    /* Every prefix of the head: more is needed. */
    for (size_t k = 0; k < head; k++)
        assert_int_equal(ml_dumpline_parse_head(&f->p, s, k, &d, &at),
                         ML_DUMPLINE_MORE);
    assert_int_equal(ml_dumpline_parse_head(&f->p, s, head, &d, &at), 0);
    assert_int_equal(at, head);
    assert_true(d.address == 1 && d.size == 8 && d.nrefs == 0);
    assert_true(d.type_len == 4 && memcmp(d.type, "dict", 4) == 0);
    assert_true(d.has_name && d.name_len == 3);
    /* Garbage is refused once it is past any doubt. */
    for (int i = 0; i < 200; i++)
        sb_putc(&junk, 'x');
    assert_int_equal(ml_dumpline_parse_head(&f->p, junk.d, junk.n, &d, &at),
                     ML_EPROTO);
    junk.n = 0;
    sb_puts(&junk, "{\"address\": 1, \"type\": 7, \"size\": 8");
    for (int i = 0; i < 200; i++)
        sb_putc(&junk, ' ');
    assert_int_equal(ml_dumpline_parse_head(&f->p, junk.d, junk.n, &d, &at),
                     ML_EPROTO);
    /* Refs before "type": refused, the head must be whole. */
    junk.n = 0;
    sb_puts(&junk, "{\"address\": 1, \"refs\": [1, 2");
    assert_int_equal(ml_dumpline_parse_head(&f->p, junk.d, junk.n, &d, &at),
                     ML_EPROTO);
    assert_non_null(strstr(f->p.err, "before its refs"));
    /* A line without "address" (a trailer) cannot be long. */
    junk.n = 0;
    sb_puts(&junk, "{\"end\": \"complete\", \"refs\": [");
    assert_int_equal(ml_dumpline_parse_head(&f->p, junk.d, junk.n, &d, &at),
                     ML_EPROTO);
    /* A complete line without refs: not a long line. */
    junk.n = 0;
    sb_puts(&junk, "{\"address\": 1, \"type\": \"x\", \"size\": 8}\n");
    assert_int_equal(ml_dumpline_parse_head(&f->p, junk.d, junk.n, &d, &at),
                     ML_EPROTO);
    sb_free(&junk);
}

static void
test_dumpline_refscan_stops_when_out_is_full(void **state)
{
    const char *s = "10, 20, 30]}\n";
    struct ml_refscan rs;
    uint64_t out[1];
    size_t k, used, off = 0, total = 0;
    int rc = 0;

    (void)state;
    ml_refscan_init(&rs);
    while (rc == 0) {
        rc = ml_refscan_feed(&rs, s + off, strlen(s) - off, out, 1, &k, &used);
        off += used;
        if (k == 1)
            assert_true(out[0] == 10 * ++total);
    }
    assert_int_equal(rc, ML_REFSCAN_END);
    assert_int_equal(total, 3);
    assert_int_equal(rs.count, 3);
    assert_int_equal(off, strlen(s));
    /* Nothing after the '\n' is taken. */
    ml_refscan_init(&rs);
    rc = ml_refscan_feed(&rs, "]}\nxyz", 6, out, 1, &k, &used);
    assert_int_equal(rc, ML_REFSCAN_END);
    assert_int_equal(used, 3);
}

/* ------------------------------------------------------------------------
 * Lines exactly as meliae writes them (the parser's fast path) parse as
 * any other spelling of them does
 * ------------------------------------------------------------------------ */

/* d written back the way the scanner writes lines: ", " and ": ", keys
 * in its order, strings escaped only where JSON needs it. */
static void
write_meliae(struct sb *o, const struct ml_dumpline *d)
{
    static const char hex[] = "0123456789abcdef";

    o->n = 0;
#define STR(p, n) do {                                                  \
        sb_putc(o, '"');                                                \
        for (size_t i_ = 0; i_ < (n); i_++) {                           \
            unsigned char ch_ = (unsigned char)(p)[i_];                 \
            if (ch_ == '"' || ch_ == '\\') {                            \
                sb_putc(o, '\\');                                       \
                sb_putc(o, (char)ch_);                                  \
            } else if (ch_ < 0x20) {                                    \
                sb_puts(o, "\\u00");                                    \
                sb_putc(o, hex[ch_ >> 4]);                              \
                sb_putc(o, hex[ch_ & 15]);                              \
            } else {                                                    \
                sb_putc(o, (char)ch_);                                  \
            }                                                           \
        }                                                               \
        sb_putc(o, '"');                                                \
    } while (0)
    sb_puts(o, "{\"address\": ");
    sb_putu64(o, d->address);
    sb_puts(o, ", \"type\": ");
    STR(d->type, d->type_len);
    sb_puts(o, ", \"size\": ");
    sb_putu64(o, d->size);
    if (d->has_name) {
        sb_puts(o, ", \"name\": ");
        STR(d->name, d->name_len);
    }
    if (d->has_len) {
        sb_puts(o, ", \"len\": ");
        sb_putu64(o, d->len);
    }
    switch (d->vkind) {
    case ML_VAL_STR: sb_puts(o, ", \"value\": "); STR(d->value, d->value_len); break;
    case ML_VAL_INT:
    case ML_VAL_FLOAT:
        sb_puts(o, ", \"value\": ");
        sb_put(o, d->value, d->value_len);
        break;
    case ML_VAL_TRUE: sb_puts(o, ", \"value\": true"); break;
    case ML_VAL_FALSE: sb_puts(o, ", \"value\": false"); break;
    case ML_VAL_NULL: sb_puts(o, ", \"value\": null"); break;
    default: break;
    }
    sb_puts(o, ", \"refs\": [");
    for (size_t i = 0; i < d->nrefs; i++) {
        if (i)
            sb_puts(o, ", ");
        sb_putu64(o, d->refs[i]);
    }
    sb_puts(o, "]}\n");
#undef STR
}

static void
test_dumpline_meliae_spelling_parses_as_any_other(void **state)
{
    struct fx *f = *state;
    struct ml_dumpparser p2;
    uint64_t rng = 0xfa57fa57ull;
    struct sb line = { 0 }, canon = { 0 };
    struct want_line w;
    size_t n = 0;

    ml_dumpparser_init(&p2);
    for (int i = 0; i < 5000; i++) {
        struct got a, b;

        gen_line(&rng, &line, &w);
        whole(&f->p, line.d, line.n, &a);
        if (a.rc == 0 && a.d.kind == ML_LINE_OBJECT) {
            a.d.type = a.type.d;
            a.d.name = a.name.d;
            a.d.value = a.value.d;
            a.d.refs = a.refs;
            write_meliae(&canon, &a.d);
            whole(&p2, canon.d, canon.n, &b);
            assert_same(&a, &b);
            got_free(&b);
            n++;
        }
        got_free(&a);
        want_free(&w);
    }
    assert_true(n > 4000);
    ml_dumpparser_free(&p2);
    sb_free(&line);
    sb_free(&canon);
}

static void
test_dumpline_meliae_spelling_refuses_what_others_do(void **state)
{
    struct fx *f = *state;

    expect_eproto(f, "{\"address\": 01, \"type\": \"x\", \"size\": 8, "
                     "\"refs\": []}", "leading zero");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 8, "
                     "\"refs\": [1, 02]}", "leading zero");
    expect_eproto(f, "{\"address\": 18446744073709551616, \"type\": \"x\", "
                     "\"size\": 8, \"refs\": []}", "64 bits");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 8, "
                     "\"value\": 1., \"refs\": []}", "digits after '.'");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 8, "
                     "\"value\": 1e, \"refs\": []}", "exponent");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 8, "
                     "\"value\": -, \"refs\": []}", "not a JSON value");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 8, "
                     "\"refs\": [1, 2, ]}", "a ref");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 8, "
                     "\"refs\": [1, 2]}}", "after the end");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 8, "
                     "\"refs\": [1, 2]} x", "after the end");
    expect_eproto(f, "{\"address\": 1, \"type\": \"x\", \"size\": 8, "
                     "\"len\": 1, \"len\": 2, \"refs\": []}", "twice");
    /* Big values and long ints: right, by whichever path. */
    parse_ok(f, "{\"address\": 1, \"type\": \"int\", \"size\": 8, "
                "\"value\": -123456789012345678901234567890, \"refs\": []}");
    assert_int_equal(f->d.vkind, ML_VAL_INT);
    assert_int_equal(f->d.value_len, 31);
    parse_ok(f, "{\"address\": 1, \"type\": \"float\", \"size\": 8, "
                "\"value\": -0.5e-3, \"refs\": [18446744073709551615]}");
    assert_int_equal(f->d.vkind, ML_VAL_FLOAT);
    assert_int_equal(f->d.value_len, 7);
    assert_true(f->d.nrefs == 1 && f->d.refs[0] == UINT64_MAX);
    parse_ok(f, "{\"address\": 1, \"type\": \"x\", \"size\": 8, "
                "\"value\": \"a\\\"b\", \"refs\": []}");
    assert_int_equal(f->d.value_len, 3);
}

static void
test_dumpline_refuses_a_nul_in_type_or_name_not_in_value(void **state)
{
    static const char *const bad[] = {
        "{\"address\": 1, \"type\": \"dict\\u0000x\", \"size\": 1}",
        "{\"address\": 1, \"type\": \"f\", \"size\": 1, "
        "\"name\": \"a\\u0000\", \"refs\": []}",
    };
    static const char ok[] = "{\"address\": 1, \"type\": \"str\", "
                             "\"size\": 1, \"value\": \"a\\u0000b\"}";
    struct ml_dumpparser p;
    struct ml_dumpline d;

    (void)state;
    ml_dumpparser_init(&p);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(ml_dumpline_parse(&p, bad[i], strlen(bad[i]), &d),
                         ML_EPROTO);
        assert_non_null(strstr(p.err, "NUL"));
    }
    assert_int_equal(ml_dumpline_parse(&p, ok, strlen(ok), &d), 0);
    assert_int_equal(d.value_len, 3);
    assert_memory_equal(d.value, "a\0b", 3);
    ml_dumpparser_free(&p);
}

/* Birth sites (docs/dump-format.md): an object line's "trace", by the
 * fast path (the writer's order) and the general one alike; a table line
 * is no object line but says its "traceback". */
static void
test_dumpline_reads_trace_and_traceback_ids(void **state)
{
    static const char *const lines[] = {
        "{\"address\": 7, \"type\": \"list\", \"size\": 56, \"len\": 0, "
        "\"trace\": 12, \"refs\": [1, 2]}",
        "{\"trace\": 12, \"address\": 7, \"type\": \"list\", \"size\": 56, "
        "\"len\": 0, \"refs\": [1, 2]}",
        "{\"address\": 7,\"type\": \"list\", \"size\": 56, \"len\": 0, "
        "\"trace\" : 12, \"refs\": [1, 2]}",
    };
    static const char table[] = "{\"traceback\": 3, \"frames\": [[\"a.py\", "
                                "4, \"f\"], [null, 0, null]]}";
    static const char plain[] = "{\"address\": 7, \"type\": \"list\", "
                                "\"size\": 56, \"refs\": []}";
    struct ml_dumpparser p;
    struct ml_dumpline d;

    (void)state;
    ml_dumpparser_init(&p);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(ml_dumpline_parse(&p, lines[i], strlen(lines[i]),
                                           &d), 0);
        assert_int_equal(d.kind, ML_LINE_OBJECT);
        assert_true(d.has_trace);
        assert_int_equal(d.trace, 12);
        assert_int_equal(d.nrefs, 2);
        assert_int_equal(d.refs[1], 2);
    }
    assert_int_equal(ml_dumpline_parse(&p, table, strlen(table), &d), 0);
    assert_int_equal(d.kind, ML_LINE_OTHER);
    assert_true(d.has_traceback);
    assert_int_equal(d.traceback, 3);
    assert_false(d.has_trace);
    /* nothing of a line before shows in the next */
    assert_int_equal(ml_dumpline_parse(&p, plain, strlen(plain), &d), 0);
    assert_false(d.has_trace);
    assert_false(d.has_traceback);
    assert_int_equal(ml_dumpline_parse(&p, "{\"address\": 7, \"type\": \"x\", "
                                       "\"size\": 1, \"trace\": -1}", 51, &d),
                     ML_EPROTO);
    ml_dumpparser_free(&p);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dumpline_max_refs_refuses_longer_lists),
        cmocka_unit_test(test_dumpline_refuses_a_nul_in_type_or_name_not_in_value),
        cmocka_unit_test(test_dumpline_reads_trace_and_traceback_ids),
        T(test_dumpline_parses_every_key_of_an_object_line),
        T(test_dumpline_parses_the_documented_example_lines),
        T(test_dumpline_parses_name),
        T(test_dumpline_treats_null_name_as_absent),
        T(test_dumpline_parses_string_value),
        T(test_dumpline_parses_integer_value_as_text),
        T(test_dumpline_parses_float_value_as_text),
        T(test_dumpline_parses_true_false_and_null_values),
        T(test_dumpline_reports_no_value_when_key_absent),
        T(test_dumpline_accepts_zero_and_uint64_max),
        T(test_dumpline_keeps_addresses_above_2_pow_53_exact),
        T(test_dumpline_accepts_keys_in_every_order),
        T(test_dumpline_skips_unknown_keys_with_any_value),
        T(test_dumpline_skipped_escaped_strings_do_not_disturb_known_ones),
        T(test_dumpline_recognises_key_names_written_with_escapes),
        T(test_dumpline_reads_meliae_05_lines),
        T(test_dumpline_reports_header_and_trailer_as_other),
        T(test_dumpline_checks_syntax_of_other_lines_too),
        T(test_dumpline_unescapes_short_escapes),
        T(test_dumpline_unescapes_u_escapes_to_utf8),
        T(test_dumpline_joins_surrogate_pairs_into_4_byte_utf8),
        T(test_dumpline_keeps_lone_surrogates_as_3_byte_encoding),
        T(test_dumpline_passes_raw_utf8_through),
        T(test_dumpline_strings_without_escapes_point_into_line),
        T(test_dumpline_escaped_strings_stay_correct_when_scratch_grows),
        T(test_dumpline_accepts_long_strings),
        T(test_dumpline_rejects_integer_one_above_uint64_max),
        T(test_dumpline_rejects_leading_zeros),
        T(test_dumpline_rejects_negative_or_fractional_unsigned_fields),
        T(test_dumpline_rejects_malformed_numbers_in_value),
        T(test_dumpline_reads_thousands_of_refs),
        T(test_dumpline_keeps_repeated_refs),
        T(test_dumpline_rejects_malformed_refs),
        T(test_dumpline_rejects_line_truncated_inside_refs),
        T(test_dumpline_accepts_trailing_newline_and_crlf),
        T(test_dumpline_accepts_compact_and_spaced_json),
        T(test_dumpline_rejects_empty_line),
        T(test_dumpline_rejects_line_that_is_not_an_object),
        T(test_dumpline_rejects_object_without_type_or_size),
        T(test_dumpline_rejects_duplicate_key),
        T(test_dumpline_rejects_unterminated_string),
        T(test_dumpline_rejects_bad_escape),
        T(test_dumpline_rejects_control_character_in_string),
        T(test_dumpline_rejects_text_after_the_object),
        T(test_dumpline_rejects_other_syntax_errors),
        T(test_dumpline_rejects_nesting_deeper_than_32_in_skipped_value),
        T(test_dumpline_rejects_every_truncation_of_a_full_line),
        T(test_dumpline_recovers_after_an_error),
        T(test_dumpline_parser_can_be_freed_and_reused),
        T(test_dumpline_matches_generator_on_random_lines),
        T(test_dumpline_rejects_random_truncations_of_generated_lines),
        T(test_dumpline_long_line_in_pieces_parses_as_whole_at_every_split),
        T(test_dumpline_long_line_matches_whole_parse_on_random_lines),
        T(test_dumpline_long_line_refuses_bad_refs),
        T(test_dumpline_long_line_head_waits_or_refuses),
        T(test_dumpline_refscan_stops_when_out_is_full),
        T(test_dumpline_meliae_spelling_parses_as_any_other),
        T(test_dumpline_meliae_spelling_refuses_what_others_do),
    };
#undef T

    return cmocka_run_group_tests(tests, NULL, NULL);
}
