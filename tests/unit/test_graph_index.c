/* SPDX-License-Identifier: MIT
 *
 * test_graph_index.c -- ml_graph_finish's address index on graphs big
 * enough for its two-step counting sort (common/graph.c, index_fill2:
 * 2^12 buckets and more, i.e. over 16384 objects).  The oracle is the
 * one-step sort that ml_graph_rehash runs on the same objects, and a
 * plain scan of the addresses.  Also ml_graph_add's cache of recent
 * types.
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

static uint64_t
rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* n lines; line i's address is addr_of(i % distinct) (so lines past
 * `distinct` repeat earlier addresses), its type "t<i % 5>", its refs 0-3
 * addresses of other lines and, every 97th line, one that no line has. */
static uint64_t
addr_of(uint64_t i)
{
    /* A few high halves, scattered low halves, 16-aligned: a heap's. */
    return ((uint64_t)(0x7f00 + i % 3) << 32) | ((i * 2654435761u) & 0xfffffff0u) | 0x10;
}

static void
build(struct ml_graph *g, size_t n, size_t distinct, uint64_t seed)
{
    struct ml_dumpparser p;
    char line[512];

    ml_graph_init(g);
    ml_dumpparser_init(&p);
    for (size_t i = 0; i < n; i++) {
        struct ml_dumpline l;
        unsigned nr = (unsigned)(rnd(&seed) & 3);
        int k = snprintf(line, sizeof(line),
                         "{\"address\": %llu, \"type\": \"t%zu\", \"size\": %zu, \"refs\": [",
                         (unsigned long long)addr_of(i % distinct), i % 5, i);

        for (unsigned j = 0; j < nr; j++)
            k += snprintf(line + k, sizeof(line) - (size_t)k, "%s%llu", j ? ", " : "",
                          (unsigned long long)addr_of(rnd(&seed) % distinct));
        if (i % 97 == 0)
            k += snprintf(line + k, sizeof(line) - (size_t)k, "%s%llu", nr ? ", " : "",
                          (unsigned long long)(addr_of(i) + 8));  /* not 16-aligned: no line's */
        snprintf(line + k, sizeof(line) - (size_t)k, "]}");
        assert_int_equal(ml_dumpline_parse(&p, line, strlen(line), &l), 0);
        assert_int_equal(ml_graph_add(g, &l), 0);
    }
    ml_dumpparser_free(&p);
}

static void
check_index(size_t n, size_t distinct)
{
    struct ml_graph g;
    uint32_t *perm, *dir;
    size_t nb;

    build(&g, n, distinct, 0x9e3779b97f4a7c15ull ^ n);
    assert_int_equal(ml_graph_finish(&g), 0);
    assert_int_equal(g.n, distinct);
    assert_int_equal(g.nduplicates, n - distinct);
    assert_true(g.dir_bits >= 12);      /* the two-step sort ran */
    /* The first line of an address is the object kept: its size says
     * which line it was. */
    for (size_t i = 0; i < distinct; i++) {
        uint32_t o = ml_graph_find(&g, addr_of(i));

        assert_int_not_equal(o, ML_GRAPH_NONE);
        assert_int_equal(ml_graph_addr(&g, o), addr_of(i));
        assert_int_equal(ml_graph_size(&g, o), i);
    }
    assert_int_equal(ml_graph_find(&g, addr_of(1) + 8), ML_GRAPH_NONE);
    /* Every ref names the object of its address (or a dangling entry). */
    for (size_t i = 0; i < g.n; i++)
        for (uint32_t k = g.ref_start[i]; k < g.ref_start[i + 1]; k++) {
            uint32_t r = g.refs[k];

            if (r < g.n)
                assert_int_equal(ml_graph_find(&g, ml_graph_addr(&g, r)), r);
            else
                assert_int_equal(ml_graph_find(&g, g.dangling[r - g.n]), ML_GRAPH_NONE);
        }
    assert_true(g.ndangling >= n / 97 - (n - distinct) / 97 - 1);
    /* The same buckets, in the same order, as the one-step sort. */
    nb = (size_t)1 << g.dir_bits;
    perm = malloc(g.n * sizeof(*perm));
    dir = malloc((nb + 1) * sizeof(*dir));
    assert_non_null(perm);
    assert_non_null(dir);
    memcpy(perm, g.perm, g.n * sizeof(*perm));
    memcpy(dir, g.dir, (nb + 1) * sizeof(*dir));
    ml_graph_rehash(&g);
    assert_memory_equal(dir, g.dir, (nb + 1) * sizeof(*dir));
    assert_memory_equal(perm, g.perm, g.n * sizeof(*perm));
    /* Stable: a bucket lists its objects in index order. */
    for (size_t b = 0; b < nb; b++)
        for (uint32_t q = dir[b] + 1; q < dir[b + 1]; q++)
            assert_true(perm[q - 1] < perm[q]);
    free(perm);
    free(dir);
    ml_graph_free(&g);
}

static void
test_graph_index_two_steps_finds_every_address_as_the_one_step_sort(void **state)
{
    (void)state;
    check_index(40000, 40000);          /* 2^13 buckets: 2 partitions */
}

static void
test_graph_index_two_steps_keeps_the_first_of_repeated_addresses(void **state)
{
    (void)state;
    check_index(300000, 200000);        /* 2^15 buckets, a third repeated */
}

static void
test_graph_index_two_steps_with_all_partitions(void **state)
{
    (void)state;
    check_index(2500000, 2400000);      /* 2^19 buckets: 2^9 partitions */
}

/* ml_graph_add's recent-type cache keys on the name's length and three
 * of its bytes: names alike in those share a slot and must stay apart. */
static void
test_graph_types_sharing_a_cache_slot_stay_apart(void **state)
{
    static const char *names[] = { "abcde", "aXcde", "abcYe", "aZcde", "abcde" };
    struct ml_graph g;
    struct ml_dumpparser p;
    char line[256];

    (void)state;
    ml_graph_init(&g);
    ml_dumpparser_init(&p);
    for (unsigned i = 0; i < 1000; i++) {
        struct ml_dumpline l;

        snprintf(line, sizeof(line),
                 "{\"address\": %u, \"type\": \"%s\", \"size\": 1, \"refs\": []}",
                 16 * (i + 1), names[i % 5]);
        assert_int_equal(ml_dumpline_parse(&p, line, strlen(line), &l), 0);
        assert_int_equal(ml_graph_add(&g, &l), 0);
    }
    assert_int_equal(ml_graph_finish(&g), 0);
    assert_int_equal(g.ntypes, 4);
    for (unsigned i = 0; i < 1000; i++)
        assert_string_equal(ml_graph_type_name(&g, ml_graph_type(&g, ml_graph_find(&g, 16 * (i + 1)))),
                            names[i % 5]);
    ml_dumpparser_free(&p);
    ml_graph_free(&g);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_graph_index_two_steps_finds_every_address_as_the_one_step_sort),
        cmocka_unit_test(test_graph_index_two_steps_keeps_the_first_of_repeated_addresses),
        cmocka_unit_test(test_graph_index_two_steps_with_all_partitions),
        cmocka_unit_test(test_graph_types_sharing_a_cache_slot_stay_apart),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
