/* SPDX-License-Identifier: MIT
 *
 * report_leak.c -- the "report" answer (report.h, docs/cli-json.md): per
 * process in the window, its leak suspects (growth's trend test) with
 * what a person needs to act on each: the count and bytes over every
 * snapshot, the object-level diff of its type (born after the window's
 * first snapshot with a graph and alive in the last k), the shortest
 * referrer chain from one of those new objects to a root, and its
 * retained size.  It reuses the other commands' code: rp__growth_process,
 * rp__object_diff, rp__cmd_referrers.  meliae-cli renders it as text or
 * as one HTML file (cli/html.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report-int.h"
#include "report_births.h"
#include "trend.h"

/* New-object groups shown per suspect. */
#define RP_REPORT_GROUPS 5

/* Suspects looked at (chain, diff) before --top keeps the first ones of
 * the report's order: bounds the referrer walks. */
#define RP_REPORT_SUSPECTS_MAX 50

static cJSON *
detach(cJSON *o, const char *k)
{
    cJSON *x = cJSON_DetachItemFromObjectCaseSensitive(o, k);

    return x ? x : cJSON_CreateNull();
}

static const cJSON *
type_in(const cJSON *types, const char *name)
{
    const cJSON *t;

    cJSON_ArrayForEach(t, types) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(t, "type");

        if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
            return t;
    }
    return NULL;
}

/* The suspect's retained size in the last snapshot (report_dominators.c):
 * what the objects of its type keep alive, each counted once, and what
 * the example new object keeps alive.  ret is NULL when the snapshot has no
 * graph or the computation failed: the note says why, and no estimate
 * stands in for it. */
static int
report_retained(struct ctx *c, const struct rp_retained *ret,
                const char *why, const char *name, uint64_t example,
                cJSON *sus)
{
    uint64_t bytes = 0, ex = 0;
    cJSON *o;

    if (ret == NULL || rp__retained_type(c, ret, name, &bytes) != 0) {
        cJSON_AddNullToObject(sus, "retained");
        cJSON_AddStringToObject(sus, "retained_note", ret == NULL ? why
                                : "no object of this type in the last snapshot");
        return 0;
    }
    if ((o = cJSON_AddObjectToObject(sus, "retained")) == NULL)
        return -ENOMEM;
    cJSON_AddNumberToObject(o, "bytes", (double)bytes);
    if (example != 0 && rp__retained_addr(c, ret, example, &ex) == 0)
        cJSON_AddNumberToObject(o, "example_bytes", (double)ex);
    else
        cJSON_AddNullToObject(o, "example_bytes");
    return 0;
}

/* The shortest referrer chain from the object at addr in snapshot s, by
 * the referrers command itself; null (and a note) when there is none. */
static void
report_chain(struct ctx *c, const struct snap *s, uint64_t addr, cJSON *sus)
{
    cJSON *req = cJSON_CreateObject(), *ans = cJSON_CreateObject();
    char buf[24];

    snprintf(buf, sizeof buf, "%" PRIu64, s->id);
    cJSON_AddStringToObject(req, "snap", buf);
    snprintf(buf, sizeof buf, "%" PRIu64, addr);
    cJSON_AddStringToObject(req, "address", buf);
    cJSON_AddNumberToObject(req, "chains", 1);
    if (req == NULL || ans == NULL ||
        rp__cmd_referrers(c, req, ans) != 0) {
        cJSON_AddNullToObject(sus, "chain");
        cJSON_AddStringToObject(sus, "chain_note", c->err[0] ? c->err
                                : "out of memory");
        c->err[0] = '\0';
    } else {
        cJSON *chains = cJSON_GetObjectItemCaseSensitive(ans, "chains");

        cJSON *paths = cJSON_GetObjectItemCaseSensitive(ans, "paths");

        if (cJSON_GetArraySize(chains) > 0)
            cJSON_AddItemToObject(sus, "chain",
                                  cJSON_DetachItemFromArray(chains, 0));
        else
            cJSON_AddNullToObject(sus, "chain");
        /* the same chain in the program's words (common/paths.c) */
        if (cJSON_GetArraySize(paths) > 0)
            cJSON_AddItemToObject(sus, "path",
                                  cJSON_DetachItemFromArray(paths, 0));
        else
            cJSON_AddNullToObject(sus, "path");
        cJSON_AddBoolToObject(sus, "chain_truncated", cJSON_IsTrue(
            cJSON_GetObjectItemCaseSensitive(ans, "truncated")));
    }
    cJSON_Delete(req);
    cJSON_Delete(ans);
}

/* One accumulation point of a suspect's new objects: the diff's group g
 * and g's row of the suspect's type. */
struct spot {
    const cJSON *g, *row;
    double bytes;
};

static int
spot_cmp(const void *x, const void *y)
{
    const struct spot *a = x, *b = y;

    return a->bytes < b->bytes ? 1 : a->bytes > b->bytes ? -1 : 0;
}

static double
numk(const cJSON *o, const char *k)
{
    return cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, k));
}

/* The suspect's new objects: each accumulation point (diff group) that
 * has some, biggest first, at most RP_REPORT_GROUPS of them, as
 * {"holder", "count", "bytes", "depth", "example" (the suspect's type's
 * in that group), "group_count", "group_bytes" (all of the group)}.
 * *top: the group with most of them (NULL if none), for grows_with. */
static int
suspect_groups(const char *name, const cJSON *nw, cJSON *sus,
               const cJSON **top, uint64_t *example)
{
    const cJSON *g, *t;
    struct spot *v = NULL;
    size_t n = 0, cap = 0;
    double count = 0, bytes = 0;

    *top = NULL;
    *example = 0;
    cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(nw, "groups")) {
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(g, "types")) {
            const cJSON *tt = cJSON_GetObjectItemCaseSensitive(t, "type");

            if (!cJSON_IsString(tt) || strcmp(tt->valuestring, name) != 0)
                continue;
            void *q = rp__grow(v, &cap, n, sizeof *v, 16);
            if (q == NULL) {
                free(v);
                return -ENOMEM;
            }
            v = q;
            v[n++] = (struct spot){ g, t, numk(t, "bytes") };
            count += numk(t, "count");
            bytes += numk(t, "bytes");
            break;
        }
    }
    ml_sort(v, n, sizeof *v, spot_cmp);
    cJSON *o = cJSON_AddObjectToObject(sus, "new_objects");
    cJSON *groups = cJSON_AddArrayToObject(o, "groups");
    for (size_t i = 0; groups != NULL && i < n && i < RP_REPORT_GROUPS; i++) {
        cJSON *x = cJSON_CreateObject();

        cJSON_AddItemToObject(x, "holder", cJSON_Duplicate(
            cJSON_GetObjectItemCaseSensitive(v[i].g, "holder"), 1));
        cJSON_AddNumberToObject(x, "count", numk(v[i].row, "count"));
        cJSON_AddNumberToObject(x, "bytes", numk(v[i].row, "bytes"));
        cJSON_AddNumberToObject(x, "depth", numk(v[i].row, "depth"));
        cJSON_AddNumberToObject(x, "example", numk(v[i].row, "example"));
        cJSON_AddNumberToObject(x, "group_count", numk(v[i].g, "count"));
        cJSON_AddNumberToObject(x, "group_bytes", numk(v[i].g, "bytes"));
        cJSON_AddItemToArray(groups, x);
    }
    cJSON_AddNumberToObject(o, "count", count);
    cJSON_AddNumberToObject(o, "bytes", bytes);
    cJSON_AddNumberToObject(o, "groups_total", (double)n);
    if (n > 0) {
        *top = v[0].g;
        *example = (uint64_t)numk(v[0].row, "example");
    }
    free(v);
    return 0;
}

/* The suspect named t: growth's row, both series, its new objects, its
 * chain and its retained size.  *top: its main accumulation point. */
static int
report_suspect(struct ctx *c, cJSON *t, const cJSON *bycount,
               const cJSON *diff, const struct snap *last,
               const struct rp_retained *ret, const char *ret_why, cJSON *arr,
               const cJSON **top)
{
    const char *name = cJSON_GetObjectItemCaseSensitive(t, "type")->valuestring;
    const cJSON *ct = type_in(bycount, name);
    cJSON *sus = cJSON_CreateObject();
    uint64_t example = 0;

    *top = NULL;
    if (sus == NULL)
        return -ENOMEM;
    cJSON_AddItemToArray(arr, sus);
    static const char *const keep[] = {
        "type", "count_before", "count_after", "bytes_before", "bytes_after",
        "verdict", "score", "trend",
    };
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        cJSON_AddItemToObject(sus, keep[i], detach(t, keep[i]));
    cJSON_AddItemToObject(sus, "series_bytes", detach(t, "series"));
    cJSON_AddItemToObject(sus, "series_count",
                          ct ? cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(
                                   ct, "series"), 1)
                             : cJSON_CreateNull());
    const cJSON *nw = cJSON_GetObjectItemCaseSensitive(diff, "new_objects");
    if (!cJSON_IsObject(nw))
        cJSON_AddNullToObject(sus, "new_objects");
    else if (suspect_groups(name, nw, sus, top, &example) != 0)
        return -ENOMEM;
    /* where they were allocated (traced streams) */
    cJSON_AddItemToObject(sus, "births", rp__births_pick(
        cJSON_GetObjectItemCaseSensitive(nw, "births"), name));
    if (example != 0) {
        cJSON_AddNumberToObject(sus, "example", (double)example);
        report_chain(c, last, example, sus);
    } else {
        cJSON_AddNullToObject(sus, "example");
        cJSON_AddNullToObject(sus, "chain");
        cJSON_AddStringToObject(sus, "chain_note", "no new object of this "
                                "type alive in the last snapshots");
    }
    return report_retained(c, ret, ret_why, name, example, sus);
}

/* A suspect grows with another ("grows_with": that type) when, at its main
 * accumulation point, the other suspect's new objects sit nearer the old
 * object they hang off (fewer hops: the leaked Sessions in the cache,
 * their buffers one hop further).  The nearest one, then the biggest.
 * tops[i]: suspect i's main accumulation point (diff group) or NULL.
 * Those that grow with another go after the others, so the report starts
 * with the types that leak. */
static void
annotate_along(cJSON *arr, const cJSON *const *tops)
{
    cJSON *s, *along = cJSON_CreateArray();
    int n = cJSON_GetArraySize(arr), i = 0;

    cJSON_ArrayForEach(s, arr) {
        const char *self = cJSON_GetObjectItemCaseSensitive(s, "type")->valuestring;
        const cJSON *g = tops[i++], *r, *mine = NULL, *best = NULL;

        cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(g, "types")) {
            const cJSON *rt = cJSON_GetObjectItemCaseSensitive(r, "type");

            if (cJSON_IsString(rt) && strcmp(rt->valuestring, self) == 0)
                mine = r;
        }
        cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(g, "types")) {
            const cJSON *rt = cJSON_GetObjectItemCaseSensitive(r, "type");
            double d = numk(r, "depth");

            if (mine == NULL || r == mine || !cJSON_IsString(rt) || d < 1 ||
                d >= numk(mine, "depth") || type_in(arr, rt->valuestring) == NULL)
                continue;
            if (best == NULL || d < numk(best, "depth") ||
                (d == numk(best, "depth") && numk(r, "bytes") > numk(best, "bytes")))
                best = r;
        }
        if (best != NULL)
            cJSON_AddStringToObject(s, "grows_with", cJSON_GetObjectItemCaseSensitive(
                best, "type")->valuestring);
        else
            cJSON_AddNullToObject(s, "grows_with");
    }
    /* stable: the leaking ones in their order, then the others */
    for (int j = 0, k = 0; j < n; j++) {
        cJSON *x = cJSON_GetArrayItem(arr, k);

        if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(x, "grows_with")))
            cJSON_AddItemToArray(along, cJSON_DetachItemFromArray(arr, k));
        else
            k++;
    }
    while (cJSON_GetArraySize(along) > 0)
        cJSON_AddItemToArray(arr, cJSON_DetachItemFromArray(along, 0));
    cJSON_Delete(along);
}

/* Names each accumulation point of suspect sus (its groups' "holder"
 * gets "path", report_paths.c), each address looked up once per report
 * section: the leak's Sessions, their strs and ints are at one point.
 * *cache: an object of address -> path, made on first use. */
static int
add_paths(struct ctx *c, const struct snap *b, cJSON *sus, cJSON **cache)
{
    cJSON *g;
    char key[24];

    if (*cache == NULL && (*cache = cJSON_CreateObject()) == NULL)
        return -ENOMEM;
    cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(
                           cJSON_GetObjectItemCaseSensitive(sus, "new_objects"),
                           "groups")) {
        cJSON *h = cJSON_GetObjectItemCaseSensitive(g, "holder"), *p;

        if (!cJSON_IsObject(h) || cJSON_HasObjectItem(h, "path"))
            continue;
        snprintf(key, sizeof key, "%.0f", numk(h, "address"));
        if ((p = cJSON_GetObjectItemCaseSensitive(*cache, key)) == NULL) {
            p = rp__path_json(c, b, (uint64_t)numk(h, "address"));
            if (p == NULL)
                p = cJSON_CreateNull();
            if (p == NULL)
                return -ENOMEM;
            cJSON_AddItemToObject(*cache, key, p);
        }
        cJSON_AddItemToObject(h, "path", cJSON_Duplicate(p, 1));
    }
    return 0;
}

/* Below the trend test's minimum no type can be a suspect, but the
 * deltas, first snapshot against last, still say what grew: "deltas",
 * the top types by net growth of their size (growth's rows, trimmed). */
static int
few_snapshots(struct ctx *c, const struct snap *const *sn, size_t n,
              uint64_t top, cJSON *sec)
{
    static const char *const keep[] = { "type", "count_before", "count_after",
                                        "bytes_before", "bytes_after" };
    cJSON *g = cJSON_CreateObject(), *dl = cJSON_AddArrayToObject(sec, "deltas");
    const cJSON *t;
    int rc;

    if (g == NULL || dl == NULL) {
        cJSON_Delete(g);
        return rp__fail(c, -ENOMEM, "out of memory");
    }
    rc = n < 2 ? 0 : rp__growth_process(c, sn, n, 0, RP_SORT_BYTES, top, g);
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(g, "types")) {
        cJSON *o;

        if (rc != 0 || cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(
                t, "bytes_after")) <= cJSON_GetNumberValue(
                cJSON_GetObjectItemCaseSensitive(t, "bytes_before")))
            continue;
        if ((o = cJSON_CreateObject()) == NULL) {
            rc = rp__fail(c, -ENOMEM, "out of memory");
            break;
        }
        for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
            cJSON_AddItemToObject(o, keep[i], cJSON_Duplicate(
                cJSON_GetObjectItemCaseSensitive(t, keep[i]), 1));
        cJSON_AddItemToArray(dl, o);
    }
    cJSON_Delete(g);
    return rc;
}

/* One process's report: sn[0..n) are its snapshots in the window. */
static int
report_process(struct ctx *c, const struct snap *const *sn, size_t n,
               uint64_t top, uint64_t k, cJSON *sec)
{
    cJSON *bysize = cJSON_CreateObject(), *bycount = cJSON_CreateObject();
    cJSON *diff = cJSON_CreateObject();
    const struct snap *a = NULL, *b = sn[n - 1];
    const struct snap **keep = NULL;
    struct rp_retained *ret = NULL;
    char ret_why[200] = "not computed";
    cJSON *paths = NULL;        /* add_paths' cache */
    size_t nkeep = 0;
    int rc;

    if (bysize == NULL || bycount == NULL || diff == NULL) {
        rc = rp__fail(c, -ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = rp__growth_process(c, sn, n, 0, RP_SORT_SCORE,
                                 RP_GROWTH_SUSPECTS, bysize)) != 0 ||
        (rc = rp__growth_process(c, sn, n, 1, RP_SORT_SCORE,
                                 RP_GROWTH_SUSPECTS, bycount)) != 0)
        goto out;
    static const char *const head[] = {
        "process", "pid", "label", "program", "snapshots", "floor_bytes",
        "first", "last", "memory",
    };
    for (size_t i = 0; i < sizeof head / sizeof head[0]; i++)
        cJSON_AddItemToObject(sec, head[i], detach(bysize, head[i]));
    cJSON *pts = cJSON_AddArrayToObject(sec, "points");
    for (size_t i = 0; pts != NULL && i < n; i++) {
        cJSON *p = rp__snap_json(sn[i]);
        cJSON *q = cJSON_CreateObject();

        cJSON_AddItemToObject(q, "id", detach(p, "id"));
        cJSON_AddItemToObject(q, "time", detach(p, "time"));
        /* seconds since the first point: the charts' time axis */
        cJSON_AddNumberToObject(q, "t", (double)(sn[i]->time_ns
                                                 - sn[0]->time_ns) / 1e9);
        cJSON_AddItemToObject(q, "bytes", detach(p, "bytes"));
        if (sn[i]->procfig.has && sn[i]->procfig.rss >= 0)
            cJSON_AddNumberToObject(q, "rss", (double)sn[i]->procfig.rss);
        else
            cJSON_AddNullToObject(q, "rss");
        cJSON_Delete(p);
        cJSON_AddItemToArray(pts, q);
    }

    /* the diff: the first snapshot with a graph against the last, the new
     * objects also alive in the k - 1 snapshots before the last */
    for (size_t i = 0; i < n && a == NULL; i++)
        if (sn[i]->graph)
            a = sn[i];
    keep = malloc((k + 1) * sizeof *keep);
    if (keep == NULL) {
        rc = rp__fail(c, -ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = n - 1; i > 0 && nkeep + 1 < k; i--)
        if (sn[i - 1] != a && sn[i - 1]->graph && sn[i - 1]->time_ns >
            (a ? a->time_ns : 0))
            keep[nkeep++] = sn[i - 1];
    cJSON *dj = cJSON_AddObjectToObject(sec, "diff");
    if (a == NULL || a == b || !b->graph) {
        cJSON_AddNullToObject(dj, "a");
        cJSON_AddStringToObject(dj, "note", "the object-level diff needs two "
                                "snapshots with their graph (retention keeps "
                                "the newest ones)");
    } else {
        cJSON_AddNumberToObject(dj, "a", (double)a->id);
        cJSON_AddNumberToObject(dj, "b", (double)b->id);
        cJSON *ka = cJSON_AddArrayToObject(dj, "alive_in");
        cJSON_AddItemToArray(ka, cJSON_CreateNumber((double)b->id));
        for (size_t i = 0; i < nkeep; i++)
            cJSON_AddItemToArray(ka, cJSON_CreateNumber((double)keep[i]->id));
        if ((rc = rp__object_diff(c, a, b, keep, nkeep, 0, 1, diff)) != 0)
            goto out;
        const cJSON *nw = cJSON_GetObjectItemCaseSensitive(diff, "new_objects");
        static const char *const tot[] = { "count", "bytes", "transient" };
        for (size_t i = 0; i < 3; i++) {
            const cJSON *x = cJSON_GetObjectItemCaseSensitive(nw, tot[i]);
            cJSON_AddNumberToObject(dj, tot[i], cJSON_IsNumber(x) ? x->valuedouble : 0);
        }
    }

    cJSON *arr = cJSON_AddArrayToObject(sec, "suspects");
    cJSON *types = cJSON_GetObjectItemCaseSensitive(bysize, "types"), *t;
    const cJSON *ctypes = cJSON_GetObjectItemCaseSensitive(bycount, "types");
    const cJSON *tops[RP_REPORT_SUSPECTS_MAX];
    uint64_t ns = 0;
    cJSON_ArrayForEach(t, types) {
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "suspect")))
            continue;
        if (ns >= RP_REPORT_SUSPECTS_MAX)
            break;
        if (ns == 0) {          /* the dominators of b, once for all */
            if (!b->graph) {
                snprintf(ret_why, sizeof ret_why, "the last snapshot has no "
                         "object graph any more (retention)");
            } else if ((rc = rp__retained_new(c, b, &ret)) != 0) {
                if (rc == -EAGAIN)
                    goto out;   /* being stored: the daemon asks again */
                snprintf(ret_why, sizeof ret_why, "%s", c->err);
                c->err[0] = '\0';
                rc = 0;
            }
        }
        if ((rc = report_suspect(c, t, ctypes, diff, b, ret, ret_why,
                                 arr, &tops[ns])) != 0) {
            rc = rp__fail(c, rc, "out of memory");
            goto out;
        }
        ns++;
    }
    annotate_along(arr, tops);
    /* the verdict's type first; its groups named; then the verdict */
    int lk = rp__verdict_pick(arr);
    if (lk > 0)
        cJSON_InsertItemInArray(arr, 0, cJSON_DetachItemFromArray(arr, lk));
    if ((rc = add_paths(c, b, cJSON_GetArrayItem(arr, 0), &paths)) != 0 ||
        (rc = rp__verdict_json(sec, lk >= 0 ? cJSON_GetArrayItem(arr, 0) : NULL,
                               (double)(b->time_ns - sn[0]->time_ns) / 1e9,
                               ML_TREND_MIN_N, sec)) != 0) {
        rc = rp__fail(c, rc, "out of memory");
        goto out;
    }
    while (top != 0 && (uint64_t)cJSON_GetArraySize(arr) > top)
        cJSON_DeleteItemFromArray(arr, cJSON_GetArraySize(arr) - 1);
    cJSON *sx;
    cJSON_ArrayForEach(sx, arr)
        if ((rc = add_paths(c, b, sx, &paths)) != 0) {
            rc = rp__fail(c, rc, "out of memory");
            goto out;
        }
    cJSON_AddNumberToObject(sec, "suspects_total", (double)ns);
    if (n < ML_TREND_MIN_N && (rc = few_snapshots(c, sn, n, top, sec)) != 0)
        goto out;
    rc = 0;
out:
    cJSON_Delete(paths);
    rp__retained_free(ret);
    free(keep);
    cJSON_Delete(bysize);
    cJSON_Delete(bycount);
    cJSON_Delete(diff);
    return rc;
}

struct report_args {
    uint64_t top, k;
};

static int
report_section(struct ctx *c, const struct snap *const *sn, size_t n,
               void *arg, cJSON *sec)
{
    const struct report_args *a = arg;

    return report_process(c, sn, n, a->top, a->k, sec);
}

int
rp__cmd_report(struct ctx *c, const cJSON *req, cJSON *out)
{
    struct snaplist l;
    struct report_args a;
    uint64_t since, until;
    int rc;

    if (rp__arg_u64(req, "since", 0, &since) < 0 ||
        rp__arg_u64(req, "until", 0, &until) < 0)
        return rp__fail(c, -EINVAL, "bad since/until");
    if (rp__arg_u64(req, "top", 5, &a.top) < 0)
        return rp__fail(c, -EINVAL, "--top must be a number");
    if (rp__arg_u64(req, "alive", 2, &a.k) < 0 || a.k == 0 || a.k > 100)
        return rp__fail(c, -EINVAL, "--alive must be a number from 1 to 100");
    rc = rp__load_snaps(c, since, until, rp__arg_str(req, "process"), &l);
    if (rc != 0)
        return rc;
    cJSON_AddNumberToObject(out, "alive", (double)a.k);
    cJSON_AddNumberToObject(out, "alpha", ML_TREND_ALPHA);
    cJSON_AddNumberToObject(out, "min_snapshots", ML_TREND_MIN_N);
    /* one section per process, as growth */
    rc = rp__each_process(c, &l, cJSON_AddArrayToObject(out, "processes"),
                          report_section, &a);
    rp__snaps_free(&l);
    return rc;
}
