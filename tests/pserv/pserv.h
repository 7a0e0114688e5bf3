/*
 * pserv-sample: a miniature "personal web server" in the style of the ones
 * students write in a systems course.  It is DELIBERATELY BUGGY: see
 * bugs/README.md for the planted bugs.  Do not use it for anything real.
 */
#ifndef PSERV_H
#define PSERV_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <stddef.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* Built with -DPSERV_BUG_TRACE, each planted bug says "[bug] NAME" on stderr right before it
 * strikes, so tests can tell which bug a crash file reaches. No effect otherwise. */
#ifdef PSERV_BUG_TRACE
#define BUG_HIT(name) do { static const char m_[] = "[bug] " name "\n"; \
        if (write(2, m_, sizeof m_ - 1) < 0) { } } while (0)
#else
#define BUG_HIT(name) do { } while (0)
#endif

/* Built with -DPSERV_NO_TRAVERSAL, static files get a correct ".." check on every route, which
 * removes the two path-traversal bugs (traversal-dotdot, traversal-percent) and nothing else. */

/* ---- configuration (server.c) ---------------------------------------- */
struct config {
    const char *port;
    const char *root;
    int html5_fallback;     /* -a */
    int silent;             /* -s */
    long expiry;            /* -e seconds */
    const char *model;      /* -m */
    /* Hang behaviours for benchmarks and tests, not planted bugs (README). */
    int leak;               /* -x leak: some connections are never closed */
    int eof_loop;           /* -x eof-loop: EOF after a request is spun on */
    int close_stdin;        /* -x close-stdin: fd 0 is /dev/null */
    int spin;               /* -x spin: most requests spin the CPU forever */
    int scan_loop;          /* -x scan-loop: a header-name scan spins on a non-token byte */
    int alarm;              /* -x alarm: a watchdog alarm() armed at start */
    long close_delay_ms;    /* -k: wait this long before closing */
};
extern struct config cfg;

/* ---- buffered reader over recv() (bufio.c) ----------------------------- */
#define BUFIO_INITIAL   8192
#define BUFIO_MAX       (1024 * 1024)

struct bufio {
    int fd;
    char *buf;
    size_t cap;
    size_t start;           /* first unread byte */
    size_t end;             /* one past last valid byte */
    unsigned moves;         /* times the bytes moved (memmove or realloc) */
};

enum {
    BUFIO_OK = 0,
    BUFIO_EOF = -1,
    BUFIO_ERR = -2,
    BUFIO_TOOLONG = -3,
};

void bufio_init(struct bufio *b, int fd);
void bufio_free(struct bufio *b);
int bufio_readline(struct bufio *b, char **line, size_t *len, size_t max);
size_t bufio_buffered(const struct bufio *b);
int bufio_has_line(const struct bufio *b);
ssize_t bufio_fill(struct bufio *b);
size_t bufio_take(struct bufio *b, void *dst, size_t n);
ssize_t bufio_read(struct bufio *b, void *dst, size_t n);

/* ---- connections and requests (http.c) --------------------------------- */
#define MAX_REQLINE     8000
#define MAX_HDRLINE     16384
#define MAX_HEADERS     100
#define MAX_TARGET      4096
#define DEBUG_TOKEN     "dbg-7f3a91c2" /* X-Debug-Token value of the debug backdoor */
#define MAX_BODY        (1024 * 1024)
#define METHOD_MAX      32      /* unknown methods are logged up to this length */
#define CONN_SHORT      16      /* longer Connection values are token lists */
#define VHOST_MAX       64      /* Host shown in the log line */

#define SESSION_INLINE  200     /* tokens up to this length live inline */
#define SESSION_MAX     511

struct conn {
    int fd;
    int linger;             /* drain input before close (error paths) */
    struct bufio in;
    char peer[96];
    char *session;          /* token revoked on this connection (logout) */
    int session_heap;       /* session points to a heap copy */
    char session_inline[SESSION_INLINE + 1];
    /* For the -x/-k switches.  One byte of bits: it fits in the tail
     * padding, so sizeof(struct conn), and with it the heap layout the
     * planted bugs were checked with, stays the same. */
    unsigned char bad_method : 1;   /* answered 501 (unknown method) */
    unsigned char served : 1;       /* a whole request was read and answered */
    unsigned char responded : 1;    /* at least one response was sent */
    unsigned char spin : 1;         /* -x spin: a request other than GET /index.html */
    unsigned char at_eof : 1;       /* the client ended a keep-alive connection */
};

struct request {
    char *line;             /* private copy of the request line */
    char *method;           /* tokens inside line */
    char *target;
    char *version;
    char *path;             /* percent-decoded path, no query (malloc) */
    int http11;
    int keep_alive;
    int head;
    int post;
    int content_length;
    char *cookie;
    char *range;
    const char *host;       /* Host value, points into the conn's bufio buffer */
    unsigned host_moves;    /* that buffer's moves when Host was parsed */
    char *body;
    int body_len;
    int status;             /* for the log line */
};

struct conn *conn_new(int fd, const char *peer);
void conn_close(struct conn *c);
int serve_one(struct conn *c);
void handle_connection(int fd, const char *peer);
void conn_done(struct conn *c);

int send_all(int fd, const void *buf, size_t n);
void send_response(struct conn *c, struct request *r, int status,
                   const char *ctype, const char *extra_headers,
                   const void *body, size_t len);
void send_error(struct conn *c, struct request *r, int status);
int cookie_get(const char *header, const char *name, char *out, size_t outsz);
char *url_decode(const char *target, size_t n);
void conn_remember_session(struct conn *c, const char *tok, size_t n);

/* ---- API (api.c) ------------------------------------------------------- */
void api_dispatch(struct conn *c, struct request *r);
void api_login_post(struct conn *c, struct request *r);
int request_claims(struct request *r, char *claims, size_t n);

/* ---- tokens and JSON (token.c) ------------------------------------------ */
int token_make(const char *sub, time_t iat, time_t exp,
               char *tok, size_t toksz, char *claims, size_t claimsz);
int token_verify(const char *tok, char *claims, size_t claimsz);
int json_login(const char *s, char *user, size_t usz, char *pass, size_t psz);
size_t json_escape(char *out, size_t outsz, const char *s);

/* ---- static files (static.c) ------------------------------------------- */
void serve_static(struct conn *c, struct request *r);
int parse_range(const char *h, long long total, long long *start,
                long long *end);

/* ---- misc -------------------------------------------------------------- */
void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
