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
        int pr = left > 0 ? poll(&pf, 1, (int)(left * 1000) + 1) : 0;
        if (pr < 0 && errno == EINTR)
            continue;
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

int
cli_send_dump(const char *sock, const char *path, const char *label,
              uint64_t *id, uint64_t *objects, char *err, size_t errlen)
{
    struct ml_dumpparser p;
    struct ml_dumpline l;
    const char *hostname = "";
    char *line = NULL, *text;
    size_t cap = 0;
    ssize_t len;
    uint64_t n = 0, bytes = 0, lineno = 0;
    double deadline = now() + 3600;
    cJSON *h, *msg = NULL, *x;
    FILE *f;
    int fd, rc;

    f = fopen(path, "re");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return errno == ENOENT ? CLI_NOTFOUND : CLI_ERROR;
    }
    fd = connect_to(sock, err, errlen);
    if (fd < 0) {
        fclose(f);
        return CLI_UNAVAILABLE;
    }
    /* no hostname, pid 0: the file's "process" is its label alone, as
     * for an import with --store (docs/store-format.md, "proc") */
    h = cJSON_CreateObject();
    cJSON_AddNumberToObject(h, "meliae_stream", ML_PROTO_VERSION);
    cJSON_AddNumberToObject(h, "pid", 0);       /* a file, not this process */
    cJSON_AddNumberToObject(h, "start_time", 0);
    cJSON_AddStringToObject(h, "hostname", hostname);
    cJSON_AddStringToObject(h, "program", path);
    cJSON_AddStringToObject(h, "python", "");
    if (label)
        cJSON_AddStringToObject(h, "label", label);
    else
        cJSON_AddNullToObject(h, "label");
    cJSON_AddStringToObject(h, "values", "truncated");
    cJSON_AddStringToObject(h, "mode", "file");
    cJSON_AddNumberToObject(h, "request", 0);
    cJSON_AddNumberToObject(h, "time", (double)time(NULL));
    text = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    ml_dumpparser_init(&p);
    rc = text ? send_all(fd, text, strlen(text), deadline, err, errlen) : CLI_ERROR;
    if (rc == CLI_OK)
        rc = send_all(fd, "\n", 1, deadline, err, errlen);
    free(text);
    while (rc == CLI_OK && (len = getline(&line, &cap, f)) > 0) {
        lineno++;
        if (len == 1 || (lineno == 1 && line[0] != '{'))
            continue;
        int prc = ml_dumpline_parse(&p, line, (size_t)len, &l);
        if (prc != 0) {
            snprintf(err, errlen, "%s:%" PRIu64 ": %s", path, lineno,
                     prc == ML_EPROTO ? p.err : ml_strerror(prc));
            rc = CLI_ERROR;
            break;
        }
        if (l.kind != ML_LINE_OBJECT)
            continue;
        n++;
        bytes += l.size;
        if (line[len - 1] != '\n') {    /* the last line, unterminated */
            rc = send_all(fd, line, (size_t)len, deadline, err, errlen);
            if (rc == CLI_OK)
                rc = send_all(fd, "\n", 1, deadline, err, errlen);
        } else {
            rc = send_all(fd, line, (size_t)len, deadline, err, errlen);
        }
    }
    if (rc == CLI_OK) {
        char tr[128];

        snprintf(tr, sizeof tr, "{\"end\": \"complete\", \"objects\": %" PRIu64
                 ", \"bytes\": %" PRIu64 "}\n", n, bytes);
        rc = send_all(fd, tr, strlen(tr), deadline, err, errlen);
    }
    if (rc == CLI_OK)
        rc = read_reply(fd, deadline, &msg, err, errlen);
    if (rc == CLI_OK) {
        if ((x = cJSON_GetObjectItemCaseSensitive(msg, "ack")) && cJSON_IsNumber(x)) {
            *id = (uint64_t)x->valuedouble;
            *objects = n;
        } else {
            x = cJSON_GetObjectItemCaseSensitive(msg, "error");
            snprintf(err, errlen, "the daemon refused %s: %s", path,
                     cJSON_IsString(x) ? x->valuestring : "no reason given");
            rc = CLI_ERROR;
        }
    }
    cJSON_Delete(msg);
    free(line);
    ml_dumpparser_free(&p);
    fclose(f);
    close(fd);
    return rc;
}
