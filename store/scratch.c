/* SPDX-License-Identifier: MIT
 *
 * scratch.c -- see scratch.h.  A 64-byte header before the caller's bytes
 * says how long the block is and whether it is a mapping, so that one
 * free serves both.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ingest.h"             /* st__tmpfile */
#include "scratch.h"

#define HEAD 64

struct head {
    size_t len;                 /* header included */
    int mapped;
};

void *
st_scratch(size_t len)
{
    const char *dirs[] = { getenv("TMPDIR"), "/var/tmp", "/tmp" };
    struct head *h;

    if (len > SIZE_MAX - HEAD)
        return NULL;
    len += HEAD;
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        int fd;
        void *p;

        if (dirs[i] == NULL || dirs[i][0] == '\0' ||
            (fd = st__tmpfile(dirs[i])) < 0)
            continue;
        /* sparse: the file takes no room until pages are written */
        if (ftruncate(fd, (off_t)len) != 0) {
            close(fd);
            continue;
        }
        p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);              /* the mapping keeps the file */
        if (p == MAP_FAILED)
            continue;
        h = p;
        h->len = len;
        h->mapped = 1;
        return (char *)p + HEAD;
    }
    if (posix_memalign((void **)&h, HEAD, len) != 0)
        return NULL;
    memset(h, 0, len);
    h->len = len;
    h->mapped = 0;
    return (char *)h + HEAD;
}

void
st_scratch_free(void *p)
{
    struct head *h;

    if (p == NULL)
        return;
    h = (struct head *)((char *)p - HEAD);
    if (h->mapped)
        munmap(h, h->len);
    else
        free(h);
}
