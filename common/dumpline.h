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
};

void ml_dumpparser_init(struct ml_dumpparser *p);
void ml_dumpparser_free(struct ml_dumpparser *p);

/* Parses line s[0..n) (a trailing '\n' or "\r\n" is allowed).  Returns 0
 * and fills out; ML_EPROTO with p->err saying what is wrong; ML_ETOOBIG
 * (p->err too) past p->max_refs; or -ENOMEM.
 * out's pointers stay valid until the next call. */
int ml_dumpline_parse(struct ml_dumpparser *p, const char *s, size_t n,
                      struct ml_dumpline *out);

#endif /* ML_DUMPLINE_H */
