/* SPDX-License-Identifier: MIT
 *
 * procfig.h -- struct st_procfig (store.h) to and from JSON.
 */
#ifndef ST_PROCFIG_H
#define ST_PROCFIG_H

#include <cjson/cJSON.h>

#include "store.h"

/* The figures' JSON names, and their addresses in p, in one order. */
#define ST_PROCFIG_N 9
const char *st_procfig_name(size_t i);
int64_t *st_procfig_field(struct st_procfig *p, size_t i);
/* 1 if figure i is pymalloc's (a nested object in the JSON). */
int st_procfig_is_pymalloc(size_t i);

/* Reads o (the header's or the record's "process"; NULL or null: p->has
 * = 0).  0; -1 with *bad naming the first figure that is not null or an
 * integer in [0, 2^53). */
int st_procfig_from_json(const cJSON *o, struct st_procfig *p,
                         const char **bad);

/* p as JSON: {"rss", "rss_anon", "traced", "pymalloc": {...} | null},
 * unknown figures as null; null when p->has == 0. */
cJSON *st_procfig_json(const struct st_procfig *p);

#endif /* ST_PROCFIG_H */
