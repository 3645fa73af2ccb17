/* SPDX-License-Identifier: MIT
 *
 * graph_wide.h -- a side table of the few 64-bit values (lens, sizes) that
 * do not fit the 16-bit per-object arrays of common/graph.h, by address.
 *
 * Entries are appended (a running seq gives line order); ml_graph_wide_sort
 * orders them by address, then seq, so that a binary search finds the
 * first line of an address.  Entries appended after a sort are a tail,
 * searched linearly, and sorted in again when the tail outgrows an eighth
 * of the table: lookups stay O(log k) and appends amortised O(log k).
 */
#ifndef ML_GRAPH_WIDE_H
#define ML_GRAPH_WIDE_H

#include <stddef.h>
#include <stdint.h>

struct ml_graph_wide_ent {
    uint64_t addr;
    uint64_t val;
    uint64_t seq;               /* append order: the first of an address wins */
};

struct ml_graph_wide {
    struct ml_graph_wide_ent *e;
    size_t n;
    size_t cap;
    size_t nsorted;             /* e[0 .. nsorted) sorted, the rest a tail */
    uint64_t next_seq;
};

/* Makes room for extra more entries (doubling).  0 or -ENOMEM. */
int ml_graph_wide_reserve(struct ml_graph_wide *w, size_t extra);

/* Appends (addr, val) after the others of addr (room reserved). */
void ml_graph_wide_append(struct ml_graph_wide *w, uint64_t addr, uint64_t val);

/* The value of the first entry of addr, or none. */
uint64_t ml_graph_wide_get(const struct ml_graph_wide *w, uint64_t addr,
                           uint64_t none);

/* Sets the value of addr's first entry, appending one if there is none
 * (room reserved); sorts the tail in when it has grown. */
void ml_graph_wide_set(struct ml_graph_wide *w, uint64_t addr, uint64_t val);

/* Moves other's entries (after w's in order) to w; other is emptied.  0 or
 * -ENOMEM. */
int ml_graph_wide_take(struct ml_graph_wide *w, struct ml_graph_wide *other);

/* Sorts every entry by address, then seq. */
void ml_graph_wide_sort(struct ml_graph_wide *w);

void ml_graph_wide_free(struct ml_graph_wide *w);

#endif /* ML_GRAPH_WIDE_H */
