/* SPDX-License-Identifier: MIT
 *
 * html.c -- `meliae-cli report --html FILE`: the report answer
 * (docs/cli-json.md, "report") as one self-contained HTML page that a
 * person reads at a glance: per process, a table of its leak suspects,
 * then per suspect its size and count over the snapshots as inline SVG
 * charts (one point per snapshot), the trend's numbers, the chain of
 * referrers that keeps one of its new objects alive, and its new objects
 * by holder.  No script, no style sheet or font from elsewhere, nothing
 * fetched: everything is in the file, and every string from the store
 * (type names, labels, programs, values) is escaped.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "utf8.h"

#define CHART_W 440
#define CHART_H 170
#define PAD_L 64
#define PAD_R 12
#define PAD_T 14
#define PAD_B 30

static const char css[] =
    "body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;"
    "margin:0 auto;max-width:1000px;padding:1.2em 1.5em;color:#1d2330;"
    "background:#fff}\n"
    "h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;margin:1.6em 0 .3em;"
    "border-bottom:2px solid #dde3ee;padding-bottom:.2em}"
    "h3{font-size:1.1em;margin:0 0 .4em}h4{font-size:.95em;margin:.9em 0 .3em;"
    "color:#3b4660}\n"
    ".sub,.note{color:#5b6478;font-size:.9em}\n"
    "table{border-collapse:collapse;font-size:.9em;margin:.3em 0}"
    "th,td{padding:.25em .6em;text-align:left;border-bottom:1px solid #e6e9f0}"
    "th{background:#f3f5f9}td.n{text-align:right;font-variant-numeric:"
    "tabular-nums}\n"
    ".suspect{border:1px solid #e3c4c4;border-left:6px solid #c0392b;"
    "border-radius:6px;padding:.8em 1em;margin:1em 0;background:#fffafa}\n"
    ".badge{background:#c0392b;color:#fff;border-radius:3px;padding:0 .4em;"
    "font-size:.75em;vertical-align:middle;margin-left:.4em}"
    ".badge.along{background:#b9770e}"
    ".suspect.along{border-color:#ecd9b5;border-left-color:#b9770e;"
    "background:#fffdf7}\n"
    ".charts{display:flex;flex-wrap:wrap;gap:1em}"
    ".chart{background:#fff;border:1px solid #e6e9f0;border-radius:4px}\n"
    ".chart .line{fill:none;stroke:#c0392b;stroke-width:2}"
    ".chart .pt{fill:#c0392b}.chart .cnt{stroke:#2e6bc6}.chart .cpt{fill:#2e6bc6}"
    ".chart .rss{stroke:#c0392b}.chart .heap{stroke:#2e6bc6}"
    ".chart .unex{stroke:#9aa3b5;stroke-dasharray:4 3}"
    ".verdict{color:#c0392b;font-weight:bold}"
    ".chart .axis{stroke:#9aa3b5;stroke-width:1}"
    ".chart text{font-size:11px;fill:#5b6478}.chart .ttl{font-size:12px;"
    "fill:#1d2330;font-weight:600}\n"
    ".facts{display:grid;grid-template-columns:max-content auto;gap:.1em 1em;"
    "margin:.6em 0;font-size:.92em}.facts dt{color:#5b6478}.facts dd{margin:0}\n"
    "ol.chain{margin:.2em 0;padding-left:1.6em;font-family:ui-monospace,"
    "monospace;font-size:.85em}ol.chain li{margin:.1em 0}\n"
    "code{font-family:ui-monospace,monospace;font-size:.9em}\n"
    ".ok{color:#1e7b3a;font-weight:600}\n"
    ".headline{font-size:1.05em;font-weight:600;padding:.5em .8em;"
    "border-radius:4px;margin:.4em 0}.headline.leak{background:#fdecea;"
    "color:#a5281b}.headline.clear{background:#e8f5ec;color:#1e7b3a}"
    ".headline.wait{background:#f3f5f9;color:#3b4660}\n";

/* s as HTML text or attribute value. */
static void
esc(FILE *f, const char *s)
{
    for (; s != NULL && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

static void
size(FILE *f, const struct out *o, double v)
{
    char buf[32];

    esc(f, cli_size(o, v, buf));
}

static void
dsize(FILE *f, const struct out *o, double v)
{
    fputs(v > 0 ? "+" : "", f);
    size(f, o, v);
}

/* type@0xaddr size len=N name (value) */
static void
obj(FILE *f, const struct out *o, const cJSON *ob)
{
    const char *type = cli_str(ob, "type"), *name = cli_str(ob, "name");
    const char *value = cli_str(ob, "value");

    fputs("<b>", f);
    esc(f, type ? type : "?");
    fprintf(f, "</b>@0x%" PRIx64 " ", (uint64_t)cli_num(ob, "address"));
    size(f, o, cli_num(ob, "size"));
    if (cli_get(ob, "len") && cJSON_IsNumber(cli_get(ob, "len")))
        fprintf(f, " len=%.0f", cli_num(ob, "len"));
    if (name) {
        fputc(' ', f);
        esc(f, name);
    }
    if (value) {
        /* 60 characters, never a cut inside one */
        size_t n = ml_utf8_prefix(value, strlen(value), 60);
        char cut[256];

        snprintf(cut, sizeof cut, "%.*s", (int)(n < 255 ? n : 0), value);
        fputs(" <span class=\"note\">", f);
        esc(f, cut);
        fputs("</span>", f);
    }
}

/* "+12 s", "+3.5 min", "+2.0 h": a time from the first snapshot. */
static void
span_text(double sec, char *buf, size_t n)
{
    if (sec < 120)
        snprintf(buf, n, "+%.0f s", sec);
    else if (sec < 7200)
        snprintf(buf, n, "+%.1f min", sec / 60);
    else if (sec < 172800)
        snprintf(buf, n, "+%.1f h", sec / 3600);
    else
        snprintf(buf, n, "+%.1f d", sec / 86400);
}

/* A chart's frame: its title, axes, the range of values (lo..hi), and
 * the time axis: the first snapshot's time (t0, ISO) to span seconds
 * later.  The caller draws into it with XS()/YS(). */
static void
chart_frame(FILE *f, const struct out *o, const char *title, int n, double lo,
            double hi, int is_bytes, const char *t0, double span)
{
    char sp[32];

    char a[32], b[32];

    fprintf(f, "<svg class=\"chart\" data-points=\"%d\" width=\"%d\" "
            "height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" "
            "xmlns=\"http://www.w3.org/2000/svg\">", n, CHART_W, CHART_H,
            CHART_W, CHART_H);
    fputs("<title>", f);
    esc(f, title);
    fputs("</title>", f);
    fprintf(f, "<text class=\"ttl\" x=\"%d\" y=\"11\">", PAD_L);
    esc(f, title);
    fputs("</text>", f);
    fprintf(f, "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>"
            "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>",
            PAD_L, PAD_T, PAD_L, CHART_H - PAD_B, PAD_L, CHART_H - PAD_B,
            CHART_W - PAD_R, CHART_H - PAD_B);
    if (is_bytes) {
        cli_size(o, hi, a);
        cli_size(o, lo, b);
    } else {
        snprintf(a, sizeof a, "%.0f", hi);
        snprintf(b, sizeof b, "%.0f", lo);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", PAD_L - 4,
            PAD_T + 4);
    esc(f, a);
    fprintf(f, "</text><text x=\"%d\" y=\"%d\" text-anchor=\"end\">",
            PAD_L - 4, CHART_H - PAD_B);
    esc(f, b);
    fputs("</text>", f);
    span_text(span, sp, sizeof sp);
    fprintf(f, "<text x=\"%d\" y=\"%d\">", PAD_L, CHART_H - 10);
    esc(f, t0 != NULL ? t0 : "");
    fprintf(f, "</text><text x=\"%d\" y=\"%d\" text-anchor=\"end\">",
            CHART_W - PAD_R, CHART_H - 10);
    esc(f, sp);
    fputs("</text>", f);
}

/* x of point k: its time since the first point (t, seconds) over the
 * window's span, so that uneven snapshots sit where they were taken;
 * evenly spaced when there are no times. */
static double
xpos(const cJSON *t, int k, int n, double span, double pw)
{
    const cJSON *x = cJSON_GetArrayItem(t, k);

    if (cJSON_IsNumber(x) && span > 0)
        return PAD_L + pw * x->valuedouble / span;
    return PAD_L + (n > 1 ? pw * k / (n - 1) : pw / 2);
}

/* The span of the times t (seconds from the first), 0 without them. */
static double
span_of(const cJSON *t)
{
    const cJSON *last = cJSON_GetArrayItem(t, cJSON_GetArraySize(t) - 1);

    return cJSON_IsNumber(last) ? last->valuedouble : 0;
}

static void
range_of(const cJSON *series, double *lo, double *hi)
{
    const cJSON *x;

    cJSON_ArrayForEach(x, series) {
        *lo = fmin(*lo, x->valuedouble);
        *hi = fmax(*hi, x->valuedouble);
    }
}

#define XS(k) xpos(ts, (k), n, span, pw)
#define YS(v) (PAD_T + ph - ph * ((v) - lo) / (hi - lo))

static void
polyline(FILE *f, const char *cls, const cJSON *series, const cJSON *ts,
         double span, int n, double pw, double ph, double lo, double hi)
{
    const cJSON *x;
    int i = 0;

    fprintf(f, "<polyline class=\"%s\" points=\"", cls);
    cJSON_ArrayForEach(x, series) {
        fprintf(f, "%s%.1f,%.1f", i ? " " : "", XS(i), YS(x->valuedouble));
        i++;
    }
    fputs("\"/>", f);
}

/* One chart: the series over the snapshots, one point each. */
static void
chart(FILE *f, const struct out *o, const char *title, const cJSON *series,
      const cJSON *points, int is_bytes)
{
    int n = cJSON_GetArraySize(series), i = 0;
    double lo = INFINITY, hi = -INFINITY;
    const cJSON *x;

    if (n == 0)
        return;
    range_of(series, &lo, &hi);
    if (hi <= lo)
        hi = lo + 1;
    double pw = CHART_W - PAD_L - PAD_R, ph = CHART_H - PAD_T - PAD_B;
    cJSON *ts = cJSON_CreateArray();        /* the points' times */

    cJSON_ArrayForEach(x, points)
        cJSON_AddItemToArray(ts, cJSON_CreateNumber(cli_num(x, "t")));
    double span = span_of(ts);
    chart_frame(f, o, title, n, lo, hi, is_bytes,
                cli_str(cJSON_GetArrayItem(points, 0), "time"), span);
    polyline(f, is_bytes ? "line" : "line cnt", series, ts, span, n, pw, ph,
             lo, hi);
    cJSON_ArrayForEach(x, series) {
        const cJSON *p = cJSON_GetArrayItem(points, i);

        fprintf(f, "<circle class=\"%s\" cx=\"%.1f\" cy=\"%.1f\" r=\"3\">"
                "<title>snapshot %.0f", is_bytes ? "pt" : "cpt", XS(i),
                YS(x->valuedouble), cli_num(p, "id"));
        if (cli_str(p, "time")) {
            fputs(" at ", f);
            esc(f, cli_str(p, "time"));
        }
        fputs(": ", f);
        if (is_bytes)
            size(f, o, x->valuedouble);
        else
            fprintf(f, "%.0f objects", x->valuedouble);
        fputs("</title></circle>", f);
        i++;
    }
    fputs("</svg>\n", f);
    cJSON_Delete(ts);
}

/* The process's RSS against its Python objects, and what they leave
 * unexplained, on one scale ("memory" of the report). */
static void
memory_chart(FILE *f, const struct out *o, const cJSON *mem)
{
    static const char *const keys[] = { "rss", "heap", "unexplained" };
    static const char *const cls[] = { "line rss", "line heap", "line unex" };
    const cJSON *ser = cli_get(mem, "series"), *ids = cli_get(ser, "id");
    const cJSON *ts = cli_get(ser, "t");
    int n = cJSON_GetArraySize(ids);
    double lo = INFINITY, hi = -INFINITY;

    if (n < 2)
        return;
    for (size_t k = 0; k < 3; k++)
        range_of(cli_get(ser, keys[k]), &lo, &hi);
    lo = fmin(lo, 0);
    if (hi <= lo)
        hi = lo + 1;
    double pw = CHART_W - PAD_L - PAD_R, ph = CHART_H - PAD_T - PAD_B;
    double span = span_of(ts);
    chart_frame(f, o, "RSS (red), Python objects (blue), outside them (grey)",
                n, lo, hi, 1, cli_str(mem, "first_time"), span);
    for (size_t k = 0; k < 3; k++)
        polyline(f, cls[k], cli_get(ser, keys[k]), ts, span, n, pw, ph, lo, hi);
    for (int i = 0; i < n; i++) {       /* one point per snapshot: RSS */
        double v = cJSON_GetArrayItem(cli_get(ser, "rss"), i)->valuedouble;

        fprintf(f, "<circle class=\"pt\" cx=\"%.1f\" cy=\"%.1f\" r=\"3\">"
                "<title>snapshot %.0f: RSS ", XS(i), YS(v),
                cJSON_GetArrayItem(ids, i)->valuedouble);
        size(f, o, v);
        fputs(", objects ", f);
        size(f, o, cJSON_GetArrayItem(cli_get(ser, "heap"), i)->valuedouble);
        fputs("</title></circle>", f);
    }
    fputs("</svg>\n", f);
}

#undef XS
#undef YS

/* Where a suspect's new objects were allocated (docs/cli-json.md,
 * *births*), when the snapshots were traced: the top sites. */
static void
births(FILE *f, const struct out *o, const cJSON *b)
{
    const cJSON *x;
    int k = 0;

    if (!cJSON_IsObject(b) || cJSON_GetArraySize(cli_get(b, "sites")) == 0)
        return;
    fprintf(f, "<h4>Born at</h4>\n<p class=\"note\">%.0f of its %.0f new "
            "objects have an allocation traceback</p>\n<table><tr><th>count"
            "</th><th>size</th><th>where</th></tr>", cli_num(b, "traced_count"),
            cli_num(b, "count"));
    cJSON_ArrayForEach(x, cli_get(b, "sites")) {
        if (k++ == 5)
            break;
        fprintf(f, "<tr><td class=\"n\">%.0f</td><td class=\"n\">",
                cli_num(x, "count"));
        size(f, o, cli_num(x, "bytes"));
        fputs("</td><td><code>", f);
        esc(f, cli_str(x, "file") ? cli_str(x, "file") : "?");
        fprintf(f, ":%.0f", cli_num(x, "line"));
        if (cli_str(x, "function") != NULL) {
            fputs(" in ", f);
            esc(f, cli_str(x, "function"));
        }
        fputs("</code></td></tr>", f);
    }
    fputs("</table>\n", f);
}

static void
suspect(FILE *f, const struct out *o, const cJSON *proc, const cJSON *s,
        int idx, int pidx)
{
    const cJSON *points = cli_get(proc, "points"), *x;
    const cJSON *tb = cli_get(cli_get(s, "trend"), "bytes");
    const cJSON *tc = cli_get(cli_get(s, "trend"), "count");
    const cJSON *nw = cli_get(s, "new_objects"), *chain = cli_get(s, "chain");
    const cJSON *diff = cli_get(proc, "diff");
    const char *type = cli_str(s, "type");

    fprintf(f, "<article class=\"suspect%s\" id=\"p%d-s%d\">\n<h3>%d. ",
            cli_str(s, "grows_with") ? " along" : "", pidx, idx, idx);
    esc(f, type);
    if (cli_str(s, "grows_with")) {
        fputs("<span class=\"badge along\">grows with ", f);
        esc(f, cli_str(s, "grows_with"));
        fputs("</span></h3>\n", f);
    } else {
        fputs("<span class=\"badge\">leak suspect</span></h3>\n", f);
    }
    fputs("<div class=\"charts\">", f);
    chart(f, o, "size", cli_get(s, "series_bytes"), points, 1);
    if (cJSON_IsArray(cli_get(s, "series_count")))
        chart(f, o, "count", cli_get(s, "series_count"), points, 0);
    fputs("</div>\n<dl class=\"facts\">", f);
    fprintf(f, "<dt>grew</dt><dd>%+.0f objects (%.0f &rarr; %.0f), ",
            cli_num(s, "count_after") - cli_num(s, "count_before"),
            cli_num(s, "count_before"), cli_num(s, "count_after"));
    dsize(f, o, cli_num(s, "bytes_after") - cli_num(s, "bytes_before"));
    fputs(" (", f);
    size(f, o, cli_num(s, "bytes_before"));
    fputs(" &rarr; ", f);
    size(f, o, cli_num(s, "bytes_after"));
    fprintf(f, ") over %.0f snapshots</dd>", cli_num(proc, "snapshots"));
    fprintf(f, "<dt>trend</dt><dd>Mann-Kendall Z %.2f, p %.2g (size), "
            "p %.2g (count), tau %.2f</dd>", cli_num(tb, "z"), cli_num(tb, "p"),
            cli_num(tc, "p"), cli_num(tb, "tau"));
    fputs("<dt>slope</dt><dd>", f);
    if (cJSON_IsNumber(cli_get(tb, "slope_per_hour"))) {
        dsize(f, o, cli_num(tb, "slope_per_hour"));
        fprintf(f, " an hour, %+.0f objects an hour", cli_num(tc, "slope_per_hour"));
    } else {
        dsize(f, o, cli_num(tb, "slope"));
        fprintf(f, " a snapshot, %+.0f objects a snapshot", cli_num(tc, "slope"));
    }
    fputs(" (Theil-Sen)</dd><dt>retained size</dt><dd>", f);
    if (cJSON_IsObject(cli_get(s, "retained"))) {
        size(f, o, cli_num(cli_get(s, "retained"), "bytes"));
    } else {
        esc(f, cli_str(s, "retained_note") ? cli_str(s, "retained_note") : "not computed");
    }
    fputs("</dd></dl>\n<h4>Kept alive by</h4>\n", f);
    if (cli_str(cli_get(s, "path"), "text") != NULL) {
        /* the chain in the program's words (common/paths.c) */
        fputs("<p><code>", f);
        esc(f, cli_str(cli_get(s, "path"), "text"));
        fputs("</code></p>\n", f);
    }
    if (cJSON_IsArray(chain) && cJSON_GetArraySize(chain) > 0) {
        fputs("<ol class=\"chain\">", f);
        cJSON_ArrayForEach(x, chain) {
            fputs("<li>", f);
            obj(f, o, x);
            fputs("</li>", f);
        }
        fputs("</ol>\n", f);
        if (cJSON_IsTrue(cli_get(s, "chain_truncated")))
            fputs("<p class=\"note\">(search cut short)</p>\n", f);
    } else {
        fputs("<p class=\"note\">", f);
        esc(f, cli_str(s, "chain_note") ? cli_str(s, "chain_note")
                                    : "no chain to a root found");
        fputs("</p>\n", f);
    }
    fputs("<h4>New objects</h4>\n", f);
    if (!cJSON_IsObject(nw)) {
        fputs("<p class=\"note\">", f);
        esc(f, cli_str(diff, "note") ? cli_str(diff, "note") : "no object-level diff");
        fputs("</p>\n", f);
    } else {
        fprintf(f, "<p class=\"note\">%.0f new ", cli_num(nw, "count"));
        esc(f, type);
        fputs(" objects (", f);
        size(f, o, cli_num(nw, "bytes"));
        fprintf(f, ") born after snapshot %.0f and alive in snapshot%s ",
                cli_num(diff, "a"), cJSON_GetArraySize(cli_get(diff, "alive_in")) > 1
                ? "s" : "");
        int k = 0;
        cJSON_ArrayForEach(x, cli_get(diff, "alive_in"))
            fprintf(f, "%s%.0f", k++ ? ", " : "", x->valuedouble);
        fputs("</p>\n<table><tr><th>count</th><th>size</th><th>where they "
              "hang off the old heap</th><th>hops down</th><th>all new "
              "objects there</th></tr>", f);
        cJSON_ArrayForEach(x, cli_get(nw, "groups")) {
            const cJSON *h = cli_get(x, "holder"), *owner = cli_get(h, "owner");

            fprintf(f, "<tr><td class=\"n\">%.0f</td><td class=\"n\">",
                    cli_num(x, "count"));
            size(f, o, cli_num(x, "bytes"));
            fputs("</td><td>", f);
            if (!cJSON_IsObject(h)) {
                fputs("nothing older (unreferenced, or only new objects in "
                  "cycles)", f);
            } else {
                if (cJSON_IsTrue(cli_get(h, "new")))
                    fputs("new ", f);
                if (cli_str(h, "path")) {
                    fputs("<code>", f);
                    esc(f, cli_str(h, "path"));
                    fputs("</code> ", f);
                }
                obj(f, o, h);
                if (!cli_str(h, "path") && cJSON_IsObject(owner)) {
                    fputs(", owned by ", f);
                    obj(f, o, owner);
                }
            }
            fprintf(f, "</td><td class=\"n\">%.0f</td><td class=\"n\">%.0f (",
                    cli_num(x, "depth"), cli_num(x, "group_count"));
            size(f, o, cli_num(x, "group_bytes"));
            fputs(")</td></tr>", f);
        }
        fputs("</table>\n", f);
    }
    births(f, o, cli_get(s, "births"));
    fputs("</article>\n", f);
}

static void
process(FILE *f, const struct out *o, const cJSON *doc, const cJSON *p,
        int pidx)
{
    const char *label = cli_str(p, "label"), *prog = cli_str(p, "program");
    const cJSON *first = cli_get(p, "first"), *last = cli_get(p, "last");
    const cJSON *sus = cli_get(p, "suspects"), *s;
    int i = 0;

    fprintf(f, "<section class=\"proc\">\n<h2>process %.0f", cli_num(p, "pid"));
    if (label) {
        fputs(" &ldquo;", f);
        esc(f, label);
        fputs("&rdquo;", f);
    }
    if (prog) {
        fputs(" <code>", f);
        esc(f, prog);
        fputs("</code>", f);
    }
    fprintf(f, "</h2>\n<p class=\"sub\">%.0f snapshots, ", cli_num(p, "snapshots"));
    esc(f, cli_str(first, "time"));
    fputs(" &rarr; ", f);
    esc(f, cli_str(last, "time"));
    fputs(" (", f);
    size(f, o, cli_num(first, "bytes"));
    fputs(" &rarr; ", f);
    size(f, o, cli_num(last, "bytes"));
    fputs(" in objects); a suspect's size must rise by ", f);
    size(f, o, cli_num(p, "floor_bytes"));
    fputs(" or more</p>\n", f);
    char line[512];
    int alarm;

    {
        cli_memory_sentence(o, cli_get(p, "memory"), line, sizeof line, &alarm);
        if (line[0] != '\0') {
            fprintf(f, "<p class=\"%s\">", alarm ? "verdict" : "note");
            esc(f, line);
            fputs("</p>\n<div class=\"charts\">", f);
            memory_chart(f, o, cli_get(p, "memory"));
            fputs("</div>\n", f);
        }
    }
    if (cJSON_GetArraySize(sus) == 0) {
        /* not the colour of "all clear": nothing is known yet */
        if (cli_num(p, "snapshots") < cli_num(doc, "min_snapshots"))
            fprintf(f, "<p class=\"note\">No verdict yet: the trend test needs "
                    "%.0f snapshots or more.</p>\n", cli_num(doc, "min_snapshots"));
        else
            fprintf(f, "<p class=\"%s\">No leak suspect: no type's memory "
                    "has a significant upward trend that matters.</p>\n",
                    alarm ? "note" : "ok");     /* all clear only if so */
        fputs("</section>\n", f);
        return;
    }
    if (cli_num(p, "suspects_total") > cJSON_GetArraySize(sus))
        fprintf(f, "<p class=\"note\">%.0f leak suspects; the report shows "
                "the first %d (<code>--top 0</code> shows them all).</p>\n",
                cli_num(p, "suspects_total"), cJSON_GetArraySize(sus));
    fputs("<table class=\"summary\"><tr><th>#</th><th>type</th><th>count"
          "</th><th>size</th><th>trend p</th><th>retained</th><th>kept alive "
          "by</th><th></th></tr>\n", f);
    cJSON_ArrayForEach(s, sus) {
        const cJSON *chain = cli_get(s, "chain");
        const cJSON *root = cJSON_GetArraySize(chain) > 1
            ? cJSON_GetArrayItem(chain, 1) : NULL;
        const cJSON *end = cJSON_GetArraySize(chain) > 0
            ? cJSON_GetArrayItem(chain, cJSON_GetArraySize(chain) - 1) : NULL;

        i++;
        fprintf(f, "<tr><td class=\"n\">%d</td><td><a href=\"#p%d-s%d\">", i,
                pidx, i);
        esc(f, cli_str(s, "type"));
        fprintf(f, "</a></td><td class=\"n\">%+.0f</td><td class=\"n\">",
                cli_num(s, "count_after") - cli_num(s, "count_before"));
        dsize(f, o, cli_num(s, "bytes_after") - cli_num(s, "bytes_before"));
        fprintf(f, "</td><td class=\"n\">%.2g</td><td>",
                cli_num(cli_get(cli_get(s, "trend"), "bytes"), "p"));
        if (cJSON_IsObject(cli_get(s, "retained")))
            size(f, o, cli_num(cli_get(s, "retained"), "bytes"));
        else
            esc(f, cli_str(s, "retained_note") ? cli_str(s, "retained_note") : "-");
        fputs("</td><td>", f);
        if (root != NULL) {
            esc(f, cli_str(root, "type"));
            if (end != NULL && end != root) {
                fputs(" &larr; &hellip; ", f);
                esc(f, cli_str(end, "type"));
                if (cli_str(end, "name")) {
                    fputc(' ', f);
                    esc(f, cli_str(end, "name"));
                }
            }
        } else {
            fputs("-", f);
        }
        fputs("</td><td>", f);
        if (cli_str(s, "grows_with")) {
            fputs("grows with ", f);
            esc(f, cli_str(s, "grows_with"));
        } else {
            fputs("<b>leaks</b>", f);
        }
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n", f);
    i = 0;
    cJSON_ArrayForEach(s, sus)
        suspect(f, o, p, s, ++i, pidx);
    fputs("</section>\n", f);
}

int
cli_html(const struct out *o, const cJSON *doc, const char *path)
{
    const cJSON *p;
    FILE *f = fopen(path, "we");
    int i = 0, err;

    if (f == NULL)
        return errno;
    fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, "
            "initial-scale=1\">\n<meta http-equiv=\"Content-Security-Policy\" "
            "content=\"default-src 'none'; style-src 'unsafe-inline'; "
            "img-src data:\">\n<title>meliae leak report</title>\n"
            "<style>%s</style></head><body>\n<h1>meliae leak report</h1>\n",
            css);
    /* the verdicts first: one line per process */
    cJSON_ArrayForEach(p, cli_get(doc, "processes")) {
        const char *st = cli_str(cli_get(p, "verdict"), "status");
        char line[2048];

        cli_verdict_sentence(o, p, line, sizeof line);
        if (line[0] == '\0')
            continue;
        /* "no verdict yet" is not the colour of "all clear" */
        fprintf(f, "<p class=\"headline %s\">", st == NULL ? "wait"
                : strcmp(st, "leak") == 0 ? "leak"
                : strcmp(st, "no_leak") == 0 && !cJSON_IsTrue(cli_get(cli_get(
                    p, "verdict"), "outside")) ? "clear" : "wait");
        esc(f, line);
        fputs("</p>\n", f);
    }
    fprintf(f, 
            "<p class=\"sub\">A leak suspect is a type whose count or size has "
            "a significant upward trend (Mann-Kendall, one-sided p &lt; %.2g, "
            "%.0f snapshots or more) that matters (its net growth and "
            "Theil-Sen slope reach 1%% of the process) and still grows in "
            "the latter half of the window (a warm-up is none). New objects "
            "are grouped by where they hang off the objects of the first "
            "snapshot; a suspect whose new objects hang further below the "
            "same place than another's grows with it.</p>\n", cli_num(doc, "alpha"),
            cli_num(doc, "min_snapshots"));
    cJSON_ArrayForEach(p, cli_get(doc, "processes"))
        process(f, o, doc, p, ++i);
    if (i == 0)
        fputs("<p class=\"ok\">No snapshots in the window.</p>\n", f);
    fputs("</body></html>\n", f);
    err = ferror(f) ? EIO : 0;
    if (fclose(f) != 0 && err == 0)
        err = errno;
    return err;
}
