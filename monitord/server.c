/* SPDX-License-Identifier: MIT
 *
 * server.c -- accept scanner connections, assemble their lines, check them
 * against docs/protocol.md and feed the store's ingest; commits go to the
 * writer thread (writer.c) and their acks come back here.
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
 *   - a longer object line grows the buffer, up to MID_MAX while the sum
 *     of such buffers stays under MID_BUDGET, and beyond that only for
 *     the one client holding the long-line token (srv->long_owner), up to
 *     ML_PROTO_MAX_LINE.  A client that cannot grow is paused
 *     (uv_read_stop: the kernel's socket buffer then pushes back on it)
 *     until memory is released, first come first served.  The token
 *     holder must finish its line within LONG_LINE_MS;
 *   - buffers shrink back to BASE_BUF once the pending bytes fit it;
 *   - object lines are parsed by one parser shared by all clients (the
 *     loop parses one line at a time), its scratch freed after big lines;
 *   - lines to a client are small and owned; a client with more than
 *     WQ_MAX bytes queued (it does not read) is dropped.
 *
 * A connection whose first line has "meliae_query" is a query instead
 * (docs/protocol.md, "Queries"): CS_QUERY, one answer, then closed.
 *   - rp_run runs on libuv's threadpool (uv_queue_work), never on the loop
 *     nor on the writer thread; at most QUERY_MAX_RUNNING at once, and
 *     none starts while answers of QUERY_ANSWER_BUDGET bytes are still
 *     being written.  The others wait in srv->qwait, first come first
 *     served, with their connections still read (and what they send
 *     dropped) so that a client that leaves is noticed;
 *   - the work names its connection by serial number: if the client left
 *     meanwhile the answer is dropped (query.h);
 *   - an answer is one buffer, written with its own uv_write (not
 *     conn_send: WQ_MAX does not apply) and freed when written;
 *   - `snap` is answered here: the matching scanner connection is sent a
 *     request line, and the query connection waits (Q_SNAP) for the
 *     commit of the snapshot whose header carries that request id; the
 *     wait lives in the query's conn, so it goes when either side does.
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

#include <lmdb.h>

#include "dumpline.h"
#include "log.h"
#include "metrics.h"
#include "ml-common.h"
#include "proto.h"
#include "query.h"
#include "report.h"
#include "server.h"
#include "util.h"
#include "writer.h"

#define BASE_BUF (64u << 10)            /* per client, always */
#define MID_MAX (1u << 20)              /* grown without the token */
#define MID_BUDGET (16u << 20)          /* sum of grown, token-less buffers */
#define LONG_LINE_MS (ML_PROTO_IDLE_SECONDS * 1000u)
#define PARSER_KEEP (1u << 20)          /* parser scratch kept between lines */
#define WQ_MAX (64u << 10)              /* bytes queued to one client */
#define MAX_CONNS 1024                  /* beyond: refused, code "limit" */
#define FD_RESERVE 32                   /* fds kept for the store, loop, logs */
#define FDS_PER_CONN 3                  /* socket + streaming + queued spools */
#define MAX_CONN_COMMITS 2              /* queued per client; then paused */
#define CLOSE_GRACE_MS 5000             /* to flush a last line, then cut */
#define TICK_MS 1000
#define READER_CHECK_MS 60000
#define ACCEPT_RETRY_MS 100
#define LISTEN_BACKLOG 128
#define QUERY_MAX_RUNNING 4             /* rp_runs at once (threadpool: 4) */
#define QUERY_ANSWER_BUDGET (64u << 20) /* answer bytes being written */
#define QUERY_GRACE_MS 60000            /* to take an answer, then cut */
#define SNAP_TIMEOUT_DEFAULT 60.0       /* seconds */
#define SNAP_TIMEOUT_MAX 86400.0

_Static_assert(BASE_BUF >= ML_PROTO_MAX_META_LINE,
               "a header or trailer line must fit the base buffer");

enum cstate {
    CS_HEADER,                  /* between snapshots: a header comes next */
    CS_OBJECTS,                 /* object lines, then the trailer */
    CS_SKIP,                    /* dropping a refused snapshot's lines */
    CS_QUERY,                   /* a query connection: no more lines */
};

enum qstate {
    Q_NONE,
    Q_WAITING,                  /* in srv->qwait, for a slot */
    Q_RUNNING,                  /* in the threadpool */
    Q_SNAP,                     /* `snap`: waiting for the snapshot */
    Q_DONE,                     /* answered (or being answered) */
};

enum tier {
    TIER_BASE,
    TIER_MID,                   /* counted in srv->mid_bytes */
    TIER_LONG,                  /* srv->long_owner == this conn */
};

enum {
    H_TICK = 1, H_RETRY = 2, H_SIGTERM = 4, H_SIGINT = 8,
};

struct conn {
    uv_pipe_t pipe;             /* first: handle* <-> conn* */
    struct md_server *srv;
    struct conn *prev, *next;   /* srv->conns */
    struct conn *wnext;         /* srv->waiters, while waiting */
    uint64_t serial;
    struct md_peer peer;
    int allowed;

    /* Line assembly: pending bytes are buf[start .. start+len); the first
     * `scanned` of them hold no '\n'. */
    char *buf;
    size_t cap, start, len, scanned;
    enum tier tier;
    size_t want;                /* capacity asked for while waiting */
    int waiting;
    uint64_t long_since;        /* when the long-line token was taken */

    /* Protocol. */
    enum cstate state;
    struct md_job *job;         /* CS_OBJECTS: meta + ingest, to commit */
    uint64_t nobj;
    uint64_t stream_bytes;
    uint64_t snap_start;        /* uv_now at the header */
    unsigned commits;           /* jobs in the writer for this conn */
    int commit_wait;            /* reading paused: MAX_CONN_COMMITS queued */
    uint64_t acked;

    /* What names the process, for `snap`: /proc/PID/cmdline at accept,
     * the label and program of the last header. */
    int seen_line;              /* the first line has come */
    uint64_t rx_first;          /* bytes read before it: counted as
                                 * ingest unless it is a query */
    char argv0[MD_STR_MAX], script[MD_STR_MAX];
    char label[MD_STR_MAX], program[MD_STR_MAX];
    int has_label, has_program;

    /* Queries (CS_QUERY). */
    enum qstate qstate;
    char qcmd[32];              /* the request's "cmd", for the log */
    uint64_t q_t0;              /* uv_hrtime() at the query line */
    cJSON *qreq;                /* Q_WAITING: the request */
    struct conn *qnext;         /* srv->qwait, while in_qwait */
    int in_qwait;
    uint64_t snap_target;       /* Q_SNAP: the scanner's serial, */
    uint64_t snap_req;          /* the request id it was sent, */
    uint64_t snap_deadline;     /* uv_now() + timeout */
    double snap_timeout;
    int32_t snap_pid;
    int snap_committing;        /* its snapshot is in the writer */
    size_t answer_bytes;        /* of the answer being written */

    /* Output and lifetime. */
    size_t wq;                  /* bytes in uv_write, not yet done */
    uint64_t last_rx, last_tx;
    int closing;                /* no more reading; close when flushed */
    int closed;                 /* uv_close called */
    int shut_started;
    uint64_t close_deadline;
    uv_shutdown_t shut;
    char why[96];               /* reason of the close, for the log */
};

struct md_server {
    uv_loop_t *loop;
    struct st_store *store;
    struct md_config cfg;
    md_ready_cb ready;
    void *ready_arg;

    uv_pipe_t listener;
    int listener_init, listening;
    int sock_fd;                /* O_PATH of the socket file we bound: it
                                 * pins the inode, so at shutdown we unlink
                                 * the path only if it is still ours */
    uv_timer_t tick;
    uv_timer_t accept_retry;
    uv_signal_t sigterm, sigint;
    unsigned handles_init;      /* H_* of the handles above to close */

    struct md_writer *writer;   /* NULL once stopped */
    int reader_check_queued;
    uint64_t last_reader_check;

    struct conn *conns;
    unsigned nconns;
    uint64_t next_serial;
    struct conn *waiters, **waiters_tail;
    size_t mid_bytes;
    struct conn *long_owner;
    int waking, wake_again;     /* wake_waiters re-entry */
    struct ml_dumpparser parser;

    /* Queries. */
    struct conn *qwait, **qwait_tail;   /* Q_WAITING, oldest first */
    unsigned queries_running;
    size_t answer_bytes;        /* being written, all connections */
    uint64_t next_request;      /* ids of snapshot requests */

    unsigned max_conns;         /* from RLIMIT_NOFILE, <= MAX_CONNS */
    uint64_t accept_err_at;     /* rate limit of accept error logs */
    unsigned accept_err_quiet;

    int stopping;
    int finished;
    int exit_status;
};

static void conn_abort(struct conn *c, const char *why);
static void conn_drain_close(struct conn *c, const char *why);
static void conn_fail(struct conn *c, enum md_code code, const char *msg,
                      int skip_rest);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void wake_waiters(struct md_server *srv);
static void maybe_finish(struct md_server *srv);
static void on_query(struct conn *c, cJSON *req, enum md_code code,
                     const char *err);
static void query_forget(struct conn *c);
static void snap_fail(struct md_server *srv, uint64_t target,
                      uint64_t request, const char *msg);
static void snap_target_gone(struct conn *c);
static void query_error(struct conn *c, enum md_code code, int rc,
                        const char *msg);

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
        conn_abort(c, "write failed");
    }
}

/* Queues line[0..n) to c.  0, or -EPIPE when c is closing or was just
 * dropped for not reading what we send. */
static int
conn_send(struct conn *c, const char *line, size_t n)
{
    struct wreq *w;
    uv_buf_t b;
    int rc;

    if (c->closed || c->shut_started)
        return -EPIPE;
    if (c->wq + n > WQ_MAX) {
        md_warn("client_not_reading", " conn=%" PRIu64 " pid=%d queued=%zu",
                c->serial, (int)c->peer.pid, c->wq);
        conn_abort(c, "client does not read its lines");
        return -EPIPE;
    }
    w = malloc(sizeof(*w) + n);
    if (w == NULL) {
        conn_abort(c, "out of memory");
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
        conn_abort(c, "write failed");
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
    struct conn **pp;

    if (!c->waiting)
        return;
    for (pp = &srv->waiters; *pp != NULL; pp = &(*pp)->wnext) {
        if (*pp == c) {
            *pp = c->wnext;
            break;
        }
    }
    srv->waiters_tail = &srv->waiters;
    while (*srv->waiters_tail != NULL)
        srv->waiters_tail = &(*srv->waiters_tail)->wnext;
    c->wnext = NULL;
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
 * allows, and lets them read again.  Re-entered through conn_abort ->
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
                conn_fail(c, MD_LIMIT, "daemon out of memory for a long line",
                          0);
            } else {
                c->last_rx = uv_now(srv->loop);
                md_debug("resumed", " conn=%" PRIu64 " cap=%zu", c->serial,
                         c->cap);
                rc = uv_read_start((uv_stream_t *)&c->pipe, on_alloc,
                                   on_read);
                if (rc < 0)
                    conn_abort(c, uv_strerror(rc));
            }
            srv->wake_again = 1;
            break;
        }
    } while (srv->wake_again);
    srv->waking = 0;
}

/* ---- snapshot state ---- */

/* Drops the snapshot in progress, if any. */
static void
discard_snapshot(struct conn *c)
{
    if (c->job != NULL) {
        st_ingest_free(c->job->ing);
        free(c->job);
        c->job = NULL;
    }
    if (c->state != CS_QUERY)   /* a query connection stays one */
        c->state = CS_HEADER;
}

/* The reason="..." of meliae_ingest_errors_total for an error code;
 * MD_ER_COUNT for none (a shutdown is no client's fault). */
static enum md_ereason
code_reason(enum md_code code)
{
    switch (code) {
    case MD_DENIED: return MD_ER_DENIED;
    case MD_VERSION: return MD_ER_VERSION;
    case MD_PROTO: return MD_ER_PROTO;
    case MD_LIMIT: return MD_ER_LIMIT;
    case MD_ABORTED: return MD_ER_ABORTED;
    case MD_STORE: return MD_ER_STORE;
    default: return MD_ER_COUNT;
    }
}

/* conn_fail, counted under reason r rather than code's. */
static void
conn_fail_as(struct conn *c, enum md_code code, enum md_ereason r,
             const char *msg, int skip_rest)
{
    char line[512], q[256];
    size_t n;

    md_metrics_error(c->srv->cfg.metrics, r);

    md_warn("snapshot_refused", " conn=%" PRIu64 " pid=%d uid=%u code=%s "
            "objects=%" PRIu64 " reason=%s", c->serial, (int)c->peer.pid,
            (unsigned)c->peer.uid, md_code_name(code), c->nobj,
            md_logq(msg, q, sizeof(q)));
    n = md_error_line(line, sizeof(line), msg, code);
    (void)conn_send(c, line, n);    /* on failure c is closed already */
    if (c->job != NULL && c->job->meta.request != 0) {
        char why[400];

        snprintf(why, sizeof(why), "the snapshot of process %d was refused: "
                 "%s", (int)c->peer.pid, msg);
        snap_fail(c->srv, c->serial, c->job->meta.request, why);
    }
    discard_snapshot(c);
    if (md_code_closes(code))
        conn_drain_close(c, md_code_name(code));
    else if (skip_rest)
        c->state = CS_SKIP;
}

/* Answers an error line; closes the connection or, for codes that keep it
 * open, drops the current snapshot (its remaining lines are skipped when
 * skip_rest). */
static void
conn_fail(struct conn *c, enum md_code code, const char *msg, int skip_rest)
{
    conn_fail_as(c, code, code_reason(code), msg, skip_rest);
}

static void
on_header(struct conn *c, const char *line, size_t n)
{
    struct md_server *srv = c->srv;
    char err[256], q1[300], q2[300];
    struct md_job *j;
    enum md_code code;
    int rc;

    j = calloc(1, sizeof(*j));
    if (j == NULL) {
        conn_fail(c, MD_STORE, "daemon out of memory", 1);
        return;
    }
    code = md_header_parse(line, n, &j->meta, err, sizeof(err));
    if (code != MD_OK) {
        free(j);
        conn_fail(c, code, err, 0);
        return;
    }
    /* Who the client is, whether or not a snapshot follows: `snap LABEL`
     * finds a process that has not sent one yet by its hello. */
    c->has_label = j->meta.has_label;
    c->has_program = j->meta.has_program;
    memcpy(c->label, j->meta.label, sizeof(c->label));
    memcpy(c->program, j->meta.program, sizeof(c->program));
    if (j->meta.hello) {
        md_debug("hello", " conn=%" PRIu64 " pid=%d label=%s", c->serial,
                 (int)c->peer.pid,
                 md_logq(j->meta.has_label ? j->meta.label : "", q1,
                         sizeof(q1)));
        free(j);
        return;
    }
    j->kind = MD_JOB_COMMIT;
    j->conn = c->serial;
    j->metrics = srv->cfg.metrics != NULL;
    md_meta_source(&j->meta, &j->src);
    j->src.trusted = 1;
    j->src.uid = c->peer.uid;
    j->src.gid = c->peer.gid;
    j->src.tpid = c->peer.pid;
    j->src.tstart_time = c->peer.start_time;
    rc = st_ingest_new(&j->ing, st_tmpdir(srv->store),
                       strcmp(j->meta.values, "none") != 0);
    if (rc < 0) {
        snprintf(err, sizeof(err), "cannot start the snapshot: %s",
                 st_strerror(rc));
        if (j->meta.request != 0)
            snap_fail(srv, c->serial, j->meta.request, err);
        free(j);
        conn_fail(c, MD_STORE, err, 1);
        return;
    }
    if (strcmp(j->meta.mode, "file") == 0)      /* meliae-cli import */
        st_ingest_keep_first(j->ing);
    c->job = j;
    c->state = CS_OBJECTS;
    c->nobj = 0;
    c->stream_bytes = 0;
    c->snap_start = uv_now(srv->loop);
    md_debug("snapshot_begin", " conn=%" PRIu64 " pid=%d claimed_pid=%" PRId64
             " values=%s label=%s program=%s", c->serial, (int)c->peer.pid,
             j->meta.pid, j->meta.values,
             md_logq(j->meta.has_label ? j->meta.label : "", q1, sizeof(q1)),
             md_logq(j->meta.has_program ? j->meta.program : "", q2,
                     sizeof(q2)));
}

static void
on_trailer(struct conn *c, const char *line, size_t n)
{
    struct md_server *srv = c->srv;
    struct md_trailer t;
    char err[512], q[300];
    enum md_code code;
    int rc;

    code = md_trailer_parse(line, n, &t, err, sizeof(err));
    if (code != MD_OK) {
        conn_fail(c, code, err, 0);
        return;
    }
    if (c->state == CS_SKIP) {
        c->state = CS_HEADER;   /* its error was sent when it began */
        return;
    }
    if (t.aborted) {
        md_info("snapshot_aborted", " conn=%" PRIu64 " pid=%d objects=%"
                PRIu64 " reason=%s", c->serial, (int)c->peer.pid, c->nobj,
                md_logq(t.reason, q, sizeof(q)));
        snprintf(err, sizeof(err), "snapshot aborted by the client: %s",
                 t.reason[0] != '\0' ? t.reason : "no reason given");
        conn_fail(c, MD_ABORTED, err, 0);
        return;
    }
    rc = st_ingest_end(c->job->ing, t.objects, t.bytes);
    if (rc == ML_EPROTO) {
        snprintf(err, sizeof(err), "trailer does not match the stream: %s",
                 st_ingest_error(c->job->ing));
        conn_fail(c, MD_PROTO, err, 0);
        return;
    }
    if (rc < 0) {
        snprintf(err, sizeof(err), "cannot end the snapshot: %s",
                 st_strerror(rc));
        conn_fail(c, MD_STORE, err, 0);
        return;
    }
    c->job->objects = c->nobj;
    md_debug("snapshot_received", " conn=%" PRIu64 " pid=%d objects=%" PRIu64
             " stream_bytes=%" PRIu64 " ms=%" PRIu64, c->serial,
             (int)c->peer.pid, c->nobj, c->stream_bytes,
             uv_now(srv->loop) - c->snap_start);
    if (c->job->meta.request != 0) {
        /* The snap queries waiting for it now wait for the commit, even
         * if this connection goes meanwhile. */
        for (struct conn *w = srv->conns; w != NULL; w = w->next)
            if (w->qstate == Q_SNAP && w->snap_target == c->serial
                && w->snap_req == c->job->meta.request)
                w->snap_committing = 1;
    }
    md_writer_submit(srv->writer, c->job);
    c->job = NULL;
    c->commits++;
    c->state = CS_HEADER;
    if (c->commits >= MAX_CONN_COMMITS) {
        /* Each queued commit holds a spool (a file, an fd): a client that
         * pipelines snapshots faster than the disk takes them waits. */
        rc = uv_read_stop((uv_stream_t *)&c->pipe);
        if (rc < 0) {
            conn_abort(c, "uv_read_stop failed");
            return;
        }
        c->commit_wait = 1;
        md_debug("paused", " conn=%" PRIu64 " commits=%u", c->serial,
                 c->commits);
    }
}

static void
on_object_line(struct conn *c, const char *line, size_t n)
{
    struct md_server *srv = c->srv;
    struct ml_dumpline dl;
    char err[300];
    int rc;

    c->stream_bytes += n;
    if (c->stream_bytes > ML_PROTO_MAX_STREAM_BYTES) {
        conn_fail(c, MD_LIMIT, "snapshot stream longer than "
                  "ML_PROTO_MAX_STREAM_BYTES", 0);
        return;
    }
    rc = ml_dumpline_parse(&srv->parser, line, n, &dl);
    if (rc == ML_EPROTO) {
        conn_fail(c, MD_PROTO, srv->parser.err, 0);
        return;
    }
    if (rc == ML_ETOOBIG) {             /* parser.max_refs */
        snprintf(err, sizeof(err), "%s; the limit is %u", srv->parser.err,
                 ML_PROTO_MAX_REFS);
        conn_fail(c, MD_LIMIT, err, 0);
        return;
    }
    if (rc < 0) {
        conn_fail(c, MD_LIMIT, "daemon out of memory parsing a line", 0);
        return;
    }
    if (dl.kind == ML_LINE_OTHER) {
        on_trailer(c, line, n);
        return;
    }
    if (dl.nrefs > ML_PROTO_MAX_REFS) {
        snprintf(err, sizeof(err), "object with %zu refs; the limit is %u",
                 dl.nrefs, ML_PROTO_MAX_REFS);
        conn_fail(c, MD_LIMIT, err, 0);
        return;
    }
    if (c->state == CS_SKIP)
        return;
    if (c->nobj >= ML_PROTO_MAX_OBJECTS) {
        snprintf(err, sizeof(err), "more than %u objects in one snapshot",
                 ML_PROTO_MAX_OBJECTS);
        conn_fail(c, MD_LIMIT, err, 0);
        return;
    }
    rc = st_ingest_object(c->job->ing, &dl);
    if (rc == ML_EPROTO) {
        snprintf(err, sizeof(err), "object line %" PRIu64 ": %s",
                 c->nobj + 1, st_ingest_error(c->job->ing));
        conn_fail(c, MD_PROTO, err, 0);
        return;
    }
    if (rc < 0) {
        snprintf(err, sizeof(err), "cannot spool the snapshot: %s",
                 st_strerror(rc));
        conn_fail(c, MD_STORE, err, 1);
        return;
    }
    c->nobj++;
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
            on_query(c, req, code, err);
            return;
        }
        md_metrics_bytes_received(srv->cfg.metrics, c->rx_first);
    }
    if (c->state == CS_HEADER)
        on_header(c, line, n);
    else
        on_object_line(c, line, n);
    /* A big line left big scratch behind: give it back. */
    if (srv->parser.scap > PARSER_KEEP
        || srv->parser.rcap * sizeof(uint64_t) > PARSER_KEEP)
        ml_dumpparser_free(&srv->parser);
}

/* The longest line allowed in c's state, '\n' included. */
static size_t
line_limit(const struct conn *c)
{
    return c->state == CS_HEADER ? ML_PROTO_MAX_META_LINE : ML_PROTO_MAX_LINE;
}

/* A line over its limit (line[0..n) is its start): a limit error, or
 * for what starts as a query line, a usage error in a query's terms. */
static void
line_too_long(struct conn *c, const char *line, size_t n, const char *err)
{
    static const char key[] = "\"meliae_query\"";
    size_t head = n < 64 ? n : 64;

    if (!c->seen_line && memmem(line, head, key, sizeof(key) - 1) != NULL) {
        char msg[128];

        c->seen_line = 1;
        c->state = CS_QUERY;
        c->q_t0 = uv_hrtime();
        md_metrics_query(c->srv->cfg.metrics);
        snprintf(c->qcmd, sizeof(c->qcmd), "?");
        snprintf(msg, sizeof(msg), "query longer than %u bytes",
                 ML_PROTO_MAX_META_LINE);
        query_error(c, MD_USAGE, -E2BIG, msg);
        return;
    }
    conn_fail(c, MD_LIMIT, err, 0);
}

/* Consumes the complete lines in c's buffer, then makes room for more:
 * compacts, grows or pauses. */
static void
process(struct conn *c)
{
    struct md_server *srv = c->srv;
    int lines = 0;
    size_t limit;

    while (!c->closing && !c->commit_wait && c->state != CS_QUERY) {
        char *base = c->buf + c->start;
        char *nl = memchr(base + c->scanned, '\n', c->len - c->scanned);
        size_t n;

        if (nl == NULL) {
            c->scanned = c->len;
            break;
        }
        n = (size_t)(nl - base) + 1;
        c->start += n;
        c->len -= n;
        c->scanned = 0;
        lines++;
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
        return;                 /* the rest waits for resume_commits */
    if (lines > 0)
        shrink(c);

    limit = line_limit(c);
    if (c->len >= limit) {
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
    /* One partial line fills the buffer. */
    c->want = c->cap * 2 < limit ? c->cap * 2 : limit;
    switch (try_grow(c, c->want)) {
    case 1:
        return;
    case 0: {
        int rc = uv_read_stop((uv_stream_t *)&c->pipe);

        if (rc < 0) {
            conn_abort(c, "uv_read_stop failed");
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
        conn_fail(c, MD_LIMIT, "daemon out of memory for a long line", 0);
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
        conn_abort(c, nread == UV_EOF ? "client closed"
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
            discard_snapshot(c);
        }
        if (nread == UV_EOF) {
            /* It may still read the acks of what it sent. */
            conn_drain_close(c, "client closed");
        } else if (nread == UV_ENOBUFS) {
            conn_fail(c, MD_LIMIT, "no buffer for this line", 0);
        } else {
            conn_abort(c, uv_strerror((int)nread));
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
static void
conn_abort(struct conn *c, const char *why)
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
    discard_snapshot(c);
    query_forget(c);
    snap_target_gone(c);
    uv_close((uv_handle_t *)&c->pipe, on_conn_close);
}

static void
on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;

    (void)status;
    conn_abort(c, "closed");
}

/* Sends what is queued, then closes; stops reading now. */
static void
start_shutdown(struct conn *c)
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
        conn_abort(c, "closed");
}

/* No more reading; once the commits already queued for c are answered
 * and its lines flushed, c is closed. */
static void
conn_drain_close(struct conn *c, const char *why)
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
        discard_snapshot(c);
        query_forget(c);
        snap_target_gone(c);
    }
    if (c->commits == 0)
        start_shutdown(c);
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

    md_metrics_error(c->srv->cfg.metrics, code_reason(code));
    if (c->wq == 0 && !c->closed && !c->shut_started)
        rc = uv_try_write((uv_stream_t *)&c->pipe, &b, 1);
    if (rc == (int)n) {
        conn_abort(c, md_code_name(code));
        return;
    }
    if (rc > 0)                 /* a part went: cannot send the rest */
        conn_abort(c, "short write");
    else if (conn_send(c, line, n) == 0)
        conn_drain_close(c, md_code_name(code));
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
        conn_abort(c, "accept failed");
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
        conn_abort(c, uv_strerror(rc));
        return;
    }
    md_info("connect", " conn=%" PRIu64 " pid=%d uid=%u gid=%u start=%.2f",
            c->serial, (int)c->peer.pid, (unsigned)c->peer.uid,
            (unsigned)c->peer.gid, c->peer.start_time);
}

/* ---- queries (docs/protocol.md, "Queries") ---- */

static struct conn *find_conn(struct md_server *srv, uint64_t serial);

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
static void
query_forget(struct conn *c)
{
    struct md_server *srv = c->srv;
    struct conn **pp;

    cJSON_Delete(c->qreq);
    c->qreq = NULL;
    if (!c->in_qwait)
        return;
    for (pp = &srv->qwait; *pp != NULL; pp = &(*pp)->qnext) {
        if (*pp == c) {
            *pp = c->qnext;
            break;
        }
    }
    srv->qwait_tail = &srv->qwait;
    while (*srv->qwait_tail != NULL)
        srv->qwait_tail = &(*srv->qwait_tail)->qnext;
    c->qnext = NULL;
    c->in_qwait = 0;
}

/* Answers c's query with a short line (an error, or snap's answer) and
 * closes once it is flushed. */
static void
query_reply(struct conn *c, const char *line, size_t n)
{
    query_forget(c);
    c->qstate = Q_DONE;
    (void)conn_send(c, line, n);    /* on failure c is closed already */
    conn_drain_close(c, "query answered");
}

static void
query_error(struct conn *c, enum md_code code, int rc, const char *msg)
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
        conn_abort(c, "write failed");
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
        conn_abort(c, "write failed");
        return;
    }
    c->answer_bytes += n;
    srv->answer_bytes += n;
    c->last_tx = uv_now(srv->loop);
    c->qstate = Q_DONE;
    query_log(c, MD_OK, 0, n, NULL);
    conn_drain_close(c, "query answered");
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
    struct conn *c = find_conn(srv, q->conn);

    srv->queries_running--;
    if (c != NULL && (c->closing || c->qstate != Q_RUNNING))
        c = NULL;
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
        query_error(c, q->code, q->rc, q->err);
        md_query_free(q);
    } else {
        query_answer(c, q);
    }
    query_pump(srv);
}

/* Starts waiting queries while there are slots and answer memory. */
static void
query_pump(struct md_server *srv)
{
    while (srv->qwait != NULL && !srv->stopping
           && srv->queries_running < QUERY_MAX_RUNNING
           && srv->answer_bytes < QUERY_ANSWER_BUDGET) {
        struct conn *c = srv->qwait;
        struct md_query *q;
        cJSON *req = c->qreq;
        int rc;

        c->qreq = NULL;
        query_forget(c);
        q = md_query_new(srv->store, c->serial, req);
        if (q == NULL) {
            query_error(c, MD_ERROR, -ENOMEM, "daemon out of memory");
            continue;
        }
        q->work.data = srv;
        q->submitted_ns = uv_hrtime();
        rc = uv_queue_work(srv->loop, &q->work, on_query_work,
                           on_query_done);
        if (rc < 0) {
            md_query_free(q);
            query_error(c, MD_ERROR, rc, "cannot start the query");
            continue;
        }
        c->qstate = Q_RUNNING;
        srv->queries_running++;
    }
}

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
 * pid; else its last header's label or program, or its command line? */
static int
conn_matches(const struct conn *c, const char *sel)
{
    size_t i;

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
 * until snap_stored, snap_fail or snap_timed_out. */
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
        query_error(c, MD_USAGE, -EINVAL, "snap needs \"process\": a pid, "
                    "a label or a program");
        return;
    }
    sel = cJSON_GetStringValue(p);
    if (t != NULL && !cJSON_IsNull(t)) {
        timeout = cJSON_IsNumber(t) ? cJSON_GetNumberValue(t) : -1;
        if (!(timeout > 0 && timeout <= SNAP_TIMEOUT_MAX)) {
            query_error(c, MD_USAGE, -EINVAL, "snap \"timeout\" must be a "
                        "number of seconds above 0, at most 86400");
            return;
        }
    }
    for (struct conn *x = srv->conns; x != NULL; x = x->next) {
        if (x == c || !x->allowed || x->closing || x->state == CS_QUERY
            || !conn_matches(x, sel))
            continue;
        if (target == NULL || x->serial > target->serial)
            target = x;
    }
    if (target == NULL) {
        snprintf(msg, sizeof(msg), "no connected process matches %.200s",
                 sel);
        query_error(c, MD_NOTFOUND, ML_ENOTFOUND, msg);
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
        query_error(c, MD_ERROR, rc, msg);
    }
}

/* The query line of c: run it (queued) or, for snap, answer it here. */
static void
on_query(struct conn *c, cJSON *req, enum md_code code, const char *err)
{
    struct md_server *srv = c->srv;
    const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(req, "cmd");

    c->state = CS_QUERY;
    c->q_t0 = uv_hrtime();
    md_metrics_query(srv->cfg.metrics);
    snprintf(c->qcmd, sizeof(c->qcmd), "%s",
             cJSON_IsString(cmd) ? cJSON_GetStringValue(cmd) : "?");
    if (code != MD_OK) {
        query_error(c, code, -EINVAL, err);
        return;
    }
    if (cJSON_IsString(cmd) && strcmp(cJSON_GetStringValue(cmd), "snap") == 0) {
        snap_start(c, req);
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

/* Does c wait for the snapshot (target, request)?  request 0: any of
 * target's that is not being committed yet. */
static int
snap_waits_for(const struct conn *c, uint64_t target, uint64_t request)
{
    return c->state == CS_QUERY && c->qstate == Q_SNAP && !c->closing
           && c->snap_target == target
           && (request != 0 ? c->snap_req == request : !c->snap_committing);
}

/* Snapshot j, a requested one, is committed: answer who waits for it. */
static void
snap_stored(struct md_server *srv, const struct md_job *j)
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
static void
snap_fail(struct md_server *srv, uint64_t target, uint64_t request,
          const char *msg)
{
    /* query_error only closes (frees later): the list stays walkable. */
    for (struct conn *c = srv->conns; c != NULL; c = c->next)
        if (snap_waits_for(c, target, request))
            query_error(c, MD_ERROR, ML_ENOTFOUND, msg);
}

/* c is closing: snap queries waiting for a snapshot it has not sent yet
 * get an error; those whose snapshot is in the writer still wait. */
static void
snap_target_gone(struct conn *c)
{
    char msg[160];

    if (c->state == CS_QUERY || !c->allowed)
        return;
    snprintf(msg, sizeof(msg), "process %d disconnected before its snapshot "
             "was stored", (int)c->peer.pid);
    snap_fail(c->srv, c->serial, 0, msg);
}

static void
snap_timed_out(struct conn *c)
{
    char msg[200];

    snprintf(msg, sizeof(msg), "process %d did not send its snapshot within "
             "%g s%s", (int)c->snap_pid, c->snap_timeout,
             c->snap_committing ? " (it is still being stored)" : "");
    query_error(c, MD_ERROR, -ETIMEDOUT, msg);
}

/* ---- writer results ---- */

/* Reads again after a commit of c's was answered, starting with the
 * lines already buffered. */
static void
resume_commits(struct conn *c)
{
    int rc;

    c->commit_wait = 0;
    c->last_rx = uv_now(c->srv->loop);
    rc = uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
    if (rc < 0) {
        conn_abort(c, uv_strerror(rc));
        return;
    }
    process(c);
}

static struct conn *
find_conn(struct md_server *srv, uint64_t serial)
{
    for (struct conn *c = srv->conns; c != NULL; c = c->next)
        if (c->serial == serial)
            return c;
    return NULL;
}

static int server_listen(struct md_server *srv, char *err, size_t errlen);

static void
on_commit_done(struct md_server *srv, struct md_job *j)
{
    struct conn *c = find_conn(srv, j->conn);
    char line[512], q[256];
    size_t n;

    if (c != NULL && c->closed)
        c = NULL;
    if (c != NULL)
        c->commits--;
    if (j->rc == 0) {
        md_info("snapshot_stored", " id=%" PRIu64 " objects=%" PRIu64
                " conn=%" PRIu64 " pid=%d uid=%u claimed_pid=%" PRId64
                " queued_ms=%" PRIu64 " commit_ms=%" PRIu64 "%s", j->id,
                j->objects, j->conn, (int)j->src.tpid, (unsigned)j->src.uid,
                j->src.pid,
                (uv_hrtime() - j->submitted_ns - j->took_ns) / 1000000,
                j->took_ns / 1000000, c == NULL ? " client=gone" : "");
        md_metrics_snapshot(srv->cfg.metrics, j->conn, c != NULL,
                            j->objects, j->mfrag);
        j->mfrag = NULL;
        if (c != NULL) {
            n = (size_t)snprintf(line, sizeof(line), "{\"ack\": %" PRIu64
                                 ", \"objects\": %" PRIu64 "}\n", j->id,
                                 j->objects);
            if (conn_send(c, line, n) == 0)
                c->acked++;
        }
        if (j->meta.request != 0)
            snap_stored(srv, j);
    } else if (j->rc == ML_EPROTO) {
        /* Found only at commit (two objects at one address): a protocol
         * error like the others, so the connection closes. */
        md_metrics_error(srv->cfg.metrics, MD_ER_PROTO);
        md_warn("snapshot_refused", " conn=%" PRIu64 " pid=%d code=proto "
                "objects=%" PRIu64 " reason=%s%s", j->conn, (int)j->src.tpid,
                j->objects, md_logq(j->errmsg, q, sizeof(q)),
                c == NULL ? " client=gone" : "");
        if (c != NULL) {
            n = md_error_line(line, sizeof(line), j->errmsg, MD_PROTO);
            (void)conn_send(c, line, n);
        }
        if (j->meta.request != 0) {
            snprintf(line, sizeof(line), "the snapshot of process %d was "
                     "refused: %s", (int)j->src.tpid, j->errmsg);
            snap_fail(srv, j->conn, j->meta.request, line);
        }
        if (c != NULL)
            conn_drain_close(c, "proto");
    } else {
        md_metrics_error(srv->cfg.metrics, MD_ER_STORE);
        md_err("snapshot_not_stored", " conn=%" PRIu64 " pid=%d objects=%"
               PRIu64 " error=%s%s", j->conn, (int)j->src.tpid, j->objects,
               md_logq(j->errmsg, q, sizeof(q)),
               c == NULL ? " client=gone" : "");
        if (c != NULL) {
            n = md_error_line(line, sizeof(line), j->errmsg, MD_STORE);
            (void)conn_send(c, line, n);
        }
        if (j->meta.request != 0) {
            snprintf(line, sizeof(line), "the snapshot of process %d was not "
                     "stored: %s", (int)j->src.tpid, j->errmsg);
            snap_fail(srv, j->conn, j->meta.request, line);
        }
        if (j->rc == MDB_PANIC) {
            /* LMDB's fatal state: let the supervisor restart us. */
            srv->exit_status = 1;
            md_server_stop(srv, "store panic");
        }
    }
    if (c != NULL && c->closing && c->commits == 0)
        start_shutdown(c);
    else if (c != NULL && c->commit_wait && !c->closing
             && c->commits < MAX_CONN_COMMITS)
        resume_commits(c);
}

static void
on_job_done(struct md_job *j, void *arg)
{
    struct md_server *srv = arg;
    char err[512];

    switch (j->kind) {
    case MD_JOB_COMMIT:
        on_commit_done(srv, j);
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
                conn_abort(c, "close timed out");
            continue;
        }
        if (c->closing || !c->allowed)
            continue;
        if (c->state == CS_QUERY) {
            if (c->qstate == Q_SNAP && now >= c->snap_deadline)
                snap_timed_out(c);
            continue;           /* no idle limit, no keepalives */
        }
        if (c->tier == TIER_LONG && now - c->long_since >= LONG_LINE_MS) {
            conn_fail(c, MD_LIMIT, "one line took too long to arrive", 0);
            continue;
        }
        if (c->waiting || c->commit_wait)
            continue;           /* silent because we stopped reading */
        if (c->state != CS_HEADER
            && now - c->last_rx >= ML_PROTO_IDLE_SECONDS * 1000u) {
            conn_fail_as(c, MD_LIMIT, MD_ER_IDLE,
                         "silent in the middle of a snapshot", 0);
            continue;
        }
        if (now - c->last_rx >= ML_PROTO_KEEPALIVE_SECONDS * 1000u
            && now - c->last_tx >= ML_PROTO_KEEPALIVE_SECONDS * 1000u) {
            char line[64];
            int n = snprintf(line, sizeof(line), "{\"keepalive\": %lld}\n",
                             (long long)time(NULL));

            (void)conn_send(c, line, (size_t)n);
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
            query_error(c, MD_ERROR, -ESHUTDOWN, "the daemon is stopping");
    for (c = srv->conns; c != NULL; c = next) {
        next = c->next;
        if (c->closed)
            continue;
        /* Mid-snapshot, or paused with the next one already buffered. */
        if (!c->closing && c->state != CS_QUERY && (c->state != CS_HEADER
                            || (c->commit_wait && c->len > 0))) {
            inflight++;
            conn_fail(c, MD_SHUTDOWN, shutdown_msg, 0);
        }
        conn_drain_close(c, "daemon stopping");
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
    srv->parser.max_refs = ML_PROTO_MAX_REFS;   /* bounds its scratch */
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
    struct conn *c = find_conn(srv, conn);
    char line[96];
    int n;

    if (c == NULL || !c->allowed || c->closing || c->state == CS_QUERY)
        return ML_ENOTFOUND;
    n = snprintf(line, sizeof(line), "{\"request\": \"snapshot\", \"id\": %"
                 PRIu64 "}\n", id);
    md_info("snapshot_requested", " conn=%" PRIu64 " pid=%d request=%" PRIu64,
            c->serial, (int)c->peer.pid, id);
    return conn_send(c, line, (size_t)n);
}
