/* SPDX-License-Identifier: MIT
 *
 * attach.c -- meliae-cli attach PID / detach PID: start (or stop) a
 * streamer inside a running CPython that never imported meliae.
 *
 * 1. The target is looked at through /proc before anything touches it:
 *    exists, ours to trace, which Python (its executable or the
 *    libpython it maps: python3.N, libpython3.N.so; a "t" is a
 *    free-threaded build, refused), remote debugging not disabled.
 * 2. A meliae built for that version is looked for in $MELIAE_PATH and
 *    in the directory this meliae-cli installs the package into, as the
 *    target sees them (/proc/PID/root/...): containers see their own.
 * 3. A directory is made in the target's /tmp, through /proc/PID/root
 *    (its own mount namespace), owned by its uid: args.json (what to do)
 *    and attach.py (a fixed script that reads it), which inject.c has
 *    the target run.  The script puts the build on sys.path and calls
 *    meliae._attach.start() or stop(), which answer in status there.
 * 4. The answer is waited for: the first snapshot's id once the daemon
 *    stored it, or the error.  A target that does not run the script by
 *    the deadline is reported, and the script, should it run later, sees
 *    the deadline passed and only removes its directory.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "attach.h"
#include "report.h"

#ifndef MELIAE_PYLIBDIR
#define MELIAE_PYLIBDIR ""
#endif

#define CAP_SYS_PTRACE_BIT 19

/* What the target runs: _D, the directory, is prepended.  Reads
 * args.json there; never raises (it may run between two bytecodes of
 * the application). */
static const char script_body[] =
    "def _meliae_attach(d):\n"
    "    import json, os, sys, time\n"
    "    status = d + '/status'\n"
    "    try:\n"
    "        with open(d + '/args.json') as f:\n"
    "            a = json.load(f)\n"
    "        if time.time() > a['deadline']:\n"
    "            # meliae-cli gave up on us: leave no trace\n"
    "            import shutil\n"
    "            shutil.rmtree(d, ignore_errors=True)\n"
    "            return\n"
    "        try:\n"
    "            os.mkdir(d + '/claimed')\n"
    "        except FileExistsError:\n"
    "            return     # queued by gdb, and run by it already\n"
    "        if a['action'] == 'detach':\n"
    "            m = sys.modules.get('meliae._attach')\n"
    "            if m is None:\n"
    "                raise RuntimeError('not attached: meliae-cli attach never'\n"
    "                                   ' ran in process %d' % os.getpid())\n"
    "            m.stop(status)\n"
    "            return\n"
    "        m = sys.modules.get('meliae')\n"
    "        if m is not None and not os.path.exists(os.path.join(\n"
    "                os.path.dirname(m.__file__ or ''), '_attach.py')):\n"
    "            raise RuntimeError('the process imported another meliae: %s'\n"
    "                               % m.__file__)\n"
    "        if a['path'] not in sys.path:\n"
    "            sys.path.append(a['path'])\n"
    "        from meliae import _attach\n"
    "        _attach.start(status, a['socket'], a['interval'], a['label'],\n"
    "                      a['timeout'])\n"
    "    except Exception as e:\n"
    "        try:\n"
    "            with open(status + '.tmp', 'w') as f:\n"
    "                json.dump({'error': str(e) or type(e).__name__}, f)\n"
    "            os.replace(status + '.tmp', status)\n"
    "        except Exception:\n"
    "            pass\n"
    "try:\n"
    "    _meliae_attach(_D)\n"
    "finally:\n"
    "    del _meliae_attach, _D\n";

static int
fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return code;
}

/* Reads path into buf (NUL-terminated); bytes read, or -errno. */
static ssize_t
read_small(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return -errno;
    n = cli_read_all(fd, buf, len);
    close(fd);
    return n;
}

/* The fields after "Name:\t" of /proc/PID/status, as text. */
static const char *
status_field(const char *status, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = status; p != NULL && *p; p = strchr(p, '\n')) {
        if (*p == '\n')
            p++;
        if (strncmp(p, name, n) == 0 && p[n] == ':')
            return p + n + 1;
    }
    return NULL;
}

static int
have_cap_ptrace(void)
{
    char buf[4096];
    const char *v;

    if (read_small("/proc/self/status", buf, sizeof buf) < 0 ||
        (v = status_field(buf, "CapEff")) == NULL)
        return 0;
    return (strtoull(v, NULL, 16) >> CAP_SYS_PTRACE_BIT) & 1;
}

/* python3.N, libpython3.N.so...: 1 with *minor and *ft, else 0. */
static int
python_name(const char *base, const char *prefix, int *minor, int *ft)
{
    size_t n = strlen(prefix);
    char *end;
    long m;

    if (strncmp(base, prefix, n) != 0 || !isdigit((unsigned char)base[n]))
        return 0;
    m = strtol(base + n, &end, 10);
    *ft = *end == 't';
    end += *ft;
    if (*end != '\0' && *end != '.' && *end != ' ')
        return 0;
    *minor = (int)m;
    return 1;
}

static int
same_ns(pid_t pid, const char *ns)
{
    char path[64];
    struct stat a, b;

    snprintf(path, sizeof path, "/proc/%d/ns/%s", (int)pid, ns);
    if (stat(path, &a) != 0 || stat(ns[0] == 'm' ? "/proc/self/ns/mnt"
                                                 : "/proc/self/ns/pid", &b) != 0)
        return 1;
    return a.st_ino == b.st_ino && a.st_dev == b.st_dev;
}

/* Which Python t->pid runs, and who it is; before touching it. */
static int
inspect(struct target *t, char *err, size_t errlen)
{
    char path[64], buf[8192], exe[PATH_MAX];
    const char *v, *base;
    int ft = 0, found = 0;
    ssize_t n;

    snprintf(path, sizeof path, "/proc/%d/status", (int)t->pid);
    if (read_small(path, buf, sizeof buf) < 0)
        return fail(err, errlen, CLI_NOTFOUND, "no process %d", (int)t->pid);
    v = status_field(buf, "Uid");
    t->uid = v ? (uid_t)strtoul(v, NULL, 10) : 0;
    v = status_field(buf, "Gid");
    t->gid = v ? (gid_t)strtoul(v, NULL, 10) : 0;
    t->nspid = t->pid;
    if ((v = status_field(buf, "NSpid")) != NULL) {
        char *end;
        for (long x = strtol(v, &end, 10); end != v; x = strtol(v, &end, 10)) {
            t->nspid = (pid_t)x;
            v = end;
        }
    }
    if (geteuid() != 0 && t->uid != geteuid() && !have_cap_ptrace())
        return fail(err, errlen, CLI_ERROR, "process %d runs as uid %u, not "
                    "as you (uid %u): attach as that user, or as root",
                    (int)t->pid, (unsigned)t->uid, (unsigned)geteuid());
    v = status_field(buf, "TracerPid");
    if (v != NULL && strtol(v, NULL, 10) != 0)
        return fail(err, errlen, CLI_ERROR, "process %d is already traced by "
                    "process %ld (a debugger)", (int)t->pid,
                    strtol(v, NULL, 10));

    snprintf(path, sizeof path, "/proc/%d/exe", (int)t->pid);
    n = readlink(path, exe, sizeof exe - 1);
    if (n < 0)
        return errno == EACCES || errno == EPERM
            ? cli_ptrace_denied(t->pid, err, errlen)
            : fail(err, errlen, CLI_ERROR, "process %d: %s: %s", (int)t->pid,
                   path, strerror(errno));
    exe[n] = '\0';
    if (n > 10 && strcmp(exe + n - 10, " (deleted)") == 0)
        exe[n - 10] = '\0';
    snprintf(path, sizeof path, "/proc/%d/root", (int)t->pid);
    n = readlink(path, t->root, sizeof t->root - 1);
    if (n < 0)
        return cli_ptrace_denied(t->pid, err, errlen);
    t->root[n] = '\0';
    t->other_mnt = !same_ns(t->pid, "mnt");
    t->other_pid = !same_ns(t->pid, "pid");
    size_t rl = strlen(t->root);
    snprintf(t->exe, sizeof t->exe, "%s",
             strcmp(t->root, "/") != 0 && strncmp(exe, t->root, rl) == 0 &&
             exe[rl] == '/' ? exe + rl : exe);

    base = strrchr(exe, '/') ? strrchr(exe, '/') + 1 : exe;
    found = python_name(base, "python3.", &t->minor, &ft);
    if (!found) {
        /* an embedding program (uwsgi, a C++ host): its libpython */
        char *maps = malloc(1 << 20);
        if (maps == NULL)
            return fail(err, errlen, CLI_ERROR, "out of memory");
        snprintf(path, sizeof path, "/proc/%d/maps", (int)t->pid);
        if (read_small(path, maps, 1 << 20) >= 0) {
            for (char *l = strtok(maps, "\n"); l && !found;
                 l = strtok(NULL, "\n")) {
                const char *b = strrchr(l, '/');
                found = b && python_name(b + 1, "libpython3.", &t->minor, &ft);
            }
        }
        free(maps);
    }
    t->major = 3;
    if (!found)
        return fail(err, errlen, CLI_ERROR, "process %d (%s) is not a "
                    "CPython: no python3.N executable or libpython3.N "
                    "library in its memory", (int)t->pid, base);
    if (ft)
        return fail(err, errlen, CLI_ERROR, "process %d runs a free-threaded "
                    "Python (3.%dt): not supported, meliae needs the GIL",
                    (int)t->pid, t->minor);
    if (t->minor < 9)
        return fail(err, errlen, CLI_ERROR, "process %d runs Python 3.%d: "
                    "meliae supports 3.9 and later", (int)t->pid, t->minor);

    /* PEP 768's switches; honoured by the gdb path too (the owner said
     * no one should run code in it). */
    snprintf(path, sizeof path, "/proc/%d/environ", (int)t->pid);
    n = read_small(path, buf, sizeof buf);
    for (ssize_t i = 0; i < n; i += (ssize_t)strlen(buf + i) + 1)
        if (strncmp(buf + i, "PYTHON_DISABLE_REMOTE_DEBUG=", 28) == 0 &&
            buf[i + 28] != '\0')
            goto disabled;
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)t->pid);
    n = read_small(path, buf, sizeof buf);
    /* the interpreter's options, after argv[0] and before the script */
    for (ssize_t i = (ssize_t)strlen(buf) + 1; i < n;
         i += (ssize_t)strlen(buf + i) + 1) {
        if (buf[i] != '-')
            break;                          /* the script: its own args */
        if (strcmp(buf + i, "-Xdisable_remote_debug") == 0 ||
            (strcmp(buf + i, "-X") == 0 && i + 3 < n &&
             strcmp(buf + i + 3, "disable_remote_debug") == 0))
            goto disabled;
    }
    return CLI_OK;
disabled:
    return fail(err, errlen, CLI_ERROR, "remote debugging is disabled in "
                "process %d (PYTHON_DISABLE_REMOTE_DEBUG or -X "
                "disable_remote_debug)", (int)t->pid);
}

/* Does DIR (as the target sees it) hold a meliae built for its version? */
static int
has_build(const struct target *t, const char *dir)
{
    char path[PATH_MAX + 64], want[32];
    struct dirent *e;
    int found = 0;
    DIR *d;

    snprintf(path, sizeof path, "/proc/%d/root%s/meliae", (int)t->pid, dir);
    snprintf(want, sizeof want, "_scanner.cpython-%d%d-", t->major, t->minor);
    d = opendir(path);
    if (d == NULL)
        return 0;
    while (!found && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        found = strncmp(e->d_name, want, strlen(want)) == 0 && n > 3 &&
                strcmp(e->d_name + n - 3, ".so") == 0;
    }
    closedir(d);
    return found;
}

static int
find_build(const struct target *t, char *out, size_t len, char *err,
           size_t errlen)
{
    const char *env = getenv("MELIAE_PATH");
    char list[8192];

    snprintf(list, sizeof list, "%s%s%s", env ? env : "",
             env && *env && MELIAE_PYLIBDIR[0] ? ":" : "", MELIAE_PYLIBDIR);
    for (char *save = NULL, *d = strtok_r(list, ":", &save); d != NULL;
         d = strtok_r(NULL, ":", &save)) {
        if (d[0] == '/' && has_build(t, d)) {
            snprintf(out, len, "%s", d);
            return CLI_OK;
        }
    }
    return fail(err, errlen, CLI_NOTFOUND, "no meliae built for Python 3.%d "
                "in $MELIAE_PATH%s%s: build one with meson setup "
                "-Dpython=python3.%d and put its scanner directory (or "
                "install directory) in $MELIAE_PATH", t->minor,
                MELIAE_PYLIBDIR[0] ? " or " : "", MELIAE_PYLIBDIR, t->minor);
}

/* The daemon's socket, as an absolute path, reachable from the target. */
static int
check_socket(const struct target *t, const char *sock, char *abs, size_t len,
             char *err, size_t errlen)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    char cwd[PATH_MAX];
    int fd, rc, n;

    if (sock[0] != '/' && getcwd(cwd, sizeof cwd) != NULL)
        n = snprintf(abs, len, "%s/%s", cwd, sock);
    else
        n = snprintf(abs, len, "%s", sock);
    if (n < 0 || (size_t)n >= len)
        return fail(err, errlen, CLI_USAGE, "socket path too long: %s", sock);
    /* through the target's root when the path fits in sun_path */
    if ((size_t)snprintf(sa.sun_path, sizeof sa.sun_path, "/proc/%d/root%s",
                         (int)t->pid, abs) >= sizeof sa.sun_path)
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", abs);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fail(err, errlen, CLI_ERROR, "socket: %s", strerror(errno));
    rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    close(fd);
    if (rc != 0)
        return fail(err, errlen, CLI_UNAVAILABLE, "no daemon on %s as "
                    "process %d sees it: %s (start meliae-monitord, or give "
                    "--socket)", abs, (int)t->pid, strerror(errno));
    return CLI_OK;
}

/* The status the script left, parsed; NULL until it is there. */
static cJSON *
read_status(const struct drop *d)
{
    char buf[4096];

    if (cli_drop_read(d, "status", buf, sizeof buf) <= 0)
        return NULL;
    return cJSON_Parse(buf);
}

static int
answer(const struct attach_opts *a, const struct out *o,
       const struct target *t, const char *method, const cJSON *st)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(st, "snapshot");

    if (o->json) {
        cJSON *doc = cJSON_CreateObject();
        char *text, ver[16];

        snprintf(ver, sizeof ver, "%d.%d", t->major, t->minor);
        cJSON_AddNumberToObject(doc, "schema_version", RP_SCHEMA_VERSION);
        cJSON_AddStringToObject(doc, "command", a->detach ? "detach" : "attach");
        cJSON_AddNumberToObject(doc, "pid", t->pid);
        cJSON_AddStringToObject(doc, "python", ver);
        cJSON_AddStringToObject(doc, "method", method);
        if (!a->detach) {
            cJSON_AddNumberToObject(doc, "snapshot", cJSON_GetNumberValue(id));
            if (a->interval > 0)
                cJSON_AddNumberToObject(doc, "interval", a->interval);
            else
                cJSON_AddNullToObject(doc, "interval");
        }
        text = cJSON_PrintUnformatted(doc);
        cJSON_Delete(doc);
        if (text == NULL)
            return CLI_ERROR;
        fprintf(o->f, "%s\n", text);
        free(text);
    } else if (a->detach) {
        fprintf(o->f, "detached from %d\n", (int)t->pid);
    } else {
        fprintf(o->f, "%.0f\n", cJSON_GetNumberValue(id));
    }
    return fflush(o->f) == 0 ? CLI_OK : CLI_ERROR;
}

/* Waits for the script's answer; CLI_OK with *st, or an exit code. */
static int
wait_status(const struct target *t, const struct drop *d, double deadline,
            cJSON **st, char *err, size_t errlen)
{
    for (;;) {
        *st = read_status(d);
        if (*st != NULL) {
            const cJSON *e = cJSON_GetObjectItemCaseSensitive(*st, "error");
            if (!cJSON_IsString(e))
                return CLI_OK;
            fail(err, errlen, CLI_ERROR, "process %d: %s", (int)t->pid,
                 cJSON_GetStringValue(e));
            cJSON_Delete(*st);
            *st = NULL;
            return CLI_ERROR;
        }
        if (kill(t->pid, 0) != 0 && errno == ESRCH)
            return fail(err, errlen, CLI_ERROR, "process %d exited",
                        (int)t->pid);
        if (cli_now() >= deadline)
            return fail(err, errlen, CLI_ERROR, "process %d did not run the "
                        "attach code in time: its main thread is blocked in C "
                        "and does not reach the eval loop (nothing was "
                        "changed in it)", (int)t->pid);
        usleep(20000);
    }
}

int
cli_attach(const struct attach_opts *a, const struct out *o)
{
    struct target t = { 0 };
    char err[1024], build[PATH_MAX] = "", sock[PATH_MAX] = "";
    char script[128], claimed[160];
    struct drop d = { .tmpfd = -1, .dirfd = -1 };
    const char *method = "";
    double deadline = cli_now() + a->timeout;
    cJSON *args = NULL, *st = NULL;
    char *text = NULL, *body = NULL;
    char *end;
    int rc, keep = 0;
    long pid;

    errno = 0;
    pid = strtol(a->pid, &end, 10);
    if (errno != 0 || end == a->pid || *end != '\0' || pid <= 0 ||
        pid > 0x3fffffff) {
        fprintf(stderr, "meliae-cli: %s wants a pid, not \"%s\"\n",
                a->detach ? "detach" : "attach", a->pid);
        return CLI_USAGE;
    }
    t.pid = (pid_t)pid;
    rc = inspect(&t, err, sizeof err);
    if (rc == CLI_OK && !a->detach)
        rc = find_build(&t, build, sizeof build, err, sizeof err);
    if (rc == CLI_OK && !a->detach)
        rc = check_socket(&t, a->socket, sock, sizeof sock, err, sizeof err);
    if (rc != CLI_OK)
        goto out;

    rc = cli_drop_make(&t, &d, err, sizeof err);
    if (rc != CLI_OK)
        goto out;
    args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "action", a->detach ? "detach" : "attach");
    cJSON_AddStringToObject(args, "path", build);
    cJSON_AddStringToObject(args, "socket", sock);
    if (a->interval > 0)
        cJSON_AddNumberToObject(args, "interval", a->interval);
    else
        cJSON_AddNullToObject(args, "interval");
    if (a->label != NULL)
        cJSON_AddStringToObject(args, "label", a->label);
    else
        cJSON_AddNullToObject(args, "label");
    /* the snapshot's own deadline ends before ours */
    cJSON_AddNumberToObject(args, "timeout", a->timeout > 4 ? a->timeout - 2
                                                            : a->timeout);
    cJSON_AddNumberToObject(args, "deadline", (double)time(NULL) + a->timeout);
    text = cJSON_PrintUnformatted(args);
    /* _D: a JSON string is a Python string literal (cJSON escapes quotes,
     * backslashes and control characters; the rest is UTF-8) */
    cJSON *dir = cJSON_CreateString(d.path);
    char *dirlit = cJSON_PrintUnformatted(dir);
    cJSON_Delete(dir);
    if (text == NULL || dirlit == NULL ||
        asprintf(&body, "_D = %s\n%s", dirlit, script_body) < 0) {
        free(dirlit);
        body = NULL;
        rc = fail(err, sizeof err, CLI_ERROR, "out of memory");
        goto out;
    }
    free(dirlit);
    rc = cli_drop_write(&t, &d, "args.json", text);
    if (rc == 0)
        rc = cli_drop_write(&t, &d, "attach.py", body);
    if (rc == 0)
        rc = cli_drop_give(&t, &d);
    if (rc != 0) {
        rc = fail(err, sizeof err, CLI_ERROR, "writing into %s of process "
                  "%d: %s", d.path, (int)t.pid, strerror(-rc));
        goto out;
    }

    if (isatty(STDERR_FILENO))
        fprintf(stderr, "meliae-cli: %s process %d (Python 3.%d, %s)...",
                a->detach ? "detaching from" : "attaching to", (int)t.pid,
                t.minor, t.minor >= 14 ? "PEP 768" : "gdb");
    snprintf(script, sizeof script, "%s/attach.py", d.path);
    snprintf(claimed, sizeof claimed, "%s/claimed", d.host);
    rc = cli_inject(&t, script, claimed, deadline, &method, err, sizeof err);
    if (rc == CLI_OK)
        rc = wait_status(&t, &d, deadline, &st, err, sizeof err);
    /* PEP 768 opens the script when the target gets to it, maybe after
     * we gave up: it stays, finds the deadline passed and removes its
     * directory.  (A pending call queued by gdb finds no file, and does
     * nothing.) */
    keep = rc != CLI_OK && st == NULL && strcmp(method, "pep768") == 0 &&
           strstr(err, "in time") != NULL;
    if (rc == CLI_OK)
        rc = answer(a, o, &t, method, st);
out:
    if (isatty(STDERR_FILENO))
        fputs("\r\033[K", stderr);
    if (keep)
        cli_drop_close(&d);
    else
        cli_drop_remove(&d);
    cJSON_Delete(args);
    cJSON_Delete(st);
    free(text);
    free(body);
    if (rc != CLI_OK)
        fprintf(stderr, "meliae-cli: %s\n", err);
    return rc;
}
