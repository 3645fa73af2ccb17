/* SPDX-License-Identifier: MIT
 *
 * test_monitord_proto.c -- the daemon's pure parts: option values
 * (monitord/util.c), the header and trailer lines of docs/protocol.md and
 * the first line of a query (monitord/proto.c).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ml-common.h"
#include "proto.h"
#include "util.h"

#define S(lit) lit, sizeof(lit) - 1

static void
test_util_parses_durations(void **state)
{
    uint64_t ns;

    (void)state;
    assert_int_equal(md_parse_duration("30s", &ns), 0);
    assert_true(ns == 30000000000ull);
    assert_int_equal(md_parse_duration("15m", &ns), 0);
    assert_true(ns == 900000000000ull);
    assert_int_equal(md_parse_duration("7d", &ns), 0);
    assert_true(ns == 7ull * 86400 * 1000000000ull);
    assert_int_equal(md_parse_duration("90", &ns), 0);
    assert_true(ns == 90000000000ull);
    assert_int_equal(md_parse_duration("0s", &ns), -1);
    assert_int_equal(md_parse_duration("1y", &ns), -1);
    assert_int_equal(md_parse_duration("-1s", &ns), -1);
    assert_int_equal(md_parse_duration("1h2m", &ns), -1);
    assert_int_equal(md_parse_duration("", &ns), -1);
    assert_int_equal(md_parse_duration("300000d", &ns), -1);  /* > 2^64 ns */
}

static void
test_util_parses_sizes(void **state)
{
    uint64_t b;

    (void)state;
    assert_int_equal(md_parse_size("512M", &b), 0);
    assert_true(b == 512ull << 20);
    assert_int_equal(md_parse_size("64G", &b), 0);
    assert_true(b == 64ull << 30);
    assert_int_equal(md_parse_size("2GiB", &b), 0);
    assert_true(b == 2ull << 30);
    assert_int_equal(md_parse_size("4096", &b), 0);
    assert_true(b == 4096);
    assert_int_equal(md_parse_size("1k", &b), 0);
    assert_true(b == 1024);
    assert_int_equal(md_parse_size("0", &b), -1);
    assert_int_equal(md_parse_size("12Q", &b), -1);
    assert_int_equal(md_parse_size("1MB2", &b), -1);
    assert_int_equal(md_parse_size("99999999999E", &b), -1);
}

static void
test_util_json_strings_are_ascii_and_escaped(void **state)
{
    char buf[64];
    size_t off = 0;

    (void)state;
    md_json_str(buf, sizeof(buf), &off, "a\"b\\c\n\xff");
    assert_string_equal(buf, "\"a\\\"b\\\\c\\u000a\\u00ff\"");
    assert_int_equal(off, strlen(buf));

    off = 0;                    /* cut short, still closed and terminated */
    md_json_str(buf, 8, &off, "abcdefghijkl");
    assert_string_equal(buf, "\"abcde\"");
}

static void
test_util_checks_utf8(void **state)
{
    (void)state;
    assert_true(md_utf8_ok(S("plain")));
    assert_true(md_utf8_ok(S("\xc3\xa9t\xc3\xa9")));
    assert_false(md_utf8_ok(S("\xff")));
    assert_false(md_utf8_ok(S("\xc0\xaf")));            /* overlong */
    assert_false(md_utf8_ok(S("\xe2\x82")));            /* cut */
    assert_false(md_utf8_ok("a\0b", 3));
}

static void
test_proto_accepts_a_full_header(void **state)
{
    static const char h[] =
        "{\"meliae_stream\": 1, \"pid\": 4242, \"start_time\": 1764225561.25,"
        " \"hostname\": \"h\", \"program\": \"p\", \"python\": \"3.12.1\","
        " \"label\": null, \"values\": \"truncated\", \"mode\": \"file\","
        " \"request\": 5, \"time\": 1.5, \"future\": [1, {\"x\": 2}]}\n";
    struct st_source src;
    struct md_meta m;
    char err[256];

    (void)state;
    assert_int_equal(md_header_parse(S(h), &m, err, sizeof(err)), MD_OK);
    assert_true(m.pid == 4242);
    assert_true(m.request == 5);
    assert_string_equal(m.values, "truncated");
    assert_string_equal(m.mode, "file");
    assert_false(m.has_label);
    memset(&src, 0, sizeof(src));
    md_meta_source(&m, &src);
    assert_null(src.label);
    assert_string_equal(src.hostname, "h");
    assert_string_equal(src.python, "3.12.1");
    assert_true(src.start_time == 1764225561.25);
}

static void
test_proto_refuses_bad_headers_with_their_codes(void **state)
{
    static const struct {
        const char *line;
        enum md_code code;
        const char *says;
    } cases[] = {
        { "{\"meliae_stream\": 2, \"pid\": 1, \"values\": \"none\"}",
          MD_VERSION, "version 2 is not supported; this daemon speaks "
          "version 1" },
        { "{\"meliae_stream\": 1e300, \"pid\": 1}", MD_VERSION, "speaks" },
        { "{\"pid\": 1, \"values\": \"none\"}", MD_PROTO, "meliae_stream" },
        { "{\"meliae_stream\": 1, \"values\": \"none\"}", MD_PROTO, "pid" },
        { "{\"meliae_stream\": 1, \"pid\": 1}", MD_PROTO, "values" },
        { "{\"meliae_stream\": 1, \"pid\": 1, \"values\": \"all\"}", MD_PROTO,
          "values" },
        { "{\"meliae_stream\": 1, \"pid\": 1, \"values\": \"none\", "
          "\"label\": 3}", MD_PROTO, "label" },
        { "{\"meliae_stream\": 1, \"pid\": 1, \"values\": \"none\"} {}",
          MD_PROTO, "text after" },
        { "[1]", MD_PROTO, "not a JSON object" },
        { "{\"meliae_stream\": 1, ", MD_PROTO, "not valid JSON" },
    };
    char err[256];
    struct md_meta m;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum md_code c = md_header_parse(cases[i].line,
                                         strlen(cases[i].line), &m, err,
                                         sizeof(err));

        if (c != cases[i].code || strstr(err, cases[i].says) == NULL)
            fail_msg("case %zu: code %d, err '%s'", i, c, err);
    }
}

static void
test_proto_refuses_long_labels_as_limit(void **state)
{
    char line[600], err[256];
    struct md_meta m;

    (void)state;
    snprintf(line, sizeof(line), "{\"meliae_stream\": 1, \"pid\": 1, "
             "\"values\": \"none\", \"label\": \"%0257d\"}", 0);
    assert_int_equal(md_header_parse(line, strlen(line), &m, err,
                                     sizeof(err)), MD_LIMIT);
    snprintf(line, sizeof(line), "{\"meliae_stream\": 1, \"pid\": 1, "
             "\"values\": \"none\", \"label\": \"%0256d\"}", 0);
    assert_int_equal(md_header_parse(line, strlen(line), &m, err,
                                     sizeof(err)), MD_OK);
    assert_int_equal(strlen(m.label), 256);
}

static void
test_proto_parses_trailers(void **state)
{
    struct md_trailer t;
    char err[256];

    (void)state;
    assert_int_equal(md_trailer_parse(S("{\"end\": \"complete\", \"objects\":"
                                        " 182331, \"bytes\": 23068672}\n"),
                                      &t, err, sizeof(err)), MD_OK);
    assert_false(t.aborted);
    assert_true(t.objects == 182331 && t.bytes == 23068672);

    assert_int_equal(md_trailer_parse(S("{\"end\": \"aborted\", \"reason\": "
                                        "\"out of memory\"}"),
                                      &t, err, sizeof(err)), MD_OK);
    assert_true(t.aborted);
    assert_string_equal(t.reason, "out of memory");

    assert_int_equal(md_trailer_parse(S("{\"end\": \"complete\", \"objects\":"
                                        " 1}"), &t, err, sizeof(err)),
                     MD_PROTO);
    assert_int_equal(md_trailer_parse(S("{\"end\": \"complete\", \"objects\":"
                                        " 1.5, \"bytes\": 1}"), &t, err,
                                      sizeof(err)), MD_PROTO);
    assert_int_equal(md_trailer_parse(S("{\"end\": \"complete\", \"objects\":"
                                        " 1e300, \"bytes\": 1}"), &t, err,
                                      sizeof(err)), MD_PROTO);
    assert_int_equal(md_trailer_parse(S("{\"objects\": 1}"), &t, err,
                                      sizeof(err)), MD_PROTO);
    assert_non_null(strstr(err, "not a trailer"));
}

static void
test_proto_error_lines_are_json(void **state)
{
    char buf[128];
    size_t n;

    (void)state;
    n = md_error_line(buf, sizeof(buf), "bad \"x\"\n", MD_LIMIT);
    assert_string_equal(buf, "{\"error\": \"bad \\\"x\\\"\\u000a\", "
                        "\"code\": \"limit\"}\n");
    assert_int_equal(n, strlen(buf));
    assert_true(md_code_closes(MD_PROTO));
    assert_false(md_code_closes(MD_ABORTED));
    assert_false(md_code_closes(MD_STORE));
}

static void
test_proto_tells_queries_from_headers(void **state)
{
    enum md_code code;
    char err[256];
    cJSON *req;

    (void)state;
    /* A stream header, and lines that are no JSON object: not queries. */
    assert_int_equal(md_query_parse(S("{\"meliae_stream\": 1, \"pid\": 1}\n"),
                                    &req, &code, err, sizeof(err)), 0);
    assert_null(req);
    assert_int_equal(md_query_parse(S("not json\n"), &req, &code, err,
                                    sizeof(err)), 0);
    assert_int_equal(md_query_parse(S("[1]\n"), &req, &code, err,
                                    sizeof(err)), 0);

    assert_int_equal(md_query_parse(S("{\"meliae_query\": 1, \"request\": "
                                      "{\"cmd\": \"snapshots\"}}\n"),
                                    &req, &code, err, sizeof(err)), 1);
    assert_int_equal(code, MD_OK);
    assert_non_null(req);
    assert_string_equal(cJSON_GetStringValue(
        cJSON_GetObjectItemCaseSensitive(req, "cmd")), "snapshots");
    cJSON_Delete(req);
}

static void
test_proto_refuses_bad_queries_as_usage(void **state)
{
    enum md_code code;
    char err[256];
    cJSON *req;

    (void)state;
    assert_int_equal(md_query_parse(S("{\"meliae_query\": 7, \"request\": "
                                      "{}}"), &req, &code, err, sizeof(err)), 1);
    assert_int_equal(code, MD_USAGE);
    assert_null(req);
    assert_non_null(strstr(err, "version 7"));
    assert_non_null(strstr(err, "version 1"));
    assert_int_equal(md_query_parse(S("{\"meliae_query\": \"1\", "
                                      "\"request\": {}}"), &req, &code, err,
                                    sizeof(err)), 1);
    assert_int_equal(code, MD_USAGE);
    assert_int_equal(md_query_parse(S("{\"meliae_query\": 1, \"request\": "
                                      "[]}"), &req, &code, err, sizeof(err)), 1);
    assert_int_equal(code, MD_USAGE);
    assert_non_null(strstr(err, "request"));
    assert_int_equal(md_query_parse(S("{\"meliae_query\": 1}"), &req, &code,
                                    err, sizeof(err)), 1);
    assert_int_equal(code, MD_USAGE);
}

static void
test_proto_maps_query_errors_to_codes(void **state)
{
    char buf[128];

    (void)state;
    assert_int_equal(md_query_code(ML_ENOTFOUND), MD_NOTFOUND);
    assert_int_equal(md_query_code(-ENODATA), MD_NOTFOUND);
    assert_int_equal(md_query_code(-EINVAL), MD_USAGE);
    assert_int_equal(md_query_code(-EIO), MD_ERROR);
    assert_int_equal(md_query_code(ML_ECORRUPT), MD_ERROR);
    md_error_line(buf, sizeof(buf), "no such snapshot", MD_NOTFOUND);
    assert_string_equal(buf, "{\"error\": \"no such snapshot\", "
                        "\"code\": \"notfound\"}\n");
    assert_true(md_code_closes(MD_NOTFOUND));
    assert_true(md_code_closes(MD_USAGE));
    assert_true(md_code_closes(MD_ERROR));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_util_parses_durations),
        cmocka_unit_test(test_util_parses_sizes),
        cmocka_unit_test(test_util_json_strings_are_ascii_and_escaped),
        cmocka_unit_test(test_util_checks_utf8),
        cmocka_unit_test(test_proto_accepts_a_full_header),
        cmocka_unit_test(test_proto_refuses_bad_headers_with_their_codes),
        cmocka_unit_test(test_proto_refuses_long_labels_as_limit),
        cmocka_unit_test(test_proto_parses_trailers),
        cmocka_unit_test(test_proto_error_lines_are_json),
        cmocka_unit_test(test_proto_tells_queries_from_headers),
        cmocka_unit_test(test_proto_refuses_bad_queries_as_usage),
        cmocka_unit_test(test_proto_maps_query_errors_to_codes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
