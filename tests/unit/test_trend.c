/* SPDX-License-Identifier: MIT
 *
 * test_trend.c -- cmocka tests for store/trend.c, the trend test behind
 * growth's leak suspects: Mann-Kendall S, its tie-corrected variance and
 * p (exact for small n, normal approximation above), the Theil-Sen slope,
 * and the verdict on the series the rule was built for (burst leak,
 * plateau, evicted cache, noise, steady state).  The expected numbers were
 * computed by brute force in Python (all pairs; for the exact p, all
 * permutations), and the O(n log n) S is checked against an all-pairs
 * count on random series.
 */
#define _GNU_SOURCE 1

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "test_rng.h"
#include "trend.h"

#define MAXN 1000

static double scratch[2 * MAXN + 4096];

static struct ml_trend
trend(const double *y, size_t n)
{
    struct ml_trend t;

    assert_true(ml_trend_scratch(n) <= sizeof scratch / sizeof scratch[0]);
    ml_trend(y, NULL, n, scratch, &t);
    return t;
}

static void
near(double got, double want, double rel)
{
    if (fabs(got - want) > rel * fmax(fabs(want), 1e-300))
        fail_msg("got %.17g, want %.17g", got, want);
}

/* y = base + step * i for i < grow, then the last value held for flat. */
static size_t
ramp(double *y, double base, double step, size_t grow, size_t flat)
{
    size_t n = 0;

    for (size_t i = 0; i < grow; i++)
        y[n++] = base + step * (double)i;
    for (size_t i = 0; i < flat; i++)
        y[n++] = y[grow - 1];
    return n;
}

static void
test_trend_five_rising_points_exact_p_is_one_in_120(void **state)
{
    double y[] = { 1, 2, 3, 4, 5 };
    struct ml_trend t = trend(y, 5);

    (void)state;
    assert_true(t.s == 10);
    near(t.var, 50.0 / 3, 1e-12);
    near(t.tau, 1, 1e-12);
    near(t.z, 2.2045407685048604, 1e-12);
    assert_true(t.exact);
    near(t.p, 1.0 / 120, 1e-12);
    near(t.slope, 1, 1e-12);
    assert_true(isnan(t.slope_hour));
}

static void
test_trend_exact_p_matches_the_permutation_count(void **state)
{
    (void)state;
    /* n = 4: S = 6 only for the identity (1/24); S >= 4: 1 + 3 of 24 */
    near(ml_trend_exact_p(4, 6), 1.0 / 24, 1e-12);
    near(ml_trend_exact_p(4, 4), 4.0 / 24, 1e-12);
    near(ml_trend_exact_p(4, -6), 1, 1e-12);
    /* ties at n = 8 (1 1 2 2 3 3 2 4), all 8! permutations counted */
    double y[] = { 1, 1, 2, 2, 3, 3, 2, 4 };
    struct ml_trend t = trend(y, 8);
    assert_true(t.s == 19);
    near(t.var, 59.666666666666664, 1e-12);
    near(t.z, 2.3302720008113567, 1e-12);
    near(t.p, 0.007068452380952381, 1e-12);
    near(t.slope, 0.41428571428571426, 1e-12);
}

static void
test_trend_burst_leak_is_a_suspect(void **state)
{
    /* grows for 10 snapshots, flat for the last 2 */
    double y[16];
    size_t n = ramp(y, 100, 10, 10, 2);
    struct ml_trend t = trend(y, n);

    (void)state;
    assert_int_equal(n, 12);
    assert_true(t.s == 63);
    near(t.var, 209, 1e-12);
    near(t.z, 4.288629675969663, 1e-12);
    assert_false(t.exact);
    near(t.p, 8.988941360787255e-06, 1e-9);
    near(t.slope, 10, 1e-12);
    /* the same series as bytes (x 1 KiB) in a 1 MiB process */
    double b[16];
    for (size_t i = 0; i < n; i++)
        b[i] = y[i] * 1024;
    struct ml_trend tb = trend(b, n);
    assert_int_equal(ml_trend_verdict(&t, &tb, b[n - 1] - b[0],
                                      ml_trend_floor(1 << 20)),
                     ML_VERDICT_SUSPECT);
}

static void
test_trend_plateau_is_not_a_suspect_once_flat_dominates(void **state)
{
    double y[32];
    size_t n = ramp(y, 100, 10, 6, 19);
    struct ml_trend t = trend(y, n);

    (void)state;
    /* the rise before the plateau still makes S significant... */
    assert_true(t.s == 110);
    near(t.var, 883.3333333333334, 1e-12);
    near(t.p, 0.00012249077150847993, 1e-9);
    /* ...but 20 of 25 points are flat (> 71%): the median slope is 0 */
    assert_true(t.slope == 0);
    assert_int_equal(ml_trend_verdict(&t, &t, y[n - 1] - y[0], 10),
                     ML_VERDICT_BELOW_FLOOR);
    /* with a short plateau (60% flat) it is still rising */
    n = ramp(y, 100, 10, 10, 14);
    t = trend(y, n);
    assert_true(t.slope > 0);
    assert_int_equal(ml_trend_verdict(&t, &t, y[n - 1] - y[0], 10),
                     ML_VERDICT_SUSPECT);
}

static void
test_trend_evicted_cache_sawtooth_is_not_a_suspect(void **state)
{
    double y[20];

    (void)state;
    for (size_t i = 0; i < 20; i++)
        y[i] = (double)(i % 5) * 100;           /* fills, evicted, 4 times */
    struct ml_trend t = trend(y, 20);
    assert_true(t.s == 40);
    near(t.var, 906.6666666666666, 1e-12);
    near(t.z, 1.2952117701023895, 1e-12);
    near(t.p, 0.09762359280386795, 1e-9);
    near(t.slope, 9.090909090909092, 1e-12);
    assert_int_equal(ml_trend_verdict(&t, &t, 400, 10), ML_VERDICT_NO_TREND);
}

static void
test_trend_noise_around_a_constant_is_not_a_suspect(void **state)
{
    static const double d[] = { 3, -2, 5, -4, 1, 0, -3, 4, -1, 2, -5, 3, -2,
                                1, 0, -4, 2, -1, 3, -3 };
    double y[20];

    (void)state;
    for (size_t i = 0; i < 20; i++)
        y[i] = 1000 + d[i];
    struct ml_trend t = trend(y, 20);
    assert_true(t.s == -18);
    near(t.var, 939.3333333333334, 1e-12);
    near(t.z, -0.5546755904543196, 1e-12);
    near(t.p, 0.7104417124466382, 1e-9);
    near(t.slope, -0.09545454545454546, 1e-12);
    assert_int_equal(ml_trend_verdict(&t, &t, y[19] - y[0], 10),
                     ML_VERDICT_NO_TREND);
}

static void
test_trend_steady_state_marks_nothing(void **state)
{
    double y[8] = { 7, 7, 7, 7, 7, 7, 7, 7 };
    struct ml_trend t = trend(y, 8);

    (void)state;
    assert_true(t.s == 0 && t.var == 0 && t.z == 0 && t.p == 1);
    assert_true(t.slope == 0);
    assert_int_equal(ml_trend_verdict(&t, &t, 0, 10), ML_VERDICT_NO_TREND);
}

static void
test_trend_needs_five_snapshots(void **state)
{
    double y[4] = { 1, 2, 3, 4 };
    struct ml_trend t = trend(y, 4);

    (void)state;
    near(t.p, 1.0 / 24, 1e-12);
    assert_int_equal(ml_trend_verdict(&t, &t, 1e9, 10),
                     ML_VERDICT_FEW_SNAPSHOTS);
    t = trend(y, 1);
    assert_true(t.s == 0 && t.p == 1);
}

static void
test_trend_small_rise_is_below_the_floor(void **state)
{
    double y[12];
    size_t n = ramp(y, 1000, 8, 12, 0);         /* +88 B in a 1 MiB process */
    struct ml_trend t = trend(y, n);

    (void)state;
    assert_true(t.p < ML_TREND_ALPHA);
    assert_int_equal(ml_trend_verdict(&t, &t, 88, ml_trend_floor(1 << 20)),
                     ML_VERDICT_BELOW_FLOOR);
    near(ml_trend_floor(1 << 20), 10485.76, 1e-12);
    near(ml_trend_floor(1000), ML_TREND_FLOOR_MIN, 1e-12);
}

/* The verdict as growth makes it: the trend test, then the warm-up rule,
 * on a type's count and bytes taken at times sec (seconds). */
static enum ml_verdict
verdict_at(const double *count, const double *bytes, const double *sec,
           size_t n, double floor)
{
    uint64_t t[64];
    struct ml_trend tc, tb;
    static double scratch2[2 * MAXN + 4096];

    assert_true(n <= 64);
    for (size_t i = 0; i < n; i++)
        t[i] = (uint64_t)(sec[i] * 1e9);
    ml_trend(count, t, n, scratch, &tc);
    ml_trend(bytes, t, n, scratch2, &tb);
    return ml_trend_verdict_late(ml_trend_verdict(&tc, &tb,
                                                  bytes[n - 1] - bytes[0],
                                                  floor),
                                 count, bytes, n, ml_trend_mid(t, n));
}

static void
test_trend_warm_up_that_holds_steady_is_not_a_suspect(void **state)
{
    /* a cache of 100 B entries that fills for 4 s (a snapshot every
     * 0.5 s), then holds steady until 10 s: the trend test alone calls
     * it a suspect */
    double c[21], y[21], sec[21];
    struct ml_trend tr;

    (void)state;
    for (size_t i = 0; i < 21; i++) {
        sec[i] = 0.5 * (double)i;
        c[i] = 1e3 * fmin(sec[i], 4.0);
        y[i] = 1e6 + 100 * c[i];
    }
    tr = trend(y, 21);
    assert_true(tr.p < ML_TREND_ALPHA && tr.slope > 0);
    assert_int_equal(ml_trend_verdict(&tr, &tr, y[20] - y[0], 1e4),
                     ML_VERDICT_SUSPECT);
    assert_int_equal(verdict_at(c, y, sec, 21, 1e4), ML_VERDICT_STOPPED);
    assert_string_equal(ml_verdict_name(ML_VERDICT_STOPPED), "stopped");
    /* still growing after the fill, by less than a tenth of its rise:
     * stopped; by a fifth: a suspect */
    for (size_t i = 9; i < 21; i++) {
        c[i] = 4000 + 30 * (double)(i - 8);
        y[i] = 1e6 + 100 * c[i];
    }
    assert_int_equal(verdict_at(c, y, sec, 21, 1e4), ML_VERDICT_STOPPED);
    for (size_t i = 9; i < 21; i++) {
        c[i] = 4000 + 100 * (double)(i - 8);
        y[i] = 1e6 + 100 * c[i];
    }
    assert_int_equal(verdict_at(c, y, sec, 21, 1e4), ML_VERDICT_SUSPECT);
}

static void
test_trend_full_cache_dict_resized_once_late_is_not_a_suspect(void **state)
{
    /* one dict: its table grows with the fill, then once more at 7 s
     * (deleted entries used its room up): one step, no new dict */
    double c[16], y[16], sec[16];

    (void)state;
    for (size_t i = 0; i < 16; i++) {
        sec[i] = (double)i;
        c[i] = 1;
        y[i] = i < 2 ? 2e5 : i < 5 ? 4e5 : i < 10 ? 6e5 : 9e5;
    }
    assert_int_equal(verdict_at(c, y, sec, 16, 1e4), ML_VERDICT_STOPPED);
    /* a list that keeps growing (its items are old objects): a rise in
     * most steps of the latter half, a suspect though no list is new */
    for (size_t i = 0; i < 16; i++)
        y[i] = 2e5 + 3e4 * (double)i;
    assert_int_equal(verdict_at(c, y, sec, 16, 1e4), ML_VERDICT_SUSPECT);
}

static void
test_trend_burst_leak_that_keeps_what_it_got_is_a_suspect(void **state)
{
    /* +3,000 objects of 100 B at 0, 4, 8 and 12 s of a 16 s window (a
     * snapshot a second), nothing freed: flat between the bursts */
    double c[16], y[16], sec[16];

    (void)state;
    for (size_t i = 0; i < 16; i++) {
        sec[i] = (double)i;
        c[i] = 3000 * (double)(i / 4 + 1);
        y[i] = 1e6 + 100 * c[i];
    }
    assert_int_equal(verdict_at(c, y, sec, 16, 1e4), ML_VERDICT_SUSPECT);
    /* the same bursts at 0 and 4 s only: it stopped in the first half
     * (here the flat half already makes the median slope 0) */
    for (size_t i = 8; i < 16; i++) {
        c[i] = c[7];
        y[i] = y[7];
    }
    assert_int_not_equal(verdict_at(c, y, sec, 16, 1e4), ML_VERDICT_SUSPECT);
}

static void
test_trend_late_growth_is_measured_from_the_middle_time(void **state)
{
    /* uneven snapshots: the middle of 0..100 s is 50 s, so the point at
     * 40 s (index 2) is the last one before it */
    static const uint64_t t[] = { 0, 20e9, 40e9, 90e9, 95e9, 100e9 };
    static const uint64_t same[] = { 5, 5, 5, 5, 5, 5 };
    static const uint64_t at[] = { 0, 10e9, 50e9, 60e9, 70e9, 100e9 };
    static const double c[] = { 0, 1, 2, 3, 4, 5 };
    static const double y[] = { 0, 10, 20, 30, 40, 50 };

    (void)state;
    assert_int_equal(ml_trend_mid(t, 6), 2);
    /* no distinct times, or none: the middle index, (6 - 1) / 2 = 2 */
    assert_int_equal(ml_trend_mid(same, 6), 2);
    assert_int_equal(ml_trend_mid(NULL, 6), 2);
    assert_int_equal(ml_trend_mid(t, 1), 0);
    assert_int_equal(ml_trend_mid(t, 0), 0);
    /* a time exactly at the middle belongs to the first half */
    assert_int_equal(ml_trend_mid(at, 6), 2);
    /* late growth 50 - 20 = 30 of a net 50, whatever the floor (the
     * whole rise met it) */
    assert_int_equal(ml_trend_verdict_late(ML_VERDICT_SUSPECT, c, y, 6, 2),
                     ML_VERDICT_SUSPECT);
    /* measured from a later middle: 50 - 40 = 10, a fifth of 50 */
    assert_int_equal(ml_trend_verdict_late(ML_VERDICT_SUSPECT, c, y, 6, 4),
                     ML_VERDICT_SUSPECT);
    /* a tenth is the line: 50 - 46 = 4 < 5 is stopped, 5 is not */
    static const double y2[] = { 0, 10, 20, 30, 46, 50 };
    static const double y3[] = { 0, 10, 20, 30, 45, 50 };
    assert_int_equal(ml_trend_verdict_late(ML_VERDICT_SUSPECT, c, y2, 6, 4),
                     ML_VERDICT_STOPPED);
    assert_int_equal(ml_trend_verdict_late(ML_VERDICT_SUSPECT, c, y3, 6, 4),
                     ML_VERDICT_SUSPECT);
    /* and the rule only ever demotes a suspect */
    assert_int_equal(ml_trend_verdict_late(ML_VERDICT_NO_TREND, c, y, 6, 2),
                     ML_VERDICT_NO_TREND);
}

static void
test_trend_s_and_var_match_all_pairs_on_random_series(void **state)
{
    static double y[MAXN];
    uint64_t seed = 0x5eed7e4d;

    (void)state;
    for (int round = 0; round < 20; round++) {
        size_t n = 2 + rng_below(&seed, round < 10 ? 40 : MAXN - 1);
        uint64_t levels = 1 + rng_below(&seed, 50);     /* many ties */
        double s = 0;

        for (size_t i = 0; i < n; i++)
            y[i] = (double)rng_below(&seed, levels) + (double)i * 0.01 *
                   (double)(round % 3);
        for (size_t i = 0; i < n; i++)
            for (size_t j = i + 1; j < n; j++)
                s += (y[j] > y[i]) - (y[j] < y[i]);
        double tv = 0;
        for (size_t i = 0; i < n; i++) {    /* tie groups, counted once */
            size_t g = 0, first = 1;
            for (size_t j = 0; j < n; j++) {
                if (y[j] == y[i]) {
                    g++;
                    if (j < i)
                        first = 0;
                }
            }
            if (first)
                tv += (double)g * (double)(g - 1) * (2.0 * (double)g + 5);
        }
        struct ml_trend t = trend(y, n);
        assert_true(t.s == s);
        near(t.var, ((double)n * (double)(n - 1) * (2.0 * (double)n + 5) - tv) / 18,
             1e-12);
    }
}

static void
test_trend_slope_over_many_snapshots_and_per_hour(void **state)
{
    static double y[MAXN];
    static uint64_t t[MAXN];
    struct ml_trend tr;

    (void)state;
    /* 1,000 snapshots a minute apart, +3 each: subsampled pairs still
     * give the exact slope; an outlier does not move it */
    for (size_t i = 0; i < MAXN; i++) {
        y[i] = 500 + 3.0 * (double)i;
        t[i] = 1700000000000000000ull + (uint64_t)i * 60000000000ull;
    }
    y[500] = 1e12;
    ml_trend(y, t, MAXN, scratch, &tr);
    near(tr.slope, 3, 1e-12);
    near(tr.slope_hour, 180, 1e-12);
    assert_true(tr.p < 1e-100 || tr.p == 0);
    near(tr.tau, 1 - 2.0 * (MAXN - 1 - 500) / (MAXN * (MAXN - 1) / 2.0), 1e-12);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trend_five_rising_points_exact_p_is_one_in_120),
        cmocka_unit_test(test_trend_exact_p_matches_the_permutation_count),
        cmocka_unit_test(test_trend_burst_leak_is_a_suspect),
        cmocka_unit_test(test_trend_plateau_is_not_a_suspect_once_flat_dominates),
        cmocka_unit_test(test_trend_evicted_cache_sawtooth_is_not_a_suspect),
        cmocka_unit_test(test_trend_noise_around_a_constant_is_not_a_suspect),
        cmocka_unit_test(test_trend_steady_state_marks_nothing),
        cmocka_unit_test(test_trend_needs_five_snapshots),
        cmocka_unit_test(test_trend_small_rise_is_below_the_floor),
        cmocka_unit_test(test_trend_warm_up_that_holds_steady_is_not_a_suspect),
        cmocka_unit_test(test_trend_full_cache_dict_resized_once_late_is_not_a_suspect),
        cmocka_unit_test(test_trend_burst_leak_that_keeps_what_it_got_is_a_suspect),
        cmocka_unit_test(test_trend_late_growth_is_measured_from_the_middle_time),
        cmocka_unit_test(test_trend_s_and_var_match_all_pairs_on_random_series),
        cmocka_unit_test(test_trend_slope_over_many_snapshots_and_per_hour),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
