/* SPDX-License-Identifier: MIT
 *
 * test_monitord_proto.c -- the daemon's pure parts: option values
 * (monitord/util.c; durations and UTF-8 checks are common/ and tested in
 * tests/unit/test_duration.c and test_utf8.c), the header and trailer
 * lines of docs/protocol.md and the first line of a query
 * (monitord/proto.c), and the metrics' label
 * escaping, --metrics-listen addresses and HTTP requests
 * (monitord/prom.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ml-common.h"
#include "prom.h"
#include "proto.h"
#include "util.h"

#define S(lit) lit, sizeof(lit) - 1

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
    assert_false(m.hello);
    memset(&src, 0, sizeof(src));
    md_meta_source(&m, &src);
    assert_null(src.label);
    assert_string_equal(src.hostname, "h");
    assert_string_equal(src.python, "3.12.1");
    assert_true(src.start_time == 1764225561.25);
}

static void
test_proto_reads_a_hello_header(void **state)
{
    static const char h[] =
        "{\"meliae_stream\": 1, \"pid\": 7, \"label\": \"web\","
        " \"program\": \"/srv/app.py\", \"values\": \"none\","
        " \"request\": 0, \"hello\": true}\n";
    static const char no[] =
        "{\"meliae_stream\": 1, \"pid\": 7, \"values\": \"none\","
        " \"hello\": false}";
    struct md_meta m;
    char err[256];

    (void)state;
    assert_int_equal(md_header_parse(S(h), &m, err, sizeof(err)), MD_OK);
    assert_true(m.hello);
    assert_true(m.has_label && m.has_program);
    assert_string_equal(m.label, "web");
    assert_string_equal(m.program, "/srv/app.py");
    assert_int_equal(md_header_parse(S(no), &m, err, sizeof(err)), MD_OK);
    assert_false(m.hello);
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
        { "{\"meliae_stream\": 1, \"pid\": 1, \"values\": \"none\", "
          "\"hello\": 1}", MD_PROTO, "\"hello\" is not true or false" },
        { "{\"meliae_stream\": 1, \"pid\": 1, \"values\": \"none\", "
          "\"hello\": true, \"request\": 3}", MD_PROTO, "answers no "
          "request" },
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

/* ---- prom.c ---- */

static const char *
escaped(struct md_sbuf *b, const char *s, size_t n)
{
    md_sbuf_free(b);
    md_prom_label_value(b, s, n);
    assert_false(b->oom);
    return b->p != NULL ? b->p : "";
}

static void
test_prom_escapes_label_values(void **state)
{
    struct md_sbuf b = { 0 };

    (void)state;
    assert_string_equal(escaped(&b, S("plain")), "plain");
    assert_string_equal(escaped(&b, S("")), "");
    assert_string_equal(escaped(&b, S("a\\b\"c\nd")), "a\\\\b\\\"c\\nd");
    assert_string_equal(escaped(&b, S("\\\\\n\n\"")),
                        "\\\\\\\\\\n\\n\\\"");
    /* Tabs, braces and commas need nothing. */
    assert_string_equal(escaped(&b, S("x\t{a=\"1\",b}")),
                        "x\t{a=\\\"1\\\",b}");
    /* Well-formed UTF-8 is kept. */
    assert_string_equal(escaped(&b, S("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80")),
                        "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    /* Not UTF-8, or NUL: '?' per byte. */
    assert_string_equal(escaped(&b, S("a\xff" "b")), "a?b");
    assert_string_equal(escaped(&b, S("\xc0\x80")), "??");           /* overlong */
    assert_string_equal(escaped(&b, S("\xed\xa0\x80")), "???");      /* surrogate */
    assert_string_equal(escaped(&b, S("\xe2\x82")), "??");           /* cut */
    assert_string_equal(escaped(&b, S("\xf4\x90\x80\x80")), "????");  /* > U+10FFFF */
    assert_string_equal(escaped(&b, "a\0b", 3), "a?b");
    md_sbuf_free(&b);

    md_sbuf_printf(&b, "%s=%d", "x", 42);
    md_sbuf_add(&b, "yz", 1);
    assert_string_equal(b.p, "x=42y");
    assert_int_equal(b.len, 5);
    md_sbuf_free(&b);
}

static void
test_prom_parses_listen_addresses(void **state)
{
    static const struct {
        const char *s;
        int family, port, loopback;
    } ok[] = {
        { "127.0.0.1:9464", AF_INET, 9464, 1 },
        { "127.8.9.10:0", AF_INET, 0, 1 },
        { "0.0.0.0:80", AF_INET, 80, 0 },
        { "192.168.1.2:65535", AF_INET, 65535, 0 },
        { "[::1]:9464", AF_INET6, 9464, 1 },
        { "[::]:1", AF_INET6, 1, 0 },
        { "[::ffff:127.0.0.1]:2", AF_INET6, 2, 1 },
        { "[::ffff:10.0.0.1]:2", AF_INET6, 2, 0 },
        { "[fe80::1]:3", AF_INET6, 3, 0 },
    };
    static const char *const bad[] = {
        "", "127.0.0.1", "127.0.0.1:", ":9464", "localhost:9464",
        "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:9x", "::1:9464",
        "[::1]", "[::1:9464", "[::1]9464", "[127.0.0.1]:1", "[]:1",
        "1.2.3:4", "[::1]:",
    };
    struct sockaddr_storage ss;
    char err[200], buf[80];
    int lo;

    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_int_equal(md_prom_parse_listen(ok[i].s, &ss, &lo, err,
                                              sizeof(err)), 0);
        assert_int_equal(ss.ss_family, ok[i].family);
        assert_int_equal(lo, ok[i].loopback);
        if (ok[i].family == AF_INET)
            assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port),
                             ok[i].port);
        else
            assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port),
                             ok[i].port);
    }
    md_prom_parse_listen("[::1]:9464", &ss, &lo, err, sizeof(err));
    assert_string_equal(md_prom_addr_str((struct sockaddr *)&ss, buf,
                                         sizeof(buf)), "[::1]:9464");
    md_prom_parse_listen("127.0.0.1:80", &ss, &lo, err, sizeof(err));
    assert_string_equal(md_prom_addr_str((struct sockaddr *)&ss, buf,
                                         sizeof(buf)), "127.0.0.1:80");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (md_prom_parse_listen(bad[i], &ss, &lo, err, sizeof(err)) != -1)
            fail_msg("accepted '%s'", bad[i]);
        assert_true(err[0] != '\0');
    }
}

static int
route(const char *s, int *head)
{
    return md_http_route(s, strlen(s), 8192, head);
}

static void
test_prom_routes_http_requests(void **state)
{
    char big[8192];
    int head;

    (void)state;
    assert_int_equal(route("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &head),
                     200);
    assert_int_equal(head, 0);
    assert_int_equal(route("HEAD /metrics HTTP/1.0\r\n\r\n", &head), 200);
    assert_int_equal(head, 1);
    assert_int_equal(route("GET /metrics?name[]=x HTTP/1.1\r\n\r\n", &head),
                     200);
    assert_int_equal(route("GET /metrics HTTP/1.0\n\n", &head), 200);
    /* Not complete yet. */
    assert_int_equal(route("", &head), 0);
    assert_int_equal(route("GET /metrics HTTP/1.1\r\n", &head), 0);
    assert_int_equal(route("GET /metrics HTTP/1.1\r\nHost: x\r\n\r", &head),
                     0);
    assert_int_equal(route("GET /met", &head), 0);
    /* Paths, methods, versions. */
    assert_int_equal(route("GET / HTTP/1.1\r\n\r\n", &head), 404);
    assert_int_equal(route("GET /metricsz HTTP/1.1\r\n\r\n", &head), 404);
    assert_int_equal(route("GET /metrics/ HTTP/1.1\r\n\r\n", &head), 404);
    assert_int_equal(route("GET http://h/metrics HTTP/1.1\r\n\r\n", &head),
                     404);
    assert_int_equal(route("POST /metrics HTTP/1.1\r\n\r\n", &head), 405);
    assert_int_equal(route("get /metrics HTTP/1.1\r\n\r\n", &head), 405);
    assert_int_equal(route("OPTIONS * HTTP/1.1\r\n\r\n", &head), 405);
    assert_int_equal(route("GET /metrics HTTP/2.0\r\n\r\n", &head), 505);
    assert_int_equal(route("GET /metrics HTTP/1.2\r\n\r\n", &head), 505);
    assert_int_equal(route("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", &head), 505);
    /* Not a request line. */
    assert_int_equal(route("\r\n\r\n", &head), 400);
    assert_int_equal(route("GET\r\n\r\n", &head), 400);
    assert_int_equal(route("GET /metrics\r\n\r\n", &head), 400);
    assert_int_equal(route(" /metrics HTTP/1.1\r\n\r\n", &head), 400);
    assert_int_equal(route("GET  /metrics HTTP/1.1\r\n\r\n", &head), 400);
    assert_int_equal(route("GET /metrics HTTP/1.1 x\r\n\r\n", &head), 400);
    assert_int_equal(route("GET /metrics FTP/1.1\r\n\r\n", &head), 400);
    assert_int_equal(route("G\x01T /metrics HTTP/1.1\r\n\r\n", &head), 400);
    /* No end of head within the limit. */
    memset(big, 'A', sizeof(big));
    assert_int_equal(md_http_route(big, sizeof(big), sizeof(big), &head),
                     431);
    assert_int_equal(md_http_route(big, sizeof(big) - 1, sizeof(big), &head),
                     0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_util_parses_sizes),
        cmocka_unit_test(test_util_json_strings_are_ascii_and_escaped),
        cmocka_unit_test(test_proto_accepts_a_full_header),
        cmocka_unit_test(test_proto_reads_a_hello_header),
        cmocka_unit_test(test_proto_refuses_bad_headers_with_their_codes),
        cmocka_unit_test(test_proto_refuses_long_labels_as_limit),
        cmocka_unit_test(test_proto_parses_trailers),
        cmocka_unit_test(test_proto_error_lines_are_json),
        cmocka_unit_test(test_proto_tells_queries_from_headers),
        cmocka_unit_test(test_proto_refuses_bad_queries_as_usage),
        cmocka_unit_test(test_proto_maps_query_errors_to_codes),
        cmocka_unit_test(test_prom_escapes_label_values),
        cmocka_unit_test(test_prom_parses_listen_addresses),
        cmocka_unit_test(test_prom_routes_http_requests),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
