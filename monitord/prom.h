/* SPDX-License-Identifier: MIT
 *
 * prom.h -- the pure parts of meliae-monitord's Prometheus metrics
 * (metrics.c): a growing text buffer, label-value escaping of the text
 * exposition format, the --metrics-listen address, and the one HTTP
 * request a metrics connection may make.  No libuv, no store:
 * unit-testable alone (tests/daemon/test_monitord_proto.c).
 *
 * The exposition format is Prometheus' text format 0.0.4:
 * https://prometheus.io/docs/instrumenting/exposition_formats/
 */
#ifndef MD_PROM_H
#define MD_PROM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A malloc'd text that grows.  After a failed allocation every append is
 * a no-op and oom is set: check it once, at the end. */
struct md_sbuf {
    char *p;                    /* NUL-terminated when not NULL */
    size_t len, cap;
    int oom;
};

void md_sbuf_add(struct md_sbuf *b, const char *s, size_t n);
void md_sbuf_puts(struct md_sbuf *b, const char *s);
void md_sbuf_printf(struct md_sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Frees b's text and resets it.  Can't fail. */
void md_sbuf_free(struct md_sbuf *b);

/* Appends s[0..n) as the inside of a label value: '\' -> "\\", '"' ->
 * "\"", newline -> "\n", as the text format wants.  Prometheus refuses
 * label values that are not UTF-8, so a byte that is not part of
 * well-formed UTF-8, and NUL, become '?'. */
void md_prom_label_value(struct md_sbuf *b, const char *s, size_t n);

/* Parses --metrics-listen's "HOST:PORT": HOST an IPv4 literal
 * ("127.0.0.1") or an IPv6 literal in brackets ("[::1]"), PORT 0 to
 * 65535 (0: the kernel picks one; the log says which).  0 and *out,
 * *loopback (1 for 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104); or -1
 * with a one-line reason in err. */
int md_prom_parse_listen(const char *s, struct sockaddr_storage *out,
                         int *loopback, char *err, size_t errlen);

/* "127.0.0.1:9464" / "[::1]:9464" of a bound address, into buf. */
const char *md_prom_addr_str(const struct sockaddr *sa, char *buf,
                             size_t n);

/* What to answer the request head in buf[0..len) (len <= max):
 *   0    not complete yet (no empty line; len < max);
 *   200  GET or HEAD of /metrics (a query string is ignored);
 *   400  not an HTTP/1.x request line;
 *   404  GET or HEAD of another path;
 *   405  another method;
 *   431  no end of the head within max bytes;
 *   505  an HTTP version other than 1.0 and 1.1.
 * *head is set to 1 for HEAD (headers only).  Only the request line is
 * looked at; headers are read and ignored.  A lone "\n" ends lines too. */
int md_http_route(const char *buf, size_t len, size_t max, int *head);

#endif /* MD_PROM_H */
