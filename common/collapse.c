/* SPDX-License-Identifier: MIT
 *
 * collapse.c -- collapse_instance_dicts on the flat graph; see collapse.h.
 *
 * Linear: one pass to count references, one to pick the (instance, dict)
 * pairs, one to build the new refs CSR, one to compact the arrays, one to
 * rebuild the address map.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "collapse.h"

/* Types whose objects own a dict that is not an instance __dict__ in the
 * sense of meliae 0.5 (or is one, but shown better as it is). */
static const char *const never_instances[] = {
    "dict", "module", "type", "function", "builtin_function_or_method",
    "method", "code", "frame", "cell", "list", "tuple", "set", "frozenset",
    "classmethod", "staticmethod", "property", "functools.partial",
    "mappingproxy", "generator", "coroutine", "async_generator",
    "collections.OrderedDict", "collections.defaultdict", "super",
    "getset_descriptor", "member_descriptor", "wrapper_descriptor",
    "method_descriptor", "classmethod_descriptor", "NoneType",
    NULL,
};

/* The dict module i folds, as meliae 0.5 has it: the module's only ref is
 * a dict that nothing else refers to (a module whose functions hold its
 * globals keeps its dict).  Else ML_GRAPH_NONE. */
static uint32_t
module_dict(const struct ml_graph *g, size_t i, uint32_t dict_t,
            const uint32_t *nref)
{
    uint64_t a = g->ref_start[i];
    uint32_t r;

    if (g->ref_start[i + 1] - a != 1)
        return ML_GRAPH_NONE;
    r = g->refs[a];
    if (r >= g->n || r == i || ml_graph_type(g, r) != dict_t || nref[r] != 1)
        return ML_GRAPH_NONE;
    return r;
}

int64_t
ml_graph_collapse_instance_dicts(struct ml_graph *g)
{
    return ml_graph_collapse_renumbering(g, NULL);
}

int64_t
ml_graph_collapse_renumbering(struct ml_graph *g, uint32_t **renumber)
{
    const size_t n = g->n;
    uint32_t dict_t, type_t, module_t;
    uint32_t *nref = NULL, *dictof = NULL, *newidx = NULL, *stamp = NULL;
    uint32_t *nrefs_arr = NULL;
    uint32_t *nstart = NULL;
    uint8_t *skip_t = NULL, *removed = NULL;
    size_t count = 0, nnew;
    int64_t rc = -ENOMEM;

    if (renumber != NULL)
        *renumber = NULL;
    if (!g->finished)
        return -EINVAL;
    dict_t = ml_graph_type_id(g, "dict");
    if (dict_t == ML_GRAPH_NONE || n == 0)
        return 0;
    type_t = ml_graph_type_id(g, "type");
    module_t = ml_graph_type_id(g, "module");

    nref = calloc(n, sizeof(*nref));
    dictof = malloc(n * sizeof(*dictof));
    removed = calloc(n, 1);
    skip_t = calloc(g->ntypes, 1);
    if (nref == NULL || dictof == NULL || removed == NULL || skip_t == NULL)
        goto out;
    for (const char *const *s = never_instances; *s != NULL; s++) {
        uint32_t t = ml_graph_type_id(g, *s);

        if (t != ML_GRAPH_NONE)
            skip_t[t] = 1;
    }
    for (uint64_t k = 0; k < g->nrefs; k++)
        if (g->refs[k] < n && nref[g->refs[k]] < UINT32_MAX)
            nref[g->refs[k]]++;

    /* Pick the pairs. */
    for (size_t i = 0; i < n; i++) {
        const char *tn = ml_graph_type_name(g, ml_graph_type(g, i));
        uint32_t cand = ML_GRAPH_NONE;
        int ncand = 0, has_type = 0;

        dictof[i] = ML_GRAPH_NONE;
        if (ml_graph_type(g, i) == module_t) {
            if ((cand = module_dict(g, i, dict_t, nref)) != ML_GRAPH_NONE) {
                dictof[i] = cand;
                removed[cand] = 1;
                count++;
            }
            continue;
        }
        /* Named objects are modules, functions, classes (of any
         * metaclass) and code: never instances with a __dict__ to fold. */
        if (skip_t[ml_graph_type(g, i)] || (g->vkind[i] & ML_GRAPH_VNAME))
            continue;
        for (uint64_t k = g->ref_start[i]; k < g->ref_start[i + 1]; k++) {
            uint32_t r = g->refs[k];

            if (r >= n) {
                has_type = 1;
            } else if (ml_graph_type(g, r) == dict_t) {
                if (nref[r] == 1 && r != i) {
                    cand = r;
                    ncand++;
                }
            } else if (ml_graph_type(g, r) == type_t && (g->vkind[r] & ML_GRAPH_VNAME)
                       && strcmp(ml_graph_name(g, r), tn) == 0) {
                has_type = 1;
            }
        }
        /* What a __dict__-holding instance refers to is its dict and its
         * class (subtype_traverse), plus, on 3.13, the dict's own values
         * again.  Anything else -- an inline attribute's name before a
         * dict-valued attribute, the items of a list subclass -- means the
         * dict is an attribute or an item, not the instance's __dict__. */
        if (ncand == 1 && has_type && !removed[cand]
                && ml_graph_len(g, i) == ML_GRAPH_NOLEN) {
            for (uint64_t k = g->ref_start[i]; k < g->ref_start[i + 1]; k++) {
                uint32_t r = g->refs[k];
                int ok = r == cand || r >= n
                    || (ml_graph_type(g, r) == type_t && (g->vkind[r] & ML_GRAPH_VNAME));

                for (uint64_t m = g->ref_start[cand];
                     !ok && m < g->ref_start[cand + 1]; m++)
                    ok = g->refs[m] == r;
                if (!ok) {
                    ncand = 0;
                    break;
                }
            }
        }
        if (ncand == 1 && has_type && !removed[cand]
                && ml_graph_len(g, i) == ML_GRAPH_NOLEN) {
            dictof[i] = cand;
            removed[cand] = 1;
            count++;
        }
    }
    if (count == 0) {
        rc = 0;
        goto out;
    }
    nnew = n - count;

    newidx = malloc(n * sizeof(*newidx));
    nstart = malloc((nnew + 1) * sizeof(*nstart));
    nrefs_arr = malloc((g->nrefs ? g->nrefs : 1) * sizeof(*nrefs_arr));
    stamp = calloc(n + g->ndangling, sizeof(*stamp));
    if (newidx == NULL || nstart == NULL || nrefs_arr == NULL || stamp == NULL)
        goto out;
    {
        /* Room for the folded sizes of 65535 or more, so that nothing
         * fails once the graph is being changed. */
        size_t nbig = 0;

        for (size_t i = 0; i < n; i++)
            nbig += dictof[i] != ML_GRAPH_NONE
                && ml_graph_size(g, i) + ml_graph_size(g, dictof[i])
                   >= ML_GRAPH_SIZE16_BIG;
        if (nbig > 0 && ml_graph_reserve_bigsize(g, nbig) < 0)
            goto out;
    }
    for (size_t i = 0, j = 0; i < n; i++)
        newidx[i] = removed[i] ? ML_GRAPH_NONE : (uint32_t)j++;

    /* New refs, in new index order; dangling indices shift down by count. */
    {
        uint64_t w = 0;
        size_t j = 0;

#define REMAP(r) ((r) < n ? newidx[(r)] : (uint32_t)((r) - count))
        for (size_t i = 0; i < n; i++) {
            uint32_t d = dictof[i];
            uint64_t a = g->ref_start[i], b = g->ref_start[i + 1];

            if (removed[i])
                continue;
            nstart[j++] = (uint32_t)w;
            if (d == ML_GRAPH_NONE) {
                for (uint64_t k = a; k < b; k++)
                    nrefs_arr[w++] = REMAP(g->refs[k]);
                continue;
            }
            for (uint64_t k = g->ref_start[d]; k < g->ref_start[d + 1]; k++) {
                uint32_t r = g->refs[k];

                /* A dict never refers to a removed dict: each of those has
                 * its instance as only referrer. */
                stamp[r] = (uint32_t)i + 1;
                nrefs_arr[w++] = REMAP(r);
            }
            for (uint64_t k = a; k < b; k++) {
                uint32_t r = g->refs[k];

                if (r == d)
                    continue;
                if (stamp[r] == (uint32_t)i + 1 && k + 1 < b)
                    continue;
                nrefs_arr[w++] = REMAP(r);
            }
        }
#undef REMAP
        nstart[nnew] = (uint32_t)w;
        g->nrefs = w;
    }

    /* Sizes, then compaction of the per-object arrays (j <= i: in place). */
    for (size_t i = 0; i < n; i++)
        if (dictof[i] != ML_GRAPH_NONE)     /* room reserved: cannot fail */
            ml_graph_set_size(g, i, ml_graph_size(g, i)
                              + ml_graph_size(g, dictof[i]));
    for (size_t i = 0; i < n; i++) {
        uint32_t j = newidx[i];

        if (j == ML_GRAPH_NONE || j == i)
            continue;
        ml_graph_move_object(g, j, i);
    }
    free(g->ref_start);
    g->ref_start = nstart;
    nstart = NULL;
    free(g->refs);
    g->refs = nrefs_arr;
    nrefs_arr = NULL;
    g->n = nnew;
    ml_graph_drop_parents(g);
    ml_graph_rehash(g);             /* same capacity: n only shrank */
    if (renumber != NULL) {
        *renumber = newidx;
        newidx = NULL;
    }
    rc = (int64_t)count;
out:
    free(nref);
    free(dictof);
    free(removed);
    free(skip_t);
    free(newidx);
    free(nstart);
    free(nrefs_arr);
    free(stamp);
    return rc;
}
