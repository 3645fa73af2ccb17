/* SPDX-License-Identifier: MIT
 *
 * main.c -- meliae-monitord: options, detaching, the store and the event
 * loop; nothing else.  The daemon itself is server.c (connections and the
 * protocol of docs/protocol.md) and writer.c (the store's writer thread).
 *
 * Exit status: 0 after SIGTERM/SIGINT; 1 when the daemon cannot start
 * (socket taken, store unusable) or fails fatally; 2 for bad arguments.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <lmdb.h>
#include <uv.h>

#include "activation.h"
#include "creds.h"
#include "duration.h"
#include "log.h"
#include "metrics.h"
#include "prom.h"
#include "protocol.h"
#include "server.h"
#include "store.h"
#include "util.h"

#ifndef MD_VERSION
#define MD_VERSION "unknown"
#endif

#define PROG "meliae-monitord"

static void
usage(FILE *f)
{
    fputs("Usage: " PROG " --store DIR [options]\n"
          "\n"
          "Receive heap snapshots streamed by meliae.scanner.stream_to and "
          "keep them in\nthe snapshot store DIR.\n"
          "\n"
          "  --store DIR        the store (created mode 0700 if absent)\n"
          "  --socket PATH      listen here (default: $MELIAE_SOCKET, else\n"
          "                     /run/meliae.sock as root, else\n"
          "                     $XDG_RUNTIME_DIR/meliae.sock); a socket "
          "passed by\n"
          "                     systemd (socket activation) comes first\n"
          "  --group NAME       also serve members of this group (socket "
          "mode 0660)\n"
          "  --retain N         object graphs kept per process (default "
          "10)\n"
          "  --retain-age DUR   summaries kept this long: 30s, 15m, 1h, 7d "
          "(default 7d)\n"
          "  --max-store SIZE   store size cap: 512M, 64G (default 64G)\n"
          "  --max-refs N       refs of one object, beyond: refused "
          "(default\n"
          "                     4294967295, docs/protocol.md)\n"
          "  --metrics-textfile PATH\n"
          "                     Prometheus metrics, rewritten after each "
          "snapshot\n"
          "                     (node_exporter's textfile collector)\n"
          "  --metrics-listen HOST:PORT\n"
          "                     serve them at http://HOST:PORT/metrics; "
          "HOST is an\n"
          "                     IPv4 or [IPv6] loopback address\n"
          "  --metrics-listen-any  allow a HOST that is not loopback\n"
          "  --metrics-keep DUR the series of a process that disconnected "
          "stay this\n"
          "                     long (default 5m)\n"
          "  --foreground       do not detach; log to stderr\n"
          "  --log-level L      error, warn, info (default) or debug\n"
          "  --help             this text\n"
          "  --version          the version\n"
          "\n"
          "Example: " PROG " --store /var/lib/meliae --group meliae\n", f);
}

static void usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/* One line on stderr, exit 2. */
static void
usage_error(const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, PROG ": %s (see --help)\n", msg);
    exit(2);
}

/* path made absolute against the current directory (we chdir("/") when
 * detaching).  Malloc'd; exits on failure. */
static char *
absolute(const char *path)
{
    char cwd[PATH_MAX];
    char *out;

    if (path[0] == '/')
        out = strdup(path);
    else if (getcwd(cwd, sizeof(cwd)) == NULL)
        usage_error("cannot resolve %s: getcwd: %s", path, strerror(errno));
    else if (asprintf(&out, "%s/%s", cwd, path) < 0)
        out = NULL;
    if (out == NULL) {
        fprintf(stderr, PROG ": out of memory\n");
        exit(1);
    }
    return out;
}

struct args {
    char *store;
    char *socket;
    const char *socket_opt;     /* --socket as given, or NULL */
    gid_t group;
    struct md_metrics_config metrics;
    int want_metrics;
    struct st_options opt;
    int foreground;
    enum md_level level;
    uint64_t max_refs;          /* 0: ML_PROTO_MAX_REFS */
};

static void
parse_args(int argc, char **argv, struct args *a)
{
    enum { O_RETAIN_AGE = 256, O_MAX_STORE, O_LOG_LEVEL, O_VERSION,
           O_MTEXT, O_MLISTEN, O_MANY, O_MKEEP, O_MAX_REFS };
    static const struct option longopts[] = {
        { "store", required_argument, NULL, 's' },
        { "socket", required_argument, NULL, 'S' },
        { "group", required_argument, NULL, 'g' },
        { "retain", required_argument, NULL, 'r' },
        { "retain-age", required_argument, NULL, O_RETAIN_AGE },
        { "max-store", required_argument, NULL, O_MAX_STORE },
        { "max-refs", required_argument, NULL, O_MAX_REFS },
        { "foreground", no_argument, NULL, 'f' },
        { "log-level", required_argument, NULL, O_LOG_LEVEL },
        { "metrics-textfile", required_argument, NULL, O_MTEXT },
        { "metrics-listen", required_argument, NULL, O_MLISTEN },
        { "metrics-listen-any", no_argument, NULL, O_MANY },
        { "metrics-keep", required_argument, NULL, O_MKEEP },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, O_VERSION },
        { NULL, 0, NULL, 0 },
    };
    const char *store = NULL, *sock = NULL, *group = NULL;
    const char *mlisten = NULL, *mtext = NULL;
    int any = 0, loopback = 0, keep = 0;
    char err[300];
    uint64_t v;
    int ch;

    memset(a, 0, sizeof(*a));
    a->group = (gid_t)-1;
    a->level = MD_LOG_INFO;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":fh", longopts, NULL)) != -1) {
        switch (ch) {
        case 's':
            store = optarg;
            break;
        case 'S':
            sock = optarg;
            break;
        case 'g':
            group = optarg;
            break;
        case 'r':
            if (md_parse_uint(optarg, 1, 1000000, &v) < 0)
                usage_error("--retain: expected a count from 1 to 1000000, "
                            "got '%s'", optarg);
            a->opt.retain = (unsigned)v;
            break;
        case O_RETAIN_AGE:
            /* 0 would quietly mean the default (st_options): refused. */
            if (ml_parse_duration(optarg, &a->opt.retain_age_ns) < 0 ||
                a->opt.retain_age_ns == 0)
                usage_error("--retain-age: expected a duration like 30s, "
                            "15m, 1h or 7d, got '%s'", optarg);
            break;
        case O_MAX_STORE:
            if (md_parse_size(optarg, &a->opt.max_store) < 0)
                usage_error("--max-store: expected a size like 512M or 64G, "
                            "got '%s'", optarg);
            break;
        case O_MAX_REFS:
            if (md_parse_uint(optarg, 1, ML_PROTO_MAX_REFS, &a->max_refs) < 0)
                usage_error("--max-refs: expected a count from 1 to %llu, "
                            "got '%s'", (unsigned long long)ML_PROTO_MAX_REFS,
                            optarg);
            break;
        case 'f':
            a->foreground = 1;
            break;
        case O_MTEXT:
            if (optarg[0] == '\0')
                usage_error("--metrics-textfile: empty path");
            mtext = optarg;
            break;
        case O_MLISTEN:
            if (md_prom_parse_listen(optarg, &a->metrics.listen_addr,
                                     &loopback, err, sizeof(err)) < 0)
                usage_error("--metrics-listen: %s", err);
            mlisten = optarg;
            a->metrics.listen = 1;
            break;
        case O_MANY:
            any = 1;
            break;
        case O_MKEEP:
            /* Whole seconds: the daemon looks once a second. */
            if (ml_parse_duration(optarg, &v) < 0 || v < 1000000000u
                || v / 1000000u > UINT32_MAX)
                usage_error("--metrics-keep: expected a duration of at least "
                            "1s like 30s, 5m or 1h, got '%s'", optarg);
            a->metrics.keep_ms = v / 1000000u;
            keep = 1;
            break;
        case O_LOG_LEVEL:
            if (md_log_parse_level(optarg, &a->level) < 0)
                usage_error("--log-level: expected error, warn, info or "
                            "debug, got '%s'", optarg);
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case O_VERSION:
            printf(PROG " %s (libuv %s, LMDB %d.%d.%d, cJSON %s)\n",
                   MD_VERSION, uv_version_string(), MDB_VERSION_MAJOR,
                   MDB_VERSION_MINOR, MDB_VERSION_PATCH, cJSON_Version());
            exit(0);
        case ':':
            usage_error("%s needs a value", argv[optind - 1]);
        default:
            if (optopt != 0)
                usage_error("unknown option -%c", optopt);
            usage_error("unknown option %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);
    if (store == NULL || store[0] == '\0')
        usage_error("--store DIR is required");
    a->store = absolute(store);
    a->socket_opt = sock;

    if (mtext != NULL)
        a->metrics.textfile = absolute(mtext);
    if (any && mlisten == NULL)
        usage_error("--metrics-listen-any goes with --metrics-listen");
    /* The metrics name the processes, their programs and their types:
     * beyond this host only when asked for in so many words. */
    if (mlisten != NULL && !loopback && !any)
        usage_error("--metrics-listen: %s is not a loopback address; add "
                    "--metrics-listen-any to serve metrics beyond this host",
                    mlisten);
    a->want_metrics = mtext != NULL || mlisten != NULL;
    if (keep && !a->want_metrics)
        usage_error("--metrics-keep goes with --metrics-textfile or "
                    "--metrics-listen");

    if (sock != NULL && sock[0] == '\0')
        usage_error("--socket: empty path");
    if (group != NULL) {
        struct group *gr = getgrnam(group);

        if (gr != NULL)
            a->group = gr->gr_gid;
        else if (md_parse_uint(group, 0, UINT32_MAX - 1, &v) == 0)
            a->group = (gid_t)v;
        else
            usage_error("--group: no group named '%s'", group);
    }
}

/* The socket path when we bind our own (no socket from systemd). */
static void
resolve_socket(struct args *a)
{
    const char *sock = a->socket_opt;

    if (sock == NULL) {
        const char *env = getenv("MELIAE_SOCKET");
        const char *xdg = getenv("XDG_RUNTIME_DIR");

        if (env != NULL && env[0] != '\0') {
            sock = env;
        } else if (geteuid() == 0) {
            sock = "/run/meliae.sock";
        } else if (xdg != NULL && xdg[0] != '\0') {
            if (asprintf(&a->socket, "%s/meliae.sock", xdg) < 0) {
                fprintf(stderr, PROG ": out of memory\n");
                exit(1);
            }
        } else {
            usage_error("no socket path: give --socket, or set "
                        "$MELIAE_SOCKET or $XDG_RUNTIME_DIR");
        }
    }
    if (a->socket == NULL) {
        a->socket = absolute(sock);
    } else {
        char *abs = absolute(a->socket);

        free(a->socket);
        a->socket = abs;
    }
    if (strlen(a->socket) > 107)
        usage_error("socket path %s is %zu bytes; the limit is 107",
                    a->socket, strlen(a->socket));
}

/* ---- detaching ---- */

/* Write end of the pipe the foreground parent reads the start-up outcome
 * from ("OK\n" or the reason); -1 in the foreground.  Loop thread only. */
static int ready_fd = -1;

static void
tell_parent(const char *msg)
{
    size_t n = strlen(msg), off = 0;

    if (ready_fd < 0)
        return;
    while (off < n) {
        ssize_t w = write(ready_fd, msg + off, n - off);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    close(ready_fd);
    ready_fd = -1;
}

/* Double fork and setsid.  The original process waits until the daemon
 * listens (exit 0) or fails to start (its reason on stderr, exit 1). */
static void
detach(void)
{
    char buf[1024];
    size_t off = 0;
    int pfd[2], fd;
    pid_t pid;

    if (pipe2(pfd, O_CLOEXEC) < 0) {
        fprintf(stderr, PROG ": pipe: %s\n", strerror(errno));
        exit(1);
    }
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, PROG ": fork: %s\n", strerror(errno));
        exit(1);
    }
    if (pid > 0) {
        close(pfd[1]);
        for (;;) {
            ssize_t r = read(pfd[0], buf + off, sizeof(buf) - 1 - off);

            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0 || (off += (size_t)r) == sizeof(buf) - 1)
                break;
        }
        buf[off] = '\0';
        (void)waitpid(pid, NULL, 0);
        if (strcmp(buf, "OK\n") == 0)
            exit(0);
        fprintf(stderr, PROG ": %s\n", off > 0 ? buf
                : "the daemon exited while starting (see syslog)");
        exit(1);
    }
    close(pfd[0]);
    if (setsid() < 0)
        _exit(1);
    pid = fork();
    if (pid < 0)
        _exit(1);
    if (pid > 0)
        _exit(0);
    if (chdir("/") < 0)
        _exit(1);
    fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd < 0 || dup2(fd, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
        _exit(1);
    if (fd > 2)
        close(fd);
    ready_fd = pfd[1];
}

/* Reports a failure to start, where the user will see it, and exits. */
static void fatal(const char *msg) __attribute__((noreturn));

static void
fatal(const char *msg)
{
    md_err("start_failed", " reason=\"%s\"", msg);
    if (ready_fd >= 0)
        tell_parent(msg);
    exit(1);
}

static void
on_ready(void *arg, int status, const char *msg)
{
    (void)arg;
    if (status == 0) {
        md_info("ready", " pid=%d", (int)getpid());
        tell_parent("OK\n");
    } else {
        tell_parent(msg);
    }
}

/* Every client may hold a socket and spool files: take the descriptors
 * the hard limit allows (to 64Ki), as servers do. */
static void
raise_fd_limit(void)
{
    struct rlimit rl;
    rlim_t want;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 65536
           ? 65536 : rl.rlim_max;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            md_warn("fd_limit", " error=%s", strerror(errno));
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        md_debug("fd_limit", " soft=%llu hard=%llu",
                 (unsigned long long)rl.rlim_cur,
                 (unsigned long long)rl.rlim_max);
}

static void
on_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    md_err("handle_left_open", " type=%s closing=%d",
           uv_handle_type_name(uv_handle_get_type(h)), uv_is_closing(h));
}

int
main(int argc, char **argv)
{
    struct md_metrics *metrics = NULL;
    struct md_server *srv = NULL;
    struct st_store *store = NULL;
    char sd_path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
    int sd_fd = -1, sd_mismatch = 0;
    struct md_config cfg;
    struct sigaction sa;
    struct args a;
    uv_loop_t loop;
    char err[512];
    int rc, status;

    parse_args(argc, argv, &a);
    /* Before anything forks: LISTEN_PID names this process. */
    rc = md_activation_socket(&sd_fd, sd_path, sizeof(sd_path), err,
                              sizeof(err));
    if (rc < 0) {
        fprintf(stderr, PROG ": %s\n", err);
        exit(1);
    }
    if (sd_fd >= 0) {
        a.socket = strdup(sd_path);
        if (a.socket == NULL) {
            fprintf(stderr, PROG ": out of memory\n");
            exit(1);
        }
        if (a.socket_opt != NULL) {
            char *want = absolute(a.socket_opt);

            sd_mismatch = strcmp(want, a.socket) != 0;
            free(want);
        }
    } else {
        resolve_socket(&a);
    }

#ifdef __GLIBC__
    /* Long-line buffers and parser scratch (up to 64 MiB and more) are
     * mmap'd and so go back to the system when freed: glibc would raise
     * its threshold after the first big free and keep later ones. */
    (void)mallopt(M_MMAP_THRESHOLD, 256 << 10);
    /* One arena for every thread.  A query on the threadpool allocates
     * its answer's tree (hundreds of MiB for a wide growth) in its
     * thread's arena; glibc never gives a thread arena's top back, so
     * each query left 50-300 MiB behind (bench/bench_query_rss.py).  In
     * the one arena, what a query frees goes back (serve_query.c trims
     * after each); the threads share its lock, and they mostly wait on
     * LMDB and the disk, not on malloc. */
    (void)mallopt(M_ARENA_MAX, 1);
#endif
    /* Writes to a vanished client must fail with EPIPE, not kill us. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    umask(077);

    if (!a.foreground)
        detach();
    md_log_init(!a.foreground, a.level);
    raise_fd_limit();
    if ((rc = md_creds_init()) < 0)
        md_warn("no_boot_time", " error=%s reason=%s", strerror(-rc),
                "peer start times will be 0");

    if (sd_mismatch)
        md_warn("socket_option_ignored", " socket=%s systemd_socket=%s",
                a.socket_opt, a.socket);
    /* Before the store: a second daemon must not sweep the first one's
     * snapshots in progress.  (With systemd's socket, systemd starts one
     * daemon for it.) */
    if (sd_fd < 0 && md_socket_probe(a.socket, err, sizeof(err)) < 0)
        fatal(err);
    err[0] = '\0';
    rc = st_open(&store, a.store, &a.opt, err, sizeof(err));
    if (rc < 0) {
        char msg[700];

        snprintf(msg, sizeof(msg), "store %s: %s", a.store,
                 err[0] != '\0' ? err : st_strerror(rc));
        fatal(msg);
    }
    md_info("start", " version=%s pid=%d store=%s socket=%s store_bytes=%"
            PRIu64, MD_VERSION, (int)getpid(), a.store, a.socket,
            st_size(store));

    rc = uv_loop_init(&loop);
    if (rc < 0) {
        snprintf(err, sizeof(err), "uv_loop_init: %s", uv_strerror(rc));
        st_close(store);
        fatal(err);
    }
    if (a.want_metrics
        && md_metrics_new(&metrics, &loop, store, &a.metrics, err,
                          sizeof(err)) < 0) {
        st_close(store);
        fatal(err);
    }
    cfg.socket_path = a.socket;
    cfg.group = a.group;
    cfg.listen_fd = sd_fd;
    cfg.metrics = metrics;
    cfg.max_refs = a.max_refs != 0 ? a.max_refs : ML_PROTO_MAX_REFS;
    rc = md_server_start(&srv, &loop, store, &cfg, on_ready, NULL);
    if (rc < 0) {
        md_metrics_close(metrics);      /* else the loop would not end */
        snprintf(err, sizeof(err), "starting the server: %s",
                 uv_strerror(rc));
        md_err("start_failed", " error=%s", uv_strerror(rc));
        tell_parent(err);
    }
    if (srv != NULL || metrics != NULL)
        (void)uv_run(&loop, UV_RUN_DEFAULT);
    status = srv != NULL ? md_server_exit_status(srv) : 1;

    rc = uv_loop_close(&loop);
    if (rc < 0) {
        /* A handle we forgot: name it, and do not pretend all is well. */
        uv_walk(&loop, on_walk, NULL);
        md_err("loop_close", " error=%s", uv_strerror(rc));
        status = 1;
    }
    md_server_free(srv);
    md_metrics_free(metrics);
    st_close(store);
    if (ready_fd >= 0)
        tell_parent("the daemon stopped while starting");
    free(a.store);
    free(a.socket);
    free((char *)a.metrics.textfile);
    return status;
}
