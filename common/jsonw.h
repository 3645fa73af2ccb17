/* SPDX-License-Identifier: MIT
 *
 * jsonw.h -- a bounded JSON writer over a caller-owned buffer.
 *
 * The dump writer (scanner) and every later producer of dump lines write
 * through this, so escaping and number formatting exist exactly once.  The
 * writer never allocates: when the next piece does not fit, the buffer is
 * handed to the flush callback and reused.  The first error (a negative
 * code from the callback) is sticky in w->err and every later call is a
 * no-op, so a caller may write a whole line and check once.
 *
 * Strings are written as ASCII-only JSON: control characters (U+0000 to
 * U+001F), '"' and '\\' are escaped, every non-ASCII character becomes \uXXXX, and characters
 * beyond the BMP become a surrogate pair.  A cap counts characters (code
 * points), never code units, so a cut never splits a character.  The exact
 * rules are in docs/dump-format.md.
 */
#ifndef ML_JSONW_H
#define ML_JSONW_H

#include <stddef.h>
#include <stdint.h>

/* Returns 0 or a negative code; must consume all len bytes on success. */
typedef int (*ml_jsonw_flush_fn)(void *ctx, const char *buf, size_t len);

/* The largest single piece any put writes without flushing in between:
 * one escaped non-BMP character is 12 bytes, a double at most 25.  The
 * buffer must be at least this large. */
#define ML_JSONW_MIN_BUF 64

struct ml_jsonw {
    char *buf;
    size_t cap;
    size_t len;
    ml_jsonw_flush_fn flush;
    void *ctx;
    int err;            /* first error; sticky */
    uint64_t nflushed;  /* bytes handed to flush so far */
};

void ml_jsonw_init(struct ml_jsonw *w, char *buf, size_t cap,
                   ml_jsonw_flush_fn flush, void *ctx);

/* Hands out everything buffered.  Returns w->err. */
int ml_jsonw_flush(struct ml_jsonw *w);

/* Makes room for n bytes (n <= cap) and returns where to write them, or
 * NULL after an error.  The caller then calls ml_jsonw_commit(w, k). */
static inline char *
ml_jsonw_reserve(struct ml_jsonw *w, size_t n)
{
    if (w->cap - w->len < n && ml_jsonw_flush(w) < 0)
        return NULL;
    return w->err < 0 ? NULL : w->buf + w->len;
}

static inline void
ml_jsonw_commit(struct ml_jsonw *w, size_t n)
{
    w->len += n;
}

void ml_jsonw_raw(struct ml_jsonw *w, const char *s, size_t n);

/* ml_jsonw_raw, inline for the common case that the bytes fit: with a
 * constant n the copy compiles to a few moves. */
static inline void
ml_jsonw_put(struct ml_jsonw *w, const char *s, size_t n)
{
    if (n <= w->cap - w->len && w->err == 0) {
        for (size_t i = 0; i < n; i++)
            w->buf[w->len + i] = s[i];
        w->len += n;
        return;
    }
    ml_jsonw_raw(w, s, n);
}
void ml_jsonw_u64(struct ml_jsonw *w, uint64_t v);
void ml_jsonw_i64(struct ml_jsonw *w, int64_t v);

/* Python's repr() of v: the shortest text that reads back as v, always with a '.' or an
 * exponent so readers see a float; non-finite values become the strings
 * "inf", "-inf" and "nan" (JSON has no such numbers). */
void ml_jsonw_double(struct ml_jsonw *w, double v);

/* A JSON string from code units of width kind (1, 2 or 4 bytes: latin-1,
 * UCS-2, UCS-4; CPython's str layouts), at most maxchars characters of the
 * nchars given.  Lone surrogates in UCS-2/UCS-4 are escaped as they are. */
void ml_jsonw_str_ucs(struct ml_jsonw *w, int kind, const void *data,
                      size_t nchars, size_t maxchars);

/* A JSON string from UTF-8 bytes, at most maxchars characters.  Each
 * ill-formed sequence becomes one U+FFFD, as with Python's 'replace'. */
void ml_jsonw_str_utf8(struct ml_jsonw *w, const char *s, size_t n,
                       size_t maxchars);

/* Formats v in decimal into out (at least 20 bytes); returns the length.
 * Exposed for tests and for callers that build keys. */
size_t ml_fmt_u64(char *out, uint64_t v);

#endif /* ML_JSONW_H */
