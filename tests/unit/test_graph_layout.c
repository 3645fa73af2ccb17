/* SPDX-License-Identifier: MIT
 *
 * test_graph_layout.c -- the compact arrays of common/graph.c: 5-byte
 * addresses and their whole-address fallback, 16-bit sizes and lens and
 * their side table (common/graph_wide.c), one string offset for value and name, ml_graph_append (the
 * loader's two halves), the two-thread resolution of many refs, and
 * 16-bit type ids with their 32-bit fallback.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collapse.h"
#include "graph.h"
#include "ml-common.h"

static void
add(struct ml_graph *g, struct ml_dumpparser *p, const char *line)
{
    struct ml_dumpline l;

    assert_int_equal(ml_dumpline_parse(p, line, strlen(line), &l), 0);
    assert_int_equal(l.kind, ML_LINE_OBJECT);
    assert_int_equal(ml_graph_add(g, &l), 0);
}

/* A deterministic generator (xorshift). */
static uint64_t
rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Line k of a random dump whose addresses are addr[0..n): refs to others,
 * sometimes to an address no line has; a repeat of an earlier address
 * now and then. */
static void
make_line(char *buf, size_t cap, const uint64_t *addr, size_t n, size_t k,
          uint64_t *seed)
{
    int o;
    unsigned nr = (unsigned)(rnd(seed) % 4);
    uint64_t a = addr[k];

    if (k > 10 && rnd(seed) % 50 == 0)
        a = addr[rnd(seed) % k];            /* a repeated address */
    o = snprintf(buf, cap, "{\"address\": %" PRIu64 ", \"type\": \"t%u\", "
                 "\"size\": %" PRIu64 ", ", a, (unsigned)(rnd(seed) % 7),
                 rnd(seed) % 3 == 0 ? (uint64_t)1 << 33 : k);
    if (k % 5 == 0)
        o += snprintf(buf + o, cap - (size_t)o, "\"name\": \"n%zu\", ", k);
    if (k % 3 == 0)
        o += snprintf(buf + o, cap - (size_t)o, "\"value\": \"v\\u0000%zu\", ", k);
    o += snprintf(buf + o, cap - (size_t)o, "\"refs\": [");
    for (unsigned r = 0; r < nr; r++) {
        uint64_t t = rnd(seed) % 20 == 0 ? 0xdead0000u + k : addr[rnd(seed) % n];

        o += snprintf(buf + o, cap - (size_t)o, "%s%" PRIu64, r ? ", " : "", t);
    }
    snprintf(buf + o, cap - (size_t)o, "]}");
}

/* Every field, ref and count of a and b are the same. */
static void
assert_same_graph(const struct ml_graph *a, const struct ml_graph *b)
{
    assert_int_equal(a->n, b->n);
    assert_int_equal(a->nrefs, b->nrefs);
    assert_int_equal(a->ndangling, b->ndangling);
    assert_int_equal(a->nduplicates, b->nduplicates);
    for (size_t i = 0; i < a->n; i++) {
        const char *na = ml_graph_name(a, i), *nb = ml_graph_name(b, i);

        assert_true(ml_graph_addr(a, i) == ml_graph_addr(b, i));
        assert_string_equal(ml_graph_type_name(a, ml_graph_type(a, i)),
                            ml_graph_type_name(b, ml_graph_type(b, i)));
        assert_true(ml_graph_size(a, i) == ml_graph_size(b, i));
        assert_true(ml_graph_len(a, i) == ml_graph_len(b, i));
        assert_int_equal(ml_graph_vkind(a, i), ml_graph_vkind(b, i));
        assert_int_equal(ml_graph_value_len(a, i), ml_graph_value_len(b, i));
        if (ml_graph_value(a, i) != NULL)
            assert_memory_equal(ml_graph_value(a, i), ml_graph_value(b, i),
                                 ml_graph_value_len(a, i));
        assert_true((na == NULL) == (nb == NULL));
        if (na != NULL)
            assert_string_equal(na, nb);
        assert_int_equal(a->ref_start[i + 1], b->ref_start[i + 1]);
    }
    for (uint64_t k = 0; k < a->nrefs; k++) {
        assert_int_equal(a->refs[k], b->refs[k]);
        assert_true(ml_graph_ref_addr(a, a->refs[k])
                    == ml_graph_ref_addr(b, b->refs[k]));
    }
}

/* n lines over addresses spread on nseg high halves: into one graph, and
 * into two joined by ml_graph_append after line cut. */
static void
check_append(size_t n, unsigned nseg, size_t cut)
{
    struct ml_graph one, g1, g2;
    struct ml_dumpparser p;
    uint64_t *addr = malloc(n * sizeof(*addr));
    uint64_t seed = 88172645463325252ull;
    char line[512];

    assert_non_null(addr);
    for (size_t k = 0; k < n; k++)
        addr[k] = ((uint64_t)(k % nseg) << 32) + 16 * k + 8;
    ml_graph_init(&one);
    ml_graph_init(&g1);
    ml_graph_init(&g2);
    ml_dumpparser_init(&p);
    for (size_t k = 0; k < n; k++) {
        uint64_t s2 = seed;

        make_line(line, sizeof(line), addr, n, k, &seed);
        add(&one, &p, line);
        make_line(line, sizeof(line), addr, n, k, &s2);
        add(k < cut ? &g1 : &g2, &p, line);
    }
    assert_int_equal(ml_graph_append(&g1, &g2), 0);
    assert_int_equal(ml_graph_finish(&one), 0);
    assert_int_equal(ml_graph_finish(&g1), 0);
    assert_same_graph(&one, &g1);
    /* The graph against the lines: every first address is found. */
    for (size_t k = 0; k < n; k++) {
        uint32_t i = ml_graph_find(&one, addr[k]);

        if (i != ML_GRAPH_NONE)
            assert_true(ml_graph_addr(&one, i) == addr[k]);
    }
    assert_true(one.nduplicates > 0);
    assert_true(one.ndangling > 0);
    ml_graph_free(&one);
    ml_graph_free(&g1);
    ml_graph_free(&g2);
    ml_dumpparser_free(&p);
    free(addr);
}

static void
test_graph_append_gives_the_graph_of_all_lines_in_order(void **state)
{
    (void)state;
    check_append(2000, 3, 700);
    check_append(2000, 3, 0);
    check_append(2000, 3, 2000);
}

static void
test_graph_keeps_addresses_whole_past_255_high_halves(void **state)
{
    (void)state;
    check_append(3000, 1000, 1500);     /* both halves past 255 */
    check_append(3000, 400, 2500);      /* g1 within, g2 past */
    check_append(3000, 300, 100);       /* only the second has most */
}

static void
test_graph_resolves_many_refs_on_two_threads(void **state)
{
    const size_t n = 60000;             /* ~90000 refs: past the threaded minimum */

    (void)state;
    check_append(n, 5, n / 3);
}

static void
test_graph_sizes_of_4_gib_and_more_are_exact(void **state)
{
    static const uint64_t sizes[] = {
        0, 1, UINT32_MAX - 1, UINT32_MAX, (uint64_t)UINT32_MAX + 1,
        (uint64_t)1 << 40, UINT64_MAX,
    };
    const size_t ns = sizeof(sizes) / sizeof(sizes[0]);
    struct ml_graph g;
    struct ml_dumpparser p;
    struct ml_type_summary s[1];
    char line[256];
    uint64_t total = 0;

    (void)state;
    ml_graph_init(&g);
    ml_dumpparser_init(&p);
    for (size_t k = 0; k < ns; k++) {
        snprintf(line, sizeof(line), "{\"address\": %zu, \"type\": \"x\", "
                 "\"size\": %" PRIu64 ", \"refs\": []}", 100 + k, sizes[k]);
        add(&g, &p, line);
        if (k + 1 < ns)
            total += sizes[k];
    }
    assert_int_equal(ml_graph_finish(&g), 0);
    for (size_t k = 0; k < ns; k++)
        assert_true(ml_graph_size(&g, ml_graph_find(&g, 100 + k)) == sizes[k]);
    /* A size changed in place (collapse adds a dict's). */
    assert_int_equal(ml_graph_set_size(&g, 4, 5), 0);
    assert_true(ml_graph_size(&g, 4) == 5);
    assert_int_equal(ml_graph_set_size(&g, 1, (uint64_t)1 << 50), 0);
    assert_true(ml_graph_size(&g, 1) == (uint64_t)1 << 50);
    assert_int_equal(ml_graph_set_size(&g, 1, (uint64_t)1 << 51), 0);
    assert_true(ml_graph_size(&g, 1) == (uint64_t)1 << 51);
    assert_int_equal(ml_graph_set_size(&g, 6, 7), 0);
    ml_graph_summarize(&g, NULL, s);
    total = total - sizes[4] + 5 - sizes[1] + ((uint64_t)1 << 51) + 7;
    assert_true(s[0].size == total);
    assert_true(s[0].max_size == (uint64_t)1 << 51);
    assert_int_equal(s[0].max_index, 1);
    ml_graph_free(&g);
    ml_dumpparser_free(&p);
}

static void
test_graph_sizes_of_65535_and_more_round_trip_and_change(void **state)
{
    /* Every other object past 16 bits, addresses scrambled; then sizes
     * changed after finish, many new big ones (the side table's tail is
     * sorted in several times), some big -> small -> big again (one entry
     * an address, the last value read). */
    enum { N = 4000 };
    struct ml_graph g;
    struct ml_dumpparser p;
    struct ml_type_summary s[1];
    uint64_t addr[N], want[N], total = 0;
    char line[256];

    (void)state;
    ml_graph_init(&g);
    ml_dumpparser_init(&p);
    for (size_t k = 0; k < N; k++) {
        addr[k] = 0x7f0000000000ull + ((k * 2654435761u) % 1000003u) * 16;
        want[k] = k % 2 ? 65535 + k * 1031 : k * 16;
        snprintf(line, sizeof(line), "{\"address\": %" PRIu64 ", \"type\": "
                 "\"x\", \"size\": %" PRIu64 ", \"refs\": []}",
                 addr[k], want[k]);
        add(&g, &p, line);
    }
    assert_int_equal(ml_graph_finish(&g), 0);
    for (size_t k = 0; k < N; k++)
        assert_true(ml_graph_size(&g, k) == want[k]);
    for (size_t k = 0; k < N; k++) {
        if (k % 3 == 0) {
            /* small -> big, big -> bigger */
            want[k] = want[k] + 65536 + k;
            assert_int_equal(ml_graph_set_size(&g, k, want[k]), 0);
        } else if (k % 3 == 1) {
            assert_int_equal(ml_graph_set_size(&g, k, 65534), 0);
            assert_true(ml_graph_size(&g, k) == 65534);
            want[k] = (uint64_t)1 << 33 | k;
            assert_int_equal(ml_graph_set_size(&g, k, want[k]), 0);
        }
        assert_true(ml_graph_size(&g, k) == want[k]);
    }
    for (size_t k = 0; k < N; k++) {
        assert_true(ml_graph_size(&g, k) == want[k]);
        total += want[k];
    }
    /* One entry an address: N/2 at load, then the small ones made big
     * (even k with k % 3 == 0 or 1: k % 6 == 0 or 4). */
    assert_int_equal(g.bigsize.n, N / 2 + (N + 5) / 6 + (N + 1) / 6);
    ml_graph_summarize(&g, NULL, s);
    assert_true(s[0].size == total);
    ml_graph_free(&g);
    ml_dumpparser_free(&p);
}

static void
test_graph_collapse_past_65535_bytes_keeps_the_sum(void **state)
{
    /* 40000 + 40000: neither past 16 bits, their sum is (the room
     * collapse reserves first must count it). */
    static const char *const lines[] = {
        "{\"address\": 1, \"type\": \"type\", \"size\": 1000, \"name\": \"Big\", \"refs\": []}",
        "{\"address\": 2, \"type\": \"Big\", \"size\": 40000, \"refs\": [3, 1]}",
        "{\"address\": 3, \"type\": \"dict\", \"size\": 40000, \"len\": 1, \"refs\": [4, 4]}",
        "{\"address\": 4, \"type\": \"str\", \"size\": 50, \"len\": 1, \"value\": \"a\", \"refs\": []}",
        "{\"address\": 5, \"type\": \"Big\", \"size\": 70000, \"refs\": [6, 1]}",
        "{\"address\": 6, \"type\": \"dict\", \"size\": 100000, \"len\": 1, \"refs\": [4, 4]}",
    };
    struct ml_graph g;
    struct ml_dumpparser p;

    (void)state;
    ml_graph_init(&g);
    ml_dumpparser_init(&p);
    for (size_t k = 0; k < sizeof(lines) / sizeof(lines[0]); k++)
        add(&g, &p, lines[k]);
    assert_int_equal(ml_graph_finish(&g), 0);
    assert_int_equal(ml_graph_collapse_instance_dicts(&g), 2);
    assert_true(ml_graph_size(&g, ml_graph_find(&g, 2)) == 80000);
    assert_true(ml_graph_size(&g, ml_graph_find(&g, 5)) == 170000);
    assert_true(ml_graph_size(&g, ml_graph_find(&g, 4)) == 50);
    assert_int_equal(ml_graph_find(&g, 3), ML_GRAPH_NONE);
    ml_graph_free(&g);
    ml_dumpparser_free(&p);
}

/* The len of line k of the lens test: no len every 7th line, else around
 * the 16-bit limit and far above it. */
static int
len_of(size_t k, uint64_t *len)
{
    static const uint64_t edge[] = {
        0, 1, 65533, 65534, 65535, 65536, UINT32_MAX, (uint64_t)1 << 40,
    };

    if (k % 7 == 6)
        return 0;
    *len = k < 8 ? edge[k] : 65534 + k * 977;
    return 1;
}

static void
add_len_line(struct ml_graph *g, struct ml_dumpparser *p, uint64_t addr,
             size_t k)
{
    char line[256];
    uint64_t len = 0;

    if (len_of(k, &len))
        snprintf(line, sizeof(line), "{\"address\": %" PRIu64 ", \"type\": "
                 "\"list\", \"size\": 8, \"len\": %" PRIu64 ", \"refs\": []}",
                 addr, len);
    else
        snprintf(line, sizeof(line), "{\"address\": %" PRIu64 ", \"type\": "
                 "\"list\", \"size\": 8, \"refs\": []}", addr);
    add(g, p, line);
}

static void
assert_len(const struct ml_graph *g, size_t i, size_t k)
{
    uint64_t len = 0;

    if (len_of(k, &len))
        assert_true(ml_graph_len(g, i) == len);
    else
        assert_true(ml_graph_len(g, i) == ML_GRAPH_NOLEN);
}

static void
test_graph_lens_of_65534_and_more_round_trip(void **state)
{
    /* Addresses in a scrambled order, so that sorting the side table by
     * address is not the line order; two halves joined by append; a
     * repeated address whose later line has another big len (the first
     * line wins, before and after finish). */
    enum { N = 3000 };
    struct ml_graph g, h;
    struct ml_dumpparser p;
    uint64_t addr[N];
    size_t big = 0;

    (void)state;
    for (size_t k = 0; k < N; k++)
        addr[k] = 0x7f0000000000ull + ((k * 2654435761u) % 1000003u) * 16;
    ml_graph_init(&g);
    ml_graph_init(&h);
    ml_dumpparser_init(&p);
    for (size_t k = 0; k < N / 2; k++)
        add_len_line(&g, &p, addr[k], k);
    for (size_t k = N / 2; k < N; k++)
        add_len_line(&h, &p, addr[k], k);
    add_len_line(&h, &p, addr[9], 10);         /* repeats line 9 */
    assert_int_equal(ml_graph_append(&g, &h), 0);
    ml_graph_free(&h);
    /* Before finish: a linear search in line order (by address: the
     * repeat reads its first line's). */
    for (size_t k = 0; k < N; k++)
        assert_len(&g, k, k);
    assert_len(&g, N, 9);
    assert_int_equal(ml_graph_finish(&g), 0);
    assert_int_equal(g.n, N);
    assert_int_equal(g.nduplicates, 1);
    for (size_t k = 0; k < N; k++) {
        uint64_t len;

        assert_int_equal(ml_graph_find(&g, addr[k]), k);
        assert_len(&g, k, k);
        big += len_of(k, &len) && len >= 65534;
    }
    /* Only the big ones (and the repeat's) took a side entry. */
    assert_int_equal(g.biglen.n, big + 1);
    ml_graph_free(&g);
    ml_dumpparser_free(&p);
}

static void
test_graph_keeps_a_value_and_a_name_side_by_side(void **state)
{
    struct ml_graph g;
    struct ml_dumpparser p;
    uint32_t a, b, c, d;

    (void)state;
    ml_graph_init(&g);
    ml_dumpparser_init(&p);
    add(&g, &p, "{\"address\": 1, \"type\": \"x\", \"size\": 1, \"name\": \"nm\", \"value\": \"a\\u0000b\", \"refs\": []}");
    add(&g, &p, "{\"address\": 2, \"type\": \"x\", \"size\": 1, \"name\": \"only\", \"refs\": []}");
    add(&g, &p, "{\"address\": 3, \"type\": \"x\", \"size\": 1, \"value\": 12, \"refs\": []}");
    add(&g, &p, "{\"address\": 4, \"type\": \"x\", \"size\": 1, \"name\": \"\", \"value\": true, \"refs\": []}");
    assert_int_equal(ml_graph_finish(&g), 0);
    a = ml_graph_find(&g, 1);
    b = ml_graph_find(&g, 2);
    c = ml_graph_find(&g, 3);
    d = ml_graph_find(&g, 4);
    assert_int_equal(ml_graph_value_len(&g, a), 3);
    assert_memory_equal(ml_graph_value(&g, a), "a\0b", 3);
    assert_string_equal(ml_graph_name(&g, a), "nm");
    assert_null(ml_graph_value(&g, b));
    assert_string_equal(ml_graph_name(&g, b), "only");
    assert_string_equal(ml_graph_value(&g, c), "12");
    assert_null(ml_graph_name(&g, c));
    assert_int_equal(ml_graph_vkind(&g, d), ML_VAL_TRUE);
    assert_null(ml_graph_value(&g, d));
    assert_string_equal(ml_graph_name(&g, d), "");
    ml_graph_free(&g);
    ml_dumpparser_free(&p);
}

/* Two halves joined with distinct addresses (no repeat: the second
 * half's refs stay a segment of their own through finish), and then
 * lines added after the join (the segments made one again), against
 * the same lines in one graph. */
/* Line k's address over nseg high halves (never 8 mod 16). */
static size_t
seg_addr(size_t k, unsigned nseg)
{
    return ((size_t)(k % nseg) << 32) + 16 * k + 16;
}

static void
check_segments(size_t n, size_t cut, size_t after, unsigned nseg)
{
    struct ml_graph one, g1, g2;
    struct ml_dumpparser p;
    char line[200];

    ml_graph_init(&one);
    ml_graph_init(&g1);
    ml_graph_init(&g2);
    ml_dumpparser_init(&p);
    for (size_t k = 0; k < n; k++) {
        /* Refs back, forward and to an address no line defines. */
        snprintf(line, sizeof(line), "{\"address\": %zu, \"type\": \"t%zu\", "
                 "\"size\": 1, \"refs\": [%zu, %zu, %zu]}", seg_addr(k, nseg),
                 k % 3, seg_addr((k * 7) % n, nseg), seg_addr((k + 1) % n, nseg),
                 16 * (n + k % 5) + 24);
        add(&one, &p, line);
        if (k < n - after)
            add(k < cut ? &g1 : &g2, &p, line);
    }
    assert_int_equal(ml_graph_append(&g1, &g2), 0);
    if (cut > 0 && cut < n - after)
        assert_non_null(g1.raw_hi);
    for (size_t k = n - after; k < n; k++) {
        snprintf(line, sizeof(line), "{\"address\": %zu, \"type\": \"t%zu\", "
                 "\"size\": 1, \"refs\": [%zu, %zu, %zu]}", seg_addr(k, nseg),
                 k % 3, seg_addr((k * 7) % n, nseg), seg_addr((k + 1) % n, nseg),
                 16 * (n + k % 5) + 24);
        add(&g1, &p, line);
    }
    if (after > 0)
        assert_null(g1.raw_hi);
    assert_int_equal(ml_graph_finish(&one), 0);
    assert_int_equal(ml_graph_finish(&g1), 0);
    assert_int_equal(one.nduplicates, 0);
    assert_int_equal(one.ndangling, n);
    assert_same_graph(&one, &g1);
    /* Against the lines: each ref names the address written (the lines
     * after the owner are tried first, the index for the rest). */
    for (size_t k = 0; k < n; k++) {
        const uint32_t *r = one.refs + one.ref_start[k];

        assert_int_equal(one.ref_start[k + 1] - one.ref_start[k], 3);
        assert_true(ml_graph_ref_addr(&one, r[0]) == seg_addr((k * 7) % n, nseg));
        assert_true(ml_graph_ref_addr(&one, r[1]) == seg_addr((k + 1) % n, nseg));
        assert_int_equal(r[1], (k + 1) % n);
        assert_true(ml_graph_ref_addr(&one, r[2]) == 16 * (n + k % 5) + 24);
        assert_true(r[2] >= n);
    }
    ml_graph_free(&one);
    ml_graph_free(&g1);
    ml_graph_free(&g2);
    ml_dumpparser_free(&p);
}

static void
test_graph_resolves_the_second_half_refs_where_they_were_parsed(void **state)
{
    (void)state;
    check_segments(3000, 1000, 0, 1);
    check_segments(3000, 1000, 0, 300); /* whole addresses */
    check_segments(3000, 0, 0, 3);
    check_segments(3000, 3000, 0, 3);
    check_segments(60000, 25000, 0, 3);    /* each segment on a thread */
}

static void
test_graph_takes_lines_added_after_a_join(void **state)
{
    (void)state;
    check_segments(3000, 1000, 2, 3);
    check_segments(60000, 30000, 1, 3);
}

static void
test_graph_keeps_type_ids_past_65535_types(void **state)
{
    const size_t n = 75000;
    struct ml_graph one, g1, g2;
    struct ml_dumpparser p;
    char line[160], want[32];

    (void)state;
    ml_graph_init(&one);
    ml_graph_init(&g1);
    ml_graph_init(&g2);
    ml_dumpparser_init(&p);
    for (size_t k = 0; k < n; k++) {
        /* Seven objects in eight have a type of their own. */
        snprintf(line, sizeof(line), "{\"address\": %zu, \"type\": \"t%zu\", "
                 "\"size\": 1, \"refs\": [%zu]}", 16 * k + 16,
                 k % 8 ? k : (size_t)0, 16 * ((k * 7) % n) + 16);
        add(&one, &p, line);
        add(k < n / 2 ? &g1 : &g2, &p, line);
    }
    assert_int_equal(ml_graph_append(&g1, &g2), 0);
    assert_int_equal(ml_graph_finish(&one), 0);
    assert_int_equal(ml_graph_finish(&g1), 0);
    assert_int_equal(one.ntypes, n - n / 8 + 1);
    assert_non_null(one.type32);
    assert_same_graph(&one, &g1);
    for (size_t k = 0; k < n; k++) {
        snprintf(want, sizeof(want), "t%zu", k % 8 ? k : (size_t)0);
        assert_string_equal(ml_graph_type_name(&one, ml_graph_type(&one, k)),
                            want);
    }
    ml_graph_free(&one);
    ml_graph_free(&g1);
    ml_graph_free(&g2);
    ml_dumpparser_free(&p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_graph_append_gives_the_graph_of_all_lines_in_order),
        cmocka_unit_test(test_graph_resolves_the_second_half_refs_where_they_were_parsed),
        cmocka_unit_test(test_graph_takes_lines_added_after_a_join),
        cmocka_unit_test(test_graph_keeps_addresses_whole_past_255_high_halves),
        cmocka_unit_test(test_graph_resolves_many_refs_on_two_threads),
        cmocka_unit_test(test_graph_sizes_of_4_gib_and_more_are_exact),
        cmocka_unit_test(test_graph_lens_of_65534_and_more_round_trip),
        cmocka_unit_test(test_graph_sizes_of_65535_and_more_round_trip_and_change),
        cmocka_unit_test(test_graph_collapse_past_65535_bytes_keeps_the_sum),
        cmocka_unit_test(test_graph_keeps_a_value_and_a_name_side_by_side),
        cmocka_unit_test(test_graph_keeps_type_ids_past_65535_types),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
