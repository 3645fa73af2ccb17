/* SPDX-License-Identifier: MIT
 *
 * test_dumpline_swar.c -- the parser's eight-bytes-at-a-time readers
 * (common/dumpline.c: digits19 for numbers, fast_str for plain strings)
 * at every length and every position against the line's end.  Each line
 * is parsed from a buffer of exactly its length (no NUL after it), so an
 * 8-byte read past the end is an ASan error in the build-asan run.  The
 * oracle for numbers is strtoull; for strings the text written.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dumpline.h"
#include "ml-common.h"

/* Parses text from an exact-size copy; the return code. */
static int
parse_exact(struct ml_dumpparser *p, const char *text, struct ml_dumpline *l)
{
    size_t n = strlen(text);
    char *buf = malloc(n ? n : 1);
    int rc;

    assert_non_null(buf);
    memcpy(buf, text, n);
    rc = ml_dumpline_parse(p, buf, n, l);
    /* What points into the line is not read after this. */
    free(buf);
    return rc;
}

/* A number of d digits, first digit f, the others from seed. */
static void
make_digits(char *out, unsigned d, char f, unsigned seed)
{
    out[0] = f;
    for (unsigned i = 1; i < d; i++) {
        seed = seed * 1103515245u + 12345u;
        out[i] = (char)('0' + (seed >> 16) % 10);
    }
    out[d] = '\0';
}

static void
test_dumpline_swar_numbers_of_every_length_match_strtoull(void **state)
{
    struct ml_dumpparser p;
    char num[32], line[256];

    (void)state;
    ml_dumpparser_init(&p);
    for (unsigned d = 1; d <= 21; d++)
        for (unsigned v = 0; v < 6; v++) {
            struct ml_dumpline l;
            unsigned long long want;
            int over, rc;

            make_digits(num, d, d == 1 ? (char)('0' + v) : (char)('1' + v), d * 7 + v);
            if (v == 5)
                memset(num + 1, '9', d - 1);   /* the most of d digits */
            errno = 0;
            want = strtoull(num, NULL, 10);
            over = errno == ERANGE;
            /* As address, size, len and the last ref (right before the
             * line's end: fewer than 8 bytes after it). */
            snprintf(line, sizeof(line),
                     "{\"address\": %s, \"type\": \"t\", \"size\": %s, \"len\": %s, "
                     "\"refs\": [%s, %s]}", num, num, num, num, num);
            rc = parse_exact(&p, line, &l);
            if (over) {
                assert_int_equal(rc, ML_EPROTO);
                continue;
            }
            assert_int_equal(rc, 0);
            assert_true(l.address == want);
            assert_true(l.size == want);
            assert_true(l.len == want);
            assert_int_equal(l.nrefs, 2);
            assert_true(l.refs[0] == want);
            assert_true(l.refs[1] == want);
            /* The same with the general parser's spacing. */
            snprintf(line, sizeof(line), "{\"refs\":[%s],\"size\":%s,\"type\":\"t\",\"address\":%s}",
                     num, num, num);
            assert_int_equal(parse_exact(&p, line, &l), 0);
            assert_true(l.address == want && l.size == want && l.refs[0] == want);
        }
    ml_dumpparser_free(&p);
}

static void
test_dumpline_swar_numbers_stop_at_any_following_byte(void **state)
{
    /* Every byte after 1 to 16 digits ends the number where it is; a
     * digit-like byte (':' is '9' + 1, '/' is '0' - 1) is no digit. */
    static const char after[] = { ',', ']', ':', '/', ' ', '}', 'a', '\x80', '\xff' };
    struct ml_dumpparser p;
    char num[32], line[256];

    (void)state;
    ml_dumpparser_init(&p);
    for (unsigned d = 1; d <= 16; d++)
        for (size_t k = 0; k < sizeof(after); k++) {
            struct ml_dumpline l;
            int rc;

            make_digits(num, d, '7', d);
            snprintf(line, sizeof(line),
                     "{\"address\": %s%c, \"type\": \"t\", \"size\": 1, \"refs\": []}",
                     num, after[k]);
            rc = parse_exact(&p, line, &l);
            if (after[k] == ' ') {      /* ",," and the rest: no JSON */
                assert_int_equal(rc, 0);
                assert_true(l.address == strtoull(num, NULL, 10));
            } else {
                assert_int_equal(rc, ML_EPROTO);
            }
        }
    ml_dumpparser_free(&p);
}

static void
test_dumpline_swar_rejects_leading_zeros_at_every_length(void **state)
{
    struct ml_dumpparser p;
    char num[32], line[256];

    (void)state;
    ml_dumpparser_init(&p);
    for (unsigned d = 2; d <= 19; d++) {
        struct ml_dumpline l;

        make_digits(num, d, '0', d);
        snprintf(line, sizeof(line),
                 "{\"address\": 1, \"type\": \"t\", \"size\": 1, \"refs\": [%s]}", num);
        assert_int_equal(parse_exact(&p, line, &l), ML_EPROTO);
        snprintf(line, sizeof(line),
                 "{\"address\": %s, \"type\": \"t\", \"size\": 1, \"refs\": []}", num);
        assert_int_equal(parse_exact(&p, line, &l), ML_EPROTO);
    }
    ml_dumpparser_free(&p);
}

/* A value string of plain letters with `special` at position at
 * (0 <= at < len); what it unescapes to is checked, or the error. */
static void
check_str(struct ml_dumpparser *p, size_t len, size_t at, const char *special,
          const char *unescaped)
{
    char text[128], want[128], line[512];
    size_t ul = strlen(unescaped), o = 0, w = 0;
    struct ml_dumpline l;
    int rc;

    for (size_t i = 0; i < len; i++) {
        if (i == at) {
            o += (size_t)snprintf(text + o, sizeof(text) - o, "%s", special);
            memcpy(want + w, unescaped, ul);
            w += ul;
        } else {
            text[o++] = (char)('a' + i % 26);
            want[w++] = (char)('a' + i % 26);
        }
    }
    text[o] = '\0';
    /* type, name and value: the fast path reads all three. */
    snprintf(line, sizeof(line),
             "{\"address\": 1, \"type\": \"%s\", \"size\": 2, \"name\": \"%s\", "
             "\"value\": \"%s\", \"refs\": []}", text, text, text);
    rc = parse_exact(p, line, &l);
    if (ul == 0) {              /* a raw control byte: an error */
        assert_int_equal(rc, ML_EPROTO);
        return;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(l.type_len, w);
    assert_int_equal(l.name_len, w);
    assert_int_equal(l.value_len, w);
    assert_int_equal(l.vkind, ML_VAL_STR);
    /* The line is freed: only the unescaped ones (in sbuf) are readable,
     * the in-line ones are checked by length and by a second parse. */
    if (strcmp(special, unescaped) != 0)
        assert_memory_equal(l.value, want, w);
}

static void
test_dumpline_swar_strings_find_the_special_byte_at_every_position(void **state)
{
    static const struct { const char *in, *out; } cases[] = {
        { "\\\"", "\"" },
        { "\\\\", "\\" },
        { "\\n", "\n" },
        { "\\u00e9", "\xc3\xa9" },
        { "\\ud83d\\ude00", "\xf0\x9f\x98\x80" },
        { "\xc3\xa9", "\xc3\xa9" },        /* raw UTF-8 */
        { "~", "~" },                      /* 0x7e: plain */
        { " ", " " },                      /* 0x20: plain */
        { "\x1f", "" },                    /* raw control: refused */
        { "\x01", "" },
    };
    struct ml_dumpparser p;

    (void)state;
    ml_dumpparser_init(&p);
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
        for (size_t len = 1; len <= 20; len++)
            for (size_t at = 0; at < len; at++)
                check_str(&p, len, at, cases[c].in, cases[c].out);
    ml_dumpparser_free(&p);
}

static void
test_dumpline_swar_plain_strings_point_into_the_line_at_every_length(void **state)
{
    struct ml_dumpparser p;
    char text[64], line[256];

    (void)state;
    ml_dumpparser_init(&p);
    for (size_t len = 0; len <= 40; len++) {
        struct ml_dumpline l;
        size_t n;

        for (size_t i = 0; i < len; i++)
            text[i] = (char)('A' + i % 26);
        text[len] = '\0';
        n = (size_t)snprintf(line, sizeof(line),
                             "{\"address\": 1, \"type\": \"t\", \"size\": 2, \"value\": \"%s\", \"refs\": []}",
                             text);
        assert_int_equal(ml_dumpline_parse(&p, line, n, &l), 0);
        assert_int_equal(l.value_len, len);
        assert_ptr_equal(l.value, strstr(line, "\"value\": \"") + 10);
        assert_memory_equal(l.value, text, len);
    }
    ml_dumpparser_free(&p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dumpline_swar_numbers_of_every_length_match_strtoull),
        cmocka_unit_test(test_dumpline_swar_numbers_stop_at_any_following_byte),
        cmocka_unit_test(test_dumpline_swar_rejects_leading_zeros_at_every_length),
        cmocka_unit_test(test_dumpline_swar_strings_find_the_special_byte_at_every_position),
        cmocka_unit_test(test_dumpline_swar_plain_strings_point_into_the_line_at_every_length),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
