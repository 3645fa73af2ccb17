/* SPDX-License-Identifier: MIT
 *
 * ldtraces.c -- the loader's traceback table; see ldtraces.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ldtraces.h"

void
ldtb_init(struct ldtb *t)
{
    memset(t, 0, sizeof(*t));
}

void
ldtb_free(struct ldtb *t)
{
    free(t->e);
    free(t->text);
    ldtb_init(t);
}

/* Room for n more entries and b more bytes of text. */
static int
reserve(struct ldtb *t, size_t n, size_t b)
{
    if (t->n + n > t->cap) {
        size_t ncap = t->cap ? t->cap : 64;
        void *p;

        while (ncap < t->n + n)
            ncap *= 2;
        if ((p = realloc(t->e, ncap * sizeof(*t->e))) == NULL)
            return -ENOMEM;
        t->e = p;
        t->cap = ncap;
    }
    if (t->tlen + b > t->tcap) {
        size_t ncap = t->tcap ? t->tcap : 4096;
        void *p;

        while (ncap < t->tlen + b)
            ncap *= 2;
        if ((p = realloc(t->text, ncap)) == NULL)
            return -ENOMEM;
        t->text = p;
        t->tcap = ncap;
    }
    return 0;
}

int
ldtb_put(struct ldtb *t, uint64_t id, const char *s, size_t n)
{
    if (reserve(t, 1, n) < 0)
        return -ENOMEM;
    memcpy(t->text + t->tlen, s, n);
    t->e[t->n] = (struct ldtb_ent){ id, t->n, t->tlen, n };
    t->tlen += n;
    t->n++;
    t->sorted = 0;
    return 0;
}

int
ldtb_take(struct ldtb *t, struct ldtb *o)
{
    if (o->n == 0) {
        ldtb_free(o);
        return 0;
    }
    if (reserve(t, o->n, o->tlen) < 0)
        return -ENOMEM;
    memcpy(t->text + t->tlen, o->text, o->tlen);
    for (size_t i = 0; i < o->n; i++) {
        t->e[t->n + i] = o->e[i];
        t->e[t->n + i].seq = t->n + i;      /* o's lines come after t's */
        t->e[t->n + i].off += t->tlen;
    }
    t->n += o->n;
    t->tlen += o->tlen;
    t->sorted = 0;
    ldtb_free(o);
    return 0;
}

static int
ent_cmp(const void *x, const void *y)
{
    const struct ldtb_ent *a = x, *b = y;

    if (a->id != b->id)
        return a->id < b->id ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

void
ldtb_sort(struct ldtb *t)
{
    if (!t->sorted && t->n > 1)
        qsort(t->e, t->n, sizeof(*t->e), ent_cmp);
    t->sorted = 1;
}

const char *
ldtb_get(const struct ldtb *t, uint64_t id, size_t *n)
{
    size_t lo = 0, hi = t->n;

    while (lo < hi) {           /* the first entry with e.id >= id */
        size_t mid = lo + (hi - lo) / 2;

        if (t->e[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == t->n || t->e[lo].id != id)
        return NULL;
    *n = t->e[lo].len;
    return t->text + t->e[lo].off;
}

size_t
ldtb_count(const struct ldtb *t)
{
    size_t k = 0;

    for (size_t i = 0; i < t->n; i++)
        k += i == 0 || t->e[i].id != t->e[i - 1].id;
    return k;
}
