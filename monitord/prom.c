/* SPDX-License-Identifier: MIT
 *
 * prom.c -- see prom.h.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prom.h"
#include "utf8.h"
#include "util.h"

/* ---- text buffer ---- */

static int
sbuf_reserve(struct md_sbuf *b, size_t more)
{
    size_t ncap;
    char *np;

    if (b->oom)
        return -1;
    if (b->len + more + 1 <= b->cap)
        return 0;
    ncap = b->cap < 256 ? 256 : b->cap;
    while (ncap < b->len + more + 1) {
        if (ncap > SIZE_MAX / 2) {
            b->oom = 1;
            return -1;
        }
        ncap *= 2;
    }
    np = realloc(b->p, ncap);
    if (np == NULL) {
        b->oom = 1;
        return -1;
    }
    b->p = np;
    b->cap = ncap;
    return 0;
}

void
md_sbuf_add(struct md_sbuf *b, const char *s, size_t n)
{
    if (sbuf_reserve(b, n) < 0)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void
md_sbuf_puts(struct md_sbuf *b, const char *s)
{
    md_sbuf_add(b, s, strlen(s));
}

void
md_sbuf_printf(struct md_sbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = 1;
        return;
    }
    if (sbuf_reserve(b, (size_t)n) < 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void
md_sbuf_free(struct md_sbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* ---- label values ---- */

void
md_prom_label_value(struct md_sbuf *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0;

    /* Copies runs of plain bytes at once. */
    while (i < n) {
        size_t k = 0;
        const char *esc = NULL;

        if (p[i] == '\\')
            esc = "\\\\";
        else if (p[i] == '"')
            esc = "\\\"";
        else if (p[i] == '\n')
            esc = "\\n";
        else if (p[i] == '\0'
                 || (k = ml_utf8_seq_len_strict(p + i, p + n)) == 0)
            esc = "?";
        if (esc == NULL) {
            i += k;
            continue;
        }
        md_sbuf_add(b, s + run, i - run);
        md_sbuf_puts(b, esc);
        i++;
        run = i;
    }
    md_sbuf_add(b, s + run, n - run);
}

/* ---- --metrics-listen ---- */

int
md_prom_parse_listen(const char *s, struct sockaddr_storage *out,
                     int *loopback, char *err, size_t errlen)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *colon, *h = s;
    size_t hlen;
    uint64_t port;

    memset(out, 0, sizeof(*out));
    *loopback = 0;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');

        if (close == NULL || close[1] != ':') {
            snprintf(err, errlen, "expected [IPV6]:PORT, got '%s'", s);
            return -1;
        }
        h = s + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL) {
            snprintf(err, errlen, "expected HOST:PORT, got '%s'", s);
            return -1;
        }
        hlen = (size_t)(colon - s);
    }
    if (md_parse_uint(colon + 1, 0, 65535, &port) < 0) {
        snprintf(err, errlen, "expected a port from 0 to 65535 in '%s'", s);
        return -1;
    }
    if (hlen == 0 || hlen >= sizeof(host)) {
        snprintf(err, errlen, "expected an IPv4 or [IPv6] address in '%s'",
                 s);
        return -1;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    if (s[0] != '[') {
        struct sockaddr_in *in = (struct sockaddr_in *)out;

        if (inet_pton(AF_INET, host, &in->sin_addr) != 1) {
            snprintf(err, errlen, "'%s' is not an IPv4 address (host names "
                     "are not resolved; an IPv6 one goes in brackets)", host);
            return -1;
        }
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        *loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
        const unsigned char *a;

        if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1) {
            snprintf(err, errlen, "'%s' is not an IPv6 address", host);
            return -1;
        }
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        a = in6->sin6_addr.s6_addr;
        *loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)
                    || (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && a[12] == 127);
    }
    return 0;
}

const char *
md_prom_addr_str(const struct sockaddr *sa, char *buf, size_t n)
{
    char host[INET6_ADDRSTRLEN];

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        snprintf(buf, n, "%s:%u", host, (unsigned)ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        snprintf(buf, n, "[%s]:%u", host, (unsigned)ntohs(in6->sin6_port));
    } else {
        snprintf(buf, n, "?");
    }
    return buf;
}

/* ---- the request ---- */

/* RFC 9110 tchar: what a method is made of. */
static int
is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || (c != '\0'
                                         && strchr("!#$%&'*+-.^_`|~", c));
}

int
md_http_route(const char *buf, size_t len, size_t max, int *head)
{
    const char *eol, *sp1, *sp2, *end = NULL, *target;
    size_t mlen, tlen, i;

    *head = 0;
    /* The head ends with an empty line. */
    for (i = 0; i < len; i++) {
        if (buf[i] != '\n')
            continue;
        if (i + 1 < len && buf[i + 1] == '\n') {
            end = buf + i;
            break;
        }
        if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n') {
            end = buf + i;
            break;
        }
    }
    if (end == NULL)
        return len >= max ? 431 : 0;

    eol = memchr(buf, '\n', len);           /* non-NULL: end was found */
    if (eol > buf && eol[-1] == '\r')
        eol--;
    sp1 = memchr(buf, ' ', (size_t)(eol - buf));
    if (sp1 == NULL || sp1 == buf)
        return 400;
    mlen = (size_t)(sp1 - buf);
    for (i = 0; i < mlen; i++)
        if (!is_tchar((unsigned char)buf[i]))
            return 400;
    target = sp1 + 1;
    sp2 = memchr(target, ' ', (size_t)(eol - target));
    if (sp2 == NULL || sp2 == target)
        return 400;
    tlen = (size_t)(sp2 - target);
    if ((size_t)(eol - (sp2 + 1)) != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0)
        return memchr(sp2 + 1, ' ', (size_t)(eol - (sp2 + 1))) == NULL
               && (size_t)(eol - (sp2 + 1)) >= 5
               && memcmp(sp2 + 1, "HTTP/", 5) == 0 ? 505 : 400;
    if (sp2[8] != '0' && sp2[8] != '1')
        return 505;
    if (mlen == 4 && memcmp(buf, "HEAD", 4) == 0)
        *head = 1;
    else if (mlen != 3 || memcmp(buf, "GET", 3) != 0)
        return 405;
    if (tlen >= 8 && memcmp(target, "/metrics", 8) == 0
        && (tlen == 8 || target[8] == '?'))
        return 200;
    return 404;
}
