/* SPDX-License-Identifier: MIT
 *
 * test_retained.c -- the dominator tree's answers stored at commit
 * (store/retained.h): for graphs with cycles, unreachable cycles, hubs of
 * both kinds, modules, self-references, repeated and dangling refs and
 * repeated addresses, what st_commit stores equals common/dominators.c
 * run here on the model's own graph (the loader's input: refs in dump
 * order); `top --retained` and `dominators` answer the same from the
 * stored records as computed on demand (an older store, the records
 * deleted or their databases dropped) and after st_retained_fill; a
 * process killed half way through a fill or a commit leaves answers that
 * are still right; retention deletes the records with the graph.
 * mdb_txn_commit is wrapped (-Wl,--wrap) to kill a child after its n-th
 * commit.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>

#include "dominators.h"
#include "ml-common.h"
#include "report.h"
#include "retained.h"
#include "store-int.h"
#include "test_rng.h"
#include "test_store_fx.h"

/* ---- a crash after the n-th commit ---- */

int __real_mdb_txn_commit(MDB_txn *txn);
int __wrap_mdb_txn_commit(MDB_txn *txn);

static int exit_after_commit = -1;
static int ncommits;

int
__wrap_mdb_txn_commit(MDB_txn *txn)
{
    int n = ncommits++, rc = __real_mdb_txn_commit(txn);

    if (n == exit_after_commit)
        _exit(rc == 0 ? 0 : 1);
    return rc;
}

/* ---- a heap model ---- */

static const char *const tnames[] = { "dict", "list", "str", "module",
                                      "tuple", "Hub" };
#define NT (sizeof tnames / sizeof tnames[0])

struct obj {
    uint64_t addr, size;
    unsigned type;
    size_t nrefs;
    uint64_t *refs;
};

struct heap {
    size_t n, cap;
    struct obj *o;
};

static struct obj *
add(struct heap *h, uint64_t addr, unsigned type, uint64_t size)
{
    struct obj *o;

    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 64;
        h->o = realloc(h->o, h->cap * sizeof *h->o);
        assert_non_null(h->o);
    }
    o = &h->o[h->n++];
    memset(o, 0, sizeof *o);
    o->addr = addr;
    o->type = type;
    o->size = size;
    return o;
}

static void
add_ref(struct obj *o, uint64_t to)
{
    o->refs = realloc(o->refs, (o->nrefs + 1) * sizeof *o->refs);
    assert_non_null(o->refs);
    o->refs[o->nrefs++] = to;
}

static void
heap_free(struct heap *h)
{
    for (size_t i = 0; i < h->n; i++)
        free(h->o[i].refs);
    free(h->o);
    memset(h, 0, sizeof *h);
}

#define A(i) (0x7f0000000000ull + (uint64_t)(i) * 64)

/* Random refs, a few dangling, some cycles by construction (refs to
 * anything), then the shapes of a real heap: a hub child (None: every
 * tenth object refers to it), a hub parent (a dict of a thousand),
 * modules referred to by others, a self-reference, a ref listed twice,
 * and a ring nothing outside refers to (held from C: a leftover root). */
static void
heap_make(struct heap *h, size_t n, uint64_t seed)
{
    uint64_t r = seed * 0x9e3779b97f4a7c15ull + 7;

    memset(h, 0, sizeof *h);
    for (size_t i = 0; i < n; i++)
        add(h, A(i), (unsigned)rng_below(&r, NT - 1), 16 + rng_below(&r, 500));
    for (size_t i = 0; i < n; i++) {
        size_t k = (size_t)rng_below(&r, 4);

        for (size_t j = 0; j < k; j++) {
            if (rng_below(&r, 12) == 0)
                add_ref(&h->o[i], 0x1000 + rng_below(&r, 0x1000));  /* dangling */
            else if (rng_below(&r, 3) == 0)     /* mostly forward: a tree */
                add_ref(&h->o[i], A(i + 1 + rng_below(&r, 5) < n
                                ? i + 1 + rng_below(&r, 5) : 0));
            else
                add_ref(&h->o[i], A(rng_below(&r, n)));
        }
    }
    struct obj *hub = add(h, A(n), 5, 16);      /* None */
    for (size_t i = 0; i < n; i += 10)
        add_ref(&h->o[i], hub->addr);
    struct obj *big = add(h, A(n + 1), 0, 36000);
    for (size_t i = 0; i < n && i < 1000; i++)
        add_ref(big, A(i * 7 % n));
    add_ref(&h->o[3], A(n + 1));
    add_ref(&h->o[5], A(5));                        /* self */
    add_ref(&h->o[6], A(7));
    add_ref(&h->o[6], A(7));                        /* twice */
    for (size_t i = 0; i < 5; i++)              /* a ring held from C */
        add_ref(add(h, A(n + 2 + i), 1, 40), A(n + 2 + (i + 1) % 5));
    add_ref(&h->o[n + 2], A(2));
}

/* The reference: common/dominators.c on the model's graph, refs in dump
 * order, dangling ones left out (as meliae.loader feeds it). */
struct refdom {
    size_t n;
    uint32_t *succ_start, *succ, *pred_start, *pred, *type;
    uint64_t *size;
    struct ml_dom d;
};

static int
oid_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static int64_t
oid_of(const struct heap *h, const uint64_t *sorted, uint64_t addr)
{
    const uint64_t *p = bsearch(&addr, sorted, h->n, sizeof *sorted, oid_cmp);

    return p == NULL ? -1 : (int64_t)(p - sorted);
}

static int
ref_module(void *arg, uint32_t v)
{
    const struct refdom *r = arg;

    return r->type[v] == 3;
}

/* Objects are in address order in every heap here, so an object's oid
 * is its index. */
static void
refdom_make(struct refdom *r, const struct heap *h)
{
    uint64_t *sorted = malloc(h->n * sizeof *sorted);
    size_t ne = 0;
    struct ml_dom_input in;

    memset(r, 0, sizeof *r);
    for (size_t i = 0; i < h->n; i++) {
        sorted[i] = h->o[i].addr;
        if (i > 0)
            assert_true(sorted[i] > sorted[i - 1]);
        ne += h->o[i].nrefs;
    }
    r->n = h->n;
    r->succ_start = calloc(h->n + 1, sizeof(uint32_t));
    r->pred_start = calloc(h->n + 2, sizeof(uint32_t));
    r->succ = calloc(ne + 1, sizeof(uint32_t));
    r->pred = calloc(ne + 1, sizeof(uint32_t));
    r->type = calloc(h->n + 1, sizeof(uint32_t));
    r->size = calloc(h->n + 1, sizeof(uint64_t));
    ne = 0;
    for (size_t i = 0; i < h->n; i++) {
        r->succ_start[i] = (uint32_t)ne;
        r->type[i] = h->o[i].type;
        r->size[i] = h->o[i].size;
        for (size_t k = 0; k < h->o[i].nrefs; k++) {
            int64_t c = oid_of(h, sorted, h->o[i].refs[k]);

            if (c >= 0) {
                r->succ[ne++] = (uint32_t)c;
                r->pred_start[c + 2]++;
            }
        }
    }
    r->succ_start[h->n] = (uint32_t)ne;
    for (size_t i = 2; i <= h->n + 1; i++)
        r->pred_start[i] += r->pred_start[i - 1];
    for (size_t v = 0; v < h->n; v++)
        for (uint32_t k = r->succ_start[v]; k < r->succ_start[v + 1]; k++)
            r->pred[r->pred_start[r->succ[k] + 1]++] = (uint32_t)v;
    memset(&in, 0, sizeof in);
    in.n = h->n;
    in.succ_start = r->succ_start;
    in.succ = r->succ;
    in.pred_start = r->pred_start;
    in.pred = r->pred;
    in.size = r->size;
    in.is_root = ref_module;
    in.arg = r;
    in.type = r->type;
    in.ntypes = NT;
    assert_int_equal(ml_dom_compute(&r->d, &in), 0);
    free(sorted);
}

static void
refdom_free(struct refdom *r)
{
    ml_dom_free(&r->d);
    free(r->succ_start);
    free(r->succ);
    free(r->pred_start);
    free(r->pred);
    free(r->type);
    free(r->size);
}

/* ---- the store ---- */

static int
setup(void **state)
{
    *state = fx_open("retained");
    exit_after_commit = -1;
    ncommits = 0;
    return 0;
}

static int
teardown(void **state)
{
    fx_close(*state);
    return 0;
}

static const struct st_source src = {
    .pid = 42, .start_time = 1000.5, .hostname = "h", .program = "app.py",
    .label = "web", .values = "none", .mode = "all", .trusted = 1,
    .uid = 1000, .gid = 1000, .tpid = 42, .tstart_time = 1000.5,
};

static uint64_t
commit_heap2(struct st_store *s, const struct heap *h, int keep_first,
             void (*visible)(void *, uint64_t), void *arg, int *retrc)
{
    struct st_ingest *in;
    struct ml_dumpline l;
    uint64_t id = 0, bytes = 0;

    assert_int_equal(st_ingest_new(&in, st_tmpdir(s), 0), 0);
    if (keep_first)
        st_ingest_keep_first(in);
    for (size_t i = 0; i < h->n; i++) {
        const struct obj *o = &h->o[i];

        memset(&l, 0, sizeof l);
        l.kind = ML_LINE_OBJECT;
        l.address = o->addr;
        l.type = tnames[o->type];
        l.type_len = strlen(l.type);
        l.size = o->size;
        l.refs = o->refs;
        l.nrefs = o->nrefs;
        bytes += o->size;
        assert_int_equal(st_ingest_object(in, &l), 0);
    }
    assert_int_equal(st_ingest_end(in, h->n, bytes), 0);
    assert_int_equal(st_commit2(s, in, &src, &id, visible, arg, retrc), 0);
    st_ingest_free(in);
    return id;
}

static uint64_t
commit_heap(struct st_store *s, const struct heap *h, int keep_first)
{
    return commit_heap2(s, h, keep_first, NULL, NULL, NULL);
}

/* What a child does with its own opening of the store until the commit
 * hook (exit_after_commit) kills it. */
enum crash_job { CRASH_COMMIT, CRASH_FILL };

/* Closes f's store; a child opens it (small transactions: many of them),
 * commits h or fills snapshot id, and is killed after its at-th
 * transaction; then f's store is open again, as after a crash. */
static void
crash_at(struct fx *f, enum crash_job job, const struct heap *h,
         uint64_t id, int at)
{
    pid_t pid;
    int status;
    char err[256];

    st_close(f->s);
    f->s = NULL;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct st_store *s;

        if (st_open(&s, f->dir, NULL, err, sizeof err) != 0)
            _exit(2);
        s->txn_bytes = 4096;
        ncommits = 0;
        exit_after_commit = at;
        if (job == CRASH_COMMIT)
            commit_heap(s, h, 0);
        else
            st_retained_fill(s, id);
        _exit(3);                       /* not reached: killed before */
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(st_open(&f->s, f->dir, NULL, err, sizeof err), 0);
}

/* The model's type of a store type id. */
static unsigned
model_type(struct st_read *r, uint32_t tid)
{
    const char *name;
    size_t len;

    assert_int_equal(st_type_name(r, tid, &name, &len), 0);
    for (unsigned k = 0; k < NT; k++)
        if (strlen(tnames[k]) == len && memcmp(tnames[k], name, len) == 0)
            return k;
    fail_msg("unknown type %.*s", (int)len, name);
    return 0;
}

struct tcheck {
    struct st_read *r;
    const struct refdom *ref;
    unsigned seen;
};

static int
type_cb(void *arg, const struct st_rettype *t)
{
    struct tcheck *c = arg;
    unsigned k = model_type(c->r, t->tid);
    uint64_t count = 0, max = 0;

    for (size_t v = 0; v < c->ref->n; v++)
        if (c->ref->type[v] == k) {
            count++;
            if (c->ref->d.retained[v] > max)
                max = c->ref->d.retained[v];
        }
    assert_int_equal(t->count, count);
    assert_int_equal(t->retained, c->ref->d.type_retained[k]);
    assert_int_equal(t->top, c->ref->d.type_top[k]);
    assert_int_equal(t->max_retained, max);
    assert_int_equal(c->ref->d.retained[t->max_oid], max);
    assert_int_equal(c->ref->type[t->max_oid], k);
    c->seen |= 1u << k;
    return 0;
}

/* Every stored record of snapshot id equals the reference. */
static void
check_stored(struct st_store *s, uint64_t id, const struct refdom *ref)
{
    struct st_read *r;
    struct st_retinfo info;
    struct tcheck tc = { .ref = ref };
    uint32_t top[ST_RET_TOP];
    unsigned want = 0;
    size_t m;

    assert_int_equal(st_read_begin(s, &r), 0);
    assert_int_equal(st_retained_info(r, id, &info), 0);
    assert_int_equal(info.objects, ref->n);
    assert_int_equal(info.total, ref->d.total);
    assert_int_equal(info.roots, ref->d.nroots);
    assert_int_equal(info.leftover, ref->d.nleftover);
    m = ml_dom_top(&ref->d, top, ST_RET_TOP);
    assert_int_equal(info.ntop, m);
    for (size_t i = 0; i < m; i++)
        assert_int_equal(st_retinfo_top(&info, i), top[i]);
    for (uint32_t v = 0; v < ref->n; v++) {
        uint64_t ret;
        uint32_t dom;

        assert_int_equal(st_retained_get(r, id, v, &ret, &dom), 0);
        assert_int_equal(ret, ref->d.retained[v]);
        assert_int_equal(dom, ref->d.idom[v]);
    }
    assert_int_equal(st_retained_get(r, id, (uint32_t)ref->n, &(uint64_t){0},
                                     &(uint32_t){0}), ML_ENOTFOUND);
    tc.r = r;
    assert_int_equal(st_retained_types(r, id, type_cb, &tc), 0);
    for (size_t v = 0; v < ref->n; v++)
        want |= 1u << ref->type[v];
    assert_int_equal(tc.seen, want);
    st_read_end(r);
}

/* rp_run's JSON text for a request; *computed: rp_run_ex's. */
static char *
ask(struct st_store *s, const char *req, uint64_t *computed)
{
    cJSON *q = cJSON_Parse(req), *out = NULL;
    char err[256], *text;

    assert_non_null(q);
    assert_int_equal(rp_run_ex(s, q, NULL, &out, err, sizeof err, computed), 0);
    /* the snapshot's record: the same either way */
    text = cJSON_PrintUnformatted(out);
    cJSON_Delete(q);
    cJSON_Delete(out);
    return text;
}

/* The answers that read the stored records, and whether they were. */
struct answers {
    char *top, *top_all, *dom[3];
};

static void
answers_get(struct st_store *s, const struct heap *h, struct answers *a,
            uint64_t want_computed, uint64_t id)
{
    uint64_t c;
    char req[256];
    size_t pick[3] = { 7, h->n - 3, h->n / 2 };

    a->top = ask(s, "{\"cmd\": \"top\", \"retained\": true, \"snap\": "
                 "\"latest\", \"top\": 5}", &c);
    assert_int_equal(c, want_computed);
    a->top_all = ask(s, "{\"cmd\": \"top\", \"retained\": true, \"snap\": "
                     "\"latest\", \"top\": 0, \"types\": 0}", &c);
    assert_int_equal(c, want_computed);
    for (int i = 0; i < 3; i++) {
        snprintf(req, sizeof req, "{\"cmd\": \"dominators\", \"snap\": "
                 "\"%llu\", \"address\": %llu}", (unsigned long long)id,
                 (unsigned long long)h->o[pick[i]].addr);
        a->dom[i] = ask(s, req, &c);
        assert_int_equal(c, want_computed);
    }
}

static void
answers_same(const struct answers *a, const struct answers *b)
{
    assert_string_equal(a->top, b->top);
    assert_string_equal(a->top_all, b->top_all);
    for (int i = 0; i < 3; i++)
        assert_string_equal(a->dom[i], b->dom[i]);
}

static void
answers_free(struct answers *a)
{
    free(a->top);
    free(a->top_all);
    for (int i = 0; i < 3; i++)
        free(a->dom[i]);
}

/* Deletes snapshot id's records, as if it were stored before them. */
static void
forget(struct st_store *s, uint64_t id)
{
    MDB_txn *txn;

    assert_int_equal(st__write_txn(s, &txn), 0);
    assert_int_equal(st__del_prefix(txn, s->ret, id), 0);
    assert_int_equal(st__del_prefix(txn, s->rtypes, id), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
}

/* How many records of snapshot id db holds. */
static size_t
records(struct st_store *s, MDB_dbi db, uint64_t id)
{
    struct st_read *r;
    MDB_cursor *c;
    unsigned char k[8];
    MDB_val key = { 8, k }, v;
    size_t n = 0;
    int rc;

    st_put_be64(k, id);
    assert_int_equal(st_read_begin(s, &r), 0);
    assert_int_equal(mdb_cursor_open(st__read_txn(r), db, &c), 0);
    for (rc = mdb_cursor_get(c, &key, &v, MDB_SET_RANGE);
         rc == 0 && st_get_be64(key.mv_data) == id;
         rc = mdb_cursor_get(c, &key, &v, MDB_NEXT))
        n++;
    mdb_cursor_close(c);
    st_read_end(r);
    return n;
}

/* ---- tests ---- */

static void
test_stored_answers_equal_the_dominator_tree_of_the_graph(void **state)
{
    struct fx *f = *state;
    static const size_t sizes[] = { 1, 40, 700, 5000 };

    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
        struct heap h;
        struct refdom ref;
        uint64_t id;

        if (sizes[t] == 1) {            /* one object, nothing else */
            memset(&h, 0, sizeof h);
            add(&h, A(0), 0, 100);
        } else {
            heap_make(&h, sizes[t], 11 + t);
        }
        refdom_make(&ref, &h);
        assert_true(sizes[t] == 1 || ref.d.nleftover >= 1);
        id = commit_heap(f->s, &h, 0);
        check_stored(f->s, id, &ref);
        refdom_free(&ref);
        heap_free(&h);
    }
}

/* Where no work thread can be made, the commit resolves the refs itself
 * and computes the tree after step 1, on its own thread: the same
 * answers. */
static void
test_commit_without_a_work_thread_stores_the_same_answers(void **state)
{
    struct fx *f = *state;
    struct heap h;
    struct refdom ref;
    uint64_t id;

    heap_make(&h, 2000, 17);
    refdom_make(&ref, &h);
    assert_int_equal(setenv("MELIAE_TEST_NO_WORK_THREAD", "1", 1), 0);
    id = commit_heap(f->s, &h, 0);
    unsetenv("MELIAE_TEST_NO_WORK_THREAD");
    check_stored(f->s, id, &ref);
    refdom_free(&ref);
    heap_free(&h);
}

static void
test_answers_are_the_same_stored_computed_and_filled(void **state)
{
    struct fx *f = *state;
    struct answers stored, computed, filled;
    struct heap h;
    struct refdom ref;
    uint64_t id;

    heap_make(&h, 3000, 5);
    refdom_make(&ref, &h);
    id = commit_heap(f->s, &h, 0);
    answers_get(f->s, &h, &stored, 0, id);

    forget(f->s, id);                   /* as a snapshot from before */
    answers_get(f->s, &h, &computed, id, id);
    answers_same(&stored, &computed);

    assert_int_equal(st_retained_fill(f->s, id), 0);
    check_stored(f->s, id, &ref);
    answers_get(f->s, &h, &filled, 0, id);
    answers_same(&stored, &filled);
    assert_int_equal(st_retained_fill(f->s, id), 0);   /* there: nothing */
    answers_free(&stored);
    answers_free(&computed);
    answers_free(&filled);
    refdom_free(&ref);
    heap_free(&h);
}

/* The commit appends its records after every other snapshot's; a fill
 * of an older snapshot cannot, and puts them in their place: both
 * snapshots then read their own answers. */
static void
test_fill_of_an_older_snapshot_keeps_both_answers(void **state)
{
    struct fx *f = *state;
    struct heap h1, h2;
    struct refdom r1, r2;
    uint64_t id1, id2;

    heap_make(&h1, 1500, 21);
    heap_make(&h2, 900, 22);
    refdom_make(&r1, &h1);
    refdom_make(&r2, &h2);
    id1 = commit_heap(f->s, &h1, 0);
    id2 = commit_heap(f->s, &h2, 0);
    assert_true(id2 > id1);
    forget(f->s, id1);
    assert_int_equal(records(f->s, f->s->ret, id1), 0);
    assert_int_equal(st_retained_fill(f->s, id1), 0);
    check_stored(f->s, id1, &r1);
    check_stored(f->s, id2, &r2);
    refdom_free(&r1);
    refdom_free(&r2);
    heap_free(&h1);
    heap_free(&h2);
}

/* A dump file's repeated address keeps its first line: the answers are
 * those of the graph without the repeats. */
static void
test_repeated_addresses_dropped_before_the_tree(void **state)
{
    struct fx *f = *state;
    struct heap h, kept;
    struct refdom ref;
    uint64_t id;

    heap_make(&kept, 600, 9);
    memset(&h, 0, sizeof h);
    for (size_t i = 0; i < kept.n; i++) {
        struct obj *o = add(&h, kept.o[i].addr, kept.o[i].type,
                            kept.o[i].size);

        for (size_t k = 0; k < kept.o[i].nrefs; k++)
            add_ref(o, kept.o[i].refs[k]);
        if (i % 50 == 0)                /* again, other refs: dropped */
            add_ref(add(&h, kept.o[i].addr, 2, 9999), kept.o[0].addr);
    }
    refdom_make(&ref, &kept);
    id = commit_heap(f->s, &h, 1);
    check_stored(f->s, id, &ref);
    refdom_free(&ref);
    heap_free(&h);
    heap_free(&kept);
}

/* A store made before the databases existed: read-only, it computes;
 * its first writer creates them and the fill keeps the answers. */
static void
test_store_without_the_databases_still_answers(void **state)
{
    struct fx *f = *state;
    struct st_options ro = { .flags = ST_RDONLY };
    struct answers stored, old, filled;
    struct st_store *r;
    struct heap h;
    struct refdom ref;
    MDB_txn *txn;
    uint64_t id;
    char err[256];

    heap_make(&h, 2000, 3);
    refdom_make(&ref, &h);
    id = commit_heap(f->s, &h, 0);
    answers_get(f->s, &h, &stored, 0, id);
    assert_int_equal(st__write_txn(f->s, &txn), 0);
    assert_int_equal(mdb_drop(txn, f->s->ret, 1), 0);
    assert_int_equal(mdb_drop(txn, f->s->rtypes, 1), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    st_close(f->s);

    assert_int_equal(st_open(&r, f->dir, &ro, err, sizeof err), 0);
    assert_int_equal(r->has_ret, 0);
    answers_get(r, &h, &old, id, id);
    answers_same(&stored, &old);
    assert_int_equal(st_retained_fill(r, id), -EROFS);
    st_close(r);

    assert_int_equal(st_open(&f->s, f->dir, NULL, err, sizeof err), 0);
    assert_int_equal(f->s->has_ret, 1);
    assert_int_equal(st_retained_fill(f->s, id), 0);
    check_stored(f->s, id, &ref);
    answers_get(f->s, &h, &filled, 0, id);
    answers_same(&stored, &filled);
    answers_free(&stored);
    answers_free(&old);
    answers_free(&filled);
    refdom_free(&ref);
    heap_free(&h);
}

/* The map sized for what the store held: the fill grows it for its
 * records (the daemon's store of a 10M-object import had no room). */
static void
test_fill_grows_the_map(void **state)
{
    struct fx *f = *state;
    struct heap h, h2;
    struct refdom ref;
    MDB_envinfo before, after;
    uint64_t id;

    heap_make(&h, 50000, 31);
    heap_make(&h2, 60000, 32);
    refdom_make(&ref, &h);
    id = commit_heap(f->s, &h, 0);
    forget(f->s, id);
    commit_heap(f->s, &h2, 0);          /* takes the freed pages, more */
    /* LMDB makes it no smaller than the pages in use */
    assert_int_equal(mdb_env_set_mapsize(f->s->env, 4096), 0);
    assert_int_equal(mdb_env_info(f->s->env, &before), 0);
    assert_int_equal(st_retained_fill(f->s, id), 0);
    /* grown ahead of the records, whatever LMDB's free pages held */
    assert_int_equal(mdb_env_info(f->s->env, &after), 0);
    assert_true(after.me_mapsize > before.me_mapsize);
    check_stored(f->s, id, &ref);
    refdom_free(&ref);
    heap_free(&h);
    heap_free(&h2);
}

/* Killed after its first transaction of several: the records written
 * are not used (no figures record), the answers are computed and right,
 * and the next fill replaces them. */
static void
test_fill_killed_half_way_leaves_right_answers(void **state)
{
    struct fx *f = *state;
    struct answers stored, after, filled;
    struct heap h;
    struct refdom ref;
    uint64_t id;

    heap_make(&h, 20000, 21);
    refdom_make(&ref, &h);
    id = commit_heap(f->s, &h, 0);
    answers_get(f->s, &h, &stored, 0, id);
    forget(f->s, id);
    crash_at(f, CRASH_FILL, &h, id, 2);
    assert_true(records(f->s, f->s->ret, id) > 0);      /* some of them */
    assert_int_equal(records(f->s, f->s->rtypes, id), 0);
    answers_get(f->s, &h, &after, id, id);
    answers_same(&stored, &after);
    assert_int_equal(st_retained_fill(f->s, id), 0);
    check_stored(f->s, id, &ref);
    answers_get(f->s, &h, &filled, 0, id);
    answers_same(&stored, &filled);
    answers_free(&stored);
    answers_free(&after);
    answers_free(&filled);
    refdom_free(&ref);
    heap_free(&h);
}

/* What st_commit2's callback saw, between the two steps. */
struct between {
    struct st_store *s;
    uint64_t id;
    int ncommits;                       /* transactions of step 1 */
    int visible, stored, pending, again;
};

static void
on_visible(void *arg, uint64_t id)
{
    struct between *b = arg;
    struct st_read *r;
    struct st_snapinfo si;
    struct st_retinfo ri;
    cJSON *q = cJSON_Parse("{\"cmd\": \"top\", \"retained\": true, "
                           "\"snap\": \"latest\"}"), *out = NULL;
    char err[256];

    b->id = id;
    b->ncommits = ncommits;
    assert_int_equal(st_read_begin(b->s, &r), 0);
    b->visible = st_snap_get(r, id, &si) == 0;
    b->stored = st_retained_info(r, id, &ri) != ML_ENOTFOUND;
    b->pending = st_retained_pending(r, id);
    st_read_end(r);
    /* a query here would compute the tree: it is told to wait instead */
    assert_non_null(q);
    b->again = rp_run_ex(b->s, q, NULL, &out, err, sizeof err, NULL)
               == -EAGAIN;
    cJSON_Delete(q);
    cJSON_Delete(out);
}

/* st_commit2: the snapshot is visible at the callback, its answers not
 * yet stored and marked pending (a query is told to wait); stored after,
 * equal to the reference, and nothing pending any more. */
static void
test_snapshot_visible_before_its_answers_which_follow(void **state)
{
    struct fx *f = *state;
    struct between b = { .s = f->s };
    struct heap h;
    struct refdom ref;
    struct st_read *r;
    uint64_t id;
    int retrc = 1;

    heap_make(&h, 5000, 31);
    refdom_make(&ref, &h);
    ncommits = 0;
    id = commit_heap2(f->s, &h, 0, on_visible, &b, &retrc);
    assert_int_equal(b.id, id);
    assert_true(b.visible);
    assert_false(b.stored);
    assert_true(b.pending);
    assert_true(b.again);
    assert_int_equal(retrc, 0);
    assert_true(ncommits > b.ncommits);         /* their own transaction */
    check_stored(f->s, id, &ref);
    assert_int_equal(st_read_begin(f->s, &r), 0);
    assert_false(st_retained_pending(r, id));
    st_read_end(r);
    st_retained_wait(f->s);                     /* returns: none pending */
    refdom_free(&ref);
    heap_free(&h);
}

/* Killed in a commit's first step, before its last transaction: nothing
 * visible, no retained records (they come after), swept at the next
 * start. */
static void
test_commit_killed_before_visible_leaves_no_records(void **state)
{
    struct fx *f = *state;
    struct between b = { .s = f->s };
    struct heap h;
    uint64_t id, swept = 0;

    heap_make(&h, 20000, 4);
    f->s->txn_bytes = 4096;             /* many transactions */
    ncommits = 0;
    id = commit_heap2(f->s, &h, 0, on_visible, &b, NULL);
    assert_true(b.ncommits > 20);
    assert_true(records(f->s, f->s->ret, id) > 0);
    assert_int_equal(st_delete(f->s, id), 0);
    /* step 1 ends with the snapshot's last and retention's */
    crash_at(f, CRASH_COMMIT, &h, 0, b.ncommits - 3);
    assert_int_equal(records(f->s, f->s->ret, id + 1), 0);
    assert_int_equal(records(f->s, f->s->rtypes, id + 1), 0);
    assert_int_equal(st_sweep(f->s, &swept), 0);        /* not visible */
    assert_int_equal(swept, 1);
    heap_free(&h);
}

/* Killed between the two steps, or half way through the second: the
 * snapshot is whole and answers as one stored before the retained sizes
 * (computed, not from what the step left), and a fill then stores them
 * (deleting what the step left): the reference's, the computed answers. */
static void
test_commit_killed_between_its_steps_leaves_no_wrong_answer(void **state)
{
    struct fx *f = *state;
    struct between b = { .s = f->s };
    struct answers after, filled;
    struct heap h;
    struct refdom ref;
    uint64_t id, swept = 0;
    int total;

    heap_make(&h, 20000, 5);
    refdom_make(&ref, &h);
    f->s->txn_bytes = 4096;
    ncommits = 0;
    id = commit_heap2(f->s, &h, 0, on_visible, &b, NULL);
    total = ncommits;
    assert_true(total > b.ncommits + 2);        /* several in step 2 */
    for (int k = 0; k < 2; k++) {
        /* just after the ack; half way through the answers */
        int at = k == 0 ? b.ncommits - 1
                        : b.ncommits + (total - b.ncommits) / 2;

        assert_int_equal(st_delete(f->s, id), 0);
        crash_at(f, CRASH_COMMIT, &h, 0, at);
        assert_int_equal(st_sweep(f->s, &swept), 0);    /* it is whole */
        assert_int_equal(swept, 0);
        id++;
        assert_int_equal(records(f->s, f->s->rtypes, id), 0);
        if (k == 0)
            assert_int_equal(records(f->s, f->s->ret, id), 0);
        else
            assert_true(records(f->s, f->s->ret, id) > 0);  /* some */
        answers_get(f->s, &h, &after, id, id);          /* computed */
        assert_int_equal(st_retained_fill(f->s, id), 0);
        check_stored(f->s, id, &ref);
        answers_get(f->s, &h, &filled, 0, id);
        answers_same(&after, &filled);
        answers_free(&after);
        answers_free(&filled);
    }
    refdom_free(&ref);
    heap_free(&h);
}

/* Retention drops a graph: its retained records go with it. */
static void
test_retention_deletes_the_records_with_the_graph(void **state)
{
    struct fx *f = *state;
    struct st_options opt = { .retain = 2 };
    struct heap h;
    uint64_t ids[4];
    char err[256];

    st_close(f->s);
    assert_int_equal(st_open(&f->s, f->dir, &opt, err, sizeof err), 0);
    heap_make(&h, 500, 8);
    for (int i = 0; i < 4; i++)
        ids[i] = commit_heap(f->s, &h, 0);
    /* the newest and the oldest keep their graphs */
    for (int i = 0; i < 4; i++) {
        int kept = i == 0 || i == 3;

        assert_int_equal(records(f->s, f->s->ret, ids[i]) > 0, kept);
        assert_int_equal(records(f->s, f->s->rtypes, ids[i]) > 0, kept);
    }
    assert_int_equal(st_delete(f->s, ids[3]), 0);
    assert_int_equal(records(f->s, f->s->ret, ids[3]), 0);
    assert_int_equal(records(f->s, f->s->rtypes, ids[3]), 0);
    heap_free(&h);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_stored_answers_equal_the_dominator_tree_of_the_graph,
            setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_answers_are_the_same_stored_computed_and_filled,
            setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_repeated_addresses_dropped_before_the_tree, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_store_without_the_databases_still_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_commit_without_a_work_thread_stores_the_same_answers,
            setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_fill_of_an_older_snapshot_keeps_both_answers,
            setup, teardown),
        cmocka_unit_test_setup_teardown(test_fill_grows_the_map, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_fill_killed_half_way_leaves_right_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_snapshot_visible_before_its_answers_which_follow, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_commit_killed_before_visible_leaves_no_records, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_commit_killed_between_its_steps_leaves_no_wrong_answer,
            setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_retention_deletes_the_records_with_the_graph, setup,
            teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
