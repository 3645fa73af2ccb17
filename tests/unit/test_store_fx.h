/* SPDX-License-Identifier: MIT
 *
 * test_store_fx.h -- a unit test's private store (cmocka): a folder made
 * by mkdtemp under /tmp, the store in its "db", opened before each test
 * and the folder removed after.  Include after <cmocka.h> and "store.h".
 */
#ifndef ML_TEST_STORE_FX_H
#define ML_TEST_STORE_FX_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fx {
    char dir[64];               /* /tmp/ml_test_NAME.XXXXXX/db */
    struct st_store *s;
};

/* rm -rf dir (a folder this test made). */
static inline void
fx_rm_rf(const char *dir)
{
    char cmd[128];

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* A new store for one test of the unit named name. */
static inline struct fx *
fx_open(const char *name)
{
    struct fx *f = calloc(1, sizeof *f);
    char err[256];

    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/ml_test_%s.XXXXXX", name);
    assert_non_null(mkdtemp(f->dir));
    strcat(f->dir, "/db");
    assert_int_equal(st_open(&f->s, f->dir, NULL, err, sizeof err), 0);
    return f;
}

/* Closes f's store and removes its folder. */
static inline void
fx_close(struct fx *f)
{
    char parent[64];

    st_close(f->s);
    strcpy(parent, f->dir);
    *strrchr(parent, '/') = '\0';
    fx_rm_rf(parent);
    free(f);
}

#endif /* ML_TEST_STORE_FX_H */
