/* SPDX-License-Identifier: MIT
 *
 * paths.h -- a chain of referrers as the program's own words: the one
 * implementation of the path text and steps that the store's answers
 * (store/report_refs.c) and the loader (om.path_to_root) both give.
 *
 * A chain is root, ..., target: each object holds the next.  Each step
 * says how the parent holds its child, from the position of the child in
 * the parent's refs (docs/dump-format.md, "Refs") and the object before
 * it there (a dict's key, an inline attribute's name, a frame local's
 * name):
 *
 *   __main__.BUS.subscribers[17]          module global, attr, index
 *   sessions._SESSIONS['a1b2']            a str key the dump names
 *   sessions._SESSIONS[<str>]             a str key sent without value
 *   functools.lru_cache(app.render)[42]   a cache of lru_cache
 *   thread 'collector' in worker() app.py:42, local 'buf'
 *   __main__.LOCAL.buf                    a threading.local's attribute
 *
 * An instance's, class's or module's __dict__ is not a step of its own:
 * its keys read as .attr / module.global.  An edge without a name reads
 * <type> (the child's type).
 */
#ifndef ML_PATHS_H
#define ML_PATHS_H

#include <stddef.h>
#include <stdint.h>

/* What a path needs to know of one object; strings are not
 * NUL-terminated and may be overwritten by the next get(). */
struct ml_path_obj {
    uint64_t address;
    const char *type;
    size_t type_len;
    const char *name;           /* NULL: none */
    size_t name_len;
    const char *value;          /* NULL: none */
    size_t value_len;
    int vkind;                  /* enum ml_vkind */
    uint64_t len;               /* UINT64_MAX: no "len" */
    size_t child_at;            /* see ml_path_get_fn */
    uint64_t child_prev;
};

#define ML_PATH_NOT_HELD SIZE_MAX

/* Fills out with the object at address.  When child is not 0, also says
 * where child is first among the object's refs (docs/dump-format.md,
 * "Refs"): child_at its index, or ML_PATH_NOT_HELD; child_prev the ref
 * before it (0 at index 0).  That is all a path needs of a parent's
 * refs: a dict of millions of entries on the chain is scanned, never
 * copied (a daemon answering referrers at 80M objects stays small).
 * 0, or a negative code (the path then stops with it). */
typedef int (*ml_path_get_fn)(void *ctx, uint64_t address, uint64_t child,
                              struct ml_path_obj *out);

enum ml_path_via {
    ML_VIA_ROOT,        /* the chain's first object */
    ML_VIA_GLOBAL,      /* a module's global: key = its name */
    ML_VIA_ATTR,        /* an attribute: key = its name */
    ML_VIA_KEY,         /* a dict value: key = the key's text, or NULL */
    ML_VIA_INDEX,       /* an item of a list, tuple, deque: index */
    ML_VIA_LOCAL,       /* a frame's local: key = its name */
    ML_VIA_DICT,        /* an instance's, class's or module's __dict__ */
    ML_VIA_CACHE,       /* functools.lru_cache's cache */
    ML_VIA_REF,         /* held without a name the dump gives */
    ML_VIA_TLOCAL,      /* one thread's attributes of a threading.local */
};

struct ml_path_step {
    enum ml_path_via via;
    char *key;                  /* see ml_path_via; NUL-terminated */
    int key_kind;               /* ML_VIA_KEY: enum ml_vkind of the key */
    char *key_type;             /* ML_VIA_KEY: type of the key */
    uint64_t index;             /* ML_VIA_INDEX */
    uint64_t address;           /* the object the step reaches */
    char *type;                 /* its type */
};

struct ml_path {
    struct ml_path_step *steps; /* steps[0] is the root (ML_VIA_ROOT) */
    size_t nsteps;
    char *text;                 /* NUL-terminated UTF-8; untrusted text */
};

/* The path of chain[0] (the root) ... chain[n-1] (the target), given by
 * address.  0, -ENOMEM, -EINVAL (n == 0), or get()'s error. */
int ml_path_build(const uint64_t *chain, size_t n, ml_path_get_fn get,
                  void *ctx, struct ml_path *out);
void ml_path_free(struct ml_path *p);

/* 1 if s (n bytes) is what values "none" may send as a str's value: an
 * ASCII Python identifier of at most ML_CODE_NAME_MAX characters
 * (docs/dump-format.md, "Names of code"; the scanner also requires the
 * str to be interned). */
#define ML_CODE_NAME_MAX 100
int ml_is_code_name(const char *s, size_t n);

/* 1 if s (n bytes) is the text of an int that values "none" may send:
 * from -(2^31 - 1) to 2^31 - 1, in decimal as JSON writes it. */
int ml_is_small_int_text(const char *s, size_t n);

/* The name of an enum ml_path_via in JSON ("attr", "key", ...). */
const char *ml_path_via_name(enum ml_path_via v);

#endif /* ML_PATHS_H */
