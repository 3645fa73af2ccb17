/* SPDX-License-Identifier: MIT
 *
 * serve_query.c -- query connections (docs/protocol.md, "Queries"): the
 * `meliae-cli` requests that read the store, `snap` and `delete`.
 *
 * A connection whose first line has "meliae_query" (server.c reads it and
 * hands it here) is a query: CS_QUERY, one answer, then closed.
 *   - rp_run runs on libuv's threadpool (uv_queue_work), never on the loop
 *     nor on the writer thread; at most QUERY_MAX_RUNNING at once, and
 *     none starts while answers of QUERY_ANSWER_BUDGET bytes are still
 *     being written.  The others wait in srv->qwait, first come first
 *     served, with their connections still read (and what they send
 *     dropped) so that a client that leaves is noticed;
 *   - a query that computes a dominator tree (md_query_heavy) needs
 *     memory of the snapshot's size, ~885 MiB at 10M objects: one runs
 *     at a time, the others wait while lighter queries pass them, so a
 *     few users asking at once cannot multiply the daemon's memory
 *     (since the commit stores the tree's answers, only an old store's
 *     snapshots need it; one whose answers the writer is storing right
 *     after its ack waits for them on its pool thread instead: query.c);
 *   - the work names its connection by serial number: if the client left
 *     meanwhile the answer is dropped (query.h);
 *   - an answer is one buffer, written with its own uv_write (not
 *     md__conn_send: WQ_MAX does not apply) and freed when written;
 *   - `snap` is answered here: the matching scanner connection is sent a
 *     request line, and the query connection waits (Q_SNAP) for the
 *     commit of the snapshot whose header carries that request id; the
 *     wait lives in the query's conn, so it goes when either side does;
 *   - `delete` goes to the writer thread (the one that writes the store),
 *     which checks that the asker sees the snapshot; the query waits
 *     (Q_DELETE) and is answered when the job comes back.
 *
 * All of this runs on the loop thread, except md_query_run (query.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "ml-common.h"
#include "proto.h"
#include "query.h"
#include "report.h"
#include "server-int.h"

/* ---- running and answering ---- */

static const char answer_head[] = "{\"answer\": ";
static const char answer_tail[] = "}\n";
#define ANSWER_FRAME (sizeof(answer_head) - 1 + sizeof(answer_tail) - 1)

/* The one log line of a query: debug when answered, info for the user's
 * errors (unknown snapshot, bad argument), warn for the others. */
static void
query_log(const struct conn *c, enum md_code code, int rc, size_t bytes,
          const char *why)
{
    uint64_t ms = (uv_hrtime() - c->q_t0) / 1000000;
    char q1[64], q2[300];

    md_logq(c->qcmd, q1, sizeof(q1));
    if (code == MD_OK) {
        md_debug("query", " conn=%" PRIu64 " pid=%d cmd=%s rc=0 ms=%" PRIu64
                 " bytes=%zu", c->serial, (int)c->peer.pid, q1, ms, bytes);
        return;
    }
    md_log(code == MD_ERROR ? MD_LOG_WARN : MD_LOG_INFO, "query_failed",
           " conn=%" PRIu64 " pid=%d cmd=%s rc=%d code=%s ms=%" PRIu64
           " reason=%s", c->serial, (int)c->peer.pid, q1, rc,
           md_code_name(code), ms, md_logq(why, q2, sizeof(q2)));
}

/* Takes c out of the queue of queries waiting for a slot. */
void
md__query_forget(struct conn *c)
{
    struct md_server *srv = c->srv;

    cJSON_Delete(c->qreq);
    c->qreq = NULL;
    if (!c->in_qwait)
        return;
    MD_FIFO_REMOVE(&srv->qwait, &srv->qwait_tail, c, qnext);
    c->in_qwait = 0;
}

/* Answers c's query with a short line (an error, or snap's answer) and
 * closes once it is flushed. */
static void
query_reply(struct conn *c, const char *line, size_t n)
{
    md__query_forget(c);
    c->qstate = Q_DONE;
    (void)md__conn_send(c, line, n);    /* on failure c is closed already */
    md__conn_drain_close(c, "query answered");
}

/* Logs and answers c's query with an error line, then closes. */
void
md__query_error(struct conn *c, enum md_code code, int rc,
                const char *msg)
{
    char line[1024];

    query_log(c, code, rc, 0, msg);
    query_reply(c, line, md_error_line(line, sizeof(line), msg, code));
}

static void query_pump(struct md_server *srv);

static void
on_answer_written(uv_write_t *req, int status)
{
    struct md_query *q = (struct md_query *)(void *)
        ((char *)req - offsetof(struct md_query, write));
    struct conn *c = (struct conn *)req->handle;
    struct md_server *srv = c->srv;
    size_t n = q->len + ANSWER_FRAME;

    c->answer_bytes -= n;
    srv->answer_bytes -= n;
    md_query_free(q);
    if (status < 0 && status != UV_ECANCELED && !c->closed) {
        md_debug("write_failed", " conn=%" PRIu64 " error=%s", c->serial,
                 uv_strerror(status));
        md__conn_abort(c, "write failed");
    }
    query_pump(srv);
}

/* Writes q's answer to c (q is freed once written), then closes. */
static void
query_answer(struct conn *c, struct md_query *q)
{
    struct md_server *srv = c->srv;
    size_t n = q->len + ANSWER_FRAME;
    uv_buf_t b[3];
    int rc;

    b[0] = uv_buf_init((char *)answer_head, sizeof(answer_head) - 1);
    b[1].base = q->text;        /* uv_buf_init's length is 32 bits */
    b[1].len = q->len;
    b[2] = uv_buf_init((char *)answer_tail, sizeof(answer_tail) - 1);
    rc = uv_write(&q->write, (uv_stream_t *)&c->pipe, b, 3,
                  on_answer_written);
    if (rc < 0) {
        md_query_free(q);
        query_log(c, MD_ERROR, rc, 0, "cannot write the answer");
        md__conn_abort(c, "write failed");
        return;
    }
    c->answer_bytes += n;
    srv->answer_bytes += n;
    c->last_tx = uv_now(srv->loop);
    c->qstate = Q_DONE;
    query_log(c, MD_OK, 0, n, NULL);
    md__conn_drain_close(c, "query answered");
}

/* A query computed the retained sizes of a snapshot stored before they
 * were kept (store/retained.h): the writer stores them, so the next
 * query reads them.  Best effort: without them queries compute again. */
static void
retain_start(struct md_server *srv, uint64_t id)
{
    struct md_job *j = calloc(1, sizeof(*j));

    if (j == NULL)
        return;
    j->kind = MD_JOB_RETAIN;
    j->ret_id = id;
    md_writer_submit(srv->writer, j);
}

static void
on_query_work(uv_work_t *w)
{
    md_query_run((struct md_query *)w);
}

static void
on_query_done(uv_work_t *w, int status)
{
    struct md_query *q = (struct md_query *)w;
    struct md_server *srv = w->data;
    struct conn *c = md__conn_find(srv, q->conn);

    srv->queries_running--;
    if (q->heavy)
        srv->heavy_running--;
    if (c != NULL && (c->closing || c->qstate != Q_RUNNING))
        c = NULL;
    if (q->computed != 0 && srv->writer != NULL && !srv->stopping)
        retain_start(srv, q->computed);
    if (q->waited_retained)
        md_debug("query_waited_retained", " conn=%" PRIu64 " computed=%"
                 PRIu64, q->conn, q->computed);
    if (status < 0 && q->code == MD_OK) {   /* UV_ECANCELED: not used */
        q->code = MD_ERROR;
        snprintf(q->err, sizeof(q->err), "query cancelled: %s",
                 uv_strerror(status));
    }
    if (c == NULL) {
        char q1[64];

        md_debug("query", " conn=%" PRIu64 " cmd=%s rc=%d ms=%" PRIu64
                 " client=gone", q->conn, md_logq(q->cmd, q1, sizeof(q1)),
                 q->rc, (uv_hrtime() - q->submitted_ns) / 1000000);
        md_query_free(q);
    } else if (q->code != MD_OK) {
        md__query_error(c, q->code, q->rc, q->err);
        md_query_free(q);
    } else {
        query_answer(c, q);
    }
    query_pump(srv);
}

/* Starts waiting queries, oldest first, while there are slots and answer
 * memory; a heavy one waits while another runs, and the lighter ones
 * behind it go first. */
static void
query_pump(struct md_server *srv)
{
    struct conn *c, *next;

    for (c = srv->qwait; c != NULL && !srv->stopping
         && srv->queries_running < QUERY_MAX_RUNNING
         && srv->answer_bytes < QUERY_ANSWER_BUDGET; c = next) {
        struct md_query *q;
        cJSON *req = c->qreq;
        int rc;

        next = c->qnext;
        if (srv->heavy_running > 0 && md_query_heavy(req)) {
            if (!c->q_held) {
                char q1[64];

                md_debug("query_held", " conn=%" PRIu64 " cmd=%s "
                         "reason=heavy_running", c->serial,
                         md_logq(c->qcmd, q1, sizeof(q1)));
                c->q_held = 1;
            }
            continue;
        }
        c->qreq = NULL;
        md__query_forget(c);
        q = md_query_new(srv->store, c->serial, req, &c->qscope);
        if (q == NULL) {
            md__query_error(c, MD_ERROR, -ENOMEM, "daemon out of memory");
            continue;
        }
        q->work.data = srv;
        q->submitted_ns = uv_hrtime();
        rc = uv_queue_work(srv->loop, &q->work, on_query_work,
                           on_query_done);
        if (rc < 0) {
            md_query_free(q);
            md__query_error(c, MD_ERROR, rc, "cannot start the query");
            continue;
        }
        c->qstate = Q_RUNNING;
        srv->queries_running++;
        if (q->heavy)
            srv->heavy_running++;
    }
}

/* ---- snap ---- */

/* A program matches by its full string or its last path component. */
static int
prog_match(const char *prog, const char *sel)
{
    const char *base;

    if (prog[0] == '\0')
        return 0;
    if (strcmp(prog, sel) == 0)
        return 1;
    base = strrchr(prog, '/');
    return base != NULL && strcmp(base + 1, sel) == 0;
}

/* Does scanner connection c match sel: all digits, its kernel-verified
 * pid; else its last header's label or program, or its command line?
 * Only a process of the scope's uid (SO_PEERCRED) is looked at: another
 * user's process cannot answer, nor be asked. */
static int
conn_matches(const struct conn *c, const char *sel, const struct rp_scope *sc)
{
    size_t i;

    if (!sc->all && (uint32_t)c->peer.uid != sc->uid)
        return 0;
    for (i = 0; sel[i] >= '0' && sel[i] <= '9'; i++)
        ;
    if (i > 0 && sel[i] == '\0')
        return i < 12 && strtoll(sel, NULL, 10) == (long long)c->peer.pid;
    return (c->has_label && strcmp(c->label, sel) == 0)
           || (c->has_program && prog_match(c->program, sel))
           || prog_match(c->argv0, sel) || prog_match(c->script, sel);
}

/* {"cmd": "snap", "process": SEL, "timeout": S}: asks the most recently
 * connected matching scanner for a snapshot, and waits for it (Q_SNAP)
 * until md__snap_stored, md__snap_fail or md__snap_timed_out. */
static void
snap_start(struct conn *c, const cJSON *req)
{
    struct md_server *srv = c->srv;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(req, "process");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(req, "timeout");
    double timeout = SNAP_TIMEOUT_DEFAULT;
    struct conn *target = NULL;
    const char *sel;
    char msg[400];
    int rc;

    if (!cJSON_IsString(p) || cJSON_GetStringValue(p)[0] == '\0') {
        md__query_error(c, MD_USAGE, -EINVAL, "snap needs \"process\": "
                        "a pid, a label or a program");
        return;
    }
    sel = cJSON_GetStringValue(p);
    if (t != NULL && !cJSON_IsNull(t)) {
        timeout = cJSON_IsNumber(t) ? cJSON_GetNumberValue(t) : -1;
        if (!(timeout > 0 && timeout <= SNAP_TIMEOUT_MAX)) {
            md__query_error(c, MD_USAGE, -EINVAL, "snap \"timeout\" must "
                            "be a number of seconds above 0, at most 86400");
            return;
        }
    }
    for (struct conn *x = srv->conns; x != NULL; x = x->next) {
        if (x == c || !x->allowed || x->closing || x->state == CS_QUERY
            || !conn_matches(x, sel, &c->qscope))
            continue;
        if (target == NULL || x->serial > target->serial)
            target = x;
    }
    if (target == NULL) {
        snprintf(msg, sizeof(msg), "no connected process matches %.200s",
                 sel);
        md__query_error(c, MD_NOTFOUND, ML_ENOTFOUND, msg);
        return;
    }
    c->qstate = Q_SNAP;
    c->snap_target = target->serial;
    c->snap_req = ++srv->next_request;
    c->snap_pid = target->peer.pid;
    c->snap_timeout = timeout;
    c->snap_deadline = uv_now(srv->loop) + (uint64_t)(timeout * 1000);
    rc = md_server_request_snapshot(srv, target->serial, c->snap_req);
    if (rc < 0 && c->qstate == Q_SNAP) {
        snprintf(msg, sizeof(msg), "cannot ask process %d for a snapshot: "
                 "%s", (int)c->snap_pid, rc == -EPIPE ? "it does not read "
                 "what the daemon sends" : "it is disconnecting");
        md__query_error(c, MD_ERROR, rc, msg);
    }
}

/* Does c wait for the snapshot (target, request)?  request 0: any of
 * target's that is not being committed yet. */
static int
snap_waits_for(const struct conn *c, uint64_t target, uint64_t request)
{
    return c->state == CS_QUERY && c->qstate == Q_SNAP && !c->closing
           && c->snap_target == target
           && (request != 0 ? c->snap_req == request : !c->snap_committing);
}

/* The snapshot (target, request) went to the writer: the snap queries
 * waiting for it wait for its commit now, whatever becomes of target. */
void
md__snap_committing(struct md_server *srv, uint64_t target,
                    uint64_t request)
{
    for (struct conn *w = srv->conns; w != NULL; w = w->next)
        if (w->qstate == Q_SNAP && w->snap_target == target
            && w->snap_req == request)
            w->snap_committing = 1;
}

/* Snapshot j, a requested one, is committed: answer who waits for it. */
void
md__snap_stored(struct md_server *srv, const struct md_job *j)
{
    char line[256];
    int n;

    for (struct conn *c = srv->conns; c != NULL; c = c->next) {
        if (!snap_waits_for(c, j->conn, j->meta.request))
            continue;
        n = snprintf(line, sizeof(line), "{\"answer\": {\"schema_version\": "
                     "%d, \"command\": \"snap\", \"snapshot\": %" PRIu64
                     ", \"pid\": %d}}\n", RP_SCHEMA_VERSION, j->id,
                     (int)j->src.tpid);
        query_log(c, MD_OK, 0, (size_t)n, NULL);
        query_reply(c, line, (size_t)n);
    }
}

/* The snapshot (target, request) will not come (request 0: none of
 * target's not yet committed will): an error for who waits for it. */
void
md__snap_fail(struct md_server *srv, uint64_t target, uint64_t request,
              const char *msg)
{
    /* md__query_error only closes (frees later): the list stays walkable. */
    for (struct conn *c = srv->conns; c != NULL; c = c->next)
        if (snap_waits_for(c, target, request))
            md__query_error(c, MD_ERROR, ML_ENOTFOUND, msg);
}

/* c is closing: snap queries waiting for a snapshot it has not sent yet
 * get an error; those whose snapshot is in the writer still wait. */
void
md__snap_target_gone(struct conn *c)
{
    char msg[160];

    if (c->state == CS_QUERY || !c->allowed)
        return;
    snprintf(msg, sizeof(msg), "process %d disconnected before its snapshot "
             "was stored", (int)c->peer.pid);
    md__snap_fail(c->srv, c->serial, 0, msg);
}

/* c's snap query waited until its deadline (on_tick): an error. */
void
md__snap_timed_out(struct conn *c)
{
    char msg[200];

    snprintf(msg, sizeof(msg), "process %d did not send its snapshot within "
             "%g s%s", (int)c->snap_pid, c->snap_timeout,
             c->snap_committing ? " (it is still being stored)" : "");
    md__query_error(c, MD_ERROR, -ETIMEDOUT, msg);
}

/* ---- the query line ---- */

/* From its first line on, c is a query connection (CS_QUERY) asking cmd
 * (for the log). */
static void
query_begin(struct conn *c, const char *cmd)
{
    c->state = CS_QUERY;
    c->q_t0 = uv_hrtime();
    md_metrics_query(c->srv->cfg.metrics);
    snprintf(c->qcmd, sizeof(c->qcmd), "%s", cmd);
}

/* c's scope (docs/protocol.md, "Who sees what"): its own uid's
 * snapshots and processes; root and the daemon's own user may name
 * another uid ("uid") or all ("all_users").  0, or -EINVAL with the
 * reason in msg. */
static int
query_scope(struct conn *c, const cJSON *req, char *msg, size_t len)
{
    uint32_t me = (uint32_t)c->peer.uid;
    int rc;

    c->qscope = (struct rp_scope){ .uid = me, .owner = (uint32_t)geteuid(),
                                   .max_answer = MD_MAX_ANSWER };
    rc = rp_scope_request(req, &c->qscope, msg, len);
    if (rc <= 0)
        return rc;
    if (me != 0 && me != (uint32_t)geteuid()
        && (c->qscope.all || c->qscope.uid != me)) {
        snprintf(msg, len, "only root and the daemon's user (uid %u) may "
                 "ask about another user's processes", (unsigned)geteuid());
        return -EINVAL;
    }
    return 0;
}

/* ---- delete ---- */

/* {"cmd": "delete", "snap": "ID"}: the snapshot goes, through the writer.
 * An id only: a deletion names what it deletes, never "latest". */
static void
delete_start(struct conn *c, const cJSON *req)
{
    const cJSON *snap = cJSON_GetObjectItemCaseSensitive(req, "snap");
    const char *s = cJSON_IsString(snap) ? cJSON_GetStringValue(snap) : "";
    struct md_job *j;
    char *end;
    unsigned long long id;

    errno = 0;
    id = strtoull(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || id == 0) {
        md__query_error(c, MD_USAGE, -EINVAL, "delete needs a snapshot id "
                        "(not latest: a deletion names what it deletes)");
        return;
    }
    j = calloc(1, sizeof(*j));
    if (j == NULL) {
        md__query_error(c, MD_ERROR, -ENOMEM, "out of memory");
        return;
    }
    j->kind = MD_JOB_DELETE;
    j->conn = c->serial;
    j->del_id = id;
    j->scope = c->qscope;
    c->qstate = Q_DELETE;
    md_writer_submit(c->srv->writer, j);
}

void
md__delete_done(struct md_server *srv, const struct md_job *j)
{
    struct conn *c = md__conn_find(srv, j->conn);
    char line[256], msg[128];
    int n;

    if (j->rc == 0)
        md_info("snapshot_deleted", " id=%" PRIu64 " uid=%u", j->del_id,
                (unsigned)j->scope.uid);
    if (c == NULL || c->closing || c->qstate != Q_DELETE)
        return;                 /* the client left: done all the same */
    if (j->rc == ML_ENOTFOUND)
        snprintf(msg, sizeof(msg), "no snapshot %" PRIu64, j->del_id);
    else if (j->rc != 0)
        snprintf(msg, sizeof(msg), "deleting snapshot %" PRIu64 ": %s",
                 j->del_id, st_strerror(j->rc));
    if (j->rc != 0) {
        md__query_error(c, md_query_code(j->rc), j->rc, msg);
        return;
    }
    n = snprintf(line, sizeof(line), "{\"answer\": {\"schema_version\": %d, "
                 "\"command\": \"delete\", \"snapshot\": %" PRIu64 "}}\n",
                 RP_SCHEMA_VERSION, j->del_id);
    query_log(c, MD_OK, 0, (size_t)n, NULL);
    query_reply(c, line, (size_t)n);
}

/* The query line of c: run it (queued) or, for snap, answer it here. */
void
md__query_start(struct conn *c, cJSON *req, enum md_code code,
                const char *err)
{
    struct md_server *srv = c->srv;
    const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(req, "cmd");
    char msg[200];

    query_begin(c, cJSON_IsString(cmd) ? cJSON_GetStringValue(cmd) : "?");
    if (code != MD_OK) {
        md__query_error(c, code, -EINVAL, err);
        return;
    }
    if (query_scope(c, req, msg, sizeof(msg)) != 0) {
        cJSON_Delete(req);
        md__query_error(c, MD_USAGE, -EINVAL, msg);
        return;
    }
    if (cJSON_IsString(cmd) && strcmp(cJSON_GetStringValue(cmd), "snap") == 0) {
        snap_start(c, req);
        cJSON_Delete(req);
        return;
    }
    if (cJSON_IsString(cmd) && strcmp(cJSON_GetStringValue(cmd), "delete") == 0) {
        delete_start(c, req);
        cJSON_Delete(req);
        return;
    }
    c->qreq = req;
    c->qstate = Q_WAITING;
    c->in_qwait = 1;
    c->qnext = NULL;
    *srv->qwait_tail = c;
    srv->qwait_tail = &c->qnext;
    query_pump(srv);
}

/* c's first line starts as a query but is longer than a query may be
 * (server.c drops it): a usage error in a query's terms. */
void
md__query_too_long(struct conn *c)
{
    char msg[128];

    query_begin(c, "?");
    snprintf(msg, sizeof(msg), "query longer than %u bytes",
             ML_PROTO_MAX_META_LINE);
    md__query_error(c, MD_USAGE, -E2BIG, msg);
}
