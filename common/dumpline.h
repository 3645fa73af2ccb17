/* SPDX-License-Identifier: MIT
 *
 * dumpline.h -- parse one line of a meliae dump (docs/dump-format.md).
 *
 * The reader side of the format: the loader, and later the daemon's ingest,
 * parse every line through this.  It accepts the keys in any order and
 * skips keys it does not know (with any JSON value), so dumps from meliae
 * 0.5 and from later writers load; a line without "address" (the streamed
 * protocol's header and trailer) is reported as ML_LINE_OTHER for the
 * caller to check.  Nothing is allocated per line: strings that need no
 * unescaping point into the line, the others and the refs live in the
 * parser's scratch buffers, which grow to the largest line seen.
 */
#ifndef ML_DUMPLINE_H
#define ML_DUMPLINE_H

#include <stddef.h>
#include <stdint.h>

enum ml_linekind {
    ML_LINE_OBJECT = 1,     /* has "address", "type" and "size" */
    ML_LINE_OTHER = 2,      /* a JSON object without "address" */
};

enum ml_vkind {
    ML_VAL_NONE = 0,        /* no "value" key */
    ML_VAL_STR,             /* value/value_len: the unescaped string */
    ML_VAL_INT,             /* value/value_len: the JSON integer's text */
    ML_VAL_FLOAT,           /* value/value_len: the JSON number's text */
    ML_VAL_TRUE,
    ML_VAL_FALSE,
    ML_VAL_NULL,
};

/* Strings are UTF-8.  A lone surrogate escape (\udc80, from a Python str
 * that holds one) is kept as its 3-byte encoding, as Python's
 * 'surrogatepass' handler reads it. */
struct ml_dumpline {
    enum ml_linekind kind;
    uint64_t address;
    const char *type;
    size_t type_len;
    uint64_t size;
    int has_name;
    const char *name;
    size_t name_len;
    int has_len;
    uint64_t len;
    enum ml_vkind vkind;
    const char *value;
    size_t value_len;
    const uint64_t *refs;
    size_t nrefs;
    /* Birth sites (docs/dump-format.md): an object line's "trace", the
     * id of its allocation traceback; a table line's "traceback", the id
     * it defines (its "frames" are left to the caller). */
    int has_trace;
    uint64_t trace;
    int has_traceback;
    uint64_t traceback;
};

struct ml_dumpparser {
    char *sbuf;             /* unescaped strings of the current line */
    size_t scap;
    size_t slen;
    uint64_t *refs;         /* refs of the current line */
    size_t rcap;
    size_t max_refs;        /* 0: no limit; else more refs is ML_ETOOBIG
                             * (and the scratch never grows past it) */
    char err[160];          /* what was wrong, after ML_EPROTO */
    size_t err_at;          /* and at which byte of the line */
};

void ml_dumpparser_init(struct ml_dumpparser *p);
void ml_dumpparser_free(struct ml_dumpparser *p);

/* 1 if s[0..n) is only spaces, tabs, CRs and LFs: a line every reader of
 * dumps skips. */
int ml_dumpline_blank(const char *s, size_t n);

/* Parses line s[0..n) (a trailing '\n' or "\r\n" is allowed).  Returns 0
 * and fills out; ML_EPROTO with p->err saying what is wrong; ML_ETOOBIG
 * (p->err too) past p->max_refs; or -ENOMEM.
 * out's pointers stay valid until the next call. */
int ml_dumpline_parse(struct ml_dumpparser *p, const char *s, size_t n,
                      struct ml_dumpline *out);

/* ---- long lines, parsed in pieces (docs/protocol.md, "Long lines") ----
 *
 * A line too long to hold whole is read as a head (every key up to and
 * including the '[' that opens "refs", which must be the line's last key)
 * and then its refs, from any number of pieces, with the resumable scanner
 * below.  Parsing a line this way gives the fields and refs the whole-line
 * parse gives (tests/unit/test_dumpline.c checks it at every split). */

#define ML_DUMPLINE_MORE 1      /* the head is not complete in s[0..n) */

/* Parses the head of the object line starting at s: s[0..n) is the line
 * so far (no '\n' needed).  0 with out filled (nrefs 0, refs NULL; its
 * pointers valid until the next call) and *refs_at the offset just after
 * the '[' of "refs"; ML_DUMPLINE_MORE when s[0..n) ends before that '['
 * (or in a way that more bytes could still make valid); ML_EPROTO (p->err)
 * for a head that no more bytes can make valid, a line without "address",
 * "type" or "size" before its refs, or one that ends without refs;
 * -ENOMEM. */
int ml_dumpline_parse_head(struct ml_dumpparser *p, const char *s, size_t n,
                           struct ml_dumpline *out, size_t *refs_at);

/* The rest of a long line after its head: the refs, ']', '}', and the
 * line's end ('\n', "\r\n" allowed).  Plain data: init, then feed. */
struct ml_refscan {
    int st;                 /* where in the grammar (dumpline.c RS_*) */
    unsigned nd;            /* digits of the ref being read */
    uint64_t v;             /* its value so far */
    uint64_t count;         /* refs read */
    uint64_t pos;           /* bytes consumed, for error messages */
    char err[160];          /* what was wrong, after ML_EPROTO */
};

#define ML_REFSCAN_END 1        /* the line's '\n' was consumed */

void ml_refscan_init(struct ml_refscan *r);

/* Scans s[0..n): refs go to out[0..cap), *nout of them.  Stops when the
 * input is consumed or out is full (returns 0), or after the line's '\n'
 * (ML_REFSCAN_END; bytes after it are not touched); *used says how much
 * of s it took.  ML_EPROTO with r->err: a malformed ref, a key after
 * "refs", text after the object, or the line ending inside the refs. */
int ml_refscan_feed(struct ml_refscan *r, const char *s, size_t n,
                    uint64_t *out, size_t cap, size_t *nout, size_t *used);

#endif /* ML_DUMPLINE_H */
