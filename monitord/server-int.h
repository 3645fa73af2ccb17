/* SPDX-License-Identifier: MIT
 *
 * server-int.h -- PRIVATE to server.c, serve_stream.c and serve_query.c:
 * the connection and server structs they share, the daemon's limits, and
 * the md__ functions one of them calls in another.  Nothing else
 * includes it; the daemon's interface is server.h.  How the pieces fit is
 * the top comment of server.c.  All of it is loop thread only.
 */
#ifndef MD_SERVER_INT_H
#define MD_SERVER_INT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "dumpline.h"
#include "metrics.h"
#include "proto.h"
#include "report.h"
#include "server.h"
#include "writer.h"

#define BASE_BUF (64u << 10)            /* per client, always */
#define WHOLE_REFS (64u << 10)          /* refs of a line parsed whole;
                                         * more: its refs are streamed */
#define LONG_REFS_CHUNK 4096            /* refs handed to the ingest at once */
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

/* Unlinks conn c from the FIFO at *headp whose links are the field NEXT
 * and whose *tailp points at the last link (headp when empty).  A macro:
 * the two FIFOs (buffer waiters, query waiters) link through different
 * fields of struct conn. */
#define MD_FIFO_REMOVE(headp, tailp, c, NEXT)                                \
    do {                                                                    \
        struct conn **pp_ = (headp);                                        \
                                                                            \
        while (*pp_ != NULL && *pp_ != (c))                                 \
            pp_ = &(*pp_)->NEXT;                                            \
        if (*pp_ == (c)) {                                                  \
            *pp_ = (c)->NEXT;                                               \
            if (*(tailp) == &(c)->NEXT)                                     \
                *(tailp) = pp_;                                             \
        }                                                                   \
        (c)->NEXT = NULL;                                                   \
    } while (0)

_Static_assert(BASE_BUF >= ML_PROTO_MAX_META_LINE,
               "a header or trailer line must fit the base buffer");
_Static_assert(BASE_BUF >= ML_PROTO_LONG_LINE,
               "a line that is not long must fit the base buffer");
_Static_assert(WHOLE_REFS * 2 > ML_PROTO_LONG_LINE,
               "a line parsed whole with more refs is long");

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
    Q_DELETE,                   /* `delete`: waiting for the writer */
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
    int lline;                  /* streaming the refs of a long line */
    struct ml_refscan rs;       /* where in them */

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
    struct rp_scope qscope;     /* whose snapshots it sees (serve_query.c) */
    struct conn *qnext;         /* srv->qwait, while in_qwait */
    int in_qwait;
    int q_held;                 /* logged as held behind a heavy query */
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
    unsigned heavy_running;     /* of which md_query_heavy: at most 1 */
    size_t answer_bytes;        /* being written, all connections */
    uint64_t next_request;      /* ids of snapshot requests */

    unsigned max_conns;         /* from RLIMIT_NOFILE, <= MAX_CONNS */
    uint64_t accept_err_at;     /* rate limit of accept error logs */
    unsigned accept_err_quiet;

    int stopping;
    int finished;
    int exit_status;
};

/* Functions one of the three files calls in another.  Their contracts
 * are the comments at their definitions. */

/* server.c: the connections. */
int md__conn_send(struct conn *c, const char *line, size_t n);
void md__conn_abort(struct conn *c, const char *why);
void md__conn_drain_close(struct conn *c, const char *why);
void md__conn_shutdown(struct conn *c);
void md__conn_resume(struct conn *c);
struct conn *md__conn_find(struct md_server *srv, uint64_t serial);

/* serve_stream.c: snapshots streamed in, and their commits. */
void md__stream_line(struct conn *c, const char *line, size_t n);
int md__long_start(struct conn *c, const char *s, size_t n, size_t *used);
int md__long_feed(struct conn *c, const char *s, size_t n, size_t *used);
void md__discard_snapshot(struct conn *c);
enum md_ereason md__code_reason(enum md_code code);
void md__conn_fail(struct conn *c, enum md_code code, const char *msg,
                   int skip_rest);
void md__conn_fail_as(struct conn *c, enum md_code code, enum md_ereason r,
                      const char *msg, int skip_rest);
void md__commit_done(struct md_server *srv, struct md_job *j);

/* serve_query.c: queries, and `snap`. */
void md__query_start(struct conn *c, cJSON *req, enum md_code code,
                     const char *err);
void md__query_too_long(struct conn *c);
void md__query_error(struct conn *c, enum md_code code, int rc,
                     const char *msg);
void md__query_forget(struct conn *c);
void md__snap_committing(struct md_server *srv, uint64_t target,
                         uint64_t request);
void md__snap_stored(struct md_server *srv, const struct md_job *j);
/* The writer ran delete job j: answer its query, if still there. */
void md__delete_done(struct md_server *srv, const struct md_job *j);
void md__snap_fail(struct md_server *srv, uint64_t target, uint64_t request,
                   const char *msg);
void md__snap_target_gone(struct conn *c);
void md__snap_timed_out(struct conn *c);

#endif /* MD_SERVER_INT_H */
