/*
 * Static files under the web root, with single byte ranges.
 *
 * PLANTED BUGS here (see bugs/README.md):
 *   range-inverted                        -> serve_video()
 *   traversal-dotdot, traversal-percent   -> serve_static()
 *
 * -DPSERV_NO_TRAVERSAL replaces the broken ".." check with a correct one.
 */
#include "pserv.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *mime_type(const char *path)
{
    static const struct { const char *ext, *type; } types[] = {
        { ".html", "text/html" },
        { ".js",   "application/javascript" },
        { ".css",  "text/css" },
        { ".mp4",  "video/mp4" },
        { ".svg",  "image/svg+xml" },
        { ".png",  "image/png" },
        { ".jpg",  "image/jpeg" },
    };
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    size_t i;

    if (dot == NULL || (slash != NULL && dot < slash))
        return "text/plain";
    for (i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcasecmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "text/plain";
}

static int parse_num(const char **pp, long long *out)
{
    const char *p = *pp;
    long long v = 0;
    int digits = 0;

    while (*p >= '0' && *p <= '9') {
        if (++digits > 18)
            return 0;
        v = v * 10 + (*p - '0');
        p++;
    }
    if (digits == 0)
        return 0;
    *pp = p;
    *out = v;
    return 1;
}

/*
 * Parse "bytes=a-b", "bytes=a-" or "bytes=-n".  Returns 0 when the header
 * should be ignored, -1 when it cannot be satisfied, 1 with start/end
 * filled in (end NOT validated against start; callers do that).
 */
int parse_range(const char *h, long long total, long long *start,
                long long *end)
{
    const char *p;
    long long a, b;

    if (strncasecmp(h, "bytes=", 6) != 0)
        return 0;
    p = h + 6;
    while (*p == ' ')
        p++;
    if (strchr(p, ',') != NULL)
        return 0;               /* multiple ranges: send everything */
    if (*p == '-') {
        p++;
        if (!parse_num(&p, &b) || *p != '\0')
            return 0;
        if (b == 0)
            return -1;
        if (b > total)
            b = total;
        *start = total - b;
        *end = total - 1;
        return 1;
    }
    if (!parse_num(&p, &a) || *p != '-')
        return 0;
    p++;
    if (*p == '\0') {
        *start = a;
        *end = total - 1;
        return 1;
    }
    if (!parse_num(&p, &b) || *p != '\0')
        return 0;
    *start = a;
    *end = b;
    return 1;
}

static void send_unsatisfiable(struct conn *c, struct request *r,
                               long long total)
{
    char hdr[128];
    char body[] = "<html><body><h1>416 Range Not Satisfiable</h1></body></html>\n";

    snprintf(hdr, sizeof hdr, "Content-Range: bytes */%lld\r\n", total);
    send_response(c, r, 416, "text/html", hdr, body, strlen(body));
}

static void send_file_body(struct conn *c, struct request *r, int partial,
                           const char *type, const char *data,
                           long long start, long long end, long long total)
{
    char hdr[256];
    size_t len = (size_t)(end - start + 1);

    if (partial)
        snprintf(hdr, sizeof hdr,
                 "Accept-Ranges: bytes\r\nContent-Range: bytes %lld-%lld/%lld\r\n",
                 start, end, total);
    else
        snprintf(hdr, sizeof hdr, "Accept-Ranges: bytes\r\n");
    send_response(c, r, partial ? 206 : 200, type, hdr, data, len);
}

/* Ordinary files: read into memory, serve (a slice of) it. */
static void serve_file(struct conn *c, struct request *r, const char *full,
                       long long total)
{
    long long start = 0, end = total - 1, off = 0;
    int rc = 0, fd;
    char *buf;

    if (r->range != NULL) {
        rc = parse_range(r->range, total, &start, &end);
        if (rc < 0 || (rc > 0 && start >= total)) {
            send_unsatisfiable(c, r, total);
            return;
        }
        if (rc > 0 && end >= total)
            end = total - 1;
        if (rc > 0 && end < start) {
            send_unsatisfiable(c, r, total);
            return;
        }
    }
    fd = open(full, O_RDONLY);
    if (fd < 0) {
        send_error(c, r, 404);
        return;
    }
    buf = malloc(total > 0 ? (size_t)total : 1);
    if (buf == NULL) {
        close(fd);
        send_error(c, r, 500);
        return;
    }
    while (off < total) {
        ssize_t n = pread(fd, buf + off, (size_t)(total - off), off);
        if (n <= 0)
            break;
        off += n;
    }
    close(fd);
    if (off < total) {
        free(buf);
        send_error(c, r, 500);
        return;
    }
    if (total == 0)
        send_response(c, r, 200, mime_type(full), "Accept-Ranges: bytes\r\n",
                      "", 0);
    else
        send_file_body(c, r, rc > 0, mime_type(full), buf + start, start, end,
                       total);
    free(buf);
}

/*
 * Videos: map the file and copy the requested slice out, so the mapping
 * can go away before the (possibly slow) send.
 */
static void serve_video(struct conn *c, struct request *r, const char *full,
                        long long total)
{
    long long start = 0, end = total - 1, len;
    int rc = 0, fd;
    char *map, *chunk;

    if (r->range != NULL) {
        rc = parse_range(r->range, total, &start, &end);
        if (rc < 0 || (rc > 0 && start >= total)) {
            send_unsatisfiable(c, r, total);
            return;
        }
        if (rc > 0 && end >= total)
            end = total - 1;
        /* BUG (range-inverted): unlike serve_file() there is no
         * "end < start" check here. */
        if (end < start)
            BUG_HIT("range-inverted");
    }
    if (total == 0) {
        send_response(c, r, 200, "video/mp4", "Accept-Ranges: bytes\r\n",
                      "", 0);
        return;
    }
    fd = open(full, O_RDONLY);
    if (fd < 0) {
        send_error(c, r, 404);
        return;
    }
    map = mmap(NULL, (size_t)total, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        send_error(c, r, 500);
        return;
    }
    len = end - start + 1;
    chunk = malloc((size_t)len);
    memcpy(chunk, map + start, (size_t)len);
    munmap(map, (size_t)total);
    send_file_body(c, r, rc > 0, "video/mp4", chunk, start, end, total);
    free(chunk);
}

#if defined(PSERV_BUG_TRACE) && !defined(PSERV_NO_TRAVERSAL)
/* 1 if the path's ".." segments climb above where it starts (the root). */
static int climbs_out(const char *p)
{
    int depth = 0;

    while (*p != '\0') {
        size_t n;

        while (*p == '/')
            p++;
        n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (--depth < 0)
                return 1;
        } else if (n > 0 && !(n == 1 && p[0] == '.')) {
            depth++;
        }
        p += n;
    }
    return 0;
}
#endif

void serve_static(struct conn *c, struct request *r)
{
    char full[MAX_TARGET + 1024];
    const char *path = r->path;
    size_t plen = strlen(path);
    struct stat st;
    int w;

    if (r->post) {
        send_error(c, r, 405);
        return;
    }
#ifdef PSERV_NO_TRAVERSAL
    if (strstr(path, "..") != NULL) {       /* the decoded path, always */
        send_error(c, r, 404);
        return;
    }
#else
    {
        /* Videos take a fast path (the player sends many range requests).
         * BUG (traversal-dotdot): that fast path skips the ".." check, so
         * "/../../etc/passwd.mp4" reaches stat()/open() outside the root.
         * BUG (traversal-percent): the check looks at the raw target (up
         * to the query), before percent-decoding, so "%2e%2e" passes it
         * and decodes to ".." in path. */
        int video = strcmp(mime_type(path), "video/mp4") == 0;
        size_t rawlen = strcspn(r->target, "?");

        if (!video && memmem(r->target, rawlen, "..", 2) != NULL) {
            send_error(c, r, 404);
            return;
        }
#ifdef PSERV_BUG_TRACE
        /* Each bug its own announcement: "/%2e%2e/x.mp4" gets past both
         * (and past either fix alone). */
        if (climbs_out(path) && video)
            BUG_HIT("traversal-dotdot");
        if (climbs_out(path) && memmem(r->target, rawlen, "..", 2) == NULL)
            BUG_HIT("traversal-percent");
#endif
    }
#endif
    if (strncmp(path, "/private/", 9) == 0 || strcmp(path, "/private") == 0) {
        char claims[512];
        if (!request_claims(r, claims, sizeof claims)) {
            send_error(c, r, 403);
            return;
        }
    }
    w = snprintf(full, sizeof full, "%s%s%s", cfg.root, path,
                 path[plen - 1] == '/' ? "index.html" : "");
    if (w < 0 || (size_t)w >= sizeof full - 16) {
        send_error(c, r, 404);
        return;
    }
    if (stat(full, &st) != 0) {
        if (!cfg.html5_fallback) {
            send_error(c, r, 404);
            return;
        }
        w = snprintf(full, sizeof full, "%s/index.html", cfg.root);
        if (w < 0 || (size_t)w >= sizeof full - 16 || stat(full, &st) != 0) {
            send_error(c, r, 404);
            return;
        }
    }
    if (S_ISDIR(st.st_mode)) {
        strcat(full, "/index.html");
        if (stat(full, &st) != 0) {
            send_error(c, r, 404);
            return;
        }
    }
    if (!S_ISREG(st.st_mode)) {
        send_error(c, r, 404);
        return;
    }
    if (strcmp(mime_type(full), "video/mp4") == 0)
        serve_video(c, r, full, (long long)st.st_size);
    else
        serve_file(c, r, full, (long long)st.st_size);
}
