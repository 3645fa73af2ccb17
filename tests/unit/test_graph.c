/* SPDX-License-Identifier: MIT
 *
 * test_graph.c -- the flat-array dump graph (common/graph.c).
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

/* Parses and adds one line; fails the test on a parse error. */
static void
add(struct ml_graph *g, struct ml_dumpparser *p, const char *line)
{
    struct ml_dumpline l;

    assert_int_equal(ml_dumpline_parse(p, line, strlen(line), &l), 0);
    assert_int_equal(l.kind, ML_LINE_OBJECT);
    assert_int_equal(ml_graph_add(g, &l), 0);
}

static void
test_graph_resolves_refs_to_indices_and_keeps_fields(void **state)
{
    struct ml_graph g;
    struct ml_dumpparser p;
    uint32_t d, s, t;

    (void)state;
    ml_graph_init(&g);
    ml_dumpparser_init(&p);
    add(&g, &p, "{\"address\": 10, \"type\": \"dict\", \"size\": 184, \"len\": 1, \"refs\": [20, 30]}");
    add(&g, &p, "{\"address\": 20, \"type\": \"str\", \"size\": 50, \"len\": 1, \"value\": \"a\\u00e9\", \"refs\": []}");
    add(&g, &p, "{\"address\": 30, \"type\": \"function\", \"size\": 136, \"name\": \"f\", \"refs\": [10]}");
    assert_int_equal(ml_graph_finish(&g), 0);

    assert_int_equal(g.n, 3);
    assert_int_equal(g.ntypes, 3);
    d = ml_graph_find(&g, 10);
    s = ml_graph_find(&g, 20);
    t = ml_graph_find(&g, 30);
    assert_int_equal(ml_graph_find(&g, 40), ML_GRAPH_NONE);
    assert_string_equal(ml_graph_type_name(&g, ml_graph_type(&g, d)), "dict");
    assert_string_equal(ml_graph_type_name(&g, ml_graph_type(&g, s)), "str");
    assert_int_equal(g.size[d], 184);
    assert_int_equal(g.len[d], 1);
    assert_true(ml_graph_len(&g, t) == ML_GRAPH_NOLEN);
    assert_string_equal(ml_graph_value(&g, s), "a\xc3\xa9");
    assert_int_equal(g.vkind[s], ML_VAL_STR);
    assert_string_equal(ml_graph_name(&g, t), "f");
    assert_null(ml_graph_name(&g, d));
    assert_int_equal(g.ref_start[d + 1] - g.ref_start[d], 2);
    assert_int_equal(g.refs[g.ref_start[d]], s);
    assert_int_equal(g.refs[g.ref_start[d] + 1], t);
    assert_int_equal(g.refs[g.ref_start[t]], d);
    assert_int_equal(g.ndangling, 0);
    ml_dumpparser_free(&p);
    ml_graph_free(&g);
}

static void
test_graph_keeps_first_of_duplicate_addresses_and_counts_the_rest(void **state)
{
    struct ml_graph g;
    struct ml_dumpparser p;

    (void)state;
    ml_graph_init(&g);
    ml_dumpparser_init(&p);
    add(&g, &p, "{\"address\": 5, \"type\": \"str\", \"size\": 50, \"refs\": []}");
    add(&g, &p, "{\"address\": 5, \"type\": \"int\", \"size\": 28, \"refs\": []}");
    add(&g, &p, "{\"address\": 5, \"type\": \"str\", \"size\": 50, \"refs\": []}");
    assert_int_equal(ml_graph_finish(&g), 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.nduplicates, 2);
    assert_string_equal(ml_graph_type_name(&g, ml_graph_type(&g, 0)), "str");
    ml_dumpparser_free(&p);
    ml_graph_free(&g);
}

static void
test_graph_keeps_dangling_refs_with_their_addresses(void **state)
{
    struct ml_graph g;
    struct ml_dumpparser p;
    uint32_t r0, r1, r2;

    (void)state;
    ml_graph_init(&g);
    ml_dumpparser_init(&p);
    add(&g, &p, "{\"address\": 1, \"type\": \"list\", \"size\": 80, \"refs\": [99, 1, 98]}");
    assert_int_equal(ml_graph_finish(&g), 0);
    assert_int_equal(g.ndangling, 2);
    r0 = g.refs[0];
    r1 = g.refs[1];
    r2 = g.refs[2];
    assert_true(r0 >= g.n);
    assert_int_equal(r1, 0);
    assert_true(r2 >= g.n);
    assert_int_equal(ml_graph_ref_addr(&g, r0), 99);
    assert_int_equal(ml_graph_ref_addr(&g, r1), 1);
    assert_int_equal(ml_graph_ref_addr(&g, r2), 98);
    /* Dangling refs are not referrers of anything. */
    assert_int_equal(ml_graph_compute_parents(&g), 0);
    assert_int_equal(g.par_start[1] - g.par_start[0], 1);
    assert_int_equal(g.par[g.par_start[0]], 0);
    ml_dumpparser_free(&p);
    ml_graph_free(&g);
}

/* A random graph checked against a naive reference. */
/* Whether refs[j] is among refs[0 .. j): a referrer is listed once. */
static int
repeats(const uint32_t *refs, uint32_t j)
{
    for (uint32_t k = 0; k < j; k++)
        if (refs[k] == refs[j])
            return 1;
    return 0;
}

static void
test_graph_parents_mirror_refs_on_a_random_graph(void **state)
{
    enum { N = 20000 };
    struct ml_graph g;
    struct ml_dumpparser p;
    static uint32_t nref[N];
    static uint32_t ref[N][8];
    static uint32_t npar[N];
    char line[512];
    unsigned seed = 12345;

    (void)state;
    ml_graph_init(&g);
    ml_dumpparser_init(&p);
    memset(npar, 0, sizeof(npar));
    for (uint32_t i = 0; i < N; i++) {
        int k = snprintf(line, sizeof(line),
                         "{\"address\": %u, \"type\": \"t%u\", \"size\": %u, \"refs\": [",
                         (i * 7919u) % 1000003u * 16u + 16u, i % 37, i % 1000);

        nref[i] = (seed = seed * 1103515245u + 12345u) >> 16 & 7;
        for (uint32_t j = 0; j < nref[i]; j++) {
            seed = seed * 1103515245u + 12345u;
            ref[i][j] = (seed >> 8) % N;
            npar[ref[i][j]] += !repeats(ref[i], j);
            k += snprintf(line + k, sizeof(line) - (size_t)k, "%s%u", j ? ", " : "",
                          (ref[i][j] * 7919u) % 1000003u * 16u + 16u);
        }
        snprintf(line + k, sizeof(line) - (size_t)k, "]}");
        add(&g, &p, line);
    }
    assert_int_equal(ml_graph_finish(&g), 0);
    assert_int_equal(ml_graph_compute_parents(&g), 0);
    assert_int_equal(g.n, N);
    assert_int_equal(g.ntypes, 37);
    assert_int_equal(g.ndangling, 0);
    for (uint32_t i = 0; i < N; i++) {
        assert_int_equal(g.ref_start[i + 1] - g.ref_start[i], nref[i]);
        for (uint32_t j = 0; j < nref[i]; j++)
            assert_int_equal(g.refs[g.ref_start[i] + j], ref[i][j]);
        assert_int_equal(g.par_start[i + 1] - g.par_start[i], npar[i]);
        /* Every listed parent really refers to i. */
        for (uint64_t k = g.par_start[i]; k < g.par_start[i + 1]; k++) {
            uint32_t q = g.par[k];
            int found = 0;

            for (uint32_t j = 0; j < nref[q]; j++)
                found |= ref[q][j] == i;
            assert_true(found);
            /* Once each, in index order. */
            if (k > g.par_start[i])
                assert_true(g.par[k - 1] < q);
        }
    }
    ml_dumpparser_free(&p);
    ml_graph_free(&g);
}

static void
test_graph_summarize_counts_sizes_and_largest(void **state)
{
    struct ml_graph g;
    struct ml_dumpparser p;
    struct ml_type_summary s[2];
    uint8_t mask[4] = { 1, 1, 0, 1 };

    (void)state;
    ml_graph_init(&g);
    ml_dumpparser_init(&p);
    add(&g, &p, "{\"address\": 1, \"type\": \"a\", \"size\": 10, \"refs\": []}");
    add(&g, &p, "{\"address\": 2, \"type\": \"b\", \"size\": 7, \"refs\": []}");
    add(&g, &p, "{\"address\": 3, \"type\": \"a\", \"size\": 30, \"refs\": []}");
    add(&g, &p, "{\"address\": 4, \"type\": \"a\", \"size\": 20, \"refs\": []}");
    assert_int_equal(ml_graph_finish(&g), 0);
    assert_int_equal(g.ntypes, 2);
    ml_graph_summarize(&g, NULL, s);
    assert_int_equal(s[0].count, 3);
    assert_int_equal(s[0].size, 60);
    assert_int_equal(s[0].max_size, 30);
    assert_int_equal(ml_graph_addr(&g, s[0].max_index), 3);
    assert_int_equal(s[1].count, 1);
    assert_int_equal(s[1].size, 7);
    ml_graph_summarize(&g, mask, s);
    assert_int_equal(s[0].count, 2);
    assert_int_equal(s[0].size, 30);
    assert_int_equal(s[0].max_size, 20);
    assert_int_equal(ml_graph_addr(&g, s[0].max_index), 4);
    ml_dumpparser_free(&p);
    ml_graph_free(&g);
}

static void
test_graph_keeps_lengths_beyond_32_bits_exactly(void **state)
{
    struct ml_graph g;
    struct ml_dumpparser p;

    (void)state;
    ml_graph_init(&g);
    ml_dumpparser_init(&p);
    add(&g, &p, "{\"address\": 1, \"type\": \"list\", \"size\": 8, \"len\": 5000000000}");
    add(&g, &p, "{\"address\": 2, \"type\": \"list\", \"size\": 8, \"len\": 4294967294}");
    add(&g, &p, "{\"address\": 3, \"type\": \"list\", \"size\": 8, \"len\": 4294967293}");
    add(&g, &p, "{\"address\": 4, \"type\": \"list\", \"size\": 8}");
    assert_int_equal(ml_graph_finish(&g), 0);
    assert_true(ml_graph_len(&g, ml_graph_find(&g, 1)) == 5000000000ull);
    assert_true(ml_graph_len(&g, ml_graph_find(&g, 2)) == 4294967294ull);
    assert_true(ml_graph_len(&g, ml_graph_find(&g, 3)) == 4294967293ull);
    assert_true(ml_graph_len(&g, ml_graph_find(&g, 4)) == ML_GRAPH_NOLEN);
    ml_dumpparser_free(&p);
    ml_graph_free(&g);
}

static void
test_graph_empty_finishes_and_summarizes(void **state)
{
    struct ml_graph g;

    (void)state;
    ml_graph_init(&g);
    assert_int_equal(ml_graph_finish(&g), 0);
    assert_int_equal(ml_graph_compute_parents(&g), 0);
    assert_int_equal(g.n, 0);
    assert_int_equal(ml_graph_find(&g, 1), ML_GRAPH_NONE);
    ml_graph_free(&g);
}

static void
test_graph_refuses_adds_after_finish(void **state)
{
    struct ml_graph g;
    struct ml_dumpparser p;
    struct ml_dumpline l;
    const char *line = "{\"address\": 1, \"type\": \"a\", \"size\": 1}";

    (void)state;
    ml_graph_init(&g);
    ml_dumpparser_init(&p);
    assert_int_equal(ml_graph_finish(&g), 0);
    assert_int_equal(ml_dumpline_parse(&p, line, strlen(line), &l), 0);
    assert_int_not_equal(ml_graph_add(&g, &l), 0);
    ml_dumpparser_free(&p);
    ml_graph_free(&g);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_graph_resolves_refs_to_indices_and_keeps_fields),
        cmocka_unit_test(test_graph_keeps_first_of_duplicate_addresses_and_counts_the_rest),
        cmocka_unit_test(test_graph_keeps_dangling_refs_with_their_addresses),
        cmocka_unit_test(test_graph_parents_mirror_refs_on_a_random_graph),
        cmocka_unit_test(test_graph_summarize_counts_sizes_and_largest),
        cmocka_unit_test(test_graph_keeps_lengths_beyond_32_bits_exactly),
        cmocka_unit_test(test_graph_empty_finishes_and_summarizes),
        cmocka_unit_test(test_graph_refuses_adds_after_finish),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
