/* SPDX-License-Identifier: MIT
 *
 * test_accum.c -- cmocka tests for common/accum.c, the accumulation points
 * of new objects behind diff's groups: nested new structures under one old
 * list, the nearest of two old ancestors, new roots, lone new roots and
 * new cycles, a long chain (no recursion), and a random graph against a
 * brute-force search.
 */
#define _GNU_SOURCE 1

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "accum.h"
#include "test_rng.h"

#define NONE ML_ACCUM_NONE

/* A graph of up to MAXN objects: refs as (parent, child) pairs. */
#define MAXN 4096
#define MAXE 16384

struct g {
    size_t n, ne;
    uint8_t isnew[MAXN], referred[MAXN];
    uint32_t e[MAXE][2];
    uint32_t anchor[MAXN], depth[MAXN];
};

static struct g G;

static void
reset(size_t n)
{
    memset(&G, 0, sizeof G);
    G.n = n;
}

static void
ref(uint32_t from, uint32_t to)
{
    assert_true(G.ne < MAXE);
    G.e[G.ne][0] = from;
    G.e[G.ne++][1] = to;
    G.referred[to] = 1;
}

/* The caller's allocator (the store's: its scratch files), counted:
 * every search takes its arrays from it and gives them all back. */
static int allocs, live;

static void *
count_alloc(size_t len)
{
    allocs++;
    live++;
    return calloc(1, len);
}

static void
count_release(void *p)
{
    if (p != NULL)
        live--;
    free(p);
}

/* What a caller does: the new-to-new edges, and each new object's first
 * old referrer (in the order the refs were given), then the search. */
static void
search(void)
{
    static uint32_t edges[MAXE][2];
    size_t k = 0;

    for (size_t i = 0; i < G.n; i++)
        G.anchor[i] = NONE;
    for (size_t i = 0; i < G.ne; i++) {
        uint32_t p = G.e[i][0], c = G.e[i][1];

        if (!G.isnew[c])
            continue;
        if (!G.isnew[p]) {
            if (G.anchor[c] == NONE)
                G.anchor[c] = p;
        } else {
            edges[k][0] = p;
            edges[k++][1] = c;
        }
    }
    struct ml_accum a = {
        .n = G.n, .isnew = G.isnew, .referred = G.referred,
        .edge = (const uint32_t (*)[2])edges, .nedge = k,
        .anchor = G.anchor, .depth = G.depth,
        .alloc = count_alloc, .release = count_release,
    };
    allocs = live = 0;
    assert_int_equal(ml_accum_search(&a), 0);
    assert_int_equal(allocs, 3);
    assert_int_equal(live, 0);
}

static void
test_accum_nested_new_structures_hang_off_one_old_list(void **state)
{
    /* module 0 -> list 1 (old); list -> Node -> Block -> bytes, 500 times */
    (void)state;
    reset(2 + 3 * 500);
    ref(0, 1);
    for (uint32_t k = 0; k < 500; k++) {
        uint32_t node = 2 + 3 * k;

        G.isnew[node] = G.isnew[node + 1] = G.isnew[node + 2] = 1;
        ref(1, node);
        ref(node, node + 1);
        ref(node + 1, node + 2);
    }
    search();
    for (uint32_t k = 0; k < 500; k++)
        for (uint32_t j = 0; j < 3; j++) {
            assert_int_equal(G.anchor[2 + 3 * k + j], 1);
            assert_int_equal(G.depth[2 + 3 * k + j], j + 1);
        }
    assert_int_equal(G.anchor[0], NONE);        /* old ones have none */
    assert_int_equal(G.anchor[1], NONE);
}

static void
test_accum_takes_the_nearest_old_ancestor(void **state)
{
    /* old A(0) -> new X(2) -> new Y(3) -> new Z(4); old B(1) -> Z: Z hangs
     * off B (1 hop), not A (3 hops); a new W(5) under both X and Z, at
     * 2 hops from each: the first reached, A */
    (void)state;
    reset(6);
    for (int i = 2; i < 6; i++)
        G.isnew[i] = 1;
    ref(0, 2);
    ref(2, 3);
    ref(3, 4);
    ref(1, 4);
    ref(2, 5);
    ref(4, 5);
    search();
    assert_int_equal(G.anchor[2], 0);
    assert_int_equal(G.anchor[3], 0);
    assert_int_equal(G.depth[3], 2);
    assert_int_equal(G.anchor[4], 1);
    assert_int_equal(G.depth[4], 1);
    assert_int_equal(G.depth[5], 2);
    assert_true(G.anchor[5] == 0 || G.anchor[5] == 1);
}

static void
test_accum_new_roots_lone_roots_and_new_cycles(void **state)
{
    /* new module M(0) nothing refers to -> new dict(1) -> new str(2);
     * a lone new object L(3); new P(4) <-> Q(5), nothing else above;
     * new R(6) under Q */
    (void)state;
    reset(7);
    for (int i = 0; i < 7; i++)
        G.isnew[i] = 1;
    ref(0, 1);
    ref(1, 2);
    ref(4, 5);
    ref(5, 4);
    ref(5, 6);
    search();
    assert_int_equal(G.anchor[0], 0);
    assert_int_equal(G.depth[0], 0);
    assert_int_equal(G.anchor[1], 0);
    assert_int_equal(G.anchor[2], 0);
    assert_int_equal(G.depth[2], 2);
    assert_int_equal(G.anchor[3], NONE);        /* lone: held by nothing older */
    assert_int_equal(G.anchor[4], NONE);        /* garbage cycle */
    assert_int_equal(G.anchor[5], NONE);
    assert_int_equal(G.anchor[6], NONE);
}

static void
test_accum_long_chain_needs_no_recursion(void **state)
{
    /* old 0 -> new 1 -> new 2 -> ... -> new MAXN - 1 */
    (void)state;
    reset(MAXN);
    for (uint32_t i = 1; i < MAXN; i++) {
        G.isnew[i] = 1;
        ref(i - 1, i);
    }
    search();
    assert_int_equal(G.anchor[MAXN - 1], 0);
    assert_int_equal(G.depth[MAXN - 1], MAXN - 1);
}

static void
test_accum_matches_brute_force_on_random_graphs(void **state)
{
    static uint32_t dist[MAXN];

    (void)state;
    for (int round = 0; round < 20; round++) {
        size_t n = 300;

        uint64_t st = (uint64_t)round + 1;

        reset(n);
        for (size_t i = 0; i < n; i++)
            G.isnew[i] = rng_below(&st, 3) != 0;
        for (size_t i = 0; i < 3 * n; i++) {
            uint32_t p = (uint32_t)rng_below(&st, n);

            ref(p, (uint32_t)rng_below(&st, n));
        }
        search();
        /* brute force: the distance of each new object from the nearest
         * old object, through new ones only (Bellman-Ford style) */
        for (size_t i = 0; i < n; i++)
            dist[i] = NONE;
        for (int changed = 1; changed;) {
            changed = 0;
            for (size_t k = 0; k < G.ne; k++) {
                uint32_t p = G.e[k][0], c = G.e[k][1];
                uint32_t d = !G.isnew[p] ? 1 : dist[p] == NONE ? NONE
                                                               : dist[p] + 1;

                if (G.isnew[c] && d < dist[c]) {
                    dist[c] = d;
                    changed = 1;
                }
            }
        }
        for (size_t i = 0; i < n; i++) {
            if (!G.isnew[i])
                continue;
            if (dist[i] == NONE) {      /* no old ancestor: none, or new */
                assert_true(G.anchor[i] == NONE || G.isnew[G.anchor[i]]);
                continue;
            }
            assert_int_equal(G.depth[i], dist[i]);
            assert_false(G.isnew[G.anchor[i]]);
        }
    }
}

static void
test_accum_refuses_what_uint32_cannot_index(void **state)
{
    struct ml_accum a = { .n = UINT32_MAX };

    (void)state;
    assert_int_equal(ml_accum_search(&a), -E2BIG);
}

/* The rule of "new": an old object only new objects refer to is new (a
 * freed one's address reused), and what was anchored at it hangs off it
 * through an edge; an old object with an old referrer, or none, stays. */
static int nreused;
static uint32_t reused_seen[8];

static int
on_reused(void *ctx, uint32_t i)
{
    (void)ctx;
    reused_seen[nreused++] = i;
    return 0;
}

static void
test_accum_rule_of_new_turns_reused_addresses_new(void **state)
{
    /* 0 old module; 1 old list (held by 0); 2 new Node (held by 1);
     * 3 "old" dict held only by new 2: reused; 4 new, held by 3 only;
     * 5 old, held by nothing; 6 old, held by old 5 and new 2 */
    uint8_t st[7] = { ML_ACCUM_OLD, ML_ACCUM_OLD, ML_ACCUM_NEW,
                      ML_ACCUM_OLD, ML_ACCUM_NEW, ML_ACCUM_OLD, ML_ACCUM_OLD };
    uint8_t referred[7] = { 0 };
    uint32_t anchor[7], depth[7] = { 0 };
    const uint32_t p1[] = { 0 }, p2[] = { 1 }, p3[] = { 2 }, p4[] = { 3 },
                   p6[] = { 2, 5, 99 };
    struct ml_accum_side s = { .n = 7, .state = st, .referred = referred,
                               .anchor = anchor, .depth = depth };

    (void)state;
    for (int i = 0; i < 7; i++)
        anchor[i] = NONE;
    assert_int_equal(ml_accum_referrers(&s, 0, NULL, 0), 0);
    assert_int_equal(ml_accum_referrers(&s, 1, p1, 1), 0);
    assert_int_equal(ml_accum_referrers(&s, 2, p2, 1), 0);
    /* 4 before 3: anchored at 3 while 3 still looks old */
    assert_int_equal(ml_accum_referrers(&s, 4, p4, 1), 0);
    assert_int_equal(ml_accum_referrers(&s, 3, p3, 1), 0);
    assert_int_equal(ml_accum_referrers(&s, 5, NULL, 0), 0);
    assert_int_equal(ml_accum_referrers(&s, 6, p6, 3), 0);
    assert_int_equal(ml_accum_referrers(&s, 7, p1, 1), 0);  /* past n */
    assert_int_equal(st[3], ML_ACCUM_REUSED);
    assert_int_equal(anchor[2], 1);
    assert_int_equal(depth[2], 1);
    assert_int_equal(anchor[4], 3);         /* until settled */
    nreused = 0;
    assert_int_equal(ml_accum_settle(&s, on_reused, NULL), 0);
    assert_int_equal(nreused, 1);
    assert_int_equal(reused_seen[0], 3);
    assert_int_equal(st[3], ML_ACCUM_NEW);
    assert_int_equal(anchor[4], NONE);
    for (int i = 0; i < 7; i++)
        if (i != 2 && i != 3 && i != 4)
            assert_int_equal(st[i], ML_ACCUM_OLD);
    /* edges: 2 -> 3 (3 was reused when read), 3 -> 4 (settled) */
    assert_int_equal(s.nedge, 2);
    assert_int_equal(s.edge[0][0], 2);
    assert_int_equal(s.edge[0][1], 3);
    assert_int_equal(s.edge[1][0], 3);
    assert_int_equal(s.edge[1][1], 4);
    assert_true(referred[3] && referred[4] && referred[2]);
    struct ml_accum a = { .n = 7, .isnew = st, .referred = referred,
                          .edge = (const uint32_t (*)[2])s.edge,
                          .nedge = s.nedge, .anchor = anchor, .depth = depth };
    assert_int_equal(ml_accum_search(&a), 0);
    assert_int_equal(anchor[3], 1);
    assert_int_equal(anchor[4], 1);
    assert_int_equal(depth[4], 3);
    free(s.edge);
}

/* The grouping against a brute force: random rows, summed per (anchor,
 * type), groups by anchor, both orders biggest first. */
static void
test_accum_group_matches_brute_force(void **state)
{
    enum { NR = 3000, NA = 40, NT = 7 };
    static struct ml_accum_row rows[NR];
    uint64_t cnt[NA + 1][NT], byt[NA + 1][NT], r = 5;
    uint32_t mind[NA + 1][NT], maxd[NA + 1];
    struct ml_accum_group *g;
    size_t nr = NR, ng;

    (void)state;
    memset(cnt, 0, sizeof cnt);
    memset(byt, 0, sizeof byt);
    memset(maxd, 0, sizeof maxd);
    for (int a = 0; a <= NA; a++)
        for (int t = 0; t < NT; t++)
            mind[a][t] = UINT32_MAX;
    for (uint32_t i = 0; i < NR; i++) {
        uint32_t a = (uint32_t)(rng_next(&r) % (NA + 1));
        uint32_t t = (uint32_t)(rng_next(&r) % NT);
        uint32_t d = (uint32_t)(rng_next(&r) % 9);
        uint64_t b = 16 + rng_next(&r) % 5000;

        rows[i] = (struct ml_accum_row){ a == NA ? NONE : a, t, d, i, 1, b };
        cnt[a][t]++;
        byt[a][t] += b;
        if (d < mind[a][t])
            mind[a][t] = d;
    }
    assert_int_equal(ml_accum_group(rows, &nr, &g, &ng), 0);
    size_t want_rows = 0, want_groups = 0;
    for (int a = 0; a <= NA; a++) {
        int any = 0;

        for (int t = 0; t < NT; t++)
            if (cnt[a][t]) {
                want_rows++;
                any = 1;
                if (mind[a][t] > maxd[a])
                    maxd[a] = mind[a][t];
            }
        want_groups += any;
    }
    assert_int_equal(nr, want_rows);
    assert_int_equal(ng, want_groups);
    for (size_t k = 0; k < ng; k++) {
        const struct ml_accum_group *x = &g[k];
        int a = x->anchor == NONE ? NA : (int)x->anchor;
        uint64_t c = 0, b = 0;

        if (k > 0)
            assert_true(g[k - 1].bytes >= x->bytes);
        for (size_t j = 0; j < x->n; j++) {
            const struct ml_accum_row *w = &rows[x->first + j];

            assert_int_equal(w->anchor, x->anchor);
            assert_int_equal(w->count, cnt[a][w->type]);
            assert_int_equal(w->bytes, byt[a][w->type]);
            assert_int_equal(w->depth, mind[a][w->type]);
            if (j > 0)
                assert_true(rows[x->first + j - 1].bytes >= w->bytes);
            c += w->count;
            b += w->bytes;
        }
        assert_int_equal(x->count, c);
        assert_int_equal(x->bytes, b);
        assert_int_equal(x->depth, maxd[a]);
    }
    free(g);
    nr = 0;
    assert_int_equal(ml_accum_group(rows, &nr, &g, &ng), 0);
    assert_null(g);
    assert_int_equal(ng, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accum_nested_new_structures_hang_off_one_old_list),
        cmocka_unit_test(test_accum_takes_the_nearest_old_ancestor),
        cmocka_unit_test(test_accum_new_roots_lone_roots_and_new_cycles),
        cmocka_unit_test(test_accum_long_chain_needs_no_recursion),
        cmocka_unit_test(test_accum_matches_brute_force_on_random_graphs),
        cmocka_unit_test(test_accum_refuses_what_uint32_cannot_index),
        cmocka_unit_test(test_accum_rule_of_new_turns_reused_addresses_new),
        cmocka_unit_test(test_accum_group_matches_brute_force),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
