/* SPDX-License-Identifier: MIT
 *
 * server.h -- the listening socket, the connected clients and the
 * protocol state machine of meliae-monitord (docs/protocol.md).  Loop
 * thread only, except where a function says otherwise.
 */
#ifndef MD_SERVER_H
#define MD_SERVER_H

#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#include "creds.h"
#include "store.h"

struct md_metrics;

struct md_config {
    const char *socket_path;    /* absolute, checked by md_socket_probe;
                                 * with listen_fd, only for the log */
    gid_t group;                /* (gid_t)-1: no --group */
    int listen_fd;              /* -1, or a listening socket from systemd
                                 * (activation.h): used as is, never
                                 * chmod'ed, chown'ed nor unlinked */
    struct md_metrics *metrics; /* NULL: no --metrics-* option */
    uint64_t max_refs;          /* refs of one object line (--max-refs);
                                 * 0: ML_PROTO_MAX_REFS */
};

/* Called once when the daemon is listening (status 0) or failed to start
 * (status < 0, msg says why). */
typedef void (*md_ready_cb)(void *arg, int status, const char *msg);

struct md_server;

/* Makes sure path can be bound: absent, or a stale socket (nobody
 * listening: removed).  -1 with a one-line reason in err for a path too
 * long for sun_path, a live socket ("another daemon is listening"), a
 * non-socket file, or any other error.  Before the store is opened, so a
 * second daemon never sweeps the first one's ingests. */
int md_socket_probe(const char *path, char *err, size_t errlen);

/* Starts the writer thread, sweeps the store (in the writer), then binds
 * and listens (or listens on cfg->listen_fd); ready runs after that.  SIGTERM/SIGINT stop the server;
 * uv_run returns once everything is closed.  0 or a UV_E* code. */
int md_server_start(struct md_server **out, uv_loop_t *loop,
                    struct st_store *store, const struct md_config *cfg,
                    md_ready_cb ready, void *ready_arg);

/* Stops as SIGTERM does.  Idempotent. */
void md_server_stop(struct md_server *srv, const char *why);

/* 0 after a clean stop, 1 after a fatal error.  After uv_run returned. */
int md_server_exit_status(const struct md_server *srv);

/* Frees what uv_run left (call after uv_run returned).  NULL: no-op. */
void md_server_free(struct md_server *srv);

/* ---- connected scanners (query connections are not listed): what
 * `meliae-cli snap` is answered from (server.c) ---- */

struct md_client_info {
    uint64_t conn;              /* serial, stable for the connection */
    struct md_peer peer;
    int in_snapshot;            /* between header and trailer */
    uint64_t snapshots;         /* acked on this connection */
};

/* Calls cb for every connected, allowed client; cb returning non-zero
 * stops the walk with that value. */
int md_server_foreach_client(struct md_server *srv,
                             int (*cb)(void *ctx,
                                       const struct md_client_info *ci),
                             void *ctx);

/* Sends {"request": "snapshot", "id": id} to client conn.  0;
 * ML_ENOTFOUND if no such client (or it is closing); -EPIPE if the
 * client was dropped because it does not read its lines. */
int md_server_request_snapshot(struct md_server *srv, uint64_t conn,
                               uint64_t id);

#endif /* MD_SERVER_H */
