/* sigpipe: server -p PORT -R ROOT.  An iterative HTTP/1.0 GET file server on 127.0.0.1:PORT:
 * one connection at a time, it reads the header block (up to the blank line), answers 200 with
 * ROOT + target (`/` is /index.html) or an error, and closes.  The reply is written with plain
 * write() in pieces (the status line, each header line, the blank line, then the file 1 KiB at
 * a time), and, as in much student code, a piece that fails does not stop the next ones.  One
 * planted bug (no-sigpipe-ignore, in main()): SIGPIPE keeps its default action. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define REQ_MAX 8192

static const char *root;

/* Write one piece of the reply; a failed write() (the client went away) ends this piece only. */
static void put(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void puts_fd(int fd, const char *s)
{
    put(fd, s, strlen(s));
}

static void send_error(int fd, const char *status)
{
    char line[256], body[128];
    int b = snprintf(body, sizeof body, "<html><body><h1>%s</h1></body></html>\n", status);
    snprintf(line, sizeof line, "HTTP/1.0 %s\r\n", status);
    puts_fd(fd, line);
    puts_fd(fd, "Content-Type: text/html\r\n");
    snprintf(line, sizeof line, "Content-Length: %d\r\n", b);
    puts_fd(fd, line);
    puts_fd(fd, "Connection: close\r\n\r\n");
    put(fd, body, (size_t)b);
}

/* Read the request on fd and answer it. */
static void serve(int fd)
{
    char req[REQ_MAX + 1], path[4096], line[256], buf[1024], *method, *uri, *version;
    char *save = NULL;
    size_t len = 0;
    struct stat st;
    ssize_t r;
    int ffd, n;

    req[0] = '\0';
    while (strstr(req, "\r\n\r\n") == NULL) {
        if (len == REQ_MAX) {
            send_error(fd, "431 Request Header Fields Too Large");
            return;
        }
        r = read(fd, req + len, REQ_MAX - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)                         /* the client left mid-request */
            return;
        len += (size_t)r;
        req[len] = '\0';
    }
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
    puts_fd(fd, "HTTP/1.0 200 OK\r\n");
    puts_fd(fd, "Server: sigpipe\r\n");
    puts_fd(fd, "Content-Type: text/html\r\n");
    snprintf(line, sizeof line, "Content-Length: %lld\r\n", (long long)st.st_size);
    puts_fd(fd, line);
    puts_fd(fd, "Connection: close\r\n");
    puts_fd(fd, "\r\n");
    while ((r = read(ffd, buf, sizeof buf)) > 0)
        put(fd, buf, (size_t)r);
    close(ffd);
}

int main(int argc, char **argv)
{
    const char *port = NULL;
    struct sockaddr_in addr;
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
    /* BUG (no-sigpipe-ignore): there is no signal(SIGPIPE, SIG_IGN) here, and the reply is
     * written with write(), not send(..., MSG_NOSIGNAL).  A client that sends a whole request
     * and then resets the connection (SO_LINGER {1, 0} and close(), without reading) makes the
     * first write() of the reply fail with ECONNRESET and the next one raise SIGPIPE, whose
     * default action ends the whole server: nobody is served after it.  A client that reads its
     * reply, or only half-closes, never gets there. */
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
    for (;;) {
        struct timeval tv = { 5, 0 };       /* a stuck client cannot keep the server */
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) {                       /* EINTR, ECONNABORTED, EMFILE */
            if (errno != EINTR)
                usleep(1000);
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        serve(fd);
        close(fd);
    }
}
