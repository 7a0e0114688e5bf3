/* addrconfig: server -p PORT -R ROOT [-i IFNAME].  An iterative HTTP/1.0 GET server that finds
 * its address the way many student servers do: getaddrinfo(NULL, PORT) with AI_PASSIVE |
 * AI_ADDRCONFIG and AF_INET, exiting with "getaddrinfo error: ..." when that fails (glibc fails
 * it on a machine whose only IPv4 address is 127.0.0.1).  Serves ROOT/index.html for "/", 404
 * for anything else.  With -i IFNAME it also refuses to start unless the network interface
 * IFNAME exists (as a server that prints its LAN address would).  One planted bug
 * (long-header-value); nothing else may crash.  Listens on 127.0.0.1 only. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netdb.h>
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

static const char *root = "www";
/* The client asked for keep-alive: the reply says it closes (HTTP/1.0, one request). */
static int keep_alive;

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

static void send_status(int fd, const char *status)
{
    char body[128], hdr[256];
    int b = snprintf(body, sizeof body, "<html><body><h1>%s</h1></body></html>\n", status);
    int h = snprintf(hdr, sizeof hdr, "HTTP/1.0 %s\r\nContent-Length: %d\r\n"
                     "Content-Type: text/html\r\n%s\r\n", status, b,
                     keep_alive ? "Connection: close\r\n" : "");
    if (send_all(fd, hdr, (size_t)h) == 0)
        send_all(fd, body, (size_t)b);
}

/* One header of the request, kept while it is looked at. */
struct header {
    char value[64];
    const char *name;
};

/* Whether the header line "Name: value" asks to keep the connection open. */
static int keeps_alive(char *line)
{
    struct header h;
    char *colon = strchr(line, ':');
    if (colon == NULL)
        return 0;
    *colon = '\0';
    h.name = line;
    /* BUG (long-header-value): a header value of 64 bytes or more (e.g. "Host: " and 80 'a's)
     * overflows h.value into h.name, which strcasecmp then reads: SIGSEGV.  The fix is
     * snprintf(h.value, sizeof h.value, "%s", ...). */
    strcpy(h.value, colon + 1 + strspn(colon + 1, " \t"));
    return strcasecmp(h.name, "Connection") == 0 && strcasecmp(h.value, "keep-alive") == 0;
}

/* Serve the one request on fd. */
static void serve(int fd)
{
    char req[REQ_MAX + 1], path[4096], hdr[256], buf[8192];
    char *line, *method, *uri, *version, *save = NULL, *lsave = NULL;
    size_t len = 0;
    struct stat st;
    ssize_t r;
    int ffd, n;

    keep_alive = 0;
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
    line = strtok_r(req, "\r\n", &lsave);   /* the request line, then the headers */
    method = line == NULL ? NULL : strtok_r(line, " ", &save);
    uri = method == NULL ? NULL : strtok_r(NULL, " ", &save);
    version = uri == NULL ? NULL : strtok_r(NULL, " ", &save);
    if (version == NULL) {
        send_status(fd, "400 Bad Request");
        return;
    }
    while ((line = strtok_r(NULL, "\r\n", &lsave)) != NULL)
        keep_alive |= keeps_alive(line);
    if (strcmp(method, "GET") != 0) {
        send_status(fd, "501 Not Implemented");
        return;
    }
    n = snprintf(path, sizeof path, "%s/index.html", root);
    if (strcmp(uri, "/") != 0 || n < 0 || (size_t)n >= sizeof path ||
        (ffd = open(path, O_RDONLY)) < 0) {
        send_status(fd, "404 Not Found");
        return;
    }
    if (fstat(ffd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(ffd);
        send_status(fd, "404 Not Found");
        return;
    }
    n = snprintf(hdr, sizeof hdr, "HTTP/1.0 200 OK\r\nContent-Length: %lld\r\n"
                 "Content-Type: text/html\r\n%s\r\n", (long long)st.st_size,
                 keep_alive ? "Connection: close\r\n" : "");
    if (send_all(fd, hdr, (size_t)n) == 0)
        while ((r = read(ffd, buf, sizeof buf)) > 0 && send_all(fd, buf, (size_t)r) == 0)
            ;
    close(ffd);
}

int main(int argc, char **argv)
{
    const char *port = NULL, *ifname = NULL;
    struct addrinfo hints, *res;
    int opt, lfd, one = 1, bad = 0, err;

    while ((opt = getopt(argc, argv, "p:R:i:")) != -1) {
        if (opt == 'p')
            port = optarg;
        else if (opt == 'R')
            root = optarg;
        else if (opt == 'i')
            ifname = optarg;
        else
            bad = 1;
    }
    if (bad || port == NULL || optind != argc || atoi(port) <= 0 || atoi(port) > 65535) {
        fprintf(stderr, "Usage: %s -p PORT -R ROOT [-i IFNAME]\n", argv[0]);
        return 1;
    }
    if (ifname != NULL && if_nametoindex(ifname) == 0) {
        fprintf(stderr, "no network interface named %s\n", ifname);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_ADDRCONFIG;
    if ((err = getaddrinfo(NULL, port, &hints, &res)) != 0) {
        fprintf(stderr, "getaddrinfo error: %s\n", gai_strerror(err));
        return 1;
    }
    /* The lookup is what this server is about; a test server listens on loopback only. */
    ((struct sockaddr_in *)res->ai_addr)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if ((lfd = socket(res->ai_family, res->ai_socktype, res->ai_protocol)) < 0 ||
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(lfd, res->ai_addr, res->ai_addrlen) < 0 || listen(lfd, 64) < 0) {
        perror("listen");
        return 1;
    }
    freeaddrinfo(res);
    fprintf(stderr, "Using port %s\n", port);
    for (;;) {
        struct timeval tv = { 5, 0 };       /* a stuck client cannot keep us */
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
