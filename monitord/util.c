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
