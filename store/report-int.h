/* SPDX-License-Identifier: MIT
 *
 * report-int.h -- private to store/report.c and the report_*.c files: the
 * request context, the snapshot list and the helpers every command uses,
 * and the commands that live in a file of their own.  Nobody else includes
 * it; the public API is report.h.  Definitions are in report.c unless a
 * comment says otherwise.
 */
#ifndef RP_REPORT_INT_H
#define RP_REPORT_INT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "mlsort.h"
#include "report.h"
#include "store.h"

void rp__copy(void *dst, const void *src, size_t n);
/* v (an array of *cap elements of size bytes) with room for element n:
 * v itself, or v reallocated to twice *cap (first elements at first) and
 * *cap updated; NULL when out of memory, v still valid. */
void *rp__grow(void *v, size_t *cap, size_t n, size_t size, size_t first);

/* One request: its read transaction, and where rp__fail writes the
 * reason.  Lives on rp_run's stack, for one command. */
struct ctx {
    struct st_read *r;
    char *err;
    size_t errlen;
    const struct rp_scope *scope;       /* NULL: all, no cap */
    size_t est;                         /* answer bytes promised so far */
    uint64_t computed;                  /* rp_run_ex's *computed */
};

/* Adds bytes to the answer's estimate: -E2BIG (reason set) once it is
 * over the scope's cap, so a wide answer is refused before it is built. */
int rp__budget(struct ctx *c, size_t bytes, const char *what);
/* rp__budget for the rows of a list of n, --top top of them (0: all),
 * of about row_bytes each. */
int rp__budget_rows(struct ctx *c, size_t n, uint64_t top, size_t row_bytes,
                    const char *what);

/* Writes the reason into c->err; returns rc, so "return rp__fail(...)". */
int rp__fail(struct ctx *c, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- request arguments ---- */

const char *rp__arg_str(const cJSON *req, const char *k);
int rp__arg_u64(const cJSON *req, const char *k, uint64_t def, uint64_t *out);
int rp__arg_by(struct ctx *c, const cJSON *req, int *count);

/* ---- snapshots ---- */

struct snap {
    uint64_t id, time_ns, proc, objects, bytes;
    int32_t pid;
    uint32_t uid;
    int trusted, graph;
    char *label, *program;
    char *file, *content_hash;  /* an imported file's; NULL otherwise */
    struct st_procfig procfig;  /* the process beside its objects */
};

struct snaplist {
    struct snap *v;
    size_t n, cap;
};

void rp__snaps_free(struct snaplist *l);
int rp__load_snaps(struct ctx *c, uint64_t since, uint64_t until,
                   const char *sel, struct snaplist *l);
/* "pid 12 \"web\" /usr/bin/app": who took snapshot s, for messages;
 * buf of n bytes. */
const char *rp__proc_text(const struct snap *s, char *buf, size_t n);
int rp__resolve(struct ctx *c, const struct snaplist *l, const char *ref,
                const char *sel, const struct snap **out);

/* Calls fn once per process of l, in order of first appearance, with its
 * snapshots (in l's order) and a new section object appended to procs;
 * stops at fn's first error.  growth and report group alike. */
typedef int (*rp_process_fn)(struct ctx *c, const struct snap *const *sn,
                             size_t n, void *arg, cJSON *sec);
int rp__each_process(struct ctx *c, const struct snaplist *l, cJSON *procs,
                     rp_process_fn fn, void *arg);

/* ---- the process beside its objects (report_memory.c) ---- */

enum rp_mem_verdict {
    RP_MEM_OUTSIDE,             /* RSS grows, the objects do not explain it */
    RP_MEM_OBJECTS,             /* RSS grows with the objects */
    RP_MEM_NO_TREND,
    RP_MEM_BELOW_FLOOR,
    RP_MEM_FEW,                 /* too few snapshots for the test */
    RP_MEM_UNKNOWN,             /* no RSS figures (older scanner, import) */
};

/* Adds "memory" to sec for the process's snapshots sn[0..n): the RSS and
 * object series, the RSS trend and the verdict (docs/cli-json.md).
 * 0 or -ENOMEM. */
int rp__memory_json(const struct snap *const *sn, size_t n, cJSON *sec,
                    enum rp_mem_verdict *verdict);

/* ---- JSON ---- */

cJSON *rp__snap_json(const struct snap *s);
struct ml_trend;
cJSON *rp__trend_json(const struct ml_trend *t);
void rp__add_strn(cJSON *o, const char *k, const char *s, size_t n);
/* o[k] = s, or null when s is NULL. */
void rp__add_str_or_null(cJSON *o, const char *k, const char *s);
cJSON *rp__obj_json(const struct st_object *ob);
int rp__is_root_type(const struct st_object *o);

/* ---- the commands with a file of their own ---- */

/* Each fills out (rp_run's answer) and returns 0, or rp__fail's code. */

/* report_growth.c */
int rp__cmd_growth(struct ctx *c, const cJSON *req, cJSON *out);
enum { RP_SORT_SCORE, RP_SORT_BYTES, RP_SORT_COUNT, RP_SORT_SLOPE };
/* The request's "sort" (default score) */
int rp__arg_sort(struct ctx *c, const cJSON *req, int *sort);
/* One process's section of a growth answer (its snapshots sn[0..n), in
 * time order) into sec: what growth answers, and the report's suspects.
 * top: rows at most (0: all); RP_GROWTH_SUSPECTS (with RP_SORT_SCORE):
 * the suspects' rows only, all the report reads, so that it does not
 * hold a row for every type. */
#define RP_GROWTH_SUSPECTS UINT64_MAX
int rp__growth_process(struct ctx *c, const struct snap *const *sn, size_t n,
                       int count, int sort, uint64_t top, cJSON *sec);

/* report_diff.c */
int rp__cmd_diff(struct ctx *c, const cJSON *req, cJSON *out);
/* The object-level part of a diff of sa and sb (both with a graph) into
 * out: "new_objects" (grouped by accumulation point, each group with its
 * types and an "example" address) and "gone_objects".  With
 * keep[0..nkeep): only the new objects also alive in each of those
 * snapshots count as new (the others: "transient").  all_types: every
 * type of each group and no paths (the report's own use); else the first
 * 8 types, and the first groups' paths. */
int rp__object_diff(struct ctx *c, const struct snap *sa,
                    const struct snap *sb, const struct snap *const *keep,
                    size_t nkeep, uint64_t top, int all_types, cJSON *out);

/* report_paths.c: the path from a root to the object at addr in s, as a
 * JSON string ("__main__.__dict__ > list@0x7f3a5c2b1e80"), or NULL when
 * there is none (or no memory).  The one place that names an object for
 * the diff's accumulation points and the report's verdict. */
cJSON *rp__path_json(struct ctx *c, const struct snap *s, uint64_t addr);

/* report_refs.c */
int rp__cmd_referrers(struct ctx *c, const cJSON *req, cJSON *out);
/* The path (docs/cli-json.md "path": {"text", "steps"}) of a chain of
 * addresses in snapshot snap, root first (report_paths.c).  0 or a
 * negative code. */
int rp__chain_path(struct ctx *c, uint64_t snap, const uint64_t *chain,
                   size_t n, cJSON **out);
int rp__cmd_show(struct ctx *c, const cJSON *req, cJSON *out);

/* report_leak.c */
int rp__cmd_report(struct ctx *c, const cJSON *req, cJSON *out);

/* report_verdict.c: the index in suspects (the report's, grows_with
 * set) of the leaking type, or -1 when no suspect leaks. */
int rp__verdict_pick(const cJSON *suspects);
/* Adds "verdict" to out (a report section): leak, its suspect object
 * (its groups named: "path"), or NULL; seconds: the window's span.
 * 0 or -ENOMEM. */
int rp__verdict_json(const cJSON *sec, const cJSON *leak, double seconds,
                     size_t min_snapshots, cJSON *out);

/* report_dominators.c */
int rp__cmd_top(struct ctx *c, const cJSON *req, cJSON *out);
int rp__cmd_dominators(struct ctx *c, const cJSON *req, cJSON *out);

/* Retained sizes of one snapshot, computed once for several questions
 * (the leak report asks per suspect).  rp__retained_new fails as "top
 * --retained" does (rp__fail); the lookups return ML_ENOTFOUND for a type
 * with no object or an unknown address. */
struct rp_retained;
int rp__retained_new(struct ctx *c, const struct snap *s,
                     struct rp_retained **out);
/* What the objects of type name keep alive, each counted once. */
int rp__retained_type(struct ctx *c, const struct rp_retained *r,
                      const char *name, uint64_t *bytes);
int rp__retained_addr(struct ctx *c, const struct rp_retained *r,
                      uint64_t addr, uint64_t *bytes);
void rp__retained_free(struct rp_retained *r);

#endif /* RP_REPORT_INT_H */
