/* SPDX-License-Identifier: MIT
 *
 * test_addrset.c -- cmocka tests for the compact address set
 * (common/addrset.c): add/has/del semantics, 16-byte granularity, many
 * chunks (directory growth, several slabs), a differential check against a
 * sorted array, the memory bound for dense heaps, and free/reuse.
 */
#define _GNU_SOURCE 1

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_rng.h"

#include "addrset.h"

/* The layout addrset.h describes: 64 KiB chunks, one bit per 16 bytes,
 * blocks handed out in slabs; a directory slot is two uint64_t. */
#define CHUNK_BYTES ((uintptr_t)1 << 16)
#define GRAIN 16u
#define BLOCK_BYTES (CHUNK_BYTES / GRAIN / 8)           /* 512 */
#define SLOT_BYTES (2 * sizeof(uint64_t))

static int
cmp_addr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;

    return x < y ? -1 : x > y;
}

static int
ref_has(const uintptr_t *ref, size_t n, uintptr_t a)
{
    return bsearch(&a, ref, n, sizeof(*ref), cmp_addr) != NULL;
}

static size_t
next_pow2(size_t n)
{
    size_t p = 1;

    while (p < n)
        p *= 2;
    return p;
}

/* ------------------------------------------------------------------------ */

static void
test_addrset_init_and_free_of_empty_set(void **state)
{
    struct ml_addrset s;

    (void)state;
    ml_addrset_init(&s);
    assert_int_equal(s.nmembers, 0);
    assert_int_equal(ml_addrset_footprint(&s), 0);
    assert_int_equal(ml_addrset_has(&s, 0), 0);
    assert_int_equal(ml_addrset_has(&s, 0x7f0000001000u), 0);
    assert_int_equal(ml_addrset_has(&s, UINTPTR_MAX), 0);
    ml_addrset_del(&s, 0x1000);             /* no-op on an empty set */
    assert_int_equal(s.nmembers, 0);
    ml_addrset_free(&s);
    assert_int_equal(s.nmembers, 0);
    assert_int_equal(ml_addrset_footprint(&s), 0);
    ml_addrset_free(&s);                    /* freeing twice is harmless */
    assert_int_equal(ml_addrset_has(&s, 0x1000), 0);
}

static void
test_addrset_add_returns_1_then_0_for_same_address(void **state)
{
    struct ml_addrset s;
    uintptr_t a = 0x7f12345678f0u;

    (void)state;
    ml_addrset_init(&s);
    assert_int_equal(ml_addrset_add(&s, a), 1);
    assert_int_equal(ml_addrset_add(&s, a), 0);
    assert_int_equal(ml_addrset_add(&s, a), 0);
    assert_int_equal(s.nmembers, 1);
    assert_int_equal(ml_addrset_add(&s, a + 16), 1);
    assert_int_equal(ml_addrset_add(&s, a + 16), 0);
    assert_int_equal(s.nmembers, 2);
    ml_addrset_free(&s);
}

static void
test_addrset_has_reports_only_added_addresses(void **state)
{
    struct ml_addrset s;
    uintptr_t base = 0x55550000a000u;

    (void)state;
    ml_addrset_init(&s);
    assert_int_equal(ml_addrset_add(&s, base), 1);
    assert_int_equal(ml_addrset_add(&s, base + 4096), 1);
    assert_int_equal(ml_addrset_has(&s, base), 1);
    assert_int_equal(ml_addrset_has(&s, base + 4096), 1);
    for (uintptr_t a = base - 4 * CHUNK_BYTES; a < base + 4 * CHUNK_BYTES;
         a += GRAIN) {
        int want = a == base || a == base + 4096;

        if (ml_addrset_has(&s, a) != want)
            fail_msg("has(%#lx) = %d", (unsigned long)a, !want);
    }
    /* the same offset in another chunk is not a member */
    assert_int_equal(ml_addrset_has(&s, base + CHUNK_BYTES), 0);
    assert_int_equal(ml_addrset_has(&s, base + ((uintptr_t)1 << 32)), 0);
    assert_int_equal(ml_addrset_has(&s, base ^ ((uintptr_t)1 << 47)), 0);
    ml_addrset_free(&s);
}

static void
test_addrset_del_removes_only_that_member(void **state)
{
    struct ml_addrset s;
    uintptr_t base = 0x600000000000u;

    (void)state;
    ml_addrset_init(&s);
    for (int i = 0; i < 10; i++)
        assert_int_equal(ml_addrset_add(&s, base + 16 * (uintptr_t)i), 1);
    assert_int_equal(s.nmembers, 10);
    ml_addrset_del(&s, base + 16 * 3);
    assert_int_equal(s.nmembers, 9);
    assert_int_equal(ml_addrset_has(&s, base + 16 * 3), 0);
    for (int i = 0; i < 10; i++)
        if (i != 3)
            assert_int_equal(ml_addrset_has(&s, base + 16 * (uintptr_t)i), 1);
    /* deleting a non-member, in a known and an unknown chunk, changes
     * nothing */
    ml_addrset_del(&s, base + 16 * 3);
    ml_addrset_del(&s, base + 16 * 100);
    ml_addrset_del(&s, base + 100 * CHUNK_BYTES);
    assert_int_equal(s.nmembers, 9);
    /* a deleted address can be added again */
    assert_int_equal(ml_addrset_add(&s, base + 16 * 3), 1);
    assert_int_equal(ml_addrset_has(&s, base + 16 * 3), 1);
    assert_int_equal(s.nmembers, 10);
    for (int i = 0; i < 10; i++)
        ml_addrset_del(&s, base + 16 * (uintptr_t)i);
    assert_int_equal(s.nmembers, 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(ml_addrset_has(&s, base + 16 * (uintptr_t)i), 0);
    ml_addrset_free(&s);
}

static void
test_addrset_addresses_16_bytes_apart_are_distinct(void **state)
{
    struct ml_addrset s;
    uintptr_t base = 0x7ffff7a00000u;   /* chunk-aligned */

    (void)state;
    ml_addrset_init(&s);
    /* every other grain of two whole chunks, plus both sides of the
     * boundary between them */
    for (uintptr_t a = base; a < base + 2 * CHUNK_BYTES; a += 2 * GRAIN)
        assert_int_equal(ml_addrset_add(&s, a), 1);
    assert_int_equal(s.nmembers, 2 * CHUNK_BYTES / (2 * GRAIN));
    for (uintptr_t a = base; a < base + 2 * CHUNK_BYTES; a += GRAIN)
        if (ml_addrset_has(&s, a) != (((a - base) / GRAIN) % 2 == 0))
            fail_msg("has(%#lx) wrong", (unsigned long)a);
    assert_int_equal(ml_addrset_add(&s, base + CHUNK_BYTES - GRAIN), 1);
    assert_int_equal(ml_addrset_has(&s, base + CHUNK_BYTES), 1);
    assert_int_equal(ml_addrset_has(&s, base - GRAIN), 0);
    assert_int_equal(ml_addrset_has(&s, base + 2 * CHUNK_BYTES), 0);
    /* all 4096 grains of one chunk are separate members */
    for (uintptr_t a = base + 10 * CHUNK_BYTES; a < base + 11 * CHUNK_BYTES;
         a += GRAIN)
        assert_int_equal(ml_addrset_add(&s, a), 1);
    assert_int_equal(s.nmembers, CHUNK_BYTES / GRAIN + 1 + 4096);
    ml_addrset_free(&s);
}

/* One bit per 16 bytes: addresses inside one 16-byte grain are the same
 * member (live objects are at least 16 bytes, so this is exact for them). */
static void
test_addrset_treats_addresses_within_one_grain_as_one_member(void **state)
{
    struct ml_addrset s;
    uintptr_t a = 0x7f0000123450u;

    (void)state;
    ml_addrset_init(&s);
    assert_int_equal(ml_addrset_add(&s, a + 8), 1);
    assert_int_equal(ml_addrset_has(&s, a), 1);
    assert_int_equal(ml_addrset_has(&s, a + 15), 1);
    assert_int_equal(ml_addrset_add(&s, a), 0);
    assert_int_equal(ml_addrset_has(&s, a + 16), 0);
    assert_int_equal(ml_addrset_has(&s, a - 1), 0);
    ml_addrset_free(&s);
}

static void
test_addrset_handles_lowest_and_highest_addresses(void **state)
{
    struct ml_addrset s;
    const uintptr_t top = UINTPTR_MAX & ~(uintptr_t)(GRAIN - 1);
    const uintptr_t vals[] = { 0, GRAIN, CHUNK_BYTES, top, top - GRAIN,
                               top - CHUNK_BYTES, (uintptr_t)1 << 47,
                               ((uintptr_t)1 << 48) - GRAIN };
    const size_t n = sizeof(vals) / sizeof(vals[0]);

    (void)state;
    ml_addrset_init(&s);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ml_addrset_add(&s, vals[i]), 1);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ml_addrset_add(&s, vals[i]), 0);
        assert_int_equal(ml_addrset_has(&s, vals[i]), 1);
    }
    assert_int_equal(s.nmembers, n);
    assert_int_equal(ml_addrset_has(&s, 2 * GRAIN), 0);
    assert_int_equal(ml_addrset_has(&s, top - 2 * GRAIN), 0);
    assert_int_equal(ml_addrset_has(&s, CHUNK_BYTES + GRAIN), 0);
    ml_addrset_del(&s, 0);
    assert_int_equal(ml_addrset_has(&s, 0), 0);
    assert_int_equal(ml_addrset_has(&s, top), 1);
    assert_int_equal(s.nmembers, n - 1);
    ml_addrset_free(&s);
}

/* 100k chunks: the directory grows many times and blocks span several
 * hundred slabs.  Chunks are scattered (distinct even chunk numbers, since
 * 7919 is prime to 400000), so their hashes collide. */
static void
test_addrset_keeps_members_in_100k_distinct_chunks(void **state)
{
    enum { NCHUNKS = 100000 };
    struct ml_addrset s;
    uintptr_t base = 0x100000000000u;

    (void)state;
    ml_addrset_init(&s);
    for (uintptr_t i = 0; i < NCHUNKS; i++) {
        uintptr_t chunk = 2 * ((i * 7919u) % (NCHUNKS * 4u));     /* distinct */
        uintptr_t a = base + chunk * CHUNK_BYTES + (i % 4096) * GRAIN;

        assert_int_equal(ml_addrset_add(&s, a), 1);
        if (i % 9973 == 0)              /* earlier members survive growth */
            for (uintptr_t j = 0; j <= i; j += 97)
                assert_int_equal(ml_addrset_has(&s, base
                    + 2 * ((j * 7919u) % (NCHUNKS * 4u)) * CHUNK_BYTES
                    + (j % 4096) * GRAIN), 1);
    }
    assert_int_equal(s.nmembers, NCHUNKS);
    assert_int_equal(s.nchunks, NCHUNKS);
    assert_true(s.nslabs >= 2);
    assert_true(s.dir_mask + 1 >= 2 * NCHUNKS);    /* at most half full */
    for (uintptr_t i = 0; i < NCHUNKS; i++) {
        uintptr_t chunk = 2 * ((i * 7919u) % (NCHUNKS * 4u));
        uintptr_t a = base + chunk * CHUNK_BYTES + (i % 4096) * GRAIN;

        if (ml_addrset_has(&s, a) != 1)
            fail_msg("member %lu lost", (unsigned long)i);
        assert_int_equal(ml_addrset_add(&s, a), 0);
        /* the neighbouring grains, and the same grain one chunk higher
         * (an odd chunk: never used), are not */
        assert_int_equal(ml_addrset_has(&s, a + GRAIN), 0);
        if (i % 4096 != 0)
            assert_int_equal(ml_addrset_has(&s, a - GRAIN), 0);
        assert_int_equal(ml_addrset_has(&s, a + CHUNK_BYTES), 0);
    }
    /* a second member per chunk lands in the same block, no new chunk */
    for (uintptr_t i = 0; i < NCHUNKS; i += 10) {
        uintptr_t chunk = 2 * ((i * 7919u) % (NCHUNKS * 4u));

        assert_int_equal(ml_addrset_add(&s,
            base + chunk * CHUNK_BYTES + ((i + 1) % 4096) * GRAIN), 1);
    }
    assert_int_equal(s.nchunks, NCHUNKS);
    assert_int_equal(s.nmembers, NCHUNKS + NCHUNKS / 10);
    /* memory: a block per chunk in whole slabs of 256, the directory and
     * the slab pointer array are all counted */
    assert_int_equal(s.nslabs, (NCHUNKS + 255) / 256);
    assert_true(ml_addrset_footprint(&s) >= NCHUNKS * BLOCK_BYTES
                                            + 2 * NCHUNKS * SLOT_BYTES);
    assert_true(ml_addrset_footprint(&s)
                >= s.nslabs * 256 * BLOCK_BYTES
                   + (s.dir_mask + 1) * SLOT_BYTES
                   + s.slabs_cap * sizeof(uint64_t *));
    ml_addrset_free(&s);
}

/* 1e6 random 16-byte-aligned addresses in 256 MiB against a sorted array;
 * then deletes a third of them and checks again. */
static void
test_addrset_matches_sorted_reference_for_1e6_random_addresses(void **state)
{
    enum { N = 1000000 };
    const uintptr_t base = 0x7f3a00000000u, span = (uintptr_t)256 << 20;
    uintptr_t *adds = malloc(N * sizeof(*adds));
    uintptr_t *ref = malloc(N * sizeof(*ref));
    unsigned char *gone = NULL;
    struct ml_addrset s;
    uint64_t st = 0x2545f4914f6cdd1dull;
    size_t nref = 0, nnew = 0, nabsent = 0, ndel = 0;

    (void)state;
    assert_non_null(adds);
    assert_non_null(ref);
    for (size_t i = 0; i < N; i++)
        adds[i] = base + (uintptr_t)(rng_next(&st) % (span / GRAIN)) * GRAIN;
    memcpy(ref, adds, N * sizeof(*ref));
    qsort(ref, N, sizeof(*ref), cmp_addr);
    for (size_t i = 0; i < N; i++)
        if (nref == 0 || ref[nref - 1] != ref[i])
            ref[nref++] = ref[i];
    assert_true(nref < N);              /* the sample has duplicates */

    ml_addrset_init(&s);
    for (size_t i = 0; i < N; i++) {
        int rc = ml_addrset_add(&s, adds[i]);

        assert_true(rc == 0 || rc == 1);
        nnew += (size_t)rc;
    }
    assert_int_equal(nnew, nref);
    assert_int_equal(s.nmembers, nref);
    for (size_t i = 0; i < nref; i++)
        if (!ml_addrset_has(&s, ref[i]))
            fail_msg("member %#lx missing", (unsigned long)ref[i]);
    /* random probes, members or not, incl. just outside the range */
    for (size_t i = 0; i < N; i++) {
        uintptr_t a = base - CHUNK_BYTES
            + (uintptr_t)(rng_next(&st) % ((span + 2 * CHUNK_BYTES) / GRAIN))
              * GRAIN;
        int want = ref_has(ref, nref, a);

        nabsent += !want;
        if (ml_addrset_has(&s, a) != want)
            fail_msg("has(%#lx) != %d", (unsigned long)a, want);
    }
    assert_true(nabsent > N / 2);       /* probed many non-members */

    /* delete every third member, then compare again */
    gone = calloc(nref, 1);
    assert_non_null(gone);
    for (size_t i = 0; i < nref; i += 3) {
        ml_addrset_del(&s, ref[i]);
        gone[i] = 1;
        ndel++;
    }
    assert_int_equal(s.nmembers, nref - ndel);
    for (size_t i = 0; i < nref; i++)
        if (ml_addrset_has(&s, ref[i]) != !gone[i])
            fail_msg("after del: has(%#lx) wrong", (unsigned long)ref[i]);
    for (size_t i = 0; i < nref; i += 3)
        assert_int_equal(ml_addrset_add(&s, ref[i]), 1);
    assert_int_equal(s.nmembers, nref);

    ml_addrset_free(&s);
    free(gone);
    free(ref);
    free(adds);
}

/* 1e6 objects at base + 16*k*i: one bit per 16 bytes of span, rounded up
 * to whole slabs (256 blocks of 512 B), plus a directory of 16-byte slots
 * (at least 256, doubled whenever it would be more than half full, so at
 * most next_pow2(2 * nchunks)) and the slab pointer array (at least 16,
 * doubling). */
static void
test_addrset_footprint_for_1e6_dense_objects_stays_below_layout_bound(void **state)
{
    enum { N = 1000000, SLAB = 256 * BLOCK_BYTES };

    (void)state;
    for (uintptr_t k = 1; k <= 8; k *= 2) {
        struct ml_addrset s;
        const uintptr_t base = 0x7f5500012340u;     /* not chunk-aligned */
        uintptr_t span = GRAIN * k * (N - 1) + GRAIN;
        size_t nchunks = (size_t)(span / CHUNK_BYTES) + 2;
        size_t nslabs = (nchunks + 255) / 256;
        size_t bound, fp;

        ml_addrset_init(&s);
        for (uintptr_t i = 0; i < N; i++)
            assert_int_equal(ml_addrset_add(&s, base + GRAIN * k * i), 1);
        assert_int_equal(s.nmembers, N);
        assert_true(s.nchunks <= nchunks);
        bound = nslabs * SLAB
              + (nchunks * 2 < 256 ? 256 : next_pow2(nchunks * 2)) * SLOT_BYTES
              + (nslabs * 2 < 16 ? 16 : nslabs * 2) * sizeof(void *);
        fp = ml_addrset_footprint(&s);
        if (fp > bound)
            fail_msg("k=%lu: footprint %zu > bound %zu",
                     (unsigned long)k, fp, bound);
        /* the point of it: far below a hash set's 16 B/member, and for the
         * densest heaps under a byte per member */
        assert_true(fp < (size_t)N * 16 / 8);
        if (k <= 4)
            assert_true(fp < (size_t)N);
        /* and at least the bitmap the span needs */
        assert_true(fp >= span / GRAIN / 8);
        ml_addrset_free(&s);
    }
}

static void
test_addrset_can_be_reused_after_free(void **state)
{
    struct ml_addrset s;
    uintptr_t base = 0x7f0000000000u;

    (void)state;
    ml_addrset_init(&s);
    for (uintptr_t i = 0; i < 50000; i++)
        assert_int_equal(ml_addrset_add(&s, base + i * 48), 1);
    assert_true(ml_addrset_footprint(&s) > 0);
    ml_addrset_free(&s);
    assert_int_equal(s.nmembers, 0);
    assert_int_equal(ml_addrset_footprint(&s), 0);
    for (uintptr_t i = 0; i < 50000; i += 7)
        assert_int_equal(ml_addrset_has(&s, base + i * 48), 0);
    for (uintptr_t i = 0; i < 50000; i++)
        assert_int_equal(ml_addrset_add(&s, base + i * 48 + 16), 1);
    assert_int_equal(s.nmembers, 50000);
    for (uintptr_t i = 0; i < 50000; i++) {
        assert_int_equal(ml_addrset_has(&s, base + i * 48 + 16), 1);
        assert_int_equal(ml_addrset_has(&s, base + i * 48), 0);
    }
    ml_addrset_free(&s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addrset_init_and_free_of_empty_set),
        cmocka_unit_test(test_addrset_add_returns_1_then_0_for_same_address),
        cmocka_unit_test(test_addrset_has_reports_only_added_addresses),
        cmocka_unit_test(test_addrset_del_removes_only_that_member),
        cmocka_unit_test(test_addrset_addresses_16_bytes_apart_are_distinct),
        cmocka_unit_test(test_addrset_treats_addresses_within_one_grain_as_one_member),
        cmocka_unit_test(test_addrset_handles_lowest_and_highest_addresses),
        cmocka_unit_test(test_addrset_keeps_members_in_100k_distinct_chunks),
        cmocka_unit_test(test_addrset_matches_sorted_reference_for_1e6_random_addresses),
        cmocka_unit_test(test_addrset_footprint_for_1e6_dense_objects_stays_below_layout_bound),
        cmocka_unit_test(test_addrset_can_be_reused_after_free),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
