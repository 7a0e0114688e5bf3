/* eofburst: server -p PORT -R ROOT.  A single-threaded HTTP/1.1 GET file server on
 * 127.0.0.1:PORT: one edge-triggered epoll loop over non-blocking sockets; on each readiness
 * event it reads until EAGAIN, and once a whole header block is there it answers 200 with ROOT +
 * target (`/` is /index.html), 206 for `Range: bytes=START-END` or `bytes=START-`, or an error,
 * and closes (`Connection: close`).  Two planted bugs:
 *   eof-in-burst (in on_readable()): a read burst that ends in EOF closes the connection without
 *     an answer, even when the burst brought a whole request: a client that half-closes right
 *     after its request is not served; one that keeps its side open until the reply (curl) is;
 *   range-reversed (in send_file()): `Range: bytes=START-END` with START > END + 1 copies a
 *     negative length into what malloc() returned for it (NULL): a crash, reachable only by a
 *     client that is served. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define REQ_MAX 8192
#define FILE_MAX (1 << 20)

struct conn {
    int fd;
    size_t len;
    char buf[REQ_MAX + 1];
};

static const char *root;

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

static void reply(int fd, const char *status, const char *extra, const char *body, size_t n)
{
    char hdr[512];
    int h = snprintf(hdr, sizeof hdr, "HTTP/1.1 %s\r\n%sContent-Type: text/html\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n", status, extra, n);
    if (send_all(fd, hdr, (size_t)h) == 0)
        send_all(fd, body, n);
}

/* 200 with the file ROOT + uri, or 206 with the part range ("START-END" or "START-") names. */
static void send_file(int fd, const char *uri, const char *range)
{
    static char data[FILE_MAX];
    char path[4096], extra[128], *dash, *part;
    long size = 0, start, end;
    ssize_t r;
    int ffd, n = snprintf(path, sizeof path, "%s%s", root, strcmp(uri, "/") ? uri : "/index.html");
    struct stat st;

    if (uri[0] != '/' || strstr(uri, "..") != NULL || n < 0 || (size_t)n >= sizeof path ||
        (ffd = open(path, O_RDONLY)) < 0) {
        reply(fd, "404 Not Found", "", "not found\n", 10);
        return;
    }
    if (fstat(ffd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > FILE_MAX) {
        close(ffd);
        reply(fd, "404 Not Found", "", "not found\n", 10);
        return;
    }
    while (size < st.st_size && (r = read(ffd, data + size, (size_t)(st.st_size - size))) > 0)
        size += r;
    close(ffd);
    if (range == NULL || strncmp(range, "bytes=", 6) != 0 || (dash = strchr(range, '-')) == NULL ||
        dash == range + 6) {                /* no Range (or one we ignore): the whole file */
        reply(fd, "200 OK", "Accept-Ranges: bytes\r\n", data, (size_t)size);
        return;
    }
    start = strtol(range + 6, NULL, 10);
    end = dash[1] >= '0' && dash[1] <= '9' ? strtol(dash + 1, NULL, 10) : size - 1;
    if (end > size - 1)
        end = size - 1;
    if (start < 0 || start >= size) {
        snprintf(extra, sizeof extra, "Content-Range: bytes */%ld\r\n", size);
        reply(fd, "416 Range Not Satisfiable", extra, "", 0);
        return;
    }
    /* BUG (range-reversed): nothing checks start <= end.  `Range: bytes=10-5` makes the length
     * end - start + 1 negative; as a size_t it is huge, malloc() fails, and memcpy() copies
     * into the NULL it returned: SIGSEGV (ASan: allocation-size-too-big, in malloc).  The fix
     * is to answer 416 when start > end (and to check malloc()). */
    part = malloc((size_t)(end - start + 1));
    memcpy(part, data + start, (size_t)(end - start + 1));
    snprintf(extra, sizeof extra, "Content-Range: bytes %ld-%ld/%ld\r\n", start, end, size);
    reply(fd, "206 Partial Content", extra, part, (size_t)(end - start + 1));
    free(part);
}

/* Answer the whole request in c->buf. */
static void respond(struct conn *c)
{
    char *save = NULL, *method, *uri, *version, *line, *range = NULL;

    method = strtok_r(c->buf, " ", &save);
    uri = strtok_r(NULL, " ", &save);
    version = strtok_r(NULL, "\r\n", &save);
    if (method == NULL || uri == NULL || version == NULL || strncmp(version, "HTTP/", 5) != 0) {
        reply(c->fd, "400 Bad Request", "", "bad request\n", 12);
        return;
    }
    while ((line = strtok_r(NULL, "\r\n", &save)) != NULL)
        if (strncasecmp(line, "Range:", 6) == 0)
            range = line + 6 + strspn(line + 6, " \t");
    if (strcmp(method, "GET") != 0) {
        reply(c->fd, "501 Not Implemented", "", "not implemented\n", 16);
        return;
    }
    uri[strcspn(uri, "?")] = '\0';
    send_file(c->fd, uri, range);
}

/* Replies are written blocking, with a 5 s send timeout (SO_SNDTIMEO), then the socket closes. */
static void blocking(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
}

/* The connection is readable (edge-triggered): read until EAGAIN.  Returns 1 if it stays open. */
static int on_readable(struct conn *c)
{
    int eof = 0;
    ssize_t r;

    for (;;) {
        if (c->len == REQ_MAX) {
            blocking(c->fd);
            reply(c->fd, "431 Request Header Fields Too Large", "", "too large\n", 10);
            return 0;
        }
        r = recv(c->fd, c->buf + c->len, REQ_MAX - c->len, 0);
        if (r > 0) {
            c->len += (size_t)r;
            c->buf[c->len] = '\0';
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == EAGAIN)
            break;                          /* all read for now */
        if (r < 0)                          /* ECONNRESET and the like */
            return 0;
        eof = 1;
        break;
    }
    /* BUG (eof-in-burst): EOF at the end of a read burst is taken to mean the client is gone,
     * and the connection is closed without an answer, although the same burst may have brought
     * a whole request before the EOF: a client that sends its request and half-closes at once
     * (shutdown(SHUT_WR)) gets no reply.  A client that keeps its side open until it has the
     * reply (curl, browsers) is served.  The fix is to answer a whole request first and to
     * treat the EOF as closing only afterwards. */
    if (eof)
        return 0;
    if (strstr(c->buf, "\r\n\r\n") == NULL)
        return 1;                           /* wait for the rest */
    blocking(c->fd);
    respond(c);
    return 0;                               /* Connection: close */
}

int main(int argc, char **argv)
{
    const char *port = NULL;
    struct sockaddr_in addr;
    struct epoll_event ev, evs[64];
    int opt, lfd, ep, one = 1, bad = 0, i, n;

    while ((opt = getopt(argc, argv, "p:R:")) != -1) {
        if (opt == 'p')
            port = optarg;
        else if (opt == 'R')
            root = optarg;
        else
            bad = 1;
    }
    if (bad || port == NULL || root == NULL || optind != argc || atoi(port) <= 0 ||
        atoi(port) > 65535) {
        fprintf(stderr, "Usage: %s -p PORT -R ROOT\n", argv[0]);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((unsigned short)atoi(port));
    if ((lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)) < 0 ||
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 128) < 0 ||
        (ep = epoll_create1(0)) < 0) {
        perror("listen");
        return 1;
    }
    ev.events = EPOLLIN | EPOLLET;
    ev.data.ptr = NULL;                     /* NULL: the listening socket */
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    for (;;) {
        if ((n = epoll_wait(ep, evs, 64, -1)) < 0)
            continue;                       /* EINTR */
        for (i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c == NULL) {                /* edge-triggered: accept until EAGAIN */
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    struct timeval tv = { 5, 0 };   /* see blocking() */
                    if ((c = calloc(1, sizeof *c)) == NULL) {
                        close(fd);
                        continue;
                    }
                    c->fd = fd;
                    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
                    ev.events = EPOLLIN | EPOLLET;
                    ev.data.ptr = c;
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
                        close(fd);
                        free(c);
                    }
                }
                continue;
            }
            if (!on_readable(c)) {
                close(c->fd);
                free(c);
            }
        }
    }
}
