/* SPDX-License-Identifier: MIT
 *
 * report_dominators.c -- the "top" and "dominators" answers (report.h,
 * docs/cli-json.md): the objects and types that keep the most memory
 * alive in one stored snapshot, and an object's chain of dominators.
 *
 * The answers were computed when the snapshot was committed and stored
 * with it (retained.h): a few records are read, whatever the snapshot's
 * size.  A snapshot stored before that has none: then, as before, the
 * snapshot's whole graph is read into flat arrays indexed by oid (sizes
 * and type ids from st_object_each, the referrers CSR from
 * st_parents_each, the refs CSR as its transpose: no address lookups) and
 * common/dominators.c runs on it, per request (memory: 8 + 4 + 8 bytes an
 * object and 8 bytes a reference for the graph, and the algorithm's 24
 * bytes an object); c->computed says so, for the daemon to store them
 * (st_retained_fill).  docs/retained.md says what the roots are.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "dominators.h"
#include "ml-common.h"
#include "report-int.h"
#include "retained.h"

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

/* One snapshot's answers: stored, or computed here (an older store). */
struct answers {
    uint64_t snap;
    int stored;
    struct st_retinfo info;             /* stored */
    struct sgraph g;                    /* computed */
    struct ml_dom d;
    uint64_t n, total, nroots, nleftover;
};

static void
answers_free(struct answers *a)
{
    ml_dom_free(&a->d);
    sgraph_free(&a->g);
    memset(a, 0, sizeof(*a));
}

static int
no_graph(struct ctx *c, const struct snap *s)
{
    return rp__fail(c, ML_ENOTFOUND, "snapshot %" PRIu64 " has no object "
                    "graph any more (retention keeps the newest ones)", s->id);
}

static int
answers_open(struct ctx *c, const struct snap *s, struct answers *a)
{
    int rc;

    memset(a, 0, sizeof(*a));
    a->snap = s->id;
    rc = st_retained_info(c->r, s->id, &a->info);
    if (rc == 0) {
        a->stored = 1;
        a->n = a->info.objects;
        a->total = a->info.total;
        a->nroots = a->info.roots;
        a->nleftover = a->info.leftover;
        return 0;
    }
    if (rc == -ENODATA)
        return no_graph(c, s);
    if (rc != ML_ENOTFOUND)
        return rp__fail(c, rc, "snapshot %" PRIu64 ": %s", s->id,
                        st_strerror(rc));
    /* A commit of this process is writing them (st_commit2's second
     * step): not a second copy of the tree here; rp_run_ex's caller
     * waits for them (st_retained_wait) and asks again. */
    if (st_retained_pending(c->r, s->id))
        return rp__fail(c, -EAGAIN, "snapshot %" PRIu64 ": its retained "
                        "sizes are being stored; ask again", s->id);
    rc = dominate(c, s, &a->g, &a->d);
    if (rc != 0)
        return rc;
    c->computed = s->id;
    a->n = a->g.n;
    a->total = a->d.total;
    a->nroots = a->d.nroots;
    a->nleftover = a->d.nleftover;
    return 0;
}

static int
answers_get(struct ctx *c, const struct answers *a, uint32_t oid,
            uint64_t *retained, uint32_t *idom)
{
    if (a->stored)
        return st_retained_get(c->r, a->snap, oid, retained, idom);
    if (oid >= a->d.n)
        return ML_ECORRUPT;
    *retained = a->d.retained[oid];
    *idom = a->d.idom[oid];
    return 0;
}

/* The object oid as JSON, with its retained size (a may be NULL) and
 * its immediate dominator's address. */
static cJSON *
obj_json(struct ctx *c, const struct snap *s, const struct answers *a,
         uint32_t oid)
{
    struct st_object o;
    uint64_t ret;
    uint32_t dom;
    cJSON *j;

    if (st_object_get(c->r, s->id, oid, &o) != 0 ||
        (j = rp__obj_json(&o)) == NULL)
        return NULL;
    if (a == NULL)
        return j;
    if (answers_get(c, a, oid, &ret, &dom) != 0) {
        cJSON_Delete(j);
        return NULL;
    }
    cJSON_AddNumberToObject(j, "retained", (double)ret);
    if (dom != ML_DOM_ROOT && st_object_get(c->r, s->id, dom, &o) == 0)
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

struct rows {
    struct trow *v;
    size_t n, cap;
};

static int
on_rettype(void *arg, const struct st_rettype *t)
{
    struct rows *r = arg;

    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 64;
        void *p = realloc(r->v, cap * sizeof(*r->v));

        if (p == NULL)
            return -ENOMEM;
        r->v = p;
        r->cap = cap;
    }
    r->v[r->n++] = (struct trow){ .tid = t->tid, .count = t->count,
                                  .retained = t->retained, .top = t->top,
                                  .max_retained = t->max_retained,
                                  .max_oid = t->max_oid };
    return 0;
}

/* The per-type rows of a: stored, or from the computed tree. */
static int
answers_rows(struct ctx *c, const struct answers *a, struct rows *out)
{
    const struct sgraph *g = &a->g;
    const struct ml_dom *d = &a->d;
    struct trow *rows;

    memset(out, 0, sizeof(*out));
    if (a->stored)
        return st_retained_types(c->r, a->snap, on_rettype, out);
    rows = calloc(g->ntids ? g->ntids : 1, sizeof(*rows));
    if (rows == NULL)
        return -ENOMEM;
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
        rows[out->n] = rows[t];
        rows[out->n].tid = t;
        rows[out->n].retained = d->type_retained[t];
        rows[out->n++].top = d->type_top[t];
    }
    out->v = rows;
    out->cap = g->ntids;
    return 0;
}

/* Per-type rows: retained totals and the largest object of each. */
static cJSON *
type_rows(struct ctx *c, const struct snap *s, const struct answers *a,
          uint64_t top)
{
    struct rows r;
    cJSON *arr;

    if (answers_rows(c, a, &r) != 0) {
        free(r.v);
        return NULL;
    }
    ml_sort(r.v, r.n, sizeof(*r.v), by_retained);
    if ((arr = cJSON_CreateArray()) == NULL) {
        free(r.v);
        return NULL;
    }
    for (size_t i = 0; i < r.n && (top == 0 || i < top); i++) {
        cJSON *o = cJSON_CreateObject();
        struct st_object ob;
        const char *name;
        size_t len;

        if (o == NULL)
            break;
        if (st_type_name(c->r, r.v[i].tid, &name, &len) == 0)
            rp__add_strn(o, "type", name, len);
        else
            cJSON_AddNullToObject(o, "type");
        cJSON_AddNumberToObject(o, "count", (double)r.v[i].count);
        cJSON_AddNumberToObject(o, "retained", (double)r.v[i].retained);
        cJSON_AddNumberToObject(o, "top_count", (double)r.v[i].top);
        cJSON_AddNumberToObject(o, "max_retained", (double)r.v[i].max_retained);
        if (st_object_get(c->r, s->id, r.v[i].max_oid, &ob) == 0)
            cJSON_AddNumberToObject(o, "max_address", (double)ob.address);
        cJSON_AddItemToArray(arr, o);
    }
    free(r.v);
    return arr;
}

/* The k largest objects by own size, largest first (ties: walk order). */
static size_t
top_by_size(const struct sgraph *g, uint32_t *top, size_t k)
{
    struct ml_dom d = { .n = g->n, .retained = g->size };

    return ml_dom_top(&d, top, k);      /* the same selection, on sizes */
}

/* The k largest retained sizes read from the store, more than it keeps
 * in order (ST_RET_TOP): ml_dom_top's selection (largest first, ties:
 * lower oid) over every object's record, in a heap of k. */
struct topk {
    uint32_t *oid;
    uint64_t *ret;
    size_t k, m;
};

static int
tk_worse(const struct topk *t, size_t a, size_t b)
{
    return t->ret[a] != t->ret[b] ? t->ret[a] < t->ret[b]
                                  : t->oid[a] > t->oid[b];
}

static void
tk_swap(struct topk *t, size_t a, size_t b)
{
    uint32_t o = t->oid[a];
    uint64_t r = t->ret[a];

    t->oid[a] = t->oid[b];
    t->ret[a] = t->ret[b];
    t->oid[b] = o;
    t->ret[b] = r;
}

static void
tk_down(struct topk *t, size_t m, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, w = i;

        if (l < m && tk_worse(t, l, w))
            w = l;
        if (l + 1 < m && tk_worse(t, l + 1, w))
            w = l + 1;
        if (w == i)
            return;
        tk_swap(t, i, w);
        i = w;
    }
}

static int
on_retained(void *arg, uint32_t oid, uint64_t retained, uint32_t idom)
{
    struct topk *t = arg;

    (void)idom;
    if (t->m < t->k) {
        size_t i = t->m++;

        t->oid[i] = oid;
        t->ret[i] = retained;
        while (i > 0 && tk_worse(t, i, (i - 1) / 2)) {
            tk_swap(t, i, (i - 1) / 2);
            i = (i - 1) / 2;
        }
    } else if (t->k > 0 && (retained > t->ret[0]
                            || (retained == t->ret[0] && oid < t->oid[0]))) {
        t->oid[0] = oid;
        t->ret[0] = retained;
        tk_down(t, t->m, 0);
    }
    return 0;
}

/* The k largest by retained size into top (room for k); how many. */
static int
answers_top(struct ctx *c, const struct answers *a, uint32_t *top, size_t k,
            size_t *m)
{
    struct topk t = { .oid = top, .k = k };
    int rc;

    if (!a->stored) {
        *m = ml_dom_top(&a->d, top, k);
        return 0;
    }
    if (k <= a->info.ntop || a->info.ntop >= a->n) {
        *m = k < a->info.ntop ? k : a->info.ntop;
        for (size_t i = 0; i < *m; i++)
            top[i] = st_retinfo_top(&a->info, i);
        return 0;
    }
    if ((t.ret = malloc(k * sizeof(*t.ret))) == NULL)
        return -ENOMEM;
    rc = st_retained_each(c->r, a->snap, on_retained, &t);
    for (size_t e = t.m; rc == 0 && e > 1; e--) {   /* worst goes last */
        tk_swap(&t, 0, e - 1);
        tk_down(&t, e - 1, 0);
    }
    *m = t.m;
    free(t.ret);
    return rc;
}

int
rp__cmd_top(struct ctx *c, const cJSON *req, cJSON *out)
{
    const cJSON *rx = cJSON_GetObjectItemCaseSensitive(req, "retained");
    struct snaplist l;
    const struct snap *s;
    struct answers a;
    uint32_t *top = NULL;
    uint64_t k, tk, n;
    size_t m = 0;
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
    memset(&a, 0, sizeof(a));
    if (retained) {
        rc = answers_open(c, s, &a);
    } else {
        rc = st_object_each(c->r, s->id, on_object, &a.g);
        if (rc == -ENODATA)
            rc = no_graph(c, s);
        else if (rc != 0)
            rc = rp__fail(c, rc, "snapshot %" PRIu64 ": %s", s->id,
                          st_strerror(rc));
        a.n = a.g.n;
    }
    if (rc != 0)
        goto out;
    n = a.n;
    if (k == 0 || k > n)
        k = n;
    /* refused before k oids are held (and their rows built) when the
     * daemon could not send them anyway */
    if ((rc = rp__budget_rows(c, n, k, 120, "top")) != 0)
        goto out;
    if ((top = malloc((k ? k : 1) * sizeof(*top))) == NULL) {
        rc = rp__fail(c, -ENOMEM, "out of memory");
        goto out;
    }
    if (!retained)
        m = top_by_size(&a.g, top, k);
    else if ((rc = answers_top(c, &a, top, k, &m)) != 0) {
        rc = rp__fail(c, rc, "snapshot %" PRIu64 ": %s", s->id,
                      st_strerror(rc));
        goto out;
    }
    cJSON_AddItemToObject(out, "snapshot", rp__snap_json(s));
    cJSON_AddBoolToObject(out, "retained", retained);
    cJSON_AddNumberToObject(out, "total_objects", (double)n);
    if (retained) {
        cJSON_AddNumberToObject(out, "total_bytes", (double)a.total);
        cJSON_AddNumberToObject(out, "roots", (double)a.nroots);
        cJSON_AddNumberToObject(out, "leftover_roots", (double)a.nleftover);
    } else {
        uint64_t tb = 0;

        for (size_t v = 0; v < a.g.n; v++)
            tb += a.g.size[v];
        cJSON_AddNumberToObject(out, "total_bytes", (double)tb);
    }
    cJSON *arr = cJSON_AddArrayToObject(out, "objects");
    for (size_t i = 0; arr != NULL && i < m; i++) {
        cJSON *j = obj_json(c, s, retained ? &a : NULL, top[i]);

        if (j != NULL)
            cJSON_AddItemToArray(arr, j);
    }
    if (retained) {
        cJSON *types = type_rows(c, s, &a, tk);
        if (types == NULL) {
            rc = rp__fail(c, -ENOMEM, "out of memory");
            goto out;
        }
        cJSON_AddItemToObject(out, "types", types);
    }
out:
    free(top);
    answers_free(&a);
    rp__snaps_free(&l);
    return rc;
}

/* ---- for other reports (report-int.h) ---- */

struct rp_retained {
    struct answers a;
};

int
rp__retained_new(struct ctx *c, const struct snap *s, struct rp_retained **out)
{
    struct rp_retained *r = calloc(1, sizeof(*r));
    int rc;

    *out = NULL;
    if (r == NULL)
        return rp__fail(c, -ENOMEM, "out of memory");
    rc = answers_open(c, s, &r->a);
    if (rc != 0) {
        rp__retained_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

int
rp__retained_type(struct ctx *c, const struct rp_retained *r,
                  const char *name, uint64_t *bytes)
{
    size_t n = strlen(name);
    struct rows rows;
    int rc = answers_rows(c, &r->a, &rows);

    for (size_t i = 0; rc == 0 && i < rows.n; i++) {
        const char *tn;
        size_t tl;

        if (rows.v[i].top == 0
            || st_type_name(c->r, rows.v[i].tid, &tn, &tl) != 0)
            continue;
        if (tl == n && memcmp(tn, name, n) == 0) {
            *bytes = rows.v[i].retained;
            free(rows.v);
            return 0;
        }
    }
    free(rows.v);
    return rc != 0 ? rc : ML_ENOTFOUND;
}

int
rp__retained_addr(struct ctx *c, const struct rp_retained *r, uint64_t addr,
                  uint64_t *bytes)
{
    uint32_t oid, dom;
    int rc = st_oid_of(c->r, r->a.snap, addr, &oid);

    if (rc == 0 && oid >= r->a.n)
        rc = ML_ECORRUPT;
    if (rc == 0)
        rc = answers_get(c, &r->a, oid, bytes, &dom);
    return rc;
}

void
rp__retained_free(struct rp_retained *r)
{
    if (r == NULL)
        return;
    answers_free(&r->a);
    free(r);
}

/* ---- dominators ---- */

int
rp__cmd_dominators(struct ctx *c, const cJSON *req, cJSON *out)
{
    struct snaplist l;
    const struct snap *s;
    struct answers a;
    uint64_t addr, ret;
    uint32_t oid;
    int rc;

    if (rp__arg_u64(req, "address", 0, &addr) < 0 || addr == 0)
        return rp__fail(c, -EINVAL, "bad address (a number: "
                        "140245010635328 or 0x7f8c2a1b2c40)");
    if ((rc = arg_snap(c, req, &l, &s)) != 0) {
        rp__snaps_free(&l);
        return rc;
    }
    memset(&a, 0, sizeof(a));
    rc = st_oid_of(c->r, s->id, addr, &oid);
    if (rc == ML_ENOTFOUND)
        rc = rp__fail(c, rc, "no object at 0x%" PRIx64 " in snapshot "
                      "%" PRIu64, addr, s->id);
    else if (rc == -ENODATA)
        rc = no_graph(c, s);
    else if (rc != 0)
        rc = rp__fail(c, rc, "snapshot %" PRIu64 ": %s", s->id,
                      st_strerror(rc));
    if (rc == 0)
        rc = answers_open(c, s, &a);
    if (rc != 0)
        goto out;
    if (oid >= a.n) {
        rc = rp__fail(c, ML_ECORRUPT, "snapshot %" PRIu64 ": malformed "
                      "object graph", s->id);
        goto out;
    }
    cJSON_AddItemToObject(out, "snapshot", rp__snap_json(s));
    cJSON_AddNumberToObject(out, "total_bytes", (double)a.total);
    cJSON_AddItemToObject(out, "object", obj_json(c, s, &a, oid));
    cJSON *arr = cJSON_AddArrayToObject(out, "chain");
    /* at most n steps: a corrupt record cannot make it loop */
    for (uint64_t x = oid, steps = 0; arr != NULL && x != ML_DOM_ROOT
         && steps <= a.n; steps++) {
        cJSON *j = obj_json(c, s, &a, (uint32_t)x);
        uint32_t dom;

        if (j != NULL)
            cJSON_AddItemToArray(arr, j);
        if ((rc = answers_get(c, &a, (uint32_t)x, &ret, &dom)) != 0) {
            rc = rp__fail(c, rc, "snapshot %" PRIu64 ": %s", s->id,
                          st_strerror(rc));
            goto out;
        }
        x = dom;
    }
out:
    answers_free(&a);
    rp__snaps_free(&l);
    return rc;
}
