/* SPDX-License-Identifier: MIT
 *
 * report_refs.c -- the "referrers" and "show" answers (report.h,
 * docs/cli-json.md) about the object at an address in one snapshot: the
 * chains of referrers that keep it alive, or the object with its
 * references and referrers.  Both find the object with arg_object.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ml-common.h"
#include "report-int.h"

/* Objects a referrer walk visits before it gives up: bounds the time of
 * a walk through a heap where everything refers to everything. */
#define RP_WALK_MAX_NODES 200000

/* Longest referrer chain looked for by default. */
#define RP_DEFAULT_DEPTH 32

/* ---- referrers ---- */

/* The object at the request's "address" in snapshot s. */
static int
arg_object(struct ctx *c, const cJSON *req, const struct snap *s,
           uint32_t *oid, uint64_t *addr)
{
    int rc;

    if (rp__arg_u64(req, "address", 0, addr) < 0 || *addr == 0)
        return rp__fail(c, -EINVAL, "bad address (a number: "
                        "140245010635328 or 0x7f8c2a1b2c40)");
    rc = st_oid_of(c->r, s->id, *addr, oid);
    if (rc == ML_ENOTFOUND)
        return rp__fail(c, rc, "no object at 0x%" PRIx64 " in snapshot "
                        "%" PRIu64, *addr, s->id);
    if (rc == -ENODATA)
        return rp__fail(c, ML_ENOTFOUND, "snapshot %" PRIu64 " has no "
                        "object graph any more (retention keeps the newest "
                        "ones)", s->id);
    if (rc != 0)
        return rp__fail(c, rc, "snapshot %" PRIu64 ": %s", s->id,
                        st_strerror(rc));
    return 0;
}

struct visit {
    uint32_t *key, *pred;       /* open addressing on key (oid + 1) */
    uint8_t *depth;
    size_t cap, n;
};

static int
visit_grow(struct visit *v)
{
    size_t cap = v->cap ? v->cap * 2 : 1024;
    uint32_t *k = calloc(cap, sizeof *k), *p = malloc(cap * sizeof *p);
    uint8_t *d = malloc(cap);

    if (k == NULL || p == NULL || d == NULL) {
        free(k);
        free(p);
        free(d);
        return -ENOMEM;
    }
    for (size_t i = 0; i < v->cap; i++) {
        if (v->key[i] == 0)
            continue;
        size_t j = (v->key[i] * 2654435761u) & (cap - 1);
        while (k[j])
            j = (j + 1) & (cap - 1);
        k[j] = v->key[i];
        p[j] = v->pred[i];
        d[j] = v->depth[i];
    }
    free(v->key);
    free(v->pred);
    free(v->depth);
    v->key = k;
    v->pred = p;
    v->depth = d;
    v->cap = cap;
    return 0;
}

/* Slot of oid; *fresh says it was not there (and is now, with pred). */
static int
visit_add(struct visit *v, uint32_t oid, uint32_t pred, unsigned depth,
          int *fresh)
{
    uint32_t key = oid + 1;
    size_t j;

    if ((v->n + 1) * 2 > v->cap && visit_grow(v) < 0)
        return -ENOMEM;
    for (j = (key * 2654435761u) & (v->cap - 1); v->key[j];
         j = (j + 1) & (v->cap - 1))
        if (v->key[j] == key) {
            *fresh = 0;
            return 0;
        }
    v->key[j] = key;
    v->pred[j] = pred;
    v->depth[j] = (uint8_t)(depth > 255 ? 255 : depth);
    v->n++;
    *fresh = 1;
    return 0;
}

static uint32_t
visit_pred(const struct visit *v, uint32_t oid)
{
    uint32_t key = oid + 1;

    for (size_t j = (key * 2654435761u) & (v->cap - 1); v->key[j];
         j = (j + 1) & (v->cap - 1))
        if (v->key[j] == key)
            return v->pred[j];
    return UINT32_MAX;
}

int
rp__cmd_referrers(struct ctx *c, const cJSON *req, cJSON *out)
{
    struct snaplist l;
    struct visit v = { 0 };
    const struct snap *s;
    uint32_t *queue = NULL, *qdepth = NULL, *roots = NULL, *copy = NULL;
    size_t qn = 0, qcap = 0, qi = 0, nroots = 0, ccap = 0;
    uint64_t depth_max, chains, addr;
    uint32_t start;
    int rc, fresh, truncated = 0;
    const char *sel = rp__arg_str(req, "process");

    if (rp__arg_u64(req, "depth", RP_DEFAULT_DEPTH, &depth_max) < 0 ||
        depth_max == 0)
        return rp__fail(c, -EINVAL, "--depth must be a positive number");
    if (rp__arg_u64(req, "chains", 3, &chains) < 0 || chains == 0)
        return rp__fail(c, -EINVAL, "--chains must be a positive number");
    rc = rp__load_snaps(c, 0, 0, sel, &l);
    if (rc != 0)
        return rc;
    if ((rc = rp__resolve(c, &l, rp__arg_str(req, "snap"), sel, &s)) != 0 ||
        (rc = arg_object(c, req, s, &start, &addr)) != 0)
        goto out;
    /* the walk visits no more than that: the rest of None's millions of
     * referrers need not be decoded */
    st_read_parents_max(c->r, RP_WALK_MAX_NODES);
    roots = malloc(chains * sizeof *roots);
    if (roots == NULL || visit_add(&v, start, UINT32_MAX, 0, &fresh) != 0) {
        rc = rp__fail(c, -ENOMEM, "out of memory");
        goto out;
    }
    /* Breadth first over referrers: the first roots met end the shortest
     * chains.  A root is a module, or an object nothing refers to. */
    qcap = 1024;
    queue = malloc(qcap * sizeof *queue);
    qdepth = malloc(qcap * sizeof *qdepth);
    if (queue == NULL || qdepth == NULL) {
        rc = rp__fail(c, -ENOMEM, "out of memory");
        goto out;
    }
    queue[qn] = start;
    qdepth[qn++] = 0;
    while (qi < qn && nroots < chains) {
        uint32_t node = queue[qi];
        uint32_t d = qdepth[qi++];
        const uint32_t *par;
        size_t np;
        struct st_object o;

        rc = st_object_get(c->r, s->id, node, &o);
        if (rc == 0 && node != start && rp__is_root_type(&o)) {
            roots[nroots++] = node;
            continue;
        }
        if (rc == 0)
            rc = st_parents(c->r, s->id, node, &par, &np);
        if (rc != 0) {
            rp__fail(c, rc, "snapshot %" PRIu64 ": %s", s->id,
                     st_strerror(rc));
            goto out;
        }
        if (np == 0) {
            roots[nroots++] = node;
            continue;
        }
        if (d >= depth_max) {
            truncated = 1;
            continue;
        }
        if (np > ccap) {                /* r's buffer moves on the next call */
            void *p = realloc(copy, np * sizeof *copy);
            if (p == NULL) {
                rc = rp__fail(c, -ENOMEM, "out of memory");
                goto out;
            }
            copy = p;
            ccap = np;
        }
        memcpy(copy, par, np * sizeof *copy);
        for (size_t i = 0; i < np; i++) {
            if (v.n >= RP_WALK_MAX_NODES) {
                truncated = 1;
                break;
            }
            rc = visit_add(&v, copy[i], node, d + 1, &fresh);
            if (rc != 0) {
                rp__fail(c, rc, "out of memory");
                goto out;
            }
            if (!fresh)
                continue;
            if (qn == qcap) {
                qcap *= 2;
                void *p = realloc(queue, qcap * sizeof *queue);
                void *q = p ? realloc(qdepth, qcap * sizeof *qdepth) : NULL;
                if (p)
                    queue = p;
                if (q)
                    qdepth = q;
                if (p == NULL || q == NULL) {
                    rc = rp__fail(c, -ENOMEM, "out of memory");
                    goto out;
                }
            }
            queue[qn] = copy[i];
            qdepth[qn++] = d + 1;
        }
    }
    cJSON_AddItemToObject(out, "snapshot", rp__snap_json(s));
    {
        struct st_object o;

        if ((rc = st_object_get(c->r, s->id, start, &o)) != 0) {
            rp__fail(c, rc, "%s", st_strerror(rc));
            goto out;
        }
        cJSON_AddItemToObject(out, "object", rp__obj_json(&o));
    }
    cJSON *arr = cJSON_AddArrayToObject(out, "chains");
    for (size_t i = 0; i < nroots; i++) {
        cJSON *chain = cJSON_CreateArray();
        uint32_t hops[256 + 1];
        size_t nh = 0;

        /* from the root back to the object, then reversed */
        for (uint32_t x = roots[i]; x != UINT32_MAX && nh < 257; x = visit_pred(&v, x))
            hops[nh++] = x;
        for (size_t h = 0; h < nh; h++) {
            struct st_object o;

            if (st_object_get(c->r, s->id, hops[h], &o) == 0)
                cJSON_AddItemToArray(chain, rp__obj_json(&o));
        }
        cJSON *rev = cJSON_CreateArray();
        for (int h = cJSON_GetArraySize(chain) - 1; h >= 0; h--)
            cJSON_AddItemToArray(rev, cJSON_DetachItemFromArray(chain, h));
        cJSON_Delete(chain);
        cJSON_AddItemToArray(arr, rev);
    }
    cJSON_AddNumberToObject(out, "visited", (double)v.n);
    cJSON_AddBoolToObject(out, "truncated", truncated);
    rc = 0;
out:
    free(v.key);
    free(v.pred);
    free(v.depth);
    free(queue);
    free(qdepth);
    free(roots);
    free(copy);
    rp__snaps_free(&l);
    return rc;
}

/* ---- show ---- */

int
rp__cmd_show(struct ctx *c, const cJSON *req, cJSON *out)
{
    struct snaplist l;
    const struct snap *s;
    struct st_object o;
    uint64_t *refs = NULL, limit, addr;
    uint32_t oid, *par = NULL;
    size_t nrefs = 0, np = 0;
    const uint32_t *pp;
    const char *sel = rp__arg_str(req, "process");
    int rc;

    if (rp__arg_u64(req, "limit", 50, &limit) < 0)
        return rp__fail(c, -EINVAL, "--limit must be a number");
    rc = rp__load_snaps(c, 0, 0, sel, &l);
    if (rc != 0)
        return rc;
    if ((rc = rp__resolve(c, &l, rp__arg_str(req, "snap"), sel, &s)) != 0 ||
        (rc = arg_object(c, req, s, &oid, &addr)) != 0)
        goto out;
    /* the refs and referrers shown, not the 20 million of a big dict's
     * refs or None's referrers */
    st_read_refs_max(c->r, limit == 0 ? SIZE_MAX : (size_t)limit);
    st_read_parents_max(c->r, limit == 0 ? SIZE_MAX : (size_t)limit);
    rc = st_object_get(c->r, s->id, oid, &o);
    st_read_refs_max(c->r, 0);
    if (rc != 0 || (rc = st_parents(c->r, s->id, oid, &pp, &np)) != 0) {
        rp__fail(c, rc, "%s", st_strerror(rc));
        goto out;
    }
    size_t ntotal = st_read_parents_total(c->r);
    cJSON_AddItemToObject(out, "snapshot", rp__snap_json(s));
    cJSON *obj = rp__obj_json(&o);
    cJSON_AddItemToObject(out, "object", obj);
    nrefs = o.refs_len;
    refs = malloc((nrefs + 1) * sizeof *refs);
    size_t npar = np;                   /* limit already applied */
    par = malloc((npar + 1) * sizeof *par);
    if (refs == NULL || par == NULL) {
        rc = rp__fail(c, -ENOMEM, "out of memory");
        goto out;
    }
    rp__copy(refs, o.refs, nrefs * sizeof *refs);
    rp__copy(par, pp, npar * sizeof *par);
    cJSON_AddNumberToObject(obj, "nrefs", (double)o.nrefs);
    cJSON_AddNumberToObject(obj, "nreferrers", (double)ntotal);
    cJSON *ra = cJSON_AddArrayToObject(obj, "refs");
    for (size_t i = 0; i < nrefs && (limit == 0 || i < limit); i++) {
        uint32_t ro;

        if (st_oid_of(c->r, s->id, refs[i], &ro) == 0 &&
            st_object_get(c->r, s->id, ro, &o) == 0) {
            cJSON_AddItemToArray(ra, rp__obj_json(&o));
        } else {
            cJSON *d = cJSON_CreateObject();     /* not in the snapshot */
            cJSON_AddNumberToObject(d, "address", (double)refs[i]);
            cJSON_AddNullToObject(d, "type");
            cJSON_AddItemToArray(ra, d);
        }
    }
    cJSON *pa = cJSON_AddArrayToObject(obj, "referrers");
    for (size_t i = 0; i < npar; i++)
        if (st_object_get(c->r, s->id, par[i], &o) == 0)
            cJSON_AddItemToArray(pa, rp__obj_json(&o));
out:
    free(refs);
    free(par);
    rp__snaps_free(&l);
    return rc;
}
