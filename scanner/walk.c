/* SPDX-License-Identifier: MIT
 *
 * walk.c -- the heap walks and the writing of one dump line.
 *
 * The line format is defined in docs/dump-format.md; keep the two in step.
 *
 * How the walk finds every object exactly once (ML_WALK_ALL): the GC
 * objects come from the collector's own lists (cpython.c), each once by
 * construction.  Every other object -- str, int, float, bytes, untracked
 * tuples and dicts, code objects, static types -- is reached from them; those
 * are deduplicated in a compact address set (common/addrset.h), which is
 * the walk's only memory that grows with the heap.
 *
 * Each object is handled in two passes over its referents: the first
 * writes its line (refs last, streamed, so a dict of ten million items
 * needs no buffer), the second finds the referents that need a line of
 * their own.  Those are written at once, and their own referents are
 * followed to a small fixed depth by nesting; deeper containers go to an
 * explicit stack.  So the C stack stays bounded whatever the heap's shape,
 * and the explicit stack only holds untracked containers nested more than
 * ML_NEST_MAX deep.
 *
 * Rules for everything called from here: no Python code runs and no
 * Python object is created or destroyed (the one exception: the int that
 * an extension type's C __sizeof__ returns, objinfo.c), no malloc per
 * object.  Special-size callables, which are Python code, run between a
 * collecting pass and the real one (ml__walk), never inside a pass.
 * Automatic collection is off for the whole walk.
 */
#include "pyinc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "addrset.h"
#include "cpython.h"
#include "ml-common.h"
#include "objinfo.h"
#include "protocol.h"
#include "traces.h"
#include "walk.h"

/* Nesting depth of the second pass before the explicit stack is used.
 * Each level costs one C frame of a few hundred bytes. */
#define ML_NEST_MAX 32

/* Characters of a str or bytes value kept in the dump (meliae's rule),
 * with ML_VALUES_TRUNCATED. */
#define ML_VALUE_MAX_CHARS 100

/* The largest int values "none" sends (common/paths.h). */
#define ML_SMALL_INT_MAX 2147483647LL

/* The type of the synthetic line of a thread's frame. */
#define ML_THREAD_FRAME_TYPE "<thread frame>"

/* Characters of a name or type name kept in the dump. */
#define ML_NAME_MAX_CHARS 1000

/* An object whose size a special-size callable gives. */
struct pending {
    PyObject *op;               /* strong references, until the walk ends */
    PyObject *callable;
};

struct walk {
    enum ml_walk_mode mode;
    struct ml_jsonw *w;             /* NULL: count only */
    enum ml_values values;
    size_t value_max;               /* characters of str and bytes values */
    const struct ml_special *specials;
    size_t nspecials;
    struct ml_addrset seen;
    PyObject **stack;               /* untracked containers to expand */
    size_t nstack;
    size_t capstack;
    int depth;
    int nref;                       /* refs written on the current line */
    PyTypeObject *cur_type;         /* type of the object being expanded */
    int err;                        /* first error; stops the walk */
    struct ml_walk_result res;
    /* Special-size callables, run between a collecting pass and the
     * walk itself. */
    int collecting;
    struct pending *pend;
    size_t npend;
    size_t cappend;
    uint64_t *tkeys;
    Py_ssize_t *tvals;
    size_t tmask;
    /* Birth sites (traces.h): noted by ml__walk_traces's pass; the
     * table ml__traces_ready points to is written by whole-heap walks. */
    struct ml_traces *trace_collect;
    const struct ml_traces *trace_write;
};

/* ------------------------------------------------------------------ */
/* Sizes, with the user's special cases.                               */

static const struct ml_special *
find_special(const struct ml_special *sp, size_t n, PyTypeObject *tp)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(sp[i].name, tp->tp_name) == 0)
            return &sp[i];
    return NULL;
}

/* Calls a special-size callable: the size, ML_SIZE_NATURAL when it
 * returned -1 (meliae 0.5's "size it as usual"), or -2 with an exception
 * set on failure. */
#define ML_SIZE_NATURAL (-1)
static Py_ssize_t
call_special(const struct ml_special *s, PyObject *op)
{
    PyObject *r = PyObject_CallOneArg(s->callable, op);
    Py_ssize_t n;

    if (r == NULL)
        return -2;
    n = PyLong_AsSsize_t(r);
    Py_DECREF(r);
    if (n == -1 && PyErr_Occurred())
        return -2;
    if (n < ML_SIZE_NATURAL) {
        PyErr_Format(PyExc_ValueError,
                     "special size for '%s' must be >= 0 (or -1 for the "
                     "usual size), got %zd", Py_TYPE(op)->tp_name, n);
        return -2;
    }
    return n;
}

Py_ssize_t
ml__object_size(PyObject *op, const struct ml_special *specials,
                size_t nspecials)
{
    const struct ml_special *s;
    Py_ssize_t n;

    ml__kind_reset();
    s = find_special(specials, nspecials, Py_TYPE(op));
    if (s == NULL)
        return (Py_ssize_t)ml__size_of(op, ml__kind(Py_TYPE(op)));
    if (s->callable == NULL)
        return s->size;
    n = call_special(s, op);
    if (n == ML_SIZE_NATURAL)
        return (Py_ssize_t)ml__size_of(op, ml__kind(Py_TYPE(op)));
    return n < 0 ? -1 : n;
}

/* Sizes computed by special-size callables before the walk, by address.
 * Open addressing; keys are addresses + 1 (0 = empty). */
static Py_ssize_t
precomputed(const struct walk *wk, PyObject *op)
{
    uint64_t key = (uint64_t)(uintptr_t)op + 1;

    if (wk->tkeys == NULL)
        return -1;
    for (size_t i = ((uintptr_t)op >> 4) & wk->tmask; wk->tkeys[i] != 0;
         i = (i + 1) & wk->tmask)
        if (wk->tkeys[i] == key)
            return wk->tvals[i];
    return -1;
}

/* The size of op in this walk.  A callable's result comes from the table
 * filled before the walk (no Python code runs during the walk); in the
 * collecting pass the object is only noted.  Returns -1 on -ENOMEM. */
static Py_ssize_t
object_size(struct walk *wk, PyObject *op, enum ml_kind kind)
{
    const struct ml_special *s = NULL;
    Py_ssize_t n;

    if (wk->nspecials > 0)
        s = find_special(wk->specials, wk->nspecials, Py_TYPE(op));
    if (s == NULL)
        return (Py_ssize_t)ml__size_of(op, kind);
    if (s->callable == NULL)
        return s->size;
    if (wk->collecting) {
        if (wk->npend == wk->cappend) {
            size_t ncap = wk->cappend ? wk->cappend * 2 : 64;
            struct pending *np = realloc(wk->pend, ncap * sizeof(*np));

            if (np == NULL)
                return -1;
            wk->pend = np;
            wk->cappend = ncap;
        }
        wk->pend[wk->npend].op = Py_NewRef(op);
        wk->pend[wk->npend].callable = Py_NewRef(s->callable);
        wk->npend++;
    } else if ((n = precomputed(wk, op)) >= 0) {
        return n;
    }
    return (Py_ssize_t)ml__size_of(op, kind);
}

/* ------------------------------------------------------------------ */
/* Writing one line.                                                   */

#define PUT_LIT(w, s) ml_jsonw_put((w), (s), sizeof(s) - 1)

static void
put_pystr(struct ml_jsonw *w, PyObject *s, size_t maxchars)
{
    if (!PyUnicode_IS_READY(s)) {
        /* A legacy string not yet made ready: readying it allocates. */
        PUT_LIT(w, "\"\"");
        return;
    }
    ml_jsonw_str_ucs(w, PyUnicode_KIND(s), PyUnicode_DATA(s),
                     (size_t)PyUnicode_GET_LENGTH(s), maxchars);
}

static void
put_name(struct ml_jsonw *w, PyObject *op, enum ml_kind kind)
{
    PyObject *name = NULL;
    const char *cname = NULL;

    switch (kind) {
    case ML_K_MODULE:
        name = ml__module_name(op);
        break;
    case ML_K_FUNCTION:
        name = ((PyFunctionObject *)op)->func_name;
        break;
    case ML_K_CODE:
        name = ml__code_name(op);
        break;
    case ML_K_TYPE:
        cname = ((PyTypeObject *)op)->tp_name;
        break;
    case ML_K_CFUNCTION:
        cname = ((PyCFunctionObject *)op)->m_ml->ml_name;
        break;
    default:
        return;
    }
    /* A name with a NUL (a function's __name__ may have one) is left
     * out: readers refuse it (docs/dump-format.md), and one odd name must
     * not cost the whole snapshot.  FindChar neither allocates nor runs
     * Python code. */
    if (name != NULL && PyUnicode_Check(name) && PyUnicode_IS_READY(name)
        && PyUnicode_FindChar(name, 0, 0, PyUnicode_GET_LENGTH(name), 1) >= 0)
        return;
    if (name != NULL && PyUnicode_Check(name)) {
        PUT_LIT(w, ", \"name\": ");
        put_pystr(w, name, ML_NAME_MAX_CHARS);
    } else if (cname != NULL) {
        PUT_LIT(w, ", \"name\": ");
        ml_jsonw_str_utf8(w, cname, strlen(cname), ML_NAME_MAX_CHARS);
    }
}

static void
put_value(struct ml_jsonw *w, PyObject *op, enum ml_kind kind,
          size_t maxchars)
{
    switch (kind) {
    case ML_K_STR:
        if (PyUnicode_IS_READY(op)) {
            PUT_LIT(w, ", \"value\": ");
            put_pystr(w, op, maxchars);
        }
        break;
    case ML_K_BYTES:
        PUT_LIT(w, ", \"value\": ");
        ml_jsonw_str_ucs(w, 1, PyBytes_AS_STRING(op),
                         (size_t)PyBytes_GET_SIZE(op), maxchars);
        break;
    case ML_K_INT: {
        int overflow = 0;
        /* Neither allocates nor runs code for an int (sub)class. */
        long long v = PyLong_AsLongLongAndOverflow(op, &overflow);

        if (overflow == 0 && !(v == -1 && PyErr_Occurred())) {
            PUT_LIT(w, ", \"value\": ");
            ml_jsonw_i64(w, v);
        }
        break;
    }
    case ML_K_BOOL:
        if (op == Py_True)
            PUT_LIT(w, ", \"value\": true");
        else
            PUT_LIT(w, ", \"value\": false");
        break;
    case ML_K_FLOAT:
        PUT_LIT(w, ", \"value\": ");
        ml_jsonw_double(w, PyFloat_AS_DOUBLE(op));
        break;
    case ML_K_NONE:
        PUT_LIT(w, ", \"value\": null");
        break;
    default:
        break;
    }
}

/* A str that names code, not data: interned (the compiler interns the
 * names of attributes, globals, functions, keywords and locals; a str
 * made at run time, a session id read from a socket, is not), exact
 * type str, ASCII, a Python identifier, at most ML_CODE_NAME_MAX
 * characters.  With values "none" these are the only str values sent
 * (docs/dump-format.md, "Names of code"): they turn dict keys and
 * attribute names into paths. */
#define ML_CODE_NAME_MAX 100
static int
is_code_name(PyObject *op)
{
    const unsigned char *p;
    Py_ssize_t n;

    if (!PyUnicode_CheckExact(op) || !PyUnicode_IS_READY(op)
            || !PyUnicode_CHECK_INTERNED(op) || !PyUnicode_IS_ASCII(op))
        return 0;
    n = PyUnicode_GET_LENGTH(op);
    p = (const unsigned char *)PyUnicode_DATA(op);
    if (n == 0 || n > ML_CODE_NAME_MAX || (p[0] >= '0' && p[0] <= '9'))
        return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char ch = p[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
              || (ch >= '0' && ch <= '9') || ch == '_'))
            return 0;
    }
    return 1;
}

static void put_gen_name(struct ml_jsonw *w, PyObject *op);

/* An int that values "none" sends (a dict's key as [42] in a path): an
 * exact int from -2^31 + 1 to 2^31 - 1.  Larger ones may be data (a card
 * number), and are left out like every str that is not a name. */
static int
is_small_int(PyObject *op)
{
    int overflow = 0;
    long long v;

    if (!PyLong_CheckExact(op))
        return 0;
    v = PyLong_AsLongLongAndOverflow(op, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return overflow == 0 && v >= -ML_SMALL_INT_MAX && v <= ML_SMALL_INT_MAX;
}

static int
put_ref(PyObject *ref, void *arg)
{
    struct walk *wk = arg;
    char *p = ml_jsonw_reserve(wk->w, 22);

    if (p == NULL)
        return 0;       /* the error is sticky in w; the line ends anyway */
    if (wk->nref++ > 0) {
        *p++ = ',';
        *p++ = ' ';
        ml_jsonw_commit(wk->w, 2);
    }
    ml_jsonw_commit(wk->w, ml_fmt_u64(p, (uint64_t)(uintptr_t)ref));
    return 0;
}

/* ", \"trace\": K": op's birth site, when tracemalloc has one. */
static void
put_trace(struct walk *wk, PyObject *op)
{
    int64_t id = ml__traces_find(wk->trace_write, op);

    if (id >= 0) {
        PUT_LIT(wk->w, ", \"trace\": ");
        ml_jsonw_u64(wk->w, (uint64_t)id);
    }
}

/* Writes op's line, or only counts it.  Returns 0 or a negative code. */
static int
emit(struct walk *wk, PyObject *op)
{
    enum ml_kind kind = ml__kind(Py_TYPE(op));
    Py_ssize_t size = object_size(wk, op, kind);
    struct ml_jsonw *w = wk->w;
    const struct ml_typeinfo *ti;
    Py_ssize_t len;
    int rc;

    if (size < 0)
        return -ENOMEM;
    wk->res.nobj++;
    wk->res.nbytes += (uint64_t)size;
    if (wk->trace_collect && ml__traces_note(wk->trace_collect, op) < 0)
        return -ENOMEM;
    if (w == NULL)
        return 0;

    PUT_LIT(w, "{\"address\": ");
    ml_jsonw_u64(w, (uint64_t)(uintptr_t)op);
    PUT_LIT(w, ", \"type\": ");
    ti = ml__typeinfo(Py_TYPE(op));
    if (ti->name_plain && ti->name_len <= ML_NAME_MAX_CHARS) {
        PUT_LIT(w, "\"");
        ml_jsonw_raw(w, Py_TYPE(op)->tp_name, ti->name_len);
        PUT_LIT(w, "\"");
    } else {
        ml_jsonw_str_utf8(w, Py_TYPE(op)->tp_name, ti->name_len,
                          ML_NAME_MAX_CHARS);
    }
    PUT_LIT(w, ", \"size\": ");
    ml_jsonw_u64(w, (uint64_t)size);
    if (kind == ML_K_GEN)
        put_gen_name(w, op);
    else
        put_name(w, op, kind);
    if ((len = ml__len_of(op, kind)) >= 0) {
        PUT_LIT(w, ", \"len\": ");
        ml_jsonw_u64(w, (uint64_t)len);
    }
    if (wk->values != ML_VALUES_NONE
            || (kind == ML_K_STR && is_code_name(op))
            || (kind == ML_K_INT && is_small_int(op)))
        put_value(w, op, kind, wk->value_max);
    if (wk->trace_write)
        put_trace(wk, op);
    PUT_LIT(w, ", \"refs\": [");
    wk->nref = 0;
    rc = ml__visit_refs(op, kind, put_ref, wk, 1);
    if (rc < 0)
        return rc;
    PUT_LIT(w, "]}\n");
    return w->err;
}

/* ------------------------------------------------------------------ */
/* Finding the objects that need a line.                               */

static int
push(struct walk *wk, PyObject *op)
{
    if (wk->nstack == wk->capstack) {
        size_t ncap = wk->capstack ? wk->capstack * 2 : 1024;
        PyObject **ns = realloc(wk->stack, ncap * sizeof(*ns));

        if (ns == NULL)
            return -ENOMEM;
        wk->stack = ns;
        wk->capstack = ncap;
    }
    wk->stack[wk->nstack++] = op;
    return 0;
}

/* Referents whose own referents can need lines.  Leaves (str, int,
 * float, bytes...) have none; numpy arrays have no tp_traverse but hold
 * their base and the objects of object dtypes (numpy.c). */
static int
may_have_refs(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);

    return tp->tp_traverse != NULL || tp == &PyCode_Type
        || PyType_Check(op) || ml__kind(tp) == ML_K_NDARRAY;
}

static int expand(struct walk *wk, PyObject *op);

/* visitproc of the second pass.  Non-zero stops the traverse. */
static int
expand_ref(PyObject *ref, void *arg)
{
    struct walk *wk = arg;
    int rc;

    switch (wk->mode) {
    case ML_WALK_GC:
        /* Direct untracked referents, duplicates allowed, no seen-set. */
        if (ml__gc_is_tracked(ref))
            return 0;
        wk->err = emit(wk, ref);
        return wk->err;
    case ML_WALK_ALL:
        if (ml__gc_is_tracked(ref))
            return 0;       /* its line comes from the collector's lists */
        break;
    case ML_WALK_CLOSURE:
    case ML_WALK_PENDING:
        /* An instance's own type is listed in its refs but not followed:
         * through the type and its module, the closure of any instance
         * would be most of the heap, and get_recursive_size(cache) would
         * not measure the cache. */
        if (ref == (PyObject *)wk->cur_type)
            return 0;
        break;
    }
    rc = ml_addrset_add(&wk->seen, (uintptr_t)ref);
    if (rc <= 0) {
        wk->err = rc;
        return rc;
    }
    if ((wk->err = emit(wk, ref)) < 0)
        return wk->err;
    if (!may_have_refs(ref))
        return 0;
    if (wk->depth < ML_NEST_MAX) {
        wk->depth++;
        rc = expand(wk, ref);
        wk->depth--;
    } else {
        rc = push(wk, ref);
    }
    if (rc < 0)
        wk->err = rc;
    return rc;
}

static int
expand(struct walk *wk, PyObject *op)
{
    PyTypeObject *outer = wk->cur_type;
    int rc;

    wk->cur_type = Py_TYPE(op);
    rc = ml__visit_refs(op, ml__kind(Py_TYPE(op)), expand_ref, wk, 0);
    wk->cur_type = outer;
    return wk->err < 0 ? wk->err : rc;
}

static int
drain(struct walk *wk)
{
    int rc = 0;

    while (rc == 0 && wk->nstack > 0)
        rc = expand(wk, wk->stack[--wk->nstack]);
    return rc;
}

/* ml_gc_fn for the collector's lists. */
static int
visit_gc_object(PyObject *op, void *arg)
{
    struct walk *wk = arg;
    int rc;

    if ((rc = emit(wk, op)) < 0)
        return rc;
    if ((rc = expand(wk, op)) < 0)
        return rc;
    return drain(wk);
}

/* ------------------------------------------------------------------ */
/* Thread stacks as roots (docs/dump-format.md, "Thread frames").      */

/* Appends the UTF-8 of str s to b (at most cap - *n bytes), a NUL as
 * '?' (a name may not hold one), a lone surrogate as '?'.  Reads the
 * str's own storage: no allocation, unlike PyUnicode_AsUTF8. */
static void
buf_pystr(char *b, size_t *n, size_t cap, PyObject *s)
{
    if (s == NULL || !PyUnicode_Check(s) || !PyUnicode_IS_READY(s))
        return;
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);

    for (Py_ssize_t i = 0; i < PyUnicode_GET_LENGTH(s); i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        char u[4];
        size_t k;

        if (c == 0 || (c >= 0xD800 && c <= 0xDFFF))
            c = '?';
        if (c < 0x80) {
            u[0] = (char)c;
            k = 1;
        } else if (c < 0x800) {
            u[0] = (char)(0xC0 | (c >> 6));
            u[1] = (char)(0x80 | (c & 0x3F));
            k = 2;
        } else if (c < 0x10000) {
            u[0] = (char)(0xE0 | (c >> 12));
            u[1] = (char)(0x80 | ((c >> 6) & 0x3F));
            u[2] = (char)(0x80 | (c & 0x3F));
            k = 3;
        } else {
            u[0] = (char)(0xF0 | (c >> 18));
            u[1] = (char)(0x80 | ((c >> 12) & 0x3F));
            u[2] = (char)(0x80 | ((c >> 6) & 0x3F));
            u[3] = (char)(0x80 | (c & 0x3F));
            k = 4;
        }
        if (*n + k > cap)
            return;
        memcpy(b + *n, u, k);
        *n += k;
    }
}

static void
buf_lit(char *b, size_t *n, size_t cap, const char *s)
{
    for (; *s != '\0' && *n < cap; s++)
        b[(*n)++] = *s;
}

/* The str value of the entry keyed "name" among the items of dict d:
 * PyDict_Next and a compare, neither of which allocates nor runs Python
 * code (a str key's compare is C). */
static PyObject *
dict_get_ascii(PyObject *d, const char *name)
{
    Py_ssize_t pos = 0;
    PyObject *k, *v;

    if (d == NULL || !PyDict_Check(d))
        return NULL;
    while (PyDict_Next(d, &pos, &k, &v))
        if (PyUnicode_CheckExact(k) && PyUnicode_IS_READY(k)
                && PyUnicode_CompareWithASCIIString(k, name) == 0)
            return v;
    return NULL;
}

/* Finding a Thread's "_name" among its refs: its __dict__, or the
 * (name, value) pairs of its inline values. */
struct attr_find {
    const char *name;
    PyObject *prev;
    PyObject *found;
};

static int
attr_visit(PyObject *ref, void *arg)
{
    struct attr_find *af = arg;

    if (PyDict_CheckExact(ref))
        af->found = dict_get_ascii(ref, af->name);
    else if (af->prev != NULL && PyUnicode_CheckExact(af->prev)
             && PyUnicode_IS_READY(af->prev)
             && PyUnicode_CompareWithASCIIString(af->prev, af->name) == 0)
        af->found = ref;
    af->prev = ref;
    return af->found != NULL;
}

/* threading's name of the thread ident (threading._active[ident]._name),
 * or NULL: read from sys.modules as it stands, running no Python code
 * (a forked child's walk may not). */
static PyObject *
thread_name(unsigned long ident)
{
    PyObject *mod = dict_get_ascii(PyImport_GetModuleDict(), "threading");
    PyObject *active, *k, *v;
    Py_ssize_t pos = 0;

    if (mod == NULL || !PyModule_Check(mod))
        return NULL;
    active = dict_get_ascii(PyModule_GetDict(mod), "_active");
    if (active == NULL || !PyDict_Check(active))
        return NULL;
    while (PyDict_Next(active, &pos, &k, &v)) {
        struct attr_find af = { "_name", NULL, NULL };

        if (!PyLong_CheckExact(k))
            continue;
        if (PyLong_AsUnsignedLong(k) != ident) {
            PyErr_Clear();
            continue;
        }
        ml__visit_refs(v, ml__kind(Py_TYPE(v)), attr_visit, &af, 0);
        return af.found != NULL && PyUnicode_Check(af.found) ? af.found : NULL;
    }
    return NULL;
}

/* "worker() app.py:42": the function's __qualname__, the base name of
 * its file, the line the frame is at. */
static void
frame_where(char *nb, size_t *n, size_t cap, const struct ml_frame *fr)
{
    PyObject *file = ml__code_filename(fr->code);
    size_t fstart;
    char num[24];

    buf_pystr(nb, n, cap, ml__code_qualname(fr->code));
    buf_lit(nb, n, cap, "() ");
    fstart = *n;
    buf_pystr(nb, n, cap, file);
    for (size_t i = *n; i > fstart; i--)
        if (nb[i - 1] == '/') {
            memmove(nb + fstart, nb + i, *n - i);
            *n -= i - fstart;
            break;
        }
    buf_lit(nb, n, cap, ":");
    num[ml_fmt_u64(num, (uint64_t)(fr->line < 0 ? 0 : fr->line))] = '\0';
    buf_lit(nb, n, cap, num);
}

/* A generator's or coroutine's "name": where its frame is, as a thread
 * frame's line says it ("worker() app.py:42"); none once finished. */
static void
put_gen_name(struct ml_jsonw *w, PyObject *op)
{
    struct ml_frame fr;
    char nb[ML_NAME_MAX_CHARS];
    size_t n = 0;

    if (!ml__gen_frame(op, &fr))
        return;
    frame_where(nb, &n, sizeof nb, &fr);
    PUT_LIT(w, ", \"name\": ");
    ml_jsonw_str_utf8(w, nb, n, ML_NAME_MAX_CHARS);
}

static int
put_local(PyObject *name, PyObject *value, void *arg)
{
    put_ref(name, arg);
    put_ref(value, arg);
    return 0;
}

static int
count_local(PyObject *name, PyObject *value, void *arg)
{
    (void)name;
    (void)value;
    (*(size_t *)arg)++;
    return 0;
}

static int
expand_local(PyObject *name, PyObject *value, void *arg)
{
    int rc = expand_ref(name, arg);

    return rc != 0 ? rc : expand_ref(value, arg);
}

/* One line per frame of every thread: a root that names the thread, the
 * function and the line, and refs its locals as (name, value) pairs. */
static int
emit_frame(const struct ml_frame *fr, void *arg)
{
    struct walk *wk = arg;
    struct ml_jsonw *w = wk->w;
    char nb[ML_NAME_MAX_CHARS];
    size_t n = 0, nloc = 0;
    PyObject *tn;
    char num[24];

    wk->res.nobj++;
    if (w == NULL)
        return 0;
    ml__frame_locals(fr, count_local, &nloc);
    tn = thread_name(fr->thread_id);
    buf_lit(nb, &n, sizeof nb, "thread ");
    if (tn != NULL) {
        buf_lit(nb, &n, sizeof nb, "'");
        buf_pystr(nb, &n, sizeof nb, tn);
        buf_lit(nb, &n, sizeof nb, "'");
    } else {
        num[ml_fmt_u64(num, (uint64_t)fr->thread_id)] = '\0';
        buf_lit(nb, &n, sizeof nb, num);
    }
    buf_lit(nb, &n, sizeof nb, " in ");
    frame_where(nb, &n, sizeof nb, fr);

    PUT_LIT(w, "{\"address\": ");
    ml_jsonw_u64(w, (uint64_t)(uintptr_t)fr->frame + 1);
    PUT_LIT(w, ", \"type\": \"" ML_THREAD_FRAME_TYPE "\", \"size\": 0, \"name\": ");
    ml_jsonw_str_utf8(w, nb, n, ML_NAME_MAX_CHARS);
    PUT_LIT(w, ", \"len\": ");
    ml_jsonw_u64(w, (uint64_t)nloc);
    PUT_LIT(w, ", \"refs\": [");
    wk->nref = 0;
    ml__frame_locals(fr, put_local, wk);
    PUT_LIT(w, "]}\n");
    if (w->err < 0)
        return w->err;
    /* the locals that the collector does not track get their lines */
    wk->cur_type = NULL;
    ml__frame_locals(fr, expand_local, wk);
    if (wk->err < 0)
        return wk->err;
    return drain(wk);
}

/* meliae 0.5's dump_all_referenced(..., is_pending=True): root is a list
 * of objects to start from, walked as one closure; the list itself is
 * neither written nor its type kept from being followed. */
static int
expand_pending(struct walk *wk, PyObject *root)
{
    int rc = ml_addrset_add(&wk->seen, (uintptr_t)root);

    if (rc < 0)
        return rc;
    wk->cur_type = NULL;
    rc = ml__visit_refs(root, ml__kind(Py_TYPE(root)), expand_ref, wk, 0);
    if (wk->err < 0)
        return wk->err;
    if (rc < 0)
        return rc;
    return drain(wk);
}

/* One pass over the heap.  wk's mode, writer and tables are set. */
static int
run_pass(struct walk *wk, PyObject *root)
{
    int rc;

    ml_addrset_init(&wk->seen);
    wk->nstack = 0;
    wk->err = 0;
    memset(&wk->res, 0, sizeof(wk->res));
    if (wk->mode == ML_WALK_CLOSURE) {
        rc = ml_addrset_add(&wk->seen, (uintptr_t)root);
        if (rc >= 0)
            rc = emit(wk, root);
        if (rc >= 0)
            rc = expand(wk, root);
        if (rc >= 0)
            rc = drain(wk);
    } else if (wk->mode == ML_WALK_PENDING) {
        rc = expand_pending(wk, root);
    } else {
        rc = 0;
        if (wk->mode == ML_WALK_ALL)
            rc = ml__frames_foreach(emit_frame, wk);
        if (rc == 0)
            rc = ml__gc_foreach(visit_gc_object, wk);
    }
    ml_addrset_free(&wk->seen);
    return rc > 0 ? 0 : rc;
}

/* Runs the special-size callables on the objects the collecting pass
 * found, with no walk in progress, and fills the table.  0, -ENOMEM, or
 * ML_EPYTHON with the callable's exception set. */
static int
run_callables(struct walk *wk)
{
    size_t cap = 16;

    while (cap < wk->npend * 2)
        cap *= 2;
    wk->tkeys = calloc(cap, sizeof(*wk->tkeys));
    wk->tvals = malloc(cap * sizeof(*wk->tvals));
    if (wk->tkeys == NULL || wk->tvals == NULL)
        return -ENOMEM;
    wk->tmask = cap - 1;
    for (size_t k = 0; k < wk->npend; k++) {
        struct ml_special s = { NULL, 0, wk->pend[k].callable };
        PyObject *op = wk->pend[k].op;
        /* ML_SIZE_NATURAL is stored as is: precomputed() then answers
         * "not in the table", and the usual size is used. */
        Py_ssize_t n = call_special(&s, op);
        size_t i;

        if (n < ML_SIZE_NATURAL)
            return ML_EPYTHON;
        for (i = ((uintptr_t)op >> 4) & wk->tmask;
             wk->tkeys[i] != 0 && wk->tkeys[i] != (uint64_t)(uintptr_t)op + 1;
             i = (i + 1) & wk->tmask)
            ;
        wk->tkeys[i] = (uint64_t)(uintptr_t)op + 1;
        wk->tvals[i] = n;
    }
    return 0;
}

int
ml__walk(enum ml_walk_mode mode, PyObject *root, struct ml_jsonw *w,
         enum ml_values values, const struct ml_special *specials,
         size_t nspecials, struct ml_walk_result *res)
{
    struct walk wk;
    int rc = 0, gc_was, has_callables = 0;
    const struct ml_traces *traces = NULL;

    memset(&wk, 0, sizeof(wk));
    wk.mode = mode;
    wk.values = values;
    /* "full" is cut at the protocol's value limit (characters, as jsonw
     * counts them): the daemon reads a line's head, value included, into
     * a bounded buffer (docs/protocol.md, "Long lines"). */
    wk.value_max = values == ML_VALUES_FULL ? ML_PROTO_MAX_VALUE
                                            : ML_VALUE_MAX_CHARS;
    wk.specials = specials;
    wk.nspecials = nspecials;
    for (size_t i = 0; i < nspecials; i++)
        has_callables |= specials[i].callable != NULL;
    ml__kind_reset();

    /* No collection may start while the walk holds borrowed pointers into
     * the collector's lists: C __sizeof__ functions of extension types
     * can allocate.  The caller's setting comes back afterwards. */
    gc_was = ml__gc_disable();

    /* Birth sites: whole-heap dumps, when ml__walk_traces prepared them
     * (traces.h). */
    if (mode == ML_WALK_ALL && w != NULL && ml__traces_ready != NULL
        && ml__traces_ready->keys != NULL)
        traces = ml__traces_ready;

    if (has_callables) {
        /* Special-size callables are Python code: run them on the objects
         * a first pass finds, between the passes, never inside a walk. */
        wk.collecting = 1;
        rc = run_pass(&wk, root);
        wk.collecting = 0;
        if (rc == 0)
            rc = run_callables(&wk);
        ml__kind_reset();
    }
    if (rc == 0) {
        wk.w = w;
        /* the table first: readers know every id an object line names */
        if (traces != NULL) {
            wk.trace_write = traces;
            rc = ml__traces_write_table(traces, w);
        }
        if (rc == 0)
            rc = run_pass(&wk, root);
    }
    if (rc == 0 && w != NULL)
        rc = ml_jsonw_flush(w);

    ml__gc_restore(gc_was);
    *res = wk.res;
    for (size_t k = 0; k < wk.npend; k++) {
        Py_DECREF(wk.pend[k].op);
        Py_DECREF(wk.pend[k].callable);
    }
    free(wk.pend);
    free(wk.tkeys);
    free(wk.tvals);
    free(wk.stack);
    ml__refs_release();
    return rc;
}

int
ml__walk_traces(struct ml_traces *t, PyObject *resolver)
{
    struct walk wk;
    int rc, gc_was;

    memset(&wk, 0, sizeof(wk));
    memset(t, 0, sizeof(*t));
    wk.mode = ML_WALK_ALL;
    wk.values = ML_VALUES_NONE;
    wk.trace_collect = t;
    ml__kind_reset();
    gc_was = ml__gc_disable();
    rc = run_pass(&wk, NULL);
    /* Nothing ran since the pass: every noted object is alive. */
    if (rc == 0)
        rc = ml__traces_lookup(t, resolver);
    ml__gc_restore(gc_was);
    free(wk.stack);
    ml__refs_release();
    free(t->objs);
    t->objs = NULL;
    t->nobjs = t->capobjs = 0;
    if (rc != 0)
        ml__traces_free(t);
    return rc;
}
