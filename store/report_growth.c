/* SPDX-License-Identifier: MIT
 *
 * report_growth.c -- the "growth" answer (report.h, docs/cli-json.md):
 * for each process, every type's count or bytes over the process's
 * snapshots in the window, with the trend test of trend.h on both (the
 * leak suspects), ranked by --sort (default: suspects first, then the
 * Mann-Kendall Z of the --by series).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report-int.h"
#include "report_births.h"
#include "trend.h"

/* What a type's row of the answer costs at least, less its series. */
#define GROWTH_ROW_BYTES 300

/* One type's series over a process's snapshots in the window. */
struct series {
    uint32_t tid;
    uint64_t *count, *bytes;    /* [nsnaps] */
    struct ml_trend tc, tb;     /* trends of count and bytes */
    enum ml_verdict verdict;
    double key[3];              /* the sort: descending, then tid */
};

struct grow {
    struct series *v;
    size_t n, cap;
    uint32_t *map;              /* tid -> index + 1, open addressing */
    size_t mapcap;
    size_t nsnaps, at;          /* snapshots; the one being read */
};

static void
grow_free(struct grow *g)
{
    for (size_t i = 0; i < g->n; i++) {
        free(g->v[i].count);
        free(g->v[i].bytes);
    }
    free(g->v);
    free(g->map);
}

static struct series *
grow_get(struct grow *g, uint32_t tid)
{
    size_t j;

    if ((g->n + 1) * 2 > g->mapcap) {
        size_t cap = g->mapcap ? g->mapcap * 2 : 256;
        uint32_t *m = calloc(cap, sizeof *m);

        if (m == NULL)
            return NULL;
        for (size_t i = 0; i < g->n; i++) {
            for (j = (g->v[i].tid * 2654435761u) & (cap - 1); m[j];
                 j = (j + 1) & (cap - 1))
                ;
            m[j] = (uint32_t)i + 1;
        }
        free(g->map);
        g->map = m;
        g->mapcap = cap;
    }
    for (j = (tid * 2654435761u) & (g->mapcap - 1); g->map[j];
         j = (j + 1) & (g->mapcap - 1))
        if (g->v[g->map[j] - 1].tid == tid)
            return &g->v[g->map[j] - 1];
    void *p = rp__grow(g->v, &g->cap, g->n, sizeof *g->v, 128);

    if (p == NULL)
        return NULL;
    g->v = p;
    struct series *s = &g->v[g->n];
    memset(s, 0, sizeof *s);
    s->tid = tid;
    s->count = calloc(g->nsnaps, sizeof *s->count);
    s->bytes = calloc(g->nsnaps, sizeof *s->bytes);
    if (s->count == NULL || s->bytes == NULL) {
        free(s->count);
        free(s->bytes);
        return NULL;
    }
    g->map[j] = (uint32_t)++g->n;
    return s;
}

static int
grow_row(void *arg, const struct st_typesum *t)
{
    struct grow *g = arg;
    struct series *s = grow_get(g, t->tid);

    if (s == NULL)
        return -ENOMEM;
    s->count[g->at] = t->count;
    s->bytes[g->at] = t->bytes;
    return 0;
}

static int
series_cmp(const void *a, const void *b)
{
    const struct series *x = a, *y = b;

    for (int k = 0; k < 3; k++)
        if (x->key[k] != y->key[k])
            return x->key[k] < y->key[k] ? 1 : -1;
    return x->tid < y->tid ? -1 : x->tid > y->tid;
}

/* x to 6 significant digits: stable documents (golden files), and no
 * more precision than the statistic has. */
static double
sig6(double x)
{
    char buf[32];

    snprintf(buf, sizeof buf, "%.6g", x);
    return strtod(buf, NULL);
}

cJSON *
rp__trend_json(const struct ml_trend *t)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddNumberToObject(o, "s", t->s);
    cJSON_AddNumberToObject(o, "var", sig6(t->var));
    cJSON_AddNumberToObject(o, "z", sig6(t->z));
    cJSON_AddNumberToObject(o, "tau", sig6(t->tau));
    cJSON_AddNumberToObject(o, "p", sig6(t->p));
    cJSON_AddBoolToObject(o, "exact", t->exact);
    cJSON_AddNumberToObject(o, "slope", sig6(t->slope));
    if (isnan(t->slope_hour))
        cJSON_AddNullToObject(o, "slope_per_hour");
    else
        cJSON_AddNumberToObject(o, "slope_per_hour", sig6(t->slope_hour));
    return o;
}

static const char *const sort_names[] = { "score", "bytes", "count", "slope" };

int
rp__arg_sort(struct ctx *c, const cJSON *req, int *sort)
{
    const char *v = rp__arg_str(req, "sort");

    *sort = RP_SORT_SCORE;
    if (v == NULL)
        return 0;
    for (int i = 0; i < 4; i++)
        if (strcmp(v, sort_names[i]) == 0) {
            *sort = i;
            return 0;
        }
    return rp__fail(c, -EINVAL, "--sort must be score, bytes, count or "
                    "slope, not \"%s\"", v);
}

/* The trend and verdict of each series, and its sort keys. */
static int
growth_trends(struct grow *g, const struct snap *const *sn, size_t n,
              int count, int sort)
{
    double *y = malloc((2 * n + ml_trend_scratch(n)) * sizeof *y);
    uint64_t *t = malloc(n * sizeof *t);
    double floor = ml_trend_floor((double)sn[n - 1]->bytes);

    if (y == NULL || t == NULL) {
        free(y);
        free(t);
        return -ENOMEM;
    }
    double *yc = y + n + ml_trend_scratch(n);   /* the count, for the rule */
    for (size_t k = 0; k < n; k++)
        t[k] = sn[k]->time_ns;
    size_t mid = ml_trend_mid(t, n);
    for (size_t i = 0; i < g->n; i++) {
        struct series *s = &g->v[i];

        for (size_t k = 0; k < n; k++)
            y[k] = (double)s->count[k];
        ml_trend(y, t, n, y + n, &s->tc);
        for (size_t k = 0; k < n; k++)
            y[k] = (double)s->bytes[k];
        ml_trend(y, t, n, y + n, &s->tb);
        s->verdict = ml_trend_verdict(&s->tc, &s->tb, (double)s->bytes[n - 1] -
                                      (double)s->bytes[0], floor);
        if (s->verdict == ML_VERDICT_SUSPECT) {     /* y: the bytes */
            for (size_t k = 0; k < n; k++)
                yc[k] = (double)s->count[k];
            s->verdict = ml_trend_verdict_late(s->verdict, yc, y, n, mid);
        }

        const struct ml_trend *by = count ? &s->tc : &s->tb;
        switch (sort) {
        case RP_SORT_SCORE:
            s->key[0] = s->verdict == ML_VERDICT_SUSPECT;
            s->key[1] = by->z;
            s->key[2] = by->slope;
            break;
        case RP_SORT_BYTES:
        case RP_SORT_COUNT: {
            const uint64_t *m = sort == RP_SORT_COUNT ? s->count : s->bytes;
            s->key[0] = (double)m[n - 1] - (double)m[0];
            s->key[1] = s->key[2] = 0;
            break;
        }
        default:
            s->key[0] = by->slope;
            s->key[1] = by->z;
            s->key[2] = 0;
        }
    }
    free(y);
    free(t);
    return 0;
}

int
rp__growth_process(struct ctx *c, const struct snap *const *sn, size_t n,
                   int count, int sort, uint64_t top, cJSON *sec)
{
    struct grow g = { .nsnaps = n };
    char buf[24];
    int rc = 0;

    for (g.at = 0; g.at < n && rc == 0; g.at++)
        rc = st_summary_tids(c->r, sn[g.at]->id, grow_row, &g);
    if (rc != 0) {
        grow_free(&g);
        return rp__fail(c, rc, "reading summaries: %s", st_strerror(rc));
    }
    if (growth_trends(&g, sn, n, count, sort) != 0) {
        grow_free(&g);
        return rp__fail(c, -ENOMEM, "out of memory");
    }
    ml_sort(g.v, g.n, sizeof *g.v, series_cmp);
    /* A row is ~300 bytes of JSON and a number per snapshot: types x
     * snapshots, refused before it is built when over the cap. */
    size_t rows = top == 0 || top > g.n ? g.n : (size_t)top;
    if (top == RP_GROWTH_SUSPECTS)      /* first in the score order */
        for (rows = 0; rows < g.n && g.v[rows].verdict == ML_VERDICT_SUSPECT;)
            rows++;
    if ((rc = rp__budget(c, rows * (GROWTH_ROW_BYTES + 8 * n), "growth")) != 0) {
        grow_free(&g);
        return rc;
    }

    const struct snap *first = sn[0], *last = sn[n - 1];
    snprintf(buf, sizeof buf, "%016" PRIx64, first->proc);
    cJSON_AddStringToObject(sec, "process", buf);
    cJSON_AddNumberToObject(sec, "pid", last->pid);
    rp__add_str_or_null(sec, "label", last->label);
    rp__add_str_or_null(sec, "program", last->program);
    cJSON_AddNumberToObject(sec, "snapshots", (double)n);
    cJSON_AddNumberToObject(sec, "floor_bytes",
                            sig6(ml_trend_floor((double)last->bytes)));
    cJSON_AddItemToObject(sec, "first", rp__snap_json(first));
    cJSON_AddItemToObject(sec, "last", rp__snap_json(last));
    if (rp__memory_json(sn, n, sec, NULL) != 0) {
        grow_free(&g);
        return rp__fail(c, -ENOMEM, "out of memory");
    }
    cJSON *arr = cJSON_AddArrayToObject(sec, "types");
    for (size_t i = 0; arr != NULL && i < rows; i++) {
        struct series *s = &g.v[i];
        const char *name;
        size_t len;
        cJSON *o = cJSON_CreateObject(), *ser;

        rc = st_type_name(c->r, s->tid, &name, &len);
        if (rc != 0)
            break;
        rp__add_strn(o, "type", name, len);
        cJSON_AddNumberToObject(o, "count_before", (double)s->count[0]);
        cJSON_AddNumberToObject(o, "count_after", (double)s->count[n - 1]);
        cJSON_AddNumberToObject(o, "bytes_before", (double)s->bytes[0]);
        cJSON_AddNumberToObject(o, "bytes_after", (double)s->bytes[n - 1]);
        cJSON_AddBoolToObject(o, "suspect", s->verdict == ML_VERDICT_SUSPECT);
        cJSON_AddStringToObject(o, "verdict", ml_verdict_name(s->verdict));
        cJSON_AddNumberToObject(o, "score", sig6(count ? s->tc.z : s->tb.z));
        cJSON *tr = cJSON_AddObjectToObject(o, "trend");
        cJSON_AddItemToObject(tr, "count", rp__trend_json(&s->tc));
        cJSON_AddItemToObject(tr, "bytes", rp__trend_json(&s->tb));
        ser = cJSON_AddArrayToObject(o, "series");
        for (size_t k = 0; ser != NULL && k < n; k++)
            cJSON_AddItemToArray(ser, cJSON_CreateNumber(
                (double)(count ? s->count[k] : s->bytes[k])));
        cJSON_AddItemToArray(arr, o);
    }
    grow_free(&g);
    return rc;
}

struct growth_args {
    int count, sort;
    uint64_t top;
};

static int
growth_section(struct ctx *c, const struct snap *const *sn, size_t n,
               void *arg, cJSON *sec)
{
    const struct growth_args *a = arg;
    int rc = rp__growth_process(c, sn, n, a->count, a->sort, a->top, sec);

    if (rc == 0 && rp__births_growth(c, sn, n, sec) != 0)
        rc = rp__fail(c, -ENOMEM, "out of memory");
    return rc;
}

int
rp__cmd_growth(struct ctx *c, const cJSON *req, cJSON *out)
{
    struct snaplist l;
    struct growth_args a;
    uint64_t since, until;
    int rc;

    if ((rc = rp__arg_by(c, req, &a.count)) != 0 ||
        (rc = rp__arg_sort(c, req, &a.sort)) != 0)
        return rc;
    if (rp__arg_u64(req, "since", 0, &since) < 0 ||
        rp__arg_u64(req, "until", 0, &until) < 0)
        return rp__fail(c, -EINVAL, "bad since/until");
    if (rp__arg_u64(req, "top", 10, &a.top) < 0)
        return rp__fail(c, -EINVAL, "--top must be a number");
    rc = rp__load_snaps(c, since, until, rp__arg_str(req, "process"), &l);
    if (rc != 0)
        return rc;
    cJSON_AddStringToObject(out, "by", a.count ? "count" : "size");
    cJSON_AddStringToObject(out, "sort", sort_names[a.sort]);
    cJSON_AddNumberToObject(out, "alpha", ML_TREND_ALPHA);
    cJSON_AddNumberToObject(out, "min_snapshots", ML_TREND_MIN_N);
    rc = rp__each_process(c, &l, cJSON_AddArrayToObject(out, "processes"),
                          growth_section, &a);
    rp__snaps_free(&l);
    return rc;
}
