/* SPDX-License-Identifier: MIT
 *
 * utf8.c -- see utf8.h.
 */
#include "utf8.h"

static int
is_cont(char c)
{
    return ((unsigned char)c & 0xc0) == 0x80;
}

int
ml_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    const unsigned char *end = s + n;

    while (s < end) {
        size_t k = ml_utf8_seq_len(s, end);

        if (k == 0 || *s == 0)
            return 0;
        s += k;
    }
    return 1;
}

size_t
ml_utf8_prefix(const char *s, size_t n, size_t max_chars)
{
    size_t i = 0;

    for (size_t chars = 0; i < n && chars < max_chars; chars++) {
        i++;
        while (i < n && is_cont(s[i]))
            i++;
    }
    return i;
}

size_t
ml_utf8_cut(const char *s, size_t n, size_t max_bytes)
{
    if (n <= max_bytes)
        return n;
    n = max_bytes;
    while (n > 0 && is_cont(s[n]))   /* s[n] exists: n < the old n */
        n--;
    return n;
}
