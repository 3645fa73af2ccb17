/* SPDX-License-Identifier: MIT
 *
 * report.c -- meliae-cli's answers as JSON documents (report.h), from one
 * read transaction.  The document fields are docs/cli-json.md.  This file
 * holds rp_run's dispatch, the helpers the commands share (report-int.h)
 * and the two small commands, snapshots and summary.  The others have a
 * file each: report_growth.c, report_diff.c, report_refs.c (referrers and
 * show).
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
#include "procfig.h"
#include "report-int.h"
#include "utf8.h"

/* Characters of a value shown with an object. */
#define RP_VALUE_MAX 100

/* memcpy with an empty array: no NULL pointer reaches libc (UBSan:
 * "declared to never be null"; mlsort.h is qsort's). */
void
rp__copy(void *dst, const void *src, size_t n)
{
    if (n > 0)
        memcpy(dst, src, n);
}

void *
rp__grow(void *v, size_t *cap, size_t n, size_t size, size_t first)
{
    size_t ncap;
    void *p;

    if (n < *cap)
        return v;
    ncap = *cap ? *cap * 2 : first;
    if ((p = realloc(v, ncap * size)) != NULL)
        *cap = ncap;
    return p;
}

int
rp__fail(struct ctx *c, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- request arguments ---- */

const char *
rp__arg_str(const cJSON *req, const char *k)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(req, k);

    return cJSON_IsString(x) ? x->valuestring : NULL;
}

int
rp__arg_u64(const cJSON *req, const char *k, uint64_t def, uint64_t *out)
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

/* "size" (the default) or "count". */
int
rp__arg_by(struct ctx *c, const cJSON *req, int *count)
{
    const char *by = rp__arg_str(req, "by");

    *count = 0;
    if (by == NULL || strcmp(by, "size") == 0)
        return 0;
    if (strcmp(by, "count") == 0) {
        *count = 1;
        return 0;
    }
    return rp__fail(c, -EINVAL, "--by must be size or count, not \"%s\"", by);
}

/* ---- snapshots ---- */

static void
snap_free(struct snap *s)
{
    free(s->label);
    free(s->program);
    free(s->file);
    free(s->content_hash);
}

void
rp__snaps_free(struct snaplist *l)
{
    for (size_t i = 0; i < l->n; i++)
        snap_free(&l->v[i]);
    free(l->v);
}

static int
snaps_add(void *arg, const struct st_snapinfo *si)
{
    struct snaplist *l = arg;
    struct snap *s;
    void *p = rp__grow(l->v, &l->cap, l->n, sizeof *l->v, 64);

    if (p == NULL)
        return -ENOMEM;
    l->v = p;
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
    s->procfig = si->procfig;
    s->label = si->label ? strdup(si->label) : NULL;
    s->program = si->program ? strdup(si->program) : NULL;
    s->file = si->file ? strdup(si->file) : NULL;
    s->content_hash = si->content_hash ? strdup(si->content_hash) : NULL;
    if ((si->label && !s->label) || (si->program && !s->program) ||
        (si->file && !s->file) || (si->content_hash && !s->content_hash)) {
        snap_free(s);
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

/* Is a snapshot (trusted, uid) in scope sc?  Only the kernel's uid
 * counts: a header claims a pid, a label, a program, never a uid. */
static int
scope_has(const struct rp_scope *sc, int trusted, uint32_t uid)
{
    if (sc == NULL || sc->all)
        return 1;
    return (trusted ? uid : sc->owner) == sc->uid;
}

static int
scope_match(const struct snap *s, const struct rp_scope *sc)
{
    return scope_has(sc, s->trusted, s->uid);
}

int
rp_scope_sees(const struct rp_scope *sc, const struct st_snapinfo *si)
{
    return scope_has(sc, si->trusted, si->uid);
}

int
rp_scope_request(const cJSON *req, struct rp_scope *sc, char *err,
                 size_t errlen)
{
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(req, "uid");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(req, "all_users");
    double d;

    if (a != NULL && !cJSON_IsNull(a) && !cJSON_IsBool(a)) {
        snprintf(err, errlen, "\"all_users\" must be true or false");
        return -EINVAL;
    }
    if (cJSON_IsTrue(a)) {
        if (u != NULL && !cJSON_IsNull(u)) {
            snprintf(err, errlen, "--uid and --all-users do not go together");
            return -EINVAL;
        }
        sc->all = 1;
        return 1;
    }
    if (u == NULL || cJSON_IsNull(u))
        return 0;
    d = cJSON_IsNumber(u) ? cJSON_GetNumberValue(u) : -1;
    if (!(d >= 0 && d <= 4294967294.0 && d == (double)(uint32_t)d)) {
        snprintf(err, errlen, "--uid must be a uid (0 to 4294967294)");
        return -EINVAL;
    }
    sc->all = 0;
    sc->uid = (uint32_t)d;
    return 1;
}

int
rp__budget(struct ctx *c, size_t bytes, const char *what)
{
    size_t cap = c->scope != NULL ? c->scope->max_answer : 0;

    c->est += bytes;
    if (cap == 0 || c->est <= cap)
        return 0;
    return rp__fail(c, -E2BIG, "%s: the answer would be about %zu MiB, over "
                    "the daemon's cap of %zu MiB; ask for less (--top, "
                    "--since, --process) or read the store with --store",
                    what, (c->est + (1u << 20) - 1) >> 20, cap >> 20);
}

int
rp__budget_rows(struct ctx *c, size_t n, uint64_t top, size_t row_bytes,
                const char *what)
{
    size_t rows = top == 0 || top > n ? n : (size_t)top;

    return rp__budget(c, rows * row_bytes, what);
}

int
rp__load_snaps(struct ctx *c, uint64_t since, uint64_t until,
               const char *sel, struct snaplist *l)
{
    struct snaplist all = { 0 };
    int rc = st_snap_list(c->r, since, until, snaps_add, &all);

    memset(l, 0, sizeof *l);
    if (rc != 0) {
        rp__snaps_free(&all);
        return rp__fail(c, rc, "listing snapshots: %s", st_strerror(rc));
    }
    if ((sel == NULL || sel[0] == '\0') && (c->scope == NULL || c->scope->all)) {
        *l = all;
        return 0;
    }
    /* keep the matching ones, in place */
    size_t k = 0;
    for (size_t i = 0; i < all.n; i++) {
        if (scope_match(&all.v[i], c->scope) && sel_match(&all.v[i], sel)) {
            all.v[k++] = all.v[i];
        } else {
            snap_free(&all.v[i]);
        }
    }
    all.n = k;
    *l = all;
    if (k == 0 && (since != 0 || until != 0)) {
        /* none in the window: fine if the process exists at all */
        struct snaplist any;
        int rc2 = rp__load_snaps(c, 0, 0, sel, &any);

        if (rc2 == 0)
            rp__snaps_free(&any);
        if (rc2 != ML_ENOTFOUND)
            return rc2;
        rp__snaps_free(l);
        memset(l, 0, sizeof *l);
        return rc2;
    }
    if (k == 0 && sel != NULL && sel[0] != '\0') {
        rp__snaps_free(l);
        memset(l, 0, sizeof *l);
        return rp__fail(c, ML_ENOTFOUND, "no snapshots of process \"%s\" "
                        "(a pid, a label or a program)", sel);
    }
    return 0;
}

int
rp__each_process(struct ctx *c, const struct snaplist *l, cJSON *procs,
                 rp_process_fn fn, void *arg)
{
    const struct snap **sn = malloc((l->n + 1) * sizeof *sn);
    char *done = calloc(l->n + 1, 1);
    int rc = 0;

    if (sn == NULL || done == NULL || procs == NULL) {
        rc = rp__fail(c, -ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < l->n && rc == 0; i++) {
        size_t n = 0;

        if (done[i])
            continue;
        for (size_t k = i; k < l->n; k++)
            if (!done[k] && l->v[k].proc == l->v[i].proc) {
                done[k] = 1;
                sn[n++] = &l->v[k];
            }
        cJSON *sec = cJSON_CreateObject();
        if (sec == NULL) {
            rc = rp__fail(c, -ENOMEM, "out of memory");
            break;
        }
        cJSON_AddItemToArray(procs, sec);
        rc = fn(c, sn, n, arg, sec);
    }
out:
    free(done);
    free(sn);
    return rc;
}

/* A snapshot reference: an id, "latest" or "latest~N" (within sel). */
const char *
rp__proc_text(const struct snap *s, char *buf, size_t n)
{
    snprintf(buf, n, "pid %" PRId32 "%s%s%s%s%s", s->pid,
             s->label ? " \"" : "", s->label ? s->label : "",
             s->label ? "\"" : "", s->program ? " " : "",
             s->program ? s->program : "");
    return buf;
}

/* --process SEL names one process when a snapshot is picked from its
 * latest: a label or a program that two processes share (or a pid the
 * kernel reused) is refused with the matches, not settled by whichever
 * stored last. */
static int
one_process(struct ctx *c, const struct snaplist *l, const char *sel)
{
    char list[1024], one[300], who[200];
    size_t k = 0, nproc = 0;

    if (sel == NULL || sel[0] == '\0')
        return 0;
    list[0] = '\0';
    for (size_t i = 0; i < l->n; i++) {
        size_t j = 0, last = i;

        while (j < i && l->v[j].proc != l->v[i].proc)
            j++;
        if (j < i)
            continue;               /* seen */
        for (size_t m = i; m < l->n; m++)
            if (l->v[m].proc == l->v[i].proc)
                last = m;
        nproc++;
        snprintf(one, sizeof one, "%s%s (snapshots %" PRIu64 "..%" PRIu64 ")",
                 k ? "; " : "", rp__proc_text(&l->v[i], who, sizeof who),
                 l->v[i].id, l->v[last].id);
        if (k + strlen(one) < sizeof list) {
            memcpy(list + k, one, strlen(one) + 1);
            k += strlen(one);
        }
    }
    if (nproc < 2)
        return 0;
    return rp__fail(c, -EINVAL, "--process \"%s\" matches %zu processes: %.*s; "
                    "name one by its pid, or a snapshot by its id", sel,
                    nproc, (int)k, list);
}

int
rp__resolve(struct ctx *c, const struct snaplist *l, const char *ref,
            const char *sel, const struct snap **out)
{
    char *end;

    if (ref == NULL || ref[0] == '\0')
        return rp__fail(c, -EINVAL, "a snapshot is needed (an id, latest or "
                        "latest~N)");
    if (strncmp(ref, "latest", 6) == 0) {
        unsigned long back = 0;

        if (ref[6] == '~') {
            if (ref[7] < '0' || ref[7] > '9')
                return rp__fail(c, -EINVAL, "bad snapshot reference "
                                "\"%s\" (use latest~N)", ref);
            errno = 0;
            back = strtoul(ref + 7, &end, 10);
            if (errno != 0 || end == ref + 7 || *end != '\0')
                return rp__fail(c, -EINVAL, "bad snapshot reference "
                                "\"%s\" (use latest~N)", ref);
        } else if (ref[6] != '\0') {
            return rp__fail(c, -EINVAL, "bad snapshot reference \"%s\"", ref);
        }
        int rc = one_process(c, l, sel);

        if (rc != 0)
            return rc;
        if (back >= l->n)
            return rp__fail(c, ML_ENOTFOUND, "no snapshot %s%s%s: %zu stored",
                            ref, sel ? " of " : "", sel ? sel : "", l->n);
        *out = &l->v[l->n - 1 - back];
        return 0;
    }
    errno = 0;
    uint64_t id = strtoull(ref, &end, 10);
    if (errno != 0 || end == ref || *end != '\0' || ref[0] == '-')
        return rp__fail(c, -EINVAL, "bad snapshot reference \"%s\" (an id, "
                        "latest or latest~N)", ref);
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].id == id) {
            *out = &l->v[i];
            return 0;
        }
    return rp__fail(c, ML_ENOTFOUND, "no snapshot %" PRIu64 "%s%s", id,
                    sel ? " of " : "", sel ? sel : "");
}

/* ---- JSON ---- */

static void
iso_time(uint64_t ns, char buf[40])
{
    time_t t = (time_t)(ns / 1000000000u);
    struct tm tm;

    gmtime_r(&t, &tm);
    size_t n = strftime(buf, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, 40 - n, ".%03uZ", (unsigned)(ns / 1000000u % 1000u));
}

void
rp__add_str_or_null(cJSON *o, const char *k, const char *s)
{
    if (s != NULL)
        cJSON_AddStringToObject(o, k, s);
    else
        cJSON_AddNullToObject(o, k);
}

cJSON *
rp__snap_json(const struct snap *s)
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
    rp__add_str_or_null(o, "label", s->label);
    rp__add_str_or_null(o, "program", s->program);
    rp__add_str_or_null(o, "file", s->file);
    rp__add_str_or_null(o, "content_hash", s->content_hash);
    cJSON_AddNumberToObject(o, "objects", (double)s->objects);
    cJSON_AddNumberToObject(o, "bytes", (double)s->bytes);
    cJSON_AddBoolToObject(o, "graph", s->graph);
    cJSON_AddItemToObject(o, "process", st_procfig_json(&s->procfig));
    return o;
}

/* Adds a string of n bytes (not NUL-terminated) to o. */
void
rp__add_strn(cJSON *o, const char *k, const char *s, size_t n)
{
    char *t = malloc(n + 1);

    if (t == NULL)
        return;
    memcpy(t, s, n);
    t[n] = '\0';
    cJSON_AddStringToObject(o, k, t);
    free(t);
}

cJSON *
rp__obj_json(const struct st_object *ob)
{
    cJSON *o = cJSON_CreateObject();

    if (o == NULL)
        return NULL;
    cJSON_AddNumberToObject(o, "address", (double)ob->address);
    rp__add_strn(o, "type", ob->type, ob->type_len);
    cJSON_AddNumberToObject(o, "size", (double)ob->size);
    if (ob->name)
        rp__add_strn(o, "name", ob->name, ob->name_len);
    else
        cJSON_AddNullToObject(o, "name");
    if (ob->has_len)
        cJSON_AddNumberToObject(o, "len", (double)ob->len);
    switch (ob->vkind) {
    case ML_VAL_STR:
    case ML_VAL_INT:
    case ML_VAL_FLOAT:
        rp__add_strn(o, "value", ob->value,
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

/* A heap root: a module.  Referrer chains end at one; diff names one
 * as the owner of an unnamed holder. */
int
rp__is_root_type(const struct st_object *o)
{
    /* a module (sys.modules holds it), or a thread's frame (its stack
     * holds the frame's locals: docs/dump-format.md) */
    return (o->type_len == 6 && memcmp(o->type, "module", 6) == 0)
        || (o->type_len == 14 && memcmp(o->type, "<thread frame>", 14) == 0);
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

    if (rp__arg_u64(req, "since", 0, &since) < 0 ||
        rp__arg_u64(req, "until", 0, &until) < 0)
        return rp__fail(c, -EINVAL, "bad since/until");
    rc = rp__load_snaps(c, since, until, rp__arg_str(req, "process"), &l);
    if (rc == 0)
        rc = rp__budget_rows(c, l.n, 0, 300, "snapshots");
    if (rc != 0) {
        rp__snaps_free(&l);
        return rc;
    }
    /* "content_hash": only the snapshots of that file (import's check
     * for a duplicate: a short answer, whatever the store holds) */
    const char *hash = rp__arg_str(req, "content_hash");
    arr = cJSON_AddArrayToObject(out, "snapshots");
    for (size_t i = 0; arr != NULL && i < l.n; i++)
        if (hash == NULL || (l.v[i].content_hash != NULL &&
                             strcmp(l.v[i].content_hash, hash) == 0))
            cJSON_AddItemToArray(arr, rp__snap_json(&l.v[i]));
    rp__snaps_free(&l);
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
    void *p = rp__grow(r->v, &r->cap, r->n, sizeof *r->v, 128);

    if (p == NULL)
        return -ENOMEM;
    r->v = p;
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

static int
cmd_summary(struct ctx *c, const cJSON *req, cJSON *out)
{
    struct snaplist l;
    struct rows rows = { 0 };
    const struct snap *s;
    uint64_t top, tc = 0, tb = 0;
    int count, rc;

    if ((rc = rp__arg_by(c, req, &count)) != 0)
        return rc;
    if (rp__arg_u64(req, "top", 20, &top) < 0)
        return rp__fail(c, -EINVAL, "--top must be a number");
    rc = rp__load_snaps(c, 0, 0, rp__arg_str(req, "process"), &l);
    if (rc != 0)
        return rc;
    rc = rp__resolve(c, &l, rp__arg_str(req, "snap"),
                     rp__arg_str(req, "process"), &s);
    if (rc == 0) {
        rc = st_summary(c->r, s->id, rows_add, &rows);
        if (rc != 0)
            rp__fail(c, rc, "snapshot %" PRIu64 ": %s", s->id,
                     st_strerror(rc));
    }
    if (rc == 0)
        rc = rp__budget_rows(c, rows.n, top, 100, "summary");
    if (rc == 0) {
        ml_sort(rows.v, rows.n, sizeof *rows.v, count ? by_count : by_bytes);
        cJSON_AddItemToObject(out, "snapshot", rp__snap_json(s));
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
    rp__snaps_free(&l);
    return rc;
}

/* ---- dispatch ---- */

static const struct {
    const char *name;
    int (*fn)(struct ctx *c, const cJSON *req, cJSON *out);
} cmds[] = {
    { "snapshots", cmd_snapshots },
    { "summary", cmd_summary },
    { "growth", rp__cmd_growth },
    { "diff", rp__cmd_diff },
    { "referrers", rp__cmd_referrers },
    { "show", rp__cmd_show },
    { "top", rp__cmd_top },
    { "dominators", rp__cmd_dominators },
    { "report", rp__cmd_report },
};

int
rp_run(struct st_store *s, const cJSON *req, const struct rp_scope *sc,
       cJSON **out, char *err, size_t errlen)
{
    return rp_run_ex(s, req, sc, out, err, errlen, NULL);
}

int
rp_run_ex(struct st_store *s, const cJSON *req, const struct rp_scope *sc,
          cJSON **out, char *err, size_t errlen, uint64_t *computed)
{
    struct ctx c = { .err = err, .errlen = errlen, .scope = sc };
    const char *cmd = rp__arg_str(req, "cmd");
    cJSON *doc;
    int rc;

    *out = NULL;
    if (computed != NULL)
        *computed = 0;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (cmd == NULL)
        return rp__fail(&c, -EINVAL, "request without \"cmd\"");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        if (strcmp(cmd, cmds[i].name) != 0)
            continue;
        doc = answer(cmd);
        if (doc == NULL)
            return rp__fail(&c, -ENOMEM, "out of memory");
        rc = st_read_begin(s, &c.r);
        if (rc != 0) {
            cJSON_Delete(doc);
            return rp__fail(&c, rc, "reading the store: %s", st_strerror(rc));
        }
        st_read_refs_max(c.r, 0);       /* only show wants refs (its own) */
        rc = cmds[i].fn(&c, req, doc);
        st_read_end(c.r);
        if (computed != NULL)
            *computed = c.computed;
        if (rc != 0) {
            if (err != NULL && err[0] == '\0')
                rp__fail(&c, rc, "%s", st_strerror(rc));
            cJSON_Delete(doc);
            return rc;
        }
        *out = doc;
        return 0;
    }
    return rp__fail(&c, -EINVAL, "unknown command \"%s\"", cmd);
}
