/* SPDX-License-Identifier: MIT
 *
 * graph_diff.c -- the loader's side of the diff (graph_diff.h): b's
 * objects marked old or new by address and type name against a, then
 * the rule, the search and the grouping of common/accum.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "graph_diff.h"

struct reused {
    const struct ml_graph *a, *b;
    const uint32_t *tmap;
    uint8_t *seen;
    struct ml_graph_diff *d;
};

/* a's object at b's object i's address with its type, or NONE. */
static uint32_t
same_in_a(const struct reused *r, size_t i)
{
    uint32_t j = ml_graph_find(r->a, ml_graph_addr(r->b, i));

    if (j == ML_GRAPH_NONE || ml_graph_type(r->a, j) !=
                              r->tmap[ml_graph_type(r->b, i)])
        return ML_GRAPH_NONE;
    return j;
}

static int
on_reused(void *ctx, uint32_t i)
{
    struct reused *r = ctx;
    uint32_t j = same_in_a(r, i);

    if (j != ML_GRAPH_NONE)
        r->seen[j] = 0;
    r->d->count++;
    r->d->bytes += ml_graph_size(r->b, i);
    return 0;
}

void
ml_graph_diff_free(struct ml_graph_diff *d)
{
    free(d->state);
    free(d->anchor);
    free(d->depth);
    free(d->rows);
    free(d->groups);
    memset(d, 0, sizeof *d);
}

int
ml_graph_diff(const struct ml_graph *a, const struct ml_graph *b,
              struct ml_graph_diff *out)
{
    size_t n = b->n;
    uint32_t *tmap = NULL;
    uint8_t *seen = NULL;
    struct ml_accum_side s = { 0 };
    struct reused r = { a, b, NULL, NULL, out };
    int rc = -ENOMEM;

    memset(out, 0, sizeof *out);
    if (n >= UINT32_MAX - 2)
        return -E2BIG;
    /* b's type ids as a's (NONE: a has no such type) */
    tmap = malloc((b->ntypes + 1) * sizeof *tmap);
    seen = calloc(a->n + 1, 1);
    out->state = calloc(n + 1, 1);
    out->anchor = malloc((n + 1) * sizeof *out->anchor);
    out->depth = calloc(n + 1, sizeof *out->depth);
    s.referred = calloc(n + 1, 1);
    if (!tmap || !seen || !out->state || !out->anchor || !out->depth ||
        !s.referred)
        goto out;
    for (size_t t = 0; t < b->ntypes; t++)
        tmap[t] = ml_graph_type_id(a, ml_graph_type_name(b, (uint32_t)t));
    r.tmap = tmap;
    r.seen = seen;
    for (size_t i = 0; i < n; i++) {
        uint32_t j = same_in_a(&r, i);

        out->anchor[i] = ML_ACCUM_NONE;
        if (j != ML_GRAPH_NONE) {
            seen[j] = 1;
            continue;
        }
        out->state[i] = ML_ACCUM_NEW;
        out->count++;
        out->bytes += ml_graph_size(b, i);
    }
    s.n = n;
    s.state = out->state;
    s.anchor = out->anchor;
    s.depth = out->depth;
    for (size_t i = 0; i < n; i++) {
        uint32_t p0 = b->par_start[i], p1 = b->par_start[i + 1];

        if ((rc = ml_accum_referrers(&s, (uint32_t)i, b->par + p0,
                                     p1 - p0)) != 0)
            goto out;
    }
    if ((rc = ml_accum_settle(&s, on_reused, &r)) != 0)
        goto out;
    for (size_t j = 0; j < a->n; j++)
        if (!seen[j]) {
            out->gone_count++;
            out->gone_bytes += ml_graph_size(a, j);
        }

    struct ml_accum ac = {
        .n = n, .isnew = s.state, .referred = s.referred,
        .edge = (const uint32_t (*)[2])s.edge, .nedge = s.nedge,
        .anchor = s.anchor, .depth = s.depth,
    };
    if ((rc = ml_accum_search(&ac)) != 0)
        goto out;
    free(s.edge);
    s.edge = NULL;
    rc = -ENOMEM;
    if ((out->rows = malloc((out->count + 1) * sizeof *out->rows)) == NULL)
        goto out;
    for (size_t i = 0; i < n; i++)
        if (s.state[i] == ML_ACCUM_NEW)
            out->rows[out->nrows++] = (struct ml_accum_row){
                s.anchor[i], ml_graph_type(b, i), s.depth[i], (uint32_t)i,
                1, ml_graph_size(b, i) };
    rc = ml_accum_group(out->rows, &out->nrows, &out->groups,
                        &out->ngroups);
out:
    free(tmap);
    free(seen);
    free(s.referred);
    free(s.edge);
    return rc;
}
