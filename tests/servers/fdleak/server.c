/* fdleak: server -p PORT -R ROOT.  A thread-per-connection HTTP/1.0 GET file server on
 * 127.0.0.1:PORT: the accept loop hands each connection to a detached thread, which reads the
 * header block (up to the blank line), answers 200 with ROOT + target (`/` is /index.html) or an
 * error, and closes the connection.  One planted bug (early-eof-leak, in handle()): a client that
 * leaves before its blank line leaks the connection's descriptor.  Nothing in it crashes. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define REQ_MAX 8192

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

static void send_error(int fd, const char *status)
{
    char body[128], hdr[256];
    int b = snprintf(body, sizeof body, "<html><body><h1>%s</h1></body></html>\n", status);
    int h = snprintf(hdr, sizeof hdr, "HTTP/1.0 %s\r\nContent-Type: text/html\r\n"
                     "Content-Length: %d\r\nConnection: close\r\n\r\n", status, b);
    if (send_all(fd, hdr, (size_t)h) == 0)
        send_all(fd, body, (size_t)b);
}

/* Answer the request whose header block is in req (NUL-terminated). */
static void respond(int fd, char *req)
{
    char path[4096], hdr[256], buf[8192], *method, *uri, *version, *save = NULL;
    struct stat st;
    ssize_t r;
    int ffd, n;

    req[strcspn(req, "\r\n")] = '\0';       /* the request line */
    method = strtok_r(req, " ", &save);
    uri = strtok_r(NULL, " ", &save);
    version = strtok_r(NULL, " ", &save);
    if (method == NULL || uri == NULL || version == NULL || strncmp(version, "HTTP/", 5) != 0) {
        send_error(fd, "400 Bad Request");
        return;
    }
    if (strcmp(method, "GET") != 0) {
        send_error(fd, "501 Not Implemented");
        return;
    }
    uri[strcspn(uri, "?")] = '\0';
    if (strcmp(uri, "/") == 0)
        uri = "/index.html";
    n = snprintf(path, sizeof path, "%s%s", root, uri);
    if (uri[0] != '/' || strstr(uri, "..") != NULL || n < 0 || (size_t)n >= sizeof path ||
        (ffd = open(path, O_RDONLY)) < 0) {
        send_error(fd, "404 Not Found");
        return;
    }
    if (fstat(ffd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(ffd);
        send_error(fd, "404 Not Found");
        return;
    }
    n = snprintf(hdr, sizeof hdr, "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n"
                 "Content-Length: %lld\r\nConnection: close\r\n\r\n", (long long)st.st_size);
    if (send_all(fd, hdr, (size_t)n) == 0)
        while ((r = read(ffd, buf, sizeof buf)) > 0 && send_all(fd, buf, (size_t)r) == 0)
            ;
    close(ffd);
}

/* The thread of one connection: read the header block, answer, close. */
static void *handle(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char req[REQ_MAX + 1];
    size_t len = 0;
    ssize_t r;

    req[0] = '\0';
    while (strstr(req, "\r\n\r\n") == NULL) {
        if (len == REQ_MAX) {               /* no blank line in 8 KiB */
            send_error(fd, "431 Request Header Fields Too Large");
            close(fd);
            return NULL;
        }
        r = recv(fd, req + len, REQ_MAX - len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            /* BUG (early-eof-leak): EOF (or an error) before the blank line that ends the header
             * block returns without close(fd): the connection's descriptor leaks, one per such
             * client (`GET / HTTP/1.1\r\nHost: x\r\n` then close, or no CRLF at all).  After
             * about 1,000 of them accept() fails with EMFILE and nobody is served any more.  The
             * fix is close(fd) here, as on every other path. */
            return NULL;
        }
        len += (size_t)r;
        req[len] = '\0';
    }
    respond(fd, req);
    close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *port = NULL;
    struct sockaddr_in addr;
    pthread_attr_t attr;
    int opt, lfd, one = 1, bad = 0;

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
        bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 128) < 0) {
        perror("listen");
        return 1;
    }
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (;;) {
        pthread_t t;
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) {                       /* EINTR, ECONNABORTED, EMFILE (after the leak) */
            if (errno != EINTR)
                usleep(1000);
            continue;
        }
        if (pthread_create(&t, &attr, handle, (void *)(intptr_t)fd) != 0)
            close(fd);
    }
}
