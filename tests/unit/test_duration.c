/* SPDX-License-Identifier: MIT
 *
 * test_duration.c -- cmocka tests for ml_parse_duration (common/duration.c),
 * the DUR of meliae-cli's --since/--until and meliae-monitord's
 * --retain-age: each unit, bare seconds, fractions down to the
 * nanosecond, and what is refused (junk, signs, exponents, overflow).
 */
#define _GNU_SOURCE 1

#include <errno.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "duration.h"

#define SEC 1000000000ull

static uint64_t
ok(const char *s)
{
    uint64_t ns = 12345;

    if (ml_parse_duration(s, &ns) != 0)
        fail_msg("\"%s\" was refused", s);
    return ns;
}

static void
refused(const char *s, int want)
{
    uint64_t ns = 12345;
    int rc = ml_parse_duration(s, &ns);

    if (rc != want)
        fail_msg("\"%s\": %d, want %d", s, rc, want);
    assert_true(ns == 12345);           /* untouched on error */
}

static void
test_duration_reads_each_unit(void **state)
{
    (void)state;
    assert_true(ok("30s") == 30 * SEC);
    assert_true(ok("15m") == 15 * 60 * SEC);
    assert_true(ok("2h") == 2 * 3600 * SEC);
    assert_true(ok("7d") == 7 * 86400 * SEC);
    assert_true(ok("1w") == 7 * 86400 * SEC);
}

static void
test_duration_bare_number_is_seconds(void **state)
{
    (void)state;
    assert_true(ok("90") == 90 * SEC);
    assert_true(ok("007") == 7 * SEC);
}

static void
test_duration_zero_is_a_duration(void **state)
{
    (void)state;
    /* Callers that want a positive one check (monitord's --retain-age). */
    assert_true(ok("0") == 0);
    assert_true(ok("0s") == 0);
    assert_true(ok("0.0h") == 0);
}

static void
test_duration_reads_fractions_to_the_nanosecond(void **state)
{
    (void)state;
    assert_true(ok("1.5h") == 5400 * SEC);
    assert_true(ok(".5m") == 30 * SEC);
    assert_true(ok("2.s") == 2 * SEC);
    assert_true(ok("0.25d") == 21600 * SEC);
    assert_true(ok("0.000000001s") == 1);
    assert_true(ok("0.0000000019s") == 1);              /* cut down */
    assert_true(ok("0.0000000009s") == 0);
    assert_true(ok("1.999999999999999999999999s") == 2 * SEC - 1);
    /* 1/3 of a week has no exact decimal: 201600 s, cut down. */
    assert_true(ok("0.333333333333333333333333w") == 201600 * SEC - 1);
}

static void
test_duration_reaches_the_largest_value_and_refuses_past_it(void **state)
{
    (void)state;
    assert_true(ok("18446744073.709551615") == UINT64_MAX);
    assert_true(ok("18446744073.709551615s") == UINT64_MAX);
    refused("18446744073.709551616", -ERANGE);
    refused("18446744074s", -ERANGE);
    refused("300000d", -ERANGE);
    refused("99999999999w", -ERANGE);
    refused("99999999999999999999999999", -ERANGE);
}

static void
test_duration_refuses_junk(void **state)
{
    static const char *const bad[] = {
        "", "s", ".", ".s", "1y", "5S", "1h2m", "1hh", "1.5.h", "1..5h",
        "-1s", "+1s", " 5s", "5s ", "5 s", "1e3s", "1e3", "0x10s", "inf",
        "nan", "1,5h", "h", "yesterday",
    };

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        refused(bad[i], -EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration_reads_each_unit),
        cmocka_unit_test(test_duration_bare_number_is_seconds),
        cmocka_unit_test(test_duration_zero_is_a_duration),
        cmocka_unit_test(test_duration_reads_fractions_to_the_nanosecond),
        cmocka_unit_test(test_duration_reaches_the_largest_value_and_refuses_past_it),
        cmocka_unit_test(test_duration_refuses_junk),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
