/* SPDX-License-Identifier: MIT
 *
 * store_tool.c -- a test and benchmark helper over the store API: print
 * what the store holds as JSON for the tests to compare with
 * meliae.loader, and what a reader cannot see (records not "complete").
 * Not installed; meliae-cli is the user's tool (`meliae-cli --store DIR
 * import FILE` stores a dump file).
 *
 *   store_tool list DIR                 -> one JSON object per snapshot
 *   store_tool summary DIR ID           -> {"type": [count, bytes], ...}
 *   store_tool referrers DIR ID ADDR    -> [parent address, ...]
 *   store_tool pending DIR              -> number of records not "complete"
 *   store_tool size DIR                 -> bytes of the data file in use
 *                                          (st_size: data.mdb's own size is
 *                                          the map's, sparse)
 *   store_tool import DIR FILE          -> stores a dump file; prints the
 *                                          commit's time and memory (JSON)
 *   store_tool synth DIR KIND N         -> the same for a synthetic heap:
 *                                          dict (one dict of N entries), list,
 *                                          set (N ints), shared (N objects
 *                                          referring to one), heap (N small)
 *   store_tool forget-retained DIR ID   -> deletes snapshot ID's retained
 *                                          records (store/retained.h): a
 *                                          snapshot from before them
 *   store_tool retained DIR ID          -> "stored" or "none"
 *
 * import and synth time st_commit alone (the ingest before it is not
 * counted) and sample the process's RssAnon while it runs: "rss_anon_kib"
 * is the peak less the value just before the commit (bench/bench_commit.py).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "ml-common.h"
#include "../unit/test_rss.h"
#include "retained.h"
#include "store-int.h"
#include "dumpline.h"

static int
die(const char *what, int rc, const char *detail)
{
    fprintf(stderr, "store_tool: %s: %s\n", what,
            detail && detail[0] ? detail : st_strerror(rc));
    return 1;
}

static int
open_ro(const char *dir, struct st_store **s, struct st_read **r)
{
    struct st_options ro = { .flags = ST_RDONLY };
    char err[256] = "";
    int rc = st_open(s, dir, &ro, err, sizeof err);

    if (rc != 0)
        return die(dir, rc, err);
    rc = st_read_begin(*s, r);
    if (rc != 0)
        return die("read", rc, NULL);
    return 0;
}

static int
list_cb(void *ctx, const struct st_snapinfo *si)
{
    (void)ctx;
    printf("{\"id\": %llu, \"objects\": %llu, \"bytes\": %llu, \"pid\": %d, "
           "\"trusted\": %s, \"uid\": %u, \"graph\": %s, \"label\": ",
           (unsigned long long)si->id, (unsigned long long)si->objects,
           (unsigned long long)si->bytes, (int)si->pid,
           si->trusted ? "true" : "false", (unsigned)si->uid,
           si->has_graph ? "true" : "false");
    if (si->label) {
        cJSON *x = cJSON_CreateString(si->label);
        char *t = cJSON_PrintUnformatted(x);
        printf("%s", t);
        free(t);
        cJSON_Delete(x);
    } else {
        printf("null");
    }
    printf("}\n");
    return 0;
}

static int
summary_cb(void *ctx, const struct st_typesum *t)
{
    cJSON *o = ctx, *row = cJSON_CreateArray();
    char name[ST_TYPE_NAME_MAX + 1];

    memcpy(name, t->name, t->name_len);
    name[t->name_len] = '\0';
    cJSON_AddItemToArray(row, cJSON_CreateNumber((double)t->count));
    cJSON_AddItemToArray(row, cJSON_CreateNumber((double)t->bytes));
    cJSON_AddItemToObject(o, name, row);
    return 0;
}

static int
ref_cb(void *ctx, const struct st_object *o)
{
    printf("%s%llu", *(int *)ctx ? ", " : "", (unsigned long long)o->address);
    *(int *)ctx = 1;
    return 0;
}

static int
cmd_pending(const char *dir)
{
    struct st_store *s;
    struct st_read *r;
    MDB_txn *txn;
    MDB_cursor *c;
    MDB_val k, v;
    int n = 0, rc;

    if (open_ro(dir, &s, &r) != 0)
        return 1;
    st_read_end(r);
    mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    mdb_cursor_open(txn, s->snaps, &c);
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
        if (memmem(v.mv_data, v.mv_size, "\"complete\"", 10) == NULL)
            n++;
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    printf("%d\n", n);
    st_close(s);
    return 0;
}

/* ---- commit timing ---- */

/* CPU seconds of the calling thread (RUSAGE_THREAD) or of the process
 * (RUSAGE_SELF): figures a busy machine does not blur as much as the
 * wall clock.  The commit runs a thread of its own beside the caller's,
 * so both are reported. */
static double
cpu_s(int who)
{
    struct rusage ru;

    getrusage(who, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Commits an ended ingest, timed, and prints the figures. */
static int
timed_commit(const char *dir, struct st_ingest *in, uint64_t n,
             double ingest_s)
{
    struct st_source src = { .values = "truncated", .mode = "file",
                             .label = "store_tool", .program = dir };
    struct st_store *s;
    char err[256] = "";
    struct rss_watch rw;
    uint64_t id = 0;
    double t0, t1, c0, c1, a0, a1;
    long grew;
    int rc = st_open(&s, dir, NULL, err, sizeof err);

    if (rc != 0)
        return die(dir, rc, err);
    if ((rc = rss_watch_start(&rw)) != 0) {
        st_close(s);
        return die("sampler thread", -rc, "");
    }
    t0 = now_s();
    a0 = cpu_s(RUSAGE_SELF);
    c0 = cpu_s(RUSAGE_THREAD);
    rc = st_commit(s, in, &src, &id);
    c1 = cpu_s(RUSAGE_THREAD);
    t1 = now_s();
    grew = rss_watch_stop(&rw);
    a1 = cpu_s(RUSAGE_SELF) - rw.cpu_s;
    if (rc != 0) {
        st_close(s);
        return die("commit", rc, st_ingest_error(in));
    }
    printf("{\"id\": %" PRIu64 ", \"objects\": %" PRIu64 ", \"ingest_s\": %.3f, "
           "\"commit_s\": %.3f, \"commit_cpu_s\": %.3f, "
           "\"commit_cpu_all_s\": %.3f, \"rss_anon_kib\": %ld, "
           "\"rss_anon_base_kib\": %ld, \"store_bytes\": %" PRIu64 "}\n",
           id, n, ingest_s, t1 - t0, c1 - c0, a1 - a0,
           grew, rw.before, st_size(s));
    st_close(s);
    return 0;
}

static int
cmd_import(const char *dir, const char *path)
{
    struct ml_dumpparser p;
    struct ml_dumpline l;
    struct st_ingest *in = NULL;
    uint64_t n = 0, bytes = 0, lineno = 0;
    char *line = NULL, tmp[4096];
    size_t cap = 0;
    ssize_t len;
    double t0 = now_s();
    FILE *f = fopen(path, "re");
    int rc;

    if (f == NULL)
        return die(path, -errno, NULL);
    /* the spool goes where the store's would: DIR/tmp (st_open makes it) */
    {
        struct st_store *s;
        char err[256] = "";

        rc = st_open(&s, dir, NULL, err, sizeof err);
        if (rc != 0)
            return die(dir, rc, err);
        snprintf(tmp, sizeof tmp, "%s", st_tmpdir(s));
        st_close(s);
    }
    ml_dumpparser_init(&p);
    rc = st_ingest_new(&in, tmp, 1);
    if (rc != 0)
        return die("ingest", rc, NULL);
    st_ingest_keep_first(in);
    while (rc == 0 && (len = getline(&line, &cap, f)) > 0) {
        lineno++;
        if (len == 1 || (lineno == 1 && line[0] != '{'))
            continue;
        rc = ml_dumpline_parse(&p, line, (size_t)len, &l);
        if (rc != 0 || l.kind != ML_LINE_OBJECT)
            continue;
        rc = st_ingest_object(in, &l);
        n++;
        bytes += l.size;
    }
    free(line);
    fclose(f);
    ml_dumpparser_free(&p);
    if (rc == 0)
        rc = st_ingest_end(in, n, bytes);
    if (rc != 0) {
        fprintf(stderr, "store_tool: line %" PRIu64 ": %s\n", lineno,
                st_ingest_error(in));
        st_ingest_free(in);
        return 1;
    }
    rc = timed_commit(dir, in, n, now_s() - t0);
    st_ingest_free(in);
    return rc;
}

/* Synthetic heaps: addresses 16 bytes apart from a base, as a heap's. */
#define SYN_BASE 0x7f0000000000ull

static int
syn_put(struct st_ingest *in, uint64_t addr, const char *type, uint64_t size,
        const uint64_t *refs, size_t nrefs, uint64_t *n, uint64_t *bytes)
{
    struct ml_dumpline l = { .kind = ML_LINE_OBJECT, .address = addr,
                             .type = type, .type_len = strlen(type),
                             .size = size, .refs = refs, .nrefs = nrefs };

    if (strcmp(type, "module") == 0) {
        l.has_name = 1;
        l.name = "__main__";
        l.name_len = 8;
    }
    (*n)++;
    *bytes += size;
    return st_ingest_object(in, &l);
}

static int
cmd_synth(const char *dir, const char *kind, uint64_t count)
{
    struct st_ingest *in = NULL;
    struct st_store *s;
    char err[256] = "", tmp[4096];
    uint64_t n = 0, bytes = 0, *refs = NULL, mod = SYN_BASE - 4096;
    uint64_t big = SYN_BASE - 8192;        /* the container */
    size_t nrefs = strcmp(kind, "dict") == 0 ? 2 * count : count;
    double t0 = now_s();
    int rc;

    rc = st_open(&s, dir, NULL, err, sizeof err);
    if (rc != 0)
        return die(dir, rc, err);
    snprintf(tmp, sizeof tmp, "%s", st_tmpdir(s));
    st_close(s);
    rc = st_ingest_new(&in, tmp, 0);
    if (rc != 0)
        return die("ingest", rc, NULL);
    if (strcmp(kind, "heap") == 0) {
        /* N small objects, each referring to two others and to a type */
        uint64_t r[3], x = 88172645463325252ull;

        for (uint64_t i = 0; rc == 0 && i < count; i++) {
            for (int k = 0; k < 2; k++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                r[k] = SYN_BASE + 16 * (x % count);
            }
            r[2] = mod;
            rc = syn_put(in, SYN_BASE + 16 * i, i % 3 ? "str" : "tuple",
                         48 + i % 64, r, 3, &n, &bytes);
        }
        if (rc == 0)
            rc = syn_put(in, mod, "module", 72, NULL, 0, &n, &bytes);
    } else if (strcmp(kind, "shared") == 0) {
        uint64_t r = mod;

        for (uint64_t i = 0; rc == 0 && i < count; i++)
            rc = syn_put(in, SYN_BASE + 16 * i, "Leak", 48, &r, 1, &n, &bytes);
        if (rc == 0)
            rc = syn_put(in, mod, "module", 72, NULL, 0, &n, &bytes);
    } else if (strcmp(kind, "dict") == 0 || strcmp(kind, "list") == 0 ||
               strcmp(kind, "set") == 0) {
        refs = malloc(nrefs * sizeof *refs);
        if (refs == NULL)
            return die("synth", -ENOMEM, NULL);
        /* dict: key i (a str) then value i (an int), interleaved */
        for (size_t i = 0; i < nrefs; i++)
            refs[i] = SYN_BASE + 32 * i;
        rc = syn_put(in, mod, "module", 72, &big, 1, &n, &bytes);
        if (rc == 0)
            rc = syn_put(in, big, kind, 64 + 8 * nrefs, refs, nrefs, &n, &bytes);
        for (size_t i = 0; rc == 0 && i < nrefs; i++)
            rc = syn_put(in, refs[i], kind[0] == 'd' && i % 2 == 0 ? "str" : "int",
                         28, NULL, 0, &n, &bytes);
        free(refs);
    } else {
        fprintf(stderr, "store_tool: unknown heap kind %s\n", kind);
        st_ingest_free(in);
        return 2;
    }
    if (rc == 0)
        rc = st_ingest_end(in, n, bytes);
    if (rc != 0) {
        fprintf(stderr, "store_tool: %s\n", st_ingest_error(in));
        st_ingest_free(in);
        return 1;
    }
    rc = timed_commit(dir, in, n, now_s() - t0);
    st_ingest_free(in);
    return rc;
}

/* forget-retained: snapshot id's retained records deleted, as if it
 * were stored before they were (store/retained.h); retained: "stored" or
 * "none". */
static int
cmd_forget_retained(const char *dir, uint64_t id)
{
    struct st_store *s;
    MDB_txn *txn;
    char err[256] = "";
    int rc = st_open(&s, dir, NULL, err, sizeof err);

    if (rc != 0)
        return die(dir, rc, err);
    rc = st__write_txn(s, &txn);
    if (rc == 0 && (rc = st__del_prefix(txn, s->ret, id)) == 0
        && (rc = st__del_prefix(txn, s->rtypes, id)) == 0)
        rc = mdb_txn_commit(txn);
    else if (rc == 0)
        mdb_txn_abort(txn);
    st_close(s);
    return rc == 0 ? 0 : die("forget-retained", rc > 0 ? -rc : rc, NULL);
}

static int
cmd_retained(const char *dir, uint64_t id)
{
    struct st_store *s;
    struct st_read *r;
    struct st_retinfo info;
    int rc;

    if (open_ro(dir, &s, &r) != 0)
        return 1;
    rc = st_retained_info(r, id, &info);
    st_read_end(r);
    st_close(s);
    if (rc != 0 && rc != ML_ENOTFOUND)
        return die("retained", rc, NULL);
    printf("%s\n", rc == 0 ? "stored" : "none");
    return 0;
}

int
main(int argc, char **argv)
{
    struct st_store *s;
    struct st_read *r;
    int rc;

    if (argc == 3 && strcmp(argv[1], "pending") == 0)
        return cmd_pending(argv[2]);
    if (argc == 3 && strcmp(argv[1], "size") == 0) {
        if (open_ro(argv[2], &s, &r) != 0)
            return 1;
        st_read_end(r);
        printf("%" PRIu64 "\n", st_size(s));
        st_close(s);
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "import") == 0)
        return cmd_import(argv[2], argv[3]);
    if (argc == 4 && strcmp(argv[1], "forget-retained") == 0)
        return cmd_forget_retained(argv[2], strtoull(argv[3], NULL, 10));
    if (argc == 4 && strcmp(argv[1], "retained") == 0)
        return cmd_retained(argv[2], strtoull(argv[3], NULL, 10));
    if (argc == 5 && strcmp(argv[1], "synth") == 0)
        return cmd_synth(argv[2], argv[3], strtoull(argv[4], NULL, 10));
    if (argc == 3 && strcmp(argv[1], "list") == 0) {
        if (open_ro(argv[2], &s, &r) != 0)
            return 1;
        rc = st_snap_list(r, 0, 0, list_cb, NULL);
        st_read_end(r);
        st_close(s);
        return rc == 0 ? 0 : die("list", rc, NULL);
    }
    if (argc == 4 && strcmp(argv[1], "summary") == 0) {
        cJSON *o = cJSON_CreateObject();
        char *t;

        if (open_ro(argv[2], &s, &r) != 0)
            return 1;
        rc = st_summary(r, strtoull(argv[3], NULL, 10), summary_cb, o);
        st_read_end(r);
        st_close(s);
        if (rc != 0)
            return die("summary", rc, NULL);
        t = cJSON_PrintUnformatted(o);
        printf("%s\n", t);
        free(t);
        cJSON_Delete(o);
        return 0;
    }
    if (argc == 5 && strcmp(argv[1], "referrers") == 0) {
        int any = 0;

        if (open_ro(argv[2], &s, &r) != 0)
            return 1;
        printf("[");
        rc = st_referrers(r, strtoull(argv[3], NULL, 10),
                          strtoull(argv[4], NULL, 0), ref_cb, &any);
        printf("]\n");
        st_read_end(r);
        st_close(s);
        return rc == 0 ? 0 : die("referrers", rc, NULL);
    }
    fprintf(stderr, "usage: store_tool list DIR | "
            "summary DIR ID | referrers DIR ID ADDR | pending DIR | size DIR | "
            "import DIR FILE | synth DIR dict|list|set|shared|heap N | "
            "forget-retained DIR ID | retained DIR ID\n");
    return 2;
}
