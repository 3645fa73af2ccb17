/* SPDX-License-Identifier: MIT
 *
 * paths.c -- a chain of referrers as a path in the program's words
 * (paths.h).  The store and the loader both call ml_path_build, so the
 * same chain reads the same on either side.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dumpline.h"
#include "paths.h"

#define ML_THREAD_FRAME "<thread frame>"

/* A growing string; err sticks. */
struct sb {
    char *p;
    size_t n, cap;
    int err;
};

/* Not inlined: GCC's -O3 then sees sizes it cannot bound at some call
 * sites and warns (-Wstringop-overflow) of a memcpy it proves nothing
 * about. */
__attribute__((noinline)) static void
sb_put(struct sb *b, const char *s, size_t n)
{
    if (b->err)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        char *np;

        while (cap < b->n + n + 1)
            cap *= 2;
        if ((np = realloc(b->p, cap)) == NULL) {
            b->err = -ENOMEM;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void
sb_str(struct sb *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

/* A Python-like quoted str: 'a\'b', control characters as \xHH. */
static void
sb_quoted(struct sb *b, const char *s, size_t n)
{
    sb_put(b, "'", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char e[5];

        if (c == '\'' || c == '\\') {
            e[0] = '\\';
            e[1] = (char)c;
            sb_put(b, e, 2);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(e, sizeof e, "\\x%02x", c);
            sb_put(b, e, 4);
        } else {
            sb_put(b, (const char *)&c, 1);
        }
    }
    sb_put(b, "'", 1);
}

static char *
dupn(const char *s, size_t n)
{
    char *d = malloc(n + 1);

    if (d != NULL) {
        if (n)
            memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static int
is_type(const char *t, const char *name)
{
    return strcmp(t, name) == 0;
}

static int
is_dict_type(const char *t)
{
    return is_type(t, "dict") || is_type(t, "collections.OrderedDict")
        || is_type(t, "collections.defaultdict") || is_type(t, "Counter")
        || is_type(t, "OrderedDict") || is_type(t, "defaultdict");
}

static int
is_seq_type(const char *t)
{
    return is_type(t, "list") || is_type(t, "tuple")
        || is_type(t, "collections.deque");
}

int
ml_is_code_name(const char *s, size_t n)
{
    if (n == 0 || n > ML_CODE_NAME_MAX || (s[0] >= '0' && s[0] <= '9'))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return 1;
}

int
ml_is_small_int_text(const char *s, size_t n)
{
    long long v = 0;
    size_t i = 0;

    if (n > 0 && s[0] == '-')
        i = 1;
    if (i == n || n - i > 10)
        return 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    return v <= 2147483647LL;
}

/* Characters (not bytes) of UTF-8 text. */
static uint64_t
utf8_chars(const char *s, size_t n)
{
    uint64_t k = 0;

    for (size_t i = 0; i < n; i++)
        k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

const char *
ml_path_via_name(enum ml_path_via v)
{
    switch (v) {
    case ML_VIA_ROOT:   return "root";
    case ML_VIA_GLOBAL: return "global";
    case ML_VIA_ATTR:   return "attr";
    case ML_VIA_KEY:    return "key";
    case ML_VIA_INDEX:  return "index";
    case ML_VIA_LOCAL:  return "local";
    case ML_VIA_DICT:   return "dict";
    case ML_VIA_CACHE:  return "cache";
    case ML_VIA_REF:    return "ref";
    case ML_VIA_TLOCAL: return "thread_local";
    }
    return "ref";
}

void
ml_path_free(struct ml_path *p)
{
    for (size_t i = 0; i < p->nsteps; i++) {
        free(p->steps[i].key);
        free(p->steps[i].key_type);
        free(p->steps[i].type);
    }
    free(p->steps);
    free(p->text);
    memset(p, 0, sizeof *p);
}

/* What a parent's __dict__ makes of the keys of the next step. */
enum collapse { COL_NONE, COL_MODULE, COL_ATTRS, COL_TLOCAL };

int
ml_path_build(const uint64_t *chain, size_t n, ml_path_get_fn get,
              void *ctx, struct ml_path *out)
{
    struct sb text = { 0 };
    struct ml_path_obj o;
    enum collapse col = COL_NONE;
    char *ptype = NULL, *pname = NULL;
    char addr[40];
    int rc;

    memset(out, 0, sizeof *out);
    if (n == 0)
        return -EINVAL;
    if ((out->steps = calloc(n, sizeof *out->steps)) == NULL)
        return -ENOMEM;
    out->nsteps = n;

    /* the root */
    if ((rc = get(ctx, chain[0], 0, &o)) != 0)
        goto fail;
    out->steps[0].via = ML_VIA_ROOT;
    out->steps[0].address = chain[0];
    if ((out->steps[0].type = dupn(o.type, o.type_len)) == NULL)
        goto nomem;
    if (o.name != NULL) {
        sb_put(&text, o.name, o.name_len);
        if ((out->steps[0].key = dupn(o.name, o.name_len)) == NULL)
            goto nomem;
    } else {
        snprintf(addr, sizeof addr, "@0x%" PRIx64, chain[0]);
        sb_put(&text, o.type, o.type_len);
        sb_str(&text, addr);
    }

    for (size_t i = 1; i < n; i++) {
        struct ml_path_step *st = &out->steps[i];
        size_t j;
        int held;
        uint64_t plen, kaddr = 0;
        int silent = 0;
        /* the key or name before the child in the parent's refs */
        char *kval = NULL, *ktype = NULL;
        int kkind = ML_VAL_NONE;
        size_t kvlen = 0;
        uint64_t klen = UINT64_MAX;

        if ((rc = get(ctx, chain[i - 1], chain[i], &o)) != 0)
            goto fail;
        free(ptype);
        free(pname);
        ptype = dupn(o.type, o.type_len);
        pname = o.name != NULL ? dupn(o.name, o.name_len) : NULL;
        if (ptype == NULL || (o.name != NULL && pname == NULL))
            goto nomem;
        plen = o.len;
        j = o.child_at;
        held = j != ML_PATH_NOT_HELD;
        if (held && j % 2 == 1)
            kaddr = o.child_prev;
        if (kaddr != 0) {
            if ((rc = get(ctx, kaddr, 0, &o)) != 0)
                goto fail;
            kkind = o.vkind;
            klen = o.len;
            ktype = dupn(o.type, o.type_len);
            if (ktype == NULL)
                goto nomem;
            if (o.value != NULL && (kval = dupn(o.value, o.value_len)) == NULL) {
                free(ktype);
                goto nomem;
            }
            kvlen = o.value_len;
        }
        if ((rc = get(ctx, chain[i], 0, &o)) != 0) {
            free(kval);
            free(ktype);
            goto fail;
        }
        st->address = chain[i];
        if ((st->type = dupn(o.type, o.type_len)) == NULL) {
            free(kval);
            free(ktype);
            goto nomem;
        }
        st->via = ML_VIA_REF;
        int kstr = ktype != NULL && is_type(ktype, "str");
        int kname = kstr && kval != NULL && ml_is_code_name(kval, kvlen);

        if (!held) {
            /* not among the parent's refs: a chain from elsewhere */
        } else if (is_type(ptype, ML_THREAD_FRAME)) {
            if (kname && (plen == UINT64_MAX || j < 2 * plen)) {
                st->via = ML_VIA_LOCAL;
                sb_str(&text, ", local '");
                sb_put(&text, kval, kvlen);
                sb_str(&text, "'");
            }
        } else if ((is_type(ptype, "generator") || is_type(ptype, "coroutine")
                    || is_type(ptype, "async_generator"))
                   && kname && plen != UINT64_MAX && j < 2 * plen) {
            /* a suspended generator's local: ", generator in gen()
             * app.py:11, local 'buf'" */
            st->via = ML_VIA_LOCAL;
            sb_str(&text, ", ");
            sb_str(&text, ptype);
            if (pname != NULL) {
                sb_str(&text, " in ");
                sb_str(&text, pname);
            }
            sb_str(&text, ", local '");
            sb_put(&text, kval, kvlen);
            sb_str(&text, "'");
        } else if (is_type(ptype, "_thread._local")
                   && is_dict_type(st->type)) {
            /* a threading.local's dict of its threads' dicts (keyed by
             * a weakref, or 3.13's per-thread key object) */
            st->via = ML_VIA_DICT;
            silent = 1;
        } else if (col == COL_TLOCAL && is_dict_type(ptype)
                   && is_dict_type(st->type) && j % 2 == 1) {
            /* one thread's dict of the local: its keys are attributes
             * (LOCAL.buf) */
            st->via = ML_VIA_TLOCAL;
            silent = 1;
        } else if (col != COL_NONE && col != COL_TLOCAL && kname
                   && is_dict_type(ptype)) {
            st->via = col == COL_MODULE ? ML_VIA_GLOBAL : ML_VIA_ATTR;
            sb_str(&text, ".");
            sb_put(&text, kval, kvlen);
        } else if (is_dict_type(ptype) && kaddr != 0
                   && (plen == UINT64_MAX || j < 2 * plen)) {
            st->via = ML_VIA_KEY;
            st->key_kind = kkind;
            st->key_type = ktype;
            ktype = NULL;
            sb_str(&text, "[");
            if (kstr && kval != NULL) {
                sb_quoted(&text, kval, kvlen);
                if (klen != UINT64_MAX && utf8_chars(kval, kvlen) < klen)
                    sb_str(&text, "...");
            } else if (kval != NULL && kkind == ML_VAL_INT) {
                sb_put(&text, kval, kvlen);
            } else {
                sb_str(&text, "<");
                sb_str(&text, st->key_type);
                sb_str(&text, ">");
            }
            sb_str(&text, "]");
            if (kval != NULL && (kstr || kkind == ML_VAL_INT)) {
                st->key = kval;
                kval = NULL;
            }
        } else if (is_seq_type(ptype)) {
            st->via = ML_VIA_INDEX;
            st->index = j;
            snprintf(addr, sizeof addr, "[%zu]", j);
            sb_str(&text, addr);
        } else if (is_type(ptype, "module") && is_type(st->type, "dict")) {
            st->via = ML_VIA_DICT;
            silent = 1;
        } else if (is_type(ptype, "functools._lru_cache_wrapper")
                   && is_dict_type(st->type)) {
            struct sb w = { 0 };

            st->via = ML_VIA_CACHE;
            sb_str(&w, "functools.lru_cache(");
            sb_put(&w, text.p, text.n);
            sb_str(&w, ")");
            if (w.err) {
                free(w.p);
                text.err = w.err;
            } else {
                free(text.p);
                text = w;
            }
            silent = 1;
        } else if (is_type(ptype, "_lru_list_elem")
                   || is_type(ptype, "functools._lru_list_elem")
                   || is_type(ptype, "cell")) {
            silent = 1;         /* the entry's result; a cell's contents */
        } else if (is_type(ptype, "method") && j < 2) {
            st->via = ML_VIA_ATTR;
            st->key = dupn(j == 0 ? "__func__" : "__self__", 8);
            sb_str(&text, j == 0 ? ".__func__" : ".__self__");
        } else if (!is_dict_type(ptype) && is_type(st->type, "dict")) {
            /* an instance's or class's __dict__: its keys are attributes */
            st->via = ML_VIA_DICT;
            silent = 1;
        } else if (kname) {
            /* inline values: [name0, value0, ..., type]; a module whose
             * __dict__ the loader collapsed into it reads the same */
            st->via = is_type(ptype, "module") ? ML_VIA_GLOBAL : ML_VIA_ATTR;
            sb_str(&text, ".");
            sb_put(&text, kval, kvlen);
        }
        if ((st->via == ML_VIA_LOCAL || st->via == ML_VIA_GLOBAL
             || st->via == ML_VIA_ATTR) && st->key == NULL) {
            st->key = kval;
            kval = NULL;
        }
        if (st->via == ML_VIA_REF && !silent && held && j % 2 == 0
                && is_dict_type(ptype) && plen != UINT64_MAX && j < 2 * plen) {
            sb_str(&text, "<key>");     /* the key object itself */
        } else if (st->via == ML_VIA_REF && !silent) {
            sb_str(&text, "<");
            sb_str(&text, st->type);
            sb_str(&text, ">");
        }
        col = st->via == ML_VIA_TLOCAL ? COL_ATTRS
            : st->via != ML_VIA_DICT ? COL_NONE
            : is_type(ptype, "module") ? COL_MODULE
            : is_type(ptype, "_thread._local") ? COL_TLOCAL : COL_ATTRS;
        free(kval);
        free(ktype);
        if (text.err)
            goto nomem;
    }
    free(ptype);
    free(pname);
    if (text.err || text.p == NULL)
        goto nomem;
    out->text = text.p;
    return 0;
nomem:
    rc = -ENOMEM;
fail:
    free(ptype);
    free(pname);
    free(text.p);
    ml_path_free(out);
    return rc;
}
