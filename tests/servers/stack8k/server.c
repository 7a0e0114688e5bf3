/* stack8k: server -p PORT -R ROOT.  An HTTP/1.0 GET file server on 127.0.0.1:PORT, one forked
 * child per connection (the parent reaps them in a SIGCHLD handler).  The child reads the whole
 * header block into a heap buffer that grows up to 128 KiB, answers 200 with ROOT + target (`/`
 * is /index.html) or an error, and exits.  One planted bug (stack-8k, in serve()): the target is
 * copied into an 8 KiB stack buffer without a bound. */
#undef _FORTIFY_SOURCE      /* a real overflow in every build: no __strcpy_chk abort instead */
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

#define REQ_MAX (128 * 1024)

static const char *root;

static void reap(int sig)           /* SIGCHLD: collect every finished child */
{
    int saved = errno;
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    errno = saved;
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

static void send_error(int fd, const char *status)
{
    char body[128], hdr[256];
    int b = snprintf(body, sizeof body, "<html><body><h1>%s</h1></body></html>\n", status);
    int h = snprintf(hdr, sizeof hdr, "HTTP/1.0 %s\r\nContent-Type: text/html\r\n"
                     "Content-Length: %d\r\nConnection: close\r\n\r\n", status, b);
    if (send_all(fd, hdr, (size_t)h) == 0)
        send_all(fd, body, (size_t)b);
}

/* Read the request on fd and answer it (in the child). */
static void serve(int fd)
{
    char path[8192], file[4096], hdr[256], buf[8192], *req, *grown, *method, *target, *version;
    char *save = NULL;
    size_t len = 0, cap = 4096;
    struct stat st;
    ssize_t r;
    int ffd, n;

    if ((req = malloc(cap + 1)) == NULL)
        return;
    req[0] = '\0';
    while (strstr(req, "\r\n\r\n") == NULL) {
        if (len == cap) {                   /* grow the buffer, up to REQ_MAX */
            if (cap == REQ_MAX || (grown = realloc(req, 2 * cap + 1)) == NULL) {
                send_error(fd, "431 Request Header Fields Too Large");
                goto out;
            }
            req = grown;
            cap *= 2;
        }
        r = recv(fd, req + len, cap - len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)                         /* the client left mid-request */
            goto out;
        len += (size_t)r;
        req[len] = '\0';
    }
    req[strcspn(req, "\r\n")] = '\0';       /* the request line */
    method = strtok_r(req, " ", &save);
    target = strtok_r(NULL, " ", &save);
    version = strtok_r(NULL, " ", &save);
    if (method == NULL || target == NULL || version == NULL || strncmp(version, "HTTP/", 5) != 0) {
        send_error(fd, "400 Bad Request");
        goto out;
    }
    if (strcmp(method, "GET") != 0) {
        send_error(fd, "501 Not Implemented");
        goto out;
    }
    /* BUG (stack-8k): the target, which can be almost 128 KiB long, is copied into an 8 KiB
     * stack buffer with no bound check.  A request whose target is 8 KiB or longer (the grading
     * test's 80 KB URI) writes past path[]: the child dies (SIGSEGV when the copy runs off the
     * top of the stack; ASan: stack-buffer-overflow) and its client gets no reply; the parent
     * goes on.  The fix is to answer 414 when strlen(target) >= sizeof path. */
    strcpy(path, target);
    path[strcspn(path, "?")] = '\0';
    if (strcmp(path, "/") == 0)
        strcpy(path, "/index.html");
    n = snprintf(file, sizeof file, "%s%s", root, path);
    if (path[0] != '/' || strstr(path, "..") != NULL || n < 0 || (size_t)n >= sizeof file ||
        (ffd = open(file, O_RDONLY)) < 0) {
        send_error(fd, "404 Not Found");
        goto out;
    }
    if (fstat(ffd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(ffd);
        send_error(fd, "404 Not Found");
        goto out;
    }
    n = snprintf(hdr, sizeof hdr, "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n"
                 "Content-Length: %lld\r\nConnection: close\r\n\r\n", (long long)st.st_size);
    if (send_all(fd, hdr, (size_t)n) == 0)
        while ((r = read(ffd, buf, sizeof buf)) > 0 && send_all(fd, buf, (size_t)r) == 0)
            ;
    close(ffd);
out:
    free(req);
}

int main(int argc, char **argv)
{
    const char *port = NULL;
    struct sockaddr_in addr;
    struct sigaction sa;
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
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = reap;
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
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
    for (;;) {
        pid_t pid;
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) {                       /* EINTR, ECONNABORTED, EMFILE */
            if (errno != EINTR)
                usleep(1000);
            continue;
        }
        if ((pid = fork()) == 0) {
            struct timeval tv = { 5, 0 };   /* a stuck client cannot keep the child */
            close(lfd);
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
            serve(fd);
            close(fd);
            _exit(0);
        }
        close(fd);                  /* the parent; also when fork() failed */
    }
}
