/* SPDX-License-Identifier: MIT
 *
 * err.c -- text for the return codes of ml-common.h.
 */
#include <string.h>

#include "ml-common.h"

const char *
ml_strerror(int err)
{
    switch (err) {
#define XX(name, val, msg) case val: return msg;
    ML_ERR_MAP(XX)
#undef XX
    }
    if (err < 0 && err > -4096)
        return strerror(-err);
    return err == 0 ? "success" : "unknown error";
}
