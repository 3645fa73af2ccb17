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

/* Longest line (bytes, '\n' included).  The longest object lines are big
 * containers: a dict of 2M entries has 4M refs of ~16 characters each.
 * Longer lines are refused rather than buffered without bound. */
#define ML_PROTO_MAX_LINE (64u << 20)

/* Refs of one object line: the dict above.  The daemon parses a line
 * whole, so this bounds the parser's scratch (8 bytes per ref). */
#define ML_PROTO_MAX_REFS (4u << 20)

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
