/* SPDX-License-Identifier: MIT
 *
 * ldfeed.c -- bytes to lines to the graph, and the second-half thread;
 * see ldfeed.h.  No Python here: the thread runs without the GIL.
 */
#define _GNU_SOURCE 1   /* pread under -std=c11 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ldfeed.h"
#include "ml-common.h"

#define SPLIT_CHUNK (1 << 20)

void
ldfeed_init(struct ldfeed *f, struct ml_graph *g, int skip)
{
    memset(f, 0, sizeof(*f));
    f->g = g;
    f->skip = skip;
    ml_dumpparser_init(&f->p);
    ldtb_init(&f->tb);
}

void
ldfeed_free(struct ldfeed *f)
{
    ml_dumpparser_free(&f->p);
    ldtb_free(&f->tb);
    free(f->partial);
    f->partial = NULL;
    f->plen = f->pcap = 0;
}

static void
record_skip(struct ldfeed *f, const char *err)
{
    if (f->skipped++ == 0) {
        f->first_skipped_line = f->lineno;
        snprintf(f->first_skipped_err, sizeof(f->first_skipped_err), "%s",
                 err);
    }
}

static int
stop(struct ldfeed *f, int rc, const char *msg)
{
    f->err_rc = rc;
    f->err_line = f->lineno;
    snprintf(f->err_msg, sizeof(f->err_msg), "%s", msg ? msg : "");
    return rc;
}

/* A parsed line s[0..n): an object to the graph, a traceback table line
 * to the table (kept whatever its place: before or after the objects
 * that use it), anything else counted. */
static int
add_line(struct ldfeed *f, const struct ml_dumpline *l, const char *s,
         size_t n)
{
    int rc;

    if (l->kind != ML_LINE_OBJECT) {
        f->nother++;
        if (l->has_traceback && ldtb_put(&f->tb, l->traceback, s, n) < 0)
            return stop(f, -ENOMEM, NULL);
        return 0;
    }
    if ((rc = ml_graph_add(f->g, l)) < 0)
        return stop(f, rc, NULL);
    return 0;
}

/* One complete line (without or with its '\n'). */
static int
do_line(struct ldfeed *f, const char *s, size_t n)
{
    struct ml_dumpline l;
    int rc;

    f->lineno++;
    /* An object line starts with '{': no scan for blanks then. */
    if ((n == 0 || *s != '{') && ml_dumpline_blank(s, n))
        return 0;
    rc = ml_dumpline_parse(&f->p, s, n, &l);
    if (rc == ML_EPROTO) {
        if (f->skip) {
            record_skip(f, f->p.err);
            return 0;
        }
        return stop(f, rc, f->p.err);
    }
    if (rc < 0)
        return stop(f, rc, NULL);
    return add_line(f, &l, s, n);
}

static int
partial_append(struct ldfeed *f, const char *s, size_t n)
{
    if (f->plen + n > f->pcap) {
        size_t ncap = f->pcap ? f->pcap : 4096;
        char *np;

        while (ncap < f->plen + n)
            ncap *= 2;
        np = realloc(f->partial, ncap);
        if (np == NULL)
            return stop(f, -ENOMEM, NULL);
        f->partial = np;
        f->pcap = ncap;
    }
    memcpy(f->partial + f->plen, s, n);
    f->plen += n;
    return 0;
}

int
ldfeed_feed(struct ldfeed *f, const char *s, size_t n)
{
    const char *end = s + n;

    if (f->err_rc != 0)
        return f->err_rc;
    f->bytes_fed += n;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));

        if (nl == NULL)
            return partial_append(f, s, (size_t)(end - s));
        if (f->plen) {
            size_t len;

            if (partial_append(f, s, (size_t)(nl - s)) < 0)
                return f->err_rc;
            len = f->plen;
            f->plen = 0;        /* the line is consumed, whatever it gives */
            if (do_line(f, f->partial, len) < 0)
                return f->err_rc;
        } else if (do_line(f, s, (size_t)(nl - s)) < 0) {
            return f->err_rc;
        }
        s = nl + 1;
    }
    return 0;
}

int
ldfeed_end(struct ldfeed *f)
{
    struct ml_dumpline l;
    size_t n = f->plen;
    int rc;

    if (f->err_rc != 0)
        return f->err_rc;
    f->plen = 0;
    if (n == 0 || ml_dumpline_blank(f->partial, n))
        return 0;
    f->lineno++;
    rc = ml_dumpline_parse(&f->p, f->partial, n, &l);
    if (rc == ML_EPROTO) {
        if (f->skip) {
            record_skip(f, "truncated (the dump was cut short)");
            return 0;
        }
        return stop(f, rc, "truncated (the dump was cut short)");
    }
    if (rc < 0)
        return stop(f, rc, NULL);
    return add_line(f, &l, f->partial, n);
}

/* ---- the second half -------------------------------------------------- */

static void *
split_run(void *arg)
{
    struct ldfeed_split *s = arg;
    char *buf = malloc(SPLIT_CHUNK);
    unsigned long long off = s->at;

    if (buf == NULL) {
        stop(&s->f, -ENOMEM, NULL);
        return NULL;
    }
    while (off < s->size && !__atomic_load_n(&s->stop, __ATOMIC_RELAXED)) {
        size_t want = s->size - off < SPLIT_CHUNK ? (size_t)(s->size - off)
                                                  : SPLIT_CHUNK;
        ssize_t n = pread(s->fd, buf, want, (off_t)off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            s->read_errno = errno;
            break;
        }
        if (n == 0)
            break;              /* the file shrank: what is there */
        off += (size_t)n;
        __atomic_store_n(&s->nread, off - s->at, __ATOMIC_RELAXED);
        if (ldfeed_feed(&s->f, buf, (size_t)n) < 0)
            break;
    }
    free(buf);
    return NULL;
}

int
ldfeed_split_start(struct ldfeed_split *s, int fd, unsigned long long size,
                   int skip)
{
    char buf[4096];
    unsigned long long at = size / 2;
    int rc;

    memset(s, 0, sizeof(*s));
    if (size < LDFEED_SPLIT_MIN)
        return 0;
    /* The second half starts after the first '\n' past the middle. */
    for (;;) {
        ssize_t n = pread(fd, buf, sizeof(buf), (off_t)at);
        char *nl;

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0 || at - size / 2 > (16u << 20))
            return 0;           /* no line end near the middle */
        if ((nl = memchr(buf, '\n', (size_t)n)) != NULL) {
            at += (size_t)(nl - buf) + 1;
            break;
        }
        at += (size_t)n;
    }
    if (at >= size)
        return 0;
    s->fd = fd;
    s->at = at;
    s->size = size;
    ml_graph_init(&s->g);
    ldfeed_init(&s->f, &s->g, skip);
    if ((rc = pthread_create(&s->th, NULL, split_run, s)) != 0) {
        ldfeed_free(&s->f);
        ml_graph_free(&s->g);
        return 0;               /* no thread: one thread reads it all */
    }
    return 1;
}

void
ldfeed_split_join(struct ldfeed_split *s, int abort)
{
    if (abort)
        __atomic_store_n(&s->stop, 1, __ATOMIC_RELAXED);
    pthread_join(s->th, NULL);
}

void
ldfeed_split_free(struct ldfeed_split *s)
{
    ldfeed_free(&s->f);
    ml_graph_free(&s->g);
}

int
ldfeed_split_merge(struct ldfeed *f, struct ldfeed_split *s)
{
    struct ldfeed *b = &s->f;
    unsigned long long base = f->lineno;
    int rc;

    if (s->read_errno != 0) {
        rc = -s->read_errno;
        ldfeed_split_free(s);
        return rc;
    }
    if (b->skipped > 0 && f->skipped == 0) {
        f->first_skipped_line = base + b->first_skipped_line;
        memcpy(f->first_skipped_err, b->first_skipped_err,
               sizeof(f->first_skipped_err));
    }
    f->skipped += b->skipped;
    f->lineno += b->lineno;
    f->nother += b->nother;
    f->bytes_fed += b->bytes_fed;
    if (b->err_rc != 0) {
        f->err_rc = b->err_rc;
        f->err_line = base + b->err_line;
        memcpy(f->err_msg, b->err_msg, sizeof(f->err_msg));
        ldfeed_split_free(s);
        return f->err_rc;
    }
    if ((rc = ml_graph_append(f->g, &s->g)) < 0
            || (rc = ldtb_take(&f->tb, &b->tb)) < 0) {
        ldfeed_split_free(s);
        return stop(f, rc, NULL);
    }
    /* The file's last line, if it had no '\n', is the thread's partial. */
    if (b->plen > 0 && partial_append(f, b->partial, b->plen) < 0) {
        ldfeed_split_free(s);
        return f->err_rc;
    }
    ldfeed_split_free(s);
    return 0;
}
