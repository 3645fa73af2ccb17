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
/* growth's and report's "memory" in one sentence (render.c). */
const char *cli_memory_sentence(const struct out *o, const cJSON *mem,
                                char *buf, size_t n, int *alarm);

/* Asks the daemon at sock to run req (docs/protocol.md, "Queries").
 * Returns an exit code; *answer on CLI_OK; err gets a one-line reason. */
int cli_ask_daemon(const char *sock, const cJSON *req, unsigned timeout_s,
                   cJSON **answer, char *err, size_t errlen);

/* Sends dump file path to the daemon as a snapshot (import without
 * --store); *id on success.  Returns an exit code. */
int cli_send_dump(const char *sock, const char *path, const char *label,
                  uint64_t *id, uint64_t *objects, char *err, size_t errlen);

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

#endif /* CLI_H */
