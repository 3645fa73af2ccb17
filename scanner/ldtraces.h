/* SPDX-License-Identifier: MIT
 *
 * ldtraces.h -- the loader's table of allocation tracebacks (birth sites,
 * docs/dump-format.md): the text of each {"traceback": K, "frames": [...]}
 * line, kept as the parser meets it (a dump has few of them), by id.
 * The objects' "trace" ids are in the graph (ml_graph_trace); this is
 * what they refer to.  No Python here: the second-half thread fills its
 * own table, appended to the first half's at the join.
 */
#ifndef ML_LDTRACES_H
#define ML_LDTRACES_H

#include <stddef.h>
#include <stdint.h>

struct ldtb_ent {
    uint64_t id;
    uint64_t seq;               /* line order: the first line of an id wins */
    size_t off;                 /* the line's text: text[off .. off + len) */
    size_t len;
};

struct ldtb {
    struct ldtb_ent *e;
    size_t n, cap;
    char *text;
    size_t tlen, tcap;
    int sorted;                 /* e is by id, then seq (ldtb_sort) */
};

void ldtb_init(struct ldtb *t);
void ldtb_free(struct ldtb *t);

/* Keeps line s[0..n) (a table line, without its '\n') as traceback id.
 * 0 or -ENOMEM. */
int ldtb_put(struct ldtb *t, uint64_t id, const char *s, size_t n);

/* Appends other's lines after t's (as if read after them); other is
 * emptied.  0 or -ENOMEM (both unchanged). */
int ldtb_take(struct ldtb *t, struct ldtb *other);

/* Orders the entries for ldtb_get; after the last put. */
void ldtb_sort(struct ldtb *t);

/* The text of the first line that defined id (*n its length), or NULL
 * when none did.  After ldtb_sort. */
const char *ldtb_get(const struct ldtb *t, uint64_t id, size_t *n);

/* Distinct ids defined (after ldtb_sort). */
size_t ldtb_count(const struct ldtb *t);

#endif /* ML_LDTRACES_H */
