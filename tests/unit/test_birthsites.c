/* SPDX-License-Identifier: MIT
 *
 * test_birthsites.c -- birth sites grouped (common/birthsites.c): the
 * sums per (group, trace) and their order, and the merge of a group's
 * tracebacks by first frame, checked against a direct count.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "birthsites.h"

static void
test_sums_are_ordered_by_group_total_first_then_bytes(void **state)
{
    struct ml_births b = { 0 };
    size_t n;

    (void)state;
    assert_int_equal(ml_births_add(&b, 2, 5, 10), 0);
    assert_int_equal(ml_births_add(&b, 1, 7, 100), 0);
    assert_int_equal(ml_births_add(&b, 1, 3, 60), 0);
    assert_int_equal(ml_births_add(&b, 1, 3, 60), 0);      /* 120 */
    assert_int_equal(ml_births_add(&b, 1, ML_BIRTHS_ALL, 1), 0);
    assert_int_equal(ml_births_add(&b, 1, 9, 100), 0);     /* ties 7 */
    n = ml_births_sort(&b);
    assert_int_equal(n, 5);
    assert_int_equal(ml_births_group(&b.v[0]), 1);
    assert_int_equal(ml_births_trace(&b.v[0]), ML_BIRTHS_ALL);
    assert_int_equal(ml_births_trace(&b.v[1]), 3);
    assert_int_equal(b.v[1].count, 2);
    assert_int_equal(b.v[1].bytes, 120);
    assert_int_equal(ml_births_trace(&b.v[2]), 7);
    assert_int_equal(ml_births_trace(&b.v[3]), 9);
    assert_int_equal(ml_births_group(&b.v[4]), 2);
    ml_births_free(&b);
    assert_null(b.v);
}

/* The site callback of the test: site = trace % 10; a traceback of
 * trace % 10 == 9 has no site (returns 1: ml_births_sites leaves it
 * out, as the store does a traceback without frames); trace 12345 is
 * an error. */
static int
site_mod10(void *ctx, uint32_t trace, uint64_t *site)
{
    (void)ctx;
    if (trace == 12345)
        return -EIO;
    if (trace % 10 == 9)
        return 1;
    *site = trace % 10;
    return 0;
}

static void
test_sites_merge_by_first_frame_against_a_direct_count(void **state)
{
    enum { NT = 5000 };
    struct ml_births b = { 0 };
    struct ml_births_site *out;
    uint64_t want_count[10] = { 0 }, want_bytes[10] = { 0 }, best[10];
    uint32_t best_trace[10];
    uint64_t *tb = calloc(NT, sizeof(*tb));
    size_t n;
    long ns;

    (void)state;
    assert_non_null(tb);
    memset(best, 0, sizeof best);
    /* many tracebacks (the hash grows past its first size), objects of
     * varied sizes */
    for (uint32_t k = 0; k < 3 * NT; k++) {
        uint32_t t = (k * 7919u) % NT;
        uint64_t size = 16 + (k * 31u) % 977;

        assert_int_equal(ml_births_add(&b, 0, t, size), 0);
        tb[t] += size;
        if (t % 10 != 9) {
            want_count[t % 10]++;
            want_bytes[t % 10] += size;
        }
    }
    for (uint32_t t = 0; t < NT; t++)
        if (t % 10 != 9 && (tb[t] > best[t % 10]
                            || (tb[t] == best[t % 10] && t < best_trace[t % 10]))) {
            best[t % 10] = tb[t];
            best_trace[t % 10] = t;
        }
    n = ml_births_sort(&b);
    assert_int_equal(n, NT);
    out = calloc(n, sizeof(*out));
    assert_non_null(out);
    ns = ml_births_sites(b.v, n, site_mod10, NULL, out);
    assert_int_equal(ns, 9);
    for (long k = 0; k < ns; k++) {
        uint64_t s = out[k].site;

        assert_true(s < 9);
        assert_int_equal(out[k].count, want_count[s]);
        assert_int_equal(out[k].bytes, want_bytes[s]);
        assert_int_equal(out[k].trace, best_trace[s]);
        if (k > 0)
            assert_true(out[k - 1].bytes > out[k].bytes
                        || (out[k - 1].bytes == out[k].bytes
                            && out[k - 1].count >= out[k].count));
    }
    free(out);
    free(tb);
    ml_births_free(&b);
}

static void
test_sites_ties_go_by_count_then_trace(void **state)
{
    struct ml_births b = { 0 };
    struct ml_births_site out[3];

    (void)state;
    ml_births_add(&b, 0, 4, 50);
    ml_births_add(&b, 0, 2, 50);
    ml_births_add(&b, 0, 3, 25);
    ml_births_add(&b, 0, 3, 25);
    assert_int_equal(ml_births_sort(&b), 3);
    assert_int_equal(ml_births_sites(b.v, 3, site_mod10, NULL, out), 3);
    assert_int_equal(out[0].trace, 3);          /* 50 bytes, 2 objects */
    assert_int_equal(out[1].trace, 2);
    assert_int_equal(out[2].trace, 4);
    ml_births_free(&b);
}

static void
test_an_error_of_site_of_is_returned(void **state)
{
    struct ml_births b = { 0 };
    struct ml_births_site out[2];

    (void)state;
    ml_births_add(&b, 0, 1, 50);
    ml_births_add(&b, 0, 12345, 10);
    assert_int_equal(ml_births_sort(&b), 2);
    assert_int_equal(ml_births_sites(b.v, 2, site_mod10, NULL, out), -EIO);
    assert_int_equal(ml_births_sites(b.v, 0, site_mod10, NULL, out), 0);
    ml_births_free(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sums_are_ordered_by_group_total_first_then_bytes),
        cmocka_unit_test(test_sites_merge_by_first_frame_against_a_direct_count),
        cmocka_unit_test(test_sites_ties_go_by_count_then_trace),
        cmocka_unit_test(test_an_error_of_site_of_is_returned),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
