/* SPDX-License-Identifier: MIT
 *
 * test_paths.c -- cmocka tests for common/paths.c: a chain of objects
 * as the path the store and the loader print (module globals, instance
 * attributes inline or in a __dict__, dict keys named, sent without
 * content, int or other, list items, thread frame and generator locals,
 * lru_cache, edges without a name), the steps' vias, get()'s errors, and
 * the rules of what values "none" sends (ml_is_code_name,
 * ml_is_small_int_text).
 */
#define _GNU_SOURCE 1

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dumpline.h"
#include "paths.h"

/* A heap of hand-made objects, by address. */
struct fobj {
    uint64_t addr;
    const char *type, *name, *value;
    int vkind;
    uint64_t len;
    uint64_t refs[10];
    size_t nrefs;
};

struct heap {
    const struct fobj *o;
    size_t n;
    int fail_at;        /* address that get() refuses, 0: none */
};

static int
get(void *ctx, uint64_t addr, uint64_t child, struct ml_path_obj *out)
{
    const struct heap *h = ctx;

    if ((int)addr == h->fail_at)
        return -EIO;
    for (size_t i = 0; i < h->n; i++) {
        const struct fobj *f = &h->o[i];

        if (f->addr != addr)
            continue;
        memset(out, 0, sizeof *out);
        out->address = addr;
        out->type = f->type;
        out->type_len = strlen(f->type);
        out->name = f->name;
        out->name_len = f->name ? strlen(f->name) : 0;
        out->value = f->value;
        out->value_len = f->value ? strlen(f->value) : 0;
        out->vkind = f->vkind;
        out->len = f->len;
        out->child_at = ML_PATH_NOT_HELD;
        for (size_t j = 0; child != 0 && j < f->nrefs; j++)
            if (f->refs[j] == child) {
                out->child_at = j;
                out->child_prev = j > 0 ? f->refs[j - 1] : 0;
                break;
            }
        return 0;
    }
    return -ENOENT;
}

#define NOLEN UINT64_MAX
#define S(a, v) { a, "str", NULL, v, (v) ? ML_VAL_STR : ML_VAL_NONE, \
                  (v) ? strlen(v) : 3, { 0 }, 0 }

/* module M (__main__) -> dict D {BUS: bus, _S: sessions}; bus (inline
 * values: [subscribers, L, type]) -> list L [x, y, listener]; sessions
 * {<data str>: s1, 'it\'s': s2, 42: s3, (tuple): s4, 'abcdef' cut: s5} */
static const struct fobj HEAP[] = {
    { 1, "module", "__main__", NULL, 0, NOLEN, { 2 }, 1 },
    { 2, "dict", NULL, NULL, 0, 2, { 3, 4, 5, 6 }, 4 },
    S(3, "BUS"),
    { 4, "EventBus", NULL, NULL, 0, NOLEN, { 7, 8, 99 }, 3 },
    S(5, "_S"),
    { 6, "dict", NULL, NULL, 0, 5, { 10, 11, 12, 13, 14, 15, 16, 17, 18, 19 }, 10 },
    S(7, "subscribers"),
    { 8, "list", NULL, NULL, 0, 3, { 20, 21, 22 }, 3 },
    { 10, "str", NULL, NULL, 0, 8, { 0 }, 0 },           /* a data key */
    { 11, "Session", NULL, NULL, 0, NOLEN, { 0 }, 0 },
    S(12, "it's"),
    { 13, "Session", NULL, NULL, 0, NOLEN, { 0 }, 0 },
    { 14, "int", NULL, "42", ML_VAL_INT, NOLEN, { 0 }, 0 },
    { 15, "Session", NULL, NULL, 0, NOLEN, { 0 }, 0 },
    { 16, "tuple", NULL, NULL, 0, 0, { 0 }, 0 },
    { 17, "Session", NULL, NULL, 0, NOLEN, { 0 }, 0 },
    { 18, "str", NULL, "abc", ML_VAL_STR, 6, { 0 }, 0 },  /* cut at 3 */
    { 19, "Session", NULL, NULL, 0, NOLEN, { 0 }, 0 },
    { 20, "Listener", NULL, NULL, 0, NOLEN, { 0 }, 0 },
    { 21, "Listener", NULL, NULL, 0, NOLEN, { 0 }, 0 },
    { 22, "Listener", NULL, NULL, 0, NOLEN, { 30 }, 1 },
    /* a listener's own __dict__ (materialised) with "cb" -> method */
    { 30, "dict", NULL, NULL, 0, 1, { 31, 32 }, 2 },
    S(31, "cb"),
    { 32, "method", NULL, NULL, 0, NOLEN, { 33, 22 }, 2 },
    { 33, "function", "on_event", NULL, 0, NOLEN, { 34 }, 1 },
    { 34, "code", "on_event", NULL, 0, NOLEN, { 0 }, 0 },
    /* a thread's frame with locals n, buf; a generator's local */
    { 41, "<thread frame>", "thread 'collector' in worker() app.py:42", NULL,
      0, 2, { 42, 43, 44, 45 }, 4 },
    S(42, "n"),
    { 43, "int", NULL, "7", ML_VAL_INT, NOLEN, { 0 }, 0 },
    S(44, "buf"),
    { 45, "bytearray", NULL, NULL, 0, 10, { 0 }, 0 },
    { 50, "generator", "gen() app.py:11", NULL, 0, 1, { 44, 45, 34 }, 3 },
    /* lru_cache: wrapper -> cache dict {77: result} */
    { 60, "functools._lru_cache_wrapper", NULL, NULL, 0, NOLEN, { 61, 33 }, 2 },
    { 61, "dict", NULL, NULL, 0, 1, { 62, 63 }, 2 },
    { 62, "int", NULL, "77", ML_VAL_INT, NOLEN, { 0 }, 0 },
    { 63, "bytearray", NULL, NULL, 0, 77, { 0 }, 0 },
    { 99, "type", "EventBus", NULL, 0, NOLEN, { 0 }, 0 },
};

static struct heap H = { HEAP, sizeof HEAP / sizeof HEAP[0], 0 };

/* The path of chain (root first) is want. */
static void
check_text(const uint64_t *chain, size_t n, const char *want)
{
    struct ml_path p;

    assert_int_equal(ml_path_build(chain, n, get, &H, &p), 0);
    assert_string_equal(p.text, want);
    assert_int_equal(p.nsteps, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(p.steps[i].address, chain[i]);
    ml_path_free(&p);
}

static void
test_paths_module_global_inline_attr_index(void **st)
{
    const uint64_t c[] = { 1, 2, 4, 8, 22 };
    struct ml_path p;

    (void)st;
    check_text(c, 5, "__main__.BUS.subscribers[2]");
    assert_int_equal(ml_path_build(c, 5, get, &H, &p), 0);
    assert_int_equal(p.steps[0].via, ML_VIA_ROOT);
    assert_string_equal(p.steps[0].key, "__main__");
    assert_int_equal(p.steps[1].via, ML_VIA_DICT);
    assert_int_equal(p.steps[2].via, ML_VIA_GLOBAL);
    assert_string_equal(p.steps[2].key, "BUS");
    assert_int_equal(p.steps[3].via, ML_VIA_ATTR);
    assert_string_equal(p.steps[3].key, "subscribers");
    assert_int_equal(p.steps[4].via, ML_VIA_INDEX);
    assert_int_equal(p.steps[4].index, 2);
    assert_string_equal(p.steps[4].type, "Listener");
    assert_string_equal(ml_path_via_name(p.steps[4].via), "index");
    ml_path_free(&p);
}

static void
test_paths_dict_keys_named_data_int_other_cut(void **st)
{
    const uint64_t data[] = { 1, 2, 6, 11 }, quote[] = { 1, 2, 6, 13 };
    const uint64_t num[] = { 1, 2, 6, 15 }, tup[] = { 1, 2, 6, 17 };
    const uint64_t cut[] = { 1, 2, 6, 19 }, key[] = { 1, 2, 6, 10 };
    struct ml_path p;

    (void)st;
    check_text(data, 4, "__main__._S[<str>]");
    check_text(quote, 4, "__main__._S['it\\'s']");
    check_text(num, 4, "__main__._S[42]");
    check_text(tup, 4, "__main__._S[<tuple>]");
    check_text(cut, 4, "__main__._S['abc'...]");
    check_text(key, 4, "__main__._S<key>");
    assert_int_equal(ml_path_build(data, 4, get, &H, &p), 0);
    assert_int_equal(p.steps[3].via, ML_VIA_KEY);
    assert_null(p.steps[3].key);
    assert_string_equal(p.steps[3].key_type, "str");
    ml_path_free(&p);
    assert_int_equal(ml_path_build(num, 4, get, &H, &p), 0);
    assert_string_equal(p.steps[3].key, "42");
    assert_int_equal(p.steps[3].key_kind, ML_VAL_INT);
    ml_path_free(&p);
}

static void
test_paths_instance_dict_and_method(void **st)
{
    const uint64_t c[] = { 1, 2, 4, 8, 22, 30, 32, 33 };

    (void)st;
    check_text(c, 8, "__main__.BUS.subscribers[2].cb.__func__");
}

static void
test_paths_thread_frame_and_generator_locals(void **st)
{
    const uint64_t t[] = { 41, 45 }, g[] = { 50, 45 };
    struct ml_path p;

    (void)st;
    check_text(t, 2, "thread 'collector' in worker() app.py:42, local 'buf'");
    assert_int_equal(ml_path_build(t, 2, get, &H, &p), 0);
    assert_int_equal(p.steps[1].via, ML_VIA_LOCAL);
    assert_string_equal(p.steps[1].key, "buf");
    ml_path_free(&p);
    /* a generator no one refers to: its name is the root's text */
    check_text(g, 2, "gen() app.py:11, generator in gen() app.py:11, local 'buf'");
}

static void
test_paths_lru_cache_and_unnamed_edges(void **st)
{
    const uint64_t c[] = { 60, 61, 63 }, u[] = { 50, 34 };

    (void)st;
    check_text(c, 3, "functools.lru_cache(functools._lru_cache_wrapper@0x3c)[77]");
    check_text(u, 2, "gen() app.py:11<code>");
}

static void
test_paths_errors(void **st)
{
    const uint64_t c[] = { 1, 2, 4 }, missing[] = { 1, 1000 };
    struct ml_path p;
    struct heap bad = H;

    (void)st;
    assert_int_equal(ml_path_build(c, 0, get, &H, &p), -EINVAL);
    assert_int_equal(ml_path_build(missing, 2, get, &H, &p), -ENOENT);
    assert_null(p.text);
    bad.fail_at = 3;        /* the key of the second step */
    assert_int_equal(ml_path_build(c, 3, get, &bad, &p), -EIO);
    assert_null(p.steps);
}

static void
test_paths_what_values_none_sends(void **st)
{
    char longest[101];

    (void)st;
    assert_true(ml_is_code_name("subscribers", 11));
    assert_true(ml_is_code_name("_x9", 3));
    assert_false(ml_is_code_name("", 0));
    assert_false(ml_is_code_name("9x", 2));
    assert_false(ml_is_code_name("a-b", 3));
    assert_false(ml_is_code_name("a b", 3));
    assert_false(ml_is_code_name("caf\xc3\xa9", 5));
    memset(longest, 'a', sizeof longest);
    assert_true(ml_is_code_name(longest, 100));
    assert_false(ml_is_code_name(longest, 101));
    assert_true(ml_is_small_int_text("0", 1));
    assert_true(ml_is_small_int_text("2147483647", 10));
    assert_true(ml_is_small_int_text("-2147483647", 11));
    assert_false(ml_is_small_int_text("2147483648", 10));
    assert_false(ml_is_small_int_text("-2147483648", 11));
    assert_false(ml_is_small_int_text("12345678901", 11));
    assert_false(ml_is_small_int_text("-", 1));
    assert_false(ml_is_small_int_text("", 0));
    assert_false(ml_is_small_int_text("1.5", 3));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths_module_global_inline_attr_index),
        cmocka_unit_test(test_paths_dict_keys_named_data_int_other_cut),
        cmocka_unit_test(test_paths_instance_dict_and_method),
        cmocka_unit_test(test_paths_thread_frame_and_generator_locals),
        cmocka_unit_test(test_paths_lru_cache_and_unnamed_edges),
        cmocka_unit_test(test_paths_errors),
        cmocka_unit_test(test_paths_what_values_none_sends),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
