/* SPDX-License-Identifier: MIT
 *
 * progress.c -- one line of progress on standard error while a dump loads
 * or the daemon works, so that 3-10 s of silence do not look like a hang.
 * Only when standard error is a terminal: redirected, it stays clean.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static struct {
    double after;               /* seconds of quiet before the line */
    pthread_t ticker;
    atomic_int stop;
    int ticking;
    int on;                     /* a line is shown */
    double last;                /* when it was last redrawn */
    double start;
    char what[160];
} pr;

static double
mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void
cli_progress_start(const char *what)
{
    char *e = NULL;

    if (!isatty(STDERR_FILENO))
        return;
    /* what may be a file name: escaped like everything else shown */
    snprintf(pr.what, sizeof pr.what, "%s",
             cli_escape(what, strlen(what), &e) > 0 ? e : what);
    free(e);
    /* MELIAE_PROGRESS_AFTER: how long the work may be silent, 1 s */
    const char *env = getenv("MELIAE_PROGRESS_AFTER");
    char *end;
    pr.after = env && *env ? strtod(env, &end) : 1.0;
    if (env && *env && (*end != '\0' || !(pr.after >= 0)))
        pr.after = 1.0;
    pr.on = 1;
    pr.start = mono();
    pr.last = 0;
}

void
cli_progress(uint64_t n)
{
    double t;

    if (!pr.on)
        return;
    t = mono();
    /* quick work shows nothing; then five redraws a second at most */
    if (t - pr.start < pr.after || t - pr.last < 0.2)
        return;
    pr.last = t;
    if (n > 0)
        fprintf(stderr, "\r\033[K%s: %llu objects, %.0fs", pr.what,
                (unsigned long long)n, t - pr.start);
    else
        fprintf(stderr, "\r\033[K%s: %.0fs", pr.what, t - pr.start);
    fflush(stderr);
}

void
cli_progress_end(void)
{
    if (!pr.on)
        return;
    if (pr.last != 0)
        fputs("\r\033[K", stderr);
    pr.on = 0;
}

/* Work that reports nothing as it goes (a query run here): a thread
 * redraws the elapsed time until cli_progress_tick_stop. */
static void *
tick(void *arg)
{
    const struct timespec fifth = { 0, 200000000 };

    (void)arg;
    while (!atomic_load(&pr.stop)) {
        nanosleep(&fifth, NULL);
        cli_progress(0);
    }
    return NULL;
}

void
cli_progress_tick_start(const char *what)
{
    cli_progress_start(what);
    if (!pr.on)
        return;
    atomic_store(&pr.stop, 0);
    pr.ticking = pthread_create(&pr.ticker, NULL, tick, NULL) == 0;
}

void
cli_progress_tick_stop(void)
{
    if (pr.ticking) {
        atomic_store(&pr.stop, 1);
        pthread_join(pr.ticker, NULL);
        pr.ticking = 0;
    }
    cli_progress_end();
}
