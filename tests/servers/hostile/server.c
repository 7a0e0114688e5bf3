/*
 * hostile: a correct HTTP/1.0 server (every request gets "200 OK" and the connection closed)
 * with switches that make life hard for a harness, each seen in student servers:
 *
 *   server -p PORT [-x closefds] [-x noterm] [-x reuseport] [-x loud] [-x forks] [-x hog]
 *                  [-x linger] [-x threadfork] [-x crash] [-x once] [-x third] [-x breaks]
 *
 *   closefds   after listen(), and again after each accept(), close every descriptor but its
 *              own (a close() loop, then close_range()), as servers that "clean up" do
 *   noterm     ignore SIGTERM
 *   reuseport  two listening sockets on the port (SO_REUSEPORT), each served by its own thread
 *   loud       write 1 MiB to stdout and to stderr for each request
 *   forks      fork up to 1000 children per request, each waiting forever (a process leak
 *              without bound, stopped here at 1000 so that a test cannot take the machine)
 *   hog        allocate 3 GiB per request and touch it; "503" if the allocation fails
 *   linger     start a thread per request that waits forever, never joined
 *   threadfork serve each connection on a detached thread that forks a child to write the
 *              reply 50 ms later, and exits 10 ms after the fork, as the child's parent; a
 *              request with "HANG" in it hangs: the thread spins, its child waits forever
 *   crash      a request whose first read holds a DEL byte (0x7f) crashes in crash_here()
 *              (a SEGV), before the request is parsed, so every such crash has one path
 *   once       the same crash, but only the first time in this working directory (it leaves
 *              a file `crashed-once` there): a crash that does not reproduce
 *   third      the third request this process reads crashes, whatever it holds (in
 *              crash_after_two()): a crash that needs the state two earlier requests left
 *   breaks     after its first connection, close the listening socket and sleep forever: a
 *              server that serves one connection per process
 *
 * Listens on 127.0.0.1 only.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int closefds, noterm, reuseport, loud, forks, hog, linger, threadfork, crash, once, third, breaks;

static void close_all_but(int keep1, int keep2)
{
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536)
        max = 65536;
    for (int fd = 3; fd < max; fd++)
        if (fd != keep1 && fd != keep2)
            close(fd);
    /* and the modern way, over what the loop left */
    int lo = keep1 < keep2 ? keep1 : keep2, hi = keep1 < keep2 ? keep2 : keep1;
    if (lo > 3)
        close_range(3, lo - 1, 0);
    if (hi > lo + 1)
        close_range(lo + 1, hi - 1, 0);
    close_range(hi + 1, ~0U, 0);
}

static void make_noise(void)
{
    static char mib[1 << 20];
    memset(mib, 'x', sizeof mib);
    if (fwrite(mib, 1, sizeof mib, stdout) != sizeof mib || fwrite(mib, 1, sizeof mib, stderr) != sizeof mib)
        clearerr(stdout);
    fflush(stdout);
}

static void *wait_forever(void *arg)
{
    (void)arg;
    for (;;)
        pause();
    return NULL;
}

/* 1 if the 3 GiB could be allocated (and were touched) */
static int allocate_gigabytes(void)
{
    size_t n = (size_t)3 << 30;
    char *p = malloc(n);
    if (!p)
        return 0;
    memset(p, 1, n);
    free(p);
    return 1;
}

/* A NULL pointer dereference the compiler cannot drop. */
__attribute__((noinline)) static void crash_here(const char *request)
{
    volatile char *volatile null = NULL; /* the compiler cannot know it is NULL */
    *null = request[0];
}

/* Crashes on the third call in this process. */
__attribute__((noinline)) static void crash_after_two(const char *request)
{
    static int requests;
    if (++requests >= 3)
        crash_here(request);
}

/* 1 for the first caller in this working directory, 0 for every later one */
static int first_time(void)
{
    int fd = open("crashed-once", O_CREAT | O_EXCL | O_WRONLY, 0644);
    if (fd < 0)
        return 0;
    close(fd);
    return 1;
}

static void serve(int c, int lfd)
{
    char buf[4096];
    const char *reply = "HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhello\n";
    if (closefds)
        close_all_but(lfd, c);
    ssize_t n = read(c, buf, sizeof buf);
    if (n > 0 && memchr(buf, 0x7f, n) && (crash || (once && first_time())))
        crash_here(buf);
    if (third)
        crash_after_two(buf);
    while (n > 0 && !memmem(buf, sizeof buf, "\r\n\r\n", 4))
        n = read(c, buf, sizeof buf);
    if (loud)
        make_noise();
    if (forks) {
        int n = 0;
        while (n < 1000) {
            pid_t pid = fork();
            if (pid == 0) {
                close(c);
                wait_forever(NULL);
            }
            if (pid < 0)
                break;
            n++;
        }
        fprintf(stderr, "forked %d children\n", n);
    }
    if (hog && !allocate_gigabytes())
        reply = "HTTP/1.0 503 Service Unavailable\r\nContent-Length: 4\r\n\r\n503\n";
    if (linger) {
        pthread_t t;
        if (pthread_create(&t, NULL, wait_forever, NULL) == 0)
            pthread_detach(t);
    }
    if (threadfork) {
        pid_t pid = fork();
        struct timespec soon = {0, 10 * 1000 * 1000}, later = {0, 50 * 1000 * 1000};
        int hang = memmem(buf, sizeof buf, "HANG", 4) != NULL;
        if (pid == 0 && hang) {
            close(c);
            wait_forever(NULL);
        }
        while (pid > 0 && hang)
            ; /* the run times out, and its child must not outlive it */
        if (pid != 0) { /* the parent thread leaves the reply to its child */
            close(c);
            nanosleep(&soon, NULL);
            return;
        }
        nanosleep(&later, NULL);
        if (write(c, reply, strlen(reply)) < 0)
            perror("write");
        _exit(0);
    }
    if (write(c, reply, strlen(reply)) < 0)
        perror("write");
    close(c);
}

static void *serve_thread(void *arg)
{
    serve((int)(long)arg, -1);
    return NULL;
}

static void *accept_loop(void *arg)
{
    int lfd = (int)(long)arg;
    for (;;) {
        int c = accept(lfd, NULL, NULL);
        pthread_t t;
        if (c >= 0 && threadfork && pthread_create(&t, NULL, serve_thread, (void *)(long)c) == 0)
            pthread_detach(t);
        else if (c >= 0)
            serve(c, lfd);
        if (c >= 0 && breaks) {
            close(lfd);
            for (;;)
                pause();
        }
    }
    return NULL;
}

static int listener(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0) {
        perror("listen");
        exit(1);
    }
    return fd;
}

static const struct {
    const char *name;
    int *on;
} switches[] = {
    {"closefds", &closefds}, {"noterm", &noterm}, {"reuseport", &reuseport}, {"loud", &loud},
    {"forks", &forks},       {"hog", &hog},       {"linger", &linger},       {"threadfork", &threadfork},
    {"crash", &crash},       {"once", &once},       {"third", &third},         {"breaks", &breaks},
};
#define SWITCHES (sizeof switches / sizeof switches[0])

static int usage(const char *program)
{
    fprintf(stderr, "usage: %s -p PORT [-x SWITCH]..., SWITCH one of:", program);
    for (size_t i = 0; i < SWITCHES; i++)
        fprintf(stderr, " %s", switches[i].name);
    fputc('\n', stderr);
    return 2;
}

/* Turn on the switch named `name`; 0 if there is none. */
static int turn_on(const char *name)
{
    for (size_t i = 0; i < SWITCHES; i++)
        if (strcmp(name, switches[i].name) == 0)
            return *switches[i].on = 1;
    return 0;
}

int main(int argc, char **argv)
{
    int port = 0, opt;
    signal(SIGPIPE, SIG_IGN); /* a client that leaves before its reply is not this server's bug */
    while ((opt = getopt(argc, argv, "p:x:")) != -1) {
        if (opt == 'p')
            port = atoi(optarg);
        else if (opt != 'x' || !turn_on(optarg))
            return usage(argv[0]);
    }
    if (port <= 0)
        return usage(argv[0]);
    if (noterm)
        signal(SIGTERM, SIG_IGN);
    int lfd = listener(port);
    if (closefds)
        close_all_but(lfd, lfd);
    if (reuseport) {
        pthread_t t;
        int second = listener(port);
        if (pthread_create(&t, NULL, accept_loop, (void *)(long)second) != 0)
            return 1;
    }
    accept_loop((void *)(long)lfd);
    return 0;
}
