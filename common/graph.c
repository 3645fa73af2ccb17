/* SPDX-License-Identifier: MIT
 *
 * graph.c -- the flat-array dump graph; see graph.h.
 *
 * Growth is by doubling, so loading n objects makes O(log n) allocations,
 * none per object.  Adding an object only appends (no lookup: a hash map
 * probe per line was most of the loader's time, two cache misses each);
 * ml_graph_finish then groups the objects by a hash of their address (a
 * counting sort in two steps, partitions then buckets in cache, into
 * arrays on transparent huge pages: hugemem.h), finds the repeated
 * addresses inside each group, and resolves
 * every ref: first against the 8 lines after the ref's owner (a dump is
 * written depth first, so most cold referents follow their referrer),
 * then with a prefetching lookup in the index, half the refs on each of
 * two threads.  ml_graph_append (the loader's two halves) moves the
 * second half's objects after the first's but keeps its refs where they
 * were parsed, a second segment (raw_hi) that finish resolves on its own
 * thread.
 */
#define _DEFAULT_SOURCE 1   /* madvise (hugemem.h) under -std=c11 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "hugemem.h"
#include "ml-common.h"

void
ml_graph_init(struct ml_graph *g)
{
    memset(g, 0, sizeof(*g));
}

void
ml_graph_free(struct ml_graph *g)
{
    free(g->addr_lo);
    free(g->addr_seg);
    free(g->addr64);
    free(g->type16);
    free(g->type32);
    free(g->size);
    free(g->len);
    free(g->str);
    free(g->vkind);
    free(g->trace);
    free(g->ref_start);
    free(g->raw);
    free(g->raw_hi);
    free(g->refs);
    free(g->dangling);
    free(g->par_start);
    free(g->par);
    free(g->types);
    free(g->tmap);
    free(g->perm);
    free(g->dir);
    free(g->arena);
    ml_graph_wide_free(&g->biglen);
    ml_graph_wide_free(&g->bigsize);
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

/* The address of raw ref k, whichever segment holds it. */
static inline uint64_t
raw_get(const struct ml_graph *g, uint64_t k)
{
    return g->raw_hi != NULL && k >= g->raw_lo_n ? g->raw_hi[k - g->raw_lo_n]
                                                 : g->raw[k];
}

/* Makes raw one array again (raw_hi copied after raw's refs): for the
 * rare paths that move refs (a line added after ml_graph_append, repeated
 * addresses).  0 or -ENOMEM (nothing changed). */
static int
raw_join(struct ml_graph *g)
{
    uint64_t nhi;

    if (g->raw_hi == NULL)
        return 0;
    nhi = g->nrefs - g->raw_lo_n;
    if (grow((void **)&g->raw, sizeof(*g->raw), g->nrefs ? g->nrefs : 1) < 0)
        return -ENOMEM;
    memcpy(g->raw + g->raw_lo_n, g->raw_hi, nhi * sizeof(*g->raw));
    free(g->raw_hi);
    g->raw_hi = NULL;
    g->raw_lo_n = 0;
    g->raw_cap = g->nrefs ? g->nrefs : 1;
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
    if ((g->addr64 != NULL
                ? grow((void **)&g->addr64, sizeof(*g->addr64), ncap) < 0
                : grow((void **)&g->addr_lo, sizeof(*g->addr_lo), ncap) < 0
                  || grow((void **)&g->addr_seg, sizeof(*g->addr_seg), ncap) < 0)
            || (g->type32 != NULL
                ? grow((void **)&g->type32, sizeof(*g->type32), ncap) < 0
                : grow((void **)&g->type16, sizeof(*g->type16), ncap) < 0)
            || grow((void **)&g->size, sizeof(*g->size), ncap) < 0
            || grow((void **)&g->len, sizeof(*g->len), ncap) < 0
            || grow((void **)&g->str, sizeof(*g->str), ncap) < 0
            || grow((void **)&g->vkind, sizeof(*g->vkind), ncap) < 0
            || (g->trace != NULL
                && grow((void **)&g->trace, sizeof(*g->trace), ncap) < 0)
            || grow((void **)&g->ref_start, sizeof(*g->ref_start), ncap + 1) < 0)
        return -ENOMEM;
    g->cap = ncap;
    return 0;
}

/* From 255 distinct high halves to whole addresses: addr64 (cap
 * entries) replaces addr_lo and addr_seg, whose objects [0, upto) are
 * set. */
static int
to_addr64(struct ml_graph *g, size_t upto)
{
    uint64_t *a = malloc((g->cap ? g->cap : 1) * sizeof(*a));

    if (a == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < upto; i++)
        a[i] = ml_graph_addr(g, i);
    free(g->addr_lo);
    free(g->addr_seg);
    g->addr_lo = NULL;
    g->addr_seg = NULL;
    g->addr64 = a;
    return 0;
}

/* Sets object i's address (i < cap; objects below i are set).  0 or
 * -ENOMEM. */
static int
set_addr(struct ml_graph *g, size_t i, uint64_t a)
{
    uint32_t hi = (uint32_t)(a >> 32);
    unsigned k;
    int rc;

    if (g->addr64 != NULL) {
        g->addr64[i] = a;
        return 0;
    }
    if (g->nsegs > 0 && g->segs[g->seg_last] == hi) {
        k = g->seg_last;
    } else {
        for (k = 0; k < g->nsegs && g->segs[k] != hi; k++)
            ;
        if (k == g->nsegs) {
            if (k == sizeof(g->segs) / sizeof(g->segs[0])) {
                if ((rc = to_addr64(g, i)) < 0)
                    return rc;
                g->addr64[i] = a;
                return 0;
            }
            g->segs[g->nsegs++] = hi;
        }
        g->seg_last = k;
    }
    g->addr_lo[i] = (uint32_t)a;
    g->addr_seg[i] = (uint8_t)k;
    return 0;
}

/* Sets object i's type id (i < cap; objects below i are set), going to
 * 32-bit ids at the 65536th type.  0 or -ENOMEM. */
static int
set_type(struct ml_graph *g, size_t i, uint32_t t)
{
    if (g->type32 == NULL && t >= UINT16_MAX) {
        uint32_t *a = malloc((g->cap ? g->cap : 1) * sizeof(*a));

        if (a == NULL)
            return -ENOMEM;
        for (size_t k = 0; k < i; k++)
            a[k] = g->type16[k];
        free(g->type16);
        g->type16 = NULL;
        g->type32 = a;
    }
    if (g->type32 != NULL)
        g->type32[i] = t;
    else
        g->type16[i] = (uint16_t)t;
    return 0;
}

void
ml_graph_move_object(struct ml_graph *g, size_t j, size_t i)
{
    if (g->addr64 != NULL) {
        g->addr64[j] = g->addr64[i];
    } else {
        g->addr_lo[j] = g->addr_lo[i];
        g->addr_seg[j] = g->addr_seg[i];
    }
    if (g->type32 != NULL)
        g->type32[j] = g->type32[i];
    else
        g->type16[j] = g->type16[i];
    g->size[j] = g->size[i];
    g->len[j] = g->len[i];
    g->str[j] = g->str[i];
    g->vkind[j] = g->vkind[i];
    if (g->trace != NULL)
        g->trace[j] = g->trace[i];
}

/* The trace array, made at the first traced line (or append): objects
 * [0, g->n) had none.  0 or -ENOMEM. */
static int
trace_make(struct ml_graph *g)
{
    if (g->trace != NULL)
        return 0;
    g->trace = malloc((g->cap ? g->cap : 1) * sizeof(*g->trace));
    if (g->trace == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < g->n; i++)
        g->trace[i] = ML_GRAPH_NONE;
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

void
ml_graph_drop_parents(struct ml_graph *g)
{
    free(g->par_start);
    free(g->par);
    g->par_start = NULL;
    g->par = NULL;
}

/* ---- the address index ----------------------------------------------- */

static inline size_t
bucket_of(uint64_t address, unsigned bits)
{
    /* The top bits of the mix: they depend on every bit of the address. */
    return bits ? (size_t)((uint64_t)ml_graph_hash64(address) >> (64 - bits)) : 0;
}

/* The counting sort in two steps, when the directory is big: the
 * objects go first to their partition (the top PART_BITS bits of the
 * bucket: 2^PART_BITS counters and write streams, each sequential), then
 * each partition, small enough to stay in cache, is counted and spread
 * to its buckets.  A count and a scattered write per object over the
 * whole index (dir, then perm and keys: 12 bytes an object) is a cache
 * and TLB miss each; that was 16% of a 1e7 load. */
#define PART_BITS 9
#define PART_MIN_BITS 12        /* below, the index fits in cache */

/* The second step for the partition at keys/perm[lo .. hi), buckets
 * [b0, b0 + m): sets dir[b0 .. b0 + m) and places them; cnt (m entries),
 * tk and tp are scratch.  Stable. */
static void
index_spread(unsigned bits, size_t b0, size_t m, uint32_t lo, uint32_t hi,
             uint32_t *perm, uint32_t *dir, uint64_t *keys, uint32_t *cnt,
             uint64_t *tk, uint32_t *tp)
{
    uint32_t at = lo;

    memset(cnt, 0, m * sizeof(*cnt));
    for (uint32_t i = lo; i < hi; i++)
        cnt[bucket_of(keys[i], bits) - b0]++;
    for (size_t k = 0; k < m; k++) {
        uint32_t c = cnt[k];

        dir[b0 + k] = at;
        cnt[k] = at;
        at += c;
    }
    memcpy(tk, keys + lo, (hi - lo) * sizeof(*tk));
    memcpy(tp, perm + lo, (hi - lo) * sizeof(*tp));
    for (uint32_t i = 0; i < hi - lo; i++) {
        uint32_t pos = cnt[bucket_of(tk[i], bits) - b0]++;

        keys[pos] = tk[i];
        perm[pos] = tp[i];
    }
}

/* The index in two steps (see PART_BITS): 0, or -ENOMEM with dir
 * untouched (the caller does it in one). */
static int
index_fill2(const struct ml_graph *g, size_t n, unsigned bits, uint32_t *perm,
            uint32_t *dir, uint64_t *keys)
{
    unsigned pb = bits - PART_MIN_BITS + 1 < PART_BITS
                  ? bits - PART_MIN_BITS + 1 : PART_BITS;
    unsigned shift = bits - pb;
    size_t np = (size_t)1 << pb, m = (size_t)1 << shift, most = 0;
    uint32_t start[(1u << PART_BITS) + 1], fill[1u << PART_BITS];
    uint64_t *tk = NULL;
    uint32_t *tp = NULL, *cnt = NULL;
    int rc = -ENOMEM;

    memset(start, 0, sizeof(start));
    for (size_t j = 0; j < n; j++)
        start[(bucket_of(ml_graph_addr(g, j), bits) >> shift) + 1]++;
    for (size_t p = 0; p < np; p++) {
        if (start[p + 1] > most)
            most = start[p + 1];
        start[p + 1] += start[p];
        fill[p] = start[p];
    }
    tk = malloc((most ? most : 1) * sizeof(*tk));
    tp = malloc((most ? most : 1) * sizeof(*tp));
    cnt = malloc(m * sizeof(*cnt));
    if (tk == NULL || tp == NULL || cnt == NULL)
        goto out;
    for (size_t j = 0; j < n; j++) {
        uint64_t a = ml_graph_addr(g, j);
        uint32_t pos = fill[bucket_of(a, bits) >> shift]++;

        keys[pos] = a;
        perm[pos] = (uint32_t)j;
    }
    for (size_t p = 0; p < np; p++)
        index_spread(bits, p * m, m, start[p], start[p + 1], perm, dir, keys,
                     cnt, tk, tp);
    dir[(size_t)1 << bits] = (uint32_t)n;
    rc = 0;
out:
    free(tk);
    free(tp);
    free(cnt);
    return rc;
}

/* Groups addr[0..n) by bucket into perm (and keys[pos] = the address, when
 * keys is not NULL), dir[b] the start of bucket b; dir has 2^bits + 1
 * entries, zeroed.  Stable: a bucket lists its objects in index order. */
static void
index_fill(const struct ml_graph *g, size_t n, unsigned bits, uint32_t *perm,
           uint32_t *dir, uint64_t *keys)
{
    size_t nb = (size_t)1 << bits;

    if (keys != NULL && bits >= PART_MIN_BITS
            && index_fill2(g, n, bits, perm, dir, keys) == 0)
        return;
    for (size_t j = 0; j < n; j++)
        dir[bucket_of(ml_graph_addr(g, j), bits) + 1]++;
    for (size_t b = 0; b < nb; b++)
        dir[b + 1] += dir[b];
    /* Place with dir[b] as the fill pointer; it ends as the start of
     * bucket b + 1, and the shift puts every start back. */
    for (size_t j = 0; j < n; j++) {
        uint64_t a = ml_graph_addr(g, j);
        size_t b = bucket_of(a, bits);
        uint32_t pos = dir[b]++;

        perm[pos] = (uint32_t)j;
        if (keys != NULL)
            keys[pos] = a;
    }
    memmove(dir + 1, dir, nb * sizeof(*dir));
    dir[0] = 0;
}

/* Bits of the directory for n objects: 4 to 8 objects a bucket (a
 * bucket's keys fill a cache line; the directory costs 0.5 to 1 byte an
 * object). */
static unsigned
index_bits(size_t n)
{
    unsigned bits = 0;

    while (bits < 30 && ((size_t)1 << bits) * 8 < n)
        bits++;
    return bits;
}

/* Allocates and fills the index for addr[0..n); keys as index_fill. */
static int
index_build(struct ml_graph *g, uint64_t *keys)
{
    unsigned bits = index_bits(g->n);

    free(g->perm);
    free(g->dir);
    g->perm = malloc((g->n ? g->n : 1) * sizeof(*g->perm));
    g->dir = calloc(((size_t)1 << bits) + 1, sizeof(*g->dir));
    if (g->perm == NULL || g->dir == NULL) {
        free(g->perm);
        free(g->dir);
        g->perm = NULL;
        g->dir = NULL;
        return -ENOMEM;
    }
    g->dir_bits = bits;
    ml_hugemem_advise(g->perm, g->n * sizeof(*g->perm));
    ml_hugemem_advise(g->dir, (((size_t)1 << bits) + 1) * sizeof(*g->dir));
    index_fill(g, g->n, bits, g->perm, g->dir, keys);
    return 0;
}

void
ml_graph_rehash(struct ml_graph *g)
{
    if (g->dir == NULL)
        return;
    memset(g->dir, 0, (((size_t)1 << g->dir_bits) + 1) * sizeof(*g->dir));
    index_fill(g, g->n, g->dir_bits, g->perm, g->dir, NULL);
}

uint32_t
ml_graph_find(const struct ml_graph *g, uint64_t address)
{
    size_t b;

    if (g->dir == NULL)
        return ML_GRAPH_NONE;
    b = bucket_of(address, g->dir_bits);
    for (uint32_t p = g->dir[b]; p < g->dir[b + 1]; p++)
        if (ml_graph_addr(g, g->perm[p]) == address)
            return g->perm[p];
    return ML_GRAPH_NONE;
}

/* ---- loading ------------------------------------------------------------ */

int
ml_graph_reserve_bigsize(struct ml_graph *g, size_t extra)
{
    return ml_graph_wide_reserve(&g->bigsize, extra);
}

int
ml_graph_set_size(struct ml_graph *g, size_t i, uint64_t size)
{
    int rc;

    if (size < ML_GRAPH_SIZE16_BIG) {
        g->size[i] = (uint16_t)size;
        return 0;
    }
    /* The entry of an earlier size of this address (even one since set
     * small), else a new one. */
    if ((rc = ml_graph_wide_reserve(&g->bigsize, 1)) < 0)
        return rc;
    ml_graph_wide_set(&g->bigsize, ml_graph_addr(g, i), size);
    g->size[i] = ML_GRAPH_SIZE16_BIG;
    return 0;
}

int
ml_graph_add(struct ml_graph *g, const struct ml_dumpline *l)
{
    uint32_t idx, t;
    size_t tc;
    int rc;

    if (g->finished)
        return -EINVAL;
    if (g->n == g->cap && (rc = grow_objects(g)) < 0)
        return rc;
    idx = (uint32_t)g->n;
    /* The common cases inline: a type seen lately (no hash of the whole
     * name, no probing), a 16-bit id, the high half of the address
     * before. */
    tc = l->type_len == 0 ? 0
         : (l->type_len * 31 + (unsigned char)l->type[0] * 7
            + (unsigned char)l->type[l->type_len / 2] * 3
            + (unsigned char)l->type[l->type_len - 1]) % ML_GRAPH_TCACHE;
    if (l->type_len + 1 == g->tcache_len1[tc]
            && memcmp(g->arena + g->types[g->tcache_id[tc]], l->type,
                      l->type_len) == 0) {
        t = g->tcache_id[tc];
    } else {
        if ((rc = intern_type(g, l->type, l->type_len, &t)) < 0)
            return rc;
        if (l->type_len < UINT32_MAX) {
            g->tcache_id[tc] = t;
            g->tcache_len1[tc] = (uint32_t)l->type_len + 1;
        }
    }
    if (g->type16 != NULL && t < UINT16_MAX)
        g->type16[idx] = (uint16_t)t;
    else if ((rc = set_type(g, idx, t)) < 0)
        return rc;
    if (g->addr_lo != NULL && g->nsegs > 0
            && g->segs[g->seg_last] == (uint32_t)(l->address >> 32)) {
        g->addr_lo[idx] = (uint32_t)l->address;
        g->addr_seg[idx] = (uint8_t)g->seg_last;
    } else if ((rc = set_addr(g, idx, l->address)) < 0) {
        return rc;
    }
    /* A new entry, not a search (a repeated address has one per line). */
    if (l->size < ML_GRAPH_SIZE16_BIG) {
        g->size[idx] = (uint16_t)l->size;
    } else {
        if ((rc = ml_graph_wide_reserve(&g->bigsize, 1)) < 0)
            return rc;
        ml_graph_wide_append(&g->bigsize, l->address, l->size);
        g->size[idx] = ML_GRAPH_SIZE16_BIG;
    }
    if (!l->has_len) {
        g->len[idx] = ML_GRAPH_LEN16_NONE;
    } else if (l->len < ML_GRAPH_LEN16_BIG) {
        g->len[idx] = (uint16_t)l->len;
    } else {
        if ((rc = ml_graph_wide_reserve(&g->biglen, 1)) < 0)
            return rc;
        ml_graph_wide_append(&g->biglen, l->address, l->len);
        g->len[idx] = ML_GRAPH_LEN16_BIG;
    }
    /* One offset for both strings: the value's text, then the name. */
    g->str[idx] = 0;
    g->vkind[idx] = (uint8_t)l->vkind;
    if (ml_graph_vkind_has_text(l->vkind)) {
        if ((rc = arena_put(g, l->value, l->value_len, &g->str[idx])) < 0)
            return rc;
        /* Only a str can hold a NUL (a number's text cannot). */
        if (l->vkind == ML_VAL_STR && memchr(l->value, '\0', l->value_len) != NULL) {
            void *nv = realloc(g->nulvals, (g->nnulvals + 1) * sizeof(*g->nulvals));

            if (nv == NULL)
                return -ENOMEM;
            g->nulvals = nv;
            g->nulvals[g->nnulvals].addr = l->address;
            g->nulvals[g->nnulvals++].len = l->value_len;
            g->vkind[idx] |= ML_GRAPH_VNUL;
        }
    }
    if (l->has_trace && g->trace == NULL && (rc = trace_make(g)) < 0)
        return rc;
    if (g->trace != NULL)
        g->trace[idx] = l->has_trace && l->trace < ML_GRAPH_NONE
                        ? (uint32_t)l->trace : ML_GRAPH_NONE;
    if (l->has_name) {
        uint32_t off1;

        if ((rc = arena_put(g, l->name, l->name_len, &off1)) < 0)
            return rc;
        if (g->str[idx] == 0)
            g->str[idx] = off1;
        g->vkind[idx] |= ML_GRAPH_VNAME;
    }
    if (g->nrefs + l->nrefs >= UINT32_MAX)
        return ML_ETOOBIG;
    if (g->nrefs + l->nrefs > g->raw_cap) {
        uint64_t ncap;

        /* After ml_graph_append raw_cap is raw_lo_n: refs go to one
         * array again before more are added. */
        if ((rc = raw_join(g)) < 0)
            return rc;
        ncap = g->raw_cap ? g->raw_cap : 4096;
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
    g->n++;
    return 0;
}

/* Grows the object arrays to hold at least n (exactly n when larger than
 * doubling would give). */
static int
reserve_objects(struct ml_graph *g, size_t n)
{
    while (g->cap < n) {
        int rc = grow_objects(g);

        if (rc < 0)
            return rc;
    }
    return 0;
}

int
ml_graph_append(struct ml_graph *g, struct ml_graph *o)
{
    uint32_t *tmap = NULL;
    uint32_t base = 0;
    int rc = -ENOMEM;

    if (g->finished || o->finished)
        return -EINVAL;
    if (o->n == 0 && o->ntypes == 0) {
        g->nduplicates += o->nduplicates;
        ml_graph_free(o);
        return 0;
    }
    if (g->n + o->n >= UINT32_MAX - 1 || g->nrefs + o->nrefs >= UINT32_MAX)
        return ML_ETOOBIG;
    /* o's strings follow g's: every offset of o shifts by base. */
    if (o->arena_len > 0) {
        uint32_t off1;

        if ((rc = arena_put(g, o->arena, o->arena_len - 1, &off1)) < 0)
            return rc;
        base = off1 - 1;
    }
    tmap = malloc((o->ntypes ? o->ntypes : 1) * sizeof(*tmap));
    if (tmap == NULL)
        return -ENOMEM;
    for (size_t t = 0; t < o->ntypes; t++) {
        const char *tn = o->arena + o->types[t];

        if ((rc = intern_type(g, tn, strlen(tn), &tmap[t])) < 0)
            goto out;
    }
    if ((rc = reserve_objects(g, g->n + o->n)) < 0)
        goto out;
    /* o's refs stay where they are, as the second segment (raw_hi): a
     * copy was fresh pages to fault and zero, 8 bytes a ref. */
    if ((rc = raw_join(g)) < 0)
        goto out;
    rc = -ENOMEM;
    if (o->nrefs > 0 && g->nrefs > 0 && o->raw_hi == NULL) {
        g->raw_hi = o->raw;
        g->raw_lo_n = g->nrefs;
        g->raw_cap = g->nrefs;
        o->raw = NULL;
    } else if (o->nrefs > 0 && g->nrefs == 0 && o->raw_hi == NULL) {
        free(g->raw);
        g->raw = o->raw;
        g->raw_cap = o->raw_cap;
        o->raw = NULL;
    } else if (o->nrefs > 0) {
        if (raw_join(o) < 0
                || grow((void **)&g->raw, sizeof(*g->raw), g->nrefs + o->nrefs) < 0)
            goto out;
        g->raw_cap = g->nrefs + o->nrefs;
        memcpy(g->raw + g->nrefs, o->raw, o->nrefs * sizeof(*o->raw));
    }
    if (ml_graph_wide_take(&g->biglen, &o->biglen) < 0
            || ml_graph_wide_take(&g->bigsize, &o->bigsize) < 0)
        goto out;
    if (o->nnulvals > 0) {
        void *nv = realloc(g->nulvals, (g->nnulvals + o->nnulvals) * sizeof(*g->nulvals));

        if (nv == NULL)
            goto out;
        g->nulvals = nv;
        memcpy(g->nulvals + g->nnulvals, o->nulvals, o->nnulvals * sizeof(*o->nulvals));
        g->nnulvals += o->nnulvals;
    }
    for (size_t i = 0; i < o->n; i++)
        if ((rc = set_addr(g, g->n + i, ml_graph_addr(o, i))) < 0)
            goto out;
    rc = -ENOMEM;
    memcpy(g->size + g->n, o->size, o->n * sizeof(*o->size));
    memcpy(g->len + g->n, o->len, o->n * sizeof(*o->len));
    memcpy(g->vkind + g->n, o->vkind, o->n * sizeof(*o->vkind));
    /* Birth sites: either half may have them (a table line and its
     * objects can be on either side of the split). */
    if (o->trace != NULL && (rc = trace_make(g)) < 0)
        goto out;
    rc = -ENOMEM;
    if (o->trace != NULL)
        memcpy(g->trace + g->n, o->trace, o->n * sizeof(*o->trace));
    else if (g->trace != NULL)
        for (size_t i = 0; i < o->n; i++)
            g->trace[g->n + i] = ML_GRAPH_NONE;
    for (size_t i = 0; i < o->n; i++) {
        if ((rc = set_type(g, g->n + i, tmap[ml_graph_type(o, i)])) < 0)
            goto out;
        g->str[g->n + i] = o->str[i] ? o->str[i] + base : 0;
        g->ref_start[g->n + i + 1] = o->ref_start[i + 1] + (uint32_t)g->nrefs;
    }
    if (g->n == 0)
        g->ref_start[0] = 0;
    g->n += o->n;
    g->nrefs += o->nrefs;
    g->nduplicates += o->nduplicates;
    ml_graph_free(o);
    rc = 0;
out:
    free(tmap);
    return rc;
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
    shrink_one((void **)&g->addr_lo, sizeof(*g->addr_lo), g->n);
    shrink_one((void **)&g->addr_seg, sizeof(*g->addr_seg), g->n);
    shrink_one((void **)&g->addr64, sizeof(*g->addr64), g->n);
    shrink_one((void **)&g->type16, sizeof(*g->type16), g->n);
    shrink_one((void **)&g->type32, sizeof(*g->type32), g->n);
    shrink_one((void **)&g->size, sizeof(*g->size), g->n);
    shrink_one((void **)&g->len, sizeof(*g->len), g->n);
    shrink_one((void **)&g->str, sizeof(*g->str), g->n);
    shrink_one((void **)&g->vkind, sizeof(*g->vkind), g->n);
    shrink_one((void **)&g->trace, sizeof(*g->trace), g->n);
    shrink_one((void **)&g->ref_start, sizeof(*g->ref_start), g->n + 1);
    shrink_one((void **)&g->arena, 1, g->arena_len);
    g->cap = g->n ? g->n : 1;
    if (g->arena != NULL)
        g->arena_cap = g->arena_len ? g->arena_len : 1;
}

/* Drops the objects marked in dup (repeated addresses: their first line
 * stays), with their refs, before the refs are resolved. */
static void
drop_duplicates(struct ml_graph *g, const uint8_t *dup)
{
    size_t j = 0;
    uint64_t nr = 0;

    for (size_t i = 0; i < g->n; i++) {
        uint32_t a = g->ref_start[i], e = g->ref_start[i + 1];

        if (dup[i])
            continue;
        ml_graph_move_object(g, j, i);
        if (e > a)              /* raw is NULL when no line had refs */
            memmove(g->raw + nr, g->raw + a, (size_t)(e - a) * sizeof(*g->raw));
        g->ref_start[j] = (uint32_t)nr;
        nr += e - a;
        j++;
    }
    g->ref_start[j] = (uint32_t)nr;
    g->nduplicates += g->n - j;
    g->n = j;
    g->nrefs = nr;
}

/* Marks in dup every object whose address an earlier object has (they
 * share a bucket); the number marked. */
static size_t
find_duplicates(const struct ml_graph *g, const uint64_t *keys, uint8_t *dup)
{
    size_t nb = (size_t)1 << g->dir_bits, count = 0;

    for (size_t b = 0; b < nb; b++)
        for (uint32_t p = g->dir[b] + 1; p < g->dir[b + 1]; p++)
            for (uint32_t q = g->dir[b]; q < p; q++)
                if (keys[q] == keys[p]) {
                    dup[g->perm[p]] = 1;
                    count++;
                    break;
                }
    return count;
}

/* Half of finish's lookups: refs[lo..hi) from raw, the positions of the
 * dangling ones (no object has the address) listed in dang. */
struct resolve_job {
    const struct ml_graph *g;
    const uint64_t *keys;
    const uint64_t *raw;        /* ref k's address is raw[k - lo] */
    uint64_t lo, hi;
    uint64_t *dang;
    size_t ndang, dcap;
    int rc;
};

#define PREFETCH_DIR 16         /* lookups ahead whose bucket start is fetched */
#define PREFETCH_KEYS 8         /* lookups ahead whose bucket keys are */
#define NEAR_LINES 8            /* the lines after a ref's owner tried first */
#define RESOLVE_BLOCK 4096      /* refs tried near, then the rest looked up */

/* The index of address a among objects i .. i + NEAR_LINES, or
 * ML_GRAPH_NONE.  A dump is written depth first: an object's referents
 * that were not written before follow it (87% of the refs to addresses
 * other than the few hundred hot ones, in bench_loader's 1e7 dump), and
 * these lines are read in order where the index lookup is a cache miss
 * or three.  Exact: finish has dropped repeated addresses before. */
static inline uint32_t
near_find(const struct ml_graph *g, size_t i, uint64_t a)
{
    size_t e = i + 1 + NEAR_LINES < g->n ? i + 1 + NEAR_LINES : g->n;

    if (g->addr64 != NULL) {
        for (size_t m = i; m < e; m++)
            if (g->addr64[m] == a)
                return (uint32_t)m;
        return ML_GRAPH_NONE;
    }
    for (size_t m = i; m < e; m++)
        if (g->addr_lo[m] == (uint32_t)a
                && g->segs[g->addr_seg[m]] == (uint32_t)(a >> 32))
            return (uint32_t)m;
    return ML_GRAPH_NONE;
}

/* The object whose refs hold ref k (k < nrefs): the last i with
 * ref_start[i] <= k. */
static size_t
ref_owner(const struct ml_graph *g, uint64_t k)
{
    size_t lo = 0, hi = g->n;   /* ref_start[lo] <= k < ref_start[hi] */

    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;

        if (g->ref_start[mid] <= k)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static void *
resolve_run(void *arg)
{
    struct resolve_job *j = arg;
    const struct ml_graph *g = j->g;
    const uint64_t *raw = j->raw, *keys = j->keys;
    const uint32_t *dir = g->dir, *perm = g->perm, *rs = g->ref_start;
    uint32_t *refs = g->refs;
    unsigned bits = g->dir_bits;
    uint32_t pend[RESOLVE_BLOCK];
    size_t i;

    if (j->hi <= j->lo)
        return NULL;
    i = ref_owner(g, j->lo);
    for (uint64_t b0 = j->lo; b0 < j->hi; b0 += RESOLVE_BLOCK) {
        uint64_t b1 = j->hi - b0 < RESOLVE_BLOCK ? j->hi : b0 + RESOLVE_BLOCK;
        size_t np = 0;

        /* First the lines that follow each ref's owner, in order. */
        for (uint64_t k = b0; k < b1; k++) {
            uint32_t r;

            while (rs[i + 1] <= k)
                i++;
            r = near_find(g, i, raw[k - j->lo]);
            if (r != ML_GRAPH_NONE)
                refs[k] = r;
            else
                pend[np++] = (uint32_t)(k - b0);
        }
        /* Then the index: a lookup is a chain of misses (dir, then the
         * bucket's keys); the lookups ahead are independent, so their
         * lines are fetched early. */
        for (size_t x = 0; x < np; x++) {
            uint64_t k = b0 + pend[x];
            uint64_t a = raw[k - j->lo];
            size_t b = bucket_of(a, bits);
            uint32_t p, e, r = ML_GRAPH_NONE;

            if (x + PREFETCH_DIR < np)
                __builtin_prefetch(&dir[bucket_of(raw[b0 + pend[x + PREFETCH_DIR] - j->lo], bits)]);
            if (x + PREFETCH_KEYS < np) {
                uint32_t s = dir[bucket_of(raw[b0 + pend[x + PREFETCH_KEYS] - j->lo], bits)];

                __builtin_prefetch(&keys[s]);
                __builtin_prefetch(&perm[s]);
            }
            for (p = dir[b], e = dir[b + 1]; p < e; p++)
                if (keys[p] == a) {
                    r = perm[p];
                    break;
                }
            if (r == ML_GRAPH_NONE) {
                if (j->ndang == j->dcap) {
                    size_t ncap = j->dcap ? j->dcap * 2 : 64;
                    uint64_t *nd = realloc(j->dang, ncap * sizeof(*nd));

                    if (nd == NULL) {
                        j->rc = -ENOMEM;
                        return NULL;
                    }
                    j->dang = nd;
                    j->dcap = ncap;
                }
                j->dang[j->ndang++] = k;
            }
            refs[k] = r;
        }
    }
    return NULL;
}

/* Below this many refs one thread resolves them all. */
#define RESOLVE_THREADED_MIN (1u << 16)

/* Resolves raw into refs; dangling refs get n + their rank, in ref
 * order. */
static int
resolve_refs(struct ml_graph *g, const uint64_t *keys)
{
    struct resolve_job job[2];
    pthread_t th;
    int threaded = 0, rc = 0;
    size_t dcap = 0;

    memset(job, 0, sizeof(job));
    for (int t = 0; t < 2; t++) {
        job[t].g = g;
        job[t].keys = keys;
    }
    job[0].hi = g->nrefs;
    job[0].raw = g->raw;
    if (g->raw_hi != NULL) {
        /* The two segments (ml_graph_append), one a thread: the halves
         * of a file split by its bytes. */
        job[0].hi = g->raw_lo_n;
        job[1].lo = job[0].hi;
        job[1].hi = g->nrefs;
        job[1].raw = g->raw_hi;
    } else if (g->nrefs >= RESOLVE_THREADED_MIN) {
        job[0].hi = g->nrefs / 2;
        job[1].lo = job[0].hi;
        job[1].hi = g->nrefs;
        job[1].raw = g->raw + job[1].lo;
    }
    if (job[1].hi - job[1].lo >= RESOLVE_THREADED_MIN / 2)
        threaded = pthread_create(&th, NULL, resolve_run, &job[1]) == 0;
    resolve_run(&job[0]);
    if (threaded)
        pthread_join(th, NULL);
    else if (job[1].hi > job[1].lo)
        resolve_run(&job[1]);       /* no thread: the second half here */
    for (int t = 0; t < 2 && rc == 0; t++) {
        rc = job[t].rc;
        for (size_t d = 0; rc == 0 && d < job[t].ndang; d++) {
            uint64_t k = job[t].dang[d];

            /* One entry per reference, in order; a dump rarely has many,
             * and they need no index. */
            if (g->ndangling == dcap) {
                dcap = dcap ? dcap * 2 : 64;
                if (grow((void **)&g->dangling, sizeof(*g->dangling), dcap) < 0) {
                    rc = -ENOMEM;
                    break;
                }
            }
            if (g->n + g->ndangling >= UINT32_MAX) {
                rc = ML_ETOOBIG;
                break;
            }
            g->dangling[g->ndangling] = raw_get(g, k);
            g->refs[k] = (uint32_t)(g->n + g->ndangling++);
        }
    }
    free(job[0].dang);
    free(job[1].dang);
    return rc;
}

int
ml_graph_finish(struct ml_graph *g)
{
    uint64_t *keys = NULL;
    uint8_t *dup = NULL;
    int rc = -ENOMEM;

    if (g->finished)
        return 0;
    if (g->n == 0 && g->ref_start == NULL) {
        g->ref_start = calloc(1, sizeof(*g->ref_start));
        if (g->ref_start == NULL)
            return -ENOMEM;
    }
    keys = malloc((g->n ? g->n : 1) * sizeof(*keys));
    ml_hugemem_advise(keys, g->n * sizeof(*keys));
    if (keys == NULL || (rc = index_build(g, keys)) < 0)
        goto out;
    rc = -ENOMEM;
    dup = calloc(g->n ? g->n : 1, 1);
    if (dup == NULL)
        goto out;
    if (find_duplicates(g, keys, dup) > 0) {
        if ((rc = raw_join(g)) < 0)
            goto out;
        drop_duplicates(g, dup);
        if ((rc = index_build(g, keys)) < 0)
            goto out;
    }
    free(dup);
    dup = NULL;
    rc = -ENOMEM;
    g->refs = malloc((g->nrefs ? g->nrefs : 1) * sizeof(*g->refs));
    if (g->refs == NULL)
        goto out;
    if ((rc = resolve_refs(g, keys)) < 0)
        goto out;
    free(g->raw);
    free(g->raw_hi);
    g->raw = NULL;
    g->raw_hi = NULL;
    g->raw_lo_n = 0;
    g->raw_cap = 0;
    ml_graph_wide_sort(&g->biglen);
    ml_graph_wide_sort(&g->bigsize);
    g->finished = 1;
    shrink(g);
    rc = 0;
out:
    free(keys);
    free(dup);
    return rc;
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
        uint64_t sz;

        if (mask != NULL && !mask[i])
            continue;
        sz = ml_graph_size(g, i);
        s = &out[ml_graph_type(g, i)];
        s->count++;
        s->size += sz;
        if (s->max_index == ML_GRAPH_NONE || sz > s->max_size) {
            s->max_size = sz;
            s->max_index = (uint32_t)i;
        }
    }
}
