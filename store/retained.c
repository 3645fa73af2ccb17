/* SPDX-License-Identifier: MIT
 *
 * retained.c -- the dominator tree's answers stored with a snapshot: the
 * commit's part (the CSRs from its edges, common/dominators.c on
 * file-backed arrays, the records), the readers', and st_retained_fill
 * for snapshots stored before them.  See retained.h; the records are
 * docs/store-format.md's "retained" and "rtypes":
 *
 *   retained  u64 snap || u32 first oid (a multiple of ST_RET_RUN)
 *             -> per oid first, first + 1, ... (ST_RET_RUN of them, fewer
 *                in the last): varint retained || varint dom, dom 0 for
 *                the virtual root, else zigzag(oid -> idom) (never 0: an
 *                object does not dominate itself strictly)
 *   rtypes    u64 snap || u32 0   -> u64 objects || u64 total ||
 *                                    u64 roots || u64 leftover ||
 *                                    u32 ntop || ntop x u32 oid
 *             u64 snap || u32 tid -> u64 count || u64 retained ||
 *                                    u64 top_count || u64 max_retained ||
 *                                    u32 max_oid
 *
 * The tid 0 record is written last: readers take the answers as there
 * only when it is.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ingest.h"
#include "retained.h"
#include "store-int.h"

#define HDR_BYTES 36                    /* the tid 0 record before its oids */
#define TYPE_BYTES 36                   /* a type's record */

/* ---- file-backed arrays ---- */

void *
st__map_tmp(const char *dir, size_t bytes)
{
    int fd, rc;
    void *p;

    if (bytes == 0)
        bytes = 1;
    fd = st__tmpfile(dir);
    if (fd < 0) {
        errno = -fd;
        return NULL;
    }
    /* fallocate, not ftruncate: a full disk fails here, not as a SIGBUS
     * on a page of the mapping (as commit.c's scratch) */
    rc = posix_fallocate(fd, 0, (off_t)bytes);
    if (rc != 0) {
        close(fd);
        errno = rc;
        return NULL;
    }
    p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
             fd, 0);
    rc = errno;
    close(fd);                          /* the mapping keeps the file */
    if (p == MAP_FAILED) {
        errno = rc;
        return NULL;
    }
    return p;
}

void
st__unmap(void *p, size_t bytes)
{
    if (p != NULL)
        munmap(p, bytes ? bytes : 1);
}

/* The dominators' arrays: first out of a pool of pages the commit
 * touched already and needs no more (st__span), then new mappings.  An
 * array goes to the fullest span it fits in, so that the large ones at
 * the end (the retained sizes, twice the others) still find room. */
#define POOL_SPANS 4

struct pool {
    const char *tmpdir;
    struct {
        unsigned char *p;               /* what is left: [p, hi) */
        unsigned char *lo, *hi;         /* the whole span */
    } span[POOL_SPANS];
    size_t nspan;
};

static void *
dom_alloc(void *arg, size_t bytes)
{
    struct pool *pl = arg;
    size_t need = (bytes + 63) & ~(size_t)63, best = POOL_SPANS;

    for (size_t i = 0; i < pl->nspan; i++) {
        size_t left = (size_t)(pl->span[i].hi - pl->span[i].p);

        if (need <= left && (best == POOL_SPANS
                             || left < (size_t)(pl->span[best].hi
                                                - pl->span[best].p)))
            best = i;
    }
    if (best < POOL_SPANS) {
        void *r = pl->span[best].p;

        pl->span[best].p += need;
        return r;
    }
    return st__map_tmp(pl->tmpdir, bytes);
}

static void
dom_release(void *arg, void *p, size_t bytes)
{
    struct pool *pl = arg;

    for (size_t i = 0; i < pl->nspan; i++)
        if ((unsigned char *)p >= pl->span[i].lo
                && (unsigned char *)p < pl->span[i].hi)
            return;                     /* the span's owner unmaps it */
    st__unmap(p, bytes);
}

/* The refs CSR from the referrers CSR (pred_start, pred: n + 1 starts,
 * ne entries, all below n), into succ_start (n + 1) and succ (ne): each
 * node's children ascending.  Counts, then filled backwards.  (The
 * referrers of a node are mostly numbered near it, a dump being written
 * depth first: prefetching the random accesses gained nothing.) */
static void
transpose(size_t n, const uint32_t *pred_start, const uint32_t *pred,
          uint64_t ne, uint32_t *succ_start, uint32_t *succ)
{
    memset(succ_start, 0, (n + 1) * sizeof *succ_start);
    for (uint64_t k = 0; k < ne; k++)
        succ_start[pred[k]]++;
    for (size_t i = 1; i < n; i++)
        succ_start[i] += succ_start[i - 1];
    succ_start[n] = (uint32_t)ne;
    for (size_t c = n; c-- > 0;)
        for (uint32_t k = pred_start[c + 1]; k-- > pred_start[c];)
            succ[--succ_start[pred[k]]] = (uint32_t)c;
}

/* ---- the commit's work ---- */

int
st__retwork_init(struct st__retwork *w, const char *tmpdir, size_t n)
{
    memset(w, 0, sizeof *w);
    w->tmpdir = tmpdir;
    w->n = n;
    if (n >= UINT32_MAX - 4)
        return ML_ETOOBIG;
    return 0;
}

/* CSR starts of n + 1 from the child of each edge, the edges ordered
 * by child. */
static void
child_starts(uint32_t *start, size_t n, const uint64_t *edges, uint64_t ne)
{
    uint64_t k = 0;

    for (size_t v = 0; v <= n; v++) {
        while (k < ne && (edges[k] >> 32) < v)
            k++;
        start[v] = (uint32_t)k;
    }
}

int
st__retwork_compute(struct st__retwork *w, uint64_t *edges,
                    uint64_t nedges, uint32_t module_tid, size_t ntypes,
                    const struct st__span *pool, size_t npool)
{
    struct ml_dom_input in;
    struct pool *pl;
    uint32_t *pred = (uint32_t *)(void *)edges, *succ = pred + nedges;
    int rc;

    if (nedges >= UINT32_MAX)
        return ML_ETOOBIG;              /* 32-bit CSR offsets */
    w->nedges = nedges;
    pl = w->pool = calloc(1, sizeof(struct pool));
    if (pl == NULL)
        return -ENOMEM;
    pl->tmpdir = w->tmpdir;
    for (size_t i = 0; i < npool && pl->nspan < POOL_SPANS; i++) {
        unsigned char *lo = pool[i].p;

        if (lo == NULL || pool[i].len == 0)
            continue;
        pl->span[pl->nspan].p = pl->span[pl->nspan].lo = lo;
        pl->span[pl->nspan].hi = lo + pool[i].len;
        pl->nspan++;
    }
    w->pred_start = dom_alloc(pl, (w->n + 1) * sizeof *w->pred_start);
    w->succ_start = dom_alloc(pl, (w->n + 1) * sizeof *w->succ_start);
    if (w->pred_start == NULL || w->succ_start == NULL)
        return -errno;
    child_starts(w->pred_start, w->n, edges, nedges);
    /* The parents into the first half, in place: entry k (4 bytes at 4k)
     * is written after edge k (8 bytes at 8k) and every edge before it
     * have been read, and before any edge after it is. */
    for (uint64_t k = 0; k < nedges; k++) {
        uint32_t parent = (uint32_t)edges[k];

        pred[k] = parent;
    }
    transpose(w->n, w->pred_start, pred, nedges, w->succ_start, succ);
    memset(&in, 0, sizeof in);
    in.n = w->n;
    in.succ_start = w->succ_start;
    in.succ = succ;
    in.pred_start = w->pred_start;
    in.pred = pred;
    in.size = w->size;
    in.has_root_type = module_tid != UINT32_MAX;
    in.root_type = module_tid;
    in.type = w->tid;
    in.ntypes = ntypes;
    in.alloc = dom_alloc;
    in.release = dom_release;
    in.alloc_arg = pl;
    rc = ml_dom_compute(&w->d, &in);
    /* the graph is not needed any more: only sizes and types */
    dom_release(pl, w->succ_start, (w->n + 1) * sizeof *w->succ_start);
    dom_release(pl, w->pred_start, (w->n + 1) * sizeof *w->pred_start);
    w->succ_start = w->pred_start = NULL;
    w->done = rc == 0;
    return rc;
}

void
st__retwork_free(struct st__retwork *w)
{
    if (w->pool != NULL) {
        dom_release(w->pool, w->succ_start,
                    (w->n + 1) * sizeof *w->succ_start);
        dom_release(w->pool, w->pred_start,
                    (w->n + 1) * sizeof *w->pred_start);
    }
    ml_dom_free(&w->d);             /* before the pool it may be in */
    free(w->pool);
    memset(w, 0, sizeof *w);
}

/* ---- writing ---- */

struct trow {
    uint64_t count, max_retained;
    uint32_t max_oid;
};

int
st__ret_write(struct st_store *s, uint64_t id, const struct ml_dom *d,
              const uint32_t *tid, const uint32_t *gtid,
              int (*put)(void *arg, MDB_dbi db, const void *k, size_t klen,
                         const void *v, size_t vlen),
              void *arg)
{
    const size_t n = d->n;
    unsigned char k[12], buf[ST_RET_RUN * 2 * ST_VARINT_MAX];
    struct trow *rows = calloc(d->ntypes ? d->ntypes : 1, sizeof *rows);
    uint32_t *top = NULL;
    unsigned char *hdr = NULL;
    size_t ntop = n < ST_RET_TOP ? n : ST_RET_TOP;
    int rc = 0;

    if (rows == NULL)
        return -ENOMEM;
    for (size_t f = 0; rc == 0 && f < n; f += ST_RET_RUN) {
        unsigned char *e = buf;

        for (size_t v = f; v < n && v < f + ST_RET_RUN; v++) {
            uint32_t dom = d->idom[v];
            struct trow *t = &rows[tid[v]];

            e = st_put_varint(e, d->retained[v]);
            e = st_put_varint(e, dom == ML_DOM_ROOT ? 0 : st_zigzag(v, dom));
            if (t->count++ == 0 || d->retained[v] > t->max_retained) {
                t->max_retained = d->retained[v];
                t->max_oid = (uint32_t)v;
            }
        }
        st_key32(k, id, (uint32_t)f);
        rc = put(arg, s->ret, k, 12, buf, (size_t)(e - buf));
    }
    for (size_t t = 0; rc == 0 && t < d->ntypes; t++) {
        unsigned char v[TYPE_BYTES];

        if (rows[t].count == 0)
            continue;
        st_key32(k, id, gtid != NULL ? gtid[t] : (uint32_t)t);
        st_put_be64(v, rows[t].count);
        st_put_be64(v + 8, d->type_retained[t]);
        st_put_be64(v + 16, d->type_top[t]);
        st_put_be64(v + 24, rows[t].max_retained);
        st_put_be32(v + 32, rows[t].max_oid);
        rc = put(arg, s->rtypes, k, 12, v, TYPE_BYTES);
    }
    if (rc == 0) {
        top = malloc((ntop ? ntop : 1) * sizeof *top);
        hdr = malloc(HDR_BYTES + 4 * ntop);
        if (top == NULL || hdr == NULL)
            rc = -ENOMEM;
    }
    if (rc == 0) {
        ntop = ml_dom_top(d, top, ntop);
        st_put_be64(hdr, n);
        st_put_be64(hdr + 8, d->total);
        st_put_be64(hdr + 16, d->nroots);
        st_put_be64(hdr + 24, d->nleftover);
        st_put_be32(hdr + 32, (uint32_t)ntop);
        for (size_t i = 0; i < ntop; i++)
            st_put_be32(hdr + HDR_BYTES + 4 * i, top[i]);
        st_key32(k, id, 0);
        rc = put(arg, s->rtypes, k, 12, hdr, HDR_BYTES + 4 * ntop);
    }
    free(rows);
    free(top);
    free(hdr);
    return rc;
}

/* ---- reading ---- */

static int
norm(int rc)
{
    return rc > 0 ? -rc : rc;
}

int
st_retained_info(struct st_read *r, uint64_t id, struct st_retinfo *out)
{
    struct st_store *s = st__read_store(r);
    unsigned char k[12];
    MDB_val key = { 12, k }, v;
    const unsigned char *p;
    int rc = st__with_graph(r, id);

    if (rc != 0)
        return rc;
    if (!s->has_ret)
        return ML_ENOTFOUND;
    st_key32(k, id, 0);
    rc = mdb_get(st__read_txn(r), s->rtypes, &key, &v);
    if (rc == MDB_NOTFOUND)
        return ML_ENOTFOUND;
    if (rc != 0)
        return norm(rc);
    p = v.mv_data;
    if (v.mv_size < HDR_BYTES
        || v.mv_size != HDR_BYTES + 4 * (size_t)st_get_be32(p + 32))
        return ML_ECORRUPT;
    out->objects = st_get_be64(p);
    out->total = st_get_be64(p + 8);
    out->roots = st_get_be64(p + 16);
    out->leftover = st_get_be64(p + 24);
    out->ntop = st_get_be32(p + 32);
    out->top = p + HDR_BYTES;
    return 0;
}

uint32_t
st_retinfo_top(const struct st_retinfo *in, size_t i)
{
    return st_get_be32(in->top + 4 * i);
}

/* Decodes one entry of oid; *p moves past it. */
static int
entry(const unsigned char **p, const unsigned char *end, uint64_t oid,
      uint64_t *retained, uint32_t *idom)
{
    uint64_t z;

    if (st_get_varint(p, end, retained) < 0 || st_get_varint(p, end, &z) < 0)
        return ML_ECORRUPT;
    if (z == 0) {
        *idom = ST_RET_ROOT;
        return 0;
    }
    z = st_unzigzag(oid, z);
    if (z >= UINT32_MAX)
        return ML_ECORRUPT;
    *idom = (uint32_t)z;
    return 0;
}

int
st_retained_get(struct st_read *r, uint64_t id, uint32_t oid,
                uint64_t *retained, uint32_t *idom)
{
    struct st_store *s = st__read_store(r);
    unsigned char k[12];
    MDB_val key = { 12, k }, v;
    const unsigned char *p, *end;
    uint32_t first = oid - oid % ST_RET_RUN;
    int rc = st__with_graph(r, id);

    if (rc != 0)
        return rc;
    if (!s->has_ret)
        return ML_ENOTFOUND;
    st_key32(k, id, first);
    rc = mdb_get(st__read_txn(r), s->ret, &key, &v);
    if (rc == MDB_NOTFOUND)
        return ML_ENOTFOUND;
    if (rc != 0)
        return norm(rc);
    p = v.mv_data;
    end = p + v.mv_size;
    for (uint32_t x = first;; x++) {
        if (p >= end)
            return ML_ENOTFOUND;        /* past the last object */
        if ((rc = entry(&p, end, x, retained, idom)) != 0)
            return rc;
        if (x == oid)
            return 0;
    }
}

int
st_retained_each(struct st_read *r, uint64_t id,
                 int (*cb)(void *arg, uint32_t oid, uint64_t retained,
                           uint32_t idom),
                 void *arg)
{
    struct st_store *s = st__read_store(r);
    unsigned char k[12];
    MDB_val key = { 12, k }, v;
    MDB_cursor *c;
    uint64_t next = 0;
    int rc = st__with_graph(r, id);

    if (rc != 0)
        return rc;
    if (!s->has_ret)
        return ML_ENOTFOUND;
    st_key32(k, id, 0);
    if ((rc = mdb_cursor_open(st__read_txn(r), s->ret, &c)) != 0)
        return norm(rc);
    for (rc = mdb_cursor_get(c, &key, &v, MDB_SET_RANGE);
         rc == 0 && key.mv_size == 12 && st_get_be64(key.mv_data) == id;
         rc = mdb_cursor_get(c, &key, &v, MDB_NEXT)) {
        const unsigned char *p = v.mv_data, *end = p + v.mv_size;
        uint64_t oid = st_get_be32((unsigned char *)key.mv_data + 8);

        if (oid != next) {              /* runs follow each other */
            rc = ML_ECORRUPT;
            break;
        }
        for (; rc == 0 && p < end; oid++) {
            uint64_t ret;
            uint32_t dom;

            rc = entry(&p, end, oid, &ret, &dom);
            if (rc == 0)
                rc = cb(arg, (uint32_t)oid, ret, dom);
        }
        if (rc != 0)
            break;
        next = oid;
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : norm(rc);
}

static int
type_row(const MDB_val *key, const MDB_val *v, struct st_rettype *t)
{
    const unsigned char *p = v->mv_data;

    if (key->mv_size != 12 || v->mv_size != TYPE_BYTES)
        return ML_ECORRUPT;
    t->tid = st_get_be32((unsigned char *)key->mv_data + 8);
    t->count = st_get_be64(p);
    t->retained = st_get_be64(p + 8);
    t->top = st_get_be64(p + 16);
    t->max_retained = st_get_be64(p + 24);
    t->max_oid = st_get_be32(p + 32);
    return 0;
}

int
st_retained_types(struct st_read *r, uint64_t id,
                  int (*cb)(void *arg, const struct st_rettype *t),
                  void *arg)
{
    struct st_store *s = st__read_store(r);
    unsigned char k[12];
    MDB_val key = { 12, k }, v;
    MDB_cursor *c;
    int rc = st__with_graph(r, id);

    if (rc != 0)
        return rc;
    if (!s->has_ret)
        return ML_ENOTFOUND;
    st_key32(k, id, 1);                 /* after the figures */
    if ((rc = mdb_cursor_open(st__read_txn(r), s->rtypes, &c)) != 0)
        return norm(rc);
    for (rc = mdb_cursor_get(c, &key, &v, MDB_SET_RANGE);
         rc == 0 && key.mv_size == 12 && st_get_be64(key.mv_data) == id;
         rc = mdb_cursor_get(c, &key, &v, MDB_NEXT)) {
        struct st_rettype t;

        rc = type_row(&key, &v, &t);
        if (rc == 0)
            rc = cb(arg, &t);
        if (rc != 0)
            break;
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : norm(rc);
}

/* ---- st_retained_fill: from a stored graph ---- */

struct fgraph {
    size_t n, next;
    uint64_t *size;
    uint32_t *tid;
    uint32_t *pred_start, *pred, *succ_start, *succ;
    uint64_t npred;
    uint32_t ntids, module_tid;
    int counting;
};

static int
fill_object(void *arg, const struct st_object *o)
{
    struct fgraph *g = arg;

    if (o->oid != g->next || o->oid >= g->n)
        return ML_ECORRUPT;
    g->size[g->next] = o->size;
    g->tid[g->next++] = o->tid;
    if (o->tid >= g->ntids)
        g->ntids = o->tid + 1;
    if (g->module_tid == UINT32_MAX && o->type_len == 6
        && memcmp(o->type, "module", 6) == 0)
        g->module_tid = o->tid;
    return 0;
}

static int
fill_parents(void *arg, uint32_t child, const uint32_t *parents, size_t np)
{
    struct fgraph *g = arg;

    if (child >= g->n || (!g->counting && child < g->next))
        return ML_ECORRUPT;
    if (g->counting) {
        g->npred += np;
        return g->npred >= UINT32_MAX ? ML_ETOOBIG : 0;
    }
    if (g->npred + np > g->pred_start[g->n])    /* the count's total */
        return ML_ECORRUPT;
    while (g->next <= child)
        g->pred_start[g->next++] = (uint32_t)g->npred;
    for (size_t i = 0; i < np; i++) {
        if (parents[i] >= g->n)
            return ML_ECORRUPT;
        g->pred[g->npred++] = parents[i];
    }
    return 0;
}

/* The graph's arrays, the types' too with all. */
static void
fgraph_free(struct fgraph *g, uint64_t total, int all)
{
    st__unmap(g->size, g->n * sizeof *g->size);
    st__unmap(g->pred_start, (g->n + 1) * sizeof *g->pred_start);
    st__unmap(g->succ_start, (g->n + 1) * sizeof *g->succ_start);
    st__unmap(g->pred, total * sizeof *g->pred);
    st__unmap(g->succ, total * sizeof *g->succ);
    g->size = NULL;
    g->pred_start = g->succ_start = g->pred = g->succ = NULL;
    if (all) {
        st__unmap(g->tid, g->n * sizeof *g->tid);
        g->tid = NULL;
    }
}

/* Reads snapshot id's graph into g (file-backed) and computes d. */
static int
fill_compute(struct st_store *s, uint64_t id, struct fgraph *g,
             struct ml_dom *d, struct pool *pl, uint64_t *total, int *have)
{
    struct st_read *r;
    struct st_snapinfo si;
    struct st_retinfo ri;
    struct ml_dom_input in;
    int rc = st_read_begin(s, &r);

    *have = 0;
    if (rc != 0)
        return rc;
    rc = st_snap_get(r, id, &si);
    if (rc == 0 && !si.has_graph)
        rc = -ENODATA;
    if (rc == 0 && st_retained_info(r, id, &ri) == 0) {
        *have = 1;                      /* stored already */
        st_read_end(r);
        return 0;
    }
    if (rc != 0)
        goto out;
    if (si.objects >= UINT32_MAX - 4) {
        rc = ML_ETOOBIG;
        goto out;
    }
    g->n = (size_t)si.objects;
    g->module_tid = UINT32_MAX;
    g->size = st__map_tmp(s->tmpdir, g->n * sizeof *g->size);
    g->tid = st__map_tmp(s->tmpdir, g->n * sizeof *g->tid);
    g->pred_start = st__map_tmp(s->tmpdir, (g->n + 1) * sizeof *g->pred_start);
    if (g->size == NULL || g->tid == NULL || g->pred_start == NULL) {
        rc = -errno;
        goto out;
    }
    if ((rc = st_object_each(r, id, fill_object, g)) != 0)
        goto out;
    if (g->next != g->n) {
        rc = ML_ECORRUPT;
        goto out;
    }
    /* the referrers twice: their count, then into arrays of that size */
    g->counting = 1;
    if ((rc = st_parents_each(r, id, fill_parents, g)) != 0)
        goto out;
    *total = g->npred;
    g->pred = st__map_tmp(s->tmpdir, *total * sizeof *g->pred);
    g->succ = st__map_tmp(s->tmpdir, *total * sizeof *g->succ);
    g->succ_start = st__map_tmp(s->tmpdir, (g->n + 1) * sizeof *g->succ_start);
    if (g->pred == NULL || g->succ == NULL || g->succ_start == NULL) {
        rc = -errno;
        goto out;
    }
    g->counting = 0;
    g->npred = 0;
    g->next = 0;
    g->pred_start[g->n] = (uint32_t)*total;
    if ((rc = st_parents_each(r, id, fill_parents, g)) != 0)
        goto out;
    if (g->npred != *total) {
        rc = ML_ECORRUPT;
        goto out;
    }
    while (g->next <= g->n)
        g->pred_start[g->next++] = (uint32_t)g->npred;
    st_read_end(r);
    r = NULL;
    /* the refs: the referrers transposed */
    transpose(g->n, g->pred_start, g->pred, *total, g->succ_start, g->succ);
    memset(&in, 0, sizeof in);
    in.n = g->n;
    in.succ_start = g->succ_start;
    in.succ = g->succ;
    in.pred_start = g->pred_start;
    in.pred = g->pred;
    in.size = g->size;
    in.has_root_type = g->module_tid != UINT32_MAX;
    in.root_type = g->module_tid;
    in.type = g->tid;
    in.ntypes = g->ntids;
    in.alloc = dom_alloc;
    in.release = dom_release;
    in.alloc_arg = pl;
    rc = ml_dom_compute(d, &in);
out:
    st_read_end(r);
    return rc;
}

/* Puts through write transactions of up to txn_bytes, backed on disk
 * ahead as the commit's (st__disk_ahead). */
struct fput {
    struct st_store *s;
    MDB_txn *txn;
    size_t dirty;
    uint64_t used;
    int no_append;              /* a put to "retained" was not the last key */
};

static int
fput_begin(struct fput *f)
{
    f->dirty = 0;
    f->used = st__used_end(f->s);
    return st__write_txn(f->s, &f->txn);
}

static int
fput(void *arg, MDB_dbi db, const void *k, size_t klen, const void *v,
     size_t vlen)
{
    struct fput *f = arg;
    MDB_val key = { klen, (void *)k }, val = { vlen, (void *)v };
    int rc;

    if (f->dirty > f->s->txn_bytes) {
        rc = mdb_txn_commit(f->txn);
        f->txn = NULL;
        if (rc == 0)
            rc = fput_begin(f);
        if (rc != 0)
            return rc;
    }
    rc = st__disk_ahead(f->s, f->used, f->dirty + klen + vlen + 16);
    /* "retained" is written in key order, and the newest snapshot's keys
     * (the commit's) come after every other: appended, LMDB fills its
     * pages where a split in the middle would leave them half empty (a
     * third fewer pages for values of about 1 KiB).  A fill of an older
     * snapshot is refused the first time (MDB_KEYEXIST, nothing
     * written), then puts as any other. */
    if (rc == 0 && db == f->s->ret && !f->no_append) {
        rc = mdb_put(f->txn, db, &key, &val, MDB_APPEND);
        if (rc == MDB_KEYEXIST) {
            f->no_append = 1;
            rc = mdb_put(f->txn, db, &key, &val, 0);
        }
    } else if (rc == 0) {
        rc = mdb_put(f->txn, db, &key, &val, 0);
    }
    f->dirty += klen + vlen + 16;
    return rc;
}

/* Writes d's records in transactions of their own, after deleting what
 * a crash may have left of an earlier fill (in the first one); the
 * figures, in the last, make them visible. */
static int
fill_write(struct st_store *s, uint64_t id, const struct ml_dom *d,
           const uint32_t *tid, const uint32_t *gtid, struct fput *f)
{
    int rc = fput_begin(f);

    if (rc == 0)
        rc = st__del_prefix(f->txn, s->ret, id);
    if (rc == 0)
        rc = st__del_prefix(f->txn, s->rtypes, id);
    if (rc == 0)
        rc = st__ret_write(s, id, d, tid, gtid, fput, f);
    if (rc == 0) {
        rc = mdb_txn_commit(f->txn);
        f->txn = NULL;
    }
    if (f->txn != NULL)
        mdb_txn_abort(f->txn);
    f->txn = NULL;
    return rc;
}

/* The map was sized for what the store held: grown first for the
 * records (a few bytes an object, generously), again if that was not
 * enough; --max-store bounds it (MDB_MAP_FULL then: computed on demand,
 * as before). */
int
st__ret_store(struct st_store *s, uint64_t id, const struct ml_dom *d,
              const uint32_t *tid, const uint32_t *gtid)
{
    struct fput f = { .s = s };
    int rc = 0;

    for (int attempt = 0; attempt < 4; attempt++) {
        MDB_envinfo info;
        uint64_t want = st__used_end(s) + (12 + attempt * 12) * (uint64_t)d->n
                        + (1u << 20);

        if (mdb_env_info(s->env, &info) == 0
            && (rc = st__grow_map(s, info.me_mapsize, want)) != 0)
            break;
        rc = fill_write(s, id, d, tid, gtid, &f);
        if (rc != MDB_MAP_FULL)
            break;
    }
    return norm(rc);
}

int
st_retained_fill(struct st_store *s, uint64_t id)
{
    struct fgraph g;
    struct ml_dom d;
    struct pool pl = { .tmpdir = s->tmpdir };   /* no span: new mappings */
    uint64_t total = 0;
    int rc, have;

    if (s->flags & ST_RDONLY)
        return -EROFS;
    if (s->broken)
        return MDB_PANIC;
    if (!s->has_ret)            /* opened on a full disk: not created */
        return ML_ENOTFOUND;
    memset(&g, 0, sizeof g);
    memset(&d, 0, sizeof d);
    rc = fill_compute(s, id, &g, &d, &pl, &total, &have);
    fgraph_free(&g, total, 0);          /* the types are still needed */
    if (rc == 0 && !have)
        rc = st__ret_store(s, id, &d, g.tid, NULL);
    fgraph_free(&g, total, 1);
    ml_dom_free(&d);
    st__size_refresh(s);
    return norm(rc);
}

/* ---- the commit's second step, seen by the queries ---- */

void
st__ret_pending_set(struct st_store *s, uint64_t id)
{
    pthread_mutex_lock(&s->ret_mu);
    s->ret_pending = id;
    if (id == 0)
        pthread_cond_broadcast(&s->ret_cv);
    pthread_mutex_unlock(&s->ret_mu);
}

int
st_retained_pending(struct st_read *r, uint64_t id)
{
    struct st_store *s = st__read_store(r);
    int rc;

    pthread_mutex_lock(&s->ret_mu);
    rc = id != 0 && s->ret_pending == id;
    pthread_mutex_unlock(&s->ret_mu);
    return rc;
}

void
st_retained_wait(struct st_store *s)
{
    pthread_mutex_lock(&s->ret_mu);
    while (s->ret_pending != 0)
        pthread_cond_wait(&s->ret_cv, &s->ret_mu);
    pthread_mutex_unlock(&s->ret_mu);
}
