/* SPDX-License-Identifier: MIT
 *
 * query.c -- see query.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query.h"
#include "report.h"
#include "retained.h"
#include "utf8.h"

struct md_query *
md_query_new(struct st_store *store, uint64_t conn, cJSON *req,
             const struct rp_scope *scope)
{
    struct md_query *q = calloc(1, sizeof(*q));
    const cJSON *cmd;

    if (q == NULL) {
        cJSON_Delete(req);
        return NULL;
    }
    q->store = store;
    q->conn = conn;
    q->req = req;
    q->scope = *scope;
    cmd = cJSON_GetObjectItemCaseSensitive(req, "cmd");
    snprintf(q->cmd, sizeof(q->cmd), "%s",
             cJSON_IsString(cmd) ? cJSON_GetStringValue(cmd) : "");
    q->heavy = md_query_heavy(req);
    return q;
}

int
md_query_heavy(const cJSON *req)
{
    const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(req, "cmd");
    const char *s = cJSON_IsString(cmd) ? cJSON_GetStringValue(cmd) : "";

    if (strcmp(s, "dominators") == 0 || strcmp(s, "report") == 0)
        return 1;
    return strcmp(s, "top") == 0 &&
           cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "retained"));
}

/* q->text: doc serialized, as strict UTF-8, at most the scope's cap. */
static int
answer_text(struct md_query *q, const cJSON *doc)
{
    char *fixed;
    size_t n;
    int rc;

    if ((q->text = cJSON_PrintUnformatted(doc)) == NULL)
        goto out_nomem;
    q->len = strlen(q->text);
    if ((rc = ml_utf8_repair(q->text, q->len, &fixed, &n)) < 0)
        goto out_nomem;
    if (rc == 1) {              /* into cJSON's allocator: md_query_free */
        cJSON_free(q->text);
        q->text = cJSON_malloc(n + 1);
        if (q->text != NULL)
            memcpy(q->text, fixed, n + 1);
        free(fixed);
        if (q->text == NULL)
            goto out_nomem;
        q->len = n;
    }
    if (q->scope.max_answer != 0 && q->len > q->scope.max_answer) {
        snprintf(q->err, sizeof(q->err), "the answer is %zu MiB, over the "
                 "daemon's cap of %zu MiB; ask for less (--top, --since, "
                 "--process) or read the store with --store",
                 (q->len + (1u << 20) - 1) >> 20, q->scope.max_answer >> 20);
        cJSON_free(q->text);
        q->text = NULL;
        q->len = 0;
        return -E2BIG;
    }
    return 0;

out_nomem:
    cJSON_free(q->text);
    q->text = NULL;
    snprintf(q->err, sizeof(q->err), "daemon out of memory formatting the "
             "answer");
    return -ENOMEM;
}

void
md_query_run(struct md_query *q)
{
    uint64_t t0 = uv_hrtime();
    cJSON *doc = NULL;

    q->err[0] = '\0';
    /* -EAGAIN: the snapshot's retained sizes are being stored by the
     * commit's second step (store.h, st_commit2); the query waits for it
     * here, on its pool thread with no read open, then asks again and
     * reads them, rather than computing its own copy of the tree.  Each
     * try ends with a step that landed: a few are plenty. */
    for (int tries = 0;; tries++) {
        q->rc = rp_run_ex(q->store, q->req, &q->scope, &doc, q->err,
                          sizeof(q->err), &q->computed);
        if (q->rc != -EAGAIN || tries == 8)
            break;
        cJSON_Delete(doc);
        doc = NULL;
        q->waited_retained = 1;
        st_retained_wait(q->store);
    }
    cJSON_Delete(q->req);
    q->req = NULL;
    if (q->rc == 0)
        q->rc = answer_text(q, doc);
    /* A big document is freed here too, not on the loop, and its memory
     * given back: glibc keeps what is freed (one arena for all threads,
     * main.c; 300-600 MiB a wide query before: bench/RESULTS.md).  The
     * answer's text, one block over the mmap threshold, goes back when
     * it is freed once written. */
    cJSON_Delete(doc);
    malloc_trim(0);
    if (q->rc != 0 && q->err[0] == '\0')
        snprintf(q->err, sizeof(q->err), "%s", st_strerror(q->rc));
    q->code = q->rc == 0 ? MD_OK : md_query_code(q->rc);
    q->took_ns = uv_hrtime() - t0;
}

void
md_query_free(struct md_query *q)
{
    if (q == NULL)
        return;
    cJSON_Delete(q->req);
    cJSON_free(q->text);
    free(q);
}
