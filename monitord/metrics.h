/* SPDX-License-Identifier: MIT
 *
 * metrics.h -- meliae-monitord's Prometheus metrics: a file for
 * node_exporter's textfile collector (--metrics-textfile) and/or an HTTP
 * endpoint, GET /metrics (--metrics-listen).  The series are listed in
 * docs/man/meliae-monitord.8.scd, "METRICS".
 *
 * Threads:
 *   - md_metrics_prepare runs on the writer thread, right after st_commit:
 *     it reads the new snapshot's per-type summary (a read transaction,
 *     O(types)) and renders that process's lines, so the loop never
 *     touches LMDB and never formats more than a few lines per event;
 *   - everything else is loop-thread only.  The textfile is written
 *     (temporary file, fsync, rename, fsync of the directory) on libuv's
 *     threadpool, one write at a time, later changes coalesced into one
 *     more write;
 *   - HTTP connections are libuv TCP handles on the loop: at most
 *     MD_METRICS_MAX_HTTP at once, a request head of at most 8 KiB within
 *     5 s, one answer, then closed.
 *
 * Memory is bounded: at most MD_METRICS_MAX_PROCS processes (the one
 * updated longest ago is dropped for a new one), each with at most
 * MD_METRICS_TOP_TYPES + 1 type rows.  The processes' text is rebuilt
 * only when one of them changed, and shared by every answer being
 * written; the daemon-wide counters (a few hundred bytes) are formatted
 * per request.
 *
 * Every function taking a struct md_metrics * accepts NULL (no metrics)
 * and then does nothing.
 */
#ifndef MD_METRICS_H
#define MD_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "store.h"

#define MD_METRICS_TOP_TYPES 50         /* then type="other" */
#define MD_METRICS_MAX_PROCS 1000
#define MD_METRICS_MAX_HTTP 16          /* more: 503 */
/* How long a disconnected process's series stay (--metrics-keep): long
 * enough for a restart to reconnect without a gap in the graphs, short
 * enough that a fleet of short-lived workers does not pile up series. */
#define MD_METRICS_GONE_KEEP_MS (300u * 1000u)

/* reason="..." of meliae_ingest_errors_total. */
enum md_ereason {
    MD_ER_PROTO,                /* malformed line, bad counts, duplicates */
    MD_ER_LIMIT,                /* a protocol limit; too many clients */
    MD_ER_VERSION,              /* unsupported meliae_stream */
    MD_ER_STORE,                /* spool or commit failed */
    MD_ER_ABORTED,              /* the client's trailer said "aborted" */
    MD_ER_DISCONNECT,           /* the client left mid-snapshot */
    MD_ER_IDLE,                 /* silent mid-snapshot (a limit too) */
    MD_ER_DENIED,               /* peer credentials refused */
    MD_ER_COUNT
};

struct md_metrics_config {
    const char *textfile;       /* absolute path, or NULL */
    int listen;                 /* listen_addr is set */
    struct sockaddr_storage listen_addr;
    uint64_t keep_ms;           /* 0: MD_METRICS_GONE_KEEP_MS */
};

struct md_metrics;

/* One process's lines from one snapshot: made by md_metrics_prepare on
 * the writer thread, taken over by md_metrics_snapshot on the loop. */
struct md_mfrag;

/* Writes the first textfile (synchronously: this is start-up, the loop
 * is not running) and binds the HTTP endpoint.  0; or -1 with a one-line
 * reason in err and nothing left behind. */
int md_metrics_new(struct md_metrics **out, uv_loop_t *loop,
                   struct st_store *store,
                   const struct md_metrics_config *cfg, char *err,
                   size_t errlen);

/* Where meliae_connections comes from: count(arg), asked when the text
 * is made. */
void md_metrics_set_source(struct md_metrics *m, unsigned (*count)(void *),
                           void *arg);

/* Stops serving HTTP: closes the listener and the connections.  The
 * textfile is still rewritten for the commits that finish during the
 * shutdown (uv_run waits for those writes).  Idempotent. */
void md_metrics_close(struct md_metrics *m);

/* After uv_run returned.  NULL is a no-op. */
void md_metrics_free(struct md_metrics *m);

/* ---- events (loop thread) ---- */

void md_metrics_bytes_received(struct md_metrics *m, uint64_t n);
void md_metrics_error(struct md_metrics *m, enum md_ereason r);
void md_metrics_query(struct md_metrics *m);

/* Snapshot committed for connection conn (connected: it is still
 * there): counts it, and takes f over (f may be NULL when the summary
 * could not be read: then only the counters move).  Schedules a textfile
 * write. */
void md_metrics_snapshot(struct md_metrics *m, uint64_t conn, int connected,
                         uint64_t objects, struct md_mfrag *f);

/* Connection conn closed: its processes are kept
 * MD_METRICS_GONE_KEEP_MS more, with meliae_process_connected 0. */
void md_metrics_conn_gone(struct md_metrics *m, uint64_t conn);

/* Once a second: drops processes gone for longer than
 * MD_METRICS_GONE_KEEP_MS. */
void md_metrics_tick(struct md_metrics *m);

/* ---- writer thread ---- */

/* The lines of snapshot id (just committed, from src) for its process:
 * 0 and *out; or a negative code (the snapshot is then left out of the
 * per-process series until the next one).  Reads the store; touches
 * nothing of the loop's. */
int md_metrics_prepare(struct st_store *s, uint64_t id,
                       const struct st_source *src, struct md_mfrag **out);

/* NULL is a no-op.  Any thread. */
void md_mfrag_free(struct md_mfrag *f);

#endif /* MD_METRICS_H */
