/* SPDX-License-Identifier: MIT
 *
 * scannermodule.c -- meliae._scanner: argument handling, output targets
 * and exceptions around the walk (walk.c).  The Python-facing API and its
 * documentation are in meliae/scanner.py.
 */
#include "pyinc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cpython.h"
#include "procstats.h"
#include "forkchild.h"
#include "jsonw.h"
#include "ml-common.h"
#include "objinfo.h"
#include "sink.h"
#include "traces.h"
#include "walk.h"

/* The writer's buffer: large writes, few syscalls. */
#define ML_DUMP_BUF (256 * 1024)

/* Chunk size handed to a callable target. */
#define ML_CALLABLE_CHUNK (1024 * 1024)

/* Module globals.  Protected by the GIL.  The module refuses to load in a
 * second interpreter (Py_mod_multiple_interpreters below), so statics are
 * per process and per interpreter alike. */
static PyObject *ScanError;
static int dump_active;                 /* re-entrancy guard */
static struct ml_special *specials;
static size_t nspecials;
/* Set when a write was abandoned for SIGINT, whose flag
 * PyOS_InterruptOccurred() consumed: the dump then raises
 * KeyboardInterrupt itself. */
static int sigint_seen;

/* Raises the exception for rc (a -errno or ML_E*) and returns NULL. */
static PyObject *
raise_rc(int rc, const char *what)
{
    if (rc == -EINTR && sigint_seen) {
        sigint_seen = 0;
        PyErr_SetNone(PyExc_KeyboardInterrupt);
        return NULL;
    }
    if (rc == ML_EPYTHON && PyErr_Occurred())
        return NULL;
    if (rc == -ENOMEM)
        return PyErr_NoMemory();
    if (rc < 0 && rc > -4096) {
        errno = -rc;
        return PyErr_SetFromErrnoWithFilename(PyExc_OSError, what);
    }
    PyErr_Format(ScanError, "%s: %s", what ? what : "dump", ml_strerror(rc));
    return NULL;
}

/* ------------------------------------------------------------------ */
/* One dump into an fd.                                                */

struct dump_args {
    int mode;
    PyObject *root;
    int gzip;
    int timeout_ms;             /* for a socket with a timeout; else -1 */
    enum ml_values values;
    int deadline_ms;            /* the whole dump's, from its start; -1 */
};

/* File dumps: values cut to 100 characters, as meliae always did. */
#define DUMP_ARGS_INIT { 0, NULL, 0, -1, ML_VALUES_TRUNCATED, -1 }

/* How long the copy to a target that may stall runs without the GIL
 * before the process's signal handlers get their turn. */
#define COPY_SLICE_MS 100

static PyObject *
walk_result(const struct ml_walk_result *res)
{
    return Py_BuildValue("KK", (unsigned long long)res->nobj,
                         (unsigned long long)res->nbytes);
}

static int
check_interrupt(void)
{
    if (PyOS_InterruptOccurred()) {
        sigint_seen = 1;
        return 1;
    }
    return 0;
}

/* Walks into fd.  Returns 0 or a negative code (ML_EPYTHON: exception
 * set).  Toggles automatic collection off while user callables may run. */
static int
dump_to_fd(int fd, const struct dump_args *a, struct ml_walk_result *res)
{
    struct ml_sink sink;
    struct ml_jsonw w;
    char *buf;
    int rc;

    buf = malloc(ML_DUMP_BUF);
    if (buf == NULL)
        return -ENOMEM;
    rc = ml_sink_open(&sink, fd, a->gzip);
    if (rc < 0)
        goto out_free_buf;
    sink.timeout_ms = a->timeout_ms;
    sink.interrupted = check_interrupt;
    ml_jsonw_init(&w, buf, ML_DUMP_BUF, ml_sink_write, &sink);

    rc = ml__walk(a->mode, a->root, &w, a->values, specials, nspecials,
                  res);
    if (rc == 0)
        rc = ml_sink_finish(&sink);
    ml_sink_close(&sink);
out_free_buf:
    free(buf);
    return rc;
}

/* Opens path for a dump.  A regular file (existing or not) is written
 * under a temporary name in the same directory and renamed over the target
 * at the end, so readers never see half a dump and a failed dump leaves
 * the old file intact; a symlink at the final component is refused (ELOOP);
 * other existing files (FIFOs, devices) are opened as they are.  On
 * success *tmp is the malloc'd temporary name, or NULL. */
static int
open_target(const char *path, char **tmp)
{
    struct stat st;
    size_t n = strlen(path);
    char *t;
    int fd;

    *tmp = NULL;
    if (lstat(path, &st) == 0) {
        if (S_ISLNK(st.st_mode))
            return -ELOOP;
        if (S_ISDIR(st.st_mode))
            return -EISDIR;
        if (!S_ISREG(st.st_mode)) {
            /* O_NONBLOCK: a FIFO without a reader fails (ENXIO) instead of
             * blocking the process with the GIL held; writes then block. */
            fd = open(path, O_WRONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC
                      | O_NONBLOCK);
            if (fd < 0)
                return -errno;
            if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
                int e = errno;

                close(fd);
                return -e;
            }
            return fd;
        }
    } else if (errno != ENOENT) {
        return -errno;
    }
    t = malloc(n + sizeof(".meliae-XXXXXX"));
    if (t == NULL)
        return -ENOMEM;
    memcpy(t, path, n);
    memcpy(t + n, ".meliae-XXXXXX", sizeof(".meliae-XXXXXX"));
    fd = mkostemp(t, O_CLOEXEC);       /* mode 0600 */
    if (fd < 0) {
        int e = errno;

        free(t);
        return -e;
    }
    *tmp = t;
    return fd;
}

/* Whether a write to fd may block for as long as a reader pleases: a
 * pipe, a FIFO, a socket, a terminal.  A regular file does not. */
static int
may_stall(int fd)
{
    struct stat st;

    return fstat(fd, &st) == 0 && !S_ISREG(st.st_mode);
}

static int walk_to_tmp(const struct dump_args *a, struct ml_walk_result *res);

/* Copies the finished dump in from to to, without the GIL, in slices:
 * between them the signal handlers run (PyErr_CheckSignals), so SIGALRM,
 * SIGTERM or a watchdog's signal can stop a dump whose reader stalls, as
 * can a.deadline_ms (from t0_ns) and a.timeout_ms without progress.  0,
 * or a negative code (ML_EPYTHON: exception set). */
static int
copy_out(int from, int to, const struct dump_args *a, int64_t t0_ns)
{
    struct ml_copy c;
    int rc = ml_copy_init(&c, to, from);

    if (rc < 0)
        goto out;
    if (a->deadline_ms >= 0)
        c.deadline_ns = t0_ns + (int64_t)a->deadline_ms * 1000000;
    c.idle_ms = a->timeout_ms;
    for (;;) {
        Py_BEGIN_ALLOW_THREADS
        rc = ml_copy_run(&c, COPY_SLICE_MS);
        Py_END_ALLOW_THREADS
        if (rc == 1) {
            rc = 0;
            break;
        }
        if (rc != 0 && rc != -EINTR)
            break;
        if (PyErr_CheckSignals() < 0) {
            rc = ML_EPYTHON;
            break;
        }
    }
    if (rc == -ETIMEDOUT) {
        PyErr_Format(PyExc_TimeoutError, "dump: the reader did not take the "
                     "dump in time (%s; %llu of %lld bytes written)",
                     c.deadline_ns != 0 && ml_sink_now_ns() >= c.deadline_ns
                     ? "timeout" : "no progress within the socket's timeout",
                     (unsigned long long)c.nwritten, (long long)c.off);
        rc = ML_EPYTHON;
    }
out:
    ml_copy_free(&c);
    return rc;
}

/* Walks into fd; one that may stall gets the walk through a temporary
 * file, copied out after the walk (copy_out): the walk holds the GIL and
 * must not wait on a reader, and no Python code may run in the middle of
 * it (docs/dump-format.md). */
static int
dump_to_target(int fd, const struct dump_args *a, struct ml_walk_result *res)
{
    int64_t t0 = ml_sink_now_ns();
    int tmp, rc;

    if (!may_stall(fd))
        return dump_to_fd(fd, a, res);
    tmp = walk_to_tmp(a, res);
    if (tmp < 0)
        return tmp;
    rc = copy_out(tmp, fd, a, t0);
    close(tmp);
    return rc;
}

static PyObject *
scanner_dump_path(PyObject *self, PyObject *args)
{
    struct dump_args a = DUMP_ARGS_INIT;
    struct ml_walk_result res;
    const char *path;
    char *tmp;
    int fd, rc;

    if (!PyArg_ParseTuple(args, "iyO|pi:dump_path", &a.mode, &path, &a.root,
                          &a.gzip, &a.deadline_ms))
        return NULL;
    if (dump_active)
        return raise_rc(ML_EBUSY, "dump");
    fd = open_target(path, &tmp);
    if (fd < 0)
        return raise_rc(fd, path);
    dump_active = 1;
    rc = dump_to_target(fd, &a, &res);
    dump_active = 0;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (tmp != NULL) {
        if (rc == 0 && rename(tmp, path) < 0)
            rc = -errno;
        if (rc != 0)
            unlink(tmp);
        free(tmp);
    }
    if (rc != 0)
        return raise_rc(rc, path);
    return walk_result(&res);
}

static PyObject *
scanner_dump_fd(PyObject *self, PyObject *args)
{
    struct dump_args a = DUMP_ARGS_INIT;
    struct ml_walk_result res;
    int fd, rc;

    if (!PyArg_ParseTuple(args, "iiO|ii:dump_fd", &a.mode, &fd, &a.root,
                          &a.timeout_ms, &a.deadline_ms))
        return NULL;
    if (dump_active)
        return raise_rc(ML_EBUSY, "dump");
    dump_active = 1;
    rc = dump_to_target(fd, &a, &res);
    dump_active = 0;
    if (rc != 0)
        return raise_rc(rc, NULL);
    return walk_result(&res);
}

/* An anonymous temporary file: the dump for a callable target is walked
 * into it first, so that no Python code (the callable) runs while the heap
 * is being walked. */
static int
open_anon_tmp(void)
{
    const char *dir = getenv("TMPDIR");
    char tmpl[4096];
    int fd;

    if (dir == NULL || *dir == '\0')
        dir = "/tmp";
#ifdef O_TMPFILE
    fd = open(dir, O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
#endif
    if (snprintf(tmpl, sizeof(tmpl), "%s/meliae-XXXXXX", dir) >= (int)sizeof(tmpl))
        return -ENAMETOOLONG;
    fd = mkostemp(tmpl, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    unlink(tmpl);
    return fd;
}

/* Walks into a new anonymous temporary file (dump_callable,
 * stream_snapshot).  Returns its fd, or a negative code (ML_EPYTHON:
 * exception set) with nothing left open.  The caller sets dump_active. */
static int
walk_to_tmp(const struct dump_args *a, struct ml_walk_result *res)
{
    int fd = open_anon_tmp();
    int rc;

    if (fd < 0)
        return fd;
    rc = dump_to_fd(fd, a, res);
    if (rc != 0) {
        close(fd);
        return rc;
    }
    return fd;
}

/* Feeds the file to callable in chunks.  0, or -1 with an exception. */
static int
replay(int fd, PyObject *callable)
{
    if (lseek(fd, 0, SEEK_SET) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    for (;;) {
        PyObject *chunk = PyBytes_FromStringAndSize(NULL, ML_CALLABLE_CHUNK);
        PyObject *r;
        ssize_t n;

        if (chunk == NULL)
            return -1;
        do {
            Py_BEGIN_ALLOW_THREADS
            n = read(fd, PyBytes_AS_STRING(chunk), ML_CALLABLE_CHUNK);
            Py_END_ALLOW_THREADS
        } while (n < 0 && errno == EINTR && PyErr_CheckSignals() == 0);
        if (n < 0) {
            if (!PyErr_Occurred())
                PyErr_SetFromErrno(PyExc_OSError);
            Py_DECREF(chunk);
            return -1;
        }
        if (n == 0) {
            Py_DECREF(chunk);
            return 0;
        }
        if (_PyBytes_Resize(&chunk, n) < 0)
            return -1;
        r = PyObject_CallOneArg(callable, chunk);
        Py_DECREF(chunk);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
    }
}

static PyObject *
scanner_dump_callable(PyObject *self, PyObject *args)
{
    struct dump_args a = DUMP_ARGS_INIT;
    struct ml_walk_result res;
    PyObject *callable;
    int fd, rc;

    if (!PyArg_ParseTuple(args, "iOO:dump_callable", &a.mode, &callable,
                          &a.root))
        return NULL;
    if (dump_active)
        return raise_rc(ML_EBUSY, "dump");
    dump_active = 1;
    rc = fd = walk_to_tmp(&a, &res);
    if (fd >= 0) {
        rc = replay(fd, callable) < 0 ? ML_EPYTHON : 0;
        close(fd);
    }
    dump_active = 0;
    if (rc != 0)
        return raise_rc(rc, NULL);
    return walk_result(&res);
}

/* ------------------------------------------------------------------ */
/* The process beside its objects (procstats.h).                       */

static int
set_figure(PyObject *d, const char *key, int64_t v)
{
    PyObject *o = v < 0 ? Py_NewRef(Py_None) : PyLong_FromLongLong(v);
    int rc;

    if (o == NULL)
        return -1;
    rc = PyDict_SetItemString(d, key, o);
    Py_DECREF(o);
    return rc;
}

/* process_stats() -> {"rss", "rss_anon", "pymalloc": {...} or None} */
static PyObject *
scanner_process_stats(PyObject *self, PyObject *unused)
{
    struct ml_procstats ps;
    PyObject *d, *pm = NULL;
    int rc = ml__process_stats(&ps);

    if (rc < 0)
        return raise_rc(rc, "process_stats");
    if ((d = PyDict_New()) == NULL)
        return NULL;
    if (set_figure(d, "rss", ps.rss) < 0 || set_figure(d, "rss_anon", ps.rss_anon) < 0)
        goto fail;
    if (ps.pymalloc) {
        if ((pm = PyDict_New()) == NULL
                || set_figure(pm, "arenas", ps.arenas) < 0
                || set_figure(pm, "arena_bytes", ps.arena_bytes) < 0
                || set_figure(pm, "pools", ps.pools) < 0
                || set_figure(pm, "allocated_bytes", ps.allocated_bytes) < 0
                || set_figure(pm, "free_block_bytes", ps.free_block_bytes) < 0
                || set_figure(pm, "unused_pool_bytes", ps.unused_pool_bytes) < 0
                || PyDict_SetItemString(d, "pymalloc", pm) < 0)
            goto fail;
        Py_CLEAR(pm);
    } else if (PyDict_SetItemString(d, "pymalloc", Py_None) < 0) {
        goto fail;
    }
    return d;
fail:
    Py_XDECREF(pm);
    Py_DECREF(d);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* One snapshot on a meliae-monitord connection (docs/protocol.md).    */

/* stream_snapshot(sockfd, header, mode, values, timeout_ms)
 *
 * Walks the heap into an anonymous temporary file with the GIL held (the
 * application is paused only for the walk), then releases the GIL and
 * sends header, the object lines and the trailer on sockfd; walk and send
 * within timeout_ms (TimeoutError after; < 0: no deadline).  A walk that
 * outlasts it cannot be cut short, but then nothing is sent.  A failed
 * walk sends nothing; a failed send leaves the connection cut
 * mid-snapshot (OSError), which the caller must then close.  Sends use
 * MSG_NOSIGNAL. */
static PyObject *
scanner_stream_snapshot(PyObject *self, PyObject *args)
{
    struct dump_args a = DUMP_ARGS_INIT;
    struct ml_walk_result res;
    Py_buffer header;
    char trailer[128];
    int64_t deadline = 0;
    int sock, values, timeout_ms, fd, rc, tlen;

    if (!PyArg_ParseTuple(args, "iy*iii:stream_snapshot", &sock, &header,
                          &a.mode, &values, &timeout_ms))
        return NULL;
    if (a.mode != ML_WALK_ALL && a.mode != ML_WALK_GC) {
        PyErr_SetString(PyExc_ValueError, "mode must be WALK_ALL or WALK_GC");
        goto out_release;
    }
    if (values < ML_VALUES_NONE || values > ML_VALUES_FULL) {
        PyErr_SetString(PyExc_ValueError, "values must be a VALUES_* constant");
        goto out_release;
    }
    if (header.len == 0 || ((char *)header.buf)[header.len - 1] != '\n'
            || memchr(header.buf, '\n', (size_t)header.len - 1) != NULL) {
        PyErr_SetString(PyExc_ValueError, "header must be one line ending with \\n");
        goto out_release;
    }
    a.values = (enum ml_values)values;
    if (timeout_ms >= 0)        /* the walk counts too */
        deadline = ml_sink_now_ns() + (int64_t)timeout_ms * 1000000;
    if (dump_active) {
        raise_rc(ML_EBUSY, "dump");
        goto out_release;
    }
    dump_active = 1;
    fd = walk_to_tmp(&a, &res);
    dump_active = 0;
    if (fd < 0) {
        raise_rc(fd, NULL);
        goto out_release;
    }
    tlen = snprintf(trailer, sizeof(trailer),
                    "{\"end\": \"complete\", \"objects\": %llu, \"bytes\": %llu}\n",
                    (unsigned long long)res.nobj,
                    (unsigned long long)res.nbytes);
    Py_BEGIN_ALLOW_THREADS
    rc = ml_sink_send_framed(sock, header.buf, (size_t)header.len, fd,
                             trailer, (size_t)tlen, deadline);
    close(fd);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&header);
    if (rc != 0)
        return raise_rc(rc, NULL);
    return walk_result(&res);

out_release:
    PyBuffer_Release(&header);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Snapshots and dumps in a forked child (forkchild.h).                */

/* What the child needs, prepared by the parent before forking: the child
 * allocates nothing but what the walk itself does. */
struct fork_job {
    struct dump_args a;
    int fd;                     /* the socket, or the file */
    const char *head;           /* sent before the object lines, or NULL */
    size_t hlen;
    int64_t deadline_ns;        /* 0: none */
    char *buf;                  /* ML_DUMP_BUF bytes for the writer */
    const char *tmp, *path;     /* rename tmp over path when done */
};

/* Special-size callables are Python code, which the child never runs. */
static int
check_forkable(void)
{
    for (size_t i = 0; i < nspecials; i++)
        if (specials[i].callable != NULL) {
            PyErr_Format(ScanError,
                         "a special-size callable is registered for '%s': "
                         "it is Python code, which a forked snapshot does "
                         "not run; take the snapshot in-process",
                         specials[i].name);
            return -1;
        }
    return 0;
}

/* Runs in the child: header, object lines, trailer (stream) or the dump
 * and its rename (file).  No Python code; see forkchild.h. */
static int
fork_job_run(void *arg, struct ml_walk_result *res)
{
    struct fork_job *j = arg;
    struct ml_sink sink;
    struct ml_jsonw w;
    int rc;

    rc = ml_sink_open(&sink, j->fd, j->a.gzip);
    if (rc < 0)
        return rc;
    sink.deadline_ns = j->deadline_ns;
    if (j->head != NULL)
        rc = ml_write_all(&sink, j->head, j->hlen);
    if (rc == 0) {
        ml_jsonw_init(&w, j->buf, ML_DUMP_BUF, ml_sink_write, &sink);
        rc = ml__walk(j->a.mode, j->a.root, &w, j->a.values, specials,
                      nspecials, res);
    }
    if (rc == 0)
        rc = ml_sink_finish(&sink);
    if (rc == 0 && j->head != NULL) {
        char trailer[128];
        int tlen = snprintf(trailer, sizeof(trailer),
                            "{\"end\": \"complete\", \"objects\": %llu, "
                            "\"bytes\": %llu}\n",
                            (unsigned long long)res->nobj,
                            (unsigned long long)res->nbytes);

        rc = ml_write_all(&sink, trailer, (size_t)tlen);
    }
    ml_sink_close(&sink);
    if (rc == 0 && j->tmp != NULL) {
        if (close(j->fd) < 0)
            rc = -errno;
        else if (rename(j->tmp, j->path) < 0)
            rc = -errno;
    }
    return rc;
}

/* Forks the child for j.  Returns its pid and sets *status_fd, or -1
 * with an exception set. */
static pid_t
fork_job_start(struct fork_job *j, int die_with_parent, int *status_fd)
{
    pid_t pid;

    if (check_forkable() < 0)
        return -1;
    if (dump_active) {
        raise_rc(ML_EBUSY, "dump");
        return -1;
    }
    j->buf = malloc(ML_DUMP_BUF);
    if (j->buf == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    /* The GIL is held across fork(): the child's heap is consistent. */
    pid = ml_fork_run(j->fd, die_with_parent, fork_job_run, j, status_fd);
    free(j->buf);
    j->buf = NULL;
    if (pid < 0) {
        raise_rc((int)pid, "fork");
        return -1;
    }
    return pid;
}

/* The (pid, status_fd, ...) tuple for a started child; the child is
 * killed and reaped if it cannot be built. */
static PyObject *
fork_job_result(pid_t pid, int status_fd, PyObject *extra)
{
    PyObject *ret = extra != NULL
        ? Py_BuildValue("iiO", (int)pid, status_fd, extra)
        : Py_BuildValue("ii", (int)pid, status_fd);

    if (ret == NULL) {
        struct ml_walk_result res;
        int sig;

        ml_fork_wait(pid, status_fd, 1, &res, &sig);   /* past: kills */
    }
    return ret;
}

/* fork_stream_snapshot(sockfd, header, mode, values, timeout_ms)
 *     -> (pid, status_fd)
 *
 * stream_snapshot in a forked child: the child sends header, object lines
 * and trailer on sockfd within timeout_ms (< 0: no deadline) and exits;
 * the caller is paused only for fork().  wait_child(pid, status_fd, ...)
 * gives the outcome.  The child dies with the calling thread (Linux). */
static PyObject *
scanner_fork_stream_snapshot(PyObject *self, PyObject *args)
{
    struct fork_job j;
    Py_buffer header;
    PyObject *ret = NULL;
    pid_t pid;
    int values, timeout_ms, status_fd;

    memset(&j, 0, sizeof(j));
    j.a.values = ML_VALUES_NONE;
    if (!PyArg_ParseTuple(args, "iy*iii:fork_stream_snapshot", &j.fd,
                          &header, &j.a.mode, &values, &timeout_ms))
        return NULL;
    if (j.a.mode != ML_WALK_ALL && j.a.mode != ML_WALK_GC) {
        PyErr_SetString(PyExc_ValueError, "mode must be WALK_ALL or WALK_GC");
        goto out;
    }
    if (values < ML_VALUES_NONE || values > ML_VALUES_FULL) {
        PyErr_SetString(PyExc_ValueError, "values must be a VALUES_* constant");
        goto out;
    }
    if (header.len == 0 || ((char *)header.buf)[header.len - 1] != '\n'
            || memchr(header.buf, '\n', (size_t)header.len - 1) != NULL) {
        PyErr_SetString(PyExc_ValueError, "header must be one line ending with \\n");
        goto out;
    }
    j.a.values = (enum ml_values)values;
    j.head = header.buf;
    j.hlen = (size_t)header.len;
    if (timeout_ms >= 0)
        j.deadline_ns = ml_sink_now_ns() + (int64_t)timeout_ms * 1000000;
    pid = fork_job_start(&j, 1, &status_fd);
    if (pid > 0)
        ret = fork_job_result(pid, status_fd, NULL);
out:
    PyBuffer_Release(&header);
    return ret;
}

/* fork_dump_path(mode, path: bytes, root, gzip=False)
 *     -> (pid, status_fd, tmp: bytes or None)
 *
 * dump_path in a forked child, which also renames the temporary file over
 * path when the dump is complete.  After a failure the caller unlinks tmp
 * (the child may have been killed before it could). */
static PyObject *
scanner_fork_dump_path(PyObject *self, PyObject *args)
{
    struct fork_job j;
    PyObject *ret, *tmpobj = NULL;
    const char *path;
    char *tmp;
    pid_t pid;
    int fd, status_fd;

    memset(&j, 0, sizeof(j));
    j.a.values = ML_VALUES_TRUNCATED;
    if (!PyArg_ParseTuple(args, "iyO|p:fork_dump_path", &j.a.mode, &path,
                          &j.a.root, &j.a.gzip))
        return NULL;
    if (check_forkable() < 0)
        return NULL;
    fd = open_target(path, &tmp);
    if (fd < 0)
        return raise_rc(fd, path);
    if (tmp != NULL) {
        tmpobj = PyBytes_FromString(tmp);
        if (tmpobj == NULL)
            goto fail;
    }
    j.fd = fd;
    j.tmp = tmp;
    j.path = path;
    /* Not tied to this thread: a dump may outlive the caller. */
    pid = fork_job_start(&j, 0, &status_fd);
    if (pid < 0)
        goto fail;
    close(fd);
    ret = fork_job_result(pid, status_fd, tmpobj ? tmpobj : Py_None);
    if (ret == NULL && tmp != NULL)
        unlink(tmp);            /* the child was killed */
    free(tmp);
    Py_XDECREF(tmpobj);
    return ret;

fail:
    close(fd);
    if (tmp != NULL)
        unlink(tmp);
    free(tmp);
    Py_XDECREF(tmpobj);
    return NULL;
}

/* wait_child(pid, status_fd, timeout_ms) -> (objects, bytes)
 *
 * Waits without the GIL for a child of fork_stream_snapshot or
 * fork_dump_path, within timeout_ms (< 0: no limit; then it is killed:
 * TimeoutError), reaps it and closes status_fd.  A child that failed
 * raises its error; one that ended without a word (killed) raises
 * ChildProcessError. */
static PyObject *
scanner_wait_child(PyObject *self, PyObject *args)
{
    struct ml_walk_result res = { 0, 0 };
    int64_t deadline = 0;
    int pid, status_fd, timeout_ms, sig = 0, rc;

    if (!PyArg_ParseTuple(args, "iii:wait_child", &pid, &status_fd,
                          &timeout_ms))
        return NULL;
    if (timeout_ms >= 0)
        deadline = ml_sink_now_ns() + (int64_t)timeout_ms * 1000000;
    Py_BEGIN_ALLOW_THREADS
    rc = ml_fork_wait((pid_t)pid, status_fd, deadline, &res, &sig);
    Py_END_ALLOW_THREADS
    if (rc == -ECHILD) {
        if (sig != 0)
            PyErr_Format(PyExc_ChildProcessError,
                         "the snapshot's child process %d was killed by "
                         "signal %d", pid, sig);
        else
            PyErr_Format(PyExc_ChildProcessError,
                         "the snapshot's child process %d ended without "
                         "a report", pid);
        return NULL;
    }
    if (rc != 0)
        return raise_rc(rc, NULL);
    return walk_result(&res);
}

/* ------------------------------------------------------------------ */
/* Single objects.                                                     */

static PyObject *
scanner_size_of(PyObject *self, PyObject *obj)
{
    Py_ssize_t n = ml__object_size(obj, specials, nspecials);

    return n < 0 ? NULL : PyLong_FromSsize_t(n);
}

static int
append_ref(PyObject *ref, void *arg)
{
    return PyList_Append((PyObject *)arg, ref) < 0 ? ML_EPYTHON : 0;
}

static PyObject *
scanner_get_referents(PyObject *self, PyObject *obj)
{
    PyObject *list = PyList_New(0);
    int rc;

    if (list == NULL)
        return NULL;
    ml__kind_reset();
    rc = ml__visit_refs(obj, ml__kind(Py_TYPE(obj)), append_ref, list, 1);
    if (rc != 0) {
        Py_DECREF(list);
        return raise_rc(rc, "get_referents");
    }
    return list;
}

static PyObject *
scanner_get_recursive_size(PyObject *self, PyObject *obj)
{
    struct ml_walk_result res;
    int rc;

    if (dump_active)
        return raise_rc(ML_EBUSY, "get_recursive_size");
    dump_active = 1;
    rc = ml__walk(ML_WALK_CLOSURE, obj, NULL, ML_VALUES_NONE, specials,
                  nspecials, &res);
    dump_active = 0;
    if (rc != 0)
        return raise_rc(rc, "get_recursive_size");
    return walk_result(&res);
}

static void
special_clear(struct ml_special *s)
{
    free(s->name);
    Py_CLEAR(s->callable);
}

static PyObject *
scanner_add_special_size(PyObject *self, PyObject *args)
{
    const char *name;
    PyObject *s32, *s64, *v;
    struct ml_special sp = { NULL, 0, NULL };
    size_t i;

    if (!PyArg_ParseTuple(args, "sOO:add_special_size", &name, &s32, &s64))
        return NULL;
    /* A special-size callable runs between the passes of a dump, which
     * hold pointers into this table. */
    if (dump_active)
        return raise_rc(ML_EBUSY, "add_special_size");
    v = sizeof(void *) == 8 ? s64 : s32;
    for (i = 0; i < nspecials; i++)
        if (strcmp(specials[i].name, name) == 0)
            break;
    if (v == Py_None) {
        if (i < nspecials) {
            special_clear(&specials[i]);
            specials[i] = specials[--nspecials];
        }
        Py_RETURN_NONE;
    }
    if (PyLong_Check(v)) {
        sp.size = PyLong_AsSsize_t(v);
        if (sp.size == -1 && PyErr_Occurred())
            return NULL;
        if (sp.size < 0) {
            PyErr_SetString(PyExc_ValueError, "special size must be >= 0");
            return NULL;
        }
    } else if (PyCallable_Check(v)) {
        sp.callable = Py_NewRef(v);
    } else {
        PyErr_Format(PyExc_TypeError,
                     "special size must be an int, a callable or None, not %.100s",
                     Py_TYPE(v)->tp_name);
        return NULL;
    }
    if (i == nspecials) {
        struct ml_special *ns = realloc(specials, (nspecials + 1) * sizeof(*ns));

        if (ns == NULL) {
            Py_XDECREF(sp.callable);
            return PyErr_NoMemory();
        }
        specials = ns;
        sp.name = strdup(name);
        if (sp.name == NULL) {
            Py_XDECREF(sp.callable);
            return PyErr_NoMemory();
        }
        nspecials++;
    } else {
        sp.name = specials[i].name;
        specials[i].name = NULL;
        special_clear(&specials[i]);
    }
    specials[i] = sp;
    Py_RETURN_NONE;
}

/* The birth sites table (traces.h), between prepare_traces and
 * clear_traces.  Protected by the GIL. */
static struct ml_traces traces_table;

/* prepare_traces(resolver) -> number of distinct tracebacks: looks up
 * every object's birth site now, for the whole-heap dumps that follow
 * (in this process or a forked child) until clear_traces(). */
static PyObject *
scanner_prepare_traces(PyObject *self, PyObject *resolver)
{
    int rc;

    if (!PyCallable_Check(resolver)) {
        PyErr_SetString(PyExc_TypeError, "prepare_traces: a callable");
        return NULL;
    }
    if (dump_active) {
        PyErr_SetString(ScanError, "a dump is already in progress");
        return NULL;
    }
    ml__traces_ready = NULL;
    ml__traces_free(&traces_table);
    dump_active = 1;
    rc = ml__walk_traces(&traces_table, resolver);
    dump_active = 0;
    if (rc != 0)
        return raise_rc(rc, "looking up birth sites");
    ml__traces_ready = &traces_table;
    return PyLong_FromSsize_t(traces_table.tracebacks == NULL ? 0
                              : PyList_GET_SIZE(traces_table.tracebacks));
}

static PyObject *
scanner_clear_traces(PyObject *self, PyObject *unused)
{
    if (dump_active) {
        PyErr_SetString(ScanError, "a dump is in progress");
        return NULL;
    }
    ml__traces_ready = NULL;
    ml__traces_free(&traces_table);
    Py_RETURN_NONE;
}

/* _traces_path() -> "pointer", "tuple" or None: how the last
 * prepare_traces found the birth sites (traces.c); for the tests. */
static PyObject *
scanner_traces_path(PyObject *self, PyObject *unused)
{
    if (ml__traces_last_path == NULL)
        Py_RETURN_NONE;
    return PyUnicode_FromString(ml__traces_last_path);
}

/* _traces_tuple_only(flag): the tuple path on every version, for the
 * tests and the benchmark that compare both paths on one heap. */
static PyObject *
scanner_traces_tuple_only(PyObject *self, PyObject *flag)
{
    int on = PyObject_IsTrue(flag);

    if (on < 0)
        return NULL;
    ml__traces_tuple_only = on;
    Py_RETURN_NONE;
}

/* _traces_fake_mismatch(flag): the pointer path's check fails (traces.h),
 * for the test of the fallback. */
static PyObject *
scanner_traces_fake_mismatch(PyObject *self, PyObject *flag)
{
    int on = PyObject_IsTrue(flag);

    if (on < 0)
        return NULL;
    ml__traces_fake_mismatch = on;
    Py_RETURN_NONE;
}

static PyObject *
scanner_dumping(PyObject *self, PyObject *unused)
{
    return PyBool_FromLong(dump_active);
}

static PyMethodDef scanner_methods[] = {
    {"dump_path", scanner_dump_path, METH_VARARGS,
     "dump_path(mode, path: bytes, root, gzip=False, deadline_ms=-1) "
     "-> (objects, bytes)"},
    {"dump_fd", scanner_dump_fd, METH_VARARGS,
     "dump_fd(mode, fd, root, timeout_ms=-1, deadline_ms=-1) "
     "-> (objects, bytes)"},
    {"dump_callable", scanner_dump_callable, METH_VARARGS,
     "dump_callable(mode, callable, root) -> (objects, bytes)"},
    {"stream_snapshot", scanner_stream_snapshot, METH_VARARGS,
     "stream_snapshot(sockfd, header: bytes, mode, values, timeout_ms)"
     " -> (objects, bytes)"},
    {"fork_stream_snapshot", scanner_fork_stream_snapshot, METH_VARARGS,
     "fork_stream_snapshot(sockfd, header: bytes, mode, values, timeout_ms)"
     " -> (pid, status_fd)"},
    {"fork_dump_path", scanner_fork_dump_path, METH_VARARGS,
     "fork_dump_path(mode, path: bytes, root, gzip=False)"
     " -> (pid, status_fd, tmp)"},
    {"wait_child", scanner_wait_child, METH_VARARGS,
     "wait_child(pid, status_fd, timeout_ms) -> (objects, bytes)"},
    {"size_of", scanner_size_of, METH_O, "size_of(obj) -> int"},
    {"process_stats", scanner_process_stats, METH_NOARGS,
     "process_stats() -> dict: RSS, RssAnon and pymalloc's figures"},
    {"get_referents", scanner_get_referents, METH_O,
     "get_referents(obj) -> list"},
    {"get_recursive_size", scanner_get_recursive_size, METH_O,
     "get_recursive_size(obj) -> (count, total_bytes)"},
    {"add_special_size", scanner_add_special_size, METH_VARARGS,
     "add_special_size(type_name, size_of_32, size_of_64)"},
    {"prepare_traces", scanner_prepare_traces, METH_O,
     "prepare_traces(resolver) -> tracebacks: birth sites for the "
     "whole-heap dumps until clear_traces()"},
    {"clear_traces", scanner_clear_traces, METH_NOARGS,
     "clear_traces(): dumps write no birth sites"},
    {"_traces_path", scanner_traces_path, METH_NOARGS,
     "_traces_path() -> how the last prepare_traces looked up: "
     "'pointer', 'tuple' or None"},
    {"_traces_tuple_only", scanner_traces_tuple_only, METH_O,
     "_traces_tuple_only(flag): prepare_traces uses the tuple path"},
    {"_traces_fake_mismatch", scanner_traces_fake_mismatch, METH_O,
     "_traces_fake_mismatch(flag): the pointer path's check fails"},
    {"dumping", scanner_dumping, METH_NOARGS,
     "True while a dump is in progress"},
    {NULL, NULL, 0, NULL},
};

static int
scanner_exec(PyObject *m)
{
    ScanError = PyErr_NewExceptionWithDoc(
        "meliae._scanner.ScanError",
        "A dump could not be taken (for example, one is already running).",
        PyExc_RuntimeError, NULL);
    if (ScanError == NULL)
        return -1;
    if (PyModule_AddObject(m, "ScanError", Py_NewRef(ScanError)) < 0) {
        Py_DECREF(ScanError);
        return -1;
    }
    if (PyModule_AddIntConstant(m, "WALK_ALL", ML_WALK_ALL) < 0
            || PyModule_AddIntConstant(m, "WALK_GC", ML_WALK_GC) < 0
            || PyModule_AddIntConstant(m, "WALK_CLOSURE", ML_WALK_CLOSURE) < 0
            || PyModule_AddIntConstant(m, "WALK_PENDING", ML_WALK_PENDING) < 0
            || PyModule_AddIntConstant(m, "VALUES_NONE", ML_VALUES_NONE) < 0
            || PyModule_AddIntConstant(m, "VALUES_TRUNCATED",
                                       ML_VALUES_TRUNCATED) < 0
            || PyModule_AddIntConstant(m, "VALUES_FULL", ML_VALUES_FULL) < 0)
        return -1;
    return 0;
}

static PyModuleDef_Slot scanner_slots[] = {
    {Py_mod_exec, scanner_exec},
#if PY_VERSION_HEX >= 0x030C0000
    /* The walk state is static: one interpreter per process. */
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef scanner_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "meliae._scanner",
    .m_doc = "The C core of meliae.scanner; use that module instead.",
    .m_size = 0,
    .m_methods = scanner_methods,
    .m_slots = scanner_slots,
};

PyMODINIT_FUNC PyInit__scanner(void);

PyMODINIT_FUNC
PyInit__scanner(void)
{
    return PyModuleDef_Init(&scanner_module);
}
