/* SPDX-License-Identifier: MIT
 *
 * test_utf8.c -- cmocka tests for the shared UTF-8 helpers (common/utf8.c):
 * which sequences are well-formed (surrogates pass on purpose, see
 * utf8.h), NUL in ml_utf8_valid, the character-counted prefix and the
 * byte cut that never splits a sequence, and a differential check of
 * ml_utf8_seq_len against a decoder written here.
 */
#define _GNU_SOURCE 1

#include <stdlib.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_rng.h"

#include "utf8.h"

#define S(lit) lit, sizeof(lit) - 1

static size_t
seq_len(const char *s, size_t n)
{
    return ml_utf8_seq_len((const unsigned char *)s,
                           (const unsigned char *)s + n);
}

/* The reference: decode by bit pattern, then refuse overlong forms and
 * values above U+10FFFF.  Surrogates are values like any other here. */
static size_t
ref_len(const unsigned char *s, size_t n)
{
    static const uint32_t min[] = { 0, 0, 0x80, 0x800, 0x10000 };
    size_t len;
    uint32_t cp;

    if (n == 0)
        return 0;
    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xe0) == 0xc0)
        len = 2, cp = s[0] & 0x1f;
    else if ((s[0] & 0xf0) == 0xe0)
        len = 3, cp = s[0] & 0x0f;
    else if ((s[0] & 0xf8) == 0xf0)
        len = 4, cp = s[0] & 0x07;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    return cp >= min[len] && cp <= 0x10ffff ? len : 0;
}

static void
test_utf8_seq_len_gives_the_length_of_each_well_formed_sequence(void **state)
{
    (void)state;
    assert_int_equal(seq_len(S("a")), 1);
    assert_int_equal(seq_len("\0", 1), 1);
    assert_int_equal(seq_len(S("\xc3\xa9")), 2);                 /* é */
    assert_int_equal(seq_len(S("\xe2\x82\xac")), 3);             /* € */
    assert_int_equal(seq_len(S("\xf0\x9f\x98\x80")), 4);         /* 😀 */
    assert_int_equal(seq_len(S("\xf4\x8f\xbf\xbf")), 4);         /* U+10FFFF */
    assert_int_equal(seq_len(S("\xc3\xa9xyz")), 2);     /* only the first */
    assert_int_equal(seq_len("", 0), 0);                /* s == end */
}

static void
test_utf8_seq_len_rejects_overlongs_and_values_past_10ffff(void **state)
{
    (void)state;
    assert_int_equal(seq_len(S("\xc0\xaf")), 0);
    assert_int_equal(seq_len(S("\xc1\xbf")), 0);
    assert_int_equal(seq_len(S("\xe0\x80\xaf")), 0);
    assert_int_equal(seq_len(S("\xe0\x9f\xbf")), 0);
    assert_int_equal(seq_len(S("\xf0\x80\x80\xaf")), 0);
    assert_int_equal(seq_len(S("\xf0\x8f\xbf\xbf")), 0);
    assert_int_equal(seq_len(S("\xf4\x90\x80\x80")), 0);         /* 0x110000 */
    assert_int_equal(seq_len(S("\xf5\x80\x80\x80")), 0);
    assert_int_equal(seq_len(S("\xff")), 0);
    /* The smallest value of each length is fine. */
    assert_int_equal(seq_len(S("\xc2\x80")), 2);
    assert_int_equal(seq_len(S("\xe0\xa0\x80")), 3);
    assert_int_equal(seq_len(S("\xf0\x90\x80\x80")), 4);
}

static void
test_utf8_seq_len_rejects_lone_continuations_and_bad_continuations(void **state)
{
    (void)state;
    assert_int_equal(seq_len(S("\x80")), 0);
    assert_int_equal(seq_len(S("\xbf")), 0);
    assert_int_equal(seq_len(S("\xc3" "a")), 0);
    assert_int_equal(seq_len(S("\xe2\x82" "a")), 0);
    assert_int_equal(seq_len(S("\xe2\xc3\xa9")), 0);
    assert_int_equal(seq_len(S("\xf0\x9f\x98\xc0")), 0);
}

static void
test_utf8_seq_len_rejects_sequences_cut_by_the_end(void **state)
{
    static const char smile[] = "\xf0\x9f\x98\x80";

    (void)state;
    assert_int_equal(seq_len(S("\xc3")), 0);
    assert_int_equal(seq_len(S("\xe2\x82")), 0);
    for (size_t n = 1; n < 4; n++)
        assert_int_equal(seq_len(smile, n), 0);
    assert_int_equal(seq_len(smile, 4), 4);
}

static void
test_utf8_encoded_surrogates_are_accepted(void **state)
{
    (void)state;
    /* U+D800 and U+DFFF: what the dump parser writes for a lone \udc80
     * escape, so they must read back (utf8.h). */
    assert_int_equal(seq_len(S("\xed\xa0\x80")), 3);
    assert_int_equal(seq_len(S("\xed\xbf\xbf")), 3);
    assert_true(ml_utf8_valid(S("a\xed\xa0\x80z")));
    assert_true(ml_utf8_valid(S("\xed\xb2\x80")));
}

static void
test_utf8_strict_refuses_surrogates_and_agrees_otherwise(void **state)
{
    unsigned char b[3];

    (void)state;
    for (unsigned x = 0; x < 1u << 24; x += 7) {    /* a sample of 3 bytes */
        b[0] = (unsigned char)(x >> 16);
        b[1] = (unsigned char)(x >> 8);
        b[2] = (unsigned char)x;
        size_t lax = ml_utf8_seq_len(b, b + 3);
        size_t strict = ml_utf8_seq_len_strict(b, b + 3);
        int surrogate = b[0] == 0xed && b[1] >= 0xa0 && lax == 3;

        if (strict != (surrogate ? 0 : lax))
            fail_msg("%02x %02x %02x: strict %zu, lax %zu", b[0], b[1], b[2],
                     strict, lax);
    }
    memcpy(b, "\xed\x9f\xbf", 3);            /* U+D7FF, below them */
    assert_int_equal(ml_utf8_seq_len_strict(b, b + 3), 3);
    memcpy(b, "\xed\xa0\x80", 3);            /* U+D800 */
    assert_int_equal(ml_utf8_seq_len_strict(b, b + 3), 0);
}

static void
test_utf8_valid_accepts_well_formed_text(void **state)
{
    (void)state;
    assert_true(ml_utf8_valid("", 0));
    assert_true(ml_utf8_valid(S("plain")));
    assert_true(ml_utf8_valid(S("\xc3\xa9t\xc3\xa9")));
    assert_true(ml_utf8_valid(S("\xe2\x82\xac \xf0\x9f\x98\x80!")));
}

static void
test_utf8_valid_rejects_ill_formed_text_anywhere(void **state)
{
    (void)state;
    assert_false(ml_utf8_valid(S("\xff")));
    assert_false(ml_utf8_valid(S("\xc0\xaf")));
    assert_false(ml_utf8_valid(S("ok\xe0\x80\x80")));
    assert_false(ml_utf8_valid(S("ok\xf4\x90\x80\x80")));
    assert_false(ml_utf8_valid(S("ok\xf5\x80\x80\x80")));
    assert_false(ml_utf8_valid(S("\x80ok")));
    assert_false(ml_utf8_valid(S("ok\xe2\x82")));                /* cut */
    assert_false(ml_utf8_valid(S("ok\xf0\x9f\x98")));            /* cut */
}

static void
test_utf8_valid_rejects_nul(void **state)
{
    (void)state;
    assert_false(ml_utf8_valid("a\0b", 3));
    assert_false(ml_utf8_valid("\0", 1));
    assert_false(ml_utf8_valid("\xc3\xa9\0", 3));
    assert_true(ml_utf8_valid("a\0b", 1));      /* n, not the NUL, ends it */
}

static void
test_utf8_prefix_counts_characters_not_bytes(void **state)
{
    static const char s[] = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z";

    (void)state;
    assert_int_equal(ml_utf8_prefix(S(s), 0), 0);
    assert_int_equal(ml_utf8_prefix(S(s), 1), 1);
    assert_int_equal(ml_utf8_prefix(S(s), 2), 3);
    assert_int_equal(ml_utf8_prefix(S(s), 3), 6);
    assert_int_equal(ml_utf8_prefix(S(s), 4), 10);
    assert_int_equal(ml_utf8_prefix(S(s), 5), 11);
    assert_int_equal(ml_utf8_prefix(S(s), 100), 11);
    assert_int_equal(ml_utf8_prefix("", 0, 5), 0);
}

static void
test_utf8_prefix_never_splits_a_sequence_even_in_ill_formed_text(void **state)
{
    (void)state;
    /* A stray continuation is part of the character before it. */
    assert_int_equal(ml_utf8_prefix(S("a\x80\x80" "b"), 1), 3);
    /* A cut sequence at the end is one character, and n bounds it. */
    assert_int_equal(ml_utf8_prefix(S("a\xe2\x82"), 2), 3);
    assert_int_equal(ml_utf8_prefix(S("\xe2\x82\xac\xe2\x82\xac"), 1), 3);
}

static void
test_utf8_cut_keeps_text_that_fits(void **state)
{
    (void)state;
    assert_int_equal(ml_utf8_cut(S("abc"), 3), 3);
    assert_int_equal(ml_utf8_cut(S("abc"), 10), 3);
    assert_int_equal(ml_utf8_cut(S("abc"), 2), 2);
    assert_int_equal(ml_utf8_cut(S("abc"), 0), 0);
}

static void
test_utf8_cut_never_splits_a_sequence(void **state)
{
    static const char s[] = "a\xf0\x9f\x98\x80" "b";       /* 6 bytes */

    (void)state;
    assert_int_equal(ml_utf8_cut(S(s), 1), 1);
    for (size_t max = 2; max <= 4; max++)
        assert_int_equal(ml_utf8_cut(S(s), max), 1);
    assert_int_equal(ml_utf8_cut(S(s), 5), 5);
    assert_int_equal(ml_utf8_cut(S("\xc3\xa9\xc3\xa9"), 3), 2);
    assert_int_equal(ml_utf8_cut(S("\xc3\xa9"), 1), 0);
    /* Every cut of well-formed text is well-formed. */
    for (size_t max = 0; max <= sizeof(s) - 1; max++)
        assert_true(ml_utf8_valid(s, ml_utf8_cut(S(s), max)));
}

static void
test_utf8_seq_len_matches_a_reference_decoder(void **state)
{
    unsigned char b[4];
    uint64_t rng = 0x5eed0f0e1ull;

    (void)state;
    /* Every 1-, 2- and 3-byte input. */
    for (unsigned x = 0; x < 1u << 24; x++) {
        b[0] = (unsigned char)(x >> 16);
        b[1] = (unsigned char)(x >> 8);
        b[2] = (unsigned char)x;
        for (size_t n = 1; n <= 3; n++)
            if (ml_utf8_seq_len(b, b + n) != ref_len(b, n))
                fail_msg("%02x %02x %02x (n=%zu): %zu, want %zu", b[0],
                         b[1], b[2], n, ml_utf8_seq_len(b, b + n),
                         ref_len(b, n));
    }
    /* 4-byte inputs: leads F0..F4 with continuations near the edges. */
    for (int i = 0; i < 2000000; i++) {
        b[0] = (unsigned char)(0xe8 + rng_below(&rng, 0x18));
        for (int k = 1; k < 4; k++)
            b[k] = (unsigned char)(rng_below(&rng, 4) == 0
                                   ? rng_below(&rng, 256)
                                   : 0x80 + rng_below(&rng, 0x40));
        if (ml_utf8_seq_len(b, b + 4) != ref_len(b, 4))
            fail_msg("%02x %02x %02x %02x: %zu, want %zu", b[0], b[1], b[2],
                     b[3], ml_utf8_seq_len(b, b + 4), ref_len(b, 4));
    }
}

static void
test_utf8_repair_leaves_well_formed_text_alone(void **state)
{
    static const char s[] = "dict \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
    char *out = (char *)1;
    size_t n = 0;

    (void)state;
    assert_int_equal(ml_utf8_repair(S(s), &out, &n), 0);
    assert_null(out);
    assert_int_equal(n, sizeof(s) - 1);
}

static void
test_utf8_repair_replaces_surrogates_and_ill_formed_bytes(void **state)
{
    /* A lone \ud800 as the dump parser decodes it, a stray continuation,
     * an overlong '/', a cut sequence at the end. */
    static const char s[] = "\xed\xa0\x80x \x80 \xc0\xaf \xe2\x82";
    static const char want[] = "\xef\xbf\xbdx \xef\xbf\xbd \xef\xbf\xbd"
                               "\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd";
    char *out = NULL;
    size_t n = 0;

    (void)state;
    assert_int_equal(ml_utf8_repair(S(s), &out, &n), 1);
    assert_non_null(out);
    assert_int_equal(n, sizeof(want) - 1);
    assert_memory_equal(out, want, n);
    assert_int_equal(out[n], '\0');
    for (size_t i = 0; i < n; ) {
        size_t k = ml_utf8_seq_len_strict((const unsigned char *)out + i,
                                          (const unsigned char *)out + n);
        assert_true(k > 0);
        i += k;
    }
    free(out);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_seq_len_gives_the_length_of_each_well_formed_sequence),
        cmocka_unit_test(test_utf8_seq_len_rejects_overlongs_and_values_past_10ffff),
        cmocka_unit_test(test_utf8_seq_len_rejects_lone_continuations_and_bad_continuations),
        cmocka_unit_test(test_utf8_seq_len_rejects_sequences_cut_by_the_end),
        cmocka_unit_test(test_utf8_encoded_surrogates_are_accepted),
        cmocka_unit_test(test_utf8_strict_refuses_surrogates_and_agrees_otherwise),
        cmocka_unit_test(test_utf8_valid_accepts_well_formed_text),
        cmocka_unit_test(test_utf8_valid_rejects_ill_formed_text_anywhere),
        cmocka_unit_test(test_utf8_valid_rejects_nul),
        cmocka_unit_test(test_utf8_prefix_counts_characters_not_bytes),
        cmocka_unit_test(test_utf8_prefix_never_splits_a_sequence_even_in_ill_formed_text),
        cmocka_unit_test(test_utf8_cut_keeps_text_that_fits),
        cmocka_unit_test(test_utf8_cut_never_splits_a_sequence),
        cmocka_unit_test(test_utf8_seq_len_matches_a_reference_decoder),
        cmocka_unit_test(test_utf8_repair_leaves_well_formed_text_alone),
        cmocka_unit_test(test_utf8_repair_replaces_surrogates_and_ill_formed_bytes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
