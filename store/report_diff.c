/* SPDX-License-Identifier: MIT
 *
 * report_diff.c -- the "diff" answer (report.h, docs/cli-json.md) between
 * snapshots a and b: the types whose count or bytes changed and, when both
 * kept their object graph, the new objects grouped by type and holder and
 * the gone ones counted.
 */
#define _GNU_SOURCE             /* strndup */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ml-common.h"
#include "report-int.h"
#include "scratch.h"

/* ---- per object ---- */

struct aside {                  /* snapshot a, for membership tests */
    uint64_t *addr;             /* sorted */
    uint32_t *oid;              /* parallel to addr */
    uint32_t *tid;              /* by oid */
    uint64_t *size;             /* by oid */
    uint8_t *seen;              /* by oid: matched in b */
    size_t n, cap, nobj;
};

struct bside {
    struct aside *a;
    uint8_t *isnew;             /* by oid */
    uint32_t *tid;              /* by oid */
    uint64_t *size;             /* by oid */
    uint32_t *holder;           /* by oid: first old parent, else first */
    size_t nobj;
    uint64_t nnew, bnew;
    uint64_t sid;               /* b's snapshot */
    uint64_t transient;         /* new in b, but not in a keep snapshot */
};

static int
a_addr(void *arg, uint64_t address, uint32_t oid)
{
    struct aside *a = arg;

    if (a->n == a->cap)
        return ML_ECORRUPT;
    a->addr[a->n] = address;
    a->oid[a->n++] = oid;
    return 0;
}

static int
a_obj(void *arg, const struct st_object *o)
{
    struct aside *a = arg;

    if (o->oid >= a->nobj)
        return ML_ECORRUPT;
    a->tid[o->oid] = o->tid;
    a->size[o->oid] = o->size;
    return 0;
}

static int
b_obj(void *arg, const struct st_object *o)
{
    struct bside *b = arg;
    struct aside *a = b->a;
    size_t lo = 0, hi = a->n;

    if (o->oid >= b->nobj)
        return ML_ECORRUPT;
    b->tid[o->oid] = o->tid;
    b->size[o->oid] = o->size;
    b->holder[o->oid] = UINT32_MAX;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (a->addr[mid] < o->address)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < a->n && a->addr[lo] == o->address) {
        uint32_t ao = a->oid[lo];

        if (a->tid[ao] == o->tid && a->size[ao] == o->size) {
            a->seen[ao] = 1;
            return 0;
        }
    }
    b->isnew[o->oid] = 1;
    b->nnew++;
    b->bnew += o->size;
    return 0;
}

static int
b_par(void *arg, uint32_t child, const uint32_t *par, size_t n)
{
    struct bside *b = arg;

    if (child >= b->nobj || !b->isnew[child] || n == 0)
        return 0;
    b->holder[child] = par[0];
    for (size_t i = 0; i < n; i++)
        if (par[i] < b->nobj && !b->isnew[par[i]]) {
            b->holder[child] = par[i];
            break;
        }
    return 0;
}

/* New objects of one type held by one old holder, or (byt) by new
 * holders of one type: "1,760 new int held by 1,760 new Session". */
struct group {
    uint32_t tid, holder, htid;
    int byt;
    uint64_t count, bytes, holders;
    uint32_t example;           /* one of the new objects (oid in b) */
};

static int
group_cmp(const void *x, const void *y)
{
    const struct group *a = x, *b = y;

    if (a->bytes != b->bytes)
        return a->bytes < b->bytes ? 1 : -1;
    if (a->tid != b->tid)
        return a->tid < b->tid ? -1 : 1;
    return a->holder < b->holder ? -1 : a->holder > b->holder;
}

static int
key_cmp(const void *x, const void *y)
{
    const struct group *a = x, *b = y;

    if (a->tid != b->tid)
        return a->tid < b->tid ? -1 : 1;
    if (a->byt != b->byt)
        return a->byt - b->byt;
    if (a->byt && a->htid != b->htid)
        return a->htid < b->htid ? -1 : 1;
    return a->holder < b->holder ? -1 : a->holder > b->holder;
}

static int
same_group(const struct group *a, const struct group *b)
{
    return a->tid == b->tid && a->byt == b->byt &&
           (a->byt ? a->htid == b->htid : a->holder == b->holder);
}

/* Among the referrers of oid (and, failing that, theirs): a module if
 * any, else the first object with a name.  UINT32_MAX if none. */
static uint32_t
find_owner(struct ctx *c, uint64_t id, uint32_t oid)
{
    uint32_t level[64], named = UINT32_MAX;
    size_t nl = 0;
    const uint32_t *par;
    size_t np;
    struct st_object o;

    st_read_parents_max(c->r, 64);      /* no more are looked at */
    if (st_parents(c->r, id, oid, &par, &np) != 0)
        return UINT32_MAX;
    for (size_t i = 0; i < np && nl < 64; i++)
        level[nl++] = par[i];
    for (int depth = 0; depth < 2; depth++) {
        uint32_t next[64];
        size_t nn = 0;

        for (size_t i = 0; i < nl; i++) {
            if (st_object_get(c->r, id, level[i], &o) != 0)
                continue;
            if (rp__is_root_type(&o))
                return level[i];
            if (o.name != NULL && named == UINT32_MAX)
                named = level[i];
            if (depth == 0 && st_parents(c->r, id, level[i], &par, &np) == 0)
                for (size_t k = 0; k < np && nn < 64; k++)
                    next[nn++] = par[k];
        }
        if (named != UINT32_MAX)
            return named;
        rp__copy(level, next, nn * sizeof *next);
        nl = nn;
    }
    return named;
}

/* The object json of oid in snapshot id, with "owner" (find_owner) when
 * it has no name itself: "held by list@.. owned by module app.cache". */
static cJSON *
holder_json(struct ctx *c, uint64_t id, uint32_t oid, int isnew)
{
    struct st_object o;
    uint32_t owner;
    cJSON *j;

    if (st_object_get(c->r, id, oid, &o) != 0)
        return cJSON_CreateNull();
    j = rp__obj_json(&o);
    cJSON_AddBoolToObject(j, "new", isnew);
    if (o.name != NULL)
        return j;
    owner = find_owner(c, id, oid);
    if (owner != UINT32_MAX && st_object_get(c->r, id, owner, &o) == 0)
        cJSON_AddItemToObject(j, "owner", rp__obj_json(&o));
    return j;
}

/* Keeps as new only the new objects of b also in snapshot k (the same
 * address, type and size): "alive in the last k snapshots". */
static int
keep_alive(struct ctx *c, const struct snap *sk, struct bside *b)
{
    struct aside k = { 0 };
    int rc = -ENOMEM;

    k.nobj = k.cap = (size_t)sk->objects;
    k.addr = st_scratch((k.cap + 1) * sizeof *k.addr);
    k.oid = st_scratch((k.cap + 1) * sizeof *k.oid);
    k.tid = st_scratch((k.nobj + 1) * sizeof *k.tid);
    k.size = st_scratch((k.nobj + 1) * sizeof *k.size);
    if (!k.addr || !k.oid || !k.tid || !k.size)
        goto out;
    if ((rc = st_address_each(c->r, sk->id, a_addr, &k)) != 0 ||
        (rc = st_object_each(c->r, sk->id, a_obj, &k)) != 0)
        goto out;
    for (size_t i = 0; i < b->nobj; i++) {
        if (!b->isnew[i])
            continue;
        struct st_object o;
        if ((rc = st_object_get(c->r, b->sid, (uint32_t)i, &o)) != 0)
            goto out;
        size_t lo = 0, hi = k.n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;

            if (k.addr[mid] < o.address)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < k.n && k.addr[lo] == o.address &&
            k.tid[k.oid[lo]] == b->tid[i] && k.size[k.oid[lo]] == b->size[i])
            continue;
        b->isnew[i] = 0;
        b->nnew--;
        b->bnew -= b->size[i];
        b->transient++;
    }
    rc = 0;
out:
    st_scratch_free(k.addr);
    st_scratch_free(k.oid);
    st_scratch_free(k.tid);
    st_scratch_free(k.size);
    return rc;
}

int
rp__object_diff(struct ctx *c, const struct snap *sa, const struct snap *sb,
                const struct snap *const *keep, size_t nkeep, uint64_t top,
                uint64_t holders, cJSON *out)
{
    uint32_t *shown = NULL;     /* groups given a holder, per type id */
    struct aside a = { 0 };
    struct bside b = { .a = &a, .sid = sb->id };
    struct group *g = NULL;
    size_t ng = 0;
    int rc = -ENOMEM;

    a.nobj = a.cap = (size_t)sa->objects;
    b.nobj = (size_t)sb->objects;
    a.addr = st_scratch((a.cap + 1) * sizeof *a.addr);
    a.oid = st_scratch((a.cap + 1) * sizeof *a.oid);
    a.tid = st_scratch((a.nobj + 1) * sizeof *a.tid);
    a.size = st_scratch((a.nobj + 1) * sizeof *a.size);
    a.seen = st_scratch(a.nobj + 1);
    b.isnew = st_scratch(b.nobj + 1);
    b.tid = st_scratch((b.nobj + 1) * sizeof *b.tid);
    b.size = st_scratch((b.nobj + 1) * sizeof *b.size);
    b.holder = st_scratch((b.nobj + 1) * sizeof *b.holder);
    if (!a.addr || !a.oid || !a.tid || !a.size || !a.seen || !b.isnew ||
        !b.tid || !b.size || !b.holder)
        goto out;
    if ((rc = st_address_each(c->r, sa->id, a_addr, &a)) != 0 ||
        (rc = st_object_each(c->r, sa->id, a_obj, &a)) != 0 ||
        (rc = st_object_each(c->r, sb->id, b_obj, &b)) != 0) {
        rp__fail(c, rc, "reading objects: %s", st_strerror(rc));
        goto out;
    }
    for (size_t i = 0; i < nkeep; i++)
        if ((rc = keep_alive(c, keep[i], &b)) != 0) {
            rp__fail(c, rc, "reading objects: %s", st_strerror(rc));
            goto out;
        }
    if ((rc = st_parents_each(c->r, sb->id, b_par, &b)) != 0) {
        rp__fail(c, rc, "reading objects: %s", st_strerror(rc));
        goto out;
    }
    /* group the new objects by (type, holder): sort keys, then runs */
    g = st_scratch((b.nnew + 1) * sizeof *g);
    if (g == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    /* First by (type, holder).  Then the groups whose holder is new and
     * itself one of many new objects held alike (ints held by leaked
     * Sessions) are merged by the holder's type; a new holder that stands
     * alone (the cache's list, reallocated) keeps its own group. */
    for (size_t i = 0; i < b.nobj; i++)
        if (b.isnew[i])
            g[ng++] = (struct group){ b.tid[i], b.holder[i], 0, 0, 1,
                                      b.size[i], 1, (uint32_t)i };
    rp__sort(g, ng, sizeof *g, key_cmp);
    size_t k = 0;
    for (size_t i = 0; i < ng; i++) {
        if (k > 0 && same_group(&g[k - 1], &g[i])) {
            g[k - 1].count++;
            g[k - 1].bytes += g[i].bytes;
        } else {
            g[k++] = g[i];
        }
    }
    ng = k;
    int merged = 0;
    /* decide on the sorted array first (bsearch), then re-key */
    uint8_t *roll = st_scratch(ng + 1);
    if (roll == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < ng; i++) {
        uint32_t h = g[i].holder;

        if (h == UINT32_MAX || h >= b.nobj || !b.isnew[h])
            continue;
        struct group key = { .tid = b.tid[h], .holder = b.holder[h] };
        struct group *hg = bsearch(&key, g, ng, sizeof *g, key_cmp);
        roll[i] = hg != NULL && hg->count > 1;
    }
    for (size_t i = 0; i < ng; i++)
        if (roll[i]) {
            g[i].byt = 1;
            g[i].htid = b.tid[g[i].holder];
            merged = 1;
        }
    st_scratch_free(roll);
    if (merged) {
        rp__sort(g, ng, sizeof *g, key_cmp);
        k = 0;
        for (size_t i = 0; i < ng; i++) {
            if (k > 0 && same_group(&g[k - 1], &g[i])) {
                g[k - 1].count += g[i].count;
                g[k - 1].bytes += g[i].bytes;
                g[k - 1].holders += g[i].holders;
            } else {
                g[k++] = g[i];
            }
        }
    }
    ng = k;
    rp__sort(g, ng, sizeof *g, group_cmp);

    uint64_t ngone = 0, bgone = 0;
    for (size_t i = 0; i < a.nobj; i++)
        if (!a.seen[i]) {
            ngone++;
            bgone += a.size[i];
        }
    cJSON *nw = cJSON_AddObjectToObject(out, "new_objects");
    cJSON_AddNumberToObject(nw, "count", (double)b.nnew);
    cJSON_AddNumberToObject(nw, "bytes", (double)b.bnew);
    cJSON_AddNumberToObject(nw, "groups_total", (double)ng);
    if (nkeep > 0)
        cJSON_AddNumberToObject(nw, "transient", (double)b.transient);
    if (holders > 0) {
        uint32_t maxtid = 0;

        for (size_t i = 0; i < ng; i++)
            if (g[i].tid > maxtid)
                maxtid = g[i].tid;
        shown = calloc((size_t)maxtid + 1, sizeof *shown);
        if (shown == NULL) {
            rc = -ENOMEM;
            goto out;
        }
    }
    cJSON *arr = cJSON_AddArrayToObject(nw, "groups");
    for (size_t i = 0; i < ng && (top == 0 || i < top); i++) {
        cJSON *o = cJSON_CreateObject();
        const char *name;
        size_t len;

        if (st_type_name(c->r, g[i].tid, &name, &len) == 0)
            rp__add_strn(o, "type", name, len);
        cJSON_AddNumberToObject(o, "count", (double)g[i].count);
        cJSON_AddNumberToObject(o, "bytes", (double)g[i].bytes);
        if (shown != NULL && shown[g[i].tid]++ >= holders)
            ;                   /* past the groups the caller shows */
        else if (g[i].holder == UINT32_MAX)
            cJSON_AddNullToObject(o, "holder");
        else
            cJSON_AddItemToObject(o, "holder", holder_json(c, sb->id, g[i].holder,
                                                           b.isnew[g[i].holder]));
        /* > 1: held by that many new objects of the holder's type, the
         * holder shown being one of them */
        cJSON_AddNumberToObject(o, "holders", (double)g[i].holders);
        {
            struct st_object ex;

            if (st_object_get(c->r, sb->id, g[i].example, &ex) == 0)
                cJSON_AddNumberToObject(o, "example", (double)ex.address);
        }
        cJSON_AddItemToArray(arr, o);
    }
    cJSON *gone = cJSON_AddObjectToObject(out, "gone_objects");
    cJSON_AddNumberToObject(gone, "count", (double)ngone);
    cJSON_AddNumberToObject(gone, "bytes", (double)bgone);
    rc = 0;
out:
    if (rc == -ENOMEM)
        rp__fail(c, rc, "out of memory");
    st_scratch_free(g);
    st_scratch_free(a.addr);
    st_scratch_free(a.oid);
    st_scratch_free(a.tid);
    st_scratch_free(a.size);
    st_scratch_free(a.seen);
    st_scratch_free(b.isnew);
    st_scratch_free(b.tid);
    st_scratch_free(b.size);
    st_scratch_free(b.holder);
    free(shown);
    return rc;
}

/* ---- per type, and the answer ---- */

struct drow {
    char *name;
    uint64_t ca, cb, ba, bb;
};

struct drows {
    struct drow *v;
    size_t n, cap;
};

static int
drow_add(void *arg, const struct st_typesum *ta, const struct st_typesum *tb)
{
    struct drows *d = arg;

    if (ta->count == tb->count && ta->bytes == tb->bytes)
        return 0;
    void *p = rp__grow(d->v, &d->cap, d->n, sizeof *d->v, 64);

    if (p == NULL)
        return -ENOMEM;
    d->v = p;
    struct drow *w = &d->v[d->n];
    w->name = strndup(tb->name, tb->name_len);
    if (w->name == NULL)
        return -ENOMEM;
    w->ca = ta->count;
    w->cb = tb->count;
    w->ba = ta->bytes;
    w->bb = tb->bytes;
    d->n++;
    return 0;
}

static int
drow_cmp(const void *x, const void *y)
{
    const struct drow *a = x, *b = y;
    int64_t da = (int64_t)(a->bb - a->ba), db = (int64_t)(b->bb - b->ba);
    uint64_t ma = da < 0 ? (uint64_t)-da : (uint64_t)da;
    uint64_t mb = db < 0 ? (uint64_t)-db : (uint64_t)db;

    if (ma != mb)
        return ma < mb ? 1 : -1;
    return strcmp(a->name, b->name);
}

int
rp__cmd_diff(struct ctx *c, const cJSON *req, cJSON *out)
{
    struct snaplist l;
    struct drows d = { 0 };
    const struct snap *sa, *sb;
    const char *sel = rp__arg_str(req, "process");
    uint64_t top;
    int rc;

    if (rp__arg_u64(req, "top", 10, &top) < 0)
        return rp__fail(c, -EINVAL, "--top must be a number");
    rc = rp__load_snaps(c, 0, 0, sel, &l);
    if (rc != 0)
        return rc;
    if ((rc = rp__resolve(c, &l, rp__arg_str(req, "a"), sel, &sa)) != 0 ||
        (rc = rp__resolve(c, &l, rp__arg_str(req, "b"), sel, &sb)) != 0)
        goto out;
    /* latest~1 and latest of a store that two processes fill are two
     * unrelated heaps: every object of one is "new" in the other */
    if (sa->proc != sb->proc && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
                                    req, "across_processes"))) {
        char pa[200], pb[200];

        rc = rp__fail(c, -EINVAL, "snapshots %" PRIu64 " and %" PRIu64 " are "
                      "of two processes (%s; %s): name one with --process "
                      "SEL, or pass --across-processes", sa->id, sb->id,
                      rp__proc_text(sa, pa, sizeof pa),
                      rp__proc_text(sb, pb, sizeof pb));
        goto out;
    }
    rc = st_type_deltas(c->r, sa->id, sb->id, drow_add, &d);
    if (rc != 0) {
        rp__fail(c, rc, "reading summaries: %s", st_strerror(rc));
        goto out;
    }
    rp__sort(d.v, d.n, sizeof *d.v, drow_cmp);
    if ((rc = rp__budget_rows(c, d.n, top, 130, "diff")) != 0)
        goto out;
    cJSON_AddItemToObject(out, "a", rp__snap_json(sa));
    cJSON_AddItemToObject(out, "b", rp__snap_json(sb));
    cJSON *arr = cJSON_AddArrayToObject(out, "types");
    for (size_t i = 0; i < d.n && (top == 0 || i < top); i++) {
        cJSON *o = cJSON_CreateObject();

        cJSON_AddStringToObject(o, "type", d.v[i].name);
        cJSON_AddNumberToObject(o, "count_before", (double)d.v[i].ca);
        cJSON_AddNumberToObject(o, "count_after", (double)d.v[i].cb);
        cJSON_AddNumberToObject(o, "bytes_before", (double)d.v[i].ba);
        cJSON_AddNumberToObject(o, "bytes_after", (double)d.v[i].bb);
        cJSON_AddItemToArray(arr, o);
    }
    if (sa->graph && sb->graph) {
        rc = rp__object_diff(c, sa, sb, NULL, 0, top, 0, out);
    } else {
        cJSON_AddNullToObject(out, "new_objects");
        cJSON_AddStringToObject(out, "note", "object-level diff needs both "
                                "graphs; retention dropped one");
    }
out:
    for (size_t i = 0; i < d.n; i++)
        free(d.v[i].name);
    free(d.v);
    rp__snaps_free(&l);
    return rc;
}
