/* SPDX-License-Identifier: MIT
 *
 * graph_wide.c -- the side table of common/graph_wide.h.
 */
#include "graph_wide.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int
ml_graph_wide_reserve(struct ml_graph_wide *w, size_t extra)
{
    size_t ncap = w->cap ? w->cap : 64;
    void *ne;

    if (w->n + extra <= w->cap)
        return 0;
    while (ncap < w->n + extra)
        ncap *= 2;
    ne = realloc(w->e, ncap * sizeof(*w->e));
    if (ne == NULL)
        return -ENOMEM;
    w->e = ne;
    w->cap = ncap;
    return 0;
}

void
ml_graph_wide_append(struct ml_graph_wide *w, uint64_t addr, uint64_t val)
{
    w->e[w->n].addr = addr;
    w->e[w->n].val = val;
    w->e[w->n++].seq = w->next_seq++;
}

static struct ml_graph_wide_ent *
find(const struct ml_graph_wide *w, uint64_t addr)
{
    size_t lo = 0, hi = w->nsorted;

    while (lo < hi) {           /* the first entry >= addr */
        size_t mid = lo + (hi - lo) / 2;

        if (w->e[mid].addr < addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < w->nsorted && w->e[lo].addr == addr)
        return &w->e[lo];
    /* The tail holds only entries later than the sorted part's. */
    for (size_t k = w->nsorted; k < w->n; k++)
        if (w->e[k].addr == addr)
            return &w->e[k];
    return NULL;
}

uint64_t
ml_graph_wide_get(const struct ml_graph_wide *w, uint64_t addr, uint64_t none)
{
    const struct ml_graph_wide_ent *p = find(w, addr);

    return p != NULL ? p->val : none;
}

void
ml_graph_wide_set(struct ml_graph_wide *w, uint64_t addr, uint64_t val)
{
    struct ml_graph_wide_ent *p = find(w, addr);
    size_t tail;

    if (p != NULL) {
        p->val = val;
        return;
    }
    ml_graph_wide_append(w, addr, val);
    tail = w->n - w->nsorted;
    if (tail > 64 && tail > w->nsorted / 8)
        ml_graph_wide_sort(w);
}

int
ml_graph_wide_take(struct ml_graph_wide *w, struct ml_graph_wide *other)
{
    if (other->n > 0) {
        if (ml_graph_wide_reserve(w, other->n) < 0)
            return -ENOMEM;
        for (size_t k = 0; k < other->n; k++) {
            w->e[w->n + k] = other->e[k];
            w->e[w->n + k].seq += w->next_seq;
        }
        w->n += other->n;
    }
    w->next_seq += other->next_seq;
    ml_graph_wide_free(other);
    return 0;
}

static int
ent_cmp(const void *pa, const void *pb)
{
    const struct ml_graph_wide_ent *a = pa, *b = pb;

    if (a->addr != b->addr)
        return a->addr < b->addr ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

void
ml_graph_wide_sort(struct ml_graph_wide *w)
{
    if (w->n > 1 && w->nsorted < w->n)
        qsort(w->e, w->n, sizeof(*w->e), ent_cmp);
    w->nsorted = w->n;
}

void
ml_graph_wide_free(struct ml_graph_wide *w)
{
    free(w->e);
    memset(w, 0, sizeof(*w));
}
