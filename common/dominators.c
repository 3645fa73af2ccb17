/* SPDX-License-Identifier: MIT
 *
 * dominators.c -- semi-NCA dominators and retained sizes; see
 * dominators.h and docs/retained.md.
 *
 * Vertices are numbered in depth-first preorder from the virtual root
 * (number 0; node ids are 0..n-1, the root's id is n).  Arrays, all uint32:
 *
 *   pre[n]       node -> preorder number
 *   vertex[N]    preorder number -> node (N = n + 1)
 *   anc[N]       DFS parent, then the path-compressed ancestor (LLVM's
 *                SemiNCA: nodes numbered above the one in work are linked)
 *   semi[N], label[N]  one block; the DFS keeps its stack in it (node,
 *                edge cursor), and it becomes the uint64 retained[] at the
 *                end
 *   idom[N + 1]  the DFS parent, then the immediate dominator
 *
 * That is the 24 bytes a node.  After the NCA step anc becomes the
 * node-indexed idom the caller keeps, and pre/vertex/idom hold the
 * dominator tree's children (CSR) and the stack that sums the per-type
 * totals.  No recursion, no allocation per node.
 *
 * Leaves held once (leaf_holder: no refs, one referrer, no root) are
 * marked LEAF in pre[] and never numbered: the semidominator and NCA
 * steps run over the numbered vertices only (M = w.num of them).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dominators.h"
#include "ml-common.h"

/* Marks in pre[] above any preorder number: not numbered yet. */
#define UNSEEN UINT32_MAX               /* not reached yet */
#define PREPASS (UINT32_MAX - 1)        /* seen by the leftover DFS */
#define CURCOMP (UINT32_MAX - 2)        /* in the component being built */
#define DONECOMP (UINT32_MAX - 3)       /* in a component already built */
#define LEAF (UINT32_MAX - 4)           /* a leaf held once: never numbered */
#define MARKS LEAF                      /* pre[v] >= MARKS: not numbered */

/* The k-th referrer (in->pred_stride: 0 or 1 contiguous). */
#define PRED(in, k) ((in)->pred[(size_t)(k) * ((in)->pred_stride \
                                               ? (in)->pred_stride : 1)])

struct work {
    const struct ml_dom_input *in;
    uint32_t *pre, *vertex, *anc, *semi, *label, *idom;
    uint32_t num;                       /* next preorder number */
};

/* Gives v the next preorder number, under DFS parent p (a number). */
static void
number(struct work *w, uint32_t v, uint32_t p)
{
    w->pre[v] = w->num;
    w->vertex[w->num] = v;
    w->anc[w->num] = p;
    w->num++;
}

/* Depth-first from v, a child of the root, numbering what it reaches.
 * The stack (node, next edge) lives in semi[] and label[]. */
static void
dfs(struct work *w, uint32_t v)
{
    const struct ml_dom_input *in = w->in;
    uint32_t *stk = w->semi, *pos = w->label;
    size_t sp = 1;

    number(w, v, 0);
    stk[0] = v;
    pos[0] = in->succ_start[v];
    while (sp > 0) {
        uint32_t x = stk[sp - 1], k = pos[sp - 1];
        uint32_t end = in->succ_start[x + 1], y = 0;

        for (; k < end; k++) {
            y = in->succ[k];
            if (y < in->n && w->pre[y] >= MARKS && w->pre[y] != LEAF)
                break;
        }
        if (k == end) {
            sp--;
            continue;
        }
        pos[sp - 1] = k + 1;
        number(w, y, w->pre[x]);
        stk[sp] = y;
        pos[sp++] = in->succ_start[y];
    }
}

/* Appends to fin, in finishing order, the unreached nodes reachable from
 * v (marked PREPASS); returns the new count. */
static size_t
finish_order(struct work *w, uint32_t v, uint32_t *fin, size_t nfin)
{
    const struct ml_dom_input *in = w->in;
    uint32_t *stk = w->semi, *pos = w->label;
    size_t sp = 1;

    w->pre[v] = PREPASS;
    stk[0] = v;
    pos[0] = in->succ_start[v];
    while (sp > 0) {
        uint32_t x = stk[sp - 1], k = pos[sp - 1];
        uint32_t end = in->succ_start[x + 1], y = 0;

        for (; k < end; k++) {
            y = in->succ[k];
            if (y < in->n && w->pre[y] == UNSEEN)
                break;
        }
        if (k == end) {
            fin[nfin++] = x;
            sp--;
            continue;
        }
        pos[sp - 1] = k + 1;
        w->pre[y] = PREPASS;
        stk[sp] = y;
        pos[sp++] = in->succ_start[y];
    }
    return nfin;
}

/* The vertex of least semi on the compressed path from v (a number above
 * last - 1 or not) up to, not including, the first vertex numbered below
 * last; compresses that path.  The path is walked up reversing anc[] and
 * down restoring it: no stack. */
static uint32_t
eval(struct work *w, uint32_t v, uint32_t last)
{
    uint32_t *anc = w->anc, *label = w->label, *semi = w->semi;
    uint32_t x = v, prev = UNSEEN, top, p;

    if (anc[v] < last)
        return label[v];
    while (anc[x] >= last) {
        uint32_t next = anc[x];

        anc[x] = prev;
        prev = x;
        x = next;
    }
    top = anc[x];                       /* the unlinked tree root */
    p = x;
    while (prev != UNSEEN) {
        uint32_t y = prev;

        prev = anc[y];
        anc[y] = top;
        if (semi[label[p]] < semi[label[y]])
            label[y] = label[p];
        p = y;
    }
    return label[v];
}

/* Kosaraju's second pass: the strongly connected component of v (the
 * first one, in decreasing finishing order, not in a component yet),
 * found by a DFS on the referrers among PREPASS nodes.  Returns its
 * lowest node id if it is a source component of the leftovers (no
 * referrer in an earlier component), else UNSEEN.  Leaves it DONECOMP.
 * The members are listed in vertex[] past the numbered nodes (there is
 * room: none of them is numbered). */
static uint32_t
component(struct work *w, uint32_t v)
{
    const struct ml_dom_input *in = w->in;
    uint32_t *stk = w->semi, *pos = w->label, low = v;
    uint32_t *members = w->vertex + w->num;
    size_t sp = 1, all = 1;
    int source = 1;

    w->pre[v] = CURCOMP;
    members[0] = v;
    stk[0] = v;
    pos[0] = in->pred_start[v];
    while (sp > 0) {
        uint32_t x = stk[sp - 1], k = pos[sp - 1];
        uint32_t end = in->pred_start[x + 1], y = 0;

        for (; k < end; k++) {
            y = PRED(in, k);
            if (y >= in->n)
                continue;
            if (w->pre[y] == DONECOMP)
                source = 0;
            else if (w->pre[y] == PREPASS)
                break;
        }
        if (k == end) {
            sp--;
            continue;
        }
        pos[sp - 1] = k + 1;
        w->pre[y] = CURCOMP;
        members[all++] = y;
        if (y < low)
            low = y;
        stk[sp] = y;
        pos[sp++] = in->pred_start[y];
    }
    for (size_t i = 0; i < all; i++)
        w->pre[members[i]] = DONECOMP;
    return source ? low : UNSEEN;
}

/* A root even if something refers to it: of in->root_type, or as
 * in->is_root says. */
static inline int
is_root(const struct ml_dom_input *in, uint32_t v)
{
    if (in->has_root_type && in->type != NULL && in->type[v] == in->root_type)
        return 1;
    return in->is_root != NULL && in->is_root(in->arg, v);
}

/* The one node holding v if v is a leaf held once, else UNSEEN.  Such a
 * v refers to nothing (dangling refs aside), is referred to by one node p
 * only (maybe more than once; not itself: it refers to nothing) and is no
 * root: every path to it ends with p -> v, so idom(v) = p, and it is on
 * no path to another node, so it changes no other node's dominators.  In
 * a Python heap most objects are such (strs, ints, floats in one
 * container): they are kept out of the search (numbering, semidominators,
 * NCA) and only their sizes are added to their holders'. */
static uint32_t
leaf_holder(const struct ml_dom_input *in, uint32_t v)
{
    uint32_t p = UNSEEN;

    for (uint32_t k = in->succ_start[v]; k < in->succ_start[v + 1]; k++)
        if (in->succ[k] < in->n)
            return UNSEEN;
    for (uint32_t k = in->pred_start[v]; k < in->pred_start[v + 1]; k++) {
        uint32_t u = PRED(in, k);

        if (u >= in->n)
            continue;
        if (p == UNSEEN)
            p = u;
        else if (u != p)
            return UNSEEN;
    }
    if (p == UNSEEN || is_root(in, v))
        return UNSEEN;
    return p;
}

static int
unreferred(const struct ml_dom_input *in, uint32_t v)
{
    for (uint32_t k = in->pred_start[v]; k < in->pred_start[v + 1]; k++)
        if (PRED(in, k) < in->n)
            return 0;
    return 1;
}

/* Per type, the retained sizes of the nodes no node of their type
 * dominates.  A type none of whose nodes dominates another node (most
 * strs, ints, floats: they refer to nothing) has all its nodes counted,
 * in one pass.  The others need a walk of the dominator tree keeping how
 * many nodes of each type are on the path; it visits only the nodes of
 * those types (the parent of a node has a child, so it is of one of them
 * too): the children CSR by node id (the root as n) holds them alone.
 * The stack holds, per level, the clist index of the child being
 * visited: the level's node is that child's idom. */
static int
type_totals(struct ml_dom *d, const struct ml_dom_input *in,
            uint32_t *cstart, uint32_t *clist, uint32_t *stk)
{
    const size_t n = in->n, nt = in->ntypes ? in->ntypes : 1;
    const uint32_t *type = in->type;
    uint32_t *active = calloc(nt, sizeof(*active));
    unsigned char *deep = calloc(nt, 1);
    size_t sp = 0;

#define PAR(v) (d->idom[v] == ML_DOM_ROOT ? (uint32_t)n : d->idom[v])
    if (active == NULL || deep == NULL) {
        free(active);
        free(deep);
        return -ENOMEM;
    }
    for (size_t v = 0; v < n; v++)
        if (d->idom[v] != ML_DOM_ROOT)
            deep[type[d->idom[v]]] = 1;
    memset(cstart, 0, (n + 2) * sizeof(*cstart));
    for (size_t v = 0; v < n; v++) {
        uint32_t t = type[v];

        if (deep[t]) {
            cstart[PAR(v)]++;
        } else {
            d->type_retained[t] += d->retained[v];
            d->type_top[t]++;
        }
    }
    for (size_t i = 1; i <= n; i++)
        cstart[i] += cstart[i - 1];
    cstart[n + 1] = cstart[n];
    for (size_t v = n; v-- > 0;)
        if (deep[type[v]])
            clist[--cstart[PAR(v)]] = (uint32_t)v;
    if (n > 0 && cstart[n] < cstart[n + 1])
        stk[sp++] = cstart[n];
    while (sp > 0) {
        uint32_t k = stk[sp - 1], y = clist[k], t = type[y];

        /* enter y */
        if (active[t] == 0) {
            d->type_retained[t] += d->retained[y];
            d->type_top[t]++;
        }
        if (cstart[y] < cstart[y + 1]) {
            active[t]++;
            stk[sp++] = cstart[y];
            continue;
        }
        /* leave the levels whose last child is done */
        for (;;) {
            uint32_t x = PAR(clist[stk[sp - 1]]);

            if (stk[sp - 1] + 1 < cstart[x + 1]) {
                stk[sp - 1]++;
                break;
            }
            if (--sp == 0)
                break;
            active[type[clist[stk[sp - 1]]]]--;
        }
    }
#undef PAR
    free(active);
    free(deep);
    return 0;
}

static void *
dom_alloc(const struct ml_dom_input *in, size_t bytes)
{
    return in->alloc != NULL ? in->alloc(in->alloc_arg, bytes) : malloc(bytes);
}

static void
dom_release(void (*release)(void *, void *, size_t), void *arg, void *p,
            size_t bytes)
{
    if (p == NULL)
        return;
    if (release != NULL)
        release(arg, p, bytes);
    else
        free(p);
}

int
ml_dom_compute(struct ml_dom *out, const struct ml_dom_input *in)
{
    const size_t n = in->n, N = n + 1;
    struct work w = { .in = in };
    uint32_t *sl = NULL;
    uint64_t *ret;
    size_t nfin = 0, nleaf = 0, M;
    int rc = -ENOMEM;

    memset(out, 0, sizeof(*out));
    if (n >= MARKS - 1)
        return ML_ETOOBIG;
    out->n = n;
    out->release = in->alloc != NULL ? in->release : NULL;
    out->alloc_arg = in->alloc_arg;
    w.pre = dom_alloc(in, (n ? n : 1) * sizeof(*w.pre));
    w.vertex = dom_alloc(in, (N + 1) * sizeof(*w.vertex));
    w.anc = dom_alloc(in, N * sizeof(*w.anc));
    w.idom = dom_alloc(in, (N + 1) * sizeof(*w.idom));
    sl = dom_alloc(in, 2 * N * sizeof(*sl));
    if (w.pre == NULL || w.vertex == NULL || w.anc == NULL || w.idom == NULL
            || sl == NULL)
        goto out;
    if (in->type != NULL) {
        out->ntypes = in->ntypes;
        out->type_retained = calloc(in->ntypes ? in->ntypes : 1, sizeof(uint64_t));
        out->type_top = calloc(in->ntypes ? in->ntypes : 1, sizeof(uint64_t));
        if (out->type_retained == NULL || out->type_top == NULL)
            goto out;
    }
    w.semi = sl;
    w.label = sl + N;

    /* 1. Depth-first numbering from the root: first its children proper,
     * in id order; then one node of each source component of the
     * unreached leftover. */
    for (uint32_t v = 0; v < n; v++)
        w.pre[v] = leaf_holder(in, v) == UNSEEN ? UNSEEN : LEAF;
    w.vertex[0] = (uint32_t)n;
    w.anc[0] = 0;
    w.num = 1;
    for (uint32_t v = 0; v < n; v++) {
        if (w.pre[v] == LEAF)           /* referred to, and no root */
            continue;
        if (unreferred(in, v) || is_root(in, v)) {
            out->nroots++;
            /* An is_root node reached before its turn is a root all the
             * same: the semidominator step gives it the root's edge. */
            if (w.pre[v] == UNSEEN)
                dfs(&w, v);
        }
    }
    for (uint32_t v = 0; v < n; v++)
        nleaf += w.pre[v] == LEAF;
    if (w.num + nleaf < N) {
        for (uint32_t v = 0; v < n; v++)
            if (w.pre[v] == UNSEEN)
                nfin = finish_order(&w, v, w.idom, nfin);
        /* Kosaraju: components in decreasing finishing order; the
         * lowest id of each source one (so the pick depends on the graph,
         * not on the order of the refs) is stored over the consumed end
         * of the finishing list, then numbered from the root. */
        size_t npick = 0;

        for (size_t j = nfin; j-- > 0;) {
            uint32_t v = w.idom[j], low;

            if (w.pre[v] != PREPASS)
                continue;
            if ((low = component(&w, v)) != UNSEEN)
                w.idom[nfin - 1 - npick++] = low;
        }
        for (size_t k = 0; k < npick; k++) {
            out->nleftover++;
            dfs(&w, w.idom[nfin - 1 - k]);
        }
    }

    /* 2. Semidominators, in reverse preorder, over the M numbered
     * vertices (the leaves held once are not). */
    M = w.num;
    for (size_t i = 0; i < M; i++) {
        w.semi[i] = (uint32_t)i;
        w.label[i] = (uint32_t)i;
        w.idom[i] = w.anc[i];
    }
    for (uint32_t i = (uint32_t)M; i-- > 1;) {
        uint32_t v = w.vertex[i], s = w.anc[i];

        if (s != 0 && is_root(in, v))
            s = 0;
        for (uint32_t k = in->pred_start[v]; s != 0 && k < in->pred_start[v + 1]; k++) {
            uint32_t u = PRED(in, k), p;

            if (u >= n)
                continue;
            p = w.pre[u];
            if (p > i)
                p = w.semi[eval(&w, p, i + 1)];
            if (p < s)
                s = p;
        }
        w.semi[i] = s;
    }

    /* 3. Immediate dominators: the nearest DFS ancestor at or above the
     * semidominator (NCA), in preorder. */
    w.idom[0] = 0;
    for (size_t i = 1; i < M; i++) {
        uint32_t d = w.idom[i];

        while (d > w.semi[i])
            d = w.idom[d];
        w.idom[i] = d;
    }

    /* 4. Retained sizes: the leaves into their holders, then children
     * before their idom (reverse preorder); the semi/label block becomes
     * retained[], anc the node idom[]. */
    ret = (uint64_t *)(void *)sl;
    for (size_t v = 0; v < n; v++) {
        ret[v] = in->size[v];
        out->total += in->size[v];
    }
    /* anc is free now (step 3 read idom[]): it becomes the node-indexed
     * idom, the leaves' here (their holder: the first referrer in range),
     * the numbered ones' below. */
    for (uint32_t v = 0; v < n; v++) {
        if (w.pre[v] == LEAF) {
            uint32_t k = in->pred_start[v], p;

            while ((p = PRED(in, k)) >= n)
                k++;
            ret[p] += in->size[v];
            w.anc[v] = p;
        }
    }
    for (size_t i = M; i-- > 1;) {
        uint32_t dn = w.idom[i];

        if (dn != 0)
            ret[w.vertex[dn]] += ret[w.vertex[i]];
    }
    for (size_t v = 0; v < n; v++) {
        if (w.pre[v] == LEAF)
            continue;
        uint32_t dn = w.idom[w.pre[v]];

        w.anc[v] = dn == 0 ? ML_DOM_ROOT : w.vertex[dn];
    }
    out->idom = w.anc;
    out->retained = ret;
    w.anc = NULL;
    sl = NULL;

    /* 5. Per-type totals, in the now free pre/vertex/idom. */
    if (in->type != NULL
            && (rc = type_totals(out, in, w.idom, w.vertex, w.pre)) < 0)
        goto out;
    rc = 0;
out:
    dom_release(out->release, out->alloc_arg, w.pre,
                (n ? n : 1) * sizeof(*w.pre));
    dom_release(out->release, out->alloc_arg, w.vertex,
                (N + 1) * sizeof(*w.vertex));
    dom_release(out->release, out->alloc_arg, w.anc, N * sizeof(*w.anc));
    dom_release(out->release, out->alloc_arg, w.idom,
                (N + 1) * sizeof(*w.idom));
    dom_release(out->release, out->alloc_arg, sl, 2 * N * sizeof(*sl));
    if (rc < 0)
        ml_dom_free(out);
    return rc;
}

void
ml_dom_free(struct ml_dom *d)
{
    /* the sizes ml_dom_compute allocated them with: anc (n + 1 uint32)
     * became idom, the semi/label block (2 (n + 1) uint32) retained */
    dom_release(d->release, d->alloc_arg, d->idom,
                (d->n + 1) * sizeof(*d->idom));
    dom_release(d->release, d->alloc_arg, d->retained,
                (d->n + 1) * sizeof(*d->retained));
    free(d->type_retained);
    free(d->type_top);
    memset(d, 0, sizeof(*d));
}

/* Is a a worse pick than b (less retained, or as much and a later id)? */
static int
worse(const uint64_t *ret, uint32_t a, uint32_t b)
{
    return ret[a] != ret[b] ? ret[a] < ret[b] : a > b;
}

static void
sift_down(const uint64_t *ret, uint32_t *h, size_t m, size_t i)
{
    for (;;) {
        size_t c = 2 * i + 1, best = i;

        if (c < m && worse(ret, h[c], h[best]))
            best = c;
        if (c + 1 < m && worse(ret, h[c + 1], h[best]))
            best = c + 1;
        if (best == i)
            return;
        uint32_t t = h[i];
        h[i] = h[best];
        h[best] = t;
        i = best;
    }
}

size_t
ml_dom_top(const struct ml_dom *d, uint32_t *top, size_t k)
{
    const uint64_t *ret = d->retained;
    size_t m = 0;

    if (k == 0)
        return 0;
    /* A heap of the k best so far, the worst of them on top. */
    for (size_t v = 0; v < d->n; v++) {
        if (m < k) {
            size_t i = m++;

            top[i] = (uint32_t)v;
            while (i > 0 && worse(ret, top[i], top[(i - 1) / 2])) {
                uint32_t t = top[i];
                top[i] = top[(i - 1) / 2];
                top[(i - 1) / 2] = t;
                i = (i - 1) / 2;
            }
        } else if (worse(ret, top[0], (uint32_t)v)) {
            top[0] = (uint32_t)v;
            sift_down(ret, top, m, 0);
        }
    }
    /* Heap sort: the worst goes last each time. */
    for (size_t e = m; e > 1; e--) {
        uint32_t t = top[0];
        top[0] = top[e - 1];
        top[e - 1] = t;
        sift_down(ret, top, e - 1, 0);
    }
    return m;
}
