/* SPDX-License-Identifier: MIT
 *
 * forkchild.c -- a heap walk in a forked child; see forkchild.h.
 */
#define _GNU_SOURCE 1   /* pipe2, NSIG, syscall under -std=c11 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "forkchild.h"
#include "sink.h"

/* What the child writes to the pipe: one write, well under PIPE_BUF. */
struct report {
    int32_t rc;
    int32_t pad;
    uint64_t nobj;
    uint64_t nbytes;
};

/* Back to the default action for every caught signal. */
static void
reset_signals(void)
{
    struct sigaction sa, dfl;

    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP || sigaction(sig, NULL, &sa) < 0)
            continue;   /* also the C library's reserved signals */
        if (!(sa.sa_flags & SA_SIGINFO)
                && (sa.sa_handler == SIG_IGN || sa.sa_handler == SIG_DFL))
            continue;
        sigaction(sig, &dfl, NULL);
    }
}

/* Closes the descriptors first..last (inclusive). */
static void
close_range_compat(unsigned first, unsigned last)
{
    struct rlimit rl;
    /* No descriptor is at or above the soft limit, unless it was lowered
     * after opening them: a cap keeps the loop short when it is huge. */
    unsigned max = 1U << 20;

    if (first > last)
        return;
#ifdef SYS_close_range
    if (syscall(SYS_close_range, first, last, 0) == 0)
        return;
#endif
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
            && rl.rlim_cur < max)
        max = (unsigned)rl.rlim_cur;
    for (unsigned fd = first; fd <= last && fd < max; fd++)
        close((int)fd);
}

/* Closes every descriptor from 3 up but a and b (either may be -1). */
static void
close_others(int a, int b)
{
    int lo = a < b ? a : b, hi = a < b ? b : a;
    unsigned next = 3;

    if (lo >= 3) {
        close_range_compat(next, (unsigned)lo - 1);
        next = (unsigned)lo + 1;
    }
    if (hi >= 3 && (unsigned)hi >= next) {
        close_range_compat(next, (unsigned)hi - 1);
        next = (unsigned)hi + 1;
    }
    close_range_compat(next, ~0U);
}

static void
report(int fd, const struct report *r)
{
    const char *p = (const char *)r;
    size_t left = sizeof(*r);

    while (left > 0) {
        ssize_t n = write(fd, p, left);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        p += n;
        left -= (size_t)n;
    }
}

pid_t
ml_fork_run(int keep, int die_with_parent, ml_fork_fn fn, void *arg,
            int *status_fd)
{
    sigset_t all, old;
    pid_t pid, parent = getpid();
    int p[2], e;

    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    /* No signal handler may run in the child before reset_signals(). */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid = fork();
    if (pid == 0) {
        struct ml_walk_result res = { 0, 0 };
        struct report r;

        reset_signals();
#ifdef __linux__
        if (die_with_parent) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent)
                _exit(2);       /* the thread is gone already */
        }
#else
        (void)die_with_parent;
        (void)parent;
#endif
        close(p[0]);
        close_others(keep, p[1]);
        /* Nothing blocked, whatever the forking thread blocked (meliae's
         * streamer blocks the program's signals): a SIGTERM to the child
         * ends it with the default action. */
        sigemptyset(&all);
        pthread_sigmask(SIG_SETMASK, &all, NULL);
        memset(&r, 0, sizeof(r));
        r.rc = fn(arg, &res);
        r.nobj = res.nobj;
        r.nbytes = res.nbytes;
        report(p[1], &r);
        _exit(r.rc == 0 ? 0 : 1);
    }
    e = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        return -e;
    }
    *status_fd = p[0];
    return pid;
}

/* Whether the child has written its report or closed its end of the
 * status pipe (by exiting): it may have been reaped by the application
 * since, and its pid reused. */
static int
child_done(int status_fd)
{
    struct pollfd pfd = { status_fd, POLLIN, 0 };
    int n;

    while ((n = poll(&pfd, 1, 0)) < 0 && errno == EINTR)
        ;
    return n != 0;      /* readable, hung up, or cannot tell: no kill */
}

/* Kills the child unless it is done (see child_done).  A pidfd, where
 * the kernel has them (Linux >= 5.3), is taken before the check: if the
 * child is still running after it, the pidfd is the child's. */
static void
kill_child(pid_t pid, int status_fd)
{
#if defined(SYS_pidfd_open) && defined(SYS_pidfd_send_signal)
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);

    if (pidfd >= 0) {
        if (!child_done(status_fd))
            syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
        close(pidfd);
        return;
    }
#endif
    if (!child_done(status_fd))
        kill(pid, SIGKILL);
}

int
ml_fork_wait(pid_t pid, int status_fd, int64_t deadline_ns,
             struct ml_walk_result *res, int *termsig)
{
    struct report r;
    size_t got = 0;
    int killed = 0, status, rc;

    *termsig = 0;
    while (got < sizeof(r)) {
        struct pollfd pfd = { status_fd, POLLIN, 0 };
        int ms = -1;
        ssize_t n;

        if (deadline_ns != 0) {
            int64_t left = deadline_ns - ml_sink_now_ns();

            if (left <= 0) {
                killed = 1;
                break;
            }
            left = (left + 999999) / 1000000;
            ms = left > 1000000000 ? 1000000000 : (int)left;
        }
        n = poll(&pfd, 1, ms);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0) {
            killed = 1;
            break;
        }
        if (n < 0) {
            killed = 1;         /* else waitpid would wait without limit */
            break;
        }
        n = read(status_fd, (char *)&r + got, sizeof(r) - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;      /* end of file: the child is gone */
        got += (size_t)n;
    }
    if (killed)
        kill_child(pid, status_fd);
    close(status_fd);
    while ((rc = (int)waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        ;
    /* rc < 0 (ECHILD): the application reaped it; the pipe tells. */
    if (rc == pid && WIFSIGNALED(status))
        *termsig = WTERMSIG(status);
    if (killed)
        return -ETIMEDOUT;
    if (got < sizeof(r))
        return -ECHILD;
    res->nobj = r.nobj;
    res->nbytes = r.nbytes;
    return r.rc;
}
