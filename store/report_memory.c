/* SPDX-License-Identifier: MIT
 *
 * report_memory.c -- the process beside its objects, for growth and
 * report: its RSS against the bytes of its Python objects over the
 * window, and a verdict when RSS grows and the objects do not account for
 * it ("RSS grows but no leak is shown": memory a C extension or a native
 * leak holds, or pymalloc's arenas kept by fragmentation).
 *
 * The test is growth's: the RSS series gets the Mann-Kendall test and the
 * Theil-Sen slope (trend.h), and a significant rise must be material
 * (ML_TREND_FLOOR_FRACTION of the last RSS, at least RP_MEM_FLOOR_MIN).
 * Then the part of it the objects do not explain (RSS growth less object
 * growth) must be at least half of it.  Which of the two: pymalloc's
 * arenas, when they grew by most of the unexplained part while their
 * allocated blocks did not, point to fragmentation; otherwise the memory
 * went elsewhere (malloc outside pymalloc: native allocations).
 * docs/cli-json.md, "memory", has the fields.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "report-int.h"
#include "trend.h"

/* RSS moves by a few hundred KiB between snapshots of an idle process
 * (the scanner's own buffers, the allocator's caches): below this no
 * rise is material. */
#define RP_MEM_FLOOR_MIN (1024.0 * 1024.0)

static const char *const verdict_names[] = {
    [RP_MEM_OUTSIDE] = "outside",
    [RP_MEM_OBJECTS] = "objects",
    [RP_MEM_NO_TREND] = "no_trend",
    [RP_MEM_BELOW_FLOOR] = "below_floor",
    [RP_MEM_FEW] = "few_snapshots",
    [RP_MEM_UNKNOWN] = "unknown",
};

static void
add_delta(cJSON *o, const char *k, double first, double last)
{
    cJSON *d = cJSON_AddObjectToObject(o, k);

    cJSON_AddNumberToObject(d, "first", first);
    cJSON_AddNumberToObject(d, "last", last);
    cJSON_AddNumberToObject(d, "delta", last - first);
}

int
rp__memory_json(const struct snap *const *sn, size_t n, cJSON *sec,
                enum rp_mem_verdict *verdict)
{
    const struct snap **v = malloc((n ? n : 1) * sizeof *v);
    double *y = malloc((n + ml_trend_scratch(n) + 1) * sizeof *y);
    uint64_t *t = malloc((n ? n : 1) * sizeof *t);
    cJSON *m = cJSON_AddObjectToObject(sec, "memory"), *ser;
    struct ml_trend tr;
    enum rp_mem_verdict vd = RP_MEM_UNKNOWN;
    const char *points_to = NULL;
    size_t k = 0;

    if (v == NULL || y == NULL || t == NULL || m == NULL) {
        free(v);
        free(y);
        free(t);
        return -ENOMEM;
    }
    /* The snapshots that carry the figures (a scanner before them, or an
     * imported file, sends none). */
    for (size_t i = 0; i < n; i++)
        if (sn[i]->procfig.has && sn[i]->procfig.rss >= 0)
            v[k++] = sn[i];
    cJSON_AddNumberToObject(m, "snapshots", (double)k);
    ser = cJSON_AddObjectToObject(m, "series");
    {
        /* one pass: each snapshot's point in every series */
        static const char *const names[] = { "id", "t", "rss", "heap",
                                             "unexplained" };
        cJSON *arr[5];

        for (size_t j = 0; j < 5; j++)
            arr[j] = cJSON_AddArrayToObject(ser, names[j]);
        for (size_t i = 0; i < k; i++) {
            double pt[5] = {
                (double)v[i]->id,
                (double)(v[i]->time_ns - v[0]->time_ns) / 1e9,
                (double)v[i]->procfig.rss,
                (double)v[i]->bytes,
                (double)v[i]->procfig.rss - (double)v[i]->bytes,
            };

            for (size_t j = 0; j < 5; j++)
                cJSON_AddItemToArray(arr[j], cJSON_CreateNumber(pt[j]));
        }
    }
    if (k > 0) {
        cJSON *first = rp__snap_json(v[0]);

        cJSON_AddItemToObject(m, "first_time", cJSON_DetachItemFromObject(
            first, "time"));
        cJSON_Delete(first);
    }

    if (k >= 2) {
        const struct st_procfig *p0 = &v[0]->procfig, *p1 = &v[k - 1]->procfig;
        double drss = (double)p1->rss - (double)p0->rss;
        double dheap = (double)v[k - 1]->bytes - (double)v[0]->bytes;
        double unexplained = drss - dheap;
        double floor = ml_trend_floor((double)p1->rss);

        if (floor < RP_MEM_FLOOR_MIN)
            floor = RP_MEM_FLOOR_MIN;
        add_delta(m, "rss", (double)p0->rss, (double)p1->rss);
        add_delta(m, "heap", (double)v[0]->bytes, (double)v[k - 1]->bytes);
        cJSON_AddNumberToObject(m, "unexplained_delta", unexplained);
        cJSON_AddNumberToObject(m, "floor_bytes", floor);
        if (p0->rss_anon >= 0 && p1->rss_anon >= 0)
            add_delta(m, "rss_anon", (double)p0->rss_anon, (double)p1->rss_anon);
        if (p0->traced >= 0 && p1->traced >= 0)
            add_delta(m, "traced", (double)p0->traced, (double)p1->traced);
        int pm = p0->arena_bytes >= 0 && p1->arena_bytes >= 0
            && p0->allocated_bytes >= 0 && p1->allocated_bytes >= 0;
        if (pm) {
            cJSON *o = cJSON_AddObjectToObject(m, "pymalloc");

            add_delta(o, "arena_bytes", (double)p0->arena_bytes,
                      (double)p1->arena_bytes);
            add_delta(o, "allocated_bytes", (double)p0->allocated_bytes,
                      (double)p1->allocated_bytes);
        } else {
            cJSON_AddNullToObject(m, "pymalloc");
        }

        for (size_t i = 0; i < k; i++) {
            y[i] = (double)v[i]->procfig.rss;
            t[i] = v[i]->time_ns;
        }
        ml_trend(y, t, k, y + k, &tr);
        cJSON_AddItemToObject(m, "trend", rp__trend_json(&tr));
        switch (ml_trend_verdict(&tr, &tr, drss, floor)) {
        case ML_VERDICT_FEW_SNAPSHOTS:
            vd = RP_MEM_FEW;
            break;
        case ML_VERDICT_NO_TREND:
        case ML_VERDICT_STOPPED:        /* not from ml_trend_verdict */
            vd = RP_MEM_NO_TREND;
            break;
        case ML_VERDICT_BELOW_FLOOR:
            vd = RP_MEM_BELOW_FLOOR;
            break;
        case ML_VERDICT_SUSPECT:
            vd = unexplained >= 0.5 * drss ? RP_MEM_OUTSIDE : RP_MEM_OBJECTS;
            break;
        }
        if (vd == RP_MEM_OUTSIDE && pm) {
            double darena = (double)p1->arena_bytes - (double)p0->arena_bytes;
            double dalloc = (double)p1->allocated_bytes
                - (double)p0->allocated_bytes;

            points_to = darena >= 0.5 * unexplained
                && darena - dalloc >= 0.5 * unexplained
                ? "fragmentation" : "native";
        }
    } else {
        cJSON_AddNullToObject(m, "trend");
    }
    cJSON_AddStringToObject(m, "verdict", verdict_names[vd]);
    if (points_to != NULL)
        cJSON_AddStringToObject(m, "points_to", points_to);
    else
        cJSON_AddNullToObject(m, "points_to");
    if (verdict != NULL)
        *verdict = vd;
    free(v);
    free(y);
    free(t);
    return 0;
}
