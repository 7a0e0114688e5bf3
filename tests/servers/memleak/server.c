/* memleak: server -p PORT -R ROOT [-n COUNT].  An iterative HTTP/1.0 GET file server on
 * 127.0.0.1:PORT: one connection at a time, it reads the header block line by line, keeps a copy
 * of the Host header's value (named in its 404 page), answers 200 with ROOT + target (`/` is
 * /index.html) or an error, and closes.  With -n it exits (status 0) after COUNT connections;
 * SIGTERM also ends it with status 0, so that LeakSanitizer reports at exit.  One planted bug
 * (host-leak, in serve()): the copy of Host leaks when the client leaves before its blank line. */
#define _GNU_SOURCE
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
#include <sys/time.h>
#include <unistd.h>

#define REQ_MAX 8192

static const char *root;
static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

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

static void send_error(int fd, const char *status, const char *host)
{
    char body[512], hdr[256];
    int b = snprintf(body, sizeof body, "<html><body><h1>%s</h1><p>on %.200s</p></body></html>\n",
                     status, host != NULL ? host : "this server");
    int h = snprintf(hdr, sizeof hdr, "HTTP/1.0 %s\r\nContent-Type: text/html\r\n"
                     "Content-Length: %d\r\nConnection: close\r\n\r\n", status, b);
    if (send_all(fd, hdr, (size_t)h) == 0)
        send_all(fd, body, (size_t)b);
}

/* Answer the request line reqline; host is the Host header's value or NULL. */
static void respond(int fd, char *reqline, const char *host)
{
    char path[4096], hdr[256], buf[8192], *method, *uri, *version, *save = NULL;
    struct stat st;
    ssize_t r;
    int ffd, n;

    method = strtok_r(reqline, " ", &save);
    uri = strtok_r(NULL, " ", &save);
    version = strtok_r(NULL, " ", &save);
    if (method == NULL || uri == NULL || version == NULL || strncmp(version, "HTTP/", 5) != 0) {
        send_error(fd, "400 Bad Request", host);
        return;
    }
    if (strcmp(method, "GET") != 0) {
        send_error(fd, "501 Not Implemented", host);
        return;
    }
    uri[strcspn(uri, "?")] = '\0';
    if (strcmp(uri, "/") == 0)
        uri = "/index.html";
    n = snprintf(path, sizeof path, "%s%s", root, uri);
    if (uri[0] != '/' || strstr(uri, "..") != NULL || n < 0 || (size_t)n >= sizeof path ||
        (ffd = open(path, O_RDONLY)) < 0) {
        send_error(fd, "404 Not Found", host);
        return;
    }
    if (fstat(ffd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(ffd);
        send_error(fd, "404 Not Found", host);
        return;
    }
    n = snprintf(hdr, sizeof hdr, "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n"
                 "Content-Length: %lld\r\nConnection: close\r\n\r\n", (long long)st.st_size);
    if (send_all(fd, hdr, (size_t)n) == 0)
        while ((r = read(ffd, buf, sizeof buf)) > 0 && send_all(fd, buf, (size_t)r) == 0)
            ;
    close(ffd);
}

/* Read the header block on fd line by line and answer it. */
static void serve(int fd)
{
    char req[REQ_MAX + 1], *reqline = NULL, *host = NULL, *line, *eol;
    size_t len = 0, done = 0;       /* bytes read; bytes of whole lines already looked at */
    ssize_t r;

    req[0] = '\0';
    for (;;) {
        while ((eol = strstr(req + done, "\r\n")) != NULL) {
            *eol = '\0';
            line = req + done;
            done = (size_t)(eol + 2 - req);
            if (reqline == NULL)
                reqline = line;
            else if (*line == '\0')         /* the blank line: the request is complete */
                goto complete;
            else if (strncasecmp(line, "Host:", 5) == 0 && host == NULL)
                host = strdup(line + 5 + strspn(line + 5, " \t"));
        }
        if (len == REQ_MAX) {
            send_error(fd, "431 Request Header Fields Too Large", host);
            free(host);
            return;
        }
        r = recv(fd, req + len, REQ_MAX - len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            /* BUG (host-leak): the client left (EOF or an error) before the blank line, and
             * this path returns without free(host): once the Host line has arrived (e.g.
             * `GET / HTTP/1.1\r\nHost: x\r\n`, then close), its copy leaks, one per such
             * connection (LeakSanitizer: direct leak, allocated by strdup in serve).  Every
             * other path frees it.  The fix is free(host) here. */
            return;
        }
        len += (size_t)r;
        req[len] = '\0';
    }
complete:
    respond(fd, reqline, host);
    free(host);
}

int main(int argc, char **argv)
{
    const char *port = NULL;
    struct sockaddr_in addr;
    struct sigaction sa;
    int opt, lfd, one = 1, bad = 0;
    long count = -1;                /* connections to serve; -1: no end */

    while ((opt = getopt(argc, argv, "p:R:n:")) != -1) {
        if (opt == 'p')
            port = optarg;
        else if (opt == 'R')
            root = optarg;
        else if (opt == 'n')
            count = atol(optarg);
        else
            bad = 1;
    }
    if (bad || port == NULL || root == NULL || optind != argc || atoi(port) <= 0 ||
        atoi(port) > 65535 || count == 0 || count < -1) {
        fprintf(stderr, "Usage: %s -p PORT -R ROOT [-n COUNT]\n", argv[0]);
        return 1;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;        /* no SA_RESTART: accept() returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((unsigned short)atoi(port));
    if ((lfd = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 128) < 0) {
        perror("listen");
        return 1;
    }
    {   /* accept() wakes up every second: a SIGTERM just before it is seen at the latest then */
        struct timeval tv = { 1, 0 };
        setsockopt(lfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    while (!stop && count != 0) {
        struct timeval tv = { 5, 0 };       /* a stuck client cannot keep the server */
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) {                       /* EINTR (SIGTERM), EAGAIN (1 s), EMFILE */
            if (errno != EINTR)
                usleep(1000);
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        serve(fd);
        close(fd);
        if (count > 0)
            count--;
    }
    close(lfd);
    return 0;
}
