/* SPDX-License-Identifier: MIT
 *
 * ingest.h -- the ingest state st_commit reads: the spool and the
 * per-snapshot type table.  Private to store/.
 */
#ifndef ST_INGEST_H
#define ST_INGEST_H

#include <stdarg.h>

#include "store-int.h"

/* A type of this snapshot and its summary row. */
struct st_ltype {
    size_t name_off;            /* in st_ingest.names */
    size_t name_len;
    uint64_t hash;
    uint64_t count, bytes, max_size, max_addr;
};

/* An object's address and its number (arrival order). */
struct st_pair {
    uint64_t addr;
    uint64_t oid;
};

struct st_ingest {
    int fd;                     /* the spool: records in arrival order */
    unsigned char *buf;         /* SPOOL_BUF bytes not yet written */
    size_t blen;
    uint64_t spool_bytes;
    /* The pairs file: an st_pair per object, in arrival order, which the
     * commit maps and sorts where it is (decoding the spool for them took
     * a tenth of a 10M-object commit, and its pages come zeroed). */
    int pfd;
    struct st_pair *pbuf;       /* PAIR_BUF pairs not yet written */
    size_t plen;
    /* The same for the dominator tree the commit computes (retained.h):
     * each object's size (u64) and type number (u32), in arrival order.
     * Made in the page cache here, they cost the commit no new page: new
     * pages faulted in beside the commit's transactions made both its
     * threads dearer (bench/RESULTS.md). */
    int sfd, tfd;
    uint64_t *sbuf;             /* plen of each not yet written */
    uint32_t *tbuf;
    uint64_t space_at;          /* spool_bytes at the last space check */
    uint64_t prev_addr;
    uint64_t n, bytes, nrefs;
    int keep_values;
    int keep_first;             /* repeated addresses: drop, not refuse */
    int ended;
    int failed;                 /* first error; sticky */
    int open;                   /* st_ingest_begin'd, not finished */
    uint64_t open_addr;         /* its address, */
    uint64_t open_nrefs;        /* its refs so far, */
    uint64_t count_at;          /* and where its padded count is */
    char err[200];
    struct st_ltype *types;
    uint32_t ntypes, tcap;
    uint32_t last_tid;          /* intern's last answer */
    char *names;
    size_t names_len, names_cap;
    uint32_t *thash;            /* open addressing: local id + 1, 0 empty */
    size_t thcap;
    char *tmpdir;               /* where the spools are */
    struct st_births *births;   /* birth sites (births.c); NULL: none yet */
};

/* An unlinked read-write file in dir: its fd, or -errno. */
int st__tmpfile(const char *dir);

#endif /* ST_INGEST_H */
