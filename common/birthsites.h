/* SPDX-License-Identifier: MIT
 *
 * birthsites.h -- birth sites grouped as every answer shows them
 * (docs/dump-format.md, "Birth sites"; docs/cli-json.md, "births"): the
 * objects' counts and bytes summed per (group, traceback), then one
 * group's tracebacks merged by their first frame (the allocating line,
 * the "site"), most bytes first, each site showing the traceback of its
 * largest share.  One implementation for the store's answers
 * (store/report_births.c, a group per type) and the loader's
 * (ObjManager.birth_sites, one group); each side says which tracebacks
 * share a first frame (ml_births_site_fn), since the store reads frames
 * from its JSON and the loader from the dump's table.
 */
#ifndef ML_BIRTHSITES_H
#define ML_BIRTHSITES_H

#include <stddef.h>
#include <stdint.h>

/* The trace that stands for all the objects of a group (the store's
 * per-type totals, traced or not). */
#define ML_BIRTHS_ALL UINT32_MAX

struct ml_births_acc {
    uint64_t key;               /* (group << 32 | trace) + 1; 0: empty */
    uint64_t count, bytes;
};

/* The sums: an open-addressing table, then (ml_births_sort) a sorted
 * array.  Zeroed is empty. */
struct ml_births {
    struct ml_births_acc *v;
    size_t cap, n;
};

/* Counts one object of bytes under (group, trace).  0 or -ENOMEM. */
int ml_births_add(struct ml_births *b, uint32_t group, uint32_t trace,
                  uint64_t bytes);

/* Compacts and sorts the sums: by group, its ML_BIRTHS_ALL entry first,
 * then most bytes first, then by trace.  Returns their number, b->v[0 ..
 * number); no more ml_births_add after this. */
size_t ml_births_sort(struct ml_births *b);

void ml_births_free(struct ml_births *b);

static inline uint32_t
ml_births_group(const struct ml_births_acc *a)
{
    return (uint32_t)((a->key - 1) >> 32);
}

static inline uint32_t
ml_births_trace(const struct ml_births_acc *a)
{
    return (uint32_t)(a->key - 1);
}

/* One site: the tracebacks whose first frame is the same. */
struct ml_births_site {
    uint64_t site;              /* the caller's key of that frame */
    uint32_t trace;             /* the traceback of its largest share */
    uint64_t count, bytes;
};

/* The site of traceback trace: 0 with *site set (tracebacks whose first
 * frames are equal must get the same key), 1 to leave the trace out (no
 * such traceback, or one without frames), or a negative error. */
typedef int (*ml_births_site_fn)(void *ctx, uint32_t trace, uint64_t *site);

/* Merges run[0..n) (one group's sums, as ml_births_sort orders them, its
 * ML_BIRTHS_ALL entry excluded) by site into out (room for n): most bytes
 * first, then most objects, then by trace.  The number of sites, or
 * site_of's error, or -ENOMEM. */
long ml_births_sites(const struct ml_births_acc *run, size_t n,
                     ml_births_site_fn site_of, void *ctx,
                     struct ml_births_site *out);

#endif /* ML_BIRTHSITES_H */
