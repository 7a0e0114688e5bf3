/* leaks: server -p PORT -R ROOT [-l LOGFILE].  An iterative HTTP/1.0 GET file server whose
 * leaks are compile-time switches (see README.md): -DLEAK_FILE, -DLEAK_RESET, -DLEAK_COOKIE.
 * Listens on 127.0.0.1 only. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define REQ_MAX 8192

static const char *root = "www", *logname;
static FILE *logfile;           /* opened at the first request, kept open: not a leak */
static int debug_cookie;         /* a "debug=1" cookie was seen: replies say so */

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void reply(int fd, const char *status, const char *body)
{
    char head[256];
    int n = snprintf(head, sizeof head, "HTTP/1.0 %s\r\nContent-Length: %zu\r\n\r\n", status, strlen(body));
    if (send_all(fd, head, (size_t)n) == 0)
        send_all(fd, body, strlen(body));
}

static void note_cookie(const char *req)
{
    const char *c = strcasestr(req, "\r\nCookie:");
    if (c == NULL)
        return;
    c += 9;
    char *copy = strndup(c, strcspn(c, "\r\n"));
    if (copy != NULL && strcasestr(copy, "debug=1") != NULL)
        debug_cookie = 1;
#ifndef LEAK_COOKIE
    free(copy);                 /* LEAK_COOKIE plants the leak: the copy is never freed */
#endif
}

static void serve_file(int fd, const char *target)
{
    char path[4096];
    if (strstr(target, "..") != NULL || snprintf(path, sizeof path, "%s/%s", root, target) >= (int)sizeof path) {
        reply(fd, "404 Not Found", "not found\n");
        return;
    }
    int file = open(path, O_RDONLY);
    struct stat st;
    if (file < 0 || fstat(file, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (file >= 0)
            close(file);
        reply(fd, "404 Not Found", "not found\n");
        return;
    }
    char head[256], buf[4096];
    int n = snprintf(head, sizeof head, "HTTP/1.0 200 OK\r\n%sContent-Length: %lld\r\n\r\n",
                     debug_cookie ? "X-Debug: on\r\n" : "", (long long)st.st_size);
    ssize_t got;
    if (send_all(fd, head, (size_t)n) == 0)
        while ((got = read(file, buf, sizeof buf)) > 0 && send_all(fd, buf, (size_t)got) == 0)
            ;
#ifndef LEAK_FILE
    close(file);
#endif
}

/* One connection: the request up to its blank line, then the answer; always closed, but for
 * the planted LEAK_RESET. */
static void handle(int fd)
{
    char req[REQ_MAX + 1] = "";
    size_t len = 0;
    while (len < REQ_MAX && strstr(req, "\r\n\r\n") == NULL) {
        ssize_t got = recv(fd, req + len, REQ_MAX - len, 0);
        if (got <= 0) {
#ifdef LEAK_RESET
            if (got < 0 && errno == ECONNRESET)
                return;         /* the planted leak: a reset connection is never closed */
#endif
            break;
        }
        len += (size_t)got;
        req[len] = '\0';
    }
    req[len] = '\0';
    if (logname != NULL && logfile == NULL && (logfile = fopen(logname, "a")) != NULL)
        setvbuf(logfile, NULL, _IOLBF, 0);
    if (logfile != NULL)
        fprintf(logfile, "%.*s\n", (int)strcspn(req, "\r\n"), req);
    note_cookie(req);
    char method[8], target[2048];
    if (sscanf(req, "%7s /%2047s", method, target) == 2 && strcmp(method, "GET") == 0)
        serve_file(fd, target);
    else if (sscanf(req, "%7s", method) == 1)
        reply(fd, "404 Not Found", "not found\n");
    close(fd);
}

int main(int argc, char **argv)
{
    int port = 8080, opt, one = 1;
    while ((opt = getopt(argc, argv, "p:R:l:")) != -1) {
        if (opt == 'p')
            port = atoi(optarg);
        else if (opt == 'R')
            root = optarg;
        else if (opt == 'l')
            logname = optarg;
        else {
            fprintf(stderr, "usage: %s -p PORT -R ROOT [-l LOGFILE]\n", argv[0]);
            return 2;
        }
    }
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ls < 0 || bind(ls, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(ls, 16) != 0) {
        perror("listen");
        return 1;
    }
    for (;;) {
        int fd = accept(ls, NULL, NULL);
        if (fd >= 0)
            handle(fd);
    }
}
