/* SPDX-License-Identifier: MIT
 *
 * creds.h -- who is on the other end of an accepted socket, as the kernel
 * says (SO_PEERCRED, SO_PEERGROUPS, /proc), and whether they may talk to
 * us (docs/protocol.md, "Who may connect").
 */
#ifndef MD_CREDS_H
#define MD_CREDS_H

#include <stdint.h>
#include <sys/types.h>

struct md_peer {
    pid_t pid;
    uid_t uid;
    gid_t gid;
    double start_time;          /* epoch seconds; 0 if /proc said nothing */
};

/* Reads btime from /proc/stat and the clock tick once.  0 or -errno
 * (start times are then 0). */
int md_creds_init(void);

/* SO_PEERCRED of fd, and the peer's start time from /proc/PID/stat.
 * 0 or -errno (the peer is then unknown: refuse it). */
int md_peer_get(int fd, struct md_peer *p);

/* 1 if the peer may connect: our euid, root, or (group != (gid_t)-1) a
 * member of group by its primary gid or SO_PEERGROUPS (else /proc/PID/
 * status "Groups:").  0 otherwise, and whenever in doubt. */
int md_peer_allowed(int fd, const struct md_peer *p, gid_t group);

/* What /proc/PID/cmdline says of the peer, for `meliae-cli snap PROGRAM`
 * before its first snapshot: argv[0], and for a Python interpreter
 * (argv[0]'s last component starts with "python") the script, i.e. the
 * first argument that is not an option, as sys.argv[0] will say (none
 * after -c or -m).  Each is cut to n - 1 bytes; "" when unknown.  One
 * read of a small /proc file: cheap enough for the accept path. */
void md_peer_cmdline(pid_t pid, char *argv0, char *script, size_t n);

#endif /* MD_CREDS_H */
