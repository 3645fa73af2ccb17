/* SPDX-License-Identifier: MIT
 *
 * main.c -- meliae-cli: options, the request for the command, and where
 * it is answered.  The answers themselves are computed by store/report.c,
 * here (--store, --dump) or in meliae-monitord (the default): one
 * implementation, two transports.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>
#include <uv.h>

#include "attach.h"
#include "cli.h"
#include "duration.h"
#include "dumpline.h"
#include "ml-common.h"
#include "report.h"
#include "store.h"
#include "utf8.h"

#ifndef CLI_VERSION
#define CLI_VERSION "0"
#endif

struct opts {
    const char *store, *socket, *dump, *process, *by, *label;
    const char *sort, *html;
    const char *pid;            /* snap --pid */
    const char *interval;       /* attach */
    int once;
    long alive;
    const char *since, *until;
    long top, depth, chains, limit, timeout;
    int json, bytes;
    int retained, all_users, across, force;
    long uid;
};

struct cmd {
    const char *name;
    const char *brief;          /* one line, for --help's list */
    const char *args;           /* positional arguments, for usage */
    int nargs;                  /* with a snapshot: counted without --dump */
    int snap;                   /* first argument is a snapshot reference */
    const char *options;        /* the options it takes, for usage */
    const char *help;
    const char *examples;
};

static const struct cmd cmds[] = {
    { "snapshots", "list the stored snapshots",
      "", 0, 0, "[--since DUR] [--until DUR] [--process SEL]",
      "List the stored snapshots: id, time, process, objects, bytes.",
      "  meliae-cli snapshots --since 1h\n"
      "  meliae-cli --json snapshots --process web\n" },
    { "summary", "the types that hold the most memory in one snapshot",
      "SNAP", 1, 1, "[--top N] [--by size|count] [--process SEL]",
      "The types holding the most memory in one snapshot.",
      "  meliae-cli summary latest\n"
      "  meliae-cli summary 17 --top 5 --by count\n"
      "  meliae-cli --dump heap.json summary\n" },
    { "growth", "what grew over the snapshots; the leak suspects",
      "", 0, 0,
      "[--since DUR] [--until DUR] [--process SEL] [--by size|count] [--top N]\n"
      "       [--sort score|bytes|count|slope]",
      "What grew over the snapshots of each process in the window.  A type\n"
      "is a leak suspect when its count or size has a significant upward\n"
      "trend (Mann-Kendall, one-sided p < 0.01, 5 snapshots or more) that\n"
      "matters (its Theil-Sen slope and net growth reach 1% of the\n"
      "process).  Ranked by --sort: score (default: suspects first, then\n"
      "the trend's Z), bytes or count (net growth), slope.",
      "  meliae-cli growth --since 1h\n"
      "  meliae-cli growth --since 2026-11-27T06:00:00Z --by count --top 20\n"
      "  meliae-cli growth --since 1h --sort bytes\n" },
    { "diff", "what changed between two snapshots (or two dump files)",
      "SNAP_A SNAP_B", 2, 0,
      "[--top N] [--process SEL] [--across-processes]",
      "Per-type deltas, and the objects present in B but not in A, grouped\n"
      "by type and by the object that holds them.  A and B must be of one\n"
      "process unless --across-processes is given.  A and B may be two\n"
      "dump files instead (plain or gzip), compared the same way.",
      "  meliae-cli diff latest~1 latest\n"
      "  meliae-cli diff 3 17 --top 5\n"
      "  meliae-cli diff before.json after.json.gz\n" },
    { "referrers", "the chains of referrers that keep an object alive",
      "SNAP ADDR", 2, 1, "[--depth N] [--chains K] [--process SEL]",
      "The shortest chains of referrers from an object to a root (a module,\n"
      "a thread's frame, or an object nothing refers to), each as a path in\n"
      "the program's words (__main__.BUS.subscribers[17]), then its objects.",
      "  meliae-cli referrers latest 0x7f3a5c2b1e80\n"
      "  meliae-cli referrers 17 139889234567808 --chains 5\n" },
    { "show", "one object, its refs and its referrers",
      "SNAP ADDR", 2, 1, "[--limit N] [--process SEL]",
      "One object, with what it refers to and what refers to it.",
      "  meliae-cli show latest 0x7f3a5c2b1e80\n" },
    { "top", "the largest objects, or those that keep the most alive",
      "SNAP", 1, 1, "[--retained] [--top N] [--process SEL]",
      "The largest objects of one snapshot; with --retained, by the memory\n"
      "each keeps alive (its retained size: what freeing it would free),\n"
      "and the types that keep the most (docs/retained.md).",
      "  meliae-cli top --retained latest\n"
      "  meliae-cli top 17 --top 5\n"
      "  meliae-cli --dump heap.json top --retained --top 10\n" },
    { "dominators", "what alone keeps an object alive, up to a root",
      "SNAP ADDR", 2, 1, "[--process SEL]",
      "An object's dominators up to a root: each object on the way keeps it\n"
      "alive alone, with the memory it retains.",
      "  meliae-cli dominators latest 0x7f3a5c2b1e80\n" },
    { "report", "the leak report: suspects, new objects, who holds them",
      "", 0, 0,
      "[--html FILE] [--process SEL] [--since DUR] [--until DUR] [--top N]\n"
      "       [--alive K]",
      "The leak report: per process, its leak suspects (growth's trend\n"
      "test, at most --top, default 5), each with its count and size over\n"
      "the snapshots, its new objects (born after the first snapshot with\n"
      "a graph and alive in the last K, default 2) by holder, the shortest\n"
      "chain of referrers from one of them to a root, and its retained\n"
      "size.  As text, or with --html FILE as one self-contained page.",
      "  meliae-cli report --since 1h\n"
      "  meliae-cli report --process web --html leak.html\n" },
    { "import", "store a dump file as a snapshot",
      "FILE", 1, 0, "[--label L] [--force]",
      "Store a dump file (ours or meliae 0.5's, plain or gzip) as a\n"
      "snapshot.  A file already stored (the same content) is refused\n"
      "with the snapshot that holds it, unless --force.",
      "  meliae-cli import heap.json --label before-upgrade\n"
      "  meliae-cli --store /var/lib/meliae import heap.json\n" },
    { "delete", "remove a snapshot from the store",
      "ID", 1, 0, "[--uid N | --all-users]",
      "Remove a snapshot from the store: its summary, objects and indexes.\n"
      "By its id only (not latest: a deletion names what it deletes);\n"
      "through the daemon (your own snapshots; root and the daemon's user\n"
      "another's with --uid or --all-users), or with --store when no\n"
      "daemon holds the store.",
      "  meliae-cli delete 17\n"
      "  meliae-cli --store /var/lib/meliae delete 3\n" },
    { "snap", "have a connected process take a snapshot now",
      "SEL", 1, 0, "[--timeout S] | --pid PID [--timeout S]",
      "Ask the daemon to have a connected process (pid, label or program)\n"
      "take a snapshot now; prints its id once stored.  --pid PID: the\n"
      "process with that pid, streaming or attached (meliae-cli attach).",
      "  meliae-cli snap web\n"
      "  meliae-cli snap 4242 --timeout 120\n"
      "  meliae-cli snap --pid 4242\n" },
    { "attach", "start snapshots in a running Python process (no edit)",
      "PID", 1, 0,
      "[--socket PATH] [--interval S | --once] [--label L]\n"
      "       [--timeout S]",
      "Start streaming snapshots (every --interval seconds, default 60)\n"
      "from a running CPython that never imported meliae, and print the\n"
      "first snapshot's id once stored; --once takes one snapshot and stops.\n"
      "3.14 and later through PEP 768 (sys.remote_exec); 3.9 to 3.13 through\n"
      "gdb.  Needs a meliae built for the target's Python in $MELIAE_PATH\n"
      "(as the target sees it), the right to ptrace it, and the daemon's\n"
      "socket as the target sees it in --socket (docs/attach.md).",
      "  meliae-cli attach 4242\n"
      "  meliae-cli attach 4242 --once\n"
      "  meliae-cli attach 4242 --interval 30 --label web\n" },
    { "detach", "stop what attach started in a process",
      "PID", 1, 0, "[--timeout S]",
      "Stop the streamer meliae-cli attach started in a process: its thread\n"
      "ends and its connection closes; the process goes on.",
      "  meliae-cli detach 4242\n" },
};

static const char *prog = "meliae-cli";

static void
usage(FILE *f)
{
    fprintf(f,
        "usage: meliae-cli [--store DIR | --socket PATH | --dump FILE] [--json]\n"
        "                  [--bytes] COMMAND [ARGS] [OPTIONS]\n"
        "\n"
        "What is growing in a Python process, and who keeps it alive: from the\n"
        "snapshots meliae-monitord stored, or from a dump file.\n"
        "\n"
        "commands:\n");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        fprintf(f, "  %-10s %-13s  %s\n", cmds[i].name, cmds[i].args,
                cmds[i].brief);
    fprintf(f,
        "\n"
        "where:\n"
        "  --store DIR     read the store directly ($MELIAE_STORE); default: ask\n"
        "                  the daemon on its socket\n"
        "  --socket PATH   the daemon's socket ($MELIAE_SOCKET, /run/meliae.sock\n"
        "                  for root, else $XDG_RUNTIME_DIR/meliae.sock)\n"
        "  --dump FILE     analyse one dump file (summary, referrers, show, top,\n"
        "                  dominators)\n"
        "  --json          one JSON document (docs/cli-json.md)\n"
        "  --bytes         sizes in bytes instead of KiB/MiB/GiB\n"
        "  --timeout S     seconds to wait for the daemon's answer (default 600;\n"
        "                  snap 300; delete, attach, detach 60)\n"
        "  --uid N, --all-users  another user's processes, or all (root and the\n"
        "                  daemon's user; the daemon shows each user their own)\n"
        "\n"
        "SNAP is an id, latest or latest~N (with --process SEL: of that process;\n"
        "SEL is a pid, a label or a program).  DUR is 30s, 15m, 1h, 2d or an\n"
        "ISO 8601 time (UTC unless it says otherwise).\n"
        "\n"
        "`meliae-cli COMMAND --help` shows a command's options and examples.\n"
        "Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 69 daemon unavailable.\n");
}

static void
cmd_usage(FILE *f, const struct cmd *c)
{
    fprintf(f, "usage: meliae-cli %s%s%s %s\n\n%s\n\nexamples:\n%s", c->name,
            c->args[0] ? " " : "", c->args, c->options, c->help, c->examples);
}

static int
die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
die(int code, const char *fmt, ...)
{
    va_list ap;
    char msg[2048], *e = NULL;

    /* messages quote names from snapshots (and the daemon's words) */
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s\n", prog,
            cli_escape(msg, strlen(msg), &e) > 0 ? e : msg);
    free(e);
    return code;
}

static int
exit_code(int rc)
{
    if (rc == ML_ENOTFOUND || rc == -ENODATA)
        return CLI_NOTFOUND;
    if (rc == -EINVAL)
        return CLI_USAGE;
    return CLI_ERROR;
}

/* DUR (common/duration.h) before now, or an ISO 8601 time.  Here a DUR
 * needs its unit: a bare "2026" is more likely a year than 2026 s ago.
 * Returns ns since the epoch, 0 on error. */
static uint64_t
parse_when(const char *s)
{
    struct timespec now;
    size_t n = strlen(s);
    uint64_t dur;

    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t now_ns = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
    if (n > 0 && strchr("smhdw", s[n - 1]) != NULL &&
        ml_parse_duration(s, &dur) == 0)
        return dur >= now_ns ? 0 : now_ns - dur;
    /* ISO 8601: 2026-11-27, 2026-11-27T06:00, ...:00Z, ...+01:00 */
    static const char *const fmts[] = {
        "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M", "%Y-%m-%d",
    };
    for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
        struct tm tm;
        const char *rest;
        long off = 0;

        memset(&tm, 0, sizeof tm);
        rest = strptime(s, fmts[i], &tm);
        if (rest == NULL)
            continue;
        if (*rest == '.')                       /* fractions: ignored */
            while (*++rest >= '0' && *rest <= '9')
                ;
        if (*rest == 'Z') {
            rest++;
        } else if (*rest == '+' || *rest == '-') {
            int hh, mm;
            if (sscanf(rest + 1, "%2d:%2d", &hh, &mm) != 2)
                continue;
            off = (hh * 3600L + mm * 60L) * (*rest == '+' ? 1 : -1);
            rest += 6;
        }
        if (*rest != '\0')
            continue;
        time_t t = timegm(&tm) - off;
        if (t <= 0)
            return 0;
        return (uint64_t)t * 1000000000u;
    }
    return 0;
}

static int
positive(const char *opt, const char *v, long *out)
{
    char *end;

    errno = 0;
    *out = strtol(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || *out < 0)
        return die(CLI_USAGE, "%s wants a number, not \"%s\"", opt, v);
    return 0;
}

/* A snapshot of s with content hash hash: its id (st_snap_list's
 * callback), so that the same file is not stored twice. */
static int
same_content(void *arg, const struct st_snapinfo *si)
{
    const char **want = arg;

    if (si->content_hash == NULL || strcmp(si->content_hash, want[0]) != 0)
        return 0;
    *(uint64_t *)(void *)want[1] = si->id;
    return -EEXIST;                     /* stops the listing */
}

/* 1 and *dup if s holds a snapshot of content hash; 0 if not; < 0. */
static int
stored_as(struct st_store *s, const char *hash, uint64_t *dup)
{
    const char *arg[2] = { hash, (const char *)(void *)dup };
    struct st_read *r;
    int rc = st_read_begin(s, &r);

    if (rc != 0)
        return rc;
    rc = st_snap_list(r, 0, 0, same_content, arg);
    st_read_end(r);
    return rc == -EEXIST ? 1 : rc;
}

/* Imports dump file path into the store s; *id gets the snapshot.  A
 * file already stored (its content hash) is refused unless force. */
static int
import_file(struct st_store *s, const char *path, const char *label,
            int force, uint64_t *id, uint64_t *objects)
{
    char hash[CLI_HASH_LEN];
    const char *base = strrchr(path, '/');
    struct st_source src = { .values = "truncated", .mode = "file",
                             .label = label, .program = path,
                             .file = base ? base + 1 : path,
                             .content_hash = hash };
    struct cli_dump d;
    struct ml_dumpline l;
    struct st_ingest *in = NULL;
    uint64_t dup = 0;
    int rc, more;

    if (cli_dump_open(&d, path) != 0) {
        rc = die(d.code, "%s", d.err);
        goto out;
    }
    rc = st_ingest_new(&in, st_tmpdir(s), 1);
    if (rc != 0) {
        rc = die(CLI_ERROR, "%s", st_strerror(rc));
        goto out;
    }
    st_ingest_keep_first(in);
    cli_progress_start(path);      /* "heap.json: 120000 objects, 3s" */
    while ((more = cli_dump_next(&d, &l)) > 0) {
        rc = l.kind == ML_LINE_OBJECT ? st_ingest_object(in, &l)
             : st_ingest_traceback(in, &l, d.line, d.len);
        if (rc != 0) {
            rc = die(CLI_ERROR, "%s:%" PRIu64 ": %s", path, d.lineno,
                     st_ingest_error(in));
            goto out;
        }
        cli_progress(d.objects);
    }
    cli_progress_end();
    if (more < 0) {
        rc = die(d.code, "%s", d.err);
        goto out;
    }
    cli_dump_hash_text(&d, hash);
    rc = force ? 0 : stored_as(s, hash, &dup);
    if (rc < 0) {
        rc = die(CLI_ERROR, "%s: %s", path, st_strerror(rc));
        goto out;
    }
    if (rc == 1) {
        rc = die(CLI_ERROR, "%s: already stored as snapshot %" PRIu64 " (the "
                 "same content); --force stores it again", path, dup);
        goto out;
    }
    if (rc == 0)
        rc = st_ingest_end(in, d.objects, d.bytes);
    if (rc == 0)
        rc = st_commit(s, in, &src, id);
    if (rc != 0) {
        rc = die(CLI_ERROR, "%s: %s", path, st_ingest_error(in));
        goto out;
    }
    *objects = d.objects;
    rc = CLI_OK;
out:
    cli_progress_end();
    cli_dump_close(&d);
    st_ingest_free(in);
    return rc;
}

static int
print_answer(const struct out *o, cJSON *doc)
{
    if (o->html != NULL) {
        int rc = cli_html(o, doc, o->html);

        if (rc != 0)
            return die(CLI_ERROR, "%s: %s", o->html, strerror(rc));
    }
    if (o->json) {
        char *t = cJSON_PrintUnformatted(doc), *fixed = NULL;
        size_t n;

        /* Names from a heap may be ill-formed (a lone surrogate): strict
         * UTF-8 out, with U+FFFD for them (docs/cli-json.md). */
        if (t == NULL || ml_utf8_repair(t, strlen(t), &fixed, &n) < 0) {
            free(t);
            return die(CLI_ERROR, "out of memory");
        }
        fprintf(o->f, "%s\n", fixed != NULL ? fixed : t);
        free(fixed);
        free(t);
    } else {
        if (cli_escape_doc(doc) < 0)
            return die(CLI_ERROR, "out of memory");
        cli_render(o, doc);
    }
    if (fflush(o->f) != 0 || ferror(o->f))
        return die(CLI_ERROR, "writing the answer: %s", strerror(errno));
    return CLI_OK;
}

/* The progress line's words for req ("top: working"). */
static const char *
progress_what(const cJSON *req)
{
    static char buf[64];
    const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(req, "cmd");

    snprintf(buf, sizeof buf, "%s: %s", cJSON_IsString(cmd) ? cmd->valuestring
             : "meliae-cli", cJSON_IsString(cmd) && strcmp(cmd->valuestring,
             "snap") == 0 ? "waiting for the snapshot" : "working");
    return buf;
}

/* Runs req on a store opened here. */
static int
run_local(const char *dir, const cJSON *req, const struct out *o)
{
    struct st_options ro = { .flags = ST_RDONLY };
    struct st_store *s;
    char err[512];
    cJSON *doc;
    int rc;

    rc = st_open(&s, dir, &ro, err, sizeof err);
    if (rc != 0)
        return die(rc == -ENOENT ? CLI_NOTFOUND : CLI_ERROR, "%s", err);
    /* Whoever can open the store sees all of it; --uid narrows it.  An
     * imported file (no kernel uid) is the store owner's. */
    struct rp_scope sc = { .all = 1 };
    struct stat st;
    if (stat(dir, &st) == 0)
        sc.owner = (uint32_t)st.st_uid;
    rc = rp_scope_request(req, &sc, err, sizeof err);
    cli_progress_tick_start(progress_what(req));
    rc = rc < 0 ? rc : rp_run(s, req, &sc, &doc, err, sizeof err);
    cli_progress_tick_stop();
    st_close(s);
    if (rc != 0)
        return die(exit_code(rc), "%s", err);
    rc = print_answer(o, doc);
    cJSON_Delete(doc);
    return rc;
}

/* --dump: the file goes through the daemon's ingest into a temporary
 * store, and the command runs there; the store is removed after.  diff
 * of two files: both go there, and it compares them as snapshots. */
static int
run_dump(const char *const *paths, int npaths, cJSON *req,
         const struct out *o)
{
    char dir[PATH_MAX], store[PATH_MAX + 8], err[512];
    const char *tmp = getenv("TMPDIR");
    struct st_store *s;
    uint64_t id, n;
    cJSON *doc;
    int rc = CLI_OK;

    snprintf(dir, sizeof dir, "%s/meliae-cli.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL)
        return die(CLI_ERROR, "%s: %s", dir, strerror(errno));
    snprintf(store, sizeof store, "%s/s", dir);
    rc = st_open(&s, store, NULL, err, sizeof err);
    if (rc != 0) {
        rc = die(CLI_ERROR, "%s", err);
        goto out;
    }
    for (int i = 0; i < npaths && rc == CLI_OK; i++) {
        static const char *const key[] = { "a", "b" };
        char ref[24];

        /* one store, no label: the files are one "process" to diff */
        rc = import_file(s, paths[i], NULL, 1, &id, &n);
        snprintf(ref, sizeof ref, "%" PRIu64, id);
        if (rc == CLI_OK && npaths == 2)
            cJSON_ReplaceItemInObjectCaseSensitive(req, key[i],
                                                   cJSON_CreateString(ref));
    }
    if (rc == CLI_OK) {
        cli_progress_tick_start(progress_what(req));
        rc = rp_run(s, req, NULL, &doc, err, sizeof err);
        cli_progress_tick_stop();
        if (rc != 0) {
            rc = die(exit_code(rc), "%s", err);
        } else {
            rc = print_answer(o, doc);
            cJSON_Delete(doc);
        }
    }
    st_close(s);
out:
    cli_remove_tree(dir);
    return rc;
}

/* The default --timeout.  A snapshot (snap) is walked and committed in
 * 2.2-2.4 min at 80M objects on a loaded two-core machine
 * (bench/bench_beast.py), as stream_to's default deadline allows; a
 * query on an old store computes a dominator tree of the snapshot's
 * size (report: more than a minute at 80M objects); delete, attach and
 * detach a minute (attach: the target's safe point). */
#define CLI_TIMEOUT_ACT 60
#define CLI_TIMEOUT_SNAP 300
#define CLI_TIMEOUT_QUERY 600

static long
cmd_timeout(const char *name)
{
    static const char *const act[] = { "delete", "attach", "detach" };

    if (strcmp(name, "snap") == 0)
        return CLI_TIMEOUT_SNAP;
    for (size_t i = 0; i < sizeof act / sizeof act[0]; i++)
        if (strcmp(name, act[i]) == 0)
            return CLI_TIMEOUT_ACT;
    return CLI_TIMEOUT_QUERY;
}

/* A snapshot reference (an id, latest, latest~N) rather than a file? */
static int
is_ref(const char *s)
{
    if (strncmp(s, "latest", 6) == 0)
        s += s[6] == '~' ? 7 : 6;
    return strspn(s, "0123456789") == strlen(s);
}

static int
run_daemon(const char *sock, const cJSON *req, const struct out *o,
           unsigned timeout)
{
    char err[512];
    cJSON *doc = NULL;
    int rc;

    cli_progress_start(progress_what(req));
    rc = cli_ask_daemon(sock, req, timeout, &doc, err, sizeof err);
    cli_progress_end();

    if (rc != CLI_OK)
        return die(rc, "%s", err);
    rc = print_answer(o, doc);
    cJSON_Delete(doc);
    return rc;
}

/* The store at dir, to write (import, delete): not one a daemon holds. */
static int
open_to_write(const char *dir, const char *what, struct st_store **s)
{
    char err[512];
    int rc = st_open(s, dir, NULL, err, sizeof err);

    if (rc == -EBUSY)
        return die(CLI_ERROR, "%s; drop --store to %s through it", err, what);
    if (rc != 0)
        return die(CLI_ERROR, "%s", err);
    return CLI_OK;
}

static int
cmd_import(const struct opts *op, const char *sock, const char *file,
           const struct out *o)
{
    char err[512];
    uint64_t id = 0, n = 0;
    int rc;

    if (op->store != NULL) {
        struct st_store *s;

        if ((rc = open_to_write(op->store, "import", &s)) != CLI_OK)
            return rc;
        rc = import_file(s, file, op->label, op->force, &id, &n);
        st_close(s);
        if (rc != CLI_OK)
            return rc;
    } else {
        rc = cli_send_dump(sock, file, op->label, op->force, &id, &n, err,
                           sizeof err);
        if (rc != CLI_OK)
            return die(rc, "%s", err);
    }
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddNumberToObject(doc, "schema_version", RP_SCHEMA_VERSION);
    cJSON_AddStringToObject(doc, "command", "import");
    cJSON_AddNumberToObject(doc, "snapshot", (double)id);
    cJSON_AddNumberToObject(doc, "objects", (double)n);
    rc = print_answer(o, doc);
    cJSON_Delete(doc);
    return rc;
}

/* attach PID, detach PID (attach.c) */
static int
cmd_attach(const struct opts *op, const char *pid, int attach)
{
    struct attach_opts a = { .pid = pid, .label = op->label,
                             .timeout = (unsigned)op->timeout,
                             .detach = !attach, .interval = 60 };
    struct out o = { .f = stdout, .json = op->json };
    char sockbuf[PATH_MAX], err[512];
    char *end;

    if (op->once && op->interval != NULL)
        return die(CLI_USAGE, "--once or --interval, not both");
    if (op->once)
        a.interval = 0;
    if (op->interval != NULL) {
        a.interval = strtod(op->interval, &end);
        if (end == op->interval || *end != '\0' || !(a.interval >= 0.01) ||
            a.interval > 86400 * 365)
            return die(CLI_USAGE, "--interval wants seconds (0.01 or more), "
                       "not \"%s\"", op->interval);
    }
    if (a.timeout == 0)
        return die(CLI_USAGE, "--timeout must be 1 second or more");
    if (attach) {
        a.socket = op->socket;
        if (a.socket == NULL)
            a.socket = cli_default_socket(sockbuf, sizeof sockbuf, err,
                                          sizeof err);
        if (a.socket == NULL)
            return die(CLI_UNAVAILABLE, "%s", err);
    }
    return cli_attach(&a, &o);
}

/* delete ID: with --store in the store opened for writing, else by the
 * daemon's writer; the same answer either way. */
static int
cmd_delete(const struct opts *op, const char *sock, const char *ref,
           const struct out *o)
{
    char err[512], *end;
    unsigned long long id;
    cJSON *doc = NULL;
    int rc;

    errno = 0;
    id = strtoull(ref, &end, 10);
    if (ref[0] < '0' || ref[0] > '9' || *end != '\0' || errno != 0 || id == 0)
        return die(CLI_USAGE, "delete needs a snapshot id, not \"%s\" (not "
                   "latest: a deletion names what it deletes)", ref);
    if (op->store != NULL) {
        struct st_store *s;

        if ((rc = open_to_write(op->store, "delete", &s)) != CLI_OK)
            return rc;
        rc = st_delete(s, id);
        st_close(s);
        if (rc != 0)
            return die(exit_code(rc), "%s%llu%s%s", rc == ML_ENOTFOUND
                       ? "no snapshot " : "deleting snapshot ", id,
                       rc == ML_ENOTFOUND ? "" : ": ",
                       rc == ML_ENOTFOUND ? "" : st_strerror(rc));
        doc = cJSON_CreateObject();
        cJSON_AddNumberToObject(doc, "schema_version", RP_SCHEMA_VERSION);
        cJSON_AddStringToObject(doc, "command", "delete");
        cJSON_AddNumberToObject(doc, "snapshot", (double)id);
    } else {
        cJSON *req = cJSON_CreateObject();

        cJSON_AddStringToObject(req, "cmd", "delete");
        cJSON_AddStringToObject(req, "snap", ref);
        if (op->uid >= 0)               /* root: another user's */
            cJSON_AddNumberToObject(req, "uid", (double)op->uid);
        if (op->all_users)
            cJSON_AddBoolToObject(req, "all_users", 1);
        rc = cli_ask_daemon(sock, req, (unsigned)op->timeout, &doc, err,
                            sizeof err);
        cJSON_Delete(req);
        if (rc != CLI_OK)
            return die(rc, "%s", err);
    }
    rc = print_answer(o, doc);
    cJSON_Delete(doc);
    return rc;
}

enum {
    O_STORE = 256, O_SOCKET, O_DUMP, O_JSON, O_BYTES, O_PROCESS, O_SINCE,
    O_UNTIL, O_BY, O_TOP, O_DEPTH, O_CHAINS, O_LABEL, O_LIMIT, O_TIMEOUT,
    O_VERSION, O_SORT, O_HTML, O_ALIVE, O_RETAINED, O_PID, O_INTERVAL,
    O_ONCE, O_UID, O_ALL_USERS, O_ACROSS, O_FORCE,
};

/* One option; -1 to go on, or an exit code. */
static int
handle_opt(int ch, char **argv, struct opts *op, int *help)
{
    switch (ch) {
    case O_STORE: op->store = optarg; break;
    case O_SOCKET: op->socket = optarg; break;
    case O_DUMP: op->dump = optarg; break;
    case O_JSON: op->json = 1; break;
    case O_RETAINED: op->retained = 1; break;
    case O_ALL_USERS: op->all_users = 1; break;
    case O_ACROSS: op->across = 1; break;
    case O_FORCE: op->force = 1; break;
    case O_UID: return positive("--uid", optarg, &op->uid) ? CLI_USAGE : -1;
    case O_BYTES: op->bytes = 1; break;
    case O_PROCESS: op->process = optarg; break;
    case O_SINCE: op->since = optarg; break;
    case O_UNTIL: op->until = optarg; break;
    case O_BY: op->by = optarg; break;
    case O_LABEL: op->label = optarg; break;
    case O_SORT: op->sort = optarg; break;
    case O_HTML: op->html = optarg; break;
    case O_PID: op->pid = optarg; break;
    case O_INTERVAL: op->interval = optarg; break;
    case O_ONCE: op->once = 1; break;
    case O_ALIVE: return positive("--alive", optarg, &op->alive) ? CLI_USAGE : -1;
    case O_TOP: return positive("--top", optarg, &op->top) ? CLI_USAGE : -1;
    case O_DEPTH: return positive("--depth", optarg, &op->depth) ? CLI_USAGE : -1;
    case O_CHAINS: return positive("--chains", optarg, &op->chains) ? CLI_USAGE : -1;
    case O_LIMIT: return positive("--limit", optarg, &op->limit) ? CLI_USAGE : -1;
    case O_TIMEOUT: return positive("--timeout", optarg, &op->timeout) ? CLI_USAGE : -1;
    case 'h': *help = 1; break;
    case O_VERSION:
        printf("meliae-cli %s (LMDB %d.%d.%d, libuv %s, cJSON %s)\n",
               CLI_VERSION, MDB_VERSION_MAJOR, MDB_VERSION_MINOR,
               MDB_VERSION_PATCH, uv_version_string(), cJSON_Version());
        return CLI_OK;
    case ':':
        return die(CLI_USAGE, "%s needs a value", argv[optind - 1]);
    default:
        if (optopt != 0)                /* a short option, maybe in a cluster */
            return die(CLI_USAGE, "unknown option \"-%c\" (see --help)", optopt);
        return die(CLI_USAGE, "unknown option \"%s\" (see --help)",
                   argv[optind - 1]);
    }
    return -1;
}

int
main(int argc, char **argv)
{
    static const struct option lopts[] = {
        { "store", required_argument, NULL, O_STORE },
        { "socket", required_argument, NULL, O_SOCKET },
        { "dump", required_argument, NULL, O_DUMP },
        { "json", no_argument, NULL, O_JSON },
        { "bytes", no_argument, NULL, O_BYTES },
        { "process", required_argument, NULL, O_PROCESS },
        { "since", required_argument, NULL, O_SINCE },
        { "until", required_argument, NULL, O_UNTIL },
        { "retained", no_argument, NULL, O_RETAINED },
        { "by", required_argument, NULL, O_BY },
        { "top", required_argument, NULL, O_TOP },
        { "depth", required_argument, NULL, O_DEPTH },
        { "chains", required_argument, NULL, O_CHAINS },
        { "label", required_argument, NULL, O_LABEL },
        { "limit", required_argument, NULL, O_LIMIT },
        { "timeout", required_argument, NULL, O_TIMEOUT },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, O_VERSION },
        { "sort", required_argument, NULL, O_SORT },
        { "html", required_argument, NULL, O_HTML },
        { "alive", required_argument, NULL, O_ALIVE },
        { "pid", required_argument, NULL, O_PID },
        { "interval", required_argument, NULL, O_INTERVAL },
        { "once", no_argument, NULL, O_ONCE },
        { "uid", required_argument, NULL, O_UID },
        { "all-users", no_argument, NULL, O_ALL_USERS },
        { "across-processes", no_argument, NULL, O_ACROSS },
        { "force", no_argument, NULL, O_FORCE },
        { NULL, 0, NULL, 0 },
    };
    struct opts op = { .top = -1, .depth = -1, .chains = -1, .limit = -1,
                       .timeout = -1, .alive = -1, .uid = -1 };
    struct out o = { .f = stdout };
    const struct cmd *c = NULL;
    int help = 0, ch, rc;
    char sockbuf[PATH_MAX], err[512];
    cJSON *req;

    opterr = 0;
    /* Global options, up to the command; then the command's arguments
     * and options in any order (GNU getopt moves the arguments last). */
    while ((ch = getopt_long(argc, argv, "+:h", lopts, NULL)) != -1)
        if ((rc = handle_opt(ch, argv, &op, &help)) >= 0)
            return rc;
    if (optind < argc) {
        for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
            if (strcmp(argv[optind], cmds[i].name) == 0)
                c = &cmds[i];
        if (c == NULL)
            return die(CLI_USAGE, "unknown command \"%s\" (see --help)",
                       argv[optind]);
        argc -= optind;
        argv += optind;
        optind = 0;                     /* glibc: start over on the new argv */
        while ((ch = getopt_long(argc, argv, ":h", lopts, NULL)) != -1)
            if ((rc = handle_opt(ch, argv, &op, &help)) >= 0)
                return rc;
    }
    if (help) {
        if (c != NULL)
            cmd_usage(stdout, c);
        else
            usage(stdout);
        return CLI_OK;
    }
    if (c == NULL) {
        usage(stderr);
        return CLI_USAGE;
    }
    /* GNU getopt moved the arguments to the end, in order */
    char **args = argv + optind;
    int nargs = argc - optind;
    int want = c->nargs - (op.dump != NULL && c->snap ? 1 : 0);
    int snap_pid = strcmp(c->name, "snap") == 0 && op.pid != NULL;
    if (op.pid != NULL && strcmp(c->name, "snap") != 0)
        return die(CLI_USAGE, "--pid works with snap");
    if (snap_pid) {
        /* the daemon matches a SEL of digits against the verified pid */
        if (nargs != 0 || op.pid[0] == '\0' ||
            strspn(op.pid, "0123456789") != strlen(op.pid))
            return die(CLI_USAGE, "snap --pid wants one pid and no SEL, not "
                       "\"%s\"", nargs ? args[0] : op.pid);
        want = 0;
    }
    if (nargs != want) {
        return die(CLI_USAGE, "%s takes %d argument%s (%s%s); see meliae-cli %s "
                   "--help", c->name, want, want == 1 ? "" : "s",
                   op.dump && c->snap ? "no SNAP with --dump: " : "",
                   want ? c->args : "none", c->name);
    }
    if (op.dump != NULL && strcmp(c->name, "summary") != 0 &&
        strcmp(c->name, "referrers") != 0 && strcmp(c->name, "show") != 0 &&
        strcmp(c->name, "top") != 0 && strcmp(c->name, "dominators") != 0)
        return die(CLI_USAGE, "--dump works with summary, referrers and show "
                   "(and top, dominators)");
    if (op.retained && strcmp(c->name, "top") != 0)
        return die(CLI_USAGE, "--retained works with top");
    if (op.across && strcmp(c->name, "diff") != 0)
        return die(CLI_USAGE, "--across-processes works with diff");
    if (op.force && strcmp(c->name, "import") != 0)
        return die(CLI_USAGE, "--force works with import");
    if (op.timeout < 0)
        op.timeout = cmd_timeout(c->name);
    int attach = strcmp(c->name, "attach") == 0;
    if ((op.interval != NULL || op.once) && !attach)
        return die(CLI_USAGE, "--interval and --once work with attach");
    if (attach || strcmp(c->name, "detach") == 0)
        return cmd_attach(&op, args[0], attach);
    if (op.store == NULL && op.dump == NULL) {
        const char *env = getenv("MELIAE_STORE");
        if (env != NULL && *env)
            op.store = env;
    }

    o.json = op.json;
    o.bytes = op.bytes;
    o.html = op.html;
    o.utf8 = isatty(STDOUT_FILENO);
    const char *nc = getenv("NO_COLOR");
    o.color = o.utf8 && (nc == NULL || nc[0] == '\0');

    /* diff a.json b.json: two dump files rather than two snapshots */
    int dump_files = 0;
    if (strcmp(c->name, "diff") == 0 && op.dump == NULL) {
        struct stat st;

        for (int i = 0; i < 2; i++)
            dump_files += !is_ref(args[i]) && stat(args[i], &st) == 0 &&
                          S_ISREG(st.st_mode);
        if (dump_files == 1)
            return die(CLI_USAGE, "diff compares two snapshots or two dump "
                       "files, not one of each");
    }
    const char *sock = op.socket;
    if (sock == NULL && dump_files != 2 &&
        (op.store == NULL || strcmp(c->name, "snap") == 0 ||
         strcmp(c->name, "import") == 0)) {
        sock = cli_default_socket(sockbuf, sizeof sockbuf, err, sizeof err);
        if (sock == NULL && op.store == NULL)
            return die(CLI_UNAVAILABLE, "%s", err);
    }
    if (strcmp(c->name, "import") == 0)
        return cmd_import(&op, sock, args[0], &o);
    if (strcmp(c->name, "delete") == 0)
        return cmd_delete(&op, sock, args[0], &o);

    req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "cmd", c->name);
    if (op.process)
        cJSON_AddStringToObject(req, "process", op.process);
    if (op.by)
        cJSON_AddStringToObject(req, "by", op.by);
    if (op.sort)
        cJSON_AddStringToObject(req, "sort", op.sort);
    if (op.alive >= 0)
        cJSON_AddNumberToObject(req, "alive", (double)op.alive);
    if (op.html != NULL && strcmp(c->name, "report") != 0) {
        cJSON_Delete(req);
        return die(CLI_USAGE, "--html works with report only");
    }
    if (op.top >= 0)
        cJSON_AddNumberToObject(req, "top", (double)op.top);
    if (op.depth >= 0)
        cJSON_AddNumberToObject(req, "depth", (double)op.depth);
    if (op.chains >= 0)
        cJSON_AddNumberToObject(req, "chains", (double)op.chains);
    if (op.limit >= 0)
        cJSON_AddNumberToObject(req, "limit", (double)op.limit);
    if (op.retained)
        cJSON_AddBoolToObject(req, "retained", 1);
    if (op.across)
        cJSON_AddBoolToObject(req, "across_processes", 1);
    if (op.uid >= 0 && op.all_users) {
        cJSON_Delete(req);
        return die(CLI_USAGE, "--uid and --all-users do not go together");
    }
    if (op.uid >= 0)
        cJSON_AddNumberToObject(req, "uid", (double)op.uid);
    if (op.all_users)
        cJSON_AddBoolToObject(req, "all_users", 1);
    struct { const char *opt, *v, *key; } when[] = {
        { "--since", op.since, "since" }, { "--until", op.until, "until" },
    };
    for (size_t i = 0; i < 2; i++) {
        if (when[i].v == NULL)
            continue;
        uint64_t ns = parse_when(when[i].v);
        char buf[24];

        if (ns == 0) {
            cJSON_Delete(req);
            return die(CLI_USAGE, "%s: bad duration or time \"%s\" (30s, 15m, "
                       "1h, 2d or 2026-11-27T06:00:00Z)", when[i].opt, when[i].v);
        }
        snprintf(buf, sizeof buf, "%" PRIu64, ns);
        cJSON_AddStringToObject(req, when[i].key, buf);
    }
    int a = 0;
    if (c->snap)
        cJSON_AddStringToObject(req, "snap", op.dump ? "latest" : args[a++]);
    if (strcmp(c->name, "diff") == 0) {
        cJSON_AddStringToObject(req, "a", args[0]);
        cJSON_AddStringToObject(req, "b", args[1]);
    } else if (strcmp(c->name, "referrers") == 0 || strcmp(c->name, "show") == 0 ||
               strcmp(c->name, "dominators") == 0) {
        cJSON_AddStringToObject(req, "address", args[a]);
    } else if (strcmp(c->name, "snap") == 0) {
        cJSON_AddStringToObject(req, "process", snap_pid ? op.pid : args[0]);
        cJSON_AddNumberToObject(req, "timeout", (double)op.timeout);
    }

    if (strcmp(c->name, "snap") == 0)
        rc = sock ? run_daemon(sock, req, &o, (unsigned)op.timeout + 5)
                  : die(CLI_UNAVAILABLE, "%s", err);
    else if (op.dump != NULL)
        rc = run_dump(&op.dump, 1, req, &o);
    else if (dump_files == 2)
        rc = run_dump((const char *const *)args, 2, req, &o);
    else if (op.store != NULL)
        rc = run_local(op.store, req, &o);
    else
        rc = run_daemon(sock, req, &o, (unsigned)op.timeout);
    cJSON_Delete(req);
    return rc;
}
