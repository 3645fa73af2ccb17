/* SPDX-License-Identifier: MIT
 *
 * creds.c -- see creds.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "creds.h"

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59        /* Linux 4.13 */
#endif

/* Set by md_creds_init before the loop starts; read-only after. */
static double boot_time;        /* epoch seconds of the boot, or 0 */
static long clock_ticks;

/* Reads a small /proc file whole into buf (NUL-terminated).  Length or
 * -errno. */
static ssize_t
read_small(const char *path, char *buf, size_t n)
{
    size_t off = 0;
    int fd, e;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    while (off < n - 1) {
        ssize_t r = read(fd, buf + off, n - 1 - off);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            e = errno;
            close(fd);
            return -e;
        }
        if (r == 0)
            break;
        off += (size_t)r;
    }
    close(fd);
    buf[off] = '\0';
    return (ssize_t)off;
}

int
md_creds_init(void)
{
    char buf[8192];
    const char *p;
    ssize_t n;

    clock_ticks = sysconf(_SC_CLK_TCK);
    n = read_small("/proc/stat", buf, sizeof(buf));
    if (n < 0)
        return (int)n;
    p = strstr(buf, "\nbtime ");
    if (p == NULL || clock_ticks <= 0)
        return -ENOENT;
    boot_time = strtod(p + 7, NULL);
    return 0;
}

/* Field 22 of /proc/PID/stat (starttime, clock ticks after boot) as epoch
 * seconds, or 0.  The comm field may hold spaces and ')': count fields
 * from the last ')'. */
static double
start_time_of(pid_t pid)
{
    char path[64], buf[1024];
    const char *p;
    int field;

    if (boot_time == 0 || pid <= 0)
        return 0;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (read_small(path, buf, sizeof(buf)) < 0)
        return 0;
    p = strrchr(buf, ')');
    if (p == NULL)
        return 0;
    /* After ") " comes field 3 (state); starttime is field 22. */
    for (field = 2; field < 22 && p != NULL; field++)
        p = strchr(p + 1, ' ');
    if (p == NULL)
        return 0;
    return boot_time + (double)strtoull(p + 1, NULL, 10) / (double)clock_ticks;
}

int
md_peer_get(int fd, struct md_peer *p)
{
    struct ucred uc;
    socklen_t len = sizeof(uc);

    memset(p, 0, sizeof(*p));
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
        return -errno;
    if (len != sizeof(uc))
        return -EPROTO;
    p->pid = uc.pid;
    p->uid = uc.uid;
    p->gid = uc.gid;
    p->start_time = start_time_of(uc.pid);
    return 0;
}

/* 1 if group is in the gid list. */
static int
in_list(const gid_t *g, size_t n, gid_t group)
{
    for (size_t i = 0; i < n; i++)
        if (g[i] == group)
            return 1;
    return 0;
}

/* The "Groups:" line of /proc/PID/status: for kernels without
 * SO_PEERGROUPS.  Racy with pid reuse, hence the second choice. */
static int
proc_groups_have(pid_t pid, gid_t group)
{
    char path[64], buf[4096];
    const char *p;
    char *end;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    if (read_small(path, buf, sizeof(buf)) < 0)
        return 0;
    p = strstr(buf, "\nGroups:");
    if (p == NULL)
        return 0;
    p += 8;
    for (;;) {
        unsigned long g;

        while (*p == ' ' || *p == '\t')
            p++;
        if (*p < '0' || *p > '9')
            return 0;
        g = strtoul(p, &end, 10);
        if ((gid_t)g == group)
            return 1;
        p = end;
    }
}

int
md_peer_allowed(int fd, const struct md_peer *p, gid_t group)
{
    gid_t small[64], *g = small;
    socklen_t len = sizeof(small);
    int r;

    if (p->uid == geteuid() || p->uid == 0)
        return 1;
    if (group == (gid_t)-1)
        return 0;
    if (p->gid == group)
        return 1;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) < 0) {
        if (errno == ERANGE && len > sizeof(small)) {
            g = malloc(len);
            if (g == NULL)
                return 0;
            if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) < 0) {
                free(g);
                return 0;
            }
        } else if (errno == ENOPROTOOPT) {
            return proc_groups_have(p->pid, group);
        } else {
            return 0;
        }
    }
    r = in_list(g, len / sizeof(gid_t), group);
    if (g != small)
        free(g);
    return r;
}

void
md_peer_cmdline(pid_t pid, char *argv0, char *script, size_t n)
{
    char path[64], buf[4096];
    const char *p, *end, *base;
    ssize_t len;

    argv0[0] = script[0] = '\0';
    if (pid <= 0)
        return;
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    len = read_small(path, buf, sizeof(buf));
    if (len <= 0)
        return;
    end = buf + len;            /* the arguments are NUL-separated */
    snprintf(argv0, n, "%s", buf);
    base = strrchr(buf, '/');
    base = base != NULL ? base + 1 : buf;
    if (strncmp(base, "python", 6) != 0)
        return;
    for (p = buf + strlen(buf) + 1; p < end; p += strlen(p) + 1) {
        if (strcmp(p, "-c") == 0 || strcmp(p, "-m") == 0 || p[0] == '\0')
            return;
        if (p[0] != '-') {
            snprintf(script, n, "%s", p);
            return;
        }
        if ((strcmp(p, "-W") == 0 || strcmp(p, "-X") == 0) && p + 3 < end)
            p += strlen(p) + 1;         /* the option's value */
    }
}
