/* SPDX-License-Identifier: MIT
 *
 * log.c -- see log.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* Set once by md_log_init before any thread starts; read-only after. */
static int log_syslog;
static enum md_level log_max = MD_LOG_INFO;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

int
md_log_parse_level(const char *s, enum md_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum md_level)i;
            return 0;
        }
    }
    return -1;
}

void
md_log_init(int use_syslog, enum md_level max)
{
    log_syslog = use_syslog;
    log_max = max;
    if (use_syslog)
        openlog("meliae-monitord", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

int
md_log_enabled(enum md_level lv)
{
    return lv <= log_max;
}

void
md_log(enum md_level lv, const char *event, const char *fmt, ...)
{
    static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
    char line[1024];
    size_t off = 0;
    va_list ap;
    int n;

    if (!md_log_enabled(lv))
        return;
    if (!log_syslog) {
        struct timespec ts;
        struct tm tm;

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        off = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
        n = snprintf(line + off, sizeof(line) - off, ".%03ldZ ",
                     ts.tv_nsec / 1000000);
        off += n > 0 ? (size_t)n : 0;
    }
    n = snprintf(line + off, sizeof(line) - off, "%s %s", level_names[lv],
                 event);
    if (n > 0)
        off += (size_t)n;
    if (off < sizeof(line)) {
        va_start(ap, fmt);
        n = vsnprintf(line + off, sizeof(line) - off, fmt, ap);
        va_end(ap);
        if (n > 0)
            off += (size_t)n;
    }
    if (off >= sizeof(line) - 1)
        off = sizeof(line) - 2;         /* cut; keep room for '\n' */
    if (log_syslog) {
        line[off] = '\0';
        syslog(prio[lv], "%s", line);
        return;
    }
    line[off++] = '\n';
    /* One write per line; a failing stderr is nothing we can report. */
    while (write(STDERR_FILENO, line, off) < 0 && errno == EINTR)
        ;
}

static int
plain_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
           || (ch >= '0' && ch <= '9') || strchr("_./:+-", ch) != NULL;
}

const char *
md_logq(const char *s, char *buf, size_t n)
{
    size_t o = 0;
    int plain = *s != '\0';

    for (const char *p = s; *p != '\0' && plain; p++)
        plain = plain_char((unsigned char)*p);
    if (plain) {
        snprintf(buf, n, "%s", s);
        return buf;
    }
    if (n < 3) {
        if (n > 0)
            buf[0] = '\0';
        return buf;
    }
    buf[o++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        char esc[5];
        size_t len;

        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            len = 2;
        } else if (*p < 0x20 || *p == 0x7f) {
            snprintf(esc, sizeof(esc), "\\x%02x", *p);
            len = 4;
        } else {
            esc[0] = (char)*p;
            len = 1;
        }
        if (o + len + 2 > n)
            break;
        memcpy(buf + o, esc, len);
        o += len;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}
