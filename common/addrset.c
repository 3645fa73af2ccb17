/* SPDX-License-Identifier: MIT
 *
 * addrset.c -- see addrset.h for the layout and why.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "addrset.h"

#define CHUNK_SHIFT 16                              /* 64 KiB chunks */
/* Live objects are at least 16 bytes on 64-bit builds (refcount + type),
 * 8 on 32-bit ones: one bit per possible object start. */
#if UINTPTR_MAX > 0xffffffffu
#  define GRAIN_SHIFT 4                             /* 16-byte grains */
#else
#  define GRAIN_SHIFT 3
#endif
#define BLOCK_BITS (1u << (CHUNK_SHIFT - GRAIN_SHIFT))
#define BLOCK_WORDS (BLOCK_BITS / 64)               /* 64 words = 512 B */
#define SLAB_BLOCKS 256                             /* 128 KiB per slab */

struct ml_addrset_slot {
    uint64_t chunk_plus1;       /* 0 = empty */
    uint64_t block;             /* index into the slabs */
};

void
ml_addrset_init(struct ml_addrset *s)
{
    memset(s, 0, sizeof(*s));
}

void
ml_addrset_free(struct ml_addrset *s)
{
    for (size_t i = 0; i < s->nslabs; i++)
        free(s->slabs[i]);
    free(s->slabs);
    free(s->dir);
    ml_addrset_init(s);
}

static inline size_t
hash_chunk(uint64_t chunk)
{
    return (size_t)((chunk * 0x9E3779B97F4A7C15ull) >> 17);
}

static inline uint64_t *
block_at(const struct ml_addrset *s, uint64_t block)
{
    return s->slabs[block / SLAB_BLOCKS] + (block % SLAB_BLOCKS) * BLOCK_WORDS;
}

static const struct ml_addrset_slot *
find(const struct ml_addrset *s, uint64_t chunk)
{
    size_t i;

    if (s->dir == NULL)
        return NULL;
    for (i = hash_chunk(chunk) & s->dir_mask;; i = (i + 1) & s->dir_mask) {
        const struct ml_addrset_slot *sl = &s->dir[i];

        if (sl->chunk_plus1 == chunk + 1)
            return sl;
        if (sl->chunk_plus1 == 0)
            return NULL;
    }
}

static int
grow_dir(struct ml_addrset *s)
{
    size_t ncap = s->dir == NULL ? 256 : (s->dir_mask + 1) * 2;
    struct ml_addrset_slot *nd = calloc(ncap, sizeof(*nd));

    if (nd == NULL)
        return -ENOMEM;
    for (size_t j = 0; s->dir != NULL && j <= s->dir_mask; j++) {
        size_t i;

        if (s->dir[j].chunk_plus1 == 0)
            continue;
        for (i = hash_chunk(s->dir[j].chunk_plus1 - 1) & (ncap - 1);
             nd[i].chunk_plus1 != 0; i = (i + 1) & (ncap - 1))
            ;
        nd[i] = s->dir[j];
    }
    free(s->dir);
    s->dir = nd;
    s->dir_mask = ncap - 1;
    return 0;
}

/* Returns the block index for a new chunk, allocating a slab if needed. */
static int
new_block(struct ml_addrset *s, uint64_t *block)
{
    uint64_t b = s->nchunks;

    if (b / SLAB_BLOCKS >= s->nslabs) {
        uint64_t *slab;

        if (s->nslabs == s->slabs_cap) {
            size_t ncap = s->slabs_cap ? s->slabs_cap * 2 : 16;
            uint64_t **ns = realloc(s->slabs, ncap * sizeof(*ns));

            if (ns == NULL)
                return -ENOMEM;
            s->slabs = ns;
            s->slabs_cap = ncap;
        }
        slab = calloc(SLAB_BLOCKS * BLOCK_WORDS, sizeof(uint64_t));
        if (slab == NULL)
            return -ENOMEM;
        s->slabs[s->nslabs++] = slab;
    }
    *block = b;
    return 0;
}

int
ml_addrset_add(struct ml_addrset *s, uintptr_t addr)
{
    uint64_t chunk = (uint64_t)addr >> CHUNK_SHIFT;
    unsigned bit = (unsigned)((addr >> GRAIN_SHIFT) & (BLOCK_BITS - 1));
    const struct ml_addrset_slot *sl = find(s, chunk);
    uint64_t *w, mask = 1ull << (bit & 63);

    if (sl == NULL) {
        uint64_t block;
        size_t i;
        int rc;

        /* Keep the directory at most half full. */
        if (s->dir == NULL || (s->nchunks + 1) * 2 > s->dir_mask + 1) {
            rc = grow_dir(s);
            if (rc < 0)
                return rc;
        }
        rc = new_block(s, &block);
        if (rc < 0)
            return rc;
        for (i = hash_chunk(chunk) & s->dir_mask; s->dir[i].chunk_plus1 != 0;
             i = (i + 1) & s->dir_mask)
            ;
        s->dir[i].chunk_plus1 = chunk + 1;
        s->dir[i].block = block;
        s->nchunks++;
        sl = &s->dir[i];
    }
    w = block_at(s, sl->block) + bit / 64;
    if (*w & mask)
        return 0;
    *w |= mask;
    s->nmembers++;
    return 1;
}

int
ml_addrset_has(const struct ml_addrset *s, uintptr_t addr)
{
    uint64_t chunk = (uint64_t)addr >> CHUNK_SHIFT;
    unsigned bit = (unsigned)((addr >> GRAIN_SHIFT) & (BLOCK_BITS - 1));
    const struct ml_addrset_slot *sl = find(s, chunk);

    if (sl == NULL)
        return 0;
    return (block_at(s, sl->block)[bit / 64] >> (bit & 63)) & 1;
}

void
ml_addrset_del(struct ml_addrset *s, uintptr_t addr)
{
    uint64_t chunk = (uint64_t)addr >> CHUNK_SHIFT;
    unsigned bit = (unsigned)((addr >> GRAIN_SHIFT) & (BLOCK_BITS - 1));
    const struct ml_addrset_slot *sl = find(s, chunk);
    uint64_t *w, mask = 1ull << (bit & 63);

    if (sl == NULL)
        return;
    w = block_at(s, sl->block) + bit / 64;
    if (*w & mask) {
        *w &= ~mask;
        s->nmembers--;
    }
}

size_t
ml_addrset_footprint(const struct ml_addrset *s)
{
    return (s->dir ? (s->dir_mask + 1) * sizeof(*s->dir) : 0)
        + s->nslabs * SLAB_BLOCKS * BLOCK_WORDS * sizeof(uint64_t)
        + s->slabs_cap * sizeof(*s->slabs);
}
