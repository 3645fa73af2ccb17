/* SPDX-License-Identifier: MIT
 *
 * drop.c -- the directory attach leaves in the target's /tmp: args.json
 * and attach.py from us, status (and a "claimed" directory) from the
 * script.
 *
 * The target's /tmp is reached through /proc/PID/root, its root in its
 * own mount namespace, but a symlink met on the way would be followed
 * from OUR root: a process (root in its container, say) could point its
 * /tmp at the host's /etc.  So the path is walked one component at a
 * time with O_NOFOLLOW, and everything after is done relative to the
 * directories' descriptors.  The directory stays ours (root's, mode
 * 0700) until its files are written, then goes to the target's uid, which
 * must write its answer there.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attach.h"

int
cli_drop_make(const struct target *t, struct drop *d, char *err,
              size_t errlen)
{
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    char root[64];
    int rootfd, tries;

    d->tmpfd = d->dirfd = -1;
    snprintf(root, sizeof root, "/proc/%d/root", (int)t->pid);
    rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return errno == EACCES || errno == EPERM
            ? cli_ptrace_denied(t->pid, err, errlen)
            : (snprintf(err, errlen, "%s: %s", root, strerror(errno)),
               CLI_ERROR);
    d->tmpfd = openat(rootfd, "tmp", O_PATH | O_DIRECTORY | O_NOFOLLOW |
                      O_CLOEXEC);
    close(rootfd);
    if (d->tmpfd < 0) {
        snprintf(err, errlen, "process %d has no /tmp directory (%s)",
                 (int)t->pid, errno == ELOOP || errno == ENOTDIR
                 ? "a symlink, refused" : strerror(errno));
        return CLI_ERROR;
    }
    for (tries = 0; tries < 16; tries++) {
        unsigned char r[10];
        size_t i;

        if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
            break;
        i = (size_t)snprintf(d->name, sizeof d->name, "meliae-attach-");
        for (size_t k = 0; k < sizeof r; k++)
            d->name[i++] = alnum[r[k] % (sizeof alnum - 1)];
        d->name[i] = '\0';
        if (mkdirat(d->tmpfd, d->name, 0700) == 0)
            break;
        if (errno != EEXIST) {
            tries = 16;
            break;
        }
    }
    if (tries == 16 ||
        (d->dirfd = openat(d->tmpfd, d->name, O_RDONLY | O_DIRECTORY |
                           O_NOFOLLOW | O_CLOEXEC)) < 0) {
        snprintf(err, errlen, "cannot make a directory in the /tmp of "
                 "process %d: %s", (int)t->pid, strerror(errno));
        return CLI_ERROR;
    }
    snprintf(d->path, sizeof d->path, "/tmp/%s", d->name);
    snprintf(d->host, sizeof d->host, "%s/tmp/%s", root, d->name);
    return CLI_OK;
}

int
cli_drop_write(const struct target *t, const struct drop *d,
               const char *name, const char *text)
{
    int fd = openat(d->dirfd, name, O_WRONLY | O_CREAT | O_EXCL |
                    O_NOFOLLOW | O_CLOEXEC, 0600);
    size_t len = strlen(text);
    int rc = 0;

    if (fd < 0)
        return -errno;
    if (write(fd, text, len) != (ssize_t)len)
        rc = errno ? -errno : -EIO;
    if (rc == 0 && fchown(fd, t->uid, t->gid) != 0)
        rc = -errno;
    close(fd);
    return rc;
}

int
cli_drop_give(const struct target *t, const struct drop *d)
{
    return fchown(d->dirfd, t->uid, t->gid) == 0 ? 0 : -errno;
}

ssize_t
cli_drop_read(const struct drop *d, const char *name, char *buf, size_t len)
{
    int fd = openat(d->dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
                    O_CLOEXEC);
    struct stat st;
    ssize_t n;

    if (fd < 0)
        return -errno;
    n = fstat(fd, &st) == 0 && S_ISREG(st.st_mode)
        ? cli_read_all(fd, buf, len) : -EINVAL;
    close(fd);
    return n;
}

ssize_t
cli_read_all(int fd, char *buf, size_t len)
{
    ssize_t n, total = 0;

    while ((size_t)total + 1 < len &&
           (n = read(fd, buf + total, len - 1 - (size_t)total)) > 0)
        total += n;
    buf[total] = '\0';
    return total;
}

void
cli_drop_remove(struct drop *d)
{
    if (d->dirfd >= 0) {
        int fd = dup(d->dirfd);
        DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
        struct dirent *e;

        /* files, and "claimed", an empty directory: one level */
        while (dir != NULL && (e = readdir(dir)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            if (unlinkat(d->dirfd, e->d_name, 0) != 0 && errno == EISDIR)
                unlinkat(d->dirfd, e->d_name, AT_REMOVEDIR);
        }
        if (dir != NULL)
            closedir(dir);
        else if (fd >= 0)
            close(fd);
        close(d->dirfd);
        unlinkat(d->tmpfd, d->name, AT_REMOVEDIR);
    }
    if (d->tmpfd >= 0)
        close(d->tmpfd);
    d->tmpfd = d->dirfd = -1;
}

void
cli_drop_close(struct drop *d)
{
    if (d->dirfd >= 0)
        close(d->dirfd);
    if (d->tmpfd >= 0)
        close(d->tmpfd);
    d->tmpfd = d->dirfd = -1;
}
