/* SPDX-License-Identifier: MIT
 *
 * log.h -- meliae-monitord's log: one line per event, a level and
 * key=value fields ("info snapshot_stored id=17 objects=182331 pid=4242").
 * To stderr in the foreground (with a UTC timestamp), to syslog once
 * detached.  Loop thread and writer thread alike: each line is one
 * write(2) or one syslog(3) call, so lines never interleave.
 */
#ifndef MD_LOG_H
#define MD_LOG_H

#include <stddef.h>

enum md_level {
    MD_LOG_ERROR = 0,
    MD_LOG_WARN = 1,
    MD_LOG_INFO = 2,
    MD_LOG_DEBUG = 3,
};

/* Parses "error", "warn", "info" or "debug".  0, or -1 if unknown. */
int md_log_parse_level(const char *s, enum md_level *out);

/* Sets where lines go (syslog != 0: syslog, else stderr) and the most
 * verbose level written.  Call before any thread starts. */
void md_log_init(int syslog, enum md_level max);

int md_log_enabled(enum md_level lv);

/* event is one word; fmt continues with " key=value" fields. */
void md_log(enum md_level lv, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* s as a log value: quoted when it holds anything but [A-Za-z0-9_./:+-],
 * with '"', '\' and control bytes escaped, cut to fit buf.  Returns buf. */
const char *md_logq(const char *s, char *buf, size_t n);

#define md_err(ev, ...) md_log(MD_LOG_ERROR, ev, __VA_ARGS__)
#define md_warn(ev, ...) md_log(MD_LOG_WARN, ev, __VA_ARGS__)
#define md_info(ev, ...) md_log(MD_LOG_INFO, ev, __VA_ARGS__)
#define md_debug(ev, ...)                                                    \
    do {                                                                     \
        if (md_log_enabled(MD_LOG_DEBUG))                                    \
            md_log(MD_LOG_DEBUG, ev, __VA_ARGS__);                           \
    } while (0)

#endif /* MD_LOG_H */
