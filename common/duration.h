/* SPDX-License-Identifier: MIT
 *
 * duration.h -- the DUR option value of meliae-cli (--since, --until) and
 * meliae-monitord (--retain-age), parsed in one place.
 */
#ifndef ML_DURATION_H
#define ML_DURATION_H

#include <stdint.h>

/* "30s", "15m", "1.5h", "2d", "1w" or "90" (a bare number is seconds):
 * a non-negative decimal number, a fraction allowed (".5h", "1.5h"), then
 * at most one unit among s, m, h, d, w, and nothing else -- no sign, no
 * space, no exponent.  *ns gets the value in nanoseconds, a fraction cut
 * down to a whole nanosecond.  0 (zero is a valid duration: callers that
 * want a positive one check), -EINVAL when malformed, -ERANGE beyond
 * 2^64 - 1 ns (about 584 years).  *ns is untouched on error. */
int ml_parse_duration(const char *s, uint64_t *ns);

#endif /* ML_DURATION_H */
