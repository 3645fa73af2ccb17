/* SPDX-License-Identifier: MIT
 *
 * graph.h -- a loaded dump as flat arrays: the loader's core, and later
 * the daemon's and the CLI's.
 *
 * No object per node.  Object i (0 <= i < n) is the i-th distinct address
 * loaded; its fields are parallel arrays, its type an interned id, its
 * strings offsets into one arena, its refs a CSR slice of 32-bit indices.
 * An address index (objects grouped by a hash of their address: perm and
 * dir below, 4.5 to 5 bytes an object) finds objects.  Refs to addresses
 * that no line defined are kept as "dangling" entries, indices at or above
 * n, so nothing is lost and nothing crashes.
 *
 * Lifecycle: ml_graph_init, ml_graph_add per line (appends only: no
 * lookup, so loading runs at the parser's speed), ml_graph_finish (builds
 * the address index, drops repeated addresses, turns addresses in refs
 * into indices, on two threads), then the queries.  Not thread-safe.
 *
 * The arrays' shape is the interface for other C code (path_to_root,
 * dominators): object i is ml_graph_addr(g, i), ml_graph_type(g, i),
 * ml_graph_size(g, i), ...; its refs are
 * refs[ref_start[i] .. ref_start[i + 1]); its referrers, after
 * ml_graph_compute_parents, par[par_start[i] .. par_start[i + 1]), each
 * once, in increasing index order.
 */
#ifndef ML_GRAPH_H
#define ML_GRAPH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dumpline.h"
#include "graph_wide.h"

#define ML_GRAPH_NONE UINT32_MAX        /* no such index */
#define ML_GRAPH_NOLEN UINT64_MAX       /* object has no "len" */
#define ML_GRAPH_VNUL 0x80              /* in vkind[]: value holds a NUL */
#define ML_GRAPH_VNAME 0x40             /* in vkind[]: the object has a name */
#define ML_GRAPH_SIZE16_BIG UINT16_MAX  /* in size[]: see bigsize */
#define ML_GRAPH_LEN16_NONE UINT16_MAX  /* in len[]: no "len" */
#define ML_GRAPH_LEN16_BIG (UINT16_MAX - 1) /* in len[]: see biglen */

struct ml_graph {
    /* Objects. */
    size_t n;
    size_t cap;
    /* Addresses, use ml_graph_addr(): the low 32 bits in addr_lo, the
     * high 32 as an index into segs (a heap's objects share a few high
     * halves), 5 bytes an object; from the 256th distinct high half on,
     * addr64 holds them whole (addr_lo and addr_seg are then NULL). */
    uint32_t *addr_lo;
    uint8_t *addr_seg;
    uint64_t *addr64;
    uint32_t segs[255];
    unsigned nsegs;
    unsigned seg_last;          /* the last segment used: tried first */
    /* Type ids (indices into types), use ml_graph_type(): 16 bits until
     * the 65536th type, then 32 (type32; type16 is then NULL). */
    uint16_t *type16;
    uint32_t *type32;
    uint16_t *size;             /* use ml_graph_size(); 2 bytes, not 8:
                                 * 65535 and more are in bigsize */
    uint16_t *len;              /* use ml_graph_len(); 2 bytes, not 8:
                                 * 65534 and more are in biglen */
    uint32_t *str;              /* arena offset + 1 of the value's text
                                 * followed by the name's, 0 when neither:
                                 * use ml_graph_value(), ml_graph_name() */
    uint8_t *vkind;             /* enum ml_vkind | ML_GRAPH_VNUL
                                 * | ML_GRAPH_VNAME */
    uint32_t *trace;            /* the line's "trace" (birth sites,
                                 * docs/dump-format.md), ML_GRAPH_NONE for
                                 * none: use ml_graph_trace().  NULL until
                                 * the first line with one, so a dump
                                 * without birth sites pays nothing */

    /* Refs, CSR: object i's refs are refs[ref_start[i] .. ref_start[i+1]).
     * Before ml_graph_finish they are addresses (raw); after, indices, where
     * an index >= n names dangling[index - n]. */
    uint32_t *ref_start;        /* n + 1 entries; refs total < 2^32 */
    uint64_t *raw;              /* addresses, until finish */
    uint64_t *raw_hi;           /* when not NULL, refs [raw_lo_n, nrefs)
                                 * are raw_hi[k - raw_lo_n]: the second
                                 * half's addresses, taken over by
                                 * ml_graph_append without a copy */
    uint64_t raw_lo_n;
    uint32_t *refs;             /* indices, after finish */
    uint64_t nrefs;
    uint64_t raw_cap;
    uint64_t *dangling;         /* addresses referred to but not defined */
    size_t ndangling;
    int finished;

    /* Referrers, CSR like refs, built by ml_graph_compute_parents. */
    uint32_t *par_start;
    uint32_t *par;

    /* Interned type names: types[t] is an arena offset. */
    uint32_t *types;
    size_t ntypes;
    size_t types_cap;
    uint32_t *tmap;             /* open addressing: type id + 1 */
    size_t tmap_mask;
    /* Types seen lately, by a hash of their name's length and three of
     * its bytes (ml_graph_add): an id and the name's length + 1 (0: no
     * entry).  A heap has few types that most lines use. */
#define ML_GRAPH_TCACHE 64
    uint32_t tcache_id[ML_GRAPH_TCACHE];
    uint32_t tcache_len1[ML_GRAPH_TCACHE];

    /* The address index, built by ml_graph_finish: bucket b (the top
     * dir_bits bits of ml_graph_hash64(address)) holds the objects
     * perm[dir[b] .. dir[b + 1]), in increasing index order; 2^dir_bits is
     * n / 8 to n / 4.  NULL before finish (ml_graph_find then finds
     * nothing). */
    uint32_t *perm;             /* n entries */
    uint32_t *dir;              /* 2^dir_bits + 1 entries */
    unsigned dir_bits;

    /* Strings: type names, names and values, each NUL-terminated. */
    char *arena;
    size_t arena_len;
    size_t arena_cap;

    /* Lengths of 65534 and more, and sizes of 65535 and more, by address
     * (graph_wide.h: sorted by ml_graph_finish, then a binary search; the
     * first line of an address wins).  Few objects hold 64 Ki items or
     * bytes, so these save 4 bytes an object. */
    struct ml_graph_wide biglen;
    struct ml_graph_wide bigsize;
    /* Lengths of the values that hold a NUL (strlen does for the others,
     * which saves 4 bytes an object), by address. */
    struct { uint64_t addr, len; } *nulvals;
    size_t nnulvals;

    /* What the input held that is not in the arrays. */
    uint64_t nduplicates;       /* lines whose address was already loaded */
};

/* The hash of the address index. */
static inline size_t
ml_graph_hash64(uint64_t v)
{
    v ^= v >> 33;
    v *= 0xff51afd7ed558ccdull;
    v ^= v >> 33;
    return (size_t)v;
}

void ml_graph_init(struct ml_graph *g);
void ml_graph_free(struct ml_graph *g);

/* Object i's address. */
static inline uint64_t
ml_graph_addr(const struct ml_graph *g, size_t i)
{
    if (g->addr64 != NULL)
        return g->addr64[i];
    return (uint64_t)g->segs[g->addr_seg[i]] << 32 | g->addr_lo[i];
}

/* Object i's type id. */
static inline uint32_t
ml_graph_type(const struct ml_graph *g, size_t i)
{
    return g->type32 != NULL ? g->type32[i] : g->type16[i];
}

/* Copies object i's per-object fields (not its refs) over object j's: the
 * compactions of collapse.c and of repeated addresses. */
void ml_graph_move_object(struct ml_graph *g, size_t j, size_t i);

/* Adds one object line (l->kind must be ML_LINE_OBJECT).  A duplicate
 * address keeps the first line and counts the others (in ml_graph_finish,
 * which removes them).  0, -ENOMEM, or
 * ML_ETOOBIG (more than 2^32 - 2 objects or refs, or a 4 GiB string
 * arena: 32-bit indices keep the graph at about half the memory). */
int ml_graph_add(struct ml_graph *g, const struct ml_dumpline *l);

/* Appends the objects of other (not finished; it is emptied and can be
 * freed) to g (not finished), as if other's lines had been added to g
 * after g's: the loader parses two halves of a file on two threads and
 * joins them.  other's refs are taken, not copied (g->raw_hi).  0,
 * -ENOMEM or ML_ETOOBIG (g is then unusable). */
int ml_graph_append(struct ml_graph *g, struct ml_graph *other);

/* Builds the address index, drops the objects of repeated addresses (the
 * first line of an address is kept) and resolves refs to indices (on two
 * threads); after this, no more ml_graph_add.  0, -ENOMEM or ML_ETOOBIG
 * (the graph is then unusable). */
int ml_graph_finish(struct ml_graph *g);

/* Index of address, or ML_GRAPH_NONE. */
uint32_t ml_graph_find(const struct ml_graph *g, uint64_t address);

/* Id of the type named name, or ML_GRAPH_NONE. */
uint32_t ml_graph_type_id(const struct ml_graph *g, const char *name);

/* Rebuilds the address index from the addresses after objects were removed
 * or moved (ml_graph_collapse_instance_dicts), in place: n must not have
 * grown since ml_graph_finish. */
void ml_graph_rehash(struct ml_graph *g);

/* Frees the referrer CSR after refs changed; par_start is then NULL
 * until ml_graph_compute_parents runs again. */
void ml_graph_drop_parents(struct ml_graph *g);

static inline const char *
ml_graph_type_name(const struct ml_graph *g, uint32_t t)
{
    return g->arena + g->types[t];
}

/* Object i's "len", or ML_GRAPH_NOLEN. */
static inline uint64_t
ml_graph_len(const struct ml_graph *g, size_t i)
{
    uint16_t v = g->len[i];

    if (v == ML_GRAPH_LEN16_NONE)
        return ML_GRAPH_NOLEN;
    if (v == ML_GRAPH_LEN16_BIG)
        return ml_graph_wide_get(&g->biglen, ml_graph_addr(g, i),
                                 ML_GRAPH_NOLEN);
    return v;
}

/* Object i's size. */
static inline uint64_t
ml_graph_size(const struct ml_graph *g, size_t i)
{
    uint16_t v = g->size[i];

    if (v == ML_GRAPH_SIZE16_BIG)
        return ml_graph_wide_get(&g->bigsize, ml_graph_addr(g, i), v);
    return v;
}

/* Sets object i's size: 0, or -ENOMEM (only for a size of 65535 or more,
 * unless ml_graph_reserve_bigsize made room). */
int ml_graph_set_size(struct ml_graph *g, size_t i, uint64_t size);

/* Makes room for extra more sizes of 65535 or more.  0 or -ENOMEM. */
int ml_graph_reserve_bigsize(struct ml_graph *g, size_t extra);

/* Object i's birth site: the id of its allocation traceback (a line's
 * "trace"), or ML_GRAPH_NONE (no "trace", or one of 2^32 - 1 or more). */
static inline uint32_t
ml_graph_trace(const struct ml_graph *g, size_t i)
{
    return g->trace != NULL ? g->trace[i] : ML_GRAPH_NONE;
}

/* Object i's value kind (enum ml_vkind). */
static inline int
ml_graph_vkind(const struct ml_graph *g, size_t i)
{
    return g->vkind[i] & ~(ML_GRAPH_VNUL | ML_GRAPH_VNAME);
}

/* 1 if a value of kind k has a text (a str, an int or a float). */
static inline int
ml_graph_vkind_has_text(int k)
{
    return k == ML_VAL_STR || k == ML_VAL_INT || k == ML_VAL_FLOAT;
}

/* Object i's value text, NUL-terminated (see ml_graph_value_len), or
 * NULL. */
static inline const char *
ml_graph_value(const struct ml_graph *g, size_t i)
{
    if (!ml_graph_vkind_has_text(ml_graph_vkind(g, i)) || g->str[i] == 0)
        return NULL;
    return g->arena + g->str[i] - 1;
}

/* Bytes of object i's value text (0 when it has none). */
static inline size_t
ml_graph_value_len(const struct ml_graph *g, size_t i)
{
    const char *v = ml_graph_value(g, i);

    if (v == NULL)
        return 0;
    if (g->vkind[i] & ML_GRAPH_VNUL)
        for (size_t k = 0; k < g->nnulvals; k++)
            if (g->nulvals[k].addr == ml_graph_addr(g, i))
                return (size_t)g->nulvals[k].len;
    return strlen(v);
}

/* Object i's name, or NULL: it follows the value's text and its NUL. */
static inline const char *
ml_graph_name(const struct ml_graph *g, size_t i)
{
    const char *v;

    if (!(g->vkind[i] & ML_GRAPH_VNAME))
        return NULL;
    v = ml_graph_value(g, i);
    if (v != NULL)
        return v + ml_graph_value_len(g, i) + 1;
    return g->arena + g->str[i] - 1;
}

/* The string at an arena offset + 1 (NULL for 0). */
static inline const char *
ml_graph_str(const struct ml_graph *g, uint32_t off1)
{
    return off1 ? g->arena + off1 - 1 : NULL;
}

/* Address a refs[] entry denotes (defined or dangling). */
static inline uint64_t
ml_graph_ref_addr(const struct ml_graph *g, uint32_t r)
{
    return r < g->n ? ml_graph_addr(g, r) : g->dangling[r - g->n];
}

/* Builds the referrer CSR (par_start/par), replacing an older one.  Only
 * defined objects are listed, each referrer once however many references
 * it holds (as meliae 0.5 lists parents), in index order.  0 or
 * -ENOMEM. */
int ml_graph_compute_parents(struct ml_graph *g);

/* Per-type totals: count, bytes, the largest object and its index. */
struct ml_type_summary {
    uint32_t type;
    uint64_t count;
    uint64_t size;
    uint64_t max_size;
    uint32_t max_index;
};

/* Fills out[t] for every type t < g->ntypes (out has ntypes entries).
 * With mask non-NULL, only objects i with mask[i] set count. */
void ml_graph_summarize(const struct ml_graph *g, const uint8_t *mask,
                        struct ml_type_summary *out);

#endif /* ML_GRAPH_H */
