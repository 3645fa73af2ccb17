/* SPDX-License-Identifier: MIT
 *
 * addrset.h -- a compact set of object addresses.
 *
 * The dump's seen-set.  A hash set of 8-byte addresses at 50% load costs
 * 16 bytes per member; this costs one bit per 16 bytes of address space in
 * the 64 KiB chunks that hold at least one member, plus 16 bytes of
 * directory per chunk.  Live objects are at least 16 bytes long, so two
 * distinct objects never share an address/16 and one bit is exact.  Heaps
 * are dense (pymalloc arenas), so a million small objects spread over
 * ~100 MiB cost ~1 MiB of bitmap, allocated lazily in slabs.
 *
 * Not thread-safe; the scanner uses it under the GIL.  Memory comes from
 * malloc/calloc (never the Python allocator, which the walk must not
 * disturb).
 */
#ifndef ML_ADDRSET_H
#define ML_ADDRSET_H

#include <stddef.h>
#include <stdint.h>

struct ml_addrset_slot;

struct ml_addrset {
    struct ml_addrset_slot *dir;    /* open addressing, chunk -> block */
    size_t dir_mask;                /* capacity - 1; capacity is 2^k */
    size_t nchunks;
    uint64_t **slabs;               /* blocks, ML_ADDRSET_SLAB at a time */
    size_t nslabs;
    size_t slabs_cap;
    size_t nmembers;
};

void ml_addrset_init(struct ml_addrset *s);
void ml_addrset_free(struct ml_addrset *s);

/* 1 if addr was added, 0 if it was already a member, -ENOMEM. */
int ml_addrset_add(struct ml_addrset *s, uintptr_t addr);
/* 1 if addr is a member, else 0. */
int ml_addrset_has(const struct ml_addrset *s, uintptr_t addr);
/* Removes addr if present (the blocks stay allocated for reuse). */
void ml_addrset_del(struct ml_addrset *s, uintptr_t addr);

/* Bytes currently allocated, for the benchmark and tests. */
size_t ml_addrset_footprint(const struct ml_addrset *s);

#endif /* ML_ADDRSET_H */
