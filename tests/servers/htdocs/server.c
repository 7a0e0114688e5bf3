/*
 * htdocs: server -p PORT.  A thread-per-connection HTTP/1.0 GET server that serves ./htdocs,
 * relative to the folder it is started in (no root option), as many student servers do.
 * One planted bug (range-no-dash): a Range header without '-' on a file that exists crashes it
 * (SIGSEGV); a server started elsewhere, which finds no ./htdocs, answers 404 and never gets
 * there.  Listens on 127.0.0.1 only.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static void reply(int fd, const char *status, const char *body, size_t n)
{
    char hdr[256];
    int h = snprintf(hdr, sizeof hdr, "HTTP/1.0 %s\r\nContent-Length: %zu\r\n\r\n", status, n);
    if (write(fd, hdr, (size_t)h) == h && n > 0 && write(fd, body, n) < 0)
        perror("write");
}

static void serve(int fd)
{
    char req[8192], path[4096], body[65536], *save = NULL, *line, *range = NULL;
    size_t len = 0;
    ssize_t r;

    while (len < sizeof req - 1 && (r = read(fd, req + len, sizeof req - 1 - len)) > 0) {
        len += (size_t)r;
        req[len] = '\0';
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    req[len] = '\0';
    char *method = strtok_r(req, " ", &save), *uri = strtok_r(NULL, " ", &save);
    if (method == NULL || uri == NULL || strcmp(method, "GET") != 0) {
        reply(fd, "400 Bad Request", "", 0);
        return;
    }
    strtok_r(NULL, "\n", &save);            /* the rest of the request line */
    while ((line = strtok_r(NULL, "\n", &save)) != NULL)
        if (strncasecmp(line, "Range:", 6) == 0)
            range = line + 6;
    if (strcmp(uri, "/") == 0)
        uri = "/index.html";
    if (strstr(uri, "..") || snprintf(path, sizeof path, "htdocs%s", uri) >= (int)sizeof path) {
        reply(fd, "403 Forbidden", "", 0);
        return;
    }
    int f = open(path, O_RDONLY);
    if (f < 0) {
        reply(fd, "404 Not Found", "", 0);
        return;
    }
    ssize_t n = read(f, body, sizeof body);
    close(f);
    if (n < 0)
        n = 0;
    if (range) {
        /* BUG (range-no-dash): "Range: bytes=5" has no '-': strchr returns NULL and the
         * store below writes through it.  The fix is to answer 416 when dash is NULL. */
        char *dash = strchr(range, '-');
        *dash = '\0';
        long from = atol(strchr(range, '=') ? strchr(range, '=') + 1 : range);
        if (from < 0 || from > n)
            from = n;
        reply(fd, "206 Partial Content", body + from, (size_t)(n - from));
        return;
    }
    reply(fd, "200 OK", body, (size_t)n);
}

static void *connection(void *arg)
{
    int fd = (int)(long)arg;
    serve(fd);
    close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    int port = 0, opt, one = 1;
    signal(SIGPIPE, SIG_IGN); /* a client that leaves before its reply is not this server's bug */
    while ((opt = getopt(argc, argv, "p:")) != -1)
        port = opt == 'p' ? atoi(optarg) : -1;
    if (port <= 0) {
        fprintf(stderr, "usage: %s -p PORT (serves ./htdocs)\n", argv[0]);
        return 2;
    }
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 64) != 0) {
        perror("listen");
        return 1;
    }
    for (;;) {
        int c = accept(lfd, NULL, NULL);
        pthread_t t;
        if (c >= 0 && pthread_create(&t, NULL, connection, (void *)(long)c) == 0)
            pthread_detach(t);
        else if (c >= 0)
            close(c);
    }
}
