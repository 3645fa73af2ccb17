/* SPDX-License-Identifier: MIT
 *
 * rmtree.c -- removes a directory the CLI made (--dump's temporary store,
 * attach's drop in the target's /tmp), with what it holds.
 */
#define _GNU_SOURCE
#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static int
remove_entry(const char *path, const struct stat *st, int type,
             struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (type == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

void
cli_remove_tree(const char *dir)
{
    /* FTW_PHYS: a symlink inside is removed, never followed */
    nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}
