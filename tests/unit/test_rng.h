/* SPDX-License-Identifier: MIT
 *
 * test_rng.h -- the deterministic PRNG the unit tests share (xorshift64*),
 * so that a failure reproduces from its seed.
 */
#ifndef ML_TEST_RNG_H
#define ML_TEST_RNG_H

#include <stdint.h>

static inline uint64_t
rng_next(uint64_t *st)
{
    uint64_t x = *st;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *st = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static inline uint64_t
rng_below(uint64_t *st, uint64_t n)
{
    return rng_next(st) % n;
}

#endif /* ML_TEST_RNG_H */
