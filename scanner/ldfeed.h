/* SPDX-License-Identifier: MIT
 *
 * ldfeed.h -- the loader's bytes -> lines -> graph step, without Python:
 * meliae._loader's Graph feeds it, and so does the thread that parses the
 * second half of a plain dump file (ldfeed_split_*).
 */
#ifndef ML_LDFEED_H
#define ML_LDFEED_H

#include <pthread.h>
#include <stddef.h>

#include "dumpline.h"
#include "graph.h"
#include "ldtraces.h"

struct ldfeed {
    struct ml_graph *g;
    struct ml_dumpparser p;
    char *partial;              /* an incomplete last line, across feeds */
    size_t plen;
    size_t pcap;
    unsigned long long lineno;  /* lines seen so far */
    unsigned long long skipped; /* malformed lines, skip set */
    unsigned long long first_skipped_line;
    char first_skipped_err[200];
    unsigned long long nother;  /* lines without "address" */
    struct ldtb tb;             /* their traceback table lines (birth
                                 * sites), whose ids the objects' "trace"
                                 * in g refer to */
    unsigned long long bytes_fed;
    int skip;                   /* skip malformed lines, else stop */
    /* What stopped it: ML_EPROTO (err_line, err_msg), -ENOMEM or
     * ML_ETOOBIG; 0 while all is well. */
    int err_rc;
    unsigned long long err_line;
    char err_msg[200];
};

void ldfeed_init(struct ldfeed *f, struct ml_graph *g, int skip);
void ldfeed_free(struct ldfeed *f);

/* Feeds s[0..n): every complete line is parsed and added; the rest is
 * kept for the next feed.  0 or f->err_rc. */
int ldfeed_feed(struct ldfeed *f, const char *s, size_t n);

/* The end of the input: the kept partial line, if not blank, is a
 * truncated one (or a last line without its '\n').  0 or f->err_rc. */
int ldfeed_end(struct ldfeed *f);

/* The second half of a plain file, parsed by a thread into its own graph
 * while the caller parses the first half.  Usage: ldfeed_split_start
 * (fills s, starts the thread: 0, or -errno and nothing started), the
 * caller feeds bytes [0, s->at) of the file to its own ldfeed, then
 * ldfeed_split_join (waits; with abort set, tells the thread to stop
 * first) and, when the first half went well, ldfeed_split_merge. */
struct ldfeed_split {
    struct ml_graph g;
    struct ldfeed f;
    int fd;
    unsigned long long at;      /* where the second half starts */
    unsigned long long size;    /* the file's size */
    unsigned long long nread;   /* bytes the thread read (atomic) */
    int stop;                   /* set to stop the thread (atomic) */
    int read_errno;             /* a read error of the thread */
    pthread_t th;
};

/* Below this size a file is parsed by one thread. */
#define LDFEED_SPLIT_MIN (8u << 20)

/* Starts the thread for the file open as fd (which stays the caller's) of
 * size bytes, if it is big enough and has a '\n' near its middle; skip as
 * the caller's.  1 started, 0 not worth it (nothing started), -errno. */
int ldfeed_split_start(struct ldfeed_split *s, int fd,
                       unsigned long long size, int skip);

/* Waits for the thread (after asking it to stop when abort is set). */
void ldfeed_split_join(struct ldfeed_split *s, int abort);

/* Appends the second half to f (which has read bytes [0, s->at) and has no
 * partial line): objects, line counts, skipped lines, the partial last
 * line, and the second half's error, its line number made absolute.  0 or
 * f->err_rc; -errno (s->read_errno) for a read error.  Frees s. */
int ldfeed_split_merge(struct ldfeed *f, struct ldfeed_split *s);

/* Frees s after a join without merge. */
void ldfeed_split_free(struct ldfeed_split *s);

#endif /* ML_LDFEED_H */
