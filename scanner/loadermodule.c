/* SPDX-License-Identifier: MIT
 *
 * loadermodule.c -- meliae._loader: the Python face of the C dump graph
 * (common/graph.h) and line parser (common/dumpline.h).
 *
 * One type, Graph: feed it bytes (or a path), finish it, then query it by
 * object index.  No Python object exists per dumped object; meliae.loader
 * builds its lazy MemObject proxies on top of these index accessors.
 * Offline analysis: everything runs with the GIL held.
 */
#include "pyinc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <sys/stat.h>

#include "birthsites.h"
#include "collapse.h"
#include "dominators.h"
#include "dumpline.h"
#include "graph.h"
#include "graph_diff.h"
#include "graph_path.h"
#include "ldfeed.h"
#include "ldtraces.h"
#include "ml-common.h"

#define CHUNK (1 << 20)

typedef struct {
    PyObject_HEAD
    struct ml_graph g;
    struct ldfeed ld;           /* lines -> g; errors='skip' is ld.skip */
    int finished;
    int expensive_removed;      /* remove_expensive_references() was run */
    struct ml_dom dom;          /* compute_retained(); idom NULL until then */
    struct ldtb tb;             /* the traceback table (birth sites), taken
                                 * from ld at finish() */
} GraphObject;

static PyTypeObject Graph_Type;

/* ---- loading ---------------------------------------------------------- */

/* Gives the free pages inside the heap back to the system: the arrays
 * grew by doubling and the old copies, freed, left holes that glibc keeps
 * resident (4 bytes an object) until asked. */
static void
trim_heap(void)
{
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

static int
raise_rc(int rc)
{
    if (rc == -ENOMEM)
        PyErr_NoMemory();
    else if (rc == ML_ETOOBIG)
        PyErr_SetString(PyExc_OverflowError,
                        "dump too big (more than 2^32 - 2 objects or a 4 GiB string arena)");
    else
        PyErr_Format(PyExc_RuntimeError, "meliae: %s", ml_strerror(rc));
    return -1;
}

/* The exception for what stopped self->ld (which then goes on, as a
 * feed after an error always could). */
static int
raise_ld(GraphObject *self)
{
    int rc = self->ld.err_rc;

    self->ld.err_rc = 0;
    if (rc == ML_EPROTO) {
        PyErr_Format(PyExc_ValueError, "line %llu: %s", self->ld.err_line,
                     self->ld.err_msg);
        return -1;
    }
    if (rc == 0)
        return 0;
    if (rc > -30000 && rc != -ENOMEM) {     /* -errno: a read error */
        errno = -rc;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return raise_rc(rc);
}

static int
check_open(GraphObject *self)
{
    if (self->finished) {
        PyErr_SetString(PyExc_ValueError, "graph already finished");
        return -1;
    }
    return 0;
}

static int
feed_buf(GraphObject *self, const char *s, size_t n)
{
    if (ldfeed_feed(&self->ld, s, n) < 0)
        return raise_ld(self);
    return 0;
}

static PyObject *
Graph_feed(GraphObject *self, PyObject *arg)
{
    Py_buffer view;
    int rc;

    if (check_open(self) < 0)
        return NULL;
    if (PyUnicode_Check(arg)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(arg, &n);

        if (s == NULL)
            return NULL;
        if (feed_buf(self, s, (size_t)n) < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    rc = feed_buf(self, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
Graph_finish(GraphObject *self, PyObject *unused)
{
    int rc;

    if (self->finished)
        Py_RETURN_NONE;
    if (ldfeed_end(&self->ld) < 0) {
        raise_ld(self);
        return NULL;
    }
    if ((rc = ml_graph_finish(&self->g)) < 0) {
        raise_rc(rc);
        return NULL;
    }
    self->finished = 1;
    self->tb = self->ld.tb;     /* the table outlives the parser */
    ldtb_init(&self->ld.tb);
    ldtb_sort(&self->tb);
    ldfeed_free(&self->ld);
    trim_heap();
    Py_RETURN_NONE;
}

/* Calls progress(bytes_read, nobjects) if given; -1 if it raised. */
static int
report(PyObject *progress, unsigned long long nread, size_t nobj)
{
    PyObject *r;

    if (progress == NULL || progress == Py_None)
        return 0;
    r = PyObject_CallFunction(progress, "KK", nread,
                              (unsigned long long)nobj);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

static PyObject *
Graph_load_file(GraphObject *self, PyObject *args, PyObject *kw)
{
    static char k_path[] = "path", k_progress[] = "progress";
    static char *kwlist[] = {k_path, k_progress, NULL};
    PyObject *path = NULL, *progress = NULL;
    FILE *f = NULL;
    char *in = NULL, *out = NULL;
    z_stream z;
    int zinit = 0, gz = 0, ok = 0, in_member = 0, split = 0;
    unsigned long long nread = 0, limit = ~0ull;
    struct ldfeed_split sp;
    struct stat st;
    size_t n;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|O:load_file", kwlist,
                                     PyUnicode_FSConverter, &path, &progress))
        return NULL;
    if (check_open(self) < 0)
        goto out;
    f = fopen(PyBytes_AS_STRING(path), "rb");
    if (f == NULL) {
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
        goto out;
    }
    in = PyMem_Malloc(CHUNK);
    out = PyMem_Malloc(CHUNK);
    if (in == NULL || out == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    memset(&z, 0, sizeof(z));
    for (int first = 1;; first = 0) {
        n = fread(in, 1, limit - nread < CHUNK ? (size_t)(limit - nread) : CHUNK, f);
        if (n == 0) {
            if (ferror(f)) {
                PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
                goto out;
            }
            break;
        }
        nread += n;
        if (first && n >= 2 && (unsigned char)in[0] == 0x1f
                && (unsigned char)in[1] == 0x8b) {
            gz = 1;
            if (inflateInit2(&z, 15 + 32) != Z_OK) {
                PyErr_NoMemory();
                goto out;
            }
            zinit = 1;
            in_member = 1;
        }
        if (first && !gz && fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode)) {
            /* A plain file: a thread parses its second half meanwhile. */
            int rc = ldfeed_split_start(&sp, fileno(f),
                                        (unsigned long long)st.st_size,
                                        self->ld.skip);

            if (rc < 0) {
                errno = -rc;
                PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
                goto out;
            }
            if (rc > 0) {
                split = 1;
                limit = sp.at;
            }
        }
        if (!gz) {
            if (feed_buf(self, in, n) < 0)
                goto out;
        } else {
            z.next_in = (Bytef *)in;
            z.avail_in = (uInt)n;
            do {
                int zr;

                if (!in_member) {
                    if (inflateReset(&z) != Z_OK) {
                        PyErr_SetString(PyExc_ValueError, "gzip: reset failed");
                        goto out;
                    }
                    in_member = 1;
                }
                z.next_out = (Bytef *)out;
                z.avail_out = CHUNK;
                zr = inflate(&z, Z_NO_FLUSH);
                if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) {
                    PyErr_Format(PyExc_ValueError, "gzip: %s",
                                 z.msg ? z.msg : "corrupt data");
                    goto out;
                }
                if (feed_buf(self, out, CHUNK - z.avail_out) < 0)
                    goto out;
                if (zr == Z_STREAM_END) {
                    /* Concatenated members are read on, as gzip does. */
                    in_member = 0;
                    continue;
                }
                if (zr == Z_BUF_ERROR)
                    break;
            } while (z.avail_in > 0 || z.avail_out == 0);
        }
        if (report(progress, nread + (split ? __atomic_load_n(&sp.nread, __ATOMIC_RELAXED) : 0),
                   self->g.n) < 0)
            goto out;
        if (PyErr_CheckSignals() < 0)
            goto out;
    }
    if (split) {
        Py_BEGIN_ALLOW_THREADS
        ldfeed_split_join(&sp, 0);
        Py_END_ALLOW_THREADS
        split = 0;
        nread += sp.nread;
        if (ldfeed_split_merge(&self->ld, &sp) < 0) {
            raise_ld(self);
            goto out;
        }
        if (report(progress, nread, self->g.n) < 0)
            goto out;
    }
    if (gz && in_member) {
        PyErr_SetString(PyExc_ValueError,
                        "gzip: compressed data ends early (the dump was cut short)");
        goto out;
    }
    ok = 1;
out:
    if (split) {                /* an error in the first half */
        Py_BEGIN_ALLOW_THREADS
        ldfeed_split_join(&sp, 1);
        Py_END_ALLOW_THREADS
        ldfeed_split_free(&sp);
    }
    if (zinit)
        inflateEnd(&z);
    if (f != NULL)
        fclose(f);
    PyMem_Free(in);
    PyMem_Free(out);
    Py_XDECREF(path);
    if (!ok)
        return NULL;
    return PyLong_FromUnsignedLongLong(nread);
}

/* ---- queries ------------------------------------------------------------ */

static int
check_finished(GraphObject *self)
{
    if (!self->finished) {
        PyErr_SetString(PyExc_ValueError, "graph not finished: call finish()");
        return -1;
    }
    return 0;
}

/* Parses an object index argument; -1 with IndexError when out of range. */
static int
get_index(GraphObject *self, PyObject *arg, uint32_t *out)
{
    Py_ssize_t i = PyNumber_AsSsize_t(arg, PyExc_IndexError);

    if (i == -1 && PyErr_Occurred())
        return -1;
    if (i < 0 || (size_t)i >= self->g.n) {
        PyErr_Format(PyExc_IndexError, "object index %zd out of range", i);
        return -1;
    }
    *out = (uint32_t)i;
    return 0;
}

static Py_ssize_t
Graph_len(GraphObject *self)
{
    return (Py_ssize_t)self->g.n;
}

static PyObject *
Graph_find(GraphObject *self, PyObject *arg)
{
    unsigned long long a;
    uint32_t i;

    if (!PyLong_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "address must be an int");
        return NULL;
    }
    a = PyLong_AsUnsignedLongLong(arg);
    if (a == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();          /* negative or too big: not an address */
        return PyLong_FromLong(-1);
    }
    i = ml_graph_find(&self->g, a);
    if (i == ML_GRAPH_NONE)
        return PyLong_FromLong(-1);
    return PyLong_FromUnsignedLong(i);
}

static PyObject *
Graph_address(GraphObject *self, PyObject *arg)
{
    uint32_t i;

    if (get_index(self, arg, &i) < 0)
        return NULL;
    return PyLong_FromUnsignedLongLong(ml_graph_addr(&self->g, i));
}

static PyObject *
Graph_type_str(GraphObject *self, PyObject *arg)
{
    uint32_t i;

    if (get_index(self, arg, &i) < 0)
        return NULL;
    return PyUnicode_DecodeUTF8(ml_graph_type_name(&self->g, ml_graph_type(&self->g, i)),
                                (Py_ssize_t)strlen(ml_graph_type_name(&self->g, ml_graph_type(&self->g, i))),
                                "surrogatepass");
}

static PyObject *
Graph_type_id(GraphObject *self, PyObject *arg)
{
    uint32_t i;

    if (get_index(self, arg, &i) < 0)
        return NULL;
    return PyLong_FromUnsignedLong(ml_graph_type(&self->g, i));
}

static PyObject *
Graph_size(GraphObject *self, PyObject *arg)
{
    uint32_t i;

    if (get_index(self, arg, &i) < 0)
        return NULL;
    return PyLong_FromUnsignedLongLong(ml_graph_size(&self->g, i));
}

static PyObject *
Graph_len_of(GraphObject *self, PyObject *arg)
{
    uint32_t i;

    if (get_index(self, arg, &i) < 0)
        return NULL;
    if (ml_graph_len(&self->g, (size_t)i) == ML_GRAPH_NOLEN)
        Py_RETURN_NONE;
    return PyLong_FromUnsignedLongLong(ml_graph_len(&self->g, (size_t)i));
}

static PyObject *
decode(const char *s)
{
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "surrogatepass");
}

static PyObject *
Graph_name(GraphObject *self, PyObject *arg)
{
    uint32_t i;

    if (get_index(self, arg, &i) < 0)
        return NULL;
    if (ml_graph_name(&self->g, i) == NULL)
        Py_RETURN_NONE;
    return decode(ml_graph_name(&self->g, i));
}

/* A value as Python: str, int, float, bool or None. */
static PyObject *
value_obj(int is_float, int vkind, const char *s, size_t n)
{
    PyObject *str, *r;

    switch (vkind) {
    case ML_VAL_STR:
        str = PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, "surrogatepass");
        if (str == NULL || !is_float)
            return str;
        /* JSON has no inf/nan: the format writes them as strings. */
        if ((n == 3 && (memcmp(s, "inf", 3) == 0 || memcmp(s, "nan", 3) == 0))
                || (n == 4 && memcmp(s, "-inf", 4) == 0)) {
            r = PyFloat_FromString(str);
            Py_DECREF(str);
            return r;
        }
        return str;
    case ML_VAL_INT: {
        /* PyLong_FromString wants a NUL-terminated string. */
        char buf[64];

        if (n >= sizeof(buf)) {
            str = PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, "strict");
            if (str == NULL)
                return NULL;
            r = PyLong_FromUnicodeObject(str, 10);
            Py_DECREF(str);
            return r;
        }
        memcpy(buf, s, n);
        buf[n] = '\0';
        return PyLong_FromString(buf, NULL, 10);
    }
    case ML_VAL_FLOAT:
        str = PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, "strict");
        if (str == NULL)
            return NULL;
        r = PyFloat_FromString(str);
        Py_DECREF(str);
        return r;
    case ML_VAL_TRUE:
        Py_RETURN_TRUE;
    case ML_VAL_FALSE:
        Py_RETURN_FALSE;
    default:
        Py_RETURN_NONE;
    }
}

static PyObject *
Graph_value(GraphObject *self, PyObject *arg)
{
    uint32_t i;
    const char *s;

    if (get_index(self, arg, &i) < 0)
        return NULL;
    s = ml_graph_value(&self->g, i);
    return value_obj(strcmp(ml_graph_type_name(&self->g, ml_graph_type(&self->g, i)),
                            "float") == 0,
                     ml_graph_vkind(&self->g, i), s,
                     ml_graph_value_len(&self->g, i));
}

static PyObject *
Graph_has_value(GraphObject *self, PyObject *arg)
{
    uint32_t i;

    if (get_index(self, arg, &i) < 0)
        return NULL;
    return PyBool_FromLong(ml_graph_vkind(&self->g, i) != ML_VAL_NONE);
}


/* [address of v[0], ...]: defined objects' and dangling refs' alike. */
static PyObject *
addr_list(const struct ml_graph *g, const uint32_t *v, uint64_t n)
{
    PyObject *list = PyList_New((Py_ssize_t)n);

    if (list == NULL)
        return NULL;
    for (uint64_t k = 0; k < n; k++) {
        PyObject *o = PyLong_FromUnsignedLongLong(ml_graph_ref_addr(g, v[k]));

        if (o == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)k, o);
    }
    return list;
}

static PyObject *
Graph_refs(GraphObject *self, PyObject *arg)
{
    uint32_t i;

    if (check_finished(self) < 0 || get_index(self, arg, &i) < 0)
        return NULL;
    return addr_list(&self->g, self->g.refs + self->g.ref_start[i],
                     self->g.ref_start[i + 1] - self->g.ref_start[i]);
}

static PyObject *
index_list(const uint32_t *v, uint64_t n)
{
    PyObject *list = PyList_New((Py_ssize_t)n);

    if (list == NULL)
        return NULL;
    for (uint64_t k = 0; k < n; k++) {
        PyObject *o = PyLong_FromUnsignedLong(v[k]);

        if (o == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)k, o);
    }
    return list;
}

static PyObject *
Graph_ref_indices(GraphObject *self, PyObject *arg)
{
    uint32_t i;

    if (check_finished(self) < 0 || get_index(self, arg, &i) < 0)
        return NULL;
    return index_list(self->g.refs + self->g.ref_start[i],
                      self->g.ref_start[i + 1] - self->g.ref_start[i]);
}

static PyObject *
Graph_num_refs(GraphObject *self, PyObject *arg)
{
    uint32_t i;

    if (check_finished(self) < 0 || get_index(self, arg, &i) < 0)
        return NULL;
    return PyLong_FromUnsignedLongLong(self->g.ref_start[i + 1]
                                       - self->g.ref_start[i]);
}

static PyObject *
Graph_compute_parents(GraphObject *self, PyObject *unused)
{
    int rc;

    if (check_finished(self) < 0)
        return NULL;
    if ((rc = ml_graph_compute_parents(&self->g)) < 0) {
        raise_rc(rc);
        return NULL;
    }
    trim_heap();
    Py_RETURN_NONE;
}

static int
check_parents(GraphObject *self)
{
    if (check_finished(self) < 0)
        return -1;
    if (self->g.par_start == NULL) {
        PyErr_SetString(PyExc_ValueError,
                        "parents not computed: call compute_parents()");
        return -1;
    }
    return 0;
}

/* parents(i, max=None) -> addresses of the referrers, at most max. */
static PyObject *
parents_common(GraphObject *self, PyObject *args, int as_index)
{
    PyObject *iarg, *maxarg = Py_None;
    uint32_t i;
    uint64_t a, n;

    if (!PyArg_UnpackTuple(args, "parents", 1, 2, &iarg, &maxarg))
        return NULL;
    if (check_parents(self) < 0 || get_index(self, iarg, &i) < 0)
        return NULL;
    a = self->g.par_start[i];
    n = self->g.par_start[i + 1] - a;
    if (maxarg != Py_None) {
        Py_ssize_t m = PyNumber_AsSsize_t(maxarg, PyExc_OverflowError);

        if (m == -1 && PyErr_Occurred())
            return NULL;
        if (m >= 0 && (uint64_t)m < n)
            n = (uint64_t)m;
    }
    if (as_index)
        return index_list(self->g.par + a, n);
    return addr_list(&self->g, self->g.par + a, n);
}

static PyObject *
Graph_parents(GraphObject *self, PyObject *args)
{
    return parents_common(self, args, 0);
}

static PyObject *
Graph_parent_indices(GraphObject *self, PyObject *args)
{
    return parents_common(self, args, 1);
}

static PyObject *
Graph_num_parents(GraphObject *self, PyObject *arg)
{
    uint32_t i;

    if (check_parents(self) < 0 || get_index(self, arg, &i) < 0)
        return NULL;
    return PyLong_FromUnsignedLongLong(self->g.par_start[i + 1]
                                       - self->g.par_start[i]);
}

/* collapse_instance_dicts(renumber=False) -> count, or with renumber
 * (count, old -> new index table as native uint32 bytes, or None when
 * nothing was folded): the loader asks for the table only while
 * MemObjects taken before exist. */
static PyObject *
Graph_collapse_instance_dicts(GraphObject *self, PyObject *args)
{
    int want = 0;
    uint32_t *table = NULL;
    size_t n_before = self->g.n;
    PyObject *bytes;
    int64_t rc;

    if (!PyArg_ParseTuple(args, "|p:collapse_instance_dicts", &want))
        return NULL;
    if (check_finished(self) < 0)
        return NULL;
    ml_dom_free(&self->dom);            /* refs change: recompute */
    rc = ml_graph_collapse_renumbering(&self->g, want ? &table : NULL);
    if (rc < 0) {
        raise_rc((int)rc);
        return NULL;
    }
    if (!want)
        return PyLong_FromLongLong(rc);
    if (table == NULL)
        return Py_BuildValue("(LO)", (long long)rc, Py_None);
    bytes = PyBytes_FromStringAndSize((const char *)table,
                                      (Py_ssize_t)(n_before * sizeof(*table)));
    free(table);
    if (bytes == NULL)
        return NULL;
    return Py_BuildValue("(LN)", (long long)rc, bytes);
}

#define EX_NOREF 1u             /* a module, frame or type: never referred to */
#define EX_LRU 2u               /* an _LRUNode */
#define EX_MODDICT 4u           /* a dict a module refers to (its __dict__) */
#define EX_NAMED 8u             /* modname[i] holds dict i's __name__ value */

/* Index + 1 of the value under the str key "__name__" in dict d, or 0. */
static uint32_t
dict_name_value(const struct ml_graph *g, uint32_t d)
{
    uint64_t a = g->ref_start[d], b = g->ref_start[d + 1];

    for (uint64_t k = a; k + 1 < b; k += 2) {
        uint32_t key = g->refs[k];

        if (key < g->n && ml_graph_vkind(g, key) == ML_VAL_STR && ml_graph_value_len(g, key) == 8
                && memcmp(ml_graph_value(g, key), "__name__", 8) == 0)
            return g->refs[k + 1] + 1;
    }
    return 0;
}

/* remove_expensive_references() -> number of references removed.
 * meliae 0.5's semantics (see ObjManager.remove_expensive_references):
 * refs to modules, frames and types are removed from every object; a
 * function loses its refs to __globals__ and __builtins__ (the module
 * dicts right after its code) and to the module name that follows them;
 * an _LRUNode loses its refs to other _LRUNodes.  Refs are compacted in
 * place (nothing to allocate there, so the graph is changed completely or
 * not at all); the referrer CSR is dropped.  A second call does nothing. */
static PyObject *
Graph_remove_expensive_references(GraphObject *self, PyObject *unused)
{
    struct ml_graph *g = &self->g;
    const size_t n = g->n;
    uint32_t t_module, t_frame, t_type, t_func, t_dict, t_lru;
    uint8_t *fl;
    uint32_t *modname;
    uint64_t w = 0, a, before;

    if (check_finished(self) < 0)
        return NULL;
    if (self->expensive_removed || n == 0)
        return PyLong_FromLong(0);
    t_module = ml_graph_type_id(g, "module");
    t_frame = ml_graph_type_id(g, "frame");
    t_type = ml_graph_type_id(g, "type");
    t_func = ml_graph_type_id(g, "function");
    t_dict = ml_graph_type_id(g, "dict");
    t_lru = ml_graph_type_id(g, "_LRUNode");
    fl = PyMem_Calloc(n, 1);
    /* calloc: only the pages of the few globals dicts looked up are
     * touched. */
    modname = t_func != ML_GRAPH_NONE ? calloc(n, sizeof(*modname)) : NULL;
    if (fl == NULL || (t_func != ML_GRAPH_NONE && modname == NULL)) {
        PyMem_Free(fl);
        free(modname);
        return PyErr_NoMemory();
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t t = ml_graph_type(g, i);

        if (t == t_module || t == t_frame || t == t_type)
            fl[i] |= EX_NOREF;
        else if (t == t_lru)
            fl[i] |= EX_LRU;
        if (t == t_module)
            for (uint64_t k = g->ref_start[i]; k < g->ref_start[i + 1]; k++) {
                uint32_t r = g->refs[k];

                if (r < n && ml_graph_type(g, r) == t_dict)
                    fl[r] |= EX_MODDICT;
            }
    }

    before = g->nrefs;
    a = g->ref_start[0];
    for (size_t i = 0; i < n; i++) {
        uint64_t b = g->ref_start[i + 1], k = a;
        uint32_t t = ml_graph_type(g, i);

        g->ref_start[i] = w;
        if (t == t_func && b - a >= 2 && g->refs[a + 1] < n
                && ml_graph_type(g, g->refs[a + 1]) == t_dict) {
            /* code, globals, [builtins,] module name, ...: tp_traverse's
             * order on every CPython (builtins since 3.10). */
            uint32_t glob = g->refs[a + 1], name1;

            if (!(fl[glob] & EX_NAMED)) {
                modname[glob] = dict_name_value(g, glob);
                fl[glob] |= EX_NAMED;
            }
            name1 = modname[glob];
            g->refs[w++] = g->refs[a];
            k = a + 2;
            while (k < b && g->refs[k] < n && (fl[g->refs[k]] & EX_MODDICT))
                k++;
            /* __builtins__ when the builtins module has no line: a dict
             * right before the module name. */
            if (k == a + 2 && k + 1 < b && name1 != 0 && g->refs[k] < n
                    && ml_graph_type(g, g->refs[k]) == t_dict
                    && g->refs[k + 1] == name1 - 1)
                k++;
            if (k < b && name1 != 0 && g->refs[k] == name1 - 1)
                k++;
        }
        for (; k < b; k++) {
            uint32_t r = g->refs[k];

            if (r < n && ((fl[r] & EX_NOREF)
                          || (t == t_lru && (fl[r] & EX_LRU))))
                continue;
            g->refs[w++] = r;
        }
        a = b;
    }
    g->ref_start[n] = w;
    g->nrefs = w;
    PyMem_Free(fl);
    free(modname);
    ml_graph_drop_parents(g);
    ml_dom_free(&self->dom);
    self->expensive_removed = 1;
    return PyLong_FromUnsignedLongLong((unsigned long long)(before - w));
}

/* guess_intern_dict() -> index of the likeliest interned-strings dict, or
 * -1: of the non-empty dicts nothing refers to whose every [key, value]
 * pair is one str mapped to itself, the one with the most pairs (the first
 * in dump order on a tie). */
static PyObject *
Graph_guess_intern_dict(GraphObject *self, PyObject *unused)
{
    struct ml_graph *g = &self->g;
    const size_t n = g->n;
    uint32_t t_dict, t_str, *nref;
    long best = -1;
    uint64_t best_pairs = 0;

    if (check_finished(self) < 0)
        return NULL;
    t_dict = ml_graph_type_id(g, "dict");
    t_str = ml_graph_type_id(g, "str");
    if (t_dict == ML_GRAPH_NONE || t_str == ML_GRAPH_NONE)
        return PyLong_FromLong(-1);
    nref = PyMem_Calloc(n, sizeof(*nref));
    if (nref == NULL)
        return PyErr_NoMemory();
    for (uint64_t k = 0; k < g->nrefs; k++)
        if (g->refs[k] < n && ml_graph_type(g, g->refs[k]) == t_dict)
            nref[g->refs[k]] = 1;
    for (size_t i = 0; i < n; i++) {
        uint64_t a = g->ref_start[i], b = g->ref_start[i + 1], k;

        if (ml_graph_type(g, i) != t_dict || nref[i] || a == b || (b - a) % 2 != 0
                || (b - a) / 2 <= best_pairs)
            continue;
        for (k = a; k < b; k += 2) {
            uint32_t r = g->refs[k];

            if (r != g->refs[k + 1] || r >= n || ml_graph_type(g, r) != t_str)
                break;
        }
        if (k == b) {
            best = (long)i;
            best_pairs = (b - a) / 2;
        }
    }
    PyMem_Free(nref);
    return PyLong_FromLong(best);
}

/* A mask argument: None, or a bytes-like object of len(graph) bytes. */
static int
get_mask(GraphObject *self, PyObject *arg, Py_buffer *view)
{
    if (arg == NULL || arg == Py_None) {
        view->buf = NULL;
        view->obj = NULL;
        return 0;
    }
    if (PyObject_GetBuffer(arg, view, PyBUF_SIMPLE) < 0)
        return -1;
    if ((size_t)view->len != self->g.n) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_ValueError, "mask must have %zu bytes, not %zd",
                     self->g.n, view->len);
        return -1;
    }
    return 0;
}

static PyObject *
Graph_summarize(GraphObject *self, PyObject *args, PyObject *kw)
{
    static char k_mask[] = "mask";
    static char *kwlist[] = {k_mask, NULL};
    PyObject *maskarg = Py_None, *list = NULL;
    Py_buffer view;
    struct ml_type_summary *s;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:summarize", kwlist,
                                     &maskarg))
        return NULL;
    if (get_mask(self, maskarg, &view) < 0)
        return NULL;
    s = PyMem_Calloc(self->g.ntypes ? self->g.ntypes : 1, sizeof(*s));
    if (s == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    ml_graph_summarize(&self->g, view.buf, s);
    list = PyList_New(0);
    if (list == NULL)
        goto out;
    for (size_t t = 0; t < self->g.ntypes; t++) {
        PyObject *name, *tup;

        if (s[t].count == 0)
            continue;
        name = decode(ml_graph_type_name(&self->g, (uint32_t)t));
        if (name == NULL)
            goto fail;
        tup = Py_BuildValue("(NKKKK)", name, (unsigned long long)s[t].count,
                            (unsigned long long)s[t].size,
                            (unsigned long long)s[t].max_size,
                            (unsigned long long)ml_graph_addr(&self->g, s[t].max_index));
        if (tup == NULL)
            goto fail;
        if (PyList_Append(list, tup) < 0) {
            Py_DECREF(tup);
            goto fail;
        }
        Py_DECREF(tup);
    }
    goto out;
fail:
    Py_CLEAR(list);
out:
    PyMem_Free(s);
    if (view.obj != NULL)
        PyBuffer_Release(&view);
    return list;
}

/* Index list from an iterable of indices (ints), each checked. */
static int
mark_indices(GraphObject *self, PyObject *iterable, uint8_t *mask, uint8_t v)
{
    PyObject *it, *o;

    if (iterable == NULL || iterable == Py_None)
        return 0;
    it = PyObject_GetIter(iterable);
    if (it == NULL)
        return -1;
    while ((o = PyIter_Next(it)) != NULL) {
        uint32_t i;
        int rc = get_index(self, o, &i);

        Py_DECREF(o);
        if (rc < 0) {
            Py_DECREF(it);
            return -1;
        }
        mask[i] = v;
    }
    Py_DECREF(it);
    return PyErr_Occurred() ? -1 : 0;
}

/* reachable(roots, excluding=None) -> bytearray mask of the objects
 * reachable from the root indices through refs, not entering (nor
 * counting) the excluded indices.  Roots are included unless excluded. */
static PyObject *
Graph_reachable(GraphObject *self, PyObject *args, PyObject *kw)
{
    static char k_roots[] = "roots", k_excluding[] = "excluding";
    static char *kwlist[] = {k_roots, k_excluding, NULL};
    PyObject *roots, *excluding = Py_None, *res = NULL;
    uint8_t *mask, *excl = NULL;
    uint32_t *stack = NULL;
    size_t sp = 0, n = self->g.n;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O:reachable", kwlist,
                                     &roots, &excluding))
        return NULL;
    if (check_finished(self) < 0)
        return NULL;
    res = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)n);
    if (res == NULL)
        return NULL;
    mask = (uint8_t *)PyByteArray_AS_STRING(res);
    memset(mask, 0, n);
    excl = PyMem_Calloc(n ? n : 1, 1);
    stack = PyMem_Malloc((n ? n : 1) * sizeof(*stack));
    if (excl == NULL || stack == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    if (mark_indices(self, excluding, excl, 1) < 0)
        goto fail;
    /* Roots: mark in a scratch pass through mask itself. */
    {
        PyObject *it = PyObject_GetIter(roots), *o;

        if (it == NULL)
            goto fail;
        while ((o = PyIter_Next(it)) != NULL) {
            uint32_t i;
            int rc = get_index(self, o, &i);

            Py_DECREF(o);
            if (rc < 0) {
                Py_DECREF(it);
                goto fail;
            }
            if (!excl[i] && !mask[i]) {
                mask[i] = 1;
                stack[sp++] = i;
            }
        }
        Py_DECREF(it);
        if (PyErr_Occurred())
            goto fail;
    }
    while (sp > 0) {
        uint32_t i = stack[--sp];

        for (uint64_t k = self->g.ref_start[i]; k < self->g.ref_start[i + 1]; k++) {
            uint32_t r = self->g.refs[k];

            if (r < n && !mask[r] && !excl[r]) {
                mask[r] = 1;
                stack[sp++] = r;
            }
        }
    }
    PyMem_Free(excl);
    PyMem_Free(stack);
    return res;
fail:
    PyMem_Free(excl);
    PyMem_Free(stack);
    Py_DECREF(res);
    return NULL;
}

/* ---- dominators and retained sizes (docs/retained.md) ---------------- */

struct modroot {
    const struct ml_graph *g;
    uint32_t t_module;
};

/* Modules are roots even when something (sys.modules) refers to them. */
static int
is_module(void *arg, uint32_t v)
{
    const struct modroot *m = arg;

    return ml_graph_type(m->g, v) == m->t_module;
}

/* compute_retained() -> None: the dominator tree and retained sizes of
 * the graph as it is now (after collapse_instance_dicts, if run), once;
 * builds the referrers if they are not there. */
static PyObject *
Graph_compute_retained(GraphObject *self, PyObject *unused)
{
    struct ml_graph *g = &self->g;
    struct ml_dom_input in;
    struct modroot m;
    uint64_t *sizes;
    uint32_t *types;
    int rc;

    if (check_finished(self) < 0)
        return NULL;
    if (self->dom.idom != NULL || g->n == 0)
        Py_RETURN_NONE;
    if (g->par_start == NULL && (rc = ml_graph_compute_parents(g)) < 0) {
        raise_rc(rc);
        return NULL;
    }
    m.g = g;
    m.t_module = ml_graph_type_id(g, "module");
    memset(&in, 0, sizeof(in));
    in.n = g->n;
    in.succ_start = g->ref_start;
    in.succ = g->refs;
    in.pred_start = g->par_start;
    in.pred = g->par;
    /* The dominator code takes 64-bit sizes and 32-bit type ids (the
     * store's); copies for its run. */
    sizes = PyMem_Malloc(g->n * sizeof(*sizes));
    types = PyMem_Malloc(g->n * sizeof(*types));
    if (sizes == NULL || types == NULL) {
        PyMem_Free(sizes);
        PyMem_Free(types);
        return PyErr_NoMemory();
    }
    for (size_t i = 0; i < g->n; i++) {
        sizes[i] = ml_graph_size(g, i);
        types[i] = ml_graph_type(g, i);
    }
    in.size = sizes;
    in.is_root = m.t_module != ML_GRAPH_NONE ? is_module : NULL;
    in.arg = &m;
    in.type = types;
    in.ntypes = g->ntypes;
    rc = ml_dom_compute(&self->dom, &in);
    PyMem_Free(sizes);
    PyMem_Free(types);
    if (rc < 0) {
        raise_rc(rc);
        return NULL;
    }
    Py_RETURN_NONE;
}

static int
check_retained(GraphObject *self)
{
    if (check_finished(self) < 0)
        return -1;
    if (self->dom.idom == NULL && self->g.n > 0) {
        PyErr_SetString(PyExc_ValueError,
                        "retained sizes not computed: call compute_retained()");
        return -1;
    }
    return 0;
}

/* retained(i) -> the retained size of object i. */
static PyObject *
Graph_retained(GraphObject *self, PyObject *arg)
{
    uint32_t i;

    if (check_retained(self) < 0 || get_index(self, arg, &i) < 0)
        return NULL;
    return PyLong_FromUnsignedLongLong(self->dom.retained[i]);
}

/* idom(i) -> index of object i's immediate dominator, -1 for the root. */
static PyObject *
Graph_idom(GraphObject *self, PyObject *arg)
{
    uint32_t i;

    if (check_retained(self) < 0 || get_index(self, arg, &i) < 0)
        return NULL;
    if (self->dom.idom[i] == ML_DOM_ROOT)
        return PyLong_FromLong(-1);
    return PyLong_FromUnsignedLong(self->dom.idom[i]);
}

/* dominator_chain(i) -> [i, idom(i), ..., a child of the root]. */
static PyObject *
Graph_dominator_chain(GraphObject *self, PyObject *arg)
{
    uint32_t i;
    PyObject *list;

    if (check_retained(self) < 0 || get_index(self, arg, &i) < 0)
        return NULL;
    if ((list = PyList_New(0)) == NULL)
        return NULL;
    for (uint32_t x = i; x != ML_DOM_ROOT; x = self->dom.idom[x]) {
        PyObject *o = PyLong_FromUnsignedLong(x);

        if (o == NULL || PyList_Append(list, o) < 0) {
            Py_XDECREF(o);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(o);
    }
    return list;
}

/* largest_retained(k) -> the indices of the k objects of largest
 * retained size, largest first. */
static PyObject *
Graph_largest_retained(GraphObject *self, PyObject *arg)
{
    Py_ssize_t k = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
    uint32_t *top;
    size_t m;
    PyObject *res;

    if (k == -1 && PyErr_Occurred())
        return NULL;
    if (check_retained(self) < 0)
        return NULL;
    if (k < 0 || (size_t)k > self->g.n)
        k = (Py_ssize_t)self->g.n;
    top = PyMem_Malloc((k ? (size_t)k : 1) * sizeof(*top));
    if (top == NULL)
        return PyErr_NoMemory();
    m = self->g.n ? ml_dom_top(&self->dom, top, (size_t)k) : 0;
    res = index_list(top, m);
    PyMem_Free(top);
    return res;
}

/* retained_summary() -> [(type_str, count, retained, max_retained,
 * max_address, top_count)]: per type, the retained sizes of its objects
 * that no object of the same type dominates (top_count of them). */
static PyObject *
Graph_retained_summary(GraphObject *self, PyObject *unused)
{
    struct ml_graph *g = &self->g;
    uint64_t *cnt;
    uint32_t *maxi;
    PyObject *list = NULL;

    if (check_retained(self) < 0)
        return NULL;
    cnt = PyMem_Calloc(g->ntypes ? g->ntypes : 1, sizeof(*cnt));
    maxi = PyMem_Malloc((g->ntypes ? g->ntypes : 1) * sizeof(*maxi));
    if (cnt == NULL || maxi == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    for (size_t i = 0; i < g->n; i++) {
        uint32_t t = ml_graph_type(g, i);

        if (cnt[t]++ == 0 || self->dom.retained[i] > self->dom.retained[maxi[t]])
            maxi[t] = (uint32_t)i;
    }
    if ((list = PyList_New(0)) == NULL)
        goto out;
    for (size_t t = 0; t < g->ntypes; t++) {
        PyObject *name, *tup;

        if (cnt[t] == 0)
            continue;
        if ((name = decode(ml_graph_type_name(g, (uint32_t)t))) == NULL)
            goto fail;
        tup = Py_BuildValue("(NKKKKK)", name, (unsigned long long)cnt[t],
                            (unsigned long long)self->dom.type_retained[t],
                            (unsigned long long)self->dom.retained[maxi[t]],
                            (unsigned long long)ml_graph_addr(g, maxi[t]),
                            (unsigned long long)self->dom.type_top[t]);
        if (tup == NULL)
            goto fail;
        if (PyList_Append(list, tup) < 0) {
            Py_DECREF(tup);
            goto fail;
        }
        Py_DECREF(tup);
    }
    goto out;
fail:
    Py_CLEAR(list);
out:
    PyMem_Free(cnt);
    PyMem_Free(maxi);
    return list;
}

/* mask_size(mask) -> total size of the objects whose mask byte is set. */
static PyObject *
Graph_mask_size(GraphObject *self, PyObject *arg)
{
    Py_buffer view;
    unsigned long long tot = 0;

    if (get_mask(self, arg, &view) < 0)
        return NULL;
    if (view.buf == NULL) {
        for (size_t i = 0; i < self->g.n; i++)
            tot += ml_graph_size(&self->g, i);
    } else {
        const uint8_t *m = view.buf;

        for (size_t i = 0; i < self->g.n; i++)
            if (m[i])
                tot += ml_graph_size(&self->g, i);
        PyBuffer_Release(&view);
    }
    return PyLong_FromUnsignedLongLong(tot);
}

/* indices_of_type(type_str) -> indices of that type, largest size first
 * (ties: dump order). */
static const struct ml_graph *sort_graph;

static int
cmp_size_desc(const void *pa, const void *pb)
{
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    uint64_t sa = ml_graph_size(sort_graph, a), sb = ml_graph_size(sort_graph, b);

    if (sa != sb)
        return sa > sb ? -1 : 1;
    return a < b ? -1 : a > b;
}

static PyObject *
Graph_indices_of_type(GraphObject *self, PyObject *arg)
{
    const char *name;
    uint32_t t = ML_GRAPH_NONE, *v;
    size_t cnt = 0;
    PyObject *res;

    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "type_str must be a str");
        return NULL;
    }
    name = PyUnicode_AsUTF8(arg);
    if (name == NULL)
        return NULL;
    for (size_t k = 0; k < self->g.ntypes; k++)
        if (strcmp(ml_graph_type_name(&self->g, (uint32_t)k), name) == 0) {
            t = (uint32_t)k;
            break;
        }
    if (t == ML_GRAPH_NONE)
        return PyList_New(0);
    for (size_t i = 0; i < self->g.n; i++)
        cnt += ml_graph_type(&self->g, i) == t;
    v = PyMem_Malloc((cnt ? cnt : 1) * sizeof(*v));
    if (v == NULL)
        return PyErr_NoMemory();
    cnt = 0;
    for (size_t i = 0; i < self->g.n; i++)
        if (ml_graph_type(&self->g, i) == t)
            v[cnt++] = (uint32_t)i;
    sort_graph = &self->g;          /* GIL held: no concurrent sort */
    qsort(v, cnt, sizeof(*v), cmp_size_desc);
    res = index_list(v, cnt);
    PyMem_Free(v);
    return res;
}

/* ---- the type ----------------------------------------------------------- */

static PyObject *
Graph_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    static char k_errors[] = "errors";
    static char *kwlist[] = {k_errors, NULL};
    const char *errors = "strict";
    GraphObject *self;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "|s:Graph", kwlist, &errors))
        return NULL;
    if (strcmp(errors, "strict") != 0 && strcmp(errors, "skip") != 0) {
        PyErr_Format(PyExc_ValueError,
                     "errors must be 'strict' or 'skip', not '%s'", errors);
        return NULL;
    }
    self = (GraphObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    ml_graph_init(&self->g);
    ldfeed_init(&self->ld, &self->g, errors[0] == 's' && errors[1] == 'k');
    ldtb_init(&self->tb);
    return (PyObject *)self;
}

static void
Graph_dealloc(GraphObject *self)
{
    ml_graph_free(&self->g);
    ml_dom_free(&self->dom);
    ldfeed_free(&self->ld);
    ldtb_free(&self->tb);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

#define GETTER(fname, expr)                                             \
    static PyObject *                                                   \
    fname(GraphObject *self, void *closure)                             \
    {                                                                   \
        return PyLong_FromUnsignedLongLong((unsigned long long)(expr)); \
    }

GETTER(Graph_get_nduplicates, self->g.nduplicates)
GETTER(Graph_get_ndangling, self->g.ndangling)
GETTER(Graph_get_skipped, self->ld.skipped)
GETTER(Graph_get_lineno, self->ld.lineno)
GETTER(Graph_get_nother, self->ld.nother)
GETTER(Graph_get_ntracebacks, ldtb_count(&self->tb))
GETTER(Graph_get_nrefs, self->g.nrefs)
GETTER(Graph_get_ntypes, self->g.ntypes)
GETTER(Graph_get_bytes_fed, self->ld.bytes_fed)

static PyObject *
Graph_get_finished(GraphObject *self, void *closure)
{
    return PyBool_FromLong(self->finished);
}

static PyObject *
Graph_get_has_parents(GraphObject *self, void *closure)
{
    return PyBool_FromLong(self->g.par_start != NULL);
}

static PyObject *
Graph_get_has_retained(GraphObject *self, void *closure)
{
    return PyBool_FromLong(self->dom.idom != NULL);
}

/* (total size, roots, leftover roots) of the last compute_retained(). */
static PyObject *
Graph_get_retained_roots(GraphObject *self, void *closure)
{
    return Py_BuildValue("(KKK)", (unsigned long long)self->dom.total,
                         (unsigned long long)self->dom.nroots,
                         (unsigned long long)self->dom.nleftover);
}

static PyObject *
Graph_get_expensive_removed(GraphObject *self, void *closure)
{
    return PyBool_FromLong(self->expensive_removed);
}

static PyObject *
Graph_get_first_skipped(GraphObject *self, void *closure)
{
    if (self->ld.skipped == 0)
        Py_RETURN_NONE;
    return Py_BuildValue("(Ks)", self->ld.first_skipped_line,
                         self->ld.first_skipped_err);
}

static PyGetSetDef Graph_getset[] = {
    {"nduplicates", (getter)Graph_get_nduplicates, NULL,
     "lines whose address was already loaded (the first is kept)", NULL},
    {"ndangling", (getter)Graph_get_ndangling, NULL,
     "references to addresses that no line defines", NULL},
    {"skipped", (getter)Graph_get_skipped, NULL,
     "malformed lines skipped (errors='skip')", NULL},
    {"first_skipped", (getter)Graph_get_first_skipped, NULL,
     "(line number, what was wrong) of the first skipped line, or None", NULL},
    {"lineno", (getter)Graph_get_lineno, NULL, "lines read so far", NULL},
    {"ntracebacks", (getter)Graph_get_ntracebacks, NULL,
     "distinct traceback ids of the table (birth sites)", NULL},
    {"nother", (getter)Graph_get_nother, NULL,
     "lines without an address (headers, trailers)", NULL},
    {"nrefs", (getter)Graph_get_nrefs, NULL, "references in all", NULL},
    {"ntypes", (getter)Graph_get_ntypes, NULL, "distinct type names", NULL},
    {"bytes_fed", (getter)Graph_get_bytes_fed, NULL,
     "bytes of (uncompressed) dump text fed", NULL},
    {"finished", (getter)Graph_get_finished, NULL, "finish() was called", NULL},
    {"has_parents", (getter)Graph_get_has_parents, NULL,
     "compute_parents() was called", NULL},
    {"has_retained", (getter)Graph_get_has_retained, NULL,
     "compute_retained() was run on the graph as it is", NULL},
    {"retained_roots", (getter)Graph_get_retained_roots, NULL,
     "(total size, roots, leftover roots) of compute_retained()", NULL},
    {"expensive_removed", (getter)Graph_get_expensive_removed, NULL,
     "remove_expensive_references() was called", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* path_to_root(i) -> None, or (chain, text, steps): the shortest chain
 * from a root to i (indices, root first), its path text and its steps
 * ({"via": name, "key"/"index": ..., "address", "type"}) as
 * common/paths.c gives them, the store's answers' words. */
/* The new objects of self against before (an earlier dump of the same
 * process), by accumulation point (common/graph_diff.h):
 * (count, bytes, gone_count, gone_bytes, new, groups), new the indexes
 * of the new objects, groups [(anchor index or -1, anchor is new, count,
 * bytes, depth, [(count, bytes, depth, example index), ...]), ...],
 * biggest first, each one's rows by type biggest first. */
static PyObject *
Graph_diff_from(GraphObject *self, PyObject *arg)
{
    GraphObject *a = (GraphObject *)arg;
    struct ml_graph_diff d;
    PyObject *news = NULL, *groups = NULL, *res = NULL;
    size_t k = 0;
    int rc;

    if (!PyObject_TypeCheck(arg, &Graph_Type)) {
        PyErr_SetString(PyExc_TypeError, "diff_from: a Graph is needed");
        return NULL;
    }
    if (check_finished(self) < 0 || check_finished(a) < 0)
        return NULL;
    if (self->g.par_start == NULL && ml_graph_compute_parents(&self->g) != 0)
        return PyErr_NoMemory();
    Py_BEGIN_ALLOW_THREADS
    rc = ml_graph_diff(&a->g, &self->g, &d);
    Py_END_ALLOW_THREADS
    if (rc != 0) {
        ml_graph_diff_free(&d);
        return raise_rc(rc), NULL;
    }
    if ((news = PyList_New((Py_ssize_t)d.count)) == NULL ||
        (groups = PyList_New((Py_ssize_t)d.ngroups)) == NULL)
        goto out;
    for (size_t i = 0; i < self->g.n && k < d.count; i++) {
        if (d.state[i] == ML_ACCUM_OLD)
            continue;
        PyObject *o = PyLong_FromSize_t(i);

        if (o == NULL)
            goto out;
        PyList_SET_ITEM(news, (Py_ssize_t)k++, o);
    }
    for (size_t g = 0; g < d.ngroups; g++) {
        const struct ml_accum_group *x = &d.groups[g];
        PyObject *rows = PyList_New((Py_ssize_t)x->n), *t;

        if (rows == NULL)
            goto out;
        for (size_t j = 0; j < x->n; j++) {
            const struct ml_accum_row *r = &d.rows[x->first + j];

            t = Py_BuildValue("(KKkk)", (unsigned long long)r->count,
                              (unsigned long long)r->bytes,
                              (unsigned long)r->depth,
                              (unsigned long)r->example);
            if (t == NULL) {
                Py_DECREF(rows);
                goto out;
            }
            PyList_SET_ITEM(rows, (Py_ssize_t)j, t);
        }
        t = Py_BuildValue("(LOKKkN)", x->anchor == ML_ACCUM_NONE ? -1LL
                                      : (long long)x->anchor,
                          x->anchor != ML_ACCUM_NONE &&
                          d.state[x->anchor] != ML_ACCUM_OLD
                              ? Py_True : Py_False,
                          (unsigned long long)x->count,
                          (unsigned long long)x->bytes,
                          (unsigned long)x->depth, rows);
        if (t == NULL)
            goto out;
        PyList_SET_ITEM(groups, (Py_ssize_t)g, t);
    }
    res = Py_BuildValue("(KKKKOO)", (unsigned long long)d.count,
                        (unsigned long long)d.bytes,
                        (unsigned long long)d.gone_count,
                        (unsigned long long)d.gone_bytes, news, groups);
out:
    Py_XDECREF(news);
    Py_XDECREF(groups);
    ml_graph_diff_free(&d);
    return res;
}

static PyObject *
Graph_path_to_root(GraphObject *self, PyObject *arg)
{
    uint32_t i, *chain = NULL;
    size_t n = 0;
    struct ml_path p = { 0 };
    PyObject *lst = NULL, *steps = NULL, *res = NULL;
    int rc;

    if (get_index(self, arg, &i) < 0)
        return NULL;
    if (self->g.par_start == NULL && ml_graph_compute_parents(&self->g) != 0)
        return PyErr_NoMemory();
    rc = ml_graph_chain_to_root(&self->g, i, &chain, &n);
    if (rc == 1)
        Py_RETURN_NONE;
    if (rc == 0)
        rc = ml_graph_path(&self->g, chain, n, &p);
    if (rc != 0) {
        free(chain);
        return rc == -ENOMEM ? PyErr_NoMemory()
            : PyErr_Format(PyExc_ValueError, "path_to_root: error %d", rc);
    }
    if ((lst = PyList_New((Py_ssize_t)n)) == NULL
            || (steps = PyList_New((Py_ssize_t)p.nsteps)) == NULL)
        goto out;
    for (size_t k = 0; k < n; k++) {
        PyObject *o = PyLong_FromUnsignedLong(chain[k]);

        if (o == NULL)
            goto out;
        PyList_SET_ITEM(lst, (Py_ssize_t)k, o);
    }
    for (size_t k = 0; k < p.nsteps; k++) {
        const struct ml_path_step *st = &p.steps[k];
        PyObject *d = Py_BuildValue("{s:s,s:K,s:s}", "via",
                                    ml_path_via_name(st->via), "address",
                                    (unsigned long long)st->address, "type",
                                    st->type);

        if (d == NULL)
            goto out;
        PyList_SET_ITEM(steps, (Py_ssize_t)k, d);
        if (st->via == ML_VIA_INDEX) {
            PyObject *x = PyLong_FromUnsignedLongLong(st->index);

            if (x == NULL || PyDict_SetItemString(d, "index", x) < 0) {
                Py_XDECREF(x);
                goto out;
            }
            Py_DECREF(x);
        } else if (st->key != NULL) {
            PyObject *x = PyUnicode_DecodeUTF8(st->key, (Py_ssize_t)strlen(st->key),
                                               "surrogatepass");

            if (x == NULL || PyDict_SetItemString(d, "key", x) < 0) {
                Py_XDECREF(x);
                goto out;
            }
            Py_DECREF(x);
        }
    }
    res = Py_BuildValue("(ONO)", lst,
                        PyUnicode_DecodeUTF8(p.text, (Py_ssize_t)strlen(p.text),
                                             "surrogatepass"), steps);
out:
    Py_XDECREF(lst);
    Py_XDECREF(steps);
    free(chain);
    ml_path_free(&p);
    return res;
}

/* ---- birth sites (docs/dump-format.md, "Birth sites") ------------------ */

/* trace(i) -> the id of object i's allocation traceback, or None. */
static PyObject *
Graph_trace(GraphObject *self, PyObject *arg)
{
    uint32_t i, t;

    if (check_finished(self) < 0 || get_index(self, arg, &i) < 0)
        return NULL;
    t = ml_graph_trace(&self->g, i);
    if (t == ML_GRAPH_NONE)
        Py_RETURN_NONE;
    return PyLong_FromUnsignedLong(t);
}

/* traceback_line(id) -> the table line (bytes) that defined traceback id
 * (the first, if several did), or None. */
static PyObject *
Graph_traceback_line(GraphObject *self, PyObject *arg)
{
    unsigned long long id = PyLong_AsUnsignedLongLong(arg);
    const char *s;
    size_t n;

    if (id == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    if (check_finished(self) < 0)
        return NULL;
    if ((s = ldtb_get(&self->tb, id, &n)) == NULL)
        Py_RETURN_NONE;
    return PyBytes_FromStringAndSize(s, (Py_ssize_t)n);
}

struct site_call {
    GraphObject *self;
    PyObject *site_of;
};

/* The site of a trace, from the caller's site_of(id) -> int or None (it
 * reads the table line: few calls, one per distinct traceback). */
static int
site_of_py(void *ctx, uint32_t trace, uint64_t *site)
{
    struct site_call *c = ctx;
    PyObject *r;
    unsigned long long v;

    if (ldtb_get(&c->self->tb, trace, &(size_t){ 0 }) == NULL)
        return 1;               /* an id no table line defined: no site */
    r = PyObject_CallFunction(c->site_of, "k", (unsigned long)trace);
    if (r == NULL)
        return -1;
    if (r == Py_None) {
        Py_DECREF(r);
        return 1;
    }
    v = PyLong_AsUnsignedLongLong(r);
    Py_DECREF(r);
    if (v == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    *site = v;
    return 0;
}

/* birth_sites(indices, site_of, top=0) -> [(trace, count, bytes), ...]:
 * the objects of indices (each counted as often as listed) that have a
 * traceback in the table, grouped by site (site_of(trace) -> a key,
 * equal for tracebacks of the same first frame, or None to leave it
 * out), most bytes first, at most top (0: all); trace is the traceback
 * of the site's largest share.  The grouping is the store's
 * (common/birthsites.c). */
static PyObject *
Graph_birth_sites(GraphObject *self, PyObject *args, PyObject *kw)
{
    static char k_indices[] = "indices", k_site_of[] = "site_of",
                k_top[] = "top";
    static char *kwlist[] = {k_indices, k_site_of, k_top, NULL};
    PyObject *indices, *site_of, *it = NULL, *o, *res = NULL;
    unsigned long long top = 0;
    struct ml_births b = { 0 };
    struct ml_births_site *sites = NULL;
    struct site_call call = { self, NULL };
    size_t n;
    long ns;
    int rc;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|K:birth_sites", kwlist,
                                     &indices, &site_of, &top))
        return NULL;
    if (check_finished(self) < 0)
        return NULL;
    call.site_of = site_of;
    if ((it = PyObject_GetIter(indices)) == NULL)
        return NULL;
    while ((o = PyIter_Next(it)) != NULL) {
        uint32_t i, t;

        rc = get_index(self, o, &i);
        Py_DECREF(o);
        if (rc < 0)
            goto out;
        t = ml_graph_trace(&self->g, i);
        if (t != ML_GRAPH_NONE
                && ml_births_add(&b, 0, t, ml_graph_size(&self->g, i)) < 0) {
            PyErr_NoMemory();
            goto out;
        }
    }
    if (PyErr_Occurred())
        goto out;
    n = ml_births_sort(&b);
    if ((sites = PyMem_Malloc((n ? n : 1) * sizeof(*sites))) == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    ns = ml_births_sites(b.v, n, site_of_py, &call, sites);
    if (ns < 0) {
        if (!PyErr_Occurred())
            raise_rc((int)ns);
        goto out;
    }
    if (top != 0 && (unsigned long long)ns > top)
        ns = (long)top;
    if ((res = PyList_New(ns)) == NULL)
        goto out;
    for (long k = 0; k < ns; k++) {
        PyObject *row = Py_BuildValue("(kKK)", (unsigned long)sites[k].trace,
                                      (unsigned long long)sites[k].count,
                                      (unsigned long long)sites[k].bytes);

        if (row == NULL) {
            Py_CLEAR(res);
            goto out;
        }
        PyList_SET_ITEM(res, k, row);
    }
out:
    Py_XDECREF(it);
    PyMem_Free(sites);
    ml_births_free(&b);
    return res;
}

static PyMethodDef Graph_methods[] = {
    {"trace", (PyCFunction)Graph_trace, METH_O,
     "trace(i) -> object i's traceback id (birth sites), or None"},
    {"traceback_line", (PyCFunction)Graph_traceback_line, METH_O,
     "traceback_line(id) -> the dump's table line of traceback id, or None"},
    {"birth_sites", (PyCFunction)(void (*)(void))Graph_birth_sites,
     METH_VARARGS | METH_KEYWORDS,
     "birth_sites(indices, site_of, top=0) -> [(trace, count, bytes), ...]"},
    {"feed", (PyCFunction)Graph_feed, METH_O,
     "feed(data): parse dump text (bytes or str); a partial last line is kept"},
    {"load_file", (PyCFunction)(void (*)(void))Graph_load_file,
     METH_VARARGS | METH_KEYWORDS,
     "load_file(path, progress=None): feed a file, gunzipped if it starts "
     "with the gzip magic; progress(bytes_read, nobjects) after each MiB"},
    {"finish", (PyCFunction)Graph_finish, METH_NOARGS,
     "finish(): parse the last line, resolve refs; no more feeding"},
    {"find", (PyCFunction)Graph_find, METH_O,
     "find(address) -> index, or -1"},
    {"address", (PyCFunction)Graph_address, METH_O, NULL},
    {"type_str", (PyCFunction)Graph_type_str, METH_O, NULL},
    {"type_id", (PyCFunction)Graph_type_id, METH_O, NULL},
    {"size", (PyCFunction)Graph_size, METH_O, NULL},
    {"len", (PyCFunction)Graph_len_of, METH_O, "len(i) -> int or None"},
    {"value", (PyCFunction)Graph_value, METH_O,
     "value(i) -> str, int, float, bool or None"},
    {"has_value", (PyCFunction)Graph_has_value, METH_O, NULL},
    {"name", (PyCFunction)Graph_name, METH_O, "name(i) -> str or None"},
    {"refs", (PyCFunction)Graph_refs, METH_O,
     "refs(i) -> addresses (dangling ones included)"},
    {"ref_indices", (PyCFunction)Graph_ref_indices, METH_O,
     "ref_indices(i) -> indices; an index >= len(graph) is dangling"},
    {"num_refs", (PyCFunction)Graph_num_refs, METH_O, NULL},
    {"compute_parents", (PyCFunction)Graph_compute_parents, METH_NOARGS, NULL},
    {"parents", (PyCFunction)Graph_parents, METH_VARARGS,
     "parents(i, max=None) -> referrer addresses"},
    {"parent_indices", (PyCFunction)Graph_parent_indices, METH_VARARGS,
     "parent_indices(i, max=None) -> referrer indices"},
    {"num_parents", (PyCFunction)Graph_num_parents, METH_O, NULL},
    {"collapse_instance_dicts", (PyCFunction)Graph_collapse_instance_dicts,
     METH_VARARGS,
     "collapse_instance_dicts(renumber=False) -> how many instance dicts "
     "were folded into their instances (see common/collapse.h), with "
     "renumber (that, the old -> new index table as uint32 bytes or None); "
     "parents must be recomputed"},
    {"remove_expensive_references",
     (PyCFunction)Graph_remove_expensive_references, METH_NOARGS,
     "remove_expensive_references() -> how many refs were removed (see "
     "meliae.loader.ObjManager.remove_expensive_references); parents must "
     "be recomputed"},
    {"guess_intern_dict", (PyCFunction)Graph_guess_intern_dict, METH_NOARGS,
     "guess_intern_dict() -> index of the likeliest interned-strings dict, "
     "or -1"},
    {"summarize", (PyCFunction)(void (*)(void))Graph_summarize,
     METH_VARARGS | METH_KEYWORDS,
     "summarize(mask=None) -> [(type_str, count, total_size, max_size, "
     "max_address)]"},
    {"reachable", (PyCFunction)(void (*)(void))Graph_reachable,
     METH_VARARGS | METH_KEYWORDS,
     "reachable(roots, excluding=None) -> bytearray mask"},
    {"compute_retained", (PyCFunction)Graph_compute_retained, METH_NOARGS,
     "dominator tree and retained sizes (docs/retained.md), once"},
    {"retained", (PyCFunction)Graph_retained, METH_O, "retained(i) -> int"},
    {"idom", (PyCFunction)Graph_idom, METH_O,
     "idom(i) -> immediate dominator's index, -1 for the root"},
    {"diff_from", (PyCFunction)Graph_diff_from, METH_O,
     "diff_from(before) -> (count, bytes, gone_count, gone_bytes, new, groups)"},
    {"path_to_root", (PyCFunction)Graph_path_to_root, METH_O,
     "path_to_root(i) -> None or (chain, text, steps)"},
    {"dominator_chain", (PyCFunction)Graph_dominator_chain, METH_O,
     "dominator_chain(i) -> [i, idom(i), ...]"},
    {"largest_retained", (PyCFunction)Graph_largest_retained, METH_O,
     "largest_retained(k) -> indices, largest retained size first"},
    {"retained_summary", (PyCFunction)Graph_retained_summary, METH_NOARGS,
     "[(type_str, count, retained, max_retained, max_address, top_count)]"},
    {"mask_size", (PyCFunction)Graph_mask_size, METH_O,
     "mask_size(mask) -> total size of the masked objects"},
    {"indices_of_type", (PyCFunction)Graph_indices_of_type, METH_O,
     "indices_of_type(type_str) -> indices, largest first"},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods Graph_as_sequence = {
    .sq_length = (lenfunc)Graph_len,
};

static PyTypeObject Graph_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "meliae._loader.Graph",
    .tp_basicsize = sizeof(GraphObject),
    .tp_dealloc = (destructor)Graph_dealloc,
    .tp_as_sequence = &Graph_as_sequence,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Graph(errors='strict'): a meliae dump as flat arrays",
    .tp_methods = Graph_methods,
    .tp_getset = Graph_getset,
    .tp_new = Graph_new,
};

/* parse_line(line) -> (address, type_str, size, name, len, value, refs),
 * or None for a line without "address" (a header or trailer) or a blank
 * one.  ValueError for a malformed line.  One parser per call: this is the
 * streaming path (iter_objs), not the bulk one. */
static PyObject *
parse_line(PyObject *mod, PyObject *arg)
{
    struct ml_dumpparser p;
    struct ml_dumpline l;
    Py_buffer view;
    const char *s;
    Py_ssize_t n;
    PyObject *res = NULL, *refs = NULL, *name = NULL, *len = NULL, *val = NULL,
             *type = NULL;
    int rc;

    if (PyUnicode_Check(arg)) {
        s = PyUnicode_AsUTF8AndSize(arg, &n);
        if (s == NULL)
            return NULL;
        view.obj = NULL;
    } else {
        if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
            return NULL;
        s = view.buf;
        n = view.len;
    }
    ml_dumpparser_init(&p);
    if (ml_dumpline_blank(s, (size_t)n)) {
        res = Py_NewRef(Py_None);
        goto out;
    }
    rc = ml_dumpline_parse(&p, s, (size_t)n, &l);
    if (rc == ML_EPROTO) {
        PyErr_SetString(PyExc_ValueError, p.err);
        goto out;
    }
    if (rc < 0) {
        raise_rc(rc);
        goto out;
    }
    if (l.kind != ML_LINE_OBJECT) {
        res = Py_NewRef(Py_None);
        goto out;
    }
    type = PyUnicode_DecodeUTF8(l.type, (Py_ssize_t)l.type_len, "surrogatepass");
    if (type == NULL)
        goto out;
    if (l.has_name)
        name = PyUnicode_DecodeUTF8(l.name, (Py_ssize_t)l.name_len, "surrogatepass");
    else
        name = Py_NewRef(Py_None);
    if (name == NULL)
        goto out;
    len = l.has_len ? PyLong_FromUnsignedLongLong(l.len) : Py_NewRef(Py_None);
    if (len == NULL)
        goto out;
    /* The type's own bytes: a type name with a lone surrogate has no
     * UTF-8 form to ask the str for. */
    val = value_obj(l.type_len == 5 && memcmp(l.type, "float", 5) == 0,
                    l.vkind, l.value, l.value_len);
    if (val == NULL)
        goto out;
    refs = PyList_New((Py_ssize_t)l.nrefs);
    if (refs == NULL)
        goto out;
    for (size_t k = 0; k < l.nrefs; k++) {
        PyObject *v = PyLong_FromUnsignedLongLong(l.refs[k]);

        if (v == NULL)
            goto out;
        PyList_SET_ITEM(refs, (Py_ssize_t)k, v);
    }
    res = Py_BuildValue("(KOKOOOO)", (unsigned long long)l.address, type,
                        (unsigned long long)l.size, name, len, val, refs);
out:
    Py_XDECREF(type);
    Py_XDECREF(name);
    Py_XDECREF(len);
    Py_XDECREF(val);
    Py_XDECREF(refs);
    ml_dumpparser_free(&p);
    if (view.obj != NULL)
        PyBuffer_Release(&view);
    return res;
}

static PyMethodDef loader_functions[] = {
    {"parse_line", (PyCFunction)parse_line, METH_O,
     "parse_line(line) -> (address, type_str, size, name, len, value, refs) "
     "or None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef loader_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "meliae._loader",
    .m_doc = "The C core of meliae.loader: a dump as flat arrays.",
    .m_size = -1,
    .m_methods = loader_functions,
};

PyMODINIT_FUNC PyInit__loader(void);

PyMODINIT_FUNC
PyInit__loader(void)
{
    PyObject *m;

    if (PyType_Ready(&Graph_Type) < 0)
        return NULL;
    m = PyModule_Create(&loader_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&Graph_Type);
    if (PyModule_AddObject(m, "Graph", (PyObject *)&Graph_Type) < 0) {
        Py_DECREF(&Graph_Type);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
