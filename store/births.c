/* SPDX-License-Identifier: MIT
 *
 * births.c -- birth sites: ingest, commit, retention and reading
 * (births.h; docs/store-format.md, "births" and "btrace").
 *
 * At ingest each table line ({"traceback": K, "frames": [...]}) is
 * checked and its frames appended, as compact JSON, to a spool of their
 * own; each object's "trace" goes into a file of one u32 per object (the
 * trace + 1, 0 for none), written sparse at oid * 4, so a snapshot whose
 * first traced object comes late costs nothing before it.  Both files
 * are unlinked temporaries beside the object spool, made at the first
 * line that has a birth site: a snapshot without any writes nothing.
 * Memory stays two small buffers whatever the number of objects.
 */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "births.h"
#include "ingest.h"
#include "protocol.h"

#define TRACE_BUF 16384         /* u32 entries buffered */
#define TB_BUF (64u << 10)      /* traceback spool bytes buffered */

struct st_births {
    int tfd;                    /* u32 per object, sparse */
    uint32_t *tbuf;
    uint64_t tbase;             /* oid of tbuf[0] */
    size_t tlen;                /* entries of tbuf in use */
    int bfd;                    /* tracebacks: u32 len || JSON, by id */
    unsigned char *bbuf;
    size_t blen;
    uint64_t bbytes;            /* written to bfd */
    uint64_t ntb;               /* tracebacks defined: ids 0..ntb-1 */
    uint64_t ntraced;           /* objects with a trace */
};

static int
bfail(struct st_ingest *in, int rc, const char *fmt, ...)
{
    va_list ap;

    if (in->failed)
        return in->failed;
    va_start(ap, fmt);
    vsnprintf(in->err, sizeof in->err, fmt, ap);
    va_end(ap);
    in->failed = rc;
    return rc;
}

static int
write_at(int fd, const void *p, size_t n, off_t off)
{
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, off);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p = (const char *)p + w;
        n -= (size_t)w;
        off += w;
    }
    return 0;
}

static int
births_get(struct st_ingest *in, struct st_births **out)
{
    struct st_births *b = in->births;

    if (b == NULL) {
        const char *dir = in->tmpdir;

        b = calloc(1, sizeof *b);
        if (b == NULL)
            return -ENOMEM;
        b->tfd = b->bfd = -1;
        b->tbuf = malloc(TRACE_BUF * sizeof *b->tbuf);
        b->bbuf = malloc(TB_BUF);
        if (b->tbuf == NULL || b->bbuf == NULL) {
            st__births_free(b);
            return -ENOMEM;
        }
        if ((b->tfd = st__tmpfile(dir)) < 0 || (b->bfd = st__tmpfile(dir)) < 0) {
            int rc = b->tfd < 0 ? b->tfd : b->bfd;

            st__births_free(b);
            return rc;
        }
        b->tbase = in->n;
        in->births = b;
    }
    *out = b;
    return 0;
}

void
st__births_free(struct st_births *b)
{
    if (b == NULL)
        return;
    if (b->tfd >= 0)
        close(b->tfd);
    if (b->bfd >= 0)
        close(b->bfd);
    free(b->tbuf);
    free(b->bbuf);
    free(b);
}

int
st__births_any(const struct st_ingest *in)
{
    return in->births != NULL && in->births->ntb > 0;
}

static int
flush_traces(struct st_births *b)
{
    int rc;

    if (b->tlen == 0)
        return 0;
    rc = write_at(b->tfd, b->tbuf, b->tlen * sizeof *b->tbuf,
                  (off_t)(b->tbase * sizeof *b->tbuf));
    b->tbase += b->tlen;
    b->tlen = 0;
    return rc;
}

int
st__births_object(struct st_ingest *in, const struct ml_dumpline *l)
{
    struct st_births *b = in->births;
    int rc;

    if (!l->has_trace && b == NULL)
        return 0;
    if (l->has_trace && (b == NULL || l->trace >= b->ntb))
        return bfail(in, ML_EPROTO, "object 0x%llx has trace %llu, which no "
                     "traceback line defined before it",
                     (unsigned long long)l->address,
                     (unsigned long long)l->trace);
    /* objects arrive in oid order: a gap (untraced objects) is zeros */
    if (in->n != b->tbase + b->tlen || b->tlen == TRACE_BUF) {
        if ((rc = flush_traces(b)) < 0)
            return bfail(in, rc, "writing the trace spool: %s", strerror(-rc));
        b->tbase = in->n;
    }
    b->tbuf[b->tlen++] = l->has_trace ? (uint32_t)l->trace + 1 : 0;
    b->ntraced += l->has_trace;
    return 0;
}

/* The frames of a table line, checked: a list of at most
 * ST_TRACE_MAX_FRAMES [file (str or null), line (int >= 0), function
 * (str or null)]. */
static int
frames_ok(const cJSON *fr, char *why, size_t n)
{
    const cJSON *f;
    int k = 0;

    if (!cJSON_IsArray(fr)) {
        snprintf(why, n, "\"frames\" is not a list");
        return 0;
    }
    cJSON_ArrayForEach(f, fr) {
        const cJSON *file = cJSON_GetArrayItem(f, 0);
        const cJSON *line = cJSON_GetArrayItem(f, 1);
        const cJSON *fn = cJSON_GetArrayItem(f, 2);

        if (++k > ST_TRACE_MAX_FRAMES) {
            snprintf(why, n, "more than %d frames", ST_TRACE_MAX_FRAMES);
            return 0;
        }
        if (!cJSON_IsArray(f) || cJSON_GetArraySize(f) != 3
            || !(cJSON_IsString(file) || cJSON_IsNull(file))
            || !cJSON_IsNumber(line) || line->valuedouble < 0
            || line->valuedouble > 2147483647.0
            || line->valuedouble != (double)(int)line->valuedouble
            || !(cJSON_IsString(fn) || cJSON_IsNull(fn))) {
            snprintf(why, n, "frame %d is not [file, line, function]", k);
            return 0;
        }
    }
    return 1;
}

int
st_ingest_traceback(struct st_ingest *in, const struct ml_dumpline *l,
                    const char *line, size_t n)
{
    struct st_births *b;
    cJSON *doc = NULL;
    char *text = NULL, why[80];
    uint32_t len;
    int rc;

    if (in->failed)
        return in->failed;
    if (in->ended)
        return bfail(in, ML_EPROTO, "traceback line after the trailer");
    if (in->open)
        return bfail(in, ML_EPROTO, "traceback line inside an object line");
    if ((rc = births_get(in, &b)) < 0)
        return bfail(in, rc, "the traceback spool: %s", strerror(-rc));
    if (!l->has_traceback || l->traceback != b->ntb)
        return bfail(in, ML_EPROTO, "traceback %llu where %llu was due (ids "
                     "count from 0, in order)",
                     (unsigned long long)l->traceback,
                     (unsigned long long)b->ntb);
    if (b->ntb >= ML_PROTO_MAX_OBJECTS)
        return bfail(in, ML_ETOOBIG, "more than %u tracebacks",
                     ML_PROTO_MAX_OBJECTS);
    doc = cJSON_ParseWithLength(line, n);
    if (doc == NULL)
        return bfail(in, ML_EPROTO, "traceback %llu: not JSON cJSON can read "
                     "(a lone surrogate?)", (unsigned long long)l->traceback);
    if (!frames_ok(cJSON_GetObjectItemCaseSensitive(doc, "frames"), why,
                   sizeof why)) {
        cJSON_Delete(doc);
        return bfail(in, ML_EPROTO, "traceback %llu: %s",
                     (unsigned long long)l->traceback, why);
    }
    text = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(doc,
                                                                   "frames"));
    cJSON_Delete(doc);
    if (text == NULL)
        return bfail(in, -ENOMEM, "out of memory");
    len = (uint32_t)strlen(text);
    if (len > ST_TRACE_MAX_JSON) {
        free(text);
        return bfail(in, ML_ETOOBIG, "traceback %llu longer than %u bytes",
                     (unsigned long long)l->traceback, ST_TRACE_MAX_JSON);
    }
    if (b->blen + 4 + len > TB_BUF) {
        rc = write_at(b->bfd, b->bbuf, b->blen, (off_t)b->bbytes);
        b->bbytes += b->blen;
        b->blen = 0;
        if (rc == 0 && 4 + len > TB_BUF) {
            unsigned char hdr[4];

            st_put_be32(hdr, len);
            rc = write_at(b->bfd, hdr, 4, (off_t)b->bbytes);
            if (rc == 0)
                rc = write_at(b->bfd, text, len, (off_t)b->bbytes + 4);
            b->bbytes += 4 + (uint64_t)len;
            len = 0;
            free(text);
            text = NULL;
        }
        if (rc < 0) {
            free(text);
            return bfail(in, rc, "writing the traceback spool: %s",
                         strerror(-rc));
        }
    }
    if (text != NULL) {
        st_put_be32(b->bbuf + b->blen, len);
        memcpy(b->bbuf + b->blen + 4, text, len);
        b->blen += 4 + len;
        free(text);
    }
    b->ntb++;
    return 0;
}

/* ---- commit ---- */

static void
key12(unsigned char k[12], uint64_t id, uint32_t n)
{
    st_put_be64(k, id);
    st_put_be32(k + 8, n);
}

static int
write_tracebacks(struct st_store *s, struct st_births *b, uint64_t id,
                 st_births_put_fn put, void *ctx)
{
    unsigned char k[12], *map = NULL;
    const unsigned char *p, *end;
    int rc;

    if ((rc = write_at(b->bfd, b->bbuf, b->blen, (off_t)b->bbytes)) < 0)
        return rc;
    b->bbytes += b->blen;
    b->blen = 0;
    if (b->bbytes == 0)
        return 0;
    map = mmap(NULL, b->bbytes, PROT_READ, MAP_PRIVATE, b->bfd, 0);
    if (map == MAP_FAILED)
        return -errno;
    p = map;
    end = map + b->bbytes;
    for (uint32_t k_id = 0; rc == 0 && k_id < b->ntb; k_id++) {
        uint32_t len;

        if (end - p < 4 || (len = st_get_be32(p), (size_t)(end - p - 4) < len)) {
            rc = ML_ECORRUPT;
            break;
        }
        key12(k, id, k_id);
        rc = put(ctx, s->births, k, 12, p + 4, len);
        p += 4 + len;
    }
    munmap(map, b->bbytes);
    return rc;
}

int
st__births_write(struct st_store *s, struct st_ingest *in, uint64_t id,
                 int (*dropped)(const void *dctx, uint64_t oid),
                 const void *dctx, st_births_put_fn put, void *ctx)
{
    struct st_births *b = in->births;
    unsigned char k[12], blk[ST_BTRACE_BLOCK * 5];
    uint32_t *tr = NULL;
    uint64_t have, first = 0, nout = 0;
    size_t blen = 0, nent = 0, maplen;
    struct stat st;
    int rc;

    if (b == NULL || b->ntb == 0 || s->births == 0 || s->btrace == 0)
        return 0;
    if ((rc = write_tracebacks(s, b, id, put, ctx)) != 0)
        return rc;
    if ((rc = flush_traces(b)) < 0)
        return rc;
    if (fstat(b->tfd, &st) != 0)
        return -errno;
    have = (uint64_t)st.st_size / sizeof *tr;   /* the rest: no trace */
    if (have > in->n)
        return ML_ECORRUPT;
    maplen = (size_t)have * sizeof *tr;
    if (maplen > 0) {
        tr = mmap(NULL, maplen, PROT_READ, MAP_PRIVATE, b->tfd, 0);
        if (tr == MAP_FAILED)
            return -errno;
        madvise(tr, maplen, MADV_SEQUENTIAL);
    }
    /* blocks of ST_BTRACE_BLOCK objects, by their new oid */
    for (uint64_t oid = 0; rc == 0 && oid < have; oid++) {
        uint32_t v;

        if (dropped != NULL && dropped(dctx, oid))
            continue;
        v = tr[oid];
        if (v > b->ntb) {
            rc = ML_ECORRUPT;
            break;
        }
        if (nent == 0)
            first = nout;
        blen = (size_t)(st_put_varint(blk + blen, v) - blk);
        nent++;
        nout++;
        if (nent == ST_BTRACE_BLOCK) {
            key12(k, id, (uint32_t)first);
            rc = put(ctx, s->btrace, k, 12, blk, blen);
            nent = blen = 0;
        }
    }
    if (rc == 0 && nent > 0) {
        key12(k, id, (uint32_t)first);
        rc = put(ctx, s->btrace, k, 12, blk, blen);
    }
    if (tr != NULL)
        munmap(tr, maplen);
    return rc;
}

/* ---- opening, retention ---- */

int
st__births_open(struct st_store *s, MDB_txn *txn, int ro)
{
    int rc = mdb_dbi_open(txn, "births", ro ? 0 : MDB_CREATE, &s->births);

    if (rc == 0)
        rc = mdb_dbi_open(txn, "btrace", ro ? 0 : MDB_CREATE, &s->btrace);
    if (rc == MDB_NOTFOUND && ro) {     /* a store from before them */
        s->births = s->btrace = 0;
        return 0;
    }
    return rc;
}

int
st__births_drop(struct st_store *s, MDB_txn *txn, uint64_t id)
{
    int rc = 0;

    if (s->births != 0)
        rc = st__del_prefix(txn, s->births, id);
    if (rc == 0 && s->btrace != 0)
        rc = st__del_prefix(txn, s->btrace, id);
    return rc;
}

/* ---- reading ---- */

int
st_births_has(struct st_read *r, uint64_t id)
{
    struct st_store *s = st__read_store(r);
    MDB_cursor *c;
    unsigned char k[12];
    MDB_val key = { 12, k }, val;
    int rc;

    if (s->births == 0)
        return 0;
    key12(k, id, 0);
    rc = mdb_cursor_open(st__read_txn(r), s->births, &c);
    if (rc != 0)
        return rc > 0 ? -rc : rc;
    rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE);
    mdb_cursor_close(c);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc > 0 ? -rc : rc;
    return key.mv_size == 12 && st_get_be64(key.mv_data) == id;
}

int
st_traceback_get(struct st_read *r, uint64_t id, uint32_t trace,
                 const char **json, size_t *len)
{
    struct st_store *s = st__read_store(r);
    unsigned char k[12];
    MDB_val key = { 12, k }, val;
    int rc;

    if (s->births == 0)
        return ML_ENOTFOUND;
    key12(k, id, trace);
    rc = mdb_get(st__read_txn(r), s->births, &key, &val);
    if (rc == MDB_NOTFOUND)
        return ML_ENOTFOUND;
    if (rc != 0)
        return rc > 0 ? -rc : rc;
    *json = val.mv_data;
    *len = val.mv_size;
    return 0;
}

int
st_trace_each(struct st_read *r, uint64_t id,
              int (*cb)(void *ctx, uint32_t oid, uint32_t trace), void *ctx)
{
    struct st_store *s = st__read_store(r);
    MDB_cursor *c;
    unsigned char k[12];
    MDB_val key = { 12, k }, val;
    int rc;

    if (s->btrace == 0)
        return 0;
    key12(k, id, 0);
    rc = mdb_cursor_open(st__read_txn(r), s->btrace, &c);
    if (rc != 0)
        return rc > 0 ? -rc : rc;
    rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE);
    while (rc == 0 && key.mv_size == 12 && st_get_be64(key.mv_data) == id) {
        const unsigned char *p = val.mv_data, *end = p + val.mv_size;
        uint32_t oid = st_get_be32((unsigned char *)key.mv_data + 8);

        for (; p < end; oid++) {
            uint64_t v;

            if (st_get_varint(&p, end, &v) < 0 || v > UINT32_MAX) {
                rc = ML_ECORRUPT;
                goto out;
            }
            if (v > 0 && (rc = cb(ctx, oid, (uint32_t)(v - 1))) != 0)
                goto out;
        }
        rc = mdb_cursor_get(c, &key, &val, MDB_NEXT);
    }
    if (rc == MDB_NOTFOUND)
        rc = 0;
out:
    mdb_cursor_close(c);
    return rc > 0 ? -rc : rc;
}
