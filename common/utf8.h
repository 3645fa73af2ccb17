/* SPDX-License-Identifier: MIT
 *
 * utf8.h -- the one UTF-8 checker and cutter of meliae, shared by the dump
 * parser, the daemon, the store and the CLI.
 *
 * Well-formed means RFC 3629 (no overlong forms, nothing above U+10FFFF)
 * except that encoded surrogates (ED A0 80 .. ED BF BF) pass, as Python's
 * 'surrogatepass' reads them: a lone \udc80 escape in a dump line unescapes
 * to one, so what the parser writes must parse again.  jsonw.c keeps its
 * own decoder: it replaces rather than rejects, and refuses surrogates.
 */
#ifndef ML_UTF8_H
#define ML_UTF8_H

#include <stddef.h>

/* Length (1 to 4) of the well-formed sequence at s, or 0 if it is
 * ill-formed, cut short by end, or s == end.  ASCII (NUL included) is 1.
 * Inline because the dump parser calls it once per non-ASCII character. */
static inline size_t
ml_utf8_seq_len(const unsigned char *s, const unsigned char *end)
{
    unsigned char lo = 0x80, hi = 0xbf;
    size_t n;

    if (s >= end)
        return 0;
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4;
    else
        return 0;
    if (s[0] == 0xe0)
        lo = 0xa0;
    else if (s[0] == 0xf0)
        lo = 0x90;
    else if (s[0] == 0xf4)
        hi = 0x8f;
    if ((size_t)(end - s) < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

/* ml_utf8_seq_len without the surrogate exception: strict RFC 3629, for
 * consumers that refuse surrogates (Prometheus label values). */
static inline size_t
ml_utf8_seq_len_strict(const unsigned char *s, const unsigned char *end)
{
    size_t n = ml_utf8_seq_len(s, end);

    return n == 3 && s[0] == 0xed && s[1] >= 0xa0 ? 0 : n;
}

/* 1 if s[0..n) is well-formed UTF-8 (as above) without a NUL byte, else
 * 0: a string that can go on as a C string. */
int ml_utf8_valid(const char *s, size_t n);

/* Bytes of the first max_chars characters of s[0..n).  A character is a
 * lead byte and the continuation bytes after it, so the cut never splits
 * a sequence, even in ill-formed text. */
size_t ml_utf8_prefix(const char *s, size_t n, size_t max_chars);

/* n cut to at most max_bytes without splitting a sequence: n itself if it
 * fits, else the start of the sequence that straddles max_bytes. */
size_t ml_utf8_cut(const char *s, size_t n, size_t max_bytes);

/* s[0..n) as strict UTF-8 (RFC 3629: no surrogates), for every JSON
 * meliae writes out (docs/cli-json.md): each encoded surrogate (what a
 * lone "\ud800" in a dump decodes to) and each other ill-formed byte
 * becomes U+FFFD.  0: s is well-formed already (*out NULL); 1: *out is a
 * new NUL-terminated copy (free()) of *outlen bytes; -ENOMEM. */
int ml_utf8_repair(const char *s, size_t n, char **out, size_t *outlen);

#endif /* ML_UTF8_H */
