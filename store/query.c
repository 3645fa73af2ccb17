/* SPDX-License-Identifier: MIT
 *
 * query.c -- what the CLI asks the store, in one read transaction:
 * snapshots, their per-type summaries, an object by address and its
 * referrers.  Only "complete" snapshots exist for these functions.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "procfig.h"

#include "ml-common.h"
#include "store-int.h"

struct st_read {
    struct st_store *s;
    MDB_txn *txn;
    cJSON *doc;                 /* the last st_snap_get's record */
    uint64_t *refs;
    size_t rcap;
    uint32_t *par;              /* st_parents' answer */
    size_t pcap;
    uint64_t gid;               /* last snapshot with_graph checked */
    int grc;                    /* and its answer */
    size_t refs_max;            /* st_read_refs_max */
    size_t par_max;             /* st_read_parents_max */
    size_t par_total;           /* of the last st_parents */
};

static int
norm(int rc)
{
    return rc > 0 ? -rc : rc;
}

int
st_read_begin(struct st_store *s, struct st_read **out)
{
    struct st_read *r = calloc(1, sizeof *r);
    int rc;

    if (r == NULL)
        return -ENOMEM;
    r->s = s;
    r->refs_max = SIZE_MAX;
    r->par_max = SIZE_MAX;
    pthread_rwlock_rdlock(&s->resize);
    rc = s->broken ? MDB_PANIC
                   : mdb_txn_begin(s->env, NULL, MDB_RDONLY, &r->txn);
    /* Another process grew the map: only read-only openers (the CLI,
     * one thread) get here, as the store's one writer holds writer.lock
     * and grows the map itself, never while a reader of its own runs. */
    if (rc == MDB_MAP_RESIZED) {
        pthread_rwlock_unlock(&s->resize);
        pthread_rwlock_wrlock(&s->resize);
        rc = mdb_env_set_mapsize(s->env, 0);
        if (rc != 0)
            s->broken = 1;
        pthread_rwlock_unlock(&s->resize);
        pthread_rwlock_rdlock(&s->resize);
        if (rc == 0)
            rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &r->txn);
    }
    if (rc != 0) {
        pthread_rwlock_unlock(&s->resize);
        free(r);
        return norm(rc);
    }
    *out = r;
    return 0;
}

void
st_read_end(struct st_read *r)
{
    if (r == NULL)
        return;
    mdb_txn_abort(r->txn);
    pthread_rwlock_unlock(&r->s->resize);
    cJSON_Delete(r->doc);
    free(r->refs);
    free(r->par);
    free(r);
}

/* ---- snapshots ---- */

static const char *
jstr(const cJSON *o, const char *k)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);

    return cJSON_IsString(x) ? x->valuestring : NULL;
}

static double
jnum(const cJSON *o, const char *k)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);

    return cJSON_IsNumber(x) ? x->valuedouble : 0;
}

/* Parses record v of snapshot id into si (pointers into *doc). */
static int
parse_meta(uint64_t id, const MDB_val *v, cJSON **doc, struct st_snapinfo *si)
{
    cJSON *o = cJSON_ParseWithLength(v->mv_data, v->mv_size);
    const cJSON *c, *t;
    const char *x;

    *doc = o;
    if (o == NULL)
        return ML_ECORRUPT;
    x = jstr(o, "status");
    if (x == NULL || strcmp(x, "complete") != 0)
        return ML_ENOTFOUND;
    memset(si, 0, sizeof *si);
    si->id = id;
    x = jstr(o, "time_ns");
    si->time_ns = x ? strtoull(x, NULL, 10) : 0;
    x = jstr(o, "proc");
    si->proc = x ? strtoull(x, NULL, 16) : 0;
    si->objects = (uint64_t)jnum(o, "objects");
    si->bytes = (uint64_t)jnum(o, "bytes");
    si->has_graph = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "graph"));
    c = cJSON_GetObjectItemCaseSensitive(o, "claimed");
    t = cJSON_GetObjectItemCaseSensitive(o, "trusted");
    si->trusted = cJSON_IsObject(t);
    if (si->trusted) {
        si->uid = (uint32_t)jnum(t, "uid");
        si->pid = (int32_t)jnum(t, "pid");
    } else {
        si->pid = (int32_t)jnum(c, "pid");
    }
    si->walk_time = jnum(c, "time");
    si->label = jstr(c, "label");
    si->program = jstr(c, "program");
    si->hostname = jstr(c, "hostname");
    si->python = jstr(c, "python");
    si->values = jstr(c, "values");
    si->mode = jstr(c, "mode");
    si->file = jstr(c, "file");
    si->content_hash = jstr(c, "content_hash");
    {
        const char *bad;

        /* The daemon checked them; a record it did not write reads as
         * having none. */
        if (st_procfig_from_json(cJSON_GetObjectItemCaseSensitive(o, "process"),
                                 &si->procfig, &bad) != 0)
            memset(&si->procfig, 0, sizeof si->procfig);
    }
    si->json = NULL;
    return 0;
}

int
st_snap_get(struct st_read *r, uint64_t id, struct st_snapinfo *out)
{
    unsigned char k[8];
    MDB_val key = { 8, k }, v;
    int rc;

    st_put_be64(k, id);
    rc = mdb_get(r->txn, r->s->snaps, &key, &v);
    if (rc == MDB_NOTFOUND)
        return ML_ENOTFOUND;
    if (rc != 0)
        return norm(rc);
    cJSON_Delete(r->doc);
    rc = parse_meta(id, &v, &r->doc, out);
    if (rc == 0)
        out->json = NULL;
    return rc;
}

int
st_snap_list(struct st_read *r, uint64_t since_ns, uint64_t until_ns,
             int (*cb)(void *ctx, const struct st_snapinfo *si), void *ctx)
{
    unsigned char k[16];
    MDB_cursor *c;
    MDB_val key = { 16, k }, v;
    int rc;

    rc = mdb_cursor_open(r->txn, r->s->bytime, &c);
    if (rc != 0)
        return norm(rc);
    st_put_be64(k, since_ns);
    st_put_be64(k + 8, 0);
    for (rc = mdb_cursor_get(c, &key, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &key, &v, MDB_NEXT)) {
        struct st_snapinfo si;
        unsigned char ik[8];
        MDB_val ikey = { 8, ik }, meta;
        cJSON *doc = NULL;
        uint64_t t = st_get_be64(key.mv_data);

        if (until_ns != 0 && t >= until_ns)
            break;
        memcpy(ik, (unsigned char *)key.mv_data + 8, 8);
        rc = mdb_get(r->txn, r->s->snaps, &ikey, &meta);
        if (rc != 0)
            break;
        rc = parse_meta(st_get_be64(ik), &meta, &doc, &si);
        if (rc == 0)
            rc = cb(ctx, &si);
        cJSON_Delete(doc);
        if (rc != 0)
            break;
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : norm(rc);
}

/* ---- summaries ---- */

static int
type_name(struct st_read *r, uint32_t tid, const char **name, size_t *len)
{
    unsigned char k[4];
    MDB_val key = { 4, k }, v;
    int rc;

    st_put_be32(k, tid);
    rc = mdb_get(r->txn, r->s->tid, &key, &v);
    if (rc != 0)
        return rc == MDB_NOTFOUND ? ML_ECORRUPT : norm(rc);
    *name = v.mv_data;
    *len = v.mv_size;
    return 0;
}

static int
complete(struct st_read *r, uint64_t id, int *graph)
{
    struct st_snapinfo si;
    int rc = st_snap_get(r, id, &si);

    if (rc == 0 && graph != NULL)
        *graph = si.has_graph;
    return rc;
}

/* A summ cursor over snapshot id: the next row, or 1 at the end. */
static int
summ_next(struct st_read *r, MDB_cursor *c, uint64_t id, int first,
          int names, struct st_typesum *t)
{
    unsigned char k[12];
    MDB_val key = { 12, k }, v;
    int rc;

    if (first) {
        st_key32(k, id, 0);
        rc = mdb_cursor_get(c, &key, &v, MDB_SET_RANGE);
    } else {
        rc = mdb_cursor_get(c, &key, &v, MDB_NEXT);
    }
    if (rc == MDB_NOTFOUND)
        return 1;
    if (rc != 0)
        return norm(rc);
    if (key.mv_size != 12 || st_get_be64(key.mv_data) != id)
        return 1;
    if (v.mv_size != 32)
        return ML_ECORRUPT;
    const unsigned char *p = v.mv_data;
    t->tid = st_get_be32((unsigned char *)key.mv_data + 8);
    t->count = st_get_be64(p);
    t->bytes = st_get_be64(p + 8);
    t->max_size = st_get_be64(p + 16);
    t->max_addr = st_get_be64(p + 24);
    t->name = NULL;
    t->name_len = 0;
    return names ? type_name(r, t->tid, &t->name, &t->name_len) : 0;
}

static int
summary(struct st_read *r, uint64_t id, int names,
        int (*cb)(void *ctx, const struct st_typesum *t), void *ctx)
{
    struct st_typesum t;
    MDB_cursor *c;
    int rc, first = 1;

    rc = mdb_cursor_open(r->txn, r->s->summ, &c);
    if (rc != 0)
        return norm(rc);
    while ((rc = summ_next(r, c, id, first, names, &t)) == 0) {
        first = 0;
        rc = cb(ctx, &t);
        if (rc != 0)
            break;
    }
    mdb_cursor_close(c);
    return rc == 1 ? 0 : rc;
}

int
st_summary(struct st_read *r, uint64_t id,
           int (*cb)(void *ctx, const struct st_typesum *t), void *ctx)
{
    int rc = complete(r, id, NULL);

    return rc != 0 ? rc : summary(r, id, 1, cb, ctx);
}

int
st_summary_tids(struct st_read *r, uint64_t id,
                int (*cb)(void *ctx, const struct st_typesum *t), void *ctx)
{
    return summary(r, id, 0, cb, ctx);
}

int
st_type_deltas(struct st_read *r, uint64_t a, uint64_t b,
               int (*cb)(void *ctx, const struct st_typesum *ta,
                         const struct st_typesum *tb),
               void *ctx)
{
    struct st_typesum ta, tb, za, zb;
    MDB_cursor *ca = NULL, *cb_ = NULL;
    int ra, rb, rc;

    if ((rc = complete(r, a, NULL)) != 0 || (rc = complete(r, b, NULL)) != 0)
        return rc;
    rc = mdb_cursor_open(r->txn, r->s->summ, &ca);
    if (rc == 0)
        rc = mdb_cursor_open(r->txn, r->s->summ, &cb_);
    if (rc != 0) {
        rc = norm(rc);
        goto out;
    }
    ra = summ_next(r, ca, a, 1, 1, &ta);
    rb = summ_next(r, cb_, b, 1, 1, &tb);
    while (ra == 0 || rb == 0) {
        if (ra < 0 || rb < 0) {
            rc = ra < 0 ? ra : rb;
            goto out;
        }
        if (rb != 0 || (ra == 0 && ta.tid < tb.tid)) {
            zb = ta;
            zb.count = zb.bytes = zb.max_size = zb.max_addr = 0;
            rc = cb(ctx, &ta, &zb);
            ra = summ_next(r, ca, a, 0, 1, &ta);
        } else if (ra != 0 || tb.tid < ta.tid) {
            za = tb;
            za.count = za.bytes = za.max_size = za.max_addr = 0;
            rc = cb(ctx, &za, &tb);
            rb = summ_next(r, cb_, b, 0, 1, &tb);
        } else {
            rc = cb(ctx, &ta, &tb);
            ra = summ_next(r, ca, a, 0, 1, &ta);
            rb = summ_next(r, cb_, b, 0, 1, &tb);
        }
        if (rc != 0)
            goto out;
    }
    rc = (ra < 0) ? ra : (rb < 0) ? rb : 0;
out:
    if (ca != NULL)
        mdb_cursor_close(ca);
    if (cb_ != NULL)
        mdb_cursor_close(cb_);
    return rc;
}

/* ---- objects ---- */

/* The block of db whose key is the greatest <= (id, x): its value and
 * first key.  ML_ENOTFOUND if none. */
static int
block_at(struct st_read *r, MDB_dbi db, uint64_t id, uint64_t x, int key32,
         MDB_val *val, uint64_t *first)
{
    unsigned char k[16];
    size_t klen = key32 ? 12 : 16;
    MDB_cursor *c;
    MDB_val key;
    int rc;

    if (key32)
        st_key32(k, id, (uint32_t)x);
    else
        st_key64(k, id, x);
    key.mv_size = klen;
    key.mv_data = k;
    rc = mdb_cursor_open(r->txn, db, &c);
    if (rc != 0)
        return norm(rc);
    rc = mdb_cursor_get(c, &key, val, MDB_SET_RANGE);
    if (rc == 0 && (key.mv_size != klen || memcmp(key.mv_data, k, klen) != 0))
        rc = mdb_cursor_get(c, &key, val, MDB_PREV);
    else if (rc == MDB_NOTFOUND)
        rc = mdb_cursor_get(c, &key, val, MDB_LAST);
    mdb_cursor_close(c);
    if (rc == MDB_NOTFOUND)
        return ML_ENOTFOUND;
    if (rc != 0)
        return norm(rc);
    if (key.mv_size != klen || st_get_be64(key.mv_data) != id)
        return ML_ENOTFOUND;
    *first = key32 ? st_get_be32((unsigned char *)key.mv_data + 8)
                   : st_get_be64((unsigned char *)key.mv_data + 8);
    return 0;
}

/* A block value: its skip header and its entries (docs/store-format.md,
 * "Blocks"). */
struct blk {
    const unsigned char *ent, *end;
    const unsigned char *skips;
    unsigned nskip;
};

static int
blk_open(const MDB_val *v, struct blk *b)
{
    const unsigned char *p = v->mv_data;

    if (v->mv_size < 2)
        return ML_ECORRUPT;
    b->nskip = (unsigned)p[0] << 8 | p[1];
    if (ST_BLOCK_HDR(b->nskip) > v->mv_size)
        return ML_ECORRUPT;
    b->skips = p + 2;
    b->ent = p + ST_BLOCK_HDR(b->nskip);
    b->end = p + v->mv_size;
    return 0;
}

/* Skip j: where entry (j + 1) * ST_SKIP starts, and the value it is coded
 * against. */
static int
blk_skip(const struct blk *b, unsigned j, const unsigned char **at,
         uint64_t *prev)
{
    const unsigned char *s = b->skips + 10 * (size_t)j;
    size_t off = (size_t)s[0] << 8 | s[1];

    if (off >= (size_t)(b->end - b->ent))
        return ML_ECORRUPT;
    *at = b->ent + off;
    *prev = st_get_be64(s + 2);
    return 0;
}

/* Where to start decoding for a value t (addresses, child oids: the
 * entries ascend): after the last skip coded against a value below t. */
static int
blk_seek_value(const struct blk *b, uint64_t t, const unsigned char **at,
               uint64_t *prev)
{
    unsigned lo = 0, hi = b->nskip;

    while (lo < hi) {                   /* first skip with prev >= t */
        unsigned mid = lo + (hi - lo) / 2;

        if (st_get_be64(b->skips + 10 * (size_t)mid + 2) < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0) {
        *at = b->ent;
        return 0;                       /* *prev: the caller's start */
    }
    return blk_skip(b, lo - 1, at, prev);
}

static int
oid_of(struct st_read *r, uint64_t id, uint64_t addr, uint64_t *oid)
{
    MDB_val v;
    uint64_t a;
    int rc = block_at(r, r->s->addrs, id, addr, 0, &v, &a);
    const unsigned char *p, *end;
    struct blk b;

    if (rc != 0)
        return rc;
    if ((rc = blk_open(&v, &b)) != 0 || (rc = blk_seek_value(&b, addr, &p, &a)) != 0)
        return rc;
    end = b.end;
    while (p < end) {
        uint64_t d, o;

        if (st_get_varint(&p, end, &d) < 0 || st_get_varint(&p, end, &o) < 0)
            return ML_ECORRUPT;
        a += d;
        if (a == addr) {
            *oid = o;
            return 0;
        }
        if (a > addr)
            break;
    }
    return ML_ENOTFOUND;
}

/* Fills o from a decoded record; refs decoded into r->refs if want_refs
 * (p: the end of the record). */
static int
fill(struct st_read *r, const struct st_rec *rec, const unsigned char *p,
     uint64_t oid, int want_refs, struct st_object *o)
{
    int rc;

    memset(o, 0, sizeof *o);
    o->address = rec->addr;
    o->oid = (uint32_t)oid;
    o->tid = (uint32_t)rec->tid;
    rc = type_name(r, o->tid, &o->type, &o->type_len);
    if (rc != 0)
        return rc;
    o->size = rec->size;
    o->has_len = rec->has_len;
    o->len = rec->len;
    o->name = rec->has_name ? (const char *)rec->name : NULL;
    o->name_len = rec->name_len;
    o->vkind = rec->vkind;
    o->value = (const char *)rec->value;
    o->value_len = rec->value_len;
    o->nrefs = (size_t)rec->nrefs;
    if (!want_refs)
        return 0;
    size_t n = o->nrefs < r->refs_max ? o->nrefs : r->refs_max;
    if (n > r->rcap) {
        void *q = realloc(r->refs, n * sizeof *r->refs);

        if (q == NULL)
            return -ENOMEM;
        r->refs = q;
        r->rcap = n;
    }
    const unsigned char *rp = rec->refs_p;
    for (size_t i = 0; i < n; i++)
        if (st_rec_ref(&rp, p, rec, &r->refs[i]) != 0)
            return ML_ECORRUPT;
    o->refs = r->refs;
    o->refs_len = n;
    return 0;
}

void
st_read_refs_max(struct st_read *r, size_t max)
{
    r->refs_max = max;
}

void
st_read_parents_max(struct st_read *r, size_t max)
{
    r->par_max = max;
}

size_t
st_read_parents_total(const struct st_read *r)
{
    return r->par_total;
}

/* Where one child is among an object's refs (st_object_child). */
struct child_q {
    uint64_t child;
    size_t at;
    uint64_t prev;
};

/* Finds q->child among rec's refs by decoding them one at a time (p: the
 * end of the record): nothing of their number is kept in memory. */
static int
child_scan(const struct st_rec *rec, const unsigned char *p,
           struct child_q *q)
{
    const unsigned char *rp = rec->refs_p;
    uint64_t prev = 0, a;

    q->at = SIZE_MAX;
    q->prev = 0;
    for (uint64_t i = 0; i < rec->nrefs; i++) {
        if (st_rec_ref(&rp, p, rec, &a) != 0)
            return ML_ECORRUPT;
        if (a == q->child) {
            q->at = (size_t)i;
            q->prev = prev;
            return 0;
        }
        prev = a;
    }
    return 0;
}

static int
object_at(struct st_read *r, uint64_t id, uint64_t oid, struct st_object *o,
          struct child_q *q)
{
    MDB_val v;
    uint64_t first, prev = 0;
    struct st_rec rec;
    const unsigned char *p, *end;
    int rc = block_at(r, r->s->objs, id, oid, 1, &v, &first);
    struct blk b;

    if (rc != 0)
        return rc;
    if ((rc = blk_open(&v, &b)) != 0)
        return rc;
    p = b.ent;
    end = b.end;
    uint64_t k = (oid - first) / ST_SKIP;  /* entries before oid's skip */
    if (k > 0 && k <= b.nskip) {
        if ((rc = blk_skip(&b, (unsigned)k - 1, &p, &prev)) != 0)
            return rc;
        first += k * ST_SKIP;
    }
    for (uint64_t i = first;; i++) {
        if (p >= end)
            return ML_ENOTFOUND;        /* past the last object */
        if (st_rec_get(&p, end, prev, &rec) != 0)
            return ML_ECORRUPT;
        prev = rec.addr;
        if (i == oid)
            break;
    }
    if (q == NULL)
        return fill(r, &rec, p, oid, 1, o);
    if ((rc = fill(r, &rec, p, oid, 0, o)) != 0)
        return rc;
    return child_scan(&rec, p, q);
}

/* 0 if snapshot id is complete with its graph; remembered for the next
 * call on the same id (a referrer walk asks thousands of times). */
static int
with_graph(struct st_read *r, uint64_t id)
{
    int graph = 0;
    int rc;

    if (r->gid == id && id != 0)
        return r->grc;
    rc = complete(r, id, &graph);
    if (rc == 0 && !graph)
        rc = -ENODATA;
    r->gid = id;
    r->grc = rc;
    return rc;
}

int
st__with_graph(struct st_read *r, uint64_t id)
{
    return with_graph(r, id);
}

MDB_txn *
st__read_txn(const struct st_read *r)
{
    return r->txn;
}

struct st_store *
st__read_store(const struct st_read *r)
{
    return r->s;
}

int
st_object_find(struct st_read *r, uint64_t id, uint64_t address,
               struct st_object *out)
{
    uint64_t oid;
    int rc = with_graph(r, id);

    if (rc == 0)
        rc = oid_of(r, id, address, &oid);
    if (rc == 0)
        rc = object_at(r, id, oid, out, NULL);
    return rc;
}

int
st_referrers(struct st_read *r, uint64_t id, uint64_t address,
             int (*cb)(void *ctx, const struct st_object *o), void *ctx)
{
    const uint32_t *par;
    uint64_t oid;
    size_t np;
    int rc = with_graph(r, id);

    if (rc == 0)
        rc = oid_of(r, id, address, &oid);
    if (rc != 0)
        return rc;
    rc = st_parents(r, id, (uint32_t)oid, &par, &np);
    if (rc != 0)
        return rc;
    /* object_at does not touch r->par: the list stays valid. */
    for (size_t i = 0; i < np; i++) {
        struct st_object o;

        rc = object_at(r, id, par[i], &o, NULL);
        if (rc == 0)
            rc = cb(ctx, &o);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Decodes the first np parents of one rev entry into r->par. */
static int
read_parents(struct st_read *r, const unsigned char **pp,
             const unsigned char *end, uint64_t np)
{
    uint64_t d, parent = 0;

    if (np > (uint64_t)(end - *pp))
        return ML_ECORRUPT;
    if (np > r->pcap) {
        void *q = realloc(r->par, np * sizeof *r->par);

        if (q == NULL)
            return -ENOMEM;
        r->par = q;
        r->pcap = np;
    }
    for (uint64_t i = 0; i < np; i++) {
        if (st_get_varint(pp, end, &d) < 0)
            return ML_ECORRUPT;
        parent += d;
        r->par[i] = (uint32_t)parent;
    }
    return 0;
}

int
st_parents(struct st_read *r, uint64_t id, uint32_t oid,
           const uint32_t **parents, size_t *n)
{
    uint64_t child;
    MDB_val v;
    const unsigned char *p, *end;
    int rc = with_graph(r, id);

    *n = 0;
    *parents = r->par;
    r->par_total = 0;
    if (rc != 0)
        return rc;
    rc = block_at(r, r->s->rev, id, oid, 1, &v, &child);
    if (rc == ML_ENOTFOUND)
        return 0;                       /* before the first child */
    if (rc != 0)
        return rc;
    struct blk b;
    if ((rc = blk_open(&v, &b)) != 0 || (rc = blk_seek_value(&b, oid, &p, &child)) != 0)
        return rc;
    end = b.end;
    while (p < end) {
        uint64_t d, np;

        if (st_get_varint(&p, end, &d) < 0 || st_get_varint(&p, end, &np) < 0)
            return ML_ECORRUPT;
        child += d;
        if (child > oid)
            break;
        if (child < oid) {              /* skip this child's parents */
            for (uint64_t i = 0; i < np; i++)
                if (st_get_varint(&p, end, &d) < 0)
                    return ML_ECORRUPT;
            continue;
        }
        if (np > (uint64_t)(end - p))
            return ML_ECORRUPT;
        r->par_total = (size_t)np;
        if (np > r->par_max)
            np = r->par_max;
        rc = read_parents(r, &p, end, np);
        if (rc != 0)
            return rc;
        *parents = r->par;
        *n = (size_t)np;
        break;
    }
    return 0;
}

int
st_oid_of(struct st_read *r, uint64_t id, uint64_t address, uint32_t *oid)
{
    uint64_t o;
    int rc = with_graph(r, id);

    if (rc == 0)
        rc = oid_of(r, id, address, &o);
    if (rc == 0)
        *oid = (uint32_t)o;
    return rc;
}

int
st_object_get(struct st_read *r, uint64_t id, uint32_t oid,
              struct st_object *out)
{
    int rc = with_graph(r, id);

    return rc != 0 ? rc : object_at(r, id, oid, out, NULL);
}

int
st_object_child(struct st_read *r, uint64_t id, uint32_t oid, uint64_t child,
                struct st_object *out, size_t *at, uint64_t *prev)
{
    struct child_q q = { child, SIZE_MAX, 0 };
    int rc = with_graph(r, id);

    if (rc == 0)
        rc = object_at(r, id, oid, out, &q);
    *at = q.at;
    *prev = q.prev;
    return rc;
}

int
st_type_name(struct st_read *r, uint32_t tid, const char **name, size_t *len)
{
    int rc = type_name(r, tid, name, len);

    return rc == ML_ECORRUPT ? ML_ENOTFOUND : rc;
}

/* Calls fn on every value of db under snapshot id, in key order. */
static int
each_block(struct st_read *r, MDB_dbi db, uint64_t id,
           int (*fn)(void *arg, const MDB_val *key, const MDB_val *val),
           void *arg)
{
    unsigned char k[8];
    MDB_cursor *c;
    MDB_val key = { 8, k }, v;
    int rc = with_graph(r, id);

    if (rc != 0)
        return rc;
    st_put_be64(k, id);
    rc = mdb_cursor_open(r->txn, db, &c);
    if (rc != 0)
        return norm(rc);
    for (rc = mdb_cursor_get(c, &key, &v, MDB_SET_RANGE);
         rc == 0 && key.mv_size >= 12 && st_get_be64(key.mv_data) == id;
         rc = mdb_cursor_get(c, &key, &v, MDB_NEXT)) {
        rc = fn(arg, &key, &v);
        if (rc != 0)
            break;
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : norm(rc);
}

struct each {
    struct st_read *r;
    void *ctx;
    int (*obj)(void *ctx, const struct st_object *o);
    int (*addr)(void *ctx, uint64_t address, uint32_t oid);
    int (*par)(void *ctx, uint32_t child, const uint32_t *parents, size_t n);
};

static int
objs_block(void *arg, const MDB_val *key, const MDB_val *val)
{
    struct each *e = arg;
    struct blk b;
    uint64_t oid = st_get_be32((unsigned char *)key->mv_data + 8), prev = 0;

    if (blk_open(val, &b) != 0)
        return ML_ECORRUPT;
    const unsigned char *p = b.ent, *end = b.end;

    for (; p < end; oid++) {
        struct st_rec rec;
        struct st_object o;
        int rc;

        if (st_rec_get(&p, end, prev, &rec) != 0)
            return ML_ECORRUPT;
        prev = rec.addr;
        rc = fill(e->r, &rec, p, oid, 0, &o);
        if (rc == 0)
            rc = e->obj(e->ctx, &o);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int
st_object_each(struct st_read *r, uint64_t id,
               int (*cb)(void *ctx, const struct st_object *o), void *ctx)
{
    struct each e = { .r = r, .ctx = ctx, .obj = cb };

    return each_block(r, r->s->objs, id, objs_block, &e);
}

static int
addrs_block(void *arg, const MDB_val *key, const MDB_val *val)
{
    struct each *e = arg;
    struct blk b;
    uint64_t a = st_get_be64((unsigned char *)key->mv_data + 8);

    if (blk_open(val, &b) != 0)
        return ML_ECORRUPT;
    const unsigned char *p = b.ent, *end = b.end;

    while (p < end) {
        uint64_t d, o;
        int rc;

        if (st_get_varint(&p, end, &d) < 0 || st_get_varint(&p, end, &o) < 0)
            return ML_ECORRUPT;
        a += d;
        rc = e->addr(e->ctx, a, (uint32_t)o);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int
st_address_each(struct st_read *r, uint64_t id,
                int (*cb)(void *ctx, uint64_t address, uint32_t oid),
                void *ctx)
{
    struct each e = { .r = r, .ctx = ctx, .addr = cb };

    return each_block(r, r->s->addrs, id, addrs_block, &e);
}

static int
rev_block(void *arg, const MDB_val *key, const MDB_val *val)
{
    struct each *e = arg;
    struct blk b;
    uint64_t child = st_get_be32((unsigned char *)key->mv_data + 8);

    if (blk_open(val, &b) != 0)
        return ML_ECORRUPT;
    const unsigned char *p = b.ent, *end = b.end;

    while (p < end) {
        uint64_t d, np;
        int rc;

        if (st_get_varint(&p, end, &d) < 0 || st_get_varint(&p, end, &np) < 0)
            return ML_ECORRUPT;
        child += d;
        rc = read_parents(e->r, &p, end, np);
        if (rc == 0)
            rc = e->par(e->ctx, (uint32_t)child, e->r->par, (size_t)np);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int
st_parents_each(struct st_read *r, uint64_t id,
                int (*cb)(void *ctx, uint32_t child, const uint32_t *parents,
                          size_t n),
                void *ctx)
{
    struct each e = { .r = r, .ctx = ctx, .par = cb };

    return each_block(r, r->s->rev, id, rev_block, &e);
}
