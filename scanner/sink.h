/* SPDX-License-Identifier: MIT
 *
 * sink.h -- where dump bytes go: a file descriptor, optionally through
 * gzip.  The walk writes into the jsonw buffer; full buffers arrive here.
 *
 * Writes retry EINTR and short writes; a socket is written with
 * MSG_NOSIGNAL so a closed peer is EPIPE, never SIGPIPE.  No Python code
 * runs here and no Python object is touched: the walk calls this with the
 * GIL held, in the middle of the heap.
 */
#ifndef ML_SINK_H
#define ML_SINK_H

#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

struct ml_sink {
    int fd;
    int is_socket;
    int timeout_ms;             /* per write on a non-blocking fd; -1: none */
    /* CLOCK_MONOTONIC time (ns) by which every write must be done, or 0:
     * none.  With a deadline a socket is written with MSG_DONTWAIT, so
     * even a blocking one cannot stall past it. */
    int64_t deadline_ns;
    /* Asked after EINTR: non-zero stops the dump (-EINTR), e.g. on Ctrl-C;
     * zero retries the write.  NULL: always retry. */
    int (*interrupted)(void);
    int gzip;
    z_stream zs;
    unsigned char *zbuf;        /* deflate output, ML_SINK_ZBUF bytes */
    uint64_t nwritten;          /* bytes that reached fd */
};

/* fd is borrowed (not closed by ml_sink_close).  gzip: compress with a
 * gzip header.  Returns 0 or -ENOMEM. */
int ml_sink_open(struct ml_sink *s, int fd, int gzip);

/* jsonw flush callback: ctx is a struct ml_sink.  0 or -errno. */
int ml_sink_write(void *ctx, const char *buf, size_t len);

/* Ends the gzip stream, if any.  0 or -errno. */
int ml_sink_finish(struct ml_sink *s);

/* Frees what ml_sink_open allocated.  Never fails. */
void ml_sink_close(struct ml_sink *s);

/* Writes all of buf to s->fd: retries short writes, EINTR (unless
 * s->interrupted says stop) and, on a non-blocking fd, waits for room up
 * to s->timeout_ms, or until s->deadline_ns (-ETIMEDOUT after).  0 or
 * -errno. */
int ml_write_all(struct ml_sink *s, const void *buf, size_t len);

/* CLOCK_MONOTONIC now, in ns: the clock of deadline_ns. */
int64_t ml_sink_now_ns(void);

/* Sends one streamed snapshot (docs/protocol.md) on socket sock: head,
 * then the whole of the regular file fd (read from offset 0 with pread,
 * so fd's offset is not used), then tail, everything by deadline_ns (0:
 * none; -ETIMEDOUT after, and before sending anything if it has already
 * passed).  Touches no Python state: callers release the GIL around it.
 * 0 or -errno; on error an unknown part of the snapshot may have been
 * sent, so the connection is no longer usable. */
int ml_sink_send_framed(int sock, const void *head, size_t hlen, int fd,
                        const void *tail, size_t tlen, int64_t deadline_ns);

/* Copying a finished dump (a temporary file) to a target that may stall
 * (a pipe, a FIFO, a socket, a terminal), without the GIL: ml_copy_run
 * copies until done or for one slice of time, and the caller, holding
 * the GIL between slices, runs the process's signal handlers.  It never
 * blocks longer than a slice: it waits in poll() and writes what poll
 * says fits (a socket with MSG_DONTWAIT; anything else PIPE_BUF bytes at
 * most, which a writable pipe takes whole). */
struct ml_copy {
    int to, from;               /* borrowed */
    int is_socket;
    off_t off;                  /* next byte of from to read */
    char *buf;                  /* ML_COPY_BUF bytes */
    size_t have, at;            /* buf[at..have) still to write */
    int64_t deadline_ns;        /* CLOCK_MONOTONIC; 0: none */
    int idle_ms;                /* no progress for this long: -ETIMEDOUT; -1 */
    int64_t last_ns;            /* when bytes last went out */
    uint64_t nwritten;
};

/* 0 or -ENOMEM.  Reads from from starting at offset 0 (pread). */
int ml_copy_init(struct ml_copy *c, int to, int from);
void ml_copy_free(struct ml_copy *c);

/* 1: all copied; 0: slice_ms passed (call again); -EINTR: a signal came
 * (run the handlers, then call again); -ETIMEDOUT (the deadline, or
 * idle_ms without progress); -errno (-EPIPE: the reader left). */
int ml_copy_run(struct ml_copy *c, int slice_ms);

#endif /* ML_SINK_H */
