/* SPDX-License-Identifier: MIT
 *
 * protocol.h -- the limits and version of the streaming protocol between
 * meliae.scanner.stream_to and meliae-monitord.  The protocol itself is
 * defined in docs/protocol.md; every number here is named there too.
 */
#ifndef ML_PROTOCOL_H
#define ML_PROTOCOL_H

/* The one version this build speaks.  A header with another version is
 * refused with an error line naming both. */
#define ML_PROTO_VERSION 1

/* An object line longer than this is a long line (docs/protocol.md,
 * "Long lines"): the daemon reads it in pieces, so "refs" must be its
 * last key (every meliae writer puts it last). */
#define ML_PROTO_LONG_LINE (64u << 10)

/* The head of an object line: every byte before its refs (all of a line
 * without refs).  The daemon holds a head whole; the refs, any number of
 * them, are never held.  Room for a value of ML_PROTO_MAX_VALUE
 * characters escaped at 12 bytes each (\ud83d\ude00), and a name. */
#define ML_PROTO_MAX_HEAD (8u << 20)

/* Characters of a str or bytes value with values "full": the scanner
 * cuts longer ones, as it cuts them to 100 with "truncated". */
#define ML_PROTO_MAX_VALUE (512u << 10)

/* Refs of one object line.  The daemon's default --max-refs; the count
 * is stored in 32 bits downstream.  Far beyond a real container: a list
 * of 2^32 - 1 items is a 32 GiB pointer array. */
#define ML_PROTO_MAX_REFS 4294967295ull

/* Header and trailer lines: a few hundred bytes in practice (the scanner
 * cuts hostname and program, and refuses long labels). */
#define ML_PROTO_MAX_META_LINE (64u << 10)

/* Label, hostname, program: longer strings are refused. */
#define ML_PROTO_MAX_LABEL 256

/* Objects per snapshot: the store numbers objects with 32 bits; 500M
 * objects is a heap of 25+ GiB, beyond what one walk should take. */
#define ML_PROTO_MAX_OBJECTS 500000000u

/* Bytes of object lines per snapshot (~130 per object at the limit
 * above, and room for values='full'). */
#define ML_PROTO_MAX_STREAM_BYTES (128ull << 30)

/* Seconds a client may stay silent in the middle of a snapshot before
 * the daemon discards it: a walk is over before sending starts, so a
 * pause this long means a stuck or hostile client. */
#define ML_PROTO_IDLE_SECONDS 60

/* Seconds between the daemon's keepalive lines to a connected client:
 * proof of life for a client that waits for requests. */
#define ML_PROTO_KEEPALIVE_SECONDS 30

#endif /* ML_PROTOCOL_H */
