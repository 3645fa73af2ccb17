/* SPDX-License-Identifier: MIT
 *
 * writer.h -- the one thread that writes the store.  LMDB allows one
 * write transaction at a time and a commit may fsync, so every st_commit,
 * st_sweep and st_reader_check runs here, never on the event loop.  The
 * loop hands jobs over through a mutex-protected FIFO; finished jobs come
 * back through a uv_async_t and are handed to the done callback on the
 * loop thread, in submission order.
 */
#ifndef MD_WRITER_H
#define MD_WRITER_H

#include <stdint.h>

#include <uv.h>

#include "metrics.h"
#include "proto.h"
#include "report.h"
#include "store.h"

enum md_job_kind {
    MD_JOB_COMMIT,          /* st_commit(ing), then st_ingest_free(ing) */
    MD_JOB_SWEEP,           /* st_sweep, then st_reader_check */
    MD_JOB_READER_CHECK,    /* st_reader_check */
    MD_JOB_DELETE,          /* st_delete(id) if scope sees it */
    MD_JOB_RETAIN,          /* st_retained_fill(ret_id) */
    MD_JOB_STOP,            /* the thread exits after this one */
};

/* One unit of work.  Owned by the loop until md_writer_submit, by the
 * writer until it hands the job back to the done callback, then by the
 * loop again (which frees it). */
struct md_job {
    struct md_job *next;
    enum md_job_kind kind;
    /* in (COMMIT) */
    uint64_t conn;              /* the connection's serial, not a pointer:
                                 * it may be gone by the time we are done */
    struct st_ingest *ing;      /* freed by the writer */
    struct md_meta meta;        /* the strings src points into */
    struct st_source src;
    uint64_t objects;
    int metrics;                /* COMMIT: make mfrag (metrics.h) too */
    uint64_t submitted_ns;      /* uv_hrtime() */
    /* in (DELETE): conn, and which snapshot as whom */
    uint64_t del_id;
    struct rp_scope scope;
    /* in (RETAIN): a snapshot whose retained sizes a query computed */
    uint64_t ret_id;
    /* out */
    int rc;
    char errmsg[256];           /* COMMIT failed: st_ingest_error's text */
    uint64_t id;                /* COMMIT */
    struct md_mfrag *mfrag;     /* COMMIT with metrics; may stay NULL */
    uint64_t swept;             /* SWEEP */
    int dead;                   /* SWEEP, READER_CHECK: stale readers */
    int rc_readers;
    uint64_t took_ns;
};

struct md_writer;
typedef void (*md_job_done_cb)(struct md_job *job, void *arg);

/* Starts the thread.  done runs on the loop thread for every job,
 * including MD_JOB_STOP (after which the thread is joined and the async
 * handle closing: the writer is freed once the loop has run its close
 * callback; do not touch it after STOP's callback).  0 or a UV_E*. */
int md_writer_start(struct md_writer **out, uv_loop_t *loop,
                    struct st_store *store, md_job_done_cb done, void *arg);

/* Queues job.  Never fails; jobs after MD_JOB_STOP are not allowed. */
void md_writer_submit(struct md_writer *w, struct md_job *job);

/* Jobs queued and not yet done (loop thread's view). */
unsigned md_writer_pending(const struct md_writer *w);

#endif /* MD_WRITER_H */
