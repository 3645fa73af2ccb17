/* SPDX-License-Identifier: MIT
 *
 * graph_path.c -- the loader's chains to a root and their paths
 * (graph_path.h); the store's are in store/report_refs.c and
 * store/report_paths.c, the path text in paths.c for both.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "graph_path.h"

#define PRED_START UINT32_MAX

/* 2 for a module, 1 for a thread's frame, else 0. */
static int
root_kind(const struct ml_graph *g, uint32_t i)
{
    const char *t = ml_graph_type_name(g, ml_graph_type(g, i));

    return strcmp(t, "module") == 0 ? 2
        : strcmp(t, "<thread frame>") == 0 ? 1 : 0;
}

int
ml_graph_chain_to_root(const struct ml_graph *g, uint32_t start,
                       uint32_t **chain, size_t *n)
{
    uint32_t *pred = NULL, *queue = NULL, found = ML_GRAPH_NONE;
    uint32_t unref = ML_GRAPH_NONE, frame = ML_GRAPH_NONE;
    size_t qi = 0, qn = 0, level_end, len;
    int rc = 1;

    *chain = NULL;
    *n = 0;
    if (start >= g->n || g->par_start == NULL)
        return -EINVAL;
    /* pred[i]: the child i was reached from, + 1; 0 unvisited */
    pred = calloc(g->n, sizeof *pred);
    queue = malloc(g->n * sizeof *queue);
    if (pred == NULL || queue == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    pred[start] = PRED_START;
    queue[qn++] = start;
    level_end = qn;
    while (qi < qn && found == ML_GRAPH_NONE) {
        uint32_t node = queue[qi++];
        uint32_t b = g->par_start[node], e = g->par_start[node + 1];

        if (node != start && root_kind(g, node) == 2) {
            found = node;
            break;
        }
        if (node != start && root_kind(g, node) == 1) {
            /* after the modules of its depth: python -m's runpy frame
             * holds __main__'s dict in a local */
            if (frame == ML_GRAPH_NONE)
                frame = node;
            goto level;
        }
        if (b == e && unref == ML_GRAPH_NONE)
            unref = node;
        for (uint32_t k = b; k < e; k++) {
            uint32_t p = g->par[k];

            if (pred[p] != 0)
                continue;
            pred[p] = node + 1;
            queue[qn++] = p;
        }
level:
        /* a module or frame of the same depth goes before an object
         * nothing refers to (a module's code runs in a function that
         * holds its globals and that nothing refers to) */
        if (qi == level_end) {
            if (frame != ML_GRAPH_NONE)
                found = frame;
            else if (unref != ML_GRAPH_NONE)
                found = unref;
            level_end = qn;
        }
    }
    if (found == ML_GRAPH_NONE)
        found = frame != ML_GRAPH_NONE ? frame : unref;
    if (found == ML_GRAPH_NONE)
        goto out;
    len = 1;
    for (uint32_t x = found; pred[x] != PRED_START; x = pred[x] - 1)
        len++;
    if ((*chain = malloc(len * sizeof **chain)) == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    *n = len;
    len = 0;
    for (uint32_t x = found;; x = pred[x] - 1) {
        (*chain)[len++] = x;
        if (pred[x] == PRED_START)
            break;
    }
    rc = 0;
out:
    free(pred);
    free(queue);
    return rc;
}

static int
gget(void *ctx, uint64_t addr, uint64_t child, struct ml_path_obj *o)
{
    const struct ml_graph *g = ctx;
    uint32_t i = ml_graph_find(g, addr);
    const char *s;

    if (i == ML_GRAPH_NONE)
        return -ENOENT;
    memset(o, 0, sizeof *o);
    o->address = addr;
    o->type = ml_graph_type_name(g, ml_graph_type(g, i));
    o->type_len = strlen(o->type);
    if ((s = ml_graph_name(g, i)) != NULL) {
        o->name = s;
        o->name_len = strlen(s);
    }
    o->vkind = ml_graph_vkind(g, i);
    if ((s = ml_graph_value(g, i)) != NULL) {
        o->value = s;
        o->value_len = ml_graph_value_len(g, i);
    }
    o->len = ml_graph_len(g, i);
    if (o->len == ML_GRAPH_NOLEN)
        o->len = UINT64_MAX;
    o->child_at = ML_PATH_NOT_HELD;
    if (child != 0) {
        uint32_t b = g->ref_start[i], e = g->ref_start[i + 1];

        for (uint32_t k = b; k < e; k++)
            if (ml_graph_ref_addr(g, g->refs[k]) == child) {
                o->child_at = k - b;
                o->child_prev = k > b ? ml_graph_ref_addr(g, g->refs[k - 1]) : 0;
                break;
            }
    }
    return 0;
}

int
ml_graph_path(const struct ml_graph *g, const uint32_t *chain, size_t n,
              struct ml_path *out)
{
    uint64_t *addrs = malloc((n ? n : 1) * sizeof *addrs);
    int rc;

    if (addrs == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        addrs[i] = ml_graph_addr(g, chain[i]);
    rc = ml_path_build(addrs, n, gget, (void *)g, out);
    free(addrs);
    return rc;
}
