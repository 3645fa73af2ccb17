/* SPDX-License-Identifier: MIT
 *
 * report_births.h -- birth sites in the answers (report_births.c;
 * docs/cli-json.md, "births").  Private to store/.
 *
 * The JSON of one type's birth sites ("births" entries):
 *
 *   {"type", "count", "bytes"        (its new objects),
 *    "traced_count", "traced_bytes"  (those tracemalloc had a traceback of),
 *    "sites": [{"file", "line", "function" (null when unknown),
 *               "count", "bytes",
 *               "traceback": [{"file", "line", "function"}, ...]}, ...]}
 *
 * sites: at most 5, most bytes first; a site is a traceback's first frame
 * (the allocating line), "traceback" the frames (at most 10, that line
 * first) of its largest share.
 */
#ifndef RP_REPORT_BIRTHS_H
#define RP_REPORT_BIRTHS_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct ctx;
struct snap;

/* The birth sites of the new objects of snapshot sid (isnew, tid and
 * size by oid, nobj of them): an array of the entries above, the types
 * with most traced new bytes first, at most top of them (0: all); a JSON
 * null when sid has no birth sites; NULL on error (out of memory). */
cJSON *rp__births_new(struct ctx *c, uint64_t sid, const uint8_t *isnew,
                      const uint32_t *tid, const uint64_t *size, size_t nobj,
                      uint64_t top);

/* For growth: the same array for the objects of sb that are new against
 * sa, by the diff's own classification (report_diff.c, which defines
 * it).  JSON null when sb has no birth sites; NULL with c's error set on
 * failure. */
cJSON *rp__births_between(struct ctx *c, const struct snap *sa,
                          const struct snap *sb, uint64_t top);

/* diff: adds "births" (rp__births_new's array) to new_objects nw, only
 * when sid has birth sites (an untraced diff's document is unchanged).
 * isnew[oid] == 1 marks the new objects counted (report_diff.c's B_NEW;
 * 2, new but not alive in the keep snapshots, is not counted). */
void rp__births_diff(struct ctx *c, uint64_t sid, const uint8_t *isnew,
                     const uint32_t *tid, const uint64_t *size, size_t nobj,
                     uint64_t top, cJSON *nw);

/* A copy of the entry of type in an array of entries, or JSON null. */
cJSON *rp__births_pick(const cJSON *births, const char *type);

/* growth: adds "births" to each suspect of a process section sec (its
 * first snapshot with a graph against its last), when the last has
 * birth sites.  0 or -ENOMEM. */
int rp__births_growth(struct ctx *c, const struct snap *const *sn, size_t n,
                      cJSON *sec);

#endif /* RP_REPORT_BIRTHS_H */
