/* SPDX-License-Identifier: MIT
 *
 * forkchild.h -- a heap walk in a child made by fork(), so that the
 * application is paused only for the fork (copy-on-write snapshots,
 * issue 11; the Python side is meliae/stream.py and meliae/scanner.py).
 *
 * The caller holds the GIL when it forks, so the child's copy of the heap
 * is consistent: every other thread was outside the interpreter (or
 * waiting for the GIL) and does not exist in the child.  What the child
 * does, and only that:
 *
 * - every signal is blocked across fork(); the child then resets each
 *   caught signal to its default action (ignored ones stay ignored), so
 *   no handler of the application runs in it -- not Python's C handler,
 *   which would write to a set_wakeup_fd shared with the parent, nor an
 *   extension's -- and a Ctrl-C or SIGTERM to the process group ends it;
 * - with die_with_parent, it asks (Linux) for SIGKILL when the thread
 *   that forked it ends (the streamer's thread: close() ends the child);
 * - it closes every inherited descriptor but stdin/out/err and the keep
 *   descriptor, so it holds no pipe or socket of the application open;
 * - it runs fn (the walk: no Python code, no Python object but the int a
 *   C __sizeof__ returns; memory from malloc, which glibc makes fork-safe,
 *   and buffers the parent allocated before forking), writes a fixed-size
 *   report to a pipe and calls _exit(): no atexit handler, no finalizer,
 *   no at-fork hook (PyOS_AfterFork_Child is not called), no stdio flush.
 *
 * The parent learns the outcome from the pipe, not from waitpid(), so an
 * application that reaps every child (waitpid(-1), SIGCHLD ignored) does
 * not lose it.
 */
#ifndef ML_FORKCHILD_H
#define ML_FORKCHILD_H

#include <stdint.h>
#include <sys/types.h>

#include "walk.h"

/* Runs in the child.  Returns 0 or a negative code (-errno, ML_E*). */
typedef int (*ml_fork_fn)(void *arg, struct ml_walk_result *res);

/* Forks; the child runs fn(arg) as described above and exits.  keep: the
 * descriptor fn writes to (-1: none).  Returns the child's pid and sets
 * *status_fd (close-on-exec; ml_fork_wait closes it), or -errno with
 * nothing started. */
pid_t ml_fork_run(int keep, int die_with_parent, ml_fork_fn fn, void *arg,
                  int *status_fd);

/* Waits for the child's report by deadline_ns (CLOCK_MONOTONIC, 0: no
 * limit), kills it (SIGKILL) when that passes, reaps it and closes
 * status_fd.  Touches no Python state: callers release the GIL.  Returns
 * fn's result (0: *res is set), -ETIMEDOUT, or -ECHILD when the child
 * ended without a report (*termsig: the signal that killed it, if known,
 * else 0). */
int ml_fork_wait(pid_t pid, int status_fd, int64_t deadline_ns,
                 struct ml_walk_result *res, int *termsig);

#endif /* ML_FORKCHILD_H */
