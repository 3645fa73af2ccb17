/* SPDX-License-Identifier: MIT
 *
 * writer.c -- see writer.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "ml-common.h"
#include "retained.h"
#include "writer.h"

struct md_writer {
    uv_async_t async;           /* first: handle* <-> writer* */
    uv_thread_t thread;
    uv_mutex_t mu;
    uv_cond_t cv;
    /* Protected by mu. */
    struct md_job *todo, **todo_tail;
    struct md_job *done, **done_tail;
    /* Writer thread only (set before the thread starts). */
    struct st_store *store;
    /* Loop thread only. */
    md_job_done_cb done_cb;
    void *arg;
    unsigned pending;
    int stopped;
};

/* Deletes j's snapshot if j's scope sees it: another user's is "not
 * found", as it is to every query (docs/protocol.md, "Who sees what").
 * Here, not on the loop: the check reads the store, the delete writes. */
static int
delete_seen(struct st_store *s, const struct md_job *j)
{
    struct st_snapinfo si;
    struct st_read *r;
    int rc = st_read_begin(s, &r), seen;

    if (rc != 0)
        return rc;
    rc = st_snap_get(r, j->del_id, &si);
    seen = rc == 0 && rp_scope_sees(&j->scope, &si);
    st_read_end(r);             /* before the write transaction */
    if (rc != 0)
        return rc;
    return seen ? st_delete(s, j->del_id) : ML_ENOTFOUND;
}

/* Hands j back to the loop (on_async). */
static void
post_done(struct md_writer *w, struct md_job *j)
{
    uv_mutex_lock(&w->mu);
    *w->done_tail = j;
    w->done_tail = &j->next;
    uv_mutex_unlock(&w->mu);
    /* Can only fail for a handle that is not an async: ignore. */
    (void)uv_async_send(&w->async);
}

/* A commit between its two steps (st_commit2). */
struct visible {
    struct md_writer *w;
    struct md_job *j;
    uint64_t t0;
    int posted;
};

/* Step 1 is done, the snapshot stored and visible: the job goes back to
 * the loop now, which acks it (docs/protocol.md, "Ack"), while this
 * thread writes the retained answers.  j is the loop's from here on. */
static void
commit_visible(void *arg, uint64_t id)
{
    struct visible *v = arg;
    struct md_job *j = v->j;

    j->rc = 0;
    j->id = id;
    if (j->metrics) {
        /* Here, not on the loop: it reads the store. */
        int rc = md_metrics_prepare(v->w->store, j->id, &j->src, &j->mfrag);

        if (rc < 0)
            md_warn("metrics_summary_failed", " id=%" PRIu64 " error=%s",
                    j->id, st_strerror(rc));
    }
    j->took_ns = uv_hrtime() - v->t0;
    v->posted = 1;
    post_done(v->w, j);
}

/* The commit job: step 1, handed back by commit_visible; then step 2,
 * here, before the next job (a query that needs its answers waits for
 * them: query.c; a STOP queued meanwhile waits too, so a daemon that is
 * told to stop finishes the step first).  1 if j was handed back. */
static int
run_commit(struct md_writer *w, struct md_job *j, uint64_t t0)
{
    struct st_ingest *ing = j->ing;
    struct visible v = { .w = w, .j = j, .t0 = t0 };
    uint64_t id = 0, t1;
    int rc, retrc = 0;

    j->ing = NULL;              /* freed here, after both steps */
    rc = st_commit2(w->store, ing, &j->src, &id, commit_visible, &v, &retrc);
    if (!v.posted) {
        const char *e = st_ingest_error(ing);

        j->rc = rc != 0 ? rc : -EIO;
        snprintf(j->errmsg, sizeof(j->errmsg), "%s",
                 e != NULL && e[0] != '\0' ? e : st_strerror(j->rc));
        st_ingest_free(ing);
        return 0;
    }
    st_ingest_free(ing);
    t1 = uv_hrtime();
    if (retrc == 0)
        md_debug("retained_stored_at_commit", " id=%" PRIu64 " ms=%" PRIu64,
                 id, (t1 - t0) / 1000000);
    else
        md_log(retrc == ML_ENOTFOUND ? MD_LOG_INFO : MD_LOG_WARN,
               "retained_not_stored", " id=%" PRIu64 " error=%s"
               " (computed on demand by the first query that needs them)",
               id, st_strerror(retrc));
    return 1;
}

/* Runs j; 1 if it was handed back to the loop already. */
static int
run_job(struct md_writer *w, struct md_job *j)
{
    uint64_t t0 = uv_hrtime();

    switch (j->kind) {
    case MD_JOB_COMMIT:
        if (run_commit(w, j, t0))
            return 1;
        break;
    case MD_JOB_SWEEP:
        j->rc = st_sweep(w->store, &j->swept);
        j->rc_readers = st_reader_check(w->store, &j->dead);
        break;
    case MD_JOB_READER_CHECK:
        j->rc = st_reader_check(w->store, &j->dead);
        break;
    case MD_JOB_DELETE:
        j->rc = delete_seen(w->store, j);
        break;
    case MD_JOB_RETAIN:
        j->rc = st_retained_fill(w->store, j->ret_id);
        break;
    case MD_JOB_STOP:
        j->rc = 0;
        break;
    }
    j->took_ns = uv_hrtime() - t0;
    return 0;
}

static void
writer_main(void *arg)
{
    struct md_writer *w = arg;
    int stop = 0;

    while (!stop) {
        struct md_job *j;

        uv_mutex_lock(&w->mu);
        while (w->todo == NULL)
            uv_cond_wait(&w->cv, &w->mu);
        j = w->todo;
        w->todo = j->next;
        if (w->todo == NULL)
            w->todo_tail = &w->todo;
        uv_mutex_unlock(&w->mu);

        j->next = NULL;
        stop = j->kind == MD_JOB_STOP;
        if (!run_job(w, j))
            post_done(w, j);
    }
}

static void
on_writer_closed(uv_handle_t *h)
{
    struct md_writer *w = (struct md_writer *)h;

    uv_cond_destroy(&w->cv);
    uv_mutex_destroy(&w->mu);
    free(w);
}

static void
on_async(uv_async_t *a)
{
    struct md_writer *w = (struct md_writer *)a;
    struct md_job *list, *next;

    uv_mutex_lock(&w->mu);
    list = w->done;
    w->done = NULL;
    w->done_tail = &w->done;
    uv_mutex_unlock(&w->mu);

    for (; list != NULL; list = next) {
        int stop = list->kind == MD_JOB_STOP;

        next = list->next;
        list->next = NULL;
        w->pending--;
        if (stop) {
            int rc = uv_thread_join(&w->thread);

            if (rc < 0)
                md_err("writer_join", " error=%s", uv_strerror(rc));
            w->stopped = 1;
            uv_close((uv_handle_t *)&w->async, on_writer_closed);
        }
        w->done_cb(list, w->arg);
        if (stop)
            return;             /* nothing can follow STOP */
    }
}

int
md_writer_start(struct md_writer **out, uv_loop_t *loop,
                struct st_store *store, md_job_done_cb done, void *arg)
{
    struct md_writer *w;
    int rc;

    *out = NULL;
    w = calloc(1, sizeof(*w));
    if (w == NULL)
        return UV_ENOMEM;
    w->todo_tail = &w->todo;
    w->done_tail = &w->done;
    w->store = store;
    w->done_cb = done;
    w->arg = arg;
    rc = uv_mutex_init(&w->mu);
    if (rc < 0)
        goto out_free;
    rc = uv_cond_init(&w->cv);
    if (rc < 0)
        goto out_mutex;
    rc = uv_async_init(loop, &w->async, on_async);
    if (rc < 0)
        goto out_cond;
    rc = uv_thread_create(&w->thread, writer_main, w);
    if (rc < 0) {
        /* The handle is live: free w in its close callback. */
        uv_close((uv_handle_t *)&w->async, on_writer_closed);
        return rc;
    }
    *out = w;
    return 0;

out_cond:
    uv_cond_destroy(&w->cv);
out_mutex:
    uv_mutex_destroy(&w->mu);
out_free:
    free(w);
    return rc;
}

void
md_writer_submit(struct md_writer *w, struct md_job *job)
{
    job->next = NULL;
    job->submitted_ns = uv_hrtime();
    w->pending++;
    uv_mutex_lock(&w->mu);
    *w->todo_tail = job;
    w->todo_tail = &job->next;
    uv_cond_signal(&w->cv);
    uv_mutex_unlock(&w->mu);
}

unsigned
md_writer_pending(const struct md_writer *w)
{
    return w->pending;
}
