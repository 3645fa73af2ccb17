/* SPDX-License-Identifier: MIT
 *
 * retained.h -- the dominator tree's answers kept with a snapshot
 * (docs/store-format.md, the "retained" and "rtypes" databases;
 * docs/retained.md, what they mean): every object's retained size and
 * immediate dominator, the per-type retained sums, the largest objects.
 * st_commit computes them once, on its work thread, in file-backed
 * arrays (common/dominators.c, the loader's implementation too), and
 * writes them once the snapshot is visible, in transactions of their own
 * (st_commit2's second step, store.h): `top --retained`, `dominators` and
 * `report` then read a few records instead of the whole graph.  A store
 * made before them has none: the reports compute on demand
 * (report_dominators.c), and a writer keeps the result with
 * st_retained_fill (the daemon does after such a query).
 */
#ifndef ST_RETAINED_H
#define ST_RETAINED_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* In st_retained_get's idom: the object's immediate dominator is the
 * virtual root (dominators.h, ML_DOM_ROOT). */
#define ST_RET_ROOT UINT32_MAX

/* The snapshot's figures ("rtypes" key tid 0). */
struct st_retinfo {
    uint64_t objects;           /* the snapshot's */
    uint64_t total;             /* sum of the sizes */
    uint64_t roots;             /* unreferred objects and modules */
    uint64_t leftover;          /* roots picked among unreached cycles */
    uint32_t ntop;              /* largest retained sizes stored: */
    const unsigned char *top;   /* ntop u32 big-endian oids, largest first
                                 * (ties: lower oid), valid until
                                 * st_read_end */
};

/* ML_ENOTFOUND: none stored (a store or a snapshot from before them, or
 * the computation failed at commit); -ENODATA: the graph was dropped. */
int st_retained_info(struct st_read *r, uint64_t id, struct st_retinfo *out);

/* The i-th (< ntop) oid of out->top. */
uint32_t st_retinfo_top(const struct st_retinfo *in, size_t i);

/* Object oid's retained size and immediate dominator (ST_RET_ROOT). */
int st_retained_get(struct st_read *r, uint64_t id, uint32_t oid,
                    uint64_t *retained, uint32_t *idom);

/* Every object, in oid order; cb returning non-zero stops with it. */
int st_retained_each(struct st_read *r, uint64_t id,
                     int (*cb)(void *arg, uint32_t oid, uint64_t retained,
                               uint32_t idom),
                     void *arg);

/* A type's row: its objects, what those that no object of the type
 * dominates retain (and how many they are), the largest retained size
 * of one of them and its oid. */
struct st_rettype {
    uint32_t tid;
    uint64_t count, retained, top, max_retained;
    uint32_t max_oid;
};

/* The rows of every type the snapshot has, by type id. */
int st_retained_types(struct st_read *r, uint64_t id,
                      int (*cb)(void *arg, const struct st_rettype *t),
                      void *arg);

/* Computes and stores the answers of snapshot id, whose graph is
 * stored, if they are not there yet (0 then too).  Writer thread only:
 * it writes.  Memory: file-backed arrays in the store's tmp/, as the
 * commit's.  The record the readers look for is written last, so a
 * crash half way leaves nothing they use (the next fill deletes it).
 * The map is grown first for the records (up to --max-store:
 * MDB_MAP_FULL past it). */
int st_retained_fill(struct st_store *s, uint64_t id);

/* 1 while a commit of this process (st_commit2's second step) is
 * computing and writing snapshot id's answers: the snapshot is visible,
 * its answers are not stored yet and will be.  A query that would
 * compute them on demand waits instead (st_retained_wait, then a new
 * read transaction): the daemon's do, so that no query holds a copy of
 * the tree beside the commit's.  Another process (the CLI's --store)
 * sees 0 and computes on demand, as for an old store. */
int st_retained_pending(struct st_read *r, uint64_t id);

/* Waits until no commit of this process has answers pending.  Call it
 * without an st_read open (the step may need to grow the map). */
void st_retained_wait(struct st_store *s);

/* ---- for the store's own files (commit.c, query.c) ---- */

#include <lmdb.h>

#include "dominators.h"

/* Objects per "retained" value. */
#define ST_RET_RUN 256

/* Largest retained sizes kept in the snapshot's figures: `top
 * --retained` of up to this many reads nothing else of the kind. */
#define ST_RET_TOP 1000

/* An O(n) array in an unlinked file of dir, mapped shared: the kernel
 * can write it back and drop it, so it is no anonymous memory.  NULL
 * (errno set) on failure.  st__unmap gives it back. */
void *st__map_tmp(const char *dir, size_t bytes);
void st__unmap(void *p, size_t bytes);

/* The commit's dominator work, by kept object number. */
struct st__retwork {
    const char *tmpdir;
    size_t n;
    const uint64_t *size;       /* n, the caller's (set before compute) */
    const uint32_t *tid;        /* n, the ingest's type numbers: the same */
    uint32_t *succ_start, *pred_start;  /* in the pool while computing */
    uint64_t nedges;
    void *pool;                 /* retained.c's allocator */
    struct ml_dom d;
    int done;                   /* d is computed */
};

/* Pages the commit has touched already and needs no more (the sorted
 * pairs once addrs is written, the sort's scratch): the tree's arrays go
 * there first.  A page faulted in and zeroed for the first time is the
 * commit's dearest memory operation. */
struct st__span {
    void *p;
    size_t len;
};

/* For n objects, new mappings in tmpdir.  0 or ML_ETOOBIG. */
int st__retwork_init(struct st__retwork *w, const char *tmpdir, size_t n);

/* The dominators of the graph whose nedges edges (child << 32 | parent)
 * are sorted by child, then parent; type numbers below ntypes,
 * module_tid the module type's (UINT32_MAX: none).  The edges are the
 * caller's scratch and are overwritten: the referrers (their low
 * halves) compacted into the first half, the refs CSR built in the
 * second; they must stay mapped until st__retwork_free.  The work
 * arrays come from the npool spans first (unmapped by the caller after
 * st__retwork_free), else from new mappings in tmpdir. */
int st__retwork_compute(struct st__retwork *w, uint64_t *edges,
                        uint64_t nedges, uint32_t module_tid, size_t ntypes,
                        const struct st__span *pool, size_t npool);

void st__retwork_free(struct st__retwork *w);

/* Writes the answers of d as snapshot id's "retained" and "rtypes"
 * records through put (the caller's transaction), the figures last.  tid
 * are the objects' type numbers, gtid (NULL: the same) the store's type
 * id of each. */
int st__ret_write(struct st_store *s, uint64_t id, const struct ml_dom *d,
                  const uint32_t *tid, const uint32_t *gtid,
                  int (*put)(void *arg, MDB_dbi db, const void *k,
                             size_t klen, const void *v, size_t vlen),
                  void *arg);

/* Writes d's answers as snapshot id's records in write transactions of
 * their own (st_commit2's second step, st_retained_fill), after deleting
 * what a crash may have left of earlier ones; the figures, written last,
 * make them visible.  Grows the map first.  Writer thread only. */
int st__ret_store(struct st_store *s, uint64_t id, const struct ml_dom *d,
                  const uint32_t *tid, const uint32_t *gtid);

#endif /* ST_RETAINED_H */
