/* SPDX-License-Identifier: MIT
 *
 * query.c -- see query.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query.h"
#include "report.h"

struct md_query *
md_query_new(struct st_store *store, uint64_t conn, cJSON *req)
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

void
md_query_run(struct md_query *q)
{
    uint64_t t0 = uv_hrtime();
    cJSON *doc = NULL;

    q->err[0] = '\0';
    q->rc = rp_run(q->store, q->req, &doc, q->err, sizeof(q->err));
    cJSON_Delete(q->req);
    q->req = NULL;
    if (q->rc == 0) {
        q->text = cJSON_PrintUnformatted(doc);
        if (q->text == NULL) {
            q->rc = -ENOMEM;
            snprintf(q->err, sizeof(q->err), "daemon out of memory "
                     "formatting the answer");
        } else {
            q->len = strlen(q->text);
        }
    }
    /* A big document is freed here too, not on the loop. */
    cJSON_Delete(doc);
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
