/*
 * daemon: server -p PORT -R ROOT [-d MODE] [-P PIDFILE].  A tiny iterative HTTP/1.0 GET file
 * server that goes into the background the ways student servers do:
 *
 *   -d fork      before listening: fork, setsid, fork again, chdir("/"), close every
 *                descriptor, stdin/stdout/stderr on /dev/null (the classic recipe)
 *   -d libc      before listening: daemon(0, 0)
 *   -d late      after listening: daemon(0, 0)
 *   -d latefork  after listening: the classic recipe (the listening socket kept)
 *
 * (no -d: stays in the foreground).  -P writes the daemon's pid to PIDFILE.  One planted bug
 * (no-version): a request line without an HTTP version crashes it (SIGSEGV).  Listens on
 * 127.0.0.1 only.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *root = "www";

static void send_status(int fd, const char *status)
{
    char msg[256];
    int n = snprintf(msg, sizeof msg, "HTTP/1.0 %s\r\nContent-Length: 0\r\n\r\n", status);
    if (write(fd, msg, (size_t)n) < 0)
        return;
}

static void serve(int fd)
{
    char req[4096], path[4096], hdr[256], buf[8192], *save = NULL;
    size_t len = 0;
    ssize_t r;
    struct stat st;
    int ffd, n;

    while (len < sizeof req - 1 && (r = read(fd, req + len, sizeof req - 1 - len)) > 0) {
        len += (size_t)r;
        req[len] = '\0';
        if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
            break;
    }
    req[len] = '\0';
    req[strcspn(req, "\r\n")] = '\0';
    char *method = strtok_r(req, " ", &save);
    char *uri = strtok_r(NULL, " ", &save);
    char *version = strtok_r(NULL, " ", &save);
    if (method == NULL || uri == NULL) {
        send_status(fd, "400 Bad Request");
        return;
    }
    /* BUG (no-version): "GET /" without a version leaves version NULL, and strncmp reads
     * through it: SIGSEGV.  The fix is `version == NULL ||` in front. */
    if (strncmp(version, "HTTP/", 5) != 0) {
        send_status(fd, "400 Bad Request");
        return;
    }
    if (strcmp(method, "GET") != 0) {
        send_status(fd, "501 Not Implemented");
        return;
    }
    if (strcmp(uri, "/") == 0)
        uri = "/index.html";
    n = snprintf(path, sizeof path, "%s%s", root, uri);
    if (uri[0] != '/' || strstr(uri, "..") || n < 0 || (size_t)n >= sizeof path ||
        (ffd = open(path, O_RDONLY)) < 0) {
        send_status(fd, "404 Not Found");
        return;
    }
    if (fstat(ffd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(ffd);
        send_status(fd, "404 Not Found");
        return;
    }
    n = snprintf(hdr, sizeof hdr, "HTTP/1.0 200 OK\r\nContent-Length: %lld\r\n\r\n", (long long)st.st_size);
    if (write(fd, hdr, (size_t)n) == n)
        while ((r = read(ffd, buf, sizeof buf)) > 0 && write(fd, buf, (size_t)r) == r)
            ;
    close(ffd);
}

/* The classic recipe (Stevens): keep `keep` open (-1: none). */
static void daemonize(int keep)
{
    pid_t pid = fork();
    if (pid < 0)
        exit(1);
    if (pid > 0)
        exit(0);
    setsid();
    pid = fork();
    if (pid < 0)
        exit(1);
    if (pid > 0)
        exit(0);
    if (chdir("/") != 0)
        exit(1);
    umask(0);
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536)
        max = 65536;
    for (int fd = 0; fd < max; fd++)
        if (fd != keep)
            close(fd);
    int null = open("/dev/null", O_RDWR);   /* fd 0 */
    if (null != 0 || dup(0) != 1 || dup(0) != 2)
        exit(1);
}

int main(int argc, char **argv)
{
    const char *mode = "", *pidfile = NULL;
    int port = 0, opt, one = 1;
    signal(SIGPIPE, SIG_IGN); /* a client that leaves before its reply is not this server's bug */

    while ((opt = getopt(argc, argv, "p:R:d:P:")) != -1) {
        if (opt == 'p')
            port = atoi(optarg);
        else if (opt == 'R')
            root = optarg;
        else if (opt == 'd')
            mode = optarg;
        else if (opt == 'P')
            pidfile = optarg;
        else
            port = -1;
    }
    int late = strcmp(mode, "late") == 0 || strcmp(mode, "latefork") == 0;
    if (port <= 0 || (*mode && !late && strcmp(mode, "fork") != 0 && strcmp(mode, "libc") != 0)) {
        fprintf(stderr, "usage: %s -p PORT -R ROOT [-d fork|libc|late|latefork] [-P PIDFILE]\n", argv[0]);
        return 2;
    }
    if (root[0] != '/' && *mode) {
        fprintf(stderr, "-R must be an absolute path: a daemon serves from /\n");
        return 2;
    }
    if (strcmp(mode, "fork") == 0)
        daemonize(-1);
    else if (strcmp(mode, "libc") == 0 && daemon(0, 0) != 0)
        return 1;

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
    if (strcmp(mode, "latefork") == 0)
        daemonize(lfd);
    else if (strcmp(mode, "late") == 0 && daemon(0, 0) != 0)
        return 1;
    if (pidfile) {
        FILE *f = fopen(pidfile, "w");
        if (f) {
            fprintf(f, "%d\n", (int)getpid());
            fclose(f);
        }
    }
    for (;;) {
        int c = accept(lfd, NULL, NULL);
        if (c < 0) {
            if (errno != EINTR)
                usleep(1000);
            continue;
        }
        serve(c);
        close(c);
    }
}
