/* session: server -p PORT -R ROOT.  A single-threaded HTTP/1.1 server on 127.0.0.1:PORT, one
 * level-triggered epoll loop, keep-alive (several requests per connection; HTTP/1.0 or
 * `Connection: close` closes after the reply).  Routes:
 *   POST /login   body `user=NAME`: creates a session, answers `Set-Cookie: sid=N`;
 *   POST /logout  with `Cookie: sid=N`: frees that session;
 *   GET /private  `hello NAME` for the connection's session, else 403;
 *   GET /...      a file of ROOT (`/` is /index.html), else 404.
 * Each connection caches a pointer to the session its last `Cookie: sid=N` named (looked up
 * again only when N changes).  One planted bug (stale-session, in logout()): a logout clears
 * only its own connection's cache. */
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

#define BUF_MAX 16384               /* one request, header block and body, must fit */
#define FILE_MAX (1 << 20)

struct session {
    struct session *next;
    long id;
    char user[64];
};

struct conn {
    int fd;
    size_t len;
    long sid;                       /* the cache: sid of the last Cookie, and its session */
    struct session *sess;
    char buf[BUF_MAX + 1];
};

static const char *root;
static struct session *sessions;
static long next_sid = 1;

static struct session *find(long id)
{
    struct session *s;
    for (s = sessions; s != NULL && s->id != id; s = s->next)
        ;
    return s;
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

/* Send a reply; returns 1 if the connection stays open (keep and the send worked), else 0. */
static int reply(struct conn *c, const char *status, const char *extra, const char *body,
                 size_t n, int keep)
{
    char hdr[512];
    int h = snprintf(hdr, sizeof hdr, "HTTP/1.1 %s\r\n%sContent-Type: text/html\r\n"
                     "Content-Length: %zu\r\nConnection: %s\r\n\r\n",
                     status, extra, n, keep ? "keep-alive" : "close");
    return send_all(c->fd, hdr, (size_t)h) == 0 && send_all(c->fd, body, n) == 0 && keep;
}

static int send_file(struct conn *c, const char *uri, int keep)
{
    static char data[FILE_MAX];
    char path[4096];
    ssize_t r;
    size_t n = 0;
    int ffd, len = snprintf(path, sizeof path, "%s%s", root, strcmp(uri, "/") ? uri : "/index.html");
    struct stat st;

    if (uri[0] != '/' || strstr(uri, "..") != NULL || len < 0 || (size_t)len >= sizeof path ||
        (ffd = open(path, O_RDONLY)) < 0)
        return reply(c, "404 Not Found", "", "not found\n", 10, keep);
    if (fstat(ffd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > FILE_MAX) {
        close(ffd);
        return reply(c, "404 Not Found", "", "not found\n", 10, keep);
    }
    while (n < (size_t)st.st_size && (r = read(ffd, data + n, (size_t)st.st_size - n)) > 0)
        n += (size_t)r;
    close(ffd);
    return reply(c, "200 OK", "", data, n, keep);
}

/* POST /logout: end the session the Cookie names. */
static int logout(struct conn *c, long sid, int keep)
{
    struct session **pp = &sessions, *s;
    while (*pp != NULL && (*pp)->id != sid)
        pp = &(*pp)->next;
    if ((s = *pp) == NULL)
        return reply(c, "403 Forbidden", "", "no such session\n", 16, keep);
    *pp = s->next;
    free(s);
    /* BUG (stale-session): only this connection's cached pointer is cleared.  Another
     * connection whose earlier request carried the same cookie still holds the freed session,
     * and its next `GET /private` (with that cookie, or with none) reads s->user from freed
     * memory: heap-use-after-free (ASan), or a garbled name (plain build).  One connection
     * alone never gets there: its own logout clears its own cache.  The fix is to clear every
     * connection's cache that points at s (or to look the session up on every request). */
    c->sess = NULL;
    c->sid = 0;
    return reply(c, "200 OK", "Set-Cookie: sid=; Max-Age=0\r\n", "logged out\n", 11, keep);
}

/* Answer one request: its header block is hdr (NUL-terminated), its body body[0..blen).
 * Returns 1 if the connection stays open, 0 if it is to be closed. */
static int handle(struct conn *c, char *hdr, const char *body, size_t blen)
{
    char *save = NULL, *method, *uri, *version, *line, *v, out[256], extra[64];
    long sid = -1;
    int keep, n;
    struct session *s;

    method = strtok_r(hdr, " ", &save);
    uri = strtok_r(NULL, " ", &save);
    version = strtok_r(NULL, "\r\n", &save);
    if (method == NULL || uri == NULL || version == NULL || strncmp(version, "HTTP/", 5) != 0)
        return reply(c, "400 Bad Request", "", "bad request\n", 12, 0);
    keep = strcmp(version, "HTTP/1.1") == 0;
    while ((line = strtok_r(NULL, "\r\n", &save)) != NULL) {
        if (strncasecmp(line, "Connection:", 11) == 0 && strcasestr(line, "close") != NULL)
            keep = 0;
        else if (strncasecmp(line, "Cookie:", 7) == 0 && (v = strstr(line, "sid=")) != NULL)
            sid = atol(v + 4);
    }
    if (sid > 0 && (c->sess == NULL || c->sid != sid)) {   /* refresh the cache */
        c->sid = sid;
        c->sess = find(sid);
    }
    uri[strcspn(uri, "?")] = '\0';
    if (strcmp(method, "POST") == 0 && strcmp(uri, "/login") == 0) {
        if (blen < 6 || blen > 5 + 63 || strncmp(body, "user=", 5) != 0)
            return reply(c, "400 Bad Request", "", "body: user=NAME\n", 16, keep);
        if ((s = malloc(sizeof *s)) == NULL)
            return reply(c, "503 Service Unavailable", "", "no memory\n", 10, 0);
        s->id = next_sid++;
        memcpy(s->user, body + 5, blen - 5);
        s->user[blen - 5] = '\0';
        s->next = sessions;
        sessions = s;
        c->sid = s->id;
        c->sess = s;
        snprintf(extra, sizeof extra, "Set-Cookie: sid=%ld; Path=/\r\n", s->id);
        return reply(c, "200 OK", extra, "logged in\n", 10, keep);
    }
    if (strcmp(method, "POST") == 0 && strcmp(uri, "/logout") == 0)
        return logout(c, sid, keep);
    if (strcmp(method, "GET") != 0)
        return reply(c, "501 Not Implemented", "", "not implemented\n", 16, keep);
    if (strcmp(uri, "/private") == 0) {
        if (c->sess == NULL)
            return reply(c, "403 Forbidden", "", "log in first\n", 13, keep);
        n = snprintf(out, sizeof out, "hello %s\n", c->sess->user);
        return reply(c, "200 OK", "", out, (size_t)n, keep);
    }
    return send_file(c, uri, keep);
}

/* Answer every whole request in c->buf.  Returns 1 if the connection stays open, else 0. */
static int drain(struct conn *c)
{
    char *end, *cl;
    size_t hlen, blen;

    while ((end = strstr(c->buf, "\r\n\r\n")) != NULL) {
        hlen = (size_t)(end - c->buf) + 4;
        cl = strcasestr(c->buf, "\r\nContent-Length:");
        blen = cl != NULL && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
        if (blen > BUF_MAX - hlen)
            return reply(c, "413 Content Too Large", "", "too large\n", 10, 0);
        if (c->len < hlen + blen)           /* the body is not all here yet */
            return 1;
        end[2] = '\0';                      /* the header block, with its last CRLF */
        if (!handle(c, c->buf, c->buf + hlen, blen))
            return 0;
        c->len -= hlen + blen;
        memmove(c->buf, c->buf + hlen + blen, c->len);
        c->buf[c->len] = '\0';
    }
    if (c->len == BUF_MAX)
        return reply(c, "431 Request Header Fields Too Large", "", "too large\n", 10, 0);
    return 1;
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
    if ((lfd = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 128) < 0 ||
        (ep = epoll_create1(0)) < 0) {
        perror("listen");
        return 1;
    }
    ev.events = EPOLLIN;
    ev.data.ptr = NULL;                     /* NULL: the listening socket */
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    for (;;) {
        if ((n = epoll_wait(ep, evs, 64, -1)) < 0)
            continue;                       /* EINTR */
        for (i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            ssize_t r;
            if (c == NULL) {                /* a new connection: a conn, level-triggered */
                struct timeval tv = { 5, 0 };   /* a client that does not read: 5 s, then gone */
                int fd = accept(lfd, NULL, NULL);
                if (fd < 0)
                    continue;
                if ((c = calloc(1, sizeof *c)) == NULL) {
                    close(fd);
                    continue;
                }
                c->fd = fd;
                setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
                ev.events = EPOLLIN;
                ev.data.ptr = c;
                if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
                    close(fd);
                    free(c);
                }
                continue;
            }
            /* readable: one recv() (the socket is ready, so it does not block) */
            r = recv(c->fd, c->buf + c->len, BUF_MAX - c->len, 0);
            if (r < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (r > 0) {
                c->len += (size_t)r;
                c->buf[c->len] = '\0';
                if (drain(c))
                    continue;
            }
            close(c->fd);                   /* EOF, an error, or the reply said close */
            free(c);
        }
    }
}
