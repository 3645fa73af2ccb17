/* SPDX-License-Identifier: MIT
 *
 * test_store.c -- the snapshot store: what st_commit writes is what the
 * queries read back, for random graphs checked against a model kept
 * here; bad ingests and failing commits leave nothing visible; retention
 * and the size limit.  mdb_txn_commit is wrapped (-Wl,--wrap) to inject
 * MDB_MAP_FULL and EIO.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>

#include "ml-common.h"
#include "store-int.h"          /* txn_bytes: many commits per snapshot */
#include "test_rng.h"
#include "test_rss.h"
#include "test_store_fx.h"

/* ---- commit fault injection ---- */

int __real_mdb_txn_commit(MDB_txn *txn);
int __wrap_mdb_txn_commit(MDB_txn *txn);

static int fail_commit_at = -1;     /* commit number to fail; -1: none */
static int fail_commit_every;       /* fail every commit from then on */
static int fail_commit_rc;
static int exit_after_commit = -1;  /* _exit after this commit: a crash */
static int ncommits;

int
__wrap_mdb_txn_commit(MDB_txn *txn)
{
    int n = ncommits++, rc;

    if (fail_commit_at >= 0 &&
        (n == fail_commit_at || (fail_commit_every && n > fail_commit_at))) {
        mdb_txn_abort(txn);     /* a failed commit frees the transaction */
        return fail_commit_rc;
    }
    rc = __real_mdb_txn_commit(txn);
    if (n == exit_after_commit)
        _exit(rc == 0 ? 0 : 1);
    return rc;
}

int __real_mdb_env_set_mapsize(MDB_env *env, size_t size);
int __wrap_mdb_env_set_mapsize(MDB_env *env, size_t size);

static int fail_mapsize;            /* errno for the next growth; 0: none */
static int nmapsize;                /* calls, from st_open's on */

int
__wrap_mdb_env_set_mapsize(MDB_env *env, size_t size)
{
    int rc = fail_mapsize;

    nmapsize++;
    fail_mapsize = 0;
    return rc != 0 ? rc : __real_mdb_env_set_mapsize(env, size);
}

/* fstatfs (fstatfs64 with _FILE_OFFSET_BITS=64): the ingest's look at
 * the free disk space, made to say fake_avail bytes when not 0. */
int __real_fstatfs64(int fd, struct statfs *buf);
int __wrap_fstatfs64(int fd, struct statfs *buf);

static uint64_t fake_avail, fake_size;
static int nstatfs;

int
__wrap_fstatfs64(int fd, struct statfs *buf)
{
    int rc = __real_fstatfs64(fd, buf);

    nstatfs++;
    if (rc == 0 && fake_avail != 0)
        buf->f_bavail = fake_avail / (uint64_t)buf->f_bsize;
    if (rc == 0 && fake_size != 0)
        buf->f_blocks = fake_size / (uint64_t)buf->f_bsize;
    return rc;
}

static void
faults_off(void)
{
    fail_commit_at = -1;
    fail_commit_every = 0;
    exit_after_commit = -1;
    ncommits = 0;
    fake_avail = fake_size = 0;
}

/* ---- a random heap, and its model ---- */

static const char *const types[] = { "dict", "list", "str", "int", "tuple",
                                     "Leak", "module", "function" };
#define NTYPES (sizeof types / sizeof types[0])

struct mobj {
    uint64_t addr;
    unsigned type;
    uint64_t size;
    int has_len;
    uint64_t len;
    char name[24];
    int has_name;
    char value[32];
    int has_value;
    size_t nrefs;
    uint64_t *refs;
};

struct heap {
    size_t n;
    struct mobj *o;
};

static void
heap_make(struct heap *h, size_t n, uint64_t seed, int values)
{
    uint64_t r = seed * 0x9e3779b97f4a7c15ull + 1;

    h->n = n;
    h->o = calloc(n, sizeof *h->o);
    assert_non_null(h->o);
    for (size_t i = 0; i < n; i++) {
        struct mobj *o = &h->o[i];

        /* distinct, scattered, 16-aligned */
        o->addr = 0x7f0000000000ull + (uint64_t)i * 48 +
                  (rng_next(&r) & 1 ? 0x100000000ull : 0);
        o->type = (unsigned)(rng_next(&r) % NTYPES);
        o->size = 16 + rng_next(&r) % 400;
        o->has_len = rng_next(&r) % 2;
        o->len = rng_next(&r) % 1000;
        o->has_name = o->type == 6 || o->type == 7;
        snprintf(o->name, sizeof o->name, "n%zu", i);
        o->has_value = values && o->type == 2;
        snprintf(o->value, sizeof o->value, "value %zu", i);
        o->nrefs = rng_next(&r) % 5;
        o->refs = calloc(o->nrefs + 1, sizeof *o->refs);
    }
    for (size_t i = 0; i < n; i++) {
        struct mobj *o = &h->o[i];

        for (size_t k = 0; k < o->nrefs; k++) {
            if (rng_next(&r) % 10 == 0)
                o->refs[k] = 0x1000 + rng_next(&r) % 0x1000;   /* dangling */
            else
                o->refs[k] = h->o[rng_next(&r) % n].addr;
        }
    }
}

static void
heap_free(struct heap *h)
{
    for (size_t i = 0; i < h->n; i++)
        free(h->o[i].refs);
    free(h->o);
}

static void
line_of(const struct mobj *o, struct ml_dumpline *l)
{
    memset(l, 0, sizeof *l);
    l->kind = ML_LINE_OBJECT;
    l->address = o->addr;
    l->type = types[o->type];
    l->type_len = strlen(l->type);
    l->size = o->size;
    l->has_len = o->has_len;
    l->len = o->len;
    l->has_name = o->has_name;
    l->name = o->name;
    l->name_len = strlen(o->name);
    l->vkind = o->has_value ? ML_VAL_STR : ML_VAL_NONE;
    l->value = o->value;
    l->value_len = strlen(o->value);
    l->refs = o->refs;
    l->nrefs = o->nrefs;
}

static uint64_t
heap_bytes(const struct heap *h)
{
    uint64_t b = 0;

    for (size_t i = 0; i < h->n; i++)
        b += h->o[i].size;
    return b;
}

/* ---- store fixtures ---- */

static int
setup(void **state)
{
    *state = fx_open("store");
    faults_off();
    return 0;
}

static int
teardown(void **state)
{
    fx_close(*state);
    faults_off();
    return 0;
}

static const struct st_source src_a = {
    .pid = 4242, .start_time = 1000.5, .hostname = "h", .program = "app.py",
    .python = "3.11.2", .label = "web", .values = "truncated", .mode = "all",
    .trusted = 1, .uid = 1000, .gid = 1000, .tpid = 4242, .tstart_time = 1000.5,
};

static int
ingest_heap(struct st_store *s, const struct heap *h, int keep_values,
            const struct st_source *src, uint64_t *id)
{
    struct st_ingest *in;
    struct ml_dumpline l;
    int rc;

    assert_int_equal(st_ingest_new(&in, st_tmpdir(s), keep_values), 0);
    for (size_t i = 0; i < h->n; i++) {
        line_of(&h->o[i], &l);
        rc = st_ingest_object(in, &l);
        if (rc != 0)
            goto out;
    }
    rc = st_ingest_end(in, h->n, heap_bytes(h));
    if (rc == 0)
        rc = st_commit(s, in, src, id);
out:
    st_ingest_free(in);
    return rc;
}

static int
count_cb(void *ctx, const struct st_snapinfo *si)
{
    (void)si;
    ++*(int *)ctx;
    return 0;
}

static int
visible(struct st_store *s)
{
    struct st_read *r;
    int n = 0;

    assert_int_equal(st_read_begin(s, &r), 0);
    assert_int_equal(st_snap_list(r, 0, 0, count_cb, &n), 0);
    st_read_end(r);
    return n;
}

/* ---- round trip ---- */

struct sumcheck {
    uint64_t count[NTYPES], bytes[NTYPES], max_size[NTYPES];
    int rows;
};

static int
sum_cb(void *ctx, const struct st_typesum *t)
{
    struct sumcheck *c = ctx;

    for (unsigned k = 0; k < NTYPES; k++) {
        if (strlen(types[k]) == t->name_len &&
            memcmp(types[k], t->name, t->name_len) == 0) {
            assert_int_equal(t->count, c->count[k]);
            assert_int_equal(t->bytes, c->bytes[k]);
            assert_int_equal(t->max_size, c->max_size[k]);
            c->rows++;
            return 0;
        }
    }
    fail_msg("unknown type %.*s", (int)t->name_len, t->name);
    return 1;
}

struct parents {
    uint64_t want[64];
    size_t nwant, got;
};

static int
parent_cb(void *ctx, const struct st_object *o)
{
    struct parents *p = ctx;

    assert_true(p->got < p->nwant);
    assert_int_equal(o->address, p->want[p->got]);
    p->got++;
    return 0;
}

static void
check_roundtrip(struct st_store *s, uint64_t id, const struct heap *h,
                int values)
{
    struct st_read *r;
    struct st_snapinfo si;
    struct sumcheck sc = { 0 };

    assert_int_equal(st_read_begin(s, &r), 0);
    assert_int_equal(st_snap_get(r, id, &si), 0);
    assert_int_equal(si.objects, h->n);
    assert_int_equal(si.bytes, heap_bytes(h));
    assert_int_equal(si.pid, 4242);
    assert_true(si.has_graph);
    assert_string_equal(si.label, "web");

    for (size_t i = 0; i < h->n; i++) {
        unsigned t = h->o[i].type;

        sc.count[t]++;
        sc.bytes[t] += h->o[i].size;
        if (h->o[i].size > sc.max_size[t])
            sc.max_size[t] = h->o[i].size;
    }
    assert_int_equal(st_summary(r, id, sum_cb, &sc), 0);
    for (unsigned k = 0; k < NTYPES; k++)
        if (sc.count[k])
            sc.rows--;
    assert_int_equal(sc.rows, 0);

    for (size_t i = 0; i < h->n; i++) {
        const struct mobj *m = &h->o[i];
        struct st_object o;

        assert_int_equal(st_object_find(r, id, m->addr, &o), 0);
        assert_int_equal(o.address, m->addr);
        assert_int_equal(o.oid, i);
        assert_int_equal(o.type_len, strlen(types[m->type]));
        assert_memory_equal(o.type, types[m->type], o.type_len);
        assert_int_equal(o.size, m->size);
        assert_int_equal(o.has_len, m->has_len);
        if (m->has_len)
            assert_int_equal(o.len, m->len);
        assert_int_equal(o.name != NULL, m->has_name);
        if (m->has_name) {
            assert_int_equal(o.name_len, strlen(m->name));
            assert_memory_equal(o.name, m->name, o.name_len);
        }
        if (values && m->has_value) {
            assert_int_equal(o.vkind, ML_VAL_STR);
            assert_memory_equal(o.value, m->value, strlen(m->value));
        } else {
            assert_int_equal(o.vkind, ML_VAL_NONE);
        }
        assert_int_equal(o.nrefs, m->nrefs);
        for (size_t k = 0; k < m->nrefs; k++)
            assert_int_equal(o.refs[k], m->refs[k]);
    }

    /* referrers of a sample, against the model */
    for (size_t i = 0; i < h->n; i += 1 + h->n / 50) {
        struct parents p = { .nwant = 0 };

        for (size_t j = 0; j < h->n && p.nwant < 64; j++)
            for (size_t k = 0; k < h->o[j].nrefs; k++)
                if (h->o[j].refs[k] == h->o[i].addr) {
                    p.want[p.nwant++] = h->o[j].addr;
                    break;
                }
        if (p.nwant == 64)
            continue;
        assert_int_equal(st_referrers(r, id, h->o[i].addr, parent_cb, &p), 0);
        assert_int_equal(p.got, p.nwant);
    }
    {
        struct st_object o;

        assert_int_equal(st_object_find(r, id, 0x10, &o), ML_ENOTFOUND);
        assert_int_equal(st_object_find(r, id + 1000, h->o[0].addr, &o),
                         ML_ENOTFOUND);
    }
    st_read_end(r);
}

static void
test_store_roundtrip_random_graph(void **state)
{
    struct fx *f = *state;
    struct heap h;
    uint64_t id = 0;

    heap_make(&h, 20000, 1, 1);
    assert_int_equal(ingest_heap(f->s, &h, 1, &src_a, &id), 0);
    assert_true(id > 0);
    check_roundtrip(f->s, id, &h, 1);
    heap_free(&h);
}

static void
test_store_roundtrip_survives_reopen_readonly(void **state)
{
    struct fx *f = *state;
    struct st_options ro = { .flags = ST_RDONLY };
    struct st_store *s2;
    struct heap h;
    uint64_t id = 0;
    char err[256];

    heap_make(&h, 3000, 2, 0);
    assert_int_equal(ingest_heap(f->s, &h, 0, &src_a, &id), 0);
    assert_int_equal(st_open(&s2, f->dir, &ro, err, sizeof err), 0);
    check_roundtrip(s2, id, &h, 0);
    st_close(s2);
    heap_free(&h);
}

static void
test_store_empty_snapshot(void **state)
{
    struct fx *f = *state;
    struct heap h = { 0 };
    uint64_t id = 0;

    assert_int_equal(ingest_heap(f->s, &h, 0, &src_a, &id), 0);
    assert_int_equal(visible(f->s), 1);
}

static void
test_store_ids_increase(void **state)
{
    struct fx *f = *state;
    struct heap h;
    uint64_t a = 0, b = 0;

    heap_make(&h, 100, 3, 0);
    assert_int_equal(ingest_heap(f->s, &h, 0, &src_a, &a), 0);
    assert_int_equal(ingest_heap(f->s, &h, 0, &src_a, &b), 0);
    assert_true(b > a);
    heap_free(&h);
}

/* ---- bulk access ---- */

struct bulk {
    const struct heap *h;
    uint64_t next, last_addr;
    size_t nparents;
};

static int
each_obj_cb(void *ctx, const struct st_object *o)
{
    struct bulk *b = ctx;

    assert_int_equal(o->oid, b->next);
    assert_int_equal(o->address, b->h->o[b->next].addr);
    assert_int_equal(o->size, b->h->o[b->next].size);
    assert_int_equal(o->nrefs, b->h->o[b->next].nrefs);
    b->next++;
    return 0;
}

static int
each_addr_cb(void *ctx, uint64_t addr, uint32_t oid)
{
    struct bulk *b = ctx;

    assert_true(addr > b->last_addr);
    assert_int_equal(b->h->o[oid].addr, addr);
    b->last_addr = addr;
    b->next++;
    return 0;
}

static int
each_par_cb(void *ctx, uint32_t child, const uint32_t *par, size_t n)
{
    struct bulk *b = ctx;

    assert_true(n > 0);
    for (size_t i = 0; i < n; i++) {
        const struct mobj *p = &b->h->o[par[i]];
        size_t k;

        if (i > 0)
            assert_true(par[i] > par[i - 1]);
        for (k = 0; k < p->nrefs; k++)
            if (p->refs[k] == b->h->o[child].addr)
                break;
        assert_true(k < p->nrefs);
    }
    b->nparents += n;
    return 0;
}

static void
test_store_bulk_access_matches_model(void **state)
{
    struct fx *f = *state;
    struct heap h;
    uint64_t id = 0;
    struct st_read *r;
    struct bulk b = { .h = &h };
    size_t want = 0;

    heap_make(&h, 5000, 15, 0);
    assert_int_equal(ingest_heap(f->s, &h, 0, &src_a, &id), 0);
    assert_int_equal(st_read_begin(f->s, &r), 0);
    assert_int_equal(st_object_each(r, id, each_obj_cb, &b), 0);
    assert_int_equal(b.next, h.n);
    b.next = 0;
    assert_int_equal(st_address_each(r, id, each_addr_cb, &b), 0);
    assert_int_equal(b.next, h.n);
    assert_int_equal(st_parents_each(r, id, each_par_cb, &b), 0);
    /* every (parent, child) pair once */
    for (size_t i = 0; i < h.n; i++)
        for (size_t k = 0; k < h.o[i].nrefs; k++) {
            int dup = 0, found = 0;

            for (size_t m = 0; m < k; m++)
                dup |= h.o[i].refs[m] == h.o[i].refs[k];
            for (size_t j = 0; j < h.n && !found; j++)
                found = h.o[j].addr == h.o[i].refs[k];
            want += !dup && found;
        }
    assert_int_equal(b.nparents, want);
    {
        struct st_object o;
        uint32_t oid;

        assert_int_equal(st_oid_of(r, id, h.o[77].addr, &oid), 0);
        assert_int_equal(oid, 77);
        assert_int_equal(st_object_get(r, id, 77, &o), 0);
        assert_int_equal(o.address, h.o[77].addr);
        assert_int_equal(st_object_get(r, id, (uint32_t)h.n, &o), ML_ENOTFOUND);
    }
    st_read_end(r);
    heap_free(&h);
}

/* The model's answer: where child is first among o's refs. */
static size_t
model_child_at(const struct mobj *o, uint64_t child)
{
    for (size_t k = 0; k < o->nrefs; k++)
        if (o->refs[k] == child)
            return k;
    return SIZE_MAX;
}

/* A path's step needs the child's position and the ref before it, read
 * without decoding the parent's refs: every ref of every object (and of
 * one holding 200 000, repeats among them), and addresses not held. */
static void
test_store_object_child_finds_position_without_refs(void **state)
{
    struct fx *f = *state;
    struct heap h;
    uint64_t id = 0, prev, r64 = 99;
    struct st_read *r;
    struct st_object o;
    size_t at, checked = 0;
    struct mobj *big;

    heap_make(&h, 3000, 21, 0);
    big = &h.o[1234];
    free(big->refs);
    big->nrefs = 200000;
    big->refs = calloc(big->nrefs, sizeof *big->refs);
    assert_non_null(big->refs);
    for (size_t k = 0; k < big->nrefs; k++)
        big->refs[k] = h.o[rng_next(&r64) % h.n].addr;
    assert_int_equal(ingest_heap(f->s, &h, 0, &src_a, &id), 0);
    assert_int_equal(st_read_begin(f->s, &r), 0);
    for (size_t i = 0; i < h.n; i++) {
        const struct mobj *m = &h.o[i];
        size_t nk = m == big ? 2000 : m->nrefs;

        for (size_t k = 0; k <= nk; k++) {
            /* k == nk: an address the object does not hold */
            size_t kk = m == big ? (k * 97) % m->nrefs : k;
            uint64_t child = k < nk ? m->refs[kk] : 0x7e0000000010ull;
            size_t want = model_child_at(m, child);

            assert_int_equal(st_object_child(r, id, (uint32_t)i, child, &o,
                                             &at, &prev), 0);
            assert_int_equal(o.address, m->addr);
            assert_int_equal(o.nrefs, m->nrefs);
            assert_int_equal(o.refs_len, 0);
            assert_true(at == want);
            if (want == SIZE_MAX || want == 0)
                assert_int_equal(prev, 0);
            else
                assert_int_equal(prev, m->refs[want - 1]);
            checked++;
        }
    }
    assert_true(checked > h.n);
    assert_int_equal(st_object_child(r, id, (uint32_t)h.n, h.o[0].addr, &o,
                                     &at, &prev), ML_ENOTFOUND);
    st_read_end(r);
    heap_free(&h);
}

/* ---- bad ingests ---- */

static void
test_store_duplicate_address_refused(void **state)
{
    struct fx *f = *state;
    struct heap h;
    uint64_t id = 0;

    heap_make(&h, 500, 4, 0);
    h.o[300].addr = h.o[7].addr;
    assert_int_equal(ingest_heap(f->s, &h, 0, &src_a, &id), ML_EPROTO);
    assert_int_equal(visible(f->s), 0);
    heap_free(&h);
}

static void
test_store_keep_first_drops_repeated_addresses(void **state)
{
    struct fx *f = *state;
    struct st_ingest *in;
    struct ml_dumpline l;
    struct heap h;
    uint64_t id = 0, bytes = 0;
    struct st_read *r;
    struct st_snapinfo si;
    struct st_object o;

    heap_make(&h, 3000, 16, 0);
    /* lines 2000 and 2999 repeat objects 10 and 1999 (other sizes) */
    h.o[2000].addr = h.o[10].addr;
    h.o[2999].addr = h.o[1999].addr;
    assert_int_equal(st_ingest_new(&in, st_tmpdir(f->s), 0), 0);
    st_ingest_keep_first(in);
    for (size_t i = 0; i < h.n; i++) {
        line_of(&h.o[i], &l);
        assert_int_equal(st_ingest_object(in, &l), 0);
        if (i != 2000 && i != 2999)
            bytes += h.o[i].size;
    }
    assert_int_equal(st_ingest_end(in, h.n, heap_bytes(&h)), 0);
    assert_int_equal(st_commit(f->s, in, &src_a, &id), 0);
    st_ingest_free(in);

    assert_int_equal(st_read_begin(f->s, &r), 0);
    assert_int_equal(st_snap_get(r, id, &si), 0);
    assert_int_equal(si.objects, h.n - 2);
    assert_int_equal(si.bytes, bytes);
    /* the first line of an address wins; later objects are renumbered */
    assert_int_equal(st_object_find(r, id, h.o[10].addr, &o), 0);
    assert_int_equal(o.size, h.o[10].size);
    assert_int_equal(o.oid, 10);
    assert_int_equal(st_object_find(r, id, h.o[2001].addr, &o), 0);
    assert_int_equal(o.oid, 2000);
    assert_int_equal(o.size, h.o[2001].size);
    assert_int_equal(st_object_find(r, id, h.o[2998].addr, &o), 0);
    assert_int_equal(o.oid, 2997);
    st_read_end(r);
    heap_free(&h);
}

static void
test_store_trailer_count_mismatch_refused(void **state)
{
    struct fx *f = *state;
    struct st_ingest *in;
    struct ml_dumpline l;
    struct heap h;

    heap_make(&h, 10, 5, 0);
    assert_int_equal(st_ingest_new(&in, st_tmpdir(f->s), 0), 0);
    for (size_t i = 0; i < h.n; i++) {
        line_of(&h.o[i], &l);
        assert_int_equal(st_ingest_object(in, &l), 0);
    }
    assert_int_equal(st_ingest_end(in, 11, heap_bytes(&h)), ML_EPROTO);
    assert_non_null(strstr(st_ingest_error(in), "11 objects"));
    st_ingest_free(in);
    assert_int_equal(st_ingest_new(&in, st_tmpdir(f->s), 0), 0);
    for (size_t i = 0; i < h.n; i++) {
        line_of(&h.o[i], &l);
        assert_int_equal(st_ingest_object(in, &l), 0);
    }
    assert_int_equal(st_ingest_end(in, h.n, heap_bytes(&h) + 1), ML_EPROTO);
    st_ingest_free(in);
    heap_free(&h);
}

static void
test_store_value_refused_when_values_none(void **state)
{
    struct fx *f = *state;
    struct st_ingest *in;
    struct ml_dumpline l;
    /* a str that is not a name of code (docs/dump-format.md) */
    struct mobj o = { .addr = 0x1000, .type = 2, .size = 50,
                      .has_value = 1, .value = "secret token" };
    /* names of code pass: an identifier str, an int within 32 bits */
    struct mobj name = { .addr = 0x2000, .type = 2, .size = 50,
                         .has_value = 1, .value = "subscribers" };
    struct mobj num = { .addr = 0x3000, .type = 3, .size = 28,
                        .has_value = 1, .value = "2147483647" };
    struct mobj big = { .addr = 0x4000, .type = 3, .size = 32,
                        .has_value = 1, .value = "2147483648" };

    assert_int_equal(st_ingest_new(&in, st_tmpdir(f->s), 0), 0);
    line_of(&name, &l);
    assert_int_equal(st_ingest_object(in, &l), 0);
    line_of(&num, &l);
    l.vkind = ML_VAL_INT;
    assert_int_equal(st_ingest_object(in, &l), 0);
    line_of(&o, &l);
    assert_int_equal(st_ingest_object(in, &l), ML_EPROTO);
    assert_non_null(strstr(st_ingest_error(in), "values"));
    st_ingest_free(in);
    assert_int_equal(st_ingest_new(&in, st_tmpdir(f->s), 0), 0);
    line_of(&big, &l);
    l.vkind = ML_VAL_INT;
    assert_int_equal(st_ingest_object(in, &l), ML_EPROTO);
    st_ingest_free(in);
}

/* ---- failing commits ---- */

static void
commit_fails_cleanly(struct fx *f, int at, int rc_inject, int expect)
{
    struct heap h;
    uint64_t id = 0, swept = 99;
    int rc;

    heap_make(&h, 30000, 6, 0);
    fail_commit_at = at;
    fail_commit_rc = rc_inject;
    ncommits = 0;
    rc = ingest_heap(f->s, &h, 0, &src_a, &id);
    faults_off();
    assert_int_equal(rc, expect);
    assert_int_equal(visible(f->s), 0);
    /* nothing left behind for a sweep either */
    assert_int_equal(st_sweep(f->s, &swept), 0);
    assert_int_equal(swept, 0);
    /* and the store still works */
    assert_int_equal(ingest_heap(f->s, &h, 0, &src_a, &id), 0);
    assert_int_equal(visible(f->s), 1);
    heap_free(&h);
}

/* A new store's first write transaction (open_dbs) is reserved like the
 * others: the data file's blocks are allocated ST_DISK_SLACK past its
 * used end, so no page LMDB touches through the map is a hole. */
static void
test_store_open_reserves_disk_ahead(void **state)
{
    struct fx *f = *state;
    char path[128];
    struct stat sb;
    uint64_t used = st__used_end(f->s);

    assert_true(f->s->alloc_end >= used + ST_DISK_SLACK);
    snprintf(path, sizeof path, "%s/data.mdb", f->dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_true((uint64_t)sb.st_blocks * 512 >= used + ST_DISK_SLACK);
}

static void
test_store_eio_on_first_commit_leaves_nothing(void **state)
{
    commit_fails_cleanly(*state, 0, EIO, -EIO);
}

static void
test_store_eio_on_last_commit_leaves_nothing(void **state)
{
    struct fx *f = *state;
    struct heap h;
    uint64_t id;

    /* count the commits of one ingest, then fail the last of them */
    heap_make(&h, 30000, 6, 0);
    ncommits = 0;
    assert_int_equal(ingest_heap(f->s, &h, 0, &src_a, &id), 0);
    int total = ncommits;
    heap_free(&h);
    struct st_read *r;
    assert_int_equal(st_read_begin(f->s, &r), 0);
    st_read_end(r);
    /* a fresh store for the failing run */
    teardown(state);
    setup(state);
    /* total includes, after the snapshot's last, the retention
     * transaction and the retained answers' (st_commit2's second step,
     * one at this size) */
    commit_fails_cleanly(*state, total - 3, EIO, -EIO);
}

static void
test_store_map_full_grows_and_retries(void **state)
{
    struct fx *f = *state;
    struct heap h;
    uint64_t id = 0;

    heap_make(&h, 5000, 7, 0);
    fail_commit_at = 1;
    fail_commit_rc = MDB_MAP_FULL;
    assert_int_equal(ingest_heap(f->s, &h, 0, &src_a, &id), 0);
    faults_off();
    assert_int_equal(visible(f->s), 1);
    check_roundtrip(f->s, id, &h, 0);
    heap_free(&h);
}

static atomic_int sizer_stop;
static atomic_ulong sizer_reads, sizer_zeros;

static void *
sizer(void *arg)
{
    struct st_store *s = arg;

    while (!sizer_stop) {           /* no cmocka asserts off its thread */
        if (st_size(s) == 0)
            sizer_zeros++;
        sizer_reads++;
    }
    return NULL;
}

/* The daemon's loop reads st_size for its metrics while the writer
 * thread may be remapping a growing map: st_size must not touch the map
 * (it crashed inside mdb_env_info when it did). */
static void
test_store_size_is_safe_to_read_while_the_map_grows(void **state)
{
    struct fx *f = *state;
    struct heap h;
    pthread_t t;
    uint64_t id = 0, before = st_size(f->s);

    heap_make(&h, 2000, 9, 0);
    sizer_stop = 0;
    sizer_reads = sizer_zeros = 0;
    assert_int_equal(pthread_create(&t, NULL, sizer, f->s), 0);
    for (int i = 0; i < 8; i++) {       /* 256 MiB doubled to 64 GiB */
        ncommits = 0;
        fail_commit_at = 0;
        fail_commit_rc = MDB_MAP_FULL;
        assert_int_equal(ingest_heap(f->s, &h, 0, &src_a, &id), 0);
        faults_off();
    }
    sizer_stop = 1;
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(sizer_reads > 0);
    assert_int_equal(sizer_zeros, 0);
    assert_true(st_size(f->s) > before);
    assert_int_equal(visible(f->s), 8);
    heap_free(&h);
}

struct overlap {
    struct st_store *s;
    double until;                   /* monotonic seconds: give up then */
    atomic_int gave_up;
};

static double
mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Back-to-back reads of 2 ms, as a busy daemon's queries overlap. */
static void *
overlapping_reader(void *arg)
{
    struct overlap *o = arg;
    struct st_read *r;

    while (!sizer_stop) {
        if (mono() > o->until) {
            o->gave_up = 1;
            break;
        }
        if (st_read_begin(o->s, &r) == 0) {
            usleep(2000);
            st_read_end(r);
        }
        sizer_reads++;
    }
    return NULL;
}

/* A map growth waits for the reads in progress, not for a moment with no
 * reader at all, which overlapping queries may never leave. */
static void
test_store_map_growth_is_not_starved_by_overlapping_reads(void **state)
{
    struct fx *f = *state;
    struct overlap o = { .s = f->s, .until = mono() + 20 };
    struct heap h;
    pthread_t t[3];
    uint64_t id = 0;
    double t0;

    heap_make(&h, 2000, 10, 0);
    sizer_stop = 0;
    sizer_reads = 0;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, overlapping_reader, &o),
                         0);
        usleep(700);                /* staggered: always one reading */
    }
    t0 = mono();
    ncommits = 0;
    fail_commit_at = 0;
    fail_commit_rc = MDB_MAP_FULL;
    assert_int_equal(ingest_heap(f->s, &h, 0, &src_a, &id), 0);
    faults_off();
    double took = mono() - t0;
    sizer_stop = 1;
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_false(o.gave_up);
    assert_true(took < 10.0);
    assert_true(sizer_reads > 3);
    assert_int_equal(visible(f->s), 1);
    heap_free(&h);
}

/* A growth that fails leaves LMDB without a map (it unmapped the old
 * one): from then on everything answers MDB_PANIC, for the daemon to stop
 * and be restarted, and nothing touches the map, not even st_size. */
static void
test_store_failed_map_growth_panics_instead_of_crashing(void **state)
{
    struct fx *f = *state;
    struct st_read *r;
    struct heap h;
    uint64_t id = 0, n, size = st_size(f->s);

    heap_make(&h, 2000, 11, 0);
    assert_int_equal(ingest_heap(f->s, &h, 0, &src_a, &id), 0);
    size = st_size(f->s);
    ncommits = 0;
    fail_commit_at = 0;
    fail_commit_rc = MDB_MAP_FULL;
    fail_mapsize = ENOMEM;
    assert_int_equal(ingest_heap(f->s, &h, 0, &src_a, &id), MDB_PANIC);
    faults_off();
    assert_int_equal(st_read_begin(f->s, &r), MDB_PANIC);
    assert_int_equal(st_sweep(f->s, &n), MDB_PANIC);
    assert_int_equal(ingest_heap(f->s, &h, 0, &src_a, &id), MDB_PANIC);
    assert_true(st_size(f->s) == size);     /* the last size known */
    heap_free(&h);
}

static void
test_store_map_full_at_limit_refuses(void **state)
{
    struct fx *f = *state;
    struct st_options opt = { .max_store = 256ull << 20 };
    struct st_store *s;
    struct heap h;
    uint64_t id = 0;
    char err[256];

    st_close(f->s);
    assert_int_equal(st_open(&s, f->dir, &opt, err, sizeof err), 0);
    f->s = s;
    heap_make(&h, 5000, 8, 0);
    fail_commit_at = 1;
    fail_commit_every = 1;
    fail_commit_rc = MDB_MAP_FULL;
    assert_int_equal(ingest_heap(f->s, &h, 0, &src_a, &id), ML_EFULL);
    faults_off();
    assert_int_equal(visible(f->s), 0);
    heap_free(&h);
}

/* A stream that would leave the store's filesystem nearly full is
 * stopped while it arrives, with a message that says so, long before its
 * spool fills the disk; nothing is stored and the next one is taken.
 * The free space is looked at as the spool grows, not per object. */
static void
test_store_ingest_stops_before_disk_fills(void **state)
{
    struct fx *f = *state;
    struct st_ingest *in;
    struct ml_dumpline l;
    struct heap h;
    uint64_t id = 0;
    size_t i;
    int rc = 0;

    heap_make(&h, 300000, 12, 0);           /* a few MiB of spool */
    nstatfs = 0;
    fake_avail = 520ull << 20;              /* 512 MiB kept free */
    assert_int_equal(st_ingest_new(&in, st_tmpdir(f->s), 0), 0);
    for (i = 0; i < h.n && rc == 0; i++) {
        line_of(&h.o[i], &l);
        rc = st_ingest_object(in, &l);
    }
    assert_int_equal(rc, -ENOSPC);
    assert_true(i < h.n);                   /* stopped on the way */
    assert_non_null(strstr(st_ingest_error(in), "MiB are kept free"));
    assert_non_null(strstr(st_ingest_error(in), "filesystem has 520 MiB free"));
    assert_int_equal(st_ingest_end(in, h.n, heap_bytes(&h)), -ENOSPC);
    st_ingest_free(in);
    assert_true(nstatfs >= 1 && nstatfs < 10);
    assert_int_equal(visible(f->s), 0);
    /* a small disk (1 GiB) keeps a twentieth free, not 512 MiB: 80 MiB
     * free take the same stream, 52 MiB do not */
    fake_size = 1ull << 30;
    fake_avail = 80ull << 20;
    assert_int_equal(ingest_heap(f->s, &h, 0, &src_a, &id), 0);
    assert_int_equal(visible(f->s), 1);
    fake_avail = 52ull << 20;
    assert_int_equal(ingest_heap(f->s, &h, 0, &src_a, &id), -ENOSPC);
    assert_int_equal(visible(f->s), 1);
    fake_avail = fake_size = 0;             /* the real disk: room */
    assert_int_equal(ingest_heap(f->s, &h, 0, &src_a, &id), 0);
    assert_int_equal(visible(f->s), 2);
    heap_free(&h);
}

/* A snapshot bigger than the map left grows it first, once, instead of
 * failing half way with MDB_MAP_FULL and starting again: the first
 * attempt stores it (its id is the first), and the map was set twice
 * (st_open, then the growth). */
static void
test_store_big_snapshot_grows_map_before_writing(void **state)
{
    struct fx *f = *state;
    struct st_options opt = { .map_size = 1u << 20 };
    struct st_store *s;
    struct heap h;
    uint64_t id = 0;
    char err[256];

    st_close(f->s);
    fx_rm_rf(f->dir);
    nmapsize = 0;
    assert_int_equal(st_open(&s, f->dir, &opt, err, sizeof err), 0);
    f->s = s;
    assert_int_equal(nmapsize, 1);
    heap_make(&h, 150000, 11, 0);       /* MiBs stored */
    assert_int_equal(ingest_heap(s, &h, 0, &src_a, &id), 0);
    assert_int_equal(id, 1);
    assert_int_equal(nmapsize, 2);
    assert_true(st_size(s) > (1u << 20));     /* did not fit */
    assert_int_equal(visible(s), 1);
    heap_free(&h);
}

static int
graph_cb(void *ctx, const struct st_snapinfo *si)
{
    *(int *)ctx += si->has_graph != 0;
    return 0;
}

static int
graphs(struct st_store *s)
{
    struct st_read *r;
    int n = 0;

    assert_int_equal(st_read_begin(s, &r), 0);
    assert_int_equal(st_snap_list(r, 0, 0, graph_cb, &n), 0);
    st_read_end(r);
    return n;
}

/* A full store makes room for a snapshot by dropping the oldest graphs,
 * but not for one it refuses: two objects at one address are found
 * (by the sort, beside the objs being written) before anything is
 * pruned, and that is the error told. */
static void
test_store_refused_snapshot_prunes_no_graph(void **state)
{
    struct fx *f = *state;
    struct st_options opt = { .max_store = 2u << 20, .retain = 100 };
    struct st_store *s;
    struct heap h, bad;
    uint64_t id = 0;
    char err[256];
    int before;

    st_close(f->s);
    fx_rm_rf(f->dir);
    assert_int_equal(st_open(&s, f->dir, &opt, err, sizeof err), 0);
    f->s = s;
    heap_make(&h, 8000, 9, 0);
    for (int i = 0; i < 12; i++)
        assert_int_equal(ingest_heap(s, &h, 0, &src_a, &id), 0);
    before = graphs(s);
    assert_true(before > 0 && before < 12);     /* the store is full */
    heap_make(&bad, 30000, 13, 0);
    bad.o[bad.n - 1].addr = bad.o[0].addr;
    {
        struct st_ingest *in;
        struct ml_dumpline l;

        assert_int_equal(st_ingest_new(&in, st_tmpdir(s), 0), 0);
        for (size_t i = 0; i < bad.n; i++) {
            line_of(&bad.o[i], &l);
            assert_int_equal(st_ingest_object(in, &l), 0);
        }
        assert_int_equal(st_ingest_end(in, bad.n, heap_bytes(&bad)), 0);
        assert_int_equal(st_commit(s, in, &src_a, &id), ML_EPROTO);
        assert_non_null(strstr(st_ingest_error(in), "two objects at address"));
        st_ingest_free(in);
    }
    assert_int_equal(graphs(s), before);
    assert_int_equal(visible(s), 12);
    heap_free(&bad);
    heap_free(&h);
}

/* A real full map: a 2 MiB store takes snapshot after snapshot by
 * dropping the oldest graphs; one too big for it is refused. */
static void
test_store_small_store_prunes_oldest_graphs(void **state)
{
    struct fx *f = *state;
    struct st_options opt = { .max_store = 2u << 20, .retain = 100 };
    struct st_store *s;
    struct heap h, big;
    uint64_t first = 0, id = 0;
    char err[256];

    st_close(f->s);
    fx_rm_rf(f->dir);
    assert_int_equal(st_open(&s, f->dir, &opt, err, sizeof err), 0);
    f->s = s;
    heap_make(&h, 8000, 9, 0);
    for (int i = 0; i < 12; i++) {
        assert_int_equal(ingest_heap(s, &h, 0, &src_a, &id), 0);
        if (i == 0)
            first = id;
    }
    assert_int_equal(visible(s), 12);
    {
        struct st_read *r;
        struct st_object o;
        struct st_snapinfo si;

        assert_int_equal(st_read_begin(s, &r), 0);
        assert_int_equal(st_snap_get(r, first, &si), 0);
        assert_false(si.has_graph);
        assert_int_equal(st_object_find(r, first, h.o[0].addr, &o), -ENODATA);
        assert_int_equal(st_object_find(r, id, h.o[0].addr, &o), 0);
        st_read_end(r);
    }
    heap_make(&big, 200000, 10, 0);
    assert_int_equal(ingest_heap(s, &big, 0, &src_a, &id), ML_EFULL);
    assert_int_equal(visible(s), 12);
    heap_free(&big);
    heap_free(&h);
}

/* ---- retention ---- */

static void
test_store_retain_keeps_graphs_spread_per_process(void **state)
{
    struct fx *f = *state;
    struct st_options opt = { .retain = 2 };
    struct st_source other = src_a;
    struct st_store *s;
    struct heap h;
    uint64_t ids[5], oid = 0;
    char err[256];

    st_close(f->s);
    assert_int_equal(st_open(&s, f->dir, &opt, err, sizeof err), 0);
    f->s = s;
    other.tpid = 5000;
    heap_make(&h, 200, 11, 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(ingest_heap(s, &h, 0, &src_a, &ids[i]), 0);
    assert_int_equal(ingest_heap(s, &h, 0, &other, &oid), 0);

    struct st_read *r;
    struct st_snapinfo si;
    assert_int_equal(st_read_begin(s, &r), 0);
    /* retain 2: the newest and the oldest (the baseline of a diff) */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(st_snap_get(r, ids[i], &si), 0);
        assert_int_equal(si.has_graph, i == 0 || i == 4);
    }
    assert_int_equal(st_snap_get(r, oid, &si), 0);
    assert_true(si.has_graph);
    st_read_end(r);
    heap_free(&h);
}

/* Issue 22: a process that streams fast kept only its last `retain`
 * graphs, seconds of its life; they are spread over all of it now. */
static void
test_store_retain_spreads_a_fast_streamers_graphs(void **state)
{
    struct fx *f = *state;
    struct st_options opt = { .retain = 5 };
    struct st_store *s;
    struct heap h;
    uint64_t ids[40];
    int kept = 0, kept_old = 0;
    char err[256];

    st_close(f->s);
    assert_int_equal(st_open(&s, f->dir, &opt, err, sizeof err), 0);
    f->s = s;
    heap_make(&h, 50, 13, 0);
    for (int i = 0; i < 40; i++)
        assert_int_equal(ingest_heap(s, &h, 0, &src_a, &ids[i]), 0);

    struct st_read *r;
    struct st_snapinfo si;
    assert_int_equal(st_read_begin(s, &r), 0);
    for (int i = 0; i < 40; i++) {
        assert_int_equal(st_snap_get(r, ids[i], &si), 0);
        kept += si.has_graph;
        kept_old += si.has_graph && i < 35;
        if (i == 0 || i == 39)
            assert_true(si.has_graph);
    }
    st_read_end(r);
    assert_int_equal(kept, 5);
    assert_true(kept_old >= 2);         /* the oldest, and one between */
    heap_free(&h);

    /* Reopened (the graphs index is read back, not rebuilt): still 5. */
    st_close(f->s);
    assert_int_equal(st_open(&s, f->dir, &opt, err, sizeof err), 0);
    f->s = s;
    heap_make(&h, 50, 14, 0);
    assert_int_equal(ingest_heap(s, &h, 0, &src_a, &ids[0]), 0);
    kept = 0;
    assert_int_equal(st_read_begin(s, &r), 0);
    for (uint64_t id = 1; id <= ids[0]; id++)
        if (st_snap_get(r, id, &si) == 0)
            kept += si.has_graph;
    st_read_end(r);
    assert_int_equal(kept, 5);
    heap_free(&h);
}

/* A store made before the graphs index: the next writer lists its
 * graphs once, and retention then counts them. */
static void
test_store_graphs_index_is_built_for_an_older_store(void **state)
{
    struct fx *f = *state;
    struct st_options opt = { .retain = 3 };
    struct st_store *s = f->s;
    struct heap h;
    uint64_t id = 0;
    MDB_txn *txn;
    MDB_val mk = { 6, (void *)(uintptr_t)"graphs" };
    char err[256];
    int kept = 0;

    heap_make(&h, 30, 15, 0);
    for (int i = 0; i < 6; i++)     /* retain 10: all keep their graph */
        assert_int_equal(ingest_heap(s, &h, 0, &src_a, &id), 0);
    /* Back to before the index: no graphs database, no marker. */
    assert_int_equal(mdb_txn_begin(s->env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_drop(txn, s->graphs, 1), 0);
    assert_int_equal(mdb_del(txn, s->meta, &mk, NULL), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    st_close(s);
    assert_int_equal(st_open(&s, f->dir, &opt, err, sizeof err), 0);
    f->s = s;
    assert_int_equal(ingest_heap(s, &h, 0, &src_a, &id), 0);

    struct st_read *r;
    struct st_snapinfo si;
    assert_int_equal(st_read_begin(s, &r), 0);
    for (uint64_t i = 1; i <= id; i++) {
        assert_int_equal(st_snap_get(r, i, &si), 0);
        kept += si.has_graph;
        if (i == 1 || i == id)
            assert_true(si.has_graph);
    }
    st_read_end(r);
    assert_int_equal(kept, 3);
    heap_free(&h);
}

static void
test_store_retain_age_drops_old_summaries(void **state)
{
    struct fx *f = *state;
    struct st_options opt = { .retain_age_ns = 1 };     /* 1 ns */
    struct st_store *s;
    struct heap h;
    uint64_t a, b;
    char err[256];

    st_close(f->s);
    assert_int_equal(st_open(&s, f->dir, &opt, err, sizeof err), 0);
    f->s = s;
    heap_make(&h, 100, 12, 0);
    assert_int_equal(ingest_heap(s, &h, 0, &src_a, &a), 0);
    usleep(1000);
    assert_int_equal(ingest_heap(s, &h, 0, &src_a, &b), 0);
    /* the newer one's own commit ran retention: a is gone, b is older
     * than 1 ns by now too but is only dropped by the next commit */
    struct st_read *r;
    struct st_snapinfo si;
    assert_int_equal(st_read_begin(s, &r), 0);
    assert_int_equal(st_snap_get(r, a, &si), ML_ENOTFOUND);
    st_read_end(r);
    heap_free(&h);
}

/* ---- deltas ---- */

struct dcheck {
    int rows;
    int64_t leak_delta;
};

static int
delta_cb(void *ctx, const struct st_typesum *a, const struct st_typesum *b)
{
    struct dcheck *d = ctx;

    assert_int_equal(a->tid, b->tid);
    d->rows++;
    if (b->name_len == 4 && memcmp(b->name, "Leak", 4) == 0)
        d->leak_delta = (int64_t)b->count - (int64_t)a->count;
    return 0;
}

static void
test_store_type_deltas_join_by_type(void **state)
{
    struct fx *f = *state;
    struct heap h1, h2;
    uint64_t a, b;
    struct dcheck d = { 0 };
    int64_t want = 0;

    heap_make(&h1, 1000, 13, 0);
    heap_make(&h2, 1500, 14, 0);
    for (size_t i = 0; i < h1.n; i++)
        want -= h1.o[i].type == 5;
    for (size_t i = 0; i < h2.n; i++)
        want += h2.o[i].type == 5;
    assert_int_equal(ingest_heap(f->s, &h1, 0, &src_a, &a), 0);
    assert_int_equal(ingest_heap(f->s, &h2, 0, &src_a, &b), 0);
    struct st_read *r;
    assert_int_equal(st_read_begin(f->s, &r), 0);
    assert_int_equal(st_type_deltas(r, a, b, delta_cb, &d), 0);
    st_read_end(r);
    assert_int_equal(d.rows, (int)NTYPES);
    assert_int_equal(d.leak_delta, want);
    heap_free(&h1);
    heap_free(&h2);
}

/* ---- opening ---- */

static void
test_store_refuses_symlink_and_open_dirs(void **state)
{
    struct fx *f = *state;
    struct st_store *s;
    char link[80], open_dir[80], err[256];

    snprintf(link, sizeof link, "%s.link", f->dir);
    assert_int_equal(symlink(f->dir, link), 0);
    assert_int_equal(st_open(&s, link, NULL, err, sizeof err), -ELOOP);
    assert_non_null(strstr(err, "symlink"));
    unlink(link);

    snprintf(open_dir, sizeof open_dir, "%s.open", f->dir);
    assert_int_equal(mkdir(open_dir, 0777), 0);
    chmod(open_dir, 0777);
    assert_int_equal(st_open(&s, open_dir, NULL, err, sizeof err), -EPERM);
    assert_non_null(strstr(err, "writable"));
    rmdir(open_dir);
}

static void
test_store_second_writer_refused(void **state)
{
    struct fx *f = *state;
    struct st_options ro = { .flags = ST_RDONLY };
    struct st_store *s;
    char err[256];

    assert_int_equal(st_open(&s, f->dir, NULL, err, sizeof err), -EBUSY);
    assert_non_null(strstr(err, "another writer"));
    assert_int_equal(st_open(&s, f->dir, &ro, err, sizeof err), 0);
    st_close(s);
}

static void
test_store_created_mode_0700(void **state)
{
    struct fx *f = *state;
    struct stat st;

    assert_int_equal(stat(f->dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
}

static void
test_store_readonly_missing_store_is_clear(void **state)
{
    struct st_options ro = { .flags = ST_RDONLY };
    struct st_store *s;
    char err[256];

    (void)state;
    assert_int_equal(st_open(&s, "/nonexistent/meliae", &ro, err, sizeof err),
                     -ENOENT);
    assert_non_null(strstr(err, "no store at"));
}

/* ---- giant objects ---- */

/* One container holding `nitems` objects, each of which refers to one
 * class: the container has nitems refs and the class nitems parents, the
 * two kinds of entry too big for a block (docs/store-format.md).  The
 * items are str and int, as a dict's keys and values. */
#define GIANT_BASE 0x7f1000000000ull
#define GIANT_MOD (GIANT_BASE - 0x3000)
#define GIANT_DICT (GIANT_BASE - 0x2000)
#define GIANT_CLASS (GIANT_BASE - 0x1000)

static uint64_t
giant_item(size_t i)
{
    return GIANT_BASE + 32 * (uint64_t)i;
}

static int
giant_put(struct st_ingest *in, uint64_t addr, const char *type,
          const uint64_t *refs, size_t nrefs, uint64_t *bytes)
{
    struct ml_dumpline l = { .kind = ML_LINE_OBJECT, .address = addr,
                             .type = type, .type_len = strlen(type),
                             .size = 32 + 8 * nrefs, .refs = refs,
                             .nrefs = nrefs };

    *bytes += l.size;
    return st_ingest_object(in, &l);
}

/* Ingests the giant heap and commits it, sampling RssAnon during the
 * commit alone: *grew gets the peak less the value before, in KiB.
 * ML_ETOOBIG if the ingest refuses a line of nitems refs. */
static int
giant_commit(struct st_store *s, size_t nitems, uint64_t *id, long *grew)
{
    struct st_ingest *in;
    uint64_t *refs = malloc(nitems * sizeof *refs), bytes = 0, mref = GIANT_DICT;
    uint64_t cref = GIANT_CLASS;
    struct rss_watch rw;
    int rc;

    assert_non_null(refs);
    for (size_t i = 0; i < nitems; i++)
        refs[i] = giant_item(i);
    assert_int_equal(st_ingest_new(&in, st_tmpdir(s), 0), 0);
    rc = giant_put(in, GIANT_MOD, "module", &mref, 1, &bytes);
    if (rc == 0)
        rc = giant_put(in, GIANT_DICT, "dict", refs, nitems, &bytes);
    free(refs);
    if (rc == 0)
        rc = giant_put(in, GIANT_CLASS, "type", NULL, 0, &bytes);
    for (size_t i = 0; rc == 0 && i < nitems; i++)
        rc = giant_put(in, giant_item(i), i % 2 ? "int" : "str", &cref, 1,
                       &bytes);
    if (rc == 0)
        rc = st_ingest_end(in, nitems + 3, bytes);
    if (rc != 0) {
        st_ingest_free(in);
        return rc;
    }
    assert_int_equal(rss_watch_start(&rw), 0);
    rc = st_commit(s, in, &src_a, id);
    *grew = rss_watch_stop(&rw);
    st_ingest_free(in);
    return rc;
}

static int
giant_referrer_cb(void *ctx, const struct st_object *o)
{
    assert_int_equal(o->address, GIANT_DICT);
    ++*(int *)ctx;
    return 0;
}

static void
giant_check(struct st_store *s, uint64_t id, size_t nitems)
{
    struct st_read *r;
    struct st_object o;
    const uint32_t *par;
    size_t np;
    uint32_t class_oid;
    int n = 0;

    assert_int_equal(st_read_begin(s, &r), 0);
    assert_int_equal(st_object_find(r, id, GIANT_DICT, &o), 0);
    assert_int_equal(o.oid, 1);
    assert_int_equal(o.nrefs, nitems);
    for (size_t i = 0; i < nitems; i++)
        if (o.refs[i] != giant_item(i))
            fail_msg("ref %zu is 0x%llx", i, (unsigned long long)o.refs[i]);
    assert_int_equal(o.refs_len, nitems);
    /* a reader showing a few refs decodes only those */
    st_read_refs_max(r, 5);
    assert_int_equal(st_object_find(r, id, GIANT_DICT, &o), 0);
    assert_int_equal(o.nrefs, nitems);
    assert_int_equal(o.refs_len, 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(o.refs[i], giant_item(i));
    st_read_refs_max(r, SIZE_MAX);
    /* the objects after the giant one are where they belong */
    assert_int_equal(st_object_find(r, id, GIANT_CLASS, &o), 0);
    assert_int_equal(o.oid, 2);
    assert_int_equal(st_object_find(r, id, giant_item(nitems - 1), &o), 0);
    assert_int_equal(o.oid, nitems + 2);
    assert_int_equal(o.nrefs, 1);
    assert_int_equal(o.refs[0], GIANT_CLASS);
    /* the class: every item once, ascending */
    assert_int_equal(st_oid_of(r, id, GIANT_CLASS, &class_oid), 0);
    assert_int_equal(st_parents(r, id, class_oid, &par, &np), 0);
    assert_int_equal(np, nitems);
    for (size_t i = 0; i < np; i++)
        if (par[i] != i + 3)
            fail_msg("parent %zu is %u", i, par[i]);
    assert_int_equal(st_read_parents_total(r), nitems);
    /* a reader showing a few referrers decodes only those */
    st_read_parents_max(r, 10);
    assert_int_equal(st_parents(r, id, class_oid, &par, &np), 0);
    assert_int_equal(np, 10);
    assert_int_equal(st_read_parents_total(r), nitems);
    for (size_t i = 0; i < np; i++)
        assert_int_equal(par[i], i + 3);
    st_read_parents_max(r, SIZE_MAX);
    /* an item's one referrer is the dict; the dict's is the module */
    assert_int_equal(st_referrers(r, id, giant_item(nitems / 2),
                                  giant_referrer_cb, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(st_parents(r, id, 1, &par, &np), 0);
    assert_int_equal(np, 1);
    assert_int_equal(par[0], 0);
    st_read_end(r);
}

/* The commit's own memory does not grow with the largest object: the
 * giant entries go straight from the spool into the map.  Not checked
 * under ASan, whose shadow of the mappings the commit copies between is
 * anonymous memory of its own. */
#define GIANT_RSS_KIB (16 * 1024)
#if defined(__SANITIZE_ADDRESS__)
#define GIANT_RSS_CHECKED 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GIANT_RSS_CHECKED 0
#endif
#endif
#ifndef GIANT_RSS_CHECKED
#define GIANT_RSS_CHECKED 1
#endif

static void
giant_roundtrip(void **state, size_t nitems)
{
    struct fx *f = *state;
    uint64_t id = 0;
    long grew = 0;
    int rc = giant_commit(f->s, nitems, &id, &grew);

    assert_int_equal(rc, 0);
    print_message("# %zu refs: RssAnon +%ld KiB during the commit\n",
                  nitems, grew);
    if (GIANT_RSS_CHECKED)
        assert_true(grew < GIANT_RSS_KIB);
    giant_check(f->s, id, nitems);
}

static void
test_store_giant_container_and_shared_child_roundtrip(void **state)
{
    giant_roundtrip(state, 2000000);    /* a dict of a million entries */
}

/* suite 'big': 20 million refs (a dict of 10 million entries) */
static void
test_store_giant_20m_refs_roundtrip(void **state)
{
    giant_roundtrip(state, 20000000);
}

/* A giant entry that does not fit in the map grows it and is retried;
 * a failed last commit leaves nothing visible, giant or not. */
static void
test_store_giant_commit_failures_leave_nothing(void **state)
{
    struct fx *f = *state;
    uint64_t id = 0;
    long grew;

    fail_commit_at = 1;
    fail_commit_rc = MDB_MAP_FULL;
    assert_int_equal(giant_commit(f->s, 300000, &id, &grew), 0);
    faults_off();
    assert_int_equal(visible(f->s), 1);
    giant_check(f->s, id, 300000);
    f->s->txn_bytes = 1u << 20;     /* the giant entry amid many commits */
    fail_commit_at = 3;
    fail_commit_rc = EIO;
    assert_int_equal(giant_commit(f->s, 300000, &id, &grew), -EIO);
    faults_off();
    assert_int_equal(visible(f->s), 1);
}

/* ---- intermediate commits ---- */

/* Commits of a snapshot before its last skip the meta page's sync
 * (commit.c, wtx_commit): any of them failing leaves nothing visible and
 * the store as good as before. */
static void
test_store_failed_intermediate_commit_leaves_nothing(void **state)
{
    struct fx *f = *state;
    struct heap h;
    uint64_t id = 0, first = 0;
    int total;

    heap_make(&h, 20000, 21, 0);
    f->s->txn_bytes = 64u << 10;
    assert_int_equal(ingest_heap(f->s, &h, 0, &src_a, &first), 0);
    total = ncommits;               /* + retention's */
    assert_true(total >= 6);
    for (int k = 1; k < total - 2; k += (total - 3) / 3) {
        faults_off();
        fail_commit_at = k;
        fail_commit_rc = EIO;
        assert_int_equal(ingest_heap(f->s, &h, 0, &src_a, &id), -EIO);
        faults_off();
        assert_int_equal(visible(f->s), 1);
    }
    assert_int_equal(ingest_heap(f->s, &h, 0, &src_a, &id), 0);
    assert_int_equal(visible(f->s), 2);
    check_roundtrip(f->s, first, &h, 0);
    check_roundtrip(f->s, id, &h, 0);
    heap_free(&h);
}

/* A writer killed after an intermediate commit leaves an "ingesting"
 * snapshot that the next writer's sweep deletes; nothing of it is ever
 * visible. */
static void
test_store_crash_after_intermediate_commit_is_swept(void **state)
{
    struct fx *f = *state;
    struct heap h;
    char err[256];
    uint64_t id = 0, n = 0;
    int status;
    pid_t pid;

    heap_make(&h, 20000, 22, 0);
    st_close(f->s);                 /* no LMDB environment across fork */
    f->s = NULL;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct st_store *s;

        if (st_open(&s, f->dir, NULL, err, sizeof err) != 0)
            _exit(2);
        s->txn_bytes = 64u << 10;
        ncommits = 0;
        exit_after_commit = 3;      /* the ingesting record, then two */
        ingest_heap(s, &h, 0, &src_a, &id);
        _exit(3);                   /* not reached */
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(st_open(&f->s, f->dir, NULL, err, sizeof err), 0);
    assert_int_equal(visible(f->s), 0);
    assert_int_equal(st_sweep(f->s, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ingest_heap(f->s, &h, 0, &src_a, &id), 0);
    assert_int_equal(visible(f->s), 1);
    check_roundtrip(f->s, id, &h, 0);
    heap_free(&h);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_store_roundtrip_random_graph),
        T(test_store_roundtrip_survives_reopen_readonly),
        T(test_store_empty_snapshot),
        T(test_store_bulk_access_matches_model),
        T(test_store_object_child_finds_position_without_refs),
        T(test_store_ids_increase),
        T(test_store_duplicate_address_refused),
        T(test_store_keep_first_drops_repeated_addresses),
        T(test_store_trailer_count_mismatch_refused),
        T(test_store_value_refused_when_values_none),
        T(test_store_open_reserves_disk_ahead),
        T(test_store_eio_on_first_commit_leaves_nothing),
        T(test_store_eio_on_last_commit_leaves_nothing),
        T(test_store_map_full_grows_and_retries),
        T(test_store_size_is_safe_to_read_while_the_map_grows),
        T(test_store_map_growth_is_not_starved_by_overlapping_reads),
        T(test_store_failed_map_growth_panics_instead_of_crashing),
        T(test_store_map_full_at_limit_refuses),
        T(test_store_small_store_prunes_oldest_graphs),
        T(test_store_refused_snapshot_prunes_no_graph),
        T(test_store_big_snapshot_grows_map_before_writing),
        T(test_store_ingest_stops_before_disk_fills),
        T(test_store_retain_keeps_graphs_spread_per_process),
        T(test_store_retain_spreads_a_fast_streamers_graphs),
        T(test_store_graphs_index_is_built_for_an_older_store),
        T(test_store_retain_age_drops_old_summaries),
        T(test_store_type_deltas_join_by_type),
        T(test_store_refuses_symlink_and_open_dirs),
        T(test_store_second_writer_refused),
        T(test_store_created_mode_0700),
        T(test_store_readonly_missing_store_is_clear),
        T(test_store_giant_container_and_shared_child_roundtrip),
        T(test_store_giant_commit_failures_leave_nothing),
        T(test_store_failed_intermediate_commit_leaves_nothing),
        T(test_store_crash_after_intermediate_commit_is_swept),
    };
    const struct CMUnitTest big[] = {
        T(test_store_giant_20m_refs_roundtrip),
#undef T
    };

    /* meson suite 'big' runs this with ST_TEST_BIG=1 (tests/meson.build) */
    if (getenv("ST_TEST_BIG") != NULL)
        return cmocka_run_group_tests(big, NULL, NULL);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
