/*
 * pserv-sample: command line, listening sockets and concurrency models.
 *
 *   server -p PORT [-R ROOT] [-a] [-s] [-e SECS] [-m MODEL] [-x WHAT]
 *          [-k MS] [-h]
 *
 * MODEL is one of iterative (default), thread, pool, epoll, fork.
 * -x and -k switch on hang behaviours for benchmarks and tests (README);
 * they are not planted bugs and are off by default.
 */
#include "pserv.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

struct config cfg = {
    .port = NULL,
    .root = "www",
    .html5_fallback = 0,
    .silent = 0,
    .expiry = 86400,
    .model = "iterative",
};

#define MAX_LISTENERS   8
#define PEER_LEN        96
#define POOL_SIZE       4
#define QUEUE_CAP       256

static int listeners[MAX_LISTENERS];
static int nlisteners;

static void usage(FILE *f, const char *argv0)
{
    fprintf(f,
            "Usage: %s -p PORT [-R ROOT] [-a] [-s] [-e SECS] [-m MODEL]\n"
            "          [-x WHAT] [-k MS] [-h]\n"
            "  -p PORT   port to listen on (required; IPv4 and IPv6)\n"
            "  -R ROOT   web root directory (default: www)\n"
            "  -a        HTML5 fallback: serve /index.html for missing files\n"
            "  -s        silent: no per-connection logging\n"
            "  -e SECS   auth token lifetime in seconds (default: 86400)\n"
            "  -m MODEL  iterative (default) | thread | pool | epoll | fork\n"
            "  -h        show this help\n"
            "Hang behaviours for benchmarks and tests (not planted bugs):\n"
            "  -x WHAT   comma-separated, repeatable:\n"
            "            leak: the fd of a 501 reply is never closed\n"
            "                  (fork: the parent closes none)\n"
            "            eof-loop: EOF ending a keep-alive connection is\n"
            "                  spun on forever\n"
            "            close-stdin: fd 0 is /dev/null before the sockets\n"
            "            spin: after any request but GET /index.html, spin\n"
            "                  the CPU forever (nothing closes it)\n"
            "            alarm: arm a watchdog alarm() of an hour at start\n"
            "                  (a server with a timer of its own)\n"
            "            scan-loop: a header line with a byte other than a\n"
            "                  letter, digit, - or _ before its colon (or\n"
            "                  no colon) spins the name scan forever\n"
            "  -k MS     wait MS milliseconds before closing (default: 0)\n",
            argv0);
}

/* -x WHAT: a comma-separated list; returns -1 for an unknown word */
static int parse_hangs(const char *s)
{
    for (;;) {
        size_t n = strcspn(s, ",");

        if (n == 4 && strncmp(s, "leak", n) == 0)
            cfg.leak = 1;
        else if (n == 8 && strncmp(s, "eof-loop", n) == 0)
            cfg.eof_loop = 1;
        else if (n == 11 && strncmp(s, "close-stdin", n) == 0)
            cfg.close_stdin = 1;
        else if (n == 4 && strncmp(s, "spin", n) == 0)
            cfg.spin = 1;
        else if (n == 5 && strncmp(s, "alarm", n) == 0)
            cfg.alarm = 1;
        else if (n == 9 && strncmp(s, "scan-loop", n) == 0)
            cfg.scan_loop = 1;
        else
            return -1;
        if (s[n] == '\0')
            return 0;
        s += n + 1;
    }
}

/* ---- listening ------------------------------------------------------------ */

static void open_listeners(void)
{
    struct addrinfo hints, *res, *ai;
    int rc;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(NULL, cfg.port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "getaddrinfo: %s\n", gai_strerror(rc));
        exit(1);
    }
    for (ai = res; ai != NULL && nlisteners < MAX_LISTENERS; ai = ai->ai_next) {
        int one = 1;
        int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ai->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 128) < 0) {
            fprintf(stderr, "bind/listen (family %d): %s\n", ai->ai_family,
                    strerror(errno));
            close(fd);
            continue;
        }
        listeners[nlisteners++] = fd;
    }
    freeaddrinfo(res);
    if (nlisteners == 0) {
        fprintf(stderr, "could not listen on port %s\n", cfg.port);
        exit(1);
    }
}

/* accept() one connection from lfd; errno is preserved on failure */
static int accept_from(int lfd, char *peer, size_t peersz)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    int one = 1;
    int fd = accept(lfd, (struct sockaddr *)&ss, &sl);

    if (fd < 0)
        return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, serv,
                    sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        strcpy(host, "?");
        strcpy(serv, "?");
    }
    snprintf(peer, peersz, "%.60s:%.10s", host, serv);
    if (!cfg.silent)
        fprintf(stderr, "Accepted connection from %s\n", peer);
    return fd;
}

/* Blocking accept for the iterative/thread/pool/fork models. */
static int next_connection(char *peer, size_t peersz)
{
    for (;;) {
        int lfd = listeners[0], fd, i;

        if (nlisteners > 1) {
            struct pollfd pfd[MAX_LISTENERS];
            for (i = 0; i < nlisteners; i++) {
                pfd[i].fd = listeners[i];
                pfd[i].events = POLLIN;
                pfd[i].revents = 0;
            }
            if (poll(pfd, (nfds_t)nlisteners, -1) < 0) {
                if (errno != EINTR)
                    perror("poll");
                continue;
            }
            lfd = -1;
            for (i = 0; i < nlisteners; i++)
                if (pfd[i].revents & POLLIN) {
                    lfd = listeners[i];
                    break;
                }
            if (lfd < 0)
                continue;
        }
        fd = accept_from(lfd, peer, peersz);
        if (fd >= 0)
            return fd;
        if (errno != EINTR && errno != ECONNABORTED && errno != EAGAIN) {
            perror("accept");
            usleep(10000);
        }
    }
}

/* ---- iterative ------------------------------------------------------------ */

static void run_iterative(void)
{
    for (;;) {
        char peer[PEER_LEN];
        int fd = next_connection(peer, sizeof peer);
        handle_connection(fd, peer);
    }
}

/* ---- thread per connection ------------------------------------------------ */

struct job {
    int fd;
    char peer[PEER_LEN];
};

static void *conn_thread(void *arg)
{
    struct job *j = arg;

    handle_connection(j->fd, j->peer);
    free(j);
    return NULL;
}

static void run_thread(void)
{
    pthread_attr_t attr;

    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (;;) {
        struct job *j = malloc(sizeof *j);
        pthread_t t;

        if (j == NULL) {
            usleep(10000);
            continue;
        }
        j->fd = next_connection(j->peer, sizeof j->peer);
        if (pthread_create(&t, &attr, conn_thread, j) != 0) {
            handle_connection(j->fd, j->peer);
            free(j);
        }
    }
}

/* ---- fixed thread pool ------------------------------------------------------ */

static struct job queue[QUEUE_CAP];
static int qhead, qlen;
static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t qnonempty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t qnonfull = PTHREAD_COND_INITIALIZER;

static void *pool_worker(void *arg)
{
    (void)arg;
    for (;;) {
        struct job j;

        pthread_mutex_lock(&qlock);
        while (qlen == 0)
            pthread_cond_wait(&qnonempty, &qlock);
        j = queue[qhead];
        qhead = (qhead + 1) % QUEUE_CAP;
        qlen--;
        pthread_cond_signal(&qnonfull);
        pthread_mutex_unlock(&qlock);
        handle_connection(j.fd, j.peer);
    }
    return NULL;
}

static void start_pool(void)
{
    int i;

    for (i = 0; i < POOL_SIZE; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, pool_worker, NULL) != 0) {
            perror("pthread_create");
            exit(1);
        }
        pthread_detach(t);
    }
}

static void run_pool(void)
{
    for (;;) {
        struct job j;

        j.fd = next_connection(j.peer, sizeof j.peer);
        pthread_mutex_lock(&qlock);
        while (qlen == QUEUE_CAP)
            pthread_cond_wait(&qnonfull, &qlock);
        queue[(qhead + qlen) % QUEUE_CAP] = j;
        qlen++;
        pthread_cond_signal(&qnonempty);
        pthread_mutex_unlock(&qlock);
    }
}

/* ---- fork per connection -------------------------------------------------- */

static size_t put_str(char *buf, size_t n, const char *s)
{
    while (*s != '\0')
        buf[n++] = *s++;
    return n;
}

static size_t put_num(char *buf, size_t n, long v)
{
    char tmp[24];
    size_t k = 0;

    if (v < 0) {
        buf[n++] = '-';
        v = -v;
    }
    do {
        tmp[k++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    while (k > 0)
        buf[n++] = tmp[--k];
    return n;
}

/* async-signal-safe: waitpid, write, no stdio */
static void sigchld_handler(int sig)
{
    int saved = errno, st;
    pid_t pid;

    (void)sig;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        char buf[128];
        size_t n = 0;

        if (cfg.silent)
            continue;
        n = put_str(buf, n, "[pserv] child ");
        n = put_num(buf, n, (long)pid);
        if (WIFSIGNALED(st)) {
            n = put_str(buf, n, " killed by signal ");
            n = put_num(buf, n, WTERMSIG(st));
        } else {
            n = put_str(buf, n, " exited with status ");
            n = put_num(buf, n, WEXITSTATUS(st));
        }
        buf[n++] = '\n';
        if (write(2, buf, n) < 0) {
            /* ignore */
        }
    }
    errno = saved;
}

static void run_fork(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = sigchld_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);

    for (;;) {
        char peer[PEER_LEN];
        int fd = next_connection(peer, sizeof peer), i;
        pid_t pid = fork();

        if (pid < 0) {
            perror("fork");
            handle_connection(fd, peer);
            continue;
        }
        if (pid == 0) {
            for (i = 0; i < nlisteners; i++)
                close(listeners[i]);
            cfg.leak = 0;       /* -x leak: only the parent leaks, see below */
            handle_connection(fd, peer);
            _exit(0);
        }
        /* -x leak: the classic fork-server bug, the parent never closes its
         * copy of the connection, so the child's close() sends no FIN */
        if (!cfg.leak)
            close(fd);
    }
}

/* ---- epoll ------------------------------------------------------------------ */

static void set_nonblocking(int fd, int on)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0)
        return;
    fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
    fcntl(fd, F_SETFL, fl);
}

static void run_epoll(void)
{
    struct epoll_event evs[64];
    int ep = epoll_create1(0), i;

    if (ep < 0) {
        perror("epoll_create1");
        exit(1);
    }
    for (i = 0; i < nlisteners; i++) {
        struct epoll_event ev;
        memset(&ev, 0, sizeof ev);
        set_nonblocking(listeners[i], 1);
        ev.events = EPOLLIN;
        ev.data.u64 = (uint64_t)i;     /* small numbers tag listeners */
        if (epoll_ctl(ep, EPOLL_CTL_ADD, listeners[i], &ev) < 0) {
            perror("epoll_ctl");
            exit(1);
        }
    }
    for (;;) {
        int n = epoll_wait(ep, evs, 64, -1), k;

        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("epoll_wait");
            exit(1);
        }
        for (k = 0; k < n; k++) {
            if (evs[k].data.u64 < MAX_LISTENERS) {
                int lfd = listeners[evs[k].data.u64];
                for (;;) {                      /* drain the backlog */
                    char peer[PEER_LEN];
                    struct epoll_event cev;
                    struct conn *c;
                    int fd = accept_from(lfd, peer, sizeof peer);

                    if (fd < 0) {
                        if (errno == EINTR || errno == ECONNABORTED)
                            continue;
                        if (errno != EAGAIN && errno != EWOULDBLOCK)
                            perror("accept");
                        break;
                    }
                    c = conn_new(fd, peer);
                    if (c == NULL) {
                        close(fd);
                        continue;
                    }
                    memset(&cev, 0, sizeof cev);
                    cev.events = EPOLLIN;
                    cev.data.ptr = c;
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev) < 0)
                        conn_close(c);
                }
            } else {
                struct conn *c = evs[k].data.ptr;
                int keep;

                set_nonblocking(c->fd, 0);
                keep = serve_one(c);
                /* pipelined requests already in our buffer get no event */
                while (keep && bufio_buffered(&c->in) > 0)
                    keep = serve_one(c);
                if (!keep) {
                    /* closes c, or with -x leaks it or spins in it */
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    conn_done(c);
                }
            }
        }
    }
}

/* ---- main ------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    int opt;

    while ((opt = getopt(argc, argv, "p:R:ase:m:x:k:h")) != -1) {
        switch (opt) {
        case 'p':
            cfg.port = optarg;
            break;
        case 'R':
            cfg.root = optarg;
            break;
        case 'a':
            cfg.html5_fallback = 1;
            break;
        case 's':
            cfg.silent = 1;
            break;
        case 'e': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || v <= 0 ||
                v > 10L * 366 * 86400) {
                fprintf(stderr, "%s: bad -e value '%s'\n", argv[0], optarg);
                return 1;
            }
            cfg.expiry = v;
            break;
        }
        case 'm':
            cfg.model = optarg;
            break;
        case 'x':
            if (parse_hangs(optarg) < 0) {
                fprintf(stderr, "%s: bad -x value '%s'\n", argv[0], optarg);
                usage(stderr, argv[0]);
                return 1;
            }
            break;
        case 'k': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || v < 0 || v > 3600000) {
                fprintf(stderr, "%s: bad -k value '%s'\n", argv[0], optarg);
                return 1;
            }
            cfg.close_delay_ms = v;
            break;
        }
        case 'h':
            usage(stdout, argv[0]);
            return 0;
        default:
            usage(stderr, argv[0]);
            return 1;
        }
    }
    if (cfg.port == NULL || optind != argc) {
        usage(stderr, argv[0]);
        return 1;
    }
    if (strcmp(cfg.model, "iterative") != 0 && strcmp(cfg.model, "thread") != 0 &&
        strcmp(cfg.model, "pool") != 0 && strcmp(cfg.model, "epoll") != 0 &&
        strcmp(cfg.model, "fork") != 0) {
        fprintf(stderr, "%s: unknown model '%s'\n", argv[0], cfg.model);
        usage(stderr, argv[0]);
        return 1;
    }

    signal(SIGPIPE, SIG_IGN);
    fprintf(stderr, "Using port %s\n", cfg.port);

    /* -x close-stdin: like servers that close stdin when they start; fd 0
     * is taken again at once (by /dev/null), before any socket exists */
    if (cfg.close_stdin) {
        close(0);
        if (open("/dev/null", O_RDONLY) < 0)
            perror("/dev/null");
    }

    /* -x alarm: a timer of the server's own, which could end a wait later */
    if (cfg.alarm)
        alarm(3600);

    if (strcmp(cfg.model, "pool") == 0)
        start_pool();           /* workers exist before socket()/listen() */
    open_listeners();

    if (strcmp(cfg.model, "thread") == 0)
        run_thread();
    else if (strcmp(cfg.model, "pool") == 0)
        run_pool();
    else if (strcmp(cfg.model, "fork") == 0)
        run_fork();
    else if (strcmp(cfg.model, "epoll") == 0)
        run_epoll();
    else
        run_iterative();
    return 0;
}
