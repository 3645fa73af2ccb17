/* SPDX-License-Identifier: MIT
 *
 * cli.h -- what meliae-cli's files share: output options, the exit codes,
 * and the three parts: the request (main.c), where it is answered (the
 * store directly, a dump loaded into a temporary store, or the daemon:
 * client.c) and how the answer is printed (render.c).
 */
#ifndef CLI_H
#define CLI_H

#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "dumpline.h"

/* A member of an answer's JSON object: any, a number (0 when absent or
 * not a number), a string (NULL likewise).  Shared by the renderers. */
static inline const cJSON *
cli_get(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

static inline double
cli_num(const cJSON *o, const char *k)
{
    const cJSON *x = cli_get(o, k);

    return cJSON_IsNumber(x) ? x->valuedouble : 0;
}

static inline const char *
cli_str(const cJSON *o, const char *k)
{
    const cJSON *x = cli_get(o, k);

    return cJSON_IsString(x) ? x->valuestring : NULL;
}

/* Exit codes (meliae-cli(1)). */
#define CLI_OK 0
#define CLI_ERROR 1
#define CLI_USAGE 2
#define CLI_NOTFOUND 3
#define CLI_UNAVAILABLE 69       /* sysexits' EX_UNAVAILABLE */

struct out {
    FILE *f;
    int json;                   /* --json: the answer document as is */
    int bytes;                  /* --bytes: raw byte counts */
    int color;                  /* a terminal without NO_COLOR */
    int utf8;                   /* a terminal: sparklines */
    const char *html;           /* report --html FILE */
};

/* Prints answer doc (rp_run's document) for people. */
void cli_render(const struct out *o, const cJSON *doc);

/* Writes the report answer doc as one self-contained HTML page to path
 * (html.c).  Returns 0 or an errno. */
int cli_html(const struct out *o, const cJSON *doc, const char *path);

/* "1.5 MiB", or the raw number with --bytes.  buf: 32 bytes. */
const char *cli_size(const struct out *o, double bytes, char *buf);
/* Birth sites (render_births.c): "file:line in function" of a site;
 * a type's entry as "born at" lines (at most max sites); diff's section. */
void cli_births_site(FILE *f, const cJSON *site);
void cli_births_lines(const struct out *o, FILE *f, const cJSON *births,
                      const char *indent, int max);
void cli_births_diff(const struct out *o, FILE *f, const cJSON *nw);
/* growth's and report's "memory" in one sentence (render.c). */
const char *cli_memory_sentence(const struct out *o, const cJSON *mem,
                                char *buf, size_t n, int *alarm);

/* The report's verdict on process section proc ("verdict",
 * docs/cli-json.md) as the one sentence that opens it ("meliae: the leak
 * is Session: ..."), into buf (n bytes); "" without a verdict
 * (verdict.c). */
const char *cli_verdict_sentence(const struct out *o, const cJSON *proc,
                                 char *buf, size_t n);

/* Asks the daemon at sock to run req (docs/protocol.md, "Queries").
 * Returns an exit code; *answer on CLI_OK; err gets a one-line reason. */
int cli_ask_daemon(const char *sock, const cJSON *req, unsigned timeout_s,
                   cJSON **answer, char *err, size_t errlen);

/* Sends dump file path to the daemon as a snapshot (import without
 * --store); *id on success.  A file the daemon already holds (its content
 * hash among the snapshots it shows us) is refused unless force.
 * Returns an exit code. */
int cli_send_dump(const char *sock, const char *path, const char *label,
                  int force, uint64_t *id, uint64_t *objects, char *err,
                  size_t errlen);

/* A dump file being read (dumpfile.c): plain or gzip. */
struct cli_dump {
    struct gzFile_s *gz;
    char *rbuf;                 /* what gzread gave, */
    size_t rpos, rlen;          /* and how far the lines went in it */
    const char *path;
    char *line;                 /* the current line, '\n'-terminated */
    size_t len, cap;
    uint64_t lineno, objects, bytes;
    uint64_t hash;              /* FNV-1a 64 of the text read so far */
    int seen;                   /* a dump line was read */
    int code;                   /* after -1: CLI_NOTFOUND or CLI_ERROR */
    char err[768];              /* after -1: one line, naming the file */
    struct ml_dumpparser p;
};

#define CLI_HASH_LEN 48         /* "fnv1a64:<16 hex>:<objects>" */

/* 0, or -1 with d->code and d->err.  cli_dump_close after either. */
int cli_dump_open(struct cli_dump *d, const char *path);
/* The next object line, or table line of birth sites (l->kind
 * ML_LINE_OTHER, l->has_traceback): 1 (*l, and d->line[0..d->len) its text); 0 at
 * the end; -1 (d->code, d->err): a read error, a line that does not
 * parse, a first line that is no dump line, no object line at all. */
int cli_dump_next(struct cli_dump *d, struct ml_dumpline *l);
/* The file's content hash ("fnv1a64:...:objects") once read to its end. */
void cli_dump_hash_text(const struct cli_dump *d, char hex[CLI_HASH_LEN]);
/* Reads path through for its hash (and checks it is a dump).  An exit
 * code; err names the file. */
int cli_dump_hash(const char *path, char hex[CLI_HASH_LEN], uint64_t *objects,
                  char *err, size_t errlen);
void cli_dump_close(struct cli_dump *d);

/* A progress line on standard error, a terminal only (progress.c):
 * start names the work ("loading heap.json"), cli_progress redraws it
 * (n objects so far, or 0 for the time only) at most five times a
 * second, end wipes it.  Each is a no-op when stderr is not a tty. */
void cli_progress_start(const char *what);
void cli_progress(uint64_t n);
void cli_progress_end(void);
/* The same for work that says nothing as it goes (a query run here): a
 * thread redraws the elapsed time until stop. */
void cli_progress_tick_start(const char *what);
void cli_progress_tick_stop(void);

/* s[0..n) with every character a terminal would act on (C0, DEL, C1,
 * line separators, bidi overrides) and every ill-formed byte written as
 * "\x1b" or "\u202e" (escape.c).  0: nothing to escape (*out NULL); 1:
 * *out is a new NUL-terminated string (free()); -ENOMEM. */
int cli_escape(const char *s, size_t n, char **out);

/* Every string of doc escaped in place, for the text printers: what came
 * from a snapshot never reaches a terminal raw.  0 or -ENOMEM. */
int cli_escape_doc(cJSON *doc);

/* The daemon's socket: --socket, $MELIAE_SOCKET, /run/meliae.sock for
 * root, $XDG_RUNTIME_DIR/meliae.sock.  NULL with err if none. */
const char *cli_default_socket(char *buf, size_t len, char *err, size_t errlen);

/* Removes directory dir and what it holds (rmtree.c); errors ignored. */
void cli_remove_tree(const char *dir);

#endif /* CLI_H */
