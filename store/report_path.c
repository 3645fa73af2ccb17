/* SPDX-License-Identifier: MIT
 *
 * report_path.c -- the name of an object as a person reads it: the path
 * from a root down to it, for the accumulation points of diff and report
 * (report_diff.c, report_leak.c) and the verdict's "held by": the
 * referrers command's shortest chain as its path names it
 * ("__main__.BUS.subscribers", common/paths.c), or, when no step has a
 * name, the chain written root first ("__main__.__dict__ >
 * list@0x7f3a5c2b1e80").
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report-int.h"

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
