/* onerecv: server -p PORT -R ROOT [-w WORKERS].  An HTTP/1.0 GET file server on
 * 127.0.0.1:PORT with a thread pool: the main thread accepts and puts each connection in a
 * bounded queue; WORKERS threads (default 4) take connections from it, read the request,
 * answer 200 with ROOT + target (`/` is /index.html) or an error, and close.  One planted bug
 * (one-recv, in serve()): the parser assumes one recv() holds the whole header block. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define REQ_MAX 8192

static const char *root;

#define QLEN 64                     /* accepted connections waiting for a worker */
static int queue[QLEN];
static size_t qhead, qcount;
static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t qnonempty = PTHREAD_COND_INITIALIZER, qnonfull = PTHREAD_COND_INITIALIZER;

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

/* Read the request on fd and answer it. */
static void serve(int fd)
{
    char req[REQ_MAX + 1], *end;
    ssize_t r;

    do
        r = recv(fd, req, REQ_MAX, 0);
    while (r < 0 && errno == EINTR);
    if (r <= 0)
        return;
    req[r] = '\0';
    /* BUG (one-recv): the first recv() is taken to hold the whole header block.  When it does
     * not (the request sent one byte per send(), or in pieces split before its blank line, or a
     * header block over 8 KiB), strstr() returns NULL and the store below writes through it:
     * SIGSEGV in a worker, which ends the whole process.  A request written with one send()
     * arrives in one piece on loopback and is served.  The fix is to recv() until the blank
     * line (or EOF, or a full buffer) and answer 400 without one. */
    end = strstr(req, "\r\n\r\n");
    end[2] = '\0';                         /* cut the blank line and any body */
    respond(fd, req);
}

static void *worker(void *arg)
{
    (void)arg;
    for (;;) {
        int fd;
        pthread_mutex_lock(&qlock);
        while (qcount == 0)
            pthread_cond_wait(&qnonempty, &qlock);
        fd = queue[qhead];
        qhead = (qhead + 1) % QLEN;
        qcount--;
        pthread_cond_signal(&qnonfull);
        pthread_mutex_unlock(&qlock);
        serve(fd);
        close(fd);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const char *port = NULL;
    struct sockaddr_in addr;
    int opt, lfd, one = 1, bad = 0, workers = 4, i;

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
    if (bad || port == NULL || root == NULL || optind != argc || atoi(port) <= 0 ||
        atoi(port) > 65535 || workers < 1 || workers > 256) {
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
        bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 128) < 0) {
        perror("listen");
        return 1;
    }
    for (i = 0; i < workers; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, worker, NULL) != 0) {
            perror("pthread_create");
            return 1;
        }
    }
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) {                       /* EINTR, ECONNABORTED, EMFILE */
            if (errno != EINTR)
                usleep(1000);
            continue;
        }
        pthread_mutex_lock(&qlock);
        while (qcount == QLEN)
            pthread_cond_wait(&qnonfull, &qlock);
        queue[(qhead + qcount) % QLEN] = fd;
        qcount++;
        pthread_cond_signal(&qnonempty);
        pthread_mutex_unlock(&qlock);
    }
}
