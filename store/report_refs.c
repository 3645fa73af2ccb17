/* SPDX-License-Identifier: MIT
 *
 * report_refs.c -- the "referrers" and "show" answers (report.h,
 * docs/cli-json.md) about the object at an address in one snapshot: the
 * chains of referrers that keep it alive, or the object with its
 * references and referrers.  Both find the object with arg_object.
 */
#define _GNU_SOURCE             /* store-int.h: pthread_rwlock_t */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ml-common.h"
#include "ingest.h"            /* st__tmpfile */
#include "report-int.h"

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

/* An array of n object numbers, zeroed: in a sparse temporary file when
 * it can be (its pages count as the page cache's, not as the daemon's
 * anonymous memory, and only the ones a search touches exist), else in
 * memory.  The search below needs two, whatever the snapshot's size. */
struct oidarr {
    uint32_t *p;
    size_t n;
    int mapped;
};

static int
oidarr_new(struct oidarr *a, size_t n)
{
    const char *dirs[] = { getenv("TMPDIR"), "/var/tmp", "/tmp" };
    size_t len = (n ? n : 1) * sizeof *a->p;

    a->n = n;
    a->mapped = 0;
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        int fd;

        if (dirs[i] == NULL || (fd = st__tmpfile(dirs[i])) < 0)
            continue;
        if (ftruncate(fd, (off_t)len) == 0) {
            void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

            close(fd);
            if (p != MAP_FAILED) {
                a->p = p;
                a->mapped = 1;
                return 0;
            }
            continue;
        }
        close(fd);
    }
    a->p = calloc(n ? n : 1, sizeof *a->p);
    return a->p != NULL ? 0 : -ENOMEM;
}

static void
oidarr_free(struct oidarr *a)
{
    if (a->p == NULL)
        return;
    if (a->mapped)
        munmap(a->p, (a->n ? a->n : 1) * sizeof *a->p);
    else
        free(a->p);
    a->p = NULL;
}

/* Breadth first over referrers from start, each object once, to the
 * first `chains` roots (a module, or an object nothing refers to): the
 * shortest chains, exactly, whatever the fan-in.  Every referrer of every
 * object on the way is looked at (a hub's 300,000 referrers included:
 * nothing is cut, so "no chain" means none within --depth).  Time and
 * memory are bounded by the snapshot: pred has a slot per object (the
 * parent on the search's tree, + 1; 0 unvisited) and queue holds each
 * visited object once. */
struct search {
    struct oidarr pred, queue;
    size_t qn, nroots, visited;
    uint32_t *roots;
    int truncated;
};

#define PRED_START UINT32_MAX   /* visited, the start: no parent */

static int
search_run(struct ctx *c, const struct snap *s, uint32_t start,
           uint64_t depth_max, uint64_t chains, struct search *sr)
{
    size_t n = (size_t)s->objects, qi = 0, level_end, depth = 0, nunref = 0;
    size_t nframe = 0;
    uint32_t *unref, *frame;
    int rc;

    if (start >= n)
        return rp__fail(c, ML_ECORRUPT, "object number past the snapshot");
    if ((sr->roots = malloc(chains * sizeof *sr->roots)) == NULL ||
        oidarr_new(&sr->pred, n) != 0 || oidarr_new(&sr->queue, n) != 0)
        return rp__fail(c, -ENOMEM, "out of memory");
    if ((unref = malloc(2 * chains * sizeof *unref)) == NULL)
        return rp__fail(c, -ENOMEM, "out of memory");
    frame = unref + chains;
    sr->pred.p[start] = PRED_START;
    sr->queue.p[sr->qn++] = start;
    sr->visited = 1;
    level_end = sr->qn;
    /* only the type is needed of each object on the way */
    st_read_refs_max(c->r, 1);
    while (qi < sr->qn && sr->nroots < chains) {
        uint32_t node = sr->queue.p[qi++];
        const uint32_t *par;
        size_t np;
        struct st_object o;

        rc = st_object_get(c->r, s->id, node, &o);
        if (rc == 0 && node != start && rp__is_root_type(&o)) {
            /* a module at once; a thread's frame after the modules of
             * its depth (python -m's runpy frame holds __main__'s dict
             * in a local: __main__.X reads better) */
            if (o.type_len == 6)
                sr->roots[sr->nroots++] = node;
            else if (nframe < chains)
                frame[nframe++] = node;
            goto next;
        }
        if (rc == 0)
            rc = st_parents(c->r, s->id, node, &par, &np);
        if (rc != 0) {
            free(unref);
            return rp__fail(c, rc, "snapshot %" PRIu64 ": %s", s->id,
                            st_strerror(rc));
        }
        if (np == 0) {
            /* after the modules and frames of the same depth: a module's
             * code runs in a function nothing refers to, which holds
             * the same globals */
            if (nunref < chains)
                unref[nunref++] = node;
            goto next;
        }
        if (depth >= depth_max) {
            sr->truncated = 1;
            goto next;
        }
        for (size_t i = 0; i < np; i++) {
            uint32_t p = par[i];

            if (p >= n || sr->pred.p[p] != 0)
                continue;
            sr->pred.p[p] = node + 1;
            sr->queue.p[sr->qn++] = p;
            sr->visited++;
        }
next:
        if (qi == level_end || qi == sr->qn) {  /* the next level */
            for (size_t k = 0; k < nframe && sr->nroots < chains; k++)
                sr->roots[sr->nroots++] = frame[k];
            for (size_t k = 0; k < nunref && sr->nroots < chains; k++)
                sr->roots[sr->nroots++] = unref[k];
            nunref = nframe = 0;
            depth++;
            level_end = sr->qn;
        }
    }
    free(unref);
    st_read_refs_max(c->r, 0);
    return 0;
}

static void
search_free(struct search *sr)
{
    oidarr_free(&sr->pred);
    oidarr_free(&sr->queue);
    free(sr->roots);
}

int
rp__cmd_referrers(struct ctx *c, const cJSON *req, cJSON *out)
{
    struct snaplist l;
    struct search sr = { 0 };
    const struct snap *s;
    uint64_t depth_max, chains, addr, *addrs = NULL;
    uint32_t start;
    int rc;
    const char *sel = rp__arg_str(req, "process");

    if (rp__arg_u64(req, "depth", RP_DEFAULT_DEPTH, &depth_max) < 0 ||
        depth_max == 0)
        return rp__fail(c, -EINVAL, "--depth must be a positive number");
    if (rp__arg_u64(req, "chains", 3, &chains) < 0 || chains == 0 ||
        chains > 1000)
        return rp__fail(c, -EINVAL, "--chains must be a positive number "
                        "(at most 1000)");
    rc = rp__load_snaps(c, 0, 0, sel, &l);
    if (rc != 0)
        return rc;
    if ((rc = rp__resolve(c, &l, rp__arg_str(req, "snap"), sel, &s)) != 0 ||
        (rc = arg_object(c, req, s, &start, &addr)) != 0)
        goto out;
    st_read_parents_max(c->r, SIZE_MAX);
    if ((rc = search_run(c, s, start, depth_max, chains, &sr)) != 0)
        goto out;
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
    cJSON *paths = cJSON_AddArrayToObject(out, "paths");
    if ((addrs = malloc((depth_max + 2) * sizeof *addrs)) == NULL) {
        rc = rp__fail(c, -ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < sr.nroots; i++) {
        cJSON *chain = cJSON_CreateArray(), *path = NULL;
        uint32_t x = sr.roots[i];
        size_t na = 0;

        /* from the object to the root: the pred links, reversed */
        cJSON_AddItemToArray(arr, chain);
        for (size_t h = 0; h <= depth_max + 1; h++) {
            struct st_object o;
            uint32_t up = sr.pred.p[x];

            if (st_object_get(c->r, s->id, x, &o) == 0) {
                cJSON_InsertItemInArray(chain, 0, rp__obj_json(&o));
                addrs[na++] = o.address;
            }
            if (up == PRED_START)
                break;
            x = up - 1;
        }
        /* the same chain, root first, in the program's words */
        rc = rp__chain_path(c, s->id, addrs, na, &path);
        if (rc != 0) {
            rp__fail(c, rc, "snapshot %" PRIu64 ": %s", s->id,
                     st_strerror(rc));
            goto out;
        }
        cJSON_AddItemToArray(paths, path);
    }
    cJSON_AddNumberToObject(out, "visited", (double)sr.visited);
    cJSON_AddBoolToObject(out, "truncated", sr.truncated);
    rc = 0;
out:
    free(addrs);
    search_free(&sr);
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
