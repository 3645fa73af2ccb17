/* SPDX-License-Identifier: MIT
 *
 * procfig.c -- the process figures of a snapshot (struct st_procfig): one
 * table of their names for the header parser (monitord/proto.c), the
 * snapshot record's writer (commit.c) and its reader (query.c), and the
 * JSON both sides use (docs/protocol.md and docs/store-format.md,
 * "process").
 */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "procfig.h"

static const struct {
    const char *name;
    size_t off;
    int pymalloc;
} fields[ST_PROCFIG_N] = {
    { "rss", offsetof(struct st_procfig, rss), 0 },
    { "rss_anon", offsetof(struct st_procfig, rss_anon), 0 },
    { "traced", offsetof(struct st_procfig, traced), 0 },
    { "arenas", offsetof(struct st_procfig, arenas), 1 },
    { "arena_bytes", offsetof(struct st_procfig, arena_bytes), 1 },
    { "pools", offsetof(struct st_procfig, pools), 1 },
    { "allocated_bytes", offsetof(struct st_procfig, allocated_bytes), 1 },
    { "free_block_bytes", offsetof(struct st_procfig, free_block_bytes), 1 },
    { "unused_pool_bytes", offsetof(struct st_procfig, unused_pool_bytes), 1 },
};

const char *
st_procfig_name(size_t i)
{
    return i < ST_PROCFIG_N ? fields[i].name : NULL;
}

int64_t *
st_procfig_field(struct st_procfig *p, size_t i)
{
    return (int64_t *)(void *)((char *)p + fields[i].off);
}

int
st_procfig_is_pymalloc(size_t i)
{
    return fields[i].pymalloc;
}

/* 2^53: the largest integers a JSON number carries exactly. */
#define EXACT_MAX 9007199254740992.0

/* -1 for absent or null, -2 for anything but an integer in [0, 2^53). */
static int64_t
figure(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    double d;

    if (v == NULL || cJSON_IsNull(v))
        return -1;
    if (!cJSON_IsNumber(v))
        return -2;
    d = cJSON_GetNumberValue(v);
    if (!isfinite(d) || d < 0 || d >= EXACT_MAX || d != floor(d))
        return -2;
    return (int64_t)d;
}

int
st_procfig_from_json(const cJSON *o, struct st_procfig *p, const char **bad)
{
    const cJSON *pm;

    memset(p, 0, sizeof *p);
    *bad = NULL;
    if (o == NULL || cJSON_IsNull(o))
        return 0;
    if (!cJSON_IsObject(o)) {
        *bad = "process";
        return -1;
    }
    pm = cJSON_GetObjectItemCaseSensitive(o, "pymalloc");
    if (pm != NULL && !cJSON_IsNull(pm) && !cJSON_IsObject(pm)) {
        *bad = "pymalloc";
        return -1;
    }
    for (size_t i = 0; i < ST_PROCFIG_N; i++) {
        const cJSON *from = fields[i].pymalloc ? pm : o;
        int64_t v = cJSON_IsObject(from) ? figure(from, fields[i].name) : -1;

        if (v == -2) {
            *bad = fields[i].name;
            return -1;
        }
        *st_procfig_field(p, i) = v;
    }
    p->has = 1;
    return 0;
}

static void
add_figure(cJSON *o, const char *k, int64_t v)
{
    if (v >= 0)
        cJSON_AddNumberToObject(o, k, (double)v);
    else
        cJSON_AddNullToObject(o, k);
}

cJSON *
st_procfig_json(const struct st_procfig *p)
{
    cJSON *o, *pm = NULL;
    int any_pm = 0;

    if (!p->has)
        return cJSON_CreateNull();
    if ((o = cJSON_CreateObject()) == NULL)
        return NULL;
    for (size_t i = 0; i < ST_PROCFIG_N; i++) {
        int64_t v = *st_procfig_field((struct st_procfig *)p, i);

        if (!fields[i].pymalloc)
            add_figure(o, fields[i].name, v);
        else if (v >= 0)
            any_pm = 1;
    }
    if (any_pm && (pm = cJSON_AddObjectToObject(o, "pymalloc")) != NULL) {
        for (size_t i = 0; i < ST_PROCFIG_N; i++)
            if (fields[i].pymalloc)
                add_figure(pm, fields[i].name,
                           *st_procfig_field((struct st_procfig *)p, i));
    } else if (!any_pm) {
        cJSON_AddNullToObject(o, "pymalloc");
    }
    return o;
}
