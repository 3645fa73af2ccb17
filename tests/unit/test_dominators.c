/* SPDX-License-Identifier: MIT
 *
 * test_dominators.c -- dominators and retained sizes (common/dominators.c)
 * against a brute-force oracle: x dominates y iff y is unreachable from
 * the virtual root once x is removed.  Random graphs of every density
 * with cycles, self-loops, multi-edges, dangling refs and unreachable
 * parts, and hand-made ones.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dominators.h"
#include "test_rng.h"

#define MAXN 48

/* A test graph: edge lists, turned into the two CSRs. */
struct tg {
    size_t n, ne;
    uint32_t src[4096], dst[4096];
    uint64_t size[MAXN];
    uint32_t type[MAXN];
    uint8_t root[MAXN];
    uint32_t succ_start[MAXN + 1], succ[4096];
    uint32_t pred_start[MAXN + 1], pred[4096];
};

static void
edge(struct tg *g, uint32_t a, uint32_t b)
{
    assert_true(g->ne < 4096);
    g->src[g->ne] = a;
    g->dst[g->ne++] = b;
}

static int
is_root(void *arg, uint32_t v)
{
    return ((struct tg *)arg)->root[v];
}

/* CSRs from the edge list; preds leave dangling targets out. */
static void
build(struct tg *g, struct ml_dom_input *in)
{
    size_t k = 0, p = 0;

    for (size_t v = 0; v < g->n; v++) {
        g->succ_start[v] = (uint32_t)k;
        for (size_t e = 0; e < g->ne; e++)
            if (g->src[e] == v)
                g->succ[k++] = g->dst[e];
        g->pred_start[v] = (uint32_t)p;
        for (size_t e = 0; e < g->ne; e++)
            if (g->dst[e] == v)
                g->pred[p++] = g->src[e];
    }
    g->succ_start[g->n] = (uint32_t)k;
    g->pred_start[g->n] = (uint32_t)p;
    memset(in, 0, sizeof(*in));
    in->n = g->n;
    in->succ_start = g->succ_start;
    in->succ = g->succ;
    in->pred_start = g->pred_start;
    in->pred = g->pred;
    in->size = g->size;
    in->is_root = is_root;
    in->arg = g;
    in->type = g->type;
    in->ntypes = 4;
}

/* Nodes reachable from the root set (roots[v]), not entering node skip. */
static void
reach(const struct tg *g, const uint8_t *roots, size_t skip, uint8_t *seen)
{
    uint32_t stk[MAXN];
    size_t sp = 0;

    memset(seen, 0, MAXN);
    for (size_t v = 0; v < g->n; v++)
        if (roots[v] && v != skip) {
            seen[v] = 1;
            stk[sp++] = (uint32_t)v;
        }
    while (sp > 0) {
        uint32_t x = stk[--sp];

        for (size_t e = 0; e < g->ne; e++)
            if (g->src[e] == x && g->dst[e] < g->n && g->dst[e] != skip
                    && !seen[g->dst[e]]) {
                seen[g->dst[e]] = 1;
                stk[sp++] = g->dst[e];
            }
    }
}

/* Does the dominator tree d make x a dominator of y (x != y)? */
static int
tree_dominates(const struct ml_dom *d, uint32_t x, uint32_t y)
{
    for (uint32_t a = d->idom[y]; a != ML_DOM_ROOT; a = d->idom[a])
        if (a == x)
            return 1;
    return 0;
}

/* Checks d against the oracle on g. */
static void
check(struct tg *g, const struct ml_dom *d)
{
    size_t n = g->n;
    uint8_t roots[MAXN] = { 0 }, seen[MAXN], left[MAXN];
    static uint8_t r[MAXN][MAXN], dom[MAXN][MAXN];
    uint64_t total = 0, sum = 0, tret[4] = { 0 }, ttop[4] = { 0 };

    /* The proper roots: nothing refers to them, or is_root. */
    for (size_t v = 0; v < n; v++) {
        int referred = 0;

        for (size_t e = 0; e < g->ne; e++)
            referred |= g->dst[e] == v;
        roots[v] = !referred || g->root[v];
    }
    reach(g, roots, SIZE_MAX, seen);
    /* Leftovers: each source component of what is unreached must have
     * exactly one node right under the root, its lowest id: the pick. */
    for (size_t v = 0; v < n; v++) {
        uint8_t one[MAXN] = { 0 };

        left[v] = !seen[v];
        one[v] = 1;
        reach(g, one, SIZE_MAX, r[v]);
    }
    for (size_t a = 0; a < n; a++) {
        int source = left[a], picks = 0;

        for (size_t b = 0; b < n && source; b++)
            if (left[b] && r[b][a] && !r[a][b])
                source = 0;
        if (!source)
            continue;
        size_t low = SIZE_MAX;

        for (size_t b = 0; b < n; b++) {
            if (!(left[b] && r[a][b] && r[b][a]))
                continue;
            if (low == SIZE_MAX)
                low = b;
            if (d->idom[b] == ML_DOM_ROOT) {
                picks++;
                roots[b] = 1;
                assert_int_equal(b, low);
            }
        }
        assert_int_equal(picks, 1);
    }
    reach(g, roots, SIZE_MAX, seen);
    for (size_t v = 0; v < n; v++)
        assert_true(seen[v]);                /* everything has a dominator */
    /* Dominance, pair by pair. */
    for (size_t x = 0; x < n; x++) {
        reach(g, roots, x, seen);
        for (size_t y = 0; y < n; y++) {
            dom[x][y] = x == y || !seen[y];
            if (x != y)
                assert_int_equal(dom[x][y], tree_dominates(d, (uint32_t)x, (uint32_t)y));
        }
    }
    /* Retained sizes, the root invariant and the per-type totals. */
    for (size_t x = 0; x < n; x++) {
        uint64_t ret = 0;
        int covered = 0;

        for (size_t y = 0; y < n; y++) {
            if (dom[x][y])
                ret += g->size[y];
            if (y != x && dom[y][x] && g->type[y] == g->type[x])
                covered = 1;
        }
        assert_int_equal(d->retained[x], ret);
        total += g->size[x];
        if (d->idom[x] == ML_DOM_ROOT)
            sum += d->retained[x];
        if (!covered) {
            tret[g->type[x]] += ret;
            ttop[g->type[x]]++;
        }
    }
    assert_int_equal(sum, total);
    assert_int_equal(d->total, total);
    for (size_t t = 0; t < 4; t++) {
        assert_int_equal(d->type_retained[t], tret[t]);
        assert_int_equal(d->type_top[t], ttop[t]);
    }
}

static void
run(struct tg *g)
{
    struct ml_dom_input in;
    struct ml_dom d;

    build(g, &in);
    assert_int_equal(ml_dom_compute(&d, &in), 0);
    check(g, &d);
    ml_dom_free(&d);
}

static void
test_random_graphs_match_the_oracle(void **state)
{
    static struct tg g;
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    /* edges per node, in tenths: sparse trees to near-complete */
    static const unsigned density[] = { 5, 10, 15, 20, 30, 50, 100, 200 };

    (void)state;
    for (int iter = 0; iter < 3000; iter++) {
        unsigned dens = density[iter % 8];
        size_t ne;

        memset(&g, 0, sizeof(g));
        g.n = 1 + rng_below(&seed, MAXN);
        ne = g.n * dens / 10;
        for (size_t v = 0; v < g.n; v++) {
            g.size[v] = 1 + rng_below(&seed, 1000);
            g.type[v] = (uint32_t)rng_below(&seed, 4);
            g.root[v] = rng_below(&seed, 16) == 0;
        }
        for (size_t e = 0; e < ne && e < 4000; e++) {
            uint32_t a = (uint32_t)rng_below(&seed, g.n);
            uint64_t kind = rng_below(&seed, 20);

            if (kind == 0)
                edge(&g, a, a);                         /* self-loop */
            else if (kind == 1)
                edge(&g, a, (uint32_t)(g.n + rng_below(&seed, 3)));  /* dangling */
            else if (kind == 2 && g.ne > 0)
                edge(&g, g.src[g.ne - 1], g.dst[g.ne - 1]); /* multi-edge */
            else
                edge(&g, a, (uint32_t)rng_below(&seed, g.n));
        }
        run(&g);
    }
}

/* Python heaps are mostly leaves held once (strs, ints in one container),
 * which ml_dom_compute keeps out of its search: graphs made mostly of
 * them, and of near-leaves that must not be taken for ones (held twice by
 * one node or by two, a root, a dangling ref, held by itself, held by a
 * leaf, held by nothing), with types often their holder's. */
static void
test_graphs_full_of_leaves_match_the_oracle(void **state)
{
    static struct tg g;
    uint64_t seed = 0x5eed1eafull;

    (void)state;
    for (int iter = 0; iter < 3000; iter++) {
        size_t core;

        memset(&g, 0, sizeof(g));
        g.n = 1 + rng_below(&seed, MAXN);
        core = 1 + rng_below(&seed, g.n < 8 ? g.n : g.n / 3);
        for (size_t v = 0; v < g.n; v++) {
            g.size[v] = 1 + rng_below(&seed, 1000);
            g.type[v] = (uint32_t)rng_below(&seed, 4);
            g.root[v] = v < core && rng_below(&seed, 8) == 0;
        }
        for (size_t e = 0; e < core * (iter % 3); e++)
            edge(&g, (uint32_t)rng_below(&seed, core),
                 (uint32_t)rng_below(&seed, core));
        for (uint32_t v = (uint32_t)core; v < g.n; v++) {
            uint32_t p = (uint32_t)rng_below(&seed, v);
            uint64_t kind = rng_below(&seed, 16);

            if (rng_below(&seed, 2) == 0)
                g.type[v] = g.type[p];
            if (kind == 9)              /* held by nothing */
                continue;
            edge(&g, p, v);
            if (kind == 10)             /* held twice by the same node */
                edge(&g, p, v);
            else if (kind == 11)        /* held by two nodes */
                edge(&g, (uint32_t)rng_below(&seed, v), v);
            else if (kind == 12)        /* a root all the same */
                g.root[v] = 1;
            else if (kind == 13)        /* a dangling ref: still a leaf */
                edge(&g, v, (uint32_t)(g.n + rng_below(&seed, 3)));
            else if (kind == 14)        /* held by itself too */
                edge(&g, v, v);
            else if (kind == 15)        /* refers back into the core */
                edge(&g, v, (uint32_t)rng_below(&seed, core));
        }
        run(&g);
    }
}

/* A leaf held once is dominated by its holder, retained = its size; the
 * near-leaves are not taken for leaves. */
static void
test_leaf_held_once_is_dominated_by_its_holder(void **state)
{
    static struct tg g;
    struct ml_dom_input in;
    struct ml_dom d;

    (void)state;
    memset(&g, 0, sizeof(g));
    g.n = 8;
    for (size_t v = 0; v < g.n; v++)
        g.size[v] = 10 * (v + 1);
    edge(&g, 0, 1);             /* 1: a leaf of 0 */
    edge(&g, 1, 9);             /*    with a dangling ref */
    edge(&g, 0, 2);             /* 2: held twice by 0 */
    edge(&g, 0, 2);
    edge(&g, 0, 3);             /* 3: a root (module) held by 0 */
    g.root[3] = 1;
    edge(&g, 0, 4);             /* 4: held by 0 and by 5 */
    edge(&g, 5, 4);
    edge(&g, 0, 6);             /* 6: held by 0 and by itself */
    edge(&g, 6, 6);
    edge(&g, 6, 7);             /* 7: a leaf of 6 */
    build(&g, &in);
    assert_int_equal(ml_dom_compute(&d, &in), 0);
    check(&g, &d);
    assert_int_equal(d.idom[1], 0);
    assert_int_equal(d.retained[1], 20);
    assert_int_equal(d.idom[2], 0);
    assert_int_equal(d.idom[3], ML_DOM_ROOT);
    assert_int_equal(d.retained[3], 40);
    assert_int_equal(d.idom[4], ML_DOM_ROOT);
    assert_int_equal(d.idom[6], 0);
    assert_int_equal(d.idom[7], 6);
    assert_int_equal(d.retained[6], 70 + 80);
    assert_int_equal(d.retained[0], 10 + 20 + 30 + 70 + 80);
    ml_dom_free(&d);
}

/* The store lists refs in another order than the dump (the transpose of
 * its referrers): the answer must not depend on it. */
static void
test_order_of_refs_changes_nothing(void **state)
{
    static struct tg g;
    uint64_t seed = 42;

    (void)state;
    for (int iter = 0; iter < 500; iter++) {
        struct ml_dom_input in;
        struct ml_dom d1, d2;

        memset(&g, 0, sizeof(g));
        g.n = 1 + rng_below(&seed, MAXN);
        for (size_t v = 0; v < g.n; v++)
            g.size[v] = 1 + rng_below(&seed, 100);
        for (size_t e = 0; e < g.n * (1 + iter % 4); e++)
            edge(&g, (uint32_t)rng_below(&seed, g.n), (uint32_t)rng_below(&seed, g.n));
        build(&g, &in);
        assert_int_equal(ml_dom_compute(&d1, &in), 0);
        for (size_t v = 0; v < g.n; v++) {      /* reverse each node's refs */
            uint32_t *a = g.succ + g.succ_start[v], *b = g.succ + g.succ_start[v + 1];

            while (a + 1 < b) {
                uint32_t t = *a;
                *a++ = *--b;
                *b = t;
            }
        }
        assert_int_equal(ml_dom_compute(&d2, &in), 0);
        assert_memory_equal(d1.idom, d2.idom, g.n * sizeof(*d1.idom));
        assert_memory_equal(d1.retained, d2.retained, g.n * sizeof(*d1.retained));
        ml_dom_free(&d1);
        ml_dom_free(&d2);
    }
}

/* The store's commit feeds the same code otherwise: modules as roots by
 * type (no callback), the referrers read out of its edges with a stride,
 * every array from its own allocator (mapped files).  Same answers, and
 * every byte the allocator gave is given back. */
static size_t alloc_live, alloc_calls;

static void *
count_alloc(void *arg, size_t bytes)
{
    (void)arg;
    alloc_live += bytes;
    alloc_calls++;
    return malloc(bytes);
}

static void
count_release(void *arg, void *p, size_t bytes)
{
    (void)arg;
    assert_true(alloc_live >= bytes);
    alloc_live -= bytes;
    free(p);
}

static void
test_root_type_stride_and_allocator_change_nothing(void **state)
{
    static struct tg g;
    static uint32_t pred2[2 * 4096];
    uint64_t seed = 7;

    (void)state;
    for (int iter = 0; iter < 300; iter++) {
        struct ml_dom_input in;
        struct ml_dom d1, d2;

        memset(&g, 0, sizeof(g));
        g.n = 1 + rng_below(&seed, MAXN);
        for (size_t v = 0; v < g.n; v++) {
            g.size[v] = 1 + rng_below(&seed, 100);
            g.type[v] = (uint32_t)rng_below(&seed, 4);
            g.root[v] = g.type[v] == 3;
        }
        for (size_t e = 0; e < g.n * (1 + iter % 3); e++)
            edge(&g, (uint32_t)rng_below(&seed, g.n),
                 (uint32_t)rng_below(&seed, g.n + 2));  /* some dangling */
        build(&g, &in);
        assert_int_equal(ml_dom_compute(&d1, &in), 0);
        for (size_t k = 0; k < g.pred_start[g.n]; k++) {
            pred2[2 * k] = g.pred[k];
            pred2[2 * k + 1] = (uint32_t)rng_below(&seed, g.n);  /* noise */
        }
        in.is_root = NULL;
        in.has_root_type = 1;
        in.root_type = 3;
        in.pred = pred2;
        in.pred_stride = 2;
        in.alloc = count_alloc;
        in.release = count_release;
        alloc_calls = 0;
        assert_int_equal(ml_dom_compute(&d2, &in), 0);
        assert_true(alloc_calls >= 5);
        assert_memory_equal(d1.idom, d2.idom, g.n * sizeof(*d1.idom));
        assert_memory_equal(d1.retained, d2.retained,
                            g.n * sizeof(*d1.retained));
        assert_memory_equal(d1.type_retained, d2.type_retained,
                            4 * sizeof(uint64_t));
        assert_memory_equal(d1.type_top, d2.type_top, 4 * sizeof(uint64_t));
        assert_int_equal(d1.nroots, d2.nroots);
        assert_int_equal(d1.nleftover, d2.nleftover);
        assert_int_equal(d1.total, d2.total);
        ml_dom_free(&d1);
        ml_dom_free(&d2);
        assert_int_equal(alloc_live, 0);
    }
}

/* Cooper, Harvey and Kennedy's iterative algorithm, a second oracle for
 * graphs too big for the brute force: deep trees and long chains, where
 * the path compression has long paths to work on.  Node 0 is the only
 * node nothing refers to, and everything is reachable from it. */
#define BIGN 3000
#define BIGE (4 * BIGN)

static uint32_t b_ss[BIGN + 1], b_s[BIGE], b_ps[BIGN + 1], b_p[BIGE];
static uint32_t b_src[BIGE], b_dst[BIGE], b_po[BIGN], b_order[BIGN];
static uint32_t b_idom[BIGN], b_stk[BIGN], b_pos[BIGN];
static uint64_t b_size[BIGN];

static uint32_t
chk_intersect(uint32_t a, uint32_t b)
{
    while (a != b) {
        while (b_po[a] < b_po[b])
            a = b_idom[a];
        while (b_po[b] < b_po[a])
            b = b_idom[b];
    }
    return a;
}

static void
chk(size_t n)
{
    size_t sp = 1, np = 0;
    int changed = 1;

    /* postorder from node 0 */
    memset(b_po, 0xff, sizeof(b_po));
    b_stk[0] = 0;
    b_pos[0] = b_ss[0];
    b_po[0] = UINT32_MAX - 1;
    while (sp > 0) {
        uint32_t x = b_stk[sp - 1];

        if (b_pos[sp - 1] < b_ss[x + 1]) {
            uint32_t y = b_s[b_pos[sp - 1]++];

            if (b_po[y] == UINT32_MAX) {
                b_po[y] = UINT32_MAX - 1;
                b_stk[sp] = y;
                b_pos[sp++] = b_ss[y];
            }
            continue;
        }
        b_po[x] = (uint32_t)np;
        b_order[np++] = x;
        sp--;
    }
    assert_int_equal(np, n);
    for (size_t v = 0; v < n; v++)
        b_idom[v] = UINT32_MAX;
    b_idom[0] = 0;
    while (changed) {
        changed = 0;
        for (size_t k = n - 1; k-- > 0;) {      /* reverse postorder, not 0 */
            uint32_t b = b_order[k], nd = UINT32_MAX;

            for (uint32_t e = b_ps[b]; e < b_ps[b + 1]; e++) {
                uint32_t p = b_p[e];

                if (b_idom[p] == UINT32_MAX)
                    continue;
                nd = nd == UINT32_MAX ? p : chk_intersect(p, nd);
            }
            if (b_idom[b] != nd) {
                b_idom[b] = nd;
                changed = 1;
            }
        }
    }
}

static void
test_big_graphs_match_cooper_harvey_kennedy(void **state)
{
    uint64_t seed = 7;

    (void)state;
    for (int iter = 0; iter < 40; iter++) {
        size_t n = BIGN, ne = 0, extra = (size_t)(iter % 4) * BIGN / 2;
        struct ml_dom_input in;
        struct ml_dom d;

        /* a spanning tree from 0: chains (parent = v - 1) or random */
        for (uint32_t v = 1; v < n; v++) {
            uint32_t par = iter % 2 ? v - 1 : (uint32_t)rng_below(&seed, v);

            b_src[ne] = par;
            b_dst[ne++] = v;
        }
        for (size_t e = 0; e < extra; e++) {     /* any edge, not into 0 */
            b_src[ne] = (uint32_t)rng_below(&seed, n);
            b_dst[ne++] = 1 + (uint32_t)rng_below(&seed, n - 1);
        }
        memset(b_ss, 0, sizeof(b_ss));
        memset(b_ps, 0, sizeof(b_ps));
        for (size_t e = 0; e < ne; e++) {
            b_ss[b_src[e] + 1]++;
            b_ps[b_dst[e] + 1]++;
        }
        for (size_t v = 0; v < n; v++) {
            b_ss[v + 1] += b_ss[v];
            b_ps[v + 1] += b_ps[v];
        }
        for (size_t e = 0; e < ne; e++) {       /* fill, then restore */
            b_s[b_ss[b_src[e]]++] = b_dst[e];
            b_p[b_ps[b_dst[e]]++] = b_src[e];
        }
        for (size_t v = n; v > 0; v--) {
            b_ss[v] = b_ss[v - 1];
            b_ps[v] = b_ps[v - 1];
        }
        b_ss[0] = b_ps[0] = 0;
        for (size_t v = 0; v < n; v++)
            b_size[v] = 1 + v % 7;
        chk(n);

        memset(&in, 0, sizeof(in));
        in.n = n;
        in.succ_start = b_ss;
        in.succ = b_s;
        in.pred_start = b_ps;
        in.pred = b_p;
        in.size = b_size;
        assert_int_equal(ml_dom_compute(&d, &in), 0);
        assert_int_equal(d.nroots, 1);
        assert_int_equal(d.nleftover, 0);
        assert_int_equal(d.idom[0], ML_DOM_ROOT);
        for (size_t v = 1; v < n; v++)
            assert_int_equal(d.idom[v], b_idom[v]);
        assert_int_equal(d.retained[0], d.total);
        ml_dom_free(&d);
    }
}

static void
test_diamond_is_dominated_by_its_top(void **state)
{
    static struct tg g;

    (void)state;
    memset(&g, 0, sizeof(g));
    g.n = 4;                    /* 0 -> 1, 2 -> 3 */
    for (size_t v = 0; v < 4; v++)
        g.size[v] = 10 * (v + 1);
    edge(&g, 0, 1);
    edge(&g, 0, 2);
    edge(&g, 1, 3);
    edge(&g, 2, 3);
    run(&g);

    struct ml_dom_input in;
    struct ml_dom d;
    build(&g, &in);
    assert_int_equal(ml_dom_compute(&d, &in), 0);
    assert_int_equal(d.idom[0], ML_DOM_ROOT);
    assert_int_equal(d.idom[1], 0);
    assert_int_equal(d.idom[3], 0);     /* not 1 nor 2: both lead to it */
    assert_int_equal(d.retained[1], 20);
    assert_int_equal(d.retained[0], 100);
    assert_int_equal(d.nroots, 1);
    assert_int_equal(d.nleftover, 0);
    ml_dom_free(&d);
}

static void
test_chain_retains_its_tail(void **state)
{
    static struct tg g;
    struct ml_dom_input in;
    struct ml_dom d;

    (void)state;
    memset(&g, 0, sizeof(g));
    g.n = 40;
    for (uint32_t v = 0; v < 40; v++) {
        g.size[v] = 1;
        if (v + 1 < 40)
            edge(&g, v + 1, v);             /* 39 -> 38 -> ... -> 0 */
    }
    run(&g);
    build(&g, &in);
    assert_int_equal(ml_dom_compute(&d, &in), 0);
    for (uint32_t v = 0; v < 40; v++)
        assert_int_equal(d.retained[v], v + 1);
    ml_dom_free(&d);
}

static void
test_cycle_held_from_c_gets_one_root(void **state)
{
    static struct tg g;
    struct ml_dom_input in;
    struct ml_dom d;

    (void)state;
    memset(&g, 0, sizeof(g));
    /* 0 <-> 1 only hold each other; 1 -> 2 <-> 3 too */
    g.n = 4;
    for (size_t v = 0; v < 4; v++)
        g.size[v] = 5;
    edge(&g, 0, 1);
    edge(&g, 1, 0);
    edge(&g, 1, 2);
    edge(&g, 2, 3);
    edge(&g, 3, 2);
    run(&g);
    build(&g, &in);
    assert_int_equal(ml_dom_compute(&d, &in), 0);
    assert_int_equal(d.nroots, 0);
    assert_int_equal(d.nleftover, 1);   /* not 2: {2, 3} hangs off {0, 1} */
    /* the pick holds all four, the other of {0, 1} holds 2 and 3 */
    assert_int_equal(d.idom[0], ML_DOM_ROOT);     /* the lowest id */
    assert_int_equal(d.idom[1], 0);
    assert_int_equal(d.retained[0] + d.retained[1], 20 + 15);
    ml_dom_free(&d);
}

static void
test_module_is_a_root_even_when_referred_to(void **state)
{
    static struct tg g;
    struct ml_dom_input in;
    struct ml_dom d;

    (void)state;
    memset(&g, 0, sizeof(g));
    /* 0 (sys.modules) -> 1 (a module) -> 2 (its dict) */
    g.n = 3;
    g.size[0] = 100;
    g.size[1] = 10;
    g.size[2] = 1000;
    g.root[1] = 1;
    edge(&g, 0, 1);
    edge(&g, 1, 2);
    run(&g);
    build(&g, &in);
    assert_int_equal(ml_dom_compute(&d, &in), 0);
    assert_int_equal(d.idom[1], ML_DOM_ROOT);
    assert_int_equal(d.nroots, 2);      /* counted though reached first */
    assert_int_equal(d.retained[0], 100);
    assert_int_equal(d.retained[1], 1010);
    ml_dom_free(&d);
}

static void
test_top_is_largest_retained_first(void **state)
{
    static struct tg g;
    struct ml_dom_input in;
    struct ml_dom d;
    uint32_t top[50];

    (void)state;
    memset(&g, 0, sizeof(g));
    g.n = 30;
    for (uint32_t v = 0; v < 30; v++)
        g.size[v] = (v * 7) % 11;            /* ties on purpose */
    build(&g, &in);
    assert_int_equal(ml_dom_compute(&d, &in), 0);
    for (size_t k = 0; k <= 31; k++) {
        size_t m = ml_dom_top(&d, top, k);

        assert_int_equal(m, k < 30 ? k : 30);
        for (size_t i = 0; i + 1 < m; i++) {
            uint32_t a = top[i], b = top[i + 1];

            assert_true(d.retained[a] > d.retained[b]
                        || (d.retained[a] == d.retained[b] && a < b));
        }
        if (m > 0)                            /* the largest is there */
            assert_int_equal(d.retained[top[0]], 10);
    }
    ml_dom_free(&d);
}

static void
test_empty_graph(void **state)
{
    struct ml_dom_input in;
    struct ml_dom d;
    uint32_t z = 0;

    (void)state;
    memset(&in, 0, sizeof(in));
    in.succ_start = &z;
    in.pred_start = &z;
    assert_int_equal(ml_dom_compute(&d, &in), 0);
    assert_int_equal(d.total, 0);
    assert_int_equal(ml_dom_top(&d, &z, 1), 0);
    ml_dom_free(&d);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_graphs_match_the_oracle),
        cmocka_unit_test(test_graphs_full_of_leaves_match_the_oracle),
        cmocka_unit_test(test_leaf_held_once_is_dominated_by_its_holder),
        cmocka_unit_test(test_order_of_refs_changes_nothing),
        cmocka_unit_test(test_root_type_stride_and_allocator_change_nothing),
        cmocka_unit_test(test_big_graphs_match_cooper_harvey_kennedy),
        cmocka_unit_test(test_diamond_is_dominated_by_its_top),
        cmocka_unit_test(test_chain_retains_its_tail),
        cmocka_unit_test(test_cycle_held_from_c_gets_one_root),
        cmocka_unit_test(test_module_is_a_root_even_when_referred_to),
        cmocka_unit_test(test_top_is_largest_retained_first),
        cmocka_unit_test(test_empty_graph),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
