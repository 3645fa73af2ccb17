/* SPDX-License-Identifier: MIT
 *
 * graph_diff.h -- the new objects of one loaded dump against an earlier
 * one of the same process, grouped by accumulation point: the loader's
 * ObjManager.diff, over the graphs' arrays, by the store's rule of "new"
 * and its grouping (common/accum.h), so both give one answer.
 */
#ifndef ML_GRAPH_DIFF_H
#define ML_GRAPH_DIFF_H

#include <stddef.h>
#include <stdint.h>

#include "accum.h"
#include "graph.h"

struct ml_graph_diff {
    uint8_t *state;             /* b->n: ML_ACCUM_OLD or ML_ACCUM_NEW */
    uint32_t *anchor;           /* b->n: accumulation point or NONE */
    uint32_t *depth;            /* b->n: hops below it */
    uint64_t count, bytes;      /* the new objects of b */
    uint64_t gone_count, gone_bytes;    /* a's objects not in b */
    /* rows[].type and .example are b's type ids and indexes; anchors
     * are b's indexes */
    struct ml_accum_row *rows;
    size_t nrows;
    struct ml_accum_group *groups;      /* biggest first */
    size_t ngroups;
};

/* Compares b with a (both finished; b's referrers computed: par_start).
 * 0, -ENOMEM or -E2BIG; *out freed with ml_graph_diff_free either way. */
int ml_graph_diff(const struct ml_graph *a, const struct ml_graph *b,
                  struct ml_graph_diff *out);
void ml_graph_diff_free(struct ml_graph_diff *d);

#endif /* ML_GRAPH_DIFF_H */
