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

        if (cJSON_GetArraySize(chains) > 0)
            cJSON_AddItemToObject(sus, "chain",
                                  cJSON_DetachItemFromArray(chains, 0));
        else
            cJSON_AddNullToObject(sus, "chain");
        cJSON_AddBoolToObject(sus, "chain_truncated", cJSON_IsTrue(
            cJSON_GetObjectItemCaseSensitive(ans, "truncated")));
    }
    cJSON_Delete(req);
    cJSON_Delete(ans);
}

/* The suspect named t: growth's row, both series, its new objects, its
 * chain and its retained size. */
static int
report_suspect(struct ctx *c, cJSON *t, const cJSON *bycount,
               const cJSON *diff, const struct snap *last,
               const struct rp_retained *ret, const char *ret_why, cJSON *arr)
{
    const char *name = cJSON_GetObjectItemCaseSensitive(t, "type")->valuestring;
    const cJSON *ct = type_in(bycount, name), *g;
    cJSON *sus = cJSON_CreateObject();
    uint64_t example = 0, n = 0, bytes = 0;

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
    if (!cJSON_IsObject(nw)) {
        cJSON_AddNullToObject(sus, "new_objects");
    } else {
        cJSON *o = cJSON_AddObjectToObject(sus, "new_objects");
        cJSON *groups = cJSON_AddArrayToObject(o, "groups");
        size_t shown = 0;

        cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(nw, "groups")) {
            const cJSON *gt = cJSON_GetObjectItemCaseSensitive(g, "type");

            if (!cJSON_IsString(gt) || strcmp(gt->valuestring, name) != 0)
                continue;
            n += (uint64_t)cJSON_GetObjectItemCaseSensitive(g, "count")->valuedouble;
            bytes += (uint64_t)cJSON_GetObjectItemCaseSensitive(g, "bytes")->valuedouble;
            if (example == 0 && cJSON_GetObjectItemCaseSensitive(g, "example"))
                example = (uint64_t)cJSON_GetObjectItemCaseSensitive(
                    g, "example")->valuedouble;
            if (shown++ < RP_REPORT_GROUPS)
                cJSON_AddItemToArray(groups, cJSON_Duplicate(g, 1));
        }
        cJSON_AddNumberToObject(o, "count", (double)n);
        cJSON_AddNumberToObject(o, "bytes", (double)bytes);
        cJSON_AddNumberToObject(o, "groups_total", (double)shown);
    }
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

/* A suspect whose biggest group of new objects is held by many new
 * objects of another suspect (the diff's "holders" > 1) grows with it
 * ("grows_with": that type): a Session's buffers rise with the leaked
 * Sessions.  (One new holder is a container that grew, the cache.)  Those go after the others, so
 * the report starts with the types that leak. */
static void
annotate_along(cJSON *arr)
{
    cJSON *s, *along = cJSON_CreateArray();
    int n = cJSON_GetArraySize(arr);

    cJSON_ArrayForEach(s, arr) {
        const cJSON *g = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(s, "new_objects"), "groups"), 0);
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(g, "holder");
        const cJSON *ht = cJSON_GetObjectItemCaseSensitive(h, "type");
        const char *self = cJSON_GetObjectItemCaseSensitive(s, "type")->valuestring;

        const cJSON *nh = cJSON_GetObjectItemCaseSensitive(g, "holders");

        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(h, "new")) &&
            cJSON_IsNumber(nh) && nh->valuedouble > 1 &&
            cJSON_IsString(ht) && strcmp(ht->valuestring, self) != 0 &&
            type_in(arr, ht->valuestring) != NULL)
            cJSON_AddStringToObject(s, "grows_with", ht->valuestring);
        else
            cJSON_AddNullToObject(s, "grows_with");
    }
    /* stable: the leaking ones in their order, then the others */
    for (int i = 0, k = 0; i < n; i++) {
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
        /* holders for the groups report_suspect shows only */
        if ((rc = rp__object_diff(c, a, b, keep, nkeep, 0, RP_REPORT_GROUPS,
                                  diff)) != 0)
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
    uint64_t ns = 0;
    cJSON_ArrayForEach(t, types) {
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "suspect")))
            continue;
        if (ns >= RP_REPORT_SUSPECTS_MAX)
            break;
        if (ns++ == 0) {        /* the dominators of b, once for all */
            if (!b->graph) {
                snprintf(ret_why, sizeof ret_why, "the last snapshot has no "
                         "object graph any more (retention)");
            } else if (rp__retained_new(c, b, &ret) != 0) {
                snprintf(ret_why, sizeof ret_why, "%s", c->err);
                c->err[0] = '\0';
            }
        }
        if ((rc = report_suspect(c, t, ctypes, diff, b, ret, ret_why,
                                 arr)) != 0) {
            rc = rp__fail(c, rc, "out of memory");
            goto out;
        }
    }
    annotate_along(arr);
    while (top != 0 && (uint64_t)cJSON_GetArraySize(arr) > top)
        cJSON_DeleteItemFromArray(arr, cJSON_GetArraySize(arr) - 1);
    cJSON_AddNumberToObject(sec, "suspects_total", (double)ns);
    if (n < ML_TREND_MIN_N && (rc = few_snapshots(c, sn, n, top, sec)) != 0)
        goto out;
    rc = 0;
out:
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
