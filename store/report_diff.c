/* SPDX-License-Identifier: MIT
 *
 * report_diff.c -- the "diff" answer (report.h, docs/cli-json.md) between
 * snapshots a and b: the types whose count or bytes changed and, when both
 * kept their object graph, the new objects grouped by their accumulation
 * point and the gone ones counted.
 *
 * The accumulation point of a new object is the first old object reached
 * walking up through new holders: where the new structure hangs off what
 * existed before (common/accum.h, which finds them).  A module's list that
 * got new Nodes, each holding a new Block holding new bytes, is one group
 * (the list, with its Nodes, Blocks and bytes), not one group per holder.
 */
#define _GNU_SOURCE             /* strndup */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "accum.h"
#include "ml-common.h"
#include "report-int.h"
#include "report_births.h"
#include "scratch.h"

/* Shown groups of diff that get a path (each is a referrer search). */
#define RP_DIFF_PATHS 10
/* Types listed per group by diff (the report asks for all of them). */
#define RP_DIFF_GROUP_TYPES 8

#define NONE ML_ACCUM_NONE

/* ---- per object ---- */

struct aside {                  /* snapshot a, for membership tests */
    uint64_t *addr;             /* sorted */
    uint32_t *oid;              /* parallel to addr */
    uint32_t *tid;              /* by oid */
    uint64_t *size;             /* by oid */
    uint8_t *seen;              /* by oid: matched in b */
    size_t n, cap, nobj;
};

/* What an object of b is (common/accum.h: the rule of "new"). */
enum {
    B_OLD = ML_ACCUM_OLD,       /* a has it: same address and type */
    B_NEW = ML_ACCUM_NEW,       /* new, and alive in the keep snapshots */
    B_PASS = ML_ACCUM_PASS,     /* new, but not alive in them: walked
                                 * through, not counted ("transient") */
};

struct bside {
    struct aside *a;
    struct ml_accum_side s;     /* by oid: state (B_*), referred, anchor,
                                 * depth; the new-to-new edges */
    uint32_t *tid;              /* by oid */
    uint64_t *size;             /* by oid */
    size_t nobj;
    uint64_t nnew, bnew;
    uint64_t sid;               /* b's snapshot */
    struct st_read *r;          /* that reads it */
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

/* The oid in a of an object at address with type tid, or NONE. */
static uint32_t
a_find(const struct aside *a, uint64_t address, uint32_t tid)
{
    size_t lo = 0, hi = a->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (a->addr[mid] < address)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < a->n && a->addr[lo] == address && a->tid[a->oid[lo]] == tid)
        return a->oid[lo];
    return NONE;
}

static int
b_obj(void *arg, const struct st_object *o)
{
    struct bside *b = arg;
    uint32_t ao;

    if (o->oid >= b->nobj)
        return ML_ECORRUPT;
    b->tid[o->oid] = o->tid;
    b->size[o->oid] = o->size;
    b->s.anchor[o->oid] = NONE;
    b->s.depth[o->oid] = 0;
    /* the same object even when its size changed: a list that grew is
     * the list that was there, and new things hang off it */
    if ((ao = a_find(b->a, o->address, o->tid)) != NONE) {
        b->a->seen[ao] = 1;
        b->s.state[o->oid] = B_OLD;
        return 0;
    }
    b->s.state[o->oid] = B_NEW;
    b->nnew++;
    b->bnew += o->size;
    return 0;
}

/* Each object's referrers, to the one rule of "new". */
static int
b_par(void *arg, uint32_t child, const uint32_t *par, size_t n)
{
    struct bside *b = arg;

    return ml_accum_referrers(&b->s, child, par, n);
}

/* A REUSED object becomes new: counted, and a's object at its address is
 * gone after all. */
static int
b_reused(void *arg, uint32_t i)
{
    struct bside *b = arg;
    struct st_object o;
    int rc;

    if ((rc = st_object_get(b->r, b->sid, i, &o)) != 0)
        return rc;
    uint32_t ao = a_find(b->a, o.address, o.tid);
    if (ao != NONE)
        b->a->seen[ao] = 0;
    b->nnew++;
    b->bnew += b->size[i];
    return 0;
}

/* Among the referrers of oid (and, failing that, theirs): a module if
 * any, else the first object with a name.  NONE if none. */
static uint32_t
find_owner(struct ctx *c, uint64_t id, uint32_t oid)
{
    uint32_t level[64], named = NONE;
    size_t nl = 0;
    const uint32_t *par;
    size_t np;
    struct st_object o;

    st_read_parents_max(c->r, 64);      /* no more are looked at */
    if (st_parents(c->r, id, oid, &par, &np) != 0)
        return NONE;
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
            if (o.name != NULL && named == NONE)
                named = level[i];
            if (depth == 0 && st_parents(c->r, id, level[i], &par, &np) == 0)
                for (size_t k = 0; k < np && nn < 64; k++)
                    next[nn++] = par[k];
        }
        if (named != NONE)
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
    if (owner != NONE && st_object_get(c->r, id, owner, &o) == 0)
        cJSON_AddItemToObject(j, "owner", rp__obj_json(&o));
    return j;
}

/* Keeps as new only the new objects of b also in snapshot k (the same
 * address and type): "alive in the last k snapshots".  The others are
 * still new (the search walks through them) but not counted. */
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
        if (b->s.state[i] != B_NEW)
            continue;
        struct st_object o;
        if ((rc = st_object_get(c->r, b->sid, (uint32_t)i, &o)) != 0)
            goto out;
        if (a_find(&k, o.address, b->tid[i]) != NONE)
            continue;
        b->s.state[i] = B_PASS;
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

/* One group's JSON: its accumulation point ("holder"), its totals and its
 * first tmax rows (0: all), biggest first. */
static cJSON *
group_json(struct ctx *c, const struct snap *sb, const struct bside *b,
           const struct ml_accum_group *g,
           const struct ml_accum_row *rows, size_t tmax,
           int with_path)
{
    cJSON *o = cJSON_CreateObject(), *types;
    const struct ml_accum_row *top = &rows[g->first];
    struct st_object ob;
    const char *name;
    size_t len;

    if (o == NULL)
        return NULL;
    if (st_type_name(c->r, top->type, &name, &len) == 0)
        rp__add_strn(o, "type", name, len);
    cJSON_AddNumberToObject(o, "count", (double)g->count);
    cJSON_AddNumberToObject(o, "bytes", (double)g->bytes);
    if (g->anchor == NONE) {
        cJSON_AddNullToObject(o, "holder");
    } else {
        cJSON *h = holder_json(c, sb->id, g->anchor,
                               b->s.state[g->anchor] != B_OLD);
        cJSON *path = NULL;

        if (with_path && cJSON_IsObject(h))
            path = rp__path_json(c, sb, (uint64_t)cJSON_GetNumberValue(
                cJSON_GetObjectItemCaseSensitive(h, "address")));
        if (with_path && cJSON_IsObject(h))
            cJSON_AddItemToObject(h, "path", path ? path : cJSON_CreateNull());
        cJSON_AddItemToObject(o, "holder", h);
    }
    cJSON_AddNumberToObject(o, "depth", (double)g->depth);
    if (st_object_get(c->r, sb->id, top->example, &ob) == 0)
        cJSON_AddNumberToObject(o, "example", (double)ob.address);
    cJSON_AddNumberToObject(o, "types_total", (double)g->n);
    types = cJSON_AddArrayToObject(o, "types");
    for (size_t k = 0; types != NULL && k < g->n && (tmax == 0 || k < tmax);
         k++) {
        const struct ml_accum_row *r = &rows[g->first + k];
        cJSON *t = cJSON_CreateObject();

        if (st_type_name(c->r, r->type, &name, &len) == 0)
            rp__add_strn(t, "type", name, len);
        cJSON_AddNumberToObject(t, "count", (double)r->count);
        cJSON_AddNumberToObject(t, "bytes", (double)r->bytes);
        cJSON_AddNumberToObject(t, "depth", (double)r->depth);
        if (st_object_get(c->r, sb->id, r->example, &ob) == 0)
            cJSON_AddNumberToObject(t, "example", (double)ob.address);
        cJSON_AddItemToArray(types, t);
    }
    return o;
}

/* Frees what classify() allocated (NULL members: nothing). */
static void
sides_free(struct aside *a, struct bside *b)
{
    st_scratch_free(a->addr);
    st_scratch_free(a->oid);
    st_scratch_free(a->tid);
    st_scratch_free(a->size);
    st_scratch_free(a->seen);
    st_scratch_free(b->s.state);
    st_scratch_free(b->s.referred);
    st_scratch_free(b->tid);
    st_scratch_free(b->size);
    st_scratch_free(b->s.anchor);
    st_scratch_free(b->s.depth);
    free(b->s.edge);
}

/* Which objects of sb are new against sa (b->s.state, B_*), with their
 * types and sizes, the new-to-new edges and who is referred to: the one
 * rule of "new" (docs/cli-json.md, diff), for the diff and for growth's
 * birth sites.  0, or an error (c's set unless -ENOMEM); the caller
 * frees with sides_free either way. */
static int
classify(struct ctx *c, const struct snap *sa, const struct snap *sb,
         const struct snap *const *keep, size_t nkeep, struct aside *a,
         struct bside *b)
{
    int rc;

    memset(a, 0, sizeof *a);
    memset(b, 0, sizeof *b);
    b->a = a;
    b->sid = sb->id;
    b->r = c->r;
    a->nobj = a->cap = (size_t)sa->objects;
    b->s.n = b->nobj = (size_t)sb->objects;
    a->addr = st_scratch((a->cap + 1) * sizeof *a->addr);
    a->oid = st_scratch((a->cap + 1) * sizeof *a->oid);
    a->tid = st_scratch((a->nobj + 1) * sizeof *a->tid);
    a->size = st_scratch((a->nobj + 1) * sizeof *a->size);
    a->seen = st_scratch(a->nobj + 1);
    b->s.state = st_scratch(b->nobj + 1);
    b->s.referred = st_scratch(b->nobj + 1);
    b->tid = st_scratch((b->nobj + 1) * sizeof *b->tid);
    b->size = st_scratch((b->nobj + 1) * sizeof *b->size);
    b->s.anchor = st_scratch((b->nobj + 1) * sizeof *b->s.anchor);
    b->s.depth = st_scratch((b->nobj + 1) * sizeof *b->s.depth);
    if (!a->addr || !a->oid || !a->tid || !a->size || !a->seen ||
        !b->s.state || !b->s.referred || !b->tid || !b->size || !b->s.anchor ||
        !b->s.depth)
        return -ENOMEM;
    if ((rc = st_address_each(c->r, sa->id, a_addr, a)) != 0 ||
        (rc = st_object_each(c->r, sa->id, a_obj, a)) != 0 ||
        (rc = st_object_each(c->r, sb->id, b_obj, b)) != 0)
        return rp__fail(c, rc, "reading objects: %s", st_strerror(rc));
    for (size_t i = 0; i < nkeep; i++)
        if ((rc = keep_alive(c, keep[i], b)) != 0)
            return rp__fail(c, rc, "reading objects: %s", st_strerror(rc));
    if ((rc = st_parents_each(c->r, sb->id, b_par, b)) != 0 ||
        (rc = ml_accum_settle(&b->s, b_reused, b)) != 0) {
        if (rc != -ENOMEM)
            rp__fail(c, rc, "reading objects: %s", st_strerror(rc));
        return rc;
    }
    return 0;
}

cJSON *
rp__births_between(struct ctx *c, const struct snap *sa,
                   const struct snap *sb, uint64_t top)
{
    struct aside a;
    struct bside b;
    cJSON *out = NULL;
    int rc;

    if ((rc = st_births_has(c->r, sb->id)) <= 0) {
        if (rc < 0)
            rp__fail(c, rc, "reading birth sites: %s", st_strerror(rc));
        return rc < 0 ? NULL : cJSON_CreateNull();
    }
    rc = classify(c, sa, sb, NULL, 0, &a, &b);
    if (rc == 0)
        out = rp__births_new(c, sb->id, b.s.state, b.tid, b.size, b.nobj, top);
    if ((rc == 0 && out == NULL) || rc == -ENOMEM)
        rp__fail(c, -ENOMEM, "reading birth sites: out of memory");
    sides_free(&a, &b);
    return out;
}

int
rp__object_diff(struct ctx *c, const struct snap *sa, const struct snap *sb,
                const struct snap *const *keep, size_t nkeep, uint64_t top,
                int all_types, cJSON *out)
{
    struct aside a;
    struct bside b;
    struct ml_accum_row *rows = NULL;
    struct ml_accum_group *g = NULL;
    size_t nr = 0, ng = 0;
    int rc;

    if ((rc = classify(c, sa, sb, keep, nkeep, &a, &b)) != 0)
        goto out;
    struct ml_accum ac = {
        .n = b.nobj, .isnew = b.s.state, .referred = b.s.referred,
        .edge = (const uint32_t (*)[2])b.s.edge, .nedge = b.s.nedge,
        .anchor = b.s.anchor, .depth = b.s.depth,
        .alloc = st_scratch, .release = st_scratch_free,
    };
    if ((rc = ml_accum_search(&ac)) != 0) {
        if (rc != -ENOMEM)
            rp__fail(c, rc, "too many references among the new objects");
        goto out;
    }
    free(b.s.edge);
    b.s.edge = NULL;

    /* the rows: (anchor, type) of each counted new object, sorted, then
     * runs summed; then the runs of one anchor are its group */
    rc = -ENOMEM;
    if ((rows = st_scratch((b.nnew + 1) * sizeof *rows)) == NULL)
        goto out;
    for (size_t i = 0; i < b.nobj; i++)
        if (b.s.state[i] == B_NEW)
            rows[nr++] = (struct ml_accum_row){ b.s.anchor[i], b.tid[i],
                                                b.s.depth[i], (uint32_t)i, 1,
                                                b.size[i] };
    if (ml_accum_group(rows, &nr, &g, &ng) != 0)
        goto out;

    uint64_t ngone = 0, bgone = 0;
    for (size_t i = 0; i < a.nobj; i++)
        if (!a.seen[i]) {
            ngone++;
            bgone += a.size[i];
        }
    /* a group is ~1 KiB of JSON with its 8 types: refused before it is
     * built when over the daemon's cap (the report's own use is not the
     * answer) */
    if (!all_types && (rc = rp__budget_rows(c, ng, top, 1024, "diff")) != 0)
        goto out;
    rc = -ENOMEM;
    cJSON *nw = cJSON_AddObjectToObject(out, "new_objects");
    cJSON_AddNumberToObject(nw, "count", (double)b.nnew);
    cJSON_AddNumberToObject(nw, "bytes", (double)b.bnew);
    cJSON_AddNumberToObject(nw, "groups_total", (double)ng);
    if (nkeep > 0)
        cJSON_AddNumberToObject(nw, "transient", (double)b.transient);
    cJSON *arr = cJSON_AddArrayToObject(nw, "groups");
    for (size_t i = 0; arr != NULL && i < ng && (top == 0 || i < top); i++) {
        cJSON *o = group_json(c, sb, &b, &g[i], rows,
                              all_types ? 0 : RP_DIFF_GROUP_TYPES,
                              !all_types && i < RP_DIFF_PATHS);

        if (o == NULL)
            goto out;
        cJSON_AddItemToArray(arr, o);
    }
    /* where the new objects were allocated, when the stream had traces */
    rp__births_diff(c, sb->id, b.s.state, b.tid, b.size, b.nobj, top, nw);
    cJSON *gone = cJSON_AddObjectToObject(out, "gone_objects");
    cJSON_AddNumberToObject(gone, "count", (double)ngone);
    cJSON_AddNumberToObject(gone, "bytes", (double)bgone);
    rc = 0;
out:
    if (rc == -ENOMEM)
        rp__fail(c, rc, "out of memory");
    st_scratch_free(rows);
    free(g);
    sides_free(&a, &b);
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
    ml_sort(d.v, d.n, sizeof *d.v, drow_cmp);
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
