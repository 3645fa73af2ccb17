/* SPDX-License-Identifier: MIT
 *
 * render.c -- meliae-cli's answers for people: the JSON document of
 * store/report.c as tables.  Sizes in KiB/MiB/GiB (--bytes: raw), hex
 * addresses, colour and sparklines only on a terminal (and colour only
 * without NO_COLOR).
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "utf8.h"

#define BOLD(o) ((o)->color ? "\033[1m" : "")
#define RED(o) ((o)->color ? "\033[1;31m" : "")
#define DIM(o) ((o)->color ? "\033[2m" : "")
#define OFF(o) ((o)->color ? "\033[0m" : "")

const char *
cli_size(const struct out *o, double bytes, char *buf)
{
    static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    double v = fabs(bytes);
    int u = 0;

    if (o->bytes) {
        snprintf(buf, 32, "%.0f", bytes);
        return buf;
    }
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, 32, "%.0f%s", bytes, unit[0]);
    else
        snprintf(buf, 32, "%s%.1f%s", bytes < 0 ? "-" : "", v, unit[u]);
    return buf;
}

#define TYPE_COL 32             /* growth's, diff's and report's TYPE */

/* type in a column of TYPE_COL characters: padded, or cut in the middle
 * ("breezy.bzr._stat…c.StaticTuple": a module path's both ends say the
 * most) so that the columns after it stay in place; --json has the whole
 * name.  buf: TYPE_COL * 4 + 8 bytes. */
static const char *
type_cell(const struct out *o, const char *type, char *buf, size_t n)
{
    const char *dots = o->utf8 ? "\xe2\x80\xa6" : "...";   /* U+2026 */
    size_t nd = o->utf8 ? 1 : 3, len, chars = 0, head, tail;

    if (type == NULL)
        type = "?";
    len = strlen(type);
    for (size_t i = 0; i < len; i++)    /* lead bytes: characters */
        chars += ((unsigned char)type[i] & 0xc0) != 0x80;
    if (chars <= TYPE_COL) {
        snprintf(buf, n, "%s%*s", type, (int)(TYPE_COL - chars), "");
        return buf;
    }
    head = (TYPE_COL - nd) / 2;
    tail = TYPE_COL - nd - head;
    snprintf(buf, n, "%.*s%s%s", (int)ml_utf8_prefix(type, len, head), type,
             dots, type + ml_utf8_prefix(type, len, chars - tail));
    return buf;
}

/* "+1.2MiB" / "-3" style deltas; buf: 40 bytes. */
static const char *
delta_size(const struct out *o, double d, char *buf)
{
    char t[32];

    cli_size(o, d, t);
    snprintf(buf, 40, "%s%s", d > 0 ? "+" : "", t);
    return buf;
}

/* One sentence on the process's memory beside its objects ("memory" of
 * growth and report, docs/cli-json.md) into buf (n bytes), or "" when
 * there are no RSS figures.  *alarm says the growth is outside Python
 * objects: the verdict that opens the process's answer. */
const char *
cli_memory_sentence(const struct out *o, const cJSON *mem, char *buf,
                    size_t n, int *alarm)
{
    const cJSON *rss = cJSON_GetObjectItemCaseSensitive(mem, "rss");
    const cJSON *heap = cJSON_GetObjectItemCaseSensitive(mem, "heap");
    const cJSON *pm = cJSON_GetObjectItemCaseSensitive(mem, "pymalloc");
    const char *v = cli_str(mem, "verdict"), *to = cli_str(mem, "points_to");
    char r0[32], r1[32], dr[40], dh[40], un[40], ar[40], al[40];

    *alarm = 0;
    buf[0] = '\0';
    if (!cJSON_IsObject(rss) || !cJSON_IsObject(heap) || v == NULL)
        return buf;
    delta_size(o, cli_num(rss, "delta"), dr);
    delta_size(o, cli_num(heap, "delta"), dh);
    if (strcmp(v, "outside") == 0) {
        const cJSON *tr = cJSON_GetObjectItemCaseSensitive(mem, "trend");
        const char *which = "native allocations or fragmentation (no "
            "allocator figures to tell which)";
        char w[200];

        if (cJSON_IsObject(pm)) {
            delta_size(o, cli_num(cJSON_GetObjectItemCaseSensitive(pm, "arena_bytes"),
                              "delta"), ar);
            delta_size(o, cli_num(cJSON_GetObjectItemCaseSensitive(pm, "allocated_bytes"),
                              "delta"), al);
            if (to != NULL && strcmp(to, "fragmentation") == 0)
                snprintf(w, sizeof w, "fragmentation: Python's object "
                         "allocator kept its arenas (%s) while their objects "
                         "went (allocated blocks %s)", ar, al);
            else
                snprintf(w, sizeof w, "native allocations (C extensions, "
                         "libraries): Python's object allocator is not the "
                         "one that grew (arenas %s)", ar);
            which = w;
        }
        *alarm = 1;
        snprintf(buf, n, "RSS %s over %.0f snapshots (a rising trend, p=%.2g); "
                 "Python objects %s: the growth is outside Python objects, "
                 "%s", dr, cli_num(mem, "snapshots"), cli_num(tr, "p"), dh, which);
        return buf;
    }
    delta_size(o, cli_num(mem, "unexplained_delta"), un);
    snprintf(buf, n, "RSS %s -> %s (%s), Python objects %s, outside them %s%s",
             cli_size(o, cli_num(rss, "first"), r0), cli_size(o, cli_num(rss, "last"), r1),
             dr, dh, un,
             strcmp(v, "objects") == 0 ? ": RSS grows with the objects"
             : strcmp(v, "few_snapshots") == 0 ? " (too few snapshots for a trend)"
             : strcmp(v, "no_trend") == 0 ? ": no upward trend"
             : strcmp(v, "below_floor") == 0 ? ": rising, but by less than the floor"
             : "");
    return buf;
}

/* The process's memory line: with alarm set, only the verdict that the
 * growth is outside Python objects (the answer's first line); else only
 * the figures of a process without that verdict (its section's last
 * line). */
static void
memory_line(const struct out *o, FILE *f, const cJSON *p, int alarm)
{
    char line[512];
    int is_alarm;

    cli_memory_sentence(o, cJSON_GetObjectItemCaseSensitive(p, "memory"),
                        line, sizeof line, &is_alarm);
    if (line[0] == '\0' || is_alarm != alarm)
        return;
    if (alarm)
        fprintf(f, "%smeliae: %s%s\n", RED(o), line, OFF(o));
    else
        fprintf(f, "%s%s%s\n", DIM(o), line, OFF(o));
}

/* type@0xaddr, and what is known of it. */
static void
hop(const struct out *o, FILE *f, const cJSON *ob)
{
    const char *type = cli_str(ob, "type"), *name = cli_str(ob, "name");
    const char *value = cli_str(ob, "value");
    char sz[32];

    fprintf(f, "%s%s%s@0x%" PRIx64, BOLD(o), type ? type : "?", OFF(o),
            (uint64_t)cli_num(ob, "address"));
    if (type == NULL) {
        fprintf(f, " (not in the snapshot)");
        return;
    }
    fprintf(f, " %s", cli_size(o, cli_num(ob, "size"), sz));
    if (cJSON_GetObjectItemCaseSensitive(ob, "len"))
        fprintf(f, " len=%.0f", cli_num(ob, "len"));
    if (name)
        fprintf(f, " %s", name);
    if (value) {
        /* 60 characters, not bytes */
        size_t n = ml_utf8_prefix(value, strlen(value), 60);

        fprintf(f, " %s%.*s%s", DIM(o), (int)n, value, OFF(o));
    }
}

/* Who took snapshot s: "pid 4242", or for an imported file (whose pid is
 * 0, or the importing CLI's) "imported from heap.json"; buf: 300. */
static const char *
origin(const cJSON *s, char *buf)
{
    const char *file = cli_str(s, "file");

    if (file != NULL)
        snprintf(buf, 300, "imported from %s", file);
    else
        snprintf(buf, 300, "pid %.0f", cli_num(s, "pid"));
    return buf;
}

/* A process's heading in growth and report: "process 4242 \"web\"
 * app.py", or for files imported under one label "imported files
 * \"fx\", the last dump3.json" (their pid says nothing); buf: 600. */
static const char *
proc_head(const cJSON *p, char *buf)
{
    const char *label = cli_str(p, "label"), *prog = cli_str(p, "program");
    const char *file = cli_str(cJSON_GetObjectItemCaseSensitive(p, "last"), "file");

    if (file != NULL)
        snprintf(buf, 600, "imported files%s%s%s, the last %s",
                 label ? " \"" : "", label ? label : "", label ? "\"" : "",
                 file);
    else
        snprintf(buf, 600, "process %.0f%s%s%s%s%s", cli_num(p, "pid"),
                 label ? " \"" : "", label ? label : "", label ? "\"" : "",
                 prog ? " " : "", prog ? prog : "");
    return buf;
}

static void
snap_line(const struct out *o, FILE *f, const cJSON *s)
{
    const char *label = cli_str(s, "label"), *prog = cli_str(s, "program");
    char sz[32], who[300];

    if (cli_str(s, "file") != NULL)
        prog = NULL;            /* the file's path, said by origin */
    fprintf(f, "snapshot %.0f at %s, %s%s%s%s%s%s, %.0f objects, %s",
            cli_num(s, "id"), cli_str(s, "time") ? cli_str(s, "time") : "?",
            origin(s, who), label ? " \"" : "", label ? label : "",
            label ? "\"" : "", prog ? " " : "", prog ? prog : "",
            cli_num(s, "objects"), cli_size(o, cli_num(s, "bytes"), sz));
}

static void
render_snapshots(const struct out *o, FILE *f, const cJSON *doc)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(doc, "snapshots"), *s;
    char sz[32];

    if (cJSON_GetArraySize(arr) == 0) {
        fprintf(f, "no snapshots\n");
        return;
    }
    fprintf(f, "%s%6s  %-24s %7s %6s  %-16s %10s %10s %10s  %s%s\n", BOLD(o), "ID",
            "TIME (UTC)", "PID", "UID", "LABEL", "OBJECTS", "SIZE", "RSS",
            "PROGRAM", OFF(o));
    cJSON_ArrayForEach(s, arr) {
        const cJSON *uid = cJSON_GetObjectItemCaseSensitive(s, "uid");
        const cJSON *rss = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(s, "process"), "rss");
        char ub[16] = "-", rs[32] = "-", pid[16] = "-", who[300];
        const char *prog = cli_str(s, "program") ? cli_str(s, "program") : "-";

        if (cJSON_IsNumber(uid))
            snprintf(ub, sizeof ub, "%.0f", uid->valuedouble);
        if (cJSON_IsNumber(rss))
            cli_size(o, rss->valuedouble, rs);
        if (cli_str(s, "file") != NULL)     /* not a process: a file */
            prog = origin(s, who);
        else
            snprintf(pid, sizeof pid, "%.0f", cli_num(s, "pid"));
        fprintf(f, "%6.0f  %-24s %7s %6s  %-16s %10.0f %10s %10s  %s%s\n",
                cli_num(s, "id"), cli_str(s, "time") ? cli_str(s, "time") : "?",
                pid, ub, cli_str(s, "label") ? cli_str(s, "label") : "-",
                cli_num(s, "objects"), cli_size(o, cli_num(s, "bytes"), sz), rs, prog,
                cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(s, "graph"))
                    ? " (summary only)" : "");
    }
}

/* The seed's table: Index Count % Size % Cum Max Kind. */
static void
render_summary(const struct out *o, FILE *f, const cJSON *doc)
{
    const cJSON *t, *arr = cJSON_GetObjectItemCaseSensitive(doc, "types");
    double tc = cli_num(doc, "total_objects"), tb = cli_num(doc, "total_bytes");
    double cum = 0;
    char sz[32], mx[32];
    int i = 0;

    snap_line(o, f, cJSON_GetObjectItemCaseSensitive(doc, "snapshot"));
    fprintf(f, "\nTotal %.0f objects, %.0f types, Total size = %s (%.0f bytes)\n",
            tc, cli_num(doc, "total_types"), cli_size(&(struct out){ 0 }, tb, sz), tb);
    fprintf(f, "%s Index   Count   %%      Size   %% Cum     Max Kind%s\n",
            BOLD(o), OFF(o));
    cJSON_ArrayForEach(t, arr) {
        double c = cli_num(t, "count"), b = cli_num(t, "bytes");

        cum += b;
        fprintf(f, "%6d %7.0f %3.0f %9s %3.0f %3.0f %7s %s\n", i++, c,
                tc > 0 ? floor(c * 100 / tc) : 0, cli_size(o, b, sz),
                tb > 0 ? floor(b * 100 / tb) : 0,
                tb > 0 ? floor(cum * 100 / tb) : 0,
                cli_size(o, cli_num(t, "max_size"), mx),
                cli_str(t, "type") ? cli_str(t, "type") : "?");
    }
}

static void
sparkline(const struct out *o, FILE *f, const cJSON *series)
{
    static const char *const bars[] = { "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█" };
    const cJSON *x;
    double lo = INFINITY, hi = -INFINITY;
    int n = cJSON_GetArraySize(series), step = n > 40 ? (n + 39) / 40 : 1, i = 0;

    if (!o->utf8 || n < 2)
        return;
    cJSON_ArrayForEach(x, series) {
        lo = fmin(lo, x->valuedouble);
        hi = fmax(hi, x->valuedouble);
    }
    fputs("  ", f);
    cJSON_ArrayForEach(x, series) {
        if (i++ % step != 0 && i != n)
            continue;
        int b = hi > lo ? (int)((x->valuedouble - lo) * 7.999 / (hi - lo)) : 0;
        fputs(bars[b], f);
    }
}

/* The trend's slope of the by series per hour ("+1.2MiB/h", "+40/h"),
 * per snapshot when the snapshots have no distinct times; buf: 48. */
static const char *
slope_text(const struct out *o, const cJSON *tr, int by_count, char *buf)
{
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(tr, "slope_per_hour");
    double v = cJSON_IsNumber(h) ? h->valuedouble : cli_num(tr, "slope");
    const char *unit = cJSON_IsNumber(h) ? "/h" : "/snap";
    char t[40];

    if (by_count)
        snprintf(t, sizeof t, "%+.0f", v);
    else
        delta_size(o, v, t);
    snprintf(buf, 48, "%s%s", t, unit);
    return buf;
}

static const char *
sort_text(const char *sort, int by_count)
{
    if (sort == NULL || strcmp(sort, "score") == 0)
        return by_count ? "score (suspects first, then the trend's Z of the count)"
                        : "score (suspects first, then the trend's Z of the size)";
    if (strcmp(sort, "bytes") == 0)
        return "net growth of the size";
    if (strcmp(sort, "count") == 0)
        return "net growth of the count";
    return by_count ? "slope of the count" : "slope of the size";
}

static void
render_growth(const struct out *o, FILE *f, const cJSON *doc)
{
    const cJSON *p, *t, *procs = cJSON_GetObjectItemCaseSensitive(doc, "processes");
    int by_count = cli_str(doc, "by") && strcmp(cli_str(doc, "by"), "count") == 0;

    if (cJSON_GetArraySize(procs) == 0) {
        fprintf(f, "no snapshots in the window\n");
        return;
    }
    cJSON_ArrayForEach(p, procs) {
        const cJSON *first = cJSON_GetObjectItemCaseSensitive(p, "first");
        const cJSON *last = cJSON_GetObjectItemCaseSensitive(p, "last");
        char head[600], a[32], b[32], d[40], sl[48];

        memory_line(o, f, p, 1);
        fprintf(f, "%s%s%s: %.0f snapshots, %s .. %s (ids %.0f..%.0f)\n",
                BOLD(o), proc_head(p, head), OFF(o), cli_num(p, "snapshots"),
                cli_str(first, "time"), cli_str(last, "time"), cli_num(first, "id"),
                cli_num(last, "id"));
        fprintf(f, "ranked by %s\n", sort_text(cli_str(doc, "sort"), by_count));
        if (cli_num(p, "snapshots") < cli_num(doc, "min_snapshots"))
            fprintf(f, "%s(fewer than %.0f snapshots: no trend can be "
                    "significant yet, so no leak suspect)%s\n", DIM(o),
                    cli_num(doc, "min_snapshots"), OFF(o));
        fprintf(f, "%s  %-32s %21s %9s %21s %10s %7s %13s%s\n", BOLD(o), "TYPE",
                "COUNT", "+/-", "SIZE", "+/-", "TREND Z", "SLOPE", OFF(o));
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(p, "types")) {
            double cb = cli_num(t, "count_before"), ca = cli_num(t, "count_after");
            double bb = cli_num(t, "bytes_before"), ba = cli_num(t, "bytes_after");
            int sus = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "suspect"));
            const char *verdict = cli_str(t, "verdict");
            const cJSON *tr = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(t, "trend"),
                by_count ? "count" : "bytes");
            char cnt[48], siz[80], name[TYPE_COL * 4 + 8];

            snprintf(cnt, sizeof cnt, "%.0f -> %.0f", cb, ca);
            snprintf(siz, sizeof siz, "%s -> %s", cli_size(o, bb, a),
                     cli_size(o, ba, b));
            fprintf(f, "  %s%s%s %21s %+9.0f %21s %10s %+7.2f %13s", sus ? RED(o) : "",
                    type_cell(o, cli_str(t, "type"), name, sizeof name),
                    sus ? OFF(o) : "", cnt, ca - cb, siz,
                    delta_size(o, ba - bb, d), cli_num(t, "score"),
                    slope_text(o, tr, by_count, sl));
            sparkline(o, f, cJSON_GetObjectItemCaseSensitive(t, "series"));
            if (sus)
                fprintf(f, "  %sleak suspect: rising trend, p=%.2g%s", RED(o),
                        cli_num(tr, "p"), OFF(o));
            else if (verdict && strcmp(verdict, "below_floor") == 0)
                fprintf(f, "  %srising, but by less than the floor%s", DIM(o),
                        OFF(o));
            else if (verdict && strcmp(verdict, "stopped") == 0)
                fprintf(f, "  %sgrew in the first half only: a warm-up%s",
                        DIM(o), OFF(o));
            fputc('\n', f);
            if (sus)
                cli_births_lines(o, f, cJSON_GetObjectItemCaseSensitive(
                                     t, "births"), "      ", 1);
        }
        memory_line(o, f, p, 0);
        fputc('\n', f);
    }
}

/* Where a group of new objects hangs off the old heap (its accumulation
 * point, docs/cli-json.md "diff"): its path when the answer has one
 * ("__main__.__dict__ > list@0x.. len=4800"), else the object and its
 * owner ("list@0x.. owned by module app"). */
static void
holder(const struct out *o, FILE *f, const cJSON *h)
{
    const cJSON *owner;
    const char *path = cli_str(h, "path");

    if (h == NULL || cJSON_IsNull(h)) {
        fprintf(f, "held by nothing older (unreferenced, or only by new "
                "objects in cycles)");
        return;
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(h, "new"))) {
        fprintf(f, "at new ");
        hop(o, f, h);
        return;
    }
    if (path != NULL) {
        fprintf(f, "at %s%s%s", BOLD(o), path, OFF(o));
        if (cJSON_GetObjectItemCaseSensitive(h, "len"))
            fprintf(f, " len=%.0f", cli_num(h, "len"));
        return;
    }
    fprintf(f, "at ");
    hop(o, f, h);
    owner = cJSON_GetObjectItemCaseSensitive(h, "owner");
    if (owner != NULL) {
        fprintf(f, ", owned by ");
        hop(o, f, owner);
    }
}

static void
render_diff(const struct out *o, FILE *f, const cJSON *doc)
{
    const cJSON *t, *x, *nw = cJSON_GetObjectItemCaseSensitive(doc, "new_objects");
    const cJSON *gone = cJSON_GetObjectItemCaseSensitive(doc, "gone_objects");
    char a[40], b[32], name[TYPE_COL * 4 + 8];

    fprintf(f, "from ");
    snap_line(o, f, cJSON_GetObjectItemCaseSensitive(doc, "a"));
    fprintf(f, "\n  to ");
    snap_line(o, f, cJSON_GetObjectItemCaseSensitive(doc, "b"));
    fprintf(f, "\n\n%s  %-32s %9s %12s %12s%s\n", BOLD(o), "TYPE", "+/- COUNT",
            "+/- SIZE", "SIZE NOW", OFF(o));
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(doc, "types")) {
        fprintf(f, "  %s %+9.0f %12s %12s\n",
                type_cell(o, cli_str(t, "type"), name, sizeof name),
                cli_num(t, "count_after") - cli_num(t, "count_before"),
                delta_size(o, cli_num(t, "bytes_after") - cli_num(t, "bytes_before"), a),
                cli_size(o, cli_num(t, "bytes_after"), b));
    }
    if (nw == NULL || cJSON_IsNull(nw)) {
        fprintf(f, "\n%s\n", cli_str(doc, "note") ? cli_str(doc, "note") : "");
        return;
    }
    fprintf(f, "\n%sNew objects: %.0f (%s); gone: %.0f (%s)%s\n", BOLD(o),
            cli_num(nw, "count"), cli_size(o, cli_num(nw, "bytes"), a),
            cli_num(gone, "count"), cli_size(o, cli_num(gone, "bytes"), b), OFF(o));
    fprintf(f, "%sby where they hang off the objects of the first snapshot:%s\n",
            DIM(o), OFF(o));
    /* one line per accumulation point, its types after the colon */
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(nw, "groups")) {
        const cJSON *types = cJSON_GetObjectItemCaseSensitive(t, "types");
        int k = 0;

        fprintf(f, "  %.0f new (%s) ", cli_num(t, "count"),
                cli_size(o, cli_num(t, "bytes"), a));
        holder(o, f, cJSON_GetObjectItemCaseSensitive(t, "holder"));
        fputc(':', f);
        cJSON_ArrayForEach(x, types)
            fprintf(f, "%s %.0f %s (%s)", k++ ? "," : "", cli_num(x, "count"),
                    cli_str(x, "type") ? cli_str(x, "type") : "?",
                    cli_size(o, cli_num(x, "bytes"), b));
        if (cli_num(t, "types_total") > k)
            fprintf(f, ", %.0f more types", cli_num(t, "types_total") - k);
        fputc('\n', f);
    }
    if (cli_num(nw, "groups_total") > cJSON_GetArraySize(
            cJSON_GetObjectItemCaseSensitive(nw, "groups")))
        fprintf(f, "  %s(%.0f groups in all; --top 0 shows them all)%s\n",
                DIM(o), cli_num(nw, "groups_total"), OFF(o));
    cli_births_diff(o, f, nw);
}

static int
is_type(const cJSON *ob, const char *t)
{
    const char *s = cli_str(ob, "type");

    return s != NULL && strcmp(s, t) == 0;
}

/* One referrer chain on one line: "a <- b <- c", naming the module whose
 * __dict__ a dict is. */
static void
chain_line(const struct out *o, FILE *f, const cJSON *chain)
{
    int nh = cJSON_GetArraySize(chain);

    for (int i = 0; i < nh; i++) {
        const cJSON *h = cJSON_GetArrayItem(chain, i);
        const cJSON *next = i + 1 < nh ? cJSON_GetArrayItem(chain, i + 1) : NULL;

        if (i > 0)
            fprintf(f, " <- ");
        hop(o, f, h);
        if (next && is_type(h, "dict") && is_type(next, "module"))
            fprintf(f, " (__dict__ of module %s)",
                    cli_str(next, "name") ? cli_str(next, "name") : "?");
    }
    fputc('\n', f);
}

static void
render_referrers(const struct out *o, FILE *f, const cJSON *doc)
{
    const cJSON *chains = cJSON_GetObjectItemCaseSensitive(doc, "chains"), *c;
    int n = 0;

    const cJSON *paths = cJSON_GetObjectItemCaseSensitive(doc, "paths");

    cJSON_ArrayForEach(c, chains) {
        const cJSON *pt = cJSON_GetArrayItem(paths, n);

        /* the path in the program's words, then the objects it goes
         * through: the target's address, each step's type */
        if (cli_str(pt, "text"))
            fprintf(f, "%s%s%s\n    ", BOLD(o), cli_str(pt, "text"), OFF(o));
        chain_line(o, f, c);
        n++;
    }
    if (n == 0) {
        fprintf(f, "no chain to a root within the search (%.0f objects visited): ",
                cli_num(doc, "visited"));
        hop(o, f, cJSON_GetObjectItemCaseSensitive(doc, "object"));
        fprintf(f, " is kept alive only by a cycle, or deeper than --depth\n");
    } else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "truncated"))) {
        fprintf(f, "%s(search cut at --depth or %.0f objects)%s\n", DIM(o),
                cli_num(doc, "visited"), OFF(o));
    }
}

static void
render_show(const struct out *o, FILE *f, const cJSON *doc)
{
    const cJSON *ob = cJSON_GetObjectItemCaseSensitive(doc, "object"), *x;

    snap_line(o, f, cJSON_GetObjectItemCaseSensitive(doc, "snapshot"));
    fputs("\n\n", f);
    hop(o, f, ob);
    fprintf(f, "\n\n%srefs (%.0f):%s\n", BOLD(o), cli_num(ob, "nrefs"), OFF(o));
    cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(ob, "refs")) {
        fputs("  ", f);
        hop(o, f, x);
        fputc('\n', f);
    }
    fprintf(f, "%sreferrers (%.0f):%s\n", BOLD(o), cli_num(ob, "nreferrers"), OFF(o));
    cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(ob, "referrers")) {
        fputs("  ", f);
        hop(o, f, x);
        fputc('\n', f);
    }
}

/* ---- report ---- */

static void
report_suspect(const struct out *o, FILE *f, const cJSON *p, const cJSON *s,
               int i)
{
    const cJSON *tb = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(s, "trend"), "bytes");
    const cJSON *chain = cJSON_GetObjectItemCaseSensitive(s, "chain");
    const cJSON *nw = cJSON_GetObjectItemCaseSensitive(s, "new_objects");
    const cJSON *diff = cJSON_GetObjectItemCaseSensitive(p, "diff"), *x;
    const cJSON *ret = cJSON_GetObjectItemCaseSensitive(s, "retained");
    char a[40], b[32], c[32], sl[48];

    fprintf(f, "\n%s%d. %s%s%s  %+.0f objects, %s (%s -> %s), p=%.2g, %s",
            BOLD(o), i, RED(o), cli_str(s, "type") ? cli_str(s, "type") : "?", OFF(o),
            cli_num(s, "count_after") - cli_num(s, "count_before"),
            delta_size(o, cli_num(s, "bytes_after") - cli_num(s, "bytes_before"), a),
            cli_size(o, cli_num(s, "bytes_before"), b),
            cli_size(o, cli_num(s, "bytes_after"), c), cli_num(tb, "p"),
            slope_text(o, tb, 0, sl));
    sparkline(o, f, cJSON_GetObjectItemCaseSensitive(s, "series_bytes"));
    fputc('\n', f);
    if (cli_str(s, "grows_with"))
        fprintf(f, "   grows with %s: its new objects hang below the new %s "
                "objects\n", cli_str(s, "grows_with"), cli_str(s, "grows_with"));
    fprintf(f, "   retained size: ");
    if (cJSON_IsObject(ret))
        fprintf(f, "%s\n", cli_size(o, cli_num(ret, "bytes"), b));
    else
        fprintf(f, "%s\n", cli_str(s, "retained_note") ? cli_str(s, "retained_note")
                                                   : "not computed");
    fprintf(f, "   kept alive by: ");
    if (cJSON_IsArray(chain) && cJSON_GetArraySize(chain) > 0) {
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(s, "path");

        if (cli_str(path, "text"))
            fprintf(f, "%s%s%s\n     ", BOLD(o), cli_str(path, "text"), OFF(o));
        chain_line(o, f, chain);
    } else {
        fprintf(f, "%s\n", cli_str(s, "chain_note") ? cli_str(s, "chain_note")
                                                : "no chain to a root found");
    }
    cli_births_lines(o, f, cJSON_GetObjectItemCaseSensitive(s, "births"),
                     "   ", 3);
    if (!cJSON_IsObject(nw)) {
        fprintf(f, "   new objects: %s\n", cli_str(diff, "note") ? cli_str(diff, "note")
                                                            : "no diff");
        return;
    }
    fprintf(f, "   new since snapshot %.0f, alive in the last %d: %.0f (%s)\n",
            cli_num(diff, "a"), cJSON_GetArraySize(
                cJSON_GetObjectItemCaseSensitive(diff, "alive_in")),
            cli_num(nw, "count"), cli_size(o, cli_num(nw, "bytes"), b));
    /* by accumulation point: where they hang off the old heap */
    cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(nw, "groups")) {
        fprintf(f, "     %.0f (%s) ", cli_num(x, "count"),
                cli_size(o, cli_num(x, "bytes"), b));
        holder(o, f, cJSON_GetObjectItemCaseSensitive(x, "holder"));
        fprintf(f, ", %.0f hop%s down, with %.0f new objects in all (%s)\n",
                cli_num(x, "depth"), cli_num(x, "depth") == 1 ? "" : "s",
                cli_num(x, "group_count"), cli_size(o, cli_num(x, "group_bytes"), c));
    }
}

/* Too few snapshots for the trend test: what grew, first against last,
 * rather than nothing at all. */
static void
report_deltas(const struct out *o, FILE *f, const cJSON *doc, const cJSON *p)
{
    const cJSON *t, *dl = cJSON_GetObjectItemCaseSensitive(p, "deltas");
    char a[40], b[32], c[32], name[TYPE_COL * 4 + 8];

    fprintf(f, "no verdict yet: the trend test needs %.0f snapshots or more "
            "(%.0f so far)\n", cli_num(doc, "min_snapshots"), cli_num(p, "snapshots"));
    if (cJSON_GetArraySize(dl) == 0) {
        fprintf(f, "no type grew from snapshot %.0f to %.0f\n\n",
                cli_num(cJSON_GetObjectItemCaseSensitive(p, "first"), "id"),
                cli_num(cJSON_GetObjectItemCaseSensitive(p, "last"), "id"));
        return;
    }
    fprintf(f, "what grew from snapshot %.0f to %.0f:\n",
            cli_num(cJSON_GetObjectItemCaseSensitive(p, "first"), "id"),
            cli_num(cJSON_GetObjectItemCaseSensitive(p, "last"), "id"));
    fprintf(f, "%s  %s %9s %12s %21s%s\n", BOLD(o),
            type_cell(o, "TYPE", name, sizeof name), "+/- COUNT", "+/- SIZE",
            "SIZE", OFF(o));
    cJSON_ArrayForEach(t, dl) {
        char siz[80];

        snprintf(siz, sizeof siz, "%s -> %s", cli_size(o, cli_num(t, "bytes_before"), b),
                 cli_size(o, cli_num(t, "bytes_after"), c));
        fprintf(f, "  %s %+9.0f %12s %21s\n",
                type_cell(o, cli_str(t, "type"), name, sizeof name),
                cli_num(t, "count_after") - cli_num(t, "count_before"),
                delta_size(o, cli_num(t, "bytes_after") - cli_num(t, "bytes_before"), a),
                siz);
    }
    fputc('\n', f);
}

static void
render_report(const struct out *o, FILE *f, const cJSON *doc)
{
    const cJSON *p, *s, *procs = cJSON_GetObjectItemCaseSensitive(doc, "processes");
    int nsus = 0;

    if (o->html != NULL) {              /* the page has it all */
        cJSON_ArrayForEach(p, procs)
            nsus += (int)cli_num(p, "suspects_total");
        fprintf(f, "wrote %s: %d leak suspect%s in %d process%s\n", o->html,
                nsus, nsus == 1 ? "" : "s", cJSON_GetArraySize(procs),
                cJSON_GetArraySize(procs) == 1 ? "" : "es");
        return;
    }
    if (cJSON_GetArraySize(procs) == 0) {
        fprintf(f, "no snapshots in the window\n");
        return;
    }
    cJSON_ArrayForEach(p, procs) {
        const cJSON *first = cJSON_GetObjectItemCaseSensitive(p, "first");
        const cJSON *last = cJSON_GetObjectItemCaseSensitive(p, "last");
        const cJSON *sus = cJSON_GetObjectItemCaseSensitive(p, "suspects");
        char head[600], verdict[2048];
        int i = 0;

        /* the verdict first: the one line that answers.  When the memory
         * grows outside Python objects, that alarm follows a leak's
         * verdict, and with no leaking type it is the answer (the only
         * line of the two). */
        const cJSON *vj = cli_get(p, "verdict");
        int leak = cli_str(vj, "status") != NULL
            && strcmp(cli_str(vj, "status"), "leak") == 0;

        cli_verdict_sentence(o, p, verdict, sizeof verdict);
        if (!leak)
            memory_line(o, f, p, 1);
        if (verdict[0] != '\0' && (leak || !cJSON_IsTrue(cli_get(vj, "outside"))))
            fprintf(f, "%s%s%s\n", leak ? RED(o) : BOLD(o), verdict, OFF(o));
        if (leak)
            memory_line(o, f, p, 1);
        fprintf(f, "%sleak report: %s%s: %.0f snapshots, %s .. %s\n",
                BOLD(o), proc_head(p, head), OFF(o), cli_num(p, "snapshots"),
                cli_str(first, "time"), cli_str(last, "time"));
        if (cJSON_GetArraySize(sus) == 0) {
            if (cli_num(p, "snapshots") < cli_num(doc, "min_snapshots"))
                report_deltas(o, f, doc, p);
            else
                fprintf(f, "no leak suspect: no type's memory has a "
                        "significant upward trend that matters\n");
            memory_line(o, f, p, 0);
            fputc('\n', f);
            continue;
        }
        char fl[32];
        double total = cli_num(p, "suspects_total");
        int shown = cJSON_GetArraySize(sus);

        fprintf(f, "%.0f leak suspect%s (rising trend, p < %.2g, by at least %s)",
                total, total == 1 ? "" : "s", cli_num(doc, "alpha"),
                cli_size(o, cli_num(p, "floor_bytes"), fl));
        if (total > shown)
            fprintf(f, "; the first %d (--top 0 shows them all)", shown);
        fputc('\n', f);
        cJSON_ArrayForEach(s, sus)
            report_suspect(o, f, p, s, ++i);
        memory_line(o, f, p, 0);
        fputc('\n', f);
    }
}

/* Percent of the heap, "-" when there is none. */
static void
share(FILE *f, double part, double total)
{
    if (total > 0)
        fprintf(f, " %5.1f%%", part * 100 / total);
    else
        fprintf(f, " %6s", "-");
}

static void
render_top(const struct out *o, FILE *f, const cJSON *doc)
{
    const cJSON *x, *objs = cJSON_GetObjectItemCaseSensitive(doc, "objects");
    int retained = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "retained"));
    double tb = cli_num(doc, "total_bytes");
    char a[32], b[32];

    snap_line(o, f, cJSON_GetObjectItemCaseSensitive(doc, "snapshot"));
    fputc('\n', f);
    if (retained)
        fprintf(f, "%.0f roots (unreferred objects and modules), %.0f more for "
                "cycles held only from C; docs/retained.md\n",
                cli_num(doc, "roots"), cli_num(doc, "leftover_roots"));
    if (retained)
        fprintf(f, "\n%s%10s %7s %9s  %s%s\n", BOLD(o), "RETAINED", "%",
                "SIZE", "OBJECT", OFF(o));
    else
        fprintf(f, "\n%s%10s %7s  %s%s\n", BOLD(o), "SIZE", "%", "OBJECT",
                OFF(o));
    cJSON_ArrayForEach(x, objs) {
        double v = cli_num(x, retained ? "retained" : "size");

        fprintf(f, "%10s", cli_size(o, v, a));
        share(f, v, tb);
        if (retained)
            fprintf(f, " %9s", cli_size(o, cli_num(x, "size"), b));
        fputs("  ", f);
        hop(o, f, x);
        fputc('\n', f);
    }
    if (!retained)
        return;
    fprintf(f, "\n%sper type: what its objects keep alive, each counted once "
            "(objects that another object of the same type dominates are in "
            "that one)%s\n", DIM(o), OFF(o));
    fprintf(f, "%s%10s %7s %9s %9s %12s  %s%s\n", BOLD(o), "RETAINED", "%",
            "COUNT", "TOP", "MAX", "TYPE", OFF(o));
    cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(doc, "types")) {
        fprintf(f, "%10s", cli_size(o, cli_num(x, "retained"), a));
        share(f, cli_num(x, "retained"), tb);
        fprintf(f, " %9.0f %9.0f %12s  %s\n", cli_num(x, "count"),
                cli_num(x, "top_count"), cli_size(o, cli_num(x, "max_retained"), b),
                cli_str(x, "type") ? cli_str(x, "type") : "?");
    }
}

static void
render_dominators(const struct out *o, FILE *f, const cJSON *doc)
{
    const cJSON *x, *chain = cJSON_GetObjectItemCaseSensitive(doc, "chain");
    double tb = cli_num(doc, "total_bytes");
    char a[32];
    int i = 0;

    snap_line(o, f, cJSON_GetObjectItemCaseSensitive(doc, "snapshot"));
    fprintf(f, "\n\n%s%10s %7s  %s%s\n", BOLD(o), "RETAINED", "%",
            "OBJECT, THEN WHAT KEEPS IT ALIVE ALONE", OFF(o));
    cJSON_ArrayForEach(x, chain) {
        fprintf(f, "%10s", cli_size(o, cli_num(x, "retained"), a));
        share(f, cli_num(x, "retained"), tb);
        fprintf(f, "  %s", i++ ? "<- " : "");
        hop(o, f, x);
        fputc('\n', f);
    }
    fprintf(f, "%10s %7s  %s<- (root)%s\n", cli_size(o, tb, a), "100.0%",
            DIM(o), OFF(o));
}

void
cli_render(const struct out *o, const cJSON *doc)
{
    const char *cmd = cli_str(doc, "command");
    FILE *f = o->f;

    if (cmd == NULL)
        return;
    if (strcmp(cmd, "snapshots") == 0)
        render_snapshots(o, f, doc);
    else if (strcmp(cmd, "summary") == 0)
        render_summary(o, f, doc);
    else if (strcmp(cmd, "growth") == 0)
        render_growth(o, f, doc);
    else if (strcmp(cmd, "diff") == 0)
        render_diff(o, f, doc);
    else if (strcmp(cmd, "referrers") == 0)
        render_referrers(o, f, doc);
    else if (strcmp(cmd, "show") == 0)
        render_show(o, f, doc);
    else if (strcmp(cmd, "top") == 0)
        render_top(o, f, doc);
    else if (strcmp(cmd, "dominators") == 0)
        render_dominators(o, f, doc);
    else if (strcmp(cmd, "report") == 0)
        render_report(o, f, doc);
    else if (strcmp(cmd, "import") == 0)
        fprintf(f, "stored as snapshot %.0f (%.0f objects)\n",
                cli_num(doc, "snapshot"), cli_num(doc, "objects"));
    else if (strcmp(cmd, "delete") == 0)
        fprintf(f, "deleted snapshot %.0f\n", cli_num(doc, "snapshot"));
    else if (strcmp(cmd, "snap") == 0)
        fprintf(f, "%.0f\n", cli_num(doc, "snapshot"));
}
