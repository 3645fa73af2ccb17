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

#define RP_SCHEMA_VERSION 1

/* Runs one request.  0 and *out (caller frees with cJSON_Delete); or a
 * negative code with a one-line reason in err: ML_ENOTFOUND (unknown
 * snapshot, address or process: the CLI's exit code 3), -EINVAL (a bad
 * argument: exit code 2), others (exit code 1). */
int rp_run(struct st_store *s, const cJSON *req, cJSON **out, char *err,
           size_t errlen);

#endif /* RP_REPORT_H */
