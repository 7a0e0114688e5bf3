/*
 * Buffered reader over recv(), modelled on the course's bufio: an 8 KiB
 * buffer that grows when a single line does not fit.
 */
#include "pserv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

void bufio_init(struct bufio *b, int fd)
{
    b->fd = fd;
    b->cap = BUFIO_INITIAL;
    b->buf = malloc(b->cap);
    b->start = b->end = 0;
    b->moves = 0;
    if (b->buf == NULL)
        b->cap = 0;
}

void bufio_free(struct bufio *b)
{
    free(b->buf);
    b->buf = NULL;
    b->cap = b->start = b->end = 0;
}

size_t bufio_buffered(const struct bufio *b)
{
    return b->end - b->start;
}

/* Is a whole line (up to "\n") buffered? */
int bufio_has_line(const struct bufio *b)
{
    return b->end > b->start &&
           memchr(b->buf + b->start, '\n', b->end - b->start) != NULL;
}

/* Make room and recv() once.  Returns bytes read, 0 on EOF, -1 on error. */
ssize_t bufio_fill(struct bufio *b)
{
    ssize_t n;

    if (b->buf == NULL)
        return -1;
    if (b->start == b->end)
        b->start = b->end = 0;
    if (b->end == b->cap) {
        if (b->start > 0) {
            memmove(b->buf, b->buf + b->start, b->end - b->start);
            b->end -= b->start;
            b->start = 0;
            b->moves++;
        } else {
            size_t ncap = b->cap * 2;
            char *nb;
            if (ncap > BUFIO_MAX)
                return -1;
            nb = realloc(b->buf, ncap);
            if (nb == NULL)
                return -1;
            b->buf = nb;
            b->cap = ncap;
            b->moves++;
        }
    }
    do {
        n = recv(b->fd, b->buf + b->end, b->cap - b->end, 0);
    } while (n < 0 && errno == EINTR);
    if (n > 0)
        b->end += (size_t)n;
    return n;
}

/*
 * Read one line terminated by "\n" (an optional "\r" before it is
 * stripped).  *line points into the buffer and stays valid only until the
 * next bufio call.  Lines longer than max are reported as BUFIO_TOOLONG.
 */
int bufio_readline(struct bufio *b, char **line, size_t *len, size_t max)
{
    size_t scanned = 0;

    for (;;) {
        char *base = b->buf + b->start;
        char *nl = NULL;
        size_t avail = b->end - b->start;

        if (avail > scanned)
            nl = memchr(base + scanned, '\n', avail - scanned);
        if (nl != NULL) {
            size_t n = (size_t)(nl - base);
            b->start += n + 1;
            if (n > 0 && base[n - 1] == '\r')
                n--;
            base[n] = '\0';
            *line = base;
            *len = n;
            return n > max ? BUFIO_TOOLONG : BUFIO_OK;
        }
        scanned = avail;
        if (scanned > max + 1)
            return BUFIO_TOOLONG;
        ssize_t r = bufio_fill(b);
        if (r == 0)
            return BUFIO_EOF;
        if (r < 0)
            return BUFIO_ERR;
    }
}

/* Copy up to n already-buffered bytes; never touches the socket. */
size_t bufio_take(struct bufio *b, void *dst, size_t n)
{
    size_t avail = b->end - b->start;
    size_t m = n < avail ? n : avail;

    if (m > 0) {
        memcpy(dst, b->buf + b->start, m);
        b->start += m;
    }
    return m;
}

/* Buffered bytes first, otherwise one recv().  0 means EOF. */
ssize_t bufio_read(struct bufio *b, void *dst, size_t n)
{
    ssize_t r;

    if (n == 0)
        return 0;
    if (b->end > b->start)
        return (ssize_t)bufio_take(b, dst, n);
    do {
        r = recv(b->fd, dst, n, 0);
    } while (r < 0 && errno == EINTR);
    return r;
}
