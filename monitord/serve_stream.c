/* SPDX-License-Identifier: MIT
 *
 * serve_stream.c -- the snapshots scanner connections stream in
 * (docs/protocol.md): header, object lines and trailer are checked and
 * fed to the store's ingest; a complete snapshot goes to the writer
 * thread (writer.c) as a commit job, and the commit's result comes back
 * here to be acked.  The states (CS_HEADER, CS_OBJECTS, CS_SKIP) are
 * those of the diagram at the top of server.c, which reads the lines and
 * hands them here one at a time (md__stream_line).  Loop thread only.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "dumpline.h"
#include "log.h"
#include "metrics.h"
#include "ml-common.h"
#include "proto.h"
#include "server-int.h"
#include "writer.h"

/* ---- snapshot state ---- */

/* Drops the snapshot in progress, if any. */
void
md__discard_snapshot(struct conn *c)
{
    if (c->job != NULL) {
        st_ingest_free(c->job->ing);
        free(c->job);
        c->job = NULL;
    }
    if (c->state != CS_QUERY)   /* a query connection stays one */
        c->state = CS_HEADER;
}

/* The reason="..." of meliae_ingest_errors_total for an error code;
 * MD_ER_COUNT for none (a shutdown is no client's fault). */
enum md_ereason
md__code_reason(enum md_code code)
{
    switch (code) {
    case MD_DENIED: return MD_ER_DENIED;
    case MD_VERSION: return MD_ER_VERSION;
    case MD_PROTO: return MD_ER_PROTO;
    case MD_LIMIT: return MD_ER_LIMIT;
    case MD_ABORTED: return MD_ER_ABORTED;
    case MD_STORE: return MD_ER_STORE;
    default: return MD_ER_COUNT;
    }
}

/* md__conn_fail, counted under reason r rather than code's. */
void
md__conn_fail_as(struct conn *c, enum md_code code, enum md_ereason r,
                 const char *msg, int skip_rest)
{
    char line[512], q[256];
    size_t n;

    md_metrics_error(c->srv->cfg.metrics, r);

    md_warn("snapshot_refused", " conn=%" PRIu64 " pid=%d uid=%u code=%s "
            "objects=%" PRIu64 " reason=%s", c->serial, (int)c->peer.pid,
            (unsigned)c->peer.uid, md_code_name(code), c->nobj,
            md_logq(msg, q, sizeof(q)));
    n = md_error_line(line, sizeof(line), msg, code);
    (void)md__conn_send(c, line, n);    /* on failure c is closed already */
    if (c->job != NULL && c->job->meta.request != 0) {
        char why[400];

        snprintf(why, sizeof(why), "the snapshot of process %d was refused: "
                 "%s", (int)c->peer.pid, msg);
        md__snap_fail(c->srv, c->serial, c->job->meta.request, why);
    }
    md__discard_snapshot(c);
    if (md_code_closes(code))
        md__conn_drain_close(c, md_code_name(code));
    else if (skip_rest)
        c->state = CS_SKIP;
}

/* Answers an error line; closes the connection or, for codes that keep it
 * open, drops the current snapshot (its remaining lines are skipped when
 * skip_rest). */
void
md__conn_fail(struct conn *c, enum md_code code, const char *msg,
              int skip_rest)
{
    md__conn_fail_as(c, code, md__code_reason(code), msg, skip_rest);
}

static void
on_header(struct conn *c, const char *line, size_t n)
{
    struct md_server *srv = c->srv;
    char err[256], q1[300], q2[300];
    struct md_job *j;
    enum md_code code;
    int rc;

    j = calloc(1, sizeof(*j));
    if (j == NULL) {
        md__conn_fail(c, MD_STORE, "daemon out of memory", 1);
        return;
    }
    code = md_header_parse(line, n, &j->meta, err, sizeof(err));
    if (code != MD_OK) {
        free(j);
        md__conn_fail(c, code, err, 0);
        return;
    }
    /* Who the client is, whether or not a snapshot follows: `snap LABEL`
     * finds a process that has not sent one yet by its hello. */
    c->has_label = j->meta.has_label;
    c->has_program = j->meta.has_program;
    memcpy(c->label, j->meta.label, sizeof(c->label));
    memcpy(c->program, j->meta.program, sizeof(c->program));
    if (j->meta.hello) {
        md_debug("hello", " conn=%" PRIu64 " pid=%d label=%s", c->serial,
                 (int)c->peer.pid,
                 md_logq(j->meta.has_label ? j->meta.label : "", q1,
                         sizeof(q1)));
        free(j);
        return;
    }
    j->kind = MD_JOB_COMMIT;
    j->conn = c->serial;
    j->metrics = srv->cfg.metrics != NULL;
    md_meta_source(&j->meta, &j->src);
    j->src.trusted = 1;
    j->src.uid = c->peer.uid;
    j->src.gid = c->peer.gid;
    j->src.tpid = c->peer.pid;
    j->src.tstart_time = c->peer.start_time;
    rc = st_ingest_new(&j->ing, st_tmpdir(srv->store),
                       strcmp(j->meta.values, "none") != 0);
    if (rc < 0) {
        snprintf(err, sizeof(err), "cannot start the snapshot: %s",
                 st_strerror(rc));
        if (j->meta.request != 0)
            md__snap_fail(srv, c->serial, j->meta.request, err);
        free(j);
        md__conn_fail(c, MD_STORE, err, 1);
        return;
    }
    if (strcmp(j->meta.mode, "file") == 0)      /* meliae-cli import */
        st_ingest_keep_first(j->ing);
    c->job = j;
    c->state = CS_OBJECTS;
    c->nobj = 0;
    c->stream_bytes = 0;
    c->snap_start = uv_now(srv->loop);
    md_debug("snapshot_begin", " conn=%" PRIu64 " pid=%d claimed_pid=%" PRId64
             " values=%s label=%s program=%s", c->serial, (int)c->peer.pid,
             j->meta.pid, j->meta.values,
             md_logq(j->meta.has_label ? j->meta.label : "", q1, sizeof(q1)),
             md_logq(j->meta.has_program ? j->meta.program : "", q2,
                     sizeof(q2)));
}

static void
on_trailer(struct conn *c, const char *line, size_t n)
{
    struct md_server *srv = c->srv;
    struct md_trailer t;
    char err[512], q[300];
    enum md_code code;
    int rc;

    code = md_trailer_parse(line, n, &t, err, sizeof(err));
    if (code != MD_OK) {
        md__conn_fail(c, code, err, 0);
        return;
    }
    if (c->state == CS_SKIP) {
        c->state = CS_HEADER;   /* its error was sent when it began */
        return;
    }
    if (t.aborted) {
        md_info("snapshot_aborted", " conn=%" PRIu64 " pid=%d objects=%"
                PRIu64 " reason=%s", c->serial, (int)c->peer.pid, c->nobj,
                md_logq(t.reason, q, sizeof(q)));
        snprintf(err, sizeof(err), "snapshot aborted by the client: %s",
                 t.reason[0] != '\0' ? t.reason : "no reason given");
        md__conn_fail(c, MD_ABORTED, err, 0);
        return;
    }
    rc = st_ingest_end(c->job->ing, t.objects, t.bytes);
    if (rc == ML_EPROTO) {
        snprintf(err, sizeof(err), "trailer does not match the stream: %s",
                 st_ingest_error(c->job->ing));
        md__conn_fail(c, MD_PROTO, err, 0);
        return;
    }
    if (rc < 0) {
        snprintf(err, sizeof(err), "cannot end the snapshot: %s",
                 st_strerror(rc));
        md__conn_fail(c, MD_STORE, err, 0);
        return;
    }
    c->job->objects = c->nobj;
    md_debug("snapshot_received", " conn=%" PRIu64 " pid=%d objects=%" PRIu64
             " stream_bytes=%" PRIu64 " ms=%" PRIu64, c->serial,
             (int)c->peer.pid, c->nobj, c->stream_bytes,
             uv_now(srv->loop) - c->snap_start);
    if (c->job->meta.request != 0) {
        /* The snap queries waiting for it now wait for the commit, even
         * if this connection goes meanwhile. */
        md__snap_committing(srv, c->serial, c->job->meta.request);
    }
    md_writer_submit(srv->writer, c->job);
    c->job = NULL;
    c->commits++;
    c->state = CS_HEADER;
    if (c->commits >= MAX_CONN_COMMITS) {
        /* Each queued commit holds a spool (a file, an fd): a client that
         * pipelines snapshots faster than the disk takes them waits. */
        rc = uv_read_stop((uv_stream_t *)&c->pipe);
        if (rc < 0) {
            md__conn_abort(c, "uv_read_stop failed");
            return;
        }
        c->commit_wait = 1;
        md_debug("paused", " conn=%" PRIu64 " commits=%u", c->serial,
                 c->commits);
    }
}

static int object_checks(struct conn *c);
static int ingest_rc(struct conn *c, int rc);

static void
on_object_line(struct conn *c, const char *line, size_t n)
{
    struct md_server *srv = c->srv;
    struct ml_dumpline dl;
    char err[300];
    int rc;

    c->stream_bytes += n;
    if (c->stream_bytes > ML_PROTO_MAX_STREAM_BYTES) {
        md__conn_fail(c, MD_LIMIT, "snapshot stream longer than "
                      "ML_PROTO_MAX_STREAM_BYTES", 0);
        return;
    }
    rc = ml_dumpline_parse(&srv->parser, line, n, &dl);
    if (rc == ML_EPROTO) {
        md__conn_fail(c, MD_PROTO, srv->parser.err, 0);
        return;
    }
    if (rc == ML_ETOOBIG) {
        /* More than WHOLE_REFS refs (parser.max_refs): a long line that
         * happens to be all in the buffer.  Its refs are streamed as if
         * it were not, so the parser's scratch stays small. */
        size_t used, rest;

        c->stream_bytes -= n;           /* counted again as it is read */
        md_debug("long_line", " conn=%" PRIu64 " object=%" PRIu64
                 " in_buffer=1 bytes=%zu", c->serial, c->nobj + 1, n);
        if (md__long_start(c, line, n, &used) != 1)
            return;                     /* failed (a '\n' is no MORE) */
        rc = md__long_feed(c, line + used, n - used, &rest);
        if (rc == 0 && !c->closing)     /* its '\n' is there: cannot be */
            md__conn_fail(c, MD_PROTO, "line ends inside its refs", 0);
        return;
    }
    if (rc < 0) {
        md__conn_fail(c, MD_LIMIT, "daemon out of memory parsing a line", 0);
        return;
    }
    if (dl.kind == ML_LINE_OTHER && dl.has_traceback) {
        /* a table line of birth sites (docs/dump-format.md) */
        if (c->state != CS_SKIP)
            (void)ingest_rc(c, st_ingest_traceback(c->job->ing, &dl, line, n));
        return;
    }
    if (dl.kind == ML_LINE_OTHER) {
        on_trailer(c, line, n);
        return;
    }
    if (dl.nrefs > srv->cfg.max_refs) {
        snprintf(err, sizeof(err), "object with %zu refs; the limit is %"
                 PRIu64, dl.nrefs, srv->cfg.max_refs);
        md__conn_fail(c, MD_LIMIT, err, 0);
        return;
    }
    if (c->state == CS_SKIP || object_checks(c) < 0)
        return;
    /* the same checks and error codes as a long line's (below) */
    if (ingest_rc(c, st_ingest_object(c->job->ing, &dl)) < 0 ||
        c->state != CS_OBJECTS)
        return;
    c->nobj++;
}

/* ---- long lines (docs/protocol.md, "Long lines") ---- */

/* A big line left big scratch behind: give it back. */
static void
parser_trim(struct md_server *srv)
{
    if (srv->parser.scap > PARSER_KEEP
        || srv->parser.rcap * sizeof(uint64_t) > PARSER_KEEP)
        ml_dumpparser_free(&srv->parser);
    srv->parser.max_refs = WHOLE_REFS;
}

/* The count and size checks of one more object, as on_object_line makes
 * them: 0, or -1 with c failed. */
static int
object_checks(struct conn *c)
{
    char err[96];

    if (c->stream_bytes > ML_PROTO_MAX_STREAM_BYTES) {
        md__conn_fail(c, MD_LIMIT, "snapshot stream longer than "
                      "ML_PROTO_MAX_STREAM_BYTES", 0);
        return -1;
    }
    if (c->state == CS_OBJECTS && c->nobj >= ML_PROTO_MAX_OBJECTS) {
        snprintf(err, sizeof(err), "more than %u objects in one snapshot",
                 ML_PROTO_MAX_OBJECTS);
        md__conn_fail(c, MD_LIMIT, err, 0);
        return -1;
    }
    return 0;
}

/* An ingest call's error: 0, or -1 with c failed (a store error skips the
 * rest of the snapshot, the long line included). */
static int
ingest_rc(struct conn *c, int rc)
{
    char err[300];

    if (rc == 0)
        return 0;
    if (rc == ML_EPROTO || rc == ML_ETOOBIG) {
        snprintf(err, sizeof(err), "object line %" PRIu64 ": %s",
                 c->nobj + 1, st_ingest_error(c->job->ing));
        md__conn_fail(c, rc == ML_EPROTO ? MD_PROTO : MD_LIMIT, err, 0);
        return -1;
    }
    snprintf(err, sizeof(err), "cannot spool the snapshot: %s",
             st_ingest_error(c->job->ing));     /* says why, not just rc */
    md__conn_fail(c, MD_STORE, err, 1);
    return c->closing ? -1 : 0;
}

/* s[0..n) is the start of an object line (CS_OBJECTS or CS_SKIP) that
 * fills c's buffer, or all of one with too many refs to parse whole.  If
 * its head is all there, it is checked and begun in the ingest, and c
 * streams its refs from now on (c->lline): 1, *used its bytes.  0: the
 * head goes on past s[n).  -1: c failed. */
int
md__long_start(struct conn *c, const char *s, size_t n, size_t *used)
{
    struct md_server *srv = c->srv;
    struct ml_dumpline dl;
    size_t at = 0;
    int rc;

    rc = ml_dumpline_parse_head(&srv->parser, s, n, &dl, &at);
    if (rc == ML_DUMPLINE_MORE) {
        parser_trim(srv);
        return 0;
    }
    if (rc == ML_EPROTO) {
        md__conn_fail(c, MD_PROTO, srv->parser.err, 0);
        return -1;
    }
    if (rc < 0) {
        md__conn_fail(c, MD_LIMIT, "daemon out of memory parsing a line", 0);
        return -1;
    }
    c->stream_bytes += at;
    if (object_checks(c) < 0)
        return -1;
    if (c->state == CS_OBJECTS
        && ingest_rc(c, st_ingest_begin(c->job->ing, &dl)) < 0)
        return -1;
    c->lline = 1;
    ml_refscan_init(&c->rs);
    *used = at;
    parser_trim(srv);
    return 1;
}

/* Feeds s[0..n), the next bytes of the long line c is streaming: its refs
 * go to the ingest (dropped in CS_SKIP).  1 when the line ended (*used up
 * to its '\n'), 0 when all of s was taken, -1: c failed. */
int
md__long_feed(struct conn *c, const char *s, size_t n, size_t *used)
{
    struct md_server *srv = c->srv;
    uint64_t refs[LONG_REFS_CHUNK];
    size_t off = 0;
    char err[300];

    while (off < n) {
        size_t k, u;
        int rc = ml_refscan_feed(&c->rs, s + off, n - off, refs,
                                 LONG_REFS_CHUNK, &k, &u);

        off += u;
        c->stream_bytes += u;
        if (rc == ML_EPROTO) {
            c->lline = 0;
            md__conn_fail(c, MD_PROTO, c->rs.err, 0);
            return -1;
        }
        if (c->rs.count > srv->cfg.max_refs) {
            c->lline = 0;
            snprintf(err, sizeof(err), "object line %" PRIu64 " has more "
                     "than %" PRIu64 " refs (the limit)", c->nobj + 1,
                     srv->cfg.max_refs);
            md__conn_fail(c, MD_LIMIT, err, 0);
            return -1;
        }
        if (c->stream_bytes > ML_PROTO_MAX_STREAM_BYTES) {
            c->lline = 0;
            md__conn_fail(c, MD_LIMIT, "snapshot stream longer than "
                          "ML_PROTO_MAX_STREAM_BYTES", 0);
            return -1;
        }
        if (k > 0 && c->state == CS_OBJECTS
            && ingest_rc(c, st_ingest_refs(c->job->ing, refs, k)) < 0) {
            c->lline = 0;
            return -1;
        }
        if (rc == ML_REFSCAN_END) {
            c->lline = 0;
            *used = off;
            if (c->state != CS_OBJECTS)
                return 1;
            if (ingest_rc(c, st_ingest_finish(c->job->ing)) < 0)
                return -1;
            if (c->state == CS_OBJECTS)
                c->nobj++;
            return 1;
        }
    }
    *used = off;
    return 0;
}

/* One complete line of scanner connection c, '\n' included: a header,
 * or an object line or the trailer of the snapshot in progress. */
void
md__stream_line(struct conn *c, const char *line, size_t n)
{
    struct md_server *srv = c->srv;

    if (c->state == CS_HEADER)
        on_header(c, line, n);
    else
        on_object_line(c, line, n);
    parser_trim(srv);
}

/* ---- commits ---- */

/* A commit that failed: its client (c, NULL if gone) gets the error
 * line, and a `snap` query waiting for it is told why. */
static void
commit_failed(struct md_server *srv, struct conn *c, const struct md_job *j,
              enum md_code code, const char *what)
{
    char line[512];
    size_t n;

    if (c != NULL) {
        n = md_error_line(line, sizeof(line), j->errmsg, code);
        (void)md__conn_send(c, line, n);
    }
    if (j->meta.request != 0) {
        snprintf(line, sizeof(line), "the snapshot of process %d was %s: %s",
                 (int)j->src.tpid, what, j->errmsg);
        md__snap_fail(srv, j->conn, j->meta.request, line);
    }
}

/* The writer is done with j, a commit of connection j->conn (the caller
 * frees j): an ack or an error line, the snap queries waiting for it
 * answered, and the connection resumed or closed. */
void
md__commit_done(struct md_server *srv, struct md_job *j)
{
    struct conn *c = md__conn_find(srv, j->conn);
    char line[512], q[256];
    size_t n;

    if (c != NULL && c->closed)
        c = NULL;
    if (c != NULL)
        c->commits--;
    if (j->rc == 0) {
        md_info("snapshot_stored", " id=%" PRIu64 " objects=%" PRIu64
                " conn=%" PRIu64 " pid=%d uid=%u claimed_pid=%" PRId64
                " queued_ms=%" PRIu64 " commit_ms=%" PRIu64 "%s", j->id,
                j->objects, j->conn, (int)j->src.tpid, (unsigned)j->src.uid,
                j->src.pid,
                (uv_hrtime() - j->submitted_ns - j->took_ns) / 1000000,
                j->took_ns / 1000000, c == NULL ? " client=gone" : "");
        md_metrics_snapshot(srv->cfg.metrics, j->conn, c != NULL,
                            j->objects, j->mfrag);
        j->mfrag = NULL;
        if (c != NULL) {
            n = (size_t)snprintf(line, sizeof(line), "{\"ack\": %" PRIu64
                                 ", \"objects\": %" PRIu64 "}\n", j->id,
                                 j->objects);
            if (md__conn_send(c, line, n) == 0)
                c->acked++;
        }
        if (j->meta.request != 0)
            md__snap_stored(srv, j);
    } else if (j->rc == ML_EPROTO) {
        /* Found only at commit (two objects at one address): a protocol
         * error like the others, so the connection closes. */
        md_metrics_error(srv->cfg.metrics, MD_ER_PROTO);
        md_warn("snapshot_refused", " conn=%" PRIu64 " pid=%d code=proto "
                "objects=%" PRIu64 " reason=%s%s", j->conn, (int)j->src.tpid,
                j->objects, md_logq(j->errmsg, q, sizeof(q)),
                c == NULL ? " client=gone" : "");
        commit_failed(srv, c, j, MD_PROTO, "refused");
        if (c != NULL)
            md__conn_drain_close(c, "proto");
    } else {
        md_metrics_error(srv->cfg.metrics, MD_ER_STORE);
        md_err("snapshot_not_stored", " conn=%" PRIu64 " pid=%d objects=%"
               PRIu64 " error=%s%s", j->conn, (int)j->src.tpid, j->objects,
               md_logq(j->errmsg, q, sizeof(q)),
               c == NULL ? " client=gone" : "");
        commit_failed(srv, c, j, MD_STORE, "not stored");
        if (j->rc == MDB_PANIC) {
            /* LMDB's fatal state: let the supervisor restart us. */
            srv->exit_status = 1;
            md_server_stop(srv, "store panic");
        }
    }
    if (c != NULL && c->closing && c->commits == 0)
        md__conn_shutdown(c);
    else if (c != NULL && c->commit_wait && !c->closing
             && c->commits < MAX_CONN_COMMITS)
        md__conn_resume(c);
}
