/* SPDX-License-Identifier: MIT
 *
 * birthsites.c -- birth sites grouped; see birthsites.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "birthsites.h"

static inline size_t
slot(uint64_t key, size_t cap)
{
    return (size_t)(key * 0x9e3779b97f4a7c15ull >> 20) & (cap - 1);
}

int
ml_births_add(struct ml_births *b, uint32_t group, uint32_t trace,
              uint64_t bytes)
{
    uint64_t key = ((uint64_t)group << 32 | trace) + 1;
    size_t i;

    if (b->n * 2 >= b->cap) {   /* at most half full */
        size_t ncap = b->cap ? b->cap * 2 : 1024;
        struct ml_births_acc *nv = calloc(ncap, sizeof(*nv));

        if (nv == NULL)
            return -ENOMEM;
        for (size_t k = 0; k < b->cap; k++) {
            if (b->v[k].key == 0)
                continue;
            for (i = slot(b->v[k].key, ncap); nv[i].key != 0;
                 i = (i + 1) & (ncap - 1))
                ;
            nv[i] = b->v[k];
        }
        free(b->v);
        b->v = nv;
        b->cap = ncap;
    }
    for (i = slot(key, b->cap); b->v[i].key != 0 && b->v[i].key != key;
         i = (i + 1) & (b->cap - 1))
        ;
    if (b->v[i].key == 0) {
        b->v[i].key = key;
        b->n++;
    }
    b->v[i].count++;
    b->v[i].bytes += bytes;
    return 0;
}

static int
acc_cmp(const void *x, const void *y)
{
    const struct ml_births_acc *a = x, *b = y;
    uint32_t ga = ml_births_group(a), gb = ml_births_group(b);
    uint32_t ta = ml_births_trace(a), tb = ml_births_trace(b);

    if (ga != gb)
        return ga < gb ? -1 : 1;
    if ((ta == ML_BIRTHS_ALL) != (tb == ML_BIRTHS_ALL))
        return ta == ML_BIRTHS_ALL ? -1 : 1;
    if (a->bytes != b->bytes)
        return a->bytes < b->bytes ? 1 : -1;
    return ta < tb ? -1 : ta > tb;
}

size_t
ml_births_sort(struct ml_births *b)
{
    size_t k = 0;

    for (size_t i = 0; i < b->cap; i++)
        if (b->v[i].key != 0)
            b->v[k++] = b->v[i];
    if (k > 1)
        qsort(b->v, k, sizeof(*b->v), acc_cmp);
    b->n = k;
    return k;
}

void
ml_births_free(struct ml_births *b)
{
    free(b->v);
    memset(b, 0, sizeof(*b));
}

static int
site_cmp(const void *x, const void *y)
{
    const struct ml_births_site *a = x, *b = y;

    if (a->bytes != b->bytes)
        return a->bytes < b->bytes ? 1 : -1;
    if (a->count != b->count)
        return a->count < b->count ? 1 : -1;
    return a->trace < b->trace ? -1 : a->trace > b->trace;
}

long
ml_births_sites(const struct ml_births_acc *run, size_t n,
                ml_births_site_fn site_of, void *ctx,
                struct ml_births_site *out)
{
    /* site key -> index in out + 1: sites found in O(1), not by a scan of
     * those so far (a heap may have thousands of allocating lines) */
    size_t cap = 16, ns = 0;
    uint32_t *map;

    while (cap < n * 2)
        cap *= 2;
    if ((map = calloc(cap, sizeof(*map))) == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        uint64_t site;
        uint32_t trace = ml_births_trace(&run[i]);
        size_t h;
        int rc = site_of(ctx, trace, &site);

        if (rc < 0) {
            free(map);
            return rc;
        }
        if (rc > 0)
            continue;
        for (h = slot(site + 1, cap); map[h] != 0 && out[map[h] - 1].site != site;
             h = (h + 1) & (cap - 1))
            ;
        if (map[h] != 0) {      /* run is by bytes: the first keeps its trace */
            out[map[h] - 1].count += run[i].count;
            out[map[h] - 1].bytes += run[i].bytes;
            continue;
        }
        out[ns] = (struct ml_births_site){ site, trace, run[i].count,
                                           run[i].bytes };
        map[h] = (uint32_t)++ns;
    }
    free(map);
    if (ns > 1)
        qsort(out, ns, sizeof(*out), site_cmp);
    return (long)ns;
}
