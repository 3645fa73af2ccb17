/* SPDX-License-Identifier: MIT
 *
 * report_dominators.c -- the "top" and "dominators" answers (report.h,
 * docs/cli-json.md): the objects and types that keep the most memory
 * alive in one stored snapshot, and an object's chain of dominators.
 *
 * Both read the snapshot's whole graph into flat arrays indexed by oid
 * (sizes and type ids from st_object_each, the referrers CSR from
 * st_parents_each, the refs CSR as its transpose: no address lookups) and
 * run common/dominators.c on it, per request; docs/retained.md says what
 * the roots are.  Memory: 8 + 4 + 8 bytes an object and 8 bytes a
 * reference for the graph, and the algorithm's 24 bytes an object.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "dominators.h"
#include "ml-common.h"
#include "report-int.h"

/* A snapshot's graph, by oid. */
struct sgraph {
    size_t n, cap;
    uint64_t *size;
    uint32_t *tid;
    uint32_t *pred_start, *pred, *succ_start, *succ;
    size_t npred, predcap, next;        /* next: first child start unset */
    uint32_t ntids, module_tid;
    int has_module, bad;
};

static void
sgraph_free(struct sgraph *g)
{
    free(g->size);
    free(g->tid);
    free(g->pred_start);
    free(g->pred);
    free(g->succ_start);
    free(g->succ);
}

static int
on_object(void *arg, const struct st_object *o)
{
    struct sgraph *g = arg;

    if (o->oid != g->n) {               /* oids are 0..n-1 in walk order */
        g->bad = 1;
        return ML_ECORRUPT;
    }
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 4096;
        void *s = realloc(g->size, cap * sizeof(*g->size));
        void *t = s ? realloc(g->tid, cap * sizeof(*g->tid)) : NULL;

        if (s)
            g->size = s;
        if (t)
            g->tid = t;
        if (s == NULL || t == NULL)
            return -ENOMEM;
        g->cap = cap;
    }
    g->size[g->n] = o->size;
    g->tid[g->n] = o->tid;
    if (o->tid >= g->ntids)
        g->ntids = o->tid + 1;
    if (!g->has_module && o->type_len == 6 && memcmp(o->type, "module", 6) == 0) {
        g->module_tid = o->tid;
        g->has_module = 1;
    }
    g->n++;
    return 0;
}

static int
on_parents(void *arg, uint32_t child, const uint32_t *parents, size_t np)
{
    struct sgraph *g = arg;

    if (child >= g->n || child < g->next) {
        g->bad = 1;
        return ML_ECORRUPT;
    }
    if (g->npred + np >= UINT32_MAX)
        return ML_ETOOBIG;
    while (g->next <= child)
        g->pred_start[g->next++] = (uint32_t)g->npred;
    if (g->npred + np > g->predcap) {
        size_t cap = g->predcap ? g->predcap : 1 << 16;
        void *p;

        while (cap < g->npred + np)
            cap *= 2;
        if ((p = realloc(g->pred, cap * sizeof(*g->pred))) == NULL)
            return -ENOMEM;
        g->pred = p;
        g->predcap = cap;
    }
    for (size_t i = 0; i < np; i++) {
        if (parents[i] >= g->n) {
            g->bad = 1;
            return ML_ECORRUPT;
        }
        g->pred[g->npred++] = parents[i];
    }
    return 0;
}

/* The refs CSR as the transpose of the referrers CSR: counts, end
 * offsets, then filled backwards so no cursor array is needed. */
static int
transpose(struct sgraph *g)
{
    g->succ_start = calloc(g->n + 1, sizeof(*g->succ_start));
    g->succ = malloc((g->npred ? g->npred : 1) * sizeof(*g->succ));
    if (g->succ_start == NULL || g->succ == NULL)
        return -ENOMEM;
    for (size_t k = 0; k < g->npred; k++)
        g->succ_start[g->pred[k]]++;
    for (size_t i = 1; i < g->n; i++)
        g->succ_start[i] += g->succ_start[i - 1];
    g->succ_start[g->n] = (uint32_t)g->npred;
    for (size_t c = g->n; c-- > 0;)
        for (uint32_t k = g->pred_start[c]; k < g->pred_start[c + 1]; k++)
            g->succ[--g->succ_start[g->pred[k]]] = (uint32_t)c;
    return 0;
}

static int
is_module(void *arg, uint32_t v)
{
    const struct sgraph *g = arg;

    return g->tid[v] == g->module_tid;
}

/* Loads snapshot s's graph and computes its dominators into d. */
static int
dominate(struct ctx *c, const struct snap *s, struct sgraph *g,
         struct ml_dom *d)
{
    struct ml_dom_input in;
    int rc;

    memset(g, 0, sizeof(*g));
    memset(d, 0, sizeof(*d));
    rc = st_object_each(c->r, s->id, on_object, g);
    if (rc == 0) {
        g->pred_start = malloc((g->n + 1) * sizeof(*g->pred_start));
        if (g->pred_start == NULL)
            rc = -ENOMEM;
    }
    if (rc == 0)
        rc = st_parents_each(c->r, s->id, on_parents, g);
    if (rc == 0) {
        while (g->next <= g->n)
            g->pred_start[g->next++] = (uint32_t)g->npred;
        rc = transpose(g);
    }
    if (rc == -ENODATA)
        return rp__fail(c, ML_ENOTFOUND, "snapshot %" PRIu64 " has no object "
                        "graph any more (retention keeps the newest ones)",
                        s->id);
    if (rc == -ENOMEM)
        return rp__fail(c, rc, "out of memory reading snapshot %" PRIu64
                        " (%zu objects)", s->id, g->n);
    if (rc != 0)
        return rp__fail(c, rc, "snapshot %" PRIu64 ": %s", s->id,
                        g->bad ? "malformed object graph" : st_strerror(rc));
    memset(&in, 0, sizeof(in));
    in.n = g->n;
    in.succ_start = g->succ_start;
    in.succ = g->succ;
    in.pred_start = g->pred_start;
    in.pred = g->pred;
    in.size = g->size;
    in.is_root = g->has_module ? is_module : NULL;
    in.arg = g;
    in.type = g->tid;
    in.ntypes = g->ntids;
    rc = ml_dom_compute(d, &in);
    if (rc != 0)
        return rp__fail(c, rc, "snapshot %" PRIu64 ": %s", s->id,
                        st_strerror(rc));
    /* The dominator tree needs the graph no more: only sizes and types. */
    free(g->pred);
    free(g->succ);
    free(g->pred_start);
    free(g->succ_start);
    g->pred = g->succ = g->pred_start = g->succ_start = NULL;
    return 0;
}

/* The object oid as JSON, with its retained size (d may be NULL) and
 * its immediate dominator's address. */
static cJSON *
obj_json(struct ctx *c, const struct snap *s, const struct ml_dom *d,
         uint32_t oid)
{
    struct st_object o;
    cJSON *j;

    if (st_object_get(c->r, s->id, oid, &o) != 0 ||
        (j = rp__obj_json(&o)) == NULL)
        return NULL;
    if (d == NULL)
        return j;
    cJSON_AddNumberToObject(j, "retained", (double)d->retained[oid]);
    if (d->idom[oid] != ML_DOM_ROOT &&
        st_object_get(c->r, s->id, d->idom[oid], &o) == 0)
        cJSON_AddNumberToObject(j, "dominator", (double)o.address);
    else
        cJSON_AddNullToObject(j, "dominator");
    return j;
}

/* Snapshot of the request (snap, process). */
static int
arg_snap(struct ctx *c, const cJSON *req, struct snaplist *l,
         const struct snap **s)
{
    const char *sel = rp__arg_str(req, "process");
    int rc = rp__load_snaps(c, 0, 0, sel, l);

    if (rc != 0)
        return rc;
    return rp__resolve(c, l, rp__arg_str(req, "snap"), sel, s);
}

/* ---- top ---- */

struct trow {
    uint32_t tid;
    uint64_t count, retained, top, max_retained;
    uint32_t max_oid;
};

static int
by_retained(const void *a, const void *b)
{
    const struct trow *x = a, *y = b;

    if (x->retained != y->retained)
        return x->retained < y->retained ? 1 : -1;
    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    return x->tid < y->tid ? -1 : x->tid > y->tid;
}

/* Per-type rows: retained totals (d) and the largest object of each. */
static cJSON *
type_rows(struct ctx *c, const struct snap *s, const struct sgraph *g,
          const struct ml_dom *d, uint64_t top)
{
    struct trow *rows = calloc(g->ntids ? g->ntids : 1, sizeof(*rows));
    size_t nrows = 0;
    cJSON *arr;

    if (rows == NULL)
        return NULL;
    for (size_t v = 0; v < g->n; v++) {
        struct trow *t = &rows[g->tid[v]];

        if (t->count++ == 0 || d->retained[v] > t->max_retained) {
            t->max_retained = d->retained[v];
            t->max_oid = (uint32_t)v;
        }
    }
    for (uint32_t t = 0; t < g->ntids; t++) {
        if (rows[t].count == 0)
            continue;
        rows[nrows] = rows[t];
        rows[nrows].tid = t;
        rows[nrows].retained = d->type_retained[t];
        rows[nrows++].top = d->type_top[t];
    }
    rp__sort(rows, nrows, sizeof(*rows), by_retained);
    if ((arr = cJSON_CreateArray()) == NULL) {
        free(rows);
        return NULL;
    }
    for (size_t i = 0; i < nrows && (top == 0 || i < top); i++) {
        cJSON *o = cJSON_CreateObject();
        struct st_object ob;
        const char *name;
        size_t len;

        if (o == NULL)
            break;
        if (st_type_name(c->r, rows[i].tid, &name, &len) == 0)
            rp__add_strn(o, "type", name, len);
        else
            cJSON_AddNullToObject(o, "type");
        cJSON_AddNumberToObject(o, "count", (double)rows[i].count);
        cJSON_AddNumberToObject(o, "retained", (double)rows[i].retained);
        cJSON_AddNumberToObject(o, "top_count", (double)rows[i].top);
        cJSON_AddNumberToObject(o, "max_retained", (double)rows[i].max_retained);
        if (st_object_get(c->r, s->id, rows[i].max_oid, &ob) == 0)
            cJSON_AddNumberToObject(o, "max_address", (double)ob.address);
        cJSON_AddItemToArray(arr, o);
    }
    free(rows);
    return arr;
}

/* The k largest objects by own size, largest first (ties: walk order). */
static size_t
top_by_size(const struct sgraph *g, uint32_t *top, size_t k)
{
    struct ml_dom d = { .n = g->n, .retained = g->size };

    return ml_dom_top(&d, top, k);      /* the same selection, on sizes */
}

int
rp__cmd_top(struct ctx *c, const cJSON *req, cJSON *out)
{
    const cJSON *rx = cJSON_GetObjectItemCaseSensitive(req, "retained");
    struct snaplist l;
    const struct snap *s;
    struct sgraph g;
    struct ml_dom d;
    uint32_t *top = NULL;
    uint64_t k, tk;
    size_t m;
    int rc, retained = cJSON_IsTrue(rx);

    if (rx != NULL && !cJSON_IsBool(rx))
        return rp__fail(c, -EINVAL, "\"retained\" must be true or false");
    if (rp__arg_u64(req, "top", 20, &k) < 0)
        return rp__fail(c, -EINVAL, "--top must be a number");
    if (rp__arg_u64(req, "types", k, &tk) < 0)
        return rp__fail(c, -EINVAL, "\"types\" must be a number");
    if ((rc = arg_snap(c, req, &l, &s)) != 0) {
        rp__snaps_free(&l);
        return rc;
    }
    memset(&g, 0, sizeof(g));
    memset(&d, 0, sizeof(d));
    if (retained) {
        rc = dominate(c, s, &g, &d);
    } else {
        rc = st_object_each(c->r, s->id, on_object, &g);
        if (rc == -ENODATA)
            rc = rp__fail(c, ML_ENOTFOUND, "snapshot %" PRIu64 " has no "
                          "object graph any more (retention keeps the "
                          "newest ones)", s->id);
        else if (rc != 0)
            rc = rp__fail(c, rc, "snapshot %" PRIu64 ": %s", s->id,
                          st_strerror(rc));
    }
    if (rc != 0)
        goto out;
    if (k == 0 || k > g.n)
        k = g.n;
    if ((top = malloc((k ? k : 1) * sizeof(*top))) == NULL) {
        rc = rp__fail(c, -ENOMEM, "out of memory");
        goto out;
    }
    m = retained ? ml_dom_top(&d, top, k) : top_by_size(&g, top, k);
    cJSON_AddItemToObject(out, "snapshot", rp__snap_json(s));
    cJSON_AddBoolToObject(out, "retained", retained);
    cJSON_AddNumberToObject(out, "total_objects", (double)g.n);
    if (retained) {
        cJSON_AddNumberToObject(out, "total_bytes", (double)d.total);
        cJSON_AddNumberToObject(out, "roots", (double)d.nroots);
        cJSON_AddNumberToObject(out, "leftover_roots", (double)d.nleftover);
    } else {
        uint64_t tb = 0;

        for (size_t v = 0; v < g.n; v++)
            tb += g.size[v];
        cJSON_AddNumberToObject(out, "total_bytes", (double)tb);
    }
    cJSON *arr = cJSON_AddArrayToObject(out, "objects");
    for (size_t i = 0; arr != NULL && i < m; i++) {
        cJSON *j = obj_json(c, s, retained ? &d : NULL, top[i]);

        if (j != NULL)
            cJSON_AddItemToArray(arr, j);
    }
    if (retained) {
        cJSON *types = type_rows(c, s, &g, &d, tk);
        if (types == NULL) {
            rc = rp__fail(c, -ENOMEM, "out of memory");
            goto out;
        }
        cJSON_AddItemToObject(out, "types", types);
    }
out:
    free(top);
    ml_dom_free(&d);
    sgraph_free(&g);
    rp__snaps_free(&l);
    return rc;
}

/* ---- for other reports (report-int.h) ---- */

struct rp_retained {
    struct sgraph g;
    struct ml_dom d;
    uint64_t snap;
};

int
rp__retained_new(struct ctx *c, const struct snap *s, struct rp_retained **out)
{
    struct rp_retained *r = calloc(1, sizeof(*r));
    int rc;

    *out = NULL;
    if (r == NULL)
        return rp__fail(c, -ENOMEM, "out of memory");
    rc = dominate(c, s, &r->g, &r->d);
    if (rc != 0) {
        rp__retained_free(r);
        return rc;
    }
    r->snap = s->id;
    *out = r;
    return 0;
}

int
rp__retained_type(struct ctx *c, const struct rp_retained *r,
                  const char *name, uint64_t *bytes)
{
    size_t n = strlen(name);

    for (uint32_t t = 0; t < r->d.ntypes; t++) {
        const char *tn;
        size_t tl;

        if (r->d.type_top[t] == 0 || st_type_name(c->r, t, &tn, &tl) != 0)
            continue;
        if (tl == n && memcmp(tn, name, n) == 0) {
            *bytes = r->d.type_retained[t];
            return 0;
        }
    }
    return ML_ENOTFOUND;
}

int
rp__retained_addr(struct ctx *c, const struct rp_retained *r, uint64_t addr,
                  uint64_t *bytes)
{
    uint32_t oid;
    int rc = st_oid_of(c->r, r->snap, addr, &oid);

    if (rc == 0 && oid >= r->d.n)
        rc = ML_ECORRUPT;
    if (rc == 0)
        *bytes = r->d.retained[oid];
    return rc;
}

void
rp__retained_free(struct rp_retained *r)
{
    if (r == NULL)
        return;
    ml_dom_free(&r->d);
    sgraph_free(&r->g);
    free(r);
}

/* ---- dominators ---- */

int
rp__cmd_dominators(struct ctx *c, const cJSON *req, cJSON *out)
{
    struct snaplist l;
    const struct snap *s;
    struct sgraph g;
    struct ml_dom d;
    uint64_t addr;
    uint32_t oid;
    int rc;

    if (rp__arg_u64(req, "address", 0, &addr) < 0 || addr == 0)
        return rp__fail(c, -EINVAL, "bad address (a number: "
                        "140245010635328 or 0x7f8c2a1b2c40)");
    if ((rc = arg_snap(c, req, &l, &s)) != 0) {
        rp__snaps_free(&l);
        return rc;
    }
    memset(&g, 0, sizeof(g));
    memset(&d, 0, sizeof(d));
    rc = st_oid_of(c->r, s->id, addr, &oid);
    if (rc == ML_ENOTFOUND)
        rc = rp__fail(c, rc, "no object at 0x%" PRIx64 " in snapshot "
                      "%" PRIu64, addr, s->id);
    else if (rc == -ENODATA)
        rc = rp__fail(c, ML_ENOTFOUND, "snapshot %" PRIu64 " has no object "
                      "graph any more (retention keeps the newest ones)",
                      s->id);
    else if (rc != 0)
        rc = rp__fail(c, rc, "snapshot %" PRIu64 ": %s", s->id,
                      st_strerror(rc));
    if (rc == 0)
        rc = dominate(c, s, &g, &d);
    if (rc != 0)
        goto out;
    if (oid >= g.n) {
        rc = rp__fail(c, ML_ECORRUPT, "snapshot %" PRIu64 ": malformed "
                      "object graph", s->id);
        goto out;
    }
    cJSON_AddItemToObject(out, "snapshot", rp__snap_json(s));
    cJSON_AddNumberToObject(out, "total_bytes", (double)d.total);
    cJSON_AddItemToObject(out, "object", obj_json(c, s, &d, oid));
    cJSON *arr = cJSON_AddArrayToObject(out, "chain");
    for (uint32_t x = oid; arr != NULL && x != ML_DOM_ROOT; x = d.idom[x]) {
        cJSON *j = obj_json(c, s, &d, x);

        if (j != NULL)
            cJSON_AddItemToArray(arr, j);
    }
out:
    ml_dom_free(&d);
    sgraph_free(&g);
    rp__snaps_free(&l);
    return rc;
}
