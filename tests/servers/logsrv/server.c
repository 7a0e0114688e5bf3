/* logsrv: server -p PORT -R ROOT -l LOGFILE.  A small, correct HTTP/1.0 file server, one child
 * per connection.  For every request the child opens files outside ROOT on purpose (LOGFILE,
 * /etc/mime.types, /dev/urandom, /proc/self/status); requested paths never leave ROOT: ".." after
 * percent-decoding gets a 404.  Listens on 127.0.0.1 only. */
#define _GNU_SOURCE
#include <arpa/inet.h>
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
#include <sys/wait.h>
#include <unistd.h>

#ifndef MIME_TYPES
#define MIME_TYPES "/etc/mime.types"
#endif
#define REQ_MAX 8192

static const char *root = "www", *logfile = "access.log";

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

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    return (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10 : -1;
}

/* Decode %XX in place.  Returns 0 if that produced a NUL byte. */
static int url_decode(char *s)
{
    char *o = s;
    for (; *s != '\0'; s++, o++) {
        int hi = *s == '%' ? hexval((unsigned char)s[1]) : -1;
        int lo = hi >= 0 ? hexval((unsigned char)s[2]) : -1;
        *o = lo < 0 ? *s : (char)(hi * 16 + lo);
        s += lo < 0 ? 0 : 2;
        if (lo >= 0 && *o == '\0')
            return 0;
    }
    *o = '\0';
    return 1;
}

/* Content type from /etc/mime.types ("type ext ext ..."), else a default. */
static void mime_type(const char *path, char *out, size_t outsz)
{
    const char *dot = strrchr(path, '.');
    char line[512];
    FILE *f;
    snprintf(out, outsz, "application/octet-stream");
    if (dot == NULL || strchr(dot, '/') != NULL || dot[1] == '\0')
        return;
    if ((f = fopen(MIME_TYPES, "r")) == NULL) {     /* no such file: fine */
        if (strcasecmp(dot, ".html") == 0)
            snprintf(out, outsz, "text/html");
        return;
    }
    while (fgets(line, sizeof line, f) != NULL) {
        char *save = NULL, *type = strtok_r(line, " \t\r\n", &save), *ext;
        if (type == NULL || type[0] == '#')
            continue;
        while ((ext = strtok_r(NULL, " \t\r\n", &save)) != NULL)
            if (strcasecmp(ext, dot + 1) == 0) {
                snprintf(out, outsz, "%s", type);
                fclose(f);
                return;
            }
    }
    fclose(f);
}

static void request_id(char *out)   /* 32 hex digits and a NUL */
{
    unsigned char r[16];
    int fd = open("/dev/urandom", O_RDONLY), i;
    ssize_t n = fd >= 0 ? read(fd, r, sizeof r) : -1;
    if (fd >= 0)
        close(fd);
    if (n != (ssize_t)sizeof r)
        memset(r, 0, sizeof r);
    for (i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
}

/* One line per request, control bytes replaced, appended to LOGFILE. */
static void log_line(const char *peer, const char *reqline, int status, long long bytes)
{
    char clean[256];
    size_t i;
    FILE *f;
    for (i = 0; reqline[i] != '\0' && i + 1 < sizeof clean; i++)
        clean[i] = reqline[i] >= 0x20 && reqline[i] < 0x7f ? reqline[i] : '?';
    clean[i] = '\0';
    if ((f = fopen(logfile, "a")) != NULL) {
        fprintf(f, "%s \"%s\" %d %lld\n", peer, clean, status, bytes);
        fclose(f);
    }
}

/* Serve the one request on fd (in the child). */
static void handle(int fd, const char *peer)
{
    static const char nf[] = "<html><body><h1>404 Not Found</h1></body></html>\n";
    char *req = malloc(REQ_MAX + 1), *method, *target, *q, *save = NULL;
    char reqline[256], full[4096], type[128], id[33], hdr[512];
    size_t len = 0;
    int status = 404, ffd = -1, n;
    long long sent = 0;
    struct stat st;

    if (req == NULL)
        return;
    while (len < REQ_MAX) {         /* until a blank line, EOF or a full buffer */
        ssize_t r = recv(fd, req + len, REQ_MAX - len, 0);
        if (r <= 0 && !(r < 0 && errno == EINTR))
            break;
        len += r > 0 ? (size_t)r : 0;
        req[len] = '\0';
        if (strstr(req, "\r\n\r\n") != NULL || strstr(req, "\n\n") != NULL)
            break;
    }
    req[len] = '\0';
    req[strcspn(req, "\r\n")] = '\0';       /* keep the request line */
    snprintf(reqline, sizeof reqline, "%s", req);
    stat("/proc/self/status", &st);         /* a liveness probe; result unused */
    request_id(id);
    method = strtok_r(req, " ", &save);
    target = strtok_r(NULL, " ", &save);
    if (method != NULL && target != NULL && strcmp(method, "GET") == 0 && target[0] == '/') {
        if ((q = strchr(target, '?')) != NULL)
            *q = '\0';
        if (url_decode(target) && strstr(target, "..") == NULL) {
            n = snprintf(full, sizeof full, "%s%s%s", root, target,
                         target[strlen(target) - 1] == '/' ? "index.html" : "");
            if (n > 0 && (size_t)n < sizeof full && (ffd = open(full, O_RDONLY)) >= 0 &&
                fstat(ffd, &st) == 0 && S_ISREG(st.st_mode))
                status = 200;
        }
    }
    if (status == 200)
        mime_type(full, type, sizeof type);
    n = snprintf(hdr, sizeof hdr, "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %lld\r\n"
                 "X-Request-Id: %s\r\nConnection: close\r\n\r\n",
                 status == 200 ? "200 OK" : "404 Not Found", status == 200 ? type : "text/html",
                 status == 200 ? (long long)st.st_size : (long long)sizeof nf - 1, id);
    if (send_all(fd, hdr, (size_t)n) == 0 && status == 200) {
        char buf[8192];
        ssize_t r;
        while ((r = read(ffd, buf, sizeof buf)) > 0 && send_all(fd, buf, (size_t)r) == 0)
            sent += r;
    } else if (status == 404 && send_all(fd, nf, sizeof nf - 1) == 0) {
        sent = (long long)sizeof nf - 1;
    }
    if (ffd >= 0)
        close(ffd);
    log_line(peer, reqline, status, sent);
    free(req);
}

int main(int argc, char **argv)
{
    const char *port = NULL;
    struct sockaddr_in addr;
    struct sigaction sa;
    int opt, lfd, one = 1, bad = 0;

    while ((opt = getopt(argc, argv, "p:R:l:")) != -1) {
        if (opt == 'p')
            port = optarg;
        else if (opt == 'R')
            root = optarg;
        else if (opt == 'l')
            logfile = optarg;
        else
            bad = 1;
    }
    if (bad || port == NULL || optind != argc || atoi(port) <= 0 || atoi(port) > 65535) {
        fprintf(stderr, "Usage: %s -p PORT -R ROOT -l LOGFILE\n", argv[0]);
        return 1;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = reap;
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;    /* sa_mask: empty (memset) */
    sigaction(SIGCHLD, &sa, NULL);
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
    fprintf(stderr, "Using port %s\n", port);
    for (;;) {
        struct sockaddr_in peer;
        socklen_t pl = sizeof peer;
        char name[64];
        int fd = accept(lfd, (struct sockaddr *)&peer, &pl);
        if (fd < 0) {               /* EINTR (SIGCHLD), ECONNABORTED, EMFILE */
            if (errno != EINTR)
                usleep(1000);
            continue;
        }
        snprintf(name, sizeof name, "%s:%u", inet_ntoa(peer.sin_addr),
                 (unsigned)ntohs(peer.sin_port));
        if (fork() == 0) {
            struct timeval tv = { 5, 0 };   /* a stuck client cannot keep us */
            close(lfd);
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
            handle(fd, name);
            close(fd);
            _exit(0);
        }
        close(fd);                  /* the parent; also when fork() failed */
    }
}
