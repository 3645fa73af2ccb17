/* SPDX-License-Identifier: MIT
 *
 * accum.c -- the accumulation points of new objects (accum.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "accum.h"

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
