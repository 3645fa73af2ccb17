/* SPDX-License-Identifier: MIT
 *
 * commit.c -- the second half of storing a snapshot, on the writer
 * thread: the spool (ingest.c) becomes the addrs, objs, rev and summ
 * records of docs/store-format.md.
 *
 * Memory.  The O(n) work arrays (addresses sorted with their object
 * numbers, the edges sorted by child) live in file-backed mappings of
 * unlinked files in tmp/, like LMDB's own map: the kernel can write them
 * back and drop them, so the daemon's anonymous memory stays the same
 * for 10 thousand or 10 million objects.  LMDB's dirty pages are the
 * store file's own (MDB_WRITEMAP, docs/store-format.md), and an entry too
 * big for a block (a dict of millions of entries, None's referrers) is
 * written straight into its reserved space: nothing here is the size of
 * the largest object either.  Transactions are committed every
 * st_store.txn_bytes.
 *
 * Atomicity.  The first transaction records the snapshot as "ingesting";
 * only the last one marks it "complete" and adds it to the time and
 * process indexes, which is what readers look at.  On failure the partial
 * records are deleted; after a crash, st_sweep deletes them.  The retained
 * answers (retained.h) come after it, in transactions of their own (the
 * second step of st_commit2: the caller is told in between); a crash
 * there leaves a whole snapshot without them, as an old store's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "procfig.h"

#include "births.h"
#include "ingest.h"
#include "ml-common.h"
#include "retained.h"

/* ---- file-backed work arrays ---- */

struct scratch {
    int fd;
    void *p;
    size_t len;
};

static int
scratch_new(struct scratch *sc, const char *dir, size_t len)
{
    sc->fd = -1;
    sc->p = NULL;
    sc->len = len;
    if (len == 0)
        return 0;
    sc->fd = st__tmpfile(dir);
    if (sc->fd < 0)
        return sc->fd;
    /* fallocate, not ftruncate: a full disk must fail here, not as a
     * SIGBUS when a page of the mapping is first written. */
    int rc = posix_fallocate(sc->fd, 0, (off_t)len);
    if (rc != 0)
        return -rc;
    /* populated at once: one call instead of a page fault per page */
    sc->p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                 sc->fd, 0);
    if (sc->p == MAP_FAILED) {
        sc->p = NULL;
        return -errno;
    }
    return 0;
}

static void
scratch_free(struct scratch *sc)
{
    if (sc->p != NULL)
        munmap(sc->p, sc->len);
    if (sc->fd >= 0)
        close(sc->fd);
    sc->p = NULL;
    sc->fd = -1;
}

/* ---- sorting: LSD radix on 12-bit digits, skipping constant digits ---- */

/* 12-bit digits: a 4096-way scatter keeps its write positions in the
 * caches and the TLB, where a 65536-way one missed on nearly every
 * element (on 10M pairs and 15M edges: 20-30% faster, though a pass more
 * for addresses). */
#define DIGIT_BITS 12
#define DIGITS (1u << DIGIT_BITS)

/* Defines static void NAME(T *a, T *tmp, size_t n, uint32_t *count): sorts
 * a[0..n) by the uint64_t KEY(elem), stable, with tmp[n] and count[DIGITS]
 * as scratch.  A macro (as BSD's <sys/tree.h> does) rather than a
 * function over void * and a stride: the inner loops must copy fixed-size
 * elements for the sort to stay at memory speed.  Passes alternate between
 * a and tmp; one copy at the end if the result is in tmp. */
#define ST_DEFINE_RADIX_SORT(NAME, T, KEY)                                   \
static void                                                                 \
NAME(T *a, T *tmp, size_t n, uint32_t *count)                               \
{                                                                           \
    uint64_t all_or = 0, all_and = ~0ull;                                   \
    T *src = a, *dst = tmp, *t;                                             \
                                                                            \
    if (n < 2)                                                              \
        return;                 /* also: a and tmp NULL when empty */       \
    for (size_t i = 0; i < n; i++) {                                        \
        all_or |= KEY(a[i]);                                                \
        all_and &= KEY(a[i]);                                               \
    }                                                                       \
    for (unsigned shift = 0; shift < 64; shift += DIGIT_BITS) {             \
        uint32_t sum = 0;                                                   \
                                                                            \
        if ((((all_or ^ all_and) >> shift) & (DIGITS - 1)) == 0)            \
            continue;           /* every key has this digit */              \
        memset(count, 0, DIGITS * sizeof *count);                           \
        for (size_t i = 0; i < n; i++)                                      \
            count[(KEY(src[i]) >> shift) & (DIGITS - 1)]++;                 \
        for (size_t d = 0; d < DIGITS; d++) {                               \
            uint32_t c = count[d];                                          \
            count[d] = sum;                                                 \
            sum += c;                                                       \
        }                                                                   \
        for (size_t i = 0; i < n; i++)                                      \
            dst[count[(KEY(src[i]) >> shift) & (DIGITS - 1)]++] = src[i];   \
        t = src;                                                            \
        src = dst;                                                          \
        dst = t;                                                            \
    }                                                                       \
    if (src != a)                                                           \
        memcpy(a, src, n * sizeof *a);                                      \
}

#define PAIR_KEY(p) ((p).addr)
#define CHILD_KEY(x) ((x) >> 32)
ST_DEFINE_RADIX_SORT(radix_pairs, struct st_pair, PAIR_KEY)
/* Edges (child << 32 | parent) by child alone: they are made in parent
 * order and the sort is stable, so each child's parents stay ascending,
 * in half the passes of a sort on the whole word. */
ST_DEFINE_RADIX_SORT(radix_child, uint64_t, CHILD_KEY)

/* ---- address -> object number, over the sorted pairs ---- */

/* A hash table of the 4 KiB pages that hold objects, each with its run
 * of the sorted pairs: a lookup is one probe and a binary search within
 * a page (at most 256 objects), whatever the spread of the addresses (a
 * heap's live in a few clusters terabytes apart, where buckets over the
 * whole range would each hold millions).  File-backed, like the pairs. */

#define AMAP_PAGE 12

struct apage {
    uint64_t page1;             /* page number + 1; 0: empty slot */
    uint32_t lo, hi;            /* its pairs: [lo, hi) */
};

struct amap {
    const struct st_pair *p;
    struct scratch tab;
    uint64_t mask;              /* slots - 1 */
};

static uint64_t
amap_slot(uint64_t page1, uint64_t mask)
{
    return (page1 * 0x9e3779b97f4a7c15ull >> 20) & mask;
}

static int
amap_init(struct amap *m, const struct st_pair *p, size_t n, const char *tmpdir)
{
    size_t pages = 0, slots = 2;
    struct apage *t;
    int rc;

    m->p = p;
    m->mask = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || p[i].addr >> AMAP_PAGE != p[i - 1].addr >> AMAP_PAGE)
            pages++;
    while (slots < 2 * pages)
        slots *= 2;
    rc = scratch_new(&m->tab, tmpdir, slots * sizeof *t);
    if (rc != 0)
        return rc;
    t = m->tab.p;
    m->mask = slots - 1;
    for (size_t i = 0; i < n;) {
        uint64_t page = p[i].addr >> AMAP_PAGE;
        size_t e = i + 1;

        while (e < n && p[e].addr >> AMAP_PAGE == page)
            e++;
        uint64_t k = amap_slot(page + 1, m->mask);
        while (t[k].page1 != 0)
            k = (k + 1) & m->mask;
        t[k].page1 = page + 1;
        t[k].lo = (uint32_t)i;
        t[k].hi = (uint32_t)e;
        i = e;
    }
    return 0;
}

/* Lookups go in batches: a lookup is two cache misses (its slot, then
 * its pairs) on tables far larger than the caches, so each stage is
 * prefetched for the whole batch before the next one reads it, and the
 * misses overlap instead of queueing. */
#define AMAP_BATCH 64

struct abatch {
    unsigned n;
    uint32_t parent[AMAP_BATCH];
    uint64_t addr[AMAP_BATCH];
    uint64_t at[AMAP_BATCH];        /* slot, then first pair to look at */
};

/* Appends (child << 32 | parent) to edges for each address of b found,
 * in b's order, and empties b. */
static void
amap_resolve(const struct amap *m, struct abatch *b, uint64_t *edges,
             uint64_t *nedges, uint64_t cap)
{
    const struct apage *t = m->tab.p;
    const struct st_pair *p = m->p;
    const uint64_t mask = (1u << AMAP_PAGE) - 1;
    unsigned n = b->n;

    b->n = 0;
    if (t == NULL)
        return;
    for (unsigned i = 0; i < n; i++) {
        b->at[i] = amap_slot((b->addr[i] >> AMAP_PAGE) + 1, m->mask);
        __builtin_prefetch(&t[b->at[i]]);
    }
    for (unsigned i = 0; i < n; i++) {
        uint64_t page1 = (b->addr[i] >> AMAP_PAGE) + 1, k = b->at[i];

        while (t[k].page1 != page1 && t[k].page1 != 0)
            k = (k + 1) & m->mask;
        if (t[k].page1 == 0) {
            b->at[i] = UINT64_MAX;
            continue;
        }
        /* Objects of a page are mostly of one size (an allocator's
         * pool): where the address falls in the page is where it falls
         * in the run, to an entry or two. */
        b->at[i] = t[k].lo + (((b->addr[i] & mask) * (t[k].hi - t[k].lo))
                              >> AMAP_PAGE);
        __builtin_prefetch(&p[b->at[i]]);
        b->at[i] |= (uint64_t)k << 32;  /* slot, to find the run again */
    }
    for (unsigned i = 0; i < n; i++) {
        uint64_t addr = b->addr[i], g, lo, hi;

        if (b->at[i] == UINT64_MAX)
            continue;
        g = b->at[i] & 0xffffffff;
        lo = t[b->at[i] >> 32].lo;
        hi = t[b->at[i] >> 32].hi;
        if (p[g].addr < addr) {
            while (++g < hi && p[g].addr < addr)
                ;
            if (g == hi)
                continue;
        } else {
            while (g > lo && p[g - 1].addr >= addr)
                g--;
        }
        if (p[g].addr == addr && *nedges < cap)
            edges[(*nedges)++] = p[g].oid << 32 | b->parent[i];
    }
}

/* ---- chunked write transactions ---- */

#define WRITEBACK_EVERY (8u << 20)

struct wtx {
    struct st_store *s;
    MDB_txn *txn;
    size_t dirty;
    size_t kicked;              /* dirty when writeback was last started */
    uint64_t used;              /* the data file's pages when it began */
    uint64_t stored;            /* key + value bytes of this snapshot */
};

static int
wtx_begin(struct wtx *w)
{
    w->dirty = 0;
    w->kicked = 0;
    w->used = st__used_end(w->s);
    w->txn = NULL;
    return st__write_txn(w->s, &w->txn);
}

/* Commits; an intermediate transaction of a snapshot (last == 0) skips
 * the sync of LMDB's meta page.  Its data pages are still synced first,
 * so the store stays consistent whatever the crash (lmdb.h,
 * MDB_NOMETASYNC: "maintains database integrity", unlike MDB_NOSYNC with
 * MDB_WRITEMAP); a crash may just lose it, and what it wrote is an
 * "ingesting" snapshot for st_sweep anyway.  The last transaction syncs
 * everything before its own meta page, so a visible snapshot is
 * durable. */
static int
wtx_commit(struct wtx *w, int last)
{
    int rc;

    /* Not atomic (it rewrites env flags): relies on one writer thread
     * (writer.lock, and the daemon's single writer thread). */
    if (!last)
        mdb_env_set_flags(w->s->env, MDB_NOMETASYNC, 1);
    rc = mdb_txn_commit(w->txn);
    if (!last)
        mdb_env_set_flags(w->s->env, MDB_NOMETASYNC, 0);
    w->txn = NULL;
    return rc;
}

static void
wtx_abort(struct wtx *w)
{
    if (w->txn != NULL)
        mdb_txn_abort(w->txn);
    w->txn = NULL;
}

/* Reserves room for a value and returns where to write it. */
static int
wtx_reserve(struct wtx *w, MDB_dbi db, const void *k, size_t klen,
            size_t vlen, void **out)
{
    MDB_val key = { klen, (void *)k }, val = { vlen, NULL };
    int rc;

    if (w->dirty > w->s->txn_bytes) {
        rc = wtx_commit(w, 0);
        if (rc == 0)
            rc = wtx_begin(w);
        if (rc != 0)
            return rc;
    }
    rc = st__disk_ahead(w->s, w->used, w->dirty + klen + vlen + 16);
    if (rc != 0)
        return rc;
    rc = mdb_put(w->txn, db, &key, &val, MDB_RESERVE);
    if (rc != 0)
        return rc;
    w->dirty += klen + vlen + 16;
    if (w->dirty - w->kicked >= WRITEBACK_EVERY) {
        /* The commit's msync must write every page this transaction
         * dirtied (MDB_WRITEMAP), and waits for the disk: started now,
         * the writeback overlaps the encoding of the next entries.  Only
         * starts I/O the kernel would do anyway; the order and the
         * syncs of the commit are LMDB's, unchanged. */
        if (w->s->datafd >= 0)
            (void)sync_file_range(w->s->datafd, 0, 0, SYNC_FILE_RANGE_WRITE);
        w->kicked = w->dirty;
    }
    w->stored += klen + vlen;
    *out = val.mv_data;
    return 0;
}

static int
wtx_put(struct wtx *w, MDB_dbi db, const void *k, size_t klen,
        const void *v, size_t vlen)
{
    void *p;
    int rc = wtx_reserve(w, db, k, klen, vlen, &p);

    if (rc == 0 && vlen > 0)
        memcpy(p, v, vlen);
    return rc;
}

/* ---- block buffer ---- */

struct block {
    unsigned char *p;           /* the entries; the header is added at flush */
    size_t len, cap;
    uint64_t first;             /* key of the block */
    int open;
    unsigned nent, nskip;
    uint16_t skip_off[ST_MAX_SKIP];
    uint64_t skip_prev[ST_MAX_SKIP];
};

/* Called before each entry with the value the entry is coded against:
 * every ST_SKIP-th entry goes into the header. */
static void
block_mark(struct block *b, uint64_t prev)
{
    if (b->nent > 0 && b->nent % ST_SKIP == 0 && b->nskip < ST_MAX_SKIP &&
        b->len <= UINT16_MAX) {
        b->skip_off[b->nskip] = (uint16_t)b->len;
        b->skip_prev[b->nskip++] = prev;
    }
    b->nent++;
}

static int
block_room(struct block *b, size_t need)
{
    if (b->len + need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : ST_BLOCK_BYTES;
    while (cap < b->len + need)
        cap *= 2;
    void *p = realloc(b->p, cap);
    if (p == NULL)
        return -ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int
block_flush(struct wtx *w, MDB_dbi db, uint64_t id, struct block *b,
            int key32)
{
    unsigned char k[16];
    int rc;

    if (!b->open)
        return 0;
    if (key32)
        st_key32(k, id, (uint32_t)b->first);
    else
        st_key64(k, id, b->first);
    size_t hdr = ST_BLOCK_HDR(b->nskip);
    unsigned char *v;
    rc = wtx_reserve(w, db, k, key32 ? 12 : 16, hdr + b->len, (void **)&v);
    if (rc == 0) {
        v[0] = (unsigned char)(b->nskip >> 8);
        v[1] = (unsigned char)b->nskip;
        for (unsigned i = 0; i < b->nskip; i++) {
            v[2 + 10 * i] = (unsigned char)(b->skip_off[i] >> 8);
            v[3 + 10 * i] = (unsigned char)b->skip_off[i];
            st_put_be64(v + 4 + 10 * i, b->skip_prev[i]);
        }
        memcpy(v + hdr, b->p, b->len);
    }
    b->len = 0;
    b->open = 0;
    b->nent = 0;
    b->nskip = 0;
    if (b->cap > 4 * ST_BLOCK_BYTES) {  /* after a giant entry */
        free(b->p);
        b->p = NULL;
        b->cap = 0;
    }
    return rc;
}

/* Makes room for an entry of at most need bytes whose key would be
 * first, flushing the block first if the entry would overflow it. */
static int
block_next(struct wtx *w, MDB_dbi db, uint64_t id, struct block *b,
           int key32, uint64_t first, size_t need)
{
    int rc;

    if (b->open && ST_BLOCK_HDR(b->nskip + 1) + b->len + need > ST_BLOCK_BYTES) {
        rc = block_flush(w, db, id, b, key32);
        if (rc != 0)
            return rc;
    }
    if (!b->open) {
        b->open = 1;
        b->first = first;
        b->len = 0;
        b->nent = 0;
        b->nskip = 0;
    }
    return block_room(b, need);
}

/* ---- the commit ---- */

enum { WORK_RUNNING, WORK_PREPARED, WORK_EDGES, WORK_DONE };

struct job {
    struct st_store *s;
    struct st_ingest *in;
    const struct st_source *src;
    const unsigned char *spool;     /* mapped spool */
    size_t spool_len;
    struct scratch pairs, ptmp, edges, etmp;
    struct scratch sizes, tids;     /* the ingest's, for the tree */
    uint32_t *count;                /* DIGITS counters, for sorting */
    uint32_t *gtid;                 /* local type id -> store type id */
    struct amap amap;
    uint64_t nedges;
    uint64_t nkept, bkept;          /* objects and bytes stored */
    uint64_t *drop;                 /* keep_first: bitmap of dropped oids */
    uint32_t *dcum;                 /* dropped before each 64-oid word */
    struct scratch dropsc;          /* both: O(n), file-backed too */
    /* The dominator tree (retained.h), on the work thread after the
     * edges; rrc its result (not the commit's: without it the snapshot
     * is stored all the same, its retained sizes computed on demand). */
    struct st__retwork rw;
    int rrc;
    int go_dom;                     /* step1_over's word, under mu */
    /* The work thread (work_main): prepare, then resolve_edges, then
     * the dominator tree once step 1 is over. */
    int prepared;                   /* prepare ran before it started */
    pthread_t wth;
    int wth_running;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stage;                      /* WORK_*, under mu */
    int prc, erc;                   /* prepare's and resolve_edges' results */
    char perr[200];                 /* prepare's message */
    char *err;
    size_t errlen;
};

static int work_wait(struct job *j, int stage);
static int work_refused(struct job *j);

static int
jfail(struct job *j, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
jfail(struct job *j, int rc, const char *fmt, ...)
{
    va_list ap;

    if (j->err != NULL && j->errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(j->err, j->errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* The same from prepare, which may run on the work thread: into perr,
 * which st_commit copies once the thread is waited for. */
static int
pfail(struct job *j, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
pfail(struct job *j, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(j->perr, sizeof j->perr, fmt, ap);
    va_end(ap);
    return rc;
}

/* The number an object keeps once the repeats before it are dropped. */
static uint64_t
new_oid(const struct job *j, uint64_t oid)
{
    uint64_t w = j->drop[oid / 64] & ((1ull << (oid % 64)) - 1);

    return oid - j->dcum[oid / 64] - (uint64_t)__builtin_popcountll(w);
}

static int
dropped(const struct job *j, uint64_t oid)
{
    return j->drop != NULL && (j->drop[oid / 64] >> (oid % 64) & 1);
}

/* keep_first: an address seen again is dropped, its later lines with it
 * (the sort is stable, so the first of a run has the lowest number); the
 * others are renumbered and the summary rows lose what was dropped. */
static int
drop_repeats(struct job *j)
{
    struct st_ingest *in = j->in;
    struct st_pair *pairs = j->pairs.p;
    size_t words = (size_t)(in->n / 64 + 1);
    const unsigned char *p = j->spool, *end = j->spool + j->spool_len;
    uint64_t k = 0, prev = 0;
    int rc;

    rc = scratch_new(&j->dropsc, j->s->tmpdir,
                     words * sizeof *j->drop + (words + 1) * sizeof *j->dcum);
    if (rc != 0)
        return pfail(j, rc, "work file in %s: %s", j->s->tmpdir, strerror(-rc));
    j->drop = j->dropsc.p;          /* zeroed: a new file's pages */
    j->dcum = (uint32_t *)(j->drop + words);
    for (uint64_t i = 0; i < in->n; i++) {
        if (i > 0 && pairs[i].addr == pairs[i - 1].addr)
            j->drop[pairs[i].oid / 64] |= 1ull << (pairs[i].oid % 64);
        else
            pairs[k++] = pairs[i];
    }
    j->dcum[0] = 0;
    for (size_t w = 0; w < words; w++)
        j->dcum[w + 1] = j->dcum[w] + (uint32_t)__builtin_popcountll(j->drop[w]);
    for (uint64_t i = 0; i < k; i++)
        pairs[i].oid = new_oid(j, pairs[i].oid);
    for (uint64_t i = 0; i < in->n; i++) {   /* take them out of the summary */
        struct st_rec r;

        if (st_rec_get(&p, end, prev, &r) != 0 || r.tid >= in->ntypes)
            return pfail(j, ML_ECORRUPT, "spool record %llu unreadable",
                         (unsigned long long)i);
        prev = r.addr;
        if (!dropped(j, i))
            continue;
        in->types[r.tid].count--;
        in->types[r.tid].bytes -= r.size;
        j->bkept -= r.size;
    }
    j->nkept = k;
    rc = amap_init(&j->amap, pairs, k, j->s->tmpdir);
    if (rc != 0)
        return pfail(j, rc, "work file in %s: %s", j->s->tmpdir, strerror(-rc));
    return 0;
}

/* One of the ingest's files (ingest.h) of len bytes, mapped where it
 * is: its pages are in the page cache already, where a new work file's
 * would be faulted and zeroed first.  ML_ECORRUPT if it is not len
 * bytes long. */
static int
map_ingest_file(struct scratch *sc, int fd, size_t len)
{
    struct stat st;

    sc->fd = -1;                /* the ingest's: not closed here */
    sc->p = NULL;
    sc->len = len;
    if (len == 0)
        return 0;
    if (fstat(fd, &st) != 0)
        return -errno;
    if ((uint64_t)st.st_size != len)
        return ML_ECORRUPT;
    sc->p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                 fd, 0);
    if (sc->p == MAP_FAILED) {
        sc->p = NULL;
        return -errno;
    }
    return 0;
}

/* The pairs file, to be sorted where it is. */
static int
map_pairs(struct job *j)
{
    return map_ingest_file(&j->pairs, j->in->pfd,
                           j->in->n * sizeof(struct st_pair));
}

/* Sorts the addresses and checks they are distinct: the part that needs
 * no transaction, done once whatever the retries. */
static int
prepare(struct job *j)
{
    struct st_ingest *in = j->in;
    struct st_pair *pairs;
    int rc;

    rc = map_pairs(j);
    if (rc == ML_ECORRUPT)
        return pfail(j, rc, "the pairs file does not hold %llu objects",
                     (unsigned long long)in->n);
    if (rc == 0)
        rc = scratch_new(&j->ptmp, j->s->tmpdir, in->n * sizeof(struct st_pair));
    if (rc < 0)
        return pfail(j, rc, "work file in %s: %s", j->s->tmpdir, strerror(-rc));
    pairs = j->pairs.p;
    radix_pairs(pairs, j->ptmp.p, in->n, j->count);
    /* ptmp is kept for the rev sort: pages already there cost no new
     * zeroing by the kernel */
    j->nkept = in->n;
    j->bkept = in->bytes;
    for (uint64_t i = 1; i < in->n; i++)
        if (pairs[i].addr == pairs[i - 1].addr) {
            if (!in->keep_first)
                return pfail(j, ML_EPROTO, "two objects at address 0x%llx",
                             (unsigned long long)pairs[i].addr);
            return drop_repeats(j);
        }
    rc = amap_init(&j->amap, pairs, in->n, j->s->tmpdir);
    if (rc != 0)
        return pfail(j, rc, "work file in %s: %s", j->s->tmpdir, strerror(-rc));
    return 0;
}

/* meta "next_snap" / "next_tid" style counters. */
static int
next_counter(struct wtx *w, const char *name, uint64_t *out)
{
    MDB_val k = { strlen(name), (void *)name }, v;
    unsigned char buf[8];
    uint64_t next = 1;
    int rc;

    rc = mdb_get(w->txn, w->s->meta, &k, &v);
    if (rc == 0 && v.mv_size == 8)
        next = st_get_be64(v.mv_data);
    else if (rc != MDB_NOTFOUND && rc != 0)
        return rc;
    *out = next;
    st_put_be64(buf, next + 1);
    v.mv_size = 8;
    v.mv_data = buf;
    return mdb_put(w->txn, w->s->meta, &k, &v, 0);
}

/* First transaction: the snapshot id, its "ingesting" record, the type
 * ids.  Committed, so a crash after it leaves something to sweep. */
static int
begin_snapshot(struct job *j, struct wtx *w, uint64_t *id)
{
    static const char ingesting[] = "{\"status\": \"ingesting\"}";
    struct st_ingest *in = j->in;
    unsigned char k[8];
    int rc;

    rc = wtx_begin(w);
    if (rc != 0)
        return rc;
    rc = next_counter(w, "next_snap", id);
    if (rc != 0)
        return rc;
    st_put_be64(k, *id);
    rc = wtx_put(w, w->s->snaps, k, 8, ingesting, sizeof ingesting - 1);
    for (uint32_t t = 0; rc == 0 && t < in->ntypes; t++) {
        MDB_val name = { in->types[t].name_len, in->names + in->types[t].name_off };
        MDB_val v;
        uint64_t tid;

        rc = mdb_get(w->txn, w->s->tname, &name, &v);
        if (rc == 0 && v.mv_size == 4) {
            j->gtid[t] = st_get_be32(v.mv_data);
            continue;
        }
        if (rc != MDB_NOTFOUND)
            return rc == 0 ? ML_ECORRUPT : rc;
        rc = next_counter(w, "next_tid", &tid);
        if (rc != 0)
            return rc;
        if (tid > UINT32_MAX)
            return ML_ETOOBIG;
        unsigned char tk[4];
        st_put_be32(tk, (uint32_t)tid);
        rc = wtx_put(w, w->s->tname, name.mv_data, name.mv_size, tk, 4);
        if (rc == 0)
            rc = wtx_put(w, w->s->tid, tk, 4, name.mv_data, name.mv_size);
        j->gtid[t] = (uint32_t)tid;
    }
    if (rc != 0)
        return rc;
    rc = wtx_commit(w, 0);
    if (rc == 0)
        rc = wtx_begin(w);
    return rc;
}

/* addrs: the sorted addresses with their object numbers. */
static int
write_addrs(struct job *j, struct wtx *w, uint64_t id)
{
    const struct st_pair *pairs;
    struct block b = { 0 };
    uint64_t prev = 0;
    int rc = work_wait(j, WORK_PREPARED);

    pairs = j->pairs.p;
    for (uint64_t i = 0; rc == 0 && i < j->nkept; i++) {
        int was_open = b.open;

        rc = block_next(w, w->s->addrs, id, &b, 0, pairs[i].addr,
                        2 * ST_VARINT_MAX);
        if (rc != 0)
            break;
        if (!was_open || b.len == 0)
            prev = b.first;             /* a block starts at its key */
        block_mark(&b, prev);
        unsigned char *e = st_put_varint(b.p + b.len, pairs[i].addr - prev);
        e = st_put_varint(e, pairs[i].oid);
        b.len = (size_t)(e - b.p);
        prev = pairs[i].addr;
    }
    if (rc == 0)
        rc = block_flush(w, w->s->addrs, id, &b, 0);
    free(b.p);
    return rc;
}

/* A record too big to share a block (a dict of millions of entries) is
 * a block of its own, without skips, written straight into the space
 * LMDB reserves for it: no buffer of its size (docs/store-format.md). */
static int
put_giant_rec(struct wtx *w, uint64_t id, uint64_t oid,
              const struct st_rec *r, uint32_t tid, size_t tail)
{
    unsigned char k[12], *v, *e;
    size_t head = st_rec_head_len(0, r->addr, tid, r->size, r->has_len,
                                  r->len, r->name_len, r->has_name, r->vkind,
                                  r->value_len, r->nrefs);
    int rc;

    st_key32(k, id, (uint32_t)oid);
    rc = wtx_reserve(w, w->s->objs, k, 12, ST_BLOCK_HDR(0) + head + tail,
                     (void **)&v);
    if (rc != 0)
        return rc;
    v[0] = v[1] = 0;                    /* no skips */
    e = st_rec_put_head(v + ST_BLOCK_HDR(0), 0, r->addr, tid, r->size,
                        r->has_len, r->len, r->name, r->name_len,
                        r->has_name, r->vkind, r->value, r->value_len,
                        r->nrefs);
    memcpy(e, r->refs_p, tail);
    return 0;
}

/* objs: the records in walk order with store type ids. */
static int
write_objs(struct job *j, struct wtx *w, uint64_t id)
{
    const unsigned char *p = j->spool, *end = j->spool + j->spool_len;
    struct block b = { 0 };
    uint64_t sprev = 0, bprev = 0;
    int rc = 0;

    for (uint64_t si = 0, i = 0; si < j->in->n; si++) {
        struct st_rec r;

        if (st_rec_get(&p, end, sprev, &r) != 0 || r.tid >= j->in->ntypes) {
            rc = ML_ECORRUPT;
            break;
        }
        sprev = r.addr;
        if ((si & 0xffff) == 0xffff && (rc = work_refused(j)) != 0)
            break;              /* no use writing a refused snapshot */
        if (dropped(j, si))
            continue;
        size_t tail = (size_t)(p - r.refs_p);
        size_t need = st_rec_max(r.name_len, r.value_len, 0) + tail;
        if (need > ST_GIANT) {
            rc = block_flush(w, w->s->objs, id, &b, 1);
            if (rc == 0)
                rc = put_giant_rec(w, id, i, &r, j->gtid[r.tid], tail);
            if (rc != 0)
                break;
        } else {
            rc = block_next(w, w->s->objs, id, &b, 1, i, need);
            if (rc != 0)
                break;
            if (b.len == 0)
                bprev = 0;
            block_mark(&b, bprev);
            unsigned char *e = st_rec_put_head(b.p + b.len, bprev, r.addr,
                                               j->gtid[r.tid], r.size,
                                               r.has_len, r.len, r.name,
                                               r.name_len, r.has_name,
                                               r.vkind, r.value, r.value_len,
                                               r.nrefs);
            memcpy(e, r.refs_p, tail);
            b.len = (size_t)(e + tail - b.p);
            bprev = r.addr;
        }
        i++;
    }
    if (rc == 0)
        rc = block_flush(w, w->s->objs, id, &b, 1);
    free(b.p);
    return rc;
}

/* ---- the referrer edges, on a thread of their own ----
 *
 * Every ref's address becomes an object number (child << 32 | parent),
 * then the edges are sorted by child for write_rev.  None of it needs a
 * transaction, and it is as much CPU as writing addrs and objs: it runs
 * beside them, on the other core, and write_rev waits for it.  It reads
 * what prepare made (the spool, the sorted pairs, the address map, the
 * drop bitmap) and writes only the edges and its sort's scratch (ptmp,
 * count, etmp), which the transactions do not touch. */

static int
resolve_edges(struct job *j)
{
    const unsigned char *p = j->spool, *end = j->spool + j->spool_len;
    uint64_t *edges = j->edges.p, n;
    struct abatch ab;
    uint64_t sprev = 0;
    int rc;

    j->nedges = 0;
    ab.n = 0;
    for (uint64_t si = 0, i = 0; si < j->in->n; si++) {
        struct st_rec r;

        if (st_rec_get_head(&p, end, sprev, &r) != 0)
            return ML_ECORRUPT;
        sprev = r.addr;
        int keep = !dropped(j, si);
        for (uint64_t k = 0; k < r.nrefs; k++) {
            if (st_rec_ref(&p, end, &r, &ab.addr[ab.n]) != 0)
                return ML_ECORRUPT;
            if (!keep)
                continue;
            ab.parent[ab.n++] = (uint32_t)i;
            if (ab.n == AMAP_BATCH)
                amap_resolve(&j->amap, &ab, edges, &j->nedges, j->in->nrefs);
        }
        i += keep;
    }
    amap_resolve(&j->amap, &ab, edges, &j->nedges, j->in->nrefs);
    n = j->nedges;
    if (n > 0) {
        void *tmp = j->ptmp.p;

        if (j->ptmp.len < n * sizeof *edges) {
            rc = scratch_new(&j->etmp, j->s->tmpdir, n * sizeof *edges);
            if (rc < 0)
                return rc;
            tmp = j->etmp.p;
        }
        radix_child(edges, tmp, n, j->count);
        scratch_free(&j->etmp);
    }
    return 0;
}

/* ---- the work thread ----
 *
 * Writing objs needs neither the sorted addresses nor the edges: it
 * starts at once, while the work thread sorts the pairs (prepare) and
 * resolves the edges; write_addrs waits for the first, write_rev for the
 * second.  An import that drops repeated addresses (keep_first) needs
 * prepare's drop bitmap to write objs: its prepare runs first, here. */

static void
work_stage(struct job *j, int stage)
{
    pthread_mutex_lock(&j->mu);
    j->stage = stage;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

/* What a mapping of len bytes holds: whole pages. */
static size_t
page_up(size_t len)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);

    return len == 0 ? 0 : (len + pg - 1) / pg * pg;
}

/* The ingest's number of type "module" (docs/retained.md: modules are
 * roots), UINT32_MAX if none. */
static uint32_t
module_tid(const struct st_ingest *in)
{
    for (uint32_t t = 0; t < in->ntypes; t++)
        if (in->types[t].name_len == 6
            && memcmp(in->names + in->types[t].name_off, "module", 6) == 0)
            return t;
    return UINT32_MAX;
}

static void
work_run(struct job *j)
{
    int rc;

    if (!j->prepared)
        j->prc = prepare(j);
    work_stage(j, WORK_PREPARED);
    if (j->prc != 0) {
        j->erc = j->prc;
    } else {
        rc = scratch_new(&j->edges, j->s->tmpdir,
                         j->in->nrefs * sizeof(uint64_t));
        /* the stored answers need the store's databases (a writer that
         * opened a full disk's store read-only may not have them) */
        j->rrc = j->s->has_ret ? st__retwork_init(&j->rw, j->s->tmpdir,
                                                  (size_t)j->nkept)
                               : ML_ENOTFOUND;
        j->erc = rc != 0 ? pfail(j, rc, "work file in %s: %s", j->s->tmpdir,
                                 strerror(-rc))
                         : resolve_edges(j);
    }
    work_stage(j, WORK_EDGES);
}

/* The dominator tree, for write_retained, once step 1 is over.  Not
 * beside the writer's transactions: two threads faulting in fresh file
 * pages at once made both dearer (write_objs took up to 1.6 times as
 * long with the tree computed beside it: bench/RESULTS.md, "Commit CPU:
 * the dominator tree after step 1").  The ack does not wait for it.  By
 * then the sorted pairs (addrs is written) and the sort's scratch are
 * free: the tree's arrays go there; the sizes and types are the
 * ingest's files. */
static void
work_tree(struct job *j)
{
    struct st__span pool[2] = {
        { j->ptmp.p, page_up(j->ptmp.len) },
        { j->pairs.p, page_up(j->pairs.len) },
    };
    uint64_t n = j->in->n;

    if (j->erc != 0 || j->rrc != 0)
        return;
    j->rrc = map_ingest_file(&j->sizes, j->in->sfd, n * sizeof(uint64_t));
    if (j->rrc == 0)
        j->rrc = map_ingest_file(&j->tids, j->in->tfd, n * sizeof(uint32_t));
    if (j->rrc != 0)
        return;
    uint64_t *size = j->sizes.p;
    uint32_t *tid = j->tids.p;

    if (j->drop != NULL) {              /* by kept number, as the edges */
        uint64_t i = 0;

        for (uint64_t si = 0; si < n; si++) {
            if (dropped(j, si))
                continue;
            size[i] = size[si];
            tid[i++] = tid[si];
        }
    }
    j->rw.size = size;
    j->rw.tid = tid;
    j->rrc = st__retwork_compute(&j->rw, j->edges.p, j->nedges,
                                 module_tid(j->in), j->in->ntypes, pool, 2);
}

static void *
work_main(void *arg)
{
    struct job *j = arg;
    int go;

    work_run(j);
    pthread_mutex_lock(&j->mu);
    while (j->go_dom == 0)              /* the writer's word on step 1 */
        pthread_cond_wait(&j->cv, &j->mu);
    go = j->go_dom > 0;
    pthread_mutex_unlock(&j->mu);
    if (go)
        work_tree(j);
    work_stage(j, WORK_DONE);
    return NULL;
}

/* Step 1's end: go 1 if the snapshot is stored (the tree is computed),
 * -1 if not; only the first word counts.  Without a work thread the tree
 * is computed here. */
static void
step1_over(struct job *j, int go)
{
    int here;

    pthread_mutex_lock(&j->mu);
    here = j->go_dom == 0 && !j->wth_running;
    if (j->go_dom == 0)
        j->go_dom = go;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    if (here) {
        if (go > 0)
            work_tree(j);
        work_stage(j, WORK_DONE);
    }
}

/* Starts the work thread; where no thread can be made, does its work
 * here (and step1_over the tree).  MELIAE_TEST_NO_WORK_THREAD: as if no
 * thread could be made (the tests of that path). */
static void
work_start(struct job *j)
{
    j->stage = WORK_RUNNING;
    if (getenv("MELIAE_TEST_NO_WORK_THREAD") == NULL
            && pthread_create(&j->wth, NULL, work_main, j) == 0)
        j->wth_running = 1;
    else
        work_run(j);
}

/* prepare's failure if it has failed already, else 0; does not wait. */
static int
work_refused(struct job *j)
{
    int rc;

    pthread_mutex_lock(&j->mu);
    rc = j->stage >= WORK_PREPARED ? j->prc : 0;
    pthread_mutex_unlock(&j->mu);
    return rc;
}

/* Waits for the work thread to reach stage; the result of that stage. */
static int
work_wait(struct job *j, int stage)
{
    pthread_mutex_lock(&j->mu);
    while (j->stage < stage)
        pthread_cond_wait(&j->cv, &j->mu);
    pthread_mutex_unlock(&j->mu);
    if (stage == WORK_DONE && j->wth_running) {
        pthread_join(j->wth, NULL);
        j->wth_running = 0;
    }
    return stage >= WORK_EDGES ? j->erc : j->prc;
}

/* rev: per child object number (ascending), its parents (ascending). */
static int
write_rev(struct job *j, struct wtx *w, uint64_t id)
{
    uint64_t *edges;
    struct block b = { 0 };
    uint64_t n, prev_child = 0;
    int rc = work_wait(j, WORK_EDGES);

    if (rc != 0)
        return rc;
    edges = j->edges.p;         /* made by the work thread */
    n = j->nedges;
    for (uint64_t i = 0; rc == 0 && i < n;) {
        uint64_t child = edges[i] >> 32, g = i;

        while (g < n && edges[g] >> 32 == child)
            g++;
        /* a parent listed twice (a list holding x twice) counts once */
        uint64_t np = 0, last = UINT64_MAX;
        for (uint64_t k = i; k < g; k++)
            if ((edges[k] & 0xffffffff) != last) {
                np++;
                last = edges[k] & 0xffffffff;
            }
        unsigned char *e;
        if ((2 + np) * ST_VARINT_MAX > ST_GIANT) {
            /* None, or a class with millions of instances: a block of
             * its own, its exact size counted first, written in place */
            unsigned char k[12], *v;
            size_t len = st_varint_len(0) + st_varint_len(np);

            last = UINT64_MAX;
            for (uint64_t k2 = i, prev = 0; k2 < g; k2++) {
                uint64_t parent = edges[k2] & 0xffffffff;

                if (parent == last)
                    continue;
                len += st_varint_len(parent - prev);
                prev = last = parent;
            }
            rc = block_flush(w, w->s->rev, id, &b, 1);
            if (rc != 0)
                break;
            st_key32(k, id, (uint32_t)child);
            rc = wtx_reserve(w, w->s->rev, k, 12, ST_BLOCK_HDR(0) + len,
                             (void **)&v);
            if (rc != 0)
                break;
            v[0] = v[1] = 0;            /* no skips */
            e = st_put_varint(v + ST_BLOCK_HDR(0), 0);
        } else {
            rc = block_next(w, w->s->rev, id, &b, 1, child,
                            (2 + np) * ST_VARINT_MAX);
            if (rc != 0)
                break;
            if (b.len == 0)
                prev_child = b.first;
            block_mark(&b, prev_child);
            e = st_put_varint(b.p + b.len, child - prev_child);
        }
        e = st_put_varint(e, np);
        last = 0;
        uint64_t prev_parent = UINT64_MAX;
        for (uint64_t k = i; k < g; k++) {
            uint64_t parent = edges[k] & 0xffffffff;

            if (parent == prev_parent)
                continue;
            e = st_put_varint(e, parent - last);
            last = parent;
            prev_parent = parent;
        }
        if (b.open)
            b.len = (size_t)(e - b.p);
        prev_child = child;
        i = g;
    }
    if (rc == 0)
        rc = block_flush(w, w->s->rev, id, &b, 1);
    free(b.p);
    return rc;
}

/* The commit's second step: retained, rtypes (the dominator tree's
 * answers, retained.h) in transactions of their own, once the snapshot
 * is visible.  ML_ENOTFOUND when the work thread could not compute
 * them (the snapshot then has none: computed on demand, as an old
 * store's).  MELIAE_TEST_RETAINED_HOLD_MS holds the step that long
 * before writing (the tests' window between the two steps). */
static int
write_retained(struct job *j, uint64_t id)
{
    int rc = work_wait(j, WORK_DONE);
    const char *hold = getenv("MELIAE_TEST_RETAINED_HOLD_MS");

    if (rc == 0)
        rc = j->rrc;
    if (rc == 0 && !j->rw.done)
        rc = ML_ENOTFOUND;
    if (hold != NULL && atoi(hold) > 0) {
        struct timespec ts = { atoi(hold) / 1000, atoi(hold) % 1000 * 1000000L };

        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    if (rc == 0)
        rc = st__ret_store(j->s, id, &j->rw.d, j->rw.tid, j->gtid);
    return rc;
}

static int
write_summ(struct job *j, struct wtx *w, uint64_t id)
{
    int rc = 0;

    for (uint32_t t = 0; rc == 0 && t < j->in->ntypes; t++) {
        const struct st_ltype *lt = &j->in->types[t];
        unsigned char k[12], v[32];

        st_key32(k, id, j->gtid[t]);
        st_put_be64(v, lt->count);
        st_put_be64(v + 8, lt->bytes);
        st_put_be64(v + 16, lt->max_size);
        st_put_be64(v + 24, lt->max_addr);
        rc = wtx_put(w, w->s->summ, k, 12, v, 32);
    }
    return rc;
}

static uint64_t
fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;

    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3ull;
    return h;
}

static void
boot_id(char out[64])
{
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");

    out[0] = '\0';
    if (f != NULL) {
        if (fgets(out, 64, f) == NULL)
            out[0] = '\0';
        fclose(f);
    }
}

/* A process's key: FNV-1a of what identifies it, kernel-verified when
 * possible (boot id, pid, start time), else as claimed (imported files:
 * their hostname, pid 0 and label). */
uint64_t
st_proc_key(const struct st_source *src)
{
    char buf[512];
    int n;

    /* An imported file is not the importing process: files with one label
     * form one "process" whatever imported them. */
    int file = src->mode != NULL && strcmp(src->mode, "file") == 0;

    if (src->trusted && !file) {
        char b[64];

        boot_id(b);
        n = snprintf(buf, sizeof buf, "t\n%s\n%d\n%.2f", b, (int)src->tpid,
                     src->tstart_time);
    } else if (src->trusted) {
        /* A file sent through the daemon: its claims, and who sent it, so
         * that one user's files never make (nor evict the graphs of)
         * another user's "process". */
        n = snprintf(buf, sizeof buf, "c\n%s\n%lld\n%.2f\n%s\n%u",
                     src->hostname ? src->hostname : "",
                     (long long)src->pid, src->start_time,
                     src->label ? src->label : "", (unsigned)src->uid);
    } else {
        n = snprintf(buf, sizeof buf, "c\n%s\n%lld\n%.2f\n%s",
                     src->hostname ? src->hostname : "",
                     (long long)src->pid, src->start_time,
                     src->label ? src->label : "");
    }
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof buf)
        n = (int)sizeof buf - 1;
    return fnv(0xcbf29ce484222325ull, buf, (size_t)n);
}

static char *
meta_json(const struct job *j, uint64_t id, uint64_t time_ns, uint64_t proc,
          uint64_t stored)
{
    const struct st_source *src = j->src;
    cJSON *o = cJSON_CreateObject(), *c, *t;
    char num[32];
    char *s = NULL;

    if (o == NULL)
        return NULL;
    cJSON_AddNumberToObject(o, "format", ST_FORMAT_VERSION);
    cJSON_AddStringToObject(o, "status", "complete");
    cJSON_AddNumberToObject(o, "id", (double)id);
    snprintf(num, sizeof num, "%llu", (unsigned long long)time_ns);
    cJSON_AddStringToObject(o, "time_ns", num);
    snprintf(num, sizeof num, "%016llx", (unsigned long long)proc);
    cJSON_AddStringToObject(o, "proc", num);
    cJSON_AddNumberToObject(o, "objects", (double)j->nkept);
    cJSON_AddNumberToObject(o, "bytes", (double)j->bkept);
    if (j->nkept != j->in->n)
        cJSON_AddNumberToObject(o, "repeats_dropped", (double)(j->in->n - j->nkept));
    cJSON_AddNumberToObject(o, "types", j->in->ntypes);
    cJSON_AddNumberToObject(o, "edges", (double)j->nedges);
    cJSON_AddNumberToObject(o, "stored_bytes", (double)stored);
    cJSON_AddBoolToObject(o, "graph", 1);
    c = cJSON_AddObjectToObject(o, "claimed");
    if (c != NULL) {
        cJSON_AddNumberToObject(c, "pid", (double)src->pid);
        cJSON_AddNumberToObject(c, "start_time", src->start_time);
        if (src->hostname)
            cJSON_AddStringToObject(c, "hostname", src->hostname);
        if (src->program)
            cJSON_AddStringToObject(c, "program", src->program);
        if (src->python)
            cJSON_AddStringToObject(c, "python", src->python);
        if (src->label)
            cJSON_AddStringToObject(c, "label", src->label);
        else
            cJSON_AddNullToObject(c, "label");
        cJSON_AddStringToObject(c, "values", src->values ? src->values : "none");
        cJSON_AddStringToObject(c, "mode", src->mode ? src->mode : "all");
        if (src->file)
            cJSON_AddStringToObject(c, "file", src->file);
        if (src->content_hash)
            cJSON_AddStringToObject(c, "content_hash", src->content_hash);
        cJSON_AddNumberToObject(c, "request", (double)src->request);
        cJSON_AddNumberToObject(c, "time", src->time);
    }
    if (src->procfig.has)
        cJSON_AddItemToObject(o, "process", st_procfig_json(&src->procfig));
    if (src->trusted) {
        t = cJSON_AddObjectToObject(o, "trusted");
        if (t != NULL) {
            cJSON_AddNumberToObject(t, "uid", src->uid);
            cJSON_AddNumberToObject(t, "gid", src->gid);
            cJSON_AddNumberToObject(t, "pid", src->tpid);
            cJSON_AddNumberToObject(t, "start_time", src->tstart_time);
        }
    } else {
        cJSON_AddNullToObject(o, "trusted");
    }
    s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* Last transaction: summaries, the complete record, the indexes. */
static int
finish_snapshot(struct job *j, struct wtx *w, uint64_t id, uint64_t *proc)
{
    unsigned char k[24], ik[8];
    uint64_t now = st__now_ns();
    char *meta;
    int rc;

    rc = write_summ(j, w, id);
    if (rc != 0)
        return rc;
    *proc = st_proc_key(j->src);
    meta = meta_json(j, id, now, *proc, w->stored);
    if (meta == NULL)
        return -ENOMEM;
    st_put_be64(ik, id);
    rc = wtx_put(w, w->s->snaps, ik, 8, meta, strlen(meta));
    free(meta);
    if (rc != 0)
        return rc;
    st_put_be64(k, now);
    st_put_be64(k + 8, id);
    rc = wtx_put(w, w->s->bytime, k, 16, "", 0);
    if (rc != 0)
        return rc;
    st_put_be64(k, *proc);
    st_put_be64(k + 8, now);
    st_put_be64(k + 16, id);
    rc = wtx_put(w, w->s->byproc, k, 24, "", 0);
    if (rc == 0 && w->s->graphs != 0)   /* it has its graph: byproc's key */
        rc = wtx_put(w, w->s->graphs, k, 24, "", 0);
    if (rc != 0)
        return rc;
    /* before it is visible: a reader that sees it sees it pending */
    if (w->s->has_ret)
        st__ret_pending_set(w->s, id);
    return wtx_commit(w, 1);
}

/* Birth sites (births.c), in the snapshot's transactions. */
static int
births_put(void *ctx, MDB_dbi db, const void *k, size_t klen, const void *v,
           size_t vlen)
{
    return wtx_put(ctx, db, k, klen, v, vlen);
}

static int
births_dropped(const void *dctx, uint64_t oid)
{
    return dropped(dctx, oid);
}

static int
write_births(struct job *j, struct wtx *w, uint64_t id)
{
    return st__births_write(w->s, j->in, id, births_dropped, j, births_put, w);
}

/* Deletes what a failed attempt committed.  A failure here leaves an
 * "ingesting" record that st_sweep removes at the next start: so does a
 * full disk, whose unreserved page copies could otherwise land in a hole
 * of the data file (SIGBUS, st__disk_ahead). */
static int
undo(struct st_store *s, uint64_t id)
{
    MDB_txn *txn;
    unsigned char k[8];
    MDB_val key = { 8, k };
    int rc;

    if (id == 0)
        return 0;
    rc = st__write_txn(s, &txn);
    if (rc != 0)
        return rc;
    st_put_be64(k, id);
    rc = st__drop_snapshot(s, txn, id, 1);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    mdb_del(txn, s->snaps, &key, NULL);
    return mdb_txn_commit(txn);
}

static int
attempt(struct job *j, uint64_t *id, uint64_t *proc)
{
    struct wtx w = { .s = j->s };
    int rc;

    *id = 0;
    rc = begin_snapshot(j, &w, id);
    if (rc == 0)
        rc = write_objs(j, &w, *id);        /* while the pairs are sorted */
    if (rc == 0)
        rc = write_addrs(j, &w, *id);
    if (rc == 0)
        rc = write_rev(j, &w, *id);
    if (rc == 0)
        rc = write_births(j, &w, *id);
    if (rc == 0)
        rc = finish_snapshot(j, &w, *id, proc);
    if (rc != 0)
        wtx_abort(&w);
    return rc;
}

/* Doubles the map until it holds want bytes, up to --max-store.  0, or
 * MDB_PANIC when LMDB could not map it again. */
int
st__grow_map(struct st_store *s, uint64_t mapsize, uint64_t want)
{
    uint64_t size = mapsize;
    int rc;

    while (size < want && size < s->max_store)
        size *= 2;
    if (size > s->max_store)
        size = s->max_store;
    if (size <= mapsize)
        return 0;
    pthread_rwlock_wrlock(&s->resize);      /* no reader in between */
    rc = mdb_env_set_mapsize(s->env, size);
    if (rc != 0)
        s->broken = 1;          /* unmapped, and not mapped again */
    pthread_rwlock_unlock(&s->resize);
    return rc == 0 ? 0 : MDB_PANIC;
}

/* After MDB_MAP_FULL: a bigger map, or else room made by dropping the
 * oldest graphs.  0 to retry, ML_EFULL when neither is possible. */
static int
make_room(struct st_store *s)
{
    MDB_envinfo info;
    int rc;

    mdb_env_info(s->env, &info);
    if (info.me_mapsize < s->max_store)
        return st__grow_map(s, info.me_mapsize, info.me_mapsize * 2);
    rc = st__prune_oldest(s, 0);
    return rc == ML_ENOTFOUND ? ML_EFULL : rc;
}

/* Grows the map before the first attempt when the snapshot may not fit
 * after the data file's end: an MDB_MAP_FULL half way throws the
 * attempt's work away (2.7 of 6 s for the first 10M-object snapshot of a
 * new store).  The estimate is generous, since a map is only address
 * space (the file is sparse, st__disk_ahead backs what is written):
 * the records about as big as in the spool, a few bytes per address and
 * per edge, a quarter more for LMDB's pages.  Pages freed by pruning are
 * not counted: the map may grow where it did not need to, never past
 * --max-store.  Failing here is not an error: the attempt finds out. */
static int
map_ahead(struct st_store *s, const struct st_ingest *in)
{
    MDB_envinfo info;
    uint64_t need = in->spool_bytes + 6 * in->n + 4 * in->nrefs;

    need += need / 4 + (1u << 20);
    if (mdb_env_info(s->env, &info) != 0)
        return 0;
    return st__grow_map(s, info.me_mapsize, st__used_end(s) + need);
}

int
st_commit(struct st_store *s, struct st_ingest *in,
          const struct st_source *src, uint64_t *id)
{
    return st_commit2(s, in, src, id, NULL, NULL, NULL);
}

int
st_commit2(struct st_store *s, struct st_ingest *in,
           const struct st_source *src, uint64_t *id,
           void (*visible)(void *arg, uint64_t id), void *arg, int *retrc)
{
    struct job j = { .s = s, .in = in, .src = src, .err = in->err,
                     .errlen = sizeof in->err, .stage = WORK_DONE,
                     .mu = PTHREAD_MUTEX_INITIALIZER,
                     .cv = PTHREAD_COND_INITIALIZER };
    char *err = in->err;
    void *map = NULL;
    uint64_t proc = 0;
    int rc;

    if (s->flags & ST_RDONLY)
        return -EROFS;
    if (s->broken)
        return MDB_PANIC;
    if (!in->ended || in->failed)
        return jfail(&j, ML_EPROTO, "ingest not ended");
    err[0] = '\0';
    j.pairs.fd = j.ptmp.fd = j.edges.fd = j.etmp.fd = j.amap.tab.fd = -1;
    j.sizes.fd = j.tids.fd = -1;
    j.dropsc.fd = -1;
    j.count = malloc(DIGITS * sizeof *j.count);
    j.gtid = malloc((in->ntypes + 1) * sizeof *j.gtid);
    if (j.count == NULL || j.gtid == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    j.spool_len = in->spool_bytes;
    if (j.spool_len > 0) {
        map = mmap(NULL, j.spool_len, PROT_READ, MAP_PRIVATE, in->fd, 0);
        if (map == MAP_FAILED) {
            map = NULL;
            rc = jfail(&j, -errno, "mapping the spool: %s", strerror(errno));
            goto out;
        }
        madvise(map, j.spool_len, MADV_SEQUENTIAL);
    }
    j.spool = map;
    if (in->keep_first) {
        rc = prepare(&j);
        if (rc != 0) {
            jfail(&j, rc, "%s", j.perr);
            goto out;
        }
        j.prepared = 1;
    }
    work_start(&j);
    rc = map_ahead(s, in);
    if (rc != 0) {
        jfail(&j, rc, "cannot grow the store's map: the store cannot be "
              "used until the daemon restarts");
        goto out;
    }
    for (;;) {
        rc = attempt(&j, id, &proc);
        if (rc == 0)
            break;
        if (rc == MDB_MAP_FULL) {
            /* objs came first: a snapshot prepare refuses (two objects
             * at one address) must not make room by pruning graphs. */
            int prc = work_wait(&j, WORK_PREPARED);

            if (prc != 0) {
                rc = prc;
                (void)undo(s, *id);     /* else swept at the next start */
                break;
            }
            int room = make_room(s);    /* first: undoing needs pages too */

            if (s->broken) {
                rc = room;
                jfail(&j, rc, "cannot grow the store's map: the store "
                      "cannot be used until the daemon restarts");
                break;
            }
            (void)undo(s, *id);         /* else swept at the next start */
            if (room == 0)
                continue;
            rc = room;
            if (rc == ML_EFULL)
                jfail(&j, rc, "store full: the snapshot needs more room than "
                      "--max-store %llu MiB leaves",
                      (unsigned long long)(s->max_store >> 20));
            break;
        }
        (void)undo(s, *id);             /* the same */
        break;
    }
    step1_over(&j, rc == 0 ? 1 : -1);
    if (rc == 0) {
        st__retain(s, proc, st__now_ns());     /* best effort, logged by caller */
        /* Step 1 is done: the snapshot is stored and visible.  Step 2,
         * its retained answers, after the caller is told (the daemon's
         * ack); a failure there leaves the snapshot without them. */
        if (visible != NULL) {
            st__size_refresh(s);        /* its size, as the caller sees it */
            visible(arg, *id);
        }
        int wrc = write_retained(&j, *id);

        if (retrc != NULL)
            *retrc = wrc;
    } else if (err != NULL && err[0] == '\0') {
        /* perr is the work thread's until it is done, and says why only
         * when its failure is the one returned */
        int wrc = work_wait(&j, WORK_DONE);

        jfail(&j, rc, "%s", j.perr[0] && (rc == j.prc || rc == wrc)
                            ? j.perr : st_strerror(rc));
    }
out:
    step1_over(&j, -1);                 /* if step 1 never ended */
    (void)work_wait(&j, WORK_DONE);     /* before its arrays go */
    if (s->ret_pending != 0)
        st__ret_pending_set(s, 0);      /* written, failed or never begun */
    pthread_cond_destroy(&j.cv);
    pthread_mutex_destroy(&j.mu);
    if (!s->broken)
        st__size_refresh(s);            /* grown, pruned, or both */
    if (map != NULL)
        munmap(map, j.spool_len);
    st__retwork_free(&j.rw);            /* before ptmp, its pool */
    scratch_free(&j.pairs);
    scratch_free(&j.sizes);
    scratch_free(&j.tids);
    scratch_free(&j.ptmp);
    scratch_free(&j.edges);
    scratch_free(&j.etmp);
    free(j.count);
    scratch_free(&j.amap.tab);
    free(j.gtid);
    scratch_free(&j.dropsc);
    return rc > 0 ? -rc : rc;           /* LMDB's errno values are positive */
}
