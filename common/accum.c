/* SPDX-License-Identifier: MIT
 *
 * accum.c -- the accumulation points of new objects (accum.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "accum.h"
#include "mlsort.h"

/* len zeroed bytes from the caller's allocator, or calloc. */
static void *
alloc0(const struct ml_accum *a, size_t len)
{
    return a->alloc != NULL ? a->alloc(len) : calloc(1, len);
}

static void
release(const struct ml_accum *a, void *p)
{
    if (a->release != NULL)
        a->release(p);
    else
        free(p);
}

int
ml_accum_search(struct ml_accum *a)
{
    size_t n = a->n;
    uint32_t *off, *kid, *queue;
    size_t head = 0, tail = 0;

    if (n >= UINT32_MAX - 2 || a->nedge >= UINT32_MAX)
        return -E2BIG;
    off = alloc0(a, (n + 2) * sizeof *off);
    kid = alloc0(a, (a->nedge + 1) * sizeof *kid);
    queue = alloc0(a, (n + 1) * sizeof *queue);
    if (off == NULL || kid == NULL || queue == NULL) {
        release(a, off);
        release(a, kid);
        release(a, queue);
        return -ENOMEM;
    }
    /* the edges by parent (counting sort): kid[off[p] .. off[p + 1]) */
    for (size_t i = 0; i < a->nedge; i++)
        off[a->edge[i][0] + 2]++;
    for (size_t i = 2; i < n + 2; i++)
        off[i] += off[i - 1];
    for (size_t i = 0; i < a->nedge; i++)
        kid[off[a->edge[i][0] + 1]++] = a->edge[i][1];
    for (size_t i = 0; i < n; i++) {
        if (!a->isnew[i]) {
            a->anchor[i] = ML_ACCUM_NONE;
            a->depth[i] = 0;
        } else if (a->anchor[i] != ML_ACCUM_NONE) {
            a->depth[i] = 1;
            queue[tail++] = (uint32_t)i;
        }
    }
    /* pass 0: from what old objects hold; pass 1: from the new roots */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; pass == 1 && i < n; i++)
            if (a->isnew[i] && a->anchor[i] == ML_ACCUM_NONE &&
                !a->referred[i]) {
                a->anchor[i] = (uint32_t)i;
                a->depth[i] = 0;
                queue[tail++] = (uint32_t)i;
            }
        while (head < tail) {
            uint32_t x = queue[head++];

            for (uint32_t k = off[x]; k < off[x + 1]; k++) {
                uint32_t y = kid[k];

                if (!a->isnew[y] || a->anchor[y] != ML_ACCUM_NONE)
                    continue;
                a->anchor[y] = a->anchor[x];
                a->depth[y] = a->depth[x] + 1;
                queue[tail++] = y;
            }
        }
    }
    /* a new root is an accumulation point only with something below it:
     * off[] is free now, a mark per root that has */
    memset(off, 0, (n + 2) * sizeof *off);
    for (size_t i = 0; i < n; i++) {
        uint32_t r = a->anchor[i];

        if (a->isnew[i] && r != ML_ACCUM_NONE && r != i && a->isnew[r])
            off[r] = 1;
    }
    for (size_t i = 0; i < n; i++)
        if (a->isnew[i] && a->anchor[i] == i && !off[i])
            a->anchor[i] = ML_ACCUM_NONE;
    release(a, off);
    release(a, kid);
    release(a, queue);
    return 0;
}

/* ---- grouping ---- */

static int
row_key_cmp(const void *x, const void *y)
{
    const struct ml_accum_row *a = x, *b = y;

    if (a->anchor != b->anchor)
        return a->anchor < b->anchor ? -1 : 1;
    if (a->type != b->type)
        return a->type < b->type ? -1 : 1;
    return a->example < b->example ? -1 : a->example > b->example;
}

static int
row_bytes_cmp(const void *x, const void *y)
{
    const struct ml_accum_row *a = x, *b = y;

    if (a->bytes != b->bytes)
        return a->bytes < b->bytes ? 1 : -1;
    return a->type < b->type ? -1 : a->type > b->type;
}

static int
group_cmp(const void *x, const void *y)
{
    const struct ml_accum_group *a = x, *b = y;

    if (a->bytes != b->bytes)
        return a->bytes < b->bytes ? 1 : -1;
    return a->anchor < b->anchor ? -1 : a->anchor > b->anchor;
}

int
ml_accum_group(struct ml_accum_row *rows, size_t *nrows,
               struct ml_accum_group **groups, size_t *ngroups)
{
    struct ml_accum_group *g;
    size_t nr = *nrows, k = 0, ng = 0;

    *groups = NULL;
    *ngroups = 0;
    if (nr == 0)
        return 0;
    ml_sort(rows, nr, sizeof *rows, row_key_cmp);
    for (size_t i = 0; i < nr; i++) {
        if (k > 0 && rows[k - 1].anchor == rows[i].anchor &&
            rows[k - 1].type == rows[i].type) {
            rows[k - 1].count += rows[i].count;
            rows[k - 1].bytes += rows[i].bytes;
            if (rows[i].depth < rows[k - 1].depth)
                rows[k - 1].depth = rows[i].depth;
        } else {
            rows[k++] = rows[i];
        }
    }
    *nrows = nr = k;
    if ((g = malloc(nr * sizeof *g)) == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < nr;) {
        struct ml_accum_group *x = &g[ng++];
        size_t j = i;

        *x = (struct ml_accum_group){ .anchor = rows[i].anchor, .first = i };
        for (; j < nr && rows[j].anchor == x->anchor; j++) {
            x->count += rows[j].count;
            x->bytes += rows[j].bytes;
            if (rows[j].depth > x->depth)
                x->depth = rows[j].depth;
        }
        x->n = j - i;
        ml_sort(rows + i, x->n, sizeof *rows, row_bytes_cmp);
        i = j;
    }
    ml_sort(g, ng, sizeof *g, group_cmp);
    *groups = g;
    *ngroups = ng;
    return 0;
}

/* ---- the rule of "new" ---- */

static int
add_edge(struct ml_accum_side *s, uint32_t p, uint32_t child)
{
    if (s->nedge == s->edgecap) {
        size_t cap = s->edgecap ? s->edgecap * 2 : 1024;
        void *q = realloc(s->edge, cap * sizeof *s->edge);

        if (q == NULL)
            return -ENOMEM;
        s->edge = q;
        s->edgecap = cap;
    }
    s->edge[s->nedge][0] = p;
    s->edge[s->nedge++][1] = child;
    return 0;
}

/* Was the object at this address in a (whether or not it is really the
 * same object: the REUSED test reads what a had). */
#define MATCHED(st) ((st) == ML_ACCUM_OLD || (st) == ML_ACCUM_REUSED)

int
ml_accum_referrers(struct ml_accum_side *s, uint32_t child,
                   const uint32_t *par, size_t n)
{
    size_t i;

    if (child >= s->n)
        return 0;
    if (s->state[child] == ML_ACCUM_OLD) {
        for (i = 0; i < n; i++)
            if (par[i] >= s->n || par[i] == child ||
                MATCHED(s->state[par[i]]))
                return 0;       /* an old referrer: the same object */
        if (n == 0)
            return 0;
        s->state[child] = ML_ACCUM_REUSED;
    }
    if (n > 0)
        s->referred[child] = 1;
    for (i = 0; i < n; i++) {
        uint32_t p = par[i];
        int rc;

        if (p >= s->n || p == child)
            continue;
        if (s->state[p] == ML_ACCUM_OLD) {
            if (s->anchor[child] == ML_ACCUM_NONE) {
                s->anchor[child] = p;
                s->depth[child] = 1;
            }
            continue;
        }
        if ((rc = add_edge(s, p, child)) != 0)
            return rc;
    }
    return 0;
}

int
ml_accum_settle(struct ml_accum_side *s,
                int (*reused)(void *ctx, uint32_t i), void *ctx)
{
    int rc;

    for (size_t i = 0; i < s->n; i++) {
        uint32_t r = s->anchor[i];

        if (s->state[i] != ML_ACCUM_OLD && s->state[i] != ML_ACCUM_REUSED &&
            r != ML_ACCUM_NONE && s->state[r] == ML_ACCUM_REUSED) {
            s->anchor[i] = ML_ACCUM_NONE;
            if ((rc = add_edge(s, r, (uint32_t)i)) != 0)
                return rc;
        }
    }
    for (size_t i = 0; i < s->n; i++) {
        if (s->state[i] != ML_ACCUM_REUSED)
            continue;
        if ((rc = reused(ctx, (uint32_t)i)) != 0)
            return rc;
        s->state[i] = ML_ACCUM_NEW;
    }
    return 0;
}
