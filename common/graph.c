/* SPDX-License-Identifier: MIT
 *
 * graph.c -- the flat-array dump graph; see graph.h.
 *
 * Growth is by doubling, so loading n objects makes O(log n) allocations,
 * none per object.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "ml-common.h"

void
ml_graph_init(struct ml_graph *g)
{
    memset(g, 0, sizeof(*g));
}

void
ml_graph_free(struct ml_graph *g)
{
    free(g->addr);
    free(g->type);
    free(g->size);
    free(g->len);
    free(g->name);
    free(g->value);
    free(g->vkind);
    free(g->ref_start);
    free(g->raw);
    free(g->refs);
    free(g->dangling);
    free(g->par_start);
    free(g->par);
    free(g->types);
    free(g->tmap);
    free(g->map);
    free(g->arena);
    free(g->biglen);
    free(g->nulvals);
    ml_graph_init(g);
}

/* Grows *p (elements of size es) to hold n. */
static int
grow(void **p, size_t es, size_t n)
{
    void *np = realloc(*p, n * es);

    if (np == NULL)
        return -ENOMEM;
    *p = np;
    return 0;
}

static int
grow_objects(struct ml_graph *g)
{
    size_t ncap = g->cap ? g->cap * 2 : 1024;

    if (ncap >= UINT32_MAX - 1)
        ncap = UINT32_MAX - 1;
    if (ncap <= g->n)
        return ML_ETOOBIG;
    if (grow((void **)&g->addr, sizeof(*g->addr), ncap) < 0
            || grow((void **)&g->type, sizeof(*g->type), ncap) < 0
            || grow((void **)&g->size, sizeof(*g->size), ncap) < 0
            || grow((void **)&g->len, sizeof(*g->len), ncap) < 0
            || grow((void **)&g->name, sizeof(*g->name), ncap) < 0
            || grow((void **)&g->value, sizeof(*g->value), ncap) < 0
            || grow((void **)&g->vkind, sizeof(*g->vkind), ncap) < 0
            || grow((void **)&g->ref_start, sizeof(*g->ref_start), ncap + 1) < 0)
        return -ENOMEM;
    g->cap = ncap;
    return 0;
}

/* Appends s[0..n) and a NUL; *off1 = offset + 1. */
static int
arena_put(struct ml_graph *g, const char *s, size_t n, uint32_t *off1)
{
    if (g->arena_len + n + 1 > g->arena_cap) {
        size_t ncap = g->arena_cap ? g->arena_cap : 1 << 16;
        char *na;

        while (ncap < g->arena_len + n + 1)
            ncap *= 2;
        if (ncap > UINT32_MAX)
            ncap = UINT32_MAX;
        if (g->arena_len + n + 1 > ncap)
            return ML_ETOOBIG;
        na = realloc(g->arena, ncap);
        if (na == NULL)
            return -ENOMEM;
        g->arena = na;
        g->arena_cap = ncap;
    }
    memcpy(g->arena + g->arena_len, s, n);
    g->arena[g->arena_len + n] = '\0';
    *off1 = (uint32_t)(g->arena_len + 1);
    g->arena_len += n + 1;
    return 0;
}

static size_t
hash_str(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;

    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return (size_t)h;
}

/* The id of type name s[0..n), or ML_GRAPH_NONE; *slot is where the type
 * map would hold it. */
static uint32_t
find_type(const struct ml_graph *g, const char *s, size_t n, size_t *slot)
{
    size_t i;

    if (g->tmap == NULL)
        return ML_GRAPH_NONE;
    for (i = hash_str(s, n) & g->tmap_mask; g->tmap[i] != 0;
         i = (i + 1) & g->tmap_mask) {
        const char *tn = g->arena + g->types[g->tmap[i] - 1];

        if (strncmp(tn, s, n) == 0 && tn[n] == '\0') {
            *slot = i;
            return g->tmap[i] - 1;
        }
    }
    *slot = i;
    return ML_GRAPH_NONE;
}

uint32_t
ml_graph_type_id(const struct ml_graph *g, const char *name)
{
    size_t slot;

    return find_type(g, name, strlen(name), &slot);
}

/* The id of type name s[0..n), interning it on first sight. */
static int
intern_type(struct ml_graph *g, const char *s, size_t n, uint32_t *id)
{
    size_t i;
    uint32_t off1;
    int rc;

    if (g->tmap == NULL || (g->ntypes + 1) * 2 > g->tmap_mask + 1) {
        size_t ncap = g->tmap ? (g->tmap_mask + 1) * 2 : 256;
        uint32_t *nm = calloc(ncap, sizeof(*nm));

        if (nm == NULL)
            return -ENOMEM;
        for (size_t t = 0; t < g->ntypes; t++) {
            const char *tn = g->arena + g->types[t];

            for (i = hash_str(tn, strlen(tn)) & (ncap - 1); nm[i] != 0;
                 i = (i + 1) & (ncap - 1))
                ;
            nm[i] = (uint32_t)t + 1;
        }
        free(g->tmap);
        g->tmap = nm;
        g->tmap_mask = ncap - 1;
    }
    if ((*id = find_type(g, s, n, &i)) != ML_GRAPH_NONE)
        return 0;
    if (g->ntypes == g->types_cap) {
        size_t ncap = g->types_cap ? g->types_cap * 2 : 64;

        if (grow((void **)&g->types, sizeof(*g->types), ncap) < 0)
            return -ENOMEM;
        g->types_cap = ncap;
    }
    if ((rc = arena_put(g, s, n, &off1)) < 0)
        return rc;
    g->types[g->ntypes] = off1 - 1;
    g->tmap[i] = (uint32_t)g->ntypes + 1;
    *id = (uint32_t)g->ntypes++;
    return 0;
}

/* Fills map (capacity mask + 1, zeroed) from addr[0..n). */
static void
fill_map(uint32_t *map, size_t mask, const uint64_t *addr, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        size_t i;

        for (i = ml_graph_hash64(addr[j]) & mask; map[i] != 0; i = (i + 1) & mask)
            ;
        map[i] = (uint32_t)j + 1;
    }
}

static int
grow_map(struct ml_graph *g)
{
    size_t ncap = g->map ? (g->map_mask + 1) * 2 : 4096;
    uint32_t *nm = calloc(ncap, sizeof(*nm));

    if (nm == NULL)
        return -ENOMEM;
    fill_map(nm, ncap - 1, g->addr, g->n);
    free(g->map);
    g->map = nm;
    g->map_mask = ncap - 1;
    return 0;
}

void
ml_graph_rehash(struct ml_graph *g)
{
    if (g->map == NULL)
        return;
    memset(g->map, 0, (g->map_mask + 1) * sizeof(*g->map));
    fill_map(g->map, g->map_mask, g->addr, g->n);
}

void
ml_graph_drop_parents(struct ml_graph *g)
{
    free(g->par_start);
    free(g->par);
    g->par_start = NULL;
    g->par = NULL;
}

uint32_t
ml_graph_find(const struct ml_graph *g, uint64_t address)
{
    if (g->map == NULL)
        return ML_GRAPH_NONE;
    for (size_t i = ml_graph_hash64(address) & g->map_mask; g->map[i] != 0;
         i = (i + 1) & g->map_mask)
        if (g->addr[g->map[i] - 1] == address)
            return g->map[i] - 1;
    return ML_GRAPH_NONE;
}

int
ml_graph_add(struct ml_graph *g, const struct ml_dumpline *l)
{
    size_t i;
    uint32_t idx;
    int rc;

    if (g->finished)
        return -EINVAL;
    if (g->map == NULL || (g->n + 1) * 2 > g->map_mask + 1) {
        if ((rc = grow_map(g)) < 0)
            return rc;
    }
    for (i = ml_graph_hash64(l->address) & g->map_mask; g->map[i] != 0;
         i = (i + 1) & g->map_mask) {
        if (g->addr[g->map[i] - 1] == l->address) {
            g->nduplicates++;
            return 0;
        }
    }
    if (g->n == g->cap && (rc = grow_objects(g)) < 0)
        return rc;
    idx = (uint32_t)g->n;
    if ((rc = intern_type(g, l->type, l->type_len, &g->type[idx])) < 0)
        return rc;
    g->addr[idx] = l->address;
    g->size[idx] = l->size;
    if (!l->has_len) {
        g->len[idx] = ML_GRAPH_LEN32_NONE;
    } else if (l->len < ML_GRAPH_LEN32_BIG) {
        g->len[idx] = (uint32_t)l->len;
    } else {
        void *nb = realloc(g->biglen, (g->nbiglen + 1) * sizeof(*g->biglen));

        if (nb == NULL)
            return -ENOMEM;
        g->biglen = nb;
        g->biglen[g->nbiglen].addr = l->address;
        g->biglen[g->nbiglen++].len = l->len;
        g->len[idx] = ML_GRAPH_LEN32_BIG;
    }
    g->name[idx] = 0;
    g->value[idx] = 0;
    g->vkind[idx] = (uint8_t)l->vkind;
    if (l->has_name && (rc = arena_put(g, l->name, l->name_len, &g->name[idx])) < 0)
        return rc;
    if ((l->vkind == ML_VAL_STR || l->vkind == ML_VAL_INT
            || l->vkind == ML_VAL_FLOAT)
            && (rc = arena_put(g, l->value, l->value_len, &g->value[idx])) < 0)
        return rc;
    if (g->value[idx] != 0 && memchr(l->value, '\0', l->value_len) != NULL) {
        void *nv = realloc(g->nulvals, (g->nnulvals + 1) * sizeof(*g->nulvals));

        if (nv == NULL)
            return -ENOMEM;
        g->nulvals = nv;
        g->nulvals[g->nnulvals].addr = l->address;
        g->nulvals[g->nnulvals++].len = l->value_len;
        g->vkind[idx] |= ML_GRAPH_VNUL;
    }
    if (g->nrefs + l->nrefs >= UINT32_MAX)
        return ML_ETOOBIG;
    if (g->nrefs + l->nrefs > g->raw_cap) {
        uint64_t ncap = g->raw_cap ? g->raw_cap : 4096;

        while (ncap < g->nrefs + l->nrefs)
            ncap *= 2;
        if (grow((void **)&g->raw, sizeof(*g->raw), ncap) < 0)
            return -ENOMEM;
        g->raw_cap = ncap;
    }
    if (l->nrefs > 0)
        memcpy(g->raw + g->nrefs, l->refs, l->nrefs * sizeof(*l->refs));
    g->ref_start[idx] = (uint32_t)g->nrefs;
    g->nrefs += l->nrefs;
    g->ref_start[idx + 1] = (uint32_t)g->nrefs;
    g->map[i] = idx + 1;
    g->n++;
    return 0;
}

/* Gives back the slack of doubling once loading is over: up to half of
 * every per-object array. */
static void
shrink_one(void **p, size_t es, size_t n)
{
    void *np;

    if (*p == NULL)
        return;
    np = realloc(*p, (n ? n : 1) * es);
    if (np != NULL)
        *p = np;
}

static void
shrink(struct ml_graph *g)
{
    shrink_one((void **)&g->addr, sizeof(*g->addr), g->n);
    shrink_one((void **)&g->type, sizeof(*g->type), g->n);
    shrink_one((void **)&g->size, sizeof(*g->size), g->n);
    shrink_one((void **)&g->len, sizeof(*g->len), g->n);
    shrink_one((void **)&g->name, sizeof(*g->name), g->n);
    shrink_one((void **)&g->value, sizeof(*g->value), g->n);
    shrink_one((void **)&g->vkind, sizeof(*g->vkind), g->n);
    shrink_one((void **)&g->ref_start, sizeof(*g->ref_start), g->n + 1);
    shrink_one((void **)&g->arena, 1, g->arena_len);
    g->cap = g->n ? g->n : 1;
    if (g->arena != NULL)
        g->arena_cap = g->arena_len ? g->arena_len : 1;
}

int
ml_graph_finish(struct ml_graph *g)
{
    size_t dcap = 0;

    if (g->finished)
        return 0;
    if (g->n == 0 && g->ref_start == NULL) {
        g->ref_start = calloc(1, sizeof(*g->ref_start));
        if (g->ref_start == NULL)
            return -ENOMEM;
    }
    g->refs = malloc((g->nrefs ? g->nrefs : 1) * sizeof(*g->refs));
    if (g->refs == NULL)
        return -ENOMEM;
    for (uint64_t k = 0; k < g->nrefs; k++) {
        uint32_t r = ml_graph_find(g, g->raw[k]);

        if (r == ML_GRAPH_NONE) {
            /* Dangling: one entry per reference, in order; a dump rarely
             * has many, and they need no map. */
            if (g->ndangling == dcap) {
                dcap = dcap ? dcap * 2 : 64;
                if (grow((void **)&g->dangling, sizeof(*g->dangling), dcap) < 0)
                    return -ENOMEM;
            }
            if (g->n + g->ndangling >= UINT32_MAX)
                return ML_ETOOBIG;
            g->dangling[g->ndangling] = g->raw[k];
            r = (uint32_t)(g->n + g->ndangling++);
        }
        g->refs[k] = r;
    }
    free(g->raw);
    g->raw = NULL;
    g->raw_cap = 0;
    g->finished = 1;
    shrink(g);
    return 0;
}

/* Counts each object's distinct referrers into start[r + 1], with last[r]
 * the index + 1 of r's latest referrer (last is zeroed). */
static void
count_parents(const struct ml_graph *g, uint32_t *start, uint32_t *last)
{
    for (size_t i = 0; i < g->n; i++)
        for (uint64_t k = g->ref_start[i]; k < g->ref_start[i + 1]; k++) {
            uint32_t r = g->refs[k];

            if (r < g->n && last[r] != (uint32_t)i + 1) {
                last[r] = (uint32_t)i + 1;
                start[r + 1]++;
            }
        }
}

int
ml_graph_compute_parents(struct ml_graph *g)
{
    uint32_t *start;
    uint32_t *par = NULL;
    uint32_t *fill;

    if (!g->finished)
        return -EINVAL;
    ml_graph_drop_parents(g);
    start = calloc(g->n + 1, sizeof(*start));
    fill = calloc(g->n ? g->n : 1, sizeof(*fill));
    if (start == NULL || fill == NULL)
        goto fail;
    /* Count, prefix-sum, then place: two passes over refs, the first
     * telling the size of par. */
    count_parents(g, start, fill);
    for (size_t i = 0; i < g->n; i++)
        start[i + 1] += start[i];
    par = malloc((start[g->n] ? start[g->n] : 1) * sizeof(*par));
    if (par == NULL)
        goto fail;
    memcpy(fill, start, g->n * sizeof(*fill));
    for (size_t i = 0; i < g->n; i++)
        for (uint64_t k = g->ref_start[i]; k < g->ref_start[i + 1]; k++) {
            uint32_t r = g->refs[k];

            /* Referrers arrive in index order: a repeat is the last one
             * placed. */
            if (r < g->n && (fill[r] == start[r] || par[fill[r] - 1] != i))
                par[fill[r]++] = (uint32_t)i;
        }
    free(fill);
    g->par_start = start;
    g->par = par;
    return 0;
fail:
    free(start);
    free(fill);
    free(par);
    return -ENOMEM;
}

void
ml_graph_summarize(const struct ml_graph *g, const uint8_t *mask,
                   struct ml_type_summary *out)
{
    for (size_t t = 0; t < g->ntypes; t++) {
        out[t].type = (uint32_t)t;
        out[t].count = 0;
        out[t].size = 0;
        out[t].max_size = 0;
        out[t].max_index = ML_GRAPH_NONE;
    }
    for (size_t i = 0; i < g->n; i++) {
        struct ml_type_summary *s;

        if (mask != NULL && !mask[i])
            continue;
        s = &out[g->type[i]];
        s->count++;
        s->size += g->size[i];
        if (s->max_index == ML_GRAPH_NONE || g->size[i] > s->max_size) {
            s->max_size = g->size[i];
            s->max_index = (uint32_t)i;
        }
    }
}
