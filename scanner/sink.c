/* SPDX-License-Identifier: MIT
 *
 * sink.c -- fd and gzip output for the dump; see sink.h.
 */
#define _GNU_SOURCE 1   /* S_ISSOCK, MSG_NOSIGNAL under -std=c11 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sink.h"

#define ML_SINK_ZBUF (256 * 1024)

/* Bytes read from the file per send in ml_sink_send_framed. */
#define ML_SINK_SENDBUF (256 * 1024)

int64_t
ml_sink_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The poll() timeout for the next wait: s->timeout_ms, or what is left
 * before the deadline (rounded up), or -1 when that has passed. */
static int
wait_ms(const struct ml_sink *s)
{
    int64_t left;

    if (s->deadline_ns == 0)
        return s->timeout_ms;
    left = s->deadline_ns - ml_sink_now_ns();
    if (left <= 0)
        return -1;
    left = (left + 999999) / 1000000;
    return left > 1000000000 ? 1000000000 : (int)left;
}

int
ml_write_all(struct ml_sink *s, const void *buf, size_t len)
{
    const char *p = buf;
    int flags = MSG_NOSIGNAL | (s->deadline_ns != 0 ? MSG_DONTWAIT : 0);

    while (len > 0) {
        ssize_t n = s->is_socket ? send(s->fd, p, len, flags)
                                 : write(s->fd, p, len);

        if (n < 0) {
            if (errno == EINTR) {
                if (s->interrupted != NULL && s->interrupted())
                    return -EINTR;
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                /* A socket with a timeout, or a non-blocking pipe. */
                struct pollfd pfd = { s->fd, POLLOUT, 0 };
                int ms = wait_ms(s);
                int r;

                if (s->deadline_ns != 0 && ms < 0)
                    return -ETIMEDOUT;
                r = poll(&pfd, 1, ms);

                if (r == 0)
                    return -ETIMEDOUT;
                if (r < 0 && errno == EINTR && s->interrupted != NULL
                        && s->interrupted())
                    return -EINTR;
                continue;
            }
            return -errno;
        }
        if (n == 0)
            return -EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int
ml_sink_send_framed(int sock, const void *head, size_t hlen, int fd,
                    const void *tail, size_t tlen, int64_t deadline_ns)
{
    struct ml_sink s;
    char *buf;
    off_t off = 0;
    int rc;

    rc = ml_sink_open(&s, sock, 0);
    if (rc < 0)
        return rc;
    if (!s.is_socket)
        return -ENOTSOCK;       /* the deadline needs MSG_DONTWAIT */
    s.deadline_ns = deadline_ns;
    if (deadline_ns != 0 && ml_sink_now_ns() >= deadline_ns)
        return -ETIMEDOUT;
    buf = malloc(ML_SINK_SENDBUF);
    if (buf == NULL)
        return -ENOMEM;
    rc = ml_write_all(&s, head, hlen);
    while (rc == 0) {
        ssize_t n = pread(fd, buf, ML_SINK_SENDBUF, off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            break;
        }
        if (n == 0)
            break;
        off += n;
        rc = ml_write_all(&s, buf, (size_t)n);
    }
    if (rc == 0)
        rc = ml_write_all(&s, tail, tlen);
    free(buf);
    return rc;
}

int
ml_sink_open(struct ml_sink *s, int fd, int gzip)
{
    struct stat st;

    memset(s, 0, sizeof(*s));
    s->fd = fd;
    s->timeout_ms = -1;
    s->is_socket = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
    if (!gzip)
        return 0;
    s->zbuf = malloc(ML_SINK_ZBUF);
    if (s->zbuf == NULL)
        return -ENOMEM;
    /* 15 + 16: a gzip wrapper, readable by gzip(1) and Python's gzip. */
    if (deflateInit2(&s->zs, 6, Z_DEFLATED, 15 + 16, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
        free(s->zbuf);
        s->zbuf = NULL;
        return -ENOMEM;
    }
    s->gzip = 1;
    return 0;
}

static int
deflate_out(struct ml_sink *s, int flush)
{
    int zrc, rc;

    do {
        s->zs.next_out = s->zbuf;
        s->zs.avail_out = ML_SINK_ZBUF;
        zrc = deflate(&s->zs, flush);
        if (zrc == Z_STREAM_ERROR)
            return -EINVAL;
        rc = ml_write_all(s, s->zbuf,
                          ML_SINK_ZBUF - s->zs.avail_out);
        if (rc < 0)
            return rc;
        s->nwritten += ML_SINK_ZBUF - s->zs.avail_out;
    } while (s->zs.avail_out == 0 || (flush == Z_FINISH && zrc != Z_STREAM_END));
    return 0;
}

int
ml_sink_write(void *ctx, const char *buf, size_t len)
{
    struct ml_sink *s = ctx;
    int rc;

    if (!s->gzip) {
        rc = ml_write_all(s, buf, len);
        if (rc == 0)
            s->nwritten += len;
        return rc;
    }
    s->zs.next_in = (unsigned char *)(uintptr_t)buf;
    s->zs.avail_in = (uInt)len;
    return deflate_out(s, Z_NO_FLUSH);
}

int
ml_sink_finish(struct ml_sink *s)
{
    if (!s->gzip)
        return 0;
    s->zs.next_in = NULL;
    s->zs.avail_in = 0;
    return deflate_out(s, Z_FINISH);
}

void
ml_sink_close(struct ml_sink *s)
{
    if (s->gzip)
        deflateEnd(&s->zs);
    free(s->zbuf);
    s->zbuf = NULL;
    s->gzip = 0;
}

/* ---- copying out a finished dump (sink.h, struct ml_copy) ---- */

#define ML_COPY_BUF (256 * 1024)

int
ml_copy_init(struct ml_copy *c, int to, int from)
{
    struct stat st;

    memset(c, 0, sizeof(*c));
    c->to = to;
    c->from = from;
    c->idle_ms = -1;
    c->is_socket = fstat(to, &st) == 0 && S_ISSOCK(st.st_mode);
    c->buf = malloc(ML_COPY_BUF);
    c->last_ns = ml_sink_now_ns();
    return c->buf != NULL ? 0 : -ENOMEM;
}

void
ml_copy_free(struct ml_copy *c)
{
    free(c->buf);
    c->buf = NULL;
}

/* Milliseconds poll may wait: until the slice ends, the deadline or the
 * idle limit, whichever is first; -ETIMEDOUT when a limit has passed. */
static int
copy_wait_ms(const struct ml_copy *c, int64_t now, int64_t slice_end)
{
    int64_t end = slice_end;

    if (c->deadline_ns != 0 && c->deadline_ns < end)
        end = c->deadline_ns;
    if (c->idle_ms >= 0 && c->last_ns + (int64_t)c->idle_ms * 1000000 < end)
        end = c->last_ns + (int64_t)c->idle_ms * 1000000;
    if (end <= now)
        return end == slice_end ? 0 : -ETIMEDOUT;
    return (int)((end - now + 999999) / 1000000);
}

int
ml_copy_run(struct ml_copy *c, int slice_ms)
{
    int64_t slice_end = ml_sink_now_ns() + (int64_t)slice_ms * 1000000;

    for (;;) {
        struct pollfd pfd = { c->to, POLLOUT, 0 };
        ssize_t n;
        int ms, r;

        if (c->at == c->have) {
            n = pread(c->from, c->buf, ML_COPY_BUF, c->off);
            if (n < 0)
                return errno == EINTR ? -EINTR : -errno;
            if (n == 0)
                return 1;
            c->off += n;
            c->at = 0;
            c->have = (size_t)n;
        }
        ms = copy_wait_ms(c, ml_sink_now_ns(), slice_end);
        if (ms <= 0)            /* the slice is over, or a limit passed */
            return ms;
        r = poll(&pfd, 1, ms);
        if (r < 0)
            return errno == EINTR ? -EINTR : -errno;
        if (r == 0) {
            if ((ms = copy_wait_ms(c, ml_sink_now_ns(), slice_end)) <= 0)
                return ms;
            continue;
        }
        if (c->is_socket) {
            n = send(c->to, c->buf + c->at, c->have - c->at,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
        } else {
            size_t k = c->have - c->at;

            n = write(c->to, c->buf + c->at, k < PIPE_BUF ? k : PIPE_BUF);
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            continue;
        if (n < 0)
            return errno == EINTR ? -EINTR : -errno;
        if (n == 0)
            return -EIO;
        c->at += (size_t)n;
        c->nwritten += (uint64_t)n;
        c->last_ns = ml_sink_now_ns();
    }
}
