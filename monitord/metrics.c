/* SPDX-License-Identifier: MIT
 *
 * metrics.c -- see metrics.h.
 *
 * The exposition is two parts, sent one after the other:
 *   - the daemon's counters and gauges, formatted for each request and
 *     each textfile write (twenty-odd lines);
 *   - the processes' families (struct mtext), rebuilt from the
 *     per-process fragments only after a process changed, and shared,
 *     reference-counted and immutable, by the answers being written and
 *     the textfile write (which reads it on the threadpool: the count
 *     itself is only touched on the loop).
 * A family's lines must be contiguous, so a fragment holds one block of
 * lines per family and the rebuild interleaves them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "prom.h"

#define HEAD_MAX 8192               /* request head, bytes */
#define HEAD_TIMEOUT_MS 5000        /* to send it */
#define WRITE_TIMEOUT_MS 30000      /* to take the answer */
#define LINGER_MS 2000              /* after our FIN, for the client's */
#define LISTEN_BACKLOG 64
#define ACCEPT_RETRY_MS 100

static const char content_type[] = "text/plain; version=0.0.4; charset=utf-8";

/* The per-process families, in the order they are sent.  F_CONNECTED's
 * lines are made on the loop (they change without a snapshot). */
enum {
    F_OBJECTS, F_BYTES, F_TIME, F_ID, F_CONNECTED, F_TOBJ, F_TBYTES,
    F_RSS, F_RSS_ANON, F_UNEXPLAINED,
    F_COUNT
};

static const struct family {
    const char *name, *help;
} fams[F_COUNT] = {
    { "meliae_process_objects",
      "Objects in the latest stored snapshot of the process." },
    { "meliae_process_bytes",
      "Bytes (sum of object sizes) in the latest stored snapshot of the "
      "process." },
    { "meliae_process_snapshot_timestamp_seconds",
      "When the daemon stored the process's latest snapshot, in seconds "
      "since the epoch." },
    { "meliae_process_snapshot_id",
      "Store id of the process's latest snapshot (meliae-cli show ID)." },
    { "meliae_process_connected",
      "1 while the process is connected; 0 once it disconnected, until "
      "its series go (--metrics-keep, 5 minutes by default)." },
    { "meliae_process_type_objects",
      "Objects of one type in the process's latest snapshot: the 50 types "
      "with the most bytes, and type=\"other\" for the rest." },
    { "meliae_process_type_bytes",
      "Bytes of one type in the process's latest snapshot: the 50 types "
      "with the most bytes, and type=\"other\" for the rest." },
    { "meliae_process_rss_bytes",
      "The process's resident set size when its latest snapshot was taken "
      "(a scanner that sends it)." },
    { "meliae_process_rss_anon_bytes",
      "The process's anonymous resident memory (RssAnon) at its latest "
      "snapshot." },
    { "meliae_process_unexplained_bytes",
      "RSS less the bytes of the Python objects at the latest snapshot: "
      "the memory outside Python objects (interpreter, C extensions, "
      "allocator slack); when it grows, the growth is not the objects'." },
};

static const char *const ereason_names[MD_ER_COUNT] = {
    "proto", "limit", "version", "store", "aborted", "disconnect", "idle",
    "denied",
};

struct md_mfrag {
    char *lbl;                  /* pid="..",program="..",label=".." */
    size_t lbl_len;
    struct md_sbuf text;        /* families' lines, F_CONNECTED's empty */
    size_t off[F_COUNT + 1];    /* family f: text.p[off[f] .. off[f+1]) */
};

/* An immutable text shared by the writes that send it. */
struct mtext {
    unsigned refs;              /* loop thread only */
    size_t len;
    char *data;
};

struct mproc {
    struct mproc *prev, *next;  /* oldest update first */
    struct md_mfrag *f;
    uint64_t conn;              /* the connection of its last snapshot */
    uint64_t gone_at;           /* uv_now() of the disconnect; 0: here */
};

struct tfwork {
    uv_work_t work;
    struct md_metrics *m;
    struct md_sbuf daemon;
    struct mtext *procs;        /* a reference; NULL: no processes */
    int rc;                     /* -errno */
    char err[256];
};

struct hconn {
    uv_tcp_t tcp;               /* first: handle* <-> hconn* */
    uv_timer_t timer;
    struct md_metrics *m;
    struct hconn *prev, *next;
    int nhandles;               /* initialised, not yet closed back */
    int closing;
    int answered;               /* the answer is written or being so */
    int shut;                   /* our FIN is sent */
    int eof;                    /* theirs came */
    uv_write_t wr;
    uv_shutdown_t sh;
    struct md_sbuf head;        /* status line, headers, daemon part */
    struct mtext *body;         /* processes part (a reference) */
    size_t len;
    char buf[HEAD_MAX];
};

struct md_metrics {
    uv_loop_t *loop;
    struct st_store *store;
    unsigned (*count)(void *);
    void *count_arg;
    uint64_t keep_ms;           /* a gone process's series stay this long */

    /* Counters, since the start. */
    uint64_t snapshots, objects, bytes, queries;
    uint64_t errors[MD_ER_COUNT];

    /* Processes. */
    struct mproc *head, *tail;
    unsigned nprocs;
    struct mtext *procs;        /* cached; NULL: to rebuild */

    /* Textfile. */
    char *textfile, *tmpfile, *dir;
    int tf_running, tf_again;
    int tf_errno;               /* of the last failure logged; 0: fine */

    /* HTTP. */
    int listening;
    uv_tcp_t listener;
    uv_timer_t retry;
    int retry_init;
    struct hconn *conns;
    unsigned nconns;
    uint64_t served;

    int closed;
};

/* ---- fragments (writer thread) ---- */

struct trow {
    const char *name;
    size_t len;
    uint64_t count, bytes;
};

struct tcoll {
    struct trow *v;
    size_t n, cap;
    int oom;
};

static int
collect_row(void *ctx, const struct st_typesum *t)
{
    struct tcoll *tc = ctx;

    if (tc->n == tc->cap) {
        size_t ncap = tc->cap ? tc->cap * 2 : 256;
        struct trow *nv = realloc(tc->v, ncap * sizeof(*nv));

        if (nv == NULL) {
            tc->oom = 1;
            return 1;
        }
        tc->v = nv;
        tc->cap = ncap;
    }
    tc->v[tc->n].name = t->name;
    tc->v[tc->n].len = t->name_len;
    tc->v[tc->n].count = t->count;
    tc->v[tc->n].bytes = t->bytes;
    tc->n++;
    return 0;
}

/* Most bytes first; then most objects; then by name, so that the
 * choice of the top types is stable. */
static int
by_bytes(const void *a, const void *b)
{
    const struct trow *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c;

    if (x->bytes != y->bytes)
        return x->bytes > y->bytes ? -1 : 1;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    c = memcmp(x->name, y->name, n);
    return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

void
md_mfrag_free(struct md_mfrag *f)
{
    if (f == NULL)
        return;
    free(f->lbl);
    md_sbuf_free(&f->text);
    free(f);
}

static void
type_lines(struct md_sbuf *b, const char *family, const struct md_mfrag *f,
           const struct md_sbuf *names, const size_t *noff, size_t nkept,
           const uint64_t *vals, uint64_t other)
{
    for (size_t i = 0; i < nkept; i++)
        md_sbuf_printf(b, "%s{%s,type=\"%.*s\"} %" PRIu64 "\n", family,
                       f->lbl, (int)(noff[i + 1] - noff[i]),
                       names->p + noff[i], vals[i]);
    md_sbuf_printf(b, "%s{%s,type=\"other\"} %" PRIu64 "\n", family, f->lbl,
                   other);
}

int
md_metrics_prepare(struct st_store *s, uint64_t id,
                   const struct st_source *src, struct md_mfrag **out)
{
    size_t noff[MD_METRICS_TOP_TYPES + 1], nkept = 0;
    uint64_t kc[MD_METRICS_TOP_TYPES], kb[MD_METRICS_TOP_TYPES];
    uint64_t other_c = 0, other_b = 0;
    struct md_sbuf lbl = { 0 }, names = { 0 };
    struct tcoll tc = { 0 };
    struct md_mfrag *f = NULL;
    struct st_snapinfo si;
    struct st_read *r;
    struct md_sbuf *t;
    int rc;

    *out = NULL;
    rc = st_read_begin(s, &r);
    if (rc < 0)
        return rc;
    rc = st_snap_get(r, id, &si);
    if (rc == 0)
        rc = st_summary(r, id, collect_row, &tc);
    if (rc == 0 && tc.oom)
        rc = -ENOMEM;
    if (rc != 0) {
        rc = rc > 0 ? -ENOMEM : rc;
        goto out_end;
    }
    f = calloc(1, sizeof(*f));
    if (f == NULL) {
        rc = -ENOMEM;
        goto out_end;
    }
    md_sbuf_printf(&lbl, "pid=\"%d\",program=\"", (int)src->tpid);
    if (src->program != NULL)
        md_prom_label_value(&lbl, src->program, strlen(src->program));
    md_sbuf_puts(&lbl, "\",label=\"");
    if (src->label != NULL)
        md_prom_label_value(&lbl, src->label, strlen(src->label));
    md_sbuf_puts(&lbl, "\"");

    /* The top types by bytes, their names escaped into names.  A type
     * literally named "other", or two names that escape alike (bytes that
     * are not UTF-8), would make two series of one label set: those go
     * into type="other". */
    if (tc.n > 0)
        qsort(tc.v, tc.n, sizeof(*tc.v), by_bytes);
    noff[0] = 0;
    for (size_t i = 0; i < tc.n; i++) {
        size_t start = names.len, len;
        int keep = nkept < MD_METRICS_TOP_TYPES;

        if (keep) {
            md_prom_label_value(&names, tc.v[i].name, tc.v[i].len);
            len = names.len - start;
            if (names.oom || (len == 5 && memcmp(names.p + start, "other",
                                                  5) == 0))
                keep = 0;
            for (size_t k = 0; keep && k < nkept; k++)
                if (noff[k + 1] - noff[k] == len
                    && memcmp(names.p + noff[k], names.p + start, len) == 0)
                    keep = 0;
        }
        if (!keep) {
            names.len = start;
            other_c += tc.v[i].count;
            other_b += tc.v[i].bytes;
            continue;
        }
        kc[nkept] = tc.v[i].count;
        kb[nkept] = tc.v[i].bytes;
        noff[++nkept] = names.len;
    }
    if (lbl.oom || names.oom) {
        rc = -ENOMEM;
        goto out_end;
    }
    f->lbl = lbl.p;
    f->lbl_len = lbl.len;
    lbl.p = NULL;

    t = &f->text;
    f->off[F_OBJECTS] = t->len;
    md_sbuf_printf(t, "%s{%s} %" PRIu64 "\n", fams[F_OBJECTS].name, f->lbl,
                   si.objects);
    f->off[F_BYTES] = t->len;
    md_sbuf_printf(t, "%s{%s} %" PRIu64 "\n", fams[F_BYTES].name, f->lbl,
                   si.bytes);
    f->off[F_TIME] = t->len;
    md_sbuf_printf(t, "%s{%s} %" PRIu64 ".%03u\n", fams[F_TIME].name, f->lbl,
                   si.time_ns / 1000000000u,
                   (unsigned)(si.time_ns % 1000000000u / 1000000u));
    f->off[F_ID] = t->len;
    md_sbuf_printf(t, "%s{%s} %" PRIu64 "\n", fams[F_ID].name, f->lbl, id);
    f->off[F_CONNECTED] = t->len;
    f->off[F_TOBJ] = t->len;
    type_lines(t, fams[F_TOBJ].name, f, &names, noff, nkept, kc, other_c);
    f->off[F_TBYTES] = t->len;
    type_lines(t, fams[F_TBYTES].name, f, &names, noff, nkept, kb, other_b);
    f->off[F_RSS] = t->len;
    if (si.procfig.has && si.procfig.rss >= 0)
        md_sbuf_printf(t, "%s{%s} %" PRId64 "\n", fams[F_RSS].name, f->lbl,
                       si.procfig.rss);
    f->off[F_RSS_ANON] = t->len;
    if (si.procfig.has && si.procfig.rss_anon >= 0)
        md_sbuf_printf(t, "%s{%s} %" PRId64 "\n", fams[F_RSS_ANON].name,
                       f->lbl, si.procfig.rss_anon);
    f->off[F_UNEXPLAINED] = t->len;
    if (si.procfig.has && si.procfig.rss >= 0)
        md_sbuf_printf(t, "%s{%s} %" PRId64 "\n", fams[F_UNEXPLAINED].name,
                       f->lbl, si.procfig.rss - (int64_t)si.bytes);
    f->off[F_COUNT] = t->len;
    if (t->oom) {
        rc = -ENOMEM;
        goto out_end;
    }
    *out = f;
    f = NULL;
    rc = 0;

out_end:
    st_read_end(r);             /* the names pointed into the map */
    md_mfrag_free(f);
    md_sbuf_free(&lbl);
    md_sbuf_free(&names);
    free(tc.v);
    return rc;
}

/* ---- the text ---- */

static void
family_head(struct md_sbuf *b, const char *name, const char *type,
            const char *help)
{
    md_sbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The daemon-wide part. */
static void
render_daemon(struct md_metrics *m, struct md_sbuf *b)
{
    family_head(b, "meliae_ingest_snapshots_total", "counter",
                "Snapshots committed to the store since the daemon started.");
    md_sbuf_printf(b, "meliae_ingest_snapshots_total %" PRIu64 "\n",
                   m->snapshots);
    family_head(b, "meliae_ingest_objects_total", "counter",
                "Objects in the snapshots committed since the daemon "
                "started.");
    md_sbuf_printf(b, "meliae_ingest_objects_total %" PRIu64 "\n",
                   m->objects);
    family_head(b, "meliae_ingest_bytes_received_total", "counter",
                "Bytes read from streaming clients since the daemon started.");
    md_sbuf_printf(b, "meliae_ingest_bytes_received_total %" PRIu64 "\n",
                   m->bytes);
    family_head(b, "meliae_ingest_errors_total", "counter",
                "Snapshots or connections refused, by reason.");
    for (int i = 0; i < MD_ER_COUNT; i++)
        md_sbuf_printf(b, "meliae_ingest_errors_total{reason=\"%s\"} %"
                       PRIu64 "\n", ereason_names[i], m->errors[i]);
    family_head(b, "meliae_connections", "gauge",
                "Client connections open, queries excepted.");
    md_sbuf_printf(b, "meliae_connections %u\n",
                   m->count != NULL ? m->count(m->count_arg) : 0);
    family_head(b, "meliae_store_size_bytes", "gauge",
                "Bytes the store's data file uses.");
    md_sbuf_printf(b, "meliae_store_size_bytes %" PRIu64 "\n",
                   st_size(m->store));
    family_head(b, "meliae_queries_total", "counter",
                "Queries (meliae-cli through the daemon) received since the "
                "daemon started.");
    md_sbuf_printf(b, "meliae_queries_total %" PRIu64 "\n", m->queries);
}

static void
mtext_unref(struct mtext *t)
{
    if (t == NULL || --t->refs > 0)
        return;
    free(t->data);
    free(t);
}

/* The processes' part, shared: a new reference; NULL when there are no
 * processes or no memory (*oom says which). */
static struct mtext *
procs_text(struct md_metrics *m, int *oom)
{
    struct md_sbuf b = { 0 };
    struct mtext *t;

    *oom = 0;
    if (m->procs != NULL) {
        m->procs->refs++;
        return m->procs;
    }
    if (m->nprocs == 0)
        return NULL;
    for (int fi = 0; fi < F_COUNT; fi++) {
        family_head(&b, fams[fi].name, "gauge", fams[fi].help);
        for (struct mproc *p = m->head; p != NULL; p = p->next) {
            const struct md_mfrag *f = p->f;

            if (fi == F_CONNECTED)
                md_sbuf_printf(&b, "%s{%s} %d\n", fams[fi].name, f->lbl,
                               p->gone_at == 0);
            else
                md_sbuf_add(&b, f->text.p + f->off[fi],
                            f->off[fi + 1] - f->off[fi]);
        }
    }
    t = calloc(1, sizeof(*t));
    if (b.oom || t == NULL) {
        free(t);
        md_sbuf_free(&b);
        *oom = 1;
        return NULL;
    }
    t->data = b.p;
    t->len = b.len;
    t->refs = 2;                /* the cache's and the caller's */
    m->procs = t;
    return t;
}

static void
procs_changed(struct md_metrics *m)
{
    mtext_unref(m->procs);
    m->procs = NULL;
}

/* ---- the textfile ---- */

/* Writes iov to path through a new file made from the template tmpl
 * (same directory, "XXXXXX" at the end), fsync, rename, fsync of dir: a
 * reader sees the old file or the new one, never a part.  The new file
 * is mkostemp's (O_EXCL, a random name): whoever else may write to dir
 * cannot plant a link at a name we would open and truncate.
 * 0 or -errno with a reason in err.  Any thread. */
static int
write_textfile(const char *path, const char *tmpl, const char *dir,
               const struct iovec *iov, int niov, char *err, size_t errlen)
{
    const char *op = "open";
    char tmp[PATH_MAX];
    int fd, dfd, e;

    snprintf(tmp, sizeof(tmp), "%s", tmpl);    /* < PATH_MAX: md_metrics_new */
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        goto out_err;
    /* node_exporter runs as another user: readable whatever our umask. */
    op = "fchmod";
    if (fchmod(fd, 0644) < 0)
        goto out_close;
    op = "write";
    for (int i = 0; i < niov; i++) {
        const char *p = iov[i].iov_base;
        size_t left = iov[i].iov_len;

        while (left > 0) {
            ssize_t w = write(fd, p, left);

            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                goto out_close;
            p += w;
            left -= (size_t)w;
        }
    }
    op = "fsync";
    if (fsync(fd) < 0)
        goto out_close;
    op = "close";
    if (close(fd) < 0) {
        fd = -1;
        goto out_close;
    }
    op = "rename";
    if (rename(tmp, path) < 0) {
        e = errno;
        (void)unlink(tmp);
        errno = e;
        goto out_err;
    }
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);       /* the rename is done; this makes it last */
        close(dfd);
    }
    return 0;

out_close:
    e = errno;
    if (fd >= 0)
        close(fd);
    (void)unlink(tmp);
    errno = e;
out_err:
    e = errno;
    snprintf(err, errlen, "%s %s: %s", op,
             strcmp(op, "rename") == 0 ? path : tmp, strerror(e));
    return -e;
}

static void
on_textfile_work(uv_work_t *w)
{
    struct tfwork *tf = (struct tfwork *)w;
    struct md_metrics *m = tf->m;
    struct iovec iov[2];
    int n = 0;

    iov[n].iov_base = tf->daemon.p;
    iov[n++].iov_len = tf->daemon.len;
    if (tf->procs != NULL) {
        iov[n].iov_base = tf->procs->data;
        iov[n++].iov_len = tf->procs->len;
    }
    tf->rc = write_textfile(m->textfile, m->tmpfile, m->dir, iov, n,
                            tf->err, sizeof(tf->err));
}

static void schedule_textfile(struct md_metrics *m);

static void
on_textfile_done(uv_work_t *w, int status)
{
    struct tfwork *tf = (struct tfwork *)w;
    struct md_metrics *m = tf->m;
    char q[300];

    if (status < 0 && tf->rc == 0) {
        tf->rc = status;
        snprintf(tf->err, sizeof(tf->err), "%s", uv_strerror(status));
    }
    /* One line when it starts failing (or fails otherwise), one when it
     * works again: a full disk must not flood the log. */
    if (tf->rc < 0 && tf->rc != m->tf_errno)
        md_warn("metrics_textfile_failed", " path=%s error=%s",
                m->textfile, md_logq(tf->err, q, sizeof(q)));
    else if (tf->rc == 0 && m->tf_errno != 0)
        md_info("metrics_textfile_written", " path=%s", m->textfile);
    m->tf_errno = tf->rc;
    mtext_unref(tf->procs);
    md_sbuf_free(&tf->daemon);
    free(tf);
    m->tf_running = 0;
    if (m->tf_again) {
        m->tf_again = 0;
        schedule_textfile(m);
    }
}

static void
schedule_textfile(struct md_metrics *m)
{
    struct tfwork *tf;
    int oom, rc;

    /* Not stopped by md_metrics_close: the commits finishing during a
     * shutdown are written too (uv_run waits for the work). */
    if (m->textfile == NULL)
        return;
    if (m->tf_running) {
        m->tf_again = 1;        /* one more write once this one is done */
        return;
    }
    tf = calloc(1, sizeof(*tf));
    if (tf == NULL)
        return;                 /* the next change tries again */
    tf->m = m;
    render_daemon(m, &tf->daemon);
    tf->procs = procs_text(m, &oom);
    if (tf->daemon.oom || oom) {
        mtext_unref(tf->procs);
        md_sbuf_free(&tf->daemon);
        free(tf);
        return;
    }
    rc = uv_queue_work(m->loop, &tf->work, on_textfile_work,
                       on_textfile_done);
    if (rc < 0) {
        mtext_unref(tf->procs);
        md_sbuf_free(&tf->daemon);
        free(tf);
        return;
    }
    m->tf_running = 1;
}

/* ---- HTTP ---- */

static void
on_hconn_closed(uv_handle_t *h)
{
    struct hconn *hc = h->data;

    if (--hc->nhandles > 0)
        return;
    mtext_unref(hc->body);
    md_sbuf_free(&hc->head);
    free(hc);
}

static void
hconn_close(struct hconn *hc)
{
    struct md_metrics *m = hc->m;

    if (hc->closing)
        return;
    hc->closing = 1;
    if (hc->prev != NULL)
        hc->prev->next = hc->next;
    else if (m->conns == hc)
        m->conns = hc->next;
    if (hc->next != NULL)
        hc->next->prev = hc->prev;
    m->nconns--;
    uv_close((uv_handle_t *)&hc->tcp, on_hconn_closed);
    uv_close((uv_handle_t *)&hc->timer, on_hconn_closed);
}

static void
on_hconn_timer(uv_timer_t *t)
{
    struct hconn *hc = t->data;

    if (!hc->answered)
        md_debug("metrics_request", " status=timeout bytes=%zu", hc->len);
    hconn_close(hc);
}

static void
on_hconn_shutdown(uv_shutdown_t *req, int status)
{
    struct hconn *hc = req->data;

    if (status < 0 || hc->eof) {
        hconn_close(hc);
        return;
    }
    /* Closing now with the client's bytes unread would reset the
     * connection, and may cut the answer it has not read yet: wait a
     * little for its end of file. */
    hc->shut = 1;
    (void)uv_timer_start(&hc->timer, on_hconn_timer, LINGER_MS, 0);
}

static void
on_hconn_written(uv_write_t *req, int status)
{
    struct hconn *hc = req->data;
    int rc;

    if (status < 0 || hc->closing) {
        hconn_close(hc);
        return;
    }
    hc->sh.data = hc;
    rc = uv_shutdown(&hc->sh, (uv_stream_t *)&hc->tcp, on_hconn_shutdown);
    if (rc < 0)
        hconn_close(hc);
}

static const char *
status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Internal Server Error";
    }
}

/* Sends the answer for status (head: HEAD, no body), then closes. */
static void
hconn_answer(struct hconn *hc, int status, int head)
{
    struct md_metrics *m = hc->m;
    struct md_sbuf daemon = { 0 };
    uv_buf_t b[2];
    int nb = 1, oom = 0, rc;

    hc->answered = 1;
    if (status == 200) {
        render_daemon(m, &daemon);
        hc->body = procs_text(m, &oom);
        if (daemon.oom || oom) {
            mtext_unref(hc->body);
            hc->body = NULL;
            status = 500;
        }
    }
    md_sbuf_printf(&hc->head, "HTTP/1.1 %d %s\r\n", status,
                   status_text(status));
    if (status == 200) {
        md_sbuf_printf(&hc->head, "Content-Type: %s\r\nContent-Length: %zu"
                       "\r\n", content_type, daemon.len
                       + (hc->body != NULL ? hc->body->len : 0));
    } else {
        md_sbuf_printf(&hc->head, "Content-Type: text/plain; charset=utf-8"
                       "\r\nContent-Length: %zu\r\n",
                       strlen(status_text(status)) + 1);
        if (status == 405)
            md_sbuf_puts(&hc->head, "Allow: GET, HEAD\r\n");
    }
    md_sbuf_puts(&hc->head, "Cache-Control: no-store\r\n"
                 "Connection: close\r\n\r\n");
    if (!head) {
        if (status == 200)
            md_sbuf_add(&hc->head, daemon.p, daemon.len);
        else
            md_sbuf_printf(&hc->head, "%s\n", status_text(status));
    }
    md_sbuf_free(&daemon);
    if (hc->head.oom) {
        hconn_close(hc);
        return;
    }
    b[0] = uv_buf_init(hc->head.p, (unsigned)hc->head.len);
    if (!head && hc->body != NULL) {
        b[1].base = hc->body->data;     /* uv_buf_init's length: 32 bits */
        b[1].len = hc->body->len;
        nb = 2;
    }
    md_debug("metrics_request", " status=%d head=%d bytes=%zu", status, head,
             hc->head.len + (nb == 2 ? hc->body->len : 0));
    if (status == 200)
        m->served++;
    hc->wr.data = hc;
    rc = uv_write(&hc->wr, (uv_stream_t *)&hc->tcp, b, (unsigned)nb,
                  on_hconn_written);
    if (rc < 0) {
        hconn_close(hc);
        return;
    }
    (void)uv_timer_start(&hc->timer, on_hconn_timer, WRITE_TIMEOUT_MS, 0);
}

static void
on_hconn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct hconn *hc = h->data;

    (void)suggested;
    if (hc->answered) {         /* what follows the head is dropped */
        buf->base = hc->buf;
        buf->len = sizeof(hc->buf);
        return;
    }
    /* md_http_route answers 431 once the buffer is full: never empty. */
    buf->base = hc->buf + hc->len;
    buf->len = sizeof(hc->buf) - hc->len;
}

static void
on_hconn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct hconn *hc = s->data;
    int status, head;

    (void)buf;
    if (hc->closing)
        return;
    if (nread < 0) {
        hc->eof = 1;
        (void)uv_read_stop(s);
        /* Gone before its answer, or after our FIN: done.  Else the
         * answer is still being written (a half-close is no reason to
         * drop it). */
        if (!hc->answered || hc->shut || nread != UV_EOF)
            hconn_close(hc);
        return;
    }
    if (nread == 0 || hc->answered)
        return;
    hc->len += (size_t)nread;
    status = md_http_route(hc->buf, hc->len, sizeof(hc->buf), &head);
    if (status != 0)
        hconn_answer(hc, status, head);
}

static void
reject_busy(struct hconn *hc)
{
    static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Length: 20\r\n"
        "Retry-After: 1\r\nConnection: close\r\n\r\nService Unavailable\n";
    uv_buf_t b = uv_buf_init((char *)busy, sizeof(busy) - 1);

    /* A fresh connection's socket buffer takes it whole, or we give up:
     * no state is kept for a client beyond the limit. */
    (void)uv_try_write((uv_stream_t *)&hc->tcp, &b, 1);
    md_debug("metrics_request", " status=503 reason=%s", "too_many");
    hconn_close(hc);
}

static void on_http_connection(uv_stream_t *server, int status);

static void
on_accept_retry(uv_timer_t *t)
{
    struct md_metrics *m = t->data;

    if (m->listening)
        on_http_connection((uv_stream_t *)&m->listener, 0);
}

static void
on_http_connection(uv_stream_t *server, int status)
{
    struct md_metrics *m = server->data;
    struct hconn *hc;
    int rc;

    if (status < 0) {
        md_debug("metrics_accept_failed", " error=%s", uv_strerror(status));
        return;
    }
    hc = calloc(1, sizeof(*hc));
    if (hc == NULL || uv_tcp_init(m->loop, &hc->tcp) < 0) {
        /* libuv stops polling the listener until uv_accept: retry. */
        free(hc);
        (void)uv_timer_start(&m->retry, on_accept_retry, ACCEPT_RETRY_MS, 0);
        return;
    }
    hc->m = m;
    hc->tcp.data = hc;
    hc->timer.data = hc;
    hc->nhandles = 1;
    (void)uv_timer_init(m->loop, &hc->timer);   /* cannot fail */
    hc->nhandles = 2;
    hc->next = m->conns;
    if (m->conns != NULL)
        m->conns->prev = hc;
    m->conns = hc;
    m->nconns++;
    rc = uv_accept(server, (uv_stream_t *)&hc->tcp);
    if (rc < 0) {
        hconn_close(hc);
        return;
    }
    if (m->nconns > MD_METRICS_MAX_HTTP) {
        reject_busy(hc);
        return;
    }
    rc = uv_read_start((uv_stream_t *)&hc->tcp, on_hconn_alloc,
                       on_hconn_read);
    if (rc == 0)
        rc = uv_timer_start(&hc->timer, on_hconn_timer, HEAD_TIMEOUT_MS, 0);
    if (rc < 0)
        hconn_close(hc);
}

/* Binds and listens with plain system calls (a failure leaves no handle
 * behind for the loop to close), then hands the socket to libuv. */
static int
http_listen(struct md_metrics *m, const struct sockaddr_storage *addr,
            char *err, size_t errlen)
{
    socklen_t len = addr->ss_family == AF_INET
                    ? sizeof(struct sockaddr_in)
                    : sizeof(struct sockaddr_in6);
    struct sockaddr_storage bound;
    char a[80];
    int fd, one = 1, rc;

    md_prom_addr_str((const struct sockaddr *)addr, a, sizeof(a));
    fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                0);
    if (fd < 0) {
        snprintf(err, errlen, "--metrics-listen %s: socket: %s", a,
                 strerror(errno));
        return -1;
    }
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)addr, len) < 0
        || listen(fd, LISTEN_BACKLOG) < 0) {
        snprintf(err, errlen, "--metrics-listen %s: %s", a, strerror(errno));
        close(fd);
        return -1;
    }
    len = sizeof(bound);
    if (getsockname(fd, (struct sockaddr *)&bound, &len) == 0)
        md_prom_addr_str((const struct sockaddr *)&bound, a, sizeof(a));

    (void)uv_tcp_init(m->loop, &m->listener);   /* no flags: cannot fail */
    (void)uv_timer_init(m->loop, &m->retry);
    m->listener.data = m;
    m->retry.data = m;
    m->retry_init = 1;
    m->listening = 1;
    rc = uv_tcp_open(&m->listener, fd);
    if (rc < 0) {
        close(fd);              /* not the handle's */
        snprintf(err, errlen, "--metrics-listen %s: %s", a, uv_strerror(rc));
        return -1;
    }
    rc = uv_listen((uv_stream_t *)&m->listener, LISTEN_BACKLOG,
                   on_http_connection);
    if (rc < 0) {               /* fd is the handle's now */
        snprintf(err, errlen, "--metrics-listen %s: %s", a, uv_strerror(rc));
        return -1;
    }
    md_info("metrics_listening", " address=%s", a);
    return 0;
}

/* ---- life ---- */

static char *
join_dir(const char *dir, const char *base, int hidden_tmp)
{
    char *s;

    if (!hidden_tmp)
        return strdup(dir);
    if (asprintf(&s, "%s/.%s.XXXXXX", dir, base) < 0)
        return NULL;
    return s;
}

int
md_metrics_new(struct md_metrics **out, uv_loop_t *loop,
               struct st_store *store, const struct md_metrics_config *cfg,
               char *err, size_t errlen)
{
    struct md_metrics *m;

    *out = NULL;
    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    m->loop = loop;
    m->store = store;
    m->keep_ms = cfg->keep_ms != 0 ? cfg->keep_ms : MD_METRICS_GONE_KEEP_MS;
    if (cfg->textfile != NULL) {
        const char *slash = strrchr(cfg->textfile, '/');
        struct md_sbuf daemon = { 0 };
        struct iovec iov;
        char *dir;
        int rc;

        /* cfg->textfile is absolute (main.c): slash is not NULL. */
        dir = slash == cfg->textfile ? strdup("/")
              : strndup(cfg->textfile, (size_t)(slash - cfg->textfile));
        m->textfile = strdup(cfg->textfile);
        m->dir = dir;
        m->tmpfile = dir != NULL ? join_dir(slash == cfg->textfile ? "" : dir,
                                            slash + 1, 1) : NULL;
        if (m->textfile == NULL || m->dir == NULL || m->tmpfile == NULL
            || slash[1] == '\0' || strlen(m->tmpfile) >= PATH_MAX) {
            snprintf(err, errlen, "%s", slash[1] == '\0'
                     ? "--metrics-textfile: a file name is needed"
                     : m->tmpfile != NULL && strlen(m->tmpfile) >= PATH_MAX
                     ? "--metrics-textfile: the path is too long"
                     : "out of memory");
            goto out_free;
        }
        /* The first file now, before the loop runs: a directory that is
         * not there or not ours to write is a start-up error. */
        render_daemon(m, &daemon);
        if (daemon.oom) {
            snprintf(err, errlen, "out of memory");
            goto out_free;
        }
        iov.iov_base = daemon.p;
        iov.iov_len = daemon.len;
        rc = write_textfile(m->textfile, m->tmpfile, m->dir, &iov, 1, err,
                            errlen);
        md_sbuf_free(&daemon);
        if (rc < 0) {
            char e[256];

            snprintf(e, sizeof(e), "%s", err);
            snprintf(err, errlen, "--metrics-textfile: %s", e);
            goto out_free;
        }
        md_info("metrics_textfile", " path=%s", m->textfile);
    }
    if (cfg->listen && http_listen(m, &cfg->listen_addr, err, errlen) < 0) {
        if (m->listening) {
            /* The handles are initialised: the loop must close them.  The
             * caller exits; say so rather than free under libuv. */
            m->closed = 1;
            *out = m;
            return -1;
        }
        goto out_free;
    }
    *out = m;
    return 0;

out_free:
    free(m->textfile);
    free(m->tmpfile);
    free(m->dir);
    free(m);
    return -1;
}

void
md_metrics_set_source(struct md_metrics *m, unsigned (*count)(void *),
                      void *arg)
{
    if (m == NULL)
        return;
    m->count = count;
    m->count_arg = arg;
}

void
md_metrics_close(struct md_metrics *m)
{
    if (m == NULL || m->closed)
        return;
    m->closed = 1;
    if (m->listening) {
        m->listening = 0;
        uv_close((uv_handle_t *)&m->listener, NULL);
    }
    if (m->retry_init) {
        m->retry_init = 0;
        uv_close((uv_handle_t *)&m->retry, NULL);
    }
    while (m->conns != NULL)
        hconn_close(m->conns);
}

void
md_metrics_free(struct md_metrics *m)
{
    struct mproc *p, *next;

    if (m == NULL)
        return;
    for (p = m->head; p != NULL; p = next) {
        next = p->next;
        md_mfrag_free(p->f);
        free(p);
    }
    mtext_unref(m->procs);
    free(m->textfile);
    free(m->tmpfile);
    free(m->dir);
    free(m);
}

/* ---- events ---- */

void
md_metrics_bytes_received(struct md_metrics *m, uint64_t n)
{
    if (m != NULL)
        m->bytes += n;
}

void
md_metrics_error(struct md_metrics *m, enum md_ereason r)
{
    if (m != NULL && r < MD_ER_COUNT)
        m->errors[r]++;
}

void
md_metrics_query(struct md_metrics *m)
{
    if (m != NULL)
        m->queries++;
}

static void
proc_unlink(struct md_metrics *m, struct mproc *p)
{
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        m->head = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    else
        m->tail = p->prev;
    p->prev = p->next = NULL;
}

static void
proc_append(struct md_metrics *m, struct mproc *p)
{
    p->prev = m->tail;
    p->next = NULL;
    if (m->tail != NULL)
        m->tail->next = p;
    else
        m->head = p;
    m->tail = p;
}

void
md_metrics_snapshot(struct md_metrics *m, uint64_t conn, int connected,
                    uint64_t objects, struct md_mfrag *f)
{
    struct mproc *p;

    if (m == NULL) {
        md_mfrag_free(f);
        return;
    }
    m->snapshots++;
    m->objects += objects;
    if (f != NULL) {
        /* One entry per label set: a process that reconnects, or streams
         * on two connections, stays one series. */
        for (p = m->head; p != NULL; p = p->next)
            if (p->f->lbl_len == f->lbl_len
                && memcmp(p->f->lbl, f->lbl, f->lbl_len) == 0)
                break;
        if (p != NULL) {
            proc_unlink(m, p);
            md_mfrag_free(p->f);
        } else {
            if (m->nprocs >= MD_METRICS_MAX_PROCS) {
                struct mproc *old = m->head;    /* updated longest ago */

                proc_unlink(m, old);
                md_mfrag_free(old->f);
                free(old);
                m->nprocs--;
                md_info("metrics_process_dropped", " reason=%s max=%u",
                        "too_many_processes", MD_METRICS_MAX_PROCS);
            }
            p = calloc(1, sizeof(*p));
            if (p == NULL) {
                md_mfrag_free(f);
                return;
            }
            m->nprocs++;
        }
        p->f = f;
        p->conn = conn;
        p->gone_at = connected ? 0 : uv_now(m->loop);
        if (p->gone_at == 0 && !connected)
            p->gone_at = 1;
        proc_append(m, p);
        procs_changed(m);
    }
    schedule_textfile(m);
}

void
md_metrics_conn_gone(struct md_metrics *m, uint64_t conn)
{
    int changed = 0;

    if (m == NULL)
        return;
    for (struct mproc *p = m->head; p != NULL; p = p->next) {
        if (p->conn == conn && p->gone_at == 0) {
            p->gone_at = uv_now(m->loop);
            if (p->gone_at == 0)
                p->gone_at = 1;
            changed = 1;
        }
    }
    if (changed) {
        procs_changed(m);
        schedule_textfile(m);
    }
}

void
md_metrics_tick(struct md_metrics *m)
{
    uint64_t now;
    struct mproc *p, *next;
    int changed = 0;

    if (m == NULL)
        return;
    now = uv_now(m->loop);
    for (p = m->head; p != NULL; p = next) {
        next = p->next;
        if (p->gone_at == 0 || now - p->gone_at < m->keep_ms)
            continue;
        proc_unlink(m, p);
        md_mfrag_free(p->f);
        free(p);
        m->nprocs--;
        changed = 1;
    }
    if (changed) {
        procs_changed(m);
        schedule_textfile(m);
    }
}
