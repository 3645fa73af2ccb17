/* SPDX-License-Identifier: MIT
 *
 * test_collapse.c -- ml_graph_collapse_instance_dicts (common/collapse.c)
 * on hand-made graphs.
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

#include "collapse.h"
#include "graph.h"
#include "ml-common.h"

/* Loads the lines (NULL-terminated) into g and finishes it. */
static void
build(struct ml_graph *g, const char *const *lines)
{
    struct ml_dumpparser p;

    ml_graph_init(g);
    ml_dumpparser_init(&p);
    for (; *lines != NULL; lines++) {
        struct ml_dumpline l;

        assert_int_equal(ml_dumpline_parse(&p, *lines, strlen(*lines), &l), 0);
        assert_int_equal(l.kind, ML_LINE_OBJECT);
        assert_int_equal(ml_graph_add(g, &l), 0);
    }
    ml_dumpparser_free(&p);
    assert_int_equal(ml_graph_finish(g), 0);
}

/* Index of address, failing the test if it is absent. */
static uint32_t
idx(const struct ml_graph *g, uint64_t address)
{
    uint32_t i = ml_graph_find(g, address);

    assert_true(i != ML_GRAPH_NONE);
    assert_true(i < g->n);
    assert_true(ml_graph_addr(g, i) == address);
    return i;
}

/* The refs of address, as addresses, are exactly want[0..n). */
static void
assert_refs(const struct ml_graph *g, uint64_t address, const uint64_t *want,
            size_t n)
{
    uint32_t i = idx(g, address);

    assert_int_equal(g->ref_start[i + 1] - g->ref_start[i], n);
    for (size_t k = 0; k < n; k++) {
        uint32_t r = g->refs[g->ref_start[i] + k];

        assert_true(r < g->n + g->ndangling);
        assert_true(ml_graph_ref_addr(g, r) == want[k]);
    }
}

#define ASSERT_REFS(g, a, ...)                                          \
    do {                                                                \
        const uint64_t want_[] = { __VA_ARGS__ };                       \
        assert_refs((g), (a), want_, sizeof(want_) / sizeof(want_[0])); \
    } while (0)

static void
assert_no_refs(const struct ml_graph *g, uint64_t address)
{
    assert_refs(g, address, NULL, 0);
}

/* The graph's invariants: the CSR is well formed, every index is found
 * by its address, every ref is an object or a dangling entry. */
static void
assert_consistent(const struct ml_graph *g)
{
    assert_true(g->ref_start[0] == 0);
    assert_true(g->ref_start[g->n] == g->nrefs);
    for (size_t i = 0; i < g->n; i++) {
        assert_true(g->ref_start[i] <= g->ref_start[i + 1]);
        assert_int_equal(ml_graph_find(g, ml_graph_addr(g, i)), i);
    }
    for (uint64_t k = 0; k < g->nrefs; k++)
        assert_true(g->refs[k] < g->n + g->ndangling);
}

/* A copy of what a graph holds, to compare after a collapse that must
 * change nothing.  Byte copies, sized from the graph's own arrays. */
struct snap {
    size_t n;
    uint64_t nrefs;
    void *addr, *size, *type, *ref_start, *refs;
};

static void *
dup_bytes(const void *p, size_t n)
{
    void *q = malloc(n ? n : 1);

    assert_non_null(q);
    if (n)
        memcpy(q, p, n);
    return q;
}

static void
snap_take(struct snap *s, const struct ml_graph *g)
{
    s->n = g->n;
    s->nrefs = g->nrefs;
    s->addr = malloc((g->n ? g->n : 1) * sizeof(uint64_t));
    assert_non_null(s->addr);
    for (size_t i = 0; i < g->n; i++)
        ((uint64_t *)s->addr)[i] = ml_graph_addr(g, i);
    s->size = dup_bytes(g->size, g->n * sizeof(*g->size));
    s->type = malloc((g->n ? g->n : 1) * sizeof(uint32_t));
    assert_non_null(s->type);
    for (size_t i = 0; i < g->n; i++)
        ((uint32_t *)s->type)[i] = ml_graph_type(g, i);
    s->ref_start = dup_bytes(g->ref_start, (g->n + 1) * sizeof(*g->ref_start));
    s->refs = dup_bytes(g->refs, g->nrefs * sizeof(*g->refs));
}

static void
snap_assert_same(struct snap *s, const struct ml_graph *g)
{
    assert_int_equal(g->n, s->n);
    assert_int_equal(g->nrefs, s->nrefs);
    for (size_t i = 0; i < s->n; i++)
        assert_true(ml_graph_addr(g, i) == ((uint64_t *)s->addr)[i]);
    assert_memory_equal(g->size, s->size, s->n * sizeof(*g->size));
    for (size_t i = 0; i < s->n; i++)
        assert_int_equal(ml_graph_type(g, i), ((uint32_t *)s->type)[i]);
    assert_memory_equal(g->ref_start, s->ref_start,
                        (s->n + 1) * sizeof(*g->ref_start));
    if (s->nrefs > 0)
        assert_memory_equal(g->refs, s->refs, s->nrefs * sizeof(*g->refs));
    free(s->addr);
    free(s->size);
    free(s->type);
    free(s->ref_start);
    free(s->refs);
}

/* ---- the tests ------------------------------------------------------ */

static void
test_collapse_folds_a_private_dict_into_its_instance(void **state)
{
    static const char *const lines[] = {
        "{\"address\": 1, \"type\": \"type\", \"size\": 1000, \"name\": \"Leak\", \"refs\": []}",
        "{\"address\": 2, \"type\": \"Leak\", \"size\": 48, \"refs\": [3, 1]}",
        "{\"address\": 3, \"type\": \"dict\", \"size\": 104, \"len\": 2, \"refs\": [4, 5, 6, 7]}",
        "{\"address\": 4, \"type\": \"str\", \"size\": 50, \"len\": 1, \"value\": \"a\", \"refs\": []}",
        "{\"address\": 5, \"type\": \"list\", \"size\": 64, \"len\": 1, \"refs\": [4]}",
        "{\"address\": 6, \"type\": \"str\", \"size\": 50, \"len\": 1, \"value\": \"b\", \"refs\": []}",
        "{\"address\": 7, \"type\": \"int\", \"size\": 28, \"value\": 7, \"refs\": []}",
        "{\"address\": 8, \"type\": \"list\", \"size\": 64, \"len\": 1, \"refs\": [2]}",
        NULL,
    };
    struct ml_graph g;
    uint32_t i;

    (void)state;
    build(&g, lines);
    assert_int_equal(ml_graph_compute_parents(&g), 0);
    assert_non_null(g.par_start);

    assert_int_equal(ml_graph_collapse_instance_dicts(&g), 1);
    assert_int_equal(g.n, 7);
    assert_int_equal(ml_graph_find(&g, 3), ML_GRAPH_NONE);
    /* The instance: the dict's [key, value, ...], then its own refs, and
     * the dict's size added to its own. */
    ASSERT_REFS(&g, 2, 4, 5, 6, 7, 1);
    i = idx(&g, 2);
    assert_int_equal(g.size[i], 48 + 104);
    assert_string_equal(ml_graph_type_name(&g, ml_graph_type(&g, i)), "Leak");
    assert_true(ml_graph_len(&g, i) == ML_GRAPH_NOLEN);
    /* The others are where their addresses say, fields intact. */
    ASSERT_REFS(&g, 5, 4);
    ASSERT_REFS(&g, 8, 2);
    assert_no_refs(&g, 1);
    i = idx(&g, 4);
    assert_string_equal(ml_graph_type_name(&g, ml_graph_type(&g, i)), "str");
    assert_string_equal(ml_graph_value(&g, i), "a");
    assert_int_equal(g.size[i], 50);
    assert_int_equal(g.len[i], 1);
    i = idx(&g, 7);
    assert_int_equal(g.vkind[i], ML_VAL_INT);
    assert_string_equal(ml_graph_value(&g, i), "7");
    i = idx(&g, 1);
    assert_string_equal(ml_graph_name(&g, i), "Leak");
    assert_int_equal(g.size[i], 1000);
    assert_consistent(&g);

    /* The old referrer CSR is gone; a new one names the instance. */
    assert_null(g.par_start);
    assert_null(g.par);
    assert_int_equal(ml_graph_compute_parents(&g), 0);
    i = idx(&g, 6);
    assert_int_equal(g.par_start[i + 1] - g.par_start[i], 1);
    assert_int_equal(g.par[g.par_start[i]], idx(&g, 2));
    i = idx(&g, 4);
    assert_int_equal(g.par_start[i + 1] - g.par_start[i], 2);

    /* Nothing left to fold. */
    assert_int_equal(ml_graph_collapse_instance_dicts(&g), 0);
    assert_int_equal(g.n, 7);
    ml_graph_free(&g);
}

static void
test_collapse_keeps_a_dict_with_two_referrers(void **state)
{
    static const char *const lines[] = {
        "{\"address\": 1, \"type\": \"type\", \"size\": 1000, \"name\": \"Leak\", \"refs\": []}",
        "{\"address\": 2, \"type\": \"Leak\", \"size\": 48, \"refs\": [3, 1]}",
        "{\"address\": 3, \"type\": \"dict\", \"size\": 104, \"refs\": [4, 4]}",
        "{\"address\": 4, \"type\": \"str\", \"size\": 50, \"value\": \"a\", \"refs\": []}",
        "{\"address\": 5, \"type\": \"list\", \"size\": 64, \"refs\": [3]}",
        /* Held twice by its own instance: two references too. */
        "{\"address\": 6, \"type\": \"Leak\", \"size\": 48, \"refs\": [7, 7, 1]}",
        "{\"address\": 7, \"type\": \"dict\", \"size\": 104, \"refs\": []}",
        /* Two dicts, each held once: which one is __dict__? Neither. */
        "{\"address\": 8, \"type\": \"Leak\", \"size\": 48, \"refs\": [9, 10, 1]}",
        "{\"address\": 9, \"type\": \"dict\", \"size\": 104, \"refs\": []}",
        "{\"address\": 10, \"type\": \"dict\", \"size\": 104, \"refs\": []}",
        NULL,
    };
    struct ml_graph g;
    struct snap s;

    (void)state;
    build(&g, lines);
    snap_take(&s, &g);
    assert_int_equal(ml_graph_collapse_instance_dicts(&g), 0);
    snap_assert_same(&s, &g);
    assert_consistent(&g);
    ml_graph_free(&g);
}

static void
test_collapse_leaves_module_type_and_function_dicts(void **state)
{
    static const char *const lines[] = {
        "{\"address\": 1, \"type\": \"type\", \"size\": 1000, \"name\": \"type\", \"refs\": []}",
        /* A module and its __dict__, which a function holds as its
         * __globals__. */
        "{\"address\": 10, \"type\": \"module\", \"size\": 72, \"name\": \"m\", \"refs\": [11]}",
        "{\"address\": 11, \"type\": \"dict\", \"size\": 1000, \"refs\": []}",
        /* A class (its dict, and a ref to its metaclass named as its own
         * type). */
        "{\"address\": 20, \"type\": \"type\", \"size\": 1000, \"name\": \"C\", \"refs\": [21, 1]}",
        "{\"address\": 21, \"type\": \"dict\", \"size\": 1000, \"refs\": []}",
        /* A class of another metaclass: named, so not an instance. */
        "{\"address\": 30, \"type\": \"type\", \"size\": 1000, \"name\": \"ABCMeta\", \"refs\": []}",
        "{\"address\": 31, \"type\": \"ABCMeta\", \"size\": 1000, \"name\": \"D\", \"refs\": [32, 30]}",
        "{\"address\": 32, \"type\": \"dict\", \"size\": 1000, \"refs\": []}",
        /* A function with a __dict__ of its own. */
        "{\"address\": 40, \"type\": \"function\", \"size\": 136, \"name\": \"f\", \"refs\": [41, 11, 42, 99]}",
        "{\"address\": 41, \"type\": \"code\", \"size\": 136, \"name\": \"f\", \"refs\": []}",
        "{\"address\": 42, \"type\": \"dict\", \"size\": 1000, \"refs\": []}",
        /* A defaultdict (dict type by name) and a frame with locals. */
        "{\"address\": 50, \"type\": \"collections.defaultdict\", \"size\": 200, \"refs\": [51, 99]}",
        "{\"address\": 51, \"type\": \"dict\", \"size\": 1000, \"refs\": []}",
        "{\"address\": 60, \"type\": \"frame\", \"size\": 200, \"refs\": [61, 99]}",
        "{\"address\": 61, \"type\": \"dict\", \"size\": 1000, \"refs\": []}",
        /* A dict holding a dict. */
        "{\"address\": 70, \"type\": \"dict\", \"size\": 200, \"refs\": [71, 99]}",
        "{\"address\": 71, \"type\": \"dict\", \"size\": 1000, \"refs\": []}",
        /* An instance of a class with no type ref at all. */
        "{\"address\": 80, \"type\": \"Leak\", \"size\": 48, \"refs\": [81]}",
        "{\"address\": 81, \"type\": \"dict\", \"size\": 1000, \"refs\": []}",
        /* An instance whose type ref names another class. */
        "{\"address\": 82, \"type\": \"Leak\", \"size\": 48, \"refs\": [83, 20]}",
        "{\"address\": 83, \"type\": \"dict\", \"size\": 1000, \"refs\": []}",
        "{\"address\": 99, \"type\": \"NoneType\", \"size\": 16, \"value\": null, \"refs\": []}",
        NULL,
    };
    struct ml_graph g;
    struct snap s;
    uint32_t *renumber;

    (void)state;
    build(&g, lines);
    snap_take(&s, &g);
    assert_int_equal(ml_graph_collapse_renumbering(&g, &renumber), 0);
    assert_null(renumber);           /* nothing folded, nothing kept */
    snap_assert_same(&s, &g);
    assert_consistent(&g);
    ml_graph_free(&g);
}

static void
test_collapse_folds_a_module_dict_nothing_else_holds(void **state)
{
    /* meliae 0.5's rule: a module whose one ref is a dict only it holds. */
    static const char *const lines[] = {
        "{\"address\": 10, \"type\": \"module\", \"size\": 72, \"name\": \"m\", \"refs\": [11]}",
        "{\"address\": 11, \"type\": \"dict\", \"size\": 1000, \"len\": 1, \"refs\": [12, 13]}",
        "{\"address\": 12, \"type\": \"str\", \"size\": 50, \"value\": \"x\", \"refs\": []}",
        "{\"address\": 13, \"type\": \"int\", \"size\": 28, \"value\": 1, \"refs\": []}",
        /* A module with state (two refs) keeps its dict. */
        "{\"address\": 20, \"type\": \"module\", \"size\": 72, \"name\": \"c\", \"refs\": [12, 21]}",
        "{\"address\": 21, \"type\": \"dict\", \"size\": 1000, \"refs\": []}",
        NULL,
    };
    static const uint32_t want[] = { 0, ML_GRAPH_NONE, 1, 2, 3, 4 };
    struct ml_graph g;
    uint32_t *renumber;

    (void)state;
    build(&g, lines);
    assert_int_equal(ml_graph_collapse_renumbering(&g, &renumber), 1);
    assert_non_null(renumber);
    assert_memory_equal(renumber, want, sizeof(want));
    free(renumber);
    assert_int_equal(ml_graph_find(&g, 11), ML_GRAPH_NONE);
    ASSERT_REFS(&g, 10, 12, 13);
    assert_int_equal(g.size[idx(&g, 10)], 1072);
    ASSERT_REFS(&g, 20, 12, 21);
    assert_consistent(&g);
    ml_graph_free(&g);
}

static void
test_collapse_leaves_inline_values_instances_as_they_are(void **state)
{
    /* 3.11+: an instance whose __dict__ was never materialised is written
     * [name, value, ..., type]: already the collapsed shape. */
    static const char *const lines[] = {
        "{\"address\": 1, \"type\": \"type\", \"size\": 1000, \"name\": \"Point\", \"refs\": []}",
        "{\"address\": 2, \"type\": \"Point\", \"size\": 104, \"refs\": [3, 4, 5, 6, 1]}",
        "{\"address\": 3, \"type\": \"str\", \"size\": 50, \"value\": \"x\", \"refs\": []}",
        "{\"address\": 4, \"type\": \"int\", \"size\": 28, \"value\": 1, \"refs\": []}",
        "{\"address\": 5, \"type\": \"str\", \"size\": 50, \"value\": \"y\", \"refs\": []}",
        "{\"address\": 6, \"type\": \"list\", \"size\": 56, \"refs\": [4]}",
        "{\"address\": 7, \"type\": \"Point\", \"size\": 104, \"refs\": [3, 4, 1]}",
        "{\"address\": 8, \"type\": \"Point\", \"size\": 104, \"refs\": [1]}",
        NULL,
    };
    struct ml_graph g;
    struct snap s;

    (void)state;
    build(&g, lines);
    snap_take(&s, &g);
    assert_int_equal(ml_graph_collapse_instance_dicts(&g), 0);
    snap_assert_same(&s, &g);
    ASSERT_REFS(&g, 2, 3, 4, 5, 6, 1);
    assert_consistent(&g);
    ml_graph_free(&g);
}

static void
test_collapse_takes_313_materialised_dicts_without_repeating_values(void **state)
{
    /* 3.13, __dict__ materialised on embedded values: [dict, values...,
     * type]; the values are the dict's already. */
    static const char *const lines[] = {
        "{\"address\": 1, \"type\": \"type\", \"size\": 1000, \"name\": \"P\", \"refs\": []}",
        "{\"address\": 2, \"type\": \"P\", \"size\": 32, \"refs\": [3, 5, 7, 1]}",
        "{\"address\": 3, \"type\": \"dict\", \"size\": 120, \"refs\": [4, 5, 6, 7]}",
        "{\"address\": 4, \"type\": \"str\", \"size\": 50, \"value\": \"x\", \"refs\": []}",
        "{\"address\": 5, \"type\": \"int\", \"size\": 28, \"value\": 5, \"refs\": []}",
        "{\"address\": 6, \"type\": \"str\", \"size\": 50, \"value\": \"y\", \"refs\": []}",
        "{\"address\": 7, \"type\": \"list\", \"size\": 56, \"refs\": []}",
        NULL,
    };
    struct ml_graph g;

    (void)state;
    build(&g, lines);
    assert_int_equal(ml_graph_collapse_instance_dicts(&g), 1);
    ASSERT_REFS(&g, 2, 4, 5, 6, 7, 1);
    assert_int_equal(g.size[idx(&g, 2)], 32 + 120);
    assert_int_equal(ml_graph_find(&g, 3), ML_GRAPH_NONE);
    assert_consistent(&g);
    ml_graph_free(&g);
}

static void
test_collapse_keeps_dangling_refs(void **state)
{
    /* Refs to absent addresses, in the dict, in the instance, elsewhere,
     * and an instance whose class has no line (dump_all_referenced). */
    static const char *const lines[] = {
        "{\"address\": 1, \"type\": \"type\", \"size\": 1000, \"name\": \"Leak\", \"refs\": []}",
        "{\"address\": 2, \"type\": \"Leak\", \"size\": 48, \"refs\": [900, 3, 1]}",
        "{\"address\": 3, \"type\": \"dict\", \"size\": 100, \"refs\": [4, 901, 902, 4]}",
        "{\"address\": 4, \"type\": \"str\", \"size\": 50, \"value\": \"a\", \"refs\": []}",
        "{\"address\": 5, \"type\": \"list\", \"size\": 64, \"refs\": [903, 2, 6, 904]}",
        "{\"address\": 6, \"type\": \"Orphan\", \"size\": 40, \"refs\": [7, 905]}",
        "{\"address\": 7, \"type\": \"dict\", \"size\": 200, \"refs\": [4, 906]}",
        NULL,
    };
    struct ml_graph g;
    size_t ndangling;

    (void)state;
    build(&g, lines);
    ndangling = g.ndangling;
    assert_int_equal(ndangling, 7);
    assert_int_equal(ml_graph_collapse_instance_dicts(&g), 2);
    assert_int_equal(g.n, 5);
    assert_int_equal(g.ndangling, ndangling);
    ASSERT_REFS(&g, 2, 4, 901, 902, 4, 900, 1);
    ASSERT_REFS(&g, 5, 903, 2, 6, 904);
    ASSERT_REFS(&g, 6, 4, 906, 905);
    assert_int_equal(g.size[idx(&g, 2)], 148);
    assert_int_equal(g.size[idx(&g, 6)], 240);
    assert_int_equal(ml_graph_find(&g, 3), ML_GRAPH_NONE);
    assert_int_equal(ml_graph_find(&g, 7), ML_GRAPH_NONE);
    assert_int_equal(ml_graph_find(&g, 900), ML_GRAPH_NONE);
    assert_consistent(&g);
    ml_graph_free(&g);
}

/* Parses and adds one formatted line. */
static void addf(struct ml_graph *g, struct ml_dumpparser *p, const char *fmt,
                 ...) __attribute__((format(printf, 3, 4)));

static void
addf(struct ml_graph *g, struct ml_dumpparser *p, const char *fmt, ...)
{
    char line[256];
    struct ml_dumpline l;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof(line));
    assert_int_equal(ml_dumpline_parse(p, line, (size_t)n, &l), 0);
    assert_int_equal(ml_graph_add(g, &l), 0);
}

static void
test_collapse_many_instances_then_every_address_is_found(void **state)
{
    /* 3000 instances, each followed by a dict and a list holding the
     * instance: K0's dict is its own (folds), K1's dict is also held by
     * the list (stays), K2 refers to no dict (its dict is held by
     * nothing and stays). */
    enum { N = 3000 };
    struct ml_graph g;
    struct ml_dumpparser p;
    size_t nk0 = 0;

    (void)state;
    ml_graph_init(&g);
    ml_dumpparser_init(&p);
    for (int c = 0; c < 3; c++)
        addf(&g, &p, "{\"address\": %d, \"type\": \"type\", \"size\": 1000, "
             "\"name\": \"K%d\", \"refs\": []}", 10 + c, c);
    addf(&g, &p, "{\"address\": 20, \"type\": \"str\", \"size\": 50, "
         "\"value\": \"a\", \"refs\": []}");
    addf(&g, &p, "{\"address\": 21, \"type\": \"int\", \"size\": 28, "
         "\"value\": 1, \"refs\": []}");
    for (unsigned long long k = 0; k < N; k++) {
        unsigned long long inst = 1000000 + k * 16, dict = 5000000 + k * 16;
        unsigned long long list = 9000000 + k * 16;
        int c = (int)(k % 3);

        if (c == 2)
            addf(&g, &p, "{\"address\": %llu, \"type\": \"K2\", \"size\": 48, "
                 "\"refs\": [12]}", inst);
        else
            addf(&g, &p, "{\"address\": %llu, \"type\": \"K%d\", \"size\": 48, "
                 "\"refs\": [%llu, %d]}", inst, c, dict, 10 + c);
        addf(&g, &p, "{\"address\": %llu, \"type\": \"dict\", \"size\": 100, "
             "\"refs\": [20, 21]}", dict);
        if (c == 1)
            addf(&g, &p, "{\"address\": %llu, \"type\": \"list\", \"size\": 64, "
                 "\"refs\": [%llu, %llu, 777]}", list, inst, dict);
        else
            addf(&g, &p, "{\"address\": %llu, \"type\": \"list\", \"size\": 64, "
                 "\"refs\": [%llu, 777]}", list, inst);
        nk0 += c == 0;
    }
    ml_dumpparser_free(&p);
    assert_int_equal(ml_graph_finish(&g), 0);
    assert_int_equal(g.n, 5 + 3 * N);
    assert_int_equal(g.ndangling, N);

    assert_int_equal(ml_graph_collapse_instance_dicts(&g), nk0);
    assert_int_equal(g.n, 5 + 3 * N - nk0);
    assert_int_equal(g.ndangling, N);
    assert_consistent(&g);
    for (unsigned long long k = 0; k < N; k++) {
        unsigned long long inst = 1000000 + k * 16, dict = 5000000 + k * 16;
        unsigned long long list = 9000000 + k * 16;
        int c = (int)(k % 3);

        if (c == 0) {
            assert_int_equal(ml_graph_find(&g, dict), ML_GRAPH_NONE);
            ASSERT_REFS(&g, inst, 20, 21, 10);
            assert_int_equal(g.size[idx(&g, inst)], 148);
            ASSERT_REFS(&g, list, inst, 777);
        } else if (c == 1) {
            ASSERT_REFS(&g, inst, dict, 11);
            ASSERT_REFS(&g, dict, 20, 21);
            assert_int_equal(g.size[idx(&g, inst)], 48);
            ASSERT_REFS(&g, list, inst, dict, 777);
        } else {
            ASSERT_REFS(&g, inst, 12);
            ASSERT_REFS(&g, dict, 20, 21);
            assert_int_equal(g.size[idx(&g, inst)], 48);
            ASSERT_REFS(&g, list, inst, 777);
        }
        assert_string_equal(ml_graph_type_name(&g, ml_graph_type(&g, idx(&g, list))),
                            "list");
    }
    /* Referrers of the shared str: every instance that took a dict, and
     * every dict left. */
    assert_int_equal(ml_graph_compute_parents(&g), 0);
    {
        uint32_t s = idx(&g, 20);

        assert_int_equal(g.par_start[s + 1] - g.par_start[s], N);
    }
    ml_graph_free(&g);
}

static void
test_collapse_unfinished_and_empty_graphs(void **state)
{
    static const char *const nodicts[] = {
        "{\"address\": 1, \"type\": \"list\", \"size\": 64, \"refs\": [2]}",
        "{\"address\": 2, \"type\": \"str\", \"size\": 50, \"refs\": []}",
        NULL,
    };
    static const char *const none[] = { NULL };
    struct ml_graph g;
    struct ml_dumpparser p;
    struct ml_dumpline l;
    const char *line = "{\"address\": 1, \"type\": \"dict\", \"size\": 64, \"refs\": []}";

    (void)state;
    ml_graph_init(&g);
    ml_dumpparser_init(&p);
    assert_int_equal(ml_dumpline_parse(&p, line, strlen(line), &l), 0);
    assert_int_equal(ml_graph_add(&g, &l), 0);
    assert_int_equal(ml_graph_collapse_instance_dicts(&g), -EINVAL);
    ml_dumpparser_free(&p);
    ml_graph_free(&g);

    build(&g, none);
    assert_int_equal(ml_graph_collapse_instance_dicts(&g), 0);
    assert_int_equal(g.n, 0);
    ml_graph_free(&g);

    build(&g, nodicts);
    assert_int_equal(ml_graph_collapse_instance_dicts(&g), 0);
    ASSERT_REFS(&g, 1, 2);
    ml_graph_free(&g);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_collapse_folds_a_private_dict_into_its_instance),
        cmocka_unit_test(test_collapse_keeps_a_dict_with_two_referrers),
        cmocka_unit_test(test_collapse_leaves_module_type_and_function_dicts),
        cmocka_unit_test(test_collapse_folds_a_module_dict_nothing_else_holds),
        cmocka_unit_test(test_collapse_leaves_inline_values_instances_as_they_are),
        cmocka_unit_test(test_collapse_takes_313_materialised_dicts_without_repeating_values),
        cmocka_unit_test(test_collapse_keeps_dangling_refs),
        cmocka_unit_test(test_collapse_many_instances_then_every_address_is_found),
        cmocka_unit_test(test_collapse_unfinished_and_empty_graphs),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
