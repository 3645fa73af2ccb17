/* SPDX-License-Identifier: MIT
 *
 * ml-common.h -- return codes shared by every part of meliae.
 *
 * Convention (libuv/LMDB): 0 is success; negative errno values (-ENOENT,
 * -ENOSPC, ...) pass through unchanged; project codes live below -30000 so
 * they never collide with -errno.  Nothing here depends on Python.
 */
#ifndef ML_COMMON_H
#define ML_COMMON_H

#define ML_ERR_MAP(XX)                                                     \
    XX(ML_EBUSY,    -30001, "a dump is already running in this interpreter") \
    XX(ML_EPROTO,   -30002, "malformed dump line")                         \
    XX(ML_ETOOBIG,  -30003, "value exceeds a documented limit")            \
    XX(ML_EPYTHON,  -30004, "a Python callback raised an exception")    \
    XX(ML_ENOTFOUND, -30005, "no such snapshot or object")               \
    XX(ML_EFULL,    -30006, "the store reached its size limit")           \
    XX(ML_ECORRUPT, -30007, "the store holds a record it cannot decode")

enum ml_err {
#define XX(name, val, msg) name = (val),
    ML_ERR_MAP(XX)
#undef XX
};

/* Never NULL; handles -errno and ML_E* alike. */
const char *ml_strerror(int err);

#endif /* ML_COMMON_H */
