/* SPDX-License-Identifier: MIT
 *
 * report.c -- meliae-cli's answers as JSON documents (report.h), from one
 * read transaction.  The document fields are docs/cli-json.md.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ml-common.h"
#include "report.h"
#include "utf8.h"

/* Objects a referrer walk visits before it gives up: bounds the time of
 * a walk through a heap where everything refers to everything. */
#define RP_WALK_MAX_NODES 200000

/* Longest referrer chain looked for by default. */
#define RP_DEFAULT_DEPTH 32

/* Characters of a value shown with an object. */
#define RP_VALUE_MAX 100

/* qsort and memcpy with an empty array: no NULL pointer reaches libc
 * (UBSan: "declared to never be null"). */
static void
sort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
    if (n > 1)
        qsort(base, n, size, cmp);
}

static void
copy(void *dst, const void *src, size_t n)
{
    if (n > 0)
        memcpy(dst, src, n);
}

struct ctx {
    struct st_read *r;
    char *err;
    size_t errlen;
};

static int
fail(struct ctx *c, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(struct ctx *c, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- request arguments ---- */

static const char *
arg_str(const cJSON *req, const char *k)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(req, k);

    return cJSON_IsString(x) ? x->valuestring : NULL;
}

static int
arg_u64(const cJSON *req, const char *k, uint64_t def, uint64_t *out)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(req, k);
    char *end;

    *out = def;
    if (x == NULL || cJSON_IsNull(x))
        return 0;
    if (cJSON_IsNumber(x)) {
        if (x->valuedouble < 0)
            return -EINVAL;
        *out = (uint64_t)x->valuedouble;
        return 0;
    }
    if (!cJSON_IsString(x) || x->valuestring[0] < '0' ||
        x->valuestring[0] > '9')
        return -EINVAL;
    errno = 0;                          /* decimal, or hex with 0x: no octal */
    if (x->valuestring[0] == '0' && (x->valuestring[1] == 'x' ||
                                     x->valuestring[1] == 'X'))
        *out = strtoull(x->valuestring + 2, &end, 16);
    else
        *out = strtoull(x->valuestring, &end, 10);
    return errno != 0 || *end != '\0' ? -EINVAL : 0;
}

/* ---- snapshots ---- */

struct snap {
    uint64_t id, time_ns, proc, objects, bytes;
    int32_t pid;
    uint32_t uid;
    int trusted, graph;
    char *label, *program;
};

struct snaplist {
    struct snap *v;
    size_t n, cap;
};

static void
snaps_free(struct snaplist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].label);
        free(l->v[i].program);
    }
    free(l->v);
}

static int
snaps_add(void *arg, const struct st_snapinfo *si)
{
    struct snaplist *l = arg;
    struct snap *s;

    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        void *p = realloc(l->v, cap * sizeof *l->v);

        if (p == NULL)
            return -ENOMEM;
        l->v = p;
        l->cap = cap;
    }
    s = &l->v[l->n];
    s->id = si->id;
    s->time_ns = si->time_ns;
    s->proc = si->proc;
    s->objects = si->objects;
    s->bytes = si->bytes;
    s->pid = si->pid;
    s->uid = si->uid;
    s->trusted = si->trusted;
    s->graph = si->has_graph;
    s->label = si->label ? strdup(si->label) : NULL;
    s->program = si->program ? strdup(si->program) : NULL;
    if ((si->label && !s->label) || (si->program && !s->program)) {
        free(s->label);
        free(s->program);
        return -ENOMEM;
    }
    l->n++;
    return 0;
}

/* Does snapshot s belong to the process selector sel: a pid, a label, a
 * program or its last path component? */
static int
sel_match(const struct snap *s, const char *sel)
{
    const char *base;
    char *end;
    long pid;

    if (sel == NULL || sel[0] == '\0')
        return 1;
    pid = strtol(sel, &end, 10);
    if (*end == '\0')
        return s->pid == pid;
    if (s->label && strcmp(s->label, sel) == 0)
        return 1;
    if (s->program == NULL)
        return 0;
    base = strrchr(s->program, '/');
    return strcmp(s->program, sel) == 0 ||
           (base != NULL && strcmp(base + 1, sel) == 0);
}

static int
load_snaps(struct ctx *c, uint64_t since, uint64_t until, const char *sel,
           struct snaplist *l)
{
    struct snaplist all = { 0 };
    int rc = st_snap_list(c->r, since, until, snaps_add, &all);

    memset(l, 0, sizeof *l);
    if (rc != 0) {
        snaps_free(&all);
        return fail(c, rc, "listing snapshots: %s", st_strerror(rc));
    }
    if (sel == NULL || sel[0] == '\0') {
        *l = all;
        return 0;
    }
    /* keep the matching ones, in place */
    size_t k = 0;
    for (size_t i = 0; i < all.n; i++) {
        if (sel_match(&all.v[i], sel)) {
            all.v[k++] = all.v[i];
        } else {
            free(all.v[i].label);
            free(all.v[i].program);
        }
    }
    all.n = k;
    *l = all;
    if (k == 0 && (since != 0 || until != 0)) {
        /* none in the window: fine if the process exists at all */
        struct snaplist any;
        int rc2 = load_snaps(c, 0, 0, sel, &any);

        if (rc2 == 0)
            snaps_free(&any);
        if (rc2 != ML_ENOTFOUND)
            return rc2;
        snaps_free(l);
        memset(l, 0, sizeof *l);
        return rc2;
    }
    if (k == 0) {
        snaps_free(l);
        memset(l, 0, sizeof *l);
        return fail(c, ML_ENOTFOUND, "no snapshots of process \"%s\" (a pid, "
                    "a label or a program)", sel);
    }
    return 0;
}

/* A snapshot reference: an id, "latest" or "latest~N" (within sel). */
static int
resolve(struct ctx *c, const struct snaplist *l, const char *ref,
        const char *sel, const struct snap **out)
{
    char *end;

    if (ref == NULL || ref[0] == '\0')
        return fail(c, -EINVAL, "a snapshot is needed (an id, latest or "
                    "latest~N)");
    if (strncmp(ref, "latest", 6) == 0) {
        unsigned long back = 0;

        if (ref[6] == '~') {
            if (ref[7] < '0' || ref[7] > '9')
                return fail(c, -EINVAL, "bad snapshot reference \"%s\" "
                            "(use latest~N)", ref);
            errno = 0;
            back = strtoul(ref + 7, &end, 10);
            if (errno != 0 || end == ref + 7 || *end != '\0')
                return fail(c, -EINVAL, "bad snapshot reference \"%s\" "
                            "(use latest~N)", ref);
        } else if (ref[6] != '\0') {
            return fail(c, -EINVAL, "bad snapshot reference \"%s\"", ref);
        }
        if (back >= l->n)
            return fail(c, ML_ENOTFOUND, "no snapshot %s%s%s: %zu stored",
                        ref, sel ? " of " : "", sel ? sel : "", l->n);
        *out = &l->v[l->n - 1 - back];
        return 0;
    }
    errno = 0;
    uint64_t id = strtoull(ref, &end, 10);
    if (errno != 0 || end == ref || *end != '\0' || ref[0] == '-')
        return fail(c, -EINVAL, "bad snapshot reference \"%s\" (an id, "
                    "latest or latest~N)", ref);
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].id == id) {
            *out = &l->v[i];
            return 0;
        }
    return fail(c, ML_ENOTFOUND, "no snapshot %" PRIu64 "%s%s", id,
                sel ? " of " : "", sel ? sel : "");
}

static void
iso_time(uint64_t ns, char buf[40])
{
    time_t t = (time_t)(ns / 1000000000u);
    struct tm tm;

    gmtime_r(&t, &tm);
    size_t n = strftime(buf, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, 40 - n, ".%03uZ", (unsigned)(ns / 1000000u % 1000u));
}

static cJSON *
snap_json(const struct snap *s)
{
    cJSON *o = cJSON_CreateObject();
    char buf[40];

    if (o == NULL)
        return NULL;
    cJSON_AddNumberToObject(o, "id", (double)s->id);
    iso_time(s->time_ns, buf);
    cJSON_AddStringToObject(o, "time", buf);
    snprintf(buf, sizeof buf, "%" PRIu64, s->time_ns);
    cJSON_AddStringToObject(o, "time_ns", buf);
    cJSON_AddNumberToObject(o, "pid", s->pid);
    if (s->trusted)
        cJSON_AddNumberToObject(o, "uid", s->uid);
    else
        cJSON_AddNullToObject(o, "uid");
    cJSON_AddBoolToObject(o, "trusted", s->trusted);
    if (s->label)
        cJSON_AddStringToObject(o, "label", s->label);
    else
        cJSON_AddNullToObject(o, "label");
    if (s->program)
        cJSON_AddStringToObject(o, "program", s->program);
    else
        cJSON_AddNullToObject(o, "program");
    cJSON_AddNumberToObject(o, "objects", (double)s->objects);
    cJSON_AddNumberToObject(o, "bytes", (double)s->bytes);
    cJSON_AddBoolToObject(o, "graph", s->graph);
    return o;
}

/* Adds a string of n bytes (not NUL-terminated) to o. */
static void
add_strn(cJSON *o, const char *k, const char *s, size_t n)
{
    char *t = malloc(n + 1);

    if (t == NULL)
        return;
    memcpy(t, s, n);
    t[n] = '\0';
    cJSON_AddStringToObject(o, k, t);
    free(t);
}

static cJSON *
obj_json(const struct st_object *ob)
{
    cJSON *o = cJSON_CreateObject();

    if (o == NULL)
        return NULL;
    cJSON_AddNumberToObject(o, "address", (double)ob->address);
    add_strn(o, "type", ob->type, ob->type_len);
    cJSON_AddNumberToObject(o, "size", (double)ob->size);
    if (ob->name)
        add_strn(o, "name", ob->name, ob->name_len);
    else
        cJSON_AddNullToObject(o, "name");
    if (ob->has_len)
        cJSON_AddNumberToObject(o, "len", (double)ob->len);
    switch (ob->vkind) {
    case ML_VAL_STR:
    case ML_VAL_INT:
    case ML_VAL_FLOAT:
        add_strn(o, "value", ob->value,
                 ml_utf8_prefix(ob->value, ob->value_len, RP_VALUE_MAX));
        break;
    case ML_VAL_TRUE:
        cJSON_AddStringToObject(o, "value", "True");
        break;
    case ML_VAL_FALSE:
        cJSON_AddStringToObject(o, "value", "False");
        break;
    case ML_VAL_NULL:
        cJSON_AddStringToObject(o, "value", "None");
        break;
    case ML_VAL_NONE:
        break;
    }
    return o;
}

static cJSON *
answer(const char *cmd)
{
    cJSON *o = cJSON_CreateObject();

    if (o != NULL) {
        cJSON_AddNumberToObject(o, "schema_version", RP_SCHEMA_VERSION);
        cJSON_AddStringToObject(o, "command", cmd);
    }
    return o;
}

/* ---- snapshots ---- */

static int
cmd_snapshots(struct ctx *c, const cJSON *req, cJSON *out)
{
    struct snaplist l;
    uint64_t since, until;
    cJSON *arr;
    int rc;

    if (arg_u64(req, "since", 0, &since) < 0 || arg_u64(req, "until", 0, &until) < 0)
        return fail(c, -EINVAL, "bad since/until");
    rc = load_snaps(c, since, until, arg_str(req, "process"), &l);
    if (rc != 0)
        return rc;
    arr = cJSON_AddArrayToObject(out, "snapshots");
    for (size_t i = 0; arr != NULL && i < l.n; i++)
        cJSON_AddItemToArray(arr, snap_json(&l.v[i]));
    snaps_free(&l);
    return 0;
}

/* ---- summary ---- */

struct row {
    uint32_t tid;
    char *name;
    uint64_t count, bytes, max_size, max_addr;
};

struct rows {
    struct row *v;
    size_t n, cap;
};

static void
rows_free(struct rows *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->v[i].name);
    free(r->v);
}

static int
rows_add(void *arg, const struct st_typesum *t)
{
    struct rows *r = arg;

    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 128;
        void *p = realloc(r->v, cap * sizeof *r->v);

        if (p == NULL)
            return -ENOMEM;
        r->v = p;
        r->cap = cap;
    }
    struct row *w = &r->v[r->n];
    w->tid = t->tid;
    w->name = strndup(t->name, t->name_len);
    if (w->name == NULL)
        return -ENOMEM;
    w->count = t->count;
    w->bytes = t->bytes;
    w->max_size = t->max_size;
    w->max_addr = t->max_addr;
    r->n++;
    return 0;
}

static int
by_bytes(const void *a, const void *b)
{
    const struct row *x = a, *y = b;

    if (x->bytes != y->bytes)
        return x->bytes < y->bytes ? 1 : -1;
    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    return strcmp(x->name, y->name);
}

static int
by_count(const void *a, const void *b)
{
    const struct row *x = a, *y = b;

    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    if (x->bytes != y->bytes)
        return x->bytes < y->bytes ? 1 : -1;
    return strcmp(x->name, y->name);
}

/* "size" (the default) or "count". */
static int
arg_by(struct ctx *c, const cJSON *req, int *count)
{
    const char *by = arg_str(req, "by");

    *count = 0;
    if (by == NULL || strcmp(by, "size") == 0)
        return 0;
    if (strcmp(by, "count") == 0) {
        *count = 1;
        return 0;
    }
    return fail(c, -EINVAL, "--by must be size or count, not \"%s\"", by);
}

static int
cmd_summary(struct ctx *c, const cJSON *req, cJSON *out)
{
    struct snaplist l;
    struct rows rows = { 0 };
    const struct snap *s;
    uint64_t top, tc = 0, tb = 0;
    int count, rc;

    if ((rc = arg_by(c, req, &count)) != 0)
        return rc;
    if (arg_u64(req, "top", 20, &top) < 0)
        return fail(c, -EINVAL, "--top must be a number");
    rc = load_snaps(c, 0, 0, arg_str(req, "process"), &l);
    if (rc != 0)
        return rc;
    rc = resolve(c, &l, arg_str(req, "snap"), arg_str(req, "process"), &s);
    if (rc == 0) {
        rc = st_summary(c->r, s->id, rows_add, &rows);
        if (rc != 0)
            fail(c, rc, "snapshot %" PRIu64 ": %s", s->id, st_strerror(rc));
    }
    if (rc == 0) {
        sort(rows.v, rows.n, sizeof *rows.v, count ? by_count : by_bytes);
        cJSON_AddItemToObject(out, "snapshot", snap_json(s));
        for (size_t i = 0; i < rows.n; i++) {
            tc += rows.v[i].count;
            tb += rows.v[i].bytes;
        }
        cJSON_AddNumberToObject(out, "total_objects", (double)tc);
        cJSON_AddNumberToObject(out, "total_bytes", (double)tb);
        cJSON_AddNumberToObject(out, "total_types", (double)rows.n);
        cJSON_AddStringToObject(out, "by", count ? "count" : "size");
        cJSON *arr = cJSON_AddArrayToObject(out, "types");
        for (size_t i = 0; arr != NULL && i < rows.n && (top == 0 || i < top); i++) {
            cJSON *o = cJSON_CreateObject();

            cJSON_AddStringToObject(o, "type", rows.v[i].name);
            cJSON_AddNumberToObject(o, "count", (double)rows.v[i].count);
            cJSON_AddNumberToObject(o, "bytes", (double)rows.v[i].bytes);
            cJSON_AddNumberToObject(o, "max_size", (double)rows.v[i].max_size);
            cJSON_AddNumberToObject(o, "max_address", (double)rows.v[i].max_addr);
            cJSON_AddItemToArray(arr, o);
        }
    }
    rows_free(&rows);
    snaps_free(&l);
    return rc;
}

/* ---- growth ---- */

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
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 128;
        void *p = realloc(g->v, cap * sizeof *g->v);

        if (p == NULL)
            return NULL;
        g->v = p;
        g->cap = cap;
    }
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
        return fail(c, rc, "reading summaries: %s", st_strerror(rc));
    }
    for (size_t i = 0; i < g.n; i++) {
        struct series *s = &g.v[i];
        const uint64_t *m = count ? s->count : s->bytes;

        s->delta = (int64_t)(m[n - 1] - m[0]);
        s->suspect = n >= 3;
        for (size_t k = 1; k < n && s->suspect; k++)
            s->suspect = m[k] > m[k - 1];
    }
    sort(g.v, g.n, sizeof *g.v, series_cmp);

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
    cJSON_AddItemToObject(sec, "first", snap_json(first));
    cJSON_AddItemToObject(sec, "last", snap_json(last));
    cJSON *arr = cJSON_AddArrayToObject(sec, "types");
    for (size_t i = 0; arr != NULL && i < g.n && (top == 0 || i < top); i++) {
        struct series *s = &g.v[i];
        const char *name;
        size_t len;
        cJSON *o = cJSON_CreateObject(), *ser;

        rc = st_type_name(c->r, s->tid, &name, &len);
        if (rc != 0)
            break;
        add_strn(o, "type", name, len);
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

static int
cmd_growth(struct ctx *c, const cJSON *req, cJSON *out)
{
    struct snaplist l;
    uint64_t since, until, top;
    const struct snap **sn = NULL;
    int count, rc;

    if ((rc = arg_by(c, req, &count)) != 0)
        return rc;
    if (arg_u64(req, "since", 0, &since) < 0 || arg_u64(req, "until", 0, &until) < 0)
        return fail(c, -EINVAL, "bad since/until");
    if (arg_u64(req, "top", 10, &top) < 0)
        return fail(c, -EINVAL, "--top must be a number");
    rc = load_snaps(c, since, until, arg_str(req, "process"), &l);
    if (rc != 0)
        return rc;
    cJSON_AddStringToObject(out, "by", count ? "count" : "size");
    cJSON *procs = cJSON_AddArrayToObject(out, "processes");
    sn = malloc((l.n + 1) * sizeof *sn);
    char *done = calloc(l.n + 1, 1);
    if (sn == NULL || done == NULL || procs == NULL) {
        rc = fail(c, -ENOMEM, "out of memory");
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
    snaps_free(&l);
    return rc;
}

/* ---- diff ---- */

static int
is_root_type(const struct st_object *o)
{
    return o->type_len == 6 && memcmp(o->type, "module", 6) == 0;
}

struct aside {                  /* snapshot a, for membership tests */
    uint64_t *addr;             /* sorted */
    uint32_t *oid;              /* parallel to addr */
    uint32_t *tid;              /* by oid */
    uint64_t *size;             /* by oid */
    uint8_t *seen;              /* by oid: matched in b */
    size_t n, cap, nobj;
};

struct bside {
    struct aside *a;
    uint8_t *isnew;             /* by oid */
    uint32_t *tid;              /* by oid */
    uint64_t *size;             /* by oid */
    uint32_t *holder;           /* by oid: first old parent, else first */
    size_t nobj;
    uint64_t nnew, bnew;
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

static int
b_obj(void *arg, const struct st_object *o)
{
    struct bside *b = arg;
    struct aside *a = b->a;
    size_t lo = 0, hi = a->n;

    if (o->oid >= b->nobj)
        return ML_ECORRUPT;
    b->tid[o->oid] = o->tid;
    b->size[o->oid] = o->size;
    b->holder[o->oid] = UINT32_MAX;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (a->addr[mid] < o->address)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < a->n && a->addr[lo] == o->address) {
        uint32_t ao = a->oid[lo];

        if (a->tid[ao] == o->tid && a->size[ao] == o->size) {
            a->seen[ao] = 1;
            return 0;
        }
    }
    b->isnew[o->oid] = 1;
    b->nnew++;
    b->bnew += o->size;
    return 0;
}

static int
b_par(void *arg, uint32_t child, const uint32_t *par, size_t n)
{
    struct bside *b = arg;

    if (child >= b->nobj || !b->isnew[child] || n == 0)
        return 0;
    b->holder[child] = par[0];
    for (size_t i = 0; i < n; i++)
        if (par[i] < b->nobj && !b->isnew[par[i]]) {
            b->holder[child] = par[i];
            break;
        }
    return 0;
}

/* New objects of one type held by one old holder, or (byt) by new
 * holders of one type: "1,760 new int held by 1,760 new Session". */
struct group {
    uint32_t tid, holder, htid;
    int byt;
    uint64_t count, bytes, holders;
};

static int
group_cmp(const void *x, const void *y)
{
    const struct group *a = x, *b = y;

    if (a->bytes != b->bytes)
        return a->bytes < b->bytes ? 1 : -1;
    if (a->tid != b->tid)
        return a->tid < b->tid ? -1 : 1;
    return a->holder < b->holder ? -1 : a->holder > b->holder;
}

static int
key_cmp(const void *x, const void *y)
{
    const struct group *a = x, *b = y;

    if (a->tid != b->tid)
        return a->tid < b->tid ? -1 : 1;
    if (a->byt != b->byt)
        return a->byt - b->byt;
    if (a->byt && a->htid != b->htid)
        return a->htid < b->htid ? -1 : 1;
    return a->holder < b->holder ? -1 : a->holder > b->holder;
}

static int
same_group(const struct group *a, const struct group *b)
{
    return a->tid == b->tid && a->byt == b->byt &&
           (a->byt ? a->htid == b->htid : a->holder == b->holder);
}

/* Among the referrers of oid (and, failing that, theirs): a module if
 * any, else the first object with a name.  UINT32_MAX if none. */
static uint32_t
find_owner(struct ctx *c, uint64_t id, uint32_t oid)
{
    uint32_t level[64], named = UINT32_MAX;
    size_t nl = 0;
    const uint32_t *par;
    size_t np;
    struct st_object o;

    if (st_parents(c->r, id, oid, &par, &np) != 0)
        return UINT32_MAX;
    for (size_t i = 0; i < np && nl < 64; i++)
        level[nl++] = par[i];
    for (int depth = 0; depth < 2; depth++) {
        uint32_t next[64];
        size_t nn = 0;

        for (size_t i = 0; i < nl; i++) {
            if (st_object_get(c->r, id, level[i], &o) != 0)
                continue;
            if (is_root_type(&o))
                return level[i];
            if (o.name != NULL && named == UINT32_MAX)
                named = level[i];
            if (depth == 0 && st_parents(c->r, id, level[i], &par, &np) == 0)
                for (size_t k = 0; k < np && nn < 64; k++)
                    next[nn++] = par[k];
        }
        if (named != UINT32_MAX)
            return named;
        copy(level, next, nn * sizeof *next);
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
    j = obj_json(&o);
    cJSON_AddBoolToObject(j, "new", isnew);
    if (o.name != NULL)
        return j;
    owner = find_owner(c, id, oid);
    if (owner != UINT32_MAX && st_object_get(c->r, id, owner, &o) == 0)
        cJSON_AddItemToObject(j, "owner", obj_json(&o));
    return j;
}

static int
object_diff(struct ctx *c, const struct snap *sa, const struct snap *sb,
            uint64_t top, cJSON *out)
{
    struct aside a = { 0 };
    struct bside b = { .a = &a };
    struct group *g = NULL;
    size_t ng = 0;
    int rc = -ENOMEM;

    a.nobj = a.cap = (size_t)sa->objects;
    b.nobj = (size_t)sb->objects;
    a.addr = malloc((a.cap + 1) * sizeof *a.addr);
    a.oid = malloc((a.cap + 1) * sizeof *a.oid);
    a.tid = malloc((a.nobj + 1) * sizeof *a.tid);
    a.size = malloc((a.nobj + 1) * sizeof *a.size);
    a.seen = calloc(a.nobj + 1, 1);
    b.isnew = calloc(b.nobj + 1, 1);
    b.tid = malloc((b.nobj + 1) * sizeof *b.tid);
    b.size = malloc((b.nobj + 1) * sizeof *b.size);
    b.holder = malloc((b.nobj + 1) * sizeof *b.holder);
    if (!a.addr || !a.oid || !a.tid || !a.size || !a.seen || !b.isnew ||
        !b.tid || !b.size || !b.holder)
        goto out;
    if ((rc = st_address_each(c->r, sa->id, a_addr, &a)) != 0 ||
        (rc = st_object_each(c->r, sa->id, a_obj, &a)) != 0 ||
        (rc = st_object_each(c->r, sb->id, b_obj, &b)) != 0 ||
        (rc = st_parents_each(c->r, sb->id, b_par, &b)) != 0) {
        fail(c, rc, "reading objects: %s", st_strerror(rc));
        goto out;
    }
    /* group the new objects by (type, holder): sort keys, then runs */
    g = malloc((b.nnew + 1) * sizeof *g);
    if (g == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    /* First by (type, holder).  Then the groups whose holder is new and
     * itself one of many new objects held alike (ints held by leaked
     * Sessions) are merged by the holder's type; a new holder that stands
     * alone (the cache's list, reallocated) keeps its own group. */
    for (size_t i = 0; i < b.nobj; i++)
        if (b.isnew[i])
            g[ng++] = (struct group){ b.tid[i], b.holder[i], 0, 0, 1,
                                      b.size[i], 1 };
    sort(g, ng, sizeof *g, key_cmp);
    size_t k = 0;
    for (size_t i = 0; i < ng; i++) {
        if (k > 0 && same_group(&g[k - 1], &g[i])) {
            g[k - 1].count++;
            g[k - 1].bytes += g[i].bytes;
        } else {
            g[k++] = g[i];
        }
    }
    ng = k;
    int merged = 0;
    /* decide on the sorted array first (bsearch), then re-key */
    uint8_t *roll = calloc(ng + 1, 1);
    if (roll == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < ng; i++) {
        uint32_t h = g[i].holder;

        if (h == UINT32_MAX || h >= b.nobj || !b.isnew[h])
            continue;
        struct group key = { .tid = b.tid[h], .holder = b.holder[h] };
        struct group *hg = bsearch(&key, g, ng, sizeof *g, key_cmp);
        roll[i] = hg != NULL && hg->count > 1;
    }
    for (size_t i = 0; i < ng; i++)
        if (roll[i]) {
            g[i].byt = 1;
            g[i].htid = b.tid[g[i].holder];
            merged = 1;
        }
    free(roll);
    if (merged) {
        sort(g, ng, sizeof *g, key_cmp);
        k = 0;
        for (size_t i = 0; i < ng; i++) {
            if (k > 0 && same_group(&g[k - 1], &g[i])) {
                g[k - 1].count += g[i].count;
                g[k - 1].bytes += g[i].bytes;
                g[k - 1].holders += g[i].holders;
            } else {
                g[k++] = g[i];
            }
        }
    }
    ng = k;
    sort(g, ng, sizeof *g, group_cmp);

    uint64_t ngone = 0, bgone = 0;
    for (size_t i = 0; i < a.nobj; i++)
        if (!a.seen[i]) {
            ngone++;
            bgone += a.size[i];
        }
    cJSON *nw = cJSON_AddObjectToObject(out, "new_objects");
    cJSON_AddNumberToObject(nw, "count", (double)b.nnew);
    cJSON_AddNumberToObject(nw, "bytes", (double)b.bnew);
    cJSON_AddNumberToObject(nw, "groups_total", (double)ng);
    cJSON *arr = cJSON_AddArrayToObject(nw, "groups");
    for (size_t i = 0; i < ng && (top == 0 || i < top); i++) {
        cJSON *o = cJSON_CreateObject();
        const char *name;
        size_t len;

        if (st_type_name(c->r, g[i].tid, &name, &len) == 0)
            add_strn(o, "type", name, len);
        cJSON_AddNumberToObject(o, "count", (double)g[i].count);
        cJSON_AddNumberToObject(o, "bytes", (double)g[i].bytes);
        if (g[i].holder == UINT32_MAX)
            cJSON_AddNullToObject(o, "holder");
        else
            cJSON_AddItemToObject(o, "holder", holder_json(c, sb->id, g[i].holder,
                                                           b.isnew[g[i].holder]));
        /* > 1: held by that many new objects of the holder's type, the
         * holder shown being one of them */
        cJSON_AddNumberToObject(o, "holders", (double)g[i].holders);
        cJSON_AddItemToArray(arr, o);
    }
    cJSON *gone = cJSON_AddObjectToObject(out, "gone_objects");
    cJSON_AddNumberToObject(gone, "count", (double)ngone);
    cJSON_AddNumberToObject(gone, "bytes", (double)bgone);
    rc = 0;
out:
    if (rc == -ENOMEM)
        fail(c, rc, "out of memory");
    free(g);
    free(a.addr);
    free(a.oid);
    free(a.tid);
    free(a.size);
    free(a.seen);
    free(b.isnew);
    free(b.tid);
    free(b.size);
    free(b.holder);
    return rc;
}

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
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 64;
        void *p = realloc(d->v, cap * sizeof *d->v);

        if (p == NULL)
            return -ENOMEM;
        d->v = p;
        d->cap = cap;
    }
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

static int
cmd_diff(struct ctx *c, const cJSON *req, cJSON *out)
{
    struct snaplist l;
    struct drows d = { 0 };
    const struct snap *sa, *sb;
    const char *sel = arg_str(req, "process");
    uint64_t top;
    int rc;

    if (arg_u64(req, "top", 10, &top) < 0)
        return fail(c, -EINVAL, "--top must be a number");
    rc = load_snaps(c, 0, 0, sel, &l);
    if (rc != 0)
        return rc;
    if ((rc = resolve(c, &l, arg_str(req, "a"), sel, &sa)) != 0 ||
        (rc = resolve(c, &l, arg_str(req, "b"), sel, &sb)) != 0)
        goto out;
    rc = st_type_deltas(c->r, sa->id, sb->id, drow_add, &d);
    if (rc != 0) {
        fail(c, rc, "reading summaries: %s", st_strerror(rc));
        goto out;
    }
    sort(d.v, d.n, sizeof *d.v, drow_cmp);
    cJSON_AddItemToObject(out, "a", snap_json(sa));
    cJSON_AddItemToObject(out, "b", snap_json(sb));
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
        rc = object_diff(c, sa, sb, top, out);
    } else {
        cJSON_AddNullToObject(out, "new_objects");
        cJSON_AddStringToObject(out, "note", "object-level diff needs both "
                                "graphs; retention dropped one");
    }
out:
    for (size_t i = 0; i < d.n; i++)
        free(d.v[i].name);
    free(d.v);
    snaps_free(&l);
    return rc;
}

/* ---- referrers ---- */

/* The object at the request's "address" in snapshot s. */
static int
arg_object(struct ctx *c, const cJSON *req, const struct snap *s,
           uint32_t *oid, uint64_t *addr)
{
    int rc;

    if (arg_u64(req, "address", 0, addr) < 0 || *addr == 0)
        return fail(c, -EINVAL, "bad address (a number: 140245010635328 or "
                    "0x7f8c2a1b2c40)");
    rc = st_oid_of(c->r, s->id, *addr, oid);
    if (rc == ML_ENOTFOUND)
        return fail(c, rc, "no object at 0x%" PRIx64 " in snapshot %" PRIu64,
                    *addr, s->id);
    if (rc == -ENODATA)
        return fail(c, ML_ENOTFOUND, "snapshot %" PRIu64 " has no object "
                    "graph any more (retention keeps the newest ones)", s->id);
    if (rc != 0)
        return fail(c, rc, "snapshot %" PRIu64 ": %s", s->id, st_strerror(rc));
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

static int
cmd_referrers(struct ctx *c, const cJSON *req, cJSON *out)
{
    struct snaplist l;
    struct visit v = { 0 };
    const struct snap *s;
    uint32_t *queue = NULL, *qdepth = NULL, *roots = NULL, *copy = NULL;
    size_t qn = 0, qcap = 0, qi = 0, nroots = 0, ccap = 0;
    uint64_t depth_max, chains, addr;
    uint32_t start;
    int rc, fresh, truncated = 0;
    const char *sel = arg_str(req, "process");

    if (arg_u64(req, "depth", RP_DEFAULT_DEPTH, &depth_max) < 0 || depth_max == 0)
        return fail(c, -EINVAL, "--depth must be a positive number");
    if (arg_u64(req, "chains", 3, &chains) < 0 || chains == 0)
        return fail(c, -EINVAL, "--chains must be a positive number");
    rc = load_snaps(c, 0, 0, sel, &l);
    if (rc != 0)
        return rc;
    if ((rc = resolve(c, &l, arg_str(req, "snap"), sel, &s)) != 0 ||
        (rc = arg_object(c, req, s, &start, &addr)) != 0)
        goto out;
    roots = malloc(chains * sizeof *roots);
    if (roots == NULL || visit_add(&v, start, UINT32_MAX, 0, &fresh) != 0) {
        rc = fail(c, -ENOMEM, "out of memory");
        goto out;
    }
    /* Breadth first over referrers: the first roots met end the shortest
     * chains.  A root is a module, or an object nothing refers to. */
    qcap = 1024;
    queue = malloc(qcap * sizeof *queue);
    qdepth = malloc(qcap * sizeof *qdepth);
    if (queue == NULL || qdepth == NULL) {
        rc = fail(c, -ENOMEM, "out of memory");
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
        if (rc == 0 && node != start && is_root_type(&o)) {
            roots[nroots++] = node;
            continue;
        }
        if (rc == 0)
            rc = st_parents(c->r, s->id, node, &par, &np);
        if (rc != 0) {
            fail(c, rc, "snapshot %" PRIu64 ": %s", s->id, st_strerror(rc));
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
                rc = fail(c, -ENOMEM, "out of memory");
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
                fail(c, rc, "out of memory");
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
                    rc = fail(c, -ENOMEM, "out of memory");
                    goto out;
                }
            }
            queue[qn] = copy[i];
            qdepth[qn++] = d + 1;
        }
    }
    cJSON_AddItemToObject(out, "snapshot", snap_json(s));
    {
        struct st_object o;

        if ((rc = st_object_get(c->r, s->id, start, &o)) != 0) {
            fail(c, rc, "%s", st_strerror(rc));
            goto out;
        }
        cJSON_AddItemToObject(out, "object", obj_json(&o));
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
                cJSON_AddItemToArray(chain, obj_json(&o));
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
    snaps_free(&l);
    return rc;
}

/* ---- show ---- */

static int
cmd_show(struct ctx *c, const cJSON *req, cJSON *out)
{
    struct snaplist l;
    const struct snap *s;
    struct st_object o;
    uint64_t *refs = NULL, limit, addr;
    uint32_t oid, *par = NULL;
    size_t nrefs = 0, np = 0;
    const uint32_t *pp;
    const char *sel = arg_str(req, "process");
    int rc;

    if (arg_u64(req, "limit", 50, &limit) < 0)
        return fail(c, -EINVAL, "--limit must be a number");
    rc = load_snaps(c, 0, 0, sel, &l);
    if (rc != 0)
        return rc;
    if ((rc = resolve(c, &l, arg_str(req, "snap"), sel, &s)) != 0 ||
        (rc = arg_object(c, req, s, &oid, &addr)) != 0)
        goto out;
    if ((rc = st_object_get(c->r, s->id, oid, &o)) != 0 ||
        (rc = st_parents(c->r, s->id, oid, &pp, &np)) != 0) {
        fail(c, rc, "%s", st_strerror(rc));
        goto out;
    }
    cJSON_AddItemToObject(out, "snapshot", snap_json(s));
    cJSON *obj = obj_json(&o);
    cJSON_AddItemToObject(out, "object", obj);
    nrefs = o.nrefs;
    refs = malloc((nrefs + 1) * sizeof *refs);
    par = malloc((np + 1) * sizeof *par);
    if (refs == NULL || par == NULL) {
        rc = fail(c, -ENOMEM, "out of memory");
        goto out;
    }
    copy(refs, o.refs, nrefs * sizeof *refs);
    copy(par, pp, np * sizeof *par);
    cJSON_AddNumberToObject(obj, "nrefs", (double)nrefs);
    cJSON_AddNumberToObject(obj, "nreferrers", (double)np);
    cJSON *ra = cJSON_AddArrayToObject(obj, "refs");
    for (size_t i = 0; i < nrefs && (limit == 0 || i < limit); i++) {
        uint32_t ro;

        if (st_oid_of(c->r, s->id, refs[i], &ro) == 0 &&
            st_object_get(c->r, s->id, ro, &o) == 0) {
            cJSON_AddItemToArray(ra, obj_json(&o));
        } else {
            cJSON *d = cJSON_CreateObject();     /* not in the snapshot */
            cJSON_AddNumberToObject(d, "address", (double)refs[i]);
            cJSON_AddNullToObject(d, "type");
            cJSON_AddItemToArray(ra, d);
        }
    }
    cJSON *pa = cJSON_AddArrayToObject(obj, "referrers");
    for (size_t i = 0; i < np && (limit == 0 || i < limit); i++)
        if (st_object_get(c->r, s->id, par[i], &o) == 0)
            cJSON_AddItemToArray(pa, obj_json(&o));
out:
    free(refs);
    free(par);
    snaps_free(&l);
    return rc;
}

/* ---- dispatch ---- */

static const struct {
    const char *name;
    int (*fn)(struct ctx *c, const cJSON *req, cJSON *out);
} cmds[] = {
    { "snapshots", cmd_snapshots },
    { "summary", cmd_summary },
    { "growth", cmd_growth },
    { "diff", cmd_diff },
    { "referrers", cmd_referrers },
    { "show", cmd_show },
};

int
rp_run(struct st_store *s, const cJSON *req, cJSON **out, char *err,
       size_t errlen)
{
    struct ctx c = { .err = err, .errlen = errlen };
    const char *cmd = arg_str(req, "cmd");
    cJSON *doc;
    int rc;

    *out = NULL;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (cmd == NULL)
        return fail(&c, -EINVAL, "request without \"cmd\"");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        if (strcmp(cmd, cmds[i].name) != 0)
            continue;
        doc = answer(cmd);
        if (doc == NULL)
            return fail(&c, -ENOMEM, "out of memory");
        rc = st_read_begin(s, &c.r);
        if (rc != 0) {
            cJSON_Delete(doc);
            return fail(&c, rc, "reading the store: %s", st_strerror(rc));
        }
        rc = cmds[i].fn(&c, req, doc);
        st_read_end(c.r);
        if (rc != 0) {
            if (err != NULL && err[0] == '\0')
                fail(&c, rc, "%s", st_strerror(rc));
            cJSON_Delete(doc);
            return rc;
        }
        *out = doc;
        return 0;
    }
    return fail(&c, -EINVAL, "unknown command \"%s\"", cmd);
}
