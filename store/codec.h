/* SPDX-License-Identifier: MIT
 *
 * codec.h -- the byte encodings of the store (docs/store-format.md):
 * big-endian fixed-width integers for keys (so LMDB's memcmp order is
 * numeric order) and LEB128 varints for block contents.
 */
#ifndef ST_CODEC_H
#define ST_CODEC_H

#include <stddef.h>
#include <stdint.h>

#define ST_VARINT_MAX 10        /* bytes of the largest uint64_t */

static inline void
st_put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static inline void
st_put_be64(unsigned char *p, uint64_t v)
{
    st_put_be32(p, (uint32_t)(v >> 32));
    st_put_be32(p + 4, (uint32_t)v);
}

static inline uint32_t
st_get_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline uint64_t
st_get_be64(const unsigned char *p)
{
    return (uint64_t)st_get_be32(p) << 32 | st_get_be32(p + 4);
}

/* Appends v at p (room for ST_VARINT_MAX bytes); returns the new end. */
static inline unsigned char *
st_put_varint(unsigned char *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    *p++ = (unsigned char)v;
    return p;
}

/* Bytes st_put_varint writes for v. */
static inline size_t
st_varint_len(uint64_t v)
{
    size_t n = 1;

    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Reads a varint from [*pp, end).  Returns 0, or -1 if it is truncated
 * or longer than 64 bits (a corrupt record). */
static inline int
st_get_varint(const unsigned char **pp, const unsigned char *end,
              uint64_t *v)
{
    const unsigned char *p = *pp;
    uint64_t r = 0;
    unsigned shift = 0;

    for (;;) {
        if (p == end || shift > 63)
            return -1;
        unsigned char b = *p++;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            break;
        shift += 7;
    }
    *pp = p;
    *v = r;
    return 0;
}

/* Signed deltas as unsigned: 0, -1, 1, -2 ... -> 0, 1, 2, 3 ... */
static inline uint64_t
st_zigzag(uint64_t from, uint64_t to)
{
    int64_t d = (int64_t)(to - from);

    return ((uint64_t)d << 1) ^ (uint64_t)(d >> 63);
}

static inline uint64_t
st_unzigzag(uint64_t from, uint64_t z)
{
    return from + ((z >> 1) ^ (0 - (z & 1)));
}

#endif /* ST_CODEC_H */
