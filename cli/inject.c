/* SPDX-License-Identifier: MIT
 *
 * inject.c -- makes an unmodified CPython run one script file.
 *
 * 3.14 and later: PEP 768.  sys.remote_exec(pid, path) of an interpreter
 * of the target's own version (its executable, run in its root and
 * namespaces by nsenter when they are not ours) writes the path into the
 * target's thread state through the _Py_DebugOffsets of its PyRuntime
 * section; the target runs the file at its next safe point, in its main
 * thread.  Calling that interpreter rather than reimplementing the
 * offsets here keeps meliae-cli right for 3.15 and later, whose
 * _Py_DebugOffsets layout differs.
 *
 * 3.9 to 3.13: gdb in batch mode, as pyrasite and memray do: the code is
 * queued with Py_AddPendingCall and runs between two bytecodes; for a
 * main thread that stays outside Python (blocked in accept), a second gdb
 * session takes the GIL in that thread (PyGILState_Ensure) and runs the
 * code there (PyRun_SimpleString, then PyGILState_Release): inject_gdb.
 * gdb runs under a deadline: at the deadline it gets SIGINT, which with
 * `unwindonsignal` restores the target's registers and detaches; it is
 * never left attached.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "attach.h"

extern char **environ;

/* How long a command may go on after the signal that should stop it. */
#define KILL_GRACE_S 10.0

double
cli_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Runs argv (PATH searched) with stdin from /dev/null and its stdout and
 * stderr into out (the first outlen - 1 bytes, NUL-terminated), until it
 * exits.  At deadline it gets signal intr, and SIGKILL KILL_GRACE_S
 * later; *timed_out says so.  Returns its wait status, or -errno when it
 * could not be started. */
static int
run_bounded(const char *const argv[], double deadline, int intr, char *out,
            size_t outlen, int *timed_out)
{
    posix_spawn_file_actions_t fa;
    int fds[2], status = 0, rc;
    size_t used = 0;
    double kill_at = 0;
    pid_t child;

    *timed_out = 0;
    out[0] = '\0';
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -errno;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    /* posix_spawn's argv is char *const[] for history's sake only */
    rc = posix_spawnp(&child, argv[0], &fa, NULL, (char *const *)argv,
                      environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        return -rc;
    }
    for (;;) {
        struct pollfd p = { .fd = fds[0], .events = POLLIN };
        char buf[4096];
        ssize_t n = 0;

        if (poll(&p, 1, 50) > 0) {
            n = read(fds[0], buf, sizeof buf);
            if (n > 0 && used + 1 < outlen) {
                size_t k = (size_t)n < outlen - 1 - used ? (size_t)n
                                                          : outlen - 1 - used;
                memcpy(out + used, buf, k);
                used += k;
                out[used] = '\0';
            }
        }
        rc = waitpid(child, &status, WNOHANG);
        if (rc == child && n <= 0)
            break;
        double now = cli_now();
        if (!*timed_out && now >= deadline) {
            *timed_out = 1;
            kill(child, intr);
            kill_at = now + KILL_GRACE_S;
        } else if (*timed_out && kill_at > 0 && now >= kill_at) {
            kill(child, SIGKILL);
            kill_at = 0;
        }
        if (rc == child)
            break;
    }
    close(fds[0]);
    return status;
}

/* The last non-empty line of text, into line. */
static void
last_line(const char *text, char *line, size_t len)
{
    const char *end = text + strlen(text), *start;

    while (end > text && (end[-1] == '\n' || end[-1] == ' '))
        end--;
    start = end;
    while (start > text && start[-1] != '\n')
        start--;
    snprintf(line, len, "%.*s", (int)(end - start), start);
}

int
cli_ptrace_denied(pid_t pid, char *err, size_t errlen)
{
    snprintf(err, errlen, "ptrace not permitted on process %d: see "
             "kernel.yama.ptrace_scope (1 lets only a parent trace; 0 any "
             "process of the same uid), or run with CAP_SYS_PTRACE (root)",
             (int)pid);
    return CLI_ERROR;
}

/* The code PyRun_SimpleString runs: the script, in a namespace of its
 * own; nothing may escape (a pending call that fails leaves the
 * interpreter with an error and no exception). */
#define RUN_FILE "try:\\n exec(compile(open('%s','rb').read(),'%s','exec')," \
    "{'__name__':'__meliae_attach__'})\\nexcept BaseException:\\n pass\\n"

enum gdb_mode {
    GDB_QUEUE,      /* Py_AddPendingCall: runs between two bytecodes */
    GDB_DIRECT,     /* in the main thread now, if it is outside Python */
};

/* One gdb session: attach, run the mode's commands, detach.  Returns an
 * exit code; *held (GDB_DIRECT) when the main thread held the GIL, in C,
 * so that nothing was run. */
static int
run_gdb(const struct target *t, const char *script, enum gdb_mode mode,
        double deadline, int *held, char *err, size_t errlen)
{
    const char *tmp = getenv("TMPDIR");
    char cmds[PATH_MAX], pid[24], out[16384], line[512];
    int fd, timed_out, status;
    FILE *f;

    snprintf(cmds, sizeof cmds, "%s/meliae-gdb-XXXXXX",
             tmp != NULL && tmp[0] == '/' ? tmp : "/tmp");
    fd = mkstemp(cmds);
    if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
        snprintf(err, errlen, "%s: %s", cmds, strerror(errno));
        if (fd >= 0)
            close(fd);
        return CLI_ERROR;
    }
    /* Every command must succeed: an error ends the file, and gdb -batch
     * then detaches and quits. */
    fprintf(f, "set confirm off\n"
               "set pagination off\n"
               "set unwindonsignal on\n"
               "thread 1\n");
    if (mode == GDB_QUEUE)
        fprintf(f,
            "set $meliae_rc = (int) Py_AddPendingCall("
            "(int (*)(void *)) PyRun_SimpleString, (void *) \"" RUN_FILE "\")\n"
            "printf \"meliae: done rc=%%d\\n\", $meliae_rc\n", script, script);
    else
        fprintf(f,
            "if (int) PyGILState_Check()\n"
            "  printf \"meliae: held\\n\"\n"
            "else\n"
            "  set $meliae_gil = (int) PyGILState_Ensure()\n"
            "  set $meliae_rc = (int) PyRun_SimpleString(\"" RUN_FILE "\")\n"
            "  call (void) PyGILState_Release($meliae_gil)\n"
            "  printf \"meliae: done rc=%%d\\n\", $meliae_rc\n"
            "end\n", script, script);
    fprintf(f, "detach\nquit\n");
    if (fclose(f) != 0) {
        snprintf(err, errlen, "%s: %s", cmds, strerror(errno));
        unlink(cmds);
        return CLI_ERROR;
    }
    snprintf(pid, sizeof pid, "%d", (int)t->pid);
    const char *argv[] = { "gdb", "-nx", "-batch", "-p", pid, "-x", cmds,
                           NULL };
    setenv("DEBUGINFOD_URLS", "", 1);   /* no downloads while attached */
    status = run_bounded(argv, deadline, SIGINT, out, sizeof out, &timed_out);
    unlink(cmds);
    *held = strstr(out, "meliae: held") != NULL;
    if (status < 0) {
        snprintf(err, errlen, "cannot run gdb (Debian: apt-get install gdb):"
                 " %s", strerror(-status));
        return CLI_UNAVAILABLE;
    }
    if (strstr(out, "meliae: done rc=0") != NULL || *held)
        return CLI_OK;
    if (strstr(out, "ptrace: Operation not permitted") != NULL ||
        strstr(out, "Could not attach to process") != NULL)
        return cli_ptrace_denied(t->pid, err, errlen);
    if (timed_out) {
        /* interrupted in PyGILState_Ensure, or before gdb got that far */
        snprintf(err, errlen, "process %d did not run the attach code in "
                 "time: %s (gdb detached; nothing was changed in it)",
                 (int)t->pid, strstr(out, "signaled while in a function "
                                     "called from GDB") != NULL
                 ? "its main thread waits for the GIL, held by another "
                   "thread in C"
                 : "its main thread is blocked in C and does not reach the "
                   "eval loop");
        return CLI_ERROR;
    }
    if (strstr(out, "No symbol \"Py") != NULL) {
        snprintf(err, errlen, "process %d has no Py_AddPendingCall or "
                 "PyGILState_Check: not a CPython with its C API symbols",
                 (int)t->pid);
        return CLI_ERROR;
    }
    last_line(out, line, sizeof line);
    snprintf(err, errlen, "gdb could not run code in process %d: %s",
             (int)t->pid, line[0] ? line : "no output");
    return CLI_ERROR;
}

/* First queue the script as a pending call: the safe way, taken between
 * two bytecodes by a main thread that runs Python or comes back to it
 * soon (from sleep(0.1), from its turn of the GIL).  Only a main thread
 * still outside Python after GDB_GRACE_S (blocked in accept(), a long
 * sleep, a read) gets the script run in it directly, from the system
 * call gdb interrupted; the script claims its run, so the queued call,
 * once it comes, does nothing.  (Running it directly at once would run
 * Python code in a thread interrupted anywhere, in take_gil or malloc
 * holding their locks: gdb would wait for ever.) */
#define GDB_GRACE_S 1.0

static int
inject_gdb(const struct target *t, const char *script, const char *claimed,
           double deadline, char *err, size_t errlen)
{
    double until;
    int rc, held;

    rc = run_gdb(t, script, GDB_QUEUE, deadline, &held, err, errlen);
    if (rc != CLI_OK)
        return rc;
    until = cli_now() + GDB_GRACE_S;
    while (cli_now() < until && cli_now() < deadline) {
        if (access(claimed, F_OK) == 0)
            return CLI_OK;
        usleep(20000);
    }
    if (access(claimed, F_OK) == 0 || cli_now() >= deadline)
        return CLI_OK;          /* the wait for the answer says the rest */
    return run_gdb(t, script, GDB_DIRECT, deadline, &held, err, errlen);
}

static int
inject_pep768(const struct target *t, const char *script, double deadline,
              char *err, size_t errlen)
{
    char pid[24], nspid[24], out[8192], line[512];
    const char *argv[16];
    int n = 0, timed_out, status;

    snprintf(pid, sizeof pid, "%d", (int)t->pid);
    snprintf(nspid, sizeof nspid, "%d", (int)t->nspid);
    if (strcmp(t->root, "/") != 0 || t->other_mnt || t->other_pid) {
        /* The interpreter lives in the target's file system: run it there
         * (it reads /proc/PID/maps, so the pid is the one it sees). */
        argv[n++] = "nsenter";
        argv[n++] = "-t";
        argv[n++] = pid;
        if (t->other_mnt)
            argv[n++] = "-m";
        if (t->other_pid)
            argv[n++] = "-p";
        argv[n++] = "-r";
        argv[n++] = "--";
    }
    argv[n++] = t->exe;
    argv[n++] = "-I";
    argv[n++] = "-S";
    argv[n++] = "-c";
    argv[n++] = "import sys; sys.remote_exec(int(sys.argv[1]), sys.argv[2])";
    argv[n++] = t->other_pid ? nspid : pid;
    argv[n++] = script;
    argv[n] = NULL;
    status = run_bounded(argv, deadline, SIGKILL, out, sizeof out,
                         &timed_out);
    if (status < 0) {
        snprintf(err, errlen, "cannot run %s: %s", argv[0], strerror(-status));
        return CLI_ERROR;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return CLI_OK;
    if (timed_out) {
        snprintf(err, errlen, "sys.remote_exec for process %d did not "
                 "return in time", (int)t->pid);
        return CLI_ERROR;
    }
    last_line(out, line, sizeof line);
    if (strcasestr(out, "remote debugging") != NULL &&
        (strstr(out, "not enabled") != NULL || strstr(out, "disabled")))
        snprintf(err, errlen, "remote debugging is disabled in process %d "
                 "(PYTHON_DISABLE_REMOTE_DEBUG or -X disable_remote_debug)",
                 (int)t->pid);
    else if (strstr(out, "PermissionError") != NULL ||
             strstr(out, "Operation not permitted") != NULL)
        return cli_ptrace_denied(t->pid, err, errlen);
    else
        snprintf(err, errlen, "sys.remote_exec(%d) failed: %s", (int)t->pid,
                 line[0] ? line : "no output");
    return CLI_ERROR;
}

int
cli_inject(const struct target *t, const char *script, const char *claimed,
           double deadline, const char **method, char *err, size_t errlen)
{
    if (t->major > 3 || t->minor >= 14) {
        *method = "pep768";
        return inject_pep768(t, script, deadline, err, errlen);
    }
    *method = "gdb";
    return inject_gdb(t, script, claimed, deadline, err, errlen);
}
