/* SPDX-License-Identifier: MIT
 *
 * procstats.c -- the process beside its objects: RSS and RssAnon from
 * /proc/self/status, and the object allocator's (pymalloc's) figures.
 *
 * When RSS grows and the Python objects do not, the question is whether
 * the memory went to pymalloc's arenas (objects freed but their arenas
 * kept: fragmentation) or elsewhere (a C extension's malloc, a native
 * leak).  pymalloc's state is private and changed in every version
 * (static in obmalloc.c before 3.12, per interpreter after), but
 * _PyObject_DebugMallocStats(), what sys._debugmallocstats() prints, is
 * exported on every version 3.9 to 3.15: it is written to a memory stream
 * and its totals are read back.  It is C code (no Python runs) and costs
 * a pass over the arenas, not over the objects.
 */
#define _GNU_SOURCE 1           /* open_memstream */
#include "pyinc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "procstats.h"

PyAPI_FUNC(int) _PyObject_DebugMallocStats(FILE *out);

/* "VmRSS:   123456 kB" -> bytes, for each wanted key. */
static void
read_status(struct ml_procstats *ps)
{
    char line[256];
    FILE *f = fopen("/proc/self/status", "re");

    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long long kb;

        if (sscanf(line, "VmRSS: %llu kB", &kb) == 1)
            ps->rss = (int64_t)kb * 1024;
        else if (sscanf(line, "RssAnon: %llu kB", &kb) == 1)
            ps->rss_anon = (int64_t)kb * 1024;
    }
    fclose(f);
}

/* The number after the last '=' of line, commas dropped; -1 if none. */
static int64_t
figure(const char *line)
{
    const char *eq = strrchr(line, '=');
    int64_t v = 0;
    int any = 0;

    if (eq == NULL)
        return -1;
    for (const char *p = eq + 1; *p != '\0' && *p != '\n'; p++) {
        if (*p >= '0' && *p <= '9') {
            v = v * 10 + (*p - '0');
            any = 1;
        } else if (*p != ',' && *p != ' ') {
            break;
        }
    }
    return any ? v : -1;
}

/* Reads the totals of _PyObject_DebugMallocStats' report (and sums the
 * "num pools" column of its size-class table). */
static void
parse_pymalloc(char *text, struct ml_procstats *ps)
{
    int in_table = 0;

    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        long long cls, size, pools, used, avail;

        if (strncmp(line, "-----", 5) == 0) {
            in_table = 1;
            continue;
        }
        if (in_table && sscanf(line, "%lld %lld %lld %lld %lld",
                               &cls, &size, &pools, &used, &avail) == 5) {
            ps->pools += pools;
            continue;
        }
        in_table = 0;
        if (strncmp(line, "# arenas allocated current", 26) == 0)
            ps->arenas = figure(line);
        else if (strstr(line, " arenas * ") != NULL)
            ps->arena_bytes = figure(line);
        else if (strncmp(line, "# bytes in allocated blocks", 27) == 0)
            ps->allocated_bytes = figure(line);
        else if (strncmp(line, "# bytes in available blocks", 27) == 0)
            ps->free_block_bytes = figure(line);
        else if (strstr(line, " unused pools * ") != NULL)
            ps->unused_pool_bytes = figure(line);
    }
}

int
ml__process_stats(struct ml_procstats *ps)
{
    char *text = NULL;
    size_t len = 0;
    FILE *mem;

    memset(ps, 0, sizeof(*ps));
    ps->rss = ps->rss_anon = -1;
    ps->arenas = ps->arena_bytes = ps->allocated_bytes = -1;
    ps->free_block_bytes = ps->unused_pool_bytes = -1;
    read_status(ps);
    mem = open_memstream(&text, &len);
    if (mem == NULL)
        return -errno;
    /* 0 when pymalloc is not in use (PYTHONMALLOC=malloc): no report. */
    ps->pymalloc = _PyObject_DebugMallocStats(mem) != 0;
    fclose(mem);
    if (ps->pymalloc && text != NULL)
        parse_pymalloc(text, ps);
    free(text);
    if (ps->pymalloc && (ps->arena_bytes < 0 || ps->allocated_bytes < 0))
        ps->pymalloc = 0;       /* a report this code cannot read */
    return 0;
}
