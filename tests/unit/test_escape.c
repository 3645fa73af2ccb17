/* SPDX-License-Identifier: MIT
 *
 * test_escape.c -- cmocka tests for cli/escape.c: what of a snapshot's
 * strings reaches a terminal.  C0, DEL, C1 (in UTF-8 or as a stray byte),
 * line separators and bidi overrides come out as escapes; other
 * well-formed UTF-8 as it is; ill-formed bytes and encoded surrogates
 * byte by byte; and every string of an answer document, however deep.
 */
#define _GNU_SOURCE 1

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "cli.h"

#define S(lit) lit, sizeof(lit) - 1

/* s escaped, or "=" when cli_escape says there is nothing to escape. */
static char *
esc(const char *s, size_t n)
{
    char *out = NULL;
    int rc = cli_escape(s, n, &out);

    assert_true(rc == 0 || rc == 1);
    if (rc == 0) {
        assert_null(out);
        return strdup("=");
    }
    assert_non_null(out);
    return out;
}

static void
check(const char *s, size_t n, const char *want)
{
    char *got = esc(s, n);

    assert_string_equal(got, want);
    free(got);
}

static void
test_clean_text_is_left_alone(void **state)
{
    (void)state;
    check(S(""), "=");
    check(S("breezy.bzr._static_tuple_c.StaticTuple"), "=");
    check(S("caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x90\x8d <script>\\"), "=");
}

static void
test_terminal_controls_are_escaped(void **state)
{
    (void)state;
    /* the name: a title, a clear, a carriage return */
    check(S("<script>\x1b]0;PWNED\x07\x1b[2J\r"),
          "<script>\\x1b]0;PWNED\\x07\\x1b[2J\\x0d");
    check(S("a\tb\nc\x7f"), "a\\x09b\\x0ac\\x7f");
    /* C1 in UTF-8 (U+009B, 8-bit CSI) and as a stray byte */
    check(S("x\xc2\x9b" "31m"), "x\\x9b31m");
    check(S("x\x9b" "31m"), "x\\x9b31m");
    /* U+0085 NEL, U+00A0 is printable */
    check(S("\xc2\x85\xc2\xa0"), "\\x85\xc2\xa0");
}

static void
test_separators_and_bidi_overrides_are_escaped(void **state)
{
    (void)state;
    check(S("\xe2\x80\xa8\xe2\x80\xa9"), "\\u2028\\u2029");
    check(S("ok\xe2\x80\xaegnp.exe"), "ok\\u202egnp.exe");
    check(S("\xe2\x81\xa6x\xe2\x81\xa9"), "\\u2066x\\u2069");
    /* their neighbours are text */
    check(S("\xe2\x80\xa7\xe2\x80\xaf\xe2\x81\xa5\xe2\x81\xaa"), "=");
}

static void
test_ill_formed_bytes_are_escaped_one_by_one(void **state)
{
    (void)state;
    check(S("a\xff" "b"), "a\\xffb");
    /* an encoded surrogate (a lone \ud800 of a dump) */
    check(S("\xed\xa0\x80"), "\\xed\\xa0\\x80");
    /* a sequence cut short by the end of the string */
    check(S("ab\xe2\x80"), "ab\\xe2\\x80");
    /* overlong '/' */
    check(S("\xc0\xaf"), "\\xc0\\xaf");
}

static void
test_worst_case_fits(void **state)
{
    char in[256], *out = NULL;

    (void)state;
    memset(in, 0x01, sizeof in);
    assert_int_equal(cli_escape(in, sizeof in, &out), 1);
    assert_int_equal(strlen(out), 4 * sizeof in);
    free(out);
    for (size_t i = 0; i + 3 <= sizeof in; i += 3)
        memcpy(in + i, "\xe2\x80\xae", 3);
    assert_int_equal(cli_escape(in, 255, &out), 1);
    assert_int_equal(strlen(out), 6 * 85);
    free(out);
}

static void
test_every_string_of_a_document(void **state)
{
    cJSON *doc = cJSON_Parse("{\"command\": \"summary\", \"types\": "
                             "[{\"type\": \"E\\u001b[2J\", \"count\": 3}, "
                             "{\"type\": \"ok\"}], \"snapshot\": {\"label\": "
                             "\"l\\u0007\", \"program\": null}}");
    cJSON *t;

    (void)state;
    assert_non_null(doc);
    assert_int_equal(cli_escape_doc(doc), 0);
    t = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "types"), 0);
    assert_string_equal(cJSON_GetObjectItem(t, "type")->valuestring,
                        "E\\x1b[2J");
    assert_int_equal(cJSON_GetObjectItem(t, "count")->valueint, 3);
    t = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "types"), 1);
    assert_string_equal(cJSON_GetObjectItem(t, "type")->valuestring, "ok");
    t = cJSON_GetObjectItem(doc, "snapshot");
    assert_string_equal(cJSON_GetObjectItem(t, "label")->valuestring,
                        "l\\x07");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(t, "program")));
    cJSON_Delete(doc);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_text_is_left_alone),
        cmocka_unit_test(test_terminal_controls_are_escaped),
        cmocka_unit_test(test_separators_and_bidi_overrides_are_escaped),
        cmocka_unit_test(test_ill_formed_bytes_are_escaped_one_by_one),
        cmocka_unit_test(test_worst_case_fits),
        cmocka_unit_test(test_every_string_of_a_document),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
