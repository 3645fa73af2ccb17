/* SPDX-License-Identifier: MIT
 *
 * proto.h -- the header and trailer lines of the streaming protocol
 * (docs/protocol.md), checked and decoded; and the error codes the
 * daemon answers with.  Object lines are common/dumpline.h's business.
 * No libuv here: unit-testable alone.
 */
#ifndef MD_PROTO_H
#define MD_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "protocol.h"
#include "store.h"

/* The "code" of an error line (docs/protocol.md, "Daemon -> client"). */
enum md_code {
    MD_OK = 0,
    MD_DENIED,          /* closed */
    MD_VERSION,         /* closed */
    MD_PROTO,           /* closed */
    MD_LIMIT,           /* closed */
    MD_ABORTED,         /* stays open */
    MD_STORE,           /* stays open */
    MD_SHUTDOWN,        /* closed */
    /* Answers to queries (docs/protocol.md, "Queries"); all close. */
    MD_NOTFOUND,        /* unknown snapshot, address or process */
    MD_USAGE,           /* a bad argument */
    MD_ERROR,           /* anything else */
};

/* "denied", "version", ...; "ok" for MD_OK. */
const char *md_code_name(enum md_code c);

/* 1 if the connection is closed after an error of this code. */
int md_code_closes(enum md_code c);

#define MD_STR_MAX (ML_PROTO_MAX_LABEL + 1)

/* What a header line says (docs/protocol.md, "Header").  Owns its
 * strings, so it can travel with a commit to the writer thread. */
struct md_meta {
    int64_t pid;
    double start_time;
    int has_hostname, has_program, has_python, has_label;
    char hostname[MD_STR_MAX];
    char program[MD_STR_MAX];
    char python[MD_STR_MAX];
    char label[MD_STR_MAX];
    /* an imported file (mode "file"): its name and content hash; "" if
     * not sent */
    char file[MD_STR_MAX];
    char content_hash[MD_STR_MAX];
    char values[16];            /* "none" | "truncated" | "full" */
    char mode[8];               /* "all" | "file"; "" if absent */
    uint64_t request;
    double time;
    int hello;                  /* "hello": true: no snapshot follows */
    struct st_procfig procfig;  /* "process" (has == 0: not sent) */
};

/* Parses line[0..n) as a header.  MD_OK and fills m; else MD_VERSION,
 * MD_PROTO or MD_LIMIT with a one-line reason in err. */
enum md_code md_header_parse(const char *line, size_t n, struct md_meta *m,
                             char *err, size_t errlen);

struct md_trailer {
    int aborted;                /* "end": "aborted" */
    int has_counts;             /* "objects" and "bytes" present */
    uint64_t objects, bytes;
    char reason[MD_STR_MAX];    /* "" if none */
};

/* Parses line[0..n) as a trailer (a line without "address" in the middle
 * of a snapshot).  MD_OK; or MD_PROTO / MD_LIMIT with err. */
enum md_code md_trailer_parse(const char *line, size_t n,
                              struct md_trailer *t, char *err, size_t errlen);

/* src's strings point into m: m must outlive src's use.  The trusted
 * fields are left as they are. */
void md_meta_source(const struct md_meta *m, struct st_source *src);

/* The first line of a connection, if it is a query (it has
 * "meliae_query" where a stream header has "meliae_stream").  0: not a
 * query (a header, or not a JSON object at all: md_header_parse says
 * why).  1: a query; then *code is MD_OK and *req the "request" object
 * (the caller cJSON_Deletes it), or MD_USAGE with a one-line reason in
 * err (wrong version, no request object, longer than
 * ML_PROTO_MAX_META_LINE). */
int md_query_parse(const char *line, size_t n, cJSON **req,
                   enum md_code *code, char *err, size_t errlen);

/* The code of a query that rp_run answered with rc (< 0): MD_NOTFOUND
 * for ML_ENOTFOUND and -ENODATA, MD_USAGE for -EINVAL, else MD_ERROR. */
enum md_code md_query_code(int rc);

/* Formats {"error": msg, "code": code}\n into buf.  Returns its length. */
size_t md_error_line(char *buf, size_t n, const char *msg, enum md_code c);

#endif /* MD_PROTO_H */
