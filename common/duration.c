/* SPDX-License-Identifier: MIT
 *
 * duration.c -- see duration.h.
 */
#include <errno.h>
#include <stddef.h>

#include "duration.h"

#define NS_PER_S 1000000000ull

static int
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Nanoseconds per unit u ("" is seconds); 0 for an unknown unit. */
static uint64_t
unit_ns(const char *u)
{
    static const struct { char name; uint64_t s; } units[] = {
        { 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 },
        { 'w', 7 * 86400 },
    };

    if (u[0] == '\0')
        return NS_PER_S;
    if (u[1] != '\0')
        return 0;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (units[i].name == u[0])
            return units[i].s * NS_PER_S;
    return 0;
}

int
ml_parse_duration(const char *s, uint64_t *ns)
{
    const char *p = s, *frac, *frac_end;
    uint64_t whole = 0, mul, part = 0;

    for (; is_digit(*p); p++) {
        unsigned d = (unsigned)(*p - '0');

        if (whole > (UINT64_MAX - d) / 10)
            return -ERANGE;
        whole = whole * 10 + d;
    }
    frac = frac_end = p;
    if (*p == '.') {
        frac = ++p;
        while (is_digit(*p))
            p++;
        frac_end = p;
    }
    if (p == s || (p == s + 1 && *s == '.'))    /* no digit at all */
        return -EINVAL;
    if ((mul = unit_ns(p)) == 0)
        return -EINVAL;
    /* floor(0.d1..dk * mul), exactly, from the last digit back: with
     * part = floor(0.d(i+1).. * mul), floor((di * mul + part) / 10) is
     * the next one, and stays below mul, so nothing overflows. */
    for (const char *q = frac_end; q > frac; q--)
        part = ((uint64_t)(q[-1] - '0') * mul + part) / 10;
    if (whole > UINT64_MAX / mul || whole * mul > UINT64_MAX - part)
        return -ERANGE;
    *ns = whole * mul + part;
    return 0;
}
