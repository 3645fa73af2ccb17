/* SPDX-License-Identifier: MIT
 *
 * bench_ingest.c -- the daemon's per-line work, offline: parse every
 * object line of a dump and append it to a spool (st_ingest_object), as
 * serve_stream.c does, without the socket and the commit.
 *
 *   bench_ingest DUMP [ROUNDS [PASS]]
 *
 * The dump is read into memory first.  Each round times, in turn: the
 * parser as it was before issue 11 (dumpline_v0.c), the current parser,
 * each of them plus the spool (st_ingest_object into a spool in $TMPDIR:
 * the ingest's own changes are small, the spool is the same code for
 * both); the best of ROUNDS (default 3)
 * is printed as objects/s of CPU time (user + system: the spool's
 * writes count), with the ratios.  PASS (0 to 3) runs that pass alone,
 * for perf record.  bench/RESULTS.md has the
 * figures and the command.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dumpline.h"
#include "ml-common.h"
#include "store.h"

void v0_dumpparser_init(struct ml_dumpparser *p);
void v0_dumpparser_free(struct ml_dumpparser *p);
int v0_dumpline_parse(struct ml_dumpparser *p, const char *s, size_t n,
                      struct ml_dumpline *out);

static double
now(void)
{
    struct timespec ts;

    /* CPU time: the machine is shared, wall time is noise. */
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

enum mode { M_V0, M_PARSE, M_V0_SPOOL, M_SPOOL, M_COUNT };

/* One pass over the dump; objects parsed, or -1. */
static long
pass(enum mode m, const char *d, size_t n, const char *tmpdir)
{
    struct ml_dumpparser p;
    struct st_ingest *in = NULL;
    struct ml_dumpline l;
    const char *s = d, *end = d + n;
    uint64_t objs = 0, bytes = 0;
    volatile uint64_t sink = 0;
    int rc;

    int v0 = m == M_V0 || m == M_V0_SPOOL;

    if (v0)
        v0_dumpparser_init(&p);
    else
        ml_dumpparser_init(&p);
    if ((m == M_SPOOL || m == M_V0_SPOOL)
        && (rc = st_ingest_new(&in, tmpdir, 1)) < 0) {
        fprintf(stderr, "st_ingest_new: %s\n", st_strerror(rc));
        return -1;
    }
    if (in != NULL)
        st_ingest_keep_first(in);
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        size_t len = nl ? (size_t)(nl - s) + 1 : (size_t)(end - s);

        rc = v0 ? v0_dumpline_parse(&p, s, len, &l)
                       : ml_dumpline_parse(&p, s, len, &l);
        s += len;
        if (rc != 0) {
            fprintf(stderr, "parse: %s\n", p.err);
            return -1;
        }
        if (l.kind != ML_LINE_OBJECT)
            continue;
        sink += l.address + l.nrefs;
        objs++;
        bytes += l.size;
        if (in != NULL && (rc = st_ingest_object(in, &l)) < 0) {
            fprintf(stderr, "ingest: %s\n", st_ingest_error(in));
            return -1;
        }
    }
    if (in != NULL) {
        if ((rc = st_ingest_end(in, objs, bytes)) < 0) {
            fprintf(stderr, "ingest end: %s\n", st_ingest_error(in));
            return -1;
        }
        st_ingest_free(in);
    }
    if (v0)
        v0_dumpparser_free(&p);
    else
        ml_dumpparser_free(&p);
    (void)sink;
    return (long)objs;
}

int
main(int argc, char **argv)
{
    static const char *names[] = { "parse (before)", "parse (now)",
                                   "parse (before) + spool (now)",
                                   "parse + spool (now)" };
    double best[M_COUNT] = { 1e30, 1e30, 1e30, 1e30 };
    const char *tmpdir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    int rounds = argc > 2 ? atoi(argv[2]) : 3;
    long objs = 0;
    struct stat st;
    char *d;
    int fd;

    if (argc < 2 || rounds < 1) {
        fprintf(stderr, "usage: bench_ingest DUMP [ROUNDS]\n");
        return 2;
    }
    fd = open(argv[1], O_RDONLY);
    if (fd < 0 || fstat(fd, &st) < 0) {
        perror(argv[1]);
        return 1;
    }
    d = malloc((size_t)st.st_size + 1);
    if (d == NULL || read(fd, d, (size_t)st.st_size) != st.st_size) {
        perror("read");
        return 1;
    }
    close(fd);
    for (int r = 0; r < rounds; r++) {
        for (int m = 0; m < M_COUNT; m++) {
            double t;

            if (argc > 3 && m != atoi(argv[3]))
                continue;
            t = now();
            objs = pass((enum mode)m, d, (size_t)st.st_size, tmpdir);
            if (objs < 0)
                return 1;
            t = now() - t;
            if (t < best[m])
                best[m] = t;
        }
    }
    printf("| pass | objects/s | ns/object | speed-up |\n");
    printf("|---|---|---|---|\n");
    for (int m = 0; m < M_COUNT; m++)
        printf("| %s | %.2f M | %.0f | %s |\n", names[m],
               (double)objs / best[m] / 1e6, best[m] / (double)objs * 1e9,
               m == M_PARSE || m == M_SPOOL ? "" : "baseline");
    printf("\nparse: %.2fx, parse + spool: %.2fx\n", best[M_V0] / best[M_PARSE],
           best[M_V0_SPOOL] / best[M_SPOOL]);
    printf("(%ld objects, %.0f MB, best of %d rounds)\n", objs,
           (double)st.st_size / 1e6, rounds);
    free(d);
    return 0;
}
