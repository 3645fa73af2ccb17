/* SPDX-License-Identifier: MIT
 *
 * dumpfile.c -- a dump file, line by line, for import and --dump: plain or
 * gzip (the scanner's gzip=True; told by its magic bytes, whatever the
 * name: zlib's gzread passes other files through as they are), checked
 * to be a dump before anything is stored, and hashed (FNV-1a 64 of the
 * uncompressed text) so that the same file is not stored twice.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "cli.h"
#include "ml-common.h"

#define CHUNK (256u << 10)

static void
fail(struct cli_dump *d, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
fail(struct cli_dump *d, int code, const char *fmt, ...)
{
    va_list ap;

    d->code = code;
    va_start(ap, fmt);
    vsnprintf(d->err, sizeof d->err, fmt, ap);
    va_end(ap);
}

int
cli_dump_open(struct cli_dump *d, const char *path)
{
    memset(d, 0, sizeof *d);
    d->path = path;
    d->hash = 0xcbf29ce484222325ull;
    ml_dumpparser_init(&d->p);
    d->rbuf = malloc(CHUNK);
    errno = 0;
    d->gz = d->rbuf ? gzopen(path, "rbe") : NULL;
    if (d->gz == NULL) {
        int e = errno ? errno : ENOMEM;

        fail(d, e == ENOENT ? CLI_NOTFOUND : CLI_ERROR, "%s: %s", path,
             strerror(e));
        return -1;
    }
    gzbuffer(d->gz, CHUNK);
    return 0;
}

/* Appends n bytes at p to the current line. */
static int
line_add(struct cli_dump *d, const char *p, size_t n)
{
    if (d->len + n + 2 > d->cap) {      /* room for a '\n' and a NUL too */
        size_t cap = d->cap ? d->cap : 4096;
        char *q;

        while (d->len + n + 2 > cap)
            cap *= 2;
        if ((q = realloc(d->line, cap)) == NULL) {
            fail(d, CLI_ERROR, "%s: out of memory", d->path);
            return -1;
        }
        d->line = q;
        d->cap = cap;
    }
    memcpy(d->line + d->len, p, n);
    d->len += n;
    d->line[d->len] = '\0';
    return 0;
}

/* The next line (with its '\n', if it has one) into d->line; 0 at the
 * end, -1 on a read error.  Lines are cut by memchr over what gzread
 * gives, not by gzgets: a NUL in a line stays in it (and the parser
 * refuses it), it does not merge two lines. */
static int
read_line(struct cli_dump *d)
{
    d->len = 0;
    for (;;) {
        char *nl = memchr(d->rbuf + d->rpos, '\n', d->rlen - d->rpos);
        size_t n = nl ? (size_t)(nl + 1 - (d->rbuf + d->rpos))
                      : d->rlen - d->rpos;

        if (line_add(d, d->rbuf + d->rpos, n) != 0)
            return -1;
        d->rpos += n;
        if (nl != NULL)
            return 1;
        int k = gzread(d->gz, d->rbuf, CHUNK);
        if (k <= 0)
            break;
        d->rpos = 0;
        d->rlen = (size_t)k;
    }
    int zerr;
    const char *msg = gzerror(d->gz, &zerr);

    if (zerr == Z_BUF_ERROR) {          /* a gzip stream cut short */
        fail(d, CLI_ERROR, "%s: compressed data ends early (the dump was "
             "cut short)", d->path);
        return -1;
    }
    if (zerr != Z_OK) {
        fail(d, CLI_ERROR, "%s: %s", d->path,
             zerr == Z_ERRNO ? strerror(errno) : msg);
        return -1;
    }
    return d->len > 0;
}

int
cli_dump_next(struct cli_dump *d, struct ml_dumpline *l)
{
    int rc;

    while ((rc = read_line(d)) > 0) {
        d->lineno++;
        for (size_t i = 0; i < d->len; i++)
            d->hash = (d->hash ^ (unsigned char)d->line[i]) * 0x100000001b3ull;
        if (d->lineno == 1 && d->len >= 3 &&
            memcmp(d->line, "\xef\xbb\xbf", 3) == 0) {   /* a UTF-8 BOM */
            memmove(d->line, d->line + 3, d->len - 2);
            d->len -= 3;
        }
        if (ml_dumpline_blank(d->line, d->len))
            continue;
        rc = ml_dumpline_parse(&d->p, d->line, d->len, l);
        if (rc != 0 && !d->seen) {
            /* /etc/hostname, a log, a JSON document: not a dump at all */
            fail(d, CLI_ERROR, "%s: not a meliae dump: line %" PRIu64 " is "
                 "not a dump line (%s)", d->path, d->lineno,
                 rc == ML_EPROTO ? d->p.err : ml_strerror(rc));
            return -1;
        }
        if (rc != 0) {
            fail(d, CLI_ERROR, "%s:%" PRIu64 ": %s", d->path, d->lineno,
                 rc == ML_EPROTO ? d->p.err : ml_strerror(rc));
            return -1;
        }
        d->seen = 1;
        /* objects, and the birth sites' table lines (docs/dump-format.md) */
        if (l->kind != ML_LINE_OBJECT && !l->has_traceback)
            continue;
        if (d->line[d->len - 1] != '\n') {  /* the last line, unterminated */
            d->line[d->len++] = '\n';      /* line_add left room */
            d->line[d->len] = '\0';
        }
        if (l->kind != ML_LINE_OBJECT)
            return 1;
        d->objects++;
        d->bytes += l->size;
        return 1;
    }
    if (rc < 0)
        return -1;
    if (d->objects == 0) {
        fail(d, CLI_ERROR, "%s: %s (not a meliae dump)", d->path,
             d->lineno ? "no object line in it" : "empty");
        return -1;
    }
    return 0;
}

int
cli_dump_hash(const char *path, char hex[CLI_HASH_LEN], uint64_t *objects,
              char *err, size_t errlen)
{
    struct cli_dump d;
    struct ml_dumpline l;
    int rc;

    if (cli_dump_open(&d, path) == 0)
        while ((rc = cli_dump_next(&d, &l)) > 0)
            cli_progress(d.objects);
    if (d.code != 0) {
        snprintf(err, errlen, "%s", d.err);
        rc = d.code;
    } else {
        cli_dump_hash_text(&d, hex);
        *objects = d.objects;
        rc = CLI_OK;
    }
    cli_dump_close(&d);
    return rc;
}

void
cli_dump_hash_text(const struct cli_dump *d, char hex[CLI_HASH_LEN])
{
    snprintf(hex, CLI_HASH_LEN, "fnv1a64:%016" PRIx64 ":%" PRIu64, d->hash,
             d->objects);
}

void
cli_dump_close(struct cli_dump *d)
{
    if (d->gz != NULL)
        gzclose(d->gz);
    free(d->rbuf);
    free(d->line);
    ml_dumpparser_free(&d->p);
    d->gz = NULL;
    d->rbuf = NULL;
    d->line = NULL;
}
