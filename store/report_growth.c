/* SPDX-License-Identifier: MIT
 *
 * report_growth.c -- the "growth" answer (report.h, docs/cli-json.md):
 * for each process, every type's count or bytes over the process's
 * snapshots in the window, largest growth first.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report-int.h"

/* One type's series over a process's snapshots in the window. */
struct series {
    uint32_t tid;
    uint64_t *count, *bytes;    /* [nsnaps] */
    int64_t delta;
    int suspect;
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

    if (x->delta != y->delta)
        return x->delta < y->delta ? 1 : -1;
    return x->tid < y->tid ? -1 : x->tid > y->tid;
}

/* One process's section of a growth answer. */
static int
growth_process(struct ctx *c, const struct snap *const *sn, size_t n,
               int count, uint64_t top, cJSON *sec)
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
    for (size_t i = 0; i < g.n; i++) {
        struct series *s = &g.v[i];
        const uint64_t *m = count ? s->count : s->bytes;

        s->delta = (int64_t)(m[n - 1] - m[0]);
        s->suspect = n >= 3;
        for (size_t k = 1; k < n && s->suspect; k++)
            s->suspect = m[k] > m[k - 1];
    }
    rp__sort(g.v, g.n, sizeof *g.v, series_cmp);

    const struct snap *first = sn[0], *last = sn[n - 1];
    snprintf(buf, sizeof buf, "%016" PRIx64, first->proc);
    cJSON_AddStringToObject(sec, "process", buf);
    cJSON_AddNumberToObject(sec, "pid", last->pid);
    if (last->label)
        cJSON_AddStringToObject(sec, "label", last->label);
    else
        cJSON_AddNullToObject(sec, "label");
    if (last->program)
        cJSON_AddStringToObject(sec, "program", last->program);
    else
        cJSON_AddNullToObject(sec, "program");
    cJSON_AddNumberToObject(sec, "snapshots", (double)n);
    cJSON_AddItemToObject(sec, "first", rp__snap_json(first));
    cJSON_AddItemToObject(sec, "last", rp__snap_json(last));
    cJSON *arr = cJSON_AddArrayToObject(sec, "types");
    for (size_t i = 0; arr != NULL && i < g.n && (top == 0 || i < top); i++) {
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
        cJSON_AddBoolToObject(o, "suspect", s->suspect);
        ser = cJSON_AddArrayToObject(o, "series");
        for (size_t k = 0; ser != NULL && k < n; k++)
            cJSON_AddItemToArray(ser, cJSON_CreateNumber(
                (double)(count ? s->count[k] : s->bytes[k])));
        cJSON_AddItemToArray(arr, o);
    }
    grow_free(&g);
    return rc;
}

int
rp__cmd_growth(struct ctx *c, const cJSON *req, cJSON *out)
{
    struct snaplist l;
    uint64_t since, until, top;
    const struct snap **sn = NULL;
    int count, rc;

    if ((rc = rp__arg_by(c, req, &count)) != 0)
        return rc;
    if (rp__arg_u64(req, "since", 0, &since) < 0 ||
        rp__arg_u64(req, "until", 0, &until) < 0)
        return rp__fail(c, -EINVAL, "bad since/until");
    if (rp__arg_u64(req, "top", 10, &top) < 0)
        return rp__fail(c, -EINVAL, "--top must be a number");
    rc = rp__load_snaps(c, since, until, rp__arg_str(req, "process"), &l);
    if (rc != 0)
        return rc;
    cJSON_AddStringToObject(out, "by", count ? "count" : "size");
    cJSON *procs = cJSON_AddArrayToObject(out, "processes");
    sn = malloc((l.n + 1) * sizeof *sn);
    char *done = calloc(l.n + 1, 1);
    if (sn == NULL || done == NULL || procs == NULL) {
        rc = rp__fail(c, -ENOMEM, "out of memory");
        goto out;
    }
    /* one section per process, in order of first appearance */
    for (size_t i = 0; i < l.n && rc == 0; i++) {
        size_t n = 0;

        if (done[i])
            continue;
        for (size_t k = i; k < l.n; k++)
            if (!done[k] && l.v[k].proc == l.v[i].proc) {
                done[k] = 1;
                sn[n++] = &l.v[k];
            }
        cJSON *sec = cJSON_CreateObject();
        cJSON_AddItemToArray(procs, sec);
        rc = growth_process(c, sn, n, count, top, sec);
    }
out:
    free(done);
    free(sn);
    rp__snaps_free(&l);
    return rc;
}
