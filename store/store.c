/* SPDX-License-Identifier: MIT
 *
 * store.c -- opening the store, its safety checks, and the maintenance
 * the writer runs: sweeping interrupted ingests, retention, pruning.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "ml-common.h"
#include "births.h"
#include "store-int.h"

static int
seterr(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
seterr(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

uint64_t
st__now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

const char *
st_strerror(int err)
{
    if (err >= MDB_KEYEXIST && err <= MDB_LAST_ERRCODE)
        return mdb_strerror(err);
    if (err > 0)
        err = -err;                     /* LMDB's errno values */
    return ml_strerror(err);
}

const char *
st_tmpdir(const struct st_store *s)
{
    return s->tmpdir;
}

/* mkdir -p for path's missing parents (mode 0700), not path itself. */
static void
make_parents(const char *path)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);

    if (n >= sizeof buf)
        return;
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) < 0 && errno != EEXIST) {
            *p = '/';
            return;
        }
        *p = '/';
    }
}

/* A directory we will write into: not a symlink, ours (or root's), not
 * writable by others.  Created mode 0700 if missing and create is set,
 * with its missing parents (~/.local/state on a fresh account). */
/* A writer needs to write dir and the files of a store in it: refused
 * here, in one line that says so, rather than by whichever open fails
 * first ("writer.lock: Permission denied").  The CLI reads such a store
 * as it is (st_open with ST_RDONLY). */
static int
check_writable(const char *dir, char *err, size_t errlen)
{
    static const char *const names[] = { "", "/tmp", "/data.mdb",
                                         "/lock.mdb", "/writer.lock" };
    char path[PATH_MAX], why[PATH_MAX + 64];

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s%s", dir, names[i]);
        if (faccessat(AT_FDCWD, path, F_OK, AT_EACCESS) < 0)
            continue;           /* made later, in a writable dir */
        if (faccessat(AT_FDCWD, path, W_OK, AT_EACCESS) == 0)
            continue;
        if (errno == EROFS)
            snprintf(why, sizeof why, "a read-only file system");
        else
            snprintf(why, sizeof why, "%s: not writable by uid %u", path,
                     (unsigned)geteuid());
        return seterr(err, errlen, -errno, "read-only (%s): a writer needs "
                      "to write the store; meliae-cli --store reads it as it "
                      "is", why);
    }
    return 0;
}

static int
check_dir(const char *path, int create, char *err, size_t errlen)
{
    struct stat st;

    if (lstat(path, &st) < 0) {
        if (errno != ENOENT || !create)
            return seterr(err, errlen, -errno, "%s: %s", path, strerror(errno));
        make_parents(path);
        if (mkdir(path, 0700) < 0 && errno != EEXIST)
            return seterr(err, errlen, -errno, "cannot create %s: %s", path,
                          strerror(errno));
        if (lstat(path, &st) < 0)
            return seterr(err, errlen, -errno, "%s: %s", path, strerror(errno));
    }
    if (S_ISLNK(st.st_mode))
        return seterr(err, errlen, -ELOOP, "%s is a symlink; refusing it", path);
    if (!S_ISDIR(st.st_mode))
        return seterr(err, errlen, -ENOTDIR, "%s is not a directory", path);
    if (st.st_mode & (S_IWGRP | S_IWOTH))
        return seterr(err, errlen, -EPERM, "%s is writable by group or others "
                      "(mode %03o); chmod 700 it", path,
                      (unsigned)(st.st_mode & 0777));
    if (st.st_uid != geteuid() && st.st_uid != 0)
        return seterr(err, errlen, -EPERM, "%s belongs to uid %u, not to us",
                      path, (unsigned)st.st_uid);
    return 0;
}

/* Files left in tmp/ by a build without O_TMPFILE that crashed between
 * creating and unlinking one. */
static void
clean_tmp(const char *tmpdir)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, "spool.", 6) == 0)
            unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
}

static const struct {
    const char *name;
    size_t off;
} dbs[] = {
#define DB(n) { #n, offsetof(struct st_store, n) }
    DB(meta), DB(snaps), DB(bytime), DB(byproc), DB(tname), DB(tid),
    DB(summ), DB(objs), DB(addrs), DB(rev),
#undef DB
};

struct meta_min;
static int meta_min(const MDB_val *v, struct meta_min *m);
static int index_graphs(struct st_store *s, MDB_txn *txn);

static int
open_dbs(struct st_store *s, char *err, size_t errlen)
{
    int ro = s->flags & ST_RDONLY;
    MDB_txn *txn;
    MDB_val k = { 6, (void *)(uintptr_t)"format" }, v;
    unsigned char fmt[4];
    int rc, full = 0;

    /* A writer that cannot reserve disk (full) still opens an existing
     * store, through a read-only transaction: only a new one writes here. */
    rc = ro ? mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)
            : st__write_txn(s, &txn);
    if (rc == -ENOSPC && !ro) {
        full = 1;
        ro = 1;
        rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    }
    if (rc != 0)
        return seterr(err, errlen, rc, "%s: %s", s->dir, rc < 0 && rc > -4096
                      ? strerror(-rc) : mdb_strerror(rc));
    for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++) {
        rc = mdb_dbi_open(txn, dbs[i].name, ro ? 0 : MDB_CREATE,
                          (MDB_dbi *)((char *)s + dbs[i].off));
        if (rc == MDB_NOTFOUND && full) {
            seterr(err, errlen, -ENOSPC, "%s: no disk space to create the "
                   "store", s->dir);
            rc = -ENOSPC;
            goto fail;
        }
        if (rc == MDB_NOTFOUND) {
            seterr(err, errlen, ML_ENOTFOUND, "%s is not a meliae store "
                   "(no \"%s\" database)", s->dir, dbs[i].name);
            rc = ML_ENOTFOUND;
            goto fail;
        }
        if (rc != 0) {
            seterr(err, errlen, rc, "%s: %s", s->dir, mdb_strerror(rc));
            goto fail;
        }
    }
    rc = mdb_get(txn, s->meta, &k, &v);
    if (rc == MDB_NOTFOUND && !ro) {
        st_put_be32(fmt, ST_FORMAT_VERSION);
        v.mv_size = 4;
        v.mv_data = fmt;
        rc = mdb_put(txn, s->meta, &k, &v, 0);
        if (rc != 0) {
            seterr(err, errlen, rc, "%s: %s", s->dir, mdb_strerror(rc));
            goto fail;
        }
    } else if (rc == MDB_NOTFOUND && full) {
        seterr(err, errlen, -ENOSPC, "%s: no disk space to create the store",
               s->dir);
        rc = -ENOSPC;
        goto fail;
    } else if (rc != 0 || v.mv_size != 4) {
        seterr(err, errlen, ML_ECORRUPT, "%s: no format version", s->dir);
        rc = ML_ECORRUPT;
        goto fail;
    } else if (st_get_be32(v.mv_data) != ST_FORMAT_VERSION) {
        seterr(err, errlen, ML_ECORRUPT, "%s has store format %u; this build "
               "reads format %u", s->dir, st_get_be32(v.mv_data),
               ST_FORMAT_VERSION);
        rc = ML_ECORRUPT;
        goto fail;
    }
    if ((rc = st__births_open(s, txn, ro)) != 0) {
        seterr(err, errlen, rc, "%s: %s", s->dir, mdb_strerror(rc));
        goto fail;
    }
    /* The dominator tree's answers (retained.h): a store made before
     * them has none, which its readers take as "compute on demand". */
    rc = mdb_dbi_open(txn, "retained", ro ? 0 : MDB_CREATE, &s->ret);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "rtypes", ro ? 0 : MDB_CREATE, &s->rtypes);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        seterr(err, errlen, rc, "%s: %s", s->dir, mdb_strerror(rc));
        goto fail;
    }
    s->has_ret = rc == 0;
    /* The writer's graphs index; a store made before it has its graphs
     * listed once, here (index_graphs). */
    if (!ro && (rc = index_graphs(s, txn)) != 0) {
        seterr(err, errlen, rc, "%s: indexing graphs: %s", s->dir,
               rc < 0 && rc > -4096 ? strerror(-rc) : mdb_strerror(rc));
        goto fail;
    }
    rc = mdb_txn_commit(txn);           /* keeps the handles open */
    if (rc != 0)
        return seterr(err, errlen, rc, "%s: %s", s->dir, mdb_strerror(rc));
    return 0;
fail:
    mdb_txn_abort(txn);
    return rc;
}

/* The map's resize lock prefers its writer: with glibc's default
 * (readers first) queries that keep overlapping could hold a growing map
 * off, and the commit waiting for it, indefinitely.  Safe because no
 * thread ever holds two reads (one st_read at a time per thread). */
static void
init_resize_lock(pthread_rwlock_t *l)
{
    pthread_rwlockattr_t a;

    pthread_rwlockattr_init(&a);
#ifdef __GLIBC__                 /* an enum there, not a macro */
    pthread_rwlockattr_setkind_np(&a,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
    pthread_rwlock_init(l, &a);
    pthread_rwlockattr_destroy(&a);
}

/* Creates s->env and opens it on dir with the extra flags. */
static int
env_open(struct st_store *s, const char *dir, const struct st_options *opt,
         unsigned extra)
{
    int rc = mdb_env_create(&s->env);

    if (rc == 0)
        rc = mdb_env_set_maxdbs(s->env, 32);
    if (rc == 0 && !(s->flags & ST_RDONLY)) {
        uint64_t first = opt->map_size ? opt->map_size : ST_INITIAL_MAP;

        rc = mdb_env_set_mapsize(s->env, s->max_store < first
                                         ? s->max_store : first);
    }
    if (rc == 0)
        /* The writer maps the file writable (docs/store-format.md, "Files"):
         * dirty pages then live in the page cache, not in malloc'd memory,
         * whatever the size of a value or of a transaction. */
        rc = mdb_env_open(s->env, dir, MDB_NOTLS | extra |
                          (s->flags & ST_RDONLY ? MDB_RDONLY : MDB_WRITEMAP),
                          0600);
    return rc;
}

int
st_open(struct st_store **out, const char *dir, const struct st_options *opt,
        char *err, size_t errlen)
{
    struct st_options def = { 0 };
    struct st_store *s;
    char path[PATH_MAX];
    int rc;

    if (opt == NULL)
        opt = &def;
    s = calloc(1, sizeof *s);
    if (s == NULL)
        return seterr(err, errlen, -ENOMEM, "out of memory");
    s->flags = opt->flags;
    s->lockfd = -1;
    s->datafd = -1;
    s->txn_bytes = ST_TXN_BYTES;
    init_resize_lock(&s->resize);
    pthread_mutex_init(&s->ret_mu, NULL);
    pthread_cond_init(&s->ret_cv, NULL);
    s->max_store = opt->max_store ? opt->max_store : ST_DEFAULT_MAX_STORE;
    s->retain = opt->retain ? opt->retain : ST_DEFAULT_RETAIN;
    s->retain_age_ns = opt->retain_age_ns ? opt->retain_age_ns
                                          : ST_DEFAULT_RETAIN_AGE;
    s->dir = strdup(dir);
    if (s->dir == NULL) {
        rc = seterr(err, errlen, -ENOMEM, "out of memory");
        goto fail;
    }
    if (s->flags & ST_RDONLY) {
        struct stat st;

        if (snprintf(path, sizeof path, "%s/data.mdb", dir) >= (int)sizeof path) {
            rc = seterr(err, errlen, -ENAMETOOLONG, "%s: name too long", dir);
            goto fail;
        }
        if (stat(path, &st) < 0) {
            rc = seterr(err, errlen, -errno, "no store at %s: %s", dir,
                        strerror(errno));
            goto fail;
        }
    } else {
        rc = check_dir(dir, 1, err, errlen);
        if (rc == 0)
            rc = check_writable(dir, err, errlen);
        if (rc < 0)
            goto fail;
        if (snprintf(path, sizeof path, "%s/tmp", dir) >= (int)sizeof path) {
            rc = seterr(err, errlen, -ENAMETOOLONG, "%s: name too long", dir);
            goto fail;
        }
        rc = check_dir(path, 1, err, errlen);
        if (rc < 0)
            goto fail;
        s->tmpdir = strdup(path);
        if (s->tmpdir == NULL) {
            rc = seterr(err, errlen, -ENOMEM, "out of memory");
            goto fail;
        }
        /* One writer per store: a second daemon (or an import) would
         * sweep the first one's snapshots in the middle of their commit. */
        if (snprintf(path, sizeof path, "%s/writer.lock", dir) >= (int)sizeof path) {
            rc = seterr(err, errlen, -ENAMETOOLONG, "%s: name too long", dir);
            goto fail;
        }
        s->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (s->lockfd < 0) {
            rc = seterr(err, errlen, -errno, "%s: %s", path, strerror(errno));
            goto fail;
        }
        if (flock(s->lockfd, LOCK_EX | LOCK_NB) < 0) {
            rc = errno == EWOULDBLOCK
                 ? seterr(err, errlen, -EBUSY, "store %s is in use by another "
                          "writer (a running meliae-monitord?)", dir)
                 : seterr(err, errlen, -errno, "%s: %s", path, strerror(errno));
            goto fail;
        }
        clean_tmp(s->tmpdir);
    }
    rc = env_open(s, dir, opt, 0);
    /* A reader that may not write lock.mdb (a store of another uid, mode
     * 0400, or one copied read-only): read without LMDB's reader table.
     * LMDB does so itself on a read-only file system (EROFS). */
    if ((rc == EACCES || rc == EPERM) && (s->flags & ST_RDONLY)) {
        mdb_env_close(s->env);
        s->env = NULL;
        rc = env_open(s, dir, opt, MDB_NOLOCK);
    }
    if (rc != 0) {
        seterr(err, errlen, rc > 0 ? -rc : rc, "cannot open the store in %s: %s",
               dir, mdb_strerror(rc));
        rc = rc > 0 ? -rc : rc;
        goto fail;
    }
    /* Before open_dbs: its transaction is the first write of a new store,
     * reserved like every other (st__write_txn). */
    s->datafd = -1;
    if (!(s->flags & ST_RDONLY)) {
        rc = mdb_env_get_fd(s->env, &s->datafd);
        if (rc != 0) {
            rc = seterr(err, errlen, -rc, "%s: %s", dir, mdb_strerror(rc));
            goto fail;
        }
        s->alloc_end = st__used_end(s);     /* written, so backed */
    }
    rc = open_dbs(s, err, errlen);
    if (rc != 0) {
        rc = rc > 0 ? -rc : rc;
        goto fail;
    }
    st__size_refresh(s);
    *out = s;
    return 0;
fail:
    st_close(s);
    return rc;
}

void
st_close(struct st_store *s)
{
    if (s == NULL)
        return;
    if (s->env != NULL)
        mdb_env_close(s->env);
    if (s->lockfd >= 0)
        close(s->lockfd);
    pthread_rwlock_destroy(&s->resize);
    pthread_cond_destroy(&s->ret_cv);
    pthread_mutex_destroy(&s->ret_mu);
    free(s->dir);
    free(s->tmpdir);
    free(s);
}

int
st_reader_check(struct st_store *s, int *dead)
{
    int n = 0, rc = mdb_reader_check(s->env, &n);

    if (dead != NULL)
        *dead = n;
    return rc > 0 ? -rc : rc;
}

void
st__size_refresh(struct st_store *s)
{
    MDB_envinfo info;
    MDB_stat st;

    if (s->broken)
        return;
    if (mdb_env_info(s->env, &info) == 0 && mdb_env_stat(s->env, &st) == 0)
        s->used_bytes = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
}

uint64_t
st__used_end(struct st_store *s)
{
    MDB_envinfo info;
    MDB_stat st;

    if (mdb_env_info(s->env, &info) != 0 || mdb_env_stat(s->env, &st) != 0)
        return 0;
    return (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
}

int
st__disk_ahead(struct st_store *s, uint64_t used, uint64_t more)
{
    MDB_envinfo info;
    uint64_t end, target;
    int rc;

    /* what LMDB may add: the bytes asked for, its page headers and the
     * branch pages, the freelist records (an eighth is generous) */
    end = used + more + more / 8 + (1u << 20);
    if (end <= s->alloc_end || s->datafd < 0)
        return 0;
    if (mdb_env_info(s->env, &info) != 0)
        return 0;
    target = end + ST_DISK_SLACK;
    if (target > info.me_mapsize)
        target = info.me_mapsize;       /* LMDB stops there: MDB_MAP_FULL */
    if (target <= s->alloc_end)
        return 0;
    rc = posix_fallocate(s->datafd, (off_t)s->alloc_end,
                         (off_t)(target - s->alloc_end));
    /* A filesystem without fallocate (some NFS, old tmpfs...) gets no
     * SIGBUS protection: nothing better to do there.  The target is still
     * recorded, so the next try is ST_DISK_SLACK further, not at every put. */
    if (rc == EOPNOTSUPP || rc == ENOSYS)
        rc = 0;
    if (rc != 0)
        return -rc;
    s->alloc_end = target;
    return 0;
}

int
st__write_txn(struct st_store *s, MDB_txn **txn)
{
    int rc = st__disk_ahead(s, st__used_end(s), 0);

    if (rc != 0)
        return rc;
    return mdb_txn_begin(s->env, NULL, 0, txn);
}

/* Any thread: mdb_env_info here would read the map while the writer may
 * be resizing it (mdb_env_set_mapsize unmaps it), hence the copy. */
uint64_t
st_size(struct st_store *s)
{
    return s->used_bytes;
}

/* ---- deleting ---- */

int
st__del_prefix(MDB_txn *txn, MDB_dbi db, uint64_t id)
{
    unsigned char k[8];
    MDB_cursor *c;
    MDB_val key = { 8, k }, val;
    int rc;

    st_put_be64(k, id);
    rc = mdb_cursor_open(txn, db, &c);
    if (rc != 0)
        return rc;
    rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE);
    while (rc == 0 && key.mv_size >= 8 && st_get_be64(key.mv_data) == id) {
        rc = mdb_cursor_del(c, 0);
        if (rc == 0)
            rc = mdb_cursor_get(c, &key, &val, MDB_GET_CURRENT);
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND || rc == EINVAL ? 0 : rc;
}

/* The fields of a snapshot record retention needs. */
struct meta_min {
    int complete;
    int graph;
    uint64_t time_ns;
    uint64_t proc;
};

static int
meta_min(const MDB_val *v, struct meta_min *m)
{
    cJSON *o = cJSON_ParseWithLength(v->mv_data, v->mv_size), *x;

    memset(m, 0, sizeof *m);
    if (o == NULL)
        return ML_ECORRUPT;
    x = cJSON_GetObjectItemCaseSensitive(o, "status");
    m->complete = cJSON_IsString(x) && strcmp(x->valuestring, "complete") == 0;
    x = cJSON_GetObjectItemCaseSensitive(o, "graph");
    m->graph = cJSON_IsTrue(x);
    x = cJSON_GetObjectItemCaseSensitive(o, "time_ns");
    if (cJSON_IsString(x))
        m->time_ns = strtoull(x->valuestring, NULL, 10);
    x = cJSON_GetObjectItemCaseSensitive(o, "proc");
    if (cJSON_IsString(x))
        m->proc = strtoull(x->valuestring, NULL, 16);
    cJSON_Delete(o);
    return 0;
}

/* The graphs key of a snapshot: u64 proc || u64 time_ns || u64 id, as
 * byproc's. */
static void
graph_key(unsigned char k[24], const struct meta_min *m, uint64_t id)
{
    st_put_be64(k, m->proc);
    st_put_be64(k + 8, m->time_ns);
    st_put_be64(k + 16, id);
}

/* Opens (creates) the graphs database; when new, lists in it every
 * complete snapshot that has its graph, and marks it done in meta. */
static int
index_graphs(struct st_store *s, MDB_txn *txn)
{
    MDB_val mk = { 6, (void *)(uintptr_t)"graphs" }, v, key;
    MDB_cursor *c;
    int rc;

    rc = mdb_dbi_open(txn, "graphs", MDB_CREATE, &s->graphs);
    if (rc != 0 || (rc = mdb_get(txn, s->meta, &mk, &v)) != MDB_NOTFOUND)
        return rc;
    if ((rc = mdb_cursor_open(txn, s->snaps, &c)) != 0)
        return rc;
    for (rc = mdb_cursor_get(c, &key, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &key, &v, MDB_NEXT)) {
        struct meta_min m;
        unsigned char gk[24];
        MDB_val g = { 24, gk }, e = { 0, (void *)(uintptr_t)"" };

        if (key.mv_size != 8 || meta_min(&v, &m) != 0 || !m.complete
            || !m.graph)
            continue;
        graph_key(gk, &m, st_get_be64(key.mv_data));
        if ((rc = mdb_put(txn, s->graphs, &g, &e, 0)) != 0)
            break;
    }
    mdb_cursor_close(c);
    if (rc != MDB_NOTFOUND)
        return rc;
    v.mv_size = 1;
    v.mv_data = (void *)(uintptr_t)"1";
    return mdb_put(txn, s->meta, &mk, &v, 0);
}

/* Rewrites a complete record with "graph": false. */
static int
mark_no_graph(struct st_store *s, MDB_txn *txn, const MDB_val *key,
              const MDB_val *v)
{
    cJSON *o = cJSON_ParseWithLength(v->mv_data, v->mv_size);
    MDB_val nv;
    char *text;
    int rc;

    if (o == NULL)
        return ML_ECORRUPT;
    cJSON_ReplaceItemInObjectCaseSensitive(o, "graph", cJSON_CreateFalse());
    text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (text == NULL)
        return -ENOMEM;
    nv.mv_size = strlen(text);
    nv.mv_data = text;
    rc = mdb_put(txn, s->snaps, (MDB_val *)key, &nv, 0);
    free(text);
    return rc;
}

int
st__drop_snapshot(struct st_store *s, MDB_txn *txn, uint64_t id, int all)
{
    unsigned char k[8];
    MDB_val key = { 8, k }, v;
    struct meta_min m = { 0 };
    int rc;

    st_put_be64(k, id);
    rc = mdb_get(txn, s->snaps, &key, &v);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    int have = rc == 0;
    if (have)
        meta_min(&v, &m);
    if ((rc = st__del_prefix(txn, s->objs, id)) != 0 ||
        (rc = st__del_prefix(txn, s->addrs, id)) != 0 ||
        (rc = st__del_prefix(txn, s->rev, id)) != 0 ||
        (rc = st__births_drop(s, txn, id)) != 0)
        return rc;
    /* the retained sizes go with the graph they were computed on */
    if (s->has_ret && ((rc = st__del_prefix(txn, s->ret, id)) != 0 ||
                       (rc = st__del_prefix(txn, s->rtypes, id)) != 0))
        return rc;
    if (have && m.complete && m.graph && s->graphs != 0) {
        unsigned char gk[24];
        MDB_val g = { 24, gk };

        graph_key(gk, &m, id);
        rc = mdb_del(txn, s->graphs, &g, NULL);
        if (rc != 0 && rc != MDB_NOTFOUND)
            return rc;
    }
    if (!all)
        return have && m.complete ? mark_no_graph(s, txn, &key, &v) : 0;
    rc = st__del_prefix(txn, s->summ, id);
    if (rc != 0)
        return rc;
    if (have && m.complete) {
        unsigned char ik[24];
        MDB_val ikey = { 16, ik };

        st_put_be64(ik, m.time_ns);
        st_put_be64(ik + 8, id);
        rc = mdb_del(txn, s->bytime, &ikey, NULL);
        if (rc != 0 && rc != MDB_NOTFOUND)
            return rc;
        st_put_be64(ik, m.proc);
        st_put_be64(ik + 8, m.time_ns);
        st_put_be64(ik + 16, id);
        ikey.mv_size = 24;
        rc = mdb_del(txn, s->byproc, &ikey, NULL);
        if (rc != 0 && rc != MDB_NOTFOUND)
            return rc;
    }
    if (have) {
        rc = mdb_del(txn, s->snaps, &key, NULL);
        if (rc != 0 && rc != MDB_NOTFOUND)
            return rc;
    }
    return 0;
}

int
st_delete(struct st_store *s, uint64_t id)
{
    unsigned char k[8];
    MDB_val key = { 8, k }, v;
    struct meta_min m;
    MDB_txn *txn;
    int rc;

    rc = st__write_txn(s, &txn);
    if (rc != 0)
        return rc;
    st_put_be64(k, id);
    rc = mdb_get(txn, s->snaps, &key, &v);
    if (rc == 0 && (meta_min(&v, &m) != 0 || !m.complete))
        rc = MDB_NOTFOUND;      /* being ingested: not a snapshot yet */
    if (rc == MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return ML_ENOTFOUND;
    }
    if (rc == 0)
        rc = st__drop_snapshot(s, txn, id, 1);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return rc > 0 ? -rc : rc;
    }
    rc = mdb_txn_commit(txn);
    return rc > 0 ? -rc : rc;
}

/* ---- maintenance ---- */

int
st_sweep(struct st_store *s, uint64_t *n)
{
    MDB_txn *txn;
    MDB_cursor *c;
    MDB_val key, v;
    uint64_t *ids = NULL;
    size_t nids = 0, cap = 0;
    int rc;

    if (n != NULL)
        *n = 0;
    if (s->flags & ST_RDONLY)
        return -EROFS;
    if (s->broken)
        return MDB_PANIC;
    rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return -abs(rc);
    rc = mdb_cursor_open(txn, s->snaps, &c);
    if (rc == 0) {
        for (rc = mdb_cursor_get(c, &key, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(c, &key, &v, MDB_NEXT)) {
            struct meta_min m;

            if (key.mv_size != 8)
                continue;
            if (meta_min(&v, &m) == 0 && m.complete)
                continue;
            if (nids == cap) {
                size_t nc = cap ? cap * 2 : 16;
                void *p = realloc(ids, nc * sizeof *ids);

                if (p == NULL) {
                    rc = -ENOMEM;
                    break;
                }
                ids = p;
                cap = nc;
            }
            ids[nids++] = st_get_be64(key.mv_data);
        }
        mdb_cursor_close(c);
    }
    mdb_txn_abort(txn);
    if (rc != MDB_NOTFOUND && rc != 0)
        goto out;
    rc = 0;
    for (size_t i = 0; i < nids && rc == 0; i++) {
        rc = st__write_txn(s, &txn);
        if (rc != 0)
            break;
        rc = st__drop_snapshot(s, txn, ids[i], 1);
        if (rc == 0)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
        if (rc == 0 && n != NULL)
            (*n)++;
    }
out:
    free(ids);
    st__size_refresh(s);
    return rc > 0 ? -rc : rc;
}

/* Which of the graphs at times t[0..n) (oldest first, n > 2) goes so
 * that the others stay spread out: the newest and the oldest stay, and of
 * the others the one whose neighbours are closest together (the older on
 * a tie).  A process that streams every second keeps graphs from its
 * whole life, not its last `retain` seconds. */
static size_t
graph_victim(const uint64_t *t, size_t n)
{
    size_t best = 1;

    for (size_t i = 2; i + 1 < n; i++)
        if (t[i + 1] - t[i - 1] < t[best + 1] - t[best - 1])
            best = i;
    return best;
}

/* Drops graphs of proc until `retain` are left (graph_victim's). */
static int
retain_graphs(struct st_store *s, MDB_txn *txn, uint64_t proc)
{
    uint64_t *t = NULL, *ids = NULL;
    size_t n = 0, cap = 0;
    unsigned char k[24];
    MDB_val key = { 8, k }, v;
    MDB_cursor *c;
    int rc;

    if (s->graphs == 0)
        return 0;
    if ((rc = mdb_cursor_open(txn, s->graphs, &c)) != 0)
        return rc;
    st_put_be64(k, proc);
    for (rc = mdb_cursor_get(c, &key, &v, MDB_SET_RANGE);
         rc == 0 && key.mv_size == 24 && st_get_be64(key.mv_data) == proc;
         rc = mdb_cursor_get(c, &key, &v, MDB_NEXT)) {
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            uint64_t *nt = realloc(t, nc * sizeof *t);
            uint64_t *ni = nt ? realloc(ids, nc * sizeof *ids) : NULL;

            if (nt != NULL)
                t = nt;
            if (ni == NULL) {
                rc = -ENOMEM;
                break;
            }
            ids = ni;
            cap = nc;
        }
        t[n] = st_get_be64((unsigned char *)key.mv_data + 8);
        ids[n++] = st_get_be64((unsigned char *)key.mv_data + 16);
    }
    mdb_cursor_close(c);
    if (rc == MDB_NOTFOUND || rc == 0)
        rc = 0;
    while (rc == 0 && n > s->retain) {
        /* retain 1: the newest only; else graph_victim's */
        size_t i = s->retain < 2 || n < 3 ? 0 : graph_victim(t, n);

        rc = st__drop_snapshot(s, txn, ids[i], 0);
        memmove(t + i, t + i + 1, (n - i - 1) * sizeof *t);
        memmove(ids + i, ids + i + 1, (n - i - 1) * sizeof *ids);
        n--;
    }
    free(t);
    free(ids);
    return rc;
}

int
st__retain(struct st_store *s, uint64_t proc, uint64_t now_ns)
{
    MDB_txn *txn;
    MDB_cursor *c;
    MDB_val key, v;
    int rc;

    rc = st__write_txn(s, &txn);
    if (rc != 0)
        return rc;
    /* Graphs: `retain` of this process keep theirs, spread over its
     * history (docs/store-format.md, invariant 5). */
    rc = retain_graphs(s, txn, proc);
    if (rc != 0)
        goto fail;

    /* Summaries: everything older than retain_age goes. */
    if (now_ns > s->retain_age_ns) {
        uint64_t limit = now_ns - s->retain_age_ns;

        for (;;) {
            rc = mdb_cursor_open(txn, s->bytime, &c);
            if (rc != 0)
                goto fail;
            rc = mdb_cursor_get(c, &key, &v, MDB_FIRST);
            uint64_t t = rc == 0 ? st_get_be64(key.mv_data) : UINT64_MAX;
            uint64_t id = rc == 0 ? st_get_be64((unsigned char *)key.mv_data + 8) : 0;
            mdb_cursor_close(c);
            if (rc == MDB_NOTFOUND || t >= limit)
                break;
            if (rc != 0)
                goto fail;
            rc = st__drop_snapshot(s, txn, id, 1);
            if (rc != 0)
                goto fail;
        }
    }
    rc = mdb_txn_commit(txn);
    return rc > 0 ? -rc : rc;
fail:
    mdb_txn_abort(txn);
    return rc > 0 ? -rc : rc;
}

int
st__prune_oldest(struct st_store *s, uint64_t keep)
{
    MDB_txn *txn;
    MDB_cursor *c;
    MDB_val key, v;
    int rc;

    rc = st__write_txn(s, &txn);
    if (rc != 0)
        return rc;
    rc = mdb_cursor_open(txn, s->bytime, &c);
    if (rc != 0)
        goto fail;
    for (rc = mdb_cursor_get(c, &key, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &key, &v, MDB_NEXT)) {
        uint64_t id = st_get_be64((unsigned char *)key.mv_data + 8);
        unsigned char ik[8];
        MDB_val ikey = { 8, ik }, meta;
        struct meta_min m;

        if (id == keep)
            continue;
        st_put_be64(ik, id);
        if (mdb_get(txn, s->snaps, &ikey, &meta) != 0 ||
            meta_min(&meta, &m) != 0 || !m.graph)
            continue;
        mdb_cursor_close(c);
        rc = st__drop_snapshot(s, txn, id, 0);
        if (rc != 0)
            goto fail;
        rc = mdb_txn_commit(txn);
        return rc > 0 ? -rc : rc;
    }
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    return rc == MDB_NOTFOUND ? ML_ENOTFOUND : rc;
fail:
    mdb_txn_abort(txn);
    return rc;
}
