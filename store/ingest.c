/* SPDX-License-Identifier: MIT
 *
 * ingest.c -- the first half of storing a snapshot: each object line is
 * checked, its type interned in a per-snapshot table and its record
 * (codec.c) appended to the spool, an unlinked file in the store's tmp/
 * directory.  Memory is the write buffer and the type table, whatever the
 * number of objects; st_commit (commit.c) reads the spool back.
 */
#define _GNU_SOURCE             /* O_TMPFILE */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>              /* fstatfs: statvfs.h clashes with ST_RDONLY */
#include <unistd.h>

#include "births.h"
#include "ingest.h"
#include "paths.h"
#include "ml-common.h"
#include "protocol.h"
#include "utf8.h"

#define SPOOL_BUF (256u << 10)
#define PAIR_BUF 4096

/* Disk space.  The spool, and the snapshot it becomes, are on the store's
 * filesystem, with every other client's: a stream is stopped (a store
 * error, docs/protocol.md) before it leaves less than SPACE_KEEP free
 * (or a twentieth of a filesystem smaller than 10 GiB: a small disk is
 * not refused everything) once its commit has written about as much
 * again, rather than filling the disk for everyone up to
 * ML_PROTO_MAX_STREAM_BYTES.  fstatfs is a microsecond: checked every
 * SPACE_EVERY bytes of spool. */
#define SPACE_EVERY (1u << 20)
#define SPACE_KEEP (512ull << 20)

int
st__tmpfile(const char *dir)
{
    char path[4096];
    int fd;

    fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
        return fd >= 0 ? fd : -errno;
    /* No O_TMPFILE on this filesystem: name it, then unlink at once. */
    if (snprintf(path, sizeof path, "%s/spool.XXXXXX", dir) >= (int)sizeof path)
        return -ENAMETOOLONG;
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    unlink(path);
    return fd;
}

static int
fail(struct st_ingest *in, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(struct st_ingest *in, int rc, const char *fmt, ...)
{
    va_list ap;

    if (in->failed)             /* the first error is the one told */
        return in->failed;
    va_start(ap, fmt);
    vsnprintf(in->err, sizeof in->err, fmt, ap);
    va_end(ap);
    in->failed = rc;
    return rc;
}

int
st_ingest_new(struct st_ingest **out, const char *tmpdir, int keep_values)
{
    struct st_ingest *in;
    int rc = -ENOMEM;

    in = calloc(1, sizeof *in);
    if (in == NULL)
        return -ENOMEM;
    in->fd = in->pfd = in->sfd = in->tfd = -1;
    in->keep_values = keep_values;
    in->tmpdir = strdup(tmpdir);
    in->buf = malloc(SPOOL_BUF);
    in->pbuf = malloc(PAIR_BUF * sizeof *in->pbuf);
    in->sbuf = malloc(PAIR_BUF * sizeof *in->sbuf);
    in->tbuf = malloc(PAIR_BUF * sizeof *in->tbuf);
    in->thcap = 64;
    in->thash = calloc(in->thcap, sizeof *in->thash);
    if (in->buf == NULL || in->pbuf == NULL || in->sbuf == NULL
        || in->tbuf == NULL || in->thash == NULL || in->tmpdir == NULL)
        goto fail;
    in->fd = st__tmpfile(tmpdir);
    if (in->fd < 0) {
        rc = in->fd;
        goto fail;
    }
    in->pfd = st__tmpfile(tmpdir);
    if (in->pfd < 0) {
        rc = in->pfd;
        goto fail;
    }
    in->sfd = st__tmpfile(tmpdir);
    if (in->sfd < 0) {
        rc = in->sfd;
        goto fail;
    }
    in->tfd = st__tmpfile(tmpdir);
    if (in->tfd < 0) {
        rc = in->tfd;
        goto fail;
    }
    *out = in;
    return 0;
fail:
    st_ingest_free(in);
    return rc;
}

void
st_ingest_free(struct st_ingest *in)
{
    if (in == NULL)
        return;
    if (in->fd >= 0)
        close(in->fd);
    if (in->pfd >= 0)
        close(in->pfd);
    if (in->sfd >= 0)
        close(in->sfd);
    if (in->tfd >= 0)
        close(in->tfd);
    free(in->buf);
    free(in->pbuf);
    free(in->sbuf);
    free(in->tbuf);
    free(in->thash);
    free(in->types);
    free(in->names);
    free(in->tmpdir);
    st__births_free(in->births);
    free(in);
}

static int
write_all(int fd, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    size_t off = 0;

    while (off < len) {
        ssize_t n = write(fd, p + off, len - off);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        off += (size_t)n;
    }
    return 0;
}

static int
check_space(struct st_ingest *in)
{
    uint64_t written = in->spool_bytes
                       + in->n * (sizeof *in->pbuf + sizeof *in->sbuf
                                  + sizeof *in->tbuf);
    uint64_t avail, keep, need;
    struct statfs v;

    in->space_at = in->spool_bytes;
    if (fstatfs(in->fd, &v) != 0)
        return 0;               /* unknown: the commit reserves its own */
    avail = (uint64_t)v.f_bavail * (uint64_t)v.f_bsize;
    keep = (uint64_t)v.f_blocks * (uint64_t)v.f_bsize / 20;
    if (keep > SPACE_KEEP)
        keep = SPACE_KEEP;
    need = written + keep;
    if (avail >= need)
        return 0;
    return fail(in, -ENOSPC, "the store's filesystem has %llu MiB free: "
                "this snapshot (%llu MiB so far) would need about as much "
                "again to be stored, and %llu MiB are kept free",
                (unsigned long long)(avail >> 20),
                (unsigned long long)(written >> 20),
                (unsigned long long)(keep >> 20));
}

static int
flush(struct st_ingest *in)
{
    int rc = write_all(in->fd, in->buf, in->blen);

    if (rc < 0)
        return rc;
    in->spool_bytes += in->blen;
    in->blen = 0;
    if (in->spool_bytes - in->space_at >= SPACE_EVERY)
        return check_space(in);
    return 0;
}

static int
flush_pairs(struct st_ingest *in)
{
    int rc = write_all(in->pfd, in->pbuf, in->plen * sizeof *in->pbuf);

    if (rc == 0)
        rc = write_all(in->sfd, in->sbuf, in->plen * sizeof *in->sbuf);
    if (rc == 0)
        rc = write_all(in->tfd, in->tbuf, in->plen * sizeof *in->tbuf);
    in->plen = 0;
    return rc;
}

/* Records the address, size and type of object number in->n (before it
 * is counted). */
static int
add_pair(struct st_ingest *in, const struct ml_dumpline *l, int64_t ltid)
{
    int rc;

    if (in->plen == PAIR_BUF && (rc = flush_pairs(in)) < 0)
        return fail(in, rc, "writing the spool: %s", strerror(-rc));
    in->pbuf[in->plen].addr = l->address;
    in->pbuf[in->plen].oid = in->n;
    in->sbuf[in->plen] = l->size;
    in->tbuf[in->plen++] = (uint32_t)ltid;
    return 0;
}

static uint64_t
hash_name(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;         /* FNV-1a */

    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h;
}

static int
grow_hash(struct st_ingest *in)
{
    size_t cap = in->thcap * 2;
    uint32_t *h = calloc(cap, sizeof *h);

    if (h == NULL)
        return -ENOMEM;
    for (uint32_t i = 0; i < in->ntypes; i++) {
        size_t j = in->types[i].hash & (cap - 1);

        while (h[j] != 0)
            j = (j + 1) & (cap - 1);
        h[j] = i + 1;
    }
    free(in->thash);
    in->thash = h;
    in->thcap = cap;
    return 0;
}

/* The local id of type name s, added if new; negative on error. */
static int64_t
intern(struct st_ingest *in, const char *s, size_t n)
{
    uint64_t h;
    size_t j;
    struct st_ltype *t;

    n = ml_utf8_cut(s, n, ST_TYPE_NAME_MAX);
    /* Runs of one type are common (a list's items follow it): the last
     * one first, without hashing. */
    if (in->ntypes > 0) {
        t = &in->types[in->last_tid];
        if (t->name_len == n && memcmp(in->names + t->name_off, s, n) == 0)
            return in->last_tid;
    }
    h = hash_name(s, n);
    for (j = h & (in->thcap - 1); in->thash[j] != 0; j = (j + 1) & (in->thcap - 1)) {
        t = &in->types[in->thash[j] - 1];
        if (t->hash == h && t->name_len == n &&
            memcmp(in->names + t->name_off, s, n) == 0)
            return in->last_tid = in->thash[j] - 1;
    }
    if (in->ntypes == in->tcap) {
        size_t cap = in->tcap ? in->tcap * 2 : 64;
        void *p = realloc(in->types, cap * sizeof *in->types);

        if (p == NULL)
            return -ENOMEM;
        in->types = p;
        in->tcap = (uint32_t)cap;
    }
    if (in->names_len + n > in->names_cap) {
        size_t cap = in->names_cap ? in->names_cap : 4096;
        void *p;

        while (cap < in->names_len + n)
            cap *= 2;
        p = realloc(in->names, cap);
        if (p == NULL)
            return -ENOMEM;
        in->names = p;
        in->names_cap = cap;
    }
    memcpy(in->names + in->names_len, s, n);
    t = &in->types[in->ntypes];
    memset(t, 0, sizeof *t);
    t->name_off = in->names_len;
    t->name_len = n;
    t->hash = h;
    in->names_len += n;
    in->thash[j] = ++in->ntypes;
    in->last_tid = in->ntypes - 1;
    if (in->ntypes * 2 > in->thcap && grow_hash(in) < 0)
        return -ENOMEM;
    return in->ntypes - 1;
}

/* The checks and the type statistics of object l; its local type id in
 * *ltid.  0 or the error (in->failed set). */
static int
account(struct st_ingest *in, const struct ml_dumpline *l, int64_t *ltid_out)
{
    struct st_ltype *t;
    int64_t ltid;

    if (in->failed)
        return in->failed;
    if (in->ended)
        return fail(in, ML_EPROTO, "object line after the trailer");
    if (in->open)
        return fail(in, ML_EPROTO, "object line inside another one");
    if (in->n >= ML_PROTO_MAX_OBJECTS)
        return fail(in, ML_ETOOBIG, "more than %u objects in one snapshot",
                    ML_PROTO_MAX_OBJECTS);
    if (l->nrefs > ML_PROTO_MAX_REFS)
        return fail(in, ML_ETOOBIG, "object 0x%llx has %zu refs (limit %llu)",
                    (unsigned long long)l->address, l->nrefs,
                    ML_PROTO_MAX_REFS);
    /* with values "none", a str may carry its value only when it names
     * code, an int only when it fits 32 bits (docs/dump-format.md,
     * "Names of code") */
    if (l->vkind != ML_VAL_NONE && !in->keep_values
            && !(l->vkind == ML_VAL_STR && l->type_len == 3
                 && memcmp(l->type, "str", 3) == 0
                 && ml_is_code_name(l->value, l->value_len))
            && !(l->vkind == ML_VAL_INT && l->type_len == 3
                 && memcmp(l->type, "int", 3) == 0
                 && ml_is_small_int_text(l->value, l->value_len)))
        return fail(in, ML_EPROTO, "object 0x%llx has a value but the header "
                    "said values \"none\"", (unsigned long long)l->address);
    ltid = intern(in, l->type, l->type_len);
    if (ltid < 0)
        return fail(in, (int)ltid, "out of memory");
    t = &in->types[ltid];
    t->count++;
    t->bytes += l->size;
    if (l->size >= t->max_size) {
        t->max_size = l->size;
        t->max_addr = l->address;
    }
    *ltid_out = ltid;
    return 0;
}

int
st_ingest_object(struct st_ingest *in, const struct ml_dumpline *l)
{
    int64_t ltid;
    size_t need;
    int rc;

    if ((rc = account(in, l, &ltid)) != 0 ||
        (rc = st__births_object(in, l)) != 0 ||
        (rc = add_pair(in, l, ltid)) != 0)
        return rc;
    need = st_rec_max(l->name_len, l->value_len, l->nrefs);
    if (in->blen + need > SPOOL_BUF) {
        rc = flush(in);
        if (rc < 0)
            return fail(in, rc, "writing the spool: %s", strerror(-rc));
    }
    if (need > SPOOL_BUF) {             /* one huge line: its own buffer */
        unsigned char *big = malloc(need), *e;

        if (big == NULL)
            return fail(in, -ENOMEM, "out of memory");
        e = st_rec_put(big, in->prev_addr, l->address, (uint64_t)ltid,
                       l->size, l->has_len, l->len, l->name, l->name_len,
                       l->has_name, l->vkind,
                       l->value, l->value_len, l->refs, l->nrefs);
        unsigned char *save = in->buf;
        in->buf = big;
        in->blen = (size_t)(e - big);
        rc = flush(in);
        in->buf = save;
        free(big);
        if (rc < 0)
            return fail(in, rc, "writing the spool: %s", strerror(-rc));
    } else {
        unsigned char *e = st_rec_put(in->buf + in->blen, in->prev_addr,
                                      l->address, (uint64_t)ltid, l->size,
                                      l->has_len, l->len, l->name,
                                      l->name_len, l->has_name, l->vkind,
                                      l->value, l->value_len, l->refs,
                                      l->nrefs);
        in->blen = (size_t)(e - in->buf);
    }
    in->prev_addr = l->address;
    in->n++;
    in->bytes += l->size;
    in->nrefs += l->nrefs;
    return 0;
}

/* ---- one object in pieces: head, refs, count ----
 *
 * The record is the codec's (docs/store-format.md, "Object record"), its
 * ref count written as a REFCOUNT_WIDTH-byte varint padded with 0x80
 * continuation bytes (st_get_varint reads it like any other) and patched
 * once the count is known: in the buffer, or with pwrite when that part
 * of the spool was already written.  The commit re-encodes it minimally. */

#define REFCOUNT_WIDTH 5        /* 35 bits: ML_PROTO_MAX_REFS fits */

_Static_assert(ML_PROTO_MAX_REFS < (1ull << (7 * REFCOUNT_WIDTH)),
               "the padded ref count must hold ML_PROTO_MAX_REFS");

static void
put_padded(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < REFCOUNT_WIDTH; i++, v >>= 7)
        p[i] = (unsigned char)((v & 0x7f) | (i < REFCOUNT_WIDTH - 1 ? 0x80 : 0));
}

/* Writes p[0..n) to the spool, past the buffer (flushed first). */
static int
write_direct(struct st_ingest *in, const unsigned char *p, size_t n)
{
    unsigned char *save = in->buf;
    size_t save_len;
    int rc;

    if ((rc = flush(in)) < 0)
        return rc;
    save_len = in->blen;
    in->buf = (unsigned char *)p;
    in->blen = n;
    rc = flush(in);
    in->buf = save;
    in->blen = save_len;
    return rc;
}

int
st_ingest_begin(struct st_ingest *in, const struct ml_dumpline *l)
{
    unsigned char *p, *e, *big = NULL;
    int64_t ltid;
    size_t need;
    int rc;

    if ((rc = account(in, l, &ltid)) != 0 ||
        (rc = st__births_object(in, l)) != 0 ||
        (rc = add_pair(in, l, ltid)) != 0)
        return rc;
    need = st_rec_max(l->name_len, l->value_len, 0) + REFCOUNT_WIDTH;
    if (in->blen + need > SPOOL_BUF) {
        rc = flush(in);
        if (rc < 0)
            return fail(in, rc, "writing the spool: %s", strerror(-rc));
    }
    if (need > SPOOL_BUF) {             /* a long value: its own buffer */
        big = malloc(need);
        if (big == NULL)
            return fail(in, -ENOMEM, "out of memory");
        p = big;
    } else {
        p = in->buf + in->blen;
    }
    /* A count of 0 is the varint's last byte: replaced by the padded one. */
    e = st_rec_put_head(p, in->prev_addr, l->address, (uint64_t)ltid,
                        l->size, l->has_len, l->len, l->name, l->name_len,
                        l->has_name, l->vkind, l->value, l->value_len, 0) - 1;
    put_padded(e, 0);
    e += REFCOUNT_WIDTH;
    in->count_at = in->spool_bytes + in->blen + (uint64_t)(e - p)
                   - REFCOUNT_WIDTH;
    if (big != NULL) {
        rc = write_direct(in, big, (size_t)(e - big));
        free(big);
        if (rc < 0)
            return fail(in, rc, "writing the spool: %s", strerror(-rc));
    } else {
        in->blen += (size_t)(e - p);
    }
    in->open = 1;
    in->open_addr = l->address;
    in->open_nrefs = 0;
    in->prev_addr = l->address;
    in->n++;
    in->bytes += l->size;
    return 0;
}

int
st_ingest_refs(struct st_ingest *in, const uint64_t *refs, size_t n)
{
    int rc;

    if (in->failed)
        return in->failed;
    if (!in->open)
        return fail(in, ML_EPROTO, "refs outside an object");
    if (n > ML_PROTO_MAX_REFS - in->open_nrefs)
        return fail(in, ML_ETOOBIG, "object 0x%llx has more than %llu refs",
                    (unsigned long long)in->open_addr,
                    (unsigned long long)ML_PROTO_MAX_REFS);
    while (n > 0) {
        size_t room = (SPOOL_BUF - in->blen) / ST_VARINT_MAX, k;
        unsigned char *p = in->buf + in->blen;

        if (room == 0) {
            if ((rc = flush(in)) < 0)
                return fail(in, rc, "writing the spool: %s", strerror(-rc));
            continue;
        }
        k = n < room ? n : room;
        for (size_t i = 0; i < k; i++)
            p = st_put_varint(p, st_zigzag(in->open_addr, refs[i]));
        in->blen = (size_t)(p - in->buf);
        in->open_nrefs += k;
        in->nrefs += k;
        refs += k;
        n -= k;
    }
    return 0;
}

int
st_ingest_finish(struct st_ingest *in)
{
    unsigned char cnt[REFCOUNT_WIDTH];

    if (in->failed)
        return in->failed;
    if (!in->open)
        return fail(in, ML_EPROTO, "no object to finish");
    put_padded(cnt, in->open_nrefs);
    if (in->count_at >= in->spool_bytes) {
        memcpy(in->buf + (in->count_at - in->spool_bytes), cnt, sizeof cnt);
    } else {
        size_t off = 0;

        while (off < sizeof cnt) {
            ssize_t w = pwrite(in->fd, cnt + off, sizeof cnt - off,
                               (off_t)(in->count_at + off));

            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                int rc = w < 0 ? -errno : -EIO;

                return fail(in, rc, "writing the spool: %s", strerror(-rc));
            }
            off += (size_t)w;
        }
    }
    in->open = 0;
    return 0;
}

int
st_ingest_end(struct st_ingest *in, uint64_t objects, uint64_t bytes)
{
    int rc;

    if (in->failed)
        return in->failed;
    if (in->open)
        return fail(in, ML_EPROTO, "the trailer came inside an object");
    if (objects != in->n)
        return fail(in, ML_EPROTO, "trailer claims %llu objects, %llu arrived",
                    (unsigned long long)objects, (unsigned long long)in->n);
    if (bytes != in->bytes)
        return fail(in, ML_EPROTO, "trailer claims %llu bytes, the objects "
                    "sum to %llu", (unsigned long long)bytes,
                    (unsigned long long)in->bytes);
    rc = flush(in);
    if (rc == 0)
        rc = flush_pairs(in);
    if (rc < 0)
        return fail(in, rc, "writing the spool: %s", strerror(-rc));
    in->ended = 1;
    return 0;
}

void
st_ingest_keep_first(struct st_ingest *in)
{
    in->keep_first = 1;
}

uint64_t
st_ingest_count(const struct st_ingest *in)
{
    return in->n;
}

const char *
st_ingest_error(const struct st_ingest *in)
{
    return in->err[0] ? in->err : "no error";
}
