/* SPDX-License-Identifier: MIT
 *
 * report.h -- the answers of meliae-cli's commands, computed from the
 * store as JSON documents.  meliae-cli calls rp_run on a store it opened
 * (--store) and prints the document as a table or as is (--json); without
 * --store it sends the same request to meliae-monitord, which calls
 * rp_run on its own store and sends the document back.  One
 * implementation, two transports.
 *
 * Request: a JSON object {"cmd": NAME, ...arguments...}:
 *
 *   snapshots  since, until (ns since the epoch, 0: none), process
 *   summary    snap, process, top, by ("size"|"count")
 *   growth     since, until, process, by, top
 *   diff       a, b, process, top
 *   referrers  snap, process, address, depth, chains
 *   show       snap, process, address, limit
 *   top        snap, process, top, types, retained (true: by retained size)
 *   dominators snap, process, address
 *
 * snap, a, b: a snapshot reference: "17", "latest", "latest~3"; process
 * (optional) scopes "latest" and growth: a pid, a label or a program.
 *
 * Answer: {"schema_version": 1, "command": NAME, ...}; the fields of each
 * command are documented in docs/cli-json.md.  Sizes are bytes, addresses
 * integers, times ISO 8601 (UTC) plus "time_ns".
 */
#ifndef RP_REPORT_H
#define RP_REPORT_H

#include <cjson/cJSON.h>

#include "store.h"

#define RP_SCHEMA_VERSION 2

/* Whose snapshots a request sees, and how large an answer it may have
 * (docs/protocol.md, "Who sees what").  The daemon scopes every query
 * to the asking uid (SO_PEERCRED) unless root or its own user names
 * another; meliae-cli on a store it opened sees all, or the --uid it
 * names. */
struct rp_scope {
    int all;                    /* every snapshot (uid unused) */
    uint32_t uid;               /* else only those of this uid */
    uint32_t owner;             /* the uid of snapshots that have no kernel-
                                 * verified one (files imported with
                                 * --store): the store's owner */
    size_t max_answer;          /* 0: none; else bytes an answer may be,
                                 * estimated before it is built: -E2BIG */
};

/* req's "uid" (a number) or "all_users" (true) into *sc, which holds the
 * default on entry: 1 if req names one, 0 if not, -EINVAL (reason in
 * err) for a bad value. */
int rp_scope_request(const cJSON *req, struct rp_scope *sc, char *err,
                     size_t errlen);

/* Does scope sc (NULL: all) see snapshot si?  Only the kernel's uid
 * counts; an imported file is the owner's. */
int rp_scope_sees(const struct rp_scope *sc, const struct st_snapinfo *si);

/* Runs one request as scope sc (NULL: every snapshot, no cap).  0 and
 * *out (caller frees with cJSON_Delete); or a negative code with a
 * one-line reason in err: ML_ENOTFOUND (unknown snapshot, address or
 * process, or one of another user: the CLI's exit code 3), -EINVAL (a bad
 * argument: exit code 2), others (exit code 1; -E2BIG: the answer would
 * be over sc->max_answer). */
int rp_run(struct st_store *s, const cJSON *req, const struct rp_scope *sc,
           cJSON **out, char *err, size_t errlen);

/* rp_run; *computed (may be NULL) gets the id of a snapshot whose
 * retained sizes the answer had to compute, for want of stored ones (a
 * snapshot stored before they were, store/retained.h), else 0: a writer
 * then keeps them with st_retained_fill (the daemon does). */
int rp_run_ex(struct st_store *s, const cJSON *req, const struct rp_scope *sc,
              cJSON **out, char *err, size_t errlen, uint64_t *computed);

#endif /* RP_REPORT_H */
