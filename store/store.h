/* SPDX-License-Identifier: MIT
 *
 * store.h -- the snapshot store: LMDB files under one directory, written
 * by meliae-monitord (and `meliae-cli import`), read by meliae-cli.  The
 * layout (databases, keys, values, invariants) is docs/store-format.md.
 *
 * A snapshot is ingested in two steps so the daemon's event loop never
 * touches the disk's slow path:
 *   1. st_ingest_new / st_ingest_object / st_ingest_end, on any thread
 *      (the loop): each object line is checked and appended to a spool,
 *      an unlinked temporary file in the store's tmp/ directory; memory
 *      stays constant whatever the snapshot size;
 *   2. st_commit, on the one writer thread: the spool becomes LMDB
 *      records in several transactions; the snapshot turns visible in the
 *      last one.  A crash in between leaves an "ingesting" snapshot that
 *      st_sweep deletes at the next start.
 *
 * Readers: st_read_begin opens a read transaction; every pointer a query
 * returns stays valid until st_read_end (they point into the map).  A
 * thread holds at most one st_read at a time (its lock prefers the
 * writer: a second one could wait behind a map resize forever), and may
 * not call st_commit while it holds one.
 *
 * Errors are negative: -errno, ML_E* (ml-common.h), or an LMDB code
 * (MDB_MAP_FULL...).  st_strerror names them all.
 */
#ifndef ST_STORE_H
#define ST_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "dumpline.h"

struct st_store;
struct st_ingest;
struct st_read;

/* ---- opening ---- */

#define ST_RDONLY 0x1           /* readers (the CLI); no tmp/, no sweep */

struct st_options {
    unsigned flags;
    uint64_t max_store;         /* bytes; 0: ST_DEFAULT_MAX_STORE */
    unsigned retain;            /* graphs kept per process; 0: ST_DEFAULT_RETAIN */
    uint64_t retain_age_ns;     /* summaries kept; 0: ST_DEFAULT_RETAIN_AGE */
    uint64_t map_size;          /* first map; 0: 256 MiB; grows to max_store */
};

#define ST_DEFAULT_MAX_STORE (64ull << 30)
#define ST_DEFAULT_RETAIN 10
#define ST_DEFAULT_RETAIN_AGE (7ull * 24 * 3600 * 1000000000ull)

/* Opens (read-write: creates, mode 0700) the store in dir.  Refuses a dir
 * that is a symlink or writable by group/others (-EPERM, message in err).
 * err (may be NULL) receives a one-line reason on failure. */
int st_open(struct st_store **out, const char *dir,
            const struct st_options *opt, char *err, size_t errlen);
void st_close(struct st_store *s);

/* Deletes snapshots left "ingesting" by a crash; *n (may be NULL) gets
 * their number.  Writer only. */
int st_sweep(struct st_store *s, uint64_t *n);

/* Deletes complete snapshot id: its record, summaries, objects and
 * indexes, in one transaction.  ML_ENOTFOUND if there is none.  Writer
 * only. */
int st_delete(struct st_store *s, uint64_t id);

/* mdb_reader_check: clears reader slots of dead processes. */
int st_reader_check(struct st_store *s, int *dead);

/* Bytes the store's data file uses (for logs and metrics). */
uint64_t st_size(struct st_store *s);

const char *st_strerror(int err);

/* ---- ingest ---- */

/* What the daemon knows of a snapshot's source.  Strings are copied. */
/* The process beside its objects when a snapshot was taken: the header's
 * "process" (docs/protocol.md).  has == 0: not sent (zero-initialised);
 * else a figure < 0 was null or missing. */
struct st_procfig {
    int has;
    int64_t rss, rss_anon;      /* bytes */
    int64_t traced;             /* tracemalloc's traced total */
    int64_t arenas, arena_bytes, pools;         /* pymalloc's */
    int64_t allocated_bytes, free_block_bytes, unused_pool_bytes;
};


struct st_source {
    /* claimed by the client's header (docs/protocol.md) */
    int64_t pid;
    double start_time;          /* epoch seconds; 0: unknown */
    const char *hostname, *program, *python, *label;   /* NULL: none */
    const char *values;         /* "none" | "truncated" | "full" */
    const char *mode;           /* "all" | "gc" | "file" */
    /* an imported file: its name (no directory) and content hash */
    const char *file, *content_hash;    /* NULL: none */
    uint64_t request;
    double time;                /* client's walk start, epoch seconds */
    /* verified by the kernel (SO_PEERCRED + /proc); trusted == 0 for
     * `import` of a file */
    int trusted;
    uint32_t uid, gid;
    int32_t tpid;
    double tstart_time;         /* epoch seconds */
    struct st_procfig procfig;  /* claimed, like the header */
};

/* tmpdir: where the spool lives (st_tmpdir(s) for a store's own).
 * keep_values: store "value" fields (the header's values != "none"); a
 * value on a line when keep_values == 0 is a protocol error. */
int st_ingest_new(struct st_ingest **out, const char *tmpdir, int keep_values);

/* Appends one parsed object line.  0; ML_EPROTO (duplicate address, too
 * many objects, value not allowed) with st_ingest_error; -errno
 * (-ENOSPC...) from writing the spool. */
int st_ingest_object(struct st_ingest *in, const struct ml_dumpline *l);

/* One object whose refs come in pieces (a long line, docs/protocol.md):
 * begin with the head (l's refs are ignored), then any number of
 * st_ingest_refs, then st_ingest_finish.  Nothing else may come between.
 * Errors as st_ingest_object; more than ML_PROTO_MAX_REFS refs is
 * ML_ETOOBIG.  Memory stays the write buffer whatever the count. */
int st_ingest_begin(struct st_ingest *in, const struct ml_dumpline *l);
int st_ingest_refs(struct st_ingest *in, const uint64_t *refs, size_t n);
int st_ingest_finish(struct st_ingest *in);

/* The trailer's claims.  ML_EPROTO if they differ from what arrived. */
int st_ingest_end(struct st_ingest *in, uint64_t objects, uint64_t bytes);

/* For dump files: a repeated address keeps its first line and the later
 * ones are dropped at commit (meliae 0.5's dump_gc_objects repeats
 * objects; meliae.loader does the same).  Streams refuse repeats. */
void st_ingest_keep_first(struct st_ingest *in);

uint64_t st_ingest_count(const struct st_ingest *in);
const char *st_ingest_error(const struct st_ingest *in);
void st_ingest_free(struct st_ingest *in);

const char *st_tmpdir(const struct st_store *s);

/* The process key of docs/store-format.md ("byproc"). */
uint64_t st_proc_key(const struct st_source *src);

/* Writes an ended ingest as a new snapshot; *id gets its id.  Writer
 * thread only.  On error nothing of it is visible (ML_EFULL: --max-store
 * reached even after pruning; ML_EPROTO: two objects at one address) and
 * st_ingest_error says why.  Retention runs after the commit. */
int st_commit(struct st_store *s, struct st_ingest *in,
              const struct st_source *src, uint64_t *id);

/* st_commit in its two steps, told apart: 1. the snapshot is written and
 * turns visible (its last transaction), then visible(arg, *id) is called
 * (NULL: not), on this thread; 2. its retained answers (retained.h) are
 * written in transactions of their own, and *retrc (NULL: not kept) gets
 * their result: 0, or why the snapshot has none stored (it then answers
 * as an old store's: computed on demand, then kept).  A crash between
 * the two leaves the snapshot without them.  The return value is step
 * 1's, as st_commit's (st_commit is st_commit2 without a callback). */
int st_commit2(struct st_store *s, struct st_ingest *in,
               const struct st_source *src, uint64_t *id,
               void (*visible)(void *arg, uint64_t id), void *arg,
               int *retrc);

/* ---- reading ---- */

int st_read_begin(struct st_store *s, struct st_read **out);
void st_read_end(struct st_read *r);

struct st_snapinfo {
    uint64_t id;
    uint64_t time_ns;           /* commit time */
    uint64_t proc;              /* process key (docs/store-format.md) */
    uint64_t objects, bytes;
    int has_graph;              /* objects still stored (retention) */
    int trusted;
    uint32_t uid;
    int32_t pid;                /* trusted pid if trusted, else claimed */
    double walk_time;           /* client's walk start */
    const char *label, *program, *hostname, *python, *values, *mode;
    const char *file, *content_hash;    /* NULL unless imported */
    const char *json;           /* the whole metadata record */
    struct st_procfig procfig;
};

/* ML_ENOTFOUND for an unknown or incomplete id. */
int st_snap_get(struct st_read *r, uint64_t id, struct st_snapinfo *out);

/* Complete snapshots with since_ns <= time_ns < until_ns (0: no bound),
 * oldest first.  cb returning non-zero stops with that value. */
int st_snap_list(struct st_read *r, uint64_t since_ns, uint64_t until_ns,
                 int (*cb)(void *ctx, const struct st_snapinfo *si),
                 void *ctx);

struct st_typesum {
    uint32_t tid;
    const char *name;
    size_t name_len;
    uint64_t count, bytes, max_size, max_addr;
};

/* Per-type summary rows of a snapshot, by type id. */
int st_summary(struct st_read *r, uint64_t id,
               int (*cb)(void *ctx, const struct st_typesum *t), void *ctx);

/* Per-type rows of a and b side by side (a type missing on one side has
 * zero counts there), by type id. */
int st_type_deltas(struct st_read *r, uint64_t a, uint64_t b,
                   int (*cb)(void *ctx, const struct st_typesum *ta,
                             const struct st_typesum *tb),
                   void *ctx);

struct st_object {
    uint64_t address;
    uint32_t oid;               /* number in walk order */
    uint32_t tid;
    const char *type;
    size_t type_len;
    uint64_t size;
    int has_len;
    uint64_t len;
    const char *name;           /* NULL if none */
    size_t name_len;
    enum ml_vkind vkind;
    const char *value;          /* text for STR/INT/FLOAT */
    size_t value_len;
    size_t nrefs;
    const uint64_t *refs;       /* addresses */
    size_t refs_len;            /* in refs: nrefs, or fewer (st_read_refs_max) */
};

/* Objects read by r from now on have at most max of their refs decoded
 * into refs (refs_len); nrefs stays their number.  SIZE_MAX (the
 * default): all.  A dict of 10 million entries has 20 million refs: a
 * reader that shows a few need not decode (and allocate) them all. */
void st_read_refs_max(struct st_read *r, size_t max);

/* The object at address.  ML_ENOTFOUND if none; -ENODATA if the
 * snapshot's graph was dropped by retention. */
int st_object_find(struct st_read *r, uint64_t id, uint64_t address,
                   struct st_object *out);

/* The objects that refer to address, ascending walk order. */
int st_referrers(struct st_read *r, uint64_t id, uint64_t address,
                 int (*cb)(void *ctx, const struct st_object *o), void *ctx);

/* Bulk and by-number access, for diffs and referrer chains.  "oid" is an
 * object's number in its snapshot (st_object.oid).  -ENODATA when the
 * graph was dropped. */

/* The object numbered oid (ML_ENOTFOUND past the last). */
int st_object_get(struct st_read *r, uint64_t id, uint32_t oid,
                  struct st_object *out);

/* The object numbered oid without its refs (refs_len 0), and where child
 * is first among them: *at its index (SIZE_MAX: not there) and *prev the
 * ref before it (0 at index 0).  The refs are scanned, not decoded into
 * memory: a path through a dict of 10 million entries reads 20 million
 * refs and keeps two. */
int st_object_child(struct st_read *r, uint64_t id, uint32_t oid,
                    uint64_t child, struct st_object *out, size_t *at,
                    uint64_t *prev);

/* The numbers of the objects that refer to oid, ascending; *parents
 * points into r until the next call.  At most st_read_parents_max of
 * them; st_read_parents_total says how many there are. */
int st_parents(struct st_read *r, uint64_t id, uint32_t oid,
               const uint32_t **parents, size_t *n);

/* st_parents from now on decodes at most max parents (SIZE_MAX, the
 * default: all): None or a class may have tens of millions. */
void st_read_parents_max(struct st_read *r, size_t max);

/* How many referrers the object of the last st_parents has. */
size_t st_read_parents_total(const struct st_read *r);

/* The object number at address (ML_ENOTFOUND if none). */
int st_oid_of(struct st_read *r, uint64_t id, uint64_t address,
              uint32_t *oid);

/* Every object in walk order; refs are not decoded (refs == NULL,
 * nrefs set). */
int st_object_each(struct st_read *r, uint64_t id,
                   int (*cb)(void *ctx, const struct st_object *o),
                   void *ctx);

/* Every (address, oid) in address order. */
int st_address_each(struct st_read *r, uint64_t id,
                    int (*cb)(void *ctx, uint64_t address, uint32_t oid),
                    void *ctx);

/* Every object with referrers, ascending: its number and theirs. */
int st_parents_each(struct st_read *r, uint64_t id,
                    int (*cb)(void *ctx, uint32_t child,
                              const uint32_t *parents, size_t n),
                    void *ctx);

/* Summary rows of a snapshot known to be complete (from st_snap_list),
 * without type names (name == NULL): the fast path for growth over many
 * snapshots. */
int st_summary_tids(struct st_read *r, uint64_t id,
                    int (*cb)(void *ctx, const struct st_typesum *t),
                    void *ctx);

/* The name of type id tid (ML_ENOTFOUND if unknown). */
int st_type_name(struct st_read *r, uint32_t tid, const char **name,
                 size_t *len);

/* ---- birth sites (store/births.c; docs/store-format.md) ---- */

/* A table line of a stream ({"traceback": K, "frames": [...]}, parsed as
 * l, text line[0..n)): K must be the next id (from 0).  Errors as
 * st_ingest_object. */
int st_ingest_traceback(struct st_ingest *in, const struct ml_dumpline *l,
                        const char *line, size_t n);

/* 1 if snapshot id has birth sites, 0 if not, or an error. */
int st_births_has(struct st_read *r, uint64_t id);

/* The frames of traceback trace of snapshot id, as JSON
 * ([[file, line, function], ...], the allocation's frame first), valid
 * until st_read_end.  ML_ENOTFOUND if there is none. */
int st_traceback_get(struct st_read *r, uint64_t id, uint32_t trace,
                     const char **json, size_t *len);

/* cb(ctx, oid, trace) for every object of snapshot id that has a birth
 * site, by oid.  cb returning non-zero stops with that value. */
int st_trace_each(struct st_read *r, uint64_t id,
                  int (*cb)(void *ctx, uint32_t oid, uint32_t trace),
                  void *ctx);

#endif /* ST_STORE_H */
