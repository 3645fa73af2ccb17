/* SPDX-License-Identifier: MIT
 *
 * store-int.h -- what the store's files share and nobody else sees: the
 * open store, the object record codec and the key builders.  The formats
 * are those of docs/store-format.md.
 */
#ifndef ST_STORE_INT_H
#define ST_STORE_INT_H

#include <lmdb.h>
#include <pthread.h>

#include "codec.h"
#include "ml-common.h"
#include "store.h"

/* The layout version this build reads and writes (meta "format"). */
#define ST_FORMAT_VERSION 2

/* Bytes of a block value: four LMDB pages less the overflow page header,
 * so a block fills its overflow pages (docs/store-format.md). */
#define ST_BLOCK_BYTES (4 * 4096 - 16)

/* Every ST_SKIP-th entry of a block is listed in the block's header
 * (docs/store-format.md, "Blocks"), so a lookup decodes at most ST_SKIP
 * entries instead of the whole block. */
#define ST_SKIP 32
#define ST_MAX_SKIP (ST_BLOCK_BYTES / ST_SKIP + 1)

/* Bytes of a block header with n skip entries: u16 n, n x (u16, u64). */
#define ST_BLOCK_HDR(n) (2 + 10 * (size_t)(n))

/* Dirty bytes after which a commit's transaction is committed and a new
 * one begun (st_store.txn_bytes; tests lower it).  The writer maps the
 * store with MDB_WRITEMAP, so dirty pages are the file's own, not
 * malloc'd as without it: the bound is on the disk allocated ahead and on
 * LMDB's dirty page list, and each commit costs a sync, hence 64 MiB. */
#define ST_TXN_BYTES (64u << 20)

/* An entry whose worst-case size exceeds this cannot share a block: it is
 * written as a block of its own, straight into LMDB's reserved space
 * (docs/store-format.md, "Blocks"). */
#define ST_GIANT (ST_BLOCK_BYTES - ST_BLOCK_HDR(1))

/* Bytes of the data file allocated (fallocate) beyond what the next
 * writes need: st__disk_ahead. */
#define ST_DISK_SLACK (32ull << 20)

/* First map size; doubled on MDB_MAP_FULL up to st_options.max_store. */
#define ST_INITIAL_MAP (256ull << 20)

/* Longest type name kept (LMDB keys are at most 511 bytes); longer names
 * are cut at a UTF-8 boundary. */
#define ST_TYPE_NAME_MAX 480

struct st_store {
    MDB_env *env;
    MDB_dbi meta, snaps, bytime, byproc, tname, tid, summ, objs, addrs, rev;
    /* Writer only: the snapshots that keep their graph, per process
     * (docs/store-format.md, "graphs"), for retention; 0 in readers. */
    MDB_dbi graphs;
    /* Birth sites (births.c); 0 in a reader of a store made before them. */
    MDB_dbi births, btrace;
    /* The dominator tree's answers (retained.h); has_ret 0 in a reader
     * of a store made before them. */
    MDB_dbi ret, rtypes;
    int has_ret;
    unsigned flags;
    uint64_t max_store;
    unsigned retain;
    uint64_t retain_age_ns;
    char *dir;
    char *tmpdir;
    int lockfd;                 /* flock'd writer.lock; -1 read-only */
    /* Held shared by every st_read, exclusive while the map is resized:
     * mdb_env_set_mapsize needs no transaction open in this process (the
     * daemon answers queries on other threads while it writes). */
    pthread_rwlock_t resize;
    /* st_size's answer, refreshed by the thread that writes (st_open,
     * st_commit, st_sweep): the daemon's loop reads it for its metrics
     * and must not call into LMDB while the writer may be remapping. */
    _Atomic uint64_t used_bytes;
    /* Writer: the data file's fd and how far its blocks are allocated
     * (st__disk_ahead). */
    int datafd;
    uint64_t alloc_end;
    size_t txn_bytes;           /* ST_TXN_BYTES */
    /* A failed mdb_env_set_mapsize leaves LMDB without a map: everything
     * after that fails with MDB_PANIC instead of touching it (the daemon
     * then stops, for its supervisor to restart it). */
    _Atomic int broken;
    /* The commit's second step (st_commit2): the snapshot whose retained
     * answers this process is computing and writing, 0 if none; set
     * before the snapshot turns visible, cleared (and ret_cv broadcast)
     * when the step ends.  Queries of the daemon wait on it
     * (st_retained_pending, st_retained_wait). */
    pthread_mutex_t ret_mu;
    pthread_cond_t ret_cv;
    uint64_t ret_pending;
};

/* Sets (id) or clears (0, with a broadcast) s->ret_pending. */
void st__ret_pending_set(struct st_store *s, uint64_t id);

/* Refreshes s->used_bytes.  On the writing thread only. */
void st__size_refresh(struct st_store *s);

/* With MDB_WRITEMAP, LMDB writes new pages through the map: a page the
 * disk cannot back (ENOSPC) would be a SIGBUS when first touched, not an
 * error.  So before a transaction may add `more` bytes of pages past
 * `used` (the committed end), the data file's blocks are allocated that
 * far and ST_DISK_SLACK beyond.  0 or -errno (-ENOSPC).  Writer only. */
int st__disk_ahead(struct st_store *s, uint64_t used, uint64_t more);

/* Begins a write transaction (every one of the store's goes through here)
 * after st__disk_ahead(used end, 0): LMDB's first pages of it, before any
 * reservation sized for a value, are then backed.  0, -ENOSPC or an LMDB
 * code (as mdb_txn_begin).  Writer only. */
int st__write_txn(struct st_store *s, MDB_txn **txn);

/* The committed end of the data file's pages, for st__disk_ahead. */
uint64_t st__used_end(struct st_store *s);

/* One object record, decoded.  The refs are read one by one with
 * st_rec_ref from refs_p. */
struct st_rec {
    uint64_t addr;
    uint64_t tid;
    uint64_t size;
    int has_len;
    uint64_t len;
    const unsigned char *name;
    size_t name_len;
    int has_name;
    enum ml_vkind vkind;
    const unsigned char *value;
    size_t value_len;
    uint64_t nrefs;
    const unsigned char *refs_p;
};

/* Bytes st_rec_put may write for a record with these strings and refs. */
size_t st_rec_max(size_t name_len, size_t value_len, size_t nrefs);

/* Encodes one record after one whose address was prev (0 first); refs
 * are addresses.  Returns the end. */
unsigned char *st_rec_put(unsigned char *p, uint64_t prev, uint64_t addr,
                          uint64_t tid, uint64_t size, int has_len,
                          uint64_t len, const char *name, size_t name_len,
                          int has_name, enum ml_vkind vkind,
                          const char *value, size_t value_len,
                          const uint64_t *refs, size_t nrefs);

/* The same up to and including the number of refs: the refs' bytes,
 * which do not depend on prev, are then copied as they are. */
unsigned char *st_rec_put_head(unsigned char *p, uint64_t prev,
                               uint64_t addr, uint64_t tid, uint64_t size,
                               int has_len, uint64_t len, const void *name,
                               size_t name_len, int has_name,
                               enum ml_vkind vkind, const void *value,
                               size_t value_len, uint64_t nrefs);

/* Exact bytes st_rec_put_head writes for these arguments. */
size_t st_rec_head_len(uint64_t prev, uint64_t addr, uint64_t tid,
                       uint64_t size, int has_len, uint64_t len,
                       size_t name_len, int has_name, enum ml_vkind vkind,
                       size_t value_len, uint64_t nrefs);

/* Decodes the record at *pp (after one at prev) and moves *pp past it,
 * refs included.  0 or ML_ECORRUPT. */
int st_rec_get(const unsigned char **pp, const unsigned char *end,
               uint64_t prev, struct st_rec *r);

/* The same up to the number of refs: *pp is left at r->refs_p, for the
 * caller to read the refs with st_rec_ref (the record ends after them). */
int st_rec_get_head(const unsigned char **pp, const unsigned char *end,
                    uint64_t prev, struct st_rec *r);

/* The i-th ref of r (call in order, i = 0, 1, ...; *pp starts at
 * r->refs_p).  Inline: the commit calls it for every ref. */
static inline int
st_rec_ref(const unsigned char **pp, const unsigned char *end,
           const struct st_rec *r, uint64_t *ref)
{
    uint64_t z;

    if (st_get_varint(pp, end, &z) < 0)
        return ML_ECORRUPT;
    *ref = st_unzigzag(r->addr, z);
    return 0;
}

/* Keys: 8-byte snapshot id, then the rest big-endian. */
static inline void
st_key64(unsigned char k[16], uint64_t snap, uint64_t x)
{
    st_put_be64(k, snap);
    st_put_be64(k + 8, x);
}

static inline void
st_key32(unsigned char k[12], uint64_t snap, uint32_t x)
{
    st_put_be64(k, snap);
    st_put_be32(k + 8, x);
}

/* Deletes every record of snapshot id from db (keys that start with its
 * 8-byte id). */
int st__del_prefix(MDB_txn *txn, MDB_dbi db, uint64_t id);

/* Deletes the graph (objs, addrs, rev) or, with all, everything of
 * snapshot id, in txn. */
int st__drop_snapshot(struct st_store *s, MDB_txn *txn, uint64_t id,
                      int all);

/* Runs retention (per-process graphs, summaries by age) after a commit of
 * a snapshot of process proc. */
int st__retain(struct st_store *s, uint64_t proc, uint64_t now_ns);

/* Doubles the map (of mapsize bytes) until it holds want bytes, up to
 * --max-store (commit.c).  0, or MDB_PANIC when LMDB could not map it
 * again.  Writer thread, no read of its own open. */
int st__grow_map(struct st_store *s, uint64_t mapsize, uint64_t want);

/* Frees the oldest graph other than keep's; ML_ENOTFOUND when none. */
int st__prune_oldest(struct st_store *s, uint64_t keep);

uint64_t st__now_ns(void);

/* For readers of the store's other databases (births.c, retained.c): r's
 * transaction and store, and 0 if snapshot id is complete with its
 * graph (-ENODATA: dropped; ML_ENOTFOUND: no such snapshot). */
MDB_txn *st__read_txn(const struct st_read *r);
struct st_store *st__read_store(const struct st_read *r);
int st__with_graph(struct st_read *r, uint64_t id);

#endif /* ST_STORE_INT_H */
