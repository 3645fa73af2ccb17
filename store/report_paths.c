/* SPDX-License-Identifier: MIT
 *
 * report_paths.c -- a referrer chain of the store as a path in the
 * program's words (common/paths.h, docs/cli-json.md "path"): the store's
 * side of the one implementation the loader shares.
 */
#define _GNU_SOURCE             /* store-int.h: pthread_rwlock_t */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ml-common.h"
#include "paths.h"
#include "report-int.h"

struct pget {
    struct ctx *c;
    uint64_t snap;
};

/* ml_path_get_fn over the store: the object at an address. */
static int
pget(void *ctx, uint64_t addr, int want_refs, struct ml_path_obj *out)
{
    struct pget *g = ctx;
    struct st_object o;
    uint32_t oid;
    int rc;

    if ((rc = st_oid_of(g->c->r, g->snap, addr, &oid)) != 0)
        return rc;
    st_read_refs_max(g->c->r, want_refs ? SIZE_MAX : 0);
    rc = st_object_get(g->c->r, g->snap, oid, &o);
    st_read_refs_max(g->c->r, 0);
    if (rc != 0)
        return rc;
    out->address = o.address;
    out->type = o.type;
    out->type_len = o.type_len;
    out->name = o.name;
    out->name_len = o.name_len;
    out->vkind = o.vkind;
    out->value = o.vkind == ML_VAL_STR || o.vkind == ML_VAL_INT
        ? o.value : NULL;
    out->value_len = o.value_len;
    out->len = o.has_len ? o.len : UINT64_MAX;
    out->refs = want_refs ? o.refs : NULL;
    out->nrefs = want_refs ? o.refs_len : 0;
    return 0;
}

static cJSON *
path_json(const struct ml_path *p)
{
    cJSON *o = cJSON_CreateObject(), *steps;

    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "text", p->text);
    steps = cJSON_AddArrayToObject(o, "steps");
    for (size_t i = 0; i < p->nsteps; i++) {
        const struct ml_path_step *st = &p->steps[i];
        cJSON *s = cJSON_CreateObject(), *obj, *via;

        if (s == NULL)
            break;
        cJSON_AddItemToArray(steps, s);
        obj = cJSON_AddObjectToObject(s, "object");
        cJSON_AddNumberToObject(obj, "address", (double)st->address);
        cJSON_AddStringToObject(obj, "type", st->type);
        via = cJSON_AddObjectToObject(s, "via");
        switch (st->via) {
        case ML_VIA_INDEX:
            cJSON_AddNumberToObject(via, "index", (double)st->index);
            break;
        case ML_VIA_KEY:
            if (st->key != NULL && st->key_kind == ML_VAL_INT)
                cJSON_AddRawToObject(via, "key", st->key);
            else if (st->key != NULL)
                cJSON_AddStringToObject(via, "key", st->key);
            else
                cJSON_AddNullToObject(via, "key");
            cJSON_AddStringToObject(via, "key_type", st->key_type ? st->key_type : "");
            break;
        case ML_VIA_DICT:
        case ML_VIA_CACHE:
        case ML_VIA_REF:
            cJSON_AddNullToObject(via, ml_path_via_name(st->via));
            break;
        default:
            if (st->key != NULL)
                cJSON_AddStringToObject(via, ml_path_via_name(st->via), st->key);
            else
                cJSON_AddNullToObject(via, ml_path_via_name(st->via));
            break;
        }
    }
    return o;
}

int
rp__chain_path(struct ctx *c, uint64_t snap, const uint64_t *chain, size_t n,
               cJSON **out)
{
    struct pget g = { c, snap };
    struct ml_path p;
    int rc;

    *out = NULL;
    if ((rc = ml_path_build(chain, n, pget, &g, &p)) != 0)
        return rc;
    *out = path_json(&p);
    ml_path_free(&p);
    return *out != NULL ? 0 : -ENOMEM;
}
