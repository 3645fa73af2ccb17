/* SPDX-License-Identifier: MIT
 *
 * activation.h -- the listening socket handed over by systemd (socket
 * activation, sd_listen_fds(3)).  The protocol is three environment
 * variables and a descriptor number, so it is implemented here rather
 * than by linking libsystemd:
 *
 *   LISTEN_PID    the pid the sockets are for (ours, or they are not)
 *   LISTEN_FDS    how many descriptors, from SD_LISTEN_FDS_START (3)
 *   LISTEN_FDNAMES  their names (ignored)
 *
 * https://www.freedesktop.org/software/systemd/man/latest/sd_listen_fds.html
 */
#ifndef MD_ACTIVATION_H
#define MD_ACTIVATION_H

#include <stddef.h>

#define MD_LISTEN_FDS_START 3

/* Takes the socket systemd passed us, if any, and unsets the LISTEN_*
 * variables either way (our children must not take them for theirs).
 *   0   no socket for us (no LISTEN_PID, or another process's);
 *   1   *fd is MD_LISTEN_FDS_START, checked to be a listening AF_UNIX
 *       SOCK_STREAM socket (SO_ACCEPTCONN, SO_DOMAIN, SO_TYPE), made
 *       close-on-exec; path (n bytes) receives its bound path ("" if
 *       abstract or unnamed).  Descriptors beyond the first are closed;
 *  -1   LISTEN_* is malformed, or the descriptor is not such a socket: a
 *       one-line reason in err. */
int md_activation_socket(int *fd, char *path, size_t n, char *err,
                         size_t errlen);

#endif /* MD_ACTIVATION_H */
