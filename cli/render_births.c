/* SPDX-License-Identifier: MIT
 *
 * render_births.c -- birth sites in the text answers (docs/cli-json.md,
 * "births"): "born at app.py:42 in Cache.add: 1,500 (70.3KiB)".  The
 * strings were escaped for the terminal with the rest of the document
 * (cli_escape_doc).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

void
cli_births_site(FILE *f, const cJSON *site)
{
    fprintf(f, "%s:%.0f", cli_str(site, "file") ? cli_str(site, "file") : "?",
            cli_num(site, "line"));
    if (cli_str(site, "function"))
        fprintf(f, " in %s", cli_str(site, "function"));
}

void
cli_births_lines(const struct out *o, FILE *f, const cJSON *births,
                 const char *indent, int max)
{
    const cJSON *s, *sites = cJSON_GetObjectItemCaseSensitive(births, "sites");
    char a[32];
    int k = 0;

    if (!cJSON_IsObject(births))
        return;
    if (cJSON_GetArraySize(sites) == 0) {
        fprintf(f, "%sborn at: unknown (no traceback: allocated before "
                "tracemalloc started)\n", indent);
        return;
    }
    cJSON_ArrayForEach(s, sites) {
        if (k++ >= max)
            break;
        fprintf(f, "%s%s ", indent, k == 1 ? "born at" : "     or");
        cli_births_site(f, s);
        fprintf(f, ": %.0f (%s)\n", cli_num(s, "count"),
                cli_size(o, cli_num(s, "bytes"), a));
    }
    if (cli_num(births, "traced_count") < cli_num(births, "count"))
        fprintf(f, "%s(%.0f of %.0f new objects have a traceback)\n", indent,
                cli_num(births, "traced_count"), cli_num(births, "count"));
}

void
cli_births_diff(const struct out *o, FILE *f, const cJSON *nw)
{
    const cJSON *t, *births = cJSON_GetObjectItemCaseSensitive(nw, "births");

    if (!cJSON_IsArray(births) || cJSON_GetArraySize(births) == 0)
        return;
    fprintf(f, "\nBirth sites of the new objects:\n");
    cJSON_ArrayForEach(t, births) {
        fprintf(f, "  %s, %.0f new:\n", cli_str(t, "type") ? cli_str(t, "type") : "?",
                cli_num(t, "count"));
        cli_births_lines(o, f, t, "    ", 3);
    }
}
