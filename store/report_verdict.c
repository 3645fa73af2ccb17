/* SPDX-License-Identifier: MIT
 *
 * report_verdict.c -- the report's one verdict per process (docs/cli-json.md,
 * "report", verdict): which type leaks, held where, growing how fast,
 * born where.  meliae-cli says it in one sentence (cli/verdict.c), first,
 * as text and on the page.
 *
 * The leaking type is, among the suspects that grow with no other one
 * (report_leak.c, grows_with), the one whose size grew the most: a leak's
 * dict keys (ints) sit at the same accumulation point as the leaked
 * Sessions, nearer than nothing, but weigh less.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "report-int.h"
#include "trend.h"

static const cJSON *
get(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

static double
num(const cJSON *o, const char *k)
{
    return cJSON_GetNumberValue(get(o, k));
}

int
rp__verdict_pick(const cJSON *suspects)
{
    const cJSON *s;
    int i = 0, best = -1;
    double most = -INFINITY;

    cJSON_ArrayForEach(s, suspects) {
        double d = num(s, "bytes_after") - num(s, "bytes_before");

        if (!cJSON_IsString(get(s, "grows_with")) && d > most) {
            most = d;
            best = i;
        }
        i++;
    }
    return best;
}

/* A number, or null when x is not one (a rate without times). */
static void
add_num_or_null(cJSON *o, const char *k, const cJSON *x)
{
    if (cJSON_IsNumber(x))
        cJSON_AddNumberToObject(o, k, x->valuedouble);
    else
        cJSON_AddNullToObject(o, k);
}

int
rp__verdict_json(const cJSON *sec, const cJSON *leak, double seconds,
                 size_t min_snapshots, cJSON *out)
{
    const cJSON *s, *mem = get(get(sec, "memory"), "verdict");
    cJSON *v = cJSON_AddObjectToObject(out, "verdict");
    double n = num(sec, "snapshots");

    if (v == NULL)
        return -ENOMEM;
    cJSON_AddNumberToObject(v, "snapshots", n);
    cJSON_AddNumberToObject(v, "seconds", seconds);
    if (leak == NULL) {
        cJSON_AddStringToObject(v, "status", n < (double)min_snapshots
                                ? "no_verdict" : "no_leak");
        /* the process's memory grows, but not in Python objects */
        cJSON_AddBoolToObject(v, "outside", cJSON_IsString(mem) &&
                              strcmp(mem->valuestring, "outside") == 0);
        cJSON_AddNumberToObject(v, "min_snapshots", (double)min_snapshots);
        return 0;
    }
    const cJSON *tb = get(get(leak, "trend"), "bytes");
    const cJSON *tc = get(get(leak, "trend"), "count");
    const cJSON *g = cJSON_GetArrayItem(get(get(leak, "new_objects"), "groups"), 0);
    const cJSON *births = get(leak, "births");

    cJSON_AddStringToObject(v, "status", "leak");
    cJSON_AddStringToObject(v, "type", get(leak, "type")->valuestring);
    cJSON_AddNumberToObject(v, "count_delta",
                            num(leak, "count_after") - num(leak, "count_before"));
    cJSON_AddNumberToObject(v, "bytes_delta",
                            num(leak, "bytes_after") - num(leak, "bytes_before"));
    add_num_or_null(v, "count_per_hour", get(tc, "slope_per_hour"));
    add_num_or_null(v, "bytes_per_hour", get(tb, "slope_per_hour"));
    cJSON_AddNumberToObject(v, "count_per_snapshot", num(tc, "slope"));
    cJSON_AddNumberToObject(v, "bytes_per_snapshot", num(tb, "slope"));
    cJSON_AddNumberToObject(v, "p", fmin(num(tb, "p"), num(tc, "p")));
    if (cJSON_IsObject(g)) {            /* its holder may be null */
        cJSON_AddItemToObject(v, "held_by", cJSON_Duplicate(get(g, "holder"), 1));
        cJSON_AddNumberToObject(v, "held_count", num(g, "count"));
        cJSON_AddNumberToObject(v, "held_bytes", num(g, "bytes"));
    } else {                            /* no diff, or none alive */
        cJSON_AddNullToObject(v, "held_by");
        cJSON_AddNullToObject(v, "held_count");
        cJSON_AddNullToObject(v, "held_bytes");
    }
    /* Where the leaking objects were created, when the snapshots carry
     * allocation tracebacks: the first (most traced new bytes) of the
     * suspect's birth sites (docs/cli-json.md, *births*), as
     * {"site": "app.py:42 in f", "file", "line", "function", "count",
     * "bytes"}. */
    const cJSON *site = cJSON_GetArrayItem(get(births, "sites"), 0);
    const cJSON *file = get(site, "file"), *fn = get(site, "function");
    if (cJSON_IsObject(site) && cJSON_IsString(file)) {
        cJSON *b = cJSON_AddObjectToObject(v, "born");
        char text[600];

        if (cJSON_IsString(fn))
            snprintf(text, sizeof text, "%.400s:%.0f in %.150s",
                     file->valuestring, num(site, "line"), fn->valuestring);
        else
            snprintf(text, sizeof text, "%.400s:%.0f", file->valuestring,
                     num(site, "line"));
        cJSON_AddStringToObject(b, "site", text);
        cJSON_AddStringToObject(b, "file", file->valuestring);
        cJSON_AddNumberToObject(b, "line", num(site, "line"));
        if (cJSON_IsString(fn))
            cJSON_AddStringToObject(b, "function", fn->valuestring);
        else
            cJSON_AddNullToObject(b, "function");
        cJSON_AddNumberToObject(b, "count", num(site, "count"));
        cJSON_AddNumberToObject(b, "bytes", num(site, "bytes"));
    } else {
        cJSON_AddNullToObject(v, "born");
    }
    cJSON *also = cJSON_AddArrayToObject(v, "also");
    cJSON_ArrayForEach(s, get(sec, "suspects")) {
        const cJSON *w = get(s, "grows_with");

        if (also != NULL && cJSON_IsString(w) &&
            strcmp(w->valuestring, get(leak, "type")->valuestring) == 0)
            cJSON_AddItemToArray(also, cJSON_CreateString(
                get(s, "type")->valuestring));
    }
    return 0;
}
