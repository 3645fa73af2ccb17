/* SPDX-License-Identifier: MIT
 *
 * procstats.h -- the process's RSS and pymalloc's figures (procstats.c),
 * sent with every snapshot (docs/protocol.md, "process").
 */
#ifndef ML_PROCSTATS_H
#define ML_PROCSTATS_H

#include <stdint.h>

/* -1: not known. */
struct ml_procstats {
    int64_t rss, rss_anon;      /* /proc/self/status VmRSS, RssAnon */
    int pymalloc;               /* the figures below are pymalloc's */
    int64_t arenas;             /* arenas allocated now */
    int64_t arena_bytes;        /* their bytes */
    int64_t pools;              /* pools in use */
    int64_t allocated_bytes;    /* bytes in allocated blocks */
    int64_t free_block_bytes;   /* bytes in free blocks of used pools */
    int64_t unused_pool_bytes;  /* bytes of empty pools in arenas */
};

/* Fills ps (with the GIL held).  Returns 0 or a negative errno. */
int ml__process_stats(struct ml_procstats *ps);

#endif /* ML_PROCSTATS_H */
