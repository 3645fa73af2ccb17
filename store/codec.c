/* SPDX-License-Identifier: MIT
 *
 * codec.c -- the object record, the one encoding of an object in the
 * spool and in the store's objs blocks (docs/store-format.md, "objs"):
 *
 *   varint  zigzag(addr - previous record's addr)   (previous: 0 first)
 *   varint  type id
 *   varint  size
 *   varint  len + 1, or 0 when the object has no len
 *   varint  tag: bit 0 name present, bits 1-3 the value kind (dumpline.h)
 *   [varint n, n bytes]  name, if tag bit 0
 *   [varint n, n bytes]  value text, for str, int and float values
 *   varint  number of refs
 *   varint  zigzag(ref - addr), per ref
 */
#define _GNU_SOURCE
#include <string.h>

#include "ml-common.h"
#include "store-int.h"

size_t
st_rec_max(size_t name_len, size_t value_len, size_t nrefs)
{
    return 8 * ST_VARINT_MAX + name_len + value_len +
           nrefs * ST_VARINT_MAX;
}

static int
has_text(enum ml_vkind k)
{
    return k == ML_VAL_STR || k == ML_VAL_INT || k == ML_VAL_FLOAT;
}

size_t
st_rec_head_len(uint64_t prev, uint64_t addr, uint64_t tid, uint64_t size,
                int has_len, uint64_t len, size_t name_len, int has_name,
                enum ml_vkind vkind, size_t value_len, uint64_t nrefs)
{
    size_t n = st_varint_len(st_zigzag(prev, addr)) + st_varint_len(tid) +
               st_varint_len(size) + st_varint_len(has_len ? len + 1 : 0) +
               st_varint_len((uint64_t)(has_name ? 1 : 0) | (uint64_t)vkind << 1) +
               st_varint_len(nrefs);

    if (has_name)
        n += st_varint_len(name_len) + name_len;
    if (has_text(vkind))
        n += st_varint_len(value_len) + value_len;
    return n;
}

unsigned char *
st_rec_put_head(unsigned char *p, uint64_t prev, uint64_t addr,
                uint64_t tid, uint64_t size, int has_len, uint64_t len,
                const void *name, size_t name_len, int has_name,
                enum ml_vkind vkind, const void *value, size_t value_len,
                uint64_t nrefs)
{
    p = st_put_varint(p, st_zigzag(prev, addr));
    p = st_put_varint(p, tid);
    p = st_put_varint(p, size);
    p = st_put_varint(p, has_len ? len + 1 : 0);
    p = st_put_varint(p, (uint64_t)(has_name ? 1 : 0) | (uint64_t)vkind << 1);
    if (has_name) {
        p = st_put_varint(p, name_len);
        memcpy(p, name, name_len);
        p += name_len;
    }
    if (has_text(vkind)) {
        p = st_put_varint(p, value_len);
        memcpy(p, value, value_len);
        p += value_len;
    }
    return st_put_varint(p, nrefs);
}

unsigned char *
st_rec_put(unsigned char *p, uint64_t prev, uint64_t addr, uint64_t tid,
           uint64_t size, int has_len, uint64_t len, const char *name,
           size_t name_len, int has_name, enum ml_vkind vkind,
           const char *value, size_t value_len, const uint64_t *refs,
           size_t nrefs)
{
    p = st_rec_put_head(p, prev, addr, tid, size, has_len, len, name,
                        name_len, has_name, vkind, value, value_len, nrefs);
    for (size_t i = 0; i < nrefs; i++)
        p = st_put_varint(p, st_zigzag(addr, refs[i]));
    return p;
}

static int
get_bytes(const unsigned char **pp, const unsigned char *end,
          const unsigned char **s, size_t *n)
{
    uint64_t len;

    if (st_get_varint(pp, end, &len) < 0 || len > (uint64_t)(end - *pp))
        return -1;
    *s = *pp;
    *n = (size_t)len;
    *pp += len;
    return 0;
}

int
st_rec_get_head(const unsigned char **pp, const unsigned char *end,
                uint64_t prev, struct st_rec *r)
{
    const unsigned char *p = *pp;
    uint64_t z, len1, tag;

    if (st_get_varint(&p, end, &z) < 0 ||
        st_get_varint(&p, end, &r->tid) < 0 ||
        st_get_varint(&p, end, &r->size) < 0 ||
        st_get_varint(&p, end, &len1) < 0 ||
        st_get_varint(&p, end, &tag) < 0)
        return ML_ECORRUPT;
    r->addr = st_unzigzag(prev, z);
    r->has_len = len1 != 0;
    r->len = len1 ? len1 - 1 : 0;
    r->has_name = (int)(tag & 1);
    if ((tag >> 1) > ML_VAL_NULL)
        return ML_ECORRUPT;
    r->vkind = (enum ml_vkind)(tag >> 1);
    r->name = NULL;
    r->name_len = 0;
    r->value = NULL;
    r->value_len = 0;
    if (r->has_name && get_bytes(&p, end, &r->name, &r->name_len) < 0)
        return ML_ECORRUPT;
    if (has_text(r->vkind) && get_bytes(&p, end, &r->value, &r->value_len) < 0)
        return ML_ECORRUPT;
    if (st_get_varint(&p, end, &r->nrefs) < 0 ||
        r->nrefs > (uint64_t)(end - p))       /* each ref is >= 1 byte */
        return ML_ECORRUPT;
    r->refs_p = p;
    *pp = p;
    return 0;
}

int
st_rec_get(const unsigned char **pp, const unsigned char *end, uint64_t prev,
           struct st_rec *r)
{
    const unsigned char *p = *pp;

    if (st_rec_get_head(&p, end, prev, r) != 0)
        return ML_ECORRUPT;
    for (uint64_t i = 0; i < r->nrefs; i++) {
        while (p < end && (*p & 0x80))
            p++;
        if (p == end)
            return ML_ECORRUPT;
        p++;
    }
    *pp = p;
    return 0;
}

