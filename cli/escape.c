/* SPDX-License-Identifier: MIT
 *
 * escape.c -- what a snapshot says, made safe for a terminal.  Type names,
 * labels, programs and values come from the process that sent them (or
 * from a file): printed raw, "\x1b]0;...\x07" would set the terminal's
 * title and "\x1b[2J" clear it.  Every string of an answer printed as
 * text, and every error message, goes through cli_escape; the HTML page
 * escapes for HTML instead (html.c), --json leaves JSON's own escapes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "utf8.h"

/* Characters a terminal acts on or that hide text: C0, DEL, C1 (U+0080 to
 * U+009F: 8-bit CSI, OSC...), the line and paragraph separators and the
 * bidirectional overrides and isolates (text that reads in another order
 * than it is stored, "Trojan Source"). */
static int
unsafe_cp(unsigned cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) ||
           (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

static unsigned
decode(const unsigned char *s, size_t len)
{
    static const unsigned char lead_mask[] = { 0, 0x7f, 0x1f, 0x0f, 0x07 };
    unsigned cp = s[0] & lead_mask[len];

    for (size_t i = 1; i < len; i++)
        cp = (cp << 6) | (s[i] & 0x3f);
    return cp;
}

/* Appends one escape for cp (or for the ill-formed byte cp) to out. */
static size_t
put_escape(char *out, unsigned cp, int byte)
{
    if (byte || cp <= 0xff)
        return (size_t)sprintf(out, "\\x%02x", cp);
    return (size_t)sprintf(out, "\\u%04x", cp);
}

int
cli_escape(const char *s, size_t n, char **out)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    char *buf = NULL, *w = NULL;

    *out = NULL;
    for (const unsigned char *q = p; q < end;) {
        /* strict: an encoded surrogate is no character a terminal shows */
        size_t len = ml_utf8_seq_len_strict(q, end);
        int bad = len == 0;
        unsigned cp = bad ? *q : decode(q, len);

        if (!bad && !unsafe_cp(cp)) {
            if (w != NULL) {
                memcpy(w, q, len);
                w += len;
            }
            q += len;
            continue;
        }
        if (buf == NULL) {          /* the first one: copy what went before */
            /* at most 4 bytes out per byte in: "\x1b" for one byte,
             * "\x9b" for two, "\u202e" for three */
            buf = malloc(4 * n + 1);
            if (buf == NULL)
                return -ENOMEM;
            w = buf;
            memcpy(w, p, (size_t)(q - p));
            w += q - p;
        }
        w += put_escape(w, cp, bad);
        q += bad ? 1 : len;
    }
    if (buf == NULL)
        return 0;
    *w = '\0';
    *out = buf;
    return 1;
}

int
cli_escape_doc(cJSON *doc)
{
    cJSON *x;

    if (cJSON_IsString(doc) && doc->valuestring != NULL) {
        char *e;
        int rc = cli_escape(doc->valuestring, strlen(doc->valuestring), &e);

        if (rc <= 0)
            return rc;
        /* cJSON allocates with malloc unless told otherwise (we never do) */
        free(doc->valuestring);
        doc->valuestring = e;
        return 0;
    }
    cJSON_ArrayForEach(x, doc) {
        int rc = cli_escape_doc(x);

        if (rc < 0)
            return rc;
    }
    return 0;
}
