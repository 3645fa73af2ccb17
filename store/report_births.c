/* SPDX-License-Identifier: MIT
 *
 * report_births.c -- birth sites in the answers (docs/cli-json.md,
 * "births"): for the new objects of a snapshot, per type, the places that
 * allocated them, from the tracebacks tracemalloc recorded (store/births.c).
 *
 * A site is the traceback's first frame (where the allocation happened:
 * file, line and function); objects whose tracebacks differ only further
 * up are counted together, and the site shows the full traceback of its
 * largest share.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "birthsites.h"
#include "ml-common.h"
#include "report-int.h"
#include "report_births.h"

/* Sites shown per type. */
#define RB_SITES 5
/* Frames shown of a site's traceback. */
#define RB_FRAMES 10
/* The trace that stands for "all new objects of the type" in the table. */
#define RB_ALL ML_BIRTHS_ALL

struct scan {
    struct ml_births *g;
    const uint8_t *isnew;
    const uint32_t *tid;
    const uint64_t *size;
    size_t nobj;
};

static int
on_trace(void *ctx, uint32_t oid, uint32_t trace)
{
    struct scan *s = ctx;

    if (oid >= s->nobj || s->isnew[oid] != 1 || trace == RB_ALL)
        return 0;
    return ml_births_add(s->g, s->tid[oid], trace, s->size[oid]);
}

/* The sites met so far by site_of (its key is the index): the parsed
 * traceback of each one's first (largest) trace, and its first frame. */
struct sites {
    struct ctx *c;
    uint64_t sid;
    cJSON **frames;             /* owned */
    const cJSON **top;
    size_t n;
};

static int
same_frame(const cJSON *a, const cJSON *b)
{
    for (int i = 0; i < 3; i++) {
        const cJSON *x = cJSON_GetArrayItem(a, i), *y = cJSON_GetArrayItem(b, i);

        if (cJSON_IsNumber(x) != cJSON_IsNumber(y)
            || cJSON_IsString(x) != cJSON_IsString(y))
            return 0;
        if (cJSON_IsNumber(x) && x->valuedouble != y->valuedouble)
            return 0;
        if (cJSON_IsString(x) && strcmp(x->valuestring, y->valuestring) != 0)
            return 0;
    }
    return 1;
}

static cJSON *
frame_json(const cJSON *f)
{
    cJSON *o = cJSON_CreateObject();
    const cJSON *file = cJSON_GetArrayItem(f, 0), *fn = cJSON_GetArrayItem(f, 2);

    if (o == NULL)
        return NULL;
    if (cJSON_IsString(file))
        cJSON_AddStringToObject(o, "file", file->valuestring);
    else
        cJSON_AddNullToObject(o, "file");
    cJSON_AddNumberToObject(o, "line",
                            cJSON_GetArrayItem(f, 1)->valuedouble);
    if (cJSON_IsString(fn))
        cJSON_AddStringToObject(o, "function", fn->valuestring);
    else
        cJSON_AddNullToObject(o, "function");
    return o;
}

/* common/birthsites.c's site of a trace: its first frame, compared to
 * those of the sites so far (the store's tracebacks are JSON). */
static int
site_of(void *ctx, uint32_t trace, uint64_t *site)
{
    struct sites *ss = ctx;
    const char *json;
    size_t len, k;
    cJSON *fr;
    const cJSON *f0;

    if (st_traceback_get(ss->c->r, ss->sid, trace, &json, &len) != 0
        || (fr = cJSON_ParseWithLength(json, len)) == NULL)
        return 1;               /* a store from a hostile stream: skip */
    f0 = cJSON_GetArrayItem(fr, 0);
    if (!cJSON_IsArray(f0) || !cJSON_IsNumber(cJSON_GetArrayItem(f0, 1))) {
        cJSON_Delete(fr);
        return 1;
    }
    for (k = 0; k < ss->n && !same_frame(ss->top[k], f0); k++)
        ;
    if (k < ss->n) {            /* the site's first trace keeps its frames */
        cJSON_Delete(fr);
        *site = k;
        return 0;
    }
    ss->frames[ss->n] = fr;
    ss->top[ss->n] = f0;
    *site = ss->n++;
    return 0;
}

/* The sites of one type: run[0..n) are its traces, largest first. */
static cJSON *
type_sites(struct ctx *c, uint64_t sid, const struct ml_births_acc *run,
           size_t n, size_t top)
{
    struct sites ss = { c, sid, NULL, NULL, 0 };
    struct ml_births_site *s = calloc(n + 1, sizeof *s);
    cJSON *arr = cJSON_CreateArray();
    long ns;

    ss.frames = calloc(n + 1, sizeof *ss.frames);
    ss.top = calloc(n + 1, sizeof *ss.top);
    if (s == NULL || arr == NULL || ss.frames == NULL || ss.top == NULL)
        goto fail;
    if ((ns = ml_births_sites(run, n, site_of, &ss, s)) < 0)
        goto fail;
    for (long k = 0; k < ns && (size_t)k < top; k++) {
        cJSON *o = frame_json(ss.top[s[k].site]), *tb;
        const cJSON *f;
        int nf = 0;

        if (o == NULL)
            goto fail;
        cJSON_AddNumberToObject(o, "count", (double)s[k].count);
        cJSON_AddNumberToObject(o, "bytes", (double)s[k].bytes);
        tb = cJSON_AddArrayToObject(o, "traceback");
        cJSON_ArrayForEach(f, ss.frames[s[k].site])
            if (nf++ < RB_FRAMES)
                cJSON_AddItemToArray(tb, frame_json(f));
        cJSON_AddItemToArray(arr, o);
    }
    for (size_t k = 0; k < ss.n; k++)
        cJSON_Delete(ss.frames[k]);
    free(ss.frames);
    free(ss.top);
    free(s);
    return arr;
fail:
    for (size_t k = 0; k < ss.n; k++)
        cJSON_Delete(ss.frames[k]);
    free(ss.frames);
    free(ss.top);
    free(s);
    cJSON_Delete(arr);
    return NULL;
}

struct trow {
    uint32_t tid;
    size_t at, n;               /* its traces in the sorted table */
    uint64_t count, bytes;      /* all its new objects */
    uint64_t tcount, tbytes;    /* those with a birth site */
};

static int
trow_cmp(const void *x, const void *y)
{
    const struct trow *a = x, *b = y;

    if (a->tbytes != b->tbytes)
        return a->tbytes < b->tbytes ? 1 : -1;
    return a->tid < b->tid ? -1 : a->tid > b->tid;
}

cJSON *
rp__births_new(struct ctx *c, uint64_t sid, const uint8_t *isnew,
               const uint32_t *tid, const uint64_t *size, size_t nobj,
               uint64_t top)
{
    struct ml_births g = { 0 };
    struct scan sc = { &g, isnew, tid, size, nobj };
    struct trow *rows = NULL;
    size_t nrows = 0, k = 0;
    cJSON *arr = NULL;
    int rc;

    if ((rc = st_births_has(c->r, sid)) <= 0)
        return rc < 0 ? NULL : cJSON_CreateNull();
    for (size_t i = 0; i < nobj; i++)
        if (isnew[i] == 1 && ml_births_add(&g, tid[i], RB_ALL, size[i]) != 0)
            goto out;
    if (st_trace_each(c->r, sid, on_trace, &sc) != 0)
        goto out;
    k = ml_births_sort(&g);
    rows = calloc(k + 1, sizeof *rows);
    if (rows == NULL)
        goto out;
    for (size_t i = 0; i < k;) {
        struct trow *r = &rows[nrows++];
        size_t j = i + 1;

        r->tid = ml_births_group(&g.v[i]);
        r->count = g.v[i].count;        /* RB_ALL sorts first */
        r->bytes = g.v[i].bytes;
        while (j < k && ml_births_group(&g.v[j]) == r->tid) {
            r->tcount += g.v[j].count;
            r->tbytes += g.v[j].bytes;
            j++;
        }
        r->at = i + 1;
        r->n = j - i - 1;
        i = j;
    }
    ml_sort(rows, nrows, sizeof *rows, trow_cmp);
    arr = cJSON_CreateArray();
    for (size_t i = 0; arr != NULL && i < nrows; i++) {
        const char *name;
        size_t len;
        cJSON *o, *sites;

        if (rows[i].tcount == 0 || (top != 0 && i >= top))
            break;
        if (st_type_name(c->r, rows[i].tid, &name, &len) != 0)
            continue;
        sites = type_sites(c, sid, g.v + rows[i].at, rows[i].n, RB_SITES);
        if (sites == NULL || (o = cJSON_CreateObject()) == NULL) {
            cJSON_Delete(sites);
            cJSON_Delete(arr);
            arr = NULL;
            break;
        }
        rp__add_strn(o, "type", name, len);
        cJSON_AddNumberToObject(o, "count", (double)rows[i].count);
        cJSON_AddNumberToObject(o, "bytes", (double)rows[i].bytes);
        cJSON_AddNumberToObject(o, "traced_count", (double)rows[i].tcount);
        cJSON_AddNumberToObject(o, "traced_bytes", (double)rows[i].tbytes);
        cJSON_AddItemToObject(o, "sites", sites);
        cJSON_AddItemToArray(arr, o);
    }
out:
    free(rows);
    ml_births_free(&g);
    return arr;
}

void
rp__births_diff(struct ctx *c, uint64_t sid, const uint8_t *isnew,
                const uint32_t *tid, const uint64_t *size, size_t nobj,
                uint64_t top, cJSON *nw)
{
    cJSON *b = rp__births_new(c, sid, isnew, tid, size, nobj, top);

    if (b == NULL || cJSON_IsNull(b))
        cJSON_Delete(b);
    else
        cJSON_AddItemToObject(nw, "births", b);
}

cJSON *
rp__births_pick(const cJSON *births, const char *type)
{
    const cJSON *b;

    cJSON_ArrayForEach(b, births) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(b, "type");

        if (cJSON_IsString(t) && strcmp(t->valuestring, type) == 0)
            return cJSON_Duplicate(b, 1);
    }
    return cJSON_CreateNull();
}

/* ---- from two snapshots ---- */

int
rp__births_growth(struct ctx *c, const struct snap *const *sn, size_t n,
                  cJSON *sec)
{
    const struct snap *a = NULL, *b = sn[n - 1];
    cJSON *births, *t;
    int any = 0;

    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(sec, "types"))
        any |= cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "suspect"));
    if (!any || !b->graph || st_births_has(c->r, b->id) <= 0)
        return 0;
    for (size_t i = 0; i + 1 < n && a == NULL; i++)
        if (sn[i]->graph)
            a = sn[i];
    if (a == NULL)
        return 0;
    if ((births = rp__births_between(c, a, b, 0)) == NULL)
        return -ENOMEM;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(sec, "types")) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(t, "type");

        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "suspect"))
            && cJSON_IsString(name))
            cJSON_AddItemToObject(t, "births",
                                  rp__births_pick(births, name->valuestring));
    }
    cJSON_AddNumberToObject(sec, "births_a", (double)a->id);
    cJSON_Delete(births);
    return 0;
}
