/* SPDX-License-Identifier: MIT
 *
 * test_graph_trace.c -- the graph's per-object birth sites (common/graph.c,
 * ml_graph_trace): no array for a dump without "trace", the ids kept
 * through growth, ml_graph_append of halves with and without them, and
 * the dropping of repeated addresses.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "ml-common.h"

/* Adds object address with trace (-1: none). */
static void
add(struct ml_graph *g, struct ml_dumpparser *p, uint64_t address,
    long long trace)
{
    char line[200];
    struct ml_dumpline l;

    if (trace < 0)
        snprintf(line, sizeof line, "{\"address\": %llu, \"type\": \"bytes\", "
                 "\"size\": 40, \"refs\": []}", (unsigned long long)address);
    else
        snprintf(line, sizeof line, "{\"address\": %llu, \"type\": \"bytes\", "
                 "\"size\": 40, \"trace\": %lld, \"refs\": []}",
                 (unsigned long long)address, trace);
    assert_int_equal(ml_dumpline_parse(p, line, strlen(line), &l), 0);
    assert_int_equal(ml_graph_add(g, &l), 0);
}

/* The trace object at address has (after finish). */
static uint32_t
trace_at(const struct ml_graph *g, uint64_t address)
{
    uint32_t i = ml_graph_find(g, address);

    assert_int_not_equal(i, ML_GRAPH_NONE);
    return ml_graph_trace(g, i);
}

static void
test_a_graph_without_traces_has_no_array(void **state)
{
    struct ml_graph g;
    struct ml_dumpparser p;

    (void)state;
    ml_graph_init(&g);
    ml_dumpparser_init(&p);
    for (uint64_t a = 1; a <= 3000; a++)
        add(&g, &p, a * 16, -1);
    assert_int_equal(ml_graph_finish(&g), 0);
    assert_null(g.trace);
    assert_int_equal(ml_graph_trace(&g, 5), ML_GRAPH_NONE);
    ml_graph_free(&g);
    ml_dumpparser_free(&p);
}

static void
test_traces_start_late_and_survive_growth(void **state)
{
    struct ml_graph g;
    struct ml_dumpparser p;

    (void)state;
    ml_graph_init(&g);
    ml_dumpparser_init(&p);
    /* the first traced line at 1500, past the first growth; every
     * third one untraced after it */
    for (uint64_t a = 0; a < 5000; a++)
        add(&g, &p, 0x7f0000000000 + a * 16,
            a < 1500 || a % 3 == 0 ? -1 : (long long)(a % 97));
    add(&g, &p, 0x10, 4294967295ll);            /* no room in 32 bits */
    add(&g, &p, 0x20, 4294967294ll);
    assert_int_equal(ml_graph_finish(&g), 0);
    assert_non_null(g.trace);
    for (uint64_t a = 0; a < 5000; a++)
        assert_int_equal(trace_at(&g, 0x7f0000000000 + a * 16),
                         a < 1500 || a % 3 == 0 ? ML_GRAPH_NONE : a % 97);
    assert_int_equal(trace_at(&g, 0x10), ML_GRAPH_NONE);
    assert_int_equal(trace_at(&g, 0x20), 4294967294u);
    ml_graph_free(&g);
    ml_dumpparser_free(&p);
}

/* Two halves, each traced or not: the joined graph keeps every id. */
static void
append_case(int first_traced, int second_traced)
{
    struct ml_graph g, o;
    struct ml_dumpparser p;

    ml_graph_init(&g);
    ml_graph_init(&o);
    ml_dumpparser_init(&p);
    for (uint64_t a = 0; a < 1500; a++)
        add(&g, &p, 0x1000 + a * 16, first_traced && a % 2 ? (long long)a : -1);
    for (uint64_t a = 0; a < 1500; a++)
        add(&o, &p, 0x900000 + a * 16,
            second_traced && a % 5 ? (long long)(a + 7) : -1);
    assert_int_equal(ml_graph_append(&g, &o), 0);
    ml_graph_free(&o);
    assert_int_equal(ml_graph_finish(&g), 0);
    assert_true((g.trace != NULL) == (first_traced || second_traced));
    for (uint64_t a = 0; a < 1500; a++) {
        assert_int_equal(trace_at(&g, 0x1000 + a * 16),
                         first_traced && a % 2 ? a : ML_GRAPH_NONE);
        assert_int_equal(trace_at(&g, 0x900000 + a * 16),
                         second_traced && a % 5 ? a + 7 : ML_GRAPH_NONE);
    }
    ml_graph_free(&g);
    ml_dumpparser_free(&p);
}

static void
test_append_keeps_the_traces_of_either_half(void **state)
{
    (void)state;
    append_case(0, 0);
    append_case(1, 0);
    append_case(0, 1);
    append_case(1, 1);
}

static void
test_a_repeated_address_keeps_its_first_lines_trace(void **state)
{
    struct ml_graph g;
    struct ml_dumpparser p;

    (void)state;
    ml_graph_init(&g);
    ml_dumpparser_init(&p);
    add(&g, &p, 0x100, 1);
    add(&g, &p, 0x200, -1);
    add(&g, &p, 0x100, 2);          /* dropped */
    add(&g, &p, 0x300, 3);          /* moves down over it */
    add(&g, &p, 0x200, 9);          /* dropped: the first had none */
    add(&g, &p, 0x400, 4);
    assert_int_equal(ml_graph_finish(&g), 0);
    assert_int_equal(g.n, 4);
    assert_int_equal(g.nduplicates, 2);
    assert_int_equal(trace_at(&g, 0x100), 1);
    assert_int_equal(trace_at(&g, 0x200), ML_GRAPH_NONE);
    assert_int_equal(trace_at(&g, 0x300), 3);
    assert_int_equal(trace_at(&g, 0x400), 4);
    ml_graph_free(&g);
    ml_dumpparser_free(&p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_graph_without_traces_has_no_array),
        cmocka_unit_test(test_traces_start_late_and_survive_growth),
        cmocka_unit_test(test_append_keeps_the_traces_of_either_half),
        cmocka_unit_test(test_a_repeated_address_keeps_its_first_lines_trace),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
