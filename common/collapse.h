/* SPDX-License-Identifier: MIT
 *
 * collapse.h -- fold instances' private __dict__ into the instances of a
 * finished ml_graph (meliae 0.5's collapse_instance_dicts, on flat arrays).
 */
#ifndef ML_COLLAPSE_H
#define ML_COLLAPSE_H

#include <stdint.h>

#include "graph.h"

/* For every object i without a name (classes of any metaclass, modules and
 * functions have one) that is an instance of a class (its refs include a
 * "type" object named like i's type, or a ref with no line, as in a
 * dump_all_referenced dump where the class is not followed), and that
 * references exactly one "dict" which nothing else references: i's refs
 * become the dict's refs ([key, value, ...]) followed by i's other refs
 * (those already among the dict's refs left out, but the last one kept:
 * on 3.13 tp_traverse repeats the values), i's size grows by the dict's,
 * and the dict leaves the graph (indices are compacted, the address map
 * rebuilt, dangling refs kept).  The referrer CSR, if any, is dropped:
 * compute it again.  This is the shape the scanner already gives 3.11+
 * instances whose values were inline.  A module whose only ref is a dict
 * that nothing else references folds it the same way (meliae 0.5 does;
 * functions' __globals__ keep most modules' dicts apart).
 *
 * Returns how many dicts were folded (>= 0), -EINVAL if the graph is not
 * finished, or -ENOMEM (the graph is then unchanged). */
int64_t ml_graph_collapse_instance_dicts(struct ml_graph *g);

/* The same; when it folded anything and renumber is not NULL, *renumber
 * is the old index -> new index table (malloc'd, the old n entries,
 * ML_GRAPH_NONE for a folded dict; the caller frees it), else NULL.  For
 * the loader's MemObjects taken before the collapse. */
int64_t ml_graph_collapse_renumbering(struct ml_graph *g, uint32_t **renumber);

#endif /* ML_COLLAPSE_H */
