/* SPDX-License-Identifier: MIT
 *
 * utf8.c -- see utf8.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

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

/* How many bytes at s the repair replaces with one U+FFFD: an encoded
 * surrogate (three bytes, as ml_utf8_seq_len lets through) is one
 * character; any other ill-formed byte is one on its own. */
static size_t
bad_len(const unsigned char *s, const unsigned char *end)
{
    return ml_utf8_seq_len(s, end) == 3 ? 3 : 1;
}

int
ml_utf8_repair(const char *str, size_t n, char **out, size_t *outlen)
{
    const unsigned char *s = (const unsigned char *)str, *end = s + n;
    size_t need = 0, k;
    int bad = 0;
    char *o;

    *out = NULL;
    *outlen = n;
    for (const unsigned char *p = s; p < end; p += k) {
        if ((k = ml_utf8_seq_len_strict(p, end)) != 0) {
            need += k;
            continue;
        }
        k = bad_len(p, end);
        need += 3;
        bad = 1;
    }
    if (!bad)
        return 0;
    if ((o = malloc(need + 1)) == NULL)
        return -ENOMEM;
    *out = o;
    for (const unsigned char *p = s; p < end; p += k) {
        if ((k = ml_utf8_seq_len_strict(p, end)) != 0) {
            memcpy(o, p, k);
            o += k;
            continue;
        }
        k = bad_len(p, end);
        memcpy(o, "\xef\xbf\xbd", 3);
        o += 3;
    }
    *o = '\0';
    *outlen = need;
    return 1;
}
