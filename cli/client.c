/* SPDX-License-Identifier: MIT
 *
 * client.c -- meliae-cli's side of the daemon's socket: queries
 * (docs/protocol.md, "Queries") and imports sent as snapshots.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "dumpline.h"
#include "ml-common.h"
#include "protocol.h"
#include "utf8.h"

/* Longest answer line accepted from the daemon. */
#define CLI_MAX_ANSWER (1u << 30)

const char *
cli_default_socket(char *buf, size_t len, char *err, size_t errlen)
{
    const char *env = getenv("MELIAE_SOCKET"), *xdg;

    if (env != NULL && *env)
        return env;
    if (geteuid() == 0)
        return "/run/meliae.sock";
    xdg = getenv("XDG_RUNTIME_DIR");
    if (xdg == NULL || *xdg == '\0') {
        snprintf(err, errlen, "no daemon socket: set --socket, MELIAE_SOCKET "
                 "or XDG_RUNTIME_DIR, or read a store with --store DIR");
        return NULL;
    }
    snprintf(buf, len, "%s/meliae.sock", xdg);
    return buf;
}

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Connects to sock: an fd, or -1 with err (exit code CLI_UNAVAILABLE). */
static int
connect_to(const char *sock, char *err, size_t errlen)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd;

    if (strlen(sock) >= sizeof sa.sun_path) {
        snprintf(err, errlen, "socket path too long (%zu bytes, the limit is "
                 "%zu): %s", strlen(sock), sizeof sa.sun_path - 1, sock);
        return -1;
    }
    strcpy(sa.sun_path, sock);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        snprintf(err, errlen, "no daemon at %s (%s): start meliae-monitord, "
                 "or read a store with --store DIR", sock, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int
send_all(int fd, const char *p, size_t n, double deadline, char *err,
         size_t errlen)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (k > 0) {
            p += k;
            n -= (size_t)k;
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && errno != EAGAIN) {
            snprintf(err, errlen, "sending to the daemon: %s", strerror(errno));
            return CLI_ERROR;
        }
        struct pollfd pf = { .fd = fd, .events = POLLOUT };
        double left = deadline - now();
        if (left <= 0 || poll(&pf, 1, (int)(left * 1000) + 1) == 0) {
            snprintf(err, errlen, "the daemon did not read within the timeout");
            return CLI_ERROR;
        }
    }
    return CLI_OK;
}

/* Reads lines until one that is not a keepalive or a request; *line is
 * malloc'd.  Returns an exit code. */
static int
read_reply(int fd, double deadline, cJSON **msg, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = CLI_ERROR;

    *msg = NULL;
    for (;;) {
        char *nl = len ? memchr(buf, '\n', len) : NULL;

        if (nl != NULL) {
            cJSON *m = cJSON_ParseWithLength(buf, (size_t)(nl - buf));
            size_t used = (size_t)(nl - buf) + 1;

            memmove(buf, nl + 1, len - used);
            len -= used;
            if (m == NULL) {
                snprintf(err, errlen, "the daemon sent a line that is not JSON");
                break;
            }
            if (cJSON_GetObjectItem(m, "keepalive") ||
                cJSON_GetObjectItem(m, "request")) {
                cJSON_Delete(m);
                continue;
            }
            *msg = m;
            rc = CLI_OK;
            break;
        }
        if (len == cap) {
            if (cap >= CLI_MAX_ANSWER) {
                snprintf(err, errlen, "the daemon's answer is over %u MiB",
                         CLI_MAX_ANSWER >> 20);
                break;
            }
            cap = cap ? cap * 2 : 65536;
            char *p = realloc(buf, cap);
            if (p == NULL) {
                snprintf(err, errlen, "out of memory");
                break;
            }
            buf = p;
        }
        struct pollfd pf = { .fd = fd, .events = POLLIN };
        double left = deadline - now();
        /* a fifth of a second at a time: the progress line's clock */
        int pr = left > 0 ? poll(&pf, 1, left > 0.2 ? 200
                                                    : (int)(left * 1000) + 1)
                          : 0;
        if ((pr < 0 && errno == EINTR) || (pr == 0 && now() < deadline)) {
            cli_progress(0);
            continue;
        }
        if (pr <= 0) {
            snprintf(err, errlen, "no answer from the daemon within the timeout");
            break;
        }
        ssize_t k = recv(fd, buf + len, cap - len, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            snprintf(err, errlen, "the daemon closed the connection%s%s",
                     k < 0 ? ": " : "", k < 0 ? strerror(errno) : "");
            break;
        }
        len += (size_t)k;
    }
    free(buf);
    return rc;
}

static int
code_exit(const char *code)
{
    if (code == NULL)
        return CLI_ERROR;
    if (strcmp(code, "notfound") == 0)
        return CLI_NOTFOUND;
    if (strcmp(code, "usage") == 0)
        return CLI_USAGE;
    return CLI_ERROR;
}

int
cli_ask_daemon(const char *sock, const cJSON *req, unsigned timeout_s,
               cJSON **answer, char *err, size_t errlen)
{
    double deadline = now() + timeout_s;
    cJSON *q = cJSON_CreateObject(), *msg = NULL, *x;
    char *text = NULL;
    int fd, rc;

    *answer = NULL;
    fd = connect_to(sock, err, errlen);
    if (fd < 0) {
        cJSON_Delete(q);
        return CLI_UNAVAILABLE;
    }
    cJSON_AddNumberToObject(q, "meliae_query", ML_PROTO_VERSION);
    cJSON_AddItemReferenceToObject(q, "request", (cJSON *)req);
    text = cJSON_PrintUnformatted(q);
    cJSON_Delete(q);
    if (text == NULL) {
        close(fd);
        snprintf(err, errlen, "out of memory");
        return CLI_ERROR;
    }
    rc = send_all(fd, text, strlen(text), deadline, err, errlen);
    if (rc == CLI_OK)
        rc = send_all(fd, "\n", 1, deadline, err, errlen);
    free(text);
    if (rc != CLI_OK) {
        /* a refused peer is told why before the daemon closes: read it */
        char e2[256];

        if (read_reply(fd, now() + 1, &msg, e2, sizeof e2) != CLI_OK) {
            close(fd);
            return rc;
        }
        rc = CLI_OK;
    } else {
        rc = read_reply(fd, deadline, &msg, err, errlen);
        /* the daemon may still be computing: say how to wait longer */
        if (rc != CLI_OK && msg == NULL && now() >= deadline)
            snprintf(err, errlen, "no answer from the daemon within %u s "
                     "(--timeout S waits longer)", timeout_s);
    }
    close(fd);
    if (rc != CLI_OK)
        return rc;
    if ((x = cJSON_GetObjectItemCaseSensitive(msg, "answer")) != NULL &&
        cJSON_IsObject(x)) {
        *answer = cJSON_DetachItemFromObjectCaseSensitive(msg, "answer");
        cJSON_Delete(msg);
        return CLI_OK;
    }
    x = cJSON_GetObjectItemCaseSensitive(msg, "error");
    snprintf(err, errlen, "%s", cJSON_IsString(x) ? x->valuestring
                                                  : "the daemon refused");
    x = cJSON_GetObjectItemCaseSensitive(msg, "code");
    rc = code_exit(cJSON_IsString(x) ? x->valuestring : NULL);
    cJSON_Delete(msg);
    return rc;
}

/* Does the daemon show us a snapshot of content hash hash?  *found, and
 * its id in *dup.  Returns an exit code (err on failure). */
static int
daemon_has(const char *sock, const char *hash, int *found, uint64_t *dup,
           char *err, size_t errlen)
{
    cJSON *req = cJSON_CreateObject(), *doc = NULL;
    const cJSON *s;
    int rc;

    if (req == NULL || cJSON_AddStringToObject(req, "cmd", "snapshots") == NULL ||
        cJSON_AddStringToObject(req, "content_hash", hash) == NULL) {
        cJSON_Delete(req);
        snprintf(err, errlen, "out of memory");
        return CLI_ERROR;
    }
    *found = 0;
    rc = cli_ask_daemon(sock, req, 60, &doc, err, errlen);
    cJSON_Delete(req);
    if (rc != CLI_OK)
        return rc;
    cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(doc, "snapshots")) {
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(s, "content_hash");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(s, "id");

        if (cJSON_IsString(h) && strcmp(h->valuestring, hash) == 0 &&
            cJSON_IsNumber(id)) {
            *dup = (uint64_t)id->valuedouble;
            *found = 1;
        }
    }
    cJSON_Delete(doc);
    return CLI_OK;
}

/* h[key] = s as the daemon takes a header string: UTF-8 (a file name
 * need not be: U+FFFD for what is not), at most ML_PROTO_MAX_LABEL
 * bytes (cut at a character). */
static void
add_header_str(cJSON *h, const char *key, const char *s)
{
    char *fixed = NULL;
    size_t n = strlen(s);

    if (ml_utf8_repair(s, n, &fixed, &n) > 0)
        s = fixed;
    n = ml_utf8_cut(s, n, ML_PROTO_MAX_LABEL);
    char *cut = strndup(s, n);

    cJSON_AddStringToObject(h, key, cut ? cut : "");
    free(cut);
    free(fixed);
}

/* The lines go out in writes of this much, not one sendto() per object:
 * a million objects cost a million system calls and context switches
 * to the daemon otherwise (bench/bench_import.py). */
#define SEND_BUF (256u << 10)

struct sendbuf {
    int fd;
    double deadline;
    char *p;
    size_t n;
};

static int
buffered(struct sendbuf *b, const char *s, size_t n, char *err, size_t errlen)
{
    if (b->n + n > SEND_BUF && b->n > 0) {
        int rc = send_all(b->fd, b->p, b->n, b->deadline, err, errlen);

        b->n = 0;
        if (rc != CLI_OK)
            return rc;
    }
    if (n > SEND_BUF)                   /* a line longer than the buffer */
        return send_all(b->fd, s, n, b->deadline, err, errlen);
    memcpy(b->p + b->n, s, n);
    b->n += n;
    return CLI_OK;
}

static int
flush(struct sendbuf *b, char *err, size_t errlen)
{
    int rc = b->n ? send_all(b->fd, b->p, b->n, b->deadline, err, errlen)
                  : CLI_OK;

    b->n = 0;
    return rc;
}

int
cli_send_dump(const char *sock, const char *path, const char *label,
              int force, uint64_t *id, uint64_t *objects, char *err,
              size_t errlen)
{
    struct cli_dump d = { 0 };
    struct ml_dumpline l;
    char hash[CLI_HASH_LEN];
    const char *base = strrchr(path, '/');
    struct sendbuf b = { .fd = -1, .deadline = now() + 3600 };
    uint64_t n = 0, dup;
    cJSON *h, *msg = NULL, *x;
    char *text;
    int rc, more = 0;

    /* a first pass: a file that is no dump, or one the daemon holds
     * already, is refused before anything is sent */
    cli_progress_start(path);
    rc = cli_dump_hash(path, hash, &n, err, errlen);
    if (rc == CLI_OK && !force) {
        int found;

        rc = daemon_has(sock, hash, &found, &dup, err, errlen);
        if (rc == CLI_OK && found) {
            snprintf(err, errlen, "%s: already stored as snapshot %" PRIu64
                     " (the same content); --force stores it again", path, dup);
            rc = CLI_ERROR;
        }
    }
    if (rc != CLI_OK)
        goto out;
    if (cli_dump_open(&d, path) != 0) {
        snprintf(err, errlen, "%s", d.err);
        rc = d.code;
        goto out;
    }
    b.p = malloc(SEND_BUF);
    b.fd = connect_to(sock, err, errlen);
    if (b.fd < 0) {
        rc = CLI_UNAVAILABLE;
        goto out;
    }
    if (b.p == NULL) {
        snprintf(err, errlen, "out of memory");
        rc = CLI_ERROR;
        goto out;
    }
    /* no hostname, pid 0: the file's "process" is its label alone, as
     * for an import with --store (docs/store-format.md, "proc") */
    h = cJSON_CreateObject();
    cJSON_AddNumberToObject(h, "meliae_stream", ML_PROTO_VERSION);
    cJSON_AddNumberToObject(h, "pid", 0);       /* a file, not this process */
    cJSON_AddNumberToObject(h, "start_time", 0);
    cJSON_AddStringToObject(h, "hostname", "");
    add_header_str(h, "program", path);
    cJSON_AddStringToObject(h, "python", "");
    if (label)
        cJSON_AddStringToObject(h, "label", label);
    else
        cJSON_AddNullToObject(h, "label");
    cJSON_AddStringToObject(h, "values", "truncated");
    cJSON_AddStringToObject(h, "mode", "file");
    add_header_str(h, "file", base ? base + 1 : path);
    cJSON_AddStringToObject(h, "content_hash", hash);
    cJSON_AddNumberToObject(h, "request", 0);
    cJSON_AddNumberToObject(h, "time", (double)time(NULL));
    text = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    rc = text ? buffered(&b, text, strlen(text), err, errlen) : CLI_ERROR;
    if (rc == CLI_OK)
        rc = buffered(&b, "\n", 1, err, errlen);
    free(text);
    while (rc == CLI_OK && (more = cli_dump_next(&d, &l)) > 0) {
        rc = buffered(&b, d.line, d.len, err, errlen);
        cli_progress(d.objects);
    }
    if (rc == CLI_OK && more < 0) {
        snprintf(err, errlen, "%s", d.err);
        rc = d.code;
    }
    if (rc == CLI_OK) {
        char tr[128];

        snprintf(tr, sizeof tr, "{\"end\": \"complete\", \"objects\": %" PRIu64
                 ", \"bytes\": %" PRIu64 "}\n", d.objects, d.bytes);
        rc = buffered(&b, tr, strlen(tr), err, errlen);
    }
    if (rc == CLI_OK)
        rc = flush(&b, err, errlen);
    if (rc == CLI_OK)
        rc = read_reply(b.fd, b.deadline, &msg, err, errlen);
    if (rc == CLI_OK) {
        if ((x = cJSON_GetObjectItemCaseSensitive(msg, "ack")) && cJSON_IsNumber(x)) {
            *id = (uint64_t)x->valuedouble;
            *objects = d.objects;
        } else {
            x = cJSON_GetObjectItemCaseSensitive(msg, "error");
            snprintf(err, errlen, "the daemon refused %s: %s", path,
                     cJSON_IsString(x) ? x->valuestring : "no reason given");
            rc = CLI_ERROR;
        }
    }
out:
    cli_progress_end();
    cJSON_Delete(msg);
    cli_dump_close(&d);
    free(b.p);
    if (b.fd >= 0)
        close(b.fd);
    return rc;
}
