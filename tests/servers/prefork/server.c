/* prefork: server -p PORT -R ROOT [-w WORKERS].  A tiny HTTP/1.0 GET file server in the style of
 * CS:APP's "tiny", with pre-forked workers: the parent listens, forks WORKERS processes that each
 * accept() on the shared socket and serve one request per connection, and re-forks any worker
 * that dies.  One planted bug (query-no-equals, in the worker); nothing else may crash. */
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
#include <sys/wait.h>
#include <unistd.h>

#define REQ_MAX 8192

static const char *root = "www";

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
    int h = snprintf(hdr, sizeof hdr, "HTTP/1.0 %s\r\nContent-Length: %d\r\n"
                     "Content-Type: text/html\r\n\r\n", status, b);
    if (send_all(fd, hdr, (size_t)h) == 0)
        send_all(fd, body, (size_t)b);
}

/* Serve the one request on fd (in a worker). */
static void serve(int fd)
{
    char req[REQ_MAX + 1], path[4096], hdr[256], buf[8192];
    char *method, *uri, *version, *q, *save = NULL;
    size_t len = 0;
    struct stat st;
    ssize_t r;
    int ffd, n;

    while (len < REQ_MAX) {         /* until a blank line, EOF or a full buffer */
        r = recv(fd, req + len, REQ_MAX - len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
        req[len] = '\0';
        if (strstr(req, "\r\n\r\n") != NULL || strstr(req, "\n\n") != NULL)
            break;
    }
    req[len] = '\0';
    req[strcspn(req, "\r\n")] = '\0';       /* keep the request line */
    method = strtok_r(req, " ", &save);
    uri = strtok_r(NULL, " ", &save);
    version = strtok_r(NULL, " ", &save);
    if (method == NULL || uri == NULL || version == NULL) {
        send_error(fd, "400 Bad Request");
        return;
    }
    if (strcmp(method, "GET") != 0) {
        send_error(fd, "501 Not Implemented");
        return;
    }
    if ((q = strchr(uri, '?')) != NULL) {   /* "?name=value": split, the file is uri */
        char *query = q + 1;
        /* BUG (query-no-equals): strchr() returns NULL for a query without '=' (e.g.
         * "GET /index.html?x HTTP/1.0"), and the store below writes through NULL: SIGSEGV in
         * the worker.  The fix is `if (eq != NULL)` around the split. */
        char *eq = strchr(query, '=');
        *eq = '\0';
        *q = '\0';
    }
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
    n = snprintf(hdr, sizeof hdr, "HTTP/1.0 200 OK\r\nContent-Length: %lld\r\n"
                 "Content-Type: text/html\r\n\r\n", (long long)st.st_size);
    if (send_all(fd, hdr, (size_t)n) == 0)
        while ((r = read(ffd, buf, sizeof buf)) > 0 && send_all(fd, buf, (size_t)r) == 0)
            ;
    close(ffd);
}

static void worker(int lfd)
{
    for (;;) {
        struct timeval tv = { 5, 0 };       /* a stuck client cannot keep this worker */
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

static void spawn(int lfd)          /* fork one worker; retry while fork() fails */
{
    pid_t pid;
    while ((pid = fork()) < 0)
        sleep(1);
    if (pid == 0)
        worker(lfd);                /* never returns */
}

int main(int argc, char **argv)
{
    const char *port = NULL;
    struct sockaddr_in addr;
    int opt, lfd, one = 1, bad = 0, workers = 4, i, st;
    pid_t pid;

    while ((opt = getopt(argc, argv, "p:R:w:")) != -1) {
        if (opt == 'p')
            port = optarg;
        else if (opt == 'R')
            root = optarg;
        else if (opt == 'w')
            workers = atoi(optarg);
        else
            bad = 1;
    }
    if (bad || port == NULL || optind != argc || atoi(port) <= 0 || atoi(port) > 65535 ||
        workers < 1 || workers > 256) {
        fprintf(stderr, "Usage: %s -p PORT -R ROOT [-w WORKERS]\n", argv[0]);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((unsigned short)atoi(port));
    if ((lfd = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 64) < 0) {
        perror("listen");
        return 1;
    }
    fprintf(stderr, "Using port %s, %d workers\n", port, workers);
    for (i = 0; i < workers; i++)
        spawn(lfd);
    for (;;) {                      /* the parent never accepts: it reaps and re-forks */
        if ((pid = waitpid(-1, &st, 0)) < 0) {
            if (errno == ECHILD)    /* cannot happen while spawn() retries; be safe */
                spawn(lfd);
            continue;
        }
        if (WIFSIGNALED(st))
            fprintf(stderr, "worker %d died (signal %d)\n", (int)pid, WTERMSIG(st));
        else
            fprintf(stderr, "worker %d died (status %d)\n", (int)pid, WEXITSTATUS(st));
        spawn(lfd);
    }
}
