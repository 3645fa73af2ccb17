/* SPDX-License-Identifier: MIT
 *
 * verdict.c -- the report's verdict on a process (docs/cli-json.md,
 * "report", verdict) as the one sentence that opens the report, as text
 * (render.c) and on the page (html.c):
 *
 *   meliae: the leak is Session: +18,355 objects (+2.2MiB) in 30 s,
 *   +296.7MiB/h, held by sessions.__dict__ > dict@0x7f3a5c2b1e80 (a dict
 *   of 20,335 entries), born at sessions.py:31 in new_session
 *
 * Its strings come from a snapshot: the text printer has them escaped
 * (cli_escape_doc), the page escapes the sentence for HTML.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* v as an integer with thousands separators ("18,355"), sign if asked;
 * buf: 40 bytes. */
static const char *
count_text(double v, int sign, char *buf)
{
    char digits[32], *w = buf;
    int n, lead;

    snprintf(digits, sizeof digits, "%.0f", fabs(v));
    n = (int)strlen(digits);
    if (v < 0 && digits[0] != '0')
        *w++ = '-';
    else if (sign)
        *w++ = '+';
    lead = n % 3 ? n % 3 : 3;
    for (int i = 0; i < n; i++) {
        if (i > 0 && (i - lead) % 3 == 0)
            *w++ = ',';
        *w++ = digits[i];
    }
    *w = '\0';
    return buf;
}

/* "30 s", "4.5 min", "2.0 h", "3.1 d"; buf: 32 bytes. */
static const char *
span_text(double sec, char *buf)
{
    if (sec < 120)
        snprintf(buf, 32, "%.0f s", sec);
    else if (sec < 7200)
        snprintf(buf, 32, "%.1f min", sec / 60);
    else if (sec < 172800)
        snprintf(buf, 32, "%.1f h", sec / 3600);
    else
        snprintf(buf, 32, "%.1f d", sec / 86400);
    return buf;
}

/* Appends to buf (n bytes, *len used), cut at its end. */
static void
add(char *buf, size_t n, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
add(char *buf, size_t n, size_t *len, const char *fmt, ...)
{
    va_list ap;
    int k;

    if (*len + 1 >= n)
        return;
    va_start(ap, fmt);
    k = vsnprintf(buf + *len, n - *len, fmt, ap);
    va_end(ap);
    if (k > 0)
        *len = *len + (size_t)k < n ? *len + (size_t)k : n - 1;
}

/* "held by PATH (a list of 4,800 entries)": the verdict's held_by. */
static void
held_text(const cJSON *h, char *buf, size_t n, size_t *len)
{
    const char *path = cli_str(h, "path"), *type = cli_str(h, "type");
    const cJSON *owner = cli_get(h, "owner");
    char c[40];

    if (!cJSON_IsObject(h)) {
        add(buf, n, len, ", held by nothing older (unreferenced, or only "
            "by new objects in cycles)");
        return;
    }
    if (type == NULL)
        type = "?";
    if (cJSON_IsTrue(cli_get(h, "new"))) {
        add(buf, n, len, ", held by a new %s@0x%" PRIx64 " that nothing "
            "older refers to", type, (uint64_t)cli_num(h, "address"));
        return;
    }
    if (path != NULL)
        add(buf, n, len, ", held by %s", path);
    else
        add(buf, n, len, ", held by %s@0x%" PRIx64, type,
            (uint64_t)cli_num(h, "address"));
    if (path == NULL && cJSON_IsObject(owner))
        add(buf, n, len, " in %s %s", cli_str(owner, "type") ? cli_str(owner, "type")
            : "?", cli_str(owner, "name") ? cli_str(owner, "name") : "?");
    if (cJSON_IsNumber(cli_get(h, "len")))
        add(buf, n, len, " (a %s of %s entr%s)", type,
            count_text(cli_num(h, "len"), 0, c), cli_num(h, "len") == 1 ? "y" : "ies");
    else
        add(buf, n, len, " (a %s)", type);
}

const char *
cli_verdict_sentence(const struct out *o, const cJSON *proc, char *buf,
                     size_t n)
{
    const cJSON *v = cli_get(proc, "verdict");
    const char *status = cli_str(v, "status");
    char a[40], s[32], r[32];
    size_t len = 0;

    buf[0] = '\0';
    if (status == NULL)
        return buf;
    if (strcmp(status, "no_verdict") == 0) {
        add(buf, n, &len, "meliae: no verdict yet: %.0f snapshot%s, and the "
            "trend test needs %.0f or more", cli_num(v, "snapshots"),
            cli_num(v, "snapshots") == 1 ? "" : "s", cli_num(v, "min_snapshots"));
        return buf;
    }
    if (strcmp(status, "leak") != 0) {
        if (cJSON_IsTrue(cli_get(v, "outside")))
            add(buf, n, &len, "meliae: no Python type leaks, but the "
                "process's memory grows outside Python objects (below)");
        else
            add(buf, n, &len, "meliae: no leak: no type's memory kept "
                "growing over %.0f snapshots (%s)", cli_num(v, "snapshots"),
                span_text(cli_num(v, "seconds"), s));
        return buf;
    }
    cli_size(o, cli_num(v, "bytes_delta"), r);
    add(buf, n, &len, "meliae: the leak is %s: %s objects (%s%s) in %s",
        cli_str(v, "type") ? cli_str(v, "type") : "?",
        count_text(cli_num(v, "count_delta"), 1, a),
        cli_num(v, "bytes_delta") > 0 ? "+" : "", r,
        span_text(cli_num(v, "seconds"), s));
    if (cJSON_IsNumber(cli_get(v, "bytes_per_hour"))) {
        cli_size(o, cli_num(v, "bytes_per_hour"), r);
        add(buf, n, &len, ", %s%s/h", cli_num(v, "bytes_per_hour") > 0 ? "+" : "",
            r);
    } else {
        cli_size(o, cli_num(v, "bytes_per_snapshot"), r);
        add(buf, n, &len, ", %s%s a snapshot",
            cli_num(v, "bytes_per_snapshot") > 0 ? "+" : "", r);
    }
    if (cJSON_IsNumber(cli_get(v, "held_count")))  /* else no diff to tell */
        held_text(cli_get(v, "held_by"), buf, n, &len);
    /* SLOT(i18-births): where they were born, when the snapshots were
     * traced (the first of the suspect's "births") */
    if (cli_str(cli_get(v, "born"), "site") != NULL)
        add(buf, n, &len, ", born at %s", cli_str(cli_get(v, "born"), "site"));
    return buf;
}
