/* SPDX-License-Identifier: MIT
 *
 * query.h -- one query of meliae-cli (docs/protocol.md, "Queries"), run
 * by rp_run (store/report.h) off the event loop: serve_query.c hands it to
 * libuv's threadpool (uv_queue_work), never to the writer thread, and
 * writes the answer back once it is done.
 *
 * Ownership: the loop fills a query and submits it; from then until the
 * after-work callback the worker owns it; then the loop again, which
 * keeps it while the answer is being written (its text is the write's
 * buffer) and frees it with md_query_free.  A query names its connection
 * by serial number, never by pointer: the client may have gone by the
 * time the work is done.
 */
#ifndef MD_QUERY_H
#define MD_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "proto.h"
#include "report.h"
#include "store.h"

struct md_query {
    uv_work_t work;             /* uv_queue_work; work.data: the server */
    uv_write_t write;           /* the answer's write */
    /* in */
    struct st_store *store;
    uint64_t conn;              /* the asking connection's serial */
    cJSON *req;                 /* freed by md_query_run */
    char cmd[32];               /* req's "cmd", for the log */
    struct rp_scope scope;      /* the asking uid's, and the answer cap */
    int heavy;                  /* md_query_heavy(req) */
    uint64_t submitted_ns;      /* uv_hrtime() */
    /* out */
    int rc;                     /* rp_run's */
    uint64_t computed;          /* rp_run_ex's: a snapshot whose retained
                                 * sizes were computed, not read (an older
                                 * store): the writer then stores them */
    int waited_retained;        /* waited for a commit's second step */
    enum md_code code;          /* MD_OK, or the error line's code */
    char *text;                 /* MD_OK: the answer document (cJSON_free) */
    size_t len;
    char err[512];              /* else: why, one line */
    uint64_t took_ns;           /* in md_query_run */
};

/* A query of req (taken over: freed by md_query_run or md_query_free) on
 * store for connection conn.  NULL when out of memory (req is freed). */
struct md_query *md_query_new(struct st_store *store, uint64_t conn,
                              cJSON *req, const struct rp_scope *scope);

/* The longest answer the daemon builds and sends (docs/protocol.md):
 * longer ones are refused (-E2BIG), before they are built where the
 * command can tell (growth, summary), else once serialized. */
#define MD_MAX_ANSWER (16u << 20)

/* Whether req computes a dominator tree (top --retained, dominators,
 * report): memory of the snapshot's size (about 90 bytes per object at
 * the peak), so the daemon runs one at a time (serve_query.c). */
int md_query_heavy(const cJSON *req);

/* Runs q: rp_run, then the answer serialized (one buffer, the only copy
 * of it) as strict UTF-8 (utf8.h, ml_utf8_repair).  Any thread; touches
 * nothing but q and the store's read side. */
void md_query_run(struct md_query *q);

/* NULL is a no-op. */
void md_query_free(struct md_query *q);

#endif /* MD_QUERY_H */
