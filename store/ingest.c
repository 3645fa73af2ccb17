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
#include <unistd.h>

#include "ingest.h"
#include "ml-common.h"
#include "protocol.h"
#include "utf8.h"

#define SPOOL_BUF (256u << 10)

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
    in->fd = -1;
    in->keep_values = keep_values;
    in->buf = malloc(SPOOL_BUF);
    in->thcap = 64;
    in->thash = calloc(in->thcap, sizeof *in->thash);
    if (in->buf == NULL || in->thash == NULL)
        goto fail;
    in->fd = st__tmpfile(tmpdir);
    if (in->fd < 0) {
        rc = in->fd;
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
    free(in->buf);
    free(in->thash);
    free(in->types);
    free(in->names);
    free(in);
}

static int
flush(struct st_ingest *in)
{
    size_t off = 0;

    while (off < in->blen) {
        ssize_t n = write(in->fd, in->buf + off, in->blen - off);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        off += (size_t)n;
    }
    in->spool_bytes += in->blen;
    in->blen = 0;
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
    h = hash_name(s, n);
    for (j = h & (in->thcap - 1); in->thash[j] != 0; j = (j + 1) & (in->thcap - 1)) {
        t = &in->types[in->thash[j] - 1];
        if (t->hash == h && t->name_len == n &&
            memcmp(in->names + t->name_off, s, n) == 0)
            return in->thash[j] - 1;
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
    if (in->ntypes * 2 > in->thcap && grow_hash(in) < 0)
        return -ENOMEM;
    return in->ntypes - 1;
}

int
st_ingest_object(struct st_ingest *in, const struct ml_dumpline *l)
{
    struct st_ltype *t;
    int64_t ltid;
    size_t need;
    int rc;

    if (in->failed)
        return in->failed;
    if (in->ended)
        return fail(in, ML_EPROTO, "object line after the trailer");
    if (in->n >= ML_PROTO_MAX_OBJECTS)
        return fail(in, ML_ETOOBIG, "more than %u objects in one snapshot",
                    ML_PROTO_MAX_OBJECTS);
    if (l->nrefs > ML_PROTO_MAX_REFS)
        return fail(in, ML_ETOOBIG, "object 0x%llx has %zu refs (limit %u)",
                    (unsigned long long)l->address, l->nrefs,
                    ML_PROTO_MAX_REFS);
    if (l->vkind != ML_VAL_NONE && !in->keep_values)
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

int
st_ingest_end(struct st_ingest *in, uint64_t objects, uint64_t bytes)
{
    int rc;

    if (in->failed)
        return in->failed;
    if (objects != in->n)
        return fail(in, ML_EPROTO, "trailer claims %llu objects, %llu arrived",
                    (unsigned long long)objects, (unsigned long long)in->n);
    if (bytes != in->bytes)
        return fail(in, ML_EPROTO, "trailer claims %llu bytes, the objects "
                    "sum to %llu", (unsigned long long)bytes,
                    (unsigned long long)in->bytes);
    rc = flush(in);
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
