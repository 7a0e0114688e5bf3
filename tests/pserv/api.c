/*
 * /api/login, /api/logout, /api/video.
 *
 * PLANTED BUGS here (see bugs/README.md):
 *   login-truncated-body              -> api_login_post()
 *   logout-double-free (first free)   -> api_logout()
 */
#include "pserv.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define LOGIN_MAX_BODY      4096
#define LOGIN_SHORT_SLACK   64

static const char valid_user[] = "user0";
static const char valid_pass[] = "thepassword";

/* Claims of a valid auth_token cookie, or 0. */
int request_claims(struct request *r, char *claims, size_t n)
{
    char tok[512];

    if (r->cookie == NULL)
        return 0;
    if (!cookie_get(r->cookie, "auth_token", tok, sizeof tok))
        return 0;
    return token_verify(tok, claims, n);
}

/* POST /api/login: reads its own body (the generic reader is not used). */
void api_login_post(struct conn *c, struct request *r)
{
    int len = r->content_length;
    int got = 0;
    char *raw, *json;
    char user[64], pass[64], tok[256], claims[192], hdr[512];
    time_t now;

    if (len <= 0) {
        if (len < 0)
            r->keep_alive = 0;
        send_error(c, r, 403);          /* no JSON at all */
        return;
    }
    if (len > LOGIN_MAX_BODY) {
        r->keep_alive = 0;
        c->linger = 1;
        send_error(c, r, 413);
        return;
    }
    raw = calloc(1, (size_t)len + 1);
    if (raw == NULL) {
        r->keep_alive = 0;
        send_error(c, r, 500);
        return;
    }
    while (got < len) {
        ssize_t n = bufio_read(&c->in, raw + got, (size_t)(len - got));
        if (n <= 0)
            break;                      /* client gave up */
        got += (int)n;
    }
    if (got < len) {
        r->keep_alive = 0;              /* stream is out of sync now */
        /* a few bytes short: clients that count a CRLF they never send */
        if (len - got < LOGIN_SHORT_SLACK)
            len = got;
    }

    /* The scanner wants its own NUL-terminated copy of the body.
     * BUG (login-truncated-body): the copy is sized by what was received
     * but filled with Content-Length bytes, and only grown afterwards;
     * realloc() then finds the next chunk's header zeroed and aborts. */
    if (len > got)
        BUG_HIT("login-truncated-body");
    json = malloc((size_t)got + 1);
    if (json == NULL) {
        free(raw);
        r->keep_alive = 0;
        send_error(c, r, 500);
        return;
    }
    memcpy(json, raw, (size_t)len);
    json = realloc(json, (size_t)len + 1);
    json[len] = '\0';
    free(raw);

    if (json_login(json, user, sizeof user, pass, sizeof pass) != 0 ||
        strcmp(user, valid_user) != 0 || strcmp(pass, valid_pass) != 0) {
        free(json);
        send_error(c, r, 403);
        return;
    }
    free(json);

    now = time(NULL);
    if (token_make(user, now, now + cfg.expiry, tok, sizeof tok,
                   claims, sizeof claims) != 0) {
        send_error(c, r, 500);
        return;
    }
    snprintf(hdr, sizeof hdr,
             "Set-Cookie: auth_token=%s; Path=/; Max-Age=%ld; HttpOnly\r\n",
             tok, cfg.expiry);
    send_response(c, r, 200, "application/json", hdr, claims, strlen(claims));
}

static void api_login_get(struct conn *c, struct request *r)
{
    char claims[512];

    if (request_claims(r, claims, sizeof claims))
        send_response(c, r, 200, "application/json", NULL, claims,
                      strlen(claims));
    else
        send_response(c, r, 200, "application/json", NULL, "{}", 2);
}

static void api_logout(struct conn *c, struct request *r)
{
    static const char clear[] =
        "Set-Cookie: auth_token=; Path=/; Max-Age=0\r\n";
    const char *p = r->cookie ? strstr(r->cookie, "auth_token=") : NULL;

    if (p != NULL) {
        size_t n;
        p += strlen("auth_token=");
        n = strcspn(p, "; \t");
        if (n > 0) {
            conn_remember_session(c, p, n);
            logmsg("[pserv] %s: revoking session (%zu-byte token)",
                   c->peer, n);
            /* BUG (logout-double-free): release the revoked session but
             * leave c->session / c->session_heap set; conn_close() frees
             * it again after the socket is closed. */
            if (c->session_heap) {
                BUG_HIT("logout-double-free");
                free(c->session);
            }
        }
    }
    send_response(c, r, 200, "application/json", clear, "{}", 2);
}

struct vid {
    char name[256];
    long long size;
};

static int vid_cmp(const void *a, const void *b)
{
    return strcmp(((const struct vid *)a)->name, ((const struct vid *)b)->name);
}

static void api_video(struct conn *c, struct request *r)
{
    DIR *d = opendir(cfg.root);
    struct dirent *de;
    struct vid *v = NULL;
    size_t nv = 0, cap = 0, i, blen = 0, bcap;
    char *body;

    if (d == NULL) {
        send_response(c, r, 200, "application/json", NULL, "[]", 2);
        return;
    }
    while ((de = readdir(d)) != NULL) {
        size_t nl = strlen(de->d_name);
        char full[4096];
        struct stat st;
        int w;

        if (nl < 5 || nl >= sizeof v->name ||
            strcmp(de->d_name + nl - 4, ".mp4") != 0)
            continue;
        w = snprintf(full, sizeof full, "%s/%s", cfg.root, de->d_name);
        if (w < 0 || (size_t)w >= sizeof full)
            continue;
        if (stat(full, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (nv == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            struct vid *nvv = realloc(v, ncap * sizeof *v);
            if (nvv == NULL)
                break;
            v = nvv;
            cap = ncap;
        }
        memcpy(v[nv].name, de->d_name, nl + 1);
        v[nv].size = (long long)st.st_size;
        nv++;
    }
    closedir(d);
    if (nv > 1)
        qsort(v, nv, sizeof *v, vid_cmp);

    bcap = 3 + nv * (sizeof v->name * 6 + 64);
    body = malloc(bcap);
    if (body == NULL) {
        free(v);
        send_error(c, r, 500);
        return;
    }
    body[blen++] = '[';
    for (i = 0; i < nv; i++) {
        char esc[sizeof v->name * 6 + 1];
        json_escape(esc, sizeof esc, v[i].name);
        blen += (size_t)snprintf(body + blen, bcap - blen,
                                 "%s{\"name\":\"%s\",\"size\":%lld}",
                                 i ? "," : "", esc, v[i].size);
    }
    body[blen++] = ']';
    send_response(c, r, 200, "application/json", NULL, body, blen);
    free(body);
    free(v);
}

void api_dispatch(struct conn *c, struct request *r)
{
    int get = !r->post;     /* GET or HEAD */

    if (strcmp(r->path, "/api/login") == 0) {
        if (get)
            api_login_get(c, r);
        else
            send_error(c, r, 405);  /* POST is routed before us */
    } else if (strcmp(r->path, "/api/logout") == 0) {
        if (r->post)
            api_logout(c, r);
        else
            send_error(c, r, 405);
    } else if (strcmp(r->path, "/api/video") == 0) {
        if (get)
            api_video(c, r);
        else
            send_error(c, r, 405);
    } else {
        send_error(c, r, 404);
    }
}
