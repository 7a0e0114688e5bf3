/* deephttp: server -p PORT -R ROOT [-m pool|epoll].  An HTTP/1.0 and HTTP/1.1 server on
 * 127.0.0.1:PORT, one request per connection (it answers, then closes), with two concurrency
 * models that share one parser and handler:
 *   pool   (default) 4 worker threads take accepted connections from a queue (mutex + condvar);
 *   epoll  one thread, non-blocking sockets, level-triggered epoll, a per-connection buffer grown
 *          as bytes arrive; a request is handled once its header block and body are complete.
 * Routes: GET or HEAD of a file under ROOT (`/` is /index.html; the target is percent-decoded and
 * `..` after decoding is 403; `Range: bytes=A-B` or `bytes=A-` answers 206), and POST /api/login
 * with a JSON body {"username":"...","password":"..."} (Content-Length or chunked): 200 and a
 * cookie for user0/thepassword, 403 otherwise.  It prints nothing per request; SIGTERM (or
 * SIGINT) ends it with status 0.  Five planted bugs, each an out-of-bounds access that
 * AddressSanitizer reports, each reached by one request and marked PLANTED BUG below:
 *   chunk-size-overflow        dechunk()         heap write before the body buffer
 *   json-escape-overflow       json_string()     stack write past a 64-byte name buffer
 *   percent-decode-off-by-one  percent_decode()  heap read past the target's copy
 *   number-int-overflow        serve_file()      heap read past the file's buffer
 *   header-count-overflow      parse_head()      heap write past the request struct
 * README.md has the smallest request that triggers each. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define REQ_MAX 65536               /* a request, header block and body, must fit */
#define BODY_MAX 4096               /* the decoded body, its NUL included */
#define MAX_HEADERS 32
#define NAME_MAX_ 64                /* a decoded login string, its NUL included */
#define FILE_MAX 65536              /* larger files are not served */
#define HEAD_ROOM 1024              /* a reply's status line and headers */
#define REPLY_MAX (HEAD_ROOM + FILE_MAX)
#define WORKERS 4
#define QUEUE_MAX 64
#define MAX_FDS 1024

struct header {
    char *name, *value;
};

struct request {
    char *head;                     /* copy of the header block (NULL until it is complete) */
    size_t head_len;                /* its length in the connection's bytes */
    char *method, *target, *version;
    int chunked;
    long clen;                      /* Content-Length, or -1 */
    char *body;                     /* BODY_MAX bytes: the decoded body, NUL-terminated */
    int body_len;
    int nhdr;
    struct header hdr[MAX_HEADERS]; /* last member: one entry more is past the allocation */
};

static const char *root;
static volatile sig_atomic_t stop;
static unsigned long cookie_seq;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
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

/* ---------------------------------------------------------------- parsing the request */

static struct request *request_new(void)
{
    struct request *rq = calloc(1, sizeof *rq);

    if (rq != NULL && (rq->body = malloc(BODY_MAX)) == NULL) {
        free(rq);
        rq = NULL;
    }
    if (rq != NULL)
        rq->clen = -1;
    return rq;
}

static void request_free(struct request *rq)
{
    if (rq != NULL) {
        free(rq->head);
        free(rq->body);
        free(rq);
    }
}

static const char *header(const struct request *rq, const char *name)
{
    int i;

    for (i = 0; i < rq->nhdr; i++)
        if (strcasecmp(rq->hdr[i].name, name) == 0)
            return rq->hdr[i].value;
    return NULL;
}

/* Length of the header block at the start of buf (up to its blank line), or 0 if incomplete. */
static size_t head_end(const char *buf, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if (buf[i] != '\n')
            continue;
        if (i + 1 < len && buf[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

/* The next line (CRLF or LF) of the NUL-terminated text at *p, NUL-terminated in place. */
static char *next_line(char **p)
{
    char *line = *p, *eol = strchr(line, '\n');

    if (eol == NULL) {
        *p = line + strlen(line);
        return line;
    }
    *p = eol + 1;
    if (eol > line && eol[-1] == '\r')
        eol--;
    *eol = '\0';
    return line;
}

/* Split rq->head into the request line and the header array; 0 or an error status. */
static int parse_head(struct request *rq)
{
    char *p = rq->head, *line, *colon, *v, *e, *save = NULL;
    const char *te, *cl;

    line = next_line(&p);
    rq->method = strtok_r(line, " ", &save);
    rq->target = strtok_r(NULL, " ", &save);
    rq->version = strtok_r(NULL, " ", &save);
    if (rq->version == NULL || strtok_r(NULL, " ", &save) != NULL ||
        strncmp(rq->version, "HTTP/", 5) != 0)
        return 400;
    if (strcmp(rq->version, "HTTP/1.0") != 0 && strcmp(rq->version, "HTTP/1.1") != 0)
        return 505;
    for (;;) {
        line = next_line(&p);
        if (*line == '\0')
            break;
        colon = strchr(line, ':');
        if (colon == NULL || colon == line)
            return 400;
        /* PLANTED BUG header-count-overflow: the bound check should be `>= MAX_HEADERS`.  With
         * `>`, the 33rd header line passes it and is stored in hdr[32], one entry past the
         * array, which is the last member of the heap-allocated struct request: a 16-byte heap
         * write past the allocation.  32 header lines or fewer are fine; a 34th gets 431. */
        if (rq->nhdr > MAX_HEADERS)
            return 431;
        *colon = '\0';
        v = colon + 1 + strspn(colon + 1, " \t");
        for (e = v + strlen(v); e > v && (e[-1] == ' ' || e[-1] == '\t'); )
            *--e = '\0';
        rq->hdr[rq->nhdr].name = line;
        rq->hdr[rq->nhdr].value = v;
        rq->nhdr++;
    }
    te = header(rq, "Transfer-Encoding");
    cl = header(rq, "Content-Length");
    if (te != NULL) {
        if (strcasecmp(te, "chunked") != 0)
            return 501;
        rq->chunked = 1;
    } else if (cl != NULL) {
        errno = 0;
        rq->clen = strtol(cl, &e, 10);
        if (!isdigit((unsigned char)*cl) || *e != '\0' || errno != 0)
            return 400;
        if (rq->clen > BODY_MAX - 1)
            return 413;
    }
    return 0;
}

/* Decode the chunked body in [p, end) into rq->body: 0 while more bytes are needed, 1 once it is
 * complete (rq->body_len set), or an error status.  Sizes are hex with optional ;extensions;
 * trailer lines are skipped up to the blank line. */
static int dechunk(struct request *rq, const char *p, const char *end)
{
    const char *eol;
    char *e;
    int used = 0, size, i;

    for (;;) {
        if ((eol = memchr(p, '\n', (size_t)(end - p))) == NULL)
            return 0;
        if (!isxdigit((unsigned char)*p))
            return 400;
        /* PLANTED BUG chunk-size-overflow: the size is kept in an int.  `ffffffff` (or
         * `fffffffe`) is 4294967295 for strtol and -1 (-2) once cast: it passes the room check
         * below, the copy loop copies nothing, `used` goes negative and `p` steps back onto
         * the end of its own size line (the LF, or the CRLF), so parsing goes on; the final
         * `rq->body[used] = '\0'` (or the next chunk's copy) then writes before the heap body
         * buffer.  The size should be parsed as unsigned and checked before any cast. */
        size = (int)strtol(p, &e, 16);
        if (*e != ';' && *e != ' ' && *e != '\t' && *e != '\r' && *e != '\n')
            return 400;
        if (size > BODY_MAX - 1 - used)
            return 413;
        p = eol + 1;
        if (size == 0)
            break;
        if (end - p < size + 2)
            return 0;
        for (i = 0; i < size; i++)
            rq->body[used + i] = p[i];
        used += size;
        p += size;
        if (*p == '\r')             /* the CRLF (or LF) after the chunk's data */
            p++;
        if (*p != '\n')
            return 400;
        p++;
    }
    for (;;) {                      /* trailers, up to the blank line */
        if ((eol = memchr(p, '\n', (size_t)(end - p))) == NULL)
            return 0;
        if (eol == p || (eol == p + 1 && *p == '\r'))
            break;
        p = eol + 1;
    }
    rq->body[used] = '\0';
    rq->body_len = used;
    return 1;
}

/* Look at the len bytes a connection has sent so far: 0 while the request is incomplete, 1 once
 * it is (header block parsed, body decoded), or an error status to answer. */
static int request_step(struct request *rq, const char *buf, size_t len)
{
    size_t n;
    int st;

    if (rq->head == NULL) {
        if ((n = head_end(buf, len)) == 0)
            return len >= REQ_MAX ? 431 : 0;
        if (memchr(buf, '\0', n) != NULL)
            return 400;
        if ((rq->head = malloc(n + 1)) == NULL)
            return 500;
        memcpy(rq->head, buf, n);
        rq->head[n] = '\0';
        rq->head_len = n;
        if ((st = parse_head(rq)) != 0)
            return st;
    }
    if (rq->chunked) {
        st = dechunk(rq, buf + rq->head_len, buf + len);
    } else {
        n = rq->clen > 0 ? (size_t)rq->clen : 0;
        st = len - rq->head_len >= n;
        if (st) {
            memcpy(rq->body, buf + rq->head_len, n);
            rq->body[n] = '\0';
            rq->body_len = (int)n;
        }
    }
    if (st == 0 && len >= REQ_MAX)
        st = 413;
    return st;
}

/* ---------------------------------------------------------------- replies */

static const char *reason(int st)
{
    switch (st) {
    case 200: return "OK";
    case 206: return "Partial Content";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 413: return "Content Too Large";
    case 416: return "Range Not Satisfiable";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 505: return "HTTP Version Not Supported";
    default:  return "Internal Server Error";
    }
}

/* Status line and headers for a body of n bytes into out (at most HEAD_ROOM bytes); extra is ""
 * or header lines ending in CRLF.  Returns their length. */
static size_t put_head(char *out, const char *ver, int st, const char *type, size_t n,
                       const char *extra)
{
    int h = snprintf(out, HEAD_ROOM, "%s %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "%sConnection: close\r\n\r\n", ver, st, reason(st), type, n, extra);
    return h < HEAD_ROOM ? (size_t)h : HEAD_ROOM - 1;
}

static size_t put_reply(char *out, const char *ver, int st, const char *type, const char *body,
                        const char *extra)
{
    size_t n = strlen(body), h = put_head(out, ver, st, type, n, extra);

    memcpy(out + h, body, n);
    return h + n;
}

static size_t error_page(char *out, const char *ver, int st)
{
    char body[128];

    snprintf(body, sizeof body, "<html><body><h1>%d %s</h1></body></html>\n", st, reason(st));
    return put_reply(out, ver, st, "text/html", body, "");
}

/* Decode the %XX escapes of s in place: 0, or -1 if one decodes to NUL (or is not hex). */
static int percent_decode(char *s)
{
    char *o = s, hex[3];
    size_t i = 0;
    long c;

    while (s[i] != '\0') {
        if (s[i] != '%') {
            *o++ = s[i++];
            continue;
        }
        /* PLANTED BUG percent-decode-off-by-one: the two bytes after '%' are taken without
         * looking for the end of the string.  For a target ending in `%`, s[i + 2] is one past
         * the NUL; for one ending in `%2`, the escape takes the NUL and i + 3 skips past it, so
         * the loop's test reads one past the NUL: a heap read past malloc(len + 1). */
        hex[0] = s[i + 1];
        hex[1] = s[i + 2];
        hex[2] = '\0';
        c = strtol(hex, NULL, 16);
        if (c <= 0)
            return -1;
        *o++ = (char)c;
        i += 3;
    }
    *o = '\0';
    return 0;
}

/* The decoded path of a target (its query cut off), in a new string; NULL and *st set if bad. */
static char *target_path(const char *target, int *st)
{
    size_t len = strcspn(target, "?#");
    char *path;

    *st = 400;
    if (target[0] != '/' || (path = malloc(len + 1)) == NULL)
        return NULL;
    memcpy(path, target, len);
    path[len] = '\0';
    if (percent_decode(path) != 0) {
        free(path);
        return NULL;
    }
    if (strstr(path, "..") != NULL) {
        *st = 403;
        free(path);
        return NULL;
    }
    return path;
}

static const char *content_type(const char *path)
{
    static const char *const types[][2] = {
        { ".html", "text/html" }, { ".txt", "text/plain" }, { ".css", "text/css" },
        { ".js", "application/javascript" }, { ".json", "application/json" },
        { ".png", "image/png" }, { ".jpg", "image/jpeg" },
    };
    const char *dot = strrchr(path, '.');
    size_t i;

    for (i = 0; dot != NULL && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i][0]) == 0)
            return types[i][1];
    return "application/octet-stream";
}

/* `bytes=A-B` or `bytes=A-` (B is then -1), 0 <= A <= B: 0; anything else: -1 (no Range). */
static int parse_range(const char *v, long *a, long *b)
{
    char *e;

    if (strncmp(v, "bytes=", 6) != 0 || !isdigit((unsigned char)v[6]))
        return -1;
    errno = 0;
    *a = strtol(v + 6, &e, 10);
    if (*e++ != '-' || errno != 0)
        return -1;
    if (*e == '\0') {
        *b = -1;
        return 0;
    }
    if (!isdigit((unsigned char)*e))
        return -1;
    *b = strtol(e, &e, 10);
    return *e == '\0' && errno == 0 && *b >= *a ? 0 : -1;
}

static size_t serve_file(struct request *rq, char *out, const char *ver)
{
    char full[4096], extra[128] = "", *path, *data;
    const char *range = header(rq, "Range");
    struct stat sb;
    long a, b, size, start = 0;
    size_t n;
    ssize_t r;
    int st, fd, len;

    if ((path = target_path(rq->target, &st)) == NULL)
        return error_page(out, ver, st);
    n = (size_t)snprintf(full, sizeof full, "%s%s", root, strcmp(path, "/") == 0 ? "/index.html"
                         : path);
    free(path);
    if (n >= sizeof full || (fd = open(full, O_RDONLY)) < 0)
        return error_page(out, ver, 404);
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return error_page(out, ver, 404);
    }
    if (sb.st_size > FILE_MAX) {
        close(fd);
        return error_page(out, ver, 403);
    }
    size = (long)sb.st_size;
    if ((data = malloc(size > 0 ? (size_t)size : 1)) == NULL) {
        close(fd);
        return error_page(out, ver, 500);
    }
    for (n = 0; n < (size_t)size; n += (size_t)r)
        if ((r = read(fd, data + n, (size_t)size - n)) <= 0)
            break;
    close(fd);
    if (n < (size_t)size) {
        free(data);
        return error_page(out, ver, 500);
    }
    st = 200;
    len = (int)size;
    if (range != NULL && parse_range(range, &a, &b) == 0) {
        if (a >= size) {
            free(data);
            return error_page(out, ver, 416);
        }
        if (b < 0)
            b = size - 1;
        /* PLANTED BUG number-int-overflow: the part's length is kept in an int.  For
         * `bytes=0-2147483647` (or 1-2147483648, ...) B - A + 1 is 2147483648, which wraps to
         * INT_MIN: it is not larger than size - A, so it is not clamped to the file, and as a
         * size_t it is only cut to FILE_MAX below: memcpy() then reads FILE_MAX bytes from the
         * file's buffer (exactly the file's size): a heap read past it (its bytes would go out
         * in the reply).  It should be computed in long and clamped before any cast. */
        len = b - a + 1;
        if (len > size - a)
            len = (int)(size - a);
        start = a;
        st = 206;
        snprintf(extra, sizeof extra, "Content-Range: bytes %ld-%ld/%ld\r\n", a,
                 a + len - 1, size);
    }
    n = (size_t)len;
    if (n > FILE_MAX)               /* never more than out holds */
        n = FILE_MAX;
    if (strcmp(rq->method, "HEAD") == 0) {
        n = put_head(out, ver, st, content_type(full), n, extra);
    } else {
        size_t h = put_head(out, ver, st, content_type(full), n, extra);
        memcpy(out + h, data + start, n);
        n += h;
    }
    free(data);
    return n;
}

static int hex4(const char *p, const char *end, unsigned *v)
{
    int i;

    if (end - p < 4)
        return -1;
    for (*v = 0, i = 0; i < 4; i++) {
        if (!isxdigit((unsigned char)p[i]))
            return -1;
        *v = *v * 16 + (unsigned)(isdigit((unsigned char)p[i]) ? p[i] - '0'
                                  : tolower((unsigned char)p[i]) - 'a' + 10);
    }
    return 0;
}

/* Write code point cp as UTF-8 at o; returns the byte count (1 to 4). */
static size_t utf8_put(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Decode the JSON string at *pp (its opening quote) into out (cap bytes, NUL included) as UTF-8
 * and move *pp past its closing quote: 0, or -1 if it is malformed or too long. */
static int json_string(const char **pp, const char *end, char *out, size_t cap)
{
    const char *p = *pp + 1;
    size_t n = 0;
    unsigned cp, lo;

    while (p < end && *p != '"') {
        /* PLANTED BUG json-escape-overflow: this leaves room for one more byte and the NUL,
         * but a \uXXXX escape writes 2 or 3 bytes (0x80 and up, 0x800 and up, like \u20ac) and
         * a surrogate pair 4: with n at cap - 2, \u20ac writes out[cap] (the 21st \u20ac after
         * "ab", in a 64-byte buffer on login()'s stack).  The check belongs after the
         * decoding, against the escape's own length. */
        if (n + 1 >= cap)
            return -1;
        if (*p != '\\') {
            if ((unsigned char)*p < 0x20)
                return -1;
            out[n++] = *p++;
            continue;
        }
        if (end - p < 2)
            return -1;
        p += 2;
        switch (p[-1]) {
        case '"': case '\\': case '/': out[n++] = p[-1]; break;
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'n': out[n++] = '\n'; break;
        case 'r': out[n++] = '\r'; break;
        case 't': out[n++] = '\t'; break;
        case 'u':
            if (hex4(p, end, &cp) != 0 || cp == 0 || (cp >= 0xdc00 && cp <= 0xdfff))
                return -1;
            p += 4;
            if (cp >= 0xd800 && cp <= 0xdbff) {     /* a high surrogate: its low one follows */
                if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, end, &lo) != 0 ||
                    lo < 0xdc00 || lo > 0xdfff)
                    return -1;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                p += 6;
            }
            n += utf8_put(out + n, cp);
            break;
        default:
            return -1;
        }
    }
    if (p >= end)
        return -1;
    out[n] = '\0';
    *pp = p + 1;
    return 0;
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    return p;
}

/* {"username":"...","password":"..."} (other string members ignored): 0, or -1 if malformed. */
static int parse_login(const char *p, const char *end, char *user, char *pass)
{
    char key[16], other[NAME_MAX_], *dst;

    user[0] = pass[0] = '\0';
    p = skip_ws(p, end);
    if (p == end || *p++ != '{')
        return -1;
    for (;;) {
        p = skip_ws(p, end);
        if (p == end || *p != '"' || json_string(&p, end, key, sizeof key) != 0)
            return -1;
        p = skip_ws(p, end);
        if (p == end || *p++ != ':')
            return -1;
        p = skip_ws(p, end);
        dst = strcmp(key, "username") == 0 ? user : strcmp(key, "password") == 0 ? pass : other;
        if (p == end || *p != '"' || json_string(&p, end, dst, NAME_MAX_) != 0)
            return -1;
        p = skip_ws(p, end);
        if (p == end)
            return -1;
        if (*p == '}')
            return skip_ws(p + 1, end) == end ? 0 : -1;
        if (*p++ != ',')
            return -1;
    }
}

static size_t login(struct request *rq, char *out, const char *ver)
{
    char user[NAME_MAX_], pass[NAME_MAX_], extra[96];

    if (parse_login(rq->body, rq->body + rq->body_len, user, pass) != 0)
        return error_page(out, ver, 400);
    if (strcmp(user, "user0") != 0 || strcmp(pass, "thepassword") != 0)
        return put_reply(out, ver, 403, "application/json", "{\"ok\":false}\n", "");
    snprintf(extra, sizeof extra, "Set-Cookie: sid=%08lx%08lx; Path=/; HttpOnly\r\n",
             (unsigned long)time(NULL) & 0xffffffffUL,
             __atomic_add_fetch(&cookie_seq, 1, __ATOMIC_RELAXED));
    return put_reply(out, ver, 200, "application/json", "{\"ok\":true}\n", extra);
}

/* The whole reply to a complete request (st 1) or to an error status, in a new buffer. */
static char *respond(struct request *rq, int st, size_t *len)
{
    char *out = malloc(REPLY_MAX);
    const char *ver = rq->version != NULL && strcmp(rq->version, "HTTP/1.0") == 0 ? "HTTP/1.0"
                      : "HTTP/1.1";

    if (out == NULL)
        return NULL;
    if (st != 1)
        *len = error_page(out, ver, st);
    else if (strcmp(rq->method, "GET") == 0 || strcmp(rq->method, "HEAD") == 0)
        *len = serve_file(rq, out, ver);
    else if (strcmp(rq->method, "POST") == 0 && strcmp(rq->target, "/api/login") == 0)
        *len = login(rq, out, ver);
    else
        *len = error_page(out, ver, strcmp(rq->method, "POST") == 0 ? 404 : 501);
    return out;
}

/* ---------------------------------------------------------------- pool model */

static int queue[QUEUE_MAX], q_first, q_count;
static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_nonempty = PTHREAD_COND_INITIALIZER, q_nonfull = PTHREAD_COND_INITIALIZER;

static void serve_blocking(int fd)
{
    struct request *rq = request_new();
    char *buf = malloc(REQ_MAX), *out;
    size_t len = 0, olen;
    ssize_t r;
    int st;

    if (rq == NULL || buf == NULL)
        goto done;
    while ((st = request_step(rq, buf, len)) == 0) {
        r = recv(fd, buf + len, REQ_MAX - len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)                 /* EOF, an error or 5 s of silence: no reply */
            goto done;
        len += (size_t)r;
    }
    if ((out = respond(rq, st, &olen)) != NULL) {
        send_all(fd, out, olen);
        free(out);
    }
done:
    request_free(rq);
    free(buf);
}

static void *worker(void *arg)
{
    struct timeval tv = { 5, 0 };
    int fd;

    (void)arg;
    for (;;) {
        pthread_mutex_lock(&q_lock);
        while (q_count == 0)
            pthread_cond_wait(&q_nonempty, &q_lock);
        fd = queue[q_first];
        q_first = (q_first + 1) % QUEUE_MAX;
        q_count--;
        pthread_cond_signal(&q_nonfull);
        pthread_mutex_unlock(&q_lock);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        serve_blocking(fd);
        close(fd);
    }
    return NULL;
}

static void run_pool(int lfd)
{
    struct timeval tv = { 1, 0 };   /* accept() wakes up every second to see a SIGTERM */
    sigset_t set, old;
    pthread_t tid;
    int i, fd;

    sigemptyset(&set);              /* the signals go to this thread, not to the workers */
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    for (i = 0; i < WORKERS; i++)
        if (pthread_create(&tid, NULL, worker, NULL) != 0 || pthread_detach(tid) != 0) {
            perror("pthread_create");
            exit(1);
        }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    setsockopt(lfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (!stop) {
        if ((fd = accept(lfd, NULL, NULL)) < 0) {   /* EINTR, EAGAIN (1 s), EMFILE */
            if (errno != EINTR && errno != EAGAIN)
                usleep(1000);
            continue;
        }
        pthread_mutex_lock(&q_lock);
        while (q_count == QUEUE_MAX)
            pthread_cond_wait(&q_nonfull, &q_lock);
        queue[(q_first + q_count) % QUEUE_MAX] = fd;
        q_count++;
        pthread_cond_signal(&q_nonempty);
        pthread_mutex_unlock(&q_lock);
    }
}

/* ---------------------------------------------------------------- epoll model */

struct conn {
    int fd;
    char *buf;                      /* the bytes received so far */
    size_t len, cap;
    struct request *rq;
    char *out;                      /* the reply, once the request is complete */
    size_t olen, off;
};

static struct conn *conns[MAX_FDS];

static void conn_close(int ep, struct conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    conns[c->fd] = NULL;
    request_free(c->rq);
    free(c->buf);
    free(c->out);
    free(c);
}

/* Take what has arrived; once the request is complete, make the reply and wait for the socket
 * to be writable.  -1: close the connection. */
static int conn_read(int ep, struct conn *c)
{
    struct epoll_event ev;
    ssize_t r;
    char *nb;
    int st;

    if (c->len == c->cap) {         /* request_step() keeps len < REQ_MAX while incomplete */
        if ((nb = realloc(c->buf, c->cap * 2)) == NULL)
            return -1;
        c->buf = nb;
        c->cap *= 2;
    }
    r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    if (r < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
    if (r == 0)
        return -1;
    c->len += (size_t)r;
    if ((st = request_step(c->rq, c->buf, c->len)) == 0)
        return 0;
    if ((c->out = respond(c->rq, st, &c->olen)) == NULL)
        return -1;
    ev.events = EPOLLOUT;
    ev.data.fd = c->fd;
    return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Send more of the reply: 0 while some is left, -1 when all is sent (or on an error). */
static int conn_write(struct conn *c)
{
    while (c->off < c->olen) {
        ssize_t w = send(c->fd, c->out + c->off, c->olen - c->off, MSG_NOSIGNAL);
        if (w < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
        c->off += (size_t)w;
    }
    return -1;
}

static void run_epoll(int lfd)
{
    struct epoll_event ev, evs[64];
    struct conn *c;
    int ep, n, i, fd;

    if ((ep = epoll_create1(0)) < 0 || fcntl(lfd, F_SETFL, O_NONBLOCK) < 0) {
        perror("epoll");
        exit(1);
    }
    ev.events = EPOLLIN;
    ev.data.fd = lfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    while (!stop) {
        if ((n = epoll_wait(ep, evs, 64, 1000)) < 0) {      /* EINTR: SIGTERM */
            if (errno != EINTR)
                usleep(1000);
            continue;
        }
        for (i = 0; i < n; i++) {
            fd = evs[i].data.fd;
            if (fd == lfd) {
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    c = fd < MAX_FDS ? calloc(1, sizeof *c) : NULL;
                    if (c == NULL || (c->buf = malloc(1024)) == NULL ||
                        (c->rq = request_new()) == NULL) {
                        if (c != NULL)
                            free(c->buf);
                        free(c);
                        close(fd);
                        continue;
                    }
                    c->fd = fd;
                    c->cap = 1024;
                    conns[fd] = c;
                    ev.events = EPOLLIN;
                    ev.data.fd = fd;
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            if ((c = conns[fd]) == NULL)
                continue;
            if ((c->out != NULL ? conn_write(c) : conn_read(ep, c)) < 0)
                conn_close(ep, c);
        }
    }
    close(ep);
}

int main(int argc, char **argv)
{
    const char *port = NULL, *model = "pool";
    struct sockaddr_in addr;
    struct sigaction sa;
    int opt, lfd, one = 1, bad = 0;

    while ((opt = getopt(argc, argv, "p:R:m:")) != -1) {
        if (opt == 'p')
            port = optarg;
        else if (opt == 'R')
            root = optarg;
        else if (opt == 'm')
            model = optarg;
        else
            bad = 1;
    }
    if (bad || port == NULL || root == NULL || optind != argc || atoi(port) <= 0 ||
        atoi(port) > 65535 || (strcmp(model, "pool") != 0 && strcmp(model, "epoll") != 0)) {
        fprintf(stderr, "Usage: %s -p PORT -R ROOT [-m pool|epoll]\n", argv[0]);
        return 1;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;        /* no SA_RESTART: accept() and epoll_wait() return EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
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
    if (strcmp(model, "epoll") == 0)
        run_epoll(lfd);
    else
        run_pool(lfd);
    close(lfd);
    return 0;
}
