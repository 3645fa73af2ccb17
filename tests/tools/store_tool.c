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
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ml-common.h"
#include "store-int.h"

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

int
main(int argc, char **argv)
{
    struct st_store *s;
    struct st_read *r;
    int rc;

    if (argc == 3 && strcmp(argv[1], "pending") == 0)
        return cmd_pending(argv[2]);
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
            "summary DIR ID | referrers DIR ID ADDR | pending DIR\n");
    return 2;
}
