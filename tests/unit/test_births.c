/* SPDX-License-Identifier: MIT
 *
 * test_births.c -- birth sites in the store (store/births.c): table lines
 * and traces through ingest and commit, read back by oid; a repeated line
 * dropped by an import moves the traces with the oids; untraced snapshots
 * have none; deletion removes them; bad ids are refused.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ml-common.h"
#include "store.h"
#include "test_store_fx.h"

static int
setup(void **state)
{
    *state = fx_open("births");
    return 0;
}

static int
teardown(void **state)
{
    fx_close(*state);
    return 0;
}

static const struct st_source src = {
    .pid = 4242, .start_time = 1000.5, .hostname = "h", .program = "app.py",
    .python = "3.11.2", .label = "web", .values = "none", .mode = "all",
    .trusted = 1, .uid = 1000, .gid = 1000, .tpid = 4242, .tstart_time = 1000.5,
};

/* Feeds one line to the ingest as the daemon does. */
static int
feed(struct st_ingest *in, struct ml_dumpparser *p, const char *text)
{
    struct ml_dumpline l;
    int rc = ml_dumpline_parse(p, text, strlen(text), &l);

    if (rc != 0)
        return rc;
    if (l.kind == ML_LINE_OTHER)
        return st_ingest_traceback(in, &l, text, strlen(text));
    return st_ingest_object(in, &l);
}

/* Object i at address 0x1000 + 16 i (repeat: the address of i - 1), traced
 * to i % 3 when i % 4 != 0. */
static void
object_line(char *buf, size_t n, uint64_t i, int repeat)
{
    uint64_t addr = 0x1000 + 16 * (repeat ? i - 1 : i);

    if (i % 4 != 0)
        snprintf(buf, n, "{\"address\": %llu, \"type\": \"list\", \"size\": 56, "
                 "\"trace\": %llu, \"refs\": []}", (unsigned long long)addr,
                 (unsigned long long)(i % 3));
    else
        snprintf(buf, n, "{\"address\": %llu, \"type\": \"list\", \"size\": 56, "
                 "\"refs\": []}", (unsigned long long)addr);
}

static const char *const table[] = {
    "{\"traceback\": 0, \"frames\": [[\"a.py\", 1, \"f\"]]}",
    "{\"traceback\": 1, \"frames\": [[\"b.py\", 2, null], [\"a.py\", 9, \"<module>\"]]}",
    "{\"traceback\": 2, \"frames\": [[null, 0, null]]}",
};

struct seen {
    uint32_t *trace;            /* by oid; UINT32_MAX: no birth site */
    size_t n;
};

static int
on_trace(void *ctx, uint32_t oid, uint32_t trace)
{
    struct seen *s = ctx;

    assert_true(oid < s->n);
    assert_int_equal(s->trace[oid], UINT32_MAX);    /* each oid once */
    s->trace[oid] = trace;
    return 0;
}

/* Ingests n objects (with a repeated line after object `dup`, if >= 0),
 * commits, and checks what is read back. */
static void
round_trip(struct fx *f, uint64_t n, int64_t dup)
{
    struct st_ingest *in;
    struct ml_dumpparser p;
    struct st_read *r;
    struct seen s = { calloc(n + 1, sizeof(uint32_t)), (size_t)n };
    uint64_t id, nsent = 0;
    const char *json;
    size_t len;
    char buf[200];

    ml_dumpparser_init(&p);
    assert_int_equal(st_ingest_new(&in, st_tmpdir(f->s), 0), 0);
    if (dup >= 0)
        st_ingest_keep_first(in);
    for (size_t k = 0; k < 3; k++)
        assert_int_equal(feed(in, &p, table[k]), 0);
    for (uint64_t i = 0; i < n; i++) {
        object_line(buf, sizeof buf, i, 0);
        assert_int_equal(feed(in, &p, buf), 0);
        nsent++;
        if ((int64_t)i == dup) {
            object_line(buf, sizeof buf, i + 1, 1);     /* i's address again */
            assert_int_equal(feed(in, &p, buf), 0);
            nsent++;
        }
    }
    assert_int_equal(st_ingest_end(in, nsent, 56 * nsent), 0);
    assert_int_equal(st_commit(f->s, in, &src, &id), 0);
    st_ingest_free(in);
    ml_dumpparser_free(&p);

    assert_int_equal(st_read_begin(f->s, &r), 0);
    assert_int_equal(st_births_has(r, id), 1);
    assert_int_equal(st_traceback_get(r, id, 1, &json, &len), 0);
    assert_int_equal(len, strlen("[[\"b.py\",2,null],[\"a.py\",9,\"<module>\"]]"));
    assert_memory_equal(json, "[[\"b.py\",2,null],[\"a.py\",9,\"<module>\"]]", len);
    assert_int_equal(st_traceback_get(r, id, 3, &json, &len), ML_ENOTFOUND);
    memset(s.trace, 0xff, (n + 1) * sizeof(uint32_t));
    assert_int_equal(st_trace_each(r, id, on_trace, &s), 0);
    /* oid k is object k (the repeat dropped, nothing moves before it) */
    for (uint64_t k = 0; k < n; k++)
        assert_int_equal(s.trace[k], k % 4 ? (uint32_t)(k % 3) : UINT32_MAX);
    st_read_end(r);

    /* deleting the snapshot deletes its birth sites */
    assert_int_equal(st_delete(f->s, id), 0);
    assert_int_equal(st_read_begin(f->s, &r), 0);
    assert_int_equal(st_births_has(r, id), 0);
    memset(s.trace, 0xff, (n + 1) * sizeof(uint32_t));
    assert_int_equal(st_trace_each(r, id, on_trace, &s), 0);
    for (uint64_t k = 0; k < n; k++)
        assert_int_equal(s.trace[k], UINT32_MAX);
    st_read_end(r);
    free(s.trace);
}

static void
test_births_round_trip_over_many_blocks(void **state)
{
    round_trip(*state, 5000, -1);       /* 1024 per block: five of them */
}

static void
test_births_follow_the_oids_when_a_repeated_line_is_dropped(void **state)
{
    round_trip(*state, 3000, 1500);
}

static void
test_births_untraced_snapshot_has_none(void **state)
{
    struct fx *f = *state;
    struct st_ingest *in;
    struct ml_dumpparser p;
    struct st_read *r;
    uint64_t id;
    char buf[200];

    ml_dumpparser_init(&p);
    assert_int_equal(st_ingest_new(&in, st_tmpdir(f->s), 0), 0);
    for (uint64_t i = 0; i < 10; i++) {
        snprintf(buf, sizeof buf, "{\"address\": %llu, \"type\": \"t\", "
                 "\"size\": 1, \"refs\": []}", (unsigned long long)(i + 1));
        assert_int_equal(feed(in, &p, buf), 0);
    }
    assert_int_equal(st_ingest_end(in, 10, 10), 0);
    assert_int_equal(st_commit(f->s, in, &src, &id), 0);
    st_ingest_free(in);
    ml_dumpparser_free(&p);
    assert_int_equal(st_read_begin(f->s, &r), 0);
    assert_int_equal(st_births_has(r, id), 0);
    st_read_end(r);
}

static void
test_births_bad_ids_are_refused(void **state)
{
    struct fx *f = *state;
    struct ml_dumpparser p;
    static const struct { const char *a, *b; const char *why; } cases[] = {
        { "{\"traceback\": 1, \"frames\": []}", NULL, "where 0 was due" },
        { "{\"address\": 1, \"type\": \"t\", \"size\": 1, \"trace\": 0}", NULL,
          "no traceback line defined" },
        { "{\"traceback\": 0, \"frames\": [[\"a\", 1, \"f\"]]}",
          "{\"address\": 1, \"type\": \"t\", \"size\": 1, \"trace\": 1}",
          "no traceback line defined" },
        { "{\"traceback\": 0, \"frames\": {}}", NULL, "not a list" },
        { "{\"traceback\": 0, \"frames\": [[\"a\", 1]]}", NULL,
          "not [file, line, function]" },
    };

    ml_dumpparser_init(&p);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct st_ingest *in;
        int rc;

        assert_int_equal(st_ingest_new(&in, st_tmpdir(f->s), 0), 0);
        rc = feed(in, &p, cases[i].a);
        if (rc == 0 && cases[i].b != NULL)
            rc = feed(in, &p, cases[i].b);
        assert_int_equal(rc, ML_EPROTO);
        assert_non_null(strstr(st_ingest_error(in), cases[i].why));
        st_ingest_free(in);
    }
    ml_dumpparser_free(&p);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_births_round_trip_over_many_blocks),
        T(test_births_follow_the_oids_when_a_repeated_line_is_dropped),
        T(test_births_untraced_snapshot_has_none),
        T(test_births_bad_ids_are_refused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
