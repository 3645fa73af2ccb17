/* SPDX-License-Identifier: MIT
 *
 * births.h -- birth sites in the store (docs/store-format.md, "births",
 * "btrace"): the distinct allocation tracebacks of a snapshot and the
 * traceback of each object, kept in their own databases, written only
 * for snapshots whose stream had them.  Private to store/.
 */
#ifndef ST_BIRTHS_H
#define ST_BIRTHS_H

#include "store-int.h"

/* Objects per btrace block. */
#define ST_BTRACE_BLOCK 1024

/* Most frames of one traceback, and bytes of its stored JSON. */
#define ST_TRACE_MAX_FRAMES 1000
#define ST_TRACE_MAX_JSON (1u << 20)

struct st_births;

/* Ingest: object l (number in->n, before it is counted) has l->trace or
 * not.  0 or the error (in->failed set). */
int st__births_object(struct st_ingest *in, const struct ml_dumpline *l);
void st__births_free(struct st_births *b);

/* Opens the two databases (created by a writer; a reader of a store made
 * before them gets 0 handles: no snapshot has births). */
int st__births_open(struct st_store *s, MDB_txn *txn, int ro);

/* Commit: hands every births and btrace entry of the ingest to put (the
 * snapshot's transactions).  dropped(dctx, oid): a repeated line dropped
 * by keep_first (its oid then goes, and the later ones move down).  0 or
 * the first error. */
typedef int (*st_births_put_fn)(void *ctx, MDB_dbi db, const void *k,
                                size_t klen, const void *v, size_t vlen);
int st__births_write(struct st_store *s, struct st_ingest *in, uint64_t id,
                     int (*dropped)(const void *dctx, uint64_t oid),
                     const void *dctx, st_births_put_fn put, void *ctx);

/* 1 if in holds any birth sites. */
int st__births_any(const struct st_ingest *in);

/* Retention: deletes snapshot id's births and btrace. */
int st__births_drop(struct st_store *s, MDB_txn *txn, uint64_t id);

#endif /* ST_BIRTHS_H */
