/* SPDX-License-Identifier: MIT
 *
 * attach.h -- meliae-cli attach and detach: what attach.c (the target,
 * the script dropped into it, its answer) and inject.c (gdb, or PEP 768
 * through an interpreter of the target's version) share.
 */
#ifndef CLI_ATTACH_H
#define CLI_ATTACH_H

#include <limits.h>
#include <sys/types.h>

#include "cli.h"

struct attach_opts {
    const char *pid;            /* the argument, unparsed */
    const char *socket;         /* as the target sees it */
    const char *label;
    double interval;            /* seconds; 0: --once */
    unsigned timeout;           /* seconds, for the whole command */
    int detach;
};

/* What attach.c learns of the target before touching it. */
struct target {
    pid_t pid;
    pid_t nspid;                /* its pid in its own pid namespace */
    uid_t uid;
    gid_t gid;
    int major, minor;           /* 3, 11 */
    char exe[PATH_MAX];         /* its executable, as it sees it */
    char root[PATH_MAX];        /* its root directory, as we see it */
    int other_mnt, other_pid;   /* mount, pid namespace not ours */
};

/* The directory attach leaves in the target's /tmp (drop.c). */
struct drop {
    int tmpfd;                  /* the target's /tmp */
    int dirfd;                  /* ours in it */
    char name[40];              /* meliae-attach-XXXXXXXXXX */
    char path[64];              /* /tmp/NAME, as the target sees it */
    char host[128];             /* /proc/PID/root/tmp/NAME, for us */
};

/* Makes the directory, root's and 0700 until cli_drop_give.  Returns an
 * exit code, err a one-line reason; d's descriptors are -1 on failure. */
int cli_drop_make(const struct target *t, struct drop *d, char *err,
                  size_t errlen);
/* Writes a new file, mode 0600, owned by the target's uid; 0 or -errno. */
int cli_drop_write(const struct target *t, const struct drop *d,
                   const char *name, const char *text);
/* Gives the directory to the target's uid (its script writes there). */
int cli_drop_give(const struct target *t, const struct drop *d);
/* Reads a regular file (a symlink refused) into buf, NUL-terminated;
 * bytes read or -errno. */
ssize_t cli_drop_read(const struct drop *d, const char *name, char *buf,
                      size_t len);
/* Reads fd to its end or len - 1 bytes into buf, NUL-terminated; the
 * bytes read. */
ssize_t cli_read_all(int fd, char *buf, size_t len);
/* Removes the directory and what the script left in it; closes. */
void cli_drop_remove(struct drop *d);
/* Closes, leaving the directory (to a script that may still run). */
void cli_drop_close(struct drop *d);

/* Runs attach or detach (a->detach); prints the answer.  Returns an exit
 * code; errors are one line on stderr. */
int cli_attach(const struct attach_opts *a, const struct out *o);

/* Has the target run `exec(open(script).read())` (script: a path in its
 * mount namespace), through gdb (3.9-3.13) or sys.remote_exec (3.14+),
 * before deadline (CLOCK_MONOTONIC seconds).  claimed: the path (ours)
 * that the script makes when it starts (gdb may have it run twice; the
 * second run stops there).  Returns an exit code; err gets a one-line
 * reason.  *method: "gdb" or "pep768". */
int cli_inject(const struct target *t, const char *script,
               const char *claimed, double deadline, const char **method,
               char *err, size_t errlen);

/* The one line for a target we may not trace; returns CLI_ERROR. */
int cli_ptrace_denied(pid_t pid, char *err, size_t errlen);

/* CLOCK_MONOTONIC, in seconds. */
double cli_now(void);

#endif /* CLI_ATTACH_H */
