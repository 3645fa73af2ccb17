/* SPDX-License-Identifier: MIT
 *
 * util.c -- see util.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int
md_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    unsigned long long v;
    char *end;

    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Leading decimal digits of s -> *v; *rest at the first non-digit. */
static int
leading_number(const char *s, uint64_t *v, const char **rest)
{
    unsigned long long x;
    char *end;

    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    x = strtoull(s, &end, 10);
    if (errno != 0)
        return -1;
    *v = x;
    *rest = end;
    return 0;
}

int
md_parse_duration(const char *s, uint64_t *ns)
{
    uint64_t v, mul;
    const char *u;

    if (leading_number(s, &v, &u) < 0 || v == 0)
        return -1;
    if (*u == '\0' || strcmp(u, "s") == 0)
        mul = 1;
    else if (strcmp(u, "m") == 0)
        mul = 60;
    else if (strcmp(u, "h") == 0)
        mul = 3600;
    else if (strcmp(u, "d") == 0)
        mul = 86400;
    else if (strcmp(u, "w") == 0)
        mul = 7 * 86400;
    else
        return -1;
    mul *= 1000000000ull;
    if (v > UINT64_MAX / mul)
        return -1;
    *ns = v * mul;
    return 0;
}

int
md_parse_size(const char *s, uint64_t *bytes)
{
    static const char units[] = "KMGTPE";
    uint64_t v, mul = 1;
    const char *u;

    if (leading_number(s, &v, &u) < 0 || v == 0)
        return -1;
    if (*u != '\0') {
        const char *p = strchr(units, *u >= 'a' ? *u - 'a' + 'A' : *u);

        if (p == NULL || *u == '\0')
            return -1;
        for (const char *q = units; q <= p; q++)
            mul *= 1024;
        u++;
        if (strcmp(u, "") != 0 && strcmp(u, "B") != 0 && strcmp(u, "iB") != 0)
            return -1;
    }
    if (v > UINT64_MAX / mul)
        return -1;
    *bytes = v * mul;
    return 0;
}

int
md_utf8_ok(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    const unsigned char *end = s + n;

    while (s < end) {
        unsigned char c = *s;
        unsigned char lo = 0x80, hi = 0xbf;
        size_t len;

        if (c == 0)
            return 0;
        if (c < 0x80) {
            s++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            if (c == 0xe0)
                lo = 0xa0;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            if (c == 0xf0)
                lo = 0x90;
            else if (c == 0xf4)
                hi = 0x8f;
        } else {
            return 0;
        }
        if ((size_t)(end - s) < len || s[1] < lo || s[1] > hi)
            return 0;
        for (size_t i = 2; i < len; i++)
            if (s[i] < 0x80 || s[i] > 0xbf)
                return 0;
        s += len;
    }
    return 1;
}

void
md_json_str(char *buf, size_t n, size_t *off, const char *s)
{
    size_t o = *off;

    if (n == 0 || o >= n - 1)
        return;
    buf[o++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        char esc[8];
        size_t len;

        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            len = 2;
        } else if (*p < 0x20 || *p >= 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", *p);
            len = 6;
        } else {
            esc[0] = (char)*p;
            len = 1;
        }
        if (o + len + 2 > n)            /* room for the closing quote, NUL */
            break;
        memcpy(buf + o, esc, len);
        o += len;
    }
    if (o < n - 1)
        buf[o++] = '"';
    buf[o] = '\0';
    *off = o;
}
