/* SPDX-License-Identifier: MIT
 *
 * activation.c -- see activation.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "activation.h"
#include "util.h"

static void
unset_listen_env(void)
{
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
}

static int
sockopt_int(int fd, int opt, int *v)
{
    socklen_t len = sizeof(*v);

    return getsockopt(fd, SOL_SOCKET, opt, v, &len) < 0 || len != sizeof(*v)
           ? -1 : 0;
}

int
md_activation_socket(int *fd, char *path, size_t n, char *err, size_t errlen)
{
    const char *spid = getenv("LISTEN_PID"), *sfds = getenv("LISTEN_FDS");
    int domain, type, acc, flags, rc = -1, s = MD_LISTEN_FDS_START;
    struct sockaddr_un sa;
    socklen_t salen = sizeof(sa);
    uint64_t pid, nfds;
    struct stat st;

    *fd = -1;
    if (n > 0)
        path[0] = '\0';
    if (spid == NULL) {
        unset_listen_env();
        return 0;
    }
    if (md_parse_uint(spid, 1, INT32_MAX, &pid) < 0) {
        snprintf(err, errlen, "LISTEN_PID='%s' is not a pid", spid);
        goto out;
    }
    if (pid != (uint64_t)getpid()) {
        rc = 0;                 /* meant for another process */
        goto out;
    }
    if (sfds == NULL || md_parse_uint(sfds, 0, 65536, &nfds) < 0) {
        snprintf(err, errlen, "LISTEN_FDS='%s' is not a count",
                 sfds != NULL ? sfds : "");
        goto out;
    }
    if (nfds == 0) {
        rc = 0;
        goto out;
    }
    if (fstat(s, &st) < 0 || !S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "systemd socket: descriptor %d is not a socket",
                 s);
        goto out;
    }
    if (sockopt_int(s, SO_DOMAIN, &domain) < 0
        || sockopt_int(s, SO_TYPE, &type) < 0
        || sockopt_int(s, SO_ACCEPTCONN, &acc) < 0) {
        snprintf(err, errlen, "systemd socket: getsockopt: %s",
                 strerror(errno));
        goto out;
    }
    if (domain != AF_UNIX || type != SOCK_STREAM || !acc) {
        snprintf(err, errlen, "systemd socket: descriptor %d is not a "
                 "listening Unix stream socket (ListenStream=/path in the "
                 ".socket unit)", s);
        goto out;
    }
    flags = fcntl(s, F_GETFD);
    if (flags < 0 || fcntl(s, F_SETFD, flags | FD_CLOEXEC) < 0) {
        snprintf(err, errlen, "systemd socket: fcntl: %s", strerror(errno));
        goto out;
    }
    memset(&sa, 0, sizeof(sa));
    if (getsockname(s, (struct sockaddr *)&sa, &salen) == 0
        && salen > offsetof(struct sockaddr_un, sun_path)
        && sa.sun_path[0] != '\0' && n > 0)
        snprintf(path, n, "%.*s",
                 (int)(salen - offsetof(struct sockaddr_un, sun_path)),
                 sa.sun_path);
    /* One socket unit, one ListenStream=: others are not ours to use. */
    for (uint64_t i = 1; i < nfds; i++)
        close(s + (int)i);
    *fd = s;
    rc = 1;
out:
    unset_listen_env();
    return rc;
}
