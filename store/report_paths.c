/* SPDX-License-Identifier: MIT
 *
 * report_paths.c -- a referrer chain of the store as a path in the
 * program's words (common/paths.h, docs/cli-json.md "path"): the store's
 * side of the one implementation the loader shares.  And the name of one
 * object as a person reads it, for the accumulation points of diff and
 * report (report_diff.c, report_leak.c) and the verdict's "held by"
 * (rp__path_json): the referrers command's shortest chain as its path
 * names it ("__main__.BUS.subscribers"), or, when no step has a name,
 * the chain written root first ("__main__.__dict__ > list@0x7f3a5c2b1e80").
 */
#define _GNU_SOURCE             /* store-int.h: pthread_rwlock_t */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
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
pget(void *ctx, uint64_t addr, uint64_t child, struct ml_path_obj *out)
{
    struct pget *g = ctx;
    struct st_object o;
    uint32_t oid;
    size_t at = ML_PATH_NOT_HELD;
    uint64_t prev = 0;
    int rc;

    if ((rc = st_oid_of(g->c->r, g->snap, addr, &oid)) != 0)
        return rc;
    if (child != 0) {
        rc = st_object_child(g->c->r, g->snap, oid, child, &o, &at, &prev);
    } else {
        st_read_refs_max(g->c->r, 0);
        rc = st_object_get(g->c->r, g->snap, oid, &o);
    }
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
    out->child_at = at == SIZE_MAX ? ML_PATH_NOT_HELD : at;
    out->child_prev = prev;
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

/* ---- one object's name, for diff, report and the verdict ---- */

static int
is(const cJSON *o, const char *type)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");

    return cJSON_IsString(t) && strcmp(t->valuestring, type) == 0;
}

/* Appends s to buf (of cap bytes, *len used); cut, not overrun. */
static void
put(char *buf, size_t cap, size_t *len, const char *s)
{
    size_t n = strlen(s);

    if (*len + n >= cap)
        n = cap - 1 - *len;
    memcpy(buf + *len, s, n);
    *len += n;
    buf[*len] = '\0';
}

/* The chain [object, its referrer, ..., root] as "root > ... > object":
 * a module by its name, a module's __dict__ as "name.__dict__", any
 * other hop as type@0xaddress. */
static cJSON *
chain_text(const cJSON *chain)
{
    char buf[1024], hop[320];
    size_t len = 0;
    int n = cJSON_GetArraySize(chain);

    buf[0] = '\0';
    for (int i = n - 1; i >= 0; i--) {
        const cJSON *h = cJSON_GetArrayItem(chain, i);
        const cJSON *up = i + 1 < n ? cJSON_GetArrayItem(chain, i + 1) : NULL;
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(h, "name");
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(h, "type");

        if (is(h, "module") && i > 0 && is(cJSON_GetArrayItem(chain, i - 1),
                                           "dict"))
            continue;               /* said with its __dict__ */
        if (up != NULL && is(up, "module") && is(h, "dict")) {
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(up, "name");

            snprintf(hop, sizeof hop, "%.200s.__dict__",
                     cJSON_IsString(m) ? m->valuestring : "?");
        } else if (is(h, "module") && cJSON_IsString(name)) {
            snprintf(hop, sizeof hop, "%.200s", name->valuestring);
        } else {
            snprintf(hop, sizeof hop, "%.200s@0x%" PRIx64,
                     cJSON_IsString(type) ? type->valuestring : "?",
                     (uint64_t)cJSON_GetNumberValue(
                         cJSON_GetObjectItemCaseSensitive(h, "address")));
        }
        if (len > 0)
            put(buf, sizeof buf, &len, " > ");
        put(buf, sizeof buf, &len, hop);
    }
    return cJSON_CreateString(buf);
}

cJSON *
rp__path_json(struct ctx *c, const struct snap *s, uint64_t addr)
{
    cJSON *req = cJSON_CreateObject(), *ans = cJSON_CreateObject();
    cJSON *out = NULL;
    char buf[24];

    if (req == NULL || ans == NULL)
        goto out;
    snprintf(buf, sizeof buf, "%" PRIu64, s->id);
    cJSON_AddStringToObject(req, "snap", buf);
    snprintf(buf, sizeof buf, "%" PRIu64, addr);
    cJSON_AddStringToObject(req, "address", buf);
    cJSON_AddNumberToObject(req, "chains", 1);
    if (rp__cmd_referrers(c, req, ans) != 0) {
        c->err[0] = '\0';       /* no path is no error of the answer */
        goto out;
    }
    /* The named path (common/paths.c, as referrers prints it); the
     * chain of type@address hops only when it has none. */
    const cJSON *paths = cJSON_GetObjectItemCaseSensitive(ans, "paths");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(paths, 0), "text");
    const cJSON *chains = cJSON_GetObjectItemCaseSensitive(ans, "chains");
    if (cJSON_IsString(text) && text->valuestring[0] != '\0')
        out = cJSON_CreateString(text->valuestring);
    else if (cJSON_GetArraySize(chains) > 0)
        out = chain_text(cJSON_GetArrayItem(chains, 0));
out:
    cJSON_Delete(req);
    cJSON_Delete(ans);
    return out;
}
