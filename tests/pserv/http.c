/*
 * HTTP/1.x request handling shared by every concurrency model.
 *
 * PLANTED BUGS live here (see bugs/README.md):
 *   reqline-strtok, content-length-empty   -> serve_one() / parse_header()
 *   content-length-negative, body-eof-hang -> read_body()
 *   cookie-no-equals                      -> cookie_get()
 *   logout-double-free (second free)      -> conn_close()
 *   asan-url-decode                       -> url_decode()
 *   asan-method-overflow                  -> log_unknown_method()
 *   asan-strstr-overread                  -> parse_header() (Connection)
 *   asan-realloc-uaf                      -> parse_header() (Host) + serve_one()
 */
#include "pserv.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

void logmsg(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    int n;

    if (cfg.silent)
        return;
    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof buf - 2)
        n = (int)(sizeof buf - 2);
    buf[n++] = '\n';
    if (write(2, buf, (size_t)n) < 0) {
        /* nothing useful to do */
    }
}

/* ---- connections -------------------------------------------------------- */

struct conn *conn_new(int fd, const char *peer)
{
    struct conn *c = calloc(1, sizeof *c);

    if (c == NULL)
        return NULL;
    c->fd = fd;
    bufio_init(&c->in, fd);
    snprintf(c->peer, sizeof c->peer, "%s", peer ? peer : "?");
    return c;
}

/*
 * Remember the token a client presented when logging out, so the
 * connection can release it when it ends.  Short tokens are kept inline.
 */
void conn_remember_session(struct conn *c, const char *tok, size_t n)
{
    if (n <= SESSION_INLINE) {
        memcpy(c->session_inline, tok, n);
        c->session_inline[n] = '\0';
        c->session = c->session_inline;
        c->session_heap = 0;
        return;
    }
    if (n > SESSION_MAX)
        n = SESSION_MAX;
    c->session = malloc(SESSION_MAX + 1);
    if (c->session == NULL) {
        c->session_heap = 0;
        return;
    }
    memcpy(c->session, tok, n);
    c->session[n] = '\0';
    c->session_heap = 1;
}

/* Wait the whole time, even if a signal interrupts it.  poll() with no fds,
 * as an event loop's timer would: a wait the fuzzer's preload sees. */
static void sleep_ms(long ms)
{
    struct timespec end, now;

    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += ms / 1000;
    end.tv_nsec += (ms % 1000) * 1000000L;
    if (end.tv_nsec >= 1000000000L) {
        end.tv_sec++;
        end.tv_nsec -= 1000000000L;
    }
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left = (end.tv_sec - now.tv_sec) * 1000 + (end.tv_nsec - now.tv_nsec) / 1000000L;
        if (left <= 0 || (poll(NULL, 0, (int)left) < 0 && errno != EINTR))
            return;
    }
}

void conn_close(struct conn *c)
{
    /* -k MS: a server that lingers before it closes; no reading meanwhile */
    if (cfg.close_delay_ms > 0 && c->responded)
        sleep_ms(cfg.close_delay_ms);
    if (c->linger) {
        /* error path: let the client read our reply before the RST */
        char junk[4096];
        struct timeval tv = { 0, 300000 };
        size_t total = 0;
        ssize_t n;
        shutdown(c->fd, SHUT_WR);
        setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        while (total < 65536 &&
               (n = recv(c->fd, junk, sizeof junk, 0)) > 0)
            total += (size_t)n;
    }
    close(c->fd);
    /* BUG (logout-double-free): api_logout() already freed a heap session
     * but left session/session_heap set; this frees it a second time. */
    if (c->session_heap)
        free(c->session);
    bufio_free(&c->in);
    free(c);
}

/*
 * -x eof-loop: the keep-alive loop of a server that takes end of file for
 * "no data yet" (only on a keep-alive connection the client ended: an
 * HTTP/1.0 request, or Connection: close, still closes).  It keeps reading for the next request, and recv()
 * returning 0 makes it try again at once: after the client's half-close
 * this spins at 100% CPU forever.  Only a read error ends it.
 */
static void eof_loop(struct conn *c)
{
    for (;;) {
        ssize_t n;

        if (bufio_has_line(&c->in)) {
            serve_one(c);           /* another request: serve it, go on */
            continue;
        }
        n = bufio_fill(&c->in);     /* EINTR is retried inside */
        if (n < 0)
            return;
        /* n == 0: EOF, taken for "nothing yet" */
    }
}

/*
 * The connection is finished (serve_one() returned 0).  By default it is
 * closed; the -x switches make some servers hang instead (see README):
 *   leak      after a 501 (unknown method) the fd is dropped, not closed
 *   eof-loop  after a served request, EOF is spun on (eof_loop above)
 *   spin      after a request other than GET /index.html, the CPU spins
 */
void conn_done(struct conn *c)
{
    if (c->spin) {
        volatile unsigned long n = 0;
        for (;;)
            n++;
    }
    if (cfg.leak && c->bad_method) {
        /* the reply was sent; forget the connection but leave its fd
         * open (no shutdown either).  A session copy, if any, was
         * already freed by api_logout(). */
        bufio_free(&c->in);
        free(c);
        return;
    }
    if (cfg.eof_loop && c->served && c->at_eof)
        eof_loop(c);
    conn_close(c);
}

void handle_connection(int fd, const char *peer)
{
    struct conn *c = conn_new(fd, peer);

    if (c == NULL) {
        close(fd);
        return;
    }
    while (serve_one(c))
        ;
    conn_done(c);
}

/* ---- responses ---------------------------------------------------------- */

int send_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;

    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static const char *status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 206: return "Partial Content";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    default:  return "Unknown";
    }
}

void send_response(struct conn *c, struct request *r, int status,
                   const char *ctype, const char *extra_headers,
                   const void *body, size_t len)
{
    char hdr[2048];
    const char *version = "HTTP/1.1";
    int keep = r != NULL && r->keep_alive;
    int n;

    if (r != NULL && r->version != NULL && r->http11 == 0 &&
        strcmp(r->version, "HTTP/1.0") == 0)
        version = "HTTP/1.0";
    if (r != NULL)
        r->status = status;
    n = snprintf(hdr, sizeof hdr,
                 "%s %d %s\r\n"
                 "Server: pserv-sample\r\n"
                 "Content-Type: %s\r\n"
                 "Content-Length: %zu\r\n"
                 "%s"
                 "%s"
                 "\r\n",
                 version, status, status_text(status),
                 ctype ? ctype : "text/plain",
                 len,
                 extra_headers ? extra_headers : "",
                 keep ? "" : "Connection: close\r\n");
    if (n < 0 || (size_t)n >= sizeof hdr) {
        if (r != NULL)
            r->keep_alive = 0;
        return;
    }
    c->responded = 1;           /* for -k */
    if (send_all(c->fd, hdr, (size_t)n) < 0 ||
        ((r == NULL || !r->head) && len > 0 &&
         send_all(c->fd, body, len) < 0)) {
        if (r != NULL)
            r->keep_alive = 0;
    }
}

void send_error(struct conn *c, struct request *r, int status)
{
    char body[256];
    int n = snprintf(body, sizeof body,
                     "<html><body><h1>%d %s</h1></body></html>\n",
                     status, status_text(status));
    send_response(c, r, status, "text/html", NULL, body, (size_t)n);
}

/* ---- request parsing ---------------------------------------------------- */

static char *trim(char *s)
{
    size_t n;

    while (*s == ' ' || *s == '\t')
        s++;
    n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

static void parse_header(struct conn *c, struct request *r, char *line)
{
    char *colon = strchr(line, ':');
    char *name, *value;

    if (cfg.scan_loop) {
        /* -x scan-loop: the name is scanned to its colon over token bytes
         * only; any other byte before the colon ("Bad Header: x"), or a
         * line without one, is looked at forever. */
        char *p = line;
        while (*p != ':')
            if (isalnum((unsigned char)*p) || *p == '-' || *p == '_')
                p++;
        colon = p;
    }
    if (colon == NULL || colon == line)
        return;                 /* not a header; ignore it */
    *colon = '\0';
    name = line;
    value = colon + 1;

    if (strcasecmp(name, "Content-Length") == 0) {
        char *save = NULL;
        char *num = strtok_r(value, " \t", &save);
        /* BUG (content-length-empty): num is NULL when the value is empty
         * or blank; atoi(NULL) dereferences it. */
        if (num == NULL)
            BUG_HIT("content-length-empty");
        r->content_length = atoi(num);
        return;
    }

    value = trim(value);
    if (strcasecmp(name, "Cookie") == 0) {
        free(r->cookie);
        r->cookie = strdup(value);
    } else if (strcasecmp(name, "Range") == 0) {
        free(r->range);
        r->range = strdup(value);
    } else if (strcasecmp(name, "Host") == 0) {
        /* Only needed for the log line, so no copy: keep a pointer into
         * the line, i.e. into c->in's buffer (see asan-realloc-uaf). */
        r->host = value;
        r->host_moves = c->in.moves;
    } else if (strcasecmp(name, "Connection") == 0) {
        size_t vn = strlen(value), i;
        char *lc;

        if (vn <= CONN_SHORT) {
            if (strcasestr(value, "close") != NULL)
                r->keep_alive = 0;
            return;
        }
        /* A token list ("keep-alive, Upgrade"): search a lower-cased copy.
         * BUG (asan-strstr-overread): the copy is exactly vn bytes with no
         * terminating NUL, so strstr() reads past the end of the block
         * (unless "close" is found first). */
        lc = malloc(vn);
        if (lc == NULL)
            return;
        for (i = 0; i < vn; i++)
            lc[i] = (char)tolower((unsigned char)value[i]);
        if (memmem(lc, vn, "close", 5) == NULL)
            BUG_HIT("asan-strstr-overread");
        if (strstr(lc, "close") != NULL)
            r->keep_alive = 0;
        free(lc);
    } else if (strcasecmp(name, "X-Debug-Token") == 0) {
        /* BUG (debug-token): a debugging backdoor left in. The right token
         * logs the request's cookie, which is NULL when there is none. */
        if (strcmp(value, DEBUG_TOKEN) == 0) {
            if (r->cookie == NULL)
                BUG_HIT("debug-token");
            fprintf(stderr, "[debug] cookie: %zu bytes\n", strlen(r->cookie));
        }
    }
}

/*
 * Log an unsupported method, made printable and cut to a sane length.
 * noinline keeps method[] in a small frame of its own whose only other
 * local is shown[]; the compilers put the smaller method[] below it, so in
 * builds without ASan the planted 1-byte overflow lands in shown[0] (or
 * padding), which is written afterwards anyway.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push     /* gcc sees the planted overflow below */
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#endif
static __attribute__((noinline)) void log_unknown_method(struct conn *c,
                                                         const char *m)
{
    char shown[4 * METHOD_MAX + 1];     /* worst case: \xNN per byte */
    char method[METHOD_MAX];
    size_t n = strlen(m), i, j = 0;

    /* BUG (asan-method-overflow): off by one, must be ">=": a method of
     * exactly METHOD_MAX (32) characters is copied whole and its NUL is
     * written one byte past method[]. Longer ones are cut to 31. */
    if (n > sizeof method)
        n = sizeof method - 1;
    if (n == sizeof method)
        BUG_HIT("asan-method-overflow");
    memcpy(method, m, n);
    method[n] = '\0';
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)method[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '\\' && ch != '"') {
            shown[j++] = (char)ch;
        } else {
            static const char hex[] = "0123456789abcdef";
            shown[j++] = '\\';
            shown[j++] = 'x';
            shown[j++] = hex[ch >> 4];
            shown[j++] = hex[ch & 15];
        }
    }
    shown[j] = '\0';
    logmsg("[pserv] %s: unknown method \"%s\"", c->peer, shown);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/*
 * Percent-decode the first n bytes of target (the path without the query).
 */
char *url_decode(const char *target, size_t n)
{
    char *copy = malloc(n ? n : 1);   /* private copy of just the path */
    char *out = malloc(n + 1);
    size_t i, j = 0;

    if (copy == NULL || out == NULL) {
        free(copy);
        free(out);
        return NULL;
    }
    memcpy(copy, target, n);
    for (i = 0; i < n; i++) {
        if (copy[i] == '%') {
            /* BUG (asan-url-decode): for a trailing "%" or "%X" these read
             * one or two bytes past the end of copy[]. */
            if (i + 2 >= n)
                BUG_HIT("asan-url-decode");
            int hi = hexval((unsigned char)copy[i + 1]);
            int lo = hexval((unsigned char)copy[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out[j++] = (char)(hi << 4 | lo);
                i += 2;
                continue;
            }
        }
        out[j++] = copy[i];
    }
    out[j] = '\0';
    free(copy);
    return out;
}

/*
 * Find cookie `name` in a Cookie header ("a=b; c=d").  Returns 1 and copies
 * the value into out when found.
 */
int cookie_get(const char *header, const char *name, char *out, size_t outsz)
{
    char *copy = strdup(header);
    char *save = NULL, *pair;
    size_t want = strlen(name);
    int found = 0;

    if (copy == NULL)
        return 0;
    for (pair = strtok_r(copy, ";", &save); pair != NULL;
         pair = strtok_r(NULL, ";", &save)) {
        char *val;
        size_t nlen, vlen;

        pair = trim(pair);
        if (*pair == '\0')
            continue;
        /* BUG (cookie-no-equals): a pair without '=' makes strchr return
         * NULL, so val is (char *)1 and *val faults. */
        if (strchr(pair, '=') == NULL)
            BUG_HIT("cookie-no-equals");
        val = strchr(pair, '=') + 1;
        nlen = (size_t)(val - 1 - pair);
        if (*val == '"') {
            val++;
            vlen = strlen(val);
            if (vlen > 0 && val[vlen - 1] == '"')
                val[vlen - 1] = '\0';
        }
        if (found || nlen != want || strncmp(pair, name, nlen) != 0)
            continue;
        vlen = strlen(val);
        if (vlen < outsz) {
            memcpy(out, val, vlen + 1);
            found = 1;
        }
    }
    free(copy);
    return found;
}

/* Read the request body for everything except POST /api/login. */
static int read_body(struct conn *c, struct request *r)
{
    int len = r->content_length;
    int got;

    if (len == 0)
        return 0;
    if (len > MAX_BODY)
        return 413;
    /* BUG (content-length-negative): only "too big" is rejected; a
     * negative length turns into a huge size_t here. */
    if (len < 0)
        BUG_HIT("content-length-negative");
    r->body = malloc(len + 1);
    memset(r->body, 0, len + 1);
    got = (int)bufio_take(&c->in, r->body, len);
    while (got < len) {
        ssize_t n = recv(c->fd, r->body + got, len - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        /* BUG (body-eof-hang): n == 0 (peer closed) is not handled, so a
         * body shorter than Content-Length spins here forever. */
        got += n;
    }
    r->body[len] = '\0';
    r->body_len = len;
    return 0;
}

static void request_free(struct request *r)
{
    free(r->line);
    free(r->path);
    free(r->cookie);
    free(r->range);
    free(r->body);
}

/*
 * Serve one request from the connection.  Returns 1 when the connection
 * should be kept open for another request.
 */
int serve_one(struct conn *c)
{
    struct request r;
    char *line, *save = NULL;
    size_t len, plen;
    int rc, status = 0, nheaders = 0, keep;
    char *q;
    char vhost[VHOST_MAX] = "";

    memset(&r, 0, sizeof r);

    /* tolerate empty lines before a request line (RFC 7230 3.5) */
    do {
        rc = bufio_readline(&c->in, &line, &len, MAX_REQLINE);
    } while (rc == BUFIO_OK && len == 0);
    if (rc == BUFIO_EOF || rc == BUFIO_ERR) {
        c->at_eof = rc == BUFIO_EOF;    /* for -x eof-loop */
        return 0;
    }
    if (rc == BUFIO_TOOLONG) {
        send_error(c, NULL, 414);
        c->linger = 1;
        logmsg("[pserv] %s: request line too long -> 414", c->peer);
        return 0;
    }

    r.line = strdup(line);
    if (r.line == NULL)
        return 0;
    r.method = strtok_r(r.line, " ", &save);
    r.target = strtok_r(NULL, " ", &save);
    r.version = strtok_r(NULL, " ", &save);

    /* BUG (reqline-strtok): the tokens above are NULL for a request line
     * without spaces ("GET") and are used without checking. */
    if (r.method == NULL || r.target == NULL || r.version == NULL)
        BUG_HIT("reqline-strtok");
    if (strcmp(r.method, "GET") == 0)
        ;
    else if (strcmp(r.method, "POST") == 0)
        r.post = 1;
    else if (strcmp(r.method, "HEAD") == 0)
        r.head = 1;
    else {
        status = 501;
        c->bad_method = 1;          /* for -x leak */
        log_unknown_method(c, r.method);
    }
    if (status == 0 && strlen(r.target) > MAX_TARGET)
        status = 414;
    if (status == 0) {
        if (strcmp(r.version, "HTTP/1.1") == 0)
            r.http11 = 1;
        else if (strcmp(r.version, "HTTP/1.0") != 0)
            status = 400;
    }
    if (status == 0 && strtok_r(NULL, " ", &save) != NULL)
        status = 400;               /* junk after the version */
    if (cfg.spin && (status != 0 || strcmp(r.method, "GET") != 0 ||
                     strcmp(r.target, "/index.html") != 0))
        c->spin = 1;                /* for -x spin */
    if (status != 0) {
        r.keep_alive = 0;
        send_error(c, &r, status);
        c->linger = 1;
        logmsg("[pserv] %s: bad request line -> %d", c->peer, status);
        request_free(&r);
        return 0;
    }
    r.keep_alive = r.http11;    /* HTTP/1.0: one request per connection */

    /* headers */
    for (;;) {
        rc = bufio_readline(&c->in, &line, &len, MAX_HDRLINE);
        if (rc == BUFIO_TOOLONG || (rc == BUFIO_OK && ++nheaders > MAX_HEADERS)) {
            r.keep_alive = 0;
            send_error(c, &r, 431);
            c->linger = 1;
            request_free(&r);
            return 0;
        }
        if (rc != BUFIO_OK) {           /* EOF in the middle: give up */
            request_free(&r);
            return 0;
        }
        if (len == 0)
            break;
        parse_header(c, &r, line);
    }

    /* virtual host for the log line: the Host value without the port */
    if (r.host != NULL) {
        size_t i;

        /* BUG (asan-realloc-uaf): r.host points into c->in's buffer as it
         * was when the Host line was read.  A later header line longer
         * than the buffer (8 KiB) made bufio_fill() grow it with
         * realloc(), which freed the old block: this reads freed memory.
         * Or a later line did not fit after the unread bytes, and
         * bufio_fill() moved them to the buffer's start: r.host points at
         * other bytes, and the copy may run past the buffer's end. */
        if (c->in.moves != r.host_moves)
            BUG_HIT("asan-realloc-uaf");
        for (i = 0; i + 1 < sizeof vhost && r.host[i] != '\0' &&
             r.host[i] != ':'; i++)
            vhost[i] = r.host[i];
        vhost[i] = '\0';
    }

    /* path: strip the query, percent-decode */
    q = strchr(r.target, '?');
    plen = q ? (size_t)(q - r.target) : strlen(r.target);
    r.path = url_decode(r.target, plen);
    if (r.path == NULL || r.path[0] != '/') {
        r.keep_alive = 0;
        send_error(c, &r, 400);
        c->linger = 1;
        request_free(&r);
        return 0;
    }

    if (r.post && strcmp(r.path, "/api/login") == 0) {
        api_login_post(c, &r);      /* reads its own body */
    } else {
        status = read_body(c, &r);
        if (status != 0) {
            r.keep_alive = 0;
            send_error(c, &r, status);
            c->linger = 1;
        } else if (strncmp(r.path, "/api/", 5) == 0 ||
                   strcmp(r.path, "/api") == 0) {
            api_dispatch(c, &r);
        } else {
            serve_static(c, &r);
        }
    }

    logmsg("[pserv] %s \"%s %s %s\" %d%s%s", c->peer, r.method, r.target,
           r.version, r.status, vhost[0] ? " host=" : "", vhost);
    c->served = 1;                  /* for -x eof-loop */
    keep = r.keep_alive;
    request_free(&r);
    return keep;
}
