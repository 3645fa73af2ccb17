/* SPDX-License-Identifier: MIT
 *
 * test_scratch.c -- cmocka tests for store/scratch.c, the queries' arrays
 * of a snapshot's size: zeroed, aligned, writable to the last byte, and
 * (what they are for) written without growing this process's anonymous
 * memory, where calloc's pages do grow it (the oracle: the same writes
 * to anonymous pages).  The report's diff keeps its per-object arrays
 * there (store/report_diff.c).
 */
#define _GNU_SOURCE 1

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <cmocka.h>

#include "scratch.h"
#include "test_rss.h"

#define BIG (64u << 20)

static void
test_scratch_is_zeroed_aligned_and_writable(void **state)
{
    (void)state;
    for (size_t len = 0; len <= 3 * 4096 + 7; len += 4096 / 3) {
        uint8_t *p = st_scratch(len);

        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 64, 0);
        for (size_t i = 0; i < len; i++)
            assert_int_equal(p[i], 0);
        memset(p, 0xa5, len);
        for (size_t i = 0; i < len; i++)
            assert_int_equal(p[i], 0xa5);
        st_scratch_free(p);
    }
    st_scratch_free(NULL);
}

/* Two blocks at once are two blocks. */
static void
test_scratch_blocks_are_distinct(void **state)
{
    uint32_t *a = st_scratch(1000 * sizeof *a), *b = st_scratch(1000 * sizeof *b);

    (void)state;
    assert_non_null(a);
    assert_non_null(b);
    for (uint32_t i = 0; i < 1000; i++) {
        a[i] = i;
        b[i] = ~i;
    }
    for (uint32_t i = 0; i < 1000; i++) {
        assert_int_equal(a[i], i);
        assert_int_equal(b[i], ~i);
    }
    st_scratch_free(a);
    st_scratch_free(b);
}

static long
anon_growth_of_writing(uint8_t *p)
{
    struct rss_watch w;

    assert_int_equal(rss_watch_start(&w), 0);
    for (size_t i = 0; i < BIG; i += 4096)
        p[i] = (uint8_t)(i >> 12 | 1);
    long grew = rss_watch_stop(&w);
    for (size_t i = 0; i < BIG; i += 4096)
        assert_int_equal(p[i], (uint8_t)(i >> 12 | 1));
    return grew;
}

static void
test_scratch_pages_are_not_anonymous_memory(void **state)
{
    (void)state;
    /* under the sanitizers, their shadow of any write is anonymous (not
     * skip(): cmocka 1.1 prints "not ok # SKIP", a failure to meson's TAP
     * parser) */
#if defined(__SANITIZE_ADDRESS__)
    print_message("# ASan: shadow memory is anonymous; not exercised\n");
    return;
#endif
    /* the oracle: what calloc gives a big block (mmap'd directly here:
     * MALLOC_PERTURB_, as meson test sets it, would touch calloc's pages
     * before the writes), anonymous pages, all 64 MiB of them */
    uint8_t *heap = mmap(NULL, BIG, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(heap != MAP_FAILED);
    long heap_kib = anon_growth_of_writing(heap);
    munmap(heap, BIG);
    assert_true(heap_kib >= (long)(BIG >> 10) * 9 / 10);

    uint8_t *p = st_scratch(BIG);
    assert_non_null(p);
    long scratch_kib = anon_growth_of_writing(p);
    st_scratch_free(p);
    assert_true(scratch_kib < 4096);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scratch_is_zeroed_aligned_and_writable),
        cmocka_unit_test(test_scratch_blocks_are_distinct),
        cmocka_unit_test(test_scratch_pages_are_not_anonymous_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
