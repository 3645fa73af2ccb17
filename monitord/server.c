/* SPDX-License-Identifier: MIT
 *
 * server.c -- accept scanner connections, assemble their lines and hand
 * them on: to serve_stream.c, which checks them against docs/protocol.md
 * and feeds the store's ingest (commits go to the writer thread, writer.c,
 * and their acks come back there), or to serve_query.c for queries.
 *
 * Per connection:
 *
 *   accept -> credentials -> HEADER -> OBJECTS ... -> trailer -> HEADER ...
 *                  |                     |
 *                  '-> denied            '-> SKIP (after a store error: the
 *                                            rest of the snapshot is read
 *                                            and dropped up to its trailer)
 *
 * Memory stays bounded whatever clients do:
 *   - each allowed client has a fixed BASE_BUF line buffer; a header or a
 *     trailer must fit it (ML_PROTO_MAX_META_LINE);
 *   - an object line that does not fit is a long line (docs/protocol.md):
 *     once its head (up to the '[' of refs) is in the buffer, its refs are
 *     streamed from it to the ingest as they come (serve_stream.c,
 *     md__long_start/md__long_feed), so no line is ever held whole;
 *   - only a head longer than the buffer grows it, up to MID_MAX while
 *     the sum of such buffers stays under MID_BUDGET, and beyond that only
 *     for the one client holding the long-line token (srv->long_owner), up
 *     to ML_PROTO_MAX_HEAD.  A client that cannot grow is paused
 *     (uv_read_stop: the kernel's socket buffer then pushes back on it)
 *     until memory is released, first come first served.  The token
 *     holder must finish its head within LONG_LINE_MS;
 *   - buffers shrink back to BASE_BUF once the pending bytes fit it;
 *   - object lines are parsed by one parser shared by all clients (the
 *     loop parses one line at a time), its scratch freed after big lines;
 *     a line with more than WHOLE_REFS refs is streamed even when it is
 *     all in the buffer, so the refs scratch stays small;
 *   - lines to a client are small and owned; a client with more than
 *     WQ_MAX bytes queued (it does not read) is dropped.
 *
 * A connection whose first line has "meliae_query" is a query instead
 * (docs/protocol.md, "Queries"): CS_QUERY, one answer, then closed; how
 * queries and `snap` are run is the top comment of serve_query.c.
 *
 * Here is the server's life: listening, accepting, the connection table,
 * reading and splitting lines, the tick, shutdown.  What the three files
 * share (struct conn, struct md_server, the limits above) is in
 * server-int.h, private to them.
 *
 * A conn's memory is freed only in on_conn_close (libuv owns the handle
 * until then).  All of this runs on the loop thread.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "ml-common.h"
#include "proto.h"
#include "server-int.h"
#include "server.h"
#include "util.h"
#include "writer.h"

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void wake_waiters(struct md_server *srv);
static void maybe_finish(struct md_server *srv);

/* ---- socket path ---- */

int
md_socket_probe(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    struct stat st;
    int fd, rc, e;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "socket path %s is %zu bytes; the limit is %zu",
                 path, strlen(path), sizeof(sa.sun_path) - 1);
        return -1;
    }
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "socket path %s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "socket path %s exists and is not a socket",
                 path);
        return -1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    e = errno;
    close(fd);
    if (rc == 0 || e == EAGAIN || e == EINPROGRESS) {
        /* EAGAIN: a full backlog is someone listening too. */
        snprintf(err, errlen, "another daemon is listening on %s", path);
        return -1;
    }
    if (e != ECONNREFUSED) {
        snprintf(err, errlen, "socket path %s: connect: %s", path,
                 strerror(e));
        return -1;
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        snprintf(err, errlen, "removing stale socket %s: %s", path,
                 strerror(errno));
        return -1;
    }
    md_info("stale_socket_removed", " path=%s", path);
    return 0;
}

/* ---- output ---- */

struct wreq {
    uv_write_t req;
    size_t n;
    char data[];
};

static void
on_write(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct conn *c = (struct conn *)req->handle;

    c->wq -= w->n;
    free(w);
    if (status < 0 && status != UV_ECANCELED && !c->closed) {
        md_debug("write_failed", " conn=%" PRIu64 " error=%s", c->serial,
                 uv_strerror(status));
        md__conn_abort(c, "write failed");
    }
}

/* Queues line[0..n) to c.  0, or -EPIPE when c is closing or was just
 * dropped for not reading what we send. */
int
md__conn_send(struct conn *c, const char *line, size_t n)
{
    struct wreq *w;
    uv_buf_t b;
    int rc;

    if (c->closed || c->shut_started)
        return -EPIPE;
    if (c->wq + n > WQ_MAX) {
        md_warn("client_not_reading", " conn=%" PRIu64 " pid=%d queued=%zu",
                c->serial, (int)c->peer.pid, c->wq);
        md__conn_abort(c, "client does not read its lines");
        return -EPIPE;
    }
    w = malloc(sizeof(*w) + n);
    if (w == NULL) {
        md__conn_abort(c, "out of memory");
        return -EPIPE;
    }
    memcpy(w->data, line, n);
    w->n = n;
    b = uv_buf_init(w->data, (unsigned)n);
    rc = uv_write(&w->req, (uv_stream_t *)&c->pipe, &b, 1, on_write);
    if (rc < 0) {
        free(w);
        md_debug("write_failed", " conn=%" PRIu64 " error=%s", c->serial,
                 uv_strerror(rc));
        md__conn_abort(c, "write failed");
        return -EPIPE;
    }
    c->wq += n;
    c->last_tx = uv_now(c->srv->loop);
    return 0;
}

/* ---- line buffer ---- */

/* Takes c off the waiting list. */
static void
unwait(struct conn *c)
{
    struct md_server *srv = c->srv;

    if (!c->waiting)
        return;
    MD_FIFO_REMOVE(&srv->waiters, &srv->waiters_tail, c, wnext);
    c->waiting = 0;
}

/* Gives back what c's buffer holds beyond BASE_BUF in the accounting
 * (not the memory: see shrink), and wakes whoever waits for it. */
static void
release_tier(struct conn *c)
{
    struct md_server *srv = c->srv;

    if (c->tier == TIER_BASE)
        return;
    if (c->tier == TIER_MID)
        srv->mid_bytes -= c->cap;
    else
        srv->long_owner = NULL;
    c->tier = TIER_BASE;
    c->long_since = 0;
    wake_waiters(srv);
}

/* Grows c's buffer to ncap if the budget allows.  1 grown, 0 must wait,
 * -ENOMEM. */
static int
try_grow(struct conn *c, size_t ncap)
{
    struct md_server *srv = c->srv;
    enum tier t;
    char *nb;

    if (ncap <= MID_MAX && c->tier != TIER_LONG
        && srv->mid_bytes - (c->tier == TIER_MID ? c->cap : 0) + ncap
           <= MID_BUDGET)
        t = TIER_MID;
    else if (srv->long_owner == NULL || srv->long_owner == c)
        t = TIER_LONG;
    else
        return 0;
    nb = realloc(c->buf, ncap);
    if (nb == NULL)
        return -ENOMEM;
    if (c->tier == TIER_MID)
        srv->mid_bytes -= c->cap;
    c->buf = nb;
    c->cap = ncap;
    if (t == TIER_MID) {
        srv->mid_bytes += ncap;
    } else if (srv->long_owner != c) {
        srv->long_owner = c;
        c->long_since = uv_now(srv->loop);
    }
    c->tier = t;
    return 1;
}

/* Back to BASE_BUF once the pending bytes fit it. */
static void
shrink(struct conn *c)
{
    char *nb;

    if (c->tier == TIER_BASE || c->len > BASE_BUF)
        return;
    if (c->start > 0 && c->len > 0)
        memmove(c->buf, c->buf + c->start, c->len);
    c->start = 0;
    nb = realloc(c->buf, BASE_BUF);
    if (nb == NULL)
        return;                 /* keeps the big block; tried again later */
    c->buf = nb;
    release_tier(c);            /* counts the old cap out, wakes waiters */
    c->cap = BASE_BUF;
}

/* Grows whoever waits, first come first served, as far as the budget
 * allows, and lets them read again.  Re-entered through md__conn_abort ->
 * release_tier: the inner call only asks the outer one to go again. */
static void
wake_waiters(struct md_server *srv)
{
    if (srv->waking) {
        srv->wake_again = 1;
        return;
    }
    srv->waking = 1;
    do {
        struct conn *c;

        srv->wake_again = 0;
        for (c = srv->waiters; c != NULL; c = c->wnext) {
            int rc = try_grow(c, c->want);

            if (rc == 0)
                continue;
            unwait(c);          /* c->wnext is gone: start over */
            if (rc < 0) {
                md__conn_fail(c, MD_LIMIT,
                              "daemon out of memory for a long line", 0);
            } else {
                c->last_rx = uv_now(srv->loop);
                md_debug("resumed", " conn=%" PRIu64 " cap=%zu", c->serial,
                         c->cap);
                rc = uv_read_start((uv_stream_t *)&c->pipe, on_alloc,
                                   on_read);
                if (rc < 0)
                    md__conn_abort(c, uv_strerror(rc));
            }
            srv->wake_again = 1;
            break;
        }
    } while (srv->wake_again);
    srv->waking = 0;
}

static void
on_line(struct conn *c, const char *line, size_t n)
{
    struct md_server *srv = c->srv;

    if (!c->seen_line) {
        char err[256];
        enum md_code code;
        cJSON *req;

        c->seen_line = 1;
        if (md_query_parse(line, n, &req, &code, err, sizeof(err))) {
            md__query_start(c, req, code, err);
            return;
        }
        md_metrics_bytes_received(srv->cfg.metrics, c->rx_first);
    }
    md__stream_line(c, line, n);
}

/* The longest line allowed in c's state, '\n' included. */
static size_t
line_limit(const struct conn *c)
{
    return c->state == CS_HEADER ? ML_PROTO_MAX_META_LINE : ML_PROTO_MAX_HEAD;
}

/* A line over its limit (line[0..n) is its start): a limit error, or
 * for what starts as a query line, a usage error in a query's terms. */
static void
line_too_long(struct conn *c, const char *line, size_t n, const char *err)
{
    static const char key[] = "\"meliae_query\"";
    size_t head = n < 64 ? n : 64;

    if (!c->seen_line && memmem(line, head, key, sizeof(key) - 1) != NULL) {
        c->seen_line = 1;
        md__query_too_long(c);
        return;
    }
    md__conn_fail(c, MD_LIMIT, err, 0);
}

/* Consumes the complete lines in c's buffer, and the refs of a long line
 * as they come, then makes room for more: compacts, starts streaming a
 * long line whose head is all there, grows or pauses. */
static void
process(struct conn *c)
{
    struct md_server *srv = c->srv;
    int took = 0;
    size_t limit;

again:
    while (!c->closing && !c->commit_wait && c->state != CS_QUERY) {
        char *base = c->buf + c->start;
        char *nl;
        size_t n;

        if (c->lline) {
            size_t used = 0;
            int rc;

            if (c->len == 0)
                break;
            rc = md__long_feed(c, base, c->len, &used);
            if (rc < 0)
                break;
            c->start += used;
            c->len -= used;
            c->scanned = 0;
            took = 1;
            if (rc == 0)
                break;
            continue;
        }
        nl = memchr(base + c->scanned, '\n', c->len - c->scanned);
        if (nl == NULL) {
            c->scanned = c->len;
            break;
        }
        n = (size_t)(nl - base) + 1;
        c->start += n;
        c->len -= n;
        c->scanned = 0;
        took = 1;
        if (n > line_limit(c)) {
            char err[96];

            snprintf(err, sizeof(err), "line of %zu bytes; the limit is %zu",
                     n, line_limit(c));
            line_too_long(c, base, n, err);
            break;
        }
        on_line(c, base, n);
    }
    if (c->closing)
        return;
    if (c->state == CS_QUERY) {
        /* One line, one answer: whatever follows is dropped. */
        c->start = c->len = c->scanned = 0;
        return;
    }
    if (c->len == 0)
        c->start = c->scanned = 0;
    if (c->commit_wait)
        return;                 /* the rest waits for md__conn_resume */
    if (took)
        shrink(c);

    limit = line_limit(c);
    if (c->len >= limit && c->state == CS_HEADER) {
        char err[96];

        snprintf(err, sizeof(err), "line longer than %zu bytes", limit);
        line_too_long(c, c->buf + c->start, c->len, err);
        return;
    }
    if (c->start + c->len < c->cap)
        return;                 /* room at the tail */
    if (c->start > 0) {
        memmove(c->buf, c->buf + c->start, c->len);
        c->start = 0;
        return;
    }
    /* One partial line fills the buffer: a long line whose refs can be
     * streamed from here on? */
    if (c->state == CS_OBJECTS || c->state == CS_SKIP) {
        size_t used = 0;

        switch (md__long_start(c, c->buf, c->len, &used)) {
        case 1:
            md_debug("long_line", " conn=%" PRIu64 " object=%" PRIu64
                     " in_buffer=0 head=%zu", c->serial, c->nobj + 1, used);
            c->start += used;
            c->len -= used;
            c->scanned = 0;
            took = 1;
            goto again;
        case 0:
            break;              /* its head goes on: grow */
        default:
            return;
        }
    }
    if (c->len >= limit) {
        char err[96];

        snprintf(err, sizeof(err), "%s longer than %zu bytes",
                 c->state == CS_HEADER ? "line" : "head of an object line",
                 limit);
        line_too_long(c, c->buf + c->start, c->len, err);
        return;
    }
    c->want = c->cap * 2 < limit ? c->cap * 2 : limit;
    switch (try_grow(c, c->want)) {
    case 1:
        return;
    case 0: {
        int rc = uv_read_stop((uv_stream_t *)&c->pipe);

        if (rc < 0) {
            md__conn_abort(c, "uv_read_stop failed");
            return;
        }
        c->waiting = 1;
        c->wnext = NULL;
        *srv->waiters_tail = c;
        srv->waiters_tail = &c->wnext;
        md_debug("paused", " conn=%" PRIu64 " want=%zu", c->serial, c->want);
        return;
    }
    default:
        md__conn_fail(c, MD_LIMIT, "daemon out of memory for a long line", 0);
        return;
    }
}

/* ---- reading ---- */

/* 1 if c's peer closed its end for good (not just for writing: a client
 * may shut down its side after the query and still read the answer).
 * For a Unix stream socket, POLLHUP means both directions are shut. */
static int
peer_gone(struct conn *c)
{
    struct pollfd pf = { .events = POLLIN };
    uv_os_fd_t fd;

    if (uv_fileno((uv_handle_t *)&c->pipe, &fd) < 0)
        return 1;
    pf.fd = fd;
    return poll(&pf, 1, 0) < 0 || (pf.revents & (POLLHUP | POLLERR)) != 0;
}

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = (struct conn *)h;

    (void)suggested;
    /* process() always leaves room, or stops reading; an empty buffer
     * would come back to on_read as UV_ENOBUFS. */
    buf->base = c->buf + c->start + c->len;
    buf->len = c->cap - c->start - c->len;
}

static void
on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = (struct conn *)s;
    char q[96];

    (void)buf;                  /* the bytes are already in c->buf */
    if (nread < 0 && c->state == CS_QUERY) {
        if (nread == UV_EOF && c->qstate != Q_DONE && !peer_gone(c))
            return;             /* half-closed: it still reads the answer */
        md__conn_abort(c, nread == UV_EOF ? "client closed"
                                          : uv_strerror((int)nread));
        return;
    }
    if (nread < 0) {
        if (c->state != CS_HEADER) {
            if (c->state != CS_SKIP && nread != UV_ENOBUFS)
                md_metrics_error(c->srv->cfg.metrics, MD_ER_DISCONNECT);
            md_info("snapshot_discarded", " conn=%" PRIu64 " pid=%d objects=%"
                    PRIu64 " reason=%s", c->serial, (int)c->peer.pid,
                    c->nobj, md_logq(nread == UV_EOF
                                     ? "client disconnected mid-snapshot"
                                     : uv_strerror((int)nread), q,
                                     sizeof(q)));
            md__discard_snapshot(c);
        }
        if (nread == UV_EOF) {
            /* It may still read the acks of what it sent. */
            md__conn_drain_close(c, "client closed");
        } else if (nread == UV_ENOBUFS) {
            md__conn_fail(c, MD_LIMIT, "no buffer for this line", 0);
        } else {
            md__conn_abort(c, uv_strerror((int)nread));
        }
        return;
    }
    if (nread == 0)
        return;                 /* EAGAIN: not an error, not EOF */
    c->len += (size_t)nread;
    c->last_rx = uv_now(c->srv->loop);
    if (c->seen_line)
        md_metrics_bytes_received(c->srv->cfg.metrics, (uint64_t)nread);
    else
        c->rx_first += (uint64_t)nread;
    process(c);
}

/* ---- closing ---- */

static void
on_conn_close(uv_handle_t *h)
{
    struct conn *c = (struct conn *)h;
    struct md_server *srv = c->srv;

    if (c->prev != NULL)
        c->prev->next = c->next;
    else if (srv->conns == c)
        srv->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    srv->nconns--;
    if (c->state == CS_QUERY) {
        char q[64];

        md_debug("disconnect", " conn=%" PRIu64 " pid=%d query=%s reason=%s",
                 c->serial, (int)c->peer.pid, md_logq(c->qcmd, q, sizeof(q)),
                 c->why);
    } else if (c->allowed) {
        md_metrics_conn_gone(srv->cfg.metrics, c->serial);
        md_info("disconnect", " conn=%" PRIu64 " pid=%d snapshots=%" PRIu64
                " pending_commits=%u reason=%s", c->serial, (int)c->peer.pid,
                c->acked, c->commits, c->why);
    }
    cJSON_Delete(c->qreq);
    free(c->buf);
    free(c);
    maybe_finish(srv);
}

/* Closes c now: pending writes are cancelled. */
void
md__conn_abort(struct conn *c, const char *why)
{
    char q[96];

    if (c->closed)
        return;
    if (c->why[0] == '\0')
        snprintf(c->why, sizeof(c->why), "%s", md_logq(why, q, sizeof(q)));
    c->closed = 1;
    c->closing = 1;
    unwait(c);
    release_tier(c);
    md__discard_snapshot(c);
    md__query_forget(c);
    md__snap_target_gone(c);
    uv_close((uv_handle_t *)&c->pipe, on_conn_close);
}

static void
on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;

    (void)status;
    md__conn_abort(c, "closed");
}

/* Sends what is queued, then closes; stops reading now. */
void
md__conn_shutdown(struct conn *c)
{
    int rc;

    if (c->shut_started || c->closed)
        return;
    c->shut_started = 1;
    /* An answer of megabytes may take a slow reader a while. */
    c->close_deadline = uv_now(c->srv->loop)
                        + (c->answer_bytes > 0 ? QUERY_GRACE_MS
                                               : CLOSE_GRACE_MS);
    c->shut.data = c;
    rc = uv_shutdown(&c->shut, (uv_stream_t *)&c->pipe, on_shutdown);
    if (rc < 0)
        md__conn_abort(c, "closed");
}

/* No more reading; once the commits already queued for c are answered
 * and its lines flushed, c is closed. */
void
md__conn_drain_close(struct conn *c, const char *why)
{
    char q[96];

    if (c->closed)
        return;
    if (c->why[0] == '\0')
        snprintf(c->why, sizeof(c->why), "%s", md_logq(why, q, sizeof(q)));
    if (!c->closing) {
        c->closing = 1;
        /* Not reading before: 0 too. */
        (void)uv_read_stop((uv_stream_t *)&c->pipe);
        unwait(c);
        release_tier(c);
        md__discard_snapshot(c);
        md__query_forget(c);
        md__snap_target_gone(c);
    }
    if (c->commits == 0)
        md__conn_shutdown(c);
}

/* ---- accepting ---- */

static void on_connection(uv_stream_t *server, int status);

static void
on_accept_retry(uv_timer_t *t)
{
    struct md_server *srv = t->data;

    if (srv->listening)
        on_connection((uv_stream_t *)&srv->listener, 0);
}

/* Logs accept errors at most once a second (EMFILE comes in storms). */
static void
accept_error(struct md_server *srv, const char *what, int rc)
{
    uint64_t now = uv_now(srv->loop);

    if (srv->accept_err_at != 0 && now - srv->accept_err_at < 1000) {
        srv->accept_err_quiet++;
        return;
    }
    md_warn("accept_failed", " op=%s error=%s suppressed=%u", what,
            uv_strerror(rc), srv->accept_err_quiet);
    srv->accept_err_at = now;
    srv->accept_err_quiet = 0;
}

/* Refuses c with an error line; not one byte of it is read.  The line
 * fits the socket buffer of a fresh connection, so it is written at once
 * and the descriptor closed at once: refusals under a connection storm
 * must not pile up open descriptors. */
static void
refuse(struct conn *c, enum md_code code, const char *msg)
{
    char line[256];
    size_t n = md_error_line(line, sizeof(line), msg, code);
    uv_buf_t b = uv_buf_init(line, (unsigned)n);
    int rc = -1;

    md_metrics_error(c->srv->cfg.metrics, md__code_reason(code));
    if (c->wq == 0 && !c->closed && !c->shut_started)
        rc = uv_try_write((uv_stream_t *)&c->pipe, &b, 1);
    if (rc == (int)n) {
        md__conn_abort(c, md_code_name(code));
        return;
    }
    if (rc > 0)                 /* a part went: cannot send the rest */
        md__conn_abort(c, "short write");
    else if (md__conn_send(c, line, n) == 0)
        md__conn_drain_close(c, md_code_name(code));
}

/* Under the connection limit, or made so by closing the client that has
 * been silent longest among those between snapshots with nothing queued
 * (an idle stream_to connection reconnects when it needs to; a snapshot
 * in progress is never cut for a newcomer).  1 if newc may stay. */
static int
make_room(struct md_server *srv, struct conn *newc)
{
    struct conn *victim = NULL;
    unsigned active = 0;

    for (struct conn *c = srv->conns; c != NULL; c = c->next) {
        if (c == newc || !c->allowed || c->closing)
            continue;
        active++;
        if (c->state == CS_HEADER && c->commits == 0 && !c->commit_wait
            && !c->waiting && (victim == NULL || c->last_rx < victim->last_rx))
            victim = c;
    }
    if (active < srv->max_conns)
        return 1;
    if (victim == NULL)
        return 0;
    md_info("evicted", " conn=%" PRIu64 " pid=%d idle_ms=%" PRIu64
            " reason=too_many_connections", victim->serial,
            (int)victim->peer.pid, uv_now(srv->loop) - victim->last_rx);
    refuse(victim, MD_LIMIT, "too many connections: closing the one idle "
           "longest");
    return 1;
}

static void
on_connection(uv_stream_t *server, int status)
{
    struct md_server *srv = server->data;
    struct conn *c;
    uv_os_fd_t fd;
    int rc;

    if (status < 0) {
        /* EMFILE/ENFILE: libuv has already accepted and closed the
         * waiting connections with its reserve fd; nothing to do. */
        accept_error(srv, "accept", status);
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        /* Without uv_accept libuv stops polling the listener: retry. */
        accept_error(srv, "calloc", UV_ENOMEM);
        (void)uv_timer_start(&srv->accept_retry, on_accept_retry,
                             ACCEPT_RETRY_MS, 0);
        return;
    }
    c->srv = srv;
    rc = uv_pipe_init(srv->loop, &c->pipe, 0);
    if (rc < 0) {
        free(c);
        accept_error(srv, "uv_pipe_init", rc);
        (void)uv_timer_start(&srv->accept_retry, on_accept_retry,
                             ACCEPT_RETRY_MS, 0);
        return;
    }
    c->serial = ++srv->next_serial;
    c->next = srv->conns;
    if (srv->conns != NULL)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    c->last_rx = c->last_tx = uv_now(srv->loop);

    rc = uv_accept(server, (uv_stream_t *)&c->pipe);
    if (rc < 0) {
        accept_error(srv, "uv_accept", rc);
        md__conn_abort(c, "accept failed");
        return;
    }
    rc = uv_fileno((uv_handle_t *)&c->pipe, &fd);
    if (rc == 0)
        rc = md_peer_get(fd, &c->peer);
    if (rc < 0) {
        md_warn("denied", " conn=%" PRIu64 " reason=%s", c->serial,
                "no_peer_credentials");
        refuse(c, MD_DENIED, "cannot read the peer's credentials");
        return;
    }
    if (!md_peer_allowed(fd, &c->peer, srv->cfg.group)) {
        md_warn("denied", " conn=%" PRIu64 " pid=%d uid=%u gid=%u",
                c->serial, (int)c->peer.pid, (unsigned)c->peer.uid,
                (unsigned)c->peer.gid);
        refuse(c, MD_DENIED, "this user may not connect to meliae-monitord");
        return;
    }
    if (!make_room(srv, c)) {
        md_warn("too_many_clients", " conn=%" PRIu64 " pid=%d uid=%u "
                "max=%u", c->serial, (int)c->peer.pid, (unsigned)c->peer.uid,
                srv->max_conns);
        refuse(c, MD_LIMIT, "too many connections");
        return;
    }
    c->buf = malloc(BASE_BUF);
    if (c->buf == NULL) {
        refuse(c, MD_LIMIT, "daemon out of memory");
        return;
    }
    c->cap = BASE_BUF;
    c->allowed = 1;
    md_peer_cmdline(c->peer.pid, c->argv0, c->script, sizeof(c->argv0));
    rc = uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
    if (rc < 0) {
        md__conn_abort(c, uv_strerror(rc));
        return;
    }
    md_info("connect", " conn=%" PRIu64 " pid=%d uid=%u gid=%u start=%.2f",
            c->serial, (int)c->peer.pid, (unsigned)c->peer.uid,
            (unsigned)c->peer.gid, c->peer.start_time);
}

/* ---- writer results ---- */

/* Reads again after a commit of c's was answered, starting with the
 * lines already buffered. */
void
md__conn_resume(struct conn *c)
{
    int rc;

    c->commit_wait = 0;
    c->last_rx = uv_now(c->srv->loop);
    rc = uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
    if (rc < 0) {
        md__conn_abort(c, uv_strerror(rc));
        return;
    }
    process(c);
}

/* The connection of that serial number; NULL once it is freed (until
 * then a closing or closed one is found too). */
struct conn *
md__conn_find(struct md_server *srv, uint64_t serial)
{
    for (struct conn *c = srv->conns; c != NULL; c = c->next)
        if (c->serial == serial)
            return c;
    return NULL;
}

static int server_listen(struct md_server *srv, char *err, size_t errlen);


static void
on_job_done(struct md_job *j, void *arg)
{
    struct md_server *srv = arg;
    char err[512];

    switch (j->kind) {
    case MD_JOB_COMMIT:
        md__commit_done(srv, j);
        break;
    case MD_JOB_SWEEP:
        if (j->rc < 0) {
            snprintf(err, sizeof(err), "sweeping the store: %s",
                     st_strerror(j->rc));
            md_err("sweep_failed", " error=%s", st_strerror(j->rc));
            srv->exit_status = 1;
            srv->ready(srv->ready_arg, j->rc, err);
            md_server_stop(srv, "startup failed");
            break;
        }
        md_info("sweep", " incomplete_removed=%" PRIu64 " stale_readers=%d"
                " ms=%" PRIu64, j->swept, j->dead, j->took_ns / 1000000);
        srv->last_reader_check = uv_now(srv->loop);
        if (srv->stopping)
            break;
        if (server_listen(srv, err, sizeof(err)) < 0) {
            md_err("listen_failed", " error=%s", err);
            srv->exit_status = 1;
            srv->ready(srv->ready_arg, -1, err);
            md_server_stop(srv, "startup failed");
            break;
        }
        srv->ready(srv->ready_arg, 0, NULL);
        break;
    case MD_JOB_DELETE:
        md__delete_done(srv, j);
        break;
    case MD_JOB_RETAIN:
        /* -ENODATA: retention took the graph meanwhile */
        if (j->rc < 0 && j->rc != -ENODATA)
            md_warn("retained_store_failed", " id=%" PRIu64 " error=%s",
                    j->ret_id, st_strerror(j->rc));
        else if (j->rc == 0)
            md_info("retained_stored", " id=%" PRIu64 " ms=%" PRIu64,
                    j->ret_id, j->took_ns / 1000000);
        break;
    case MD_JOB_READER_CHECK:
        srv->reader_check_queued = 0;
        if (j->rc < 0)
            md_warn("reader_check_failed", " error=%s", st_strerror(j->rc));
        else if (j->dead > 0)
            md_info("reader_check", " stale_readers=%d", j->dead);
        break;
    case MD_JOB_STOP:
        srv->writer = NULL;     /* it frees itself */
        md_debug("writer_stopped", "%s", "");
        free(j);
        maybe_finish(srv);
        return;
    }
    md_mfrag_free(j->mfrag);
    free(j);
}

/* ---- periodic work ---- */

static void
on_tick(uv_timer_t *t)
{
    struct md_server *srv = t->data;
    uint64_t now = uv_now(srv->loop);
    struct conn *c, *next;

    for (c = srv->conns; c != NULL; c = next) {
        next = c->next;         /* c may be closed below (freed later) */
        if (c->closed)
            continue;
        if (c->shut_started) {
            if (now >= c->close_deadline)
                md__conn_abort(c, "close timed out");
            continue;
        }
        if (c->closing || !c->allowed)
            continue;
        if (c->state == CS_QUERY) {
            if (c->qstate == Q_SNAP && now >= c->snap_deadline)
                md__snap_timed_out(c);
            continue;           /* no idle limit, no keepalives */
        }
        if (c->tier == TIER_LONG && now - c->long_since >= LONG_LINE_MS) {
            md__conn_fail(c, MD_LIMIT, "one line took too long to arrive", 0);
            continue;
        }
        if (c->waiting || c->commit_wait)
            continue;           /* silent because we stopped reading */
        if (c->state != CS_HEADER
            && now - c->last_rx >= ML_PROTO_IDLE_SECONDS * 1000u) {
            md__conn_fail_as(c, MD_LIMIT, MD_ER_IDLE,
                             "silent in the middle of a snapshot", 0);
            continue;
        }
        if (now - c->last_rx >= ML_PROTO_KEEPALIVE_SECONDS * 1000u
            && now - c->last_tx >= ML_PROTO_KEEPALIVE_SECONDS * 1000u) {
            char line[64];
            int n = snprintf(line, sizeof(line), "{\"keepalive\": %lld}\n",
                             (long long)time(NULL));

            (void)md__conn_send(c, line, (size_t)n);
        }
    }
    md_metrics_tick(srv->cfg.metrics);
    if (!srv->stopping && srv->writer != NULL && !srv->reader_check_queued
        && now - srv->last_reader_check >= READER_CHECK_MS) {
        struct md_job *j = calloc(1, sizeof(*j));

        if (j != NULL) {
            j->kind = MD_JOB_READER_CHECK;
            srv->reader_check_queued = 1;
            srv->last_reader_check = now;
            md_writer_submit(srv->writer, j);
        }
    }
}

/* ---- listening, stopping ---- */

/* Listens on the socket systemd passed (cfg.listen_fd): the file, its
 * mode and its group are the .socket unit's business (SocketMode=,
 * SocketGroup=, RemoveOnStop=), so nothing is done to it, and closing
 * our descriptor at shutdown leaves systemd's listening. */
static int
server_listen_fd(struct md_server *srv, char *err, size_t errlen)
{
    int rc;

    rc = uv_pipe_init(srv->loop, &srv->listener, 0);
    if (rc < 0) {
        snprintf(err, errlen, "uv_pipe_init: %s", uv_strerror(rc));
        return -1;
    }
    srv->listener_init = 1;
    srv->listener.data = srv;
    rc = uv_pipe_open(&srv->listener, srv->cfg.listen_fd);
    if (rc < 0) {
        snprintf(err, errlen, "uv_pipe_open(systemd socket): %s",
                 uv_strerror(rc));
        return -1;
    }
    srv->listening = 1;         /* sock_fd stays -1: never unlinked */
    rc = uv_listen((uv_stream_t *)&srv->listener, LISTEN_BACKLOG,
                   on_connection);
    if (rc < 0) {
        snprintf(err, errlen, "listen (systemd socket): %s",
                 uv_strerror(rc));
        return -1;
    }
    md_info("listening", " socket=%s activation=systemd max_clients=%u",
            srv->cfg.socket_path[0] != '\0' ? srv->cfg.socket_path : "?",
            srv->max_conns);
    return 0;
}

/* Binds and listens.  The socket is made here rather than by
 * uv_pipe_bind: libuv would unlink the path when the handle closes, even
 * if the file there is no longer ours. */
static int
server_listen(struct md_server *srv, char *err, size_t errlen)
{
    const char *path = srv->cfg.socket_path;
    struct sockaddr_un sa;
    mode_t old;
    int fd, rc;

    if (srv->cfg.listen_fd >= 0)
        return server_listen_fd(srv, err, errlen);

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (path == NULL || strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "socket path too long");
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    /* Born 0600: no moment at which others could connect.  With --group
     * it is chgrp'd, then opened to the group. */
    old = umask(0177);
    rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (rc < 0) {
        snprintf(err, errlen, "bind %s: %s%s", path, strerror(errno),
                 errno == EADDRINUSE ? " (another daemon started meanwhile?)"
                                     : "");
        close(fd);
        return -1;
    }
    /* Listening at once: whoever sees the file may connect (the backlog
     * holds them until the loop runs); uv_listen below listens again,
     * which only sets the backlog. */
    if (listen(fd, LISTEN_BACKLOG) < 0) {
        snprintf(err, errlen, "listen %s: %s", path, strerror(errno));
        unlink(path);
        close(fd);
        return -1;
    }
    srv->sock_fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (srv->sock_fd < 0) {
        snprintf(err, errlen, "open %s: %s", path, strerror(errno));
        unlink(path);
        close(fd);
        return -1;
    }
    srv->listening = 1;         /* from here on, ours to unlink */
    rc = uv_pipe_init(srv->loop, &srv->listener, 0);
    if (rc < 0) {
        snprintf(err, errlen, "uv_pipe_init: %s", uv_strerror(rc));
        close(fd);
        return -1;
    }
    srv->listener_init = 1;
    srv->listener.data = srv;
    rc = uv_pipe_open(&srv->listener, fd);
    if (rc < 0) {
        snprintf(err, errlen, "uv_pipe_open: %s", uv_strerror(rc));
        close(fd);
        return -1;
    }
    if (srv->cfg.group != (gid_t)-1) {
        if (chown(path, (uid_t)-1, srv->cfg.group) < 0) {
            snprintf(err, errlen, "chgrp %s: %s", path, strerror(errno));
            return -1;
        }
        if (chmod(path, 0660) < 0) {
            snprintf(err, errlen, "chmod %s: %s", path, strerror(errno));
            return -1;
        }
    }
    rc = uv_listen((uv_stream_t *)&srv->listener, LISTEN_BACKLOG,
                   on_connection);
    if (rc < 0) {
        snprintf(err, errlen, "listen %s: %s", path, uv_strerror(rc));
        return -1;
    }
    md_info("listening", " socket=%s mode=%s max_clients=%u", path,
            srv->cfg.group != (gid_t)-1 ? "0660" : "0600", srv->max_conns);
    return 0;
}

/* Unlinks the socket file if it is still the one we bound.  Our O_PATH
 * descriptor keeps its inode number from being reused, so equal device
 * and inode numbers mean the same file. */
static void
unlink_socket(struct md_server *srv)
{
    struct stat ours, st;

    if (srv->sock_fd < 0)
        return;
    if (fstat(srv->sock_fd, &ours) == 0
        && lstat(srv->cfg.socket_path, &st) == 0
        && st.st_dev == ours.st_dev && st.st_ino == ours.st_ino)
        (void)unlink(srv->cfg.socket_path);
    else
        md_warn("socket_replaced", " path=%s reason=%s",
                srv->cfg.socket_path, "not ours any more: left in place");
    close(srv->sock_fd);
    srv->sock_fd = -1;
}

static void
on_signal(uv_signal_t *h, int signum)
{
    struct md_server *srv = h->data;

    if (srv->stopping) {
        md_info("signal_ignored", " signal=%d reason=already_stopping",
                signum);
        return;
    }
    md_server_stop(srv, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

void
md_server_stop(struct md_server *srv, const char *why)
{
    static const char shutdown_msg[] =
        "the daemon is stopping; this snapshot was not stored";
    struct conn *c, *next;
    unsigned inflight = 0;

    if (srv->stopping)
        return;
    srv->stopping = 1;
    md_info("stopping", " reason=%s pending_commits=%u", why,
            srv->writer != NULL ? md_writer_pending(srv->writer) : 0);
    if (srv->listener_init) {
        if (srv->listening)
            unlink_socket(srv);
        srv->listening = 0;
        uv_close((uv_handle_t *)&srv->listener, NULL);
        srv->listener_init = 0;
    }
    if (srv->handles_init & H_RETRY)
        (void)uv_timer_stop(&srv->accept_retry);
    md_metrics_close(srv->cfg.metrics);
    /* Queries first: a snap query gets this reason rather than "the
     * process disconnected". */
    for (c = srv->conns; c != NULL; c = c->next)
        if (!c->closing && c->state == CS_QUERY && c->qstate != Q_DONE)
            md__query_error(c, MD_ERROR, -ESHUTDOWN, "the daemon is stopping");
    for (c = srv->conns; c != NULL; c = next) {
        next = c->next;
        if (c->closed)
            continue;
        /* Mid-snapshot, or paused with the next one already buffered. */
        if (!c->closing && c->state != CS_QUERY && (c->state != CS_HEADER
                            || (c->commit_wait && c->len > 0))) {
            inflight++;
            md__conn_fail(c, MD_SHUTDOWN, shutdown_msg, 0);
        }
        md__conn_drain_close(c, "daemon stopping");
    }
    if (inflight > 0)
        md_info("snapshots_dropped", " count=%u reason=shutdown", inflight);
    if (srv->writer != NULL) {
        struct md_job *j = calloc(1, sizeof(*j));

        if (j == NULL) {
            /* Cannot queue STOP: the thread would outlive the loop. */
            md_err("stop_failed", " error=%s", "out of memory");
            abort();
        }
        j->kind = MD_JOB_STOP;
        md_writer_submit(srv->writer, j);   /* after the queued commits */
    }
    maybe_finish(srv);
}

static void
maybe_finish(struct md_server *srv)
{
    if (!srv->stopping || srv->finished || srv->writer != NULL
        || srv->conns != NULL)
        return;
    srv->finished = 1;
    if (srv->handles_init & H_TICK)
        uv_close((uv_handle_t *)&srv->tick, NULL);
    if (srv->handles_init & H_RETRY)
        uv_close((uv_handle_t *)&srv->accept_retry, NULL);
    if (srv->handles_init & H_SIGTERM)
        uv_close((uv_handle_t *)&srv->sigterm, NULL);
    if (srv->handles_init & H_SIGINT)
        uv_close((uv_handle_t *)&srv->sigint, NULL);
    srv->handles_init = 0;
    md_info("stopped", " exit_status=%d", srv->exit_status);
}

/* meliae_connections: the clients md_server_foreach_client lists. */
static unsigned
count_clients(void *arg)
{
    struct md_server *srv = arg;
    unsigned n = 0;

    for (struct conn *c = srv->conns; c != NULL; c = c->next)
        if (c->allowed && !c->closing && c->state != CS_QUERY)
            n++;
    return n;
}

/* Connections we can serve with the descriptors we have: every one may
 * need FDS_PER_CONN, and the store, the loop and syslog need some. */
static unsigned
conn_limit(void)
{
    struct rlimit rl;
    rlim_t n;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
        return MAX_CONNS;
    n = rl.rlim_cur > FD_RESERVE + 4 * FDS_PER_CONN
        ? (rl.rlim_cur - FD_RESERVE) / FDS_PER_CONN : 4;
    return n < MAX_CONNS ? (unsigned)n : MAX_CONNS;
}

int
md_server_start(struct md_server **out, uv_loop_t *loop,
                struct st_store *store, const struct md_config *cfg,
                md_ready_cb ready, void *ready_arg)
{
    struct md_server *srv;
    struct md_job *j;
    int rc;

    *out = NULL;
    srv = calloc(1, sizeof(*srv));
    j = calloc(1, sizeof(*j));
    if (srv == NULL || j == NULL) {
        free(srv);
        free(j);
        return UV_ENOMEM;
    }
    srv->loop = loop;
    srv->store = store;
    srv->cfg = *cfg;
    srv->ready = ready;
    srv->ready_arg = ready_arg;
    srv->waiters_tail = &srv->waiters;
    srv->qwait_tail = &srv->qwait;
    ml_dumpparser_init(&srv->parser);
    srv->parser.max_refs = WHOLE_REFS;  /* more: streamed (long lines) */
    if (srv->cfg.max_refs == 0)
        srv->cfg.max_refs = ML_PROTO_MAX_REFS;
    srv->max_conns = conn_limit();
    srv->sock_fd = -1;
    md_metrics_set_source(cfg->metrics, count_clients, srv);

    if ((rc = uv_timer_init(loop, &srv->tick)) < 0)
        goto out_free;
    srv->handles_init |= H_TICK;
    if ((rc = uv_timer_init(loop, &srv->accept_retry)) < 0)
        goto out_close;
    srv->handles_init |= H_RETRY;
    if ((rc = uv_signal_init(loop, &srv->sigterm)) < 0)
        goto out_close;
    srv->handles_init |= H_SIGTERM;
    if ((rc = uv_signal_init(loop, &srv->sigint)) < 0)
        goto out_close;
    srv->handles_init |= H_SIGINT;
    srv->tick.data = srv;
    srv->accept_retry.data = srv;
    srv->sigterm.data = srv;
    srv->sigint.data = srv;
    if ((rc = uv_signal_start(&srv->sigterm, on_signal, SIGTERM)) < 0
        || (rc = uv_signal_start(&srv->sigint, on_signal, SIGINT)) < 0
        || (rc = uv_timer_start(&srv->tick, on_tick, TICK_MS, TICK_MS)) < 0)
        goto out_close;

    rc = md_writer_start(&srv->writer, loop, store, on_job_done, srv);
    if (rc < 0)
        goto out_close;
    j->kind = MD_JOB_SWEEP;
    md_writer_submit(srv->writer, j);
    *out = srv;
    return 0;

out_close:
    /* Handles are closed by the loop: the caller runs it, then frees. */
    srv->stopping = 1;
    srv->exit_status = 1;
    maybe_finish(srv);
    free(j);
    *out = srv;
    return rc;
out_free:
    free(srv);
    free(j);
    return rc;
}

int
md_server_exit_status(const struct md_server *srv)
{
    return srv->exit_status;
}

void
md_server_free(struct md_server *srv)
{
    if (srv == NULL)
        return;
    ml_dumpparser_free(&srv->parser);
    free(srv);
}

/* ---- clients, for requests ---- */

int
md_server_foreach_client(struct md_server *srv,
                         int (*cb)(void *ctx,
                                   const struct md_client_info *ci),
                         void *ctx)
{
    for (struct conn *c = srv->conns; c != NULL; c = c->next) {
        struct md_client_info ci;
        int rc;

        if (!c->allowed || c->closing || c->state == CS_QUERY)
            continue;
        ci.conn = c->serial;
        ci.peer = c->peer;
        ci.in_snapshot = c->state != CS_HEADER;
        ci.snapshots = c->acked;
        rc = cb(ctx, &ci);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int
md_server_request_snapshot(struct md_server *srv, uint64_t conn, uint64_t id)
{
    struct conn *c = md__conn_find(srv, conn);
    char line[96];
    int n;

    if (c == NULL || !c->allowed || c->closing || c->state == CS_QUERY)
        return ML_ENOTFOUND;
    n = snprintf(line, sizeof(line), "{\"request\": \"snapshot\", \"id\": %"
                 PRIu64 "}\n", id);
    md_info("snapshot_requested", " conn=%" PRIu64 " pid=%d request=%" PRIu64,
            c->serial, (int)c->peer.pid, id);
    return md__conn_send(c, line, (size_t)n);
}
