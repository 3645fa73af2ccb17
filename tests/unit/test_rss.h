/* SPDX-License-Identifier: MIT
 *
 * test_rss.h -- the peak growth of this process's RssAnon while some code
 * runs, sampled every millisecond by a thread of its own: for the unit
 * tests (test_store.c) and tests/tools/store_tool.c, which bound the
 * commit's anonymous memory.  Header-only, static: each user is one
 * program.
 */
#ifndef ML_TEST_RSS_H
#define ML_TEST_RSS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

static long
rss_anon_kib(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    long v = -1;

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "RssAnon: %ld", &v) == 1)
            break;
    fclose(f);
    return v;
}

struct rss_watch {
    pthread_t t;
    atomic_int stop;
    atomic_long peak;
    long before;                /* RssAnon at the start, KiB */
    double cpu_s;               /* the sampler's own CPU, to leave out */
};

static void *
rss_watch_main(void *arg)
{
    struct rss_watch *w = arg;
    struct rusage ru;

    while (!w->stop) {          /* nothing that asserts off the main thread */
        long v = rss_anon_kib();

        if (v > w->peak)
            w->peak = v;
        usleep(1000);
    }
    getrusage(RUSAGE_THREAD, &ru);
    w->cpu_s = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
               (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    return NULL;
}

/* 0, or pthread_create's error. */
static int
rss_watch_start(struct rss_watch *w)
{
    w->stop = 0;
    w->before = rss_anon_kib();
    w->peak = w->before;
    w->cpu_s = 0;
    return pthread_create(&w->t, NULL, rss_watch_main, w);
}

/* The peak growth since rss_watch_start, KiB. */
static long
rss_watch_stop(struct rss_watch *w)
{
    w->stop = 1;
    pthread_join(w->t, NULL);
    /* and now: on a loaded machine the sampler may not have run since
     * the last of the work (it then saw stop first) */
    long v = rss_anon_kib();
    if (v > w->peak)
        w->peak = v;
    return w->peak - w->before;
}

#endif /* ML_TEST_RSS_H */
