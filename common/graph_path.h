/* SPDX-License-Identifier: MIT
 *
 * graph_path.h -- the loader's shortest chain from an object to a root,
 * and its path (common/paths.h), over a loaded graph's arrays.
 */
#ifndef ML_GRAPH_PATH_H
#define ML_GRAPH_PATH_H

#include <stddef.h>
#include <stdint.h>

#include "graph.h"
#include "paths.h"

/* Breadth first over referrers from start (par_start must be built):
 * the shortest chain to a root -- a module, a thread's frame
 * ("<thread frame>"), or an object nothing refers to, the first two
 * before the last at the same depth -- exactly, whatever the fan-in:
 * every referrer of every object on the way is looked at, each object
 * once (a visited array of n slots).  *chain (malloc'd, root first,
 * start last) and *n.  0; 1 when no root is reachable (start is kept
 * alive by a cycle only: *chain NULL); -ENOMEM. */
int ml_graph_chain_to_root(const struct ml_graph *g, uint32_t start,
                           uint32_t **chain, size_t *n);

/* The path of a chain of object indices, root first. */
int ml_graph_path(const struct ml_graph *g, const uint32_t *chain, size_t n,
                  struct ml_path *out);

#endif /* ML_GRAPH_PATH_H */
