/* SPDX-License-Identifier: MIT
 *
 * util.h -- small pure helpers of meliae-monitord: option values (SIZE;
 * DUR is common/duration.h) and JSON string escaping for the lines the
 * daemon writes.  No libuv, no store: unit-testable alone.
 */
#ifndef MD_UTIL_H
#define MD_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* "4096", "512K", "512M", "64G", "1T" (binary multiples; an optional
 * trailing "B" or "iB") -> bytes.  0, or -1 when malformed, zero or
 * overflowing. */
int md_parse_size(const char *s, uint64_t *bytes);

/* A decimal integer in [min, max] with nothing after it.  0 or -1. */
int md_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Appends s as a JSON string (quotes included) to buf[*off..n), escaping
 * '"', '\', control bytes and every byte >= 0x80 (as \u00XX, so the
 * result is ASCII whatever s holds).  Cut short rather than overflow;
 * buf stays NUL-terminated. */
void md_json_str(char *buf, size_t n, size_t *off, const char *s);

#endif /* MD_UTIL_H */
