/* SPDX-License-Identifier: MIT
 *
 * proto.c -- see proto.h.  Header and trailer lines are parsed with
 * cJSON, with an explicit length, and read only through its getters.
 * Integers must be whole numbers that a double holds exactly (< 2^53).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ml-common.h"
#include "procfig.h"
#include "proto.h"
#include "util.h"
#include "utf8.h"

static const char *const code_names[] = {
    [MD_OK] = "ok",
    [MD_DENIED] = "denied",
    [MD_VERSION] = "version",
    [MD_PROTO] = "proto",
    [MD_LIMIT] = "limit",
    [MD_ABORTED] = "aborted",
    [MD_STORE] = "store",
    [MD_SHUTDOWN] = "shutdown",
    [MD_NOTFOUND] = "notfound",
    [MD_USAGE] = "usage",
    [MD_ERROR] = "error",
};

const char *
md_code_name(enum md_code c)
{
    return (unsigned)c < sizeof(code_names) / sizeof(code_names[0])
           ? code_names[c] : "proto";
}

int
md_code_closes(enum md_code c)
{
    return c != MD_ABORTED && c != MD_STORE && c != MD_OK;
}

/* The largest integer every double below it represents exactly. */
#define EXACT_INT_MAX 9007199254740992.0

/* Whether the JSON text s[0..n) has a \u0000 escape.  Backslashes are
 * only in strings, and each escapes the character after it. */
static int
has_nul_escape(const char *s, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] != '\\')
            continue;
        if (s[i + 1] == 'u' && i + 5 < n && memcmp(s + i + 2, "0000", 4) == 0)
            return 1;
        i++;                    /* the escaped character */
    }
    return 0;
}

/* Parses line[0..n) as one JSON object followed only by whitespace.  A
 * string with a NUL is refused: cJSON's strings end at it, so a label
 * "web\u0000x" would be taken for "web". */
static cJSON *
parse_object(const char *line, size_t n, char *err, size_t errlen,
             const char *what)
{
    const char *end = NULL;
    cJSON *j;

    if (has_nul_escape(line, n)) {
        snprintf(err, errlen, "%s has a NUL character (\\u0000) in a string",
                 what);
        return NULL;
    }
    j = cJSON_ParseWithLengthOpts(line, n, &end, 0);
    if (j == NULL) {
        snprintf(err, errlen, "%s is not valid JSON", what);
        return NULL;
    }
    if (!cJSON_IsObject(j)) {
        snprintf(err, errlen, "%s is not a JSON object", what);
        cJSON_Delete(j);
        return NULL;
    }
    for (; end != NULL && end < line + n; end++) {
        if (*end != ' ' && *end != '\t' && *end != '\r' && *end != '\n') {
            snprintf(err, errlen, "text after the %s's JSON object", what);
            cJSON_Delete(j);
            return NULL;
        }
    }
    return j;
}

/* An integer-valued number in [0, 2^53).  1, 0 if absent, -1 if not such
 * a number. */
static int
get_uint(const cJSON *j, const char *key, uint64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    double d;

    if (v == NULL)
        return 0;
    if (!cJSON_IsNumber(v))
        return -1;
    d = cJSON_GetNumberValue(v);
    if (!isfinite(d) || d < 0 || d >= EXACT_INT_MAX || d != floor(d))
        return -1;
    *out = (uint64_t)d;
    return 1;
}

static int
get_double(const cJSON *j, const char *key, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);

    if (v == NULL)
        return 0;
    if (!cJSON_IsNumber(v) || !isfinite(cJSON_GetNumberValue(v)))
        return -1;
    *out = cJSON_GetNumberValue(v);
    return 1;
}

/* A string key copied into buf (MD_STR_MAX).  1; 0 if absent (or null
 * when null_ok); -1 wrong type or bad UTF-8; -2 too long. */
static int
get_str(const cJSON *j, const char *key, int null_ok, char *buf)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    const char *s;
    size_t len;

    if (v == NULL || (null_ok && cJSON_IsNull(v)))
        return 0;
    if (!cJSON_IsString(v) || (s = cJSON_GetStringValue(v)) == NULL)
        return -1;
    len = strlen(s);
    if (len > ML_PROTO_MAX_LABEL)
        return -2;
    if (!ml_utf8_valid(s, len))
        return -1;
    memcpy(buf, s, len + 1);
    return 1;
}

enum md_code
md_header_parse(const char *line, size_t n, struct md_meta *m, char *err,
                size_t errlen)
{
    static const char *const str_keys[] = { "hostname", "program", "python",
                                            "label" };
    char *str_bufs[4];
    int *str_has[4];
    char tmp[MD_STR_MAX];
    enum md_code rc = MD_PROTO;
    const cJSON *v;
    uint64_t u;
    double d;
    cJSON *j;
    int r;

    memset(m, 0, sizeof(*m));
    if (n > ML_PROTO_MAX_META_LINE) {
        snprintf(err, errlen, "header longer than %u bytes",
                 ML_PROTO_MAX_META_LINE);
        return MD_LIMIT;
    }
    j = parse_object(line, n, err, errlen, "header");
    if (j == NULL)
        return MD_PROTO;

    /* The version first: another version may have other required keys. */
    v = cJSON_GetObjectItemCaseSensitive(j, "meliae_stream");
    if (v == NULL) {
        snprintf(err, errlen, "header has no \"meliae_stream\" (expected a "
                 "header line first)");
        goto out;
    }
    if (!cJSON_IsNumber(v)) {
        snprintf(err, errlen, "header \"meliae_stream\" is not a number");
        goto out;
    }
    d = cJSON_GetNumberValue(v);
    if (d != ML_PROTO_VERSION) {
        if (isfinite(d) && fabs(d) < 1e15)
            snprintf(err, errlen, "protocol version %.15g is not supported; "
                     "this daemon speaks version %d", d, ML_PROTO_VERSION);
        else
            snprintf(err, errlen, "protocol version is not supported; this "
                     "daemon speaks version %d", ML_PROTO_VERSION);
        rc = MD_VERSION;
        goto out;
    }

    v = cJSON_GetObjectItemCaseSensitive(j, "pid");
    if (v == NULL || !cJSON_IsNumber(v)
        || (d = cJSON_GetNumberValue(v), !isfinite(d)) || d != floor(d)
        || fabs(d) >= EXACT_INT_MAX) {
        snprintf(err, errlen, "header \"pid\" is %s",
                 v == NULL ? "missing" : "not an integer");
        goto out;
    }
    m->pid = (int64_t)d;

    r = get_str(j, "values", 0, tmp);
    if (r <= 0 || (strcmp(tmp, "none") != 0 && strcmp(tmp, "truncated") != 0
                   && strcmp(tmp, "full") != 0)) {
        snprintf(err, errlen, "header \"values\" is %s", r == 0 ? "missing"
                 : "not one of \"none\", \"truncated\", \"full\"");
        goto out;
    }
    memcpy(m->values, tmp, strlen(tmp) + 1);    /* one of the three */

    r = get_str(j, "mode", 0, tmp);
    /* "gc" (dump_gc_objects' lines) repeats objects: not a graph */
    if (r < 0 || (r > 0 && strcmp(tmp, "all") != 0
                  && strcmp(tmp, "file") != 0)) {
        snprintf(err, errlen, "header \"mode\" is not \"all\" or \"file\"");
        goto out;
    }
    if (r > 0)
        memcpy(m->mode, tmp, strlen(tmp) + 1);  /* "all" or "file" */

    str_bufs[0] = m->hostname;
    str_bufs[1] = m->program;
    str_bufs[2] = m->python;
    str_bufs[3] = m->label;
    str_has[0] = &m->has_hostname;
    str_has[1] = &m->has_program;
    str_has[2] = &m->has_python;
    str_has[3] = &m->has_label;
    for (int i = 0; i < 4; i++) {
        r = get_str(j, str_keys[i], i == 3, str_bufs[i]);
        if (r == -2) {
            snprintf(err, errlen, "header \"%s\" is longer than %d bytes",
                     str_keys[i], ML_PROTO_MAX_LABEL);
            rc = MD_LIMIT;
            goto out;
        }
        if (r < 0) {
            snprintf(err, errlen, "header \"%s\" is not a UTF-8 string%s",
                     str_keys[i], i == 3 ? " or null" : "");
            goto out;
        }
        *str_has[i] = r > 0;
    }

    /* what import says of the file it sends (docs/protocol.md) */
    static const char *const file_keys[] = { "file", "content_hash" };
    char *file_bufs[2] = { m->file, m->content_hash };
    for (int i = 0; i < 2; i++) {
        r = get_str(j, file_keys[i], 1, file_bufs[i]);
        if (r < 0) {
            snprintf(err, errlen, "header \"%s\" is %s", file_keys[i],
                     r == -2 ? "too long" : "not a UTF-8 string or null");
            rc = r == -2 ? MD_LIMIT : MD_PROTO;
            goto out;
        }
    }

    if (get_double(j, "start_time", &m->start_time) < 0) {
        snprintf(err, errlen, "header \"start_time\" is not a number");
        goto out;
    }
    if (get_double(j, "time", &m->time) < 0) {
        snprintf(err, errlen, "header \"time\" is not a number");
        goto out;
    }
    r = get_uint(j, "request", &u);
    if (r < 0) {
        snprintf(err, errlen, "header \"request\" is not a non-negative "
                 "integer");
        goto out;
    }
    m->request = r > 0 ? u : 0;
    v = cJSON_GetObjectItemCaseSensitive(j, "hello");
    if (v != NULL && !cJSON_IsBool(v)) {
        snprintf(err, errlen, "header \"hello\" is not true or false");
        goto out;
    }
    m->hello = v != NULL && cJSON_IsTrue(v);
    {
        const char *bad;

        if (st_procfig_from_json(cJSON_GetObjectItemCaseSensitive(j, "process"),
                                 &m->procfig, &bad) != 0) {
            snprintf(err, errlen, "header \"process\" has a bad \"%s\" "
                     "(an object of non-negative integers or nulls)", bad);
            goto out;
        }
    }
    if (m->hello && m->request != 0) {
        snprintf(err, errlen, "a hello header answers no request");
        goto out;
    }
    rc = MD_OK;
out:
    cJSON_Delete(j);
    return rc;
}

enum md_code
md_trailer_parse(const char *line, size_t n, struct md_trailer *t,
                 char *err, size_t errlen)
{
    enum md_code rc = MD_PROTO;
    char tmp[MD_STR_MAX];
    int ro, rb, r;
    cJSON *j;

    memset(t, 0, sizeof(*t));
    if (n > ML_PROTO_MAX_META_LINE) {
        snprintf(err, errlen, "trailer longer than %u bytes",
                 ML_PROTO_MAX_META_LINE);
        return MD_LIMIT;
    }
    j = parse_object(line, n, err, errlen, "trailer");
    if (j == NULL)
        return MD_PROTO;

    r = get_str(j, "end", 0, tmp);
    if (r <= 0 || (strcmp(tmp, "complete") != 0
                   && strcmp(tmp, "aborted") != 0)) {
        snprintf(err, errlen, r == 0 ? "a line without \"address\" that is "
                 "not a trailer (no \"end\")" : "trailer \"end\" is not "
                 "\"complete\" or \"aborted\"");
        goto out;
    }
    t->aborted = strcmp(tmp, "aborted") == 0;

    ro = get_uint(j, "objects", &t->objects);
    rb = get_uint(j, "bytes", &t->bytes);
    if (ro < 0 || rb < 0) {
        snprintf(err, errlen, "trailer \"%s\" is not a non-negative integer",
                 ro < 0 ? "objects" : "bytes");
        goto out;
    }
    t->has_counts = ro > 0 && rb > 0;
    if (!t->aborted && !t->has_counts) {
        snprintf(err, errlen, "trailer has no \"%s\"",
                 ro == 0 ? "objects" : "bytes");
        goto out;
    }
    r = get_str(j, "reason", 1, t->reason);
    if (r == -2) {
        /* A long reason is only cut: the snapshot is discarded anyway. */
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "reason");

        snprintf(t->reason, sizeof(t->reason), "%.200s...",
                 cJSON_GetStringValue(v));
    } else if (r < 0) {
        t->reason[0] = '\0';
    }
    rc = MD_OK;
out:
    cJSON_Delete(j);
    return rc;
}

int
md_query_parse(const char *line, size_t n, cJSON **req, enum md_code *code,
               char *err, size_t errlen)
{
    const cJSON *v;
    cJSON *j;
    double d;

    *req = NULL;
    *code = MD_USAGE;
    j = cJSON_ParseWithLength(line, n);
    if (j == NULL || !cJSON_IsObject(j)
        || (v = cJSON_GetObjectItemCaseSensitive(j, "meliae_query")) == NULL) {
        cJSON_Delete(j);
        return 0;
    }
    if (n > ML_PROTO_MAX_META_LINE) {
        snprintf(err, errlen, "query longer than %u bytes",
                 ML_PROTO_MAX_META_LINE);
        goto out;
    }
    d = cJSON_IsNumber(v) ? cJSON_GetNumberValue(v) : NAN;
    if (d != ML_PROTO_VERSION) {
        if (isfinite(d) && fabs(d) < 1e15)
            snprintf(err, errlen, "query protocol version %.15g is not "
                     "supported; this daemon speaks version %d", d,
                     ML_PROTO_VERSION);
        else
            snprintf(err, errlen, "query protocol version is not a number; "
                     "this daemon speaks version %d", ML_PROTO_VERSION);
        goto out;
    }
    if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "request"))) {
        snprintf(err, errlen, "query without a \"request\" object");
        goto out;
    }
    *req = cJSON_DetachItemFromObjectCaseSensitive(j, "request");
    *code = MD_OK;
out:
    cJSON_Delete(j);
    return 1;
}

enum md_code
md_query_code(int rc)
{
    if (rc == ML_ENOTFOUND || rc == -ENODATA)
        return MD_NOTFOUND;
    if (rc == -EINVAL)
        return MD_USAGE;
    return MD_ERROR;
}

void
md_meta_source(const struct md_meta *m, struct st_source *src)
{
    src->pid = m->pid;
    src->start_time = m->start_time;
    src->hostname = m->has_hostname ? m->hostname : NULL;
    src->program = m->has_program ? m->program : NULL;
    src->python = m->has_python ? m->python : NULL;
    src->label = m->has_label ? m->label : NULL;
    src->values = m->values;
    src->mode = m->mode[0] != '\0' ? m->mode : NULL;
    src->file = m->file[0] != '\0' ? m->file : NULL;
    src->content_hash = m->content_hash[0] != '\0' ? m->content_hash : NULL;
    src->request = m->request;
    src->time = m->time;
    src->procfig = m->procfig;
}

size_t
md_error_line(char *buf, size_t n, const char *msg, enum md_code c)
{
    size_t off;

    off = (size_t)snprintf(buf, n, "{\"error\": ");
    /* Keep room for the code: 40 bytes is more than its longest form. */
    if (off + 40 < n)
        md_json_str(buf, n - 40, &off, msg);
    off += (size_t)snprintf(buf + off, n - off, ", \"code\": \"%s\"}\n",
                            md_code_name(c));
    return off < n ? off : n - 1;
}
